/*  test_chaos: faults on a whole mesh of real processes, and what must
    hold through them (DESIGN.md, invariants 1 to 4).

    - chaos: `pond up --foreground` in a temporary directory and three
      pond-device load generators (one with a clock a year and more behind)
      while, at seeded random moments, each process in turn is killed with
      SIGKILL: the store, the broker, the four actors (the supervisor
      restarts them) and one device (restarted with no actions: it only
      syncs its outbox). At the end every event the devices created is in
      the log exactly once, seq has no hole, each actor's position reaches
      the head, the quack counts per customer (and per year of event time)
      are exact, badges were granted once, `pond verify` passes, and replay
      by time puts the late device's events where their ts says.
    - broker_restart: kill -9 the broker alone while devices and actors stay
      up: devices reconnect and sync, actors catch up by themselves.
    - disk_full: the store's directory on a small tmpfs (mount(2) in a
      private mount namespace, so nothing leaks even if the test dies), a
      filler file takes the space: publishers get NACK 500/503 and never an
      ACK for what was not stored, nothing is half written, and once the
      filler is gone publishing works again with no hole in seq.

    Set POND_CHAOS_SEED to replay another schedule of kills; the seed in
    use is printed. Every process is stopped by pid in fini, also when a
    test fails (and the harness gives each child PR_SET_PDEATHSIG).
*/
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>

#include "pond_client.h"
#include "pond_harness.h"
#include "pond_actor_link.h"

//  Sizes: the sanitizer build runs everything about three times slower
#ifdef POND_SANITIZE_BUILD
#define SLOW        3
#define CHAOS_COUNT 3000    //  events per device (--count): 12 s
#else
#define SLOW        1
#define CHAOS_COUNT 5000    //  20 s
#endif

#define CHAOS_DEVICES       3
#define CHAOS_RATE          250                        //  events per second per device
#define CHAOS_CUSTOMERS     5                          //  cust-0 .. cust-4 (--customers)
#define CHAOS_SKEWED        2                          //  this device's clock is late
#define CHAOS_SKEW_MS       (-400LL * 86400 * 1000)    //  400 days behind
#define CHAOS_KILLED_DEVICE 1                          //  this device is killed once
#define DEVICES_MAX         8
#define ACTORS              4

static const char *s_actors [ACTORS] = { "quack-counter", "badge-granter", "alexa-view",
                                         "mobile-view" };

static char *dir;                          //  this test's data directory
static pid_t supervisor;                   //  pond up --foreground, our child
static pid_t devices [DEVICES_MAX];        //  devices still running
static pond_mesh_t *mesh;                  //  disk_full: store and broker only
static char mount_point [700];             //  disk_full: the tmpfs, "" if none
static pond_client_t *client;              //  disk_full: the publisher
static uint8_t (*acked) [POND_ID_SIZE];    //  disk_full: ids ACKed, in order
static uint64_t *seqs;                     //  ... and their seqs

//  =====================================================================
//  Processes

//  True if pid runs with this test's data directory on its command line
static bool
s_ours (pid_t pid)
{
    return pond_harness_pid_runs_in (pid, dir);
}

//  A key of DIR/supervisor.zpl (e.g. "process/store/pid"); caller frees
static char *
s_supervised (const char *key)
{
    return pond_harness_supervised (dir, key);
}

static pid_t
s_pid_of (const char *name)
{
    char key [128];
    snprintf (key, sizeof key, "process/%s/pid", name);
    char *value = s_supervised (key);
    pid_t pid = atoi (value);
    free (value);
    return pid;
}

static bool
s_ready (const char *name)
{
    char key [128];
    snprintf (key, sizeof key, "process/%s/ready", name);
    char *value = s_supervised (key);
    bool ready = streq (value, "true");
    free (value);
    return ready;
}

//  Wait until the supervisor runs name under a pid other than old, ready.
//  Returns the new pid, or 0 on timeout.
static pid_t
s_wait_restarted (const char *name, pid_t old, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        pid_t pid = s_pid_of (name);
        if (pid > 0 && pid != old && s_ready (name))
            return pid;
        zclock_sleep (20);
    }
    return 0;
}

//  Run `pond ARGS --data-dir DIR`; returns stdout (caller frees), exit
//  code in *exit_p
static char *
s_pond (int *exit_p, const char *args)
{
    char *out = pond_harness_run (exit_p, "%s/pond %s --data-dir %s 2>&1", POND_BIN_DIR, args, dir);
    cr_assert_not_null (out);
    return out;
}

//  Start the mesh under a supervisor that is our own child (so it dies
//  with the test whatever happens), and wait until it is up.
static void
s_mesh_up (void)
{
    char log [600];
    snprintf (log, sizeof log, "%s/up.log", dir);
    supervisor = pond_harness_spawn ("pond", log, "up", "--foreground", "--data-dir", dir, NULL);
    cr_assert_gt (supervisor, 0);
    char *state = NULL;
    for (int waited = 0; waited < 60000 * SLOW; waited += 50) {
        free (state);
        state = s_supervised ("supervisor/state");
        if (streq (state, "up") || streq (state, "failed"))
            break;
        zclock_sleep (50);
    }
    cr_assert_str_eq (state, "up", "the mesh comes up; see %s", log);
    free (state);
}

static void
s_remember_device (pid_t pid)
{
    for (int i = 0; i < DEVICES_MAX; i++)
        if (devices [i] == 0) {
            devices [i] = pid;
            return;
        }
    cr_assert_fail ("too many devices");
}

