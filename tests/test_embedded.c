/*  test_embedded: pond-broker --with-store, the store of the data
    directory in the broker's process (real processes, pond_harness).

    Publish -> ACK -> replay, across a SIGKILL and a restart of that one
    process; a pond-store on the same directory is refused while it runs
    (and it is refused while a pond-store runs); SIGTERM stops it with
    exit 0, releases the store's lock, and the directory then serves a
    two-process mesh with every event; with --keys the outside sockets
    speak CURVE while the store link inside stays plain inproc. The
    pipelined crash guarantee (every ACKed id once, seq gap-free, through
    three SIGKILLs) is test_crash's broker_with_store test. And in this
    process: a broker whose store says it stopped serving stops at once
    (pond-broker then exits 1); pond_store_embedded alone serves inproc,
    holds the store's lock and closes what it opened.
*/
#include <criterion/criterion.h>
#include <czmq.h>
#include <signal.h>
#include <sys/wait.h>

#include "pond_broker.h"
#include "pond_client.h"
#include "pond_harness.h"
#include "pond_keys.h"
#include "pond_pidlock.h"
#include "pond_process.h"
#include "pond_proto.h"
#include "pond_store_embedded.h"
#include "pond_store_server.h"
#include "pond_test_stats.h"

#define EVENTS 20

static pond_mesh_t *mesh;

static void
s_setup (void)
{
    mesh = pond_harness_mesh_up_with_store ();
}

static void
s_teardown (void)
{
    pond_mesh_destroy (&mesh);
}

//  Publish one event for entity, wait for its ACK; returns its seq and id
static uint64_t
s_publish (const char *ingest, const char *entity, uint8_t *id)
{
    pond_client_t *client = pond_client_new (ingest);
    cr_assert_not_null (client);
    pond_client_set_timeout (client, 3000, 3);
    pond_event_t *event = pond_event_new ("QUACKED", entity);
    pond_ack_t ack;
    int rc = pond_client_publish (client, event, &ack);
    cr_assert_eq (rc, 0, "publish: %d %s", pond_client_code (client), pond_client_reason (client));
    cr_assert_eq (memcmp (ack.id, pond_event_id (event), POND_ID_SIZE), 0);
    if (id)
        memcpy (id, ack.id, POND_ID_SIZE);
    pond_event_destroy (&event);
    pond_client_destroy (&client);
    return ack.seq;
}

//  Replay from seq 1: the events must be exactly ids [0..count), with
//  seq 1..count in that order
static void
s_replay_is (const char *control, uint8_t ids [][POND_ID_SIZE], size_t count)
{
    pond_replay_req_t request = { .from_seq = 1 };
    pond_reader_t *replay = pond_reader_new (control, &request);
    cr_assert_not_null (replay);
    size_t got = 0;
    pond_event_t *event;
    while ((event = pond_reader_next (replay, 5000))) {
        cr_assert_lt (got, count, "more events in the log than were ACKed");
        cr_assert_eq (pond_event_seq (event), got + 1, "hole or disorder in seq");
        cr_assert_eq (memcmp (pond_event_id (event), ids [got], POND_ID_SIZE), 0,
                      "seq %zu holds another event than the one ACKed with it", got + 1);
        got++;
        pond_event_destroy (&event);
    }
    cr_assert_eq (pond_reader_code (replay), 200, "replay: %s", pond_reader_reason (replay));
    cr_assert_eq (got, count, "replayed %zu events, %zu were ACKed", got, count);
    pond_reader_destroy (&replay);
}

//  Start a binary of the build and wait for its exit; returns the exit
//  code (-1 if it did not exit within 10 s or died of a signal)
static int
s_run_to_exit (const char *log, char *const argv [])
{
    pid_t pid = pond_harness_spawnv (log, argv);
    cr_assert_gt (pid, 0);
    int status = 0;
    if (pond_process_wait_exit (pid, 10000, &status) != 0) {
        pond_harness_stop (pid, SIGKILL);
        return -1;
    }
    return WIFEXITED (status) ? WEXITSTATUS (status) : -1;
}

