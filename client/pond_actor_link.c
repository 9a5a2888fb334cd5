/*  pond_actor_link: requests to one actor's query socket. See
    pond_actor_link.h and proto/PROTOCOL.md, "Actor query socket".
*/
#include "pond_actor_link.h"
#include "pond_client.h"
#include "pond_client_io.h"
#include "pond_keys.h"
#include "pond_proto.h"

#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define QUERY_RETRY_MS 100    //  wait before asking a view that said 503 again

struct _pond_actor_link_t {
    char name [64];
    char endpoint [POND_ENDPOINT_MAX];
    int pid;
    char key [POND_KEY_NAME_MAX + 1];    //  the actor's key (actor/key), "" if none
    zsock_t *sock;                       //  DEALER; recreated after a timeout
    pond_keys_watch_t *watch;            //  its handshakes, with keys
    int code;
    char reason [POND_REASON_MAX + 128];
    uint32_t retry_ms;    //  of the last ERROR 503, 0 if none
};

pond_actor_link_t *
pond_actor_link_new (const char *data_dir, const char *name, char *err, size_t errlen)
{
    assert (data_dir);
    assert (name);
    char path [PATH_MAX + 128];
    snprintf (path, sizeof path, "%s/%s.zpl", data_dir, name);
    zconfig_t *config = zsys_file_exists (path) ? zconfig_load (path) : NULL;
    if (!config) {
        snprintf (err, errlen,
                  "%s is not running (no %s); start the mesh with: "
                  "pond up --data %s",
                  name, path, data_dir);
        return NULL;
    }
    const char *endpoint = zconfig_get (config, "actor/query", "");
    if (!*endpoint || strlen (endpoint) >= POND_ENDPOINT_MAX || strlen (name) >= 64) {
        snprintf (err, errlen, "%s names no query endpoint (actor/query)", path);
        zconfig_destroy (&config);
        return NULL;
    }
    pond_actor_link_t *self = (pond_actor_link_t *) zmalloc (sizeof (pond_actor_link_t));
    if (self) {
        strcpy (self->name, name);
        strcpy (self->endpoint, endpoint);
        self->pid = atoi (zconfig_get (config, "actor/pid", "0"));
        snprintf (self->key, sizeof self->key, "%s", zconfig_get (config, "actor/key", ""));
    }
    zconfig_destroy (&config);
    return self;
}

pond_actor_link_t *
pond_actor_link_new_at (const char *name, const char *endpoint, const char *key, char *err,
                        size_t errlen)
{
    assert (name);
    assert (endpoint);
    if (!key)
        key = name;
    if (!*name || strlen (name) >= 64 || !*endpoint || strlen (endpoint) >= POND_ENDPOINT_MAX
        || strlen (key) > POND_KEY_NAME_MAX) {
        snprintf (err, errlen, "actor '%.64s' at '%.300s': name, endpoint or key empty or too long",
                  name, endpoint);
        return NULL;
    }
    pond_actor_link_t *self = (pond_actor_link_t *) zmalloc (sizeof (pond_actor_link_t));
    if (self) {
        strcpy (self->name, name);
        strcpy (self->endpoint, endpoint);
        if (pond_keys_active ())    //  Else the link is plain, as the actor must be
            strcpy (self->key, key);
    }
    return self;
}

void
pond_actor_link_destroy (pond_actor_link_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        pond_actor_link_t *self = *self_p;
        zsock_destroy (&self->sock);
        pond_keys_watch_destroy (&self->watch);
        free (self);
        *self_p = NULL;
    }
}

const char *
pond_actor_link_endpoint (pond_actor_link_t *self)
{
    assert (self);
    return self->endpoint;
}

int
pond_actor_link_pid (pond_actor_link_t *self)
{
    assert (self);
    return self->pid;
}

int
pond_actor_link_code (pond_actor_link_t *self)
{
    assert (self);
    return self->code;
}

const char *
pond_actor_link_reason (pond_actor_link_t *self)
{
    assert (self);
    return self->reason;
}

