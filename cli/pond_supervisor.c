/*  pond_supervisor: starts, watches, restarts and stops the processes of
    a mesh. See pond_supervisor.h.

    One thread, no ZeroMQ: the loop waits for signals with sigtimedwait
    (SIGCHLD wakes it at once when a child dies; SIGTERM and SIGINT ask it
    to stop) and otherwise ticks every 100 ms to start what is due and to
    notice ready files.
*/
#define _GNU_SOURCE
#include "pond_supervisor.h"
#include "pond_pidlock.h"
#include "pond_number.h"
#include "pond_process.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROCESSES_MAX 16
#define ARGS_MAX      32    //  arguments of one process, --data DIR included
#define NAME_MAX_LEN  63
#define TICK_MS       100     //  steady state: look around this often
#define TICK_BUSY_MS  10      //  while something starts
#define DIR_MAX       1024    //  data and bin directories, with room to spare

//  One supervised process
typedef struct {
    char name [NAME_MAX_LEN + 1];
    char path [PATH_MAX];     //  the binary
    char args [1024];         //  extra arguments, blank-separated
    char ready [PATH_MAX];    //  ready file, "" = ready when started
    char log [PATH_MAX];
    pid_t pid;               //  0 while not running
    bool ready_seen;         //  ready since its last start
    bool been_ready;         //  ready at least once
    int restarts;            //  since the supervisor started
    int attempt;             //  consecutive failures (back-off)
    int64_t started_ms;      //  zclock_mono of the last start
    int64_t started_wall;    //  Unix time of the last start
    int64_t due_ms;          //  when to start it next (zclock_mono)
    char last_exit [64];
} child_t;

struct _pond_supervisor_t {
    char dir [DIR_MAX];
    char bin_dir [DIR_MAX];
    child_t children [PROCESSES_MAX];
    size_t size;
    int ready_timeout_ms;
    int stop_timeout_ms;
    int backoff_min_ms;
    int backoff_max_ms;
    int stable_ms;
    int start_attempts;
    char keys [DIR_MAX];    //  "" = local mode, else every process gets --keys
    bool log_stderr;        //  children's output to our stderr, not their logs
    //  While running
    FILE *log;
    bool echo;
    int notify_fd;
    pond_pidlock_t *lock;    //  DIR/supervisor.lock
    const char *state;       //  starting, up, stopping, failed
    int64_t started_wall;
};

//  The mesh: the log, the write point, the actors, then the HTTP gateway
static const char *const s_defaults [][2] = {
    { "store", "pond-store" },
    { "broker", "pond-broker" },
    { "quack-counter", "pond-quack-counter" },
    { "badge-granter", "pond-badge-granter" },
    { "alexa-view", "pond-alexa-view" },
    { "mobile-view", "pond-mobile-view" },
    { "gateway", "pond-gateway" },
};

//  =====================================================================
//  Configuration

int
pond_supervisor_set_keys (pond_supervisor_t *self, const char *keys)
{
    assert (self);
    if (!keys)
        keys = "";
    if (strlen (keys) >= sizeof self->keys)
        return -1;
    snprintf (self->keys, sizeof self->keys, "%s", keys);
    return 0;
}

void
pond_supervisor_set_log_stderr (pond_supervisor_t *self, bool to_stderr)
{
    assert (self);
    self->log_stderr = to_stderr;
}

//  Set the binary of child from command: a bare name is looked up in the
//  bin dir, anything with a slash is a path (made absolute: the daemon
//  runs in /). Returns 0 or -1.
static int
s_child_set_command (pond_supervisor_t *self, child_t *child, const char *command)
{
    int size;
    if (!strchr (command, '/'))
        size = snprintf (child->path, sizeof child->path, "%s/%s", self->bin_dir, command);
    else if (*command == '/')
        size = snprintf (child->path, sizeof child->path, "%s", command);
    else {
        char cwd [PATH_MAX];
        if (!getcwd (cwd, sizeof cwd))
            return -1;
        size = snprintf (child->path, sizeof child->path, "%s/%s", cwd, command);
    }
    return size > 0 && (size_t) size < sizeof child->path ? 0 : -1;
}

