/*  pond_broker: ingest, fan-out and control of a pond mesh.
    See pond_broker.h and proto/PROTOCOL.md.

    One thread, one poller over four sockets (and the events of the
    store link: see s_store_connect). The ingest path is:
    PUBLISH -> validate -> pending -> APPEND (batch) -> store -> APPENDED
    -> publish on pub -> ACK. A PUBLISH with several event frames (a
    producer's batch) takes the same path event by event, each event
    pointing to its inbatch_t, which collects the results and sends one
    RESULTS when the last is known. Memory is bounded in bytes, whatever the
    clients do: every socket caps its frames (ZMQ_MAXMSGSIZE); pending is
    capped in events and bytes (503 beyond, and at once while the store is
    away); at most BATCHES_MAX batches of BATCH_BYTES_MAX are in flight
    (the store groups them into synced writes and pipelines those); the
    pub socket's high-water mark follows a byte budget (s_pub_hwm) and
    only subscriptions that can match are applied (s_pub_subscriptions);
    replays are relayed frame by frame, at most REPLAY_WINDOW chunks ahead
    of the reader, a few per connection, and dropped at the store when
    their reader leaves or stops granting credit. On the hot path, replies go
    out frame by frame (no zmsg per ACK) and stored events move from the
    store's APPENDED to the pub socket without a copy; only the sockets
    that need it are polled. A subscription that takes heartbeats gets
    one within a few milliseconds, so a subscriber knows when it is live.

    With keys (config.keys), each message is checked against the key that
    sent it before anything else happens: s_sender finds the key (403 if it
    was removed since the connection was made), s_authorize_publish and
    s_control_message ask pond_keys what the key's role may do, and an
    accepted event gets the key's name as its source. Refusals are counted
    (STATS "forbidden") and logged once per key and cause.
*/
#include "pond_broker.h"
#include "pond_broker_commands.h"
#include "pond_keys.h"
#include "pond_proto.h"
#include "pond_value.h"

#include <msgpack.h>

#define BATCHES_MAX         4      //  APPENDs in flight to the store (more: more memory, no faster)
#define STORE_POLL_MS       500    //  STATS poll: liveness and head
#define STORE_DEAD_MS       2000    //  no answer this long: store is away
#define HEARTBEAT_MS        1000
#define WELCOME_MS          5        //  heartbeats for new subscribers, at most this often
#define REPLAY_IDLE_MS      10000    //  a replay without credit this long is cancelled
#define REPLAYS_MAX         128      //  replays relayed at once (the store takes 256)
#define REPLAYS_SHARED      96       //  ... beyond this many, only a client with none gets one
#define REPLAYS_PER_CLIENT  8        //  replays one connection may run at once
#define REPLAY_WINDOW       POND_REPLAY_WINDOW    //  chunks of credit kept per replay
#define PENDING_BYTES_MAX   (32 * 1024 * 1024)    //  events waiting for a batch (503 beyond)
#define BATCH_BYTES_MAX     (4 * 1024 * 1024)     //  events in one APPEND (and at least one)
#define STATS_POLL_MS       5000    //  STATS poll for the head (PING is the liveness poll)
//  Largest frames each socket takes; a larger one closes its connection
//  before it is buffered. Room for CURVE's framing and a 413 for an event
//  somewhat over the limit.
#define INGEST_FRAME_MAX    (2 * POND_EVENT_MAX_SIZE)
#define CONTROL_FRAME_MAX   (POND_BODY_MAX + 1024)
#define SUBSCRIPTION_MAX    (1 + POND_NAME_MAX)    //  0/1 and a name prefix
#define PUB_FRAME_MAX       (SUBSCRIPTION_MAX + 256)
#define SUBSCRIPTIONS_MAX   100000    //  subscriptions applied, over all subscribers
//  What one subscriber that does not read may hold in the broker: the
//  pub socket's high-water mark counts messages, so it is set to this
//  budget over the largest event published lately (s_pub_hwm)
#define PUB_QUEUE_BYTES     (32 * 1024 * 1024)
#define PUB_SNDHWM_MAX      10000           //  messages, when events are small
#define PUB_SIZE_MIN        2048            //  event size assumed at least
#define PUB_SIZE_WINDOW_MS  10000           //  the largest event of this long sets the mark
#define PUB_SNDBUF          (256 * 1024)    //  kernel buffer per subscriber
#define RETRY_MS            200             //  retry_ms suggested with 503
#define RATE_SAMPLES        11              //  10 s of one-second samples, and now
#define DRAIN_MAX           1024            //  messages read from one socket per turn
#define REFUSALS_LOGGED_MAX 10000           //  causes of 403 remembered (logged once)

//  A PUBLISH batch (2 or more events) waiting for its results. Its events
//  go through pending and APPENDs as single ones do, each pointing here;
//  one RESULTS goes out when the last result is known.
typedef struct {
    zframe_t *peer;
    size_t count;
    size_t left;                 //  results not known yet
    void *handle;                //  in the broker's inbatches
    pond_result_t results [];    //  in frame order
} inbatch_t;

//  One accepted PUBLISH (or event of a batch) waiting for the store
typedef struct {
    zframe_t *peer;    //  producer's routing id
    uint8_t id [POND_ID_SIZE];
    char name [POND_NAME_MAX + 1];
    zframe_t *event;       //  raw event bytes, until sent in an APPEND
    inbatch_t *inbatch;    //  its batch, or NULL for a single PUBLISH
    uint32_t index;        //  ... and its place there
} entry_t;

//  One APPEND in flight
typedef struct {
    uint64_t bid;    //  0 = free slot
    int64_t sent_at;
    size_t count;
    entry_t *entries;
} batch_t;

//  One replay relayed from the store to a reader
typedef struct {
    uint64_t brid;    //  rid towards the store
    uint64_t rid;     //  the reader's own rid
    zframe_t *peer;
    int64_t active_at;    //  last CHUNK or CREDIT
    uint32_t credit;      //  chunks the store may send: at most REPLAY_WINDOW
} relay_t;

//  Refusals each have their own counter: malformed is 400 alone
typedef struct {
    uint64_t received, acked, dups, nacked, malformed, published, replays, forbidden;
    uint64_t too_large, unknown_command, conflicts;
    uint64_t batches;    //  PUBLISH batches (2 or more event frames) received
} counters_t;

struct _pond_broker_t {
    pond_broker_config_t config;
    zsock_t *ingest;
    zsock_t *pub;
    zsock_t *control;
    zsock_t *store;
    zsock_t *store_monitor;              //  the store link's connection events
    zsock_t *store_watch;                //  pipe of a store in this process, or NULL
    pond_broker_commands_t *commands;    //  COMMAND and COMMAND_STATUS
    bool store_linked;                   //  a connection to the store is up (handshake done)
    char *endpoints [3];                 //  resolved ingest, pub, control
    bool secure;                         //  CURVE: config.keys given
    zhashx_t *refusals;                  //  "key/cause" of 403s logged already
    entry_t *pending;                    //  config.pending_max entries
    size_t pending_count;
    size_t pending_bytes;    //  their events' size: PENDING_BYTES_MAX at most
    batch_t batches [BATCHES_MAX];
    uint64_t next_bid;
    zlistx_t *relays;       //  relay_t items
    zlistx_t *inbatches;    //  inbatch_t items waiting for results
    uint64_t next_brid;
    zframe_t *store_stats;      //  last STATS body from the store
    zlistx_t *stats_waiters;    //  control peers (zframe_t) waiting for fresh STATS
    int64_t stats_asked_at;     //  when the oldest of them asked
    int64_t store_seen_at;      //  last time the store answered anything
    int64_t store_polled_at;
    int64_t stats_polled_at;
    int64_t heartbeat_at;
    bool welcome_due;    //  a heartbeat subscriber is new: send one soon
    int64_t welcomed_at;
    size_t pub_size;       //  event size the pub high-water mark assumes
    size_t pub_largest;    //  largest event published since pub_window_at
    int64_t pub_window_at;
    size_t subscriptions;         //  applied on the pub socket (about: see s_pub_subscriptions)
    bool subscriptions_warned;    //  refusals are logged once
    uint64_t head;                //  highest seq the broker knows of
    bool store_up;
    int64_t started_at;
    counters_t counters;
    //  acked counter sampled each second, for rates over 1 and 10 s
    uint64_t acked_samples [RATE_SAMPLES];
    size_t samples_taken;
};

//  ---------------------------------------------------------------------
//  Setup

void
pond_broker_config_defaults (pond_broker_config_t *config, const char *dir, char scratch [4][256])
{
    snprintf (scratch [0], 256, "ipc://%s/ingest.ipc", dir);
    snprintf (scratch [1], 256, "ipc://%s/pub.ipc", dir);
    snprintf (scratch [2], 256, "ipc://%s/control.ipc", dir);
    snprintf (scratch [3], 256, "ipc://%s/store.ipc", dir);
    *config = (pond_broker_config_t) { .ingest = scratch [0],
                                       .pub = scratch [1],
                                       .control = scratch [2],
                                       .store = scratch [3],
                                       .data = dir,
                                       .pending_max = 16384,
                                       .batch_timeout_ms = 3000 };
}

