/*  pond_proto: protocol message bodies, encoded and decoded by one
    table-driven codec. See pond_proto.h and PROTOCOL.md.
*/
#include "pond_proto.h"
#include "pond_value.h"

#include <msgpack.h>

//  ---------------------------------------------------------------------
//  The generic body codec

typedef enum { F_UINT64, F_UINT32, F_BOOL, F_STR, F_BIN16, F_STRS, F_UINTS, F_BOOLS } field_type_t;

typedef struct {
    const char *key;
    field_type_t type;
    void *value;         //  the struct member
    size_t capacity;     //  F_STR and F_STRS: bytes of one string buffer
    size_t max_items;    //  arrays: most items
    size_t *count;       //  arrays: items held
    bool *present;       //  F_BIN16 optional: set when carried
    bool required;
} field_t;

#define FIELD(k, t, v, r) \
    { \
        k, t, v, 0, 0, NULL, NULL, r \
    }

static void
s_pack_str (msgpack_packer *pk, const char *text, size_t len)
{
    msgpack_pack_str (pk, len);
    msgpack_pack_str_body (pk, text, len);
}

//  How many keys fields make: an optional id not known is nil
//  (PROTOCOL.md: "id: bin16 or nil"); any other optional field not set
//  is left out
static size_t
s_carried (const field_t *fields, size_t nfields)
{
    size_t carried = 0;
    for (size_t i = 0; i < nfields; i++)
        carried += !fields [i].present || *fields [i].present || fields [i].type == F_BIN16;
    return carried;
}

//  Pack the keys and values of fields (not the map header)
static void s_pack_fields (msgpack_packer *pk, const field_t *fields, size_t nfields);

static zframe_t *
s_encode (const field_t *fields, size_t nfields)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, s_carried (fields, nfields));
    s_pack_fields (&pk, fields, nfields);
    zframe_t *frame = zframe_new (sbuf.data, sbuf.size);
    msgpack_sbuffer_destroy (&sbuf);
    return frame;
}

static void
s_pack_fields (msgpack_packer *pk_, const field_t *fields, size_t nfields)
{
    msgpack_packer pk = *pk_;
    for (size_t i = 0; i < nfields; i++) {
        const field_t *f = &fields [i];
        if (f->present && !*f->present) {
            if (f->type == F_BIN16) {
                s_pack_str (&pk, f->key, strlen (f->key));
                msgpack_pack_nil (&pk);
            }
            continue;
        }
        s_pack_str (&pk, f->key, strlen (f->key));
        switch (f->type) {
            case F_UINT64: msgpack_pack_uint64 (&pk, *(uint64_t *) f->value); break;
            case F_UINT32: msgpack_pack_uint32 (&pk, *(uint32_t *) f->value); break;
            case F_BOOL:
                if (*(bool *) f->value)
                    msgpack_pack_true (&pk);
                else
                    msgpack_pack_false (&pk);
                break;
            case F_STR: s_pack_str (&pk, f->value, strlen (f->value)); break;
            case F_BIN16:
                msgpack_pack_bin (&pk, POND_ID_SIZE);
                msgpack_pack_bin_body (&pk, f->value, POND_ID_SIZE);
                break;
            case F_STRS:
                msgpack_pack_array (&pk, *f->count);
                for (size_t j = 0; j < *f->count; j++) {
                    const char *text = (const char *) f->value + j * f->capacity;
                    s_pack_str (&pk, text, strlen (text));
                }
                break;
            case F_UINTS:
                msgpack_pack_array (&pk, *f->count);
                for (size_t j = 0; j < *f->count; j++)
                    msgpack_pack_uint64 (&pk, ((uint64_t *) f->value) [j]);
                break;
            case F_BOOLS:
                msgpack_pack_array (&pk, *f->count);
                for (size_t j = 0; j < *f->count; j++)
                    if (((bool *) f->value) [j])
                        msgpack_pack_true (&pk);
                    else
                        msgpack_pack_false (&pk);
                break;
        }
    }
}

