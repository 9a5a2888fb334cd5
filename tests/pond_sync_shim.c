/*  pond_sync_shim: an LD_PRELOAD library for pond-store that checks
    invariant 1 ("log first") as the process runs: no APPENDED that
    announces a new event leaves the store before an fdatasync or fsync
    covered every byte written to the WAL so far.

    It counts, per file descriptor, the bytes written (write, pwrite,
    writev, pwritev and their 64-bit twins) to RocksDB's WAL files
    (NNNNNN.log in the database directory; Debian's librocksdb 7.8 writes
    them with write(2) and syncs them with fdatasync), and for each fdatasync or
    fsync that returns 0 on such a descriptor, the count it had when the
    call began: those bytes are on disk. sync_file_range does not count
    (it makes no promise about metadata or the disk's cache). The store
    answers a group only when no commit is in flight (the writer is idle
    while the loop answers), so when the store hands an APPENDED with code
    200 and a new (non-dup) event to ZeroMQ (zmq_send or zmq_msg_send of
    the frame after "APPENDED"), every WAL byte written must be covered.

    Writes its findings to $POND_SYNC_SHIM_LOG (appended): one line per
    violation (the first 20), and a summary line at exit:
        summary appended=N checked=N violations=N wal_writes=N wal_bytes=N syncs=N
    A test reads that file once the store has stopped.
*/
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <inttypes.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zmq.h>

#define FDS_MAX 65536

//  Per descriptor: is it a WAL file, bytes written, bytes known synced
static bool s_wal [FDS_MAX];
static uint64_t s_written [FDS_MAX];
static uint64_t s_synced [FDS_MAX];
static uint64_t s_appended, s_checked, s_violations, s_wal_writes, s_wal_bytes, s_syncs;
static __thread bool s_body_next;    //  the next frame sent is an APPENDED body

//  ---------------------------------------------------------------------
//  Report

static void
s_log (const char *format, ...)
{
    const char *path = getenv ("POND_SYNC_SHIM_LOG");
    if (!path)
        return;
    char line [512];
    va_list args;
    va_start (args, format);
    int size = vsnprintf (line, sizeof line, format, args);
    va_end (args);
    int fd = open (path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
        ssize_t rc = write (fd, line, size > (int) sizeof line ? sizeof line : (size_t) size);
        (void) rc;    //  nothing better to do if the report cannot be written
        close (fd);
    }
}

__attribute__ ((destructor)) static void
s_summary (void)
{
    s_log ("summary appended=%" PRIu64 " checked=%" PRIu64 " violations=%" PRIu64
           " wal_writes=%" PRIu64 " wal_bytes=%" PRIu64 " syncs=%" PRIu64 "\n",
           __atomic_load_n (&s_appended, __ATOMIC_SEQ_CST),
           __atomic_load_n (&s_checked, __ATOMIC_SEQ_CST),
           __atomic_load_n (&s_violations, __ATOMIC_SEQ_CST),
           __atomic_load_n (&s_wal_writes, __ATOMIC_SEQ_CST),
           __atomic_load_n (&s_wal_bytes, __ATOMIC_SEQ_CST),
           __atomic_load_n (&s_syncs, __ATOMIC_SEQ_CST));
}

//  ---------------------------------------------------------------------
//  The WAL: opens, writes, syncs, closes

static void *
s_real (const char *name)
{
    void *fn = dlsym (RTLD_NEXT, name);
    if (!fn) {
        fprintf (stderr, "pond_sync_shim: no %s to wrap\n", name);
        abort ();
    }
    return fn;
}

//  RocksDB's WAL files: digits then ".log" (its info log is "LOG")
static bool
s_is_wal_path (const char *path)
{
    const char *name = path ? strrchr (path, '/') : NULL;
    name = name ? name + 1 : path;
    size_t len = name ? strlen (name) : 0;
    if (len <= 4 || strcmp (name + len - 4, ".log"))
        return false;
    for (size_t i = 0; i < len - 4; i++)
        if (name [i] < '0' || name [i] > '9')
            return false;
    return true;
}

static int
s_opened (int fd, const char *path)
{
    if (fd >= 0 && fd < FDS_MAX) {
        __atomic_store_n (&s_written [fd], 0, __ATOMIC_SEQ_CST);
        __atomic_store_n (&s_synced [fd], 0, __ATOMIC_SEQ_CST);
        __atomic_store_n (&s_wal [fd], s_is_wal_path (path), __ATOMIC_SEQ_CST);
    }
    return fd;
}

