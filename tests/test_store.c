/*  test_store: the store module (pond_store): the log, seq, idempotency
    and dedup, the name counters and indexes, the write path's checks.

    Unit tests on a temporary RocksDB. The replay cursor is tested in
    test_cursor, the server and the real process in test_store_server.
*/
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <msgpack.h>

#include "pond_store_fixture.h"

//  ---------------------------------------------------------------------
//  The log: seq, idempotency, counters, durability of the API contract

Test (store, seq_gap_free_across_reopen, .init = fixture_setup, .fini = fixture_teardown)
{
    pond_store_t *store = pond_store_new (fixture_db);
    cr_assert_not_null (store);
    cr_assert_eq (pond_store_head (store), 0);
    uint64_t expect = 1;
    size_t sizes [] = { 1, 5, 10 };
    for (size_t g = 0; g < 3; g++) {
        pond_event_t *events [10];
        uint64_t seqs [10];
        bool dups [10];
        for (size_t i = 0; i < sizes [g]; i++)
            events [i] = fixture_event ("QUACKED", "cust-1", 1000 + i);
        fixture_append (store, events, sizes [g], seqs, dups);
        for (size_t i = 0; i < sizes [g]; i++) {
            cr_assert_eq (seqs [i], expect, "group %zu event %zu: seq %lu, expected %lu", g, i,
                          (unsigned long) seqs [i], (unsigned long) expect);
            cr_assert_not (dups [i]);
            expect++;
        }
    }
    cr_assert_eq (pond_store_head (store), 16);
    pond_store_destroy (&store);
    cr_assert_null (store);

    store = pond_store_new (fixture_db);
    cr_assert_not_null (store);
    cr_assert_eq (pond_store_head (store), 16);
    pond_store_stats_t stats;
    pond_store_stats (store, &stats);
    cr_assert_eq (stats.events, 16);
    cr_assert_eq (stats.head, 16);
    pond_event_t *event = fixture_event ("LABEL_ADDED", "cust-2", 5);
    uint8_t id [POND_ID_SIZE];
    memcpy (id, pond_event_id (event), POND_ID_SIZE);
    uint64_t seq;
    bool dup;
    uint8_t *stored;
    size_t size;
    cr_assert_eq (pond_store_append (store, &event, 1, &seq, &dup, &stored, &size), 0);
    cr_assert_eq (seq, 17);
    cr_assert_eq (pond_event_seq (event), 17, "the caller's event gets its seq");
    pond_event_destroy (&event);

    //  The stored form is the event with its seq, and is what the log holds
    char err [POND_ERR_SIZE];
    pond_event_t *decoded = pond_event_decode (stored, size, err, sizeof err);
    cr_assert_not_null (decoded, "%s", err);
    cr_assert_eq (pond_event_seq (decoded), 17);
    cr_assert_eq (memcmp (pond_event_id (decoded), id, POND_ID_SIZE), 0);
    cr_assert_str_eq (pond_event_name (decoded), "LABEL_ADDED");
    pond_event_destroy (&decoded);
    size_t got_size;
    uint8_t *got = pond_store_get (store, 17, &got_size);
    cr_assert_not_null (got);
    cr_assert_eq (got_size, size);
    cr_assert_eq (memcmp (got, stored, size), 0);
    free (got);
    free (stored);
    cr_assert_null (pond_store_get (store, 18, &got_size));
    cr_assert_eq (pond_store_lookup (store, id), 17);
    pond_store_destroy (&store);
    pond_store_destroy (&store);    //  accepts NULL
}

