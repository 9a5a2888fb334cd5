/*  test_gateway_stream: pond-gateway's streams with the real binaries (a
    store, a broker and the gateway in a fresh directory), read over raw
    TCP sockets as any HTTP client would, slow ones included.

    GET /v1/events (NDJSON from a replay): exactly the events asked for,
    in order; every malformed parameter is 400; a reader that pauses keeps
    the gateway's bytes bounded (the replay waits for credit) and then
    gets everything; a reader that leaves cancels the replay at the store.
    GET /v1/stream (SSE): live events with their seq as id; Last-Event-ID
    resumes without gap or double while events keep coming; a stalled
    client is cut while another is served; heartbeats; the stream limit;
    other requests are served while streams are open.
*/
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <czmq.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include "pond_client.h"
#include "pond_harness.h"
#include "pond_test_http.h"

#define MAX_STREAMS  4
#define STREAM_QUEUE 65536
#define HELD_BOUND   (1024 * 1024)    //  what one NDJSON stream may hold (2 packed chunks)

static pond_mesh_t *mesh;
static pid_t gateway;
static int port;

static void
s_setup (void)
{
    mesh = pond_harness_mesh_up ();
    char log [512], max_streams [16], queue [16];
    snprintf (max_streams, sizeof max_streams, "%d", MAX_STREAMS);
    snprintf (queue, sizeof queue, "%d", STREAM_QUEUE);
    snprintf (log, sizeof log, "%s/gateway.log", mesh->dir);
    gateway = pond_http_gateway_start (mesh->dir, log, &port, "--max-streams", max_streams,
                                       "--max-streams-per-ip", "3", "--stream-queue", queue,
                                       "--heartbeat", "1", "--timeout", "8", NULL);
    cr_assert_gt (gateway, 0);
    cr_assert_gt (port, 0, "the gateway must write gateway.zpl");
}

static void
s_teardown (void)
{
    pond_harness_stop (gateway, SIGTERM);
    pond_mesh_destroy (&mesh);
}

TestSuite (gateway_stream, .init = s_setup, .fini = s_teardown, .timeout = 120);

//  ---------------------------------------------------------------------
//  Publishing, and what the store says

//  Publish count events name/entity with ts = base + i ms (and data of
//  pad bytes); returns the seq of the first
static uint64_t
s_publish (const char *name, const char *entity, int count, uint64_t base_ts, size_t pad)
{
    pond_client_t *client = pond_client_new (mesh->ingest);
    cr_assert_not_null (client);
    pond_publisher_t *publisher = pond_publisher_new (client);
    pond_publisher_set_batch (publisher, 64, POND_BATCH_BYTES_MAX);
    char *data = NULL;
    if (pad) {
        data = malloc (pad + 32);
        int length = snprintf (data, pad + 32, "{\"pad\":\"");
        memset (data + length, 'x', pad);
        strcpy (data + length + pad, "\"}");
    }
    uint64_t first = 0;
    for (int i = 0; i < count; i++) {
        pond_event_t *event = pond_event_new (name, entity);
        pond_event_set_ts (event, base_ts + (uint64_t) i * 1000);
        char err [256];
        if (data)
            cr_assert_eq (pond_event_set_data_json (event, data, err, sizeof err), 0, "%s", err);
        while (pond_publisher_room (publisher) == 0) {
            pond_publish_result_t result;
            if (pond_publisher_next (publisher, 5000, &result) == 1) {
                cr_assert_eq (result.code, POND_CODE_OK, "%s", result.reason);
                if (!first || result.seq < first)
                    first = result.seq;
            }
        }
        cr_assert_eq (pond_publisher_push_event (publisher, event, (uint64_t) i), 0);
        pond_event_destroy (&event);
    }
    pond_publish_result_t result;
    while (pond_publisher_held (publisher) > 0) {
        cr_assert_eq (pond_publisher_next (publisher, 5000, &result), 1, "every ACK comes");
        cr_assert_eq (result.code, POND_CODE_OK, "%s", result.reason);
        if (!first || result.seq < first)
            first = result.seq;
    }
    free (data);
    pond_publisher_destroy (&publisher);
    pond_client_destroy (&client);
    return first;
}

//  A number of the broker's STATS: "store.replays_active", ...
static double
s_stat (const char *part, const char *key)
{
    char err [256];
    char *json = pond_client_stats (mesh->control, 3000, err, sizeof err);
    cr_assert_not_null (json, "STATS: %s", err);
    cJSON *stats = cJSON_Parse (json);
    double value = cJSON_GetNumberValue (
        cJSON_GetObjectItem (cJSON_GetObjectItem (stats, part), key));
    cJSON_Delete (stats);
    free (json);
    return value;
}

