/*  test_actors: the four actors' logic, driven in-process.

    Each test opens a pond_view in a temporary directory, builds events
    with pond_event_new and pond_event_set_data_json, applies them through
    the actor's spec inside pond_view_begin / commit exactly as the runtime
    does, and asks spec.query; no sockets, no processes. The badge
    granter's decisions are pure functions (pond_badge_rules) tested
    directly; its emits and its recompute's replay go through the test
    hooks of pond_badge_granter_t, so live granting and recompute run here
    whole, the DESIGN example included.
*/
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pond_actors.h"
#include "pond_alexa_view.h"
#include "pond_badge_granter.h"
#include "pond_badge_rules.h"
#include "pond_client.h"
#include "pond_harness.h"
#include "pond_mobile_view.h"
#include "pond_quack_counter.h"
#include "pond_time.h"

//  ---------------------------------------------------------------------
//  Fixture: a temp dir with a view in it

static char *s_dir;
static pond_view_t *s_view;
static uint64_t s_seq;    //  seq of the last event built
//  Ids the log holds (s_deliver), as the store keeps them: an id sent
//  again is a duplicate, neither stored nor published
static uint8_t s_logged [8192][POND_ID_SIZE];
static size_t s_logged_count;

static pond_view_t *
s_open_view (const char *name)
{
    char path [512];
    snprintf (path, sizeof path, "%s/%s", s_dir, name);
    pond_view_t *view = pond_view_open (path);
    cr_assert_not_null (view, "cannot open view %s", path);
    return view;
}

static void
s_setup (void)
{
    s_dir = pond_harness_tempdir ();
    cr_assert_not_null (s_dir);
    s_view = s_open_view ("view");
    s_seq = 0;
    s_logged_count = 0;
}

static void
s_teardown (void)
{
    pond_view_destroy (&s_view);
    pond_harness_rmtree (s_dir);
    free (s_dir);
    s_dir = NULL;
}

//  ---------------------------------------------------------------------
//  Helpers

//  Microseconds of an RFC 3339 time or date
static uint64_t
s_time (const char *text)
{
    uint64_t us = 0;
    cr_assert_eq (pond_time_parse (text, &us), 0, "bad time %s", text);
    return us;
}

//  A new event with the next seq; data JSON may be NULL
static pond_event_t *
s_event (const char *name, const char *entity, uint64_t ts, const char *data)
{
    pond_event_t *event = pond_event_new (name, entity);
    cr_assert_not_null (event);
    if (ts)
        pond_event_set_ts (event, ts);
    if (data) {
        char err [POND_ERR_SIZE];
        cr_assert_eq (pond_event_set_data_json (event, data, err, sizeof err), 0, "%s", err);
    }
    pond_event_set_seq (event, ++s_seq);
    return event;
}

//  Apply one event as the runtime does; returns what apply returned
static int
s_apply_to (const pond_actor_spec_t *spec, pond_view_t *view, const pond_event_t *event)
{
    pond_view_begin (view);
    int rc = spec->apply (NULL, view, event, spec->state);
    if (rc == 0)
        cr_assert_eq (pond_view_commit (view, pond_event_seq (event)), 0);
    else
        pond_view_rollback (view);
    return rc;
}

//  Build, apply to s_view, destroy
static int
s_apply (const pond_actor_spec_t *spec, const char *name, const char *entity, uint64_t ts,
         const char *data)
{
    pond_event_t *event = s_event (name, entity, ts, data);
    int rc = s_apply_to (spec, s_view, event);
    pond_event_destroy (&event);
    return rc;
}

//  Query; caller frees (NULL for an error)
static char *
s_query (const pond_actor_spec_t *spec, const char *entity, const char *text)
{
    return spec->query (NULL, s_view, entity, text, spec->state);
}

//  Assert the JSON texts are equal as JSON (object key order aside)
static void
s_assert_json (const char *actual, const char *expected)
{
    cr_assert_not_null (actual, "no result, expected %s", expected);
    cJSON *a = cJSON_Parse (actual);
    cJSON *b = cJSON_Parse (expected);
    cr_assert_not_null (a, "not JSON: %s", actual);
    cr_assert_not_null (b, "bad expectation: %s", expected);
    cr_assert (cJSON_Compare (a, b, true), "got      %s\nexpected %s", actual, expected);
    cJSON_Delete (a);
    cJSON_Delete (b);
}

//  The answer of a query, checked and freed
static void
s_expect (const pond_actor_spec_t *spec, const char *entity, const char *text, const char *expected)
{
    char *result = s_query (spec, entity, text);
    s_assert_json (result, expected);
    free (result);
}

//  The Alexa answer sentence to a question
static void
s_expect_answer (const pond_actor_spec_t *spec, const char *entity, const char *text,
                 const char *sentence)
{
    char *result = s_query (spec, entity, text);
    cr_assert_not_null (result);
    cJSON *tree = cJSON_Parse (result);
    const char *answer = pond_actors_string (tree, "answer");
    cr_assert_not_null (answer, "no answer in %s", result);
    cr_assert_str_eq (answer, sentence, "asked \"%s\"", text);
    cJSON_Delete (tree);
    free (result);
}

//  A view document, parsed (NULL if absent)
static cJSON *
s_doc (pond_view_t *view, const char *key)
{
    return pond_view_get (view, key);
}

static uint64_t
s_skipped (pond_view_t *view)
{
    cJSON *doc = s_doc (view, POND_ACTORS_SKIPPED_KEY);
    uint64_t count = 0;
    if (doc)
        pond_actors_uint (doc, "count", &count);
    cJSON_Delete (doc);
    return count;
}

//  ---------------------------------------------------------------------
//  Shared helpers

Test (helpers, exact_numbers_and_lenient_data)
{
    cJSON *doc = cJSON_CreateObject ();
    pond_actors_set_uint (doc, "ts", 1640995200000000ULL);
    pond_actors_set_uint (doc, "n", 3);
    pond_actors_set_uint (doc, "n", 4);    //  replaces
    cJSON *parsed = cJSON_Parse ("{\"t\":1640995200000000,\"x\":1.5,\"s\":\"a\"}");
    cJSON_AddItemToObject (doc, "inner", parsed);
    char *text = pond_actors_print (doc);
    cr_assert_str_eq (text, "{\"ts\":1640995200000000,\"n\":4,"
                            "\"inner\":{\"t\":1640995200000000,\"x\":1.5,\"s\":\"a\"}}");
    free (text);
    uint64_t value;
    cr_assert_eq (pond_actors_uint (parsed, "t", &value), 0);
    cr_assert_eq (value, 1640995200000000ULL);
    cr_assert_eq (pond_actors_uint (parsed, "x", &value), -1);
    cr_assert_eq (pond_actors_uint (parsed, "s", &value), -1);
    cr_assert_eq (pond_actors_uint (parsed, "missing", &value), -1);
    cr_assert_null (pond_actors_string (parsed, "x"));
    cr_assert_str_eq (pond_actors_string (parsed, "s"), "a");
    cJSON_Delete (doc);

    //  No data: an empty object, not NULL
    pond_event_t *event = pond_event_new ("QUACKED", "c");
    cJSON *data = pond_actors_data (event);
    cr_assert (cJSON_IsObject (data));
    cr_assert_null (data->child);
    cJSON_Delete (data);
    pond_event_destroy (&event);

    //  Data strs read in place: in the buffer when they fit, on the heap
    //  when longer, cut at a NUL, NULL when empty, absent or not a str
    char long_label [600];
    memset (long_label, 'x', sizeof long_label - 1);
    long_label [sizeof long_label - 1] = 0;
    char json [700];
    snprintf (json, sizeof json,
              "{\"label\":\"%s\",\"short\":\"Milk\",\"nul\":\"a\\u0000b\","
              "\"empty\":\"\",\"n\":3,\"f\":4.0,\"h\":4.5}",
              long_label);
    event = pond_event_new ("LABEL_ADDED", "c");
    char err [POND_ERR_SIZE];
    cr_assert_eq (pond_event_set_data_json (event, json, err, sizeof err), 0, "%s", err);
    char buf [POND_ACTORS_TEXT_MAX];
    char *got = pond_actors_text (event, "short", buf, sizeof buf);
    cr_assert_eq (got, buf);
    cr_assert_str_eq (got, "Milk");
    got = pond_actors_text (event, "label", buf, sizeof buf);
    cr_assert_not_null (got);
    cr_assert_neq (got, buf);
    cr_assert_str_eq (got, long_label);
    pond_actors_text_free (got, buf);
    got = pond_actors_text (event, "nul", buf, sizeof buf);
    cr_assert_str_eq (got, "a");
    cr_assert_null (pond_actors_text (event, "empty", buf, sizeof buf));
    cr_assert_null (pond_actors_text (event, "n", buf, sizeof buf));
    cr_assert_null (pond_actors_text (event, "absent", buf, sizeof buf));
    cr_assert_eq (pond_actors_data_uint (event, "n", &value), 0);
    cr_assert_eq (value, 3);
    cr_assert_eq (pond_actors_data_uint (event, "f", &value), 0);
    cr_assert_eq (value, 4);
    cr_assert_eq (pond_actors_data_uint (event, "h", &value), -1);
    cr_assert_eq (pond_actors_data_uint (event, "short", &value), -1);
    pond_event_destroy (&event);

    //  Insertion anywhere, keys kept (cJSON_InsertItemInArray fails in
    //  the middle of a list with Debian 12's cJSON)
    cJSON *list = cJSON_Parse ("{\"a\":1,\"c\":3,\"e\":5}");
    pond_actors_insert (list, 1, cJSON_CreateNumber (2));
    list->child->next->string = strdup ("b");
    pond_actors_insert (list, 3, cJSON_Parse ("4"));
    list->child->next->next->next->string = strdup ("d");
    pond_actors_insert (list, 0, cJSON_CreateNumber (0));
    list->child->string = strdup ("0");
    pond_actors_insert (list, 99, cJSON_CreateNumber (6));
    cJSON_GetArrayItem (list, 6)->string = strdup ("f");
    text = cJSON_PrintUnformatted (list);
    cr_assert_str_eq (text, "{\"0\":0,\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6}");
    free (text);
    cJSON_Delete (list);
    list = cJSON_CreateArray ();
    pond_actors_insert (list, 0, cJSON_CreateString ("y"));
    pond_actors_insert (list, 0, cJSON_CreateString ("w"));
    pond_actors_insert (list, 1, cJSON_CreateString ("x"));
    pond_actors_insert (list, 3, cJSON_CreateString ("z"));
    text = cJSON_PrintUnformatted (list);
    cr_assert_str_eq (text, "[\"w\",\"x\",\"y\",\"z\"]");
    free (text);
    cJSON_Delete (list);

    char key [POND_ACTORS_KEY_MAX];
    cr_assert_eq (pond_actors_customer_key ("c-1", key, sizeof key), 0);
    cr_assert_str_eq (key, "customer/c-1");
    cr_assert_eq (pond_actors_customer_key ("", key, sizeof key), -1);
    cr_assert_eq (pond_actors_customer_key (NULL, key, sizeof key), -1);
}