//  A small memory budget makes RocksDB flush memtables to files early and
//  keep indexes and filters in a tiny cache: seq, dedup and reads must not
//  notice
Test (store, small_memory_budget_flushes_and_still_dedups, .init = fixture_setup,
      .fini = fixture_teardown, .timeout = 60)
{
    pond_store_memory_t memory = { .memtable_mb = 4, .cache_mb = 1 };
    pond_store_t *store = pond_store_new_sized (fixture_db, &memory);
    cr_assert_not_null (store);
    enum { GROUPS = 1000, GROUP = 64 };
    uint8_t (*ids) [POND_ID_SIZE] = calloc (GROUPS * GROUP, POND_ID_SIZE);
    cr_assert_not_null (ids);
    for (size_t g = 0; g < GROUPS; g++) {
        pond_event_t *events [GROUP];
        uint64_t seqs [GROUP];
        bool dups [GROUP];
        char entity [32];
        for (size_t i = 0; i < GROUP; i++) {
            snprintf (entity, sizeof entity, "cust-%zu", (g * GROUP + i) % 997);
            events [i] = fixture_event ("QUACKED", entity, 1000 + g * GROUP + i);
            memcpy (ids [g * GROUP + i], pond_event_id (events [i]), POND_ID_SIZE);
        }
        fixture_append (store, events, GROUP, seqs, dups);
        cr_assert_eq (seqs [GROUP - 1], (g + 1) * GROUP);
    }
    pond_store_destroy (&store);

    //  The memtables could not hold 64,000 events and their indexes
    int code;
    char *files = pond_harness_run (&code, "ls '%s' | grep -c '[.]sst$'", fixture_db);
    cr_assert_gt (atoi (files), 0, "no SST file: nothing was flushed");
    free (files);

    //  Reopened with the same budget: every id is known, with its seq
    store = pond_store_new_sized (fixture_db, &memory);
    cr_assert_not_null (store);
    cr_assert_eq (pond_store_head (store), GROUPS * GROUP);
    for (size_t n = 0; n < GROUPS * GROUP; n += 997) {
        char entity [32];
        snprintf (entity, sizeof entity, "cust-%zu", n % 997);
        pond_event_t *event = fixture_event ("QUACKED", entity, 1000 + n);
        pond_event_set_id (event, ids [n]);
        uint64_t seq = 0;
        bool dup = false;
        cr_assert_eq (pond_store_append (store, &event, 1, &seq, &dup, NULL, NULL), 0);
        cr_assert (dup, "event %zu: not recognised as stored", n);
        cr_assert_eq (seq, n + 1);
        pond_event_destroy (&event);
        size_t size = 0;
        uint8_t *stored = pond_store_get (store, n + 1, &size);
        cr_assert_not_null (stored);
        free (stored);
    }
    cr_assert_eq (pond_store_head (store), GROUPS * GROUP, "a resend added nothing");
    pond_store_destroy (&store);
    free (ids);
}

Test (store, idempotent_across_batches, .init = fixture_setup, .fini = fixture_teardown)
{
    pond_store_t *store = pond_store_new (fixture_db);
    cr_assert_not_null (store);
    pond_event_t *a = fixture_event ("QUACKED", "cust-1", 10);
    pond_event_t *b = fixture_event ("QUACKED", "cust-1", 11);
    pond_event_t *events [2] = { pond_event_dup (a), pond_event_dup (b) };
    fixture_append (store, events, 2, NULL, NULL);

    //  Resend b with a new event c: b is a dup with its original seq
    pond_event_t *c = fixture_event ("QUACKED", "cust-1", 12);
    pond_event_t *again [2] = { pond_event_dup (b), c };
    uint64_t seqs [2];
    bool dups [2];
    uint8_t *stored [2];
    size_t sizes [2];
    cr_assert_eq (pond_store_append (store, again, 2, seqs, dups, stored, sizes), 0);
    cr_assert_eq (seqs [0], 2);
    cr_assert (dups [0]);
    cr_assert_null (stored [0], "a duplicate has no stored form to publish");
    cr_assert_eq (seqs [1], 3);
    cr_assert_not (dups [1]);
    cr_assert_not_null (stored [1]);
    free (stored [1]);
    pond_event_destroy (&again [0]);
    pond_event_destroy (&again [1]);

    //  A group of only duplicates writes nothing and changes nothing
    pond_event_t *only [1] = { pond_event_dup (a) };
    fixture_append (store, only, 1, seqs, dups);
    cr_assert_eq (seqs [0], 1);
    cr_assert (dups [0]);
    cr_assert_eq (pond_store_head (store), 3);
    pond_store_stats_t stats;
    pond_store_stats (store, &stats);
    cr_assert_eq (stats.appended, 3);
    cr_assert_eq (stats.dups, 2);
    cr_assert_eq (stats.batches, 2, "a group of duplicates is not a batch");
    cr_assert_eq (pond_store_name_count (store, "QUACKED"), 3);
    pond_event_destroy (&a);
    pond_event_destroy (&b);
    pond_store_destroy (&store);
}

