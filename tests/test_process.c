/*  test_process: unit tests of proto/pond_process, how every pond program
    starts, waits for and stops a child process.

    Children are /bin/sh one-liners, each started with PR_SET_PDEATHSIG so
    none outlives a failed test; every test stops what it started.
*/
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pond_harness.h"
#include "pond_process.h"

static char *s_dir;
static const pond_process_options_t s_options = { .death_signal = SIGKILL };

static void
s_setup (void)
{
    s_dir = pond_harness_tempdir ();
    cr_assert_not_null (s_dir);
}

static void
s_teardown (void)
{
    pond_harness_rmtree (s_dir);
    free (s_dir);
}

//  Start /bin/sh -c script, output to DIR/sh.log
static pid_t
s_sh (const char *script)
{
    char log [512];
    snprintf (log, sizeof log, "%s/sh.log", s_dir);
    char *argv [] = { "sh", "-c", (char *) script, NULL };
    pid_t pid = pond_process_spawn ("/bin/sh", argv, log, &s_options);
    cr_assert_gt (pid, 0, "spawn failed: %s", strerror (errno));
    return pid;
}

TestSuite (process, .init = s_setup, .fini = s_teardown);

Test (process, stop_with_sigterm)
{
    pid_t pid = s_sh ("exec sleep 30");
    int status;
    cr_expect_eq (pond_process_wait_exit (pid, 50, &status), 1, "a sleeping child has not exited");
    int64_t start = zclock_mono ();
    status = pond_process_stop (pid, SIGTERM, 5000);
    cr_assert (WIFSIGNALED (status), "status %d", status);
    cr_expect_eq (WTERMSIG (status), SIGTERM);
    cr_expect_lt (zclock_mono () - start, 2000, "SIGTERM should end sleep at once");
    //  Reaped: it is no child of ours any more
    cr_expect_eq (pond_process_wait_exit (pid, 0, &status), -1);
    cr_expect_eq (pond_process_stop (pid, SIGTERM, 100), -1);
}

Test (process, stop_escalates_to_sigkill)
{
    char ready [512], script [1024];
    snprintf (ready, sizeof ready, "%s/ready", s_dir);
    //  An ignored signal stays ignored across exec
    snprintf (script, sizeof script, "trap '' TERM; touch %s; exec sleep 30", ready);
    pid_t pid = s_sh (script);
    cr_assert_eq (pond_process_wait_file (ready, 5000), 0, "the child did not write %s", ready);
    int64_t start = zclock_mono ();
    int status = pond_process_stop (pid, SIGTERM, 300);
    int64_t took = zclock_mono () - start;
    cr_assert (WIFSIGNALED (status), "status %d", status);
    cr_expect_eq (WTERMSIG (status), SIGKILL, "killed by %d", WTERMSIG (status));
    cr_expect_geq (took, 300, "escalated after %lld ms, before the timeout", (long long) took);
    cr_expect_lt (took, 3000);
}

Test (process, wait_file_times_out)
{
    char path [512];
    snprintf (path, sizeof path, "%s/never", s_dir);
    int64_t start = zclock_mono ();
    cr_expect_eq (pond_process_wait_file (path, 200), -1);
    int64_t took = zclock_mono () - start;
    cr_expect_geq (took, 200);
    cr_expect_lt (took, 2000);
}

Test (process, wait_file_sees_a_late_file)
{
    char path [512], script [1024];
    snprintf (path, sizeof path, "%s/late", s_dir);
    snprintf (script, sizeof script, "sleep 0.2; touch %s; exec sleep 30", path);
    pid_t pid = s_sh (script);
    cr_expect_eq (access (path, F_OK), -1, "the file is not there yet");
    cr_expect_eq (pond_process_wait_file (path, 5000), 0);
    pond_process_stop (pid, SIGTERM, 1000);
}

Test (process, exit_status_and_log)
{
    pid_t pid = s_sh ("echo to-stdout; echo to-stderr >&2; exit 3");
    int status = -1;
    cr_assert_eq (pond_process_wait_exit (pid, 5000, &status), 0);
    cr_assert (WIFEXITED (status), "status %d", status);
    cr_expect_eq (WEXITSTATUS (status), 3);
    char log [512];
    snprintf (log, sizeof log, "%s/sh.log", s_dir);
    cr_expect_eq (pond_harness_wait_text (log, "to-stdout", 0), 0);
    cr_expect_eq (pond_harness_wait_text (log, "to-stderr", 0), 0);
}

Test (process, bad_binary_path)
{
    char log [512];
    snprintf (log, sizeof log, "%s/bad.log", s_dir);
    char *argv [] = { "missing", NULL };
    pond_process_options_t options = { .death_signal = SIGKILL, .who = "test" };
    pid_t pid = pond_process_spawn ("/nonexistent/pond-missing", argv, log, &options);
    cr_assert_gt (pid, 0);
    int status = -1;
    cr_assert_eq (pond_process_wait_exit (pid, 5000, &status), 0);
    cr_assert (WIFEXITED (status), "status %d", status);
    cr_expect_eq (WEXITSTATUS (status), 127);
    cr_expect_eq (pond_harness_wait_text (log, "test: cannot run /nonexistent/pond-missing", 0), 0,
                  "the log should say why");
}

Test (process, unwritable_log_is_an_error)
{
    char *argv [] = { "sh", "-c", "exit 0", NULL };
    errno = 0;
    cr_expect_eq (pond_process_spawn ("/bin/sh", argv, "/nonexistent/dir/x.log", &s_options), -1);
    cr_expect_eq (errno, ENOENT);
}

Test (process, banner_goes_first)
{
    char log [512];
    snprintf (log, sizeof log, "%s/banner.log", s_dir);
    char *argv [] = { "sh", "-c", "exit 0", NULL };
    pond_process_options_t options = { .death_signal = SIGKILL, .banner = "---- hello" };
    pid_t pid = pond_process_spawn ("/bin/sh", argv, log, &options);
    cr_assert_gt (pid, 0);
    int status;
    cr_assert_eq (pond_process_wait_exit (pid, 5000, &status), 0);
    char expected [64];
    snprintf (expected, sizeof expected, "---- hello as pid %d", (int) pid);
    cr_expect_eq (pond_harness_wait_text (log, expected, 0), 0);
}
