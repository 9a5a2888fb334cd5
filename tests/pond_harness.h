/*  pond_harness: real processes for integration and fault tests.

    Starts pond-store and pond-broker (and any other binary of the build)
    in a fresh temporary data directory on ipc endpoints, waits until they
    are ready, and stops them by pid. Every child is started with
    PR_SET_PDEATHSIG, so even a test that crashes leaves no process behind.
*/
#ifndef POND_HARNESS_H_INCLUDED
#define POND_HARNESS_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <czmq.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Create a fresh directory under /tmp. Caller frees the string.
char *
    pond_harness_tempdir (void);

//  Remove a directory tree. Safe on NULL.
void
    pond_harness_rmtree (const char *path);

//  The end of a test's temporary directory: removed, unless
//  POND_KEEP_TEST_DIR is set (then its path is printed, to look into);
//  frees the string and nulls the caller's pointer. Safe on NULL.
void
    pond_harness_tempdir_done (char **dir_p);

//  Start POND_BIN_DIR/name with the NULL-terminated arguments after it;
//  stdout and stderr go to log_path (appended). Returns the pid or -1.
pid_t
    pond_harness_spawn (const char *name, const char *log_path, ...);

//  Same with an argv array (argv [0] is the binary's name).
pid_t
    pond_harness_spawnv (const char *log_path, char *const argv []);

//  Start POND_BIN_DIR/pond-NAME --data dir (stdout and stderr to
//  dir/NAME.log) and wait up to 10 s until it is ready (dir/NAME.zpl).
//  Returns the pid, or -1 if it did not start or was not ready (then it
//  is stopped).
pid_t
    pond_harness_start_actor (const char *name, const char *dir);

//  Send signal to pid and reap it; after 5 s escalate to SIGKILL.
//  Returns the wait status, or -1 if pid was not ours.
int
    pond_harness_stop (pid_t pid, int signal);

//  Wait until path exists, up to timeout_ms. Returns 0 or -1.
int
    pond_harness_wait_file (const char *path, int timeout_ms);

//  True if pid runs with dir on its command line (a process of the test's
//  data directory, not a recycled pid); false for pid <= 0 or NULL dir.
bool
    pond_harness_pid_runs_in (pid_t pid, const char *dir);

//  A key of DIR/supervisor.zpl, the state `pond up` keeps (e.g.
//  "process/store/pid"); "" if the file or key is absent. Caller frees.
char *
    pond_harness_supervised (const char *dir, const char *key);

//  Every pid the supervisor of dir names, the supervisor's own first,
//  then its processes in start order; returns how many (0 if none).
size_t
    pond_harness_mesh_pids (const char *dir, pid_t *pids, size_t max);

//  Stop the mesh `pond up` runs in data_dir: continue its processes (a
//  test may have stopped one), `pond down`, then SIGKILL any of them still
//  running with dir on its command line, saying so on stderr as who.
void
    pond_harness_mesh_down (const char *data_dir, const char *dir, const char *who);

//  Run a command line through the shell, capturing stdout into a malloc'd
//  string (caller frees) and the exit code into *exit_p.
char *
    pond_harness_run (int *exit_p, const char *format, ...) __attribute__ ((format (printf, 2, 3)));

//  Wait until the file at path contains text, up to timeout_ms (a log
//  line the test waits for instead of sleeping). Returns 0 or -1.
int
    pond_harness_wait_text (const char *path, const char *text, int timeout_ms);

//  A SUB socket on endpoint for topic (and for $HEARTBEAT) that is live:
//  it has received a heartbeat (the broker sends one to each new
//  heartbeat subscriber at once), so every event published after this
//  returns reaches it. NULL if no heartbeat came within timeout_ms.
//  Read it with pond_harness_recv_event. Caller destroys it.
zsock_t *
    pond_harness_sub_live (const char *endpoint, const char *topic, int timeout_ms);

//  The next message on a SUB socket that is not a heartbeat, waiting up
//  to timeout_ms; NULL if none. Caller destroys it.
zmsg_t *
    pond_harness_recv_event (zsock_t *sub, int timeout_ms);

//  The 16 bytes of id as 32 hex digits into key [33], for hash keys.
//  Returns key.
const char *
    pond_harness_id_hex (const uint8_t *id, char *key);

//  A mesh: store and broker on ipc endpoints inside dir; with_store: one
//  process, pond-broker --with-store (store stays 0).
typedef struct {
    char *dir;
    bool with_store;
    pid_t store;
    pid_t broker;
    char ingest [256];
    char pub [256];
    char control [256];
    char store_endpoint [256];
} pond_mesh_t;

//  Start store and broker in a fresh temp dir; NULL if either failed.
pond_mesh_t *
    pond_mesh_start (void);

//  Start pond-broker --with-store alone in a fresh temp dir; NULL if it
//  failed.
pond_mesh_t *
    pond_mesh_start_with_store (void);

//  (Re)start one process of the mesh and wait until it is ready (the
//  broker: until broker.zpl is written; with_store, the store is open by
//  then).
int
    pond_mesh_start_store (pond_mesh_t *self);
int
    pond_mesh_start_broker (pond_mesh_t *self);

//  A test's mesh: CZMQ logging to stderr, then store and broker started;
//  fails the test if either does not start.
pond_mesh_t *
    pond_harness_mesh_up (void);

//  The same with pond-broker --with-store alone.
pond_mesh_t *
    pond_harness_mesh_up_with_store (void);

//  Stop both, remove the directory, free. Accepts NULL.
void
    pond_mesh_destroy (pond_mesh_t **self_p);

#ifdef __cplusplus
}
#endif

#endif
