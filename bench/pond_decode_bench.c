/*  pond-decode-bench: what one event costs the codec, in nanoseconds.

    A replay reader decodes and checks every event of a packed CHUNK frame
    with pond_event_decode_next, so the codec caps what a reader can take.
    This program builds N events shaped like pond-bench's (name, entity,
    source, seq, a ~200-byte event with a data map holding an int, a
    float and two strings; every 4th event also carries a meta map with a
    nested map), cuts them into frames of 512 back to back (a CHUNK's
    most), and for each frame, copied to a buffer as a socket would (not
    timed), times:

        decode       pond_event_decode of each event's own bytes, and
                     pond_event_destroy (a broker's or a store's pattern)
        encode       pond_event_encode of each decoded event (then checks,
                     untimed, that it gives back the event's own bytes)
        decode_next  pond_event_decode_next through the frame, and
                     pond_event_destroy of each, as a replay reader does

    and then decode_next_cold: decode_next through all N events in one
    buffer, which is bound by memory more than by the codec. Each figure
    over R rounds after one warm-up round; prints ONE line of key=value
    results: the median ns per event of each, with min and max.

        pond-decode-bench [--events N] [--size BYTES] [--rounds R]
*/
#define _GNU_SOURCE
#include "bench_quack.h"
#include "pond_event.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

//  A replay CHUNK holds at most 512 events and 256 KiB (pond_proto.h)
#define S_CHUNK_EVENTS       512
#define POND_CHUNK_BYTES_MAX (S_CHUNK_EVENTS * 4160)

