/*  pond_client: producer, subscriber, replay reader and stats for C
    programs that talk to a pond mesh. See pond_client.h and
    proto/PROTOCOL.md (ingest, pub and control sockets).
*/
#include "pond_client.h"
#include "pond_keys.h"
#include "pond_uuid.h"
#include "pond_value.h"

#include <errno.h>
#include <msgpack.h>
#include <pthread.h>
#if defined (__GLIBC__)
#   include <malloc.h>
#endif

//  ---------------------------------------------------------------------
//  Helpers shared by every part

//  Wait for one message on sock until deadline (zclock_mono msecs; -1 is
//  forever). Returns the message, or NULL on timeout, or NULL with
//  *interrupted set when SIGINT/SIGTERM arrived (zsys_interrupted). A
//  receive that blocks with a timeout, not a poll then a receive: ZeroMQ
//  checks the socket once instead of three times (two system calls
//  each), and not at all when a message is already queued, as replies are
//  for pipelined producers and chunks for a replay. Only this function
//  receives on the client's sockets, so it owns their receive timeout.
static zmsg_t *
s_recv_until (zsock_t *sock, int64_t deadline, bool *interrupted)
{
    *interrupted = false;
    while (true) {
        int timeout = -1;
        if (deadline >= 0) {
            int64_t left = deadline - zclock_mono ();
            timeout = left > 0? (int) left: 0;
        }
        zsock_set_rcvtimeo (sock, timeout);
        zmsg_t *msg = zmsg_recv (sock);
        if (msg)
            return msg;
        int error = zmq_errno ();
        if (zsys_interrupted) {
            *interrupted = true;
            return NULL;
        }
        if (error != EINTR)
            return NULL;            //  Timed out (EAGAIN), or the socket failed
        //  EINTR from some other signal: wait on
    }
}


//  Deadline timeout_ms from now; -1 (forever) for a negative timeout.
static int64_t
s_deadline (int timeout_ms)
{
    return timeout_ms < 0? -1: zclock_mono () + timeout_ms;
}

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

//  Send a command frame, then the given frames (may be none), as one
//  multipart message without copying through zmsg. Returns 0 or -1 (errno
//  EAGAIN: the send timed out).
static int
s_send (zsock_t *sock, const char *command, const void *body, size_t body_size)
{
    void *handle = zsock_resolve (sock);
    if (zmq_send (handle, command, strlen (command), body? ZMQ_SNDMORE: 0) < 0)
        return -1;
    if (body && zmq_send (handle, body, body_size, 0) < 0)
        return -1;
    return 0;
}

//  Send a command and a body frame, destroying the frame. Returns 0 or -1.
static int
s_send_frame (zsock_t *sock, const char *command, zframe_t **body_p)
{
    if (!*body_p)
        return -1;
    int rc = s_send (sock, command, zframe_data (*body_p), zframe_size (*body_p));
    zframe_destroy (body_p);
    return rc;
}

//  Make a DEALER connected to endpoint, linger 0, our HWMs; a CURVE client
//  of the broker when the process has keys (pond_keys_use), then with a
//  watch on its handshakes in *watch_p. NULL if the endpoint is invalid or
//  the broker's key is missing (logged).
static zsock_t *
s_dealer_new (const char *endpoint, bool immediate, int sndtimeo, pond_keys_watch_t **watch_p)
{
    zsock_t *sock = zsock_new (ZMQ_DEALER);
    if (!sock)
        return NULL;
    zsock_set_linger (sock, 0);
    zsock_set_sndhwm (sock, POND_CLIENT_HWM);
    zsock_set_rcvhwm (sock, POND_CLIENT_HWM);
    zsock_set_immediate (sock, immediate? 1: 0);
    zsock_set_sndtimeo (sock, sndtimeo);
    if (pond_keys_client (sock, NULL)) {
        zsock_destroy (&sock);
        return NULL;
    }
    if (watch_p)
        *watch_p = pond_keys_watch_new (sock);
    if (zsock_connect (sock, "%s", endpoint)) {
        zsock_destroy (&sock);
        if (watch_p)
            pond_keys_watch_destroy (watch_p);
        return NULL;
    }
    return sock;
}