static zsock_t *
s_bind (int type, const char *endpoint, const char *role, int max_frame, char **resolved)
{
    zsock_t *sock = zsock_new (type);
    if (!sock)
        return NULL;
    //  CURVE server with the broker's key when there are keys, else nothing
    if (pond_keys_server (sock)) {
        zsock_destroy (&sock);
        return NULL;
    }
    zsock_set_linger (sock, 0);
    zsock_set_sndhwm (sock, type == ZMQ_XPUB ? PUB_SNDHWM_MAX : 100000);
    zsock_set_rcvhwm (sock, 100000);
    zsock_set_maxmsgsize (sock, max_frame);
    if (type == ZMQ_XPUB) {
        //  Subscriptions are the broker's to apply (s_pub_subscriptions)
        zsock_set_xpub_manual (sock, 1);
        zsock_set_sndbuf (sock, PUB_SNDBUF);
    }
    else if (streq (role, "control")) {
        //  A reply to a reader that is gone fails, so its replays end at
        //  once; never wait for a peer that is full
        zsock_set_router_mandatory (sock, 1);
        zsock_set_sndtimeo (sock, 0);
    }
    zsock_set_rcvtimeo (sock, 0);    //  the loop polls, then drains
    if (zsock_bind (sock, "%s", endpoint) < 0) {
        zsys_error ("pond-broker: cannot bind %s endpoint %s: %s (is another broker running?)",
                    role, endpoint, zmq_strerror (zmq_errno ()));
        zsock_destroy (&sock);
        return NULL;
    }
    *resolved = zsock_last_endpoint (sock);
    return sock;
}

//  With keys, the store link is CURVE too when the keys directory has the
//  store's key; over tcp it must (a log anyone on the network could write
//  to would undo every check the broker makes). Over ipc without a store
//  key, file permissions guard the link, as in local mode.
static int
s_store_secure (zsock_t *sock, const char *endpoint)
{
    //  inproc: a store in this process (--with-store); nothing else can
    //  reach the link, and the store checks no keys on it
    if (!pond_keys_active () || strncmp (endpoint, "inproc://", 9) == 0)
        return 0;
    char path [PATH_MAX];
    snprintf (path, sizeof path, "%s/public/%s.cert", pond_keys_dir (), POND_KEYS_STORE);
    if (zsys_file_exists (path))
        return pond_keys_client (sock, POND_KEYS_STORE);
    if (strncmp (endpoint, "ipc://", 6) == 0) {
        zsys_warning ("pond-broker: no store key in %s/public: the store link (%s) runs "
                      "without CURVE (make one with: pond keys new --role store)",
                      pond_keys_dir (), endpoint);
        return 0;
    }
    zsys_error ("pond-broker: the store at %s is not on ipc and %s has no store key: make "
                "one with pond keys new --keys %s --role store, and start pond-store with "
                "--keys %s",
                endpoint, path, pond_keys_dir (), pond_keys_dir ());
    return -1;
}

//  The store DEALER and a PAIR that hears its connection events.
//
//  Not ZMQ_IMMEDIATE: with it, libzmq 4.3 ends the link's pipe at once
//  when the connection ends (socket_base_t::hiccuped terminates it
//  without delay), also while we are half way through a reply (it
//  handles commands every 100 frames inside zmq_msg_recv), and the next
//  frame aborts the process ("Assertion failed: !_more (src/fq.cpp:112)").
//  Without it the pipe outlives connections, and we never send while
//  there is no connection (store_linked, from the monitor): new work
//  still fails fast with 503 instead of queueing for an absent store.
static zsock_t *
s_store_connect (const char *endpoint, zsock_t **monitor_p)
{
    zsock_t *sock = zsock_new (ZMQ_DEALER);
    if (!sock)
        return NULL;
    zsock_set_linger (sock, 0);
    zsock_set_sndtimeo (sock, 0);
    zsock_set_rcvtimeo (sock, 0);
    zsock_set_sndhwm (sock, 1000);
    zsock_set_rcvhwm (sock, 100000);
    zsock_set_reconnect_ivl (sock, 100);
    zsock_set_reconnect_ivl_max (sock, 1000);
    if (s_store_secure (sock, endpoint)) {
        zsock_destroy (&sock);
        return NULL;
    }
    char monitor [64];
    snprintf (monitor, sizeof monitor, "inproc://pond-broker-store-link-%p", (void *) sock);
    if (zmq_socket_monitor (zsock_resolve (sock), monitor,
                            ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED)
        || !(*monitor_p = zsock_new (ZMQ_PAIR)) || zsock_connect (*monitor_p, "%s", monitor) < 0) {
        zsys_error ("pond-broker: cannot watch the store link: %s", zmq_strerror (zmq_errno ()));
        zsock_destroy (monitor_p);
        zsock_destroy (&sock);
        return NULL;
    }
    zsock_set_linger (*monitor_p, 0);
    zsock_set_rcvtimeo (*monitor_p, 0);
    if (zsock_connect (sock, "%s", endpoint) < 0) {
        zsys_error ("pond-broker: cannot connect to the store at %s: %s", endpoint,
                    zmq_strerror (zmq_errno ()));
        zsock_destroy (&sock);
    }
    return sock;
}

static void
s_relay_destroy (void **item_p)
{
    relay_t *relay = (relay_t *) *item_p;
    if (relay) {
        zframe_destroy (&relay->peer);
        free (relay);
        *item_p = NULL;
    }
}

static void
s_inbatch_destroy (void **item_p)
{
    inbatch_t *inbatch = (inbatch_t *) *item_p;
    if (inbatch) {
        zframe_destroy (&inbatch->peer);
        free (inbatch);
        *item_p = NULL;
    }
}

pond_broker_t *
pond_broker_new (const pond_broker_config_t *config)
{
    pond_broker_t *self = (pond_broker_t *) zmalloc (sizeof (pond_broker_t));
    assert (self);
    self->config = *config;
    if (self->config.pending_max < POND_APPEND_MAX)
        self->config.pending_max = POND_APPEND_MAX;
    self->pending = (entry_t *) calloc ((size_t) self->config.pending_max, sizeof (entry_t));
    for (int i = 0; i < BATCHES_MAX; i++)
        self->batches [i].entries = (entry_t *) calloc (POND_APPEND_MAX, sizeof (entry_t));
    self->relays = zlistx_new ();
    self->inbatches = zlistx_new ();
    zlistx_set_destructor (self->inbatches, s_inbatch_destroy);
    zlistx_set_destructor (self->relays, s_relay_destroy);
    self->stats_waiters = zlistx_new ();
    zlistx_set_destructor (self->stats_waiters, (zlistx_destructor_fn *) zframe_destroy);
    self->refusals = zhashx_new ();
    if (config->keys) {
        char err [512];
        if (pond_keys_use (config->keys, POND_KEYS_BROKER, err, sizeof err)) {
            zsys_error ("pond-broker: --keys %s: %s", config->keys, err);
            pond_broker_destroy (&self);
            return NULL;
        }
        self->secure = true;
    }
    self->ingest = s_bind (ZMQ_ROUTER, config->ingest, "ingest", INGEST_FRAME_MAX,
                           &self->endpoints [0]);
    self->pub = self->ingest
                  ? s_bind (ZMQ_XPUB, config->pub, "pub", PUB_FRAME_MAX, &self->endpoints [1])
                  : NULL;
    self->control = self->pub ? s_bind (ZMQ_ROUTER, config->control, "control", CONTROL_FRAME_MAX,
                                        &self->endpoints [2])
                              : NULL;
    self->store = self->control ? s_store_connect (config->store, &self->store_monitor) : NULL;
    self->commands = self->store ? pond_broker_commands_new (config->data ? config->data : ".")
                                 : NULL;
    if (!self->commands) {
        pond_broker_destroy (&self);
        return NULL;
    }
    self->started_at = zclock_mono ();
    //  inproc has no handshake, so the monitor never reports one: the
    //  link is up once connected (the store binds before the broker starts)
    if (strncmp (config->store, "inproc://", 9) == 0) {
        self->store_linked = true;
        zstr_send (self->store, POND_STATS);
        self->store_polled_at = self->started_at;
    }
    self->next_bid = 1;
    self->next_brid = 1;
    return self;
}

static void
s_entry_clear (entry_t *entry)
{
    zframe_destroy (&entry->peer);
    zframe_destroy (&entry->event);
}

void
pond_broker_destroy (pond_broker_t **self_p)
{
    if (self_p && *self_p) {
        pond_broker_t *self = *self_p;
        for (size_t i = 0; i < self->pending_count; i++)
            s_entry_clear (&self->pending [i]);
        for (int i = 0; i < BATCHES_MAX; i++) {
            for (size_t j = 0; j < self->batches [i].count; j++)
                s_entry_clear (&self->batches [i].entries [j]);
            free (self->batches [i].entries);
        }
        free (self->pending);
        zlistx_destroy (&self->relays);
        zlistx_destroy (&self->inbatches);
        zlistx_destroy (&self->stats_waiters);
        zframe_destroy (&self->store_stats);
        zhashx_destroy (&self->refusals);
        pond_broker_commands_destroy (&self->commands);
        zsock_destroy (&self->ingest);
        zsock_destroy (&self->pub);
        zsock_destroy (&self->control);
        zsock_destroy (&self->store_monitor);
        zsock_destroy (&self->store);
        for (int i = 0; i < 3; i++)
            zstr_free (&self->endpoints [i]);
        if (self->secure)
            pond_keys_reset ();
        free (self);
        *self_p = NULL;
    }
}

const char *
pond_broker_endpoint (pond_broker_t *self, const char *which)
{
    if (streq (which, "ingest"))
        return self->endpoints [0];
    if (streq (which, "pub"))
        return self->endpoints [1];
    if (streq (which, "control"))
        return self->endpoints [2];
    return NULL;
}

