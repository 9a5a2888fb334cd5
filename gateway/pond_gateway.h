/*  pond_gateway: HTTP/JSON at the edge of a mesh.

    An HTTP server (libmicrohttpd) that speaks to the mesh through the same
    sockets as any client: events go to the broker's ingest socket with
    pond_publisher (ACK once durable, resends of the same id), views are
    asked on the actors' query sockets (pond_actor_link), and /metrics
    reads the broker's STATS and each actor's STATUS.

        POST /v1/events                 one event object or an array of them
        GET  /v1/views/VIEW/ENTITY      a view's JSON answer (?after=SEQ)
        GET  /v1/alexa/ENTITY?q=TEXT    the Alexa view's spoken answer, text
        GET  /v1/events?names=A,B&from=T&to=T   stored events as NDJSON, from a
             /v1/events?entity=E                 replay paced by the client's reading
             /v1/events?from_seq=N&to_seq=M
        GET  /v1/stream?names=A,B&entity=E      live events as Server-Sent Events,
                                                resumed after Last-Event-ID
        GET  /metrics                   Prometheus text format
        GET  /v1/status                 processes, positions, rates, latest events
        GET  /                          the status page (HTML)

    In keys mode (config keys_dir) every request but GET / needs a bearer
    token, and is served as the token's key (pond_gateway_auth.h).

    Every answer that is not a success is a JSON object {"code", "error"}
    with the HTTP status, and a refused request changes nothing.

    Threads: libmicrohttpd runs one thread per connection (and a listener),
    so a request that waits on the mesh or a stream that runs for hours
    holds up no other connection; each connection's ZeroMQ sockets are
    made and used in its thread. One more thread, the live hub, owns the
    SUB socket of the SSE streams. All of them start with the termination
    signals blocked (pond_thread), so the main thread takes them.
*/
#ifndef POND_GATEWAY_H_INCLUDED
#define POND_GATEWAY_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include "pond_views.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _pond_gateway_t pond_gateway_t;

#define POND_GATEWAY_MAX_BODY           (1024 * 1024)    //  bytes of a request body
#define POND_GATEWAY_MAX_CONNECTIONS    64
#define POND_GATEWAY_TIMEOUT_S          10               //  an idle or slow connection is closed
#define POND_GATEWAY_MAX_EVENTS         1024             //  events in one POST
#define POND_GATEWAY_WAIT_MS            2000             //  for one ACK, for a view's answer
#define POND_GATEWAY_MAX_STREAMS        16               //  NDJSON and SSE streams at once
#define POND_GATEWAY_MAX_STREAMS_PER_IP 4                //  ... from one client address
#define POND_GATEWAY_STREAM_QUEUE       (1024 * 1024)    //  bytes queued for one SSE client
#define POND_GATEWAY_HEARTBEAT_S        15               //  SSE comment when no event came
#define POND_GATEWAY_STACK              (2 * 1024 * 1024)    //  each connection thread's stack

typedef struct {
    const char *data_dir;           //  the mesh (broker.zpl, NAME.zpl of actors)
    const char *listen;             //  ADDR:PORT, IPv4; port 0: any free port
    size_t max_body;                //  larger bodies get 413
    unsigned max_connections;       //  more are closed at once
    unsigned max_per_ip;            //  connections from one address (0: max_connections)
    unsigned timeout_s;             //  idle or slow connections are closed after it
    int wait_ms;                    //  one ACK, one view answer
    unsigned max_streams;           //  NDJSON and SSE streams at once; more get 503
    unsigned max_streams_per_ip;    //  ... from one address (0: max_streams)
    size_t stream_queue;            //  bytes queued for one SSE client; past it, it is cut
    unsigned heartbeat_s;           //  SSE heartbeat comment after this many idle seconds
    const char *keys_dir;           //  keys mode: bearer tokens (pond_gateway_auth); NULL: local
    bool verbose;
    //  Where the mesh is when not in data_dir (another host): the broker's
    //  endpoints, each actor's query endpoint (in pond_views_actors order);
    //  NULL: from data_dir
    const char *ingest;
    const char *pub;
    const char *control;
    const char *actors [POND_VIEWS];
} pond_gateway_config_t;

//  Fill config with the defaults for data_dir (127.0.0.1:0 and the
//  POND_GATEWAY_* values).
void
    pond_gateway_config_defaults (pond_gateway_config_t *config, const char *data_dir);

//  Bind and start serving in libmicrohttpd's thread. Returns NULL (the
//  reason logged) if the address is invalid or cannot be bound, or an
//  endpoint is too long. The config's strings are copied.
pond_gateway_t *
    pond_gateway_new (const pond_gateway_config_t *config);

//  Stop serving and free; accepts NULL; nulls the caller's pointer.
void
    pond_gateway_destroy (pond_gateway_t **self_p);

//  The URL bound, like http://127.0.0.1:8080 (the real port when 0 was
//  asked for).
const char *
    pond_gateway_url (pond_gateway_t *self);

#ifdef __cplusplus
}
#endif

#endif