static ssize_t
s_wrote (int fd, ssize_t size)
{
    if (size > 0 && fd >= 0 && fd < FDS_MAX && __atomic_load_n (&s_wal [fd], __ATOMIC_SEQ_CST)) {
        __atomic_add_fetch (&s_written [fd], (uint64_t) size, __ATOMIC_SEQ_CST);
        __atomic_add_fetch (&s_wal_writes, 1, __ATOMIC_SEQ_CST);
        __atomic_add_fetch (&s_wal_bytes, (uint64_t) size, __ATOMIC_SEQ_CST);
    }
    return size;
}

//  A sync of fd that began when written was the count, and returned rc
static int
s_synced_fd (int fd, uint64_t written, int rc)
{
    if (rc == 0 && fd >= 0 && fd < FDS_MAX && __atomic_load_n (&s_wal [fd], __ATOMIC_SEQ_CST)) {
        uint64_t old = __atomic_load_n (&s_synced [fd], __ATOMIC_SEQ_CST);
        while (old < written
               && !__atomic_compare_exchange_n (&s_synced [fd], &old, written, false,
                                                __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            ;
        __atomic_add_fetch (&s_syncs, 1, __ATOMIC_SEQ_CST);
    }
    return rc;
}

static uint64_t
s_written_now (int fd)
{
    return fd >= 0 && fd < FDS_MAX ? __atomic_load_n (&s_written [fd], __ATOMIC_SEQ_CST) : 0;
}

#define OPEN_WRAPPER(name) \
    int name (const char *path, int flags, ...) \
    { \
        static int (*real) (const char *, int, ...); \
        if (!real) \
            real = (int (*) (const char *, int, ...)) s_real (#name); \
        mode_t mode = 0; \
        if (flags & (O_CREAT | O_TMPFILE)) { \
            va_list args; \
            va_start (args, flags); \
            mode = (mode_t) va_arg (args, int); \
            va_end (args); \
        } \
        return s_opened (real (path, flags, mode), path); \
    }
OPEN_WRAPPER (open)
OPEN_WRAPPER (open64)

#define OPENAT_WRAPPER(name) \
    int name (int dirfd, const char *path, int flags, ...) \
    { \
        static int (*real) (int, const char *, int, ...); \
        if (!real) \
            real = (int (*) (int, const char *, int, ...)) s_real (#name); \
        mode_t mode = 0; \
        if (flags & (O_CREAT | O_TMPFILE)) { \
            va_list args; \
            va_start (args, flags); \
            mode = (mode_t) va_arg (args, int); \
            va_end (args); \
        } \
        return s_opened (real (dirfd, path, flags, mode), path); \
    }
OPENAT_WRAPPER (openat)
OPENAT_WRAPPER (openat64)

int
close (int fd)
{
    static int (*real) (int);
    if (!real)
        real = (int (*) (int)) s_real ("close");
    if (fd >= 0 && fd < FDS_MAX)
        __atomic_store_n (&s_wal [fd], false, __ATOMIC_SEQ_CST);
    return real (fd);
}

ssize_t
write (int fd, const void *buf, size_t count)
{
    static ssize_t (*real) (int, const void *, size_t);
    if (!real)
        real = (ssize_t (*) (int, const void *, size_t)) s_real ("write");
    return s_wrote (fd, real (fd, buf, count));
}

#define PWRITE_WRAPPER(name, off_type) \
    ssize_t name (int fd, const void *buf, size_t count, off_type offset) \
    { \
        static ssize_t (*real) (int, const void *, size_t, off_type); \
        if (!real) \
            real = (ssize_t (*) (int, const void *, size_t, off_type)) s_real (#name); \
        return s_wrote (fd, real (fd, buf, count, offset)); \
    }
PWRITE_WRAPPER (pwrite, off_t)
PWRITE_WRAPPER (pwrite64, off64_t)

ssize_t
writev (int fd, const struct iovec *iov, int iovcnt)
{
    static ssize_t (*real) (int, const struct iovec *, int);
    if (!real)
        real = (ssize_t (*) (int, const struct iovec *, int)) s_real ("writev");
    return s_wrote (fd, real (fd, iov, iovcnt));
}

#define PWRITEV_WRAPPER(name, off_type) \
    ssize_t name (int fd, const struct iovec *iov, int iovcnt, off_type offset) \
    { \
        static ssize_t (*real) (int, const struct iovec *, int, off_type); \
        if (!real) \
            real = (ssize_t (*) (int, const struct iovec *, int, off_type)) s_real (#name); \
        return s_wrote (fd, real (fd, iov, iovcnt, offset)); \
    }
PWRITEV_WRAPPER (pwritev, off_t)
PWRITEV_WRAPPER (pwritev64, off64_t)

#define SYNC_WRAPPER(name) \
    int name (int fd) \
    { \
        static int (*real) (int); \
        if (!real) \
            real = (int (*) (int)) s_real (#name); \
        uint64_t written = s_written_now (fd); \
        return s_synced_fd (fd, written, real (fd)); \
    }
SYNC_WRAPPER (fdatasync)
SYNC_WRAPPER (fsync)

//  ---------------------------------------------------------------------
//  The store's replies

//  Does this APPENDED body (msgpack {bid, code, reason, seqs, dups})
//  announce a new event: code 200 and a dup that is false?
static bool
s_announces_new (const void *data, size_t size)
{
    msgpack_unpacked result;
    msgpack_unpacked_init (&result);
    bool fresh = false;
    if (msgpack_unpack_next (&result, (const char *) data, size, NULL) == MSGPACK_UNPACK_SUCCESS
        && result.data.type == MSGPACK_OBJECT_MAP) {
        uint64_t code = 0;
        const msgpack_object *dups = NULL;
        for (uint32_t i = 0; i < result.data.via.map.size; i++) {
            const msgpack_object_kv *kv = &result.data.via.map.ptr [i];
            if (kv->key.type != MSGPACK_OBJECT_STR)
                continue;
            if (kv->key.via.str.size == 4 && memcmp (kv->key.via.str.ptr, "code", 4) == 0
                && kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                code = kv->val.via.u64;
            if (kv->key.via.str.size == 4 && memcmp (kv->key.via.str.ptr, "dups", 4) == 0
                && kv->val.type == MSGPACK_OBJECT_ARRAY)
                dups = &kv->val;
        }
        for (uint32_t i = 0; code == 200 && dups && i < dups->via.array.size; i++)
            if (dups->via.array.ptr [i].type == MSGPACK_OBJECT_BOOLEAN
                && !dups->via.array.ptr [i].via.boolean)
                fresh = true;
    }
    msgpack_unpacked_destroy (&result);
    return fresh;
}

//  Check one frame the store sends
static void
s_sending (const void *data, size_t size)
{
    if (s_body_next) {
        s_body_next = false;
        __atomic_add_fetch (&s_appended, 1, __ATOMIC_SEQ_CST);
        if (!s_announces_new (data, size))
            return;
        __atomic_add_fetch (&s_checked, 1, __ATOMIC_SEQ_CST);
        for (int fd = 0; fd < FDS_MAX; fd++) {
            if (!__atomic_load_n (&s_wal [fd], __ATOMIC_SEQ_CST))
                continue;
            uint64_t written = __atomic_load_n (&s_written [fd], __ATOMIC_SEQ_CST);
            uint64_t synced = __atomic_load_n (&s_synced [fd], __ATOMIC_SEQ_CST);
            if (synced < written && __atomic_add_fetch (&s_violations, 1, __ATOMIC_SEQ_CST) <= 20)
                s_log ("violation: APPENDED sent with WAL fd %d at %" PRIu64 " bytes written, "
                       "%" PRIu64 " synced\n",
                       fd, written, synced);
        }
    }
    else if (size == 8 && memcmp (data, "APPENDED", 8) == 0)
        s_body_next = true;
}

int
zmq_send (void *socket, const void *buf, size_t len, int flags)
{
    static int (*real) (void *, const void *, size_t, int);
    if (!real)
        real = (int (*) (void *, const void *, size_t, int)) s_real ("zmq_send");
    s_sending (buf, len);
    return real (socket, buf, len, flags);
}

int
zmq_msg_send (zmq_msg_t *msg, void *socket, int flags)
{
    static int (*real) (zmq_msg_t *, void *, int);
    if (!real)
        real = (int (*) (zmq_msg_t *, void *, int)) s_real ("zmq_msg_send");
    s_sending (zmq_msg_data (msg), zmq_msg_size (msg));
    return real (msg, socket, flags);
}

int
zmq_sendmsg (void *socket, zmq_msg_t *msg, int flags)
{
    static int (*real) (void *, zmq_msg_t *, int);
    if (!real)
        real = (int (*) (void *, zmq_msg_t *, int)) s_real ("zmq_sendmsg");
    s_sending (zmq_msg_data (msg), zmq_msg_size (msg));
    return real (socket, msg, flags);
}
