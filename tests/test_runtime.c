/*  test_runtime: the actor runtime (actors/runtime) with real processes.

    A store and a broker run in a temp dir (pond_mesh_start); the actor is
    pond-test-counter, built with the runtime: it counts TEST_A, TEST_B,
    TEST_PING and TEST_PONG per entity and emits a TEST_PONG per TEST_PING.
    The tests publish with pond_client, talk to the actor's query socket,
    kill the actor and the broker, and check that the view is exact: no
    event lost, none applied twice (DESIGN.md invariant 4). pond_view and
    pond_actor_derive_id are tested in-process.
*/
#include <criterion/criterion.h>
#include <czmq.h>
#include <math.h>
#include <signal.h>
#include <sys/wait.h>

#include "pond_actor.h"
#include "pond_client.h"
#include "pond_harness.h"
#include "pond_uuid.h"
#include "pond_view.h"

#define ACTOR      "pond-test-counter"
#define ENTITIES   7
#define MAX_ACTORS 8

static pond_mesh_t *mesh;
static pid_t actors [MAX_ACTORS];
static pond_client_t *producer;

//  What the test published, to compare with what the actor counts
typedef struct {
    uint64_t total [ENTITIES];    //  events the actor applies, pongs included
    uint64_t pings;
    uint64_t published;    //  every event, TEST_OTHER included
    uint64_t head;
} expected_t;

static expected_t expected;

//  ---------------------------------------------------------------------
//  Processes

static void
s_setup (void)
{
    memset (actors, 0, sizeof actors);
    memset (&expected, 0, sizeof expected);
    mesh = pond_mesh_start ();
    cr_assert_not_null (mesh, "store and broker must start");
    producer = pond_client_new (mesh->ingest);
    cr_assert_not_null (producer);
    pond_client_set_timeout (producer, 3000, 3);
}

static void
s_teardown (void)
{
    for (int i = 0; i < MAX_ACTORS; i++)
        if (actors [i] > 0)
            pond_harness_stop (actors [i], SIGKILL);
    pond_client_destroy (&producer);
    pond_mesh_destroy (&mesh);
}

TestSuite (runtime, .init = s_setup, .fini = s_teardown, .timeout = 60);

static void
s_path (char *path, size_t size, const char *name)
{
    snprintf (path, size, "%s/%s", mesh->dir, name);
}

//  Start the test actor with extra arguments (NULL-terminated) and wait
//  for its ready file. Returns its slot.
static int
s_actor_start (const char *first, ...)
{
    char ready [512], log [512];
    s_path (ready, sizeof ready, "test-counter.zpl");
    s_path (log, sizeof log, "actor.log");
    unlink (ready);
    char *argv [16] = { ACTOR, "--data", mesh->dir };
    int argc = 3;
    va_list args;
    va_start (args, first);
    for (const char *arg = first; arg && argc < 15; arg = va_arg (args, const char *))
        argv [argc++] = (char *) arg;
    va_end (args);
    argv [argc] = NULL;
    int slot = 0;
    while (slot < MAX_ACTORS && actors [slot] > 0)
        slot++;
    cr_assert_lt (slot, MAX_ACTORS);
    actors [slot] = pond_harness_spawnv (log, argv);
    cr_assert_gt (actors [slot], 0);
    cr_assert_eq (pond_harness_wait_file (ready, 10000), 0, "actor not ready; see %s", log);
    return slot;
}

//  Stop the actor in slot with signal; returns its wait status.
static int
s_actor_stop (int slot, int signal)
{
    int status = pond_harness_stop (actors [slot], signal);
    actors [slot] = 0;
    return status;
}

//  The actor's log so far. Caller frees.
static char *
s_actor_log (void)
{
    int rc;
    char *log = pond_harness_run (&rc, "cat %s/actor.log", mesh->dir);
    cr_assert_not_null (log);
    return log;
}

//  ---------------------------------------------------------------------
//  Publishing

static const char *
s_entity (int index)
{
    static const char *names [ENTITIES] = { "cust-1", "cust-2", "cust-3", "cust-4",
                                            "cust-5", "cust-6", "cust-7" };
    return names [index % ENTITIES];
}

//  The i-th event of a run: names cycle so every kind shows up, a ping
//  every 100th.
static pond_event_t *
s_event (uint64_t i)
{
    const char *name = i % 100 == 99 ? "TEST_PING"
                     : i % 3 == 0    ? "TEST_A"
                     : i % 3 == 1    ? "TEST_B"
                                     : "TEST_OTHER";
    pond_event_t *event = pond_event_new (name, s_entity ((int) (i / 3)));
    cr_assert_not_null (event);
    return event;
}

//  Account for one event published.
static void
s_expect (const pond_event_t *event, uint64_t seq)
{
    const char *name = pond_event_name (event);
    int entity = atoi (pond_event_entity (event) + 5) - 1;
    if (!streq (name, "TEST_OTHER"))
        expected.total [entity]++;
    if (streq (name, "TEST_PING")) {
        expected.pings++;
        expected.total [entity]++;    //  the pong it causes
    }
    expected.published++;
    if (seq > expected.head)
        expected.head = seq;
}

//  Publish count events pipelined (pond_publisher, 200 in flight), each
//  one ACKed. Events NACKed 503 (the broker does not know yet that the
//  store is up, or is busy) are sent again, the same bytes, after retry_ms.
static void
s_publish (uint64_t count)
{
    pond_publisher_t *publisher = pond_publisher_new (producer);
    cr_assert_not_null (publisher);
    cr_assert_eq (pond_publisher_set_window (publisher, 200, 0), 0);
    pond_publisher_set_timeout (publisher, 5000, 10);
    pond_event_t **events = (pond_event_t **) calloc (count ? count : 1, sizeof *events);
    uint64_t base = expected.published;
    uint64_t next = 0, done = 0;
    while (done < count) {
        while (next < count && pond_publisher_room (publisher) > 0) {
            events [next] = s_event (base + next);
            cr_assert_eq (pond_publisher_push_event (publisher, events [next], next), 0, "push: %s",
                          pond_publisher_reason (publisher));
            next++;
        }
        pond_publish_result_t result;
        cr_assert_eq (pond_publisher_next (publisher, 60000, &result), 1, "a result expected");
        cr_assert_eq (result.code, POND_CODE_OK, "event %" PRIu64 ": %d %s", result.tag,
                      result.code, result.reason);
        s_expect (events [result.tag], result.seq);
        pond_event_destroy (&events [result.tag]);
        done++;
    }
    free (events);
    pond_publisher_destroy (&publisher);
}

//  ---------------------------------------------------------------------
//  Query socket

static zsock_t *
s_dealer (void)
{
    zsock_t *sock = zsock_new (ZMQ_DEALER);
    cr_assert_not_null (sock);
    zsock_set_linger (sock, 0);
    zsock_set_rcvtimeo (sock, 10000);
    char endpoint [512];
    snprintf (endpoint, sizeof endpoint, "ipc://%s/test-counter.ipc", mesh->dir);
    cr_assert_eq (zsock_connect (sock, "%s", endpoint), 0);
    return sock;
}

//  Receive the reply to a request, skipping PROGRESS (counted in
//  *progress if not NULL). Returns the message or NULL on timeout.
static zmsg_t *
s_reply (zsock_t *sock, int *progress)
{
    while (true) {
        zmsg_t *msg = zmsg_recv (sock);
        if (!msg || !pond_proto_is (zmsg_first (msg), POND_PROGRESS))
            return msg;
        pond_progress_t p;
        char err [POND_ERR_SIZE];
        cr_assert_eq (pond_progress_decode (zmsg_next (msg), &p, err, sizeof err), 0, "%s", err);
        if (progress)
            (*progress)++;
        zmsg_destroy (&msg);
    }
}

