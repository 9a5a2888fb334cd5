/*  pond_store: the log of pond on RocksDB: sequence numbers, indexes,
    idempotent group commit. See pond_store.h for the key layout.

    The invariants kept here are the heart of pond (DESIGN.md): an event
    is acknowledged only once its WriteBatch is synced to the WAL; seq is
    gap-free because a group either lands whole (log, indexes and counters
    in one batch) or not at all, and the in-memory head and counters move
    only after RocksDB said yes.

    An append is prepare (dedup against the database and the groups in
    flight, reserve seqs, encode, build the batch), commit (the synced
    write; head and counts move) and finish (forget or undo): the server
    prepares one group while the one before it syncs on another thread.
*/
#include "pond_store.h"
#include "pond_store_internal.h"
#include "pond_number.h"
#include "pond_thread.h"

#include <pthread.h>

#define COUNT_PREFIX     "count/"
#define COUNT_PREFIX_END "count0"    //  '/' + 1: end of the prefix

static const char *s_cf_names [POND_CF_COUNT] = { "default", "log", "by_name", "by_id",
                                                  "by_entity" };

struct _pond_store_t {
    char *path;
    rocksdb_t *db;
    rocksdb_cache_t *cache;
    rocksdb_options_t *db_options;
    rocksdb_options_t *cf_options [POND_CF_COUNT];
    rocksdb_column_family_handle_t *cf [POND_CF_COUNT];
    rocksdb_readoptions_t *read_options;
    rocksdb_writeoptions_t *write_options;    //  sync = true: WAL synced
    rocksdb_writeoptions_t *fault_options;    //  refused by RocksDB (tests)
    bool write_fault;
    bool failing;       //  last write failed (log once)
    uint64_t head;      //  committed (the committing thread)
    zhashx_t *names;    //  name -> uint64_t *count, committed
    //  The preparing thread's own: the last seq reserved, and the ids of
    //  groups prepared but not finished (id -> s_pending_t)
    uint64_t next;
    zhashx_t *pending;
    pond_store_group_t *scratch;    //  for pond_store_append
    pond_store_stats_t stats;
};

//  An id prepared but not finished: its seq and its event's digest
typedef struct {
    uint64_t seq;
    uint64_t digest;
} s_pending_t;

//  A prepared group (pond_store.h: prepare, commit, finish)
struct _pond_store_group_t {
    rocksdb_writebatch_t *batch;    //  log and index entries
    zhashx_t *names;                //  name -> new events (uintptr_t)
    uint64_t first;                 //  first seq reserved, 0 if none
    size_t fresh;                   //  new events
    size_t dups;                    //  events answered as dups
    pond_event_t **events;          //  the new events (seq set here)
    uint8_t *ids;                   //  their ids, POND_ID_SIZE each
    size_t capacity;
    bool committed;
};

//  ---------------------------------------------------------------------
//  Helpers

//  Log a RocksDB error once, free it, return -1.
static int
s_rocks_error (pond_store_t *self, const char *what, char *err)
{
    zsys_error ("store: %s (%s): %s", what, self->path, err);
    rocksdb_free (err);
    return -1;
}

//  Keys of the pending hash: ids, POND_ID_SIZE bytes.
static size_t
s_id_hash (const void *key)
{
    //  Ids come from producers: hash all 16 bytes through a full mixer,
    //  seeded with where this code sits (ASLR moves it in every process),
    //  so no producer can pick ids that all land in one chain
    uint64_t head, tail;
    memcpy (&head, key, 8);
    memcpy (&tail, (const uint8_t *) key + 8, 8);
    uint64_t hash = head ^ (uint64_t) (uintptr_t) &s_id_hash;
    hash = (hash ^ (hash >> 33)) * 0xff51afd7ed558ccdULL;
    hash = (hash ^ tail ^ (hash >> 33)) * 0xc4ceb9fe1a85ec53ULL;
    return (size_t) (hash ^ (hash >> 33));
}

static int
s_id_compare (const void *key1, const void *key2)
{
    return memcmp (key1, key2, POND_ID_SIZE);
}

static void *
s_id_dup (const void *key)
{
    void *copy = malloc (POND_ID_SIZE);
    if (copy)
        memcpy (copy, key, POND_ID_SIZE);
    return copy;
}

static void
s_free_count (void **item_p)
{
    free (*item_p);
    *item_p = NULL;
}

//  Build an index key: text 0x00 then one or two BE64. Returns its size.
static size_t
s_index_key (uint8_t *key, const char *text, uint64_t first, const uint64_t *second)
{
    size_t len = strlen (text);
    memcpy (key, text, len);
    key [len++] = POND_KEY_SEP;
    pond_put_be64 (key + len, first);
    len += 8;
    if (second) {
        pond_put_be64 (key + len, *second);
        len += 8;
    }
    return len;
}

