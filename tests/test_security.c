/*  test_security: a mesh with keys (CURVE), over tcp on 127.0.0.1.

    Real processes: pond-store, pond-broker --keys and, where a test needs
    one, pond-test-counter --keys, with ports picked by the kernel and read
    back from DIR/broker.zpl and DIR/test-counter.zpl. The keys are made
    with `pond keys new` in the test's own directory. The test process
    itself switches identity with pond_keys_use: each socket it makes
    after that uses the key named. Every refusal is shown: a device
    publishing for another customer (NACK 403), an unknown key (refused by
    ZAP; the client says so), a device or app on the control socket, a
    device on an actor's query socket, a key removed while connected; and
    the `pond keys` command's success and failure paths.
*/
#include <criterion/criterion.h>
#include <czmq.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "pond_actor_link.h"
#include "pond_client.h"
#include "pond_command_link.h"
#include "pond_proto.h"
#include "pond_harness.h"
#include "pond_keys.h"
#include "pond_test_stats.h"

typedef struct {
    char *dir;           //  the mesh's data directory
    char keys [512];     //  DIR/keys: what the broker lets in
    char other [512];    //  DIR/other: a stranger's keys
    pid_t store;
    char store_endpoint [600];    //  tcp, CURVE
    pid_t broker;
    pid_t actor;
    pond_endpoints_t eps;
} secure_t;

static secure_t mesh;

//  ---------------------------------------------------------------------
//  Helpers

//  Run `pond ARGS` (stderr into the output); returns the output, exit in *exit_p.
static char *
s_pond (int *exit_p, const char *args)
{
    char *out = pond_harness_run (exit_p, "%s/pond %s 2>&1", POND_BIN_DIR, args);
    cr_assert_not_null (out);
    return out;
}

//  pond keys new --keys DIR ARGS, which must succeed.
static void
s_key (const char *dir, const char *args)
{
    char command [1024];
    snprintf (command, sizeof command, "keys new --keys %s %s", dir, args);
    int rc;
    char *out = s_pond (&rc, command);
    cr_assert_eq (rc, 0, "pond %s: %s", command, out);
    free (out);
}

//  Be key name of dir from now on.
static void
s_as (const char *dir, const char *name)
{
    char err [512];
    cr_assert_eq (pond_keys_use (dir, name, err, sizeof err), 0, "%s: %s", name, err);
}

//  How often text occurs in the file at path.
static int
s_count_in_file (const char *path, const char *text)
{
    FILE *file = fopen (path, "r");
    if (!file)
        return 0;
    int count = 0;
    char line [2048];
    while (fgets (line, sizeof line, file))
        for (char *at = strstr (line, text); at; at = strstr (at + 1, text))
            count++;
    fclose (file);
    return count;
}

//  Publish one event as the current key. Returns 0 (ACK) or -1 with code
//  and reason.
static int
s_publish (const char *name, const char *entity, const char *source, int timeout_ms,
           pond_ack_t *ack, int *code, char *reason, size_t size)
{
    pond_client_t *client = pond_client_new (mesh.eps.ingest);
    cr_assert_not_null (client);
    pond_client_set_timeout (client, timeout_ms, 3);
    pond_event_t *event = pond_event_new (name, entity);
    if (source)
        pond_event_set_source (event, source);
    int rc = pond_client_publish (client, event, ack);
    if (code)
        *code = pond_client_code (client);
    if (reason)
        snprintf (reason, size, "%s", pond_client_reason (client));
    pond_event_destroy (&event);
    pond_client_destroy (&client);
    return rc;
}

//  Replay everything of entity as the current key. Returns the events as
//  one JSON line each (caller frees), or NULL with the code in *code.
static char *
s_replay_entity (const char *entity, int *code)
{
    pond_replay_req_t request = { 0 };
    snprintf (request.entity, sizeof request.entity, "%s", entity);
    pond_reader_t *replay = pond_reader_new (mesh.eps.control, &request);
    cr_assert_not_null (replay);
    char *lines = strdup ("");
    pond_event_t *event;
    while ((event = pond_reader_next (replay, 3000))) {
        char *json = pond_event_to_json (event);
        char *more = zsys_sprintf ("%s%s\n", lines, json);
        free (json);
        free (lines);
        lines = more;
        pond_event_destroy (&event);
    }
    *code = pond_reader_code (replay);
    pond_reader_destroy (&replay);
    if (*code != POND_CODE_OK) {
        free (lines);
        return NULL;
    }
    return lines;
}

//  ---------------------------------------------------------------------
//  The secure mesh: keys, store, broker --keys on tcp

