/*  test_store: the store module, from the log up to the real process.

    Unit tests run pond_store and pond_cursor on a temporary RocksDB;
    server tests run pond_store_server in-process (as a zactor) where a
    test needs a knob (write faults, a short replay timeout, a full queue);
    process tests start the real pond-store binary, talk to it over a
    DEALER on ipc, and kill it.
*/
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <msgpack.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pond_harness.h"
#include "pond_proto.h"
#include "pond_cursor.h"
#include "pond_store.h"
#include "pond_store_internal.h"
#include "pond_store_server.h"

//  ---------------------------------------------------------------------
//  Fixtures: a temp dir, and the processes a test started

static char *s_dir;
static char s_db [512];
static char s_endpoint [512];
static pid_t s_pids [4];
static zactor_t *s_actor;           //  an in-process server, if a test runs one

static void
s_setup (void)
{
    s_dir = pond_harness_tempdir ();
    cr_assert_not_null (s_dir);
    snprintf (s_db, sizeof s_db, "%s/store", s_dir);
    snprintf (s_endpoint, sizeof s_endpoint, "ipc://%s/store.ipc", s_dir);
    memset (s_pids, 0, sizeof s_pids);
}

static void
s_teardown (void)
{
    zactor_destroy (&s_actor);
    for (size_t i = 0; i < sizeof s_pids / sizeof s_pids [0]; i++)
        if (s_pids [i] > 0)
            pond_harness_stop (s_pids [i], SIGKILL);
    pond_harness_rmtree (s_dir);
    free (s_dir);
    s_dir = NULL;
}

//  ---------------------------------------------------------------------
//  Helpers

static pond_event_t *
s_event (const char *name, const char *entity, uint64_t ts)
{
    pond_event_t *event = pond_event_new (name, entity);
    cr_assert_not_null (event);
    pond_event_set_ts (event, ts);
    return event;
}

//  Append events one group; asserts success; destroys the events.
static void
s_append (pond_store_t *store, pond_event_t **events, size_t count, uint64_t *seqs, bool *dups)
{
    uint64_t local_seqs [64];
    bool local_dups [64];
    cr_assert_leq (count, 64);
    int rc = pond_store_append (store, events, count, seqs? seqs: local_seqs,
                                dups? dups: local_dups, NULL, NULL);
    cr_assert_eq (rc, 0);
    for (size_t i = 0; i < count; i++)
        pond_event_destroy (&events [i]);
}

//  Append one event; returns its seq.
static uint64_t
s_append_one (pond_store_t *store, const char *name, const char *entity, uint64_t ts)
{
    pond_event_t *event = s_event (name, entity, ts);
    uint64_t seq;
    bool dup;
    s_append (store, &event, 1, &seq, &dup);
    cr_assert_not (dup);
    return seq;
}

//  Decode the events a fill appended into msg, checking each.
static size_t
s_drain_events (zmsg_t *msg, uint64_t *seqs, uint64_t *tss, char (*names) [POND_NAME_MAX + 1],
                size_t capacity)
{
    size_t count = 0;
    zframe_t *frame;
    while ((frame = zmsg_pop (msg))) {
        //  A frame holds one event, or (packed) several back to back
        size_t offset = 0;
        while (offset < zframe_size (frame)) {
            char err [POND_ERR_SIZE];
            size_t used = 0;
            pond_event_t *event = pond_event_decode_next (
                zframe_data (frame) + offset, zframe_size (frame) - offset, &used,
                err, sizeof err);
            cr_assert_not_null (event, "stored event does not decode: %s", err);
            offset += used;
            cr_assert_lt (count, capacity);
            if (seqs)
                seqs [count] = pond_event_seq (event);
            if (tss)
                tss [count] = pond_event_ts (event);
            if (names)
                snprintf (names [count], POND_NAME_MAX + 1, "%s", pond_event_name (event));
            count++;
            pond_event_destroy (&event);
        }
        zframe_destroy (&frame);
    }
    return count;
}

//  Run a whole replay; returns the events seen (seqs, ts, names).
static size_t
s_replay_all (pond_store_t *store, const pond_replay_req_t *request, uint64_t *seqs,
              uint64_t *tss, char (*names) [POND_NAME_MAX + 1], size_t capacity)
{
    pond_cursor_t *replay = pond_cursor_new (store, request);
    cr_assert_not_null (replay);
    size_t total = 0;
    while (true) {
        zmsg_t *msg = zmsg_new ();
        int count = pond_cursor_fill (replay, msg, POND_CHUNK_EVENTS, POND_CHUNK_BYTES);
        cr_assert_geq (count, 0);
        size_t got = s_drain_events (msg, seqs? seqs + total: NULL, tss? tss + total: NULL,
                                     names? names + total: NULL, capacity - total);
        cr_assert_eq (got, (size_t) count);
        zmsg_destroy (&msg);
        if (count == 0 && pond_cursor_done (replay))
            break;
        total += got;
    }
    cr_assert (pond_cursor_done (replay));
    cr_assert_null (pond_cursor_error (replay));
    cr_assert_eq (pond_cursor_count (replay), total);
    pond_cursor_destroy (&replay);
    return total;
}

//  ---------------------------------------------------------------------
//  The log: seq, idempotency, counters, durability of the API contract

Test (store, seq_gap_free_across_reopen, .init = s_setup, .fini = s_teardown)
{
    pond_store_t *store = pond_store_new (s_db);
    cr_assert_not_null (store);
    cr_assert_eq (pond_store_head (store), 0);
    uint64_t expect = 1;
    size_t sizes [] = { 1, 5, 10 };
    for (size_t g = 0; g < 3; g++) {
        pond_event_t *events [10];
        uint64_t seqs [10];
        bool dups [10];
        for (size_t i = 0; i < sizes [g]; i++)
            events [i] = s_event ("QUACKED", "cust-1", 1000 + i);
        s_append (store, events, sizes [g], seqs, dups);
        for (size_t i = 0; i < sizes [g]; i++) {
            cr_assert_eq (seqs [i], expect, "group %zu event %zu: seq %lu, expected %lu",
                          g, i, (unsigned long) seqs [i], (unsigned long) expect);
            cr_assert_not (dups [i]);
            expect++;
        }
    }
    cr_assert_eq (pond_store_head (store), 16);
    pond_store_destroy (&store);
    cr_assert_null (store);

    store = pond_store_new (s_db);
    cr_assert_not_null (store);
    cr_assert_eq (pond_store_head (store), 16);
    pond_store_stats_t stats;
    pond_store_stats (store, &stats);
    cr_assert_eq (stats.events, 16);
    cr_assert_eq (stats.head, 16);
    pond_event_t *event = s_event ("LABEL_ADDED", "cust-2", 5);
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
    pond_store_destroy (&store);        //  accepts NULL
}

