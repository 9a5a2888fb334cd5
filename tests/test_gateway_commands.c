/*  test_gateway_commands: POST /v1/commands and GET /v1/commands/{id} of
    pond-gateway, with the real binaries (store, broker, the quack counter,
    the gateway) in a fresh directory, over raw TCP as any HTTP client:
    202 and the status through to done, a command whose actor is not
    running through to failed, and every refusal (malformed JSON, unknown
    command, wrong-typed or unknown keys: 400; unknown view or id: 404;
    wrong method: 405).
*/
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <czmq.h>
#include <signal.h>

#include "pond_client.h"
#include "pond_harness.h"
#include "pond_test_http.h"

static pond_mesh_t *mesh;
static pid_t counter;
static pid_t gateway;
static int port;

static void
s_setup (void)
{
    mesh = pond_harness_mesh_up ();
    char log [512];
    counter = pond_harness_start_actor ("quack-counter", mesh->dir);
    cr_assert_gt (counter, 0, "the quack counter must start");
    snprintf (log, sizeof log, "%s/gateway.log", mesh->dir);
    gateway = pond_http_gateway_start (mesh->dir, log, &port, NULL);
    cr_assert_gt (gateway, 0);
    cr_assert_gt (port, 0, "the gateway must write gateway.zpl");
}

static void
s_teardown (void)
{
    pond_harness_stop (gateway, SIGTERM);
    pond_harness_stop (counter, SIGTERM);
    pond_mesh_destroy (&mesh);
}

TestSuite (gateway_commands, .init = s_setup, .fini = s_teardown, .timeout = 60);

//  One request on a fresh connection (Connection: close)
static pond_http_reply_t
s_request (const char *method, const char *path, const char *body)
{
    return pond_http_request (port, method, path, NULL, body);
}

//  A refusal: status and {"code": status, "error": ... what ...}
static void
s_refused (const char *method, const char *path, const char *body, int status, const char *what)
{
    pond_http_reply_t reply = s_request (method, path, body);
    cr_assert_eq (reply.status, status, "%s %s %s: %s", method, path, body ? body : "", reply.raw);
    cr_assert_not_null (reply.json, "a JSON body: %s", reply.raw);
    cr_assert_eq (cJSON_GetNumberValue (cJSON_GetObjectItem (reply.json, "code")), status, "%s",
                  reply.raw);
    const char *error = pond_http_json_string (reply.json, "error");
    cr_assert (error && strstr (error, what), "the reason names '%s': %s", what, reply.raw);
    pond_http_reply_free (&reply);
}

//  GET /v1/commands/ID until done or failed; returns the last reply
static pond_http_reply_t
s_until_final (const char *id)
{
    char path [128];
    snprintf (path, sizeof path, "/v1/commands/%s", id);
    for (int i = 0; i < 200; i++) {
        pond_http_reply_t reply = s_request ("GET", path, NULL);
        cr_assert_eq (reply.status, 200, "%s", reply.raw);
        const char *status = pond_http_json_string (reply.json, "status");
        cr_assert (status, "%s", reply.raw);
        if (streq (status, "done") || streq (status, "failed"))
            return reply;
        cr_assert (streq (status, "accepted") || streq (status, "running"), "%s", reply.raw);
        cr_assert (cJSON_IsObject (cJSON_GetObjectItem (reply.json, "progress")), "%s", reply.raw);
        pond_http_reply_free (&reply);
        zclock_sleep (50);
    }
    cr_assert_fail ("the command never finished");
    return (pond_http_reply_t) { 0 };
}