static void
s_setup (void)
{
    zsys_init ();
    zsys_set_logstream (stderr);
    memset (&mesh, 0, sizeof mesh);
    mesh.dir = pond_harness_tempdir ();
    cr_assert_not_null (mesh.dir);
    snprintf (mesh.keys, sizeof mesh.keys, "%s/keys", mesh.dir);
    snprintf (mesh.other, sizeof mesh.other, "%s/other", mesh.dir);
    s_key (mesh.keys, "--role broker");
    s_key (mesh.keys, "--role store");
    s_key (mesh.keys, "--role admin --name admin");
    s_key (mesh.keys, "--role device --name silo-1 --customer anna");
    s_key (mesh.keys, "--role app --name app-1 --customer anna");
    s_key (mesh.keys, "--role actor --name test-counter");
    //  A stranger: a good key pair the broker does not know, who has the
    //  broker's and the actor's public keys
    s_key (mesh.other, "--role admin --name stranger");
    char command [1600];
    snprintf (command, sizeof command,
              "cp %s/public/broker.cert %s/public/test-counter.cert "
              "%s/public/",
              mesh.keys, mesh.keys, mesh.other);
    cr_assert_eq (system (command), 0);

    //  The store link is tcp and CURVE too: only the broker's key may use it
    char ready [600], log [600], store [600];
    snprintf (ready, sizeof ready, "%s/store.zpl", mesh.dir);
    snprintf (log, sizeof log, "%s/store.log", mesh.dir);
    mesh.store = pond_harness_spawn ("pond-store", log, "--data", mesh.dir, "--endpoint",
                                     "tcp://127.0.0.1:*", "--keys", mesh.keys, NULL);
    cr_assert_eq (pond_harness_wait_file (ready, 10000), 0, "pond-store did not start");
    zconfig_t *store_config = zconfig_load (ready);
    cr_assert_not_null (store_config);
    snprintf (store, sizeof store, "%s", zconfig_get (store_config, "store/endpoint", ""));
    zconfig_destroy (&store_config);
    cr_assert (strncmp (store, "tcp://127.0.0.1:", 16) == 0, "%s", store);
    snprintf (mesh.store_endpoint, sizeof mesh.store_endpoint, "%s", store);
    snprintf (ready, sizeof ready, "%s/broker.zpl", mesh.dir);
    snprintf (log, sizeof log, "%s/broker.log", mesh.dir);
    mesh.broker = pond_harness_spawn ("pond-broker", log, "--data", mesh.dir, "--store", store,
                                      "--keys", mesh.keys, "--ingest", "tcp://127.0.0.1:*", "--pub",
                                      "tcp://127.0.0.1:*", "--control", "tcp://127.0.0.1:*", NULL);
    cr_assert_eq (pond_harness_wait_file (ready, 10000), 0, "pond-broker did not start");
    cr_assert_eq (pond_endpoints_resolve (mesh.dir, &mesh.eps), 0);
    cr_assert (strncmp (mesh.eps.ingest, "tcp://127.0.0.1:", 16) == 0, "%s", mesh.eps.ingest);
    cr_assert (strncmp (mesh.eps.control, "tcp://127.0.0.1:", 16) == 0, "%s", mesh.eps.control);
    //  The broker answers (and knows the store is up) before tests begin
    s_as (mesh.keys, "admin");
    pond_test_wait_store_up (mesh.eps.control, 10000);
    pond_keys_reset ();
}

static void
s_teardown (void)
{
    pond_keys_reset ();
    pond_harness_stop (mesh.actor, SIGTERM);
    pond_harness_stop (mesh.broker, SIGTERM);
    pond_harness_stop (mesh.store, SIGTERM);
    pond_harness_tempdir_done (&mesh.dir);
}

//  Start pond-test-counter with its key; fill endpoint with its query socket.
static void
s_start_actor (void)
{
    char ready [600], log [600];
    snprintf (ready, sizeof ready, "%s/test-counter.zpl", mesh.dir);
    snprintf (log, sizeof log, "%s/test-counter.log", mesh.dir);
    mesh.actor = pond_harness_spawn ("pond-test-counter", log, "--data", mesh.dir, "--keys",
                                     mesh.keys, "--query", "tcp://127.0.0.1:*", NULL);
    cr_assert_eq (pond_harness_wait_file (ready, 10000), 0, "pond-test-counter did not start");
    zconfig_t *config = zconfig_load (ready);
    cr_assert_not_null (config);
    cr_assert_str_eq (zconfig_get (config, "actor/key", ""), "test-counter");
    cr_assert (strncmp (zconfig_get (config, "actor/query", ""), "tcp://127.0.0.1:", 16) == 0);
    zconfig_destroy (&config);
}

TestSuite (security, .init = s_setup, .fini = s_teardown, .timeout = 60);

//  ---------------------------------------------------------------------
//  Ingest

Test (security, device_publishes_for_its_customer_with_source_stamped)
{
    //  Live events reach a subscriber through the CURVE pub socket too
    s_as (mesh.keys, "app-1");
    const char *names [] = { "QUACKED" };
    pond_sub_t *sub = pond_sub_new (mesh.eps.pub, names, 1);
    cr_assert_not_null (sub);
    //  Live once the broker's heartbeat for a new subscriber arrives
    int64_t deadline = zclock_mono () + 5000;
    while (pond_sub_heartbeats (sub) == 0 && zclock_mono () < deadline)
        pond_event_destroy (&(pond_event_t *) { pond_sub_recv (sub, 100) });
    cr_assert_gt (pond_sub_heartbeats (sub), 0, "the subscriber is live");

    s_as (mesh.keys, "silo-1");
    pond_ack_t ack;
    int code = 0;
    char reason [512] = "";
    int rc = s_publish ("QUACKED", "anna", "not-me", 3000, &ack, &code, reason, sizeof reason);
    cr_assert_eq (rc, 0, "publish as silo-1 for anna: %d %s", code, reason);
    cr_assert_eq (ack.seq, 1);

    pond_event_t *live = pond_sub_recv (sub, 5000);
    cr_assert_not_null (live, "no live event through the CURVE pub socket");
    cr_assert_str_eq (pond_event_source (live), "silo-1");
    pond_event_destroy (&live);
    pond_sub_destroy (&sub);

    //  The log has the key's name as source, whatever the event said
    s_as (mesh.keys, "admin");
    char *lines = s_replay_entity ("anna", &code);
    cr_assert_not_null (lines, "replay as admin: %d", code);
    cr_assert (strstr (lines, "\"source\":\"silo-1\""), "%s", lines);
    cr_assert_null (strstr (lines, "not-me"), "%s", lines);
    free (lines);
}

