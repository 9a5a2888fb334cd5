/*  pond_bench_mesh: the mesh a pond-bench scenario runs against.

    Starts pond-store, then pond-broker, from the directory this program
    lives in (the same build), each with its output in DIR/NAME.log and
    dying with us (PR_SET_PDEATHSIG); waits for their ready files
    (store.zpl, broker.zpl) and for the broker to see the store, so that
    the first publish is not refused. Stops them by pid, SIGTERM then
    SIGKILL, and shows the last lines of the log of one that died on us.
    Or attaches to a mesh that runs already (pond up) and starts nothing.
*/
#define _GNU_SOURCE
#include "pond_bench.h"
#include "pond_process.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define BENCH_START_WAIT 20000    //  msecs for store/broker to be ready

struct _pond_bench_mesh_t {
    char bin_dir [PATH_MAX];
    char dir [PATH_MAX];    //  our data directory (made by us)
    pid_t store;
    pid_t broker;
    pond_endpoints_t eps;
    char store_endpoint [POND_ENDPOINT_MAX];    //  from DIR/store.zpl
    bool keep;
    bool given;         //  dir is --data: kept, not made by us
    bool attached;      //  a running mesh (--mesh): we started nothing
    bool with_store;    //  pond-broker --with-store: no pond-store
};

//  A process's figures: peak and current RSS from /proc/PID/status, CPU
//  from /proc/PID/stat, disk writes from /proc/PID/io; what cannot be read
//  (pid 0: not ours) stays 0.
static void
s_proc_sample (pid_t pid, pond_bench_proc_t *sample)
{
    memset (sample, 0, sizeof *sample);
    char path [64], line [512];
    snprintf (path, sizeof path, "/proc/%d/status", (int) pid);
    FILE *file = fopen (path, "r");
    if (file) {
        while (fgets (line, sizeof line, file))
            if (strncmp (line, "VmHWM:", 6) == 0)
                sample->hwm_kb = atol (line + 6);
            else if (strncmp (line, "VmRSS:", 6) == 0)
                sample->rss_kb = atol (line + 6);
        fclose (file);
    }
    snprintf (path, sizeof path, "/proc/%d/stat", (int) pid);
    file = fopen (path, "r");
    if (file) {
        //  Fields 14 and 15 (utime, stime) follow the ")" that ends the name
        if (fgets (line, sizeof line, file)) {
            char *rest = strrchr (line, ')');
            unsigned long utime = 0, stime = 0;
            if (rest
                && sscanf (rest + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
                           &stime)
                       == 2)
                sample->cpu_s = (double) (utime + stime) / (double) sysconf (_SC_CLK_TCK);
        }
        fclose (file);
    }
    snprintf (path, sizeof path, "/proc/%d/io", (int) pid);
    file = fopen (path, "r");
    if (file) {
        while (fgets (line, sizeof line, file))
            if (strncmp (line, "write_bytes:", 12) == 0)
                sample->write_kb = atoll (line + 12) / 1024;
        fclose (file);
    }
}

static int
s_rmtree_entry (const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void) sb;
    (void) flag;
    (void) ftw;
    return remove (path);
}

//  Print the last lines of a child's log, to explain a failure.
static void
s_mesh_show_log (pond_bench_mesh_t *self, const char *name)
{
    char path [PATH_MAX + 32];
    snprintf (path, sizeof path, "%s/%s.log", self->dir, name);
    FILE *file = fopen (path, "r");
    if (!file)
        return;
    char lines [10][512];
    size_t count = 0;
    while (fgets (lines [count % 10], sizeof lines [0], file))
        count++;
    fclose (file);
    fprintf (stderr, "pond-bench: last lines of %s:\n", path);
    for (size_t i = count > 10 ? count - 10 : 0; i < count; i++)
        fprintf (stderr, "  %s", lines [i % 10]);
}

