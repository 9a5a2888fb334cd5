/*  pond_store_writer: the group-commit writer of pond_store_server:
    APPENDs prepared into groups as they are read, each group committed in
    one synced WriteBatch by a writer thread while the next one fills, and
    each APPEND answered with its APPENDED once its group is written
    (APPEND / APPENDED in PROTOCOL.md).

    The server's loop hands it every APPEND it reads, then, at the end of
    each turn of reading, pond_store_writer_hand_over; it polls the
    writer's socket while the writer is busy and then calls
    pond_store_writer_collect.
*/
#ifndef POND_STORE_WRITER_H_INCLUDED
#define POND_STORE_WRITER_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>
#include "pond_store.h"
#include "pond_store_link.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _pond_store_writer_t pond_store_writer_t;

//  A writer for store, answering through link; both must outlive it.
//  Starts the writer thread. Returns NULL if memory runs out.
pond_store_writer_t *
    pond_store_writer_new (pond_store_t *store, pond_store_link_t *link);

//  Finishes the group being written (its APPENDs are not answered: the
//  broker resends them and gets dups), stops the thread and undoes what
//  was prepared and not written. Accepts NULL; nulls the caller's pointer.
void
    pond_store_writer_destroy (pond_store_writer_t **self_p);

//  APPEND: "APPEND", body {bid}, event, event, ... (msg holds the frames
//  after the command). Decoded, validated and prepared now, answered once
//  its group is written (or at once, with ERROR, if unreadable).
void
    pond_store_writer_handle_append (pond_store_writer_t *self, zframe_t *routing_id, zmsg_t *msg);

//  After a turn of reading `read` messages: hand the group they made to
//  the writer if it is idle (else it goes as soon as the writer is done).
//  A lone APPEND with the writer idle (one producer waiting for each ACK)
//  is written right here: nothing would overlap with its sync, and the
//  hand-over would cost two thread wake-ups.
void
    pond_store_writer_hand_over (pond_store_writer_t *self, size_t read);

//  Write every APPEND read so far and answer it, waiting for the writer
//  (before a STATS or REPLAY, so that these see every APPEND sent before).
void
    pond_store_writer_commit (pond_store_writer_t *self);

//  If the writer has answered, answer the group it wrote and hand it the
//  next one. Does not wait.
void
    pond_store_writer_collect (pond_store_writer_t *self);

//  Wait for the group being written, and answer it.
void
    pond_store_writer_wait (pond_store_writer_t *self);

//  True if the writer answered something other than the group it was
//  given: the server must stop and answer nothing more.
bool
    pond_store_writer_lost (pond_store_writer_t *self);

//  True while the writer writes a group (then poll its handle).
bool
    pond_store_writer_busy (pond_store_writer_t *self);

//  The writer's socket handle, for zmq_poll.
void *
    pond_store_writer_handle (pond_store_writer_t *self);

//  Events refused 409 so far (an id used for another event), for STATS.
uint64_t
    pond_store_writer_conflicts (pond_store_writer_t *self);

#ifdef __cplusplus
}
#endif

#endif