//  ---------------------------------------------------------------------
//  Replies

//  Send [peer, command, body] on a ROUTER; takes ownership of body. Frame
//  by frame, without a zmsg: one of these goes out per ACK. A peer that is
//  gone or full loses the reply (ROUTER drops it), as it would lose a zmsg.
static void
s_reply (zsock_t *router, zframe_t *peer, const char *command, zframe_t **body_p)
{
    void *handle = zsock_resolve (router);
    zframe_t *body = body_p ? *body_p : NULL;
    if (zmq_send (handle, zframe_data (peer), zframe_size (peer), ZMQ_SNDMORE) >= 0
        && zmq_send (handle, command, strlen (command), body ? ZMQ_SNDMORE : 0) >= 0 && body)
        zmq_send (handle, zframe_data (body), zframe_size (body), 0);
    if (body_p)
        zframe_destroy (body_p);
}

//  One more result of inbatch is known: when it was the last, send
//  RESULTS and forget the batch.
static void
s_inbatch_done (pond_broker_t *self, inbatch_t *inbatch)
{
    assert (inbatch->left > 0);
    if (--inbatch->left)
        return;
    zframe_t *body = pond_results_encode (POND_CODE_OK, "", inbatch->results, inbatch->count);
    s_reply (self->ingest, inbatch->peer, POND_RESULTS, &body);
    zlistx_delete (self->inbatches, inbatch->handle);
}

//  Refuse one event: NACK for a single PUBLISH, its result in its batch
//  (inbatch, at index) otherwise.
static void
s_refuse (pond_broker_t *self, zframe_t *peer, inbatch_t *inbatch, uint32_t index,
          const uint8_t *id, uint32_t code, const char *reason)
{
    uint32_t retry_ms = code == POND_CODE_UNAVAILABLE ? RETRY_MS : 0;
    if (inbatch) {
        pond_result_t *result = &inbatch->results [index];
        *result = (pond_result_t) { .has_id = id != NULL, .code = code, .retry_ms = retry_ms };
        if (id)
            memcpy (result->id, id, POND_ID_SIZE);
        snprintf (result->reason, sizeof result->reason, "%.127s", reason);
        pond_value_utf8_sanitize (result->reason);
        s_inbatch_done (self, inbatch);
    }
    else {
        zframe_t *body = pond_nack_new (id, code, retry_ms, "%s", reason);
        s_reply (self->ingest, peer, POND_NACK, &body);
    }
    self->counters.nacked++;
    //  One counter per kind of refusal (403 is counted where it is decided)
    if (code == POND_CODE_BAD_REQUEST)
        self->counters.malformed++;
    else if (code == POND_CODE_TOO_LARGE)
        self->counters.too_large++;
    else if (code == POND_CODE_NOT_FOUND)
        self->counters.unknown_command++;
    else if (code == POND_CODE_CONFLICT)
        self->counters.conflicts++;
}

static void
s_nack (pond_broker_t *self, zframe_t *peer, const uint8_t *id, uint32_t code, const char *reason)
{
    s_refuse (self, peer, NULL, 0, id, code, reason);
}

//  Refuse an event that was accepted (pending or in an APPEND)
static void
s_entry_refuse (pond_broker_t *self, entry_t *entry, uint32_t code, const char *reason)
{
    s_refuse (self, entry->peer, entry->inbatch, entry->index, entry->id, code, reason);
}

//  The event is durable: ACK it, or record its result in its batch
static void
s_entry_ack (pond_broker_t *self, entry_t *entry, uint64_t seq, bool dup)
{
    if (entry->inbatch) {
        pond_result_t *result = &entry->inbatch->results [entry->index];
        *result = (pond_result_t) { .has_id = true, .code = POND_CODE_OK, .seq = seq, .dup = dup };
        memcpy (result->id, entry->id, POND_ID_SIZE);
        s_inbatch_done (self, entry->inbatch);
    }
    else {
        pond_ack_t ack = { .seq = seq, .dup = dup };
        memcpy (ack.id, entry->id, POND_ID_SIZE);
        zframe_t *ack_body = pond_ack_encode (&ack);
        s_reply (self->ingest, entry->peer, POND_ACK, &ack_body);
    }
    self->counters.acked++;
    self->counters.dups += dup;
}

//  ---------------------------------------------------------------------
//  Keys: who sent a message, and what it may do

//  Count a refusal (403) and log it the first time for this key and cause.
static void
s_forbidden (pond_broker_t *self, const char *name, const char *cause, const char *reason)
{
    self->counters.forbidden++;
    char tag [POND_KEY_NAME_MAX + POND_ENTITY_MAX + 64];
    snprintf (tag, sizeof tag, "%s/%s", name, cause);
    if (zhashx_size (self->refusals) < REFUSALS_LOGGED_MAX
        && zhashx_insert (self->refusals, tag, (void *) "") == 0)
        zsys_warning ("pond-broker: refused: %s (403; logged once per key and cause)", reason);
}

//  The key that sent a message (frame: one that came from the wire, e.g.
//  the command), when the broker has keys. Returns 0 with *key set (NULL
//  in local mode), or -1 if the key is no longer known: the reason is in
//  reason and the refusal counted.
static int
s_sender (pond_broker_t *self, zframe_t *frame, const pond_key_t **key, char *reason, size_t size)
{
    *key = NULL;
    if (!self->secure || !frame)
        return 0;    //  no frame: the caller refuses an empty message
    *key = pond_keys_sender (frame);
    if (*key)
        return 0;
    const char *user = zframe_meta (frame, "User-Id");
    snprintf (reason, size, "key %.40s is no longer in the broker's keys directory",
              user ? user : "(none)");
    s_forbidden (self, user ? user : "-", "removed", reason);
    return -1;
}

//  May key publish decoded? If so, stamp the key's name as its source,
//  re-encoding *event_p when it changes. Returns 0, or -1 after the NACK.
static int
s_authorize_publish (pond_broker_t *self, const pond_key_t *key, zframe_t *peer, inbatch_t *inbatch,
                     uint32_t index, pond_event_t *decoded, zframe_t **event_p)
{
    char reason [POND_REASON_MAX];
    if (!pond_key_may_publish (key, pond_event_entity (decoded), reason, sizeof reason)) {
        s_forbidden (self, pond_key_name (key), pond_event_entity (decoded), reason);
        s_refuse (self, peer, inbatch, index, pond_event_id (decoded), POND_CODE_FORBIDDEN, reason);
        return -1;
    }
    if (streq (pond_event_source (decoded), pond_key_name (key)))
        return 0;
    char err [POND_ERR_SIZE];
    size_t size = 0;
    uint8_t *bytes = pond_event_set_source (decoded, pond_key_name (key)) == 0
                       ? pond_event_encode (decoded, &size, err, sizeof err)
                       : NULL;
    if (!bytes || size > POND_PUBLISH_MAX_SIZE) {
        s_refuse (self, peer, inbatch, index, pond_event_id (decoded), POND_CODE_TOO_LARGE,
                  "event too large once its source is set to the sender's key name");
        free (bytes);
        return -1;
    }
    zframe_destroy (event_p);
    *event_p = zframe_new (bytes, size);
    free (bytes);
    return 0;
}

//  PONG: bare to a bare PING (as ever); to a PING with a body, with
//  {store_up, head}, so a client can tell a broker that takes events
//  from one that would answer them 503
static void
s_pong (pond_broker_t *self, zsock_t *router, zframe_t *peer, bool with_body)
{
    pond_pong_t pong = { .store_up = self->store_up, .head = self->head };
    zframe_t *body = with_body ? pond_pong_encode (&pong) : NULL;
    s_reply (router, peer, POND_PONG, body ? &body : NULL);
}

//  ---------------------------------------------------------------------
//  Ingest: PUBLISH, PING

//  The id of a refused event, when it can be read (into id), else NULL
static const uint8_t *
s_peek_id (zframe_t *event, uint8_t *id)
{
    return event && pond_event_peek_id (zframe_data (event), zframe_size (event), id) ? id : NULL;
}

