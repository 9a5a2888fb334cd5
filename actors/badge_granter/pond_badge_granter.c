/*  pond_badge_granter: the badge granter actor. See pond_badge_granter.h.

    The decisions (which badge is due, what to grant or remove) are made by
    pond_badge_rules, which is pure; this file is the glue between that,
    the view, the log (emit, replay) and the query socket.
*/
#include "pond_badge_granter.h"

#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pond_client.h"

#define S_PROGRESS_EVERY  1000    //  events between two PROGRESS messages
#define S_REPLAY_WAIT     1000    //  msecs per wait for the next replayed event
#define S_REPLAY_PATIENCE 30      //  waits in a row without an event before giving up
#define S_EMIT_BATCH      1024    //  recompute: changes emitted in one pipelined batch
#define S_REPLAY_CREDIT   4       //  recompute: chunks in flight (up to 512 KiB each)

static const char *const s_names [] = { "QUACKED", "BADGE_GRANTED", "BADGE_REMOVED",
                                        "BADGE_RULES_CHANGED", NULL };

struct _pond_badge_granter_t {
    //  What recompute emitted and the log has not shown back yet:
    //  customer -> cJSON object {badge: true (granted) / false (removed)}
    zhash_t *pending;
    bool rules_pending;    //  a BADGE_RULES_CHANGED on its way
    pond_badge_rules_t pending_rules;
    uint64_t last_position;    //  position of the last recompute
    unsigned round;            //  recomputes before at that position
    //  What applying the last BADGE_RULES_CHANGED changed (its id), for
    //  the recompute that emitted it to report
    uint8_t reeval_id [POND_ID_SIZE];
    cJSON *reeval_granted;
    cJSON *reeval_removed;
    size_t reeval_granted_count;
    size_t reeval_removed_count;
    pond_badge_emit_fn *emit;    //  test hooks
    void *emit_arg;
    pond_badge_source_fn *source;
    void *source_arg;
};

static void
s_cjson_free (void *item)
{
    cJSON_Delete ((cJSON *) item);
}

pond_badge_granter_t *
pond_badge_granter_new (void)
{
    pond_badge_granter_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->pending = zhash_new ();
    if (!self->pending) {
        free (self);
        return NULL;
    }
    return self;
}

void
pond_badge_granter_destroy (pond_badge_granter_t **self_p)
{
    if (self_p && *self_p) {
        pond_badge_granter_t *self = *self_p;
        zhash_destroy (&self->pending);
        cJSON_Delete (self->reeval_granted);
        cJSON_Delete (self->reeval_removed);
        free (self);
        *self_p = NULL;
    }
}

void
pond_badge_granter_set_emit (pond_badge_granter_t *self, pond_badge_emit_fn *fn, void *arg)
{
    self->emit = fn;
    self->emit_arg = arg;
}

void
pond_badge_granter_set_source (pond_badge_granter_t *self, pond_badge_source_fn *fn, void *arg)
{
    self->source = fn;
    self->source_arg = arg;
}

//  ---------------------------------------------------------------------
//  Emitting, and the memory of what recompute emitted

//  Send one event through the test hook or the runtime. Returns 0 or -1.
static int
s_emit (pond_badge_granter_t *self, pond_actor_t *actor, pond_event_t *event)
{
    if (self && self->emit)
        return self->emit (self->emit_arg, event);
    if (actor)
        return pond_actor_emit (actor, event);
    zsys_debug ("no actor: %s %s not sent", pond_event_name (event), pond_event_entity (event));
    return 0;
}

//  Send count events through the test hook (one by one) or the runtime
//  (pipelined); acked [i] says which went. Returns 0 if all did, else -1.
static int
s_emit_many (pond_badge_granter_t *self, pond_actor_t *actor, pond_event_t **events, size_t count,
             bool *acked)
{
    if ((self && self->emit) || !actor) {
        int rc = 0;
        for (size_t i = 0; i < count; i++) {
            acked [i] = rc == 0 && s_emit (self, actor, events [i]) == 0;
            if (!acked [i])
                rc = -1;
        }
        return rc;
    }
    return pond_actor_emit_many (actor, events, count, acked);
}

//  Remember that badge of customer is on its way in (granted) or out
static void
s_pending_set (pond_badge_granter_t *self, const char *customer, const char *badge, bool granted)
{
    if (!self)
        return;
    cJSON *changes = (cJSON *) zhash_lookup (self->pending, customer);
    if (!changes) {
        changes = cJSON_CreateObject ();
        if (!changes || zhash_insert (self->pending, customer, changes)) {
            cJSON_Delete (changes);
            return;
        }
        zhash_freefn (self->pending, customer, s_cjson_free);
    }
    cJSON_DeleteItemFromObjectCaseSensitive (changes, badge);
    cJSON_AddItemToObject (changes, badge, cJSON_CreateBool (granted));
}

//  The log showed a change of badge for customer (granted or removed):
//  the same change is no longer pending. An older change the other way
//  (a grant of an earlier recompute, applied after a later recompute
//  emitted its removal) leaves the pending one in place: it is still on
//  its way, and the next recompute must count with it.
static void
s_pending_forget (pond_badge_granter_t *self, const char *customer, const char *badge, bool granted)
{
    if (!self)
        return;
    cJSON *changes = (cJSON *) zhash_lookup (self->pending, customer);
    cJSON *change = changes ? cJSON_GetObjectItemCaseSensitive (changes, badge) : NULL;
    if (change && cJSON_IsTrue (change) == granted) {
        cJSON_DeleteItemFromObjectCaseSensitive (changes, badge);
        if (!changes->child)
            zhash_delete (self->pending, customer);
    }
}

//  ---------------------------------------------------------------------
//  Rules and customer documents

void
pond_badge_granter_rules (pond_view_t *view, pond_badge_rules_t *rules)
{
    cJSON *doc = pond_view_get (view, POND_BADGE_RULES_KEY);
    char err [256];
    if (!doc || pond_badge_rules_from_cjson (doc, rules, err, sizeof err))
        pond_badge_rules_default (rules);
    cJSON_Delete (doc);
}

