/*  pond_value: checks and JSON conversions for event data and meta maps.
    See pond_value.h.
*/
#include "pond_value.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  ---------------------------------------------------------------------
//  Bounded structural check
//
//  One loop over the bytes with a stack of counts (children still to
//  read in each open container), not one call per object: this check runs
//  on every event a process receives. Reasons and byte positions are
//  those of a recursive descent: a container is refused for its depth
//  before its count, both right after its header.

typedef struct {
    const uint8_t *data;
    size_t size;
    size_t pos;
    int max_depth;
    size_t noncanonical;    //  Widths found larger than needed
    size_t unplain;         //  Non-ASCII strs, non-str map keys, exts seen
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

//  A str of n bytes at pos: count it if it is not all ASCII (then only
//  pond_value_check_portable can judge it), then skip it.
static inline __attribute__ ((always_inline)) int
s_skip_str (s_reader_t *self, uint64_t n)
{
    if (self->size - self->pos < n)
        return s_fail (self, "truncated msgpack");
    const uint8_t *at = self->data + self->pos;
    uint64_t high = 0;
    uint64_t word;
    if (n >= 8) {
        //  Whole words, the last one overlapping the one before
        for (size_t i = 0; i + 8 < n; i += 8) {
            memcpy (&word, at + i, 8);
            high |= word;
        }
        memcpy (&word, at + n - 8, 8);
        high |= word;
    }
    else
        for (size_t i = 0; i < n; i++)
            high |= at [i];
    self->unplain += (high & 0x8080808080808080ULL) != 0;
    self->pos += n;
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

//  Widths msgpack_pack_object gives: the smallest that holds the value
//  (a non-negative signed integer is packed unsigned). A float32 or
//  float64 NaN counts as not canonical: its round trip through a double
//  may set the quiet bit, so only msgpack_pack_object can say its bytes.
static bool
s_canonical (uint8_t tag, uint64_t n)
{
    switch (tag) {
        case 0xcc: return n >= 0x80;
        case 0xcd: return n >= 0x100;
        case 0xce: return n >= 0x10000;
        case 0xcf: return n >= 0x100000000ULL;
        case 0xd0: return (int8_t) n < -32;
        case 0xd1: return (int16_t) n < -128;
        case 0xd2: return (int32_t) n < -32768;
        case 0xd3: return (int64_t) n < -2147483648LL;
        case 0xca: return (n & 0x7f800000) != 0x7f800000 || (n & 0x007fffff) == 0;
        case 0xcb:
            return (n & 0x7ff0000000000000ULL) != 0x7ff0000000000000ULL
                || (n & 0x000fffffffffffffULL) == 0;
        case 0xd9: return n >= 32;
        case 0xc5:
        case 0xda: return n >= 0x100;
        case 0xc6:
        case 0xdb: return n >= 0x10000;
        case 0xc7: return n != 1 && n != 2 && n != 4 && n != 8 && n != 16;
        case 0xc8: return n >= 0x100;
        case 0xc9: return n >= 0x10000;
        case 0xdc:
        case 0xde: return n >= 16;
        case 0xdd:
        case 0xdf: return n >= 0x10000;
    }
    return true;
}

//  Read the n-byte number after tag (a value, a length or a count) and
//  judge its width.
static int
s_read_number (s_reader_t *self, uint8_t tag, size_t n, uint64_t *value)
{
    if (s_read_uint (self, n, value))
        return -1;
    if (!s_canonical (tag, *value))
        self->noncanonical++;
    return 0;
}

//  Walk the object at pos; record where each of the first max_spans
//  children of a top-level container lies. Returns 0 or -1.
static int
s_walk (s_reader_t *self, pond_value_span_t *spans, size_t max_spans, size_t *spans_p)
{
    uint64_t left [POND_VALUE_DEPTH_LIMIT + 1];
    bool in_map [POND_VALUE_DEPTH_LIMIT + 1];
    int top = 0;    //  The next object is at this depth
    left [0] = 1;
    in_map [0] = false;
    size_t nspans = 0;
    bool span_open = false;
    size_t span_noncanonical = 0;
    size_t span_unplain = 0;
    while (true) {
        if (top == 1 && nspans < max_spans) {
            spans [nspans].start = self->pos;
            span_noncanonical = self->noncanonical;
            span_unplain = self->unplain;
            span_open = true;
        }
        //  A map's children alternate key, value: an even count left is a key
        bool is_key = in_map [top] && (left [top] & 1) == 0;
        left [top]--;
        if (self->pos >= self->size)
            return s_fail (self, "truncated msgpack");
        uint8_t tag = self->data [self->pos++];
        uint64_t n = 0;
        uint64_t children = 0;
        bool container = false;
        if (is_key && !((tag >= 0xa0 && tag <= 0xbf) || (tag >= 0xd9 && tag <= 0xdb)))
            self->unplain++;
        if (tag <= 0x7f || tag >= 0xe0 || tag == 0xc0 || tag == 0xc2 || tag == 0xc3)
            ;                                     //  fixint, nil, bool
        else if (tag >= 0xa0 && tag <= 0xbf) {    //  fixstr
            if (top >= 2 ? s_skip_str (self, tag & 0x1f) : s_skip (self, tag & 0x1f))
                return -1;
        }
        else if (tag >= 0x80 && tag <= 0x9f) {    //  fixmap, fixarray
            container = true;
            children = tag <= 0x8f ? (uint64_t) (tag & 0x0f) * 2 : tag & 0x0f;
        }
        else
            switch (tag) {
                case 0xc4:
                case 0xd9:    //  bin8, str8
                    if (s_read_number (self, tag, 1, &n)
                        || (tag == 0xd9 ? s_skip_str (self, n) : s_skip (self, n)))
                        return -1;
                    break;
                case 0xc5:
                case 0xda:
                    if (s_read_number (self, tag, 2, &n)
                        || (tag == 0xda ? s_skip_str (self, n) : s_skip (self, n)))
                        return -1;
                    break;
                case 0xc6:
                case 0xdb:
                    if (s_read_number (self, tag, 4, &n)
                        || (tag == 0xdb ? s_skip_str (self, n) : s_skip (self, n)))
                        return -1;
                    break;
                case 0xc7:    //  ext8/16/32: len, type, body
                    self->unplain++;
                    if (s_read_number (self, tag, 1, &n) || s_skip (self, n + 1))
                        return -1;
                    break;
                case 0xc8:
                    self->unplain++;
                    if (s_read_number (self, tag, 2, &n) || s_skip (self, n + 1))
                        return -1;
                    break;
                case 0xc9:
                    self->unplain++;
                    if (s_read_number (self, tag, 4, &n) || s_skip (self, n + 1))
                        return -1;
                    break;
                case 0xca:    //  float32, float64
                case 0xcc:
                case 0xd0:    //  and the integers
                case 0xcd:
                case 0xd1:
                case 0xce:
                case 0xd2:
                case 0xcb:
                case 0xcf:
                case 0xd3: {
                    static const uint8_t widths [] = {
                        4, 8, 1, 2, 4, 8, 1, 2, 4, 8    //  0xca .. 0xd3
                    };
                    if (s_read_number (self, tag, widths [tag - 0xca], &n))
                        return -1;
                    break;
                }
                case 0xd4:
                case 0xd5:
                case 0xd6:
                case 0xd7:
                case 0xd8:
                    //  fixext 1..16: type and body
                    self->unplain++;
                    if (s_skip (self, 1 + ((uint64_t) 1 << (tag - 0xd4))))
                        return -1;
                    break;
                case 0xdc:
                case 0xde:    //  array16, map16
                    if (s_read_number (self, tag, 2, &n))
                        return -1;
                    container = true;
                    children = tag == 0xde ? n * 2 : n;
                    break;
                case 0xdd:
                case 0xdf:    //  array32, map32
                    if (s_read_number (self, tag, 4, &n))
                        return -1;
                    container = true;
                    children = tag == 0xdf ? n * 2 : n;
                    break;
                default: self->pos--; return s_fail (self, "invalid msgpack type byte");
            }
        if (container) {
            //  Each child needs at least one byte, so a count larger than
            //  what remains is a lie we refuse before anyone allocates
            if (top >= self->max_depth)
                return s_fail (self, "msgpack nested too deep");
            if (children > self->size - self->pos)
                return s_fail (self, "msgpack container longer than its buffer");
            left [++top] = children;
            in_map [top] = tag <= 0x8f || tag == 0xde || tag == 0xdf;
        }
        //  Close what is complete, and a top-level child's span with it
        if (top == 1 && span_open) {
            spans [nspans].end = self->pos;
            spans [nspans].canonical = self->noncanonical == span_noncanonical;
            spans [nspans].plain = self->unplain == span_unplain;
            nspans++;
            span_open = false;
        }
        while (left [top] == 0) {
            if (top == 0) {
                if (spans_p)
                    *spans_p = nspans;
                return 0;
            }
            top--;
            if (top == 1 && span_open) {
                spans [nspans].end = self->pos;
                spans [nspans].canonical = self->noncanonical == span_noncanonical;
                spans [nspans].plain = self->unplain == span_unplain;
                nspans++;
                span_open = false;
            }
        }
    }
}

int
pond_value_check (const uint8_t *data, size_t size, size_t *used_p, char *err, size_t errlen)
{
    return pond_value_check_spans (data, size, POND_VALUE_MAX_DEPTH, used_p, NULL, NULL, 0, NULL,
                                   err, errlen);
}

int
pond_value_check_depth (const uint8_t *data, size_t size, int max_depth, size_t *used_p, char *err,
                        size_t errlen)
{
    return pond_value_check_spans (data, size, max_depth, used_p, NULL, NULL, 0, NULL, err, errlen);
}

int
pond_value_check_canonical (const uint8_t *data, size_t size, int max_depth, size_t *used_p,
                            bool *canonical_p, char *err, size_t errlen)
{
    return pond_value_check_spans (data, size, max_depth, used_p, canonical_p, NULL, 0, NULL, err,
                                   errlen);
}

int
pond_value_check_spans (const uint8_t *data, size_t size, int max_depth, size_t *used_p,
                        bool *canonical_p, pond_value_span_t *spans, size_t max_spans,
                        size_t *spans_p, char *err, size_t errlen)
{
    if (!data || size == 0) {
        snprintf (err, errlen, "empty msgpack");
        return -1;
    }
    if (max_depth > POND_VALUE_DEPTH_LIMIT)
        max_depth = POND_VALUE_DEPTH_LIMIT;
    s_reader_t reader = { data, size, 0, max_depth, 0, 0, err, errlen };
    if (s_walk (&reader, spans, spans ? max_spans : 0, spans_p))
        return -1;
    if (used_p)
        *used_p = reader.pos;
    if (canonical_p)
        *canonical_p = reader.noncanonical == 0;
    return 0;
}

//  ---------------------------------------------------------------------
//  UTF-8 and portable values (what JSON and strict readers can show)

//  Length of the valid UTF-8 sequence at text (at most size bytes), or 0
//  if there is none.
static size_t
s_utf8_char (const uint8_t *text, size_t size)
{
    uint8_t c = text [0];
    if (c < 0x80)
        return 1;
    size_t len;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    }
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    }
    else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    }
    else
        return 0;    //  continuation byte, overlong lead, or > U+13FFFF
    if (size < len)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((text [k] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (text [k] & 0x3f);
    }
    if ((len == 3 && cp < 0x800)    //  overlong
        || (len == 4 && (cp < 0x10000 || cp > 0x10ffff))
        || (cp >= 0xd800 && cp <= 0xdfff))    //  surrogate
        return 0;
    return len;
}

