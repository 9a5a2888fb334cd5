/*  pond_view: an actor's own view database, a cache of the log.
    See pond_view.h.

    Key layout (the database belongs to the view alone):

        'd' KEY     a document: compact JSON text
        'p'         the position: seq of the last event applied, 8 bytes
                    big-endian

    Users only ever see KEY; the one-byte prefixes keep the position out of
    pond_view_scan and pond_view_dump whatever keys an actor chooses.

    The changes of one event are staged in memory (key -> a copy of the
    cJSON tree put, or TOMBSTONE for a delete) and serialized and written
    by pond_view_commit in one WriteBatch together with the new position.
    Either the whole event lands, position included, or none of it: a view
    never holds half an event, and an event it holds is never applied
    again. A document put several times in one batch (catch-up) is
    serialized once.

    The document cache: key -> parsed tree of the committed document, in
    a zhashx for lookup and a doubly linked list in LRU order, bounded by
    count and by approximate bytes. A miss reads RocksDB and keeps what it
    parsed (outside an event: inside, the commit that follows caches the
    document); a successful commit moves its staged trees in (write
    through; once the cache is full, one new key in CACHE_ADMIT_EVERY,
    see s_cache_put) and drops the keys it deleted; rollback and failed commits leave it
    alone, so it never holds what RocksDB does not. Trees go in
    "normalized": exactly what cJSON_Parse would make of their printed
    text (raw items parsed, NaN null, -0 zero), so a hit returns the same
    tree a miss would have.

    View writes are NOT synced. A view is a cache of the log: what matters
    is atomicity, not durability. A killed process loses nothing (RocksDB's
    WAL is in the OS page cache); a machine crash may lose the last few
    commits, but each one whole, position with its changes, so the actor
    simply replays them from the log on start. (Without the WAL a kill -9
    would still leave a consistent view, but one as old as the last
    memtable flush; measured, the WAL costs no visible CPU per event.)
*/
#include "pond_view.h"
#include "pond_be64.h"
#include "pond_thread.h"

#include <czmq.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <rocksdb/c.h>

#define DOC_PREFIX        'd'
#define POSITION_KEY      "p"
#define MiB               ((size_t) 1024 * 1024)
//  Memory a tree holds, estimated without reading its strings: a cJSON
//  node and malloc's share per item, a small string per key or string
//  value; callers add the length of the printed text, when they have it,
//  for the characters
#define NODE_BYTES        (sizeof (cJSON) + 16)
#define TEXT_BYTES        24
#define CACHE_ADMIT_EVERY 8    //  new keys let into a full cache: 1 in 8

//  A cached document, in LRU order (head: most recently used)
typedef struct _entry_t entry_t;
struct _entry_t {
    cJSON *doc;      //  normalized, committed
    size_t bytes;    //  approximate memory it holds
    char *key;
    entry_t *prev, *next;
};

//  The staged value of a delete (never dereferenced)
static cJSON s_tombstone;
#define TOMBSTONE_DOC (&s_tombstone)

struct _pond_view_t {
    char *path;
    rocksdb_t *db;
    rocksdb_options_t *options;
    rocksdb_readoptions_t *read_options;
    rocksdb_readoptions_t *scan_options;    //  scans leave the block cache alone
    rocksdb_writeoptions_t *write_options;
    uint64_t position;
    bool in_event;          //  between begin and commit/rollback
    zhashx_t *staged;       //  key -> cJSON tree put, or TOMBSTONE_DOC
    size_t staged_bytes;    //  approximate bytes of the staged trees

    zhashx_t *cache;    //  key -> entry_t
    entry_t *lru_head, *lru_tail;
    size_t max_docs, max_bytes;
    uint64_t admit_tick;    //  misses offered to a full cache
    pond_view_stats_t stats;
    char *print_buffer;    //  reused by every commit's serialization
    size_t print_size;
    const char **keys;    //  reused by s_staged_clear
    size_t keys_size;
    size_t *lengths;    //  reused by pond_view_commit
    size_t lengths_size;
};

//  ---------------------------------------------------------------------
//  Helpers

static void s_staged_purge (pond_view_t *self);

static void
s_entry_destroy (void **item_p)
{
    entry_t *entry = (entry_t *) *item_p;
    if (entry) {
        cJSON_Delete (entry->doc);
        free (entry->key);
        free (entry);
    }
    *item_p = NULL;
}

//  Log a RocksDB error once, free it, return -1.
static int
s_rocks_error (const char *path, const char *what, char *err)
{
    zsys_error ("pond_view: %s (%s): %s", what, path, err);
    rocksdb_free (err);
    return -1;
}

//  The stored key of a document: DOC_PREFIX then key. Caller frees.
static char *
s_doc_key (const char *key, size_t *size_p)
{
    size_t len = strlen (key);
    char *stored = (char *) malloc (len + 2);
    if (stored) {
        stored [0] = DOC_PREFIX;
        memcpy (stored + 1, key, len + 1);
        *size_p = len + 1;
    }
    return stored;
}

