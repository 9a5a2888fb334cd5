/*  pond_client: the client side of the pond protocol, for every C program.

    The command line, the actors and the benchmarks all talk to a mesh
    through this module, so the rules of proto/PROTOCOL.md that a client
    must follow live in one place:

    - pond_endpoints_t: where the broker is (data directory conventions and
      DIR/broker.zpl written by a running broker).
    - pond_client_t: a producer on the ingest socket. pond_client_publish
      sends one event and returns only when THIS event is durable (ACK),
      resending the same bytes (same id: idempotent) after a timeout and
      after NACK 503; pond_client_send / pond_client_recv pipeline, and
      pond_client_sock lets one thread wait on many clients at once.
    - pond_publisher_t: many publishes in flight over one pond_client_t,
      with the retries of pond_client_publish done per event: the one
      pipelined producer the runtime, the device, the tests and the
      benchmarks share.
    - pond_sub_t: live events from the pub socket, filtered by exact name
      (ZeroMQ filters by prefix), heartbeats remembered as the head.
    - pond_reader_t: one replay stream from the control socket, in order,
      with credit flow control so memory stays bounded.
    - pond_client_stats: the STATS counters as JSON text.

    One header for all of them; each part has its own source file
    (pond_endpoints.c, pond_client.c, pond_publisher.c, pond_sub.c,
    pond_reader.c, pond_client_stats.c) over private socket helpers
    (pond_client_io.h).

    Errors come back as -1 or NULL with a reason (and an HTTP-like code) to
    show the user; the library logs only retries, and only when verbose.

    Keys: once the process has called pond_keys_use (pond_identity.h), every
    socket made here is a CURVE client of the broker with that key pair,
    and a broker that refuses the key fails the call with code 403 and a
    sentence saying so, rather than a timeout.
*/
#ifndef POND_CLIENT_H_INCLUDED
#define POND_CLIENT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <czmq.h>
#include "pond_export.h"
#include "pond_event.h"
#include "pond_messages.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Client-side codes, next to the protocol's (pond_messages.h)
#define POND_CODE_TIMEOUT       408    //  no reply in time / broker not reachable
#define POND_CODE_BAD_REPLY     502    //  the server sent something unreadable
#define POND_CODE_INTERRUPTED   499    //  SIGINT/SIGTERM while waiting

#define POND_CLIENT_ACK_TIMEOUT 2000     //  default wait for one ACK, msecs
#define POND_CLIENT_ATTEMPTS    3        //  default sends of one event
#define POND_CLIENT_HWM         10000    //  send and receive high-water marks
#define POND_REPLAY_CREDIT      8        //  default chunks granted up front

//  ---------------------------------------------------------------------
//  Endpoints

#define POND_ENDPOINT_MAX       256

typedef struct {
    char data_dir [POND_ENDPOINT_MAX];    //  as resolved
    char ingest [POND_ENDPOINT_MAX];
    char pub [POND_ENDPOINT_MAX];
    char control [POND_ENDPOINT_MAX];
    bool from_broker_file;    //  read from DATA/broker.zpl
    int broker_pid;           //  broker/pid from that file, else 0
} pond_endpoints_t;

//  Resolve the endpoints of the mesh whose data directory is data_dir
//  (NULL: $POND_DATA, else ./pond-data). Defaults are ipc://DIR/ingest.ipc,
//  ipc://DIR/pub.ipc and ipc://DIR/control.ipc; when DIR/broker.zpl exists
//  (written by a running broker) its broker/ingest, broker/pub and
//  broker/control win. Returns 0, or -1 if a path does not fit.
POND_EXPORT int
    pond_endpoints_resolve (const char *data_dir, pond_endpoints_t *eps);

//  ---------------------------------------------------------------------
//  Producer: the ingest socket

typedef struct _pond_client_t pond_client_t;

//  Create a producer connected (DEALER) to the broker's ingest endpoint.
//  Nothing is sent yet, so this succeeds whether or not a broker runs.
//  Returns NULL if the endpoint is invalid.
POND_EXPORT pond_client_t *
    pond_client_new (const char *ingest_endpoint);

//  Destroy a producer; accepts NULL; nulls the caller's pointer. Unsent
//  messages are dropped (linger 0).
POND_EXPORT void
    pond_client_destroy (pond_client_t **self_p);

//  Wait at most ack_timeout_ms for each ACK and send each event at most
//  max_attempts times (values < 1 keep the current setting). The whole
//  publish, NACK 503 back-offs included, takes at most about
//  ack_timeout_ms * max_attempts.
POND_EXPORT void
    pond_client_set_timeout (pond_client_t *self, int ack_timeout_ms, int max_attempts);

