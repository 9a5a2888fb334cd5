/*  test_gateway_auth: pond-gateway in keys mode (bearer tokens) and its
    status endpoints, with the whole mesh as `pond up` starts it.

    keys: a mesh with CURVE keys (pond up --keys), tokens issued by `pond
    keys token` for an app key bound to anna, a device key bound to anna
    and the admin key; each request is served as its token's key, so the
    mesh's rules apply: the app reads and publishes only for anna, the
    device publishes for anna and asks no view, the admin does anything.
    No token, a garbage, forged, oversized or revoked one: 401.

    auth: pond_gateway_auth alone (no mesh): each request's thread speaks
    as its token's key and only it, sessions over the bound are evicted,
    a key without its secret is a 500, local mode asks nothing.

    status: GET /v1/status and GET / on a local mesh (no keys, no token):
    every process with its position against the head, the latest events,
    the broker stopped (SIGSTOP) said so, malformed parameters refused.
*/
#define _GNU_SOURCE    //  strcasestr
#include <criterion/criterion.h>
#include <sys/socket.h>
#include <cjson/cJSON.h>
#include <czmq.h>
#include <signal.h>

#include "pond_gateway_auth.h"
#include "pond_harness.h"
#include "pond_keys.h"
#include "pond_test_http.h"
#include "pond_tokens.h"

#include <pthread.h>

static char *dir;    //  this test's directory: DIR/data the mesh, DIR/keys
static char data [600];
static char keys [600];
static int port;

//  The pid of one process of the mesh, by name
static pid_t
s_pid_of (const char *name)
{
    char key [128];
    snprintf (key, sizeof key, "process/%s/pid", name);
    char *pid = pond_harness_supervised (data, key);
    pid_t value = pid ? atoi (pid) : 0;
    free (pid);
    return value;
}

//  Run `pond ARGS` with stderr in the output; returns it (caller frees)
static char *
s_pond (int *exit_p, const char *format, ...)
{
    char args [1500];
    va_list list;
    va_start (list, format);
    vsnprintf (args, sizeof args, format, list);
    va_end (list);
    char *out = pond_harness_run (exit_p, "%s/pond %s 2>&1", POND_BIN_DIR, args);
    cr_assert_not_null (out);
    return out;
}

//  The mesh up (with keys when with_keys), its gateway's port known
static void
s_up (bool with_keys)
{
    int rc;
    char *out;
    if (with_keys) {
        const char *made [] = { "--role broker",
                                "--role store",
                                "--role admin --name admin",
                                "--role admin --name gateway",
                                "--role actor --name quack-counter",
                                "--role actor --name badge-granter",
                                "--role actor --name alexa-view",
                                "--role actor --name mobile-view",
                                "--role app --name app-anna --customer anna",
                                "--role device --name silo-1 --customer anna" };
        for (size_t i = 0; i < sizeof made / sizeof made [0]; i++) {
            out = s_pond (&rc, "keys new --keys %s %s", keys, made [i]);
            cr_assert_eq (rc, 0, "pond keys new %s: %s", made [i], out);
            free (out);
        }
        out = s_pond (&rc, "up --data %s --keys %s", data, keys);
    }
    else
        out = s_pond (&rc, "up --data %s", data);
    cr_assert_eq (rc, 0, "pond up: %s", out);
    free (out);
    port = pond_http_gateway_port (data);
    cr_assert_gt (port, 0, "the gateway's URL in gateway.zpl");
}

static void
s_setup (void)
{
    zsys_set_logstream (stderr);
    dir = pond_harness_tempdir ();
    cr_assert_not_null (dir);
    snprintf (data, sizeof data, "%s/data", dir);
    snprintf (keys, sizeof keys, "%s/keys", dir);
}

static void
s_teardown (void)
{
    pond_harness_mesh_down (data, dir, "test_gateway_auth");
    pond_harness_tempdir_done (&dir);
}

//  A token of key name, issued by pond keys token (caller frees)
static char *
s_token (const char *name)
{
    int rc;
    char *out = pond_harness_run (&rc, "%s/pond keys token %s --keys %s 2>/dev/null", POND_BIN_DIR,
                                  name, keys);
    cr_assert_eq (rc, 0, "pond keys token %s", name);
    out [strcspn (out, "\n")] = 0;
    cr_assert (strncmp (out, name, strlen (name)) == 0 && out [strlen (name)] == '.',
               "a token is NAME.SECRET: '%s'", out);
    return out;
}

