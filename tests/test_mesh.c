/*  test_mesh: the whole mesh as a user runs it - `pond up` (a supervisor
    and seven real processes, the HTTP gateway last), status, down, the supervisor restarting a
    killed actor, the badge story of DESIGN.md with `pond recompute`,
    `pond query` for each view, `pond verify`, `pond rebuild`, and `pond
    demo` from start to end. Every test has its own data directory; fini
    brings the mesh down and kills, by pid, anything of it still running.
*/
#include <criterion/criterion.h>
#include <czmq.h>
#include <signal.h>

#include "pond_harness.h"

static char *dir;    //  this test's data directory

//  ... of this test's mesh
static size_t
s_mesh_pids (pid_t *pids, size_t max)
{
    return pond_harness_mesh_pids (dir, pids, max);
}

//  True if pid runs with our data directory on its command line
static bool
s_ours (pid_t pid)
{
    return pond_harness_pid_runs_in (pid, dir);
}

static void
s_setup (void)
{
    dir = pond_harness_tempdir ();
    cr_assert_not_null (dir);
}

static void
s_teardown (void)
{
    //  The test's mesh, the demo's (in DIR/demo), the quick start's
    char demo [600], quick [600];
    snprintf (demo, sizeof demo, "%s/demo", dir);
    snprintf (quick, sizeof quick, "%s/quick-start", dir);
    const char *meshes [] = { dir, demo, quick };
    for (size_t m = 0; m < 3; m++)
        pond_harness_mesh_down (meshes [m], dir, "test_mesh");
    pond_harness_tempdir_done (&dir);
}

TestSuite (mesh, .init = s_setup, .fini = s_teardown, .timeout = 90);

//  Run `pond ARGS --data DIR` (stderr into the output when with_stderr);
//  returns the output (caller frees) and the exit code in *exit_p.
static char *
s_pond (int *exit_p, bool with_stderr, const char *args)
{
    char *out = pond_harness_run (exit_p, "%s/pond %s --data %s %s", POND_BIN_DIR, args, dir,
                                  with_stderr ? "2>&1" : "2>/dev/null");
    cr_assert_not_null (out);
    return out;
}

//  Run pond ARGS until its output contains text and not absent (may be
//  NULL), up to timeout_ms. Returns the last output (caller frees).
static char *
s_pond_until_not (const char *args, const char *text, const char *absent, int timeout_ms)
{
    char *out = NULL;
    for (int waited = 0; waited <= timeout_ms; waited += 100) {
        free (out);
        out = s_pond (NULL, false, args);
        if (strstr (out, text) && !(absent && strstr (out, absent)))
            return out;
        zclock_sleep (100);
    }
    cr_assert_fail ("pond %s never said %s%s%s; last: %s", args, text, absent ? " without " : "",
                    absent ? absent : "", out);
    return out;
}

static char *
s_pond_until (const char *args, const char *text, int timeout_ms)
{
    return s_pond_until_not (args, text, NULL, timeout_ms);
}

static void
s_up (void)
{
    int rc;
    char *out = s_pond (&rc, true, "up");
    cr_assert_eq (rc, 0, "pond up failed: %s", out);
    cr_assert (strstr (out, "pond is up (local mode: ipc endpoints, no keys)"), "%s", out);
    free (out);
}

//  A device publishes for one customer; it must sync everything
static void
s_device (const char *customer, const char *actions)
{
    int rc;
    char *out = pond_harness_run (&rc,
                                  "%s/pond-device --data %s --device silo-%s "
                                  "--customer %s %s 2>&1",
                                  POND_BIN_DIR, dir, customer, customer, actions);
    cr_assert_eq (rc, 0, "pond-device for %s failed: %s", customer, out);
    free (out);
}

//  Number of lines in text
static int
s_lines (const char *text)
{
    int lines = 0;
    for (; *text; text++)
        lines += *text == '\n';
    return lines;
}

//  =====================================================================

