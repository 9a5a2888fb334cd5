/*  test_gateway: pond-gateway, HTTP/JSON at the edge, with the real
    binaries: a store, a broker, the quack counter and the gateway in a
    fresh directory, spoken to over raw TCP sockets as any HTTP client
    would. Success paths (201, dup, arrays, read your writes, /metrics)
    and every refusal (bad JSON, wrong types, too large, unknown path,
    wrong method, broker down, slow clients, too many connections), each
    checked to change nothing in the log.
*/
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <czmq.h>
#include <signal.h>

#include "pond_client.h"
#include "pond_harness.h"
#include "pond_test_http.h"

#define MAX_BODY        4096
#define MAX_CONNECTIONS 8

static pond_mesh_t *mesh;
static pid_t counter;
static pid_t gateway;
static pid_t other;    //  a second gateway some tests start
static int port;

static void
s_setup (void)
{
    mesh = pond_harness_mesh_up ();
    char log [512];
    counter = pond_harness_start_actor ("quack-counter", mesh->dir);
    cr_assert_gt (counter, 0, "the quack counter must start");
    char max_body [16], max_connections [16];
    snprintf (max_body, sizeof max_body, "%d", MAX_BODY);
    snprintf (max_connections, sizeof max_connections, "%d", MAX_CONNECTIONS);
    snprintf (log, sizeof log, "%s/gateway.log", mesh->dir);
    gateway = pond_http_gateway_start (mesh->dir, log, &port, "--max-body", max_body,
                                       "--max-connections", max_connections, "--timeout", "1",
                                       NULL);
    cr_assert_gt (gateway, 0);
    cr_assert_gt (port, 0, "the gateway must write gateway.zpl, bound on loopback");
}

static void
s_teardown (void)
{
    if (other > 0)
        pond_harness_stop (other, SIGTERM);
    pond_harness_stop (gateway, SIGTERM);
    pond_harness_stop (counter, SIGTERM);
    pond_mesh_destroy (&mesh);
}

TestSuite (gateway, .init = s_setup, .fini = s_teardown, .timeout = 60);

//  ---------------------------------------------------------------------
//  A raw HTTP client

//  A TCP connection to the gateway
static int
s_connect (void)
{
    int fd = pond_http_connect (port, 0);
    cr_assert_geq (fd, 0);
    return fd;
}

//  One request on a fresh connection (Connection: close)
static pond_http_reply_t
s_request (const char *method, const char *path, const char *body)
{
    return pond_http_request (port, method, path, NULL, body);
}

//  One connection over a limit: closed without an answer
static void
s_closed_unanswered (void)
{
    int extra = s_connect ();
    const char *get = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    pond_http_send_all (extra, get, strlen (get));
    char *raw = pond_http_read_all (extra, 3000);
    close (extra);
    cr_assert_str_eq (raw, "", "closed unanswered: %s", raw);
    free (raw);
}

//  Events in the store, from the broker's STATS
static int
s_stored (void)
{
    char err [256];
    char *json = pond_client_stats (mesh->control, 3000, err, sizeof err);
    cr_assert_not_null (json, "STATS: %s", err);
    cJSON *stats = cJSON_Parse (json);
    int events = (int) pond_http_json_number (cJSON_GetObjectItem (stats, "store"), "events");
    cJSON_Delete (stats);
    free (json);
    return events;
}

#define EVENT(id, name, entity) \
    "{\"id\":\"" id "\",\"name\":\"" name "\",\"entity\":\"" entity "\"}"
#define ID1 "018f3a5b-6c7d-7e8f-90a1-b2c3d4e5f601"
#define ID2 "018f3a5b-6c7d-7e8f-90a1-b2c3d4e5f602"
#define ID3 "018f3a5b-6c7d-7e8f-90a1-b2c3d4e5f603"