Test (store, idempotent_across_batches, .init = s_setup, .fini = s_teardown)
{
    pond_store_t *store = pond_store_new (s_db);
    cr_assert_not_null (store);
    pond_event_t *a = s_event ("QUACKED", "cust-1", 10);
    pond_event_t *b = s_event ("QUACKED", "cust-1", 11);
    pond_event_t *events [2] = { pond_event_dup (a), pond_event_dup (b) };
    s_append (store, events, 2, NULL, NULL);

    //  Resend b with a new event c: b is a dup with its original seq
    pond_event_t *c = s_event ("QUACKED", "cust-1", 12);
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
    s_append (store, only, 1, seqs, dups);
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

Test (store, idempotent_within_one_batch, .init = s_setup, .fini = s_teardown)
{
    pond_store_t *store = pond_store_new (s_db);
    cr_assert_not_null (store);
    pond_event_t *old = s_event ("QUACKED", "cust-1", 1);
    pond_event_t *first [1] = { pond_event_dup (old) };
    s_append (store, first, 1, NULL, NULL);

    pond_event_t *a = s_event ("QUACKED", "cust-1", 10);
    pond_event_t *b = s_event ("BUTTON_CLICKED", "cust-1", 10);
    pond_event_t *c = s_event ("QUACKED", "cust-2", 10);
    //  a b a c b old old
    pond_event_t *events [7] = {
        pond_event_dup (a), pond_event_dup (b), pond_event_dup (a), pond_event_dup (c),
        pond_event_dup (b), pond_event_dup (old), pond_event_dup (old)
    };
    uint64_t seqs [7];
    bool dups [7];
    s_append (store, events, 7, seqs, dups);
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
    cr_assert_eq (s_replay_all (store, &request, got, NULL, NULL, 8), 4);
    for (int i = 0; i < 4; i++)
        cr_assert_eq (got [i], (uint64_t) i + 1);
    pond_event_destroy (&old);
    pond_event_destroy (&a);
    pond_event_destroy (&b);
    pond_event_destroy (&c);
    pond_store_destroy (&store);
}

Test (store, name_counts_survive_reopen, .init = s_setup, .fini = s_teardown)
{
    pond_store_t *store = pond_store_new (s_db);
    cr_assert_not_null (store);
    for (int i = 0; i < 7; i++)
        s_append_one (store, "QUACKED", "cust-1", 100 + i);
    for (int i = 0; i < 3; i++)
        s_append_one (store, "BUTTON_CLICKED", "cust-1", 100 + i);
    s_append_one (store, "LABEL_ADDED", "cust-2", 5);
    pond_store_destroy (&store);

    store = pond_store_new (s_db);
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
    s_append_one (store, "QUACKED", "cust-1", 200);
    cr_assert_eq (pond_store_name_count (store, "QUACKED"), 8);
    pond_store_destroy (&store);
    store = pond_store_new (s_db);
    cr_assert_eq (pond_store_name_count (store, "QUACKED"), 8);
    cr_assert_eq (pond_store_head (store), 12);
    pond_store_destroy (&store);
}

//  STATS lists only the names with the most events: the top of 40 names
//  with 1..40 events, whatever order they came in
Test (store, top_names_are_the_busiest, .init = s_setup, .fini = s_teardown)
{
    pond_store_t *store = pond_store_new (s_db);
    cr_assert_not_null (store);
    for (int n = 1; n <= 40; n++) {
        int which = (n * 17) % 40 + 1;          //  a permutation of 1..40
        char name [16];
        snprintf (name, sizeof name, "NAME_%02d", which);
        for (int i = 0; i < which; i++)
            s_append_one (store, name, "cust-1", 100 + (uint64_t) i);
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

Test (store, second_open_fails_cleanly, .init = s_setup, .fini = s_teardown)
{
    pond_store_t *store = pond_store_new (s_db);
    cr_assert_not_null (store);
    s_append_one (store, "QUACKED", "cust-1", 1);
    pond_store_t *second = pond_store_new (s_db);
    cr_assert_null (second, "RocksDB's lock must refuse a second store on one path");
    //  The first one is unharmed
    cr_assert_eq (s_append_one (store, "QUACKED", "cust-1", 2), 2);
    pond_store_destroy (&store);
    //  and once it is closed the path opens again
    store = pond_store_new (s_db);
    cr_assert_not_null (store);
    cr_assert_eq (pond_store_head (store), 2);
    pond_store_destroy (&store);
}

Test (store, write_error_stores_nothing, .init = s_setup, .fini = s_teardown)
{
    pond_store_t *store = pond_store_new (s_db);
    cr_assert_not_null (store);
    s_append_one (store, "QUACKED", "cust-1", 1);
    s_append_one (store, "QUACKED", "cust-1", 2);

    pond_store_set_write_fault (store, true);
    pond_event_t *events [3] = {
        s_event ("QUACKED", "cust-1", 3), s_event ("LABEL_ADDED", "cust-1", 3),
        s_event ("QUACKED", "cust-2", 3)
    };
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
    s_append (store, events, 3, seqs, dups);
    cr_assert_eq (seqs [0], 3);
    cr_assert_eq (seqs [1], 4);
    cr_assert_eq (seqs [2], 5);
    cr_assert_eq (pond_store_name_count (store, "QUACKED"), 4);
    pond_store_destroy (&store);
    store = pond_store_new (s_db);
    cr_assert_eq (pond_store_head (store), 5);
    cr_assert_eq (pond_store_name_count (store, "LABEL_ADDED"), 1);
    pond_store_destroy (&store);
}

//  Two groups in flight at once (prepared, not yet committed): an id
//  prepared in the first is a dup in the second, with the first's seq,
//  before the first is even written.
Test (store, dup_across_groups_in_flight, .init = s_setup, .fini = s_teardown)
{
    pond_store_t *store = pond_store_new (s_db);
    cr_assert_not_null (store);
    pond_store_group_t *first = pond_store_group_new ();
    pond_store_group_t *second = pond_store_group_new ();
    pond_event_t *a [2] = { s_event ("QUACKED", "cust-1", 1), s_event ("QUACKED", "cust-2", 2) };
    pond_event_t *b [2] = { pond_event_dup (a [1]), s_event ("LABEL_ADDED", "cust-1", 3) };
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
    s_append (store, again, 1, seqs, dups);
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
Test (store, failed_commit_with_group_behind_leaves_no_gap, .init = s_setup, .fini = s_teardown)
{
    pond_store_t *store = pond_store_new (s_db);
    cr_assert_not_null (store);
    s_append_one (store, "QUACKED", "cust-1", 1);
    pond_store_group_t *first = pond_store_group_new ();
    pond_store_group_t *second = pond_store_group_new ();
    pond_event_t *a [2] = { s_event ("QUACKED", "cust-1", 2), s_event ("QUACKED", "cust-2", 3) };
    pond_event_t *b [2] = { pond_event_dup (a [0]), s_event ("BUTTON_CLICKED", "cust-3", 4) };
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
    store = pond_store_new (s_db);
    cr_assert_eq (pond_store_head (store), 4);
    cr_assert_eq (pond_store_name_count (store, "QUACKED"), 3);
    pond_store_destroy (&store);
}

Test (store, check_refuses_seq_and_size, .init = s_setup, .fini = s_teardown)
{
    char err [POND_ERR_SIZE];
    pond_event_t *event = s_event ("QUACKED", "cust-1", 1);
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
        cr_assert_eq (pond_event_set_data (event, (uint8_t *) sbuf.data, sbuf.size, err,
                                           sizeof err), 0);
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

//  ---------------------------------------------------------------------
//  Replay

//  A small history with ties, out-of-order ts and a prefix trap
static void
s_history (pond_store_t *store)
{
    cr_assert_eq (s_append_one (store, "QUACKED", "cust-1", 300), 1);
    cr_assert_eq (s_append_one (store, "CLICKED", "cust-1", 100), 2);
    cr_assert_eq (s_append_one (store, "QUACKED", "cust-2", 100), 3);
    cr_assert_eq (s_append_one (store, "CLICKED", "cust-2", 200), 4);
    cr_assert_eq (s_append_one (store, "QUACKED", "cust-10", 200), 5);
    cr_assert_eq (s_append_one (store, "OTHER", "cust-1", 150), 6);
    cr_assert_eq (s_append_one (store, "QUACKED", "cust-1", 100), 7);
    cr_assert_eq (s_append_one (store, "QUACKED_LOUDLY", "cust-1", 100), 8);
    cr_assert_eq (s_append_one (store, "QUACKEC", "cust-1", 100), 9);
}

static pond_replay_req_t
s_by_names (const char *first, const char *second, uint64_t from, uint64_t to)
{
    pond_replay_req_t request = { .credit = 1, .from_ts = from, .to_ts = to };
    snprintf (request.names [request.names_count++], POND_NAME_MAX + 1, "%s", first);
    if (second)
        snprintf (request.names [request.names_count++], POND_NAME_MAX + 1, "%s", second);
    return request;
}

Test (replay, by_names_ordered_by_ts_then_seq, .init = s_setup, .fini = s_teardown)
{
    pond_store_t *store = pond_store_new (s_db);
    s_history (store);
    pond_replay_req_t request = s_by_names ("QUACKED", "CLICKED", 0, 0);
    uint64_t seqs [16], tss [16];
    char names [16][POND_NAME_MAX + 1];
    size_t count = s_replay_all (store, &request, seqs, tss, names, 16);
    uint64_t expect_seqs [] = { 2, 3, 7, 4, 5, 1 };
    uint64_t expect_tss [] = { 100, 100, 100, 200, 200, 300 };
    cr_assert_eq (count, 6, "got %zu events", count);
    for (size_t i = 0; i < count; i++) {
        cr_assert_eq (seqs [i], expect_seqs [i], "position %zu: seq %lu", i,
                      (unsigned long) seqs [i]);
        cr_assert_eq (tss [i], expect_tss [i]);
        cr_assert (streq (names [i], "QUACKED") || streq (names [i], "CLICKED"),
                   "QUACKED_LOUDLY and QUACKEC must not match: got %s", names [i]);
    }
    //  A name asked twice is replayed once
    request = s_by_names ("QUACKED", "QUACKED", 0, 0);
    cr_assert_eq (s_replay_all (store, &request, NULL, NULL, NULL, 16), 4);
    //  A name with no events: an empty replay, done at once
    request = s_by_names ("NEVER_SEEN", NULL, 0, 0);
    pond_cursor_t *replay = pond_cursor_new (store, &request);
    cr_assert (pond_cursor_done (replay));
    zmsg_t *msg = zmsg_new ();
    cr_assert_eq (pond_cursor_fill (replay, msg, 10, 1000), 0);
    cr_assert_eq (zmsg_size (msg), 0);
    zmsg_destroy (&msg);
    pond_cursor_destroy (&replay);
    pond_store_destroy (&store);
}

Test (replay, by_names_in_seq_order_for_catch_up, .init = s_setup, .fini = s_teardown)
{
    pond_store_t *store = pond_store_new (s_db);
    s_history (store);
    pond_replay_req_t request = s_by_names ("QUACKED", "CLICKED", 0, 0);
    strcpy (request.order, "seq");
    request.from_seq = 2;
    uint64_t seqs [16];
    char names [16][POND_NAME_MAX + 1];
    size_t count = s_replay_all (store, &request, seqs, NULL, names, 16);
    uint64_t expect [] = { 2, 3, 4, 5, 7 };
    cr_assert_eq (count, 5, "got %zu events", count);
    for (size_t i = 0; i < count; i++) {
        cr_assert_eq (seqs [i], expect [i], "position %zu: seq %lu", i, (unsigned long) seqs [i]);
        cr_assert (streq (names [i], "QUACKED") || streq (names [i], "CLICKED"));
    }
    //  The head of the snapshot is known, whatever matched
    pond_cursor_t *replay = pond_cursor_new (store, &request);
    cr_assert_eq (pond_cursor_head (replay), 9);
    pond_cursor_destroy (&replay);

    //  A long stretch of other names: fills may come back empty, the
    //  replay is not done until the end, and nothing is lost
    for (int batch = 0; batch < 330; batch++) {     //  more than one fill skips
        pond_event_t *events [64];
        for (int i = 0; i < 64; i++)
            events [i] = s_event ("NOISE", "cust-9", 1000);
        s_append (store, events, 64, NULL, NULL);
    }
    s_append_one (store, "CLICKED", "cust-9", 5);
    request = s_by_names ("CLICKED", NULL, 0, 0);
    strcpy (request.order, "seq");
    count = s_replay_all (store, &request, seqs, NULL, NULL, 16);
    cr_assert_eq (count, 3);
    cr_assert_eq (seqs [2], 9 + 330 * 64 + 1);
    pond_store_destroy (&store);
}

Test (replay, time_bounds_are_from_inclusive_to_exclusive, .init = s_setup, .fini = s_teardown)
{
    pond_store_t *store = pond_store_new (s_db);
    s_history (store);
    uint64_t seqs [16], tss [16];
    pond_replay_req_t request = s_by_names ("QUACKED", "CLICKED", 100, 200);
    cr_assert_eq (s_replay_all (store, &request, seqs, tss, NULL, 16), 3);
    for (int i = 0; i < 3; i++)
        cr_assert_eq (tss [i], 100);

    request = s_by_names ("QUACKED", "CLICKED", 200, 300);
    cr_assert_eq (s_replay_all (store, &request, seqs, tss, NULL, 16), 2);
    cr_assert_eq (seqs [0], 4);
    cr_assert_eq (seqs [1], 5);

    request = s_by_names ("QUACKED", "CLICKED", 101, 0);
    cr_assert_eq (s_replay_all (store, &request, seqs, tss, NULL, 16), 3);
    cr_assert_eq (seqs [0], 4);
    cr_assert_eq (seqs [2], 1);

    request = s_by_names ("QUACKED", NULL, 300, 301);
    cr_assert_eq (s_replay_all (store, &request, seqs, NULL, NULL, 16), 1);
    cr_assert_eq (seqs [0], 1);

    request = s_by_names ("QUACKED", NULL, 299, 300);
    cr_assert_eq (s_replay_all (store, &request, seqs, NULL, NULL, 16), 0);
    request = s_by_names ("QUACKED", NULL, 301, 0);
    cr_assert_eq (s_replay_all (store, &request, seqs, NULL, NULL, 16), 0);
    pond_store_destroy (&store);
}

Test (replay, by_entity_ordered_by_seq, .init = s_setup, .fini = s_teardown)
{
    pond_store_t *store = pond_store_new (s_db);
    s_history (store);
    uint64_t seqs [16];
    pond_replay_req_t request = { .credit = 1 };
    strcpy (request.entity, "cust-1");
    uint64_t expect [] = { 1, 2, 6, 7, 8, 9 };
    cr_assert_eq (s_replay_all (store, &request, seqs, NULL, NULL, 16), 6);
    for (int i = 0; i < 6; i++)
        cr_assert_eq (seqs [i], expect [i], "position %d: seq %lu", i, (unsigned long) seqs [i]);
    strcpy (request.entity, "cust-10");
    cr_assert_eq (s_replay_all (store, &request, seqs, NULL, NULL, 16), 1);
    cr_assert_eq (seqs [0], 5);
    strcpy (request.entity, "cust-");
    cr_assert_eq (s_replay_all (store, &request, seqs, NULL, NULL, 16), 0);
    pond_store_destroy (&store);
}

Test (replay, seq_range_and_limit, .init = s_setup, .fini = s_teardown)
{
    pond_store_t *store = pond_store_new (s_db);
    s_history (store);
    uint64_t seqs [16];
    pond_replay_req_t request = { .credit = 1, .from_seq = 3, .to_seq = 6 };
    cr_assert_eq (s_replay_all (store, &request, seqs, NULL, NULL, 16), 3);
    cr_assert_eq (seqs [0], 3);
    cr_assert_eq (seqs [2], 5);
    request = (pond_replay_req_t) { .credit = 1 };
    cr_assert_eq (s_replay_all (store, &request, seqs, NULL, NULL, 16), 9);
    for (int i = 0; i < 9; i++)
        cr_assert_eq (seqs [i], (uint64_t) i + 1);
    request = (pond_replay_req_t) { .credit = 1, .from_seq = 9 };
    cr_assert_eq (s_replay_all (store, &request, seqs, NULL, NULL, 16), 1);
    request = (pond_replay_req_t) { .credit = 1, .from_seq = 10 };
    cr_assert_eq (s_replay_all (store, &request, seqs, NULL, NULL, 16), 0);

    //  limit, in each mode
    request = (pond_replay_req_t) { .credit = 1, .from_seq = 2, .limit = 3 };
    cr_assert_eq (s_replay_all (store, &request, seqs, NULL, NULL, 16), 3);
    cr_assert_eq (seqs [2], 4);
    request = s_by_names ("QUACKED", "CLICKED", 0, 0);
    request.limit = 2;
    cr_assert_eq (s_replay_all (store, &request, seqs, NULL, NULL, 16), 2);
    cr_assert_eq (seqs [0], 2);
    cr_assert_eq (seqs [1], 3);
    request = (pond_replay_req_t) { .credit = 1, .limit = 4 };
    strcpy (request.entity, "cust-1");
    cr_assert_eq (s_replay_all (store, &request, seqs, NULL, NULL, 16), 4);
    cr_assert_eq (seqs [3], 7);
    //  limit larger than the result changes nothing
    request.limit = 100;
    cr_assert_eq (s_replay_all (store, &request, seqs, NULL, NULL, 16), 6);
    pond_store_destroy (&store);
}

Test (replay, sees_a_snapshot, .init = s_setup, .fini = s_teardown)
{
    pond_store_t *store = pond_store_new (s_db);
    s_history (store);
    pond_replay_req_t log = { .credit = 1 };
    pond_replay_req_t names = s_by_names ("QUACKED", NULL, 0, 0);
    pond_replay_req_t entity = { .credit = 1 };
    strcpy (entity.entity, "cust-1");
    pond_cursor_t *replays [3] = {
        pond_cursor_new (store, &log), pond_cursor_new (store, &names),
        pond_cursor_new (store, &entity)
    };
    //  Read one event of the log replay, then store more
    zmsg_t *msg = zmsg_new ();
    cr_assert_eq (pond_cursor_fill (replays [0], msg, 1, POND_CHUNK_BYTES), 1);
    zmsg_destroy (&msg);
    for (int i = 0; i < 5; i++)
        s_append_one (store, "QUACKED", "cust-1", 50 + i);
    size_t expect [3] = { 8, 4, 6 };
    for (int r = 0; r < 3; r++) {
        msg = zmsg_new ();
        size_t total = 0;
        int count;
        while ((count = pond_cursor_fill (replays [r], msg, POND_CHUNK_EVENTS,
                                          POND_CHUNK_BYTES)) > 0)
            total += count;
        cr_assert_eq (count, 0);
        uint64_t seqs [32];
        cr_assert_eq (s_drain_events (msg, seqs, NULL, NULL, 32), total);
        cr_assert_eq (total, expect [r], "replay %d saw %zu events", r, total);
        for (size_t i = 0; i < total; i++)
            cr_assert_leq (seqs [i], 9, "replay %d saw seq %lu, stored after it began", r,
                           (unsigned long) seqs [i]);
        zmsg_destroy (&msg);
        pond_cursor_destroy (&replays [r]);
    }
    //  A new replay sees them
    cr_assert_eq (s_replay_all (store, &names, NULL, NULL, NULL, 32), 9);
    pond_store_destroy (&store);
}

Test (replay, chunk_caps, .init = s_setup, .fini = s_teardown)
{
    pond_store_t *store = pond_store_new (s_db);
    //  1200 small events in groups of 60
    for (int g = 0; g < 20; g++) {
        pond_event_t *events [60];
        for (int i = 0; i < 60; i++)
            events [i] = s_event ("QUACKED", "cust-1", 1000 + g * 60 + i);
        s_append (store, events, 60, NULL, NULL);
    }
    pond_replay_req_t request = { .credit = 1 };
    pond_cursor_t *replay = pond_cursor_new (store, &request);
    int expect [] = { 512, 512, 176, 0 };
    for (int i = 0; i < 4; i++) {
        zmsg_t *msg = zmsg_new ();
        cr_assert_eq (pond_cursor_fill (replay, msg, POND_CHUNK_EVENTS, POND_CHUNK_BYTES),
                      expect [i]);
        cr_assert_eq (zmsg_size (msg), (size_t) expect [i]);
        cr_assert_eq (pond_cursor_done (replay), i >= 2, "done after the last chunk");
        zmsg_destroy (&msg);
    }
    pond_cursor_destroy (&replay);

    //  Big events: a byte cap of 100 KB takes 3 events of ~30 KB, never
    //  more than the cap; an event larger than the cap still goes, alone
    char err [POND_ERR_SIZE];
    char *big = malloc (30001);
    memset (big, 'q', 30000);
    big [30000] = 0;
    char *json = zsys_sprintf ("{\"noise\": \"%s\"}", big);
    for (int i = 0; i < 10; i++) {
        pond_event_t *event = s_event ("LOUD", "cust-9", 10 + i);
        cr_assert_eq (pond_event_set_data_json (event, json, err, sizeof err), 0, "%s", err);
        s_append (store, &event, 1, NULL, NULL);
    }
    zstr_free (&json);
    free (big);
    request = s_by_names ("LOUD", NULL, 0, 0);
    replay = pond_cursor_new (store, &request);
    size_t total = 0;
    int count;
    while (true) {
        zmsg_t *msg = zmsg_new ();
        count = pond_cursor_fill (replay, msg, POND_CHUNK_EVENTS, 100000);
        cr_assert_leq (zmsg_content_size (msg), 100000);
        cr_assert (count == 0 || count == 3 || (count == 1 && total == 9),
                   "fill gave %d events", count);
        total += count;
        zmsg_destroy (&msg);
        if (count == 0)
            break;
    }
    cr_assert_eq (total, 10);
    pond_cursor_destroy (&replay);
    replay = pond_cursor_new (store, &request);
    zmsg_t *msg = zmsg_new ();
    cr_assert_eq (pond_cursor_fill (replay, msg, POND_CHUNK_EVENTS, 1000), 1,
                  "an event over the byte cap goes alone");
    cr_assert_eq (pond_cursor_fill (replay, msg, 2, POND_CHUNK_BYTES), 2, "event cap");
    zmsg_destroy (&msg);
    pond_cursor_destroy (&replay);
    pond_store_destroy (&store);
}

Test (replay, by_name_covers_the_event, .init = s_setup, .fini = s_teardown)
{
    //  Layout: each by_name entry holds the stored event, byte for byte
    //  what the log holds at its seq
    pond_store_t *store = pond_store_new (s_db);
    s_history (store);
    rocksdb_readoptions_t *options = rocksdb_readoptions_create ();
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf (
        pond_store_db (store), options, pond_store_cf (store, POND_CF_BY_NAME));
    size_t entries = 0;
    for (rocksdb_iter_seek_to_first (it); rocksdb_iter_valid (it); rocksdb_iter_next (it)) {
        size_t klen, vlen, size = 0;
        const char *key = rocksdb_iter_key (it, &klen);
        const char *value = rocksdb_iter_value (it, &vlen);
        uint64_t seq = pond_get_be64 ((const uint8_t *) key + klen - 8);
        uint8_t *stored = pond_store_get (store, seq, &size);
        cr_assert_not_null (stored);
        cr_assert_eq (vlen, size, "by_name entry of seq %lu", (unsigned long) seq);
        cr_assert_eq (memcmp (value, stored, size), 0);
        free (stored);
        entries++;
    }
    cr_assert_eq (entries, 9);
    rocksdb_iter_destroy (it);
    rocksdb_readoptions_destroy (options);
    pond_store_destroy (&store);
}

//  Make by_name entries look like a store made before by_name covered:
//  empty values. Returns how many.
static size_t
s_uncover_by_name (pond_store_t *store)
{
    rocksdb_readoptions_t *options = rocksdb_readoptions_create ();
    rocksdb_writeoptions_t *write = rocksdb_writeoptions_create ();
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf (
        pond_store_db (store), options, pond_store_cf (store, POND_CF_BY_NAME));
    size_t entries = 0;
    for (rocksdb_iter_seek_to_first (it); rocksdb_iter_valid (it); rocksdb_iter_next (it)) {
        size_t klen;
        const char *key = rocksdb_iter_key (it, &klen);
        char *err = NULL;
        rocksdb_put_cf (pond_store_db (store), write, pond_store_cf (store, POND_CF_BY_NAME),
                        key, klen, "", 0, &err);
        cr_assert_null (err);
        entries++;
    }
    rocksdb_iter_destroy (it);
    rocksdb_writeoptions_destroy (write);
    rocksdb_readoptions_destroy (options);
    return entries;
}

Test (replay, old_by_name_entries_read_the_log, .init = s_setup, .fini = s_teardown)
{
    pond_store_t *store = pond_store_new (s_db);
    s_history (store);
    cr_assert_eq (s_uncover_by_name (store), 9);
    //  Same events, same order as from the covering index
    pond_replay_req_t request = s_by_names ("QUACKED", "CLICKED", 0, 0);
    uint64_t seqs [16], tss [16];
    size_t count = s_replay_all (store, &request, seqs, tss, NULL, 16);
    uint64_t expect_seqs [] = { 2, 3, 7, 4, 5, 1 };
    cr_assert_eq (count, 6, "got %zu events", count);
    for (size_t i = 0; i < count; i++)
        cr_assert_eq (seqs [i], expect_seqs [i], "position %zu", i);
    //  A log entry gone missing under an index entry: the replay fails,
    //  saying which event
    rocksdb_writeoptions_t *write = rocksdb_writeoptions_create ();
    uint8_t key [8];
    pond_put_be64 (key, 7);
    char *err = NULL;
    rocksdb_delete_cf (pond_store_db (store), write, pond_store_cf (store, POND_CF_LOG),
                       (const char *) key, 8, &err);
    cr_assert_null (err);
    rocksdb_writeoptions_destroy (write);
    pond_cursor_t *replay = pond_cursor_new (store, &request);
    zmsg_t *msg = zmsg_new ();
    cr_assert_eq (pond_cursor_fill (replay, msg, POND_CHUNK_EVENTS, POND_CHUNK_BYTES), 2,
                  "the events before it go");
    cr_assert_eq (pond_cursor_fill (replay, msg, POND_CHUNK_EVENTS, POND_CHUNK_BYTES), -1);
    cr_assert (pond_cursor_done (replay));
    cr_assert_not_null (strstr (pond_cursor_error (replay), "event 7"), "%s",
                        pond_cursor_error (replay));
    zmsg_destroy (&msg);
    pond_cursor_destroy (&replay);
    //  By entity reads the log the same way
    request = (pond_replay_req_t) { .credit = 1 };
    strcpy (request.entity, "cust-1");
    replay = pond_cursor_new (store, &request);
    msg = zmsg_new ();
    cr_assert_eq (pond_cursor_fill (replay, msg, POND_CHUNK_EVENTS, POND_CHUNK_BYTES), 3,
                  "seqs 1, 2 and 6 go");
    cr_assert_eq (pond_cursor_fill (replay, msg, POND_CHUNK_EVENTS, POND_CHUNK_BYTES), -1);
    zmsg_destroy (&msg);
    pond_cursor_destroy (&replay);
    pond_store_destroy (&store);
}

Test (replay, packed_chunks, .init = s_setup, .fini = s_teardown)
{
    pond_store_t *store = pond_store_new (s_db);
    for (int g = 0; g < 20; g++) {
        pond_event_t *events [60];
        for (int i = 0; i < 60; i++)
            events [i] = s_event (i % 2? "QUACKED": "CLICKED", "cust-1", 1000 + g * 60 + i);
        s_append (store, events, 60, NULL, NULL);
    }
    //  Every mode: the same events in the same order, packed or not
    pond_replay_req_t requests [3] = {
        { .credit = 1 }, s_by_names ("QUACKED", "CLICKED", 1100, 0), { .credit = 1 }
    };
    strcpy (requests [2].entity, "cust-1");
    for (int r = 0; r < 3; r++) {
        uint64_t plain [1200], packed [1200];
        size_t plain_count = s_replay_all (store, &requests [r], plain, NULL, NULL, 1200);
        requests [r].pack = true;
        size_t packed_count = s_replay_all (store, &requests [r], packed, NULL, NULL, 1200);
        cr_assert_eq (packed_count, plain_count, "request %d", r);
        cr_assert_gt (packed_count, 0);
        cr_assert_eq (memcmp (plain, packed, plain_count * sizeof plain [0]), 0);
    }
    //  One frame per fill, with the caps of an unpacked one
    pond_cursor_t *replay = pond_cursor_new (store, &requests [0]);
    int expect [] = { 512, 512, 176, 0 };
    for (int i = 0; i < 4; i++) {
        zmsg_t *msg = zmsg_new ();
        cr_assert_eq (pond_cursor_fill (replay, msg, POND_CHUNK_EVENTS, POND_CHUNK_BYTES),
                      expect [i]);
        cr_assert_eq (zmsg_size (msg), expect [i]? 1: 0);
        zmsg_destroy (&msg);
    }
    pond_cursor_destroy (&replay);
    replay = pond_cursor_new (store, &requests [0]);
    zmsg_t *msg = zmsg_new ();
    size_t size = 0;
    uint8_t *first = pond_store_get (store, 1, &size);
    cr_assert_not_null (first);
    free (first);
    int count = pond_cursor_fill (replay, msg, POND_CHUNK_EVENTS, 1000);
    cr_assert_gt (count, 1);
    cr_assert_leq (zframe_size (zmsg_first (msg)), 1000, "never over the byte cap");
    cr_assert_gt (zframe_size (zmsg_first (msg)) + size + 2, 1000, "no room for one more");
    cr_assert_eq (pond_cursor_fill (replay, msg, POND_CHUNK_EVENTS, 10), 1,
                  "an event over the byte cap goes alone");
    cr_assert_eq (zmsg_size (msg), 2);
    zmsg_destroy (&msg);
    pond_cursor_destroy (&replay);
    pond_store_destroy (&store);
}

Test (replay, fill_buffer_packs_into_the_callers_buffer, .init = s_setup, .fini = s_teardown)
{
    pond_store_t *store = pond_store_new (s_db);
    for (int g = 0; g < 10; g++) {
        pond_event_t *events [60];
        for (int i = 0; i < 60; i++)
            events [i] = s_event (i % 2? "QUACKED": "CLICKED", "cust-1", 1000 + g * 60 + i);
        s_append (store, events, 60, NULL, NULL);
    }
    //  The same events, in the same order, as unpacked fills
    pond_replay_req_t request = s_by_names ("QUACKED", "CLICKED", 1100, 0);
    uint64_t plain [600];
    size_t plain_count = s_replay_all (store, &request, plain, NULL, NULL, 600);
    cr_assert_eq (plain_count, 500);
    pond_cursor_t *replay = pond_cursor_new (store, &request);
    static uint8_t buffer [POND_CHUNK_PACKED_BYTES];
    size_t total = 0, size, fills = 0;
    int count;
    while ((count = pond_cursor_fill_buffer (replay, buffer, sizeof buffer, &size, 128)) > 0) {
        cr_assert_leq (count, 128);
        fills++;
        zmsg_t *msg = zmsg_new ();
        zmsg_addmem (msg, buffer, size);
        uint64_t seqs [128];
        cr_assert_eq (s_drain_events (msg, seqs, NULL, NULL, 128), (size_t) count);
        zmsg_destroy (&msg);
        cr_assert_eq (memcmp (seqs, plain + total, (size_t) count * sizeof seqs [0]), 0);
        total += (size_t) count;
    }
    cr_assert_eq (count, 0);
    cr_assert_eq (total, plain_count);
    cr_assert_eq (fills, 4);
    cr_assert (pond_cursor_done (replay));
    cr_assert_null (pond_cursor_error (replay));
    pond_cursor_destroy (&replay);

    //  The byte cap is the capacity; an event that cannot fit fails
    replay = pond_cursor_new (store, &request);
    count = pond_cursor_fill_buffer (replay, buffer, 1000, &size, 128);
    cr_assert_gt (count, 1);
    cr_assert_leq (size, 1000);
    cr_assert_eq (pond_cursor_fill_buffer (replay, buffer, 10, &size, 128), -1);
    cr_assert_not_null (pond_cursor_error (replay));
    cr_assert (strstr (pond_cursor_error (replay), "does not fit"), "%s",
               pond_cursor_error (replay));
    cr_assert (pond_cursor_done (replay));
    pond_cursor_destroy (&replay);
    pond_store_destroy (&store);
}

Test (replay, seq_order_filter_reads_names_of_any_event, .init = s_setup,
      .fini = s_teardown)
{
    //  The names filter of order "seq" peeks at each stored event's name:
    //  names longer than 31 bytes (msgpack str 8), events with source,
    //  causation, meta and data, all found; an unreadable event fails
    pond_store_t *store = pond_store_new (s_db);
    const char *long_name = "A_VERY_LONG_EVENT_NAME_OF_FORTY_BYTES_XX";
    cr_assert_eq (strlen (long_name), 40);
    char err [POND_ERR_SIZE];
    for (int i = 0; i < 30; i++) {
        pond_event_t *event = s_event (i % 3 == 0? long_name: i % 3 == 1? "QUACKED": "OTHER",
                                       "cust-1", 100 + i);
        if (i % 2) {
            uint8_t cause [POND_ID_SIZE] = { 1, 2, 3 };
            pond_event_set_causation (event, cause);
            pond_event_set_source (event, "silo-7");
            cr_assert_eq (pond_event_set_meta_json (event, "{\"firmware\":\"2.1\"}",
                                                    err, sizeof err), 0, "%s", err);
            cr_assert_eq (pond_event_set_data_json (event, "{\"a\":{\"b\":[1,2,3]}}",
                                                    err, sizeof err), 0, "%s", err);
        }
        s_append (store, &event, 1, NULL, NULL);
    }
    pond_replay_req_t request = s_by_names (long_name, "QUACKED", 0, 0);
    strcpy (request.order, "seq");
    uint64_t seqs [32];
    char names [32][POND_NAME_MAX + 1];
    size_t count = s_replay_all (store, &request, seqs, NULL, names, 32);
    cr_assert_eq (count, 20);
    for (size_t i = 0; i < count; i++) {
        cr_assert_eq ((seqs [i] - 1) % 3 != 2, true);
        cr_assert_str_eq (names [i], (seqs [i] - 1) % 3 == 0? long_name: "QUACKED");
    }
    //  A damaged event in the log: the replay fails, saying why
    rocksdb_writeoptions_t *write = rocksdb_writeoptions_create ();
    uint8_t key [8];
    pond_put_be64 (key, 5);
    char *rerr = NULL;
    rocksdb_put_cf (pond_store_db (store), write, pond_store_cf (store, POND_CF_LOG),
                    (const char *) key, 8, "\x82\xc1garbage", 9, &rerr);
    cr_assert_null (rerr);
    rocksdb_writeoptions_destroy (write);
    pond_cursor_t *replay = pond_cursor_new (store, &request);
    zmsg_t *msg = zmsg_new ();
    cr_assert_eq (pond_cursor_fill (replay, msg, POND_CHUNK_EVENTS, POND_CHUNK_BYTES), 3,
                  "seqs 1, 2 and 4 go");
    cr_assert_eq (pond_cursor_fill (replay, msg, POND_CHUNK_EVENTS, POND_CHUNK_BYTES), -1);
    cr_assert_not_null (strstr (pond_cursor_error (replay), "unreadable event"), "%s",
                        pond_cursor_error (replay));
    zmsg_destroy (&msg);
    pond_cursor_destroy (&replay);
    pond_store_destroy (&store);
}

//  ---------------------------------------------------------------------
//  Socket helpers: a DEALER speaking the Store link

static zsock_t *
s_dealer (const char *endpoint)
{
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    cr_assert_not_null (dealer);
    zsock_set_linger (dealer, 0);
    zsock_set_rcvtimeo (dealer, 5000);
    zsock_set_sndtimeo (dealer, 5000);
    cr_assert_eq (zsock_connect (dealer, "%s", endpoint), 0);
    return dealer;
}

//  Receive with a timeout; NULL if nothing came.
static zmsg_t *
s_recv (zsock_t *dealer, int timeout)
{
    zpoller_t *poller = zpoller_new (dealer, NULL);
    void *which = zpoller_wait (poller, timeout);
    zpoller_destroy (&poller);
    return which? zmsg_recv (dealer): NULL;
}

static void
s_send_append (zsock_t *dealer, uint64_t bid, pond_event_t **events, size_t count)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, POND_APPEND);
    pond_append_t header = { .bid = bid };
    zframe_t *body = pond_append_encode (&header);
    zmsg_append (msg, &body);
    for (size_t i = 0; i < count; i++) {
        char err [POND_ERR_SIZE];
        size_t size;
        uint8_t *data = pond_event_encode (events [i], &size, err, sizeof err);
        cr_assert_not_null (data, "%s", err);
        zmsg_addmem (msg, data, size);
        free (data);
    }
    cr_assert_eq (zmsg_send (&msg, dealer), 0);
}

//  Receive an APPENDED; returns its stored event frames count.
static size_t
s_recv_appended (zsock_t *dealer, pond_appended_t *reply)
{
    zmsg_t *msg = s_recv (dealer, 5000);
    cr_assert_not_null (msg, "no APPENDED");
    zframe_t *command = zmsg_pop (msg);
    cr_assert (pond_proto_is (command, POND_APPENDED), "got %s",
               command? zframe_strdup (command): "nothing");
    zframe_t *body = zmsg_pop (msg);
    char err [POND_ERR_SIZE];
    cr_assert_eq (pond_appended_decode (body, reply, err, sizeof err), 0, "%s", err);
    size_t frames = zmsg_size (msg);
    //  Every stored frame is a valid event with its seq
    size_t index = 0;
    for (zframe_t *frame = zmsg_first (msg); frame; frame = zmsg_next (msg)) {
        pond_event_t *event = pond_event_decode (zframe_data (frame), zframe_size (frame),
                                                 err, sizeof err);
        cr_assert_not_null (event, "%s", err);
        //  Frames: the events stored now (not dups, not refused)
        while (index < reply->count
        &&     (reply->dups [index]
                || (reply->codes_count && reply->codes [index] != POND_CODE_OK)))
            index++;
        cr_assert_lt (index, reply->count);
        cr_assert_eq (pond_event_seq (event), reply->seqs [index]);
        index++;
        pond_event_destroy (&event);
    }
    zframe_destroy (&command);
    zframe_destroy (&body);
    zmsg_destroy (&msg);
    return frames;
}

//  Append one group of events over the socket; asserts code 200.
static void
s_socket_append (zsock_t *dealer, uint64_t bid, pond_event_t **events, size_t count,
                 uint64_t *seqs)
{
    s_send_append (dealer, bid, events, count);
    pond_appended_t *reply = malloc (sizeof (pond_appended_t));
    s_recv_appended (dealer, reply);
    cr_assert_eq (reply->bid, bid);
    cr_assert_eq (reply->code, POND_CODE_OK, "APPENDED %u: %s", reply->code, reply->reason);
    cr_assert_eq (reply->count, count);
    if (seqs)
        memcpy (seqs, reply->seqs, count * sizeof (uint64_t));
    free (reply);
}

//  Expect an ERROR with this code; returns nothing, asserts.
static void
s_expect_error (zsock_t *dealer, uint32_t code, const char *reason_part)
{
    zmsg_t *msg = s_recv (dealer, 5000);
    cr_assert_not_null (msg, "no ERROR for a bad request");
    zframe_t *command = zmsg_pop (msg);
    cr_assert (pond_proto_is (command, POND_ERROR));
    zframe_t *body = zmsg_pop (msg);
    pond_nack_t nack;
    char err [POND_ERR_SIZE];
    cr_assert_eq (pond_nack_decode (body, &nack, err, sizeof err), 0, "%s", err);
    cr_assert_eq (nack.code, code, "ERROR %u: %s", nack.code, nack.reason);
    cr_assert (strstr (nack.reason, reason_part), "reason '%s' lacks '%s'", nack.reason,
               reason_part);
    zframe_destroy (&command);
    zframe_destroy (&body);
    zmsg_destroy (&msg);
}

//  A key of a msgpack map (the STATS body); names/NAME for the nested map.
static uint64_t
s_stats_value (zframe_t *body, const char *key)
{
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    cr_assert_eq (msgpack_unpack_next (&unpacked, (const char *) zframe_data (body),
                                       zframe_size (body), NULL), MSGPACK_UNPACK_SUCCESS);
    msgpack_object map = unpacked.data;
    cr_assert_eq (map.type, MSGPACK_OBJECT_MAP);
    const char *name = NULL;
    if (strncmp (key, "names/", 6) == 0) {
        name = key + 6;
        key = "names";
    }
    uint64_t value = UINT64_MAX;
    for (uint32_t i = 0; i < map.via.map.size; i++) {
        msgpack_object_kv *kv = &map.via.map.ptr [i];
        if (kv->key.via.str.size != strlen (key)
        ||  memcmp (kv->key.via.str.ptr, key, strlen (key)))
            continue;
        if (!name) {
            cr_assert_eq (kv->val.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
            value = kv->val.via.u64;
        }
        else {
            cr_assert_eq (kv->val.type, MSGPACK_OBJECT_MAP);
            value = 0;
            for (uint32_t j = 0; j < kv->val.via.map.size; j++) {
                msgpack_object_kv *entry = &kv->val.via.map.ptr [j];
                if (entry->key.via.str.size == strlen (name)
                &&  memcmp (entry->key.via.str.ptr, name, strlen (name)) == 0)
                    value = entry->val.via.u64;
            }
        }
    }
    msgpack_unpacked_destroy (&unpacked);
    cr_assert_neq (value, UINT64_MAX, "STATS lacks '%s'", key);
    return value;
}

//  STATS round trip; returns the body frame (caller destroys).
static zframe_t *
s_stats (zsock_t *dealer)
{
    cr_assert_eq (zstr_send (dealer, POND_STATS), 0);
    zmsg_t *msg = s_recv (dealer, 5000);
    cr_assert_not_null (msg, "no STATS reply");
    zframe_t *command = zmsg_pop (msg);
    cr_assert (pond_proto_is (command, POND_STATS));
    zframe_t *body = zmsg_pop (msg);
    cr_assert_not_null (body);
    zframe_destroy (&command);
    zmsg_destroy (&msg);
    return body;
}

static void
s_send_replay (zsock_t *dealer, const pond_replay_req_t *request)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, POND_REPLAY);
    zframe_t *body = pond_replay_req_encode (request);
    zmsg_append (msg, &body);
    cr_assert_eq (zmsg_send (&msg, dealer), 0);
}

static void
s_send_credit (zsock_t *dealer, const char *command, uint64_t rid, uint32_t chunks)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, command);
    pond_credit_t credit = { .rid = rid, .chunks = chunks };
    zframe_t *body = pond_credit_encode (&credit);
    zmsg_append (msg, &body);
    cr_assert_eq (zmsg_send (&msg, dealer), 0);
}

