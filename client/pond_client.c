/*  pond_client: the producer; publishes events to a mesh's ingest socket
    with ACKs, retries and back-off, or pipelined (send/recv). See
    pond_client.h and proto/PROTOCOL.md, "Ingest socket".
*/
#include "pond_client_io.h"

#include <errno.h>

//  Sleep msecs, waking early on SIGINT/SIGTERM. Returns -1 if interrupted.
static int
s_sleep (int64_t msecs)
{
    int64_t deadline = zclock_mono () + msecs;
    while (!zsys_interrupted) {
        int64_t left = deadline - zclock_mono ();
        if (left <= 0)
            return 0;
        zmq_poll (NULL, 0, (long) left);
    }
    return -1;
}

struct _pond_client_t {
    char endpoint [POND_ENDPOINT_MAX];
    zsock_t *sock;               //  DEALER, recreated after a timeout
    pond_keys_watch_t *watch;    //  its handshakes, with keys
    int ack_timeout;             //  msecs per attempt
    int max_attempts;
    bool verbose;
    pond_client_io_failure_t failure;    //  why the last call failed
    uint64_t retries;
};

//  Fail the call: see pond_client_io_fail.
#define s_client_fail(self, ...) pond_client_io_fail (&(self)->failure, __VA_ARGS__)

static void
s_client_clear (pond_client_t *self)
{
    self->failure.code = 0;
    self->failure.reason [0] = 0;
}

//  After a timeout: if the broker refused our key, fail with 403 and say
//  so. Returns -1 then, 0 if it did not (a plain timeout).
static int
s_client_refused (pond_client_t *self)
{
    char reason [640];
    if (pond_keys_watch_refused (self->watch, reason, sizeof reason))
        return s_client_fail (self, POND_CODE_FORBIDDEN, "%s", reason);
    return 0;
}

//  (Re)create the DEALER. IMMEDIATE: a send blocks (up to the ACK timeout)
//  until the broker is connected, so "not reachable" is told apart from
//  "no ACK", and after a reconnect no message sits in a dead pipe.
static int
s_client_connect (pond_client_t *self)
{
    zsock_destroy (&self->sock);
    pond_keys_watch_destroy (&self->watch);
    self->sock = pond_client_io_dealer_new (self->endpoint, true, self->ack_timeout, &self->watch);
    return self->sock ? 0 : -1;
}

//  Every call that uses the socket starts here: clears the last failure
//  and makes sure there is a socket (a failed reconnect left none).
static int
s_client_ready (pond_client_t *self)
{
    s_client_clear (self);
    if (!self->sock && s_client_connect (self))
        return s_client_fail (self, POND_CODE_TIMEOUT, "cannot connect to %s", self->endpoint);
    return 0;
}

pond_client_t *
pond_client_new (const char *ingest_endpoint)
{
    assert (ingest_endpoint);
    pond_client_t *self = (pond_client_t *) zmalloc (sizeof (pond_client_t));
    if (!self)
        return NULL;
    self->ack_timeout = POND_CLIENT_ACK_TIMEOUT;
    self->max_attempts = POND_CLIENT_ATTEMPTS;
    if (pond_client_io_copy (self->endpoint, sizeof self->endpoint, "%s", ingest_endpoint)
        || s_client_connect (self))
        pond_client_destroy (&self);
    return self;
}

void
pond_client_destroy (pond_client_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        pond_client_t *self = *self_p;
        zsock_destroy (&self->sock);
        pond_keys_watch_destroy (&self->watch);
        free (self);
        *self_p = NULL;
    }
}

void
pond_client_set_timeout (pond_client_t *self, int ack_timeout_ms, int max_attempts)
{
    assert (self);
    if (ack_timeout_ms > 0) {
        self->ack_timeout = ack_timeout_ms;
        if (self->sock)
            zsock_set_sndtimeo (self->sock, ack_timeout_ms);
    }
    if (max_attempts > 0)
        self->max_attempts = max_attempts;
}

