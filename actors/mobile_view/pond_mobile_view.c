/*  pond_mobile_view: the mobile app's view. See pond_mobile_view.h.
*/
#include "pond_mobile_view.h"

#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const s_names [] = {
    "LABEL_ADDED",   "LABEL_REMOVED", "QUACKED", "BUTTON_CLICKED",
    "BADGE_GRANTED", "BADGE_REMOVED", NULL
};

//  ---------------------------------------------------------------------
//  The document

//  A fresh document, every field present, in display order
static cJSON *
s_new_doc (const char *customer)
{
    cJSON *doc = cJSON_CreateObject ();
    if (!doc)
        return NULL;
    int rc = pond_actors_set_string (doc, "customer", customer);
    rc |= cJSON_AddArrayToObject (doc, "inventory") ? 0 : -1;
    rc |= cJSON_AddObjectToObject (doc, "containers") ? 0 : -1;
    rc |= pond_actors_set_uint (doc, "quacks", 0);
    rc |= pond_actors_set_uint (doc, "clicks", 0);
    rc |= cJSON_AddArrayToObject (doc, "badges") ? 0 : -1;
    rc |= pond_actors_set_uint (doc, "updated_seq", 0);
    rc |= pond_actors_set_uint (doc, "updated_ts", 0);
    if (rc) {
        cJSON_Delete (doc);
        return NULL;
    }
    return doc;
}

//  The array field name of doc, made an empty array if it is not one
static cJSON *
s_array (cJSON *doc, const char *name)
{
    cJSON *array = cJSON_GetObjectItemCaseSensitive (doc, name);
    if (cJSON_IsArray (array))
        return array;
    array = cJSON_CreateArray ();
    if (!array)
        return NULL;
    if (cJSON_GetObjectItemCaseSensitive (doc, name))
        cJSON_ReplaceItemInObjectCaseSensitive (doc, name, array);
    else
        cJSON_AddItemToObject (doc, name, array);
    return array;
}

//  The container of an inventory entry, or NULL
static const char *
s_entry_container (const cJSON *entry)
{
    return pond_actors_string (entry, "container");
}

static bool
s_same (const char *a, const char *b)
{
    return (!a && !b) || (a && b && streq (a, b));
}

//  Order of entries: label, then container (none first)
static int
s_compare (const char *label, const char *container, const cJSON *entry)
{
    const char *other_label = pond_actors_string (entry, "label");
    int order = strcmp (label, other_label ? other_label : "");
    if (order)
        return order;
    const char *other = s_entry_container (entry);
    if (!container || !other)
        return (container != NULL) - (other != NULL);
    return strcmp (container, other);
}

//  Remove the inventory entries that match label (NULL: any) and
//  container (NULL with any_container: any). Each container of a removed
//  entry is added to unlabeled (a set), if given. Returns how many went.
static size_t
s_inventory_remove (cJSON *inventory, const char *label, const char *container, bool any_container,
                    cJSON *unlabeled)
{
    size_t removed = 0;
    cJSON *entry = inventory->child;
    while (entry) {
        cJSON *next = entry->next;
        const char *entry_label = pond_actors_string (entry, "label");
        const char *entry_container = s_entry_container (entry);
        if ((!label || s_same (label, entry_label))
            && (any_container || s_same (container, entry_container))) {
            if (unlabeled && entry_container
                && !cJSON_GetObjectItemCaseSensitive (unlabeled, entry_container))
                cJSON_AddItemToObject (unlabeled, entry_container, cJSON_CreateTrue ());
            cJSON_Delete (cJSON_DetachItemViaPointer (inventory, entry));
            removed++;
        }
        entry = next;
    }
    return removed;
}

static int
s_set_container (cJSON *containers, const char *container, const char *label)
{
    cJSON *state = cJSON_CreateObject ();
    if (!state)
        return -1;
    cJSON_AddStringToObject (state, "state", label ? "LABELED" : "UNLABELED");
    if (label)
        cJSON_AddStringToObject (state, "label", label);
    if (cJSON_GetObjectItemCaseSensitive (containers, container)) {
        cJSON_ReplaceItemInObjectCaseSensitive (containers, container, state);
        return 0;
    }
    //  A new container: in order of its id
    int index = 0;
    const cJSON *other;
    cJSON_ArrayForEach (other, containers) {
        if (other->string && strcmp (other->string, container) > 0)
            break;
        index++;
    }
    cJSON_AddItemToObject (containers, container, state);
    pond_actors_insert (containers, index, cJSON_DetachItemViaPointer (containers, state));
    return 0;
}

