/*  pond_device: a simulated kitchen device ("Silo"): events created into a
    durable outbox, then sent in order to the broker. See pond_device.h.
*/
#include "pond_device.h"
#include "pond_outbox.h"
#include "pond_client.h"
#include "pond_identity.h"
#include "pond_time.h"
#include "pond_uuid.h"

#include <math.h>
#include <msgpack.h>

#define STAGE_MAX  256    //  events created in one write at most
#define WAIT_MAX   100    //  longest nap of the pump, msecs
#define REASON_MAX (POND_REASON_MAX + POND_ENDPOINT_MAX)

//  One event of the window: read from the outbox, sent or about to be
typedef struct {
    uint64_t seq;    //  local seq (outbox key)
    uint8_t id [POND_ID_SIZE];
    uint8_t *bytes;    //  encoded event, the same bytes on every send
    size_t size;
    bool sent;         //  sent since the last go-back
    int64_t due;       //  when sent: no reply by then means resend
    uint32_t sends;    //  times sent
} slot_t;

//  One event staged, logged once the write succeeded
typedef struct {
    uint64_t seq;
    uint8_t id [POND_ID_SIZE];
    char name [POND_NAME_MAX + 1];
    char entity [POND_ENTITY_MAX + 1];
} staged_t;

struct _pond_device_t {
    char device [POND_ENTITY_MAX + 1];
    char customer [POND_ENTITY_MAX + 1];
    char firmware [64];
    char data_dir [POND_ENDPOINT_MAX];
    char ingest [POND_ENDPOINT_MAX];
    bool ingest_fixed;    //  given, not resolved from the data directory
    int64_t clock_skew_us;
    bool verbose;
    bool customer_noted;    //  the customer is recorded in the outbox

    pond_outbox_t *outbox;
    pond_client_t *client;          //  DEALER to ingest, made on first send
    pond_publisher_t *publisher;    //  over client: the sends and their replies

    slot_t *window;    //  in flight or about to be, in outbox order
    int window_count;
    int window_max;
    uint64_t cursor;    //  newest local seq taken into the window
    int resend_ms;

    staged_t staged [STAGE_MAX];
    int staged_count;

    bool cut;                      //  network cut (simulated)
    int64_t offline_until;         //  cut until this zclock_mono time, 0: none
    uint64_t offline_until_seq;    //  cut until this local seq exists, 0: none
    int64_t retry_at;              //  no sends before this time (back-off)
    int backoff_ms;
    bool down;    //  broker unreachable: logged once per outage
    char reason [REASON_MAX + 64];

    uint64_t created;    //  this run
    uint64_t sent;
    uint64_t dups;
    uint64_t rejected;
    uint64_t resends;
    uint64_t stale;    //  replies for events no longer in the window
};

static void s_window_clear (pond_device_t *self);
static void s_disconnect (pond_device_t *self);

//  ---------------------------------------------------------------------
//  Life cycle

pond_device_t *
pond_device_new (const pond_device_config_t *config)
{
    assert (config);
    assert (config->device);
    assert (config->outbox);
    pond_device_t *self = (pond_device_t *) zmalloc (sizeof (pond_device_t));
    if (!self)
        return NULL;
    snprintf (self->device, sizeof self->device, "%s", config->device);
    snprintf (self->firmware, sizeof self->firmware, "%s",
              config->firmware ? config->firmware : POND_DEVICE_FIRMWARE);
    snprintf (self->data_dir, sizeof self->data_dir, "%s",
              config->data_dir ? config->data_dir : "");
    self->clock_skew_us = config->clock_skew_ms * 1000;
    self->verbose = config->verbose;
    self->window_max = config->window > 0 ? config->window : POND_DEVICE_WINDOW;
    if (self->window_max > POND_DEVICE_WINDOW_MAX)
        self->window_max = POND_DEVICE_WINDOW_MAX;
    self->resend_ms = config->resend_ms > 0 ? config->resend_ms : POND_DEVICE_RESEND_MS;
    if (config->start_offline_ms > 0)
        self->offline_until = zclock_mono () + config->start_offline_ms;
    self->offline_until_seq = config->offline_until_seq;

    if (config->ingest) {
        snprintf (self->ingest, sizeof self->ingest, "%s", config->ingest);
        self->ingest_fixed = true;
    }
    else {
        pond_endpoints_t eps;
        if (pond_endpoints_resolve (config->data_dir, &eps)) {
            zsys_error ("pond-device: data directory path too long: %s", config->data_dir);
            pond_device_destroy (&self);
            return NULL;
        }
        snprintf (self->ingest, sizeof self->ingest, "%s", eps.ingest);
        snprintf (self->data_dir, sizeof self->data_dir, "%s", eps.data_dir);
    }
    self->window = (slot_t *) calloc ((size_t) self->window_max, sizeof (slot_t));
    self->outbox = self->window ? pond_outbox_new (config->outbox, config->read_only) : NULL;
    if (!self->outbox) {
        pond_device_destroy (&self);
        return NULL;
    }
    if (config->customer)
        snprintf (self->customer, sizeof self->customer, "%s", config->customer);
    else {
        char *known = pond_outbox_note (self->outbox, "customer");
        snprintf (self->customer, sizeof self->customer, "%s", known ? known : "");
        free (known);
        self->customer_noted = true;
    }
    return self;
}

