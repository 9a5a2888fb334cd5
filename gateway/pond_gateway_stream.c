/*  pond_gateway_stream: the streams of pond-gateway.

    GET /v1/events sends stored events as NDJSON (one event's JSON a line,
    as pond replay prints them) from one replay on the broker's control
    socket. The replay asks for credit 1: the broker sends the next chunk
    only once the gateway has taken the one before, and the gateway takes
    one only when libmicrohttpd asks for more body, that is when the HTTP
    client has read what was sent. A slow reader therefore holds at most
    two chunks (the one being written, the one granted: 1 MiB packed) and
    one event's line here, whatever the size of the replay. A client that
    goes away ends its connection, whose response frees the replay, which
    sends CANCEL.

    GET /v1/stream sends live events as Server-Sent Events: `id:` is the
    event's seq, `data:` its JSON. One thread, the hub, owns one SUB socket
    for every stream (made while streams are open, subscribed to every
    event so that it sees every seq and can tell a gap), and copies each
    event into the queue of each stream it matches. A queue is bounded in
    bytes (--stream-queue): a client that does not read as fast as events
    come is cut (its connection closed) instead, and resumes with
    Last-Event-ID. A stream that starts with Last-Event-ID is attached to
    the hub first, then replays the log after that seq; queued live events
    it has already sent by the replay are skipped by seq: no gap, no
    double. If the hub itself misses events (a seq skipped, a heartbeat
    whose head is ahead), every stream is cut so that each resumes from
    the log. A comment is sent after --heartbeat seconds without events.

    Each stream runs in its connection's thread (libmicrohttpd calls the
    content reader there and lets it block); no wait is longer than
    SLICE_MS without looking at the gateway's stopping flag.
*/
#define _GNU_SOURCE    //  POLLRDHUP
#include "pond_gateway_internal.h"
#include "pond_client.h"
#include "pond_thread.h"
#include "pond_time.h"

#include <czmq.h>
#include <errno.h>
#include <poll.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NDJSON_TYPE   "application/x-ndjson"
#define SSE_TYPE      "text/event-stream"
#define STREAM_BLOCK  16384    //  body bytes asked of a stream at once (a hint)
#define SLICE_MS      500      //  longest wait before looking at stopping
#define STALL_MS      30000    //  a replay that sends nothing for this long failed
#define HUB_POLL_MS   50       //  the hub looks for new streams this often
#define HUB_IDLE_MS   10000    //  the SUB socket is kept this long after the last stream
#define HUB_SILENT_MS 5000     //  no heartbeat for this long: a new SUB socket
#define HUB_BATCH     1024     //  messages taken at once before the pipe is looked at

//  =====================================================================
//  Query parameters

//  The values of the known parameters of a request, by index of known
typedef struct {
    const char *const *known;
    size_t count;
    const char *values [8];
    char err [256];
} args_t;

static enum MHD_Result
s_arg (void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void) kind;
    args_t *args = (args_t *) cls;
    for (size_t i = 0; i < args->count; i++)
        if (streq (key, args->known [i])) {
            if (args->values [i]) {
                snprintf (args->err, sizeof args->err, "'%s' is given twice", key);
                return MHD_NO;
            }
            args->values [i] = value ? value : "";
            return MHD_YES;
        }
    char list [128] = "";
    for (size_t i = 0; i < args->count; i++) {
        size_t used = strlen (list);
        snprintf (list + used, sizeof list - used, "%s%s", i ? ", " : "", args->known [i]);
    }
    snprintf (args->err, sizeof args->err, "unknown parameter '%.64s' (this path takes %s)", key,
              list);
    return MHD_NO;
}

//  Read the query of connection into args. Returns 0, or -1 with the
//  reason in args->err.
static int
s_args (struct MHD_Connection *connection, args_t *args, const char *const *known, size_t count)
{
    memset (args, 0, sizeof *args);
    args->known = known;
    args->count = count;
    MHD_get_connection_values (connection, MHD_GET_ARGUMENT_KIND, s_arg, args);
    return *args->err ? -1 : 0;
}

//  names=A,B,... into req (1 to POND_REPLAY_MAX_NAMES valid event names).
//  Returns 0, or -1 with the reason in err.
static int
s_parse_names (const char *text, pond_replay_req_t *req, char *err, size_t errlen)
{
    req->names_count = 0;
    const char *at = text;
    while (true) {
        size_t length = strcspn (at, ",");
        bool valid = length >= 1 && length <= POND_NAME_MAX && at [0] >= 'A' && at [0] <= 'Z';
        for (size_t i = 1; i < length && valid; i++)
            valid = (at [i] >= 'A' && at [i] <= 'Z') || (at [i] >= '0' && at [i] <= '9')
                 || at [i] == '_';
        if (!valid) {
            snprintf (err, errlen,
                      "names takes event names separated by commas, each [A-Z][A-Z0-9_]{0,63}: "
                      "'%.*s' is not one",
                      (int) (length < 80 ? length : 80), at);
            return -1;
        }
        if (req->names_count == POND_REPLAY_MAX_NAMES) {
            snprintf (err, errlen, "names takes at most %d names", POND_REPLAY_MAX_NAMES);
            return -1;
        }
        memcpy (req->names [req->names_count], at, length);
        req->names [req->names_count++][length] = 0;
        if (!at [length])
            return 0;
        at += length + 1;
    }
}

