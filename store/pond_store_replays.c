/*  pond_store_replays: the replay streamer of pond_store_server, the
    REPLAY / CHUNK / CREDIT / CANCEL / END part of the Store link
    (PROTOCOL.md).

    Each replay reads through its own pond_cursor (a snapshot), so it
    sees the log as it was when the REPLAY came. A replay sends one CHUNK
    per unit of credit the reader granted, and the server's loop gives
    every replay at most one message per turn (pond_store_replays_serve),
    so a long replay never holds appends back. A replay whose reader
    grants no credit for the timeout is dropped with END 503. A packed
    CHUNK (up to POND_CHUNK_PACKED_EVENTS) is read straight into a
    recycled buffer that ZeroMQ sends as its last frame: no copy, no fresh
    pages. Nothing is sent blocking: a CHUNK the reader cannot take now
    is kept and retried next turn.
*/
#include "pond_store_replays.h"
#include "pond_cursor.h"
#include "pond_proto.h"

#include <pthread.h>

#define REPLAYS_MAX        256    //  concurrent replays
#define CHUNKS_PER_TURN    32     //  CHUNKs sent per loop turn at most
#define CHUNK_BUFFERS_KEPT 8      //  packed chunk buffers kept for reuse

//  Buffers of packed CHUNKs, recycled. Each goes out as the CHUNK's last
//  frame without a copy, and ZeroMQ hands it back (s_pool_put, from its
//  I/O thread) once sent; reusing a few warm buffers instead of a malloc
//  per chunk spares the pages faulted in afresh whenever malloc gave the
//  last one back to the system (profiled: a third of the store's CPU in a
//  replay). The server and every buffer out hold a reference: the pool
//  goes with the last of them.
typedef struct {
    pthread_mutex_t mutex;
    uint8_t *kept [CHUNK_BUFFERS_KEPT];
    size_t nkept;
    size_t refs;
} s_pool_t;

static s_pool_t *
s_pool_new (void)
{
    s_pool_t *self = (s_pool_t *) zmalloc (sizeof (s_pool_t));
    if (self && pthread_mutex_init (&self->mutex, NULL)) {
        free (self);
        self = NULL;
    }
    if (self)
        self->refs = 1;
    return self;
}

//  Drop one reference; the last one frees the pool.
static void
s_pool_unref (s_pool_t *self)
{
    pthread_mutex_lock (&self->mutex);
    bool last = --self->refs == 0;
    pthread_mutex_unlock (&self->mutex);
    if (last) {
        for (size_t i = 0; i < self->nkept; i++)
            free (self->kept [i]);
        pthread_mutex_destroy (&self->mutex);
        free (self);
    }
}

//  A buffer of POND_CHUNK_PACKED_BYTES, or NULL if memory runs out.
static uint8_t *
s_pool_get (s_pool_t *self)
{
    pthread_mutex_lock (&self->mutex);
    uint8_t *buffer = self->nkept ? self->kept [--self->nkept] : NULL;
    self->refs++;
    pthread_mutex_unlock (&self->mutex);
    if (!buffer)
        buffer = (uint8_t *) malloc (POND_CHUNK_PACKED_BYTES);
    if (!buffer)
        s_pool_unref (self);
    return buffer;
}

//  Give a buffer back (a zmq_free_fn: hint is the pool).
static void
s_pool_put (void *data, void *hint)
{
    s_pool_t *self = (s_pool_t *) hint;
    pthread_mutex_lock (&self->mutex);
    if (self->nkept < CHUNK_BUFFERS_KEPT) {
        self->kept [self->nkept++] = (uint8_t *) data;
        data = NULL;
    }
    pthread_mutex_unlock (&self->mutex);
    free (data);
    s_pool_unref (self);
}

//  A replay stream to one reader
typedef struct {
    zframe_t *routing_id;
    uint64_t rid;
    pond_cursor_t *cursor;
    uint32_t credit;      //  chunks the reader can take now
    int64_t credit_at;    //  when it last granted credit
    uint64_t sent;        //  events delivered in CHUNKs
    int64_t started_at;
    int64_t starved_at;       //  since when it waits for credit (µs), or 0
    int64_t starved_us;       //  time spent waiting for credit
    zmsg_t *pending;          //  built but not yet taken by the socket
    uint8_t *pending_data;    //  its packed events (last frame), or NULL
    s_pool_t *pool;           //  where pending_data comes from
    size_t pending_size;
    size_t pending_events;
    bool ended;    //  pending is the END
} s_replay_t;

