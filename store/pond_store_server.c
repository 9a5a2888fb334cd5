/*  pond_store_server: the Store link of PROTOCOL.md on one ROUTER socket.

        store-link = *( B:APPEND S:APPENDED
                      / B:REPLAY replay-stream / B:CREDIT / B:CANCEL
                      / B:STATS S:STATS
                      / B:PING S:PONG )

    Each turn of the loop reads every message already queued (up to a
    cap) without blocking. APPENDs are decoded, validated and prepared
    (pond_store_prepare: dedup, seqs, encoding, WriteBatch) as they come,
    and pile up into one group. Groups are committed by a writer thread
    (an actor), one at a time, each in one synced WriteBatch
    (pond_store_commit: WAL sync, memtables): while it commits one group,
    the loop keeps reading and prepares the next (dedup sees the group
    in flight), which goes to the writer as soon as it is done (group
    commit, pipelined). If a commit fails, the group prepared behind it
    is undone and prepared again, so seqs stay gap-free. When a group
    is written, each of its APPENDs gets its own APPENDED, in the order
    they came, so APPENDED order is seq order. The group being filled is
    handed over when the writer is idle, or as soon as it is full (the
    loop then waits for the writer). A lone APPEND with the writer idle
    (one producer waiting for each ACK) is committed by the loop itself:
    nothing could overlap with its sync, and a hand-over would cost two
    thread wake-ups on the critical path. Before a STATS or REPLAY the loop
    waits until every APPEND read so far is written (so these see every
    APPEND sent before them, and nothing is prepared and not committed).
    The two threads share no store state: prepare keeps its own next seq
    and pending ids, commit owns head, counts and stats. After the
    input, every replay that has credit sends at most one CHUNK, so a
    long replay never holds appends back. A packed CHUNK (up to
    POND_CHUNK_PACKED_EVENTS) is read straight into a recycled buffer
    that ZeroMQ sends as its last frame: no copy, no fresh pages.

    Nothing is sent blocking: a reply the peer cannot take now is dropped
    and counted (an APPENDED: the broker resends, and gets the same seq
    back as a dup), a CHUNK is kept and retried next turn.

    Signals: only the main thread takes them (the writer and the server
    actor block them); every wait on the writer retries EINTR and checks
    that the answer names the group it waits for, so a signal can never
    make an unwritten group look written.
*/
#include "pond_store_server.h"
#include "pond_cursor.h"
#include "pond_proto.h"
#include "pond_keys.h"
#include "pond_thread.h"

#include <msgpack.h>
#include <pthread.h>

#define GROUP_EVENTS        8192    //  commit once a group holds this many events
#define GROUP_APPENDS       256     //  ... or this many APPENDs
#define DRAIN_MAX           512     //  messages read per loop turn at most
#define REPLAYS_MAX         256     //  concurrent replays
#define CHUNKS_PER_TURN     32      //  CHUNKs sent per loop turn at most
#define CHUNK_BUFFERS_KEPT  8       //  packed chunk buffers kept for reuse
#define SOCKET_SNDHWM       10000
#define SOCKET_RCVHWM       1000
#define SOCKET_MAXMSGSIZE   (4 * 1024 * 1024)   //  larger frames: peer disconnected
#define LINGER_AT_EXIT      1000    //  msecs to send the last answers whole
#define STATS_NAMES_MAX     1000    //  names listed in STATS (those with most events)

//  An APPEND waiting for its group to be written
typedef struct {
    zframe_t *routing_id;
    uint64_t bid;
    size_t first;                   //  its events in the group arrays
    size_t count;
    uint32_t code;                  //  0 = read, else the answer the whole APPEND gets
    char reason [POND_REASON_MAX];
} s_append_t;

#define GROUP_CAPACITY  (GROUP_EVENTS + POND_APPEND_MAX)

//  A group of APPENDs written in one WriteBatch. Two of them: the loop
//  fills one while the writer writes the other.
typedef struct {
    s_append_t appends [GROUP_APPENDS];
    size_t nappends;
    pond_event_t **events;          //  GROUP_CAPACITY of each
    uint64_t *seqs;
    bool *dups;
    uint8_t **stored;
    size_t *sizes;
    uint32_t *codes;                //  0, or why the event was refused (its slot
    char **reasons;                 //  holds no event; the reason is malloc'd)
    size_t nevents;
    pond_store_group_t *prepared;   //  its events, prepared as they come
    int rc;                         //  pond_store_commit's answer
} s_group_t;

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
    uint8_t *buffer = self->nkept? self->kept [--self->nkept]: NULL;
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
    uint32_t credit;                //  chunks the reader can take now
    int64_t credit_at;              //  when it last granted credit
    uint64_t sent;                  //  events delivered in CHUNKs
    int64_t started_at;
    int64_t starved_at;             //  since when it waits for credit (µs), or 0
    int64_t starved_us;             //  time spent waiting for credit
    zmsg_t *pending;                //  built but not yet taken by the socket
    uint8_t *pending_data;          //  its packed events (last frame), or NULL
    s_pool_t *pool;                 //  where pending_data comes from
    size_t pending_size;
    size_t pending_events;
    bool ended;                     //  pending is the END
} s_replay_t;

struct _pond_store_server_t {
    pond_store_t *store;
    zsock_t *router;
    char *endpoint;
    bool verbose;
    int replay_timeout;
    int64_t started;
    //  Group commit: the group being filled, and the one being written
    s_group_t groups [2];
    s_group_t *filling;
    s_group_t *writing;             //  NULL: the writer is idle
    zactor_t *writer;               //  writes one group per request
    bool writer_lost;               //  it answered something else: stop, answer nothing
    pond_appended_t *appended;      //  reply scratch (large: not on the stack)
    //  Replays
    zlistx_t *replays;
    s_pool_t *pool;                 //  packed chunk buffers
    uint64_t replays_started;
    //  Counters and log-once
    uint64_t malformed;
    uint64_t conflicts;             //  events refused 409: id used for another event
    uint64_t send_failures;
    zhashx_t *logged;
};

//  ---------------------------------------------------------------------
//  Helpers

//  Log a warning the first time this cause happens (every time if
//  verbose). Causes are fixed strings, so the set stays small.
static void
s_log_once (pond_store_server_t *self, const char *cause, const char *format, ...)
{
    bool first = zhashx_lookup (self->logged, cause) == NULL;
    if (first)
        zhashx_insert (self->logged, cause, (void *) 1);
    if (!first && !self->verbose)
        return;
    va_list args;
    va_start (args, format);
    char *text = zsys_vprintf (format, args);
    va_end (args);
    zsys_warning ("store: %s%s", text? text: cause,
                  first && !self->verbose? " (logged once)": "");
    free (text);
}

