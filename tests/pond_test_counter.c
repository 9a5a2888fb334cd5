/*  pond-test-counter: the smallest real actor, for the runtime's tests.

    It counts events per entity and per name: view documents
    "entity/ENTITY" = {"total": n, "names": {NAME: n, ...}} and
    "name/NAME" = {"count": n}. A TEST_PING makes it emit one TEST_PONG for
    the same entity, with an id derived from the ping's, so replaying the
    ping (after a crash, in a rebuild) never emits a second pong.
    QUERY ENTITY answers that entity's document; COMMAND "count" counts the
    entities (with PROGRESS); other commands are unknown (404).
*/
#include "pond_actor.h"

#include <czmq.h>

static const char *const s_names [] = { "TEST_A", "TEST_B", "TEST_PING", "TEST_PONG", NULL };

//  Add one to doc [field] (a number), creating it if needed.
static void
s_increment (cJSON *doc, const char *field)
{
    cJSON *count = cJSON_GetObjectItemCaseSensitive (doc, field);
    if (cJSON_IsNumber (count))
        cJSON_SetNumberValue (count, count->valuedouble + 1);
    else
        cJSON_AddNumberToObject (doc, field, 1);
}

static int
s_apply (pond_actor_t *actor, pond_view_t *view, const pond_event_t *event, void *state)
{
    (void) state;
    const char *name = pond_event_name (event);
    char key [256];
    snprintf (key, sizeof key, "entity/%s", pond_event_entity (event));
    cJSON *doc = pond_view_get (view, key);
    if (!doc)
        doc = cJSON_CreateObject ();
    s_increment (doc, "total");
    cJSON *names = cJSON_GetObjectItemCaseSensitive (doc, "names");
    if (!names)
        names = cJSON_AddObjectToObject (doc, "names");
    s_increment (names, name);
    int rc = pond_view_put (view, key, doc);
    cJSON_Delete (doc);

    snprintf (key, sizeof key, "name/%s", name);
    doc = pond_view_get (view, key);
    if (!doc)
        doc = cJSON_CreateObject ();
    s_increment (doc, "count");
    if (rc == 0)
        rc = pond_view_put (view, key, doc);
    cJSON_Delete (doc);

    if (rc == 0 && streq (name, "TEST_PING")) {
        pond_event_t *pong = pond_event_new ("TEST_PONG", pond_event_entity (event));
        uint8_t id [POND_ID_SIZE];
        pond_actor_derive_id (pond_event_id (event), "pong", id);
        pond_event_set_id (pong, id);
        pond_event_set_causation (pong, pond_event_id (event));
        pond_event_set_ts (pong, pond_event_ts (event));
        rc = pond_actor_emit (actor, pong);
        pond_event_destroy (&pong);
    }
    return rc;
}

static char *
s_query (pond_actor_t *actor, pond_view_t *view, const char *entity, const char *text, void *state)
{
    (void) actor;
    (void) text;
    (void) state;
    char key [256];
    snprintf (key, sizeof key, "entity/%s", entity);
    cJSON *doc = pond_view_get (view, key);
    if (!doc)
        return NULL;    //  the runtime answers 404
    char *json = cJSON_PrintUnformatted (doc);
    cJSON_Delete (doc);
    return json;
}

static int
s_count_one (const char *key, const cJSON *doc, void *arg)
{
    (void) key;
    (void) doc;
    (*(size_t *) arg)++;
    return 0;
}

static char *
s_command (pond_actor_t *actor, pond_view_t *view, const char *command, const char *args,
           void *state)
{
    (void) args;
    (void) state;
    if (!streq (command, "count"))
        return NULL;    //  the runtime answers 404
    size_t count = 0;
    if (pond_view_scan (view, "entity/", s_count_one, &count)) {
        pond_actor_set_error (actor, 500, "cannot scan the view");
        return NULL;
    }
    pond_actor_progress (actor, count, count);
    return zsys_sprintf ("{\"entities\":%zu}", count);
}

int
main (int argc, char *argv [])
{
    pond_actor_spec_t spec = {
        .name = "test-counter",
        .names = s_names,
        .description = "Counts TEST_A, TEST_B, TEST_PING and TEST_PONG events per entity "
                       "and per name;\nanswers an entity's counts. Emits one TEST_PONG per "
                       "TEST_PING. For tests.",
        .apply = s_apply,
        .query = s_query,
        .command = s_command,
    };
    return pond_actor_main (&spec, argc, argv, NULL);
}
