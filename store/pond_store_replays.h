/*  pond_store_replays: the replay streamer of pond_store_server: every
    replay in progress on the Store link, each paced by its reader's
    credit (REPLAY / CHUNK / CREDIT / CANCEL / END in PROTOCOL.md).

    The server's loop hands it REPLAY, CREDIT and CANCEL messages, gives
    it a turn after reading its input (pond_store_replays_serve), and
    sleeps no longer than pond_store_replays_timeout says.
*/
#ifndef POND_STORE_REPLAYS_H_INCLUDED
#define POND_STORE_REPLAYS_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>
#include "pond_store.h"
#include "pond_store_link.h"
#include "pond_store_server.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _pond_store_replays_t pond_store_replays_t;

//  Replays of store, answered through link; both must outlive the
//  streamer. Returns NULL if memory runs out.
pond_store_replays_t *
    pond_store_replays_new (pond_store_t *store, pond_store_link_t *link);

//  Drops every replay (before the store goes); accepts NULL; nulls the
//  caller's pointer. Chunk buffers ZeroMQ still sends are freed once sent.
void
    pond_store_replays_destroy (pond_store_replays_t **self_p);

//  A replay whose reader grants no credit for msecs is dropped
//  (default POND_REPLAY_TIMEOUT).
void
    pond_store_replays_set_timeout (pond_store_replays_t *self, int msecs);

//  REPLAY: "REPLAY", body (msg holds the frames after the command).
//  Starts a replay, or answers ERROR or END. The caller commits every
//  APPEND read before, so that the replay sees them.
void
    pond_store_replays_handle_replay (pond_store_replays_t *self, zframe_t *routing_id,
                                      zmsg_t *msg);

//  CREDIT and CANCEL: "CREDIT", body {rid, chunks} / "CANCEL", body {rid}.
void
    pond_store_replays_handle_credit (pond_store_replays_t *self, zframe_t *routing_id, zmsg_t *msg,
                                      bool cancel);

//  Give replays a turn, round robin: at most one message each and a few
//  chunks in all, so that the loop reads its input again soon.
void
    pond_store_replays_serve (pond_store_replays_t *self);

//  How long the loop may sleep (msecs): 0 if a replay can send now.
int
    pond_store_replays_timeout (pond_store_replays_t *self);

//  Replays started so far, and in progress now (for STATS).
uint64_t
    pond_store_replays_started (pond_store_replays_t *self);

size_t
    pond_store_replays_active (pond_store_replays_t *self);

#ifdef __cplusplus
}
#endif

#endif