//  Check a name as the event envelope does; returns 0 or -1 with the reason.
static int
s_check_name (const char *name, char *err, size_t errlen)
{
    if (strlen (name) > POND_NAME_MAX) {
        snprintf (err, errlen, "name must be 1 to %d characters", POND_NAME_MAX);
        return -1;
    }
    pond_event_t *probe = pond_event_new (name, "probe");
    if (!probe) {
        snprintf (err, errlen, "out of memory");
        return -1;
    }
    int rc = pond_event_validate (probe, err, errlen);
    pond_event_destroy (&probe);
    return rc;
}

//  ---------------------------------------------------------------------
//  Endpoints

static int
s_copy (char *dest, size_t size, const char *format, const char *text)
{
    int rc = snprintf (dest, size, format, text);
    return rc < 0 || (size_t) rc >= size? -1: 0;
}

int
pond_endpoints_resolve (const char *data_dir, pond_endpoints_t *eps)
{
    assert (eps);
    memset (eps, 0, sizeof (*eps));
    if (!data_dir || !*data_dir)
        data_dir = getenv ("POND_DATA");
    if (!data_dir || !*data_dir)
        data_dir = "./pond-data";
    if (s_copy (eps->data_dir, sizeof eps->data_dir, "%s", data_dir)
    ||  s_copy (eps->ingest, sizeof eps->ingest, "ipc://%s/ingest.ipc", data_dir)
    ||  s_copy (eps->pub, sizeof eps->pub, "ipc://%s/pub.ipc", data_dir)
    ||  s_copy (eps->control, sizeof eps->control, "ipc://%s/control.ipc", data_dir))
        return -1;

    char path [POND_ENDPOINT_MAX + 16];
    snprintf (path, sizeof path, "%s/broker.zpl", data_dir);
    if (!zsys_file_exists (path))
        return 0;
    zconfig_t *config = zconfig_load (path);
    if (!config)
        return 0;               //  Being written, or garbage: keep the defaults
    const char *keys [] = { "broker/ingest", "broker/pub", "broker/control" };
    char *slots [] = { eps->ingest, eps->pub, eps->control };
    int rc = 0;
    for (size_t i = 0; i < 3; i++) {
        const char *value = zconfig_get (config, keys [i], NULL);
        if (value && *value && s_copy (slots [i], POND_ENDPOINT_MAX, "%s", value))
            rc = -1;
    }
    eps->broker_pid = atoi (zconfig_get (config, "broker/pid", "0"));
    eps->from_broker_file = true;
    zconfig_destroy (&config);
    return rc;
}

//  ---------------------------------------------------------------------
//  Producer

struct _pond_client_t {
    char endpoint [POND_ENDPOINT_MAX];
    zsock_t *sock;              //  DEALER, recreated after a timeout
    pond_keys_watch_t *watch;   //  its handshakes, with keys
    int ack_timeout;            //  msecs per attempt
    int max_attempts;
    bool verbose;
    int code;                   //  why the last call failed, 0 if it did not
    char reason [POND_REASON_MAX + 128];
    uint64_t retries;
};