//  Printable copy of a command frame, for logs and error reasons.
static void
s_printable (zframe_t *frame, char *text, size_t size)
{
    size_t len = frame? zframe_size (frame): 0;
    const uint8_t *data = frame? zframe_data (frame): NULL;
    size_t out = 0;
    for (size_t i = 0; i < len && out + 5 < size; i++) {
        if (data [i] >= 0x20 && data [i] < 0x7f)
            text [out++] = (char) data [i];
        else
            out += snprintf (text + out, size - out, "\\x%02x", data [i]);
        if (i == 31 && len > 32) {
            snprintf (text + out, size - out, "...");
            out += 3;
            break;
        }
    }
    text [out] = 0;
}

//  Send without blocking. Returns 0 if sent, 1 if the peer cannot take it
//  now (the message is kept), -1 if the peer is gone (message destroyed).
static int
s_send (pond_store_server_t *self, zmsg_t **msg_p)
{
    zmsg_t *msg = *msg_p;
    size_t total = zmsg_size (msg);
    size_t index = 0;
    for (zframe_t *frame = zmsg_first (msg); frame; frame = zmsg_next (msg)) {
        index++;
        int flags = ZFRAME_REUSE | ZFRAME_DONTWAIT | (index < total? ZFRAME_MORE: 0);
        if (zframe_send (&frame, self->router, flags)) {
            //  ROUTER_MANDATORY: a full pipe refuses the first frame with
            //  EAGAIN and nothing is sent; an unknown peer, EHOSTUNREACH
            if (index == 1 && errno == EAGAIN)
                return 1;
            zmsg_destroy (msg_p);
            return -1;
        }
    }
    zmsg_destroy (msg_p);
    return 0;
}

//  Send a reply (not a CHUNK); a reply that cannot go is dropped.
static void
s_reply (pond_store_server_t *self, zmsg_t **msg_p)
{
    int rc = s_send (self, msg_p);
    if (rc) {
        self->send_failures++;
        s_log_once (self, "send", "cannot answer a peer (%s): reply dropped",
                    rc > 0? "its queue is full": "it is gone");
        zmsg_destroy (msg_p);
    }
}

static zmsg_t *
s_message (zframe_t *routing_id, const char *command, zframe_t *body)
{
    zmsg_t *msg = zmsg_new ();
    zframe_t *copy = zframe_dup (routing_id);
    if (!msg || !copy || zmsg_append (msg, &copy) || zmsg_addstr (msg, command)
    ||  (body && zmsg_append (msg, &body))) {
        zframe_destroy (&copy);
        zframe_destroy (&body);
        zmsg_destroy (&msg);
    }
    return msg;
}

//  Answer ERROR {code, reason} and count a refused request.
static void
s_refuse (pond_store_server_t *self, zframe_t *routing_id, uint32_t code, const char *cause,
          const char *format, ...)
{
    char reason [POND_REASON_MAX];
    va_list args;
    va_start (args, format);
    vsnprintf (reason, sizeof reason, format, args);
    va_end (args);
    self->malformed++;
    s_log_once (self, cause, "refused a request (%u): %s", code, reason);
    zmsg_t *msg = s_message (routing_id, POND_ERROR,
                             pond_nack_new (NULL, code, 0, "%s", reason));
    if (msg)
        s_reply (self, &msg);
}

//  ---------------------------------------------------------------------
//  Constructor and destructor

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

static void s_writer_actor (zsock_t *pipe, void *args);
static int s_writer_answer (pond_store_server_t *self);

pond_store_server_t *
pond_store_server_new (pond_store_t *store, const char *endpoint)
{
    assert (store);
    assert (endpoint);
    pond_store_server_t *self = (pond_store_server_t *) zmalloc (sizeof (pond_store_server_t));
    if (!self)
        return NULL;
    self->store = store;
    self->replay_timeout = POND_REPLAY_TIMEOUT;
    self->started = zclock_mono ();
    bool groups_ok = true;
    for (int i = 0; i < 2; i++) {
        s_group_t *group = &self->groups [i];
        group->events = (pond_event_t **) calloc (GROUP_CAPACITY, sizeof (pond_event_t *));
        group->seqs = (uint64_t *) calloc (GROUP_CAPACITY, sizeof (uint64_t));
        group->dups = (bool *) calloc (GROUP_CAPACITY, sizeof (bool));
        group->stored = (uint8_t **) calloc (GROUP_CAPACITY, sizeof (uint8_t *));
        group->sizes = (size_t *) calloc (GROUP_CAPACITY, sizeof (size_t));
        group->codes = (uint32_t *) calloc (GROUP_CAPACITY, sizeof (uint32_t));
        group->reasons = (char **) calloc (GROUP_CAPACITY, sizeof (char *));
        group->prepared = pond_store_group_new ();
        groups_ok = groups_ok && group->events && group->seqs && group->dups
                 && group->stored && group->sizes && group->codes && group->reasons
                 && group->prepared;
    }
    self->filling = &self->groups [0];
    self->appended = (pond_appended_t *) zmalloc (sizeof (pond_appended_t));
    self->replays = zlistx_new ();
    self->pool = s_pool_new ();
    self->logged = zhashx_new ();
    self->router = zsock_new (ZMQ_ROUTER);
    self->writer = groups_ok? zactor_new (s_writer_actor, store): NULL;
    if (!groups_ok || !self->writer
    ||  !self->appended || !self->replays || !self->pool || !self->logged || !self->router) {
        zsys_error ("store: out of memory");
        pond_store_server_destroy (&self);
        return NULL;
    }
    zlistx_set_destructor (self->replays, (zlistx_destructor_fn *) s_replay_destroy);
    zsock_set_router_mandatory (self->router, 1);
    zsock_set_sndhwm (self->router, SOCKET_SNDHWM);
    zsock_set_rcvhwm (self->router, SOCKET_RCVHWM);
    zsock_set_maxmsgsize (self->router, SOCKET_MAXMSGSIZE);
    zsock_set_rcvtimeo (self->router, 0);
    zsock_set_linger (self->router, 0);
    //  CURVE server with the store's key when the process uses keys
    if (pond_keys_server (self->router)) {
        pond_store_server_destroy (&self);
        return NULL;
    }
    if (zsock_bind (self->router, "%s", endpoint) == -1) {
        zsys_error ("store: cannot bind %s: %s", endpoint, zmq_strerror (zmq_errno ()));
        pond_store_server_destroy (&self);
        return NULL;
    }
    self->endpoint = zsock_last_endpoint (self->router);
    if (!self->endpoint)
        self->endpoint = strdup (endpoint);
    return self;
}

