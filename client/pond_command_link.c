/*  pond_command_link: commands through the broker's control socket. See
    pond_command_link.h and proto/PROTOCOL.md, "Control socket".
*/
#include "pond_command_link.h"
#include "pond_client_io.h"
#include "pond_uuid.h"
#include "pond_value.h"

#include <stdarg.h>

static int s_fail (pond_command_failure_t *failure, int code, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static int
s_fail (pond_command_failure_t *failure, int code, const char *format, ...)
{
    failure->code = code;
    failure->retry_ms = 0;
    va_list args;
    va_start (args, format);
    vsnprintf (failure->reason, sizeof failure->reason, format, args);
    va_end (args);
    return -1;
}

//  Send command with body (taken) and wait for reply_command or ERROR
//  carrying rid. Returns 0 with *status, or -1.
static int
s_request (const char *control, const char *command, zframe_t **body_p, uint64_t rid,
           const char *reply_command, int timeout_ms, pond_command_status_t *status,
           pond_command_failure_t *failure)
{
    memset (failure, 0, sizeof *failure);
    if (!*body_p)
        return s_fail (failure, POND_CODE_BAD_REQUEST, "cannot encode the request");
    pond_keys_watch_t *watch = NULL;
    zsock_t *sock = pond_client_io_dealer_new (control, false, timeout_ms, &watch);
    if (!sock) {
        zframe_destroy (body_p);
        return s_fail (failure, POND_CODE_TIMEOUT, "cannot connect to %s", control);
    }
    int rc = -1;
    if (pond_client_io_send_frame (sock, command, body_p))
        s_fail (failure, POND_CODE_TIMEOUT, "cannot send to the broker at %s", control);
    else {
        int64_t deadline = pond_client_io_deadline (timeout_ms);
        bool waiting = true;
        while (waiting) {
            bool interrupted;
            zmsg_t *msg = pond_client_io_recv_until (sock, deadline, &interrupted);
            if (!msg) {
                if (interrupted)
                    s_fail (failure, POND_CODE_INTERRUPTED, "interrupted");
                else if (pond_keys_watch_refused (watch, failure->reason, sizeof failure->reason))
                    failure->code = POND_CODE_FORBIDDEN;
                else
                    s_fail (failure, POND_CODE_TIMEOUT,
                            "no reply from the broker at %s within %d ms", control, timeout_ms);
                break;
            }
            zframe_t *head = zmsg_first (msg);
            zframe_t *body = zmsg_next (msg);
            char err [POND_ERR_SIZE];
            if (pond_proto_is (head, reply_command)) {
                if (pond_command_status_decode (body, status, err, sizeof err))
                    s_fail (failure, POND_CODE_BAD_REPLY, "the broker sent an unreadable %s: %s",
                            reply_command, err);
                else if (status->has_rid && status->rid != rid)
                    body = NULL;    //  another request's: wait on
                else
                    rc = 0;
                waiting = body == NULL;
            }
            else if (pond_proto_is (head, POND_ERROR)) {
                pond_nack_t error;
                if (pond_nack_decode (body, &error, err, sizeof err)) {
                    s_fail (failure, POND_CODE_BAD_REPLY, "the broker sent an unreadable ERROR: %s",
                            err);
                    waiting = false;
                }
                else if (!error.has_rid || error.rid == rid) {
                    s_fail (failure, (int) error.code, "%s", error.reason);
                    failure->retry_ms = error.retry_ms;
                    waiting = false;
                }
            }
            zmsg_destroy (&msg);
        }
    }
    zsock_destroy (&sock);
    pond_keys_watch_destroy (&watch);
    return rc;
}

static uint64_t
s_rid (void)
{
    uint8_t random [POND_ID_SIZE];
    uint64_t rid = 0;
    if (pond_uuid_v7 (random) == 0)
        memcpy (&rid, random + 8, sizeof rid);
    return rid ? rid : (uint64_t) zclock_usecs ();
}

int
pond_command_link_submit (const char *control, const pond_command_t *command, int timeout_ms,
                          pond_command_status_t *status, pond_command_failure_t *failure)
{
    assert (control);
    assert (command);
    pond_command_t *message = (pond_command_t *) malloc (sizeof *message);
    if (!message)
        return s_fail (failure, POND_CODE_BAD_REQUEST, "out of memory");
    *message = *command;
    message->has_rid = true;
    message->rid = s_rid ();
    zframe_t *body = pond_command_encode (message);
    uint64_t rid = message->rid;
    free (message);
    return s_request (control, POND_COMMAND, &body, rid, POND_ACCEPTED, timeout_ms, status,
                      failure);
}

int
pond_command_link_status (const char *control, const uint8_t *id, int timeout_ms,
                          pond_command_status_t *status, pond_command_failure_t *failure)
{
    assert (control);
    assert (id);
    pond_command_ref_t ref = { .has_id = true, .has_rid = true, .rid = s_rid () };
    memcpy (ref.id, id, POND_ID_SIZE);
    zframe_t *body = pond_command_ref_encode (&ref);
    return s_request (control, POND_COMMAND_STATUS, &body, ref.rid, POND_COMMAND_STATUS, timeout_ms,
                      status, failure);
}

bool
pond_command_link_finished (const pond_command_status_t *status)
{
    return streq (status->status, "done") || streq (status->status, "failed");
}

cJSON *
pond_command_link_json (const pond_command_status_t *status)
{
    cJSON *root = cJSON_CreateObject ();
    cJSON *progress = cJSON_CreateObject ();
    if (!root || !progress) {
        cJSON_Delete (root);
        cJSON_Delete (progress);
        return NULL;
    }
    char id [37];
    pond_uuid_format (status->id, id);
    cJSON_AddStringToObject (root, "id", id);
    cJSON_AddStringToObject (root, "command", status->command);
    cJSON_AddStringToObject (root, "view", status->view);
    cJSON_AddStringToObject (root, "status", status->status);
    pond_value_json_add_uint (progress, "done", status->done);
    pond_value_json_add_uint (progress, "total", status->total);
    cJSON_AddItemToObject (root, "progress", progress);
    if (status->has_result) {
        cJSON *result = cJSON_Parse (status->result);
        if (result)
            cJSON_AddItemToObject (root, "result", result);
        else
            cJSON_AddStringToObject (root, "result", status->result);
    }
    if (status->has_code)
        cJSON_AddNumberToObject (root, "code", status->code);
    if (status->has_reason)
        cJSON_AddStringToObject (root, "reason", status->reason);
    const char *names [] = { "accepted", "started", "finished" };
    const uint64_t times [] = { status->accepted, status->started, status->finished };
    for (size_t i = 0; i < 3; i++)
        if (times [i])
            pond_value_json_add_uint (root, names [i], times [i]);
    return root;
}