//  Expect RESULT: returns the JSON text (caller frees).
static char *
s_result (zmsg_t *msg)
{
    cr_assert_not_null (msg, "no reply from the actor");
    if (pond_proto_is (zmsg_first (msg), POND_ERROR)) {
        pond_nack_t error;
        char err [POND_ERR_SIZE];
        pond_nack_decode (zmsg_next (msg), &error, err, sizeof err);
        cr_assert_fail ("ERROR %u %s instead of RESULT", error.code, error.reason);
    }
    cr_assert (pond_proto_is (zmsg_first (msg), POND_RESULT));
    cr_assert_eq (zmsg_size (msg), 2);
    zframe_t *body = zmsg_next (msg);
    char *text = strndup ((const char *) zframe_data (body), zframe_size (body));
    zmsg_destroy (&msg);
    return text;
}

//  Expect ERROR: returns its code.
static int
s_error_code (zmsg_t *msg)
{
    cr_assert_not_null (msg, "no reply from the actor");
    cr_assert (pond_proto_is (zmsg_first (msg), POND_ERROR), "ERROR expected");
    pond_nack_t error;
    char err [POND_ERR_SIZE];
    cr_assert_eq (pond_nack_decode (zmsg_next (msg), &error, err, sizeof err), 0, "%s", err);
    cr_assert_gt (strlen (error.reason), 0, "an error says why");
    zmsg_destroy (&msg);
    return (int) error.code;
}

static void
s_send_query (zsock_t *sock, const char *entity)
{
    pond_query_t query = { 0 };
    snprintf (query.entity, sizeof query.entity, "%s", entity);
    zframe_t *body = pond_query_encode (&query);
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, POND_QUERY);
    zmsg_append (msg, &body);
    zmsg_send (&msg, sock);
}

static void
s_send_command (zsock_t *sock, const char *command)
{
    pond_command_t *request = calloc (1, sizeof (pond_command_t));
    snprintf (request->command, sizeof request->command, "%s", command);
    zframe_t *body = pond_command_encode (request);
    free (request);
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, POND_COMMAND);
    zmsg_append (msg, &body);
    zmsg_send (&msg, sock);
}

//  Ask for STATUS or DUMP; returns the parsed RESULT (caller deletes).
static cJSON *
s_ask_json (const char *command, char **text_p)
{
    zsock_t *sock = s_dealer ();
    zstr_send (sock, command);
    char *text = s_result (s_reply (sock, NULL));
    zsock_destroy (&sock);
    cJSON *json = cJSON_Parse (text);
    cr_assert_not_null (json, "%s is JSON: %s", command, text);
    if (text_p)
        *text_p = text;
    else
        free (text);
    return json;
}

static uint64_t
s_number (const cJSON *json, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive (json, key);
    cr_assert (cJSON_IsNumber (item), "'%s' is a number", key);
    return (uint64_t) item->valuedouble;
}

//  Wait until the actor is live at seq position or beyond.
static cJSON *
s_wait_position (uint64_t position, int timeout_ms)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    while (true) {
        cJSON *status = s_ask_json (POND_STATUS, NULL);
        if (s_number (status, "position") >= position
            && cJSON_IsTrue (cJSON_GetObjectItemCaseSensitive (status, "live")))
            return status;
        if (zclock_mono () > deadline) {
            char *text = cJSON_PrintUnformatted (status);
            cr_assert_fail ("actor did not reach seq %" PRIu64 ": %s", position, text);
        }
        cJSON_Delete (status);
        zclock_sleep (50);
    }
}

//  The log's head after the pongs: published events plus one per ping.
static uint64_t
s_final_head (void)
{
    return expected.published + expected.pings;
}

//  No process of the test reported a sanitizer error (ASan builds) or a
//  failed assertion.
static void
s_check_logs (void)
{
    int rc;
    char *found = pond_harness_run (&rc,
                                    "grep -h -i -E 'sanitizer|runtime error|assertion' "
                                    "%s/*.log 2>/dev/null",
                                    mesh->dir);
    cr_assert_not_null (found);
    cr_assert_str_empty (found, "the logs report: %s", found);
    free (found);
}

//  Every entity's counts are exactly what was published.
static void
s_check_counts (void)
{
    s_check_logs ();
    zsock_t *sock = s_dealer ();
    for (int i = 0; i < ENTITIES; i++) {
        s_send_query (sock, s_entity (i));
        zmsg_t *reply = s_reply (sock, NULL);
        if (expected.total [i] == 0) {
            cr_assert_eq (s_error_code (reply), 404);
            continue;
        }
        char *text = s_result (reply);
        cJSON *doc = cJSON_Parse (text);
        cr_assert_eq (s_number (doc, "total"), expected.total [i],
                      "%s: %" PRIu64 " events published, the actor counts %s", s_entity (i),
                      expected.total [i], text);
        cJSON_Delete (doc);
        free (text);
    }
    zsock_destroy (&sock);
    //  One pong per ping, never two
    cJSON *dump = s_ask_json (POND_DUMP, NULL);
    cJSON *docs = cJSON_GetObjectItemCaseSensitive (dump, "docs");
    cJSON *pongs = cJSON_GetObjectItemCaseSensitive (docs, "name/TEST_PONG");
    uint64_t counted = pongs ? s_number (pongs, "count") : 0;
    cr_assert_eq (counted, expected.pings, "%" PRIu64 " pings, %" PRIu64 " pongs", expected.pings,
                  counted);
    cJSON_Delete (dump);
}

//  Run --verify against the live actor; returns its exit code, output in
//  *out (caller frees).
static int
s_verify (char **out)
{
    int rc;
    *out = pond_harness_run (&rc, "%s/%s --data %s --verify 2>>%s/verify.log", POND_BIN_DIR, ACTOR,
                             mesh->dir, mesh->dir);
    cr_assert_not_null (*out);
    return rc;
}

static void s_put (pond_view_t *view, const char *key, const char *json);

//  ---------------------------------------------------------------------
//  (1) Live events, queries, commands, emit, STATUS, clean stop

Test (runtime, live_apply_and_query)
{
    int slot = s_actor_start (NULL);
    //  Live: caught up and subscribed (it has heard a heartbeat)
    cJSON *status = s_wait_position (0, 5000);
    uint64_t catchups = s_number (status, "catchups");
    cJSON_Delete (status);
    s_publish (250);    //  2 pings in there: 2 pongs emitted
    status = s_wait_position (s_final_head (), 10000);
    cr_assert_eq (s_number (status, "position"), s_final_head ());
    //  Every event came the live way: a catch-up would hide a broken
    //  live path
    cr_assert_eq (s_number (status, "catchups"), catchups, "no catch-up while live");
    cr_assert_eq (s_number (status, "emitted"), expected.pings);
    cr_assert_eq (s_number (status, "pid"), (uint64_t) actors [slot]);
    cr_assert_str_eq (cJSON_GetObjectItemCaseSensitive (status, "name")->valuestring,
                      "test-counter");
    cJSON_Delete (status);
    s_check_counts ();

    //  Unknown entity: 404; a command with PROGRESS; an unknown command: 404
    zsock_t *sock = s_dealer ();
    s_send_query (sock, "nobody");
    cr_assert_eq (s_error_code (s_reply (sock, NULL)), 404);
    s_send_command (sock, "count");
    int progress = 0;
    char *text = s_result (s_reply (sock, &progress));
    cr_assert_str_eq (text, "{\"entities\":7}");
    cr_assert_eq (progress, 1, "the command's PROGRESS reached the requester");
    free (text);
    s_send_command (sock, "explode");
    cr_assert_eq (s_error_code (s_reply (sock, NULL)), 404);
    zsock_destroy (&sock);

    //  SIGTERM: exit 0, ready file gone, position kept
    int wstatus = s_actor_stop (slot, SIGTERM);
    cr_assert (WIFEXITED (wstatus) && WEXITSTATUS (wstatus) == 0, "clean exit on SIGTERM");
    char ready [512];
    s_path (ready, sizeof ready, "test-counter.zpl");
    cr_assert_neq (access (ready, F_OK), 0, "ready file removed on a clean exit");
    char *log = s_actor_log ();
    cr_assert (strstr (log, "stopping at seq"), "%s", log);
    free (log);
    s_check_logs ();
}

