/*  pond_view: an actor's own view database, a cache of the log.
    See pond_view.h.

    Key layout (the database belongs to the view alone):

        'd' KEY     a document: compact JSON text
        'p'         the position: seq of the last event applied, 8 bytes
                    big-endian

    Users only ever see KEY; the one-byte prefixes keep the position out of
    pond_view_scan and pond_view_dump whatever keys an actor chooses.

    The changes of one event are staged in memory (key -> JSON text, or ""
    for a delete: no JSON text is empty) and written by pond_view_commit
    in one WriteBatch together with the new position. Either the whole
    event lands, position included, or none of it: a view never holds half
    an event, and an event it holds is never applied again.

    View writes are NOT synced. A view is a cache of the log: what matters
    is atomicity, not durability. A killed process loses nothing (RocksDB's
    WAL is in the OS page cache); a machine crash may lose the last few
    commits, but each one whole, position with its changes, so the actor
    simply replays them from the log on start.
*/
#include "pond_view.h"
#include "pond_be64.h"

#include <czmq.h>
#include <rocksdb/c.h>

#define DOC_PREFIX      'd'
#define POSITION_KEY    "p"
#define TOMBSTONE       ""
#define VIEW_MEMTABLE_MB    8       //  per memtable, two at most
#define VIEW_CACHE_MB       8       //  block cache

struct _pond_view_t {
    char *path;
    rocksdb_t *db;
    rocksdb_options_t *options;
    rocksdb_readoptions_t *read_options;
    rocksdb_writeoptions_t *write_options;
    uint64_t position;
    bool in_event;              //  between begin and commit/rollback
    zhashx_t *staged;           //  key -> JSON text, or TOMBSTONE
};

//  ---------------------------------------------------------------------
//  Helpers

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
s_options_new (void)
{
    rocksdb_options_t *options = rocksdb_options_create ();
    rocksdb_options_set_create_if_missing (options, 1);
    rocksdb_options_set_max_open_files (options, 256);
    //  A view is small (a document per entity) but rewritten at every
    //  event: RocksDB's defaults (64 MiB memtables, two of them) would let
    //  an actor grow past 150 MiB in a catch-up. VIEW_MEMTABLE_MB per
    //  memtable and a VIEW_CACHE_MB block cache keep it flat.
    rocksdb_options_set_write_buffer_size (options, VIEW_MEMTABLE_MB * 1024 * 1024);
    rocksdb_options_set_max_write_buffer_number (options, 2);
    rocksdb_block_based_table_options_t *table = rocksdb_block_based_options_create ();
    rocksdb_cache_t *cache = rocksdb_cache_create_lru (VIEW_CACHE_MB * 1024 * 1024);
    rocksdb_block_based_options_set_block_cache (table, cache);
    rocksdb_options_set_block_based_table_factory (options, table);
    //  The options hold their own references to both
    rocksdb_cache_destroy (cache);
    rocksdb_block_based_options_destroy (table);
    return options;
}

//  ---------------------------------------------------------------------
//  Open, close, drop

