/*  pond_publisher: many PUBLISHes in flight over one pond_client_t, each
    retried on its own as pond_client_publish retries one. See
    pond_client.h, "Pipelined producer", and proto/PROTOCOL.md, "Ingest
    socket".

    The events held live in one ring of slots, in push order. A slot keeps
    its own copy of the encoded bytes (its buffer is reused by the events
    that take the slot later), the caller's tag, its sends and when it is
    due: the end of the wait for a reply (SENT) or the end of a 503's
    retry_ms (WAIT). Replies are matched by id, starting where the last
    match was, so replies in push order (the usual case) cost one compare.
    Slots are freed as their results are returned; the head skips freed
    slots, so a slow event in the middle holds no room of its own beyond
    the ring's slack (the ring has twice the window's slots).

    With batching (pond_publisher_set_batch), push leaves the event
    QUEUED: queued slots are always the newest of the ring (nothing else
    is pushed between), and go out together as one PUBLISH batch. A
    RESULTS reply is kept and its results taken one by one, each as an
    ACK or NACK would be: callers see the same per-event results.
*/
#include "pond_client_io.h"

#include <errno.h>

enum { SLOT_FREE, SLOT_SENT, SLOT_WAIT, SLOT_QUEUED };

typedef struct {
    uint8_t id [POND_ID_SIZE];
    uint64_t tag;
    uint8_t *bytes;    //  buffer kept across the slot's uses
    size_t size;
    size_t capacity;
    int state;
    int sends;
    int64_t due;       //  SENT: reply timeout; WAIT: resend time
    int64_t pushed;    //  for the 503 budget
} slot_t;

struct _pond_publisher_t {
    pond_client_t *client;    //  borrowed
    slot_t *ring;
    size_t capacity;    //  slots in the ring: twice the window
    size_t head;        //  oldest slot in use
    size_t span;        //  slots from head to the newest, freed ones included
    size_t held;        //  slots in use
    size_t held_bytes;
    size_t window;
    size_t max_bytes;
    int ack_timeout;
    int attempts;
    int64_t next_due;       //  no slot is due before this (may be early)
    size_t batch_events;    //  events per PUBLISH at most (1: no batching)
    size_t batch_bytes;     //  ... and bytes
    size_t queued;          //  newest slots pushed and not sent yet
    size_t queued_bytes;
    const uint8_t **frames;    //  batch_events: what one batch sends
    size_t *sizes;
    pond_result_t *results;    //  the last RESULTS, taken one by one
    size_t results_count;
    size_t results_taken;
    size_t hint;    //  offset from head where the next reply may match
    uint64_t stale, malformed, retries;
    uint64_t unavailable;                //  NACK 503s taken for events held
    pond_client_io_failure_t failure;    //  why the last push or flush failed
};

//  Fail the call: see pond_client_io_fail.
#define s_fail(self, ...) pond_client_io_fail (&(self)->failure, __VA_ARGS__)

static void
s_ring_free (pond_publisher_t *self)
{
    for (size_t i = 0; self->ring && i < self->capacity; i++)
        free (self->ring [i].bytes);
    free (self->ring);
    self->ring = NULL;
}

pond_publisher_t *
pond_publisher_new (pond_client_t *client)
{
    assert (client);
    pond_publisher_t *self = (pond_publisher_t *) zmalloc (sizeof (pond_publisher_t));
    if (!self)
        return NULL;
    self->client = client;
    self->ack_timeout = POND_CLIENT_ACK_TIMEOUT;
    self->attempts = POND_CLIENT_ATTEMPTS;
    self->max_bytes = POND_PUBLISHER_BYTES;
    self->next_due = INT64_MAX;
    self->batch_events = 1;
    self->batch_bytes = POND_BATCH_BYTES_MAX;
    if (pond_publisher_set_window (self, POND_PUBLISHER_WINDOW, 0))
        pond_publisher_destroy (&self);
    return self;
}

void
pond_publisher_destroy (pond_publisher_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        pond_publisher_t *self = *self_p;
        s_ring_free (self);
        free (self->frames);
        free (self->sizes);
        free (self->results);
        free (self);
        *self_p = NULL;
    }
}