//  Receive a CHUNK (returns its events, seqs appended to seqs) or an END
//  (returns -1, fills end). credit_left gets the CHUNK's chunks.
static int
s_recv_stream (zsock_t *dealer, uint64_t rid, uint64_t *seqs, size_t capacity,
               uint32_t *credit_left, pond_end_t *end, uint8_t (*ids) [POND_ID_SIZE])
{
    zmsg_t *msg = s_recv (dealer, 5000);
    cr_assert_not_null (msg, "no CHUNK or END");
    zframe_t *command = zmsg_pop (msg);
    zframe_t *body = zmsg_pop (msg);
    char err [POND_ERR_SIZE];
    int rc;
    if (pond_proto_is (command, POND_END)) {
        cr_assert_eq (pond_end_decode (body, end, err, sizeof err), 0, "%s", err);
        cr_assert_eq (end->rid, rid);
        rc = -1;
    }
    else {
        cr_assert (pond_proto_is (command, POND_CHUNK));
        pond_credit_t header;
        cr_assert_eq (pond_credit_decode (body, &header, err, sizeof err), 0, "%s", err);
        cr_assert_eq (header.rid, rid);
        if (credit_left)
            *credit_left = header.chunks;
        rc = 0;
        //  Each frame is a msgpack stream: one event, or a packed CHUNK's all
        for (zframe_t *frame = zmsg_first (msg); frame; frame = zmsg_next (msg))
            for (size_t at = 0; at < zframe_size (frame);) {
                size_t used = 0;
                pond_event_t *event = pond_event_decode_next (zframe_data (frame) + at,
                                                              zframe_size (frame) - at, &used,
                                                              err, sizeof err);
                cr_assert_not_null (event, "%s", err);
                cr_assert_lt ((size_t) rc, capacity);
                seqs [rc] = pond_event_seq (event);
                if (ids)
                    memcpy (ids [rc], pond_event_id (event), POND_ID_SIZE);
                rc++;
                at += used;
                pond_event_destroy (&event);
            }
        cr_assert_gt (rc, 0, "a CHUNK carries at least one event");
    }
    zframe_destroy (&command);
    zframe_destroy (&body);
    zmsg_destroy (&msg);
    return rc;
}

