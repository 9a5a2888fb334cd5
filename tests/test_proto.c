/*  test_proto: unit tests of proto/, the module every process trusts.

    The event envelope and its codec (every field, every rule, every way a
    frame can lie), pond_value (the msgpack checker and the JSON bridge),
    pond_uuid, pond_time and the protocol bodies of pond_proto. No sockets:
    each test builds bytes, decodes them and checks what comes back. A
    deterministic random loop feeds thousands of hostile inputs to every
    decoder; the rule is "reject with a reason, or accept something that
    re-encodes to the same bytes", never a crash.
*/
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <ctype.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pond_event.h"
#include "pond_event_data.h"
#include "pond_number.h"
#include "pond_proto.h"
#include "pond_time.h"
#include "pond_uuid.h"
#include "pond_value.h"

//  =====================================================================
//  Helpers

//  A growable buffer with a msgpack packer attached. Not movable once
//  initialised (the packer points at the sbuffer).
typedef struct {
    msgpack_sbuffer sbuf;
    msgpack_packer pk;
} buf_t;

static void
s_buf_init (buf_t *self)
{
    msgpack_sbuffer_init (&self->sbuf);
    msgpack_packer_init (&self->pk, &self->sbuf, msgpack_sbuffer_write);
}

static void
s_buf_destroy (buf_t *self)
{
    msgpack_sbuffer_destroy (&self->sbuf);
}

static void
s_buf_raw (buf_t *self, const void *data, size_t size)
{
    msgpack_sbuffer_write (&self->sbuf, (const char *) data, size);
}

static void
s_buf_strn (buf_t *self, const char *text, size_t len)
{
    msgpack_pack_str (&self->pk, len);
    msgpack_pack_str_body (&self->pk, text, len);
}

static void
s_buf_str (buf_t *self, const char *text)
{
    s_buf_strn (self, text, strlen (text));
}

//  A key and the raw msgpack bytes of its value
typedef struct {
    const char *key;
    const char *raw;
    size_t len;
} kv_t;

#define KV(k, lit) \
    { \
        (k), (lit), sizeof (lit) - 1 \
    }
#define RAW(lit) (const uint8_t *) (lit), sizeof (lit) - 1

//  Pack a map from kvs, leaving out the key 'omit' and replacing (or
//  adding, when kvs lacks it) the key over->key. Returns malloc'd bytes.
static uint8_t *
s_map_bytes (const kv_t *kvs, size_t n, const char *omit, const kv_t *over, size_t *size_p)
{
    size_t count = 0;
    bool replaced = false;
    for (size_t i = 0; i < n; i++) {
        if (omit && streq (kvs [i].key, omit))
            continue;
        if (over && streq (kvs [i].key, over->key))
            replaced = true;
        count++;
    }
    if (over && !replaced)
        count++;
    buf_t b;
    s_buf_init (&b);
    msgpack_pack_map (&b.pk, count);
    for (size_t i = 0; i < n; i++) {
        if (omit && streq (kvs [i].key, omit))
            continue;
        const kv_t *kv = over && streq (kvs [i].key, over->key) ? over : &kvs [i];
        s_buf_str (&b, kv->key);
        s_buf_raw (&b, kv->raw, kv->len);
    }
    if (over && !replaced) {
        s_buf_str (&b, over->key);
        s_buf_raw (&b, over->raw, over->len);
    }
    *size_p = b.sbuf.size;
    return (uint8_t *) msgpack_sbuffer_release (&b.sbuf);
}

//  True if a reason names the key: "'key' ..." anywhere, or "key ..." at
//  the start.
static bool
s_mentions (const char *err, const char *key)
{
    char quoted [80];
    snprintf (quoted, sizeof quoted, "'%s'", key);
    if (strstr (err, quoted))
        return true;
    size_t len = strlen (key);
    return strncmp (err, key, len) == 0 && !isalnum ((unsigned char) err [len]) && err [len] != '_';
}

//  Deterministic PRNG (xorshift64*), reseeded by each test that uses it.
//  A longer campaign: build with -DPOND_FUZZ_SCALE=100 -DPOND_FUZZ_SEED=n.
#ifndef POND_FUZZ_SCALE
#define POND_FUZZ_SCALE 1
#endif
#ifndef POND_FUZZ_SEED
#define POND_FUZZ_SEED 0
#endif
static uint64_t s_rng_state = 1;

static void
s_seed (uint64_t seed)
{
    seed += POND_FUZZ_SEED * 0x9E3779B97F4A7C15ULL;
    s_rng_state = seed ? seed : 1;
}

static uint64_t
s_rand (void)
{
    s_rng_state ^= s_rng_state >> 12;
    s_rng_state ^= s_rng_state << 25;
    s_rng_state ^= s_rng_state >> 27;
    return s_rng_state * 0x2545F4914F6CDD1DULL;
}

static uint64_t
s_below (uint64_t n)
{
    return n ? s_rand () % n : 0;
}

static const uint8_t s_id_a [16] = { 0x01, 0x8f, 0x3a, 0x5b, 0x6c, 0x7d, 0x7e, 0x8f,
                                     0x90, 0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x07 };
static const uint8_t s_id_b [16] = { 0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa, 0x79, 0x88,
                                     0x97, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0x00 };
static const uint8_t s_nil_id [16] = { 0 };

//  2022-01-01T00:00:00Z
#define TS_2022 1640995200000000ULL

//  An event with every field set
static pond_event_t *
s_full_event (void)
{
    char err [POND_ERR_SIZE] = "";
    pond_event_t *ev = pond_event_new ("QUACKED", "customer-42");
    cr_assert_not_null (ev);
    pond_event_set_id (ev, s_id_a);
    pond_event_set_ts (ev, TS_2022 + 123456);
    cr_assert_eq (pond_event_set_source (ev, "silo-7"), 0);
    pond_event_set_causation (ev, s_id_b);
    cr_assert_eq (pond_event_set_meta_json (ev, "{\"performer\":\"silo-7\",\"firmware\":\"2.1.0\"}",
                                            err, sizeof err),
                  0, "%s", err);
    cr_assert_eq (pond_event_set_data_json (ev,
                                            "{\"duration_ms\":350,\"loudness\":-12.5,"
                                            "\"tags\":[\"a\",true,null]}",
                                            err, sizeof err),
                  0, "%s", err);
    pond_event_set_seq (ev, 42);
    return ev;
}

static uint8_t *
s_encode_ok (const pond_event_t *ev, size_t *size_p)
{
    char err [POND_ERR_SIZE] = "";
    uint8_t *bytes = pond_event_encode (ev, size_p, err, sizeof err);
    cr_assert_not_null (bytes, "encode failed: %s", err);
    return bytes;
}

static pond_event_t *
s_decode_ok (const uint8_t *data, size_t size)
{
    char err [POND_ERR_SIZE] = "";
    pond_event_t *ev = pond_event_decode (data, size, err, sizeof err);
    cr_assert_not_null (ev, "decode failed: %s", err);
    return ev;
}

//  Decode must refuse, with a non-empty reason that names 'mention'
static void
s_expect_bad_event (const uint8_t *data, size_t size, const char *mention, const char *what)
{
    char err [POND_ERR_SIZE] = "";
    pond_event_t *ev = pond_event_decode (data, size, err, sizeof err);
    cr_assert_null (ev, "%s: decoded although invalid", what);
    cr_assert (strlen (err) > 0, "%s: empty reason", what);
    if (mention)
        cr_assert (s_mentions (err, mention), "%s: reason '%s' does not name '%s'", what, err,
                   mention);
}

//  Encode must refuse, with a reason naming 'mention'
static void
s_expect_bad_encode (const pond_event_t *ev, const char *mention, const char *what)
{
    char err [POND_ERR_SIZE] = "";
    size_t size = 12345;
    uint8_t *bytes = pond_event_encode (ev, &size, err, sizeof err);
    cr_assert_null (bytes, "%s: encoded although invalid", what);
    cr_assert (strlen (err) > 0, "%s: empty reason", what);
    if (mention)
        cr_assert (s_mentions (err, mention), "%s: reason '%s' does not name '%s'", what, err,
                   mention);
    char err2 [POND_ERR_SIZE] = "";
    cr_assert_eq (pond_event_validate (ev, err2, sizeof err2), strstr (err, "limit") ? 0 : -1);
}

//  The required keys of an event, with valid values
#define ID_RAW \
    "\xc4\x10" \
    "\x01\x8f\x3a\x5b\x6c\x7d\x7e\x8f\x90\xa1\xb2\xc3\xd4\xe5\xf6\x07"
static const kv_t s_event_kvs [] = {
    KV ("id", ID_RAW),
    KV ("name", "\xa7"
                "QUACKED"),
    KV ("ts", "\xce\x12\x34\x56\x78"),
    KV ("entity", "\xab"
                  "customer-42"),
};
#define EVENT_KVS s_event_kvs, sizeof s_event_kvs / sizeof s_event_kvs [0]

//  =====================================================================
//  Event codec: round trips

Test (event, round_trip_every_field)
{
    pond_event_t *ev = s_full_event ();
    size_t size;
    uint8_t *bytes = s_encode_ok (ev, &size);
    cr_assert_leq (size, POND_EVENT_MAX_SIZE);
    cr_assert_eq (bytes [0], 0x89, "a full event is a fixmap of 9 keys");

    pond_event_t *copy = s_decode_ok (bytes, size);
    cr_assert_arr_eq (pond_event_id (copy), s_id_a, 16);
    cr_assert_str_eq (pond_event_name (copy), "QUACKED");
    cr_assert_eq (pond_event_ts (copy), TS_2022 + 123456);
    cr_assert_str_eq (pond_event_entity (copy), "customer-42");
    cr_assert_str_eq (pond_event_source (copy), "silo-7");
    cr_assert_not_null (pond_event_causation (copy));
    cr_assert_arr_eq (pond_event_causation (copy), s_id_b, 16);
    cr_assert_eq (pond_event_seq (copy), 42);

    size_t a_size, b_size;
    const uint8_t *a = pond_event_data (ev, &a_size);
    const uint8_t *b = pond_event_data (copy, &b_size);
    cr_assert_eq (a_size, b_size);
    cr_assert_arr_eq (a, b, a_size);
    a = pond_event_meta (ev, &a_size);
    b = pond_event_meta (copy, &b_size);
    cr_assert_eq (a_size, b_size);
    cr_assert_arr_eq (a, b, a_size);

    char *json = pond_value_to_json (b, b_size);
    cr_assert_str_eq (json, "{\"performer\":\"silo-7\",\"firmware\":\"2.1.0\"}");
    free (json);
    b = pond_event_data (copy, &b_size);
    json = pond_value_to_json (b, b_size);
    cr_assert_str_eq (json, "{\"duration_ms\":350,\"loudness\":-12.5,\"tags\":[\"a\",true,null]}");
    free (json);

    //  Re-encoding the decoded event gives the very same bytes
    size_t size2;
    uint8_t *bytes2 = s_encode_ok (copy, &size2);
    cr_assert_eq (size2, size);
    cr_assert_arr_eq (bytes2, bytes, size);

    //  And so does a deep copy
    pond_event_t *dup = pond_event_dup (copy);
    cr_assert_not_null (dup);
    cr_assert_neq (pond_event_data (dup, &b_size), pond_event_data (copy, &a_size));
    uint8_t *bytes3 = s_encode_ok (dup, &size2);
    cr_assert_eq (size2, size);
    cr_assert_arr_eq (bytes3, bytes, size);

    free (bytes);
    free (bytes2);
    free (bytes3);
    pond_event_destroy (&ev);
    pond_event_destroy (&copy);
    pond_event_destroy (&dup);
    cr_assert_null (dup);
    pond_event_destroy (&dup);    //  NULL is fine
    pond_event_destroy (NULL);
}

Test (event, round_trip_minimal)
{
    pond_event_t *ev = pond_event_new ("BUTTON_CLICKED", "c");
    cr_assert_not_null (ev);
    size_t size;
    uint8_t *bytes = s_encode_ok (ev, &size);
    cr_assert_eq (bytes [0], 0x84, "only id, name, ts, entity are carried");
    pond_event_t *copy = s_decode_ok (bytes, size);
    cr_assert_arr_eq (pond_event_id (copy), pond_event_id (ev), 16);
    cr_assert_str_eq (pond_event_name (copy), "BUTTON_CLICKED");
    cr_assert_eq (pond_event_ts (copy), pond_event_ts (ev));
    cr_assert_str_eq (pond_event_entity (copy), "c");
    cr_assert_str_eq (pond_event_source (copy), "");
    cr_assert_null (pond_event_causation (copy));
    cr_assert_eq (pond_event_seq (copy), 0);
    size_t dsize = 99;
    cr_assert_null (pond_event_data (copy, &dsize));
    cr_assert_eq (dsize, 0);
    cr_assert_null (pond_event_meta (copy, &dsize));
    cr_assert_eq (dsize, 0);
    free (bytes);
    pond_event_destroy (&ev);
    pond_event_destroy (&copy);
}

Test (event, new_sets_fresh_id_and_now)
{
    uint64_t before = pond_time_now ();
    pond_event_t *a = pond_event_new ("A", "x");
    pond_event_t *b = pond_event_new ("A", "x");
    uint64_t after = pond_time_now ();
    cr_assert (pond_event_ts (a) >= before && pond_event_ts (b) <= after);
    cr_assert_arr_neq (pond_event_id (a), pond_event_id (b), 16);
    cr_assert_eq (pond_event_id (a) [6] >> 4, 7);
    pond_event_destroy (&a);
    pond_event_destroy (&b);
}

Test (event, round_trip_boundaries)
{
    //  Longest name and entity, smallest and largest ts, largest seq
    char name [POND_NAME_MAX + 1];
    memset (name, 'Z', POND_NAME_MAX);
    name [POND_NAME_MAX] = 0;
    name [1] = '9';
    name [2] = '_';
    char entity [POND_ENTITY_MAX + 1];
    for (int i = 0; i < POND_ENTITY_MAX; i++)
        entity [i] = (char) (0x20 + i % 95);    //  every printable byte
    entity [POND_ENTITY_MAX] = 0;
    const uint64_t ts_cases [] = { 1, POND_TIME_MAX };
    const uint64_t seq_cases [] = { 1, UINT64_MAX };
    for (int i = 0; i < 2; i++) {
        pond_event_t *ev = pond_event_new (name, entity);
        cr_assert_str_eq (pond_event_name (ev), name);
        cr_assert_str_eq (pond_event_entity (ev), entity);
        cr_assert_eq (pond_event_set_source (ev, entity), 0);
        pond_event_set_ts (ev, ts_cases [i]);
        pond_event_set_seq (ev, seq_cases [i]);
        size_t size;
        uint8_t *bytes = s_encode_ok (ev, &size);
        pond_event_t *copy = s_decode_ok (bytes, size);
        cr_assert_str_eq (pond_event_name (copy), name);
        cr_assert_str_eq (pond_event_entity (copy), entity);
        cr_assert_str_eq (pond_event_source (copy), entity);
        cr_assert_eq (pond_event_ts (copy), ts_cases [i]);
        cr_assert_eq (pond_event_seq (copy), seq_cases [i]);
        free (bytes);
        pond_event_destroy (&ev);
        pond_event_destroy (&copy);
    }
    //  UTF-8 is allowed in entity and source (only control bytes are not)
    pond_event_t *ev = pond_event_new ("A", "k\xc3\xbc"
                                            "che-\xe2\x82\xac");
    size_t size;
    uint8_t *bytes = s_encode_ok (ev, &size);
    pond_event_t *copy = s_decode_ok (bytes, size);
    cr_assert_str_eq (pond_event_entity (copy), "k\xc3\xbc"
                                                "che-\xe2\x82\xac");
    free (bytes);
    pond_event_destroy (&ev);
    pond_event_destroy (&copy);
}

Test (event, data_from_raw_msgpack_every_type)
{
    //  Every msgpack type inside data survives encode/decode byte for byte
    buf_t b;
    s_buf_init (&b);
    msgpack_pack_map (&b.pk, 13);
    s_buf_str (&b, "nil");
    msgpack_pack_nil (&b.pk);
    s_buf_str (&b, "t");
    msgpack_pack_true (&b.pk);
    s_buf_str (&b, "f");
    msgpack_pack_false (&b.pk);
    s_buf_str (&b, "u64");
    msgpack_pack_uint64 (&b.pk, UINT64_MAX);
    s_buf_str (&b, "i64");
    msgpack_pack_int64 (&b.pk, INT64_MIN);
    s_buf_str (&b, "i8");
    msgpack_pack_int64 (&b.pk, -100);
    s_buf_str (&b, "f32");
    msgpack_pack_float (&b.pk, 1.5f);
    s_buf_str (&b, "f64");
    msgpack_pack_double (&b.pk, -0.1);
    s_buf_str (&b, "str");
    s_buf_str (&b, "h\xc3\xa9llo");
    s_buf_str (&b, "bin");
    msgpack_pack_bin (&b.pk, 3);
    msgpack_pack_bin_body (&b.pk, "\x00\x01\xff", 3);
    s_buf_str (&b, "arr");
    msgpack_pack_array (&b.pk, 2);
    msgpack_pack_int (&b.pk, 1);
    msgpack_pack_array (&b.pk, 0);
    s_buf_str (&b, "map");
    msgpack_pack_map (&b.pk, 1);
    s_buf_str (&b, "5");
    s_buf_str (&b, "str key");
    s_buf_str (&b, "");
    msgpack_pack_map (&b.pk, 0);

    char err [POND_ERR_SIZE] = "";
    pond_event_t *ev = pond_event_new ("QUACKED", "c-1");
    cr_assert_eq (pond_event_set_data (ev, (uint8_t *) b.sbuf.data, b.sbuf.size, err, sizeof err),
                  0, "%s", err);
    cr_assert_eq (pond_event_set_meta (ev, (uint8_t *) b.sbuf.data, b.sbuf.size, err, sizeof err),
                  0, "%s", err);
    size_t size;
    uint8_t *bytes = s_encode_ok (ev, &size);
    pond_event_t *copy = s_decode_ok (bytes, size);
    size_t dsize;
    const uint8_t *data = pond_event_data (copy, &dsize);
    cr_assert_eq (dsize, b.sbuf.size);
    cr_assert_arr_eq (data, b.sbuf.data, dsize);
    data = pond_event_meta (copy, &dsize);
    cr_assert_eq (dsize, b.sbuf.size);
    cr_assert_arr_eq (data, b.sbuf.data, dsize);

    //  And renders as JSON, with exact integers
    char *json = pond_event_to_json (copy);
    cr_assert_not_null (json);
    cr_assert_not_null (strstr (json, "\"u64\":18446744073709551615"), "%s", json);
    cr_assert_not_null (strstr (json, "\"i64\":-9223372036854775808"), "%s", json);
    cr_assert_not_null (strstr (json, "\"bin\":\"0001ff\""), "%s", json);
    cr_assert_not_null (strstr (json, "\"map\":{\"5\":\"str key\"}"), "%s", json);
    free (json);

    //  Clearing data and meta
    cr_assert_eq (pond_event_set_data (ev, NULL, 0, err, sizeof err), 0);
    cr_assert_eq (pond_event_set_meta (ev, NULL, 0, err, sizeof err), 0);
    cr_assert_null (pond_event_data (ev, &dsize));
    cr_assert_null (pond_event_meta (ev, &dsize));
    free (bytes);
    bytes = s_encode_ok (ev, &size);
    cr_assert_eq (bytes [0], 0x84);
    free (bytes);
    s_buf_destroy (&b);
    pond_event_destroy (&ev);
    pond_event_destroy (&copy);
}

Test (event, to_json)
{
    pond_event_t *ev = s_full_event ();
    char *json = pond_event_to_json (ev);
    cr_assert_not_null (json);
    cr_assert_str_eq (
        json, "{\"seq\":42,\"id\":\"018f3a5b-6c7d-7e8f-90a1-b2c3d4e5f607\",\"name\":\"QUACKED\","
              "\"ts\":1640995200123456,\"time\":\"2022-01-01T00:00:00.123456Z\","
              "\"entity\":\"customer-42\",\"source\":\"silo-7\","
              "\"causation\":\"ffeeddcc-bbaa-7988-9766-554433221100\","
              "\"meta\":{\"performer\":\"silo-7\",\"firmware\":\"2.1.0\"},"
              "\"data\":{\"duration_ms\":350,\"loudness\":-12.5,\"tags\":[\"a\",true,null]}}");
    free (json);
    //  Empty strings first in the data (msgpack-c hands back NULL for them)
    char err [POND_ERR_SIZE] = "";
    cr_assert_eq (pond_event_set_data (ev,
                                       (const uint8_t *) "\x82\xa0\xa0\xa1"
                                                         "b\xa0",
                                       6, err, sizeof err),
                  0, "%s", err);
    cr_assert_eq (pond_event_set_meta (ev, NULL, 0, err, sizeof err), 0);
    json = pond_event_to_json (ev);
    cr_assert_not_null (strstr (json, "\"data\":{\"\":\"\",\"b\":\"\"}}"), "%s", json);
    free (json);
    json = pond_value_to_json ((const uint8_t *) "\x81\xa0\x01", 3);
    cr_assert_str_eq (json, "{\"\":1}");
    free (json);
    pond_event_destroy (&ev);
    //  An event whose first key is "" is refused (unknown key), cleanly
    size_t size;
    kv_t kvs [] = { KV ("", "\x01"), KV ("id", ID_RAW),
                    KV ("name", "\xa1"
                                "A"),
                    KV ("ts", "\x01"),
                    KV ("entity", "\xa1"
                                  "e") };
    uint8_t *bytes = s_map_bytes (kvs, 5, NULL, NULL, &size);
    s_expect_bad_event (bytes, size, "", "empty key first");
    free (bytes);
}

Test (event, key_order_and_non_canonical_encodings)
{
    //  Keys in any order, small values in wide encodings, map16 header,
    //  str8 keys: all accepted, re-encoded canonically (and not larger)
    buf_t b;
    s_buf_init (&b);
    s_buf_raw (&b, "\xde\x00\x05", 3);    //  map16, 5 keys
    s_buf_raw (&b,
               "\xd9\x03"
               "seq",
               5);                                                //  str8 key
    s_buf_raw (&b, "\xcf\x00\x00\x00\x00\x00\x00\x00\x07", 9);    //  uint64 7
    s_buf_raw (&b,
               "\xa6"
               "entity"
               "\xda\x00\x01"
               "e",
               11);    //  str16 value
    s_buf_raw (&b,
               "\xa2"
               "ts"
               "\xcd\x00\x09",
               6);    //  uint16 9
    s_buf_raw (&b,
               "\xa4"
               "name"
               "\xd9\x01"
               "N",
               8);
    s_buf_raw (&b,
               "\xa2"
               "id" ID_RAW,
               3 + 18);
    pond_event_t *ev = s_decode_ok ((uint8_t *) b.sbuf.data, b.sbuf.size);
    cr_assert_eq (pond_event_seq (ev), 7);
    cr_assert_eq (pond_event_ts (ev), 9);
    cr_assert_str_eq (pond_event_name (ev), "N");
    cr_assert_str_eq (pond_event_entity (ev), "e");
    cr_assert_arr_eq (pond_event_id (ev), s_id_a, 16);
    size_t size;
    uint8_t *bytes = s_encode_ok (ev, &size);
    cr_assert_lt (size, b.sbuf.size);
    pond_event_t *again = s_decode_ok (bytes, size);
    cr_assert_eq (pond_event_seq (again), 7);
    free (bytes);
    s_buf_destroy (&b);
    pond_event_destroy (&ev);
    pond_event_destroy (&again);
}