int
pond_publisher_set_window (pond_publisher_t *self, int events, size_t max_bytes)
{
    assert (self);
    if (self->held)
        return s_fail (self, POND_CODE_BAD_REQUEST,
                       "the window cannot change while events are held");
    if (max_bytes > 0)
        self->max_bytes = max_bytes;
    if (events > 0 && (size_t) events != self->window) {
        slot_t *ring = (slot_t *) calloc ((size_t) events * 2, sizeof (slot_t));
        if (!ring)
            return s_fail (self, POND_CODE_STORE_ERROR, "out of memory");
        s_ring_free (self);
        self->ring = ring;
        self->capacity = (size_t) events * 2;
        self->window = (size_t) events;
        self->head = self->span = self->hint = 0;
    }
    return 0;
}

void
pond_publisher_set_batch (pond_publisher_t *self, int max_events, size_t max_bytes)
{
    assert (self);
    if (max_bytes > 0)
        self->batch_bytes = max_bytes < POND_BATCH_BYTES_MAX ? max_bytes : POND_BATCH_BYTES_MAX;
    if (max_events > 0 && self->queued == 0)
        self->batch_events = max_events < POND_BATCH_EVENTS_MAX ? (size_t) max_events
                                                                : POND_BATCH_EVENTS_MAX;
}

void
pond_publisher_set_timeout (pond_publisher_t *self, int ack_timeout_ms, int attempts)
{
    assert (self);
    if (ack_timeout_ms > 0)
        self->ack_timeout = ack_timeout_ms;
    if (attempts > 0)
        self->attempts = attempts;
}

size_t
pond_publisher_room (pond_publisher_t *self)
{
    assert (self);
    if (self->held && self->held_bytes >= self->max_bytes)
        return 0;
    size_t room = self->window - self->held;
    if (self->capacity - self->span < room)
        room = self->capacity - self->span;
    return room;
}

size_t
pond_publisher_held (pond_publisher_t *self)
{
    assert (self);
    return self->held;
}

static slot_t *
s_slot (pond_publisher_t *self, size_t offset)
{
    return &self->ring [(self->head + offset) % self->capacity];
}

//  Send a slot's bytes again. A send that timed out (the broker is not
//  connected) counts as a send without reply. Returns 0, or -1 if
//  interrupted.
static int
s_send (pond_publisher_t *self, slot_t *slot, int64_t now)
{
    if (pond_client_send_bytes (self->client, slot->bytes, slot->size)
        && pond_client_code (self->client) == POND_CODE_INTERRUPTED)
        return s_fail (self, POND_CODE_INTERRUPTED, "interrupted");
    if (slot->sends++)
        self->retries++;
    slot->state = SLOT_SENT;
    slot->due = zclock_mono ();
    if (slot->due < now + self->ack_timeout)
        slot->due = now + self->ack_timeout;
    if (slot->due < self->next_due)
        self->next_due = slot->due;
    return 0;
}

//  Send the queued slots as one PUBLISH (a batch when more than one).
//  A send that times out counts as a send without reply, as in s_send.
//  Returns 0, or -1 if interrupted (the slots stay queued).
static int
s_send_queued (pond_publisher_t *self)
{
    if (self->queued == 0)
        return 0;
    if (!self->frames) {
        self->frames = (const uint8_t **) calloc (POND_BATCH_EVENTS_MAX, sizeof (uint8_t *));
        self->sizes = (size_t *) calloc (POND_BATCH_EVENTS_MAX, sizeof (size_t));
        if (!self->frames || !self->sizes)
            return s_fail (self, POND_CODE_STORE_ERROR, "out of memory");
    }
    size_t first = self->span - self->queued;
    for (size_t k = 0; k < self->queued; k++) {
        slot_t *slot = s_slot (self, first + k);
        self->frames [k] = slot->bytes;
        self->sizes [k] = slot->size;
    }
    if (pond_client_send_batch (self->client, self->frames, self->sizes, self->queued)
        && pond_client_code (self->client) == POND_CODE_INTERRUPTED)
        return s_fail (self, POND_CODE_INTERRUPTED, "interrupted");
    int64_t due = zclock_mono () + self->ack_timeout;
    for (size_t k = 0; k < self->queued; k++) {
        slot_t *slot = s_slot (self, first + k);
        slot->sends = 1;
        slot->state = SLOT_SENT;
        slot->due = due;
    }
    if (due < self->next_due)
        self->next_due = due;
    self->queued = 0;
    self->queued_bytes = 0;
    return 0;
}

