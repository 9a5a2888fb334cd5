/*  pond_actor_query: an actor's query socket (QUERY, COMMAND, STATUS,
    DUMP), QUERYs parked until the view has applied their 'after' seq.
    See pond_actor.h and proto/PROTOCOL.md, "Actor query socket".
*/
#include "pond_actor_internal.h"

#include <stdarg.h>

void
pond_actor_priv_error (pond_actor_t *self, zframe_t *peer, int code, const char *format, ...)
{
    char reason [POND_REASON_MAX];
    va_list args;
    va_start (args, format);
    vsnprintf (reason, sizeof reason, format, args);
    va_end (args);
    zframe_t *body = pond_nack_new (NULL, (uint32_t) code, 0, "%s", reason);
    pond_actor_priv_send (self, peer, POND_ERROR, &body);
}

//  A request we cannot serve: count it, log the first, answer ERROR.
static void
s_reject (pond_actor_t *self, zframe_t *peer, int code, const char *reason)
{
    if (self->rejected++ == 0 || self->verbose)
        zsys_warning ("%s: refused a request on the query socket: %s (%d)%s", self->name, reason,
                      code, self->verbose ? "" : "; counting further ones");
    pond_actor_priv_error (self, peer, code, "%s", reason);
}

//  Send text as RESULT if it is JSON, else ERROR 500. Frees text.
static void
s_result (pond_actor_t *self, zframe_t *peer, char **text_p)
{
    cJSON *check = cJSON_Parse (*text_p);
    if (check) {
        zframe_t *body = zframe_new (*text_p, strlen (*text_p));
        pond_actor_priv_send (self, peer, POND_RESULT, &body);
    }
    else {
        zsys_error ("%s: the actor answered with text that is not JSON", self->name);
        pond_actor_priv_error (self, peer, POND_CODE_STORE_ERROR, "the actor's answer is not JSON");
    }
    cJSON_Delete (check);
    zstr_free (text_p);
}

//  Answer after a query or command callback: RESULT, or the error it set,
//  or fallback_code with fallback_reason.
static void
s_answer (pond_actor_t *self, zframe_t *peer, char *result, int fallback_code,
          const char *fallback_reason)
{
    if (result)
        s_result (self, peer, &result);
    else if (self->error_code)
        pond_actor_priv_error (self, peer, self->error_code, "%s", self->error_reason);
    else
        pond_actor_priv_error (self, peer, fallback_code, "%s", fallback_reason);
}

//  Ready to answer from the view: caught up, and the subscription proven
//  by a heartbeat (before one, live events may still be missed)
static bool
s_ready (pond_actor_t *self)
{
    return self->live && self->heartbeats_seen > 0 && !self->rebuilding;
}