//  A whole number (no sign, no blanks) into *value. Returns 0 or -1.
static int
s_parse_uint (const char *text, uint64_t *value)
{
    if (!*text || strspn (text, "0123456789") != strlen (text))
        return -1;
    errno = 0;
    unsigned long long number = strtoull (text, NULL, 10);
    if (errno)
        return -1;
    *value = number;
    return 0;
}

static int
s_parse_entity (const char *text, char *entity, char *err, size_t errlen)
{
    if (!*text || strlen (text) > POND_ENTITY_MAX) {
        snprintf (err, errlen, "entity takes 1 to %d bytes", POND_ENTITY_MAX);
        return -1;
    }
    strcpy (entity, text);
    return 0;
}

//  The replay that GET /v1/events asks for, checked as pond replay checks
//  its options. Returns 0, or -1 with the reason in err.
static int
s_events_request (struct MHD_Connection *connection, pond_replay_req_t *req, char *err,
                  size_t errlen)
{
    static const char *const known [] = { "names",    "from",   "to",   "entity",
                                          "from_seq", "to_seq", "limit" };
    args_t args;
    if (s_args (connection, &args, known, sizeof known / sizeof known [0])) {
        snprintf (err, errlen, "%s", args.err);
        return -1;
    }
    const char *names = args.values [0], *from = args.values [1], *to = args.values [2],
               *entity = args.values [3], *from_seq = args.values [4], *to_seq = args.values [5],
               *limit = args.values [6];
    memset (req, 0, sizeof *req);
    if (names && s_parse_names (names, req, err, errlen))
        return -1;
    if (entity && s_parse_entity (entity, req->entity, err, errlen))
        return -1;
    const char *bad = NULL;
    if (from && pond_time_parse (from, &req->from_ts))
        bad = "from";
    else if (to && pond_time_parse (to, &req->to_ts))
        bad = "to";
    if (bad) {
        snprintf (err, errlen,
                  "%s takes a time (2022-01-01, 2022-01-01T10:30:00Z or microseconds), not '%.64s'",
                  bad, streq (bad, "from") ? from : to);
        return -1;
    }
    if ((from_seq && s_parse_uint (from_seq, &req->from_seq))
        || (to_seq && s_parse_uint (to_seq, &req->to_seq))) {
        snprintf (err, errlen, "from_seq and to_seq take a seq (a whole number)");
        return -1;
    }
    if (limit && (s_parse_uint (limit, &req->limit) || req->limit == 0)) {
        snprintf (err, errlen, "limit takes a number of events (1 or more), not '%.64s'", limit);
        return -1;
    }
    if (!names && !entity && !from_seq && !to_seq) {
        snprintf (err, errlen,
                  "say which events: names=A,B (with from= and to=), entity=E, or "
                  "from_seq=N (and to_seq=M)");
        return -1;
    }
    if (names && entity) {
        snprintf (err, errlen, "give names or entity, not both");
        return -1;
    }
    if ((from || to) && !names) {
        snprintf (err, errlen,
                  "from and to (event time) go with names; the log is read by "
                  "seq with from_seq and to_seq");
        return -1;
    }
    if ((from || to) && (from_seq || to_seq)) {
        snprintf (err, errlen, "give from/to (event time) or from_seq/to_seq, not both");
        return -1;
    }
    if ((from_seq || to_seq) && entity) {
        snprintf (err, errlen, "from_seq and to_seq do not go with entity");
        return -1;
    }
    if (to && req->to_ts <= req->from_ts) {
        snprintf (err, errlen, "to must be after from");
        return -1;
    }
    if (req->to_seq && req->to_seq <= req->from_seq) {
        snprintf (err, errlen, "to_seq must be after from_seq");
        return -1;
    }
    if (names && (from_seq || to_seq))
        strcpy (req->order, "seq");    //  The names' events in seq order
    return 0;
}

//  =====================================================================
//  Stream slots: --max-streams in all, --max-streams-per-ip from one
//  address, so that one client cannot hold every stream others need

