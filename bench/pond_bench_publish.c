/*  pond_bench_publish: the load of pond-bench, N events from P producers.

    A producer is one pond_client_t and the events it publishes. Window 1
    in a thread of its own calls pond_client_publish_bytes, which waits for
    each ACK. Everything else (window > 1, open loop, and every producer of
    the event loop) is driven by s_loop_run: one thread waits on the
    sockets of one or many producers at once (pond_client_sock) and reacts
    to replies and timers, as redis-benchmark drives its -c connections
    from one event loop.
*/
#define _GNU_SOURCE
#include "pond_bench.h"
#include "pond_thread.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    int index;                  //  producer number, in the ids
    const char *ingest;
    int window;
    double rate;                //  open loop: this producer's events/s (0: closed loop)
    size_t first;               //  global index of its first event
    size_t count;               //  events it publishes
    const pond_bench_publish_t *publish;    //  names, entities, ts and size of the events
    pond_bench_events_t *events;            //  encoded before the clock starts
    size_t bytes;               //  their encoded size in all
    pond_client_t *client;
    pthread_barrier_t *barrier; //  threads: start together
    double *cpu_start;          //  threads: our CPU seconds once all are ready
    int64_t *latency;           //  per event: publish -> ACK, ns
    int64_t *sent_at;           //  per event: (scheduled) first send, ns, or NULL
    int64_t start;              //  monotonic ns
    int64_t end;
    uint64_t nacks;             //  NACK 503 received (and resent)
    uint64_t retries;           //  resends by pond_client_publish
    int rc;
    char error [POND_REASON_MAX + 192];
    //  Pipelined state, kept by s_pipe_*
    uint8_t *state;             //  per event: 0 not sent, 1 in flight, 2 to resend, 3 ACKed
    int64_t *own_sent_at;       //  sent_at when the caller gave none
    size_t *resend;             //  resend queue (FIFO: every NACK gets the same retry_ms)
    int64_t *resend_at;
    size_t queue_size, resend_head, resend_count;
    size_t window_size;         //  events in flight at most (open loop: all)
    int64_t interval;           //  open loop: ns between scheduled sends
    size_t next, acked, in_flight;
    int64_t last_reply;         //  ns: last reply, or when the window was empty
    bool dirty;                 //  sent since its socket was last checked
} bench_producer_t;

//  Window 1: one publish at a time, each waiting for its durable ACK.
static int
s_producer_sync (bench_producer_t *self, pond_client_t *client)
{
    pond_bench_events_t *events = self->events;
    for (size_t i = 0; i < pond_bench_events_count (events); i++) {
        if (zsys_interrupted) {
            snprintf (self->error, sizeof self->error, "interrupted");
            return -1;
        }
        int64_t sent = pond_bench_now_ns ();
        pond_ack_t ack;
        size_t size;
        const uint8_t *bytes = pond_bench_events_bytes (events, i, &size);
        if (pond_client_publish_bytes (client, pond_bench_events_id (events, i), bytes, size,
                                       &ack)) {
            snprintf (self->error, sizeof self->error, "publish %zu: %d %s", i,
                      pond_client_code (client), pond_client_reason (client));
            return -1;
        }
        self->latency [i] = pond_bench_now_ns () - sent;
    }
    return 0;
}