Test (store, idempotent_within_one_batch, .init = fixture_setup, .fini = fixture_teardown)
{
    pond_store_t *store = pond_store_new (fixture_db);
    cr_assert_not_null (store);
    pond_event_t *old = fixture_event ("QUACKED", "cust-1", 1);
    pond_event_t *first [1] = { pond_event_dup (old) };
    fixture_append (store, first, 1, NULL, NULL);

    pond_event_t *a = fixture_event ("QUACKED", "cust-1", 10);
    pond_event_t *b = fixture_event ("BUTTON_CLICKED", "cust-1", 10);
    pond_event_t *c = fixture_event ("QUACKED", "cust-2", 10);
    //  a b a c b old old
    pond_event_t *events [7] = { pond_event_dup (a),  pond_event_dup (b), pond_event_dup (a),
                                 pond_event_dup (c),  pond_event_dup (b), pond_event_dup (old),
                                 pond_event_dup (old) };
    uint64_t seqs [7];
    bool dups [7];
    fixture_append (store, events, 7, seqs, dups);
    uint64_t expect_seqs [7] = { 2, 3, 2, 4, 3, 1, 1 };
    bool expect_dups [7] = { false, false, true, false, true, true, true };
    for (int i = 0; i < 7; i++) {
        cr_assert_eq (seqs [i], expect_seqs [i], "event %d: seq %lu", i, (unsigned long) seqs [i]);
        cr_assert_eq (dups [i], expect_dups [i], "event %d: dup", i);
    }
    cr_assert_eq (pond_store_head (store), 4);
    cr_assert_eq (pond_store_name_count (store, "QUACKED"), 3);
    cr_assert_eq (pond_store_name_count (store, "BUTTON_CLICKED"), 1);
    //  The log holds each event once: 4 events, seq 1..4
    pond_replay_req_t request = { .credit = 1 };
    uint64_t got [8];
    cr_assert_eq (fixture_replay_all (store, &request, got, NULL, NULL, 8), 4);
    for (int i = 0; i < 4; i++)
        cr_assert_eq (got [i], (uint64_t) i + 1);
    pond_event_destroy (&old);
    pond_event_destroy (&a);
    pond_event_destroy (&b);
    pond_event_destroy (&c);
    pond_store_destroy (&store);
}

Test (store, name_counts_survive_reopen, .init = fixture_setup, .fini = fixture_teardown)
{
    pond_store_t *store = pond_store_new (fixture_db);
    cr_assert_not_null (store);
    for (int i = 0; i < 7; i++)
        fixture_append_one (store, "QUACKED", "cust-1", 100 + i);
    for (int i = 0; i < 3; i++)
        fixture_append_one (store, "BUTTON_CLICKED", "cust-1", 100 + i);
    fixture_append_one (store, "LABEL_ADDED", "cust-2", 5);
    pond_store_destroy (&store);

    store = pond_store_new (fixture_db);
    cr_assert_not_null (store);
    cr_assert_eq (pond_store_name_count (store, "QUACKED"), 7);
    cr_assert_eq (pond_store_name_count (store, "BUTTON_CLICKED"), 3);
    cr_assert_eq (pond_store_name_count (store, "LABEL_ADDED"), 1);
    cr_assert_eq (pond_store_name_count (store, "QUACKED_LOUDLY"), 0);
    zlistx_t *names = pond_store_names (store);
    cr_assert_not_null (names);
    cr_assert_eq (zlistx_size (names), 3);
    cr_assert_str_eq ((char *) zlistx_first (names), "BUTTON_CLICKED");
    cr_assert_str_eq ((char *) zlistx_next (names), "LABEL_ADDED");
    cr_assert_str_eq ((char *) zlistx_next (names), "QUACKED");
    zlistx_destroy (&names);
    //  Counts keep moving after reopen
    fixture_append_one (store, "QUACKED", "cust-1", 200);
    cr_assert_eq (pond_store_name_count (store, "QUACKED"), 8);
    pond_store_destroy (&store);
    store = pond_store_new (fixture_db);
    cr_assert_eq (pond_store_name_count (store, "QUACKED"), 8);
    cr_assert_eq (pond_store_head (store), 12);
    pond_store_destroy (&store);
}