static rocksdb_options_t *
s_options_new (const pond_view_limits_t *limits)
{
    rocksdb_options_t *options = rocksdb_options_create ();
    rocksdb_options_set_create_if_missing (options, 1);
    rocksdb_options_set_max_open_files (options, 256);
    //  A view is small (a document per entity) but rewritten at every
    //  event: RocksDB's defaults (64 MiB memtables, two of them, a 32 MiB
    //  block cache) would let an actor grow past 150 MiB in a catch-up.
    //  The limits keep it flat. The memtable's arena grows in blocks of
    //  an eighth of it (RocksDB's default), so a smaller memtable also
    //  allocates in smaller steps.
    rocksdb_options_set_write_buffer_size (options, limits->memtable_mb * MiB);
    rocksdb_options_set_max_write_buffer_number (options, 2);
    rocksdb_block_based_table_options_t *table = rocksdb_block_based_options_create ();
    if (limits->cache_mb) {
        rocksdb_cache_t *cache = rocksdb_cache_create_lru (limits->cache_mb * MiB);
        rocksdb_block_based_options_set_block_cache (table, cache);
        rocksdb_cache_destroy (cache);    //  the table options hold a reference
    }
    else
        rocksdb_block_based_options_set_no_block_cache (table, 1);
    rocksdb_options_set_block_based_table_factory (options, table);
    rocksdb_block_based_options_destroy (table);
    return options;
}

void
pond_view_limits_default (pond_view_limits_t *limits)
{
    assert (limits);
    limits->memtable_mb = POND_VIEW_MEMTABLE_MB;
    limits->cache_mb = POND_VIEW_CACHE_MB;
    limits->doc_cache_mb = POND_VIEW_DOC_CACHE_MB;
}

int
pond_view_limits_check (const pond_view_limits_t *limits, char *err, size_t errlen)
{
    assert (limits);
    if (limits->memtable_mb < 1 || limits->memtable_mb > POND_VIEW_MB_MAX)
        snprintf (err, errlen, "memtable size must be 1 to %d MiB, not %zu", POND_VIEW_MB_MAX,
                  limits->memtable_mb);
    else if (limits->cache_mb > POND_VIEW_MB_MAX)
        snprintf (err, errlen, "block cache must be 0 to %d MiB, not %zu", POND_VIEW_MB_MAX,
                  limits->cache_mb);
    else if (limits->doc_cache_mb > POND_VIEW_MB_MAX)
        snprintf (err, errlen, "document cache must be 0 to %d MiB, not %zu", POND_VIEW_MB_MAX,
                  limits->doc_cache_mb);
    else
        return 0;
    return -1;
}

//  ---------------------------------------------------------------------
//  Open, close, drop

pond_view_t *
pond_view_open (const char *path)
{
    return pond_view_open_with (path, NULL);
}

pond_view_t *
pond_view_open_with (const char *path, const pond_view_limits_t *limits)
{
    assert (path);
    pond_view_limits_t defaults;
    pond_view_limits_default (&defaults);
    if (!limits)
        limits = &defaults;
    char reason [128];
    if (pond_view_limits_check (limits, reason, sizeof reason)) {
        zsys_error ("pond_view: cannot open %s: %s", path, reason);
        return NULL;
    }
    pond_view_t *self = (pond_view_t *) zmalloc (sizeof (pond_view_t));
    if (!self)
        return NULL;
    self->path = strdup (path);
    self->options = s_options_new (limits);
    self->read_options = rocksdb_readoptions_create ();
    //  A scan reads every document once (a recompute, a dump): through
    //  the block cache it would evict what the next events read
    self->scan_options = rocksdb_readoptions_create ();
    rocksdb_readoptions_set_fill_cache (self->scan_options, 0);
    self->write_options = rocksdb_writeoptions_create ();
    //  Not synced: a view is a cache of the log (see the file comment)
    rocksdb_writeoptions_set_sync (self->write_options, 0);
    self->staged = zhashx_new ();
    //  No destructor: the staged trees move to the cache at commit
    self->cache = zhashx_new ();
    if (self->cache)
        zhashx_set_destructor (self->cache, s_entry_destroy);
    pond_view_set_cache (self, POND_VIEW_CACHE_DOCS, limits->doc_cache_mb * MiB);
    if (!self->staged || !self->cache) {
        zsys_error ("pond_view: out of memory opening %s", path);
        pond_view_destroy (&self);
        return NULL;
    }

    //  RocksDB creates the last directory only: make the parents
    char *parent = strdup (path);
    char *slash = parent ? strrchr (parent, '/') : NULL;
    if (slash && slash != parent) {
        *slash = 0;
        if (!zsys_file_exists (parent) && zsys_dir_create ("%s", parent))
            zsys_error ("pond_view: cannot create directory %s: %s", parent, strerror (errno));
    }
    free (parent);

    char *err = NULL;
    //  RocksDB's background threads start here: they inherit a mask that
    //  leaves signals to the main thread
    sigset_t saved;
    bool blocked = pond_thread_block_signals (&saved) == 0;
    self->db = rocksdb_open (self->options, path, &err);
    if (blocked)
        pthread_sigmask (SIG_SETMASK, &saved, NULL);
    if (err) {
        zsys_error ("pond_view: cannot open %s: %s (does another process of this actor "
                    "hold it?)",
                    path, err);
        rocksdb_free (err);
        pond_view_destroy (&self);
        return NULL;
    }
    size_t size = 0;
    char *value = rocksdb_get (self->db, self->read_options, POSITION_KEY, 1, &size, &err);
    if (err) {
        s_rocks_error (path, "cannot read the view's position", err);
        pond_view_destroy (&self);
        return NULL;
    }
    if (value && size == 8)
        self->position = pond_get_be64 ((const uint8_t *) value);
    else if (value) {
        zsys_error ("pond_view: %s: position is %zu bytes, not 8: not a pond view?", path, size);
        rocksdb_free (value);
        pond_view_destroy (&self);
        return NULL;
    }
    rocksdb_free (value);
    return self;
}

