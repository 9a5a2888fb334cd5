/*  pond_actor: the runtime every actor shares. See pond_actor.h. This
    file: applying events in batches, timers and the core loop; emitting
    is in pond_actor_emit.c, catch-up, live events and rebuild in
    pond_actor_catchup.c, the query socket in pond_actor_query.c, --verify
    in pond_actor_verify.c, the command line in pond_actor_main.c, the
    state they share in pond_actor_internal.h.

    One thread, one poller over two sockets: the SUB to the broker's pub
    socket (every event, so that any gap in the global seq shows) and the
    actor's query ROUTER. A catch-up replay, when one runs, is pumped
    between the two, so queries are answered while the actor catches up.

    The position is the seq of the last event the actor has dealt with:
    applied (then it is written with the event's changes, in one batch), or
    skipped because the actor does not apply that name (then it moves in
    memory only and is written lazily, see pond_actor_priv_persist). How
    events reach the view, exactly:

    - Catch-up: REPLAY names order "seq" from_seq = position + 1 (packed
      chunks: one frame per CHUNK). Events with seq > position are applied
      in batches: one begin, up to CATCHUP_BATCH applies or
      CATCHUP_BATCH_BYTES of staged documents (each apply sees the ones
      before, staged; a document changed by many events of the batch is
      written once), one commit with the position of the last;
      every pump turn ends with a commit, so queries between turns see
      the view as far as it got. Emits of a batch are queued and sent
      pipelined before its commit; a refused event or a failed emit rolls
      the whole batch back. At END, position = max (position, END head):
      the replay saw every event of our names up to head. Live events
      that arrive meanwhile are buffered (at most BUFFER_MAX; beyond, the
      buffer is dropped and the actor catches up again when this replay
      ends), then drained: seq <= position is dropped, position + 1 is
      applied, anything beyond is a gap and starts another catch-up.
    - Live: seq <= position is dropped (a double), position + 1 is applied,
      beyond is a gap: catch up, then continue. Each wake-up drains what
      the SUB socket holds (at most LIVE_ROUND) as one batch, written in
      one commit before any query is answered; emits of the round go
      pipelined before it, as in a catch-up batch.
    - Silence: a heartbeat whose head is beyond the position while no live
      event came for BEHIND_MS (the last events were lost), or no heartbeat
      for SILENCE_MS (the broker is away: catch up when heartbeats return).
*/
#include "pond_actor_internal.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

//  ---------------------------------------------------------------------
//  The API actors call

pond_reader_t *
pond_actor_replay (pond_actor_t *self, const pond_replay_req_t *request)
{
    assert (self);
    assert (request);
    return pond_reader_new (self->eps.control, request);
}

//  Send [peer, command, body] on the query socket; takes ownership of body.
void
pond_actor_priv_send (pond_actor_t *self, zframe_t *peer, const char *command, zframe_t **body_p)
{
    if (!self->query || !peer) {
        zframe_destroy (body_p);
        return;
    }
    zmsg_t *msg = zmsg_new ();
    zmsg_append (msg, &(zframe_t *) { zframe_dup (peer) });
    zmsg_addstr (msg, command);
    if (body_p && *body_p)
        zmsg_append (msg, body_p);
    zmsg_send (&msg, self->query);
}

void
pond_actor_priv_send_progress (pond_actor_t *self, zframe_t *peer, uint64_t done, uint64_t total,
                               const uint8_t *id)
{
    pond_progress_t progress = { .done = done, .total = total, .has_id = id != NULL };
    if (id)
        memcpy (progress.id, id, POND_ID_SIZE);
    zframe_t *body = pond_progress_encode (&progress);
    pond_actor_priv_send (self, peer, POND_PROGRESS, &body);
}

void
pond_actor_priv_command_reply (pond_actor_t *self, zframe_t *peer, const char *text, int code,
                               const char *reason, const uint8_t *id)
{
    if (!self->query || !peer)
        return;
    zmsg_t *msg = zmsg_new ();
    zmsg_append (msg, &(zframe_t *) { zframe_dup (peer) });
    if (text) {
        zmsg_addstr (msg, POND_RESULT);
        zmsg_addmem (msg, text, strlen (text));
        if (id)
            zmsg_addmem (msg, id, POND_ID_SIZE);
    }
    else {
        zmsg_addstr (msg, POND_ERROR);
        zframe_t *body = pond_nack_new (id, (uint32_t) code, 0, "%s", reason);
        zmsg_append (msg, &body);
    }
    zmsg_send (&msg, self->query);
}

