/*  pond_actor_emit: how actors emit events. See pond_actor.h
    (pond_actor_emit, pond_actor_emit_many, pond_actor_derive_id).

    One emit outside a batch is one pond_client_publish: it returns when
    the event is durable. Inside a batch (catch-up, a round of live
    events) emits are queued, and the batch's commit sends them all
    pipelined (pond_actor_priv_emit_deferred) before it writes the view,
    so that what a batch emitted is durable before the view says the
    batch was applied; once EMIT_WINDOW are queued they go at once, so
    the queue never holds more. Pipelined emits go through a pond_publisher over
    the actor's one emit client, EMIT_WINDOW events in flight.
*/
#include "pond_actor_internal.h"

//  The emit client, created on first use; NULL (logged) if it cannot be.
static pond_client_t *
s_emit_client (pond_actor_t *self)
{
    if (!self->client) {
        self->client = pond_client_new (self->eps.ingest);
        if (!self->client) {
            zsys_error ("%s: cannot emit: bad ingest endpoint %s", self->name, self->eps.ingest);
            return NULL;
        }
        pond_client_set_verbose (self->client, self->verbose);
    }
    return self->client;
}

//  An event emitted while a command with an id runs, that names no cause
//  of its own, was caused by the command (DESIGN.md invariant 5). Derived
//  events name theirs (the event they derive from), so a rebuild emits
//  them again the same, as duplicates.
static void
s_command_causation (pond_actor_t *self, pond_event_t *event)
{
    const uint8_t *command = pond_actor_command_id (self);
    if (command && !pond_event_causation (event))
        pond_event_set_causation (event, command);
}