//  ---------------------------------------------------------------------
//  Open and recover

static rocksdb_options_t *
s_cf_options (pond_store_t *self, pond_store_cf_t which, size_t memtable_mb)
{
    rocksdb_options_t *options = rocksdb_options_create ();
    rocksdb_block_based_table_options_t *table = rocksdb_block_based_options_create ();
    rocksdb_block_based_options_set_block_cache (table, self->cache);
    rocksdb_block_based_options_set_format_version (table, 5);
    //  Indexes and bloom filters stay outside the cache (RocksDB's default):
    //  they grow with the log (~2.5 bytes per event), but holding them in
    //  the cache halved ingest and catch-up of a whole mesh at 1M events
    if (which == POND_CF_LOG || which == POND_CF_BY_NAME) {
        //  Both hold whole events and are read by long scans: larger
        //  blocks mean fewer block reads, and LZ4 decompresses about
        //  twice as fast as the default Snappy (profiled: decompression
        //  was the largest single cost of a scan)
        rocksdb_block_based_options_set_block_size (table, 16 * 1024);
        rocksdb_options_set_compression (options, rocksdb_lz4_compression);
    }
    if (which == POND_CF_BY_ID || which == POND_CF_LOG) {
        //  Point lookups: every append asks by_id about every id, and
        //  most of them are new, so a bloom filter saves a disk read each
        rocksdb_block_based_options_set_filter_policy (table,
                                                       rocksdb_filterpolicy_create_bloom_full (10));
        rocksdb_block_based_options_set_whole_key_filtering (table, 1);
    }
    if (which == POND_CF_BY_ID) {
        //  The ids asked about are mostly new and the recent ones sit in
        //  the memtable: a memtable bloom filter answers "not there"
        //  without a skiplist search (profiled: ~8% of the store's CPU)
        rocksdb_options_set_memtable_prefix_bloom_size_ratio (options, 0.05);
        rocksdb_options_set_memtable_whole_key_filtering (options, 1);
    }
    rocksdb_options_set_block_based_table_factory (options, table);
    rocksdb_block_based_options_destroy (table);
    rocksdb_options_set_level_compaction_dynamic_level_bytes (options, 1);
    //  Each memtable may take a share of the budget (the log, which holds
    //  whole events, half of it); the budget, set on the database, flushes
    //  the largest when all of them together reach it
    size_t share = which == POND_CF_LOG ? memtable_mb / 2 : memtable_mb / 4;
    if (which == POND_CF_META)
        share = 1;
    rocksdb_options_set_write_buffer_size (options, share * 1024 * 1024);
    return options;
}

//  Recover head (last key of log) and the per-name counts.
static int
s_recover (pond_store_t *self)
{
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf (self->db, self->read_options,
                                                         self->cf [POND_CF_LOG]);
    rocksdb_iter_seek_to_last (it);
    if (rocksdb_iter_valid (it)) {
        size_t klen;
        const char *key = rocksdb_iter_key (it, &klen);
        if (klen != 8) {
            zsys_error ("store: %s: log key of %zu bytes; not a pond store?", self->path, klen);
            rocksdb_iter_destroy (it);
            return -1;
        }
        self->head = pond_get_be64 ((const uint8_t *) key);
    }
    char *err = NULL;
    rocksdb_iter_get_error (it, &err);
    rocksdb_iter_destroy (it);
    if (err)
        return s_rocks_error (self, "cannot read the log", err);

    rocksdb_readoptions_t *options = rocksdb_readoptions_create ();
    rocksdb_readoptions_set_iterate_upper_bound (options, COUNT_PREFIX_END,
                                                 strlen (COUNT_PREFIX_END));
    it = rocksdb_create_iterator_cf (self->db, options, self->cf [POND_CF_META]);
    uint64_t total = 0;
    int rc = 0;
    for (rocksdb_iter_seek (it, COUNT_PREFIX, strlen (COUNT_PREFIX)); rocksdb_iter_valid (it);
         rocksdb_iter_next (it)) {
        size_t klen, vlen;
        const char *key = rocksdb_iter_key (it, &klen);
        const char *value = rocksdb_iter_value (it, &vlen);
        size_t name_len = klen - strlen (COUNT_PREFIX);
        uint64_t *count = (uint64_t *) malloc (sizeof (uint64_t));
        char name [POND_NAME_MAX + 1];
        if (vlen != 8 || name_len == 0 || name_len > POND_NAME_MAX || !count) {
            zsys_error ("store: %s: bad counter '%.*s'", self->path, (int) klen, key);
            free (count);
            rc = -1;
            break;
        }
        memcpy (name, key + strlen (COUNT_PREFIX), name_len);
        name [name_len] = 0;
        *count = pond_get_be64 ((const uint8_t *) value);
        total += *count;
        zhashx_update (self->names, name, count);
    }
    rocksdb_iter_get_error (it, &err);
    rocksdb_iter_destroy (it);
    rocksdb_readoptions_destroy (options);
    if (err)
        return s_rocks_error (self, "cannot read the counters", err);
    if (rc == 0 && total != self->head)
        zsys_warning ("store: %s: name counts add up to %" PRIu64 " but head is %" PRIu64,
                      self->path, total, self->head);
    self->stats.events = self->stats.head = self->head;
    return rc;
}

