/*  pond_command_link: commands through the broker's control socket.

    COMMAND asks the broker to have an actor run a command (recompute,
    rebuild); the broker answers ACCEPTED at once with the command's id,
    and COMMAND_STATUS with that id says where it is: accepted, running
    (with progress), done (with the actor's result) or failed (with the
    reason). See proto/PROTOCOL.md, "Control socket". Each call is one
    request on a fresh DEALER, matched to its reply by a rid of its own
    (a late reply to an earlier request is never taken for it). Used by
    the command line (pond recompute, rebuild, command) and pond-gateway
    (/v1/commands). Internal to the tree: not in libpond-client's public
    headers.
*/
#ifndef POND_COMMAND_LINK_H_INCLUDED
#define POND_COMMAND_LINK_H_INCLUDED

#include "pond_client.h"
#include "pond_proto.h"

#include <cjson/cJSON.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Why a request failed: the broker's ERROR (code, reason, retry_ms), or
//  POND_CODE_TIMEOUT (no reply), POND_CODE_BAD_REPLY, POND_CODE_INTERRUPTED.
typedef struct {
    int code;
    uint32_t retry_ms;
    char reason [POND_REASON_MAX + 128];
} pond_command_failure_t;

//  Send COMMAND (command, view, args and, if set, id) to the control
//  endpoint and wait up to timeout_ms for ACCEPTED. Returns 0 with the
//  status in *status (its id is the command's), or -1 with *failure set.
int
    pond_command_link_submit (const char *control, const pond_command_t *command, int timeout_ms,
                              pond_command_status_t *status, pond_command_failure_t *failure);

//  Ask COMMAND_STATUS of the command id. Returns 0 with *status, or -1
//  with *failure set (404: the broker does not know that id).
int
    pond_command_link_status (const char *control, const uint8_t *id, int timeout_ms,
                              pond_command_status_t *status, pond_command_failure_t *failure);

//  The status as JSON: {"id", "command", "view", "status", "progress":
//  {"done", "total"}, "result" (done) or "code" and "reason" (failed),
//  "accepted", "started", "finished" (microseconds since the epoch,
//  absent while 0)}. Caller owns the tree; NULL if memory ran out.
cJSON *
    pond_command_link_json (const pond_command_status_t *status);

//  True once the status is final (done or failed).
bool
    pond_command_link_finished (const pond_command_status_t *status);

#ifdef __cplusplus
}
#endif

#endif