void
pond_device_destroy (pond_device_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        pond_device_t *self = *self_p;
        s_window_clear (self);
        free (self->window);
        s_disconnect (self);
        pond_outbox_destroy (&self->outbox);
        free (self);
        *self_p = NULL;
    }
}

//  ---------------------------------------------------------------------
//  Creating events: stage into the outbox, commit once per action

//  The device's clock: the wall clock plus the configured skew.
static uint64_t
s_device_clock (pond_device_t *self)
{
    int64_t ts = (int64_t) pond_time_now () + self->clock_skew_us;
    if (ts < 1)
        ts = 1;
    if ((uint64_t) ts > POND_TIME_MAX)
        ts = (int64_t) POND_TIME_MAX;
    return (uint64_t) ts;
}

//  A simulated measurement in lo..hi, drawn from the random bits of the
//  event's id (index 0..2 picks which), so that it differs per event.
static int
s_sense (const pond_event_t *event, int index, int lo, int hi)
{
    const uint8_t *id = pond_event_id (event);
    unsigned int bits = ((unsigned int) id [10 + index * 2] << 8) | id [11 + index * 2];
    return lo + (int) (bits % (unsigned int) (hi - lo + 1));
}

static void
s_pack_str (msgpack_packer *pk, const char *text)
{
    size_t len = strlen (text);
    msgpack_pack_str (pk, len);
    msgpack_pack_str_body (pk, text, len);
}

//  A new event of this device for customer, with its source and clock.
//  NULL if memory ran out.
static pond_event_t *
s_event_new (pond_device_t *self, const char *name, const char *customer)
{
    pond_event_t *event = pond_event_new (name, customer);
    if (event) {
        pond_event_set_source (event, self->device);
        pond_event_set_ts (event, s_device_clock (self));
    }
    return event;
}

//  Set data (or meta) from what the packer in buffer holds. Returns 0 or -1.
static int
s_event_set (pond_event_t *event, msgpack_sbuffer *buffer, bool meta)
{
    char err [POND_ERR_SIZE];
    const uint8_t *bytes = (const uint8_t *) buffer->data;
    int rc = meta ? pond_event_set_meta (event, bytes, buffer->size, err, sizeof err)
                  : pond_event_set_data (event, bytes, buffer->size, err, sizeof err);
    if (rc)
        zsys_error ("pond-device: cannot build %s of %s: %s", meta ? "meta" : "data",
                    pond_event_name (event), err);
    msgpack_sbuffer_clear (buffer);
    return rc;
}

//  Encode and stage an event; takes ownership. Returns 0 or -1 (logged).
static int
s_stage (pond_device_t *self, pond_event_t **event_p)
{
    pond_event_t *event = *event_p;
    *event_p = NULL;
    if (!event)
        return -1;
    int rc = -1;
    char err [POND_ERR_SIZE];
    size_t size;
    uint8_t *bytes = NULL;
    if (self->staged_count >= STAGE_MAX)
        zsys_error ("pond-device: more than %d events in one write", STAGE_MAX);
    else if (!(bytes = pond_event_encode (event, &size, err, sizeof err)))
        zsys_error ("pond-device: cannot create %s: %s", pond_event_name (event), err);
    else if (size > POND_PUBLISH_MAX_SIZE)
        zsys_error ("pond-device: %s is %zu bytes, more than the %d a broker takes",
                    pond_event_name (event), size, POND_PUBLISH_MAX_SIZE);
    else {
        staged_t *staged = &self->staged [self->staged_count++];
        staged->seq = pond_outbox_stage (self->outbox, bytes, size);
        memcpy (staged->id, pond_event_id (event), POND_ID_SIZE);
        snprintf (staged->name, sizeof staged->name, "%s", pond_event_name (event));
        snprintf (staged->entity, sizeof staged->entity, "%s", pond_event_entity (event));
        rc = 0;
    }
    free (bytes);
    pond_event_destroy (&event);
    return rc;
}