void
pond_actor_progress (pond_actor_t *self, uint64_t done, uint64_t total)
{
    assert (self);
    if (self->requester)
        pond_actor_priv_send_progress (self, self->requester, done, total,
                                       self->command_has_id ? self->command_id : NULL);
}

const uint8_t *
pond_actor_command_id (pond_actor_t *self)
{
    assert (self);
    return self->requester && self->command_has_id ? self->command_id : NULL;
}

void
pond_actor_set_error (pond_actor_t *self, int code, const char *format, ...)
{
    assert (self);
    self->error_code = code;
    va_list args;
    va_start (args, format);
    vsnprintf (self->error_reason, sizeof self->error_reason, format, args);
    va_end (args);
}

const char *
pond_actor_name (pond_actor_t *self)
{
    assert (self);
    return self->name;
}

bool
pond_actor_live (pond_actor_t *self)
{
    assert (self);
    return self->live;
}

//  ---------------------------------------------------------------------
//  Applying events

//  True if the actor applies events of this name.
static bool
s_wanted (pond_actor_t *self, const char *name)
{
    for (size_t i = 0; i < self->names_count; i++)
        if (streq (self->spec->names [i], name))
            return true;
    return false;
}

//  Deal with the event that comes right after the position: apply it in
//  one atomic write with its seq if it is one of ours, else just move the
//  position. Returns 0, or -1 if the actor cannot go on (self->failed).
int
pond_actor_priv_apply (pond_actor_t *self, const pond_event_t *event)
{
    uint64_t seq = pond_event_seq (event);
    if (s_wanted (self, pond_event_name (event))) {
        if (!self->batching)
            pond_view_begin (self->view);
        if (self->spec->apply (self, self->view, event, self->spec->state)) {
            pond_view_rollback (self->view);
            if (self->batching) {
                //  The whole batch goes, its emits unsent: back to what
                //  the view holds
                self->position = self->batch_from;
                self->batching = false;
                if (self->deferred)
                    zlistx_purge (self->deferred);
            }
            if (zsys_interrupted)
                zsys_info ("%s: interrupted while applying seq %" PRIu64 "; rolled back, "
                           "it is applied again on start",
                           self->name, seq);
            else
                zsys_error ("%s: the actor refused event seq %" PRIu64 " (%s for %s); "
                            "stopping: a view that cannot apply the log is a bug to fix",
                            self->name, seq, pond_event_name (event), pond_event_entity (event));
            self->failed = !zsys_interrupted;
            return -1;
        }
        if (self->batching)
            self->batch_events++;
        else {
            if (pond_view_commit (self->view, seq)) {
                zsys_error ("%s: cannot write event seq %" PRIu64 " to the view; stopping",
                            self->name, seq);
                self->failed = true;
                return -1;
            }
            self->persisted_at = zclock_mono ();
        }
        self->applied++;
        if (self->verbose)
            zsys_info ("%s: applied seq %" PRIu64 " %s for %s", self->name, seq,
                       pond_event_name (event), pond_event_entity (event));
    }
    self->position = seq;
    return 0;
}

//  Catch-up applies events in batches: one view write (changes and
//  position together, atomic as for one event) per CATCHUP_BATCH events
//  or per pump turn, instead of one per event. A refused event rolls the
//  whole batch back; the restarted actor applies it again from the
//  position the view holds (emits are idempotent).
void
pond_actor_priv_batch_begin (pond_actor_t *self)
{
    if (self->batching || self->failed)
        return;
    pond_view_begin (self->view);
    self->batching = true;
    self->batch_from = self->position;
    self->batch_events = 0;
}

//  Write the batch, if one is open. Returns 0, or -1 (self->failed).
int
pond_actor_priv_batch_commit (pond_actor_t *self)
{
    if (!self->batching)
        return 0;
    self->batching = false;
    if (self->batch_events == 0) {
        //  Nothing applied: a position moved past names we do not apply
        //  is written lazily (pond_actor_priv_persist), as outside a batch
        pond_view_rollback (self->view);
        return 0;
    }
    //  What the batch emitted is durable before the view says it was
    //  applied: a crash in between applies the batch again, and emits
    //  duplicates the store ignores
    if (pond_actor_priv_emit_deferred (self)) {
        zsys_error ("%s: cannot emit what events up to seq %" PRIu64 " caused; "
                    "stopping (they are applied again on start)",
                    self->name, self->position);
        pond_view_rollback (self->view);
        self->position = self->batch_from;
        self->failed = true;
        return -1;
    }
    if (pond_view_commit (self->view, self->position)) {
        zsys_error ("%s: cannot write events up to seq %" PRIu64 " to the view; stopping",
                    self->name, self->position);
        self->position = self->batch_from;
        self->failed = true;
        return -1;
    }
    self->persisted_at = zclock_mono ();
    return 0;
}