//  Add a process with default ready file and log. Returns it, or NULL.
static child_t *
s_child_add (pond_supervisor_t *self, const char *name, const char *command)
{
    if (self->size == PROCESSES_MAX)
        return NULL;
    //  Built apart: the compiler cannot tell self->dir from the child's fields
    char ready [PATH_MAX], log [PATH_MAX];
    int ready_size = snprintf (ready, sizeof ready, "%s/%s.zpl", self->dir, name);
    int log_size = snprintf (log, sizeof log, "%s/logs/%s.log", self->dir, name);
    if (ready_size < 0 || (size_t) ready_size >= sizeof ready || log_size < 0
        || (size_t) log_size >= sizeof log || strlen (name) > NAME_MAX_LEN)
        return NULL;
    child_t *child = &self->children [self->size];
    memset (child, 0, sizeof (*child));
    strcpy (child->name, name);
    strcpy (child->ready, ready);
    strcpy (child->log, log);
    if (s_child_set_command (self, child, command))
        return NULL;
    self->size++;
    return child;
}

pond_supervisor_t *
pond_supervisor_new (const char *data_dir, const char *bin_dir)
{
    assert (data_dir);
    assert (bin_dir);
    pond_supervisor_t *self = (pond_supervisor_t *) zmalloc (sizeof (pond_supervisor_t));
    if (!self)
        return NULL;
    if (strlen (data_dir) >= DIR_MAX || strlen (bin_dir) >= DIR_MAX) {
        free (self);
        return NULL;
    }
    strcpy (self->dir, data_dir);
    strcpy (self->bin_dir, bin_dir);
    self->ready_timeout_ms = 60000;
    self->stop_timeout_ms = 5000;
    self->backoff_min_ms = 100;
    self->backoff_max_ms = 5000;
    self->stable_ms = 30000;
    self->start_attempts = 3;
    self->notify_fd = -1;
    self->state = "starting";
    for (size_t i = 0; i < sizeof s_defaults / sizeof s_defaults [0]; i++)
        if (!s_child_add (self, s_defaults [i][0], s_defaults [i][1])) {
            free (self);
            return NULL;
        }
    return self;
}

void
pond_supervisor_destroy (pond_supervisor_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        pond_supervisor_t *self = *self_p;
        if (self->log)
            fclose (self->log);
        pond_pidlock_destroy (&self->lock);
        if (self->notify_fd >= 0)
            close (self->notify_fd);
        free (self);
        *self_p = NULL;
    }
}

//  A process name becomes file names: [a-z0-9_-], 1 to 63 of them
static bool
s_name_valid (const char *name)
{
    size_t length = strlen (name);
    return length > 0 && length <= NAME_MAX_LEN
        && strspn (name, "abcdefghijklmnopqrstuvwxyz0123456789_-") == length;
}

//  One process section: process/NAME/{command,args,ready}
static int
s_configure_process (pond_supervisor_t *self, zconfig_t *section, char *err, size_t errlen)
{
    const char *name = zconfig_name (section);
    if (!s_name_valid (name)) {
        snprintf (err, errlen, "process name '%s' must be 1 to %d of a-z, 0-9, '-' and '_'", name,
                  NAME_MAX_LEN);
        return -1;
    }
    for (size_t i = 0; i < self->size; i++)
        if (streq (self->children [i].name, name)) {
            snprintf (err, errlen, "process '%s' is listed twice", name);
            return -1;
        }
    const char *command = NULL, *args = "", *ready = NULL;
    for (zconfig_t *key = zconfig_child (section); key; key = zconfig_next (key)) {
        const char *value = zconfig_value (key) ? zconfig_value (key) : "";
        if (zconfig_child (key)) {
            snprintf (err, errlen, "process/%s/%s takes a value, not a section", name,
                      zconfig_name (key));
            return -1;
        }
        if (streq (zconfig_name (key), "command"))
            command = value;
        else if (streq (zconfig_name (key), "args"))
            args = value;
        else if (streq (zconfig_name (key), "ready"))
            ready = value;
        else {
            snprintf (err, errlen, "unknown key 'process/%s/%s' (known: command, args, ready)",
                      name, zconfig_name (key));
            return -1;
        }
    }
    if (!command || !*command) {
        snprintf (err, errlen, "process/%s/command is missing (like command = \"pond-store\")",
                  name);
        return -1;
    }
    child_t *child = s_child_add (self, name, command);
    if (!child) {
        snprintf (err, errlen, "process '%s': too many processes (at most %d) or path too long",
                  name, PROCESSES_MAX);
        return -1;
    }
    if (strlen (args) >= sizeof child->args) {
        snprintf (err, errlen, "process/%s/args is too long", name);
        return -1;
    }
    strcpy (child->args, args);
    if (ready) {
        if (strchr (ready, '/')) {
            snprintf (err, errlen,
                      "process/%s/ready is a file name inside the data "
                      "directory, without '/'",
                      name);
            return -1;
        }
        if (*ready)
            snprintf (child->ready, sizeof child->ready, "%s/%s", self->dir, ready);
        else
            *child->ready = 0;
    }
    return 0;
}