//  Log retries and ignored replies with zsys_warning.
POND_EXPORT void
    pond_client_set_verbose (pond_client_t *self, bool verbose);

//  Publish one event and wait for its ACK. The event is encoded once; after
//  a timeout the socket is recreated (stale replies are dropped) and the
//  same bytes are sent again; after NACK 503 the client waits retry_ms and
//  sends again; ACKs for other ids are ignored. Returns 0 with the ACK in
//  *ack (may be NULL), or -1: see pond_client_code and pond_client_reason
//  (400 if the event is invalid or 413 if it is too large, nothing sent;
//  the NACK's code, e.g. 409 when the id was used before for a different
//  event: never retried, give the event a new id; or POND_CODE_TIMEOUT).
POND_EXPORT int
    pond_client_publish (pond_client_t *self, const pond_event_t *event, pond_ack_t *ack);

//  Same with an event already encoded (msgpack, no seq) whose id is id.
POND_EXPORT int
    pond_client_publish_bytes (pond_client_t *self, const uint8_t *id, const uint8_t *bytes,
                               size_t size, pond_ack_t *ack);

//  Pipelining: send one PUBLISH without waiting. Blocks while the broker is
//  not connected or the high-water mark is reached, at most the ACK timeout.
//  Returns 0, or -1 with the reason (invalid event, send timed out).
//  Do not mix with pond_client_publish, which ignores other ids' replies.
POND_EXPORT int
    pond_client_send (pond_client_t *self, const pond_event_t *event);

//  Same with an event already encoded.
POND_EXPORT int
    pond_client_send_bytes (pond_client_t *self, const uint8_t *bytes, size_t size);

//  Send count encoded events (1..POND_BATCH_EVENTS_MAX, at most
//  POND_BATCH_BYTES_MAX bytes in all) as one PUBLISH without waiting: two
//  or more are a batch, answered by one RESULTS (PROTOCOL.md, "Ingest
//  socket"). Blocks as pond_client_send_bytes. Returns 0 or -1.
POND_EXPORT int
    pond_client_send_batch (pond_client_t *self, const uint8_t *const *bytes, const size_t *sizes,
                            size_t count);

//  Pipelining: wait up to timeout_ms for the next ACK or NACK. Returns 1
//  with *ack filled, 0 with *nack filled (either may be NULL), or -1 on
//  timeout or interrupt (see the reason). Unreadable replies are skipped.
POND_EXPORT int
    pond_client_recv (pond_client_t *self, int timeout_ms, pond_ack_t *ack, pond_nack_t *nack);

//  The DEALER socket, to wait on several clients (or other sockets) in one
//  event loop without busy-looping: poll it with zmq_poll or zpoller for
//  ZMQ_POLLIN only, then read each reply with pond_client_recv and timeout
//  0 until it returns -1 (code POND_CODE_TIMEOUT: nothing left); send only
//  through pond_client_send. With its ZMQ_FD (zsock_fd) in an external
//  poll, the rules of ZMQ_FD apply: the fd is edge-triggered, so check
//  zsock_events (ZMQ_POLLIN) after every send or receive before waiting.
//  The socket is recreated after a timeout of pond_client_publish (and
//  made again by the next call after a failed reconnect), so ask again
//  after such a call. Returns NULL if the client has no socket now. The
//  client owns the socket: do not destroy it.
POND_EXPORT zsock_t *
    pond_client_sock (pond_client_t *self);

//  Send PING and wait up to timeout_ms for PONG. Returns 0 if the broker
//  answered, -1 otherwise.
POND_EXPORT int
    pond_client_ping (pond_client_t *self, int timeout_ms);

//  Same, asking whether the broker can reach the store: the PING carries
//  an empty body, and the PONG's body {store_up, head} fills *pong (a
//  broker too old to send one counts as store_up, head 0). Returns 0 if
//  the broker answered, -1 otherwise.
POND_EXPORT int
    pond_client_ping_store (pond_client_t *self, int timeout_ms, pond_pong_t *pong);

//  Why the last call failed: a NACK's code, POND_CODE_TIMEOUT, ... or 0.
POND_EXPORT int
    pond_client_code (pond_client_t *self);

//  Why the last call failed, in words for a human ("" if it did not).
POND_EXPORT const char *
    pond_client_reason (pond_client_t *self);

//  Resends after timeouts and NACK 503 since the client was created.
POND_EXPORT uint64_t
    pond_client_retries (pond_client_t *self);