//  ---------------------------------------------------------------------
//  The server in-process

static void
s_server_start (pond_store_t *store, pond_store_server_t **server_p, int replay_timeout)
{
    *server_p = pond_store_server_new (store, s_endpoint);
    cr_assert_not_null (*server_p);
    cr_assert_str_eq (pond_store_server_endpoint (*server_p), s_endpoint);
    if (replay_timeout)
        pond_store_server_set_replay_timeout (*server_p, replay_timeout);
    s_actor = zactor_new (pond_store_server_actor, *server_p);
    cr_assert_not_null (s_actor);
}

Test (server, group_commit_answers_each_append_in_order, .init = s_setup, .fini = s_teardown)
{
    pond_store_t *store = pond_store_new (s_db);
    pond_store_server_t *server = pond_store_server_new (store, s_endpoint);
    cr_assert_not_null (server);
    zsock_t *dealer = s_dealer (s_endpoint);

    //  Queue 20 APPENDs before the server runs: one turn must read them
    //  all and write them in one batch. APPEND 7 is invalid; APPEND 12
    //  resends the event of APPEND 3.
    pond_event_t *sent [20];
    for (int i = 0; i < 20; i++) {
        sent [i] = s_event ("QUACKED", "cust-1", 1000 + i);
        pond_event_t *copy = pond_event_dup (i == 12? sent [3]: sent [i]);
        if (i == 7) {
            zmsg_t *msg = zmsg_new ();
            zmsg_addstr (msg, POND_APPEND);
            pond_append_t header = { .bid = 100 + i };
            zframe_t *body = pond_append_encode (&header);
            zmsg_append (msg, &body);
            zmsg_addstr (msg, "not msgpack at all");
            zmsg_send (&msg, dealer);
        }
        else
            s_send_append (dealer, 100 + i, &copy, 1);
        pond_event_destroy (&copy);
    }
    zclock_sleep (300);
    s_actor = zactor_new (pond_store_server_actor, server);

    pond_appended_t *reply = malloc (sizeof (pond_appended_t));
    uint64_t expect = 1;
    for (int i = 0; i < 20; i++) {
        size_t frames = s_recv_appended (dealer, reply);
        cr_assert_eq (reply->bid, 100 + (uint64_t) i, "APPENDED out of order");
        if (i == 7) {
            //  The APPEND was read: its one event is refused on its own
            cr_assert_eq (reply->code, POND_CODE_OK);
            cr_assert_eq (reply->count, 1);
            cr_assert_eq (reply->codes [0], POND_CODE_BAD_REQUEST);
            cr_assert_eq (reply->seqs [0], 0);
            cr_assert_eq (frames, 0);
            continue;
        }
        cr_assert_eq (reply->code, POND_CODE_OK);
        cr_assert_eq (reply->count, 1);
        if (i == 12) {
            cr_assert (reply->dups [0]);
            cr_assert_eq (reply->seqs [0], 4);
            cr_assert_eq (frames, 0);
        }
        else {
            cr_assert_not (reply->dups [0]);
            cr_assert_eq (reply->seqs [0], expect++);
            cr_assert_eq (frames, 1);
        }
    }
    free (reply);
    zframe_t *stats = s_stats (dealer);
    cr_assert_eq (s_stats_value (stats, "batches"), 1, "20 queued APPENDs, one batch");
    cr_assert_eq (s_stats_value (stats, "appended"), 18);
    cr_assert_eq (s_stats_value (stats, "dups"), 1);
    cr_assert_eq (s_stats_value (stats, "head"), 18);
    cr_assert_eq (s_stats_value (stats, "events"), 18);
    cr_assert_eq (s_stats_value (stats, "names/QUACKED"), 18);
    cr_assert_eq (s_stats_value (stats, "malformed"), 1);
    zframe_destroy (&stats);
    for (int i = 0; i < 20; i++)
        pond_event_destroy (&sent [i]);
    zsock_destroy (&dealer);
    zactor_destroy (&s_actor);
    pond_store_server_destroy (&server);
    pond_store_destroy (&store);
}

