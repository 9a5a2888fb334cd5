/*  pond_sub: the subscriber; live events from a mesh's pub socket,
    filtered by name, with the head and heartbeats. See pond_client.h and
    proto/PROTOCOL.md, "Pub socket".
*/
#include "pond_client_io.h"

#include <errno.h>

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

struct _pond_sub_t {
    zsock_t *sock;    //  SUB
    size_t count;     //  names to accept, 0 = all
    char (*names) [POND_NAME_MAX + 1];
    uint64_t head;
    uint64_t heartbeats;
    uint64_t dropped;
};

pond_sub_t *
pond_sub_new (const char *pub_endpoint, const char **names, size_t count)
{
    return pond_sub_new_hwm (pub_endpoint, names, count, POND_CLIENT_HWM);
}

pond_sub_t *
pond_sub_new_hwm (const char *pub_endpoint, const char **names, size_t count, int hwm)
{
    assert (pub_endpoint);
    assert (names || count == 0);
    if (hwm < 1 || hwm > POND_CLIENT_HWM) {
        zsys_error ("pond_sub: a high-water mark must be 1 to %d messages, not %d", POND_CLIENT_HWM,
                    hwm);
        return NULL;
    }
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
    zsock_set_rcvhwm (self->sock, hwm);
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
        zsys_warning ("pond_sub: dropped a malformed message (%s); counting further ones", reason);
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
    else if (pond_event_seq (event) == 0)
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
    int64_t deadline = pond_client_io_deadline (timeout_ms);
    while (true) {
        bool interrupted;
        zmsg_t *msg = pond_client_io_recv_until (self->sock, deadline, &interrupted);
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
