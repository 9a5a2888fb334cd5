/*  pond_pidlock: one process of a kind per data directory. See
    pond_pidlock.h.
*/
#include "pond_pidlock.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

struct _pond_pidlock_t {
    int fd;
};

//  The pid holding a write lock on the whole of fd, or 0
static pid_t
s_holder (int fd)
{
    struct flock holder = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
    if (fcntl (fd, F_GETLK, &holder) || holder.l_type == F_UNLCK || holder.l_pid <= 0)
        return 0;
    return holder.l_pid;
}

pond_pidlock_t *
pond_pidlock_new (const char *path, int attempts, pid_t *holder_p, char *err, size_t errlen)
{
    assert (path);
    assert (holder_p);
    *holder_p = 0;
    int fd;
    do
        fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        snprintf (err, errlen, "cannot open %s: %s", path, strerror (errno));
        return NULL;
    }
    struct flock lock = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
    //  Someone may be peeking (F_GETLK takes no lock), or the holder just
    //  ending: a few tries, a moment apart
    for (int attempt = 0; attempt < (attempts > 0 ? attempts : 1); attempt++) {
        if (attempt)
            zclock_sleep (100);
        int rc;
        do
            rc = fcntl (fd, F_SETLK, &lock);
        while (rc && errno == EINTR);
        if (rc == 0) {
            pond_pidlock_t *self = (pond_pidlock_t *) zmalloc (sizeof (pond_pidlock_t));
            if (!self) {
                close (fd);
                snprintf (err, errlen, "out of memory");
                return NULL;
            }
            //  The pid in the file too, for a human who looks
            char text [32];
            int size = snprintf (text, sizeof text, "%d\n", (int) getpid ());
            if (ftruncate (fd, 0) == 0 && write (fd, text, (size_t) size) != size)
                zsys_debug ("pond_pidlock: cannot write the pid into %s", path);
            self->fd = fd;
            return self;
        }
        if (errno != EAGAIN && errno != EACCES) {
            snprintf (err, errlen, "cannot lock %s: %s", path, strerror (errno));
            close (fd);
            return NULL;
        }
    }
    *holder_p = s_holder (fd);
    snprintf (err, errlen, "%s is held by pid %d", path, (int) *holder_p);
    close (fd);
    return NULL;
}

void
pond_pidlock_destroy (pond_pidlock_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        pond_pidlock_t *self = *self_p;
        close (self->fd);    //  drops the lock
        free (self);
        *self_p = NULL;
    }
}

pid_t
pond_pidlock_holder (const char *path)
{
    assert (path);
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    pid_t pid = s_holder (fd);
    close (fd);
    return pid;
}