//  ---------------------------------------------------------------------
//  Quack counter

Test (quack_counter, counts_per_year, .init = s_setup, .fini = s_teardown)
{
    pond_actor_spec_t spec;
    pond_quack_counter_spec (&spec);
    cr_assert_str_eq (spec.name, "quack-counter");
    cr_assert_str_eq (spec.names [0], "QUACKED");
    cr_assert_null (spec.names [1]);

    const char *quack = "{\"duration_ms\":120,\"loudness_db\":61,\"firmware\":\"2.1\"}";
    cr_assert_eq (
        s_apply (&spec, "QUACKED", "cust-1", s_time ("2021-12-31T23:59:59.999999Z"), quack), 0);
    cr_assert_eq (s_apply (&spec, "QUACKED", "cust-1", s_time ("2022-01-01"), quack), 0);
    cr_assert_eq (s_apply (&spec, "QUACKED", "cust-1", s_time ("2022-06-30T12:00:00Z"), NULL), 0);
    cr_assert_eq (s_apply (&spec, "QUACKED", "cust-2", s_time ("2022-03-01"), quack), 0);
    //  Odd data is no obstacle: the quack counts
    cr_assert_eq (s_apply (&spec, "QUACKED", "cust-1", s_time ("2023-02-01"),
                           "{\"duration_ms\":\"long\",\"nested\":{\"a\":[1,2]}}"),
                  0);
    //  Not ours: ignored
    cr_assert_eq (s_apply (&spec, "BUTTON_CLICKED", "cust-1", s_time ("2023-02-01"), NULL), 0);

    s_expect (&spec, "cust-1", NULL,
              "{\"customer\":\"cust-1\",\"quacks\":4,"
              "\"by_year\":{\"2021\":1,\"2022\":2,\"2023\":1}}");
    s_expect (&spec, "cust-2", "anything",
              "{\"customer\":\"cust-2\",\"quacks\":1,\"by_year\":{\"2022\":1}}");
    cr_assert_null (s_query (&spec, "nobody", NULL));
    cr_assert_null (s_query (&spec, "", NULL));

    //  Years come out sorted; the doc keeps the seq of the last quack
    char *text = s_query (&spec, "cust-1", NULL);
    cr_assert_not_null (strstr (text, "{\"2021\":1,\"2022\":2,\"2023\":1}"), "%s", text);
    free (text);
    cJSON *doc = s_doc (s_view, "customer/cust-1");
    uint64_t last_seq = 0;
    cr_assert_eq (pond_actors_uint (doc, "last_seq", &last_seq), 0);
    cr_assert_eq (last_seq, 5);
    cJSON_Delete (doc);
    cr_assert_eq (pond_view_position (s_view), 6);
}

//  ---------------------------------------------------------------------
//  Badge rules: parsing and validation

static void
s_rules_file (const char *name, pond_badge_rules_t *rules)
{
    char path [512];
    snprintf (path, sizeof path, "%s/../actors/badge_granter/rules/%s", POND_TESTS_DIR, name);
    FILE *file = fopen (path, "r");
    cr_assert_not_null (file, "cannot open %s", path);
    char text [4096];
    size_t size = fread (text, 1, sizeof text - 1, file);
    text [size] = 0;
    fclose (file);
    char err [256];
    cr_assert_eq (pond_badge_rules_parse (text, rules, err, sizeof err), 0, "%s: %s", name, err);
}

Test (badge_rules, parse_the_example_files)
{
    pond_badge_rules_t v1, v2, builtin;
    s_rules_file ("v1.json", &v1);
    s_rules_file ("v2.json", &v2);
    pond_badge_rules_default (&builtin);
    cr_assert (pond_badge_rules_equal (&v1, &builtin));
    cr_assert_not (pond_badge_rules_equal (&v1, &v2));
    cr_assert_str_eq (v2.version, "v2");
    cr_assert_eq (v2.count, 3);
    cr_assert_str_eq (v2.badges [0].name, "Junior");
    cr_assert_eq (v2.badges [0].at, 15);
    cr_assert_str_eq (v2.badges [1].name, "Master");
    cr_assert_eq (v2.badges [1].at, 25);
    cr_assert_str_eq (v2.badges [2].name, "Grand");
    cr_assert_eq (v2.badges [2].at, 45);
    cr_assert_eq (pond_badge_rules_find (&v2, "Grand")->at, 45);
    cr_assert_null (pond_badge_rules_find (&v1, "Grand"));

    //  Round trip through cJSON
    cJSON *tree = pond_badge_rules_to_cjson (&v2);
    pond_badge_rules_t again;
    char err [256];
    cr_assert_eq (pond_badge_rules_from_cjson (tree, &again, err, sizeof err), 0, "%s", err);
    cr_assert (pond_badge_rules_equal (&v2, &again));
    cJSON_Delete (tree);

    //  Accepted edges: 16 badges, names with spaces, '_' and '-', extra keys
    char text [2048] = "{\"version\":\"2024.1_b-x\",\"note\":\"ignored\",\"badges\":[";
    for (int index = 0; index < 16; index++)
        snprintf (text + strlen (text), sizeof text - strlen (text),
                  "%s{\"name\":\"Level %d_x-y\",\"at\":%d}", index ? "," : "", index, index + 1);
    strcat (text, "]}");
    cr_assert_eq (pond_badge_rules_parse (text, &again, err, sizeof err), 0, "%s", err);
    cr_assert_eq (again.count, 16);
    cr_assert_eq (
        pond_badge_rules_parse (
            "{\"version\":\"vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv\","
            "\"badges\":[{\"name\":\"NNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNN\",\"at\":1000000000}]}",
            &again, err, sizeof err),
        0, "%s", err);
}

//  Each rejection, with a word its reason must contain
static void
s_reject (const char *json, const char *word)
{
    pond_badge_rules_t rules;
    char err [256] = "";
    cr_assert_eq (pond_badge_rules_parse (json, &rules, err, sizeof err), -1, "accepted: %s",
                  json ? json : "(null)");
    cr_assert_not_null (strstr (err, word), "reason for %s: \"%s\" lacks \"%s\"",
                        json ? json : "(null)", err, word);
}

Test (badge_rules, every_rejection)
{
    s_reject (NULL, "missing");
    s_reject ("", "missing");
    s_reject ("{\"version\":\"v2\",", "not valid JSON");
    s_reject ("{\"version\":\"v2\"} trailing", "not valid JSON");
    s_reject ("[1,2]", "must be a JSON object");
    s_reject ("\"v2\"", "must be a JSON object");
    s_reject ("{\"badges\":[{\"name\":\"A\",\"at\":1}]}", "\"version\"");
    s_reject ("{\"version\":\"\",\"badges\":[{\"name\":\"A\",\"at\":1}]}", "\"version\"");
    s_reject ("{\"version\":2,\"badges\":[{\"name\":\"A\",\"at\":1}]}", "\"version\"");
    s_reject ("{\"version\":\"vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv\","
              "\"badges\":[{\"name\":\"A\",\"at\":1}]}",
              "1 to 32");
    s_reject ("{\"version\":\"v 2\",\"badges\":[{\"name\":\"A\",\"at\":1}]}", "\"version\"");
    s_reject ("{\"version\":\"v2\"}", "\"badges\"");
    s_reject ("{\"version\":\"v2\",\"badges\":{}}", "\"badges\"");
    s_reject ("{\"version\":\"v2\",\"badges\":[]}", "at least one badge");
    char text [2048] = "{\"version\":\"v9\",\"badges\":[";
    for (int index = 0; index < 17; index++)
        snprintf (text + strlen (text), sizeof text - strlen (text),
                  "%s{\"name\":\"B%d\",\"at\":%d}", index ? "," : "", index, index + 1);
    strcat (text, "]}");
    s_reject (text, "at most 16");
    s_reject ("{\"version\":\"v2\",\"badges\":[\"Junior\"]}", "must be an object");
    s_reject ("{\"version\":\"v2\",\"badges\":[{\"at\":1}]}", "\"name\"");
    s_reject ("{\"version\":\"v2\",\"badges\":[{\"name\":\"\",\"at\":1}]}", "\"name\"");
    s_reject ("{\"version\":\"v2\",\"badges\":[{\"name\":\"Jun!or\",\"at\":1}]}", "\"name\"");
    s_reject ("{\"version\":\"v2\",\"badges\":[{\"name\":\" Junior\",\"at\":1}]}", "\"name\"");
    s_reject ("{\"version\":\"v2\",\"badges\":[{\"name\":\"NNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNN\","
              "\"at\":1}]}",
              "1 to 32");
    s_reject ("{\"version\":\"v2\",\"badges\":[{\"name\":\"A\",\"at\":1},"
              "{\"name\":\"A\",\"at\":2}]}",
              "more than once");
    s_reject ("{\"version\":\"v2\",\"badges\":[{\"name\":\"Master\",\"at\":1},"
              "{\"name\":\"master\",\"at\":2}]}",
              "more than once");
    s_reject ("{\"version\":\"v2\",\"badges\":[{\"name\":\"A\",\"at\":0}]}", "\"at\"");
    s_reject ("{\"version\":\"v2\",\"badges\":[{\"name\":\"A\",\"at\":-5}]}", "\"at\"");
    s_reject ("{\"version\":\"v2\",\"badges\":[{\"name\":\"A\",\"at\":1.5}]}", "\"at\"");
    s_reject ("{\"version\":\"v2\",\"badges\":[{\"name\":\"A\",\"at\":\"10\"}]}", "\"at\"");
    s_reject ("{\"version\":\"v2\",\"badges\":[{\"name\":\"A\"}]}", "\"at\"");
    s_reject ("{\"version\":\"v2\",\"badges\":[{\"name\":\"A\",\"at\":1000000001}]}", "\"at\"");
    s_reject ("{\"version\":\"v2\",\"badges\":[{\"name\":\"Junior\",\"at\":30},"
              "{\"name\":\"Master\",\"at\":5}]}",
              "from the fewest quacks to the most");
    s_reject ("{\"version\":\"v2\",\"badges\":[{\"name\":\"Junior\",\"at\":10},"
              "{\"name\":\"Master\",\"at\":10}]}",
              "each \"at\" higher");
}

//  ---------------------------------------------------------------------
//  Badge rules: the decision

