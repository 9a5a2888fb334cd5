/*  test_store_writer: the store server's pipelined group commit under a
    failing disk. APPENDs sent back to back queue up behind the writer
    thread; with the write-fault hook on, every one gets APPENDED 500, in
    order, and nothing is stored; once the disk is back the same stream is
    stored gap-free and answered in seq order. (In-process store: the
    fault hook is not reachable from another process.) And stray signals
    delivered to the server's threads change no answer.
*/
#include <criterion/criterion.h>
#include <czmq.h>
#include <dirent.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pond_proto.h"
#include "pond_store.h"
#include "pond_store_server.h"

#define FAULT_APPENDS 8
#define FAULT_EVENTS  50    //  per APPEND

//  An in-process store server on ipc in a fresh directory, and a DEALER
//  connected to it
typedef struct {
    char dir [64];
    pond_store_t *store;
    pond_store_server_t *server;
    zactor_t *actor;
    zsock_t *dealer;
} served_t;

static void
s_serve (served_t *self)
{
    zsys_init ();
    snprintf (self->dir, sizeof self->dir, "/tmp/pond-test-writer-XXXXXX");
    cr_assert_not_null (mkdtemp (self->dir));
    char path [PATH_MAX], endpoint [PATH_MAX + 16];
    snprintf (path, sizeof path, "%s/store", self->dir);
    snprintf (endpoint, sizeof endpoint, "ipc://%s/store.ipc", self->dir);
    self->store = pond_store_new (path);
    cr_assert_not_null (self->store);
    self->server = pond_store_server_new (self->store, endpoint);
    cr_assert_not_null (self->server);
    self->actor = zactor_new (pond_store_server_actor, self->server);
    self->dealer = zsock_new (ZMQ_DEALER);
    zsock_set_linger (self->dealer, 0);
    cr_assert_eq (zsock_connect (self->dealer, "%s", endpoint), 0);
}

//  After zactor_destroy (&self->actor): close everything, remove the dir
static void
s_unserve (served_t *self)
{
    zactor_destroy (&self->actor);
    zsock_destroy (&self->dealer);
    pond_store_server_destroy (&self->server);
    pond_store_destroy (&self->store);
    char command [PATH_MAX + 16];
    snprintf (command, sizeof command, "rm -rf %s", self->dir);
    cr_assert_eq (system (command), 0);
}

//  FAULT_EVENTS new QUACKED events of entity, encoded, a frame each
static zmsg_t *
s_new_events (const char *entity)
{
    zmsg_t *msg = zmsg_new ();
    for (int i = 0; i < FAULT_EVENTS; i++) {
        pond_event_t *event = pond_event_new ("QUACKED", entity);
        char err [POND_ERR_SIZE];
        size_t size;
        uint8_t *data = pond_event_encode (event, &size, err, sizeof err);
        cr_assert_not_null (data, "%s", err);
        zmsg_addmem (msg, data, size);
        free (data);
        pond_event_destroy (&event);
    }
    return msg;
}

//  Send APPEND bid with (a copy of) the events
static void
s_send_append (zsock_t *dealer, uint64_t bid, zmsg_t *events)
{
    zmsg_t *msg = zmsg_dup (events);
    pond_append_t header = { .bid = bid };
    zframe_t *body = pond_append_encode (&header);
    zmsg_prepend (msg, &body);
    zmsg_pushstr (msg, POND_APPEND);
    cr_assert_eq (zmsg_send (&msg, dealer), 0);
}

//  Send APPEND bid with FAULT_EVENTS new events of entity
static void
s_fault_append (zsock_t *dealer, uint64_t bid, const char *entity)
{
    zmsg_t *events = s_new_events (entity);
    s_send_append (dealer, bid, events);
    zmsg_destroy (&events);
}

