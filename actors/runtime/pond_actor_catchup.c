/*  pond_actor_catchup: how events reach an actor's view (see the header
    comment of pond_actor.c for the rules): the catch-up replay pumped
    between polls, the live events buffered meanwhile and drained after,
    live events in seq order with gaps caught up, and rebuild (a fresh
    view, then the whole log again while queries are served).
    Part of the actor runtime; state in pond_actor_internal.h.
*/
#include "pond_actor_internal.h"

//  ---------------------------------------------------------------------
//  Catch-up

//  Fill a replay request for our names in seq order from from_seq.
void
pond_actor_priv_replay_request (pond_actor_t *self, pond_replay_req_t *request, uint64_t from_seq,
                                uint64_t to_seq)
{
    memset (request, 0, sizeof (*request));
    //  More names than a REPLAY carries: take the whole log, s_wanted filters
    if (self->names_count <= POND_REPLAY_MAX_NAMES) {
        for (size_t i = 0; i < self->names_count; i++)
            snprintf (request->names [i], sizeof request->names [i], "%s", self->spec->names [i]);
        request->names_count = self->names_count;
    }
    strcpy (request->order, "seq");
    request->from_seq = from_seq;
    request->to_seq = to_seq;
    request->credit = CATCHUP_CREDIT;
}

void
pond_actor_priv_catchup_start (pond_actor_t *self)
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
    if (zlistx_size (self->buffer) >= BUFFER_MAX || self->buffer_bytes + bytes > BUFFER_BYTES_MAX) {
        if (!self->overflowed)
            zsys_warning ("%s: more than %d live events (or %d MiB) arrived during the "
                          "catch-up; dropped them, the next catch-up fetches them",
                          self->name, BUFFER_MAX, BUFFER_BYTES_MAX / (1024 * 1024));
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
        self->buffer_bytes = self->buffer_bytes > bytes ? self->buffer_bytes - bytes : 0;
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
            zsys_warning ("%s: gap in live events: seq %" PRIu64 " after %" PRIu64 "; catching up",
                          self->name, seq, self->position);
            pond_actor_priv_catchup_start (self);
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
    else if (head < self->position && !self->warned_ahead) {
        zsys_warning ("%s: the log ends at seq %" PRIu64 " but this view is at %" PRIu64
                      ": was the log reset? rebuild the view (--rebuild)",
                      self->name, head, self->position);
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
               "(%" PRIu64 " applied)",
               self->name, self->position - self->catchup_from, self->position, seconds,
               self->applied - self->catchup_applied);
    //  Events dropped from the buffer are fetched by one more catch-up;
    //  one that a gap starts below does just that
    bool overflowed = self->overflowed;
    self->overflowed = false;
    if (s_drain_buffer (self))
        return;
    if (overflowed) {
        pond_actor_priv_catchup_start (self);
        return;
    }
    self->live = true;
    self->event_at = zclock_mono ();
    if (self->rebuilding)
        s_rebuild_done (self);
}