//  The diff as text: "+Junior +Master -Grand" (grants in rules order, then
//  removals in held order)
static void
s_diff (const pond_badge_rules_t *rules, uint64_t count, const char *const *held, size_t held_count,
        const char *expected)
{
    bool grant [POND_BADGE_MAX];
    bool remove [8];
    size_t changes = pond_badge_rules_diff (rules, count, held, held_count, grant, remove);
    char text [256] = "";
    size_t found = 0;
    for (size_t index = 0; index < rules->count; index++)
        if (grant [index]) {
            snprintf (text + strlen (text), sizeof text - strlen (text), "%s+%s", *text ? " " : "",
                      rules->badges [index].name);
            found++;
        }
    for (size_t index = 0; index < held_count; index++)
        if (remove [index]) {
            snprintf (text + strlen (text), sizeof text - strlen (text), "%s-%s", *text ? " " : "",
                      held [index]);
            found++;
        }
    cr_assert_eq (changes, found);
    cr_assert_str_eq (text, expected, "count %zu", (size_t) count);
}

Test (badge_rules, the_design_example)
{
    pond_badge_rules_t v1, v2;
    pond_badge_rules_default (&v1);
    s_rules_file ("v2.json", &v2);
    const char *none [1] = { NULL };
    const char *both [] = { "Junior", "Master" };

    //  v1: 20 and 30 quacks both give Junior and Master
    s_diff (&v1, 20, none, 0, "+Junior +Master");
    s_diff (&v1, 30, none, 0, "+Junior +Master");
    s_diff (&v1, 9, none, 0, "");
    s_diff (&v1, 10, none, 0, "+Junior");
    s_diff (&v1, 19, both, 1, "");
    //  v2 over what v1 gave: the 20-quack customer loses Master, and only
    //  that; the 30-quack customer keeps both, gains nothing
    s_diff (&v2, 20, both, 2, "-Master");
    s_diff (&v2, 30, both, 2, "");
    //  More of v2
    s_diff (&v2, 14, both, 2, "-Junior -Master");
    s_diff (&v2, 45, both, 2, "+Grand");
    s_diff (&v2, 45, none, 0, "+Junior +Master +Grand");
    //  Back to v1: Grand is in no rule any more
    const char *three [] = { "Junior", "Master", "Grand" };
    s_diff (&v1, 50, three, 3, "-Grand");

    char reason [128];
    pond_badge_rules_reason (&v2, "Master", 20, reason, sizeof reason);
    cr_assert_str_eq (reason, "rules v2: needs 25, has 20");
    pond_badge_rules_reason (&v1, "Grand", 50, reason, sizeof reason);
    cr_assert_str_eq (reason, "rules v1: no badge Grand");
}

//  ---------------------------------------------------------------------
//  Badge granter: apply, emit, recompute

//  What the granter emitted, kept in order (copies)
typedef struct {
    pond_event_t *events [2048];
    size_t count;
    bool fail;    //  make the next emit fail
} emitted_t;

static int
s_capture (void *arg, const pond_event_t *event)
{
    emitted_t *emitted = (emitted_t *) arg;
    if (emitted->fail)
        return -1;
    cr_assert_lt (emitted->count, 2048);
    emitted->events [emitted->count++] = pond_event_dup (event);
    return 0;
}

static void
s_emitted_clear (emitted_t *emitted)
{
    for (size_t index = 0; index < emitted->count; index++)
        pond_event_destroy (&emitted->events [index]);
    emitted->count = 0;
}

//  The data of an emitted event as JSON text, checked
static void
s_expect_data (const pond_event_t *event, const char *expected)
{
    cJSON *data = pond_actors_data (event);
    char *text = cJSON_PrintUnformatted (data);
    s_assert_json (text, expected);
    free (text);
    cJSON_Delete (data);
}

static bool
s_logged_before (const uint8_t *id)
{
    for (size_t index = 0; index < s_logged_count; index++)
        if (memcmp (s_logged [index], id, POND_ID_SIZE) == 0)
            return true;
    cr_assert_lt (s_logged_count, 8192);
    memcpy (s_logged [s_logged_count++], id, POND_ID_SIZE);
    return false;
}

//  Apply the emitted events as the log would deliver them, in order,
//  each id once (what applying them emits is delivered after them)
static void
s_deliver (const pond_actor_spec_t *spec, emitted_t *emitted)
{
    for (size_t index = 0; index < emitted->count; index++) {
        if (s_logged_before (pond_event_id (emitted->events [index])))
            continue;
        pond_event_set_seq (emitted->events [index], ++s_seq);
        cr_assert_eq (s_apply_to (spec, s_view, emitted->events [index]), 0);
    }
    s_emitted_clear (emitted);
}

//  The QUACKED events of a test, as the store would replay them
typedef struct {
    pond_event_t *events [128];
    size_t count;
    size_t next;
    bool fail;
} quacks_t;

static int
s_source (void *arg, pond_event_t **event_p, char *err, size_t errlen)
{
    quacks_t *quacks = (quacks_t *) arg;
    if (quacks->fail) {
        snprintf (err, errlen, "store away");
        return -1;
    }
    if (quacks->next == quacks->count) {
        quacks->next = 0;    //  ready for the next recompute
        return 0;
    }
    *event_p = pond_event_dup (quacks->events [quacks->next++]);
    return 1;
}

static void
s_quack (const pond_actor_spec_t *spec, quacks_t *quacks, const char *customer, uint64_t ts)
{
    pond_event_t *event = s_event ("QUACKED", customer, ts, "{\"duration_ms\":100}");
    cr_assert_eq (s_apply_to (spec, s_view, event), 0);
    cr_assert_lt (quacks->count, 128);
    quacks->events [quacks->count++] = event;
}

static void
s_quacks_clear (quacks_t *quacks)
{
    for (size_t index = 0; index < quacks->count; index++)
        pond_event_destroy (&quacks->events [index]);
    quacks->count = 0;
}

//  A fresh granter with its hooks
static pond_badge_granter_t *
s_granter (pond_actor_spec_t *spec, emitted_t *emitted, quacks_t *quacks)
{
    pond_badge_granter_t *granter = pond_badge_granter_new ();
    cr_assert_not_null (granter);
    pond_badge_granter_set_emit (granter, s_capture, emitted);
    if (quacks)
        pond_badge_granter_set_source (granter, s_source, quacks);
    pond_badge_granter_spec (spec);
    spec->state = granter;
    return granter;
}

static const char *s_v2 = "{\"version\":\"v2\",\"badges\":[{\"name\":\"Junior\",\"at\":15},"
                          "{\"name\":\"Master\",\"at\":25},{\"name\":\"Grand\",\"at\":45}]}";

Test (badge_granter, live_granting, .init = s_setup, .fini = s_teardown)
{
    emitted_t emitted = { .count = 0 };
    pond_actor_spec_t spec;
    pond_badge_granter_t *granter = s_granter (&spec, &emitted, NULL);
    cr_assert_str_eq (spec.name, "badge-granter");
    quacks_t quacks = { .count = 0 };
    uint64_t ts = s_time ("2022-05-01");

    //  Nine quacks: nothing; the tenth: Junior
    for (int index = 0; index < 9; index++)
        s_quack (&spec, &quacks, "cust-7", ts + (uint64_t) index);
    cr_assert_eq (emitted.count, 0);
    s_quack (&spec, &quacks, "cust-7", ts + 9);
    cr_assert_eq (emitted.count, 1);
    const pond_event_t *granted = emitted.events [0];
    const pond_event_t *tenth = quacks.events [9];
    cr_assert_str_eq (pond_event_name (granted), "BADGE_GRANTED");
    cr_assert_str_eq (pond_event_entity (granted), "cust-7");
    cr_assert_eq (pond_event_ts (granted), pond_event_ts (tenth));
    cr_assert_eq (memcmp (pond_event_causation (granted), pond_event_id (tenth), POND_ID_SIZE), 0);
    uint8_t id [POND_ID_SIZE];
    pond_actor_derive_id (pond_event_id (tenth), "grant/Junior/v1", id);
    cr_assert_eq (memcmp (pond_event_id (granted), id, POND_ID_SIZE), 0);
    s_expect_data (granted, "{\"badge\":\"Junior\",\"rules_version\":\"v1\",\"count\":10}");
    char err [POND_ERR_SIZE];
    cr_assert_eq (pond_event_validate (granted, err, sizeof err), 0, "%s", err);

    //  A burst of quacks before the grant comes back: Junior is not
    //  granted again
    s_quack (&spec, &quacks, "cust-7", ts + 10);
    s_quack (&spec, &quacks, "cust-7", ts + 11);
    cr_assert_eq (emitted.count, 1);
    //  Not held until the log says so
    s_expect (&spec, "cust-7", NULL,
              "{\"customer\":\"cust-7\",\"quacks\":12,\"badges\":[],"
              "\"rules_version\":\"v1\"}");
    s_deliver (&spec, &emitted);
    char expected [512];
    snprintf (expected, sizeof expected,
              "{\"customer\":\"cust-7\",\"quacks\":12,\"badges\":[{\"name\":\"Junior\","
              "\"granted_ts\":%" PRIu64 ",\"rules_version\":\"v1\"}],\"rules_version\":\"v1\"}",
              ts + 9);
    s_expect (&spec, "cust-7", NULL, expected);

    //  Granting the same badge again (a retry) changes nothing
    pond_event_t *again = s_event ("BADGE_GRANTED", "cust-7", ts + 100,
                                   "{\"badge\":\"Junior\",\"rules_version\":\"v9\",\"count\":99}");
    cr_assert_eq (s_apply_to (&spec, s_view, again), 0);
    pond_event_destroy (&again);
    s_expect (&spec, "cust-7", NULL, expected);

    //  Master at 20, then nothing more
    for (int index = 12; index < 30; index++)
        s_quack (&spec, &quacks, "cust-7", ts + (uint64_t) index);
    cr_assert_eq (emitted.count, 1);
    s_expect_data (emitted.events [0],
                   "{\"badge\":\"Master\",\"rules_version\":\"v1\",\"count\":20}");
    s_deliver (&spec, &emitted);

    //  Removal only from the log
    cr_assert_eq (s_apply (&spec, "BADGE_REMOVED", "cust-7", ts + 200,
                           "{\"badge\":\"Master\",\"rules_version\":\"v1\",\"count\":1,"
                           "\"reason\":\"test\"}"),
                  0);
    char *text = s_query (&spec, "cust-7", NULL);
    cr_assert_null (strstr (text, "Master"), "%s", text);
    free (text);
    //  ... and a badge taken away while the rules say it is due comes
    //  back with the next quack (live granting grants what is due)
    s_quack (&spec, &quacks, "cust-7", ts + 300);
    cr_assert_eq (emitted.count, 1);
    s_expect_data (emitted.events [0], "{\"badge\":\"Master\",\"rules_version\":\"v1\","
                                       "\"count\":31}");
    s_emitted_clear (&emitted);

    //  Emit failure refuses the QUACKED (applied again after a restart)
    cr_assert_eq (s_apply (&spec, "QUACKED", "cust-8", ts, NULL), 0);
    for (int index = 0; index < 8; index++)
        s_apply (&spec, "QUACKED", "cust-8", ts, NULL);
    emitted.fail = true;
    uint64_t position = pond_view_position (s_view);
    cr_assert_eq (s_apply (&spec, "QUACKED", "cust-8", ts, NULL), -1);
    cr_assert_eq (pond_view_position (s_view), position);
    emitted.fail = false;

    //  Unknown customer, the rules entity, bad queries
    cr_assert_null (s_query (&spec, "nobody", NULL));
    cr_assert_null (s_query (&spec, "", NULL));
    s_expect (&spec, "cust-7", "rules",
              "{\"rules_version\":\"v1\",\"rules\":{\"version\":\"v1\",\"badges\":["
              "{\"name\":\"Junior\",\"at\":10},{\"name\":\"Master\",\"at\":20}]},"
              "\"default\":true}");
    //  A customer may be called badge-rules (the entity of BADGE_RULES_CHANGED)
    cr_assert_null (s_query (&spec, "badge-rules", NULL), "unknown until it quacks");
    s_quack (&spec, &quacks, "badge-rules", ts + 400);
    text = s_query (&spec, "badge-rules", NULL);
    cr_assert_not_null (text);
    cr_assert (strstr (text, "\"customer\":\"badge-rules\"") && strstr (text, "\"quacks\":1"), "%s",
               text);
    free (text);
    s_emitted_clear (&emitted);
    s_quacks_clear (&quacks);
    pond_badge_granter_destroy (&granter);
}

