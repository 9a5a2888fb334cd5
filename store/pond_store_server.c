/*  pond_store_server: the Store link of PROTOCOL.md on one ROUTER socket.

        store-link = *( B:APPEND S:APPENDED
                      / B:REPLAY replay-stream / B:CREDIT / B:CANCEL
                      / B:STATS S:STATS
                      / B:PING S:PONG )

    This is the loop that ties three modules together. Each turn it reads
    every message already queued (up to a cap) without blocking and
    dispatches it: APPENDs to the group-commit writer
    (pond_store_writer: prepared as they come, committed a group at a
    time by a writer thread, a lone APPEND by the loop itself), REPLAY,
    CREDIT and CANCEL to the replay streamer (pond_store_replays), STATS
    and PING answered here. Before a STATS or REPLAY the loop has the
    writer write every APPEND read so far (so these see every APPEND sent
    before them, and nothing is prepared and not committed). After the
    input, the streamer gives every replay that has credit at most one
    CHUNK, so a long replay never holds appends back. It polls the
    writer's socket only while the writer is busy.

    Nothing is sent blocking (pond_store_link): a reply the peer cannot
    take now is dropped and counted (an APPENDED: the broker resends, and
    gets the same seq back as a dup), a CHUNK is kept and retried next
    turn.

    Signals: only the main thread takes them (the writer and the server
    actor block them).
*/
#include "pond_store_server.h"
#include "pond_store_link.h"
#include "pond_store_replays.h"
#include "pond_store_writer.h"
#include "pond_proto.h"
#include "pond_keys.h"
#include "pond_thread.h"

#include <msgpack.h>

#define DRAIN_MAX         512    //  messages read per loop turn at most
#define SOCKET_SNDHWM     10000
#define SOCKET_RCVHWM     1000
#define SOCKET_MAXMSGSIZE (4 * 1024 * 1024)    //  larger frames: peer disconnected
#define LINGER_AT_EXIT    1000                 //  msecs to send the last answers whole
#define STATS_NAMES_MAX   1000                 //  names listed in STATS (those with most events)

struct _pond_store_server_t {
    pond_store_t *store;
    zsock_t *router;
    char *endpoint;
    pond_store_link_t *link;    //  answers, counters, log-once
    int64_t started;
    pond_store_writer_t *writer;      //  the group-commit writer
    pond_store_replays_t *replays;    //  the replay streamer
    bool in_process;                  //  inproc endpoint: no keys on the link
};

//  ---------------------------------------------------------------------
//  Helpers

