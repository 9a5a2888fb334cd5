/*  test_signals: SIGTERM and SIGINT to pond-store while 50 producers
    publish through the real broker, 20 times at random moments, the
    store restarted each time. Every ACK must name an event that is in
    the log: at the end every ACKed id is stored exactly once with the
    seq its ACK named, seqs run 1..head without a hole, and no seq was
    ever ACKed for two ids; each time the store stops cleanly (exit 0,
    not SIGKILL after 5 s); and the broker stays up throughout.

    A signal sent to a process goes to any of its threads that does not
    block it (Linux picks the main thread unless it already has one
    pending, as when SIGTERM and SIGINT come together). So each stop
    sends the signal to every other thread of the store first (what a
    second signal does when the main thread still has the first
    pending), lets the producers go on for a moment, then signals the
    process: a worker thread that takes a signal must not end early, and
    its end must not be taken for "written".
*/
#include <criterion/criterion.h>
#include <czmq.h>
#include <dirent.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pond_client.h"
#include "pond_harness.h"

#define PRODUCERS    50
#define PER_PRODUCER 4000    //  events each may send at most
#define WINDOW       8       //  pipelined producers; odd ones wait for each ACK
#define RESEND_MS    1500
#ifdef POND_SANITIZE_BUILD
#define STOPS 8
#else
#define STOPS 20
#endif

typedef struct {
    uint8_t *bytes;
    size_t size;
    uint8_t id [POND_ID_SIZE];
    int state;    //  0 unsent, 1 outstanding, 2 acked
    int64_t sent_at;
    uint64_t seq;
} sent_t;

typedef struct {
    pond_client_t *client;
    sent_t *sent;
    size_t next;      //  first unsent
    size_t oldest;    //  first not ACKed
    size_t outstanding;
    size_t window;
} producer_t;

static pond_mesh_t *mesh;

static void
s_setup (void)
{
    mesh = pond_harness_mesh_up ();
}

static void
s_teardown (void)
{
    pond_mesh_destroy (&mesh);
}

//  Send signo to every thread of pid but its main one. Returns how many.
static int
s_signal_threads (pid_t pid, int signo)
{
    char path [64];
    snprintf (path, sizeof path, "/proc/%d/task", (int) pid);
    DIR *dir = opendir (path);
    int count = 0;
    struct dirent *entry;
    while (dir && (entry = readdir (dir))) {
        pid_t tid = (pid_t) atoi (entry->d_name);
        if (tid > 0 && tid != pid && syscall (SYS_tgkill, pid, tid, signo) == 0)
            count++;
    }
    if (dir)
        closedir (dir);
    return count;
}

//  Read every reply queued for one producer; fail on an ACK that
//  contradicts an earlier one (seq_owner: seq -> index + 1 into ids).
static void
s_read_replies (producer_t *producer, zhashx_t *by_id, zhashx_t *seq_owner, size_t *acked)
{
    char key [33];
    pond_ack_t ack;
    pond_nack_t nack;
    int rc;
    while ((rc = pond_client_recv (producer->client, 0, &ack, &nack)) >= 0) {
        int64_t now = zclock_mono ();
        if (rc == 1) {
            sent_t *item = (sent_t *) zhashx_lookup (by_id, pond_harness_id_hex (ack.id, key));
            cr_assert_not_null (item, "ACK for an id we never sent");
            char seq_key [32];
            snprintf (seq_key, sizeof seq_key, "%" PRIu64, ack.seq);
            sent_t *owner = (sent_t *) zhashx_lookup (seq_owner, seq_key);
            cr_assert (!owner || owner == item,
                       "seq %" PRIu64 " was ACKed for two ids: a "
                       "reply named a seq that was never written",
                       ack.seq);
            if (item->state == 2)
                cr_assert_eq (ack.seq, item->seq,
                              "a second ACK must name the same seq "
                              "(%" PRIu64 " then %" PRIu64 ")",
                              item->seq, ack.seq);
            else {
                zhashx_insert (seq_owner, seq_key, item);
                if (item->state == 1)
                    producer->outstanding--;
                item->state = 2;
                item->seq = ack.seq;
                (*acked)++;
            }
        }
        else {
            cr_assert_eq (nack.code, POND_CODE_UNAVAILABLE, "NACK %u: %s", nack.code, nack.reason);
            sent_t *item = nack.has_id
                             ? (sent_t *) zhashx_lookup (by_id, pond_harness_id_hex (nack.id, key))
                             : NULL;
            if (item && item->state == 1)
                item->sent_at = now - RESEND_MS + (int64_t) nack.retry_ms;
        }
    }
}

