/*  pond_event: the event envelope, its msgpack codec and its validation.
    See pond_event.h and PROTOCOL.md ("Event envelope").
*/
#include "pond_event.h"
#include "pond_time.h"
#include "pond_uuid.h"
#include "pond_value.h"

#include <czmq.h>
#include <msgpack.h>
#include <cjson/cJSON.h>

struct _pond_event_t {
    uint8_t id [POND_ID_SIZE];
    char name [POND_NAME_MAX + 1];
    uint64_t ts;
    char entity [POND_ENTITY_MAX + 1];
    char source [POND_ENTITY_MAX + 1];
    bool has_causation;
    uint8_t causation [POND_ID_SIZE];
    uint8_t *meta;
    size_t meta_size;
    uint8_t *data;
    size_t data_size;
    uint64_t seq;
};

//  ---------------------------------------------------------------------
//  Field rules, one place for encoder and decoder

static int
s_check_name (const char *name, size_t len, char *err, size_t errlen)
{
    if (len == 0 || len > POND_NAME_MAX) {
        snprintf (err, errlen, "name must be 1 to %d characters", POND_NAME_MAX);
        return -1;
    }
    if (!(name [0] >= 'A' && name [0] <= 'Z')) {
        snprintf (err, errlen, "name must start with A-Z (like QUACKED)");
        return -1;
    }
    for (size_t i = 1; i < len; i++) {
        char c = name [i];
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) {
            snprintf (err, errlen, "name may hold only A-Z, 0-9 and _ (like BUTTON_CLICKED)");
            return -1;
        }
    }
    return 0;
}

//  Entity and source: printable text, no control bytes (they are index
//  keys and log lines), 1..POND_ENTITY_MAX bytes.
static int
s_check_label (const char *key, const char *text, size_t len, char *err, size_t errlen)
{
    if (len == 0 || len > POND_ENTITY_MAX) {
        snprintf (err, errlen, "%s must be 1 to %d bytes", key, POND_ENTITY_MAX);
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) text [i];
        if (c < 0x20 || c == 0x7f) {
            snprintf (err, errlen, "%s must not contain control characters", key);
            return -1;
        }
    }
    return 0;
}

static int
s_check_ts (uint64_t ts, char *err, size_t errlen)
{
    if (ts == 0 || ts > POND_TIME_MAX) {
        snprintf (err, errlen, "ts must be microseconds since the epoch, 1..%llu",
                  (unsigned long long) POND_TIME_MAX);
        return -1;
    }
    return 0;
}

static bool
s_is_nil_id (const uint8_t *id)
{
    for (int i = 0; i < POND_ID_SIZE; i++)
        if (id [i])
            return false;
    return true;
}

//  ---------------------------------------------------------------------
//  Constructor, destructor, accessors

pond_event_t *
pond_event_new (const char *name, const char *entity)
{
    pond_event_t *self = (pond_event_t *) zmalloc (sizeof (pond_event_t));
    if (!self)
        return NULL;
    if (pond_uuid_v7 (self->id)) {
        free (self);
        return NULL;
    }
    self->ts = pond_time_now ();
    if (name)
        pond_event_set_name (self, name);
    if (entity)
        pond_event_set_entity (self, entity);
    return self;
}

void
pond_event_destroy (pond_event_t **self_p)
{
    if (self_p && *self_p) {
        pond_event_t *self = *self_p;
        free (self->meta);
        free (self->data);
        free (self);
        *self_p = NULL;
    }
}

static uint8_t *
s_memdup (const uint8_t *data, size_t size)
{
    uint8_t *copy = (uint8_t *) malloc (size? size: 1);
    if (copy && size)
        memcpy (copy, data, size);
    return copy;
}

pond_event_t *
pond_event_dup (const pond_event_t *self)
{
    pond_event_t *copy = (pond_event_t *) malloc (sizeof (pond_event_t));
    if (!copy)
        return NULL;
    *copy = *self;
    copy->meta = self->meta? s_memdup (self->meta, self->meta_size): NULL;
    copy->data = self->data? s_memdup (self->data, self->data_size): NULL;
    if ((self->meta && !copy->meta) || (self->data && !copy->data)) {
        pond_event_destroy (&copy);
        return NULL;
    }
    return copy;
}

const uint8_t *
pond_event_id (const pond_event_t *self)
{
    return self->id;
}

