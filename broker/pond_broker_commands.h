/*  pond_broker_commands: the commands the broker runs for admins.

    An admin sends COMMAND {command, view, args, id} on the control socket
    (proto/PROTOCOL.md, "Control socket"); the broker answers ACCEPTED at
    once, with the command's id (the client's, or a new UUIDv7), and has
    the actor of that view run it: COMMAND with the id on the actor's
    query socket, which it finds in DATA/NAME.zpl (actor/query). Anyone may
    then ask COMMAND_STATUS {id}: accepted, running (with progress), done
    (with the actor's result) or failed (with the reason).

    The broker's loop never waits on a command: a worker thread (a
    zactor) holds one DEALER per running command, reads the actor's
    PROGRESS, RESULT or ERROR, checks that each names the command it
    waits for, and tells the loop over its pipe; the table of statuses
    lives in the loop's thread alone. At most one command runs per actor
    and COMMANDS_RUNNING_MAX in all (503 beyond); the table keeps at most
    COMMANDS_KEPT_MAX statuses and COMMANDS_BYTES_MAX bytes, forgetting
    the oldest finished ones first (a status asked for after that is 404).
    Statuses live in memory: a restarted broker knows none.
*/
#ifndef POND_BROKER_COMMANDS_H_INCLUDED
#define POND_BROKER_COMMANDS_H_INCLUDED

#include <czmq.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _pond_broker_commands_t pond_broker_commands_t;

//  Start the worker for the mesh in data_dir (where DATA/NAME.zpl are).
//  Returns NULL, logged, if the thread cannot start.
pond_broker_commands_t *
    pond_broker_commands_new (const char *data_dir);

//  Stop the worker (commands still running are left to their actors;
//  their statuses are lost) and free the table. Accepts NULL; nulls the
//  caller's pointer.
void
    pond_broker_commands_destroy (pond_broker_commands_t **self_p);

//  The socket to poll: readable when the worker has news.
zsock_t *
    pond_broker_commands_sock (pond_broker_commands_t *self);

//  Read what the worker says (started, progress, done, failed) into the
//  table, without blocking.
void
    pond_broker_commands_update (pond_broker_commands_t *self);

//  Answer a COMMAND of the control socket (body may be NULL; frames: how
//  many frames came after the command frame). Returns the reply's body
//  (caller owns it) and sets *reply to the reply's command (ACCEPTED or
//  ERROR) and *code to 200 or the error's code.
zframe_t *
    pond_broker_commands_submit (pond_broker_commands_t *self, zframe_t *body, size_t frames,
                                 const char **reply, uint32_t *code);

//  Answer a COMMAND_STATUS, likewise (COMMAND_STATUS or ERROR).
zframe_t *
    pond_broker_commands_status (pond_broker_commands_t *self, zframe_t *body, size_t frames,
                                 const char **reply, uint32_t *code);

#ifdef __cplusplus
}
#endif

#endif
