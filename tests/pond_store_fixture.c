/*  pond_store_fixture: the temporary store and helpers shared by
    test_store, test_cursor and test_store_server.
*/
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <signal.h>

#include "pond_store_fixture.h"

char *fixture_dir;
char fixture_db [512];
char fixture_endpoint [512];
pid_t fixture_pids [4];
zactor_t *fixture_actor;    //  an in-process server, if a test runs one

void
fixture_setup (void)
{
    fixture_dir = pond_harness_tempdir ();
    cr_assert_not_null (fixture_dir);
    snprintf (fixture_db, sizeof fixture_db, "%s/store", fixture_dir);
    snprintf (fixture_endpoint, sizeof fixture_endpoint, "ipc://%s/store.ipc", fixture_dir);
    memset (fixture_pids, 0, sizeof fixture_pids);
}

void
fixture_teardown (void)
{
    zactor_destroy (&fixture_actor);
    for (size_t i = 0; i < sizeof fixture_pids / sizeof fixture_pids [0]; i++)
        if (fixture_pids [i] > 0)
            pond_harness_stop (fixture_pids [i], SIGKILL);
    pond_harness_rmtree (fixture_dir);
    free (fixture_dir);
    fixture_dir = NULL;
}

pond_event_t *
fixture_event (const char *name, const char *entity, uint64_t ts)
{
    pond_event_t *event = pond_event_new (name, entity);
    cr_assert_not_null (event);
    pond_event_set_ts (event, ts);
    return event;
}

//  Append events as one group; asserts success; destroys the events.
void
fixture_append (pond_store_t *store, pond_event_t **events, size_t count, uint64_t *seqs,
                bool *dups)
{
    uint64_t local_seqs [64];
    bool local_dups [64];
    cr_assert_leq (count, 64);
    int rc = pond_store_append (store, events, count, seqs ? seqs : local_seqs,
                                dups ? dups : local_dups, NULL, NULL);
    cr_assert_eq (rc, 0);
    for (size_t i = 0; i < count; i++)
        pond_event_destroy (&events [i]);
}

//  Append one event; returns its seq.
uint64_t
fixture_append_one (pond_store_t *store, const char *name, const char *entity, uint64_t ts)
{
    pond_event_t *event = fixture_event (name, entity, ts);
    uint64_t seq;
    bool dup;
    fixture_append (store, &event, 1, &seq, &dup);
    cr_assert_not (dup);
    return seq;
}

//  Decode the events a fill appended into msg, checking each.
size_t
fixture_drain_events (zmsg_t *msg, uint64_t *seqs, uint64_t *tss, char (*names) [POND_NAME_MAX + 1],
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
                zframe_data (frame) + offset, zframe_size (frame) - offset, &used, err, sizeof err);
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
size_t
fixture_replay_all (pond_store_t *store, const pond_replay_req_t *request, uint64_t *seqs,
                    uint64_t *tss, char (*names) [POND_NAME_MAX + 1], size_t capacity)
{
    pond_cursor_t *replay = pond_cursor_new (store, request);
    cr_assert_not_null (replay);
    size_t total = 0;
    while (true) {
        zmsg_t *msg = zmsg_new ();
        int count = pond_cursor_fill (replay, msg, POND_CHUNK_EVENTS, POND_CHUNK_BYTES);
        cr_assert_geq (count, 0);
        size_t got = fixture_drain_events (msg, seqs ? seqs + total : NULL,
                                           tss ? tss + total : NULL, names ? names + total : NULL,
                                           capacity - total);
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