static void
s_forget_device (pid_t pid)
{
    for (int i = 0; i < DEVICES_MAX; i++)
        if (devices [i] == pid)
            devices [i] = 0;
}

//  Start pond-device --data DIR --device ID with the NULL-terminated
//  arguments after log_name; output to DIR/log_name
static pid_t
s_device (const char *id, const char *log_name, ...)
{
    char *argv [32] = { "pond-device", "--data", dir, "--device", (char *) id };
    int argc = 5;
    va_list args;
    va_start (args, log_name);
    const char *arg;
    while ((arg = va_arg (args, const char *)) && argc < 31)
        argv [argc++] = (char *) arg;
    va_end (args);
    argv [argc] = NULL;
    char log [600];
    snprintf (log, sizeof log, "%s/%s", dir, log_name);
    pid_t pid = pond_harness_spawnv (log, argv);
    cr_assert_gt (pid, 0, "pond-device starts");
    s_remember_device (pid);
    return pid;
}

//  Wait for a device to end by itself; its exit code, or -1 if it was
//  killed or still ran after timeout_ms (then it is killed)
static int
s_device_wait (pid_t pid, int timeout_ms)
{
    int status;
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        if (waitpid (pid, &status, WNOHANG) == pid) {
            s_forget_device (pid);
            return WIFEXITED (status) ? WEXITSTATUS (status) : -1;
        }
        zclock_sleep (20);
    }
    pond_harness_stop (pid, SIGKILL);
    s_forget_device (pid);
    return -1;
}

//  The device's summary: the last JSON line of its log. Caller deletes.
static cJSON *
s_summary (const char *log_name)
{
    char path [600];
    snprintf (path, sizeof path, "%s/%s", dir, log_name);
    FILE *file = fopen (path, "r");
    cr_assert_not_null (file, "%s", path);
    char line [4096];
    cJSON *summary = NULL;
    while (fgets (line, sizeof line, file))
        if (strncmp (line, "{\"device\"", 9) == 0) {
            cJSON_Delete (summary);
            summary = cJSON_Parse (line);
        }
    fclose (file);
    cr_assert_not_null (summary, "no summary in %s", path);
    return summary;
}

static double
s_number (cJSON *object, const char *key)
{
    cJSON *item = cJSON_GetObjectItem (object, key);
    cr_assert (cJSON_IsNumber (item), "no number '%s'", key);
    return cJSON_GetNumberValue (item);
}

//  The device's lifetime state (pond-device --state). Caller deletes.
static cJSON *
s_device_state (const char *id)
{
    int rc;
    char *out = pond_harness_run (&rc,
                                  "%s/pond-device --data %s --device %s --state "
                                  "2>/dev/null",
                                  POND_BIN_DIR, dir, id);
    cr_assert_eq (rc, 0, "pond-device --state for %s: %s", id, out);
    cJSON *state = cJSON_Parse (out);
    cr_assert_not_null (state, "%s", out);
    free (out);
    return state;
}

//  An actor's STATUS or QUERY as JSON, NULL if it does not answer now.
//  Caller deletes.
static cJSON *
s_actor (const char *name, const char *entity)
{
    char err [512];
    pond_actor_link_t *link = pond_actor_link_new (dir, name, err, sizeof err);
    char *text = NULL;
    if (link)
        text = entity ? pond_actor_link_query (link, entity, NULL, 2000 * SLOW)
                      : pond_actor_link_status (link, 2000 * SLOW);
    pond_actor_link_destroy (&link);
    cJSON *json = text ? cJSON_Parse (text) : NULL;
    free (text);
    return json;
}

//  The store's head, through the broker's STATS; 0 if it does not answer
static uint64_t
s_head (const char *control)
{
    char err [256];
    char *stats = pond_client_stats (control, 2000, err, sizeof err);
    cJSON *json = stats ? cJSON_Parse (stats) : NULL;
    cJSON *head = cJSON_GetObjectItem (cJSON_GetObjectItem (json, "store"), "head");
    uint64_t value = cJSON_IsNumber (head) ? (uint64_t) cJSON_GetNumberValue (head) : 0;
    cJSON_Delete (json);
    free (stats);
    return value;
}

//  Wait until every actor's position is the head of the log, twice in a
//  row a moment apart (badges emitted meanwhile move the head). Returns
//  the head.
static uint64_t
s_actors_at_head (const char *control, int timeout_ms)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    int agreed = 0;
    uint64_t head = 0;
    char behind [256] = "";
    while (zclock_mono () < deadline) {
        head = s_head (control);
        bool all = head > 0;
        for (int i = 0; i < ACTORS && all; i++) {
            cJSON *status = s_actor (s_actors [i], NULL);
            cJSON *position = cJSON_GetObjectItem (status, "position");
            if (!cJSON_IsNumber (position) || (uint64_t) cJSON_GetNumberValue (position) != head
                || !cJSON_IsTrue (cJSON_GetObjectItem (status, "live"))) {
                snprintf (behind, sizeof behind, "%s at %.0f, live %s", s_actors [i],
                          cJSON_IsNumber (position) ? cJSON_GetNumberValue (position) : -1.0,
                          cJSON_IsTrue (cJSON_GetObjectItem (status, "live")) ? "yes" : "no");
                all = false;
            }
            cJSON_Delete (status);
        }
        if (all && ++agreed == 2 && s_head (control) == head)
            return head;
        if (!all)
            agreed = 0;
        zclock_sleep (300);
    }
    cr_assert_fail ("actors did not reach the head %" PRIu64 ": %s", head, behind);
    return 0;
}