int
pond_store_memory_parse (size_t *field, const char *text, size_t least, const char *what, char *err,
                         size_t errlen)
{
    uint64_t value;
    if (pond_number_parse (text, least, 65536, &value)) {
        snprintf (err, errlen, "%s '%s': give a number of MiB from %zu to 65536", what, text,
                  least);
        return -1;
    }
    *field = (size_t) value;
    return 0;
}

int
pond_store_memory_from_env (pond_store_memory_t *memory, char *err, size_t errlen)
{
    const char *memtable = getenv ("POND_STORE_MEMTABLE_MB");
    const char *cache = getenv ("POND_STORE_CACHE_MB");
    if (memtable
        && pond_store_memory_parse (&memory->memtable_mb, memtable, 4, "POND_STORE_MEMTABLE_MB",
                                    err, errlen))
        return -1;
    if (cache
        && pond_store_memory_parse (&memory->cache_mb, cache, 1, "POND_STORE_CACHE_MB", err,
                                    errlen))
        return -1;
    return 0;
}

pond_store_t *
pond_store_new (const char *path)
{
    return pond_store_new_sized (path, NULL);
}

pond_store_t *
pond_store_new_sized (const char *path, const pond_store_memory_t *memory)
{
    assert (path);
    size_t memtable_mb = memory && memory->memtable_mb ? memory->memtable_mb
                                                       : POND_STORE_MEMTABLE_MB;
    size_t cache_mb = memory && memory->cache_mb ? memory->cache_mb : POND_STORE_CACHE_MB;
    if (memtable_mb < 4)
        memtable_mb = 4;    //  a quarter of it is a memtable's share: at least 1 MiB
    pond_store_t *self = (pond_store_t *) zmalloc (sizeof (pond_store_t));
    if (!self)
        return NULL;
    self->path = strdup (path);
    self->names = zhashx_new ();
    self->pending = zhashx_new ();
    self->scratch = pond_store_group_new ();
    self->cache = rocksdb_cache_create_lru (cache_mb * 1024 * 1024);
    if (!self->path || !self->names || !self->pending || !self->scratch) {
        pond_store_destroy (&self);
        return NULL;
    }
    zhashx_set_destructor (self->names, s_free_count);
    zhashx_set_key_hasher (self->pending, s_id_hash);
    zhashx_set_key_comparator (self->pending, s_id_compare);
    zhashx_set_key_duplicator (self->pending, s_id_dup);
    zhashx_set_key_destructor (self->pending, s_free_count);
    zhashx_set_destructor (self->pending, s_free_count);

    //  RocksDB starts its background threads from here to the open: they
    //  inherit a mask that leaves signals to the main thread
    sigset_t saved;
    bool blocked = pond_thread_block_signals (&saved) == 0;
    self->db_options = rocksdb_options_create ();
    rocksdb_options_set_create_if_missing (self->db_options, 1);
    rocksdb_options_set_db_write_buffer_size (self->db_options, memtable_mb * 1024 * 1024);
    rocksdb_options_set_create_missing_column_families (self->db_options, 1);
    rocksdb_options_increase_parallelism (self->db_options, 2);
    rocksdb_options_set_max_background_jobs (self->db_options, 2);
    rocksdb_options_set_keep_log_file_num (self->db_options, 3);
    rocksdb_options_set_max_log_file_size (self->db_options, 1024 * 1024);
    rocksdb_options_set_max_total_wal_size (self->db_options, 64 * 1024 * 1024);
    rocksdb_options_set_max_open_files (self->db_options, 512);
    //  RocksDB's own LOG file sits on the same disk as the data. Debian's
    //  librocksdb 7.8 keeps its assertions, and its LOG writer aborts the
    //  process on the next line after a failed write (writable_file_writer.h:
    //  312, sync_without_flush_called_): a full disk killed the store instead
    //  of answering 500 and recovering (tests/test_chaos.c, disk_full). So
    //  RocksDB logs only fatal errors there; pond logs its own to stderr.
    rocksdb_options_set_info_log_level (self->db_options, 4);    //  FATAL_LEVEL

    for (int i = 0; i < POND_CF_COUNT; i++)
        self->cf_options [i] = s_cf_options (self, (pond_store_cf_t) i, memtable_mb);

    char *err = NULL;
    self->db = rocksdb_open_column_families (self->db_options, path, POND_CF_COUNT, s_cf_names,
                                             (const rocksdb_options_t *const *) self->cf_options,
                                             self->cf, &err);
    if (blocked)
        pthread_sigmask (SIG_SETMASK, &saved, NULL);
    if (err) {
        if (strstr (err, "lock") || strstr (err, "Lock"))
            zsys_error ("store: cannot open %s: %s (another pond-store is using it? "
                        "stop it first)",
                        path, err);
        else
            zsys_error ("store: cannot open %s: %s", path, err);
        rocksdb_free (err);
        self->db = NULL;
        pond_store_destroy (&self);
        return NULL;
    }
    self->read_options = rocksdb_readoptions_create ();
    self->write_options = rocksdb_writeoptions_create ();
    rocksdb_writeoptions_set_sync (self->write_options, 1);
    //  A test and benchmark knob only: without the WAL sync an ACKed event
    //  can be lost with the machine (breaks invariant 1, "log first").
    //  tests/test_sync.c uses it to prove that its check sees a reply
    //  sent before the sync
    const char *unsafe = getenv ("POND_STORE_UNSAFE_NO_SYNC");
    if (unsafe && streq (unsafe, "1")) {
        rocksdb_writeoptions_set_sync (self->write_options, 0);
        zsys_warning ("store: POND_STORE_UNSAFE_NO_SYNC=1: the WAL is NOT synced before "
                      "an ACK; acknowledged events can be lost in a power cut. For tests "
                      "and benchmarks only: unset it for real data");
    }
    self->fault_options = rocksdb_writeoptions_create ();
    rocksdb_writeoptions_set_sync (self->fault_options, 1);
    rocksdb_writeoptions_disable_WAL (self->fault_options, 1);

    if (s_recover (self))
        pond_store_destroy (&self);
    else
        self->next = self->head;
    return self;
}