//  Write what is staged, durably, in one batch. Returns 0 or -1 (logged;
//  then nothing was created).
static int
s_commit (pond_device_t *self)
{
    if (!self->customer_noted && *self->customer) {
        pond_outbox_stage_note (self->outbox, "customer", self->customer);
        self->customer_noted = true;
    }
    int rc = pond_outbox_commit (self->outbox);
    if (rc == 0) {
        self->created += (uint64_t) self->staged_count;
        if (self->verbose)
            for (int i = 0; i < self->staged_count; i++) {
                char uuid [POND_UUID_STR_SIZE];
                pond_uuid_format (self->staged [i].id, uuid);
                zsys_info ("pond-device: created %s %s #%llu for %s", uuid, self->staged [i].name,
                           (unsigned long long) self->staged [i].seq, self->staged [i].entity);
            }
    }
    else {
        self->customer_noted = false;
        zsys_error ("pond-device: nothing was created; check the disk holding the outbox");
    }
    self->staged_count = 0;
    return rc;
}

//  An action's events could not all be built: create none of them.
//  Returns -1.
static int
s_abandon (pond_device_t *self)
{
    pond_outbox_discard (self->outbox);
    self->staged_count = 0;
    return -1;
}

int
pond_device_click (pond_device_t *self, int button, int press_ms)
{
    assert (self);
    pond_event_t *event = s_event_new (self, "BUTTON_CLICKED", self->customer);
    if (!event)
        return -1;
    if (press_ms <= 0)
        press_ms = s_sense (event, 0, 60, 400);
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 2);
    s_pack_str (&pk, "button");
    msgpack_pack_int (&pk, button > 0 ? button : 1);
    s_pack_str (&pk, "press_ms");
    msgpack_pack_int (&pk, press_ms);
    int rc = s_event_set (event, &buffer, false);
    msgpack_sbuffer_destroy (&buffer);
    if (rc) {
        pond_event_destroy (&event);
        return -1;
    }
    if (s_stage (self, &event))
        return s_abandon (self);
    rc = s_commit (self);
    pond_device_pump (self, 0);
    return rc;
}

int
pond_device_quack_for (pond_device_t *self, const char *customer, int duration_ms,
                       double loudness_db)
{
    assert (self);
    assert (customer);
    pond_event_t *event = s_event_new (self, "QUACKED", customer);
    if (!event)
        return -1;
    if (duration_ms <= 0)
        duration_ms = s_sense (event, 1, 80, 600);
    if (loudness_db <= 0)
        loudness_db = s_sense (event, 2, 450, 850) / 10.0;
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 3);
    s_pack_str (&pk, "duration_ms");
    msgpack_pack_int (&pk, duration_ms);
    s_pack_str (&pk, "loudness_db");
    msgpack_pack_double (&pk, loudness_db);
    s_pack_str (&pk, "firmware");
    s_pack_str (&pk, self->firmware);
    int rc = s_event_set (event, &buffer, false);
    if (rc == 0) {
        msgpack_pack_map (&pk, 2);
        s_pack_str (&pk, "firmware");
        s_pack_str (&pk, self->firmware);
        s_pack_str (&pk, "performer");
        s_pack_str (&pk, self->device);
        rc = s_event_set (event, &buffer, true);
    }
    msgpack_sbuffer_destroy (&buffer);
    if (rc) {
        pond_event_destroy (&event);
        return -1;
    }
    return s_stage (self, &event);
}

int
pond_device_quack (pond_device_t *self, int duration_ms, double loudness_db)
{
    assert (self);
    if (pond_device_quack_for (self, self->customer, duration_ms, loudness_db))
        return s_abandon (self);
    int rc = s_commit (self);
    pond_device_pump (self, 0);
    return rc;
}

//  Stage a LABEL_ADDED or LABEL_REMOVED event. Returns 0 or -1.
static int
s_stage_label (pond_device_t *self, const char *name, const char *container, const char *label)
{
    pond_event_t *event = s_event_new (self, name, self->customer);
    if (!event)
        return -1;
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 2);
    s_pack_str (&pk, "label");
    s_pack_str (&pk, label);
    s_pack_str (&pk, "container");
    s_pack_str (&pk, container);
    int rc = s_event_set (event, &buffer, false);
    msgpack_sbuffer_destroy (&buffer);
    if (rc) {
        pond_event_destroy (&event);
        return -1;
    }
    return s_stage (self, &event);
}

