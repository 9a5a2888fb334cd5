/*  pond_bench_mesh: the mesh a pond-bench scenario runs against.

    Either pond-store and pond-broker started by us (from the directory
    pond-bench lives in) on ipc endpoints inside a fresh data directory,
    or in a --data directory that is kept; or a mesh already running in a
    data directory (pond up), of which we start and stop nothing. Gives
    the scenarios its endpoints, its STATS counters and the CPU and RSS
    of the processes we started, from /proc.
*/
#ifndef POND_BENCH_MESH_H_INCLUDED
#define POND_BENCH_MESH_H_INCLUDED

#include <stdbool.h>

typedef struct _pond_bench_mesh_t pond_bench_mesh_t;

//  A process's figures from /proc
typedef struct {
    long hwm_kb;           //  VmHWM: peak resident set
    long rss_kb;           //  VmRSS: resident set now
    double cpu_s;          //  utime + stime
    long long write_kb;    //  bytes it caused to be written to disk
} pond_bench_proc_t;

//  Make a fresh directory under parent (or use data, kept), start
//  pond-store then pond-broker in it (with_store: only pond-broker
//  --with-store, the store in its process), wait until both are ready and
//  the broker sees the store. Returns NULL (reason printed) if anything
//  failed; nothing is left running then. Caller owns return value and
//  must destroy it.
pond_bench_mesh_t *
    pond_bench_mesh_new (const char *parent, const char *data, bool keep, bool with_store);

//  Work on the running mesh of data directory dir (pond up): nothing is
//  started or stopped. Returns NULL (reason printed) if it is not there.
//  Caller owns return value and must destroy it.
pond_bench_mesh_t *
    pond_bench_mesh_attach (const char *dir);

//  Stop what we started (SIGTERM, then SIGKILL after 10 s; by pid),
//  reporting a process that died on us, and remove the directory we made
//  unless it is kept. Accepts NULL; sets *self_p to NULL.
void
    pond_bench_mesh_destroy (pond_bench_mesh_t **self_p);

//  Returns true if store and broker both still run (always, attached); a
//  dead one is reaped, reported with its last log lines, and forgotten.
bool
    pond_bench_mesh_alive (pond_bench_mesh_t *self);

//  Ask STATS for one counter, section/key (e.g. "store", "batches"); true
//  counts as 1, false as 0. Returns -1 if STATS or the counter is missing.
long long
    pond_bench_mesh_stat (pond_bench_mesh_t *self, const char *section, const char *key);

//  Returns the store's synced WriteBatches (one WAL sync each) once it
//  has stored at least appended events; -1 if unknown.
long long
    pond_bench_mesh_commits (pond_bench_mesh_t *self, long long appended);

//  Sample the /proc figures of store and of broker (each may be NULL):
//  peak and current RSS, CPU seconds, disk writes; zeros for a process we
//  did not start (attached) and for the store with_store (the broker's
//  figures then cover both).
void
    pond_bench_mesh_sample (pond_bench_mesh_t *self, pond_bench_proc_t *store,
                            pond_bench_proc_t *broker);

//  Returns the broker's ingest endpoint (producers publish there).
const char *
    pond_bench_mesh_ingest (pond_bench_mesh_t *self);

//  Returns the broker's control endpoint (replays, STATS).
const char *
    pond_bench_mesh_control (pond_bench_mesh_t *self);

//  Returns the broker's pub endpoint (subscribers).
const char *
    pond_bench_mesh_pub (pond_bench_mesh_t *self);

//  Returns the store's own endpoint (it answers PING); empty if attached.
const char *
    pond_bench_mesh_store_endpoint (pond_bench_mesh_t *self);

//  True if the store runs in the broker's process (pond-broker --with-store).
bool
    pond_bench_mesh_with_store (pond_bench_mesh_t *self);

//  Returns the data directory.
const char *
    pond_bench_mesh_dir (pond_bench_mesh_t *self);

#endif