//  The customer's document, or a new empty one. NULL if memory runs out.
static cJSON *
s_customer_doc (pond_view_t *view, const char *key)
{
    cJSON *doc = pond_view_get (view, key);
    if (!cJSON_IsObject (doc)) {
        cJSON_Delete (doc);
        doc = cJSON_CreateObject ();
    }
    return doc;
}

//  The names of the badges doc holds or is being granted, and is not
//  being removed, as a set (cJSON object name -> true). Caller owns it.
static cJSON *
s_held_set (const cJSON *doc)
{
    cJSON *set = cJSON_CreateObject ();
    const char *groups [] = { "badges", "granting" };
    for (size_t group = 0; set && group < 2; group++) {
        const cJSON *item;
        cJSON_ArrayForEach (item, cJSON_GetObjectItemCaseSensitive (doc, groups [group]))
            if (item->string && !cJSON_GetObjectItemCaseSensitive (set, item->string))
                cJSON_AddItemToObject (set, item->string, cJSON_CreateTrue ());
    }
    const cJSON *item;
    cJSON_ArrayForEach (item, cJSON_GetObjectItemCaseSensitive (doc, "removing"))
        if (set && item->string)
            cJSON_DeleteItemFromObjectCaseSensitive (set, item->string);
    return set;
}

//  Mark badge as on its way in (granting) or out (removing) in doc, with
//  the rules version; a mark the other way goes. Returns 0 or -1.
static int
s_mark (cJSON *doc, const char *badge, bool grant, const char *version)
{
    cJSON *marks = pond_actors_object (doc, grant ? "granting" : "removing");
    cJSON *other = cJSON_GetObjectItemCaseSensitive (doc, grant ? "removing" : "granting");
    if (!marks)
        return -1;
    cJSON_DeleteItemFromObjectCaseSensitive (other, badge);
    if (grant && other && !other->child)
        cJSON_DeleteItemFromObjectCaseSensitive (doc, "removing");
    return pond_actors_set_string (marks, badge, version);
}

//  The names of a set as an array of borrowed strings; *count_p is set.
//  Caller frees the array (not the strings). NULL when the set is empty.
static const char **
s_set_names (const cJSON *set, size_t *count_p)
{
    int size = cJSON_GetArraySize (set);
    const char **names = size > 0 ? calloc ((size_t) size, sizeof *names) : NULL;
    size_t count = 0;
    const cJSON *item;
    if (names)
        cJSON_ArrayForEach (item, set)
            names [count++] = item->string;
    *count_p = count;
    return names;
}

//  A new badge event for customer with data {badge, rules_version, count
//  [, reason]}, id derived from cause and salt. NULL on failure (logged).
static pond_event_t *
s_badge_event (const char *name, const char *customer, const uint8_t *cause, const char *salt,
               const uint8_t *causation, const char *badge, const char *version, uint64_t count,
               const char *reason)
{
    pond_event_t *event = pond_event_new (name, customer);
    cJSON *data = cJSON_CreateObject ();
    char *json = NULL;
    if (event && data) {
        pond_actors_set_string (data, "badge", badge);
        pond_actors_set_string (data, "rules_version", version);
        pond_actors_set_uint (data, "count", count);
        if (reason)
            pond_actors_set_string (data, "reason", reason);
        json = pond_actors_print (data);
    }
    char err [POND_ERR_SIZE] = "out of memory";
    if (!json || pond_event_set_data_json (event, json, err, sizeof err)) {
        zsys_error ("cannot build %s for %s: %s", name, customer, err);
        pond_event_destroy (&event);
    }
    else {
        uint8_t id [POND_ID_SIZE];
        pond_actor_derive_id (cause, salt, id);
        pond_event_set_id (event, id);
        if (causation)
            pond_event_set_causation (event, causation);
    }
    free (json);
    cJSON_Delete (data);
    return event;
}

//  ---------------------------------------------------------------------
//  Apply

//  QUACKED: count it, then grant every due badge not held nor being granted
static int
s_apply_quacked (pond_badge_granter_t *self, pond_actor_t *actor, pond_view_t *view,
                 const pond_event_t *event, const char *key)
{
    cJSON *doc = s_customer_doc (view, key);
    if (!doc)
        return -1;
    const char *customer = pond_event_entity (event);
    uint64_t quacks = 0;
    pond_actors_uint (doc, "quacks", &quacks);
    quacks++;
    int rc = pond_actors_set_string (doc, "customer", customer);
    rc |= pond_actors_set_uint (doc, "quacks", quacks);
    rc |= pond_actors_set_uint (doc, "last_seq", pond_event_seq (event));

    pond_badge_rules_t rules;
    pond_badge_granter_rules (view, &rules);
    cJSON *held = s_held_set (doc);
    size_t held_count = 0;
    const char **names = s_set_names (held, &held_count);
    bool grant [POND_BADGE_MAX];
    bool *remove = held_count ? calloc (held_count, sizeof *remove) : NULL;
    if (!held || (held_count && (!names || !remove)))
        rc = -1;
    if (rc == 0 && pond_badge_rules_diff (&rules, quacks, names, held_count, grant, remove)) {
        cJSON *granting = pond_actors_object (doc, "granting");
        for (size_t index = 0; rc == 0 && index < rules.count; index++) {
            if (!grant [index])
                continue;
            const char *badge = rules.badges [index].name;
            char salt [128];
            snprintf (salt, sizeof salt, "grant/%s/%s", badge, rules.version);
            pond_event_t *granted = s_badge_event ("BADGE_GRANTED", customer, pond_event_id (event),
                                                   salt, pond_event_id (event), badge,
                                                   rules.version, quacks, NULL);
            if (granted)
                pond_event_set_ts (granted, pond_event_ts (event));
            if (!granted || !granting || s_emit (self, actor, granted))
                rc = -1;    //  refuse the QUACKED: applied again after restart
            else
                rc = s_mark (doc, badge, true, rules.version);
            pond_event_destroy (&granted);
        }
    }
    if (rc == 0)
        rc = pond_actors_put (view, key, doc);
    free (remove);
    free (names);
    cJSON_Delete (held);
    cJSON_Delete (doc);
    return rc ? -1 : 0;
}