struct _pond_store_replays_t {
    pond_store_t *store;        //  not owned
    pond_store_link_t *link;    //  not owned
    int timeout;                //  msecs without credit before a drop
    zlistx_t *replays;
    s_pool_t *pool;    //  packed chunk buffers
    uint64_t started;
};

static void
s_replay_destroy (s_replay_t **self_p)
{
    if (self_p && *self_p) {
        s_replay_t *self = *self_p;
        zframe_destroy (&self->routing_id);
        pond_cursor_destroy (&self->cursor);
        zmsg_destroy (&self->pending);
        if (self->pending_data)
            s_pool_put (self->pending_data, self->pool);
        free (self);
        *self_p = NULL;
    }
}

pond_store_replays_t *
pond_store_replays_new (pond_store_t *store, pond_store_link_t *link)
{
    assert (store);
    assert (link);
    pond_store_replays_t *self = (pond_store_replays_t *) zmalloc (sizeof (pond_store_replays_t));
    if (!self)
        return NULL;
    self->store = store;
    self->link = link;
    self->timeout = POND_REPLAY_TIMEOUT;
    self->replays = zlistx_new ();
    self->pool = s_pool_new ();
    if (!self->replays || !self->pool) {
        pond_store_replays_destroy (&self);
        return NULL;
    }
    zlistx_set_destructor (self->replays, (zlistx_destructor_fn *) s_replay_destroy);
    return self;
}

void
pond_store_replays_destroy (pond_store_replays_t **self_p)
{
    if (self_p && *self_p) {
        pond_store_replays_t *self = *self_p;
        zlistx_destroy (&self->replays);
        if (self->pool)
            s_pool_unref (self->pool);    //  buffers still out keep it
        free (self);
        *self_p = NULL;
    }
}

void
pond_store_replays_set_timeout (pond_store_replays_t *self, int msecs)
{
    self->timeout = msecs;
}

uint64_t
pond_store_replays_started (pond_store_replays_t *self)
{
    return self->started;
}

size_t
pond_store_replays_active (pond_store_replays_t *self)
{
    return zlistx_size (self->replays);
}

//  ---------------------------------------------------------------------
//  REPLAY: "REPLAY", body; then CHUNK* END, paced by CREDIT; CANCEL

static s_replay_t *
s_replay_find (pond_store_replays_t *self, zframe_t *routing_id, uint64_t rid, void **handle_p)
{
    for (s_replay_t *replay = (s_replay_t *) zlistx_first (self->replays); replay;
         replay = (s_replay_t *) zlistx_next (self->replays))
        if (replay->rid == rid && zframe_eq (replay->routing_id, routing_id)) {
            if (handle_p)
                *handle_p = zlistx_cursor (self->replays);
            return replay;
        }
    return NULL;
}

static zmsg_t *
s_end_message (zframe_t *routing_id, uint64_t rid, uint64_t count, uint64_t head, uint32_t code,
               const char *reason)
{
    pond_end_t end = { .rid = rid, .count = count, .head = head, .code = code };
    snprintf (end.reason, sizeof end.reason, "%s", reason ? reason : "");
    return pond_store_link_message (routing_id, POND_END, pond_end_encode (&end));
}

//  Replace whatever the replay still had to send with its END.
static void
s_replay_end (pond_store_replays_t *self, s_replay_t *replay, uint32_t code, const char *reason)
{
    if (replay->ended)
        return;
    zmsg_destroy (&replay->pending);    //  a CHUNK not taken yet is not sent
    if (replay->pending_data)
        s_pool_put (replay->pending_data, replay->pool);
    replay->pending_data = NULL;
    replay->pending = s_end_message (replay->routing_id, replay->rid, replay->sent,
                                     replay->cursor ? pond_cursor_head (replay->cursor) : 0, code,
                                     reason);
    replay->pending_events = 0;
    replay->ended = true;
    if (pond_store_link_verbose (self->link) || code != POND_CODE_OK)
        zsys_info ("store: replay %" PRIu64 " ends after %" PRIu64 " events (%u%s%s) in %" PRId64
                   " ms, %.1f of them waiting for credit",
                   replay->rid, replay->sent, code, *reason ? ": " : "", reason,
                   zclock_mono () - replay->started_at, replay->starved_us / 1000.0);
}

