/*  pond_outbox: a device's durable outbox and its own state, in RocksDB.
    See pond_outbox.h for the keys and the guarantees.
*/
#include "pond_outbox.h"
#include "pond_be64.h"
#include "pond_thread.h"

#include <czmq.h>
#include <pthread.h>
#include <rocksdb/c.h>

#define KEY_OUTBOX    'o'
#define KEY_REJECTED  'x'
#define KEY_CONTAINER 'c'
#define KEY_META      'm'
#define KEY_MAX       (1 + 256)    //  prefix and the longest container or note name

struct _pond_outbox_t {
    char *path;
    rocksdb_t *db;
    rocksdb_options_t *options;
    rocksdb_readoptions_t *read_options;
    rocksdb_writeoptions_t *synced;      //  creations: a crash loses nothing created
    rocksdb_writeoptions_t *unsynced;    //  removals: losing one only means a resend
    rocksdb_writebatch_t *batch;         //  staged, not committed yet
    pond_outbox_stats_t stats;           //  committed counters
    uint64_t staged;                     //  events in the batch
    bool read_only;
};

//  ---------------------------------------------------------------------
//  Keys and counters

//  Key of a queued or rejected event: prefix and local seq, 9 bytes.
static void
s_seq_key (char prefix, uint64_t seq, uint8_t *key)
{
    key [0] = (uint8_t) prefix;
    pond_put_be64 (key + 1, seq);
}

//  Key of a container or a meta name: prefix and text. Returns its size.
static size_t
s_text_key (char prefix, const char *text, char *key)
{
    size_t len = strlen (text);
    if (len > KEY_MAX - 1)
        len = KEY_MAX - 1;
    key [0] = prefix;
    memcpy (key + 1, text, len);
    return len + 1;
}

//  Report a RocksDB error once, free it. Returns -1.
static int
s_fail (pond_outbox_t *self, const char *what, char *err)
{
    zsys_error ("pond_outbox: %s in %s: %s", what, self->path, err ? err : "unknown error");
    rocksdb_free (err);
    return -1;
}

//  Stage a counter into batch.
static void
s_batch_counter (rocksdb_writebatch_t *batch, const char *name, uint64_t value)
{
    char key [KEY_MAX];
    size_t key_size = s_text_key (KEY_META, name, key);
    uint8_t buffer [8];
    pond_put_be64 (buffer, value);
    rocksdb_writebatch_put (batch, key, key_size, (const char *) buffer, 8);
}

//  Read a whole value. Returns it (caller frees with rocksdb_free), or NULL
//  if absent or failed (logged).
static char *
s_get (pond_outbox_t *self, const char *key, size_t key_size, size_t *size_p)
{
    char *err = NULL;
    char *value = rocksdb_get (self->db, self->read_options, key, key_size, size_p, &err);
    if (err) {
        s_fail (self, "cannot read", err);
        return NULL;
    }
    return value;
}

static uint64_t
s_get_counter (pond_outbox_t *self, const char *name)
{
    char key [KEY_MAX];
    size_t key_size = s_text_key (KEY_META, name, key);
    size_t size = 0;
    char *value = s_get (self, key, key_size, &size);
    uint64_t counter = value && size == 8 ? pond_get_be64 ((const uint8_t *) value) : 0;
    rocksdb_free (value);
    return counter;
}

//  Count the events under prefix and find the newest local seq there.
static int
s_scan (pond_outbox_t *self, char prefix, uint64_t *count_p, uint64_t *last_p)
{
    uint8_t lower [9], upper [9];
    s_seq_key (prefix, 0, lower);
    s_seq_key (prefix + 1, 0, upper);
    rocksdb_readoptions_t *options = rocksdb_readoptions_create ();
    rocksdb_readoptions_set_iterate_upper_bound (options, (const char *) upper, sizeof upper);
    rocksdb_iterator_t *it = rocksdb_create_iterator (self->db, options);
    uint64_t count = 0, last = 0;
    for (rocksdb_iter_seek (it, (const char *) lower, sizeof lower); rocksdb_iter_valid (it);
         rocksdb_iter_next (it)) {
        size_t klen;
        const uint8_t *key = (const uint8_t *) rocksdb_iter_key (it, &klen);
        if (klen == 9) {
            count++;
            last = pond_get_be64 (key + 1);
        }
    }
    char *err = NULL;
    rocksdb_iter_get_error (it, &err);
    rocksdb_iter_destroy (it);
    rocksdb_readoptions_destroy (options);
    if (err)
        return s_fail (self, "cannot scan the outbox", err);
    *count_p = count;
    *last_p = last;
    return 0;
}

