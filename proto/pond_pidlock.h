/*  pond_pidlock: one process of a kind per data directory.

    A lock file (DIR/broker.lock, DIR/store.lock, DIR/supervisor.lock)
    holds a POSIX record lock (fcntl F_SETLK, write, whole file) for as
    long as its process lives: the kernel drops it when the process ends,
    however it ends, so a lock is never stale. A second process that
    finds it taken learns the holder's pid from the kernel (F_GETLK) and
    can say who holds it. Every process of a mesh that owns something of
    the data directory (endpoints, the log, the supervision) takes its
    lock before touching anything.
*/
#ifndef POND_PIDLOCK_H_INCLUDED
#define POND_PIDLOCK_H_INCLUDED

#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _pond_pidlock_t pond_pidlock_t;

//  Take the lock at path (created if missing), trying attempts times 100
//  ms apart (at least once). Returns the lock, held until destroyed or
//  the process ends; or NULL with, in *holder_p, the pid that holds it
//  (0 if the file could not be opened or locked for another reason, then
//  err says why). The file is not inherited by children (O_CLOEXEC).
pond_pidlock_t *
    pond_pidlock_new (const char *path, int attempts, pid_t *holder_p, char *err, size_t errlen);

//  Release the lock; accepts NULL; nulls the caller's pointer.
void
    pond_pidlock_destroy (pond_pidlock_t **self_p);

//  The pid of the process that holds the lock at path, or 0 if none does
//  (or there is no such file). Takes nothing.
pid_t
    pond_pidlock_holder (const char *path);

#ifdef __cplusplus
}
#endif

#endif
