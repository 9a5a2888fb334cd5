/*  test_e2e: the user's path through the log, with the real binaries: a
    store and a broker, then `pond publish`, `pond tail`, `pond replay` and
    `pond stats` as a user types them, checking what they print.
*/
#include <criterion/criterion.h>
#include <czmq.h>
#include <signal.h>

#include "pond_harness.h"

static pond_mesh_t *mesh;

static void
s_setup (void)
{
    mesh = pond_mesh_start ();
    cr_assert_not_null (mesh, "store and broker must start");
}

static void
s_teardown (void)
{
    pond_mesh_destroy (&mesh);
}

TestSuite (e2e, .init = s_setup, .fini = s_teardown, .timeout = 60);

//  Run `pond ARGS` against the mesh; returns stdout (caller frees).
static char *
s_pond (int *exit_p, const char *args)
{
    char *out = pond_harness_run (exit_p, "POND_DATA=%s %s/pond %s 2>%s/cli.err", mesh->dir,
                                  POND_BIN_DIR, args, mesh->dir);
    cr_assert_not_null (out);
    return out;
}

static size_t
s_lines (const char *text)
{
    size_t lines = 0;
    for (; *text; text++)
        lines += *text == '\n';
    return lines;
}

Test (e2e, publish_tail_replay_stats)
{
    //  tail first, so it sees the events live
    char tail_log [512];
    snprintf (tail_log, sizeof tail_log, "%s/tail.out", mesh->dir);
    char data_arg [512];
    snprintf (data_arg, sizeof data_arg, "--data=%s", mesh->dir);
    pid_t tail = pond_harness_spawn ("pond", tail_log, "tail", data_arg, "--names",
                                     "QUACKED,BUTTON_CLICKED", "--count", "3", "--seconds", "20",
                                     NULL);
    cr_assert_gt (tail, 0);
    cr_assert_eq (pond_harness_wait_text (tail_log, "pond tail: live", 5000), 0,
                  "the tail says when it is live");

    int rc;
    char *out = s_pond (&rc, "publish --name QUACKED --entity cust-1 --ts 2022-03-01 "
                             "--payload '{\"duration_ms\":120,\"loudness_db\":61}'");
    cr_assert_eq (rc, 0, "publish failed: %s", out);
    cr_assert (strstr (out, "\"seq\":1"), "first event gets seq 1: %s", out);
    cr_assert (strstr (out, "\"dup\":false"));
    free (out);
    out = s_pond (&rc, "publish --name LABEL_ADDED --entity cust-1 --ts 2022-02-01 "
                       "--payload '{\"label\":\"milk\"}'");
    cr_assert_eq (rc, 0);
    free (out);
    out = s_pond (&rc, "publish --name BUTTON_CLICKED --entity cust-1 --ts 2022-01-15");
    cr_assert_eq (rc, 0);
    free (out);

    //  The same id again: stored once, original seq
    out = s_pond (&rc, "publish --name QUACKED --entity cust-2 --ts 2023-06-01 "
                       "--id 0190a0c8-7d3a-7000-8000-000000000001");
    cr_assert_eq (rc, 0);
    cr_assert (strstr (out, "\"seq\":4"), "%s", out);
    free (out);
    out = s_pond (&rc, "publish --name QUACKED --entity cust-2 --ts 2023-06-01 "
                       "--id 0190a0c8-7d3a-7000-8000-000000000001");
    cr_assert_eq (rc, 0);
    cr_assert (strstr (out, "\"seq\":4") && strstr (out, "\"dup\":true"), "%s", out);
    free (out);

    //  Several events from stdin, in one go
    out = pond_harness_run (&rc,
                            "printf '%%s\\n' "
                            "'{\"name\":\"QUACKED\",\"entity\":\"cust-3\",\"ts\":\"2022-06-01\"}' "
                            "'{\"name\":\"QUACKED\",\"entity\":\"cust-3\",\"ts\":\"2021-12-31\"}' "
                            "| POND_DATA=%s %s/pond publish --stdin",
                            mesh->dir, POND_BIN_DIR);
    cr_assert_eq (rc, 0, "publish --stdin: %s", out);
    cr_assert_eq (s_lines (out), 2, "one line per event: %s", out);
    free (out);

    //  tail saw QUACKED and BUTTON_CLICKED live, not LABEL_ADDED
    int status = pond_harness_stop (tail, 0);    //  reaps; it exits after --count 3
    (void) status;
    char *tailed = pond_harness_run (&rc, "grep -v '^pond tail:' %s", tail_log);
    cr_assert_eq (s_lines (tailed), 3, "tail printed: %s", tailed);
    cr_assert (strstr (tailed, "\"name\":\"QUACKED\""));
    cr_assert (strstr (tailed, "\"name\":\"BUTTON_CLICKED\""));
    cr_assert_null (strstr (tailed, "LABEL_ADDED"), "tail filters by name");
    cr_assert (strstr (tailed, "\"duration_ms\":120"), "data is rendered as JSON");
    free (tailed);

    //  Replay by names in 2022, ordered by event time (not by seq)
    out = s_pond (&rc, "replay --names QUACKED,BUTTON_CLICKED --from 2022-01-01 --to 2023-01-01");
    cr_assert_eq (rc, 0, "replay: %s", out);
    cr_assert_eq (s_lines (out), 3, "three events in 2022: %s", out);
    char *clicked = strstr (out, "BUTTON_CLICKED");
    char *march = strstr (out, "2022-03-01");
    char *june = strstr (out, "2022-06-01");
    cr_assert (clicked && march && june && clicked < march && march < june, "ordered by ts: %s",
               out);
    free (out);

    //  By entity, by seq range with a limit
    out = s_pond (&rc, "replay --entity cust-1");
    cr_assert_eq (rc, 0);
    cr_assert_eq (s_lines (out), 3);
    free (out);
    out = s_pond (&rc, "replay --from-seq 2 --limit 2");
    cr_assert_eq (rc, 0);
    cr_assert_eq (s_lines (out), 2);
    cr_assert (strstr (out, "\"seq\":2") && strstr (out, "\"seq\":3"), "%s", out);
    free (out);

    //  Stats count what happened
    out = s_pond (&rc, "stats --compact");
    cr_assert_eq (rc, 0);
    cr_assert (strstr (out, "\"events\":6"), "6 distinct events stored: %s", out);
    cr_assert (strstr (out, "\"dups\":1"), "one duplicate: %s", out);
    cr_assert (strstr (out, "\"QUACKED\":4"), "per-name counts: %s", out);
    free (out);
}