//  BADGE_GRANTED / BADGE_REMOVED: the log changes what the customer holds
static int
s_apply_badge (pond_badge_granter_t *self, pond_view_t *view, const pond_event_t *event,
               const char *key, bool granted)
{
    char badge_buf [POND_ACTORS_TEXT_MAX];
    char *badge = pond_actors_text (event, "badge", badge_buf, sizeof badge_buf);
    if (!badge)
        return pond_actors_skip (view, event, "no \"badge\" in data");
    const char *customer = pond_event_entity (event);
    s_pending_forget (self, customer, badge, granted);
    cJSON *doc = pond_view_get (view, key);
    if (!cJSON_IsObject (doc) && !granted) {
        cJSON_Delete (doc);
        pond_actors_text_free (badge, badge_buf);
        return 0;    //  nothing to remove
    }
    if (!cJSON_IsObject (doc)) {
        cJSON_Delete (doc);
        doc = cJSON_CreateObject ();
    }
    int rc = doc ? 0 : -1;
    if (rc == 0) {
        rc |= pond_actors_set_string (doc, "customer", customer);
        if (!cJSON_GetObjectItemCaseSensitive (doc, "quacks"))
            rc |= pond_actors_set_uint (doc, "quacks", 0);
        cJSON *badges = pond_actors_object (doc, "badges");
        cJSON *granting = pond_actors_object (doc, "granting");
        if (!badges || !granting)
            rc = -1;
        else if (granted) {
            //  Granted twice (a retry, a live grant racing a recompute):
            //  the first grant stands
            if (!cJSON_GetObjectItemCaseSensitive (badges, badge)) {
                cJSON *held = cJSON_CreateObject ();
                uint64_t count = 0;
                pond_actors_data_uint (event, "count", &count);
                char version_buf [POND_ACTORS_TEXT_MAX];
                char *version = pond_actors_text (event, "rules_version", version_buf,
                                                  sizeof version_buf);
                rc |= held ? 0 : -1;
                rc |= pond_actors_set_uint (held, "granted_ts", pond_event_ts (event));
                rc |= pond_actors_set_string (held, "rules_version", version ? version : "");
                pond_actors_text_free (version, version_buf);
                rc |= pond_actors_set_uint (held, "count", count);
                cJSON_AddItemToObject (badges, badge, held);
            }
        }
        else
            cJSON_DeleteItemFromObjectCaseSensitive (badges, badge);
        //  The change came back: its mark goes (a mark the other way
        //  stays: that change is still on its way)
        cJSON *marks = cJSON_GetObjectItemCaseSensitive (doc, granted ? "granting" : "removing");
        cJSON_DeleteItemFromObjectCaseSensitive (marks, badge);
        if (marks && !marks->child && !granted)
            cJSON_DeleteItemFromObjectCaseSensitive (doc, "removing");
        rc |= pond_actors_set_uint (doc, "last_seq", pond_event_seq (event));
    }
    if (rc == 0)
        rc = pond_actors_put (view, key, doc);
    cJSON_Delete (doc);
    pond_actors_text_free (badge, badge_buf);
    return rc ? -1 : 0;
}

//  BADGE_RULES_CHANGED: these rules are in effect from now on
static int s_reevaluate (pond_badge_granter_t *self, pond_actor_t *actor, pond_view_t *view,
                         const pond_event_t *event, const pond_badge_rules_t *rules);

static int
s_apply_rules (pond_badge_granter_t *self, pond_actor_t *actor, pond_view_t *view,
               const pond_event_t *event)
{
    cJSON *data = pond_actors_data (event);
    pond_badge_rules_t rules;
    char err [256];
    if (!data || pond_badge_rules_from_cjson (data, &rules, err, sizeof err)) {
        cJSON_Delete (data);
        char reason [300];
        snprintf (reason, sizeof reason, "invalid rules: %s", data ? err : "out of memory");
        return pond_actors_skip (view, event, reason);
    }
    cJSON_Delete (data);
    if (self && self->rules_pending && pond_badge_rules_equal (&self->pending_rules, &rules))
        self->rules_pending = false;
    cJSON *doc = pond_badge_rules_to_cjson (&rules);
    int rc = doc ? 0 : -1;
    rc |= pond_actors_set_uint (doc, "seq", pond_event_seq (event));
    rc |= pond_actors_set_uint (doc, "ts", pond_event_ts (event));
    if (rc == 0)
        rc = pond_actors_put (view, POND_BADGE_RULES_KEY, doc);
    cJSON_Delete (doc);
    zsys_info ("badge rules %s in effect from seq %" PRIu64, rules.version, pond_event_seq (event));
    //  The badges held now follow the new rules too, not only the
    //  quacks to come
    if (rc == 0)
        rc = s_reevaluate (self, actor, view, event, &rules);
    return rc ? -1 : 0;
}

static int
s_apply (pond_actor_t *actor, pond_view_t *view, const pond_event_t *event, void *state)
{
    pond_badge_granter_t *self = (pond_badge_granter_t *) state;
    const char *name = pond_event_name (event);
    if (streq (name, "BADGE_RULES_CHANGED"))
        return s_apply_rules (self, actor, view, event);

    char key [POND_ACTORS_KEY_MAX];
    bool is_quack = streq (name, "QUACKED");
    bool is_grant = streq (name, "BADGE_GRANTED");
    bool is_remove = streq (name, "BADGE_REMOVED");
    if (!is_quack && !is_grant && !is_remove)
        return 0;    //  not ours: the runtime filters, be safe
    if (pond_actors_customer_key (pond_event_entity (event), key, sizeof key))
        return pond_actors_skip (view, event, "no usable entity");
    if (is_quack)
        return s_apply_quacked (self, actor, view, event, key);
    return s_apply_badge (self, view, event, key, is_grant);
}

//  ---------------------------------------------------------------------
//  Recompute

typedef struct {
    char *customer;
    const char *badge;    //  in the rules or in the held set
    char *badge_copy;     //  owned copy when not in the rules
    bool grant;           //  else remove
    uint64_t count;
} s_change_t;