//  Events of count made round-robin over customers that fall to customer
//  index (pond-device --load: event i is for cust-(i % customers))
static uint64_t
s_share (uint64_t count, uint64_t customers, uint64_t index)
{
    return count / customers + (index < count % customers ? 1 : 0);
}

//  Calendar year (UTC) of a time in microseconds
static int
s_year (uint64_t ts)
{
    time_t seconds = (time_t) (ts / 1000000);
    struct tm tm;
    gmtime_r (&seconds, &tm);
    return tm.tm_year + 1900;
}

//  Small deterministic generator (xorshift64*), seeded once per test
static uint64_t s_rng_state;

static uint64_t
s_random (void)
{
    s_rng_state ^= s_rng_state >> 12;
    s_rng_state ^= s_rng_state << 25;
    s_rng_state ^= s_rng_state >> 27;
    return s_rng_state * 2685821657736338717ULL;
}

//  =====================================================================
//  Fixtures

static void
s_setup (void)
{
    zsys_init ();
    zsys_set_logstream (stderr);
    dir = pond_harness_tempdir ();
    cr_assert_not_null (dir);
    supervisor = 0;
    memset (devices, 0, sizeof devices);
}

static void
s_teardown (void)
{
    for (int i = 0; i < DEVICES_MAX; i++)
        if (devices [i] > 0) {
            pond_harness_stop (devices [i], SIGKILL);
            devices [i] = 0;
        }
    if (supervisor > 0) {
        //  Everything the supervisor runs, to check nothing outlives it
        const char *names [] = { "store",      "broker",      "quack-counter", "badge-granter",
                                 "alexa-view", "mobile-view", "gateway" };
        pid_t pids [7];
        for (size_t i = 0; i < 7; i++)
            pids [i] = s_pid_of (names [i]);
        free (pond_harness_run (NULL, "%s/pond down --data-dir %s >/dev/null 2>&1", POND_BIN_DIR,
                                dir));
        pond_harness_stop (supervisor, SIGTERM);
        supervisor = 0;
        for (size_t i = 0; i < 7; i++)
            if (s_ours (pids [i])) {
                fprintf (stderr, "test_chaos: %s (pid %d) outlived its supervisor: SIGKILL\n",
                         names [i], (int) pids [i]);
                kill (pids [i], SIGKILL);
            }
    }
    pond_harness_tempdir_done (&dir);
}

TestSuite (chaos, .init = s_setup, .fini = s_teardown);

//  =====================================================================
//  (1) Chaos: SIGKILL every process in turn under load

//  Kill name (a supervised process) and wait until it is back, ready
static void
s_kill_supervised (const char *name)
{
    pid_t pid = s_pid_of (name);
    cr_assert (pid > 0 && s_ours (pid), "%s runs (pid %d)", name, (int) pid);
    cr_assert_eq (kill (pid, SIGKILL), 0);
    pid_t again = s_wait_restarted (name, pid, 30000 * SLOW);
    cr_assert_gt (again, 0, "the supervisor restarted %s after SIGKILL; see %s/logs", name, dir);
}