void
pond_event_set_id (pond_event_t *self, const uint8_t *id)
{
    memcpy (self->id, id, POND_ID_SIZE);
}

const char *
pond_event_name (const pond_event_t *self)
{
    return self->name;
}

//  Copy text into a fixed field; -1 if it does not fit.
static int
s_set_text (char *field, size_t capacity, const char *text)
{
    size_t len = strlen (text);
    if (len >= capacity)
        return -1;
    memcpy (field, text, len + 1);
    return 0;
}

int
pond_event_set_name (pond_event_t *self, const char *name)
{
    return s_set_text (self->name, sizeof self->name, name);
}

uint64_t
pond_event_ts (const pond_event_t *self)
{
    return self->ts;
}

void
pond_event_set_ts (pond_event_t *self, uint64_t ts)
{
    self->ts = ts;
}

const char *
pond_event_entity (const pond_event_t *self)
{
    return self->entity;
}

int
pond_event_set_entity (pond_event_t *self, const char *entity)
{
    return s_set_text (self->entity, sizeof self->entity, entity);
}

const char *
pond_event_source (const pond_event_t *self)
{
    return self->source;
}

int
pond_event_set_source (pond_event_t *self, const char *source)
{
    return s_set_text (self->source, sizeof self->source, source? source: "");
}

const uint8_t *
pond_event_causation (const pond_event_t *self)
{
    return self->has_causation? self->causation: NULL;
}

void
pond_event_set_causation (pond_event_t *self, const uint8_t *id)
{
    self->has_causation = id != NULL;
    if (id)
        memcpy (self->causation, id, POND_ID_SIZE);
}

uint64_t
pond_event_seq (const pond_event_t *self)
{
    return self->seq;
}

void
pond_event_set_seq (pond_event_t *self, uint64_t seq)
{
    self->seq = seq;
}

const uint8_t *
pond_event_data (const pond_event_t *self, size_t *size_p)
{
    *size_p = self->data_size;
    return self->data;
}

const uint8_t *
pond_event_meta (const pond_event_t *self, size_t *size_p)
{
    *size_p = self->meta_size;
    return self->meta;
}

//  Replace a data/meta slot with a copy of msgpack bytes holding one map.
static int
s_set_map (const char *key, uint8_t **slot, size_t *slot_size,
           const uint8_t *msgpack, size_t size, char *err, size_t errlen)
{
    if (!msgpack) {
        free (*slot);
        *slot = NULL;
        *slot_size = 0;
        return 0;
    }
    size_t used;
    char reason [POND_ERR_SIZE];
    if (pond_value_check (msgpack, size, &used, reason, sizeof reason)) {
        snprintf (err, errlen, "%s: %s", key, reason);
        return -1;
    }
    uint8_t tag = msgpack [0];
    bool is_map = (tag >= 0x80 && tag <= 0x8f) || tag == 0xde || tag == 0xdf;
    if (!is_map || used != size) {
        snprintf (err, errlen, "%s must be exactly one map", key);
        return -1;
    }
    uint8_t *copy = s_memdup (msgpack, size);
    if (!copy) {
        snprintf (err, errlen, "out of memory");
        return -1;
    }
    free (*slot);
    *slot = copy;
    *slot_size = size;
    return 0;
}

int
pond_event_set_data (pond_event_t *self, const uint8_t *msgpack, size_t size,
                     char *err, size_t errlen)
{
    return s_set_map ("data", &self->data, &self->data_size, msgpack, size, err, errlen);
}

int
pond_event_set_meta (pond_event_t *self, const uint8_t *msgpack, size_t size,
                     char *err, size_t errlen)
{
    return s_set_map ("meta", &self->meta, &self->meta_size, msgpack, size, err, errlen);
}

static int
s_set_map_json (const char *key, uint8_t **slot, size_t *slot_size,
                const char *json, char *err, size_t errlen)
{
    char reason [POND_ERR_SIZE];
    size_t size;
    uint8_t *msgpack = pond_value_from_json (json, &size, reason, sizeof reason);
    if (!msgpack) {
        snprintf (err, errlen, "%s: %s", key, reason);
        return -1;
    }
    int rc = s_set_map (key, slot, slot_size, msgpack, size, err, errlen);
    free (msgpack);
    return rc;
}