//  An emit refused 409 (its derived id was used before for another event:
//  the derivation was emitted before, built with other data) counts as
//  emitted; the actor goes on. Live pings are applied in a batch, so the
//  pong goes through pond_actor_emit_many and the publisher.
Test (runtime, emit_refused_409_counts_as_emitted)
{
    s_actor_start (NULL);
    cJSON_Delete (s_wait_position (0, 5000));
    pond_event_t *ping = pond_event_new ("TEST_PING", s_entity (0));
    uint8_t pong_id [POND_ID_SIZE];
    pond_actor_derive_id (pond_event_id (ping), "pong", pong_id);
    pond_event_t *squatter = pond_event_new ("TEST_OTHER", s_entity (0));
    pond_event_set_id (squatter, pong_id);
    pond_ack_t ack;
    cr_assert_eq (pond_client_publish (producer, squatter, &ack), 0, "%s",
                  pond_client_reason (producer));
    cr_assert_eq (pond_client_publish (producer, ping, &ack), 0, "%s",
                  pond_client_reason (producer));
    cJSON *status = s_wait_position (ack.seq, 10000);
    cr_assert_eq (s_number (status, "emitted"), 1, "the pong counts as emitted");
    cJSON_Delete (status);
    //  Still running: the next event is applied
    pond_event_t *after = pond_event_new ("TEST_A", s_entity (0));
    cr_assert_eq (pond_client_publish (producer, after, &ack), 0);
    cJSON_Delete (s_wait_position (ack.seq, 10000));
    pond_event_destroy (&ping);
    pond_event_destroy (&squatter);
    pond_event_destroy (&after);
    s_check_logs ();
}

//  An emit waits for a store that is away longer than the publisher's own
//  budget (ACK timeout x attempts, 6 s): the actor keeps sending the same
//  event until the store is back, and does not stop
Test (runtime, emit_waits_for_a_store_away_longer_than_its_budget, .timeout = 90)
{
    int slot = s_actor_start (NULL);
    cJSON_Delete (s_wait_position (0, 5000));
    //  The actor holds the ping unapplied while the store goes away
    cr_assert_eq (kill (actors [slot], SIGSTOP), 0);
    pond_event_t *ping = pond_event_new ("TEST_PING", s_entity (0));
    pond_ack_t ack;
    cr_assert_eq (pond_client_publish (producer, ping, &ack), 0, "%s",
                  pond_client_reason (producer));
    pond_harness_stop (mesh->store, SIGTERM);
    mesh->store = 0;
    cr_assert_eq (kill (actors [slot], SIGCONT), 0);
    //  Its pong meets NACK 503 for longer than the budget: the time is
    //  the condition here, so this wait is fixed
    zclock_sleep (8000);
    cr_assert_eq (waitpid (actors [slot], NULL, WNOHANG), 0,
                  "the actor still runs while the store is away");
    cr_assert_eq (pond_mesh_start_store (mesh), 0);
    cJSON *status = s_wait_position (ack.seq + 1, 20000);
    cr_assert_eq (s_number (status, "emitted"), 1, "the pong went out once the store was back");
    cJSON_Delete (status);
    pond_event_destroy (&ping);
    s_check_logs ();
}

//  ---------------------------------------------------------------------
//  (2) Catch-up from existing history, then --verify

//  A second actor of the same name on the same data directory is refused
//  before it touches anything, naming the pid of the one that runs
Test (runtime, second_actor_is_refused_naming_the_holder)
{
    int slot = s_actor_start (NULL);
    cJSON_Delete (s_wait_position (0, 5000));
    int rc;
    char *out = pond_harness_run (&rc, "%s/%s --data %s 2>&1", POND_BIN_DIR, ACTOR, mesh->dir);
    cr_assert_eq (rc, 1, "a second actor exits 1: %s", out);
    char says [128];
    snprintf (says, sizeof says, "another %s (pid %d)", ACTOR, (int) actors [slot]);
    cr_assert (strstr (out, says), "it names the holder: %s", out);
    free (out);
    //  ... and the first still answers
    cJSON_Delete (s_wait_position (0, 5000));
}

Test (runtime, catch_up_and_verify)
{
    s_publish (3000);
    s_actor_start (NULL);
    cJSON *status = s_wait_position (s_final_head (), 20000);
    cr_assert_eq (s_number (status, "position"), s_final_head ());
    cr_assert_geq (s_number (status, "catchups"), 1);
    cJSON_Delete (status);
    s_check_counts ();
    char *log = s_actor_log ();
    cr_assert (strstr (log, "caught up"), "catch-up summary logged: %s", log);
    free (log);

    char *out;
    int rc = s_verify (&out);
    char expect [128];
    snprintf (expect, sizeof expect, "test-counter: view matches its rebuild at seq %" PRIu64 " (",
              s_final_head ());
    cr_assert_eq (rc, 0, "verify: %s", out);
    cr_assert (strstr (out, expect), "verify says: %s", out);
    free (out);
}

//  ---------------------------------------------------------------------
//  (3) kill -9 mid-stream, publish more, restart: exact, equals a rebuild

Test (runtime, kill_and_restart)
{
    int slot = s_actor_start (NULL);
    cJSON_Delete (s_wait_position (0, 5000));    //  live: subscribed
    s_publish (800);
    //  Killed while it still works through the live stream (and the pongs
    //  it emits), then the producer goes on without it
    s_actor_stop (slot, SIGKILL);
    s_publish (2200);
    s_actor_start (NULL);
    cJSON *status = s_wait_position (s_final_head (), 20000);
    cr_assert_eq (s_number (status, "position"), s_final_head ());
    cJSON_Delete (status);
    s_check_counts ();
    char *out;
    int rc = s_verify (&out);
    cr_assert_eq (rc, 0, "verify after a crash: %s", out);
    cr_assert (strstr (out, "matches"), "%s", out);
    free (out);
}

//  ---------------------------------------------------------------------
//  (4) The broker goes away and comes back: nothing lost, nothing doubled

Test (runtime, broker_restart)
{
    s_actor_start (NULL);
    cJSON_Delete (s_wait_position (0, 5000));    //  live: subscribed
    s_publish (300);
    cJSON *status = s_wait_position (s_final_head (), 10000);
    uint64_t catchups = s_number (status, "catchups");
    cJSON_Delete (status);

    pond_harness_stop (mesh->broker, SIGKILL);
    //  Heartbeat silence: the actor notices (after 3 s without one)
    char log_path [512];
    s_path (log_path, sizeof log_path, "actor.log");
    cr_assert_eq (pond_harness_wait_text (log_path, "no heartbeat from the broker", 10000), 0,
                  "the actor noticed the broker is gone");
    char *log;
    cr_assert_eq (pond_mesh_start_broker (mesh), 0);
    //  Published at once: the actor's SUB may not be back yet for some
    s_publish (400);
    cJSON_Delete (s_wait_position (s_final_head (), 15000));
    //  The first heartbeat of the new broker starts a catch-up
    int64_t deadline = zclock_mono () + 5000;
    while (true) {
        status = s_wait_position (s_final_head (), 5000);
        bool again = s_number (status, "catchups") > catchups;
        cJSON_Delete (status);
        if (again)
            break;
        cr_assert_lt (zclock_mono (), deadline, "no catch-up after the broker returned");
        zclock_sleep (100);
    }
    status = s_wait_position (s_final_head (), 5000);
    cr_assert_eq (s_number (status, "position"), s_final_head ());
    cJSON_Delete (status);
    s_check_counts ();
    //  The catch-up may come from a gap in live events before the first
    //  heartbeat is seen: wait for the actor to log that heartbeats are back
    deadline = zclock_mono () + 5000;
    while (true) {
        log = s_actor_log ();
        bool back = strstr (log, "heartbeats are back") != NULL;
        if (back || zclock_mono () > deadline)
            cr_assert (back, "%s", log);
        free (log);
        if (back)
            break;
        zclock_sleep (100);
    }
}

//  ---------------------------------------------------------------------
//  (5) Gap: the actor is frozen while the live stream overflows its
//  queues; after it resumes it notices the jump in seq and catches up