//  Start bin_dir/name with its arguments (NULL-terminated), output to
//  DIR/name.log. The child dies with us (PR_SET_PDEATHSIG). Returns the
//  pid or -1.
static pid_t
s_mesh_spawn (pond_bench_mesh_t *self, const char *name, char *const argv [])
{
    char binary [PATH_MAX + 64], log [PATH_MAX + 32];
    snprintf (binary, sizeof binary, "%s/%s", self->bin_dir, name);
    snprintf (log, sizeof log, "%s/%s.log", self->dir, name);
    if (access (binary, X_OK)) {
        fprintf (stderr, "pond-bench: cannot run %s: %s (build it first)\n", binary,
                 strerror (errno));
        return -1;
    }
    pond_process_options_t options = { .death_signal = SIGKILL };
    pid_t pid = pond_process_spawn (binary, argv, log, &options);
    if (pid < 0)
        fprintf (stderr, "pond-bench: cannot start %s: %s\n", binary, strerror (errno));
    return pid;
}

//  Wait until DIR/file exists while the child pid lives. Returns 0 or -1.
static int
s_mesh_wait_ready (pond_bench_mesh_t *self, const char *file, pid_t pid)
{
    char path [PATH_MAX + 32];
    snprintf (path, sizeof path, "%s/%s", self->dir, file);
    for (int waited = 0; waited < BENCH_START_WAIT && !zsys_interrupted; waited += 10) {
        if (access (path, F_OK) == 0)
            return 0;
        int status;
        if (pond_process_wait_exit (pid, 0, &status) == 0) {
            fprintf (stderr, "pond-bench: pid %d exited (status %d) before writing %s\n", (int) pid,
                     status, path);
            return -1;
        }
        pond_bench_sleep_ms (10);
    }
    fprintf (stderr, "pond-bench: %s did not appear in %d ms\n", path, BENCH_START_WAIT);
    return -1;
}

//  SIGTERM, wait up to 10 s, then SIGKILL; always reaps. Returns the wait
//  status, or -1.
static int
s_mesh_stop_pid (pid_t pid)
{
    if (pid <= 0)
        return -1;
    kill (pid, SIGTERM);
    int status;
    int rc = pond_process_wait_exit (pid, 10000, &status);
    if (rc == 1) {
        fprintf (stderr, "pond-bench: pid %d ignored SIGTERM for 10 s, killing it\n", (int) pid);
        return pond_process_stop (pid, SIGKILL, -1);
    }
    return rc == 0 ? status : -1;
}

//  True if store and broker both still run; a dead one is reaped, reported
//  and forgotten.
bool
pond_bench_mesh_alive (pond_bench_mesh_t *self)
{
    if (self->attached)
        return true;
    pid_t *pids [] = { &self->broker, &self->store };
    const char *names [] = { "pond-broker", "pond-store" };
    bool alive = true;
    for (int i = 0; i < (self->with_store ? 1 : 2); i++) {
        int status;
        if (*pids [i] > 0 && waitpid (*pids [i], &status, WNOHANG) == *pids [i]) {
            if (WIFSIGNALED (status))
                fprintf (stderr, "pond-bench: %s died of signal %d (%s)\n", names [i],
                         WTERMSIG (status), strsignal (WTERMSIG (status)));
            else
                fprintf (stderr, "pond-bench: %s exited with code %d\n", names [i],
                         WEXITSTATUS (status));
            s_mesh_show_log (self, names [i]);
            *pids [i] = 0;
        }
        if (*pids [i] <= 0)
            alive = false;
    }
    return alive;
}

void
pond_bench_mesh_destroy (pond_bench_mesh_t **self_p)
{
    if (*self_p) {
        pond_bench_mesh_t *self = *self_p;
        pond_bench_mesh_alive (self);    //  Reports a process that died on us
        int status = s_mesh_stop_pid (self->broker);
        if (status > 0)
            fprintf (stderr, "pond-bench: pond-broker stopped with status %d\n", status);
        status = s_mesh_stop_pid (self->store);
        if (status > 0)
            fprintf (stderr, "pond-bench: pond-store stopped with status %d\n", status);
        if (self->keep && !self->given)
            fprintf (stderr, "pond-bench: data kept in %s\n", self->dir);
        else if (*self->dir && !self->given)
            nftw (self->dir, s_rmtree_entry, 16, FTW_DEPTH | FTW_PHYS);
        free (self);
        *self_p = NULL;
    }
}