void
pond_view_destroy (pond_view_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        pond_view_t *self = *self_p;
        if (self->db)
            rocksdb_close (self->db);
        if (self->options)
            rocksdb_options_destroy (self->options);
        if (self->read_options)
            rocksdb_readoptions_destroy (self->read_options);
        if (self->scan_options)
            rocksdb_readoptions_destroy (self->scan_options);
        if (self->write_options)
            rocksdb_writeoptions_destroy (self->write_options);
        if (self->staged)
            s_staged_purge (self);
        zhashx_destroy (&self->staged);
        zhashx_destroy (&self->cache);
        free (self->print_buffer);
        free (self->keys);
        free (self->lengths);
        free (self->path);
        free (self);
        *self_p = NULL;
    }
}

int
pond_view_drop (const char *path)
{
    assert (path);
    if (!zsys_file_exists (path))
        return 0;
    pond_view_limits_t limits;
    pond_view_limits_default (&limits);
    rocksdb_options_t *options = s_options_new (&limits);
    char *err = NULL;
    rocksdb_destroy_db (options, path, &err);
    rocksdb_options_destroy (options);
    if (err)
        return s_rocks_error (path, "cannot delete the view", err);
    //  RocksDB leaves the directory behind when something else is in it
    //  (e.g. an old LOG); an empty one is removed, anything else stays
    if (zsys_file_exists (path) && zsys_dir_delete ("%s", path) && zsys_file_exists (path)) {
        zsys_error ("pond_view: %s still holds files that are not RocksDB's; "
                    "remove them by hand",
                    path);
        return -1;
    }
    return 0;
}

uint64_t
pond_view_position (pond_view_t *self)
{
    assert (self);
    return self->position;
}

//  ---------------------------------------------------------------------
//  Documents as trees: normalizing, measuring

//  cJSON's own rule for valueint (cJSON_SetNumberHelper)
static int
s_valueint (double value)
{
    if (value >= INT_MAX)
        return INT_MAX;
    if (value <= (double) INT_MIN)
        return INT_MIN;
    return (int) value;
}

//  Take over the value of parsed (type, number, string, children) into
//  item, keeping item's key and place; destroys parsed.
static void
s_take_value (cJSON *item, cJSON *parsed)
{
    free (item->valuestring);
    item->valuestring = parsed->valuestring;
    item->child = parsed->child;
    item->valueint = parsed->valueint;
    item->valuedouble = parsed->valuedouble;
    item->type = (item->type & cJSON_StringIsConst) | (parsed->type & 0xFF);
    parsed->valuestring = NULL;
    parsed->child = NULL;
    cJSON_Delete (parsed);
}

//  True if text is a plain non-negative integer cJSON parses exactly as
//  strtod does (all we write as raw: pond_actors_set_uint).
static bool
s_plain_integer (const char *text)
{
    if (*text < '0' || *text > '9' || (*text == '0' && text [1]))
        return false;
    for (const char *digit = text; *digit; digit++)
        if (*digit < '0' || *digit > '9')
            return false;
    return true;
}

//  Make the tree, in place, exactly what cJSON_Parse makes of its printed
//  text, and add its approximate size to *bytes_p. Returns 0, or -1 if
//  the tree would not print, or not parse back (a raw item that is not
//  JSON): then it must not be cached.
static int
s_normalize (cJSON *item, size_t *bytes_p)
{
    for (; item; item = item->next) {
        if (item->string && (item->type & cJSON_StringIsConst)) {
            char *key = strdup (item->string);
            if (!key)
                return -1;
            item->string = key;
            item->type &= ~cJSON_StringIsConst;
        }
        item->type &= ~cJSON_IsReference;
        int type = item->type & 0xFF;
        if (type == cJSON_Raw) {
            const char *text = item->valuestring ? item->valuestring : "";
            size_t digits = strlen (text);
            if (digits && digits <= 19 && s_plain_integer (text)) {
                //  Fits in 64 bits: converted with round to nearest, as
                //  strtod (cJSON's parser) does
                uint64_t whole = 0;
                for (const char *digit = text; *digit; digit++)
                    whole = whole * 10 + (uint64_t) (*digit - '0');
                double value = (double) whole;
                free (item->valuestring);
                item->valuestring = NULL;
                item->valuedouble = value;
                item->valueint = s_valueint (value);
                item->type = (item->type & ~0xFF) | cJSON_Number;
            }
            else {
                cJSON *parsed = cJSON_ParseWithOpts (text, NULL, true);
                if (!parsed)
                    return -1;
                s_take_value (item, parsed);
            }
            type = item->type & 0xFF;
        }
        if (type == cJSON_Number) {
            double value = item->valuedouble;
            if (isnan (value) || isinf (value)) {
                item->type = (item->type & ~0xFF) | cJSON_NULL;
                item->valuedouble = 0;
                item->valueint = 0;
            }
            else {
                if (value == 0)
                    item->valuedouble = 0;    //  -0 prints as 0
                item->valueint = s_valueint (item->valuedouble);
            }
        }
        else if (type == cJSON_String && !item->valuestring) {
            item->valuestring = strdup ("");
            if (!item->valuestring)
                return -1;
        }
        else if (type != cJSON_Object && type != cJSON_Array && type != cJSON_String
                 && type != cJSON_True && type != cJSON_False && type != cJSON_NULL)
            return -1;    //  cJSON_Invalid: would not print
        *bytes_p += NODE_BYTES + (item->string ? TEXT_BYTES : 0)
                  + (item->valuestring ? TEXT_BYTES : 0);
        if (item->child && s_normalize (item->child, bytes_p))
            return -1;
    }
    return 0;
}