bool
pond_value_utf8_valid (const uint8_t *text, size_t size)
{
    size_t i = 0;
    while (i < size) {
        if (text [i] < 0x80) {
            i++;
            continue;
        }
        size_t len = s_utf8_char (text + i, size - i);
        if (!len)
            return false;
        i += len;
    }
    return true;
}

void
pond_value_utf8_sanitize (char *text)
{
    uint8_t *at = (uint8_t *) text;
    size_t size = strlen (text);
    size_t i = 0;
    while (i < size) {
        size_t len = s_utf8_char (at + i, size - i);
        if (len)
            i += len;
        else
            at [i++] = '?';
    }
}

//  The walk keeps where it is as a stack of steps (a map key or an array
//  index per level); the path text is made only for a refusal.
typedef struct {
    const uint8_t *key;    //  a map key (NULL: an array index)
    uint64_t len;          //  its length, or the index
} s_step_t;

typedef struct {
    const uint8_t *data;
    size_t size;
    size_t pos;
    const char *top;    //  "data" or "meta"
    s_step_t steps [POND_VALUE_DEPTH_LIMIT + 1];
    int depth;
    char *err;
    size_t errlen;
} s_portable_t;

//  Refuse, naming the path: "data.items[2].name" (a key's bytes outside
//  printable ASCII show as '?', so the reason stays valid UTF-8; each key
//  cut at 32 bytes, the path at 120).
static int
s_portable_fail (s_portable_t *self, const char *what)
{
    char path [128];
    size_t at = (size_t) snprintf (path, sizeof path, "%s", self->top);
    for (int i = 0; i < self->depth && at + 40 < sizeof path; i++) {
        const s_step_t *step = &self->steps [i];
        if (!step->key) {
            at += (size_t) snprintf (path + at, sizeof path - at, "[%" PRIu64 "]", step->len);
            continue;
        }
        path [at++] = '.';
        for (uint64_t k = 0; k < step->len && k < 32; k++) {
            uint8_t c = step->key [k];
            path [at++] = c >= 0x20 && c < 0x7f ? (char) c : '?';
        }
        path [at] = 0;
    }
    snprintf (self->err, self->errlen, "%s: %s", path, what);
    return -1;
}