//  The gateway's resident memory, KiB
static long
s_gateway_rss (void)
{
    char path [64], line [256];
    snprintf (path, sizeof path, "/proc/%d/status", (int) gateway);
    FILE *file = fopen (path, "r");
    long rss = 0;
    while (file && fgets (line, sizeof line, file))
        if (strncmp (line, "VmRSS:", 6) == 0)
            rss = atol (line + 6);
    if (file)
        fclose (file);
    return rss;
}

//  ---------------------------------------------------------------------
//  A raw HTTP client

//  A TCP connection to the gateway; rcvbuf > 0 shrinks its receive buffer
//  (a slow reader whose kernel holds little)
static int
s_connect (int rcvbuf)
{
    int fd = pond_http_connect (port, rcvbuf);
    cr_assert_geq (fd, 0);
    return fd;
}

//  A GET on a fresh connection from source (NULL: 127.0.0.1), with extra
//  header lines; returns the fd
static int
s_get_from (const char *source, const char *path, const char *headers, int rcvbuf)
{
    char head [2048];
    snprintf (head, sizeof head,
              "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s\r\n", path,
              headers ? headers : "");
    int fd = source ? pond_http_connect_from (port, rcvbuf, source) : s_connect (rcvbuf);
    cr_assert_geq (fd, 0, "a connection from %s", source ? source : "127.0.0.1");
    pond_http_send_all (fd, head, strlen (head));
    return fd;
}

static int
s_get (const char *path, const char *headers, int rcvbuf)
{
    return s_get_from (NULL, path, headers, rcvbuf);
}

//  What a connection received, growing as it is read
typedef struct {
    int fd;
    char *data;
    size_t size, capacity;
    bool closed;
} conn_t;

static conn_t
s_conn (int fd)
{
    conn_t conn = { fd, malloc (65537), 0, 65536, false };
    conn.data [0] = 0;
    return conn;
}

static void
s_conn_free (conn_t *conn)
{
    if (conn->fd >= 0)
        close (conn->fd);
    free (conn->data);
}

//  Read at most max bytes more (0: any), waiting up to timeout_ms for the
//  first. Returns bytes read (0: closed or nothing).
static size_t
s_conn_read (conn_t *conn, size_t max, int timeout_ms)
{
    struct pollfd item = { conn->fd, POLLIN, 0 };
    if (conn->closed || poll (&item, 1, timeout_ms) <= 0)
        return 0;
    if (conn->capacity - conn->size < 65536) {
        conn->capacity *= 2;
        conn->data = realloc (conn->data, conn->capacity + 1);
    }
    size_t room = conn->capacity - conn->size;
    if (max && max < room)
        room = max;
    ssize_t got = recv (conn->fd, conn->data + conn->size, room, 0);
    if (got <= 0) {
        conn->closed = true;
        return 0;
    }
    conn->size += (size_t) got;
    conn->data [conn->size] = 0;
    return (size_t) got;
}

//  Read until text appears, the connection closes or timeout_ms pass.
//  Returns true if text came.
static bool
s_conn_until (conn_t *conn, const char *text, int timeout_ms)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    while (!strstr (conn->data, text) && !conn->closed && zclock_mono () < deadline)
        s_conn_read (conn, 0, (int) (deadline - zclock_mono ()));
    return strstr (conn->data, text) != NULL;
}

//  Read until the server closes or timeout_ms pass
static void
s_conn_all (conn_t *conn, int timeout_ms)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    while (!conn->closed && zclock_mono () < deadline)
        s_conn_read (conn, 0, (int) (deadline - zclock_mono ()));
}

//  The HTTP status of what was read
static int
s_status (const conn_t *conn)
{
    int status = 0;
    sscanf (conn->data, "HTTP/1.1 %d", &status);
    return status;
}

//  The body of a chunked reply, unchunked (what was read of it); complete
//  set if the last chunk came. Caller frees.
static char *
s_body (const conn_t *conn, bool *complete)
{
    const char *at = strstr (conn->data, "\r\n\r\n");
    char *body = calloc (1, conn->size + 1);
    size_t size = 0;
    if (complete)
        *complete = false;
    if (!at)
        return body;
    at += 4;
    const char *end = conn->data + conn->size;
    while (at < end) {
        char *after = NULL;
        unsigned long length = strtoul (at, &after, 16);
        const char *line_end = strstr (at, "\r\n");
        if (!line_end || after == at)
            break;
        if (length == 0) {
            if (complete)
                *complete = true;
            break;
        }
        const char *data = line_end + 2;
        size_t have = (size_t) (end - data) < length ? (size_t) (end - data) : length;
        memcpy (body + size, data, have);
        size += have;
        if (have < length)
            break;
        at = data + length + 2;
    }
    body [size] = 0;
    return body;
}

