/*  pond_gateway: HTTP/JSON at the edge of a mesh. See pond_gateway.h.

    libmicrohttpd runs one thread per connection: a handler may wait on
    the mesh, and a stream may run for hours, without holding up any
    other connection. The ZeroMQ sockets a handler uses are made in its
    connection's thread and used there only (ZeroMQ sockets are not
    thread-safe): the producer of POST /v1/events is kept with the
    connection, for the next requests of a keep-alive client; an actor
    link is made per view request, a replay per NDJSON stream. The one
    socket shared by streams, the SUB of the live hub, lives in the hub's
    thread (pond_gateway_stream.c). A request's body is gathered up to
    max_body (beyond: 413, read and dropped), then the handler that the
    routing table (s_routes) names for its method and path runs once with
    the whole body.
*/
#include "pond_gateway_internal.h"
#include "pond_gateway_auth.h"
#include "pond_gateway_status.h"
#include "pond_keys.h"
#include "pond_gateway_commands.h"
#include "pond_client.h"
#include "pond_actor_link.h"
#include "pond_event_json.h"
#include "pond_number.h"
#include "pond_proto.h"
#include "pond_thread.h"
#include "pond_uuid.h"
#include "pond_views.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <czmq.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_TYPE POND_GATEWAY_JSON_TYPE
#define TEXT_TYPE POND_GATEWAY_TEXT_TYPE

typedef pond_gateway_request_t request_t;

//  What a connection keeps between its requests (keep-alive), in its
//  socket context: made and used in the connection's thread
typedef struct {
    pond_client_t *client;                    //  the producer of POST /v1/events, made on first use
    pond_actor_link_t *links [POND_VIEWS];    //  to each actor, made on first use
    char key [POND_KEY_NAME_MAX + 1];         //  the key they speak as ("" local mode)
} connection_t;

//  Drop the sockets a connection keeps
static void
s_connection_drop (connection_t *state)
{
    pond_client_destroy (&state->client);
    for (size_t i = 0; i < POND_VIEWS; i++)
        pond_actor_link_destroy (&state->links [i]);
}