static int
s_client_fail (pond_client_t *self, int code, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static int
s_client_fail (pond_client_t *self, int code, const char *format, ...)
{
    self->code = code;
    va_list args;
    va_start (args, format);
    vsnprintf (self->reason, sizeof self->reason, format, args);
    va_end (args);
    return -1;
}

static void
s_client_clear (pond_client_t *self)
{
    self->code = 0;
    self->reason [0] = 0;
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
    self->sock = s_dealer_new (self->endpoint, true, self->ack_timeout, &self->watch);
    return self->sock? 0: -1;
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
    if (s_copy (self->endpoint, sizeof self->endpoint, "%s", ingest_endpoint)
    ||  s_client_connect (self))
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
    else
    if (pond_proto_is (command, POND_NACK)) {
        if (pond_nack_decode (body, nack, err, sizeof err) == 0)
            rc = 0;
    }
    else
    if (!pond_proto_is (command, POND_PONG))
        snprintf (err, sizeof err, "unknown reply");
    if (rc < 0 && *err && self->verbose)
        zsys_warning ("pond_client: ignored a reply from %s: %s", self->endpoint, err);
    return rc;
}

//  Encode an event for PUBLISH: valid and without seq. Returns the bytes
//  (caller frees) or NULL with code 400 and the reason set.
static uint8_t *
s_client_encode (pond_client_t *self, const pond_event_t *event, size_t *size_p)
{
    char err [POND_ERR_SIZE];
    uint8_t *bytes = NULL;
    if (pond_event_seq (event))
        s_client_fail (self, POND_CODE_BAD_REQUEST,
                       "invalid event: seq is set by the store and must be absent");
    else
    if (pond_event_validate (event, err, sizeof err))
        s_client_fail (self, POND_CODE_BAD_REQUEST, "invalid event: %s", err);
    else
    //  Valid but not encodable: too large, as the broker would say (413)
    if (!(bytes = pond_event_encode (event, size_p, err, sizeof err)))
        s_client_fail (self, POND_CODE_TOO_LARGE, "event too large: %s", err);
    else
    if (*size_p > POND_PUBLISH_MAX_SIZE) {
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
    uint8_t *bytes = s_client_encode (self, event, &size);
    if (!bytes)
        return -1;
    int rc = pond_client_publish_bytes (self, pond_event_id (event), bytes, size, ack);
    free (bytes);
    return rc;
}

int
pond_client_publish_bytes (pond_client_t *self, const uint8_t *id,
                           const uint8_t *bytes, size_t size, pond_ack_t *ack)
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
        if (s_send (self->sock, POND_PUBLISH, bytes, size)) {
            if (errno != EAGAIN)
                return s_client_fail (self, POND_CODE_INTERRUPTED, "interrupted");
            s_client_fail (self, POND_CODE_TIMEOUT,
                           "cannot reach the broker at %s", self->endpoint);
            timed_out = true;
        }
        int64_t attempt_end = zclock_mono () + self->ack_timeout;
        if (attempt_end > deadline)
            attempt_end = deadline;
        while (!timed_out) {
            bool interrupted;
            zmsg_t *msg = s_recv_until (self->sock, attempt_end, &interrupted);
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
                              rc? "ACK": "NACK");
        }
        if (timed_out) {
            //  No use sending again with a key the broker refuses
            if (s_client_refused (self))
                return -1;
            if (++timeouts >= self->max_attempts || zclock_mono () >= deadline) {
                if (timeouts > 1) {
                    size_t len = strlen (self->reason);
                    snprintf (self->reason + len, sizeof self->reason - len,
                              " (%d attempts in %d ms)", timeouts,
                              self->ack_timeout * self->max_attempts);
                }
                return -1;
            }
            if (self->verbose)
                zsys_warning ("pond_client: %s, sending again", self->reason);
            if (s_client_connect (self))
                return s_client_fail (self, POND_CODE_TIMEOUT,
                                      "cannot connect to %s", self->endpoint);
            self->retries++;
            continue;
        }
        //  A NACK for this event
        if (nack.code != POND_CODE_UNAVAILABLE)
            return s_client_fail (self, (int) nack.code, "%s", nack.reason);
        int64_t wait = nack.retry_ms? nack.retry_ms: 100;
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
    uint8_t *bytes = s_client_encode (self, event, &size);
    if (!bytes)
        return -1;
    int rc = pond_client_send_bytes (self, bytes, size);
    free (bytes);
    return rc;
}