//  One event of a PUBLISH (inbatch NULL) or of a batch (at index): check
//  it, then hold it in pending for the next APPEND, or refuse it. Takes
//  ownership of *event_p.
static void
s_ingest_event (pond_broker_t *self, zframe_t *peer, const pond_key_t *key, zframe_t **event_p,
                inbatch_t *inbatch, uint32_t index)
{
    zframe_t *event = *event_p;
    *event_p = NULL;
    //  Every refusal names the event when its id can be read, even when
    //  the rest of it cannot (PROTOCOL.md: a pipelining client
    //  correlates); looked for only when refusing
    uint8_t peeked [POND_ID_SIZE];
    if (zframe_size (event) > POND_PUBLISH_MAX_SIZE) {
        char reason [POND_REASON_MAX];
        snprintf (reason, sizeof reason, "event is %zu bytes; the limit is %d", zframe_size (event),
                  POND_PUBLISH_MAX_SIZE);
        s_refuse (self, peer, inbatch, index, s_peek_id (event, peeked), POND_CODE_TOO_LARGE,
                  reason);
        zframe_destroy (&event);
        return;
    }
    char err [POND_ERR_SIZE];
    pond_event_t *decoded = pond_event_decode (zframe_data (event), zframe_size (event), err,
                                               sizeof err);
    if (decoded && pond_event_seq (decoded)) {
        snprintf (err, sizeof err, "seq is set by the store; leave it out of PUBLISH");
        s_refuse (self, peer, inbatch, index, pond_event_id (decoded), POND_CODE_BAD_REQUEST, err);
        pond_event_destroy (&decoded);
    }
    else if (!decoded) {
        if (self->config.verbose)
            zsys_info ("pond-broker: malformed PUBLISH: %s", err);
        s_refuse (self, peer, inbatch, index, s_peek_id (event, peeked), POND_CODE_BAD_REQUEST,
                  err);
    }
    else if (key && s_authorize_publish (self, key, peer, inbatch, index, decoded, &event))
        pond_event_destroy (&decoded);
    else if (self->pending_count >= (size_t) self->config.pending_max
             || self->pending_bytes + zframe_size (event) > PENDING_BYTES_MAX || !self->store_up) {
        s_refuse (self, peer, inbatch, index, pond_event_id (decoded), POND_CODE_UNAVAILABLE,
                  self->store_up ? "broker is busy; retry after retry_ms"
                                 : "the store is not reachable; retry after retry_ms");
        pond_event_destroy (&decoded);
    }
    else {
        entry_t *entry = &self->pending [self->pending_count++];
        entry->peer = zframe_dup (peer);
        memcpy (entry->id, pond_event_id (decoded), POND_ID_SIZE);
        strcpy (entry->name, pond_event_name (decoded));
        self->pending_bytes += zframe_size (event);
        entry->event = event;
        entry->inbatch = inbatch;
        entry->index = index;
        event = NULL;
        pond_event_destroy (&decoded);
    }
    zframe_destroy (&event);
}

//  A batch refused as a whole (413): RESULTS with that code, and one
//  result per event, its id when it can be read, when there are at most
//  POND_BATCH_EVENTS_MAX (a client correlates); none beyond.
static void
s_batch_refuse (pond_broker_t *self, zframe_t *peer, zframe_t **events, size_t count, size_t extra,
                const char *reason)
{
    size_t listed = extra ? 0 : count;
    pond_result_t *results = (pond_result_t *) calloc (listed + 1, sizeof (pond_result_t));
    if (!results)
        return;
    for (size_t i = 0; i < listed; i++) {
        results [i].has_id = s_peek_id (events [i], results [i].id) != NULL;
        results [i].code = POND_CODE_TOO_LARGE;
        snprintf (results [i].reason, sizeof results [i].reason, "%.127s", reason);
        pond_value_utf8_sanitize (results [i].reason);
    }
    zframe_t *body = pond_results_encode (POND_CODE_TOO_LARGE, reason, results, listed);
    s_reply (self->ingest, peer, POND_RESULTS, &body);
    free (results);
    self->counters.nacked += count + extra;
    self->counters.too_large += count + extra;
}

//  PUBLISH: events are the count frames after the command, extra the
//  frames beyond those (dropped unread). One frame is a single PUBLISH
//  (ACK or NACK); two or more a batch, answered by one RESULTS. Takes
//  ownership of the event frames.
static void
s_ingest_publish (pond_broker_t *self, zframe_t *peer, const pond_key_t *key, zframe_t **events,
                  size_t count, size_t extra)
{
    if (count == 0) {
        self->counters.received++;
        s_nack (self, peer, NULL, POND_CODE_BAD_REQUEST,
                "PUBLISH takes one event frame after the command (or 2 to 1024 for a batch)");
        return;
    }
    if (count == 1) {
        self->counters.received++;
        s_ingest_event (self, peer, key, &events [0], NULL, 0);
        return;
    }
    self->counters.received += count + extra;
    self->counters.batches++;
    size_t bytes = 0;
    for (size_t i = 0; i < count; i++)
        bytes += zframe_size (events [i]);
    char reason [POND_REASON_MAX];
    if (extra)
        snprintf (reason, sizeof reason,
                  "batch of %zu events; at most %d events per PUBLISH: "
                  "send fewer at once",
                  count + extra, POND_BATCH_EVENTS_MAX);
    else if (bytes > POND_BATCH_BYTES_MAX)
        snprintf (reason, sizeof reason,
                  "batch of %zu bytes of events; at most %d per "
                  "PUBLISH: send fewer at once",
                  bytes, POND_BATCH_BYTES_MAX);
    if (extra || bytes > POND_BATCH_BYTES_MAX) {
        s_batch_refuse (self, peer, events, count, extra, reason);
        for (size_t i = 0; i < count; i++)
            zframe_destroy (&events [i]);
        return;
    }
    inbatch_t *inbatch = (inbatch_t *) calloc (1,
                                               sizeof (inbatch_t) + count * sizeof (pond_result_t));
    if (!inbatch) {
        for (size_t i = 0; i < count; i++)
            zframe_destroy (&events [i]);
        return;
    }
    inbatch->peer = zframe_dup (peer);
    inbatch->count = inbatch->left = count;
    inbatch->handle = zlistx_add_end (self->inbatches, inbatch);
    //  Each event on its own: one refused fails only itself. When all are
    //  refused here, the last one sends the RESULTS and frees the batch.
    for (size_t i = 0; i < count; i++)
        s_ingest_event (self, peer, key, &events [i], inbatch, (uint32_t) i);
}

//  One ingest message, [peer, command, events...] with extra frames beyond
//  those read. Takes ownership of the frames.
static void
s_ingest_message (pond_broker_t *self, zframe_t *peer, zframe_t *command, zframe_t **events,
                  size_t count, size_t extra)
{
    const pond_key_t *key = NULL;
    char reason [POND_REASON_MAX];
    if (!peer || !command) {
        if (peer)
            s_nack (self, peer, NULL, POND_CODE_BAD_REQUEST, "empty message");
        else
            self->counters.malformed++;
    }
    else if (s_sender (self, command, &key, reason, sizeof reason))
        s_nack (self, peer, NULL, POND_CODE_FORBIDDEN, reason);
    else if (pond_proto_is (command, POND_PUBLISH))
        s_ingest_publish (self, peer, key, events, count, extra);
    else if (pond_proto_is (command, POND_PING))
        s_pong (self, self->ingest, peer, count > 0);
    else
        s_nack (self, peer, NULL, POND_CODE_NOT_FOUND,
                "unknown command; the ingest socket takes PUBLISH or PING");
    zframe_destroy (&peer);
    zframe_destroy (&command);
    for (size_t i = 0; i < count; i++)
        zframe_destroy (&events [i]);
}

//  Read one message from ingest, frame by frame (no zmsg: this runs once
//  per event), and handle it. Returns the events it carried (at least 1),
//  or -1 if nothing was queued.
static int
s_ingest_recv (pond_broker_t *self)
{
    //  peer, command, then up to a batch of events
    zframe_t *frames [POND_BATCH_EVENTS_MAX + 2];
    size_t count = 0, extra = 0;
    bool more = true;
    while (more) {
        zframe_t *frame = zframe_recv (self->ingest);    //  rcvtimeo 0: never waits
        if (!frame && count > 0 && zmq_errno () == EINTR)
            continue;    //  the rest of a message is always there
        if (!frame)
            break;
        more = zframe_more (frame);
        if (count < POND_BATCH_EVENTS_MAX + 2)
            frames [count++] = frame;
        else {
            extra++;
            zframe_destroy (&frame);
        }
    }
    if (count == 0 || more) {
        //  Nothing, or a message cut short (the context is going away)
        for (size_t i = 0; i < count; i++)
            zframe_destroy (&frames [i]);
        return -1;
    }
    size_t events = count > 2 ? count - 2 : 0;
    s_ingest_message (self, frames [0], count > 1 ? frames [1] : NULL, frames + 2, events, extra);
    return events + extra > 1 ? (int) (events + extra) : 1;
}

//  ---------------------------------------------------------------------
//  Store link: APPEND out, APPENDED in

static batch_t *
s_free_batch (pond_broker_t *self)
{
    for (int i = 0; i < BATCHES_MAX; i++)
        if (self->batches [i].bid == 0)
            return &self->batches [i];
    return NULL;
}

static batch_t *
s_find_batch (pond_broker_t *self, uint64_t bid)
{
    for (int i = 0; i < BATCHES_MAX; i++)
        if (bid && self->batches [i].bid == bid)
            return &self->batches [i];
    return NULL;
}

//  NACK every event of a batch and free its slot.
static void
s_batch_fail (pond_broker_t *self, batch_t *batch, uint32_t code, const char *reason)
{
    for (size_t i = 0; i < batch->count; i++) {
        s_entry_refuse (self, &batch->entries [i], code, reason);
        s_entry_clear (&batch->entries [i]);
    }
    batch->count = 0;
    batch->bid = 0;
}

//  NACK every pending event (the store is away: nothing waits for it).
static void
s_pending_fail (pond_broker_t *self, const char *reason)
{
    for (size_t i = 0; i < self->pending_count; i++) {
        s_entry_refuse (self, &self->pending [i], POND_CODE_UNAVAILABLE, reason);
        s_entry_clear (&self->pending [i]);
    }
    self->pending_count = 0;
    self->pending_bytes = 0;
}