typedef struct {
    pond_badge_granter_t *self;
    const pond_badge_rules_t *rules;
    zhash_t *counts;    //  customer -> uint64_t * (quacks)
    s_change_t *changes;
    size_t change_count;
    size_t change_max;
    size_t customers;    //  customers considered
    int rc;
} s_plan_t;

static int
s_plan_add (s_plan_t *plan, const char *customer, const char *badge, bool in_rules, bool grant,
            uint64_t count)
{
    if (plan->change_count == plan->change_max) {
        size_t max = plan->change_max ? plan->change_max * 2 : 64;
        s_change_t *changes = realloc (plan->changes, max * sizeof *changes);
        if (!changes)
            return -1;
        plan->changes = changes;
        plan->change_max = max;
    }
    s_change_t *change = &plan->changes [plan->change_count];
    memset (change, 0, sizeof *change);
    change->customer = strdup (customer);
    if (!in_rules) {
        change->badge_copy = strdup (badge);
        badge = change->badge_copy;
    }
    change->badge = badge;
    change->grant = grant;
    change->count = count;
    if (!change->customer || !change->badge) {
        free (change->customer);
        free (change->badge_copy);
        return -1;
    }
    plan->change_count++;
    return 0;
}

//  Plan the changes for one customer: count quacks, doc the view's (or
//  NULL). The held set is the view's, corrected by what this actor
//  emitted and has not seen back yet.
static int
s_plan_customer (s_plan_t *plan, const char *customer, uint64_t count, const cJSON *doc)
{
    cJSON *held = doc ? s_held_set (doc) : cJSON_CreateObject ();
    if (!held)
        return -1;
    cJSON *pending = plan->self ? (cJSON *) zhash_lookup (plan->self->pending, customer) : NULL;
    const cJSON *item;
    cJSON_ArrayForEach (item, pending) {
        bool is_held = cJSON_GetObjectItemCaseSensitive (held, item->string) != NULL;
        if (cJSON_IsTrue (item) && !is_held)
            cJSON_AddItemToObject (held, item->string, cJSON_CreateTrue ());
        else if (cJSON_IsFalse (item) && is_held)
            cJSON_DeleteItemFromObjectCaseSensitive (held, item->string);
    }
    size_t held_count = 0;
    const char **names = s_set_names (held, &held_count);
    bool grant [POND_BADGE_MAX];
    bool *remove = held_count ? calloc (held_count, sizeof *remove) : NULL;
    int rc = held_count && (!names || !remove) ? -1 : 0;
    const pond_badge_rules_t *rules = plan->rules;
    if (rc == 0 && pond_badge_rules_diff (rules, count, names, held_count, grant, remove)) {
        //  Removals first, then grants, each in a stable order
        for (size_t index = 0; rc == 0 && index < held_count; index++)
            if (remove [index])
                rc = s_plan_add (plan, customer, names [index], false, false, count);
        for (size_t index = 0; rc == 0 && index < rules->count; index++)
            if (grant [index])
                rc = s_plan_add (plan, customer, rules->badges [index].name, true, true, count);
    }
    plan->customers++;
    free (remove);
    free (names);
    cJSON_Delete (held);
    return rc;
}

//  pond_view_scan callback: each customer document of the view
static int
s_plan_scanned (const char *key, const cJSON *doc, void *arg)
{
    s_plan_t *plan = (s_plan_t *) arg;
    const char *customer = key + strlen (POND_ACTORS_CUSTOMER_PREFIX);
    uint64_t count = 0;
    uint64_t *counted = (uint64_t *) zhash_lookup (plan->counts, customer);
    if (counted) {
        count = *counted;
        zhash_delete (plan->counts, customer);
    }
    plan->rc = s_plan_customer (plan, customer, count, doc);
    return plan->rc;
}

//  The replay from the store as a source of QUACKED events
typedef struct {
    pond_reader_t *replay;
} s_replay_source_t;

static int
s_replay_next (void *arg, pond_event_t **event_p, char *err, size_t errlen)
{
    s_replay_source_t *source = (s_replay_source_t *) arg;
    for (int waits = 0; waits < S_REPLAY_PATIENCE; waits++) {
        *event_p = pond_reader_next (source->replay, S_REPLAY_WAIT);
        if (*event_p)
            return 1;
        int code = pond_reader_code (source->replay);
        if (code == 200)
            return 0;
        if (code != 0) {
            snprintf (err, errlen, "replay failed (%d): %s", code,
                      pond_reader_reason (source->replay));
            return -1;
        }
    }
    snprintf (err, errlen, "replay sent nothing for %d seconds",
              S_REPLAY_PATIENCE * S_REPLAY_WAIT / 1000);
    return -1;
}

static void
s_uint_free (void *item)
{
    free (item);
}

//  Count the QUACKED events of the log up to position per customer.
//  Returns 0, or -1 after setting the error.
static int
s_count_quacks (pond_badge_granter_t *self, pond_actor_t *actor, uint64_t position, zhash_t *counts,
                uint64_t *quacks_p)
{
    pond_badge_source_fn *next = self ? self->source : NULL;
    void *arg = self ? self->source_arg : NULL;
    s_replay_source_t replay_source = { NULL };
    if (!next && position > 0) {
        if (!actor) {
            pond_actors_error (actor, 500, "no store to replay from");
            return -1;
        }
        pond_replay_req_t request;
        memset (&request, 0, sizeof request);
        //  By name, not the log filtered by name: one Seek into the
        //  covering by_name index, then only QUACKED events are read. The
        //  order is event time, which counting does not mind; events past
        //  position (stored since) are skipped below
        request.names_count = 1;
        strcpy (request.names [0], "QUACKED");
        request.credit = S_REPLAY_CREDIT;
        replay_source.replay = pond_actor_replay (actor, &request);
        if (!replay_source.replay) {
            pond_actors_error (actor, 503, "cannot start a replay of QUACKED from the store");
            return -1;
        }
        next = s_replay_next;
        arg = &replay_source;
    }
    int rc = 0;
    uint64_t quacks = 0;
    char err [256] = "";
    while (next) {
        pond_event_t *event = NULL;
        int got = next (arg, &event, err, sizeof err);
        if (got <= 0) {
            rc = got;
            break;
        }
        const char *customer = pond_event_entity (event);
        if (streq (pond_event_name (event), "QUACKED") && pond_event_seq (event) <= position
            && *customer) {
            uint64_t *count = (uint64_t *) zhash_lookup (counts, customer);
            if (!count) {
                count = calloc (1, sizeof *count);
                if (!count || zhash_insert (counts, customer, count)) {
                    free (count);
                    snprintf (err, sizeof err, "out of memory");
                    rc = -1;
                    pond_event_destroy (&event);
                    break;
                }
                zhash_freefn (counts, customer, s_uint_free);
            }
            (*count)++;
            quacks++;
            if (actor && quacks % S_PROGRESS_EVERY == 0)
                pond_actor_progress (actor, pond_event_seq (event), position);
        }
        pond_event_destroy (&event);
    }
    pond_reader_destroy (&replay_source.replay);
    if (rc) {
        pond_actors_error (actor, 502, "recompute stopped after %" PRIu64 " quacks: %s", quacks,
                           err);
        return -1;
    }
    if (actor)
        pond_actor_progress (actor, position, position);
    *quacks_p = quacks;
    return 0;
}

