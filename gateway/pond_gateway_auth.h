/*  pond_gateway_auth: who the gateway is, towards the mesh, for a request.

    Local mode (no keys): every request is served by the gateway itself, no
    token asked, as on loopback before.

    Keys mode (pond-gateway --keys DIR): a request must carry
    `Authorization: Bearer TOKEN`, a token `pond keys token NAME` issued
    for an app, device or admin key (pond_tokens.h). The request is then
    served AS that key: the sockets made for it (to the broker, to the
    actors) speak CURVE with key NAME's pair, so the mesh applies NAME's
    rules exactly as for a CURVE client of that key (an app key reads and
    publishes only for its customers, the control socket is the admin's),
    and the broker stamps NAME as the source of what it publishes. No
    token, a malformed, unknown or revoked one, or a removed key: 401.

    Each key's identity (a session: its key pair and the broker's public
    key, loaded once) is kept for the next request of that key, up to
    max_sessions keys (the least recently used is dropped beyond). A session serves one request at a
    time: a thread that finds its key's session busy gets a session of its
    own for that request. Sessions are checked out and back under a lock,
    so several server threads may call begin/end at once.

    While a thread serves a request (between begin and end) the sockets it
    makes speak as the session's key (pond_keys_thread_use). A socket
    keeps the key it was made with: whoever keeps sockets between requests
    (the gateway keeps them per connection) must drop them when the next
    request is another key's (pond_gateway_auth_key says whose it is).
*/
#ifndef POND_GATEWAY_AUTH_H_INCLUDED
#define POND_GATEWAY_AUTH_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define POND_GATEWAY_AUTH_SESSIONS   32     //  keys whose connections are kept
#define POND_GATEWAY_AUTH_HEADER_MAX 512    //  longer Authorization headers: 401

typedef struct _pond_gateway_auth_t pond_gateway_auth_t;
typedef struct _pond_gateway_session_t pond_gateway_session_t;

//  Create for the mesh of data_dir; keys_dir NULL (or "") is local mode.
//  Returns NULL if out of memory.
pond_gateway_auth_t *
    pond_gateway_auth_new (const char *data_dir, const char *keys_dir, size_t max_sessions);

//  Destroy, with every session; accepts NULL; nulls the caller's pointer.
//  No request may be served any more.
void
    pond_gateway_auth_destroy (pond_gateway_auth_t **self_p);

//  True in keys mode.
bool
    pond_gateway_auth_keys (pond_gateway_auth_t *self);

//  Begin serving a request whose Authorization header is authorization
//  (NULL if none). Returns the session that serves it, which the calling
//  thread speaks as until pond_gateway_auth_end; or NULL with the HTTP
//  status in *status_p (401: no valid token, the reason says which; 500:
//  the gateway cannot load the key's pair) and the reason in reason.
pond_gateway_session_t *
    pond_gateway_auth_begin (pond_gateway_auth_t *self, const char *authorization,
                             unsigned *status_p, char *reason, size_t size);

//  End serving: the thread speaks as before, the session is kept for the
//  key's next request (or dropped). Accepts NULL; nulls the pointer.
void
    pond_gateway_auth_end (pond_gateway_auth_t *self, pond_gateway_session_t **session_p);

//  May the key the calling thread serves as see the events of entity
//  (NULL: of every entity)? The rule of an actor's query socket
//  (pond_key_may_query, pond_key_may_ask): admin and actor keys see all,
//  an app key only its customers, one at a time, a device key none. For
//  what the gateway serves from its own subscription (GET /v1/stream),
//  which the mesh cannot check. True in local mode. Returns true, or false
//  with the reason.
bool
    pond_gateway_auth_may_see (pond_gateway_auth_t *self, const char *entity, char *reason,
                               size_t size);

//  The key the calling thread serves as, or NULL (local mode, or none).
const char *
    pond_gateway_auth_key (pond_gateway_auth_t *self);

#ifdef __cplusplus
}
#endif

#endif
