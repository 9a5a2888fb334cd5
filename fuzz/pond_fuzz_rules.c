/*  pond_fuzz_rules: libFuzzer harness for the badge rules parser.

    Rules arrive as JSON from an admin's command line and from events in
    the log, so the parser sees anything. The input, NUL-terminated, goes
    to pond_badge_rules_parse: it must refuse with a reason or accept rules
    that keep every documented limit, survive a round trip through cJSON
    (to_cjson, print, parse: the same rules) and drive the grant/remove
    decision without trouble. Anything else aborts.
*/
#include "pond_fuzz.h"
#include "pond_badge_rules.h"

#include <string.h>
#include <strings.h>

static void
s_check_limits (const pond_badge_rules_t *rules)
{
    size_t length = strlen (rules->version);
    POND_FUZZ_CHECK (length >= 1 && length <= POND_BADGE_VERSION_MAX, "version of %zu characters",
                     length);
    POND_FUZZ_CHECK (rules->count >= 1 && rules->count <= POND_BADGE_MAX, "%zu badges",
                     rules->count);
    for (size_t i = 0; i < rules->count; i++) {
        const pond_badge_t *badge = &rules->badges [i];
        length = strlen (badge->name);
        POND_FUZZ_CHECK (length >= 1 && length <= POND_BADGE_NAME_MAX,
                         "badge name of %zu characters", length);
        POND_FUZZ_CHECK (badge->at >= 1 && badge->at <= POND_BADGE_AT_MAX, "badge at %llu",
                         (unsigned long long) badge->at);
        for (size_t j = 0; j < i; j++)
            POND_FUZZ_CHECK (strcasecmp (rules->badges [j].name, badge->name), "badge %s twice",
                             badge->name);
        POND_FUZZ_CHECK (pond_badge_rules_find (rules, badge->name) == badge,
                         "find does not find %s", badge->name);
    }
}

//  Rules to JSON text and back: the same rules
static void
s_round_trip (const pond_badge_rules_t *rules)
{
    cJSON *tree = pond_badge_rules_to_cjson (rules);
    POND_FUZZ_CHECK (tree, "to_cjson failed");
    char *text = cJSON_PrintUnformatted (tree);
    POND_FUZZ_CHECK (text, "print failed");
    pond_badge_rules_t again;
    char err [256] = "";
    POND_FUZZ_CHECK (pond_badge_rules_parse (text, &again, err, sizeof err) == 0,
                     "rules refuse their own JSON %s: %s", text, err);
    POND_FUZZ_CHECK (pond_badge_rules_equal (rules, &again), "round trip changed %s", text);
    //  And straight from the tree
    POND_FUZZ_CHECK (pond_badge_rules_from_cjson (tree, &again, err, sizeof err) == 0
                         && pond_badge_rules_equal (rules, &again),
                     "rules refuse their own tree: %s", err);
    free (text);
    cJSON_Delete (tree);
}

//  The decision, for a customer who holds every badge of the rules plus
//  one they do not know, at each threshold and just below it.
static void
s_decide (const pond_badge_rules_t *rules)
{
    const char *held [POND_BADGE_MAX + 1];
    for (size_t i = 0; i < rules->count; i++)
        held [i] = rules->badges [i].name;
    held [rules->count] = "(none)";    //  never a valid badge name
    size_t held_count = rules->count + 1;
    bool grant [POND_BADGE_MAX], remove [POND_BADGE_MAX + 1];
    char reason [128];
    for (size_t i = 0; i < rules->count; i++) {
        uint64_t counts [] = { rules->badges [i].at - 1, rules->badges [i].at };
        for (size_t c = 0; c < 2; c++) {
            size_t changes = pond_badge_rules_diff (rules, counts [c], held, held_count, grant,
                                                    remove);
            //  Everything is held: nothing to grant; the unknown badge goes
            POND_FUZZ_CHECK (changes >= 1 && remove [rules->count], "unknown badge kept");
            for (size_t j = 0; j < rules->count; j++) {
                POND_FUZZ_CHECK (!grant [j], "held badge granted");
                POND_FUZZ_CHECK (remove [j] == (rules->badges [j].at > counts [c]),
                                 "badge %s removed wrongly", rules->badges [j].name);
            }
            pond_badge_rules_reason (rules, held [i], counts [c], reason, sizeof reason);
        }
        //  Nothing held: grant exactly what is due
        size_t changes = pond_badge_rules_diff (rules, rules->badges [i].at, NULL, 0, grant, NULL);
        size_t due = 0;
        for (size_t j = 0; j < rules->count; j++) {
            bool is_due = rules->badges [j].at <= rules->badges [i].at;
            POND_FUZZ_CHECK (grant [j] == is_due, "badge %s granted wrongly",
                             rules->badges [j].name);
            due += is_due;
        }
        POND_FUZZ_CHECK (changes == due, "%zu changes for %zu due", changes, due);
    }
    pond_badge_rules_reason (rules, "(none)", 0, reason, sizeof reason);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    char *text = pond_fuzz_strndup (data, size);
    pond_badge_rules_t rules;
    char err [256] = "";
    if (pond_badge_rules_parse (text, &rules, err, sizeof err) == 0) {
        s_check_limits (&rules);
        s_round_trip (&rules);
        s_decide (&rules);
    }
    else
        POND_FUZZ_CHECK (*err, "parse refused without a reason");
    free (text);
    return 0;
}
