/*  pond_alexa_view: the Alexa-style inventory view. See pond_alexa_view.h.
*/
#include "pond_alexa_view.h"

#include <ctype.h>
#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const s_names [] = { "LABEL_ADDED", "LABEL_REMOVED", NULL };

#define S_SORRY "Sorry, I can answer \"what do I have?\" and \"do I have X?\"."

//  ---------------------------------------------------------------------
//  Apply

//  Lower-case copy of text. Caller frees.
static char *
s_lower (const char *text)
{
    char *copy = strdup (text);
    for (char *c = copy; c && *c; c++)
        *c = (char) tolower ((unsigned char) *c);
    return copy;
}

//  Remove container from the containers array of item; returns true if it
//  was there
static bool
s_take_container (cJSON *item, const char *container)
{
    cJSON *containers = cJSON_GetObjectItemCaseSensitive (item, "containers");
    int index = 0;
    const cJSON *entry;
    cJSON_ArrayForEach (entry, containers) {
        if (cJSON_IsString (entry) && streq (entry->valuestring, container)) {
            cJSON_DeleteItemFromArray (containers, index);
            return true;
        }
        index++;
    }
    return false;
}

static bool
s_has_containers (const cJSON *item)
{
    return cJSON_GetArraySize (cJSON_GetObjectItemCaseSensitive (item, "containers")) > 0;
}

//  LABEL_ADDED: the item is there (in that container, if one is named)
static int
s_add (cJSON *items, const char *key, const char *label, const char *container, uint64_t ts)
{
    if (container) {
        //  A container holds one label: an older item leaves it
        cJSON *other = items->child;
        while (other) {
            cJSON *next = other->next;
            if (other->string && strcmp (other->string, key) && s_take_container (other, container)
                && !s_has_containers (other))
                cJSON_Delete (cJSON_DetachItemViaPointer (items, other));
            other = next;
        }
    }
    cJSON *item = cJSON_GetObjectItemCaseSensitive (items, key);
    if (!cJSON_IsObject (item)) {
        cJSON_DeleteItemFromObjectCaseSensitive (items, key);
        item = cJSON_CreateObject ();
        if (!item)
            return -1;
        cJSON_AddItemToObject (items, key, item);
        if (pond_actors_set_string (item, "label", label)
            || pond_actors_set_uint (item, "since", ts))
            return -1;
    }
    cJSON *containers = cJSON_GetObjectItemCaseSensitive (item, "containers");
    if (!cJSON_IsArray (containers)) {
        containers = cJSON_CreateArray ();
        if (!containers)
            return -1;
        cJSON_DeleteItemFromObjectCaseSensitive (item, "containers");
        cJSON_AddItemToObject (item, "containers", containers);
    }
    if (container) {
        //  Keep the containers sorted and distinct
        int index = 0;
        const cJSON *entry;
        cJSON_ArrayForEach (entry, containers) {
            int order = cJSON_IsString (entry) ? strcmp (entry->valuestring, container) : -1;
            if (order == 0)
                return 0;
            if (order > 0)
                break;
            index++;
        }
        cJSON *text = cJSON_CreateString (container);
        if (!text)
            return -1;
        pond_actors_insert (containers, index, text);
    }
    return 0;
}

//  LABEL_REMOVED: the container is empty now, so it leaves every item
//  (the device removed its label), and an item left in no container goes;
//  without a container, or for an item added without one, the item goes
static void
s_remove (cJSON *items, const char *key, const char *container)
{
    bool matched = false;
    if (container) {
        cJSON *item = items->child;
        while (item) {
            cJSON *next = item->next;
            if (item->string && s_take_container (item, container)) {
                matched |= streq (item->string, key);
                if (!s_has_containers (item))
                    cJSON_Delete (cJSON_DetachItemViaPointer (items, item));
            }
            item = next;
        }
    }
    cJSON *item = cJSON_GetObjectItemCaseSensitive (items, key);
    if (item && !matched && (!container || !s_has_containers (item)))
        cJSON_Delete (cJSON_DetachItemViaPointer (items, item));
}