//  ---------------------------------------------------------------------
//  Life cycle

pond_outbox_t *
pond_outbox_new (const char *path, bool read_only)
{
    assert (path);
    pond_outbox_t *self = (pond_outbox_t *) zmalloc (sizeof (pond_outbox_t));
    if (!self)
        return NULL;
    self->path = strdup (path);
    self->options = rocksdb_options_create ();
    rocksdb_options_set_create_if_missing (self->options, read_only ? 0 : 1);
    //  A device's database is small: keep its footprint small too
    rocksdb_options_set_keep_log_file_num (self->options, 2);
    rocksdb_options_set_max_log_file_size (self->options, 256 * 1024);
    rocksdb_options_set_write_buffer_size (self->options, 4 * 1024 * 1024);
    rocksdb_options_set_max_open_files (self->options, 64);
    self->read_options = rocksdb_readoptions_create ();
    self->synced = rocksdb_writeoptions_create ();
    rocksdb_writeoptions_set_sync (self->synced, 1);
    self->unsynced = rocksdb_writeoptions_create ();
    self->batch = rocksdb_writebatch_create ();
    char *err = NULL;
    self->read_only = read_only;
    //  RocksDB's background threads start here: they inherit a mask that
    //  leaves signals to the main thread
    sigset_t saved;
    bool blocked = pond_thread_block_signals (&saved) == 0;
    self->db = read_only ? rocksdb_open_for_read_only (self->options, path, 0, &err)
                         : rocksdb_open (self->options, path, &err);
    if (blocked)
        pthread_sigmask (SIG_SETMASK, &saved, NULL);
    if (!self->db) {
        s_fail (self, "cannot open the outbox", err);
        pond_outbox_destroy (&self);
        return NULL;
    }
    uint64_t queued, last_queued, rejected, last_rejected;
    if (s_scan (self, KEY_OUTBOX, &queued, &last_queued)
        || s_scan (self, KEY_REJECTED, &rejected, &last_rejected)) {
        pond_outbox_destroy (&self);
        return NULL;
    }
    self->stats.queued = queued;
    self->stats.last_seq = s_get_counter (self, "last");
    //  The counter and the keys are written together; be safe anyway
    if (self->stats.last_seq < last_queued)
        self->stats.last_seq = last_queued;
    if (self->stats.last_seq < last_rejected)
        self->stats.last_seq = last_rejected;
    self->stats.created = s_get_counter (self, "created");
    self->stats.sent = s_get_counter (self, "sent");
    self->stats.dups = s_get_counter (self, "dups");
    self->stats.rejected = rejected;
    return self;
}

void
pond_outbox_destroy (pond_outbox_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        pond_outbox_t *self = *self_p;
        if (self->db)
            rocksdb_close (self->db);
        rocksdb_writebatch_destroy (self->batch);
        rocksdb_writeoptions_destroy (self->unsynced);
        rocksdb_writeoptions_destroy (self->synced);
        rocksdb_readoptions_destroy (self->read_options);
        rocksdb_options_destroy (self->options);
        free (self->path);
        free (self);
        *self_p = NULL;
    }
}

//  ---------------------------------------------------------------------
//  Creating: stage, then commit once

uint64_t
pond_outbox_stage (pond_outbox_t *self, const uint8_t *bytes, size_t size)
{
    assert (self);
    assert (bytes);
    uint64_t seq = self->stats.last_seq + ++self->staged;
    uint8_t key [9];
    s_seq_key (KEY_OUTBOX, seq, key);
    rocksdb_writebatch_put (self->batch, (const char *) key, sizeof key, (const char *) bytes,
                            size);
    return seq;
}

void
pond_outbox_stage_container (pond_outbox_t *self, const char *container, const char *state,
                             const char *label)
{
    assert (self);
    assert (container);
    assert (state);
    cJSON *value = cJSON_CreateObject ();
    cJSON_AddStringToObject (value, "state", state);
    cJSON_AddStringToObject (value, "label", label ? label : "");
    char *text = cJSON_PrintUnformatted (value);
    cJSON_Delete (value);
    if (!text) {
        zsys_error ("pond_outbox: out of memory");
        return;
    }
    char key [KEY_MAX];
    size_t key_size = s_text_key (KEY_CONTAINER, container, key);
    rocksdb_writebatch_put (self->batch, key, key_size, text, strlen (text));
    free (text);
}

