/*  pond_store: the log of pond, on RocksDB. No sockets here.

    The store gives every accepted event a global, gap-free sequence number
    (seq, starting at 1) and writes it, with its indexes, in one synced
    RocksDB WriteBatch per group of events: either the whole group is
    durable (WAL synced) or nothing of it is. Sending an event again with
    the same id is harmless: the store answers with the original seq and
    writes nothing.

    Column families:
        default     meta: "count/NAME" -> events of that name (BE64)
        log         seq (BE64) -> the stored event (encoded, with seq)
        by_name     NAME 0x00 ts (BE64) seq (BE64) -> the stored event (a
                    covering index: a window by names is one Seek per name
                    and then Nexts, with the event right in the entry; an
                    empty value, as stores made before wrote, means "read
                    it from log", which replays still do)
        by_id       id (16 bytes) -> seq (BE64), digest (BE64): a hash of
                    the event without its id and meta, to tell a resend
                    from another event that reuses the id (stores made
                    before hold the seq alone: the event is read instead)
        by_entity   ENTITY 0x00 seq (BE64) -> empty

    pond_cursor reads these through a snapshot; pond_store_server puts the
    store on a socket.
*/
#ifndef POND_STORE_H_INCLUDED
#define POND_STORE_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "pond_event.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _pond_store_t pond_store_t;

//  Counters since the store was opened (events and head are totals).
typedef struct {
    uint64_t events;          //  events in the log
    uint64_t head;            //  newest seq, 0 when empty
    uint64_t batches;         //  write batches committed since open
    uint64_t appended;        //  new events stored since open
    uint64_t dups;            //  events answered as duplicates since open
    uint64_t write_errors;    //  failed write batches since open
} pond_store_stats_t;

//  What the store may hold in memory. RocksDB's defaults (64 MiB per
//  memtable, two per column family) let a store grow past 170 MiB after a
//  million events; these bound it: memtables of all column families
//  together (RocksDB flushes when they reach memtable_mb) and one block
//  cache. The SST files' indexes and bloom filters are held beside them
//  and grow with the log (~2.5 bytes per event).
typedef struct {
    size_t memtable_mb;    //  all memtables together (default 32, at least 4)
    size_t cache_mb;       //  block cache (default 32, at least 1)
} pond_store_memory_t;

#define POND_STORE_MEMTABLE_MB 32
#define POND_STORE_CACHE_MB    32

//  Open or create the store at path (a directory) with the default memory
//  budget. Recovers the head and the per-name counts. Returns NULL, after
//  one log line saying why, if the database cannot be opened (for
//  instance another process holds it).
pond_store_t *
    pond_store_new (const char *path);

//  The same with its own memory budget (NULL: the defaults; a zero field:
//  that field's default).
pond_store_t *
    pond_store_new_sized (const char *path, const pond_store_memory_t *memory);

//  Set one field of memory from text (a number of MiB, least..65536), as
//  given to the option or variable called what. Returns 0, or -1 with
//  the reason in err.
int
    pond_store_memory_parse (size_t *field, const char *text, size_t least, const char *what,
                             char *err, size_t errlen);

//  Fill memory from POND_STORE_MEMTABLE_MB and POND_STORE_CACHE_MB where
//  they are set (unset: the field is left as it is). Returns 0, or -1 with
//  the reason in err.
int
    pond_store_memory_from_env (pond_store_memory_t *memory, char *err, size_t errlen);

//  Close the database; accepts NULL; nulls the caller's pointer. Every
//  pond_cursor made on this store must be destroyed first.
void
    pond_store_destroy (pond_store_t **self_p);

//  Append a group of validated events (seq 0) in one synced WriteBatch
//  (pond_store_prepare, _commit and _finish in one call; no group may be
//  in flight).
//  For each event i: seqs [i] is its seq; dups [i] is true if its id was
//  stored before (or appears earlier in this group), in which case seqs [i]
//  is the original seq and nothing is written for it. If that id was
//  stored for a different event (name, ts, entity, source, causation or
//  data differ), dups [i] is true and seqs [i] is 0: a conflict, nothing
//  written. events [i] may be NULL (an event refused before): seqs [i] 0,
//  dups [i] false. For each new event
//  the event's seq is set and stored [i] is a malloc'd copy of its stored
//  form (caller frees), size in stored_sizes [i]; stored [i] is NULL for a
//  duplicate. stored and stored_sizes may be NULL if not wanted.
//  Returns 0, or -1 if the group could not be written (or an event could
//  not be encoded): then nothing was stored, no output is set, every seq
//  stays 0 and head and counters are as before.
int
    pond_store_append (pond_store_t *self, pond_event_t **events, size_t count, uint64_t *seqs,
                       bool *dups, uint8_t **stored, size_t *stored_sizes);

