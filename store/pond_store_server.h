/*  pond_store_server: the store on a socket, the "Store link" of
    proto/PROTOCOL.md.

    One ROUTER, bound to an endpoint, speaks APPEND/APPENDED with group
    commit (every APPEND already queued goes into one synced WriteBatch;
    a writer thread writes one group while the next one fills),
    REPLAY/CHUNK/CREDIT/CANCEL/END with credit flow control, STATS and
    PING. Anything it cannot read gets an ERROR and changes nothing.
*/
#ifndef POND_STORE_SERVER_H_INCLUDED
#define POND_STORE_SERVER_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include "pond_store.h"

#ifdef __cplusplus
extern "C" {
#endif

//  A replay whose reader grants no credit for this long is dropped
#define POND_REPLAY_TIMEOUT 15000    //  msecs (the broker drops one at 10 s)

typedef struct _pond_store_server_t pond_store_server_t;

//  Create a server for the store, bound to endpoint (any ZeroMQ endpoint;
//  tcp://127.0.0.1:* picks a free port). Returns NULL, after one log line,
//  if the endpoint cannot be bound. The store must outlive the server.
pond_store_server_t *
    pond_store_server_new (pond_store_t *store, const char *endpoint);

//  Stop every replay and close the socket; accepts NULL; nulls the
//  caller's pointer.
void
    pond_store_server_destroy (pond_store_server_t **self_p);

//  The endpoint actually bound (with the port tcp picked).
const char *
    pond_store_server_endpoint (pond_store_server_t *self);

//  Log every replay and every refused request, not only the first of a kind.
void
    pond_store_server_set_verbose (pond_store_server_t *self, bool verbose);

//  Drop a replay after this many msecs without credit (default
//  POND_REPLAY_TIMEOUT).
void
    pond_store_server_set_replay_timeout (pond_store_server_t *self, int msecs);

//  Serve until interrupted (SIGINT/SIGTERM set zsys_interrupted) or, if
//  pipe is not NULL, until "$TERM" arrives on it (then zsys_interrupted is
//  the owner's business, not the server's). Returns 0, or -1 if its
//  writer thread was lost (it answered anything but the group it was
//  given): then the APPENDs in flight were not answered, and the process
//  should exit and be restarted (the broker resends them).
int
    pond_store_server_run (pond_store_server_t *self, zsock_t *pipe);

//  The server as a zactor: zactor_new (pond_store_server_actor, server).
//  The actor serves the server until zactor_destroy; the caller keeps
//  ownership of the server and destroys it after the actor. If the
//  writer thread is lost the actor sends POND_STORE_SERVER_LOST on its
//  pipe and answers nothing more: the owner must stop (and be restarted).
//  An inproc:// endpoint runs without keys even when the process uses
//  them: nothing outside the process can reach it.
#define POND_STORE_SERVER_LOST "LOST"

void
    pond_store_server_actor (zsock_t *pipe, void *server);

#ifdef __cplusplus
}
#endif

#endif