void
pond_store_replays_handle_replay (pond_store_replays_t *self, zframe_t *routing_id, zmsg_t *msg)
{
    if (zmsg_size (msg) != 1) {
        pond_store_link_refuse (self->link, routing_id, POND_CODE_BAD_REQUEST, "REPLAY/frames",
                                "REPLAY takes exactly one body frame, not %zu", zmsg_size (msg));
        return;
    }
    zframe_t *body = zmsg_first (msg);
    if (zframe_size (body) > POND_BODY_MAX) {
        pond_store_link_refuse (self->link, routing_id, POND_CODE_TOO_LARGE, "REPLAY/size",
                                "REPLAY body is %zu bytes; the limit is %d", zframe_size (body),
                                POND_BODY_MAX);
        return;
    }
    pond_replay_req_t request;
    char reason [POND_ERR_SIZE];
    if (pond_replay_req_decode (body, &request, reason, sizeof reason)) {
        //  If the rid is readable, the reader gets an END it can correlate
        pond_credit_t header;
        char ignored [POND_ERR_SIZE];
        if (pond_credit_decode (body, &header, ignored, sizeof ignored) == 0) {
            pond_store_link_count_malformed (self->link, 1);
            pond_store_link_log_once (self->link, "REPLAY/body", "refused REPLAY %" PRIu64 ": %s",
                                      header.rid, reason);
            zmsg_t *end = s_end_message (routing_id, header.rid, 0, 0, POND_CODE_BAD_REQUEST,
                                         reason);
            if (end)
                pond_store_link_reply (self->link, &end);
        }
        else
            pond_store_link_refuse (self->link, routing_id, POND_CODE_BAD_REQUEST, "REPLAY/body",
                                    "REPLAY body: %s", reason);
        return;
    }
    if (s_replay_find (self, routing_id, request.rid, NULL)) {
        pond_store_link_refuse (self->link, routing_id, POND_CODE_BAD_REQUEST, "REPLAY/rid",
                                "rid %" PRIu64 " is already replaying; use another rid",
                                request.rid);
        return;
    }
    if (zlistx_size (self->replays) >= REPLAYS_MAX) {
        pond_store_link_log_once (self->link, "REPLAY/max", "%d replays at once: refusing more",
                                  REPLAYS_MAX);
        zmsg_t *end = s_end_message (routing_id, request.rid, 0, 0, POND_CODE_UNAVAILABLE,
                                     "too many replays at once; retry later");
        if (end)
            pond_store_link_reply (self->link, &end);
        return;
    }
    s_replay_t *replay = (s_replay_t *) zmalloc (sizeof (s_replay_t));
    if (replay) {
        replay->routing_id = zframe_dup (routing_id);
        replay->rid = request.rid;
        replay->credit = request.credit;
        replay->credit_at = zclock_mono ();
        replay->started_at = replay->credit_at;
        replay->pool = self->pool;
        replay->cursor = pond_cursor_new (self->store, &request);
    }
    if (!replay || !replay->routing_id || !replay->cursor
        || !zlistx_add_end (self->replays, replay)) {
        s_replay_destroy (&replay);
        zsys_error ("store: out of memory starting replay %" PRIu64, request.rid);
        zmsg_t *end = s_end_message (routing_id, request.rid, 0, 0, POND_CODE_STORE_ERROR,
                                     "out of memory");
        if (end)
            pond_store_link_reply (self->link, &end);
        return;
    }
    self->started++;
    if (pond_store_link_verbose (self->link))
        zsys_info ("store: replay %" PRIu64 " starts (%zu names, entity '%s', seq %" PRIu64
                   "..%" PRIu64 ", limit %" PRIu64 ", credit %u)",
                   request.rid, request.names_count, request.entity, request.from_seq,
                   request.to_seq, request.limit, request.credit);
}