//  A refusal: status, a JSON body {"code": status, "error": ...} naming
//  what, and nothing stored
static void
s_refused (const char *method, const char *path, const char *body, int status, const char *what)
{
    pond_http_reply_t reply = s_request (method, path, body);
    cr_assert_eq (reply.status, status, "%s %s: %s", method, path, reply.raw);
    cr_assert_not_null (reply.json, "a JSON body: %s", reply.raw);
    cr_assert_eq (pond_http_json_number (reply.json, "code"), status, "%s", reply.raw);
    const char *error = cJSON_GetStringValue (cJSON_GetObjectItem (reply.json, "error"));
    cr_assert (error && strstr (error, what), "the reason names '%s': %s", what, reply.raw);
    pond_http_reply_free (&reply);
}

//  POST an event while the mesh cannot store it: 503 with Retry-After
static void
s_post_unavailable (void)
{
    pond_http_reply_t reply = s_request ("POST", "/v1/events", EVENT (ID1, "QUACKED", "anna"));
    cr_assert_eq (reply.status, 503, "%s", reply.raw);
    char retry [16];
    cr_assert (pond_http_header (&reply, "Retry-After", retry, sizeof retry) && atoi (retry) >= 1,
               "%s", reply.raw);
    cr_assert_eq (pond_http_json_number (reply.json, "code"), 503, "%s", reply.raw);
    pond_http_reply_free (&reply);
}

//  ---------------------------------------------------------------------
//  Success paths

Test (gateway, publish_one_then_resend)
{
    pond_http_reply_t reply = s_request ("POST", "/v1/events", EVENT (ID1, "QUACKED", "anna"));
    cr_assert_eq (reply.status, 201, "%s", reply.raw);
    cr_assert_eq (pond_http_json_number (reply.json, "seq"), 1, "%s", reply.raw);
    cr_assert (cJSON_IsFalse (cJSON_GetObjectItem (reply.json, "dup")), "%s", reply.raw);
    char type [64];
    cr_assert (pond_http_header (&reply, "Content-Type", type, sizeof type)
               && streq (type, "application/json"));
    pond_http_reply_free (&reply);

    //  The same event again: stored once, the original seq
    reply = s_request ("POST", "/v1/events", EVENT (ID1, "QUACKED", "anna"));
    cr_assert_eq (reply.status, 200, "%s", reply.raw);
    cr_assert_eq (pond_http_json_number (reply.json, "seq"), 1);
    cr_assert (cJSON_IsTrue (cJSON_GetObjectItem (reply.json, "dup")), "%s", reply.raw);
    pond_http_reply_free (&reply);
    cr_assert_eq (s_stored (), 1);

    //  The same id for another event: 409, with the protocol's reason
    s_refused ("POST", "/v1/events", EVENT (ID1, "QUACKED", "ben"), 409, "id already used");
    cr_assert_eq (s_stored (), 1);
}