//  Receive one APPENDED: its bid and code, and its seqs into seqs.
static uint32_t
s_fault_appended (zsock_t *dealer, uint64_t *bid, uint64_t *seqs, size_t *count)
{
    zpoller_t *poller = zpoller_new (dealer, NULL);
    zmsg_t *msg = zpoller_wait (poller, 10000) ? zmsg_recv (dealer) : NULL;
    zpoller_destroy (&poller);
    cr_assert_not_null (msg, "no APPENDED");
    char *command = zmsg_popstr (msg);
    cr_assert_str_eq (command, POND_APPENDED);
    zframe_t *body = zmsg_pop (msg);
    pond_appended_t *reply = malloc (sizeof (pond_appended_t));
    char err [POND_ERR_SIZE];
    cr_assert_eq (pond_appended_decode (body, reply, err, sizeof err), 0, "%s", err);
    size_t fresh = 0;
    for (size_t i = 0; reply->code == POND_CODE_OK && i < reply->count; i++)
        fresh += !reply->dups [i];
    cr_assert_eq (zmsg_size (msg), fresh,
                  "one stored event frame per new event, none after a failure");
    *bid = reply->bid;
    *count = reply->count;
    memcpy (seqs, reply->seqs, reply->count * sizeof (uint64_t));
    uint32_t code = reply->code;
    free (reply);
    free (command);
    zframe_destroy (&body);
    zmsg_destroy (&msg);
    return code;
}

Test (store_writer, write_errors_under_pipelined_appends_store_nothing, .timeout = 60)
{
    served_t it;
    s_serve (&it);
    pond_store_t *store = it.store;
    zsock_t *dealer = it.dealer;

    //  The disk fails: APPENDs sent back to back (so groups queue up
    //  behind the writer) all get 500, in order, and nothing is stored
    pond_store_set_write_fault (store, true);
    for (uint64_t bid = 1; bid <= FAULT_APPENDS; bid++)
        s_fault_append (dealer, bid, "cust-fault");
    uint64_t seqs [POND_APPEND_MAX];
    for (uint64_t expect = 1; expect <= FAULT_APPENDS; expect++) {
        uint64_t bid;
        size_t count;
        cr_assert_eq (s_fault_appended (dealer, &bid, seqs, &count), POND_CODE_STORE_ERROR);
        cr_assert_eq (bid, expect, "APPENDED in the order of the APPENDs");
        cr_assert_eq (count, 0, "a failed batch answers no seqs");
    }
    cr_assert_eq (pond_store_head (store), 0, "nothing stored while the disk fails");

    //  The disk is back: the same pipelining stores everything, gap-free,
    //  answered in seq order
    pond_store_set_write_fault (store, false);
    for (uint64_t bid = 11; bid < 11 + FAULT_APPENDS; bid++)
        s_fault_append (dealer, bid, "cust-fault");
    uint64_t next = 1;
    for (uint64_t expect = 11; expect < 11 + FAULT_APPENDS; expect++) {
        uint64_t bid;
        size_t count;
        cr_assert_eq (s_fault_appended (dealer, &bid, seqs, &count), POND_CODE_OK);
        cr_assert_eq (bid, expect);
        cr_assert_eq (count, FAULT_EVENTS);
        for (size_t i = 0; i < count; i++)
            cr_assert_eq (seqs [i], next++, "gap-free after failed groups");
    }
    zactor_destroy (&it.actor);
    cr_assert_eq (pond_store_head (store), (uint64_t) FAULT_APPENDS * FAULT_EVENTS);
    s_unserve (&it);
}

//  The same events sent again right behind the first send (pipelined, so
//  the resend is prepared while the first group may still be syncing):
//  every resend gets the original seqs, and nothing is stored twice.
Test (store_writer, resend_in_flight_gets_original_seqs, .timeout = 60)
{
    served_t it;
    s_serve (&it);
    pond_store_t *store = it.store;
    zsock_t *dealer = it.dealer;

    //  Pairs of APPENDs: bid 2k-1 new events, bid 2k the same events
    for (uint64_t pair = 1; pair <= FAULT_APPENDS; pair++) {
        zmsg_t *events = s_new_events ("cust-resend");
        for (uint64_t bid = pair * 2 - 1; bid <= pair * 2; bid++)
            s_send_append (dealer, bid, events);
        zmsg_destroy (&events);
    }
    uint64_t first [POND_APPEND_MAX], again [POND_APPEND_MAX];
    uint64_t next = 1;
    for (uint64_t pair = 1; pair <= FAULT_APPENDS; pair++) {
        uint64_t bid;
        size_t count;
        cr_assert_eq (s_fault_appended (dealer, &bid, first, &count), POND_CODE_OK);
        cr_assert_eq (bid, pair * 2 - 1);
        cr_assert_eq (count, FAULT_EVENTS);
        for (size_t i = 0; i < count; i++)
            cr_assert_eq (first [i], next++, "gap-free");
        cr_assert_eq (s_fault_appended (dealer, &bid, again, &count), POND_CODE_OK);
        cr_assert_eq (bid, pair * 2);
        cr_assert_eq (count, FAULT_EVENTS);
        for (size_t i = 0; i < count; i++)
            cr_assert_eq (again [i], first [i], "a resend gets the original seq");
    }
    zactor_destroy (&it.actor);
    cr_assert_eq (pond_store_head (store), (uint64_t) FAULT_APPENDS * FAULT_EVENTS,
                  "nothing stored twice");
    s_unserve (&it);
}