//  A whole GET: status, and the body unchunked (caller frees)
static char *
s_fetch (const char *path, int *status)
{
    conn_t conn = s_conn (s_get (path, NULL, 0));
    s_conn_all (&conn, 30000);
    *status = s_status (&conn);
    char *body = strstr (conn.data, "Transfer-Encoding: chunked")
                   ? s_body (&conn, NULL)
                   : strdup (strstr (conn.data, "\r\n\r\n") ? strstr (conn.data, "\r\n\r\n") + 4
                                                            : "");
    s_conn_free (&conn);
    return body;
}

//  The NDJSON lines of body as parsed events; count in *count_p
static cJSON **
s_lines (char *body, size_t *count_p)
{
    size_t count = 0;
    cJSON **events = calloc (strlen (body) / 2 + 1, sizeof *events);
    for (char *save = NULL, *line = strtok_r (body, "\n", &save); line;
         line = strtok_r (NULL, "\n", &save)) {
        events [count] = cJSON_Parse (line);
        cr_assert_not_null (events [count], "each line is JSON: %s", line);
        count++;
    }
    *count_p = count;
    return events;
}

static void
s_lines_free (cJSON **events, size_t count)
{
    for (size_t i = 0; i < count; i++)
        cJSON_Delete (events [i]);
    free (events);
}

//  The value of a sample in the gateway's /metrics, or -1
static double
s_metric (const char *name)
{
    int status;
    char *body = s_fetch ("/metrics", &status);
    cr_assert_eq (status, 200);
    char key [128];
    snprintf (key, sizeof key, "\n%s ", name);
    const char *at = strstr (body, key);
    double value = at ? atof (at + strlen (key)) : -1;
    free (body);
    return value;
}

//  ---------------------------------------------------------------------
//  GET /v1/events

#define T0 1700000000000000ULL    //  2023-11-14T22:13:20Z

Test (gateway_stream, ndjson_exactly_the_events_in_order)
{
    //  Interleaved: QUACKED of anna later in time than ben's, published first
    s_publish ("QUACKED", "anna", 5, T0 + 10000000, 0);          //  seq 1..5
    s_publish ("QUACKED", "ben", 5, T0, 0);                      //  seq 6..10
    s_publish ("BUTTON_CLICKED", "anna", 3, T0 + 5000000, 0);    //  seq 11..13
    s_publish ("LABEL_ADDED", "anna", 2, T0, 0);                 //  seq 14..15

    //  By names: ordered by ts, then seq; nothing of other names
    int status;
    char *body = s_fetch ("/v1/events?names=QUACKED,BUTTON_CLICKED", &status);
    cr_assert_eq (status, 200, "%s", body);
    size_t count;
    cJSON **events = s_lines (body, &count);
    cr_assert_eq (count, 13, "%s", body);
    for (size_t i = 0; i < count; i++) {
        cr_assert (streq (pond_http_json_string (events [i], "name"), "QUACKED")
                   || streq (pond_http_json_string (events [i], "name"), "BUTTON_CLICKED"));
        if (i)
            cr_assert_geq (pond_http_json_number (events [i], "ts"),
                           pond_http_json_number (events [i - 1], "ts"));
    }
    cr_assert_str_eq (pond_http_json_string (events [0], "entity"), "ben", "ben's are earliest");
    cr_assert_eq (pond_http_json_number (events [5], "seq"), 11, "then the clicks");
    cr_assert_eq (pond_http_json_number (events [12], "seq"), 5);
    s_lines_free (events, count);
    free (body);

    //  A time window, [from, to)
    char path [256];
    snprintf (path, sizeof path, "/v1/events?names=QUACKED&from=%llu&to=%llu",
              (unsigned long long) T0 + 1000, (unsigned long long) T0 + 10000000);
    body = s_fetch (path, &status);
    cr_assert_eq (status, 200);
    events = s_lines (body, &count);
    cr_assert_eq (count, 4, "ben's 2..5, not anna's: %s", body);
    cr_assert_eq (pond_http_json_number (events [0], "seq"), 7);
    s_lines_free (events, count);
    free (body);
    body = s_fetch ("/v1/events?names=QUACKED&from=2023-11-14&to=2023-11-15&limit=3", &status);
    events = s_lines (body, &count);
    cr_assert_eq (count, 3, "%s", body);
    s_lines_free (events, count);
    free (body);

    //  By entity: every event of it, in seq order
    body = s_fetch ("/v1/events?entity=anna", &status);
    cr_assert_eq (status, 200);
    events = s_lines (body, &count);
    cr_assert_eq (count, 10, "%s", body);
    for (size_t i = 0; i < count; i++) {
        cr_assert_str_eq (pond_http_json_string (events [i], "entity"), "anna");
        if (i)
            cr_assert_gt (pond_http_json_number (events [i], "seq"),
                          pond_http_json_number (events [i - 1], "seq"));
    }
    s_lines_free (events, count);
    free (body);

    //  By seq, and names by seq
    body = s_fetch ("/v1/events?from_seq=4&to_seq=12", &status);
    events = s_lines (body, &count);
    cr_assert_eq (count, 8, "%s", body);
    for (size_t i = 0; i < count; i++)
        cr_assert_eq (pond_http_json_number (events [i], "seq"), 4 + i);
    s_lines_free (events, count);
    free (body);
    body = s_fetch ("/v1/events?names=LABEL_ADDED,BUTTON_CLICKED&from_seq=12", &status);
    events = s_lines (body, &count);
    cr_assert_eq (count, 4, "%s", body);
    cr_assert_eq (pond_http_json_number (events [0], "seq"), 12);
    cr_assert_eq (pond_http_json_number (events [3], "seq"), 15);
    s_lines_free (events, count);
    free (body);

    //  Nothing matches: 200, empty
    body = s_fetch ("/v1/events?entity=nobody", &status);
    cr_assert_eq (status, 200);
    cr_assert_str_eq (body, "");
    free (body);
}

