/*  pond_event_json: an event from what a user writes, as text or JSON.

    The shape `pond publish --stdin` and pond-gateway take: one JSON object
    with name and entity (strings, required), data and meta (objects),
    source, id and causation (strings; ids are UUIDs), ts (a time text as
    pond_time_parse takes it, or whole microseconds). Other keys are
    refused, except seq and time, which are ignored (a line printed by
    pond tail or replay can be published again).
*/
#ifndef POND_EVENT_JSON_H_INCLUDED
#define POND_EVENT_JSON_H_INCLUDED

#include <cjson/cJSON.h>
#include <stddef.h>
#include "pond_event.h"

#ifdef __cplusplus
extern "C" {
#endif

//  What a user gives for one event, as text (NULL: not given)
typedef struct {
    const char *name;
    const char *entity;
    const char *data;    //  JSON object
    const char *meta;    //  JSON object
    const char *source;
    const char *ts;           //  as pond_time_parse takes it
    const char *id;           //  UUID
    const char *causation;    //  UUID
} pond_event_args_t;

//  Build and validate an event from text fields; ts defaults to now and id
//  to a fresh UUIDv7. Returns the event (caller owns it), or NULL with the
//  reason in err.
pond_event_t *
    pond_event_from_args (const pond_event_args_t *args, char *err, size_t errlen);

//  The same from one JSON object (not an object, a key of the wrong type,
//  an unknown key, name or entity missing: NULL with the reason in err).
pond_event_t *
    pond_event_from_json (const cJSON *object, char *err, size_t errlen);

//  The same from JSON text.
pond_event_t *
    pond_event_from_json_text (const char *text, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