Test (mesh, up_status_down)
{
    int rc;
    //  Config errors come first, and are usage errors
    char config [512];
    snprintf (config, sizeof config, "%s/bad.zpl", dir);
    FILE *file = fopen (config, "w");
    fprintf (file, "process\n    store\n        comand = \"pond-store\"\n");
    fclose (file);
    char args [600];
    snprintf (args, sizeof args, "up --config %s", config);
    char *out = s_pond (&rc, true, args);
    cr_assert_eq (rc, 2, "unknown key: exit 2, got %d: %s", rc, out);
    cr_assert (strstr (out, "unknown key 'process/store/comand'"), "%s", out);
    free (out);
    out = s_pond (&rc, true, "up --config /nonexistent/pond.zpl");
    cr_assert_eq (rc, 2, "unreadable config: exit 2, got %d: %s", rc, out);
    free (out);

    //  A process that cannot start: pond up gives up, shows its log
    snprintf (config, sizeof config, "%s/broken.zpl", dir);
    file = fopen (config, "w");
    fprintf (file, "process\n    store\n        command = \"pond-store\"\n"
                   "    broker\n        command = \"pond-broker\"\n"
                   "        args = \"--no-such-flag\"\n"
                   "supervisor\n    backoff_min_ms = 10\n");
    fclose (file);
    snprintf (args, sizeof args, "up --config %s", config);
    out = s_pond (&rc, true, args);
    cr_assert_eq (rc, 1, "a broken process: exit 1, got %d: %s", rc, out);
    cr_assert (strstr (out, "broker did not start"), "%s", out);
    cr_assert (strstr (out, "last lines of"), "%s", out);
    cr_assert (strstr (out, "--no-such-flag"), "the log's tail: %s", out);
    free (out);

    //  Not running (any more)
    out = s_pond (&rc, true, "down");
    cr_assert_eq (rc, 1, "down when not running: exit 1: %s", out);
    cr_assert (strstr (out, "not running"), "%s", out);
    free (out);

    s_up ();
    out = s_pond (&rc, false, "status --json");
    cr_assert_eq (rc, 0, "status of a healthy mesh: %s", out);
    cr_assert (strstr (out, "\"ok\":true"), "%s", out);
    cr_assert (strstr (out, "\"name\":\"mobile-view\""), "%s", out);
    cr_assert (strstr (out, "\"name\":\"gateway\""), "%s", out);
    free (out);
    //  The gateway answers on the URL it wrote
    out = pond_harness_run (&rc, "sed -n 's/.*url = \"\\(.*\\)\"/\\1/p' %s/gateway.zpl", dir);
    cr_assert (strncmp (out, "http://127.0.0.1:", 17) == 0, "gateway.zpl: %s", out);
    free (out);
    out = s_pond (&rc, false, "status");
    cr_assert_eq (rc, 0);
    cr_assert (strstr (out, "quack-counter"), "%s", out);
    cr_assert (strstr (out, "log head: seq 0"), "%s", out);
    free (out);

    //  One supervisor per data directory
    out = s_pond (&rc, true, "up");
    cr_assert_eq (rc, 1, "second up: exit 1: %s", out);
    cr_assert (strstr (out, "already up"), "%s", out);
    free (out);

    //  Down stops everything, in order, and says so
    pid_t pids [32];
    size_t count = s_mesh_pids (pids, 32);
    cr_assert_eq (count, 8, "supervisor and seven processes");
    out = s_pond (&rc, true, "down");
    cr_assert_eq (rc, 0, "down: %s", out);
    cr_assert (strstr (out, "pond is down"), "%s", out);
    free (out);
    for (size_t i = 0; i < count; i++)
        cr_assert (!s_ours (pids [i]), "pid %d still runs after pond down", (int) pids [i]);
    char log [512];
    snprintf (log, sizeof log, "%s/logs/supervisor.log", dir);
    out = pond_harness_run (NULL, "cat %s", log);
    char *stop = strstr (out, "SIGTERM: stopping the mesh");
    cr_assert_not_null (stop, "%s", out);
    char *gateway = strstr (stop, "stopping gateway");
    char *actors = strstr (stop, "stopping mobile-view");
    char *broker = strstr (stop, "stopping broker");
    char *store = strstr (stop, "stopping store");
    cr_assert (gateway && actors && broker && store && gateway < actors && actors < broker
                   && broker < store,
               "gateway, actors, then broker, then store: %s", out);
    free (out);
    out = s_pond (&rc, false, "status");
    cr_assert_eq (rc, 1, "status when down: exit 1");
    free (out);
    out = s_pond (&rc, true, "down");
    cr_assert_eq (rc, 1, "down twice: exit 1");
    free (out);
}

