/*  pond_actor_internal: the actor runtime's state and the few functions
    its files share (pond_actor.c: applying in batches, timers, the loop;
    pond_actor_emit.c: emitting; pond_actor_catchup.c: catch-up, live
    events, rebuild; pond_actor_query.c: the query socket;
    pond_actor_verify.c: --verify; pond_actor_asof.c: time travel;
    pond_actor_main.c: the command line).
    Private to actors/runtime/; actors include pond_actor.h.
*/
#ifndef POND_ACTOR_INTERNAL_H_INCLUDED
#define POND_ACTOR_INTERNAL_H_INCLUDED

#include "pond_actor.h"
#include "pond_client.h"
#include "pond_keys.h"

//  Memory: what the runtime holds beside the view (pond_view.h) is bounded
//  by the live events the SUB socket queues (LIVE_HWM), the chunks a
//  catch-up has in flight (CATCHUP_CREDIT), the live events buffered
//  meanwhile (BUFFER_MAX / BUFFER_BYTES_MAX) and the emits queued in a
//  batch (EMIT_WINDOW). An actor that falls behind the live rate drops
//  live events past these bounds and catches up from the store instead:
//  the log has them, in packed chunks applied in large batches.
//  Chunks granted up front (packed: up to 2048 events / 512 KiB each)
#define CATCHUP_CREDIT      4
#define CATCHUP_BATCH       10000                //  events applied in one view write, at most
#define CATCHUP_BATCH_BYTES (1024 * 1024)        //  ... and documents staged, about
#define BUFFER_MAX          2000                 //  live events held during a catch-up
#define BUFFER_BYTES_MAX    (2 * 1024 * 1024)    //  ... and their bytes, roughly
#define LIVE_HWM            2000                 //  live events the SUB socket holds
#define MMAP_THRESHOLD      (128 * 1024)         //  blocks from mmap, fixed (pond_actor_main)
#define BEHIND_MS           1500                 //  head beyond position this long: catch up
#define SILENCE_MS          3000                 //  no heartbeat this long: broker away
#define STALL_MS            5000                 //  replay silent this long: give up, retry
#define RETRY_MS            1000                 //  wait before retrying a failed catch-up
#define PERSIST_MS          1000                 //  write a lazily advanced position
#define PROGRESS_MS         500                  //  PROGRESS to a rebuild's requester
#define PUMP_MS             50                   //  replay work between two polls
#define PUMP_CLOCK          16                   //  events between two looks at the clock
#define QUERY_FRAME_MAX     (4 * 1024 * 1024)    //  larger frames: peer dropped
#define VERIFY_DUMP_MS      60000                //  wait for the live actor's DUMP
#define VERIFY_REPLAY_MS    15000                //  replay silent this long: verify fails
#define EMIT_WINDOW         1024                 //  pond_actor_emit_many: events in flight
#define EMIT_BATCH          64                   //  ... and events per PUBLISH batch
#define LIVE_ROUND          1000                 //  live events applied per round, at most
#define CATCHUP_SYNC_MS     60000                //  pond_actor_catch_up gives up after this
#define PARKED_MAX          1000                 //  QUERYs waiting for 'after', at most
#define QUERY_RETRY_MS      100                  //  retry_ms of a 503 to a QUERY
#define ASOF_TIMEOUT_MS     30000                //  a time-travel query's replay, at most
#define ASOF_RETRY_MS       1000                 //  retry_ms of a 503: another one runs

struct _pond_actor_t {
    const pond_actor_spec_t *spec;
    const char *name;
    size_t names_count;
    pond_endpoints_t eps;
    char view_path [1024];
    char query_endpoint [POND_ENDPOINT_MAX];
    char ready_path [1024];
    bool query_given;    //  --query on the command line
    bool verbose;
    bool verify;    //  --verify: emit sends nothing
    bool failed;    //  stop with exit code 1

    pond_view_limits_t limits;    //  of the view (--memtable-mb, ...)
    pond_view_t *view;
    pond_sub_t *sub;
    zsock_t *query;    //  ROUTER, NULL in verify mode
    zpoller_t *poller;
    pond_client_t *client;    //  for emit, created on first use
    uint64_t position;        //  last seq dealt with (view may lag: lazy)
    int64_t persisted_at;
    bool batching;          //  events applied in one view write (catch-up, drain)
    zlistx_t *deferred;     //  events emitted in the batch, sent at its commit
    uint64_t batch_from;    //  position when the batch began
    size_t batch_events;    //  events applied in the batch so far

    //  Catch-up
    bool live;    //  no catch-up running or pending
    pond_reader_t *replay;
    int64_t replay_active_at;    //  last event or start of the replay
    int64_t retry_at;            //  next attempt when the last one failed
    int64_t catchup_started;
    uint64_t catchup_from;
    uint64_t catchup_applied;    //  applied counter when it started
    uint64_t failures;           //  catch-ups failed in a row
    zlistx_t *buffer;            //  live events held during a catch-up
    size_t buffer_bytes;         //  their approximate size
    bool overflowed;             //  buffer dropped: catch up once more
    bool warned_ahead;

    //  Heartbeats
    uint64_t heartbeats_seen;
    int64_t heartbeat_at;    //  last heartbeat (or start)
    int64_t timers_at;       //  last run of s_timers
    int64_t event_at;        //  last live event
    int64_t behind_since;    //  head > position noticed, 0 if not
    bool broker_away;