static int
s_apply (pond_actor_t *actor, pond_view_t *view, const pond_event_t *event, void *state)
{
    (void) actor;
    (void) state;
    const char *name = pond_event_name (event);
    bool added = streq (name, "LABEL_ADDED");
    if (!added && !streq (name, "LABEL_REMOVED"))
        return 0;    //  not ours: the runtime filters, be safe
    char key [POND_ACTORS_KEY_MAX];
    if (pond_actors_customer_key (pond_event_entity (event), key, sizeof key))
        return pond_actors_skip (view, event, "no usable entity");
    char label_buf [POND_ACTORS_TEXT_MAX];
    char *label = pond_actors_text (event, "label", label_buf, sizeof label_buf);
    if (!label)
        return pond_actors_skip (view, event, "no \"label\" in data");
    char container_buf [POND_ACTORS_TEXT_MAX];
    char *container = pond_actors_text (event, "container", container_buf, sizeof container_buf);
    char *item_key = s_lower (label);
    cJSON *doc = pond_view_get (view, key);
    if (!cJSON_IsObject (doc)) {
        cJSON_Delete (doc);
        doc = cJSON_CreateObject ();
    }
    cJSON *items = doc ? pond_actors_object (doc, "items") : NULL;
    int rc = item_key && items ? 0 : -1;
    if (rc == 0) {
        if (added)
            rc = s_add (items, item_key, label, container, pond_event_ts (event));
        else
            s_remove (items, item_key, container);
    }
    rc |= doc ? pond_actors_set_string (doc, "customer", pond_event_entity (event)) : -1;
    rc |= doc ? pond_actors_set_uint (doc, "last_seq", pond_event_seq (event)) : -1;
    if (rc == 0)
        rc = pond_actors_put_take (view, key, &doc);
    cJSON_Delete (doc);
    free (item_key);
    pond_actors_text_free (label, label_buf);
    pond_actors_text_free (container, container_buf);
    return rc ? -1 : 0;
}

//  ---------------------------------------------------------------------
//  Answers

//  Append "a, b and c" (the strings of words, in order) to buffer
static void
s_join (zchunk_t *buffer, const char *const *words, size_t count)
{
    for (size_t index = 0; index < count; index++) {
        if (index > 0)
            zchunk_extend (buffer, index + 1 == count ? " and " : ", ", index + 1 == count ? 5 : 2);
        zchunk_extend (buffer, words [index], strlen (words [index]));
    }
}

static char *
s_chunk_text (zchunk_t *buffer)
{
    zchunk_extend (buffer, "", 1);
    char *text = strdup ((const char *) zchunk_data (buffer));
    zchunk_destroy (&buffer);
    return text;
}

static int
s_compare_keys (const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *) a;
    const cJSON *y = *(const cJSON *const *) b;
    return strcmp (x->string, y->string);
}

//  "You have cheddar, eggs and milk."
static char *
s_answer_list (const cJSON *items)
{
    int size = cJSON_GetArraySize (items);
    if (size == 0)
        return strdup ("You have nothing.");
    const cJSON **sorted = calloc ((size_t) size, sizeof *sorted);
    const char **words = calloc ((size_t) size, sizeof *words);
    zchunk_t *buffer = zchunk_new (NULL, 256);
    char *text = NULL;
    if (sorted && words && buffer) {
        size_t count = 0;
        const cJSON *item;
        cJSON_ArrayForEach (item, items)
            if (item->string)
                sorted [count++] = item;
        if (count > 1)
            qsort (sorted, count, sizeof *sorted, s_compare_keys);
        for (size_t index = 0; index < count; index++) {
            const char *label = pond_actors_string (sorted [index], "label");
            words [index] = label ? label : sorted [index]->string;
        }
        zchunk_extend (buffer, "You have ", 9);
        s_join (buffer, words, count);
        zchunk_extend (buffer, ".", 1);
        text = s_chunk_text (buffer);
        buffer = NULL;
    }
    zchunk_destroy (&buffer);
    free (words);
    free (sorted);
    return text;
}

//  The item asked for, forgiving a plural s either way
static const cJSON *
s_find (const cJSON *items, const char *wanted)
{
    char *key = s_lower (wanted);
    if (!key)
        return NULL;
    const cJSON *item = cJSON_GetObjectItemCaseSensitive (items, key);
    size_t length = strlen (key);
    if (!item && length > 1 && key [length - 1] == 's') {
        key [length - 1] = 0;
        item = cJSON_GetObjectItemCaseSensitive (items, key);
    }
    else if (!item) {
        char plural [POND_QUERY_TEXT_MAX + 2];
        snprintf (plural, sizeof plural, "%ss", key);
        item = cJSON_GetObjectItemCaseSensitive (items, plural);
    }
    free (key);
    return item;
}