//  A 400 whose error names what
static void
s_refused (const char *path, const char *headers, const char *what)
{
    conn_t conn = s_conn (s_get (path, headers, 0));
    s_conn_all (&conn, 10000);
    cr_assert_eq (s_status (&conn), 400, "%s: %s", path, conn.data);
    const char *body = strstr (conn.data, "\r\n\r\n");
    cJSON *json = body ? cJSON_Parse (body + 4) : NULL;
    cr_assert_not_null (json, "%s", conn.data);
    cr_assert_eq (pond_http_json_number (json, "code"), 400);
    const char *error = pond_http_json_string (json, "error");
    cr_assert (error && strstr (error, what), "%s: the reason names '%s': %s", path, what,
               conn.data);
    cJSON_Delete (json);
    s_conn_free (&conn);
}

Test (gateway_stream, malformed_parameters_are_400)
{
    s_publish ("QUACKED", "anna", 3, T0, 0);
    s_refused ("/v1/events", NULL, "say which events");
    s_refused ("/v1/events?names=quacked", NULL, "'quacked' is not one");
    s_refused ("/v1/events?names=QUACKED,,LABEL_ADDED", NULL, "is not one");
    s_refused ("/v1/events?names=", NULL, "is not one");
    s_refused ("/v1/events?names=A,B,C,D,E,F,G,H,I,J,K,L,M,N,O,P,Q", NULL, "at most 16");
    s_refused ("/v1/events?names=QUACKED&from=yesterday", NULL, "from takes a time");
    s_refused ("/v1/events?names=QUACKED&to=12x", NULL, "to takes a time");
    s_refused ("/v1/events?names=QUACKED&from=2024-01-02&to=2024-01-01", NULL,
               "to must be after from");
    s_refused ("/v1/events?names=QUACKED&from=5&to=5", NULL, "to must be after from");
    s_refused ("/v1/events?from_seq=abc", NULL, "whole number");
    s_refused ("/v1/events?from_seq=-1", NULL, "whole number");
    s_refused ("/v1/events?from_seq=99999999999999999999999", NULL, "whole number");
    s_refused ("/v1/events?from_seq=5&to_seq=3", NULL, "to_seq must be after");
    s_refused ("/v1/events?names=QUACKED&color=red", NULL, "unknown parameter 'color'");
    s_refused ("/v1/events?names=QUACKED&names=LABEL_ADDED", NULL, "given twice");
    s_refused ("/v1/events?names=QUACKED&entity=anna", NULL, "not both");
    s_refused ("/v1/events?entity=anna&from=2024-01-01", NULL, "go with names");
    s_refused ("/v1/events?names=QUACKED&from=1&from_seq=2", NULL, "not both");
    s_refused ("/v1/events?entity=anna&from_seq=2", NULL, "do not go with entity");
    s_refused ("/v1/events?entity=anna&limit=0", NULL, "limit takes");
    s_refused ("/v1/stream?names=nope", NULL, "'nope' is not one");
    s_refused ("/v1/stream?names=QUACKED&from_seq=1", NULL, "unknown parameter 'from_seq'");
    s_refused ("/v1/stream?names=QUACKED", "Last-Event-ID: three\r\n", "Last-Event-ID");
    char path [400];
    snprintf (path, sizeof path, "/v1/events?entity=%0200d", 7);
    s_refused (path, NULL, "entity takes 1 to");
    //  Nothing was left running
    cr_assert_eq (s_metric ("pond_gateway_streams"), 0);
    cr_assert_eq (s_stat ("store", "replays_active"), 0);
}

