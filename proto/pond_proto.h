/*  pond_proto: the protocol messages of pond, one encode and one decode each.

    Every message is a ZeroMQ multipart message whose first frame is the
    command (ASCII, upper case) and whose second frame, when there is one,
    is a msgpack map: the body. proto/PROTOCOL.md is the specification;
    this module is its only implementation. Bodies are encoded and decoded
    by one generic table-driven codec so that every message gets the same
    checks: required keys, types, sizes, unknown keys ignored.
*/
#ifndef POND_PROTO_H_INCLUDED
#define POND_PROTO_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>
#include "pond_event.h"
#include "pond_messages.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Commands (first frame)
#define POND_PUBLISH             "PUBLISH"
#define POND_ACK                 "ACK"
#define POND_NACK                "NACK"
#define POND_RESULTS             "RESULTS"
#define POND_PING                "PING"
#define POND_PONG                "PONG"
#define POND_REPLAY              "REPLAY"
#define POND_CHUNK               "CHUNK"
#define POND_END                 "END"
#define POND_CREDIT              "CREDIT"
#define POND_CANCEL              "CANCEL"
#define POND_STATS               "STATS"
#define POND_ERROR               "ERROR"
#define POND_APPEND              "APPEND"
#define POND_APPENDED            "APPENDED"
#define POND_HEARTBEAT           "$HEARTBEAT"
#define POND_QUERY               "QUERY"    //  actor query socket
#define POND_COMMAND             "COMMAND"
#define POND_PROGRESS            "PROGRESS"
#define POND_RESULT              "RESULT"
#define POND_STATUS              "STATUS"
#define POND_DUMP                "DUMP"
#define POND_ACCEPTED            "ACCEPTED"          //  control socket: a command
#define POND_COMMAND_STATUS      "COMMAND_STATUS"    //  ... and its status

//  Limits of the server side
#define POND_BODY_MAX            262144    //  largest body frame accepted
#define POND_APPEND_MAX          1024      //  events in one APPEND batch
#define POND_REPLAY_WINDOW       4         //  chunks the broker keeps per replay
#define POND_CHUNK_EVENTS        512       //  events in one CHUNK at most
#define POND_CHUNK_BYTES         262144    //  bytes of events in one CHUNK at most
#define POND_CHUNK_PACKED_EVENTS 2048      //  ... in one packed CHUNK (one frame)
#define POND_CHUNK_PACKED_BYTES  524288    //  ... in one packed CHUNK

//  CHUNK header / CREDIT / CANCEL: rid plus a count (chunks granted)
typedef struct {
    uint64_t rid;
    uint32_t chunks;
} pond_credit_t;

//  END: the replay is over (code 200) or failed (other codes)
typedef struct {
    uint64_t rid;
    uint64_t count;    //  events sent
    uint64_t head;     //  newest seq in the replay's snapshot
    uint32_t code;
    char reason [POND_REASON_MAX];
} pond_end_t;

//  HEARTBEAT: broker -> subscribers, once a second
typedef struct {
    uint64_t head;    //  newest seq the broker knows to be stored
    uint64_t ts;      //  broker's clock, microseconds
} pond_heartbeat_t;

//  QUERY: a question to an actor about one entity
#define POND_QUERY_TEXT_MAX 1024
#define POND_QUERY_WAIT_MS  5000     //  default wait for 'after'
#define POND_QUERY_WAIT_MAX 30000    //  ... and the most a QUERY may ask
typedef struct {
    char entity [POND_ENTITY_MAX + 1];
    char text [POND_QUERY_TEXT_MAX];    //  free text, may be ""
    uint64_t after;                     //  answer once this seq is applied (0: now)
    uint32_t wait_ms;                   //  ... waiting at most this long (0: default)
    //  Time travel: the view as it stood then, rebuilt from the log (at
    //  most one of the two; carried only when set)
    uint64_t at_seq;    //  ... after applying the log up to this seq
    bool has_at_seq;
    uint64_t as_of;    //  ... after the events with ts <= this (microseconds)
    bool has_as_of;
} pond_query_t;