void
pond_client_set_verbose (pond_client_t *self, bool verbose)
{
    assert (self);
    self->verbose = verbose;
}

//  Read one reply of the ingest socket. Returns 1 (ACK in *ack), 0 (NACK
//  in *nack), or -1 for anything else (PONG, unknown, unreadable).
static int
s_client_read_reply (pond_client_t *self, zmsg_t *msg, pond_ack_t *ack, pond_nack_t *nack)
{
    char err [POND_ERR_SIZE] = "";
    zframe_t *command = zmsg_first (msg);
    zframe_t *body = zmsg_next (msg);
    int rc = -1;
    if (pond_proto_is (command, POND_ACK)) {
        if (pond_ack_decode (body, ack, err, sizeof err) == 0)
            rc = 1;
    }
    else if (pond_proto_is (command, POND_NACK)) {
        if (pond_nack_decode (body, nack, err, sizeof err) == 0)
            rc = 0;
    }
    else if (!pond_proto_is (command, POND_PONG))
        snprintf (err, sizeof err, "unknown reply");
    if (rc < 0 && *err && self->verbose)
        zsys_warning ("pond_client: ignored a reply from %s: %s", self->endpoint, err);
    return rc;
}

//  Encode an event for PUBLISH: valid and without seq. Returns the bytes
//  (caller frees) or NULL with code 400 and the reason set.
uint8_t *
pond_client_io_encode (pond_client_t *self, const pond_event_t *event, size_t *size_p)
{
    char err [POND_ERR_SIZE];
    uint8_t *bytes = NULL;
    if (pond_event_seq (event))
        s_client_fail (self, POND_CODE_BAD_REQUEST,
                       "invalid event: seq is set by the store and must be absent");
    else if (pond_event_validate (event, err, sizeof err))
        s_client_fail (self, POND_CODE_BAD_REQUEST, "invalid event: %s", err);
    else
        //  Valid but not encodable: too large, as the broker would say (413)
        if (!(bytes = pond_event_encode (event, size_p, err, sizeof err)))
            s_client_fail (self, POND_CODE_TOO_LARGE, "event too large: %s", err);
        else if (*size_p > POND_PUBLISH_MAX_SIZE) {
            s_client_fail (self, POND_CODE_TOO_LARGE,
                           "event too large: %zu bytes; the limit is %d (make data smaller)",
                           *size_p, POND_PUBLISH_MAX_SIZE);
            free (bytes);
            bytes = NULL;
        }
    return bytes;
}

int
pond_client_publish (pond_client_t *self, const pond_event_t *event, pond_ack_t *ack)
{
    assert (self);
    assert (event);
    size_t size;
    uint8_t *bytes = pond_client_io_encode (self, event, &size);
    if (!bytes)
        return -1;
    int rc = pond_client_publish_bytes (self, pond_event_id (event), bytes, size, ack);
    free (bytes);
    return rc;
}

