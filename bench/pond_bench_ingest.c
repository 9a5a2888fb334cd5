/*  pond_bench_ingest: the ingest scenario of pond-bench.

        pond-bench ingest [--events N] [--producers P | --connections C] [--window W]
                          [--rate R]

    N QUACKED events in all from P producers, each with its own
    pond_client_t and a pond_publisher_t over it that keeps W publishes
    outstanding (W = 1: waits for each ACK). Two ways to run them:
    - --producers P: P threads (CZMQ sockets are not thread-safe), each
      the event loop of pond_bench_publish over its one publisher.
    - --connections C: C clients driven from ONE thread, as redis-benchmark
      -c C -P W drives its connections: an event loop waits on every
      publisher's socket and pushes a client's next event as soon as an
      ACK frees a place in its window; the publisher resends after a
      NACK 503's retry_ms (nacks: the 503s; retries: every resend). On
      the 2 cores that load generator, store and broker share, this costs
      the generator a fraction of the CPU of P threads.
    Events are encoded before the clock starts (a producer's own encoding
    is not pond's cost). The rate is ACKed events over the time from the
    common start to the last ACK; latency is per event, from the call
    that first sends it to the moment its ACK (durable in the store) is
    read, retries included. With --rate R (open loop), each producer sends
    event i at start + i / R' (R' = R / P) whatever the ACKs do, with no
    window, and latency counts from that scheduled time, so a stall is
    charged to every event it delays (no coordinated omission). Between
    sends the loop sleeps until the next scheduled send or a reply,
    whichever comes first. If the mesh cannot keep up, the achieved rate
    says so. bench_timed_cpu_s is this program's CPU from the start to
    the last ACK (bench_cpu_s also counts encoding and connecting);
    server_cpu_us_per_event is the CPU of pond-store and pond-broker over
    the same span (utime + stime from /proc), per ACKed event, and
    store_cpu_us_per_event and broker_cpu_us_per_event are its two parts.

    Besides, the line carries the store's synced WriteBatches (one WAL
    sync each: "commits") from STATS and the idle PING round trips to the
    broker and to the store, measured before the clock starts: W = 1
    latency is roughly the two round trips plus one commit.
*/
#include "pond_bench.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

//  Median round trip of count PINGs to endpoint (a broker's ingest socket,
//  or the store's link socket, which answers PING too), in microseconds;
//  -1 if it did not answer. Tells messaging cost apart from commit cost.
static double
s_ping_p50_us (const char *endpoint, int count)
{
    pond_client_t *client = pond_client_new (endpoint);
    int64_t *rtt = calloc ((size_t) count, sizeof (int64_t));
    double p50 = -1;
    if (client && rtt && pond_client_ping (client, 5000) == 0) {
        int done = 0;
        for (; done < count && !zsys_interrupted; done++) {
            int64_t sent = pond_bench_now_ns ();
            if (pond_client_ping (client, 5000))
                break;
            rtt [done] = pond_bench_now_ns () - sent;
        }
        if (done == count) {
            pond_bench_sort_ns (rtt, (size_t) count);
            p50 = pond_bench_percentile_us (rtt, (size_t) count, 0.5);
        }
    }
    free (rtt);
    pond_client_destroy (&client);
    return p50;
}

int
pond_bench_ingest (pond_bench_mesh_t *mesh, const pond_bench_options_t *options)
{
    static const char *quacked [] = { "QUACKED" };
    //  Idle round trips first, to split latency into messaging and commit
    double broker_rtt = s_ping_p50_us (pond_bench_mesh_ingest (mesh), 300);
    //  No store endpoint to reach with --with-store (inproc) or --mesh
    const char *store_endpoint = pond_bench_mesh_store_endpoint (mesh);
    double store_rtt = *store_endpoint ? s_ping_p50_us (store_endpoint, 300) : -1;
    pond_bench_proc_t store_before, broker_before, store_after, broker_after;
    long long commits_before = pond_bench_mesh_commits (mesh, 0);
    pond_bench_mesh_sample (mesh, &store_before, &broker_before);
    double cpu_before = pond_bench_self_cpu ();

    pond_bench_publish_t run = { .producers = options->producers,
                                 .loop = options->loop,
                                 .window = options->window,
                                 .batch = options->batch,
                                 .rate = options->rate,
                                 .total = (size_t) options->events,
                                 .names = quacked,
                                 .names_count = 1,
                                 .entities = options->entities,
                                 .size = options->size };
    pond_bench_publish_result_t result;
    int rc = pond_bench_publish_run (pond_bench_mesh_ingest (mesh), &run, &result);

    double cpu_bench = pond_bench_self_cpu () - cpu_before;
    pond_bench_mesh_sample (mesh, &store_after, &broker_after);
    long long commits = rc ? -1 : pond_bench_mesh_commits (mesh, (long long) result.events);
    if (commits >= 0 && commits_before >= 0)
        commits -= commits_before;
    //  What the mesh spends per durable event: store and broker together
    //  (with --with-store the broker's process holds both)
    double store_cpu = store_after.cpu_s - store_before.cpu_s;
    double broker_cpu = broker_after.cpu_s - broker_before.cpu_s;
    double per_event = result.events ? 1e6 / (double) result.events : 0.0;
    double server_cpu_us = (store_cpu + broker_cpu) * per_event;
    if (rc == 0)
        printf ("scenario=ingest mode=%s producers=%d window=%d offered_per_s=%.0f events=%zu "
                "event_bytes=%.0f seconds=%.3f events_per_s=%.0f p50_us=%.0f p90_us=%.0f "
                "p99_us=%.0f p999_us=%.0f max_us=%.0f nacks=%" PRIu64 " retries=%" PRIu64
                " store_commits=%lld events_per_commit=%.1f store_rss_kb=%ld broker_rss_kb=%ld "
                "bench_rss_kb=%ld store_cpu_s=%.2f broker_cpu_s=%.2f bench_cpu_s=%.2f "
                "bench_timed_cpu_s=%.2f bench_cpu_us_per_event=%.1f "
                "store_write_kb=%lld broker_rtt_us=%.0f store_rtt_us=%.0f with_store=%d "
                "server_cpu_us_per_event=%.1f store_cpu_us_per_event=%.1f "
                "broker_cpu_us_per_event=%.1f batch=%d\n",
                options->loop ? "loop" : "threads", options->producers,
                options->rate > 0 ? 0 : options->window, options->rate, result.events,
                result.bytes_avg, result.seconds, (double) result.events / result.seconds,
                pond_bench_percentile_us (result.latency, result.events, 0.50),
                pond_bench_percentile_us (result.latency, result.events, 0.90),
                pond_bench_percentile_us (result.latency, result.events, 0.99),
                pond_bench_percentile_us (result.latency, result.events, 0.999),
                pond_bench_percentile_us (result.latency, result.events, 1.0), result.nacks,
                result.retries, commits,
                commits > 0 ? (double) result.events / (double) commits : 0.0, store_after.hwm_kb,
                broker_after.hwm_kb, pond_bench_self_hwm_kb (), store_cpu, broker_cpu, cpu_bench,
                result.cpu_s, result.cpu_s * per_event,
                store_after.write_kb - store_before.write_kb, broker_rtt, store_rtt,
                pond_bench_mesh_with_store (mesh), server_cpu_us, store_cpu * per_event,
                broker_cpu * per_event, options->batch);
    free (result.latency);
    return rc;
}
