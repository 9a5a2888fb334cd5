/*  pond_cmd_mesh: the commands that run a whole mesh.

    up       start the supervisor (in the background unless --foreground),
             which starts store, broker and the four actors and keeps them
             running; wait until every one is ready
    down     stop the supervisor, which stops its processes in order
    status   each process, each actor's position, the log's head

    The supervisor itself is pond_supervisor.c; what a running one is
    doing is in DIR/supervisor.zpl. Also the helpers every mesh command
    shares (see pond_mesh.h).
*/
#define _GNU_SOURCE
#include "pond_mesh.h"
#include "pond_actor_link.h"
#include "pond_supervisor.h"
#include "pond_keys.h"
#include "pond_process.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

//  Longest data directory whose ipc endpoints fit a socket path (108
//  bytes with "ipc://" left out, the longest file being badge-granter.ipc)
#define IPC_DIR_MAX     (107 - 18)

//  How long `pond up` waits for the whole mesh, and `pond down` for the stop
#define UP_TIMEOUT_MS   300000
#define LIVE_TIMEOUT_MS 60000    //  store link up and actors live after ready
#define DOWN_TIMEOUT_MS 60000

//  =====================================================================
//  Shared helpers

void
pond_mesh_split_args (int argc, char *argv [], const struct option *options, char **opts,
                      int *opts_count, char **args, int *args_count)
{
    int nopts = 0, nargs = 0;
    opts [nopts++] = argv [0];
    bool options_over = false;
    for (int i = 1; i < argc; i++) {
        char *arg = argv [i];
        if (options_over || arg [0] != '-' || arg [1] == 0) {
            args [nargs++] = arg;
            continue;
        }
        if (streq (arg, "--")) {
            options_over = true;
            continue;
        }
        opts [nopts++] = arg;
        if (arg [1] != '-' || strchr (arg, '='))
            continue;    //  -h, or --name=value
        //  Does this long option (maybe abbreviated) take a value?
        const char *name = arg + 2;
        size_t length = strlen (name);
        const struct option *match = NULL;
        int matches = 0;
        for (const struct option *option = options; option->name; option++) {
            if (strlen (option->name) == length && memcmp (option->name, name, length) == 0) {
                match = option;
                matches = 1;
                break;
            }
            if (strncmp (option->name, name, length) == 0) {
                match = option;
                matches++;
            }
        }
        if (matches == 1 && match->has_arg == required_argument && i + 1 < argc)
            opts [nopts++] = argv [++i];
    }
    opts [nopts] = NULL;
    *opts_count = nopts;
    *args_count = nargs;
}

int
pond_mesh_bin_dir (char *dir, size_t size)
{
    char path [PATH_MAX + 128];
    ssize_t length = readlink ("/proc/self/exe", path, sizeof path - 1);
    if (length <= 0)
        return -1;
    path [length] = 0;
    char *slash = strrchr (path, '/');
    if (!slash || (size_t) (slash - path) >= size)
        return -1;
    size_t length_dir = (size_t) (slash - path);
    memcpy (dir, path, length_dir);
    dir [length_dir] = 0;
    return 0;
}

const char *
pond_mesh_actor_name (const char *view)
{
    return pond_views_actor (view);
}

void
pond_mesh_print_tail (const char *path, int lines, const char *indent, FILE *out)
{
    FILE *file = fopen (path, "re");
    if (!file) {
        fprintf (out, "%s(cannot read %s: %s)\n", indent, path, strerror (errno));
        return;
    }
    //  The last 16 KiB are plenty for a few lines
    if (fseek (file, 0, SEEK_END) == 0 && ftell (file) > 16384)
        fseek (file, -16384, SEEK_END);
    else
        fseek (file, 0, SEEK_SET);
    char *text = (char *) malloc (16385);
    size_t size = text ? fread (text, 1, 16384, file) : 0;
    fclose (file);
    if (!text)
        return;
    text [size] = 0;
    char *start = text + size;
    int seen = 0;
    if (start > text && start [-1] == '\n')
        start--;
    while (start > text && seen < lines) {
        start--;
        if (*start == '\n' && ++seen == lines) {
            start++;
            break;
        }
    }
    char *saveptr = NULL;
    for (char *line = strtok_r (start, "\n", &saveptr); line;
         line = strtok_r (NULL, "\n", &saveptr))
        fprintf (out, "%s%s\n", indent, line);
    free (text);
}

int
pond_mesh_child_start (pond_mesh_child_t *self, const char *path, char *const argv [],
                       bool inherit_stderr)
{
    memset (self, 0, sizeof (*self));
    self->fds [0] = self->fds [1] = -1;
    int out [2] = { -1, -1 }, err [2] = { -1, -1 };
    if (pipe2 (out, O_CLOEXEC) || (!inherit_stderr && pipe2 (err, O_CLOEXEC))) {
        for (size_t i = 0; i < 2; i++) {
            if (out [i] >= 0)
                close (out [i]);
            if (err [i] >= 0)
                close (err [i]);
        }
        return -1;
    }
    pond_process_options_t options = { .null_stdin = true,
                                       .stdout_fd = out [1],
                                       .stderr_fd = inherit_stderr ? 0 : err [1],
                                       .inherit_stderr = inherit_stderr };
    pid_t pid = pond_process_spawn (path, argv, NULL, &options);
    close (out [1]);
    if (!inherit_stderr)
        close (err [1]);
    if (pid < 0) {
        close (out [0]);
        if (!inherit_stderr)
            close (err [0]);
        return -1;
    }
    self->pid = pid;
    self->fds [0] = out [0];
    self->fds [1] = inherit_stderr ? -1 : err [0];
    return 0;
}

