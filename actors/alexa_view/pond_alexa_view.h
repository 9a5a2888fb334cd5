/*  pond_alexa_view: answers spoken-style questions about a customer's
    food inventory.

    Applies LABEL_ADDED and LABEL_REMOVED (data {"label": "milk",
    "container": "c1"}, container optional). For this view LABEL_REMOVED
    removes the item: the named container is empty now, so whatever item
    was in it leaves it, and an item in no container any more goes; an
    item added without a container, or a removal naming none, removes the
    item outright. A container holds one label: labelling it again moves
    the old item out of it. Labels compare case-insensitively. Events
    without a label are counted in "skipped" and ignored.

    View: "customer/ID" -> {"customer", "items": {"milk": {"label": "Milk",
    "containers": ["c1"], "since": ts}}, "last_seq"}; items are keyed by the
    lower-case label.

    Query text (case-insensitive; a leading "Alexa," and trailing "?" are
    ignored), always answered with 200 {"answer": "..."}:
      "what do I have?"  -> "You have cheddar, eggs and milk." (sorted)
                            or "You have nothing."
      "do I have milk?"  -> "Yes, you have milk in container c1." or
                            "No, you have no milk." ("any"/"some" after
                            "have" and a plural s are forgiven)
      anything else      -> "Sorry, I can answer \"what do I have?\" and
                            \"do I have X?\"."
    A customer the view has never seen has an empty inventory (not 404):
    a customer with nothing is a valid answer.
*/
#ifndef POND_ALEXA_VIEW_H_INCLUDED
#define POND_ALEXA_VIEW_H_INCLUDED

#include "pond_actors.h"

#ifdef __cplusplus
extern "C" {
#endif

#define POND_ALEXA_VIEW_NAME "alexa-view"

//  Fill spec for pond_actor_main
void
    pond_alexa_view_spec (pond_actor_spec_t *spec);

//  The answer to question text about the customer document doc (NULL: an
//  empty inventory), as a sentence. Caller frees. NULL if memory runs out.
char *
    pond_alexa_view_answer (const cJSON *doc, const char *text);

#ifdef __cplusplus
}
#endif

#endif