//  ---------------------------------------------------------------------
//  Pipelined producer: many events in flight over one client
//
//  Push events (open loop: the caller decides when, pond_publisher_room
//  says how many more fit), take one final result per event with
//  pond_publisher_next. Resends (same bytes, same id: harmless) after a
//  timeout or a NACK 503 happen inside, scheduled, never by sleeping.
//  The API is per event; several events may share one message on the
//  wire (pond_publisher_set_batch) without changing callers.

typedef struct _pond_publisher_t pond_publisher_t;

#define POND_PUBLISHER_WINDOW 1024                  //  events held, default
#define POND_PUBLISHER_BYTES  (16 * 1024 * 1024)    //  bytes held, default

//  The final outcome of one pushed event.
typedef struct {
    uint8_t id [POND_ID_SIZE];
    uint64_t tag;                     //  the caller's, as given to push
    int code;                         //  POND_CODE_OK (ACK), a NACK's code, or
                                      //  POND_CODE_TIMEOUT after the last attempt
    uint64_t seq;                     //  with an ACK: the event's seq
    bool dup;                         //  with an ACK: stored before, seq is the original
    uint32_t retry_ms;                //  with a final 503: the broker's hint, else 0
    int sends;                        //  times the bytes were sent
    char reason [POND_REASON_MAX];    //  "" with an ACK
} pond_publish_result_t;

//  Create a publisher over client, which it borrows: the client must
//  outlive the publisher, and nothing else may send or receive on it
//  (pond_client_publish, _send, _recv, _ping) while the publisher holds
//  events, since their replies would be taken by the wrong reader. Window:
//  POND_PUBLISHER_WINDOW events and POND_PUBLISHER_BYTES bytes; ACK timeout
//  and attempts: POND_CLIENT_ACK_TIMEOUT and POND_CLIENT_ATTEMPTS. Returns
//  NULL if out of memory.
POND_EXPORT pond_publisher_t *
    pond_publisher_new (pond_client_t *client);

//  Destroy a publisher; accepts NULL; nulls the caller's pointer. Events
//  still held are forgotten: some may be stored (their ACKs arrive later
//  on the client, ignore them or destroy the client), so push them again
//  (same ids: harmless) if they matter.
POND_EXPORT void
    pond_publisher_destroy (pond_publisher_t **self_p);

//  Hold at most events events and max_bytes bytes of encoded events at
//  once (values < 1 keep the current setting). One event larger than
//  max_bytes is still taken when nothing else is held. Returns 0, or -1 if
//  events are held now (set the window before the first push).
POND_EXPORT int
    pond_publisher_set_window (pond_publisher_t *self, int events, size_t max_bytes);

//  Wait at most ack_timeout_ms for the reply to each send and send each
//  event at most attempts times (values < 1 keep the current setting).
//  After NACK 503 an event is sent again after the NACK's retry_ms (100
//  if none); those resends stop, with a final 503, once about
//  ack_timeout_ms * attempts have passed since the event was pushed. With
//  attempts 1 nothing is ever sent twice, and a 503 is final at once: for
//  callers that schedule resends themselves (the device goes back N).
POND_EXPORT void
    pond_publisher_set_timeout (pond_publisher_t *self, int ack_timeout_ms, int attempts);

//  How many more events push takes now (0: wait for results first); an
//  event may still be refused if its bytes do not fit.
POND_EXPORT size_t
    pond_publisher_room (pond_publisher_t *self);

//  Events pushed and not yet returned by pond_publisher_next.
POND_EXPORT size_t
    pond_publisher_held (pond_publisher_t *self);

//  Push one encoded event (msgpack, no seq, as pond_event_encode makes it)
//  whose id is id, and send it now. The publisher copies the bytes into a
//  slot it keeps for resends (the slots' buffers are reused: no malloc per
//  event once they are large enough); tag is the caller's and comes back
//  in the event's result. Blocks at most the client's ACK timeout while
//  the broker is not connected. Returns 0 when the event is held (exactly
//  one result will come from pond_publisher_next), or -1 with nothing
//  held: see pond_publisher_code (POND_CODE_UNAVAILABLE when there is no
//  room, 413 over POND_PUBLISH_MAX_SIZE, POND_CODE_TIMEOUT when the broker
//  is not reachable, POND_CODE_INTERRUPTED, or the client's 403).
POND_EXPORT int
    pond_publisher_push (pond_publisher_t *self, const uint8_t *id, const uint8_t *bytes,
                         size_t size, uint64_t tag);