//  The result list entry {"customer", "badge"}
static void
s_list_add (cJSON *list, const s_change_t *change)
{
    if (cJSON_GetArraySize (list) >= POND_BADGE_LIST_MAX)
        return;
    cJSON *entry = cJSON_CreateObject ();
    if (entry) {
        cJSON_AddStringToObject (entry, "customer", change->customer);
        cJSON_AddStringToObject (entry, "badge", change->badge);
        cJSON_AddItemToArray (list, entry);
    }
}

//  The event of one change under rules, derived from the rules event
//  rules_id (its id derived from it: "grant/BADGE/CUSTOMER" or
//  "remove/..."), caused by causation (the rules event, or the command
//  that emitted it), at time ts (0: now). NULL on failure (logged).
static pond_event_t *
s_change_event (const pond_badge_rules_t *rules, const uint8_t *rules_id, const uint8_t *causation,
                uint64_t ts, const s_change_t *change)
{
    char reason [128] = "";
    char salt [POND_ENTITY_MAX + 128];
    if (!change->grant)
        pond_badge_rules_reason (rules, change->badge, change->count, reason, sizeof reason);
    snprintf (salt, sizeof salt, "%s/%s/%s", change->grant ? "grant" : "remove", change->badge,
              change->customer);
    pond_event_t *event = s_badge_event (
        change->grant ? "BADGE_GRANTED" : "BADGE_REMOVED", change->customer, rules_id, salt,
        causation, change->badge, rules->version, change->count, change->grant ? NULL : reason);
    if (event && ts)
        pond_event_set_ts (event, ts);
    return event;
}

static void
s_plan_free (s_plan_t *plan)
{
    for (size_t index = 0; index < plan->change_count; index++) {
        free (plan->changes [index].customer);
        free (plan->changes [index].badge_copy);
    }
    free (plan->changes);
    plan->changes = NULL;
    plan->change_count = plan->change_max = 0;
}

//  pond_view_scan callback of s_reevaluate: the view's own count
static int
s_reeval_scanned (const char *key, const cJSON *doc, void *arg)
{
    s_plan_t *plan = (s_plan_t *) arg;
    uint64_t count = 0;
    pond_actors_uint (doc, "quacks", &count);
    plan->rc = s_plan_customer (plan, key + strlen (POND_ACTORS_CUSTOMER_PREFIX), count, doc);
    return plan->rc;
}

//  Applying BADGE_RULES_CHANGED: every customer's badges held (or on
//  their way in, and not on their way out) against the new rules with
//  the quacks counted so far. Each difference is emitted as an event
//  (deterministic: id derived from the rules event's, its time, the
//  count as of it; so a rebuild emits duplicates the store ignores) and
//  marked in the customer's document ("granting" / "removing") until
//  it comes back through the log. Returns 0 or -1 (refuse the event:
//  applied again after a restart).
static int
s_reevaluate (pond_badge_granter_t *self, pond_actor_t *actor, pond_view_t *view,
              const pond_event_t *event, const pond_badge_rules_t *rules)
{
    //  Decided from the view alone (no memory of this process): the
    //  same on every replay of the log
    s_plan_t plan = { NULL, rules, NULL, NULL, 0, 0, 0, 0 };
    int rc = pond_view_scan (view, POND_ACTORS_CUSTOMER_PREFIX, s_reeval_scanned, &plan);
    if (rc == 0)
        rc = plan.rc;
    if (self) {
        memcpy (self->reeval_id, pond_event_id (event), POND_ID_SIZE);
        cJSON_Delete (self->reeval_granted);
        cJSON_Delete (self->reeval_removed);
        self->reeval_granted = cJSON_CreateArray ();
        self->reeval_removed = cJSON_CreateArray ();
        self->reeval_granted_count = self->reeval_removed_count = 0;
    }
    //  What a recompute's rules event changes was caused by that command
    //  (its causation); a rules event of no command caused them itself
    const uint8_t *causation = pond_event_causation (event);
    if (!causation)
        causation = pond_event_id (event);
    for (size_t index = 0; rc == 0 && index < plan.change_count; index++) {
        const s_change_t *change = &plan.changes [index];
        pond_event_t *changed = s_change_event (rules, pond_event_id (event), causation,
                                                pond_event_ts (event), change);
        char key [POND_ACTORS_KEY_MAX];
        cJSON *doc = NULL;
        //  s_emit: inside the runtime's batch it is queued, and goes out
        //  after what events before this one emitted, in order
        if (!changed || s_emit (self, actor, changed)
            || pond_actors_customer_key (change->customer, key, sizeof key)
            || !(doc = s_customer_doc (view, key))
            || s_mark (doc, change->badge, change->grant, rules->version)
            || pond_actors_put (view, key, doc))
            rc = -1;
        cJSON_Delete (doc);
        pond_event_destroy (&changed);
        if (rc == 0 && self) {
            s_list_add (change->grant ? self->reeval_granted : self->reeval_removed, change);
            if (change->grant)
                self->reeval_granted_count++;
            else
                self->reeval_removed_count++;
        }
    }
    if (plan.change_count)
        zsys_info ("rules %s at seq %" PRIu64 ": %zu change%s to the badges held%s", rules->version,
                   pond_event_seq (event), plan.change_count, plan.change_count == 1 ? "" : "s",
                   rc ? " (failed)" : "");
    s_plan_free (&plan);
    return rc;
}