static int
s_decode_scalar (const field_t *f, const msgpack_object *v, void *dst, size_t capacity, char *err,
                 size_t errlen)
{
    switch (f->type) {
        case F_UINT64:
        case F_UINTS:
            if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                break;
            *(uint64_t *) dst = v->via.u64;
            if (f->present)
                *f->present = true;
            return 0;
        case F_UINT32:
            if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 > UINT32_MAX)
                break;
            *(uint32_t *) dst = (uint32_t) v->via.u64;
            if (f->present)
                *f->present = true;
            return 0;
        case F_BOOL:
        case F_BOOLS:
            if (v->type != MSGPACK_OBJECT_BOOLEAN)
                break;
            *(bool *) dst = v->via.boolean;
            return 0;
        case F_STR:
        case F_STRS:
            if (v->type != MSGPACK_OBJECT_STR)
                break;
            if (v->via.str.size >= capacity
                || (v->via.str.size && memchr (v->via.str.ptr, 0, v->via.str.size))) {
                snprintf (err, errlen, "'%s' is longer than %zu bytes or holds NUL", f->key,
                          capacity - 1);
                return -1;
            }
            if (v->via.str.size)    //  msgpack-c gives NULL for ""
                memcpy (dst, v->via.str.ptr, v->via.str.size);
            ((char *) dst) [v->via.str.size] = 0;
            if (f->present)
                *f->present = true;
            return 0;
        case F_BIN16:
            if (v->type == MSGPACK_OBJECT_NIL && f->present)
                return 0;
            if (v->type != MSGPACK_OBJECT_BIN || v->via.bin.size != POND_ID_SIZE)
                break;
            memcpy (dst, v->via.bin.ptr, POND_ID_SIZE);
            if (f->present)
                *f->present = true;
            return 0;
    }
    static const char *expected [] = { "a positive integer",
                                       "a positive 32-bit integer",
                                       "a bool",
                                       "a str",
                                       "16 bytes of bin",
                                       "an array of str",
                                       "an array of positive integers",
                                       "an array of bool" };
    snprintf (err, errlen, "'%s' must be %s", f->key, expected [f->type]);
    return -1;
}

static int
s_decode_field (const field_t *f, const msgpack_object *v, char *err, size_t errlen)
{
    if (f->type == F_STRS || f->type == F_UINTS || f->type == F_BOOLS) {
        if (v->type != MSGPACK_OBJECT_ARRAY) {
            snprintf (err, errlen, "'%s' must be an array", f->key);
            return -1;
        }
        if (v->via.array.size > f->max_items) {
            snprintf (err, errlen, "'%s' holds more than %zu items", f->key, f->max_items);
            return -1;
        }
        size_t item_size = f->type == F_STRS  ? f->capacity
                         : f->type == F_UINTS ? sizeof (uint64_t)
                                              : sizeof (bool);
        for (uint32_t i = 0; i < v->via.array.size; i++)
            if (s_decode_scalar (f, &v->via.array.ptr [i], (char *) f->value + i * item_size,
                                 f->capacity, err, errlen))
                return -1;
        *f->count = v->via.array.size;
        return 0;
    }
    return s_decode_scalar (f, v, f->value, f->capacity, err, errlen);
}

//  Decode the keys of one map into fields (unknown keys are ignored:
//  forward compatible). Returns 0 or -1 with err.
static int
s_decode_map (const msgpack_object_map *map, const field_t *fields, size_t nfields, char *err,
              size_t errlen)
{
    int rc = 0;
    uint32_t seen = 0;
    for (uint32_t i = 0; rc == 0 && i < map->size; i++) {
        const msgpack_object *key = &map->ptr [i].key;
        if (key->type != MSGPACK_OBJECT_STR)
            continue;
        for (size_t j = 0; j < nfields; j++)
            if (strlen (fields [j].key) == key->via.str.size
                && memcmp (fields [j].key, key->via.str.ptr, key->via.str.size) == 0) {
                rc = s_decode_field (&fields [j], &map->ptr [i].val, err, errlen);
                seen |= 1u << j;
                break;
            }
    }
    for (size_t j = 0; rc == 0 && j < nfields; j++)
        if (fields [j].required && !(seen & (1u << j))) {
            snprintf (err, errlen, "missing required key '%s'", fields [j].key);
            rc = -1;
        }
    return rc;
}