Test (security, device_publishing_for_another_customer_gets_403)
{
    s_as (mesh.keys, "silo-1");
    int code = 0;
    char reason [512] = "";
    for (int attempt = 0; attempt < 2; attempt++) {
        int rc = s_publish ("QUACKED", "ben", NULL, 3000, NULL, &code, reason, sizeof reason);
        cr_assert_eq (rc, -1);
        cr_assert_eq (code, POND_CODE_FORBIDDEN, "%d %s", code, reason);
        cr_assert (strstr (reason, "silo-1") && strstr (reason, "'ben'") && strstr (reason, "anna"),
                   "%s", reason);
    }
    //  Counted, logged once, nothing stored
    s_as (mesh.keys, "admin");
    char err [256] = "";
    char *stats = pond_client_stats (mesh.eps.control, 3000, err, sizeof err);
    cr_assert_not_null (stats, "%s", err);
    cr_assert (strstr (stats, "\"forbidden\":2"), "%s", stats);
    cr_assert (strstr (stats, "\"acked\":0"), "%s", stats);
    free (stats);
    char log [600];
    snprintf (log, sizeof log, "%s/broker.log", mesh.dir);
    cr_assert_eq (s_count_in_file (log, "may not publish for 'ben'"), 1);

    //  Through the command line, the same refusal, exit 1
    char args [1600];
    int rc;
    snprintf (args, sizeof args,
              "publish --data-dir %s --keys %s --as silo-1 --name QUACKED "
              "--entity ben",
              mesh.dir, mesh.keys);
    char *out = s_pond (&rc, args);
    cr_assert_eq (rc, 1, "%s", out);
    cr_assert (strstr (out, "403") && strstr (out, "may not publish for 'ben'"), "%s", out);
    free (out);
}

//  A batch from a device key: each event checked against the key on its
//  own (403 for the other customer's, the rest stored with the key's name
//  as source); the publisher sends one PUBLISH and maps the RESULTS back
Test (security, batch_from_a_device_is_checked_event_by_event)
{
    s_as (mesh.keys, "silo-1");
    pond_client_t *client = pond_client_new (mesh.eps.ingest);
    cr_assert_not_null (client);
    cr_assert_eq (pond_client_ping (client, 5000), 0);
    pond_publisher_t *publisher = pond_publisher_new (client);
    pond_publisher_set_batch (publisher, 8, 0);
    const char *entities [] = { "anna", "ben", "anna" };
    for (int i = 0; i < 3; i++) {
        pond_event_t *event = pond_event_new ("QUACKED", entities [i]);
        pond_event_set_source (event, "not-me");
        cr_assert_eq (pond_publisher_push_event (publisher, event, (uint64_t) i), 0);
        pond_event_destroy (&event);
    }
    int codes [3] = { 0 };
    for (int i = 0; i < 3; i++) {
        pond_publish_result_t result;
        cr_assert_eq (pond_publisher_next (publisher, 5000, &result), 1);
        cr_assert_lt (result.tag, 3);
        codes [result.tag] = result.code;
        cr_assert_eq (result.sends, 1);
    }
    cr_assert_eq (codes [0], POND_CODE_OK);
    cr_assert_eq (codes [1], POND_CODE_FORBIDDEN);
    cr_assert_eq (codes [2], POND_CODE_OK);
    pond_publisher_destroy (&publisher);
    pond_client_destroy (&client);
    s_as (mesh.keys, "admin");
    char err [256] = "";
    char *stats = pond_client_stats (mesh.eps.control, 3000, err, sizeof err);
    cr_assert_not_null (stats, "%s", err);
    cr_assert (strstr (stats, "\"batches\":1,"), "one PUBLISH: %s", stats);
    cr_assert (strstr (stats, "\"forbidden\":1,"), "%s", stats);
    free (stats);
    int code;
    char *lines = s_replay_entity ("anna", &code);
    cr_assert_not_null (lines, "replay as admin: %d", code);
    cr_assert_null (strstr (lines, "not-me"), "source stamped in a batch too: %s", lines);
    char *second = strstr (lines, "\"source\":\"silo-1\"");
    cr_assert (second && strstr (second + 1, "\"source\":\"silo-1\""), "%s", lines);
    free (lines);
}

Test (security, device_binary_with_keys)
{
    //  pond-device --keys: as its own key (--as defaults to --device)
    int rc;
    char *out = pond_harness_run (&rc,
                                  "%s/pond-device --data %s --keys %s --device silo-1 "
                                  "--customer anna --quack 2 --sync-timeout 10 2>&1",
                                  POND_BIN_DIR, mesh.dir, mesh.keys);
    cr_assert_eq (rc, 0, "%s", out);
    cr_assert (strstr (out, "\"sent\":2") && strstr (out, "\"rejected\":0"), "%s", out);
    free (out);
    //  ... for a customer it is not bound to: both events set aside (403)
    out = pond_harness_run (&rc,
                            "%s/pond-device --data %s --keys %s --device silo-1 "
                            "--outbox %s/devices/silo-1-ben --customer ben --quack 2 "
                            "--sync-timeout 10 2>&1",
                            POND_BIN_DIR, mesh.dir, mesh.keys, mesh.dir);
    cr_assert_eq (rc, 1, "refused events fail the run: %s", out);
    cr_assert (strstr (out, "\"sent\":0") && strstr (out, "\"rejected\":2"), "%s", out);
    free (out);
    //  ... as a key it has no secret for: nothing happens
    out = pond_harness_run (&rc,
                            "%s/pond-device --data %s --keys %s --device silo-7 "
                            "--customer anna --quack 1 2>&1",
                            POND_BIN_DIR, mesh.dir, mesh.keys);
    cr_assert_eq (rc, 1, "%s", out);
    cr_assert (strstr (out, "no secret key for 'silo-7'"), "%s", out);
    free (out);
}