int
pond_device_label (pond_device_t *self, const char *container, const char *label)
{
    assert (self);
    assert (container);
    assert (label);
    char state [32], current [POND_DEVICE_TEXT_MAX * 2];
    bool labeled = pond_outbox_container (self->outbox, container, state, sizeof state, current,
                                          sizeof current)
                    == 0
                && streq (state, "LABELED");
    if (labeled && streq (current, label)) {
        if (self->verbose)
            zsys_info ("pond-device: container %s already has label '%s'", container, label);
        return 1;
    }
    //  A new label replaces the old one: the old one comes off first
    if ((labeled && s_stage_label (self, "LABEL_REMOVED", container, current))
        || s_stage_label (self, "LABEL_ADDED", container, label))
        return s_abandon (self);
    pond_outbox_stage_container (self->outbox, container, "LABELED", label);
    int rc = s_commit (self);
    pond_device_pump (self, 0);
    return rc;
}

int
pond_device_unlabel (pond_device_t *self, const char *container)
{
    assert (self);
    assert (container);
    char state [32], label [POND_DEVICE_TEXT_MAX * 2];
    if (pond_outbox_container (self->outbox, container, state, sizeof state, label, sizeof label)
        || !streq (state, "LABELED")) {
        zsys_warning ("pond-device: container %s has no label of this device; nothing to "
                      "remove (label it first: label %s NAME)",
                      container, container);
        return 1;
    }
    if (s_stage_label (self, "LABEL_REMOVED", container, label))
        return s_abandon (self);
    pond_outbox_stage_container (self->outbox, container, "UNLABELED", label);
    int rc = s_commit (self);
    pond_device_pump (self, 0);
    return rc;
}

int
pond_device_load (pond_device_t *self, uint64_t count, double rate, int customers)
{
    assert (self);
    if (customers < 1)
        customers = 1;
    int64_t started = zclock_mono ();
    uint64_t done = 0;
    while (done < count) {
        if (zsys_interrupted)
            return -1;
        uint64_t due = count;
        if (rate > 0) {
            double elapsed = (double) (zclock_mono () - started) / 1000.0;
            due = (uint64_t) floor (elapsed * rate) + 1;
            if (due > count)
                due = count;
        }
        uint64_t batch = due > done ? due - done : 0;
        if (batch > STAGE_MAX)
            batch = STAGE_MAX;
        for (uint64_t i = 0; i < batch; i++) {
            char customer [32];
            snprintf (customer, sizeof customer, "cust-%llu",
                      (unsigned long long) ((done + i) % (uint64_t) customers));
            if (pond_device_quack_for (self, customer, 0, 0))
                return s_abandon (self);
        }
        if (batch && s_commit (self))
            return -1;
        done += batch;
        //  Between writes, send; when ahead of the rate, wait for it
        int nap = 0;
        if (rate > 0 && done < count) {
            double next_at = (double) done / rate * 1000.0;
            double left = next_at - (double) (zclock_mono () - started);
            nap = left > 0 ? (int) ceil (left) : 0;
        }
        if (pond_device_pump (self, nap))
            return -1;
    }
    return 0;
}

//  ---------------------------------------------------------------------
//  The window: events in flight, in outbox order

static void
s_slot_clear (slot_t *slot)
{
    free (slot->bytes);
    memset (slot, 0, sizeof (*slot));
}

static void
s_window_clear (pond_device_t *self)
{
    for (int i = 0; i < self->window_count; i++)
        s_slot_clear (&self->window [i]);
    self->window_count = 0;
}

static int
s_window_find (pond_device_t *self, const uint8_t *id)
{
    for (int i = 0; i < self->window_count; i++)
        if (memcmp (self->window [i].id, id, POND_ID_SIZE) == 0)
            return i;
    return -1;
}

static void
s_window_remove (pond_device_t *self, int index)
{
    s_slot_clear (&self->window [index]);
    memmove (&self->window [index], &self->window [index + 1],
             (size_t) (self->window_count - index - 1) * sizeof (slot_t));
    self->window_count--;
    memset (&self->window [self->window_count], 0, sizeof (slot_t));
}

