/*  pond_thread: worker threads block the signals the main thread takes.
    See pond_thread.h.
*/
#include "pond_thread.h"

#include <czmq.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>

int
pond_thread_block_signals (sigset_t *saved)
{
    static const int signals [] = { SIGINT,  SIGTERM, SIGHUP,  SIGQUIT, SIGPIPE,
                                    SIGUSR1, SIGUSR2, SIGALRM, SIGCHLD };
    sigset_t set;
    sigemptyset (&set);
    for (size_t i = 0; i < sizeof signals / sizeof signals [0]; i++)
        sigaddset (&set, signals [i]);
    int rc = pthread_sigmask (SIG_BLOCK, &set, saved);
    if (rc) {
        zsys_error ("cannot block signals in a worker thread: %s", strerror (rc));
        return -1;
    }
    return 0;
}

void
pond_thread_name (const char *name)
{
    char kept [16];
    snprintf (kept, sizeof kept, "%s", name);
    prctl (PR_SET_NAME, kept, 0, 0, 0);    //  only fails for a bad pointer
}