//  ---------------------------------------------------------------------
//  Apply, one handler per event name

static int
s_label_added (cJSON *doc, const pond_event_t *event, const char *label, const char *container)
{
    cJSON *inventory = s_array (doc, "inventory");
    cJSON *containers = pond_actors_object (doc, "containers");
    if (!inventory || !containers)
        return -1;
    if (container) {
        //  A container holds one label: whatever else it held leaves
        cJSON *entry = inventory->child;
        while (entry) {
            cJSON *next = entry->next;
            const char *entry_label = pond_actors_string (entry, "label");
            if (s_same (s_entry_container (entry), container) && !s_same (entry_label, label))
                cJSON_Delete (cJSON_DetachItemViaPointer (inventory, entry));
            entry = next;
        }
        if (s_set_container (containers, container, label))
            return -1;
    }
    //  Insert in order, once
    int index = 0;
    const cJSON *entry;
    cJSON_ArrayForEach (entry, inventory) {
        int order = s_compare (label, container, entry);
        if (order == 0)
            return 0;
        if (order < 0)
            break;
        index++;
    }
    cJSON *added = cJSON_CreateObject ();
    if (!added)
        return -1;
    int rc = pond_actors_set_string (added, "label", label);
    if (container)
        rc |= pond_actors_set_string (added, "container", container);
    else
        rc |= cJSON_AddNullToObject (added, "container") ? 0 : -1;
    rc |= pond_actors_set_uint (added, "since", pond_event_ts (event));
    pond_actors_insert (inventory, index, added);
    return rc;
}

static int
s_label_removed (cJSON *doc, const char *label, const char *container)
{
    cJSON *inventory = s_array (doc, "inventory");
    cJSON *containers = pond_actors_object (doc, "containers");
    cJSON *unlabeled = cJSON_CreateObject ();
    int rc = inventory && containers && unlabeled ? 0 : -1;
    if (rc == 0) {
        if (container) {
            //  The container is empty now, whatever the inventory said; a
            //  label added without its container goes if none matched
            size_t matched = s_inventory_remove (inventory, label, container, false, NULL);
            s_inventory_remove (inventory, NULL, container, false, NULL);
            if (matched == 0)
                s_inventory_remove (inventory, label, NULL, false, NULL);
            cJSON_AddItemToObject (unlabeled, container, cJSON_CreateTrue ());
        }
        else
            s_inventory_remove (inventory, label, NULL, true, unlabeled);
        const cJSON *item;
        cJSON_ArrayForEach (item, unlabeled)
            rc |= s_set_container (containers, item->string, NULL);
    }
    cJSON_Delete (unlabeled);
    return rc;
}

//  Add one to the counter field name
static int
s_count (cJSON *doc, const char *name)
{
    uint64_t count = 0;
    pond_actors_uint (doc, name, &count);
    return pond_actors_set_uint (doc, name, count + 1);
}

static int
s_badge (cJSON *doc, const pond_event_t *event, const char *badge, bool granted)
{
    cJSON *badges = s_array (doc, "badges");
    if (!badges)
        return -1;
    cJSON *entry = badges->child;
    while (entry) {
        cJSON *next = entry->next;
        if (s_same (pond_actors_string (entry, "name"), badge)) {
            if (granted)
                return 0;    //  the first grant stands
            cJSON_Delete (cJSON_DetachItemViaPointer (badges, entry));
        }
        entry = next;
    }
    if (!granted)
        return 0;
    cJSON *held = cJSON_CreateObject ();
    if (!held)
        return -1;
    char version_buf [POND_ACTORS_TEXT_MAX];
    char *version = pond_actors_text (event, "rules_version", version_buf, sizeof version_buf);
    int rc = pond_actors_set_string (held, "name", badge);
    rc |= pond_actors_set_uint (held, "granted_ts", pond_event_ts (event));
    rc |= pond_actors_set_string (held, "rules_version", version ? version : "");
    pond_actors_text_free (version, version_buf);
    cJSON_AddItemToArray (badges, held);
    return rc;
}