Test (badge_granter, odd_events_are_skipped, .init = s_setup, .fini = s_teardown)
{
    emitted_t emitted = { .count = 0 };
    pond_actor_spec_t spec;
    pond_badge_granter_t *granter = s_granter (&spec, &emitted, NULL);

    cr_assert_eq (s_apply (&spec, "BADGE_GRANTED", "c1", 0, NULL), 0);
    cr_assert_eq (s_apply (&spec, "BADGE_GRANTED", "c1", 0, "{\"badge\":7}"), 0);
    cr_assert_eq (s_apply (&spec, "BADGE_REMOVED", "c1", 0, "{\"name\":\"Junior\"}"), 0);
    cr_assert_eq (s_apply (&spec, "BADGE_RULES_CHANGED", "badge-rules", 0,
                           "{\"version\":\"v3\",\"badges\":[]}"),
                  0);
    cr_assert_eq (s_apply (&spec, "BADGE_RULES_CHANGED", "badge-rules", 0, NULL), 0);
    cr_assert_eq (s_skipped (s_view), 5);
    cJSON *skipped = s_doc (s_view, POND_ACTORS_SKIPPED_KEY);
    cr_assert_str_eq (pond_actors_string (skipped, "last_name"), "BADGE_RULES_CHANGED");
    cJSON_Delete (skipped);
    //  Nothing else was written, the rules are still v1
    cr_assert_null (s_query (&spec, "c1", NULL));
    pond_badge_rules_t rules;
    pond_badge_granter_rules (s_view, &rules);
    cr_assert_str_eq (rules.version, "v1");
    //  A removal for a customer never seen is a no-op
    cr_assert_eq (s_apply (&spec, "BADGE_REMOVED", "c2", 0, "{\"badge\":\"Junior\"}"), 0);
    cr_assert_null (s_query (&spec, "c2", NULL));
    //  A grant with few fields is kept with what it has
    cr_assert_eq (s_apply (&spec, "BADGE_GRANTED", "c3", 5, "{\"badge\":\"Gold\"}"), 0);
    s_expect (&spec, "c3", NULL,
              "{\"customer\":\"c3\",\"quacks\":0,\"badges\":[{\"name\":"
              "\"Gold\",\"granted_ts\":5,\"rules_version\":\"\"}],\"rules_version\":\"v1\"}");
    cr_assert_eq (emitted.count, 0);
    pond_badge_granter_destroy (&granter);
}

Test (badge_granter, recompute_the_design_example, .init = s_setup, .fini = s_teardown)
{
    emitted_t emitted = { .count = 0 };
    quacks_t quacks = { .count = 0 };
    pond_actor_spec_t spec;
    pond_badge_granter_t *granter = s_granter (&spec, &emitted, &quacks);
    uint64_t ts = s_time ("2022-01-01");

    //  Under v1: 20 quacks for cust-20, 30 for cust-30, interleaved
    for (uint64_t index = 0; index < 30; index++) {
        if (index < 20)
            s_quack (&spec, &quacks, "cust-20", ts + index * 1000);
        s_quack (&spec, &quacks, "cust-30", ts + index * 1000 + 1);
    }
    cr_assert_eq (emitted.count, 4);    //  Junior and Master each
    s_deliver (&spec, &emitted);
    char *text = s_query (&spec, "cust-20", NULL);
    cr_assert_not_null (strstr (text, "\"Junior\""));
    cr_assert_not_null (strstr (text, "\"Master\""));
    free (text);
    char *v1_30 = s_query (&spec, "cust-30", NULL);

    //  Recompute with v2: the rules first, then exactly one change
    uint64_t position = pond_view_position (s_view);
    char *result = spec.command (NULL, s_view, "recompute", s_v2, spec.state);
    cr_assert_not_null (result);
    cJSON *tree = cJSON_Parse (result);
    cr_assert_str_eq (pond_actors_string (tree, "rules_version"), "v2");
    cr_assert (cJSON_IsTrue (cJSON_GetObjectItem (tree, "rules_changed")));
    uint64_t value;
    cr_assert_eq (pond_actors_uint (tree, "customers", &value), 0);
    cr_assert_eq (value, 2);
    cr_assert_eq (pond_actors_uint (tree, "quacks", &value), 0);
    cr_assert_eq (value, 50);
    cr_assert_eq (pond_actors_uint (tree, "position", &value), 0);
    cr_assert_eq (value, position);
    char *lists = cJSON_PrintUnformatted (cJSON_GetObjectItem (tree, "granted"));
    cr_assert_str_eq (lists, "[]");
    free (lists);
    lists = cJSON_PrintUnformatted (cJSON_GetObjectItem (tree, "removed"));
    cr_assert_str_eq (lists, "[{\"customer\":\"cust-20\",\"badge\":\"Master\"}]");
    free (lists);
    cr_assert (cJSON_IsNumber (cJSON_GetObjectItem (tree, "seconds")));
    cJSON_Delete (tree);
    free (result);

    cr_assert_eq (emitted.count, 2);
    const pond_event_t *rules_changed = emitted.events [0];
    uint8_t first_rules_id [POND_ID_SIZE];
    memcpy (first_rules_id, pond_event_id (rules_changed), POND_ID_SIZE);
    const pond_event_t *removed = emitted.events [1];
    cr_assert_str_eq (pond_event_name (rules_changed), "BADGE_RULES_CHANGED");
    cr_assert_str_eq (pond_event_entity (rules_changed), "badge-rules");
    s_expect_data (rules_changed, s_v2);
    cr_assert_str_eq (pond_event_name (removed), "BADGE_REMOVED");
    cr_assert_str_eq (pond_event_entity (removed), "cust-20");
    s_expect_data (removed, "{\"badge\":\"Master\",\"rules_version\":\"v2\",\"count\":20,"
                            "\"reason\":\"rules v2: needs 25, has 20\"}");
    cr_assert_eq (
        memcmp (pond_event_causation (removed), pond_event_id (rules_changed), POND_ID_SIZE), 0);
    //  Deterministic ids
    uint8_t zero [POND_ID_SIZE] = { 0 }, id [POND_ID_SIZE];
    char salt [128];
    snprintf (salt, sizeof salt, "recompute/v2/%" PRIu64, position);
    pond_actor_derive_id (zero, salt, id);
    cr_assert_eq (memcmp (pond_event_id (rules_changed), id, POND_ID_SIZE), 0);
    pond_actor_derive_id (id, "remove/Master/cust-20", id);
    cr_assert_eq (memcmp (pond_event_id (removed), id, POND_ID_SIZE), 0);
    char err [POND_ERR_SIZE];
    cr_assert_eq (pond_event_validate (removed, err, sizeof err), 0, "%s", err);
    cr_assert_eq (pond_event_validate (rules_changed, err, sizeof err), 0, "%s", err);

    //  Run again at once, before the log has shown anything back:
    //  nothing to do, nothing emitted
    result = spec.command (NULL, s_view, "recompute", s_v2, spec.state);
    cr_assert_not_null (result);
    tree = cJSON_Parse (result);
    cr_assert (cJSON_IsFalse (cJSON_GetObjectItem (tree, "rules_changed")), "%s", result);
    cr_assert_eq (cJSON_GetArraySize (cJSON_GetObjectItem (tree, "granted")), 0, "%s", result);
    cr_assert_eq (cJSON_GetArraySize (cJSON_GetObjectItem (tree, "removed")), 0, "%s", result);
    cJSON_Delete (tree);
    free (result);
    cr_assert_eq (emitted.count, 2);

    //  The log delivers them: cust-20 has Junior only, cust-30 unchanged
    //  but for the rules version
    s_deliver (&spec, &emitted);
    text = s_query (&spec, "cust-20", NULL);
    cr_assert_not_null (strstr (text, "\"Junior\""), "%s", text);
    cr_assert_null (strstr (text, "\"Master\""), "%s", text);
    cr_assert_not_null (strstr (text, "\"rules_version\":\"v2\"}"), "%s", text);
    free (text);
    text = s_query (&spec, "cust-30", NULL);
    cJSON *before = cJSON_Parse (v1_30);
    cJSON *after = cJSON_Parse (text);
    cr_assert (cJSON_Compare (cJSON_GetObjectItem (before, "badges"),
                              cJSON_GetObjectItem (after, "badges"), true),
               "%s / %s", v1_30, text);
    cJSON_Delete (before);
    cJSON_Delete (after);
    free (text);
    free (v1_30);

    //  And again after: still nothing
    result = spec.command (NULL, s_view, "recompute", s_v2, spec.state);
    tree = cJSON_Parse (result);
    cr_assert (cJSON_IsFalse (cJSON_GetObjectItem (tree, "rules_changed")), "%s", result);
    cr_assert_eq (cJSON_GetArraySize (cJSON_GetObjectItem (tree, "removed")), 0, "%s", result);
    cr_assert_eq (cJSON_GetArraySize (cJSON_GetObjectItem (tree, "granted")), 0, "%s", result);
    cJSON_Delete (tree);
    free (result);
    cr_assert_eq (emitted.count, 0);

    //  Live under v2: cust-20 earns Master back at 25, with version v2
    for (int index = 0; index < 5; index++)
        s_quack (&spec, &quacks, "cust-20", ts + 100000);
    cr_assert_eq (emitted.count, 1);
    s_expect_data (emitted.events [0], "{\"badge\":\"Master\",\"rules_version\":\"v2\","
                                       "\"count\":25}");
    s_deliver (&spec, &emitted);

    //  Back to v1 then v2 again: new events each time (new position)
    result = spec.command (NULL, s_view, "recompute",
                           "{\"version\":\"v1\",\"badges\":[{\"name\":\"Junior\",\"at\":10},"
                           "{\"name\":\"Master\",\"at\":20}]}",
                           spec.state);
    free (result);
    cr_assert_eq (emitted.count, 1, "only the rules change: every badge is right under v1");
    s_deliver (&spec, &emitted);
    cr_assert_eq (s_apply (&spec, "BADGE_REMOVED", "cust-30", ts, "{\"badge\":\"Master\"}"), 0);
    result = spec.command (NULL, s_view, "recompute", s_v2, spec.state);
    free (result);
    cr_assert_eq (emitted.count, 2, "v2 again and Master back for cust-30");
    cr_assert_neq (memcmp (pond_event_id (emitted.events [0]), first_rules_id, POND_ID_SIZE), 0);
    cr_assert_str_eq (pond_event_name (emitted.events [1]), "BADGE_GRANTED");
    cr_assert_str_eq (pond_event_entity (emitted.events [1]), "cust-30");
    s_deliver (&spec, &emitted);

    //  v1, v2, v1 at one position, nothing delivered in between: each
    //  recompute sees what the ones before emitted, and ids never repeat
    const char *v1 = "{\"version\":\"v1\",\"badges\":[{\"name\":\"Junior\",\"at\":10},"
                     "{\"name\":\"Master\",\"at\":20}]}";
    cr_assert_eq (s_apply (&spec, "BADGE_REMOVED", "cust-30", ts, "{\"badge\":\"Junior\"}"), 0);
    const char *rounds [] = { v1, s_v2, v1 };
    for (int round = 0; round < 3; round++) {
        result = spec.command (NULL, s_view, "recompute", rounds [round], spec.state);
        cr_assert_not_null (result);
        free (result);
    }
    //  v1: rules; v2: rules; v1: rules. Junior comes back to cust-30 once
    cr_assert_eq (emitted.count, 4);
    const char *names [] = { "BADGE_RULES_CHANGED", "BADGE_GRANTED", "BADGE_RULES_CHANGED",
                             "BADGE_RULES_CHANGED" };
    for (size_t index = 0; index < emitted.count; index++) {
        cr_assert_str_eq (pond_event_name (emitted.events [index]), names [index]);
        for (size_t other = 0; other < index; other++)
            cr_assert_neq (memcmp (pond_event_id (emitted.events [index]),
                                   pond_event_id (emitted.events [other]), POND_ID_SIZE),
                           0);
    }
    s_deliver (&spec, &emitted);
    pond_badge_rules_t rules;
    pond_badge_granter_rules (s_view, &rules);
    cr_assert_str_eq (rules.version, "v1");
    text = s_query (&spec, "cust-30", NULL);
    cr_assert_not_null (strstr (text, "\"Junior\""), "%s", text);
    free (text);
    s_quacks_clear (&quacks);
    pond_badge_granter_destroy (&granter);
}