Test (e2e, errors_say_what_to_do)
{
    int rc;
    char *out = s_pond (&rc, "publish --name quacked --entity cust-1");
    cr_assert_neq (rc, 0, "a bad name is refused");
    free (out);
    char *err = pond_harness_run (&rc, "cat %s/cli.err", mesh->dir);
    cr_assert (strstr (err, "name"), "the message names the rule: %s", err);
    free (err);

    out = s_pond (&rc, "publish --name QUACKED --entity cust-1 --payload '{not json'");
    cr_assert_neq (rc, 0);
    free (out);

    out = s_pond (&rc, "replay --names QUACKED --from 2023-01-01 --to 2022-01-01");
    cr_assert_neq (rc, 0, "a window that ends before it starts is refused");
    free (out);

    out = s_pond (&rc, "frobnicate");
    cr_assert_eq (rc, 2, "unknown command is a usage error");
    free (out);

    //  Broker stopped: publish fails within its timeout and says what to do
    pond_harness_stop (mesh->broker, SIGTERM);
    mesh->broker = 0;
    int64_t start = zclock_mono ();
    out = s_pond (&rc, "publish --name QUACKED --entity cust-1 --timeout 1000");
    cr_assert_eq (rc, 1);
    cr_assert_lt (zclock_mono () - start, 10000);
    free (out);
    err = pond_harness_run (&rc, "cat %s/cli.err", mesh->dir);
    cr_assert (strstr (err, "pond-broker"), "the hint names the broker: %s", err);
    free (err);
}

//  pond publish: the same event again is a dup; its id for another event
//  is refused 409 with the reason, exit status 1
Test (e2e, publish_reused_id_is_refused_409)
{
    const char *id = "018f3a5b-6c7d-7e8f-90a1-b2c3d4e5f607";
    char args [512];
    snprintf (args, sizeof args,
              "publish --name QUACKED --entity cust-9 --id %s "
              "--ts 2022-06-01T10:00:00Z --payload '{\"n\":1}'",
              id);
    int rc;
    char *out = s_pond (&rc, args);
    cr_assert_eq (rc, 0, "first publish: %s", out);
    cr_assert (strstr (out, "\"dup\":false"), "%s", out);
    free (out);
    out = s_pond (&rc, args);
    cr_assert_eq (rc, 0);
    cr_assert (strstr (out, "\"dup\":true"), "the same event again is a dup: %s", out);
    free (out);
    snprintf (args, sizeof args,
              "publish --name QUACKED --entity cust-9 --id %s "
              "--ts 2022-06-01T10:00:00Z --payload '{\"n\":2}'",
              id);
    out = s_pond (&rc, args);
    cr_assert_neq (rc, 0, "another event with that id must fail: %s", out);
    cr_assert_str_empty (out, "no ACK line for a refused event");
    free (out);
    char path [512];
    snprintf (path, sizeof path, "%s/cli.err", mesh->dir);
    FILE *file = fopen (path, "r");
    cr_assert_not_null (file);
    char err [2048] = "";
    size_t n = fread (err, 1, sizeof err - 1, file);
    err [n] = 0;
    fclose (file);
    cr_assert (strstr (err, "409") && strstr (err, "different event"), "stderr: %s", err);
}