Test (runtime, gap_after_overflow)
{
    int slot = s_actor_start (NULL);
    cJSON_Delete (s_wait_position (0, 5000));    //  live: subscribed
    kill (actors [slot], SIGSTOP);
    //  More than the SUB and XPUB high-water marks hold (2,000 and 10,000)
    s_publish (20000);
    kill (actors [slot], SIGCONT);
    cJSON *status = s_wait_position (s_final_head (), 30000);
    cr_assert_eq (s_number (status, "position"), s_final_head ());
    cJSON_Delete (status);
    s_check_counts ();
    char *log = s_actor_log ();
    cr_assert (strstr (log, "gap in live events") || strstr (log, "no event came"),
               "the actor noticed what it missed: %s", log);
    free (log);
}

//  ---------------------------------------------------------------------
//  (6) rebuild while running

Test (runtime, rebuild_command)
{
    s_publish (2000);
    int slot = s_actor_start (NULL);
    cJSON_Delete (s_wait_position (s_final_head (), 20000));
    char *before;
    cJSON_Delete (s_ask_json (POND_DUMP, &before));

    //  The QUERY right behind the COMMAND finds the view being rebuilt:
    //  both wait in the socket while the actor is stopped, so it reads
    //  them in one go, before the rebuild can have made any progress
    zsock_t *sock = s_dealer ();
    kill (actors [slot], SIGSTOP);
    s_send_command (sock, "rebuild");
    s_send_query (sock, "cust-1");
    zclock_sleep (100);
    kill (actors [slot], SIGCONT);
    zmsg_t *first = s_reply (sock, NULL);
    cr_assert_not_null (first);
    cr_assert (pond_proto_is (zmsg_first (first), POND_ERROR), "503 while rebuilding");
    cr_assert_eq (s_error_code (first), 503);
    int progress = 0;
    char *text = s_result (s_reply (sock, &progress));
    cJSON *result = cJSON_Parse (text);
    cr_assert_eq (s_number (result, "position"), s_final_head (), "%s", text);
    cr_assert_gt (s_number (result, "applied"), 0);
    cJSON_Delete (result);
    free (text);
    zsock_destroy (&sock);

    char *after;
    cJSON *status = s_wait_position (s_final_head (), 5000);
    cr_assert_eq (s_number (status, "emitted"), 2 * expected.pings,
                  "pongs emitted again by the rebuild (stored once: see the counts)");
    cJSON_Delete (status);
    cJSON_Delete (s_ask_json (POND_DUMP, &after));
    cr_assert_str_eq (after, before, "a rebuild gives the same view");
    free (before);
    free (after);
    s_check_counts ();
}

//  ---------------------------------------------------------------------
//  (7) Bad input on the query socket

//  Send frames (NULL-terminated, each a string) and expect ERROR code.
static void
s_expect_error (zsock_t *sock, int code, const char *first, ...)
{
    zmsg_t *msg = zmsg_new ();
    va_list args;
    va_start (args, first);
    for (const char *frame = first; frame; frame = va_arg (args, const char *))
        zmsg_addstr (msg, frame);
    va_end (args);
    zmsg_send (&msg, sock);
    cr_assert_eq (s_error_code (s_reply (sock, NULL)), code, "for %s", first);
}

Test (runtime, bad_requests)
{
    s_publish (20);
    s_actor_start (NULL);
    cJSON_Delete (s_wait_position (s_final_head (), 10000));
    zsock_t *sock = s_dealer ();
    s_expect_error (sock, 404, "HELLO", NULL);
    s_expect_error (sock, 404, "", NULL);
    s_expect_error (sock, 404, "\x01\xff garbage", "more", NULL);
    s_expect_error (sock, 400, POND_QUERY, NULL);
    s_expect_error (sock, 400, POND_QUERY, "not msgpack", NULL);
    s_expect_error (sock, 400, POND_COMMAND,
                    "\x81\xa7"
                    "command"
                    "\x05",
                    NULL);
    s_expect_error (sock, 400, POND_STATUS, "unexpected body", NULL);
    s_expect_error (sock, 400, POND_QUERY,
                    "\x81\xa6"
                    "entity"
                    "\xa1"
                    "x",
                    "extra", NULL);
    //  entity of the wrong type; entity missing
    s_expect_error (sock, 400, POND_QUERY,
                    "\x81\xa6"
                    "entity"
                    "\x07",
                    NULL);
    s_expect_error (sock, 400, POND_QUERY, "\x80", NULL);

    //  Oversized body: 413
    size_t size = POND_BODY_MAX + 1000;
    char *big = malloc (size);
    memset (big, 'x', size);
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, POND_QUERY);
    zmsg_addmem (msg, big, size);
    zmsg_send (&msg, sock);
    cr_assert_eq (s_error_code (s_reply (sock, NULL)), 413);

    //  Far beyond the frame limit: the peer is dropped, the actor goes on
    zsock_t *rogue = s_dealer ();
    size = 6 * 1024 * 1024;
    big = realloc (big, size);
    memset (big, 'y', size);
    msg = zmsg_new ();
    zmsg_addstr (msg, POND_QUERY);
    zmsg_addmem (msg, big, size);
    zmsg_send (&msg, rogue);
    free (big);
    zsock_set_rcvtimeo (rogue, 500);
    zmsg_t *nothing = zmsg_recv (rogue);
    cr_assert_null (nothing, "no answer to a frame over the limit");
    zsock_destroy (&rogue);

    //  Still serving, every refusal counted
    s_send_query (sock, "cust-1");
    char *text = s_result (s_reply (sock, NULL));
    free (text);
    zsock_destroy (&sock);
    cJSON *status = s_ask_json (POND_STATUS, NULL);
    cr_assert_geq (s_number (status, "rejected"), 11);
    cJSON_Delete (status);
    s_check_counts ();
    char *log = s_actor_log ();
    cr_assert (strstr (log, "refused a request"), "logged once: %s", log);
    free (log);
}

//  Time travel needs an actor that says it supports it (spec as_of): the
//  test counter does not, and says so
Test (runtime, time_travel_refused_by_a_view_without_it)
{
    s_publish (5);
    s_actor_start (NULL);
    cJSON_Delete (s_wait_position (s_final_head (), 10000));
    zsock_t *sock = s_dealer ();
    pond_query_t query = { 0 };
    snprintf (query.entity, sizeof query.entity, "%s", "cust-1");
    query.at_seq = 3;
    query.has_at_seq = true;
    zframe_t *body = pond_query_encode (&query);
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, POND_QUERY);
    zmsg_append (msg, &body);
    zmsg_send (&msg, sock);
    zmsg_t *reply = s_reply (sock, NULL);
    cr_assert_not_null (reply);
    pond_nack_t error;
    char err [POND_ERR_SIZE];
    cr_assert (pond_proto_is (zmsg_first (reply), POND_ERROR));
    cr_assert_eq (pond_nack_decode (zmsg_next (reply), &error, err, sizeof err), 0, "%s", err);
    cr_assert_eq (error.code, 501, "%u %s", error.code, error.reason);
    cr_assert (strstr (error.reason, "does not support time travel"), "%s", error.reason);
    zmsg_destroy (&reply);
    //  Without at_seq it answers as ever
    s_send_query (sock, "cust-1");
    free (s_result (s_reply (sock, NULL)));
    zsock_destroy (&sock);
}

//  ---------------------------------------------------------------------
//  (8) --verify without a running actor; --rebuild; usage

Test (runtime, verify_needs_a_live_actor)
{
    char *out;
    int rc = s_verify (&out);
    cr_assert_eq (rc, 1, "nothing to compare with: %s", out);
    free (out);
    char *err = pond_harness_run (&rc, "cat %s/verify.log", mesh->dir);
    cr_assert (strstr (err, "not running"), "%s", err);
    free (err);
    out = pond_harness_run (&rc, "%s/%s --bogus 2>&1", POND_BIN_DIR, ACTOR);
    cr_assert_eq (rc, 2, "%s", out);
    free (out);
    out = pond_harness_run (&rc, "%s/%s --help", POND_BIN_DIR, ACTOR);
    cr_assert_eq (rc, 0);
    cr_assert (strstr (out, "--verify") && strstr (out, "TEST_PING"), "%s", out);
    free (out);
}