//  Same with an event to encode: 400 if it is invalid or has a seq.
POND_EXPORT int
    pond_publisher_push_event (pond_publisher_t *self, const pond_event_t *event, uint64_t tag);

//  Send pushed events in batches: push queues an event instead of sending
//  it, and the queued events go out as one PUBLISH (a batch, answered by
//  one RESULTS) once max_events are queued or max_bytes would be passed,
//  or at the next call of pond_publisher_next, _flush or _due. One event
//  queued alone goes out as a plain PUBLISH. max_events 1 (the default)
//  sends each event as it is pushed; values < 1 keep the current setting;
//  max_events is at most POND_BATCH_EVENTS_MAX and max_bytes at most
//  POND_BATCH_BYTES_MAX (the broker refuses larger batches). Resends after
//  a timeout or a 503 go one event per PUBLISH. With batching a send that
//  fails (broker not reachable) is not reported by push: the events time
//  out (POND_CODE_TIMEOUT) after their attempts, as lost replies do.
POND_EXPORT void
    pond_publisher_set_batch (pond_publisher_t *self, int max_events, size_t max_bytes);

//  Wait up to timeout_ms (0: do not wait, -1: forever) for the next final
//  result, doing on the way what is due: resends after a timeout or after
//  a 503's retry_ms. Results come in the order of the replies, not of the
//  pushes. Replies for ids not held (late replies to resends, NACKs
//  without id) are counted as stale and dropped, unreadable ones as
//  malformed. Returns 1 with *result filled, 0 if no result came in time
//  or nothing is held, -1 if interrupted (SIGINT/SIGTERM).
POND_EXPORT int
    pond_publisher_next (pond_publisher_t *self, int timeout_ms, pond_publish_result_t *result);

//  Wait up to timeout_ms for the results of every event held, and drop
//  them. Returns 0 if all were ACKed, else -1 with the first failure (or
//  POND_CODE_TIMEOUT if events are still held) in pond_publisher_code and
//  pond_publisher_reason.
POND_EXPORT int
    pond_publisher_flush (pond_publisher_t *self, int timeout_ms);

//  The socket replies arrive on, to poll along with others (ZMQ_POLLIN),
//  then call pond_publisher_next with timeout 0 until it returns 0. Also
//  call next by the time pond_publisher_due says: resends are scheduled,
//  not announced by the socket. The client owns the socket; NULL if the
//  client has none now.
POND_EXPORT zsock_t *
    pond_publisher_sock (pond_publisher_t *self);

//  Msecs until the next scheduled resend or timeout (0: now), or -1 if
//  nothing is held. Sends what push queued (see pond_publisher_set_batch).
POND_EXPORT int
    pond_publisher_due (pond_publisher_t *self);

//  Why the last push or flush failed: a code as in results, or 0.
POND_EXPORT int
    pond_publisher_code (pond_publisher_t *self);

//  Why the last push or flush failed, in words ("" if it did not).
POND_EXPORT const char *
    pond_publisher_reason (pond_publisher_t *self);

//  Replies dropped since creation: for ids not held, and unreadable.
POND_EXPORT uint64_t
    pond_publisher_stale (pond_publisher_t *self);
POND_EXPORT uint64_t
    pond_publisher_malformed (pond_publisher_t *self);

//  Sends after the first one (timeouts and 503s) since creation.
POND_EXPORT uint64_t
    pond_publisher_retries (pond_publisher_t *self);

//  NACK 503s taken since creation, each followed by a scheduled resend or
//  a final 503 (a 503 while a resend is scheduled already is not
//  counted): tells the broker's back-pressure from silent timeouts, which
//  retries mixes in.
POND_EXPORT uint64_t
    pond_publisher_unavailable (pond_publisher_t *self);

//  ---------------------------------------------------------------------
//  Subscriber: the pub socket

typedef struct _pond_sub_t pond_sub_t;

//  Subscribe (SUB) to the broker's pub endpoint for events whose name is
//  one of names [0 .. count-1]; count 0 means every event. Heartbeats are
//  always received. Returns NULL if the endpoint is invalid.
POND_EXPORT pond_sub_t *
    pond_sub_new (const char *pub_endpoint, const char **names, size_t count);

//  As pond_sub_new, with a receive high-water mark of hwm messages (1 ..
//  POND_CLIENT_HWM) instead of POND_CLIENT_HWM: what the socket may hold
//  while its reader is busy. A lower one costs less memory; past it
//  events are dropped, which a reader that watches seq (an actor) turns
//  into a catch-up from the store.
pond_sub_t *
    pond_sub_new_hwm (const char *pub_endpoint, const char **names, size_t count, int hwm);

