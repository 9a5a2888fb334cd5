/*  pond_bench_fanout: the fanout scenario of pond-bench.

        pond-bench fanout [--subscribers S] [--events N] [--producers P] [--window W]
                          [--connections C] [--batch B]

    S subscriber threads (pond_sub_t on QUACKED, each event decoded) while
    P pipelined producers (threads, or C clients of one event loop; each
    event alone or in PUBLISH batches of B) publish N events:
    deliveries/s is the events
    received by all subscribers over the time from the first publish to
    the last delivery. Then, at 10% of the ingest rate just measured (open
    loop, one producer), publish -> subscriber latency from each event's
    scheduled send time to its arrival at a subscriber.
*/
#include "pond_bench.h"
#include "pond_thread.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BENCH_LAT_PRODUCER 100    //  the latency phase's producer number

typedef struct {
    const char *endpoint;
    const int *stop;           //  set by main: leave
    int ready;                 //  connected: a heartbeat came in
    size_t received;           //  throughput phase deliveries
    int64_t last;              //  ns of the last of them
    const int64_t *sent_at;    //  latency phase: scheduled send times
    int64_t *latency;          //  latency phase: per event, ns (0: not received)
    size_t lat_events;
    size_t lat_received;
} bench_sub_t;

static void *
s_subscriber_run (void *args)
{
    bench_sub_t *self = (bench_sub_t *) args;
    pond_thread_block_signals (NULL);
    const char *names [] = { "QUACKED" };
    pond_sub_t *sub = pond_sub_new (self->endpoint, names, 1);
    while (sub && !__atomic_load_n (self->stop, __ATOMIC_ACQUIRE)
           && pond_sub_heartbeats (sub) == 0) {
        pond_event_t *event = pond_sub_recv (sub, 100);
        pond_event_destroy (&event);
    }
    __atomic_store_n (&self->ready, sub ? 1 : -1, __ATOMIC_RELEASE);
    while (sub && !__atomic_load_n (self->stop, __ATOMIC_ACQUIRE)) {
        pond_event_t *event = pond_sub_recv (sub, 100);
        if (!event)
            continue;
        int64_t now = pond_bench_now_ns ();
        const uint8_t *id = pond_event_id (event);
        int producer;
        size_t index;
        pond_bench_events_id_parse (id, &producer, &index);
        if (producer >= BENCH_LAT_PRODUCER) {
            int64_t sent = index < self->lat_events
                             ? __atomic_load_n (&self->sent_at [index], __ATOMIC_ACQUIRE)
                             : 0;
            if (sent > 0 && self->latency [index] == 0) {
                self->latency [index] = now - sent;
                __atomic_add_fetch (&self->lat_received, 1, __ATOMIC_RELEASE);
            }
        }
        else {
            __atomic_store_n (&self->last, now, __ATOMIC_RELEASE);
            __atomic_add_fetch (&self->received, 1, __ATOMIC_RELEASE);
        }
        pond_event_destroy (&event);
    }
    pond_sub_destroy (&sub);
    return NULL;
}

//  Wait until every subscriber has want events (lat: of the latency
//  phase), or nothing came for a second. Returns the deliveries.
static size_t
s_subscribers_wait (bench_sub_t *subs, int count, size_t want, bool lat)
{
    size_t before = (size_t) -1;
    int64_t progress = pond_bench_now_ns ();
    while (!zsys_interrupted) {
        size_t sum = 0;
        bool all = true;
        for (int s = 0; s < count; s++) {
            size_t got = __atomic_load_n (lat ? &subs [s].lat_received : &subs [s].received,
                                          __ATOMIC_ACQUIRE);
            sum += got;
            if (got < want)
                all = false;
        }
        if (all)
            return sum;
        if (sum != before) {
            before = sum;
            progress = pond_bench_now_ns ();
        }
        else if (pond_bench_now_ns () - progress > 1000000000)
            return sum;
        pond_bench_sleep_ms (5);
    }
    return before;
}