Test (embedded, acked_events_replay_after_sigkill_and_restart, .init = s_setup, .fini = s_teardown,
      .timeout = 60)
{
    cr_assert_eq (mesh->store, 0, "one process: no pond-store");
    pond_test_wait_store_up (mesh->control, 10000);
    uint8_t ids [EVENTS + 1][POND_ID_SIZE];
    for (size_t i = 0; i < EVENTS; i++)
        cr_assert_eq (s_publish (mesh->ingest, "cust-emb", ids [i]), i + 1,
                      "seq given in order, gap-free");
    s_replay_is (mesh->control, ids, EVENTS);

    //  The process that holds the log dies without a word, and comes back
    int status = pond_harness_stop (mesh->broker, SIGKILL);
    cr_assert (WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL);
    cr_assert_eq (pond_mesh_start_broker (mesh), 0, "pond-broker --with-store restarts");
    pond_test_wait_store_up (mesh->control, 10000);
    s_replay_is (mesh->control, ids, EVENTS);
    cr_assert_eq (s_publish (mesh->ingest, "cust-emb", ids [EVENTS]), EVENTS + 1,
                  "the seq goes on after the restart");
    s_replay_is (mesh->control, ids, EVENTS + 1);
}

Test (embedded, separate_store_refused_on_the_same_directory, .init = s_setup, .fini = s_teardown,
      .timeout = 60)
{
    char log [600];
    snprintf (log, sizeof log, "%s/store-refused.log", mesh->dir);
    char *store_argv [] = { "pond-store", "--data", mesh->dir, NULL };
    cr_assert_eq (s_run_to_exit (log, store_argv), 1,
                  "pond-store must refuse a directory whose store the broker runs");
    char pid_text [32];
    snprintf (pid_text, sizeof pid_text, "(pid %d)", (int) mesh->broker);
    cr_assert_eq (pond_harness_wait_text (log, pid_text, 1000), 0,
                  "pond-store names the broker's pid; see %s", log);
    //  The broker was not disturbed
    pond_test_wait_store_up (mesh->control, 10000);
    cr_assert_eq (s_publish (mesh->ingest, "cust-emb", NULL), 1);

    //  And the other way round: a pond-store holds it, the broker is refused
    pond_harness_stop (mesh->broker, SIGTERM);
    mesh->broker = 0;
    cr_assert_eq (pond_mesh_start_store (mesh), 0, "pond-store takes the directory");
    snprintf (log, sizeof log, "%s/broker-refused.log", mesh->dir);
    char alt_ingest [600], alt_pub [600], alt_control [600];
    snprintf (alt_ingest, sizeof alt_ingest, "ipc://%s/i2.ipc", mesh->dir);
    snprintf (alt_pub, sizeof alt_pub, "ipc://%s/p2.ipc", mesh->dir);
    snprintf (alt_control, sizeof alt_control, "ipc://%s/c2.ipc", mesh->dir);
    char *broker_argv [] = { "pond-broker", "--data",    mesh->dir, "--with-store",
                             "--ingest",    alt_ingest,  "--pub",   alt_pub,
                             "--control",   alt_control, NULL };
    cr_assert_eq (s_run_to_exit (log, broker_argv), 1,
                  "pond-broker --with-store must refuse a store a pond-store runs");
    snprintf (pid_text, sizeof pid_text, "in use by pid %d", (int) mesh->store);
    cr_assert_eq (pond_harness_wait_text (log, pid_text, 1000), 0, "see %s", log);
}