    //  Requests
    zlistx_t *parked;       //  QUERYs waiting for their 'after' seq
    zframe_t *requester;    //  peer of the command running now
    bool command_has_id;    //  ... and its id (COMMAND's id), if it had one
    uint8_t command_id [POND_ID_SIZE];
    bool rebuilding;
    zframe_t *rebuild_peer;
    bool rebuild_has_id;    //  the rebuild's command id, if it had one
    uint8_t rebuild_id [POND_ID_SIZE];
    int64_t rebuild_started;
    uint64_t rebuild_applied;    //  applied counter when it started
    int64_t progress_at;
    zactor_t *asof;         //  the time-travel worker (pond_actor_asof), NULL if none
    zframe_t *asof_peer;    //  ... and who asked
    int64_t asof_started;
    int error_code;    //  pond_actor_set_error
    char error_reason [POND_REASON_MAX];

    //  Counters (STATUS)
    uint64_t applied, catchups, emitted, doubles, requests, rejected;
};

//  Apply one event: the actor's apply and the new position in one atomic
//  write if it is one of ours, else just move the position. Returns 0, or
//  -1 if the actor cannot go on (self->failed).
int
    pond_actor_priv_apply (pond_actor_t *self, const pond_event_t *event);

//  Open a batch: the events applied until pond_actor_priv_batch_commit
//  are written to the view in one write (see pond_actor.c).
void
    pond_actor_priv_batch_begin (pond_actor_t *self);

//  Send what the batch emitted, then write the batch, if one is open.
//  Returns 0, or -1 (self->failed).
int
    pond_actor_priv_batch_commit (pond_actor_t *self);

//  Send the events emitted in the batch (self->deferred), pipelined, and
//  empty the list. Returns 0 when all are durable, else -1 (logged).
int
    pond_actor_priv_emit_deferred (pond_actor_t *self);

//  Write the position if it moved in memory only (see pond_actor.c).
//  Returns 0, or -1 if the actor cannot go on (self->failed).
int
    pond_actor_priv_persist (pond_actor_t *self);

//  Fill a replay request for our names in seq order from from_seq.
void
    pond_actor_priv_replay_request (pond_actor_t *self, pond_replay_req_t *request,
                                    uint64_t from_seq, uint64_t to_seq);

//  Start a catch-up replay from the position, unless one runs.
void
    pond_actor_priv_catchup_start (pond_actor_t *self);

//  Work on the catch-up replay for at most PUMP_MS.
void
    pond_actor_priv_catchup_pump (pond_actor_t *self);

//  Deal with one live event (takes it): apply, drop, buffer or catch up.
void
    pond_actor_priv_on_live (pond_actor_t *self, pond_event_t **event_p);

//  Destructor for lists of pond_event_t (zlistx).
void
    pond_actor_priv_buffer_destroy (void **item_p);

//  Send PROGRESS done of total to peer, with the command's id (NULL: none).
void
    pond_actor_priv_send_progress (pond_actor_t *self, zframe_t *peer, uint64_t done,
                                   uint64_t total, const uint8_t *id);

//  Answer a command of peer with RESULT (text, JSON) or, when text is
//  NULL, ERROR code reason; either names the command's id (NULL: none):
//  ERROR in its `id`, RESULT in a third frame of 16 bytes.
void
    pond_actor_priv_command_reply (pond_actor_t *self, zframe_t *peer, const char *text, int code,
                                   const char *reason, const uint8_t *id);

//  Run the actor until it is interrupted or fails: connect, write the
//  ready file, catch up, serve. Returns the process exit code.
int
    pond_actor_priv_run (pond_actor_t *self);

//  Send [peer, command, body] on the query socket; takes ownership of body.
void
    pond_actor_priv_send (pond_actor_t *self, zframe_t *peer, const char *command,
                          zframe_t **body_p);

//  Start a rebuild asked for by peer (COMMAND rebuild, with id or NULL):
//  a fresh view, then the whole log applied again while queries are served.
void
    pond_actor_priv_rebuild_start (pond_actor_t *self, zframe_t *peer, const uint8_t *id);

//  Answer peer with ERROR code and the formatted reason.
void
    pond_actor_priv_error (pond_actor_t *self, zframe_t *peer, int code, const char *format, ...)
        __attribute__ ((format (printf, 4, 5)));

//  Answer the parked QUERYs whose seq is applied or whose wait is over
//  (all: every one, as the actor stops).
void
    pond_actor_priv_parked_check (pond_actor_t *self, bool all);

//  Handle one request from the query socket: [peer, command, body].
void
    pond_actor_priv_on_request (pond_actor_t *self, zmsg_t *msg);

//  A QUERY with at_seq or as_of: refuse it, or start the worker that
//  answers it from a scratch view (pond_actor_asof.c).
void
    pond_actor_priv_asof_start (pond_actor_t *self, zframe_t *peer, const pond_query_t *query);

//  The worker has answered (its pipe is readable): pass the answer on.
void
    pond_actor_priv_asof_done (pond_actor_t *self);

//  Remove scratch views a process before this one left behind.
void
    pond_actor_priv_asof_clean (pond_actor_t *self);

//  The actor stops: end the worker, tell whoever asked.
void
    pond_actor_priv_asof_stop (pond_actor_t *self);

//  --verify: compare the running actor's view with a rebuild up to its
//  position. Returns the process exit code.
int
    pond_actor_priv_verify (pond_actor_t *self);

#endif