static int
s_apply (pond_actor_t *actor, pond_view_t *view, const pond_event_t *event, void *state)
{
    (void) actor;
    (void) state;
    const char *name = pond_event_name (event);
    bool is_added = streq (name, "LABEL_ADDED");
    bool is_removed = streq (name, "LABEL_REMOVED");
    bool is_quack = streq (name, "QUACKED");
    bool is_click = streq (name, "BUTTON_CLICKED");
    bool is_granted = streq (name, "BADGE_GRANTED");
    bool is_lost = streq (name, "BADGE_REMOVED");
    if (!is_added && !is_removed && !is_quack && !is_click && !is_granted && !is_lost)
        return 0;    //  not ours: the runtime filters, be safe
    const char *customer = pond_event_entity (event);
    char key [POND_ACTORS_KEY_MAX];
    if (pond_actors_customer_key (customer, key, sizeof key))
        return pond_actors_skip (view, event, "no usable entity");

    //  Counters need nothing from the data: only labels and badges read it
    char label_buf [POND_ACTORS_TEXT_MAX];
    char container_buf [POND_ACTORS_TEXT_MAX];
    char badge_buf [POND_ACTORS_TEXT_MAX];
    char *label = NULL;
    char *container = NULL;
    char *badge = NULL;
    if (is_added || is_removed) {
        label = pond_actors_text (event, "label", label_buf, sizeof label_buf);
        if (!label)
            return pond_actors_skip (view, event, "no \"label\" in data");
        container = pond_actors_text (event, "container", container_buf, sizeof container_buf);
    }
    if (is_granted || is_lost) {
        badge = pond_actors_text (event, "badge", badge_buf, sizeof badge_buf);
        if (!badge)
            return pond_actors_skip (view, event, "no \"badge\" in data");
    }
    cJSON *doc = pond_view_get (view, key);
    if (!cJSON_IsObject (doc)) {
        cJSON_Delete (doc);
        doc = s_new_doc (customer);
    }
    int rc = doc ? 0 : -1;
    if (rc == 0) {
        if (is_added)
            rc = s_label_added (doc, event, label, container);
        else if (is_removed)
            rc = s_label_removed (doc, label, container);
        else if (is_quack)
            rc = s_count (doc, "quacks");
        else if (is_click)
            rc = s_count (doc, "clicks");
        else
            rc = s_badge (doc, event, badge, is_granted);
        rc |= pond_actors_set_uint (doc, "updated_seq", pond_event_seq (event));
        rc |= pond_actors_set_uint (doc, "updated_ts", pond_event_ts (event));
    }
    if (rc == 0)
        rc = pond_actors_put_take (view, key, &doc);
    cJSON_Delete (doc);
    pond_actors_text_free (label, label_buf);
    pond_actors_text_free (container, container_buf);
    pond_actors_text_free (badge, badge_buf);
    return rc ? -1 : 0;
}

//  ---------------------------------------------------------------------
//  Query: the document

static char *
s_query (pond_actor_t *actor, pond_view_t *view, const char *entity, const char *text, void *state)
{
    (void) text;
    (void) state;
    cJSON *doc = pond_actors_customer_doc (actor, view, entity, "is unknown to the mobile view");
    if (!doc)
        return NULL;
    char *result = pond_actors_print (doc);
    cJSON_Delete (doc);
    if (!result)
        pond_actors_error (actor, 500, "out of memory");
    return result;
}

void
pond_mobile_view_spec (pond_actor_spec_t *spec)
{
    memset (spec, 0, sizeof *spec);
    spec->name = POND_MOBILE_VIEW_NAME;
    spec->names = s_names;
    spec->description = "Keeps one document per customer for the mobile app: inventory, container\n"
                        "states (LABELED / UNLABELED), quack and click counts, badges. Query a\n"
                        "customer id to get the document; 404 if unknown.";
    spec->apply = s_apply;
    spec->query = s_query;
    spec->as_of = true;    //  apply and query need no state: time travel works
}
