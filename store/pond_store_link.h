/*  pond_store_link: how pond_store_server answers on its ROUTER socket,
    shared by the loop, the group-commit writer and the replay streamer.

    Nothing is sent blocking: a reply the peer cannot take now is dropped
    and counted, a refused request gets ERROR {code, reason} and is
    counted, and each cause of a warning is logged once (every time if
    verbose). The counters go into STATS.
*/
#ifndef POND_STORE_LINK_H_INCLUDED
#define POND_STORE_LINK_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _pond_store_link_t pond_store_link_t;

//  A link that answers on router (not owned: it must outlive the link).
//  Returns NULL if memory runs out.
pond_store_link_t *
    pond_store_link_new (zsock_t *router);

//  Accepts NULL; nulls the caller's pointer.
void
    pond_store_link_destroy (pond_store_link_t **self_p);

//  The socket the link answers on.
zsock_t *
    pond_store_link_router (pond_store_link_t *self);

void
    pond_store_link_set_verbose (pond_store_link_t *self, bool verbose);

bool
    pond_store_link_verbose (pond_store_link_t *self);

//  Log a warning the first time this cause happens (every time if
//  verbose). Causes are fixed strings, so the set stays small.
void
    pond_store_link_log_once (pond_store_link_t *self, const char *cause, const char *format, ...)
        CHECK_PRINTF (3);

//  Send without blocking. Returns 0 if sent, 1 if the peer cannot take it
//  now (the message is kept), -1 if the peer is gone (message destroyed).
int
    pond_store_link_send (pond_store_link_t *self, zmsg_t **msg_p);

//  Send a reply (not a CHUNK); a reply that cannot go is dropped and
//  counted as a send failure.
void
    pond_store_link_reply (pond_store_link_t *self, zmsg_t **msg_p);

//  Answer ERROR {code, reason} and count a refused request.
void
    pond_store_link_refuse (pond_store_link_t *self, zframe_t *routing_id, uint32_t code,
                            const char *cause, const char *format, ...) CHECK_PRINTF (5);

//  A message to routing_id: the command, then body if not NULL (taken).
//  Returns NULL if memory runs out. Caller owns the message.
zmsg_t *
    pond_store_link_message (zframe_t *routing_id, const char *command, zframe_t *body);

//  Count requests refused without pond_store_link_refuse, and sends that
//  failed outside pond_store_link_reply.
void
    pond_store_link_count_malformed (pond_store_link_t *self, uint64_t count);

void
    pond_store_link_count_send_failure (pond_store_link_t *self);

//  The counters, for STATS.
uint64_t
    pond_store_link_malformed (pond_store_link_t *self);

uint64_t
    pond_store_link_send_failures (pond_store_link_t *self);

#ifdef __cplusplus
}
#endif

#endif