//  Empty a group whose commit was answered (or that is given up): the
//  store forgets its ids, and undoes it if it was not committed.
static void
s_group_reset (pond_store_server_t *self, s_group_t *group)
{
    if (group->prepared)
        pond_store_finish (self->store, group->prepared);
    for (size_t i = 0; i < group->nevents; i++) {
        pond_event_destroy (&group->events [i]);
        free (group->stored [i]);
        group->stored [i] = NULL;
        free (group->reasons [i]);
        group->reasons [i] = NULL;
        group->codes [i] = 0;
    }
    for (size_t i = 0; i < group->nappends; i++)
        zframe_destroy (&group->appends [i].routing_id);
    group->nevents = 0;
    group->nappends = 0;
}

void
pond_store_server_destroy (pond_store_server_t **self_p)
{
    if (self_p && *self_p) {
        pond_store_server_t *self = *self_p;
        //  A group being written is finished first (its APPENDs are not
        //  answered: the broker resends them and gets dups)
        if (self->writing && !self->writer_lost)
            s_writer_answer (self);
        self->writing = NULL;
        zactor_destroy (&self->writer);
        for (int i = 0; i < 2; i++) {
            s_group_t *group = &self->groups [i];
            if (group->events)
                s_group_reset (self, group);
            pond_store_group_destroy (&group->prepared);
            free (group->events);
            free (group->seqs);
            free (group->dups);
            free (group->stored);
            free (group->sizes);
            free (group->codes);
            free (group->reasons);
        }
        zlistx_destroy (&self->replays);        //  before the store goes
        //  The answers queued last go out whole, or not at all: a reply
        //  cut off mid-message when the socket closes would reach the
        //  broker as the head of a message whose tail never comes
        if (self->router)
            zsock_set_linger (self->router, LINGER_AT_EXIT);
        zsock_destroy (&self->router);
        if (self->pool)
            s_pool_unref (self->pool);          //  buffers still out keep it
        zhashx_destroy (&self->logged);
        free (self->appended);
        free (self->endpoint);
        free (self);
        *self_p = NULL;
    }
}

const char *
pond_store_server_endpoint (pond_store_server_t *self)
{
    return self->endpoint;
}

void
pond_store_server_set_verbose (pond_store_server_t *self, bool verbose)
{
    self->verbose = verbose;
}

void
pond_store_server_set_replay_timeout (pond_store_server_t *self, int msecs)
{
    self->replay_timeout = msecs;
}

//  ---------------------------------------------------------------------
//  APPEND: "APPEND", body {bid}, event, event, ...
//  Decoded and validated now, written with its group by the writer.

//  The writer: an actor that commits one prepared group per request (the
//  address of the group on its pipe): one synced WriteBatch with
//  pond_store_commit, then group->rc is set and it answers with the same
//  address, which the loop checks (s_writer_answer). Meanwhile the loop
//  prepares the next group. It takes no signals (the main thread does),
//  retries a call a signal interrupted anyway, and ends on $TERM only
//  (or when the context goes).
static void
s_writer_actor (zsock_t *pipe, void *args)
{
    pond_thread_block_signals (NULL);
    pond_store_t *store = (pond_store_t *) args;
    void *handle = zsock_resolve (pipe);
    zsock_signal (pipe, 0);
    while (true) {
        char request [16];
        int size = zmq_recv (handle, request, sizeof request, 0);
        if (size == -1 && zmq_errno () == EINTR)
            continue;
        if (size == (int) sizeof (s_group_t *)) {
            s_group_t *group;
            memcpy (&group, request, sizeof group);
            group->rc = pond_store_commit (store, group->prepared);
            int rc;
            while ((rc = zmq_send (handle, &group, sizeof group, 0)) == -1
            &&     zmq_errno () == EINTR)
                ;
            if (rc == -1)
                break;
        }
        else
        if (size == -1 || (size == 5 && memcmp (request, "$TERM", 5) == 0))
            break;
        else
            zsys_error ("store: writer: unknown request of %d bytes", size);
    }
}

//  ZeroMQ frees a stored event with this once it has sent it.
static void
s_free_stored (void *data, void *hint)
{
    (void) hint;
    free (data);
}