//  One number of the supervisor section, within [min, max]
static int
s_configure_number (zconfig_t *key, int *value, int min, int max, char *err, size_t errlen)
{
    const char *text = zconfig_value (key) ? zconfig_value (key) : "";
    uint64_t number;
    if (pond_number_parse (text, (uint64_t) min, (uint64_t) max, &number)) {
        snprintf (err, errlen, "supervisor/%s must be a whole number from %d to %d, not '%s'",
                  zconfig_name (key), min, max, text);
        return -1;
    }
    *value = (int) number;
    return 0;
}

static int
s_configure_supervisor (pond_supervisor_t *self, zconfig_t *section, char *err, size_t errlen)
{
    struct {
        const char *key;
        int *value;
        int min, max;
    } numbers [] = {
        { "ready_timeout_ms", &self->ready_timeout_ms, 100, 3600000 },
        { "stop_timeout_ms", &self->stop_timeout_ms, 10, 600000 },
        { "backoff_min_ms", &self->backoff_min_ms, 1, 600000 },
        { "backoff_max_ms", &self->backoff_max_ms, 1, 3600000 },
        { "stable_ms", &self->stable_ms, 1, 86400000 },
        { "start_attempts", &self->start_attempts, 1, 1000 },
    };
    size_t count = sizeof numbers / sizeof numbers [0];
    for (zconfig_t *key = zconfig_child (section); key; key = zconfig_next (key)) {
        size_t i;
        for (i = 0; i < count; i++)
            if (streq (zconfig_name (key), numbers [i].key))
                break;
        if (i == count) {
            snprintf (err, errlen,
                      "unknown key 'supervisor/%s' (known: ready_timeout_ms, "
                      "stop_timeout_ms, backoff_min_ms, backoff_max_ms, stable_ms, "
                      "start_attempts)",
                      zconfig_name (key));
            return -1;
        }
        if (s_configure_number (key, numbers [i].value, numbers [i].min, numbers [i].max, err,
                                errlen))
            return -1;
    }
    if (self->backoff_max_ms < self->backoff_min_ms) {
        snprintf (err, errlen, "supervisor/backoff_max_ms is below backoff_min_ms");
        return -1;
    }
    return 0;
}

int
pond_supervisor_configure (pond_supervisor_t *self, zconfig_t *config, char *err, size_t errlen)
{
    assert (self);
    if (!config)
        return 0;
    for (zconfig_t *section = zconfig_child (config); section; section = zconfig_next (section)) {
        const char *name = zconfig_name (section);
        if (streq (name, "process")) {
            self->size = 0;    //  The file's list replaces the defaults
            for (zconfig_t *process = zconfig_child (section); process;
                 process = zconfig_next (process))
                if (s_configure_process (self, process, err, errlen))
                    return -1;
            if (self->size == 0) {
                snprintf (err, errlen, "the process section lists no process");
                return -1;
            }
        }
        else if (streq (name, "supervisor")) {
            if (s_configure_supervisor (self, section, err, errlen))
                return -1;
        }
        else {
            snprintf (err, errlen, "unknown key '%s' (known: process, supervisor)", name);
            return -1;
        }
    }
    return 0;
}

int
pond_supervisor_check (pond_supervisor_t *self, char *err, size_t errlen)
{
    assert (self);
    for (size_t i = 0; i < self->size; i++)
        if (access (self->children [i].path, X_OK)) {
            snprintf (err, errlen,
                      "%s: cannot run %s (%s); build it (./run build) or fix "
                      "process/%s/command in the config",
                      self->children [i].name, self->children [i].path, strerror (errno),
                      self->children [i].name);
            return -1;
        }
    return 0;
}

