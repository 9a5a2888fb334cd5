/*  pond_gateway_internal: what the files of pond-gateway share, and no
    one else sees.

    The server (pond_gateway.c) keeps the routing table and the handlers
    of single requests; the streams (pond_gateway_stream.c) are the
    handlers of GET /v1/events (NDJSON from a replay) and GET /v1/stream
    (Server-Sent Events, live), over the live hub that the server starts.

    A handler runs in the thread of its connection (one thread per
    connection): it may block, and any ZeroMQ socket it makes is its own.
    What handlers share is in pond_gateway_t: the config (read only) and
    counters (atomic).
*/
#ifndef POND_GATEWAY_INTERNAL_H_INCLUDED
#define POND_GATEWAY_INTERNAL_H_INCLUDED

#include "pond_gateway.h"
#include "pond_gateway_auth.h"
#include "pond_client.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#ifdef __cplusplus
extern "C" {
#endif

#define POND_GATEWAY_JSON_TYPE "application/json"
#define POND_GATEWAY_TEXT_TYPE "text/plain; charset=utf-8"

typedef struct _pond_gateway_hub_t pond_gateway_hub_t;

struct _pond_gateway_t {
    pond_gateway_config_t config;
    char *data_dir;
    //  Endpoints given (another host's mesh), else "": see pond_gateway_endpoints
    char ingest [POND_ENDPOINT_MAX];
    char pub [POND_ENDPOINT_MAX];
    char control [POND_ENDPOINT_MAX];
    char actors [POND_VIEWS][POND_ENDPOINT_MAX];
    struct MHD_Daemon *daemon;
    char url [64];
    pond_gateway_hub_t *hub;      //  live events for the SSE streams
    pond_gateway_auth_t *auth;    //  who serves a request (keys mode: its token's key)
    atomic_bool stopping;         //  set first by destroy: streams end
    //  Counters, written by every connection's thread
    atomic_uint_fast64_t requests;
    atomic_uint_fast64_t events_stored;
    atomic_uint_fast64_t events_dup;
    atomic_uint_fast64_t events_refused;
    atomic_uint_fast64_t replies [6];    //  by status class: 1xx .. 5xx, [0] other
    atomic_uint open;                    //  connections open now
    atomic_uint_fast64_t connections_refused;
    atomic_uint streams;    //  NDJSON and SSE streams open now
    //  Streams open by client address (IPv4, network order), under the mutex
    pthread_mutex_t stream_slots_mutex;
    struct {
        uint32_t address;
        unsigned count;                       //  0: a free entry
    } * stream_slots;                         //  max_streams entries
    atomic_uint_fast64_t streams_refused;     //  503: --max-streams reached
    atomic_uint_fast64_t streams_cut;         //  SSE clients cut (slow, or a gap)
    atomic_uint_fast64_t stream_events;       //  events sent on streams
    atomic_int_fast64_t stream_bytes;         //  bytes streams hold now
    atomic_int_fast64_t stream_bytes_peak;    //  most held at once by one stream
};

//  The broker's endpoints: those of the data directory (DIR/broker.zpl),
//  but for those given on the command line. Returns 0, or -1 if the data
//  directory's path is too long.
int
    pond_gateway_endpoints (pond_gateway_t *self, pond_endpoints_t *eps);

//  One request while its body arrives
typedef struct {
    char *body;
    size_t size;
    bool too_large;
} pond_gateway_request_t;

//  A route's handler: rest is what follows the route's path (the entity
//  of /v1/views/VIEW/ENTITY, "" for an exact path), request the body.
typedef enum MHD_Result (*pond_gateway_handler_fn) (pond_gateway_t *self,
                                                    struct MHD_Connection *connection,
                                                    const char *rest,
                                                    pond_gateway_request_t *request);

//  Queue a reply with body (copied) and content type; retry_after_s > 0
//  adds Retry-After, allow (not NULL) Allow. Returns what the access
//  handler returns.
enum MHD_Result
    pond_gateway_reply (pond_gateway_t *self, struct MHD_Connection *connection, unsigned status,
                        const char *type, const char *body, unsigned retry_after_s,
                        const char *allow);

//  Reply {"code":status,"error":reason}
enum MHD_Result
    pond_gateway_reply_error (pond_gateway_t *self, struct MHD_Connection *connection,
                              unsigned status, unsigned retry_after_s, const char *format, ...)
        __attribute__ ((format (printf, 5, 6)));

//  The HTTP status for a code of the protocol or of the client library,
//  and the Retry-After seconds for it (0: none)
unsigned
    pond_gateway_http_status (int code, uint32_t retry_ms, unsigned *retry_after_s);

//  Count bytes a stream holds now (delta may be negative) and remember
//  now as a peak if it is one (held: what that stream holds in all).
void
    pond_gateway_stream_held (pond_gateway_t *self, int64_t delta, int64_t held);

//  ---------------------------------------------------------------------
//  Streams (pond_gateway_stream.c)

//  GET /v1/events?names=A,B&from=&to= | entity=E | from_seq=&to_seq=
//  (&limit=N): NDJSON from a replay, credit granted as the client reads
enum MHD_Result
    pond_gateway_get_events (pond_gateway_t *self, struct MHD_Connection *connection,
                             const char *rest, pond_gateway_request_t *request);

//  GET /v1/stream?names=A,B&entity=E: Server-Sent Events, live, resumed
//  after Last-Event-ID from the log
enum MHD_Result
    pond_gateway_get_stream (pond_gateway_t *self, struct MHD_Connection *connection,
                             const char *rest, pond_gateway_request_t *request);

//  The live hub: one thread with one SUB socket (made while streams are
//  open) that copies each event into the bounded queue of every SSE
//  stream it matches. Returns NULL if the thread cannot start.
pond_gateway_hub_t *
    pond_gateway_hub_new (pond_gateway_t *gateway);

//  Stop the hub's thread and free; accepts NULL; nulls the pointer. Every
//  stream must have ended before (MHD_stop_daemon joins them).
void
    pond_gateway_hub_destroy (pond_gateway_hub_t **self_p);

//  Wake every stream waiting on the hub (the gateway is stopping).
void
    pond_gateway_hub_wake_all (pond_gateway_hub_t *self);

#ifdef __cplusplus
}
#endif

#endif