int
pond_publisher_push (pond_publisher_t *self, const uint8_t *id, const uint8_t *bytes, size_t size,
                     uint64_t tag)
{
    assert (self);
    assert (id);
    assert (bytes);
    self->failure.code = 0;
    self->failure.reason [0] = 0;
    if (size > POND_PUBLISH_MAX_SIZE)
        return s_fail (self, POND_CODE_TOO_LARGE,
                       "event too large: %zu bytes; the limit is %d (make data smaller)", size,
                       POND_PUBLISH_MAX_SIZE);
    if (pond_publisher_room (self) == 0
        || (self->held && self->held_bytes + size > self->max_bytes))
        return s_fail (self, POND_CODE_UNAVAILABLE,
                       "the publisher is full (%zu events, %zu bytes held): "
                       "take results with pond_publisher_next first",
                       self->held, self->held_bytes);
    //  A batch stays within its bytes: what is queued goes first
    if (self->queued && self->queued_bytes + size > self->batch_bytes && s_send_queued (self))
        return -1;
    slot_t *slot = s_slot (self, self->span);
    if (slot->capacity < size) {
        uint8_t *buffer = (uint8_t *) realloc (slot->bytes, size);
        if (!buffer)
            return s_fail (self, POND_CODE_STORE_ERROR, "out of memory");
        slot->bytes = buffer;
        slot->capacity = size;
    }
    memcpy (slot->bytes, bytes, size);
    memcpy (slot->id, id, POND_ID_SIZE);
    slot->size = size;
    slot->tag = tag;
    slot->sends = 0;
    slot->pushed = zclock_mono ();
    if (self->batch_events > 1) {
        slot->state = SLOT_QUEUED;
        slot->due = INT64_MAX;
        self->span++;
        self->held++;
        self->held_bytes += size;
        self->queued++;
        self->queued_bytes += size;
        if (self->queued >= self->batch_events)
            s_send_queued (self);    //  interrupted: the next call sends them
        return 0;
    }
    if (pond_client_send_bytes (self->client, slot->bytes, slot->size))
        return s_fail (self, pond_client_code (self->client), "%s",
                       pond_client_reason (self->client));
    slot->sends = 1;
    slot->state = SLOT_SENT;
    slot->due = zclock_mono ();
    if (slot->due < slot->pushed + self->ack_timeout)
        slot->due = slot->pushed + self->ack_timeout;
    if (slot->due < self->next_due)
        self->next_due = slot->due;
    self->span++;
    self->held++;
    self->held_bytes += size;
    return 0;
}

int
pond_publisher_push_event (pond_publisher_t *self, const pond_event_t *event, uint64_t tag)
{
    assert (self);
    assert (event);
    size_t size;
    uint8_t *bytes = pond_client_io_encode (self->client, event, &size);
    if (!bytes)
        return s_fail (self, pond_client_code (self->client), "%s",
                       pond_client_reason (self->client));
    int rc = pond_publisher_push (self, pond_event_id (event), bytes, size, tag);
    free (bytes);
    return rc;
}

//  Fill the result of a slot and free the slot. Returns 1.
static int s_final (pond_publisher_t *self, slot_t *slot, pond_publish_result_t *result, int code,
                    const pond_ack_t *ack, const char *format, ...)
    __attribute__ ((format (printf, 6, 7)));

static int
s_final (pond_publisher_t *self, slot_t *slot, pond_publish_result_t *result, int code,
         const pond_ack_t *ack, const char *format, ...)
{
    memcpy (result->id, slot->id, POND_ID_SIZE);
    result->tag = slot->tag;
    result->code = code;
    result->seq = ack ? ack->seq : 0;
    result->dup = ack ? ack->dup : false;
    result->sends = slot->sends;
    if (code != POND_CODE_UNAVAILABLE)
        result->retry_ms = 0;
    va_list args;
    va_start (args, format);
    vsnprintf (result->reason, sizeof result->reason, format, args);
    va_end (args);

    slot->state = SLOT_FREE;
    self->held--;
    self->held_bytes -= slot->size;
    while (self->span && self->ring [self->head].state == SLOT_FREE) {
        self->head = (self->head + 1) % self->capacity;
        self->span--;
        if (self->hint)
            self->hint--;
    }
    return 1;
}

//  The slot held for this id, or NULL.
static slot_t *
s_find (pond_publisher_t *self, const uint8_t *id)
{
    for (size_t k = 0; k < self->span; k++) {
        size_t offset = (self->hint + k) % self->span;
        slot_t *slot = s_slot (self, offset);
        if (slot->state != SLOT_FREE && memcmp (slot->id, id, POND_ID_SIZE) == 0) {
            self->hint = offset + 1;
            return slot;
        }
    }
    return NULL;
}