Test (runtime, verify_finds_a_difference)
{
    s_publish (300);
    int slot = s_actor_start (NULL);
    cJSON_Delete (s_wait_position (s_final_head (), 10000));
    s_actor_stop (slot, SIGTERM);
    //  Corrupt the view behind the actor's back
    char path [512];
    s_path (path, sizeof path, "views/test-counter");
    pond_view_t *view = pond_view_open (path);
    cr_assert_not_null (view);
    s_put (view, "entity/cust-2", "{\"total\":999}");
    s_put (view, "bogus", "{}");
    pond_view_destroy (&view);
    s_actor_start (NULL);
    cJSON_Delete (s_wait_position (s_final_head (), 10000));
    char *out;
    int rc = s_verify (&out);
    cr_assert_eq (rc, 1, "%s", out);
    cr_assert (strstr (out, "differs from its rebuild"), "%s", out);
    cr_assert (strstr (out, "bogus: live {}, rebuilt (absent)"), "%s", out);
    cr_assert (strstr (out, "entity/cust-2: live {\"total\":999}"), "%s", out);
    cr_assert (strstr (out, "2 keys differ"), "%s", out);
    free (out);
}

//  The view's memory limits: options and environment, bad values refused
//  before anything starts (exit 2), an actor with the smallest ones
//  applies and answers as any other
Test (runtime, memory_options)
{
    struct {
        const char *env, *args, *reason;
    } bad [] = {
        { "", "--memtable-mb 0", "memtable size must be 1 to 4096 MiB, not 0" },
        { "", "--cache-mb 12x", "--cache-mb must be a number of MiB from 0 to 4096, not '12x'" },
        { "", "--doc-cache-mb 5000", "--doc-cache-mb must be a number of MiB from 0 to 4096" },
        { "", "--memtable-mb -1", "--memtable-mb must be a number of MiB" },
        { "", "--memtable-mb", "requires an argument" },
        { "POND_VIEW_CACHE_MB=lots", "", "POND_VIEW_CACHE_MB must be a number of MiB" },
        { "POND_VIEW_MEMTABLE_MB=0", "", "memtable size must be 1 to 4096 MiB, not 0" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        int rc = -1;
        char *out = pond_harness_run (&rc, "%s %s/%s --data %s %s 2>&1", bad [i].env, POND_BIN_DIR,
                                      ACTOR, mesh->dir, bad [i].args);
        cr_assert_eq (rc, 2, "%s %s: exit 2, not %d: %s", bad [i].env, bad [i].args, rc, out);
        cr_assert (strstr (out, bad [i].reason), "%s %s: %s", bad [i].env, bad [i].args, out);
        free (out);
    }
    //  The option wins over the environment
    int rc = -1;
    char *out = pond_harness_run (&rc, "POND_VIEW_MEMTABLE_MB=0 %s/%s --memtable-mb 2 --help",
                                  POND_BIN_DIR, ACTOR);
    cr_assert_eq (rc, 0, "%s", out);
    cr_assert (strstr (out, "--memtable-mb N") && strstr (out, "POND_VIEW_CACHE_MB")
                   && strstr (out, "--doc-cache-mb N"),
               "%s", out);
    free (out);

    s_publish (300);
    int slot = s_actor_start ("--memtable-mb", "1", "--cache-mb", "0", "--doc-cache-mb", "0", NULL);
    cJSON_Delete (s_wait_position (s_final_head (), 10000));
    s_check_counts ();
    s_actor_stop (slot, SIGTERM);
    //  The same view under other limits
    setenv ("POND_VIEW_DOC_CACHE_MB", "1", 1);
    slot = s_actor_start (NULL);
    unsetenv ("POND_VIEW_DOC_CACHE_MB");
    cJSON_Delete (s_wait_position (s_final_head (), 10000));
    s_check_counts ();
    s_check_logs ();
}

Test (runtime, rebuild_option)
{
    s_publish (100);
    int slot = s_actor_start (NULL);
    cJSON_Delete (s_wait_position (s_final_head (), 10000));
    char *before;
    cJSON_Delete (s_ask_json (POND_DUMP, &before));
    s_actor_stop (slot, SIGTERM);
    s_actor_start ("--rebuild", NULL);
    cJSON *status = s_wait_position (s_final_head (), 10000);
    uint64_t applies = 0;
    for (int i = 0; i < ENTITIES; i++)
        applies += expected.total [i];
    cr_assert_eq (s_number (status, "applied"), applies, "every event of its names again");
    cJSON_Delete (status);
    char *after;
    cJSON_Delete (s_ask_json (POND_DUMP, &after));
    cr_assert_str_eq (after, before);
    free (before);
    free (after);
    char *log = s_actor_log ();
    cr_assert (strstr (log, "--rebuild: deleting the view"), "%s", log);
    free (log);
}

//  ---------------------------------------------------------------------
//  (9) pond_view in-process

static char *view_dir;

static void
s_view_setup (void)
{
    view_dir = pond_harness_tempdir ();
    cr_assert_not_null (view_dir);
}

static void
s_view_teardown (void)
{
    pond_harness_rmtree (view_dir);
    free (view_dir);
}

TestSuite (view, .init = s_view_setup, .fini = s_view_teardown, .timeout = 30);

static cJSON *
s_doc (const char *json)
{
    cJSON *doc = cJSON_Parse (json);
    cr_assert_not_null (doc, "%s", json);
    return doc;
}

static void
s_put (pond_view_t *view, const char *key, const char *json)
{
    cJSON *doc = s_doc (json);
    cr_assert_eq (pond_view_put (view, key, doc), 0);
    cJSON_Delete (doc);
}

//  The document at key as compact text, or NULL. Caller frees.
static char *
s_get (pond_view_t *view, const char *key)
{
    cJSON *doc = pond_view_get (view, key);
    char *text = doc ? cJSON_PrintUnformatted (doc) : NULL;
    cJSON_Delete (doc);
    return text;
}

Test (view, staged_rollback_commit)
{
    char path [512];
    snprintf (path, sizeof path, "%s/views/a", view_dir);
    pond_view_t *view = pond_view_open (path);
    cr_assert_not_null (view, "parents are created");
    cr_assert_eq (pond_view_position (view), 0);
    cr_assert_null (pond_view_open (path), "a view is opened by one process at a time");

    //  Staged writes are visible inside the event
    pond_view_begin (view);
    s_put (view, "k/1", "{\"n\":1}");
    char *text = s_get (view, "k/1");
    cr_assert_str_eq (text, "{\"n\":1}");
    free (text);
    s_put (view, "k/1", "{\"n\":2}");
    text = s_get (view, "k/1");
    cr_assert_str_eq (text, "{\"n\":2}", "the last staged write wins");
    free (text);
    cr_assert_eq (pond_view_commit (view, 5), 0);
    cr_assert_eq (pond_view_position (view), 5);

    //  Rollback: nothing of the event remains
    pond_view_begin (view);
    s_put (view, "k/2", "{\"n\":3}");
    cr_assert_eq (pond_view_delete (view, "k/1"), 0);
    cr_assert_null (s_get (view, "k/1"), "a staged delete hides the document");
    pond_view_rollback (view);
    text = s_get (view, "k/1");
    cr_assert_str_eq (text, "{\"n\":2}");
    free (text);
    cr_assert_null (s_get (view, "k/2"));
    cr_assert_eq (pond_view_position (view), 5);

    //  A delete and a put, committed together with seq 9
    pond_view_begin (view);
    cr_assert_eq (pond_view_delete (view, "k/1"), 0);
    s_put (view, "k/3", "{\"n\":4}");
    cr_assert_eq (pond_view_commit (view, 9), 0);
    pond_view_destroy (&view);
    cr_assert_null (view);

    //  Reopened: changes and position came back together
    view = pond_view_open (path);
    cr_assert_not_null (view);
    cr_assert_eq (pond_view_position (view), 9);
    cr_assert_null (s_get (view, "k/1"));
    text = s_get (view, "k/3");
    cr_assert_str_eq (text, "{\"n\":4}");
    free (text);

    //  Outside an event: written at once, position unchanged
    s_put (view, "k/4", "{}");
    cr_assert_eq (pond_view_position (view), 9);
    pond_view_destroy (&view);
    view = pond_view_open (path);
    text = s_get (view, "k/4");
    cr_assert_str_eq (text, "{}");
    free (text);
    pond_view_destroy (&view);
    pond_view_destroy (&view);    //  NULL is fine
}

static int
s_collect (const char *key, const cJSON *doc, void *arg)
{
    (void) doc;
    char *keys = (char *) arg;
    strcat (keys, key);
    strcat (keys, ";");
    return strcmp (key, "b/3") == 0;    //  stop after b/3
}

//  One event that changes many documents (a rules change re-evaluating
//  every customer): past POND_VIEW_STAGED_TREES the documents are staged
//  as text, so the staged changes cost about their size, not that of
//  their trees; reads inside the event, the commit, a rollback and the
//  cache all see exactly what was put
#define MANY_DOCS 20000

static void
s_many_doc (char *json, size_t size, size_t index, const char *grant)
{
    snprintf (json, size,
              "{\"customer\":\"cust-%05zu\",\"quacks\":%zu,\"last_seq\":%zu,"
              "\"badges\":{\"Junior\":{\"granted_ts\":1700000001,"
              "\"rules_version\":\"v1\",\"count\":10},\"Master\":{\"granted_ts\":"
              "1700000002,\"rules_version\":\"v1\",\"count\":20}},"
              "\"granting\":{\"%s\":\"v2\"}}",
              index, index % 100, index * 7, grant);
}

Test (view, many_documents_in_one_event)
{
    char path [512];
    snprintf (path, sizeof path, "%s/many", view_dir);
    pond_view_t *view = pond_view_open (path);
    cr_assert_not_null (view);
    char json [512], key [64];

    //  Staged and rolled back: nothing remains
    pond_view_begin (view);
    for (size_t index = 0; index < MANY_DOCS; index++) {
        snprintf (key, sizeof key, "customer/cust-%05zu", index);
        s_many_doc (json, sizeof json, index, "Grand");
        s_put (view, key, json);
    }
    size_t text_bytes = MANY_DOCS * strlen (json);
    size_t staged = pond_view_staged_bytes (view);
    //  As trees: ~2 KiB each (40 MiB); as text, ~330 bytes and a node
    cr_assert_lt (staged, POND_VIEW_STAGED_TREES + 2 * text_bytes,
                  "%zu documents of %zu bytes staged as %zu bytes", (size_t) MANY_DOCS,
                  strlen (json), staged);
    pond_view_rollback (view);
    cr_assert_null (s_get (view, "customer/cust-19999"));
    cr_assert_null (s_get (view, "customer/cust-00000"));

    //  Staged, read, replaced, deleted, committed
    pond_view_begin (view);
    for (size_t index = 0; index < MANY_DOCS; index++) {
        snprintf (key, sizeof key, "customer/cust-%05zu", index);
        s_many_doc (json, sizeof json, index, "Grand");
        s_put (view, key, json);
    }
    cr_assert_lt (pond_view_staged_bytes (view), POND_VIEW_STAGED_TREES + 2 * text_bytes);
    size_t checks [] = { 0, 1, MANY_DOCS / 2, MANY_DOCS - 1 };
    for (size_t i = 0; i < sizeof checks / sizeof checks [0]; i++) {
        snprintf (key, sizeof key, "customer/cust-%05zu", checks [i]);
        s_many_doc (json, sizeof json, checks [i], "Grand");
        char *text = s_get (view, key);
        cr_assert_str_eq (text, json, "staged %s reads back as put: %s", key, text);
        free (text);
    }
    //  A document staged as text replaced, another deleted
    s_many_doc (json, sizeof json, MANY_DOCS - 1, "Ultimate");
    s_put (view, "customer/cust-19999", json);
    char *text = s_get (view, "customer/cust-19999");
    cr_assert_str_eq (text, json);
    free (text);
    cr_assert_eq (pond_view_delete (view, "customer/cust-19998"), 0);
    cr_assert_null (s_get (view, "customer/cust-19998"));
    cr_assert_eq (pond_view_commit (view, 7), 0);
    cr_assert_eq (pond_view_position (view), 7);
    cr_assert_eq (pond_view_staged_bytes (view), 0);

    //  Committed: every document as put, from the cache or RocksDB
    for (size_t index = 0; index < MANY_DOCS; index += 997) {
        snprintf (key, sizeof key, "customer/cust-%05zu", index);
        s_many_doc (json, sizeof json, index, "Grand");
        text = s_get (view, key);
        cr_assert_str_eq (text, json, "%s", key);
        free (text);
    }
    s_many_doc (json, sizeof json, MANY_DOCS - 1, "Ultimate");
    text = s_get (view, "customer/cust-19999");
    cr_assert_str_eq (text, json);
    free (text);
    cr_assert_null (s_get (view, "customer/cust-19998"));
    pond_view_destroy (&view);

    //  Reopened: the same
    view = pond_view_open (path);
    cr_assert_not_null (view);
    cr_assert_eq (pond_view_position (view), 7);
    text = s_get (view, "customer/cust-19999");
    cr_assert_str_eq (text, json);
    free (text);
    s_many_doc (json, sizeof json, 12345, "Grand");
    text = s_get (view, "customer/cust-12345");
    cr_assert_str_eq (text, json);
    free (text);
    pond_view_destroy (&view);
}

//  Memory limits: defaults, bounds, a view without caches
Test (view, limits)
{
    pond_view_limits_t limits;
    pond_view_limits_default (&limits);
    cr_assert_eq (limits.memtable_mb, POND_VIEW_MEMTABLE_MB);
    cr_assert_eq (limits.cache_mb, POND_VIEW_CACHE_MB);
    cr_assert_eq (limits.doc_cache_mb, POND_VIEW_DOC_CACHE_MB);
    char err [128];
    cr_assert_eq (pond_view_limits_check (&limits, err, sizeof err), 0);
    char path [512];
    snprintf (path, sizeof path, "%s/limits", view_dir);

    pond_view_limits_t bad [] = {
        { 0, 4, 4 },
        { POND_VIEW_MB_MAX + 1, 4, 4 },
        { 4, POND_VIEW_MB_MAX + 1, 4 },
        { 4, 4, POND_VIEW_MB_MAX + 1 },
    };
    const char *reasons [] = { "memtable size must be 1 to", "memtable size must be 1 to",
                               "block cache must be 0 to", "document cache must be 0 to" };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        cr_assert_eq (pond_view_limits_check (&bad [i], err, sizeof err), -1);
        cr_assert (strstr (err, reasons [i]), "%s", err);
        cr_assert_null (pond_view_open_with (path, &bad [i]));
        cr_assert_not (zsys_file_exists (path), "nothing created for bad limits");
    }

    //  The smallest: 1 MiB memtables, no block cache, no document cache
    pond_view_limits_t least = { 1, 0, 0 };
    pond_view_t *view = pond_view_open_with (path, &least);
    cr_assert_not_null (view);
    char key [32], json [64];
    for (int round = 0; round < 3; round++) {
        pond_view_begin (view);
        for (int index = 0; index < 2000; index++) {
            snprintf (key, sizeof key, "k/%d", index);
            snprintf (json, sizeof json, "{\"round\":%d,\"index\":%d}", round, index);
            s_put (view, key, json);
        }
        cr_assert_eq (pond_view_commit (view, (uint64_t) round + 1), 0);
    }
    char *text = s_get (view, "k/1999");
    cr_assert_str_eq (text, "{\"round\":2,\"index\":1999}");
    free (text);
    pond_view_stats_t stats;
    pond_view_stats (view, &stats);
    cr_assert_eq (stats.docs, 0, "no document cache");
    cr_assert_eq (stats.hits, 0);
    pond_view_destroy (&view);
    //  Reopened with the defaults (NULL)
    view = pond_view_open_with (path, NULL);
    cr_assert_not_null (view);
    cr_assert_eq (pond_view_position (view), 3);
    text = s_get (view, "k/0");
    cr_assert_str_eq (text, "{\"round\":2,\"index\":0}");
    free (text);
    pond_view_destroy (&view);
}