Test (event, size_limit_exact)
{
    //  An event of exactly 65,536 bytes is fine; one byte more is not,
    //  for the encoder and the decoder alike.
    char err [POND_ERR_SIZE] = "";
    size_t pad = 60000;
    size_t size = 0;
    uint8_t *bytes = NULL;
    for (int round = 0; round < 3; round++) {
        buf_t b;
        s_buf_init (&b);
        msgpack_pack_map (&b.pk, 1);
        s_buf_str (&b, "p");
        char *text = malloc (pad + 1);
        memset (text, 'x', pad);
        s_buf_strn (&b, text, pad);
        free (text);
        pond_event_t *ev = pond_event_new ("BIG", "c");
        cr_assert_eq (
            pond_event_set_data (ev, (uint8_t *) b.sbuf.data, b.sbuf.size, err, sizeof err), 0);
        s_buf_destroy (&b);
        if (round == 0) {
            bytes = s_encode_ok (ev, &size);
            pad += POND_EVENT_MAX_SIZE - size;    //  same str16 header: exact
            free (bytes);
        }
        else if (round == 1) {
            bytes = s_encode_ok (ev, &size);
            cr_assert_eq (size, POND_EVENT_MAX_SIZE);
            pond_event_t *copy = s_decode_ok (bytes, size);
            pond_event_destroy (&copy);
            //  The same bytes with one more byte of padding, hand-made
            uint8_t *big = malloc (size + 1);
            memcpy (big, bytes, size);
            big [size] = 0xc0;
            s_expect_bad_event (big, size + 1, NULL, "65537 bytes");
            free (big);
            free (bytes);
            pad++;
        }
        else {
            err [0] = 0;
            size_t big_size = 7;
            cr_assert_null (pond_event_encode (ev, &big_size, err, sizeof err));
            cr_assert_not_null (strstr (err, "65536"), "%s", err);
            cr_assert_eq (pond_event_validate (ev, err, sizeof err), 0);
        }
        pond_event_destroy (&ev);
    }
    //  Decode refuses oversize first, whatever the bytes
    uint8_t *junk = calloc (1, POND_EVENT_MAX_SIZE + 1);
    err [0] = 0;
    cr_assert_null (pond_event_decode (junk, POND_EVENT_MAX_SIZE + 1, err, sizeof err));
    cr_assert_not_null (strstr (err, "limit"), "%s", err);
    cr_assert_null (pond_event_decode (junk, 10 * 1000 * 1000, err, sizeof err));
    free (junk);
}

//  =====================================================================
//  Event codec: the encoder refuses invalid events

Test (event, encode_refuses_bad_names)
{
    const char *bad [] = { "",
                           "quacked",
                           "Quacked",
                           "1QUACKED",
                           "_QUACKED",
                           "QUACK-ED",
                           "QUACK ED",
                           "QUACKED!",
                           "QUACK.ED",
                           ("QUACK\xc3\x89"
                            "D"),
                           "QUACKED\n",
                           " QUACKED",
                           "QUACKéD" };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        pond_event_t *ev = pond_event_new (NULL, "c");
        cr_assert_eq (pond_event_set_name (ev, bad [i]), 0);
        s_expect_bad_encode (ev, "name", bad [i]);
        pond_event_destroy (&ev);
    }
    //  64 characters fit; 65 do not even fit the field
    char name [POND_NAME_MAX + 2];
    memset (name, 'A', sizeof name - 1);
    name [POND_NAME_MAX + 1] = 0;
    pond_event_t *ev = pond_event_new ("OLD", "c");
    cr_assert_eq (pond_event_set_name (ev, name), -1);
    cr_assert_str_eq (pond_event_name (ev), "OLD", "a refused name leaves the old one");
    name [POND_NAME_MAX] = 0;
    cr_assert_eq (pond_event_set_name (ev, name), 0);
    size_t size;
    free (s_encode_ok (ev, &size));
    pond_event_destroy (&ev);
    //  A name never set is refused too
    ev = pond_event_new (NULL, "c");
    s_expect_bad_encode (ev, "name", "no name");
    pond_event_destroy (&ev);
}

Test (event, encode_refuses_bad_entity_and_source)
{
    const char *bad [] = { "",
                           ("a\x01"
                            "b"),
                           "tab\there",
                           "new\nline",
                           "del\x7f",
                           "\x1f" };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        pond_event_t *ev = pond_event_new ("A", NULL);
        cr_assert_eq (pond_event_set_entity (ev, bad [i]), 0);
        s_expect_bad_encode (ev, "entity", "bad entity");
        pond_event_destroy (&ev);
        if (*bad [i]) {    //  an empty source means "no source"
            ev = pond_event_new ("A", "c");
            cr_assert_eq (pond_event_set_source (ev, bad [i]), 0);
            s_expect_bad_encode (ev, "source", "bad source");
            pond_event_destroy (&ev);
        }
    }
    char text [POND_ENTITY_MAX + 2];
    memset (text, 'e', sizeof text - 1);
    text [POND_ENTITY_MAX + 1] = 0;
    pond_event_t *ev = pond_event_new ("A", "keep");
    cr_assert_eq (pond_event_set_entity (ev, text), -1, "129 bytes do not fit");
    cr_assert_eq (pond_event_set_source (ev, text), -1);
    cr_assert_str_eq (pond_event_entity (ev), "keep");
    text [POND_ENTITY_MAX] = 0;
    cr_assert_eq (pond_event_set_entity (ev, text), 0, "128 bytes do");
    cr_assert_eq (pond_event_set_source (ev, NULL), 0);
    cr_assert_str_eq (pond_event_source (ev), "");
    size_t size;
    free (s_encode_ok (ev, &size));
    pond_event_destroy (&ev);
}

Test (event, encode_refuses_bad_ts_and_nil_id)
{
    const uint64_t bad [] = { 0, POND_TIME_MAX + 1, UINT64_MAX };
    for (size_t i = 0; i < 3; i++) {
        pond_event_t *ev = pond_event_new ("A", "c");
        pond_event_set_ts (ev, bad [i]);
        s_expect_bad_encode (ev, "ts", "bad ts");
        pond_event_destroy (&ev);
    }
    pond_event_t *ev = pond_event_new ("A", "c");
    pond_event_set_id (ev, s_nil_id);
    s_expect_bad_encode (ev, "id", "nil id");
    //  A nil causation is not forbidden; a nil id is
    pond_event_set_id (ev, s_id_a);
    pond_event_set_causation (ev, s_nil_id);
    size_t size;
    uint8_t *bytes = s_encode_ok (ev, &size);
    pond_event_t *copy = s_decode_ok (bytes, size);
    cr_assert_arr_eq (pond_event_causation (copy), s_nil_id, 16);
    pond_event_set_causation (ev, NULL);
    cr_assert_null (pond_event_causation (ev));
    free (bytes);
    pond_event_destroy (&copy);
    pond_event_destroy (&ev);
}

