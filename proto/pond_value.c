/*  pond_value: checks and JSON conversions for event data and meta maps.
    See pond_value.h.
*/
#include "pond_value.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  ---------------------------------------------------------------------
//  Bounded structural check

typedef struct {
    const uint8_t *data;
    size_t size;
    size_t pos;
    int max_depth;
    char *err;
    size_t errlen;
} s_reader_t;

static int
s_fail (s_reader_t *self, const char *reason)
{
    snprintf (self->err, self->errlen, "%s at byte %zu", reason, self->pos);
    return -1;
}

//  Read a big-endian unsigned of n bytes; -1 if truncated.
static int
s_read_uint (s_reader_t *self, size_t n, uint64_t *value)
{
    if (self->size - self->pos < n)
        return s_fail (self, "truncated msgpack");
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | self->data [self->pos + i];
    self->pos += n;
    *value = v;
    return 0;
}

static int
s_skip (s_reader_t *self, uint64_t n)
{
    if (self->size - self->pos < n)
        return s_fail (self, "truncated msgpack");
    self->pos += n;
    return 0;
}

static int s_check_object (s_reader_t *self, int depth);

//  Children of a container: each child needs at least one byte, so a count
//  larger than what remains is a lie we refuse before anyone allocates.
static int
s_check_children (s_reader_t *self, uint64_t count, int depth)
{
    if (depth >= self->max_depth)
        return s_fail (self, "msgpack nested too deep");
    if (count > self->size - self->pos)
        return s_fail (self, "msgpack container longer than its buffer");
    for (uint64_t i = 0; i < count; i++)
        if (s_check_object (self, depth + 1))
            return -1;
    return 0;
}

static int
s_check_object (s_reader_t *self, int depth)
{
    if (self->pos >= self->size)
        return s_fail (self, "truncated msgpack");
    uint8_t tag = self->data [self->pos++];
    uint64_t n;
    if (tag <= 0x7f || tag >= 0xe0 || tag == 0xc0 || tag == 0xc2 || tag == 0xc3)
        return 0;                               //  fixint, nil, bool
    if (tag >= 0x80 && tag <= 0x8f)
        return s_check_children (self, (uint64_t) (tag & 0x0f) * 2, depth);
    if (tag >= 0x90 && tag <= 0x9f)
        return s_check_children (self, tag & 0x0f, depth);
    if (tag >= 0xa0 && tag <= 0xbf)
        return s_skip (self, tag & 0x1f);
    switch (tag) {
        case 0xc4: case 0xd9:                   //  bin8, str8
            return s_read_uint (self, 1, &n) ? -1 : s_skip (self, n);
        case 0xc5: case 0xda:
            return s_read_uint (self, 2, &n) ? -1 : s_skip (self, n);
        case 0xc6: case 0xdb:
            return s_read_uint (self, 4, &n) ? -1 : s_skip (self, n);
        case 0xc7:                              //  ext8/16/32: len, type, body
            return s_read_uint (self, 1, &n) ? -1 : s_skip (self, n + 1);
        case 0xc8:
            return s_read_uint (self, 2, &n) ? -1 : s_skip (self, n + 1);
        case 0xc9:
            return s_read_uint (self, 4, &n) ? -1 : s_skip (self, n + 1);
        case 0xca: return s_skip (self, 4);     //  float32
        case 0xcb: return s_skip (self, 8);     //  float64
        case 0xcc: case 0xd0: return s_skip (self, 1);
        case 0xcd: case 0xd1: return s_skip (self, 2);
        case 0xce: case 0xd2: return s_skip (self, 4);
        case 0xcf: case 0xd3: return s_skip (self, 8);
        case 0xd4: return s_skip (self, 2);     //  fixext 1..16
        case 0xd5: return s_skip (self, 3);
        case 0xd6: return s_skip (self, 5);
        case 0xd7: return s_skip (self, 9);
        case 0xd8: return s_skip (self, 17);
        case 0xdc:
            return s_read_uint (self, 2, &n) ? -1 : s_check_children (self, n, depth);
        case 0xdd:
            return s_read_uint (self, 4, &n) ? -1 : s_check_children (self, n, depth);
        case 0xde:
            return s_read_uint (self, 2, &n) ? -1 : s_check_children (self, n * 2, depth);
        case 0xdf:
            return s_read_uint (self, 4, &n) ? -1 : s_check_children (self, n * 2, depth);
        default:
            self->pos--;
            return s_fail (self, "invalid msgpack type byte");
    }
}