pond_view_t *
pond_view_open (const char *path)
{
    assert (path);
    pond_view_t *self = (pond_view_t *) zmalloc (sizeof (pond_view_t));
    if (!self)
        return NULL;
    self->path = strdup (path);
    self->options = s_options_new ();
    self->read_options = rocksdb_readoptions_create ();
    self->write_options = rocksdb_writeoptions_create ();
    //  Not synced: a view is a cache of the log (see the file comment)
    rocksdb_writeoptions_set_sync (self->write_options, 0);
    self->staged = zhashx_new ();
    zhashx_set_destructor (self->staged, (zhashx_destructor_fn *) zstr_free);

    //  RocksDB creates the last directory only: make the parents
    char *parent = strdup (path);
    char *slash = parent? strrchr (parent, '/'): NULL;
    if (slash && slash != parent) {
        *slash = 0;
        if (!zsys_file_exists (parent) && zsys_dir_create ("%s", parent))
            zsys_error ("pond_view: cannot create directory %s: %s", parent, strerror (errno));
    }
    free (parent);

    char *err = NULL;
    self->db = rocksdb_open (self->options, path, &err);
    if (err) {
        zsys_error ("pond_view: cannot open %s: %s (does another process of this actor "
                    "hold it?)", path, err);
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
    else
    if (value) {
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
        if (self->write_options)
            rocksdb_writeoptions_destroy (self->write_options);
        zhashx_destroy (&self->staged);
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
    rocksdb_options_t *options = s_options_new ();
    char *err = NULL;
    rocksdb_destroy_db (options, path, &err);
    rocksdb_options_destroy (options);
    if (err)
        return s_rocks_error (path, "cannot delete the view", err);
    //  RocksDB leaves the directory behind when something else is in it
    //  (e.g. an old LOG); an empty one is removed, anything else stays
    if (zsys_file_exists (path) && zsys_dir_delete ("%s", path) && zsys_file_exists (path)) {
        zsys_error ("pond_view: %s still holds files that are not RocksDB's; "
                    "remove them by hand", path);
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
//  One event: begin, put/delete, commit or rollback

void
pond_view_begin (pond_view_t *self)
{
    assert (self);
    zhashx_purge (self->staged);
    self->in_event = true;
}

int
pond_view_commit (pond_view_t *self, uint64_t seq)
{
    assert (self);
    rocksdb_writebatch_t *batch = rocksdb_writebatch_create ();
    int rc = 0;
    for (const char *text = (const char *) zhashx_first (self->staged); text && rc == 0;
         text = (const char *) zhashx_next (self->staged)) {
        size_t size;
        char *key = s_doc_key ((const char *) zhashx_cursor (self->staged), &size);
        if (!key) {
            zsys_error ("pond_view: out of memory committing seq %" PRIu64, seq);
            rc = -1;
            break;
        }
        if (streq (text, TOMBSTONE))
            rocksdb_writebatch_delete (batch, key, size);
        else
            rocksdb_writebatch_put (batch, key, size, text, strlen (text));
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
    //  Success or not, the event is over: a failed commit wrote nothing
    zhashx_purge (self->staged);
    self->in_event = false;
    return rc;
}

void
pond_view_rollback (pond_view_t *self)
{
    assert (self);
    zhashx_purge (self->staged);
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

cJSON *
pond_view_get (pond_view_t *self, const char *key)
{
    assert (self);
    assert (key);
    if (self->in_event) {
        const char *text = (const char *) zhashx_lookup (self->staged, key);
        if (text)
            return streq (text, TOMBSTONE)? NULL: cJSON_Parse (text);
    }
    size_t size;
    char *value = s_get_committed (self, key, &size);
    if (!value)
        return NULL;
    cJSON *doc = cJSON_ParseWithLength (value, size);
    if (!doc)
        zsys_error ("pond_view: %s: document '%s' is not JSON", self->path, key);
    rocksdb_free (value);
    return doc;
}

//  Stage (or, outside an event, write at once) text for key; TOMBSTONE
//  deletes. Takes ownership of text.
static int
s_write (pond_view_t *self, const char *key, char *text)
{
    if (self->in_event) {
        zhashx_update (self->staged, key, text);    //  the hash owns text now
        return 0;
    }
    size_t size;
    char *stored = s_doc_key (key, &size);
    int rc = -1;
    if (stored) {
        char *err = NULL;
        if (streq (text, TOMBSTONE))
            rocksdb_delete (self->db, self->write_options, stored, size, &err);
        else
            rocksdb_put (self->db, self->write_options, stored, size, text, strlen (text), &err);
        rc = err? s_rocks_error (self->path, "cannot write a document", err): 0;
        free (stored);
    }
    free (text);
    return rc;
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
    char *text = cJSON_PrintUnformatted (doc);
    if (!text) {
        zsys_error ("pond_view: cannot serialize document '%s'", key);
        return -1;
    }
    //  cJSON allocates with malloc unless told otherwise: give the hash a
    //  string it may free with free ()
    char *owned = strdup (text);
    cJSON_free (text);
    return owned? s_write (self, key, owned): -1;
}

int
pond_view_delete (pond_view_t *self, const char *key)
{
    assert (self);
    assert (key);
    char *tombstone = strdup (TOMBSTONE);
    return tombstone? s_write (self, key, tombstone): -1;
}

//  ---------------------------------------------------------------------
//  Scan and dump

int
pond_view_scan (pond_view_t *self, const char *prefix, pond_view_fn *fn, void *arg)
{
    assert (self);
    assert (fn);
    size_t start_size;
    char *start = s_doc_key (prefix? prefix: "", &start_size);
    if (!start)
        return -1;
    rocksdb_iterator_t *it = rocksdb_create_iterator (self->db, self->read_options);
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
    int rc = strcmp (x->string? x->string: "", y->string? y->string: "");
    //  Same key twice (cJSON allows it): keep the original order, which
    //  s_canonical parked in prev while sorting
    uintptr_t i = (uintptr_t) x->prev, j = (uintptr_t) y->prev;
    return rc? rc: (i < j? -1: i > j);
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
        items [i]->next = i + 1 < count? items [i + 1]: NULL;
        items [i]->prev = i? items [i - 1]: items [count - 1];
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
        size_t capacity = buffer->capacity? buffer->capacity: 4096;
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
    char *key_text = name? cJSON_PrintUnformatted (name): NULL;
    char *doc_text = copy && s_canonical (copy) == 0? cJSON_PrintUnformatted (copy): NULL;
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
    return dump->buffer->failed? -1: 0;
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
    int rc = pond_view_scan (self, "", s_dump_doc, &dump);
    s_append (&buffer, "}}");
    if (rc || buffer.failed) {
        zsys_error ("pond_view: %s: cannot dump the view", self->path);
        free (buffer.data);
        return NULL;
    }
    return buffer.data;
}