//  Read what is there; close the pipe at its end
static void
s_child_read (pond_mesh_child_t *self, size_t which)
{
    char buffer [4096];
    ssize_t size = read (self->fds [which], buffer, sizeof buffer);
    if (size < 0 && errno == EINTR)
        return;
    if (size <= 0) {
        close (self->fds [which]);
        self->fds [which] = -1;
        return;
    }
    char *bigger = (char *) realloc (self->text [which], self->size [which] + (size_t) size + 1);
    if (!bigger)
        return;    //  Dropped: better than stopping the child
    self->text [which] = bigger;
    memcpy (bigger + self->size [which], buffer, (size_t) size);
    self->size [which] += (size_t) size;
    bigger [self->size [which]] = 0;
}

int
pond_mesh_children_finish (pond_mesh_child_t *children, size_t count, int timeout_ms)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    int rc = 0;
    struct pollfd *items = (struct pollfd *) calloc (2 * count + 1, sizeof (struct pollfd));
    size_t *owners = (size_t *) calloc (2 * count + 1, sizeof (size_t));
    while (items && owners) {
        size_t open_count = 0;
        for (size_t i = 0; i < count; i++)
            for (size_t which = 0; which < 2; which++)
                if (children [i].fds [which] >= 0) {
                    items [open_count] = (struct pollfd) { children [i].fds [which], POLLIN, 0 };
                    owners [open_count++] = 2 * i + which;
                }
        if (open_count == 0)
            break;
        if (zclock_mono () >= deadline) {
            rc = -1;
            break;
        }
        if (poll (items, open_count, 100) > 0)
            for (size_t k = 0; k < open_count; k++)
                if (items [k].revents)
                    s_child_read (&children [owners [k] / 2], owners [k] % 2);
    }
    free (items);
    free (owners);
    for (size_t i = 0; i < count; i++) {
        pond_mesh_child_t *child = &children [i];
        for (size_t which = 0; which < 2; which++) {
            if (child->fds [which] >= 0)
                close (child->fds [which]);
            child->fds [which] = -1;
            if (!child->text [which])
                child->text [which] = strdup ("");
        }
        if (child->pid > 0) {
            if (rc)
                child->status = pond_process_stop (child->pid, SIGKILL, -1);
            else if (pond_process_wait_exit (child->pid, -1, &child->status))
                child->status = -1;
        }
    }
    return rc;
}

int
pond_mesh_child_exit (pond_mesh_child_t *self)
{
    if (self->pid <= 0 || self->status == -1 || !WIFEXITED (self->status))
        return -1;
    return WEXITSTATUS (self->status);
}

void
pond_mesh_child_free (pond_mesh_child_t *self)
{
    for (size_t which = 0; which < 2; which++) {
        free (self->text [which]);
        self->text [which] = NULL;
    }
}

//  Make DIR (and its parents) and turn it into an absolute path in abs.
static int
s_data_dir_make (pond_cli_t *cli, const char *dir, char *abs, size_t size)
{
    if (zsys_dir_create ("%s", dir)) {
        pond_cli_fail (cli, "cannot create the data directory %s: %s", dir, strerror (errno));
        return -1;
    }
    char resolved [PATH_MAX];
    if (!realpath (dir, resolved) || strlen (resolved) >= size) {
        pond_cli_fail (cli, "cannot resolve the data directory %s", dir);
        return -1;
    }
    strcpy (abs, resolved);
    if (strlen (abs) > IPC_DIR_MAX) {
        pond_cli_fail (cli,
                       "the data directory %s is too long for ipc endpoints (at most %d "
                       "characters); use a shorter --data",
                       abs, IPC_DIR_MAX);
        return -1;
    }
    return 0;
}

//  "1h02m", "3m05s", "12s"
static void
s_duration (int64_t seconds, char *text, size_t size)
{
    if (seconds < 0)
        seconds = 0;
    if (seconds >= 3600)
        snprintf (text, size, "%lldh%02lldm", (long long) seconds / 3600,
                  (long long) (seconds % 3600) / 60);
    else if (seconds >= 60)
        snprintf (text, size, "%lldm%02llds", (long long) seconds / 60, (long long) seconds % 60);
    else
        snprintf (text, size, "%llds", (long long) seconds);
}

//  =====================================================================
//  pond up [--config FILE] [--foreground]