//  Events of about 1 KB: N of them are far more than any buffer on the way
#define BIG_EVENTS 12000
#define BIG_PAD    1000

Test (gateway_stream, slow_reader_holds_bounded_bytes_then_gets_everything)
{
    s_publish ("QUACKED", "anna", BIG_EVENTS, T0, BIG_PAD);
    long rss_before = s_gateway_rss ();
    //  A reader with a small receive buffer takes 32 KiB, then pauses
    conn_t conn = s_conn (s_get ("/v1/events?names=QUACKED", NULL, 8192));
    size_t taken = 0;
    while (taken < 32768 && s_conn_read (&conn, 32768 - taken, 5000))
        taken = conn.size;
    zclock_sleep (2000);
    //  While it pauses: the replay is open and waits for credit; the
    //  gateway holds at most about two chunks of it
    cr_assert_eq (s_stat ("store", "replays_active"), 1, "the replay waits, it is not done");
    double held = s_metric ("pond_gateway_stream_bytes");
    double peak = s_metric ("pond_gateway_stream_bytes_peak");
    long rss_during = s_gateway_rss ();
    cr_assert_leq (held, HELD_BOUND, "at most %d bytes held now, not %.0f", HELD_BOUND, held);
    cr_assert_leq (peak, HELD_BOUND, "at most %d bytes held, not %.0f", HELD_BOUND, peak);
#if !defined(POND_SANITIZE_BUILD)
    //  (ASan keeps what is freed in quarantine: RSS says nothing there)
    cr_assert_lt (rss_during - rss_before, 16 * 1024,
                  "RSS grew %ld KiB for a %d KB replay: it is not buffered",
                  rss_during - rss_before, BIG_EVENTS * BIG_PAD / 1000);
#else
    (void) rss_before;
    (void) rss_during;
#endif
    //  Then it reads on and gets every event, in order
    s_conn_all (&conn, 60000);
    bool complete;
    char *body = s_body (&conn, &complete);
    cr_assert (complete, "the chunked body ends");
    size_t count;
    cJSON **events = s_lines (body, &count);
    cr_assert_eq (count, BIG_EVENTS);
    for (size_t i = 0; i < count; i++)
        cr_assert_eq (pond_http_json_number (events [i], "seq"), i + 1);
    s_lines_free (events, count);
    free (body);
    s_conn_free (&conn);
    cr_assert_leq (s_metric ("pond_gateway_stream_bytes_peak"), HELD_BOUND);
    cr_assert_eq (s_metric ("pond_gateway_stream_bytes"), 0);
}

Test (gateway_stream, a_reader_that_leaves_cancels_the_replay)
{
    s_publish ("QUACKED", "anna", BIG_EVENTS, T0, BIG_PAD);
    conn_t conn = s_conn (s_get ("/v1/events?names=QUACKED", NULL, 8192));
    cr_assert (s_conn_until (&conn, "\"seq\":1,", 5000), "%s", conn.data);
    zclock_sleep (300);
    cr_assert_eq (s_stat ("store", "replays_active"), 1);
    cr_assert_eq (s_metric ("pond_gateway_streams"), 1);
    //  Gone mid-stream: the gateway's next write fails, the replay is
    //  cancelled (well before the broker's 10 s for a silent reader)
    s_conn_free (&conn);
    int64_t started = zclock_mono ();
    while (s_stat ("store", "replays_active") > 0 && zclock_mono () - started < 5000)
        zclock_sleep (100);
    cr_assert_eq (s_stat ("store", "replays_active"), 0, "cancelled");
    cr_assert_lt (zclock_mono () - started, 3000, "cancelled at once, not timed out");
    cr_assert_eq (s_metric ("pond_gateway_streams"), 0);
    cr_assert_eq (s_metric ("pond_gateway_stream_bytes"), 0);
}

//  ---------------------------------------------------------------------
//  GET /v1/stream