Test (embedded, sigterm_stops_cleanly_and_the_log_serves_two_processes_after, .init = s_setup,
      .fini = s_teardown, .timeout = 60)
{
    pond_test_wait_store_up (mesh->control, 10000);
    uint8_t ids [3][POND_ID_SIZE];
    for (size_t i = 0; i < 3; i++)
        s_publish (mesh->ingest, "cust-emb", ids [i]);
    int status = pond_harness_stop (mesh->broker, SIGTERM);
    mesh->broker = 0;
    cr_assert (WIFEXITED (status), "pond-broker --with-store died of signal %d on SIGTERM",
               WIFSIGNALED (status) ? WTERMSIG (status) : 0);
    cr_assert_eq (WEXITSTATUS (status), 0, "exit code on SIGTERM");
    char log [600], path [600];
    snprintf (log, sizeof log, "%s/broker.log", mesh->dir);
    cr_assert_eq (pond_harness_wait_text (log, "store: stopping, head 3", 1000), 0,
                  "the store closes after the broker's loop; see %s", log);
    snprintf (path, sizeof path, "%s/store.lock", mesh->dir);
    cr_assert_eq (pond_pidlock_holder (path), 0, "the store's lock is released");
    snprintf (path, sizeof path, "%s/store.zpl", mesh->dir);
    cr_assert_neq (access (path, F_OK), 0, "no store.zpl: nothing outside can reach inproc");

    //  The same directory as a two-process mesh: every event is there
    mesh->with_store = false;
    cr_assert_eq (pond_mesh_start_store (mesh), 0);
    cr_assert_eq (pond_mesh_start_broker (mesh), 0);
    pond_test_wait_store_up (mesh->control, 10000);
    s_replay_is (mesh->control, ids, 3);
}

//  --keys with --with-store: CURVE on ingest, pub and control, while the
//  store link inside the process has no keys to check (even with a store
//  key in the directory, which would make a separate store link CURVE)
Test (embedded, keys_guard_the_outside_while_the_store_link_stays_inproc, .timeout = 90)
{
    zsys_init ();
    zsys_set_logstream (stderr);
    char *dir = pond_harness_tempdir ();
    cr_assert_not_null (dir);
    char keys [600], log [600], ready [600];
    snprintf (keys, sizeof keys, "%s/keys", dir);
    const char *roles [] = { "--role broker", "--role store", "--role admin --name admin",
                             "--role device --name silo-1 --customer anna" };
    for (size_t i = 0; i < 4; i++) {
        int rc;
        char *out = pond_harness_run (&rc, "%s/pond keys new --keys %s %s 2>&1", POND_BIN_DIR, keys,
                                      roles [i]);
        cr_assert_eq (rc, 0, "pond keys new %s: %s", roles [i], out);
        free (out);
    }
    snprintf (log, sizeof log, "%s/broker.log", dir);
    snprintf (ready, sizeof ready, "%s/broker.zpl", dir);
    pid_t broker = pond_harness_spawn ("pond-broker", log, "--data", dir, "--with-store", "--keys",
                                       keys, "--ingest", "tcp://127.0.0.1:*", "--pub",
                                       "tcp://127.0.0.1:*", "--control", "tcp://127.0.0.1:*", NULL);
    cr_assert_eq (pond_harness_wait_file (ready, 10000), 0, "broker did not start: see %s", log);
    pond_endpoints_t eps;
    cr_assert_eq (pond_endpoints_resolve (dir, &eps), 0);
    zconfig_t *config = zconfig_load (ready);
    cr_assert_str_eq (zconfig_get (config, "broker/security", ""), "curve");
    cr_assert_str_eq (zconfig_get (config, "broker/with_store", ""), "1");
    zconfig_destroy (&config);

    char err [512];
    cr_assert_eq (pond_keys_use (keys, "admin", err, sizeof err), 0, "%s", err);
    pond_test_wait_store_up (eps.control, 10000);
    cr_assert_eq (pond_keys_use (keys, "silo-1", err, sizeof err), 0, "%s", err);
    uint8_t ids [1][POND_ID_SIZE];
    cr_assert_eq (s_publish (eps.ingest, "anna", ids [0]), 1, "a device's event is stored");
    cr_assert_eq (pond_keys_use (keys, "admin", err, sizeof err), 0, "%s", err);
    s_replay_is (eps.control, ids, 1);
    pond_keys_reset ();

    //  Without keys the outside is closed: no STATS for a stranger
    char *stats = pond_client_stats (eps.control, 1000, err, sizeof err);
    cr_assert_null (stats, "a client without keys got STATS from a --keys broker");

    int status = pond_harness_stop (broker, SIGTERM);
    cr_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0, "exit on SIGTERM");
    pond_harness_rmtree (dir);
    free (dir);
}