Test (mesh, supervisor_restarts_killed_actor)
{
    s_up ();
    s_device ("anna", "--quack 5");
    free (s_pond_until ("query quacks anna", "\"quacks\":5", 10000));

    pid_t pids [32];
    cr_assert_eq (s_mesh_pids (pids, 32), 8);
    pid_t counter = pids [3];    //  supervisor, store, broker, quack-counter
    cr_assert (s_ours (counter));
    kill (counter, SIGKILL);

    //  A new pid appears, ready, with one restart
    char path [512];
    snprintf (path, sizeof path, "%s/supervisor.zpl", dir);
    pid_t again = 0;
    for (int waited = 0; waited < 10000 && !again; waited += 50) {
        zconfig_t *state = zconfig_load (path);
        if (state && streq (zconfig_get (state, "process/quack-counter/ready", ""), "true")
            && atoi (zconfig_get (state, "process/quack-counter/pid", "0")) != counter) {
            again = atoi (zconfig_get (state, "process/quack-counter/pid", "0"));
            cr_assert_str_eq (zconfig_get (state, "process/quack-counter/restarts", ""), "1");
            cr_assert_str_eq (zconfig_get (state, "process/quack-counter/last_exit", ""),
                              "exit signal 9");
        }
        zconfig_destroy (&state);
        zclock_sleep (50);
    }
    cr_assert_gt (again, 0, "the supervisor restarted quack-counter");
    char log [512];
    snprintf (log, sizeof log, "%s/logs/supervisor.log", dir);
    char *out = pond_harness_run (NULL, "cat %s", log);
    cr_assert (strstr (out, "restarting quack-counter (exit signal 9), attempt 1 in 100 ms"), "%s",
               out);
    free (out);

    //  Its view catches up with what came meanwhile
    s_device ("anna", "--quack 3");
    free (s_pond_until ("query quacks anna", "\"quacks\":8", 10000));
    int rc;
    out = s_pond (&rc, false, "status --json");
    cr_assert_eq (rc, 0, "%s", out);
    cr_assert (strstr (out, "\"restarts\":1"), "%s", out);
    free (out);
}