Test (badge_granter, an_older_change_does_not_cancel_a_newer_one, .init = s_setup,
      .fini = s_teardown)
{
    //  v2 grants Grand; before the log shows that grant, v1 removes it;
    //  then the grant arrives, then v2 again runs before the removal
    //  arrives. The grant must not make the granter forget the removal
    //  on its way: v2 must grant Grand once more, or once the removal
    //  arrives the customer lacks a badge v2 gives
    emitted_t emitted = { .count = 0 };
    quacks_t quacks = { .count = 0 };
    pond_actor_spec_t spec;
    pond_badge_granter_t *granter = s_granter (&spec, &emitted, &quacks);
    for (int index = 0; index < 50; index++)
        s_quack (&spec, &quacks, "c", 1000 + (uint64_t) index);
    s_deliver (&spec, &emitted);
    const char *v1 = "{\"version\":\"v1\",\"badges\":[{\"name\":\"Junior\",\"at\":10},"
                     "{\"name\":\"Master\",\"at\":20}]}";

    char *result = spec.command (NULL, s_view, "recompute", s_v2, spec.state);
    cr_assert_not_null (result);
    free (result);
    cr_assert_eq (emitted.count, 2);    //  rules, GRANTED Grand
    cr_assert_str_eq (pond_event_name (emitted.events [1]), "BADGE_GRANTED");
    emitted_t first = emitted;    //  held back: not in the log yet
    emitted.count = 0;

    result = spec.command (NULL, s_view, "recompute", v1, spec.state);
    cr_assert_not_null (result);
    free (result);
    cr_assert_eq (emitted.count, 2);    //  rules, REMOVED Grand
    cr_assert_str_eq (pond_event_name (emitted.events [1]), "BADGE_REMOVED");

    //  The log shows v2's events only
    s_deliver (&spec, &first);
    result = spec.command (NULL, s_view, "recompute", s_v2, spec.state);
    cr_assert_not_null (result);
    cJSON *tree = cJSON_Parse (result);
    char *granted = cJSON_PrintUnformatted (cJSON_GetObjectItem (tree, "granted"));
    cr_assert_str_eq (granted, "[{\"customer\":\"c\",\"badge\":\"Grand\"}]", "%s", result);
    //  Where the time went is reported
    cr_assert (cJSON_IsNumber (cJSON_GetObjectItem (tree, "count_seconds")), "%s", result);
    cr_assert (cJSON_IsNumber (cJSON_GetObjectItem (tree, "plan_seconds")), "%s", result);
    cr_assert (cJSON_IsNumber (cJSON_GetObjectItem (tree, "emit_seconds")), "%s", result);
    free (granted);
    cJSON_Delete (tree);
    free (result);

    //  Everything arrives: Grand is held, as v2 says
    s_deliver (&spec, &emitted);
    char *text = s_query (&spec, "c", NULL);
    cr_assert_not_null (strstr (text, "\"Grand\""), "%s", text);
    free (text);
    //  And nothing is left to do
    result = spec.command (NULL, s_view, "recompute", s_v2, spec.state);
    tree = cJSON_Parse (result);
    cr_assert_eq (cJSON_GetArraySize (cJSON_GetObjectItem (tree, "granted")), 0, "%s", result);
    cr_assert_eq (cJSON_GetArraySize (cJSON_GetObjectItem (tree, "removed")), 0, "%s", result);
    cJSON_Delete (tree);
    free (result);
    s_emitted_clear (&emitted);
    s_quacks_clear (&quacks);
    pond_badge_granter_destroy (&granter);
}

Test (badge_granter, applying_new_rules_reevaluates_the_badges_held, .init = s_setup,
      .fini = s_teardown)
{
    //  The race of issue 9, item 3: 20 quacks applied under v1 (Junior
    //  and Master granted, the grants not yet back from the log), then a
    //  BADGE_RULES_CHANGED to v2 in the log. Applying it must take Master
    //  away (v2: Master at 25), whatever the order the grants come back
    //  in, and a rebuild must decide the same, with the same ids
    emitted_t emitted = { .count = 0 };
    quacks_t quacks = { .count = 0 };
    pond_actor_spec_t spec;
    pond_badge_granter_t *granter = s_granter (&spec, &emitted, &quacks);
    for (int index = 0; index < 20; index++)
        s_quack (&spec, &quacks, "c", 1000 + (uint64_t) index);
    cr_assert_eq (emitted.count, 2, "Junior and Master, on their way");
    emitted_t grants = emitted;    //  held back: the log has them later
    emitted.count = 0;

    uint64_t rules_ts = s_time ("2022-06-01");
    pond_event_t *rules = s_event ("BADGE_RULES_CHANGED", "badge-rules", rules_ts, s_v2);
    cr_assert_eq (s_apply_to (&spec, s_view, rules), 0);
    cr_assert_eq (emitted.count, 1, "applying v2 takes Master away");
    const pond_event_t *removed = emitted.events [0];
    cr_assert_str_eq (pond_event_name (removed), "BADGE_REMOVED");
    cr_assert_str_eq (pond_event_entity (removed), "c");
    s_expect_data (removed, "{\"badge\":\"Master\",\"rules_version\":\"v2\",\"count\":20,"
                            "\"reason\":\"rules v2: needs 25, has 20\"}");
    cr_assert_eq (pond_event_ts (removed), rules_ts);
    uint8_t id [POND_ID_SIZE];
    pond_actor_derive_id (pond_event_id (rules), "remove/Master/c", id);
    cr_assert_eq (memcmp (pond_event_id (removed), id, POND_ID_SIZE), 0);
    cr_assert_eq (memcmp (pond_event_causation (removed), pond_event_id (rules), POND_ID_SIZE), 0);
    //  Marked on its way out: live granting does not count Master as held
    cJSON *doc = s_doc (s_view, "customer/c");
    cr_assert_not_null (cJSON_GetObjectItem (cJSON_GetObjectItem (doc, "removing"), "Master"));
    cJSON_Delete (doc);

    //  The log: the v1 grants, then the removal. Junior only, under v2
    s_deliver (&spec, &grants);
    s_deliver (&spec, &emitted);
    char *text = s_query (&spec, "c", NULL);
    cr_assert (strstr (text, "\"Junior\"") && !strstr (text, "\"Master\"")
                   && strstr (text, "\"rules_version\":\"v2\""),
               "%s", text);
    free (text);
    doc = s_doc (s_view, "customer/c");
    cr_assert_null (cJSON_GetObjectItem (doc, "removing"), "the mark went with the removal");
    cJSON_Delete (doc);

    //  Five more quacks: Master is due under v2 at 25, granted live
    for (int index = 0; index < 5; index++)
        s_quack (&spec, &quacks, "c", 2000 + (uint64_t) index);
    cr_assert_eq (emitted.count, 1);
    s_expect_data (emitted.events [0], "{\"badge\":\"Master\",\"rules_version\":\"v2\","
                                       "\"count\":25}");
    s_emitted_clear (&emitted);

    //  A rebuild from the log (a second view, a fresh granter) applying
    //  the same rules event at the same point emits the very same removal
    pond_view_t *live = s_view;
    s_view = s_open_view ("rebuilt");
    for (size_t index = 0; index < 20; index++)
        cr_assert_eq (s_apply_to (&spec, s_view, quacks.events [index]), 0);
    s_emitted_clear (&emitted);
    cr_assert_eq (s_apply_to (&spec, s_view, rules), 0);
    cr_assert_eq (emitted.count, 1);
    cr_assert_eq (memcmp (pond_event_id (emitted.events [0]), id, POND_ID_SIZE), 0);
    cr_assert_eq (pond_event_ts (emitted.events [0]), rules_ts);
    s_emitted_clear (&emitted);
    pond_view_destroy (&s_view);
    s_view = live;

    pond_event_destroy (&rules);
    s_quacks_clear (&quacks);
    pond_badge_granter_destroy (&granter);
}

