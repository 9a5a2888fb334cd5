/*  pond_harness: start and stop real pond processes for tests.
    See pond_harness.h.
*/
#define _GNU_SOURCE
#include "pond_harness.h"
#include "pond_process.h"

#include <criterion/criterion.h>

#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

char *
pond_harness_tempdir (void)
{
    char *path = strdup ("/tmp/pond-test-XXXXXX");
    if (path && !mkdtemp (path)) {
        free (path);
        return NULL;
    }
    return path;
}

static int
s_remove (const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void) sb;
    (void) flag;
    (void) ftw;
    return remove (path);
}

void
pond_harness_tempdir_done (char **dir_p)
{
    if (!dir_p || !*dir_p)
        return;
    if (getenv ("POND_KEEP_TEST_DIR"))
        fprintf (stderr, "test data kept in %s\n", *dir_p);
    else
        pond_harness_rmtree (*dir_p);
    free (*dir_p);
    *dir_p = NULL;
}

void
pond_harness_rmtree (const char *path)
{
    if (path && strncmp (path, "/tmp/pond-test-", 15) == 0)
        nftw (path, s_remove, 16, FTW_DEPTH | FTW_PHYS);
}

pid_t
pond_harness_spawnv (const char *log_path, char *const argv [])
{
    char binary [512];
    snprintf (binary, sizeof binary, "%s/%s", POND_BIN_DIR, argv [0]);
    //  Die with the test, whatever way the test ends
    pond_process_options_t options = { .death_signal = SIGKILL };
    return pond_process_spawn (binary, argv, log_path, &options);
}

pid_t
pond_harness_spawn (const char *name, const char *log_path, ...)
{
    char *argv [64] = { (char *) name };
    va_list args;
    va_start (args, log_path);
    for (int i = 1; i < 63; i++)
        if (!(argv [i] = va_arg (args, char *)))
            break;
    va_end (args);
    return pond_harness_spawnv (log_path, argv);
}

pid_t
pond_harness_start_actor (const char *name, const char *dir)
{
    char binary [256], log [1024], ready [1024];
    snprintf (binary, sizeof binary, "pond-%s", name);
    snprintf (log, sizeof log, "%s/%s.log", dir, name);
    snprintf (ready, sizeof ready, "%s/%s.zpl", dir, name);
    pid_t pid = pond_harness_spawn (binary, log, "--data", dir, NULL);
    if (pid > 0 && pond_harness_wait_file (ready, 10000) != 0) {
        pond_harness_stop (pid, SIGTERM);
        pid = -1;
    }
    return pid > 0 ? pid : -1;
}

static void
s_sleep_ms (int ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep (&ts, NULL);
}

int
pond_harness_stop (pid_t pid, int signal)
{
    return pond_process_stop (pid, signal, 5000);
}

int
pond_harness_wait_file (const char *path, int timeout_ms)
{
    return pond_process_wait_file (path, timeout_ms);
}

int
pond_harness_wait_text (const char *path, const char *text, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        FILE *file = fopen (path, "r");
        if (file) {
            char line [4096];
            bool found = false;
            while (!found && fgets (line, sizeof line, file))
                found = strstr (line, text) != NULL;
            fclose (file);
            if (found)
                return 0;
        }
        s_sleep_ms (10);
    }
    return -1;
}

bool
pond_harness_pid_runs_in (pid_t pid, const char *dir)
{
    char path [64], cmdline [4096];
    snprintf (path, sizeof path, "/proc/%d/cmdline", (int) pid);
    FILE *file = pid > 0 && dir ? fopen (path, "r") : NULL;
    if (!file)
        return false;
    size_t size = fread (cmdline, 1, sizeof cmdline - 1, file);
    fclose (file);
    for (size_t i = 0; i < size; i++)
        if (cmdline [i] == 0)
            cmdline [i] = ' ';
    cmdline [size] = 0;
    return strstr (cmdline, dir) != NULL;
}

//  The supervisor's state file of dir, or NULL if there is none
static zconfig_t *
s_supervisor_state (const char *dir)
{
    char path [512];
    snprintf (path, sizeof path, "%s/supervisor.zpl", dir);
    return zsys_file_exists (path) ? zconfig_load (path) : NULL;
}