//  The state of connection, or NULL
static connection_t *
s_connection_state (struct MHD_Connection *connection)
{
    const union MHD_ConnectionInfo *info = MHD_get_connection_info (
        connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? (connection_t *) info->socket_context : NULL;
}

//  =====================================================================
//  Replies

//  Queue a reply with body (copied) and content type; retry_after_s > 0
//  adds Retry-After, header (not NULL) one more header with value.
//  Returns what the access handler returns.
static enum MHD_Result
s_reply_with (pond_gateway_t *self, struct MHD_Connection *connection, unsigned status,
              const char *type, const char *body, unsigned retry_after_s, const char *header,
              const char *value)
{
    struct MHD_Response *response = MHD_create_response_from_buffer (strlen (body), (void *) body,
                                                                     MHD_RESPMEM_MUST_COPY);
    if (!response)
        return MHD_NO;
    MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (retry_after_s) {
        char seconds [16];
        snprintf (seconds, sizeof seconds, "%u", retry_after_s);
        MHD_add_response_header (response, MHD_HTTP_HEADER_RETRY_AFTER, seconds);
    }
    if (header)
        MHD_add_response_header (response, header, value);
    enum MHD_Result rc = MHD_queue_response (connection, status, response);
    MHD_destroy_response (response);
    self->replies [status / 100 < 6 ? status / 100 : 0]++;
    return rc;
}

//  The same, allow (not NULL) in an Allow header
static enum MHD_Result
s_reply (pond_gateway_t *self, struct MHD_Connection *connection, unsigned status, const char *type,
         const char *body, unsigned retry_after_s, const char *allow)
{
    return s_reply_with (self, connection, status, type, body, retry_after_s,
                         allow ? MHD_HTTP_HEADER_ALLOW : NULL, allow);
}

//  Reply with a cJSON tree, which this takes (and deletes); header as
//  s_reply_with
static enum MHD_Result
s_reply_json_with (pond_gateway_t *self, struct MHD_Connection *connection, unsigned status,
                   cJSON *root, unsigned retry_after_s, const char *header, const char *value)
{
    //  One line, ended (curl prints it as is)
    char *json = root ? cJSON_PrintUnformatted (root) : NULL;
    cJSON_Delete (root);
    char *text = zsys_sprintf ("%s\n", json ? json : "{}");
    free (json);
    enum MHD_Result rc = s_reply_with (self, connection, status, JSON_TYPE, text ? text : "{}\n",
                                       retry_after_s, header, value);
    zstr_free (&text);
    return rc;
}

static enum MHD_Result
s_reply_json (pond_gateway_t *self, struct MHD_Connection *connection, unsigned status, cJSON *root,
              unsigned retry_after_s)
{
    return s_reply_json_with (self, connection, status, root, retry_after_s, NULL, NULL);
}

//  Reply {"code":status,"error":reason}; header as s_reply_with
static enum MHD_Result
s_reply_reason (pond_gateway_t *self, struct MHD_Connection *connection, unsigned status,
                unsigned retry_after_s, const char *header, const char *value, const char *reason)
{
    if (self->config.verbose)
        zsys_info ("pond-gateway: %u %s", status, reason);
    cJSON *root = cJSON_CreateObject ();
    cJSON_AddNumberToObject (root, "code", status);
    cJSON_AddStringToObject (root, "error", reason);
    return s_reply_json_with (self, connection, status, root, retry_after_s, header, value);
}

//  Reply {"code":status,"error":reason}
static enum MHD_Result s_reply_error (pond_gateway_t *self, struct MHD_Connection *connection,
                                      unsigned status, unsigned retry_after_s, const char *format,
                                      ...) __attribute__ ((format (printf, 5, 6)));

static enum MHD_Result
s_reply_errorv (pond_gateway_t *self, struct MHD_Connection *connection, unsigned status,
                unsigned retry_after_s, const char *format, va_list args)
{
    char reason [512];
    vsnprintf (reason, sizeof reason, format, args);
    return s_reply_reason (self, connection, status, retry_after_s, NULL, NULL, reason);
}

static enum MHD_Result
s_reply_error (pond_gateway_t *self, struct MHD_Connection *connection, unsigned status,
               unsigned retry_after_s, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    enum MHD_Result rc = s_reply_errorv (self, connection, status, retry_after_s, format, args);
    va_end (args);
    return rc;
}

enum MHD_Result
pond_gateway_reply (pond_gateway_t *self, struct MHD_Connection *connection, unsigned status,
                    const char *type, const char *body, unsigned retry_after_s, const char *allow)
{
    return s_reply (self, connection, status, type, body, retry_after_s, allow);
}

enum MHD_Result
pond_gateway_reply_error (pond_gateway_t *self, struct MHD_Connection *connection, unsigned status,
                          unsigned retry_after_s, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    enum MHD_Result rc = s_reply_errorv (self, connection, status, retry_after_s, format, args);
    va_end (args);
    return rc;
}

void
pond_gateway_stream_held (pond_gateway_t *self, int64_t delta, int64_t held)
{
    if (delta)
        atomic_fetch_add (&self->stream_bytes, delta);
    int_fast64_t peak = atomic_load (&self->stream_bytes_peak);
    while (held > peak && !atomic_compare_exchange_weak (&self->stream_bytes_peak, &peak, held))
        ;
}

//  The HTTP status for a code of the protocol or of the client library,
//  and the Retry-After seconds for it (0: none)
static unsigned
s_http_status (int code, uint32_t retry_ms, unsigned *retry_after_s)
{
    *retry_after_s = 0;
    switch (code) {
        case POND_CODE_BAD_REQUEST:
        case POND_CODE_FORBIDDEN:
        case POND_CODE_NOT_FOUND:
        case POND_CODE_CONFLICT:
        case POND_CODE_TOO_LARGE:
        case POND_CODE_STORE_ERROR:
        case POND_CODE_BAD_REPLY: return (unsigned) code;
        case POND_CODE_UNAVAILABLE:
            *retry_after_s = retry_ms ? (retry_ms + 999) / 1000 : 1;
            return 503;
        case POND_CODE_TIMEOUT:    //  The mesh does not answer: come back
        case POND_CODE_INTERRUPTED: *retry_after_s = 1; return 503;
        default: return code >= 400 && code < 600 ? (unsigned) code : 500;
    }
}

unsigned
pond_gateway_http_status (int code, uint32_t retry_ms, unsigned *retry_after_s)
{
    return s_http_status (code, retry_ms, retry_after_s);
}

//  =====================================================================
//  Where the mesh is

int
pond_gateway_endpoints (pond_gateway_t *self, pond_endpoints_t *eps)
{
    if (pond_endpoints_resolve (self->data_dir, eps))
        return -1;
    if (*self->ingest)
        strcpy (eps->ingest, self->ingest);
    if (*self->pub)
        strcpy (eps->pub, self->pub);
    if (*self->control)
        strcpy (eps->control, self->control);
    return 0;
}

//  A link to one actor: at the endpoint given, else where its ready file
//  in the data directory says
static pond_actor_link_t *
s_actor_link (pond_gateway_t *self, const char *actor, char *err, size_t errlen)
{
    for (size_t i = 0; i < POND_VIEWS; i++)
        if (streq (pond_views_actors [i], actor) && *self->actors [i])
            return pond_actor_link_new_at (actor, self->actors [i], NULL, err, errlen);
    return pond_actor_link_new (self->data_dir, actor, err, errlen);
}

//  =====================================================================
//  POST /v1/events

//  The connection's producer, made on first use (the broker's endpoints
//  are read then, so a restarted broker on other ports is found again)
static pond_client_t *
s_client (pond_gateway_t *self, connection_t *state)
{
    if (state && !state->client) {
        pond_endpoints_t eps;
        if (pond_gateway_endpoints (self, &eps) == 0)
            state->client = pond_client_new (eps.ingest);
    }
    return state ? state->client : NULL;
}

//  The events of a body, validated: NULL with the status and reason in
//  err if any is invalid (then nothing is sent). Ids are the client's:
//  required, and ts too unless the id is a UUIDv7 (its milliseconds are
//  the event time), so that a resend is the same event.
static pond_event_t **
s_events_parse (cJSON *root, size_t *count_p, char *err, size_t errlen)
{
    bool many = cJSON_IsArray (root);
    size_t count = many ? (size_t) cJSON_GetArraySize (root) : 1;
    if (!many && !cJSON_IsObject (root)) {
        snprintf (err, errlen, "the body must be an event (a JSON object) or an array of them");
        return NULL;
    }
    if (count == 0 || count > POND_GATEWAY_MAX_EVENTS) {
        snprintf (err, errlen, "an array holds 1 to %d events", POND_GATEWAY_MAX_EVENTS);
        return NULL;
    }
    pond_event_t **events = calloc (count, sizeof *events);
    if (!events) {
        snprintf (err, errlen, "out of memory");
        return NULL;
    }
    size_t index = 0;
    cJSON *item = many ? root->child : root;
    for (; index < count && item; index++, item = item->next) {
        char why [POND_ERR_SIZE] = "";
        const cJSON *id = cJSON_GetObjectItemCaseSensitive (item, "id");
        uint8_t bytes [POND_ID_SIZE];
        if (!cJSON_IsObject (item))
            snprintf (why, sizeof why, "not a JSON object");
        else if (!cJSON_IsString (id) || pond_uuid_parse (id->valuestring, bytes))
            snprintf (why, sizeof why,
                      "'id' must be a UUID made by the client (a resend with the same id "
                      "is harmless)");
        else if (!cJSON_GetObjectItemCaseSensitive (item, "ts")) {
            if ((bytes [6] >> 4) != 7)
                snprintf (why, sizeof why,
                          "'ts' is required unless 'id' is a UUIDv7 (a resend must be the "
                          "same event)");
            else {
                uint64_t ms = 0;
                for (int i = 0; i < 6; i++)
                    ms = ms << 8 | bytes [i];
                cJSON_AddNumberToObject (item, "ts", (double) (ms * 1000));
            }
        }
        if (!*why)
            events [index] = pond_event_from_json (item, why, sizeof why);
        if (!events [index]) {
            if (many)
                snprintf (err, errlen, "event %zu: %s", index, why);
            else
                snprintf (err, errlen, "%s", why);
            for (size_t i = 0; i < count; i++)
                pond_event_destroy (&events [i]);
            free (events);
            return NULL;
        }
    }
    *count_p = count;
    return events;
}

//  Publish count events, filling results [count]. Each gets exactly one
//  result: an ACK or the reason it was not stored.
static void
s_events_publish (pond_gateway_t *self, connection_t *state, pond_event_t **events, size_t count,
                  pond_publish_result_t *results)
{
    for (size_t i = 0; i < count; i++) {
        memset (&results [i], 0, sizeof results [i]);
        memcpy (results [i].id, pond_event_id (events [i]), POND_ID_SIZE);
        results [i].code = POND_CODE_TIMEOUT;
        snprintf (results [i].reason, sizeof results [i].reason, "the broker is not reachable");
    }
    pond_client_t *client = s_client (self, state);
    pond_publisher_t *publisher = client ? pond_publisher_new (client) : NULL;
    if (!publisher)
        return;
    pond_client_set_timeout (client, self->config.wait_ms, 1);
    pond_publisher_set_timeout (publisher, self->config.wait_ms, 2);
    if (count > 1)
        pond_publisher_set_batch (publisher, (int) count, POND_BATCH_BYTES_MAX);
    bool lost = false;
    for (size_t i = 0; i < count && !lost; i++)
        if (pond_publisher_push_event (publisher, events [i], i)) {
            results [i].code = pond_publisher_code (publisher);
            snprintf (results [i].reason, sizeof results [i].reason, "%s",
                      pond_publisher_reason (publisher));
            //  The broker is away: the others would wait as long for nothing
            lost = results [i].code == POND_CODE_TIMEOUT;
        }
    pond_publish_result_t result;
    while (pond_publisher_held (publisher) > 0
           && pond_publisher_next (publisher, self->config.wait_ms * 3, &result) == 1)
        if (result.tag < count)
            results [result.tag] = result;
    bool timed_out = lost || pond_publisher_held (publisher) > 0;
    for (size_t i = 0; i < count; i++)
        timed_out |= results [i].code == POND_CODE_TIMEOUT;
    pond_publisher_destroy (&publisher);
    if (timed_out)    //  Late replies and a stale connection go with it
        pond_client_destroy (&state->client);
}

//  One result as JSON; its HTTP status in *status_p
static cJSON *
s_result_json (pond_gateway_t *self, const pond_publish_result_t *result, unsigned *status_p,
               unsigned *retry_after_p)
{
    cJSON *item = cJSON_CreateObject ();
    char id [POND_UUID_STR_SIZE];
    pond_uuid_format (result->id, id);
    cJSON_AddStringToObject (item, "id", id);
    if (result->code == POND_CODE_OK) {
        *status_p = result->dup ? 200 : 201;
        *retry_after_p = 0;
        cJSON_AddNumberToObject (item, "status", *status_p);
        cJSON_AddNumberToObject (item, "seq", (double) result->seq);
        cJSON_AddBoolToObject (item, "dup", result->dup);
        if (result->dup)
            self->events_dup++;
        else
            self->events_stored++;
    }
    else {
        *status_p = s_http_status (result->code, result->retry_ms, retry_after_p);
        cJSON_AddNumberToObject (item, "status", *status_p);
        cJSON_AddNumberToObject (item, "code", *status_p);
        cJSON_AddStringToObject (item, "error", *result->reason ? result->reason : "refused");
        self->events_refused++;
    }
    return item;
}

static enum MHD_Result
s_post_events (pond_gateway_t *self, struct MHD_Connection *connection, const char *rest,
               request_t *request)
{
    (void) rest;
    if (request->too_large)
        return s_reply_error (self, connection, 413, 0, "the body is over %zu bytes",
                              self->config.max_body);
    const char *end = NULL;
    cJSON *root = request->body
                    ? cJSON_ParseWithLengthOpts (request->body, request->size + 1, &end, true)
                    : NULL;
    if (!root) {
        size_t offset = end && request->body ? (size_t) (end - request->body) : 0;
        return s_reply_error (self, connection, 400, 0, "malformed JSON (at byte %zu)", offset);
    }
    char err [POND_ERR_SIZE + 64];
    size_t count = 0;
    pond_event_t **events = s_events_parse (root, &count, err, sizeof err);
    bool many = cJSON_IsArray (root);
    cJSON_Delete (root);
    if (!events)
        return s_reply_error (self, connection, 400, 0, "invalid event: %s", err);
    pond_publish_result_t *results = calloc (count, sizeof *results);
    if (!results) {
        for (size_t i = 0; i < count; i++)
            pond_event_destroy (&events [i]);
        free (events);
        return s_reply_error (self, connection, 500, 0, "out of memory");
    }
    s_events_publish (self, s_connection_state (connection), events, count, results);
    //  One event: its result. Many: every result, and the status of the
    //  first failure (201 if all were stored, 200 if all were resends)
    unsigned status = 0, retry_after = 0;
    cJSON *reply = NULL;
    if (!many)
        reply = s_result_json (self, &results [0], &status, &retry_after);
    else {
        reply = cJSON_CreateObject ();
        cJSON *list = cJSON_AddArrayToObject (reply, "results");
        bool failed = false, fresh = false;
        for (size_t i = 0; i < count; i++) {
            unsigned one, one_retry;
            cJSON_AddItemToArray (list, s_result_json (self, &results [i], &one, &one_retry));
            if (one >= 300 && !failed) {
                failed = true;
                status = one;
                retry_after = one_retry;
            }
            fresh |= one == 201;
        }
        if (!failed)
            status = fresh ? 201 : 200;
    }
    for (size_t i = 0; i < count; i++)
        pond_event_destroy (&events [i]);
    free (events);
    free (results);
    return s_reply_json (self, connection, status, reply, retry_after);
}

//  =====================================================================
//  GET /v1/views/VIEW/ENTITY?after=SEQ and GET /v1/alexa/ENTITY?q=TEXT

//  Ask actor about entity (with text, after); replies with its answer,
//  the answer's "answer" text when as_text, or the reason it has none
static enum MHD_Result
s_query (pond_gateway_t *self, struct MHD_Connection *connection, const char *actor,
         const char *entity, const char *text, bool as_text)
{
    if (!*entity || strlen (entity) > POND_ENTITY_MAX || strchr (entity, '/'))
        return s_reply_error (self, connection, 400, 0, "the entity must be 1 to %d bytes, no '/'",
                              POND_ENTITY_MAX);
    uint64_t after = 0;
    const char *after_text = MHD_lookup_connection_value (connection, MHD_GET_ARGUMENT_KIND,
                                                          "after");
    if (after_text) {
        char *end = NULL;
        errno = 0;
        unsigned long long value = strtoull (after_text, &end, 10);
        if (!*after_text || *end || errno || *after_text == '-')
            return s_reply_error (self, connection, 400, 0,
                                  "after takes a seq (a whole number), not '%s'", after_text);
        after = value;
    }
    //  The connection's link to the actor, kept for its next requests
    //  while the actor answers
    connection_t *state = s_connection_state (connection);
    size_t slot = 0;
    while (slot < POND_VIEWS && !streq (pond_views_actors [slot], actor))
        slot++;
    pond_actor_link_t **kept = state && slot < POND_VIEWS ? &state->links [slot] : NULL;
    char err [512];
    pond_actor_link_t *link = kept && *kept ? *kept : s_actor_link (self, actor, err, sizeof err);
    if (!link)
        return s_reply_error (self, connection, 503, 1, "%s", err);
    if (kept)
        *kept = NULL;
    char *result = pond_actor_link_query_after (link, entity, text, after, self->config.wait_ms);
    int code = result ? 0 : pond_actor_link_code (link);
    enum MHD_Result rc;
    if (!result) {
        unsigned retry_after;
        unsigned status = s_http_status (pond_actor_link_code (link), 0, &retry_after);
        rc = s_reply_error (self, connection, status, retry_after, "%s: %s", actor,
                            pond_actor_link_reason (link));
    }
    else if (as_text) {
        cJSON *tree = cJSON_Parse (result);
        const char *answer = cJSON_GetStringValue (cJSON_GetObjectItem (tree, "answer"));
        if (answer) {
            char *line = zsys_sprintf ("%s\n", answer);
            rc = s_reply (self, connection, 200, TEXT_TYPE, line ? line : "", 0, NULL);
            zstr_free (&line);
        }
        else
            rc = s_reply_error (self, connection, 502, 0, "%s's answer has no text", actor);
        cJSON_Delete (tree);
    }
    else {
        //  The actor's text as it is (no second rendering of its numbers)
        char *line = zsys_sprintf ("%s\n", result);
        rc = s_reply (self, connection, 200, JSON_TYPE, line ? line : result, 0, NULL);
        zstr_free (&line);
    }
    free (result);
    //  An answer, or a refusal of the request: the link works. No answer
    //  (the actor away, restarted elsewhere): made again next time
    if (kept && (code == 0 || code == POND_CODE_BAD_REQUEST || code == POND_CODE_NOT_FOUND))
        *kept = link;
    else
        pond_actor_link_destroy (&link);
    return rc;
}

static enum MHD_Result
s_get_view (pond_gateway_t *self, struct MHD_Connection *connection, const char *path,
            request_t *request)
{
    (void) request;
    //  path: VIEW/ENTITY
    const char *slash = strchr (path, '/');
    char view [64];
    if (!slash || (size_t) (slash - path) >= sizeof view)
        return s_reply_error (self, connection, 404, 0, "use /v1/views/VIEW/ENTITY");
    memcpy (view, path, (size_t) (slash - path));
    view [slash - path] = 0;
    const char *actor = pond_views_actor (view);
    if (!actor)
        return s_reply_error (self, connection, 404, 0,
                              "no view '%s' (quacks, badges, alexa, mobile)", view);
    return s_query (self, connection, actor, slash + 1, NULL, false);
}

static enum MHD_Result
s_get_alexa (pond_gateway_t *self, struct MHD_Connection *connection, const char *entity,
             request_t *request)
{
    (void) request;
    const char *q = MHD_lookup_connection_value (connection, MHD_GET_ARGUMENT_KIND, "q");
    if (!q || !*q || strlen (q) >= POND_QUERY_TEXT_MAX)
        return s_reply_error (self, connection, 400, 0,
                              "ask with ?q=QUESTION (1 to %d bytes), like ?q=what+do+I+have",
                              POND_QUERY_TEXT_MAX - 1);
    return s_query (self, connection, "alexa-view", entity, q, true);
}

//  =====================================================================
//  GET /metrics: the counters of pond stats, each actor's position and
//  lag, and the gateway's own, in the Prometheus text format

//  A metric name from parts: [a-zA-Z0-9_], anything else becomes '_'
static void
s_metric_name (char *name, size_t size, const char *prefix, const char *key)
{
    snprintf (name, size, "%s_%s", prefix, key);
    for (char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')))
            *c = '_';
}

//  A label value, escaped (\\, \", \n)
static void
s_label_value (FILE *out, const char *value)
{
    for (; *value; value++)
        if (*value == '\\' || *value == '"')
            fprintf (out, "\\%c", *value);
        else if (*value == '\n')
            fputs ("\\n", out);
        else
            fputc (*value, out);
}

//  The numbers of a STATS object under prefix: numbers and booleans as
//  samples, objects of numbers (per-name counts) as one metric with a
//  "name" label, deeper objects by joining the keys
static void
s_metrics_tree (FILE *out, const char *prefix, const cJSON *object)
{
    const cJSON *item;
    cJSON_ArrayForEach (item, object) {
        char name [256];
        s_metric_name (name, sizeof name, prefix, item->string);
        if (cJSON_IsNumber (item) || cJSON_IsBool (item))
            fprintf (out, "# TYPE %s untyped\n%s %.17g\n", name, name,
                     cJSON_IsBool (item) ? (cJSON_IsTrue (item) ? 1.0 : 0.0)
                                         : cJSON_GetNumberValue (item));
        else if (cJSON_IsObject (item)) {
            bool flat = item->child != NULL;
            const cJSON *child;
            cJSON_ArrayForEach (child, item)
                flat &= cJSON_IsNumber (child);
            if (!flat) {
                s_metrics_tree (out, name, item);
                continue;
            }
            fprintf (out, "# TYPE %s untyped\n", name);
            cJSON_ArrayForEach (child, item) {
                fprintf (out, "%s{name=\"", name);
                s_label_value (out, child->string);
                fprintf (out, "\"} %.17g\n", cJSON_GetNumberValue (child));
            }
        }
    }
}

static enum MHD_Result
s_get_metrics (pond_gateway_t *self, struct MHD_Connection *connection, const char *rest,
               request_t *request)
{
    (void) rest;
    (void) request;
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    if (!out)
        return s_reply_error (self, connection, 500, 0, "out of memory");
    pond_endpoints_t eps;
    char err [POND_ERR_SIZE] = "no endpoints";
    char *json = pond_gateway_endpoints (self, &eps) == 0
                   ? pond_client_stats (eps.control, self->config.wait_ms, err, sizeof err)
                   : NULL;
    if (!json && strncmp (err, "403 ", 4) == 0) {    //  Keys mode: STATS is the admin's
        fclose (out);
        free (text);
        return s_reply_error (self, connection, 403, 0, "the metrics are for admin keys: %s",
                              err + 4);
    }
    cJSON *stats = json ? cJSON_Parse (json) : NULL;
    free (json);
    fprintf (out,
             "# HELP pond_up 1 if the broker answered STATS\n# TYPE pond_up gauge\n"
             "pond_up %d\n",
             stats ? 1 : 0);
    const cJSON *part;
    cJSON_ArrayForEach (part, stats)
        if (cJSON_IsObject (part)) {
            char prefix [64];
            s_metric_name (prefix, sizeof prefix, "pond", part->string);
            s_metrics_tree (out, prefix, part);
        }
    const cJSON *head = cJSON_GetObjectItem (cJSON_GetObjectItem (stats, "store"), "head");
    fprintf (out, "# HELP pond_actor_up 1 if the actor answered STATUS\n"
                  "# TYPE pond_actor_up gauge\n"
                  "# HELP pond_actor_position seq of the last event the actor applied\n"
                  "# TYPE pond_actor_position gauge\n"
                  "# HELP pond_actor_lag events stored and not yet applied by the actor\n"
                  "# TYPE pond_actor_lag gauge\n"
                  "# HELP pond_actor_live 1 if the actor is live, 0 while catching up\n"
                  "# TYPE pond_actor_live gauge\n");
    for (size_t i = 0; i < POND_VIEWS; i++) {
        const char *actor = pond_views_actors [i];
        pond_actor_link_t *link = s_actor_link (self, actor, err, sizeof err);
        char *status_json = link ? pond_actor_link_status (link, self->config.wait_ms) : NULL;
        cJSON *status = status_json ? cJSON_Parse (status_json) : NULL;
        const cJSON *position = cJSON_GetObjectItem (status, "position");
        fprintf (out, "pond_actor_up{actor=\"%s\"} %d\n", actor, cJSON_IsNumber (position));
        if (cJSON_IsNumber (position)) {
            double at = cJSON_GetNumberValue (position);
            fprintf (out, "pond_actor_position{actor=\"%s\"} %.17g\n", actor, at);
            if (cJSON_IsNumber (head))
                fprintf (out, "pond_actor_lag{actor=\"%s\"} %.17g\n", actor,
                         cJSON_GetNumberValue (head) > at ? cJSON_GetNumberValue (head) - at : 0);
            fprintf (out, "pond_actor_live{actor=\"%s\"} %d\n", actor,
                     cJSON_IsTrue (cJSON_GetObjectItem (status, "live")));
        }
        cJSON_Delete (status);
        free (status_json);
        pond_actor_link_destroy (&link);
    }
    cJSON_Delete (stats);
    fprintf (out,
             "# TYPE pond_gateway_requests_total counter\npond_gateway_requests_total %llu\n"
             "# TYPE pond_gateway_events_total counter\n"
             "pond_gateway_events_total{result=\"stored\"} %llu\n"
             "pond_gateway_events_total{result=\"dup\"} %llu\n"
             "pond_gateway_events_total{result=\"refused\"} %llu\n"
             "# TYPE pond_gateway_connections gauge\npond_gateway_connections %u\n"
             "# TYPE pond_gateway_connections_refused_total counter\n"
             "pond_gateway_connections_refused_total %llu\n"
             "# HELP pond_gateway_streams NDJSON and SSE streams open now\n"
             "# TYPE pond_gateway_streams gauge\npond_gateway_streams %u\n"
             "# TYPE pond_gateway_streams_refused_total counter\n"
             "pond_gateway_streams_refused_total %llu\n"
             "# HELP pond_gateway_streams_cut_total SSE streams cut (a slow client, a gap)\n"
             "# TYPE pond_gateway_streams_cut_total counter\n"
             "pond_gateway_streams_cut_total %llu\n"
             "# TYPE pond_gateway_stream_events_total counter\n"
             "pond_gateway_stream_events_total %llu\n"
             "# HELP pond_gateway_stream_bytes bytes of events the streams hold now\n"
             "# TYPE pond_gateway_stream_bytes gauge\npond_gateway_stream_bytes %lld\n"
             "# HELP pond_gateway_stream_bytes_peak most bytes one stream held at once\n"
             "# TYPE pond_gateway_stream_bytes_peak gauge\npond_gateway_stream_bytes_peak %lld\n"
             "# TYPE pond_gateway_replies_total counter\n",
             (unsigned long long) self->requests, (unsigned long long) self->events_stored,
             (unsigned long long) self->events_dup, (unsigned long long) self->events_refused,
             (unsigned) self->open, (unsigned long long) self->connections_refused,
             (unsigned) self->streams, (unsigned long long) self->streams_refused,
             (unsigned long long) self->streams_cut, (unsigned long long) self->stream_events,
             (long long) self->stream_bytes, (long long) self->stream_bytes_peak);
    for (int i = 1; i < 6; i++)
        fprintf (out, "pond_gateway_replies_total{class=\"%dxx\"} %llu\n", i,
                 (unsigned long long) self->replies [i]);
    fclose (out);
    enum MHD_Result rc = s_reply (self, connection, 200, "text/plain; version=0.0.4", text, 0,
                                  NULL);
    free (text);
    return rc;
}

//  =====================================================================
//  GET /: the status page; GET /v1/status?latest=N: what it shows, as JSON
//  (pond_gateway_status)

static enum MHD_Result
s_get_status (pond_gateway_t *self, struct MHD_Connection *connection, const char *rest,
              request_t *request)
{
    (void) rest;
    (void) request;
    const char *latest_text = MHD_lookup_connection_value (connection, MHD_GET_ARGUMENT_KIND,
                                                           "latest");
    uint64_t latest = POND_GATEWAY_STATUS_LATEST;
    if (latest_text && pond_number_parse (latest_text, 0, POND_GATEWAY_STATUS_LATEST_MAX, &latest))
        return s_reply_error (self, connection, 400, 0,
                              "latest takes a number of events, 0 to %d, not '%.64s'",
                              POND_GATEWAY_STATUS_LATEST_MAX, latest_text);
    //  A part that does not answer must not hold the page up for long
    int wait_ms = self->config.wait_ms < 1000 ? self->config.wait_ms : 1000;
    unsigned status = 500;
    char reason [POND_ERR_SIZE + 64];
    pond_endpoints_t eps;
    if (pond_gateway_endpoints (self, &eps))
        return s_reply_error (self, connection, 500, 0, "the data directory's path is too long");
    const char *actors [POND_VIEWS];
    for (size_t i = 0; i < POND_VIEWS; i++)
        actors [i] = self->actors [i];
    char *json = pond_gateway_status_json (self->data_dir, eps.control, actors, wait_ms,
                                           (size_t) latest, &status, reason, sizeof reason);
    if (!json)
        return s_reply_error (self, connection, status, 0, "%s", reason);
    char *line = zsys_sprintf ("%s\n", json);
    free (json);
    enum MHD_Result rc = s_reply (self, connection, 200, JSON_TYPE, line ? line : "{}\n", 0, NULL);
    zstr_free (&line);
    return rc;
}

static enum MHD_Result
s_get_page (pond_gateway_t *self, struct MHD_Connection *connection, const char *rest,
            request_t *request)
{
    (void) rest;
    (void) request;
    return s_reply (self, connection, 200, "text/html; charset=utf-8", pond_gateway_status_page (),
                    0, NULL);
}

//  =====================================================================
//  The server

//  The routes: a request goes to the first whose method and path match.
//  A path ending in '/' takes what follows as the handler's rest; HEAD is
//  served as GET. A path with no route for the method gets 405 with the
//  methods it has in Allow; no route at all, 404 listing them.
static const struct {
    const char *method;
    const char *path;
    pond_gateway_handler_fn handler;
    const char *usage;    //  for the 404 text
} s_routes [] = {
    { MHD_HTTP_METHOD_POST, "/v1/events", s_post_events, "POST /v1/events" },
    { MHD_HTTP_METHOD_GET, "/v1/events", pond_gateway_get_events,
      "GET /v1/events?names=A,B&from=&to= (or entity=, from_seq=)" },
    { MHD_HTTP_METHOD_GET, "/v1/stream", pond_gateway_get_stream, "GET /v1/stream?names=A,B" },
    { MHD_HTTP_METHOD_GET, "/v1/views/", s_get_view, "GET /v1/views/VIEW/ENTITY" },
    { MHD_HTTP_METHOD_GET, "/v1/alexa/", s_get_alexa, "GET /v1/alexa/ENTITY?q=..." },
    { MHD_HTTP_METHOD_GET, "/metrics", s_get_metrics, "GET /metrics" },
    { MHD_HTTP_METHOD_GET, "/v1/status", s_get_status, "GET /v1/status" },
    { MHD_HTTP_METHOD_GET, "", s_get_page, "GET / (the status page)" },
};
#define ROUTES (sizeof s_routes / sizeof s_routes [0])

//  What follows path in url if the route's path matches, else NULL
static const char *
s_route_match (const char *path, const char *url)
{
    size_t length = strlen (path);
    if (length == 0)    //  The root: "/" alone
        return streq (url, "/") ? url + 1 : NULL;
    if (path [length - 1] == '/')
        return strncmp (url, path, length) == 0 ? url + length : NULL;
    return streq (url, path) ? url + length : NULL;
}

//  Route a request whose body is complete
static enum MHD_Result
s_route (pond_gateway_t *self, struct MHD_Connection *connection, const char *url,
         const char *method, request_t *request)
{
    self->requests++;
    pond_gateway_commands_reply_t answer;    //  /v1/commands: pond_gateway_commands
    pond_endpoints_t eps;
    const char *control = pond_gateway_endpoints (self, &eps) == 0 ? eps.control : NULL;
    if (pond_gateway_commands_route (control, self->config.wait_ms, url, method, request->body,
                                     request->size, request->too_large, &answer)) {
        enum MHD_Result rc = s_reply (self, connection, answer.status, JSON_TYPE,
                                      answer.body ? answer.body : "{}\n", answer.retry_after_s,
                                      answer.allow);
        zstr_free (&answer.body);
        return rc;
    }
    const char *as = streq (method, MHD_HTTP_METHOD_HEAD) ? MHD_HTTP_METHOD_GET : method;
    char allow [64] = "";
    for (size_t i = 0; i < ROUTES; i++) {
        const char *rest = s_route_match (s_routes [i].path, url);
        if (!rest)
            continue;
        if (streq (as, s_routes [i].method)) {
            //  Only POST takes a body
            if (request->too_large && !streq (as, MHD_HTTP_METHOD_POST))
                return s_reply_error (self, connection, 413, 0, "the body is over %zu bytes",
                                      self->config.max_body);
            return s_routes [i].handler (self, connection, rest, request);
        }
        if (!strstr (allow, s_routes [i].method)) {
            size_t used = strlen (allow);
            snprintf (allow + used, sizeof allow - used, "%s%s%s", used ? ", " : "",
                      s_routes [i].method,
                      streq (s_routes [i].method, MHD_HTTP_METHOD_GET) ? ", HEAD" : "");
        }
    }
    if (*allow) {
        char body [160];
        snprintf (body, sizeof body, "{\"code\":405,\"error\":\"this path takes %s\"}\n", allow);
        return s_reply (self, connection, 405, JSON_TYPE, body, 0, allow);
    }
    char paths [512] = "POST /v1/commands, GET /v1/commands/ID";
    for (size_t i = 0; i < ROUTES; i++) {
        size_t used = strlen (paths);
        snprintf (paths + used, sizeof paths - used, "%s%s", used ? ", " : "", s_routes [i].usage);
    }
    return s_reply_error (self, connection, 404, 0, "no such path: %.200s (%s)", url, paths);
}

//  Serve a request whose body is complete as the key of its bearer token
//  in keys mode (pond_gateway_auth), the gateway itself in local mode: 401
//  without a valid token. The status page itself (GET /) is public. The
//  sockets a connection keeps were made as the key of its last request:
//  another key's request drops them first.
static enum MHD_Result
s_serve (pond_gateway_t *self, struct MHD_Connection *connection, const char *url,
         const char *method, request_t *request)
{
    if (streq (url, "/"))
        return s_route (self, connection, url, method, request);
    const char *authorization = MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                                             MHD_HTTP_HEADER_AUTHORIZATION);
    unsigned status = 401;
    char reason [512];
    pond_gateway_session_t *session = pond_gateway_auth_begin (self->auth, authorization, &status,
                                                               reason, sizeof reason);
    if (!session) {
        self->requests++;
        const char *challenge = authorization ? "Bearer realm=\"pond\", error=\"invalid_token\""
                                              : "Bearer realm=\"pond\"";
        return s_reply_reason (self, connection, status, 0,
                               status == 401 ? MHD_HTTP_HEADER_WWW_AUTHENTICATE : NULL, challenge,
                               reason);
    }
    //  Live events come from the gateway's own subscription, which the
    //  mesh does not check per key: the rule of the actors' query sockets
    const char *entity = MHD_lookup_connection_value (connection, MHD_GET_ARGUMENT_KIND, "entity");
    if (streq (url, "/v1/stream")
        && !pond_gateway_auth_may_see (self->auth, entity, reason, sizeof reason)) {
        enum MHD_Result rc = s_reply_error (self, connection, 403, 0, "%s", reason);
        pond_gateway_auth_end (self->auth, &session);
        return rc;
    }
    connection_t *state = s_connection_state (connection);
    const char *key = pond_gateway_auth_key (self->auth);
    if (state && !streq (state->key, key ? key : "")) {
        s_connection_drop (state);
        snprintf (state->key, sizeof state->key, "%s", key ? key : "");
    }
    enum MHD_Result rc = s_route (self, connection, url, method, request);
    pond_gateway_auth_end (self->auth, &session);
    return rc;
}

static enum MHD_Result
s_access (void *cls, struct MHD_Connection *connection, const char *url, const char *method,
          const char *version, const char *upload_data, size_t *upload_data_size, void **state)
{
    (void) version;
    pond_gateway_t *self = (pond_gateway_t *) cls;
    request_t *request = (request_t *) *state;
    if (!request) {
        //  Headers only: a body announced over the limit is refused now,
        //  before it is read
        request = calloc (1, sizeof *request);
        if (!request)
            return MHD_NO;
        *state = request;
        const char *length = MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                                          MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (length && strtoull (length, NULL, 10) > self->config.max_body) {
            request->too_large = true;
            self->requests++;
            return s_reply_error (self, connection, 413, 0, "the body is over %zu bytes",
                                  self->config.max_body);
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t size = *upload_data_size;
        *upload_data_size = 0;
        if (request->too_large || request->size + size > self->config.max_body) {
            request->too_large = true;    //  Read and dropped
            free (request->body);
            request->body = NULL;
            request->size = 0;
            return MHD_YES;
        }
        char *body = realloc (request->body, request->size + size + 1);
        if (!body)
            return MHD_NO;
        memcpy (body + request->size, upload_data, size);
        request->body = body;
        request->size += size;
        request->body [request->size] = 0;
        return MHD_YES;
    }
    return s_serve (self, connection, url, method, request);
}

static void
s_completed (void *cls, struct MHD_Connection *connection, void **state,
             enum MHD_RequestTerminationCode code)
{
    (void) cls;
    (void) connection;
    (void) code;
    request_t *request = (request_t *) *state;
    if (request) {
        free (request->body);
        free (request);
        *state = NULL;
    }
}

//  A new connection over max_connections is closed at once, before it is
//  read (libmicrohttpd's own limit, set higher, would leave it waiting in
//  the listen backlog instead)
static enum MHD_Result
s_accept (void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    (void) addr;
    (void) addrlen;
    pond_gateway_t *self = (pond_gateway_t *) cls;
    if (self->open < self->config.max_connections)
        return MHD_YES;
    if (self->config.verbose || self->connections_refused == 0)
        zsys_warning ("pond-gateway: %u connections open: closing a new one (--max-connections)",
                      self->open);
    self->connections_refused++;
    return MHD_NO;
}

//  A connection's state is made when it opens and freed when it closes
//  (its thread has ended by then, or is the caller)
static void
s_connection (void *cls, struct MHD_Connection *connection, void **socket_context,
              enum MHD_ConnectionNotificationCode code)
{
    (void) connection;
    pond_gateway_t *self = (pond_gateway_t *) cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        self->open++;
        *socket_context = calloc (1, sizeof (connection_t));
    }
    else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        unsigned open = atomic_load (&self->open);
        while (open > 0 && !atomic_compare_exchange_weak (&self->open, &open, open - 1))
            ;
        connection_t *state = (connection_t *) *socket_context;
        if (state) {
            s_connection_drop (state);
            free (state);
            *socket_context = NULL;
        }
    }
}