//  Approximate memory held by a tree, but for its characters (see
//  NODE_BYTES). Returns SIZE_MAX if an item would not print (cJSON_Invalid).
static size_t
s_tree_bytes (const cJSON *item)
{
    size_t bytes = 0;
    for (; item; item = item->next) {
        int type = item->type & 0xFF;
        if (type != cJSON_Object && type != cJSON_Array && type != cJSON_String
            && type != cJSON_Number && type != cJSON_Raw && type != cJSON_True
            && type != cJSON_False && type != cJSON_NULL)
            return SIZE_MAX;
        bytes += NODE_BYTES + (item->string ? TEXT_BYTES : 0)
               + (item->valuestring ? TEXT_BYTES : 0);
        if (item->child) {
            size_t children = s_tree_bytes (item->child);
            if (children == SIZE_MAX)
                return SIZE_MAX;
            bytes += children;
        }
    }
    return bytes;
}

//  ---------------------------------------------------------------------
//  The document cache

static void
s_lru_unlink (pond_view_t *self, entry_t *entry)
{
    if (entry->prev)
        entry->prev->next = entry->next;
    else
        self->lru_head = entry->next;
    if (entry->next)
        entry->next->prev = entry->prev;
    else
        self->lru_tail = entry->prev;
    entry->prev = entry->next = NULL;
}

static void
s_lru_push (pond_view_t *self, entry_t *entry)
{
    entry->prev = NULL;
    entry->next = self->lru_head;
    if (self->lru_head)
        self->lru_head->prev = entry;
    self->lru_head = entry;
    if (!self->lru_tail)
        self->lru_tail = entry;
}

//  Forget key, if cached.
static void
s_cache_drop (pond_view_t *self, const char *key)
{
    entry_t *entry = (entry_t *) zhashx_lookup (self->cache, key);
    if (entry) {
        s_lru_unlink (self, entry);
        self->stats.docs--;
        self->stats.bytes -= entry->bytes;
        zhashx_delete (self->cache, key);    //  destroys entry and its doc
    }
}

//  Evict the least recently used documents until the cache is in bounds.
static void
s_cache_trim (pond_view_t *self)
{
    while (self->lru_tail
           && (self->stats.docs > self->max_docs || self->stats.bytes > self->max_bytes)) {
        self->stats.evictions++;
        s_cache_drop (self, self->lru_tail->key);
    }
}

//  Keep doc (normalized, committed; bytes its size) as key's document,
//  if the cache takes it. Takes ownership of doc.
//  A cached key is updated in place. A new key gets in while there is
//  room; once the cache is full, only one new key in CACHE_ADMIT_EVERY
//  does (evicting the least recently used). Entities touched in a cycle
//  larger than the cache (a catch-up over many customers) would
//  otherwise evict every document before its next use, paying for the
//  cache at each event and gaining nothing; this way the cache keeps
//  most of what it holds and still follows a hot set that moves.
static void
s_cache_put (pond_view_t *self, const char *key, cJSON *doc, size_t bytes)
{
    entry_t *entry = (entry_t *) zhashx_lookup (self->cache, key);
    if (entry && bytes <= self->max_bytes) {
        cJSON_Delete (entry->doc);
        entry->doc = doc;
        self->stats.bytes = self->stats.bytes - entry->bytes + bytes;
        entry->bytes = bytes;
        if (entry != self->lru_head) {
            s_lru_unlink (self, entry);
            s_lru_push (self, entry);
        }
        s_cache_trim (self);
        return;
    }
    if (entry)
        s_cache_drop (self, key);
    bool room = self->stats.docs < self->max_docs && self->stats.bytes + bytes <= self->max_bytes;
    if (!self->max_docs || bytes > self->max_bytes
        || (!room && self->admit_tick++ % CACHE_ADMIT_EVERY)) {
        cJSON_Delete (doc);
        return;
    }
    entry = (entry_t *) zmalloc (sizeof (entry_t));
    if (!entry) {
        cJSON_Delete (doc);
        return;
    }
    entry->doc = doc;
    entry->bytes = bytes;
    entry->key = strdup (key);
    if (!entry->key || zhashx_insert (self->cache, key, entry)) {
        s_entry_destroy ((void **) &entry);
        return;
    }
    s_lru_push (self, entry);
    self->stats.docs++;
    self->stats.bytes += bytes;
    s_cache_trim (self);
}

void
pond_view_set_cache (pond_view_t *self, size_t max_docs, size_t max_bytes)
{
    assert (self);
    self->max_docs = max_docs;
    self->max_bytes = max_bytes;
    if (max_docs == 0 || max_bytes == 0) {
        self->max_docs = 0;
        self->max_bytes = 0;
    }
    s_cache_trim (self);
}

void
pond_view_stats (pond_view_t *self, pond_view_stats_t *stats)
{
    assert (self);
    assert (stats);
    *stats = self->stats;
}

//  ---------------------------------------------------------------------
//  One event: begin, put/delete, commit or rollback

