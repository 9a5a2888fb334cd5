/*  test_device: pond-device against a real mesh (pond-store + pond-broker).

    Drives the pond-device binary as a process, as a user would, and checks
    the log through the control socket: a scenario is stored in creation
    order with the right data and the device's own state; a device without
    a broker queues durably and syncs later with the same ids; kill -9 in
    the middle of a sync loses and doubles nothing; bad input exits 2 with
    the reason; a device with a wrong clock keeps the store's order by seq
    while its events replay by time where their ts puts them.
*/
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <czmq.h>
#include <signal.h>
#include <sys/wait.h>

#include "pond_client.h"
#include "pond_proto.h"
#include "pond_harness.h"
#include "pond_time.h"
#include "pond_uuid.h"
#include "pond_value.h"

#define PIDS_MAX 8
#define RUN_MS   60000    //  no single device run may take longer

static pond_mesh_t *mesh;
static pid_t pids [PIDS_MAX];    //  devices started in the background
static int runs;                 //  numbers each run's log file

static void
s_setup (void)
{
    zsys_init ();
    zsys_set_logstream (stderr);
    mesh = pond_mesh_start ();
    cr_assert_not_null (mesh, "the mesh starts");
    memset (pids, 0, sizeof pids);
}

static void
s_teardown (void)
{
    for (int i = 0; i < PIDS_MAX; i++)
        if (pids [i] > 0) {
            pond_harness_stop (pids [i], SIGKILL);
            pids [i] = 0;
        }
    pond_mesh_destroy (&mesh);
}

//  ---------------------------------------------------------------------
//  Running the device

//  Read a whole file. Caller frees.
static char *
s_slurp (const char *path)
{
    FILE *file = fopen (path, "r");
    if (!file)
        return strdup ("");
    fseek (file, 0, SEEK_END);
    long size = ftell (file);
    fseek (file, 0, SEEK_SET);
    char *text = calloc (1, (size_t) size + 1);
    if (text && fread (text, 1, (size_t) size, file) != (size_t) size)
        text [0] = 0;
    fclose (file);
    return text;
}

//  Start pond-device --data DIR with the NULL-terminated arguments; its
//  stdout and stderr go to *log_p (a new file). Remembered for teardown.
static pid_t
s_start (char **log_p, va_list args)
{
    char *argv [64] = { "pond-device", "--data", mesh->dir };
    int argc = 3;
    const char *arg;
    while ((arg = va_arg (args, const char *)) && argc < 63)
        argv [argc++] = (char *) arg;
    argv [argc] = NULL;
    *log_p = zsys_sprintf ("%s/device-%d.log", mesh->dir, ++runs);
    pid_t pid = pond_harness_spawnv (*log_p, argv);
    cr_assert_gt (pid, 0, "pond-device starts");
    for (int i = 0; i < PIDS_MAX; i++)
        if (pids [i] == 0) {
            pids [i] = pid;
            break;
        }
    return pid;
}

static void
s_forget (pid_t pid)
{
    for (int i = 0; i < PIDS_MAX; i++)
        if (pids [i] == pid)
            pids [i] = 0;
}

//  Wait for a device to end by itself. Returns its exit code, or -1 if it
//  was killed or did not end within timeout_ms (then it is killed).
static int
s_wait (pid_t pid, int timeout_ms)
{
    int status;
    for (int waited = 0; waited < timeout_ms; waited += 10) {
        if (waitpid (pid, &status, WNOHANG) == pid) {
            s_forget (pid);
            return WIFEXITED (status) ? WEXITSTATUS (status) : -1;
        }
        zclock_sleep (10);
    }
    pond_harness_stop (pid, SIGKILL);
    s_forget (pid);
    return -1;
}

//  Start pond-device in the background; see s_start.
static pid_t
s_spawn (char **log_p, ...)
{
    va_list args;
    va_start (args, log_p);
    pid_t pid = s_start (log_p, args);
    va_end (args);
    return pid;
}

//  Run pond-device to its end with the NULL-terminated arguments. Returns
//  the exit code; *output_p gets stdout and stderr (caller frees).
static int
s_run (char **output_p, ...)
{
    va_list args;
    va_start (args, output_p);
    char *log;
    pid_t pid = s_start (&log, args);
    va_end (args);
    int code = s_wait (pid, RUN_MS);
    *output_p = s_slurp (log);
    free (log);
    return code;
}

//  The JSON line that starts with {"device" in output (the summary or the
//  state). Caller owns the tree.
static cJSON *
s_summary (const char *output)
{
    const char *start = strstr (output, "{\"device\"");
    cr_assert_not_null (start, "a JSON line in:\n%s", output);
    const char *end = strchr (start, '\n');
    cJSON *json = cJSON_ParseWithLength (start, end ? (size_t) (end - start) : strlen (start));
    cr_assert_not_null (json, "the summary is JSON: %s", start);
    return json;
}

static double
s_number (cJSON *json, const char *key)
{
    cJSON *item = cJSON_GetObjectItemCaseSensitive (json, key);
    cr_assert (cJSON_IsNumber (item), "'%s' is a number", key);
    return item->valuedouble;
}

