/*  pond_view: an actor's own view database (RocksDB), a cache of the log.

    Every actor keeps its state here as JSON documents under string keys
    (e.g. "customer/cust-1"). All changes made while applying one event are
    collected and written in one atomic WriteBatch together with the seq of
    that event (the view's position), so a view never holds half an event
    and never applies an event twice (DESIGN.md invariant 4). Reads made
    while applying an event see that event's own earlier writes.
    The view can be deleted at any time and rebuilt from the log.

    Documents read recently are kept parsed in a small cache (LRU, bounded
    by count and by bytes), written through at commit: an actor that
    touches the same entities again reads them without RocksDB or a JSON
    parse. The cache only ever holds committed documents, so a rolled-back
    event leaves no trace in it; a read returns the same tree it would
    have parsed from the stored text.
*/
#ifndef POND_VIEW_H_INCLUDED
#define POND_VIEW_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _pond_view_t pond_view_t;

//  What a view may hold in memory, in MiB. RocksDB's: memtable_mb per
//  memtable (two at most: one filling, one being flushed) and a block
//  cache of cache_mb (0: none, every read goes to the OS page cache);
//  pond's own: a document cache (parsed trees) of about doc_cache_mb (0:
//  off; see pond_view_set_cache). An actor's peak memory is about
//  2 * memtable_mb + cache_mb + doc_cache_mb plus some 12 MiB of its own
//  and ~16 MiB of shared libraries.
#define POND_VIEW_MEMTABLE_MB  4    //  defaults
#define POND_VIEW_CACHE_MB     8    //  4 made a quack counter's catch-up slower
#define POND_VIEW_DOC_CACHE_MB 4
#define POND_VIEW_MB_MAX       4096    //  largest value of each
typedef struct {
    size_t memtable_mb;     //  1 .. POND_VIEW_MB_MAX
    size_t cache_mb;        //  0 .. POND_VIEW_MB_MAX
    size_t doc_cache_mb;    //  0 .. POND_VIEW_MB_MAX
} pond_view_limits_t;

//  The defaults above.
void
    pond_view_limits_default (pond_view_limits_t *limits);

//  Check limits; returns 0, or -1 with the reason in err.
int
    pond_view_limits_check (const pond_view_limits_t *limits, char *err, size_t errlen);

//  Open (creating if needed) the view database at path with the default
//  limits. Returns NULL, with the reason logged, if it cannot be opened
//  (e.g. locked by another process of the same actor).
pond_view_t *
    pond_view_open (const char *path);

//  As pond_view_open, with these limits (NULL: the defaults). NULL, with
//  the reason logged, also if limits are out of range.
pond_view_t *
    pond_view_open_with (const char *path, const pond_view_limits_t *limits);

//  Close; accepts NULL; nulls the caller's pointer.
void
    pond_view_destroy (pond_view_t **self_p);

//  Delete the database at path entirely (it must not be open). Returns 0,
//  or -1 with the reason logged.
int
    pond_view_drop (const char *path);

//  Seq of the last event applied (0 for a new view).
uint64_t
    pond_view_position (pond_view_t *self);

//  Begin the changes of one event. Writes made with put/delete until
//  commit are staged; reads see them.
void
    pond_view_begin (pond_view_t *self);

//  Write the staged changes and the new position (seq) in one atomic
//  WriteBatch. Returns 0, or -1 (logged) with nothing written; either way
//  the staged changes are gone. Without begin it writes the position
//  alone (the runtime moves it past events the actor does not apply).
int
    pond_view_commit (pond_view_t *self, uint64_t seq);

//  Drop the staged changes.
void
    pond_view_rollback (pond_view_t *self);

//  Read a document: staged value if any, else committed (from the cache
//  if it holds it). Returns a cJSON tree the caller owns (cJSON_Delete),
//  or NULL if absent. The tree is what parsing the document's stored text
//  gives (e.g. raw number items come back as numbers).
cJSON *
    pond_view_get (pond_view_t *self, const char *key);

//  Stage a document write (the view keeps a copy; caller keeps doc) or a
//  delete. Outside begin/commit these write at once (position unchanged).
//  Returns 0, or -1 (logged) if doc cannot be serialized.
int
    pond_view_put (pond_view_t *self, const char *key, const cJSON *doc);
int
    pond_view_delete (pond_view_t *self, const char *key);

//  As pond_view_put, but takes the tree, whatever the outcome, and nulls
//  the caller's pointer: saves a copy of every document an event writes.
int
    pond_view_put_take (pond_view_t *self, const char *key, cJSON **doc_p);

//  Approximate bytes held by the staged changes (to bound a batch). Past
//  POND_VIEW_STAGED_TREES bytes of trees (one event that changes many
//  documents: a recompute), further documents are staged as their
//  printed text, several times smaller than the tree, so that the staged
//  changes of one event cost about their size in the write batch.
#define POND_VIEW_STAGED_TREES (2 * 1024 * 1024)
size_t
    pond_view_staged_bytes (pond_view_t *self);

//  Bound the document cache: at most max_docs documents and about
//  max_bytes bytes (defaults POND_VIEW_CACHE_DOCS and the limits'
//  doc_cache_mb); 0 for either turns the cache off. Evicts what no longer
//  fits.
#define POND_VIEW_CACHE_DOCS 4096
void
    pond_view_set_cache (pond_view_t *self, size_t max_docs, size_t max_bytes);

//  What the cache holds and how it served reads so far.
typedef struct {
    uint64_t hits;         //  reads served from the cache
    uint64_t misses;       //  reads that went to RocksDB
    uint64_t evictions;    //  documents evicted to stay in bounds
    size_t docs;           //  documents held now
    size_t bytes;          //  their approximate size
} pond_view_stats_t;
void
    pond_view_stats (pond_view_t *self, pond_view_stats_t *stats);

//  Call fn for each committed document whose key starts with prefix, in
//  key order. Inside begin/commit the staged changes count: a staged
//  document replaces the committed one, a staged new key is included, a
//  staged delete leaves the key out. fn must not change the view (collect
//  first, then put). fn returns 0 to go on, non-zero to stop. Returns 0
//  or -1.
typedef int (pond_view_fn) (const char *key, const cJSON *doc, void *arg);
int
    pond_view_scan (pond_view_t *self, const char *prefix, pond_view_fn *fn, void *arg);

//  Every committed document and the position as one canonical JSON text
//  {"position": N, "docs": {key: doc, ...}} (keys sorted). Used to compare
//  a live view with its rebuild. Caller frees.
char *
    pond_view_dump (pond_view_t *self);

#ifdef __cplusplus
}
#endif

#endif