//  Take the next queued events from the outbox into the window.
static void
s_window_fill (pond_device_t *self)
{
    int room = self->window_max - self->window_count;
    pond_outbox_stats_t stats;
    pond_outbox_stats (self->outbox, &stats);
    if (room <= 0 || stats.last_seq <= self->cursor)
        return;
    pond_outbox_entry_t entries [POND_DEVICE_WINDOW_MAX];
    int count = pond_outbox_read (self->outbox, self->cursor, entries, room);
    for (int i = 0; i < count; i++) {
        self->cursor = entries [i].seq;
        char err [POND_ERR_SIZE];
        pond_event_t *event = pond_event_decode (entries [i].bytes, entries [i].size, err,
                                                 sizeof err);
        if (!event) {
            //  Only a damaged disk can do this: set it aside, do not block
            zsys_error ("pond-device: queued event #%llu is unreadable (%s); set aside",
                        (unsigned long long) entries [i].seq, err);
            pond_outbox_reject (self->outbox, entries [i].seq);
            self->rejected++;
            pond_outbox_entry_clear (&entries [i]);
            continue;
        }
        slot_t *slot = &self->window [self->window_count++];
        slot->seq = entries [i].seq;
        memcpy (slot->id, pond_event_id (event), POND_ID_SIZE);
        slot->bytes = entries [i].bytes;
        slot->size = entries [i].size;
        slot->sent = false;
        slot->sends = 0;
        pond_event_destroy (&event);
        entries [i].bytes = NULL;
    }
}

//  ---------------------------------------------------------------------
//  Network

static bool
s_online (pond_device_t *self)
{
    if (self->cut)
        return false;
    if (self->offline_until) {
        if (zclock_mono () < self->offline_until)
            return false;
        self->offline_until = 0;
        if (self->verbose)
            zsys_info ("pond-device: network back after the start-up cut");
    }
    if (self->offline_until_seq) {
        pond_outbox_stats_t stats;
        pond_outbox_stats (self->outbox, &stats);
        if (stats.last_seq < self->offline_until_seq)
            return false;
        self->offline_until_seq = 0;
        if (self->verbose)
            zsys_info ("pond-device: network back at local seq %llu",
                       (unsigned long long) stats.last_seq);
    }
    return true;
}

void
pond_device_set_online (pond_device_t *self, bool online)
{
    assert (self);
    self->cut = !online;
    if (online) {
        self->offline_until = 0;
        self->offline_until_seq = 0;
        self->retry_at = 0;
    }
    else {
        //  A cut loses what was in flight: all of it goes again, in order,
        //  on a new connection once the network is back
        for (int i = 0; i < self->window_count; i++)
            self->window [i].sent = false;
        s_disconnect (self);
    }
    if (self->verbose)
        zsys_info ("pond-device: network %s", online ? "up" : "cut");
}

//  Look for the broker again: a restarted one may have new endpoints.
static void
s_reresolve (pond_device_t *self)
{
    if (self->ingest_fixed)
        return;
    pond_endpoints_t eps;
    if (pond_endpoints_resolve (self->data_dir, &eps) == 0 && strneq (eps.ingest, self->ingest)) {
        zsys_info ("pond-device: the broker's ingest endpoint is now %s", eps.ingest);
        snprintf (self->ingest, sizeof self->ingest, "%s", eps.ingest);
        s_disconnect (self);
    }
}

//  Something went wrong with the events in flight: all of them go again,
//  in order, at retry_at (go-back-N keeps the store's order the outbox
//  order in every case where the broker stored a prefix of them). With
//  wait_ms 0 the back-off doubles.
static void
s_go_back (pond_device_t *self, int wait_ms)
{
    for (int i = 0; i < self->window_count; i++)
        self->window [i].sent = false;
    if (wait_ms <= 0) {
        self->backoff_ms = self->backoff_ms ? self->backoff_ms * 2 : POND_DEVICE_BACKOFF_MIN;
        if (self->backoff_ms > POND_DEVICE_BACKOFF_MAX)
            self->backoff_ms = POND_DEVICE_BACKOFF_MAX;
        wait_ms = self->backoff_ms;
    }
    self->retry_at = zclock_mono () + wait_ms;
}

//  The broker could not be reached or did not answer: log once per outage.
static void
s_trouble (pond_device_t *self, const char *reason)
{
    snprintf (self->reason, sizeof self->reason, "%s", reason);
    if (!self->down) {
        pond_outbox_stats_t stats;
        pond_outbox_stats (self->outbox, &stats);
        zsys_warning ("pond-device: %s; events stay queued in the outbox (%llu now) and "
                      "are retried with back-off",
                      reason, (unsigned long long) stats.queued);
        self->down = true;
    }
}

