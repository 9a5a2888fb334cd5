/*  pond_gateway_commands: commands over HTTP. See pond_gateway_commands.h
    and README.md, "pond-gateway: HTTP/JSON".
*/
#include "pond_gateway_commands.h"
#include "pond_command_link.h"
#include "pond_uuid.h"

#include <cjson/cJSON.h>
#include <czmq.h>
#include <limits.h>
#include <microhttpd.h>
#include <unistd.h>

#define RULES_NAME_MAX 64

//  reply = status with the tree as one line (takes the tree)
static bool
s_json (pond_gateway_commands_reply_t *reply, unsigned status, cJSON *root, unsigned retry_after_s)
{
    char *json = root ? cJSON_PrintUnformatted (root) : NULL;
    cJSON_Delete (root);
    reply->status = status;
    reply->body = zsys_sprintf ("%s\n", json ? json : "{}");
    reply->retry_after_s = retry_after_s;
    free (json);
    return true;
}

static bool s_error (pond_gateway_commands_reply_t *reply, unsigned status, unsigned retry_after_s,
                     const char *format, ...) __attribute__ ((format (printf, 4, 5)));

//  reply = {"code":status,"error":reason}
static bool
s_error (pond_gateway_commands_reply_t *reply, unsigned status, unsigned retry_after_s,
         const char *format, ...)
{
    char reason [POND_REASON_MAX + 256];
    va_list args;
    va_start (args, format);
    vsnprintf (reason, sizeof reason, format, args);
    va_end (args);
    cJSON *root = cJSON_CreateObject ();
    cJSON_AddNumberToObject (root, "code", status);
    cJSON_AddStringToObject (root, "error", reason);
    return s_json (reply, status, root, retry_after_s);
}

//  reply = the broker's failure, as the gateway maps protocol codes
static bool
s_failure (pond_gateway_commands_reply_t *reply, const pond_command_failure_t *failure)
{
    int code = failure->code;
    if (code == POND_CODE_UNAVAILABLE)
        return s_error (reply, 503, failure->retry_ms ? (failure->retry_ms + 999) / 1000 : 1, "%s",
                        failure->reason);
    if (code == POND_CODE_TIMEOUT || code == POND_CODE_INTERRUPTED)
        return s_error (reply, 503, 1, "%s", failure->reason);
    return s_error (reply, code >= 400 && code < 600 ? (unsigned) code : 502, 0, "%s",
                    failure->reason);
}

//  The rules named name (v1, v2: shipped with pond), read as JSON text
//  beside the binaries as pond recompute finds them. NULL if none.
static char *
s_rules_named (const char *name)
{
    if (!*name || strlen (name) >= RULES_NAME_MAX)
        return NULL;
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')
              || *c == '_' || *c == '-' || (*c == '.' && c != name)))
            return NULL;    //  a name, never a path
    char exe [PATH_MAX];
    ssize_t length = readlink ("/proc/self/exe", exe, sizeof exe - 1);
    const char *suffix = strstr (name, ".json") ? "" : ".json";
    char dirs [3][PATH_MAX] = { "", "", "" };
    if (length > 0) {
        exe [length] = 0;
        char *slash = strrchr (exe, '/');
        if (slash) {
            *slash = 0;
            snprintf (dirs [0], PATH_MAX, "%.3900s/../rules", exe);
            snprintf (dirs [1], PATH_MAX, "%.3900s/../share/pond/rules", exe);
        }
    }
#ifdef POND_RULES_DIR
    snprintf (dirs [2], PATH_MAX, "%s", POND_RULES_DIR);
#endif
    for (size_t i = 0; i < 3; i++) {
        if (!*dirs [i])
            continue;
        char path [PATH_MAX + RULES_NAME_MAX + 8];
        snprintf (path, sizeof path, "%.3900s/%.64s%s", dirs [i], name, suffix);
        if (access (path, R_OK))
            continue;
        zfile_t *file = zfile_new (NULL, path);
        zchunk_t *chunk = file && zfile_input (file) == 0
                            ? zfile_read (file, POND_COMMAND_ARGS_MAX, 0)
                            : NULL;
        char *text = chunk && zchunk_size (chunk) < POND_COMMAND_ARGS_MAX ? zchunk_strdup (chunk)
                                                                          : NULL;
        zchunk_destroy (&chunk);
        zfile_destroy (&file);
        return text;
    }
    return NULL;
}

