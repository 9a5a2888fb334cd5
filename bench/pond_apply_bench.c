/*  pond-apply-bench: what applying one event costs each actor, in ns.

    For each of the four actors, builds N events of the kinds it applies,
    shaped as the mesh sends them (QUACKED with duration_ms, loudness_db
    and firmware; LABEL_ADDED / LABEL_REMOVED with label and container;
    BADGE_GRANTED with badge, count and rules_version), over 1,000
    customers, and applies them to a fresh view in a temporary directory
    as the runtime does (pond_view_begin, spec.apply, pond_view_commit).
    Times apply alone and apply with its commit, over R rounds (a new view
    each round) after one warm-up round; prints one line per actor with
    the median ns per event and the min-max:

        pond-apply-bench [--events N] [--rounds R]

    Actors and their events:
        quack-counter   QUACKED
        badge-granter   QUACKED, every 10th a BADGE_GRANTED
        alexa-view      LABEL_ADDED, LABEL_REMOVED alternately
        mobile-view     QUACKED, LABEL_ADDED, LABEL_REMOVED, BADGE_GRANTED
*/
#define _GNU_SOURCE
#include "pond_alexa_view.h"
#include "pond_badge_granter.h"
#include "pond_mobile_view.h"
#include "pond_quack_counter.h"
#include "pond_view.h"

#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_CUSTOMERS  1000
#define S_ROUNDS_MAX 32

typedef enum { S_QUACK, S_ADD, S_REMOVE, S_GRANT } s_kind_t;

static uint64_t
s_now_ns (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (uint64_t) now.tv_sec * 1000000000ULL + (uint64_t) now.tv_nsec;
}

//  The index-th event of the given kind, seq index + 1
static pond_event_t *
s_event (s_kind_t kind, size_t index)
{
    static const char *names [] = { "QUACKED", "LABEL_ADDED", "LABEL_REMOVED", "BADGE_GRANTED" };
    static const char *labels [] = { "Milk", "Eggs", "Cheddar", "Butter", "Flour" };
    static const char *badges [] = { "Junior", "Master", "Grand" };
    char entity [32];
    snprintf (entity, sizeof entity, "cust-%zu", index % S_CUSTOMERS);
    pond_event_t *event = pond_event_new (names [kind], entity);
    if (!event)
        return NULL;
    char data [256];
    if (kind == S_QUACK)
        snprintf (data, sizeof data,
                  "{\"duration_ms\":%zu,\"loudness_db\":%.1f,"
                  "\"firmware\":\"silo-2.4.%zu\"}",
                  200 + index % 700, 40.0 + (double) (index % 50) / 2, index % 10);
    else if (kind == S_ADD || kind == S_REMOVE)
        snprintf (data, sizeof data, "{\"label\":\"%s\",\"container\":\"c%zu\"}",
                  labels [(index / 2) % 5], (index / 2) % 8);
    else
        snprintf (data, sizeof data, "{\"badge\":\"%s\",\"count\":%zu,\"rules_version\":\"v1\"}",
                  badges [index % 3], 10 + index % 40);
    char err [256];
    if (pond_event_set_data_json (event, data, err, sizeof err)) {
        fprintf (stderr, "pond-apply-bench: %s\n", err);
        pond_event_destroy (&event);
        return NULL;
    }
    pond_event_set_ts (event, 1640995200000000ULL + index * 1000);
    pond_event_set_seq (event, index + 1);
    return event;
}

static s_kind_t
s_kind (const char *actor, size_t index)
{
    if (streq (actor, POND_QUACK_COUNTER_NAME))
        return S_QUACK;
    if (streq (actor, POND_BADGE_GRANTER_NAME))
        return index % 10 == 9 ? S_GRANT : S_QUACK;
    if (streq (actor, POND_ALEXA_VIEW_NAME))
        return index % 2 ? S_REMOVE : S_ADD;
    return (s_kind_t) (index % 4);
}

static int
s_emit_nothing (void *arg, const pond_event_t *event)
{
    (void) arg;
    (void) event;
    return 0;
}

static int
s_compare (const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
    return x < y ? -1 : x > y;
}