Test (security, unknown_key_gets_no_service)
{
    //  A key pair the broker does not know: refused during the handshake,
    //  and the client says so at its first timeout rather than after all
    s_as (mesh.other, "stranger");
    int code = 0;
    char reason [512] = "";
    int64_t started = zclock_mono ();
    int rc = s_publish ("QUACKED", "anna", NULL, 1000, NULL, &code, reason, sizeof reason);
    int64_t took = zclock_mono () - started;
    cr_assert_eq (rc, -1);
    cr_assert_eq (code, POND_CODE_FORBIDDEN, "%d %s", code, reason);
    cr_assert (strstr (reason, "refused key 'stranger'"), "%s", reason);
    cr_assert_lt (took, 2500, "took %d ms", (int) took);
    char err [512] = "";
    char *stats = pond_client_stats (mesh.eps.control, 1000, err, sizeof err);
    cr_assert_null (stats);
    cr_assert (strstr (err, "refused key 'stranger'"), "%s", err);
    pond_replay_req_t request = { .from_seq = 1 };
    pond_reader_t *replay = pond_reader_new (mesh.eps.control, &request);
    cr_assert_null (pond_reader_next (replay, 1000));
    cr_assert_eq (pond_reader_code (replay), POND_CODE_FORBIDDEN, "%s",
                  pond_reader_reason (replay));
    pond_reader_destroy (&replay);

    //  The broker logged the key once
    char log [600];
    snprintf (log, sizeof log, "%s/broker.log", mesh.dir);
    cr_assert_eq (s_count_in_file (log, "refused a connection from"), 1);

    //  A known key is served as before
    s_as (mesh.keys, "silo-1");
    rc = s_publish ("QUACKED", "anna", NULL, 3000, NULL, &code, reason, sizeof reason);
    cr_assert_eq (rc, 0, "%d %s", code, reason);

    //  The command line tells the stranger the same
    char args [1600];
    snprintf (args, sizeof args,
              "publish --data-dir %s --keys %s --as stranger --name QUACKED "
              "--entity anna --timeout 1000",
              mesh.dir, mesh.other);
    char *out = s_pond (&rc, args);
    cr_assert_eq (rc, 1, "%s", out);
    cr_assert (strstr (out, "refused key 'stranger'"), "%s", out);
    free (out);
}

Test (security, unknown_name_or_missing_secret_is_refused_locally)
{
    char err [512] = "";
    cr_assert_eq (pond_keys_use (mesh.keys, "nobody", err, sizeof err), -1);
    cr_assert (strstr (err, "no secret key for 'nobody'"), "%s", err);
    cr_assert_eq (pond_keys_use (mesh.keys, "../admin", err, sizeof err), -1);
    cr_assert_not (pond_keys_active ());
    int rc;
    char args [1600];
    snprintf (args, sizeof args, "stats --data %s --keys %s --as nobody", mesh.dir, mesh.keys);
    char *out = s_pond (&rc, args);
    cr_assert_eq (rc, 1, "%s", out);
    cr_assert (strstr (out, "no secret key for 'nobody'"), "%s", out);
    free (out);
}

//  ---------------------------------------------------------------------
//  Control

Test (security, control_socket_is_for_the_admin)
{
    char err [512] = "";
    int code = 0;
    //  A device: neither STATS nor REPLAY
    s_as (mesh.keys, "silo-1");
    char *stats = pond_client_stats (mesh.eps.control, 3000, err, sizeof err);
    cr_assert_null (stats);
    cr_assert (strstr (err, "403") && strstr (err, "STATS"), "%s", err);
    cr_assert_null (s_replay_entity ("anna", &code));
    cr_assert_eq (code, POND_CODE_FORBIDDEN);
    //  An app: no REPLAY either
    s_as (mesh.keys, "app-1");
    cr_assert_null (s_replay_entity ("anna", &code));
    cr_assert_eq (code, POND_CODE_FORBIDDEN);
    //  An actor: REPLAY (its catch-up), not STATS
    s_as (mesh.keys, "test-counter");
    char *lines = s_replay_entity ("anna", &code);
    cr_assert_not_null (lines, "actor replay: %d", code);
    free (lines);
    cr_assert_null (pond_client_stats (mesh.eps.control, 3000, err, sizeof err));
    cr_assert (strstr (err, "403"), "%s", err);
    //  The admin: everything
    s_as (mesh.keys, "admin");
    stats = pond_client_stats (mesh.eps.control, 3000, err, sizeof err);
    cr_assert_not_null (stats, "%s", err);
    cr_assert (strstr (stats, "\"forbidden\":4"), "%s", stats);
    free (stats);
    lines = s_replay_entity ("anna", &code);
    cr_assert_not_null (lines, "admin replay: %d", code);
    free (lines);

    //  The command line: --as silo-1 refused, the admin (default) served
    int rc;
    char args [1600];
    snprintf (args, sizeof args, "stats --data %s --keys %s --as silo-1", mesh.dir, mesh.keys);
    char *out = s_pond (&rc, args);
    cr_assert_eq (rc, 1, "%s", out);
    cr_assert (strstr (out, "403"), "%s", out);
    free (out);
    snprintf (args, sizeof args, "POND_KEYS=%s %s/pond stats --data %s --compact 2>&1", mesh.keys,
              POND_BIN_DIR, mesh.dir);
    out = pond_harness_run (&rc, "%s", args);
    cr_assert_eq (rc, 0, "%s", out);
    cr_assert (strstr (out, "\"forbidden\":5"), "%s", out);
    free (out);
}