//  Ask STATS for one counter, section/key (e.g. "store", "batches"); true
//  counts as 1, false as 0. Returns -1 if STATS or the counter is missing.
long long
pond_bench_mesh_stat (pond_bench_mesh_t *self, const char *section, const char *key)
{
    char err [POND_ERR_SIZE];
    char *json = pond_client_stats (self->eps.control, 5000, err, sizeof err);
    if (!json) {
        fprintf (stderr, "pond-bench: STATS failed: %s\n", err);
        return -1;
    }
    long long value = -1;
    cJSON *root = cJSON_Parse (json);
    cJSON *map = root ? cJSON_GetObjectItemCaseSensitive (root, section) : NULL;
    cJSON *item = map ? cJSON_GetObjectItemCaseSensitive (map, key) : NULL;
    if (cJSON_IsNumber (item))
        value = (long long) item->valuedouble;
    else if (cJSON_IsBool (item))
        value = cJSON_IsTrue (item) ? 1 : 0;
    cJSON_Delete (root);
    free (json);
    return value;
}

//  The store's synced WriteBatches (one WAL sync each) once it has stored
//  at least appended events; -1 if unknown. The broker answers STATS with
//  the store's counters as of its last poll (up to STORE_POLL_MS old), so
//  wait until they show every event we had ACKed.
long long
pond_bench_mesh_commits (pond_bench_mesh_t *self, long long appended)
{
    for (int waited = 0; waited < 5000 && !zsys_interrupted; waited += 50) {
        long long stored = pond_bench_mesh_stat (self, "store", "appended");
        if (stored < 0)
            return -1;
        if (stored >= appended)
            return pond_bench_mesh_stat (self, "store", "batches");
        pond_bench_sleep_ms (50);
    }
    return -1;
}

//  Wait until the broker knows the store is up, so that the first publish
//  is not refused (503) by a broker still looking for its store.
static int
s_mesh_wait_store_up (pond_bench_mesh_t *self)
{
    for (int waited = 0; waited < BENCH_START_WAIT && !zsys_interrupted; waited += 20) {
        if (pond_bench_mesh_stat (self, "broker", "store_up") == 1)
            return 0;
        pond_bench_sleep_ms (20);
    }
    fprintf (stderr, "pond-bench: the broker did not see the store within %d ms\n",
             BENCH_START_WAIT);
    return -1;
}

