/*  test_crash: SIGKILL pond-store during a stream of pipelined publishes
    (pond_publisher), restart it, and prove from the log that every ACKed
    event is stored exactly once with the seq its ACK named, and that seq
    has no hole. The same for pond-broker --with-store, the store in the
    broker's process: SIGKILL the broker, restart it.
*/
#include <criterion/criterion.h>
#include <czmq.h>
#include <inttypes.h>
#include <signal.h>

#include "pond_client.h"
#include "pond_harness.h"

#define EVENTS    3000
#define WINDOW    64
#define RESEND_MS 1500

typedef struct {
    uint8_t *bytes;
    size_t size;
    uint8_t id [POND_ID_SIZE];
    bool acked;
    uint64_t seq;
} sent_t;

static pond_mesh_t *mesh;

static void
s_setup (void)
{
    mesh = pond_harness_mesh_up ();
}

static void
s_setup_with_store (void)
{
    mesh = pond_harness_mesh_up_with_store ();
}

static void
s_teardown (void)
{
    pond_mesh_destroy (&mesh);
}

//  The process that holds the log: pond-store, or the broker with store
static void
s_kill_and_restart (void)
{
    if (mesh->with_store) {
        pond_harness_stop (mesh->broker, SIGKILL);
        cr_assert_eq (pond_mesh_start_broker (mesh), 0,
                      "pond-broker --with-store restarts after SIGKILL");
    }
    else {
        pond_harness_stop (mesh->store, SIGKILL);
        zclock_sleep (100);
        cr_assert_eq (pond_mesh_start_store (mesh), 0, "store restarts after SIGKILL");
    }
}

//  Publish EVENTS pipelined, killing the log's process three times on the
//  way, then check the log against the ACKs
static void
s_publish_through_kills (void)
{
    sent_t *sent = calloc (EVENTS, sizeof (sent_t));
    zhashx_t *by_id = zhashx_new ();
    char err [POND_ERR_SIZE];
    char key [33];
    for (size_t i = 0; i < EVENTS; i++) {
        pond_event_t *event = pond_event_new (i % 3 ? "QUACKED" : "BUTTON_CLICKED", "cust-crash");
        sent [i].bytes = pond_event_encode (event, &sent [i].size, err, sizeof err);
        cr_assert_not_null (sent [i].bytes, "%s", err);
        memcpy (sent [i].id, pond_event_id (event), POND_ID_SIZE);
        zhashx_insert (by_id, pond_harness_id_hex (sent [i].id, key), (void *) (i + 1));
        pond_event_destroy (&event);
    }
    pond_client_t *client = pond_client_new (mesh->ingest);
    cr_assert_not_null (client);
    //  Resend what got no reply after RESEND_MS (and after a 503's
    //  retry_ms), for as long as the test lasts
    pond_publisher_t *publisher = pond_publisher_new (client);
    cr_assert_not_null (publisher);
    cr_assert_eq (pond_publisher_set_window (publisher, WINDOW, 0), 0);
    pond_publisher_set_timeout (publisher, RESEND_MS, 120000 / RESEND_MS);
    size_t next = 0, acked = 0, kills = 0;
    size_t kill_at [] = { 400, 1300, 2200 };
    int64_t deadline = zclock_mono () + 120000;
    while (acked < EVENTS && zclock_mono () < deadline) {
        while (next < EVENTS && pond_publisher_room (publisher) > 0) {
            //  Same bytes, same id on every send: safe whatever happened to the first
            cr_assert_eq (pond_publisher_push (publisher, sent [next].id, sent [next].bytes,
                                               sent [next].size, next),
                          0, "%s", pond_publisher_reason (publisher));
            next++;
        }
        pond_publish_result_t result;
        int rc = pond_publisher_next (publisher, 100, &result);
        cr_assert_geq (rc, 0, "interrupted");
        if (rc == 1) {
            cr_assert_eq (result.code, POND_CODE_OK, "event %" PRIu64 ": %d %s", result.tag,
                          result.code, result.reason);
            sent_t *item = &sent [result.tag];
            cr_assert_arr_eq (result.id, item->id, POND_ID_SIZE);
            cr_assert_not (item->acked, "one result per event");
            item->acked = true;
            item->seq = result.seq;
            acked++;
        }
        if (kills < 3 && acked >= kill_at [kills]) {
            s_kill_and_restart ();
            kills++;
        }
    }
    size_t resends = (size_t) pond_publisher_retries (publisher);
    cr_assert_eq (kills, 3);
    cr_assert_eq (acked, EVENTS, "every event is eventually acked (%zu of %d)", acked, EVENTS);

    //  The log: seq 1..EVENTS without a hole, each id once, with its ACKed seq
    pond_replay_req_t request = { .from_seq = 1 };
    pond_reader_t *replay = pond_reader_new (mesh->control, &request);
    cr_assert_not_null (replay);
    zhashx_t *seen = zhashx_new ();
    uint64_t expected = 1;
    pond_event_t *event;
    while ((event = pond_reader_next (replay, 10000))) {
        cr_assert_eq (pond_event_seq (event), expected, "hole or disorder in seq");
        pond_harness_id_hex (pond_event_id (event), key);
        cr_assert_null (zhashx_lookup (seen, key), "id stored twice");
        zhashx_insert (seen, key, (void *) 1);
        size_t index = (size_t) zhashx_lookup (by_id, key);
        cr_assert_gt (index, 0, "stored an event nobody sent");
        cr_assert_eq (sent [index - 1].seq, expected, "stored seq differs from the ACKed one");
        expected++;
        pond_event_destroy (&event);
    }
    cr_assert_eq (pond_reader_code (replay), 200, "replay: %s", pond_reader_reason (replay));
    cr_assert_eq (expected - 1, EVENTS, "stored %zu events, acked %d", (size_t) (expected - 1),
                  EVENTS);
    fprintf (stderr,
             "crash test: %d events acked, %zu stored, 0 lost, %zu resends, "
             "%zu %s kills survived\n",
             EVENTS, (size_t) (expected - 1), resends, kills,
             mesh->with_store ? "broker --with-store" : "store");
    pond_reader_destroy (&replay);
    zhashx_destroy (&seen);
    pond_publisher_destroy (&publisher);
    pond_client_destroy (&client);
    for (size_t i = 0; i < EVENTS; i++)
        free (sent [i].bytes);
    free (sent);
    zhashx_destroy (&by_id);
}

Test (crash, store_sigkill_loses_no_acked_event, .init = s_setup, .fini = s_teardown,
      .timeout = 150)
{
    s_publish_through_kills ();
}

//  One process: the broker holds the log, so its SIGKILL is the store's
//  too; the client's resends reach the restarted broker (same endpoints)
Test (crash, broker_with_store_sigkill_loses_no_acked_event, .init = s_setup_with_store,
      .fini = s_teardown, .timeout = 150)
{
    s_publish_through_kills ();
}