//  Send [routing id, "APPENDED", body, stored event ...] without copying
//  the events (their buffers move to ZeroMQ). Returns 0, or -1 (errno
//  set) if the peer cannot take it now or is gone: nothing was sent then.
static int
s_send_appended (pond_store_server_t *self, s_group_t *group, s_append_t *append,
                 zframe_t *body)
{
    void *handle = zsock_resolve (self->router);
    size_t last = append->first + append->count;
    bool with_events = self->appended->code == POND_CODE_OK;
    //  Frames after the body: the events stored now (not duplicates, not
    //  refused)
    size_t more = 0;
    for (size_t k = append->first; with_events && k < last; k++)
        more += group->stored [k] != NULL;
    //  ROUTER_MANDATORY: a full or unknown peer refuses the first frame
    if (zmq_send (handle, zframe_data (append->routing_id), zframe_size (append->routing_id),
                  ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1)
        return -1;
    zmq_send (handle, POND_APPENDED, strlen (POND_APPENDED), ZMQ_SNDMORE);
    zmq_send (handle, zframe_data (body), zframe_size (body), more? ZMQ_SNDMORE: 0);
    for (size_t k = append->first; more && k < last; k++) {
        if (!group->stored [k])
            continue;
        zmq_msg_t frame;
        if (zmq_msg_init_data (&frame, group->stored [k], group->sizes [k], s_free_stored,
                               NULL) == 0) {
            group->stored [k] = NULL;           //  ZeroMQ frees it once sent
            zmq_msg_send (&frame, handle, --more? ZMQ_SNDMORE: 0);
        }
        else {
            //  Out of memory: end the message rather than leave it open
            zmq_send (handle, group->stored [k], group->sizes [k], --more? ZMQ_SNDMORE: 0);
        }
    }
    return 0;
}

//  Answer each APPEND of a written group, in order.
static void
s_answer_group (pond_store_server_t *self, s_group_t *group)
{
    for (size_t i = 0; i < group->nappends; i++) {
        s_append_t *append = &group->appends [i];
        pond_appended_t *reply = self->appended;
        reply->bid = append->bid;
        reply->count = 0;
        reply->reason [0] = 0;
        if (append->code) {
            reply->code = append->code;
            snprintf (reply->reason, sizeof reply->reason, "%s", append->reason);
        }
        else
        if (group->rc) {
            reply->code = POND_CODE_STORE_ERROR;
            snprintf (reply->reason, sizeof reply->reason,
                      "the store could not write; nothing was stored, retry later");
        }
        else {
            //  Each event its own result: one bad event fails no other
            reply->code = POND_CODE_OK;
            reply->count = append->count;
            memcpy (reply->seqs, group->seqs + append->first, append->count * sizeof (uint64_t));
            memcpy (reply->dups, group->dups + append->first, append->count * sizeof (bool));
            for (size_t j = 0; j < append->count; j++) {
                size_t k = append->first + j;
                const char *reason = "";
                reply->codes [j] = POND_CODE_OK;
                if (group->codes [k]) {
                    reply->codes [j] = group->codes [k];
                    reason = group->reasons [k]? group->reasons [k]: "refused";
                }
                else
                if (group->dups [k] && group->seqs [k] == 0) {
                    reply->codes [j] = POND_CODE_CONFLICT;
                    reply->dups [j] = false;
                    reason = "id already used for a different event; give this event a new id";
                    self->conflicts++;
                }
                snprintf (reply->reasons [j], POND_APPENDED_REASON_MAX, "%s", reason);
            }
        }
        zframe_t *body = pond_appended_encode (reply);
        if (!body)
            zsys_error ("store: out of memory answering APPEND %" PRIu64, append->bid);
        else
        if (s_send_appended (self, group, append, body)) {
            self->send_failures++;
            s_log_once (self, "send", "cannot answer a peer (%s): reply dropped",
                        errno == EAGAIN? "its queue is full": "it is gone");
        }
        zframe_destroy (&body);
    }
    s_group_reset (self, group);
}

//  Prepare the events of one APPEND into its group (pond_store_prepare:
//  dedup, seqs, encoding, batch). Returns 0, or -1 with the APPEND
//  answered 500 in its turn (read error): nothing of it is stored.
static int
s_append_prepare (pond_store_server_t *self, s_group_t *group, s_append_t *append)
{
    size_t first = append->first;
    if (pond_store_prepare (self->store, group->prepared, group->events + first,
                            append->count, group->seqs + first, group->dups + first,
                            group->stored + first, group->sizes + first) == 0)
        return 0;
    append->code = POND_CODE_STORE_ERROR;
    snprintf (append->reason, sizeof append->reason,
              "the store could not read; nothing was stored, retry later");
    return -1;
}

//  A group's commit returned: answer it. If it failed, the group being
//  filled (prepared behind it) holds seqs that will never be: undo it
//  and prepare it again, so seqs stay gap-free.
static void
s_group_done (pond_store_server_t *self, s_group_t *group)
{
    pond_store_finish (self->store, group->prepared);
    s_group_t *behind = self->filling;
    if (group->rc && behind != group && behind->nevents > 0) {
        pond_store_finish (self->store, behind->prepared);
        for (size_t k = 0; k < behind->nevents; k++) {
            free (behind->stored [k]);
            behind->stored [k] = NULL;
        }
        for (size_t i = 0; i < behind->nappends; i++) {
            s_append_t *append = &behind->appends [i];
            if (append->code == 0 && append->count > 0)
                s_append_prepare (self, behind, append);
        }
    }
    s_answer_group (self, group);
}

//  Hand the group being filled to the writer, if it holds anything and
//  the writer is idle.
static void
s_writer_start (pond_store_server_t *self)
{
    if (self->writing || self->filling->nappends == 0 || self->writer_lost)
        return;
    self->writing = self->filling;
    self->filling = self->writing == &self->groups [0]? &self->groups [1]: &self->groups [0];
    s_group_t *group = self->writing;
    int rc;
    while ((rc = zmq_send (zsock_resolve (self->writer), &group, sizeof group, 0)) == -1
    &&     zmq_errno () == EINTR)
        ;
    if (rc == -1) {
        //  Only when the context is going away: write it here instead
        group->rc = pond_store_commit (self->store, group->prepared);
        self->writing = NULL;
        s_group_done (self, group);
    }
}

//  Read the writer's answer for the group being written, waiting for it
//  (a signal does not end the wait: the commit is short). Returns 1 if
//  the writer answered with that group's address (group->rc holds the
//  commit's result), 0 if nothing came (only with ZMQ_DONTWAIT), -1 if
//  anything else came or the pipe failed: the writer is gone (its exit
//  signal looks like an answer of the same size), and whether the group
//  was written is unknown. Then writer_lost is set: nothing is answered
//  and nothing more is committed, the server stops, and the broker
//  resends to the next store, which knows from the log what was written.
static int
s_writer_reply (pond_store_server_t *self, int flags)
{
    char reply [16];
    int size;
    while ((size = zmq_recv (zsock_resolve (self->writer), reply, sizeof reply, flags)) == -1
    &&     zmq_errno () == EINTR)
        ;
    if (size == -1 && zmq_errno () == EAGAIN && (flags & ZMQ_DONTWAIT))
        return 0;
    if (size == (int) sizeof self->writing
    &&  memcmp (reply, &self->writing, sizeof self->writing) == 0)
        return 1;
    if (!self->writer_lost)
        zsys_error ("store: the writer thread %s (%d bytes on its pipe): stopping without "
                    "answering the APPENDs in flight; the broker resends them to the next "
                    "store, which knows from its log what was written",
                    size == -1? "cannot be reached": "answered something else", size);
    self->writer_lost = true;
    return -1;
}

//  Wait for the writer's answer and drop it (the server goes away).
static int
s_writer_answer (pond_store_server_t *self)
{
    return s_writer_reply (self, 0) == 1? 0: -1;
}

//  If the writer is done (wait for it if block), answer its group and
//  give it the next. Returns true if a group was finished.
static bool
s_writer_collect (pond_store_server_t *self, bool block)
{
    if (!self->writing || self->writer_lost)
        return false;
    if (s_writer_reply (self, block? 0: ZMQ_DONTWAIT) != 1)
        return false;
    s_group_t *group = self->writing;
    self->writing = NULL;
    s_group_done (self, group);
    s_writer_start (self);
    return true;
}

//  Wait until the writer is idle (answering what it wrote).
static void
s_writer_wait (pond_store_server_t *self)
{
    while (self->writing && s_writer_collect (self, true))
        ;
}

//  Write every APPEND read so far and answer them all: what comes next
//  (STATS, REPLAY) sees them, and the store is ours alone until the next
//  s_writer_start.
static void
s_commit (pond_store_server_t *self)
{
    s_writer_wait (self);
    s_writer_start (self);
    s_writer_wait (self);
}

//  The group being filled is full: hand it over, waiting for the writer
//  if it is still busy with the previous one. Returns 0 once the group
//  being filled is empty, or -1 if the writer is lost (nothing can be
//  added then: the server stops).
static int
s_group_full (pond_store_server_t *self)
{
    //  Collecting the group being written hands this one over at once
    //  (s_writer_collect starts the next): wait for one sync, not two
    while (self->filling->nappends && !self->writer_lost) {
        if (self->writing)
            s_writer_collect (self, true);
        else
            s_writer_start (self);
    }
    return self->writer_lost? -1: 0;
}

//  Can the store take this decoded event (size bytes as received)? Its
//  stored form adds a seq (at most 13 bytes) to an encoding no larger than
//  the one received (pond_event_encode writes the shortest forms), so only
//  events near the limit need the full check, which encodes the event.
static int
s_check (pond_event_t *event, size_t size, char *reason, size_t reason_size)
{
    if (size + 64 > POND_EVENT_MAX_SIZE || pond_event_seq (event))
        return pond_store_check (event, reason, reason_size);
    return 0;
}

static void
s_handle_append (pond_store_server_t *self, zframe_t *routing_id, zmsg_t *msg)
{
    zframe_t *body = zmsg_pop (msg);
    pond_append_t header;
    char reason [POND_ERR_SIZE];
    if (!body) {
        s_refuse (self, routing_id, POND_CODE_BAD_REQUEST, "APPEND/body",
                  "APPEND needs a body {bid} and 1..%d events", POND_APPEND_MAX);
        return;
    }
    if (zframe_size (body) > POND_BODY_MAX) {
        s_refuse (self, routing_id, POND_CODE_TOO_LARGE, "APPEND/size",
                  "APPEND body is %zu bytes; the limit is %d", zframe_size (body), POND_BODY_MAX);
        zframe_destroy (&body);
        return;
    }
    int rc = pond_append_decode (body, &header, reason, sizeof reason);
    zframe_destroy (&body);
    if (rc) {
        s_refuse (self, routing_id, POND_CODE_BAD_REQUEST, "APPEND/body",
                  "APPEND body: %s", reason);
        return;
    }
    size_t count = zmsg_size (msg);
    if ((self->filling->nevents + count > GROUP_CAPACITY
    ||   self->filling->nappends == GROUP_APPENDS)
    &&  s_group_full (self))
        return;                     //  not answered: the server stops
    s_group_t *group = self->filling;
    s_append_t *append = &group->appends [group->nappends];
    memset (append, 0, sizeof (*append));
    append->bid = header.bid;
    append->first = group->nevents;
    if (count == 0 || count > POND_APPEND_MAX) {
        append->code = count? POND_CODE_TOO_LARGE: POND_CODE_BAD_REQUEST;
        snprintf (append->reason, sizeof append->reason,
                  "APPEND carries %zu events; it must carry 1..%d", count, POND_APPEND_MAX);
    }
    //  Each event is judged alone: a refused one keeps its slot (no event,
    //  its code and reason) and the others are stored
    size_t index = 0;
    size_t refused = 0;
    for (zframe_t *frame = zmsg_first (msg); frame && !append->code;
         frame = zmsg_next (msg), index++) {
        const uint8_t *data = zframe_data (frame);
        size_t size = zframe_size (frame);
        size_t k = group->nevents + append->count++;
        pond_event_t *event = NULL;
        uint32_t code = 0;
        if (size > POND_EVENT_MAX_SIZE) {
            code = POND_CODE_TOO_LARGE;
            snprintf (reason, sizeof reason, "event is %zu bytes; the limit is %d",
                      size, POND_EVENT_MAX_SIZE);
        }
        else
        if (!(event = pond_event_decode (data, size, reason, sizeof reason))
        ||  s_check (event, size, reason, sizeof reason)) {
            //  Too large once the seq is added is 413, as on ingest
            code = event && !pond_event_seq (event)? POND_CODE_TOO_LARGE
                                                    : POND_CODE_BAD_REQUEST;
            pond_event_destroy (&event);
        }
        group->events [k] = event;
        if (code) {
            group->codes [k] = code;
            group->reasons [k] = strdup (reason);
            refused++;
            s_log_once (self, "APPEND/event", "refused event %zu of APPEND %" PRIu64 " (%u): %s",
                        index, append->bid, code, reason);
        }
    }
    self->malformed += refused;
    //  Prepared now, while the writer may be syncing the group before
    if (append->code || s_append_prepare (self, group, append)) {
        //  Nothing of an unreadable APPEND goes into the group
        for (size_t i = 0; i < append->count; i++) {
            size_t k = append->first + i;
            pond_event_destroy (&group->events [k]);
            free (group->reasons [k]);
            group->reasons [k] = NULL;
            group->codes [k] = 0;
        }
        append->count = 0;
    }
    if (append->code && append->code != POND_CODE_STORE_ERROR) {
        self->malformed++;
        s_log_once (self, "APPEND/batch", "refused APPEND %" PRIu64 " (%u): %s",
                    append->bid, append->code, append->reason);
    }
    append->routing_id = zframe_dup (routing_id);
    group->nevents += append->count;
    group->nappends++;
    if (group->nevents >= GROUP_EVENTS || group->nappends == GROUP_APPENDS)
        s_group_full (self);
}

//  ---------------------------------------------------------------------
//  REPLAY: "REPLAY", body; then CHUNK* END, paced by CREDIT; CANCEL

static s_replay_t *
s_replay_find (pond_store_server_t *self, zframe_t *routing_id, uint64_t rid, void **handle_p)
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
s_end_message (zframe_t *routing_id, uint64_t rid, uint64_t count, uint64_t head,
               uint32_t code, const char *reason)
{
    pond_end_t end = { .rid = rid, .count = count, .head = head, .code = code };
    snprintf (end.reason, sizeof end.reason, "%s", reason? reason: "");
    return s_message (routing_id, POND_END, pond_end_encode (&end));
}

//  Replace whatever the replay still had to send with its END.
static void
s_replay_end (pond_store_server_t *self, s_replay_t *replay, uint32_t code, const char *reason)
{
    if (replay->ended)
        return;
    zmsg_destroy (&replay->pending);            //  a CHUNK not taken yet is not sent
    if (replay->pending_data)
        s_pool_put (replay->pending_data, replay->pool);
    replay->pending_data = NULL;
    replay->pending = s_end_message (replay->routing_id, replay->rid, replay->sent,
                                     replay->cursor? pond_cursor_head (replay->cursor): 0,
                                     code, reason);
    replay->pending_events = 0;
    replay->ended = true;
    if (self->verbose || code != POND_CODE_OK)
        zsys_info ("store: replay %" PRIu64 " ends after %" PRIu64 " events (%u%s%s) in %"
                   PRId64 " ms, %.1f of them waiting for credit", replay->rid,
                   replay->sent, code, *reason? ": ": "", reason,
                   zclock_mono () - replay->started_at, replay->starved_us / 1000.0);
}

static void
s_handle_replay (pond_store_server_t *self, zframe_t *routing_id, zmsg_t *msg)
{
    if (zmsg_size (msg) != 1) {
        s_refuse (self, routing_id, POND_CODE_BAD_REQUEST, "REPLAY/frames",
                  "REPLAY takes exactly one body frame, not %zu", zmsg_size (msg));
        return;
    }
    zframe_t *body = zmsg_first (msg);
    if (zframe_size (body) > POND_BODY_MAX) {
        s_refuse (self, routing_id, POND_CODE_TOO_LARGE, "REPLAY/size",
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
            self->malformed++;
            s_log_once (self, "REPLAY/body", "refused REPLAY %" PRIu64 ": %s",
                        header.rid, reason);
            zmsg_t *end = s_end_message (routing_id, header.rid, 0, 0, POND_CODE_BAD_REQUEST,
                                         reason);
            if (end)
                s_reply (self, &end);
        }
        else
            s_refuse (self, routing_id, POND_CODE_BAD_REQUEST, "REPLAY/body",
                      "REPLAY body: %s", reason);
        return;
    }
    if (s_replay_find (self, routing_id, request.rid, NULL)) {
        s_refuse (self, routing_id, POND_CODE_BAD_REQUEST, "REPLAY/rid",
                  "rid %" PRIu64 " is already replaying; use another rid", request.rid);
        return;
    }
    if (zlistx_size (self->replays) >= REPLAYS_MAX) {
        s_log_once (self, "REPLAY/max", "%d replays at once: refusing more", REPLAYS_MAX);
        zmsg_t *end = s_end_message (routing_id, request.rid, 0, 0, POND_CODE_UNAVAILABLE,
                                     "too many replays at once; retry later");
        if (end)
            s_reply (self, &end);
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
    ||  !zlistx_add_end (self->replays, replay)) {
        s_replay_destroy (&replay);
        zsys_error ("store: out of memory starting replay %" PRIu64, request.rid);
        zmsg_t *end = s_end_message (routing_id, request.rid, 0, 0, POND_CODE_STORE_ERROR,
                                     "out of memory");
        if (end)
            s_reply (self, &end);
        return;
    }
    self->replays_started++;
    if (self->verbose)
        zsys_info ("store: replay %" PRIu64 " starts (%zu names, entity '%s', seq %" PRIu64
                   "..%" PRIu64 ", limit %" PRIu64 ", credit %u)", request.rid,
                   request.names_count, request.entity, request.from_seq, request.to_seq,
                   request.limit, request.credit);
}

//  CREDIT and CANCEL: "CREDIT", body {rid, chunks} / "CANCEL", body {rid}
static void
s_handle_credit (pond_store_server_t *self, zframe_t *routing_id, zmsg_t *msg, bool cancel)
{
    const char *command = cancel? POND_CANCEL: POND_CREDIT;
    if (zmsg_size (msg) != 1) {
        s_refuse (self, routing_id, POND_CODE_BAD_REQUEST, cancel? "CANCEL/frames": "CREDIT/frames",
                  "%s takes exactly one body frame, not %zu", command, zmsg_size (msg));
        return;
    }
    pond_credit_t credit;
    char reason [POND_ERR_SIZE];
    zframe_t *body = zmsg_first (msg);
    if (zframe_size (body) > POND_BODY_MAX
    ||  pond_credit_decode (body, &credit, reason, sizeof reason)) {
        if (zframe_size (body) > POND_BODY_MAX)
            snprintf (reason, sizeof reason, "body is %zu bytes; the limit is %d",
                      zframe_size (body), POND_BODY_MAX);
        s_refuse (self, routing_id, zframe_size (body) > POND_BODY_MAX
                  ? POND_CODE_TOO_LARGE: POND_CODE_BAD_REQUEST,
                  cancel? "CANCEL/body": "CREDIT/body", "%s body: %s", command, reason);
        return;
    }
    s_replay_t *replay = s_replay_find (self, routing_id, credit.rid, NULL);
    if (!replay) {
        //  The replay may have just ended: nothing to answer
        if (self->verbose)
            zsys_debug ("store: %s for unknown rid %" PRIu64, command, credit.rid);
        return;
    }
    if (cancel)
        s_replay_end (self, replay, POND_CODE_CANCELLED, "cancelled by the reader");
    else {
        uint64_t total = (uint64_t) replay->credit + credit.chunks;
        replay->credit = total > POND_CREDIT_MAX? POND_CREDIT_MAX: (uint32_t) total;
        replay->credit_at = zclock_mono ();
        if (replay->starved_at) {
            replay->starved_us += zclock_usecs () - replay->starved_at;
            replay->starved_at = 0;
        }
    }
}

//  Send what a replay has pending, as s_send does (0 sent, 1 the peer
//  cannot take it now and it is kept, -1 the peer is gone), its packed
//  events last, as a frame that ZeroMQ frees once it is out: no copy.
static int
s_replay_send (pond_store_server_t *self, s_replay_t *replay)
{
    if (!replay->pending_data)
        return s_send (self, &replay->pending);
    size_t index = 0;
    zmsg_t *msg = replay->pending;
    for (zframe_t *frame = zmsg_first (msg); frame; frame = zmsg_next (msg), index++)
        if (zframe_send (&frame, self->router, ZFRAME_REUSE | ZFRAME_DONTWAIT | ZFRAME_MORE)) {
            if (index == 0 && errno == EAGAIN)
                return 1;           //  nothing went: keep it all
            break;
        }
    int rc = -1;
    if (index == zmsg_size (msg)) {
        zmq_msg_t data;
        if (zmq_msg_init_data (&data, replay->pending_data, replay->pending_size,
                               s_pool_put, replay->pool) == 0) {
            replay->pending_data = NULL;            //  the frame owns it now
            if (zmq_msg_send (&data, zsock_resolve (self->router), ZMQ_DONTWAIT) >= 0)
                rc = 0;
            else
                zmq_msg_close (&data);
        }
    }
    //  Some frames went with MORE and the last did not: end the message
    //  (the reader sees a broken CHUNK and fails its replay), or the next
    //  reply to anyone would be glued onto it
    if (rc != 0 && index > 0)
        zmq_send (zsock_resolve (self->router), "", 0, ZMQ_DONTWAIT);
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
s_replay_step (pond_store_server_t *self, s_replay_t *replay, int64_t now)
{
    if (replay->ended && !replay->pending)
        return -1;                  //  its END could not even be built
    if (!replay->pending) {
        if (pond_cursor_done (replay->cursor)) {
            const char *error = pond_cursor_error (replay->cursor);
            s_replay_end (self, replay, error? POND_CODE_STORE_ERROR: POND_CODE_OK,
                          error? error: "");
        }
        else
        if (replay->credit > 0) {
            pond_credit_t header = { .rid = replay->rid, .chunks = replay->credit - 1 };
            zmsg_t *chunk = s_message (replay->routing_id, POND_CHUNK,
                                       pond_credit_encode (&header));
            //  Packed: the events go out in the pool's buffer they were
            //  read into (s_replay_send), never copied into a frame
            bool packs = pond_cursor_packs (replay->cursor);
            if (chunk && packs)
                replay->pending_data = s_pool_get (replay->pool);
            int count = !chunk || (packs && !replay->pending_data)? -1
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
                zmsg_destroy (&chunk);      //  filtered a stretch out: go on next turn
            else
            if (count <= 0) {
                zmsg_destroy (&chunk);
                const char *error = pond_cursor_error (replay->cursor);
                s_replay_end (self, replay, count? POND_CODE_STORE_ERROR: POND_CODE_OK,
                              count? (error? error: "out of memory"): "");
            }
            else {
                replay->credit--;
                replay->pending = chunk;
                replay->pending_events = (size_t) count;
            }
        }
        else
        if (!replay->starved_at)
            replay->starved_at = zclock_usecs ();   //  waits for credit from now on
        else
        if (now - replay->credit_at >= self->replay_timeout) {
            char reason [POND_REASON_MAX];
            snprintf (reason, sizeof reason, "no credit granted for %.1f s; replay dropped",
                      self->replay_timeout / 1000.0);
            s_replay_end (self, replay, POND_CODE_UNAVAILABLE, reason);
        }
    }
    if (!replay->pending)
        return 0;
    bool is_chunk = !replay->ended;
    int rc = s_replay_send (self, replay);
    if (rc > 0)
        return 0;                   //  the socket is full: retry next turn
    if (rc < 0) {
        self->send_failures++;
        s_log_once (self, "replay/gone", "a replay reader is gone: replay %" PRIu64 " dropped",
                    replay->rid);
        return -1;
    }
    if (!is_chunk)
        return -1;                  //  END sent: over
    replay->sent += replay->pending_events;
    replay->pending_events = 0;
    return 1;
}

//  Give replays a turn, round robin: at most one message each and
//  CHUNKS_PER_TURN chunks in all, so input is read again soon.
static void
s_serve_replays (pond_store_server_t *self)
{
    int64_t now = zclock_mono ();
    size_t size = zlistx_size (self->replays);
    int chunks = 0;
    for (size_t i = 0; i < size && chunks < CHUNKS_PER_TURN; i++) {
        void *handle = zlistx_first (self->replays)? zlistx_cursor (self->replays): NULL;
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
static int
s_replay_timeout (pond_store_server_t *self)
{
    int64_t now = zclock_mono ();
    int64_t timeout = 1000;
    for (s_replay_t *replay = (s_replay_t *) zlistx_first (self->replays); replay;
         replay = (s_replay_t *) zlistx_next (self->replays)) {
        if (replay->pending)
            timeout = timeout < 10? timeout: 10;        //  socket full: poll gently
        else
        if (replay->credit > 0 || pond_cursor_done (replay->cursor))
            return 0;
        else {
            int64_t left = replay->credit_at + self->replay_timeout - now;
            if (left < timeout)
                timeout = left < 0? 0: left;
        }
    }
    return (int) timeout;
}

//  ---------------------------------------------------------------------
//  STATS and PING

static void
s_pack_str (msgpack_packer *pk, const char *text)
{
    size_t len = strlen (text);
    msgpack_pack_str (pk, len);
    msgpack_pack_str_body (pk, text, len);
}

static void
s_pack_uint (msgpack_packer *pk, const char *key, uint64_t value)
{
    s_pack_str (pk, key);
    msgpack_pack_uint64 (pk, value);
}

//  STATS body: {events, head, names: {NAME: count}, batches, appended,
//  dups, write_errors, replays, uptime_s, names_total, names_other} plus
//  replays_active, malformed, conflicts and send_failures (unknown keys
//  are ignored by readers). names holds the STATS_NAMES_MAX busiest names
//  only.
static zframe_t *
s_stats_body (pond_store_server_t *self)
{
    pond_store_stats_t stats;
    pond_store_stats (self->store, &stats);
    //  The names with the most events only: a log may hold very many
    size_t names_total = 0;
    zlistx_t *names = pond_store_top_names (self->store, STATS_NAMES_MAX, &names_total);
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 15);
    s_pack_uint (&pk, "events", stats.events);
    s_pack_uint (&pk, "head", stats.head);
    s_pack_str (&pk, "names");
    msgpack_pack_map (&pk, names? zlistx_size (names): 0);
    uint64_t listed = 0;
    for (const char *name = names? (const char *) zlistx_first (names): NULL; name;
         name = (const char *) zlistx_next (names)) {
        uint64_t count = pond_store_name_count (self->store, name);
        s_pack_uint (&pk, name, count);
        listed += count;
    }
    s_pack_uint (&pk, "names_total", names_total);
    s_pack_uint (&pk, "names_other", stats.events > listed? stats.events - listed: 0);
    s_pack_uint (&pk, "batches", stats.batches);
    s_pack_uint (&pk, "appended", stats.appended);
    s_pack_uint (&pk, "dups", stats.dups);
    s_pack_uint (&pk, "write_errors", stats.write_errors);
    s_pack_uint (&pk, "replays", self->replays_started);
    s_pack_uint (&pk, "uptime_s", (uint64_t) (zclock_mono () - self->started) / 1000);
    s_pack_uint (&pk, "replays_active", zlistx_size (self->replays));
    s_pack_uint (&pk, "malformed", self->malformed);
    s_pack_uint (&pk, "conflicts", self->conflicts);
    s_pack_uint (&pk, "send_failures", self->send_failures);
    zlistx_destroy (&names);
    zframe_t *frame = zframe_new (sbuf.data, sbuf.size);
    msgpack_sbuffer_destroy (&sbuf);
    return frame;
}

//  ---------------------------------------------------------------------
//  Dispatch

//  With keys, only the broker's key may use the store link: anything else
//  is refused with 403 (a key can only get here if it is in the keys
//  directory: the ZAP handler turns strangers away at the handshake).
static bool
s_forbidden (pond_store_server_t *self, zframe_t *routing_id, zframe_t *command)
{
    if (!pond_keys_active ())
        return false;
    const pond_key_t *key = pond_keys_sender (command);
    char reason [256];
    if (key && pond_key_may_store (key, reason, sizeof reason))
        return false;
    if (!key)
        snprintf (reason, sizeof reason, "the sender's key is no longer in the store's keys "
                  "directory");
    s_refuse (self, routing_id, POND_CODE_FORBIDDEN, "forbidden", "%s", reason);
    return true;
}

static void
s_handle_message (pond_store_server_t *self, zmsg_t *msg)
{
    zframe_t *routing_id = zmsg_pop (msg);
    zframe_t *command = zmsg_pop (msg);
    if (!routing_id || !command) {
        if (routing_id)
            s_refuse (self, routing_id, POND_CODE_BAD_REQUEST, "empty",
                      "empty message: the first frame must be a command");
    }
    else
    if (s_forbidden (self, routing_id, command))
        ;                           //  refused and logged
    else
    if (pond_proto_is (command, POND_APPEND))
        s_handle_append (self, routing_id, msg);
    else
    if (pond_proto_is (command, POND_CREDIT) || pond_proto_is (command, POND_CANCEL))
        s_handle_credit (self, routing_id, msg, pond_proto_is (command, POND_CANCEL));
    else
    if (pond_proto_is (command, POND_REPLAY)) {
        s_commit (self);            //  the replay sees every APPEND sent before it
        s_handle_replay (self, routing_id, msg);
    }
    else
    if (pond_proto_is (command, POND_STATS) || pond_proto_is (command, POND_PING)) {
        bool stats = pond_proto_is (command, POND_STATS);
        if (zmsg_size (msg))
            s_refuse (self, routing_id, POND_CODE_BAD_REQUEST, stats? "STATS/frames": "PING/frames",
                      "%s takes no body", stats? POND_STATS: POND_PING);
        else {
            if (stats)
                s_commit (self);
            zmsg_t *reply = s_message (routing_id, stats? POND_STATS: POND_PONG,
                                       stats? s_stats_body (self): NULL);
            if (reply)
                s_reply (self, &reply);
        }
    }
    else {
        char text [160];
        s_printable (command, text, sizeof text);
        s_refuse (self, routing_id, POND_CODE_NOT_FOUND, "command",
                  "unknown command '%s'", text);
    }
    zframe_destroy (&routing_id);
    zframe_destroy (&command);
    zmsg_destroy (&msg);
}

//  Read every message already queued, up to DRAIN_MAX, then hand the
//  group they made to the writer if it is idle (else it goes as soon as
//  the writer is done). A lone APPEND with the writer idle (one producer
//  waiting for each ACK) is written right here: nothing would overlap
//  with its sync, and the hand-over would cost two thread wake-ups.
static void
s_drain (pond_store_server_t *self)
{
    int read = 0;
    for (; read < DRAIN_MAX && !self->writer_lost; read++) {
        zmsg_t *msg = zmsg_recv (self->router);     //  rcvtimeo 0: never waits
        if (!msg)
            break;
        s_handle_message (self, msg);
    }
    if (self->writer_lost)
        return;
    if (read == 1 && !self->writing && self->filling->nappends == 1) {
        s_group_t *group = self->filling;
        group->rc = pond_store_commit (self->store, group->prepared);
        s_group_done (self, group);
    }
    else
        s_writer_start (self);
}

int
pond_store_server_run (pond_store_server_t *self, zsock_t *pipe)
{
    //  Poll the writer only while it writes: every polled socket costs
    //  system calls on every turn, and one producer waiting for each ACK
    //  never needs it (s_drain writes a lone APPEND itself)
    zmq_pollitem_t items [3] = {
        { zsock_resolve (self->router), 0, ZMQ_POLLIN, 0 },
        { pipe? zsock_resolve (pipe): zsock_resolve (self->writer), 0, ZMQ_POLLIN, 0 },
        { zsock_resolve (self->writer), 0, ZMQ_POLLIN, 0 },
    };
    int fixed = pipe? 2: 1;
    while (!zsys_interrupted && !self->writer_lost) {
        int count = fixed + (self->writing? 1: 0);
        if (zmq_poll (items, count, s_replay_timeout (self)) == -1) {
            if (zmq_errno () == ETERM)
                break;              //  context gone
            continue;               //  EINTR: the loop condition sees SIGTERM
        }
        if (pipe && (items [1].revents & ZMQ_POLLIN)) {
            char *command = zstr_recv (pipe);
            bool term = !command || streq (command, "$TERM");
            if (!term)
                zsys_warning ("store: unknown pipe command '%s'", command);
            zstr_free (&command);
            if (term)
                break;
            continue;
        }
        s_writer_collect (self, false);
        s_drain (self);
        s_serve_replays (self);
    }
    s_writer_wait (self);           //  answer what is being written
    return self->writer_lost? -1: 0;
}

void
pond_store_server_actor (zsock_t *pipe, void *server)
{
    pond_thread_block_signals (NULL);
    zsock_signal (pipe, 0);
    pond_store_server_run ((pond_store_server_t *) server, pipe);
}