//  Make a fresh directory under parent, start pond-store then pond-broker
//  in it, wait until both are ready. Returns NULL (reason printed) if
//  anything failed; nothing is left running then.
pond_bench_mesh_t *
pond_bench_mesh_new (const char *parent, const char *data, bool keep, bool with_store)
{
    pond_bench_mesh_t *self = (pond_bench_mesh_t *) zmalloc (sizeof (pond_bench_mesh_t));
    self->keep = keep;
    self->with_store = with_store;
    self->given = data != NULL;

    //  Store and broker come from the same build as we do
    char exe [PATH_MAX];
    ssize_t size = readlink ("/proc/self/exe", exe, sizeof exe - 1);
    if (size <= 0) {
        fprintf (stderr, "pond-bench: cannot read /proc/self/exe: %s\n", strerror (errno));
        free (self);
        return NULL;
    }
    exe [size] = 0;
    *strrchr (exe, '/') = 0;
    snprintf (self->bin_dir, sizeof self->bin_dir, "%s", exe);

    char real_parent [PATH_MAX];
    if (data) {
        //  Our own store and broker in a directory that outlives us
        if (mkdir (data, 0755) && errno != EEXIST) {
            fprintf (stderr, "pond-bench: cannot create --data %s: %s\n", data, strerror (errno));
            free (self);
            return NULL;
        }
        if (!realpath (data, self->dir) || strlen (self->dir) + strlen ("/control.ipc") >= 100) {
            fprintf (stderr,
                     "pond-bench: cannot use --data %s (missing, or too long a path "
                     "for ipc endpoints)\n",
                     data);
            free (self);
            return NULL;
        }
        //  Ready files of a previous run would look like ready processes
        char stale [PATH_MAX + 32];
        snprintf (stale, sizeof stale, "%s/store.zpl", self->dir);
        unlink (stale);
        snprintf (stale, sizeof stale, "%s/broker.zpl", self->dir);
        unlink (stale);
    }
    else if (!realpath (parent, real_parent)) {
        fprintf (stderr, "pond-bench: cannot use --dir %s: %s\n", parent, strerror (errno));
        free (self);
        return NULL;
    }
    //  ipc:// paths must fit a sockaddr_un (108 bytes)
    int length = data ? 0
                      : snprintf (self->dir, sizeof self->dir, "%s/pond-bench-XXXXXX", real_parent);
    if (!data && (length < 0 || length + strlen ("/control.ipc") >= 100)) {
        fprintf (stderr,
                 "pond-bench: %s is too long a path for ipc endpoints; "
                 "use a shorter --dir\n",
                 real_parent);
        free (self);
        return NULL;
    }
    if (!data && !mkdtemp (self->dir)) {
        fprintf (stderr, "pond-bench: cannot create a directory in %s: %s\n", real_parent,
                 strerror (errno));
        free (self);
        return NULL;
    }
    if (!with_store) {
        char *store_argv [] = { "pond-store", "--data", self->dir, NULL };
        self->store = s_mesh_spawn (self, "pond-store", store_argv);
        if (self->store < 0 || s_mesh_wait_ready (self, "store.zpl", self->store)) {
            s_mesh_show_log (self, "pond-store");
            pond_bench_mesh_destroy (&self);
            return NULL;
        }
        char path [PATH_MAX + 32];
        snprintf (path, sizeof path, "%s/store.zpl", self->dir);
        zconfig_t *config = zconfig_load (path);
        snprintf (self->store_endpoint, sizeof self->store_endpoint, "%s",
                  config ? zconfig_get (config, "store/endpoint", "") : "");
        zconfig_destroy (&config);
    }
    char *broker_argv [] = { "pond-broker", "--data", self->dir, with_store ? "--with-store" : NULL,
                             NULL };
    self->broker = s_mesh_spawn (self, "pond-broker", broker_argv);
    if (self->broker < 0 || s_mesh_wait_ready (self, "broker.zpl", self->broker)
        || pond_endpoints_resolve (self->dir, &self->eps) || s_mesh_wait_store_up (self)) {
        s_mesh_show_log (self, "pond-broker");
        pond_bench_mesh_destroy (&self);
        return NULL;
    }
    return self;
}

//  Work on the running mesh of data directory dir (pond up): nothing is
//  started or stopped. Returns NULL (reason printed) if it is not there.
pond_bench_mesh_t *
pond_bench_mesh_attach (const char *dir)
{
    pond_bench_mesh_t *self = (pond_bench_mesh_t *) zmalloc (sizeof (pond_bench_mesh_t));
    self->given = true;
    self->attached = true;
    snprintf (self->dir, sizeof self->dir, "%s", dir);
    if (pond_endpoints_resolve (dir, &self->eps) || !self->eps.from_broker_file
        || s_mesh_wait_store_up (self)) {
        fprintf (stderr, "pond-bench: no running mesh in %s (pond up --data %s)\n", dir, dir);
        free (self);
        return NULL;
    }
    return self;
}

void
pond_bench_mesh_sample (pond_bench_mesh_t *self, pond_bench_proc_t *store,
                        pond_bench_proc_t *broker)
{
    if (store)
        s_proc_sample (self->store, store);
    if (broker)
        s_proc_sample (self->broker, broker);
}

const char *
pond_bench_mesh_ingest (pond_bench_mesh_t *self)
{
    return self->eps.ingest;
}

const char *
pond_bench_mesh_control (pond_bench_mesh_t *self)
{
    return self->eps.control;
}

const char *
pond_bench_mesh_pub (pond_bench_mesh_t *self)
{
    return self->eps.pub;
}

const char *
pond_bench_mesh_store_endpoint (pond_bench_mesh_t *self)
{
    return self->store_endpoint;
}

bool
pond_bench_mesh_with_store (pond_bench_mesh_t *self)
{
    return self->with_store;
}

const char *
pond_bench_mesh_dir (pond_bench_mesh_t *self)
{
    return self->dir;
}