//  Serialize doc (compact) into the view's reusable buffer, grown as
//  needed: no allocation per document. Returns the text, valid until the
//  next call, or NULL if memory ran out.
static const char *
s_print (pond_view_t *self, const cJSON *doc)
{
    //  cJSON_PrintPreallocated wants 5 bytes more than it prints
    if (self->print_buffer
        && cJSON_PrintPreallocated ((cJSON *) doc, self->print_buffer, (int) self->print_size,
                                    false))
        return self->print_buffer;
    //  Too small (or first use): print once the allocating way, keep room
    char *text = cJSON_PrintUnformatted (doc);
    if (!text)
        return NULL;
    size_t length = strlen (text);
    if (length + 5 > self->print_size) {
        size_t size = (length + 5) * 2 > 4096 ? (length + 5) * 2 : 4096;
        char *bigger = size < INT_MAX ? (char *) realloc (self->print_buffer, size) : NULL;
        if (!bigger) {
            cJSON_free (text);
            return NULL;
        }
        self->print_buffer = bigger;
        self->print_size = size;
    }
    memcpy (self->print_buffer, text, length + 1);
    cJSON_free (text);
    return self->print_buffer;
}

//  Empty the staged hash, destroying the trees it still owns (own: false
//  after a commit moved them to the cache). Key by key, not zhashx_purge:
//  that frees and reallocates the table at every commit, and freeing a
//  large block makes malloc consolidate every small chunk freed since.
static void
s_staged_clear (pond_view_t *self, bool own)
{
    size_t count = zhashx_size (self->staged);
    if (count > self->keys_size) {
        const char **keys = (const char **) realloc (self->keys, count * sizeof *keys);
        if (keys) {
            self->keys = keys;
            self->keys_size = count;
        }
    }
    size_t found = 0;
    for (cJSON *doc = (cJSON *) zhashx_first (self->staged); doc;
         doc = (cJSON *) zhashx_next (self->staged)) {
        if (own && doc != TOMBSTONE_DOC)
            cJSON_Delete (doc);
        if (found < self->keys_size)
            self->keys [found++] = (const char *) zhashx_cursor (self->staged);
    }
    if (found == count)
        for (size_t index = 0; index < found; index++)
            zhashx_delete (self->staged, self->keys [index]);    //  the hash's own key
    else
        zhashx_purge (self->staged);    //  no memory for the keys: the slow way
    self->staged_bytes = 0;
}

//  Drop the staged changes.
static void
s_staged_purge (pond_view_t *self)
{
    s_staged_clear (self, true);
}

void
pond_view_begin (pond_view_t *self)
{
    assert (self);
    s_staged_purge (self);
    self->in_event = true;
}

size_t
pond_view_staged_bytes (pond_view_t *self)
{
    assert (self);
    return self->staged_bytes;
}

int
pond_view_commit (pond_view_t *self, uint64_t seq)
{
    assert (self);
    rocksdb_writebatch_t *batch = rocksdb_writebatch_create ();
    int rc = 0;
    //  The length of each text, in iteration order, for the cache's bytes
    size_t count = zhashx_size (self->staged);
    if (count > self->lengths_size) {
        size_t *lengths = (size_t *) realloc (self->lengths, count * sizeof *lengths);
        if (lengths) {
            self->lengths = lengths;
            self->lengths_size = count;
        }
    }
    size_t index = 0;
    for (cJSON *doc = (cJSON *) zhashx_first (self->staged); doc && rc == 0;
         doc = (cJSON *) zhashx_next (self->staged), index++) {
        size_t size;
        char *key = s_doc_key ((const char *) zhashx_cursor (self->staged), &size);
        //  A document staged as text (s_stage) goes as it is
        bool raw = doc != TOMBSTONE_DOC && cJSON_IsRaw (doc) && !doc->child && doc->valuestring;
        const char *text = !key || doc == TOMBSTONE_DOC ? NULL
                         : raw                          ? doc->valuestring
                                                        : s_print (self, doc);
        if (!key || (doc != TOMBSTONE_DOC && !text)) {
            zsys_error ("pond_view: out of memory committing seq %" PRIu64, seq);
            rc = -1;
        }
        else if (doc == TOMBSTONE_DOC)
            rocksdb_writebatch_delete (batch, key, size);
        else {
            size_t length = strlen (text);
            rocksdb_writebatch_put (batch, key, size, text, length);
            if (index < self->lengths_size)
                self->lengths [index] = length;
            if (raw) {
                //  The batch holds it now: one copy, not two, of what may
                //  be a large batch. Not cached (see below)
                cJSON_free (doc->valuestring);
                doc->valuestring = NULL;
            }
        }
        free (key);
    }
    uint8_t position [8];
    pond_put_be64 (position, seq);
    rocksdb_writebatch_put (batch, POSITION_KEY, 1, (const char *) position, 8);
    if (rc == 0) {
        char *err = NULL;
        rocksdb_write (self->db, self->write_options, batch, &err);
        if (err) {
            char what [64];
            snprintf (what, sizeof what, "cannot commit seq %" PRIu64, seq);
            rc = s_rocks_error (self->path, what, err);
        }
        else
            self->position = seq;
    }
    rocksdb_writebatch_destroy (batch);
    if (rc == 0) {
        //  Written: the staged trees are the committed documents now
        index = 0;
        for (cJSON *doc = (cJSON *) zhashx_first (self->staged); doc;
             doc = (cJSON *) zhashx_next (self->staged), index++) {
            const char *key = (const char *) zhashx_cursor (self->staged);
            if (doc == TOMBSTONE_DOC) {
                s_cache_drop (self, key);
                continue;
            }
            //  Unknown length (no memory for it): too big to cache. A
            //  document staged as text is not cached either: its text is
            //  gone, and one event that changes that many documents is no
            //  sign that they are read again soon
            size_t bytes = index < self->lengths_size ? self->lengths [index] : SIZE_MAX / 2;
            bool spent = cJSON_IsRaw (doc) && !doc->child && !doc->valuestring;
            if (self->max_docs && !spent && s_normalize (doc, &bytes) == 0)
                s_cache_put (self, key, doc, bytes);    //  takes doc
            else {
                s_cache_drop (self, key);
                cJSON_Delete (doc);
            }
        }
        s_staged_clear (self, false);    //  owns nothing now
    }
    //  Success or not, the event is over: a failed commit wrote nothing,
    //  and the cache never saw what it staged
    s_staged_purge (self);
    self->in_event = false;
    return rc;
}

