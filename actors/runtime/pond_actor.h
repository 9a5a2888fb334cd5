/*  pond_actor: the runtime every actor shares, so that an actor is only its
    event handlers and its query handler.

    The runtime connects to the broker (endpoints from DIR/broker.zpl),
    subscribes to the pub socket, owns the actor's view (pond_view), and
    applies events strictly in seq order, each in one atomic write with its
    seq. On start it catches up from the store (REPLAY order "seq" from the
    view's position + 1, filtered by the actor's names), buffering live
    events meanwhile and dropping those already applied; then it continues
    live. It notices it may have missed something - a jump in seq among the
    live events it receives (it subscribes to every event so that any gap in
    the global seq shows), a heartbeat whose head is beyond its position
    while nothing arrives, a silence of several heartbeats - and catches up
    again. It serves queries and commands on its own ROUTER socket
    (PROTOCOL.md, "Actor query socket") and stops cleanly on SIGTERM.

    Modes (command line of every actor, parsed by pond_actor_main):
      pond-NAME [--data DIR] [--view PATH] [--query EP] [--verbose]
                [--keys DIR [--as NAME]]   CURVE everywhere (pond_keys.h)
      pond-NAME --rebuild ...   drop the view, rebuild from the log, go live
      pond-NAME --verify ...    rebuild into a scratch view up to the live
                                actor's position, compare, exit 0 or 1
*/
#ifndef POND_ACTOR_H_INCLUDED
#define POND_ACTOR_H_INCLUDED

#include "pond_event.h"
#include "pond_proto.h"
#include "pond_view.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _pond_actor_t pond_actor_t;

typedef struct {
    //  Short name: process pond-NAME, view DIR/views/NAME, query socket
    //  ipc://DIR/NAME.ipc, ready file DIR/NAME.zpl
    const char *name;
    //  Event names the actor applies, NULL-terminated
    const char *const *names;
    //  One paragraph for --help: what the actor keeps and answers
    const char *description;

    //  Apply one event (already decoded and valid; seq set) to the view,
    //  inside the runtime's begin/commit. May emit events with
    //  pond_actor_emit. Returns 0, or -1 to refuse the event: the runtime
    //  rolls back, logs it once with the event's seq, and stops (a view
    //  that cannot apply the log is a bug to fix, not to skip).
    int (*apply) (pond_actor_t *actor, pond_view_t *view, const pond_event_t *event, void *state);

    //  Answer a query about entity (text may be NULL or ""). Returns a JSON
    //  text (caller frees), or NULL after pond_actor_set_error.
    char *(*query) (pond_actor_t *actor, pond_view_t *view, const char *entity, const char *text,
                    void *state);

    //  Optional: run a command (e.g. "recompute") with JSON args. May call
    //  pond_actor_progress, pond_actor_replay and pond_actor_emit. Returns
    //  a JSON text result (caller frees), or NULL after pond_actor_set_error.
    char *(*command) (pond_actor_t *actor, pond_view_t *view, const char *command, const char *args,
                      void *state);

    //  Optional: called once before anything is applied, e.g. to load
    //  rules from the view. Returns 0 or -1 (the actor exits). Called
    //  again on the new, empty view after a "rebuild" command.
    int (*start) (pond_actor_t *actor, pond_view_t *view, void *state);

    //  Optional: check that the view agrees with the actor's own rules
    //  (pond-NAME --verify runs it on the rebuilt view). Returns NULL if
    //  it does, else a text naming what disagrees, for a human (caller
    //  frees).
    char *(*check) (pond_actor_t *actor, pond_view_t *view, void *state);

    //  Time travel: true if apply, start and query work with state NULL
    //  and change nothing but the view they are given. Then a QUERY with
    //  at_seq / as_of is answered from a scratch view that a worker thread
    //  rebuilds from the log up to then (state NULL, emitting off); else
    //  such a QUERY gets 501.
    bool as_of;

    void *state;    //  the actor's own, owned by its main
} pond_actor_spec_t;

//  The whole life of an actor process: parse the standard options (see
//  above; extra_usage is appended to --help), run until SIGTERM/SIGINT.
//  Returns the process exit code (0 ok, 1 failure, 2 usage).
int
    pond_actor_main (const pond_actor_spec_t *spec, int argc, char *argv [],
                     const char *extra_usage);

//  Emit an event through the write point and wait until it is durable
//  (ACK). Give it a deterministic id (pond_actor_derive_id) so that applying
//  the same input again - after a crash, during a rebuild - produces a
//  duplicate the store ignores. The same input may build the event with
//  another ts (now): the store then answers 409 (id used for a different
//  event), which for a derived id means "emitted before" and counts as
//  done, like a duplicate. In --verify mode nothing is sent. Source is
//  set to the actor's name if empty. Inside apply, where the runtime
//  applies events in batches (one view write per catch-up batch or per
//  round of live events), an emit is queued and returns 0 at once; the batch's emits go pipelined, and all must be ACKed
//  before the batch is written (if not, the actor stops and applies the
//  batch again on start). Returns 0, or -1 (logged).
int
    pond_actor_emit (pond_actor_t *self, pond_event_t *event);

//  Emit count events through the write point, pipelined (many in flight,
//  instead of one round trip and one store commit each), and wait until
//  each is durable. Same rules as pond_actor_emit. acked [i] says whether
//  event i got its ACK. Returns 0 when every event did, or -1 (logged):
//  then some may be stored and some not; emitting them again is harmless.
int
    pond_actor_emit_many (pond_actor_t *self, pond_event_t **events, size_t count, bool *acked);

//  A deterministic UUID (version 8, RFC 9562) from a cause id and a salt,
//  e.g. the QUACKED event's id and "grant/Master". Writes 16 bytes to id.
void
    pond_actor_derive_id (const uint8_t *cause, const char *salt, uint8_t *id);

//  Start a replay from the store (for commands such as recompute). The
//  caller owns the replay (pond_client.h) and destroys it.
struct _pond_reader_t *
    pond_actor_replay (pond_actor_t *self, const pond_replay_req_t *request);

//  Bring the view to the head of the log as of now: replay what it has
//  not applied yet from the store and apply it (emits included), up to
//  the head the replay reports. The runtime does this before every
//  command, so a command never works on a view behind what was stored
//  before it was asked; a command that emits events may call it again to
//  apply them. Returns 0, or -1 after pond_actor_set_error (503). Does
//  nothing (returns 0) in --verify mode.
int
    pond_actor_catch_up (pond_actor_t *self);

//  During a command: tell the requester how far it has got (sent as a
//  PROGRESS message on the query socket).
void
    pond_actor_progress (pond_actor_t *self, uint64_t done, uint64_t total);

//  During a command: the id it was given (COMMAND's id: the broker's
//  command id), or NULL if it had none or no command runs. Events emitted
//  meanwhile that name no causation get this one (pond_actor_emit); an
//  actor may also use it, e.g. to derive the ids of what it emits.
const uint8_t *
    pond_actor_command_id (pond_actor_t *self);

//  Set the error returned when query or command returns NULL: an HTTP-like
//  code (400 bad request, 404 unknown entity or command) and a reason.
void
    pond_actor_set_error (pond_actor_t *self, int code, const char *format, ...)
        __attribute__ ((format (printf, 3, 4)));

//  The actor's name, and whether it is still catching up.
const char *
    pond_actor_name (pond_actor_t *self);
bool
    pond_actor_live (pond_actor_t *self);

#ifdef __cplusplus
}
#endif

#endif