//  A request with token (NULL: no Authorization header)
static pond_http_reply_t
s_request (const char *token, const char *method, const char *path, const char *body)
{
    char header [1024] = "";
    if (token)
        snprintf (header, sizeof header, "Authorization: Bearer %s\r\n", token);
    return pond_http_request (port, method, path, header, body);
}

//  Ask until the status is status (a view catches up), up to timeout_ms;
//  returns the last reply
static pond_http_reply_t
s_until (const char *token, const char *path, int status, int timeout_ms)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    pond_http_reply_t reply = s_request (token, "GET", path, NULL);
    while (reply.status != status && zclock_mono () < deadline) {
        pond_http_reply_free (&reply);
        zclock_sleep (100);
        reply = s_request (token, "GET", path, NULL);
    }
    return reply;
}

//  The head of the log, as the admin sees it in /v1/status
static int
s_head (const char *admin)
{
    pond_http_reply_t reply = s_request (admin, "GET", "/v1/status?latest=0", NULL);
    cr_assert_eq (reply.status, 200, "%s", reply.raw);
    int head = (int) pond_http_json_number (reply.json, "head");
    pond_http_reply_free (&reply);
    return head;
}

//  A refusal: status and a JSON body {"code", "error"} naming what
static void
s_refused (const pond_http_reply_t *reply, int status, const char *what)
{
    cr_assert_eq (reply->status, status, "%s", reply->raw);
    cr_assert_not_null (reply->json, "a JSON body: %s", reply->raw);
    cr_assert_eq (pond_http_json_number (reply->json, "code"), status, "%s", reply->raw);
    const char *error = pond_http_json_string (reply->json, "error");
    cr_assert (error && strstr (error, what), "the reason names '%s': %s", what, reply->raw);
}

#define EVENT(id, entity) "{\"id\":\"" id "\",\"name\":\"QUACKED\",\"entity\":\"" entity "\"}"
#define ID1               "018f3a5b-6c7d-7e8f-90a1-b2c3d4e5f601"
#define ID2               "018f3a5b-6c7d-7e8f-90a1-b2c3d4e5f602"
#define ID3               "018f3a5b-6c7d-7e8f-90a1-b2c3d4e5f603"
#define ID4               "018f3a5b-6c7d-7e8f-90a1-b2c3d4e5f604"

//  =====================================================================
//  Keys mode

TestSuite (keys, .init = s_setup, .fini = s_teardown, .timeout = 90);

Test (keys, app_token_reads_only_its_customers)
{
    s_up (true);
    char *admin = s_token ("admin");
    char *app = s_token ("app-anna");
    //  The admin publishes for anna and ben
    pond_http_reply_t reply = s_request (admin, "POST", "/v1/events", EVENT (ID1, "anna"));
    cr_assert_eq (reply.status, 201, "%s", reply.raw);
    pond_http_reply_free (&reply);
    reply = s_request (admin, "POST", "/v1/events", EVENT (ID2, "ben"));
    cr_assert_eq (reply.status, 201, "%s", reply.raw);
    pond_http_reply_free (&reply);

    //  The app reads its customer, and not another
    reply = s_until (app, "/v1/views/quacks/anna?after=2", 200, 10000);
    cr_assert_eq (reply.status, 200, "%s", reply.raw);
    cr_assert_eq (pond_http_json_number (reply.json, "quacks"), 1, "%s", reply.raw);
    pond_http_reply_free (&reply);
    reply = s_request (app, "GET", "/v1/views/mobile/ben", NULL);
    s_refused (&reply, 403, "may not ask about 'ben'");
    pond_http_reply_free (&reply);
    //  ... nor the status, which is the admin's
    reply = s_request (app, "GET", "/v1/status", NULL);
    s_refused (&reply, 403, "admin");
    pond_http_reply_free (&reply);
    reply = s_request (app, "GET", "/metrics", NULL);
    s_refused (&reply, 403, "admin");
    pond_http_reply_free (&reply);

    //  The admin reads anyone, and the status
    reply = s_until (admin, "/v1/views/quacks/ben", 200, 10000);
    cr_assert_eq (reply.status, 200, "%s", reply.raw);
    pond_http_reply_free (&reply);
    reply = s_request (admin, "GET", "/v1/status", NULL);
    cr_assert_eq (reply.status, 200, "%s", reply.raw);
    cr_assert (
        cJSON_IsTrue (cJSON_GetObjectItem (cJSON_GetObjectItem (reply.json, "broker"), "up")), "%s",
        reply.raw);
    pond_http_reply_free (&reply);
    reply = s_request (admin, "GET", "/metrics", NULL);
    cr_assert_eq (reply.status, 200, "%s", reply.raw);
    cr_assert (strstr (reply.body, "pond_up 1"), "%s", reply.raw);
    pond_http_reply_free (&reply);
    free (admin);
    free (app);
}