static char *s_fail (pond_actor_link_t *self, int code, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static char *
s_fail (pond_actor_link_t *self, int code, const char *format, ...)
{
    self->code = code;
    self->retry_ms = 0;
    va_list args;
    va_start (args, format);
    vsnprintf (self->reason, sizeof self->reason, format, args);
    va_end (args);
    return NULL;
}

//  Send command [body] and wait for RESULT or ERROR, passing PROGRESS to
//  progress; each message restarts the wait. Takes the body.
static char *
s_request (pond_actor_link_t *self, const char *command, zframe_t **body_p, int timeout_ms,
           pond_actor_progress_fn *progress, void *arg)
{
    self->code = 0;
    *self->reason = 0;
    if (!self->sock) {
        pond_keys_watch_destroy (&self->watch);
        self->sock = zsock_new (ZMQ_DEALER);
        if (self->sock) {
            zsock_set_linger (self->sock, 0);
            zsock_set_sndtimeo (self->sock, timeout_ms);
            //  An actor with a key (in its ready file) speaks CURVE with it
            if (*self->key && pond_keys_active ()) {
                if (pond_keys_client (self->sock, self->key))
                    zsock_destroy (&self->sock);
                else
                    self->watch = pond_keys_watch_new (self->sock);
            }
            if (self->sock && zsock_connect (self->sock, "%s", self->endpoint))
                zsock_destroy (&self->sock);
        }
        if (!self->sock) {
            zframe_destroy (body_p);
            return s_fail (self, POND_CODE_TIMEOUT, "cannot connect to %s", self->endpoint);
        }
    }
    zmsg_t *request = zmsg_new ();
    zmsg_addstr (request, command);
    if (body_p && *body_p)
        zmsg_append (request, body_p);
    if (zmsg_send (&request, self->sock)) {
        zmsg_destroy (&request);
        zsock_destroy (&self->sock);
        return s_fail (self, POND_CODE_TIMEOUT, "cannot send to %s", self->endpoint);
    }
    char *result = NULL;
    int64_t deadline = zclock_mono () + timeout_ms;
    while (!result && !self->code) {
        bool interrupted;
        zmsg_t *reply = pond_client_io_recv_until (self->sock, deadline, &interrupted);
        if (!reply) {
            //  A late reply must not answer the next request
            zsock_destroy (&self->sock);
            char refused [640];
            if (interrupted)
                return s_fail (self, POND_CODE_INTERRUPTED, "interrupted");
            if (pond_keys_watch_refused (self->watch, refused, sizeof refused))
                return s_fail (self, POND_CODE_FORBIDDEN, "%s", refused);
            if (*self->key && !pond_keys_active ())
                return s_fail (self, POND_CODE_TIMEOUT,
                               "no reply from %s at %s within %d ms: "
                               "it uses CURVE (key '%s'); give --keys DIR and --as NAME",
                               self->name, self->endpoint, timeout_ms, self->key);
            return s_fail (self, POND_CODE_TIMEOUT, "no reply from %s at %s within %d ms",
                           self->name, self->endpoint, timeout_ms);
        }
        zframe_t *head = zmsg_first (reply);
        zframe_t *frame = zmsg_next (reply);
        char err [POND_ERR_SIZE];
        if (pond_proto_is (head, POND_RESULT)) {
            if (!frame)
                s_fail (self, POND_CODE_BAD_REPLY, "%s sent an empty RESULT", self->name);
            else if ((result = (char *) malloc (zframe_size (frame) + 1))) {
                memcpy (result, zframe_data (frame), zframe_size (frame));
                result [zframe_size (frame)] = 0;
            }
        }
        else if (pond_proto_is (head, POND_ERROR)) {
            pond_nack_t error;
            if (pond_nack_decode (frame, &error, err, sizeof err))
                s_fail (self, POND_CODE_BAD_REPLY, "%s sent an unreadable ERROR: %s", self->name,
                        err);
            else {
                s_fail (self, (int) error.code, "%s", error.reason);
                self->retry_ms = error.retry_ms;
            }
        }
        else if (pond_proto_is (head, POND_PROGRESS)) {
            pond_progress_t step;
            if (pond_progress_decode (frame, &step, err, sizeof err) == 0 && progress)
                progress (step.done, step.total, arg);
            deadline = zclock_mono () + timeout_ms;
        }
        //  Anything else is not for us: wait on
        zmsg_destroy (&reply);
    }
    return result;
}

char *
pond_actor_link_query (pond_actor_link_t *self, const char *entity, const char *text,
                       int timeout_ms)
{
    return pond_actor_link_query_after (self, entity, text, 0, timeout_ms);
}

//  Fill query with entity and text. Returns 0, or -1 (s_fail).
static int
s_query_init (pond_actor_link_t *self, pond_query_t *query, const char *entity, const char *text)
{
    memset (query, 0, sizeof *query);
    if (!*entity || strlen (entity) >= sizeof query->entity) {
        s_fail (self, POND_CODE_BAD_REQUEST, "entity must be 1 to %d bytes",
                (int) sizeof query->entity - 1);
        return -1;
    }
    if (text && strlen (text) >= sizeof query->text) {
        s_fail (self, POND_CODE_BAD_REQUEST, "the question must be at most %d bytes",
                (int) sizeof query->text - 1);
        return -1;
    }
    strcpy (query->entity, entity);
    if (text)
        strcpy (query->text, text);
    return 0;
}

//  Send query, and again after each 503 until timeout_ms is over
static char *
s_query (pond_actor_link_t *self, pond_query_t *query, int timeout_ms)
{
    //  503 (catching up, not at 'after' yet, busy with another time-travel
    //  query): ask again until the timeout; the view itself waits for
    //  'after' up to wait_ms
    uint64_t after = query->after;
    int64_t deadline = zclock_mono () + timeout_ms;
    while (true) {
        int64_t left = deadline - zclock_mono ();
        if (left < 1)
            left = 1;
        query->wait_ms = after
                           ? (uint32_t) (left < POND_QUERY_WAIT_MAX ? left : POND_QUERY_WAIT_MAX)
                           : 0;
        zframe_t *body = pond_query_encode (query);
        if (!body)
            return s_fail (self, POND_CODE_BAD_REQUEST, "cannot encode the query");
        //  The reply may take wait_ms: a little more for the socket
        char *result = s_request (self, POND_QUERY, &body, (int) left + (after ? 1000 : 0), NULL,
                                  NULL);
        uint32_t retry_ms = self->retry_ms ? self->retry_ms : QUERY_RETRY_MS;
        if (result || self->code != POND_CODE_UNAVAILABLE || zclock_mono () + retry_ms >= deadline)
            return result;
        zclock_sleep ((int) retry_ms);
    }
}

char *
pond_actor_link_query_after (pond_actor_link_t *self, const char *entity, const char *text,
                             uint64_t after, int timeout_ms)
{
    assert (self);
    assert (entity);
    pond_query_t query;
    if (s_query_init (self, &query, entity, text))
        return NULL;
    query.after = after;
    return s_query (self, &query, timeout_ms);
}

char *
pond_actor_link_query_as_of (pond_actor_link_t *self, const char *entity, const char *text,
                             uint64_t at_seq, uint64_t as_of_us, int timeout_ms)
{
    assert (self);
    assert (entity);
    pond_query_t query;
    if (s_query_init (self, &query, entity, text))
        return NULL;
    if (as_of_us) {
        query.as_of = as_of_us;
        query.has_as_of = true;
    }
    else {
        query.at_seq = at_seq;
        query.has_at_seq = true;
    }
    return s_query (self, &query, timeout_ms);
}

char *
pond_actor_link_status (pond_actor_link_t *self, int timeout_ms)
{
    assert (self);
    return s_request (self, POND_STATUS, NULL, timeout_ms, NULL, NULL);
}

char *
pond_actor_link_dump (pond_actor_link_t *self, int timeout_ms)
{
    assert (self);
    return s_request (self, POND_DUMP, NULL, timeout_ms, NULL, NULL);
}

char *
pond_actor_link_command (pond_actor_link_t *self, const char *command, const char *args,
                         int idle_timeout_ms, pond_actor_progress_fn *progress, void *arg)
{
    assert (self);
    assert (command);
    //  64 KiB of args: too big for the stack
    pond_command_t *message = (pond_command_t *) zmalloc (sizeof (pond_command_t));
    if (!message)
        return s_fail (self, POND_CODE_BAD_REQUEST, "out of memory");
    if (strlen (command) >= sizeof message->command
        || (args && strlen (args) >= sizeof message->args)) {
        free (message);
        return s_fail (self, POND_CODE_TOO_LARGE,
                       "the command or its arguments are too "
                       "long (arguments: at most %d bytes)",
                       (int) sizeof message->args - 1);
    }
    strcpy (message->command, command);
    if (args)
        strcpy (message->args, args);
    zframe_t *body = pond_command_encode (message);
    free (message);
    if (!body)
        return s_fail (self, POND_CODE_BAD_REQUEST, "cannot encode the command");
    return s_request (self, POND_COMMAND, &body, idle_timeout_ms, progress, arg);
}