void
pond_store_destroy (pond_store_t **self_p)
{
    if (self_p && *self_p) {
        pond_store_t *self = *self_p;
        if (self->db) {
            for (int i = 0; i < POND_CF_COUNT; i++)
                if (self->cf [i])
                    rocksdb_column_family_handle_destroy (self->cf [i]);
            rocksdb_close (self->db);
        }
        for (int i = 0; i < POND_CF_COUNT; i++)
            if (self->cf_options [i])
                rocksdb_options_destroy (self->cf_options [i]);
        if (self->db_options)
            rocksdb_options_destroy (self->db_options);
        if (self->read_options)
            rocksdb_readoptions_destroy (self->read_options);
        if (self->write_options)
            rocksdb_writeoptions_destroy (self->write_options);
        if (self->fault_options)
            rocksdb_writeoptions_destroy (self->fault_options);
        if (self->cache)
            rocksdb_cache_destroy (self->cache);
        zhashx_destroy (&self->names);
        zhashx_destroy (&self->pending);
        pond_store_group_destroy (&self->scratch);
        free (self->path);
        free (self);
        *self_p = NULL;
    }
}

//  ---------------------------------------------------------------------
//  Append

//  What says whether a resend is the same event: a 64-bit FNV-1a hash
//  of everything the producer chose but the id and meta (meta is about
//  the sending, e.g. a retry count or a trace): name, ts, entity, source,
//  causation and data. Kept next to the seq in by_id.
static uint64_t
s_digest_add (uint64_t hash, const void *data, size_t size)
{
    const uint8_t *at = (const uint8_t *) data;
    for (size_t i = 0; i < size; i++)
        hash = (hash ^ at [i]) * 0x100000001b3ULL;
    return hash;
}

static uint64_t
s_digest (const pond_event_t *event)
{
    uint64_t hash = 0xcbf29ce484222325ULL;
    //  Each text with its terminator, so fields cannot run into each other
    hash = s_digest_add (hash, pond_event_name (event), strlen (pond_event_name (event)) + 1);
    uint8_t ts [8];
    pond_put_be64 (ts, pond_event_ts (event));
    hash = s_digest_add (hash, ts, 8);
    hash = s_digest_add (hash, pond_event_entity (event), strlen (pond_event_entity (event)) + 1);
    hash = s_digest_add (hash, pond_event_source (event), strlen (pond_event_source (event)) + 1);
    const uint8_t *causation = pond_event_causation (event);
    hash = s_digest_add (hash, causation ? "c" : "-", 1);
    if (causation)
        hash = s_digest_add (hash, causation, POND_ID_SIZE);
    size_t size;
    const uint8_t *data = pond_event_data (event, &size);
    uint8_t length [8];
    pond_put_be64 (length, data ? size : 0);
    hash = s_digest_add (hash, length, 8);
    if (data)
        hash = s_digest_add (hash, data, size);
    return hash;
}