void
pond_outbox_stage_note (pond_outbox_t *self, const char *name, const char *text)
{
    assert (self);
    assert (name);
    assert (text);
    char key [KEY_MAX];
    size_t key_size = s_text_key (KEY_META, name, key);
    rocksdb_writebatch_put (self->batch, key, key_size, text, strlen (text));
}

int
pond_outbox_commit (pond_outbox_t *self)
{
    assert (self);
    if (self->read_only) {
        zsys_error ("pond_outbox: %s is open read-only", self->path);
        return -1;
    }
    if (rocksdb_writebatch_count (self->batch) == 0)
        return 0;
    if (self->staged) {
        s_batch_counter (self->batch, "last", self->stats.last_seq + self->staged);
        s_batch_counter (self->batch, "created", self->stats.created + self->staged);
    }
    char *err = NULL;
    rocksdb_write (self->db, self->synced, self->batch, &err);
    rocksdb_writebatch_clear (self->batch);
    uint64_t staged = self->staged;
    self->staged = 0;
    if (err)
        return s_fail (self, "cannot write", err);
    self->stats.last_seq += staged;
    self->stats.created += staged;
    self->stats.queued += staged;
    return 0;
}

void
pond_outbox_discard (pond_outbox_t *self)
{
    assert (self);
    rocksdb_writebatch_clear (self->batch);
    self->staged = 0;
}

//  ---------------------------------------------------------------------
//  Sending: read in order, remove on ACK

int
pond_outbox_read (pond_outbox_t *self, uint64_t after, pond_outbox_entry_t *entries, int max)
{
    assert (self);
    assert (entries);
    if (max <= 0 || after == UINT64_MAX)
        return 0;
    uint8_t lower [9], upper [9];
    s_seq_key (KEY_OUTBOX, after + 1, lower);
    s_seq_key (KEY_OUTBOX + 1, 0, upper);
    rocksdb_readoptions_t *options = rocksdb_readoptions_create ();
    rocksdb_readoptions_set_iterate_upper_bound (options, (const char *) upper, sizeof upper);
    rocksdb_iterator_t *it = rocksdb_create_iterator (self->db, options);
    int count = 0;
    for (rocksdb_iter_seek (it, (const char *) lower, sizeof lower);
         rocksdb_iter_valid (it) && count < max; rocksdb_iter_next (it)) {
        size_t klen, vlen;
        const uint8_t *key = (const uint8_t *) rocksdb_iter_key (it, &klen);
        const char *value = rocksdb_iter_value (it, &vlen);
        if (klen != 9 || vlen == 0)
            continue;    //  Not ours; cannot happen with our keys
        uint8_t *bytes = (uint8_t *) malloc (vlen);
        if (!bytes)
            break;
        memcpy (bytes, value, vlen);
        entries [count].seq = pond_get_be64 (key + 1);
        entries [count].bytes = bytes;
        entries [count].size = vlen;
        count++;
    }
    char *err = NULL;
    rocksdb_iter_get_error (it, &err);
    rocksdb_iter_destroy (it);
    rocksdb_readoptions_destroy (options);
    if (err) {
        while (count)
            pond_outbox_entry_clear (&entries [--count]);
        return s_fail (self, "cannot read the outbox", err);
    }
    return count;
}

void
pond_outbox_entry_clear (pond_outbox_entry_t *entry)
{
    if (entry) {
        free (entry->bytes);
        memset (entry, 0, sizeof (*entry));
    }
}

int
pond_outbox_ack (pond_outbox_t *self, uint64_t seq, bool dup)
{
    assert (self);
    if (self->read_only) {
        zsys_error ("pond_outbox: %s is open read-only", self->path);
        return -1;
    }
    uint8_t key [9];
    s_seq_key (KEY_OUTBOX, seq, key);
    rocksdb_writebatch_t *batch = rocksdb_writebatch_create ();
    rocksdb_writebatch_delete (batch, (const char *) key, sizeof key);
    s_batch_counter (batch, "sent", self->stats.sent + 1);
    if (dup)
        s_batch_counter (batch, "dups", self->stats.dups + 1);
    char *err = NULL;
    rocksdb_write (self->db, self->unsynced, batch, &err);
    rocksdb_writebatch_destroy (batch);
    if (err)
        return s_fail (self, "cannot remove an acked event", err);
    self->stats.sent++;
    if (dup)
        self->stats.dups++;
    if (self->stats.queued)
        self->stats.queued--;
    return 0;
}

