/*  pond_store_link: answers on the store's ROUTER socket, never blocking,
    with the counters and log-once of pond_store_server. See
    pond_store_link.h.
*/
#include "pond_store_link.h"
#include "pond_proto.h"

struct _pond_store_link_t {
    zsock_t *router;    //  not owned
    bool verbose;
    uint64_t malformed;        //  requests refused
    uint64_t send_failures;    //  replies dropped, readers gone
    zhashx_t *logged;          //  causes logged so far
};

pond_store_link_t *
pond_store_link_new (zsock_t *router)
{
    assert (router);
    pond_store_link_t *self = (pond_store_link_t *) zmalloc (sizeof (pond_store_link_t));
    if (!self)
        return NULL;
    self->router = router;
    self->logged = zhashx_new ();
    if (!self->logged)
        pond_store_link_destroy (&self);
    return self;
}

void
pond_store_link_destroy (pond_store_link_t **self_p)
{
    if (self_p && *self_p) {
        pond_store_link_t *self = *self_p;
        zhashx_destroy (&self->logged);
        free (self);
        *self_p = NULL;
    }
}

zsock_t *
pond_store_link_router (pond_store_link_t *self)
{
    return self->router;
}

void
pond_store_link_set_verbose (pond_store_link_t *self, bool verbose)
{
    self->verbose = verbose;
}

bool
pond_store_link_verbose (pond_store_link_t *self)
{
    return self->verbose;
}

void
pond_store_link_log_once (pond_store_link_t *self, const char *cause, const char *format, ...)
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
    zsys_warning ("store: %s%s", text ? text : cause,
                  first && !self->verbose ? " (logged once)" : "");
    free (text);
}

int
pond_store_link_send (pond_store_link_t *self, zmsg_t **msg_p)
{
    zmsg_t *msg = *msg_p;
    size_t total = zmsg_size (msg);
    size_t index = 0;
    for (zframe_t *frame = zmsg_first (msg); frame; frame = zmsg_next (msg)) {
        index++;
        int flags = ZFRAME_REUSE | ZFRAME_DONTWAIT | (index < total ? ZFRAME_MORE : 0);
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

void
pond_store_link_reply (pond_store_link_t *self, zmsg_t **msg_p)
{
    int rc = pond_store_link_send (self, msg_p);
    if (rc) {
        self->send_failures++;
        pond_store_link_log_once (self, "send", "cannot answer a peer (%s): reply dropped",
                                  rc > 0 ? "its queue is full" : "it is gone");
        zmsg_destroy (msg_p);
    }
}

zmsg_t *
pond_store_link_message (zframe_t *routing_id, const char *command, zframe_t *body)
{
    zmsg_t *msg = zmsg_new ();
    zframe_t *copy = zframe_dup (routing_id);
    if (!msg || !copy || zmsg_append (msg, &copy) || zmsg_addstr (msg, command)
        || (body && zmsg_append (msg, &body))) {
        zframe_destroy (&copy);
        zframe_destroy (&body);
        zmsg_destroy (&msg);
    }
    return msg;
}

void
pond_store_link_refuse (pond_store_link_t *self, zframe_t *routing_id, uint32_t code,
                        const char *cause, const char *format, ...)
{
    char reason [POND_REASON_MAX];
    va_list args;
    va_start (args, format);
    vsnprintf (reason, sizeof reason, format, args);
    va_end (args);
    self->malformed++;
    pond_store_link_log_once (self, cause, "refused a request (%u): %s", code, reason);
    zmsg_t *msg = pond_store_link_message (routing_id, POND_ERROR,
                                           pond_nack_new (NULL, code, 0, "%s", reason));
    if (msg)
        pond_store_link_reply (self, &msg);
}

void
pond_store_link_count_malformed (pond_store_link_t *self, uint64_t count)
{
    self->malformed += count;
}

void
pond_store_link_count_send_failure (pond_store_link_t *self)
{
    self->send_failures++;
}

uint64_t
pond_store_link_malformed (pond_store_link_t *self)
{
    return self->malformed;
}

uint64_t
pond_store_link_send_failures (pond_store_link_t *self)
{
    return self->send_failures;
}