void
pond_view_rollback (pond_view_t *self)
{
    assert (self);
    s_staged_purge (self);
    self->in_event = false;
}

//  ---------------------------------------------------------------------
//  Documents

//  Read the committed JSON text of key. Returns it (caller frees with
//  rocksdb_free) or NULL if absent or on error (logged).
static char *
s_get_committed (pond_view_t *self, const char *key, size_t *size_p)
{
    size_t size;
    char *stored = s_doc_key (key, &size);
    if (!stored)
        return NULL;
    char *err = NULL;
    char *value = rocksdb_get (self->db, self->read_options, stored, size, size_p, &err);
    free (stored);
    if (err) {
        s_rocks_error (self->path, "cannot read a document", err);
        return NULL;
    }
    return value;
}

//  A staged tree as a read returns it: what parsing its text would give.
static cJSON *
s_staged_copy (const cJSON *staged)
{
    cJSON *copy = cJSON_Duplicate (staged, true);
    size_t bytes = 0;
    if (copy && s_normalize (copy, &bytes) == 0)
        return copy;
    cJSON_Delete (copy);
    //  Does not survive printing and parsing as it is: do exactly that
    char *text = cJSON_PrintUnformatted (staged);
    cJSON *doc = text ? cJSON_Parse (text) : NULL;
    cJSON_free (text);
    return doc;
}

cJSON *
pond_view_get (pond_view_t *self, const char *key)
{
    assert (self);
    assert (key);
    if (self->in_event) {
        const cJSON *staged = (const cJSON *) zhashx_lookup (self->staged, key);
        if (staged)
            return staged == TOMBSTONE_DOC ? NULL : s_staged_copy (staged);
    }
    entry_t *entry = (entry_t *) zhashx_lookup (self->cache, key);
    if (entry) {
        self->stats.hits++;
        if (entry != self->lru_head) {
            s_lru_unlink (self, entry);
            s_lru_push (self, entry);
        }
        return cJSON_Duplicate (entry->doc, true);
    }
    self->stats.misses++;
    size_t size;
    char *value = s_get_committed (self, key, &size);
    if (!value)
        return NULL;
    cJSON *doc = cJSON_ParseWithLength (value, size);
    if (!doc)
        zsys_error ("pond_view: %s: document '%s' is not JSON", self->path, key);
    rocksdb_free (value);
    //  Inside an event the document is about to be put: the commit caches
    //  it. Outside (queries), keep what we parsed
    if (doc && self->max_docs && !self->in_event) {
        cJSON *copy = cJSON_Duplicate (doc, true);
        if (copy)
            s_cache_put (self, key, copy, s_tree_bytes (copy) + size);
    }
    return doc;
}

//  Write text for key at once (outside an event); NULL deletes.
static int
s_write_now (pond_view_t *self, const char *key, const char *text)
{
    size_t size;
    char *stored = s_doc_key (key, &size);
    if (!stored)
        return -1;
    s_cache_drop (self, key);
    char *err = NULL;
    if (text)
        rocksdb_put (self->db, self->write_options, stored, size, text, strlen (text), &err);
    else
        rocksdb_delete (self->db, self->write_options, stored, size, &err);
    free (stored);
    return err ? s_rocks_error (self->path, "cannot write a document", err) : 0;
}

//  Approximate memory of a staged document: a tree, or its text as one
//  raw item (see s_stage)
static size_t
s_staged_size (const cJSON *doc)
{
    if (cJSON_IsRaw (doc) && !doc->child && doc->valuestring)
        return NODE_BYTES + TEXT_BYTES + strlen (doc->valuestring);
    return s_tree_bytes (doc);
}

//  Stage doc (or TOMBSTONE_DOC; bytes its size) for key. Takes ownership
//  of doc. Past POND_VIEW_STAGED_TREES bytes staged, a tree is staged as
//  its printed text instead, in one raw item: it prints (commit), parses
//  (pond_view_get, the cache) and reads back exactly as the tree would,
//  at a fraction of the memory of a tree of small items.
static void
s_stage (pond_view_t *self, const char *key, cJSON *doc, size_t bytes)
{
    cJSON *old = (cJSON *) zhashx_lookup (self->staged, key);
    if (old && old != TOMBSTONE_DOC) {
        size_t old_bytes = s_staged_size (old);
        self->staged_bytes = self->staged_bytes > old_bytes ? self->staged_bytes - old_bytes : 0;
        cJSON_Delete (old);
    }
    if (doc != TOMBSTONE_DOC && !cJSON_IsRaw (doc)
        && self->staged_bytes + bytes > POND_VIEW_STAGED_TREES) {
        char *text = cJSON_PrintUnformatted (doc);
        cJSON *raw = text ? cJSON_CreateRaw (text) : NULL;
        cJSON_free (text);
        if (raw) {
            //  else (out of memory) the tree stays: it is what it stands for
            cJSON_Delete (doc);
            doc = raw;
            bytes = s_staged_size (raw);
        }
    }
    zhashx_update (self->staged, key, doc);    //  staged owns doc now
    self->staged_bytes += bytes;
}

