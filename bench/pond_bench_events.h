/*  pond_bench_events: a producer's events, encoded before the clock starts.

    A producer's own encoding is not pond's cost, so pond-bench encodes
    every event it will publish up front, back to back in one buffer, and
    the timed part only sends bytes. Each event's id is a UUIDv7 whose
    last six random bytes carry the producer's number and the event's
    index, so that an ACK, a NACK or a delivery leads straight back to its
    event.
*/
#ifndef POND_BENCH_EVENTS_H_INCLUDED
#define POND_BENCH_EVENTS_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POND_BENCH_TS_BASE 1640995200000000ULL    //  2022-01-01T00:00:00Z, the load's ts
#define POND_BENCH_TS_STEP 1000                   //  the load: 1 ms between events

typedef struct _pond_bench_events_t pond_bench_events_t;

//  Encode count events for producer. Event i is the first + i-th of the
//  whole run: named names [(first + i) % names_count], of entity
//  cust-NNNN ((first + i) % entities), with ts now (ingest) or
//  POND_BENCH_TS_BASE + (first + i) ms (load, ts_base true), a quack's
//  data padded so that each event is about size bytes. Returns NULL if it
//  failed. Caller owns return value and must destroy it.
pond_bench_events_t *
    pond_bench_events_new (int producer, size_t first, size_t count, const char *const *names,
                           size_t names_count, size_t entities, bool ts_base, int size);

//  Destroy the events. Accepts NULL; sets *self_p to NULL.
void
    pond_bench_events_destroy (pond_bench_events_t **self_p);

//  Returns the number of events.
size_t
    pond_bench_events_count (pond_bench_events_t *self);

//  Returns the encoded size of every event, in bytes.
size_t
    pond_bench_events_size (pond_bench_events_t *self);

//  Returns event index, encoded, and sets *size to its size in bytes.
const uint8_t *
    pond_bench_events_bytes (pond_bench_events_t *self, size_t index, size_t *size);

//  Returns the id of event index (POND_ID_SIZE bytes).
const uint8_t *
    pond_bench_events_id (pond_bench_events_t *self, size_t index);

//  Returns the index of the event whose id this is, or -1 if it is not
//  one of these events of producer.
long
    pond_bench_events_index (pond_bench_events_t *self, int producer, const uint8_t *id);

//  Read the producer's number and the event's index that an id of
//  pond_bench_events carries.
void
    pond_bench_events_id_parse (const uint8_t *id, int *producer, size_t *index);

#endif