char *
pond_harness_supervised (const char *dir, const char *key)
{
    zconfig_t *state = s_supervisor_state (dir);
    char *value = strdup (state ? zconfig_get (state, key, "") : "");
    zconfig_destroy (&state);
    return value;
}

size_t
pond_harness_mesh_pids (const char *dir, pid_t *pids, size_t max)
{
    zconfig_t *state = s_supervisor_state (dir);
    size_t count = 0;
    if (!state || max == 0) {
        zconfig_destroy (&state);
        return 0;
    }
    pids [count++] = atoi (zconfig_get (state, "supervisor/pid", "0"));
    zconfig_t *process = zconfig_locate (state, "process");
    for (process = process ? zconfig_child (process) : NULL; process && count < max;
         process = zconfig_next (process))
        pids [count++] = atoi (zconfig_get (process, "pid", "0"));
    zconfig_destroy (&state);
    return count;
}

void
pond_harness_mesh_down (const char *data_dir, const char *dir, const char *who)
{
    pid_t pids [32];
    size_t count = pond_harness_mesh_pids (data_dir, pids, 32);
    for (size_t i = 0; i < count; i++)
        if (pond_harness_pid_runs_in (pids [i], dir))
            kill (pids [i], SIGCONT);
    free (
        pond_harness_run (NULL, "%s/pond down --data %s >/dev/null 2>&1", POND_BIN_DIR, data_dir));
    for (size_t i = 0; i < count; i++)
        if (pond_harness_pid_runs_in (pids [i], dir)) {
            fprintf (stderr, "%s: pid %d still runs after pond down: SIGKILL\n", who,
                     (int) pids [i]);
            kill (pids [i], SIGKILL);
        }
}

//  Is msg a heartbeat ($HEARTBEAT topic)?
static bool
s_is_heartbeat (zmsg_t *msg)
{
    zframe_t *topic = zmsg_first (msg);
    return topic && zframe_streq (topic, "$HEARTBEAT");
}

zsock_t *
pond_harness_sub_live (const char *endpoint, const char *topic, int timeout_ms)
{
    zsock_t *sub = zsock_new_sub (endpoint, topic);
    if (!sub)
        return NULL;
    zsock_set_subscribe (sub, "$HEARTBEAT");
    zpoller_t *poller = zpoller_new (sub, NULL);
    int64_t deadline = zclock_mono () + timeout_ms;
    bool live = false;
    while (!live && zclock_mono () < deadline) {
        if (!zpoller_wait (poller, (int) (deadline - zclock_mono ())))
            continue;
        zmsg_t *msg = zmsg_recv (sub);
        live = msg && s_is_heartbeat (msg);
        zmsg_destroy (&msg);
    }
    zpoller_destroy (&poller);
    if (!live)
        zsock_destroy (&sub);
    return sub;
}

zmsg_t *
pond_harness_recv_event (zsock_t *sub, int timeout_ms)
{
    zpoller_t *poller = zpoller_new (sub, NULL);
    int64_t deadline = zclock_mono () + timeout_ms;
    zmsg_t *msg = NULL;
    while (!msg && zclock_mono () <= deadline) {
        int64_t left = deadline - zclock_mono ();
        if (!zpoller_wait (poller, left > 0 ? (int) left : 0))
            break;
        msg = zmsg_recv (sub);
        if (msg && s_is_heartbeat (msg))
            zmsg_destroy (&msg);
    }
    zpoller_destroy (&poller);
    return msg;
}

char *
pond_harness_run (int *exit_p, const char *format, ...)
{
    char command [4096];
    va_list args;
    va_start (args, format);
    vsnprintf (command, sizeof command, format, args);
    va_end (args);
    FILE *pipe = popen (command, "r");
    if (!pipe)
        return NULL;
    size_t size = 0, capacity = 4096;
    char *output = malloc (capacity);
    size_t got;
    while (output && (got = fread (output + size, 1, capacity - size - 1, pipe)) > 0) {
        size += got;
        if (capacity - size < 1024) {
            capacity *= 2;
            char *bigger = realloc (output, capacity);
            if (!bigger) {
                free (output);
                output = NULL;
                break;
            }
            output = bigger;
        }
    }
    int status = pclose (pipe);
    if (exit_p)
        *exit_p = WIFEXITED (status) ? WEXITSTATUS (status) : -1;
    if (output)
        output [size] = 0;
    return output;
}