static const char *
s_string (cJSON *json, const char *key)
{
    cJSON *item = cJSON_GetObjectItemCaseSensitive (json, key);
    cr_assert (cJSON_IsString (item), "'%s' is a string", key);
    return item->valuestring;
}

//  The ids the device logged as created (--verbose), in order, appended to
//  ids (strings, the list owns them).
static void
s_created_ids (const char *output, zlistx_t *ids)
{
    const char *marker = "pond-device: created ";
    for (const char *at = strstr (output, marker); at; at = strstr (at + 1, marker)) {
        char uuid [POND_UUID_STR_SIZE];
        snprintf (uuid, sizeof uuid, "%.36s", at + strlen (marker));
        zlistx_add_end (ids, strdup (uuid));
    }
}

static zlistx_t *
s_list_new (void)
{
    zlistx_t *list = zlistx_new ();
    zlistx_set_destructor (list, (zlistx_destructor_fn *) zstr_free);
    return list;
}

//  Write a scenario file into the mesh directory. Caller frees the path.
static char *
s_scenario (const char *name, const char *text)
{
    char *path = zsys_sprintf ("%s/%s", mesh->dir, name);
    FILE *file = fopen (path, "w");
    cr_assert_not_null (file);
    fputs (text, file);
    fclose (file);
    return path;
}

//  ---------------------------------------------------------------------
//  Reading the log

//  Every event of entity, in seq order. Returns a list of pond_event_t.
static zlistx_t *
s_replay (pond_replay_req_t *request)
{
    pond_reader_t *replay = pond_reader_new (mesh->control, request);
    cr_assert_not_null (replay);
    zlistx_t *events = zlistx_new ();
    zlistx_set_destructor (events, (zlistx_destructor_fn *) pond_event_destroy);
    pond_event_t *event;
    while ((event = pond_reader_next (replay, 10000)))
        zlistx_add_end (events, event);
    cr_assert_eq (pond_reader_code (replay), 200, "replay: %s", pond_reader_reason (replay));
    pond_reader_destroy (&replay);
    return events;
}

static zlistx_t *
s_replay_entity (const char *entity)
{
    pond_replay_req_t request = { .rid = 0 };
    snprintf (request.entity, sizeof request.entity, "%s", entity);
    return s_replay (&request);
}

//  The event's data as JSON. Caller owns the tree.
static cJSON *
s_data (pond_event_t *event)
{
    size_t size;
    const uint8_t *data = pond_event_data (event, &size);
    cr_assert_not_null (data, "%s has data", pond_event_name (event));
    char *text = pond_value_to_json (data, size);
    cJSON *json = cJSON_Parse (text);
    free (text);
    cr_assert_not_null (json);
    return json;
}

static cJSON *
s_meta (pond_event_t *event)
{
    size_t size;
    const uint8_t *meta = pond_event_meta (event, &size);
    cr_assert_not_null (meta, "%s has meta", pond_event_name (event));
    char *text = pond_value_to_json (meta, size);
    cJSON *json = cJSON_Parse (text);
    free (text);
    cr_assert_not_null (json);
    return json;
}

//  Events stored, from the broker's STATS.
static int
s_stored (void)
{
    char *text = pond_client_stats (mesh->control, 2000, NULL, 0);
    if (!text)
        return -1;
    cJSON *json = cJSON_Parse (text);
    free (text);
    cJSON *store = cJSON_GetObjectItemCaseSensitive (json, "store");
    cJSON *events = cJSON_GetObjectItemCaseSensitive (store, "events");
    int count = cJSON_IsNumber (events) ? events->valueint : -1;
    cJSON_Delete (json);
    return count;
}

//  Check that the log holds exactly the ids created, each once, in the
//  order they were created (seq order of the entity's events).
static void
s_assert_same_ids (zlistx_t *events, zlistx_t *created)
{
    cr_assert_eq (zlistx_size (events), zlistx_size (created),
                  "stored %zu events, the device created %zu", zlistx_size (events),
                  zlistx_size (created));
    zhashx_t *seen = zhashx_new ();
    const char *expected = (const char *) zlistx_first (created);
    uint64_t last_seq = 0;
    size_t index = 0;
    for (pond_event_t *event = (pond_event_t *) zlistx_first (events); event;
         event = (pond_event_t *) zlistx_next (events), index++) {
        char uuid [POND_UUID_STR_SIZE];
        pond_uuid_format (pond_event_id (event), uuid);
        cr_assert_null (zhashx_lookup (seen, uuid), "id %s stored twice", uuid);
        zhashx_insert (seen, uuid, (void *) 1);
        cr_assert_gt (pond_event_seq (event), last_seq);
        last_seq = pond_event_seq (event);
        cr_assert_str_eq (uuid, expected, "event %zu: stored %s, created %s", index, uuid,
                          expected);
        expected = (const char *) zlistx_next (created);
    }
    zhashx_destroy (&seen);
}

//  ---------------------------------------------------------------------
//  (0) The scenario the README uses is shipped and runs as it says