//  Resend what is due; fail an event whose last send got no reply.
//  Returns 1 with a result, 0 if none, -1 if interrupted.
static int
s_service (pond_publisher_t *self, int64_t now, pond_publish_result_t *result)
{
    int64_t next_due = INT64_MAX;
    for (size_t k = 0; k < self->span; k++) {
        slot_t *slot = s_slot (self, k);
        if (slot->state == SLOT_FREE || slot->state == SLOT_QUEUED)
            continue;
        if (slot->due <= now) {
            if (slot->state == SLOT_SENT && slot->sends >= self->attempts) {
                self->next_due = now;    //  Look again at the rest next time
                return s_final (self, slot, result, POND_CODE_TIMEOUT, NULL,
                                "no reply from the broker to %d sends of %d ms each", slot->sends,
                                self->ack_timeout);
            }
            if (s_send (self, slot, now))
                return -1;
        }
        if (slot->due < next_due)
            next_due = slot->due;
    }
    self->next_due = next_due;
    return 0;
}

//  Take one event's result (from an ACK, a NACK or RESULTS). Returns 1
//  with a final result, or 0 (stale, or a 503 whose resend is scheduled).
static int
s_on_result (pond_publisher_t *self, const pond_result_t *reply, pond_publish_result_t *result)
{
    slot_t *slot = reply->has_id ? s_find (self, reply->id) : NULL;
    if (!slot || slot->state == SLOT_QUEUED) {
        self->stale++;
        return 0;
    }
    if (reply->code == POND_CODE_OK) {
        pond_ack_t ack = { .seq = reply->seq, .dup = reply->dup };
        return s_final (self, slot, result, POND_CODE_OK, &ack, "%s", "");
    }
    if (reply->code != POND_CODE_UNAVAILABLE)
        return s_final (self, slot, result, (int) reply->code, NULL, "%s", reply->reason);
    if (slot->state == SLOT_WAIT)
        return 0;    //  A resend is scheduled already
    self->unavailable++;
    int64_t now = zclock_mono ();
    int64_t wait = reply->retry_ms ? reply->retry_ms : 100;
    result->retry_ms = reply->retry_ms;
    if (self->attempts == 1
        || now + wait >= slot->pushed + (int64_t) self->ack_timeout * self->attempts)
        return s_final (self, slot, result, POND_CODE_UNAVAILABLE, NULL,
                        "broker unavailable: %s (still after %d ms)", reply->reason,
                        (int) (now - slot->pushed));
    slot->state = SLOT_WAIT;
    slot->due = now + wait;
    if (slot->due < self->next_due)
        self->next_due = slot->due;
    return 0;
}

//  Take the results of the last RESULTS not taken yet, until one is
//  final. Returns 1 with it, or 0 when none is left.
static int
s_take_results (pond_publisher_t *self, pond_publish_result_t *result)
{
    while (self->results_taken < self->results_count)
        if (s_on_result (self, &self->results [self->results_taken++], result))
            return 1;
    return 0;
}

//  Take one reply. Returns 1 with a result, or 0 (stale, unreadable, or
//  a 503 whose resend is scheduled).
static int
s_on_reply (pond_publisher_t *self, zmsg_t *msg, pond_publish_result_t *result)
{
    char err [POND_ERR_SIZE];
    zframe_t *command = zmsg_first (msg);
    zframe_t *body = zmsg_next (msg);
    if (pond_proto_is (command, POND_ACK)) {
        pond_ack_t ack;
        if (!body || pond_ack_decode (body, &ack, err, sizeof err)) {
            self->malformed++;
            return 0;
        }
        pond_result_t reply = {
            .has_id = true, .code = POND_CODE_OK, .seq = ack.seq, .dup = ack.dup
        };
        memcpy (reply.id, ack.id, POND_ID_SIZE);
        return s_on_result (self, &reply, result);
    }
    if (pond_proto_is (command, POND_NACK)) {
        pond_nack_t nack;
        if (!body || pond_nack_decode (body, &nack, err, sizeof err)) {
            self->malformed++;
            return 0;
        }
        pond_result_t reply = { .has_id = nack.has_id,
                                .code = nack.code,
                                .retry_ms = nack.retry_ms };
        memcpy (reply.id, nack.id, POND_ID_SIZE);
        snprintf (reply.reason, sizeof reply.reason, "%.127s", nack.reason);
        return s_on_result (self, &reply, result);
    }
    if (pond_proto_is (command, POND_RESULTS)) {
        if (!self->results)
            self->results = (pond_result_t *) calloc (POND_BATCH_EVENTS_MAX,
                                                      sizeof (pond_result_t));
        uint32_t code;
        char reason [POND_REASON_MAX];
        self->results_count = self->results_taken = 0;
        if (!self->results || !body
            || pond_results_decode (body, &code, reason, sizeof reason, self->results,
                                    POND_BATCH_EVENTS_MAX, &self->results_count, err, sizeof err)) {
            self->results_count = 0;
            self->malformed++;
            return 0;
        }
        if (self->results_count == 0)
            self->stale++;    //  a batch refused whole, no event named: they time out
        return s_take_results (self, result);
    }
    if (!pond_proto_is (command, POND_PONG))
        self->malformed++;
    return 0;
}