Test (badge_granter, recompute_emits_many_changes_in_batches, .init = s_setup, .fini = s_teardown)
{
    //  More changes than one emit batch (1024): all emitted, in plan
    //  order, each once; a failing write point stops with an error
    emitted_t *emitted = calloc (1, sizeof (emitted_t));
    cr_assert_not_null (emitted);
    quacks_t quacks = { .count = 0 };
    pond_actor_spec_t spec;
    pond_badge_granter_t *granter = s_granter (&spec, emitted, &quacks);
    //  The view knows 1500 customers holding a badge no rules have
    for (int index = 0; index < 1500; index++) {
        char customer [32];
        snprintf (customer, sizeof customer, "c%04d", index);
        cr_assert_eq (s_apply (&spec, "BADGE_GRANTED", customer, 1000, "{\"badge\":\"Gold\"}"), 0);
    }
    char *result = spec.command (NULL, s_view, "recompute", s_v2, spec.state);
    cr_assert_not_null (result);
    cJSON *tree = cJSON_Parse (result);
    uint64_t value = 0;
    cr_assert_eq (pond_actors_uint (tree, "removed_count", &value), 0);
    cr_assert_eq (value, 1500);
    cr_assert_eq (cJSON_GetArraySize (cJSON_GetObjectItem (tree, "removed")), POND_BADGE_LIST_MAX);
    cJSON_Delete (tree);
    free (result);
    cr_assert_eq (emitted->count, 1501);
    for (size_t index = 1; index < emitted->count; index++) {
        char customer [32];
        snprintf (customer, sizeof customer, "c%04zu", index - 1);
        cr_assert_str_eq (pond_event_entity (emitted->events [index]), customer);
        cr_assert_str_eq (pond_event_name (emitted->events [index]), "BADGE_REMOVED");
    }
    s_emitted_clear (emitted);
    free (emitted);
    s_quacks_clear (&quacks);
    pond_badge_granter_destroy (&granter);
}

Test (badge_granter, recompute_grants_and_removes_unknown_badges, .init = s_setup,
      .fini = s_teardown)
{
    emitted_t emitted = { .count = 0 };
    quacks_t quacks = { .count = 0 };
    pond_actor_spec_t spec;
    pond_badge_granter_t *granter = s_granter (&spec, &emitted, &quacks);
    for (int index = 0; index < 50; index++)
        s_quack (&spec, &quacks, "big", 1000 + (uint64_t) index);
    s_deliver (&spec, &emitted);
    //  A badge from elsewhere, in no rules
    cr_assert_eq (s_apply (&spec, "BADGE_GRANTED", "big", 5000, "{\"badge\":\"Gold\"}"), 0);
    char *result = spec.command (NULL, s_view, "recompute", s_v2, spec.state);
    cr_assert_not_null (result);
    cJSON *tree = cJSON_Parse (result);
    char *granted = cJSON_PrintUnformatted (cJSON_GetObjectItem (tree, "granted"));
    char *removed = cJSON_PrintUnformatted (cJSON_GetObjectItem (tree, "removed"));
    cr_assert_str_eq (granted, "[{\"customer\":\"big\",\"badge\":\"Grand\"}]");
    cr_assert_str_eq (removed, "[{\"customer\":\"big\",\"badge\":\"Gold\"}]");
    free (granted);
    free (removed);
    cJSON_Delete (tree);
    free (result);
    cr_assert_eq (emitted.count, 3);
    s_expect_data (emitted.events [1], "{\"badge\":\"Gold\",\"rules_version\":\"v2\","
                                       "\"count\":50,\"reason\":\"rules v2: no badge Gold\"}");
    s_expect_data (emitted.events [2], "{\"badge\":\"Grand\",\"rules_version\":\"v2\","
                                       "\"count\":50}");
    s_emitted_clear (&emitted);
    s_quacks_clear (&quacks);
    pond_badge_granter_destroy (&granter);
}

Test (badge_granter, recompute_errors, .init = s_setup, .fini = s_teardown)
{
    emitted_t emitted = { .count = 0 };
    quacks_t quacks = { .count = 0 };
    pond_actor_spec_t spec;
    pond_badge_granter_t *granter = s_granter (&spec, &emitted, &quacks);
    for (int index = 0; index < 20; index++)
        s_quack (&spec, &quacks, "c", 1000 + (uint64_t) index);
    s_deliver (&spec, &emitted);

    //  Bad rules, unknown command: nothing emitted
    cr_assert_null (spec.command (NULL, s_view, "recompute", "{nope", spec.state));
    cr_assert_null (spec.command (NULL, s_view, "recompute", "", spec.state));
    cr_assert_null (spec.command (NULL, s_view, "recompute", NULL, spec.state));
    cr_assert_null (spec.command (NULL, s_view, "explode", s_v2, spec.state));
    cr_assert_eq (emitted.count, 0);
    //  The store fails mid-replay: an error, nothing emitted
    quacks.fail = true;
    cr_assert_null (spec.command (NULL, s_view, "recompute", s_v2, spec.state));
    cr_assert_eq (emitted.count, 0);
    quacks.fail = false;
    //  The write point fails: an error; the retry does it all
    emitted.fail = true;
    cr_assert_null (spec.command (NULL, s_view, "recompute", s_v2, spec.state));
    emitted.fail = false;
    cr_assert_eq (emitted.count, 0);
    char *result = spec.command (NULL, s_view, "recompute", s_v2, spec.state);
    cr_assert_not_null (result);
    free (result);
    cr_assert_eq (emitted.count, 2);
    s_emitted_clear (&emitted);
    s_quacks_clear (&quacks);
    pond_badge_granter_destroy (&granter);
}

Test (badge_granter, works_without_state, .init = s_setup, .fini = s_teardown)
{
    //  As a bare spec (no granter, no actor): decisions still recorded,
    //  nothing sent, recompute without a store has no replay to run
    pond_actor_spec_t spec;
    pond_badge_granter_spec (&spec);
    cr_assert_null (spec.state);
    for (int index = 0; index < 10; index++)
        cr_assert_eq (s_apply (&spec, "QUACKED", "c", 1000, NULL), 0);
    cJSON *doc = s_doc (s_view, "customer/c");
    cr_assert_not_null (cJSON_GetObjectItem (cJSON_GetObjectItem (doc, "granting"), "Junior"));
    cJSON_Delete (doc);
    cr_assert_null (spec.command (NULL, s_view, "recompute", s_v2, NULL));
}

//  ---------------------------------------------------------------------
//  The replay reader every actor catches up with (pond_reader_* of
//  pond_reader.c), against a fake control socket in this thread

//  Encoded event number seq, QUACKED for cust-1
static zframe_t *
s_stored (uint64_t seq, zframe_t *append_to)
{
    pond_event_t *event = pond_event_new ("QUACKED", "cust-1");
    pond_event_set_ts (event, 1000 + seq);
    pond_event_set_seq (event, seq);
    char err [POND_ERR_SIZE];
    size_t size;
    uint8_t *bytes = pond_event_encode (event, &size, err, sizeof err);
    cr_assert_not_null (bytes, "%s", err);
    pond_event_destroy (&event);
    zframe_t *frame = append_to;
    if (!frame)
        frame = zframe_new (bytes, size);
    else {
        size_t old = zframe_size (frame);
        zframe_t *bigger = zframe_new (NULL, old + size);
        memcpy (zframe_data (bigger), zframe_data (frame), old);
        memcpy (zframe_data (bigger) + old, bytes, size);
        zframe_destroy (&frame);
        frame = bigger;
    }
    free (bytes);
    return frame;
}

//  Start a replay on a fake control socket; returns the reader's identity
static zframe_t *
s_fake_replay (zsock_t *control, const char *endpoint, pond_reader_t **replay_p, uint64_t *rid_p)
{
    //  Credit 2: the reader grants chunks again one by one (with more, it
    //  grants them in batches of half its credit)
    pond_replay_req_t request = { .from_seq = 1, .credit = 2 };
    *replay_p = pond_reader_new (endpoint, &request);
    cr_assert_not_null (*replay_p);
    zmsg_t *msg = zmsg_recv (control);
    cr_assert_not_null (msg);
    zframe_t *identity = zmsg_pop (msg);
    cr_assert (pond_proto_is (zmsg_first (msg), POND_REPLAY));
    pond_replay_req_t got;
    char err [POND_ERR_SIZE];
    cr_assert_eq (pond_replay_req_decode (zmsg_next (msg), &got, err, sizeof err), 0, "%s", err);
    cr_assert (got.pack, "the reader asks for packed chunks");
    *rid_p = got.rid;
    zmsg_destroy (&msg);
    return identity;
}

static void
s_fake_send (zsock_t *control, zframe_t *identity, const char *command, zframe_t *body,
             zframe_t **events, size_t count)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_append (msg, &(zframe_t *) { zframe_dup (identity) });
    zmsg_addstr (msg, command);
    zmsg_append (msg, &body);
    for (size_t i = 0; i < count; i++)
        zmsg_append (msg, &events [i]);
    cr_assert_eq (zmsg_send (&msg, control), 0);
}

Test (replay_reader, packed_and_unpacked_chunks)
{
    char *dir = pond_harness_tempdir ();
    char endpoint [512];
    snprintf (endpoint, sizeof endpoint, "ipc://%s/control.ipc", dir);
    zsock_t *control = zsock_new_router (endpoint);
    cr_assert_not_null (control);
    pond_reader_t *replay;
    uint64_t rid;
    zframe_t *identity = s_fake_replay (control, endpoint, &replay, &rid);

    //  A packed CHUNK (events 1..3 in one frame), an unpacked one (4, 5)
    pond_credit_t header = { .rid = rid, .chunks = 7 };
    zframe_t *packed = NULL;
    for (uint64_t seq = 1; seq <= 3; seq++)
        packed = s_stored (seq, packed);
    s_fake_send (control, identity, POND_CHUNK, pond_credit_encode (&header), &packed, 1);
    zframe_t *plain [2] = { s_stored (4, NULL), s_stored (5, NULL) };
    s_fake_send (control, identity, POND_CHUNK, pond_credit_encode (&header), plain, 2);
    pond_end_t end = { .rid = rid, .count = 5, .head = 5, .code = POND_CODE_OK };
    s_fake_send (control, identity, POND_END, pond_end_encode (&end), NULL, 0);

    for (uint64_t seq = 1; seq <= 5; seq++) {
        pond_event_t *event = pond_reader_next (replay, 5000);
        cr_assert_not_null (event, "event %lu: %s", (unsigned long) seq,
                            pond_reader_reason (replay));
        cr_assert_eq (pond_event_seq (event), seq);
        pond_event_destroy (&event);
    }
    cr_assert_null (pond_reader_next (replay, 5000));
    cr_assert_eq (pond_reader_code (replay), POND_CODE_OK, "%s", pond_reader_reason (replay));
    cr_assert_eq (pond_reader_count (replay), 5);
    cr_assert_eq (pond_reader_head (replay), 5);
    //  One CREDIT per chunk taken
    for (int chunk = 0; chunk < 2; chunk++) {
        zmsg_t *msg = zmsg_recv (control);
        cr_assert_not_null (msg);
        zmsg_first (msg);    //  the reader's identity
        cr_assert (pond_proto_is (zmsg_next (msg), POND_CREDIT));
        zmsg_destroy (&msg);
    }
    pond_reader_destroy (&replay);
    zframe_destroy (&identity);
    zsock_destroy (&control);
    pond_harness_rmtree (dir);
    free (dir);
}

