/*  pond_bench_replay: the replay scenario of pond-bench.

        pond-bench replay [--events N] [--range M] [--slow-rate R --slow-seconds S]

    Loads N events (4 names, 1000 entities, ts 1 ms apart) fast, unless
    --data DIR already holds exactly them (loaded once, replayed by every
    round), then times pond_reader_new plus draining pond_reader_next
    (every event decoded and checked at the reader) for M events by seq
    (a seq range in the middle of the log), and for 2 names over a time
    window holding M of their events (2M events of the log). M defaults
    to N / 4. With --slow-rate, a third replay of the same window is read
    at only R events/s for S seconds while the RSS of store and broker is
    sampled every 100 ms: with credit flow control it stays flat.
*/
#include "pond_bench.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

typedef struct {
    size_t events;
    double seconds;
    double first_ms;    //  time to the first event
} bench_replay_t;

//  Time one replay from pond_reader_new to its END, decoding every event.
//  by_seq: events must come with seq first_seq, first_seq + 1, ...; else
//  in (ts, seq) order. Returns 0, or -1 if it failed or the order was wrong.
static int
s_replay_time (pond_bench_mesh_t *mesh, const pond_replay_req_t *req, bool by_seq,
               uint64_t first_seq, size_t expected, bench_replay_t *result)
{
    memset (result, 0, sizeof *result);
    int64_t start = pond_bench_now_ns ();
    pond_reader_t *replay = pond_reader_new (pond_bench_mesh_control (mesh), req);
    if (!replay) {
        fprintf (stderr, "pond-bench: cannot start a replay on %s\n",
                 pond_bench_mesh_control (mesh));
        return -1;
    }
    uint64_t last_seq = by_seq ? first_seq - 1 : 0, last_ts = 0;
    size_t disorder = 0;
    int waited = 0;
    while (true) {
        pond_event_t *event = pond_reader_next (replay, 1000);
        if (!event) {
            //  Timed out: go on waiting while store and broker live
            if (pond_reader_code (replay) || zsys_interrupted || !pond_bench_mesh_alive (mesh)
                || (waited += 1000) >= POND_BENCH_REPLY_WAIT)
                break;
            continue;
        }
        waited = 0;
        if (result->events++ == 0)
            result->first_ms = (double) (pond_bench_now_ns () - start) / 1e6;
        uint64_t seq = pond_event_seq (event), ts = pond_event_ts (event);
        if (by_seq ? seq != last_seq + 1 : ts < last_ts || (ts == last_ts && seq <= last_seq))
            disorder++;
        last_seq = seq;
        last_ts = ts;
        pond_event_destroy (&event);
    }
    result->seconds = (double) (pond_bench_now_ns () - start) / 1e9;
    int rc = 0;
    if (pond_reader_code (replay) != POND_CODE_OK) {
        if (pond_reader_code (replay) == 0 && !zsys_interrupted)
            fprintf (stderr, "pond-bench: the replay stalled (%s)\n",
                     pond_bench_mesh_alive (mesh) ? "no event for 30 s" : "a process died");
        fprintf (stderr, "pond-bench: replay failed after %zu events: %d %s\n", result->events,
                 pond_reader_code (replay), pond_reader_reason (replay));
        rc = -1;
    }
    else if (disorder || result->events != expected) {
        fprintf (stderr, "pond-bench: replay gave %zu events (expected %zu), %zu out of order\n",
                 result->events, expected, disorder);
        rc = -1;
    }
    pond_reader_destroy (&replay);
    return rc;
}

typedef struct {
    size_t events;
    double seconds;
    long store_rss_first_kb;    //  VmRSS once the first event is in
    long store_rss_max_kb;
    long store_rss_last_kb;
    long broker_rss_first_kb;
    long broker_rss_max_kb;
    long bench_rss_max_kb;
} bench_slow_t;

//  A deliberately slow reader: consume req at rate events/s for seconds,
//  sampling the RSS of store, broker and ourselves every 100 ms, then
//  cancel. Returns 0 or -1.
static int
s_replay_slow (pond_bench_mesh_t *mesh, const pond_replay_req_t *req, double rate, double seconds,
               bench_slow_t *result)
{
    memset (result, 0, sizeof *result);
    pond_reader_t *replay = pond_reader_new (pond_bench_mesh_control (mesh), req);
    if (!replay) {
        fprintf (stderr, "pond-bench: cannot start a replay on %s\n",
                 pond_bench_mesh_control (mesh));
        return -1;
    }
    int64_t interval = (int64_t) (1e9 / rate), start = pond_bench_now_ns (), sampled = 0;
    int64_t stop = start + (int64_t) (seconds * 1e9);
    int rc = 0;
    while (!zsys_interrupted) {
        int64_t now = pond_bench_now_ns ();
        if (now >= stop)
            break;
        if (result->events && now - sampled >= 100000000) {
            pond_bench_proc_t store, broker;
            pond_bench_mesh_sample (mesh, &store, &broker);
            if (sampled == 0) {
                result->store_rss_first_kb = store.rss_kb;
                result->broker_rss_first_kb = broker.rss_kb;
            }
            if (store.rss_kb > result->store_rss_max_kb)
                result->store_rss_max_kb = store.rss_kb;
            if (broker.rss_kb > result->broker_rss_max_kb)
                result->broker_rss_max_kb = broker.rss_kb;
            result->store_rss_last_kb = store.rss_kb;
            sampled = now;
        }
        int64_t due = start + (int64_t) result->events * interval;
        if (due > now) {
            int64_t wait = due - now < 10000000 ? due - now : 10000000;
            struct timespec ts = { 0, (long) wait };
            nanosleep (&ts, NULL);
            continue;
        }
        pond_event_t *event = pond_reader_next (replay, 1000);
        if (!event) {
            if (pond_reader_code (replay) || !pond_bench_mesh_alive (mesh)) {
                fprintf (stderr, "pond-bench: slow replay ended after %zu events: %d %s\n",
                         result->events, pond_reader_code (replay), pond_reader_reason (replay));
                rc = -1;
                break;
            }
            continue;
        }
        result->events++;
        pond_event_destroy (&event);
    }
    result->seconds = (double) (pond_bench_now_ns () - start) / 1e9;
    result->bench_rss_max_kb = pond_bench_self_hwm_kb ();
    pond_reader_destroy (&replay);
    return rc;
}

