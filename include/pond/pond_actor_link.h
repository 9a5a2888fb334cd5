/*  pond_actor_link: the command line's side of an actor's query socket.

    Every actor of a mesh writes DIR/NAME.zpl with actor/query (its ROUTER
    endpoint) and actor/pid once it is ready (proto/PROTOCOL.md, "Actor
    query socket"). A link reads that file, connects a DEALER, and sends
    one request at a time: QUERY, STATUS, DUMP or COMMAND, waiting for the
    RESULT (JSON text) or the ERROR (code, reason). A COMMAND may send
    PROGRESS messages first; they are passed to a callback and each one
    restarts the wait, so a long rebuild never times out while it moves.
    After a timeout the socket is recreated, so a late reply to an old
    request can never be taken for the answer to a new one. When the ready
    file names the actor's key (actor/key) and the process has keys
    (pond_keys_use), the link speaks CURVE with that key, whose public half
    must be in the keys directory with role actor.
*/
#ifndef POND_ACTOR_LINK_H_INCLUDED
#define POND_ACTOR_LINK_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include "pond_export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _pond_actor_link_t pond_actor_link_t;

//  Called for each PROGRESS of a command
typedef void (pond_actor_progress_fn) (uint64_t done, uint64_t total, void *arg);

//  Open a link to actor name (e.g. "badge-granter") of the mesh in
//  data_dir. Returns NULL, with the reason and what to do in err, if
//  DIR/NAME.zpl is missing or names no query endpoint.
POND_EXPORT pond_actor_link_t *
    pond_actor_link_new (const char *data_dir, const char *name, char *err, size_t errlen);

//  Open a link to actor name at a query endpoint given (an actor on another
//  host: tcp://HOST:PORT), without its ready file. With keys the link
//  speaks CURVE to the key named key (NULL: name, an actor's default key).
//  Returns NULL, with the reason in err, if name or endpoint is empty or
//  too long.
POND_EXPORT pond_actor_link_t *
    pond_actor_link_new_at (const char *name, const char *endpoint, const char *key, char *err,
                            size_t errlen);

//  Destroy; accepts NULL; nulls the caller's pointer.
POND_EXPORT void
    pond_actor_link_destroy (pond_actor_link_t **self_p);

//  The actor's query endpoint and pid, as its ready file says.
POND_EXPORT const char *
    pond_actor_link_endpoint (pond_actor_link_t *self);
POND_EXPORT int
    pond_actor_link_pid (pond_actor_link_t *self);

//  QUERY entity [text]: returns the RESULT's JSON text (caller frees), or
//  NULL: see pond_actor_link_code and pond_actor_link_reason.
POND_EXPORT char *
    pond_actor_link_query (pond_actor_link_t *self, const char *entity, const char *text,
                           int timeout_ms);

//  Same, answered once the view has applied seq after (0: no such
//  condition; read your writes: pass the seq an ACK gave). A view still
//  catching up, or not yet at after, answers 503; the link asks again
//  every retry_ms until timeout_ms is over, then returns NULL with that
//  503 (the reason says the view's position).
POND_EXPORT char *
    pond_actor_link_query_after (pond_actor_link_t *self, const char *entity, const char *text,
                                 uint64_t after, int timeout_ms);

//  Time travel: the answer of the view as it stood after the log up to
//  seq at_seq (when as_of_us is 0), or after the events whose time is at
//  most as_of_us (microseconds since the epoch; at_seq is then ignored).
//  The actor rebuilds that view from the log into a scratch view, which
//  is a replay: it may take seconds (the actor gives up after 30 s with
//  408). Its RESULT carries "as_of_seq". An actor busy with another such
//  query answers 503; the link asks again after retry_ms until
//  timeout_ms is over. 404 if the entity was unknown then, 400 for a seq
//  beyond the head, 501 if the view does not support it.
POND_EXPORT char *
    pond_actor_link_query_as_of (pond_actor_link_t *self, const char *entity, const char *text,
                                 uint64_t at_seq, uint64_t as_of_us, int timeout_ms);

//  STATUS: returns the RESULT's JSON text (caller frees) or NULL.
POND_EXPORT char *
    pond_actor_link_status (pond_actor_link_t *self, int timeout_ms);

//  DUMP: returns the RESULT's JSON text (caller frees) or NULL.
POND_EXPORT char *
    pond_actor_link_dump (pond_actor_link_t *self, int timeout_ms);

//  COMMAND command with args (JSON text, may be NULL): waits up to
//  idle_timeout_ms for each PROGRESS or the RESULT, calling progress (may
//  be NULL) for each PROGRESS. Returns the RESULT's JSON text (caller
//  frees) or NULL.
POND_EXPORT char *
    pond_actor_link_command (pond_actor_link_t *self, const char *command, const char *args,
                             int idle_timeout_ms, pond_actor_progress_fn *progress, void *arg);

//  Why the last request failed: the actor's ERROR code (400, 404, 503...),
//  or POND_CODE_TIMEOUT (408), POND_CODE_BAD_REPLY (502),
//  POND_CODE_INTERRUPTED (499); 0 if it did not fail.
POND_EXPORT int
    pond_actor_link_code (pond_actor_link_t *self);

//  ... and in words ("" if it did not fail).
POND_EXPORT const char *
    pond_actor_link_reason (pond_actor_link_t *self);

#ifdef __cplusplus
}
#endif

#endif
