/*  pond_bench: the harness every pond-bench scenario is built on.

    pond-bench (pond_bench_main.c) parses the command line into a
    pond_bench_options_t, brings up the mesh under test
    (pond_bench_mesh), runs ONE scenario and prints its one line of
    key=value results. A scenario drives the mesh through the client
    library: producers publish pre-encoded events (pond_bench_events)
    through the pipelined load (pond_bench_publish); readers and
    subscribers are the scenario's own. This header holds what they all
    share: the options, the clock, latency percentiles and this
    program's own CPU and peak RSS (pond_bench.c),
    and the entry point of each scenario (pond_bench_ingest.c,
    pond_bench_load.c, pond_bench_replay.c, pond_bench_fanout.c,
    pond_bench_query.c).
*/
#ifndef POND_BENCH_H_INCLUDED
#define POND_BENCH_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pond_client.h"
#include "pond_bench_mesh.h"
#include "pond_bench_events.h"
#include "pond_bench_publish.h"

#define POND_BENCH_REPLY_WAIT     30000    //  msecs without any reply = failure
#define POND_BENCH_MAX_NAMES      8        //  load: --names
#define POND_BENCH_LOAD_PRODUCERS 4        //  load and replay's load: with these producers

//  The command line, as every scenario reads it
typedef struct {
    const char *scenario;
    long events;    //  0: scenario's default
    int producers;
    bool loop;    //  ingest: --connections, one event-loop thread
    int window;
    int batch;              //  events per PUBLISH at most (pond_publisher_set_batch)
    double rate;            //  ingest: open loop at this many events/s (0: closed)
    int size;               //  target encoded event size, bytes
    long range;             //  replay: events per timed replay (0: events / 4)
    double slow_rate;       //  replay: slow reader's events/s (0: none)
    double slow_seconds;    //  replay: how long the slow reader reads
    int subscribers;        //  fanout
    size_t entities;        //  events belong to cust-0000 ... (--entities)
    const char *names [POND_BENCH_MAX_NAMES];    //  load: event names, round robin
    size_t names_count;
    const char *parent;    //  where our data directory is made
    const char *data;      //  --data: our data directory, kept
    const char *mesh;      //  --mesh: a running mesh's data directory
    bool keep;             //  keep the data directory (debugging)
    bool with_store;       //  pond-broker --with-store instead of two processes
    bool verbose;
} pond_bench_options_t;

//  ---------------------------------------------------------------------
//  Clock and figures (pond_bench.c)

//  Returns the monotonic clock, in nanoseconds.
int64_t
    pond_bench_now_ns (void);

//  Sleep for msecs milliseconds.
void
    pond_bench_sleep_ms (int msecs);

//  Sort count durations (ns) in ascending order, for percentiles.
void
    pond_bench_sort_ns (int64_t *values, size_t count);

//  Returns the value at quantile q (0..1) of count sorted durations (ns),
//  in microseconds; 0 if count is 0.
double
    pond_bench_percentile_us (const int64_t *sorted, size_t count, double q);

//  Returns our own CPU seconds (user + system, every thread).
double
    pond_bench_self_cpu (void);

//  Returns our own peak RSS (VmHWM), in KiB.
long
    pond_bench_self_hwm_kb (void);

//  ---------------------------------------------------------------------
//  Scenarios: each runs on a mesh that is up, prints its one result line
//  on stdout and returns 0, or returns -1 after saying why on stderr.

//  ingest: publish -> durable ACK, closed or open loop (pond_bench_ingest.c)
int
    pond_bench_ingest (pond_bench_mesh_t *mesh, const pond_bench_options_t *options);

//  load: publish N events fast, to fill a store (pond_bench_load.c)
int
    pond_bench_load (pond_bench_mesh_t *mesh, const pond_bench_options_t *options);

//  replay: by seq and by names over a time window, and a slow reader
//  (pond_bench_replay.c)
int
    pond_bench_replay (pond_bench_mesh_t *mesh, const pond_bench_options_t *options);

//  fanout: deliveries/s to S subscribers, then publish -> subscriber
//  latency (pond_bench_fanout.c)
int
    pond_bench_fanout (pond_bench_mesh_t *mesh, const pond_bench_options_t *options);

//  query: a view's answers per second and their latency, C links to the
//  quack counter of a running mesh (pond_bench_query.c)
int
    pond_bench_query (pond_bench_mesh_t *mesh, const pond_bench_options_t *options);

//  The event names the load uses by default, round robin; the replay loads
//  with them and asks for the first two (pond_bench_load.c).
#define POND_BENCH_LOAD_NAMES_COUNT 4
extern const char *const pond_bench_load_names [POND_BENCH_LOAD_NAMES_COUNT];

//  Publish total events (names round robin, entities entities, ts 1 ms
//  apart from POND_BENCH_TS_BASE) with pipelined producers, a chunk at a
//  time so that memory stays bounded. Sets *seconds to the time spent
//  publishing and *bytes_avg to the mean encoded size. Returns 0 or -1
//  (pond_bench_load.c).
int
    pond_bench_load_events (pond_bench_mesh_t *mesh, size_t total, const char *const *names,
                            size_t names_count, size_t entities, int size, double *seconds,
                            double *bytes_avg);

#endif
