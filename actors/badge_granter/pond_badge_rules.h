/*  pond_badge_rules: badge rules and the decision what to grant or remove.

    Rules are JSON, e.g.
        {"version": "v2", "badges": [{"name": "Junior", "at": 15},
                                     {"name": "Master", "at": 25},
                                     {"name": "Grand",  "at": 45}]}
    meaning a customer with at least `at` quacks deserves that badge. This
    module is pure (no view, no sockets, no clock): it parses and validates
    rules and, given rules, a quack count and the badges a customer holds,
    says which badges to grant and which to remove. The badge granter is a
    thin layer over it, and the tests exercise it directly.
*/
#ifndef POND_BADGE_RULES_H_INCLUDED
#define POND_BADGE_RULES_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#ifdef __cplusplus
extern "C" {
#endif

#define POND_BADGE_VERSION_MAX 32            //  characters in a rules version
#define POND_BADGE_NAME_MAX    32            //  characters in a badge name
#define POND_BADGE_MAX         16            //  badges in one set of rules
#define POND_BADGE_AT_MAX      1000000000    //  largest threshold accepted

typedef struct {
    char name [POND_BADGE_NAME_MAX + 1];
    uint64_t at;    //  quacks needed, >= 1
} pond_badge_t;

typedef struct {
    char version [POND_BADGE_VERSION_MAX + 1];
    size_t count;    //  1..POND_BADGE_MAX
    pond_badge_t badges [POND_BADGE_MAX];
} pond_badge_rules_t;

//  The rules in effect until the log says otherwise: v1, Junior at 10 and
//  Master at 20.
void
    pond_badge_rules_default (pond_badge_rules_t *rules);

//  Parse and validate rules from JSON text. Valid rules have a version
//  (1..32 characters of [A-Za-z0-9._-]) and 1..16 badges, each with a
//  distinct name (1..32 characters of [A-Za-z0-9 _-], not starting or
//  ending with a space; names compare case-insensitively) and a whole
//  `at` in 1..1000000000. Other keys are ignored. Returns 0, or -1 with a
//  reason for a human in err.
int
    pond_badge_rules_parse (const char *json, pond_badge_rules_t *rules, char *err, size_t errlen);

//  Same from a cJSON tree.
int
    pond_badge_rules_from_cjson (const cJSON *tree, pond_badge_rules_t *rules, char *err,
                                 size_t errlen);

//  The rules as a cJSON tree {"version", "badges": [{"name", "at"}]}.
//  Caller owns it. NULL only if memory runs out.
cJSON *
    pond_badge_rules_to_cjson (const pond_badge_rules_t *rules);

//  True if both say the same: same version, same badges in the same order.
bool
    pond_badge_rules_equal (const pond_badge_rules_t *a, const pond_badge_rules_t *b);

//  The badge called name (exact), or NULL.
const pond_badge_t *
    pond_badge_rules_find (const pond_badge_rules_t *rules, const char *name);

//  What to change so that a customer with count quacks who holds the
//  badges held [0 .. held_count) ends up holding exactly the badges the
//  rules give for that count: grant [i] is set when badge i of the rules
//  is due (at <= count) and not held; remove [j] when held [j] is not due
//  (at > count, or no such badge in these rules). grant has room for
//  rules->count flags, remove for held_count (both may be NULL when their
//  count is 0). Returns the number of changes.
//  Live granting uses only grant: badges are never removed live.
size_t
    pond_badge_rules_diff (const pond_badge_rules_t *rules, uint64_t count, const char *const *held,
                           size_t held_count, bool *grant, bool *remove);

//  Why held badge name is removed under rules at count, for the
//  BADGE_REMOVED event: "rules v2: needs 25, has 20" or "rules v1: no
//  badge Grand".
void
    pond_badge_rules_reason (const pond_badge_rules_t *rules, const char *name, uint64_t count,
                             char *reason, size_t size);

#ifdef __cplusplus
}
#endif

#endif