static void
s_log_error (void *cls, const char *format, va_list args)
{
    (void) cls;
    char line [512];
    vsnprintf (line, sizeof line, format, args);
    size_t length = strlen (line);
    while (length && line [length - 1] == '\n')
        line [--length] = 0;
    zsys_warning ("pond-gateway: libmicrohttpd: %s", line);
}

void
pond_gateway_config_defaults (pond_gateway_config_t *config, const char *data_dir)
{
    memset (config, 0, sizeof *config);
    config->data_dir = data_dir;
    config->listen = "127.0.0.1:0";
    config->max_body = POND_GATEWAY_MAX_BODY;
    config->max_connections = POND_GATEWAY_MAX_CONNECTIONS;
    config->timeout_s = POND_GATEWAY_TIMEOUT_S;
    config->wait_ms = POND_GATEWAY_WAIT_MS;
    config->max_streams = POND_GATEWAY_MAX_STREAMS;
    config->max_streams_per_ip = POND_GATEWAY_MAX_STREAMS_PER_IP;
    config->stream_queue = POND_GATEWAY_STREAM_QUEUE;
    config->heartbeat_s = POND_GATEWAY_HEARTBEAT_S;
}

//  Parse ADDR:PORT into addr. Returns 0, or -1.
static int
s_parse_listen (const char *listen, struct sockaddr_in *addr)
{
    const char *colon = listen ? strrchr (listen, ':') : NULL;
    char host [64];
    if (!colon || (size_t) (colon - listen) >= sizeof host)
        return -1;
    memcpy (host, listen, (size_t) (colon - listen));
    host [colon - listen] = 0;
    char *end = NULL;
    errno = 0;
    unsigned long port = strtoul (colon + 1, &end, 10);
    if (!colon [1] || *end || errno || port > 65535)
        return -1;
    memset (addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_port = htons ((uint16_t) port);
    return inet_pton (AF_INET, *host ? host : "127.0.0.1", &addr->sin_addr) == 1 ? 0 : -1;
}

pond_gateway_t *
pond_gateway_new (const pond_gateway_config_t *config)
{
    struct sockaddr_in addr;
    if (s_parse_listen (config->listen, &addr)) {
        zsys_error ("pond-gateway: --listen '%s' is not ADDR:PORT (IPv4, like 127.0.0.1:8080)",
                    config->listen ? config->listen : "");
        return NULL;
    }
    pond_gateway_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->config = *config;
    if (self->config.max_streams == 0)
        self->config.max_streams = 1;
    //  One slot per stream at most: as many addresses as streams
    self->stream_slots = calloc (self->config.max_streams, sizeof *self->stream_slots);
    pthread_mutex_init (&self->stream_slots_mutex, NULL);
    if (!self->stream_slots) {
        pond_gateway_destroy (&self);
        return NULL;
    }
    self->data_dir = strdup (config->data_dir ? config->data_dir : "./pond-data");
    self->auth = self->data_dir ? pond_gateway_auth_new (self->data_dir, config->keys_dir,
                                                         POND_GATEWAY_AUTH_SESSIONS)
                                : NULL;
    const char *given [POND_VIEWS + 3] = { config->ingest, config->pub, config->control };
    char *slots [POND_VIEWS + 3] = { self->ingest, self->pub, self->control };
    for (size_t i = 0; i < POND_VIEWS; i++) {
        given [i + 3] = config->actors [i];
        slots [i + 3] = self->actors [i];
    }
    for (size_t i = 0; i < POND_VIEWS + 3; i++)
        if (given [i] && strlen (given [i]) >= POND_ENDPOINT_MAX) {
            zsys_error ("pond-gateway: endpoint '%.64s...' is too long", given [i]);
            pond_gateway_destroy (&self);
            return NULL;
        }
        else if (given [i])
            strcpy (slots [i], given [i]);
    unsigned per_ip = config->max_per_ip ? config->max_per_ip : config->max_connections;
    //  The server's threads (the listener, one per connection, the hub)
    //  inherit this thread's mask: the main thread keeps the signals
    sigset_t saved;
    pond_thread_block_signals (&saved);
    self->hub = pond_gateway_hub_new (self);
    if (self->hub)
        self->daemon = MHD_start_daemon (
            MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL
                | MHD_USE_ERROR_LOG,
            0, s_accept, self, s_access, self, MHD_OPTION_EXTERNAL_LOGGER, s_log_error, self,
            MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &addr, MHD_OPTION_CONNECTION_LIMIT,
            config->max_connections + 16, MHD_OPTION_NOTIFY_CONNECTION, s_connection, self,
            MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip, MHD_OPTION_CONNECTION_TIMEOUT,
            config->timeout_s, MHD_OPTION_NOTIFY_COMPLETED, s_completed, self,
            MHD_OPTION_THREAD_STACK_SIZE, (size_t) POND_GATEWAY_STACK, MHD_OPTION_END);
    pthread_sigmask (SIG_SETMASK, &saved, NULL);
    if (!self->daemon || !self->data_dir || !self->auth) {
        zsys_error ("pond-gateway: cannot listen on %s: %s", config->listen, strerror (errno));
        pond_gateway_destroy (&self);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info (self->daemon,
                                                            MHD_DAEMON_INFO_BIND_PORT);
    char host [INET_ADDRSTRLEN] = "127.0.0.1";
    inet_ntop (AF_INET, &addr.sin_addr, host, sizeof host);
    snprintf (self->url, sizeof self->url, "http://%s:%u", host,
              info ? (unsigned) info->port : (unsigned) ntohs (addr.sin_port));
    return self;
}

void
pond_gateway_destroy (pond_gateway_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pond_gateway_t *self = *self_p;
    //  Streams see it within half a second and end, so that
    //  MHD_stop_daemon can join their threads
    atomic_store (&self->stopping, true);
    if (self->hub)
        pond_gateway_hub_wake_all (self->hub);
    if (self->daemon)
        MHD_stop_daemon (self->daemon);    //  Joins every connection's thread
    pond_gateway_hub_destroy (&self->hub);
    pond_gateway_auth_destroy (&self->auth);
    free (self->stream_slots);
    pthread_mutex_destroy (&self->stream_slots_mutex);
    free (self->data_dir);
    free (self);
    *self_p = NULL;
}

const char *
pond_gateway_url (pond_gateway_t *self)
{
    return self->url;
}
