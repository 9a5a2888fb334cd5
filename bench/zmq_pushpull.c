/*  pond-zmq-pushpull: raw libzmq fan-out, the limit for pond's live
    delivery to subscribers.

        pond-zmq-pushpull [--receivers N] [--messages M] [--size B] [--dir DIR]

    The shape, chosen to match what pond's broker does for N subscribers:
    one sender thread owns N PUSH sockets, each bound to its own ipc
    endpoint in DIR; N receiver threads each connect one PULL socket to
    one of them. The sender sends every message to each of the N sockets
    in turn (one copy per receiver, as an XPUB socket fans out), so each
    receiver gets all M messages and the deliveries are N * M. A message
    has pond's pub shape: a topic frame ("QUACKED") and a body of B bytes
    (default 210, a stored ~200-byte event with its seq). High-water marks
    are libzmq's defaults (1000): a slow receiver blocks the sender, as
    nothing may be dropped. No encoding, no decoding, no storage: this is
    what the messaging alone can do on this machine.

    Prints one line: scenario=zmq_pushpull receivers=N messages=M
    deliveries=... seconds=... deliveries_per_s=... (from the first send to
    the last message received by any receiver).
*/
#define _GNU_SOURCE
#include "pond_thread.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define PUSHPULL_MAX_RECEIVERS 64
#define PUSHPULL_TOPIC         "QUACKED"

typedef struct {
    void *context;
    char endpoint [256];
    long messages;
    long received;
    int64_t last;    //  monotonic ns of the last message
    int rc;
} receiver_t;