static int
s_decode (zframe_t *frame, const field_t *fields, size_t nfields, char *err, size_t errlen)
{
    if (!frame) {
        snprintf (err, errlen, "body frame missing");
        return -1;
    }
    const uint8_t *data = zframe_data (frame);
    size_t size = zframe_size (frame);
    if (size > POND_BODY_MAX) {
        snprintf (err, errlen, "body is %zu bytes; the limit is %d", size, POND_BODY_MAX);
        return -1;
    }
    size_t used;
    if (pond_value_check (data, size, &used, err, errlen))
        return -1;
    if (used != size) {
        snprintf (err, errlen, "trailing bytes after the body map");
        return -1;
    }
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    int rc = -1;
    if (msgpack_unpack_next (&unpacked, (const char *) data, size, NULL) != MSGPACK_UNPACK_SUCCESS)
        snprintf (err, errlen, "body is not valid msgpack");
    else if (unpacked.data.type != MSGPACK_OBJECT_MAP)
        snprintf (err, errlen, "body must be a msgpack map");
    else
        rc = s_decode_map (&unpacked.data.via.map, fields, nfields, err, errlen);
    msgpack_unpacked_destroy (&unpacked);
    return rc;
}

#define COUNT(a) (sizeof (a) / sizeof ((a) [0]))

//  Each message: its field table, then its encode and decode.
#define POND_MESSAGE(type, prefix) \
    zframe_t *prefix##_encode (const type *msg) \
    { \
        field_t fields [16]; /*  s_encode only reads through them  */ \
        size_t n = s_##prefix##_fields ((type *) msg, fields); \
        return s_encode (fields, n); \
    } \
    int prefix##_decode (zframe_t *frame, type *msg, char *err, size_t errlen) \
    { \
        memset (msg, 0, sizeof (*msg)); \
        field_t fields [16]; \
        size_t n = s_##prefix##_fields (msg, fields); \
        return s_decode (frame, fields, n, err, errlen); \
    }

static size_t
s_pond_ack_fields (pond_ack_t *msg, field_t *fields)
{
    field_t table [] = {
        FIELD ("id", F_BIN16, msg->id, true),
        FIELD ("seq", F_UINT64, &msg->seq, true),
        FIELD ("dup", F_BOOL, &msg->dup, false),
    };
    memcpy (fields, table, sizeof table);
    return COUNT (table);
}
POND_MESSAGE (pond_ack_t, pond_ack)

static size_t
s_pond_nack_fields (pond_nack_t *msg, field_t *fields)
{
    field_t table [] = {
        { "id", F_BIN16, msg->id, 0, 0, NULL, &msg->has_id, false },
        FIELD ("code", F_UINT32, &msg->code, true),
        { "reason", F_STR, msg->reason, POND_REASON_MAX, 0, NULL, NULL, true },
        FIELD ("retry_ms", F_UINT32, &msg->retry_ms, false),
        { "rid", F_UINT64, &msg->rid, 0, 0, NULL, &msg->has_rid, false },
    };
    memcpy (fields, table, sizeof table);
    return COUNT (table);
}
POND_MESSAGE (pond_nack_t, pond_nack)

static size_t
s_pond_replay_req_fields (pond_replay_req_t *msg, field_t *fields)
{
    field_t table [] = {
        FIELD ("rid", F_UINT64, &msg->rid, true),
        { "names", F_STRS, msg->names, POND_NAME_MAX + 1, POND_REPLAY_MAX_NAMES, &msg->names_count,
          NULL, false },
        FIELD ("from", F_UINT64, &msg->from_ts, false),
        FIELD ("to", F_UINT64, &msg->to_ts, false),
        FIELD ("from_seq", F_UINT64, &msg->from_seq, false),
        FIELD ("to_seq", F_UINT64, &msg->to_seq, false),
        { "entity", F_STR, msg->entity, POND_ENTITY_MAX + 1, 0, NULL, NULL, false },
        FIELD ("limit", F_UINT64, &msg->limit, false),
        FIELD ("credit", F_UINT32, &msg->credit, true),
        { "order", F_STR, msg->order, sizeof msg->order, 0, NULL, NULL, false },
        FIELD ("pack", F_BOOL, &msg->pack, false),
    };
    memcpy (fields, table, sizeof table);
    return COUNT (table);
}

zframe_t *
pond_replay_req_encode (const pond_replay_req_t *msg)
{
    field_t fields [16];
    size_t n = s_pond_replay_req_fields ((pond_replay_req_t *) msg, fields);
    return s_encode (fields, n);
}