//  The tids of this process's threads, into tids [max]; returns how many.
static size_t
s_threads (pid_t *tids, size_t max)
{
    DIR *dir = opendir ("/proc/self/task");
    cr_assert_not_null (dir);
    size_t count = 0;
    struct dirent *entry;
    while ((entry = readdir (dir)) && count < max)
        if (atoi (entry->d_name) > 0)
            tids [count++] = (pid_t) atoi (entry->d_name);
    closedir (dir);
    return count;
}

static void
s_ignore_signal (int signo)
{
    (void) signo;
}

#define SIGNAL_ROUNDS  150
#define SIGNAL_APPENDS 4    //  pipelined per round

//  A signal a process takes may be delivered to any thread that does not
//  block it, and with a handler installed without SA_RESTART (as CZMQ
//  installs its own) a blocking call in that thread fails with EINTR. The
//  server's threads block signals, so stray signals sent to each of them
//  while APPENDs stream in change nothing: every APPEND is answered, in
//  order, with gap-free seqs, and the log holds exactly what was answered.
Test (store_writer, signals_to_server_threads_change_no_answer, .timeout = 60)
{
    struct sigaction action = { .sa_handler = s_ignore_signal };    //  no SA_RESTART
    sigemptyset (&action.sa_mask);
    cr_assert_eq (sigaction (SIGUSR1, &action, NULL), 0);
    pid_t before [256], after [256];
    size_t nbefore = s_threads (before, 256);
    served_t it;
    s_serve (&it);
    //  The server's threads: those that were not there before
    size_t nafter = s_threads (after, 256);
    pid_t server_threads [256];
    size_t nserver = 0;
    for (size_t i = 0; i < nafter; i++) {
        bool old = false;
        for (size_t j = 0; j < nbefore; j++)
            old = old || after [i] == before [j];
        if (!old)
            server_threads [nserver++] = after [i];
    }
    cr_assert_gt (nserver, 1, "the server runs threads");
    uint64_t seqs [POND_APPEND_MAX];
    uint64_t next = 1, bid = 0, signals = 0;
    for (int round = 0; round < SIGNAL_ROUNDS; round++) {
        for (int i = 0; i < SIGNAL_APPENDS; i++) {
            s_fault_append (it.dealer, ++bid, "cust-signal");
            //  While the groups are prepared and synced, and while idle
            for (size_t t = 0; t < nserver; t++)
                signals += syscall (SYS_tgkill, getpid (), server_threads [t], SIGUSR1) == 0;
        }
        for (uint64_t expect = bid - SIGNAL_APPENDS + 1; expect <= bid; expect++) {
            uint64_t got;
            size_t count;
            cr_assert_eq (s_fault_appended (it.dealer, &got, seqs, &count), POND_CODE_OK);
            cr_assert_eq (got, expect, "APPENDED in the order of the APPENDs");
            cr_assert_eq (count, FAULT_EVENTS);
            for (size_t k = 0; k < count; k++)
                cr_assert_eq (seqs [k], next++, "gap-free");
        }
        //  And once more while everything is idle
        for (size_t t = 0; t < nserver; t++)
            signals += syscall (SYS_tgkill, getpid (), server_threads [t], SIGUSR1) == 0;
    }
    zactor_destroy (&it.actor);
    cr_assert_eq (pond_store_head (it.store), next - 1, "the log holds what was answered");
    fprintf (stderr,
             "signals to %zu server threads: %" PRIu64 " sent, %" PRIu64
             " events answered and stored\n",
             nserver, signals, next - 1);
    s_unserve (&it);
}