Test (keys, app_and_device_publish_only_for_their_customers)
{
    s_up (true);
    char *admin = s_token ("admin");
    char *app = s_token ("app-anna");
    char *device = s_token ("silo-1");
    pond_http_reply_t reply = s_request (app, "POST", "/v1/events", EVENT (ID1, "anna"));
    cr_assert_eq (reply.status, 201, "%s", reply.raw);
    pond_http_reply_free (&reply);
    reply = s_request (app, "POST", "/v1/events", EVENT (ID2, "ben"));
    cr_assert_eq (reply.status, 403, "%s", reply.raw);
    cr_assert (strstr (pond_http_json_string (reply.json, "error"), "may not publish for 'ben'"),
               "%s", reply.raw);
    pond_http_reply_free (&reply);
    reply = s_request (device, "POST", "/v1/events", EVENT (ID3, "anna"));
    cr_assert_eq (reply.status, 201, "%s", reply.raw);
    pond_http_reply_free (&reply);
    reply = s_request (device, "POST", "/v1/events", "[" EVENT (ID4, "ben") "]");
    cr_assert_eq (reply.status, 403, "%s", reply.raw);
    pond_http_reply_free (&reply);
    //  A device asks no view: the actors let in actor, app and admin keys
    reply = s_request (device, "GET", "/v1/views/quacks/anna", NULL);
    s_refused (&reply, 403, "may not use the query socket");
    pond_http_reply_free (&reply);

    //  Two events stored, each with its key as the source the broker stamped
    reply = s_request (admin, "GET", "/v1/status?latest=5", NULL);
    cr_assert_eq (reply.status, 200, "%s", reply.raw);
    cr_assert_eq (pond_http_json_number (reply.json, "head"), 2, "%s", reply.raw);
    cJSON *latest = cJSON_GetObjectItem (reply.json, "latest");
    cr_assert_eq (cJSON_GetArraySize (latest), 2, "%s", reply.raw);
    cr_assert_str_eq (pond_http_json_string (cJSON_GetArrayItem (latest, 0), "source"), "silo-1");
    cr_assert_str_eq (pond_http_json_string (cJSON_GetArrayItem (latest, 1), "source"), "app-anna");
    pond_http_reply_free (&reply);
    free (admin);
    free (app);
    free (device);
}

//  One request on an open keep-alive connection fd; the reply's status
//  (its body read by Content-Length)
static int
s_keep_alive (int fd, const char *token, const char *path)
{
    char head [1024];
    snprintf (head, sizeof head,
              "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n\r\n", path,
              token);
    cr_assert_eq (send (fd, head, strlen (head), MSG_NOSIGNAL), (ssize_t) strlen (head));
    char reply [8192];
    size_t size = 0;
    int64_t deadline = zclock_mono () + 10000;
    while (zclock_mono () < deadline && size < sizeof reply - 1) {
        ssize_t got = recv (fd, reply + size, sizeof reply - 1 - size, 0);
        cr_assert_gt (got, 0, "the connection stays open");
        size += (size_t) got;
        reply [size] = 0;
        char *end = strstr (reply, "\r\n\r\n");
        const char *length = strcasestr (reply, "\r\nContent-Length: ");
        if (end && length && size >= (size_t) (end + 4 - reply) + (size_t) atoi (length + 18))
            break;
    }
    int status = 0;
    sscanf (reply, "HTTP/1.1 %d", &status);
    return status;
}

Test (keys, one_connection_serves_each_request_as_its_own_key)
{
    s_up (true);
    char *admin = s_token ("admin");
    char *app = s_token ("app-anna");
    pond_http_reply_t reply = s_request (admin, "POST", "/v1/events", EVENT (ID1, "ben"));
    cr_assert_eq (reply.status, 201, "%s", reply.raw);
    pond_http_reply_free (&reply);
    reply = s_until (admin, "/v1/views/quacks/ben?after=1", 200, 10000);
    cr_assert_eq (reply.status, 200, "%s", reply.raw);
    pond_http_reply_free (&reply);
    //  A keep-alive connection keeps its sockets to the mesh between
    //  requests: they are the key's of the request, never another's
    int fd = pond_http_connect (port, 0);
    cr_assert_geq (fd, 0);
    cr_assert_eq (s_keep_alive (fd, app, "/v1/views/quacks/ben"), 403);
    cr_assert_eq (s_keep_alive (fd, admin, "/v1/views/quacks/ben"), 200);
    cr_assert_eq (s_keep_alive (fd, app, "/v1/views/quacks/ben"), 403);
    cr_assert_eq (s_keep_alive (fd, admin, "/v1/views/quacks/ben"), 200);
    close (fd);
    free (admin);
    free (app);
}