void
pond_cmd_up_help (FILE *out)
{
    fprintf (out,
             "Usage: pond up [--data DIR] [--config FILE] [--foreground [--journal]]\n"
             "\n"
             "Start a mesh: a supervisor that runs pond-store, pond-broker and the\n"
             "four actors (pond-quack-counter, pond-badge-granter, pond-alexa-view,\n"
             "pond-mobile-view) and the HTTP gateway (pond-gateway, on 127.0.0.1, its\n"
             "URL in DIR/gateway.zpl), each as its own process from the directory of\n"
             "this pond binary, in that order, each once the ones before it are ready.\n"
             "Each logs to DIR/logs/NAME.log. A process that dies is restarted after\n"
             "100 ms, then 200 ms, ... up to 5 s (reset after 30 s of good life);\n"
             "DIR/logs/supervisor.log says so. `pond down` stops them all: gateway,\n"
             "actors, then broker, then store.\n"
             "\n"
             "Without --foreground the supervisor runs in the background; pond up\n"
             "waits until every process is ready, the broker reaches the store and\n"
             "every actor is live (caught up with the log and hearing the broker),\n"
             "prints the endpoints and exits 0: the next publish is stored and the\n"
             "next query sees it. It exits 1 with the end of the failing process's\n"
             "log, or naming what is not live after %d s (and stops the mesh).\n"
             "\n"
             "  --config FILE     ZPL file overriding the built-in process list and\n"
             "                    timings, e.g.\n"
             "                      process\n"
             "                          store\n"
             "                              command = \"pond-store\"\n"
             "                              args = \"--verbose\"\n"
             "                      supervisor\n"
             "                          stop_timeout_ms = 5000\n"
             "                    (see cli/mesh.zpl; a process section replaces the\n"
             "                    whole list; an unknown key is an error)\n"
             "  --foreground      supervise in this process, logging to stderr too;\n"
             "                    Ctrl-C stops the mesh\n"
             "  --journal         with --foreground: every process writes to this\n"
             "                    stderr instead of DIR/logs/NAME.log (under systemd:\n"
             "                    the journal; each line names its process)\n"
             "  --keys DIR        run the mesh with CURVE (see pond keys --help): each\n"
             "                    process gets --keys DIR; store and broker use keys\n"
             "                    'store' and 'broker', each actor the key named after it\n"
             "                    (quack-counter, ...), the gateway the admin key\n"
             "                    'gateway', this command the key --as (admin); HTTP\n"
             "                    clients then send tokens (pond keys token NAME)\n"
             "\n"
             "State: DIR/supervisor.zpl (pids, restarts); `pond status` reads it.\n"
             "Exit status: 0 up (or stopped cleanly with --foreground), 1 failed or\n"
             "already up, 2 usage or config error.\n"
             "\n" POND_CLI_COMMON_HELP,
             LIVE_TIMEOUT_MS / 1000);
}

//  Print the endpoints of the running mesh and the closing line.
static void
s_up_print_endpoints (pond_supervisor_t *supervisor, const char *dir, pid_t pid)
{
    pond_endpoints_t eps;
    pond_endpoints_resolve (dir, &eps);
    bool local = true;
    printf ("endpoints:\n");
    const char *labels [] = { "ingest", "pub", "control" };
    const char *values [] = { eps.ingest, eps.pub, eps.control };
    for (size_t i = 0; i < 3; i++) {
        printf ("  %-15s %s\n", labels [i], values [i]);
        local = local && strncmp (values [i], "ipc://", 6) == 0;
    }
    for (size_t i = 0; i < pond_supervisor_size (supervisor); i++) {
        const char *name = pond_supervisor_name (supervisor, i);
        char err [256];
        pond_actor_link_t *link = pond_actor_link_new (dir, name, err, sizeof err);
        if (link) {
            printf ("  %-15s %s (queries)\n", name, pond_actor_link_endpoint (link));
            local = local && strncmp (pond_actor_link_endpoint (link), "ipc://", 6) == 0;
        }
        pond_actor_link_destroy (&link);
    }
    //  The HTTP gateway says where it listens in DIR/gateway.zpl
    char path [PATH_MAX + 16];
    snprintf (path, sizeof path, "%s/gateway.zpl", dir);
    zconfig_t *gateway = zsys_file_exists (path) ? zconfig_load (path) : NULL;
    if (gateway && zconfig_get (gateway, "gateway/url", NULL))
        printf ("  %-15s %s (HTTP)\n", "gateway", zconfig_get (gateway, "gateway/url", ""));
    zconfig_destroy (&gateway);
    if (pond_keys_active ())
        printf ("pond is up (CURVE: every process uses its key of %s)\n", pond_keys_dir ());
    else if (local)
        printf ("pond is up (local mode: ipc endpoints, no keys)\n");
    else
        printf ("pond is up (tcp endpoints, no keys)\n");
    printf ("supervisor pid %d; logs in %s/logs; stop it with: pond down --data %s\n", (int) pid,
            dir, dir);
    fflush (stdout);
}

//  Ready files say a process has bound its sockets, not that it serves:
//  wait until the broker reaches the store (PONG store_up) and every
//  actor has caught up and hears the broker (STATUS live), so that the
//  first publish is not answered 503 and the first query not 404. Returns
//  0, or -1 after naming what is not there within LIVE_TIMEOUT_MS.
static int
s_up_wait_live (pond_cli_t *cli, pond_supervisor_t *supervisor, const char *dir)
{
    int64_t deadline = zclock_mono () + LIVE_TIMEOUT_MS;
    pond_endpoints_t eps;
    pond_endpoints_resolve (dir, &eps);
    pond_client_t *client = pond_client_new (eps.ingest);
    pond_pong_t pong = { false, 0 };
    while (client && zclock_mono () < deadline && !zsys_interrupted) {
        if (pond_client_ping_store (client, 1000, &pong) == 0 && pong.store_up)
            break;
        pong.store_up = false;
        zclock_sleep (50);
    }
    pond_client_destroy (&client);
    if (!pong.store_up) {
        pond_cli_fail (cli,
                       "the broker does not reach the store after %d s; see %s/logs/"
                       "broker.log and store.log",
                       LIVE_TIMEOUT_MS / 1000, dir);
        return -1;
    }
    printf ("  %-15s reaches the store (head %llu)\n", "broker", (unsigned long long) pong.head);
    for (size_t i = 0; i < pond_supervisor_size (supervisor); i++) {
        const char *name = pond_supervisor_name (supervisor, i);
        char err [256];
        pond_actor_link_t *link = pond_actor_link_new (dir, name, err, sizeof err);
        if (!link)
            continue;    //  not an actor (store, broker)
        char last [256] = "no answer";
        bool live = false;
        while (!live && zclock_mono () < deadline && !zsys_interrupted) {
            char *status = pond_actor_link_status (link, 1000);
            cJSON *tree = status ? cJSON_Parse (status) : NULL;
            live = cJSON_IsTrue (cJSON_GetObjectItem (tree, "live"));
            double position = cJSON_GetNumberValue (cJSON_GetObjectItem (tree, "position"));
            double head = cJSON_GetNumberValue (cJSON_GetObjectItem (tree, "head"));
            if (tree)
                snprintf (last, sizeof last, "at seq %.0f of head %.0f",
                          position == position ? position : 0, head == head ? head : 0);
            if (live)
                printf ("  %-15s live (%s)\n", name, last);
            cJSON_Delete (tree);
            free (status);
            if (!live)
                zclock_sleep (50);
        }
        pond_actor_link_destroy (&link);
        if (!live) {
            pond_cli_fail (cli,
                           "%s is not live after %d s (%s): still catching up, or it "
                           "does not hear the broker; see %s/logs/%s.log",
                           name, LIVE_TIMEOUT_MS / 1000, last, dir, name);
            return -1;
        }
    }
    fflush (stdout);
    return 0;
}