Test (mesh, badge_story_recompute_v2)
{
    s_up ();
    s_device ("anna", "--quack 20");
    s_device ("ben", "--quack 30");
    //  Rules v1: both are Junior and Master (4 grants, as events)
    free (s_pond_until ("query badges anna", "Master", 10000));
    free (s_pond_until ("query badges ben", "Master", 10000));
    char *out = s_pond_until ("replay --names BADGE_GRANTED", "ben", 5000);
    cr_assert_eq (s_lines (out), 4, "%s", out);
    free (out);

    //  Rules that are not JSON: usage error, nothing sent
    int rc;
    char bad [512], args [1024];
    snprintf (bad, sizeof bad, "%s/bad.json", dir);
    FILE *file = fopen (bad, "w");
    fprintf (file, "{\"version\": \"v3\", \"badges\": [");
    fclose (file);
    snprintf (args, sizeof args, "recompute badges --rules %s", bad);
    out = s_pond (&rc, true, args);
    cr_assert_eq (rc, 2, "invalid JSON: exit 2: %s", out);
    free (out);
    out = s_pond (&rc, true, "recompute badges --rules /nonexistent.json");
    cr_assert_eq (rc, 2, "unreadable rules: exit 2: %s", out);
    free (out);

    //  v2, retroactively: exactly one change, anna loses Master
    snprintf (args, sizeof args, "recompute badges --rules %s/../rules/v2.json", POND_BIN_DIR);
    out = s_pond (&rc, false, args);
    cr_assert_eq (rc, 0, "recompute: %s", out);
    cr_assert (strstr (out, "\"removed_count\": 1"), "%s", out);
    cr_assert (strstr (out, "\"granted_count\": 0"), "%s", out);
    free (out);
    free (s_pond_until_not ("query badges anna", "\"rules_version\":\"v2\"", "Master", 10000));
    out = s_pond (&rc, false, "replay --names BADGE_REMOVED");
    cr_assert_eq (s_lines (out), 1, "one BADGE_REMOVED: %s", out);
    cr_assert (strstr (out, "\"entity\":\"anna\""), "%s", out);
    cr_assert (strstr (out, "\"badge\":\"Master\""), "%s", out);
    free (out);
    out = s_pond (&rc, false, "replay --names BADGE_GRANTED");
    cr_assert_eq (s_lines (out), 4, "no new BADGE_GRANTED: %s", out);
    free (out);
    out = s_pond (&rc, false, "query badges anna");
    cr_assert (strstr (out, "Junior") && !strstr (out, "Master"), "%s", out);
    free (out);
    out = s_pond (&rc, false, "query badges ben");
    cr_assert (strstr (out, "Junior") && strstr (out, "Master") && !strstr (out, "Grand"),
               "ben keeps Junior and Master: %s", out);
    free (out);

    //  Again: nothing changes (the shipped name works too)
    out = s_pond (&rc, false, "recompute badges --rules v2");
    cr_assert_eq (rc, 0, "%s", out);
    cr_assert (strstr (out, "\"removed_count\": 0"), "%s", out);
    cr_assert (strstr (out, "\"granted_count\": 0"), "%s", out);
    free (out);
    //  What the recompute emitted is stored once it has answered
    out = s_pond (&rc, false, "replay --names BADGE_REMOVED,BADGE_GRANTED");
    cr_assert_eq (s_lines (out), 5, "%s", out);
    free (out);
}

//  A number that follows key in text ("key": N or "key":N), or -1
static long
s_number (const char *text, const char *key)
{
    char pattern [64];
    snprintf (pattern, sizeof pattern, "\"%s\":", key);
    const char *at = strstr (text, pattern);
    return at ? strtol (at + strlen (pattern), NULL, 10) : -1;
}

//  Wait for a process this test spawned to end by itself, up to
//  timeout_ms; then stop it. Returns its exit code, or -1.
static int
s_wait_exit (pid_t pid, int timeout_ms)
{
    int status;
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        if (waitpid (pid, &status, WNOHANG) == pid)
            return WIFEXITED (status) ? WEXITSTATUS (status) : -1;
        zclock_sleep (20);
    }
    pond_harness_stop (pid, SIGTERM);
    return -1;
}