char *
pond_badge_granter_recompute (pond_badge_granter_t *self, pond_actor_t *actor, pond_view_t *view,
                              const char *args)
{
    int64_t started = zclock_usecs ();
    pond_badge_rules_t rules;
    char err [256];
    if (pond_badge_rules_parse (args, &rules, err, sizeof err)) {
        pond_actors_error (actor, 400, "%s", err);
        return NULL;
    }
    uint64_t position = pond_view_position (view);

    //  1. Count every QUACKED of the log up to the view's position
    zhash_t *counts = zhash_new ();
    uint64_t quacks = 0;
    if (!counts) {
        pond_actors_error (actor, 500, "out of memory");
        return NULL;
    }
    if (s_count_quacks (self, actor, position, counts, &quacks)) {
        zhash_destroy (&counts);
        return NULL;
    }
    int64_t counted = zclock_usecs ();

    //  2. Plan: every customer of the view, then those only the log knows
    s_plan_t plan = { self, &rules, counts, NULL, 0, 0, 0, 0 };
    int rc = pond_view_scan (view, POND_ACTORS_CUSTOMER_PREFIX, s_plan_scanned, &plan);
    if (rc == 0 && plan.rc == 0) {
        zlist_t *rest = zhash_keys (counts);
        if (rest) {
            zlist_sort (rest, NULL);
            for (const char *customer = (const char *) zlist_first (rest); customer && rc == 0;
                 customer = (const char *) zlist_next (rest))
                rc = s_plan_customer (&plan, customer,
                                      *(uint64_t *) zhash_lookup (counts, customer), NULL);
            zlist_destroy (&rest);
        }
        else
            rc = -1;
    }
    zhash_destroy (&counts);
    if (rc || plan.rc)
        pond_actors_error (actor, 500,
                           "cannot plan the recompute (view unreadable or out of memory)");

    int64_t planned = zclock_usecs ();

    //  3. The rules first, unless already in effect (or on their way)
    pond_badge_rules_t current;
    pond_badge_granter_rules (view, &current);
    if (self && self->rules_pending)
        current = self->pending_rules;
    bool rules_changed = !pond_badge_rules_equal (&current, &rules);
    uint8_t zero [POND_ID_SIZE] = { 0 };
    uint8_t rules_id [POND_ID_SIZE];
    char salt [POND_ENTITY_MAX + 128];
    //  Several recomputes at one position (v2, v1, v2 before the log has
    //  shown anything back) need distinct ids; a retry after a restart
    //  gets the same ones, and the store ignores what it already has
    unsigned round = 0;
    if (self) {
        if (self->last_position == position && position > 0)
            round = ++self->round;
        else
            self->round = 0;
        self->last_position = position;
    }
    //  A command with an id (the broker's) derives its own: another
    //  command is another rules event, the same command sent again (after
    //  a restart) the same one
    const uint8_t *command_id = actor ? pond_actor_command_id (actor) : NULL;
    char command_hex [2 * POND_ID_SIZE + 1] = "";
    for (size_t i = 0; command_id && i < POND_ID_SIZE; i++)
        snprintf (command_hex + 2 * i, 3, "%02x", command_id [i]);
    if (command_id)
        snprintf (salt, sizeof salt, "recompute/%s/%" PRIu64 "/command/%s", rules.version, position,
                  command_hex);
    else if (round)
        snprintf (salt, sizeof salt, "recompute/%s/%" PRIu64 "/%u", rules.version, position, round);
    else
        snprintf (salt, sizeof salt, "recompute/%s/%" PRIu64, rules.version, position);
    pond_actor_derive_id (zero, salt, rules_id);
    //  In the mesh (actor given) the rules event does the work: applying
    //  it re-evaluates every customer and emits the differences (see
    //  s_reevaluate), so a recompute and a rebuild decide alike. It goes
    //  out also when the rules are the same but the badges held are not
    //  what they give. In-process (no actor) the plan is emitted here
    bool delegate = actor && !(self && self->emit);
    bool emit_rules = rules_changed || (delegate && plan.change_count > 0);
    uint64_t rules_ts = 0;
    if (rc == 0 && plan.rc == 0 && emit_rules) {
        pond_event_t *event = pond_event_new ("BADGE_RULES_CHANGED", POND_BADGE_RULES_ENTITY);
        cJSON *data = pond_badge_rules_to_cjson (&rules);
        char *json = data ? pond_actors_print (data) : NULL;
        char reason [POND_ERR_SIZE] = "out of memory";
        if (!event || !json || pond_event_set_data_json (event, json, reason, sizeof reason)) {
            pond_actors_error (actor, 500, "cannot build BADGE_RULES_CHANGED: %s", reason);
            rc = -1;
        }
        else {
            pond_event_set_id (event, rules_id);
            rules_ts = pond_event_ts (event);
            if (s_emit (self, actor, event)) {
                pond_actors_error (actor, 503,
                                   "cannot emit BADGE_RULES_CHANGED; "
                                   "nothing changed, run recompute again");
                rc = -1;
            }
            else if (self) {
                self->rules_pending = true;
                self->pending_rules = rules;
            }
        }
        free (json);
        cJSON_Delete (data);
        pond_event_destroy (&event);
    }

    //  4. The differences, each as an event, S_EMIT_BATCH at a time
    //  through pond_actor_emit_many: pipelined, so the store commits many
    //  in one group instead of one round trip and one fsync each
    cJSON *result = cJSON_CreateObject ();
    cJSON *granted = cJSON_CreateArray ();
    cJSON *removed = cJSON_CreateArray ();
    size_t granted_count = 0, removed_count = 0;
    pond_event_t *batch [S_EMIT_BATCH];
    bool acked [S_EMIT_BATCH];
    if (rc == 0 && plan.rc == 0 && delegate && emit_rules) {
        //  Apply the rules event (and what came before it): that emits
        //  the changes; report what it did. Then apply those changes too,
        //  so a query right after the answer sees them (read your writes)
        if (pond_actor_catch_up (actor) || pond_actor_catch_up (actor))
            rc = -1;
        else if (self && memcmp (self->reeval_id, rules_id, POND_ID_SIZE) == 0
                 && self->reeval_granted && self->reeval_removed) {
            cJSON_Delete (granted);
            cJSON_Delete (removed);
            granted = cJSON_Duplicate (self->reeval_granted, true);
            removed = cJSON_Duplicate (self->reeval_removed, true);
            granted_count = self->reeval_granted_count;
            removed_count = self->reeval_removed_count;
        }
    }
    for (size_t first = 0; rc == 0 && plan.rc == 0 && !delegate && first < plan.change_count;
         first += S_EMIT_BATCH) {
        size_t count = plan.change_count - first;
        if (count > S_EMIT_BATCH)
            count = S_EMIT_BATCH;
        size_t built = 0;
        for (; built < count; built++) {
            batch [built] = s_change_event (&rules, rules_id, command_id ? command_id : rules_id,
                                            rules_ts, &plan.changes [first + built]);
            if (!batch [built])
                break;
        }
        if (built < count)
            rc = -1;
        else
            rc = s_emit_many (self, actor, batch, count, acked);
        size_t done = 0;
        for (size_t index = 0; index < built; index++) {
            s_change_t *change = &plan.changes [first + index];
            if (rc == 0 || acked [index]) {
                done++;
                s_pending_set (self, change->customer, change->badge, change->grant);
                if (change->grant) {
                    s_list_add (granted, change);
                    granted_count++;
                }
                else {
                    s_list_add (removed, change);
                    removed_count++;
                }
            }
            pond_event_destroy (&batch [index]);
        }
        if (rc)
            pond_actors_error (actor, 503,
                               "cannot emit every change: %zu of %zu done; "
                               "run recompute again to finish",
                               first + done, plan.change_count);
    }
    char *text = NULL;
    if (rc == 0 && plan.rc == 0 && result && granted && removed) {
        cJSON_AddStringToObject (result, "rules_version", rules.version);
        cJSON_AddBoolToObject (result, "rules_changed", rules_changed);
        pond_actors_set_uint (result, "position", position);
        pond_actors_set_uint (result, "customers", plan.customers);
        pond_actors_set_uint (result, "quacks", quacks);
        cJSON_AddItemToObject (result, "granted", granted);
        cJSON_AddItemToObject (result, "removed", removed);
        granted = removed = NULL;
        pond_actors_set_uint (result, "granted_count", granted_count);
        pond_actors_set_uint (result, "removed_count", removed_count);
        int64_t now = zclock_usecs ();
        cJSON_AddNumberToObject (result, "seconds", (double) (now - started) / 1e6);
        //  Where the time went: replay and count, plan, emit
        cJSON_AddNumberToObject (result, "count_seconds", (double) (counted - started) / 1e6);
        cJSON_AddNumberToObject (result, "plan_seconds", (double) (planned - counted) / 1e6);
        cJSON_AddNumberToObject (result, "emit_seconds", (double) (now - planned) / 1e6);
        text = pond_actors_print (result);
        if (!text)
            pond_actors_error (actor, 500, "out of memory");
        else
            zsys_info ("recompute %s at position %" PRIu64 ": %zu customers, %" PRIu64
                       " quacks, %zu granted, %zu removed",
                       rules.version, position, plan.customers, quacks, granted_count,
                       removed_count);
    }
    else if (rc == 0 && plan.rc == 0)
        pond_actors_error (actor, 500, "out of memory");
    cJSON_Delete (granted);
    cJSON_Delete (removed);
    cJSON_Delete (result);
    s_plan_free (&plan);
    return text;
}