Test (event, set_data_refuses_what_is_not_one_map)
{
    pond_event_t *ev = pond_event_new ("A", "c");
    struct {
        const char *raw;
        size_t len;
        const char *what;
    } bad [] = {
        { "\x91\x01", 2, "array" },
        { "\xa3"
          "abc",
          4, "str" },
        { "\x05", 1, "int" },
        { "\xc0", 1, "nil" },
        { "\x80\x80", 2, "two maps" },
        { "\x81\xa1"
          "a",
          3, "truncated map" },
        { "\x81\xa1"
          "a\xc1",
          4, "invalid byte" },
        { "", 0, "empty" },
        { "\xdf\xff\xff\xff\xff", 5, "map32 lying" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        char err [POND_ERR_SIZE] = "";
        cr_assert_eq (
            pond_event_set_data (ev, (const uint8_t *) bad [i].raw, bad [i].len, err, sizeof err),
            -1, "%s", bad [i].what);
        cr_assert (s_mentions (err, "data"), "%s: %s", bad [i].what, err);
        err [0] = 0;
        cr_assert_eq (
            pond_event_set_meta (ev, (const uint8_t *) bad [i].raw, bad [i].len, err, sizeof err),
            -1, "%s", bad [i].what);
        cr_assert (s_mentions (err, "meta"), "%s: %s", bad [i].what, err);
    }
    size_t dsize;
    cr_assert_null (pond_event_data (ev, &dsize), "a refused data leaves none");
    const char *bad_json [] = { "[1,2]", "3", "\"x\"", "null", "{", "{\"a\":}", "{} {}", "" };
    for (size_t i = 0; i < sizeof bad_json / sizeof bad_json [0]; i++) {
        char err [POND_ERR_SIZE] = "";
        cr_assert_eq (pond_event_set_data_json (ev, bad_json [i], err, sizeof err), -1, "%s",
                      bad_json [i]);
        cr_assert (s_mentions (err, "data"), "%s: %s", bad_json [i], err);
        err [0] = 0;
        cr_assert_eq (pond_event_set_meta_json (ev, bad_json [i], err, sizeof err), -1, "%s",
                      bad_json [i]);
        cr_assert (s_mentions (err, "meta"), "%s: %s", bad_json [i], err);
    }
    //  A good map replaces, a later bad one leaves it in place
    char err [POND_ERR_SIZE];
    cr_assert_eq (pond_event_set_data_json (ev, "{\"a\":1}", err, sizeof err), 0);
    cr_assert_eq (pond_event_set_data_json (ev, "[1]", err, sizeof err), -1);
    const uint8_t *data = pond_event_data (ev, &dsize);
    cr_assert_eq (dsize, 4);
    cr_assert_arr_eq (data,
                      "\x81\xa1"
                      "a\x01",
                      4);
    pond_event_destroy (&ev);
}

//  =====================================================================
//  Event codec: the decoder rejects

Test (event, decode_rejects_non_maps)
{
    struct {
        const char *raw;
        size_t len;
    } bad [] = {
        { "\x90", 1 },
        { "\x91\x01", 2 },
        { "\xdc\x00\x00", 3 },
        { "\xa3"
          "abc",
          4 },
        { "\x01", 1 },
        { "\xff", 1 },
        { "\xcb\x00\x00\x00\x00\x00\x00\x00\x00", 9 },
        { "\xc0", 1 },
        { "\xc3", 1 },
        { "\xc4\x01\x00", 3 },
        { "\xd4\x01\x00", 3 },
        { "\x80", 1 },    //  a map, but an empty one: missing keys
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++)
        s_expect_bad_event ((const uint8_t *) bad [i].raw, bad [i].len, NULL, "not an event map");
    char err [POND_ERR_SIZE] = "";
    cr_assert_null (pond_event_decode ((const uint8_t *) "", 0, err, sizeof err));
    cr_assert (*err);
    err [0] = 0;
    cr_assert_null (pond_event_decode (NULL, 0, err, sizeof err));
    cr_assert (*err);
    err [0] = 0;
    cr_assert_null (pond_event_decode ((const uint8_t *) "\x91\x01", 2, err, sizeof err));
    cr_assert_not_null (strstr (err, "map"), "%s", err);
}

Test (event, decode_rejects_every_truncation_and_trailing_bytes)
{
    pond_event_t *ev = s_full_event ();
    size_t size;
    uint8_t *bytes = s_encode_ok (ev, &size);
    for (size_t cut = 0; cut < size; cut++) {
        char what [32];
        snprintf (what, sizeof what, "cut at %zu", cut);
        s_expect_bad_event (bytes, cut, NULL, what);
    }
    uint8_t *longer = malloc (size + 3);
    memcpy (longer, bytes, size);
    memcpy (longer + size, "\xc0\x01\x02", 3);
    for (size_t extra = 1; extra <= 3; extra++) {
        char err [POND_ERR_SIZE] = "";
        cr_assert_null (pond_event_decode (longer, size + extra, err, sizeof err));
        cr_assert_not_null (strstr (err, "trailing"), "%s", err);
    }
    //  Two events back to back are not one event
    uint8_t *two = malloc (size * 2);
    memcpy (two, bytes, size);
    memcpy (two + size, bytes, size);
    s_expect_bad_event (two, size * 2, NULL, "two events");
    free (two);
    free (longer);
    free (bytes);
    pond_event_destroy (&ev);
}

Test (event, decode_rejects_missing_required_keys)
{
    const char *required [] = { "id", "name", "ts", "entity" };
    for (size_t i = 0; i < 4; i++) {
        size_t size;
        uint8_t *bytes = s_map_bytes (EVENT_KVS, required [i], NULL, &size);
        s_expect_bad_event (bytes, size, required [i], required [i]);
        free (bytes);
    }
    //  The four together are enough
    size_t size;
    uint8_t *bytes = s_map_bytes (EVENT_KVS, NULL, NULL, &size);
    pond_event_t *ev = s_decode_ok (bytes, size);
    cr_assert_eq (pond_event_ts (ev), 0x12345678);
    pond_event_destroy (&ev);
    free (bytes);
}

//  A value, raw, for a key; 'ok' tells whether the decoder must accept
typedef struct {
    const char *key;
    const char *raw;
    size_t len;
    bool ok;
    const char *what;
} case_t;

#define BAD(k, lit, what) \
    { \
        (k), (lit), sizeof (lit) - 1, false, (what) \
    }
#define GOOD(k, lit, what) \
    { \
        (k), (lit), sizeof (lit) - 1, true, (what) \
    }

static const case_t s_event_cases [] = {
    //  id
    BAD ("id",
         "\xb0"
         "0123456789abcdef",
         "id as str"),
    BAD ("id",
         "\xc4\x0f"
         "0123456789abcde",
         "id bin 15"),
    BAD ("id",
         "\xc4\x11"
         "0123456789abcdefg",
         "id bin 17"),
    BAD ("id", "\xc4\x00", "id bin 0"),
    BAD ("id",
         "\xc4\x10"
         "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
         "nil id"),
    BAD ("id", "\x01", "id as int"),
    BAD ("id", "\xc0", "id nil"),
    BAD ("id",
         "\xd8\x01"
         "0123456789abcdef",
         "id as fixext16"),
    BAD ("id", "\xdc\x00\x00", "id as array"),
    GOOD ("id",
          "\xc5\x00\x10"
          "0123456789abcdef",
          "id as bin16 header"),
    //  name
    BAD ("name", "\x01", "name as int"),
    BAD ("name",
         "\xc4\x07"
         "QUACKED",
         "name as bin"),
    BAD ("name", "\xa0", "empty name"),
    BAD ("name",
         "\xa7"
         "quacked",
         "lower-case name"),
    BAD ("name",
         "\xa7"
         "Quacked",
         "mixed-case name"),
    BAD ("name",
         "\xa7"
         "1QUACKE",
         "leading digit"),
    BAD ("name",
         "\xa7"
         "_QUACKE",
         "leading underscore"),
    BAD ("name",
         "\xa7"
         "QUACK-D",
         "dash"),
    BAD ("name",
         "\xa7"
         "QUACK D",
         "space"),
    BAD ("name",
         "\xa7"
         "QUACKD!",
         "bang"),
    BAD ("name",
         "\xa7"
         "QUA\0KED",
         "NUL inside"),
    BAD ("name",
         "\xa8"
         "QUACK\xc3\x89"
         "D",
         "non-ASCII"),
    GOOD ("name",
          "\xa7"
          "A1_B2_C",
          "digits and underscores"),
    BAD ("name", "\xc0", "name nil"),
    //  ts
    BAD ("ts", "\xff", "ts -1"),
    BAD ("ts", "\xd3\xff\xff\xff\xff\xff\xff\xff\xfb", "ts int64 -5"),
    BAD ("ts", "\xcb\x42\xd7\x52\x4e\x3a\x6a\x00\x00", "ts float64"),
    BAD ("ts", "\xca\x3f\xc0\x00\x00", "ts float32"),
    BAD ("ts",
         "\xa3"
         "123",
         "ts as str"),
    BAD ("ts", "\x00", "ts 0"),
    BAD ("ts", "\xcf\x03\x84\x44\x0c\xcc\x73\x60\x00", "ts max+1"),
    GOOD ("ts", "\xcf\x03\x84\x44\x0c\xcc\x73\x5f\xff", "ts max"),
    BAD ("ts", "\xcf\xff\xff\xff\xff\xff\xff\xff\xff", "ts uint64 max"),
    BAD ("ts", "\xc0", "ts nil"),
    BAD ("ts", "\xc3", "ts true"),
    GOOD ("ts", "\x01", "ts 1"),
    GOOD ("ts", "\xd0\x05", "ts 5 as int8"),
    //  entity
    BAD ("entity",
         "\xc4\x03"
         "abc",
         "entity as bin"),
    BAD ("entity", "\x07", "entity as int"),
    BAD ("entity", "\xa0", "entity empty"),
    BAD ("entity",
         "\xa3"
         "a\x01"
         "b",
         "entity with 0x01"),
    BAD ("entity",
         "\xa3"
         "a\x7f"
         "b",
         "entity with DEL"),
    BAD ("entity",
         "\xa3"
         "a\nb",
         "entity with newline"),
    BAD ("entity",
         "\xa3"
         "a\0b",
         "entity with NUL"),
    BAD ("entity", "\xc0", "entity nil"),
    BAD ("entity",
         "\x91\xa1"
         "a",
         "entity as array"),
    //  source (optional)
    BAD ("source", "\xa0", "source empty"),
    BAD ("source", "\x05", "source as int"),
    BAD ("source",
         "\xa2"
         "\x1b"
         "x",
         "source with ESC"),
    BAD ("source",
         "\xc4\x01"
         "s",
         "source as bin"),
    GOOD ("source",
          "\xa6"
          "silo-7",
          "source"),
    //  causation (optional)
    BAD ("causation",
         "\xb0"
         "0123456789abcdef",
         "causation as str"),
    BAD ("causation",
         "\xc4\x0f"
         "0123456789abcde",
         "causation bin 15"),
    BAD ("causation", "\xc0", "causation nil"),
    GOOD ("causation",
          "\xc4\x10"
          "0123456789abcdef",
          "causation"),
    //  data and meta (optional)
    BAD ("data", "\x92\x01\x02", "data array"),
    BAD ("data",
         "\xa3"
         "abc",
         "data str"),
    BAD ("data", "\x01", "data int"),
    BAD ("data", "\xc0", "data nil"),
    BAD ("data",
         "\xc4\x01"
         "x",
         "data bin"),
    GOOD ("data", "\x80", "data empty map"),
    BAD ("data", "\x81\x01\x02", "data with an int key"),
    BAD ("meta",
         "\xa3"
         "abc",
         "meta str"),
    BAD ("meta", "\x90", "meta array"),
    BAD ("meta", "\xc3", "meta bool"),
    GOOD ("meta",
          "\x81\xa1"
          "a\xc0",
          "meta"),
    //  seq (optional, set by the store)
    BAD ("seq", "\x00", "seq 0"),
    BAD ("seq",
         "\xa1"
         "1",
         "seq as str"),
    BAD ("seq", "\xff", "seq -1"),
    BAD ("seq", "\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00", "seq 1.0"),
    BAD ("seq", "\xc0", "seq nil"),
    GOOD ("seq", "\x01", "seq 1"),
    GOOD ("seq", "\xcf\xff\xff\xff\xff\xff\xff\xff\xff", "seq max"),
};

Test (event, decode_checks_each_key_type_and_rule)
{
    size_t ncases = sizeof s_event_cases / sizeof s_event_cases [0];
    for (size_t i = 0; i < ncases; i++) {
        const case_t *c = &s_event_cases [i];
        kv_t over = { c->key, c->raw, c->len };
        size_t size;
        uint8_t *bytes = s_map_bytes (EVENT_KVS, NULL, &over, &size);
        if (c->ok) {
            char err [POND_ERR_SIZE] = "";
            pond_event_t *ev = pond_event_decode (bytes, size, err, sizeof err);
            cr_assert_not_null (ev, "%s: refused: %s", c->what, err);
            //  and what was accepted encodes and decodes again
            size_t size2;
            uint8_t *bytes2 = s_encode_ok (ev, &size2);
            pond_event_t *again = s_decode_ok (bytes2, size2);
            free (bytes2);
            pond_event_destroy (&again);
            pond_event_destroy (&ev);
        }
        else
            s_expect_bad_event (bytes, size, c->key, c->what);
        free (bytes);
    }
}

Test (event, decode_name_length_limits)
{
    char text [POND_NAME_MAX + 1];
    memset (text, 'A', sizeof text);
    for (size_t len = POND_NAME_MAX; len <= POND_NAME_MAX + 1; len++) {
        buf_t b;
        s_buf_init (&b);
        s_buf_strn (&b, text, len);
        kv_t over = { "name", b.sbuf.data, b.sbuf.size };
        size_t size;
        uint8_t *bytes = s_map_bytes (EVENT_KVS, NULL, &over, &size);
        if (len == POND_NAME_MAX) {
            pond_event_t *ev = s_decode_ok (bytes, size);
            cr_assert_eq (strlen (pond_event_name (ev)), POND_NAME_MAX);
            pond_event_destroy (&ev);
        }
        else
            s_expect_bad_event (bytes, size, "name", "65 chars");
        free (bytes);
        s_buf_destroy (&b);
    }
}

Test (event, decode_entity_length_limits)
{
    char raw [3 + 129];
    raw [0] = (char) 0xd9;
    memset (raw + 2, 'e', 129);
    raw [1] = (char) 128;
    const char *keys [] = { "entity", "source" };
    for (int k = 0; k < 2; k++) {
        kv_t over = { keys [k], raw, 2 + 128 };
        size_t size;
        uint8_t *bytes = s_map_bytes (EVENT_KVS, NULL, &over, &size);
        pond_event_t *ev = s_decode_ok (bytes, size);
        cr_assert_eq (strlen (k ? pond_event_source (ev) : pond_event_entity (ev)), 128);
        pond_event_destroy (&ev);
        free (bytes);
        raw [1] = (char) 129;
        over.len = 2 + 129;
        bytes = s_map_bytes (EVENT_KVS, NULL, &over, &size);
        s_expect_bad_event (bytes, size, keys [k], "129 bytes");
        free (bytes);
        raw [1] = (char) 128;
    }
}

Test (event, decode_rejects_duplicate_unknown_and_non_str_keys)
{
    //  A key given twice, for each key (even with the same value)
    const char *keys [] = { "id", "name", "ts", "entity" };
    for (int k = 0; k < 4; k++) {
        buf_t b;
        s_buf_init (&b);
        msgpack_pack_map (&b.pk, 5);
        for (size_t i = 0; i < 4; i++) {
            s_buf_str (&b, s_event_kvs [i].key);
            s_buf_raw (&b, s_event_kvs [i].raw, s_event_kvs [i].len);
        }
        s_buf_str (&b, keys [k]);
        s_buf_raw (&b, s_event_kvs [k].raw, s_event_kvs [k].len);
        s_expect_bad_event ((uint8_t *) b.sbuf.data, b.sbuf.size, keys [k], "duplicate");
        s_buf_destroy (&b);
    }
    struct {
        const char *key;
        const char *raw;
        size_t len;
    } dups [] = {
        { "data", "\x80", 1 },
        { "meta", "\x80", 1 },
        { "seq", "\x01", 1 },
        { "source",
          "\xa1"
          "s",
          2 },
        { "causation", ID_RAW, 18 },
    };
    for (size_t d = 0; d < sizeof dups / sizeof dups [0]; d++) {
        buf_t b;
        s_buf_init (&b);
        msgpack_pack_map (&b.pk, 6);
        for (size_t i = 0; i < 4; i++) {
            s_buf_str (&b, s_event_kvs [i].key);
            s_buf_raw (&b, s_event_kvs [i].raw, s_event_kvs [i].len);
        }
        for (int twice = 0; twice < 2; twice++) {
            s_buf_str (&b, dups [d].key);
            s_buf_raw (&b, dups [d].raw, dups [d].len);
        }
        s_expect_bad_event ((uint8_t *) b.sbuf.data, b.sbuf.size, dups [d].key, "duplicate");
        s_buf_destroy (&b);
    }
    //  Unknown keys are refused, and named (case matters)
    const char *unknown [] = { "color", "ID", "Name", "time", "seq ", "" };
    for (size_t i = 0; i < sizeof unknown / sizeof unknown [0]; i++) {
        kv_t over = { unknown [i], "\x01", 1 };
        size_t size;
        uint8_t *bytes = s_map_bytes (EVENT_KVS, NULL, &over, &size);
        s_expect_bad_event (bytes, size, unknown [i], unknown [i]);
        free (bytes);
    }
    //  A very long unknown key is quoted, shortened, without overflow
    char long_key [300];
    memset (long_key, 'k', sizeof long_key - 1);
    long_key [sizeof long_key - 1] = 0;
    kv_t over = { long_key, "\x01", 1 };
    size_t size;
    uint8_t *bytes = s_map_bytes (EVENT_KVS, NULL, &over, &size);
    char err [POND_ERR_SIZE] = "";
    cr_assert_null (pond_event_decode (bytes, size, err, sizeof err));
    cr_assert_lt (strlen (err), POND_ERR_SIZE);
    cr_assert_not_null (strstr (err, "unknown"), "%s", err);
    free (bytes);
    //  A tiny err buffer is still NUL-terminated
    char tiny [8];
    memset (tiny, 'x', sizeof tiny);
    cr_assert_null (pond_event_decode ((const uint8_t *) "\x90", 1, tiny, sizeof tiny));
    cr_assert_lt (strlen (tiny), sizeof tiny);

    //  Keys that are not str: int, bin spelling "id", nil, array
    struct {
        const char *raw;
        size_t len;
    } keys_raw [] = {
        { "\x01", 1 },
        { "\xc4\x02"
          "id",
          4 },
        { "\xc0", 1 },
        { "\x90", 1 },
        { "\x80", 1 },
    };
    for (size_t i = 0; i < sizeof keys_raw / sizeof keys_raw [0]; i++) {
        buf_t b;
        s_buf_init (&b);
        msgpack_pack_map (&b.pk, 5);
        s_buf_raw (&b, keys_raw [i].raw, keys_raw [i].len);
        s_buf_raw (&b, "\x01", 1);
        for (size_t j = 0; j < 4; j++) {
            s_buf_str (&b, s_event_kvs [j].key);
            s_buf_raw (&b, s_event_kvs [j].raw, s_event_kvs [j].len);
        }
        err [0] = 0;
        cr_assert_null (pond_event_decode ((uint8_t *) b.sbuf.data, b.sbuf.size, err, sizeof err));
        cr_assert_not_null (strstr (err, "str"), "%s", err);
        s_buf_destroy (&b);
    }
}

Test (event, decode_rejects_hostile_container_headers, .timeout = 5)
{
    //  Each declares far more than it holds; none may allocate for it
    struct {
        const char *raw;
        size_t len;
        const char *what;
    } bad [] = {
        { "\xdd\xff\xff\xff\xff", 5, "array32 of 4 billion" },
        { "\xdd\xff\xff\xff\xff\x01\x02\x03", 8, "array32 of 4 billion, 3 given" },
        { "\xdf\xff\xff\xff\xff", 5, "map32 of 4 billion" },
        { "\xdf\xff\xff\xff\xff\xa2"
          "id",
          8, "map32 of 4 billion, a key given" },
        { "\xdf\x80\x00\x00\x00\x01\x01", 7, "map32 of 2^31 (2^32 children)" },
        { "\xdc\xff\xff", 3, "array16 of 65535" },
        { "\xde\xff\xff\x01\x01", 5, "map16 of 65535" },
        { "\xdb\xff\xff\xff\xff"
          "A",
          6, "str32 beyond the buffer" },
        { "\xc6\xff\xff\xff\xff"
          "A",
          6, "bin32 beyond the buffer" },
        { "\xc9\xff\xff\xff\xff\x01"
          "A",
          7, "ext32 beyond the buffer" },
        { "\xc9\xff\xff\xff\xff", 5, "ext32 no type" },
        { "\xda\xff\xff", 3, "str16 beyond the buffer" },
        { "\xc1", 1, "never-used byte 0xc1" },
        { "\x81\xdb\xff\xff\xff\xff", 6, "map with a str32 key beyond" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        s_expect_bad_event ((const uint8_t *) bad [i].raw, bad [i].len, NULL, bad [i].what);
        char err [POND_ERR_SIZE] = "";
        size_t used;
        cr_assert_eq (
            pond_value_check ((const uint8_t *) bad [i].raw, bad [i].len, &used, err, sizeof err),
            -1, "%s", bad [i].what);
        cr_assert (*err);
    }
    //  The same lies inside data, meta and as a value of a known key
    const char *where [] = { "data", "meta", "entity", "id" };
    const char *lies [] = { "\xdf\xff\xff\xff\xff", "\xdd\xff\xff\xff\xff", "\xdb\xff\xff\xff\xff",
                            "\xc6\xff\xff\xff\xff", "\xc9\xff\xff\xff\xff" };
    for (int w = 0; w < 4; w++)
        for (int l = 0; l < 5; l++) {
            //  the lie is the last value, so the declared length runs off the end
            buf_t b;
            s_buf_init (&b);
            bool extra = !streq (where [w], "entity") && !streq (where [w], "id");
            msgpack_pack_map (&b.pk, 4 + extra);
            for (size_t j = 0; j < 4; j++) {
                if (streq (s_event_kvs [j].key, where [w]))
                    continue;
                s_buf_str (&b, s_event_kvs [j].key);
                s_buf_raw (&b, s_event_kvs [j].raw, s_event_kvs [j].len);
            }
            s_buf_str (&b, where [w]);
            s_buf_raw (&b, lies [l], 5);
            s_buf_raw (&b,
                       "\x81\xa1"
                       "a\x01",
                       4);
            s_expect_bad_event ((uint8_t *) b.sbuf.data, b.sbuf.size, NULL, where [w]);
            s_buf_destroy (&b);
        }
}

//  An event whose data is 'levels' nested containers: the data map, then
//  arrays, the innermost holding one int.
static uint8_t *
s_nested_event (int levels, const char *key, size_t *size_p)
{
    buf_t b;
    s_buf_init (&b);
    msgpack_pack_map (&b.pk, 5);
    for (size_t j = 0; j < 4; j++) {
        s_buf_str (&b, s_event_kvs [j].key);
        s_buf_raw (&b, s_event_kvs [j].raw, s_event_kvs [j].len);
    }
    s_buf_str (&b, key);
    s_buf_raw (&b,
               "\x81\xa1"
               "a",
               3);
    for (int i = 1; i < levels; i++)
        s_buf_raw (&b, "\x91", 1);
    s_buf_raw (&b, "\x01", 1);
    *size_p = b.sbuf.size;
    return (uint8_t *) msgpack_sbuffer_release (&b.sbuf);
}

Test (event, decode_nesting_limit)
{
    //  PROTOCOL.md: data and meta nest at most 16 deep (inside the envelope)
    const char *keys [] = { "data", "meta" };
    for (int k = 0; k < 2; k++) {
        size_t size;
        uint8_t *bytes = s_nested_event (POND_VALUE_MAX_DEPTH, keys [k], &size);
        pond_event_t *ev = s_decode_ok (bytes, size);
        size_t size2;
        uint8_t *bytes2 = s_encode_ok (ev, &size2);
        cr_assert_eq (size2, size);
        free (bytes2);
        pond_event_destroy (&ev);
        free (bytes);
        for (int levels = POND_VALUE_MAX_DEPTH + 1; levels < 40; levels += 11) {
            bytes = s_nested_event (levels, keys [k], &size);
            char err [POND_ERR_SIZE] = "";
            cr_assert_null (pond_event_decode (bytes, size, err, sizeof err), "%d levels", levels);
            cr_assert_not_null (strstr (err, "deep"), "%s", err);
            free (bytes);
        }
    }
    //  100,000 nested arrays: refused without recursing 100,000 deep
    size_t deep = 100000;
    uint8_t *bytes = malloc (deep + 1);
    memset (bytes, 0x91, deep);
    bytes [deep] = 0x01;
    s_expect_bad_event (bytes, deep + 1, NULL, "100000 deep");
    memset (bytes, 0x81, deep);
    s_expect_bad_event (bytes, deep + 1, NULL, "100000 deep maps");
    free (bytes);
}

Test (event, data_depth_set_encode_decode_agree)
{
    //  Whatever set_data accepts, encode sends and decode takes back
    for (int levels = 1; levels <= POND_VALUE_MAX_DEPTH + 2; levels++) {
        buf_t b;
        s_buf_init (&b);
        s_buf_raw (&b,
                   "\x81\xa1"
                   "a",
                   3);
        for (int i = 1; i < levels; i++)
            s_buf_raw (&b, "\x91", 1);
        s_buf_raw (&b, "\x01", 1);
        pond_event_t *ev = pond_event_new ("DEEP", "c");
        char err [POND_ERR_SIZE] = "";
        int rc = pond_event_set_data (ev, (uint8_t *) b.sbuf.data, b.sbuf.size, err, sizeof err);
        cr_assert_eq (rc, levels <= POND_VALUE_MAX_DEPTH ? 0 : -1, "%d levels: %s", levels, err);
        if (rc == 0) {
            size_t size;
            uint8_t *bytes = s_encode_ok (ev, &size);
            pond_event_t *copy = s_decode_ok (bytes, size);
            pond_event_destroy (&copy);
            free (bytes);
        }
        //  The same from JSON
        char json [256] = "{\"a\":";
        for (int i = 1; i < levels; i++)
            strcat (json, "[");
        strcat (json, "1");
        for (int i = 1; i < levels; i++)
            strcat (json, "]");
        strcat (json, "}");
        err [0] = 0;
        rc = pond_event_set_meta_json (ev, json, err, sizeof err);
        cr_assert_eq (rc, levels <= POND_VALUE_MAX_DEPTH ? 0 : -1, "%d levels: %s", levels, err);
        if (rc == 0) {
            size_t size;
            uint8_t *bytes = s_encode_ok (ev, &size);
            pond_event_t *copy = s_decode_ok (bytes, size);
            pond_event_destroy (&copy);
            free (bytes);
        }
        else
            cr_assert_not_null (strstr (err, "deep"), "%s", err);
        pond_event_destroy (&ev);
        s_buf_destroy (&b);
    }
}

//  =====================================================================
//  The decoder keeps bytes as they are: round trips and a reference

//  Raw big-endian helpers for hand-made msgpack
static void
s_buf_be (buf_t *b, uint8_t tag, uint64_t value, size_t n)
{
    uint8_t raw [9] = { tag };
    for (size_t i = 0; i < n; i++)
        raw [1 + i] = (uint8_t) (value >> (8 * (n - 1 - i)));
    s_buf_raw (b, raw, 1 + n);
}

//  The events whose bytes must never change: every field, the minimum,
//  and data and meta nested deep with every type in its every width.
static uint8_t *
s_kept_event (int which, size_t *size_p)
{
    buf_t b;
    s_buf_init (&b);
    bool nested = which == 2;
    msgpack_pack_map (&b.pk, which == 1 ? 4 : 9);
    s_buf_str (&b, "id");
    msgpack_pack_bin (&b.pk, 16);
    msgpack_pack_bin_body (&b.pk, which == 1 ? s_id_b : s_id_a, 16);
    s_buf_str (&b, "name");
    s_buf_str (&b, which == 1 ? "A" : "BUTTON_CLICKED");
    s_buf_str (&b, "ts");
    msgpack_pack_uint64 (&b.pk, TS_2022 + (uint64_t) which);
    s_buf_str (&b, "entity");
    s_buf_str (&b, which == 1 ? "e" : "customer \xc3\xa9 42");
    if (which != 1) {
        s_buf_str (&b, "source");
        s_buf_str (&b, "silo-7");
        s_buf_str (&b, "causation");
        msgpack_pack_bin (&b.pk, 16);
        msgpack_pack_bin_body (&b.pk, s_id_b, 16);
        s_buf_str (&b, "meta");
        msgpack_pack_map (&b.pk, 2);
        s_buf_str (&b, "trace");
        msgpack_pack_map (&b.pk, 2);
        s_buf_str (&b, "id");
        s_buf_str (&b, "t-42");
        s_buf_str (&b, "hops");
        msgpack_pack_array (&b.pk, 2);
        msgpack_pack_map (&b.pk, 1);
        s_buf_str (&b, "n");
        msgpack_pack_int (&b.pk, 1);
        msgpack_pack_map (&b.pk, 1);
        s_buf_str (&b, "n");
        msgpack_pack_int (&b.pk, 2);
        s_buf_str (&b, "performer");
        s_buf_str (&b, "silo-7");
        s_buf_str (&b, "data");
        msgpack_pack_map (&b.pk, nested ? 3 : 2);
        s_buf_str (&b, "duration_ms");
        msgpack_pack_uint32 (&b.pk, 350);
        s_buf_str (&b, "deep");
        //  {"l1": {"l2": ... 13 levels ... [every type, a map16]}}: 16 deep
        int levels = nested ? 13 : 1;
        for (int i = 0; i < levels; i++) {
            char key [16];
            snprintf (key, sizeof key, "l%d", i + 1);
            msgpack_pack_map (&b.pk, 1);
            s_buf_str (&b, key);
        }
        msgpack_pack_array (&b.pk, 20);
        msgpack_pack_nil (&b.pk);
        msgpack_pack_true (&b.pk);
        msgpack_pack_uint64 (&b.pk, 127);
        msgpack_pack_uint64 (&b.pk, 128);
        msgpack_pack_uint64 (&b.pk, 65535);
        msgpack_pack_uint64 (&b.pk, 65536);
        msgpack_pack_uint64 (&b.pk, UINT64_MAX);
        msgpack_pack_int64 (&b.pk, -32);
        msgpack_pack_int64 (&b.pk, -33);
        msgpack_pack_int64 (&b.pk, -40000);
        msgpack_pack_int64 (&b.pk, INT64_MIN);
        msgpack_pack_float (&b.pk, 1.5f);
        msgpack_pack_double (&b.pk, -0.1);
        char text [300];
        memset (text, 'x', sizeof text);
        s_buf_strn (&b, text, 40);
        s_buf_strn (&b, text, 300);
        msgpack_pack_bin (&b.pk, 3);
        msgpack_pack_bin_body (&b.pk, "\x00\x01\xff", 3);
        //  (ext types and non-str keys are refused: bin and str keys, same JSON)
        msgpack_pack_bin (&b.pk, 4);
        msgpack_pack_bin_body (&b.pk, "abcd", 4);
        msgpack_pack_bin (&b.pk, 3);
        msgpack_pack_bin_body (&b.pk, "abc", 3);
        msgpack_pack_array (&b.pk, 0);
        msgpack_pack_map (&b.pk, 17);
        for (int i = 0; i < 17; i++) {
            char key [8];
            snprintf (key, sizeof key, "%d", i);
            s_buf_str (&b, key);
            msgpack_pack_int (&b.pk, -i);
        }
        if (nested) {
            s_buf_str (&b, "");
            msgpack_pack_map (&b.pk, 0);
        }
        s_buf_str (&b, "seq");
        msgpack_pack_uint64 (&b.pk, 5000000000ULL);
    }
    *size_p = b.sbuf.size;
    return (uint8_t *) msgpack_sbuffer_release (&b.sbuf);
}

//  The JSON of each kept event, as pond rendered it before the decoder
//  kept data and meta bytes as they are
#define X10  "xxxxxxxxxx"
#define X40  X10 X10 X10 X10
#define X100 X10 X10 X10 X10 X10 X10 X10 X10 X10 X10
#define X300 X100 X100 X100
#define EVERY_TYPE_JSON \
    "[null,true,127,128,65535,65536,18446744073709551615,-32,-33,-40000," \
    "-9223372036854775808,1.5,-0.1,\"" X40 "\",\"" X300 "\",\"0001ff\"," \
    "\"61626364\",\"616263\",[],{\"0\":0,\"1\":-1,\"2\":-2,\"3\":-3,\"4\":-4," \
    "\"5\":-5,\"6\":-6,\"7\":-7,\"8\":-8,\"9\":-9,\"10\":-10,\"11\":-11," \
    "\"12\":-12,\"13\":-13,\"14\":-14,\"15\":-15,\"16\":-16}]"
#define KEPT_HEAD(ts) \
    "{\"seq\":5000000000,\"id\":\"018f3a5b-6c7d-7e8f-90a1-b2c3d4e5f607\"," \
    "\"name\":\"BUTTON_CLICKED\",\"ts\":164099520000000" ts "," \
    "\"time\":\"2022-01-01T00:00:00.00000" ts "Z\"," \
    "\"entity\":\"customer \xc3\xa9 42\",\"source\":\"silo-7\"," \
    "\"causation\":\"ffeeddcc-bbaa-7988-9766-554433221100\"," \
    "\"meta\":{\"trace\":{\"id\":\"t-42\",\"hops\":[{\"n\":1},{\"n\":2}]}," \
    "\"performer\":\"silo-7\"},\"data\":{\"duration_ms\":350,"

static const char *s_kept_json [] = {
    KEPT_HEAD ("0") "\"deep\":{\"l1\":" EVERY_TYPE_JSON "}}}",
    "{\"id\":\"ffeeddcc-bbaa-7988-9766-554433221100\",\"name\":\"A\","
    "\"ts\":1640995200000001,\"time\":\"2022-01-01T00:00:00.000001Z\","
    "\"entity\":\"e\"}",
    KEPT_HEAD ("2") "\"deep\":{\"l1\":{\"l2\":{\"l3\":{\"l4\":{\"l5\":{\"l6\":{\"l7\":"
                    "{\"l8\":{\"l9\":{\"l10\":{\"l11\":{\"l12\":{\"l13\":" EVERY_TYPE_JSON
                    "}}}}}}}}}}}}},\"\":{}}}"
};

Test (event, decode_encode_keeps_every_byte)
{
    //  Stored events, derived ids and view dumps depend on these bytes:
    //  decode then encode gives them back, alone, back to back (as in a
    //  CHUNK) and from a copy, and the JSON is what it always was
    buf_t packed;
    s_buf_init (&packed);
    uint8_t *bytes [3];
    size_t sizes [3];
    for (int which = 0; which < 3; which++) {
        bytes [which] = s_kept_event (which, &sizes [which]);
        s_buf_raw (&packed, bytes [which], sizes [which]);
        pond_event_t *ev = s_decode_ok (bytes [which], sizes [which]);
        size_t size;
        uint8_t *again = s_encode_ok (ev, &size);
        cr_assert_eq (size, sizes [which], "event %d", which);
        cr_assert_arr_eq (again, bytes [which], size, "event %d", which);
        free (again);
        char *json = pond_event_to_json (ev);
        cr_assert_str_eq (json, s_kept_json [which]);
        free (json);
        pond_event_t *copy = pond_event_dup (ev);
        again = s_encode_ok (copy, &size);
        cr_assert_eq (size, sizes [which]);
        cr_assert_arr_eq (again, bytes [which], size);
        free (again);
        //  A decoded event's data can be replaced and cleared
        char err [POND_ERR_SIZE] = "";
        cr_assert_eq (pond_event_set_data_json (ev, "{\"a\":1}", err, sizeof err), 0, "%s", err);
        cr_assert_eq (pond_event_set_meta (ev, NULL, 0, err, sizeof err), 0);
        size_t dsize;
        cr_assert_arr_eq (pond_event_data (ev, &dsize),
                          "\x81\xa1"
                          "a"
                          "\x01",
                          4);
        pond_event_destroy (&copy);
        pond_event_destroy (&ev);
    }
    size_t at = 0;
    for (int which = 0; which < 3; which++) {
        char err [POND_ERR_SIZE] = "";
        size_t used = 0;
        pond_event_t *ev = pond_event_decode_next ((uint8_t *) packed.sbuf.data + at,
                                                   packed.sbuf.size - at, &used, err, sizeof err);
        cr_assert_not_null (ev, "%s", err);
        cr_assert_eq (used, sizes [which]);
        size_t size;
        uint8_t *again = s_encode_ok (ev, &size);
        cr_assert_arr_eq (again, bytes [which], sizes [which]);
        free (again);
        pond_event_destroy (&ev);
        at += used;
        free (bytes [which]);
    }
    cr_assert_eq (at, packed.sbuf.size);
    s_buf_destroy (&packed);
}

//  A random msgpack value in any width msgpack allows, not only the
//  smallest: integers in wide or signed encodings, str8 for short text,
//  map16 for small maps, NaN floats, ext of every length.
//  A map key: a str of any width (keys must be str)
static void
s_random_wide_key (buf_t *b)
{
    static const size_t lengths [] = { 0, 1, 5, 31, 32, 40 };
    size_t len = lengths [s_below (6)];
    size_t n = (size_t) 1 << s_below (3);
    if (len < 32 && s_below (2))
        s_buf_raw (b, (uint8_t []) { (uint8_t) (0xa0 | len) }, 1);
    else
        s_buf_be (b, (uint8_t) (0xd9 + (n == 1 ? 0 : n == 2 ? 1 : 2)), len, n);
    for (size_t i = 0; i < len; i++)
        s_buf_raw (b, (uint8_t []) { (uint8_t) ('a' + (i * 7 + len) % 26) }, 1);
}

static void
s_random_wide_value (buf_t *b, int depth)
{
    static const uint64_t edges [] = { 0,         1,   31,    32,    127,           128,
                                       255,       256, 65535, 65536, 4294967295ULL, 4294967296ULL,
                                       UINT64_MAX };
    static const int64_t negatives [] = { -1,     -32,    -33,           -128,          -129,
                                          -32768, -32769, -2147483648LL, -2147483649LL, INT64_MIN };
    int kinds = depth >= 4 ? 10 : 13;
    switch (s_below (kinds)) {
        case 0: {    //  unsigned, any width
            uint64_t v = s_below (2) ? edges [s_below (13)] : s_rand () >> s_below (64);
            size_t n = (size_t) 1 << s_below (4);
            if (n < 8 && v >> (8 * n))
                n = 8;
            if (v < 128 && s_below (3) == 0)
                s_buf_raw (b, (uint8_t []) { (uint8_t) v }, 1);
            else
                s_buf_be (b, (uint8_t) (0xcc + (n == 1 ? 0 : n == 2 ? 1 : n == 4 ? 2 : 3)), v, n);
            break;
        }
        case 1: {    //  signed, any width
            int64_t v = s_below (2) ? negatives [s_below (10)] : (int64_t) edges [s_below (8)];
            size_t n = (size_t) 1 << s_below (4);
            while (n < 8 && (v < -(1LL << (8 * n - 1)) || v >= (1LL << (8 * n - 1))))
                n *= 2;
            s_buf_be (b,
                      (uint8_t) (0xd0
                                 + (n == 1   ? 0
                                    : n == 2 ? 1
                                    : n == 4 ? 2
                                             : 3)),
                      (uint64_t) v, n);
            break;
        }
        case 2: {    //  negative fixint, nil, bools
            static const uint8_t singles [] = { 0xc0, 0xc2, 0xc3 };
            uint8_t tag = s_below (2) ? (uint8_t) (0xe0 + s_below (32)) : singles [s_below (3)];
            s_buf_raw (b, &tag, 1);
            break;
        }
        case 3: {    //  float32: NaNs, infinities, anything
            static const uint32_t specials [] = { 0x7fc00000, 0x7f800001, 0xffc00001, 0x7fa00000,
                                                  0x7f800000, 0x80000000, 0 };
            uint32_t bits = s_below (2) ? specials [s_below (7)] : (uint32_t) s_rand ();
            s_buf_be (b, 0xca, bits, 4);
            break;
        }
        case 4: {    //  float64
            static const uint64_t specials [] = { 0x7ff8000000000000ULL,
                                                  0x7ff0000000000001ULL,
                                                  0xfff8000000000001ULL,
                                                  0x7ff4000000000000ULL,
                                                  0x7ff0000000000000ULL,
                                                  0x8000000000000000ULL,
                                                  0 };
            uint64_t bits = s_below (2) ? specials [s_below (7)] : s_rand ();
            s_buf_be (b, 0xcb, bits, 8);
            break;
        }
        case 5:
        case 6: {    //  str or bin, any width
            static const size_t lengths [] = { 0, 1, 5, 31, 32, 40, 255, 256, 300 };
            size_t len = lengths [s_below (9)];
            bool str = s_below (2);
            size_t n = (size_t) 1 << s_below (3);
            if (n == 1 && len > 255)
                n = 2;
            if (str && len < 32 && s_below (2))
                s_buf_raw (b, (uint8_t []) { (uint8_t) (0xa0 | len) }, 1);
            else
                s_buf_be (b,
                          (uint8_t) ((str ? 0xd9 : 0xc4)
                                     + (n == 1   ? 0
                                        : n == 2 ? 1
                                                 : 2)),
                          len, n);
            for (size_t i = 0; i < len; i++)
                s_buf_raw (b, (uint8_t []) { (uint8_t) ('a' + i % 26) }, 1);
            break;
        }
        case 7:
        case 8:
        case 9: {    //  bin of odd sizes, any width
            //  (ext types are refused in data and meta: PROTOCOL.md)
            static const size_t lengths [] = { 0, 1, 2, 3, 4, 8, 16, 17, 256 };
            size_t len = lengths [s_below (9)];
            size_t n = (size_t) 1 << s_below (3);
            if (n == 1 && len > 255)
                n = 2;
            s_buf_be (b, (uint8_t) (0xc4 + (n == 1 ? 0 : n == 2 ? 1 : 2)), len, n);
            for (size_t i = 0; i < len; i++)
                s_buf_raw (b, (uint8_t []) { (uint8_t) i }, 1);
            break;
        }
        default: {    //  array or map, any header
            bool map = s_below (2);
            size_t count = s_below (2) ? s_below (4) : s_below (20);
            int header = (int) s_below (3);
            if (header == 0 && count >= 16)
                header = 1;
            if (header == 0)
                s_buf_raw (b, (uint8_t []) { (uint8_t) ((map ? 0x80 : 0x90) | count) }, 1);
            else
                s_buf_be (b, (uint8_t) ((map ? 0xde : 0xdc) + header - 1), count,
                          header == 1 ? 2 : 4);
            for (size_t i = 0; i < count * (map ? 2 : 1); i++)
                if (map && i % 2 == 0)
                    s_random_wide_key (b);
                else
                    s_random_wide_value (b, depth + 1);
        }
    }
}

//  What decoding gave before the decoder kept canonical bytes as they
//  are: msgpack-c's unpack and pack_object. Caller frees.
static uint8_t *
s_reference_repack (const uint8_t *data, size_t size, size_t *size_p)
{
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    cr_assert_eq (msgpack_unpack_next (&unpacked, (const char *) data, size, NULL),
                  MSGPACK_UNPACK_SUCCESS);
    buf_t b;
    s_buf_init (&b);
    cr_assert_eq (msgpack_pack_object (&b.pk, unpacked.data), 0);
    msgpack_unpacked_destroy (&unpacked);
    *size_p = b.sbuf.size;
    return (uint8_t *) msgpack_sbuffer_release (&b.sbuf);
}

Test (event, decode_gives_msgpack_c_bytes_for_any_width, .timeout = 30)
{
    //  Data and meta in any encoding decode to exactly what msgpack-c's
    //  unpack + pack_object gives (the decoder's output before it copied
    //  canonical maps as they are), and pond_value says canonical only of
    //  bytes that pack_object gives back unchanged
    s_seed (0x6b656570);    //  "keep"
    int canonical_seen = 0, wide_seen = 0;
    for (int round = 0; round < 3000 * POND_FUZZ_SCALE; round++) {
        buf_t data;
        s_buf_init (&data);
        size_t count = s_below (6);
        if (s_below (4) == 0)
            s_buf_be (&data, 0xde, count, 2);
        else
            s_buf_raw (&data, (uint8_t []) { (uint8_t) (0x80 | count) }, 1);
        for (size_t i = 0; i < 2 * count; i++)
            if (i % 2 == 0)
                s_random_wide_key (&data);
            else
                s_random_wide_value (&data, 1);
        const uint8_t *raw = (const uint8_t *) data.sbuf.data;
        size_t raw_size = data.sbuf.size;

        char err [POND_ERR_SIZE] = "";
        size_t used = 0;
        bool canonical = false;
        cr_assert_eq (pond_value_check_canonical (raw, raw_size, POND_VALUE_MAX_DEPTH, &used,
                                                  &canonical, err, sizeof err),
                      0, "%s", err);
        cr_assert_eq (used, raw_size);
        size_t ref_size;
        uint8_t *ref = s_reference_repack (raw, raw_size, &ref_size);
        if (canonical) {
            canonical_seen++;
            cr_assert (ref_size == raw_size && memcmp (ref, raw, raw_size) == 0,
                       "round %d: called canonical, but pack_object changes it", round);
        }
        else
            wide_seen++;

        //  In an event, as data and as meta
        buf_t b;
        s_buf_init (&b);
        msgpack_pack_map (&b.pk, 6);
        s_buf_str (&b, "data");
        s_buf_raw (&b, raw, raw_size);
        s_buf_str (&b, "id");
        s_buf_raw (&b, ID_RAW, 18);
        s_buf_str (&b, "name");
        s_buf_str (&b, "QUACKED");
        s_buf_str (&b, "ts");
        msgpack_pack_uint64 (&b.pk, TS_2022);
        s_buf_str (&b, "entity");
        s_buf_str (&b, "c-1");
        s_buf_str (&b, "meta");
        s_buf_raw (&b, raw, raw_size);
        pond_event_t *ev = s_decode_ok ((uint8_t *) b.sbuf.data, b.sbuf.size);
        size_t size;
        const uint8_t *got = pond_event_data (ev, &size);
        cr_assert (size == ref_size && memcmp (got, ref, size) == 0, "round %d: data", round);
        got = pond_event_meta (ev, &size);
        cr_assert (size == ref_size && memcmp (got, ref, size) == 0, "round %d: meta", round);

        //  And that encoding is stable: decoded again, encoded again
        size_t first_size;
        uint8_t *first = s_encode_ok (ev, &first_size);
        pond_event_t *again = s_decode_ok (first, first_size);
        size_t second_size;
        uint8_t *second = s_encode_ok (again, &second_size);
        cr_assert (first_size == second_size && memcmp (first, second, first_size) == 0);
        char *json = pond_event_to_json (ev);
        cr_assert_not_null (json);
        free (json);
        free (second);
        free (first);
        pond_event_destroy (&again);
        pond_event_destroy (&ev);
        free (ref);
        s_buf_destroy (&b);
        s_buf_destroy (&data);
    }
    //  Both ways were taken, many times
    cr_assert_gt (canonical_seen, 100);
    cr_assert_gt (wide_seen, 100);
}

//  =====================================================================
//  pond_value

//  Every msgpack type, in its every width
static const struct {
    const char *raw;
    size_t len;
    const char *json;    //  rendering, or NULL when not checked here
} s_values [] = {
    { "\xc0", 1, "null" },
    { "\xc2", 1, "false" },
    { "\xc3", 1, "true" },
    { "\x00", 1, "0" },
    { "\x7f", 1, "127" },
    { "\xe0", 1, "-32" },
    { "\xff", 1, "-1" },
    { "\xcc\xff", 2, "255" },
    { "\xcd\xff\xff", 3, "65535" },
    { "\xce\xff\xff\xff\xff", 5, "4294967295" },
    { "\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9, "18446744073709551615" },
    { "\xcf\x00\x20\x00\x00\x00\x00\x00\x01", 9, "9007199254740993" },
    { "\xd0\x80", 2, "-128" },
    { "\xd1\x80\x00", 3, "-32768" },
    { "\xd2\x80\x00\x00\x00", 5, "-2147483648" },
    { "\xd3\x80\x00\x00\x00\x00\x00\x00\x00", 9, "-9223372036854775808" },
    { "\xd3\xff\xdf\xff\xff\xff\xff\xff\xff", 9, "-9007199254740993" },
    { "\xca\x3f\xc0\x00\x00", 5, "1.5" },
    { "\xca\x7f\xc0\x00\x00", 5, "null" },                                   //  NaN
    { "\xcb\xc0\x09\x21\xfb\x54\x44\x2d\x18", 9, "-3.1415926535897931" },    //  exact
    { "\xcb\x7f\xf0\x00\x00\x00\x00\x00\x00", 9, "null" },                   //  +Inf
    { "\xa0", 1, "\"\"" },
    { "\xa3"
      "abc",
      4, "\"abc\"" },
    { "\xd9\x02"
      "hi",
      4, "\"hi\"" },
    { "\xda\x00\x02"
      "hi",
      5, "\"hi\"" },
    { "\xdb\x00\x00\x00\x02"
      "hi",
      7, "\"hi\"" },
    { "\xc4\x02\xab\xcd", 4, "\"abcd\"" },
    { "\xc5\x00\x01\x0f", 4, "\"0f\"" },
    { "\xc6\x00\x00\x00\x00", 5, "\"\"" },
    { "\xd4\x01\xaa", 3, "\"aa\"" },                      //  fixext 1
    { "\xd5\x01\xaa\xbb", 4, "\"aabb\"" },                //  fixext 2
    { "\xd6\xff\x00\x00\x00\x01", 6, "\"00000001\"" },    //  fixext 4 (timestamp)
    { "\xd7\x01"
      "12345678",
      10, NULL },    //  fixext 8
    { "\xd8\x01"
      "0123456789abcdef",
      18, NULL },    //  fixext 16
    { "\xc7\x03\x05"
      "abc",
      6, "\"616263\"" },    //  ext 8
    { "\xc7\x00\x05", 3, "\"\"" },
    { "\xc8\x00\x01\x05"
      "z",
      5, "\"7a\"" },    //  ext 16
    { "\xc9\x00\x00\x00\x01\x05"
      "z",
      7, "\"7a\"" },    //  ext 32
    { "\x90", 1, "[]" },
    { "\x92\x01\xa1"
      "x",
      4, "[1,\"x\"]" },
    { "\xdc\x00\x01\xc0", 4, "[null]" },
    { "\xdd\x00\x00\x00\x01\xc3", 6, "[true]" },
    { "\x80", 1, "{}" },
    { "\x81\xa1"
      "k\x01",
      4, "{\"k\":1}" },
    { "\xde\x00\x01\xa1"
      "k\x90",
      6, "{\"k\":[]}" },
    { "\xdf\x00\x00\x00\x01\xa1"
      "k\x80",
      8, "{\"k\":{}}" },
    { "\x81\x81\x01\x02\x03", 5, "{\"{\\\"1\\\":2}\":3}" },    //  map key rendered as JSON
    { "\x81\xc0\x01", 3, "{\"null\":1}" },
};

Test (value, check_every_type_and_prefix)
{
    size_t nvalues = sizeof s_values / sizeof s_values [0];
    for (size_t i = 0; i < nvalues; i++) {
        const uint8_t *raw = (const uint8_t *) s_values [i].raw;
        size_t len = s_values [i].len;
        char err [POND_ERR_SIZE] = "";
        size_t used = 0;
        cr_assert_eq (pond_value_check (raw, len, &used, err, sizeof err), 0, "value %zu: %s", i,
                      err);
        cr_assert_eq (used, len, "value %zu", i);
        //  msgpack-c agrees on where the object ends
        msgpack_unpacked unpacked;
        msgpack_unpacked_init (&unpacked);
        size_t offset = 0;
        cr_assert_eq (msgpack_unpack_next (&unpacked, (const char *) raw, len, &offset),
                      MSGPACK_UNPACK_SUCCESS, "value %zu", i);
        cr_assert_eq (offset, len, "value %zu", i);
        msgpack_unpacked_destroy (&unpacked);
        //  Trailing bytes are not part of the object
        uint8_t *longer = malloc (len + 2);
        memcpy (longer, raw, len);
        longer [len] = 0xc0;
        longer [len + 1] = 0xc1;
        cr_assert_eq (pond_value_check (longer, len + 2, &used, err, sizeof err), 0);
        cr_assert_eq (used, len);
        free (longer);
        //  Every strict prefix is truncated
        for (size_t cut = 0; cut < len; cut++) {
            err [0] = 0;
            cr_assert_eq (pond_value_check (raw, cut, &used, err, sizeof err), -1,
                          "value %zu cut at %zu", i, cut);
            cr_assert (*err);
        }
        cr_assert_eq (pond_value_check (raw, len, NULL, err, sizeof err), 0, "used_p may be NULL");
        //  Rendering
        char *json = pond_value_to_json (raw, len);
        cr_assert_not_null (json, "value %zu", i);
        if (s_values [i].json)
            cr_assert_str_eq (json, s_values [i].json, "value %zu", i);
        free (json);
    }
    char err [POND_ERR_SIZE] = "";
    cr_assert_eq (pond_value_check ((const uint8_t *) "\xc1", 1, NULL, err, sizeof err), -1);
    cr_assert_not_null (strstr (err, "invalid"), "%s", err);
    cr_assert_null (pond_value_to_json ((const uint8_t *) "\xc1", 1));
    cr_assert_null (pond_value_to_json ((const uint8_t *) "\x92\x01", 2));
    cr_assert_null (pond_value_to_json (NULL, 0));
}

Test (value, check_depth_limit)
{
    uint8_t bytes [64];
    for (int depth = 1; depth < 40; depth++) {
        memset (bytes, 0x91, (size_t) depth);
        bytes [depth] = 0x01;
        char err [POND_ERR_SIZE] = "";
        size_t used;
        int rc = pond_value_check (bytes, (size_t) depth + 1, &used, err, sizeof err);
        cr_assert_eq (rc, depth <= POND_VALUE_MAX_DEPTH ? 0 : -1, "depth %d: %s", depth, err);
        if (rc)
            cr_assert_not_null (strstr (err, "deep"), "%s", err);
    }
    //  Empty containers nested: depth 16 fine, 17 not
    uint8_t maps [80];
    for (int depth = 1; depth < 30; depth++) {
        //  {0: {0: ... {}}}
        size_t n = 0;
        for (int i = 0; i < depth - 1; i++) {
            maps [n++] = 0x81;
            maps [n++] = 0x00;
        }
        maps [n++] = 0x80;
        char err [POND_ERR_SIZE] = "";
        int rc = pond_value_check (maps, n, NULL, err, sizeof err);
        cr_assert_eq (rc, depth <= POND_VALUE_MAX_DEPTH ? 0 : -1, "map depth %d: %s", depth, err);
    }
}

Test (value, json_round_trip)
{
    const char *cases [] = {
        "{}",
        "{\"a\":1,\"b\":-2,\"c\":1.5,\"d\":\"x\",\"e\":[1,2,{\"f\":null}],\"g\":true,\"h\":false}",
        "{\"max_exact\":9007199254740992,\"min_exact\":-9007199254740992,\"zero\":0}",
        ("{\"unicode\":\"k\xc3\xbc"
         "che \xe2\x82\xac \xf0\x9f\xa6\x86\"}"),
        "{\"escapes\":\"q\\\"b\\\\n\\nt\\tc\\u0001\"}",
        "{\"nested\":{\"a\":{\"b\":{\"c\":[[[]]]}}}}",
        "{\"floats\":[0.1,-2.5,1e+20,3.0e-05]}",
        "{\"\":\"empty key\",\"k\xc3\xa9y\":1}",
    };
    const char *expect [] = {
        NULL, NULL, NULL, NULL, NULL, NULL, "{\"floats\":[0.1,-2.5,1e+20,3e-05]}", NULL,
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        char err [POND_ERR_SIZE] = "";
        size_t size;
        uint8_t *msgpack = pond_value_from_json (cases [i], &size, err, sizeof err);
        cr_assert_not_null (msgpack, "%s: %s", cases [i], err);
        size_t used;
        cr_assert_eq (pond_value_check (msgpack, size, &used, err, sizeof err), 0, "%s", err);
        cr_assert_eq (used, size);
        char *json = pond_value_to_json (msgpack, size);
        cr_assert_not_null (json);
        cr_assert_str_eq (json, expect [i] ? expect [i] : cases [i]);
        free (json);
        free (msgpack);
    }
    //  Spacing is not kept, meaning is
    char err [POND_ERR_SIZE] = "";
    size_t size;
    uint8_t *msgpack = pond_value_from_json (" { \"a\" : [ 1 , 2 ] }\n", &size, err, sizeof err);
    cr_assert_not_null (msgpack, "%s", err);
    char *json = pond_value_to_json (msgpack, size);
    cr_assert_str_eq (json, "{\"a\":[1,2]}");
    free (json);
    free (msgpack);
}

Test (value, json_numbers_become_the_right_msgpack)
{
    struct {
        const char *json;
        const char *raw;
        size_t len;
    } cases [] = {
        { "{\"n\":0}", "\x81\xa1n\x00", 4 },
        { "{\"n\":127}", "\x81\xa1n\x7f", 4 },
        { "{\"n\":-1}", "\x81\xa1n\xff", 4 },
        { "{\"n\":-33}", "\x81\xa1n\xd0\xdf", 5 },
        { "{\"n\":65536}", "\x81\xa1n\xce\x00\x01\x00\x00", 8 },
        { "{\"n\":9007199254740992}", "\x81\xa1n\xcf\x00\x20\x00\x00\x00\x00\x00\x00", 12 },
        { "{\"n\":-9007199254740992}", "\x81\xa1n\xd3\xff\xe0\x00\x00\x00\x00\x00\x00", 12 },
        { "{\"n\":2.0}", "\x81\xa1n\x02", 4 },    //  whole: an integer
        { "{\"n\":0.5}", "\x81\xa1n\xcb\x3f\xe0\x00\x00\x00\x00\x00\x00", 12 },
        { "{\"n\":1e300}", "\x81\xa1n\xcb\x7e\x37\xe4\x3c\x88\x00\x75\x9c", 12 },
        { "{\"s\":\"\\u00e9\"}", "\x81\xa1s\xa2\xc3\xa9", 6 },
        { "{\"z\":null}", "\x81\xa1z\xc0", 4 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        char err [POND_ERR_SIZE] = "";
        size_t size;
        uint8_t *msgpack = pond_value_from_json (cases [i].json, &size, err, sizeof err);
        cr_assert_not_null (msgpack, "%s: %s", cases [i].json, err);
        cr_assert_eq (size, cases [i].len, "%s", cases [i].json);
        cr_assert_arr_eq (msgpack, cases [i].raw, size, "%s", cases [i].json);
        free (msgpack);
    }
    //  Beyond 2^53 JSON (a double) cannot be exact: it becomes a float,
    //  never a silently wrong integer
    char err [POND_ERR_SIZE] = "";
    size_t size;
    uint8_t *msgpack = pond_value_from_json ("{\"n\":18446744073709551615}", &size, err,
                                             sizeof err);
    cr_assert_not_null (msgpack);
    cr_assert_eq (msgpack [3], 0xcb);
    free (msgpack);
}

Test (value, from_json_refuses)
{
    const char *bad [] = {
        "",
        " ",
        "{",
        "}",
        "{\"a\":}",
        "{\"a\" 1}",
        "{'a':1}",
        "{\"a\":1,}",
        "not json",
        "{} junk",
        "{}{}",
        "{\"a\":NaN}",
        "{\"a\":\"unterminated}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        char err [POND_ERR_SIZE] = "";
        size_t size = 77;
        cr_assert_null (pond_value_from_json (bad [i], &size, err, sizeof err), "%s", bad [i]);
        cr_assert_not_null (strstr (err, "JSON"), "%s: %s", bad [i], err);
    }
    const char *not_object [] = { "[1,2]", "1", "\"s\"", "null", "true", "[]", "-0.5" };
    for (size_t i = 0; i < sizeof not_object / sizeof not_object [0]; i++) {
        char err [POND_ERR_SIZE] = "";
        size_t size;
        cr_assert_null (pond_value_from_json (not_object [i], &size, err, sizeof err));
        cr_assert_not_null (strstr (err, "object"), "%s: %s", not_object [i], err);
    }
    //  Too deep: objects and arrays, at the limit and one past it
    for (int depth = POND_VALUE_MAX_DEPTH - 1; depth <= POND_VALUE_MAX_DEPTH + 3; depth++) {
        for (int arrays = 0; arrays < 2; arrays++) {
            char json [512] = "";
            for (int i = 0; i < depth; i++)
                strcat (json, arrays && i ? "[" : "{\"k\":");
            strcat (json, "1");
            for (int i = depth - 1; i >= 0; i--)
                strcat (json, arrays && i ? "]" : "}");
            char err [POND_ERR_SIZE] = "";
            size_t size;
            uint8_t *msgpack = pond_value_from_json (json, &size, err, sizeof err);
            if (depth <= POND_VALUE_MAX_DEPTH) {
                cr_assert_not_null (msgpack, "depth %d: %s", depth, err);
                cr_assert_eq (pond_value_check (msgpack, size, NULL, err, sizeof err), 0,
                              "from_json made what check refuses: %s", err);
            }
            else {
                cr_assert_null (msgpack, "depth %d accepted", depth);
                cr_assert_not_null (strstr (err, "deep"), "%s", err);
            }
            free (msgpack);
        }
    }
    //  Empty containers at the bottom count as a level
    char json [512] = "";
    for (int i = 0; i < POND_VALUE_MAX_DEPTH; i++)
        strcat (json, "{\"k\":");
    strcat (json, "{}");
    for (int i = 0; i < POND_VALUE_MAX_DEPTH; i++)
        strcat (json, "}");
    char err [POND_ERR_SIZE] = "";
    size_t size;
    cr_assert_null (pond_value_from_json (json, &size, err, sizeof err),
                    "17 levels with {} inside");
}

//  =====================================================================
//  pond_uuid

static int
s_cmp_id (const void *a, const void *b)
{
    return memcmp (a, b, 16);
}

Test (uuid, v7_bits_time_and_uniqueness)
{
    enum { N = 10000 };
    uint8_t (*ids) [16] = malloc (N * 16);
    uint64_t before_ms = pond_time_now () / 1000;
    for (int i = 0; i < N; i++)
        cr_assert_eq (pond_uuid_v7 (ids [i]), 0);
    uint64_t after_ms = pond_time_now () / 1000;
    for (int i = 0; i < N; i++) {
        cr_assert_eq (ids [i][6] >> 4, 7, "version 7");
        cr_assert_eq (ids [i][8] & 0xc0, 0x80, "variant 10");
        uint64_t ms = 0;
        for (int b = 0; b < 6; b++)
            ms = ms << 8 | ids [i][b];
        cr_assert (ms + 1 >= before_ms && ms <= after_ms + 1,
                   "time prefix %llu not in [%llu, %llu]", (unsigned long long) ms,
                   (unsigned long long) before_ms, (unsigned long long) after_ms);
    }
    //  Time prefixes never go backwards; no two ids are equal
    for (int i = 1; i < N; i++)
        cr_assert (memcmp (ids [i - 1], ids [i], 6) <= 0);
    qsort (ids, N, 16, s_cmp_id);
    for (int i = 1; i < N; i++)
        cr_assert_neq (memcmp (ids [i - 1], ids [i], 16), 0, "duplicate uuid");
    free (ids);
}

Test (uuid, format_and_parse)
{
    char text [POND_UUID_STR_SIZE];
    memset (text, 'x', sizeof text);
    pond_uuid_format (s_id_a, text);
    cr_assert_str_eq (text, "018f3a5b-6c7d-7e8f-90a1-b2c3d4e5f607");
    pond_uuid_format (s_nil_id, text);
    cr_assert_str_eq (text, "00000000-0000-0000-0000-000000000000");
    uint8_t id [16];
    cr_assert_eq (pond_uuid_parse ("018F3A5B-6C7D-7E8F-90A1-B2C3D4E5F607", id), 0);
    cr_assert_arr_eq (id, s_id_a, 16);
    cr_assert_eq (pond_uuid_parse ("ffeeddccbbaa79889766554433221100", id), 0);
    cr_assert_arr_eq (id, s_id_b, 16);
    //  Round trip of many fresh ids
    for (int i = 0; i < 1000; i++) {
        uint8_t a [16], b [16];
        pond_uuid_v7 (a);
        pond_uuid_format (a, text);
        cr_assert_eq (strlen (text), 36);
        for (int c = 0; c < 36; c++)
            if (c == 8 || c == 13 || c == 18 || c == 23)
                cr_assert_eq (text [c], '-');
            else
                cr_assert (isxdigit ((unsigned char) text [c])
                           && !isupper ((unsigned char) text [c]));
        cr_assert_eq (pond_uuid_parse (text, b), 0);
        cr_assert_arr_eq (a, b, 16);
    }
    const char *bad [] = {
        "",
        "0",
        "018f3a5b-6c7d-7e8f-90a1-b2c3d4e5f60",
        "018f3a5b-6c7d-7e8f-90a1-b2c3d4e5f6077",
        "018f3a5b-6c7d-7e8f-90a1-b2c3d4e5f60g",
        "018f3a5b6c7d-7e8f-90a1-b2c3d4e5f6071",
        "018f3a5b_6c7d_7e8f_90a1_b2c3d4e5f607",
        "{018f3a5b-6c7d-7e8f-90a1-b2c3d4e5f607}",
        " 018f3a5b-6c7d-7e8f-90a1-b2c3d4e5f60",
        "018f3a5b6c7d7e8f90a1b2c3d4e5f6-7",
        "018f3a5b6c7d7e8f90a1b2c3d4e5f60z",
        "018f3a5b6c7d7e8f90a1b2c3d4e5f6",
        "0x8f3a5b6c7d7e8f90a1b2c3d4e5f607",
        "018f3a5b-6c7d-7e8f-90a1b-2c3d4e5f607",
        "-018f3a5b6c7d-7e8f-90a1-b2c3d4e5f607",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        memcpy (id, s_id_b, 16);
        cr_assert_eq (pond_uuid_parse (bad [i], id), -1, "accepted '%s'", bad [i]);
    }
}

//  =====================================================================
//  pond_time

Test (time, parse_forms)
{
    struct {
        const char *text;
        uint64_t us;
    } good [] = {
        { "2022-01-01", TS_2022 },
        { "2022-01-01T00:00:00", TS_2022 },
        { "2022-01-01T00:00:00Z", TS_2022 },
        { "2022-01-01T10:30:00", TS_2022 + 37800000000ULL },
        { "2022-01-01 10:30:00", TS_2022 + 37800000000ULL },
        { "2022-01-01T10:30:00Z", TS_2022 + 37800000000ULL },
        { "2022-01-01T10:30:00.5Z", TS_2022 + 37800500000ULL },
        { "2022-01-01T10:30:00.123456", TS_2022 + 37800123456ULL },
        { "2022-01-01T10:30:00.1234569Z", TS_2022 + 37800123456ULL },
        { "2022-01-01T10:30:00.000001Z", TS_2022 + 37800000001ULL },
        { "2024-02-29T23:59:59Z", 1709251199000000ULL },
        { "1970-01-01", 0 },
        { "1970-01-01T00:00:00.000001Z", 1 },
        { "9999-12-31T23:59:59.999999Z", POND_TIME_MAX },
        { "1640995200000000", TS_2022 },
        { "0", 0 },
        { "1", 1 },
        { "253402300799999999", POND_TIME_MAX },
    };
    for (size_t i = 0; i < sizeof good / sizeof good [0]; i++) {
        uint64_t us = 777;
        cr_assert_eq (pond_time_parse (good [i].text, &us), 0, "refused '%s'", good [i].text);
        cr_assert_eq (us, good [i].us, "'%s' gave %llu", good [i].text, (unsigned long long) us);
    }
}

Test (time, parse_refuses)
{
    const char *bad [] = {
        "",
        "garbage",
        "2022-01",
        "2022-13-01",
        "2022-00-10",
        "2022-01-32",
        "2022-01-00",
        "2022-02-30",
        "2023-02-29",
        "2022-01-01x",
        "2022-01-01T",
        "2022-01-01T10",
        "2022-01-01T10:30",
        "2022-01-01T25:00:00",
        "2022-01-01T10:61:00",
        "2022-01-01T10:30:00.",
        "2022-01-01T10:30:00.Z",
        "2022-01-01T10:30:00Zjunk",
        "2022-01-01T10:30:00+01:00",
        "2022-01-01T10:30:00ZZ",
        "2022-01-01Z",
        "-5",
        "+5",
        "12a",
        "1e6",
        "1969-12-31",
        "1969-12-31T23:59:59Z",
        "10000-01-01",
        "1234567890123456789",
        "999999999999999999",
        "253402300800000000",
        "18446744073709551616",
        "2022/01/01",
        "today",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        uint64_t us = 777;
        cr_assert_eq (pond_time_parse (bad [i], &us), -1, "accepted '%s' as %llu", bad [i],
                      (unsigned long long) us);
    }
}

Test (time, format_and_round_trip)
{
    char text [32];
    pond_time_format (0, text, sizeof text);
    cr_assert_str_eq (text, "1970-01-01T00:00:00.000000Z");
    pond_time_format (TS_2022 + 37800123456ULL, text, sizeof text);
    cr_assert_str_eq (text, "2022-01-01T10:30:00.123456Z");
    pond_time_format (POND_TIME_MAX, text, sizeof text);
    cr_assert_str_eq (text, "9999-12-31T23:59:59.999999Z");
    //  A small buffer is truncated, never overrun
    char small [11];
    memset (small, 'x', sizeof small);
    pond_time_format (TS_2022, small, sizeof small);
    cr_assert_str_eq (small, "2022-01-01");
    s_seed (20220101);
    for (int i = 0; i < 2000; i++) {
        uint64_t us = s_below (POND_TIME_MAX + 1);
        pond_time_format (us, text, sizeof text);
        uint64_t back = 0;
        cr_assert_eq (pond_time_parse (text, &back), 0, "'%s'", text);
        cr_assert_eq (back, us, "'%s'", text);
    }
    //  now() is the wall clock in microseconds
    uint64_t now = pond_time_now ();
    uint64_t wall = (uint64_t) time (NULL) * 1000000ULL;
    cr_assert (now + 2000000 > wall && now < wall + 2000000);
    cr_assert_leq (now, pond_time_now ());
}

//  =====================================================================
//  Protocol bodies: round trips

static zframe_t *
s_reencode_check (zframe_t *frame)
{
    cr_assert_not_null (frame);
    cr_assert_leq (zframe_size (frame), POND_BODY_MAX);
    return frame;
}

Test (proto, ack_round_trip)
{
    for (int dup = 0; dup < 2; dup++) {
        pond_ack_t ack = { .seq = dup ? UINT64_MAX : 1, .dup = dup };
        memcpy (ack.id, s_id_a, 16);
        zframe_t *frame = s_reencode_check (pond_ack_encode (&ack));
        pond_ack_t back;
        memset (&back, 0x55, sizeof back);
        char err [POND_ERR_SIZE] = "";
        cr_assert_eq (pond_ack_decode (frame, &back, err, sizeof err), 0, "%s", err);
        cr_assert_arr_eq (back.id, s_id_a, 16);
        cr_assert_eq (back.seq, ack.seq);
        cr_assert_eq (back.dup, (bool) dup);
        zframe_destroy (&frame);
    }
    //  dup is optional: false when absent
    size_t size;
    kv_t kvs [] = { KV ("id", ID_RAW), KV ("seq", "\x07") };
    uint8_t *bytes = s_map_bytes (kvs, 2, NULL, NULL, &size);
    zframe_t *frame = zframe_new (bytes, size);
    pond_ack_t back;
    memset (&back, 0x55, sizeof back);
    char err [POND_ERR_SIZE] = "";
    cr_assert_eq (pond_ack_decode (frame, &back, err, sizeof err), 0, "%s", err);
    cr_assert_eq (back.seq, 7);
    cr_assert_eq (back.dup, false);
    zframe_destroy (&frame);
    free (bytes);
}

Test (proto, nack_round_trip_with_and_without_id)
{
    pond_nack_t nack = { .has_id = true, .code = POND_CODE_UNAVAILABLE, .retry_ms = 250 };
    memcpy (nack.id, s_id_b, 16);
    strcpy (nack.reason, "store away");
    zframe_t *frame = s_reencode_check (pond_nack_encode (&nack));
    pond_nack_t back;
    memset (&back, 0x55, sizeof back);
    char err [POND_ERR_SIZE] = "";
    cr_assert_eq (pond_nack_decode (frame, &back, err, sizeof err), 0, "%s", err);
    cr_assert (back.has_id);
    cr_assert_arr_eq (back.id, s_id_b, 16);
    cr_assert_eq (back.code, 503);
    cr_assert_str_eq (back.reason, "store away");
    cr_assert_eq (back.retry_ms, 250);
    zframe_destroy (&frame);

    //  Without id: id is nil, as PROTOCOL.md says; no rid unless set
    nack.has_id = false;
    nack.retry_ms = 0;
    frame = pond_nack_encode (&nack);
    cr_assert_not_null (memmem (zframe_data (frame), zframe_size (frame),
                                "\xa2"
                                "id\xc0",
                                4));
    cr_assert_null (memmem (zframe_data (frame), zframe_size (frame),
                            "\xa3"
                            "rid",
                            4));
    cr_assert_eq (pond_nack_decode (frame, &back, err, sizeof err), 0, "%s", err);
    cr_assert_not (back.has_id);
    cr_assert_not (back.has_rid);
    cr_assert_arr_eq (back.id, s_nil_id, 16);
    zframe_destroy (&frame);

    //  ERROR's rid, when the refused request's rid was read
    nack.has_rid = true;
    nack.rid = 77;
    frame = pond_nack_encode (&nack);
    cr_assert_eq (pond_nack_decode (frame, &back, err, sizeof err), 0, "%s", err);
    cr_assert (back.has_rid);
    cr_assert_eq (back.rid, 77);
    zframe_destroy (&frame);
    nack.has_rid = false;

    //  id: nil, as PROTOCOL.md writes it, means no id
    kv_t kvs [] = { KV ("id", "\xc0"), KV ("code", "\xcd\x01\x90"),
                    KV ("reason", "\xa3"
                                  "bad") };
    size_t size;
    uint8_t *bytes = s_map_bytes (kvs, 3, NULL, NULL, &size);
    frame = zframe_new (bytes, size);
    memset (&back, 0x55, sizeof back);
    cr_assert_eq (pond_nack_decode (frame, &back, err, sizeof err), 0, "%s", err);
    cr_assert_not (back.has_id);
    cr_assert_eq (back.code, 400);
    cr_assert_str_eq (back.reason, "bad");
    cr_assert_eq (back.retry_ms, 0);
    zframe_destroy (&frame);
    free (bytes);

    //  pond_nack_new, with and without id; a long reason is cut to fit
    frame = pond_nack_new (s_id_a, 400, 0, "name must start with %s (got '%d')", "A-Z", 7);
    cr_assert_eq (pond_nack_decode (frame, &back, err, sizeof err), 0, "%s", err);
    cr_assert (back.has_id);
    cr_assert_arr_eq (back.id, s_id_a, 16);
    cr_assert_str_eq (back.reason, "name must start with A-Z (got '7')");
    zframe_destroy (&frame);
    char long_reason [1000];
    memset (long_reason, 'r', sizeof long_reason - 1);
    long_reason [sizeof long_reason - 1] = 0;
    frame = pond_nack_new (NULL, 413, 10, "%s", long_reason);
    cr_assert_eq (pond_nack_decode (frame, &back, err, sizeof err), 0, "%s", err);
    cr_assert_not (back.has_id);
    cr_assert_eq (back.code, 413);
    cr_assert_eq (back.retry_ms, 10);
    cr_assert_eq (strlen (back.reason), POND_REASON_MAX - 1);
    zframe_destroy (&frame);
}

//  RESULTS: a full batch of results fits a body, and comes back as sent
Test (proto, results_round_trip)
{
    pond_result_t *sent = calloc (POND_BATCH_EVENTS_MAX, sizeof (pond_result_t));
    pond_result_t *back = calloc (POND_BATCH_EVENTS_MAX, sizeof (pond_result_t));
    for (size_t i = 0; i < POND_BATCH_EVENTS_MAX; i++) {
        sent [i] = (pond_result_t) { .has_id = i % 7 != 3,
                                     .code = i % 2 ? 200 : 409,
                                     .seq = i % 2 ? UINT64_MAX - i : 0,
                                     .dup = i % 4 == 1,
                                     .retry_ms = (uint32_t) i };
        memset (sent [i].id, (int) (i % 251) + 1, POND_ID_SIZE);
        memset (sent [i].reason, 'r', POND_RESULT_REASON_MAX - 1);    //  longest
    }
    zframe_t *frame = pond_results_encode (200, "", sent, POND_BATCH_EVENTS_MAX);
    cr_assert_leq (zframe_size (frame), POND_BODY_MAX, "%zu bytes", zframe_size (frame));
    uint32_t code;
    char reason [POND_REASON_MAX], err [POND_ERR_SIZE];
    size_t count;
    cr_assert_eq (pond_results_decode (frame, &code, reason, sizeof reason, back,
                                       POND_BATCH_EVENTS_MAX, &count, err, sizeof err),
                  0, "%s", err);
    cr_assert_eq (code, 200);
    cr_assert_eq (count, POND_BATCH_EVENTS_MAX);
    for (size_t i = 0; i < count; i++) {
        cr_assert_eq (back [i].has_id, sent [i].has_id);
        if (sent [i].has_id)
            cr_assert_arr_eq (back [i].id, sent [i].id, POND_ID_SIZE);
        cr_assert_eq (back [i].code, sent [i].code);
        cr_assert_eq (back [i].seq, sent [i].seq);
        cr_assert_eq (back [i].dup, sent [i].dup);
        cr_assert_eq (back [i].retry_ms, sent [i].retry_ms);
        cr_assert_str_eq (back [i].reason, sent [i].reason);
    }
    //  More results than the room given, or a result that is not a map: refused
    cr_assert_eq (pond_results_decode (frame, &code, reason, sizeof reason, back, 10, &count, err,
                                       sizeof err),
                  -1);
    cr_assert (strstr (err, "more than 10"), "%s", err);
    zframe_destroy (&frame);
    uint8_t bad [] = { 0x82, 0xa4, 'c', 'o', 'd', 'e', 0xcc, 200,  0xa7,
                       'r',  'e',  's', 'u', 'l', 't', 's',  0x91, 0x01 };
    frame = zframe_new (bad, sizeof bad);
    cr_assert_eq (pond_results_decode (frame, &code, reason, sizeof reason, back, 10, &count, err,
                                       sizeof err),
                  -1);
    cr_assert (strstr (err, "results[0]"), "%s", err);
    zframe_destroy (&frame);
    free (sent);
    free (back);
}

Test (proto, replay_req_round_trip)
{
    pond_replay_req_t *req = calloc (1, sizeof *req);
    req->rid = UINT64_MAX;
    req->names_count = POND_REPLAY_MAX_NAMES;
    for (size_t i = 0; i < POND_REPLAY_MAX_NAMES; i++)
        snprintf (req->names [i], sizeof req->names [i], "NAME_%zu", i);
    memset (req->names [3], 'L', POND_NAME_MAX);    //  longest name
    req->names [3][POND_NAME_MAX] = 0;
    req->from_ts = TS_2022;
    req->to_ts = TS_2022 + 1;
    req->from_seq = 5;
    req->to_seq = 6;
    memset (req->entity, 'e', POND_ENTITY_MAX);
    req->limit = 1000000;
    req->credit = POND_CREDIT_MAX;
    zframe_t *frame = s_reencode_check (pond_replay_req_encode (req));
    pond_replay_req_t *back = malloc (sizeof *back);
    memset (back, 0x55, sizeof *back);
    char err [POND_ERR_SIZE] = "";
    cr_assert_eq (pond_replay_req_decode (frame, back, err, sizeof err), 0, "%s", err);
    cr_assert_eq (memcmp (back, req, sizeof *req), 0, "every field comes back");
    zframe_destroy (&frame);

    //  The three modes, with open ends and defaults
    memset (req, 0, sizeof *req);
    req->rid = 1;
    req->credit = 1;
    frame = pond_replay_req_encode (req);
    cr_assert_eq (pond_replay_req_decode (frame, back, err, sizeof err), 0, "%s", err);
    cr_assert_eq (memcmp (back, req, sizeof *req), 0, "the whole log");
    zframe_destroy (&frame);
    strcpy (req->entity, "customer-42");
    frame = pond_replay_req_encode (req);
    cr_assert_eq (pond_replay_req_decode (frame, back, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq (back->entity, "customer-42");
    zframe_destroy (&frame);
    req->entity [0] = 0;
    req->names_count = 1;
    strcpy (req->names [0], "QUACKED");
    req->from_ts = 10;    //  to 0 = no end
    frame = pond_replay_req_encode (req);
    cr_assert_eq (pond_replay_req_decode (frame, back, err, sizeof err), 0, "%s", err);
    cr_assert_eq (back->names_count, 1);
    cr_assert_str_eq (back->names [0], "QUACKED");
    cr_assert_eq (back->from_ts, 10);
    cr_assert_eq (back->to_ts, 0);
    zframe_destroy (&frame);

    //  Only rid and credit on the wire: the rest defaults to zero
    kv_t kvs [] = { KV ("credit", "\x01"), KV ("rid", "\x09") };
    size_t size;
    uint8_t *bytes = s_map_bytes (kvs, 2, NULL, NULL, &size);
    frame = zframe_new (bytes, size);
    memset (back, 0x55, sizeof *back);
    cr_assert_eq (pond_replay_req_decode (frame, back, err, sizeof err), 0, "%s", err);
    cr_assert_eq (back->rid, 9);
    cr_assert_eq (back->credit, 1);
    cr_assert_eq (back->names_count, 0);
    cr_assert_eq (back->entity [0], 0);
    cr_assert_eq (back->from_ts + back->to_ts + back->from_seq + back->to_seq + back->limit, 0);
    zframe_destroy (&frame);
    free (bytes);
    free (req);
    free (back);
}

Test (proto, credit_end_append_round_trip)
{
    char err [POND_ERR_SIZE] = "";
    pond_credit_t credit = { .rid = 77, .chunks = UINT32_MAX }, credit_back;
    zframe_t *frame = s_reencode_check (pond_credit_encode (&credit));
    cr_assert_eq (pond_credit_decode (frame, &credit_back, err, sizeof err), 0, "%s", err);
    cr_assert_eq (credit_back.rid, 77);
    cr_assert_eq (credit_back.chunks, UINT32_MAX);
    zframe_destroy (&frame);
    //  CANCEL is {rid} alone
    frame = zframe_new ("\x81\xa3"
                        "rid\x05",
                        6);
    memset (&credit_back, 0x55, sizeof credit_back);
    cr_assert_eq (pond_credit_decode (frame, &credit_back, err, sizeof err), 0, "%s", err);
    cr_assert_eq (credit_back.rid, 5);
    cr_assert_eq (credit_back.chunks, 0);
    zframe_destroy (&frame);

    pond_end_t end = { .rid = 3, .count = 123456789012ULL, .code = POND_CODE_UNAVAILABLE },
               end_back;
    strcpy (end.reason, "no credit for 60 s \xe2\x80\x94 dropped");
    frame = s_reencode_check (pond_end_encode (&end));
    cr_assert_eq (pond_end_decode (frame, &end_back, err, sizeof err), 0, "%s", err);
    cr_assert_eq (end_back.rid, 3);
    cr_assert_eq (end_back.count, 123456789012ULL);
    cr_assert_eq (end_back.code, 503);
    cr_assert_str_eq (end_back.reason, end.reason);
    zframe_destroy (&frame);
    memset (end.reason, 'r', POND_REASON_MAX - 1);    //  longest reason
    end.reason [POND_REASON_MAX - 1] = 0;
    frame = pond_end_encode (&end);
    cr_assert_eq (pond_end_decode (frame, &end_back, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq (end_back.reason, end.reason);
    zframe_destroy (&frame);

    pond_append_t append = { .bid = 0xfeedfacecafebeefULL }, append_back;
    frame = s_reencode_check (pond_append_encode (&append));
    cr_assert_eq (pond_append_decode (frame, &append_back, err, sizeof err), 0, "%s", err);
    cr_assert_eq (append_back.bid, 0xfeedfacecafebeefULL);
    zframe_destroy (&frame);
}

Test (proto, appended_round_trip)
{
    pond_appended_t *msg = calloc (1, sizeof *msg);
    pond_appended_t *back = malloc (sizeof *back);
    char err [POND_ERR_SIZE] = "";
    size_t counts [] = { 0, 1, 7, POND_APPEND_MAX };
    for (size_t c = 0; c < 4; c++) {
        memset (msg, 0, sizeof *msg);
        msg->bid = 100 + c;
        msg->code = POND_CODE_OK;
        msg->count = counts [c];
        msg->dups_count = counts [c];
        for (size_t i = 0; i < counts [c]; i++) {
            msg->seqs [i] = i * 0x100000001ULL + 1;
            msg->dups [i] = i % 3 == 0;
        }
        zframe_t *frame = s_reencode_check (pond_appended_encode (msg));
        memset (back, 0x55, sizeof *back);
        cr_assert_eq (pond_appended_decode (frame, back, err, sizeof err), 0, "%s", err);
        cr_assert_eq (back->bid, 100 + c);
        cr_assert_eq (back->code, 200);
        cr_assert_eq (back->count, counts [c]);
        cr_assert_eq (back->dups_count, counts [c]);
        cr_assert_eq (back->reason [0], 0);
        for (size_t i = 0; i < counts [c]; i++) {
            cr_assert_eq (back->seqs [i], msg->seqs [i]);
            cr_assert_eq (back->dups [i], msg->dups [i]);
        }
        zframe_destroy (&frame);
    }
    //  A failed batch: code 500, a reason, empty arrays
    memset (msg, 0, sizeof *msg);
    msg->bid = 9;
    msg->code = POND_CODE_STORE_ERROR;
    strcpy (msg->reason, "IO error: No space left on device");
    zframe_t *frame = pond_appended_encode (msg);
    cr_assert_eq (pond_appended_decode (frame, back, err, sizeof err), 0, "%s", err);
    cr_assert_eq (back->code, 500);
    cr_assert_str_eq (back->reason, msg->reason);
    cr_assert_eq (back->count, 0);
    zframe_destroy (&frame);
    free (msg);
    free (back);
}

Test (proto, proto_is)
{
    zframe_t *frame = zframe_new ("PUBLISH", 7);
    cr_assert (pond_proto_is (frame, POND_PUBLISH));
    cr_assert_not (pond_proto_is (frame, POND_PING));
    cr_assert_not (pond_proto_is (frame, "PUBLISHX"));
    cr_assert_not (pond_proto_is (frame, "PUBLIS"));
    cr_assert_not (pond_proto_is (NULL, POND_PUBLISH));
    zframe_destroy (&frame);
    frame = zframe_new ("PUBLISH\0", 8);
    cr_assert_not (pond_proto_is (frame, POND_PUBLISH), "a terminator is not part of it");
    zframe_destroy (&frame);
}

//  =====================================================================
//  Protocol bodies: every decoder, generically

typedef enum { M_ACK, M_NACK, M_REPLAY, M_CREDIT, M_END, M_APPEND, M_APPENDED, M_COUNT } kind_t;
static const char *s_kind_names [] = { "ACK", "NACK",   "REPLAY",  "CREDIT",
                                       "END", "APPEND", "APPENDED" };

typedef union {
    pond_ack_t ack;
    pond_nack_t nack;
    pond_replay_req_t replay;
    pond_credit_t credit;
    pond_end_t end;
    pond_append_t append;
    pond_appended_t appended;
} any_msg_t;

static int
s_decode_kind (kind_t kind, zframe_t *frame, any_msg_t *msg, char *err, size_t errlen)
{
    switch (kind) {
        case M_ACK: return pond_ack_decode (frame, &msg->ack, err, errlen);
        case M_NACK: return pond_nack_decode (frame, &msg->nack, err, errlen);
        case M_REPLAY: return pond_replay_req_decode (frame, &msg->replay, err, errlen);
        case M_CREDIT: return pond_credit_decode (frame, &msg->credit, err, errlen);
        case M_END: return pond_end_decode (frame, &msg->end, err, errlen);
        case M_APPEND: return pond_append_decode (frame, &msg->append, err, errlen);
        case M_APPENDED: return pond_appended_decode (frame, &msg->appended, err, errlen);
        default: return -2;
    }
}

static zframe_t *
s_encode_kind (kind_t kind, const any_msg_t *msg)
{
    switch (kind) {
        case M_ACK: return pond_ack_encode (&msg->ack);
        case M_NACK: return pond_nack_encode (&msg->nack);
        case M_REPLAY: return pond_replay_req_encode (&msg->replay);
        case M_CREDIT: return pond_credit_encode (&msg->credit);
        case M_END: return pond_end_encode (&msg->end);
        case M_APPEND: return pond_append_encode (&msg->append);
        case M_APPENDED: return pond_appended_encode (&msg->appended);
        default: return NULL;
    }
}

//  A valid body of each kind, key by key, and which keys are required.
//  The type letter says what wrong values to try: u = uint64, w = uint32,
//  b = bool, s = str, i = bin16 id, n = names, q = seqs, d = dups.
typedef struct {
    const char *key;
    const char *raw;
    size_t len;
    bool required;
    char type;
} body_kv_t;

#define BKV(k, lit, req, t) \
    { \
        (k), (lit), sizeof (lit) - 1, (req), (t) \
    }

static const body_kv_t s_ack_kvs [] = {
    BKV ("id", ID_RAW, true, 'i'),
    BKV ("seq", "\x05", true, 'u'),
    BKV ("dup", "\xc3", false, 'b'),
};
static const body_kv_t s_nack_kvs [] = {
    BKV ("id", ID_RAW, false, 'i'),
    BKV ("code", "\xcd\x01\x90", true, 'w'),
    BKV ("reason",
         "\xa3"
         "bad",
         true, 's'),
    BKV ("retry_ms", "\x00", false, 'w'),
};
static const body_kv_t s_replay_kvs [] = {
    BKV ("rid", "\x01", true, 'u'),
    BKV ("credit", "\x10", true, 'w'),
    BKV ("names",
         "\x92\xa7"
         "QUACKED\xa5"
         "LABEL",
         false, 'n'),
    BKV ("from", "\x01", false, 'u'),
    BKV ("to", "\xcc\xc8", false, 'u'),
    BKV ("from_seq", "\x00", false, 'u'),
    BKV ("to_seq", "\x00", false, 'u'),
    BKV ("entity",
         "\xa1"
         "c",
         false, 's'),
    BKV ("limit", "\x00", false, 'u'),
};
static const body_kv_t s_credit_kvs [] = {
    BKV ("rid", "\x01", true, 'u'),
    BKV ("chunks", "\x04", false, 'w'),
};
static const body_kv_t s_end_kvs [] = {
    BKV ("rid", "\x01", true, 'u'),
    BKV ("count", "\x0a", false, 'u'),
    BKV ("code", "\xcc\xc8", true, 'w'),
    BKV ("reason", "\xa0", false, 's'),
};
static const body_kv_t s_append_kvs [] = {
    BKV ("bid", "\x01", true, 'u'),
};
static const body_kv_t s_appended_kvs [] = {
    BKV ("bid", "\x01", true, 'u'),           BKV ("code", "\xcc\xc8", true, 'w'),
    BKV ("reason", "\xa0", false, 's'),       BKV ("seqs", "\x92\x01\x02", false, 'q'),
    BKV ("dups", "\x92\xc2\xc3", false, 'd'),
};

static const struct {
    const body_kv_t *kvs;
    size_t n;
} s_bodies [M_COUNT] = {
    { s_ack_kvs, 3 }, { s_nack_kvs, 4 },   { s_replay_kvs, 9 },   { s_credit_kvs, 2 },
    { s_end_kvs, 4 }, { s_append_kvs, 1 }, { s_appended_kvs, 5 },
};

//  Pack a body of 'kind', leaving out 'omit' and replacing key 'over'
//  with raw bytes (or adding it if the kind lacks it).
static zframe_t *
s_body_frame (kind_t kind, const char *omit, const char *over, const char *raw, size_t len)
{
    kv_t kvs [16];
    size_t n = s_bodies [kind].n;
    for (size_t i = 0; i < n; i++) {
        kvs [i].key = s_bodies [kind].kvs [i].key;
        kvs [i].raw = s_bodies [kind].kvs [i].raw;
        kvs [i].len = s_bodies [kind].kvs [i].len;
    }
    kv_t replace = { over, raw, len };
    size_t size;
    uint8_t *bytes = s_map_bytes (kvs, n, omit, over ? &replace : NULL, &size);
    zframe_t *frame = zframe_new (bytes, size);
    free (bytes);
    return frame;
}

static void
s_expect_body (kind_t kind, zframe_t *frame, bool ok, const char *mention, const char *what)
{
    any_msg_t *msg = malloc (sizeof *msg);
    char err [POND_ERR_SIZE] = "";
    int rc = s_decode_kind (kind, frame, msg, err, sizeof err);
    if (ok)
        cr_assert_eq (rc, 0, "%s %s: refused: %s", s_kind_names [kind], what, err);
    else {
        cr_assert_eq (rc, -1, "%s %s: accepted", s_kind_names [kind], what);
        cr_assert (strlen (err) > 0, "%s %s: empty reason", s_kind_names [kind], what);
        if (mention)
            cr_assert (s_mentions (err, mention), "%s %s: reason '%s' does not name '%s'",
                       s_kind_names [kind], what, err, mention);
    }
    free (msg);
}

Test (proto, every_body_valid_as_built)
{
    for (int kind = 0; kind < M_COUNT; kind++) {
        zframe_t *frame = s_body_frame (kind, NULL, NULL, NULL, 0);
        s_expect_body (kind, frame, true, NULL, "valid");
        zframe_destroy (&frame);
    }
}

Test (proto, missing_required_keys)
{
    int checked = 0;
    for (int kind = 0; kind < M_COUNT; kind++)
        for (size_t i = 0; i < s_bodies [kind].n; i++) {
            const body_kv_t *kv = &s_bodies [kind].kvs [i];
            zframe_t *frame = s_body_frame (kind, kv->key, NULL, NULL, 0);
            if (kv->required) {
                s_expect_body (kind, frame, false, kv->key, "missing required key");
                checked++;
            }
            else if (!(kind == M_APPENDED && (streq (kv->key, "seqs") || streq (kv->key, "dups"))))
                s_expect_body (kind, frame, true, NULL, "optional key left out");
            zframe_destroy (&frame);
        }
    cr_assert_eq (checked, 12);
}

Test (proto, wrong_types)
{
    //  Wrong values for each type letter
    static const struct {
        char type;
        const char *raw;
        size_t len;
        const char *what;
    } wrong [] = {
        { 'u',
          "\xa1"
          "1",
          2, "str" },
        { 'u', "\xff", 1, "negative" },
        { 'u', "\xd3\x80\0\0\0\0\0\0\0", 9, "int64 min" },
        { 'u', "\xcb\x3f\xf0\0\0\0\0\0\0", 9, "float" },
        { 'u', "\xc0", 1, "nil" },
        { 'u', "\xc3", 1, "bool" },
        { 'u', "\x91\x01", 2, "array" },
        { 'u', "\xc4\x01\x01", 3, "bin" },
        { 'w',
          "\xa1"
          "1",
          2, "str" },
        { 'w', "\xff", 1, "negative" },
        { 'w', "\xc0", 1, "nil" },
        { 'w', "\xcf\0\0\0\x01\0\0\0\0", 9, "2^32" },
        { 'w', "\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9, "2^64-1" },
        { 'w', "\xca\x3f\x80\0\0", 5, "float32" },
        { 'b', "\x01", 1, "int" },
        { 'b', "\xc0", 1, "nil" },
        { 'b',
          "\xa4"
          "true",
          5, "str" },
        { 's', "\x01", 1, "int" },
        { 's',
          "\xc4\x01"
          "x",
          3, "bin" },
        { 's', "\xc0", 1, "nil" },
        { 's',
          "\xa3"
          "a\0b",
          4, "NUL inside" },
        { 's',
          "\x91\xa1"
          "x",
          3, "array" },
        { 'i',
          "\xb0"
          "0123456789abcdef",
          17, "str 16" },
        { 'i',
          "\xc4\x0f"
          "0123456789abcde",
          17, "bin 15" },
        { 'i',
          "\xc4\x11"
          "0123456789abcdefg",
          19, "bin 17" },
        { 'i', "\x01", 1, "int" },
        { 'i', "\xc0", 1, "nil" },
        { 'n',
          "\xa7"
          "QUACKED",
          8, "str, not array" },
        { 'n', "\x91\x01", 2, "array of int" },
        { 'n',
          "\x92\xa1"
          "A\xc0",
          4, "nil item" },
        { 'n',
          "\x81\xa1"
          "A\x01",
          4, "map" },
        { 'q', "\x01", 1, "int" },
        { 'q', "\x92\x01\xff", 3, "negative item" },
        { 'q',
          "\x92\x01\xa1"
          "2",
          4, "str item" },
        { 'd', "\xc3", 1, "bool, not array" },
        { 'd', "\x92\xc3\x01", 3, "int item" },
    };
    int checked = 0;
    for (int kind = 0; kind < M_COUNT; kind++)
        for (size_t i = 0; i < s_bodies [kind].n; i++) {
            const body_kv_t *kv = &s_bodies [kind].kvs [i];
            for (size_t w = 0; w < sizeof wrong / sizeof wrong [0]; w++) {
                if (wrong [w].type != kv->type)
                    continue;
                zframe_t *frame = s_body_frame (kind, NULL, kv->key, wrong [w].raw, wrong [w].len);
                //  a nil id in NACK means "no id": that one is fine
                bool ok = kind == M_NACK && kv->type == 'i' && streq (wrong [w].what, "nil");
                char what [64];
                snprintf (what, sizeof what, "%s as %s", kv->key, wrong [w].what);
                s_expect_body (kind, frame, ok, kv->key, what);
                zframe_destroy (&frame);
                checked++;
            }
        }
    cr_assert_gt (checked, 100);
    //  ACK's id may not be nil; uint32 holds its largest value
    zframe_t *frame = s_body_frame (M_ACK, NULL, "id", "\xc0", 1);
    s_expect_body (M_ACK, frame, false, "id", "nil id");
    zframe_destroy (&frame);
    frame = s_body_frame (M_NACK, NULL, "code", "\xce\xff\xff\xff\xff", 5);
    s_expect_body (M_NACK, frame, true, NULL, "code 2^32-1");
    zframe_destroy (&frame);
    frame = s_body_frame (M_CREDIT, NULL, "chunks", "\xcf\0\0\0\x01\0\0\0\0", 9);
    s_expect_body (M_CREDIT, frame, false, "chunks", "chunks 2^32");
    zframe_destroy (&frame);
}

Test (proto, string_capacities)
{
    //  reason: 255 bytes fit, 256 do not; entity: 128 fit, 129 do not;
    //  a name in names: 64 fit, 65 do not
    char text [300];
    memset (text, 'R', sizeof text);
    struct {
        kind_t kind;
        const char *key;
        size_t fit;
        bool in_array;
    } cases [] = {
        { M_NACK, "reason", POND_REASON_MAX - 1, false },
        { M_END, "reason", POND_REASON_MAX - 1, false },
        { M_APPENDED, "reason", POND_REASON_MAX - 1, false },
        { M_REPLAY, "entity", POND_ENTITY_MAX, false },
        { M_REPLAY, "names", POND_NAME_MAX, true },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases [0]; c++)
        for (size_t len = cases [c].fit; len <= cases [c].fit + 1; len++) {
            buf_t b;
            s_buf_init (&b);
            if (cases [c].in_array)
                msgpack_pack_array (&b.pk, 1);
            s_buf_strn (&b, text, len);
            zframe_t *frame = s_body_frame (cases [c].kind, NULL, cases [c].key, b.sbuf.data,
                                            b.sbuf.size);
            s_expect_body (cases [c].kind, frame, len == cases [c].fit, cases [c].key, "capacity");
            zframe_destroy (&frame);
            s_buf_destroy (&b);
        }
}

Test (proto, replay_req_semantics)
{
    struct {
        const char *key;
        const char *raw;
        size_t len;
        bool ok;
        const char *mention;
        const char *what;
    } cases [] = {
        { "names", "\x90", 1, true, NULL, "no names" },
        { "names",
          "\x91\xa1"
          "q",
          3, false, "q", "lower-case name" },
        { "names", "\x91\xa0", 2, false, NULL, "empty name" },
        { "names",
          "\x91\xa2"
          "1A",
          4, false, "1A", "leading digit" },
        { "names",
          "\x92\xa1"
          "A\xa3"
          "A-B",
          7, false, "A-B", "dash" },
        { "names",
          "\x91\xa3"
          "A B",
          5, false, NULL, "space" },
        { "credit", "\x00", 1, false, "credit", "credit 0" },
        { "credit", "\x01", 1, true, NULL, "credit 1" },
        { "credit", "\xcd\x04\x00", 3, true, NULL, "credit 1024" },
        { "credit", "\xcd\x04\x01", 3, false, "credit", "credit 1025" },
        { "credit", "\xce\xff\xff\xff\xff", 5, false, "credit", "credit 2^32-1" },
        { "to", "\x01", 1, false, "to", "to == from" },
        { "to", "\x02", 1, true, NULL, "to just after from" },
        { "to", "\x00", 1, true, NULL, "to 0 = no end" },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases [0]; c++) {
        zframe_t *frame = s_body_frame (M_REPLAY, NULL, cases [c].key, cases [c].raw,
                                        cases [c].len);
        s_expect_body (M_REPLAY, frame, cases [c].ok, cases [c].mention, cases [c].what);
        zframe_destroy (&frame);
    }
    //  to before from, to_seq at or before from_seq
    pond_replay_req_t req = { .rid = 1, .credit = 1, .from_ts = 100, .to_ts = 50 };
    zframe_t *frame = pond_replay_req_encode (&req);
    s_expect_body (M_REPLAY, frame, false, "to", "to < from");
    zframe_destroy (&frame);
    req.to_ts = 0;
    req.from_seq = 10;
    req.to_seq = 10;
    frame = pond_replay_req_encode (&req);
    s_expect_body (M_REPLAY, frame, false, "to_seq", "to_seq == from_seq");
    zframe_destroy (&frame);
    req.to_seq = 3;
    frame = pond_replay_req_encode (&req);
    s_expect_body (M_REPLAY, frame, false, "to_seq", "to_seq < from_seq");
    zframe_destroy (&frame);
    req.to_seq = 11;
    frame = pond_replay_req_encode (&req);
    s_expect_body (M_REPLAY, frame, true, NULL, "to_seq = from_seq + 1");
    zframe_destroy (&frame);

    //  16 names are fine, 17 are too many
    for (int count = 16; count <= 17; count++) {
        buf_t b;
        s_buf_init (&b);
        msgpack_pack_array (&b.pk, count);
        for (int i = 0; i < count; i++) {
            char name [16];
            snprintf (name, sizeof name, "N%d", i);
            s_buf_str (&b, name);
        }
        frame = s_body_frame (M_REPLAY, NULL, "names", b.sbuf.data, b.sbuf.size);
        s_expect_body (M_REPLAY, frame, count == 16, "names", "16 or 17 names");
        zframe_destroy (&frame);
        s_buf_destroy (&b);
    }
}

Test (proto, appended_array_rules)
{
    struct {
        const char *seqs;
        size_t seqs_len;
        const char *dups;
        size_t dups_len;
        bool ok;
    } cases [] = {
        { "\x92\x01\x02", 3, "\x91\xc2", 2, false },
        { "\x91\x01", 2, "\x92\xc2\xc3", 3, false },
        { "\x90", 1, "\x91\xc2", 2, false },
        { "\x90", 1, "\x90", 1, true },
        { "\x93\x01\x02\x03", 4, "\x93\xc2\xc2\xc3", 4, true },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases [0]; c++) {
        kv_t kvs [] = {
            KV ("bid", "\x01"),
            KV ("code", "\xcc\xc8"),
            { "seqs", cases [c].seqs, cases [c].seqs_len },
            { "dups", cases [c].dups, cases [c].dups_len },
        };
        size_t size;
        uint8_t *bytes = s_map_bytes (kvs, 4, NULL, NULL, &size);
        zframe_t *frame = zframe_new (bytes, size);
        s_expect_body (M_APPENDED, frame, cases [c].ok, cases [c].ok ? NULL : "seqs", "lengths");
        zframe_destroy (&frame);
        free (bytes);
    }
    //  seqs alone, or dups alone, is a mismatch too
    zframe_t *frame = s_body_frame (M_APPENDED, "dups", NULL, NULL, 0);
    s_expect_body (M_APPENDED, frame, false, "dups", "seqs without dups");
    zframe_destroy (&frame);
    frame = s_body_frame (M_APPENDED, "seqs", NULL, NULL, 0);
    s_expect_body (M_APPENDED, frame, false, "seqs", "dups without seqs");
    zframe_destroy (&frame);
    //  1024 items are fine, 1025 too many
    for (int count = POND_APPEND_MAX; count <= POND_APPEND_MAX + 1; count++) {
        buf_t seqs, dups;
        s_buf_init (&seqs);
        s_buf_init (&dups);
        msgpack_pack_array (&seqs.pk, count);
        msgpack_pack_array (&dups.pk, count);
        for (int i = 0; i < count; i++) {
            msgpack_pack_uint64 (&seqs.pk, (uint64_t) i + 1);
            msgpack_pack_false (&dups.pk);
        }
        kv_t kvs [] = {
            KV ("bid", "\x01"),
            KV ("code", "\xcc\xc8"),
            { "seqs", seqs.sbuf.data, seqs.sbuf.size },
            { "dups", dups.sbuf.data, dups.sbuf.size },
        };
        size_t size;
        uint8_t *bytes = s_map_bytes (kvs, 4, NULL, NULL, &size);
        frame = zframe_new (bytes, size);
        s_expect_body (M_APPENDED, frame, count == POND_APPEND_MAX, "seqs", "1024 or 1025");
        zframe_destroy (&frame);
        free (bytes);
        s_buf_destroy (&seqs);
        s_buf_destroy (&dups);
    }
}

Test (proto, frame_level_rejections)
{
    for (int kind = 0; kind < M_COUNT; kind++) {
        //  NULL frame, empty frame, not a map, not msgpack, trailing bytes
        s_expect_body (kind, NULL, false, NULL, "NULL frame");
        zframe_t *frame = zframe_new (NULL, 0);
        s_expect_body (kind, frame, false, NULL, "empty frame");
        zframe_destroy (&frame);
        const char *not_maps [] = { "\x90",
                                    "\x01",
                                    ("\xa1"
                                     "x"),
                                    "\xc0",
                                    "\xc3",
                                    "\xc1",
                                    "\x93\x01\x02\x03" };
        const size_t lens [] = { 1, 1, 2, 1, 1, 1, 4 };
        for (size_t i = 0; i < sizeof lens / sizeof lens [0]; i++) {
            frame = zframe_new (not_maps [i], lens [i]);
            s_expect_body (kind, frame, false, NULL, "not a map");
            zframe_destroy (&frame);
        }
        frame = s_body_frame (kind, NULL, NULL, NULL, 0);
        zframe_t *longer = zframe_new (NULL, zframe_size (frame) + 1);
        memcpy (zframe_data (longer), zframe_data (frame), zframe_size (frame));
        zframe_data (longer) [zframe_size (frame)] = 0xc0;
        s_expect_body (kind, longer, false, NULL, "trailing byte");
        zframe_destroy (&longer);
        //  Every truncation of a valid body
        for (size_t cut = 0; cut < zframe_size (frame); cut++) {
            zframe_t *part = zframe_new (zframe_data (frame), cut);
            s_expect_body (kind, part, false, NULL, "truncated");
            zframe_destroy (&part);
        }
        zframe_destroy (&frame);
        //  Hostile headers
        const char *lies [] = { "\xdf\xff\xff\xff\xff", "\xdd\xff\xff\xff\xff",
                                "\xdb\xff\xff\xff\xff" };
        for (int l = 0; l < 3; l++) {
            frame = zframe_new (lies [l], 5);
            s_expect_body (kind, frame, false, NULL, "hostile header");
            zframe_destroy (&frame);
            frame = s_body_frame (kind, NULL, "zzz", lies [l], 5);
            s_expect_body (kind, frame, false, NULL, "hostile header in an unknown key");
            zframe_destroy (&frame);
        }
    }
}

Test (proto, oversized_body)
{
    //  A valid body padded with an unknown key to exactly 256 KiB is
    //  read; one byte more is refused before it is parsed
    for (int kind = 0; kind < M_COUNT; kind++) {
        for (int extra = 0; extra < 2; extra++) {
            zframe_t *base = s_body_frame (kind, NULL, NULL, NULL, 0);
            size_t base_size = zframe_size (base);
            zframe_destroy (&base);
            //  map header grows by 0 (fixmap n+1 <= 15), key "pad" 4 bytes,
            //  str32 header 5 bytes
            size_t pad = POND_BODY_MAX - base_size - 4 - 5 + extra;
            char *raw = malloc (5 + pad);
            raw [0] = (char) 0xdb;
            raw [1] = (char) (pad >> 24);
            raw [2] = (char) (pad >> 16);
            raw [3] = (char) (pad >> 8);
            raw [4] = (char) pad;
            memset (raw + 5, 'p', pad);
            zframe_t *frame = s_body_frame (kind, NULL, "pad", raw, 5 + pad);
            cr_assert_eq (zframe_size (frame), (size_t) (POND_BODY_MAX + extra));
            any_msg_t *msg = malloc (sizeof *msg);
            char err [POND_ERR_SIZE] = "";
            int rc = s_decode_kind (kind, frame, msg, err, sizeof err);
            if (extra) {
                cr_assert_eq (rc, -1, "%s: over 256 KiB accepted", s_kind_names [kind]);
                cr_assert_not_null (strstr (err, "limit"), "%s", err);
            }
            else
                cr_assert_eq (rc, 0, "%s: 256 KiB refused: %s", s_kind_names [kind], err);
            free (msg);
            free (raw);
            zframe_destroy (&frame);
        }
    }
}

Test (proto, unknown_keys_ignored)
{
    //  Unknown str keys with any value, and non-str keys, are skipped
    const char *values [] = { "\x01", "\xc0", "\x92\x81\x01\x02\xc4\x01\x00",
                              "\xd6\xff\0\0\0\x01" };
    const size_t lens [] = { 1, 1, 7, 6 };
    for (int kind = 0; kind < M_COUNT; kind++)
        for (size_t v = 0; v < 4; v++) {
            zframe_t *frame = s_body_frame (kind, NULL, "x_future_key", values [v], lens [v]);
            s_expect_body (kind, frame, true, NULL, "unknown key");
            zframe_destroy (&frame);
        }
    //  A non-str key in the middle of an ACK
    buf_t b;
    s_buf_init (&b);
    msgpack_pack_map (&b.pk, 4);
    msgpack_pack_int (&b.pk, 1);
    s_buf_str (&b, "one");
    s_buf_str (&b, "id");
    s_buf_raw (&b, ID_RAW, 18);
    msgpack_pack_nil (&b.pk);
    msgpack_pack_nil (&b.pk);
    s_buf_str (&b, "seq");
    msgpack_pack_uint64 (&b.pk, 99);
    zframe_t *frame = zframe_new (b.sbuf.data, b.sbuf.size);
    pond_ack_t ack;
    char err [POND_ERR_SIZE] = "";
    cr_assert_eq (pond_ack_decode (frame, &ack, err, sizeof err), 0, "%s", err);
    cr_assert_eq (ack.seq, 99);
    zframe_destroy (&frame);
    s_buf_destroy (&b);
}

//  =====================================================================
//  Robustness: random and mutated input to every decoder

typedef struct {
    int tried;
    int events_ok;
    int bodies_ok [M_COUNT];
} stats_t;

//  Feed bytes to the event decoder: refuse with a reason, or accept an
//  event that re-encodes, and whose re-encoding is a fixed point.
static void
s_fuzz_event (const uint8_t *data, size_t size, stats_t *stats)
{
    char err [POND_ERR_SIZE];
    err [0] = 0;
    pond_event_t *ev = pond_event_decode (data, size, err, sizeof err);
    if (!ev) {
        cr_assert (strlen (err) > 0, "empty reason for %zu bytes", size);
        cr_assert_lt (strlen (err), sizeof err);
        return;
    }
    stats->events_ok++;
    size_t size1, size2;
    err [0] = 0;
    uint8_t *enc1 = pond_event_encode (ev, &size1, err, sizeof err);
    cr_assert_not_null (enc1, "accepted event does not re-encode: %s", err);
    cr_assert_leq (size1, size, "canonical encoding is never larger");
    pond_event_t *ev2 = pond_event_decode (enc1, size1, err, sizeof err);
    cr_assert_not_null (ev2, "re-encoded event does not decode: %s", err);
    uint8_t *enc2 = pond_event_encode (ev2, &size2, err, sizeof err);
    cr_assert_not_null (enc2);
    cr_assert_eq (size2, size1);
    cr_assert_arr_eq (enc2, enc1, size1);
    cr_assert_str_eq (pond_event_name (ev2), pond_event_name (ev));
    cr_assert_eq (pond_event_ts (ev2), pond_event_ts (ev));
    cr_assert_eq (pond_event_seq (ev2), pond_event_seq (ev));
    char *json = pond_event_to_json (ev);
    cr_assert_not_null (json);
    free (json);
    free (enc1);
    free (enc2);
    pond_event_destroy (&ev);
    pond_event_destroy (&ev2);
}

static void
s_fuzz_bodies (const uint8_t *data, size_t size, stats_t *stats, any_msg_t *m1, any_msg_t *m2)
{
    zframe_t *frame = zframe_new (data, size);
    for (int kind = 0; kind < M_COUNT; kind++) {
        char err [POND_ERR_SIZE];
        err [0] = 0;
        int rc = s_decode_kind (kind, frame, m1, err, sizeof err);
        cr_assert (rc == 0 || rc == -1);
        if (rc) {
            cr_assert (strlen (err) > 0, "%s: empty reason", s_kind_names [kind]);
            continue;
        }
        stats->bodies_ok [kind]++;
        zframe_t *f1 = s_encode_kind (kind, m1);
        cr_assert_not_null (f1);
        cr_assert_eq (s_decode_kind (kind, f1, m2, err, sizeof err), 0,
                      "%s: re-encoded body refused: %s", s_kind_names [kind], err);
        zframe_t *f2 = s_encode_kind (kind, m2);
        cr_assert (zframe_eq (f1, f2), "%s: re-encoding is not stable", s_kind_names [kind]);
        zframe_destroy (&f1);
        zframe_destroy (&f2);
    }
    zframe_destroy (&frame);
}

static void
s_fuzz_all (const uint8_t *data, size_t size, stats_t *stats, any_msg_t *m1, any_msg_t *m2)
{
    stats->tried++;
    static const uint8_t empty [1] = { 0 };
    if (!data)
        data = empty;
    s_fuzz_event (data, size, stats);
    s_fuzz_bodies (data, size, stats, m1, m2);
}

//  Random msgpack that often looks right: a map whose keys come from
//  every message and whose values are often of the right type.
static void s_random_value (buf_t *b, int depth);

static const char *s_fuzz_keys [] = {
    "id",       "name",   "ts",     "entity",   "source", "causation", "meta",  "data", "seq",
    "dup",      "code",   "reason", "retry_ms", "rid",    "credit",    "names", "from", "to",
    "from_seq", "to_seq", "limit",  "chunks",   "count",  "bid",       "seqs",  "dups", "x"
};
#define FUZZ_KEYS (sizeof s_fuzz_keys / sizeof s_fuzz_keys [0])

static void
s_random_name (buf_t *b)
{
    static const char *names [] = { "QUACKED", "BUTTON_CLICKED", "A", "LABEL_ADDED", "X9_" };
    s_buf_str (b, names [s_below (5)]);
}

static void
s_random_id (buf_t *b)
{
    uint8_t id [16];
    for (int i = 0; i < 16; i++)
        id [i] = (uint8_t) s_rand ();
    if (s_below (20) == 0)
        memset (id, 0, 16);
    msgpack_pack_bin (&b->pk, 16);
    msgpack_pack_bin_body (&b->pk, id, 16);
}

static void
s_random_good_for (buf_t *b, const char *key, size_t count_hint)
{
    if (streq (key, "id") || streq (key, "causation"))
        s_random_id (b);
    else if (streq (key, "name"))
        s_random_name (b);
    else if (streq (key, "entity") || streq (key, "source") || streq (key, "reason")) {
        char text [24];
        size_t len = 1 + s_below (sizeof text - 1);
        for (size_t i = 0; i < len; i++)
            text [i] = (char) (0x20 + s_below (95));
        s_buf_strn (b, text, len);
    }
    else if (streq (key, "ts") || streq (key, "from") || streq (key, "to"))
        msgpack_pack_uint64 (&b->pk, 1 + s_below (POND_TIME_MAX));
    else if (streq (key, "meta") || streq (key, "data")) {
        uint32_t n = (uint32_t) s_below (4);
        msgpack_pack_map (&b->pk, n);
        for (uint32_t i = 0; i < n; i++) {
            s_buf_str (b, s_fuzz_keys [s_below (FUZZ_KEYS)]);
            s_random_value (b, 2);
        }
    }
    else if (streq (key, "credit"))
        msgpack_pack_uint32 (&b->pk, (uint32_t) (1 + s_below (POND_CREDIT_MAX)));
    else if (streq (key, "dup")) {
        if (s_below (2))
            msgpack_pack_true (&b->pk);
        else
            msgpack_pack_false (&b->pk);
    }
    else if (streq (key, "names")) {
        uint32_t n = (uint32_t) s_below (4);
        msgpack_pack_array (&b->pk, n);
        for (uint32_t i = 0; i < n; i++)
            s_random_name (b);
    }
    else if (streq (key, "seqs")) {
        msgpack_pack_array (&b->pk, count_hint);
        for (size_t i = 0; i < count_hint; i++)
            msgpack_pack_uint64 (&b->pk, s_rand ());
    }
    else if (streq (key, "dups")) {
        msgpack_pack_array (&b->pk, count_hint);
        for (size_t i = 0; i < count_hint; i++)
            if (s_below (2))
                msgpack_pack_true (&b->pk);
            else
                msgpack_pack_false (&b->pk);
    }
    else if (streq (key, "from_seq") || streq (key, "to_seq") || streq (key, "seq"))
        msgpack_pack_uint64 (&b->pk, s_below (4) == 0 ? s_rand () : s_below (1000));
    else
        msgpack_pack_uint32 (&b->pk, (uint32_t) (s_below (3) == 0 ? s_rand () : s_below (600)));
}

static void
s_random_value (buf_t *b, int depth)
{
    switch (s_below (depth > 3 ? 12 : 14)) {
        case 0: msgpack_pack_nil (&b->pk); break;
        case 1: msgpack_pack_true (&b->pk); break;
        case 2: msgpack_pack_int64 (&b->pk, (int64_t) s_rand ()); break;
        case 3: msgpack_pack_uint64 (&b->pk, s_below (300)); break;
        case 4: msgpack_pack_double (&b->pk, (double) (int64_t) s_rand () / 7.0); break;
        case 5: msgpack_pack_float (&b->pk, (float) s_below (1000) / 8.0f); break;
        case 6: s_random_name (b); break;
        case 7: s_random_id (b); break;
        case 8: {
            char text [40];
            size_t len = s_below (sizeof text);
            for (size_t i = 0; i < len; i++)
                text [i] = (char) s_rand ();
            s_buf_strn (b, text, len);
            break;
        }
        case 9: {
            uint8_t body [20];
            size_t len = s_below (sizeof body);
            for (size_t i = 0; i < len; i++)
                body [i] = (uint8_t) s_rand ();
            msgpack_pack_ext (&b->pk, len, (int8_t) s_rand ());
            msgpack_pack_ext_body (&b->pk, body, len);
            break;
        }
        case 10: msgpack_pack_uint64 (&b->pk, s_rand ()); break;
        case 11: msgpack_pack_false (&b->pk); break;
        case 12: {
            uint32_t n = (uint32_t) s_below (4);
            msgpack_pack_array (&b->pk, n);
            for (uint32_t i = 0; i < n; i++)
                s_random_value (b, depth + 1);
            break;
        }
        default: {
            uint32_t n = (uint32_t) s_below (4);
            msgpack_pack_map (&b->pk, n);
            for (uint32_t i = 0; i < n; i++) {
                if (s_below (4) == 0)
                    s_random_value (b, depth + 1);
                else
                    s_buf_str (b, s_fuzz_keys [s_below (FUZZ_KEYS)]);
                s_random_value (b, depth + 1);
            }
            break;
        }
    }
}

//  A map that is likely a valid event or body: each key of one message,
//  mostly with a good value
static void
s_random_message (buf_t *b)
{
    static const char *sets [][10] = {
        { "id", "name", "ts", "entity", "source", "causation", "meta", "data", "seq", NULL },
        { "id", "seq", "dup", NULL },
        { "id", "code", "reason", "retry_ms", NULL },
        { "rid", "credit", "names", "from", "to", "from_seq", "to_seq", "entity", "limit", NULL },
        { "rid", "chunks", NULL },
        { "rid", "count", "code", "reason", NULL },
        { "bid", NULL },
        { "bid", "code", "reason", "seqs", "dups", NULL },
    };
    const char **set = sets [s_below (8)];
    const char *chosen [12];
    size_t n = 0;
    for (size_t i = 0; set [i]; i++)
        if (i < 4 || s_below (2))
            chosen [n++] = set [i];
    if (s_below (4) == 0)
        chosen [n++] = s_fuzz_keys [s_below (FUZZ_KEYS)];
    size_t count_hint = s_below (5);
    msgpack_pack_map (&b->pk, n);
    for (size_t i = 0; i < n; i++) {
        s_buf_str (b, chosen [i]);
        if (s_below (8) == 0)
            s_random_value (b, 1);
        else
            s_random_good_for (b, chosen [i], count_hint);
    }
}

static void
s_mutate_and_fuzz (const uint8_t *data, size_t size, int rounds, stats_t *stats, any_msg_t *m1,
                   any_msg_t *m2)
{
    uint8_t *copy = malloc (size + 1);
    for (int r = 0; r < rounds; r++) {
        memcpy (copy, data, size);
        size_t len = size;
        size_t at = s_below (size);
        switch (s_below (5)) {
            case 0: copy [at] = (uint8_t) s_rand (); break;              //  random byte
            case 1: copy [at] ^= (uint8_t) (1 << s_below (8)); break;    //  bit flip
            case 2: len = s_below (size); break;                         //  truncate
            case 3:                                                      //  delete a byte
                memmove (copy + at, copy + at + 1, size - at - 1);
                len = size - 1;
                break;
            default:    //  insert a byte
                memmove (copy + at + 1, copy + at, size - at);
                copy [at] = (uint8_t) s_rand ();
                len = size + 1;
                break;
        }
        s_fuzz_all (copy, len, stats, m1, m2);
    }
    free (copy);
}

Test (fuzz, random_bytes, .timeout = 30)
{
    s_seed (0x706f6e64);    //  "pond"
    stats_t stats = { 0 };
    any_msg_t *m1 = malloc (sizeof *m1);
    any_msg_t *m2 = malloc (sizeof *m2);
    uint8_t bytes [96];
    for (int i = 0; i < 5000 * POND_FUZZ_SCALE; i++) {
        size_t len = s_below (sizeof bytes);
        for (size_t j = 0; j < len; j++)
            bytes [j] = (uint8_t) s_rand ();
        //  half start like a map, so the decoders get past the first byte
        if (len && s_below (2))
            bytes [0] = (uint8_t) (0x80 | s_below (16));
        s_fuzz_all (bytes, len, &stats, m1, m2);
    }
    cr_assert_eq (stats.tried, 5000 * POND_FUZZ_SCALE);
    free (m1);
    free (m2);
}

Test (fuzz, mutations_of_valid_messages, .timeout = 30)
{
    s_seed (20240601);
    stats_t stats = { 0 };
    any_msg_t *m1 = malloc (sizeof *m1);
    any_msg_t *m2 = malloc (sizeof *m2);

    //  Hand-made valid samples: events and every body
    pond_event_t *ev = s_full_event ();
    size_t size;
    uint8_t *full = s_encode_ok (ev, &size);
    s_fuzz_all (full, size, &stats, m1, m2);
    cr_assert_eq (stats.events_ok, 1);
    s_mutate_and_fuzz (full, size, 4000 * POND_FUZZ_SCALE, &stats, m1, m2);
    //  every single-byte change at every offset, a few values each
    for (size_t at = 0; at < size; at++) {
        const uint8_t values [] = { 0x00, 0xff, 0xc0, 0xc1, 0xdf, (uint8_t) (full [at] + 1) };
        for (size_t v = 0; v < sizeof values; v++) {
            uint8_t saved = full [at];
            full [at] = values [v];
            s_fuzz_all (full, size, &stats, m1, m2);
            full [at] = saved;
        }
    }
    free (full);
    pond_event_destroy (&ev);
    for (int kind = 0; kind < M_COUNT; kind++) {
        zframe_t *frame = s_body_frame (kind, NULL, NULL, NULL, 0);
        s_fuzz_all (zframe_data (frame), zframe_size (frame), &stats, m1, m2);
        s_mutate_and_fuzz (zframe_data (frame), zframe_size (frame), 600 * POND_FUZZ_SCALE, &stats,
                           m1, m2);
        zframe_destroy (&frame);
    }
    //  Generated messages, and mutations of them
    for (int i = 0; i < 3000 * POND_FUZZ_SCALE; i++) {
        buf_t b;
        s_buf_init (&b);
        s_random_message (&b);
        s_fuzz_all ((uint8_t *) b.sbuf.data, b.sbuf.size, &stats, m1, m2);
        s_mutate_and_fuzz ((uint8_t *) b.sbuf.data, b.sbuf.size, 2, &stats, m1, m2);
        s_buf_destroy (&b);
    }
    //  The loop did exercise acceptance, not only refusal
    cr_assert_gt (stats.events_ok, 300, "only %d events accepted", stats.events_ok);
    for (int kind = 0; kind < M_COUNT; kind++)
        cr_assert_gt (stats.bodies_ok [kind], 20, "%s accepted only %d times", s_kind_names [kind],
                      stats.bodies_ok [kind]);
    cr_log_info ("fuzz: %d inputs, %d events accepted, bodies accepted: "
                 "ACK %d NACK %d REPLAY %d CREDIT %d END %d APPEND %d APPENDED %d",
                 stats.tried, stats.events_ok, stats.bodies_ok [0], stats.bodies_ok [1],
                 stats.bodies_ok [2], stats.bodies_ok [3], stats.bodies_ok [4], stats.bodies_ok [5],
                 stats.bodies_ok [6]);
    free (m1);
    free (m2);
}

Test (fuzz, random_json, .timeout = 30)
{
    //  Random text to the JSON parser: refuse with a reason, or produce
    //  msgpack that the checker accepts as one map
    s_seed (7);
    static const char alphabet [] = "{}[]\":,0123456789-+.eE \\unlltrfas";
    int ok = 0;
    for (int i = 0; i < 5000 * POND_FUZZ_SCALE; i++) {
        char text [48];
        size_t len = s_below (sizeof text);
        for (size_t j = 0; j < len; j++)
            text [j] = alphabet [s_below (sizeof alphabet - 1)];
        text [len] = 0;
        if (len && s_below (2))
            text [0] = '{';
        char err [POND_ERR_SIZE] = "";
        size_t size;
        uint8_t *msgpack = pond_value_from_json (text, &size, err, sizeof err);
        if (!msgpack) {
            cr_assert (*err, "'%s'", text);
            continue;
        }
        ok++;
        size_t used;
        cr_assert_eq (pond_value_check (msgpack, size, &used, err, sizeof err), 0, "%s", err);
        cr_assert_eq (used, size);
        cr_assert (msgpack [0] >= 0x80 && msgpack [0] <= 0x8f);
        char *json = pond_value_to_json (msgpack, size);
        cr_assert_not_null (json);
        free (json);
        free (msgpack);
    }
    cr_assert_gt (ok, 0);
}

//  =====================================================================
//  Strings are UTF-8, data and meta what JSON and strict readers can show

//  An event whose key over->key holds raw bytes, decoded: NULL (reason in
//  err) or the event.
static pond_event_t *
s_decode_with (const char *key, const char *raw, size_t len, char *err, size_t errlen)
{
    kv_t over = { key, raw, len };
    size_t size;
    uint8_t *bytes = s_map_bytes (EVENT_KVS, NULL, &over, &size);
    pond_event_t *ev = pond_event_decode (bytes, size, err, errlen);
    free (bytes);
    return ev;
}

Test (event, decode_refuses_invalid_utf8_naming_the_key)
{
    static const struct {
        const char *key;
        const char *raw;
        size_t len;
        const char *mention;
    } bad [] = {
        //  str "cu\xffs1": a byte that is never UTF-8
        { "entity",
          "\xa5"
          "cu\xff"
          "s1",
          6, "entity" },
        { "source",
          "\xa5"
          "cu\xff"
          "s1",
          6, "source" },
        { "entity",
          "\xa3"
          "a\xc0\xaf",
          4, "entity" },    //  overlong '/'
        { "entity",
          "\xa3"
          "\xe0\x80\xaf",
          4, "entity" },    //  overlong, 3 bytes
        { "entity",
          "\xa4"
          "\xf0\x80\x80\xaf",
          5, "entity" },    //  overlong, 4 bytes
        { "entity",
          "\xa3"
          "\xed\xa0\x80",
          4, "entity" },    //  surrogate U+D800
        { "entity",
          "\xa4"
          "\xf4\x90\x80\x80",
          5, "entity" },    //  U+110000
        { "entity",
          "\xa3"
          "a\xe2\x82",
          4, "entity" },    //  cut short
        { "entity",
          "\xa2"
          "\x80"
          "a",
          3, "entity" },    //  lone continuation
        //  data and meta: values, keys, nested; the reason gives the path
        { "data",
          "\x81\xa1k\xa2"
          "a\xff",
          6, "data.k" },
        { "data", "\x81\xa2k\xff\xa1v", 6, "data" },
        { "meta", "\x81\xa1m\x81\xa1n\x92\x01\xa3\xed\xbf\xbf", 12, "meta.m.n[1]" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        char err [POND_ERR_SIZE] = "";
        pond_event_t *ev = s_decode_with (bad [i].key, bad [i].raw, bad [i].len, err, sizeof err);
        cr_assert_null (ev, "case %zu (%s) decoded although not UTF-8", i, bad [i].key);
        cr_assert (strstr (err, bad [i].mention), "case %zu: reason '%s' does not name '%s'", i,
                   err, bad [i].mention);
        cr_assert (strstr (err, "UTF-8"), "case %zu: reason '%s'", i, err);
        cr_assert (pond_value_utf8_valid ((const uint8_t *) err, strlen (err)));
    }
    //  Valid UTF-8 of every length is accepted, at the edges too
    static const char *good [] = {
        "\xa7"
        "h\xc3\xa9llo!",    //  2 bytes
        "\xa4"
        "\xe2\x82\xac"
        "1",    //  U+20AC, 3 bytes
        "\xa4"
        "\xf0\x9f\xa6\x86",    //  U+1F986 (a duck), 4 bytes
        "\xa4"
        "\xf4\x8f\xbf\xbf",    //  U+10FFFF
        "\xa3"
        "\xee\x80\x80",    //  U+E000, just past the surrogates
        "\xa3"
        "\xed\x9f\xbf",    //  U+D7FF, just before them
    };
    for (size_t i = 0; i < sizeof good / sizeof good [0]; i++) {
        char err [POND_ERR_SIZE] = "";
        size_t len = 1 + (good [i][0] & 0x1f);
        pond_event_t *ev = s_decode_with ("entity", good [i], len, err, sizeof err);
        cr_assert_not_null (ev, "good %zu refused: %s", i, err);
        pond_event_destroy (&ev);
    }
    //  The encoder side says the same
    pond_event_t *ev = pond_event_new ("QUACKED", "cu\xff"
                                                  "s1");
    char err [POND_ERR_SIZE] = "";
    cr_assert (pond_event_validate (ev, err, sizeof err) == -1);
    cr_assert (strstr (err, "entity") && strstr (err, "UTF-8"), "%s", err);
    pond_event_destroy (&ev);
}

Test (event, decode_refuses_what_json_cannot_show)
{
    static const struct {
        const char *key;
        const char *raw;
        size_t len;
        const char *mention;
    } bad [] = {
        { "data", "\x81\x81\xa1k\x01\x02", 6, "map keys must be str" },    //  map as key
        { "data", "\x81\x01\x02", 3, "map keys must be str" },             //  int key
        { "data", "\x81\xc0\x02", 3, "map keys must be str" },             //  nil key
        { "data", "\x81\xa1x\xd4\xff\x01", 6, "data.x: ext" },             //  fixext, type -1
        { "data", "\x81\xa1x\xc7\x01\x05\x00", 7, "data.x: ext" },         //  ext8, type 5
        { "meta", "\x81\xa1l\x92\x01\xd5\x80\x00\x00", 9,
          "meta.l[1]: ext" },    //  nested, type -128
        { "meta", "\x81\xa1l\x91\x81\x02\x03", 7, "meta.l[0]: map keys" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        char err [POND_ERR_SIZE] = "";
        pond_event_t *ev = s_decode_with (bad [i].key, bad [i].raw, bad [i].len, err, sizeof err);
        cr_assert_null (ev, "case %zu decoded although JSON cannot show it", i);
        cr_assert (strstr (err, bad [i].mention), "case %zu: reason '%s' does not say '%s'", i, err,
                   bad [i].mention);
    }
    //  What is allowed: nil, bools, ints, floats, str, bin, arrays, maps with str keys
    char err [POND_ERR_SIZE] = "";
    const char every [] = "\x88\xa1n\xc0\xa1t\xc3\xa1i\xd3\x80\x00\x00\x00\x00\x00\x00\x00"
                          "\xa1"
                          "f\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00\xa1s\xa0\xa1"
                          "b\xc4\x01\xff"
                          "\xa1"
                          "a\x92\x90\x80\xa1m\x81\xa0\x81\xa1z\x01";
    pond_event_t *ev = s_decode_with ("data", every, sizeof every - 1, err, sizeof err);
    cr_assert_not_null (ev, "%s", err);
    char *json = pond_event_to_json (ev);
    cr_assert_not_null (strstr (json, "\"data\":{\"n\":null,\"t\":true,\"i\":-9223372036854775808,"
                                      "\"f\":null,\"s\":\"\",\"b\":\"ff\",\"a\":[[],{}],"
                                      "\"m\":{\"\":{\"z\":1}}}"),
                        "%s", json);
    free (json);
    pond_event_destroy (&ev);
    //  pond_event_set_data says the same as the decoder
    ev = pond_event_new ("QUACKED", "c-1");
    cr_assert_eq (pond_event_set_data (ev, RAW ("\x81\x01\x02"), err, sizeof err), -1);
    cr_assert (strstr (err, "map keys must be str"), "%s", err);
    cr_assert_eq (pond_event_set_meta (ev, RAW ("\x81\xa1x\xd4\xff\x01"), err, sizeof err), -1);
    cr_assert (strstr (err, "meta.x"), "%s", err);
    pond_event_destroy (&ev);
}

Test (value, utf8_valid_and_sanitize)
{
    cr_assert (pond_value_utf8_valid (RAW ("")));
    cr_assert (pond_value_utf8_valid (RAW ("plain ascii")));
    cr_assert (
        pond_value_utf8_valid (RAW ("\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80")));
    cr_assert_not (pond_value_utf8_valid (RAW ("\xc1\xbf")));        //  overlong
    cr_assert_not (pond_value_utf8_valid (RAW ("\xed\xbf\xbf")));    //  surrogate U+DFFF
    cr_assert_not (pond_value_utf8_valid (RAW ("\xf5\x80\x80\x80")));
    cr_assert_not (pond_value_utf8_valid (RAW ("\xf0\x9f\xa6")));
    cr_assert_not (pond_value_utf8_valid (RAW ("\xfe")));
    char text [] = "ok \xff \xc3\xa9 \xe2\x82";
    pond_value_utf8_sanitize (text);
    cr_assert_str_eq (text, "ok ? \xc3\xa9 ??");
    //  A NACK that quotes a bad key stays UTF-8
    zframe_t *body = pond_nack_new (NULL, 400, 0, "unknown key '%s'", "k\xff");
    pond_nack_t nack;
    char err [POND_ERR_SIZE];
    cr_assert_eq (pond_nack_decode (body, &nack, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq (nack.reason, "unknown key 'k?'");
    zframe_destroy (&body);
}

Test (event, peek_id_reads_the_id_of_an_event_that_does_not_decode)
{
    uint8_t id [POND_ID_SIZE];
    //  A bad name after the id, and the id after a bad entity
    kv_t bad_name = { "name", "\xa7quacked", 8 };
    size_t size;
    uint8_t *bytes = s_map_bytes (EVENT_KVS, NULL, &bad_name, &size);
    char err [POND_ERR_SIZE];
    cr_assert_null (pond_event_decode (bytes, size, err, sizeof err));
    cr_assert (pond_event_peek_id (bytes, size, id));
    cr_assert_arr_eq (id, &ID_RAW [2], 16);
    free (bytes);
    //  Only the id: no id, a nil id, an id of 15 bytes, not a map
    bytes = s_map_bytes (EVENT_KVS, "id", NULL, &size);
    cr_assert_not (pond_event_peek_id (bytes, size, id));
    free (bytes);
    kv_t nil_id = { "id",
                    "\xc4\x10"
                    "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
                    18 };
    bytes = s_map_bytes (EVENT_KVS, NULL, &nil_id, &size);
    cr_assert_not (pond_event_peek_id (bytes, size, id));
    free (bytes);
    kv_t short_id = { "id",
                      "\xc4\x0f"
                      "0123456789abcde",
                      17 };
    bytes = s_map_bytes (EVENT_KVS, NULL, &short_id, &size);
    cr_assert_not (pond_event_peek_id (bytes, size, id));
    free (bytes);
    cr_assert_not (pond_event_peek_id (RAW ("\x92\x01\x02"), id));
    cr_assert_not (pond_event_peek_id (RAW ("\x81\xa2id"), id));
}

Test (proto, appended_per_event_codes_and_reasons)
{
    pond_appended_t *msg = calloc (1, sizeof *msg);
    pond_appended_t *back = malloc (sizeof *back);
    memset (back, 0x55, sizeof *back);
    msg->bid = 3;
    msg->code = POND_CODE_OK;
    msg->count = 3;
    msg->seqs [0] = 10;
    msg->codes [0] = 200;
    msg->codes [1] = 409;
    strcpy (msg->reasons [1], "id already used for a different event");
    msg->codes [2] = 400;
    strcpy (msg->reasons [2], "name must start with A-Z");
    zframe_t *frame = pond_appended_encode (msg);
    char err [POND_ERR_SIZE];
    cr_assert_eq (pond_appended_decode (frame, back, err, sizeof err), 0, "%s", err);
    cr_assert_eq (back->count, 3);
    cr_assert_eq (back->codes_count, 3);
    cr_assert_eq (back->codes [1], 409);
    cr_assert_str_eq (back->reasons [0], "");
    cr_assert_str_eq (back->reasons [1], "id already used for a different event");
    cr_assert_str_eq (back->reasons [2], "name must start with A-Z");
    zframe_destroy (&frame);
    //  A body without codes (an older store): every event 200, reasons ""
    kv_t kvs [] = { KV ("bid", "\x01"), KV ("code", "\xcc\xc8"), KV ("seqs", "\x92\x01\x02"),
                    KV ("dups", "\x92\xc2\xc2") };
    size_t size;
    uint8_t *bytes = s_map_bytes (kvs, 4, NULL, NULL, &size);
    frame = zframe_new (bytes, size);
    memset (back, 0x55, sizeof *back);
    cr_assert_eq (pond_appended_decode (frame, back, err, sizeof err), 0, "%s", err);
    cr_assert_eq (back->codes_count, 2);
    cr_assert (back->codes [0] == 200 && back->codes [1] == 200);
    cr_assert_str_eq (back->reasons [1], "");
    zframe_destroy (&frame);
    free (bytes);
    //  codes of another length than seqs: refused
    kv_t bad [] = { KV ("bid", "\x01"), KV ("code", "\xcc\xc8"), KV ("seqs", "\x92\x01\x02"),
                    KV ("dups", "\x92\xc2\xc2"), KV ("codes", "\x91\xcc\xc8") };
    bytes = s_map_bytes (bad, 5, NULL, NULL, &size);
    frame = zframe_new (bytes, size);
    cr_assert_eq (pond_appended_decode (frame, back, err, sizeof err), -1);
    cr_assert (strstr (err, "codes"), "%s", err);
    zframe_destroy (&frame);
    free (bytes);
    free (msg);
    free (back);
}

//  ---------------------------------------------------------------------
//  pond_event_data: direct reads of data fields

//  A data map with one field of every kind, a container before the
//  fields looked up and a duplicate key; unless portable (what
//  pond_event_set_data takes), also an ext and an int key
static void
s_data_fields (buf_t *b, bool portable)
{
    s_buf_init (b);
    msgpack_pack_map (&b->pk, portable ? 12 : 13);
    s_buf_str (b, "nested");
    msgpack_pack_map (&b->pk, 2);
    s_buf_str (b, "label");
    s_buf_str (b, "inner");
    s_buf_str (b, "deep");
    msgpack_pack_array (&b->pk, 2);
    msgpack_pack_bin (&b->pk, 2);
    msgpack_pack_bin_body (&b->pk, "ab", 2);
    if (portable)
        msgpack_pack_array (&b->pk, 0);
    else {
        msgpack_pack_ext (&b->pk, 3, 7);
        msgpack_pack_ext_body (&b->pk, "xyz", 3);
    }
    s_buf_str (b, "label");
    s_buf_str (b, "Milk");
    s_buf_str (b, "label");
    s_buf_str (b, "second");
    s_buf_str (b, "duration_ms");
    msgpack_pack_uint64 (&b->pk, 250);
    s_buf_str (b, "big");
    msgpack_pack_uint64 (&b->pk, 9007199254740993ULL);
    s_buf_str (b, "max");
    msgpack_pack_uint64 (&b->pk, UINT64_MAX);
    s_buf_str (b, "neg");
    msgpack_pack_int64 (&b->pk, -9007199254740993LL);
    s_buf_str (b, "loudness_db");
    msgpack_pack_double (&b->pk, 61.5);
    s_buf_str (b, "f32");
    msgpack_pack_float (&b->pk, 0.25f);
    s_buf_str (b, "ok");
    msgpack_pack_true (&b->pk);
    s_buf_str (b, "nil");
    msgpack_pack_nil (&b->pk);
    s_buf_str (b, "");
    s_buf_str (b, "");
    if (!portable) {
        msgpack_pack_int (&b->pk, 5);
        s_buf_str (b, "int key");
    }
}

Test (event_data, found_with_exact_values)
{
    buf_t b;
    s_data_fields (&b, true);
    char err [POND_ERR_SIZE] = "";
    pond_event_t *ev = pond_event_new ("QUACKED", "c-1");
    cr_assert_eq (pond_event_set_data (ev, (uint8_t *) b.sbuf.data, b.sbuf.size, err, sizeof err),
                  0, "%s", err);
    uint64_t u = 0;
    int64_t i = 0;
    double d = 0;
    bool flag = false;
    const char *ptr = NULL;
    size_t len = 0;
    cr_assert_eq (pond_event_data_get_str (ev, "label", &ptr, &len), 0);
    cr_assert_eq (len, 4);
    cr_assert_arr_eq (ptr, "Milk", 4, "the first of duplicate keys, not the nested one");
    cr_assert_eq (pond_event_data_get_uint (ev, "duration_ms", &u), 0);
    cr_assert_eq (u, 250);
    cr_assert_eq (pond_event_data_get_int (ev, "duration_ms", &i), 0);
    cr_assert_eq (i, 250);
    //  Above 2^53, exact (a double would give ...992)
    cr_assert_eq (pond_event_data_get_uint (ev, "big", &u), 0);
    cr_assert_eq (u, 9007199254740993ULL);
    cr_assert_eq (pond_event_data_get_uint (ev, "max", &u), 0);
    cr_assert_eq (u, UINT64_MAX);
    cr_assert_eq (pond_event_data_get_int (ev, "neg", &i), 0);
    cr_assert_eq (i, -9007199254740993LL);
    cr_assert_eq (pond_event_data_get_double (ev, "loudness_db", &d), 0);
    cr_assert_eq (d, 61.5);
    cr_assert_eq (pond_event_data_get_double (ev, "f32", &d), 0);
    cr_assert_eq (d, 0.25);
    cr_assert_eq (pond_event_data_get_double (ev, "duration_ms", &d), 0);
    cr_assert_eq (d, 250.0);
    cr_assert_eq (pond_event_data_get_bool (ev, "ok", &flag), 0);
    cr_assert (flag);
    cr_assert_eq (pond_event_data_get_str (ev, "", &ptr, &len), 0);
    cr_assert_eq (len, 0);
    char text [8];
    cr_assert_eq (pond_event_data_copy_str (ev, "label", text, sizeof text), 0);
    cr_assert_str_eq (text, "Milk");
    cr_assert_eq (pond_event_data_copy_str (ev, "label", text, 4), -1, "no room for the NUL");
    cr_assert_str_eq (text, "");
    s_buf_destroy (&b);
    pond_event_destroy (&ev);
}

Test (event_data, missing_and_wrong_type)
{
    buf_t b;
    s_data_fields (&b, true);
    char err [POND_ERR_SIZE] = "";
    pond_event_t *ev = pond_event_new ("QUACKED", "c-1");
    uint64_t u = 7;
    int64_t i = 7;
    double d = 7;
    bool flag = false;
    const char *ptr = NULL;
    size_t len = 0;
    //  No data at all
    cr_assert_eq (pond_event_data_get_uint (ev, "duration_ms", &u), -1);
    cr_assert_eq (pond_event_data_get_str (ev, "label", &ptr, &len), -1);
    cr_assert_eq (pond_event_set_data (ev, (uint8_t *) b.sbuf.data, b.sbuf.size, err, sizeof err),
                  0, "%s", err);
    cr_assert_eq (pond_event_data_get_uint (ev, "absent", &u), -1);
    cr_assert_eq (pond_event_data_get_str (ev, "deep", &ptr, &len), -1, "only top-level keys");
    cr_assert_eq (pond_event_data_get_uint (ev, "label", &u), -1);
    cr_assert_eq (pond_event_data_get_uint (ev, "neg", &u), -1);
    cr_assert_eq (pond_event_data_get_uint (ev, "loudness_db", &u), -1);
    cr_assert_eq (pond_event_data_get_int (ev, "max", &i), -1, "above INT64_MAX");
    cr_assert_eq (pond_event_data_get_int (ev, "ok", &i), -1);
    cr_assert_eq (pond_event_data_get_double (ev, "label", &d), -1);
    cr_assert_eq (pond_event_data_get_double (ev, "nil", &d), -1);
    cr_assert_eq (pond_event_data_get_bool (ev, "nil", &flag), -1);
    cr_assert_eq (pond_event_data_get_bool (ev, "duration_ms", &flag), -1);
    cr_assert_eq (pond_event_data_get_str (ev, "nested", &ptr, &len), -1);
    cr_assert_eq (pond_event_data_get_str (ev, "duration_ms", &ptr, &len), -1);
    cr_assert_eq (u, 7);
    cr_assert_eq (i, 7);
    cr_assert_eq (d, 7);
    cr_assert_null (ptr, "nothing written on failure");
    s_buf_destroy (&b);
    pond_event_destroy (&ev);
}

Test (event_data, truncated_and_malformed)
{
    buf_t b;
    s_data_fields (&b, false);
    const uint8_t *data = (const uint8_t *) b.sbuf.data;
    size_t size = b.sbuf.size;
    uint64_t u;
    const char *ptr;
    size_t len;
    double d;
    //  Whole: "ok" is near the end; any cut before its value ends loses it
    cr_assert_eq (pond_event_data_get_uint_bytes (data, size, "max", &u), 0);
    cr_assert_eq (pond_event_data_get_str_bytes (data, size, "5", &ptr, &len), -1, "only str keys");
    cr_assert_eq (pond_event_data_get_str_bytes (data, size, "int key", &ptr, &len), -1);
    bool flag;
    cr_assert_eq (pond_event_data_get_bool_bytes (data, size, "ok", &flag), 0);
    size_t ok_end = 0;
    for (size_t cut = 0; cut < size; cut++) {
        if (pond_event_data_get_bool_bytes (data, cut, "ok", &flag) == 0 && !ok_end)
            ok_end = cut;
        //  A str value is found only when its bytes are all there
        if (pond_event_data_get_str_bytes (data, cut, "label", &ptr, &len) == 0)
            cr_assert_leq ((size_t) (ptr - (const char *) data) + len, cut);
        if (pond_event_data_get_double_bytes (data, cut, "loudness_db", &d) == 0)
            cr_assert_eq (d, 61.5);
    }
    cr_assert_neq (ok_end, 0);
    cr_assert_eq (data [ok_end - 1], 0xc3, "found exactly when its byte is in");

    //  Not a map, nothing, a tag msgpack never uses, a huge count
    const uint8_t array [] = { 0x91, 0xa1, 'a' };
    cr_assert_eq (pond_event_data_get_str_bytes (array, sizeof array, "a", &ptr, &len), -1);
    cr_assert_eq (pond_event_data_get_uint_bytes (NULL, 0, "a", &u), -1);
    const uint8_t unused [] = { 0x82, 0xc1, 0x01, 0xa1, 'a', 0x01 };
    cr_assert_eq (pond_event_data_get_uint_bytes (unused, sizeof unused, "a", &u), -1);
    const uint8_t huge [] = { 0x82, 0xa1, 'x', 0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'a', 0x01 };
    cr_assert_eq (pond_event_data_get_uint_bytes (huge, sizeof huge, "a", &u), -1);
    const uint8_t long_str [] = { 0x81, 0xa1, 'a', 0xdb, 0xff, 0xff, 0xff, 0xff, 'x' };
    cr_assert_eq (pond_event_data_get_str_bytes (long_str, sizeof long_str, "a", &ptr, &len), -1);
    const uint8_t cut_key [] = { 0x81, 0xa5, 'l', 'a' };
    cr_assert_eq (pond_event_data_get_str_bytes (cut_key, sizeof cut_key, "la", &ptr, &len), -1);
    //  Every signed width sign-extends; a non-negative int8 reads as uint
    const uint8_t widths [] = {
        0x85, 0xa1, 'a', 0xd0, 0x80, 0xa1, 'b', 0xd1, 0xff, 0x7f, 0xa1, 'c',
        0xd2, 0x80, 0,   0,    0,    0xa1, 'd', 0xd0, 0x05, 0xa1, 'e',  0xff
    };
    int64_t i;
    cr_assert_eq (pond_event_data_get_int_bytes (widths, sizeof widths, "a", &i), 0);
    cr_assert_eq (i, -128);
    cr_assert_eq (pond_event_data_get_int_bytes (widths, sizeof widths, "b", &i), 0);
    cr_assert_eq (i, -129);
    cr_assert_eq (pond_event_data_get_int_bytes (widths, sizeof widths, "c", &i), 0);
    cr_assert_eq (i, INT32_MIN);
    cr_assert_eq (pond_event_data_get_uint_bytes (widths, sizeof widths, "d", &u), 0);
    cr_assert_eq (u, 5);
    cr_assert_eq (pond_event_data_get_int_bytes (widths, sizeof widths, "e", &i), 0);
    cr_assert_eq (i, -1, "a negative fixint");
    cr_assert_eq (pond_event_data_get_uint_bytes (widths, sizeof widths, "e", &u), -1);
    s_buf_destroy (&b);
}

//  pond_number: one strict reading of whole numbers for every option
Test (number, parse_accepts_digits_within_bounds_only)
{
    uint64_t value = 7;
    cr_assert_eq (pond_number_parse ("0", 0, 10, &value), 0);
    cr_assert_eq (value, 0);
    cr_assert_eq (pond_number_parse ("10", 0, 10, &value), 0);
    cr_assert_eq (value, 10);
    cr_assert_eq (pond_number_parse ("18446744073709551615", 0, UINT64_MAX, &value), 0);
    cr_assert_eq (value, UINT64_MAX);
    value = 7;
    const char *refused [] = { "",
                               "-1",
                               "+1",
                               " 1",
                               "1 ",
                               "8MB",
                               "0x10",
                               "1.5",
                               "11",
                               "18446744073709551616",
                               "99999999999999999999999" };
    for (size_t i = 0; i < sizeof refused / sizeof refused [0]; i++) {
        uint64_t max = i < 9 ? 10 : UINT64_MAX;
        cr_assert_eq (pond_number_parse (refused [i], 0, max, &value), -1, "'%s' refused",
                      refused [i]);
    }
    cr_assert_eq (pond_number_parse ("0", 1, 10, &value), -1, "below min");
    cr_assert_eq (pond_number_parse (NULL, 0, 10, &value), -1);
    cr_assert_eq (value, 7, "unchanged when refused");
}

//  Microsecond times are exact JSON integers, never 1.79622753381001e+15
//  (what cJSON's own numbers print for some of them)
Test (value, json_add_uint_is_an_exact_integer)
{
    cJSON *object = cJSON_CreateObject ();
    pond_value_json_add_uint (object, "accepted", 1796227533810010ULL);
    pond_value_json_add_uint (object, "max", UINT64_MAX);
    pond_value_json_add_uint (object, "zero", 0);
    char *text = cJSON_PrintUnformatted (object);
    cr_assert_str_eq (text,
                      "{\"accepted\":1796227533810010,\"max\":18446744073709551615,\"zero\":0}");
    free (text);
    cJSON_Delete (object);
}