int
pond_event_set_data_json (pond_event_t *self, const char *json, char *err, size_t errlen)
{
    return s_set_map_json ("data", &self->data, &self->data_size, json, err, errlen);
}

int
pond_event_set_meta_json (pond_event_t *self, const char *json, char *err, size_t errlen)
{
    return s_set_map_json ("meta", &self->meta, &self->meta_size, json, err, errlen);
}

int
pond_event_validate (const pond_event_t *self, char *err, size_t errlen)
{
    if (s_is_nil_id (self->id)) {
        snprintf (err, errlen, "id must be a 16-byte UUID, not all zeros");
        return -1;
    }
    if (s_check_name (self->name, strlen (self->name), err, errlen)
    ||  s_check_ts (self->ts, err, errlen)
    ||  s_check_label ("entity", self->entity, strlen (self->entity), err, errlen))
        return -1;
    if (*self->source
    &&  s_check_label ("source", self->source, strlen (self->source), err, errlen))
        return -1;
    return 0;
}

//  ---------------------------------------------------------------------
//  Encoder

static void
s_pack_key (msgpack_packer *pk, const char *key)
{
    size_t len = strlen (key);
    msgpack_pack_str (pk, len);
    msgpack_pack_str_body (pk, key, len);
}

static void
s_pack_text (msgpack_packer *pk, const char *key, const char *value)
{
    s_pack_key (pk, key);
    s_pack_key (pk, value);
}

static void
s_pack_bin (msgpack_packer *pk, const char *key, const uint8_t *value, size_t size)
{
    s_pack_key (pk, key);
    msgpack_pack_bin (pk, size);
    msgpack_pack_bin_body (pk, value, size);
}

uint8_t *
pond_event_encode (const pond_event_t *self, size_t *size_p, char *err, size_t errlen)
{
    if (pond_event_validate (self, err, errlen))
        return NULL;
    size_t count = 4 + (*self->source != 0) + self->has_causation
                 + (self->meta != NULL) + (self->data != NULL) + (self->seq != 0);
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, count);
    s_pack_bin (&pk, "id", self->id, POND_ID_SIZE);
    s_pack_text (&pk, "name", self->name);
    s_pack_key (&pk, "ts");
    msgpack_pack_uint64 (&pk, self->ts);
    s_pack_text (&pk, "entity", self->entity);
    if (*self->source)
        s_pack_text (&pk, "source", self->source);
    if (self->has_causation)
        s_pack_bin (&pk, "causation", self->causation, POND_ID_SIZE);
    //  data and meta are already msgpack: append their bytes as they are
    if (self->meta) {
        s_pack_key (&pk, "meta");
        msgpack_sbuffer_write (&sbuf, (const char *) self->meta, self->meta_size);
    }
    if (self->data) {
        s_pack_key (&pk, "data");
        msgpack_sbuffer_write (&sbuf, (const char *) self->data, self->data_size);
    }
    if (self->seq) {
        s_pack_key (&pk, "seq");
        msgpack_pack_uint64 (&pk, self->seq);
    }
    if (sbuf.size > POND_EVENT_MAX_SIZE) {
        snprintf (err, errlen, "event is %zu bytes; the limit is %d", sbuf.size,
                  POND_EVENT_MAX_SIZE);
        msgpack_sbuffer_destroy (&sbuf);
        return NULL;
    }
    *size_p = sbuf.size;
    return (uint8_t *) msgpack_sbuffer_release (&sbuf);
}

//  ---------------------------------------------------------------------
//  Decoder

enum {
    F_ID = 1, F_NAME = 2, F_TS = 4, F_ENTITY = 8, F_SOURCE = 16,
    F_CAUSATION = 32, F_META = 64, F_DATA = 128, F_SEQ = 256
};

static int
s_key_flag (const msgpack_object_str *key)
{
    static const struct { const char *name; int flag; } keys [] = {
        { "id", F_ID }, { "name", F_NAME }, { "ts", F_TS }, { "entity", F_ENTITY },
        { "source", F_SOURCE }, { "causation", F_CAUSATION }, { "meta", F_META },
        { "data", F_DATA }, { "seq", F_SEQ }
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys [0]; i++)
        if (strlen (keys [i].name) == key->size
        &&  memcmp (keys [i].name, key->ptr, key->size) == 0)
            return keys [i].flag;
    return 0;
}