int
pond_replay_req_decode (zframe_t *frame, pond_replay_req_t *msg, char *err, size_t errlen)
{
    memset (msg, 0, sizeof (*msg));
    field_t fields [16];
    size_t n = s_pond_replay_req_fields (msg, fields);
    if (s_decode (frame, fields, n, err, errlen))
        return -1;
    //  Semantic checks, so the store never sees a nonsense request
    for (size_t i = 0; i < msg->names_count; i++) {
        const char *name = msg->names [i];
        bool ok = name [0] >= 'A' && name [0] <= 'Z';
        for (const char *c = name + 1; ok && *c; c++)
            ok = (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_';
        if (!ok) {
            snprintf (err, errlen, "'%.*s' is not an event name", POND_NAME_MAX, name);
            return -1;
        }
    }
    if (msg->to_ts && msg->to_ts <= msg->from_ts) {
        snprintf (err, errlen, "'to' must be after 'from'");
        return -1;
    }
    if (msg->to_seq && msg->to_seq <= msg->from_seq) {
        snprintf (err, errlen, "'to_seq' must be after 'from_seq'");
        return -1;
    }
    if (*msg->order && !streq (msg->order, "time") && !streq (msg->order, "seq")) {
        snprintf (err, errlen, "'order' must be \"time\" or \"seq\"");
        return -1;
    }
    if (msg->credit == 0 || msg->credit > POND_CREDIT_MAX) {
        snprintf (err, errlen, "'credit' must be 1..%d chunks", POND_CREDIT_MAX);
        return -1;
    }
    return 0;
}

static size_t
s_pond_credit_fields (pond_credit_t *msg, field_t *fields)
{
    field_t table [] = {
        FIELD ("rid", F_UINT64, &msg->rid, true),
        FIELD ("chunks", F_UINT32, &msg->chunks, false),
    };
    memcpy (fields, table, sizeof table);
    return COUNT (table);
}
POND_MESSAGE (pond_credit_t, pond_credit)

static size_t
s_pond_end_fields (pond_end_t *msg, field_t *fields)
{
    field_t table [] = {
        FIELD ("rid", F_UINT64, &msg->rid, true),
        FIELD ("count", F_UINT64, &msg->count, false),
        FIELD ("head", F_UINT64, &msg->head, false),
        FIELD ("code", F_UINT32, &msg->code, true),
        { "reason", F_STR, msg->reason, POND_REASON_MAX, 0, NULL, NULL, false },
    };
    memcpy (fields, table, sizeof table);
    return COUNT (table);
}
POND_MESSAGE (pond_end_t, pond_end)

static size_t
s_pond_heartbeat_fields (pond_heartbeat_t *msg, field_t *fields)
{
    field_t table [] = {
        FIELD ("head", F_UINT64, &msg->head, true),
        FIELD ("ts", F_UINT64, &msg->ts, false),
    };
    memcpy (fields, table, sizeof table);
    return COUNT (table);
}
POND_MESSAGE (pond_heartbeat_t, pond_heartbeat)

static size_t
s_pond_pong_fields (pond_pong_t *msg, field_t *fields)
{
    field_t table [] = {
        FIELD ("store_up", F_BOOL, &msg->store_up, true),
        FIELD ("head", F_UINT64, &msg->head, false),
    };
    memcpy (fields, table, sizeof table);
    return COUNT (table);
}
POND_MESSAGE (pond_pong_t, pond_pong)

static size_t
s_pond_query_fields (pond_query_t *msg, field_t *fields)
{
    field_t table [] = {
        { "entity", F_STR, msg->entity, sizeof msg->entity, 0, NULL, NULL, true },
        { "text", F_STR, msg->text, sizeof msg->text, 0, NULL, NULL, false },
        FIELD ("after", F_UINT64, &msg->after, false),
        FIELD ("wait_ms", F_UINT32, &msg->wait_ms, false),
        { "at_seq", F_UINT64, &msg->at_seq, 0, 0, NULL, &msg->has_at_seq, false },
        { "as_of", F_UINT64, &msg->as_of, 0, 0, NULL, &msg->has_as_of, false },
    };
    memcpy (fields, table, sizeof table);
    return COUNT (table);
}
POND_MESSAGE (pond_query_t, pond_query)

static size_t
s_pond_command_fields (pond_command_t *msg, field_t *fields)
{
    field_t table [] = {
        { "command", F_STR, msg->command, sizeof msg->command, 0, NULL, NULL, true },
        { "args", F_STR, msg->args, sizeof msg->args, 0, NULL, NULL, false },
        { "id", F_BIN16, msg->id, 0, 0, NULL, &msg->has_id, false },
        { "view", F_STR, msg->view, sizeof msg->view, 0, NULL, NULL, false },
        { "rid", F_UINT64, &msg->rid, 0, 0, NULL, &msg->has_rid, false },
    };
    memcpy (fields, table, sizeof table);
    return COUNT (table);
}

POND_MESSAGE (pond_command_t, pond_command)

static size_t
s_pond_progress_fields (pond_progress_t *msg, field_t *fields)
{
    field_t table [] = {
        FIELD ("done", F_UINT64, &msg->done, true),
        FIELD ("total", F_UINT64, &msg->total, false),
        { "id", F_BIN16, msg->id, 0, 0, NULL, &msg->has_id, false },
    };
    memcpy (fields, table, sizeof table);
    return COUNT (table);
}
POND_MESSAGE (pond_progress_t, pond_progress)

static size_t
s_pond_command_ref_fields (pond_command_ref_t *msg, field_t *fields)
{
    field_t table [] = {
        { "id", F_BIN16, msg->id, 0, 0, NULL, &msg->has_id, false },
        { "rid", F_UINT64, &msg->rid, 0, 0, NULL, &msg->has_rid, false },
    };
    memcpy (fields, table, sizeof table);
    return COUNT (table);
}
POND_MESSAGE (pond_command_ref_t, pond_command_ref)

//  ACCEPTED / COMMAND_STATUS: the flat keys; progress {done, total} is
//  packed and read beside them
static size_t
s_pond_command_status_fields (pond_command_status_t *msg, field_t *fields)
{
    field_t table [] = {
        FIELD ("id", F_BIN16, msg->id, true),
        { "rid", F_UINT64, &msg->rid, 0, 0, NULL, &msg->has_rid, false },
        { "command", F_STR, msg->command, sizeof msg->command, 0, NULL, NULL, true },
        { "view", F_STR, msg->view, sizeof msg->view, 0, NULL, NULL, true },
        { "status", F_STR, msg->status, sizeof msg->status, 0, NULL, NULL, true },
        FIELD ("dup", F_BOOL, &msg->dup, false),
        FIELD ("accepted", F_UINT64, &msg->accepted, false),
        FIELD ("started", F_UINT64, &msg->started, false),
        FIELD ("finished", F_UINT64, &msg->finished, false),
        { "code", F_UINT32, &msg->code, 0, 0, NULL, &msg->has_code, false },
        { "reason", F_STR, msg->reason, sizeof msg->reason, 0, NULL, NULL, false },
        { "result", F_STR, msg->result, sizeof msg->result, 0, NULL, &msg->has_result, false },
    };
    memcpy (fields, table, sizeof table);
    //  reason is carried with the code (a failure) only
    fields [10].present = &msg->has_reason;
    return COUNT (table);
}

zframe_t *
pond_command_status_encode (const pond_command_status_t *msg)
{
    field_t fields [16];
    size_t n = s_pond_command_status_fields ((pond_command_status_t *) msg, fields);
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, s_carried (fields, n) + 1);
    s_pack_fields (&pk, fields, n);
    s_pack_str (&pk, "progress", 8);
    msgpack_pack_map (&pk, 2);
    s_pack_str (&pk, "done", 4);
    msgpack_pack_uint64 (&pk, msg->done);
    s_pack_str (&pk, "total", 5);
    msgpack_pack_uint64 (&pk, msg->total);
    zframe_t *frame = zframe_new (sbuf.data, sbuf.size);
    msgpack_sbuffer_destroy (&sbuf);
    return frame;
}

