/*  test_remote: the parts of a mesh told where the others are, instead of
    finding them in one data directory, as on several hosts (test_hosts.sh
    runs them on real separate network stacks; this runs everywhere, on
    ipc endpoints). An actor with a data directory of its own and the
    broker's endpoints as options catches up, applies live events, and
    pond verify checks it when given the broker's control endpoint; a
    gateway with a third directory reaches the broker and the actor by the
    endpoints it was given. Malformed endpoint options are usage errors
    (exit 2), and a link to an actor needs a name and an endpoint.
*/
#include <criterion/criterion.h>
#include <signal.h>

#include "pond_actor_link.h"
#include "pond_client.h"
#include "pond_harness.h"

static pond_mesh_t *mesh;
static char *elsewhere;    //  the actor's data directory: no broker.zpl in it
static char *third;        //  the gateway's
static pid_t counter;
static pid_t gateway;

static void
s_setup (void)
{
    mesh = pond_harness_mesh_up ();
    elsewhere = pond_harness_tempdir ();
    third = pond_harness_tempdir ();
}

static void
s_teardown (void)
{
    if (gateway > 0)
        pond_harness_stop (gateway, SIGTERM);
    if (counter > 0)
        pond_harness_stop (counter, SIGTERM);
    pond_mesh_destroy (&mesh);
    pond_harness_rmtree (elsewhere);
    pond_harness_rmtree (third);
    free (elsewhere);
    free (third);
}

TestSuite (remote, .init = s_setup, .fini = s_teardown, .timeout = 90);

//  The quack counter in its own directory, told where the broker is
static void
s_start_counter (void)
{
    char log [512], ready [512];
    snprintf (log, sizeof log, "%s/quack-counter.log", elsewhere);
    counter = pond_harness_spawn ("pond-quack-counter", log, "--data", elsewhere, "--ingest",
                                  mesh->ingest, "--pub", mesh->pub, "--control", mesh->control,
                                  NULL);
    cr_assert_gt (counter, 0);
    snprintf (ready, sizeof ready, "%s/quack-counter.zpl", elsewhere);
    cr_assert_eq (pond_harness_wait_file (ready, 10000), 0, "the quack counter starts");
}

//  Publish count QUACKED for entity to the mesh; returns the last seq
static uint64_t
s_quack (const char *entity, int count)
{
    uint64_t seq = 0;
    for (int i = 0; i < count; i++) {
        int rc;
        char *out = pond_harness_run (&rc,
                                      "%s/pond publish --data %s --name QUACKED --entity %s "
                                      "--seq-only",
                                      POND_BIN_DIR, mesh->dir, entity);
        cr_assert_eq (rc, 0, "publish: %s", out);
        seq = strtoull (out, NULL, 10);
        free (out);
    }
    return seq;
}