//  Send what the windows allow (new events only while more is wanted),
//  and resend what was not answered in time.
static void
s_send_some (producer_t *producer, bool more)
{
    int64_t now = zclock_mono ();
    while (more && producer->outstanding < producer->window && producer->next < PER_PRODUCER) {
        sent_t *item = &producer->sent [producer->next++];
        cr_assert_eq (pond_client_send_bytes (producer->client, item->bytes, item->size), 0, "%s",
                      pond_client_reason (producer->client));
        item->state = 1;
        item->sent_at = now;
        producer->outstanding++;
    }
    while (producer->oldest < producer->next && producer->sent [producer->oldest].state == 2)
        producer->oldest++;
    for (size_t i = producer->oldest; i < producer->next; i++) {
        sent_t *item = &producer->sent [i];
        if (item->state == 1 && now - item->sent_at > RESEND_MS) {
            //  Same bytes, same id: safe whatever happened to the first
            pond_client_send_bytes (producer->client, item->bytes, item->size);
            item->sent_at = now;
        }
    }
}

//  A replay of the whole log, once the broker reaches the store again.
static pond_reader_t *
s_replay_all (void)
{
    pond_replay_req_t request = { .from_seq = 1 };
    int64_t deadline = zclock_mono () + 10000;
    while (true) {
        pond_reader_t *replay = pond_reader_new (mesh->control, &request);
        cr_assert_not_null (replay);
        pond_event_t *event = pond_reader_next (replay, 2000);
        pond_event_destroy (&event);
        if (pond_reader_code (replay) != POND_CODE_UNAVAILABLE || zclock_mono () > deadline) {
            pond_reader_destroy (&replay);
            return pond_reader_new (mesh->control, &request);
        }
        pond_reader_destroy (&replay);
        zclock_sleep (50);
    }
}