//  Seq of a stored id, 0 if none; -1 (as *rc_p) on a read error. Its
//  digest goes to *digest_p; a store written before digests were kept
//  holds none: the digest is then that of the event read from the log.
static uint64_t
s_lookup (pond_store_t *self, const uint8_t *id, int *rc_p, uint64_t *digest_p)
{
    char *err = NULL;
    size_t vlen = 0;
    char *value = rocksdb_get_cf (self->db, self->read_options, self->cf [POND_CF_BY_ID],
                                  (const char *) id, POND_ID_SIZE, &vlen, &err);
    if (err) {
        *rc_p = s_rocks_error (self, "cannot read by_id", err);
        return 0;
    }
    uint64_t seq = 0;
    if (value && (vlen == 8 || vlen == 16))
        seq = pond_get_be64 ((const uint8_t *) value);
    if (digest_p && value && vlen == 16)
        *digest_p = pond_get_be64 ((const uint8_t *) value + 8);
    else if (digest_p && seq) {
        size_t size;
        uint8_t *stored = pond_store_get (self, seq, &size);
        char reason [POND_ERR_SIZE];
        pond_event_t *event = stored ? pond_event_decode (stored, size, reason, sizeof reason)
                                     : NULL;
        if (event)
            *digest_p = s_digest (event);
        else {
            zsys_error ("store: cannot read seq %" PRIu64 " to compare a resent id", seq);
            *rc_p = -1;
        }
        pond_event_destroy (&event);
        free (stored);
    }
    rocksdb_free (value);
    return seq;
}

uint64_t
pond_store_lookup (pond_store_t *self, const uint8_t *id)
{
    int rc = 0;
    return s_lookup (self, id, &rc, NULL);
}

//  Put log and index entries of one new event into the batch.
static void
s_batch_event (pond_store_t *self, rocksdb_writebatch_t *batch, pond_event_t *event,
               const uint8_t *stored, size_t size)
{
    uint64_t seq = pond_event_seq (event);
    uint8_t seq_key [8];
    pond_put_be64 (seq_key, seq);
    rocksdb_writebatch_put_cf (batch, self->cf [POND_CF_LOG], (const char *) seq_key, 8,
                               (const char *) stored, size);
    uint8_t key [POND_ENTITY_MAX + 1 + 16];
    size_t klen = s_index_key (key, pond_event_name (event), pond_event_ts (event), &seq);
    //  Covering: a replay by names reads the event right from its index
    //  entry (one Seek, then Nexts), never a point lookup in the log
    rocksdb_writebatch_put_cf (batch, self->cf [POND_CF_BY_NAME], (const char *) key, klen,
                               (const char *) stored, size);
    klen = s_index_key (key, pond_event_entity (event), seq, NULL);
    rocksdb_writebatch_put_cf (batch, self->cf [POND_CF_BY_ENTITY], (const char *) key, klen, "",
                               0);
    uint8_t id_value [16];
    pond_put_be64 (id_value, seq);
    pond_put_be64 (id_value + 8, s_digest (event));
    rocksdb_writebatch_put_cf (batch, self->cf [POND_CF_BY_ID],
                               (const char *) pond_event_id (event), POND_ID_SIZE,
                               (const char *) id_value, 16);
}

//  Put the new total of every name this group touched into its batch.
static void
s_batch_counts (pond_store_t *self, pond_store_group_t *group)
{
    for (void *delta = zhashx_first (group->names); delta; delta = zhashx_next (group->names)) {
        const char *name = (const char *) zhashx_cursor (group->names);
        uint64_t *count = (uint64_t *) zhashx_lookup (self->names, name);
        uint64_t total = (count ? *count : 0) + (uintptr_t) delta;
        char key [sizeof COUNT_PREFIX + POND_NAME_MAX];
        int klen = snprintf (key, sizeof key, COUNT_PREFIX "%s", name);
        uint8_t value [8];
        pond_put_be64 (value, total);
        rocksdb_writebatch_put_cf (group->batch, self->cf [POND_CF_META], key, (size_t) klen,
                                   (const char *) value, 8);
    }
}

//  After a committed batch: move the in-memory counts.
static int
s_commit_counts (pond_store_t *self, pond_store_group_t *group)
{
    for (void *delta = zhashx_first (group->names); delta; delta = zhashx_next (group->names)) {
        const char *name = (const char *) zhashx_cursor (group->names);
        uint64_t *count = (uint64_t *) zhashx_lookup (self->names, name);
        if (!count) {
            count = (uint64_t *) zmalloc (sizeof (uint64_t));
            if (!count || zhashx_insert (self->names, name, count)) {
                free (count);
                return -1;
            }
        }
        *count += (uintptr_t) delta;
    }
    return 0;
}

