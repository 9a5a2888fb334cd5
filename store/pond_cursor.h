/*  pond_cursor: a cursor over the log of a pond_store, as it was when the
    cursor was made (a RocksDB snapshot).

    Three modes, chosen by the request like REPLAY in PROTOCOL.md: by
    names (a k-way merge of one by_name iterator per name, ordered by
    (ts, seq), within [from_ts, to_ts)); else by entity (by_entity, ordered
    by seq); else the log itself within [from_seq, to_seq). The cursor holds
    iterators, never the result, so its memory is flat however long the
    replay: each fill reads just the events it hands out.
*/
#ifndef POND_CURSOR_H_INCLUDED
#define POND_CURSOR_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>
#include "pond_proto.h"
#include "pond_store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _pond_cursor_t pond_cursor_t;

//  Start a replay of the store as it is now. The request is copied (rid
//  and credit are not used here). Returns NULL if memory runs out. The
//  store must outlive the replay.
pond_cursor_t *
    pond_cursor_new (pond_store_t *store, const pond_replay_req_t *request);

//  Release iterators and snapshot; accepts NULL; nulls the caller's pointer.
void
    pond_cursor_destroy (pond_cursor_t **self_p);

//  Append the next stored events to msg, one frame each (or, if the
//  request asked to pack, all in one frame, back to back): at most
//  max_events, and no more than max_bytes of events (but always at least
//  one event, so that a large event cannot stall the replay). Returns the
//  number of events appended. 0 means finished, except in log mode with a
//  names filter, where a fill that skipped a long stretch of other names
//  may append nothing: pond_cursor_done tells. Returns -1 if reading
//  failed; pond_cursor_error then says why.
int
    pond_cursor_fill (pond_cursor_t *self, zmsg_t *msg, size_t max_events, size_t max_bytes);

//  Like pond_cursor_fill, but always packed, into the caller's buffer of
//  capacity bytes (so that a server can send it as the frame itself,
//  without copying): the events back to back, their size in *size_p. An
//  event larger than capacity fails the replay. Returns as
//  pond_cursor_fill.
int
    pond_cursor_fill_buffer (pond_cursor_t *self, uint8_t *buffer, size_t capacity, size_t *size_p,
                             size_t max_events);

//  True if the request asked for packed chunks.
bool
    pond_cursor_packs (pond_cursor_t *self);

//  True when there is nothing more to send: every event was sent, the
//  limit is reached, or reading failed. Does not consume anything.
bool
    pond_cursor_done (pond_cursor_t *self);

//  Events handed out so far.
//  The newest seq stored when the replay began (its snapshot's head).
uint64_t
    pond_cursor_head (pond_cursor_t *self);

uint64_t
    pond_cursor_count (pond_cursor_t *self);

//  Why the replay failed, or NULL if it did not.
const char *
    pond_cursor_error (pond_cursor_t *self);

#ifdef __cplusplus
}
#endif

#endif