Test (server, write_error_answers_500, .init = s_setup, .fini = s_teardown)
{
    pond_store_t *store = pond_store_new (s_db);
    pond_store_server_t *server;
    s_server_start (store, &server, 0);
    zsock_t *dealer = s_dealer (s_endpoint);
    pond_event_t *events [2] = { s_event ("QUACKED", "c", 1), s_event ("QUACKED", "c", 2) };
    pond_store_set_write_fault (store, true);
    s_send_append (dealer, 1, events, 2);
    pond_appended_t *reply = malloc (sizeof (pond_appended_t));
    cr_assert_eq (s_recv_appended (dealer, reply), 0);
    cr_assert_eq (reply->code, POND_CODE_STORE_ERROR);
    cr_assert_eq (reply->count, 0, "a failed batch answers no seqs");
    cr_assert_eq (reply->dups_count, 0);
    zframe_t *stats = s_stats (dealer);
    cr_assert_eq (s_stats_value (stats, "write_errors"), 1);
    cr_assert_eq (s_stats_value (stats, "head"), 0);
    zframe_destroy (&stats);

    pond_store_set_write_fault (store, false);
    s_send_append (dealer, 2, events, 2);
    cr_assert_eq (s_recv_appended (dealer, reply), 2);
    cr_assert_eq (reply->code, POND_CODE_OK);
    cr_assert_eq (reply->seqs [0], 1, "no gap after a failed batch");
    cr_assert_eq (reply->seqs [1], 2);
    free (reply);
    pond_event_destroy (&events [0]);
    pond_event_destroy (&events [1]);
    zsock_destroy (&dealer);
    zactor_destroy (&s_actor);
    pond_store_server_destroy (&server);
    pond_store_destroy (&store);
}