//  The user's timing: quacks published, then at once,
//  with no pause, a recompute; and one while quacks still arrive. The
//  first recompute must see every quack stored before it was asked,
//  the rules in force and the badges held must agree, a second run
//  changes nothing, and verify agrees
Test (mesh, recompute_right_after_up_and_while_quacks_arrive)
{
    s_up ();
    //  The badge granter lags behind the log (as right after up, or under
    //  load): stopped while 10,000 quacks for cust-0..99 and then 20 for
    //  anna are stored, so it must catch up when it resumes
    char path [600];
    snprintf (path, sizeof path, "%s/badge-granter.zpl", dir);
    zconfig_t *ready = zconfig_load (path);
    cr_assert_not_null (ready);
    pid_t granter = atoi (zconfig_get (ready, "actor/pid", "0"));
    zconfig_destroy (&ready);
    cr_assert_gt (granter, 0);
    cr_assert_eq (kill (granter, SIGSTOP), 0);
    int rc;
    char *out = pond_harness_run (&rc,
                                  "%s/pond-device --data %s --device load --load "
                                  "--count 10000 --customers 100 2>&1",
                                  POND_BIN_DIR, dir);
    cr_assert_eq (rc, 0, "%s", out);
    free (out);
    s_device ("anna", "--quack 20");
    cr_assert_eq (kill (granter, SIGCONT), 0);
    out = s_pond (&rc, true, "recompute badges --rules v2");
    cr_assert_eq (rc, 0, "recompute: %s", out);
    cr_assert_geq (s_number (out, "position"), 10020, "the head as of the command: %s", out);
    cr_assert_eq (s_number (out, "quacks"), 10020, "every quack stored before: %s", out);
    cr_assert_eq (s_number (out, "removed_count"), 1, "anna loses Master: %s", out);
    cr_assert_eq (s_number (out, "granted_count"), 100, "Grand at 100 quacks: %s", out);
    free (out);
    out = s_pond (&rc, true, "query badges anna");
    cr_assert (strstr (out, "\"rules_version\":\"v2\"") && strstr (out, "Junior")
                   && !strstr (out, "Master"),
               "right after the first recompute: %s", out);
    free (out);

    //  Quacks for ben still arrive while v1 comes back, then v2 again
    char log [600];
    snprintf (log, sizeof log, "%s/device-ben.log", dir);
    pid_t device = pond_harness_spawn ("pond-device", log, "--data", dir, "--device", "silo-ben",
                                       "--customer", "ben", "--quack", "40", NULL);
    cr_assert_gt (device, 0);
    out = s_pond (&rc, true, "recompute badges --rules v1");
    cr_assert_eq (rc, 0, "recompute v1: %s", out);
    free (out);
    out = s_pond (&rc, true, "recompute badges --rules v2");
    cr_assert_eq (rc, 0, "recompute v2: %s", out);
    free (out);
    cr_assert_eq (s_wait_exit (device, 30000), 0, "the device synced everything");
    //  Once everything is applied: ben (40) has Junior and Master under
    //  v2, not Grand (45); anna Junior only
    free (s_pond_until ("query badges ben", "\"quacks\":40", 10000));
    free (s_pond_until ("query badges ben", "Master", 10000));
    out = s_pond (&rc, true, "recompute badges --rules v2");
    cr_assert_eq (rc, 0, "%s", out);
    cr_assert_eq (s_number (out, "removed_count"), 0, "a second run changes nothing: %s", out);
    cr_assert_eq (s_number (out, "granted_count"), 0, "a second run changes nothing: %s", out);
    cr_assert_eq (s_number (out, "quacks"), 10060, "%s", out);
    free (out);
    out = s_pond (&rc, true, "query badges ben");
    cr_assert (strstr (out, "\"rules_version\":\"v2\"") && strstr (out, "Junior")
                   && strstr (out, "Master") && !strstr (out, "Grand"),
               "ben: %s", out);
    free (out);
    out = s_pond (&rc, true, "query badges anna");
    cr_assert (strstr (out, "Junior") && !strstr (out, "Master"), "anna: %s", out);
    free (out);
    out = s_pond (&rc, true, "verify");
    cr_assert_eq (rc, 0, "verify: %s", out);
    free (out);

    //  A badge the rules do not give (granted by hand): the view equals
    //  its rebuild, but verify says it disagrees with its rules; a
    //  recompute with the same rules repairs it
    out = pond_harness_run (&rc,
                            "%s/pond publish --data-dir %s --name BADGE_GRANTED "
                            "--entity anna --payload '{\"badge\":\"Grand\",\"count\":20}' 2>&1",
                            POND_BIN_DIR, dir);
    cr_assert_eq (rc, 0, "%s", out);
    free (out);
    free (s_pond_until ("query badges anna", "Grand", 10000));
    out = s_pond (&rc, true, "verify");
    cr_assert_eq (rc, 1, "verify must fail: %s", out);
    cr_assert (strstr (out, "disagrees with its rules") && strstr (out, "anna holds Grand"), "%s",
               out);
    free (out);
    out = s_pond (&rc, true, "recompute badges --rules v2");
    cr_assert_eq (rc, 0, "%s", out);
    cr_assert_eq (s_number (out, "removed_count"), 1, "Grand goes: %s", out);
    free (out);
    free (s_pond_until_not ("query badges anna", "Junior", "Grand", 10000));
    out = s_pond (&rc, true, "verify");
    cr_assert_eq (rc, 0, "verify after the repair: %s", out);
    free (out);
}

