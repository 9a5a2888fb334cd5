/*  pond_value: the schemaless part of an event (its data and meta maps).

    Producers put any msgpack map into data and meta. This module checks
    such bytes before anything trusts them (declared lengths within the
    buffer, nesting depth bounded) and converts them to and from JSON for
    the command line, using cJSON.
*/
#ifndef POND_VALUE_H_INCLUDED
#define POND_VALUE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <msgpack.h>
#include <cjson/cJSON.h>

#ifdef __cplusplus
extern "C" {
#endif

#define POND_VALUE_MAX_DEPTH   16
#define POND_VALUE_DEPTH_LIMIT 64    //  Largest max_depth the checks take

//  Walk msgpack bytes without allocating: every declared length must fit
//  the buffer and nesting must stay within POND_VALUE_MAX_DEPTH. On
//  success returns 0 and sets *used_p to the bytes of the first object;
//  returns -1 with the reason in err otherwise. Run this before
//  msgpack_unpack_next, which would otherwise allocate what a hostile
//  header declares.
int
    pond_value_check (const uint8_t *data, size_t size, size_t *used_p, char *err, size_t errlen);

//  Same with another nesting limit (containers nested at most max_depth
//  deep, max_depth at most POND_VALUE_DEPTH_LIMIT). The event decoder uses
//  POND_VALUE_MAX_DEPTH + 1: the envelope map is one level, and its data
//  and meta maps may nest 16 deep inside.
int
    pond_value_check_depth (const uint8_t *data, size_t size, int max_depth, size_t *used_p,
                            char *err, size_t errlen);

//  Same, and *canonical_p tells whether the bytes are already what
//  msgpack_pack_object would give for the object msgpack_unpack_next
//  makes of them: every integer, length and count in its smallest
//  encoding (a non-negative signed integer as unsigned), and no NaN float
//  (whose bits a round trip through a double may change). The event
//  decoder copies canonical data and meta as they are, and re-packs only
//  the others, so decoding gives the same bytes as a full re-pack.
int
    pond_value_check_canonical (const uint8_t *data, size_t size, int max_depth, size_t *used_p,
                                bool *canonical_p, char *err, size_t errlen);

//  Where one child of the top-level container lies: bytes [start, end) of
//  the buffer (a map's keys and values alternate), and whether they are
//  canonical as pond_value_check_canonical says.
typedef struct {
    size_t start;
    size_t end;
    bool canonical;
    bool plain;    //  inside the child (below it: its own bytes
                   //  are not looked at), every str ASCII, every
                   //  map key a str, no ext: what
                   //  pond_value_check_portable would accept
} pond_value_span_t;

//  The same walk, and the spans of the first max_spans children of the
//  top-level container (if it is one) in spans, their number in *spans_p.
//  canonical_p, spans and spans_p may be NULL. The event decoder reads its
//  envelope with these, without walking data and meta again.
int
    pond_value_check_spans (const uint8_t *data, size_t size, int max_depth, size_t *used_p,
                            bool *canonical_p, pond_value_span_t *spans, size_t max_spans,
                            size_t *spans_p, char *err, size_t errlen);

//  True if text holds valid UTF-8: no overlong forms, no surrogates
//  (U+D800..U+DFFF), nothing past U+10FFFF, no sequence cut short.
bool
    pond_value_utf8_valid (const uint8_t *text, size_t size);

//  Replace in place every byte of text (a C string) that is not part of
//  valid UTF-8 with '?', so a reason built from untrusted bytes can be
//  sent as a msgpack str that strict readers accept.
void
    pond_value_utf8_sanitize (char *text);

//  Check that a msgpack map (an event's data or meta; key names it in
//  the reason) holds only what JSON and strict msgpack readers can
//  represent: map keys are str; values are nil, bool, integers, floats,
//  str, bin, arrays and such maps; every str (keys too) is valid UTF-8;
//  no ext type. The bytes must have passed pond_value_check (lengths
//  fit, depth bounded). Returns 0, or -1 with the reason in err, naming
//  the path of the value refused (like "data.items[2].name").
int
    pond_value_check_portable (const uint8_t *data, size_t size, const char *key, char *err,
                               size_t errlen);

//  Convert a msgpack object to a cJSON tree. Integers are kept exact (as
//  raw JSON numbers); bin becomes a hex string; non-string map keys are
//  rendered as JSON text. Caller owns the tree. NULL if memory runs out.
cJSON *
    pond_value_to_cjson (const msgpack_object *obj);

//  Add value to object under key as an exact JSON integer: cJSON's own
//  numbers are doubles, printed as 1.79622753381001e+15 for some
//  microsecond times and rounded past 2^53.
void
    pond_value_json_add_uint (cJSON *object, const char *key, uint64_t value);

//  Render msgpack bytes holding one object as JSON text. Caller frees.
//  Returns NULL if the bytes are not valid msgpack.
char *
    pond_value_to_json (const uint8_t *data, size_t size);

//  Parse a JSON object and encode it as msgpack. Whole numbers become
//  integers, others floats. Returns a malloc'd buffer (caller frees) and
//  its size, or NULL with the reason in err (not JSON, not an object,
//  too deep).
uint8_t *
    pond_value_from_json (const char *json, size_t *size_p, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
