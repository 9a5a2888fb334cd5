/*  pond_value: the schemaless part of an event (its data and meta maps).

    Producers put any msgpack map into data and meta. This module checks
    such bytes before anything trusts them (declared lengths within the
    buffer, nesting depth bounded) and converts them to and from JSON for
    the command line, using cJSON.
*/
#ifndef POND_VALUE_H_INCLUDED
#define POND_VALUE_H_INCLUDED

#include <stddef.h>
#include <stdint.h>
#include <msgpack.h>
#include <cjson/cJSON.h>

#ifdef __cplusplus
extern "C" {
#endif

#define POND_VALUE_MAX_DEPTH  16

//  Walk msgpack bytes without allocating: every declared length must fit
//  the buffer and nesting must stay within POND_VALUE_MAX_DEPTH. On
//  success returns 0 and sets *used_p to the bytes of the first object;
//  returns -1 with the reason in err otherwise. Run this before
//  msgpack_unpack_next, which would otherwise allocate what a hostile
//  header declares.
int
    pond_value_check (const uint8_t *data, size_t size, size_t *used_p,
                      char *err, size_t errlen);

//  Same with another nesting limit (containers nested at most max_depth
//  deep). The event decoder uses POND_VALUE_MAX_DEPTH + 1: the envelope
//  map is one level, and its data and meta maps may nest 16 deep inside.
int
    pond_value_check_depth (const uint8_t *data, size_t size, int max_depth,
                            size_t *used_p, char *err, size_t errlen);

//  Convert a msgpack object to a cJSON tree. Integers are kept exact (as
//  raw JSON numbers); bin becomes a hex string; non-string map keys are
//  rendered as JSON text. Caller owns the tree. NULL if memory runs out.
cJSON *
    pond_value_to_cjson (const msgpack_object *obj);

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