//  Work on the replay for at most PUMP_MS, then let the poller run.
void
pond_actor_priv_catchup_pump (pond_actor_t *self)
{
    int64_t until = zclock_mono () + PUMP_MS;
    bool first = true;
    unsigned turn = 0;
    pond_actor_priv_batch_begin (self);
    while (self->replay && !zsys_interrupted && !self->failed) {
        //  Wait a little for the first event only: the poller does not
        //  see the replay's socket, so this is where the loop idles
        pond_event_t *event = pond_reader_next (self->replay, first ? 20 : 0);
        first = false;
        if (!event) {
            if (pond_actor_priv_batch_commit (self))
                return;
            if (zsys_interrupted)
                return;    //  stopping: not a failure worth a warning
            int code = pond_reader_code (self->replay);
            if (code == POND_CODE_OK)
                s_catchup_done (self);
            else if (code) {
                char reason [POND_REASON_MAX + 160];
                snprintf (reason, sizeof reason, "%d %s", code, pond_reader_reason (self->replay));
                s_catchup_failed (self, reason);
            }
            else if (zclock_mono () - self->replay_active_at > STALL_MS)
                s_catchup_failed (self, "no reply from the broker");
            return;
        }
        //  The clock every PUMP_CLOCK events only: it costs as much as
        //  applying a small event
        int64_t now = turn++ % PUMP_CLOCK == 0 ? zclock_mono () : 0;
        if (now)
            self->replay_active_at = now;
        if (pond_event_seq (event) > self->position)
            pond_actor_priv_apply (self, event);
        pond_event_destroy (&event);
        if (self->batch_events >= CATCHUP_BATCH
            || pond_view_staged_bytes (self->view) >= CATCHUP_BATCH_BYTES) {
            if (pond_actor_priv_batch_commit (self))
                return;
            pond_actor_priv_batch_begin (self);
        }
        if (now >= until)
            break;
    }
    pond_actor_priv_batch_commit (self);
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
    pond_actor_priv_catchup_start (self);
    if (!self->replay) {
        pond_actor_set_error (self, POND_CODE_UNAVAILABLE,
                              "%s cannot start a replay on %s "
                              "to catch up with the log; try again",
                              self->name, self->eps.control);
        return -1;
    }
    //  s_catchup_done may start one more (a gap in what was buffered, an
    //  overflow): pump until none runs; a stall ends one with a failure
    int64_t deadline = zclock_mono () + CATCHUP_SYNC_MS;
    while (self->replay && !self->failed && !zsys_interrupted && self->failures == 0
           && zclock_mono () < deadline)
        pond_actor_priv_catchup_pump (self);
    if (self->replay || self->failures || self->failed || zsys_interrupted) {
        pond_actor_set_error (self, POND_CODE_UNAVAILABLE,
                              "%s could not catch up with the "
                              "log (at seq %" PRIu64 "); try again",
                              self->name, self->position);
        return -1;
    }
    return 0;
}

//  ---------------------------------------------------------------------
//  Live events

void
pond_actor_priv_on_live (pond_actor_t *self, pond_event_t **event_p)
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
    else if (seq == self->position + 1)
        pond_actor_priv_apply (self, event);
    else {
        zsys_warning ("%s: gap in live events: seq %" PRIu64 " after %" PRIu64 "; catching up",
                      self->name, seq, self->position);
        s_buffer_add (self, event_p);
        pond_actor_priv_catchup_start (self);
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
    self->view = pond_view_open_with (self->view_path, &self->limits);
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
pond_actor_priv_rebuild_start (pond_actor_t *self, zframe_t *peer, const uint8_t *id)
{
    pond_reader_destroy (&self->replay);
    s_buffer_clear (self);
    self->overflowed = false;
    self->failures = 0;
    uint64_t was = self->position;
    int rc = s_view_reset (self);
    if (rc) {
        pond_actor_priv_command_reply (self, peer, NULL, POND_CODE_STORE_ERROR,
                                       "cannot reset the view (see the log)", id);
        if (rc < 0)
            self->failed = true;    //  no view, or half a reset: start afresh
        else
            pond_actor_priv_catchup_start (self);    //  the old view goes on from where it was
        return;
    }
    zsys_info ("%s: rebuilding the view from the log (was at seq %" PRIu64 ")", self->name, was);
    self->rebuilding = true;
    self->rebuild_peer = zframe_dup (peer);
    self->rebuild_has_id = id != NULL;
    if (id)
        memcpy (self->rebuild_id, id, POND_ID_SIZE);
    self->rebuild_started = zclock_mono ();
    self->progress_at = zclock_mono ();
    self->rebuild_applied = self->applied;
    pond_actor_priv_catchup_start (self);
}

static void
s_rebuild_done (pond_actor_t *self)
{
    double seconds = (double) (zclock_mono () - self->rebuild_started) / 1000.0;
    zsys_info ("%s: view rebuilt to seq %" PRIu64 " in %.1f s", self->name, self->position,
               seconds);
    char *json = zsys_sprintf ("{\"command\":\"rebuild\",\"position\":%" PRIu64
                               ",\"applied\":%" PRIu64 ",\"seconds\":%.3f}",
                               self->position, self->applied - self->rebuild_applied, seconds);
    pond_actor_priv_command_reply (self, self->rebuild_peer, json, 0, NULL,
                                   self->rebuild_has_id ? self->rebuild_id : NULL);
    zstr_free (&json);
    zframe_destroy (&self->rebuild_peer);
    self->rebuilding = false;
}

//  Destructor of the lists of events (the live buffer, deferred emits).
void
pond_actor_priv_buffer_destroy (void **item_p)
{
    pond_event_destroy ((pond_event_t **) item_p);
}