//  Take a slot for connection's client (its address into *address_p).
//  Returns 0, or -1 after answering 503 with the reason.
static int
s_slot_take (pond_gateway_t *self, struct MHD_Connection *connection, uint32_t *address_p,
             enum MHD_Result *rc_p)
{
    const union MHD_ConnectionInfo *info = MHD_get_connection_info (
        connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr_in *from = info ? (const struct sockaddr_in *) info->client_addr : NULL;
    uint32_t address = from && from->sin_family == AF_INET ? from->sin_addr.s_addr : 0;
    *address_p = address;
    unsigned max = self->config.max_streams;
    unsigned per_ip = self->config.max_streams_per_ip && self->config.max_streams_per_ip < max
                        ? self->config.max_streams_per_ip
                        : max;
    pthread_mutex_lock (&self->stream_slots_mutex);
    size_t mine = max, unused = max;
    for (size_t i = 0; i < max; i++) {
        if (self->stream_slots [i].count && self->stream_slots [i].address == address)
            mine = i;
        else if (!self->stream_slots [i].count && unused == max)
            unused = i;
    }
    bool all_taken = atomic_load (&self->streams) >= max;
    bool mine_taken = mine < max && self->stream_slots [mine].count >= per_ip;
    if (!all_taken && !mine_taken) {
        if (mine == max) {
            mine = unused;    //  There is one: fewer addresses than streams open
            self->stream_slots [mine].address = address;
        }
        self->stream_slots [mine].count++;
        atomic_fetch_add (&self->streams, 1);
    }
    pthread_mutex_unlock (&self->stream_slots_mutex);
    if (!all_taken && !mine_taken)
        return 0;
    self->streams_refused++;
    if (all_taken)
        *rc_p = pond_gateway_reply_error (self, connection, 503, 1,
                                          "%u streams are open (--max-streams); retry later", max);
    else
        *rc_p = pond_gateway_reply_error (
            self, connection, 503, 1,
            "this address has %u streams open (--max-streams-per-ip): close one, or retry later",
            per_ip);
    return -1;
}

static void
s_slot_give (pond_gateway_t *self, uint32_t address)
{
    pthread_mutex_lock (&self->stream_slots_mutex);
    for (size_t i = 0; i < self->config.max_streams; i++)
        if (self->stream_slots [i].count && self->stream_slots [i].address == address) {
            self->stream_slots [i].count--;
            break;
        }
    atomic_fetch_sub (&self->streams, 1);
    pthread_mutex_unlock (&self->stream_slots_mutex);
}

//  A started replay on the mesh's control socket, its first event taken
//  (NULL with END: an empty replay). Returns the reader, or NULL with the
//  HTTP status, Retry-After and reason.
static pond_reader_t *
s_replay_start (pond_gateway_t *self, pond_replay_req_t *req, pond_event_t **first_p,
                unsigned *status, unsigned *retry_after, char *err, size_t errlen)
{
    *first_p = NULL;
    pond_endpoints_t eps;
    if (pond_gateway_endpoints (self, &eps)) {
        *status = 500;
        *retry_after = 0;
        snprintf (err, errlen, "the data directory's path is too long");
        return NULL;
    }
    //  Credit 1: the next chunk is granted once this one is taken
    req->credit = 1;
    pond_reader_t *reader = pond_reader_new (eps.control, req);
    if (!reader) {
        *status = 500;
        *retry_after = 0;
        snprintf (err, errlen, "cannot start a replay on %s", eps.control);
        return NULL;
    }
    *first_p = pond_reader_next (reader, self->config.wait_ms);
    int code = pond_reader_code (reader);
    if (*first_p || code == POND_CODE_OK)
        return reader;
    if (code == 0) {
        *status = 503;
        *retry_after = 1;
        snprintf (err, errlen, "the broker did not answer the replay within %d ms",
                  self->config.wait_ms);
    }
    else {
        *status = pond_gateway_http_status (code, 0, retry_after);
        snprintf (err, errlen, "replay refused: %s", pond_reader_reason (reader));
    }
    pond_reader_destroy (&reader);
    return NULL;
}

//  Copy what fits of text [*at .. size) into buf [*out .. max); frees
//  text once it is all copied. Returns true if text is done.
static bool
s_copy_out (char **text_p, size_t size, size_t *at, char *buf, size_t *out, size_t max)
{
    size_t room = max - *out, left = size - *at;
    size_t take = left < room ? left : room;
    memcpy (buf + *out, *text_p + *at, take);
    *out += take;
    *at += take;
    if (*at < size)
        return false;
    free (*text_p);
    *text_p = NULL;
    *at = 0;
    return true;
}

//  =====================================================================
//  GET /v1/events: NDJSON

typedef struct {
    pond_gateway_t *gateway;
    uint32_t client;    //  its address, for its stream slot
    pond_reader_t *reader;
    char *line;    //  the next bytes to send
    size_t size, at;
    bool done;       //  END taken (or failed): line is the last
    int64_t held;    //  what this stream counts in stream_bytes
} ndjson_t;

//  Count what the stream holds now
static void
s_ndjson_count (ndjson_t *self)
{
    int64_t now = (int64_t) (self->reader ? pond_reader_held_bytes (self->reader) : 0)
                + (int64_t) (self->line ? self->size - self->at : 0);
    pond_gateway_stream_held (self->gateway, now - self->held, now);
    self->held = now;
}

//  An event as its line, into self->line
static void
s_ndjson_line (ndjson_t *self, pond_event_t **event_p)
{
    char *json = pond_event_to_json (*event_p);
    pond_event_destroy (event_p);
    self->line = json ? zsys_sprintf ("%s\n", json) : NULL;
    free (json);
    self->size = self->line ? strlen (self->line) : 0;
    self->at = 0;
    self->gateway->stream_events++;
}

//  The replay ended: a failure becomes the last line, {"code","error"}
static void
s_ndjson_end (ndjson_t *self, int code, const char *reason)
{
    self->done = true;
    if (code == POND_CODE_OK)
        return;
    unsigned retry_after;
    cJSON *root = cJSON_CreateObject ();
    cJSON_AddNumberToObject (root, "code", pond_gateway_http_status (code, 0, &retry_after));
    cJSON_AddStringToObject (root, "error", reason);
    cJSON_AddNumberToObject (root, "events",
                             (double) (self->reader ? pond_reader_count (self->reader) : 0));
    char *json = cJSON_PrintUnformatted (root);
    cJSON_Delete (root);
    self->line = json ? zsys_sprintf ("%s\n", json) : NULL;
    free (json);
    self->size = self->line ? strlen (self->line) : 0;
    self->at = 0;
    zsys_warning ("pond-gateway: a replay failed after %llu events (%d): %s",
                  (unsigned long long) (self->reader ? pond_reader_count (self->reader) : 0), code,
                  reason);
}

//  Take the next event into self->line, waiting for it only if wait.
//  Returns true if there is a line to send or the stream is done.
static bool
s_ndjson_next (ndjson_t *self, bool wait)
{
    int64_t deadline = zclock_mono () + STALL_MS;
    while (true) {
        if (atomic_load (&self->gateway->stopping)) {
            s_ndjson_end (self, POND_CODE_UNAVAILABLE, "the gateway is stopping");
            return true;
        }
        pond_event_t *event = pond_reader_next (self->reader, wait ? SLICE_MS : 0);
        if (event) {
            s_ndjson_line (self, &event);
            return true;
        }
        int code = pond_reader_code (self->reader);
        if (code) {
            s_ndjson_end (self, code, pond_reader_reason (self->reader));
            return true;
        }
        if (!wait)
            return false;
        if (zclock_mono () >= deadline) {
            s_ndjson_end (self, POND_CODE_TIMEOUT, "the replay sent nothing for 30 s");
            return true;
        }
    }
}

static ssize_t
s_ndjson_read (void *cls, uint64_t pos, char *buf, size_t max)
{
    (void) pos;
    ndjson_t *self = (ndjson_t *) cls;
    size_t out = 0;
    while (out < max) {
        if (self->line) {
            s_copy_out (&self->line, self->size, &self->at, buf, &out, max);
            continue;
        }
        //  Send what we have rather than wait for more
        if (self->done || !s_ndjson_next (self, out == 0) || !self->line)
            break;
    }
    s_ndjson_count (self);
    if (out == 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    return (ssize_t) out;
}

//  The response is gone (sent, or the client went away): CANCEL the
//  replay if it still runs
static void
s_ndjson_free (void *cls)
{
    ndjson_t *self = (ndjson_t *) cls;
    pond_gateway_stream_held (self->gateway, -self->held, 0);
    pond_reader_destroy (&self->reader);
    free (self->line);
    s_slot_give (self->gateway, self->client);
    free (self);
}

enum MHD_Result
pond_gateway_get_events (pond_gateway_t *self, struct MHD_Connection *connection, const char *rest,
                         pond_gateway_request_t *request)
{
    (void) rest;
    (void) request;
    pond_replay_req_t req;
    char err [512];
    if (s_events_request (connection, &req, err, sizeof err))
        return pond_gateway_reply_error (self, connection, 400, 0, "%s", err);
    uint32_t client;
    enum MHD_Result refused;
    if (s_slot_take (self, connection, &client, &refused))
        return refused;
    ndjson_t *stream = (ndjson_t *) calloc (1, sizeof (ndjson_t));
    if (!stream) {
        s_slot_give (self, client);
        return pond_gateway_reply_error (self, connection, 500, 0, "out of memory");
    }
    stream->gateway = self;
    stream->client = client;
    unsigned status = 0, retry_after = 0;
    pond_event_t *first = NULL;
    stream->reader = s_replay_start (self, &req, &first, &status, &retry_after, err, sizeof err);
    if (!stream->reader) {
        free (stream);
        s_slot_give (self, client);
        return pond_gateway_reply_error (self, connection, status, retry_after, "%s", err);
    }
    if (first)
        s_ndjson_line (stream, &first);
    else
        stream->done = true;    //  Nothing matched
    s_ndjson_count (stream);
    struct MHD_Response *response = MHD_create_response_from_callback (
        MHD_SIZE_UNKNOWN, STREAM_BLOCK, s_ndjson_read, stream, s_ndjson_free);
    if (!response) {
        s_ndjson_free (stream);
        return MHD_NO;
    }
    MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE, NDJSON_TYPE);
    MHD_add_response_header (response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    enum MHD_Result rc = MHD_queue_response (connection, 200, response);
    MHD_destroy_response (response);
    self->replies [2]++;
    return rc;
}

//  =====================================================================
//  The live hub and GET /v1/stream: Server-Sent Events

//  One event's SSE text, queued for a stream
typedef struct _sse_item_t {
    struct _sse_item_t *next;
    uint64_t seq;
    size_t size;
    char text [];
} sse_item_t;

typedef struct _sse_t sse_t;
struct _sse_t {
    pond_gateway_t *gateway;
    uint32_t client;    //  its address, for its stream slot
    //  The filter, set before the stream is attached
    size_t names_count;
    char names [POND_REPLAY_MAX_NAMES][POND_NAME_MAX + 1];
    char entity [POND_ENTITY_MAX + 1];
    //  Under the hub's mutex
    sse_t *next;    //  in the hub's list
    bool attached;
    sse_item_t *first, *last;
    size_t queued;      //  bytes of the items
    const char *cut;    //  why the stream must end, or NULL
    bool cut_slow;      //  the client did not keep up: no goodbye
    pthread_cond_t wake;
    //  The connection's thread only
    pond_reader_t *reader;    //  the catch-up after Last-Event-ID, then NULL
    uint64_t last_seq;        //  the newest event sent
    char *text;               //  the next bytes to send
    size_t size, at;
    int64_t heartbeat_at;    //  mono ms
    int64_t catch_up_at;     //  the catch-up's latest progress, mono ms
    int fd;                  //  the connection's socket, to see the client leave
    bool ending;
    int64_t held;    //  pending text counted in stream_bytes
};

struct _pond_gateway_hub_t {
    pond_gateway_t *gateway;
    zactor_t *actor;
    pthread_mutex_t mutex;
    pthread_cond_t synced_wake;
    sse_t *streams;       //  attached
    unsigned wanted;      //  streams attached or waiting to be
    bool synced;          //  the SUB socket receives: what comes next reaches every stream
    uint64_t last_seq;    //  newest seq seen live
};

//  True if event is one the stream asked for
static bool
s_sse_matches (const sse_t *self, const pond_event_t *event)
{
    if (*self->entity && !streq (self->entity, pond_event_entity (event)))
        return false;
    if (self->names_count == 0)
        return true;
    for (size_t i = 0; i < self->names_count; i++)
        if (streq (self->names [i], pond_event_name (event)))
            return true;
    return false;
}

//  An event's SSE text: "id: SEQ\ndata: JSON\n\n". Caller frees.
static char *
s_sse_text (const pond_event_t *event)
{
    char *json = pond_event_to_json (event);
    char *text = json ? zsys_sprintf ("id: %llu\ndata: %s\n\n",
                                      (unsigned long long) pond_event_seq (event), json)
                      : NULL;
    free (json);
    return text;
}

//  Drop what stream holds queued. Under the hub's mutex.
static void
s_sse_drop_queue (sse_t *self)
{
    while (self->first) {
        sse_item_t *item = self->first;
        self->first = item->next;
        pond_gateway_stream_held (self->gateway, -(int64_t) item->size, 0);
        free (item);
    }
    self->last = NULL;
    self->queued = 0;
}

//  End a stream: the client resumes with Last-Event-ID. Under the mutex.
static void
s_sse_cut (sse_t *self, const char *why, bool slow)
{
    if (self->cut)
        return;
    self->cut = why;
    self->cut_slow = slow;
    s_sse_drop_queue (self);
    self->gateway->streams_cut++;
    pthread_cond_signal (&self->wake);
}

//  The hub missed live events (from..to; to 0: from on, unknown): every
//  stream is cut, and each client resumes from the log. Under the mutex.
static void
s_hub_gap (pond_gateway_hub_t *self, uint64_t from, uint64_t to)
{
    bool any = false;
    for (sse_t *stream = self->streams; stream; stream = stream->next)
        if (!stream->cut) {
            s_sse_cut (stream, "the gateway missed live events; resume with Last-Event-ID", false);
            any = true;
        }
    if (any && to)
        zsys_warning ("pond-gateway: live events %llu..%llu did not reach the gateway: every "
                      "stream is cut, to resume from the log",
                      (unsigned long long) from, (unsigned long long) to);
    else if (any)
        zsys_warning ("pond-gateway: the broker's pub socket is silent (no heartbeat): every "
                      "stream is cut, to resume from the log after seq %llu",
                      (unsigned long long) from - 1);
}

//  One live event to every stream it matches. Under the mutex.
static void
s_hub_fan_out (pond_gateway_hub_t *self, const pond_event_t *event)
{
    char *text = NULL;
    size_t size = 0;
    for (sse_t *stream = self->streams; stream; stream = stream->next) {
        if (stream->cut || !s_sse_matches (stream, event))
            continue;
        if (!text) {
            text = s_sse_text (event);
            if (!text)
                return;
            size = strlen (text);
        }
        if (stream->queued + size > self->gateway->config.stream_queue) {
            s_sse_cut (stream, "the client reads too slowly", true);
            continue;
        }
        sse_item_t *item = (sse_item_t *) malloc (sizeof (sse_item_t) + size);
        if (!item) {
            s_sse_cut (stream, "out of memory", true);
            continue;
        }
        item->next = NULL;
        item->seq = pond_event_seq (event);
        item->size = size;
        memcpy (item->text, text, size);
        if (stream->last)
            stream->last->next = item;
        else
            stream->first = item;
        stream->last = item;
        stream->queued += size;
        pond_gateway_stream_held (self->gateway, (int64_t) size, (int64_t) stream->queued);
        pthread_cond_signal (&stream->wake);
    }
    free (text);
}

//  Take what the SUB socket holds (HUB_BATCH messages at most). Returns
//  true if anything came (an event or a heartbeat).
static bool
s_hub_drain (pond_gateway_hub_t *self, pond_sub_t *sub)
{
    bool heard = false;
    for (int i = 0; i < HUB_BATCH; i++) {
        uint64_t beats = pond_sub_heartbeats (sub);
        pond_event_t *event = pond_sub_recv (sub, 0);
        if (!event && pond_sub_heartbeats (sub) == beats)
            break;
        heard = true;
        pthread_mutex_lock (&self->mutex);
        if (!self->synced) {
            //  From now on every event published reaches this socket
            self->synced = true;
            self->last_seq = event ? pond_event_seq (event) - 1 : pond_sub_head (sub);
            pthread_cond_broadcast (&self->synced_wake);
        }
        if (event && pond_event_seq (event) > self->last_seq) {
            uint64_t seq = pond_event_seq (event);
            if (seq != self->last_seq + 1)
                s_hub_gap (self, self->last_seq + 1, seq - 1);
            self->last_seq = seq;
            s_hub_fan_out (self, event);
        }
        //  A heartbeat's head is sent after every event up to it
        if (pond_sub_head (sub) > self->last_seq) {
            s_hub_gap (self, self->last_seq + 1, pond_sub_head (sub));
            self->last_seq = pond_sub_head (sub);
        }
        pthread_mutex_unlock (&self->mutex);
        pond_event_destroy (&event);
    }
    return heard;
}

//  The hub's thread: a SUB socket while streams want one
static void
s_hub_actor (zsock_t *pipe, void *args)
{
    pond_thread_block_signals (NULL);
    pond_thread_name ("gateway-hub");
    pond_gateway_hub_t *self = (pond_gateway_hub_t *) args;
    zsock_signal (pipe, 0);
    pond_sub_t *sub = NULL;
    int64_t unwanted_since = 0, heard_at = 0;
    bool running = true;
    while (running) {
        int64_t now = zclock_mono ();
        pthread_mutex_lock (&self->mutex);
        unsigned wanted = self->wanted;
        bool drop = false;
        if (sub && !wanted && unwanted_since && now - unwanted_since >= HUB_IDLE_MS)
            drop = true;    //  No stream for a while
        else if (sub && now - heard_at >= HUB_SILENT_MS) {
            drop = true;    //  Not even a heartbeat: the broker may be elsewhere now
            if (self->synced)
                s_hub_gap (self, self->last_seq + 1, 0);
        }
        if (drop)
            self->synced = false;
        pthread_mutex_unlock (&self->mutex);
        if (drop)
            pond_sub_destroy (&sub);
        unwanted_since = wanted ? 0 : unwanted_since ? unwanted_since : now;
        if (wanted && !sub) {
            pond_endpoints_t eps;
            if (pond_gateway_endpoints (self->gateway, &eps) == 0)
                sub = pond_sub_new (eps.pub, NULL, 0);    //  Every event: every seq is seen
            heard_at = now;
        }
        zmq_pollitem_t items [2] = { { zsock_resolve (pipe), 0, ZMQ_POLLIN, 0 },
                                     { sub ? zsock_resolve (pond_sub_sock (sub)) : NULL, 0,
                                       ZMQ_POLLIN, 0 } };
        int rc = zmq_poll (items, sub ? 2 : 1, HUB_POLL_MS);
        if (rc < 0 && zmq_errno () != EINTR)
            break;
        if (rc > 0 && (items [0].revents & ZMQ_POLLIN)) {
            char *command = zstr_recv (pipe);
            if (!command || streq (command, "$TERM"))
                running = false;
            zstr_free (&command);
        }
        if (sub && s_hub_drain (self, sub))
            heard_at = zclock_mono ();
    }
    pthread_mutex_lock (&self->mutex);
    for (sse_t *stream = self->streams; stream; stream = stream->next)
        s_sse_cut (stream, "the gateway is stopping", false);
    self->synced = false;
    pthread_mutex_unlock (&self->mutex);
    pond_sub_destroy (&sub);
}

pond_gateway_hub_t *
pond_gateway_hub_new (pond_gateway_t *gateway)
{
    pond_gateway_hub_t *self = (pond_gateway_hub_t *) calloc (1, sizeof (pond_gateway_hub_t));
    if (!self)
        return NULL;
    self->gateway = gateway;
    pthread_mutex_init (&self->mutex, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init (&attr);
    pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
    pthread_cond_init (&self->synced_wake, &attr);
    pthread_condattr_destroy (&attr);
    self->actor = zactor_new (s_hub_actor, self);
    if (!self->actor) {
        zsys_error ("pond-gateway: cannot start the live hub's thread");
        pond_gateway_hub_destroy (&self);
    }
    return self;
}

void
pond_gateway_hub_destroy (pond_gateway_hub_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pond_gateway_hub_t *self = *self_p;
    zactor_destroy (&self->actor);
    pthread_cond_destroy (&self->synced_wake);
    pthread_mutex_destroy (&self->mutex);
    free (self);
    *self_p = NULL;
}

void
pond_gateway_hub_wake_all (pond_gateway_hub_t *self)
{
    pthread_mutex_lock (&self->mutex);
    pthread_cond_broadcast (&self->synced_wake);
    for (sse_t *stream = self->streams; stream; stream = stream->next)
        pthread_cond_signal (&stream->wake);
    pthread_mutex_unlock (&self->mutex);
}

//  An absolute CLOCK_MONOTONIC time ms from now
static struct timespec
s_after_ms (int64_t ms)
{
    struct timespec at;
    clock_gettime (CLOCK_MONOTONIC, &at);
    at.tv_sec += (time_t) (ms / 1000);
    at.tv_nsec += (long) (ms % 1000) * 1000000L;
    if (at.tv_nsec >= 1000000000L) {
        at.tv_sec++;
        at.tv_nsec -= 1000000000L;
    }
    return at;
}

//  Attach stream to the hub once its SUB socket receives, waiting up to
//  timeout_ms. Returns 0 with the newest seq seen live in *live_after,
//  or -1 (the broker's pub socket is not answering).
static int
s_hub_attach (pond_gateway_hub_t *self, sse_t *stream, int timeout_ms, uint64_t *live_after)
{
    pthread_mutex_lock (&self->mutex);
    self->wanted++;
    struct timespec deadline = s_after_ms (timeout_ms);
    while (!self->synced && !atomic_load (&self->gateway->stopping))
        if (pthread_cond_timedwait (&self->synced_wake, &self->mutex, &deadline) == ETIMEDOUT)
            break;
    int rc = -1;
    if (self->synced && !atomic_load (&self->gateway->stopping)) {
        stream->next = self->streams;
        self->streams = stream;
        stream->attached = true;
        *live_after = self->last_seq;
        rc = 0;
    }
    else
        self->wanted--;
    pthread_mutex_unlock (&self->mutex);
    return rc;
}

static void
s_hub_detach (pond_gateway_hub_t *self, sse_t *stream)
{
    pthread_mutex_lock (&self->mutex);
    if (stream->attached) {
        for (sse_t **link = &self->streams; *link; link = &(*link)->next)
            if (*link == stream) {
                *link = stream->next;
                break;
            }
        stream->attached = false;
        self->wanted--;
    }
    s_sse_drop_queue (stream);
    pthread_mutex_unlock (&self->mutex);
}

//  Make text the next bytes to send (takes it)
static void
s_sse_send (sse_t *self, char *text)
{
    self->text = text;
    self->size = text ? strlen (text) : 0;
    self->at = 0;
    self->heartbeat_at = zclock_mono () + (int64_t) self->gateway->config.heartbeat_s * 1000;
}

//  One event of the catch-up, or its end: fills self->text. Waits only
//  if wait. Returns false if nothing came.
static bool
s_sse_catch_up (sse_t *self, bool wait)
{
    pond_event_t *event = pond_reader_next (self->reader, wait ? SLICE_MS : 0);
    if (event) {
        if (pond_event_seq (event) > self->last_seq && s_sse_matches (self, event)) {
            self->last_seq = pond_event_seq (event);
            s_sse_send (self, s_sse_text (event));
            self->gateway->stream_events++;
        }
        pond_event_destroy (&event);
        return true;
    }
    int code = pond_reader_code (self->reader);
    if (code == POND_CODE_OK) {
        pond_reader_destroy (&self->reader);    //  Live from here
        return true;
    }
    if (code) {
        s_sse_send (self, zsys_sprintf (": the catch-up failed (%d %s); resume with "
                                        "Last-Event-ID\n\n",
                                        code, pond_reader_reason (self->reader)));
        pond_reader_destroy (&self->reader);
        self->ending = true;
        return true;
    }
    return false;
}

//  The next live event queued for the stream, a heartbeat when one is due,
//  or the end of a stream that was cut; waits only if wait. Returns false
//  if none of them came.
static bool
s_sse_live (sse_t *self, bool wait)
{
    pond_gateway_hub_t *hub = self->gateway->hub;
    pthread_mutex_lock (&hub->mutex);
    while (true) {
        if (self->first) {
            sse_item_t *item = self->first;
            self->first = item->next;
            if (!self->first)
                self->last = NULL;
            self->queued -= item->size;
            pthread_mutex_unlock (&hub->mutex);
            pond_gateway_stream_held (self->gateway, -(int64_t) item->size, 0);
            //  Sent by the catch-up already: skipped
            if (item->seq > self->last_seq) {
                self->last_seq = item->seq;
                char *text = (char *) malloc (item->size + 1);
                if (text) {
                    memcpy (text, item->text, item->size);
                    text [item->size] = 0;
                }
                s_sse_send (self, text);
                self->gateway->stream_events++;
            }
            free (item);
            return true;
        }
        if (self->cut || atomic_load (&self->gateway->stopping)) {
            bool slow = self->cut_slow;
            const char *why = self->cut ? self->cut : "the gateway is stopping";
            pthread_mutex_unlock (&hub->mutex);
            self->ending = true;
            if (!slow)
                s_sse_send (self, zsys_sprintf (": %s\n\n", why));
            return true;
        }
        int64_t now = zclock_mono ();
        if (now >= self->heartbeat_at) {
            pthread_mutex_unlock (&hub->mutex);
            s_sse_send (self, strdup (": heartbeat\n\n"));
            return true;
        }
        //  A client that went away while no event came: end now, not at
        //  the next heartbeat's failed write
        struct pollfd item = { self->fd, POLLRDHUP, 0 };
        if (self->fd >= 0 && poll (&item, 1, 0) == 1
            && (item.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
            pthread_mutex_unlock (&hub->mutex);
            self->ending = true;    //  Nobody to say goodbye to
            return true;
        }
        if (!wait)
            break;
        int64_t left = self->heartbeat_at - now;
        struct timespec until = s_after_ms (left < SLICE_MS ? left : SLICE_MS);
        pthread_cond_timedwait (&self->wake, &hub->mutex, &until);
    }
    pthread_mutex_unlock (&hub->mutex);
    return false;
}

static ssize_t
s_sse_read (void *cls, uint64_t pos, char *buf, size_t max)
{
    (void) pos;
    sse_t *self = (sse_t *) cls;
    size_t out = 0;
    while (out < max) {
        if (self->text) {
            s_copy_out (&self->text, self->size, &self->at, buf, &out, max);
            continue;
        }
        if (self->ending)
            break;
        if (!self->reader) {
            if (!s_sse_live (self, out == 0))
                break;    //  Only without waiting: send what we have
            continue;
        }
        if (s_sse_catch_up (self, out == 0)) {
            self->catch_up_at = zclock_mono ();
            continue;
        }
        if (out)
            break;
        //  Nothing came in SLICE_MS of the catch-up
        int64_t now = zclock_mono ();
        if (atomic_load (&self->gateway->stopping) || now - self->catch_up_at >= STALL_MS) {
            s_sse_send (self, strdup (": the catch-up stalled; resume with Last-Event-ID\n\n"));
            pond_reader_destroy (&self->reader);
            self->ending = true;
        }
        else if (now >= self->heartbeat_at)
            s_sse_send (self, strdup (": heartbeat\n\n"));
    }
    int64_t now = (int64_t) (self->text ? self->size - self->at : 0)
                + (int64_t) (self->reader ? pond_reader_held_bytes (self->reader) : 0);
    pond_gateway_stream_held (self->gateway, now - self->held, now);
    self->held = now;
    if (out)
        return (ssize_t) out;
    //  A client cut for being slow is not sent the chunked end: a cut is
    //  told from the end of a stream
    return self->cut_slow ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
}

static void
s_sse_free (void *cls)
{
    sse_t *self = (sse_t *) cls;
    s_hub_detach (self->gateway->hub, self);
    pond_gateway_stream_held (self->gateway, -self->held, 0);
    pond_reader_destroy (&self->reader);
    free (self->text);
    pthread_cond_destroy (&self->wake);
    s_slot_give (self->gateway, self->client);
    free (self);
}

enum MHD_Result
pond_gateway_get_stream (pond_gateway_t *self, struct MHD_Connection *connection, const char *rest,
                         pond_gateway_request_t *request)
{
    (void) rest;
    (void) request;
    static const char *const known [] = { "names", "entity" };
    args_t args;
    if (s_args (connection, &args, known, 2))
        return pond_gateway_reply_error (self, connection, 400, 0, "%s", args.err);
    pond_replay_req_t req;
    memset (&req, 0, sizeof req);
    char err [512];
    if ((args.values [0] && s_parse_names (args.values [0], &req, err, sizeof err))
        || (args.values [1] && s_parse_entity (args.values [1], req.entity, err, sizeof err)))
        return pond_gateway_reply_error (self, connection, 400, 0, "%s", err);
    uint64_t resume = 0;
    const char *last_id = MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                                       "Last-Event-ID");
    if (last_id && *last_id && s_parse_uint (last_id, &resume))
        return pond_gateway_reply_error (
            self, connection, 400, 0,
            "Last-Event-ID takes the id (seq) of the last event received, not '%.64s'", last_id);
    uint32_t client;
    enum MHD_Result refused;
    if (s_slot_take (self, connection, &client, &refused))
        return refused;
    sse_t *stream = (sse_t *) calloc (1, sizeof (sse_t));
    if (!stream) {
        s_slot_give (self, client);
        return pond_gateway_reply_error (self, connection, 500, 0, "out of memory");
    }
    stream->gateway = self;
    stream->client = client;
    const union MHD_ConnectionInfo *info = MHD_get_connection_info (
        connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    stream->fd = info ? info->connect_fd : -1;
    stream->names_count = req.names_count;
    memcpy (stream->names, req.names, sizeof stream->names);
    strcpy (stream->entity, req.entity);
    pthread_condattr_t attr;
    pthread_condattr_init (&attr);
    pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
    pthread_cond_init (&stream->wake, &attr);
    pthread_condattr_destroy (&attr);
    //  Live first: every event after this reaches the queue
    uint64_t live_after = 0;
    if (s_hub_attach (self->hub, stream, self->config.wait_ms, &live_after)) {
        s_sse_free (stream);
        return pond_gateway_reply_error (self, connection, 503, 1,
                                         "the broker's pub socket does not answer");
    }
    char *hello = NULL;
    if (last_id && *last_id) {
        //  Then the log after the last event the client has: by names in
        //  seq order, by entity (skipping what it has), or the whole log
        stream->last_seq = resume;
        if (req.names_count) {
            strcpy (req.order, "seq");
            req.from_seq = resume + 1;
        }
        else if (!*req.entity)
            req.from_seq = resume + 1;
        unsigned status = 0, retry_after = 0;
        pond_event_t *first = NULL;
        stream->reader = s_replay_start (self, &req, &first, &status, &retry_after, err,
                                         sizeof err);
        if (!stream->reader) {
            s_sse_free (stream);
            return pond_gateway_reply_error (self, connection, status, retry_after, "%s", err);
        }
        if (pond_reader_code (stream->reader) == POND_CODE_OK && !first)
            pond_reader_destroy (&stream->reader);    //  Nothing missed
        char *text = NULL;
        if (first && s_sse_matches (stream, first) && pond_event_seq (first) > resume) {
            text = s_sse_text (first);
            stream->last_seq = pond_event_seq (first);
            self->stream_events++;
        }
        pond_event_destroy (&first);
        hello = zsys_sprintf ("retry: 1000\n: resuming after seq %llu\n\n%s",
                              (unsigned long long) resume, text ? text : "");
        free (text);
    }
    else {
        stream->last_seq = live_after;
        hello = zsys_sprintf ("retry: 1000\n: live after seq %llu\n\n",
                              (unsigned long long) live_after);
    }
    s_sse_send (stream, hello);
    stream->catch_up_at = zclock_mono ();
    struct MHD_Response *response = MHD_create_response_from_callback (
        MHD_SIZE_UNKNOWN, STREAM_BLOCK, s_sse_read, stream, s_sse_free);
    if (!response) {
        s_sse_free (stream);
        return MHD_NO;
    }
    MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE, SSE_TYPE);
    MHD_add_response_header (response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header (response, "X-Accel-Buffering", "no");
    //  Idle between heartbeats is not slow: a connection is closed only
    //  after two heartbeats' time without a byte written
    unsigned timeout = 2 * self->config.heartbeat_s + 1;
    MHD_set_connection_option (connection, MHD_CONNECTION_OPTION_TIMEOUT,
                               timeout > self->config.timeout_s ? timeout : self->config.timeout_s);
    enum MHD_Result rc = MHD_queue_response (connection, 200, response);
    MHD_destroy_response (response);
    self->replies [2]++;
    return rc;
}