//  ---------------------------------------------------------------------
//  Query and command

//  Badges in the order they were granted (ties by name)
static int
s_compare_badges (const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *) a;
    const cJSON *y = *(const cJSON *const *) b;
    uint64_t x_ts = 0, y_ts = 0;
    pond_actors_uint (x, "granted_ts", &x_ts);
    pond_actors_uint (y, "granted_ts", &y_ts);
    if (x_ts != y_ts)
        return x_ts < y_ts ? -1 : 1;
    return strcmp (x->string, y->string);
}

static char *
s_query_rules (pond_actor_t *actor, pond_view_t *view)
{
    pond_badge_rules_t rules;
    pond_badge_granter_rules (view, &rules);
    cJSON *stored = pond_view_get (view, POND_BADGE_RULES_KEY);
    cJSON *answer = cJSON_CreateObject ();
    cJSON *tree = pond_badge_rules_to_cjson (&rules);
    char *result = NULL;
    if (answer && tree) {
        cJSON_AddStringToObject (answer, "rules_version", rules.version);
        cJSON_AddItemToObject (answer, "rules", tree);
        tree = NULL;
        cJSON_AddBoolToObject (answer, "default", stored == NULL);
        result = pond_actors_print (answer);
    }
    cJSON_Delete (tree);
    cJSON_Delete (answer);
    cJSON_Delete (stored);
    if (!result)
        pond_actors_error (actor, 500, "out of memory");
    return result;
}

