/*  pond_bench_publish: the load of pond-bench, N events from P producers.

    A producer is one pond_client_t, the pond_publisher_t that keeps its
    publishes in flight (resending after a NACK 503 or a timeout), and the
    events it publishes, tagged with their index so that latency is taken
    from our own send (or scheduled) time. s_loop_run drives one producer
    per thread, or every producer from one thread (as redis-benchmark
    drives its -c connections): it pushes what is due, takes results, and
    waits on the publishers' sockets until a reply, a scheduled resend
    (pond_publisher_due) or the next scheduled send.
*/
#define _GNU_SOURCE
#include "pond_bench.h"
#include "pond_thread.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    int index;    //  producer number, in the ids
    const char *ingest;
    int window;
    int batch;
    double rate;                            //  open loop: this producer's events/s (0: closed loop)
    size_t first;                           //  global index of its first event
    size_t count;                           //  events it publishes
    const pond_bench_publish_t *publish;    //  names, entities, ts and size of the events
    pond_bench_events_t *events;            //  encoded before the clock starts
    size_t bytes;                           //  their encoded size in all
    pond_client_t *client;
    pond_publisher_t *publisher;
    pthread_barrier_t *barrier;    //  threads: start together
    double *cpu_start;             //  threads: our CPU seconds once all are ready
    int64_t *latency;              //  per event: publish -> ACK, ns
    int64_t *sent_at;              //  per event: (scheduled) first send, ns, or NULL
    int64_t *own_sent_at;          //  sent_at when the caller gave none
    int64_t start;                 //  monotonic ns
    int64_t end;
    int64_t interval;    //  open loop: ns between scheduled sends
    int64_t due_at;      //  ns: the publisher's next resend or timeout
    zsock_t *sock;       //  the publisher's socket, as last polled
    size_t next, acked;
    uint64_t nacks;      //  NACK 503s (each resent, or final)
    uint64_t retries;    //  resends after a 503 or a timeout
    int rc;
    char error [POND_REASON_MAX + 192];
} bench_producer_t;

static int s_producer_fail (bench_producer_t *self, const char *format, ...)
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

//  Get ready to publish from start (monotonic ns): closed loop, window
//  events in flight; open loop (rate > 0), event i is due at
//  start + i / rate and the publisher holds as many as it takes (a bound
//  would delay sends, and latency counts from the scheduled time anyway).
//  Returns 0 or -1.
static int
s_pipe_start (bench_producer_t *self, int64_t start)
{
    size_t count = pond_bench_events_count (self->events);
    bool open_loop = self->rate > 0;
    size_t window = open_loop ? count : (size_t) self->window;
    if (window < 1)
        window = 1;
    if (window > INT_MAX / 2)
        window = INT_MAX / 2;
    self->interval = open_loop ? (int64_t) (1e9 / self->rate) : 0;
    if (!self->sent_at)
        self->sent_at = self->own_sent_at = calloc (count ? count : 1, sizeof (int64_t));
    self->start = start;
    if (!self->sent_at)
        return s_producer_fail (self, "out of memory");
    //  Only the window in events binds: bytes were never the bench's limit
    if (pond_publisher_set_window (self->publisher, (int) window, self->bytes + 1))
        return s_producer_fail (self, "window %zu: %s", window,
                                pond_publisher_reason (self->publisher));
    return 0;
}

static void
s_pipe_stop (bench_producer_t *self)
{
    if (self->sent_at == self->own_sent_at)
        self->sent_at = NULL;
    free (self->own_sent_at);
    self->own_sent_at = NULL;
}

static bool
s_pipe_done (bench_producer_t *self)
{
    return self->rc || self->acked == pond_bench_events_count (self->events);
}