int
pond_bench_fanout (pond_bench_mesh_t *mesh, const pond_bench_options_t *options)
{
    static const char *quacked [] = { "QUACKED" };
    int count = options->subscribers;
    size_t events = (size_t) options->events;
    bench_sub_t *subs = calloc ((size_t) count, sizeof (bench_sub_t));
    pthread_t *threads = calloc ((size_t) count, sizeof (pthread_t));
    //  Latency phase size is known only after the throughput phase; the
    //  arrays are made for the most it can be
    size_t lat_max = 20000;
    int64_t *sent_at = calloc (lat_max, sizeof (int64_t));
    int stop = 0, rc = 0, started = 0;
    if (!subs || !threads || !sent_at) {
        fprintf (stderr, "pond-bench: out of memory\n");
        rc = -1;
    }
    for (int s = 0; rc == 0 && s < count; s++) {
        subs [s].endpoint = pond_bench_mesh_pub (mesh);
        subs [s].stop = &stop;
        subs [s].sent_at = sent_at;
        subs [s].latency = calloc (lat_max, sizeof (int64_t));
        if (!subs [s].latency || pthread_create (&threads [s], NULL, s_subscriber_run, &subs [s]))
            rc = -1;
        else
            started++;
    }
    //  Every subscriber connected (heartbeats come once a second)
    for (int waited = 0; rc == 0 && waited < 5000; waited += 10) {
        int ready = 0;
        for (int s = 0; s < count; s++)
            ready += __atomic_load_n (&subs [s].ready, __ATOMIC_ACQUIRE) == 1;
        if (ready == count)
            break;
        if (waited + 10 >= 5000) {
            fprintf (stderr, "pond-bench: subscribers not connected within 5 s\n");
            rc = -1;
        }
        pond_bench_sleep_ms (10);
    }
    pond_bench_sleep_ms (100);    //  Let subscriptions settle

    pond_bench_proc_t store_before, broker_before, store_after, broker_after;
    pond_bench_mesh_sample (mesh, &store_before, &broker_before);
    double cpu_before = pond_bench_self_cpu ();

    //  (a) throughput: pipelined producers, every subscriber counts
    pond_bench_publish_result_t load;
    memset (&load, 0, sizeof load);
    size_t deliveries = 0;
    double seconds = 0;
    if (rc == 0) {
        pond_bench_publish_t run = { .producers = options->producers,
                                     .loop = options->loop,
                                     .window = options->window,
                                     .batch = options->batch,
                                     .total = events,
                                     .names = quacked,
                                     .names_count = 1,
                                     .entities = options->entities,
                                     .size = options->size };
        rc = pond_bench_publish_run (pond_bench_mesh_ingest (mesh), &run, &load);
        deliveries = s_subscribers_wait (subs, count, events, false);
        int64_t last = load.end;
        for (int s = 0; s < count; s++) {
            int64_t at = __atomic_load_n (&subs [s].last, __ATOMIC_ACQUIRE);
            if (at > last)
                last = at;
        }
        seconds = (double) (last - load.start) / 1e9;
    }
    double cpu_bench = pond_bench_self_cpu () - cpu_before;
    pond_bench_mesh_sample (mesh, &store_after, &broker_after);

    //  (b) latency at 10% of the ingest rate just measured, open loop
    double ingest_rate = rc == 0 && load.seconds > 0 ? (double) events / load.seconds : 0;
    double lat_rate = ingest_rate / 10;
    size_t lat_events = (size_t) (lat_rate * 2);    //  two seconds' worth
    if (lat_events < 200)
        lat_events = 200;
    if (lat_events > lat_max)
        lat_events = lat_max;
    pond_bench_publish_result_t lat;
    memset (&lat, 0, sizeof lat);
    int64_t *latency = NULL;
    size_t lat_count = 0;
    if (rc == 0) {
        for (int s = 0; s < count; s++)
            subs [s].lat_events = lat_events;
        pond_bench_publish_t run = { .producers = 1,
                                     .rate = lat_rate,
                                     .total = lat_events,
                                     .index_base = BENCH_LAT_PRODUCER,
                                     .names = quacked,
                                     .names_count = 1,
                                     .entities = options->entities,
                                     .size = options->size,
                                     .sent_at = sent_at };
        rc = pond_bench_publish_run (pond_bench_mesh_ingest (mesh), &run, &lat);
        s_subscribers_wait (subs, count, lat_events, true);
        latency = calloc (lat_events * (size_t) count, sizeof (int64_t));
        for (int s = 0; latency && s < count; s++)
            for (size_t i = 0; i < lat_events; i++)
                if (subs [s].latency [i] > 0)
                    latency [lat_count++] = subs [s].latency [i];
        if (latency)
            pond_bench_sort_ns (latency, lat_count);
    }
    __atomic_store_n (&stop, 1, __ATOMIC_RELEASE);
    for (int s = 0; s < started; s++)
        pthread_join (threads [s], NULL);

    if (rc == 0)
        printf (
            "scenario=fanout subscribers=%d producers=%d window=%d events=%zu "
            "event_bytes=%.0f ingest_events_per_s=%.0f deliveries=%zu lost=%zu "
            "seconds=%.3f deliveries_per_s=%.0f lat_rate=%.0f lat_events=%zu "
            "lat_deliveries=%zu sub_p50_us=%.0f sub_p99_us=%.0f sub_p999_us=%.0f "
            "ack_p50_us=%.0f ack_p99_us=%.0f store_rss_kb=%ld broker_rss_kb=%ld "
            "bench_rss_kb=%ld store_cpu_s=%.2f broker_cpu_s=%.2f bench_cpu_s=%.2f with_store=%d\n",
            count, options->producers, options->window, events, load.bytes_avg, ingest_rate,
            deliveries, events * (size_t) count - deliveries, seconds,
            seconds > 0 ? (double) deliveries / seconds : 0.0, lat_rate, lat_events, lat_count,
            pond_bench_percentile_us (latency, lat_count, 0.50),
            pond_bench_percentile_us (latency, lat_count, 0.99),
            pond_bench_percentile_us (latency, lat_count, 0.999),
            pond_bench_percentile_us (lat.latency, lat.events, 0.50),
            pond_bench_percentile_us (lat.latency, lat.events, 0.99), store_after.hwm_kb,
            broker_after.hwm_kb, pond_bench_self_hwm_kb (), store_after.cpu_s - store_before.cpu_s,
            broker_after.cpu_s - broker_before.cpu_s, cpu_bench, pond_bench_mesh_with_store (mesh));
    free (latency);
    free (load.latency);
    free (lat.latency);
    for (int s = 0; subs && s < count; s++)
        free (subs [s].latency);
    free (subs);
    free (threads);
    free (sent_at);
    return rc;
}