static int
s_decode_map_field (const char *key, const msgpack_object *value, uint8_t **slot,
                    size_t *slot_size, char *err, size_t errlen)
{
    if (value->type != MSGPACK_OBJECT_MAP) {
        snprintf (err, errlen, "%s must be a map", key);
        return -1;
    }
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_object (&pk, *value);
    *slot_size = sbuf.size;
    *slot = (uint8_t *) msgpack_sbuffer_release (&sbuf);
    return 0;
}

static int
s_decode_field (pond_event_t *self, int flag, const msgpack_object *value,
                char *err, size_t errlen)
{
    switch (flag) {
        case F_ID:
        case F_CAUSATION: {
            const char *key = flag == F_ID? "id": "causation";
            if (value->type != MSGPACK_OBJECT_BIN || value->via.bin.size != POND_ID_SIZE) {
                snprintf (err, errlen, "%s must be 16 bytes of bin (a UUID)", key);
                return -1;
            }
            memcpy (flag == F_ID? self->id: self->causation, value->via.bin.ptr, POND_ID_SIZE);
            if (flag == F_CAUSATION)
                self->has_causation = true;
            else
            if (s_is_nil_id (self->id)) {
                snprintf (err, errlen, "id must not be the nil UUID");
                return -1;
            }
            return 0;
        }
        case F_NAME:
            if (value->type != MSGPACK_OBJECT_STR) {
                snprintf (err, errlen, "name must be a str");
                return -1;
            }
            if (s_check_name (value->via.str.ptr, value->via.str.size, err, errlen))
                return -1;
            memcpy (self->name, value->via.str.ptr, value->via.str.size);
            self->name [value->via.str.size] = 0;
            return 0;
        case F_ENTITY:
        case F_SOURCE: {
            const char *key = flag == F_ENTITY? "entity": "source";
            if (value->type != MSGPACK_OBJECT_STR) {
                snprintf (err, errlen, "%s must be a str", key);
                return -1;
            }
            if (s_check_label (key, value->via.str.ptr, value->via.str.size, err, errlen))
                return -1;
            char *field = flag == F_ENTITY? self->entity: self->source;
            memcpy (field, value->via.str.ptr, value->via.str.size);
            field [value->via.str.size] = 0;
            return 0;
        }
        case F_TS:
        case F_SEQ: {
            const char *key = flag == F_TS? "ts": "seq";
            if (value->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
                snprintf (err, errlen, "%s must be a positive integer", key);
                return -1;
            }
            if (flag == F_TS)
                return s_check_ts (self->ts = value->via.u64, err, errlen);
            if (value->via.u64 == 0) {
                snprintf (err, errlen, "seq starts at 1");
                return -1;
            }
            self->seq = value->via.u64;
            return 0;
        }
        case F_META:
            return s_decode_map_field ("meta", value, &self->meta, &self->meta_size, err, errlen);
        case F_DATA:
            return s_decode_map_field ("data", value, &self->data, &self->data_size, err, errlen);
    }
    return -1;
}

static int
s_decode_object (pond_event_t *self, const msgpack_object *root, char *err, size_t errlen)
{
    if (root->type != MSGPACK_OBJECT_MAP) {
        snprintf (err, errlen, "an event must be a msgpack map");
        return -1;
    }
    int seen = 0;
    for (uint32_t i = 0; i < root->via.map.size; i++) {
        const msgpack_object_kv *kv = &root->via.map.ptr [i];
        if (kv->key.type != MSGPACK_OBJECT_STR) {
            snprintf (err, errlen, "event keys must be str");
            return -1;
        }
        int flag = s_key_flag (&kv->key.via.str);
        if (!flag) {
            snprintf (err, errlen, "unknown key '%.*s' (see PROTOCOL.md)",
                      (int) (kv->key.via.str.size > 32? 32: kv->key.via.str.size),
                      kv->key.via.str.ptr);
            return -1;
        }
        if (seen & flag) {
            snprintf (err, errlen, "key '%.*s' given twice",
                      (int) kv->key.via.str.size, kv->key.via.str.ptr);
            return -1;
        }
        seen |= flag;
        if (s_decode_field (self, flag, &kv->val, err, errlen))
            return -1;
    }
    const int required [] = { F_ID, F_NAME, F_TS, F_ENTITY };
    const char *names [] = { "id", "name", "ts", "entity" };
    for (int i = 0; i < 4; i++)
        if (!(seen & required [i])) {
            snprintf (err, errlen, "missing required key '%s'", names [i]);
            return -1;
        }
    return 0;
}