int
pond_value_check (const uint8_t *data, size_t size, size_t *used_p, char *err, size_t errlen)
{
    return pond_value_check_depth (data, size, POND_VALUE_MAX_DEPTH, used_p, err, errlen);
}

int
pond_value_check_depth (const uint8_t *data, size_t size, int max_depth,
                        size_t *used_p, char *err, size_t errlen)
{
    s_reader_t reader = { data, size, 0, max_depth, err, errlen };
    if (!data || size == 0) {
        snprintf (err, errlen, "empty msgpack");
        return -1;
    }
    if (s_check_object (&reader, 0))
        return -1;
    if (used_p)
        *used_p = reader.pos;
    return 0;
}

//  ---------------------------------------------------------------------
//  msgpack -> JSON

static cJSON *
s_raw_number (const char *format, ...) __attribute__ ((format (printf, 1, 2)));

static cJSON *
s_raw_number (const char *format, ...)
{
    char text [32];
    va_list args;
    va_start (args, format);
    vsnprintf (text, sizeof text, format, args);
    va_end (args);
    return cJSON_CreateRaw (text);
}

static cJSON *
s_hex_string (const uint8_t *data, size_t size)
{
    char *hex = malloc (size * 2 + 1);
    if (!hex)
        return NULL;
    for (size_t i = 0; i < size; i++)
        sprintf (hex + i * 2, "%02x", data [i]);
    hex [size * 2] = 0;
    cJSON *item = cJSON_CreateString (hex);
    free (hex);
    return item;
}

static cJSON *
s_string (const char *data, size_t size)
{
    char *text = malloc (size + 1);
    if (!text)
        return NULL;
    if (size)                           //  msgpack-c gives NULL for ""
        memcpy (text, data, size);
    text [size] = 0;
    cJSON *item = cJSON_CreateString (text);
    free (text);
    return item;
}

cJSON *
pond_value_to_cjson (const msgpack_object *obj)
{
    switch (obj->type) {
        case MSGPACK_OBJECT_NIL:
            return cJSON_CreateNull ();
        case MSGPACK_OBJECT_BOOLEAN:
            return cJSON_CreateBool (obj->via.boolean);
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            return s_raw_number ("%" PRIu64, obj->via.u64);
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            return s_raw_number ("%" PRId64, obj->via.i64);
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
            if (isfinite (obj->via.f64))
                return cJSON_CreateNumber (obj->via.f64);
            return cJSON_CreateNull ();         //  JSON has no NaN or Inf
        case MSGPACK_OBJECT_STR:
            return s_string (obj->via.str.ptr, obj->via.str.size);
        case MSGPACK_OBJECT_BIN:
            return s_hex_string ((const uint8_t *) obj->via.bin.ptr, obj->via.bin.size);
        case MSGPACK_OBJECT_EXT:
            return s_hex_string ((const uint8_t *) obj->via.ext.ptr, obj->via.ext.size);
        case MSGPACK_OBJECT_ARRAY: {
            cJSON *array = cJSON_CreateArray ();
            for (uint32_t i = 0; array && i < obj->via.array.size; i++) {
                cJSON *item = pond_value_to_cjson (&obj->via.array.ptr [i]);
                if (!item) {
                    cJSON_Delete (array);
                    return NULL;
                }
                cJSON_AddItemToArray (array, item);
            }
            return array;
        }
        case MSGPACK_OBJECT_MAP: {
            cJSON *map = cJSON_CreateObject ();
            for (uint32_t i = 0; map && i < obj->via.map.size; i++) {
                const msgpack_object *key = &obj->via.map.ptr [i].key;
                char *name;
                if (key->type == MSGPACK_OBJECT_STR) {
                    name = malloc (key->via.str.size + 1);
                    if (name) {
                        if (key->via.str.size)  //  msgpack-c gives NULL for ""
                            memcpy (name, key->via.str.ptr, key->via.str.size);
                        name [key->via.str.size] = 0;
                    }
                }
                else {
                    cJSON *key_json = pond_value_to_cjson (key);
                    name = key_json? cJSON_PrintUnformatted (key_json): NULL;
                    cJSON_Delete (key_json);
                }
                cJSON *item = name? pond_value_to_cjson (&obj->via.map.ptr [i].val): NULL;
                if (!item) {
                    free (name);
                    cJSON_Delete (map);
                    return NULL;
                }
                cJSON_AddItemToObject (map, name, item);
                free (name);
            }
            return map;
        }
    }
    return cJSON_CreateNull ();
}