//  The ids of the SSE events received so far, in order; count in *count_p
static uint64_t *
s_sse_ids (const conn_t *conn, size_t *count_p)
{
    bool complete;
    char *body = s_body (conn, &complete);
    size_t count = 0;
    uint64_t *ids = calloc (strlen (body) / 8 + 1, sizeof *ids);
    for (const char *at = body; (at = strstr (at, "id: ")); at += 4) {
        if (at != body && at [-1] != '\n')
            continue;
        //  A whole event (a cut may end in half of one): its data line
        //  is the event with that seq
        const char *data = strstr (at, "\ndata: ");
        const char *end = data ? strstr (data, "\n\n") : NULL;
        if (!end)
            break;
        ids [count++] = strtoull (at + 4, NULL, 10);
        char *line = strndup (data + 7, (size_t) (end - data - 7));
        cJSON *event = cJSON_Parse (line);
        cr_assert_not_null (event, "%s", line);
        cr_assert_eq (pond_http_json_number (event, "seq"), ids [count - 1]);
        cJSON_Delete (event);
        free (line);
    }
    free (body);
    *count_p = count;
    return ids;
}

//  Read until count ids have come (or timeout_ms). What came is parsed a
//  few times a second, not after every read: a stream of megabytes
static bool
s_sse_wait_ids (conn_t *conn, size_t count, int timeout_ms)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    size_t have = 0;
    while (true) {
        free (s_sse_ids (conn, &have));
        if (have >= count || conn->closed || zclock_mono () >= deadline)
            break;
        int64_t parse_at = zclock_mono () + 250;
        while (zclock_mono () < parse_at && !conn->closed)
            s_conn_read (conn, 0, (int) (parse_at - zclock_mono ()));
    }
    return have >= count;
}

Test (gateway_stream, sse_live_events_with_ids)
{
    s_publish ("QUACKED", "anna", 2, T0, 0);    //  Before: not sent
    conn_t quacks = s_conn (s_get ("/v1/stream?names=QUACKED", NULL, 0));
    conn_t anna = s_conn (s_get ("/v1/stream?entity=anna", NULL, 0));
    cr_assert (s_conn_until (&quacks, ": live after seq 2", 5000), "%s", quacks.data);
    cr_assert (s_conn_until (&anna, ": live after seq 2", 5000), "%s", anna.data);
    cr_assert (strstr (quacks.data, "Content-Type: text/event-stream"), "%s", quacks.data);
    s_publish ("QUACKED", "ben", 3, T0, 0);            //  3..5
    s_publish ("BUTTON_CLICKED", "anna", 1, T0, 0);    //  6
    s_publish ("QUACKED", "anna", 1, T0, 0);           //  7
    cr_assert (s_sse_wait_ids (&quacks, 4, 5000), "%s", quacks.data);
    cr_assert (s_sse_wait_ids (&anna, 2, 5000), "%s", anna.data);
    zclock_sleep (300);
    size_t count;
    uint64_t *ids = s_sse_ids (&quacks, &count);
    cr_assert_eq (count, 4, "%s", quacks.data);
    cr_assert (ids [0] == 3 && ids [1] == 4 && ids [2] == 5 && ids [3] == 7);
    free (ids);
    ids = s_sse_ids (&anna, &count);
    cr_assert_eq (count, 2, "%s", anna.data);
    cr_assert (ids [0] == 6 && ids [1] == 7);
    free (ids);
    //  Quiet: heartbeats (--heartbeat 1) keep the connection alive
    cr_assert (s_conn_until (&quacks, ": heartbeat\n\n", 3000), "%s", quacks.data);
    s_conn_free (&quacks);
    s_conn_free (&anna);
    //  Their slots come back once the gateway sees them gone
    int64_t started = zclock_mono ();
    while (s_metric ("pond_gateway_streams") > 0 && zclock_mono () - started < 3000)
        zclock_sleep (100);
    cr_assert_eq (s_metric ("pond_gateway_streams"), 0);
}

//  What a publisher thread publishes: QUACKED of anna, 10 at a time
typedef struct {
    int count;
    size_t pad;
} load_t;

static void *
s_publisher_thread (void *args)
{
    load_t *load = (load_t *) args;
    for (int i = 0; i < load->count / 10; i++) {
        s_publish ("QUACKED", "anna", 10, T0, load->pad);
        zclock_sleep (5);
    }
    return NULL;
}