//  ERROR 503 with retry_ms: the view is not where the query needs it
static void s_unavailable (pond_actor_t *self, zframe_t *peer, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
s_unavailable (pond_actor_t *self, zframe_t *peer, const char *format, ...)
{
    char reason [POND_REASON_MAX];
    va_list args;
    va_start (args, format);
    vsnprintf (reason, sizeof reason, format, args);
    va_end (args);
    zframe_t *body = pond_nack_new (NULL, POND_CODE_UNAVAILABLE, QUERY_RETRY_MS, "%s", reason);
    pond_actor_priv_send (self, peer, POND_ERROR, &body);
}

//  A QUERY waiting until the view has applied its 'after' seq
typedef struct {
    zframe_t *peer;
    pond_query_t query;
    int64_t deadline;
} parked_t;

static void
s_parked_destroy (void **item_p)
{
    parked_t *parked = (parked_t *) *item_p;
    if (parked) {
        zframe_destroy (&parked->peer);
        free (parked);
        *item_p = NULL;
    }
}

//  Answer a QUERY from the view as it is now
static void
s_query_answer (pond_actor_t *self, zframe_t *peer, const pond_query_t *query)
{
    if (self->rebuilding) {
        s_unavailable (self, peer,
                       "%s is rebuilding its view (at seq %" PRIu64 "); ask "
                       "again later",
                       self->name, self->position);
        return;
    }
    //  The view holds what the question needs: 'after' applied, or
    //  (without 'after') caught up with the log
    if (query->after ? self->position < query->after : !s_ready (self)) {
        if (query->after)
            s_unavailable (self, peer,
                           "%s has not applied seq %" PRIu64 " yet: position %" PRIu64
                           " of head %" PRIu64 "; retry after retry_ms",
                           self->name, query->after, self->position, pond_sub_head (self->sub));
        else
            s_unavailable (self, peer,
                           "catching up: position %" PRIu64 " of head %" PRIu64
                           "; retry after retry_ms",
                           self->position, pond_sub_head (self->sub));
        return;
    }
    self->error_code = 0;
    char *result = self->spec->query (self, self->view, query->entity, query->text,
                                      self->spec->state);
    char reason [POND_REASON_MAX];
    snprintf (reason, sizeof reason, "%s knows nothing about '%s'", self->name, query->entity);
    s_answer (self, peer, result, POND_CODE_NOT_FOUND, reason);
}

//  Answer the parked QUERYs whose seq is applied or whose wait is over
void
pond_actor_priv_parked_check (pond_actor_t *self, bool all)
{
    if (!self->parked || zlistx_size (self->parked) == 0)
        return;
    int64_t now = zclock_mono ();
    bool again = true;
    while (again) {
        again = false;
        for (parked_t *parked = (parked_t *) zlistx_first (self->parked); parked;
             parked = (parked_t *) zlistx_next (self->parked))
            if (all || self->position >= parked->query.after || now >= parked->deadline) {
                s_query_answer (self, parked->peer, &parked->query);
                zlistx_delete (self->parked, zlistx_cursor (self->parked));
                again = true;
                break;
            }
    }
}

static void
s_query_query (pond_actor_t *self, zframe_t *peer, zframe_t *body, const pond_key_t *key)
{
    pond_query_t query;
    char err [POND_ERR_SIZE];
    if (pond_query_decode (body, &query, err, sizeof err)) {
        s_reject (self, peer, POND_CODE_BAD_REQUEST, err);
        return;
    }
    if (!*query.entity) {
        s_reject (self, peer, POND_CODE_BAD_REQUEST, "'entity' must not be empty");
        return;
    }
    if (query.wait_ms > POND_QUERY_WAIT_MAX) {
        snprintf (err, sizeof err, "'wait_ms' is at most %d", POND_QUERY_WAIT_MAX);
        s_reject (self, peer, POND_CODE_BAD_REQUEST, err);
        return;
    }
    if (key && !pond_key_may_ask (key, query.entity, err, sizeof err)) {
        s_reject (self, peer, POND_CODE_FORBIDDEN, err);
        return;
    }
    if (query.has_at_seq || query.has_as_of) {
        //  Time travel: answered from a scratch view, whatever 'after'
        pond_actor_priv_asof_start (self, peer, &query);
        return;
    }
    if (query.after && self->position < query.after && !self->rebuilding) {
        //  Read your writes: wait (bounded) until the view has applied it
        parked_t *parked = NULL;
        if (!self->parked) {
            self->parked = zlistx_new ();
            if (self->parked)
                zlistx_set_destructor (self->parked, s_parked_destroy);
        }
        if (self->parked && zlistx_size (self->parked) < PARKED_MAX)
            parked = (parked_t *) calloc (1, sizeof *parked);
        if (parked) {
            parked->peer = zframe_dup (peer);
            parked->query = query;
            parked->deadline = zclock_mono ()
                             + (query.wait_ms ? query.wait_ms : POND_QUERY_WAIT_MS);
            if (zlistx_add_end (self->parked, parked))
                return;
            s_parked_destroy ((void **) &parked);
        }
        //  No room to wait: answer now (503 with the position)
    }
    s_query_answer (self, peer, &query);
}

static void
s_query_command (pond_actor_t *self, zframe_t *peer, zframe_t *body)
{
    //  64 KiB of args: off the stack
    pond_command_t *command = (pond_command_t *) malloc (sizeof (pond_command_t));
    char err [POND_ERR_SIZE];
    if (!command) {
        pond_actor_priv_error (self, peer, POND_CODE_UNAVAILABLE, "out of memory");
        return;
    }
    if (pond_command_decode (body, command, err, sizeof err)) {
        s_reject (self, peer, POND_CODE_BAD_REQUEST, err);
        free (command);
        return;
    }
    //  Every answer names the command's id, when it had one
    const uint8_t *id = command->has_id ? command->id : NULL;
    char reason [POND_REASON_MAX];
    if (self->rebuilding) {
        snprintf (reason, sizeof reason, "%s is rebuilding its view; try again later", self->name);
        pond_actor_priv_command_reply (self, peer, NULL, POND_CODE_UNAVAILABLE, reason, id);
    }
    else if (streq (command->command, "rebuild"))
        pond_actor_priv_rebuild_start (self, peer, id);
    else if (!self->spec->command) {
        snprintf (reason, sizeof reason, "%s has no command '%s'", self->name, command->command);
        if (self->rejected++ == 0 || self->verbose)
            zsys_warning ("%s: refused a request on the query socket: %s (404)", self->name,
                          reason);
        pond_actor_priv_command_reply (self, peer, NULL, POND_CODE_NOT_FOUND, reason, id);
    }
    else {
        zsys_info ("%s: running command '%s'", self->name, command->command);
        self->error_code = 0;
        self->requester = peer;
        self->command_has_id = id != NULL;
        if (id)
            memcpy (self->command_id, id, POND_ID_SIZE);
        //  The command works on the log as of now, not on a view that
        //  lags behind (still catching up, live events not read yet)
        char *result = NULL;
        if (pond_actor_catch_up (self) == 0) {
            if (pond_actor_priv_persist (self))
                pond_actor_set_error (self, POND_CODE_STORE_ERROR, "cannot write the view");
            else
                result = self->spec->command (self, self->view, command->command, command->args,
                                              self->spec->state);
        }
        self->requester = NULL;
        self->command_has_id = false;
        snprintf (reason, sizeof reason, "%s has no command '%s'", self->name, command->command);
        int code = self->error_code ? self->error_code : POND_CODE_NOT_FOUND;
        const char *why = self->error_code ? self->error_reason : reason;
        cJSON *check = result ? cJSON_Parse (result) : NULL;
        if (result && !check) {
            zsys_error ("%s: the actor answered with text that is not JSON", self->name);
            code = POND_CODE_STORE_ERROR;
            why = "the actor's answer is not JSON";
            zstr_free (&result);
        }
        cJSON_Delete (check);
        if (!result)
            zsys_info ("%s: command '%s' failed: %d %s", self->name, command->command, code, why);
        pond_actor_priv_command_reply (self, peer, result, code, why, id);
        zstr_free (&result);
    }
    free (command);
}

static void
s_query_status (pond_actor_t *self, zframe_t *peer)
{
    char *json = zsys_sprintf (
        "{\"name\":\"%s\",\"position\":%" PRIu64 ",\"live\":%s,\"applied\":%" PRIu64
        ",\"catchups\":%" PRIu64 ",\"emitted\":%" PRIu64 ",\"pid\":%d,\"rebuilding\":%s"
        ",\"head\":%" PRIu64 ",\"doubles\":%" PRIu64 ",\"requests\":%" PRIu64
        ",\"rejected\":%" PRIu64 "}",
        self->name, self->position, s_ready (self) ? "true" : "false", self->applied,
        self->catchups, self->emitted, (int) getpid (), self->rebuilding ? "true" : "false",
        pond_sub_head (self->sub), self->doubles, self->requests, self->rejected);
    s_result (self, peer, &json);
}

static void
s_query_dump (pond_actor_t *self, zframe_t *peer)
{
    if (self->rebuilding) {
        pond_actor_priv_error (self, peer, POND_CODE_UNAVAILABLE,
                               "%s is rebuilding its view; try again later", self->name);
        return;
    }
    //  The dump shows the position in memory: write it first
    if (pond_actor_priv_persist (self)) {
        pond_actor_priv_error (self, peer, POND_CODE_STORE_ERROR,
                               "cannot write the view's position");
        return;
    }
    char *dump = pond_view_dump (self->view);
    if (!dump) {
        pond_actor_priv_error (self, peer, POND_CODE_STORE_ERROR,
                               "cannot read the view (see the log)");
        return;
    }
    zframe_t *body = zframe_new (dump, strlen (dump));
    free (dump);
    pond_actor_priv_send (self, peer, POND_RESULT, &body);
}

//  Print a command frame for a log line: printable ASCII only, short.
static void
s_command_text (zframe_t *frame, char *text, size_t size)
{
    size_t len = zframe_size (frame);
    const byte *data = zframe_data (frame);
    size_t i;
    for (i = 0; i < len && i + 1 < size && i < 32; i++)
        text [i] = data [i] >= 0x20 && data [i] < 0x7f ? (char) data [i] : '?';
    text [i] = 0;
}

void
pond_actor_priv_on_request (pond_actor_t *self, zmsg_t *msg)
{
    self->requests++;
    zframe_t *peer = zmsg_pop (msg);
    zframe_t *command = zmsg_pop (msg);
    zframe_t *body = zmsg_pop (msg);
    size_t extra = zmsg_size (msg);
    bool takes_body = pond_proto_is (command, POND_QUERY) || pond_proto_is (command, POND_COMMAND);
    bool known = takes_body || pond_proto_is (command, POND_STATUS)
              || pond_proto_is (command, POND_DUMP);
    char reason [POND_REASON_MAX];
    //  The command frame came from the wire: it says who sent it
    const pond_key_t *key = command && pond_keys_active () ? pond_keys_sender (command) : NULL;
    if (!peer)
        ;    //  nobody to answer
    else if (command && pond_keys_active () && !key)
        s_reject (self, peer, POND_CODE_FORBIDDEN, "your key is no longer in the keys directory");
    else if (key && !pond_key_may_query (key, reason, sizeof reason))
        s_reject (self, peer, POND_CODE_FORBIDDEN, reason);
    else if (key && command && !pond_proto_is (command, POND_QUERY)
             && !pond_key_may_ask (key, NULL, reason, sizeof reason))
        s_reject (self, peer, POND_CODE_FORBIDDEN, reason);
    else if (!command || zframe_size (command) == 0)
        s_reject (self, peer, POND_CODE_NOT_FOUND, "empty command frame");
    else if (!known) {
        char text [40];
        s_command_text (command, text, sizeof text);
        snprintf (reason, sizeof reason,
                  "unknown command '%s'; the query socket takes "
                  "QUERY, COMMAND, STATUS or DUMP",
                  text);
        s_reject (self, peer, POND_CODE_NOT_FOUND, reason);
    }
    else if (body && zframe_size (body) > POND_BODY_MAX) {
        snprintf (reason, sizeof reason, "body is %zu bytes; the limit is %d", zframe_size (body),
                  POND_BODY_MAX);
        s_reject (self, peer, POND_CODE_TOO_LARGE, reason);
    }
    else if (extra || (body && !takes_body)) {
        snprintf (reason, sizeof reason, "too many frames: %s takes %s",
                  takes_body ? "a command and a body" : "the command frame only",
                  takes_body ? "no more" : "no body");
        s_reject (self, peer, POND_CODE_BAD_REQUEST, reason);
    }
    else if (pond_proto_is (command, POND_QUERY))
        s_query_query (self, peer, body, key);
    else if (pond_proto_is (command, POND_COMMAND))
        s_query_command (self, peer, body);
    else if (pond_proto_is (command, POND_STATUS))
        s_query_status (self, peer);
    else
        s_query_dump (self, peer);
    zframe_destroy (&peer);
    zframe_destroy (&command);
    zframe_destroy (&body);
}