Test (remote, actor_and_verify_with_the_broker_endpoints_given)
{
    //  Stored before the actor starts (catch-up) and after (live)
    s_quack ("anna", 2);
    s_start_counter ();
    uint64_t seq = s_quack ("anna", 3);
    int rc;
    char *out = pond_harness_run (&rc, "%s/pond query quacks anna --data %s --after %llu 2>&1",
                                  POND_BIN_DIR, elsewhere, (unsigned long long) seq);
    cr_assert_eq (rc, 0, "%s", out);
    cr_assert (strstr (out, "\"quacks\":5"), "%s", out);
    free (out);

    //  pond query from a directory of its own, told the actor's query
    //  endpoint (as from another host)
    char path [512];
    snprintf (path, sizeof path, "%s/quack-counter.zpl", elsewhere);
    zconfig_t *ready = zconfig_load (path);
    cr_assert_not_null (ready);
    char *endpoint = strdup (zconfig_get (ready, "actor/query", ""));
    zconfig_destroy (&ready);
    out = pond_harness_run (&rc, "%s/pond query quacks anna --data %s --query %s 2>&1",
                            POND_BIN_DIR, third, endpoint);
    cr_assert_eq (rc, 0, "%s", out);
    cr_assert (strstr (out, "\"quacks\":5"), "%s", out);
    free (out);
    //  ... without it that directory has no actor; not an endpoint: usage
    out = pond_harness_run (&rc, "%s/pond query quacks anna --data %s --timeout 1000 2>&1",
                            POND_BIN_DIR, third);
    cr_assert_eq (rc, 1, "%s", out);
    free (out);
    out = pond_harness_run (&rc, "%s/pond query quacks anna --data %s --query %s 2>&1",
                            POND_BIN_DIR, third, "localhost:7010");
    cr_assert_eq (rc, 2, "%s", out);
    cr_assert (strstr (out, "--query takes the actor's query endpoint"), "%s", out);
    free (out);
    free (endpoint);

    //  pond verify replays from the broker whose control endpoint it is given
    out = pond_harness_run (&rc, "%s/pond verify quacks --data %s --control %s 2>&1", POND_BIN_DIR,
                            elsewhere, mesh->control);
    cr_assert_eq (rc, 0, "%s", out);
    cr_assert (strstr (out, "1 of 1 views match"), "%s", out);
    free (out);
    //  ... and without it finds no broker in that directory
    out = pond_harness_run (&rc, "%s/pond verify quacks --data %s --timeout 3000 2>&1",
                            POND_BIN_DIR, elsewhere);
    cr_assert_eq (rc, 1, "%s", out);
    cr_assert (strstr (out, "0 of 1 views match"), "%s", out);
    free (out);
}

Test (remote, actor_refuses_malformed_broker_endpoints)
{
    const char *cases [][2] = { { "--ingest", "nonsense" },
                                { "--pub", "" },
                                { "--control", "127.0.0.1:7003" } };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        int rc;
        char *out = pond_harness_run (&rc, "%s/pond-quack-counter --data %s %s '%s' 2>&1",
                                      POND_BIN_DIR, elsewhere, cases [i][0], cases [i][1]);
        cr_assert_eq (rc, 2, "%s '%s': exit %d: %s", cases [i][0], cases [i][1], rc, out);
        cr_assert (strstr (out, cases [i][0]) && strstr (out, "tcp://HOST:PORT"), "%s", out);
        free (out);
    }
    //  Nothing was started: no ready file, no view
    char path [512];
    snprintf (path, sizeof path, "%s/quack-counter.zpl", elsewhere);
    cr_assert_not (zsys_file_exists (path));
    //  --help names the options
    int rc;
    char *out = pond_harness_run (&rc, "%s/pond-quack-counter --help", POND_BIN_DIR);
    cr_assert (strstr (out, "--ingest EP, --pub EP, --control EP"), "%s", out);
    free (out);
}

//  GET or POST (body) path on the gateway; returns "STATUS\nBODY"
static char *
s_http (const char *url, const char *method, const char *path, const char *body)
{
    int rc;
    char *out = pond_harness_run (
        &rc,
        "curl -s -H 'Expect:' -w '%%{http_code}\\n' -o %s/body -X %s %s%s "
        "'%s%s'; cat %s/body",
        third, method, body ? "--data " : "", body ? body : "", url, path, third);
    cr_assert_eq (rc, 0, "curl %s %s", method, path);
    return out;
}