//  Move pending events into APPENDs (POND_APPEND_MAX events and
//  BATCH_BYTES_MAX bytes each at most) while slots last.
static void
s_flush_pending (pond_broker_t *self)
{
    if (!self->store_up) {
        s_pending_fail (self, "the store is not reachable; retry after retry_ms");
        return;
    }
    size_t taken = 0;
    batch_t *batch;
    while (taken < self->pending_count && (batch = s_free_batch (self))) {
        size_t count = 0, bytes = 0;
        while (taken + count < self->pending_count && count < POND_APPEND_MAX) {
            size_t size = zframe_size (self->pending [taken + count].event);
            if (count > 0 && bytes + size > BATCH_BYTES_MAX)
                break;
            bytes += size;
            count++;
        }
        self->pending_bytes -= bytes;
        pond_append_t header = { .bid = self->next_bid++ };
        for (size_t i = 0; i < count; i++) {
            batch->entries [i] = self->pending [taken + i];
            self->pending [taken + i] = (entry_t) { 0 };
        }
        taken += count;
        batch->bid = header.bid;
        batch->count = count;
        batch->sent_at = zclock_mono ();
        //  Frame by frame: the events move to ZeroMQ without a copy. The
        //  first frame is the only one that can be refused (no store, or
        //  its queue is full); then the rest of the message always goes.
        zframe_t *body = pond_append_encode (&header);
        int rc = body && self->store_linked
                      && zmq_send (zsock_resolve (self->store), POND_APPEND, strlen (POND_APPEND),
                                   ZMQ_SNDMORE)
                             >= 0
                   ? 0
                   : -1;
        if (rc == 0)
            zframe_send (&body, self->store, ZFRAME_MORE);
        for (size_t i = 0; rc == 0 && i < count; i++)
            zframe_send (&batch->entries [i].event, self->store, i + 1 < count ? ZFRAME_MORE : 0);
        zframe_destroy (&body);
        if (rc) {
            s_batch_fail (self, batch, POND_CODE_UNAVAILABLE,
                          "the store is not reachable; retry after retry_ms");
            self->store_up = false;
        }
    }
    //  Keep what did not fit, in order
    memmove (self->pending, self->pending + taken,
             (self->pending_count - taken) * sizeof (entry_t));
    self->pending_count -= taken;
}

//  The stored events of an APPENDED whose batch timed out (its producers
//  got 503): durable, so published all the same, each under its name.
static void
s_publish_late (pond_broker_t *self, const pond_appended_t *result, zmsg_t *msg)
{
    size_t published = 0;
    zframe_t *stored;
    while ((stored = zmsg_pop (msg))) {
        char err [POND_ERR_SIZE];
        pond_event_t *event = pond_event_decode (zframe_data (stored), zframe_size (stored), err,
                                                 sizeof err);
        if (!event)
            zsys_error ("pond-broker: unreadable stored event in APPENDED %" PRIu64 ": %s",
                        result->bid, err);
        else {
            if (pond_event_seq (event) > self->head)
                self->head = pond_event_seq (event);
            const char *name = pond_event_name (event);
            if (zmq_send (zsock_resolve (self->pub), name, strlen (name), ZMQ_SNDMORE) >= 0
                && zframe_send (&stored, self->pub, 0) == 0) {
                self->counters.published++;
                published++;
            }
        }
        pond_event_destroy (&event);
        zframe_destroy (&stored);
    }
    if (published)
        zsys_info ("pond-broker: published %zu events of APPENDED %" PRIu64 ", which came "
                   "after its producers were answered 503",
                   published, result->bid);
}

//  Keep what one subscriber that does not read holds within about
//  PUB_QUEUE_BYTES: the high-water mark is that over the size of the
//  largest event lately (a power of two, so the mark changes rarely). A
//  larger event lowers it before it is sent; it rises again once large
//  events have not been seen for PUB_SIZE_WINDOW_MS.
static void
s_pub_hwm (pond_broker_t *self, size_t size)
{
    if (size > self->pub_largest)
        self->pub_largest = size;
    size_t wanted = PUB_SIZE_MIN;
    while (wanted < size)
        wanted *= 2;
    int64_t now = zclock_mono ();
    bool window_over = now - self->pub_window_at >= PUB_SIZE_WINDOW_MS;
    if (window_over) {
        while (wanted < self->pub_largest)
            wanted *= 2;
        self->pub_largest = size;
        self->pub_window_at = now;
    }
    if (wanted > self->pub_size || (window_over && wanted < self->pub_size)) {
        self->pub_size = wanted;
        size_t hwm = PUB_QUEUE_BYTES / wanted;
        zsock_set_sndhwm (self->pub, hwm < PUB_SNDHWM_MAX ? (int) hwm : PUB_SNDHWM_MAX);
    }
}

static void
s_store_appended (pond_broker_t *self, zmsg_t *msg)
{
    zframe_t *body = zmsg_pop (msg);
    pond_appended_t *result = (pond_appended_t *) malloc (sizeof (pond_appended_t));
    char err [POND_ERR_SIZE];
    if (!result || pond_appended_decode (body, result, err, sizeof err)) {
        zsys_error ("pond-broker: bad APPENDED from the store: %s", result ? err : "no memory");
        free (result);
        zframe_destroy (&body);
        return;
    }
    zframe_destroy (&body);
    batch_t *batch = s_find_batch (self, result->bid);
    if (!batch) {
        //  Timed out earlier: its producers were NACKed 503 and will resend
        //  the same ids, which the store answers as duplicates (not
        //  published again). What it stored is durable: publish it now.
        if (result->code == POND_CODE_OK)
            s_publish_late (self, result, msg);
        free (result);
        return;
    }
    if (result->code != POND_CODE_OK || result->count != batch->count) {
        if (result->code == POND_CODE_OK)
            snprintf (result->reason, sizeof result->reason,
                      "store answered %zu results for %zu events", result->count, batch->count);
        zsys_warning ("pond-broker: batch of %zu events not stored: %s (%u)", batch->count,
                      result->reason, result->code);
        s_batch_fail (self, batch,
                      result->code == POND_CODE_OK ? POND_CODE_STORE_ERROR : result->code,
                      result->reason);
        free (result);
        return;
    }
    for (size_t i = 0; i < batch->count; i++) {
        entry_t *entry = &batch->entries [i];
        //  Each event its own result: a refused one fails only itself
        uint32_t code = result->codes_count ? (uint32_t) result->codes [i] : POND_CODE_OK;
        if (code != POND_CODE_OK) {
            s_entry_refuse (self, entry, code,
                            result->reasons_count && *result->reasons [i]
                                ? result->reasons [i]
                                : "the store refused this event");
            s_entry_clear (entry);
            continue;
        }
        if (!result->dups [i]) {
            //  Durable: publish first, then ACK
            //  [name, stored event]; the event frame moves, uncopied
            zframe_t *stored = zmsg_pop (msg);
            if (stored)
                s_pub_hwm (self, zframe_size (stored));
            if (stored
                && zmq_send (zsock_resolve (self->pub), entry->name, strlen (entry->name),
                             ZMQ_SNDMORE)
                       >= 0
                && zframe_send (&stored, self->pub, 0) == 0)
                self->counters.published++;
            zframe_destroy (&stored);
        }
        s_entry_ack (self, entry, result->seqs [i], result->dups [i]);
        if (result->seqs [i] > self->head)
            self->head = result->seqs [i];
        s_entry_clear (entry);
    }
    batch->count = 0;
    batch->bid = 0;
    free (result);
}

//  ---------------------------------------------------------------------
//  Replays relayed between control and store

static relay_t *
s_relay_by_brid (pond_broker_t *self, uint64_t brid)
{
    for (relay_t *relay = (relay_t *) zlistx_first (self->relays); relay;
         relay = (relay_t *) zlistx_next (self->relays))
        if (relay->brid == brid)
            return relay;
    return NULL;
}

static relay_t *
s_relay_by_reader (pond_broker_t *self, zframe_t *peer, uint64_t rid)
{
    for (relay_t *relay = (relay_t *) zlistx_first (self->relays); relay;
         relay = (relay_t *) zlistx_next (self->relays))
        if (relay->rid == rid && zframe_eq (relay->peer, peer))
            return relay;
    return NULL;
}

static void
s_relay_remove (pond_broker_t *self, relay_t *relay)
{
    void *handle = zlistx_find (self->relays, relay);
    if (handle)
        zlistx_delete (self->relays, handle);
}

//  Send END with a failure to the reader of relay, and forget it.
static void
s_relay_end (pond_broker_t *self, relay_t *relay, uint32_t code, const char *reason)
{
    pond_end_t end = { .rid = relay->rid, .code = code };
    snprintf (end.reason, sizeof end.reason, "%s", reason);
    zframe_t *body = pond_end_encode (&end);
    s_reply (self->control, relay->peer, POND_END, &body);
    s_relay_remove (self, relay);
}

//  Stop relay at the store (its END, when it comes, finds no relay) and
//  forget it: its reader is gone or never grants credit.
static void
s_relay_cancel (pond_broker_t *self, relay_t *relay)
{
    pond_credit_t cancel = { .rid = relay->brid };
    zframe_t *body = pond_credit_encode (&cancel);
    zmsg_t *out = zmsg_new ();
    zmsg_addstr (out, POND_CANCEL);
    zmsg_append (out, &body);
    if (zmsg_send (&out, self->store))
        zmsg_destroy (&out);    //  no link: the store drops it after its timeout
    s_relay_remove (self, relay);
}

//  The same, telling the reader why (when it is still there).
static void
s_relay_drop (pond_broker_t *self, relay_t *relay, const char *reason)
{
    pond_end_t end = { .rid = relay->rid, .code = POND_CODE_UNAVAILABLE };
    snprintf (end.reason, sizeof end.reason, "%s", reason);
    zframe_t *body = pond_end_encode (&end);
    s_reply (self->control, relay->peer, POND_END, &body);
    s_relay_cancel (self, relay);
}

