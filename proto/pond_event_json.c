/*  pond_event_json: an event from what a user writes, as text or JSON.

    `pond publish` (its flags and its --stdin lines) and pond-gateway (POST
    /v1/events) take events from people and programs in the same shape:
    {"name", "entity", "data", "meta", "source", "ts", "id", "causation"},
    with "seq" and "time" (as tail and replay print them) ignored. One
    builder turns that into a validated pond_event_t, so both say the same
    thing about the same mistake.
*/
#include "pond_event_json.h"
#include "pond_time.h"
#include "pond_uuid.h"

#include <czmq.h>
#include <stdlib.h>
#include <string.h>

//  Build and validate an event from text. Returns it, or NULL with the
//  reason in err. Caller owns the event.
pond_event_t *
pond_event_from_args (const pond_event_args_t *args, char *err, size_t errlen)
{
    pond_event_t *event = pond_event_new (NULL, NULL);
    if (!event) {
        snprintf (err, errlen, "out of memory");
        return NULL;
    }
    uint8_t id [POND_ID_SIZE];
    uint8_t causation [POND_ID_SIZE];
    uint64_t ts;
    bool valid = false;
    if (pond_event_set_name (event, args->name))
        snprintf (err, errlen, "name must be 1 to %d characters", POND_NAME_MAX);
    else if (pond_event_set_entity (event, args->entity))
        snprintf (err, errlen, "entity must be 1 to %d bytes", POND_ENTITY_MAX);
    else if (args->source && pond_event_set_source (event, args->source))
        snprintf (err, errlen, "source must be 1 to %d bytes", POND_ENTITY_MAX);
    else if (args->data && pond_event_set_data_json (event, args->data, err, errlen))
        ;    //  err says why
    else if (args->meta && pond_event_set_meta_json (event, args->meta, err, errlen))
        ;
    else if (args->ts && pond_time_parse (args->ts, &ts))
        snprintf (err, errlen,
                  "ts '%s' is not a time (2022-01-01, "
                  "2022-01-01T10:30:00Z or microseconds)",
                  args->ts);
    else if (args->id && pond_uuid_parse (args->id, id))
        snprintf (err, errlen, "id '%s' is not a UUID", args->id);
    else if (args->causation && pond_uuid_parse (args->causation, causation))
        snprintf (err, errlen, "causation '%s' is not a UUID", args->causation);
    else {
        if (args->ts)
            pond_event_set_ts (event, ts);
        if (args->id)
            pond_event_set_id (event, id);
        if (args->causation)
            pond_event_set_causation (event, causation);
        valid = pond_event_validate (event, err, errlen) == 0;
    }
    if (!valid)
        pond_event_destroy (&event);
    return event;
}

//  Take one key of a JSON line into args (data and meta are rendered into
//  *data_p and *meta_p, ts numbers into ts [32]). Returns 0, or -1 with
//  the reason in err.
static int
s_event_key (const cJSON *item, pond_event_args_t *args, char **data_p, char **meta_p, char *ts,
             char *err, size_t errlen)
{
    const char *key = item->string;
    const char **text = streq (key, "name")      ? &args->name
                      : streq (key, "entity")    ? &args->entity
                      : streq (key, "source")    ? &args->source
                      : streq (key, "id")        ? &args->id
                      : streq (key, "causation") ? &args->causation
                                                 : NULL;
    if (text) {
        if (!cJSON_IsString (item)) {
            snprintf (err, errlen, "'%s' must be a string", key);
            return -1;
        }
        *text = item->valuestring;
    }
    else if (streq (key, "ts")) {
        double value = cJSON_GetNumberValue (item);
        if (cJSON_IsString (item))
            args->ts = item->valuestring;
        else if (cJSON_IsNumber (item) && value >= 1 && value <= 9007199254740992.0
                 && value == (double) (uint64_t) value) {
            snprintf (ts, 32, "%llu", (unsigned long long) value);
            args->ts = ts;
        }
        else {
            snprintf (err, errlen, "'ts' must be a time text or whole microseconds");
            return -1;
        }
    }
    else if (streq (key, "data") || streq (key, "meta")) {
        char **json = streq (key, "data") ? data_p : meta_p;
        if (!cJSON_IsObject (item)) {
            snprintf (err, errlen, "'%s' must be a JSON object", key);
            return -1;
        }
        free (*json);
        *json = cJSON_PrintUnformatted (item);
    }
    else if (!streq (key, "seq") && !streq (key, "time")) {
        snprintf (err, errlen, "unknown key '%s'", key);
        return -1;
    }
    return 0;
}
pond_event_t *
pond_event_from_json (const cJSON *object, char *err, size_t errlen)
{
    if (!cJSON_IsObject (object)) {
        snprintf (err, errlen, "not a JSON object");
        return NULL;
    }
    pond_event_args_t args = { 0 };
    char *data = NULL, *meta = NULL;
    char ts [32];
    int rc = 0;
    const cJSON *item;
    cJSON_ArrayForEach (item, object)
        if ((rc = s_event_key (item, &args, &data, &meta, ts, err, errlen)))
            break;
    if (rc == 0 && (!args.name || !args.entity)) {
        snprintf (err, errlen, "'%s' is missing", args.name ? "entity" : "name");
        rc = -1;
    }
    args.data = data;
    args.meta = meta;
    pond_event_t *event = rc == 0 ? pond_event_from_args (&args, err, errlen) : NULL;
    free (data);
    free (meta);
    return event;
}

pond_event_t *
pond_event_from_json_text (const char *text, char *err, size_t errlen)
{
    cJSON *root = cJSON_Parse (text);
    pond_event_t *event = pond_event_from_json (root, err, errlen);
    cJSON_Delete (root);
    return event;
}