//  Wait until the supervisor pid is gone, at most timeout_ms.
static bool
s_wait_gone (pid_t pid, int timeout_ms)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    while (pond_supervisor_alive (pid)) {
        if (zclock_mono () >= deadline)
            return false;
        zclock_sleep (50);
    }
    return true;
}

//  The supervisor could not bring the mesh up: say why, show the log.
static void
s_up_report_failure (pond_cli_t *cli, const char *dir, const char *line)
{
    char name [64] = "";
    const char *reason = "";
    if (line && sscanf (line, "fail %63s", name) == 1) {
        reason = line + 5 + strlen (name);
        while (*reason == ' ')
            reason++;
    }
    char log [PATH_MAX + 128];
    if (*name && !streq (name, "supervisor")) {
        pond_cli_fail (cli, "%s did not start (%s)", name, reason);
        snprintf (log, sizeof log, "%s/logs/%s.log", dir, name);
    }
    else {
        pond_cli_fail (cli, "the supervisor stopped%s%s", *reason ? ": " : "", reason);
        snprintf (log, sizeof log, "%s/logs/supervisor.log", dir);
    }
    fprintf (stderr, "last lines of %s:\n", log);
    pond_mesh_print_tail (log, 15, "  | ", stderr);
    fprintf (stderr, "the mesh is stopped; fix the problem above, then run pond up again\n");
}