//  STATS lists only the names with the most events: the top of 40 names
//  with 1..40 events, whatever order they came in
Test (store, top_names_are_the_busiest, .init = fixture_setup, .fini = fixture_teardown)
{
    pond_store_t *store = pond_store_new (fixture_db);
    cr_assert_not_null (store);
    for (int n = 1; n <= 40; n++) {
        int which = (n * 17) % 40 + 1;    //  a permutation of 1..40
        char name [16];
        snprintf (name, sizeof name, "NAME_%02d", which);
        for (int i = 0; i < which; i++)
            fixture_append_one (store, name, "cust-1", 100 + (uint64_t) i);
    }
    size_t total = 0;
    zlistx_t *names = pond_store_top_names (store, 5, &total);
    cr_assert_not_null (names);
    cr_assert_eq (total, 40);
    cr_assert_eq (zlistx_size (names), 5);
    const char *expected [] = { "NAME_36", "NAME_37", "NAME_38", "NAME_39", "NAME_40" };
    const char *name = (const char *) zlistx_first (names);
    for (int i = 0; i < 5; i++, name = (const char *) zlistx_next (names))
        cr_assert_str_eq (name, expected [i]);
    zlistx_destroy (&names);
    names = pond_store_top_names (store, 1000, &total);
    cr_assert_eq (zlistx_size (names), 40, "fewer names than the limit: all of them");
    zlistx_destroy (&names);
    pond_store_destroy (&store);
}

Test (store, second_open_fails_cleanly, .init = fixture_setup, .fini = fixture_teardown)
{
    pond_store_t *store = pond_store_new (fixture_db);
    cr_assert_not_null (store);
    fixture_append_one (store, "QUACKED", "cust-1", 1);
    pond_store_t *second = pond_store_new (fixture_db);
    cr_assert_null (second, "RocksDB's lock must refuse a second store on one path");
    //  The first one is unharmed
    cr_assert_eq (fixture_append_one (store, "QUACKED", "cust-1", 2), 2);
    pond_store_destroy (&store);
    //  and once it is closed the path opens again
    store = pond_store_new (fixture_db);
    cr_assert_not_null (store);
    cr_assert_eq (pond_store_head (store), 2);
    pond_store_destroy (&store);
}