Test (device, shipped_kitchen_scenario_runs, .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    char *output;
    int code = s_run (&output, "--device", "silo-2", "--customer", "cust-2", "--scenario",
                      POND_TESTS_DIR "/../actors/device/scenarios/kitchen.txt", NULL);
    cr_assert_eq (code, 0, "the README's kitchen scenario runs:\n%s", output);
    cJSON *summary = s_summary (output);
    cr_assert_eq (s_number (summary, "created"), 10, "%s", output);
    cr_assert_eq (s_number (summary, "sent"), 10, "%s", output);
    cJSON_Delete (summary);
    free (output);
    zlistx_t *events = s_replay_entity ("cust-2");
    cr_assert_eq (zlistx_size (events), 10);
    zlistx_destroy (&events);
}

//  ---------------------------------------------------------------------
//  (1) A scenario: stored in creation order, data right, state right

Test (device, scenario_is_stored_in_order_and_state_kept, .init = s_setup, .fini = s_teardown,
      .timeout = 60)
{
    char *path = s_scenario ("breakfast.txt", "# breakfast at the Silo\n"
                                              "click\n"
                                              "click 2 150\n"
                                              "\n"
                                              "quack 250 62.5\n"
                                              "quack\n"
                                              "label c1 oat milk\n"
                                              "  label c2 eggs  \n"
                                              "unlabel c1\n"
                                              "sleep 50\n"
                                              "quack 300\n");
    char *output;
    int code = s_run (&output, "--device", "silo-1", "--customer", "cust-1", "--firmware", "3.0",
                      "--scenario", path, "--verbose", NULL);
    cr_assert_eq (code, 0, "exit 0 when everything is sent:\n%s", output);
    cJSON *summary = s_summary (output);
    cr_assert_eq (s_number (summary, "created"), 8);
    cr_assert_eq (s_number (summary, "sent"), 8);
    cr_assert_eq (s_number (summary, "queued"), 0);
    cJSON_Delete (summary);
    zlistx_t *created = s_list_new ();
    s_created_ids (output, created);
    free (output);

    zlistx_t *events = s_replay_entity ("cust-1");
    s_assert_same_ids (events, created);
    const char *names [] = { "BUTTON_CLICKED", "BUTTON_CLICKED", "QUACKED",       "QUACKED",
                             "LABEL_ADDED",    "LABEL_ADDED",    "LABEL_REMOVED", "QUACKED" };
    pond_event_t *event = (pond_event_t *) zlistx_first (events);
    uint64_t last_ts = 0;
    for (size_t i = 0; i < 8; i++, event = (pond_event_t *) zlistx_next (events)) {
        cr_assert_str_eq (pond_event_name (event), names [i], "event %zu", i);
        cr_assert_str_eq (pond_event_source (event), "silo-1");
        cr_assert_str_eq (pond_event_entity (event), "cust-1");
        cr_assert_geq (pond_event_ts (event), last_ts, "ts follows creation");
        last_ts = pond_event_ts (event);
        cJSON *data = s_data (event);
        if (i == 1) {
            cr_assert_eq (s_number (data, "button"), 2);
            cr_assert_eq (s_number (data, "press_ms"), 150);
        }
        if (i == 0)
            cr_assert_gt (s_number (data, "press_ms"), 0, "press_ms is sensed");
        if (i == 2) {
            cr_assert_eq (s_number (data, "duration_ms"), 250);
            cr_assert_float_eq (s_number (data, "loudness_db"), 62.5, 1e-9);
        }
        if (streq (names [i], "QUACKED")) {
            cr_assert_str_eq (s_string (data, "firmware"), "3.0");
            cr_assert_gt (s_number (data, "duration_ms"), 0);
            cr_assert_gt (s_number (data, "loudness_db"), 0);
            cJSON *meta = s_meta (event);
            cr_assert_str_eq (s_string (meta, "performer"), "silo-1");
            cr_assert_str_eq (s_string (meta, "firmware"), "3.0");
            cJSON_Delete (meta);
        }
        if (i == 4 || i == 6) {
            cr_assert_str_eq (s_string (data, "container"), "c1");
            cr_assert_str_eq (s_string (data, "label"), "oat milk");
        }
        if (i == 5) {
            cr_assert_str_eq (s_string (data, "container"), "c2");
            cr_assert_str_eq (s_string (data, "label"), "eggs");
        }
        cJSON_Delete (data);
    }
    zlistx_destroy (&events);
    zlistx_destroy (&created);

    //  The device's own state: c1 unlabeled, c2 labeled
    code = s_run (&output, "--device", "silo-1", "--state", NULL);
    cr_assert_eq (code, 0, "%s", output);
    cJSON *state = s_summary (output);
    free (output);
    cr_assert_str_eq (s_string (state, "customer"), "cust-1");
    cr_assert_eq (s_number (state, "outbox"), 0);
    cr_assert_eq (s_number (state, "sent"), 8);
    cJSON *containers = cJSON_GetObjectItemCaseSensitive (state, "containers");
    cJSON *c1 = cJSON_GetObjectItemCaseSensitive (containers, "c1");
    cJSON *c2 = cJSON_GetObjectItemCaseSensitive (containers, "c2");
    cr_assert_str_eq (s_string (c1, "state"), "UNLABELED");
    cr_assert_str_eq (s_string (c2, "state"), "LABELED");
    cr_assert_str_eq (s_string (c2, "label"), "eggs");
    cJSON_Delete (state);

    //  Relabeling takes the old label off first; unlabeling an unknown
    //  container creates nothing
    code = s_run (&output, "--device", "silo-1", "--customer", "cust-1", "--label", "c2=bacon",
                  "--unlabel", "c9", NULL);
    cr_assert_eq (code, 0, "%s", output);
    cr_assert (strstr (output, "c9"), "the unknown container is named:\n%s", output);
    summary = s_summary (output);
    cr_assert_eq (s_number (summary, "created"), 2);
    c2 = cJSON_GetObjectItemCaseSensitive (cJSON_GetObjectItemCaseSensitive (summary, "containers"),
                                           "c2");
    cr_assert_str_eq (s_string (c2, "label"), "bacon");
    cJSON_Delete (summary);
    free (output);
    events = s_replay_entity ("cust-1");
    cr_assert_eq (zlistx_size (events), 10);
    event = (pond_event_t *) zlistx_last (events);
    cr_assert_str_eq (pond_event_name (event), "LABEL_ADDED");
    event = (pond_event_t *) zlistx_prev (events);
    cr_assert_str_eq (pond_event_name (event), "LABEL_REMOVED");
    cJSON *data = s_data (event);
    cr_assert_str_eq (s_string (data, "label"), "eggs");
    cJSON_Delete (data);
    zlistx_destroy (&events);
    free (path);
}