Test (server, replay_without_credit_is_dropped, .init = s_setup, .fini = s_teardown)
{
    pond_store_t *store = pond_store_new (s_db);
    for (int g = 0; g < 10; g++) {
        pond_event_t *events [60];
        for (int i = 0; i < 60; i++)
            events [i] = s_event ("QUACKED", "cust-1", 1000 + i);
        s_append (store, events, 60, NULL, NULL);
    }
    pond_store_server_t *server;
    s_server_start (store, &server, 300);
    zsock_t *dealer = s_dealer (s_endpoint);
    pond_replay_req_t request = { .rid = 7, .credit = 1 };
    s_send_replay (dealer, &request);
    uint64_t seqs [POND_CHUNK_EVENTS];
    uint32_t left;
    pond_end_t end;
    int64_t start = zclock_mono ();
    cr_assert_eq (s_recv_stream (dealer, 7, seqs, POND_CHUNK_EVENTS, &left, &end, NULL), 512);
    cr_assert_eq (left, 0);
    cr_assert_eq (s_recv_stream (dealer, 7, seqs, POND_CHUNK_EVENTS, &left, &end, NULL), -1);
    int64_t waited = zclock_mono () - start;
    cr_assert_eq (end.code, POND_CODE_UNAVAILABLE, "END %u: %s", end.code, end.reason);
    cr_assert_eq (end.count, 512);
    cr_assert_geq (waited, 250, "dropped after %ld ms, before its timeout", (long) waited);
    //  The rid is free again, and the server serves
    request.credit = 2;
    s_send_replay (dealer, &request);
    cr_assert_eq (s_recv_stream (dealer, 7, seqs, POND_CHUNK_EVENTS, &left, &end, NULL), 512);
    cr_assert_eq (left, 1);
    cr_assert_eq (s_recv_stream (dealer, 7, seqs, POND_CHUNK_EVENTS, &left, &end, NULL), 88);
    cr_assert_eq (s_recv_stream (dealer, 7, seqs, POND_CHUNK_EVENTS, &left, &end, NULL), -1);
    cr_assert_eq (end.code, POND_CODE_OK);
    cr_assert_eq (end.count, 600);
    zsock_destroy (&dealer);
    zactor_destroy (&s_actor);
    pond_store_server_destroy (&server);
    pond_store_destroy (&store);
}

Test (server, replays_interleave_with_appends, .init = s_setup, .fini = s_teardown)
{
    pond_store_t *store = pond_store_new (s_db);
    for (int g = 0; g < 40; g++) {
        pond_event_t *events [64];
        for (int i = 0; i < 64; i++)
            events [i] = s_event ("QUACKED", "cust-1", 1000 + i);
        s_append (store, events, 64, NULL, NULL);
    }
    pond_store_server_t *server;
    s_server_start (store, &server, 0);
    zsock_t *reader = s_dealer (s_endpoint);
    zsock_t *writer = s_dealer (s_endpoint);
    //  Three long replays of 5 chunks each, paused after their first
    //  chunk, and a second replay with a rid that is running
    uint64_t seqs [POND_CHUNK_EVENTS];
    uint32_t left;
    pond_end_t end;
    for (uint64_t rid = 1; rid <= 3; rid++) {
        pond_replay_req_t request = { .rid = rid, .credit = 1 };
        s_send_replay (reader, &request);
        cr_assert_eq (s_recv_stream (reader, rid, seqs, POND_CHUNK_EVENTS, &left, &end, NULL),
                      512);
        cr_assert_eq (seqs [0], 1);
        cr_assert_eq (left, 0);
    }
    pond_replay_req_t request = { .rid = 2, .credit = 1 };
    s_send_replay (reader, &request);
    s_expect_error (reader, POND_CODE_BAD_REQUEST, "already");

    //  An APPEND while they run is answered at once
    pond_event_t *event = s_event ("LABEL_ADDED", "cust-1", 5);
    uint64_t seq;
    s_socket_append (writer, 1, &event, 1, &seq);
    cr_assert_eq (seq, 2561);
    pond_event_destroy (&event);

    //  Now all three stream at once, interleaved, each without a gap
    for (uint64_t rid = 1; rid <= 3; rid++)
        s_send_credit (reader, POND_CREDIT, rid, 100);
    uint64_t totals [4] = { 0, 512, 512, 512 }, next [4] = { 0, 513, 513, 513 };
    int ended = 0, switches = 0;
    uint64_t last_rid = 0;
    while (ended < 3) {
        zmsg_t *msg = s_recv (reader, 5000);
        cr_assert_not_null (msg);
        zframe_t *command = zmsg_pop (msg);
        zframe_t *body = zmsg_pop (msg);
        char err [POND_ERR_SIZE];
        if (pond_proto_is (command, POND_END)) {
            cr_assert_eq (pond_end_decode (body, &end, err, sizeof err), 0);
            cr_assert_eq (end.code, POND_CODE_OK);
            cr_assert_eq (end.count, 2560, "the snapshot predates the APPEND");
            cr_assert_eq (totals [end.rid], 2560);
            ended++;
        }
        else {
            cr_assert (pond_proto_is (command, POND_CHUNK));
            pond_credit_t header;
            cr_assert_eq (pond_credit_decode (body, &header, err, sizeof err), 0);
            cr_assert (header.rid >= 1 && header.rid <= 3);
            for (zframe_t *frame = zmsg_first (msg); frame; frame = zmsg_next (msg)) {
                pond_event_t *got = pond_event_decode (zframe_data (frame), zframe_size (frame),
                                                       err, sizeof err);
                cr_assert_eq (pond_event_seq (got), next [header.rid]++, "gap in a replay");
                pond_event_destroy (&got);
            }
            totals [header.rid] += zmsg_size (msg);
            switches += last_rid && header.rid != last_rid;
            last_rid = header.rid;
        }
        zframe_destroy (&command);
        zframe_destroy (&body);
        zmsg_destroy (&msg);
    }
    cr_assert_geq (switches, 6, "replays take turns, one chunk each (%d switches)", switches);
    zframe_t *stats = s_stats (writer);
    cr_assert_eq (s_stats_value (stats, "replays"), 3);
    cr_assert_eq (s_stats_value (stats, "replays_active"), 0);
    zframe_destroy (&stats);
    zsock_destroy (&reader);
    zsock_destroy (&writer);
    zactor_destroy (&s_actor);
    pond_store_server_destroy (&server);
    pond_store_destroy (&store);
}

//  ---------------------------------------------------------------------
//  The real process

static pid_t
s_start_process (int slot)
{
    char ready [600], log [600];
    snprintf (ready, sizeof ready, "%s/store.zpl", s_dir);
    snprintf (log, sizeof log, "%s/store.log", s_dir);
    unlink (ready);
    pid_t pid = pond_harness_spawn ("pond-store", log, "--data", s_dir, "--endpoint",
                                    s_endpoint, NULL);
    cr_assert_gt (pid, 0);
    s_pids [slot] = pid;
    cr_assert_eq (pond_harness_wait_file (ready, 10000), 0, "pond-store did not start; see %s",
                  log);
    //  The ready file tells where it listens and who it is
    zconfig_t *config = zconfig_load (ready);
    cr_assert_not_null (config);
    cr_assert_str_eq (zconfig_get (config, "store/endpoint", ""), s_endpoint);
    cr_assert_eq (atoi (zconfig_get (config, "store/pid", "0")), pid);
    zconfig_destroy (&config);
    return pid;
}

//  SIGTERM: a clean stop, exit code 0
static void
s_stop_process (int slot)
{
    int status = pond_harness_stop (s_pids [slot], SIGTERM);
    s_pids [slot] = 0;
    cr_assert (WIFEXITED (status), "pond-store did not exit by itself (status %d)", status);
    cr_assert_eq (WEXITSTATUS (status), 0);
}

Test (process, append_and_appended, .init = s_setup, .fini = s_teardown, .timeout = 30)
{
    s_start_process (0);
    zsock_t *dealer = s_dealer (s_endpoint);
    cr_assert_eq (zstr_send (dealer, POND_PING), 0);
    char *pong = zstr_recv (dealer);
    cr_assert_str_eq (pong, POND_PONG);
    zstr_free (&pong);

    pond_event_t *events [3] = {
        s_event ("QUACKED", "cust-1", 10), s_event ("BUTTON_CLICKED", "cust-1", 11),
        s_event ("QUACKED", "cust-2", 12)
    };
    pond_appended_t *reply = malloc (sizeof (pond_appended_t));
    s_send_append (dealer, 41, events, 3);
    cr_assert_eq (s_recv_appended (dealer, reply), 3, "one stored frame per new event");
    cr_assert_eq (reply->bid, 41);
    cr_assert_eq (reply->code, POND_CODE_OK);
    cr_assert_eq (reply->count, 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq (reply->seqs [i], (uint64_t) i + 1);
        cr_assert_not (reply->dups [i]);
    }
    //  Resent: same seqs, all dups, nothing to publish
    s_send_append (dealer, 42, events, 3);
    cr_assert_eq (s_recv_appended (dealer, reply), 0);
    cr_assert_eq (reply->bid, 42);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq (reply->seqs [i], (uint64_t) i + 1);
        cr_assert (reply->dups [i]);
    }
    free (reply);
    zframe_t *stats = s_stats (dealer);
    cr_assert_eq (s_stats_value (stats, "events"), 3);
    cr_assert_eq (s_stats_value (stats, "head"), 3);
    cr_assert_eq (s_stats_value (stats, "names/QUACKED"), 2);
    cr_assert_eq (s_stats_value (stats, "names/BUTTON_CLICKED"), 1);
    cr_assert_eq (s_stats_value (stats, "appended"), 3);
    cr_assert_eq (s_stats_value (stats, "dups"), 3);
    cr_assert_eq (s_stats_value (stats, "write_errors"), 0);
    cr_assert_eq (s_stats_value (stats, "replays"), 0);
    cr_assert_lt (s_stats_value (stats, "uptime_s"), 60);
    zframe_destroy (&stats);
    for (int i = 0; i < 3; i++)
        pond_event_destroy (&events [i]);
    zsock_destroy (&dealer);
    s_stop_process (0);
    char ready [600];
    snprintf (ready, sizeof ready, "%s/store.zpl", s_dir);
    cr_assert_neq (access (ready, F_OK), 0, "a clean stop removes store.zpl");
}

//  Send a message made of the given frames (NULL-terminated; sizes given)
static void
s_send_frames (zsock_t *dealer, int count, ...)
{
    va_list args;
    va_start (args, count);
    zmsg_t *msg = zmsg_new ();
    for (int i = 0; i < count; i++) {
        const void *data = va_arg (args, const void *);
        size_t size = va_arg (args, size_t);
        zmsg_addmem (msg, data, size);
    }
    va_end (args);
    cr_assert_eq (zmsg_send (&msg, dealer), 0);
}