Test (gateway_commands, rebuild_accepted_then_done)
{
    pond_http_reply_t reply = s_request ("POST", "/v1/commands",
                                         "{\"command\":\"rebuild\",\"view\":\"quacks\",\"id\":"
                                         "\"018f3a5b-6c7d-7e8f-90a1-b2c3d4e5f6aa\"}");
    cr_assert_eq (reply.status, 202, "%s", reply.raw);
    cr_assert_str_eq (pond_http_json_string (reply.json, "id"),
                      "018f3a5b-6c7d-7e8f-90a1-b2c3d4e5f6aa");
    cr_assert_str_eq (pond_http_json_string (reply.json, "status"), "accepted", "%s", reply.raw);
    pond_http_reply_free (&reply);
    reply = s_until_final ("018f3a5b-6c7d-7e8f-90a1-b2c3d4e5f6aa");
    cr_assert_str_eq (pond_http_json_string (reply.json, "status"), "done", "%s", reply.raw);
    cr_assert_str_eq (pond_http_json_string (reply.json, "view"), "quack-counter");
    cJSON *result = cJSON_GetObjectItem (reply.json, "result");
    cr_assert (cJSON_IsObject (result), "the actor's result as JSON: %s", reply.raw);
    cr_assert_str_eq (pond_http_json_string (result, "command"), "rebuild");
    cr_assert (cJSON_IsNumber (cJSON_GetObjectItem (reply.json, "finished")), "%s", reply.raw);
    pond_http_reply_free (&reply);
    //  Sent again with its id: the same command's status, nothing runs
    reply = s_request ("POST", "/v1/commands",
                       "{\"command\":\"rebuild\",\"view\":\"quacks\",\"id\":"
                       "\"018f3a5b-6c7d-7e8f-90a1-b2c3d4e5f6aa\"}");
    cr_assert_eq (reply.status, 202, "%s", reply.raw);
    cr_assert_str_eq (pond_http_json_string (reply.json, "status"), "done", "%s", reply.raw);
    cr_assert (cJSON_IsTrue (cJSON_GetObjectItem (reply.json, "dup")), "%s", reply.raw);
    pond_http_reply_free (&reply);
}

Test (gateway_commands, recompute_without_badge_granter_fails_with_reason)
{
    pond_http_reply_t reply = s_request (
        "POST", "/v1/commands", "{\"command\":\"recompute\",\"view\":\"badges\",\"rules\":\"v2\"}");
    cr_assert_eq (reply.status, 202, "%s", reply.raw);
    char id [64];
    snprintf (id, sizeof id, "%s", pond_http_json_string (reply.json, "id"));
    pond_http_reply_free (&reply);
    reply = s_until_final (id);
    cr_assert_str_eq (pond_http_json_string (reply.json, "status"), "failed", "%s", reply.raw);
    cr_assert_eq (cJSON_GetNumberValue (cJSON_GetObjectItem (reply.json, "code")), 503);
    cr_assert (
        strstr (pond_http_json_string (reply.json, "reason"), "badge-granter is not running"), "%s",
        reply.raw);
    pond_http_reply_free (&reply);
}

Test (gateway_commands, refusals)
{
    s_refused ("POST", "/v1/commands", "{\"command\":", 400, "one JSON object");
    s_refused ("POST", "/v1/commands", "[1,2]", 400, "one JSON object");
    s_refused ("POST", "/v1/commands", "{\"command\":\"explode\",\"view\":\"quacks\"}", 400,
               "unknown command 'explode'");
    s_refused ("POST", "/v1/commands", "{\"command\":5,\"view\":\"quacks\"}", 400,
               "'command' must be a string");
    s_refused ("POST", "/v1/commands", "{\"command\":\"rebuild\",\"view\":[]}", 400,
               "'view' must be a string");
    s_refused ("POST", "/v1/commands",
               "{\"command\":\"recompute\",\"view\":\"badges\",\"rules\":5}", 400,
               "'rules' must be a string");
    s_refused ("POST", "/v1/commands",
               "{\"command\":\"recompute\",\"view\":\"badges\",\"rules\":\"../../etc/passwd\"}",
               400, "no rules named");
    s_refused ("POST", "/v1/commands", "{\"command\":\"rebuild\",\"view\":\"quacks\",\"id\":\"x\"}",
               400, "'id' must be a UUID");
    s_refused ("POST", "/v1/commands", "{\"command\":\"rebuild\",\"view\":\"quacks\",\"when\":1}",
               400, "unknown key 'when'");
    s_refused ("POST", "/v1/commands", "{\"command\":\"rebuild\"}", 400, "'view' is required");
    s_refused ("POST", "/v1/commands", "{\"command\":\"recompute\",\"view\":\"badges\"}", 400,
               "recompute takes 'rules'");
    s_refused ("POST", "/v1/commands", "{\"command\":\"rebuild\",\"view\":\"nosuch\"}", 404,
               "unknown view 'nosuch'");
    s_refused ("GET", "/v1/commands/018f3a5b-6c7d-7e8f-90a1-b2c3d4e5f6ff", NULL, 404,
               "unknown command id");
    s_refused ("GET", "/v1/commands/not-an-id", NULL, 400, "not a command id");
    s_refused ("GET", "/v1/commands", NULL, 405, "use POST");
    s_refused ("POST", "/v1/commands/018f3a5b-6c7d-7e8f-90a1-b2c3d4e5f6ff", "{}", 405, "use GET");
}