//  The status of GET path with token: the status line only (a live
//  stream's body does not end)
static int
s_status_of (const char *token, const char *path)
{
    int fd = pond_http_connect (port, 0);
    cr_assert_geq (fd, 0);
    char head [1024], line [64] = "";
    snprintf (head, sizeof head,
              "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n\r\n", path,
              token);
    cr_assert_eq (send (fd, head, strlen (head), MSG_NOSIGNAL), (ssize_t) strlen (head));
    ssize_t got = recv (fd, line, sizeof line - 1, 0);
    close (fd);
    int status = 0;
    if (got > 0)
        sscanf (line, "HTTP/1.1 %d", &status);
    return status;
}

Test (keys, live_stream_only_of_the_keys_customers)
{
    s_up (true);
    char *admin = s_token ("admin");
    char *app = s_token ("app-anna");
    char *device = s_token ("silo-1");
    //  The gateway's own subscription serves the live events: it applies
    //  the rule of the actors' query sockets
    cr_assert_eq (s_status_of (app, "/v1/stream?entity=anna"), 200);
    cr_assert_eq (s_status_of (app, "/v1/stream?entity=ben"), 403);
    cr_assert_eq (s_status_of (app, "/v1/stream"), 403);
    cr_assert_eq (s_status_of (app, "/v1/stream?names=QUACKED"), 403);
    cr_assert_eq (s_status_of (device, "/v1/stream?entity=anna"), 403);
    cr_assert_eq (s_status_of (admin, "/v1/stream"), 200);
    pond_http_reply_t reply = s_request (app, "GET", "/v1/stream", NULL);
    s_refused (&reply, 403, "add entity=anna");
    pond_http_reply_free (&reply);
    //  The stored events come through the mesh, which refuses REPLAY to an
    //  app key: the control socket is the admin's
    reply = s_request (app, "GET", "/v1/events?entity=anna", NULL);
    cr_assert_eq (reply.status, 403, "%s", reply.raw);
    pond_http_reply_free (&reply);
    free (admin);
    free (app);
    free (device);
}

Test (keys, no_token_or_a_bad_one_is_401)
{
    s_up (true);
    char *admin = s_token ("admin");
    char forged [256];
    snprintf (forged, sizeof forged, "%s", admin);
    char *last = forged + strlen (forged) - 1;
    *last = *last == '0' ? '1' : '0';    //  One digit of the secret changed
    char oversized [4096];
    memset (oversized, 'a', sizeof oversized - 1);
    oversized [sizeof oversized - 1] = 0;
    const char *headers [] = { NULL,
                               "Authorization: Bearer garbage\r\n",
                               "Authorization: Bearer \r\n",
                               "Authorization: Basic YWRtaW46YWRtaW4=\r\n",
                               "Authorization: Bearer admin.\r\n",
                               "Authorization: Bearer ../admin.0000\r\n",
                               NULL,
                               NULL };
    char forged_header [300], oversized_header [4200];
    snprintf (forged_header, sizeof forged_header, "Authorization: Bearer %s\r\n", forged);
    snprintf (oversized_header, sizeof oversized_header, "Authorization: Bearer %s\r\n", oversized);
    headers [6] = forged_header;
    headers [7] = oversized_header;
    for (size_t i = 0; i < sizeof headers / sizeof headers [0]; i++) {
        const char *paths [] = { "/v1/views/quacks/anna", "/v1/status", "/metrics" };
        for (size_t p = 0; p < 3; p++) {
            pond_http_reply_t reply = pond_http_request (port, "GET", paths [p], headers [i], NULL);
            cr_assert_eq (reply.status, 401, "%s with %s: %s", paths [p],
                          headers [i] ? headers [i] : "no header", reply.raw);
            char value [128];
            cr_assert (pond_http_header (&reply, "WWW-Authenticate", value, sizeof value)
                           && strncmp (value, "Bearer realm=\"pond\"", 19) == 0,
                       "%s", reply.raw);
            cr_assert_eq (pond_http_json_number (reply.json, "code"), 401, "%s", reply.raw);
            pond_http_reply_free (&reply);
        }
        pond_http_reply_t reply = pond_http_request (port, "POST", "/v1/events", headers [i],
                                                     EVENT (ID1, "anna"));
        cr_assert_eq (reply.status, 401, "%s", reply.raw);
        pond_http_reply_free (&reply);
    }
    //  Nothing stored; the status page itself needs no token
    cr_assert_eq (s_head (admin), 0);
    pond_http_reply_t reply = pond_http_request (port, "GET", "/", NULL, NULL);
    cr_assert_eq (reply.status, 200, "%s", reply.raw);
    cr_assert (strstr (reply.body, "<title>pond status</title>"), "%s", reply.raw);
    pond_http_reply_free (&reply);
    //  The true token works
    reply = s_request (admin, "POST", "/v1/events", EVENT (ID1, "anna"));
    cr_assert_eq (reply.status, 201, "%s", reply.raw);
    pond_http_reply_free (&reply);
    free (admin);
}