Test (gateway, publish_array)
{
    pond_http_reply_t reply = s_request (
        "POST", "/v1/events",
        "[" EVENT (ID1, "QUACKED", "anna") "," EVENT (ID2, "QUACKED", "anna") "," EVENT (
            ID3, "BUTTON_CLICKED", "ben") "]");
    cr_assert_eq (reply.status, 201, "%s", reply.raw);
    cJSON *results = cJSON_GetObjectItem (reply.json, "results");
    cr_assert_eq (cJSON_GetArraySize (results), 3, "%s", reply.raw);
    double seqs [3];
    for (int i = 0; i < 3; i++) {
        cJSON *result = cJSON_GetArrayItem (results, i);
        cr_assert_eq (pond_http_json_number (result, "status"), 201, "%s", reply.raw);
        seqs [i] = pond_http_json_number (result, "seq");
    }
    cr_assert (seqs [0] != seqs [1] && seqs [1] != seqs [2] && seqs [0] != seqs [2]);
    cr_assert_str_eq (
        cJSON_GetStringValue (cJSON_GetObjectItem (cJSON_GetArrayItem (results, 2), "id")), ID3,
        "results in the order of the events");
    pond_http_reply_free (&reply);

    //  Again with one new event: per-event results, 201 since one is new
    reply = s_request (
        "POST", "/v1/events",
        "[" EVENT (ID1, "QUACKED",
                   "anna") ","
                           "{\"id\":\"018f3a5b-6c7d-7e8f-90a1-b2c3d4e5f604\",\"name\":\"QUACKED\","
                           "\"entity\":\"anna\",\"data\":{\"loudness_db\":61}}]");
    cr_assert_eq (reply.status, 201, "%s", reply.raw);
    results = cJSON_GetObjectItem (reply.json, "results");
    cr_assert_eq (pond_http_json_number (cJSON_GetArrayItem (results, 0), "status"), 200);
    cr_assert (cJSON_IsTrue (cJSON_GetObjectItem (cJSON_GetArrayItem (results, 0), "dup")));
    cr_assert_eq (pond_http_json_number (cJSON_GetArrayItem (results, 0), "seq"), seqs [0]);
    cr_assert_eq (pond_http_json_number (cJSON_GetArrayItem (results, 1), "status"), 201);
    pond_http_reply_free (&reply);
    cr_assert_eq (s_stored (), 4);
}

Test (gateway, read_your_write)
{
    pond_http_reply_t reply = s_request ("POST", "/v1/events", EVENT (ID1, "QUACKED", "anna"));
    cr_assert_eq (reply.status, 201, "%s", reply.raw);
    int seq = (int) pond_http_json_number (reply.json, "seq");
    pond_http_reply_free (&reply);
    //  Right after the ACK: a view that includes the write
    char path [128];
    snprintf (path, sizeof path, "/v1/views/quacks/anna?after=%d", seq);
    reply = s_request ("GET", path, NULL);
    cr_assert_eq (reply.status, 200, "%s", reply.raw);
    cr_assert_eq (pond_http_json_number (reply.json, "quacks"), 1, "%s", reply.raw);
    pond_http_reply_free (&reply);
    //  Its actor's name works too; a view that is not running is 503
    reply = s_request ("GET", "/v1/views/quack-counter/anna", NULL);
    cr_assert_eq (reply.status, 200, "%s", reply.raw);
    pond_http_reply_free (&reply);
    reply = s_request ("GET", "/v1/views/badges/anna", NULL);
    cr_assert_eq (reply.status, 503, "%s", reply.raw);
    char retry [16];
    cr_assert_not_null (pond_http_header (&reply, "Retry-After", retry, sizeof retry), "%s",
                        reply.raw);
    pond_http_reply_free (&reply);
    s_refused ("GET", "/v1/views/nope/anna", NULL, 404, "no view");
    s_refused ("GET", "/v1/views/quacks/anna?after=x1", NULL, 400, "after");
    s_refused ("GET", "/v1/views/quacks/nobody", NULL, 404, "");
    s_refused ("GET", "/v1/alexa/anna", NULL, 400, "q=");
}