//  ---------------------------------------------------------------------
//  An actor with keys

Test (security, actor_query_socket_takes_actor_app_and_admin_keys)
{
    s_start_actor ();
    //  The actor catches up, emits (TEST_PONG for TEST_PING) and its
    //  events carry its key's name
    s_as (mesh.keys, "admin");
    int code = 0;
    char reason [512] = "";
    cr_assert_eq (s_publish ("TEST_PING", "anna", NULL, 3000, NULL, &code, reason, sizeof reason),
                  0, "%d %s", code, reason);
    char *lines = NULL;
    for (int i = 0; i < 100; i++) {
        lines = s_replay_entity ("anna", &code);
        cr_assert_not_null (lines, "replay: %d", code);
        if (strstr (lines, "TEST_PONG"))
            break;
        free (lines);
        lines = NULL;
        zclock_sleep (100);
    }
    cr_assert_not_null (lines, "the actor never emitted TEST_PONG");
    cr_assert (strstr (lines, "\"name\":\"TEST_PONG\"")
                   && strstr (lines, "\"source\":\"test-counter\""),
               "%s", lines);
    free (lines);

    char err [512];
    //  A device: refused (403)
    s_as (mesh.keys, "silo-1");
    pond_actor_link_t *link = pond_actor_link_new (mesh.dir, "test-counter", err, sizeof err);
    cr_assert_not_null (link, "%s", err);
    char *status = pond_actor_link_status (link, 3000);
    cr_assert_null (status);
    cr_assert_eq (pond_actor_link_code (link), POND_CODE_FORBIDDEN, "%d %s",
                  pond_actor_link_code (link), pond_actor_link_reason (link));
    cr_assert (strstr (pond_actor_link_reason (link), "query socket"), "%s",
               pond_actor_link_reason (link));
    pond_actor_link_destroy (&link);
    //  An app and the admin: answered
    const char *allowed [] = { "app-1", "admin" };
    for (size_t i = 0; i < 2; i++) {
        s_as (mesh.keys, allowed [i]);
        link = pond_actor_link_new (mesh.dir, "test-counter", err, sizeof err);
        cr_assert_not_null (link, "%s", err);
        char *answer = pond_actor_link_query (link, "anna", NULL, 3000);
        cr_assert_not_null (answer, "%s: %d %s", allowed [i], pond_actor_link_code (link),
                            pond_actor_link_reason (link));
        cr_assert (strstr (answer, "TEST_PING"), "%s", answer);
        free (answer);
        pond_actor_link_destroy (&link);
    }
    //  The app only about its own customers, and only with QUERY
    s_as (mesh.keys, "app-1");
    link = pond_actor_link_new (mesh.dir, "test-counter", err, sizeof err);
    cr_assert_not_null (link, "%s", err);
    cr_assert_null (pond_actor_link_query (link, "ben", NULL, 3000));
    cr_assert_eq (pond_actor_link_code (link), POND_CODE_FORBIDDEN);
    cr_assert (strstr (pond_actor_link_reason (link), "may not ask about 'ben'")
                   && strstr (pond_actor_link_reason (link), "anna"),
               "%s", pond_actor_link_reason (link));
    cr_assert_null (pond_actor_link_status (link, 3000));
    cr_assert_eq (pond_actor_link_code (link), POND_CODE_FORBIDDEN);
    cr_assert (strstr (pond_actor_link_reason (link), "only QUERY"), "%s",
               pond_actor_link_reason (link));
    pond_actor_link_destroy (&link);
    //  A stranger: refused by the actor's ZAP handler, and told so
    s_as (mesh.other, "stranger");
    link = pond_actor_link_new (mesh.dir, "test-counter", err, sizeof err);
    cr_assert_not_null (link, "%s", err);
    cr_assert_null (pond_actor_link_status (link, 1500));
    cr_assert_eq (pond_actor_link_code (link), POND_CODE_FORBIDDEN, "%d %s",
                  pond_actor_link_code (link), pond_actor_link_reason (link));
    cr_assert (strstr (pond_actor_link_reason (link), "refused key 'stranger'"), "%s",
               pond_actor_link_reason (link));
    pond_actor_link_destroy (&link);
    //  No keys at all: the link says the actor wants them
    pond_keys_reset ();
    link = pond_actor_link_new (mesh.dir, "test-counter", err, sizeof err);
    cr_assert_not_null (link, "%s", err);
    cr_assert_null (pond_actor_link_status (link, 1000));
    cr_assert (strstr (pond_actor_link_reason (link), "uses CURVE"), "%s",
               pond_actor_link_reason (link));
    pond_actor_link_destroy (&link);
    //  Both servers with keys stop cleanly (under ASan: no leak, no error)
    int stopped = pond_harness_stop (mesh.actor, SIGTERM);
    mesh.actor = 0;
    cr_assert (WIFEXITED (stopped) && WEXITSTATUS (stopped) == 0, "actor status %d", stopped);
    stopped = pond_harness_stop (mesh.broker, SIGTERM);
    mesh.broker = 0;
    cr_assert (WIFEXITED (stopped) && WEXITSTATUS (stopped) == 0, "broker status %d", stopped);
}