Test (view, scan_dump_drop)
{
    char path_a [512], path_b [512];
    snprintf (path_a, sizeof path_a, "%s/a", view_dir);
    snprintf (path_b, sizeof path_b, "%s/b", view_dir);
    pond_view_t *a = pond_view_open (path_a);
    pond_view_t *b = pond_view_open (path_b);
    cr_assert (a && b);

    //  The same state reached in a different order, keys in another order
    pond_view_begin (a);
    s_put (a, "b/2", "{\"z\":1,\"a\":{\"y\":[{\"q\":1,\"p\":2}],\"x\":\"s\"}}");
    s_put (a, "a", "{\"k\":true}");
    s_put (a, "b/3", "{\"v\":null}");
    s_put (a, "c", "{\"n\":1.5}");
    cr_assert_eq (pond_view_commit (a, 42), 0);

    pond_view_begin (b);
    s_put (b, "c", "{\"n\":1.5}");
    s_put (b, "gone", "{}");
    cr_assert_eq (pond_view_commit (b, 40), 0);
    pond_view_begin (b);
    s_put (b, "b/3", "{\"v\":null}");
    s_put (b, "a", "{\"k\":true}");
    s_put (b, "b/2", "{\"a\":{\"x\":\"s\",\"y\":[{\"p\":2,\"q\":1}]},\"z\":1}");
    cr_assert_eq (pond_view_delete (b, "gone"), 0);
    cr_assert_eq (pond_view_commit (b, 42), 0);

    char *dump_a = pond_view_dump (a);
    char *dump_b = pond_view_dump (b);
    cr_assert_not_null (dump_a);
    cr_assert_str_eq (dump_a, dump_b, "equal states give equal text");
    cr_assert_str_eq (dump_a, "{\"position\":42,\"docs\":{\"a\":{\"k\":true},"
                              "\"b/2\":{\"a\":{\"x\":\"s\",\"y\":[{\"p\":2,\"q\":1}]},\"z\":1},"
                              "\"b/3\":{\"v\":null},\"c\":{\"n\":1.5}}}");
    free (dump_b);

    //  Scan by prefix in key order, stopping when asked; the position
    //  never shows as a document
    char keys [256] = "";
    cr_assert_eq (pond_view_scan (a, "b/", s_collect, keys), 0);
    cr_assert_str_eq (keys, "b/2;b/3;");
    keys [0] = 0;
    cr_assert_eq (pond_view_scan (a, "", s_collect, keys), 0);
    cr_assert_str_eq (keys, "a;b/2;b/3;");
    keys [0] = 0;
    cr_assert_eq (pond_view_scan (a, "zzz", s_collect, keys), 0);
    cr_assert_str_eq (keys, "");

    //  An event that was not committed does not show in a dump
    pond_view_begin (a);
    s_put (a, "d", "{}");
    char *dump = pond_view_dump (a);
    cr_assert_str_eq (dump, dump_a, "the dump shows committed documents only");
    free (dump);
    //  ... but a scan inside the event sees what it staged: new keys, and
    //  not the deleted ones
    s_put (a, "b/1", "{}");
    cr_assert_eq (pond_view_delete (a, "b/3"), 0);
    keys [0] = 0;
    cr_assert_eq (pond_view_scan (a, "b/", s_collect, keys), 0);
    cr_assert_str_eq (keys, "b/1;b/2;");
    pond_view_rollback (a);
    free (dump_a);

    //  Drop: refused while open, then gone
    cr_assert_neq (pond_view_drop (path_a), 0, "an open view cannot be dropped");
    pond_view_destroy (&a);
    cr_assert_eq (pond_view_drop (path_a), 0);
    cr_assert_neq (access (path_a, F_OK), 0, "the directory is gone");
    cr_assert_eq (pond_view_drop (path_a), 0, "dropping nothing is fine");
    a = pond_view_open (path_a);
    cr_assert_eq (pond_view_position (a), 0);
    dump = pond_view_dump (a);
    cr_assert_str_eq (dump, "{\"position\":0,\"docs\":{}}");
    free (dump);
    pond_view_destroy (&a);
    pond_view_destroy (&b);
}

