/*  pond_gateway_commands: commands over HTTP (pond-gateway).

    POST /v1/commands          {"command":"recompute","view":"badges","rules":"v2"}
                               -> 202 {"id", "status": "accepted", ...}
    GET  /v1/commands/{id}     -> 200 {"id", "status", "progress", "result" | "reason", ...}

    A client of the broker's control socket like pond recompute
    (pond_command_link): the broker takes the command and answers at once,
    the actor runs it, and the status says when it is done. The gateway's
    router (pond_gateway.c) hands these paths here and sends the reply.
*/
#ifndef POND_GATEWAY_COMMANDS_H_INCLUDED
#define POND_GATEWAY_COMMANDS_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

//  A reply to send: status, JSON body (caller frees), Retry-After seconds
//  (0: none), Allow (a 405's; NULL: none)
typedef struct {
    unsigned status;
    char *body;
    unsigned retry_after_s;
    const char *allow;
} pond_gateway_commands_reply_t;

//  If url is /v1/commands or /v1/commands/ID, answer it (method, the
//  request's body of size bytes, too_large when the body was over the
//  gateway's limit) into *reply and return true; else return false. The
//  broker's control endpoint is control (NULL: unknown, a 500); each
//  request to the broker waits at most timeout_ms.
bool
    pond_gateway_commands_route (const char *control, int timeout_ms, const char *url,
                                 const char *method, const char *body, size_t size, bool too_large,
                                 pond_gateway_commands_reply_t *reply);

#ifdef __cplusplus
}
#endif

#endif
