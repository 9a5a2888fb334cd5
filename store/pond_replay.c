/*  pond_replay: a snapshot cursor over the pond log; see pond_replay.h.

    Names mode merges up to POND_REPLAY_MAX_NAMES by_name iterators: each
    key ends with ts and seq as big-endian numbers, so comparing those 16
    bytes orders events by (ts, seq) whatever the name. An iterator is
    advanced only once its event is in the message, so an event that does
    not fit a chunk is simply the first of the next one.
*/
#include "pond_replay.h"
#include "pond_store_internal.h"

typedef enum { MODE_LOG, MODE_ENTITY, MODE_NAMES } replay_mode_t;

#define KEY_MAX     (POND_ENTITY_MAX + 1 + 16)
#define SKIP_MAX    20000           //  events filtered out in one fill at most

//  One iterator over one key range
typedef struct {
    rocksdb_readoptions_t *options;
    rocksdb_iterator_t *it;
    uint8_t bound [KEY_MAX];        //  exclusive upper bound; RocksDB keeps a pointer
    size_t prefix;                  //  bytes before the BE64 fields of a key
} s_cursor_t;

struct _pond_replay_t {
    pond_store_t *store;
    const rocksdb_snapshot_t *snapshot;
    rocksdb_readoptions_t *get_options;     //  point reads of the log in the snapshot
    replay_mode_t mode;
    s_cursor_t cursors [POND_REPLAY_MAX_NAMES];
    size_t ncursors;
    uint64_t limit;
    uint64_t count;
    uint64_t head;                          //  newest seq in the snapshot
    //  Log mode filtered by names (order "seq"): names wanted, else all
    char names [POND_REPLAY_MAX_NAMES][POND_NAME_MAX + 1];
    size_t names_count;
    char *error;
};

static int
s_cursor_open (pond_replay_t *self, s_cursor_t *cursor, pond_store_cf_t cf,
               const uint8_t *start, size_t start_size, const uint8_t *bound, size_t bound_size,
               size_t prefix)
{
    cursor->options = rocksdb_readoptions_create ();
    if (!cursor->options)
        return -1;
    rocksdb_readoptions_set_snapshot (cursor->options, self->snapshot);
    //  A replay may scan millions of events once: keep them out of the
    //  block cache that appends rely on
    rocksdb_readoptions_set_fill_cache (cursor->options, 0);
    if (bound) {
        memcpy (cursor->bound, bound, bound_size);
        rocksdb_readoptions_set_iterate_upper_bound (cursor->options,
                                                     (const char *) cursor->bound, bound_size);
    }
    cursor->it = rocksdb_create_iterator_cf (pond_store_db (self->store), cursor->options,
                                             pond_store_cf (self->store, cf));
    if (!cursor->it)
        return -1;
    rocksdb_iter_seek (cursor->it, (const char *) start, start_size);
    cursor->prefix = prefix;
    return 0;
}

//  text 0x00 then the given BE64 values; returns the key size.
static size_t
s_key (uint8_t *key, const char *text, uint8_t sep, int values, uint64_t first, uint64_t second)
{
    size_t len = strlen (text);
    memcpy (key, text, len);
    key [len++] = sep;
    if (values > 0) {
        pond_put_be64 (key + len, first);
        len += 8;
    }
    if (values > 1) {
        pond_put_be64 (key + len, second);
        len += 8;
    }
    return len;
}