int
pond_command_status_decode (zframe_t *frame, pond_command_status_t *msg, char *err, size_t errlen)
{
    memset (msg, 0, sizeof *msg);
    field_t fields [16];
    size_t n = s_pond_command_status_fields (msg, fields);
    if (s_decode (frame, fields, n, err, errlen))
        return -1;
    //  s_decode checked the body: a map of at most POND_BODY_MAX bytes
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    int rc = 0;
    if (msgpack_unpack_next (&unpacked, (const char *) zframe_data (frame), zframe_size (frame),
                             NULL)
        == MSGPACK_UNPACK_SUCCESS) {
        const msgpack_object_map *map = &unpacked.data.via.map;
        for (uint32_t i = 0; rc == 0 && i < map->size; i++)
            if (map->ptr [i].key.type == MSGPACK_OBJECT_STR && map->ptr [i].key.via.str.size == 8
                && memcmp (map->ptr [i].key.via.str.ptr, "progress", 8) == 0) {
                field_t progress [] = {
                    FIELD ("done", F_UINT64, &msg->done, false),
                    FIELD ("total", F_UINT64, &msg->total, false),
                };
                if (map->ptr [i].val.type != MSGPACK_OBJECT_MAP) {
                    snprintf (err, errlen, "'progress' must be a map");
                    rc = -1;
                }
                else
                    rc = s_decode_map (&map->ptr [i].val.via.map, progress, COUNT (progress), err,
                                       errlen);
            }
    }
    msgpack_unpacked_destroy (&unpacked);
    return rc;
}

