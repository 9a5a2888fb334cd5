/*  pond_reader: the replay reader; a snapshot of the log from a mesh's
    control socket, in chunks paced by credit. See pond_client.h and
    proto/PROTOCOL.md, "Control socket".
*/
#include "pond_client_io.h"
#include "pond_uuid.h"

#include <errno.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

struct _pond_reader_t {
    zsock_t *sock;               //  DEALER to the control socket
    pond_keys_watch_t *watch;    //  its handshakes, with keys
    uint64_t rid;
    zmsg_t *chunk;      //  event frames of the chunk being consumed
    zframe_t *frame;    //  the event frame being read (1+ events)
    size_t offset;      //  where its next event starts
    int code;           //  0 running, 200 done, else failed
    char reason [POND_REASON_MAX + 128];
    uint64_t count;     //  events handed out
    uint64_t head;      //  snapshot head, from END
    uint32_t window;    //  chunks granted up front
    uint32_t owed;      //  chunks taken but not yet granted again
};

static void s_replay_fail (pond_reader_t *self, int code, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
s_replay_fail (pond_reader_t *self, int code, const char *format, ...)
{
    self->code = code;
    va_list args;
    va_start (args, format);
    vsnprintf (self->reason, sizeof self->reason, format, args);
    va_end (args);
}

void
pond_reader_tune_malloc (void)
{
#if defined(__GLIBC__)
    mallopt (M_MMAP_THRESHOLD, 4 * 1024 * 1024);
    mallopt (M_TRIM_THRESHOLD, 32 * 1024 * 1024);
#endif
}

//  Send CREDIT (chunks > 0) or CANCEL (chunks 0) for our rid.
static void
s_replay_credit (pond_reader_t *self, uint32_t chunks)
{
    pond_credit_t credit = { .rid = self->rid, .chunks = chunks };
    zframe_t *body = pond_credit_encode (&credit);
    pond_client_io_send_frame (self->sock, chunks ? POND_CREDIT : POND_CANCEL, &body);
}

pond_reader_t *
pond_reader_new (const char *control_endpoint, const pond_replay_req_t *req)
{
    assert (control_endpoint);
    assert (req);
    pond_reader_t *self = (pond_reader_t *) zmalloc (sizeof (pond_reader_t));
    if (!self)
        return NULL;
    pond_replay_req_t copy = *req;
    if (copy.credit == 0)
        copy.credit = POND_REPLAY_CREDIT;
    //  One frame per CHUNK instead of one per event: a fraction of the
    //  per-message cost in the store, the broker and here
    copy.pack = true;
    while (copy.rid == 0) {
        uint8_t random [POND_ID_SIZE];
        if (pond_uuid_v7 (random)) {
            pond_reader_destroy (&self);
            return NULL;
        }
        memcpy (&copy.rid, random + 8, sizeof copy.rid);
    }
    self->rid = copy.rid;
    //  The broker keeps POND_REPLAY_WINDOW chunks of credit per replay:
    //  grants in larger batches (half the window) would never come
    self->window = copy.credit < 2 * POND_REPLAY_WINDOW ? copy.credit : 2 * POND_REPLAY_WINDOW;
    self->sock = pond_client_io_dealer_new (control_endpoint, false, POND_CLIENT_ACK_TIMEOUT,
                                            &self->watch);
    zframe_t *body = self->sock ? pond_replay_req_encode (&copy) : NULL;
    if (!body) {
        pond_reader_destroy (&self);
        return NULL;
    }
    //  Check the request as the server will, so that a nonsense request
    //  fails here with the same reason and nothing is sent
    pond_replay_req_t check;
    char err [POND_ERR_SIZE];
    if (pond_replay_req_decode (body, &check, err, sizeof err)) {
        s_replay_fail (self, POND_CODE_BAD_REQUEST, "invalid replay request: %s", err);
        zframe_destroy (&body);
    }
    else if (pond_client_io_send_frame (self->sock, POND_REPLAY, &body))
        s_replay_fail (self, POND_CODE_TIMEOUT, "cannot send to %s", control_endpoint);
    return self;
}

void
pond_reader_destroy (pond_reader_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        pond_reader_t *self = *self_p;
        if (self->sock && self->code == 0) {
            //  Tell the server to stop; give the CANCEL a moment to leave
            s_replay_credit (self, 0);
            zsock_set_linger (self->sock, 100);
        }
        zsock_destroy (&self->sock);
        pond_keys_watch_destroy (&self->watch);
        zmsg_destroy (&self->chunk);
        zframe_destroy (&self->frame);
        free (self);
        *self_p = NULL;
    }
}

//  A chunk was taken: grant it again, in batches of half the window (at
//  least one), so that one CREDIT crosses broker and store per few chunks
//  instead of one per chunk, while the other half keeps the server busy.
static void
s_replay_grant (pond_reader_t *self)
{
    uint32_t batch = self->window > 1 ? self->window / 2 : 1;
    if (++self->owed >= batch) {
        s_replay_credit (self, self->owed);
        self->owed = 0;
    }
}