Test (replay_reader, damaged_packed_frame_fails_the_replay)
{
    char *dir = pond_harness_tempdir ();
    char endpoint [512];
    snprintf (endpoint, sizeof endpoint, "ipc://%s/control.ipc", dir);
    zsock_t *control = zsock_new_router (endpoint);
    cr_assert_not_null (control);
    pond_reader_t *replay;
    uint64_t rid;
    zframe_t *identity = s_fake_replay (control, endpoint, &replay, &rid);

    //  One good event, then bytes that are no event
    zframe_t *packed = s_stored (1, NULL);
    size_t size = zframe_size (packed);
    zframe_t *damaged = zframe_new (NULL, size + 3);
    memcpy (zframe_data (damaged), zframe_data (packed), size);
    memcpy (zframe_data (damaged) + size, "\x81\xa1", 2);    //  a map cut short
    zframe_data (damaged) [size + 2] = 0xc1;
    zframe_destroy (&packed);
    pond_credit_t header = { .rid = rid, .chunks = 7 };
    s_fake_send (control, identity, POND_CHUNK, pond_credit_encode (&header), &damaged, 1);

    pond_event_t *event = pond_reader_next (replay, 5000);
    cr_assert_not_null (event, "%s", pond_reader_reason (replay));
    pond_event_destroy (&event);
    cr_assert_null (pond_reader_next (replay, 5000));
    cr_assert_eq (pond_reader_code (replay), POND_CODE_BAD_REPLY);
    cr_assert_not_null (strstr (pond_reader_reason (replay), "event 2"), "%s",
                        pond_reader_reason (replay));
    //  The reader told the server to stop (after the CREDIT for the chunk)
    bool cancelled = false;
    for (int i = 0; i < 2 && !cancelled; i++) {
        zmsg_t *msg = zmsg_recv (control);
        cr_assert_not_null (msg);
        zmsg_first (msg);    //  the reader's identity
        cancelled = pond_proto_is (zmsg_next (msg), POND_CANCEL);
        zmsg_destroy (&msg);
    }
    cr_assert (cancelled);
    pond_reader_destroy (&replay);
    zframe_destroy (&identity);
    zsock_destroy (&control);
    pond_harness_rmtree (dir);
    free (dir);
}

//  ---------------------------------------------------------------------
//  Alexa view

Test (alexa_view, answers, .init = s_setup, .fini = s_teardown)
{
    pond_actor_spec_t spec;
    pond_alexa_view_spec (&spec);
    cr_assert_str_eq (spec.name, "alexa-view");
    const char *what = "what do I have?";

    //  Unknown customer: an empty inventory
    s_expect_answer (&spec, "cust-1", what, "You have nothing.");
    s_expect_answer (&spec, "cust-1", "do I have milk?", "No, you have no milk.");

    cr_assert_eq (
        s_apply (&spec, "LABEL_ADDED", "cust-1", 100, "{\"label\":\"milk\",\"container\":\"c1\"}"),
        0);
    s_expect_answer (&spec, "cust-1", what, "You have milk.");
    cr_assert_eq (
        s_apply (&spec, "LABEL_ADDED", "cust-1", 200, "{\"label\":\"eggs\",\"container\":\"c2\"}"),
        0);
    s_expect_answer (&spec, "cust-1", what, "You have eggs and milk.");
    //  Without a container, lenient
    cr_assert_eq (s_apply (&spec, "LABEL_ADDED", "cust-1", 300, "{\"label\":\"cheddar\"}"), 0);
    s_expect_answer (&spec, "cust-1", what, "You have cheddar, eggs and milk.");
    cr_assert_eq (s_apply (&spec, "LABEL_ADDED", "cust-1", 300, "{\"label\":\"bread\"}"), 0);
    s_expect_answer (&spec, "cust-1", what, "You have bread, cheddar, eggs and milk.");

    //  The phrasing is forgiving
    s_expect_answer (&spec, "cust-1", "Alexa, what do I have?",
                     "You have bread, cheddar, eggs and milk.");
    s_expect_answer (&spec, "cust-1", "  WHAT   do i HAVE  ",
                     "You have bread, cheddar, eggs and milk.");
    s_expect_answer (&spec, "cust-1", "do I have milk?", "Yes, you have milk in container c1.");
    s_expect_answer (&spec, "cust-1", "alexa, Do I have MILK",
                     "Yes, you have milk in container c1.");
    s_expect_answer (&spec, "cust-1", "do I have any eggs?", "Yes, you have eggs in container c2.");
    s_expect_answer (&spec, "cust-1", "do I have egg?", "Yes, you have eggs in container c2.");
    s_expect_answer (&spec, "cust-1", "do I have cheddar?", "Yes, you have cheddar.");
    s_expect_answer (&spec, "cust-1", "do I have butter?", "No, you have no butter.");
    s_expect_answer (&spec, "cust-1", "Do I have Peanut Butter?", "No, you have no Peanut Butter.");

    //  Anything else
    const char *sorry = "Sorry, I can answer \"what do I have?\" and \"do I have X?\".";
    s_expect_answer (&spec, "cust-1", "play some music", sorry);
    s_expect_answer (&spec, "cust-1", "do I have", sorry);
    s_expect_answer (&spec, "cust-1", "", sorry);
    s_expect_answer (&spec, "cust-1", NULL, sorry);
    s_expect_answer (&spec, "cust-1", "alexa", sorry);

    //  The same label in a second container
    cr_assert_eq (
        s_apply (&spec, "LABEL_ADDED", "cust-1", 400, "{\"label\":\"milk\",\"container\":\"c3\"}"),
        0);
    s_expect_answer (&spec, "cust-1", "do I have milk",
                     "Yes, you have milk in containers c1 and c3.");
    cr_assert_eq (
        s_apply (&spec, "LABEL_ADDED", "cust-1", 400, "{\"label\":\"Milk\",\"container\":\"c0\"}"),
        0);
    cr_assert_eq (
        s_apply (&spec, "LABEL_ADDED", "cust-1", 400, "{\"label\":\"milk\",\"container\":\"c25\"}"),
        0);
    cr_assert_eq (
        s_apply (&spec, "LABEL_ADDED", "cust-1", 400, "{\"label\":\"milk\",\"container\":\"c25\"}"),
        0);    //  again
    s_expect_answer (&spec, "cust-1", "do I have milk",
                     "Yes, you have milk in containers c0, c1, c25 and c3.");
    cr_assert_eq (s_apply (&spec, "LABEL_REMOVED", "cust-1", 450,
                           "{\"label\":\"milk\",\"container\":\"c0\"}"),
                  0);
    cr_assert_eq (s_apply (&spec, "LABEL_REMOVED", "cust-1", 450,
                           "{\"label\":\"MILK\",\"container\":\"c25\"}"),
                  0);
    s_expect_answer (&spec, "cust-1", "do I have milk",
                     "Yes, you have milk in containers c1 and c3.");

    //  Removal removes the item (from that container, then entirely)
    cr_assert_eq (s_apply (&spec, "LABEL_REMOVED", "cust-1", 500,
                           "{\"label\":\"milk\",\"container\":\"c1\"}"),
                  0);
    s_expect_answer (&spec, "cust-1", "do I have milk", "Yes, you have milk in container c3.");
    cr_assert_eq (s_apply (&spec, "LABEL_REMOVED", "cust-1", 600,
                           "{\"label\":\"milk\",\"container\":\"c3\"}"),
                  0);
    s_expect_answer (&spec, "cust-1", "do I have milk?", "No, you have no milk.");
    cr_assert_eq (s_apply (&spec, "LABEL_REMOVED", "cust-1", 700, "{\"label\":\"Bread\"}"), 0);
    s_expect_answer (&spec, "cust-1", what, "You have cheddar and eggs.");
    //  A loose item removed with a container named
    cr_assert_eq (s_apply (&spec, "LABEL_REMOVED", "cust-1", 700,
                           "{\"label\":\"cheddar\",\"container\":\"c9\"}"),
                  0);
    s_expect_answer (&spec, "cust-1", what, "You have eggs.");
    //  Relabelling a container moves its old item out
    cr_assert_eq (s_apply (&spec, "LABEL_ADDED", "cust-1", 800,
                           "{\"label\":\"butter\",\"container\":\"c2\"}"),
                  0);
    s_expect_answer (&spec, "cust-1", what, "You have butter.");
    s_expect_answer (&spec, "cust-1", "do I have eggs", "No, you have no eggs.");
    //  Removing what is not there changes nothing
    cr_assert_eq (s_apply (&spec, "LABEL_REMOVED", "cust-1", 900, "{\"label\":\"caviar\"}"), 0);
    s_expect_answer (&spec, "cust-1", what, "You have butter.");

    //  Other customers are separate
    s_expect_answer (&spec, "cust-2", what, "You have nothing.");
    cr_assert_null (s_query (&spec, "", what));

    //  Events without a label: counted, ignored
    cr_assert_eq (s_apply (&spec, "LABEL_ADDED", "cust-1", 1000, "{\"container\":\"c1\"}"), 0);
    cr_assert_eq (s_apply (&spec, "LABEL_ADDED", "cust-1", 1000, "{\"label\":12}"), 0);
    cr_assert_eq (s_apply (&spec, "LABEL_REMOVED", "cust-1", 1000, NULL), 0);
    cr_assert_eq (s_skipped (s_view), 3);
    s_expect_answer (&spec, "cust-1", what, "You have butter.");
    //  An odd container is skipped, the label kept
    cr_assert_eq (s_apply (&spec, "LABEL_ADDED", "cust-1", 1000,
                           "{\"label\":\"jam\",\"container\":{\"id\":1}}"),
                  0);
    s_expect_answer (&spec, "cust-1", "do I have jam", "Yes, you have jam.");
}

//  ---------------------------------------------------------------------
//  Mobile view

