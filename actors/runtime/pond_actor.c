/*  pond_actor: the runtime every actor shares. See pond_actor.h. This
    file: emitting, the core loop, catch-up, rebuild, timers and main; the
    query socket is in pond_actor_query.c, --verify in pond_actor_verify.c,
    the state they share in pond_actor_internal.h.

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
#include "pond_path.h"
#include "pond_pidlock.h"

#include <getopt.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>


//  ---------------------------------------------------------------------
//  The API actors call

static pond_client_t *s_emit_client (pond_actor_t *self);
static void s_buffer_destroy (void **item_p);

int
pond_actor_emit (pond_actor_t *self, pond_event_t *event)
{
    assert (self);
    assert (event);
    if (self->verify)
        return 0;               //  a rebuild to compare: the log has them already
    if (!*pond_event_source (event) && pond_event_set_source (event, self->name)) {
        zsys_error ("%s: cannot set the source of an event to emit", self->name);
        return -1;
    }
    if (self->batching) {
        //  Catch-up batch: sent, pipelined, before the batch is written
        pond_event_t *copy = pond_event_dup (event);
        if (!self->deferred) {
            self->deferred = zlistx_new ();
            if (self->deferred)
                zlistx_set_destructor (self->deferred, s_buffer_destroy);
        }
        if (!copy || !self->deferred || !zlistx_add_end (self->deferred, copy)) {
            pond_event_destroy (&copy);
            zsys_error ("%s: out of memory emitting %s", self->name, pond_event_name (event));
            return -1;
        }
        return 0;
    }
    if (!s_emit_client (self))
        return -1;
    pond_ack_t ack;
    if (pond_client_publish (self->client, event, &ack)) {
        if (pond_client_code (self->client) == POND_CODE_CONFLICT) {
            //  Emitted ids are derived from the cause: 409 means this
            //  derivation was emitted before (built again, with another
            //  ts); the log has it, as it has a duplicate
            if (self->verbose)
                zsys_info ("%s: %s for %s was emitted before (409: %s)", self->name,
                           pond_event_name (event), pond_event_entity (event),
                           pond_client_reason (self->client));
            self->emitted++;
            return 0;
        }
        zsys_error ("%s: cannot emit %s for %s: %s (%d)", self->name, pond_event_name (event),
                    pond_event_entity (event), pond_client_reason (self->client),
                    pond_client_code (self->client));
        return -1;
    }
    self->emitted++;
    if (self->verbose)
        zsys_info ("%s: emitted %s for %s: seq %" PRIu64 "%s", self->name,
                   pond_event_name (event), pond_event_entity (event), ack.seq,
                   ack.dup? " (duplicate: stored before)": "");
    return 0;
}

//  The emit client, created on first use; NULL (logged) if it cannot be.
static pond_client_t *
s_emit_client (pond_actor_t *self)
{
    if (!self->client) {
        self->client = pond_client_new (self->eps.ingest);
        if (!self->client) {
            zsys_error ("%s: cannot emit: bad ingest endpoint %s", self->name,
                        self->eps.ingest);
            return NULL;
        }
        pond_client_set_verbose (self->client, self->verbose);
    }
    return self->client;
}

int
pond_actor_emit_many (pond_actor_t *self, pond_event_t **events, size_t count, bool *acked)
{
    assert (self);
    assert (events || count == 0);
    assert (acked);
    memset (acked, 0, count * sizeof *acked);
    if (self->verify) {
        memset (acked, 1, count * sizeof *acked);
        return 0;               //  a rebuild to compare: the log has them already
    }
    pond_client_t *client = count? s_emit_client (self): NULL;
    if (count && !client)
        return -1;
    //  Encode all first: a bad event fails the call before anything is sent
    uint8_t **bytes = (uint8_t **) calloc (count? count: 1, sizeof *bytes);
    size_t *sizes = (size_t *) calloc (count? count: 1, sizeof *sizes);
    int *sends = (int *) calloc (count? count: 1, sizeof *sends);
    int rc = bytes && sizes && sends? 0: -1;
    if (rc)
        zsys_error ("%s: out of memory emitting %zu events", self->name, count);
    for (size_t i = 0; i < count && rc == 0; i++) {
        pond_event_t *event = events [i];
        char err [POND_ERR_SIZE];
        if (!*pond_event_source (event) && pond_event_set_source (event, self->name))
            snprintf (err, sizeof err, "cannot set the source");
        else
            bytes [i] = pond_event_encode (event, &sizes [i], err, sizeof err);
        if (!bytes [i]) {
            zsys_error ("%s: cannot emit %s for %s: %s", self->name, pond_event_name (event),
                        pond_event_entity (event), err);
            rc = -1;
        }
    }
    //  Keep EMIT_WINDOW publishes in flight; match replies by id (the
    //  oldest outstanding first: they mostly come in order). A timeout
    //  resends every outstanding event (same ids: duplicates are harmless),
    //  NACK 503 resends that one after retry_ms, any other NACK fails.
    size_t next = 0, oldest = 0, outstanding = 0, done = 0;
    while (rc == 0 && done < count) {
        while (next < count && outstanding < EMIT_WINDOW && rc == 0) {
            sends [next]++;
            rc = pond_client_send_bytes (client, bytes [next], sizes [next]);
            next++;
            outstanding++;
        }
        if (rc)
            break;
        pond_ack_t ack;
        pond_nack_t nack;
        int got = pond_client_recv (client, POND_CLIENT_ACK_TIMEOUT, &ack, &nack);
        if (got < 0 && pond_client_code (client) == POND_CODE_TIMEOUT) {
            for (size_t i = oldest; i < next && rc == 0; i++)
                if (!acked [i]) {
                    if (++sends [i] > POND_CLIENT_ATTEMPTS)
                        rc = -1;
                    else
                        rc = pond_client_send_bytes (client, bytes [i], sizes [i]);
                }
            continue;
        }
        if (got < 0) {
            rc = -1;
            break;
        }
        const uint8_t *id = got? ack.id: nack.id;
        size_t index = next;
        for (size_t i = oldest; i < next; i++)
            if (!acked [i] && memcmp (pond_event_id (events [i]), id, POND_ID_SIZE) == 0) {
                index = i;
                break;
            }
        if (index == next || (!got && !nack.has_id))
            continue;               //  a late reply to a resend, or not ours
        if (got) {
            acked [index] = true;
            outstanding--;
            done++;
            self->emitted++;
            while (oldest < next && acked [oldest])
                oldest++;
        }
        else
        if (nack.code == POND_CODE_UNAVAILABLE) {
            zclock_sleep ((int) (nack.retry_ms? nack.retry_ms: 100));
            rc = pond_client_send_bytes (client, bytes [index], sizes [index]);
        }
        else
        if (nack.code == POND_CODE_CONFLICT) {
            //  Emitted before under this derived id (see pond_actor_emit)
            acked [index] = true;
            outstanding--;
            done++;
            self->emitted++;
            while (oldest < next && acked [oldest])
                oldest++;
        }
        else {
            zsys_error ("%s: cannot emit %s for %s: %u %s", self->name,
                        pond_event_name (events [index]), pond_event_entity (events [index]),
                        nack.code, nack.reason);
            rc = -1;
        }
    }
    if (rc && client && done < count)
        zsys_error ("%s: emitted %zu of %zu events: %s (%d)", self->name, done, count,
                    pond_client_reason (client), pond_client_code (client));
    for (size_t i = 0; bytes && i < count; i++)
        free (bytes [i]);
    free (bytes);
    free (sizes);
    free (sends);
    if (rc && client) {
        //  Replies still on their way would confuse the next publish: start afresh
        pond_client_destroy (&self->client);
    }
    return rc;
}

void
pond_actor_derive_id (const uint8_t *cause, const char *salt, uint8_t *id)
{
    assert (id);
    static const uint8_t zeros [POND_ID_SIZE] = { 0 };
    static const char domain [] = "pond/derive-id/v1";
    //  SHA-1 (CZMQ's own, always built in) of domain || cause || salt: the
    //  cause is 16 bytes, so the input is never ambiguous
    zdigest_t *digest = zdigest_new ();
    assert (digest);
    zdigest_update (digest, (const byte *) domain, sizeof domain);
    zdigest_update (digest, cause? cause: zeros, POND_ID_SIZE);
    if (salt)
        zdigest_update (digest, (const byte *) salt, strlen (salt));
    memcpy (id, zdigest_data (digest), POND_ID_SIZE);
    zdigest_destroy (&digest);
    id [6] = (uint8_t) ((id [6] & 0x0f) | 0x80);     //  version 8
    id [8] = (uint8_t) ((id [8] & 0x3f) | 0x80);     //  variant 10 (RFC 9562)
}

pond_reader_t *
pond_actor_replay (pond_actor_t *self, const pond_replay_req_t *request)
{
    assert (self);
    assert (request);
    return pond_reader_new (self->eps.control, request);
}

//  Send [peer, command, body] on the query socket; takes ownership of body.
void
pond_actor_priv_send (pond_actor_t *self, zframe_t *peer, const char *command,
                      zframe_t **body_p)
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

static void
s_send_progress (pond_actor_t *self, zframe_t *peer, uint64_t done, uint64_t total)
{
    pond_progress_t progress = { .done = done, .total = total };
    zframe_t *body = pond_progress_encode (&progress);
    pond_actor_priv_send (self, peer, POND_PROGRESS, &body);
}

void
pond_actor_progress (pond_actor_t *self, uint64_t done, uint64_t total)
{
    assert (self);
    if (self->requester)
        s_send_progress (self, self->requester, done, total);
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
                           "it is applied again on start", self->name, seq);
            else
                zsys_error ("%s: the actor refused event seq %" PRIu64 " (%s for %s); "
                            "stopping: a view that cannot apply the log is a bug to fix",
                            self->name, seq, pond_event_name (event),
                            pond_event_entity (event));
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
static void
s_batch_begin (pond_actor_t *self)
{
    if (self->batching || self->failed)
        return;
    pond_view_begin (self->view);
    self->batching = true;
    self->batch_from = self->position;
    self->batch_events = 0;
}

//  Write the batch, if one is open. Returns 0, or -1 (self->failed).
static int
s_batch_commit (pond_actor_t *self)
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
    size_t count = self->deferred? zlistx_size (self->deferred): 0;
    if (count) {
        pond_event_t **events = (pond_event_t **) calloc (count, sizeof *events);
        bool *acked = (bool *) calloc (count, sizeof *acked);
        int rc = events && acked? 0: -1;
        size_t index = 0;
        for (pond_event_t *event = (pond_event_t *) zlistx_first (self->deferred);
             event && rc == 0; event = (pond_event_t *) zlistx_next (self->deferred))
            events [index++] = event;
        if (rc == 0)
            rc = pond_actor_emit_many (self, events, count, acked);
        free (events);
        free (acked);
        zlistx_purge (self->deferred);
        if (rc) {
            zsys_error ("%s: cannot emit what events up to seq %" PRIu64 " caused; "
                        "stopping (they are applied again on start)", self->name,
                        self->position);
            pond_view_rollback (self->view);
            self->position = self->batch_from;
            self->failed = true;
            return -1;
        }
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
//  Catch-up

//  Fill a replay request for our names in seq order from from_seq.
void
pond_actor_priv_replay_request (pond_actor_t *self, pond_replay_req_t *request,
                                uint64_t from_seq, uint64_t to_seq)
{
    memset (request, 0, sizeof (*request));
    //  More names than a REPLAY carries: take the whole log, s_wanted filters
    if (self->names_count <= POND_REPLAY_MAX_NAMES) {
        for (size_t i = 0; i < self->names_count; i++)
            snprintf (request->names [i], sizeof request->names [i], "%s",
                      self->spec->names [i]);
        request->names_count = self->names_count;
    }
    strcpy (request->order, "seq");
    request->from_seq = from_seq;
    request->to_seq = to_seq;
    request->credit = CATCHUP_CREDIT;
}

static void
s_catchup_start (pond_actor_t *self)
{
    if (self->replay)
        return;
    self->live = false;
    self->behind_since = 0;
    pond_replay_req_t request;
    pond_actor_priv_replay_request (self, &request, self->position + 1, 0);
    self->replay = pond_reader_new (self->eps.control, &request);
    if (!self->replay) {
        zsys_error ("%s: cannot start a replay on %s", self->name, self->eps.control);
        self->retry_at = zclock_mono () + RETRY_MS;
        return;
    }
    self->catchups++;
    self->replay_active_at = zclock_mono ();
    if (self->failures == 0) {
        self->catchup_started = zclock_mono ();
        self->catchup_from = self->position;
        self->catchup_applied = self->applied;
    }
    if (self->verbose)
        zsys_info ("%s: catching up from seq %" PRIu64, self->name, self->position + 1);
}

//  The replay failed or stalled: drop it, try again in a moment.
static void
s_catchup_failed (pond_actor_t *self, const char *reason)
{
    if (self->failures++ == 0 || self->verbose)
        zsys_warning ("%s: catch-up from seq %" PRIu64 " failed (%s); retrying every %d ms",
                      self->name, self->position + 1, reason, RETRY_MS);
    pond_reader_destroy (&self->replay);
    self->retry_at = zclock_mono () + RETRY_MS;
}

static void s_rebuild_done (pond_actor_t *self);

//  Roughly the memory an event holds.
static size_t
s_event_bytes (const pond_event_t *event)
{
    size_t data = 0, meta = 0;
    pond_event_data (event, &data);
    pond_event_meta (event, &meta);
    return data + meta + 256;
}

static void
s_buffer_clear (pond_actor_t *self)
{
    zlistx_purge (self->buffer);
    self->buffer_bytes = 0;
}

//  Keep a live event for when the catch-up ends (takes it). Past the
//  bounds the whole buffer goes, and one more catch-up fetches it all
//  from the log when this one ends: memory stays bounded.
static void
s_buffer_add (pond_actor_t *self, pond_event_t **event_p)
{
    size_t bytes = s_event_bytes (*event_p);
    if (zlistx_size (self->buffer) >= BUFFER_MAX
    ||  self->buffer_bytes + bytes > BUFFER_BYTES_MAX) {
        if (!self->overflowed)
            zsys_warning ("%s: more than %d live events (or %d MiB) arrived during the "
                          "catch-up; dropped them, the next catch-up fetches them", self->name,
                          BUFFER_MAX, BUFFER_BYTES_MAX / (1024 * 1024));
        s_buffer_clear (self);
        self->overflowed = true;
        pond_event_destroy (event_p);
        return;
    }
    zlistx_add_end (self->buffer, *event_p);
    self->buffer_bytes += bytes;
    *event_p = NULL;
}

//  Take the first event out of the buffer. Caller destroys it.
static pond_event_t *
s_buffer_pop (pond_actor_t *self)
{
    pond_event_t *event = (pond_event_t *) zlistx_detach (self->buffer, NULL);
    if (event) {
        size_t bytes = s_event_bytes (event);
        self->buffer_bytes = self->buffer_bytes > bytes? self->buffer_bytes - bytes: 0;
    }
    return event;
}

//  Apply what the buffer holds in seq order. Returns 0 when it is empty,
//  1 if it found a gap (another catch-up is started), or -1 if the actor
//  must stop.
static int
s_drain_buffer (pond_actor_t *self)
{
    pond_event_t *event;
    while ((event = (pond_event_t *) zlistx_first (self->buffer))) {
        uint64_t seq = pond_event_seq (event);
        if (seq <= self->position) {
            event = s_buffer_pop (self);
            pond_event_destroy (&event);
            continue;
        }
        if (seq > self->position + 1) {
            zsys_warning ("%s: gap in live events: seq %" PRIu64 " after %" PRIu64
                          "; catching up", self->name, seq, self->position);
            s_catchup_start (self);
            return 1;
        }
        event = s_buffer_pop (self);
        int rc = pond_actor_priv_apply (self, event);
        pond_event_destroy (&event);
        if (rc)
            return -1;
    }
    return 0;
}

//  The replay completed: it saw every event of our names up to head.
static void
s_catchup_done (pond_actor_t *self)
{
    uint64_t head = pond_reader_head (self->replay);
    pond_reader_destroy (&self->replay);
    if (head > self->position)
        self->position = head;
    else
    if (head < self->position && !self->warned_ahead) {
        zsys_warning ("%s: the log ends at seq %" PRIu64 " but this view is at %" PRIu64
                      ": was the log reset? rebuild the view (--rebuild)", self->name, head,
                      self->position);
        self->warned_ahead = true;
    }
    if (self->failures > 1 || (self->failures && self->verbose))
        zsys_info ("%s: catch-up succeeded after %" PRIu64 " failed attempts", self->name,
                   self->failures);
    self->failures = 0;
    if (pond_actor_priv_persist (self))
        return;
    double seconds = (double) (zclock_mono () - self->catchup_started) / 1000.0;
    zsys_info ("%s: caught up %" PRIu64 " events to seq %" PRIu64 " in %.1f s "
               "(%" PRIu64 " applied)", self->name, self->position - self->catchup_from,
               self->position, seconds, self->applied - self->catchup_applied);
    //  Events dropped from the buffer are fetched by one more catch-up;
    //  one that a gap starts below does just that
    bool overflowed = self->overflowed;
    self->overflowed = false;
    if (s_drain_buffer (self))
        return;
    if (overflowed) {
        s_catchup_start (self);
        return;
    }
    self->live = true;
    self->event_at = zclock_mono ();
    if (self->rebuilding)
        s_rebuild_done (self);
}

//  Work on the replay for at most PUMP_MS, then let the poller run.
static void
s_catchup_pump (pond_actor_t *self)
{
    int64_t until = zclock_mono () + PUMP_MS;
    bool first = true;
    unsigned turn = 0;
    s_batch_begin (self);
    while (self->replay && !zsys_interrupted && !self->failed) {
        //  Wait a little for the first event only: the poller does not
        //  see the replay's socket, so this is where the loop idles
        pond_event_t *event = pond_reader_next (self->replay, first? 20: 0);
        first = false;
        if (!event) {
            if (s_batch_commit (self))
                return;
            if (zsys_interrupted)
                return;             //  stopping: not a failure worth a warning
            int code = pond_reader_code (self->replay);
            if (code == POND_CODE_OK)
                s_catchup_done (self);
            else
            if (code) {
                char reason [POND_REASON_MAX + 160];
                snprintf (reason, sizeof reason, "%d %s", code,
                          pond_reader_reason (self->replay));
                s_catchup_failed (self, reason);
            }
            else
            if (zclock_mono () - self->replay_active_at > STALL_MS)
                s_catchup_failed (self, "no reply from the broker");
            return;
        }
        //  The clock every PUMP_CLOCK events only: it costs as much as
        //  applying a small event
        int64_t now = turn++ % PUMP_CLOCK == 0? zclock_mono (): 0;
        if (now)
            self->replay_active_at = now;
        if (pond_event_seq (event) > self->position)
            pond_actor_priv_apply (self, event);
        pond_event_destroy (&event);
        if (self->batch_events >= CATCHUP_BATCH
        ||  pond_view_staged_bytes (self->view) >= CATCHUP_BATCH_BYTES) {
            if (s_batch_commit (self))
                return;
            s_batch_begin (self);
        }
        if (now >= until)
            break;
    }
    s_batch_commit (self);
}

int
pond_actor_catch_up (pond_actor_t *self)
{
    assert (self);
    if (self->verify || !self->view)
        return 0;
    //  A fresh replay: one already running started before the request,
    //  so its head may be older than what was stored before it
    pond_reader_destroy (&self->replay);
    self->failures = 0;
    s_catchup_start (self);
    if (!self->replay) {
        pond_actor_set_error (self, POND_CODE_UNAVAILABLE, "%s cannot start a replay on %s "
                              "to catch up with the log; try again", self->name,
                              self->eps.control);
        return -1;
    }
    //  s_catchup_done may start one more (a gap in what was buffered, an
    //  overflow): pump until none runs; a stall ends one with a failure
    int64_t deadline = zclock_mono () + CATCHUP_SYNC_MS;
    while (self->replay && !self->failed && !zsys_interrupted && self->failures == 0
       &&  zclock_mono () < deadline)
        s_catchup_pump (self);
    if (self->replay || self->failures || self->failed || zsys_interrupted) {
        pond_actor_set_error (self, POND_CODE_UNAVAILABLE, "%s could not catch up with the "
                              "log (at seq %" PRIu64 "); try again", self->name,
                              self->position);
        return -1;
    }
    return 0;
}

//  ---------------------------------------------------------------------
//  Live events

static void
s_on_live (pond_actor_t *self, pond_event_t **event_p)
{
    pond_event_t *event = *event_p;
    uint64_t seq = pond_event_seq (event);
    self->event_at = zclock_mono ();
    if (!self->live) {
        //  Catching up: keep it for later, within bounds
        if (seq <= self->position)
            pond_event_destroy (event_p);
        else
            s_buffer_add (self, event_p);
        return;
    }
    if (seq <= self->position) {
        self->doubles++;
        if (self->verbose)
            zsys_info ("%s: dropped seq %" PRIu64 ": already at %" PRIu64, self->name, seq,
                       self->position);
    }
    else
    if (seq == self->position + 1)
        pond_actor_priv_apply (self, event);
    else {
        zsys_warning ("%s: gap in live events: seq %" PRIu64 " after %" PRIu64
                      "; catching up", self->name, seq, self->position);
        s_buffer_add (self, event_p);
        s_catchup_start (self);
    }
    pond_event_destroy (event_p);
}

//  ---------------------------------------------------------------------
//  Rebuild: drop the view and apply the whole log again, while serving

//  Close, delete and reopen the view; call start again on the empty view.
//  Returns 0; 1 if the view could not be deleted (it is reopened as it
//  was, nothing changed); -1 if the actor cannot go on (logged).
static int
s_view_reset (pond_actor_t *self)
{
    pond_view_destroy (&self->view);
    int dropped = pond_view_drop (self->view_path);
    self->view = pond_view_open (self->view_path);
    if (!self->view)
        return -1;
    if (dropped != 0)
        return 1;
    self->position = 0;
    if (self->spec->start && self->spec->start (self, self->view, self->spec->state)) {
        zsys_error ("%s: start failed on the new view", self->name);
        return -1;
    }
    return 0;
}

void
pond_actor_priv_rebuild_start (pond_actor_t *self, zframe_t *peer)
{
    pond_reader_destroy (&self->replay);
    s_buffer_clear (self);
    self->overflowed = false;
    self->failures = 0;
    uint64_t was = self->position;
    int rc = s_view_reset (self);
    if (rc) {
        pond_actor_priv_error (self, peer, POND_CODE_STORE_ERROR,
                               "cannot reset the view (see the log)");
        if (rc < 0)
            self->failed = true;    //  no view, or half a reset: start afresh
        else
            s_catchup_start (self); //  the old view goes on from where it was
        return;
    }
    zsys_info ("%s: rebuilding the view from the log (was at seq %" PRIu64 ")", self->name,
               was);
    self->rebuilding = true;
    self->rebuild_peer = zframe_dup (peer);
    self->rebuild_started = zclock_mono ();
    self->progress_at = zclock_mono ();
    self->rebuild_applied = self->applied;
    s_catchup_start (self);
}

static void
s_rebuild_done (pond_actor_t *self)
{
    double seconds = (double) (zclock_mono () - self->rebuild_started) / 1000.0;
    zsys_info ("%s: view rebuilt to seq %" PRIu64 " in %.1f s", self->name, self->position,
               seconds);
    char *json = zsys_sprintf ("{\"command\":\"rebuild\",\"position\":%" PRIu64
                               ",\"applied\":%" PRIu64 ",\"seconds\":%.3f}",
                               self->position, self->applied - self->rebuild_applied,
                               seconds);
    zframe_t *body = zframe_new (json, strlen (json));
    pond_actor_priv_send (self, self->rebuild_peer, POND_RESULT, &body);
    zstr_free (&json);
    zframe_destroy (&self->rebuild_peer);
    self->rebuilding = false;
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
            s_catchup_start (self);
        if (self->broker_away) {
            zsys_info ("%s: heartbeats are back; catching up", self->name);
            self->broker_away = false;
            //  A replay asked of the broker that went away may never end
            if (self->replay)
                pond_reader_destroy (&self->replay);
            self->failures = 0;
            s_catchup_start (self);
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
        else
        if (now - self->behind_since >= BEHIND_MS && now - self->event_at >= BEHIND_MS) {
            zsys_warning ("%s: the log is at seq %" PRIu64 ", this actor at %" PRIu64
                          ", and no event came for %d ms; catching up", self->name, head,
                          self->position, BEHIND_MS);
            s_catchup_start (self);
        }
    }
    else
        self->behind_since = 0;
    if (!self->live && !self->replay && !self->broker_away && now >= self->retry_at)
        s_catchup_start (self);
    if (now - self->persisted_at >= PERSIST_MS)
        pond_actor_priv_persist (self);
    if (self->rebuilding && now - self->progress_at >= PROGRESS_MS) {
        s_send_progress (self, self->rebuild_peer, self->position,
                         head > self->position? head: self->position);
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
    zconfig_put (root, "actor/query", endpoint? endpoint: self->query_endpoint);
    zconfig_putf (root, "actor/pid", "%d", (int) getpid ());
    if (pond_keys_active ())
        zconfig_put (root, "actor/key", pond_keys_as ());      //  clients speak CURVE
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

static void
s_buffer_destroy (void **item_p)
{
    pond_event_destroy ((pond_event_t **) item_p);
}

//  Set up everything but the view. Returns 0 or -1 (logged).
static int
s_connect (pond_actor_t *self)
{
    self->buffer = zlistx_new ();
    zlistx_set_destructor (self->buffer, s_buffer_destroy);
    self->sub = pond_sub_new (self->eps.pub, NULL, 0);
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
        zsys_error ("%s: cannot bind the query socket %s: %s (is it running already?)",
                    self->name, self->query_endpoint, zmq_strerror (zmq_errno ()));
        return -1;
    }
    self->poller = zpoller_new (pond_sub_sock (self->sub), self->query, NULL);
    return self->poller? 0: -1;
}

static int
s_run (pond_actor_t *self)
{
    if (s_connect (self) || s_ready_write (self))
        return 1;
    int64_t now = zclock_mono ();
    self->heartbeat_at = now;
    self->event_at = now;
    self->persisted_at = now;
    self->timers_at = now;
    zsys_info ("%s: view %s at seq %" PRIu64 ", query socket %s, broker %s", self->name,
               self->view_path, self->position, self->query_endpoint, self->eps.pub);
    s_catchup_start (self);
    while (!zsys_interrupted && !self->failed) {
        zpoller_wait (self->poller, self->replay? 0: 100);
        if (zpoller_terminated (self->poller))
            break;
        //  Live events first: all that are queued, bounded per round, in
        //  one view write (a burst costs one commit, not one per event;
        //  queries are answered after the round, so none sees the
        //  difference). A gap found here starts a catch-up from the
        //  position in memory, which this round's commit makes true.
        s_batch_begin (self);
        for (int i = 0; i < LIVE_ROUND && !zsys_interrupted && !self->failed; i++) {
            pond_event_t *event = pond_sub_recv (self->sub, 0);
            if (!event)
                break;
            s_on_live (self, &event);
        }
        if (s_batch_commit (self))
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
            s_catchup_pump (self);
        if (!self->failed)
            s_timers (self);
        pond_actor_priv_parked_check (self, false);
    }
    //  Stopping: the waiting ones get their answer now
    pond_actor_priv_parked_check (self, true);
    if (self->view && !self->failed)
        pond_actor_priv_persist (self);
    s_ready_remove (self);
    zsys_info ("%s: stopping at seq %" PRIu64 " (%" PRIu64 " applied, %" PRIu64 " emitted)",
               self->name, self->position, self->applied, self->emitted);
    return self->failed? 1: 0;
}

//  ---------------------------------------------------------------------
//  Command line

static void
s_usage (const pond_actor_spec_t *spec, const char *extra_usage, FILE *out)
{
    fprintf (out, "Usage: pond-%s [OPTIONS]\n\n", spec->name);
    if (spec->description)
        fprintf (out, "%s\n\n", spec->description);
    fprintf (out, "Applies:");
    for (size_t i = 0; spec->names [i]; i++)
        fprintf (out, "%s %s", i? ",": "", spec->names [i]);
    fprintf (out, "\n\n"
        "Options:\n"
        "  --data DIR     data directory (default $POND_DATA or ./pond-data); the\n"
        "                 broker's endpoints are read from DIR/broker.zpl\n"
        "  --view PATH    the view database (default DIR/views/%s)\n"
        "  --query EP     query socket (default ipc://DIR/%s.ipc); once it is\n"
        "                 bound, the endpoint and pid are written to DIR/%s.zpl\n"
        "  --rebuild      delete the view first, rebuild it from the log, go live\n"
        "  --verify       ask the running actor for its view (DUMP), rebuild one from\n"
        "                 the log up to the same seq in a scratch directory, compare;\n"
        "                 exit 0 if they match, 1 if not\n"
        "  --keys DIR     CURVE on every socket, with the key pair\n"
        "                 DIR/secret/NAME.cert_secret (role actor); the query socket\n"
        "                 lets in the actor, app and admin keys of DIR/public (see\n"
        "                 pond keys --help). Without it: local mode, no keys\n"
        "  --as NAME      the key to use with --keys (default %s)\n"
        "  --verbose      log every event applied and every refused request\n"
        "  --help         show this text\n",
        spec->name, spec->name, spec->name, spec->name);
    if (extra_usage && *extra_usage)
        fprintf (out, "\n%s\n", extra_usage);
}

int
pond_actor_main (const pond_actor_spec_t *spec, int argc, char *argv [],
                 const char *extra_usage)
{
    assert (spec);
    assert (spec->name && spec->names && spec->apply && spec->query);
    const char *dir = NULL, *view = NULL, *query = NULL, *keys = NULL, *as = NULL;
    bool rebuild = false, verify = false, verbose = false;
    pond_pidlock_t *lock = NULL;        //  held while this actor runs
    static struct option options [] = {
        { "data", required_argument, 0, 'd' }, { "view", required_argument, 0, 'w' },
        { "query", required_argument, 0, 'q' }, { "rebuild", no_argument, 0, 'r' },
        { "verify", no_argument, 0, 'V' }, { "verbose", no_argument, 0, 'v' },
        { "keys", required_argument, 0, 'k' }, { "as", required_argument, 0, 'a' },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 }
    };
    optind = 1;
    int opt;
    while ((opt = getopt_long (argc, argv, "d:w:q:rVvk:a:h", options, NULL)) != -1) {
        switch (opt) {
            case 'd': dir = optarg; break;
            case 'k': keys = optarg; break;
            case 'a': as = optarg; break;
            case 'w': view = optarg; break;
            case 'q': query = optarg; break;
            case 'r': rebuild = true; break;
            case 'V': verify = true; break;
            case 'v': verbose = true; break;
            case 'h': s_usage (spec, extra_usage, stdout); return 0;
            default:
                fprintf (stderr, "pond-%s: see pond-%s --help\n", spec->name, spec->name);
                return 2;
        }
    }
    if (optind < argc || (rebuild && verify) || (as && !keys)) {
        if (optind < argc)
            fprintf (stderr, "pond-%s: unexpected argument '%s'", spec->name, argv [optind]);
        else
        if (as && !keys)
            fprintf (stderr, "pond-%s: --as names a key of --keys DIR: give both", spec->name);
        else
            fprintf (stderr, "pond-%s: --rebuild and --verify do not mix", spec->name);
        fprintf (stderr, "; see pond-%s --help\n", spec->name);
        return 2;
    }
    char ident [128];
    snprintf (ident, sizeof ident, "pond-%s", spec->name);
    zsys_init ();
    zsys_set_logident (ident);
    if (verify)
        zsys_set_logstream (stderr);        //  stdout is the verdict
    char err [512];
    if (keys && pond_keys_use (keys, as? as: spec->name, err, sizeof err)) {
        fprintf (stderr, "pond-%s: --keys %s: %s\n", spec->name, keys, err);
        return 1;
    }

    pond_actor_t *self = (pond_actor_t *) zmalloc (sizeof (pond_actor_t));
    assert (self);
    self->spec = spec;
    self->name = spec->name;
    while (spec->names [self->names_count])
        self->names_count++;
    self->verbose = verbose;
    self->verify = verify;
    self->query_given = query != NULL;
    int rc = 1;
    if (pond_endpoints_resolve (dir, &self->eps)) {
        fprintf (stderr, "pond-%s: data directory path too long\n", spec->name);
        goto done;
    }
    dir = self->eps.data_dir;
    if (!verify && mkdir (dir, 0755) && errno != EEXIST) {
        fprintf (stderr, "pond-%s: cannot create data directory %s: %s\n", spec->name, dir,
                 strerror (errno));
        goto done;
    }
    if ((view? pond_path (self->view_path, sizeof self->view_path, "%s", view)
             : pond_path (self->view_path, sizeof self->view_path, "%s/views/%s", dir, spec->name))
    ||  (query? pond_path (self->query_endpoint, sizeof self->query_endpoint, "%s", query)
              : pond_path (self->query_endpoint, sizeof self->query_endpoint, "ipc://%s/%s.ipc",
                           dir, spec->name))
    ||  pond_path (self->ready_path, sizeof self->ready_path, "%s/%s.zpl", dir, spec->name)) {
        fprintf (stderr, "pond-%s: a path or endpoint is too long\n", spec->name);
        goto done;
    }

    if (verify) {
        rc = pond_actor_priv_verify (self);
        goto done;
    }
    //  One actor of a name per data directory: a second one is refused,
    //  naming the pid that holds the lock, before it touches anything
    char lock_path [1100];
    snprintf (lock_path, sizeof lock_path, "%s/%s.lock", dir, spec->name);
    char lock_err [1200];
    pid_t holder = 0;
    lock = pond_pidlock_new (lock_path, 1, &holder, lock_err, sizeof lock_err);
    if (!lock) {
        if (holder)
            fprintf (stderr, "pond-%s: another pond-%s (pid %d) serves %s; stop it first "
                     "(pond down --data %s for a mesh started with pond up)\n", spec->name,
                     spec->name, (int) holder, dir, dir);
        else
            fprintf (stderr, "pond-%s: %s\n", spec->name, lock_err);
        goto done;
    }
    if (rebuild) {
        zsys_info ("%s: --rebuild: deleting the view %s", self->name, self->view_path);
        if (pond_view_drop (self->view_path))
            goto done;
    }
    self->view = pond_view_open (self->view_path);
    if (!self->view)
        goto done;
    self->position = pond_view_position (self->view);
    if (spec->start && spec->start (self, self->view, spec->state)) {
        zsys_error ("%s: start failed", self->name);
        goto done;
    }
    rc = s_run (self);

done:
    if (self->replay)
        pond_reader_destroy (&self->replay);
    zpoller_destroy (&self->poller);
    zsock_destroy (&self->query);
    pond_sub_destroy (&self->sub);
    pond_client_destroy (&self->client);
    zlistx_destroy (&self->buffer);
    zlistx_destroy (&self->deferred);
    zlistx_destroy (&self->parked);
    zframe_destroy (&self->rebuild_peer);
    pond_view_destroy (&self->view);
    free (self);
    pond_keys_reset ();
    pond_pidlock_destroy (&lock);
    return rc;
}