//  ---------------------------------------------------------------------
//  (2) Offline: no broker, events queue durably; later they sync, same ids

Test (device, offline_queues_then_syncs_with_same_ids, .init = s_setup, .fini = s_teardown,
      .timeout = 60)
{
    pond_harness_stop (mesh->broker, SIGTERM);
    mesh->broker = -1;
    char *output;
    int code = s_run (&output, "--device", "silo-2", "--customer", "cust-2", "--quack", "5",
                      "--click", "3", "--label", "c1=milk", "--sync-timeout", "1", "--verbose",
                      NULL);
    cr_assert_eq (code, 1, "exit 1 with events queued:\n%s", output);
    cr_assert (strstr (output, "9 events still queued"), "says how many:\n%s", output);
    cr_assert (strstr (output, "next start"), "says what happens next:\n%s", output);
    cJSON *summary = s_summary (output);
    cr_assert_eq (s_number (summary, "created"), 9);
    cr_assert_eq (s_number (summary, "sent"), 0);
    cr_assert_eq (s_number (summary, "queued"), 9);
    cJSON_Delete (summary);
    zlistx_t *created = s_list_new ();
    s_created_ids (output, created);
    cr_assert_eq (zlistx_size (created), 9);
    free (output);

    //  Still offline: more events join the queue behind the first ones
    code = s_run (&output, "--device", "silo-2", "--customer", "cust-2", "--quack", "2",
                  "--sync-timeout", "0", "--verbose", NULL);
    cr_assert_eq (code, 1, "%s", output);
    s_created_ids (output, created);
    free (output);
    code = s_run (&output, "--device", "silo-2", "--state", NULL);
    cr_assert_eq (code, 0);
    cJSON *state = s_summary (output);
    cr_assert_eq (s_number (state, "outbox"), 11);
    cJSON_Delete (state);
    free (output);

    //  The broker is back: a run without actions syncs the outbox
    cr_assert_eq (pond_mesh_start_broker (mesh), 0);
    code = s_run (&output, "--device", "silo-2", "--sync-timeout", "20", NULL);
    cr_assert_eq (code, 0, "syncs:\n%s", output);
    summary = s_summary (output);
    cr_assert_eq (s_number (summary, "created"), 0);
    cr_assert_eq (s_number (summary, "sent"), 11);
    cr_assert_eq (s_number (summary, "queued"), 0);
    cJSON_Delete (summary);
    free (output);

    zlistx_t *events = s_replay_entity ("cust-2");
    s_assert_same_ids (events, created);
    zlistx_destroy (&events);
    cr_assert_eq (s_stored (), 11, "nothing else was stored");

    //  Nothing left: a second sync sends nothing
    code = s_run (&output, "--device", "silo-2", NULL);
    cr_assert_eq (code, 0, "%s", output);
    summary = s_summary (output);
    cr_assert_eq (s_number (summary, "sent"), 0);
    cJSON_Delete (summary);
    free (output);
    cr_assert_eq (s_stored (), 11);
    zlistx_destroy (&created);
}