pond_store_group_t *
pond_store_group_new (void)
{
    pond_store_group_t *self = (pond_store_group_t *) zmalloc (sizeof (pond_store_group_t));
    if (!self)
        return NULL;
    self->batch = rocksdb_writebatch_create ();
    self->names = zhashx_new ();
    if (!self->batch || !self->names)
        pond_store_group_destroy (&self);
    return self;
}

void
pond_store_group_destroy (pond_store_group_t **self_p)
{
    if (self_p && *self_p) {
        pond_store_group_t *self = *self_p;
        if (self->batch)
            rocksdb_writebatch_destroy (self->batch);
        zhashx_destroy (&self->names);
        free (self->events);
        free (self->ids);
        free (self);
        *self_p = NULL;
    }
}

//  Room for count more new events in the group. Returns 0 or -1.
static int
s_group_reserve (pond_store_group_t *group, size_t count)
{
    if (group->fresh + count <= group->capacity)
        return 0;
    size_t capacity = group->capacity ? group->capacity : 64;
    while (capacity < group->fresh + count)
        capacity *= 2;
    pond_event_t **events = (pond_event_t **) realloc (group->events,
                                                       capacity * sizeof (pond_event_t *));
    if (events)
        group->events = events;
    uint8_t *ids = (uint8_t *) realloc (group->ids, capacity * POND_ID_SIZE);
    if (ids)
        group->ids = ids;
    if (!events || !ids)
        return -1;
    group->capacity = capacity;
    return 0;
}

//  Forget the pending ids of the group's new events from index from on,
//  and (if undo) give their seqs back: events' seqs to 0, and the
//  preparing thread's next seq back to the first of them.
static void
s_group_drop (pond_store_t *self, pond_store_group_t *group, size_t from, bool undo)
{
    for (size_t i = from; i < group->fresh; i++) {
        zhashx_delete (self->pending, group->ids + i * POND_ID_SIZE);
        if (undo)
            pond_event_set_seq (group->events [i], 0);
    }
    if (undo && group->fresh > from) {
        //  The group's seqs are consecutive: first, first + 1, ...
        uint64_t rewind = group->first + from - 1;
        if (self->next > rewind)
            self->next = rewind;
    }
    group->fresh = from;
}

//  Set every output of an append to "not stored"; free what stored held
//  (if free_stored), so that a failed call hands nothing back.
static void
s_outputs_clear (size_t count, uint64_t *seqs, bool *dups, uint8_t **stored, bool free_stored)
{
    for (size_t i = 0; i < count; i++) {
        seqs [i] = 0;
        dups [i] = false;
        if (stored) {
            if (free_stored)
                free (stored [i]);
            stored [i] = NULL;
        }
    }
}

int
pond_store_prepare (pond_store_t *self, pond_store_group_t *group, pond_event_t **events,
                    size_t count, uint64_t *seqs, bool *dups, uint8_t **stored,
                    size_t *stored_sizes)
{
    assert (self);
    assert (group);
    assert (events || count == 0);
    assert (seqs && dups);
    s_outputs_clear (count, seqs, dups, stored, false);
    //  A group's seqs are consecutive: prepare into the newest one only
    assert (group->fresh == 0 || self->next == group->first + group->fresh - 1);
    if (s_group_reserve (group, count)) {
        zsys_error ("store: out of memory preparing %zu events", count);
        return -1;
    }
    //  First pass: dedup, seqs, encoding; the batch is untouched, so a
    //  failure undoes only what this pass did
    size_t fresh_before = group->fresh;
    size_t dups_before = group->dups;
    uint8_t **buffers = (uint8_t **) calloc (count ? count : 1, sizeof (uint8_t *));
    size_t *sizes = (size_t *) calloc (count ? count : 1, sizeof (size_t));
    int rc = buffers && sizes ? 0 : -1;
    for (size_t i = 0; i < count && rc == 0; i++) {
        pond_event_t *event = events [i];
        if (!event)
            continue;    //  refused before: no result
        if (pond_event_seq (event)) {
            zsys_error ("store: refusing event with seq %" PRIu64 " already set",
                        pond_event_seq (event));
            rc = -1;
            break;
        }
        const uint8_t *id = pond_event_id (event);
        uint64_t digest = s_digest (event);
        //  In a group not yet finished (this one included), else stored?
        s_pending_t *pending = (s_pending_t *) zhashx_lookup (self->pending, id);
        uint64_t seq = pending ? pending->seq : 0;
        uint64_t seen = pending ? pending->digest : 0;
        if (!seq)
            seq = s_lookup (self, id, &rc, &seen);
        if (rc)
            break;
        if (seq) {
            //  The same event again is a duplicate; another one with this
            //  id is a conflict (seq 0): nothing is written for either
            bool same = seen == digest;
            seqs [i] = same ? seq : 0;
            dups [i] = true;
            group->dups += same;
            continue;
        }
        seq = self->next + 1;
        pond_event_set_seq (event, seq);
        char reason [POND_ERR_SIZE];
        buffers [i] = pond_event_encode (event, &sizes [i], reason, sizeof reason);
        if (!buffers [i]) {
            zsys_error ("store: cannot encode event for seq %" PRIu64 ": %s", seq, reason);
            pond_event_set_seq (event, 0);
            rc = -1;
            break;
        }
        pending = (s_pending_t *) malloc (sizeof (s_pending_t));
        if (pending) {
            pending->seq = seq;
            pending->digest = digest;
        }
        if (!pending || zhashx_insert (self->pending, id, pending)) {
            free (pending);
            zsys_error ("store: out of memory preparing seq %" PRIu64, seq);
            pond_event_set_seq (event, 0);
            rc = -1;
            break;
        }
        if (group->fresh == 0)
            group->first = seq;
        group->events [group->fresh] = event;
        memcpy (group->ids + group->fresh * POND_ID_SIZE, id, POND_ID_SIZE);
        group->fresh++;
        self->next = seq;
        seqs [i] = seq;
    }
    if (rc) {
        s_group_drop (self, group, fresh_before, true);
        group->dups = dups_before;
        s_outputs_clear (count, seqs, dups, NULL, false);
        for (size_t i = 0; buffers && i < count; i++)
            free (buffers [i]);
        free (buffers);
        free (sizes);
        return -1;
    }
    //  Second pass: into the batch (cannot fail)
    for (size_t i = 0; i < count; i++) {
        if (!buffers [i])
            continue;
        pond_event_t *event = events [i];
        s_batch_event (self, group->batch, event, buffers [i], sizes [i]);
        const char *name = pond_event_name (event);
        uintptr_t named = (uintptr_t) zhashx_lookup (group->names, name);
        zhashx_update (group->names, name, (void *) (named + 1));
        if (stored) {
            stored [i] = buffers [i];
            if (stored_sizes)
                stored_sizes [i] = sizes [i];
        }
        else
            free (buffers [i]);
    }
    free (buffers);
    free (sizes);
    return 0;
}