//  ---------------------------------------------------------------------
//  Commands through the broker: the admin's; the broker's own key runs
//  them on the actor's CURVE query socket

Test (security, commands_are_for_the_admin)
{
    s_start_actor ();
    pond_command_t *command = calloc (1, sizeof *command);
    pond_command_status_t *status = malloc (sizeof *status);
    cr_assert (command && status);
    strcpy (command->command, "rebuild");
    strcpy (command->view, "test-counter");
    pond_command_failure_t failure;
    const char *refused [] = { "silo-1", "app-1", "test-counter" };
    for (size_t i = 0; i < 3; i++) {
        s_as (mesh.keys, refused [i]);
        cr_assert_eq (pond_command_link_submit (mesh.eps.control, command, 3000, status, &failure),
                      -1, "%s may not send COMMAND", refused [i]);
        cr_assert_eq (failure.code, POND_CODE_FORBIDDEN, "%s: %d %s", refused [i], failure.code,
                      failure.reason);
        cr_assert (strstr (failure.reason, "COMMAND"), "%s", failure.reason);
    }
    s_as (mesh.keys, "admin");
    cr_assert_eq (pond_command_link_submit (mesh.eps.control, command, 3000, status, &failure), 0,
                  "%d %s", failure.code, failure.reason);
    uint8_t id [POND_ID_SIZE];
    memcpy (id, status->id, POND_ID_SIZE);
    for (int i = 0; i < 200 && !pond_command_link_finished (status); i++) {
        zclock_sleep (50);
        cr_assert_eq (pond_command_link_status (mesh.eps.control, id, 3000, status, &failure), 0,
                      "%d %s", failure.code, failure.reason);
    }
    cr_assert_str_eq (status->status, "done", "%u %s", status->code, status->reason);
    cr_assert (status->has_result && strstr (status->result, "\"rebuild\""), "%s", status->result);
    //  An app may not even ask where it is
    s_as (mesh.keys, "app-1");
    cr_assert_eq (pond_command_link_status (mesh.eps.control, id, 3000, status, &failure), -1);
    cr_assert_eq (failure.code, POND_CODE_FORBIDDEN);
    free (command);
    free (status);
}

//  ---------------------------------------------------------------------
//  The keys directory changes while the broker runs

Test (security, keys_added_and_removed_while_running)
{
    //  A key made now is let in at once
    s_key (mesh.keys, "--role device --name silo-2 --customer anna");
    s_as (mesh.keys, "silo-2");
    int code = 0;
    char reason [512] = "";
    int rc = s_publish ("QUACKED", "anna", NULL, 3000, NULL, &code, reason, sizeof reason);
    cr_assert_eq (rc, 0, "new key: %d %s", code, reason);

    //  A key removed is refused within seconds, on the open connection too
    s_as (mesh.keys, "silo-1");
    pond_client_t *client = pond_client_new (mesh.eps.ingest);
    pond_event_t *event = pond_event_new ("QUACKED", "anna");
    cr_assert_eq (pond_client_publish (client, event, NULL), 0, "%s", pond_client_reason (client));
    char args [1200];
    snprintf (args, sizeof args, "keys remove --keys %s --name silo-1", mesh.keys);
    char *out = s_pond (&rc, args);
    cr_assert_eq (rc, 0, "%s", out);
    free (out);
    zclock_sleep (POND_KEYS_RESCAN_MS + 500);
    pond_event_destroy (&event);
    event = pond_event_new ("QUACKED", "anna");
    cr_assert_eq (pond_client_publish (client, event, NULL), -1);
    cr_assert_eq (pond_client_code (client), POND_CODE_FORBIDDEN, "%d %s",
                  pond_client_code (client), pond_client_reason (client));
    cr_assert (strstr (pond_client_reason (client), "no longer"), "%s",
               pond_client_reason (client));
    pond_event_destroy (&event);
    pond_client_destroy (&client);
}

//  ---------------------------------------------------------------------
//  pond keys: success and failure paths (no mesh needed)

static char *keys_dir;

static void
s_keys_setup (void)
{
    char *temp = pond_harness_tempdir ();
    cr_assert_not_null (temp);
    keys_dir = zsys_sprintf ("%s/keys", temp);
    free (temp);
}

static void
s_keys_teardown (void)
{
    char *parent = strdup (keys_dir);
    *strrchr (parent, '/') = 0;
    pond_harness_rmtree (parent);
    free (parent);
    zstr_free (&keys_dir);
}

//  ---------------------------------------------------------------------
//  The store link