//  Push new events while the publisher has room (open loop: every event
//  whose scheduled time has come). Returns 0 or -1.
static int
s_pipe_push (bench_producer_t *self, int64_t now)
{
    pond_bench_events_t *events = self->events;
    bool open_loop = self->interval > 0;
    while (self->next < pond_bench_events_count (events)
           && pond_publisher_room (self->publisher) > 0) {
        size_t i = self->next;
        int64_t due = self->start + (int64_t) i * self->interval;
        if (open_loop && due > now)
            break;
        __atomic_store_n (&self->sent_at [i], open_loop ? due : now, __ATOMIC_RELEASE);
        size_t size;
        const uint8_t *bytes = pond_bench_events_bytes (events, i, &size);
        if (pond_publisher_push (self->publisher, pond_bench_events_id (events, i), bytes, size, i))
            return s_producer_fail (self, "send %zu: %d %s", i,
                                    pond_publisher_code (self->publisher),
                                    pond_publisher_reason (self->publisher));
        self->next++;
    }
    return 0;
}

//  Take every result the publisher has now, without waiting: an ACK ends
//  its event's latency, anything else (a NACK other than 503, a 503 still
//  after the publisher's budget, no reply to 3 sends) fails the run.
//  Returns 0 or -1.
static int
s_pipe_take (bench_producer_t *self)
{
    pond_publish_result_t result;
    int got;
    while ((got = pond_publisher_next (self->publisher, 0, &result)) == 1) {
        if (result.code != POND_CODE_OK)
            return s_producer_fail (self, "event %" PRIu64 " after %d sends: %d %s", result.tag,
                                    result.sends, result.code, result.reason);
        int64_t now = pond_bench_now_ns ();
        self->latency [result.tag] = now - self->sent_at [result.tag];
        if (++self->acked == pond_bench_events_count (self->events))
            self->end = now;
    }
    return got < 0 ? s_producer_fail (self, "interrupted") : 0;
}

//  When this producer must act even if no reply comes: its next scheduled
//  send (open loop) or the publisher's next resend or timeout (kept in
//  due_at); INT64_MAX if only a reply can move it on.
static int64_t
s_pipe_wake (bench_producer_t *self, int64_t now)
{
    int due = pond_publisher_due (self->publisher);
    self->due_at = due < 0 ? INT64_MAX : now + (int64_t) due * 1000000;
    int64_t wake = self->due_at;
    if (self->interval > 0 && self->next < pond_bench_events_count (self->events)
        && pond_publisher_room (self->publisher) > 0) {
        int64_t send_at = self->start + (int64_t) self->next * self->interval;
        if (send_at < wake)
            wake = send_at;
    }
    return wake;
}

//  The event loop: drive count producers, each with its client connected,
//  from this one thread until every event is ACKed or one fails. It pushes
//  whatever is due and takes the results that came, then sleeps in ppoll
//  on the publishers' sockets' ZMQ_FD until a reply, a resend
//  (pond_publisher_due) or the next scheduled send, whichever comes first.
//  Not zmq_poll: it counts in milliseconds where open loop at 5k events/s
//  sends every 200 us, and it asks every socket for ZMQ_FD and ZMQ_EVENTS
//  on every call (with 50 clients that cost about 8 us of CPU per event).
//  The fds are edge-triggered: a socket we pushed on (a send may take the
//  signal of a reply that came meanwhile) is read until empty before we
//  sleep, one whose fd fires is read until empty next. Returns 0 or -1
//  (reasons in the producers' error).
static int
s_loop_run (bench_producer_t *producers, int count)
{
    struct pollfd *fds = calloc ((size_t) count, sizeof (struct pollfd));
    if (!fds)
        return s_producer_fail (&producers [0], "out of memory");
    int64_t start = pond_bench_now_ns ();
    int rc = 0;
    for (int c = 0; c < count; c++) {
        rc |= s_pipe_start (&producers [c], start);
        fds [c].fd = -1;
        fds [c].events = POLLIN;
    }
    while (rc == 0) {
        if (zsys_interrupted) {
            rc = s_producer_fail (&producers [0], "interrupted");
            break;
        }
        //  Push what is due, take what came, find the next timer
        int64_t now = pond_bench_now_ns ();
        int64_t wake = now + 100000000;
        bool progress = false;
        int done = 0;
        for (int c = 0; c < count && rc == 0; c++) {
            bench_producer_t *self = &producers [c];
            if (s_pipe_done (self)) {
                done++;
                fds [c].fd = -1;    //  ppoll ignores it
                continue;
            }
            size_t pushed = self->next, acked = self->acked;
            rc = s_pipe_push (self, now);
            if (rc == 0 && (self->next != pushed || fds [c].revents || self->due_at <= now))
                rc = s_pipe_take (self);
            fds [c].revents = 0;
            progress |= self->acked != acked;
            int64_t at = s_pipe_wake (self, now);
            if (at < wake)
                wake = at;
            zsock_t *sock = pond_publisher_sock (self->publisher);
            if (sock != self->sock) {    //  New, or the client made a new one
                self->sock = sock;
                fds [c].fd = sock ? zsock_fd (sock) : -1;
            }
        }
        if (rc || done == count)
            break;
        if (progress)
            continue;    //  ACKs made room: push at once
        int64_t wait = wake - pond_bench_now_ns ();
        if (wait <= 0)
            continue;
        struct timespec timeout = { (time_t) (wait / 1000000000), (long) (wait % 1000000000) };
        if (ppoll (fds, (nfds_t) count, &timeout, NULL) < 0 && errno != EINTR) {
            rc = s_producer_fail (&producers [0], "ppoll: %s", strerror (errno));
            break;
        }
    }
    for (int c = 0; c < count; c++) {
        if (producers [c].end == 0)
            producers [c].end = pond_bench_now_ns ();
        s_pipe_stop (&producers [c]);
    }
    free (fds);
    return rc ? -1 : 0;
}