Test (gateway, metrics)
{
    pond_http_reply_t reply = s_request ("POST", "/v1/events", EVENT (ID1, "QUACKED", "anna"));
    cr_assert_eq (reply.status, 201);
    pond_http_reply_free (&reply);
    reply = s_request ("GET", "/metrics", NULL);
    cr_assert_eq (reply.status, 200, "%s", reply.raw);
    //  Every line is a comment or NAME[{LABELS}] VALUE
    char *text = strdup (reply.body);
    int samples = 0;
    for (char *save = NULL, *line = strtok_r (text, "\n", &save); line;
         line = strtok_r (NULL, "\n", &save)) {
        if (*line == '#') {
            cr_assert (strncmp (line, "# TYPE ", 7) == 0 || strncmp (line, "# HELP ", 7) == 0, "%s",
                       line);
            continue;
        }
        size_t name = strspn (line,
                              "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
        cr_assert_gt (name, 0, "a metric name: %s", line);
        const char *rest = line + name;
        if (*rest == '{') {
            rest = strchr (rest, '}');
            cr_assert_not_null (rest, "labels close: %s", line);
            rest++;
        }
        cr_assert_eq (*rest, ' ', "one space before the value: %s", line);
        char *end = NULL;
        strtod (rest + 1, &end);
        cr_assert (end != rest + 1 && *end == 0, "a number: %s", line);
        samples++;
    }
    free (text);
    cr_assert_gt (samples, 20);
    cr_assert (strstr (reply.body, "\npond_store_head 1\n"), "%s", reply.body);
    cr_assert (strstr (reply.body, "\npond_broker_acked 1\n"), "%s", reply.body);
    cr_assert (strstr (reply.body, "pond_store_names{name=\"QUACKED\"} 1\n"), "%s", reply.body);
    cr_assert (strstr (reply.body, "pond_actor_up{actor=\"quack-counter\"} 1\n"), "%s", reply.body);
    cr_assert (strstr (reply.body, "pond_actor_position{actor=\"quack-counter\"} "), "%s",
               reply.body);
    cr_assert (strstr (reply.body, "pond_actor_lag{actor=\"quack-counter\"} "), "%s", reply.body);
    cr_assert (strstr (reply.body, "pond_actor_up{actor=\"mobile-view\"} 0\n"), "%s", reply.body);
    pond_http_reply_free (&reply);
}

//  ---------------------------------------------------------------------
//  Bad input: a JSON error and nothing changed

Test (gateway, malformed_json)
{
    s_refused ("POST", "/v1/events", "{\"id\":", 400, "malformed JSON");
    s_refused ("POST", "/v1/events", "", 400, "malformed JSON");
    s_refused ("POST", "/v1/events", EVENT (ID1, "QUACKED", "anna") " trailing", 400,
               "malformed JSON");
    s_refused ("POST", "/v1/events", "42", 400, "JSON object");
    s_refused ("POST", "/v1/events", "[]", 400, "1 to");
    cr_assert_eq (s_stored (), 0, "nothing stored");
}

Test (gateway, wrong_types)
{
    s_refused ("POST", "/v1/events", "{\"id\":\"" ID1 "\",\"name\":5,\"entity\":\"anna\"}", 400,
               "'name' must be a string");
    s_refused ("POST", "/v1/events",
               "{\"id\":\"" ID1 "\",\"name\":\"QUACKED\",\"entity\":\"anna\",\"data\":\"x\"}", 400,
               "'data' must be a JSON object");
    s_refused ("POST", "/v1/events", "{\"name\":\"QUACKED\",\"entity\":\"anna\"}", 400, "'id'");
    s_refused ("POST", "/v1/events",
               "{\"id\":\"not-a-uuid\",\"name\":\"QUACKED\",\"entity\":\"anna\"}", 400, "'id'");
    s_refused ("POST", "/v1/events",
               "{\"id\":\"" ID1 "\",\"name\":\"quacked\",\"entity\":\"anna\"}", 400, "name");
    s_refused ("POST", "/v1/events",
               "{\"id\":\"" ID1 "\",\"name\":\"QUACKED\",\"entity\":\"anna\",\"color\":1}", 400,
               "unknown key 'color'");
    //  A UUIDv4 id needs its ts: a resend must be the same event
    s_refused ("POST", "/v1/events",
               "{\"id\":\"9b2f7c1e-3d4a-4b5c-8d6e-7f8091a2b3c4\",\"name\":\"QUACKED\","
               "\"entity\":\"anna\"}",
               400, "'ts' is required");
    //  One bad event in an array: none of them is stored
    s_refused ("POST", "/v1/events",
               "[" EVENT (ID1, "QUACKED", "anna") ",{\"id\":\"" ID2 "\",\"name\":[]}]", 400,
               "event 1:");
    cr_assert_eq (s_stored (), 0, "nothing stored");
}

Test (gateway, body_over_the_limit)
{
    //  Announced over the limit, and a valid event padded past it
    char *big = malloc (MAX_BODY + 200);
    int length = snprintf (big, MAX_BODY + 200,
                           "{\"id\":\"" ID1 "\",\"name\":\"QUACKED\",\"entity\":\"anna\","
                           "\"data\":{\"pad\":\"");
    memset (big + length, 'x', MAX_BODY);
    strcpy (big + length + MAX_BODY, "\"}}");
    s_refused ("POST", "/v1/events", big, 413, "over 4096 bytes");
    free (big);
    //  A chunked body (no Content-Length) over the limit: read, dropped, 413
    int fd = s_connect ();
    const char *head = "POST /v1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n";
    pond_http_send_all (fd, head, strlen (head));
    char chunk [1100];
    memset (chunk, 'x', sizeof chunk);
    for (int i = 0; i < 5; i++) {
        pond_http_send_all (fd, "400\r\n", 5);
        pond_http_send_all (fd, chunk, 1024);
        pond_http_send_all (fd, "\r\n", 2);
    }
    pond_http_send_all (fd, "0\r\n\r\n", 5);
    char *raw = pond_http_read_all (fd, 5000);
    close (fd);
    cr_assert (strncmp (raw, "HTTP/1.1 413", 12) == 0, "%s", raw);
    cr_assert (strstr (raw, "\"code\":413"), "%s", raw);
    free (raw);
    cr_assert_eq (s_stored (), 0, "nothing stored");
}

Test (gateway, unknown_path_and_method)
{
    s_refused ("GET", "/v2/everything", NULL, 404, "no such path");
    s_refused ("GET", "/index.html", NULL, 404, "no such path");    //  GET / is the status page
    pond_http_reply_t reply = s_request ("DELETE", "/v1/events", NULL);
    cr_assert_eq (reply.status, 405, "%s", reply.raw);
    char allow [32];
    cr_assert (pond_http_header (&reply, "Allow", allow, sizeof allow)
                   && streq (allow, "POST, GET, HEAD"),
               "%s", reply.raw);
    cr_assert_eq (pond_http_json_number (reply.json, "code"), 405);
    pond_http_reply_free (&reply);
    s_refused ("DELETE", "/v1/views/quacks/anna", NULL, 405, "GET");
    s_refused ("POST", "/metrics", "{}", 405, "GET");
}

Test (gateway, broker_down)
{
    pond_harness_stop (mesh->broker, SIGTERM);
    mesh->broker = 0;
    int64_t started = zclock_mono ();
    s_post_unavailable ();
    cr_assert_lt (zclock_mono () - started, 10000, "answered in bounded time");
    //  /metrics still answers, saying the broker is away
    pond_http_reply_t reply = s_request ("GET", "/metrics", NULL);
    cr_assert_eq (reply.status, 200);
    cr_assert (strstr (reply.body, "pond_up 0\n"), "%s", reply.body);
    pond_http_reply_free (&reply);
    //  The broker back: the same event is stored (the gateway finds it again)
    cr_assert_eq (pond_mesh_start_broker (mesh), 0);
    reply = s_request ("POST", "/v1/events", EVENT (ID1, "QUACKED", "anna"));
    for (int i = 0; i < 20 && reply.status == 503; i++) {
        pond_http_reply_free (&reply);
        zclock_sleep (250);
        reply = s_request ("POST", "/v1/events", EVENT (ID1, "QUACKED", "anna"));
    }
    cr_assert_eq (reply.status, 201, "%s", reply.raw);
    pond_http_reply_free (&reply);
}

Test (gateway, slow_client_is_cut_off)
{
    //  Half a request, then silence
    int slow = s_connect ();
    const char *half = "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"id";
    pond_http_send_all (slow, half, strlen (half));
    //  Others are served meanwhile
    int64_t started = zclock_mono ();
    pond_http_reply_t reply = s_request ("POST", "/v1/events", EVENT (ID1, "QUACKED", "anna"));
    cr_assert_eq (reply.status, 201, "%s", reply.raw);
    cr_assert_lt (zclock_mono () - started, 900, "served while the slow one waits");
    pond_http_reply_free (&reply);
    //  The slow one is closed after --timeout (1 s), without storing anything
    char *raw = pond_http_read_all (slow, 5000);
    int64_t waited = zclock_mono () - started;
    close (slow);
    cr_assert_lt (waited, 4500, "closed after the timeout, not left open (%lld ms)",
                  (long long) waited);
    cr_assert (strstr (raw, " 201 ") == NULL, "%s", raw);
    free (raw);
    cr_assert_eq (s_stored (), 1);
}

Test (gateway, connections_over_the_limit)
{
    int idle [MAX_CONNECTIONS];
    for (int i = 0; i < MAX_CONNECTIONS; i++)
        idle [i] = s_connect ();
    zclock_sleep (150);    //  The gateway has accepted them
    //  One more: closed without an answer
    s_closed_unanswered ();
    //  Once they go, requests are served again
    for (int i = 0; i < MAX_CONNECTIONS; i++)
        close (idle [i]);
    zclock_sleep (150);
    pond_http_reply_t reply = s_request ("GET", "/metrics", NULL);
    cr_assert_eq (reply.status, 200, "%s", reply.raw);
    pond_http_reply_free (&reply);
}

Test (gateway, store_down_is_503_with_retry_after)
{
    //  The broker answers NACK 503 (with retry_ms) while it cannot reach
    //  the store; the gateway passes it on with Retry-After
    pond_harness_stop (mesh->store, SIGTERM);
    mesh->store = 0;
    s_post_unavailable ();
}

Test (gateway, command_line)
{
    int rc;
    char *out = pond_harness_run (&rc, "%s/pond-gateway --help", POND_BIN_DIR);
    cr_assert_eq (rc, 0);
    cr_assert (strstr (out, "--max-body") && strstr (out, "POST /v1/events"), "%s", out);
    free (out);
    out = pond_harness_run (&rc, "%s/pond-gateway --max-body 0 2>&1", POND_BIN_DIR);
    cr_assert_eq (rc, 2, "%s", out);
    cr_assert (strstr (out, "--max-body"), "%s", out);
    free (out);
    out = pond_harness_run (&rc, "%s/pond-gateway --data %s/other --listen nowhere 2>&1",
                            POND_BIN_DIR, mesh->dir);
    cr_assert_eq (rc, 1, "%s", out);
    cr_assert (strstr (out, "ADDR:PORT"), "%s", out);
    free (out);
    //  One gateway per data directory
    out = pond_harness_run (&rc, "%s/pond-gateway --data %s 2>&1", POND_BIN_DIR, mesh->dir);
    cr_assert_eq (rc, 1, "%s", out);
    cr_assert (strstr (out, "another pond-gateway"), "%s", out);
    free (out);
}

Test (gateway, connections_over_the_per_ip_limit)
{
    //  A second gateway (its own directory) taking 2 connections per address
    char dir [512], log [600];
    snprintf (dir, sizeof dir, "%s/per-ip", mesh->dir);
    snprintf (log, sizeof log, "%s.log", dir);
    int main_port = port;
    other = pond_http_gateway_start (dir, log, &port, "--max-per-ip", "2", NULL);
    cr_assert_gt (other, 0);
    cr_assert_gt (port, 0);
    int idle [2] = { s_connect (), s_connect () };
    zclock_sleep (150);
    s_closed_unanswered ();
    close (idle [0]);
    close (idle [1]);
    zclock_sleep (150);
    pond_http_reply_t reply = s_request ("GET", "/v1/nothing", NULL);
    cr_assert_eq (reply.status, 404, "served again: %s", reply.raw);
    pond_http_reply_free (&reply);
    port = main_port;
}