Test (process, bad_input_gets_errors_and_changes_nothing, .init = s_setup,
      .fini = s_teardown, .timeout = 30)
{
    s_start_process (0);
    zsock_t *dealer = s_dealer (s_endpoint);
    pond_appended_t *reply = malloc (sizeof (pond_appended_t));
    char err [POND_ERR_SIZE];

    //  Garbage command, unknown command, empty frame
    const uint8_t garbage [] = { 0xc1, 0x00, 0xff, 0x80, 0x7f };
    s_send_frames (dealer, 2, garbage, sizeof garbage, garbage, sizeof garbage);
    s_expect_error (dealer, POND_CODE_NOT_FOUND, "unknown command");
    s_send_frames (dealer, 1, "FROBNICATE", (size_t) 10);
    s_expect_error (dealer, POND_CODE_NOT_FOUND, "FROBNICATE");
    s_send_frames (dealer, 1, "", (size_t) 0);
    s_expect_error (dealer, POND_CODE_NOT_FOUND, "unknown command");

    //  APPEND without body, with a truncated body, with an oversized body
    s_send_frames (dealer, 1, "APPEND", (size_t) 6);
    s_expect_error (dealer, POND_CODE_BAD_REQUEST, "APPEND");
    const uint8_t truncated [] = { 0x81, 0xa3, 'b', 'i' };      //  {"bi...
    s_send_frames (dealer, 2, "APPEND", (size_t) 6, truncated, sizeof truncated);
    s_expect_error (dealer, POND_CODE_BAD_REQUEST, "APPEND body");
    const uint8_t huge_claim [] = { 0xdf, 0xff, 0xff, 0xff, 0xff };     //  map of 4G pairs
    s_send_frames (dealer, 2, "APPEND", (size_t) 6, huge_claim, sizeof huge_claim);
    s_expect_error (dealer, POND_CODE_BAD_REQUEST, "APPEND body");
    size_t big_size = POND_BODY_MAX + 1000;
    uint8_t *big = calloc (1, big_size);
    s_send_frames (dealer, 2, "APPEND", (size_t) 6, big, big_size);
    s_expect_error (dealer, POND_CODE_TOO_LARGE, "limit");
    s_send_frames (dealer, 2, "REPLAY", (size_t) 6, big, big_size);
    s_expect_error (dealer, POND_CODE_TOO_LARGE, "limit");
    free (big);

    //  APPEND with no events, with an invalid event, with seq set
    pond_append_t header = { .bid = 5 };
    zframe_t *body = pond_append_encode (&header);
    s_send_frames (dealer, 2, "APPEND", (size_t) 6, zframe_data (body), zframe_size (body));
    s_recv_appended (dealer, reply);
    cr_assert_eq (reply->bid, 5);
    cr_assert_eq (reply->code, POND_CODE_BAD_REQUEST);

    pond_event_t *good = s_event ("QUACKED", "cust-1", 10);
    pond_event_t *bad_name = s_event ("QUACKED", "cust-1", 10);
    pond_event_t *with_seq = s_event ("QUACKED", "cust-1", 10);
    pond_event_set_seq (with_seq, 77);
    size_t good_size, seq_size;
    uint8_t *good_data = pond_event_encode (good, &good_size, err, sizeof err);
    uint8_t *seq_data = pond_event_encode (with_seq, &seq_size, err, sizeof err);
    //  Hand-made bad name: patch "QUACKED" to "quacked" inside the encoding
    size_t bad_size;
    uint8_t *bad_data = pond_event_encode (bad_name, &bad_size, err, sizeof err);
    uint8_t *where = memmem (bad_data, bad_size, "QUACKED", 7);
    cr_assert_not_null (where);
    memcpy (where, "quacked", 7);

    header.bid = 6;
    zframe_destroy (&body);
    body = pond_append_encode (&header);
    s_send_frames (dealer, 4, "APPEND", (size_t) 6, zframe_data (body), zframe_size (body),
                   good_data, good_size, bad_data, bad_size);
    //  One bad event fails only itself: the good one is stored
    cr_assert_eq (s_recv_appended (dealer, reply), 1);
    cr_assert_eq (reply->bid, 6);
    cr_assert_eq (reply->code, POND_CODE_OK, "%u: %s", reply->code, reply->reason);
    cr_assert_eq (reply->count, 2);
    cr_assert_eq (reply->codes_count, 2);
    cr_assert_eq (reply->codes [0], POND_CODE_OK);
    cr_assert_eq (reply->seqs [0], 1);
    cr_assert_not (reply->dups [0]);
    cr_assert_eq (reply->codes [1], POND_CODE_BAD_REQUEST);
    cr_assert_eq (reply->seqs [1], 0);
    cr_assert (strstr (reply->reasons [1], "name"), "reason: %s", reply->reasons [1]);
    cr_assert_str_empty (reply->reasons [0]);

    header.bid = 7;
    zframe_destroy (&body);
    body = pond_append_encode (&header);
    s_send_frames (dealer, 3, "APPEND", (size_t) 6, zframe_data (body), zframe_size (body),
                   seq_data, seq_size);
    cr_assert_eq (s_recv_appended (dealer, reply), 0);
    cr_assert_eq (reply->bid, 7);
    cr_assert_eq (reply->code, POND_CODE_OK);
    cr_assert_eq (reply->codes [0], POND_CODE_BAD_REQUEST);
    cr_assert (strstr (reply->reasons [0], "seq"), "reason: %s", reply->reasons [0]);

    //  Garbage in place of an event, and an event over 64 KiB
    header.bid = 8;
    zframe_destroy (&body);
    body = pond_append_encode (&header);
    s_send_frames (dealer, 3, "APPEND", (size_t) 6, zframe_data (body), zframe_size (body),
                   garbage, sizeof garbage);
    s_recv_appended (dealer, reply);
    cr_assert_eq (reply->code, POND_CODE_OK);
    cr_assert_eq (reply->codes [0], POND_CODE_BAD_REQUEST);
    uint8_t *huge_event = calloc (1, POND_EVENT_MAX_SIZE + 1);
    s_send_frames (dealer, 3, "APPEND", (size_t) 6, zframe_data (body), zframe_size (body),
                   huge_event, (size_t) POND_EVENT_MAX_SIZE + 1);
    s_recv_appended (dealer, reply);
    cr_assert_eq (reply->code, POND_CODE_OK);
    cr_assert_eq (reply->codes [0], POND_CODE_TOO_LARGE);
    free (huge_event);

    //  Requests of the wrong shape
    s_send_frames (dealer, 2, "STATS", (size_t) 5, "x", (size_t) 1);
    s_expect_error (dealer, POND_CODE_BAD_REQUEST, "STATS");
    s_send_frames (dealer, 2, "PING", (size_t) 4, "x", (size_t) 1);
    s_expect_error (dealer, POND_CODE_BAD_REQUEST, "PING");
    s_send_frames (dealer, 1, "REPLAY", (size_t) 6);
    s_expect_error (dealer, POND_CODE_BAD_REQUEST, "REPLAY");
    s_send_frames (dealer, 2, "REPLAY", (size_t) 6, garbage, sizeof garbage);
    s_expect_error (dealer, POND_CODE_BAD_REQUEST, "REPLAY body");
    s_send_frames (dealer, 2, "CREDIT", (size_t) 6, truncated, sizeof truncated);
    s_expect_error (dealer, POND_CODE_BAD_REQUEST, "CREDIT body");
    s_send_frames (dealer, 3, "CANCEL", (size_t) 6, "a", (size_t) 1, "b", (size_t) 1);
    s_expect_error (dealer, POND_CODE_BAD_REQUEST, "CANCEL");
    //  A REPLAY whose rid is readable but credit is not gets an END
    pond_replay_req_t request = { .rid = 9, .credit = 0 };
    s_send_replay (dealer, &request);
    pond_end_t end;
    uint64_t seqs [4];
    cr_assert_eq (s_recv_stream (dealer, 9, seqs, 4, NULL, &end, NULL), -1);
    cr_assert_eq (end.code, POND_CODE_BAD_REQUEST);
    cr_assert (strstr (end.reason, "credit"), "reason: %s", end.reason);

    //  Nothing of all that was stored but the one good event, and the
    //  store still serves
    zframe_t *stats = s_stats (dealer);
    cr_assert_eq (s_stats_value (stats, "head"), 1);
    cr_assert_geq (s_stats_value (stats, "malformed"), 20);
    zframe_destroy (&stats);
    uint64_t seq;
    s_socket_append (dealer, 10, &good, 1, &seq);
    cr_assert_eq (seq, 1);
    //  Its id with another ts: 409 for that event alone, nothing stored
    pond_event_t *pair [2] = { pond_event_dup (good), s_event ("QUACKED", "cust-1", 11) };
    pond_event_set_ts (pair [0], 11);
    s_send_append (dealer, 11, pair, 2);
    cr_assert_eq (s_recv_appended (dealer, reply), 1);
    cr_assert_eq (reply->code, POND_CODE_OK);
    cr_assert_eq (reply->codes [0], POND_CODE_CONFLICT, "got %u", (unsigned) reply->codes [0]);
    cr_assert_not (reply->dups [0]);
    cr_assert (strstr (reply->reasons [0], "different event"), "%s", reply->reasons [0]);
    cr_assert_eq (reply->codes [1], POND_CODE_OK);
    cr_assert_eq (reply->seqs [1], 2);
    pond_event_destroy (&pair [0]);
    pond_event_destroy (&pair [1]);

    free (good_data);
    free (seq_data);
    free (bad_data);
    zframe_destroy (&body);
    pond_event_destroy (&good);
    pond_event_destroy (&bad_name);
    pond_event_destroy (&with_seq);
    free (reply);
    zsock_destroy (&dealer);
    s_stop_process (0);

    //  Each cause is logged once, not once per message
    char log [600];
    snprintf (log, sizeof log, "%s/store.log", s_dir);
    int exit_code;
    char *output = pond_harness_run (&exit_code, "grep -c 'unknown command' '%s'", log);
    cr_assert_not_null (output);
    cr_assert_eq (atoi (output), 1, "unknown commands logged %s times", output);
    free (output);
}

Test (server, packed_replay_sends_big_chunks, .init = s_setup, .fini = s_teardown)
{
    pond_store_t *store = pond_store_new (s_db);
    for (int g = 0; g < 80; g++) {
        pond_event_t *events [64];
        for (int i = 0; i < 64; i++)
            events [i] = s_event ("QUACKED", "cust-1", 1000 + g * 64 + i);
        s_append (store, events, 64, NULL, NULL);
    }
    pond_store_server_t *server;
    s_server_start (store, &server, 300);
    zsock_t *dealer = s_dealer (s_endpoint);
    static uint64_t seqs [POND_CHUNK_PACKED_EVENTS];
    uint32_t left;
    pond_end_t end;

    //  One frame per CHUNK, up to POND_CHUNK_PACKED_EVENTS; credit paces it
    pond_replay_req_t request = { .rid = 9, .credit = 1, .pack = true };
    s_send_replay (dealer, &request);
    zmsg_t *msg = s_recv (dealer, 5000);
    cr_assert_not_null (msg);
    cr_assert_eq (zmsg_size (msg), 3, "CHUNK, header, one frame of events");
    zmsg_destroy (&msg);
    s_send_credit (dealer, POND_CREDIT, 9, 3);
    uint64_t expect = POND_CHUNK_PACKED_EVENTS + 1;
    int expected_counts [] = { POND_CHUNK_PACKED_EVENTS, 5120 - 2 * POND_CHUNK_PACKED_EVENTS };
    for (int c = 0; c < 2; c++) {
        int count = s_recv_stream (dealer, 9, seqs, POND_CHUNK_PACKED_EVENTS, &left, &end, NULL);
        cr_assert_eq (count, expected_counts [c]);
        for (int i = 0; i < count; i++)
            cr_assert_eq (seqs [i], expect++);
    }
    cr_assert_eq (s_recv_stream (dealer, 9, seqs, POND_CHUNK_PACKED_EVENTS, &left, &end, NULL),
                  -1);
    cr_assert_eq (end.code, POND_CODE_OK, "END %u: %s", end.code, end.reason);
    cr_assert_eq (end.count, 5120);

    //  Cancelled with chunks built and not taken: END counts what was sent
    request.rid = 10;
    request.credit = 2;
    s_send_replay (dealer, &request);
    cr_assert_eq (s_recv_stream (dealer, 10, seqs, POND_CHUNK_PACKED_EVENTS, &left, &end, NULL),
                  POND_CHUNK_PACKED_EVENTS);
    s_send_credit (dealer, POND_CANCEL, 10, 0);
    int chunks = 0, count;
    while ((count = s_recv_stream (dealer, 10, seqs, POND_CHUNK_PACKED_EVENTS, &left, &end,
                                   NULL)) >= 0)
        chunks++;
    cr_assert_leq (chunks, 1, "no more than the credit");
    cr_assert_eq (end.count, (uint64_t) (chunks + 1) * POND_CHUNK_PACKED_EVENTS);

    //  A CREDIT for the cancelled rid is ignored; a bad one is refused
    s_send_credit (dealer, POND_CREDIT, 10, 1);
    s_send_frames (dealer, 2, "CREDIT", (size_t) 6, "\x81", (size_t) 1);
    s_expect_error (dealer, POND_CODE_BAD_REQUEST, "CREDIT body");

    //  Chunks still queued when the server goes: their buffers outlive it
    request.rid = 11;
    request.credit = 3;
    s_send_replay (dealer, &request);
    zclock_sleep (100);
    zactor_destroy (&s_actor);
    pond_store_server_destroy (&server);
    zsock_destroy (&dealer);
    pond_store_destroy (&store);
}