Test (mesh, query_rebuild_verify)
{
    s_up ();
    s_device ("carla", "--quack 5 --label c1=milk --label c2=eggs --label c3=cheddar "
                       "--unlabel c2");
    char *out = s_pond_until ("query mobile carla --compact", "\"quacks\":5", 10000);
    free (out);
    free (s_pond_until ("query alexa carla --text 'what do I have?'", "cheddar", 10000));

    //  Each actor applies the log at its own pace: wait for this one too
    free (s_pond_until ("query quacks carla", "\"quacks\":5", 10000));
    free (s_pond_until ("query badge-granter carla", "\"quacks\":5", 10000));
    int rc;
    out = s_pond (&rc, false, "query badge-granter carla");
    cr_assert_eq (rc, 0, "%s", out);
    cr_assert (strstr (out, "\"badges\":[]"), "%s", out);
    free (out);
    out = s_pond (&rc, false, "query alexa carla 'do I have eggs?' --text");
    cr_assert_eq (rc, 0);
    cr_assert (strstr (out, "No"), "%s", out);
    free (out);
    out = s_pond (&rc, false, "query alexa-view carla 'what do I have?'");
    cr_assert_eq (rc, 0);
    cr_assert (strstr (out, "\"answer\""), "JSON by default: %s", out);
    free (out);
    out = s_pond (&rc, false, "query mobile carla");
    cr_assert_eq (rc, 0);
    cr_assert (strstr (out, "\n  \"customer\": \"carla\""), "pretty by default: %s", out);
    free (out);

    //  Unknown entity: 404, exit 1; unknown view: usage, exit 2
    out = s_pond (&rc, true, "query quacks nobody");
    cr_assert_eq (rc, 1, "%s", out);
    cr_assert (strstr (out, "404"), "%s", out);
    free (out);
    out = s_pond (&rc, true, "query coffee carla");
    cr_assert_eq (rc, 2, "%s", out);
    free (out);

    //  Verify: every view matches its rebuild
    out = s_pond (&rc, false, "verify");
    cr_assert_eq (rc, 0, "verify: %s", out);
    cr_assert (strstr (out, "4 of 4 views match"), "%s", out);
    free (out);
    out = s_pond (&rc, false, "verify quacks alexa");
    cr_assert_eq (rc, 0, "%s", out);
    cr_assert (strstr (out, "2 of 2 views match"), "%s", out);
    free (out);

    //  Rebuild: the same document afterwards
    char *before = s_pond (&rc, false, "query mobile carla --compact");
    cr_assert_eq (rc, 0);
    out = s_pond (&rc, false, "rebuild mobile");
    cr_assert_eq (rc, 0, "rebuild: %s", out);
    cr_assert (strstr (out, "rebuilt mobile-view from the log: replayed"), "%s", out);
    free (out);
    char *after = s_pond (&rc, false, "query mobile carla --compact");
    cr_assert_eq (rc, 0);
    cr_assert_str_eq (after, before);
    free (before);
    free (after);
}