//  Replays that peer runs now.
static size_t
s_relays_of (pond_broker_t *self, zframe_t *peer)
{
    size_t count = 0;
    for (relay_t *relay = (relay_t *) zlistx_first (self->relays); relay;
         relay = (relay_t *) zlistx_next (self->relays))
        count += zframe_eq (relay->peer, peer);
    return count;
}

//  CHUNK or END from the store: rewrite rid and pass on to the reader.
static void
s_store_stream (pond_broker_t *self, const char *command, zmsg_t *msg)
{
    zframe_t *body = zmsg_pop (msg);
    char err [POND_ERR_SIZE];
    bool is_chunk = streq (command, POND_CHUNK);
    pond_credit_t chunk;
    pond_end_t end;
    uint64_t brid;
    if (is_chunk ? pond_credit_decode (body, &chunk, err, sizeof err)
                 : pond_end_decode (body, &end, err, sizeof err)) {
        zsys_error ("pond-broker: bad %s from the store: %s", command, err);
        zframe_destroy (&body);
        return;
    }
    zframe_destroy (&body);
    brid = is_chunk ? chunk.rid : end.rid;
    relay_t *relay = s_relay_by_brid (self, brid);
    if (!relay)
        return;    //  reader gone or cancelled
    if (is_chunk) {
        if (relay->credit)
            relay->credit--;
        chunk.rid = relay->rid;
        chunk.chunks = relay->credit;
        body = pond_credit_encode (&chunk);
    }
    else {
        end.rid = relay->rid;
        body = pond_end_encode (&end);
    }
    //  Same frames, new envelope; the events move without copying
    zmsg_t *out = zmsg_new ();
    zmsg_append (out, &(zframe_t *) { zframe_dup (relay->peer) });
    zmsg_addstr (out, command);
    zmsg_append (out, &body);
    zframe_t *event;
    while ((event = zmsg_pop (msg)))
        zmsg_append (out, &event);
    relay->active_at = zclock_mono ();
    if (zmsg_send (&out, self->control)) {
        //  The reader is gone (or cannot take even this): stop the replay
        //  now rather than hold a store snapshot for it
        zmsg_destroy (&out);
        if (is_chunk) {
            s_relay_cancel (self, relay);
            return;
        }
    }
    if (!is_chunk)
        s_relay_remove (self, relay);
}

static zframe_t *s_stats_body (pond_broker_t *self);
static void s_learn_head (pond_broker_t *self);

//  Answer every control peer waiting for STATS. The store answers in
//  order, so a STATS reply that arrives after a request reflects every
//  event acknowledged before that request.
static void
s_answer_stats (pond_broker_t *self)
{
    zframe_t *peer;
    while ((peer = (zframe_t *) zlistx_detach (self->stats_waiters, NULL))) {
        zframe_t *body = s_stats_body (self);
        s_reply (self->control, peer, POND_STATS, &body);
        zframe_destroy (&peer);
    }
}

static void
s_store_message (pond_broker_t *self, zmsg_t *msg)
{
    self->store_seen_at = zclock_mono ();
    if (!self->store_up)
        zsys_info ("pond-broker: the store is reachable");
    self->store_up = true;
    zframe_t *frame = zmsg_pop (msg);
    char *command = frame ? zframe_strdup (frame) : NULL;
    bool whole = command && strlen (command) == zframe_size (frame);
    zframe_destroy (&frame);
    if (!whole) {
        zstr_free (&command);
        zsys_warning ("pond-broker: the store sent a message without a command");
        return;
    }
    if (streq (command, POND_APPENDED))
        s_store_appended (self, msg);
    else if (streq (command, POND_CHUNK) || streq (command, POND_END))
        s_store_stream (self, command, msg);
    else if (streq (command, POND_STATS)) {
        zframe_destroy (&self->store_stats);
        self->store_stats = zmsg_pop (msg);
        s_learn_head (self);
        s_answer_stats (self);
    }
    else if (streq (command, POND_ERROR))
        zsys_warning ("pond-broker: the store refused a request");
    free (command);
}

//  ---------------------------------------------------------------------
//  Control: STATS, REPLAY, CREDIT, CANCEL, PING

static void
s_pack_counter (msgpack_packer *pk, const char *key, uint64_t value)
{
    msgpack_pack_str (pk, strlen (key));
    msgpack_pack_str_body (pk, key, strlen (key));
    msgpack_pack_uint64 (pk, value);
}

//  Events acked per second over the last `seconds` whole seconds.
static uint64_t
s_rate (pond_broker_t *self, size_t seconds)
{
    if (self->samples_taken < 2)
        return 0;
    if (seconds > self->samples_taken - 1)
        seconds = self->samples_taken - 1;
    size_t last = (self->samples_taken - 1) % RATE_SAMPLES;
    size_t first = (self->samples_taken - 1 - seconds) % RATE_SAMPLES;
    return (self->acked_samples [last] - self->acked_samples [first]) / seconds;
}

static zframe_t *
s_stats_body (pond_broker_t *self)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    bool with_store = self->store_stats && self->store_up;
    msgpack_pack_map (&pk, with_store ? 2 : 1);
    msgpack_pack_str (&pk, 6);
    msgpack_pack_str_body (&pk, "broker", 6);
    msgpack_pack_map (&pk, 18);
    counters_t *c = &self->counters;
    s_pack_counter (&pk, "received", c->received);
    s_pack_counter (&pk, "batches", c->batches);
    s_pack_counter (&pk, "acked", c->acked);
    s_pack_counter (&pk, "dups", c->dups);
    s_pack_counter (&pk, "nacked", c->nacked);
    s_pack_counter (&pk, "malformed", c->malformed);
    s_pack_counter (&pk, "published", c->published);
    s_pack_counter (&pk, "pending", self->pending_count);
    s_pack_counter (&pk, "replays", c->replays);
    s_pack_counter (&pk, "forbidden", c->forbidden);
    s_pack_counter (&pk, "too_large", c->too_large);
    s_pack_counter (&pk, "unknown_command", c->unknown_command);
    s_pack_counter (&pk, "conflicts", c->conflicts);
    s_pack_counter (&pk, "head", self->head);
    s_pack_counter (&pk, "acked_per_s_1s", s_rate (self, 1));
    s_pack_counter (&pk, "acked_per_s_10s", s_rate (self, 10));
    s_pack_counter (&pk, "uptime_s", (uint64_t) (zclock_mono () - self->started_at) / 1000);
    msgpack_pack_str (&pk, 8);
    msgpack_pack_str_body (&pk, "store_up", 8);
    if (self->store_up)
        msgpack_pack_true (&pk);
    else
        msgpack_pack_false (&pk);
    if (with_store) {
        msgpack_pack_str (&pk, 5);
        msgpack_pack_str_body (&pk, "store", 5);
        //  The store's own map, as it sent it
        msgpack_sbuffer_write (&sbuf, (const char *) zframe_data (self->store_stats),
                               zframe_size (self->store_stats));
    }
    zframe_t *frame = zframe_new (sbuf.data, sbuf.size);
    msgpack_sbuffer_destroy (&sbuf);
    return frame;
}

//  ERROR {code, reason}, and rid when the refused request's body had one
//  that could be read (a client correlates it as it would an END).
static void
s_control_error_rid (pond_broker_t *self, zframe_t *peer, uint32_t code, zframe_t *body,
                     const char *reason)
{
    pond_nack_t error = { .code = code };
    snprintf (error.reason, sizeof error.reason, "%s", reason);
    pond_value_utf8_sanitize (error.reason);
    pond_credit_t header;
    char ignored [POND_ERR_SIZE];
    if (body && pond_credit_decode (body, &header, ignored, sizeof ignored) == 0) {
        error.has_rid = true;
        error.rid = header.rid;
    }
    zframe_t *reply = pond_nack_encode (&error);
    s_reply (self->control, peer, POND_ERROR, &reply);
    if (code == POND_CODE_BAD_REQUEST)
        self->counters.malformed++;
    else if (code == POND_CODE_NOT_FOUND)
        self->counters.unknown_command++;
    else if (code == POND_CODE_TOO_LARGE)
        self->counters.too_large++;
}

static void
s_control_error (pond_broker_t *self, zframe_t *peer, uint32_t code, const char *reason)
{
    s_control_error_rid (self, peer, code, NULL, reason);
}