//  Write the position if it moved in memory only (events of other names).
//  Lazily is safe: the events between the written position and the one in
//  memory are all of names the actor does not apply, so after a crash the
//  catch-up from the written position replays none of them (the replay is
//  filtered by our names) and the view is exactly as it would have been.
int
pond_actor_priv_persist (pond_actor_t *self)
{
    self->persisted_at = zclock_mono ();
    if (pond_view_position (self->view) == self->position)
        return 0;
    if (pond_view_commit (self->view, self->position)) {
        zsys_error ("%s: cannot write the position to the view; stopping", self->name);
        self->failed = true;
        return -1;
    }
    return 0;
}

//  ---------------------------------------------------------------------
//  Timers: heartbeats, silence, retries, lazy position, progress

static void
s_timers (pond_actor_t *self)
{
    int64_t now = zclock_mono ();
    //  The loop itself stood still (a long command, a stopped process):
    //  the silence was ours, not the broker's; judge from now on
    if (now - self->timers_at > 1000) {
        self->heartbeat_at = now;
        self->event_at = now;
    }
    self->timers_at = now;
    uint64_t beats = pond_sub_heartbeats (self->sub);
    if (beats != self->heartbeats_seen) {
        //  The first heartbeat proves the subscription: events stored
        //  before it may have been missed live (and after the catch-up's
        //  snapshot): if the head says so, catch up now, not BEHIND_MS on
        bool first = self->heartbeats_seen == 0;
        self->heartbeats_seen = beats;
        self->heartbeat_at = now;
        if (first && self->live && pond_sub_head (self->sub) > self->position)
            pond_actor_priv_catchup_start (self);
        if (self->broker_away) {
            zsys_info ("%s: heartbeats are back; catching up", self->name);
            self->broker_away = false;
            //  A replay asked of the broker that went away may never end
            if (self->replay)
                pond_reader_destroy (&self->replay);
            self->failures = 0;
            pond_actor_priv_catchup_start (self);
        }
    }
    if (!self->broker_away && now - self->heartbeat_at > SILENCE_MS) {
        zsys_warning ("%s: no heartbeat from the broker for %d s; catching up when it is back",
                      self->name, SILENCE_MS / 1000);
        self->broker_away = true;
    }
    uint64_t head = pond_sub_head (self->sub);
    if (self->live && head > self->position && !self->broker_away) {
        if (!self->behind_since)
            self->behind_since = now;
        else if (now - self->behind_since >= BEHIND_MS && now - self->event_at >= BEHIND_MS) {
            zsys_warning ("%s: the log is at seq %" PRIu64 ", this actor at %" PRIu64
                          ", and no event came for %d ms; catching up",
                          self->name, head, self->position, BEHIND_MS);
            pond_actor_priv_catchup_start (self);
        }
    }
    else
        self->behind_since = 0;
    if (!self->live && !self->replay && !self->broker_away && now >= self->retry_at)
        pond_actor_priv_catchup_start (self);
    if (now - self->persisted_at >= PERSIST_MS)
        pond_actor_priv_persist (self);
    if (self->rebuilding && now - self->progress_at >= PROGRESS_MS) {
        pond_actor_priv_send_progress (self, self->rebuild_peer, self->position,
                                       head > self->position ? head : self->position,
                                       self->rebuild_has_id ? self->rebuild_id : NULL);
        self->progress_at = now;
    }
}

//  ---------------------------------------------------------------------
//  Ready file DIR/NAME.zpl

static int
s_ready_write (pond_actor_t *self)
{
    char *endpoint = zsock_last_endpoint (self->query);
    zconfig_t *root = zconfig_new ("root", NULL);
    zconfig_put (root, "actor/name", self->name);
    zconfig_put (root, "actor/query", endpoint ? endpoint : self->query_endpoint);
    zconfig_putf (root, "actor/pid", "%d", (int) getpid ());
    if (pond_keys_active ())
        zconfig_put (root, "actor/key", pond_keys_as ());    //  clients speak CURVE
    zstr_free (&endpoint);
    char temp [1100];
    snprintf (temp, sizeof temp, "%s.tmp", self->ready_path);
    int rc = zconfig_save (root, temp);
    zconfig_destroy (&root);
    if (rc == 0)
        rc = rename (temp, self->ready_path);
    if (rc)
        zsys_error ("%s: cannot write %s: %s", self->name, self->ready_path, strerror (errno));
    return rc;
}