Test (mesh, demo, .timeout = 120)
{
    char demo [600];
    snprintf (demo, sizeof demo, "%s/demo", dir);
    int rc;
    char *out = pond_harness_run (&rc, "%s/pond demo --data %s --keep 2>&1", POND_BIN_DIR, demo);
    cr_assert_eq (rc, 0, "pond demo failed:\n%s", out);
    cr_assert (strstr (out, "pond is up (local mode: ipc endpoints, no keys)"), "%s", out);
    cr_assert (strstr (out, "local demo mode: ipc endpoints, no keys"), "%s", out);
    cr_assert (strstr (out, "dora's device was offline: 4 events queued"), "%s", out);
    cr_assert (strstr (out, "synced 4"), "%s", out);
    cr_assert (strstr (out, "4 of 4 views match"), "%s", out);
    cr_assert (strstr (out, "pond demo: done in"), "%s", out);
    free (out);
    //  Kept, and stopped
    char path [700];
    snprintf (path, sizeof path, "%s/store", demo);
    cr_assert (zsys_file_exists (path) || access (path, F_OK) == 0, "data kept with --keep");
    snprintf (path, sizeof path, "%s/supervisor.zpl", demo);
    cr_assert (access (path, F_OK) != 0, "the mesh is down");
    //  A second run wipes it and starts fresh
    out = pond_harness_run (&rc, "%s/pond demo --data %s 2>&1", POND_BIN_DIR, demo);
    cr_assert_eq (rc, 0, "second pond demo failed:\n%s", out);
    cr_assert (strstr (out, "fresh: wiped first"), "%s", out);
    free (out);
    cr_assert (access (demo, F_OK) != 0, "data removed without --keep");
}

Test (mesh, up_with_keys)
{
    //  The whole mesh with CURVE: a key for each process, the admin and a device
    const char *keys_made [] = { "--role broker",
                                 "--role store",
                                 "--role admin --name admin",
                                 "--role admin --name gateway",
                                 "--role actor --name quack-counter",
                                 "--role actor --name badge-granter",
                                 "--role actor --name alexa-view",
                                 "--role device --name silo-1 --customer anna" };
    char args [1200];
    int rc;
    for (size_t i = 0; i < sizeof keys_made / sizeof keys_made [0]; i++) {
        snprintf (args, sizeof args, "keys new --keys %s/keys %s", dir, keys_made [i]);
        free (s_pond (&rc, false, args));
        cr_assert_eq (rc, 0, "pond %s", args);
    }
    //  mobile-view has no key yet: pond up says which and how to make it
    snprintf (args, sizeof args, "up --keys %s/keys", dir);
    char *out = s_pond (&rc, true, args);
    cr_assert_eq (rc, 1, "%s", out);
    cr_assert (strstr (out, "mobile-view runs with key 'mobile-view'")
                   && strstr (out, "--role actor --name mobile-view"),
               "%s", out);
    free (out);
    snprintf (args, sizeof args, "keys new --keys %s/keys --role actor --name mobile-view", dir);
    free (s_pond (&rc, false, args));
    cr_assert_eq (rc, 0);

    snprintf (args, sizeof args, "up --keys %s/keys", dir);
    out = s_pond (&rc, true, args);
    cr_assert_eq (rc, 0, "%s", out);
    cr_assert (strstr (out, "pond is up (CURVE"), "%s", out);
    free (out);

    //  The device publishes with its key; without keys nobody gets in
    out = pond_harness_run (&rc,
                            "%s/pond publish --data-dir %s --keys %s/keys --as silo-1 "
                            "--name QUACKED --entity anna 2>&1",
                            POND_BIN_DIR, dir, dir);
    cr_assert_eq (rc, 0, "%s", out);
    free (out);
    out = pond_harness_run (&rc,
                            "%s/pond publish --data-dir %s --name QUACKED --entity anna "
                            "--timeout 1000 2>&1",
                            POND_BIN_DIR, dir);
    cr_assert_eq (rc, 1, "%s", out);
    cr_assert (strstr (out, "the broker uses CURVE keys"), "%s", out);
    free (out);

    //  The actors caught up through CURVE; queries, stats and verify as admin
    snprintf (args, sizeof args, "query quacks anna --keys %s/keys", dir);
    free (s_pond_until (args, "\"quacks\":1", 10000));
    snprintf (args, sizeof args, "stats --keys %s/keys", dir);
    out = s_pond (&rc, true, args);
    cr_assert_eq (rc, 0, "%s", out);
    free (out);
    snprintf (args, sizeof args, "stats --keys %s/keys --as silo-1", dir);
    out = s_pond (&rc, true, args);
    cr_assert_eq (rc, 1, "%s", out);
    cr_assert (strstr (out, "403") && strstr (out, "--as admin")
                   && !strstr (out, "is pond-broker running"),
               "%s", out);
    free (out);
    snprintf (args, sizeof args, "verify --keys %s/keys", dir);
    out = s_pond (&rc, true, args);
    cr_assert_eq (rc, 0, "verify: %s", out);
    free (out);
}