int
pond_outbox_reject (pond_outbox_t *self, uint64_t seq)
{
    assert (self);
    if (self->read_only) {
        zsys_error ("pond_outbox: %s is open read-only", self->path);
        return -1;
    }
    uint8_t key [9], aside [9];
    s_seq_key (KEY_OUTBOX, seq, key);
    s_seq_key (KEY_REJECTED, seq, aside);
    size_t size = 0;
    char *value = s_get (self, (const char *) key, sizeof key, &size);
    if (!value)
        return -1;
    rocksdb_writebatch_t *batch = rocksdb_writebatch_create ();
    rocksdb_writebatch_put (batch, (const char *) aside, sizeof aside, value, size);
    rocksdb_writebatch_delete (batch, (const char *) key, sizeof key);
    rocksdb_free (value);
    char *err = NULL;
    rocksdb_write (self->db, self->synced, batch, &err);
    rocksdb_writebatch_destroy (batch);
    if (err)
        return s_fail (self, "cannot set a refused event aside", err);
    self->stats.rejected++;
    if (self->stats.queued)
        self->stats.queued--;
    return 0;
}

//  ---------------------------------------------------------------------
//  The device's own state

//  Parse a container value into state and label. Returns 0 or -1.
static int
s_parse_container (const char *value, size_t size, char *state, size_t state_size, char *label,
                   size_t label_size)
{
    cJSON *json = cJSON_ParseWithLength (value, size);
    cJSON *state_item = cJSON_GetObjectItemCaseSensitive (json, "state");
    cJSON *label_item = cJSON_GetObjectItemCaseSensitive (json, "label");
    int rc = -1;
    if (cJSON_IsString (state_item) && cJSON_IsString (label_item)) {
        snprintf (state, state_size, "%s", state_item->valuestring);
        snprintf (label, label_size, "%s", label_item->valuestring);
        rc = 0;
    }
    cJSON_Delete (json);
    return rc;
}

int
pond_outbox_container (pond_outbox_t *self, const char *container, char *state, size_t state_size,
                       char *label, size_t label_size)
{
    assert (self);
    assert (container);
    char key [KEY_MAX];
    size_t key_size = s_text_key (KEY_CONTAINER, container, key);
    size_t size = 0;
    char *value = s_get (self, key, key_size, &size);
    if (!value)
        return -1;
    int rc = s_parse_container (value, size, state, state_size, label, label_size);
    rocksdb_free (value);
    return rc;
}

cJSON *
pond_outbox_containers (pond_outbox_t *self)
{
    assert (self);
    cJSON *containers = cJSON_CreateObject ();
    if (!containers)
        return NULL;
    char lower [1] = { KEY_CONTAINER }, upper [1] = { KEY_CONTAINER + 1 };
    rocksdb_readoptions_t *options = rocksdb_readoptions_create ();
    rocksdb_readoptions_set_iterate_upper_bound (options, upper, sizeof upper);
    rocksdb_iterator_t *it = rocksdb_create_iterator (self->db, options);
    for (rocksdb_iter_seek (it, lower, sizeof lower); rocksdb_iter_valid (it);
         rocksdb_iter_next (it)) {
        size_t klen, vlen;
        const char *key = rocksdb_iter_key (it, &klen);
        const char *value = rocksdb_iter_value (it, &vlen);
        char name [KEY_MAX], state [32], label [KEY_MAX];
        if (klen < 2 || klen > KEY_MAX
            || s_parse_container (value, vlen, state, sizeof state, label, sizeof label))
            continue;
        memcpy (name, key + 1, klen - 1);
        name [klen - 1] = 0;
        cJSON *item = cJSON_AddObjectToObject (containers, name);
        cJSON_AddStringToObject (item, "state", state);
        cJSON_AddStringToObject (item, "label", label);
    }
    char *err = NULL;
    rocksdb_iter_get_error (it, &err);
    rocksdb_iter_destroy (it);
    rocksdb_readoptions_destroy (options);
    if (err) {
        cJSON_Delete (containers);
        s_fail (self, "cannot read the containers", err);
        return NULL;
    }
    return containers;
}

char *
pond_outbox_note (pond_outbox_t *self, const char *name)
{
    assert (self);
    assert (name);
    char key [KEY_MAX];
    size_t key_size = s_text_key (KEY_META, name, key);
    size_t size = 0;
    char *value = s_get (self, key, key_size, &size);
    if (!value)
        return NULL;
    char *text = (char *) malloc (size + 1);
    if (text) {
        memcpy (text, value, size);
        text [size] = 0;
    }
    rocksdb_free (value);
    return text;
}

void
pond_outbox_stats (pond_outbox_t *self, pond_outbox_stats_t *stats)
{
    assert (self);
    assert (stats);
    *stats = self->stats;
}
