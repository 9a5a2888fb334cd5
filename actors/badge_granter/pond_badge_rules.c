/*  pond_badge_rules: badge rules, their validation and the grant/remove
    decision. See pond_badge_rules.h. Pure functions: no I/O, no clock.
*/
#include "pond_badge_rules.h"

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

//  ---------------------------------------------------------------------
//  Defaults

void
pond_badge_rules_default (pond_badge_rules_t *rules)
{
    memset (rules, 0, sizeof *rules);
    strcpy (rules->version, "v1");
    rules->count = 2;
    strcpy (rules->badges [0].name, "Junior");
    rules->badges [0].at = 10;
    strcpy (rules->badges [1].name, "Master");
    rules->badges [1].at = 20;
}

//  ---------------------------------------------------------------------
//  Parsing and validation

static bool
s_valid_version (const char *text)
{
    size_t length = strlen (text);
    if (length == 0 || length > POND_BADGE_VERSION_MAX)
        return false;
    for (const char *c = text; *c; c++)
        if (!isalnum ((unsigned char) *c) && *c != '.' && *c != '_' && *c != '-')
            return false;
    return true;
}

static bool
s_valid_name (const char *text)
{
    size_t length = strlen (text);
    if (length == 0 || length > POND_BADGE_NAME_MAX)
        return false;
    if (text [0] == ' ' || text [length - 1] == ' ')
        return false;
    for (const char *c = text; *c; c++)
        if (!isalnum ((unsigned char) *c) && *c != ' ' && *c != '_' && *c != '-')
            return false;
    return true;
}

int
pond_badge_rules_from_cjson (const cJSON *tree, pond_badge_rules_t *rules, char *err, size_t errlen)
{
    memset (rules, 0, sizeof *rules);
    if (!cJSON_IsObject (tree)) {
        snprintf (err, errlen, "rules must be a JSON object");
        return -1;
    }
    const cJSON *version = cJSON_GetObjectItemCaseSensitive (tree, "version");
    if (!version) {
        snprintf (err, errlen, "rules need a \"version\" string, e.g. \"v2\"");
        return -1;
    }
    if (!cJSON_IsString (version) || !version->valuestring
        || !s_valid_version (version->valuestring)) {
        snprintf (err, errlen,
                  "\"version\" must be a string of 1 to %d characters "
                  "(letters, digits, '.', '_' or '-')",
                  POND_BADGE_VERSION_MAX);
        return -1;
    }
    strcpy (rules->version, version->valuestring);

    const cJSON *badges = cJSON_GetObjectItemCaseSensitive (tree, "badges");
    if (!cJSON_IsArray (badges)) {
        snprintf (err, errlen, "rules need a \"badges\" array of {\"name\", \"at\"}");
        return -1;
    }
    int size = cJSON_GetArraySize (badges);
    if (size < 1) {
        snprintf (err, errlen, "rules need at least one badge");
        return -1;
    }
    if (size > POND_BADGE_MAX) {
        snprintf (err, errlen, "rules have %d badges, at most %d are allowed", size,
                  POND_BADGE_MAX);
        return -1;
    }
    const cJSON *badge;
    size_t index = 0;
    cJSON_ArrayForEach (badge, badges) {
        if (!cJSON_IsObject (badge)) {
            snprintf (err, errlen, "badge %zu must be an object {\"name\", \"at\"}", index + 1);
            return -1;
        }
        const cJSON *name = cJSON_GetObjectItemCaseSensitive (badge, "name");
        if (!cJSON_IsString (name) || !name->valuestring || !s_valid_name (name->valuestring)) {
            snprintf (err, errlen,
                      "badge %zu: \"name\" must be a string of 1 to %d characters "
                      "(letters, digits, spaces inside, '_' or '-')",
                      index + 1, POND_BADGE_NAME_MAX);
            return -1;
        }
        for (size_t other = 0; other < index; other++)
            if (strcasecmp (rules->badges [other].name, name->valuestring) == 0) {
                snprintf (err, errlen, "badge name \"%s\" appears more than once",
                          name->valuestring);
                return -1;
            }
        const cJSON *at = cJSON_GetObjectItemCaseSensitive (badge, "at");
        double value = cJSON_IsNumber (at) ? at->valuedouble : 0;
        if (!cJSON_IsNumber (at) || !isfinite (value) || value != floor (value) || value < 1
            || value > POND_BADGE_AT_MAX) {
            snprintf (err, errlen,
                      "badge \"%s\": \"at\" must be a whole number of quacks "
                      "from 1 to %d",
                      name->valuestring, POND_BADGE_AT_MAX);
            return -1;
        }
        //  A ladder: each badge needs more quacks than the one before it
        if (index > 0 && (uint64_t) value <= rules->badges [index - 1].at) {
            snprintf (err, errlen,
                      "badge \"%s\" at %.0f comes after \"%s\" at %llu: list "
                      "badges from the fewest quacks to the most, each \"at\" higher than "
                      "the one before",
                      name->valuestring, value, rules->badges [index - 1].name,
                      (unsigned long long) rules->badges [index - 1].at);
            return -1;
        }
        strcpy (rules->badges [index].name, name->valuestring);
        rules->badges [index].at = (uint64_t) value;
        index++;
    }
    rules->count = index;
    return 0;
}

