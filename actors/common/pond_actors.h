/*  pond_actors: what the four actors of pond share (quack-counter,
    badge-granter, alexa-view, mobile-view), in its own static library
    (pond_actors, actors/common) that each actor's library links.

    Each actor is a pond_actor_spec_t (actors/runtime/pond_actor.h) filled
    by pond_NAME_spec (declared in the actor's own header); its main only
    hands that spec to pond_actor_main.
    The helpers below read an event's schemaless data leniently (a missing
    or odd field is skipped, never fatal), keep whole numbers exact in the
    JSON documents of a view, and count the events a view cannot apply.
*/
#ifndef POND_ACTORS_H_INCLUDED
#define POND_ACTORS_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "pond_actor.h"
#include "pond_event.h"
#include "pond_view.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Key prefix of the per-customer documents in every actor's view; the
//  entity of an event is the customer id.
#define POND_ACTORS_CUSTOMER_PREFIX "customer/"
//  Key of the document counting events a view skipped
#define POND_ACTORS_SKIPPED_KEY     "skipped"
//  Room for "customer/" + entity
#define POND_ACTORS_KEY_MAX         (POND_ENTITY_MAX + 16)

//  Room for the data strs the actors read (labels, containers, badges)
//  without allocating; longer ones are copied to the heap
#define POND_ACTORS_TEXT_MAX        256

//  The str field key of the event's data as a C string (cut at a NUL byte,
//  as a JSON reader would): in buf (size bytes) when it fits, else in a
//  heap copy. Returns NULL if absent, not a str, empty, or memory runs
//  out. Read straight from the msgpack (pond_event_data), no tree built.
//  Release with pond_actors_text_free (text, buf).
char *
    pond_actors_text (const pond_event_t *event, const char *key, char *buf, size_t size);
void
    pond_actors_text_free (char *text, const char *buf);

//  The whole non-negative number field key of the event's data: any
//  msgpack int from 0 up (exact), or a float holding a whole number up to
//  2^53. Returns 0, or -1 if absent or anything else.
int
    pond_actors_data_uint (const pond_event_t *event, const char *key, uint64_t *value_p);

//  The event's data map as a cJSON object: an empty object when the event
//  has no data (or data that is not a map). Caller owns the tree; NULL
//  only if memory runs out. Only for data read as a whole (the badge
//  rules of BADGE_RULES_CHANGED); read fields with the two above.
cJSON *
    pond_actors_data (const pond_event_t *event);

//  The string field name of obj, or NULL if absent, not a string or empty.
const char *
    pond_actors_string (const cJSON *obj, const char *name);

//  The whole non-negative number field name of obj into *value_p.
//  Returns 0, or -1 if absent, not a number, negative or fractional.
int
    pond_actors_uint (const cJSON *obj, const char *name, uint64_t *value_p);

//  Set field name of obj (replacing any) to an exact unsigned integer or
//  to a string. Returns 0, or -1 if memory runs out.
int
    pond_actors_set_uint (cJSON *obj, const char *name, uint64_t value);
int
    pond_actors_set_string (cJSON *obj, const char *name, const char *value);

//  The object field name of obj, added (empty) if absent or not an object.
//  Returns NULL only if memory runs out.
cJSON *
    pond_actors_object (cJSON *obj, const char *name);

//  Insert item (with its key, if any) into the array or object parent so
//  that it becomes child number index (appended if index is past the
//  end). Takes ownership of item. Use it instead of
//  cJSON_InsertItemInArray, which fails silently in the middle of a list
//  in Debian 12's cJSON (1.7.15-1+deb12u4).
void
    pond_actors_insert (cJSON *parent, int index, cJSON *item);

//  Render a tree as compact JSON with every whole number written exactly
//  (cJSON alone writes 1640995200000000 as 1.6409952e+15). Caller frees.
char *
    pond_actors_print (cJSON *tree);

//  Write "customer/ENTITY" into key. Returns 0, or -1 if entity is empty
//  or too long.
int
    pond_actors_customer_key (const char *entity, char *key, size_t size);

//  The document of the customer a query names, for the query handlers:
//  returns it (caller deletes), or NULL with the error set: 400 without a
//  customer id, 404 "customer 'ID' <unknown>" when the view has none.
cJSON *
    pond_actors_customer_doc (pond_actor_t *actor, pond_view_t *view, const char *entity,
                              const char *unknown);

//  Store a document (whole numbers exact, see pond_actors_print).
//  Returns 0 or -1.
int
    pond_actors_put (pond_view_t *view, const char *key, cJSON *doc);

//  As pond_actors_put, but takes the document (pond_view_put_take) and
//  nulls the caller's pointer, whatever the outcome.
int
    pond_actors_put_take (pond_view_t *view, const char *key, cJSON **doc_p);

//  An event this view cannot apply sensibly (e.g. LABEL_ADDED without a
//  label): log it and count it in the view's "skipped" document
//  {"count", "last_seq", "last_name", "last_reason"}, in the same write as
//  the event's seq, so a rebuild counts the same. Returns 0 (the event is
//  ignored, not refused) or -1 if the view could not be written.
int
    pond_actors_skip (pond_view_t *view, const pond_event_t *event, const char *reason);

//  pond_actor_set_error that also works without an actor (in-process
//  tests pass NULL): then the error is only logged at debug level.
void
    pond_actors_error (pond_actor_t *actor, int code, const char *format, ...)
        __attribute__ ((format (printf, 3, 4)));

#ifdef __cplusplus
}
#endif

#endif