//  Printable copy of a command frame, for logs and error reasons.
static void
s_printable (zframe_t *frame, char *text, size_t size)
{
    size_t len = frame ? zframe_size (frame) : 0;
    const uint8_t *data = frame ? zframe_data (frame) : NULL;
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

//  ---------------------------------------------------------------------
//  Constructor and destructor

pond_store_server_t *
pond_store_server_new (pond_store_t *store, const char *endpoint)
{
    assert (store);
    assert (endpoint);
    pond_store_server_t *self = (pond_store_server_t *) zmalloc (sizeof (pond_store_server_t));
    if (!self)
        return NULL;
    self->store = store;
    self->started = zclock_mono ();
    self->router = zsock_new (ZMQ_ROUTER);
    self->link = self->router ? pond_store_link_new (self->router) : NULL;
    self->replays = self->link ? pond_store_replays_new (store, self->link) : NULL;
    self->writer = self->link ? pond_store_writer_new (store, self->link) : NULL;
    if (!self->router || !self->link || !self->replays || !self->writer) {
        zsys_error ("store: out of memory");
        pond_store_server_destroy (&self);
        return NULL;
    }
    zsock_set_router_mandatory (self->router, 1);
    zsock_set_sndhwm (self->router, SOCKET_SNDHWM);
    zsock_set_rcvhwm (self->router, SOCKET_RCVHWM);
    zsock_set_maxmsgsize (self->router, SOCKET_MAXMSGSIZE);
    zsock_set_rcvtimeo (self->router, 0);
    zsock_set_linger (self->router, 0);
    //  CURVE server with the store's key when the process uses keys; an
    //  inproc link never leaves the process (pond_store_embedded), so it
    //  has no keys to check and no sender to refuse
    self->in_process = strncmp (endpoint, "inproc://", 9) == 0;
    if (!self->in_process && pond_keys_server (self->router)) {
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

void
pond_store_server_destroy (pond_store_server_t **self_p)
{
    if (self_p && *self_p) {
        pond_store_server_t *self = *self_p;
        pond_store_writer_destroy (&self->writer);
        pond_store_replays_destroy (&self->replays);    //  before the store goes
        //  The answers queued last go out whole, or not at all: a reply
        //  cut off mid-message when the socket closes would reach the
        //  broker as the head of a message whose tail never comes
        if (self->router)
            zsock_set_linger (self->router, LINGER_AT_EXIT);
        zsock_destroy (&self->router);
        pond_store_link_destroy (&self->link);
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
    pond_store_link_set_verbose (self->link, verbose);
}

void
pond_store_server_set_replay_timeout (pond_store_server_t *self, int msecs)
{
    pond_store_replays_set_timeout (self->replays, msecs);
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
    msgpack_pack_map (&pk, names ? zlistx_size (names) : 0);
    uint64_t listed = 0;
    for (const char *name = names ? (const char *) zlistx_first (names) : NULL; name;
         name = (const char *) zlistx_next (names)) {
        uint64_t count = pond_store_name_count (self->store, name);
        s_pack_uint (&pk, name, count);
        listed += count;
    }
    s_pack_uint (&pk, "names_total", names_total);
    s_pack_uint (&pk, "names_other", stats.events > listed ? stats.events - listed : 0);
    s_pack_uint (&pk, "batches", stats.batches);
    s_pack_uint (&pk, "appended", stats.appended);
    s_pack_uint (&pk, "dups", stats.dups);
    s_pack_uint (&pk, "write_errors", stats.write_errors);
    s_pack_uint (&pk, "replays", pond_store_replays_started (self->replays));
    s_pack_uint (&pk, "uptime_s", (uint64_t) (zclock_mono () - self->started) / 1000);
    s_pack_uint (&pk, "replays_active", pond_store_replays_active (self->replays));
    s_pack_uint (&pk, "malformed", pond_store_link_malformed (self->link));
    s_pack_uint (&pk, "conflicts", pond_store_writer_conflicts (self->writer));
    s_pack_uint (&pk, "send_failures", pond_store_link_send_failures (self->link));
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
    if (self->in_process || !pond_keys_active ())
        return false;
    const pond_key_t *key = pond_keys_sender (command);
    char reason [256];
    if (key && pond_key_may_store (key, reason, sizeof reason))
        return false;
    if (!key)
        snprintf (reason, sizeof reason,
                  "the sender's key is no longer in the store's keys "
                  "directory");
    pond_store_link_refuse (self->link, routing_id, POND_CODE_FORBIDDEN, "forbidden", "%s", reason);
    return true;
}

static void
s_handle_message (pond_store_server_t *self, zmsg_t *msg)
{
    zframe_t *routing_id = zmsg_pop (msg);
    zframe_t *command = zmsg_pop (msg);
    if (!routing_id || !command) {
        if (routing_id)
            pond_store_link_refuse (self->link, routing_id, POND_CODE_BAD_REQUEST, "empty",
                                    "empty message: the first frame must be a command");
    }
    else if (s_forbidden (self, routing_id, command))
        ;    //  refused and logged
    else if (pond_proto_is (command, POND_APPEND))
        pond_store_writer_handle_append (self->writer, routing_id, msg);
    else if (pond_proto_is (command, POND_CREDIT) || pond_proto_is (command, POND_CANCEL))
        pond_store_replays_handle_credit (self->replays, routing_id, msg,
                                          pond_proto_is (command, POND_CANCEL));
    else if (pond_proto_is (command, POND_REPLAY)) {
        //  The replay sees every APPEND sent before it
        pond_store_writer_commit (self->writer);
        pond_store_replays_handle_replay (self->replays, routing_id, msg);
    }
    else if (pond_proto_is (command, POND_STATS) || pond_proto_is (command, POND_PING)) {
        bool stats = pond_proto_is (command, POND_STATS);
        if (zmsg_size (msg))
            pond_store_link_refuse (self->link, routing_id, POND_CODE_BAD_REQUEST,
                                    stats ? "STATS/frames" : "PING/frames", "%s takes no body",
                                    stats ? POND_STATS : POND_PING);
        else {
            if (stats)
                pond_store_writer_commit (self->writer);
            zmsg_t *reply = pond_store_link_message (routing_id, stats ? POND_STATS : POND_PONG,
                                                     stats ? s_stats_body (self) : NULL);
            if (reply)
                pond_store_link_reply (self->link, &reply);
        }
    }
    else {
        char text [160];
        s_printable (command, text, sizeof text);
        pond_store_link_refuse (self->link, routing_id, POND_CODE_NOT_FOUND, "command",
                                "unknown command '%s'", text);
    }
    zframe_destroy (&routing_id);
    zframe_destroy (&command);
    zmsg_destroy (&msg);
}

//  Read every message already queued, up to DRAIN_MAX, then hand the
//  group they made to the writer (pond_store_writer_hand_over).
static void
s_drain (pond_store_server_t *self)
{
    int read = 0;
    for (; read < DRAIN_MAX && !pond_store_writer_lost (self->writer); read++) {
        zmsg_t *msg = zmsg_recv (self->router);    //  rcvtimeo 0: never waits
        if (!msg)
            break;
        s_handle_message (self, msg);
    }
    pond_store_writer_hand_over (self->writer, (size_t) read);
}

int
pond_store_server_run (pond_store_server_t *self, zsock_t *pipe)
{
    //  Poll the writer only while it writes: every polled socket costs
    //  system calls on every turn, and one producer waiting for each ACK
    //  never needs it (a lone APPEND is written by the loop itself)
    zmq_pollitem_t items [3] = {
        { zsock_resolve (self->router), 0, ZMQ_POLLIN, 0 },
        { pipe ? zsock_resolve (pipe) : pond_store_writer_handle (self->writer), 0, ZMQ_POLLIN, 0 },
        { pond_store_writer_handle (self->writer), 0, ZMQ_POLLIN, 0 },
    };
    int fixed = pipe ? 2 : 1;
    //  An actor stops on its owner's $TERM only: the owner's thread takes
    //  the signals and decides the order of the shutdown
    while ((pipe || !zsys_interrupted) && !pond_store_writer_lost (self->writer)) {
        int count = fixed + (pond_store_writer_busy (self->writer) ? 1 : 0);
        if (zmq_poll (items, count, pond_store_replays_timeout (self->replays)) == -1) {
            if (zmq_errno () == ETERM)
                break;    //  context gone
            continue;     //  EINTR: the loop condition sees SIGTERM
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
        pond_store_writer_collect (self->writer);
        s_drain (self);
        pond_store_replays_serve (self->replays);
    }
    pond_store_writer_wait (self->writer);    //  answer what is being written
    return pond_store_writer_lost (self->writer) ? -1 : 0;
}

void
pond_store_server_actor (zsock_t *pipe, void *server)
{
    pond_thread_block_signals (NULL);
    pond_thread_name ("store-link");
    zsock_signal (pipe, 0);
    if (pond_store_server_run ((pond_store_server_t *) server, pipe) == 0)
        return;    //  $TERM, or the context is gone
    //  The writer is lost: the owner must stop answering (it polls the
    //  pipe); the actor stays until its $TERM, as zactor_destroy expects
    zstr_send (pipe, POND_STORE_SERVER_LOST);
    while (true) {
        char *command = zstr_recv (pipe);
        bool term = !command || streq (command, "$TERM");
        zstr_free (&command);
        if (term)
            break;
    }
}