Test (gateway_stream, sse_resume_after_last_event_id_no_gap_no_double)
{
    conn_t first = s_conn (s_get ("/v1/stream?names=QUACKED", NULL, 0));
    cr_assert (s_conn_until (&first, ": live after seq 0", 5000), "%s", first.data);
    s_publish ("QUACKED", "anna", 10, T0, 0);
    s_publish ("LABEL_ADDED", "anna", 2, T0, 0);    //  Not asked for: 11, 12
    cr_assert (s_sse_wait_ids (&first, 10, 5000), "%s", first.data);
    s_conn_free (&first);
    //  Gone after seq 10; more events meanwhile, and while it comes back
    s_publish ("QUACKED", "anna", 20, T0, 0);    //  13..32
    int more = 300;
    load_t load = { more, 0 };
    pthread_t thread;
    pthread_create (&thread, NULL, s_publisher_thread, &load);
    zclock_sleep (20);
    conn_t again = s_conn (s_get ("/v1/stream?names=QUACKED", "Last-Event-ID: 10\r\n", 0));
    pthread_join (thread, NULL);
    size_t expected = 20 + (size_t) more;
    cr_assert (s_sse_wait_ids (&again, expected, 15000), "%s", again.data);
    zclock_sleep (300);
    s_conn_read (&again, 0, 100);
    cr_assert (strstr (again.data, ": resuming after seq 10"), "%s", again.data);
    size_t count;
    uint64_t *ids = s_sse_ids (&again, &count);
    cr_assert_eq (count, expected, "every event once");
    for (size_t i = 0; i < count; i++)
        cr_assert_eq (ids [i], 13 + i, "no gap, no double: id %zu is %llu", i,
                      (unsigned long long) ids [i]);
    free (ids);
    s_conn_free (&again);
    //  Resumed by entity too (the events after it, of that entity)
    conn_t entity = s_conn (s_get ("/v1/stream?entity=anna", "Last-Event-ID: 330\r\n", 0));
    cr_assert (s_sse_wait_ids (&entity, 2, 5000), "%s", entity.data);
    ids = s_sse_ids (&entity, &count);
    cr_assert (count == 2 && ids [0] == 331 && ids [1] == 332, "%s", entity.data);
    free (ids);
    s_conn_free (&entity);
}

Test (gateway_stream, a_stalled_sse_client_is_cut_while_another_is_served)
{
    //  One reads nothing after the start (a small receive buffer); the
    //  other reads everything
    conn_t stalled = s_conn (s_get ("/v1/stream?names=QUACKED", NULL, 4096));
    conn_t reader = s_conn (s_get ("/v1/stream?names=QUACKED", NULL, 0));
    cr_assert (s_conn_until (&stalled, ": live after", 5000), "%s", stalled.data);
    cr_assert (s_conn_until (&reader, ": live after", 5000), "%s", reader.data);
    size_t before = stalled.size;
    //  About 4 MB of events: far more than the kernel's buffers hold
    int total = 4000;
    load_t load = { total, BIG_PAD };
    pthread_t thread;
    pthread_create (&thread, NULL, s_publisher_thread, &load);
    //  The reader keeps up with all of them
    cr_assert (s_sse_wait_ids (&reader, (size_t) total, 60000), "the reader gets every event");
    pthread_join (thread, NULL);
    size_t count;
    uint64_t *ids = s_sse_ids (&reader, &count);
    cr_assert_eq (count, (size_t) total);
    for (size_t i = 0; i < count; i++)
        cr_assert_eq (ids [i], i + 1);
    free (ids);
    cr_assert_not (reader.closed);
    //  The stalled one was cut: what it reads now ends in a closed
    //  connection, without the chunked end, before the last event
    cr_assert_geq (s_metric ("pond_gateway_streams_cut_total"), 1,
                   "the stalled client was cut (it had %zu bytes)", stalled.size);
    s_conn_all (&stalled, 10000);
    cr_assert (stalled.closed, "the stalled client's connection is closed");
    cr_assert_gt (stalled.size, before);
    bool complete;
    free (s_body (&stalled, &complete));
    cr_assert_not (complete, "a cut is not a normal end");
    ids = s_sse_ids (&stalled, &count);
    cr_assert_lt (count, (size_t) total, "it did not get everything: it was cut");
    free (ids);
    s_conn_free (&stalled);
    s_conn_free (&reader);
    //  Nothing held after
    int64_t started = zclock_mono ();
    while (s_metric ("pond_gateway_streams") > 0 && zclock_mono () - started < 3000)
        zclock_sleep (100);
    cr_assert_eq (s_metric ("pond_gateway_stream_bytes"), 0);
}