Test (signals, store_stopped_by_signal_acks_only_what_it_wrote, .init = s_setup, .fini = s_teardown,
      .timeout = 170)
{
    char err [POND_ERR_SIZE];
    char key [33];
    zhashx_t *by_id = zhashx_new ();
    zhashx_t *seq_owner = zhashx_new ();
    producer_t producers [PRODUCERS];
    zmq_pollitem_t items [PRODUCERS];
    for (int p = 0; p < PRODUCERS; p++) {
        producer_t *producer = &producers [p];
        memset (producer, 0, sizeof *producer);
        producer->client = pond_client_new (mesh->ingest);
        cr_assert_not_null (producer->client);
        pond_client_set_timeout (producer->client, 500, 0);    //  a send waits 500 ms at most
        producer->window = p % 2 ? 1 : WINDOW;
        producer->sent = calloc (PER_PRODUCER, sizeof (sent_t));
        cr_assert_not_null (producer->sent);
        char entity [32];
        snprintf (entity, sizeof entity, "cust-sig-%d", p);
        for (size_t i = 0; i < PER_PRODUCER; i++) {
            pond_event_t *event = pond_event_new (i % 3 ? "QUACKED" : "BUTTON_CLICKED", entity);
            sent_t *item = &producer->sent [i];
            item->bytes = pond_event_encode (event, &item->size, err, sizeof err);
            cr_assert_not_null (item->bytes, "%s", err);
            memcpy (item->id, pond_event_id (event), POND_ID_SIZE);
            zhashx_insert (by_id, pond_harness_id_hex (item->id, key), item);
            pond_event_destroy (&event);
        }
    }
    unsigned int seed = (unsigned int) getpid () ^ (unsigned int) zclock_usecs ();
    fprintf (stderr, "signals test: seed %u\n", seed);
    size_t acked = 0, stops = 0, thread_signals = 0;
    bool threads_signalled = false;
    int64_t stop_at = zclock_mono () + 200 + rand_r (&seed) % 600;
    int64_t deadline = zclock_mono () + 150000;
    while (zclock_mono () < deadline) {
        //  The broker lives through every stop of the store: its link
        //  ending in the middle of a reply once aborted it inside libzmq
        //  (fq.cpp: !_more, with ZMQ_IMMEDIATE on the link)
        int broker_status;
        if (waitpid (mesh->broker, &broker_status, WNOHANG) == mesh->broker) {
            mesh->broker = 0;    //  reaped
            cr_assert_fail ("pond-broker died (%s %d) after %zu stops; see %s/broker.log",
                            WIFSIGNALED (broker_status) ? "signal" : "exit code",
                            WIFSIGNALED (broker_status) ? WTERMSIG (broker_status)
                                                        : WEXITSTATUS (broker_status),
                            stops, mesh->dir);
        }
        bool more = stops < STOPS;
        size_t outstanding = 0;
        for (int p = 0; p < PRODUCERS; p++) {
            s_send_some (&producers [p], more);
            outstanding += producers [p].outstanding;
        }
        if (!more && outstanding == 0)
            break;
        for (int p = 0; p < PRODUCERS; p++) {
            void *sock = pond_client_sock (producers [p].client);
            cr_assert_not_null (sock);
            items [p] = (zmq_pollitem_t) { zsock_resolve (sock), 0, ZMQ_POLLIN, 0 };
        }
        zmq_poll (items, PRODUCERS, 50);
        for (int p = 0; p < PRODUCERS; p++)
            s_read_replies (&producers [p], by_id, seq_owner, &acked);
        int signo = stops % 2 ? SIGINT : SIGTERM;
        if (more && !threads_signalled && zclock_mono () >= stop_at) {
            //  As if the main thread had one pending: a worker takes it.
            //  Traffic goes on for a moment (a worker blocks it; without
            //  that the store stops by itself), then the process gets it.
            thread_signals += s_signal_threads (mesh->store, signo);
            threads_signalled = true;
            stop_at = zclock_mono () + 50 + rand_r (&seed) % 150;
        }
        else if (more && threads_signalled && zclock_mono () >= stop_at) {
            threads_signalled = false;
            //  Both at once, as a supervisor and a Ctrl-C might: the
            //  second finds the first pending in the main thread
            kill (mesh->store, signo == SIGTERM ? SIGINT : SIGTERM);
            int status = pond_harness_stop (mesh->store, signo);
            cr_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0,
                       "pond-store did not stop cleanly on signal %d (%s %d): a worker that "
                       "took a signal left it stuck",
                       signo, WIFSIGNALED (status) ? "killed by signal" : "exit code",
                       WIFSIGNALED (status) ? WTERMSIG (status) : WEXITSTATUS (status));
            cr_assert_eq (pond_mesh_start_store (mesh), 0, "store restarts after signal %d", signo);
            stops++;
            stop_at = zclock_mono () + 100 + rand_r (&seed) % 700;
        }
    }
    cr_assert_eq (stops, STOPS);
    size_t sent_total = 0;
    for (int p = 0; p < PRODUCERS; p++) {
        sent_total += producers [p].next;
        cr_assert_eq (producers [p].outstanding, 0, "producer %d still waits for %zu ACKs", p,
                      producers [p].outstanding);
    }
    cr_assert_eq (acked, sent_total);

    //  A last clean restart, then the log: seq 1..head without a hole,
    //  each id once, with its ACKed seq
    pond_harness_stop (mesh->store, SIGTERM);
    cr_assert_eq (pond_mesh_start_store (mesh), 0);
    pond_reader_t *replay = s_replay_all ();
    zhashx_t *seen = zhashx_new ();
    uint64_t expected = 1;
    pond_event_t *event;
    while ((event = pond_reader_next (replay, 10000))) {
        cr_assert_eq (pond_event_seq (event), expected, "hole or disorder in seq at %" PRIu64,
                      expected);
        pond_harness_id_hex (pond_event_id (event), key);
        cr_assert_null (zhashx_lookup (seen, key), "id stored twice");
        zhashx_insert (seen, key, (void *) 1);
        sent_t *item = (sent_t *) zhashx_lookup (by_id, key);
        cr_assert_not_null (item, "stored an event nobody sent");
        cr_assert_eq (item->seq, expected,
                      "seq %" PRIu64 " holds an event ACKed with seq %" PRIu64
                      ": an ACK named a seq that was never written",
                      expected, item->seq);
        expected++;
        pond_event_destroy (&event);
    }
    cr_assert_eq (pond_reader_code (replay), 200, "replay: %s", pond_reader_reason (replay));
    cr_assert_eq (expected - 1, acked, "stored %" PRIu64 " events, acked %zu", expected - 1, acked);
    fprintf (stderr,
             "signals test: %zu events acked and stored once, seq 1..%" PRIu64
             " without a hole, %zu stops (SIGTERM/SIGINT), %zu thread-directed signals, the "
             "broker up throughout\n",
             acked, expected - 1, stops, thread_signals);
    pond_reader_destroy (&replay);
    zhashx_destroy (&seen);
    for (int p = 0; p < PRODUCERS; p++) {
        pond_client_destroy (&producers [p].client);
        for (size_t i = 0; i < PER_PRODUCER; i++)
            free (producers [p].sent [i].bytes);
        free (producers [p].sent);
    }
    zhashx_destroy (&seq_owner);
    zhashx_destroy (&by_id);
}