int
pond_client_send_bytes (pond_client_t *self, const uint8_t *bytes, size_t size)
{
    assert (self);
    assert (bytes);
    if (s_client_ready (self))
        return -1;
    if (s_send (self->sock, POND_PUBLISH, bytes, size) == 0)
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
pond_client_recv (pond_client_t *self, int timeout_ms, pond_ack_t *ack, pond_nack_t *nack)
{
    assert (self);
    if (s_client_ready (self))
        return -1;
    int64_t deadline = s_deadline (timeout_ms);
    pond_ack_t ack_buffer;
    pond_nack_t nack_buffer;
    while (true) {
        bool interrupted;
        zmsg_t *msg = s_recv_until (self->sock, deadline, &interrupted);
        if (!msg) {
            if (interrupted)
                return s_client_fail (self, POND_CODE_INTERRUPTED, "interrupted");
            if (s_client_refused (self))
                return -1;
            return s_client_fail (self, POND_CODE_TIMEOUT, "no reply from the broker at %s",
                                  self->endpoint);
        }
        int rc = s_client_read_reply (self, msg, ack? ack: &ack_buffer,
                                      nack? nack: &nack_buffer);
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
    if (s_send (self->sock, POND_PING, pong? empty_map: NULL, pong? sizeof empty_map: 0))
        return s_client_refused (self)? -1
             : s_client_fail (self, POND_CODE_TIMEOUT, "cannot reach the broker at %s",
                              self->endpoint);
    int64_t deadline = s_deadline (timeout_ms);
    while (true) {
        bool interrupted;
        zmsg_t *msg = s_recv_until (self->sock, deadline, &interrupted);
        if (!msg && !interrupted && s_client_refused (self))
            return -1;
        if (!msg)
            return s_client_fail (self, interrupted? POND_CODE_INTERRUPTED: POND_CODE_TIMEOUT,
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
    return self->code;
}

const char *
pond_client_reason (pond_client_t *self)
{
    assert (self);
    return self->reason;
}

uint64_t
pond_client_retries (pond_client_t *self)
{
    assert (self);
    return self->retries;
}

//  ---------------------------------------------------------------------
//  Subscriber

struct _pond_sub_t {
    zsock_t *sock;              //  SUB
    size_t count;               //  names to accept, 0 = all
    char (*names) [POND_NAME_MAX + 1];
    uint64_t head;
    uint64_t heartbeats;
    uint64_t dropped;
};

pond_sub_t *
pond_sub_new (const char *pub_endpoint, const char **names, size_t count)
{
    assert (pub_endpoint);
    assert (names || count == 0);
    char err [POND_ERR_SIZE];
    for (size_t i = 0; i < count; i++)
        if (s_check_name (names [i], err, sizeof err)) {
            zsys_error ("pond_sub: cannot subscribe to '%s': %s", names [i], err);
            return NULL;
        }
    pond_sub_t *self = (pond_sub_t *) zmalloc (sizeof (pond_sub_t));
    if (!self)
        return NULL;
    self->count = count;
    if (count && !(self->names = calloc (count, POND_NAME_MAX + 1))) {
        free (self);
        return NULL;
    }
    self->sock = zsock_new (ZMQ_SUB);
    if (!self->sock) {
        pond_sub_destroy (&self);
        return NULL;
    }
    zsock_set_linger (self->sock, 0);
    zsock_set_rcvhwm (self->sock, POND_CLIENT_HWM);
    if (count == 0)
        zsock_set_subscribe (self->sock, "");
    else {
        for (size_t i = 0; i < count; i++) {
            strcpy (self->names [i], names [i]);
            zsock_set_subscribe (self->sock, names [i]);
        }
        zsock_set_subscribe (self->sock, POND_HEARTBEAT);
    }
    if (pond_keys_client (self->sock, NULL) || zsock_connect (self->sock, "%s", pub_endpoint))
        pond_sub_destroy (&self);
    return self;
}

void
pond_sub_destroy (pond_sub_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        pond_sub_t *self = *self_p;
        zsock_destroy (&self->sock);
        free (self->names);
        free (self);
        *self_p = NULL;
    }
}

//  Count a dropped message; the first one per subscriber is logged.
static void
s_sub_drop (pond_sub_t *self, const char *reason)
{
    if (self->dropped++ == 0)
        zsys_warning ("pond_sub: dropped a malformed message (%s); counting further ones",
                      reason);
}

//  Look at one message from the pub socket. Returns the event if it is one
//  the caller asked for, else NULL (heartbeat, other name, dropped).
static pond_event_t *
s_sub_accept (pond_sub_t *self, zmsg_t *msg)
{
    zframe_t *topic = zmsg_first (msg);
    zframe_t *body = zmsg_next (msg);
    if (zmsg_size (msg) != 2) {
        s_sub_drop (self, "not two frames");
        return NULL;
    }
    if (pond_proto_is (topic, POND_HEARTBEAT)) {
        pond_heartbeat_t beat;
        char err [POND_ERR_SIZE];
        if (pond_heartbeat_decode (body, &beat, err, sizeof err)) {
            s_sub_drop (self, "unreadable heartbeat");
            return NULL;
        }
        self->head = beat.head;
        self->heartbeats++;
        return NULL;
    }
    //  ZeroMQ matched a prefix: keep only exact names
    if (self->count) {
        bool wanted = false;
        for (size_t i = 0; i < self->count && !wanted; i++)
            wanted = zframe_streq (topic, self->names [i]);
        if (!wanted)
            return NULL;
    }
    char err [POND_ERR_SIZE];
    pond_event_t *event = pond_event_decode (zframe_data (body), zframe_size (body), err,
                                             sizeof err);
    if (!event) {
        s_sub_drop (self, err);
        return NULL;
    }
    if (!zframe_streq (topic, pond_event_name (event)))
        s_sub_drop (self, "topic is not the event's name");
    else
    if (pond_event_seq (event) == 0)
        s_sub_drop (self, "event without seq");
    else
        return event;
    pond_event_destroy (&event);
    return NULL;
}

pond_event_t *
pond_sub_recv (pond_sub_t *self, int timeout_ms)
{
    assert (self);
    int64_t deadline = s_deadline (timeout_ms);
    while (true) {
        bool interrupted;
        zmsg_t *msg = s_recv_until (self->sock, deadline, &interrupted);
        if (!msg)
            return NULL;
        pond_event_t *event = s_sub_accept (self, msg);
        zmsg_destroy (&msg);
        if (event)
            return event;
    }
}

uint64_t
pond_sub_head (pond_sub_t *self)
{
    assert (self);
    return self->head;
}

uint64_t
pond_sub_heartbeats (pond_sub_t *self)
{
    assert (self);
    return self->heartbeats;
}

uint64_t
pond_sub_dropped (pond_sub_t *self)
{
    assert (self);
    return self->dropped;
}

zsock_t *
pond_sub_sock (pond_sub_t *self)
{
    assert (self);
    return self->sock;
}

//  ---------------------------------------------------------------------
//  Replay

struct _pond_reader_t {
    zsock_t *sock;              //  DEALER to the control socket
    pond_keys_watch_t *watch;   //  its handshakes, with keys
    uint64_t rid;
    zmsg_t *chunk;              //  event frames of the chunk being consumed
    zframe_t *frame;            //  the event frame being read (1+ events)
    size_t offset;              //  where its next event starts
    int code;                   //  0 running, 200 done, else failed
    char reason [POND_REASON_MAX + 128];
    uint64_t count;             //  events handed out
    uint64_t head;              //  snapshot head, from END
    uint32_t window;            //  chunks granted up front
    uint32_t owed;              //  chunks taken but not yet granted again
};

static void
s_replay_fail (pond_reader_t *self, int code, const char *format, ...)
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
#if defined (__GLIBC__)
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
    s_send_frame (self->sock, chunks? POND_CREDIT: POND_CANCEL, &body);
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
    self->window = copy.credit < 2 * POND_REPLAY_WINDOW? copy.credit: 2 * POND_REPLAY_WINDOW;
    self->sock = s_dealer_new (control_endpoint, false, POND_CLIENT_ACK_TIMEOUT, &self->watch);
    zframe_t *body = self->sock? pond_replay_req_encode (&copy): NULL;
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
    else
    if (s_send_frame (self->sock, POND_REPLAY, &body))
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
    uint32_t batch = self->window > 1? self->window / 2: 1;
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
        else
        if (header.rid == self->rid) {
            zframe_t *frame = zmsg_pop (msg);
            zframe_destroy (&frame);
            frame = zmsg_pop (msg);
            zframe_destroy (&frame);
            if (zmsg_size (msg))
                self->chunk = msg;      //  Events follow; credit is granted once consumed
            else
                s_replay_grant (self);
        }
    }
    else
    if (pond_proto_is (command, POND_END)) {
        pond_end_t end;
        if (pond_end_decode (body, &end, err, sizeof err))
            s_replay_fail (self, POND_CODE_BAD_REPLY, "unreadable END: %s", err);
        else
        if (end.rid == self->rid) {
            if (end.code == 0)
                s_replay_fail (self, POND_CODE_BAD_REPLY, "END without a code");
            else
            if (end.code != POND_CODE_OK)
                s_replay_fail (self, (int) end.code, "%s", end.reason);
            else
            if (end.count != self->count)
                s_replay_fail (self, POND_CODE_BAD_REPLY,
                               "replay incomplete: the server sent %llu events, %llu arrived",
                               (unsigned long long) end.count,
                               (unsigned long long) self->count);
            else {
                self->code = POND_CODE_OK;
                self->head = end.head;
            }
        }
    }
    else
    if (pond_proto_is (command, POND_ERROR)) {
        pond_nack_t error;
        if (pond_nack_decode (body, &error, err, sizeof err))
            s_replay_fail (self, POND_CODE_BAD_REPLY, "unreadable ERROR: %s", err);
        else
            s_replay_fail (self, error.code? (int) error.code: POND_CODE_BAD_REPLY, "%s",
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
            deadline = s_deadline (timeout_ms);
            dated = true;
        }
        bool interrupted;
        zmsg_t *msg = s_recv_until (self->sock, deadline, &interrupted);
        if (!msg) {
            char refused [640];
            if (interrupted) {
                s_replay_credit (self, 0);
                s_replay_fail (self, POND_CODE_INTERRUPTED, "interrupted");
            }
            else
            if (pond_keys_watch_refused (self->watch, refused, sizeof refused))
                s_replay_fail (self, POND_CODE_FORBIDDEN, "%s", refused);
            else
                snprintf (self->reason, sizeof self->reason, "no reply within %d ms",
                          timeout_ms);
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

//  ---------------------------------------------------------------------
//  Stats

char *
pond_client_stats (const char *control_endpoint, int timeout_ms, char *err, size_t errlen)
{
    assert (control_endpoint);
    char scratch [POND_ERR_SIZE];
    if (!err) {
        err = scratch;
        errlen = sizeof scratch;
    }
    pond_keys_watch_t *watch = NULL;
    zsock_t *sock = s_dealer_new (control_endpoint, false, timeout_ms, &watch);
    if (!sock) {
        snprintf (err, errlen, "cannot connect to %s", control_endpoint);
        return NULL;
    }
    char *json = NULL;
    if (s_send (sock, POND_STATS, NULL, 0))
        snprintf (err, errlen, "cannot send to %s", control_endpoint);
    else {
        int64_t deadline = s_deadline (timeout_ms);
        while (!json) {
            bool interrupted;
            zmsg_t *msg = s_recv_until (sock, deadline, &interrupted);
            if (!msg) {
                if (interrupted)
                    snprintf (err, errlen, "interrupted");
                else
                if (!pond_keys_watch_refused (watch, err, errlen))
                    snprintf (err, errlen, "no reply from %s within %d ms", control_endpoint,
                              timeout_ms);
                break;
            }
            zframe_t *command = zmsg_first (msg);
            zframe_t *body = zmsg_next (msg);
            bool done = true;
            if (pond_proto_is (command, POND_STATS)) {
                if (!body || !(json = pond_value_to_json (zframe_data (body), zframe_size (body))))
                    snprintf (err, errlen, "unreadable STATS reply");
            }
            else
            if (pond_proto_is (command, POND_ERROR)) {
                pond_nack_t error;
                if (pond_nack_decode (body, &error, err, errlen) == 0)
                    snprintf (err, errlen, "%u %s", error.code, error.reason);
            }
            else
                done = false;       //  Not ours: wait on
            zmsg_destroy (&msg);
            if (done)
                break;
        }
    }
    zsock_destroy (&sock);
    pond_keys_watch_destroy (&watch);
    return json;
}