static int
s_portable_uint (s_portable_t *self, size_t n, uint64_t *value)
{
    if (self->size - self->pos < n)
        return s_portable_fail (self, "truncated msgpack");
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | self->data [self->pos + i];
    self->pos += n;
    *value = v;
    return 0;
}

//  Read a str whose header tag was just read; -1 if it is not valid UTF-8.
static int
s_portable_str (s_portable_t *self, uint8_t tag, const uint8_t **text_p, uint64_t *len_p,
                const char *what)
{
    uint64_t len = tag & 0x1f;
    if (tag >= 0xd9 && s_portable_uint (self, (size_t) 1 << (tag - 0xd9), &len))
        return -1;
    if (self->size - self->pos < len)
        return s_portable_fail (self, "truncated msgpack");
    *text_p = self->data + self->pos;
    *len_p = len;
    self->pos += len;
    if (!pond_value_utf8_valid (*text_p, (size_t) len))
        return s_portable_fail (self, what);
    return 0;
}

static int
s_portable_value (s_portable_t *self, int depth)
{
    if (depth > POND_VALUE_DEPTH_LIMIT)
        return s_portable_fail (self, "msgpack nested too deep");
    if (self->pos >= self->size)
        return s_portable_fail (self, "truncated msgpack");
    uint8_t tag = self->data [self->pos++];
    uint64_t n = 0;
    const uint8_t *text;
    if (tag <= 0x7f || tag >= 0xe0 || tag == 0xc0 || tag == 0xc2 || tag == 0xc3)
        return 0;    //  fixint, nil, bool
    if ((tag >= 0xa0 && tag <= 0xbf) || (tag >= 0xd9 && tag <= 0xdb))
        return s_portable_str (self, tag, &text, &n, "str is not valid UTF-8");
    if (tag >= 0xc4 && tag <= 0xc6) {    //  bin: shown as hex
        if (s_portable_uint (self, (size_t) 1 << (tag - 0xc4), &n))
            return -1;
        if (self->size - self->pos < n)
            return s_portable_fail (self, "truncated msgpack");
        self->pos += n;
        return 0;
    }
    if (tag >= 0xca && tag <= 0xd3) {    //  floats, integers
        static const uint8_t widths [] = { 4, 8, 1, 2, 4, 8, 1, 2, 4, 8 };
        return s_portable_uint (self, widths [tag - 0xca], &n);
    }
    bool is_map = (tag >= 0x80 && tag <= 0x8f) || tag == 0xde || tag == 0xdf;
    bool is_array = (tag >= 0x90 && tag <= 0x9f) || tag == 0xdc || tag == 0xdd;
    if (!is_map && !is_array) {
        if (tag == 0xc1)
            return s_portable_fail (self, "invalid msgpack type byte");
        return s_portable_fail (self, "ext types are not allowed (JSON cannot show them)");
    }
    n = tag & 0x0f;
    if (tag >= 0xdc && s_portable_uint (self, tag == 0xdc || tag == 0xde ? 2 : 4, &n))
        return -1;
    s_step_t *step = &self->steps [self->depth++];
    for (uint64_t i = 0; i < n; i++) {
        step->key = NULL;
        step->len = i;
        if (is_map) {
            if (self->pos >= self->size)
                return s_portable_fail (self, "truncated msgpack");
            uint8_t key_tag = self->data [self->pos++];
            if (!((key_tag >= 0xa0 && key_tag <= 0xbf) || (key_tag >= 0xd9 && key_tag <= 0xdb))) {
                self->depth--;
                return s_portable_fail (self, "map keys must be str");
            }
            uint64_t len;
            if (s_portable_str (self, key_tag, &text, &len, "a map key is not valid UTF-8")) {
                self->depth--;    //  name the map, not the bad key
                return s_portable_fail (self, "a map key is not valid UTF-8");
            }
            step->key = text;
            step->len = len;
        }
        if (s_portable_value (self, depth + 1))
            return -1;
    }
    self->depth--;
    return 0;
}