Test (process, replay_with_credit, .init = s_setup, .fini = s_teardown, .timeout = 30)
{
    s_start_process (0);
    zsock_t *dealer = s_dealer (s_endpoint);
    //  1200 events: 1024 + 176
    pond_event_t *events [POND_APPEND_MAX];
    for (int g = 0, bid = 1; g < 1200; bid++) {
        int count = 1200 - g < POND_APPEND_MAX? 1200 - g: POND_APPEND_MAX;
        for (int i = 0; i < count; i++)
            events [i] = s_event ("QUACKED", "cust-1", 5000 - g - i);
        s_socket_append (dealer, bid, events, count, NULL);
        for (int i = 0; i < count; i++)
            pond_event_destroy (&events [i]);
        g += count;
    }
    uint64_t *seqs = calloc (1200, sizeof (uint64_t));
    uint32_t left;
    pond_end_t end;
    pond_replay_req_t request = { .rid = 33, .credit = 1 };
    s_send_replay (dealer, &request);
    cr_assert_eq (s_recv_stream (dealer, 33, seqs, 1200, &left, &end, NULL), 512);
    cr_assert_eq (left, 0);
    cr_assert_eq (seqs [0], 1);
    cr_assert_eq (seqs [511], 512);
    cr_assert_null (s_recv (dealer, 400), "no CHUNK without credit");

    s_send_credit (dealer, POND_CREDIT, 33, 1);
    cr_assert_eq (s_recv_stream (dealer, 33, seqs + 512, 688, &left, &end, NULL), 512);
    cr_assert_eq (left, 0);
    cr_assert_null (s_recv (dealer, 300), "one credit, one CHUNK");
    s_send_credit (dealer, POND_CREDIT, 33, 5);
    cr_assert_eq (s_recv_stream (dealer, 33, seqs + 1024, 176, &left, &end, NULL), 176);
    cr_assert_eq (left, 4);
    cr_assert_eq (s_recv_stream (dealer, 33, seqs, 0, &left, &end, NULL), -1);
    cr_assert_eq (end.code, POND_CODE_OK);
    cr_assert_eq (end.count, 1200);
    for (int i = 0; i < 1200; i++)
        cr_assert_eq (seqs [i], (uint64_t) i + 1);

    //  By name the order is by ts: the events were sent with falling ts
    request = (pond_replay_req_t) { .rid = 34, .credit = 10, .names_count = 1, .limit = 5 };
    strcpy (request.names [0], "QUACKED");
    s_send_replay (dealer, &request);
    cr_assert_eq (s_recv_stream (dealer, 34, seqs, 1200, &left, &end, NULL), 5);
    cr_assert_eq (seqs [0], 1200);
    cr_assert_eq (seqs [4], 1196);
    cr_assert_eq (s_recv_stream (dealer, 34, seqs, 0, &left, &end, NULL), -1);
    cr_assert_eq (end.count, 5);

    //  CANCEL ends a replay early with an END
    request = (pond_replay_req_t) { .rid = 35, .credit = 1 };
    s_send_replay (dealer, &request);
    cr_assert_eq (s_recv_stream (dealer, 35, seqs, 1200, &left, &end, NULL), 512);
    s_send_credit (dealer, POND_CANCEL, 35, 0);
    cr_assert_eq (s_recv_stream (dealer, 35, seqs, 0, &left, &end, NULL), -1);
    cr_assert_eq (end.count, 512);
    cr_assert_eq (end.code, POND_CODE_CANCELLED, "END after CANCEL: %u", end.code);
    cr_assert (strstr (end.reason, "cancel"), "reason: %s", end.reason);
    //  CREDIT for a replay that is over is ignored
    s_send_credit (dealer, POND_CREDIT, 35, 1);
    cr_assert_null (s_recv (dealer, 200));
    zframe_t *stats = s_stats (dealer);
    cr_assert_eq (s_stats_value (stats, "replays"), 3);
    cr_assert_eq (s_stats_value (stats, "replays_active"), 0);
    zframe_destroy (&stats);
    free (seqs);
    zsock_destroy (&dealer);
    s_stop_process (0);
}

//  kill -9 during a stream of APPENDs: whatever was answered survives
#define KILL_BATCH      4
#define KILL_INFLIGHT   16
#define KILL_MAX        4096

Test (process, kill_9_loses_nothing_answered, .init = s_setup, .fini = s_teardown,
      .timeout = 60)
{
    s_start_process (0);
    zsock_t *dealer = s_dealer (s_endpoint);
    //  Ids of every event sent, by bid; seq answered (0 = no answer)
    uint8_t (*ids) [POND_ID_SIZE] = calloc (KILL_MAX * KILL_BATCH, POND_ID_SIZE);
    uint64_t *answered = calloc (KILL_MAX * KILL_BATCH, sizeof (uint64_t));
    pond_appended_t *reply = malloc (sizeof (pond_appended_t));
    uint64_t bid = 0;
    size_t inflight = 0, replies = 0, answered_events = 0;
    bool killed = false;
    while (true) {
        while (!killed && inflight < KILL_INFLIGHT && bid < KILL_MAX) {
            pond_event_t *events [KILL_BATCH];
            for (int i = 0; i < KILL_BATCH; i++) {
                events [i] = s_event ("QUACKED", "cust-1", 1000 + bid);
                memcpy (ids [bid * KILL_BATCH + i], pond_event_id (events [i]), POND_ID_SIZE);
            }
            s_send_append (dealer, bid++, events, KILL_BATCH);
            for (int i = 0; i < KILL_BATCH; i++)
                pond_event_destroy (&events [i]);
            inflight++;
        }
        if (!killed && replies >= 150) {
            //  Mid-stream: APPENDs are queued and being written
            pond_harness_stop (s_pids [0], SIGKILL);
            s_pids [0] = 0;
            killed = true;
        }
        //  Before the kill, wait for answers; after, collect what arrived
        zmsg_t *msg = s_recv (dealer, killed? 200: 5000);
        if (!msg) {
            cr_assert (killed, "pond-store stopped answering before the kill");
            break;
        }
        zframe_t *command = zmsg_pop (msg);
        zframe_t *body = zmsg_pop (msg);
        char err [POND_ERR_SIZE];
        cr_assert (pond_proto_is (command, POND_APPENDED));
        cr_assert_eq (pond_appended_decode (body, reply, err, sizeof err), 0, "%s", err);
        cr_assert_eq (reply->code, POND_CODE_OK);
        cr_assert_eq (reply->count, KILL_BATCH);
        for (int i = 0; i < KILL_BATCH; i++) {
            answered [reply->bid * KILL_BATCH + i] = reply->seqs [i];
            answered_events++;
        }
        zframe_destroy (&command);
        zframe_destroy (&body);
        zmsg_destroy (&msg);
        replies++;
        inflight--;
    }
    zsock_destroy (&dealer);
    cr_assert_geq (answered_events, 150 * KILL_BATCH);

    //  Restart on the same data: head covers every answer, no gap
    s_start_process (1);
    dealer = s_dealer (s_endpoint);
    zframe_t *stats = s_stats (dealer);
    uint64_t head = s_stats_value (stats, "head");
    cr_assert_eq (s_stats_value (stats, "events"), head);
    cr_assert_eq (s_stats_value (stats, "names/QUACKED"), head);
    zframe_destroy (&stats);
    cr_assert_geq (head, answered_events);
    cr_assert_leq (head, bid * KILL_BATCH);

    uint8_t (*log_ids) [POND_ID_SIZE] = calloc (head + 1, POND_ID_SIZE);
    uint64_t *seqs = calloc (head + 1, sizeof (uint64_t));
    pond_replay_req_t request = { .rid = 1, .credit = POND_CREDIT_MAX };
    s_send_replay (dealer, &request);
    size_t total = 0;
    pond_end_t end;
    int count;
    while ((count = s_recv_stream (dealer, 1, seqs + total, head - total, NULL, &end,
                                   log_ids + total)) >= 0)
        total += count;
    cr_assert_eq (end.code, POND_CODE_OK);
    cr_assert_eq (total, head);
    for (size_t i = 0; i < total; i++)
        cr_assert_eq (seqs [i], i + 1, "gap in the log at %zu", i);
    for (size_t i = 0; i < bid * KILL_BATCH; i++) {
        if (!answered [i])
            continue;
        cr_assert_leq (answered [i], head);
        cr_assert_eq (memcmp (log_ids [answered [i] - 1], ids [i], POND_ID_SIZE), 0,
                      "answered seq %lu holds another event", (unsigned long) answered [i]);
    }
    //  The head continues with no gap; an answered event resent is a dup
    pond_event_t *event = s_event ("QUACKED", "cust-1", 1);
    uint64_t seq;
    s_socket_append (dealer, 999999, &event, 1, &seq);
    cr_assert_eq (seq, head + 1);
    pond_event_set_id (event, ids [0]);
    pond_event_set_ts (event, 1000);           //  the same event as ids [0]
    s_send_append (dealer, 1000000, &event, 1);
    s_recv_appended (dealer, reply);
    cr_assert (reply->dups [0]);
    cr_assert_eq (reply->seqs [0], answered [0]);
    pond_event_destroy (&event);

    free (log_ids);
    free (seqs);
    free (ids);
    free (answered);
    free (reply);
    zsock_destroy (&dealer);
    s_stop_process (1);
}

Test (process, command_line, .init = s_setup, .fini = s_teardown, .timeout = 30)
{
    int code;
    char *output = pond_harness_run (&code, "%s/pond-store --help", POND_BIN_DIR);
    cr_assert_eq (code, 0);
    cr_assert (strstr (output, "--data") && strstr (output, "--endpoint")
               && strstr (output, "RocksDB"), "help: %s", output);
    free (output);
    output = pond_harness_run (&code, "%s/pond-store --no-such-option 2>&1", POND_BIN_DIR);
    cr_assert_eq (code, 2);
    free (output);
    output = pond_harness_run (&code, "%s/pond-store --data 2>&1", POND_BIN_DIR);
    cr_assert_eq (code, 2);
    free (output);

    //  A second store on the same data refuses to start and says why
    s_start_process (0);
    output = pond_harness_run (&code, "%s/pond-store --data '%s' --endpoint '%s-2' 2>&1",
                               POND_BIN_DIR, s_dir, s_endpoint);
    cr_assert_eq (code, 1);
    cr_assert (strstr (output, "stop it first"), "output: %s", output);
    free (output);
    //  ... and the first still serves
    zsock_t *dealer = s_dealer (s_endpoint);
    cr_assert_eq (zstr_send (dealer, POND_PING), 0);
    char *pong = zstr_recv (dealer);
    cr_assert_str_eq (pong, POND_PONG);
    zstr_free (&pong);
    zsock_destroy (&dealer);
    s_stop_process (0);
}

//  An id reused for a different event is a conflict, not a duplicate
Test (store, reused_id_for_another_event_is_a_conflict, .init = s_setup, .fini = s_teardown)
{
    pond_store_t *store = pond_store_new (s_db);
    cr_assert_not_null (store);
    char err [POND_ERR_SIZE];
    pond_event_t *first = s_event ("QUACKED", "cust-1", 1000);
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
        cr_assert_eq (seqs [i], i < 2? 1: 0, "event %d: seq %lu", i, (unsigned long) seqs [i]);
        pond_event_destroy (&events [i]);
    }
    //  In one group too: the second use of a fresh id for another event
    pond_event_t *fresh = s_event ("QUACKED", "cust-1", 2000);
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
    store = pond_store_new (s_db);
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
Test (store, reused_id_is_a_conflict_in_a_store_without_digests, .init = s_setup,
      .fini = s_teardown)
{
    pond_store_t *store = pond_store_new (s_db);
    cr_assert_not_null (store);
    pond_event_t *first = s_event ("QUACKED", "cust-1", 1000);
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
                    (const char *) pond_event_id (first), POND_ID_SIZE,
                    (const char *) seq_value, 8, &err);
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