int
pond_badge_rules_parse (const char *json, pond_badge_rules_t *rules, char *err, size_t errlen)
{
    memset (rules, 0, sizeof *rules);
    if (!json || !*json) {
        snprintf (err, errlen,
                  "rules are missing: give them as JSON, e.g. "
                  "{\"version\":\"v2\",\"badges\":[{\"name\":\"Junior\",\"at\":15}]}");
        return -1;
    }
    const char *end = NULL;
    cJSON *tree = cJSON_ParseWithOpts (json, &end, true);
    if (!tree) {
        size_t offset = end && end >= json ? (size_t) (end - json) : 0;
        snprintf (err, errlen, "rules are not valid JSON (error at byte %zu)", offset);
        return -1;
    }
    int rc = pond_badge_rules_from_cjson (tree, rules, err, errlen);
    cJSON_Delete (tree);
    return rc;
}

cJSON *
pond_badge_rules_to_cjson (const pond_badge_rules_t *rules)
{
    cJSON *tree = cJSON_CreateObject ();
    cJSON *badges = cJSON_CreateArray ();
    if (!tree || !badges) {
        cJSON_Delete (tree);
        cJSON_Delete (badges);
        return NULL;
    }
    cJSON_AddStringToObject (tree, "version", rules->version);
    cJSON_AddItemToObject (tree, "badges", badges);
    for (size_t index = 0; index < rules->count; index++) {
        cJSON *badge = cJSON_CreateObject ();
        if (!badge) {
            cJSON_Delete (tree);
            return NULL;
        }
        cJSON_AddStringToObject (badge, "name", rules->badges [index].name);
        cJSON_AddNumberToObject (badge, "at", (double) rules->badges [index].at);
        cJSON_AddItemToArray (badges, badge);
    }
    return tree;
}

bool
pond_badge_rules_equal (const pond_badge_rules_t *a, const pond_badge_rules_t *b)
{
    if (strcmp (a->version, b->version) || a->count != b->count)
        return false;
    for (size_t index = 0; index < a->count; index++)
        if (strcmp (a->badges [index].name, b->badges [index].name)
            || a->badges [index].at != b->badges [index].at)
            return false;
    return true;
}

const pond_badge_t *
pond_badge_rules_find (const pond_badge_rules_t *rules, const char *name)
{
    for (size_t index = 0; index < rules->count; index++)
        if (strcmp (rules->badges [index].name, name) == 0)
            return &rules->badges [index];
    return NULL;
}

//  ---------------------------------------------------------------------
//  The decision

size_t
pond_badge_rules_diff (const pond_badge_rules_t *rules, uint64_t count, const char *const *held,
                       size_t held_count, bool *grant, bool *remove)
{
    size_t changes = 0;
    for (size_t index = 0; index < rules->count; index++) {
        const pond_badge_t *badge = &rules->badges [index];
        bool is_held = false;
        for (size_t other = 0; other < held_count && !is_held; other++)
            is_held = strcmp (held [other], badge->name) == 0;
        grant [index] = badge->at <= count && !is_held;
        changes += grant [index];
    }
    for (size_t index = 0; index < held_count; index++) {
        const pond_badge_t *badge = pond_badge_rules_find (rules, held [index]);
        remove [index] = !badge || badge->at > count;
        changes += remove [index];
    }
    return changes;
}

void
pond_badge_rules_reason (const pond_badge_rules_t *rules, const char *name, uint64_t count,
                         char *reason, size_t size)
{
    const pond_badge_t *badge = pond_badge_rules_find (rules, name);
    if (badge)
        snprintf (reason, size, "rules %s: needs %" PRIu64 ", has %" PRIu64, rules->version,
                  badge->at, count);
    else
        snprintf (reason, size, "rules %s: no badge %s", rules->version, name);
}
