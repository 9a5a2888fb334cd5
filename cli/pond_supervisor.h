/*  pond_supervisor: keeps the processes of a mesh running.

    The supervisor of `pond up` starts every process of the mesh (by
    default pond-store, pond-broker, then the four actors), each as its own
    process from the directory of the `pond` binary, in order: a process
    starts once all those before it are ready (DIR/NAME.zpl written, with
    its own pid). Each logs to DIR/logs/NAME.log. When a process dies the
    supervisor restarts it after a back-off (100 ms, doubling to 5 s, reset
    after 30 s of good life) and says so in DIR/logs/supervisor.log. On
    SIGTERM or SIGINT it stops them all in reverse order (actors, broker,
    store), each with SIGTERM, then SIGKILL after a timeout.

    What it is doing is kept in DIR/supervisor.zpl (rewritten atomically on
    every change):

        supervisor
            pid = 1234
            state = "up"                starting, up, stopping or failed
            started = 1717236000        Unix time, seconds
        process
            store
                pid = 1235              0 while waiting to restart
                ready = "true"
                restarts = 0
                started = 1717236000
                last_exit = ""          "exit code 1", "exit signal 9"
                log = "/data/logs/store.log"

    While it runs it holds a write lock (fcntl) on DIR/supervisor.lock, so
    there is one supervisor per data directory and pond_supervisor_pid can
    tell a live supervisor from a stale file.

    The process list comes from a ZPL config (defaults built in):

        process
            store
                command = "pond-store"      a binary next to pond, or a path
                args = "--verbose"          after "--data DIR"; split on blanks
                ready = "store.zpl"         default NAME.zpl; "" = none
        supervisor
            ready_timeout_ms = 60000        per start
            stop_timeout_ms = 5000          SIGTERM, then SIGKILL
            backoff_min_ms = 100
            backoff_max_ms = 5000
            stable_ms = 30000               good life that resets the back-off
            start_attempts = 3              failures before `pond up` gives up

    A `process` section in the file replaces the whole default list.
*/
#ifndef POND_SUPERVISOR_H_INCLUDED
#define POND_SUPERVISOR_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <sys/types.h>

#define POND_SUPERVISOR_NAME "pond-supervisor"    //  its /proc/PID/comm

typedef struct _pond_supervisor_t pond_supervisor_t;

//  Create a supervisor of the mesh in data_dir (an absolute path) with the
//  default processes, whose binaries are in bin_dir. Nothing is started.
//  Returns NULL if memory ran out or a path is too long.
pond_supervisor_t *
    pond_supervisor_new (const char *data_dir, const char *bin_dir);

//  Destroy; accepts NULL; nulls the caller's pointer.
void
    pond_supervisor_destroy (pond_supervisor_t **self_p);

//  Apply a config tree (see above). Returns 0, or -1 with the reason (an
//  unknown key, a missing command, a bad number) in err.
int
    pond_supervisor_configure (pond_supervisor_t *self, zconfig_t *config, char *err,
                               size_t errlen);

//  Run the mesh with CURVE keys from directory keys (an absolute path; NULL
//  or "" = local mode): every process gets "--keys KEYS" after "--data
//  DIR", and every one but store and broker also "--as NAME", its process
//  name (so actor quack-counter uses key quack-counter). Returns 0, or -1
//  if the path is too long.
int
    pond_supervisor_set_keys (pond_supervisor_t *self, const char *keys);

//  With to_stderr, every process's output (stdout and stderr) goes to the
//  supervisor's stderr instead of DIR/logs/NAME.log: for a supervisor run
//  by systemd, whose stderr is the journal. Each line still names its
//  process ("I: (pond-broker) ..."), and the banner line before each
//  start says which pid is which.
void
    pond_supervisor_set_log_stderr (pond_supervisor_t *self, bool to_stderr);

//  Check that every process's binary exists and is executable. Returns 0,
//  or -1 with what is missing in err.
int
    pond_supervisor_check (pond_supervisor_t *self, char *err, size_t errlen);

//  Number of processes, and the name of the i-th, in start order.
size_t
    pond_supervisor_size (pond_supervisor_t *self);
const char *
    pond_supervisor_name (pond_supervisor_t *self, size_t index);

//  Supervise until SIGTERM or SIGINT: take the lock, start everything,
//  restart what dies, then stop everything. Blocks SIGTERM, SIGINT,
//  SIGCHLD and SIGHUP in the calling process (their children get a clean
//  mask). If notify_fd >= 0, writes lines to it: "pid N" at once, "ready
//  NAME PID" as each process is ready, then "up", or "fail NAME REASON" if
//  the mesh could not start (a process failed start_attempts times before
//  the mesh was up once); the supervisor then stops what it started. With
//  echo, log lines also go to stderr. Returns 0 after a clean stop, or 1
//  (lock taken by another supervisor, start failed, cannot write DIR).
int
    pond_supervisor_run (pond_supervisor_t *self, int notify_fd, bool echo);

//  The pid of the supervisor running in data_dir: the holder of the lock
//  on DIR/supervisor.lock, if its /proc/PID/comm says it is a supervisor.
//  Returns the pid, or 0 if none runs there.
pid_t
    pond_supervisor_pid (const char *data_dir);

//  True if pid names a live process (not a zombie).
bool
    pond_supervisor_alive (pid_t pid);

#endif