static void
s_control_replay (pond_broker_t *self, zframe_t *peer, zmsg_t *msg)
{
    zframe_t *body = zmsg_pop (msg);
    pond_replay_req_t request;
    char err [POND_ERR_SIZE];
    if (pond_replay_req_decode (body, &request, err, sizeof err)) {
        s_control_error_rid (self, peer, POND_CODE_BAD_REQUEST, body, err);
        zframe_destroy (&body);
        return;
    }
    zframe_destroy (&body);
    //  Slots: a few per client, and the last ones only to a client that
    //  holds none, so that one client cannot starve the others (an actor's
    //  catch-up among them)
    size_t total = zlistx_size (self->relays);
    size_t mine = s_relays_of (self, peer);
    char refusal [POND_REASON_MAX] = "";
    if (mine >= REPLAYS_PER_CLIENT)
        snprintf (refusal, sizeof refusal,
                  "this connection runs %d replays already; wait "
                  "for one to end, then retry",
                  REPLAYS_PER_CLIENT);
    else if (total >= REPLAYS_MAX || (total >= REPLAYS_SHARED && mine > 0))
        snprintf (refusal, sizeof refusal, "too many replays at once; retry in a moment");
    relay_t *relay = (relay_t *) zmalloc (sizeof (relay_t));
    relay->brid = self->next_brid++;
    relay->rid = request.rid;
    relay->peer = zframe_dup (peer);
    relay->active_at = zclock_mono ();
    zlistx_add_end (self->relays, relay);
    if (*refusal) {
        s_relay_end (self, relay, POND_CODE_UNAVAILABLE, refusal);
        return;
    }
    self->counters.replays++;
    //  The store sends at most REPLAY_WINDOW chunks ahead of the reader,
    //  whatever it grants: what a reader that stops reading holds here is
    //  bounded in bytes
    relay->credit = request.credit < REPLAY_WINDOW ? request.credit : REPLAY_WINDOW;
    request.credit = relay->credit;
    request.rid = relay->brid;
    zmsg_t *out = zmsg_new ();
    zmsg_addstr (out, POND_REPLAY);
    body = pond_replay_req_encode (&request);
    zmsg_append (out, &body);
    if (!self->store_up || !self->store_linked || zmsg_send (&out, self->store)) {
        zmsg_destroy (&out);
        s_relay_end (self, relay, POND_CODE_UNAVAILABLE,
                     "the store is not reachable; retry in a moment");
    }
}

//  CREDIT or CANCEL: find the reader's replay and pass it on with our rid.
static void
s_control_credit (pond_broker_t *self, const char *command, zframe_t *peer, zmsg_t *msg)
{
    zframe_t *body = zmsg_pop (msg);
    pond_credit_t credit;
    char err [POND_ERR_SIZE];
    if (pond_credit_decode (body, &credit, err, sizeof err)) {
        s_control_error_rid (self, peer, POND_CODE_BAD_REQUEST, body, err);
        zframe_destroy (&body);
        return;
    }
    zframe_destroy (&body);
    relay_t *relay = s_relay_by_reader (self, peer, credit.rid);
    if (!relay)
        return;    //  finished already: nothing to do
    relay->active_at = zclock_mono ();
    if (streq (command, POND_CREDIT)) {
        //  Keep at most REPLAY_WINDOW chunks of credit; pass on what is new
        uint32_t room = REPLAY_WINDOW - relay->credit;
        credit.chunks = credit.chunks < room ? credit.chunks : room;
        if (credit.chunks == 0)
            return;
        relay->credit += credit.chunks;
    }
    credit.rid = relay->brid;
    zmsg_t *out = zmsg_new ();
    zmsg_addstr (out, command);
    body = pond_credit_encode (&credit);
    zmsg_append (out, &body);
    if (!self->store_linked || zmsg_send (&out, self->store)) {
        zmsg_destroy (&out);
        s_relay_end (self, relay, POND_CODE_UNAVAILABLE, "the store went away");
    }
}

static void
s_control_message (pond_broker_t *self, zmsg_t *msg)
{
    zframe_t *peer = zmsg_pop (msg);
    const pond_key_t *key = NULL;
    char reason [POND_REASON_MAX];
    //  The command frame says who sent it; read that before it goes
    bool refused = peer && s_sender (self, zmsg_first (msg), &key, reason, sizeof reason);
    //  The whole frame is the command: "STATS\0junk" is not STATS
    zframe_t *frame = zmsg_pop (msg);
    char *command = frame ? zframe_strdup (frame) : NULL;
    bool whole = command && strlen (command) == zframe_size (frame);
    zframe_destroy (&frame);
    if (!peer || !command) {
        if (peer)
            s_control_error (self, peer, POND_CODE_BAD_REQUEST, "empty message");
    }
    else if (refused)
        s_control_error (self, peer, POND_CODE_FORBIDDEN, reason);
    else if (!whole)
        s_control_error (self, peer, POND_CODE_NOT_FOUND,
                         "unknown command (it holds a NUL byte); the control socket takes "
                         "STATS, REPLAY, CREDIT, CANCEL, PING, COMMAND or COMMAND_STATUS");
    else if (key && !pond_key_may_control (key, command, reason, sizeof reason)) {
        char cause [48];
        snprintf (cause, sizeof cause, "control %.32s", command);
        s_forbidden (self, pond_key_name (key), cause, reason);
        s_control_error (self, peer, POND_CODE_FORBIDDEN, reason);
    }
    else if (streq (command, POND_STATS)) {
        //  Fresh figures from the store when it is there, else ours alone.
        //  Asked even before the store was first seen: just after start the
        //  link is up before its first answer.
        if (self->store_linked && zstr_send (self->store, POND_STATS) == 0) {
            if (zlistx_size (self->stats_waiters) == 0)
                self->stats_asked_at = zclock_mono ();
            zlistx_add_end (self->stats_waiters, zframe_dup (peer));
        }
        else {
            zframe_t *body = s_stats_body (self);
            s_reply (self->control, peer, POND_STATS, &body);
        }
    }
    else if (streq (command, POND_REPLAY))
        s_control_replay (self, peer, msg);
    else if (streq (command, POND_CREDIT) || streq (command, POND_CANCEL))
        s_control_credit (self, command, peer, msg);
    else if (streq (command, POND_PING))
        s_pong (self, self->control, peer, zmsg_size (msg) > 0);
    else if (streq (command, POND_COMMAND) || streq (command, POND_COMMAND_STATUS)) {
        //  Answered at once from the commands' table; the actor works apart
        size_t frames = zmsg_size (msg);
        zframe_t *body = zmsg_pop (msg);
        const char *reply;
        uint32_t code;
        zframe_t *out = streq (command, POND_COMMAND)
                          ? pond_broker_commands_submit (self->commands, body, frames, &reply,
                                                         &code)
                          : pond_broker_commands_status (self->commands, body, frames, &reply,
                                                         &code);
        s_reply (self->control, peer, reply, &out);
        zframe_destroy (&body);
        if (code == POND_CODE_BAD_REQUEST)
            self->counters.malformed++;
    }
    else
        s_control_error (self, peer, POND_CODE_NOT_FOUND,
                         "unknown command; the control socket takes STATS, REPLAY, CREDIT, "
                         "CANCEL, PING, COMMAND or COMMAND_STATUS");
    zframe_destroy (&peer);
    zstr_free (&command);
}

//  ---------------------------------------------------------------------
//  Timers: store liveness, batch timeouts, idle replays, heartbeat

//  $HEARTBEAT {head, ts} to every subscriber of it
static void
s_heartbeat_send (pond_broker_t *self)
{
    pond_heartbeat_t beat = { .head = self->head, .ts = (uint64_t) zclock_time () * 1000 };
    zframe_t *body = pond_heartbeat_encode (&beat);
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, POND_HEARTBEAT);
    zmsg_append (msg, &body);
    zmsg_send (&msg, self->pub);
    zmsg_destroy (&msg);
}

static void
s_timers (pond_broker_t *self)
{
    int64_t now = zclock_mono ();
    //  Poll faster while the store is away, to resume soon after it returns
    //  PING for liveness; STATS (whose body grows with the names in the
    //  log) now and then for the head, and while the store is away
    if (now - self->store_polled_at >= (self->store_up ? STORE_POLL_MS : 100)) {
        bool stats = !self->store_up || now - self->stats_polled_at >= STATS_POLL_MS;
        if (self->store_linked)
            zstr_send (self->store, stats ? POND_STATS : POND_PING);
        self->store_polled_at = now;
        if (stats)
            self->stats_polled_at = now;
    }
    if (zlistx_size (self->stats_waiters) && now - self->stats_asked_at > 1000) {
        zframe_destroy (&self->store_stats);    //  too old to show
        s_answer_stats (self);
    }
    if (self->store_up && now - self->store_seen_at > STORE_DEAD_MS) {
        zsys_warning (
            "pond-broker: the store is not answering; publishers get 503 until it is back");
        self->store_up = false;
        s_pending_fail (self, "the store is not answering; retry after retry_ms");
        relay_t *relay;
        while ((relay = (relay_t *) zlistx_first (self->relays)))
            s_relay_end (self, relay, POND_CODE_UNAVAILABLE, "the store went away");
    }
    for (int i = 0; i < BATCHES_MAX; i++) {
        batch_t *batch = &self->batches [i];
        if (batch->bid && now - batch->sent_at > self->config.batch_timeout_ms)
            s_batch_fail (self, batch, POND_CODE_UNAVAILABLE,
                          "the store did not answer in time; resend the same event");
    }
    //  A reader that has taken all its credit and grants no more is stuck
    //  or gone: end its replay (its END may reach no one) and free its
    //  snapshot at the store. A replay with credit waits for the store.
    //  (Removing moves the list's cursor: start over after each.)
    relay_t *relay = (relay_t *) zlistx_first (self->relays);
    while (relay) {
        if (relay->credit == 0 && now - relay->active_at > REPLAY_IDLE_MS) {
            char reason [POND_REASON_MAX];
            snprintf (reason, sizeof reason,
                      "no credit granted for %d s; replay dropped "
                      "(grant credit as you take chunks)",
                      REPLAY_IDLE_MS / 1000);
            s_relay_drop (self, relay, reason);
            relay = (relay_t *) zlistx_first (self->relays);
        }
        else
            relay = (relay_t *) zlistx_next (self->relays);
    }
    if (now - self->heartbeat_at >= HEARTBEAT_MS) {
        s_heartbeat_send (self);
        self->heartbeat_at = now;
        self->acked_samples [self->samples_taken++ % RATE_SAMPLES] = self->counters.acked;
    }
    else if (self->welcome_due && now - self->welcomed_at >= WELCOME_MS) {
        //  A new subscriber hears at once that it is live (at most one
        //  extra heartbeat per WELCOME_MS, however many subscribe)
        s_heartbeat_send (self);
        self->welcomed_at = now;
        self->welcome_due = false;
    }
}