Test (store, write_error_stores_nothing, .init = fixture_setup, .fini = fixture_teardown)
{
    pond_store_t *store = pond_store_new (fixture_db);
    cr_assert_not_null (store);
    fixture_append_one (store, "QUACKED", "cust-1", 1);
    fixture_append_one (store, "QUACKED", "cust-1", 2);

    pond_store_set_write_fault (store, true);
    pond_event_t *events [3] = { fixture_event ("QUACKED", "cust-1", 3),
                                 fixture_event ("LABEL_ADDED", "cust-1", 3),
                                 fixture_event ("QUACKED", "cust-2", 3) };
    uint64_t seqs [3] = { 99, 99, 99 };
    bool dups [3] = { true, true, true };
    uint8_t *stored [3];
    size_t sizes [3];
    for (int attempt = 0; attempt < 3; attempt++) {
        cr_assert_eq (pond_store_append (store, events, 3, seqs, dups, stored, sizes), -1);
        for (int i = 0; i < 3; i++) {
            cr_assert_eq (seqs [i], 0);
            cr_assert_not (dups [i]);
            cr_assert_null (stored [i]);
            cr_assert_eq (pond_event_seq (events [i]), 0, "a failed append leaves seq unset");
        }
    }
    cr_assert_eq (pond_store_head (store), 2);
    cr_assert_eq (pond_store_name_count (store, "QUACKED"), 2);
    cr_assert_eq (pond_store_name_count (store, "LABEL_ADDED"), 0);
    pond_store_stats_t stats;
    pond_store_stats (store, &stats);
    cr_assert_eq (stats.write_errors, 3);
    cr_assert_eq (stats.appended, 2);
    cr_assert_eq (stats.batches, 2);
    size_t size;
    cr_assert_null (pond_store_get (store, 3, &size));
    cr_assert_eq (pond_store_lookup (store, pond_event_id (events [0])), 0);

    //  The same events go through once the fault is gone, with no gap
    pond_store_set_write_fault (store, false);
    fixture_append (store, events, 3, seqs, dups);
    cr_assert_eq (seqs [0], 3);
    cr_assert_eq (seqs [1], 4);
    cr_assert_eq (seqs [2], 5);
    cr_assert_eq (pond_store_name_count (store, "QUACKED"), 4);
    pond_store_destroy (&store);
    store = pond_store_new (fixture_db);
    cr_assert_eq (pond_store_head (store), 5);
    cr_assert_eq (pond_store_name_count (store, "LABEL_ADDED"), 1);
    pond_store_destroy (&store);
}

//  Two groups in flight at once (prepared, not yet committed): an id
//  prepared in the first is a dup in the second, with the first's seq,
//  before the first is even written.
Test (store, dup_across_groups_in_flight, .init = fixture_setup, .fini = fixture_teardown)
{
    pond_store_t *store = pond_store_new (fixture_db);
    cr_assert_not_null (store);
    pond_store_group_t *first = pond_store_group_new ();
    pond_store_group_t *second = pond_store_group_new ();
    pond_event_t *a [2] = { fixture_event ("QUACKED", "cust-1", 1),
                            fixture_event ("QUACKED", "cust-2", 2) };
    pond_event_t *b [2] = { pond_event_dup (a [1]), fixture_event ("LABEL_ADDED", "cust-1", 3) };
    uint64_t seqs [2];
    bool dups [2];
    cr_assert_eq (pond_store_prepare (store, first, a, 2, seqs, dups, NULL, NULL), 0);
    cr_assert_eq (seqs [0], 1);
    cr_assert_eq (seqs [1], 2);
    cr_assert_eq (pond_store_prepare (store, second, b, 2, seqs, dups, NULL, NULL), 0);
    cr_assert (dups [0], "an id prepared in a group in flight is a dup");
    cr_assert_eq (seqs [0], 2, "with that group's seq");
    cr_assert_not (dups [1]);
    cr_assert_eq (seqs [1], 3);
    cr_assert_eq (pond_store_head (store), 0, "nothing durable before commit");
    cr_assert_eq (pond_store_commit (store, first), 0);
    pond_store_finish (store, first);
    cr_assert_eq (pond_store_commit (store, second), 0);
    pond_store_finish (store, second);
    cr_assert_eq (pond_store_head (store), 3);
    cr_assert_eq (pond_store_lookup (store, pond_event_id (a [1])), 2);
    cr_assert_eq (pond_store_name_count (store, "QUACKED"), 2);
    cr_assert_eq (pond_store_name_count (store, "LABEL_ADDED"), 1);
    pond_store_stats_t stats;
    pond_store_stats (store, &stats);
    cr_assert_eq (stats.appended, 3);
    cr_assert_eq (stats.dups, 1);
    cr_assert_eq (stats.batches, 2);
    //  Once both are finished the id is still a dup (now from the DB)
    pond_event_t *again [1] = { pond_event_dup (b [0]) };
    fixture_append (store, again, 1, seqs, dups);
    cr_assert (dups [0]);
    cr_assert_eq (seqs [0], 2);
    for (int i = 0; i < 2; i++) {
        pond_event_destroy (&a [i]);
        pond_event_destroy (&b [i]);
    }
    pond_store_group_destroy (&first);
    pond_store_group_destroy (&second);
    pond_store_destroy (&store);
}