//  The document cache: bounded, written through at commit, never holding
//  what was rolled back, and a hit equal to what a miss would parse
Test (view, cache)
{
    char path [512];
    snprintf (path, sizeof path, "%s/cache", view_dir);
    pond_view_t *view = pond_view_open (path);
    cr_assert_not_null (view);
    pond_view_set_cache (view, 3, 1024 * 1024);
    pond_view_stats_t stats;

    //  Committed writes go in (write through): reads are hits
    pond_view_begin (view);
    for (int i = 0; i < 3; i++) {
        char key [16], json [32];
        snprintf (key, sizeof key, "k/%d", i);
        snprintf (json, sizeof json, "{\"n\":%d}", i);
        s_put (view, key, json);
    }
    cr_assert_gt (pond_view_staged_bytes (view), 0);
    cr_assert_eq (pond_view_commit (view, 1), 0);
    cr_assert_eq (pond_view_staged_bytes (view), 0);
    pond_view_stats (view, &stats);
    cr_assert_eq (stats.docs, 3);
    cr_assert_eq (stats.hits + stats.misses + stats.evictions, 0);
    char *text = s_get (view, "k/0");
    cr_assert_str_eq (text, "{\"n\":0}");
    free (text);
    pond_view_stats (view, &stats);
    cr_assert_eq (stats.hits, 1, "a committed write is cached");

    //  Full: the first new key offered gets in, evicting the least
    //  recently used (k/1); the next seven do not (1 in 8), the eighth does
    for (int i = 3; i < 12; i++) {
        char key [16], json [32];
        snprintf (key, sizeof key, "k/%d", i);
        snprintf (json, sizeof json, "{\"n\":%d}", i);
        pond_view_begin (view);
        s_put (view, key, json);
        cr_assert_eq (pond_view_commit (view, (uint64_t) i), 0);
        pond_view_stats (view, &stats);
        cr_assert_eq (stats.docs, 3, "bounded by count");
        cr_assert_eq (stats.evictions, i < 11 ? 1 : 2, "after k/%d: %" PRIu64, i, stats.evictions);
    }
    //  A cached key is updated in place, whatever the admission
    pond_view_begin (view);
    s_put (view, "k/3", "{\"n\":30}");
    cr_assert_eq (pond_view_commit (view, 12), 0);
    text = s_get (view, "k/3");
    cr_assert_str_eq (text, "{\"n\":30}");
    free (text);
    pond_view_stats (view, &stats);
    cr_assert_eq (stats.hits, 2);
    cr_assert_eq (stats.evictions, 2);
    //  Documents the cache did not take come from RocksDB
    text = s_get (view, "k/5");
    cr_assert_str_eq (text, "{\"n\":5}");
    free (text);
    pond_view_stats (view, &stats);
    cr_assert_eq (stats.misses, 1);
    //  Shrinking evicts the least recently used: k/3 stays
    pond_view_set_cache (view, 1, 1024 * 1024);
    pond_view_stats (view, &stats);
    cr_assert_eq (stats.docs, 1);
    text = s_get (view, "k/3");
    cr_assert_str_eq (text, "{\"n\":30}");
    free (text);
    pond_view_stats (view, &stats);
    cr_assert_eq (stats.hits, 3);
    pond_view_set_cache (view, 3, 1024 * 1024);
    pond_view_begin (view);
    s_put (view, "k/4", "{\"n\":4}");
    cr_assert_eq (pond_view_commit (view, 13), 0);

    //  A rolled-back event leaves no trace: not its puts, not its deletes
    pond_view_begin (view);
    s_put (view, "k/4", "{\"n\":40}");
    s_put (view, "k/99", "{\"n\":99}");
    cr_assert_eq (pond_view_delete (view, "k/0"), 0);
    text = s_get (view, "k/4");
    cr_assert_str_eq (text, "{\"n\":40}", "reads see the event's own writes");
    free (text);
    pond_view_rollback (view);
    text = s_get (view, "k/4");
    cr_assert_str_eq (text, "{\"n\":4}");
    free (text);
    text = s_get (view, "k/0");
    cr_assert_str_eq (text, "{\"n\":0}");
    free (text);
    cr_assert_null (s_get (view, "k/99"));

    //  A document read and changed in an event, then committed: reads
    //  after the commit see it; a committed delete drops it
    pond_view_begin (view);
    s_put (view, "k/4", "{\"n\":41}");
    cr_assert_eq (pond_view_delete (view, "k/0"), 0);
    cr_assert_eq (pond_view_commit (view, 2), 0);
    text = s_get (view, "k/4");
    cr_assert_str_eq (text, "{\"n\":41}");
    free (text);
    cr_assert_null (s_get (view, "k/0"));

    //  The caller's tree is its own: changing it, or the tree a read
    //  returned, changes nothing in the view
    cJSON *doc = pond_view_get (view, "k/4");
    cJSON_ReplaceItemInObject (doc, "n", cJSON_CreateNumber (99));
    cJSON_Delete (doc);
    text = s_get (view, "k/4");
    cr_assert_str_eq (text, "{\"n\":41}");
    free (text);

    //  A hit returns what parsing the stored text gives: raw numbers come
    //  back as numbers, NaN as null, as they do from RocksDB
    doc = s_doc ("{\"a\":1}");
    cJSON_AddItemToObject (doc, "big", cJSON_CreateRaw ("1795997611000000"));
    cJSON_AddItemToObject (doc, "raw", cJSON_CreateRaw ("[1,{\"x\":2}]"));
    cJSON_AddItemToObject (doc, "nan", cJSON_CreateNumber (NAN));
    cJSON_AddItemToObject (doc, "odd", cJSON_CreateRaw ("9007199254740993"));
    pond_view_begin (view);
    cr_assert_eq (pond_view_put (view, "k/raw", doc), 0);
    cJSON_Delete (doc);
    cJSON *staged = pond_view_get (view, "k/raw");
    cr_assert_eq (pond_view_commit (view, 3), 0);
    cJSON *cached = pond_view_get (view, "k/raw");
    pond_view_set_cache (view, 0, 0);    //  off: every read parses
    pond_view_stats (view, &stats);
    cr_assert_eq (stats.docs, 0);
    cJSON *parsed = pond_view_get (view, "k/raw");
    cr_assert (staged && cached && parsed);
    cr_assert (cJSON_IsNumber (cJSON_GetObjectItem (cached, "big")));
    cr_assert (cJSON_IsNull (cJSON_GetObjectItem (cached, "nan")));
    cr_assert (cJSON_Compare (cached, parsed, true), "a hit equals a miss");
    cr_assert (cJSON_Compare (staged, parsed, true), "a staged read equals a miss");
    cr_assert_eq (cJSON_GetObjectItem (cached, "big")->valueint,
                  cJSON_GetObjectItem (parsed, "big")->valueint);
    cr_assert (cJSON_GetObjectItem (cached, "odd")->valuedouble
                   == cJSON_GetObjectItem (parsed, "odd")->valuedouble,
               "rounded as strtod does");
    cJSON_Delete (staged);
    cJSON_Delete (cached);
    cJSON_Delete (parsed);
    pond_view_stats (view, &stats);
    uint64_t misses = stats.misses;
    text = s_get (view, "k/4");
    cr_assert_str_eq (text, "{\"n\":41}");
    free (text);
    pond_view_stats (view, &stats);
    cr_assert_eq (stats.misses, misses + 1, "with the cache off, reads go to RocksDB");
    cr_assert_eq (stats.docs, 0);

    //  Bounded by bytes: a small budget holds a few small documents, and
    //  never one larger than itself
    pond_view_set_cache (view, 1000, 600);
    pond_view_begin (view);
    for (int i = 0; i < 20; i++) {
        char key [16];
        snprintf (key, sizeof key, "s/%d", i);
        s_put (view, key, "{\"n\":1}");
    }
    char filler [1024], big [1100];
    memset (filler, 'x', sizeof filler - 1);
    filler [sizeof filler - 1] = 0;
    snprintf (big, sizeof big, "{\"s\":\"%s\"}", filler);
    s_put (view, "big", big);
    cr_assert_eq (pond_view_commit (view, 4), 0);
    pond_view_stats (view, &stats);
    cr_assert_gt (stats.docs, 0);
    cr_assert_lt (stats.docs, 20);
    cr_assert_leq (stats.bytes, 600);
    text = s_get (view, "big");
    cr_assert_not_null (text, "too big to cache, still stored");
    free (text);
    pond_view_stats (view, &stats);
    cr_assert_leq (stats.bytes, 600);

    //  Writes outside an event go to RocksDB and drop the cached copy
    s_put (view, "s/19", "{\"n\":2}");
    text = s_get (view, "s/19");
    cr_assert_str_eq (text, "{\"n\":2}");
    free (text);
    cr_assert_eq (pond_view_delete (view, "s/19"), 0);
    cr_assert_null (s_get (view, "s/19"));

    //  What the cache served is what RocksDB holds after a reopen
    char *dump = pond_view_dump (view);
    pond_view_destroy (&view);
    view = pond_view_open (path);
    char *again = pond_view_dump (view);
    cr_assert_str_eq (dump, again);
    free (dump);
    free (again);
    pond_view_destroy (&view);
}