Test (chaos, sigkill_every_process_under_load, .timeout = 300)
{
    int64_t started = zclock_mono ();
    const char *seed_text = getenv ("POND_CHAOS_SEED");
    uint64_t seed = seed_text ? strtoull (seed_text, NULL, 10) : 20240611;
    s_rng_state = seed ? seed : 1;
    fprintf (stderr, "chaos: seed %" PRIu64 " (POND_CHAOS_SEED to change)\n", seed);

    s_mesh_up ();
    char ids [CHAOS_DEVICES][32], logs [CHAOS_DEVICES][32];
    pid_t pids [CHAOS_DEVICES];
    char count [16], rate [16], customers [16], skew [32];
    snprintf (count, sizeof count, "%d", CHAOS_COUNT);
    snprintf (rate, sizeof rate, "%d", CHAOS_RATE);
    snprintf (customers, sizeof customers, "%d", CHAOS_CUSTOMERS);
    snprintf (skew, sizeof skew, "%lld", CHAOS_SKEW_MS);
    for (int i = 0; i < CHAOS_DEVICES; i++) {
        snprintf (ids [i], sizeof ids [i], "chaos-%d", i);
        snprintf (logs [i], sizeof logs [i], "device-%d.log", i);
        pids [i] = s_device (ids [i], logs [i], "--load", "--count", count, "--rate", rate,
                             "--customers", customers, "--sync-timeout", "120",
                             i == CHAOS_SKEWED ? "--clock-skew-ms" : NULL, skew, NULL);
    }

    //  Each process in turn, at a random moment 0.3 .. 1.8 s after the
    //  previous one is back (all within the load, which lasts 12 s or more)
    const char *victims [] = { "store",         "quack-counter", "broker",     "device",
                               "badge-granter", "alexa-view",    "mobile-view" };
    size_t kills = 0;
    char restarted_log [32] = "device-restarted.log";
    pid_t restarted = 0;
    for (size_t v = 0; v < sizeof victims / sizeof victims [0]; v++) {
        int nap = 300 + (int) (s_random () % 1500);
        zclock_sleep (nap);
        int64_t at = zclock_mono () - started;
        if (streq (victims [v], "device")) {
            pid_t pid = pids [CHAOS_KILLED_DEVICE];
            cr_assert_eq (waitpid (pid, NULL, WNOHANG), 0, "the device still runs");
            pond_harness_stop (pid, SIGKILL);
            s_forget_device (pid);
            //  No actions: it only sends what its outbox holds
            restarted = s_device (ids [CHAOS_KILLED_DEVICE], restarted_log, "--sync-timeout", "120",
                                  NULL);
        }
        else
            s_kill_supervised (victims [v]);
        kills++;
        fprintf (stderr, "chaos: %.1f s: SIGKILL %s, back after %.1f s\n", at / 1000.0, victims [v],
                 (zclock_mono () - started - at) / 1000.0);
    }

    //  Devices finish: exit 0, nothing left in the outbox
    for (int i = 0; i < CHAOS_DEVICES; i++) {
        pid_t pid = i == CHAOS_KILLED_DEVICE ? restarted : pids [i];
        const char *log = i == CHAOS_KILLED_DEVICE ? restarted_log : logs [i];
        int code = s_device_wait (pid, 180000);
        cr_assert_eq (code, 0, "device %s exits 0; see %s/%s", ids [i], dir, log);
        cJSON *summary = s_summary (log);
        cr_assert_eq (s_number (summary, "queued"), 0, "%s: outbox empty", ids [i]);
        cJSON_Delete (summary);
    }
    int64_t loaded = zclock_mono ();

    //  What the devices created and had ACKed over their whole lives
    uint64_t created [CHAOS_DEVICES], acked = 0, total_created = 0;
    for (int i = 0; i < CHAOS_DEVICES; i++) {
        cJSON *state = s_device_state (ids [i]);
        created [i] = (uint64_t) s_number (state, "created");
        cr_assert_eq (s_number (state, "outbox"), 0);
        cr_assert_eq (s_number (state, "rejected"), 0, "%s: nothing refused", ids [i]);
        cr_assert_eq ((uint64_t) s_number (state, "sent"), created [i],
                      "%s: every event it created was ACKed", ids [i]);
        acked += (uint64_t) s_number (state, "sent");
        total_created += created [i];
        cJSON_Delete (state);
        if (i != CHAOS_KILLED_DEVICE)
            cr_assert_eq (created [i], CHAOS_COUNT);
    }
    cr_assert (created [CHAOS_KILLED_DEVICE] > 0 && created [CHAOS_KILLED_DEVICE] < CHAOS_COUNT,
               "the killed device had created part of its load (%" PRIu64 ")",
               created [CHAOS_KILLED_DEVICE]);

    //  Actors catch up to the head by themselves
    pond_endpoints_t eps;
    cr_assert_eq (pond_endpoints_resolve (dir, &eps), 0);
    uint64_t head = s_actors_at_head (eps.control, 60000 * SLOW);

    //  The log, by seq: no hole, each id once, each device's events all there
    pond_replay_req_t request = { .from_seq = 1 };
    pond_reader_t *replay = pond_reader_new (eps.control, &request);
    cr_assert_not_null (replay);
    zhashx_t *seen = zhashx_new ();
    uint64_t stored [CHAOS_DEVICES][CHAOS_CUSTOMERS] = { { 0 } };
    uint64_t badges [CHAOS_CUSTOMERS] = { 0 };
    uint64_t per_year [CHAOS_CUSTOMERS][2] = { { 0 } };    //  [0] skewed year, [1] now
    int years [2] = { 0, 0 };
    uint64_t expected_seq = 1, others = 0, switches = 0;
    uint64_t skewed_max_ts = 0, others_min_ts = UINT64_MAX;
    bool last_skewed = false;
    char key [33];
    pond_event_t *event;
    while ((event = pond_reader_next (replay, 10000 * SLOW))) {
        cr_assert_eq (pond_event_seq (event), expected_seq, "hole or disorder in seq");
        expected_seq++;
        pond_harness_id_hex (pond_event_id (event), key);
        cr_assert_null (zhashx_lookup (seen, key), "id %s stored twice", key);
        zhashx_insert (seen, key, (void *) 1);
        const char *entity = pond_event_entity (event);
        int customer = strncmp (entity, "cust-", 5) == 0 ? atoi (entity + 5) : -1;
        cr_assert (customer >= 0 && customer < CHAOS_CUSTOMERS, "entity %s", entity);
        const char *name = pond_event_name (event);
        const char *source = pond_event_source (event) ? pond_event_source (event) : "";
        if (streq (name, "QUACKED")) {
            int device = strncmp (source, "chaos-", 6) == 0 ? atoi (source + 6) : -1;
            cr_assert (device >= 0 && device < CHAOS_DEVICES, "source %s", source);
            stored [device][customer]++;
            bool skewed = device == CHAOS_SKEWED;
            if (skewed && pond_event_ts (event) > skewed_max_ts)
                skewed_max_ts = pond_event_ts (event);
            if (!skewed && pond_event_ts (event) < others_min_ts)
                others_min_ts = pond_event_ts (event);
            if (expected_seq > 2 && skewed != last_skewed)
                switches++;
            last_skewed = skewed;
            //  Quacks per calendar year of event time, as the counter keeps them
            int year = s_year (pond_event_ts (event));
            int slot = skewed ? 0 : 1;
            if (!years [slot])
                years [slot] = year;
            cr_assert_eq (year, years [slot], "the run spans a new year; run it again");
            per_year [customer][slot]++;
        }
        else if (streq (name, "BADGE_GRANTED"))
            badges [customer]++;
        else
            others++;
        pond_event_destroy (&event);
    }
    cr_assert_eq (pond_reader_code (replay), 200, "replay: %s", pond_reader_reason (replay));
    uint64_t in_log = expected_seq - 1;
    cr_assert_eq (in_log, head, "the replay saw the whole log up to the head");
    pond_reader_destroy (&replay);
    zhashx_destroy (&seen);

    //  Every created event stored, nothing more: per device and customer
    uint64_t total_stored = 0, lost = 0;
    for (int d = 0; d < CHAOS_DEVICES; d++)
        for (int c = 0; c < CHAOS_CUSTOMERS; c++) {
            uint64_t expected = s_share (created [d], CHAOS_CUSTOMERS, (uint64_t) c);
            cr_assert_eq (stored [d][c], expected,
                          "%s, cust-%d: %" PRIu64 " stored, %" PRIu64 " created", ids [d], c,
                          stored [d][c], expected);
            total_stored += stored [d][c];
            lost += expected - stored [d][c];
        }
    cr_assert_eq (others, 0, "no event but quacks and badges");

    //  Views: quack counts (total and per year of event time), badges once
    for (int c = 0; c < CHAOS_CUSTOMERS; c++) {
        char customer [16];
        snprintf (customer, sizeof customer, "cust-%d", c);
        uint64_t expected = 0;
        for (int d = 0; d < CHAOS_DEVICES; d++)
            expected += stored [d][c];
        cJSON *answer = s_actor ("quack-counter", customer);
        cr_assert_not_null (answer, "quack-counter answers about %s", customer);
        cr_assert_eq ((uint64_t) s_number (answer, "quacks"), expected, "%s", customer);
        cJSON *by_year = cJSON_GetObjectItem (answer, "by_year");
        for (int slot = 0; slot < 2; slot++) {
            char year [8];
            snprintf (year, sizeof year, "%d", years [slot]);
            cr_assert_eq ((uint64_t) s_number (by_year, year), per_year [c][slot],
                          "%s: quacks of %s by event time", customer, year);
        }
        cJSON_Delete (answer);
        //  v1: Junior at 10 and Master at 20, granted once each
        cr_assert_eq (badges [c], 2, "%s: %" PRIu64 " BADGE_GRANTED", customer, badges [c]);
    }

    //  The late clock: ordering by seq ignores it (its events are mixed in
    //  with the others' by arrival), replay by time puts them first
    cr_assert_lt (skewed_max_ts, others_min_ts);
    cr_assert_gt (switches, 10, "by seq the late device's events interleave with the others");
    pond_replay_req_t by_time = { .names_count = 1, .to_ts = skewed_max_ts + 1 };
    strcpy (by_time.names [0], "QUACKED");
    replay = pond_reader_new (eps.control, &by_time);
    uint64_t late = 0, last_ts = 0, last_seq = 0;
    while ((event = pond_reader_next (replay, 10000 * SLOW))) {
        cr_assert_str_eq (pond_event_source (event), ids [CHAOS_SKEWED]);
        cr_assert (pond_event_ts (event) > last_ts
                       || (pond_event_ts (event) == last_ts && pond_event_seq (event) > last_seq),
                   "by time: ordered by (ts, seq)");
        last_ts = pond_event_ts (event);
        last_seq = pond_event_seq (event);
        late++;
        pond_event_destroy (&event);
    }
    cr_assert_eq (pond_reader_code (replay), 200);
    cr_assert_eq (late, created [CHAOS_SKEWED],
                  "the window before the others holds exactly "
                  "the late device's events");
    pond_reader_destroy (&replay);

    //  Every view equals its rebuild from the log; the mesh is whole
    int rc;
    int64_t verify_started = zclock_mono ();
    char *out = s_pond (&rc, "verify");
    cr_assert_eq (rc, 0, "pond verify: %s", out);
    cr_assert (strstr (out, "4 of 4 views match"), "%s", out);
    free (out);
    int64_t verified = zclock_mono ();
    out = s_pond (&rc, "status --json");
    cr_assert_eq (rc, 0, "pond status: %s", out);
    cJSON *status = cJSON_Parse (out);
    cr_assert_not_null (status, "%s", out);
    int restarts = 0;
    cJSON *process;
    cJSON_ArrayForEach (process, cJSON_GetObjectItem (status, "processes")) {
        int count_restarts = (int) s_number (process, "restarts");
        const char *name = cJSON_GetStringValue (cJSON_GetObjectItem (process, "name"));
        //  The gateway is not a victim: it rides out the others' deaths
        cr_assert_eq (count_restarts, streq (name, "gateway") ? 0 : 1, "%s restarted %s: %s", name,
                      streq (name, "gateway") ? "never" : "once", out);
        restarts += count_restarts;
    }
    cJSON_Delete (status);
    free (out);
    cr_assert_eq (restarts, 6);

    fprintf (stderr,
             "chaos: %zu kills survived (store, broker, 4 actors, 1 device); "
             "events created %" PRIu64 ", acked %" PRIu64 ", stored %" PRIu64 ", lost %" PRIu64
             "; log head %" PRIu64 " (with %" PRIu64 " badges); load and sync %.1f s, "
             "verify %.1f s, total %.1f s\n",
             kills, total_created, acked, total_stored, lost, head, head - total_stored,
             (loaded - started) / 1000.0, (verified - verify_started) / 1000.0,
             (zclock_mono () - started) / 1000.0);
    cr_assert_eq (lost, 0);
}

