/*  pond_process: start a child process, wait for it, stop it by pid.
    See pond_process.h.
*/
#define _GNU_SOURCE
#include "pond_process.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

//  Polling step of the waits, msecs
#define STEP_MS 10

static int64_t
s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
s_sleep_ms (int ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep (&ts, NULL);
}

//  In the child, between fork and exec: only async-signal-safe calls
static void
s_child (const char *path, char *const argv [], int log_fd, pid_t parent,
         const pond_process_options_t *options)
{
    if (options->new_group)
        setpgid (0, 0);
    if (options->death_signal) {
        prctl (PR_SET_PDEATHSIG, options->death_signal);
        if (getppid () != parent)
            _exit (127);    //  The parent died before prctl
    }
    if (options->null_stdin) {
        int null_fd = open ("/dev/null", O_RDONLY);
        if (null_fd >= 0) {
            dup2 (null_fd, 0);
            close (null_fd);
        }
    }
    if (log_fd <= 2)
        fcntl (log_fd, F_SETFD, 0);    //  dup2 onto itself keeps O_CLOEXEC
    int out_fd = options->stdout_fd > 0 ? options->stdout_fd : log_fd;
    int err_fd = options->stderr_fd > 0 ? options->stderr_fd : log_fd;
    dup2 (out_fd, 1);
    if (!options->inherit_stderr)
        dup2 (err_fd, 2);
    if (options->reset_signals) {
        signal (SIGPIPE, SIG_DFL);
        signal (SIGHUP, SIG_DFL);
        sigset_t none;
        sigemptyset (&none);
        sigprocmask (SIG_SETMASK, &none, NULL);
    }
    if (options->banner)
        dprintf (2, "%s as pid %d\n", options->banner, (int) getpid ());
    execv (path, argv);
    dprintf (2, "%s%scannot run %s: %s\n", options->who ? options->who : "",
             options->who ? ": " : "", path, strerror (errno));
    _exit (127);
}

pid_t
pond_process_spawn (const char *path, char *const argv [], const char *log_path,
                    const pond_process_options_t *options)
{
    pond_process_options_t none = { 0 };
    if (!options)
        options = &none;
    //  Opened here, so a log we cannot write is the caller's error to report
    int log_fd = open (log_path ? log_path : "/dev/null", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                       0644);
    if (log_fd < 0)
        return -1;
    fflush (NULL);    //  Or the child would write our buffers too
    pid_t parent = getpid ();
    pid_t pid = fork ();
    if (pid == 0)
        s_child (path, argv, log_fd, parent, options);
    int saved = errno;
    close (log_fd);
    errno = saved;
    return pid < 0 ? -1 : pid;
}

int
pond_process_wait_exit (pid_t pid, int timeout_ms, int *status_p)
{
    if (pid <= 0)
        return -1;
    int status = 0;
    pid_t rc;
    if (timeout_ms < 0) {
        while ((rc = waitpid (pid, &status, 0)) == -1 && errno == EINTR)
            ;    //  A signal is not the child's end
    }
    else {
        int64_t deadline = s_now_ms () + timeout_ms;
        while ((rc = waitpid (pid, &status, WNOHANG)) == 0 || (rc == -1 && errno == EINTR)) {
            if (rc == 0 && s_now_ms () >= deadline)
                return 1;
            if (rc == 0)
                s_sleep_ms (STEP_MS);
        }
    }
    if (rc != pid)
        return -1;
    if (status_p)
        *status_p = status;
    return 0;
}

int
pond_process_stop (pid_t pid, int signal, int timeout_ms)
{
    if (pid <= 0)
        return -1;
    kill (pid, signal);
    int status;
    int rc = pond_process_wait_exit (pid, timeout_ms, &status);
    if (rc == 1) {
        kill (pid, SIGKILL);
        rc = pond_process_wait_exit (pid, -1, &status);
    }
    return rc == 0 ? status : -1;
}

int
pond_process_wait_file (const char *path, int timeout_ms)
{
    int64_t deadline = s_now_ms () + timeout_ms;
    while (access (path, F_OK)) {
        if (s_now_ms () >= deadline)
            return -1;
        s_sleep_ms (STEP_MS);
    }
    return 0;
}