//  Send command to the store link as the current key; returns the reply's
//  first two frames as "COMMAND code reason" (caller frees), or NULL if
//  nothing came within timeout_ms.
static char *
s_store_ask (const char *command, int timeout_ms)
{
    zsock_t *sock = zsock_new (ZMQ_DEALER);
    cr_assert_not_null (sock);
    zsock_set_linger (sock, 0);
    cr_assert_eq (pond_keys_client (sock, "store"), 0);
    cr_assert_eq (zsock_connect (sock, "%s", mesh.store_endpoint), 0);
    zsock_set_rcvtimeo (sock, timeout_ms);
    zsock_set_sndtimeo (sock, timeout_ms);
    char *answer = NULL;
    if (zstr_send (sock, command) == 0) {
        zmsg_t *reply = zmsg_recv (sock);
        if (reply) {
            char *name = zmsg_popstr (reply);
            zframe_t *body = zmsg_pop (reply);
            pond_nack_t error = { 0 };
            char err [256] = "";
            if (body && pond_nack_decode (body, &error, err, sizeof err) == 0)
                answer = zsys_sprintf ("%s %u %s", name, error.code, error.reason);
            else
                answer = zsys_sprintf ("%s", name ? name : "");
            zstr_free (&name);
            zframe_destroy (&body);
            zmsg_destroy (&reply);
        }
    }
    zsock_destroy (&sock);
    return answer;
}

Test (security, store_link_takes_only_the_broker_key)
{
    //  The broker reached the store over CURVE (setup saw store_up); a
    //  publish goes all the way through
    s_as (mesh.keys, "silo-1");
    pond_ack_t ack;
    int code = 0;
    char reason [512] = "";
    cr_assert_eq (s_publish ("QUACKED", "anna", NULL, 3000, &ack, &code, reason, sizeof reason), 0,
                  "%d %s", code, reason);

    //  Known keys that are not the broker's get 403 from the store, even admin
    const char *who [] = { "admin", "silo-1", "test-counter" };
    for (size_t i = 0; i < 3; i++) {
        s_as (mesh.keys, who [i]);
        char *answer = s_store_ask ("PING", 3000);
        cr_assert_not_null (answer, "%s: no answer from the store", who [i]);
        cr_assert (strstr (answer, "ERROR 403") && strstr (answer, "only the broker"), "%s: %s",
                   who [i], answer);
        free (answer);
    }
    //  A stranger's key fails the handshake: no answer at all
    s_as (mesh.other, "stranger");
    char command [1600];
    snprintf (command, sizeof command, "cp %s/public/store.cert %s/public/", mesh.keys, mesh.other);
    cr_assert_eq (system (command), 0);
    char *answer = s_store_ask ("PING", 1000);
    cr_assert_null (answer, "a stranger got an answer from the store: %s", answer);
    //  The store logged the refusal once, and still serves the broker
    char log [600];
    snprintf (log, sizeof log, "%s/store.log", mesh.dir);
    cr_assert_eq (s_count_in_file (log, "only the broker talks to the store"), 1);
    s_as (mesh.keys, "silo-1");
    cr_assert_eq (s_publish ("QUACKED", "anna", NULL, 3000, &ack, &code, reason, sizeof reason), 0,
                  "%d %s", code, reason);
    cr_assert_eq (ack.seq, 2);
}

Test (security, broker_refuses_a_tcp_store_link_without_a_store_key)
{
    //  A keys directory with no store key, and a store on tcp: the broker
    //  will not send the log over the network in the clear
    char keys [600], command [4096];
    snprintf (keys, sizeof keys, "%s/nostore", mesh.dir);
    snprintf (command, sizeof command,
              "mkdir -p %s/public %s/secret && cp %s/public/broker.cert "
              "%s/public/ && cp %s/secret/broker.cert_secret %s/secret/",
              keys, keys, mesh.keys, keys, mesh.keys, keys);
    cr_assert_eq (system (command), 0);
    int rc;
    char *out = pond_harness_run (&rc,
                                  "timeout 20 %s/pond-broker --data %s/other-broker --keys %s "
                                  "--store %s --ingest tcp://127.0.0.1:* --pub tcp://127.0.0.1:* "
                                  "--control tcp://127.0.0.1:* 2>&1",
                                  POND_BIN_DIR, mesh.dir, keys, mesh.store_endpoint);
    cr_assert_neq (rc, 0, "%s", out);
    cr_assert (strstr (out, "no store key") && strstr (out, "--role store"), "%s", out);
    free (out);
    //  And pond-store --keys without its own secret says what to do
    out = pond_harness_run (&rc, "timeout 20 %s/pond-store --data %s/other-store --keys %s 2>&1",
                            POND_BIN_DIR, mesh.dir, keys);
    cr_assert_eq (rc, 2, "%s", out);
    cr_assert (strstr (out, "no secret key for 'store'") && strstr (out, "pond keys new"), "%s",
               out);
    free (out);
}

TestSuite (keys_cli, .init = s_keys_setup, .fini = s_keys_teardown, .timeout = 30);