int
pond_actor_emit (pond_actor_t *self, pond_event_t *event)
{
    assert (self);
    assert (event);
    if (self->verify)
        return 0;    //  a rebuild to compare: the log has them already
    if (!*pond_event_source (event) && pond_event_set_source (event, self->name)) {
        zsys_error ("%s: cannot set the source of an event to emit", self->name);
        return -1;
    }
    s_command_causation (self, event);
    if (self->batching) {
        //  Catch-up batch: sent, pipelined, before the batch is written
        pond_event_t *copy = pond_event_dup (event);
        if (!self->deferred) {
            self->deferred = zlistx_new ();
            if (self->deferred)
                zlistx_set_destructor (self->deferred, pond_actor_priv_buffer_destroy);
        }
        if (!copy || !self->deferred || !zlistx_add_end (self->deferred, copy)) {
            pond_event_destroy (&copy);
            zsys_error ("%s: out of memory emitting %s", self->name, pond_event_name (event));
            return -1;
        }
        //  One event may emit many (a rules change: one per customer whose
        //  badges change): send a window's worth as soon as it is queued,
        //  not all at the commit, so the queue stays bounded. Early is as
        //  safe: they are durable before the commit either way, and if
        //  the batch is not written they are emitted again, as duplicates
        if (zlistx_size (self->deferred) >= EMIT_WINDOW)
            return pond_actor_priv_emit_deferred (self);
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
        zsys_info ("%s: emitted %s for %s: seq %" PRIu64 "%s", self->name, pond_event_name (event),
                   pond_event_entity (event), ack.seq,
                   ack.dup ? " (duplicate: stored before)" : "");
    return 0;
}

//  Keep EMIT_WINDOW events in flight through a publisher over the emit
//  client; the publisher resends after timeouts and NACK 503. A final 503
//  (the store away longer than the publisher's budget) is pushed again
//  until the store is back or the actor is stopped; 409 counts as
//  emitted, as in pond_actor_emit. Returns 0 if every event is acked,
//  else -1 (logged).
static int
s_emit_pipelined (pond_actor_t *self, pond_client_t *client, pond_event_t **events, uint8_t **bytes,
                  size_t *sizes, size_t count, bool *acked)
{
    pond_publisher_t *publisher = pond_publisher_new (client);
    if (!publisher
        || pond_publisher_set_window (publisher, count < EMIT_WINDOW ? (int) count : EMIT_WINDOW,
                                      0)) {
        zsys_error ("%s: out of memory emitting %zu events", self->name, count);
        pond_publisher_destroy (&publisher);
        return -1;
    }
    //  Many events at once (a recompute's badge changes): in PUBLISH
    //  batches, one message and one RESULTS for up to EMIT_BATCH events
    pond_publisher_set_batch (publisher, EMIT_BATCH, 0);
    int rc = 0;
    size_t next = 0, done = 0;
    while (rc == 0 && done < count) {
        while (rc == 0 && next < count && pond_publisher_room (publisher) > 0) {
            rc = pond_publisher_push (publisher, pond_event_id (events [next]), bytes [next],
                                      sizes [next], next);
            next++;
        }
        pond_publish_result_t result;
        if (rc || pond_publisher_next (publisher, -1, &result) != 1) {
            zsys_error ("%s: emitted %zu of %zu events: %s (%d)", self->name, done, count,
                        pond_publisher_reason (publisher), pond_publisher_code (publisher));
            rc = -1;
        }
        else if (result.code == POND_CODE_OK || result.code == POND_CODE_CONFLICT) {
            //  409: emitted before under this derived id (see pond_actor_emit)
            acked [result.tag] = true;
            done++;
            self->emitted++;
        }
        else if (result.code == POND_CODE_UNAVAILABLE && !zsys_interrupted) {
            //  The store is away longer than the publisher's budget: an
            //  actor waits for it as long as it takes (same bytes, same id)
            size_t index = (size_t) result.tag;
            rc = pond_publisher_push (publisher, pond_event_id (events [index]), bytes [index],
                                      sizes [index], index);
            if (rc)
                zsys_error ("%s: emitted %zu of %zu events: %s (%d)", self->name, done, count,
                            pond_publisher_reason (publisher), pond_publisher_code (publisher));
        }
        else {
            zsys_error ("%s: cannot emit %s for %s: %d %s; emitted %zu of %zu events", self->name,
                        pond_event_name (events [result.tag]),
                        pond_event_entity (events [result.tag]), result.code, result.reason, done,
                        count);
            rc = -1;
        }
    }
    pond_publisher_destroy (&publisher);
    return rc;
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
        return 0;    //  a rebuild to compare: the log has them already
    }
    if (count == 0)
        return 0;
    pond_client_t *client = s_emit_client (self);
    if (!client)
        return -1;
    //  Encode all first: a bad event fails the call before anything is sent
    uint8_t **bytes = (uint8_t **) calloc (count, sizeof *bytes);
    size_t *sizes = (size_t *) calloc (count, sizeof *sizes);
    int rc = bytes && sizes ? 0 : -1;
    if (rc)
        zsys_error ("%s: out of memory emitting %zu events", self->name, count);
    for (size_t i = 0; i < count && rc == 0; i++) {
        pond_event_t *event = events [i];
        char err [POND_ERR_SIZE];
        s_command_causation (self, event);
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
    if (rc == 0) {
        rc = s_emit_pipelined (self, client, events, bytes, sizes, count, acked);
        //  Replies still on their way would confuse the next publish: start afresh
        if (rc)
            pond_client_destroy (&self->client);
    }
    for (size_t i = 0; bytes && i < count; i++)
        free (bytes [i]);
    free (bytes);
    free (sizes);
    return rc;
}

int
pond_actor_priv_emit_deferred (pond_actor_t *self)
{
    size_t count = self->deferred ? zlistx_size (self->deferred) : 0;
    if (count == 0)
        return 0;
    pond_event_t **events = (pond_event_t **) calloc (count, sizeof *events);
    bool *acked = (bool *) calloc (count, sizeof *acked);
    int rc = events && acked ? 0 : -1;
    size_t index = 0;
    for (pond_event_t *event = (pond_event_t *) zlistx_first (self->deferred); event && rc == 0;
         event = (pond_event_t *) zlistx_next (self->deferred))
        events [index++] = event;
    if (rc == 0)
        rc = pond_actor_emit_many (self, events, count, acked);
    free (events);
    free (acked);
    zlistx_purge (self->deferred);
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
    zdigest_update (digest, cause ? cause : zeros, POND_ID_SIZE);
    if (salt)
        zdigest_update (digest, (const byte *) salt, strlen (salt));
    memcpy (id, zdigest_data (digest), POND_ID_SIZE);
    zdigest_destroy (&digest);
    id [6] = (uint8_t) ((id [6] & 0x0f) | 0x80);    //  version 8
    id [8] = (uint8_t) ((id [8] & 0x3f) | 0x80);    //  variant 10 (RFC 9562)
}