//  =====================================================================
//  (2) The broker alone: kill -9 while devices and actors stay up

Test (chaos, broker_restart_devices_and_actors_recover, .timeout = 180)
{
    int64_t started = zclock_mono ();
    s_mesh_up ();
    pid_t actors_before [ACTORS];
    for (int i = 0; i < ACTORS; i++)
        actors_before [i] = s_pid_of (s_actors [i]);
    uint64_t catchups_before [ACTORS];
    for (int i = 0; i < ACTORS; i++) {
        cJSON *status = s_actor (s_actors [i], NULL);
        cr_assert_not_null (status);
        catchups_before [i] = (uint64_t) s_number (status, "catchups");
        cJSON_Delete (status);
    }
    pid_t a = s_device ("steady-a", "a.log", "--load", "--count", "2400", "--rate", "300",
                        "--customers", "3", "--sync-timeout", "60", NULL);
    pid_t b = s_device ("steady-b", "b.log", "--load", "--count", "2400", "--rate", "300",
                        "--customers", "3", "--sync-timeout", "60", NULL);
    zclock_sleep (2500);
    pid_t broker = s_pid_of ("broker");
    cr_assert (broker > 0 && s_ours (broker));
    cr_assert_eq (kill (broker, SIGKILL), 0);
    int64_t killed = zclock_mono ();
    pid_t again = s_wait_restarted ("broker", broker, 20000 * SLOW);
    cr_assert_gt (again, 0, "the supervisor restarted the broker");
    int64_t back = zclock_mono ();

    cr_assert_eq (s_device_wait (a, 120000), 0, "device a syncs; see %s/a.log", dir);
    cr_assert_eq (s_device_wait (b, 120000), 0, "device b syncs; see %s/b.log", dir);
    uint64_t sent = 0, resends = 0;
    const char *logs [] = { "a.log", "b.log" };
    for (int i = 0; i < 2; i++) {
        cJSON *summary = s_summary (logs [i]);
        cr_assert_eq (s_number (summary, "created"), 2400);
        cr_assert_eq (s_number (summary, "sent"), 2400);
        cr_assert_eq (s_number (summary, "queued"), 0);
        sent += (uint64_t) s_number (summary, "sent");
        resends += (uint64_t) s_number (summary, "resends");
        cJSON_Delete (summary);
    }

    //  Actors stayed up and caught up by themselves
    pond_endpoints_t eps;
    cr_assert_eq (pond_endpoints_resolve (dir, &eps), 0);
    uint64_t head = s_actors_at_head (eps.control, 60000 * SLOW);
    cr_assert_geq (head, 4800);
    uint64_t catchups = 0;
    for (int i = 0; i < ACTORS; i++) {
        cr_assert_eq (s_pid_of (s_actors [i]), actors_before [i], "%s was not restarted",
                      s_actors [i]);
        cJSON *status = s_actor (s_actors [i], NULL);
        cr_assert_not_null (status);
        uint64_t now = (uint64_t) s_number (status, "catchups");
        catchups += now - catchups_before [i];
        cJSON_Delete (status);
    }
    //  Exact answers: 4800 quacks over 3 customers, 1600 each
    for (int c = 0; c < 3; c++) {
        char customer [16];
        snprintf (customer, sizeof customer, "cust-%d", c);
        cJSON *answer = s_actor ("quack-counter", customer);
        cr_assert_not_null (answer);
        cr_assert_eq (s_number (answer, "quacks"), 1600, "%s", customer);
        cJSON_Delete (answer);
        answer = s_actor ("badge-granter", customer);
        cr_assert_not_null (answer);
        cr_assert_eq (s_number (answer, "quacks"), 1600, "%s", customer);
        cJSON_Delete (answer);
    }
    fprintf (stderr,
             "broker restart: broker back %.1f s after SIGKILL; %" PRIu64 " events "
             "ACKed by 2 devices that stayed up (%" PRIu64 " resends); actors (not restarted) "
             "caught up %" PRIu64 " times in all to head %" PRIu64 "; total %.1f s\n",
             (back - killed) / 1000.0, sent, resends, catchups, head,
             (zclock_mono () - started) / 1000.0);
}