//  ---------------------------------------------------------------------
//  (10) derive_id

Test (derive, deterministic_version_8)
{
    uint8_t cause [POND_ID_SIZE], other [POND_ID_SIZE];
    for (int i = 0; i < POND_ID_SIZE; i++) {
        cause [i] = (uint8_t) i;
        other [i] = (uint8_t) (i + 1);
    }
    uint8_t a [POND_ID_SIZE], b [POND_ID_SIZE], c [POND_ID_SIZE], d [POND_ID_SIZE];
    pond_actor_derive_id (cause, "grant/Master", a);
    pond_actor_derive_id (cause, "grant/Master", b);
    pond_actor_derive_id (cause, "grant/Junior", c);
    pond_actor_derive_id (other, "grant/Master", d);
    cr_assert_eq (memcmp (a, b, POND_ID_SIZE), 0, "same input, same id");
    cr_assert_neq (memcmp (a, c, POND_ID_SIZE), 0, "another salt, another id");
    cr_assert_neq (memcmp (a, d, POND_ID_SIZE), 0, "another cause, another id");
    for (uint8_t *id = a; id; id = id == a ? c : id == c ? d : NULL) {
        cr_assert_eq (id [6] >> 4, 8, "version 8");
        cr_assert_eq (id [8] >> 6, 2, "variant 10");
    }
    //  Stable across builds, machines and languages: SHA-1 of
    //  "pond/derive-id/v1\0" || cause || salt, first 16 bytes, version and
    //  variant set (Python: hashlib.sha1 (...).digest () [:16])
    char text [POND_UUID_STR_SIZE];
    pond_uuid_format (a, text);
    cr_assert_str_eq (text, "ce07f61c-361b-8bdc-8326-027ae1f29052");
    //  The event decoder accepts it as an id
    pond_event_t *event = pond_event_new ("BADGE_GRANTED", "cust-1");
    pond_event_set_id (event, a);
    char err [POND_ERR_SIZE];
    cr_assert_eq (pond_event_validate (event, err, sizeof err), 0, "%s", err);
    pond_event_destroy (&event);
    //  NULL salt is the empty salt
    pond_actor_derive_id (cause, NULL, b);
    pond_actor_derive_id (cause, "", c);
    cr_assert_eq (memcmp (b, c, POND_ID_SIZE), 0);
}
