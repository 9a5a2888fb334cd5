/*  pond_outbox: a device's durable outbox and its own state, in RocksDB.

    Offline first: every event a device creates is written here, WAL
    synced, before anything tries to send it, and leaves only when the
    broker has ACKed it. A crash therefore loses nothing the device
    created, and a resend after a crash carries the same id (the broker
    answers with the original seq: nothing doubles).

    The same database keeps what the device knows for itself: its
    containers (the device is the source of truth of its own labels) and
    its counters. An event and the state change it stands for are staged
    together and committed in one synced WriteBatch, so they can never
    disagree after a crash.

    Keys (one RocksDB, no column families):

      'o' local-seq (8 bytes, big endian)  -> encoded event waiting for its ACK
      'x' local-seq (8 bytes, big endian)  -> event the broker refused for good
      'c' container                        -> {"state": "LABELED", "label": "milk"}
      'm' name                             -> counter (8 bytes BE) or text note

    The local sequence numbers the device's events 1, 2, 3, ... over its
    whole life; big-endian keys make RocksDB's order the creation order.
*/
#ifndef POND_OUTBOX_H_INCLUDED
#define POND_OUTBOX_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _pond_outbox_t pond_outbox_t;

//  One queued event, as read back from the outbox
typedef struct {
    uint64_t seq;      //  local sequence number
    uint8_t *bytes;    //  encoded event (msgpack, no seq); owned
    size_t size;
} pond_outbox_entry_t;

//  Lifetime counters, kept in the database
typedef struct {
    uint64_t last_seq;    //  local seq of the newest event created
    uint64_t created;     //  events ever created
    uint64_t sent;        //  events ever ACKed (and so removed)
    uint64_t dups;        //  ... of which the broker had stored before
    uint64_t rejected;    //  events the broker refused for good
    uint64_t queued;      //  events in the outbox now
} pond_outbox_stats_t;

//  Open (creating if missing) the outbox at path; the parent directory must
//  exist. With read_only the outbox must exist and is only read, even while
//  another process has it open; nothing can be staged or removed. Returns
//  NULL with the reason logged (e.g. another process holds the database).
pond_outbox_t *
    pond_outbox_new (const char *path, bool read_only);

//  Close; accepts NULL; nulls the caller's pointer. Staged, uncommitted
//  changes are dropped.
void
    pond_outbox_destroy (pond_outbox_t **self_p);

//  Stage an encoded event for the next commit. Returns the local seq it
//  will have (assigned now, in staging order).
uint64_t
    pond_outbox_stage (pond_outbox_t *self, const uint8_t *bytes, size_t size);

//  Stage the new state of one of the device's containers.
void
    pond_outbox_stage_container (pond_outbox_t *self, const char *container, const char *state,
                                 const char *label);

//  Stage a text note (e.g. "customer").
void
    pond_outbox_stage_note (pond_outbox_t *self, const char *name, const char *text);

//  Write everything staged in one synced WriteBatch. Returns 0, or -1 with
//  the reason logged: then nothing was written and the local seqs staged
//  are given back.
int
    pond_outbox_commit (pond_outbox_t *self);

//  Drop everything staged since the last commit (an action that could not
//  be built completely creates nothing).
void
    pond_outbox_discard (pond_outbox_t *self);

//  Read up to max queued events whose local seq is greater than after, in
//  order, into entries. Returns how many were read, or -1 (logged). The
//  caller frees each entry's bytes (pond_outbox_entry_clear).
int
    pond_outbox_read (pond_outbox_t *self, uint64_t after, pond_outbox_entry_t *entries, int max);

//  Free an entry's bytes and zero it.
void
    pond_outbox_entry_clear (pond_outbox_entry_t *entry);

//  The broker ACKed the event with this local seq: remove it and count it
//  (dup: the broker had it already). Not synced: if a power cut loses the
//  removal, the event is only sent again and the broker dedups it.
//  Returns 0, or -1 (logged).
int
    pond_outbox_ack (pond_outbox_t *self, uint64_t seq, bool dup);

//  The broker refused the event for good (malformed, too large): move it
//  aside so it no longer blocks the queue. Returns 0, or -1 (logged).
int
    pond_outbox_reject (pond_outbox_t *self, uint64_t seq);

//  Look up one container. Returns 0 with its state and label copied, or -1
//  if the device never labeled it.
int
    pond_outbox_container (pond_outbox_t *self, const char *container, char *state,
                           size_t state_size, char *label, size_t label_size);

//  Every container as a JSON object { container: {state, label}, ... }.
//  Caller owns the tree. NULL if memory ran out or reading failed (logged).
cJSON *
    pond_outbox_containers (pond_outbox_t *self);

//  A text note, or NULL if never written. Caller frees.
char *
    pond_outbox_note (pond_outbox_t *self, const char *name);

//  The lifetime counters.
void
    pond_outbox_stats (pond_outbox_t *self, pond_outbox_stats_t *stats);

#ifdef __cplusplus
}
#endif

#endif
