/*  pond_gateway_status: the status of a mesh, for people. See
    pond_gateway_status.h.

    The page itself is gateway/pond_status_page.html, turned into the C
    array pond_status_page_html by CMake (gateway/CMakeLists.txt) when the
    build is configured.
*/
#include "pond_gateway_status.h"
#include "pond_actor_link.h"
#include "pond_client.h"
#include "pond_views.h"

#include <cjson/cJSON.h>
#include <czmq.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

extern const unsigned char pond_status_page_html [];    //  generated (UTF-8)

const char *
pond_gateway_status_page (void)
{
    return (const char *) pond_status_page_html;
}

//  One process into processes: what the supervisor knows of it (config
//  may be NULL), and for an actor its STATUS
static void
s_process (cJSON *processes, const char *data_dir, const char *const *actors, const char *name,
           zconfig_t *config, const cJSON *stats, int wait_ms)
{
    cJSON *item = cJSON_CreateObject ();
    cJSON_AddStringToObject (item, "name", name);
    if (config) {
        cJSON_AddNumberToObject (item, "pid", atoi (zconfig_get (config, "pid", "0")));
        cJSON_AddBoolToObject (item, "ready", streq (zconfig_get (config, "ready", ""), "true"));
        cJSON_AddNumberToObject (item, "restarts", atoi (zconfig_get (config, "restarts", "0")));
        cJSON_AddStringToObject (item, "last_exit", zconfig_get (config, "last_exit", ""));
    }
    const cJSON *broker = cJSON_GetObjectItem (stats, "broker");
    const cJSON *store = cJSON_GetObjectItem (stats, "store");
    const cJSON *head = cJSON_GetObjectItem (broker, "head");
    if (streq (name, "store") || streq (name, "broker")) {
        const cJSON *part = streq (name, "store") ? store : broker;
        const cJSON *at = cJSON_GetObjectItem (part, "head");
        cJSON_AddStringToObject (item, "kind", name);
        cJSON_AddBoolToObject (item, "up", part != NULL);
        if (cJSON_IsNumber (at))
            cJSON_AddNumberToObject (item, "position", cJSON_GetNumberValue (at));
        cJSON_AddItemToArray (processes, item);
        return;
    }
    char err [512] = "";
    pond_actor_link_t *link = NULL;
    char path [PATH_MAX];
    snprintf (path, sizeof path, "%s/%s.zpl", data_dir, name);
    zconfig_t *ready = zsys_file_exists (path) ? zconfig_load (path) : NULL;
    bool actor = ready && zconfig_get (ready, "actor/query", NULL);
    zconfig_destroy (&ready);
    const char *given = NULL;    //  The query endpoint given, if any
    for (size_t i = 0; actors && i < POND_VIEWS; i++)
        if (streq (pond_views_actors [i], name) && actors [i] && *actors [i])
            given = actors [i];
    bool view = pond_views_actor (name) != NULL;
    cJSON_AddStringToObject (item, "kind", actor || view ? "actor" : "process");
    if (given)
        link = pond_actor_link_new_at (name, given, NULL, err, sizeof err);
    else if (actor)
        link = pond_actor_link_new (data_dir, name, err, sizeof err);
    else if (view && !given)
        snprintf (err, sizeof err, "%s is not running", name);
    char *text = link ? pond_actor_link_status (link, wait_ms) : NULL;
    cJSON *status = text ? cJSON_Parse (text) : NULL;
    const cJSON *position = cJSON_GetObjectItem (status, "position");
    if (cJSON_IsNumber (position)) {
        double at = cJSON_GetNumberValue (position);
        cJSON_AddBoolToObject (item, "up", true);
        cJSON_AddNumberToObject (item, "position", at);
        if (cJSON_IsNumber (head))
            cJSON_AddNumberToObject (
                item, "lag",
                cJSON_GetNumberValue (head) > at ? cJSON_GetNumberValue (head) - at : 0);
        cJSON_AddBoolToObject (item, "live", cJSON_IsTrue (cJSON_GetObjectItem (status, "live")));
    }
    else if (actor || view) {
        cJSON_AddBoolToObject (item, "up", false);
        cJSON_AddStringToObject (item, "error", link ? pond_actor_link_reason (link) : err);
    }
    cJSON_Delete (status);
    free (text);
    pond_actor_link_destroy (&link);
    cJSON_AddItemToArray (processes, item);
}

