/*  pond_actors: helpers shared by the four actors. See pond_actors.h.

    Event data arrives as msgpack; the apply paths read its fields in
    place (pond_event_data), exact and without building anything. Only
    data read as a whole (badge rules) goes through its JSON form. Documents are cJSON trees; before a tree is written or
    printed every whole number in it becomes a raw number item, so event
    times (microseconds, 16 digits) stay readable and exact.
*/
#include "pond_actors.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pond_event_data.h"
#include "pond_value.h"

//  Largest double that holds every smaller whole number exactly
#define S_EXACT_MAX 9007199254740992.0

//  ---------------------------------------------------------------------
//  Reading event data

char *
pond_actors_text (const pond_event_t *event, const char *key, char *buf, size_t size)
{
    const char *ptr;
    size_t len;
    if (pond_event_data_get_str (event, key, &ptr, &len))
        return NULL;
    const char *nul = len ? memchr (ptr, 0, len) : NULL;
    if (nul)
        len = (size_t) (nul - ptr);
    if (len == 0)
        return NULL;
    char *text = len < size ? buf : malloc (len + 1);
    if (!text)
        return NULL;
    memcpy (text, ptr, len);
    text [len] = 0;
    return text;
}

void
pond_actors_text_free (char *text, const char *buf)
{
    if (text != buf)
        free (text);
}

int
pond_actors_data_uint (const pond_event_t *event, const char *key, uint64_t *value_p)
{
    if (pond_event_data_get_uint (event, key, value_p) == 0)
        return 0;
    //  A JSON producer may have sent 3.0 for 3
    double value;
    if (pond_event_data_get_double (event, key, &value) || !isfinite (value) || value < 0
        || value != floor (value) || value > S_EXACT_MAX)
        return -1;
    *value_p = (uint64_t) value;
    return 0;
}

cJSON *
pond_actors_data (const pond_event_t *event)
{
    size_t size = 0;
    const uint8_t *data = pond_event_data (event, &size);
    cJSON *tree = NULL;
    if (data && size) {
        char *json = pond_value_to_json (data, size);
        if (json) {
            tree = cJSON_Parse (json);
            free (json);
        }
        if (tree && !cJSON_IsObject (tree)) {
            cJSON_Delete (tree);
            tree = NULL;
        }
    }
    return tree ? tree : cJSON_CreateObject ();
}

const char *
pond_actors_string (const cJSON *obj, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive (obj, name);
    if (cJSON_IsString (item) && item->valuestring && *item->valuestring)
        return item->valuestring;
    return NULL;
}

int
pond_actors_uint (const cJSON *obj, const char *name, uint64_t *value_p)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive (obj, name);
    if (cJSON_IsRaw (item) && item->valuestring) {
        //  Written by pond_actors_set_uint or turned exact by print / put
        const char *text = item->valuestring;
        char *end = NULL;
        if (*text < '0' || *text > '9')
            return -1;
        errno = 0;
        unsigned long long value = strtoull (text, &end, 10);
        if (errno || *end)
            return -1;
        *value_p = (uint64_t) value;
        return 0;
    }
    if (!cJSON_IsNumber (item))
        return -1;
    double value = item->valuedouble;
    if (!isfinite (value) || value < 0 || value != floor (value) || value > S_EXACT_MAX)
        return -1;
    *value_p = (uint64_t) value;
    return 0;
}

//  ---------------------------------------------------------------------
//  Writing documents

//  A raw JSON number item holding value exactly
static cJSON *
s_raw_uint (uint64_t value)
{
    char text [32];
    snprintf (text, sizeof text, "%" PRIu64, value);
    return cJSON_CreateRaw (text);
}

static int
s_set (cJSON *obj, const char *name, cJSON *item)
{
    if (!item)
        return -1;
    if (cJSON_GetObjectItemCaseSensitive (obj, name))
        cJSON_ReplaceItemInObjectCaseSensitive (obj, name, item);
    else
        cJSON_AddItemToObject (obj, name, item);
    return 0;
}

int
pond_actors_set_uint (cJSON *obj, const char *name, uint64_t value)
{
    return s_set (obj, name, s_raw_uint (value));
}

int
pond_actors_set_string (cJSON *obj, const char *name, const char *value)
{
    return s_set (obj, name, cJSON_CreateString (value ? value : ""));
}

cJSON *
pond_actors_object (cJSON *obj, const char *name)
{
    cJSON *item = cJSON_GetObjectItemCaseSensitive (obj, name);
    if (cJSON_IsObject (item))
        return item;
    item = cJSON_CreateObject ();
    if (s_set (obj, name, item))
        return NULL;
    return item;
}

