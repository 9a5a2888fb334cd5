/*  pond_bench_publish: the load of pond-bench, N events from P producers.

    A producer is one pond_client_t with a pond_publisher_t over it, and
    its events, encoded before the clock starts (pond_bench_events).
    Closed loop, each keeps a window of W publishes in flight (W = 1:
    waits for every ACK); open loop (rate > 0), each pushes event i at
    start + i / rate whatever the ACKs do. The publisher resends after a
    NACK 503's retry_ms. Producers run in threads of their own, or all
    from one event loop (as redis-benchmark drives its -c connections).
    Latency is per event, from its first (or scheduled) send to its
    durable ACK.
*/
#ifndef POND_BENCH_PUBLISH_H_INCLUDED
#define POND_BENCH_PUBLISH_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  What pond_bench_publish_run publishes, and how
typedef struct {
    int producers;
    bool loop;                   //  one thread drives every producer (event loop)
    int window;                  //  publishes in flight per producer
    int batch;                   //  events per PUBLISH at most (0, 1: no batches)
    double rate;                 //  open loop: events/s of all producers (0: closed)
    size_t total;                //  events in all
    size_t first;                //  global index of the first event (load chunks)
    int index_base;              //  producer numbers (in the ids) start here
    const char *const *names;    //  event names, round robin by global index
    size_t names_count;
    size_t entities;     //  events belong to cust-0000 ... by global index
    bool ts_base;        //  ts from POND_BENCH_TS_BASE by global index, else now
    int size;            //  encoded event size, about
    int64_t *sent_at;    //  NULL, or total entries: (scheduled) send times
} pond_bench_publish_t;

//  What it measured
typedef struct {
    double seconds;
    size_t events;
    double bytes_avg;
    uint64_t nacks;      //  NACK 503s (pond_publisher_unavailable)
    uint64_t retries;    //  resends after a 503 or a timeout
    int64_t start;       //  monotonic ns: first producer's start
    int64_t end;         //  last producer's end
    double cpu_s;        //  our CPU seconds from start to end (no encoding)
    int64_t *latency;    //  all events, sorted
} pond_bench_publish_result_t;

//  Publish run->total events to the broker's ingest endpoint from
//  run->producers producers, all starting together: each in a thread of
//  its own, or (run->loop) all from this thread's event loop. Fills
//  result; caller frees result->latency. Returns 0 or -1 (reason printed).
int
    pond_bench_publish_run (const char *ingest, const pond_bench_publish_t *run,
                            pond_bench_publish_result_t *result);

#endif
