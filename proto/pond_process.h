/*  pond_process: start a child process, wait for it, stop it by pid.

    What the test harness, pond-bench, the supervisor and the CLI share
    when they run another program: fork and exec with the output sent to a
    log file (or to given descriptors), optionally killed when we die
    (PR_SET_PDEATHSIG); wait for a ready file or for the child's exit with
    a deadline; stop it with a signal, then SIGKILL after a timeout, and
    reap it. Every wait retries EINTR. Policy (restarts, backoff, messages)
    stays with the caller: these functions report through their return
    value and errno, they print nothing.
*/
#ifndef POND_PROCESS_H_INCLUDED
#define POND_PROCESS_H_INCLUDED

#include <stdbool.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

//  How to start a child. All zero (or a NULL pointer) means: no death
//  signal, same process group, stdin inherited, stdout and stderr to the
//  log (or /dev/null without one).
typedef struct {
    int death_signal;       //  PR_SET_PDEATHSIG with it; 0: none
    bool new_group;         //  Own process group (Ctrl-C reaches only us)
    bool null_stdin;        //  stdin from /dev/null
    bool reset_signals;     //  SIGPIPE and SIGHUP default, nothing blocked
    int stdout_fd;          //  If > 0: stdout goes there instead of the log
    int stderr_fd;          //  If > 0: stderr goes there instead of the log
    bool inherit_stderr;    //  stderr stays ours (no log, no stderr_fd)
    const char *banner;     //  Written to the child's stderr before exec,
                            //  followed by " as pid N"
    const char *who;        //  Prefix of the "cannot run" line on failure
} pond_process_options_t;

//  Start path with argv (argv [0] is the name the child sees, NULL-
//  terminated). Output is appended to log_path if not NULL. Returns the
//  pid, or -1 with errno set if the log could not be opened or fork
//  failed (the caller says why). If exec fails the child writes why to
//  its stderr and exits 127.
pid_t
    pond_process_spawn (const char *path, char *const argv [], const char *log_path,
                        const pond_process_options_t *options);

//  Wait up to timeout_ms (< 0: for ever) for our child pid to exit and
//  reap it, its wait status in *status_p. Returns 0 once reaped, 1 if it
//  still runs at the deadline, -1 if pid is not a child of ours.
int
    pond_process_wait_exit (pid_t pid, int timeout_ms, int *status_p);

//  Send signal to our child pid and wait up to timeout_ms for it to exit;
//  then SIGKILL it and wait until it is gone. Always reaps. Returns its
//  wait status, or -1 if pid is not a child of ours.
int
    pond_process_stop (pid_t pid, int signal, int timeout_ms);

//  Wait until path exists, up to timeout_ms. Returns 0 or -1.
int
    pond_process_wait_file (const char *path, int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif
