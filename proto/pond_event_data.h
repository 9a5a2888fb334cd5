/*  pond_event_data: read one field of an event's data map in place.

    Actors apply events by reading a few top-level fields of data
    ("label", "badge", "duration_ms"). These accessors find a key with
    one bounded walk over the msgpack map, without allocating and without
    converting anything to JSON, so integers stay exact (all 64 bits) and
    each lookup costs about as much as reading the bytes up to the key.

    Every getter returns 0 when the key is found with a value of the asked
    type, and -1 (leaving the outputs alone) when data is absent, is not a
    map, lacks the key, holds another type there, or is cut short or
    malformed before the value ends. The first entry with the key wins (as
    a JSON reader keeps the first of duplicate keys); bytes after the
    value found are not looked at (events that came off the wire were
    checked whole by the decoder). Only str keys match. The _bytes forms
    take any msgpack buffer.
*/
#ifndef POND_EVENT_DATA_H_INCLUDED
#define POND_EVENT_DATA_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pond_event.h"

#ifdef __cplusplus
extern "C" {
#endif

//  A signed integer: any msgpack int that fits int64_t.
int
    pond_event_data_get_int (const pond_event_t *event, const char *key, int64_t *value_p);
//  A non-negative integer: any msgpack int from 0 to UINT64_MAX.
int
    pond_event_data_get_uint (const pond_event_t *event, const char *key, uint64_t *value_p);
//  A number: a float32 or float64, or an int (converted, maybe rounded).
int
    pond_event_data_get_double (const pond_event_t *event, const char *key, double *value_p);
//  A bool (true or false; not a number, not nil).
int
    pond_event_data_get_bool (const pond_event_t *event, const char *key, bool *value_p);
//  A str: *ptr_p points into the event's data (valid while the event
//  lives and its data is not replaced; not NUL-terminated, may hold NUL
//  bytes), *len_p is its length in bytes.
int
    pond_event_data_get_str (const pond_event_t *event, const char *key, const char **ptr_p,
                             size_t *len_p);
//  A str copied into buf with a NUL after it. -1 also when the str and
//  its NUL do not fit size (buf is then set to "").
int
    pond_event_data_copy_str (const pond_event_t *event, const char *key, char *buf, size_t size);

//  The same over msgpack bytes that should hold one map.
int
    pond_event_data_get_int_bytes (const uint8_t *data, size_t size, const char *key,
                                   int64_t *value_p);
int
    pond_event_data_get_uint_bytes (const uint8_t *data, size_t size, const char *key,
                                    uint64_t *value_p);
int
    pond_event_data_get_double_bytes (const uint8_t *data, size_t size, const char *key,
                                      double *value_p);
int
    pond_event_data_get_bool_bytes (const uint8_t *data, size_t size, const char *key,
                                    bool *value_p);
int
    pond_event_data_get_str_bytes (const uint8_t *data, size_t size, const char *key,
                                   const char **ptr_p, size_t *len_p);

#ifdef __cplusplus
}
#endif

#endif