int
pond_view_put (pond_view_t *self, const char *key, const cJSON *doc)
{
    assert (self);
    assert (key);
    if (!doc) {
        zsys_error ("pond_view: put '%s' without a document (use pond_view_delete)", key);
        return -1;
    }
    if (!self->in_event) {
        char *text = cJSON_PrintUnformatted (doc);
        if (!text) {
            zsys_error ("pond_view: cannot serialize document '%s'", key);
            return -1;
        }
        int rc = s_write_now (self, key, text);
        cJSON_free (text);
        return rc;
    }
    //  Staged as a tree, serialized once at commit; refuse now what
    //  would not serialize then
    size_t bytes = s_tree_bytes (doc);
    cJSON *copy = bytes != SIZE_MAX ? cJSON_Duplicate (doc, true) : NULL;
    if (!copy) {
        zsys_error ("pond_view: cannot serialize document '%s'", key);
        return -1;
    }
    s_stage (self, key, copy, bytes);
    return 0;
}

int
pond_view_put_take (pond_view_t *self, const char *key, cJSON **doc_p)
{
    assert (self);
    assert (key);
    assert (doc_p);
    cJSON *doc = *doc_p;
    *doc_p = NULL;
    size_t bytes = doc ? s_tree_bytes (doc) : SIZE_MAX;
    if (!self->in_event || bytes == SIZE_MAX) {
        int rc = pond_view_put (self, key, doc);    //  at once, or the error
        cJSON_Delete (doc);
        return rc;
    }
    s_stage (self, key, doc, bytes);
    return 0;
}

int
pond_view_delete (pond_view_t *self, const char *key)
{
    assert (self);
    assert (key);
    if (!self->in_event)
        return s_write_now (self, key, NULL);
    s_stage (self, key, TOMBSTONE_DOC, 0);
    return 0;
}

//  ---------------------------------------------------------------------
//  Scan and dump

static int
s_collect_key (const char *key, const cJSON *doc, void *arg)
{
    (void) doc;
    char *copy = strdup (key);
    return copy && zlistx_add_end ((zlistx_t *) arg, copy) ? 0 : (free (copy), -1);
}

static int s_scan_committed (pond_view_t *self, const char *prefix, pond_view_fn *fn, void *arg);

static int
s_compare_strings (const void *a, const void *b)
{
    return strcmp (*(const char *const *) a, *(const char *const *) b);
}

//  pond_view_scan inside an event: the keys of both, sorted, each read
//  through pond_view_get (staged first)
static int
s_scan_staged (pond_view_t *self, const char *prefix, pond_view_fn *fn, void *arg)
{
    size_t prefix_len = strlen (prefix);
    zlistx_t *keys = zlistx_new ();
    if (!keys)
        return -1;
    zlistx_set_destructor (keys, (zlistx_destructor_fn *) zstr_free);
    int rc = s_scan_committed (self, prefix, s_collect_key, keys);
    for (const cJSON *doc = (const cJSON *) zhashx_first (self->staged); doc && rc == 0;
         doc = (const cJSON *) zhashx_next (self->staged)) {
        const char *key = (const char *) zhashx_cursor (self->staged);
        if (strncmp (key, prefix, prefix_len) == 0 && !zlistx_add_end (keys, strdup (key)))
            rc = -1;
    }
    size_t count = zlistx_size (keys);
    const char **sorted = count ? (const char **) calloc (count, sizeof *sorted) : NULL;
    if (count && !sorted)
        rc = -1;
    size_t index = 0;
    for (const char *key = (const char *) zlistx_first (keys); key && sorted;
         key = (const char *) zlistx_next (keys))
        sorted [index++] = key;
    if (rc == 0 && count > 1)
        qsort (sorted, count, sizeof *sorted, s_compare_strings);
    for (index = 0; rc == 0 && index < count; index++) {
        if (index && streq (sorted [index], sorted [index - 1]))
            continue;    //  committed and staged
        cJSON *doc = pond_view_get (self, sorted [index]);
        int stop = doc ? fn (sorted [index], doc, arg) : 0;
        cJSON_Delete (doc);
        if (stop)
            break;
    }
    free (sorted);
    zlistx_destroy (&keys);
    return rc;
}

int
pond_view_scan (pond_view_t *self, const char *prefix, pond_view_fn *fn, void *arg)
{
    assert (self);
    assert (fn);
    if (self->in_event && zhashx_size (self->staged))
        return s_scan_staged (self, prefix ? prefix : "", fn, arg);
    return s_scan_committed (self, prefix, fn, arg);
}

