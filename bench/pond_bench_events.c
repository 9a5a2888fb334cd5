/*  pond_bench_events: a producer's events, encoded before the clock starts.

    Every event of a producer is encoded up front into one buffer, with
    the offset of each; the timed part of a scenario only sends bytes.
    The payload is a quack (bench_quack), padded to the size asked for.
*/
#include "pond_bench.h"
#include "bench_quack.h"
#include "pond_time.h"
#include "pond_uuid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct _pond_bench_events_t {
    uint8_t *bytes;     //  every encoded event, back to back
    size_t *offsets;    //  count + 1 offsets into bytes
    uint8_t (*ids) [POND_ID_SIZE];
    size_t count;
};

//  Event i's id: a UUIDv7 whose last six random bytes carry the producer
//  and the index, so an ACK leads straight back to its event.
static int
s_make_id (uint8_t *id, int producer, size_t index)
{
    if (pond_uuid_v7 (id))
        return -1;
    id [10] = (uint8_t) (producer >> 8);
    id [11] = (uint8_t) producer;
    for (int byte = 0; byte < 4; byte++)
        id [12 + byte] = (uint8_t) (index >> (24 - 8 * byte));
    return 0;
}

pond_bench_events_t *
pond_bench_events_new (int producer, size_t first, size_t count, const char *const *names,
                       size_t names_count, size_t entities, bool ts_base, int size)
{
    pond_event_t *event = pond_event_new (names [0], "cust-0");
    char source [32];
    snprintf (source, sizeof source, "bench-%d", producer);
    if (!event || pond_event_set_source (event, source)) {
        pond_event_destroy (&event);
        return NULL;
    }
    //  Find the pad that brings a typical event to the size asked for
    size_t pad = 0;
    for (int attempt = 0; attempt < 4; attempt++) {
        if (bench_quack_set_data (event, 0, pad, "pond-bench")) {
            pond_event_destroy (&event);
            return NULL;
        }
        char err [POND_ERR_SIZE];
        size_t encoded;
        uint8_t *bytes = pond_event_encode (event, &encoded, err, sizeof err);
        if (!bytes) {
            fprintf (stderr, "pond-bench: cannot encode: %s\n", err);
            pond_event_destroy (&event);
            return NULL;
        }
        free (bytes);
        long want = (long) pad + size - (long) encoded;
        pad = want > 0 ? (size_t) want : 0;
    }
    pond_bench_events_t *self = (pond_bench_events_t *) zmalloc (sizeof (pond_bench_events_t));
    size_t capacity = count * ((size_t) size + 64) + 1024;
    self->bytes = malloc (capacity);
    self->offsets = calloc (count + 1, sizeof (size_t));
    self->ids = calloc (count ? count : 1, POND_ID_SIZE);
    if (!self->bytes || !self->offsets || !self->ids) {
        pond_event_destroy (&event);
        pond_bench_events_destroy (&self);
        return NULL;
    }
    int rc = 0;
    size_t used = 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        size_t global = first + i;
        char entity [32];
        snprintf (entity, sizeof entity, "cust-%04zu", global % entities);
        pond_event_set_name (event, names [global % names_count]);
        pond_event_set_entity (event, entity);
        pond_event_set_ts (event, ts_base ? POND_BENCH_TS_BASE + global * POND_BENCH_TS_STEP
                                          : pond_time_now ());
        if (s_make_id (self->ids [i], producer, i)
            || bench_quack_set_data (event, global, pad, "pond-bench")) {
            rc = -1;
            break;
        }
        pond_event_set_id (event, self->ids [i]);
        char err [POND_ERR_SIZE];
        size_t encoded;
        uint8_t *bytes = pond_event_encode (event, &encoded, err, sizeof err);
        if (!bytes) {
            fprintf (stderr, "pond-bench: cannot encode: %s\n", err);
            rc = -1;
            break;
        }
        if (used + encoded > capacity) {
            capacity = (used + encoded) * 2;
            uint8_t *bigger = realloc (self->bytes, capacity);
            if (!bigger) {
                free (bytes);
                rc = -1;
                break;
            }
            self->bytes = bigger;
        }
        memcpy (self->bytes + used, bytes, encoded);
        free (bytes);
        self->offsets [i] = used;
        used += encoded;
        self->offsets [i + 1] = used;
    }
    self->count = count;
    pond_event_destroy (&event);
    if (rc)
        pond_bench_events_destroy (&self);
    return self;
}

void
pond_bench_events_destroy (pond_bench_events_t **self_p)
{
    if (*self_p) {
        pond_bench_events_t *self = *self_p;
        free (self->bytes);
        free (self->offsets);
        free (self->ids);
        free (self);
        *self_p = NULL;
    }
}

size_t
pond_bench_events_count (pond_bench_events_t *self)
{
    return self->count;
}

size_t
pond_bench_events_size (pond_bench_events_t *self)
{
    return self->offsets [self->count];
}

const uint8_t *
pond_bench_events_bytes (pond_bench_events_t *self, size_t index, size_t *size)
{
    *size = self->offsets [index + 1] - self->offsets [index];
    return self->bytes + self->offsets [index];
}

const uint8_t *
pond_bench_events_id (pond_bench_events_t *self, size_t index)
{
    return self->ids [index];
}

long
pond_bench_events_index (pond_bench_events_t *self, int producer, const uint8_t *id)
{
    int owner;
    size_t index;
    pond_bench_events_id_parse (id, &owner, &index);
    if (owner != producer || index >= self->count || memcmp (self->ids [index], id, POND_ID_SIZE))
        return -1;
    return (long) index;
}

void
pond_bench_events_id_parse (const uint8_t *id, int *producer, size_t *index)
{
    *producer = (id [10] << 8) | id [11];
    *index = ((size_t) id [12] << 24) | ((size_t) id [13] << 16) | ((size_t) id [14] << 8)
           | id [15];
}