pond_replay_t *
pond_replay_new (pond_store_t *store, const pond_replay_req_t *request)
{
    assert (store);
    assert (request);
    pond_replay_t *self = (pond_replay_t *) zmalloc (sizeof (pond_replay_t));
    if (!self)
        return NULL;
    self->store = store;
    self->limit = request->limit;
    //  The store is single-threaded: head and snapshot describe one moment
    self->head = pond_store_head (store);
    self->snapshot = rocksdb_create_snapshot (pond_store_db (store));
    self->get_options = rocksdb_readoptions_create ();
    rocksdb_readoptions_set_snapshot (self->get_options, self->snapshot);
    rocksdb_readoptions_set_fill_cache (self->get_options, 0);

    uint8_t start [KEY_MAX], bound [KEY_MAX];
    int rc = 0;
    if (request->names_count > 0 && !streq (request->order, "seq")) {
        self->mode = MODE_NAMES;
        for (size_t i = 0; i < request->names_count && i < POND_REPLAY_MAX_NAMES && !rc; i++) {
            const char *name = request->names [i];
            bool seen = false;      //  a name asked twice is merged once
            for (size_t j = 0; j < i; j++)
                seen |= streq (request->names [j], name);
            if (seen)
                continue;
            size_t start_size = s_key (start, name, POND_KEY_SEP, 2, request->from_ts, 0);
            size_t bound_size = request->to_ts
                ? s_key (bound, name, POND_KEY_SEP, 1, request->to_ts, 0)
                : s_key (bound, name, POND_KEY_SEP_END, 0, 0, 0);
            rc = s_cursor_open (self, &self->cursors [self->ncursors++], POND_CF_BY_NAME,
                                start, start_size, bound, bound_size, strlen (name) + 1);
        }
    }
    else
    if (*request->entity) {
        self->mode = MODE_ENTITY;
        size_t start_size = s_key (start, request->entity, POND_KEY_SEP, 1, 0, 0);
        size_t bound_size = s_key (bound, request->entity, POND_KEY_SEP_END, 0, 0, 0);
        rc = s_cursor_open (self, &self->cursors [self->ncursors++], POND_CF_BY_ENTITY,
                            start, start_size, bound, bound_size,
                            strlen (request->entity) + 1);
    }
    else {
        self->mode = MODE_LOG;
        for (size_t i = 0; i < request->names_count && i < POND_REPLAY_MAX_NAMES; i++)
            strcpy (self->names [self->names_count++], request->names [i]);
        pond_put_be64 (start, request->from_seq? request->from_seq: 1);
        pond_put_be64 (bound, request->to_seq);
        rc = s_cursor_open (self, &self->cursors [self->ncursors++], POND_CF_LOG,
                            start, 8, request->to_seq? bound: NULL, 8, 0);
    }
    if (rc)
        pond_replay_destroy (&self);
    return self;
}

void
pond_replay_destroy (pond_replay_t **self_p)
{
    if (self_p && *self_p) {
        pond_replay_t *self = *self_p;
        for (size_t i = 0; i < self->ncursors; i++) {
            if (self->cursors [i].it)
                rocksdb_iter_destroy (self->cursors [i].it);
            if (self->cursors [i].options)
                rocksdb_readoptions_destroy (self->cursors [i].options);
        }
        if (self->get_options)
            rocksdb_readoptions_destroy (self->get_options);
        if (self->snapshot)
            rocksdb_release_snapshot (pond_store_db (self->store), self->snapshot);
        free (self->error);
        free (self);
        *self_p = NULL;
    }
}

//  ---------------------------------------------------------------------
//  Reading

static void
s_fail (pond_replay_t *self, const char *format, ...)
{
    if (self->error)
        return;
    va_list args;
    va_start (args, format);
    self->error = zsys_vprintf (format, args);
    va_end (args);
    zsys_error ("replay: %s", self->error? self->error: "out of memory");
    if (!self->error)
        self->error = strdup ("out of memory");
}

//  The cursor whose event comes next, or NULL when all are exhausted.
static s_cursor_t *
s_next_cursor (pond_replay_t *self)
{
    s_cursor_t *best = NULL;
    const uint8_t *best_key = NULL;
    for (size_t i = 0; i < self->ncursors; i++) {
        s_cursor_t *cursor = &self->cursors [i];
        if (!rocksdb_iter_valid (cursor->it))
            continue;
        size_t klen;
        const uint8_t *key = (const uint8_t *) rocksdb_iter_key (cursor->it, &klen);
        if (klen != cursor->prefix + (self->mode == MODE_NAMES? 16: 8)) {
            s_fail (self, "index key of %zu bytes; the store is damaged", klen);
            return NULL;
        }
        //  ts then seq, big-endian: memcmp orders by (ts, seq)
        if (!best || memcmp (key + cursor->prefix, best_key + best->prefix, 16) < 0) {
            best = cursor;
            best_key = key;
        }
    }
    return best;
}

