/*  pond_cursor: a snapshot cursor over the pond log; see pond_cursor.h.

    Names mode merges up to POND_REPLAY_MAX_NAMES by_name iterators: each
    key ends with ts and seq as big-endian numbers, so comparing those 16
    bytes orders events by (ts, seq) whatever the name. by_name covers:
    the event is the entry's value, so a window is one Seek per name and
    then Nexts. Entity mode (and by_name entries of stores made before it
    covered, with an empty value) reads each event by seeking one log
    iterator, which mostly moves forward inside the block it holds, never
    with a point Get (which, without the block cache, read and decompressed
    a whole block per event: the main cost of a replay by names before by_name
    covered). Log mode
    filtered by names peeks at each event's name without decoding it. An
    iterator is advanced only once its event is in the message, so an
    event that does not fit a chunk is simply the first of the next one.
*/
#include "pond_cursor.h"
#include "pond_store_internal.h"

typedef enum { MODE_LOG, MODE_ENTITY, MODE_NAMES } replay_mode_t;

#define KEY_MAX  (POND_ENTITY_MAX + 1 + 16)
#define SKIP_MAX 20000    //  events filtered out in one fill at most

//  One iterator over one key range
typedef struct {
    rocksdb_readoptions_t *options;
    rocksdb_iterator_t *it;
    uint8_t bound [KEY_MAX];    //  exclusive upper bound; RocksDB keeps a pointer
    size_t prefix;              //  bytes before the BE64 fields of a key
} s_cursor_t;

struct _pond_cursor_t {
    pond_store_t *store;
    const rocksdb_snapshot_t *snapshot;
    s_cursor_t log;    //  reads of the log by seq (entity mode,
                       //  and by_name entries of old stores)
    replay_mode_t mode;
    s_cursor_t cursors [POND_REPLAY_MAX_NAMES];
    size_t ncursors;
    uint64_t limit;
    uint64_t count;
    uint64_t head;    //  newest seq in the snapshot
    //  Log mode filtered by names (order "seq"): names wanted, else all
    char names [POND_REPLAY_MAX_NAMES][POND_NAME_MAX + 1];
    size_t names_count;
    bool pack;          //  one frame per fill, events back to back
    uint8_t *packed;    //  that frame being built (kept for reuse)
    size_t packed_max;
    bool packed_lent;    //  packed is the caller's: never grow it
    char *error;
};

static int
s_cursor_open (pond_cursor_t *self, s_cursor_t *cursor, pond_store_cf_t cf, const uint8_t *start,
               size_t start_size, const uint8_t *bound, size_t bound_size, size_t prefix)
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
        rocksdb_readoptions_set_iterate_upper_bound (cursor->options, (const char *) cursor->bound,
                                                     bound_size);
    }
    cursor->it = rocksdb_create_iterator_cf (pond_store_db (self->store), cursor->options,
                                             pond_store_cf (self->store, cf));
    if (!cursor->it)
        return -1;
    if (start)
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

pond_cursor_t *
pond_cursor_new (pond_store_t *store, const pond_replay_req_t *request)
{
    assert (store);
    assert (request);
    pond_cursor_t *self = (pond_cursor_t *) zmalloc (sizeof (pond_cursor_t));
    if (!self)
        return NULL;
    self->store = store;
    self->limit = request->limit;
    self->pack = request->pack;
    //  The store is single-threaded: head and snapshot describe one moment
    self->head = pond_store_head (store);
    self->snapshot = rocksdb_create_snapshot (pond_store_db (store));

    uint8_t start [KEY_MAX], bound [KEY_MAX];
    int rc = 0;
    if (request->names_count > 0 && !streq (request->order, "seq")) {
        self->mode = MODE_NAMES;
        for (size_t i = 0; i < request->names_count && i < POND_REPLAY_MAX_NAMES && !rc; i++) {
            const char *name = request->names [i];
            bool seen = false;    //  a name asked twice is merged once
            for (size_t j = 0; j < i; j++)
                seen |= streq (request->names [j], name);
            if (seen)
                continue;
            size_t start_size = s_key (start, name, POND_KEY_SEP, 2, request->from_ts, 0);
            size_t bound_size = request->to_ts
                                  ? s_key (bound, name, POND_KEY_SEP, 1, request->to_ts, 0)
                                  : s_key (bound, name, POND_KEY_SEP_END, 0, 0, 0);
            rc = s_cursor_open (self, &self->cursors [self->ncursors++], POND_CF_BY_NAME, start,
                                start_size, bound, bound_size, strlen (name) + 1);
        }
    }
    else if (*request->entity) {
        self->mode = MODE_ENTITY;
        size_t start_size = s_key (start, request->entity, POND_KEY_SEP, 1, 0, 0);
        size_t bound_size = s_key (bound, request->entity, POND_KEY_SEP_END, 0, 0, 0);
        rc = s_cursor_open (self, &self->cursors [self->ncursors++], POND_CF_BY_ENTITY, start,
                            start_size, bound, bound_size, strlen (request->entity) + 1);
    }
    else {
        self->mode = MODE_LOG;
        for (size_t i = 0; i < request->names_count && i < POND_REPLAY_MAX_NAMES; i++)
            strcpy (self->names [self->names_count++], request->names [i]);
        pond_put_be64 (start, request->from_seq ? request->from_seq : 1);
        pond_put_be64 (bound, request->to_seq);
        rc = s_cursor_open (self, &self->cursors [self->ncursors++], POND_CF_LOG, start, 8,
                            request->to_seq ? bound : NULL, 8, 0);
    }
    if (rc)
        pond_cursor_destroy (&self);
    return self;
}