Test (keys, revoked_token_or_removed_key_is_401_at_once)
{
    s_up (true);
    char *admin = s_token ("admin");
    char *app = s_token ("app-anna");
    char *second = s_token ("app-anna");    //  A key may have several
    cr_assert_str_neq (app, second);
    pond_http_reply_t reply = s_request (app, "POST", "/v1/events", EVENT (ID1, "anna"));
    cr_assert_eq (reply.status, 201, "%s", reply.raw);
    pond_http_reply_free (&reply);

    int rc;
    char *out = s_pond (&rc, "keys revoke-token app-anna --keys %s", keys);
    cr_assert_eq (rc, 0, "%s", out);
    cr_assert (strstr (out, "revoked 2 tokens"), "%s", out);
    free (out);
    //  The very next request is refused, with either token
    reply = s_request (app, "POST", "/v1/events", EVENT (ID2, "anna"));
    s_refused (&reply, 401, "revoked");
    pond_http_reply_free (&reply);
    reply = s_request (second, "GET", "/v1/views/quacks/anna", NULL);
    s_refused (&reply, 401, "revoked");
    pond_http_reply_free (&reply);

    //  A new token works; removing the key takes it away too
    char *third = s_token ("app-anna");
    reply = s_request (third, "POST", "/v1/events", EVENT (ID2, "anna"));
    cr_assert_eq (reply.status, 201, "%s", reply.raw);
    pond_http_reply_free (&reply);
    out = s_pond (&rc, "keys remove --name app-anna --keys %s", keys);
    cr_assert_eq (rc, 0, "%s", out);
    free (out);
    reply = s_request (third, "POST", "/v1/events", EVENT (ID3, "anna"));
    s_refused (&reply, 401, "removed");
    pond_http_reply_free (&reply);
    //  A key made again under the same name has none of the old tokens,
    //  and its own pair is used, not the one the gateway kept
    out = s_pond (&rc, "keys new --role app --name app-anna --customer anna --keys %s", keys);
    cr_assert_eq (rc, 0, "%s", out);
    free (out);
    reply = s_request (third, "POST", "/v1/events", EVENT (ID3, "anna"));
    s_refused (&reply, 401, "revoked");
    pond_http_reply_free (&reply);
    char *fourth = s_token ("app-anna");
    int64_t deadline = zclock_mono () + 10000;    //  The broker rescans keys every 2 s
    do {
        pond_http_reply_free (&reply);
        reply = s_request (fourth, "POST", "/v1/events", EVENT (ID3, "anna"));
    } while (reply.status != 201 && zclock_mono () < deadline && (zclock_sleep (200), true));
    cr_assert_eq (reply.status, 201, "%s", reply.raw);
    pond_http_reply_free (&reply);
    cr_assert_eq (s_head (admin), 3);
    free (admin);
    free (app);
    free (second);
    free (third);
    free (fourth);
}