//  POST /v1/commands
static bool
s_post (const char *control, int timeout_ms, const char *body, size_t size,
        pond_gateway_commands_reply_t *reply)
{
    cJSON *root = body && size ? cJSON_ParseWithLength (body, size) : NULL;
    if (!cJSON_IsObject (root)) {
        cJSON_Delete (root);
        return s_error (reply, 400, 0,
                        "the body must be one JSON object, like "
                        "{\"command\":\"recompute\",\"view\":\"badges\",\"rules\":\"v2\"}");
    }
    pond_command_t *command = (pond_command_t *) calloc (1, sizeof *command);
    if (!command) {
        cJSON_Delete (root);
        return s_error (reply, 503, 1, "out of memory");
    }
    bool done = false;
    const cJSON *item;
    cJSON_ArrayForEach (item, root) {
        const char *key = item->string;
        if (done)
            break;
        if (streq (key, "command") || streq (key, "view") || streq (key, "id")) {
            const char *text = cJSON_GetStringValue (item);
            if (!text)
                done = s_error (reply, 400, 0, "'%s' must be a string", key);
            else if (streq (key, "id")) {
                if (pond_uuid_parse (text, command->id))
                    done = s_error (reply, 400, 0, "'id' must be a UUID, like %s",
                                    "018f3a5b-6c7d-7e8f-90a1-b2c3d4e5f607");
                command->has_id = true;
            }
            else if (strlen (text) >= POND_COMMAND_NAME_MAX)
                done = s_error (reply, 400, 0, "'%s' is longer than %d bytes", key,
                                POND_COMMAND_NAME_MAX - 1);
            else
                strcpy (streq (key, "command") ? command->command : command->view, text);
        }
        else if (streq (key, "rules")) {
            //  The rules themselves, or the name of rules shipped with pond
            char *text = NULL;
            if (cJSON_IsObject (item))
                text = cJSON_PrintUnformatted (item);
            else if (cJSON_IsString (item)) {
                text = s_rules_named (item->valuestring);
                if (!text) {
                    done = s_error (reply, 400, 0,
                                    "no rules named '%.64s' (v1, v2, or give the rules as a JSON "
                                    "object)",
                                    item->valuestring);
                    continue;
                }
            }
            else {
                done = s_error (reply, 400, 0,
                                "'rules' must be a string (v1, v2) or the rules as a JSON object");
                continue;
            }
            if (!text || strlen (text) >= sizeof command->args)
                done = s_error (reply, 413, 0, "the rules are over %d bytes",
                                POND_COMMAND_ARGS_MAX - 1);
            else
                strcpy (command->args, text);
            free (text);
        }
        else
            done = s_error (reply, 400, 0,
                            "unknown key '%.64s' (command, view, rules and id are known)", key);
    }
    cJSON_Delete (root);
    if (!done && !*command->command)
        done = s_error (reply, 400, 0, "'command' is required (recompute or rebuild)");
    else if (!done && !*command->view)
        done = s_error (reply, 400, 0,
                        "'view' is required (quacks, badges, alexa, mobile, or an actor's name)");
    else if (!done && streq (command->command, "recompute") && !*command->args)
        done = s_error (reply, 400, 0, "recompute takes 'rules' (v1, v2, or a JSON object)");
    pond_command_status_t *status = done ? NULL : (pond_command_status_t *) malloc (sizeof *status);
    if (!done && !status)
        done = s_error (reply, 503, 1, "out of memory");
    if (!done) {
        pond_command_failure_t failure;
        if (pond_command_link_submit (control, command, timeout_ms, status, &failure))
            done = s_failure (reply, &failure);
        else {
            cJSON *tree = pond_command_link_json (status);
            if (tree)
                cJSON_AddBoolToObject (tree, "dup", status->dup);
            done = s_json (reply, 202, tree, 0);
        }
    }
    free (status);
    free (command);
    return done;
}

//  GET /v1/commands/ID
static bool
s_get (const char *control, int timeout_ms, const char *text, pond_gateway_commands_reply_t *reply)
{
    uint8_t id [POND_ID_SIZE];
    if (pond_uuid_parse (text, id))
        return s_error (reply, 400, 0,
                        "'%.64s' is not a command id (a UUID, as POST /v1/commands "
                        "answered it)",
                        text);
    pond_command_status_t *status = (pond_command_status_t *) malloc (sizeof *status);
    if (!status)
        return s_error (reply, 503, 1, "out of memory");
    pond_command_failure_t failure;
    bool done;
    if (pond_command_link_status (control, id, timeout_ms, status, &failure))
        done = s_failure (reply, &failure);
    else
        done = s_json (reply, 200, pond_command_link_json (status), 0);
    free (status);
    return done;
}

bool
pond_gateway_commands_route (const char *control, int timeout_ms, const char *url,
                             const char *method, const char *body, size_t size, bool too_large,
                             pond_gateway_commands_reply_t *reply)
{
    memset (reply, 0, sizeof *reply);
    bool collection = streq (url, "/v1/commands");
    bool one = strncmp (url, "/v1/commands/", 13) == 0;
    if (!collection && !one)
        return false;
    bool get = streq (method, MHD_HTTP_METHOD_GET) || streq (method, MHD_HTTP_METHOD_HEAD);
    if (collection && !streq (method, MHD_HTTP_METHOD_POST)) {
        reply->allow = "POST";
        return s_error (reply, 405, 0, "use POST /v1/commands");
    }
    if (one && !get) {
        reply->allow = "GET, HEAD";
        return s_error (reply, 405, 0, "use GET /v1/commands/ID");
    }
    if (too_large)
        return s_error (reply, 413, 0, "the body is over the gateway's limit (--max-body)");
    if (!control)
        return s_error (reply, 500, 0, "the data directory's path is too long");
    return collection ? s_post (control, timeout_ms, body, size, reply)
                      : s_get (control, timeout_ms, url + 13, reply);
}
