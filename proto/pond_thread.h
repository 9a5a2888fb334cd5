/*  pond_thread: what every worker thread of pond does first.

    Only a process's main thread takes signals. A signal sent to a process
    goes to any thread that does not block it; CZMQ's SIGINT/SIGTERM
    handler is installed without SA_RESTART, so a worker thread that took
    one would see its blocking call fail with EINTR, and its owner would
    wait for an answer that never comes, or take the thread's exit for
    one. Each worker thread (zactor or pthread) therefore blocks the
    termination signals as its first act; the main thread sees them, sets
    zsys_interrupted, and ends its workers with $TERM.
*/
#ifndef POND_THREAD_H_INCLUDED
#define POND_THREAD_H_INCLUDED

#include <signal.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Block SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1, SIGUSR2,
//  SIGALRM and SIGCHLD in the calling thread (pthread_sigmask): the
//  process's main thread takes them. Call it first in every actor
//  function and thread body. The main thread may call it around a call
//  that starts threads it does not own (a library's thread pool), which
//  inherit the mask, then restore saved (if not NULL, the mask before)
//  with pthread_sigmask (SIG_SETMASK, saved, NULL). Returns 0, or -1
//  (logged) if the mask could not be set.
int
    pond_thread_block_signals (sigset_t *saved);

//  Name the calling thread (at most 15 characters are kept), so that top
//  -H, perf and gdb tell a process's threads apart: with pond-broker
//  --with-store the store's threads share the broker's process.
void
    pond_thread_name (const char *name);

#ifdef __cplusplus
}
#endif

#endif