//  Handle one message from the control socket: a CHUNK becomes the chunk
//  being consumed; END and ERROR set the code; the rest is ignored.
static void
s_replay_handle (pond_reader_t *self, zmsg_t **msg_p)
{
    zmsg_t *msg = *msg_p;
    zframe_t *command = zmsg_first (msg);
    zframe_t *body = zmsg_next (msg);
    char err [POND_ERR_SIZE];
    if (pond_proto_is (command, POND_CHUNK)) {
        pond_credit_t header;
        if (pond_credit_decode (body, &header, err, sizeof err))
            s_replay_fail (self, POND_CODE_BAD_REPLY, "unreadable CHUNK: %s", err);
        else if (header.rid == self->rid) {
            zframe_t *frame = zmsg_pop (msg);
            zframe_destroy (&frame);
            frame = zmsg_pop (msg);
            zframe_destroy (&frame);
            if (zmsg_size (msg))
                self->chunk = msg;    //  Events follow; credit is granted once consumed
            else
                s_replay_grant (self);
        }
    }
    else if (pond_proto_is (command, POND_END)) {
        pond_end_t end;
        if (pond_end_decode (body, &end, err, sizeof err))
            s_replay_fail (self, POND_CODE_BAD_REPLY, "unreadable END: %s", err);
        else if (end.rid == self->rid) {
            if (end.code == 0)
                s_replay_fail (self, POND_CODE_BAD_REPLY, "END without a code");
            else if (end.code != POND_CODE_OK)
                s_replay_fail (self, (int) end.code, "%s", end.reason);
            else if (end.count != self->count)
                s_replay_fail (self, POND_CODE_BAD_REPLY,
                               "replay incomplete: the server sent %llu events, %llu arrived",
                               (unsigned long long) end.count, (unsigned long long) self->count);
            else {
                self->code = POND_CODE_OK;
                self->head = end.head;
            }
        }
    }
    else if (pond_proto_is (command, POND_ERROR)) {
        pond_nack_t error;
        if (pond_nack_decode (body, &error, err, sizeof err))
            s_replay_fail (self, POND_CODE_BAD_REPLY, "unreadable ERROR: %s", err);
        else
            s_replay_fail (self, error.code ? (int) error.code : POND_CODE_BAD_REPLY, "%s",
                           error.reason);
    }
    if (self->chunk != msg)
        zmsg_destroy (msg_p);
    *msg_p = NULL;
}

//  The next event of the frame being read. Every event frame is read as
//  a msgpack stream: a packed CHUNK holds all its events in one frame,
//  an unpacked one an event per frame (a stream of one). Returns NULL at
//  the end of the frame (frame destroyed) or on a bad event (replay failed).
static pond_event_t *
s_replay_frame_next (pond_reader_t *self)
{
    const uint8_t *data = zframe_data (self->frame) + self->offset;
    size_t left = zframe_size (self->frame) - self->offset;
    if (left == 0) {
        zframe_destroy (&self->frame);
        return NULL;
    }
    char err [POND_ERR_SIZE];
    size_t used = left;
    pond_event_t *event = pond_event_decode_next (data, left, &used, err, sizeof err);
    if (!event) {
        s_replay_fail (self, POND_CODE_BAD_REPLY, "event %llu of the replay: %s",
                       (unsigned long long) self->count + 1, err);
        s_replay_credit (self, 0);
        zmsg_destroy (&self->chunk);
        zframe_destroy (&self->frame);
        return NULL;
    }
    self->offset += used;
    self->count++;
    return event;
}

pond_event_t *
pond_reader_next (pond_reader_t *self, int timeout_ms)
{
    assert (self);
    //  The clock is read only when we must wait: not once per event
    int64_t deadline = 0;
    bool dated = false;
    while (true) {
        if (self->frame) {
            pond_event_t *event = s_replay_frame_next (self);
            if (event || self->code)
                return event;
        }
        if (self->chunk) {
            self->frame = zmsg_pop (self->chunk);
            self->offset = 0;
            if (zmsg_size (self->chunk) == 0) {
                //  Chunk taken: the server may send one more
                zmsg_destroy (&self->chunk);
                s_replay_grant (self);
            }
            continue;
        }
        if (self->code)
            return NULL;
        if (!dated) {
            deadline = pond_client_io_deadline (timeout_ms);
            dated = true;
        }
        bool interrupted;
        zmsg_t *msg = pond_client_io_recv_until (self->sock, deadline, &interrupted);
        if (!msg) {
            char refused [640];
            if (interrupted) {
                s_replay_credit (self, 0);
                s_replay_fail (self, POND_CODE_INTERRUPTED, "interrupted");
            }
            else if (pond_keys_watch_refused (self->watch, refused, sizeof refused))
                s_replay_fail (self, POND_CODE_FORBIDDEN, "%s", refused);
            else
                snprintf (self->reason, sizeof self->reason, "no reply within %d ms", timeout_ms);
            return NULL;
        }
        self->reason [0] = 0;
        s_replay_handle (self, &msg);
    }
}

int
pond_reader_code (pond_reader_t *self)
{
    assert (self);
    return self->code;
}

const char *
pond_reader_reason (pond_reader_t *self)
{
    assert (self);
    return self->reason;
}

uint64_t
pond_reader_head (pond_reader_t *self)
{
    assert (self);
    return self->head;
}

uint64_t
pond_reader_count (pond_reader_t *self)
{
    assert (self);
    return self->count;
}

size_t
pond_reader_held_bytes (pond_reader_t *self)
{
    assert (self);
    size_t held = self->chunk ? zmsg_content_size (self->chunk) : 0;
    if (self->frame)
        held += zframe_size (self->frame) - self->offset;
    return held;
}