static uint64_t
s_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static int
s_compare (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

//  Event i, about size bytes once encoded; its bytes to *bytes_p.
static uint8_t *
s_make (size_t index, int size, size_t *size_p)
{
    static const char *names [] = { "QUACKED", "WADDLED", "BUTTON_CLICKED", "FED" };
    char entity [32];
    snprintf (entity, sizeof entity, "cust-%04zu", index % 1000);
    pond_event_t *event = pond_event_new (names [index % 4], entity);
    if (!event || pond_event_set_source (event, "bench-0")) {
        pond_event_destroy (&event);
        return NULL;
    }
    pond_event_set_ts (event, 1640995200000000ULL + index * 1000);
    pond_event_set_seq (event, index + 1);
    char err [POND_ERR_SIZE];
    if (index % 4 == 3
        && pond_event_set_meta_json (event, "{\"trace\":\"t-42\",\"hop\":{\"n\":2,\"via\":[1,2]}}",
                                     err, sizeof err)) {
        fprintf (stderr, "pond-decode-bench: cannot set meta: %s\n", err);
        pond_event_destroy (&event);
        return NULL;
    }
    uint8_t *bytes = NULL;
    size_t pad = 0;
    for (int attempt = 0; attempt < 4; attempt++) {
        free (bytes);
        bytes = NULL;
        if (bench_quack_set_data (event, index, pad, "pond-decode-bench")
            || !(bytes = pond_event_encode (event, size_p, err, sizeof err)))
            break;
        long want = (long) pad + size - (long) *size_p;
        pad = want > 0 ? (size_t) want : 0;
    }
    if (!bytes)
        fprintf (stderr, "pond-decode-bench: cannot encode: %s\n", err);
    pond_event_destroy (&event);
    return bytes;
}

int
main (int argc, char *argv [])
{
    size_t count = 200000;
    int size = 200;
    int rounds = 5;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "--events") == 0 && i + 1 < argc)
            count = strtoul (argv [++i], NULL, 10);
        else if (strcmp (argv [i], "--size") == 0 && i + 1 < argc)
            size = atoi (argv [++i]);
        else if (strcmp (argv [i], "--rounds") == 0 && i + 1 < argc)
            rounds = atoi (argv [++i]);
        else {
            fprintf (stderr, "usage: pond-decode-bench [--events N] [--size BYTES] "
                             "[--rounds R]\n");
            return strcmp (argv [i], "--help") == 0 ? 0 : 1;
        }
    }
    if (count == 0 || rounds < 1 || rounds > 99 || size < 64 || size > 4096) {
        fprintf (stderr, "pond-decode-bench: need events >= 1, 1 <= rounds <= 99, "
                         "64 <= size <= 4096\n");
        return 1;
    }
    //  The events, each alone and all back to back in one buffer
    uint8_t **bytes = calloc (count, sizeof (uint8_t *));
    size_t *sizes = calloc (count, sizeof (size_t));
    pond_event_t **events = calloc (S_CHUNK_EVENTS, sizeof (pond_event_t *));
    if (!bytes || !sizes || !events)
        return 1;
    size_t total = 0;
    for (size_t i = 0; i < count; i++) {
        if (!(bytes [i] = s_make (i, size, &sizes [i])))
            return 1;
        total += sizes [i];
    }
    uint8_t *packed = malloc (total);
    if (!packed)
        return 1;
    for (size_t i = 0, at = 0; i < count; at += sizes [i], i++)
        memcpy (packed + at, bytes [i], sizes [i]);

    //  Offsets of the events in packed
    size_t *offsets = calloc (count + 1, sizeof (size_t));
    uint8_t *frame = malloc (POND_CHUNK_BYTES_MAX);
    uint8_t **encoded = calloc (S_CHUNK_EVENTS, sizeof (uint8_t *));
    size_t *encoded_sizes = calloc (S_CHUNK_EVENTS, sizeof (size_t));
    if (!offsets || !frame || !encoded || !encoded_sizes)
        return 1;
    for (size_t i = 0; i < count; i++)
        offsets [i + 1] = offsets [i] + sizes [i];

    double decode [100], encode [100], decode_next [100], cold [100];
    char err [POND_ERR_SIZE];
    for (int round = -1; round < rounds; round++) {
        uint64_t decode_ns = 0, encode_ns = 0, next_ns = 0;
        //  Chunk by chunk, as a reader gets them: the frame is hot
        for (size_t first = 0; first < count; first += S_CHUNK_EVENTS) {
            size_t events_in = count - first < S_CHUNK_EVENTS ? count - first : S_CHUNK_EVENTS;
            size_t frame_size = offsets [first + events_in] - offsets [first];
            memcpy (frame, packed + offsets [first], frame_size);
            //  decode: each event's own bytes
            uint64_t t0 = s_now_ns ();
            for (size_t i = 0; i < events_in; i++) {
                size_t at = offsets [first + i] - offsets [first];
                events [i] = pond_event_decode (frame + at, sizes [first + i], err, sizeof err);
                if (!events [i]) {
                    fprintf (stderr, "pond-decode-bench: event %zu: %s\n", first + i, err);
                    return 1;
                }
            }
            //  encode: each decoded event
            uint64_t t1 = s_now_ns ();
            for (size_t i = 0; i < events_in; i++)
                encoded [i] = pond_event_encode (events [i], &encoded_sizes [i], err, sizeof err);
            uint64_t t2 = s_now_ns ();
            for (size_t i = 0; i < events_in; i++) {
                size_t at = offsets [first + i] - offsets [first];
                if (!encoded [i] || encoded_sizes [i] != sizes [first + i]
                    || memcmp (encoded [i], frame + at, encoded_sizes [i])) {
                    fprintf (stderr,
                             "pond-decode-bench: event %zu does not encode back "
                             "to its bytes\n",
                             first + i);
                    return 1;
                }
                free (encoded [i]);
            }
            //  (destroying what decode made is part of decode)
            uint64_t t3 = s_now_ns ();
            for (size_t i = 0; i < events_in; i++)
                pond_event_destroy (&events [i]);
            //  decode_next: the frame's events back to back, as a reader does
            uint64_t t4 = s_now_ns ();
            size_t at = 0, seen = 0;
            while (at < frame_size) {
                size_t used;
                pond_event_t *event = pond_event_decode_next (frame + at, frame_size - at, &used,
                                                              err, sizeof err);
                if (!event) {
                    fprintf (stderr, "pond-decode-bench: packed event %zu: %s\n", first + seen,
                             err);
                    return 1;
                }
                pond_event_destroy (&event);
                at += used;
                seen++;
            }
            uint64_t t5 = s_now_ns ();
            if (seen != events_in) {
                fprintf (stderr, "pond-decode-bench: %zu events in a frame, not %zu\n", seen,
                         events_in);
                return 1;
            }
            decode_ns += (t1 - t0) + (t4 - t3);
            encode_ns += t2 - t1;
            next_ns += t5 - t4;
        }
        //  decode_next over all the events in one pass: memory, not cache
        uint64_t start = s_now_ns ();
        size_t at = 0;
        while (at < total) {
            size_t used;
            pond_event_t *event = pond_event_decode_next (packed + at, total - at, &used, err,
                                                          sizeof err);
            if (!event)
                return 1;
            pond_event_destroy (&event);
            at += used;
        }
        uint64_t end = s_now_ns ();
        if (round >= 0) {
            decode [round] = (double) decode_ns / (double) count;
            encode [round] = (double) encode_ns / (double) count;
            decode_next [round] = (double) next_ns / (double) count;
            cold [round] = (double) (end - start) / (double) count;
        }
    }
    qsort (decode, (size_t) rounds, sizeof (double), s_compare);
    qsort (encode, (size_t) rounds, sizeof (double), s_compare);
    qsort (decode_next, (size_t) rounds, sizeof (double), s_compare);
    qsort (cold, (size_t) rounds, sizeof (double), s_compare);
    int mid = rounds / 2;
    printf ("events=%zu bytes_per_event=%.1f rounds=%d"
            " decode_ns=%.1f decode_ns_min=%.1f decode_ns_max=%.1f"
            " encode_ns=%.1f encode_ns_min=%.1f encode_ns_max=%.1f"
            " decode_next_ns=%.1f decode_next_ns_min=%.1f decode_next_ns_max=%.1f"
            " decode_next_events_per_s=%.0f"
            " decode_next_cold_ns=%.1f decode_next_cold_ns_min=%.1f"
            " decode_next_cold_ns_max=%.1f\n",
            count, (double) total / (double) count, rounds, decode [mid], decode [0],
            decode [rounds - 1], encode [mid], encode [0], encode [rounds - 1], decode_next [mid],
            decode_next [0], decode_next [rounds - 1], 1e9 / decode_next [mid], cold [mid],
            cold [0], cold [rounds - 1]);

    free (offsets);
    free (frame);
    free (encoded);
    free (encoded_sizes);
    for (size_t i = 0; i < count; i++)
        free (bytes [i]);
    free (bytes);
    free (sizes);
    free (events);
    free (packed);
    return 0;
}