size_t
pond_supervisor_size (pond_supervisor_t *self)
{
    assert (self);
    return self->size;
}

const char *
pond_supervisor_name (pond_supervisor_t *self, size_t index)
{
    assert (self);
    return index < self->size ? self->children [index].name : NULL;
}

//  =====================================================================
//  Finding a running supervisor

bool
pond_supervisor_alive (pid_t pid)
{
    if (pid <= 0 || (kill (pid, 0) == -1 && errno == ESRCH))
        return false;
    //  A zombie nobody has reaped yet is gone for us
    char path [64], stat [256] = "";
    snprintf (path, sizeof path, "/proc/%d/stat", (int) pid);
    FILE *file = fopen (path, "re");
    if (!file)
        return true;    //  No /proc: trust kill
    size_t size = fread (stat, 1, sizeof stat - 1, file);
    fclose (file);
    stat [size] = 0;
    const char *paren = strrchr (stat, ')');
    return !(paren && paren [1] == ' ' && (paren [2] == 'Z' || paren [2] == 'X'));
}

pid_t
pond_supervisor_pid (const char *data_dir)
{
    char path [PATH_MAX];
    snprintf (path, sizeof path, "%s/supervisor.lock", data_dir);
    pid_t holder = pond_pidlock_holder (path);
    if (holder <= 0)
        return 0;
    //  The holder must be a supervisor (pids are reused)
    char comm [64] = "";
    snprintf (path, sizeof path, "/proc/%d/comm", (int) holder);
    FILE *file = fopen (path, "re");
    if (file) {
        if (!fgets (comm, sizeof comm, file))
            *comm = 0;
        fclose (file);
        comm [strcspn (comm, "\n")] = 0;
        if (!streq (comm, POND_SUPERVISOR_NAME))
            return 0;
    }
    return pond_supervisor_alive (holder) ? holder : 0;
}

//  =====================================================================
//  Running