//  =====================================================================
//  (3) Disk full under the store

#define DISK_MB          192      //  the tmpfs; RocksDB resumes once 64 MB are free
#define DISK_EVENT_BYTES 60000    //  big events fill the WAL fast
#define DISK_EVENTS_MAX  4000     //  give up if the disk never fills

//  Runs after the suite's s_setup (which made dir), before the test
static void
s_disk_setup (void)
{
    *mount_point = 0;
    //  A private mount namespace: the tmpfs vanishes with this process and
    //  its children, however the test ends
    if (unshare (CLONE_NEWNS) || mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
        fprintf (stderr,
                 "test_chaos: no private mount namespace (%s); the tmpfs is "
                 "unmounted in fini\n",
                 strerror (errno));
    char store [600];
    snprintf (store, sizeof store, "%s/store", dir);
    cr_assert_eq (mkdir (store, 0755), 0);
    char options [64];
    snprintf (options, sizeof options, "size=%dm,mode=0755", DISK_MB);
    if (mount ("tmpfs", store, "tmpfs", 0, options) == 0)
        snprintf (mount_point, sizeof mount_point, "%s", store);
    else
        fprintf (stderr,
                 "test_chaos: cannot mount a tmpfs on %s (%s): disk_full skipped; "
                 "it needs root (CAP_SYS_ADMIN)\n",
                 store, strerror (errno));
    mesh = calloc (1, sizeof (pond_mesh_t));
    cr_assert_not_null (mesh);
    mesh->dir = strdup (dir);
    snprintf (mesh->ingest, sizeof mesh->ingest, "ipc://%s/ingest.ipc", dir);
    snprintf (mesh->pub, sizeof mesh->pub, "ipc://%s/pub.ipc", dir);
    snprintf (mesh->control, sizeof mesh->control, "ipc://%s/control.ipc", dir);
    snprintf (mesh->store_endpoint, sizeof mesh->store_endpoint, "ipc://%s/store.ipc", dir);
}

//  Runs before the suite's s_teardown (which removes dir)
static void
s_disk_teardown (void)
{
    if (mesh) {
        pond_harness_stop (mesh->broker, SIGTERM);
        pond_harness_stop (mesh->store, SIGTERM);
        mesh->broker = mesh->store = 0;
    }
    pond_client_destroy (&client);
    free (acked);
    free (seqs);
    acked = NULL;
    seqs = NULL;
    if (*mount_point && umount2 (mount_point, MNT_DETACH))
        fprintf (stderr, "test_chaos: cannot unmount %s: %s\n", mount_point, strerror (errno));
    *mount_point = 0;
    if (mesh) {
        free (mesh->dir);
        free (mesh);
        mesh = NULL;
    }
}

//  Fill the filesystem of path with a file until it refuses more.
//  Returns the bytes written.
static uint64_t
s_fill (const char *path)
{
    int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq (fd, 0, "%s: %s", path, strerror (errno));
    static char block [1 << 20];
    memset (block, 0x5a, sizeof block);
    uint64_t total = 0;
    for (size_t size = sizeof block; size >= 512; size /= 2) {
        ssize_t wrote;
        while ((wrote = write (fd, block, size)) > 0)
            total += (uint64_t) wrote;
        cr_assert (wrote < 0 && errno == ENOSPC, "filler: %s", strerror (errno));
    }
    close (fd);
    return total;
}

static uint64_t
s_free_bytes (const char *path)
{
    struct statvfs fs;
    return statvfs (path, &fs) == 0 ? (uint64_t) fs.f_bavail * fs.f_frsize : 0;
}

//  A big event (about DISK_EVENT_BYTES) with id made from n; caller frees
static uint8_t *
s_big_event (uint64_t n, uint8_t *id, size_t *size_p)
{
    static char *json;
    if (!json) {
        json = malloc (DISK_EVENT_BYTES + 32);
        strcpy (json, "{\"filler\":\"");
        memset (json + 11, 'q', DISK_EVENT_BYTES);
        strcpy (json + 11 + DISK_EVENT_BYTES, "\"}");
    }
    pond_event_t *event = pond_event_new ("QUACKED", "cust-disk");
    char err [POND_ERR_SIZE];
    cr_assert_eq (pond_event_set_data_json (event, json, err, sizeof err), 0, "%s", err);
    memset (id, 0xd1, POND_ID_SIZE);
    for (int i = 0; i < 8; i++)
        id [8 + i] = (uint8_t) (n >> (56 - 8 * i));
    pond_event_set_id (event, id);
    uint8_t *bytes = pond_event_encode (event, size_p, err, sizeof err);
    cr_assert_not_null (bytes, "%s", err);
    pond_event_destroy (&event);
    return bytes;
}

//  The log by seq: checks 1..head without a hole, each id once, and that
//  every id is one of acked [0..count-1] with its seq (seqs [i]), and that
//  each of those is there; returns how many events the log holds
static uint64_t
s_check_log (size_t count)
{
    zhashx_t *by_id = zhashx_new ();
    char key [33];
    for (size_t i = 0; i < count; i++)
        zhashx_insert (by_id, pond_harness_id_hex (acked [i], key), (void *) (i + 1));
    pond_replay_req_t request = { .from_seq = 1 };
    pond_reader_t *replay = pond_reader_new (mesh->control, &request);
    cr_assert_not_null (replay);
    uint64_t expected = 1;
    pond_event_t *event;
    while ((event = pond_reader_next (replay, 10000))) {
        cr_assert_eq (pond_event_seq (event), expected, "hole or disorder in seq");
        size_t index = (size_t) zhashx_lookup (by_id,
                                               pond_harness_id_hex (pond_event_id (event), key));
        cr_assert_gt (index, 0, "seq %" PRIu64 " holds an event that was never ACKed", expected);
        cr_assert_eq (seqs [index - 1], expected, "stored at the seq its ACK named");
        zhashx_delete (by_id, key);
        expected++;
        pond_event_destroy (&event);
    }
    cr_assert_eq (pond_reader_code (replay), 200, "%s", pond_reader_reason (replay));
    cr_assert_eq (zhashx_size (by_id), 0, "%zu ACKed events are not in the log",
                  zhashx_size (by_id));
    pond_reader_destroy (&replay);
    zhashx_destroy (&by_id);
    return expected - 1;
}

Test (chaos, disk_full_nacks_then_recovers, .init = s_disk_setup, .fini = s_disk_teardown,
      .timeout = 180)
{
    if (!*mount_point)
        cr_skip_test ("cannot mount a tmpfs here (needs root)");
    int64_t started = zclock_mono ();
    cr_assert_eq (pond_mesh_start_store (mesh), 0);
    cr_assert_eq (pond_mesh_start_broker (mesh), 0);
    client = pond_client_new (mesh->ingest);
    cr_assert_not_null (client);
    pond_client_set_timeout (client, 5000 * SLOW, 3);

    acked = calloc (DISK_EVENTS_MAX + 100, POND_ID_SIZE);
    seqs = calloc (DISK_EVENTS_MAX + 100, sizeof (uint64_t));
    size_t nacked_count = 0;
    size_t count = 0;    //  acked so far
    uint64_t n = 0;      //  events made so far

    //  A few while there is room
    for (int i = 0; i < 5; i++) {
        uint8_t id [POND_ID_SIZE];
        size_t size;
        uint8_t *bytes = s_big_event (++n, id, &size);
        pond_ack_t ack;
        cr_assert_eq (pond_client_publish_bytes (client, id, bytes, size, &ack), 0, "%s",
                      pond_client_reason (client));
        memcpy (acked [count], id, POND_ID_SIZE);
        seqs [count++] = ack.seq;
        free (bytes);
    }

    //  Take the space, then publish big events one by one until refused
    char filler [800];
    snprintf (filler, sizeof filler, "%s/filler", mount_point);
    uint64_t filled = s_fill (filler);
    uint64_t first_refused = 0;
    uint8_t refused [8][POND_ID_SIZE];
    uint32_t codes [8];
    while (nacked_count < 8 && n < DISK_EVENTS_MAX) {
        uint8_t id [POND_ID_SIZE];
        size_t size;
        uint8_t *bytes = s_big_event (++n, id, &size);
        pond_ack_t ack;
        if (pond_client_publish_bytes (client, id, bytes, size, &ack) == 0) {
            cr_assert_eq (nacked_count, 0,
                          "an ACK after the store refused: it must keep "
                          "refusing while the disk is full");
            cr_assert (!ack.dup);
            memcpy (acked [count], id, POND_ID_SIZE);
            seqs [count++] = ack.seq;
        }
        else {
            int code = pond_client_code (client);
            cr_assert_eq (waitpid (mesh->store, NULL, WNOHANG), 0,
                          "the store survives the "
                          "full disk (it refused with %d: %s)",
                          code, pond_client_reason (client));
            cr_assert (code == POND_CODE_STORE_ERROR || code == POND_CODE_UNAVAILABLE,
                       "refused with 500 or 503, not %d: %s", code, pond_client_reason (client));
            if (!first_refused)
                first_refused = n;
            memcpy (refused [nacked_count], id, POND_ID_SIZE);
            codes [nacked_count++] = (uint32_t) code;
        }
        free (bytes);
    }
    cr_assert_eq (nacked_count, 8, "the full disk refused writes (after %" PRIu64 " events)", n);
    //  Nothing half written: the log is exactly the ACKed events
    uint64_t in_log = s_check_log (count);
    cr_assert_eq (in_log, count);
    char err [256];
    char *stats = pond_client_stats (mesh->control, 2000, err, sizeof err);
    cr_assert_not_null (stats, "the store still answers: %s", err);
    cr_assert (strstr (stats, "\"write_errors\":"), "%s", stats);
    cr_assert (!strstr (stats, "\"write_errors\":0"), "write errors are counted: %s", stats);
    free (stats);

    //  Space comes back: the store resumes by itself (RocksDB retries every
    //  5 s once enough is free), the refused events go in, seq goes on
    cr_assert_eq (unlink (filler), 0);
    uint64_t free_bytes = s_free_bytes (mount_point);
    int64_t freed_at = zclock_mono ();
    int attempts = 0;
    for (size_t i = 0; i < nacked_count; i++) {
        uint8_t id [POND_ID_SIZE];
        size_t size;
        uint64_t which = first_refused + i;
        uint8_t *bytes = s_big_event (which, id, &size);
        cr_assert_eq (memcmp (id, refused [i], POND_ID_SIZE), 0);
        pond_ack_t ack;
        int rc;
        while ((rc = pond_client_publish_bytes (client, id, bytes, size, &ack)) != 0
               && zclock_mono () - freed_at < 60000) {
            attempts++;
            zclock_sleep (250);
        }
        cr_assert_eq (rc, 0, "publishing works again once space is back: %s",
                      pond_client_reason (client));
        cr_assert (!ack.dup, "a refused event was not stored before");
        cr_assert_eq (ack.seq, seqs [count - 1] + 1, "no hole in seq");
        memcpy (acked [count], id, POND_ID_SIZE);
        seqs [count++] = ack.seq;
        free (bytes);
    }
    int64_t recovered_at = zclock_mono ();
    in_log = s_check_log (count);
    cr_assert_eq (in_log, count);
    fprintf (stderr,
             "disk full: tmpfs %d MB, filler %.1f MB; %zu big events ACKed before the "
             "disk was full, then %zu refused (first code %u); %.1f MB free after removing "
             "the filler; writes resumed after %.1f s (%d refused retries); log 1..%" PRIu64
             " without a hole; total %.1f s\n",
             DISK_MB, filled / 1e6, count - nacked_count, nacked_count, codes [0], free_bytes / 1e6,
             (recovered_at - freed_at) / 1000.0, attempts, in_log,
             (zclock_mono () - started) / 1000.0);
}