Test (gateway_stream, other_requests_are_served_while_streams_are_open)
{
    s_publish ("QUACKED", "anna", BIG_EVENTS / 4, T0, BIG_PAD);
    //  MAX_STREAMS streams open: two live, two replays that wait for a reader;
    //  the last from another address, as the first three are all one
    //  address may hold (--max-streams-per-ip 3)
    conn_t streams [MAX_STREAMS];
    for (int i = 0; i < MAX_STREAMS; i++) {
        const char *path = i < 2 ? "/v1/stream?names=QUACKED" : "/v1/events?names=QUACKED";
        if (i == MAX_STREAMS - 1) {
            conn_t over = s_conn (s_get (path, NULL, 0));
            s_conn_all (&over, 5000);
            cr_assert_eq (s_status (&over), 503, "%s", over.data);
            cr_assert (strstr (over.data, "--max-streams-per-ip"), "%s", over.data);
            s_conn_free (&over);
        }
        streams [i] = s_conn (
            s_get_from (i == MAX_STREAMS - 1 ? "127.0.0.2" : NULL, path, NULL, 8192));
        cr_assert (s_conn_until (&streams [i], i < 2 ? ": live after" : "\"seq\":1,", 5000), "%s",
                   streams [i].data);
    }
    //  One more stream, from a third address: 503 with Retry-After
    conn_t extra = s_conn (s_get_from ("127.0.0.3", "/v1/stream?names=QUACKED", NULL, 0));
    s_conn_all (&extra, 5000);
    cr_assert_eq (s_status (&extra), 503, "%s", extra.data);
    cr_assert (strcasestr (extra.data, "\r\nRetry-After: 1\r\n"), "%s", extra.data);
    cr_assert (strstr (extra.data, "--max-streams"), "%s", extra.data);
    s_conn_free (&extra);
    //  Other requests: answered at once
    for (int i = 0; i < 5; i++) {
        int64_t started = zclock_mono ();
        char body [256];
        snprintf (body, sizeof body,
                  "{\"id\":\"018f3a5b-6c7d-7e8f-90a1-b2c3d4e5f6%02d\",\"name\":\"QUACKED\","
                  "\"entity\":\"zoe\"}",
                  i);
        char head [512];
        snprintf (head, sizeof head,
                  "POST /v1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                  "Content-Length: %zu\r\n\r\n%s",
                  strlen (body), body);
        conn_t post = s_conn (s_connect (0));
        pond_http_send_all (post.fd, head, strlen (head));
        s_conn_all (&post, 5000);
        cr_assert_eq (s_status (&post), 201, "%s", post.data);
        cr_assert_lt (zclock_mono () - started, 1000, "served while streams are open");
        s_conn_free (&post);
        int status;
        char *reply = s_fetch ("/v1/views/nope/zoe", &status);
        cr_assert_eq (status, 404, "%s", reply);
        free (reply);
    }
    //  The live streams got those events
    cr_assert (s_sse_wait_ids (&streams [0], 5, 5000), "%s", streams [0].data);
    for (int i = 0; i < MAX_STREAMS; i++)
        s_conn_free (&streams [i]);
    int64_t started = zclock_mono ();
    while ((s_metric ("pond_gateway_streams") > 0 || s_stat ("store", "replays_active") > 0)
           && zclock_mono () - started < 5000)
        zclock_sleep (100);
    cr_assert_eq (s_metric ("pond_gateway_streams"), 0);
    cr_assert_eq (s_stat ("store", "replays_active"), 0);
    cr_assert_geq (s_metric ("pond_gateway_streams_refused_total"), 1);
}

Test (gateway_stream, command_line)
{
    int rc;
    char *out = pond_harness_run (&rc, "%s/pond-gateway --help", POND_BIN_DIR);
    cr_assert_eq (rc, 0);
    cr_assert (strstr (out, "GET  /v1/events?names=A,B") && strstr (out, "GET  /v1/stream")
                   && strstr (out, "--max-streams N") && strstr (out, "--stream-queue BYTES")
                   && strstr (out, "--heartbeat S") && strstr (out, "curl -sN"),
               "%s", out);
    free (out);
    const char *bad [] = { "--max-streams 0", "--max-streams many", "--stream-queue 100",
                           "--heartbeat 0", "--heartbeat 1h" };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        out = pond_harness_run (&rc, "%s/pond-gateway --data %s/other %s 2>&1", POND_BIN_DIR,
                                mesh->dir, bad [i]);
        cr_assert_eq (rc, 2, "%s: %s", bad [i], out);
        cr_assert (strstr (out, "takes"), "%s: %s", bad [i], out);
        free (out);
    }
}
