/*  pond_fuzz_event: libFuzzer harness for the event decoder.

    Every process trusts what pond_event_decode accepts, so the input is
    handed to it as a frame off the wire would be (or, if it starts with
    POND_FUZZ_SCRIPT, the map its script builds: see pond_fuzz_script.c,
    which puts every size limit one mutation away). The decoder must either
    refuse with a reason or accept an event that the encoder takes back,
    holding the same keys and values as the input (nothing dropped, cut
    or changed); decoding that encoding and encoding
    again must give the same bytes (the codec has one canonical form), and
    the event must render as JSON. Every str it accepted (keys included,
    at every depth) must be valid UTF-8, every map key a str and no value
    an ext: checked here by a second, independent reading (the byte
    ranges of RFC 3629, table 3-7 of Unicode). The direct data accessors
    (pond_event_data) must read every top-level field of data as msgpack-c
    does, refuse every other type, and stay within any prefix of the data.
    Anything else aborts.
*/
#include "pond_fuzz.h"
#include "pond_event.h"
#include "pond_event_data.h"

#include <math.h>
#include <msgpack.h>
#include <stdbool.h>
#include <string.h>

//  msgpack_object_equal, but NaN equals NaN (a float is kept, not judged)
static bool
s_equal (const msgpack_object *a, const msgpack_object *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
            return a->via.f64 == b->via.f64 || (isnan (a->via.f64) && isnan (b->via.f64));
        case MSGPACK_OBJECT_ARRAY:
            if (a->via.array.size != b->via.array.size)
                return false;
            for (uint32_t i = 0; i < a->via.array.size; i++)
                if (!s_equal (&a->via.array.ptr [i], &b->via.array.ptr [i]))
                    return false;
            return true;
        case MSGPACK_OBJECT_MAP:
            if (a->via.map.size != b->via.map.size)
                return false;
            for (uint32_t i = 0; i < a->via.map.size; i++)
                if (!s_equal (&a->via.map.ptr [i].key, &b->via.map.ptr [i].key)
                    || !s_equal (&a->via.map.ptr [i].val, &b->via.map.ptr [i].val))
                    return false;
            return true;
        default: return msgpack_object_equal (*a, *b);
    }
}

//  The decoder keeps what it is given: the accepted map and the map its
//  encoder gives back hold the same keys with equal values (key order and
//  integer and length widths aside). Returns true if so.
static bool
s_same_map (const uint8_t *a, size_t a_size, const uint8_t *b, size_t b_size)
{
    msgpack_unpacked x, y;
    msgpack_unpacked_init (&x);
    msgpack_unpacked_init (&y);
    bool same = msgpack_unpack_next (&x, (const char *) a, a_size, NULL) == MSGPACK_UNPACK_SUCCESS
             && msgpack_unpack_next (&y, (const char *) b, b_size, NULL) == MSGPACK_UNPACK_SUCCESS
             && x.data.type == MSGPACK_OBJECT_MAP && y.data.type == MSGPACK_OBJECT_MAP
             && x.data.via.map.size == y.data.via.map.size;
    for (uint32_t i = 0; same && i < x.data.via.map.size; i++) {
        const msgpack_object_kv *kv = &x.data.via.map.ptr [i];
        bool found = false;
        for (uint32_t j = 0; !found && j < y.data.via.map.size; j++)
            found = s_equal (&kv->key, &y.data.via.map.ptr [j].key)
                 && s_equal (&kv->val, &y.data.via.map.ptr [j].val);
        same = found;
    }
    msgpack_unpacked_destroy (&x);
    msgpack_unpacked_destroy (&y);
    return same;
}

//  Valid UTF-8 by the well-formed byte sequences of RFC 3629, written
//  apart from the decoder's check so that one cannot excuse the other.
static bool
s_utf8 (const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s [i];
        uint8_t lo = 0x80, hi = 0xbf;
        size_t len;
        if (c <= 0x7f) {
            i++;
            continue;
        }
        else if (c >= 0xc2 && c <= 0xdf)
            len = 2;
        else if (c == 0xe0) {
            len = 3;
            lo = 0xa0;
        }
        else if (c == 0xed) {
            len = 3;
            hi = 0x9f;
        }
        else if (c >= 0xe1 && c <= 0xef)
            len = 3;
        else if (c == 0xf0) {
            len = 4;
            lo = 0x90;
        }
        else if (c == 0xf4) {
            len = 4;
            hi = 0x8f;
        }
        else if (c >= 0xf1 && c <= 0xf3)
            len = 4;
        else
            return false;
        if (n - i < len || s [i + 1] < lo || s [i + 1] > hi)
            return false;
        for (size_t k = 2; k < len; k++)
            if (s [i + k] < 0x80 || s [i + k] > 0xbf)
                return false;
        i += len;
    }
    return true;
}