//  A commit fails with a group prepared behind it: the one behind cannot
//  be written out of order (no gap), and once both are finished and
//  prepared again (the fault gone) the log is gap-free; a dup that
//  pointed into the failed group becomes a new event.
Test (store, failed_commit_with_group_behind_leaves_no_gap, .init = fixture_setup,
      .fini = fixture_teardown)
{
    pond_store_t *store = pond_store_new (fixture_db);
    cr_assert_not_null (store);
    fixture_append_one (store, "QUACKED", "cust-1", 1);
    pond_store_group_t *first = pond_store_group_new ();
    pond_store_group_t *second = pond_store_group_new ();
    pond_event_t *a [2] = { fixture_event ("QUACKED", "cust-1", 2),
                            fixture_event ("QUACKED", "cust-2", 3) };
    pond_event_t *b [2] = { pond_event_dup (a [0]), fixture_event ("BUTTON_CLICKED", "cust-3", 4) };
    uint64_t seqs [2];
    bool dups [2];
    uint8_t *stored [2];
    size_t sizes [2];
    cr_assert_eq (pond_store_prepare (store, first, a, 2, seqs, dups, NULL, NULL), 0);
    cr_assert_eq (seqs [1], 3);
    cr_assert_eq (pond_store_prepare (store, second, b, 2, seqs, dups, stored, sizes), 0);
    cr_assert (dups [0]);
    cr_assert_eq (seqs [0], 2);
    cr_assert_eq (seqs [1], 4);
    free (stored [1]);

    pond_store_set_write_fault (store, true);
    cr_assert_eq (pond_store_commit (store, first), -1);
    pond_store_set_write_fault (store, false);
    //  The disk is back, but seq 4 after head 1 would be a gap
    cr_assert_eq (pond_store_commit (store, second), -1, "a group behind a failed one is refused");
    cr_assert_eq (pond_store_head (store), 1);
    size_t size;
    cr_assert_null (pond_store_get (store, 4, &size));
    pond_store_finish (store, first);
    pond_store_finish (store, second);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq (pond_event_seq (a [i]), 0, "an undone group leaves seq unset");
        cr_assert_eq (pond_event_seq (b [i]), 0);
    }
    cr_assert_eq (pond_store_lookup (store, pond_event_id (a [0])), 0);

    //  Prepared again, the group behind goes first: seqs from head + 1
    cr_assert_eq (pond_store_prepare (store, second, b, 2, seqs, dups, NULL, NULL), 0);
    cr_assert_not (dups [0], "its dup pointed into the failed group: now new");
    cr_assert_eq (seqs [0], 2);
    cr_assert_eq (seqs [1], 3);
    cr_assert_eq (pond_store_commit (store, second), 0);
    pond_store_finish (store, second);
    cr_assert_eq (pond_store_prepare (store, first, a, 2, seqs, dups, NULL, NULL), 0);
    cr_assert (dups [0]);
    cr_assert_eq (seqs [0], 2);
    cr_assert_not (dups [1]);
    cr_assert_eq (seqs [1], 4);
    cr_assert_eq (pond_store_commit (store, first), 0);
    pond_store_finish (store, first);
    cr_assert_eq (pond_store_head (store), 4);
    for (uint64_t seq = 1; seq <= 4; seq++) {
        uint8_t *got = pond_store_get (store, seq, &size);
        cr_assert_not_null (got, "seq %" PRIu64 " stored: no gap", seq);
        free (got);
    }
    cr_assert_eq (pond_store_name_count (store, "QUACKED"), 3);
    cr_assert_eq (pond_store_name_count (store, "BUTTON_CLICKED"), 1);
    for (int i = 0; i < 2; i++) {
        pond_event_destroy (&a [i]);
        pond_event_destroy (&b [i]);
    }
    pond_store_group_destroy (&first);
    pond_store_group_destroy (&second);
    pond_store_destroy (&store);
    //  Reopened: the same head and counts
    store = pond_store_new (fixture_db);
    cr_assert_eq (pond_store_head (store), 4);
    cr_assert_eq (pond_store_name_count (store, "QUACKED"), 3);
    pond_store_destroy (&store);
}