static int
s_producer_fail (bench_producer_t *self, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

static int
s_producer_fail (bench_producer_t *self, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (self->error, sizeof self->error, format, args);
    va_end (args);
    self->rc = -1;
    return -1;
}

//  Get ready to pipeline from start (monotonic ns). Keeps window publishes
//  outstanding; open loop (rate > 0): no window, event i is due at
//  start + i / rate. Returns 0 or -1.
static int
s_pipe_start (bench_producer_t *self, int64_t start)
{
    size_t count = pond_bench_events_count (self->events);
    bool open_loop = self->rate > 0;
    self->window_size = open_loop? count: (size_t) self->window;
    self->interval = open_loop? (int64_t) (1e9 / self->rate): 0;
    self->state = calloc (count? count: 1, 1);
    if (!self->sent_at)
        self->sent_at = self->own_sent_at = calloc (count? count: 1, sizeof (int64_t));
    self->queue_size = self->window_size + 1;
    self->resend = calloc (self->queue_size, sizeof (size_t));
    self->resend_at = calloc (self->queue_size, sizeof (int64_t));
    self->start = self->last_reply = start;
    if (!self->state || !self->sent_at || !self->resend || !self->resend_at)
        return s_producer_fail (self, "out of memory");
    return 0;
}

static void
s_pipe_stop (bench_producer_t *self)
{
    free (self->state);
    free (self->own_sent_at);
    free (self->resend);
    free (self->resend_at);
    if (self->sent_at == self->own_sent_at)
        self->sent_at = NULL;
    self->state = NULL;
    self->own_sent_at = NULL;
    self->resend = NULL;
    self->resend_at = NULL;
}

static bool
s_pipe_done (bench_producer_t *self)
{
    return self->rc || self->acked == pond_bench_events_count (self->events);
}

//  Send what is due at now: resends whose retry_ms is up, then new events
//  while the window has room (open loop: every event whose scheduled time
//  has come). Returns 0 or -1.
static int
s_pipe_send (bench_producer_t *self, int64_t now)
{
    pond_bench_events_t *events = self->events;
    size_t size;
    const uint8_t *bytes;
    while (self->resend_count && self->resend_at [self->resend_head] <= now) {
        size_t i = self->resend [self->resend_head];
        self->resend_head = (self->resend_head + 1) % self->queue_size;
        self->resend_count--;
        if (self->state [i] != 2)
            continue;
        bytes = pond_bench_events_bytes (events, i, &size);
        if (pond_client_send_bytes (self->client, bytes, size))
            return s_producer_fail (self, "resend: %d %s", pond_client_code (self->client),
                                pond_client_reason (self->client));
        self->state [i] = 1;
        self->dirty = true;
    }
    bool open_loop = self->interval > 0;
    while (self->in_flight < self->window_size && self->next < pond_bench_events_count (events)) {
        size_t i = self->next;
        int64_t due = self->start + (int64_t) i * self->interval;
        if (open_loop && due > now)
            break;
        if (self->in_flight == 0)
            self->last_reply = now;     //  Nothing was outstanding: no stall
        __atomic_store_n (&self->sent_at [i], open_loop? due: now, __ATOMIC_RELEASE);
        bytes = pond_bench_events_bytes (events, i, &size);
        if (pond_client_send_bytes (self->client, bytes, size))
            return s_producer_fail (self, "send: %d %s", pond_client_code (self->client),
                                pond_client_reason (self->client));
        self->state [i] = 1;
        self->next++;
        self->in_flight++;
        self->dirty = true;
    }
    return 0;
}

//  Read every reply the socket holds now, without waiting: an ACK ends its
//  event's latency; a NACK 503 queues the event for a resend after
//  retry_ms; any other NACK fails the run. Returns 0 or -1.
static int
s_pipe_read (bench_producer_t *self)
{
    while (true) {
        pond_ack_t ack;
        pond_nack_t nack;
        int got = pond_client_recv (self->client, 0, &ack, &nack);
        if (got < 0)
            return pond_client_code (self->client) == POND_CODE_INTERRUPTED
                 ? s_producer_fail (self, "interrupted"): 0;
        int64_t now = pond_bench_now_ns ();
        self->last_reply = now;
        if (got == 1) {
            long i = pond_bench_events_index (self->events, self->index, ack.id);
            if (i >= 0 && self->state [i] != 3) {
                self->latency [i] = now - self->sent_at [i];
                self->state [i] = 3;
                self->in_flight--;
                if (++self->acked == pond_bench_events_count (self->events))
                    self->end = now;
            }
            continue;
        }
        long i = nack.has_id? pond_bench_events_index (self->events, self->index, nack.id): -1;
        if (nack.code != POND_CODE_UNAVAILABLE || i < 0)
            return s_producer_fail (self, "NACK %u: %s", nack.code, nack.reason);
        if (self->state [i] != 1)
            continue;
        if (self->resend_count == self->queue_size)
            return s_producer_fail (self, "resend queue full");
        self->nacks++;
        self->state [i] = 2;
        size_t tail = (self->resend_head + self->resend_count) % self->queue_size;
        self->resend [tail] = (size_t) i;
        self->resend_at [tail] = now + (int64_t) (nack.retry_ms? nack.retry_ms: 100) * 1000000;
        self->resend_count++;
    }
}

//  When this producer must act even if no reply comes: its next scheduled
//  send (open loop) or its next resend; INT64_MAX if only a reply can
//  move it on.
static int64_t
s_pipe_wake (bench_producer_t *self)
{
    int64_t wake = INT64_MAX;
    if (self->interval > 0 && self->next < pond_bench_events_count (self->events))
        wake = self->start + (int64_t) self->next * self->interval;
    if (self->resend_count && self->resend_at [self->resend_head] < wake)
        wake = self->resend_at [self->resend_head];
    return wake;
}

//  The event loop: drive count producers, each with its client connected,
//  from this one thread until every event is ACKed or one fails. It sends
//  whatever is due, then sleeps in ppoll (a nanosecond timeout, where
//  zmq_poll has milliseconds: open loop at 10k events/s sends every
//  100 us) on the sockets' ZMQ_FD until a reply or the next send time,
//  whichever comes first. The fds are edge-triggered, as zmq_poll knows:
//  a socket we sent on is checked with ZMQ_EVENTS before we sleep, one
//  whose fd fires is read until empty. Returns 0 or -1 (reasons in the
//  producers' error).
static int
s_loop_run (bench_producer_t *producers, int count)
{
    struct pollfd *fds = calloc ((size_t) count, sizeof (struct pollfd));
    if (!fds)
        return s_producer_fail (&producers [0], "out of memory");
    int64_t start = pond_bench_now_ns ();
    int rc = 0;
    for (int c = 0; c < count; c++) {
        bench_producer_t *self = &producers [c];
        rc |= s_pipe_start (self, start);
        fds [c].fd = zsock_fd (pond_client_sock (self->client));
        fds [c].events = POLLIN;
    }
    int done = 0;
    while (rc == 0 && done < count) {
        if (zsys_interrupted) {
            rc = s_producer_fail (&producers [0], "interrupted");
            break;
        }
        //  Send what is due; then look at the sockets we sent on: a send
        //  may have taken the signal of a reply that came meanwhile
        int64_t now = pond_bench_now_ns ();
        bool progress = false;
        for (int c = 0; c < count && rc == 0; c++) {
            bench_producer_t *self = &producers [c];
            if (s_pipe_done (self))
                continue;
            rc = s_pipe_send (self, now);
            if (rc == 0 && self->dirty) {
                self->dirty = false;
                if (zsock_events (pond_client_sock (self->client)) & ZMQ_POLLIN) {
                    rc = s_pipe_read (self);
                    progress = true;
                }
            }
        }
        if (rc)
            break;
        //  Sleep until a reply or the earliest timer, at most 100 ms
        int64_t wake = now + 100000000;
        done = 0;
        for (int c = 0; c < count; c++) {
            bench_producer_t *self = &producers [c];
            if (s_pipe_done (self)) {
                done++;
                fds [c].fd = -1;        //  ppoll ignores it
                continue;
            }
            int64_t at = s_pipe_wake (self);
            if (at < wake)
                wake = at;
            if (self->in_flight
            &&  now - self->last_reply > (int64_t) POND_BENCH_REPLY_WAIT * 1000000) {
                rc = s_producer_fail (self, "no ACK or NACK for %d ms (%zu of %zu ACKed)",
                                  POND_BENCH_REPLY_WAIT, self->acked,
                                  pond_bench_events_count (self->events));
                break;
            }
        }
        if (rc || done == count || progress)
            continue;
        int64_t wait = wake - pond_bench_now_ns ();
        if (wait <= 0)
            continue;
        struct timespec timeout = { (time_t) (wait / 1000000000), (long) (wait % 1000000000) };
        int ready = ppoll (fds, (nfds_t) count, &timeout, NULL);
        if (ready < 0 && errno != EINTR) {
            rc = s_producer_fail (&producers [0], "ppoll: %s", strerror (errno));
            break;
        }
        for (int c = 0; c < count && ready > 0 && rc == 0; c++)
            if (fds [c].fd >= 0 && fds [c].revents)
                rc = s_pipe_read (&producers [c]);
    }
    for (int c = 0; c < count; c++) {
        if (producers [c].end == 0)
            producers [c].end = pond_bench_now_ns ();
        s_pipe_stop (&producers [c]);
    }
    free (fds);
    return rc? -1: 0;
}

//  Encode the producer's events, connect its client and check with PING
//  that the broker answers. Returns 0 or -1 (reason in error).
static int
s_producer_prepare (bench_producer_t *self)
{
    const pond_bench_publish_t *publish = self->publish;
    self->events = pond_bench_events_new (self->index, self->first, self->count, publish->names,
                                          publish->names_count, publish->entities,
                                          publish->ts_base, publish->size);
    if (!self->events)
        return s_producer_fail (self, "cannot encode the events");
    self->bytes = pond_bench_events_size (self->events);
    self->client = pond_client_new (self->ingest);
    if (!self->client)
        return s_producer_fail (self, "cannot connect to %s", self->ingest);
    //  Long waits: a slow ACK is a figure to report, not a reason to resend
    pond_client_set_timeout (self->client, 10000, 3);
    if (pond_client_ping (self->client, 10000))
        return s_producer_fail (self, "broker not answering PING: %s",
                            pond_client_reason (self->client));
    return 0;
}

static void
s_producer_finish (bench_producer_t *self)
{
    if (self->client)
        self->retries = pond_client_retries (self->client);
    pond_client_destroy (&self->client);
    pond_bench_events_destroy (&self->events);
}

//  One producer thread: prepare, wait for the others, publish.
static void *
s_producer_run (void *args)
{
    bench_producer_t *self = (bench_producer_t *) args;
    pond_thread_block_signals (NULL);   //  main takes Ctrl-C; the loop sees zsys_interrupted
    //  Encode first, every thread at once; the clock has not started yet
    s_producer_prepare (self);
    //  Everyone starts together, connected, whatever happened
    if (pthread_barrier_wait (self->barrier) == PTHREAD_BARRIER_SERIAL_THREAD)
        *self->cpu_start = pond_bench_self_cpu ();
    self->start = pond_bench_now_ns ();
    if (self->rc == 0) {
        if (self->window <= 1 && self->rate <= 0)
            self->rc = s_producer_sync (self, self->client);
        else
            s_loop_run (self, 1);
    }
    if (self->end == 0)
        self->end = pond_bench_now_ns ();
    s_producer_finish (self);
    return NULL;
}

//  Publish run->total events from run->producers producers, all starting
//  together: each in a thread of its own, or (run->loop) all from this
//  thread's event loop. Fills result (caller frees result->latency).
//  Returns 0 or -1 (reason printed).
int
pond_bench_publish_run (const char *ingest, const pond_bench_publish_t *run,
                        pond_bench_publish_result_t *result)
{
    memset (result, 0, sizeof *result);
    int producers = run->producers;
    size_t total = run->total;
    bench_producer_t *producer = calloc ((size_t) producers, sizeof (bench_producer_t));
    pthread_t *threads = calloc ((size_t) producers, sizeof (pthread_t));
    result->latency = calloc (total? total: 1, sizeof (int64_t));
    if (!producer || !threads || !result->latency) {
        fprintf (stderr, "pond-bench: out of memory\n");
        free (producer);
        free (threads);
        return -1;
    }
    int rc = 0;
    size_t first = 0;
    for (int p = 0; p < producers; p++) {
        size_t count = total / (size_t) producers + ((size_t) p < total % (size_t) producers);
        producer [p].index = run->index_base + p;
        producer [p].ingest = ingest;
        producer [p].window = run->window;
        producer [p].rate = run->rate / producers;
        producer [p].first = run->first + first;
        producer [p].count = count;
        producer [p].publish = run;
        producer [p].latency = result->latency + first;
        producer [p].sent_at = run->sent_at? run->sent_at + first: NULL;
        first += count;
    }
    double cpu_start = 0;
    if (run->loop) {
        int ready = 0;
        for (int p = 0; p < producers && ready == p; p++)
            ready += s_producer_prepare (&producer [p]) == 0;
        cpu_start = pond_bench_self_cpu ();
        if (ready == producers)
            s_loop_run (producer, producers);
        for (int p = 0; p < producers; p++)
            s_producer_finish (&producer [p]);
    }
    else {
        pthread_barrier_t barrier;
        pthread_barrier_init (&barrier, NULL, (unsigned) producers);
        int started;
        for (started = 0; started < producers; started++) {
            producer [started].barrier = &barrier;
            producer [started].cpu_start = &cpu_start;
            if (pthread_create (&threads [started], NULL, s_producer_run, &producer [started]))
                break;
        }
        if (started < producers) {
            //  Cannot happen on a sane machine; the barrier would hang
            fprintf (stderr, "pond-bench: cannot start producer threads\n");
            abort ();
        }
        for (int p = 0; p < producers; p++)
            pthread_join (threads [p], NULL);
        pthread_barrier_destroy (&barrier);
    }
    result->cpu_s = pond_bench_self_cpu () - cpu_start;
    int64_t start = producer [0].start, end = producer [0].end;
    double bytes = 0;
    for (int p = 0; p < producers; p++) {
        if (producer [p].start && (producer [p].start < start || !start))
            start = producer [p].start;
        if (producer [p].end > end)
            end = producer [p].end;
        result->nacks += producer [p].nacks;
        result->retries += producer [p].retries;
        bytes += (double) producer [p].bytes;
        if (producer [p].rc) {
            fprintf (stderr, "pond-bench: producer %d: %s\n", p, producer [p].error);
            rc = -1;
        }
    }
    result->start = start;
    result->end = end;
    result->seconds = (double) (end - start) / 1e9;
    result->events = total;
    result->bytes_avg = total? bytes / (double) total: 0;
    pond_bench_sort_ns (result->latency, total);
    free (producer);
    free (threads);
    return rc;
}

//  Median round trip of count PINGs to endpoint (a broker's ingest socket,
//  or the store's link socket, which answers PING too), in microseconds;