//  "Yes, you have milk in container c1." / "No, you have no milk."
static char *
s_answer_have (const cJSON *items, const char *wanted)
{
    const cJSON *item = s_find (items, wanted);
    zchunk_t *buffer = zchunk_new (NULL, 256);
    if (!buffer)
        return NULL;
    if (!item) {
        zchunk_extend (buffer, "No, you have no ", 16);
        zchunk_extend (buffer, wanted, strlen (wanted));
        zchunk_extend (buffer, ".", 1);
        return s_chunk_text (buffer);
    }
    const char *label = pond_actors_string (item, "label");
    label = label ? label : item->string;
    zchunk_extend (buffer, "Yes, you have ", 14);
    zchunk_extend (buffer, label, strlen (label));
    const cJSON *containers = cJSON_GetObjectItemCaseSensitive (item, "containers");
    int size = cJSON_GetArraySize (containers);
    const char **words = size > 0 ? calloc ((size_t) size, sizeof *words) : NULL;
    size_t count = 0;
    const cJSON *entry;
    if (words)
        cJSON_ArrayForEach (entry, containers)
            if (cJSON_IsString (entry))
                words [count++] = entry->valuestring;
    if (count > 0) {
        const char *in = count == 1 ? " in container " : " in containers ";
        zchunk_extend (buffer, in, strlen (in));
        s_join (buffer, words, count);
    }
    free (words);
    zchunk_extend (buffer, ".", 1);
    return s_chunk_text (buffer);
}

//  Skip a leading word (case-insensitive) followed by a space; returns
//  the rest or NULL if text does not start with it
static const char *
s_skip_word (const char *text, const char *word)
{
    size_t length = strlen (word);
    if (strncasecmp (text, word, length) == 0 && text [length] == ' ')
        return text + length + 1;
    return NULL;
}

char *
pond_alexa_view_answer (const cJSON *doc, const char *text)
{
    //  Normalize: single spaces, no "alexa," before, no "?.!" after
    char question [POND_QUERY_TEXT_MAX];
    size_t length = 0;
    bool space = true;
    for (const char *c = text ? text : ""; *c && length < sizeof question - 1; c++) {
        if (isspace ((unsigned char) *c)) {
            if (!space)
                question [length++] = ' ';
            space = true;
        }
        else {
            question [length++] = *c;
            space = false;
        }
    }
    while (length > 0 && strchr (" ?.!", question [length - 1]))
        length--;
    question [length] = 0;
    const char *asked = question;
    if (strncasecmp (asked, "alexa", 5) == 0 && asked [5] && strchr (", ", asked [5])) {
        asked += 5;
        while (*asked == ',' || *asked == ' ')
            asked++;
    }

    const cJSON *items = cJSON_GetObjectItemCaseSensitive (doc, "items");
    if (strcasecmp (asked, "what do i have") == 0)
        return s_answer_list (items);
    const char *wanted = s_skip_word (asked, "do");
    wanted = wanted ? s_skip_word (wanted, "i") : NULL;
    wanted = wanted ? s_skip_word (wanted, "have") : NULL;
    if (wanted) {
        const char *article = s_skip_word (wanted, "any");
        article = article ? article : s_skip_word (wanted, "some");
        wanted = article ? article : wanted;
    }
    if (wanted && *wanted)
        return s_answer_have (items, wanted);
    return strdup (S_SORRY);
}

//  ---------------------------------------------------------------------
//  Query

static char *
s_query (pond_actor_t *actor, pond_view_t *view, const char *entity, const char *text, void *state)
{
    (void) state;
    char key [POND_ACTORS_KEY_MAX];
    if (pond_actors_customer_key (entity, key, sizeof key)) {
        pond_actors_error (actor, 400, "a customer id is required");
        return NULL;
    }
    cJSON *doc = pond_view_get (view, key);
    char *sentence = pond_alexa_view_answer (doc, text);
    cJSON *answer = sentence ? cJSON_CreateObject () : NULL;
    char *result = NULL;
    if (answer) {
        cJSON_AddStringToObject (answer, "answer", sentence);
        result = pond_actors_print (answer);
    }
    cJSON_Delete (answer);
    free (sentence);
    cJSON_Delete (doc);
    if (!result)
        pond_actors_error (actor, 500, "out of memory");
    return result;
}

void
pond_alexa_view_spec (pond_actor_spec_t *spec)
{
    memset (spec, 0, sizeof *spec);
    spec->name = POND_ALEXA_VIEW_NAME;
    spec->names = s_names;
    spec->description = "Keeps each customer's food inventory from LABEL_ADDED / LABEL_REMOVED\n"
                        "(for it LABEL_REMOVED removes the item) and answers questions about it:\n"
                        "query a customer id with the text \"what do I have?\" or \"do I have\n"
                        "milk?\" to get {\"answer\": \"...\"}. A customer never seen has nothing.";
    spec->apply = s_apply;
    spec->query = s_query;
    spec->as_of = true;    //  apply and query need no state: time travel works
}