void
pond_cursor_destroy (pond_cursor_t **self_p)
{
    if (self_p && *self_p) {
        pond_cursor_t *self = *self_p;
        for (size_t i = 0; i < self->ncursors; i++) {
            if (self->cursors [i].it)
                rocksdb_iter_destroy (self->cursors [i].it);
            if (self->cursors [i].options)
                rocksdb_readoptions_destroy (self->cursors [i].options);
        }
        if (self->log.it)
            rocksdb_iter_destroy (self->log.it);
        if (self->log.options)
            rocksdb_readoptions_destroy (self->log.options);
        if (self->snapshot)
            rocksdb_release_snapshot (pond_store_db (self->store), self->snapshot);
        free (self->error);
        free (self->packed);
        free (self);
        *self_p = NULL;
    }
}

//  ---------------------------------------------------------------------
//  Reading

static void
s_fail (pond_cursor_t *self, const char *format, ...)
{
    if (self->error)
        return;
    va_list args;
    va_start (args, format);
    self->error = zsys_vprintf (format, args);
    va_end (args);
    zsys_error ("replay: %s", self->error ? self->error : "out of memory");
    if (!self->error)
        self->error = strdup ("out of memory");
}

//  The cursor whose event comes next, or NULL when all are exhausted.
static s_cursor_t *
s_next_cursor (pond_cursor_t *self)
{
    s_cursor_t *best = NULL;
    const uint8_t *best_key = NULL;
    for (size_t i = 0; i < self->ncursors; i++) {
        s_cursor_t *cursor = &self->cursors [i];
        if (!rocksdb_iter_valid (cursor->it))
            continue;
        size_t klen;
        const uint8_t *key = (const uint8_t *) rocksdb_iter_key (cursor->it, &klen);
        if (klen != cursor->prefix + (self->mode == MODE_NAMES ? 16 : 8)) {
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

//  Skip one msgpack value of a simple type (uint, str, bin) at data [*at];
//  returns -1 for any other type or if it does not fit.
static int
s_skip_simple (const uint8_t *data, size_t size, size_t *at)
{
    if (*at >= size)
        return -1;
    uint8_t type = data [*at];
    size_t head = 1, len = 0;
    if (type <= 0x7f)
        ;    //  positive fixint
    else if (type >= 0xa0 && type <= 0xbf)
        len = type & 0x1f;    //  fixstr
    else if (type >= 0xcc && type <= 0xcf)
        len = (size_t) 1 << (type - 0xcc);      //  uint 8..64
    else if (type == 0xc4 || type == 0xd9) {    //  bin 8, str 8
        if (*at + 2 > size)
            return -1;
        head = 2;
        len = data [*at + 1];
    }
    else if (type == 0xc5 || type == 0xda) {    //  bin 16, str 16
        if (*at + 3 > size)
            return -1;
        head = 3;
        len = ((size_t) data [*at + 1] << 8) | data [*at + 2];
    }
    else
        return -1;
    if (len > size - *at - head)
        return -1;
    *at += head + len;
    return 0;
}

//  The name of a stored event without decoding it: the store encodes
//  every event as a map with id and name before any nested value, so a
//  short walk over simple values finds it. Returns 0 with the name in
//  name_p / len_p, or -1 if the walk cannot tell (then decode it).
static int
s_peek_name (const uint8_t *data, size_t size, const char **name_p, size_t *len_p)
{
    size_t at = 1, pairs;
    if (size == 0)
        return -1;
    if (data [0] >= 0x80 && data [0] <= 0x8f)
        pairs = data [0] & 0x0f;
    else
        return -1;
    for (size_t pair = 0; pair < pairs; pair++) {
        if (at >= size || data [at] < 0xa0 || data [at] > 0xbf)
            return -1;    //  keys are short fixstr
        size_t klen = data [at] & 0x1f;
        const uint8_t *key = data + at + 1;
        if (klen > size - at - 1)
            return -1;
        at += 1 + klen;
        if (klen == 4 && memcmp (key, "name", 4) == 0) {
            size_t value = at;
            if (s_skip_simple (data, size, &at))
                return -1;
            uint8_t type = data [value];
            if (type >= 0xa0 && type <= 0xbf) {
                *name_p = (const char *) data + value + 1;
                *len_p = type & 0x1f;
            }
            else if (type == 0xd9) {
                *name_p = (const char *) data + value + 2;
                *len_p = data [value + 1];
            }
            else
                return -1;
            return 0;
        }
        if (s_skip_simple (data, size, &at))
            return -1;
    }
    return -1;
}

//  Log mode with a names filter: is this stored event one of them?
static bool
s_wanted (pond_cursor_t *self, const char *value, size_t vlen)
{
    if (self->names_count == 0)
        return true;
    const char *name;
    size_t len;
    char text [POND_NAME_MAX + 1];
    pond_event_t *event = NULL;
    if (s_peek_name ((const uint8_t *) value, vlen, &name, &len) || len > POND_NAME_MAX) {
        char err [POND_ERR_SIZE];
        event = pond_event_decode ((const uint8_t *) value, vlen, err, sizeof err);
        if (!event) {
            s_fail (self, "unreadable event in the log: %s", err);
            return false;
        }
        name = pond_event_name (event);
        len = strlen (name);
    }
    memcpy (text, name, len);
    text [len] = 0;
    bool wanted = false;
    for (size_t i = 0; i < self->names_count && !wanted; i++)
        wanted = streq (self->names [i], text);
    pond_event_destroy (&event);
    return wanted;
}

//  The stored event at seq, from the log iterator of the snapshot. The
//  seqs of one index are ascending, so each Seek mostly lands in the data
//  block the iterator already holds (a point Get without the block cache
//  read and decompressed that block again for every event); the merge of
//  old by_name entries may seek back, which is only slower. Returns 0 with
//  value/vlen pointing into the iterator (valid until it moves), or -1
//  after s_fail.
static int
s_log_read (pond_cursor_t *self, uint64_t seq, const char **value_p, size_t *vlen_p)
{
    if (!self->log.it && s_cursor_open (self, &self->log, POND_CF_LOG, NULL, 0, NULL, 0, 0)) {
        s_fail (self, "out of memory");
        return -1;
    }
    uint8_t key [8];
    pond_put_be64 (key, seq);
    size_t klen = 0;
    const char *at = rocksdb_iter_valid (self->log.it) ? rocksdb_iter_key (self->log.it, &klen)
                                                       : NULL;
    if (!at || klen != 8 || memcmp (at, key, 8) != 0) {
        rocksdb_iter_seek (self->log.it, (const char *) key, 8);
        at = rocksdb_iter_valid (self->log.it) ? rocksdb_iter_key (self->log.it, &klen) : NULL;
    }
    if (!at || klen != 8 || memcmp (at, key, 8) != 0) {
        char *err = NULL;
        rocksdb_iter_get_error (self->log.it, &err);
        s_fail (self, "cannot read event %" PRIu64 ": %s", seq, err ? err : "missing from the log");
        rocksdb_free (err);
        return -1;
    }
    *value_p = rocksdb_iter_value (self->log.it, vlen_p);
    return 0;
}

//  An iterator that stopped: was it the end, or an error?
static void
s_check_errors (pond_cursor_t *self)
{
    for (size_t i = 0; i < self->ncursors; i++) {
        char *err = NULL;
        rocksdb_iter_get_error (self->cursors [i].it, &err);
        if (err) {
            s_fail (self, "cannot read the store: %s", err);
            rocksdb_free (err);
        }
    }
    char *err = NULL;
    if (self->log.it)
        rocksdb_iter_get_error (self->log.it, &err);
    if (err) {
        s_fail (self, "cannot read the log: %s", err);
        rocksdb_free (err);
    }
}

//  Put one event into msg: its own frame, or (packed) at offset at of the
//  frame being built. Returns 0, or -1 after s_fail.
static int
s_add_event (pond_cursor_t *self, zmsg_t *msg, bool packed, size_t at, const char *value,
             size_t vlen)
{
    if (!packed) {
        if (zmsg_addmem (msg, value, vlen) == 0)
            return 0;
    }
    else {
        if (at + vlen > self->packed_max && self->packed_lent) {
            s_fail (self, "an event of %zu bytes does not fit a chunk of %zu", vlen,
                    self->packed_max);
            return -1;
        }
        if (at + vlen > self->packed_max) {
            size_t max = self->packed_max ? self->packed_max : 64 * 1024;
            while (max < at + vlen)
                max *= 2;
            uint8_t *bigger = (uint8_t *) realloc (self->packed, max);
            if (bigger) {
                self->packed = bigger;
                self->packed_max = max;
            }
        }
        if (at + vlen <= self->packed_max) {
            memcpy (self->packed + at, value, vlen);
            return 0;
        }
    }
    s_fail (self, "out of memory");
    return -1;
}

//  The fill of both forms: the next events go to msg one frame each, or
//  (packed) back to back into self->packed, bytes of them in *bytes_p.
//  Returns the number of events, as pond_cursor_fill.
static int
s_fill (pond_cursor_t *self, zmsg_t *msg, bool packed, size_t max_events, size_t max_bytes,
        size_t *bytes_p)
{
    int added = 0;
    size_t bytes = 0;
    size_t skipped = 0;    //  filtered out; bounded so a fill is short
    while (!self->error && (size_t) added < max_events
           && (self->limit == 0 || self->count < self->limit)) {
        s_cursor_t *cursor = self->mode == MODE_NAMES ? s_next_cursor (self) : &self->cursors [0];
        if (!cursor || !rocksdb_iter_valid (cursor->it))
            break;
        const char *value;
        size_t vlen;
        value = rocksdb_iter_value (cursor->it, &vlen);
        if (self->mode == MODE_LOG) {
            if (!s_wanted (self, value, vlen)) {
                if (self->error || ++skipped > SKIP_MAX)
                    break;
                rocksdb_iter_next (cursor->it);
                continue;
            }
        }
        else if (self->mode == MODE_ENTITY || vlen == 0) {
            //  Index entry without the event (by_entity, or by_name of a
            //  store made before by_name covered): the seq ends the key
            size_t klen;
            const char *key = rocksdb_iter_key (cursor->it, &klen);
            if (klen < cursor->prefix + 8) {
                s_fail (self, "index key of %zu bytes; the store is damaged", klen);
                break;
            }
            if (s_log_read (self, pond_get_be64 ((const uint8_t *) key + klen - 8), &value, &vlen))
                break;
        }
        if (added > 0 && bytes + vlen > max_bytes)
            break;    //  first event of the next fill
        if (s_add_event (self, msg, packed, bytes, value, vlen))
            break;
        rocksdb_iter_next (cursor->it);
        bytes += vlen;
        added++;
        self->count++;
    }
    *bytes_p = bytes;
    return added;
}

//  What a fill returns once its events are out: -1 if it failed with
//  nothing to show, else added.
static int
s_fill_result (pond_cursor_t *self, int added)
{
    s_check_errors (self);
    if (self->error && added == 0)
        return -1;
    return added;
}

int
pond_cursor_fill (pond_cursor_t *self, zmsg_t *msg, size_t max_events, size_t max_bytes)
{
    assert (self);
    assert (msg);
    size_t bytes = 0;
    int added = s_fill (self, msg, self->pack, max_events, max_bytes, &bytes);
    if (self->pack && added > 0 && zmsg_addmem (msg, self->packed, bytes)) {
        s_fail (self, "out of memory");
        self->count -= (uint64_t) added;    //  nothing of this fill went out
        added = 0;
    }
    return s_fill_result (self, added);
}

int
pond_cursor_fill_buffer (pond_cursor_t *self, uint8_t *buffer, size_t capacity, size_t *size_p,
                         size_t max_events)
{
    assert (self);
    assert (buffer);
    assert (size_p);
    uint8_t *own = self->packed;
    size_t own_max = self->packed_max;
    self->packed = buffer;
    self->packed_max = capacity;
    self->packed_lent = true;
    *size_p = 0;
    int added = s_fill (self, NULL, true, max_events, capacity, size_p);
    self->packed = own;
    self->packed_max = own_max;
    self->packed_lent = false;
    return s_fill_result (self, added);
}

bool
pond_cursor_packs (pond_cursor_t *self)
{
    assert (self);
    return self->pack;
}

bool
pond_cursor_done (pond_cursor_t *self)
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
pond_cursor_head (pond_cursor_t *self)
{
    return self->head;
}

uint64_t
pond_cursor_count (pond_cursor_t *self)
{
    return self->count;
}

const char *
pond_cursor_error (pond_cursor_t *self)
{
    return self->error;
}