static size_t
s_pond_append_fields (pond_append_t *msg, field_t *fields)
{
    field_t table [] = {
        FIELD ("bid", F_UINT64, &msg->bid, true),
    };
    memcpy (fields, table, sizeof table);
    return COUNT (table);
}
POND_MESSAGE (pond_append_t, pond_append)

static size_t
s_pond_appended_fields (pond_appended_t *msg, field_t *fields)
{
    field_t table [] = {
        FIELD ("bid", F_UINT64, &msg->bid, true),
        FIELD ("code", F_UINT32, &msg->code, true),
        { "reason", F_STR, msg->reason, POND_REASON_MAX, 0, NULL, NULL, false },
        { "seqs", F_UINTS, msg->seqs, 0, POND_APPEND_MAX, &msg->count, NULL, false },
        { "dups", F_BOOLS, msg->dups, 0, POND_APPEND_MAX, &msg->dups_count, NULL, false },
        { "codes", F_UINTS, msg->codes, 0, POND_APPEND_MAX, &msg->codes_count, NULL, false },
        { "reasons", F_STRS, msg->reasons, POND_APPENDED_REASON_MAX, POND_APPEND_MAX,
          &msg->reasons_count, NULL, false },
    };
    memcpy (fields, table, sizeof table);
    return COUNT (table);
}

zframe_t *
pond_appended_encode (const pond_appended_t *msg)
{
    field_t fields [16];
    size_t n = s_pond_appended_fields ((pond_appended_t *) msg, fields);
    //  dups, codes and reasons: as many as seqs
    fields [n - 3].count = fields [n - 2].count = fields [n - 1].count = (size_t *) &msg->count;
    return s_encode (fields, n);
}

int
pond_appended_decode (zframe_t *frame, pond_appended_t *msg, char *err, size_t errlen)
{
    memset (msg, 0, offsetof (pond_appended_t, reasons));
    field_t fields [16];
    size_t n = s_pond_appended_fields (msg, fields);
    if (s_decode (frame, fields, n, err, errlen))
        return -1;
    if (msg->count != msg->dups_count) {
        snprintf (err, errlen, "'seqs' and 'dups' must have the same length");
        return -1;
    }
    if ((msg->codes_count && msg->codes_count != msg->count)
        || (msg->reasons_count && msg->reasons_count != msg->count)) {
        snprintf (err, errlen, "'codes' and 'reasons' must be as long as 'seqs'");
        return -1;
    }
    //  From a store that sends neither: every event 200, no reason
    for (size_t i = msg->codes_count; i < msg->count; i++)
        msg->codes [i] = POND_CODE_OK;
    for (size_t i = msg->reasons_count; i < msg->count; i++)
        msg->reasons [i][0] = 0;
    msg->codes_count = msg->reasons_count = msg->count;
    return 0;
}

//  One result's fields (msg is written by decode, read by encode)
static size_t
s_pond_result_fields (pond_result_t *msg, field_t *fields)
{
    field_t table [] = {
        { "id", F_BIN16, msg->id, 0, 0, NULL, &msg->has_id, false },
        FIELD ("code", F_UINT32, &msg->code, true),
        FIELD ("seq", F_UINT64, &msg->seq, false),
        FIELD ("dup", F_BOOL, &msg->dup, false),
        { "reason", F_STR, msg->reason, POND_RESULT_REASON_MAX, 0, NULL, NULL, false },
        FIELD ("retry_ms", F_UINT32, &msg->retry_ms, false),
    };
    memcpy (fields, table, sizeof table);
    return COUNT (table);
}