int
pond_publisher_next (pond_publisher_t *self, int timeout_ms, pond_publish_result_t *result)
{
    assert (self);
    assert (result);
    int64_t deadline = pond_client_io_deadline (timeout_ms);
    //  What a RESULTS brought and is not taken yet comes first
    if (s_take_results (self, result))
        return 1;
    if (s_send_queued (self))
        return -1;
    while (self->held) {
        int64_t now = zclock_mono ();
        if (now >= self->next_due) {
            int rc = s_service (self, now, result);
            if (rc)
                return rc;
        }
        int64_t until = self->next_due;
        if (deadline >= 0 && deadline < until)
            until = deadline;
        zsock_t *sock = pond_client_sock (self->client);
        bool interrupted = false;
        zmsg_t *msg = NULL;
        if (sock)
            msg = pond_client_io_recv_until (sock, until, &interrupted);
        else if (until > now)
            zmq_poll (NULL, 0, (long) (until - now));
        if (!msg && (interrupted || zsys_interrupted))
            return s_fail (self, POND_CODE_INTERRUPTED, "interrupted");
        if (msg) {
            int rc = s_on_reply (self, msg, result);
            zmsg_destroy (&msg);
            if (rc)
                return rc;
        }
        else if (deadline >= 0 && zclock_mono () >= deadline)
            return 0;
    }
    return 0;
}

int
pond_publisher_flush (pond_publisher_t *self, int timeout_ms)
{
    assert (self);
    int64_t deadline = pond_client_io_deadline (timeout_ms);
    int code = 0;
    char reason [sizeof self->failure.reason] = "";
    while (self->held) {
        int64_t left = deadline < 0 ? -1 : deadline - zclock_mono ();
        pond_publish_result_t result;
        int rc = pond_publisher_next (self, deadline < 0 ? -1 : left > 0 ? (int) left : 0, &result);
        if (rc < 0)
            return -1;
        if (rc == 0)
            return s_fail (self, POND_CODE_TIMEOUT,
                           "%zu events still without a final reply "
                           "after %d ms",
                           self->held, timeout_ms);
        if (result.code != POND_CODE_OK && code == 0) {
            code = result.code;
            snprintf (reason, sizeof reason, "%s", result.reason);
        }
    }
    if (code)
        return s_fail (self, code, "%s", reason);
    self->failure.code = 0;
    self->failure.reason [0] = 0;
    return 0;
}

zsock_t *
pond_publisher_sock (pond_publisher_t *self)
{
    assert (self);
    return pond_client_sock (self->client);
}

int
pond_publisher_due (pond_publisher_t *self)
{
    assert (self);
    if (self->held == 0)
        return -1;
    if (self->results_taken < self->results_count)
        return 0;
    s_send_queued (self);    //  interrupted: next sends them
    int64_t left = self->next_due - zclock_mono ();
    return left > 0 ? (int) (left < INT32_MAX ? left : INT32_MAX) : 0;
}

int
pond_publisher_code (pond_publisher_t *self)
{
    assert (self);
    return self->failure.code;
}

const char *
pond_publisher_reason (pond_publisher_t *self)
{
    assert (self);
    return self->failure.reason;
}

uint64_t
pond_publisher_stale (pond_publisher_t *self)
{
    assert (self);
    return self->stale;
}

uint64_t
pond_publisher_malformed (pond_publisher_t *self)
{
    assert (self);
    return self->malformed;
}

uint64_t
pond_publisher_retries (pond_publisher_t *self)
{
    assert (self);
    return self->retries;
}

uint64_t
pond_publisher_unavailable (pond_publisher_t *self)
{
    assert (self);
    return self->unavailable;
}