int
pond_value_check_portable (const uint8_t *data, size_t size, const char *key, char *err,
                           size_t errlen)
{
    //  Set field by field: the steps need no clearing (1 KiB per call)
    s_portable_t walker;
    walker.data = data;
    walker.size = size;
    walker.pos = 0;
    walker.top = key;
    walker.depth = 0;
    walker.err = err;
    walker.errlen = errlen;
    return s_portable_value (&walker, 0);
}

//  ---------------------------------------------------------------------
//  msgpack -> JSON

static cJSON *s_raw_number (const char *format, ...) __attribute__ ((format (printf, 1, 2)));

void
pond_value_json_add_uint (cJSON *object, const char *key, uint64_t value)
{
    char text [24];
    snprintf (text, sizeof text, "%llu", (unsigned long long) value);
    cJSON_AddRawToObject (object, key, text);
}

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
    if (size)    //  msgpack-c gives NULL for ""
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
        case MSGPACK_OBJECT_NIL: return cJSON_CreateNull ();
        case MSGPACK_OBJECT_BOOLEAN: return cJSON_CreateBool (obj->via.boolean);
        case MSGPACK_OBJECT_POSITIVE_INTEGER: return s_raw_number ("%" PRIu64, obj->via.u64);
        case MSGPACK_OBJECT_NEGATIVE_INTEGER: return s_raw_number ("%" PRId64, obj->via.i64);
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
            if (isfinite (obj->via.f64))
                return cJSON_CreateNumber (obj->via.f64);
            return cJSON_CreateNull ();    //  JSON has no NaN or Inf
        case MSGPACK_OBJECT_STR: return s_string (obj->via.str.ptr, obj->via.str.size);
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
                        if (key->via.str.size)    //  msgpack-c gives NULL for ""
                            memcpy (name, key->via.str.ptr, key->via.str.size);
                        name [key->via.str.size] = 0;
                    }
                }
                else {
                    cJSON *key_json = pond_value_to_cjson (key);
                    name = key_json ? cJSON_PrintUnformatted (key_json) : NULL;
                    cJSON_Delete (key_json);
                }
                cJSON *item = name ? pond_value_to_cjson (&obj->via.map.ptr [i].val) : NULL;
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
    if (msgpack_unpack_next (&unpacked, (const char *) data, size, NULL)
        == MSGPACK_UNPACK_SUCCESS) {
        cJSON *tree = pond_value_to_cjson (&unpacked.data);
        text = tree ? cJSON_PrintUnformatted (tree) : NULL;
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
            return v < 0 ? msgpack_pack_int64 (pk, (int64_t) v)
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
        size_t offset = parse_end ? (size_t) (parse_end - json) : 0;
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