//  A simulated cut: created while cut, sent once the network is back
Test (device, simulated_cut_then_online_syncs, .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    char *path = s_scenario ("cut.txt", "quack\n"
                                        "offline\n"
                                        "quack\n"
                                        "label c7 butter\n"
                                        "sleep 200\n"
                                        "online\n"
                                        "click\n");
    char *output;
    int code = s_run (&output, "--device", "silo-c", "--customer", "cust-c", "--scenario", path,
                      "--verbose", NULL);
    cr_assert_eq (code, 0, "%s", output);
    zlistx_t *created = s_list_new ();
    s_created_ids (output, created);
    free (output);
    zlistx_t *events = s_replay_entity ("cust-c");
    s_assert_same_ids (events, created);
    zlistx_destroy (&events);

    //  A cut that never ends within the run: exit 1, queued, synced next time
    code = s_run (&output, "--device", "silo-c", "--customer", "cust-c", "--start-offline", "600",
                  "--quack", "2", "--verbose", NULL);
    cr_assert_eq (code, 1, "%s", output);
    cr_assert (strstr (output, "2 events still queued"), "%s", output);
    s_created_ids (output, created);
    free (output);
    //  A short start-up cut: waits it out, then syncs
    code = s_run (&output, "--device", "silo-c", "--customer", "cust-c", "--start-offline", "0.5",
                  "--quack", "1", "--verbose", NULL);
    cr_assert_eq (code, 0, "%s", output);
    s_created_ids (output, created);
    cJSON *summary = s_summary (output);
    cr_assert_eq (s_number (summary, "sent"), 3);
    cJSON_Delete (summary);
    free (output);
    events = s_replay_entity ("cust-c");
    s_assert_same_ids (events, created);
    zlistx_destroy (&events);
    zlistx_destroy (&created);
    free (path);
}

//  ---------------------------------------------------------------------
//  (3) kill -9 in the middle of a sync: no loss, no double

#define KILL_EVENTS 2000

Test (device, sigkill_mid_sync_loses_and_doubles_nothing, .init = s_setup, .fini = s_teardown,
      .timeout = 110)
{
    //  Queue KILL_EVENTS events with the network cut
    char *output;
    char count [16];
    snprintf (count, sizeof count, "%d", KILL_EVENTS);
    int code = s_run (&output, "--device", "silo-k", "--customer", "cust-k", "--quack", count,
                      "--start-offline", "3600", "--sync-timeout", "0", "--verbose", NULL);
    cr_assert_eq (code, 1, "%s", output);
    zlistx_t *created = s_list_new ();
    s_created_ids (output, created);
    free (output);
    cr_assert_eq (zlistx_size (created), KILL_EVENTS);

    //  Sync one by one, and kill -9 twice along the way
    int kill_at [] = { KILL_EVENTS / 10, KILL_EVENTS / 2 };
    int killed_mid_sync = 0;
    for (int round = 0; round < 2; round++) {
        char *log;
        pid_t pid = s_spawn (&log, "--device", "silo-k", "--window", "1", NULL);
        int stored = 0;
        int64_t deadline = zclock_mono () + 30000;
        while ((stored = s_stored ()) < kill_at [round] && zclock_mono () < deadline) {
            if (waitpid (pid, NULL, WNOHANG) == pid) {
                s_forget (pid);
                pid = 0;
                break;
            }
            zclock_sleep (5);
        }
        if (pid) {
            pond_harness_stop (pid, SIGKILL);
            stored = s_stored ();
            if (stored < KILL_EVENTS)
                killed_mid_sync++;
        }
        s_forget (pid);
        free (log);
    }
    if (killed_mid_sync < 2)
        cr_log_warn ("the sync ended before kill -9 %d time(s)", 2 - killed_mid_sync);

    //  The next start sends the rest
    code = s_run (&output, "--device", "silo-k", "--sync-timeout", "30", NULL);
    cr_assert_eq (code, 0, "%s", output);
    free (output);
    code = s_run (&output, "--device", "silo-k", "--state", NULL);
    cJSON *state = s_summary (output);
    cr_assert_eq (s_number (state, "outbox"), 0);
    cr_assert_eq (s_number (state, "created"), KILL_EVENTS);
    cr_assert_eq (s_number (state, "sent"), KILL_EVENTS);
    cJSON_Delete (state);
    free (output);

    zlistx_t *events = s_replay_entity ("cust-k");
    s_assert_same_ids (events, created);
    zlistx_destroy (&events);
    cr_assert_eq (s_stored (), KILL_EVENTS);
    zlistx_destroy (&created);
}

//  ---------------------------------------------------------------------
//  (4) Bad input: exit 2, the problem named, nothing created