Test (keys, tokens_only_for_http_roles_with_a_secret_here)
{
    int rc;
    char *out = s_pond (&rc, "keys new --keys %s --role broker", keys);
    cr_assert_eq (rc, 0, "%s", out);
    free (out);
    out = s_pond (&rc, "keys new --keys %s --role actor --name quack-counter", keys);
    cr_assert_eq (rc, 0, "%s", out);
    free (out);
    out = s_pond (&rc, "keys new --keys %s --role app --name app-1 --customer anna", keys);
    cr_assert_eq (rc, 0, "%s", out);
    free (out);
    struct {
        const char *args;
        int exit;
        const char *says;
    } cases [] = {
        { "keys token quack-counter", 1, "tokens are for app, device and admin keys" },
        { "keys token broker", 1, "tokens are for app, device and admin keys" },
        { "keys token nobody", 1, "no key 'nobody'" },
        { "keys token", 2, "say which key" },
        { "keys token ../etc", 1, "" },
        { "keys token app-1 --name app-2", 2, "give the key's name once" },
        { "keys revoke-token", 2, "say which key" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        out = s_pond (&rc, "%s --keys %s", cases [i].args, keys);
        cr_assert_eq (rc, cases [i].exit, "pond %s: %s", cases [i].args, out);
        cr_assert (strstr (out, cases [i].says), "pond %s: %s", cases [i].args, out);
        free (out);
    }
    //  Without the secret half here the gateway could not speak as the key
    char path [700];
    snprintf (path, sizeof path, "%s/secret/app-1.cert_secret", keys);
    cr_assert_eq (unlink (path), 0);
    out = s_pond (&rc, "keys token app-1 --keys %s", keys);
    cr_assert_eq (rc, 1, "%s", out);
    cr_assert (strstr (out, "secret half"), "%s", out);
    free (out);
    snprintf (path, sizeof path, "%s/tokens/app-1", keys);
    cr_assert (access (path, F_OK) != 0, "no token file for refused issues");
}

//  =====================================================================
//  Status, local mode

TestSuite (status, .init = s_setup, .fini = s_teardown, .timeout = 90);

Test (status, processes_at_the_head_and_latest_events)
{
    s_up (false);
    for (int i = 0; i < 5; i++) {
        int rc;
        char *out = s_pond (&rc, "publish --data %s --name QUACKED --entity anna", data);
        cr_assert_eq (rc, 0, "%s", out);
        free (out);
    }
    //  Local mode: no token asked, one given is ignored
    pond_http_reply_t reply;
    int64_t deadline = zclock_mono () + 10000;
    bool at_head = false;
    while (!at_head) {
        reply = pond_http_request (port, "GET", "/v1/status?latest=3",
                                   "Authorization: Bearer whatever\r\n", NULL);
        cr_assert_eq (reply.status, 200, "%s", reply.raw);
        at_head = true;
        const cJSON *process;
        cJSON_ArrayForEach (process, cJSON_GetObjectItem (reply.json, "processes"))
            if (streq (pond_http_json_string (process, "kind"), "actor"))
                at_head &= pond_http_json_number (process, "position") == 5
                        && pond_http_json_number (process, "lag") == 0;
        if (at_head || zclock_mono () > deadline)
            break;
        pond_http_reply_free (&reply);
        zclock_sleep (200);
    }
    cr_assert (at_head, "every actor at the head: %s", reply.raw);
    cr_assert_eq (pond_http_json_number (reply.json, "head"), 5);
    const char *expected [] = { "store",      "broker",      "quack-counter", "badge-granter",
                                "alexa-view", "mobile-view", "gateway" };
    cJSON *processes = cJSON_GetObjectItem (reply.json, "processes");
    cr_assert_eq (cJSON_GetArraySize (processes), 7, "%s", reply.raw);
    for (int i = 0; i < 7; i++) {
        cJSON *process = cJSON_GetArrayItem (processes, i);
        cr_assert_str_eq (pond_http_json_string (process, "name"), expected [i]);
        cr_assert_eq (pond_http_json_number (process, "restarts"), 0, "%s", reply.raw);
        cr_assert (cJSON_IsTrue (cJSON_GetObjectItem (process, "ready")), "%s", reply.raw);
    }
    cr_assert_eq (pond_http_json_number (cJSON_GetArrayItem (processes, 0), "position"), 5);
    cJSON *latest = cJSON_GetObjectItem (reply.json, "latest");
    cr_assert_eq (cJSON_GetArraySize (latest), 3, "newest 3: %s", reply.raw);
    cr_assert_eq (pond_http_json_number (cJSON_GetArrayItem (latest, 0), "seq"), 5);
    cr_assert_eq (pond_http_json_number (cJSON_GetArrayItem (latest, 2), "seq"), 3);
    cr_assert_str_eq (
        pond_http_json_string (cJSON_GetObjectItem (reply.json, "supervisor"), "state"), "up");
    cr_assert (cJSON_GetObjectItem (cJSON_GetObjectItem (reply.json, "stats"), "broker"));
    pond_http_reply_free (&reply);

    //  The page, embedded
    reply = pond_http_request (port, "GET", "/", NULL, NULL);
    cr_assert_eq (reply.status, 200, "%s", reply.raw);
    char type [64];
    cr_assert (pond_http_header (&reply, "Content-Type", type, sizeof type)
               && strncmp (type, "text/html", 9) == 0);
    cr_assert (strstr (reply.body, "/v1/status") && !strstr (reply.body, "src=\"http"),
               "the page reads /v1/status and loads nothing from elsewhere");
    pond_http_reply_free (&reply);
}

Test (status, broker_stopped_is_said_and_bad_requests_refused)
{
    s_up (false);
    pid_t broker = s_pid_of ("broker");
    cr_assert_gt (broker, 0);
    cr_assert_eq (kill (broker, SIGSTOP), 0);
    pond_http_reply_t reply = pond_http_request (port, "GET", "/v1/status", NULL, NULL);
    kill (broker, SIGCONT);
    cr_assert_eq (reply.status, 200, "a broker down is a status: %s", reply.raw);
    cJSON *part = cJSON_GetObjectItem (reply.json, "broker");
    cr_assert (cJSON_IsFalse (cJSON_GetObjectItem (part, "up")), "%s", reply.raw);
    cr_assert (pond_http_json_string (part, "error")
                   && strstr (pond_http_json_string (part, "error"), "no reply"),
               "%s", reply.raw);
    cr_assert (cJSON_IsNull (cJSON_GetObjectItem (reply.json, "head")), "%s", reply.raw);
    cr_assert (pond_http_json_string (reply.json, "latest_error"), "%s", reply.raw);
    pond_http_reply_free (&reply);

    //  Back: up again
    int64_t deadline = zclock_mono () + 10000;
    bool up = false;
    while (!up && zclock_mono () < deadline) {
        reply = pond_http_request (port, "GET", "/v1/status", NULL, NULL);
        up = cJSON_IsTrue (cJSON_GetObjectItem (cJSON_GetObjectItem (reply.json, "broker"), "up"));
        pond_http_reply_free (&reply);
    }
    cr_assert (up, "the broker answers again");

    struct {
        const char *method, *path;
        int status;
        const char *says;
    } cases [] = {
        { "GET", "/v1/status?latest=abc", 400, "latest takes" },
        { "GET", "/v1/status?latest=-1", 400, "latest takes" },
        { "GET", "/v1/status?latest=101", 400, "latest takes" },
        { "POST", "/v1/status", 405, "GET" },
        { "DELETE", "/", 405, "GET" },
        { "GET", "/index.php", 404, "no such path" },
        { "GET", "/v1/statusx", 404, "no such path" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        reply = pond_http_request (port, cases [i].method, cases [i].path, NULL, NULL);
        s_refused (&reply, cases [i].status, cases [i].says);
        pond_http_reply_free (&reply);
    }
}

Test (status, local_mode_off_loopback_is_warned)
{
    //  No mesh needed: the gateway starts, says so, and is stopped
    char log [700], ready [700];
    snprintf (log, sizeof log, "%s/gateway.log", dir);
    snprintf (ready, sizeof ready, "%s/gateway.zpl", data);
    pid_t gateway = pond_harness_spawn ("pond-gateway", log, "--data", data, "--listen",
                                        "0.0.0.0:0", NULL);
    cr_assert_gt (gateway, 0);
    int found = pond_harness_wait_file (ready, 10000);
    int warned = pond_harness_wait_text (log, "no --keys: whoever reaches 0.0.0.0:0", 5000);
    pond_harness_stop (gateway, SIGTERM);
    cr_assert_eq (found, 0, "the gateway started");
    cr_assert_eq (warned, 0, "the gateway warns that it serves without tokens off loopback");
}

//  =====================================================================
//  pond_gateway_auth itself: who a thread speaks as, sessions, bounds

TestSuite (auth, .init = s_setup, .fini = s_teardown, .timeout = 60);

#define APPS 4

typedef struct {
    pond_gateway_auth_t *auth;
    const char *header;
    char as [64];    //  what pond_keys_as said in the thread
    unsigned status;
} other_t;

//  A second thread serving a request with header
static void *
s_other (void *args)
{
    other_t *other = (other_t *) args;
    char reason [256];
    pond_gateway_session_t *session = pond_gateway_auth_begin (
        other->auth, other->header, &other->status, reason, sizeof reason);
    if (session) {
        other->status = 200;
        snprintf (other->as, sizeof other->as, "%s", pond_keys_as () ? pond_keys_as () : "");
        pond_gateway_auth_end (other->auth, &session);
    }
    return NULL;
}

Test (auth, each_token_speaks_as_its_key_in_its_thread_only)
{
    char err [512];
    cr_assert_eq (pond_keys_create (keys, "broker", "broker", NULL, 0, err, sizeof err), 0, "%s",
                  err);
    const char *anna [] = { "anna" };
    char names [APPS][32], headers [APPS][POND_TOKEN_MAX + 32];
    for (int i = 0; i < APPS; i++) {
        snprintf (names [i], sizeof names [i], "app-%d", i);
        cr_assert_eq (pond_keys_create (keys, "app", names [i], anna, 1, err, sizeof err), 0, "%s",
                      err);
        char token [POND_TOKEN_MAX + 1];
        cr_assert_eq (pond_tokens_issue (keys, names [i], token, sizeof token, err, sizeof err), 0,
                      "%s", err);
        snprintf (headers [i], sizeof headers [i], "Bearer %s", token);
    }
    //  Two sessions kept for four keys: every round evicts, each request
    //  still speaks as its own key, and the thread speaks as before after
    pond_gateway_auth_t *auth = pond_gateway_auth_new (data, keys, 2);
    cr_assert_not_null (auth);
    cr_assert (pond_gateway_auth_keys (auth));
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < APPS; i++) {
            unsigned status = 0;
            char reason [256];
            pond_gateway_session_t *session = pond_gateway_auth_begin (auth, headers [i], &status,
                                                                       reason, sizeof reason);
            cr_assert_not_null (session, "%s: %u %s", names [i], status, reason);
            cr_assert_str_eq (pond_keys_as (), names [i]);
            cr_assert_str_eq (pond_gateway_auth_key (auth), names [i]);
            cr_assert (pond_keys_active ());
            //  Another thread serving another key meanwhile speaks as that one
            other_t other = { auth, headers [(i + 1) % APPS], "", 0 };
            pthread_t thread;
            cr_assert_eq (pthread_create (&thread, NULL, s_other, &other), 0);
            pthread_join (thread, NULL);
            cr_assert_eq (other.status, 200);
            cr_assert_str_eq (other.as, names [(i + 1) % APPS]);
            //  ... and so does one serving the same key: a session of its own
            other_t same = { auth, headers [i], "", 0 };
            cr_assert_eq (pthread_create (&thread, NULL, s_other, &same), 0);
            pthread_join (thread, NULL);
            cr_assert_eq (same.status, 200);
            cr_assert_str_eq (same.as, names [i]);
            cr_assert_str_eq (pond_keys_as (), names [i], "this thread still speaks as its key");
            pond_gateway_auth_end (auth, &session);
            cr_assert_null (session);
            cr_assert_null (pond_keys_as (), "back to the process's identity (none)");
            cr_assert_null (pond_gateway_auth_key (auth));
        }
    //  A key whose secret half is gone cannot be served: 500, said why
    char path [700];
    snprintf (path, sizeof path, "%s/secret/app-3.cert_secret", keys);
    cr_assert_eq (unlink (path), 0);
    unsigned status = 0;
    char reason [512];
    pond_gateway_session_t *session = NULL;
    //  Its kept session (if any) is of the old file: not used
    for (int i = 0; i < 2; i++) {
        session = pond_gateway_auth_begin (auth, headers [3], &status, reason, sizeof reason);
        cr_assert_null (session);
        cr_assert_eq (status, 500, "%u %s", status, reason);
        cr_assert (strstr (reason, "app-3"), "%s", reason);
    }
    //  No header, another scheme: 401
    cr_assert_null (pond_gateway_auth_begin (auth, NULL, &status, reason, sizeof reason));
    cr_assert_eq (status, 401);
    cr_assert_null (pond_gateway_auth_begin (auth, "Basic eDp5", &status, reason, sizeof reason));
    cr_assert_eq (status, 401);
    cr_assert_null (pond_keys_as ());
    pond_gateway_auth_destroy (&auth);
    cr_assert_null (auth);

    //  Local mode: no token, no key, whatever the header says
    auth = pond_gateway_auth_new (data, NULL, 1);
    cr_assert_not_null (auth);
    cr_assert_not (pond_gateway_auth_keys (auth));
    session = pond_gateway_auth_begin (auth, headers [0], &status, reason, sizeof reason);
    cr_assert_not_null (session);
    cr_assert_null (pond_keys_as ());
    cr_assert_null (pond_gateway_auth_key (auth));
    pond_gateway_auth_end (auth, &session);
    pond_gateway_auth_destroy (&auth);
}