//  The last count events of the log (up to head) into root's "latest",
//  newest first, or "latest_error"
static void
s_latest (cJSON *root, const char *control, uint64_t head, size_t count, int wait_ms)
{
    pond_replay_req_t req;
    memset (&req, 0, sizeof req);
    req.from_seq = head > count ? head - count + 1 : 1;
    req.to_seq = head + 1;
    req.limit = count;
    cJSON *latest = cJSON_CreateArray ();
    pond_reader_t *reader = pond_reader_new (control, &req);
    pond_event_t *event;
    while (reader && (event = pond_reader_next (reader, wait_ms))) {
        //  The event's own text, as pond tail prints it (cJSON would print
        //  a 16-digit ts with an exponent)
        char *json = pond_event_to_json (event);
        cJSON *item = json ? cJSON_CreateRaw (json) : NULL;
        if (item)
            cJSON_InsertItemInArray (latest, 0, item);    //  newest first
        free (json);
        pond_event_destroy (&event);
    }
    int code = reader ? pond_reader_code (reader) : 0;
    if (!reader || code != 200)
        cJSON_AddStringToObject (root, "latest_error",
                                 reader ? pond_reader_reason (reader) : "cannot replay");
    cJSON_AddItemToObject (root, "latest", latest);
    pond_reader_destroy (&reader);
}

char *
pond_gateway_status_json (const char *data_dir, const char *control, const char *const *actors,
                          int wait_ms, size_t latest, unsigned *status_p, char *reason, size_t size)
{
    assert (data_dir);
    assert (control);
    //  The broker's STATS
    char err [POND_ERR_SIZE] = "";
    char *text = pond_client_stats (control, wait_ms, err, sizeof err);
    if (!text && strncmp (err, "403 ", 4) == 0) {
        *status_p = 403;
        snprintf (reason, size, "the status is for admin keys: the broker says %s", err + 4);
        return NULL;
    }
    cJSON *root = cJSON_CreateObject ();
    if (!root) {
        free (text);
        *status_p = 500;
        snprintf (reason, size, "out of memory");
        return NULL;
    }
    cJSON_AddNumberToObject (root, "time_ms", (double) zclock_time ());
    cJSON *stats = text ? cJSON_Parse (text) : NULL;
    free (text);
    cJSON *broker = cJSON_AddObjectToObject (root, "broker");
    cJSON_AddBoolToObject (broker, "up", stats != NULL);
    if (!stats)
        cJSON_AddStringToObject (broker, "error", err);
    const cJSON *head = cJSON_GetObjectItem (cJSON_GetObjectItem (stats, "broker"), "head");
    if (cJSON_IsNumber (head))
        cJSON_AddNumberToObject (root, "head", cJSON_GetNumberValue (head));
    else
        cJSON_AddNullToObject (root, "head");
    //  The processes: the supervisor's, else the view actors
    char path [PATH_MAX];
    snprintf (path, sizeof path, "%s/supervisor.zpl", data_dir);
    zconfig_t *supervisor = zsys_file_exists (path) ? zconfig_load (path) : NULL;
    if (supervisor) {
        cJSON *part = cJSON_AddObjectToObject (root, "supervisor");
        cJSON_AddStringToObject (part, "state", zconfig_get (supervisor, "supervisor/state", ""));
        cJSON_AddNumberToObject (part, "pid",
                                 atoi (zconfig_get (supervisor, "supervisor/pid", "0")));
    }
    else
        cJSON_AddNullToObject (root, "supervisor");
    cJSON *processes = cJSON_AddArrayToObject (root, "processes");
    zconfig_t *process = zconfig_locate (supervisor, "process");
    zconfig_t *child = process ? zconfig_child (process) : NULL;
    for (; child; child = zconfig_next (child))
        s_process (processes, data_dir, actors, zconfig_name (child), child, stats, wait_ms);
    if (!child && !process) {
        s_process (processes, data_dir, actors, "store", NULL, stats, wait_ms);
        s_process (processes, data_dir, actors, "broker", NULL, stats, wait_ms);
        for (size_t i = 0; i < POND_VIEWS; i++)
            s_process (processes, data_dir, actors, pond_views_actors [i], NULL, stats, wait_ms);
    }
    zconfig_destroy (&supervisor);
    //  The latest events
    if (latest && cJSON_IsNumber (head) && cJSON_GetNumberValue (head) >= 1)
        s_latest (root, control, (uint64_t) cJSON_GetNumberValue (head), latest, wait_ms);
    else {
        cJSON_AddArrayToObject (root, "latest");
        if (latest && !stats)
            cJSON_AddStringToObject (root, "latest_error", "the broker did not answer");
    }
    if (stats)
        cJSON_AddItemToObject (root, "stats", stats);
    char *json = cJSON_PrintUnformatted (root);
    cJSON_Delete (root);
    if (!json) {
        *status_p = 500;
        snprintf (reason, size, "out of memory");
    }
    return json;
}