//  The README's quick start, extracted from README.md between its
//  markers and run as a bash script exactly as it stands (with the
//  build's binaries on PATH and a fresh data directory), ten times in a
//  row: every answer right each time (it used to answer 404
//  and "No, you have no milk" when pasted as a script). Background jobs
//  of the script (pond tail) are killed when it exits; teardown brings
//  the mesh down if a run fails half-way
Test (mesh, readme_quick_start, .timeout = 220)
{
    char path [600];
    snprintf (path, sizeof path, "%s/../README.md", POND_TESTS_DIR);
    FILE *readme = fopen (path, "r");
    cr_assert_not_null (readme, "cannot read %s", path);
    snprintf (path, sizeof path, "%s/quick-start.sh", dir);
    FILE *script = fopen (path, "w");
    cr_assert_not_null (script);
    char line [1024];
    int state = 0;    //  0 before, 1 inside, 2 after the markers
    int lines = 0;
    while (fgets (line, sizeof line, readme)) {
        if (strstr (line, "<!-- quick-start:begin -->"))
            state = 1;
        else if (strstr (line, "<!-- quick-start:end -->"))
            state = 2;
        else if (state == 1 && strncmp (line, "```", 3) != 0) {
            fputs (line, script);
            lines++;
        }
    }
    fclose (readme);
    fclose (script);
    cr_assert_eq (state, 2, "README.md has no quick-start markers");
    cr_assert_gt (lines, 5);

    char data [600];
    snprintf (data, sizeof data, "%s/quick-start", dir);
    for (int run = 0; run < 10; run++) {
        int rc;
        char *out = pond_harness_run (
            &rc,
            "cd %s && PATH=%s:$PATH POND_DATA=%s bash -c "
            "'trap \"kill \\$(jobs -p) 2>/dev/null || true\" EXIT; set -e; "
            ". ./quick-start.sh' 2>&1",
            dir, POND_BIN_DIR, data);
        cr_assert_not_null (out);
        const char *expected [] = { "pond is up",
                                    "\"seq\":1,\"dup\":false",
                                    "\"quacks\":13",
                                    "\"Junior\"",
                                    "Yes, you have milk",
                                    "\"quacks\": 13",
                                    "\"rules_version\": \"v2\"",
                                    "4 of 4 views match",
                                    "pond is down" };
        for (size_t i = 0; i < sizeof expected / sizeof expected [0]; i++)
            cr_assert (strstr (out, expected [i]), "run %d: no '%s' in:\n%s", run + 1, expected [i],
                       out);
        cr_assert (!strstr (out, "No, you have no"), "run %d:\n%s", run + 1, out);
        cr_assert_eq (rc, 0, "run %d exited %d:\n%s", run + 1, rc, out);
        free (out);
        pond_harness_rmtree (data);
    }
}