//  ---------------------------------------------------------------------
//  A mesh of store and broker

int
pond_mesh_start_store (pond_mesh_t *self)
{
    char ready [512], log [512];
    snprintf (ready, sizeof ready, "%s/store.zpl", self->dir);
    snprintf (log, sizeof log, "%s/store.log", self->dir);
    unlink (ready);
    self->store = pond_harness_spawn ("pond-store", log, "--data", self->dir, "--endpoint",
                                      self->store_endpoint, NULL);
    if (self->store < 0 || pond_harness_wait_file (ready, 10000)) {
        fprintf (stderr, "pond-store did not start; see %s\n", log);
        return -1;
    }
    return 0;
}

int
pond_mesh_start_broker (pond_mesh_t *self)
{
    char ready [512], log [512];
    snprintf (ready, sizeof ready, "%s/broker.zpl", self->dir);
    snprintf (log, sizeof log, "%s/broker.log", self->dir);
    unlink (ready);
    if (self->with_store)
        self->broker = pond_harness_spawn ("pond-broker", log, "--data", self->dir, "--with-store",
                                           "--ingest", self->ingest, "--pub", self->pub,
                                           "--control", self->control, NULL);
    else
        self->broker = pond_harness_spawn ("pond-broker", log, "--data", self->dir, "--store",
                                           self->store_endpoint, "--ingest", self->ingest, "--pub",
                                           self->pub, "--control", self->control, NULL);
    if (self->broker < 0 || pond_harness_wait_file (ready, 10000)) {
        fprintf (stderr, "pond-broker did not start; see %s\n", log);
        return -1;
    }
    return 0;
}

static pond_mesh_t *
s_mesh_start (bool with_store)
{
    pond_mesh_t *self = calloc (1, sizeof (pond_mesh_t));
    if (!self || !(self->dir = pond_harness_tempdir ())) {
        free (self);
        return NULL;
    }
    self->with_store = with_store;
    snprintf (self->ingest, sizeof self->ingest, "ipc://%s/ingest.ipc", self->dir);
    snprintf (self->pub, sizeof self->pub, "ipc://%s/pub.ipc", self->dir);
    snprintf (self->control, sizeof self->control, "ipc://%s/control.ipc", self->dir);
    snprintf (self->store_endpoint, sizeof self->store_endpoint, "ipc://%s/store.ipc", self->dir);
    if ((!with_store && pond_mesh_start_store (self)) || pond_mesh_start_broker (self))
        pond_mesh_destroy (&self);
    return self;
}

pond_mesh_t *
pond_mesh_start (void)
{
    return s_mesh_start (false);
}

pond_mesh_t *
pond_mesh_start_with_store (void)
{
    return s_mesh_start (true);
}

void
pond_mesh_destroy (pond_mesh_t **self_p)
{
    if (self_p && *self_p) {
        pond_mesh_t *self = *self_p;
        pond_harness_stop (self->broker, SIGTERM);
        pond_harness_stop (self->store, SIGTERM);
        pond_harness_tempdir_done (&self->dir);
        free (self);
        *self_p = NULL;
    }
}

const char *
pond_harness_id_hex (const uint8_t *id, char *key)
{
    for (int i = 0; i < 16; i++)
        sprintf (key + i * 2, "%02x", id [i]);
    return key;
}

pond_mesh_t *
pond_harness_mesh_up (void)
{
    zsys_init ();
    zsys_set_logstream (stderr);
    pond_mesh_t *mesh = pond_mesh_start ();
    cr_assert_not_null (mesh, "store and broker must start");
    return mesh;
}

pond_mesh_t *
pond_harness_mesh_up_with_store (void)
{
    zsys_init ();
    zsys_set_logstream (stderr);
    pond_mesh_t *mesh = pond_mesh_start_with_store ();
    cr_assert_not_null (mesh, "pond-broker --with-store must start");
    return mesh;
}