int
pond_store_commit (pond_store_t *self, pond_store_group_t *group)
{
    assert (self);
    assert (group);
    assert (!group->committed);
    if (group->fresh > 0) {
        if (group->first != self->head + 1) {
            zsys_error ("store: refusing a group at seq %" PRIu64 " after head %" PRIu64
                        " (a group before it failed)",
                        group->first, self->head);
            self->stats.write_errors++;
            return -1;
        }
        s_batch_counts (self, group);
        char *err = NULL;
        rocksdb_write (self->db, self->write_fault ? self->fault_options : self->write_options,
                       group->batch, &err);
        if (err) {
            //  Log the first failure of a run, not every retry of it
            if (!self->failing)
                zsys_error ("store: write failed (%s), nothing of %zu events stored: %s",
                            self->path, group->fresh, err);
            rocksdb_free (err);
            self->failing = true;
            self->stats.write_errors++;
            return -1;
        }
        if (self->failing) {
            zsys_info ("store: writes succeed again after %" PRIu64 " failed batches",
                       self->stats.write_errors);
            self->failing = false;
        }
        self->head = group->first + group->fresh - 1;
        self->stats.batches++;
        if (s_commit_counts (self, group))
            zsys_error ("store: out of memory updating name counts");
    }
    group->committed = true;
    self->stats.appended += group->fresh;
    self->stats.dups += group->dups;
    self->stats.events = self->stats.head = self->head;
    return 0;
}

void
pond_store_finish (pond_store_t *self, pond_store_group_t *group)
{
    assert (self);
    assert (group);
    s_group_drop (self, group, 0, !group->committed);
    //  Reused, not remade: clearing keeps the batch's buffer
    rocksdb_writebatch_clear (group->batch);
    zhashx_purge (group->names);
    group->first = 0;
    group->dups = 0;
    group->committed = false;
}

int
pond_store_append (pond_store_t *self, pond_event_t **events, size_t count, uint64_t *seqs,
                   bool *dups, uint8_t **stored, size_t *stored_sizes)
{
    assert (self);
    pond_store_group_t *group = self->scratch;
    if (pond_store_prepare (self, group, events, count, seqs, dups, stored, stored_sizes))
        return -1;
    int rc = pond_store_commit (self, group);
    pond_store_finish (self, group);
    if (rc)    //  Nothing was stored (finish gave the events' seqs back)
        s_outputs_clear (count, seqs, dups, stored, true);
    return rc;
}