//  Log mode with a names filter: is this stored event one of them?
static bool
s_wanted (pond_replay_t *self, const char *value, size_t vlen)
{
    if (self->names_count == 0)
        return true;
    char err [POND_ERR_SIZE];
    pond_event_t *event = pond_event_decode ((const uint8_t *) value, vlen, err, sizeof err);
    if (!event) {
        s_fail (self, "unreadable event in the log: %s", err);
        return false;
    }
    bool wanted = false;
    for (size_t i = 0; i < self->names_count && !wanted; i++)
        wanted = streq (self->names [i], pond_event_name (event));
    pond_event_destroy (&event);
    return wanted;
}

//  An iterator that stopped: was it the end, or an error?
static void
s_check_errors (pond_replay_t *self)
{
    for (size_t i = 0; i < self->ncursors; i++) {
        char *err = NULL;
        rocksdb_iter_get_error (self->cursors [i].it, &err);
        if (err) {
            s_fail (self, "cannot read the store: %s", err);
            rocksdb_free (err);
        }
    }
}

int
pond_replay_fill (pond_replay_t *self, zmsg_t *msg, size_t max_events, size_t max_bytes)
{
    assert (self);
    assert (msg);
    int added = 0;
    size_t bytes = 0;
    size_t skipped = 0;             //  filtered out; bounded so a fill is short
    while (!self->error && (size_t) added < max_events
       &&  (self->limit == 0 || self->count < self->limit)) {
        s_cursor_t *cursor = self->mode == MODE_NAMES? s_next_cursor (self): &self->cursors [0];
        if (!cursor || !rocksdb_iter_valid (cursor->it))
            break;
        const char *value;
        size_t vlen;
        rocksdb_pinnableslice_t *pinned = NULL;
        if (self->mode == MODE_LOG) {
            value = rocksdb_iter_value (cursor->it, &vlen);
            if (!s_wanted (self, value, vlen)) {
                if (self->error || ++skipped > SKIP_MAX)
                    break;
                rocksdb_iter_next (cursor->it);
                continue;
            }
        }
        else {
            //  Index entry: the seq is the key's last 8 bytes
            size_t klen;
            const char *key = rocksdb_iter_key (cursor->it, &klen);
            if (klen < cursor->prefix + 8) {
                s_fail (self, "index key of %zu bytes; the store is damaged", klen);
                break;
            }
            char *err = NULL;
            pinned = rocksdb_get_pinned_cf (pond_store_db (self->store), self->get_options,
                                            pond_store_cf (self->store, POND_CF_LOG),
                                            key + klen - 8, 8, &err);
            if (err || !pinned) {
                uint64_t seq = pond_get_be64 ((const uint8_t *) key + klen - 8);
                s_fail (self, "cannot read event %" PRIu64 ": %s", seq,
                        err? err: "missing from the log");
                rocksdb_free (err);
                break;
            }
            value = rocksdb_pinnableslice_value (pinned, &vlen);
        }
        if (added > 0 && bytes + vlen > max_bytes) {
            rocksdb_pinnableslice_destroy (pinned);
            break;                  //  first event of the next fill
        }
        int rc = zmsg_addmem (msg, value, vlen);
        rocksdb_pinnableslice_destroy (pinned);
        if (rc) {
            s_fail (self, "out of memory");
            break;
        }
        rocksdb_iter_next (cursor->it);
        bytes += vlen;
        added++;
        self->count++;
    }
    s_check_errors (self);
    if (self->error && added == 0)
        return -1;
    return added;
}

bool
pond_replay_done (pond_replay_t *self)
{
    if (self->error || (self->limit && self->count >= self->limit))
        return true;
    for (size_t i = 0; i < self->ncursors; i++)
        if (rocksdb_iter_valid (self->cursors [i].it))
            return false;
    s_check_errors (self);
    return true;
}

uint64_t
pond_replay_head (pond_replay_t *self)
{
    return self->head;
}

uint64_t
pond_replay_count (pond_replay_t *self)
{
    return self->count;
}

const char *
pond_replay_error (pond_replay_t *self)
{
    return self->error;
}