static char *
s_query (pond_actor_t *actor, pond_view_t *view, const char *entity, const char *text, void *state)
{
    (void) state;
    //  The rules are asked for by the question, not by a reserved entity:
    //  any customer id, "badge-rules" too, can be queried
    if (text && streq (text, "rules"))
        return s_query_rules (actor, view);
    cJSON *doc = pond_actors_customer_doc (actor, view, entity, "is unknown to the badge granter");
    if (!doc)
        return NULL;
    pond_badge_rules_t rules;
    pond_badge_granter_rules (view, &rules);
    uint64_t quacks = 0;
    pond_actors_uint (doc, "quacks", &quacks);

    const cJSON *held = cJSON_GetObjectItemCaseSensitive (doc, "badges");
    int size = cJSON_GetArraySize (held);
    const cJSON **items = size > 0 ? calloc ((size_t) size, sizeof *items) : NULL;
    size_t count = 0;
    const cJSON *item;
    if (items)
        cJSON_ArrayForEach (item, held)
            if (item->string && cJSON_IsObject (item))
                items [count++] = item;
    if (count > 1)
        qsort (items, count, sizeof *items, s_compare_badges);

    cJSON *answer = cJSON_CreateObject ();
    cJSON *badges = cJSON_CreateArray ();
    char *result = NULL;
    if (answer && badges && (size == 0 || items)) {
        pond_actors_set_string (answer, "customer", entity);
        pond_actors_set_uint (answer, "quacks", quacks);
        for (size_t index = 0; index < count; index++) {
            cJSON *badge = cJSON_CreateObject ();
            if (!badge)
                break;
            uint64_t granted_ts = 0;
            pond_actors_uint (items [index], "granted_ts", &granted_ts);
            const char *version = pond_actors_string (items [index], "rules_version");
            pond_actors_set_string (badge, "name", items [index]->string);
            pond_actors_set_uint (badge, "granted_ts", granted_ts);
            pond_actors_set_string (badge, "rules_version", version ? version : "");
            cJSON_AddItemToArray (badges, badge);
        }
        cJSON_AddItemToObject (answer, "badges", badges);
        badges = NULL;
        pond_actors_set_string (answer, "rules_version", rules.version);
        result = pond_actors_print (answer);
    }
    free (items);
    cJSON_Delete (badges);
    cJSON_Delete (answer);
    cJSON_Delete (doc);
    if (!result)
        pond_actors_error (actor, 500, "out of memory");
    return result;
}

static char *
s_command (pond_actor_t *actor, pond_view_t *view, const char *command, const char *args,
           void *state)
{
    if (command && streq (command, "recompute"))
        return pond_badge_granter_recompute ((pond_badge_granter_t *) state, actor, view, args);
    pond_actors_error (actor, 404, "unknown command '%s' (the badge granter knows: recompute)",
                       command ? command : "");
    return NULL;
}

//  --verify: every customer holds (or has on its way) exactly the badges
//  the rules in effect give for its count
typedef struct {
    const pond_badge_rules_t *rules;
    char *text;    //  what disagrees, one line each
    size_t size;
    size_t found;
} s_check_t;

static int
s_check_customer (const char *key, const cJSON *doc, void *arg)
{
    s_check_t *check = (s_check_t *) arg;
    uint64_t quacks = 0;
    pond_actors_uint (doc, "quacks", &quacks);
    cJSON *held = s_held_set (doc);
    size_t held_count = 0;
    const char **names = held ? s_set_names (held, &held_count) : NULL;
    bool grant [POND_BADGE_MAX];
    bool *remove = held_count ? calloc (held_count, sizeof *remove) : NULL;
    int rc = !held || (held_count && (!names || !remove)) ? -1 : 0;
    const pond_badge_rules_t *rules = check->rules;
    if (rc == 0 && pond_badge_rules_diff (rules, quacks, names, held_count, grant, remove)) {
        const char *customer = key + strlen (POND_ACTORS_CUSTOMER_PREFIX);
        for (size_t index = 0; index < rules->count + held_count; index++) {
            char line [POND_ENTITY_MAX + 200] = "";
            if (index < rules->count && grant [index])
                snprintf (line, sizeof line,
                          "  %s lacks %s: rules %s give it at %" PRIu64 ", it has %" PRIu64
                          " quacks\n",
                          customer, rules->badges [index].name, rules->version,
                          rules->badges [index].at, quacks);
            else if (index >= rules->count && remove [index - rules->count]) {
                char reason [128];
                pond_badge_rules_reason (rules, names [index - rules->count], quacks, reason,
                                         sizeof reason);
                snprintf (line, sizeof line, "  %s holds %s: %s\n", customer,
                          names [index - rules->count], reason);
            }
            if (*line && check->found++ < 10) {
                char *text = zsys_sprintf ("%s%s", check->text ? check->text : "", line);
                zstr_free (&check->text);
                check->text = text;
            }
        }
    }
    free (remove);
    free (names);
    cJSON_Delete (held);
    return rc;
}

static char *
s_check (pond_actor_t *actor, pond_view_t *view, void *state)
{
    (void) actor;
    (void) state;
    pond_badge_rules_t rules;
    pond_badge_granter_rules (view, &rules);
    s_check_t check = { &rules, NULL, 0, 0 };
    if (pond_view_scan (view, POND_ACTORS_CUSTOMER_PREFIX, s_check_customer, &check)) {
        zstr_free (&check.text);
        return strdup ("  cannot read the view\n");
    }
    if (check.found > 10) {
        char *text = zsys_sprintf ("%s  ... %zu disagreements in all\n", check.text, check.found);
        zstr_free (&check.text);
        check.text = text;
    }
    return check.text;
}

static int
s_start (pond_actor_t *actor, pond_view_t *view, void *state)
{
    (void) actor;
    (void) state;
    pond_badge_rules_t rules;
    pond_badge_granter_rules (view, &rules);
    zsys_info ("badge rules %s in effect (%zu badges)", rules.version, rules.count);
    return 0;
}

void
pond_badge_granter_spec (pond_actor_spec_t *spec)
{
    memset (spec, 0, sizeof *spec);
    spec->name = POND_BADGE_GRANTER_NAME;
    spec->names = s_names;
    spec->description =
        "Turns quack counts into badges under the rules in effect (v1: Junior at\n"
        "10, Master at 20, until a BADGE_RULES_CHANGED says otherwise), emitting\n"
        "BADGE_GRANTED as customers reach them. Command recompute (args: rules\n"
        "JSON) replays every QUACKED and emits only the differences. Query a\n"
        "customer id for {\"customer\", \"quacks\", \"badges\", \"rules_version\"};\n"
        "with the text \"rules\" (any entity) for the rules in effect.";
    spec->apply = s_apply;
    spec->query = s_query;
    spec->as_of = true;    //  apply and query need no state: time travel works
    spec->command = s_command;
    spec->start = s_start;
    spec->check = s_check;
}