//  Encode the producer's events, connect its client and check with PING
//  that the broker answers. Returns 0 or -1 (reason in error).
static int
s_producer_prepare (bench_producer_t *self)
{
    const pond_bench_publish_t *publish = self->publish;
    self->events = pond_bench_events_new (self->index, self->first, self->count, publish->names,
                                          publish->names_count, publish->entities, publish->ts_base,
                                          publish->size);
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
    self->publisher = pond_publisher_new (self->client);
    if (!self->publisher)
        return s_producer_fail (self, "out of memory");
    pond_publisher_set_timeout (self->publisher, 10000, 3);
    if (self->batch > 1)
        pond_publisher_set_batch (self->publisher, self->batch, 0);
    return 0;
}

static void
s_producer_finish (bench_producer_t *self)
{
    if (self->publisher) {
        self->nacks = pond_publisher_unavailable (self->publisher);
        self->retries = pond_publisher_retries (self->publisher);
    }
    pond_publisher_destroy (&self->publisher);
    pond_client_destroy (&self->client);
    pond_bench_events_destroy (&self->events);
}

//  One producer thread: prepare, wait for the others, publish.
static void *
s_producer_run (void *args)
{
    bench_producer_t *self = (bench_producer_t *) args;
    pond_thread_block_signals (NULL);    //  main takes Ctrl-C; the loop sees zsys_interrupted
    //  Encode first, every thread at once; the clock has not started yet
    s_producer_prepare (self);
    //  Everyone starts together, connected, whatever happened
    if (pthread_barrier_wait (self->barrier) == PTHREAD_BARRIER_SERIAL_THREAD)
        *self->cpu_start = pond_bench_self_cpu ();
    self->start = pond_bench_now_ns ();
    if (self->rc == 0)
        s_loop_run (self, 1);
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
    result->latency = calloc (total ? total : 1, sizeof (int64_t));
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
        producer [p].batch = run->batch;
        producer [p].rate = run->rate / producers;
        producer [p].first = run->first + first;
        producer [p].count = count;
        producer [p].publish = run;
        producer [p].latency = result->latency + first;
        producer [p].sent_at = run->sent_at ? run->sent_at + first : NULL;
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
    result->bytes_avg = total ? bytes / (double) total : 0;
    pond_bench_sort_ns (result->latency, total);
    free (producer);
    free (threads);
    return rc;
}

//  Median round trip of count PINGs to endpoint (a broker's ingest socket,
//  or the store's link socket, which answers PING too), in microseconds;