int
pond_client_publish_bytes (pond_client_t *self, const uint8_t *id, const uint8_t *bytes,
                           size_t size, pond_ack_t *ack)
{
    assert (self);
    assert (id);
    assert (bytes);
    if (s_client_ready (self))
        return -1;
    //  All attempts and back-offs together stay within this budget
    int64_t started = zclock_mono ();
    int64_t deadline = started + (int64_t) self->ack_timeout * self->max_attempts;
    int timeouts = 0;
    while (true) {
        //  One attempt: send, then wait for the reply to this id
        bool timed_out = false;
        pond_nack_t nack;
        if (pond_client_io_send (self->sock, POND_PUBLISH, bytes, size)) {
            if (errno != EAGAIN)
                return s_client_fail (self, POND_CODE_INTERRUPTED, "interrupted");
            s_client_fail (self, POND_CODE_TIMEOUT, "cannot reach the broker at %s",
                           self->endpoint);
            timed_out = true;
        }
        int64_t attempt_end = zclock_mono () + self->ack_timeout;
        if (attempt_end > deadline)
            attempt_end = deadline;
        while (!timed_out) {
            bool interrupted;
            zmsg_t *msg = pond_client_io_recv_until (self->sock, attempt_end, &interrupted);
            if (!msg) {
                if (interrupted)
                    return s_client_fail (self, POND_CODE_INTERRUPTED, "interrupted");
                s_client_fail (self, POND_CODE_TIMEOUT, "no ACK from the broker at %s",
                               self->endpoint);
                timed_out = true;
                break;
            }
            pond_ack_t reply;
            int rc = s_client_read_reply (self, msg, &reply, &nack);
            zmsg_destroy (&msg);
            if (rc == 1 && memcmp (reply.id, id, POND_ID_SIZE) == 0) {
                if (ack)
                    *ack = reply;
                return 0;
            }
            //  A NACK without id is for us: ours is the only request in
            //  flight on this socket (it is new after every timeout)
            if (rc == 0 && (!nack.has_id || memcmp (nack.id, id, POND_ID_SIZE) == 0))
                break;
            if (rc >= 0 && self->verbose)
                zsys_warning ("pond_client: ignored a stale %s for another event",
                              rc ? "ACK" : "NACK");
        }
        if (timed_out) {
            //  No use sending again with a key the broker refuses
            if (s_client_refused (self))
                return -1;
            if (++timeouts >= self->max_attempts || zclock_mono () >= deadline) {
                if (timeouts > 1) {
                    size_t len = strlen (self->failure.reason);
                    snprintf (self->failure.reason + len, sizeof self->failure.reason - len,
                              " (%d attempts in %d ms)", timeouts,
                              self->ack_timeout * self->max_attempts);
                }
                return -1;
            }
            if (self->verbose)
                zsys_warning ("pond_client: %s, sending again", self->failure.reason);
            if (s_client_connect (self))
                return s_client_fail (self, POND_CODE_TIMEOUT, "cannot connect to %s",
                                      self->endpoint);
            self->retries++;
            continue;
        }
        //  A NACK for this event
        if (nack.code != POND_CODE_UNAVAILABLE)
            return s_client_fail (self, (int) nack.code, "%s", nack.reason);
        int64_t wait = nack.retry_ms ? nack.retry_ms : 100;
        if (zclock_mono () + wait >= deadline)
            return s_client_fail (self, POND_CODE_UNAVAILABLE,
                                  "broker unavailable: %s (still after %d ms)", nack.reason,
                                  (int) (zclock_mono () - started));
        if (self->verbose)
            zsys_warning ("pond_client: broker unavailable (%s), sending again in %d ms",
                          nack.reason, (int) wait);
        if (s_sleep (wait))
            return s_client_fail (self, POND_CODE_INTERRUPTED, "interrupted");
        self->retries++;
    }
}

int
pond_client_send (pond_client_t *self, const pond_event_t *event)
{
    assert (self);
    assert (event);
    size_t size;
    uint8_t *bytes = pond_client_io_encode (self, event, &size);
    if (!bytes)
        return -1;
    int rc = pond_client_send_bytes (self, bytes, size);
    free (bytes);
    return rc;
}

//  The answer of a send whose result (0 or -1 with errno) is rc: EAGAIN
//  is a refused key (403) or a broker not reached in time (408), anything
//  else an interrupt. Returns 0 or -1.
static int
s_client_sent (pond_client_t *self, int rc)
{
    if (rc == 0)
        return 0;
    if (errno == EAGAIN && s_client_refused (self))
        return -1;
    if (errno == EAGAIN)
        return s_client_fail (self, POND_CODE_TIMEOUT,
                              "cannot send to the broker at %s within %d ms", self->endpoint,
                              self->ack_timeout);
    return s_client_fail (self, POND_CODE_INTERRUPTED, "interrupted");
}