int
pond_bench_replay (pond_bench_mesh_t *mesh, const pond_bench_options_t *options)
{
    size_t total = (size_t) options->events;
    size_t range = options->range ? (size_t) options->range : total / 4;
    size_t names_count = POND_BENCH_LOAD_NAMES_COUNT;
    size_t span = 2 * range;    //  log events in the names' time window
    if (span > total || range < 1) {
        fprintf (stderr, "pond-bench: --range must be 1..events / 2\n");
        return -1;
    }
    //  Load, unless --data already holds exactly these events
    double load_seconds = 0, bytes_avg = 0;
    long long stored = pond_bench_mesh_stat (mesh, "store", "events");
    if (stored == 0) {
        if (pond_bench_load_events (mesh, total, pond_bench_load_names, names_count,
                                    options->entities, options->size, &load_seconds, &bytes_avg))
            return -1;
    }
    else if (stored != (long long) total) {
        fprintf (stderr, "pond-bench: %s holds %lld events, not %zu: use a fresh --data\n",
                 pond_bench_mesh_dir (mesh), stored, total);
        return -1;
    }
    pond_bench_proc_t store_before, broker_before, store_after, broker_after;
    pond_bench_mesh_sample (mesh, &store_before, &broker_before);
    double cpu_before = pond_bench_self_cpu ();

    //  The window: span log events from index s0 (a multiple of the names
    //  count, in the middle of the log)
    size_t s0 = ((total - span) / 2) / names_count * names_count;

    //  (a) range events by seq, from the middle of the log
    pond_replay_req_t req;
    memset (&req, 0, sizeof req);
    req.from_seq = s0 + 1;
    req.to_seq = s0 + 1 + range;
    bench_replay_t by_seq;
    int rc = s_replay_time (mesh, &req, true, req.from_seq, range, &by_seq);

    //  (b) the first two names over the time window of events s0 .. s0 + span
    size_t expected = 0;
    for (size_t i = s0; i < s0 + span; i++)
        if (i % names_count < 2)
            expected++;
    memset (&req, 0, sizeof req);
    req.names_count = 2;
    strcpy (req.names [0], pond_bench_load_names [0]);
    strcpy (req.names [1], pond_bench_load_names [1]);
    req.from_ts = POND_BENCH_TS_BASE + (uint64_t) s0 * POND_BENCH_TS_STEP;
    req.to_ts = POND_BENCH_TS_BASE + (uint64_t) (s0 + span) * POND_BENCH_TS_STEP;
    bench_replay_t by_names;
    if (rc == 0)
        rc = s_replay_time (mesh, &req, false, 0, expected, &by_names);

    double cpu_bench = pond_bench_self_cpu () - cpu_before;
    pond_bench_mesh_sample (mesh, &store_after, &broker_after);

    //  (c) the same window to a slow reader
    bench_slow_t slow;
    memset (&slow, 0, sizeof slow);
    if (rc == 0 && options->slow_rate > 0)
        rc = s_replay_slow (mesh, &req, options->slow_rate, options->slow_seconds, &slow);

    if (rc == 0)
        printf ("scenario=replay events=%zu range=%zu event_bytes=%.0f load_seconds=%.3f "
                "load_events_per_s=%.0f seq_events=%zu seq_seconds=%.3f "
                "seq_events_per_s=%.0f seq_first_ms=%.1f names_events=%zu "
                "names_seconds=%.3f names_events_per_s=%.0f names_first_ms=%.1f "
                "store_rss_kb=%ld broker_rss_kb=%ld bench_rss_kb=%ld store_cpu_s=%.2f "
                "broker_cpu_s=%.2f bench_cpu_s=%.2f slow_events=%zu slow_events_per_s=%.0f "
                "slow_store_rss_first_kb=%ld slow_store_rss_max_kb=%ld "
                "slow_store_rss_last_kb=%ld slow_store_rss_growth_kb=%ld "
                "slow_broker_rss_first_kb=%ld slow_broker_rss_max_kb=%ld with_store=%d\n",
                total, range, bytes_avg, load_seconds,
                load_seconds > 0 ? (double) total / load_seconds : 0.0, by_seq.events,
                by_seq.seconds, (double) by_seq.events / by_seq.seconds, by_seq.first_ms,
                by_names.events, by_names.seconds, (double) by_names.events / by_names.seconds,
                by_names.first_ms, store_after.hwm_kb, broker_after.hwm_kb,
                pond_bench_self_hwm_kb (), store_after.cpu_s - store_before.cpu_s,
                broker_after.cpu_s - broker_before.cpu_s, cpu_bench, slow.events,
                slow.seconds > 0 ? (double) slow.events / slow.seconds : 0.0,
                slow.store_rss_first_kb, slow.store_rss_max_kb, slow.store_rss_last_kb,
                slow.store_rss_max_kb - slow.store_rss_first_kb, slow.broker_rss_first_kb,
                slow.broker_rss_max_kb, pond_bench_mesh_with_store (mesh));
    return rc;
}