//  ---------------------------------------------------------------------
//  The same append in two halves, so that one group can be prepared
//  while the one before it syncs (pond_store_server pipelines them):
//
//      prepare   (the preparing thread, one at a time): dedup against the
//                database and against every group prepared but not yet
//                finished, reserve seqs, encode, build the WriteBatch.
//      commit    (any one thread, the groups in the order they were
//                prepared): the synced write, then head and counts move.
//      finish    (the preparing thread, after commit, or instead of it):
//                forget the group's ids; undo it if it was not committed.
//
//  If a commit fails, every group prepared after it holds seqs that will
//  never be: finish the failed group and each later one (undoing them),
//  then prepare them again. Commit refuses a group whose first seq is not
//  head + 1, so a gap can never be written.

typedef struct _pond_store_group_t pond_store_group_t;

//  A group to prepare into, reusable after pond_store_finish. NULL if
//  memory runs out.
pond_store_group_t *
    pond_store_group_new (void);

//  Destroy a group (finished, or never prepared); accepts NULL; nulls the
//  caller's pointer.
void
    pond_store_group_destroy (pond_store_group_t **self_p);

//  Add events to a group: outputs as for pond_store_append (seqs [i],
//  dups [i], stored [i]; the event's seq is set), except that nothing is
//  durable before pond_store_commit, and an id prepared in an unfinished
//  group is a duplicate with that group's seq. May be called many times
//  on one group. Returns 0, or -1 (read or encode error) with nothing of
//  this call prepared: outputs as for a failed pond_store_append.
int
    pond_store_prepare (pond_store_t *self, pond_store_group_t *group, pond_event_t **events,
                        size_t count, uint64_t *seqs, bool *dups, uint8_t **stored,
                        size_t *stored_sizes);

//  Write a prepared group in one synced WriteBatch (with its names' new
//  counts), then move head, counts and stats. Returns 0 (also for a group
//  of duplicates only: nothing to write), or -1 if nothing of it was
//  stored (write error, or not next in seq order).
int
    pond_store_commit (pond_store_t *self, pond_store_group_t *group);

//  After pond_store_commit returned (or instead of it): forget the group's
//  pending ids and make it reusable. A group not committed is undone: its
//  events' seqs go back to 0 and its seqs are free again (the caller still
//  owns and frees the stored copies prepare gave it).
void
    pond_store_finish (pond_store_t *self, pond_store_group_t *group);

//  Check that an event can be stored: valid, no seq yet, and its stored
//  form (with a seq) within POND_EVENT_MAX_SIZE. Returns 0, or -1 with the
//  reason in err.
int
    pond_store_check (pond_event_t *event, char *err, size_t errlen);

//  Read the stored form of the event at seq. Returns a malloc'd buffer
//  (caller frees) with its size in *size_p, or NULL if there is no such
//  event or the read failed.
uint8_t *
    pond_store_get (pond_store_t *self, uint64_t seq, size_t *size_p);

//  Look an id up. Returns its seq, or 0 if it was never stored.
uint64_t
    pond_store_lookup (pond_store_t *self, const uint8_t *id);

//  Newest seq, 0 when the log is empty.
uint64_t
    pond_store_head (pond_store_t *self);

//  Fill stats with the current counters.
void
    pond_store_stats (pond_store_t *self, pond_store_stats_t *stats);

//  Events stored with this name.
uint64_t
    pond_store_name_count (pond_store_t *self, const char *name);

//  The names that have events, sorted. Caller owns return value and must
//  destroy it (the list owns its strings). NULL only if memory runs out.
zlistx_t *
    pond_store_names (pond_store_t *self);

//  The max names with the most events, sorted by name, without copying
//  every name (a log may hold very many); *names_p is set to the number
//  of distinct names. Caller destroys the list. NULL if memory runs out.
zlistx_t *
    pond_store_top_names (pond_store_t *self, size_t max, size_t *names_p);

//  For tests: while set, every write batch fails inside RocksDB (a real
//  RocksDB error, as a full disk would give).
void
    pond_store_set_write_fault (pond_store_t *self, bool fault);

#ifdef __cplusplus
}
#endif

#endif