//  The store's actor says LOST (its writer thread is gone: it will answer
//  nothing more): the broker's loop must end at once with -1, which
//  pond-broker turns into exit 1, instead of serving on and NACKing or,
//  worse, waiting for APPENDEDs that never come. (The writer cannot be
//  made to vanish from outside, so the pipe's message is sent by hand.)
Test (embedded, broker_loop_ends_when_its_store_says_lost, .timeout = 20)
{
    zsys_init ();
    zsys_set_logstream (stderr);
    char *dir = pond_harness_tempdir ();
    cr_assert_not_null (dir);
    char scratch [4][256];
    pond_broker_config_t config;
    pond_broker_config_defaults (&config, dir, scratch);
    pond_broker_t *broker = pond_broker_new (&config);
    cr_assert_not_null (broker);
    zsock_t *store_side = zsock_new_pair ("@inproc://test-embedded-lost");
    zsock_t *broker_side = zsock_new_pair (">inproc://test-embedded-lost");
    cr_assert (store_side && broker_side);
    pond_broker_watch_store (broker, broker_side);
    zstr_send (store_side, POND_STORE_SERVER_LOST);
    int64_t started = zclock_mono ();
    cr_assert_eq (pond_broker_run (broker), -1, "the loop reports the lost store");
    cr_assert_lt (zclock_mono () - started, 2000, "and ends at once");
    pond_broker_destroy (&broker);
    zsock_destroy (&broker_side);
    zsock_destroy (&store_side);
    pond_harness_rmtree (dir);
    free (dir);
}

//  The module alone, in this process: the store answers on its inproc
//  endpoint and says nothing on its pipe while it serves; it holds
//  DIR/store.lock (a pond-store is refused meanwhile) and, once
//  destroyed, has closed the log and freed the lock: it opens again here,
//  and then in a pond-store
Test (embedded, module_serves_inproc_holds_the_lock_and_closes, .timeout = 60)
{
    zsys_init ();
    zsys_set_logstream (stderr);
    char *dir = pond_harness_tempdir ();
    cr_assert_not_null (dir);
    char err [1024] = "";
    char log [600];
    snprintf (log, sizeof log, "%s/store.log", dir);
    char *store_argv [] = { "pond-store", "--data", dir, NULL };
    for (int round = 0; round < 2; round++) {
        pond_store_embedded_t *store = pond_store_embedded_new (dir, false, err, sizeof err);
        cr_assert_not_null (store, "round %d: %s", round, err);
        const char *endpoint = pond_store_embedded_endpoint (store);
        cr_assert (strncmp (endpoint, "inproc://", 9) == 0, "%s", endpoint);
        zsock_t *dealer = zsock_new_dealer (endpoint);
        cr_assert_not_null (dealer);
        zsock_set_rcvtimeo (dealer, 5000);
        cr_assert_eq (zstr_send (dealer, POND_PING), 0);
        char *pong = zstr_recv (dealer);
        bool ponged = pong && streq (pong, POND_PONG);
        zstr_free (&pong);
        zsock_destroy (&dealer);
        zpoller_t *poller = zpoller_new (pond_store_embedded_pipe (store), NULL);
        bool quiet = zpoller_wait (poller, 100) == NULL;
        zpoller_destroy (&poller);
        int refused = round == 0 ? s_run_to_exit (log, store_argv) : 1;
        pond_store_embedded_destroy (&store);
        cr_assert_null (store);
        cr_assert (ponged, "round %d: PING over inproc gets PONG", round);
        cr_assert (quiet, "the pipe speaks only when the store stops");
        cr_assert_eq (refused, 1, "a pond-store is refused while the module holds the store");
    }
    //  Freed and closed: a pond-store opens it and stops cleanly
    char ready [600];
    snprintf (ready, sizeof ready, "%s/store.zpl", dir);
    pid_t pid = pond_harness_spawnv (log, store_argv);
    cr_assert_eq (pond_harness_wait_file (ready, 10000), 0, "pond-store after the module: %s", log);
    int status = pond_harness_stop (pid, SIGTERM);
    cr_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0);
    pond_harness_rmtree (dir);
    free (dir);
}
