/*  pond.h: the public API of libpond-client, in one include.

    Link with pkg-config: cc app.c $(pkg-config --cflags --libs pond-client)
    and write #include <pond/pond.h>. What is here:

    - pond_client.h      endpoints of a mesh; publish with ACK
                         (pond_client_t); the pipelined producer
                         (pond_publisher_t); live events (pond_sub_t);
                         replay with credit (pond_reader_t); STATS
    - pond_actor_link.h  queries, status and commands to an actor's query
                         socket
    - pond_event.h       the event: build, validate, encode, decode, JSON
    - pond_messages.h    reply codes, limits, ACK, NACK, the REPLAY request
    - pond_uuid.h        event ids (UUIDv7) made by the producer
    - pond_time.h        event time (microseconds since the Unix epoch)
    - pond_identity.h    CURVE keys of the process (pond_keys_use)

    PROTOCOL.md (proto/ in the source tree, share/doc/pond/ where pond is
    installed) says what goes over the wire, for clients in other languages.
*/
#ifndef POND_H_INCLUDED
#define POND_H_INCLUDED

#include "pond_export.h"
#include "pond_event.h"
#include "pond_messages.h"
#include "pond_uuid.h"
#include "pond_time.h"
#include "pond_identity.h"
#include "pond_client.h"
#include "pond_actor_link.h"

#endif