//  Every str valid UTF-8, every map key a str, no ext: what JSON shows
static bool
s_portable (const msgpack_object *o)
{
    switch (o->type) {
        case MSGPACK_OBJECT_STR: return s_utf8 ((const uint8_t *) o->via.str.ptr, o->via.str.size);
        case MSGPACK_OBJECT_EXT: return false;
        case MSGPACK_OBJECT_ARRAY:
            for (uint32_t i = 0; i < o->via.array.size; i++)
                if (!s_portable (&o->via.array.ptr [i]))
                    return false;
            return true;
        case MSGPACK_OBJECT_MAP:
            for (uint32_t i = 0; i < o->via.map.size; i++)
                if (o->via.map.ptr [i].key.type != MSGPACK_OBJECT_STR
                    || !s_portable (&o->via.map.ptr [i].key)
                    || !s_portable (&o->via.map.ptr [i].val))
                    return false;
            return true;
        default: return true;
    }
}

static bool
s_input_portable (const uint8_t *data, size_t size)
{
    msgpack_unpacked x;
    msgpack_unpacked_init (&x);
    bool ok = msgpack_unpack_next (&x, (const char *) data, size, NULL) == MSGPACK_UNPACK_SUCCESS
           && s_portable (&x.data);
    msgpack_unpacked_destroy (&x);
    return ok;
}

//  Keys for script inputs: the envelope's, and near misses
static const char *const s_keys [] = { "id",   "name", "ts",  "entity", "source", "causation",
                                       "meta", "data", "seq", "Id",     "" };

//  Every str key of data (its first entry) reads through the accessors as
//  msgpack-c reads it; other types are refused; and any prefix of the
//  bytes is walked without reading past its end.
static void
s_check_data (const pond_event_t *event)
{
    size_t size = 0;
    const uint8_t *data = pond_event_data (event, &size);
    uint64_t u;
    int64_t i;
    double d;
    bool flag;
    const char *ptr;
    size_t len;
    static const char *fixed [] = { "label", "badge", "duration_ms", "container", "" };
    for (size_t index = 0; index < sizeof fixed / sizeof fixed [0]; index++) {
        pond_event_data_get_uint (event, fixed [index], &u);
        pond_event_data_get_str (event, fixed [index], &ptr, &len);
    }
    if (!data)
        return;
    //  Every prefix of small data, about 256 of larger data (quadratic else)
    size_t step = size > 512 ? size / 256 : 1;
    for (size_t cut = 0; cut < size; cut += step)
        if (pond_event_data_get_str_bytes (data, cut, "label", &ptr, &len) == 0)
            POND_FUZZ_CHECK ((const uint8_t *) ptr + len <= data + cut, "str past the prefix");

    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    POND_FUZZ_CHECK (msgpack_unpack_next (&unpacked, (const char *) data, size, NULL)
                             == MSGPACK_UNPACK_SUCCESS
                         && unpacked.data.type == MSGPACK_OBJECT_MAP,
                     "accepted data is not one map");
    const msgpack_object_map *map = &unpacked.data.via.map;
    for (uint32_t entry = 0; entry < map->size; entry++) {
        const msgpack_object *key = &map->ptr [entry].key;
        const msgpack_object *val = &map->ptr [entry].val;
        char name [256];
        if (key->type != MSGPACK_OBJECT_STR || key->via.str.size >= sizeof name
            || (key->via.str.size && memchr (key->via.str.ptr, 0, key->via.str.size)))
            continue;
        //  An empty key may have a NULL pointer: memcpy must not see it
        if (key->via.str.size)
            memcpy (name, key->via.str.ptr, key->via.str.size);
        name [key->via.str.size] = 0;
        bool first = true;
        for (uint32_t before = 0; first && before < entry; before++)
            first = !(
                map->ptr [before].key.type == MSGPACK_OBJECT_STR
                && map->ptr [before].key.via.str.size == key->via.str.size
                && (key->via.str.size == 0
                    || memcmp (map->ptr [before].key.via.str.ptr, name, key->via.str.size) == 0));
        if (!first)
            continue;
        int got_u = pond_event_data_get_uint (event, name, &u);
        int got_i = pond_event_data_get_int (event, name, &i);
        int got_d = pond_event_data_get_double (event, name, &d);
        int got_b = pond_event_data_get_bool (event, name, &flag);
        int got_s = pond_event_data_get_str (event, name, &ptr, &len);
        bool is_u = val->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
        bool is_i = val->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
        bool is_f = val->type == MSGPACK_OBJECT_FLOAT32 || val->type == MSGPACK_OBJECT_FLOAT64;
        bool is_b = val->type == MSGPACK_OBJECT_BOOLEAN;
        bool is_s = val->type == MSGPACK_OBJECT_STR;
        POND_FUZZ_CHECK ((got_u == 0) == is_u && (!is_u || u == val->via.u64),
                         "uint of '%s' misread", name);
        POND_FUZZ_CHECK ((got_i == 0) == (is_i || (is_u && val->via.u64 <= INT64_MAX))
                             && (!is_i || i == val->via.i64),
                         "int of '%s' misread", name);
        POND_FUZZ_CHECK ((got_d == 0) == (is_u || is_i || is_f)
                             && (!is_f || d == val->via.f64 || (isnan (d) && isnan (val->via.f64))),
                         "double of '%s' misread", name);
        POND_FUZZ_CHECK ((got_b == 0) == is_b && (!is_b || flag == val->via.boolean),
                         "bool of '%s' misread", name);
        POND_FUZZ_CHECK ((got_s == 0) == is_s
                             && (!is_s
                                 || (len == val->via.str.size
                                     && (len == 0 || memcmp (ptr, val->via.str.ptr, len) == 0))),
                         "str of '%s' misread", name);
    }
    msgpack_unpacked_destroy (&unpacked);
}