char *
pond_value_to_json (const uint8_t *data, size_t size)
{
    char err [128];
    if (pond_value_check (data, size, NULL, err, sizeof err))
        return NULL;
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    char *text = NULL;
    if (msgpack_unpack_next (&unpacked, (const char *) data, size, NULL) == MSGPACK_UNPACK_SUCCESS) {
        cJSON *tree = pond_value_to_cjson (&unpacked.data);
        text = tree? cJSON_PrintUnformatted (tree): NULL;
        cJSON_Delete (tree);
    }
    msgpack_unpacked_destroy (&unpacked);
    return text;
}

//  ---------------------------------------------------------------------
//  JSON -> msgpack

static int
s_pack_cjson (msgpack_packer *pk, const cJSON *item, int depth, char *err, size_t errlen)
{
    //  Same rule as pond_value_check: containers at most 16 levels deep
    if ((cJSON_IsArray (item) || cJSON_IsObject (item)) && depth >= POND_VALUE_MAX_DEPTH) {
        snprintf (err, errlen, "JSON nested deeper than %d levels", POND_VALUE_MAX_DEPTH);
        return -1;
    }
    if (cJSON_IsNull (item))
        return msgpack_pack_nil (pk);
    if (cJSON_IsTrue (item))
        return msgpack_pack_true (pk);
    if (cJSON_IsFalse (item))
        return msgpack_pack_false (pk);
    if (cJSON_IsString (item)) {
        size_t len = strlen (item->valuestring);
        msgpack_pack_str (pk, len);
        return msgpack_pack_str_body (pk, item->valuestring, len);
    }
    if (cJSON_IsNumber (item)) {
        double v = item->valuedouble;
        if (v == floor (v) && v >= -9007199254740992.0 && v <= 9007199254740992.0)
            return v < 0? msgpack_pack_int64 (pk, (int64_t) v)
                        : msgpack_pack_uint64 (pk, (uint64_t) v);
        return msgpack_pack_double (pk, v);
    }
    if (cJSON_IsArray (item) || cJSON_IsObject (item)) {
        int count = cJSON_GetArraySize (item);
        if (cJSON_IsArray (item))
            msgpack_pack_array (pk, count);
        else
            msgpack_pack_map (pk, count);
        for (const cJSON *child = item->child; child; child = child->next) {
            if (cJSON_IsObject (item)) {
                size_t len = strlen (child->string);
                msgpack_pack_str (pk, len);
                msgpack_pack_str_body (pk, child->string, len);
            }
            if (s_pack_cjson (pk, child, depth + 1, err, errlen))
                return -1;
        }
        return 0;
    }
    snprintf (err, errlen, "unsupported JSON value");
    return -1;
}

uint8_t *
pond_value_from_json (const char *json, size_t *size_p, char *err, size_t errlen)
{
    const char *parse_end = NULL;
    cJSON *tree = cJSON_ParseWithOpts (json, &parse_end, 1);
    if (!tree) {
        size_t offset = parse_end? (size_t) (parse_end - json): 0;
        snprintf (err, errlen, "not valid JSON (near byte %zu)", offset);
        return NULL;
    }
    if (!cJSON_IsObject (tree)) {
        snprintf (err, errlen, "JSON must be an object like {\"key\": 1}");
        cJSON_Delete (tree);
        return NULL;
    }
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    int rc = s_pack_cjson (&pk, tree, 0, err, errlen);
    cJSON_Delete (tree);
    if (rc) {
        msgpack_sbuffer_destroy (&sbuf);
        return NULL;
    }
    *size_p = sbuf.size;
    return (uint8_t *) msgpack_sbuffer_release (&sbuf);
}