int
pond_client_send_bytes (pond_client_t *self, const uint8_t *bytes, size_t size)
{
    assert (self);
    assert (bytes);
    if (s_client_ready (self))
        return -1;
    return s_client_sent (self, pond_client_io_send (self->sock, POND_PUBLISH, bytes, size));
}

int
pond_client_send_batch (pond_client_t *self, const uint8_t *const *bytes, const size_t *sizes,
                        size_t count)
{
    assert (self);
    assert (bytes && sizes && count);
    if (s_client_ready (self))
        return -1;
    return s_client_sent (self,
                          pond_client_io_send_many (self->sock, POND_PUBLISH,
                                                    (const void *const *) bytes, sizes, count));
}

int
pond_client_recv (pond_client_t *self, int timeout_ms, pond_ack_t *ack, pond_nack_t *nack)
{
    assert (self);
    if (s_client_ready (self))
        return -1;
    int64_t deadline = pond_client_io_deadline (timeout_ms);
    pond_ack_t ack_buffer;
    pond_nack_t nack_buffer;
    while (true) {
        bool interrupted;
        zmsg_t *msg = pond_client_io_recv_until (self->sock, deadline, &interrupted);
        if (!msg) {
            if (interrupted)
                return s_client_fail (self, POND_CODE_INTERRUPTED, "interrupted");
            if (s_client_refused (self))
                return -1;
            return s_client_fail (self, POND_CODE_TIMEOUT, "no reply from the broker at %s",
                                  self->endpoint);
        }
        int rc = s_client_read_reply (self, msg, ack ? ack : &ack_buffer,
                                      nack ? nack : &nack_buffer);
        zmsg_destroy (&msg);
        if (rc >= 0)
            return rc;
    }
}

zsock_t *
pond_client_sock (pond_client_t *self)
{
    assert (self);
    return self->sock;
}

int
pond_client_ping (pond_client_t *self, int timeout_ms)
{
    return pond_client_ping_store (self, timeout_ms, NULL);
}

int
pond_client_ping_store (pond_client_t *self, int timeout_ms, pond_pong_t *pong)
{
    assert (self);
    if (s_client_ready (self))
        return -1;
    static const uint8_t empty_map [] = { 0x80 };
    if (pong) {
        pong->store_up = true;
        pong->head = 0;
    }
    if (pond_client_io_send (self->sock, POND_PING, pong ? empty_map : NULL,
                             pong ? sizeof empty_map : 0))
        return s_client_refused (self)
                 ? -1
                 : s_client_fail (self, POND_CODE_TIMEOUT, "cannot reach the broker at %s",
                                  self->endpoint);
    int64_t deadline = pond_client_io_deadline (timeout_ms);
    while (true) {
        bool interrupted;
        zmsg_t *msg = pond_client_io_recv_until (self->sock, deadline, &interrupted);
        if (!msg && !interrupted && s_client_refused (self))
            return -1;
        if (!msg)
            return s_client_fail (self, interrupted ? POND_CODE_INTERRUPTED : POND_CODE_TIMEOUT,
                                  "no PONG from the broker at %s", self->endpoint);
        bool is_pong = pond_proto_is (zmsg_first (msg), POND_PONG);
        zframe_t *body = zmsg_next (msg);
        char err [POND_ERR_SIZE];
        if (is_pong && pong && body && pond_pong_decode (body, pong, err, sizeof err)) {
            zmsg_destroy (&msg);
            return s_client_fail (self, POND_CODE_BAD_REQUEST, "unreadable PONG from %s: %s",
                                  self->endpoint, err);
        }
        zmsg_destroy (&msg);
        if (is_pong)
            return 0;
    }
}

int
pond_client_code (pond_client_t *self)
{
    assert (self);
    return self->failure.code;
}

const char *
pond_client_reason (pond_client_t *self)
{
    assert (self);
    return self->failure.reason;
}

uint64_t
pond_client_retries (pond_client_t *self)
{
    assert (self);
    return self->retries;
}
