/*  pond_badge_granter: turns quack counts into badges, and recomputes
    every customer's badges when the rules change.

    Applies QUACKED, BADGE_GRANTED, BADGE_REMOVED and BADGE_RULES_CHANGED.
    The rules in effect come from the log: the last BADGE_RULES_CHANGED
    (entity "badge-rules", data = the rules) sets them, v1 (Junior at 10,
    Master at 20) until there is one; so a rebuild decides exactly as the
    live actor did. The badges a customer holds change only when the log
    says so (BADGE_GRANTED adds, BADGE_REMOVED removes).

    View:
      "rules"        the rules in effect {"version", "badges", "seq", "ts"}
                     (absent: the built-in v1)
      "customer/ID"  {"customer", "quacks", "badges": {NAME: {"granted_ts",
                     "rules_version", "count"}}, "granting": {NAME: version},
                     "last_seq"}; "granting" holds the badges this actor
                     has emitted BADGE_GRANTED for and not yet seen back in
                     the log, so a burst of quacks grants a badge once.

    Live granting: on QUACKED, after counting, each badge of the rules in
    effect that is due (at <= quacks) and neither held nor being granted
    is emitted as BADGE_GRANTED {badge, rules_version, count}, caused by
    the QUACKED, with the id pond_actor_derive_id (quacked id,
    "grant/BADGE/VERSION"): re-applying the QUACKED (crash, rebuild) emits
    a duplicate the store ignores. Badges are never removed live. If the
    emit fails the QUACKED is refused (-1): the runtime stops, and the
    restarted actor applies it again.

    Applying BADGE_RULES_CHANGED re-evaluates the badges held: every
    customer's badges (held or "granting", and not "removing") against the
    new rules with the view's quack count; each difference is emitted as
    BADGE_REMOVED {badge, rules_version, count, reason} or BADGE_GRANTED
    {badge, rules_version, count}, id derived from the rules event's id
    and "ACTION/BADGE/CUSTOMER", ts the rules event's, and marked in the
    customer's document ("granting" / "removing": {NAME: version}) until
    it comes back through the log. Decided from the view alone, so a
    rebuild emits the very same events (duplicates the store ignores).
    Held sets everywhere are badges + granting - removing.

    Command "recompute", args = rules JSON (pond_badge_rules.h): the
    runtime first brings the view to the head of the log as of the
    command (pond_actor_catch_up); recompute validates the rules (ERROR
    400 with the reason), replays every QUACKED up to the view's position
    P from the store, counts per customer and plans the differences with
    the badges held. In the mesh (actor given, no emit hook) it then emits
    BADGE_RULES_CHANGED (entity "badge-rules", data = rules) if the rules
    differ from those in effect or the plan is not empty, and catches up
    again: applying that event emits the differences (above), which the
    result reports. In-process (actor NULL, or an emit hook) it emits, in
    this order:
      1. BADGE_RULES_CHANGED, unless those rules are already in effect;
      2. the planned BADGE_REMOVED and BADGE_GRANTED, as the rules event's
         application would.
    Ids: the rules event's is derived from "recompute/VERSION/P" (plus
    "/N" for the N-th further recompute this process runs at the same
    position), each change's from the rules event's id and
    "ACTION/BADGE/CUSTOMER"; so a retry over the same log (after a
    restart) emits duplicates only, while recomputing v2, then v1, then
    v2 again makes new events each time. The changes a
    recompute has emitted are also remembered in memory until they come
    back through the log, so running the same recompute twice in a row
    reports (and emits) nothing the second time.
    Result: {"rules_version", "rules_changed", "position", "customers",
    "quacks", "granted": [{"customer", "badge"}], "removed": [...],
    "granted_count", "removed_count", "seconds", and where they went:
    "count_seconds", "plan_seconds", "emit_seconds"} (lists cut at 1000).

    Query: a customer id -> {"customer", "quacks", "badges": [{"name",
    "granted_ts", "rules_version"}], "rules_version"} (404 if unknown);
    the text "rules" (with any entity) -> {"rules_version", "rules", "default"}.
*/
#ifndef POND_BADGE_GRANTER_H_INCLUDED
#define POND_BADGE_GRANTER_H_INCLUDED

#include "pond_actors.h"
#include "pond_badge_rules.h"

#ifdef __cplusplus
extern "C" {
#endif

#define POND_BADGE_GRANTER_NAME "badge-granter"
#define POND_BADGE_RULES_ENTITY "badge-rules"    //  entity of BADGE_RULES_CHANGED
#define POND_BADGE_RULES_KEY    "rules"          //  view key of the rules in effect
#define POND_BADGE_LIST_MAX     1000             //  changes listed in a result

typedef struct _pond_badge_granter_t pond_badge_granter_t;

//  The badge granter's own state (spec.state): what recompute emitted and
//  has not yet seen back in the log, and the test hooks below. Returns
//  NULL only if memory runs out.
pond_badge_granter_t *
    pond_badge_granter_new (void);

//  Destroy; accepts NULL; nulls the caller's pointer.
void
    pond_badge_granter_destroy (pond_badge_granter_t **self_p);

//  Test hook: send emitted events to fn instead of pond_actor_emit. fn
//  returns 0 or -1 and does not take the event.
typedef int (pond_badge_emit_fn) (void *arg, const pond_event_t *event);
void
    pond_badge_granter_set_emit (pond_badge_granter_t *self, pond_badge_emit_fn *fn, void *arg);

//  Test hook: where recompute reads the QUACKED events from instead of a
//  replay from the store. fn returns 1 with the next event in *event_p
//  (recompute destroys it), 0 at the end, or -1 with a reason in err.
typedef int (pond_badge_source_fn) (void *arg, pond_event_t **event_p, char *err, size_t errlen);
void
    pond_badge_granter_set_source (pond_badge_granter_t *self, pond_badge_source_fn *fn, void *arg);

//  The rules in effect in view: from its "rules" document, else v1.
void
    pond_badge_granter_rules (pond_view_t *view, pond_badge_rules_t *rules);

//  Run the recompute command (see above) with the rules in args. self and
//  actor may be NULL (in-process tests; then nothing is remembered, or
//  nothing is sent and no progress shown). Returns the result JSON
//  (caller frees), or NULL after pond_actor_set_error.
char *
    pond_badge_granter_recompute (pond_badge_granter_t *self, pond_actor_t *actor,
                                  pond_view_t *view, const char *args);

//  Fill a spec without state; set spec.state to a pond_badge_granter_t
//  to remember recompute's changes (and for the test hooks).
void
    pond_badge_granter_spec (pond_actor_spec_t *spec);

#ifdef __cplusplus
}
#endif

#endif