Test (mobile_view, the_document, .init = s_setup, .fini = s_teardown)
{
    pond_actor_spec_t spec;
    pond_mobile_view_spec (&spec);
    cr_assert_str_eq (spec.name, "mobile-view");
    cr_assert_null (s_query (&spec, "cust-1", NULL));

    cr_assert_eq (
        s_apply (&spec, "LABEL_ADDED", "cust-1", 100, "{\"label\":\"milk\",\"container\":\"c1\"}"),
        0);
    cr_assert_eq (
        s_apply (&spec, "LABEL_ADDED", "cust-1", 200, "{\"label\":\"eggs\",\"container\":\"c2\"}"),
        0);
    cr_assert_eq (s_apply (&spec, "LABEL_ADDED", "cust-1", 300, "{\"label\":\"cheddar\"}"), 0);
    cr_assert_eq (s_apply (&spec, "QUACKED", "cust-1", 400, "{\"loudness_db\":70}"), 0);
    cr_assert_eq (s_apply (&spec, "QUACKED", "cust-1", 500, NULL), 0);
    cr_assert_eq (s_apply (&spec, "BUTTON_CLICKED", "cust-1", 600, NULL), 0);
    cr_assert_eq (s_apply (&spec, "BADGE_GRANTED", "cust-1", 700,
                           "{\"badge\":\"Junior\",\"rules_version\":\"v1\",\"count\":10}"),
                  0);
    cr_assert_eq (s_apply (&spec, "BADGE_GRANTED", "cust-1", 800,
                           "{\"badge\":\"Master\",\"rules_version\":\"v1\",\"count\":20}"),
                  0);
    cr_assert_eq (s_apply (&spec, "LABEL_REMOVED", "cust-1", 900,
                           "{\"label\":\"milk\",\"container\":\"c1\"}"),
                  0);
    cr_assert_eq (s_apply (&spec, "BADGE_REMOVED", "cust-1", 1000,
                           "{\"badge\":\"Master\",\"rules_version\":\"v2\"}"),
                  0);
    cr_assert_eq (s_apply (&spec, "BADGE_GRANTED", "cust-1", 1100,
                           "{\"badge\":\"Junior\",\"rules_version\":\"v2\"}"),
                  0);    //  held
    s_expect (&spec, "cust-1", NULL,
              "{\"customer\":\"cust-1\","
              "\"inventory\":[{\"label\":\"cheddar\",\"container\":null,\"since\":300},"
              "{\"label\":\"eggs\",\"container\":\"c2\",\"since\":200}],"
              "\"containers\":{\"c1\":{\"state\":\"UNLABELED\"},"
              "\"c2\":{\"state\":\"LABELED\",\"label\":\"eggs\"}},"
              "\"quacks\":2,\"clicks\":1,"
              "\"badges\":[{\"name\":\"Junior\",\"granted_ts\":700,\"rules_version\":\"v1\"}],"
              "\"updated_seq\":11,\"updated_ts\":1100}");

    //  Relabel c2, label c1 again, remove cheddar with no container
    cr_assert_eq (s_apply (&spec, "LABEL_ADDED", "cust-1", 1200,
                           "{\"label\":\"butter\",\"container\":\"c2\"}"),
                  0);
    cr_assert_eq (s_apply (&spec, "LABEL_ADDED", "cust-1", 1300,
                           "{\"label\":\"apples\",\"container\":\"c1\"}"),
                  0);
    cr_assert_eq (s_apply (&spec, "LABEL_REMOVED", "cust-1", 1400, "{\"label\":\"cheddar\"}"), 0);
    cr_assert_eq (s_apply (&spec, "LABEL_ADDED", "cust-1", 1500,
                           "{\"label\":\"apples\",\"container\":\"c1\"}"),
                  0);    //  again
    s_expect (&spec, "cust-1", NULL,
              "{\"customer\":\"cust-1\","
              "\"inventory\":[{\"label\":\"apples\",\"container\":\"c1\",\"since\":1300},"
              "{\"label\":\"butter\",\"container\":\"c2\",\"since\":1200}],"
              "\"containers\":{\"c1\":{\"state\":\"LABELED\",\"label\":\"apples\"},"
              "\"c2\":{\"state\":\"LABELED\",\"label\":\"butter\"}},"
              "\"quacks\":2,\"clicks\":1,"
              "\"badges\":[{\"name\":\"Junior\",\"granted_ts\":700,\"rules_version\":\"v1\"}],"
              "\"updated_seq\":15,\"updated_ts\":1500}");
    //  Entries and containers keep their order whatever the order of events
    cr_assert_eq (
        s_apply (&spec, "LABEL_ADDED", "cust-3", 1, "{\"label\":\"b\",\"container\":\"k5\"}"), 0);
    cr_assert_eq (
        s_apply (&spec, "LABEL_ADDED", "cust-3", 2, "{\"label\":\"d\",\"container\":\"k1\"}"), 0);
    cr_assert_eq (
        s_apply (&spec, "LABEL_ADDED", "cust-3", 3, "{\"label\":\"c\",\"container\":\"k3\"}"), 0);
    cr_assert_eq (
        s_apply (&spec, "LABEL_ADDED", "cust-3", 4, "{\"label\":\"a\",\"container\":\"k4\"}"), 0);
    cr_assert_eq (s_apply (&spec, "LABEL_ADDED", "cust-3", 5, "{\"label\":\"c\"}"), 0);
    cr_assert_eq (
        s_apply (&spec, "LABEL_ADDED", "cust-3", 6, "{\"label\":\"c\",\"container\":\"k2\"}"), 0);
    char *text = s_query (&spec, "cust-3", NULL);
    cr_assert_not_null (strstr (text,
                                "\"inventory\":["
                                "{\"label\":\"a\",\"container\":\"k4\",\"since\":4},"
                                "{\"label\":\"b\",\"container\":\"k5\",\"since\":1},"
                                "{\"label\":\"c\",\"container\":null,\"since\":5},"
                                "{\"label\":\"c\",\"container\":\"k2\",\"since\":6},"
                                "{\"label\":\"c\",\"container\":\"k3\",\"since\":3},"
                                "{\"label\":\"d\",\"container\":\"k1\",\"since\":2}],"
                                "\"containers\":{\"k1\":{\"state\":\"LABELED\",\"label\":\"d\"},"
                                "\"k2\":{\"state\":\"LABELED\",\"label\":\"c\"},"
                                "\"k3\":{\"state\":\"LABELED\",\"label\":\"c\"},"
                                "\"k4\":{\"state\":\"LABELED\",\"label\":\"a\"},"
                                "\"k5\":{\"state\":\"LABELED\",\"label\":\"b\"}}"),
                        "%s", text);
    free (text);

    //  Removing a label without its container unlabels the containers
    cr_assert_eq (s_apply (&spec, "LABEL_REMOVED", "cust-1", 1600, "{\"label\":\"butter\"}"), 0);
    text = s_query (&spec, "cust-1", NULL);
    cr_assert_not_null (strstr (text, "\"c2\":{\"state\":\"UNLABELED\"}"), "%s", text);
    cr_assert_null (strstr (text, "butter"), "%s", text);
    free (text);

    //  Odd events: counted and ignored, the document untouched
    text = s_query (&spec, "cust-1", NULL);
    cr_assert_eq (s_apply (&spec, "LABEL_ADDED", "cust-1", 1700, "{\"container\":\"c3\"}"), 0);
    cr_assert_eq (s_apply (&spec, "LABEL_REMOVED", "cust-1", 1700, NULL), 0);
    cr_assert_eq (s_apply (&spec, "BADGE_GRANTED", "cust-1", 1700, "{\"badge\":[]}"), 0);
    cr_assert_eq (s_skipped (s_view), 3);
    char *after = s_query (&spec, "cust-1", NULL);
    cr_assert_str_eq (text, after);
    free (text);
    free (after);

    //  Another customer appears with the first event that names it
    cr_assert_eq (s_apply (&spec, "BUTTON_CLICKED", "cust-2", 5000, NULL), 0);
    s_expect (&spec, "cust-2", NULL,
              "{\"customer\":\"cust-2\",\"inventory\":[],\"containers\":{},\"quacks\":0,"
              "\"clicks\":1,\"badges\":[],\"updated_seq\":26,\"updated_ts\":5000}");
    cr_assert_null (s_query (&spec, "", NULL));
}

//  ---------------------------------------------------------------------
//  Determinism: the same log applied twice gives the same view

static int
s_discard (void *arg, const pond_event_t *event)
{
    (void) arg;
    (void) event;
    return 0;
}

Test (determinism, rebuild_equals_live, .init = s_setup, .fini = s_teardown)
{
    //  One stream touching every actor, odd events included
    const char *customers [] = { "c1", "c2", "c3" };
    const char *labels [] = { "milk", "eggs", "cheddar", "jam" };
    pond_event_t *stream [400];
    size_t count = 0;
    uint64_t ts = s_time ("2021-12-30");
    for (int index = 0; index < 360; index++) {
        const char *customer = customers [index % 3];
        char data [128];
        const char *name;
        snprintf (data, sizeof data, "{\"label\":\"%s\",\"container\":\"k%d\"}", labels [index % 4],
                  index % 5);
        switch (index % 7) {
            case 0:
            case 1:
            case 2: name = "QUACKED"; break;
            case 3: name = "LABEL_ADDED"; break;
            case 4: name = index % 2 ? "LABEL_REMOVED" : "BUTTON_CLICKED"; break;
            case 5:
                name = "BADGE_GRANTED";
                snprintf (data, sizeof data, "{\"badge\":\"B%d\"}", index % 3);
                break;
            default:
                name = index % 3 ? "BADGE_REMOVED" : "LABEL_ADDED";
                snprintf (data, sizeof data, "{\"badge\":\"B%d\"}", index % 3);
                break;
        }
        stream [count++] = s_event (name, customer, ts + (uint64_t) index * 3600000000ULL, data);
    }
    stream [count++] = s_event ("BADGE_RULES_CHANGED", "badge-rules", ts, s_v2);
    for (int index = 0; index < 30; index++)
        stream [count++] = s_event ("QUACKED", "c1", ts, NULL);

    void (*specs []) (pond_actor_spec_t *) = { pond_quack_counter_spec, pond_badge_granter_spec,
                                               pond_alexa_view_spec, pond_mobile_view_spec };
    for (size_t which = 0; which < 4; which++) {
        char *dumps [2];
        for (int round = 0; round < 2; round++) {
            char name [32];
            snprintf (name, sizeof name, "view-%zu-%d", which, round);
            pond_view_t *view = s_open_view (name);
            pond_actor_spec_t spec;
            specs [which](&spec);
            pond_badge_granter_t *granter = NULL;
            if (which == 1) {
                granter = pond_badge_granter_new ();
                pond_badge_granter_set_emit (granter, s_discard, NULL);
                spec.state = granter;
            }
            for (size_t index = 0; index < count; index++) {
                //  Only the names the actor applies, as the runtime does
                bool wanted = false;
                for (const char *const *n = spec.names; *n; n++)
                    wanted |= strcmp (*n, pond_event_name (stream [index])) == 0;
                if (wanted)
                    cr_assert_eq (s_apply_to (&spec, view, stream [index]), 0);
            }
            dumps [round] = pond_view_dump (view);
            cr_assert_not_null (dumps [round]);
            pond_badge_granter_destroy (&granter);
            pond_view_destroy (&view);
        }
        cr_assert_str_eq (dumps [0], dumps [1], "actor %zu: rebuild differs", which);
        cr_assert_gt (strlen (dumps [0]), 40);
        free (dumps [0]);
        free (dumps [1]);
    }
    for (size_t index = 0; index < count; index++)
        pond_event_destroy (&stream [index]);
}