Test (remote, gateway_with_the_broker_and_actor_endpoints_given)
{
    s_start_counter ();
    char endpoint [600];
    snprintf (endpoint, sizeof endpoint, "quacks=ipc://%s/quack-counter.ipc", elsewhere);
    char log [512], ready [512];
    snprintf (log, sizeof log, "%s/gateway.log", third);
    gateway = pond_harness_spawn ("pond-gateway", log, "--data", third, "--ingest", mesh->ingest,
                                  "--control", mesh->control, "--actor", endpoint, NULL);
    cr_assert_gt (gateway, 0);
    snprintf (ready, sizeof ready, "%s/gateway.zpl", third);
    cr_assert_eq (pond_harness_wait_file (ready, 10000), 0, "the gateway starts");
    zconfig_t *config = zconfig_load (ready);
    char url [64];
    snprintf (url, sizeof url, "%s", zconfig_get (config, "gateway/url", ""));
    zconfig_destroy (&config);

    char *out = s_http (url, "POST", "/v1/events",
                        "'{\"id\":\"018f3a5b-6c7d-7e8f-90a1-b2c3d4e5f607\",\"name\":\"QUACKED\","
                        "\"entity\":\"anna\"}'");
    cr_assert (strncmp (out, "201\n", 4) == 0 && strstr (out, "\"seq\":1"), "%s", out);
    free (out);
    out = s_http (url, "GET", "/v1/views/quacks/anna?after=1", NULL);
    cr_assert (strncmp (out, "200\n", 4) == 0 && strstr (out, "\"quacks\":1"), "%s", out);
    free (out);
    out = s_http (url, "GET", "/metrics", NULL);
    cr_assert (strstr (out, "\npond_up 1\n"), "%s", out);
    cr_assert (strstr (out, "\npond_store_head 1\n"), "%s", out);
    cr_assert (strstr (out, "\npond_actor_position{actor=\"quack-counter\"} 1\n"), "%s", out);
    free (out);
    //  An actor it was not told of is looked for in its directory: not there
    out = s_http (url, "GET", "/v1/views/alexa/anna", NULL);
    cr_assert (strncmp (out, "503\n", 4) == 0 && strstr (out, "alexa-view is not running"), "%s",
               out);
    free (out);
}

Test (remote, gateway_refuses_malformed_endpoint_options)
{
    const char *cases [] = {
        "--actor nonsense=tcp://127.0.0.1:1", "--actor quacks",    "--actor quacks=127.0.0.1:7010",
        "--actor =tcp://127.0.0.1:1",         "--ingest nonsense", "--control ''"
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        int rc;
        char *out = pond_harness_run (&rc, "%s/pond-gateway --data %s %s 2>&1", POND_BIN_DIR, third,
                                      cases [i]);
        cr_assert_eq (rc, 2, "%s: exit %d: %s", cases [i], rc, out);
        cr_assert (strstr (out, "pond-gateway: --"), "%s", out);
        free (out);
    }
    char path [512];
    snprintf (path, sizeof path, "%s/gateway.zpl", third);
    cr_assert_not (zsys_file_exists (path), "no gateway started");
}

Test (remote, actor_link_at_needs_a_name_and_an_endpoint)
{
    char err [256] = "";
    cr_assert_null (pond_actor_link_new_at ("quack-counter", "", NULL, err, sizeof err));
    cr_assert (strstr (err, "empty or too long"), "%s", err);
    cr_assert_null (pond_actor_link_new_at ("", "tcp://127.0.0.1:1", NULL, err, sizeof err));
    char endpoint [POND_ENDPOINT_MAX + 8];
    memset (endpoint, 'x', sizeof endpoint - 1);
    endpoint [sizeof endpoint - 1] = 0;
    cr_assert_null (pond_actor_link_new_at ("quack-counter", endpoint, NULL, err, sizeof err));
    pond_actor_link_t *link = pond_actor_link_new_at ("quack-counter", "tcp://127.0.0.1:1", NULL,
                                                      err, sizeof err);
    cr_assert_not_null (link, "%s", err);
    cr_assert_str_eq (pond_actor_link_endpoint (link), "tcp://127.0.0.1:1");
    //  Nothing listens there: a timeout, not a hang
    cr_assert_null (pond_actor_link_status (link, 300));
    cr_assert_eq (pond_actor_link_code (link), POND_CODE_TIMEOUT);
    pond_actor_link_destroy (&link);
}