void
pond_actors_insert (cJSON *parent, int index, cJSON *item)
{
    //  Move the children from index on aside, append item, put them back
    cJSON *rest = cJSON_CreateArray ();
    if (!rest) {
        cJSON_AddItemToArray (parent, item);    //  out of order, not lost
        return;
    }
    cJSON *child = parent->child;
    for (int position = 0; child && position < index; position++)
        child = child->next;
    while (child) {
        cJSON *next = child->next;
        cJSON_AddItemToArray (rest, cJSON_DetachItemViaPointer (parent, child));
        child = next;
    }
    cJSON_AddItemToArray (parent, item);
    while (rest->child)
        cJSON_AddItemToArray (parent, cJSON_DetachItemViaPointer (rest, rest->child));
    cJSON_Delete (rest);
}

//  Turn every whole number of the tree into a raw number item, in place
static void
s_exact_numbers (cJSON *item)
{
    for (; item; item = item->next) {
        if (cJSON_IsNumber (item)) {
            double value = item->valuedouble;
            if (isfinite (value) && value == floor (value) && fabs (value) <= S_EXACT_MAX
                && fabs (value) > INT32_MAX) {
                char text [32];
                snprintf (text, sizeof text, "%.0f", value);
                char *raw = strdup (text);
                if (raw) {
                    item->type = cJSON_Raw;
                    item->valuestring = raw;
                }
            }
        }
        else if (item->child)
            s_exact_numbers (item->child);
    }
}

char *
pond_actors_print (cJSON *tree)
{
    if (!tree)
        return NULL;
    if (tree->child)
        s_exact_numbers (tree->child);
    return cJSON_PrintUnformatted (tree);
}

int
pond_actors_customer_key (const char *entity, char *key, size_t size)
{
    if (!entity || !*entity)
        return -1;
    int rc = snprintf (key, size, "%s%s", POND_ACTORS_CUSTOMER_PREFIX, entity);
    return rc < 0 || (size_t) rc >= size ? -1 : 0;
}

int
pond_actors_put (pond_view_t *view, const char *key, cJSON *doc)
{
    if (doc && doc->child)
        s_exact_numbers (doc->child);
    return pond_view_put (view, key, doc);
}

int
pond_actors_put_take (pond_view_t *view, const char *key, cJSON **doc_p)
{
    if (*doc_p && (*doc_p)->child)
        s_exact_numbers ((*doc_p)->child);
    return pond_view_put_take (view, key, doc_p);
}

//  ---------------------------------------------------------------------
//  Skipped events and errors

int
pond_actors_skip (pond_view_t *view, const pond_event_t *event, const char *reason)
{
    //  Logged once per process: a log full of the same line costs more
    //  than the event (and the view counts them all, below)
    static uint64_t skipped = 0;
    if (skipped++ == 0)
        zsys_warning ("skipping %s seq=%" PRIu64 " entity=%s: %s (further skips are "
                      "counted in the view's \"%s\" document, not logged)",
                      pond_event_name (event), pond_event_seq (event), pond_event_entity (event),
                      reason, POND_ACTORS_SKIPPED_KEY);
    cJSON *doc = pond_view_get (view, POND_ACTORS_SKIPPED_KEY);
    if (!cJSON_IsObject (doc)) {
        cJSON_Delete (doc);
        doc = cJSON_CreateObject ();
        if (!doc)
            return -1;
    }
    uint64_t count = 0;
    pond_actors_uint (doc, "count", &count);
    int rc = pond_actors_set_uint (doc, "count", count + 1);
    rc |= pond_actors_set_uint (doc, "last_seq", pond_event_seq (event));
    rc |= pond_actors_set_string (doc, "last_name", pond_event_name (event));
    rc |= pond_actors_set_string (doc, "last_reason", reason);
    if (rc == 0)
        rc = pond_actors_put (view, POND_ACTORS_SKIPPED_KEY, doc);
    cJSON_Delete (doc);
    return rc ? -1 : 0;
}

void
pond_actors_error (pond_actor_t *actor, int code, const char *format, ...)
{
    char reason [512];
    va_list args;
    va_start (args, format);
    vsnprintf (reason, sizeof reason, format, args);
    va_end (args);
    if (actor)
        pond_actor_set_error (actor, code, "%s", reason);
    else
        zsys_debug ("error %d: %s", code, reason);
}

cJSON *
pond_actors_customer_doc (pond_actor_t *actor, pond_view_t *view, const char *entity,
                          const char *unknown)
{
    char key [POND_ACTORS_KEY_MAX];
    if (pond_actors_customer_key (entity, key, sizeof key)) {
        pond_actors_error (actor, 400, "a customer id is required");
        return NULL;
    }
    cJSON *doc = pond_view_get (view, key);
    if (!cJSON_IsObject (doc)) {
        cJSON_Delete (doc);
        pond_actors_error (actor, 404, "customer '%s' %s", entity, unknown);
        return NULL;
    }
    return doc;
}