Test (store, check_refuses_seq_and_size, .init = fixture_setup, .fini = fixture_teardown)
{
    char err [POND_ERR_SIZE];
    pond_event_t *event = fixture_event ("QUACKED", "cust-1", 1);
    cr_assert_eq (pond_store_check (event, err, sizeof err), 0, "%s", err);
    pond_event_set_seq (event, 5);
    cr_assert_eq (pond_store_check (event, err, sizeof err), -1);
    cr_assert (strstr (err, "seq"), "reason: %s", err);
    pond_event_set_seq (event, 0);

    //  An event just under the limit without seq is over it with one
    size_t size = 0;
    size_t pad = POND_EVENT_MAX_SIZE - 200;
    uint8_t *data = NULL;
    while (true) {
        msgpack_sbuffer sbuf;
        msgpack_sbuffer_init (&sbuf);
        msgpack_packer pk;
        msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
        msgpack_pack_map (&pk, 1);
        msgpack_pack_str (&pk, 1);
        msgpack_pack_str_body (&pk, "x", 1);
        msgpack_pack_bin (&pk, pad);
        uint8_t *zeros = calloc (1, pad);
        msgpack_pack_bin_body (&pk, zeros, pad);
        free (zeros);
        cr_assert_eq (
            pond_event_set_data (event, (uint8_t *) sbuf.data, sbuf.size, err, sizeof err), 0);
        msgpack_sbuffer_destroy (&sbuf);
        free (data);
        data = pond_event_encode (event, &size, err, sizeof err);
        cr_assert_not_null (data, "%s", err);
        if (size >= POND_EVENT_MAX_SIZE - 2)
            break;
        pad += POND_EVENT_MAX_SIZE - 2 - size;
    }
    pond_event_t *decoded = pond_event_decode (data, size, err, sizeof err);
    cr_assert_not_null (decoded, "the event itself is within the limit: %s", err);
    cr_assert_eq (pond_store_check (decoded, err, sizeof err), -1);
    cr_assert (strstr (err, "limit"), "reason: %s", err);
    cr_assert_eq (pond_event_seq (decoded), 0);
    free (data);
    pond_event_destroy (&decoded);
    pond_event_destroy (&event);
}