//  Decode the first event of data; its size in *used_p. With exact, data
//  must hold that one event and nothing after it.
static pond_event_t *
s_decode (const uint8_t *data, size_t size, bool exact, size_t *used_p,
          char *err, size_t errlen)
{
    if (exact && size > POND_EVENT_MAX_SIZE) {
        snprintf (err, errlen, "event is %zu bytes; the limit is %d", size, POND_EVENT_MAX_SIZE);
        return NULL;
    }
    size_t used;
    //  The envelope is one level; data and meta nest up to 16 inside it
    if (pond_value_check_depth (data, size, POND_VALUE_MAX_DEPTH + 1, &used, err, errlen))
        return NULL;
    if (exact && used != size) {
        snprintf (err, errlen, "%zu trailing bytes after the event map", size - used);
        return NULL;
    }
    if (used > POND_EVENT_MAX_SIZE) {
        snprintf (err, errlen, "event is %zu bytes; the limit is %d", used, POND_EVENT_MAX_SIZE);
        return NULL;
    }
    *used_p = used;
    size = used;
    pond_event_t *self = (pond_event_t *) zmalloc (sizeof (pond_event_t));
    if (!self) {
        snprintf (err, errlen, "out of memory");
        return NULL;
    }
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    int rc = -1;
    if (msgpack_unpack_next (&unpacked, (const char *) data, size, NULL) != MSGPACK_UNPACK_SUCCESS)
        snprintf (err, errlen, "not valid msgpack");
    else
        rc = s_decode_object (self, &unpacked.data, err, errlen);
    msgpack_unpacked_destroy (&unpacked);
    if (rc)
        pond_event_destroy (&self);
    return self;
}

pond_event_t *
pond_event_decode (const uint8_t *data, size_t size, char *err, size_t errlen)
{
    size_t used;
    return s_decode (data, size, true, &used, err, errlen);
}

pond_event_t *
pond_event_decode_next (const uint8_t *data, size_t size, size_t *used_p,
                        char *err, size_t errlen)
{
    return s_decode (data, size, false, used_p, err, errlen);
}

//  ---------------------------------------------------------------------
//  JSON rendering

static void
s_add_raw_uint (cJSON *object, const char *key, uint64_t value)
{
    char text [24];
    snprintf (text, sizeof text, "%llu", (unsigned long long) value);
    cJSON_AddRawToObject (object, key, text);
}

static void
s_add_map_json (cJSON *object, const char *key, const uint8_t *data, size_t size)
{
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    if (msgpack_unpack_next (&unpacked, (const char *) data, size, NULL) == MSGPACK_UNPACK_SUCCESS) {
        cJSON *item = pond_value_to_cjson (&unpacked.data);
        if (item)
            cJSON_AddItemToObject (object, key, item);
    }
    msgpack_unpacked_destroy (&unpacked);
}

char *
pond_event_to_json (const pond_event_t *self)
{
    cJSON *object = cJSON_CreateObject ();
    if (!object)
        return NULL;
    char text [POND_UUID_STR_SIZE + 8];
    if (self->seq)
        s_add_raw_uint (object, "seq", self->seq);
    pond_uuid_format (self->id, text);
    cJSON_AddStringToObject (object, "id", text);
    cJSON_AddStringToObject (object, "name", self->name);
    s_add_raw_uint (object, "ts", self->ts);
    pond_time_format (self->ts, text, sizeof text);
    cJSON_AddStringToObject (object, "time", text);
    cJSON_AddStringToObject (object, "entity", self->entity);
    if (*self->source)
        cJSON_AddStringToObject (object, "source", self->source);
    if (self->has_causation) {
        pond_uuid_format (self->causation, text);
        cJSON_AddStringToObject (object, "causation", text);
    }
    if (self->meta)
        s_add_map_json (object, "meta", self->meta, self->meta_size);
    if (self->data)
        s_add_map_json (object, "data", self->data, self->data_size);
    char *json = cJSON_PrintUnformatted (object);
    cJSON_Delete (object);
    return json;
}