//  No reply within resend_ms: the connection is suspect. Start afresh
//  (a new socket drops the stale replies) and send it all again later.
static void
s_no_reply (pond_device_t *self)
{
    char reason [REASON_MAX];
    snprintf (reason, sizeof reason, "no reply from the broker at %s within %d ms", self->ingest,
              self->resend_ms);
    s_trouble (self, reason);
    s_disconnect (self);
    s_reresolve (self);
    s_go_back (self, 0);
}

//  Make the client and its publisher if there are none. The publisher
//  sends each push once (attempts 1): resends are the device's, in
//  outbox order (s_go_back). It may hold each event twice (a resend while
//  the first send's reply is on its way), so twice the window. Returns 0
//  or -1 (logged, backed off).
static int
s_connect (pond_device_t *self)
{
    if (self->publisher)
        return 0;
    if (!self->client)
        self->client = pond_client_new (self->ingest);
    if (self->client)
        self->publisher = pond_publisher_new (self->client);
    if (!self->publisher) {
        char reason [REASON_MAX];
        snprintf (reason, sizeof reason, "invalid ingest endpoint %s", self->ingest);
        s_trouble (self, reason);
        s_go_back (self, POND_DEVICE_BACKOFF_MAX);
        s_disconnect (self);
        return -1;
    }
    pond_client_set_timeout (self->client, POND_DEVICE_SEND_MS, 1);
    pond_client_set_verbose (self->client, self->verbose);
    pond_publisher_set_window (self->publisher, 2 * self->window_max, 0);
    pond_publisher_set_timeout (self->publisher, self->resend_ms, 1);
    return 0;
}

static void
s_disconnect (pond_device_t *self)
{
    pond_publisher_destroy (&self->publisher);
    pond_client_destroy (&self->client);
}

static void s_refused (pond_device_t *self, int index, int code, const char *reason);

//  Send what is due, in order; notice ACK timeouts.
static void
s_send_step (pond_device_t *self)
{
    if (!s_online (self))
        return;
    int64_t now = zclock_mono ();
    if (now < self->retry_at)
        return;
    //  The oldest event in flight tells whether replies stopped coming
    for (int i = 0; i < self->window_count; i++)
        if (self->window [i].sent && self->window [i].due <= now) {
            s_no_reply (self);
            return;
        }
    s_window_fill (self);
    //  While the broker is in trouble, probe with the oldest event alone;
    //  its ACK opens the window again
    int limit = self->down && self->window_count > 1 ? 1 : self->window_count;
    for (int i = 0; i < limit; i++) {
        slot_t *slot = &self->window [i];
        if (slot->sent)
            continue;
        if (s_connect (self))
            return;
        if (pond_publisher_push (self->publisher, slot->id, slot->bytes, slot->size, slot->seq)) {
            int code = pond_publisher_code (self->publisher);
            if (code == POND_CODE_INTERRUPTED)
                return;
            if (code == POND_CODE_UNAVAILABLE)
                return;    //  Full of sends still without reply: later
            if (code == POND_CODE_TOO_LARGE) {
                s_refused (self, i, code, pond_publisher_reason (self->publisher));
                return;
            }
            char reason [REASON_MAX];
            //  With keys, a wrong broker key looks the same: say so
            snprintf (reason, sizeof reason, "broker not reachable at %s%s", self->ingest,
                      pond_keys_active () ? " (CURVE: is public/broker.cert of --keys "
                                            "the broker's own key?)"
                                          : "");
            s_trouble (self, reason);
            s_reresolve (self);
            s_go_back (self, 0);
            return;
        }
        if (slot->sends++)
            self->resends++;
        slot->sent = true;
        slot->due = zclock_mono () + self->resend_ms;
    }
}

static void
s_handle_ack (pond_device_t *self, const pond_publish_result_t *ack)
{
    int index = s_window_find (self, ack->id);
    if (index < 0) {
        self->stale++;    //  A second ACK for an event already removed
        return;
    }
    slot_t *slot = &self->window [index];
    pond_outbox_ack (self->outbox, slot->seq, ack->dup);
    self->sent++;
    if (ack->dup)
        self->dups++;
    if (self->verbose) {
        char uuid [POND_UUID_STR_SIZE];
        pond_uuid_format (ack->id, uuid);
        zsys_info ("pond-device: acked %s #%llu seq=%llu%s", uuid, (unsigned long long) slot->seq,
                   (unsigned long long) ack->seq, ack->dup ? " (dup)" : "");
    }
    s_window_remove (self, index);
    self->backoff_ms = 0;
    if (self->down) {
        pond_outbox_stats_t stats;
        pond_outbox_stats (self->outbox, &stats);
        zsys_info ("pond-device: broker reachable again at %s; syncing %llu queued events",
                   self->ingest, (unsigned long long) stats.queued);
        self->down = false;
        self->reason [0] = 0;
    }
}

