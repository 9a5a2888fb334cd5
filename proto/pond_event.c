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

//  A msgpack map (data or meta): NULL when absent
typedef struct {
    uint8_t *bytes;    //  malloc'd, or in the event's block
    size_t size;
    bool in_block;
} s_slot_t;

struct _pond_event_t {
    uint8_t id [POND_ID_SIZE];
    char name [POND_NAME_MAX + 1];
    uint64_t ts;
    char entity [POND_ENTITY_MAX + 1];
    char source [POND_ENTITY_MAX + 1];
    bool has_causation;
    uint8_t causation [POND_ID_SIZE];
    s_slot_t meta;
    s_slot_t data;
    uint64_t seq;
    //  A decoded event holds its data and meta here, in the same malloc
    size_t block_used;
    uint8_t block [];
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
    if (!pond_value_utf8_valid ((const uint8_t *) text, len)) {
        snprintf (err, errlen, "%s must be valid UTF-8", key);
        return -1;
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

static void
s_slot_clear (s_slot_t *slot)
{
    if (!slot->in_block)
        free (slot->bytes);
    slot->bytes = NULL;
    slot->size = 0;
    slot->in_block = false;
}

void
pond_event_destroy (pond_event_t **self_p)
{
    if (self_p && *self_p) {
        pond_event_t *self = *self_p;
        s_slot_clear (&self->meta);
        s_slot_clear (&self->data);
        free (self);
        *self_p = NULL;
    }
}

static uint8_t *
s_memdup (const uint8_t *data, size_t size)
{
    uint8_t *copy = (uint8_t *) malloc (size ? size : 1);
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
    copy->meta.bytes = self->meta.bytes ? s_memdup (self->meta.bytes, self->meta.size) : NULL;
    copy->data.bytes = self->data.bytes ? s_memdup (self->data.bytes, self->data.size) : NULL;
    copy->meta.in_block = copy->data.in_block = false;
    copy->block_used = 0;
    if ((self->meta.bytes && !copy->meta.bytes) || (self->data.bytes && !copy->data.bytes)) {
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
    return s_set_text (self->source, sizeof self->source, source ? source : "");
}

const uint8_t *
pond_event_causation (const pond_event_t *self)
{
    return self->has_causation ? self->causation : NULL;
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
    *size_p = self->data.size;
    return self->data.bytes;
}

const uint8_t *
pond_event_meta (const pond_event_t *self, size_t *size_p)
{
    *size_p = self->meta.size;
    return self->meta.bytes;
}

//  Replace a data/meta slot with a copy of msgpack bytes holding one map.
static int
s_set_map (const char *key, s_slot_t *slot, const uint8_t *msgpack, size_t size, char *err,
           size_t errlen)
{
    if (!msgpack) {
        s_slot_clear (slot);
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
    if (pond_value_check_portable (msgpack, size, key, err, errlen))
        return -1;
    uint8_t *copy = s_memdup (msgpack, size);
    if (!copy) {
        snprintf (err, errlen, "out of memory");
        return -1;
    }
    s_slot_clear (slot);
    slot->bytes = copy;
    slot->size = size;
    return 0;
}

int
pond_event_set_data (pond_event_t *self, const uint8_t *msgpack, size_t size, char *err,
                     size_t errlen)
{
    return s_set_map ("data", &self->data, msgpack, size, err, errlen);
}

int
pond_event_set_meta (pond_event_t *self, const uint8_t *msgpack, size_t size, char *err,
                     size_t errlen)
{
    return s_set_map ("meta", &self->meta, msgpack, size, err, errlen);
}

static int
s_set_map_json (const char *key, s_slot_t *slot, const char *json, char *err, size_t errlen)
{
    char reason [POND_ERR_SIZE];
    size_t size;
    uint8_t *msgpack = pond_value_from_json (json, &size, reason, sizeof reason);
    if (!msgpack) {
        snprintf (err, errlen, "%s: %s", key, reason);
        return -1;
    }
    int rc = s_set_map (key, slot, msgpack, size, err, errlen);
    free (msgpack);
    return rc;
}

int
pond_event_set_data_json (pond_event_t *self, const char *json, char *err, size_t errlen)
{
    return s_set_map_json ("data", &self->data, json, err, errlen);
}

int
pond_event_set_meta_json (pond_event_t *self, const char *json, char *err, size_t errlen)
{
    return s_set_map_json ("meta", &self->meta, json, err, errlen);
}

int
pond_event_validate (const pond_event_t *self, char *err, size_t errlen)
{
    if (s_is_nil_id (self->id)) {
        snprintf (err, errlen, "id must be a 16-byte UUID, not all zeros");
        return -1;
    }
    if (s_check_name (self->name, strlen (self->name), err, errlen)
        || s_check_ts (self->ts, err, errlen)
        || s_check_label ("entity", self->entity, strlen (self->entity), err, errlen))
        return -1;
    if (*self->source && s_check_label ("source", self->source, strlen (self->source), err, errlen))
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

//  The encoder computes the size of the event first and packs it into a
//  buffer of exactly that size (an sbuffer would hold 8 KiB per event).
typedef struct {
    uint8_t *data;
    size_t size;
    size_t capacity;
} s_writer_t;

static int
s_write (void *data, const char *buf, size_t len)
{
    s_writer_t *self = (s_writer_t *) data;
    if (len > self->capacity - self->size)
        return -1;
    memcpy (self->data + self->size, buf, len);
    self->size += len;
    return 0;
}

//  Bytes msgpack_pack_str and msgpack_pack_uint64 give
static size_t
s_str_size (size_t len)
{
    return len + (len < 32 ? 1 : len < 256 ? 2 : len < 65536 ? 3 : 5);
}

static size_t
s_uint_size (uint64_t value)
{
    return value < 128 ? 1 : value < 256 ? 2 : value < 65536 ? 3 : value <= UINT32_MAX ? 5 : 9;
}

uint8_t *
pond_event_encode (const pond_event_t *self, size_t *size_p, char *err, size_t errlen)
{
    if (pond_event_validate (self, err, errlen))
        return NULL;
    size_t count = 4 + (*self->source != 0) + self->has_causation + (self->meta.bytes != NULL)
                 + (self->data.bytes != NULL) + (self->seq != 0);
    //  A map of at most 9 keys has a one-byte header; a UUID is a bin8
    size_t size = 1 + s_str_size (2) + 2 + POND_ID_SIZE + s_str_size (4)
                + s_str_size (strlen (self->name)) + s_str_size (2) + s_uint_size (self->ts)
                + s_str_size (6) + s_str_size (strlen (self->entity));
    if (*self->source)
        size += s_str_size (6) + s_str_size (strlen (self->source));
    if (self->has_causation)
        size += s_str_size (9) + 2 + POND_ID_SIZE;
    if (self->meta.bytes)
        size += s_str_size (4) + self->meta.size;
    if (self->data.bytes)
        size += s_str_size (4) + self->data.size;
    if (self->seq)
        size += s_str_size (3) + s_uint_size (self->seq);
    if (size > POND_EVENT_MAX_SIZE) {
        snprintf (err, errlen, "event is %zu bytes; the limit is %d", size, POND_EVENT_MAX_SIZE);
        return NULL;
    }
    s_writer_t writer = { (uint8_t *) malloc (size), 0, size };
    if (!writer.data) {
        snprintf (err, errlen, "out of memory");
        return NULL;
    }
    msgpack_packer pk;
    msgpack_packer_init (&pk, &writer, s_write);
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
    if (self->meta.bytes) {
        s_pack_key (&pk, "meta");
        s_write (&writer, (const char *) self->meta.bytes, self->meta.size);
    }
    if (self->data.bytes) {
        s_pack_key (&pk, "data");
        s_write (&writer, (const char *) self->data.bytes, self->data.size);
    }
    if (self->seq) {
        s_pack_key (&pk, "seq");
        msgpack_pack_uint64 (&pk, self->seq);
    }
    if (writer.size != size) {
        //  Not reached: the sizes above are msgpack-c's
        snprintf (err, errlen, "encoder wrote %zu bytes, not the %zu it computed", writer.size,
                  size);
        free (writer.data);
        return NULL;
    }
    *size_p = size;
    return writer.data;
}

//  ---------------------------------------------------------------------
//  Decoder
//
//  pond_value_check_spans walks the whole event first, without
//  allocating: every declared length fits the buffer and nesting is
//  bounded; it says where each key and value of the envelope lies. The
//  envelope is then read in place (no msgpack_unpacked, no zone, one
//  malloc per event), and data and meta are copied as they are into the
//  event's own block when they are in canonical form (nearly always: it
//  is what every encoder gives). Only a map with a wider encoding than
//  needed, or a NaN float, goes through msgpack_unpack_next and
//  msgpack_pack_object, which is what every map went through before, so
//  a decoded event holds the same bytes as it always did.

enum {
    F_ID = 1,
    F_NAME = 2,
    F_TS = 4,
    F_ENTITY = 8,
    F_SOURCE = 16,
    F_CAUSATION = 32,
    F_META = 64,
    F_DATA = 128,
    F_SEQ = 256
};

//  What the cursor sees: the msgpack_object types the envelope cares about
typedef enum { S_STR, S_BIN, S_UINT, S_NEGATIVE, S_MAP, S_OTHER } s_kind_t;

typedef struct {
    s_kind_t kind;
    const uint8_t *ptr;    //  Body of a str or bin
    uint64_t value;        //  Length of a str or bin, a uint, a map's count
} s_item_t;

static uint64_t
s_be (const uint8_t *at, size_t n)
{
    uint64_t value = 0;
    for (size_t i = 0; i < n; i++)
        value = (value << 8) | at [i];
    return value;
}

//  Read the object at *at_p, which pond_value_check_spans has walked (so
//  every length fits). Moves past a str, a bin or an integer; leaves *at_p on a
//  map (its header included) and on anything else.
static void
s_read_item (const uint8_t **at_p, s_item_t *item)
{
    const uint8_t *at = *at_p;
    uint8_t tag = *at;
    size_t header = 1;
    item->kind = S_OTHER;
    if (tag <= 0x7f) {
        item->kind = S_UINT;
        item->value = tag;
    }
    else if (tag >= 0xe0)
        item->kind = S_NEGATIVE;
    else if (tag >= 0xa0 && tag <= 0xbf) {
        item->kind = S_STR;
        item->value = tag & 0x1f;
    }
    else if (tag >= 0x80 && tag <= 0x8f) {
        item->kind = S_MAP;
        item->value = tag & 0x0f;
        return;
    }
    else
        switch (tag) {
            case 0xd9:
            case 0xda:
            case 0xdb:
                header = 1 + ((size_t) 1 << (tag - 0xd9));
                item->kind = S_STR;
                item->value = s_be (at + 1, header - 1);
                break;
            case 0xc4:
            case 0xc5:
            case 0xc6:
                header = 1 + ((size_t) 1 << (tag - 0xc4));
                item->kind = S_BIN;
                item->value = s_be (at + 1, header - 1);
                break;
            case 0xcc:
            case 0xcd:
            case 0xce:
            case 0xcf:
                header = 1 + ((size_t) 1 << (tag - 0xcc));
                item->kind = S_UINT;
                item->value = s_be (at + 1, header - 1);
                break;
            case 0xd0:
            case 0xd1:
            case 0xd2:
            case 0xd3: {
                //  msgpack-c makes a non-negative signed integer a positive one
                size_t n = (size_t) 1 << (tag - 0xd0);
                uint64_t raw = s_be (at + 1, n);
                bool negative = (raw >> (n * 8 - 1)) & 1;
                header = 1 + n;
                item->kind = negative ? S_NEGATIVE : S_UINT;
                item->value = raw;
                break;
            }
            case 0xde:
            case 0xdf:
                item->kind = S_MAP;
                item->value = s_be (at + 1, tag == 0xde ? 2 : 4);
                return;
            default: return;
        }
    if (item->kind == S_STR || item->kind == S_BIN) {
        item->ptr = at + header;
        header += item->value;
    }
    *at_p = at + header;
}

static int
s_key_flag (const uint8_t *key, uint64_t size)
{
    switch (size) {
        case 2:
            if (memcmp (key, "id", 2) == 0)
                return F_ID;
            if (memcmp (key, "ts", 2) == 0)
                return F_TS;
            return 0;
        case 3: return memcmp (key, "seq", 3) == 0 ? F_SEQ : 0;
        case 4:
            if (memcmp (key, "name", 4) == 0)
                return F_NAME;
            if (memcmp (key, "meta", 4) == 0)
                return F_META;
            if (memcmp (key, "data", 4) == 0)
                return F_DATA;
            return 0;
        case 6:
            if (memcmp (key, "entity", 6) == 0)
                return F_ENTITY;
            if (memcmp (key, "source", 6) == 0)
                return F_SOURCE;
            return 0;
        case 9: return memcmp (key, "causation", 9) == 0 ? F_CAUSATION : 0;
    }
    return 0;
}

//  The map of span into a data/meta slot: copied as it is into the
//  event's own block when canonical, re-packed by msgpack-c otherwise.
static int
s_decode_map_field (pond_event_t *self, const uint8_t *data, const pond_value_span_t *span,
                    s_slot_t *slot, char *err, size_t errlen)
{
    const uint8_t *at = data + span->start;
    size_t size = span->end - span->start;
    if (span->canonical) {
        slot->bytes = self->block + self->block_used;
        slot->size = size;
        slot->in_block = true;
        memcpy (slot->bytes, at, size);
        self->block_used += size;
        return 0;
    }
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    int rc = -1;
    if (msgpack_unpack_next (&unpacked, (const char *) at, size, NULL) != MSGPACK_UNPACK_SUCCESS)
        snprintf (err, errlen, "not valid msgpack");
    else {
        msgpack_sbuffer sbuf;
        msgpack_sbuffer_init (&sbuf);
        msgpack_packer pk;
        msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
        if (msgpack_pack_object (&pk, unpacked.data) == 0 && sbuf.size) {
            slot->size = sbuf.size;
            slot->bytes = (uint8_t *) msgpack_sbuffer_release (&sbuf);
            rc = 0;
        }
        else {
            msgpack_sbuffer_destroy (&sbuf);
            snprintf (err, errlen, "out of memory");
        }
    }
    msgpack_unpacked_destroy (&unpacked);
    return rc;
}

//  Copy a str into a fixed text field; its length is checked already.
static void
s_copy_text (char *field, const s_item_t *item)
{
    memcpy (field, item->ptr, (size_t) item->value);
    field [item->value] = 0;
}

//  Decode the value of one envelope key, which lies in span of data.
static int
s_decode_field (pond_event_t *self, int flag, const uint8_t *data, const pond_value_span_t *span,
                char *err, size_t errlen)
{
    s_item_t item;
    const uint8_t *at = data + span->start;
    s_read_item (&at, &item);
    switch (flag) {
        case F_ID:
        case F_CAUSATION: {
            const char *key = flag == F_ID ? "id" : "causation";
            if (item.kind != S_BIN || item.value != POND_ID_SIZE) {
                snprintf (err, errlen, "%s must be 16 bytes of bin (a UUID)", key);
                return -1;
            }
            memcpy (flag == F_ID ? self->id : self->causation, item.ptr, POND_ID_SIZE);
            if (flag == F_CAUSATION)
                self->has_causation = true;
            else if (s_is_nil_id (self->id)) {
                snprintf (err, errlen, "id must not be the nil UUID");
                return -1;
            }
            return 0;
        }
        case F_NAME:
            if (item.kind != S_STR) {
                snprintf (err, errlen, "name must be a str");
                return -1;
            }
            if (s_check_name ((const char *) item.ptr, (size_t) item.value, err, errlen))
                return -1;
            s_copy_text (self->name, &item);
            return 0;
        case F_ENTITY:
        case F_SOURCE: {
            const char *key = flag == F_ENTITY ? "entity" : "source";
            if (item.kind != S_STR) {
                snprintf (err, errlen, "%s must be a str", key);
                return -1;
            }
            if (s_check_label (key, (const char *) item.ptr, (size_t) item.value, err, errlen))
                return -1;
            s_copy_text (flag == F_ENTITY ? self->entity : self->source, &item);
            return 0;
        }
        case F_TS:
        case F_SEQ: {
            const char *key = flag == F_TS ? "ts" : "seq";
            if (item.kind != S_UINT) {
                snprintf (err, errlen, "%s must be a positive integer", key);
                return -1;
            }
            if (flag == F_TS)
                return s_check_ts (self->ts = item.value, err, errlen);
            if (item.value == 0) {
                snprintf (err, errlen, "seq starts at 1");
                return -1;
            }
            self->seq = item.value;
            return 0;
        }
        case F_META:
        case F_DATA: {
            const char *key = flag == F_META ? "meta" : "data";
            if (item.kind != S_MAP) {
                snprintf (err, errlen, "%s must be a map", key);
                return -1;
            }
            //  The walk saw only ASCII strs, str keys and no ext: nothing
            //  to check again; else the full check, which names the key
            if (!span->plain
                && pond_value_check_portable (data + span->start, span->end - span->start, key, err,
                                              errlen))
                return -1;
            return s_decode_map_field (self, data, span, flag == F_META ? &self->meta : &self->data,
                                       err, errlen);
        }
    }
    return -1;
}

//  Each key of the envelope is known and given once, so a map of more
//  than this many children is refused by the time its 10th key is read
#define S_SPANS_MAX 18

//  Decode the envelope map at data, whose children lie in spans, into self.
static int
s_decode_map (pond_event_t *self, const uint8_t *data, const pond_value_span_t *spans,
              size_t nspans, char *err, size_t errlen)
{
    const uint8_t *at = data;
    s_item_t root;
    s_read_item (&at, &root);
    if (root.kind != S_MAP) {
        snprintf (err, errlen, "an event must be a msgpack map");
        return -1;
    }
    int seen = 0;
    for (uint64_t i = 0; i < root.value; i++) {
        //  A 10th key has no span: it is read where the 9th value ends
        at = data + (2 * i < nspans ? spans [2 * i].start : spans [nspans - 1].end);
        s_item_t key;
        s_read_item (&at, &key);
        if (key.kind != S_STR) {
            snprintf (err, errlen, "event keys must be str");
            return -1;
        }
        int flag = s_key_flag (key.ptr, key.value);
        if (!flag) {
            snprintf (err, errlen, "unknown key '%.*s' (see PROTOCOL.md)",
                      (int) (key.value > 32 ? 32 : key.value), (const char *) key.ptr);
            pond_value_utf8_sanitize (err);    //  a reason is a str: keep it UTF-8
            return -1;
        }
        if (seen & flag) {
            snprintf (err, errlen, "key '%.*s' given twice", (int) key.value,
                      (const char *) key.ptr);
            return -1;
        }
        seen |= flag;
        if (2 * i + 1 >= nspans) {
            snprintf (err, errlen, "more keys than an event has");
            return -1;    //  Not reached: see S_SPANS_MAX
        }
        if (s_decode_field (self, flag, data, &spans [2 * i + 1], err, errlen))
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
s_decode (const uint8_t *data, size_t size, bool exact, size_t *used_p, char *err, size_t errlen)
{
    if (exact && size > POND_EVENT_MAX_SIZE) {
        snprintf (err, errlen, "event is %zu bytes; the limit is %d", size, POND_EVENT_MAX_SIZE);
        return NULL;
    }
    size_t used;
    pond_value_span_t spans [S_SPANS_MAX];
    size_t nspans = 0;
    //  The envelope is one level; data and meta nest up to 16 inside it
    if (pond_value_check_spans (data, size, POND_VALUE_MAX_DEPTH + 1, &used, NULL, spans,
                                S_SPANS_MAX, &nspans, err, errlen))
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
    //  One block holds the event and its data and meta, which are smaller
    //  than the event's bytes
    pond_event_t *self = (pond_event_t *) malloc (sizeof (pond_event_t) + used);
    if (!self) {
        snprintf (err, errlen, "out of memory");
        return NULL;
    }
    memset (self, 0, sizeof (pond_event_t));
    if (s_decode_map (self, data, spans, nspans, err, errlen))
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
pond_event_decode_next (const uint8_t *data, size_t size, size_t *used_p, char *err, size_t errlen)
{
    return s_decode (data, size, false, used_p, err, errlen);
}

bool
pond_event_peek_id (const uint8_t *data, size_t size, uint8_t *id)
{
    if (!data || size == 0)
        return false;
    uint8_t tag = data [0];
    size_t pos = 1;
    uint64_t count;
    if (tag >= 0x80 && tag <= 0x8f)
        count = tag & 0x0f;
    else if ((tag == 0xde && size >= 3) || (tag == 0xdf && size >= 5)) {
        pos = tag == 0xde ? 3 : 5;
        count = s_be (data + 1, pos - 1);
    }
    else
        return false;
    //  Keys are read as they come; each value is skipped by the bounded
    //  check (one object), so a bad value ends the search, not a crash
    char err [64];
    for (uint64_t i = 0; i < count && pos < size; i++) {
        size_t used;
        if (pond_value_check (data + pos, size - pos, &used, err, sizeof err))
            return false;
        bool is_id = used == 3 && data [pos] == 0xa2 && memcmp (data + pos + 1, "id", 2) == 0;
        pos += used;
        if (is_id) {
            if (size - pos < 2 + POND_ID_SIZE || data [pos] != 0xc4
                || data [pos + 1] != POND_ID_SIZE || s_is_nil_id (data + pos + 2))
                return false;
            memcpy (id, data + pos + 2, POND_ID_SIZE);
            return true;
        }
        if (pond_value_check (data + pos, size - pos, &used, err, sizeof err))
            return false;
        pos += used;
    }
    return false;
}

//  ---------------------------------------------------------------------
//  JSON rendering

static void
s_add_map_json (cJSON *object, const char *key, const uint8_t *data, size_t size)
{
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    if (msgpack_unpack_next (&unpacked, (const char *) data, size, NULL)
        == MSGPACK_UNPACK_SUCCESS) {
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
        pond_value_json_add_uint (object, "seq", self->seq);
    pond_uuid_format (self->id, text);
    cJSON_AddStringToObject (object, "id", text);
    cJSON_AddStringToObject (object, "name", self->name);
    pond_value_json_add_uint (object, "ts", self->ts);
    pond_time_format (self->ts, text, sizeof text);
    cJSON_AddStringToObject (object, "time", text);
    cJSON_AddStringToObject (object, "entity", self->entity);
    if (*self->source)
        cJSON_AddStringToObject (object, "source", self->source);
    if (self->has_causation) {
        pond_uuid_format (self->causation, text);
        cJSON_AddStringToObject (object, "causation", text);
    }
    if (self->meta.bytes)
        s_add_map_json (object, "meta", self->meta.bytes, self->meta.size);
    if (self->data.bytes)
        s_add_map_json (object, "data", self->data.bytes, self->data.size);
    char *json = cJSON_PrintUnformatted (object);
    cJSON_Delete (object);
    return json;
}