//  CREDIT and CANCEL: "CREDIT", body {rid, chunks} / "CANCEL", body {rid}
void
pond_store_replays_handle_credit (pond_store_replays_t *self, zframe_t *routing_id, zmsg_t *msg,
                                  bool cancel)
{
    const char *command = cancel ? POND_CANCEL : POND_CREDIT;
    if (zmsg_size (msg) != 1) {
        pond_store_link_refuse (self->link, routing_id, POND_CODE_BAD_REQUEST,
                                cancel ? "CANCEL/frames" : "CREDIT/frames",
                                "%s takes exactly one body frame, not %zu", command,
                                zmsg_size (msg));
        return;
    }
    pond_credit_t credit;
    char reason [POND_ERR_SIZE];
    zframe_t *body = zmsg_first (msg);
    if (zframe_size (body) > POND_BODY_MAX
        || pond_credit_decode (body, &credit, reason, sizeof reason)) {
        if (zframe_size (body) > POND_BODY_MAX)
            snprintf (reason, sizeof reason, "body is %zu bytes; the limit is %d",
                      zframe_size (body), POND_BODY_MAX);
        pond_store_link_refuse (
            self->link, routing_id,
            zframe_size (body) > POND_BODY_MAX ? POND_CODE_TOO_LARGE : POND_CODE_BAD_REQUEST,
            cancel ? "CANCEL/body" : "CREDIT/body", "%s body: %s", command, reason);
        return;
    }
    s_replay_t *replay = s_replay_find (self, routing_id, credit.rid, NULL);
    if (!replay) {
        //  The replay may have just ended: nothing to answer
        if (pond_store_link_verbose (self->link))
            zsys_debug ("store: %s for unknown rid %" PRIu64, command, credit.rid);
        return;
    }
    if (cancel)
        s_replay_end (self, replay, POND_CODE_CANCELLED, "cancelled by the reader");
    else {
        uint64_t total = (uint64_t) replay->credit + credit.chunks;
        replay->credit = total > POND_CREDIT_MAX ? POND_CREDIT_MAX : (uint32_t) total;
        replay->credit_at = zclock_mono ();
        if (replay->starved_at) {
            replay->starved_us += zclock_usecs () - replay->starved_at;
            replay->starved_at = 0;
        }
    }
}

//  Send what a replay has pending, as pond_store_link_send does (0 sent, 1 the peer
//  cannot take it now and it is kept, -1 the peer is gone), its packed
//  events last, as a frame that ZeroMQ frees once it is out: no copy.
static int
s_replay_send (pond_store_replays_t *self, s_replay_t *replay)
{
    if (!replay->pending_data)
        return pond_store_link_send (self->link, &replay->pending);
    zsock_t *router = pond_store_link_router (self->link);
    size_t index = 0;
    zmsg_t *msg = replay->pending;
    for (zframe_t *frame = zmsg_first (msg); frame; frame = zmsg_next (msg), index++)
        if (zframe_send (&frame, router, ZFRAME_REUSE | ZFRAME_DONTWAIT | ZFRAME_MORE)) {
            if (index == 0 && errno == EAGAIN)
                return 1;    //  nothing went: keep it all
            break;
        }
    int rc = -1;
    if (index == zmsg_size (msg)) {
        zmq_msg_t data;
        if (zmq_msg_init_data (&data, replay->pending_data, replay->pending_size, s_pool_put,
                               replay->pool)
            == 0) {
            replay->pending_data = NULL;    //  the frame owns it now
            if (zmq_msg_send (&data, zsock_resolve (router), ZMQ_DONTWAIT) >= 0)
                rc = 0;
            else
                zmq_msg_close (&data);
        }
    }
    //  Some frames went with MORE and the last did not: end the message
    //  (the reader sees a broken CHUNK and fails its replay), or the next
    //  reply to anyone would be glued onto it
    if (rc != 0 && index > 0)
        zmq_send (zsock_resolve (router), "", 0, ZMQ_DONTWAIT);
    zmsg_destroy (&replay->pending);
    if (replay->pending_data)
        s_pool_put (replay->pending_data, replay->pool);
    replay->pending_data = NULL;
    return rc;
}

