/*  pond_quack_counter: the quack counter actor. See pond_quack_counter.h.

    Deterministic by construction: the year comes from the event's own ts
    (UTC), never from the wall clock, so a rebuild equals the live view.
*/
#include "pond_quack_counter.h"

#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *const s_names [] = { "QUACKED", NULL };

//  Calendar year (UTC) of an event time in microseconds, as text
static void
s_year (uint64_t ts, char *year, size_t size)
{
    time_t seconds = (time_t) (ts / 1000000);
    struct tm tm;
    if (gmtime_r (&seconds, &tm))
        snprintf (year, size, "%d", tm.tm_year + 1900);
    else
        snprintf (year, size, "unknown");
}

//  ---------------------------------------------------------------------
//  Apply QUACKED: one more quack for the customer, in total and that year

static int
s_apply (pond_actor_t *actor, pond_view_t *view, const pond_event_t *event, void *state)
{
    (void) actor;
    (void) state;
    if (strcmp (pond_event_name (event), "QUACKED"))
        return 0;    //  not ours: the runtime filters, be safe
    char key [POND_ACTORS_KEY_MAX];
    if (pond_actors_customer_key (pond_event_entity (event), key, sizeof key))
        return pond_actors_skip (view, event, "no usable entity");

    cJSON *doc = pond_view_get (view, key);
    if (!cJSON_IsObject (doc)) {
        cJSON_Delete (doc);
        doc = cJSON_CreateObject ();
        if (!doc)
            return -1;
    }
    uint64_t quacks = 0;
    pond_actors_uint (doc, "quacks", &quacks);
    cJSON *by_year = pond_actors_object (doc, "by_year");
    char year [16];
    s_year (pond_event_ts (event), year, sizeof year);
    uint64_t that_year = 0;
    if (by_year)
        pond_actors_uint (by_year, year, &that_year);

    int rc = by_year ? 0 : -1;
    rc |= pond_actors_set_string (doc, "customer", pond_event_entity (event));
    rc |= pond_actors_set_uint (doc, "quacks", quacks + 1);
    if (by_year)
        rc |= pond_actors_set_uint (by_year, year, that_year + 1);
    rc |= pond_actors_set_uint (doc, "last_seq", pond_event_seq (event));
    if (rc == 0)
        rc = pond_actors_put_take (view, key, &doc);
    cJSON_Delete (doc);
    return rc ? -1 : 0;
}

//  ---------------------------------------------------------------------
//  Query: {"customer", "quacks", "by_year"} (years in order), 404 if none

static int
s_compare_keys (const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *) a;
    const cJSON *y = *(const cJSON *const *) b;
    return strcmp (x->string, y->string);
}

static char *
s_query (pond_actor_t *actor, pond_view_t *view, const char *entity, const char *text, void *state)
{
    (void) text;
    (void) state;
    cJSON *doc = pond_actors_customer_doc (actor, view, entity, "never quacked");
    if (!doc)
        return NULL;
    uint64_t quacks = 0;
    pond_actors_uint (doc, "quacks", &quacks);
    cJSON *answer = cJSON_CreateObject ();
    cJSON *years = cJSON_CreateObject ();
    if (answer && years) {
        //  Years sorted, whatever order they were first seen in
        const cJSON *by_year = cJSON_GetObjectItemCaseSensitive (doc, "by_year");
        int count = cJSON_GetArraySize (by_year);
        const cJSON **items = count ? calloc ((size_t) count, sizeof *items) : NULL;
        int found = 0;
        const cJSON *item;
        if (items)
            cJSON_ArrayForEach (item, by_year)
                if (item->string && cJSON_IsNumber (item))
                    items [found++] = item;
        if (found > 1)
            qsort (items, (size_t) found, sizeof *items, s_compare_keys);
        for (int index = 0; index < found; index++)
            pond_actors_set_uint (years, items [index]->string,
                                  (uint64_t) items [index]->valuedouble);
        free (items);
    }
    char *result = NULL;
    if (answer && years) {
        pond_actors_set_string (answer, "customer", entity);
        pond_actors_set_uint (answer, "quacks", quacks);
        cJSON_AddItemToObject (answer, "by_year", years);
        years = NULL;
        result = pond_actors_print (answer);
    }
    cJSON_Delete (years);
    cJSON_Delete (answer);
    cJSON_Delete (doc);
    if (!result)
        pond_actors_error (actor, 500, "out of memory");
    return result;
}

//  ---------------------------------------------------------------------

void
pond_quack_counter_spec (pond_actor_spec_t *spec)
{
    memset (spec, 0, sizeof *spec);
    spec->name = POND_QUACK_COUNTER_NAME;
    spec->names = s_names;
    spec->description = "Counts the quacks (QUACKED) of each customer, in total and per calendar\n"
                        "year (UTC, from the event time). Query a customer id to get\n"
                        "{\"customer\", \"quacks\", \"by_year\": {\"2022\": n, ...}}; 404 if the\n"
                        "customer never quacked.";
    spec->apply = s_apply;
    spec->query = s_query;
    spec->as_of = true;    //  apply and query need no state: time travel works
}