static int64_t
s_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *
s_receiver_run (void *args)
{
    receiver_t *self = (receiver_t *) args;
    pond_thread_block_signals (NULL);    //  a signal must not fail a receive with EINTR
    void *pull = zmq_socket (self->context, ZMQ_PULL);
    if (!pull || zmq_connect (pull, self->endpoint)) {
        fprintf (stderr, "pond-zmq-pushpull: cannot connect to %s: %s\n", self->endpoint,
                 zmq_strerror (errno));
        self->rc = -1;
        if (pull)
            zmq_close (pull);
        return NULL;
    }
    int timeout = 10000;
    zmq_setsockopt (pull, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_msg_t msg;
    zmq_msg_init (&msg);
    while (self->received < self->messages) {
        //  Both frames of one message
        int more = 1;
        while (more) {
            if (zmq_msg_recv (&msg, pull, 0) < 0) {
                fprintf (stderr, "pond-zmq-pushpull: receive failed after %ld messages: %s\n",
                         self->received, zmq_strerror (errno));
                self->rc = -1;
                break;
            }
            more = zmq_msg_more (&msg);
        }
        if (self->rc)
            break;
        self->received++;
    }
    self->last = s_now_ns ();
    zmq_msg_close (&msg);
    zmq_close (pull);
    return NULL;
}

static void
s_usage (FILE *out)
{
    fprintf (out, "Usage: pond-zmq-pushpull [--receivers N] [--messages M] [--size B] [--dir DIR]\n"
                  "\n"
                  "One sender with N PUSH sockets sends M two-frame messages (topic + B bytes,\n"
                  "default 210) to each; N PULL receivers (threads, ipc endpoints in DIR,\n"
                  "default .) count them. Prints deliveries per second.\n");
}

int
main (int argc, char *argv [])
{
    int receivers = 1;
    long messages = 200000, size = 210;
    const char *dir = ".";
    static const struct option options [] = { { "receivers", required_argument, NULL, 'r' },
                                              { "messages", required_argument, NULL, 'm' },
                                              { "size", required_argument, NULL, 's' },
                                              { "dir", required_argument, NULL, 'd' },
                                              { "help", no_argument, NULL, 'h' },
                                              { NULL, 0, NULL, 0 } };
    int option;
    while ((option = getopt_long (argc, argv, "r:m:s:d:h", options, NULL)) != -1) {
        switch (option) {
            case 'r': receivers = atoi (optarg); break;
            case 'm': messages = atol (optarg); break;
            case 's': size = atol (optarg); break;
            case 'd': dir = optarg; break;
            case 'h': s_usage (stdout); return 0;
            default: s_usage (stderr); return 2;
        }
    }
    if (optind < argc || receivers < 1 || receivers > PUSHPULL_MAX_RECEIVERS || messages < 1
        || size < 1 || size > 1048576) {
        s_usage (stderr);
        return 2;
    }
    void *context = zmq_ctx_new ();
    void *push [PUSHPULL_MAX_RECEIVERS];
    receiver_t receiver [PUSHPULL_MAX_RECEIVERS];
    pthread_t thread [PUSHPULL_MAX_RECEIVERS];
    memset (receiver, 0, sizeof receiver);
    int rc = 0, bound = 0, started = 0;
    for (; bound < receivers; bound++) {
        receiver_t *self = &receiver [bound];
        self->context = context;
        self->messages = messages;
        snprintf (self->endpoint, sizeof self->endpoint, "ipc://%s/pushpull-%d-%d.ipc", dir,
                  (int) getpid (), bound);
        push [bound] = zmq_socket (context, ZMQ_PUSH);
        int linger = 0;
        zmq_setsockopt (push [bound], ZMQ_LINGER, &linger, sizeof linger);
        if (zmq_bind (push [bound], self->endpoint)) {
            fprintf (stderr, "pond-zmq-pushpull: cannot bind %s: %s\n", self->endpoint,
                     zmq_strerror (errno));
            zmq_close (push [bound]);
            rc = -1;
            break;
        }
    }
    for (; rc == 0 && started < receivers; started++)
        if (pthread_create (&thread [started], NULL, s_receiver_run, &receiver [started])) {
            fprintf (stderr, "pond-zmq-pushpull: cannot start a receiver thread\n");
            rc = -1;
            break;
        }
    char *body = malloc ((size_t) size);
    if (!body)
        rc = -1;
    else
        for (long i = 0; i < size; i++)
            body [i] = (char) ('a' + i % 26);
    //  PUSH blocks until a PULL is connected: the first message waits for
    //  every receiver, so the clock starts once all are connected
    int64_t start = 0;
    for (long m = 0; rc == 0 && m < messages; m++) {
        for (int r = 0; r < receivers; r++) {
            memcpy (body, &m, sizeof m < (size_t) size ? sizeof m : (size_t) size);
            if (zmq_send (push [r], PUSHPULL_TOPIC, strlen (PUSHPULL_TOPIC), ZMQ_SNDMORE) < 0
                || zmq_send (push [r], body, (size_t) size, 0) < 0) {
                fprintf (stderr, "pond-zmq-pushpull: send failed: %s\n", zmq_strerror (errno));
                rc = -1;
                break;
            }
        }
        if (m == 0)
            start = s_now_ns ();
    }
    int64_t last = start;
    long deliveries = 0;
    for (int r = 0; r < started; r++) {
        pthread_join (thread [r], NULL);
        if (receiver [r].rc)
            rc = -1;
        deliveries += receiver [r].received;
        if (receiver [r].last > last)
            last = receiver [r].last;
    }
    //  The first message is not timed (it waited for the connections)
    deliveries -= started;
    double seconds = (double) (last - start) / 1e9;
    if (rc == 0)
        printf ("scenario=zmq_pushpull receivers=%d messages=%ld size=%ld deliveries=%ld "
                "seconds=%.3f deliveries_per_s=%.0f\n",
                receivers, messages, size, deliveries, seconds,
                seconds > 0 ? (double) deliveries / seconds : 0.0);
    for (int r = 0; r < bound; r++) {
        zmq_close (push [r]);
        unlink (receiver [r].endpoint + strlen ("ipc://"));
    }
    free (body);
    zmq_ctx_term (context);
    return rc ? 1 : 0;
}