//  Refused for good: resending the same bytes cannot help
static void
s_refused (pond_device_t *self, int index, int code, const char *reason)
{
    slot_t *slot = &self->window [index];
    char uuid [POND_UUID_STR_SIZE];
    pond_uuid_format (slot->id, uuid);
    zsys_error ("pond-device: the broker refused event %s (#%llu) for good: %d %s; "
                "it is set aside (see 'rejected' in pond-device --state)",
                uuid, (unsigned long long) slot->seq, code, reason);
    pond_outbox_reject (self->outbox, slot->seq);
    self->rejected++;
    s_window_remove (self, index);
}

static void
s_handle_nack (pond_device_t *self, const pond_publish_result_t *nack)
{
    int index = s_window_find (self, nack->id);
    if (index < 0) {
        if (self->verbose)
            zsys_warning ("pond-device: NACK %d for no event in flight: %s", nack->code,
                          nack->reason);
        return;
    }
    slot_t *slot = &self->window [index];
    if (nack->code == POND_CODE_TIMEOUT) {
        //  The publisher's: no reply to this send within resend_ms
        if (slot->sent)
            s_no_reply (self);
        return;
    }
    if (nack->code >= 500) {
        if (!slot->sent)
            return;    //  Stale: this event goes again anyway
        //  The broker or the store cannot take it now: all of them again, later
        char reason [REASON_MAX];
        snprintf (reason, sizeof reason, "broker unavailable (%d %.200s)", nack->code,
                  nack->reason);
        s_trouble (self, reason);
        s_go_back (
            self, nack->code == POND_CODE_UNAVAILABLE && nack->retry_ms ? (int) nack->retry_ms : 0);
        return;
    }
    s_refused (self, index, nack->code, nack->reason);
}

//  Wait up to timeout_ms for results, then take every result already
//  there. Returns -1 if interrupted.
static int
s_receive (pond_device_t *self, int timeout_ms)
{
    pond_publish_result_t result;
    int wait = timeout_ms;
    while (self->publisher) {
        int rc = pond_publisher_next (self->publisher, wait, &result);
        if (rc < 0)
            return -1;
        if (rc == 0)
            return 0;
        if (result.code == POND_CODE_OK)
            s_handle_ack (self, &result);
        else
            s_handle_nack (self, &result);
        wait = 0;
    }
    return 0;
}

//  How long the pump may wait before something is due: a resend, the end
//  of a back-off or of a timed cut. At most WAIT_MAX.
static int
s_next_due (pond_device_t *self, int64_t now)
{
    int64_t next = now + WAIT_MAX;
    if (self->retry_at > now && self->retry_at < next)
        next = self->retry_at;
    if (self->offline_until > now && self->offline_until < next)
        next = self->offline_until;
    for (int i = 0; i < self->window_count; i++)
        if (self->window [i].sent && self->window [i].due < next)
            next = self->window [i].due;
    //  Something overdue waits for the back-off: nap at least 1 ms
    return next > now ? (int) (next - now) : 1;
}

int
pond_device_pump (pond_device_t *self, int timeout_ms)
{
    assert (self);
    int64_t deadline = zclock_mono () + (timeout_ms > 0 ? timeout_ms : 0);
    while (true) {
        if (zsys_interrupted)
            return -1;
        s_send_step (self);
        int64_t now = zclock_mono ();
        int wait = deadline > now ? (int) (deadline - now) : 0;
        int due = s_next_due (self, now);
        if (due < wait)
            wait = due;
        bool in_flight = self->publisher && pond_publisher_held (self->publisher) > 0;
        if (in_flight && s_online (self)) {
            if (s_receive (self, wait))
                return -1;
        }
        else if (wait > 0)
            zmq_poll (NULL, 0, wait);
        if (zclock_mono () >= deadline)
            return zsys_interrupted ? -1 : 0;
    }
}