//  The committed documents only
static int
s_scan_committed (pond_view_t *self, const char *prefix, pond_view_fn *fn, void *arg)
{
    size_t start_size;
    char *start = s_doc_key (prefix ? prefix : "", &start_size);
    if (!start)
        return -1;
    rocksdb_iterator_t *it = rocksdb_create_iterator (self->db, self->scan_options);
    int rc = 0;
    for (rocksdb_iter_seek (it, start, start_size); rocksdb_iter_valid (it);
         rocksdb_iter_next (it)) {
        size_t key_size, value_size;
        const char *key = rocksdb_iter_key (it, &key_size);
        if (key_size < start_size || memcmp (key, start, start_size) != 0)
            break;
        const char *value = rocksdb_iter_value (it, &value_size);
        char *name = (char *) malloc (key_size);
        if (!name) {
            rc = -1;
            break;
        }
        memcpy (name, key + 1, key_size - 1);
        name [key_size - 1] = 0;
        cJSON *doc = cJSON_ParseWithLength (value, value_size);
        int stop = 0;
        if (doc)
            stop = fn (name, doc, arg);
        else
            zsys_error ("pond_view: %s: document '%s' is not JSON; skipped", self->path, name);
        cJSON_Delete (doc);
        free (name);
        if (stop)
            break;
    }
    char *err = NULL;
    rocksdb_iter_get_error (it, &err);
    if (err)
        rc = s_rocks_error (self->path, "cannot scan the view", err);
    rocksdb_iter_destroy (it);
    free (start);
    return rc;
}

static int
s_compare_items (const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *) a;
    const cJSON *y = *(const cJSON *const *) b;
    int rc = strcmp (x->string ? x->string : "", y->string ? y->string : "");
    //  Same key twice (cJSON allows it): keep the original order, which
    //  s_canonical parked in prev while sorting
    uintptr_t i = (uintptr_t) x->prev, j = (uintptr_t) y->prev;
    return rc ? rc : (i < j ? -1 : i > j);
}

//  Sort the keys of every object in the tree, recursively, so that two
//  equal documents print as the same text. Returns 0, or -1 if memory ran
//  out (the tree is then unchanged at that level).
static int
s_canonical (cJSON *node)
{
    if (!cJSON_IsObject (node) && !cJSON_IsArray (node))
        return 0;
    size_t count = 0;
    for (cJSON *child = node->child; child; child = child->next) {
        if (s_canonical (child))
            return -1;
        count++;
    }
    if (!cJSON_IsObject (node) || count < 2)
        return 0;
    cJSON **items = (cJSON **) malloc (count * sizeof (cJSON *));
    if (!items)
        return -1;
    size_t index = 0;
    for (cJSON *child = node->child; child; child = child->next)
        items [index++] = child;
    //  qsort is not stable: remember each item's place for ties
    for (size_t i = 0; i < count; i++)
        items [i]->prev = (cJSON *) (uintptr_t) i;
    qsort (items, count, sizeof (cJSON *), s_compare_items);
    //  Relink: cJSON keeps head->prev pointing at the tail
    for (size_t i = 0; i < count; i++) {
        items [i]->next = i + 1 < count ? items [i + 1] : NULL;
        items [i]->prev = i ? items [i - 1] : items [count - 1];
    }
    node->child = items [0];
    free (items);
    return 0;
}

//  A growing text buffer for the dump
typedef struct {
    char *data;
    size_t size;
    size_t capacity;
    bool failed;
} buffer_t;

static void
s_append (buffer_t *buffer, const char *text)
{
    size_t len = strlen (text);
    if (buffer->failed)
        return;
    if (buffer->size + len + 1 > buffer->capacity) {
        size_t capacity = buffer->capacity ? buffer->capacity : 4096;
        while (buffer->size + len + 1 > capacity)
            capacity *= 2;
        char *bigger = (char *) realloc (buffer->data, capacity);
        if (!bigger) {
            buffer->failed = true;
            return;
        }
        buffer->data = bigger;
        buffer->capacity = capacity;
    }
    memcpy (buffer->data + buffer->size, text, len + 1);
    buffer->size += len;
}

typedef struct {
    buffer_t *buffer;
    size_t count;
} dump_t;

static int
s_dump_doc (const char *key, const cJSON *doc, void *arg)
{
    dump_t *dump = (dump_t *) arg;
    cJSON *copy = cJSON_Duplicate (doc, true);
    cJSON *name = cJSON_CreateString (key);
    char *key_text = name ? cJSON_PrintUnformatted (name) : NULL;
    char *doc_text = copy && s_canonical (copy) == 0 ? cJSON_PrintUnformatted (copy) : NULL;
    if (key_text && doc_text) {
        if (dump->count++)
            s_append (dump->buffer, ",");
        s_append (dump->buffer, key_text);
        s_append (dump->buffer, ":");
        s_append (dump->buffer, doc_text);
    }
    else
        dump->buffer->failed = true;
    cJSON_free (key_text);
    cJSON_free (doc_text);
    cJSON_Delete (name);
    cJSON_Delete (copy);
    return dump->buffer->failed ? -1 : 0;
}

char *
pond_view_dump (pond_view_t *self)
{
    assert (self);
    buffer_t buffer = { 0 };
    char head [64];
    snprintf (head, sizeof head, "{\"position\":%" PRIu64 ",\"docs\":{", self->position);
    s_append (&buffer, head);
    dump_t dump = { &buffer, 0 };
    //  RocksDB orders keys bytewise: the docs come out sorted by key
    int rc = s_scan_committed (self, "", s_dump_doc, &dump);
    s_append (&buffer, "}}");
    if (rc || buffer.failed) {
        zsys_error ("pond_view: %s: cannot dump the view", self->path);
        free (buffer.data);
        return NULL;
    }
    return buffer.data;
}