zframe_t *
pond_results_encode (uint32_t code, const char *reason, const pond_result_t *results, size_t count)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 3);
    s_pack_str (&pk, "code", 4);
    msgpack_pack_uint32 (&pk, code);
    s_pack_str (&pk, "reason", 6);
    s_pack_str (&pk, reason, strlen (reason));
    s_pack_str (&pk, "results", 7);
    msgpack_pack_array (&pk, count);
    for (size_t i = 0; i < count; i++) {
        const pond_result_t *r = &results [i];
        msgpack_pack_map (&pk, 6);
        s_pack_str (&pk, "id", 2);
        if (r->has_id) {
            msgpack_pack_bin (&pk, POND_ID_SIZE);
            msgpack_pack_bin_body (&pk, r->id, POND_ID_SIZE);
        }
        else
            msgpack_pack_nil (&pk);
        s_pack_str (&pk, "code", 4);
        msgpack_pack_uint32 (&pk, r->code);
        s_pack_str (&pk, "seq", 3);
        msgpack_pack_uint64 (&pk, r->seq);
        s_pack_str (&pk, "dup", 3);
        if (r->dup)
            msgpack_pack_true (&pk);
        else
            msgpack_pack_false (&pk);
        s_pack_str (&pk, "reason", 6);
        s_pack_str (&pk, r->reason, strlen (r->reason));
        s_pack_str (&pk, "retry_ms", 8);
        msgpack_pack_uint32 (&pk, r->retry_ms);
    }
    zframe_t *frame = zframe_new (sbuf.data, sbuf.size);
    msgpack_sbuffer_destroy (&sbuf);
    return frame;
}

int
pond_results_decode (zframe_t *frame, uint32_t *code, char *reason, size_t reason_size,
                     pond_result_t *results, size_t capacity, size_t *count, char *err,
                     size_t errlen)
{
    *count = 0;
    *code = 0;
    field_t head [] = {
        FIELD ("code", F_UINT32, code, true),
        { "reason", F_STR, reason, reason_size, 0, NULL, NULL, false },
    };
    if (reason_size)
        reason [0] = 0;
    if (s_decode (frame, head, COUNT (head), err, errlen))
        return -1;
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    int rc = -1;
    if (msgpack_unpack_next (&unpacked, (const char *) zframe_data (frame), zframe_size (frame),
                             NULL)
        == MSGPACK_UNPACK_SUCCESS) {
        //  s_decode checked it is a map
        const msgpack_object_map *map = &unpacked.data.via.map;
        const msgpack_object *list = NULL;
        for (uint32_t i = 0; i < map->size; i++)
            if (map->ptr [i].key.type == MSGPACK_OBJECT_STR && map->ptr [i].key.via.str.size == 7
                && memcmp (map->ptr [i].key.via.str.ptr, "results", 7) == 0)
                list = &map->ptr [i].val;
        if (!list)
            snprintf (err, errlen, "missing required key 'results'");
        else if (list->type != MSGPACK_OBJECT_ARRAY)
            snprintf (err, errlen, "'results' must be an array");
        else if (list->via.array.size > capacity)
            snprintf (err, errlen, "'results' holds more than %zu items", capacity);
        else {
            rc = 0;
            for (uint32_t i = 0; rc == 0 && i < list->via.array.size; i++) {
                const msgpack_object *item = &list->via.array.ptr [i];
                memset (&results [i], 0, sizeof results [i]);
                field_t fields [8];
                size_t n = s_pond_result_fields (&results [i], fields);
                if (item->type != MSGPACK_OBJECT_MAP) {
                    snprintf (err, errlen, "results[%u] must be a map", i);
                    rc = -1;
                }
                else
                    rc = s_decode_map (&item->via.map, fields, n, err, errlen);
            }
            if (rc == 0)
                *count = list->via.array.size;
        }
    }
    else
        snprintf (err, errlen, "body is not valid msgpack");
    msgpack_unpacked_destroy (&unpacked);
    return rc;
}

zframe_t *
pond_nack_new (const uint8_t *id, uint32_t code, uint32_t retry_ms, const char *format, ...)
{
    pond_nack_t nack = { .has_id = id != NULL, .code = code, .retry_ms = retry_ms };
    if (id)
        memcpy (nack.id, id, POND_ID_SIZE);
    va_list args;
    va_start (args, format);
    vsnprintf (nack.reason, sizeof nack.reason, format, args);
    va_end (args);
    //  Reasons quote what clients sent: keep them valid UTF-8 for strict readers
    pond_value_utf8_sanitize (nack.reason);
    return pond_nack_encode (&nack);
}

bool
pond_proto_is (zframe_t *frame, const char *command)
{
    return frame && zframe_streq (frame, command);
}