//  One round: apply every event to a fresh view; ns per event into
//  *apply_p (apply alone) and *total_p (with begin and commit)
static int
s_round (pond_actor_spec_t *spec, pond_event_t **events, size_t count, const char *dir, int round,
         uint64_t *apply_p, uint64_t *total_p)
{
    char path [512];
    snprintf (path, sizeof path, "%s/%s-%d", dir, spec->name, round);
    pond_view_t *view = pond_view_open (path);
    if (!view) {
        fprintf (stderr, "pond-apply-bench: cannot open a view in %s\n", path);
        return -1;
    }
    if (spec->start && spec->start (NULL, view, spec->state)) {
        fprintf (stderr, "pond-apply-bench: %s did not start\n", spec->name);
        pond_view_destroy (&view);
        return -1;
    }
    uint64_t applying = 0;
    uint64_t started = s_now_ns ();
    for (size_t index = 0; index < count; index++) {
        pond_view_begin (view);
        uint64_t before = s_now_ns ();
        int rc = spec->apply (NULL, view, events [index], spec->state);
        applying += s_now_ns () - before;
        if (rc || pond_view_commit (view, pond_event_seq (events [index]))) {
            fprintf (stderr, "pond-apply-bench: %s refused event %zu\n", spec->name, index);
            pond_view_destroy (&view);
            return -1;
        }
    }
    uint64_t total = s_now_ns () - started;
    pond_view_destroy (&view);
    *apply_p = applying / count;
    *total_p = total / count;
    return 0;
}

int
main (int argc, char *argv [])
{
    size_t count = 20000;
    int rounds = 5;
    for (int arg = 1; arg < argc; arg++) {
        if (streq (argv [arg], "--events") && arg + 1 < argc)
            count = (size_t) strtoull (argv [++arg], NULL, 10);
        else if (streq (argv [arg], "--rounds") && arg + 1 < argc)
            rounds = atoi (argv [++arg]);
        else {
            fprintf (stderr,
                     "usage: pond-apply-bench [--events N] [--rounds R]\n"
                     "  ns per event each actor's apply takes over N events (20000),\n"
                     "  median of R rounds (5, at most %d) on a fresh temporary view\n",
                     S_ROUNDS_MAX);
            return streq (argv [arg], "--help") ? 0 : 1;
        }
    }
    if (count == 0 || rounds < 1 || rounds > S_ROUNDS_MAX) {
        fprintf (stderr, "pond-apply-bench: --events must be > 0, --rounds 1..%d\n", S_ROUNDS_MAX);
        return 1;
    }
    zsys_init ();
    zsys_set_logstream (NULL);
    char dir [] = "/tmp/pond-apply-bench-XXXXXX";
    if (!mkdtemp (dir)) {
        perror ("pond-apply-bench: mkdtemp");
        return 1;
    }
    void (*fill [4]) (pond_actor_spec_t *) = { pond_quack_counter_spec, pond_badge_granter_spec,
                                               pond_alexa_view_spec, pond_mobile_view_spec };
    pond_event_t **events = calloc (count, sizeof *events);
    int rc = events ? 0 : 1;
    for (int actor = 0; rc == 0 && actor < 4; actor++) {
        pond_actor_spec_t spec;
        memset (&spec, 0, sizeof spec);
        fill [actor](&spec);
        pond_badge_granter_t *granter = NULL;
        if (streq (spec.name, POND_BADGE_GRANTER_NAME)) {
            granter = pond_badge_granter_new ();
            pond_badge_granter_set_emit (granter, s_emit_nothing, NULL);
            spec.state = granter;
        }
        for (size_t index = 0; rc == 0 && index < count; index++)
            if (!(events [index] = s_event (s_kind (spec.name, index), index)))
                rc = 1;
        uint64_t apply [S_ROUNDS_MAX], total [S_ROUNDS_MAX];
        //  Round 0 warms up
        for (int round = 0; rc == 0 && round <= rounds; round++)
            if (s_round (&spec, events, count, dir, round, &apply [round ? round - 1 : 0],
                         &total [round ? round - 1 : 0]))
                rc = 1;
        if (rc == 0) {
            qsort (apply, (size_t) rounds, sizeof apply [0], s_compare);
            qsort (total, (size_t) rounds, sizeof total [0], s_compare);
            printf ("actor=%s events=%zu rounds=%d apply_ns=%" PRIu64 " apply_min=%" PRIu64
                    " apply_max=%" PRIu64 " with_commit_ns=%" PRIu64 " with_commit_min=%" PRIu64
                    " with_commit_max=%" PRIu64 "\n",
                    spec.name, count, rounds, apply [rounds / 2], apply [0], apply [rounds - 1],
                    total [rounds / 2], total [0], total [rounds - 1]);
            fflush (stdout);
        }
        for (size_t index = 0; index < count; index++)
            pond_event_destroy (&events [index]);
        pond_badge_granter_destroy (&granter);
    }
    free (events);
    char command [600];
    snprintf (command, sizeof command, "rm -rf '%s'", dir);
    if (system (command) != 0)
        fprintf (stderr, "pond-apply-bench: could not remove %s\n", dir);
    return rc;
}