//  Run the supervisor as a daemon (double fork, setsid) and follow its
//  start through a pipe. Returns an exit code. Not zsys_daemonize: it
//  exit ()s its caller, closes every descriptor (the pipe too), sends the
//  output to /dev/null instead of the log, sets umask 027, and no setsid.
static int
s_up_daemon (pond_cli_t *cli, pond_supervisor_t *supervisor, const char *dir)
{
    int fds [2];
    if (pipe2 (fds, O_CLOEXEC))
        return pond_cli_fail (cli, "cannot create a pipe: %s", strerror (errno));
    //  Ctrl-C while waiting stops the mesh instead of leaving it half up
    sigset_t signals, saved;
    sigemptyset (&signals);
    sigaddset (&signals, SIGINT);
    sigaddset (&signals, SIGTERM);
    sigprocmask (SIG_BLOCK, &signals, &saved);
    fflush (NULL);
    pid_t child = fork ();
    if (child == 0) {
        close (fds [0]);
        setsid ();
        pid_t daemon = fork ();
        if (daemon != 0)
            _exit (daemon < 0 ? 1 : 0);
        //  The supervisor: no terminal, no inherited descriptors
        if (chdir ("/"))
            _exit (1);
        int null_fd = open ("/dev/null", O_RDWR);
        char log [PATH_MAX + 128];
        snprintf (log, sizeof log, "%s/logs/supervisor.log", dir);
        int log_fd = open (log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (null_fd >= 0)
            dup2 (null_fd, 0);
        if (log_fd >= 0) {
            dup2 (log_fd, 1);
            dup2 (log_fd, 2);
        }
        if (fds [1] > 3)
            close_range (3, (unsigned) fds [1] - 1, 0);
        close_range ((unsigned) fds [1] + 1, ~0U, 0);
        if (fds [1] < 3)
            _exit (1);    //  Cannot happen: 0, 1, 2 were open
        int rc = pond_supervisor_run (supervisor, fds [1], false);
        pond_supervisor_destroy (&supervisor);
        _exit (rc);
    }
    close (fds [1]);
    if (child < 0) {
        close (fds [0]);
        sigprocmask (SIG_SETMASK, &saved, NULL);
        return pond_cli_fail (cli, "cannot fork: %s", strerror (errno));
    }
    waitpid (child, NULL, 0);

    //  Follow the start, line by line
    char buffer [4096];
    size_t used = 0;
    pid_t pid = 0;
    int rc = -1;    //  Still waiting
    char failure [512] = "";
    int64_t deadline = zclock_mono () + UP_TIMEOUT_MS;
    bool interrupted = false;
    while (rc == -1) {
        struct pollfd item = { fds [0], POLLIN, 0 };
        int ready = poll (&item, 1, 100);
        struct timespec zero = { 0, 0 };
        if (sigtimedwait (&signals, NULL, &zero) > 0) {
            interrupted = true;
            break;
        }
        if (zclock_mono () > deadline)
            break;
        if (ready <= 0)
            continue;
        ssize_t size = read (fds [0], buffer + used, sizeof buffer - used - 1);
        if (size < 0 && errno == EINTR)
            continue;
        if (size <= 0) {
            rc = POND_EXIT_FAILURE;    //  The supervisor has gone without "up"
            break;
        }
        used += (size_t) size;
        buffer [used] = 0;
        char *newline;
        while (rc == -1 && (newline = strchr (buffer, '\n'))) {
            *newline = 0;
            char name [64];
            int child_pid;
            if (sscanf (buffer, "pid %d", &child_pid) == 1) {
                pid = child_pid;
                printf ("pond: starting the mesh in %s (supervisor pid %d)\n", dir, (int) pid);
            }
            else if (sscanf (buffer, "ready %63s %d", name, &child_pid) == 2)
                printf ("  %-15s ready (pid %d)\n", name, child_pid);
            else if (streq (buffer, "up"))
                rc = POND_EXIT_OK;
            else if (strncmp (buffer, "fail ", 5) == 0) {
                snprintf (failure, sizeof failure, "%.500s", buffer);
                rc = POND_EXIT_FAILURE;
            }
            fflush (stdout);
            used -= (size_t) (newline + 1 - buffer);
            memmove (buffer, newline + 1, used + 1);
        }
    }
    close (fds [0]);
    sigprocmask (SIG_SETMASK, &saved, NULL);
    if (rc == POND_EXIT_OK && s_up_wait_live (cli, supervisor, dir) == 0) {
        s_up_print_endpoints (supervisor, dir, pid);
        return POND_EXIT_OK;
    }
    if (rc == POND_EXIT_OK) {
        //  Up but not serving: stop it, as when a process cannot start
        fprintf (stderr, "pond up: stopping the mesh\n");
        if (pid > 0) {
            kill (pid, SIGTERM);
            s_wait_gone (pid, DOWN_TIMEOUT_MS);
        }
        return POND_EXIT_FAILURE;
    }
    if (interrupted || rc == -1) {
        if (pid > 0)
            kill (pid, SIGTERM);
        if (interrupted)
            pond_cli_fail (cli, "interrupted: stopping the mesh");
        else
            pond_cli_fail (cli, "the mesh was not up after %d s; stopping it; see %s/logs",
                           UP_TIMEOUT_MS / 1000, dir);
        if (pid > 0 && !s_wait_gone (pid, DOWN_TIMEOUT_MS))
            fprintf (stderr,
                     "pond up: the supervisor (pid %d) is still stopping; "
                     "see %s/logs/supervisor.log\n",
                     (int) pid, dir);
        return POND_EXIT_FAILURE;
    }
    //  The supervisor stops what it started, then exits
    if (pid > 0)
        s_wait_gone (pid, DOWN_TIMEOUT_MS);
    s_up_report_failure (cli, dir, *failure ? failure : NULL);
    return POND_EXIT_FAILURE;
}

//  With --keys (or $POND_KEYS) the mesh runs with CURVE: every process
//  gets the keys directory, and each must find its secret key there.
//  Returns 0, or -1 after saying which key is missing and how to make it.
static int
s_supervisor_keys (pond_cli_t *cli, pond_supervisor_t *supervisor)
{
    if (!cli->keys)
        return 0;
    char keys [PATH_MAX];
    if (!realpath (cli->keys, keys)) {
        pond_cli_fail (cli, "--keys %s: %s (make keys with: pond keys new --keys %s ...)",
                       cli->keys, strerror (errno), cli->keys);
        return -1;
    }
    for (size_t i = 0; i < pond_supervisor_size (supervisor); i++) {
        const char *name = pond_supervisor_name (supervisor, i);
        //  The gateway publishes for anyone and reads STATS: an admin key
        const char *role = streq (name, "store")   ? "store"
                         : streq (name, "broker")  ? "broker"
                         : streq (name, "gateway") ? "admin"
                                                   : "actor";
        char path [PATH_MAX + 64];
        snprintf (path, sizeof path, "%s/secret/%s.cert_secret", keys, name);
        if (access (path, R_OK)) {
            pond_cli_fail (cli,
                           "with --keys, %s runs with key '%s', but %s is missing: "
                           "make it with pond keys new --keys %s --role %s%s%s",
                           name, name, path, keys, role,
                           streq (role, "actor") || streq (role, "admin") ? " --name " : "",
                           streq (role, "actor") || streq (role, "admin") ? name : "");
            return -1;
        }
    }
    if (pond_supervisor_set_keys (supervisor, keys)) {
        pond_cli_fail (cli, "keys directory path too long: %s", keys);
        return -1;
    }
    return 0;
}

//  Everything up and up --foreground do before supervising: the data
//  directory (made absolute into dir), the config, the binaries, and no
//  supervisor running there yet. Returns the supervisor, or NULL after
//  saying why (cli->exit_code says how to exit).
static pond_supervisor_t *
s_supervisor_prepare (pond_cli_t *cli, const char *data_dir, const char *config_file, char *dir,
                      size_t size)
{
    if (s_data_dir_make (cli, data_dir, dir, size))
        return NULL;
    char bin_dir [PATH_MAX];
    if (pond_mesh_bin_dir (bin_dir, sizeof bin_dir)) {
        pond_cli_fail (cli, "cannot find the directory of the pond binary (/proc/self/exe)");
        return NULL;
    }
    zconfig_t *config = NULL;
    if (config_file) {
        if (access (config_file, R_OK)) {
            pond_cli_usage (cli, "cannot read the config file %s: %s", config_file,
                            strerror (errno));
            return NULL;
        }
        if (!(config = zconfig_load (config_file))) {
            pond_cli_usage (cli,
                            "%s is not a valid ZPL file (4-space indents, "
                            "key = \"value\")",
                            config_file);
            return NULL;
        }
    }
    pond_supervisor_t *supervisor = pond_supervisor_new (dir, bin_dir);
    char err [1024];
    pid_t running;
    if (!supervisor)
        pond_cli_fail (cli, "out of memory, or paths too long");
    else if (pond_supervisor_configure (supervisor, config, err, sizeof err))
        pond_cli_usage (cli, "%s: %s", config_file, err);
    else if (s_supervisor_keys (cli, supervisor))
        ;    //  said why
    else if (pond_supervisor_check (supervisor, err, sizeof err))
        pond_cli_fail (cli, "%s", err);
    else if ((running = pond_supervisor_pid (dir)) > 0)
        pond_cli_fail (cli,
                       "pond is already up in %s (supervisor pid %d); see it with "
                       "pond status --data %s, stop it with pond down --data %s",
                       dir, (int) running, dir, dir);
    zconfig_destroy (&config);
    if (cli->done)
        pond_supervisor_destroy (&supervisor);
    else {
        char logs [PATH_MAX + 128];
        snprintf (logs, sizeof logs, "%s/logs", dir);
        mkdir (logs, 0755);
    }
    return supervisor;
}

//  Start the mesh in the background and wait until it is up
static int
s_up_background (pond_cli_t *cli, const char *data_dir, const char *config_file)
{
    char dir [PATH_MAX];
    pond_supervisor_t *supervisor = s_supervisor_prepare (cli, data_dir, config_file, dir,
                                                          sizeof dir);
    if (!supervisor)
        return cli->exit_code;
    int rc = s_up_daemon (cli, supervisor, dir);
    pond_supervisor_destroy (&supervisor);
    return rc;
}

//  In the foreground: this process is the supervisor
static int
s_up_foreground (pond_cli_t *cli, const char *data_dir, const char *config_file, bool journal)
{
    char dir [PATH_MAX];
    pond_supervisor_t *supervisor = s_supervisor_prepare (cli, data_dir, config_file, dir,
                                                          sizeof dir);
    if (!supervisor)
        return cli->exit_code;
    pond_supervisor_set_log_stderr (supervisor, journal);
    fprintf (stderr, "pond: supervising the mesh in %s; Ctrl-C or pond down stops it\n", dir);
    int rc = pond_supervisor_run (supervisor, -1, true);
    pond_supervisor_destroy (&supervisor);
    return rc;
}

int
pond_cmd_up (int argc, char *argv [])
{
    pond_cli_t cli;
    pond_cli_init (&cli, "up", pond_cmd_up_help);
    static const struct option options [] = { POND_CLI_COMMON_OPTIONS,
                                              POND_CLI_DATA_OPTION,
                                              { "config", required_argument, NULL, 'c' },
                                              { "foreground", no_argument, NULL, 'f' },
                                              { "journal", no_argument, NULL, 'j' },
                                              { NULL, 0, NULL, 0 } };
    const char *config_file = NULL;
    bool foreground = false, journal = false;
    int opt;
    while ((opt = pond_cli_getopt (&cli, argc, argv, options)) != -1)
        switch (opt) {
            case 'c': config_file = optarg; break;
            case 'f': foreground = true; break;
            case 'j': journal = true; break;
        }
    if (cli.done)
        return cli.exit_code;
    if (journal && !foreground)
        return pond_cli_usage (&cli, "--journal needs --foreground (the output of a "
                                     "background mesh goes to DIR/logs)");
    if (foreground)
        return s_up_foreground (&cli, cli.eps.data_dir, config_file, journal);
    return s_up_background (&cli, cli.eps.data_dir, config_file);
}

//  =====================================================================
//  pond down

void
pond_cmd_down_help (FILE *out)
{
    fprintf (out,
             "Usage: pond down [--data DIR]\n"
             "\n"
             "Stop the mesh started by pond up in DIR: SIGTERM to its supervisor,\n"
             "which stops the actors, then the broker, then the store (each with\n"
             "SIGTERM, SIGKILL if it does not stop in time), and wait until it has\n"
             "gone (at most %d s).\n"
             "Exit status: 0 stopped, 1 not running or did not stop in time.\n"
             "\n" POND_CLI_COMMON_HELP,
             DOWN_TIMEOUT_MS / 1000);
}

int
pond_mesh_down (pond_cli_t *cli, const char *data_dir)
{
    pid_t pid = pond_supervisor_pid (data_dir);
    if (pid == 0) {
        pond_cli_fail (cli, "pond is not running in %s", data_dir);
        char path [PATH_MAX + 128];
        snprintf (path, sizeof path, "%s/supervisor.zpl", data_dir);
        zconfig_t *state = zsys_file_exists (path) ? zconfig_load (path) : NULL;
        if (state)
            fprintf (stderr,
                     "hint: %s is stale: its supervisor (pid %s) is gone, and the "
                     "processes it started went with it; pond up --data %s starts the mesh "
                     "again\n",
                     path, zconfig_get (state, "supervisor/pid", "?"), data_dir);
        zconfig_destroy (&state);
        return POND_EXIT_FAILURE;
    }
    printf ("stopping pond in %s (supervisor pid %d)...\n", data_dir, (int) pid);
    fflush (stdout);
    if (kill (pid, SIGTERM))
        return pond_cli_fail (cli, "cannot signal the supervisor (pid %d): %s", (int) pid,
                              strerror (errno));
    if (!s_wait_gone (pid, DOWN_TIMEOUT_MS)) {
        pond_cli_fail (cli,
                       "the supervisor (pid %d) is still running after %d s; see "
                       "%s/logs/supervisor.log; to force it: kill -9 %d",
                       (int) pid, DOWN_TIMEOUT_MS / 1000, data_dir, (int) pid);
        return POND_EXIT_FAILURE;
    }
    printf ("pond is down\n");
    return POND_EXIT_OK;
}

int
pond_cmd_down (int argc, char *argv [])
{
    pond_cli_t cli;
    pond_cli_init (&cli, "down", pond_cmd_down_help);
    static const struct option options [] = { POND_CLI_COMMON_OPTIONS,
                                              POND_CLI_DATA_OPTION,
                                              { NULL, 0, NULL, 0 } };
    while (pond_cli_getopt (&cli, argc, argv, options) != -1)
        ;
    if (cli.done)
        return cli.exit_code;
    return pond_mesh_down (&cli, cli.eps.data_dir);
}

//  =====================================================================
//  pond status [--json]

#define STATUS_ACTOR_TIMEOUT 2000

void
pond_cmd_status_help (FILE *out)
{
    fprintf (out, "Usage: pond status [--data DIR] [--json]\n"
                  "\n"
                  "Show the mesh in DIR: each process of the supervisor (pid, alive or\n"
                  "not, restarts, uptime), each actor's STATUS from its query socket\n"
                  "(position: the seq of the last event it applied; live or catching\n"
                  "up), and the head of the log (the newest seq stored).\n"
                  "\n"
                  "  --json            one JSON object instead of a table\n"
                  "\n"
                  "Exit status: 0 everything is up, 1 something is down or not running.\n"
                  "\n" POND_CLI_COMMON_HELP);
}

//  Add one process of DIR/supervisor.zpl to processes; false if it is down
static bool
s_status_process (const char *dir, zconfig_t *process, cJSON *processes, int timeout_ms)
{
    const char *name = zconfig_name (process);
    int pid = atoi (zconfig_get (process, "pid", "0"));
    bool alive = pid > 0 && pond_supervisor_alive (pid);
    bool ready = alive && streq (zconfig_get (process, "ready", "false"), "true");
    int64_t started = atoll (zconfig_get (process, "started", "0"));
    cJSON *item = cJSON_CreateObject ();
    cJSON_AddStringToObject (item, "name", name);
    cJSON_AddNumberToObject (item, "pid", pid);
    cJSON_AddBoolToObject (item, "alive", alive);
    cJSON_AddBoolToObject (item, "ready", ready);
    cJSON_AddNumberToObject (item, "restarts", atoi (zconfig_get (process, "restarts", "0")));
    cJSON_AddNumberToObject (item, "uptime_s",
                             alive && started ? (double) (time (NULL) - started) : 0);
    cJSON_AddStringToObject (item, "last_exit", zconfig_get (process, "last_exit", ""));
    bool ok = ready;
    //  An actor answers STATUS on its query socket
    char err [512];
    char path [PATH_MAX + 128];
    snprintf (path, sizeof path, "%s/%s.zpl", dir, name);
    zconfig_t *ready_file = ready && zsys_file_exists (path) ? zconfig_load (path) : NULL;
    bool actor = ready_file && zconfig_locate (ready_file, "actor/query");
    zconfig_destroy (&ready_file);
    if (actor) {
        pond_actor_link_t *link = pond_actor_link_new (dir, name, err, sizeof err);
        char *json = link ? pond_actor_link_status (link, timeout_ms) : NULL;
        cJSON *status = json ? cJSON_Parse (json) : NULL;
        if (status)
            cJSON_AddItemToObject (item, "status", status);
        else {
            cJSON_AddStringToObject (item, "error", link ? pond_actor_link_reason (link) : err);
            ok = false;
        }
        free (json);
        pond_actor_link_destroy (&link);
    }
    cJSON_AddItemToArray (processes, item);
    return ok;
}

//  The table for humans
static void
s_status_print (cJSON *root)
{
    const char *dir = cJSON_GetStringValue (cJSON_GetObjectItem (root, "data"));
    cJSON *supervisor = cJSON_GetObjectItem (root, "supervisor");
    char uptime [32];
    s_duration ((int64_t) cJSON_GetNumberValue (cJSON_GetObjectItem (supervisor, "uptime_s")),
                uptime, sizeof uptime);
    printf ("pond in %s: %s, supervisor pid %d, up %s\n", dir,
            cJSON_GetStringValue (cJSON_GetObjectItem (root, "state")),
            (int) cJSON_GetNumberValue (cJSON_GetObjectItem (supervisor, "pid")), uptime);
    cJSON *head = cJSON_GetObjectItem (root, "head");
    if (cJSON_IsNumber (head))
        printf ("log head: seq %.0f\n", cJSON_GetNumberValue (head));
    else
        printf ("log head: unknown (%s)\n",
                cJSON_GetStringValue (cJSON_GetObjectItem (root, "stats_error")));
    printf ("\n%-15s %-8s %-9s %-8s %-8s %-9s %s\n", "process", "pid", "state", "restarts",
            "uptime", "position", "live");
    cJSON *process;
    cJSON_ArrayForEach (process, cJSON_GetObjectItem (root, "processes")) {
        bool alive = cJSON_IsTrue (cJSON_GetObjectItem (process, "alive"));
        bool ready = cJSON_IsTrue (cJSON_GetObjectItem (process, "ready"));
        s_duration ((int64_t) cJSON_GetNumberValue (cJSON_GetObjectItem (process, "uptime_s")),
                    uptime, sizeof uptime);
        char pid [16] = "-", position [24] = "", live [64] = "";
        if (alive)
            snprintf (pid, sizeof pid, "%d",
                      (int) cJSON_GetNumberValue (cJSON_GetObjectItem (process, "pid")));
        cJSON *status = cJSON_GetObjectItem (process, "status");
        cJSON *error = cJSON_GetObjectItem (process, "error");
        if (status) {
            snprintf (position, sizeof position, "%.0f",
                      cJSON_GetNumberValue (cJSON_GetObjectItem (status, "position")));
            snprintf (live, sizeof live, "%s",
                      cJSON_IsTrue (cJSON_GetObjectItem (status, "live")) ? "yes" : "catching up");
        }
        else if (error)
            snprintf (live, sizeof live, "no answer: %.40s", cJSON_GetStringValue (error));
        const char *last_exit = cJSON_GetStringValue (cJSON_GetObjectItem (process, "last_exit"));
        printf ("%-15s %-8s %-9s %-8.0f %-8s %-9s %s%s%s\n",
                cJSON_GetStringValue (cJSON_GetObjectItem (process, "name")), pid,
                alive ? (ready ? "up" : "starting") : "down",
                cJSON_GetNumberValue (cJSON_GetObjectItem (process, "restarts")),
                alive ? uptime : "-", position, live,
                !alive && last_exit && *last_exit ? "last: " : "",
                !alive && last_exit ? last_exit : "");
    }
}

int
pond_cmd_status (int argc, char *argv [])
{
    pond_cli_t cli;
    pond_cli_init (&cli, "status", pond_cmd_status_help);
    static const struct option options [] = { POND_CLI_COMMON_OPTIONS,
                                              POND_CLI_DATA_OPTION,
                                              { "json", no_argument, NULL, 'j' },
                                              { NULL, 0, NULL, 0 } };
    bool json = false;
    int opt;
    while ((opt = pond_cli_getopt (&cli, argc, argv, options)) != -1)
        if (opt == 'j')
            json = true;
    if (cli.done)
        return cli.exit_code;
    const char *dir = cli.eps.data_dir;
    pid_t pid = pond_supervisor_pid (dir);
    char path [PATH_MAX + 128];
    snprintf (path, sizeof path, "%s/supervisor.zpl", dir);
    zconfig_t *state = pid ? zconfig_load (path) : NULL;
    if (!state) {
        if (json) {
            cJSON *root = cJSON_CreateObject ();
            cJSON_AddStringToObject (root, "data", dir);
            cJSON_AddBoolToObject (root, "running", false);
            char *text = cJSON_PrintUnformatted (root);
            printf ("%s\n", text ? text : "{}");
            free (text);
            cJSON_Delete (root);
        }
        else
            printf ("pond is not running in %s; start it with: pond up --data %s\n", dir, dir);
        return POND_EXIT_FAILURE;
    }
    int timeout = cli.timeout_ms < STATUS_ACTOR_TIMEOUT ? cli.timeout_ms : STATUS_ACTOR_TIMEOUT;
    cJSON *root = cJSON_CreateObject ();
    cJSON_AddStringToObject (root, "data", dir);
    cJSON_AddBoolToObject (root, "running", true);
    cJSON_AddStringToObject (root, "state", zconfig_get (state, "supervisor/state", "?"));
    cJSON *supervisor = cJSON_AddObjectToObject (root, "supervisor");
    cJSON_AddNumberToObject (supervisor, "pid", pid);
    int64_t started = atoll (zconfig_get (state, "supervisor/started", "0"));
    cJSON_AddNumberToObject (supervisor, "uptime_s",
                             started ? (double) (time (NULL) - started) : 0);
    bool ok = streq (zconfig_get (state, "supervisor/state", ""), "up");

    //  The log's head, through the broker
    char err [POND_ERR_SIZE];
    char *stats_json = pond_client_stats (cli.eps.control, timeout, err, sizeof err);
    cJSON *stats = stats_json ? cJSON_Parse (stats_json) : NULL;
    cJSON *head = cJSON_GetObjectItem (cJSON_GetObjectItem (stats, "store"), "head");
    if (cJSON_IsNumber (head))
        cJSON_AddNumberToObject (root, "head", cJSON_GetNumberValue (head));
    else {
        cJSON_AddStringToObject (root, "stats_error", stats ? "the store did not answer" : err);
        ok = false;
    }
    cJSON_Delete (stats);
    free (stats_json);

    cJSON *processes = cJSON_AddArrayToObject (root, "processes");
    zconfig_t *process = zconfig_locate (state, "process");
    for (process = process ? zconfig_child (process) : NULL; process;
         process = zconfig_next (process))
        if (!s_status_process (dir, process, processes, timeout))
            ok = false;
    cJSON_AddBoolToObject (root, "ok", ok);
    if (json) {
        char *text = cJSON_PrintUnformatted (root);
        printf ("%s\n", text);
        free (text);
    }
    else {
        s_status_print (root);
        if (!ok)
            printf ("\nsomething is down: see %s/logs/supervisor.log and pond status again\n", dir);
    }
    cJSON_Delete (root);
    zconfig_destroy (&state);
    return ok ? POND_EXIT_OK : POND_EXIT_FAILURE;
}