//  COMMAND: ask an actor to do something (recompute, rebuild, ...), on
//  its query socket; or ask the broker, on the control socket, to have
//  the actor of view do it (view and rid are for the broker only)
#define POND_COMMAND_NAME_MAX 64
#define POND_COMMAND_ARGS_MAX 65536
typedef struct {
    char command [POND_COMMAND_NAME_MAX];
    char view [POND_COMMAND_NAME_MAX];    //  control: a view name or an actor's name
    bool has_id;
    uint8_t id [POND_ID_SIZE];    //  the command's id (nil if none)
    bool has_rid;
    uint64_t rid;                         //  control: echoed in the reply
    char args [POND_COMMAND_ARGS_MAX];    //  JSON text, may be ""
} pond_command_t;

//  PROGRESS: how far a command has got
typedef struct {
    uint64_t done;
    uint64_t total;    //  0 if unknown
    bool has_id;
    uint8_t id [POND_ID_SIZE];    //  the command's id, when it had one
} pond_progress_t;

//  COMMAND_STATUS request (control socket): the command's id, and a rid
//  to echo. Also what can be read of a COMMAND whose body is refused.
typedef struct {
    bool has_id;
    uint8_t id [POND_ID_SIZE];
    bool has_rid;
    uint64_t rid;
} pond_command_ref_t;

//  ACCEPTED and COMMAND_STATUS (control socket): where a command is. The
//  body carries progress as a map {done, total}; result only when done,
//  code and reason only when failed, rid only when the request had one.
#define POND_COMMAND_RESULT_MAX (192 * 1024)    //  fits a body (POND_BODY_MAX) with the rest
#define POND_COMMAND_STATUS_MAX 16
typedef struct {
    uint8_t id [POND_ID_SIZE];
    bool has_rid;
    uint64_t rid;
    char command [POND_COMMAND_NAME_MAX];
    char view [POND_COMMAND_NAME_MAX];        //  the actor that runs it
    char status [POND_COMMAND_STATUS_MAX];    //  accepted, running, done, failed
    bool dup;                                 //  ACCEPTED: the id was accepted before
    uint64_t done, total;                     //  progress (total 0: unknown)
    uint64_t accepted, started, finished;     //  wall clock, microseconds; 0: not yet
    bool has_code;
    uint32_t code;    //  failed: why, as an ERROR's code
    bool has_reason;
    char reason [POND_REASON_MAX];
    bool has_result;
    char result [POND_COMMAND_RESULT_MAX];    //  done: the actor's RESULT (JSON text)
} pond_command_status_t;

//  APPEND header: broker -> store, a batch of events follows
typedef struct {
    uint64_t bid;
} pond_append_t;

//  APPENDED: store -> broker, one result per event of the batch. code
//  200: each event has its own result in codes [i] (200 stored or a
//  duplicate, else why it was refused: 400, 409, 413, with reasons [i]);
//  any other code: nothing of the batch was stored, the arrays are empty.
#define POND_APPENDED_REASON_MAX 128    //  per event: 1024 of them fit a body
typedef struct {
    uint64_t bid;
    uint32_t code;
    char reason [POND_REASON_MAX];
    size_t count;
    uint64_t seqs [POND_APPEND_MAX];
    size_t dups_count;    //  equals count in a valid message
    bool dups [POND_APPEND_MAX];
    size_t codes_count;    //  count (decode fills 200s when the body has none)
    uint64_t codes [POND_APPEND_MAX];
    size_t reasons_count;    //  count (decode fills "" when the body has none)
    //  Last: decode clears only what comes before it (this is 128 KiB)
    char reasons [POND_APPEND_MAX][POND_APPENDED_REASON_MAX];
} pond_appended_t;

//  RESULTS: ingest -> producer, one result per event of a PUBLISH batch,
//  in the order of its frames: code 200 with seq and dup (an ACK), or
//  a NACK's code, reason and retry_ms. has_id is false when no id could
//  be read from the frame.
#define POND_RESULT_REASON_MAX 128    //  per event: 1024 of them fit a body
typedef struct {
    bool has_id;
    uint8_t id [POND_ID_SIZE];
    uint32_t code;
    uint64_t seq;
    bool dup;
    uint32_t retry_ms;
    char reason [POND_RESULT_REASON_MAX];
} pond_result_t;