Test (keys_cli, new_list_remove)
{
    int rc;
    char args [1024];
    snprintf (args, sizeof args,
              "keys new --keys %s --role device --name silo-1 "
              "--customer anna --customer ben",
              keys_dir);
    char *out = s_pond (&rc, args);
    cr_assert_eq (rc, 0, "%s", out);
    cr_assert (strstr (out, "made key 'silo-1' (device, customers anna,ben)"), "%s", out);
    free (out);
    //  Both halves, the secret one private
    char path [1200];
    struct stat info;
    snprintf (path, sizeof path, "%s/secret/silo-1.cert_secret", keys_dir);
    cr_assert_eq (stat (path, &info), 0);
    cr_assert_eq (info.st_mode & 0777, 0600, "mode %o", info.st_mode & 0777);
    snprintf (path, sizeof path, "%s/public/silo-1.cert", keys_dir);
    zcert_t *cert = zcert_load (path);
    cr_assert_not_null (cert);
    cr_assert_str_eq (zcert_meta (cert, "role"), "device");
    cr_assert_str_eq (zcert_meta (cert, "name"), "silo-1");
    cr_assert_str_eq (zcert_meta (cert, "customers"), "anna,ben");
    zcert_destroy (&cert);
    //  The broker's key defaults to its name
    snprintf (args, sizeof args, "keys new --keys %s --role broker", keys_dir);
    out = s_pond (&rc, args);
    cr_assert_eq (rc, 0, "%s", out);
    free (out);
    //  POND_KEYS stands for --keys
    out = pond_harness_run (&rc, "POND_KEYS=%s %s/pond keys list 2>&1", keys_dir, POND_BIN_DIR);
    cr_assert_eq (rc, 0, "%s", out);
    cr_assert (strstr (out, "silo-1") && strstr (out, "device") && strstr (out, "anna,ben")
                   && strstr (out, "broker"),
               "%s", out);
    free (out);
    //  The library sees the same
    char err [256];
    pond_keyring_t *ring = pond_keyring_new (keys_dir, err, sizeof err);
    cr_assert_not_null (ring, "%s", err);
    cr_assert_eq (pond_keyring_size (ring), 2);
    const pond_key_t *key = pond_keyring_find (ring, "silo-1");
    cr_assert_not_null (key);
    cr_assert (pond_key_binds (key, "anna") && pond_key_binds (key, "ben"));
    cr_assert_not (pond_key_binds (key, "ann") || pond_key_binds (key, "anna,ben"));
    cr_assert (pond_key_has_secret (key));
    pond_keyring_destroy (&ring);
    //  Remove
    snprintf (args, sizeof args, "keys remove --keys %s --name silo-1", keys_dir);
    out = s_pond (&rc, args);
    cr_assert_eq (rc, 0, "%s", out);
    free (out);
    cr_assert_not (zsys_file_exists (path));
    out = s_pond (&rc, args);
    cr_assert_eq (rc, 1, "%s", out);
    cr_assert (strstr (out, "no key 'silo-1'"), "%s", out);
    free (out);
}

Test (keys_cli, refuses_bad_input)
{
    struct {
        const char *args;
        int exit;
        const char *says;
    } cases [] = {
        { "--role devise --name x", 2, "unknown role 'devise'" },
        { "--name x", 2, "--role ROLE is required" },
        { "--role device --customer anna", 2, "--name NAME is required" },
        { "--role device --name silo-9", 2, "at least one customer" },
        { "--role admin --name root --customer anna", 2, "only device and app keys" },
        { "--role device --name ev/il --customer anna", 2, "may only hold" },
        { "--role device --name .hidden --customer anna", 2, "must not start with '.'" },
        { "--role device --name x --customer a,b", 2, "must not hold" },
        { "--role actor --name broker", 2, "only it, is named 'broker'" },
        { "--role broker --name central", 2, "only it, is named 'broker'" },
    };
    int rc;
    char args [1024];
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        snprintf (args, sizeof args, "keys new --keys %s %s", keys_dir, cases [i].args);
        char *out = s_pond (&rc, args);
        cr_assert_eq (rc, cases [i].exit, "%s: exit %d: %s", cases [i].args, rc, out);
        cr_assert (strstr (out, cases [i].says), "%s: %s", cases [i].args, out);
        free (out);
    }
    //  An existing name is not overwritten
    snprintf (args, sizeof args, "keys new --keys %s --role admin --name admin", keys_dir);
    char *out = s_pond (&rc, args);
    cr_assert_eq (rc, 0, "%s", out);
    free (out);
    char path [1200];
    snprintf (path, sizeof path, "%s/public/admin.cert", keys_dir);
    zcert_t *before = zcert_load (path);
    cr_assert_not_null (before);
    out = s_pond (&rc, args);
    cr_assert_eq (rc, 1, "%s", out);
    cr_assert (strstr (out, "exists already"), "%s", out);
    free (out);
    zcert_t *after = zcert_load (path);
    cr_assert_not_null (after);
    cr_assert_str_eq (zcert_public_txt (before), zcert_public_txt (after));
    zcert_destroy (&before);
    zcert_destroy (&after);
    //  No action, an unknown one, a directory without keys
    out = s_pond (&rc, "keys");
    cr_assert_eq (rc, 2, "%s", out);
    free (out);
    out = s_pond (&rc, "keys make");
    cr_assert_eq (rc, 2, "%s", out);
    cr_assert (strstr (out, "unknown action 'make'"), "%s", out);
    free (out);
    snprintf (args, sizeof args, "keys list --keys %s/nowhere", keys_dir);
    out = s_pond (&rc, args);
    cr_assert_eq (rc, 1, "%s", out);
    free (out);
}

Test (keys_cli, a_copied_key_file_does_not_confuse_the_keyring)
{
    int rc;
    char args [1024];
    snprintf (args, sizeof args, "keys new --keys %s --role admin --name admin", keys_dir);
    char *out = s_pond (&rc, args);
    cr_assert_eq (rc, 0, "%s", out);
    free (out);
    //  A backup copy: same key, same name (zauth's store would abort here)
    char command [2600];
    snprintf (command, sizeof command, "cp %s/public/admin.cert %s/public/admin-copy.cert",
              keys_dir, keys_dir);
    cr_assert_eq (system (command), 0);
    char err [256];
    pond_keyring_t *ring = pond_keyring_new (keys_dir, err, sizeof err);
    cr_assert_not_null (ring, "%s", err);
    cr_assert_eq (pond_keyring_size (ring), 1);
    pond_keyring_destroy (&ring);
}
