/*  pond_messages: what a client reads of the protocol: the reply codes,
    the limits a producer or a reader must respect, and the messages the
    client library hands to its callers (ACK, NACK, PONG) or takes from
    them (the REPLAY request). Public (installed with libpond-client);
    the encoders and decoders, and every message only servers see, are in
    pond_proto.h.
*/
#ifndef POND_MESSAGES_H_INCLUDED
#define POND_MESSAGES_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "pond_event.h"

#ifdef __cplusplus
extern "C" {
#endif

//  NACK and END codes: HTTP-like, so a human can guess their meaning
#define POND_CODE_OK          200
#define POND_CODE_BAD_REQUEST 400    //  malformed: fix the sender
#define POND_CODE_FORBIDDEN   403    //  not allowed for this key
#define POND_CODE_NOT_FOUND   404    //  unknown command
#define POND_CODE_CONFLICT    409    //  id already used for a different event
#define POND_CODE_CANCELLED   410    //  END: the reader cancelled the replay
#define POND_CODE_TOO_LARGE   413    //  over a size limit
#define POND_CODE_STORE_ERROR 500    //  the store could not write
#define POND_CODE_UNSUPPORTED 501    //  not done here (time travel on some views)
#define POND_CODE_UNAVAILABLE 503    //  overloaded or store away: retry later

#define POND_REASON_MAX       256
#define POND_REPLAY_MAX_NAMES 16
#define POND_BATCH_EVENTS_MAX 1024       //  events in one PUBLISH batch
#define POND_BATCH_BYTES_MAX  1048576    //  bytes of events in one PUBLISH batch
#define POND_CREDIT_MAX       1024       //  chunks a reader may grant at once

//  ACK: ingest -> producer, the event is durable
typedef struct {
    uint8_t id [POND_ID_SIZE];
    uint64_t seq;
    bool dup;    //  the id was stored before: seq is the original
} pond_ack_t;

//  NACK: ingest -> producer, the event was not accepted. Also the body of
//  ERROR, which carries the rid of the request refused when it was read.
typedef struct {
    bool has_id;
    uint8_t id [POND_ID_SIZE];
    uint32_t code;
    char reason [POND_REASON_MAX];
    uint32_t retry_ms;    //  with 503: wait this long, then resend
    bool has_rid;
    uint64_t rid;    //  ERROR: the refused request's rid
} pond_nack_t;

//  REPLAY: reader -> control (and broker -> store). Three modes, chosen by
//  what is set: names (ordered by ts, seq, within [from_ts, to_ts)), else
//  entity (ordered by seq), else the log by seq in [from_seq, to_seq).
typedef struct {
    uint64_t rid;    //  reader's own request id, echoed back
    size_t names_count;
    char names [POND_REPLAY_MAX_NAMES][POND_NAME_MAX + 1];
    uint64_t from_ts;     //  inclusive, 0 = from the beginning
    uint64_t to_ts;       //  exclusive, 0 = no end
    uint64_t from_seq;    //  inclusive, 0 = from the beginning
    uint64_t to_seq;      //  exclusive, 0 = up to the head
    char entity [POND_ENTITY_MAX + 1];
    uint64_t limit;     //  most events to send, 0 = all
    uint32_t credit;    //  chunks the reader can take now (1..1024)
    char order [8];     //  with names: "time" (default) or "seq": the
                        //  log in [from_seq, to_seq) filtered by names
    bool pack;          //  each CHUNK carries its events in one frame,
                        //  back to back (a msgpack stream)
} pond_replay_req_t;

//  PONG body, sent when the PING carried a body: is the store reachable
typedef struct {
    bool store_up;    //  the broker's link to the store is up
    uint64_t head;    //  newest seq the broker knows to be stored
} pond_pong_t;

#ifdef __cplusplus
}
#endif

#endif