//  One line in supervisor.log (and on stderr when echoing)
static void s_log (pond_supervisor_t *self, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

static void
s_log (pond_supervisor_t *self, const char *format, ...)
{
    char message [1024];
    va_list args;
    va_start (args, format);
    vsnprintf (message, sizeof message, format, args);
    va_end (args);
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    struct tm tm;
    localtime_r (&now.tv_sec, &tm);
    char stamp [32];
    strftime (stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
    if (self->log)
        fprintf (self->log, "%s.%03ld supervisor: %s\n", stamp, now.tv_nsec / 1000000, message);
    if (self->echo)
        fprintf (stderr, "%s.%03ld supervisor: %s\n", stamp, now.tv_nsec / 1000000, message);
}

//  A line for the parent waiting in `pond up`
static void s_notify (pond_supervisor_t *self, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

static void
s_notify (pond_supervisor_t *self, const char *format, ...)
{
    if (self->notify_fd < 0)
        return;
    char line [512];
    va_list args;
    va_start (args, format);
    int size = vsnprintf (line, sizeof line - 1, format, args);
    va_end (args);
    if (size < 0)
        return;
    if ((size_t) size > sizeof line - 2)
        size = sizeof line - 2;
    line [size++] = '\n';
    if (write (self->notify_fd, line, (size_t) size) != size) {
        //  The parent has gone: nobody to tell any more
        close (self->notify_fd);
        self->notify_fd = -1;
    }
}

//  Rewrite DIR/supervisor.zpl (tmp + rename: readers never see half)
static void
s_write_state (pond_supervisor_t *self)
{
    zconfig_t *root = zconfig_new ("root", NULL);
    if (!root)
        return;
    zconfig_putf (root, "supervisor/pid", "%d", (int) getpid ());
    zconfig_put (root, "supervisor/state", self->state);
    zconfig_putf (root, "supervisor/started", "%lld", (long long) self->started_wall);
    zconfig_put (root, "supervisor/data", self->dir);
    for (size_t i = 0; i < self->size; i++) {
        child_t *child = &self->children [i];
        char path [128];
        snprintf (path, sizeof path, "process/%s/pid", child->name);
        zconfig_putf (root, path, "%d", (int) child->pid);
        snprintf (path, sizeof path, "process/%s/ready", child->name);
        zconfig_put (root, path, child->pid && child->ready_seen ? "true" : "false");
        snprintf (path, sizeof path, "process/%s/restarts", child->name);
        zconfig_putf (root, path, "%d", child->restarts);
        snprintf (path, sizeof path, "process/%s/started", child->name);
        zconfig_putf (root, path, "%lld", (long long) child->started_wall);
        snprintf (path, sizeof path, "process/%s/last_exit", child->name);
        zconfig_put (root, path, child->last_exit);
        snprintf (path, sizeof path, "process/%s/log", child->name);
        zconfig_put (root, path, child->log);
    }
    char path [PATH_MAX], temp [PATH_MAX + 16];
    snprintf (path, sizeof path, "%s/supervisor.zpl", self->dir);
    snprintf (temp, sizeof temp, "%s.tmp", path);
    if (zconfig_save (root, temp) || rename (temp, path))
        s_log (self, "cannot write %s: %s", path, strerror (errno));
    zconfig_destroy (&root);
}

//  "exit code 1" / "exit signal 9"
static void
s_describe_exit (int status, char *text, size_t size)
{
    if (WIFEXITED (status))
        snprintf (text, size, "exit code %d", WEXITSTATUS (status));
    else if (WIFSIGNALED (status))
        snprintf (text, size, "exit signal %d", WTERMSIG (status));
    else
        snprintf (text, size, "status %d", status);
}

//  Start one process: its own process group (so Ctrl-C on a foreground
//  supervisor reaches only the supervisor), killed if the supervisor dies,
//  output appended to its log. Returns 0, or -1 if it could not be started.
static int
s_child_start (pond_supervisor_t *self, child_t *child)
{
    if (*child->ready)
        unlink (child->ready);    //  A stale one would look ready
    char *argv [ARGS_MAX + 4];
    char args [sizeof child->args];
    strcpy (args, child->args);
    const char *base = strrchr (child->path, '/');
    size_t argc = 0;
    argv [argc++] = (char *) (base ? base + 1 : child->path);
    argv [argc++] = "--data";
    argv [argc++] = self->dir;
    if (*self->keys) {
        //  The broker and the store have their fixed key names; every other
        //  process uses the key named after it
        argv [argc++] = "--keys";
        argv [argc++] = self->keys;
        if (!streq (child->name, "store") && !streq (child->name, "broker")) {
            argv [argc++] = "--as";
            argv [argc++] = child->name;
        }
    }
    char *saveptr = NULL;
    for (char *token = strtok_r (args, " \t", &saveptr); token && argc < ARGS_MAX;
         token = strtok_r (NULL, " \t", &saveptr))
        argv [argc++] = token;
    argv [argc] = NULL;

    char banner [256];
    snprintf (banner, sizeof banner, "---- %s: started by pond-supervisor (pid %d)", child->name,
              (int) getpid ());
    pond_process_options_t options = { .death_signal = SIGTERM,
                                       .new_group = true,
                                       .null_stdin = true,
                                       .reset_signals = true,
                                       .banner = banner,
                                       .who = "pond-supervisor" };
    if (self->log_stderr)
        options.stdout_fd = options.stderr_fd = STDERR_FILENO;
    pid_t pid = pond_process_spawn (child->path, argv, self->log_stderr ? NULL : child->log,
                                    &options);
    if (pid < 0) {
        s_log (self, "cannot start %s: %s (log %s)", child->name, strerror (errno), child->log);
        return -1;
    }
    child->pid = pid;
    child->ready_seen = false;
    child->started_ms = zclock_mono ();
    child->started_wall = (int64_t) time (NULL);
    s_log (self, "started %s (pid %d)", child->name, (int) pid);
    s_write_state (self);
    return 0;
}

//  True if the child's ready file is there and names this child's pid
//  (any "*/pid" key; a file without one counts by being there).
static bool
s_child_is_ready (child_t *child)
{
    if (!*child->ready)
        return true;
    if (access (child->ready, F_OK))
        return false;
    zconfig_t *config = zconfig_load (child->ready);
    if (!config)
        return false;    //  Half written (should not happen: rename)
    bool ready = true;
    for (zconfig_t *section = zconfig_child (config); section; section = zconfig_next (section)) {
        zconfig_t *pid = zconfig_locate (section, "pid");
        if (pid && zconfig_value (pid) && atoi (zconfig_value (pid)) != (int) child->pid)
            ready = false;
    }
    zconfig_destroy (&config);
    return ready;
}

//  A child has exited: schedule its restart, or give up if the mesh never
//  came up. Returns 0, or -1 if the start has failed for good.
static int
s_child_exited (pond_supervisor_t *self, child_t *child, int status)
{
    int64_t now = zclock_mono ();
    s_describe_exit (status, child->last_exit, sizeof child->last_exit);
    if (*child->ready)
        unlink (child->ready);    //  Its endpoints are gone with it
    child->pid = 0;
    child->ready_seen = false;
    if (now - child->started_ms >= self->stable_ms)
        child->attempt = 0;    //  It had a good life: start over
    child->attempt++;
    if (streq (self->state, "starting") && child->attempt >= self->start_attempts) {
        s_log (self,
               "%s failed %d times while the mesh was starting (%s); giving up, "
               "see %s",
               child->name, child->attempt, child->last_exit, child->log);
        s_notify (self, "fail %s %s after %d attempts", child->name, child->last_exit,
                  child->attempt);
        return -1;
    }
    int delay = self->backoff_min_ms;
    for (int i = 1; i < child->attempt && delay < self->backoff_max_ms; i++)
        delay *= 2;
    if (delay > self->backoff_max_ms)
        delay = self->backoff_max_ms;
    child->restarts++;
    child->due_ms = now + delay;
    s_log (self, "restarting %s (%s), attempt %d in %d ms", child->name, child->last_exit,
           child->attempt, delay);
    s_write_state (self);
    return 0;
}

//  Reap every child that has exited. Returns 0, or -1 if the start has
//  failed for good.
static int
s_reap (pond_supervisor_t *self)
{
    int rc = 0;
    int status;
    pid_t pid;
    while ((pid = waitpid (-1, &status, WNOHANG)) > 0)
        for (size_t i = 0; i < self->size; i++)
            if (self->children [i].pid == pid && s_child_exited (self, &self->children [i], status))
                rc = -1;
    return rc;
}

//  Start what is due, notice what became ready, kill what never did, and
//  say when the whole mesh is up. Returns how long to wait until the next
//  tick, msecs: soon while something starts or is due to.
static int
s_tick (pond_supervisor_t *self)
{
    int64_t now = zclock_mono ();
    bool all_ready = true;
    for (size_t i = 0; i < self->size; i++) {
        child_t *child = &self->children [i];
        if (child->pid == 0) {
            //  The first start waits for everything before it
            bool before_ready = true;
            for (size_t j = 0; j < i && !child->been_ready; j++)
                if (!self->children [j].ready_seen)
                    before_ready = false;
            if (before_ready && now >= child->due_ms && s_child_start (self, child))
                child->due_ms = now + 1000;    //  Could not even fork: later
        }
        else if (!child->ready_seen) {
            if (s_child_is_ready (child)) {
                child->ready_seen = true;
                child->been_ready = true;
                s_log (self, "%s is ready (pid %d)", child->name, (int) child->pid);
                s_notify (self, "ready %s %d", child->name, (int) child->pid);
                s_write_state (self);
            }
            else if (now - child->started_ms > self->ready_timeout_ms) {
                s_log (self, "%s is not ready after %d ms; killing it", child->name,
                       self->ready_timeout_ms);
                kill (child->pid, SIGKILL);
                child->started_ms = now;    //  Once; the reaper does the rest
            }
        }
        else if (child->attempt && now - child->started_ms >= self->stable_ms)
            child->attempt = 0;
        if (!child->ready_seen)
            all_ready = false;
    }
    int wait = all_ready ? TICK_MS : TICK_BUSY_MS;
    if (all_ready && streq (self->state, "starting")) {
        self->state = "up";
        s_log (self, "the mesh is up: %zu processes in %s", self->size, self->dir);
        s_notify (self, "up");
        if (self->notify_fd >= 0) {
            close (self->notify_fd);
            self->notify_fd = -1;
        }
        s_write_state (self);
    }
    return wait;
}

//  Stop one child: SIGTERM, then SIGKILL after the stop timeout
static void
s_child_stop (pond_supervisor_t *self, child_t *child)
{
    if (child->pid == 0)
        return;
    s_log (self, "stopping %s (pid %d)", child->name, (int) child->pid);
    kill (child->pid, SIGTERM);
    int status = 0;
    int rc = pond_process_wait_exit (child->pid, self->stop_timeout_ms, &status);
    if (rc == 1) {
        s_log (self, "%s did not stop within %d ms: SIGKILL", child->name, self->stop_timeout_ms);
        status = pond_process_stop (child->pid, SIGKILL, -1);
        rc = status == -1 ? -1 : 0;
    }
    if (rc == 0) {
        s_describe_exit (status, child->last_exit, sizeof child->last_exit);
        s_log (self, "%s stopped (%s)", child->name, child->last_exit);
    }
    if (*child->ready)
        unlink (child->ready);
    child->pid = 0;
    child->ready_seen = false;
    s_write_state (self);
}

//  Take DIR/supervisor.lock. Returns 0, or -1 if another process holds it.
static int
s_lock (pond_supervisor_t *self)
{
    char path [PATH_MAX];
    snprintf (path, sizeof path, "%s/supervisor.lock", self->dir);
    pid_t holder = 0;
    char err [PATH_MAX + 64];
    self->lock = pond_pidlock_new (path, 10, &holder, err, sizeof err);
    if (self->lock)
        return 0;
    if (holder)
        s_log (self,
               "another supervisor (pid %d) runs in %s; stop it with: pond down "
               "--data %s",
               (int) holder, self->dir, self->dir);
    else
        s_log (self, "%s", err);
    return -1;
}

int
pond_supervisor_run (pond_supervisor_t *self, int notify_fd, bool echo)
{
    assert (self);
    self->notify_fd = notify_fd;
    self->echo = echo;
    self->started_wall = (int64_t) time (NULL);
    prctl (PR_SET_NAME, POND_SUPERVISOR_NAME);
    signal (SIGPIPE, SIG_IGN);
    sigset_t signals;
    sigemptyset (&signals);
    sigaddset (&signals, SIGTERM);
    sigaddset (&signals, SIGINT);
    sigaddset (&signals, SIGCHLD);
    sigaddset (&signals, SIGHUP);
    sigprocmask (SIG_BLOCK, &signals, NULL);

    char path [PATH_MAX];
    snprintf (path, sizeof path, "%s/logs", self->dir);
    mkdir (path, 0755);
    snprintf (path, sizeof path, "%s/logs/supervisor.log", self->dir);
    self->log = fopen (path, "ae");
    if (!self->log) {
        fprintf (stderr, "pond-supervisor: cannot write %s: %s\n", path, strerror (errno));
        s_notify (self, "fail supervisor cannot write %s", path);
        return 1;
    }
    setvbuf (self->log, NULL, _IOLBF, 0);
    s_notify (self, "pid %d", (int) getpid ());
    if (s_lock (self)) {
        s_notify (self, "fail supervisor another supervisor runs in %s", self->dir);
        return 1;
    }
    s_log (self, "supervisor started (pid %d) in %s", (int) getpid (), self->dir);
    s_write_state (self);

    int rc = 0;
    while (true) {
        int wait = s_tick (self);
        struct timespec timeout = { wait / 1000, (wait % 1000) * 1000000L };
        int signo = sigtimedwait (&signals, NULL, &timeout);
        if (signo == SIGTERM || signo == SIGINT) {
            s_log (self, "%s: stopping the mesh", signo == SIGTERM ? "SIGTERM" : "SIGINT");
            break;
        }
        if (s_reap (self)) {
            rc = 1;
            self->state = "failed";
            break;
        }
    }
    if (rc == 0)
        self->state = "stopping";
    s_write_state (self);
    //  Actors first, then the broker, then the store: reverse start order
    for (size_t i = self->size; i-- > 0;)
        s_child_stop (self, &self->children [i]);
    s_reap (self);
    snprintf (path, sizeof path, "%s/supervisor.zpl", self->dir);
    unlink (path);
    s_log (self, "supervisor stopped");
    return rc;
}
