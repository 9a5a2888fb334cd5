/*  pond_bench_load: the load scenario of pond-bench.

        pond-bench load [--events N] [--entities E] [--names A,B]

    Publishes N events (names round robin, E entities, ts 1 ms apart from
    2022-01-01) with pipelined producers, in chunks so memory stays
    bounded; with --data DIR the store is kept for later replays, with
    --mesh DIR it goes to a running mesh. The replay scenario fills its
    store the same way (pond_bench_load_events).
*/
#include "pond_bench.h"

#include <stdio.h>
#include <stdlib.h>

#define BENCH_LOAD_WINDOW 256        //  each producer this many in flight
#define BENCH_LOAD_CHUNK  1000000    //  events encoded at a time

//  The event names of the load, in round-robin order; the "by names"
//  replay asks for the first two.
const char *const pond_bench_load_names [POND_BENCH_LOAD_NAMES_COUNT] = {
    "QUACKED", "BUTTON_CLICKED", "LABEL_ADDED", "LABEL_REMOVED"
};

//  Publish total events (names round robin, entities entities, ts 1 ms
//  apart from POND_BENCH_TS_BASE) with pipelined producers, BENCH_LOAD_CHUNK
//  events at a time so that memory stays bounded. Adds up the time spent
//  in *seconds. Returns 0 or -1.
int
pond_bench_load_events (pond_bench_mesh_t *mesh, size_t total, const char *const *names,
                        size_t names_count, size_t entities, int size, double *seconds,
                        double *bytes_avg)
{
    *seconds = 0;
    for (size_t done = 0; done < total && !zsys_interrupted;) {
        size_t chunk = total - done < BENCH_LOAD_CHUNK ? total - done : BENCH_LOAD_CHUNK;
        pond_bench_publish_t run = { .producers = chunk < POND_BENCH_LOAD_PRODUCERS
                                                    ? 1
                                                    : POND_BENCH_LOAD_PRODUCERS,
                                     .window = BENCH_LOAD_WINDOW,
                                     .total = chunk,
                                     .first = done,
                                     .names = names,
                                     .names_count = names_count,
                                     .entities = entities,
                                     .ts_base = true,
                                     .size = size };
        pond_bench_publish_result_t result;
        int rc = pond_bench_publish_run (pond_bench_mesh_ingest (mesh), &run, &result);
        free (result.latency);
        if (rc)
            return -1;
        *seconds += result.seconds;
        *bytes_avg = result.bytes_avg;
        done += chunk;
    }
    return zsys_interrupted ? -1 : 0;
}

int
pond_bench_load (pond_bench_mesh_t *mesh, const pond_bench_options_t *options)
{
    pond_bench_proc_t store_before, store_after, broker_before, broker_after;
    pond_bench_mesh_sample (mesh, &store_before, &broker_before);
    double seconds, bytes_avg = 0;
    int rc = pond_bench_load_events (mesh, (size_t) options->events, options->names,
                                     options->names_count, options->entities, options->size,
                                     &seconds, &bytes_avg);
    pond_bench_mesh_sample (mesh, &store_after, &broker_after);
    if (rc == 0)
        printf ("scenario=load events=%ld entities=%zu event_bytes=%.0f seconds=%.3f "
                "events_per_s=%.0f store_rss_kb=%ld store_cpu_s=%.2f bench_rss_kb=%ld "
                "broker_rss_kb=%ld broker_cpu_s=%.2f with_store=%d\n",
                options->events, options->entities, bytes_avg, seconds,
                (double) options->events / seconds, store_after.hwm_kb,
                store_after.cpu_s - store_before.cpu_s, pond_bench_self_hwm_kb (),
                broker_after.hwm_kb, broker_after.cpu_s - broker_before.cpu_s,
                pond_bench_mesh_with_store (mesh));
    return rc;
}