static void
s_decode (const uint8_t *data, size_t size)
{
    char err [POND_ERR_SIZE] = "";
    pond_event_t *event = pond_event_decode (data, size, err, sizeof err);
    if (!event) {
        POND_FUZZ_CHECK (*err, "decode refused without a reason");
        return;
    }
    //  Accepted: the encoder must take it back
    size_t first_size = 0;
    uint8_t *first = pond_event_encode (event, &first_size, err, sizeof err);
    POND_FUZZ_CHECK (first, "accepted event does not encode: %s", err);
    POND_FUZZ_CHECK (pond_event_validate (event, err, sizeof err) == 0,
                     "accepted event does not validate: %s", err);
    POND_FUZZ_CHECK (s_same_map (data, size, first, first_size),
                     "the encoding does not say what the input said");
    POND_FUZZ_CHECK (s_input_portable (data, size),
                     "accepted an event with a str that is not UTF-8, a non-str key or an ext");

    //  Actors read its data fields directly
    s_check_data (event);

    //  Its encoding decodes, and encodes to the same bytes
    pond_event_t *again = pond_event_decode (first, first_size, err, sizeof err);
    POND_FUZZ_CHECK (again, "encoding of an accepted event is refused: %s", err);
    size_t second_size = 0;
    uint8_t *second = pond_event_encode (again, &second_size, err, sizeof err);
    POND_FUZZ_CHECK (second, "re-decoded event does not encode: %s", err);
    POND_FUZZ_CHECK (first_size == second_size && memcmp (first, second, first_size) == 0,
                     "encodings differ (%zu and %zu bytes)", first_size, second_size);

    //  Same fields both ways
    POND_FUZZ_CHECK (memcmp (pond_event_id (event), pond_event_id (again), POND_ID_SIZE) == 0,
                     "id changed");
    POND_FUZZ_CHECK (strcmp (pond_event_name (event), pond_event_name (again)) == 0,
                     "name changed");
    POND_FUZZ_CHECK (pond_event_seq (event) == pond_event_seq (again), "seq changed");

    //  The command line renders every event it can read
    char *json = pond_event_to_json (again);
    POND_FUZZ_CHECK (json, "accepted event does not render as JSON");

    //  A copy is the same event
    pond_event_t *copy = pond_event_dup (again);
    POND_FUZZ_CHECK (copy, "dup failed");
    size_t copy_size = 0;
    uint8_t *copied = pond_event_encode (copy, &copy_size, err, sizeof err);
    POND_FUZZ_CHECK (copied && copy_size == first_size && memcmp (copied, first, first_size) == 0,
                     "copy encodes differently");

    free (copied);
    pond_event_destroy (&copy);
    free (json);
    free (second);
    pond_event_destroy (&again);
    free (first);
    pond_event_destroy (&event);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size > 0 && data [0] == POND_FUZZ_SCRIPT) {
        size_t built_size;
        uint8_t *built = pond_fuzz_script_map (data + 1, size - 1, s_keys,
                                               sizeof s_keys / sizeof s_keys [0], &built_size);
        s_decode (built, built_size);
        free (built);
    }
    else
        s_decode (data, size);
    return 0;
}