Test (device, bad_scenarios_and_flags_exit_2, .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    struct {
        const char *line;
        const char *says;
    } lines [] = {
        { "quack loud", "DURATION_MS" },
        { "quack 100 loud", "LOUDNESS_DB" },
        { "quack 1 2 3", "at most" },
        { "click 99", "BUTTON" },
        { "label c1", "needs CONTAINER and LABEL" },
        { "unlabel", "CONTAINER" },
        { "unlabel c1 c2", "exactly one" },
        { "sleep", "'sleep' needs" },
        { "sleep soon", "soon" },
        { "offline now", "takes nothing" },
        { "dance", "unknown action 'dance'" },
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines [0]; i++) {
        char text [256];
        snprintf (text, sizeof text, "# bad\nclick\n%s\nquack\n", lines [i].line);
        char *path = s_scenario ("bad.txt", text);
        char *output;
        int code = s_run (&output, "--device", "silo-b", "--customer", "cust-b", "--scenario", path,
                          NULL);
        cr_assert_eq (code, 2, "'%s' exits 2:\n%s", lines [i].line, output);
        cr_assert (strstr (output, "line 3"), "'%s': the line is named:\n%s", lines [i].line,
                   output);
        cr_assert (strstr (output, lines [i].says), "'%s': says '%s':\n%s", lines [i].line,
                   lines [i].says, output);
        free (output);
        free (path);
    }
    struct {
        const char *args [10];
        const char *says;
    } flags [] = {
        { { "--customer", "c", "--quack", "1" }, "--device ID is required" },
        { { "--device", "d", "--quack", "1" }, "--customer ID is required" },
        { { "--device", "d", "--customer", "c", "--click", "abc" }, "--click needs a count" },
        { { "--device", "d", "--customer", "c", "--quack", "0" }, "--quack needs a count" },
        { { "--device", "d", "--customer", "c", "--label", "c1" }, "CONTAINER=LABEL" },
        { { "--device", "d", "--customer", "c", "--bogus" }, "unknown option '--bogus'" },
        { { "--device", "d", "--customer", "c", "--quack" }, "--quack needs a value" },
        { { "--device", "d", "--customer", "c", "--scenario", "/nonexistent/s.txt" },
          "cannot read scenario" },
        { { "--device", "d", "--rate", "10" }, "go with --load" },
        { { "--device", "a/b", "--customer", "c", "--quack", "1" }, "no '/'" },
        { { "--device", "d", "--state", "--quack", "1" }, "--state only" },
        { { "--device", "d", "--customer", "c", "--clock-skew-ms", "x", "--quack", "1" },
          "--clock-skew-ms" },
        { { "--device", "d", "--load", "--rate", "fast" }, "--rate needs" },
        { { "--device", "d", "--customer", "c", "stray" }, "unexpected argument 'stray'" },
    };
    for (size_t i = 0; i < sizeof flags / sizeof flags [0]; i++) {
        char *argv [16] = { "pond-device", "--data", mesh->dir };
        int argc = 3;
        for (int j = 0; flags [i].args [j]; j++)
            argv [argc++] = (char *) flags [i].args [j];
        argv [argc] = NULL;
        char *log = zsys_sprintf ("%s/flags-%zu.log", mesh->dir, i);
        pid_t pid = pond_harness_spawnv (log, argv);
        pids [0] = pid;
        int code = s_wait (pid, RUN_MS);
        char *output = s_slurp (log);
        cr_assert_eq (code, 2, "case %zu exits 2:\n%s", i, output);
        cr_assert (strstr (output, flags [i].says), "case %zu says '%s':\n%s", i, flags [i].says,
                   output);
        cr_assert (strstr (output, "--help"), "case %zu points to --help:\n%s", i, output);
        free (output);
        free (log);
    }
    cr_assert_eq (s_stored (), 0, "nothing was published");
    char *devices = zsys_sprintf ("%s/devices", mesh->dir);
    cr_assert (!zsys_file_exists (devices), "no outbox was created");
    free (devices);
}

//  ---------------------------------------------------------------------
//  (5) A wrong clock: order by seq unaffected, replay by time by its ts

Test (device, clock_skew_keeps_seq_order_and_time_replay, .init = s_setup, .fini = s_teardown,
      .timeout = 60)
{
    char *output;
    int code = s_run (&output, "--device", "silo-ok", "--customer", "cust-t", "--quack", "2", NULL);
    cr_assert_eq (code, 0, "%s", output);
    free (output);
    uint64_t before = pond_time_now ();
    code = s_run (&output, "--device", "silo-late", "--customer", "cust-t", "--quack", "3",
                  "--clock-skew-ms", "-86400000", NULL);
    cr_assert_eq (code, 0, "%s", output);
    free (output);
    uint64_t after = pond_time_now ();
    code = s_run (&output, "--device", "silo-ok", "--customer", "cust-t", "--quack", "1", NULL);
    cr_assert_eq (code, 0, "%s", output);
    free (output);

    //  By seq: the order of arrival, whatever the clocks say
    zlistx_t *events = s_replay_entity ("cust-t");
    cr_assert_eq (zlistx_size (events), 6);
    const char *sources [] = { "silo-ok",   "silo-ok",   "silo-late",
                               "silo-late", "silo-late", "silo-ok" };
    uint64_t seq = 0;
    size_t index = 0;
    uint64_t day = 86400ULL * 1000000;
    for (pond_event_t *event = (pond_event_t *) zlistx_first (events); event;
         event = (pond_event_t *) zlistx_next (events), index++) {
        cr_assert_gt (pond_event_seq (event), seq, "seqs increase");
        seq = pond_event_seq (event);
        cr_assert_str_eq (pond_event_source (event), sources [index]);
        if (streq (sources [index], "silo-late")) {
            cr_assert_geq (pond_event_ts (event), before - day);
            cr_assert_leq (pond_event_ts (event), after - day);
        }
        else
            cr_assert_gt (pond_event_ts (event), after - 3600ULL * 1000000);
    }
    zlistx_destroy (&events);

    //  By time: the late device's events sit a day back, first
    pond_replay_req_t request = { .names_count = 1,
                                  .from_ts = before - day - 1000000,
                                  .to_ts = after - day + 1000000 };
    strcpy (request.names [0], "QUACKED");
    events = s_replay (&request);
    cr_assert_eq (zlistx_size (events), 3, "the day-old window holds the late events");
    for (pond_event_t *event = (pond_event_t *) zlistx_first (events); event;
         event = (pond_event_t *) zlistx_next (events))
        cr_assert_str_eq (pond_event_source (event), "silo-late");
    zlistx_destroy (&events);

    pond_replay_req_t all = { .names_count = 1 };
    strcpy (all.names [0], "QUACKED");
    events = s_replay (&all);
    cr_assert_eq (zlistx_size (events), 6);
    index = 0;
    const char *by_time [] = { "silo-late", "silo-late", "silo-late",
                               "silo-ok",   "silo-ok",   "silo-ok" };
    for (pond_event_t *event = (pond_event_t *) zlistx_first (events); event;
         event = (pond_event_t *) zlistx_next (events), index++)
        cr_assert_str_eq (pond_event_source (event), by_time [index], "by time, event %zu", index);
    zlistx_destroy (&events);
}