//  Destroy a subscriber; accepts NULL; nulls the caller's pointer.
POND_EXPORT void
    pond_sub_destroy (pond_sub_t **self_p);

//  Wait up to timeout_ms (0: do not wait, -1: forever) for the next event
//  whose name is exactly one of the names subscribed to. Heartbeats are
//  consumed and remembered (pond_sub_head); malformed messages are dropped
//  and counted (pond_sub_dropped). Returns the event, which the caller owns
//  and must destroy, or NULL on timeout or interrupt.
POND_EXPORT pond_event_t *
    pond_sub_recv (pond_sub_t *self, int timeout_ms);

//  The store's newest seq, from the latest heartbeat (0 before the first).
POND_EXPORT uint64_t
    pond_sub_head (pond_sub_t *self);

//  Heartbeats received so far.
POND_EXPORT uint64_t
    pond_sub_heartbeats (pond_sub_t *self);

//  Messages dropped as malformed so far (bad frames, undecodable events,
//  topic not equal to the event's name, events without seq).
POND_EXPORT uint64_t
    pond_sub_dropped (pond_sub_t *self);

//  The SUB socket, to poll it along with others; read it only through
//  pond_sub_recv.
POND_EXPORT zsock_t *
    pond_sub_sock (pond_sub_t *self);

//  ---------------------------------------------------------------------
//  Replay: one stream from the control socket

typedef struct _pond_reader_t pond_reader_t;

//  Start a replay on the broker's control endpoint. req says what to replay
//  (pond_messages.h); its rid 0 means "pick one", its credit 0 means
//  POND_REPLAY_CREDIT. The reader never holds more than the chunks it has
//  granted: consumed chunks are granted again, one CREDIT per half of the
//  initial credit (per chunk when it is 1). Returns NULL if the
//  endpoint is invalid or the request cannot be encoded.
POND_EXPORT pond_reader_t *
    pond_reader_new (const char *control_endpoint, const pond_replay_req_t *req);

//  Opt-in, for processes that replay or relay millions of events (the
//  broker, bulk readers; call it from main): with glibc, sets
//  M_MMAP_THRESHOLD to 4 MiB and M_TRIM_THRESHOLD to 32 MiB (mallopt), so
//  that the CHUNKs ZeroMQ mallocs (up to 512 KiB each) reuse heap memory
//  instead of faulting fresh pages in every time (profiled: a fifth of a
//  reader's CPU, 40% of the broker's in a replay). The price: up to 32
//  MiB of freed heap is kept rather than returned to the system.
POND_EXPORT void
    pond_reader_tune_malloc (void);

//  Destroy a replay; sends CANCEL if it is still running; accepts NULL;
//  nulls the caller's pointer.
POND_EXPORT void
    pond_reader_destroy (pond_reader_t **self_p);

//  Wait up to timeout_ms for the next event of the replay, in order.
//  Returns the event (caller owns and must destroy it), or NULL at the end,
//  on error or on timeout: then pond_reader_code says which.
POND_EXPORT pond_event_t *
    pond_reader_next (pond_reader_t *self, int timeout_ms);

//  0 while the replay is running (after a NULL from next: it timed out),
//  200 when it completed, else the code of END, ERROR, or a client code
//  (POND_CODE_BAD_REPLY, POND_CODE_INTERRUPTED).
POND_EXPORT int
    pond_reader_code (pond_reader_t *self);

//  Why the replay failed or timed out, for a human ("" if it did not).
POND_EXPORT const char *
    pond_reader_reason (pond_reader_t *self);

//  After a complete replay: the newest seq stored when it began. Everything
//  up to it that matched the request has been returned. 0 before the END.
POND_EXPORT uint64_t
    pond_reader_head (pond_reader_t *self);

//  Events returned by pond_reader_next so far.
POND_EXPORT uint64_t
    pond_reader_count (pond_reader_t *self);

//  Bytes of replayed events received and not yet returned by
//  pond_reader_next: the chunk being read (a packed one is at most 512
//  KiB). What waits in the socket is not counted: at most the credit
//  granted (pond_reader_new), in chunks.
POND_EXPORT size_t
    pond_reader_held_bytes (pond_reader_t *self);

//  ---------------------------------------------------------------------
//  Stats

//  Ask the broker's control endpoint for STATS and wait up to timeout_ms.
//  Returns the reply body as one line of JSON, which the caller must free,
//  or NULL on timeout or error with the reason in err (err may be NULL).
POND_EXPORT char *
    pond_client_stats (const char *control_endpoint, int timeout_ms, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
