/*  test_cursor: the replay cursor (pond_cursor) over a temporary store:
    orders, bounds, snapshots, chunk caps, packed chunks.
*/
#define _GNU_SOURCE
#include <criterion/criterion.h>

#include "pond_store_fixture.h"

//  A small history with ties, out-of-order ts and a prefix trap
static void
s_history (pond_store_t *store)
{
    cr_assert_eq (fixture_append_one (store, "QUACKED", "cust-1", 300), 1);
    cr_assert_eq (fixture_append_one (store, "CLICKED", "cust-1", 100), 2);
    cr_assert_eq (fixture_append_one (store, "QUACKED", "cust-2", 100), 3);
    cr_assert_eq (fixture_append_one (store, "CLICKED", "cust-2", 200), 4);
    cr_assert_eq (fixture_append_one (store, "QUACKED", "cust-10", 200), 5);
    cr_assert_eq (fixture_append_one (store, "OTHER", "cust-1", 150), 6);
    cr_assert_eq (fixture_append_one (store, "QUACKED", "cust-1", 100), 7);
    cr_assert_eq (fixture_append_one (store, "QUACKED_LOUDLY", "cust-1", 100), 8);
    cr_assert_eq (fixture_append_one (store, "QUACKEC", "cust-1", 100), 9);
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

Test (replay, by_names_ordered_by_ts_then_seq, .init = fixture_setup, .fini = fixture_teardown)
{
    pond_store_t *store = pond_store_new (fixture_db);
    s_history (store);
    pond_replay_req_t request = s_by_names ("QUACKED", "CLICKED", 0, 0);
    uint64_t seqs [16], tss [16];
    char names [16][POND_NAME_MAX + 1];
    size_t count = fixture_replay_all (store, &request, seqs, tss, names, 16);
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
    cr_assert_eq (fixture_replay_all (store, &request, NULL, NULL, NULL, 16), 4);
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

Test (replay, by_names_in_seq_order_for_catch_up, .init = fixture_setup, .fini = fixture_teardown)
{
    pond_store_t *store = pond_store_new (fixture_db);
    s_history (store);
    pond_replay_req_t request = s_by_names ("QUACKED", "CLICKED", 0, 0);
    strcpy (request.order, "seq");
    request.from_seq = 2;
    uint64_t seqs [16];
    char names [16][POND_NAME_MAX + 1];
    size_t count = fixture_replay_all (store, &request, seqs, NULL, names, 16);
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
    for (int batch = 0; batch < 330; batch++) {    //  more than one fill skips
        pond_event_t *events [64];
        for (int i = 0; i < 64; i++)
            events [i] = fixture_event ("NOISE", "cust-9", 1000);
        fixture_append (store, events, 64, NULL, NULL);
    }
    fixture_append_one (store, "CLICKED", "cust-9", 5);
    request = s_by_names ("CLICKED", NULL, 0, 0);
    strcpy (request.order, "seq");
    count = fixture_replay_all (store, &request, seqs, NULL, NULL, 16);
    cr_assert_eq (count, 3);
    cr_assert_eq (seqs [2], 9 + 330 * 64 + 1);
    pond_store_destroy (&store);
}

Test (replay, time_bounds_are_from_inclusive_to_exclusive, .init = fixture_setup,
      .fini = fixture_teardown)
{
    pond_store_t *store = pond_store_new (fixture_db);
    s_history (store);
    uint64_t seqs [16], tss [16];
    pond_replay_req_t request = s_by_names ("QUACKED", "CLICKED", 100, 200);
    cr_assert_eq (fixture_replay_all (store, &request, seqs, tss, NULL, 16), 3);
    for (int i = 0; i < 3; i++)
        cr_assert_eq (tss [i], 100);

    request = s_by_names ("QUACKED", "CLICKED", 200, 300);
    cr_assert_eq (fixture_replay_all (store, &request, seqs, tss, NULL, 16), 2);
    cr_assert_eq (seqs [0], 4);
    cr_assert_eq (seqs [1], 5);

    request = s_by_names ("QUACKED", "CLICKED", 101, 0);
    cr_assert_eq (fixture_replay_all (store, &request, seqs, tss, NULL, 16), 3);
    cr_assert_eq (seqs [0], 4);
    cr_assert_eq (seqs [2], 1);

    request = s_by_names ("QUACKED", NULL, 300, 301);
    cr_assert_eq (fixture_replay_all (store, &request, seqs, NULL, NULL, 16), 1);
    cr_assert_eq (seqs [0], 1);

    request = s_by_names ("QUACKED", NULL, 299, 300);
    cr_assert_eq (fixture_replay_all (store, &request, seqs, NULL, NULL, 16), 0);
    request = s_by_names ("QUACKED", NULL, 301, 0);
    cr_assert_eq (fixture_replay_all (store, &request, seqs, NULL, NULL, 16), 0);
    pond_store_destroy (&store);
}

Test (replay, by_entity_ordered_by_seq, .init = fixture_setup, .fini = fixture_teardown)
{
    pond_store_t *store = pond_store_new (fixture_db);
    s_history (store);
    uint64_t seqs [16];
    pond_replay_req_t request = { .credit = 1 };
    strcpy (request.entity, "cust-1");
    uint64_t expect [] = { 1, 2, 6, 7, 8, 9 };
    cr_assert_eq (fixture_replay_all (store, &request, seqs, NULL, NULL, 16), 6);
    for (int i = 0; i < 6; i++)
        cr_assert_eq (seqs [i], expect [i], "position %d: seq %lu", i, (unsigned long) seqs [i]);
    strcpy (request.entity, "cust-10");
    cr_assert_eq (fixture_replay_all (store, &request, seqs, NULL, NULL, 16), 1);
    cr_assert_eq (seqs [0], 5);
    strcpy (request.entity, "cust-");
    cr_assert_eq (fixture_replay_all (store, &request, seqs, NULL, NULL, 16), 0);
    pond_store_destroy (&store);
}

Test (replay, seq_range_and_limit, .init = fixture_setup, .fini = fixture_teardown)
{
    pond_store_t *store = pond_store_new (fixture_db);
    s_history (store);
    uint64_t seqs [16];
    pond_replay_req_t request = { .credit = 1, .from_seq = 3, .to_seq = 6 };
    cr_assert_eq (fixture_replay_all (store, &request, seqs, NULL, NULL, 16), 3);
    cr_assert_eq (seqs [0], 3);
    cr_assert_eq (seqs [2], 5);
    request = (pond_replay_req_t) { .credit = 1 };
    cr_assert_eq (fixture_replay_all (store, &request, seqs, NULL, NULL, 16), 9);
    for (int i = 0; i < 9; i++)
        cr_assert_eq (seqs [i], (uint64_t) i + 1);
    request = (pond_replay_req_t) { .credit = 1, .from_seq = 9 };
    cr_assert_eq (fixture_replay_all (store, &request, seqs, NULL, NULL, 16), 1);
    request = (pond_replay_req_t) { .credit = 1, .from_seq = 10 };
    cr_assert_eq (fixture_replay_all (store, &request, seqs, NULL, NULL, 16), 0);

    //  limit, in each mode
    request = (pond_replay_req_t) { .credit = 1, .from_seq = 2, .limit = 3 };
    cr_assert_eq (fixture_replay_all (store, &request, seqs, NULL, NULL, 16), 3);
    cr_assert_eq (seqs [2], 4);
    request = s_by_names ("QUACKED", "CLICKED", 0, 0);
    request.limit = 2;
    cr_assert_eq (fixture_replay_all (store, &request, seqs, NULL, NULL, 16), 2);
    cr_assert_eq (seqs [0], 2);
    cr_assert_eq (seqs [1], 3);
    request = (pond_replay_req_t) { .credit = 1, .limit = 4 };
    strcpy (request.entity, "cust-1");
    cr_assert_eq (fixture_replay_all (store, &request, seqs, NULL, NULL, 16), 4);
    cr_assert_eq (seqs [3], 7);
    //  limit larger than the result changes nothing
    request.limit = 100;
    cr_assert_eq (fixture_replay_all (store, &request, seqs, NULL, NULL, 16), 6);
    pond_store_destroy (&store);
}

Test (replay, sees_a_snapshot, .init = fixture_setup, .fini = fixture_teardown)
{
    pond_store_t *store = pond_store_new (fixture_db);
    s_history (store);
    pond_replay_req_t log = { .credit = 1 };
    pond_replay_req_t names = s_by_names ("QUACKED", NULL, 0, 0);
    pond_replay_req_t entity = { .credit = 1 };
    strcpy (entity.entity, "cust-1");
    pond_cursor_t *replays [3] = { pond_cursor_new (store, &log), pond_cursor_new (store, &names),
                                   pond_cursor_new (store, &entity) };
    //  Read one event of the log replay, then store more
    zmsg_t *msg = zmsg_new ();
    cr_assert_eq (pond_cursor_fill (replays [0], msg, 1, POND_CHUNK_BYTES), 1);
    zmsg_destroy (&msg);
    for (int i = 0; i < 5; i++)
        fixture_append_one (store, "QUACKED", "cust-1", 50 + i);
    size_t expect [3] = { 8, 4, 6 };
    for (int r = 0; r < 3; r++) {
        msg = zmsg_new ();
        size_t total = 0;
        int count;
        while ((count = pond_cursor_fill (replays [r], msg, POND_CHUNK_EVENTS, POND_CHUNK_BYTES))
               > 0)
            total += count;
        cr_assert_eq (count, 0);
        uint64_t seqs [32];
        cr_assert_eq (fixture_drain_events (msg, seqs, NULL, NULL, 32), total);
        cr_assert_eq (total, expect [r], "replay %d saw %zu events", r, total);
        for (size_t i = 0; i < total; i++)
            cr_assert_leq (seqs [i], 9, "replay %d saw seq %lu, stored after it began", r,
                           (unsigned long) seqs [i]);
        zmsg_destroy (&msg);
        pond_cursor_destroy (&replays [r]);
    }
    //  A new replay sees them
    cr_assert_eq (fixture_replay_all (store, &names, NULL, NULL, NULL, 32), 9);
    pond_store_destroy (&store);
}

Test (replay, chunk_caps, .init = fixture_setup, .fini = fixture_teardown)
{
    pond_store_t *store = pond_store_new (fixture_db);
    //  1200 small events in groups of 60
    for (int g = 0; g < 20; g++) {
        pond_event_t *events [60];
        for (int i = 0; i < 60; i++)
            events [i] = fixture_event ("QUACKED", "cust-1", 1000 + g * 60 + i);
        fixture_append (store, events, 60, NULL, NULL);
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
        pond_event_t *event = fixture_event ("LOUD", "cust-9", 10 + i);
        cr_assert_eq (pond_event_set_data_json (event, json, err, sizeof err), 0, "%s", err);
        fixture_append (store, &event, 1, NULL, NULL);
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
        cr_assert (count == 0 || count == 3 || (count == 1 && total == 9), "fill gave %d events",
                   count);
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

Test (replay, by_name_covers_the_event, .init = fixture_setup, .fini = fixture_teardown)
{
    //  Layout: each by_name entry holds the stored event, byte for byte
    //  what the log holds at its seq
    pond_store_t *store = pond_store_new (fixture_db);
    s_history (store);
    rocksdb_readoptions_t *options = rocksdb_readoptions_create ();
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf (pond_store_db (store), options,
                                                         pond_store_cf (store, POND_CF_BY_NAME));
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
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf (pond_store_db (store), options,
                                                         pond_store_cf (store, POND_CF_BY_NAME));
    size_t entries = 0;
    for (rocksdb_iter_seek_to_first (it); rocksdb_iter_valid (it); rocksdb_iter_next (it)) {
        size_t klen;
        const char *key = rocksdb_iter_key (it, &klen);
        char *err = NULL;
        rocksdb_put_cf (pond_store_db (store), write, pond_store_cf (store, POND_CF_BY_NAME), key,
                        klen, "", 0, &err);
        cr_assert_null (err);
        entries++;
    }
    rocksdb_iter_destroy (it);
    rocksdb_writeoptions_destroy (write);
    rocksdb_readoptions_destroy (options);
    return entries;
}

Test (replay, old_by_name_entries_read_the_log, .init = fixture_setup, .fini = fixture_teardown)
{
    pond_store_t *store = pond_store_new (fixture_db);
    s_history (store);
    cr_assert_eq (s_uncover_by_name (store), 9);
    //  Same events, same order as from the covering index
    pond_replay_req_t request = s_by_names ("QUACKED", "CLICKED", 0, 0);
    uint64_t seqs [16], tss [16];
    size_t count = fixture_replay_all (store, &request, seqs, tss, NULL, 16);
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

Test (replay, packed_chunks, .init = fixture_setup, .fini = fixture_teardown)
{
    pond_store_t *store = pond_store_new (fixture_db);
    for (int g = 0; g < 20; g++) {
        pond_event_t *events [60];
        for (int i = 0; i < 60; i++)
            events [i] = fixture_event (i % 2 ? "QUACKED" : "CLICKED", "cust-1", 1000 + g * 60 + i);
        fixture_append (store, events, 60, NULL, NULL);
    }
    //  Every mode: the same events in the same order, packed or not
    pond_replay_req_t requests [3] = { { .credit = 1 },
                                       s_by_names ("QUACKED", "CLICKED", 1100, 0),
                                       { .credit = 1 } };
    strcpy (requests [2].entity, "cust-1");
    for (int r = 0; r < 3; r++) {
        uint64_t plain [1200], packed [1200];
        size_t plain_count = fixture_replay_all (store, &requests [r], plain, NULL, NULL, 1200);
        requests [r].pack = true;
        size_t packed_count = fixture_replay_all (store, &requests [r], packed, NULL, NULL, 1200);
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
        cr_assert_eq (zmsg_size (msg), expect [i] ? 1 : 0);
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

Test (replay, fill_buffer_packs_into_the_callers_buffer, .init = fixture_setup,
      .fini = fixture_teardown)
{
    pond_store_t *store = pond_store_new (fixture_db);
    for (int g = 0; g < 10; g++) {
        pond_event_t *events [60];
        for (int i = 0; i < 60; i++)
            events [i] = fixture_event (i % 2 ? "QUACKED" : "CLICKED", "cust-1", 1000 + g * 60 + i);
        fixture_append (store, events, 60, NULL, NULL);
    }
    //  The same events, in the same order, as unpacked fills
    pond_replay_req_t request = s_by_names ("QUACKED", "CLICKED", 1100, 0);
    uint64_t plain [600];
    size_t plain_count = fixture_replay_all (store, &request, plain, NULL, NULL, 600);
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
        cr_assert_eq (fixture_drain_events (msg, seqs, NULL, NULL, 128), (size_t) count);
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

Test (replay, seq_order_filter_reads_names_of_any_event, .init = fixture_setup,
      .fini = fixture_teardown)
{
    //  The names filter of order "seq" peeks at each stored event's name:
    //  names longer than 31 bytes (msgpack str 8), events with source,
    //  causation, meta and data, all found; an unreadable event fails
    pond_store_t *store = pond_store_new (fixture_db);
    const char *long_name = "A_VERY_LONG_EVENT_NAME_OF_FORTY_BYTES_XX";
    cr_assert_eq (strlen (long_name), 40);
    char err [POND_ERR_SIZE];
    for (int i = 0; i < 30; i++) {
        pond_event_t *event = fixture_event (i % 3 == 0   ? long_name
                                             : i % 3 == 1 ? "QUACKED"
                                                          : "OTHER",
                                             "cust-1", 100 + i);
        if (i % 2) {
            uint8_t cause [POND_ID_SIZE] = { 1, 2, 3 };
            pond_event_set_causation (event, cause);
            pond_event_set_source (event, "silo-7");
            cr_assert_eq (
                pond_event_set_meta_json (event, "{\"firmware\":\"2.1\"}", err, sizeof err), 0,
                "%s", err);
            cr_assert_eq (
                pond_event_set_data_json (event, "{\"a\":{\"b\":[1,2,3]}}", err, sizeof err), 0,
                "%s", err);
        }
        fixture_append (store, &event, 1, NULL, NULL);
    }
    pond_replay_req_t request = s_by_names (long_name, "QUACKED", 0, 0);
    strcpy (request.order, "seq");
    uint64_t seqs [32];
    char names [32][POND_NAME_MAX + 1];
    size_t count = fixture_replay_all (store, &request, seqs, NULL, names, 32);
    cr_assert_eq (count, 20);
    for (size_t i = 0; i < count; i++) {
        cr_assert_eq ((seqs [i] - 1) % 3 != 2, true);
        cr_assert_str_eq (names [i], (seqs [i] - 1) % 3 == 0 ? long_name : "QUACKED");
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