//  May topic (a subscription's prefix) be applied? Empty (everything), a
//  prefix of an event name, or of $HEARTBEAT: nothing else can match what
//  the broker publishes, so nothing else is worth memory.
static bool
s_topic_valid (const uint8_t *topic, size_t size)
{
    if (size > POND_NAME_MAX)
        return false;
    if (size && topic [0] == '$')
        return size <= strlen (POND_HEARTBEAT) && memcmp (topic, POND_HEARTBEAT, size) == 0;
    for (size_t i = 0; i < size; i++)
        if (!(isupper (topic [i]) || (i > 0 && (isdigit (topic [i]) || topic [i] == '_'))))
            return false;
    return true;
}

//  Subscriptions arrive here (the pub socket is XPUB_MANUAL), one message
//  each, and take effect only once applied, on the pipe of the message
//  just read: the broker refuses what no event can match, and applies
//  SUBSCRIPTIONS_MAX at most. The count is an estimate (libzmq reports
//  the subscriptions of a subscriber that leaves, refused ones included).
static void
s_pub_subscriptions (pond_broker_t *self)
{
    void *handle = zsock_resolve (self->pub);
    for (int i = 0; i < DRAIN_MAX; i++) {
        zmq_msg_t msg;
        zmq_msg_init (&msg);
        if (zmq_msg_recv (&msg, handle, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close (&msg);
            if (zmq_errno () == EINTR)
                continue;
            break;
        }
        const uint8_t *data = (const uint8_t *) zmq_msg_data (&msg);
        size_t size = zmq_msg_size (&msg);
        if (size >= 1 && data [0] == 1) {
            if (s_topic_valid (data + 1, size - 1) && self->subscriptions < SUBSCRIPTIONS_MAX) {
                zmq_setsockopt (handle, ZMQ_SUBSCRIBE, data + 1, size - 1);
                self->subscriptions++;
                //  A subscription that takes heartbeats gets one now: from
                //  then on its subscriber is live and sees every event
                if (size - 1 <= strlen (POND_HEARTBEAT)
                    && memcmp (data + 1, POND_HEARTBEAT, size - 1) == 0)
                    self->welcome_due = true;
            }
            else if (!self->subscriptions_warned) {
                zsys_warning ("pond-broker: refused a subscription (%s); a subscription is "
                              "an event name prefix or $HEARTBEAT, %d at most in all "
                              "(logged once)",
                              self->subscriptions < SUBSCRIPTIONS_MAX ? "not a name prefix"
                                                                      : "too many",
                              SUBSCRIPTIONS_MAX);
                self->subscriptions_warned = true;
            }
        }
        else if (size >= 1 && data [0] == 0) {
            zmq_setsockopt (handle, ZMQ_UNSUBSCRIBE, data + 1, size - 1);
            if (self->subscriptions)
                self->subscriptions--;
        }
        zmq_msg_close (&msg);
    }
}

//  The store link's connection came up or went: send to the store only
//  while it is up. On a new connection, ask at once, so we know the store
//  is there before the next publish.
static void
s_store_link_events (pond_broker_t *self)
{
    zmsg_t *msg;
    while ((msg = zmsg_recv (self->store_monitor))) {
        zframe_t *frame = zmsg_first (msg);
        uint16_t event = 0;
        if (frame && zframe_size (frame) >= sizeof event)
            memcpy (&event, zframe_data (frame), sizeof event);
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            self->store_linked = true;
            zstr_send (self->store, POND_STATS);
            self->store_polled_at = zclock_mono ();
        }
        else if (event == ZMQ_EVENT_DISCONNECTED)
            self->store_linked = false;
        zmsg_destroy (&msg);
    }
}

//  Learn the head from the store's stats, so heartbeats are right even
//  before the first publish.
static void
s_learn_head (pond_broker_t *self)
{
    if (!self->store_stats)
        return;
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    char err [64];
    if (pond_value_check (zframe_data (self->store_stats), zframe_size (self->store_stats), NULL,
                          err, sizeof err)
            == 0
        && msgpack_unpack_next (&unpacked, (const char *) zframe_data (self->store_stats),
                                zframe_size (self->store_stats), NULL)
               == MSGPACK_UNPACK_SUCCESS
        && unpacked.data.type == MSGPACK_OBJECT_MAP) {
        msgpack_object_map *map = &unpacked.data.via.map;
        for (uint32_t i = 0; i < map->size; i++)
            if (map->ptr [i].key.type == MSGPACK_OBJECT_STR && map->ptr [i].key.via.str.size == 4
                && memcmp (map->ptr [i].key.via.str.ptr, "head", 4) == 0
                && map->ptr [i].val.type == MSGPACK_OBJECT_POSITIVE_INTEGER
                && map->ptr [i].val.via.u64 > self->head)
                self->head = map->ptr [i].val.via.u64;
    }
    msgpack_unpacked_destroy (&unpacked);
}

//  ---------------------------------------------------------------------
//  Main loop

void
pond_broker_watch_store (pond_broker_t *self, zsock_t *sock)
{
    assert (self);
    self->store_watch = sock;
}

int
pond_broker_run (pond_broker_t *self)
{
    zsys_info ("pond-broker: ingest %s, pub %s, control %s, store %s", self->endpoints [0],
               self->endpoints [1], self->endpoints [2], self->config.store);
    if (self->secure)
        zsys_info ("pond-broker: CURVE on ingest, pub and control; keys from %s",
                   self->config.keys);
    else
        zsys_info ("pond-broker: local mode: no keys (anyone who reaches these endpoints "
                   "may publish; see --keys)");
    self->store_polled_at = zclock_mono ();
    //  One zmq_poll per turn; then each ready socket is drained without
    //  blocking (receive timeouts are 0), a bounded number of messages each
    zmq_pollitem_t items [] = {
        { zsock_resolve (self->store), 0, ZMQ_POLLIN, 0 },
        { zsock_resolve (self->ingest), 0, ZMQ_POLLIN, 0 },
        { zsock_resolve (self->control), 0, ZMQ_POLLIN, 0 },
        { zsock_resolve (self->pub), 0, ZMQ_POLLIN, 0 },
        { zsock_resolve (self->store_monitor), 0, ZMQ_POLLIN, 0 },
        { zsock_resolve (pond_broker_commands_sock (self->commands)), 0, ZMQ_POLLIN, 0 },
        { self->store_watch ? zsock_resolve (self->store_watch) : NULL, 0, ZMQ_POLLIN, 0 },
    };
    int count = self->store_watch ? 7 : 6;
    int rc = 0;
    while (!zsys_interrupted) {
        int timeout = self->pending_count && s_free_batch (self) ? 0 : 50;
        if (zmq_poll (items, count, timeout) < 0) {
            if (zmq_errno () == ETERM)
                break;    //  context gone
            continue;     //  EINTR: the loop condition sees SIGTERM
        }
        //  The store in this process stopped serving: nothing more may be
        //  ACKed; exit so that a supervisor restarts broker and store
        if (count == 7 && (items [6].revents & ZMQ_POLLIN)) {
            char *message = zstr_recv (self->store_watch);
            zsys_error ("pond-broker: the store in this process stopped (%s): exiting without "
                        "answering the %zu events pending; restart pond-broker (producers "
                        "resend them)",
                        message ? message : "no reason", self->pending_count);
            zstr_free (&message);
            rc = -1;
            break;
        }
        if (items [4].revents & ZMQ_POLLIN)
            s_store_link_events (self);
        if (items [5].revents & ZMQ_POLLIN)
            pond_broker_commands_update (self->commands);
        //  Store first: its answers free batch slots for the next APPEND
        zmsg_t *msg;
        if (items [0].revents & ZMQ_POLLIN)
            for (int i = 0; i < DRAIN_MAX && (msg = zmsg_recv (self->store)); i++) {
                s_store_message (self, msg);
                zmsg_destroy (&msg);
            }
        //  Drain what producers have queued, then send it as one batch
        if (items [1].revents & ZMQ_POLLIN) {
            //  About an APPEND's worth of events per turn, in messages
            //  of one event or batches
            int events = 0, got;
            while (events < POND_APPEND_MAX && (got = s_ingest_recv (self)) > 0)
                events += got;
        }
        if (self->pending_count)
            s_flush_pending (self);
        if (items [2].revents & ZMQ_POLLIN)
            for (int i = 0; i < DRAIN_MAX && (msg = zmsg_recv (self->control)); i++) {
                s_control_message (self, msg);
                zmsg_destroy (&msg);
            }
        //  Subscriptions apply once read: read them as they come
        if (items [3].revents & ZMQ_POLLIN)
            s_pub_subscriptions (self);
        s_timers (self);
    }
    zsys_info ("pond-broker: stopping (%" PRIu64 " acked, %" PRIu64 " published)",
               self->counters.acked, self->counters.published);
    return rc;
}