//  True if the network stays cut whatever time passes before deadline.
static bool
s_cut_for_good (pond_device_t *self, int64_t deadline)
{
    if (self->cut)
        return true;
    if (self->offline_until && self->offline_until >= deadline)
        return true;
    if (self->offline_until_seq) {
        pond_outbox_stats_t stats;
        pond_outbox_stats (self->outbox, &stats);
        return stats.last_seq < self->offline_until_seq;
    }
    return false;
}

int
pond_device_sync (pond_device_t *self, int timeout_ms)
{
    assert (self);
    int64_t deadline = zclock_mono () + (timeout_ms > 0 ? timeout_ms : 0);
    while (pond_device_queued (self) > 0) {
        if (s_cut_for_good (self, deadline))
            return -1;
        int64_t left = deadline - zclock_mono ();
        if (pond_device_pump (self, left > WAIT_MAX ? WAIT_MAX : (int) (left > 0 ? left : 0)))
            return -1;
        if (zclock_mono () >= deadline)
            break;
    }
    return pond_device_queued (self) == 0 ? 0 : -1;
}

uint64_t
pond_device_queued (pond_device_t *self)
{
    assert (self);
    pond_outbox_stats_t stats;
    pond_outbox_stats (self->outbox, &stats);
    return stats.queued;
}

const char *
pond_device_network_reason (pond_device_t *self)
{
    assert (self);
    if (self->cut || self->offline_until || self->offline_until_seq)
        return "the network is cut (simulated)";
    return self->reason;
}

const char *
pond_device_ingest (pond_device_t *self)
{
    assert (self);
    return self->ingest;
}

//  ---------------------------------------------------------------------
//  Reports

static char *
s_print (cJSON *root)
{
    char *text = root ? cJSON_PrintUnformatted (root) : NULL;
    cJSON_Delete (root);
    return text;
}

char *
pond_device_state_json (pond_device_t *self)
{
    assert (self);
    pond_outbox_stats_t stats;
    pond_outbox_stats (self->outbox, &stats);
    cJSON *root = cJSON_CreateObject ();
    cJSON *containers = pond_outbox_containers (self->outbox);
    if (!root || !containers) {
        cJSON_Delete (root);
        cJSON_Delete (containers);
        return NULL;
    }
    cJSON_AddStringToObject (root, "device", self->device);
    cJSON_AddStringToObject (root, "customer", self->customer);
    cJSON_AddItemToObject (root, "containers", containers);
    cJSON_AddNumberToObject (root, "outbox", (double) stats.queued);
    cJSON_AddNumberToObject (root, "sent", (double) stats.sent);
    cJSON_AddNumberToObject (root, "created", (double) stats.created);
    cJSON_AddNumberToObject (root, "dups", (double) stats.dups);
    cJSON_AddNumberToObject (root, "rejected", (double) stats.rejected);
    cJSON_AddNumberToObject (root, "local_seq", (double) stats.last_seq);
    return s_print (root);
}

char *
pond_device_summary_json (pond_device_t *self, const char *extra)
{
    assert (self);
    cJSON *root = cJSON_CreateObject ();
    cJSON *containers = pond_outbox_containers (self->outbox);
    if (!root || !containers) {
        cJSON_Delete (root);
        cJSON_Delete (containers);
        return NULL;
    }
    cJSON_AddStringToObject (root, "device", self->device);
    cJSON_AddStringToObject (root, "customer", self->customer);
    cJSON_AddNumberToObject (root, "created", (double) self->created);
    cJSON_AddNumberToObject (root, "sent", (double) self->sent);
    cJSON_AddNumberToObject (root, "dups", (double) self->dups);
    cJSON_AddNumberToObject (root, "queued", (double) pond_device_queued (self));
    cJSON_AddNumberToObject (root, "rejected", (double) self->rejected);
    cJSON_AddNumberToObject (root, "resends", (double) self->resends);
    cJSON_AddItemToObject (root, "containers", containers);
    cJSON *more = extra ? cJSON_Parse (extra) : NULL;
    cJSON *item = more ? more->child : NULL;
    while (item) {
        cJSON *next = item->next;
        cJSON_DetachItemViaPointer (more, item);
        cJSON_AddItemToObject (root, item->string, item);
        item = next;
    }
    cJSON_Delete (more);
    return s_print (root);
}

uint64_t
pond_device_created (pond_device_t *self)
{
    assert (self);
    return self->created;
}

uint64_t
pond_device_sent (pond_device_t *self)
{
    assert (self);
    return self->sent;
}

uint64_t
pond_device_rejected (pond_device_t *self)
{
    assert (self);
    return self->rejected;
}