//  ---------------------------------------------------------------------
//  SIGTERM: stop producing, keep the outbox, exit 0 with the summary

Test (device, sigterm_keeps_the_outbox_and_exits_0, .init = s_setup, .fini = s_teardown,
      .timeout = 60)
{
    char *path = s_scenario ("slow.txt", "quack\nsleep 60000\nquack\n");
    char *log;
    pid_t pid = s_spawn (&log, "--device", "silo-s", "--customer", "cust-s", "--scenario", path,
                         NULL);
    int64_t deadline = zclock_mono () + 10000;
    while (s_stored () < 1 && zclock_mono () < deadline)
        zclock_sleep (20);
    cr_assert_eq (s_stored (), 1, "the first quack is sent");
    kill (pid, SIGTERM);
    int code = s_wait (pid, 10000);
    char *output = s_slurp (log);
    cr_assert_eq (code, 0, "SIGTERM exits 0:\n%s", output);
    cJSON *summary = s_summary (output);
    cr_assert_eq (s_number (summary, "created"), 1);
    cr_assert_eq (s_number (summary, "sent"), 1);
    cJSON_Delete (summary);
    free (output);
    free (log);
    free (path);
}

//  ---------------------------------------------------------------------
//  Replies a real broker rarely gives: a fake ingest socket answers the
//  device with NACK 503, a dup ACK and a NACK 400

Test (device, nacks_dups_and_refusals_from_a_fake_broker, .init = s_setup, .fini = s_teardown,
      .timeout = 60)
{
    char endpoint [300];
    snprintf (endpoint, sizeof endpoint, "ipc://%s/fake-ingest.ipc", mesh->dir);
    zsock_t *fake = zsock_new_router (endpoint);
    cr_assert_not_null (fake);
    char *log;
    pid_t pid = s_spawn (&log, "--device", "silo-f", "--customer", "cust-f", "--ingest", endpoint,
                         "--quack", "3", "--sync-timeout", "10", "--verbose", NULL);
    //  Ids in the order they first arrived, and how often each came
    uint8_t order [3][POND_ID_SIZE];
    int firsts = 0, publishes = 0;
    int code = -1;
    int64_t deadline = zclock_mono () + 20000;
    while (zclock_mono () < deadline) {
        int status;
        if (waitpid (pid, &status, WNOHANG) == pid) {
            s_forget (pid);
            code = WIFEXITED (status) ? WEXITSTATUS (status) : -1;
            break;
        }
        zmq_pollitem_t item = { zsock_resolve (fake), 0, ZMQ_POLLIN, 0 };
        if (zmq_poll (&item, 1, 50) <= 0)
            continue;
        zmsg_t *msg = zmsg_recv (fake);
        zframe_t *identity = zmsg_pop (msg);
        zframe_t *command = zmsg_pop (msg);
        zframe_t *body = zmsg_pop (msg);
        cr_assert (pond_proto_is (command, "PUBLISH"));
        char err [POND_ERR_SIZE];
        pond_event_t *event = pond_event_decode (zframe_data (body), zframe_size (body), err,
                                                 sizeof err);
        cr_assert_not_null (event, "%s", err);
        int index = -1;
        for (int i = 0; i < firsts; i++)
            if (memcmp (order [i], pond_event_id (event), POND_ID_SIZE) == 0)
                index = i;
        bool first_time = index < 0;
        if (first_time) {
            cr_assert_lt (firsts, 3, "only three events exist");
            memcpy (order [firsts], pond_event_id (event), POND_ID_SIZE);
            index = firsts++;
        }
        publishes++;
        zmsg_t *reply = zmsg_new ();
        zmsg_append (reply, &identity);
        if (index == 0 && first_time) {
            //  First event, first time: come back later
            zmsg_addstr (reply, "NACK");
            zframe_t *nack = pond_nack_new (pond_event_id (event), 503, 50, "busy");
            zmsg_append (reply, &nack);
        }
        else if (index == 1) {
            zmsg_addstr (reply, "NACK");
            zframe_t *nack = pond_nack_new (pond_event_id (event), 400, 0, "no, never");
            zmsg_append (reply, &nack);
        }
        else {
            pond_ack_t ack = { .seq = (uint64_t) index + 1, .dup = index == 0 };
            memcpy (ack.id, pond_event_id (event), POND_ID_SIZE);
            zmsg_addstr (reply, "ACK");
            zframe_t *frame = pond_ack_encode (&ack);
            zmsg_append (reply, &frame);
        }
        zmsg_send (&reply, fake);
        zframe_destroy (&command);
        zframe_destroy (&body);
        pond_event_destroy (&event);
        zmsg_destroy (&msg);
    }
    zsock_destroy (&fake);
    char *output = s_slurp (log);
    free (log);
    cr_assert_eq (code, 1, "exit 1: an event was refused for good:\n%s", output);
    cr_assert (strstr (output, "no, never"), "the refusal is logged with its reason:\n%s", output);
    cr_assert (strstr (output, "refused 1 events for good"), "and summed up:\n%s", output);
    cJSON *summary = s_summary (output);
    cr_assert_eq (s_number (summary, "created"), 3);
    cr_assert_eq (s_number (summary, "sent"), 2);
    cr_assert_eq (s_number (summary, "dups"), 1);
    cr_assert_eq (s_number (summary, "rejected"), 1);
    cr_assert_eq (s_number (summary, "queued"), 0);
    cJSON_Delete (summary);

    //  First sends in creation order
    zlistx_t *created = s_list_new ();
    s_created_ids (output, created);
    free (output);
    cr_assert_eq (firsts, 3);
    cr_assert_geq (publishes, 4, "the 503 was followed by a resend");
    const char *expected = (const char *) zlistx_first (created);
    for (int i = 0; i < 3; i++, expected = (const char *) zlistx_next (created)) {
        char uuid [POND_UUID_STR_SIZE];
        pond_uuid_format (order [i], uuid);
        cr_assert_str_eq (uuid, expected, "first send %d in creation order", i);
    }
    zlistx_destroy (&created);

    int rc = s_run (&output, "--device", "silo-f", "--state", NULL);
    cr_assert_eq (rc, 0);
    cJSON *state = s_summary (output);
    cr_assert_eq (s_number (state, "rejected"), 1);
    cr_assert_eq (s_number (state, "outbox"), 0);
    cJSON_Delete (state);
    free (output);
}