//  An id reused for a different event is a conflict, not a duplicate
Test (store, reused_id_for_another_event_is_a_conflict, .init = fixture_setup,
      .fini = fixture_teardown)
{
    pond_store_t *store = pond_store_new (fixture_db);
    cr_assert_not_null (store);
    char err [POND_ERR_SIZE];
    pond_event_t *first = fixture_event ("QUACKED", "cust-1", 1000);
    cr_assert_eq (pond_event_set_data_json (first, "{\"n\":1}", err, sizeof err), 0);
    uint8_t id [POND_ID_SIZE];
    memcpy (id, pond_event_id (first), POND_ID_SIZE);
    pond_event_t *events [6];
    events [0] = pond_event_dup (first);
    uint64_t seqs [6];
    bool dups [6];
    cr_assert_eq (pond_store_append (store, events, 1, seqs, dups, NULL, NULL), 0);
    cr_assert_eq (seqs [0], 1);
    pond_event_destroy (&events [0]);

    //  The exact event again, and with other meta: duplicates of seq 1.
    //  Another name, entity, ts or data with that id: conflicts (seq 0).
    events [0] = pond_event_dup (first);
    events [1] = pond_event_dup (first);
    cr_assert_eq (pond_event_set_meta_json (events [1], "{\"retry\":3}", err, sizeof err), 0);
    events [2] = pond_event_dup (first);
    pond_event_set_name (events [2], "HONKED");
    events [3] = pond_event_dup (first);
    pond_event_set_entity (events [3], "cust-2");
    events [4] = pond_event_dup (first);
    pond_event_set_ts (events [4], 1001);
    events [5] = pond_event_dup (first);
    cr_assert_eq (pond_event_set_data_json (events [5], "{\"n\":2}", err, sizeof err), 0);
    cr_assert_eq (pond_store_append (store, events, 6, seqs, dups, NULL, NULL), 0);
    for (int i = 0; i < 6; i++) {
        cr_assert (dups [i], "event %d: not a dup", i);
        cr_assert_eq (seqs [i], i < 2 ? 1 : 0, "event %d: seq %lu", i, (unsigned long) seqs [i]);
        pond_event_destroy (&events [i]);
    }
    //  In one group too: the second use of a fresh id for another event
    pond_event_t *fresh = fixture_event ("QUACKED", "cust-1", 2000);
    events [0] = pond_event_dup (fresh);
    events [1] = pond_event_dup (fresh);
    pond_event_set_ts (events [1], 2001);
    events [2] = pond_event_dup (fresh);
    cr_assert_eq (pond_store_append (store, events, 3, seqs, dups, NULL, NULL), 0);
    cr_assert (!dups [0] && seqs [0] == 2);
    cr_assert (dups [1] && seqs [1] == 0, "same group: conflict");
    cr_assert (dups [2] && seqs [2] == 2, "same group: dup");
    for (int i = 0; i < 3; i++)
        pond_event_destroy (&events [i]);
    cr_assert_eq (pond_store_head (store), 2);
    pond_store_destroy (&store);

    //  After a reopen the digest is still there
    store = pond_store_new (fixture_db);
    events [0] = pond_event_dup (first);
    pond_event_set_ts (events [0], 999);
    events [1] = pond_event_dup (first);
    cr_assert_eq (pond_store_append (store, events, 2, seqs, dups, NULL, NULL), 0);
    cr_assert (dups [0] && seqs [0] == 0);
    cr_assert (dups [1] && seqs [1] == 1);
    pond_event_destroy (&events [0]);
    pond_event_destroy (&events [1]);
    pond_store_destroy (&store);
    pond_event_destroy (&first);
    pond_event_destroy (&fresh);
}

//  A store written before digests were kept holds the seq alone in by_id:
//  the event is read from the log to tell a resend from another event
Test (store, reused_id_is_a_conflict_in_a_store_without_digests, .init = fixture_setup,
      .fini = fixture_teardown)
{
    pond_store_t *store = pond_store_new (fixture_db);
    cr_assert_not_null (store);
    pond_event_t *first = fixture_event ("QUACKED", "cust-1", 1000);
    pond_event_t *events [2] = { pond_event_dup (first), NULL };
    uint64_t seqs [2];
    bool dups [2];
    cr_assert_eq (pond_store_append (store, events, 1, seqs, dups, NULL, NULL), 0);
    pond_event_destroy (&events [0]);
    //  by_id as older stores wrote it: 8 bytes of seq
    uint8_t seq_value [8];
    pond_put_be64 (seq_value, 1);
    rocksdb_writeoptions_t *options = rocksdb_writeoptions_create ();
    char *err = NULL;
    rocksdb_put_cf (pond_store_db (store), options, pond_store_cf (store, POND_CF_BY_ID),
                    (const char *) pond_event_id (first), POND_ID_SIZE, (const char *) seq_value, 8,
                    &err);
    cr_assert_null (err, "%s", err);
    rocksdb_writeoptions_destroy (options);

    events [0] = pond_event_dup (first);
    events [1] = pond_event_dup (first);
    pond_event_set_ts (events [1], 1001);
    cr_assert_eq (pond_store_append (store, events, 2, seqs, dups, NULL, NULL), 0);
    cr_assert (dups [0] && seqs [0] == 1, "the same event: a duplicate of seq 1");
    cr_assert (dups [1] && seqs [1] == 0, "another event: a conflict");
    pond_event_destroy (&events [0]);
    pond_event_destroy (&events [1]);
    pond_event_destroy (&first);
    pond_store_destroy (&store);
}