//  One step of one replay: send what is pending, else the END, else one
//  CHUNK if the reader has credit, else drop it if credit never came.
//  Returns 1 if it sent a CHUNK, -1 if the replay is over, else 0.
static int
s_replay_step (pond_store_replays_t *self, s_replay_t *replay, int64_t now)
{
    if (replay->ended && !replay->pending)
        return -1;    //  its END could not even be built
    if (!replay->pending) {
        if (pond_cursor_done (replay->cursor)) {
            const char *error = pond_cursor_error (replay->cursor);
            s_replay_end (self, replay, error ? POND_CODE_STORE_ERROR : POND_CODE_OK,
                          error ? error : "");
        }
        else if (replay->credit > 0) {
            pond_credit_t header = { .rid = replay->rid, .chunks = replay->credit - 1 };
            zmsg_t *chunk = pond_store_link_message (replay->routing_id, POND_CHUNK,
                                                     pond_credit_encode (&header));
            //  Packed: the events go out in the pool's buffer they were
            //  read into (s_replay_send), never copied into a frame
            bool packs = pond_cursor_packs (replay->cursor);
            if (chunk && packs)
                replay->pending_data = s_pool_get (replay->pool);
            int count = !chunk || (packs && !replay->pending_data) ? -1
                      : packs
                          ? pond_cursor_fill_buffer (replay->cursor, replay->pending_data,
                                                     POND_CHUNK_PACKED_BYTES, &replay->pending_size,
                                                     POND_CHUNK_PACKED_EVENTS)
                          : pond_cursor_fill (replay->cursor, chunk, POND_CHUNK_EVENTS,
                                              POND_CHUNK_BYTES);
            if (count <= 0 && replay->pending_data) {
                s_pool_put (replay->pending_data, replay->pool);
                replay->pending_data = NULL;
            }
            if (count == 0 && !pond_cursor_done (replay->cursor))
                zmsg_destroy (&chunk);    //  filtered a stretch out: go on next turn
            else if (count <= 0) {
                zmsg_destroy (&chunk);
                const char *error = pond_cursor_error (replay->cursor);
                s_replay_end (self, replay, count ? POND_CODE_STORE_ERROR : POND_CODE_OK,
                              count ? (error ? error : "out of memory") : "");
            }
            else {
                replay->credit--;
                replay->pending = chunk;
                replay->pending_events = (size_t) count;
            }
        }
        else if (!replay->starved_at)
            replay->starved_at = zclock_usecs ();    //  waits for credit from now on
        else if (now - replay->credit_at >= self->timeout) {
            char reason [POND_REASON_MAX];
            snprintf (reason, sizeof reason, "no credit granted for %.1f s; replay dropped",
                      self->timeout / 1000.0);
            s_replay_end (self, replay, POND_CODE_UNAVAILABLE, reason);
        }
    }
    if (!replay->pending)
        return 0;
    bool is_chunk = !replay->ended;
    int rc = s_replay_send (self, replay);
    if (rc > 0)
        return 0;    //  the socket is full: retry next turn
    if (rc < 0) {
        pond_store_link_count_send_failure (self->link);
        pond_store_link_log_once (self->link, "replay/gone",
                                  "a replay reader is gone: replay %" PRIu64 " dropped",
                                  replay->rid);
        return -1;
    }
    if (!is_chunk)
        return -1;    //  END sent: over
    replay->sent += replay->pending_events;
    replay->pending_events = 0;
    return 1;
}

//  Give replays a turn, round robin: at most one message each and
//  CHUNKS_PER_TURN chunks in all, so input is read again soon.
void
pond_store_replays_serve (pond_store_replays_t *self)
{
    int64_t now = zclock_mono ();
    size_t size = zlistx_size (self->replays);
    int chunks = 0;
    for (size_t i = 0; i < size && chunks < CHUNKS_PER_TURN; i++) {
        void *handle = zlistx_first (self->replays) ? zlistx_cursor (self->replays) : NULL;
        if (!handle)
            break;
        s_replay_t *replay = (s_replay_t *) zlistx_handle_item (handle);
        int rc = s_replay_step (self, replay, now);
        if (rc < 0)
            zlistx_delete (self->replays, handle);
        else {
            zlistx_move_end (self->replays, handle);
            chunks += rc;
        }
    }
}

//  How long the loop may sleep: 0 if a replay can send now.
int
pond_store_replays_timeout (pond_store_replays_t *self)
{
    int64_t now = zclock_mono ();
    int64_t timeout = 1000;
    for (s_replay_t *replay = (s_replay_t *) zlistx_first (self->replays); replay;
         replay = (s_replay_t *) zlistx_next (self->replays)) {
        if (replay->pending)
            timeout = timeout < 10 ? timeout : 10;    //  socket full: poll gently
        else if (replay->credit > 0 || pond_cursor_done (replay->cursor))
            return 0;
        else {
            int64_t left = replay->credit_at + self->timeout - now;
            if (left < timeout)
                timeout = left < 0 ? 0 : left;
        }
    }
    return (int) timeout;
}