//  NACK 409 (the id was stored for a different event) is final: the
//  device sets the event aside at once, never resends it
Test (device, nack_409_is_set_aside_not_resent, .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    char endpoint [300];
    snprintf (endpoint, sizeof endpoint, "ipc://%s/fake-ingest.ipc", mesh->dir);
    zsock_t *fake = zsock_new_router (endpoint);
    cr_assert_not_null (fake);
    char *log;
    pid_t pid = s_spawn (&log, "--device", "silo-c", "--customer", "cust-c", "--ingest", endpoint,
                         "--quack", "2", "--sync-timeout", "10", NULL);
    uint8_t refused [POND_ID_SIZE];
    int refused_sends = 0, publishes = 0;
    bool exited = false;
    int64_t deadline = zclock_mono () + 20000;
    while (!exited && zclock_mono () < deadline) {
        int status;
        if (waitpid (pid, &status, WNOHANG) == pid) {
            s_forget (pid);
            exited = true;
            break;
        }
        zmq_pollitem_t item = { zsock_resolve (fake), 0, ZMQ_POLLIN, 0 };
        if (zmq_poll (&item, 1, 50) <= 0)
            continue;
        zmsg_t *msg = zmsg_recv (fake);
        zframe_t *identity = zmsg_pop (msg);
        zframe_t *body = zmsg_last (msg);
        char err [POND_ERR_SIZE];
        pond_event_t *event = pond_event_decode (zframe_data (body), zframe_size (body), err,
                                                 sizeof err);
        cr_assert_not_null (event, "%s", err);
        if (publishes++ == 0)
            memcpy (refused, pond_event_id (event), POND_ID_SIZE);
        zmsg_t *reply = zmsg_new ();
        zmsg_append (reply, &identity);
        if (memcmp (refused, pond_event_id (event), POND_ID_SIZE) == 0) {
            refused_sends++;
            zmsg_addstr (reply, "NACK");
            zframe_t *nack = pond_nack_new (pond_event_id (event), 409, 0,
                                            "id already used for a different event");
            zmsg_append (reply, &nack);
        }
        else {
            pond_ack_t ack = { .seq = 7 };
            memcpy (ack.id, pond_event_id (event), POND_ID_SIZE);
            zmsg_addstr (reply, "ACK");
            zframe_t *frame = pond_ack_encode (&ack);
            zmsg_append (reply, &frame);
        }
        zmsg_send (&reply, fake);
        pond_event_destroy (&event);
        zmsg_destroy (&msg);
    }
    zsock_destroy (&fake);
    char *output = s_slurp (log);
    free (log);
    cr_assert (exited, "the device finishes: a 409 is not retried:\n%s", output);
    cr_assert_eq (refused_sends, 1, "the refused event was sent %d times", refused_sends);
    cr_assert (strstr (output, "different event"), "the reason is logged:\n%s", output);
    free (output);
    int rc = s_run (&output, "--device", "silo-c", "--state", NULL);
    cr_assert_eq (rc, 0);
    cJSON *state = s_summary (output);
    cr_assert_eq (s_number (state, "rejected"), 1);
    cr_assert_eq (s_number (state, "outbox"), 0);
    cJSON_Delete (state);
    free (output);
}