//  Remove the ready file if it is still ours.
static void
s_ready_remove (pond_actor_t *self)
{
    zconfig_t *config = zconfig_load (self->ready_path);
    if (config && atoi (zconfig_get (config, "actor/pid", "0")) == (int) getpid ())
        unlink (self->ready_path);
    zconfig_destroy (&config);
}

//  ---------------------------------------------------------------------
//  Running live

//  Set up everything but the view. Returns 0 or -1 (logged).
static int
s_connect (pond_actor_t *self)
{
    self->buffer = zlistx_new ();
    zlistx_set_destructor (self->buffer, pond_actor_priv_buffer_destroy);
    self->sub = pond_sub_new_hwm (self->eps.pub, NULL, 0, LIVE_HWM);
    if (!self->sub) {
        zsys_error ("%s: cannot subscribe to %s", self->name, self->eps.pub);
        return -1;
    }
    self->query = zsock_new (ZMQ_ROUTER);
    if (!self->query)
        return -1;
    zsock_set_linger (self->query, 0);
    zsock_set_sndhwm (self->query, 10000);
    zsock_set_rcvhwm (self->query, 10000);
    zsock_set_maxmsgsize (self->query, QUERY_FRAME_MAX);
    //  With keys: CURVE with the actor's own key; pond_actor_priv_on_request checks roles
    if (pond_keys_server (self->query))
        return -1;
    if (zsock_bind (self->query, "%s", self->query_endpoint) < 0) {
        zsys_error ("%s: cannot bind the query socket %s: %s (is it running already?)", self->name,
                    self->query_endpoint, zmq_strerror (zmq_errno ()));
        return -1;
    }
    self->poller = zpoller_new (pond_sub_sock (self->sub), self->query, NULL);
    return self->poller ? 0 : -1;
}

int
pond_actor_priv_run (pond_actor_t *self)
{
    if (s_connect (self) || s_ready_write (self))
        return 1;
    pond_actor_priv_asof_clean (self);
    int64_t now = zclock_mono ();
    self->heartbeat_at = now;
    self->event_at = now;
    self->persisted_at = now;
    self->timers_at = now;
    zsys_info ("%s: view %s at seq %" PRIu64 ", query socket %s, broker %s", self->name,
               self->view_path, self->position, self->query_endpoint, self->eps.pub);
    pond_actor_priv_catchup_start (self);
    while (!zsys_interrupted && !self->failed) {
        zpoller_wait (self->poller, self->replay ? 0 : 100);
        if (zpoller_terminated (self->poller))
            break;
        //  Live events first: all that are queued, bounded per round, in
        //  one view write (a burst costs one commit, not one per event;
        //  queries are answered after the round, so none sees the
        //  difference). A gap found here starts a catch-up from the
        //  position in memory, which this round's commit makes true.
        pond_actor_priv_batch_begin (self);
        for (int i = 0; i < LIVE_ROUND && !zsys_interrupted && !self->failed; i++) {
            pond_event_t *event = pond_sub_recv (self->sub, 0);
            if (!event)
                break;
            pond_actor_priv_on_live (self, &event);
        }
        if (pond_actor_priv_batch_commit (self))
            break;
        for (int i = 0; i < 100 && !self->failed && (zsock_events (self->query) & ZMQ_POLLIN);
             i++) {
            zmsg_t *msg = zmsg_recv (self->query);
            if (!msg)
                break;
            pond_actor_priv_on_request (self, msg);
            zmsg_destroy (&msg);
        }
        if (self->replay)
            pond_actor_priv_catchup_pump (self);
        pond_actor_priv_asof_done (self);
        if (!self->failed)
            s_timers (self);
        pond_actor_priv_parked_check (self, false);
    }
    //  Stopping: the waiting ones get their answer now
    pond_actor_priv_parked_check (self, true);
    pond_actor_priv_asof_stop (self);
    if (self->view && !self->failed)
        pond_actor_priv_persist (self);
    s_ready_remove (self);
    zsys_info ("%s: stopping at seq %" PRIu64 " (%" PRIu64 " applied, %" PRIu64 " emitted)",
               self->name, self->position, self->applied, self->emitted);
    return self->failed ? 1 : 0;
}