int
pond_store_check (pond_event_t *event, char *err, size_t errlen)
{
    if (pond_event_seq (event)) {
        snprintf (err, errlen, "seq must be absent: the store sets it");
        return -1;
    }
    //  The stored form carries a seq: make sure it still fits the limit
    pond_event_set_seq (event, UINT64_MAX);
    size_t size;
    uint8_t *buffer = pond_event_encode (event, &size, err, errlen);
    pond_event_set_seq (event, 0);
    if (!buffer)
        return -1;
    free (buffer);
    return 0;
}

//  ---------------------------------------------------------------------
//  Reads and counters

uint8_t *
pond_store_get (pond_store_t *self, uint64_t seq, size_t *size_p)
{
    uint8_t key [8];
    pond_put_be64 (key, seq);
    char *err = NULL;
    size_t vlen = 0;
    char *value = rocksdb_get_cf (self->db, self->read_options, self->cf [POND_CF_LOG],
                                  (const char *) key, 8, &vlen, &err);
    if (err) {
        s_rocks_error (self, "cannot read the log", err);
        return NULL;
    }
    if (!value)
        return NULL;
    uint8_t *copy = (uint8_t *) malloc (vlen ? vlen : 1);
    if (copy)
        memcpy (copy, value, vlen);
    rocksdb_free (value);
    *size_p = vlen;
    return copy;
}

uint64_t
pond_store_head (pond_store_t *self)
{
    return self->head;
}

void
pond_store_stats (pond_store_t *self, pond_store_stats_t *stats)
{
    *stats = self->stats;
}

uint64_t
pond_store_name_count (pond_store_t *self, const char *name)
{
    uint64_t *count = (uint64_t *) zhashx_lookup (self->names, name);
    return count ? *count : 0;
}

zlistx_t *
pond_store_names (pond_store_t *self)
{
    zlistx_t *names = zlistx_new ();
    if (!names)
        return NULL;
    zlistx_set_duplicator (names, (zlistx_duplicator_fn *) strdup);
    zlistx_set_destructor (names, (zlistx_destructor_fn *) zstr_free);
    zlistx_set_comparator (names, (zlistx_comparator_fn *) strcmp);
    for (void *count = zhashx_first (self->names); count; count = zhashx_next (self->names))
        if (!zlistx_add_end (names, (void *) zhashx_cursor (self->names))) {
            zlistx_destroy (&names);
            return NULL;
        }
    zlistx_sort (names);
    return names;
}

typedef struct {
    const char *name;
    uint64_t count;
} s_named_t;

//  Restore the min-heap below index i (smallest count at the top).
static void
s_heap_down (s_named_t *heap, size_t size, size_t i)
{
    while (true) {
        size_t least = i, left = 2 * i + 1, right = left + 1;
        if (left < size && heap [left].count < heap [least].count)
            least = left;
        if (right < size && heap [right].count < heap [least].count)
            least = right;
        if (least == i)
            return;
        s_named_t swap = heap [i];
        heap [i] = heap [least];
        heap [least] = swap;
        i = least;
    }
}

zlistx_t *
pond_store_top_names (pond_store_t *self, size_t max, size_t *names_p)
{
    size_t total = zhashx_size (self->names);
    *names_p = total;
    s_named_t *heap = (s_named_t *) calloc (max ? max : 1, sizeof (s_named_t));
    zlistx_t *names = heap ? zlistx_new () : NULL;
    if (!names) {
        free (heap);
        return NULL;
    }
    zlistx_set_duplicator (names, (zlistx_duplicator_fn *) strdup);
    zlistx_set_destructor (names, (zlistx_destructor_fn *) zstr_free);
    zlistx_set_comparator (names, (zlistx_comparator_fn *) strcmp);
    //  Keep the max largest counts in a min-heap: one pass, no copies
    size_t size = 0;
    for (uint64_t *count = (uint64_t *) zhashx_first (self->names); count && max;
         count = (uint64_t *) zhashx_next (self->names)) {
        s_named_t item = { (const char *) zhashx_cursor (self->names), *count };
        if (size < max) {
            heap [size++] = item;
            if (size == max)
                for (size_t i = max / 2 + 1; i-- > 0;)
                    s_heap_down (heap, size, i);
        }
        else if (item.count > heap [0].count) {
            heap [0] = item;
            s_heap_down (heap, size, 0);
        }
    }
    for (size_t i = 0; i < size; i++)
        if (!zlistx_add_end (names, (void *) heap [i].name)) {
            zlistx_destroy (&names);
            break;
        }
    free (heap);
    if (names)
        zlistx_sort (names);
    return names;
}

void
pond_store_set_write_fault (pond_store_t *self, bool fault)
{
    self->write_fault = fault;
}

rocksdb_t *
pond_store_db (pond_store_t *self)
{
    return self->db;
}

rocksdb_column_family_handle_t *
pond_store_cf (pond_store_t *self, pond_store_cf_t which)
{
    assert (which < POND_CF_COUNT);
    return self->cf [which];
}