//  Each encode returns a new frame (caller owns it) or NULL if memory ran
//  out. Each decode returns 0, or -1 with the reason in err, and leaves
//  defaults (zeros) in fields the body did not carry.
zframe_t *
    pond_ack_encode (const pond_ack_t *msg);
int
    pond_ack_decode (zframe_t *frame, pond_ack_t *msg, char *err, size_t errlen);
zframe_t *
    pond_nack_encode (const pond_nack_t *msg);
int
    pond_nack_decode (zframe_t *frame, pond_nack_t *msg, char *err, size_t errlen);
zframe_t *
    pond_replay_req_encode (const pond_replay_req_t *msg);
int
    pond_replay_req_decode (zframe_t *frame, pond_replay_req_t *msg, char *err, size_t errlen);
zframe_t *
    pond_credit_encode (const pond_credit_t *msg);
int
    pond_credit_decode (zframe_t *frame, pond_credit_t *msg, char *err, size_t errlen);
zframe_t *
    pond_end_encode (const pond_end_t *msg);
int
    pond_end_decode (zframe_t *frame, pond_end_t *msg, char *err, size_t errlen);
zframe_t *
    pond_heartbeat_encode (const pond_heartbeat_t *msg);
int
    pond_heartbeat_decode (zframe_t *frame, pond_heartbeat_t *msg, char *err, size_t errlen);
zframe_t *
    pond_pong_encode (const pond_pong_t *msg);
int
    pond_pong_decode (zframe_t *frame, pond_pong_t *msg, char *err, size_t errlen);
zframe_t *
    pond_query_encode (const pond_query_t *msg);
int
    pond_query_decode (zframe_t *frame, pond_query_t *msg, char *err, size_t errlen);
zframe_t *
    pond_command_encode (const pond_command_t *msg);
int
    pond_command_decode (zframe_t *frame, pond_command_t *msg, char *err, size_t errlen);
zframe_t *
    pond_progress_encode (const pond_progress_t *msg);
int
    pond_progress_decode (zframe_t *frame, pond_progress_t *msg, char *err, size_t errlen);
zframe_t *
    pond_command_ref_encode (const pond_command_ref_t *msg);
int
    pond_command_ref_decode (zframe_t *frame, pond_command_ref_t *msg, char *err, size_t errlen);
zframe_t *
    pond_command_status_encode (const pond_command_status_t *msg);
int
    pond_command_status_decode (zframe_t *frame, pond_command_status_t *msg, char *err,
                                size_t errlen);
zframe_t *
    pond_append_encode (const pond_append_t *msg);
int
    pond_append_decode (zframe_t *frame, pond_append_t *msg, char *err, size_t errlen);
zframe_t *
    pond_appended_encode (const pond_appended_t *msg);
int
    pond_appended_decode (zframe_t *frame, pond_appended_t *msg, char *err, size_t errlen);

//  RESULTS body {code, reason, results: [{id, code, seq, dup, reason,
//  retry_ms}, ...]}: code 200, or the code for the whole batch (413: too
//  many events or bytes) with reason. Decode takes at most capacity
//  results into results and their number into *count.
zframe_t *
    pond_results_encode (uint32_t code, const char *reason, const pond_result_t *results,
                         size_t count);
int
    pond_results_decode (zframe_t *frame, uint32_t *code, char *reason, size_t reason_size,
                         pond_result_t *results, size_t capacity, size_t *count, char *err,
                         size_t errlen);

//  Build a NACK body in one call. Returns a new frame.
zframe_t *
    pond_nack_new (const uint8_t *id, uint32_t code, uint32_t retry_ms, const char *format, ...)
        __attribute__ ((format (printf, 4, 5)));

//  True if the frame holds exactly this command.
bool
    pond_proto_is (zframe_t *frame, const char *command);

#ifdef __cplusplus
}
#endif

#endif
