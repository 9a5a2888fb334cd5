/*  test_sync: no reply leaves pond-store before the WAL sync that covers
    its events (invariant 1, "log first"), under load.

    A SIGKILL leaves the page cache intact, so the crash tests would pass
    with the WAL sync turned off. Here pond-store runs with
    pond_sync_shim.c preloaded: it sees every byte written to the WAL,
    every fdatasync/fsync, and every APPENDED the store hands to ZeroMQ,
    in the order they happen, and counts each APPENDED announcing a new
    event that leaves while WAL bytes are not yet synced. One producer
    waiting for each ACK, then 32 pipelined producers, publish through
    the real broker; the store must send hundreds of such APPENDEDs and
    none early. The same load with
    POND_STORE_UNSAFE_NO_SYNC=1 (the store's test knob that turns the WAL
    sync off) must be caught: that proves the check can fail.
*/
#include <criterion/criterion.h>
#include <czmq.h>
#include <signal.h>

#include "pond_client.h"
#include "pond_harness.h"

#define PRODUCERS 32    //  the loaded phase: each pipelines WINDOW events
#define WINDOW    16
#ifdef POND_SANITIZE_BUILD
#define PER_PRODUCER 300
#define ONE_BY_ONE   100    //  the quiet phase: one producer, one event at a time
#else
#define PER_PRODUCER 2000
#define ONE_BY_ONE   300
#endif

typedef struct {
    uint64_t appended, checked, violations, wal_writes, wal_bytes, syncs;
} shim_summary_t;

static pond_mesh_t *mesh;

static void
s_setup (void)
{
    mesh = pond_harness_mesh_up ();
}

static void
s_teardown (void)
{
    pond_mesh_destroy (&mesh);
}

//  Restart the mesh's store with the shim preloaded, reporting to log
//  (and without the WAL sync if unsafe).
static void
s_store_with_shim (const char *log, bool unsafe)
{
    pond_harness_stop (mesh->store, SIGTERM);
    unlink (log);
    setenv ("LD_PRELOAD", POND_SYNC_SHIM, 1);
    setenv ("POND_SYNC_SHIM_LOG", log, 1);
    setenv ("ASAN_OPTIONS", "verify_asan_link_order=0", 1);    //  sanitizer build
    if (unsafe)
        setenv ("POND_STORE_UNSAFE_NO_SYNC", "1", 1);
    int rc = pond_mesh_start_store (mesh);
    unsetenv ("LD_PRELOAD");
    unsetenv ("POND_SYNC_SHIM_LOG");
    unsetenv ("ASAN_OPTIONS");
    unsetenv ("POND_STORE_UNSAFE_NO_SYNC");
    cr_assert_eq (rc, 0, "pond-store starts with the shim");
    //  Once one event is ACKed the broker reaches the new store
    pond_client_t *client = pond_client_new (mesh->ingest);
    pond_event_t *event = pond_event_new ("QUACKED", "cust-sync-first");
    cr_assert_eq (pond_client_publish (client, event, NULL), 0, "%s", pond_client_reason (client));
    pond_event_destroy (&event);
    pond_client_destroy (&client);
}

//  producers producers, window events in flight each, until every event
//  is ACKed. Returns the number of ACKs.
static size_t
s_publish (int producers, size_t window, size_t per_producer)
{
    pond_client_t *clients [PRODUCERS];
    size_t sent [PRODUCERS], acked [PRODUCERS], total = 0;
    zmq_pollitem_t items [PRODUCERS];
    assert (producers <= PRODUCERS);
    for (int p = 0; p < producers; p++) {
        clients [p] = pond_client_new (mesh->ingest);
        cr_assert_not_null (clients [p]);
        sent [p] = acked [p] = 0;
    }
    int64_t deadline = zclock_mono () + 120000;
    while (total < (size_t) producers * per_producer) {
        cr_assert_lt (zclock_mono (), deadline, "only %zu of %zu events ACKed in time", total,
                      (size_t) producers * per_producer);
        for (int p = 0; p < producers; p++) {
            while (sent [p] < per_producer && sent [p] - acked [p] < window) {
                char entity [32];
                snprintf (entity, sizeof entity, "cust-sync-%d", p);
                pond_event_t *event = pond_event_new ("QUACKED", entity);
                cr_assert_eq (pond_client_send (clients [p], event), 0, "%s",
                              pond_client_reason (clients [p]));
                pond_event_destroy (&event);
                sent [p]++;
            }
            items [p] = (zmq_pollitem_t) { zsock_resolve (pond_client_sock (clients [p])), 0,
                                           ZMQ_POLLIN, 0 };
        }
        zmq_poll (items, producers, 100);
        for (int p = 0; p < producers; p++) {
            pond_ack_t ack;
            pond_nack_t nack;
            int rc;
            while ((rc = pond_client_recv (clients [p], 0, &ack, &nack)) >= 0) {
                cr_assert_eq (rc, 1, "NACK %u: %s (no retries here: the store is up)", nack.code,
                              nack.reason);
                acked [p]++;
                total++;
            }
        }
    }
    for (int p = 0; p < producers; p++)
        pond_client_destroy (&clients [p]);
    return total;
}

//  One producer waiting for each ACK (the store commits a lone APPEND in
//  its main thread), then PRODUCERS pipelined ones (groups committed by
//  the writer thread while the next is prepared). Returns the ACKs.
static size_t
s_publish_load (void)
{
    size_t acked = s_publish (1, 1, ONE_BY_ONE);
    return acked + s_publish (PRODUCERS, WINDOW, PER_PRODUCER);
}

//  Stop the store (the shim writes its summary at exit) and read it.
static shim_summary_t
s_summary (const char *log)
{
    pond_harness_stop (mesh->store, SIGTERM);
    mesh->store = -1;
    FILE *file = fopen (log, "r");
    cr_assert_not_null (file, "the shim wrote no report in %s", log);
    char line [512];
    shim_summary_t summary;
    bool found = false;
    while (fgets (line, sizeof line, file)) {
        if (strncmp (line, "violation", 9) == 0)
            fprintf (stderr, "sync shim: %s", line);
        if (sscanf (line,
                    "summary appended=%" SCNu64 " checked=%" SCNu64 " violations=%" SCNu64
                    " wal_writes=%" SCNu64 " wal_bytes=%" SCNu64 " syncs=%" SCNu64,
                    &summary.appended, &summary.checked, &summary.violations, &summary.wal_writes,
                    &summary.wal_bytes, &summary.syncs)
            == 6)
            found = true;
    }
    fclose (file);
    cr_assert (found, "no summary line in %s: did pond-store exit cleanly?", log);
    fprintf (stderr,
             "sync shim: %" PRIu64 " APPENDED, %" PRIu64 " with new events checked, %" PRIu64
             " sent before their sync; %" PRIu64 " WAL writes (%" PRIu64 " bytes), %" PRIu64
             " syncs\n",
             summary.appended, summary.checked, summary.violations, summary.wal_writes,
             summary.wal_bytes, summary.syncs);
    return summary;
}

Test (sync, no_reply_before_its_wal_sync_under_load, .init = s_setup, .fini = s_teardown,
      .timeout = 170)
{
    char log [512];
    snprintf (log, sizeof log, "%s/sync-shim.txt", mesh->dir);
    s_store_with_shim (log, false);
    size_t acked = s_publish_load ();
    shim_summary_t summary = s_summary (log);
    cr_assert_eq (acked, (size_t) ONE_BY_ONE + PRODUCERS * PER_PRODUCER);
    cr_assert_gt (summary.wal_writes, 0, "the shim saw no WAL write: is the WAL elsewhere?");
    cr_assert_gt (summary.syncs, 0, "the shim saw no WAL sync");
    cr_assert_gt (summary.checked, 0, "the shim saw no APPENDED announcing new events");
    cr_assert_eq (summary.violations, 0,
                  "%" PRIu64 " APPENDED left the store before the WAL "
                  "sync covering their events",
                  summary.violations);
}

//  The check itself: with the WAL sync turned off it must see replies
//  that left before any sync.
Test (sync, replies_without_wal_sync_are_caught, .init = s_setup, .fini = s_teardown,
      .timeout = 170)
{
    char log [512];
    snprintf (log, sizeof log, "%s/sync-shim.txt", mesh->dir);
    s_store_with_shim (log, true);
    s_publish_load ();
    shim_summary_t summary = s_summary (log);
    cr_assert_gt (summary.checked, 0);
    cr_assert_gt (summary.violations, 0,
                  "with POND_STORE_UNSAFE_NO_SYNC=1 the shim must see "
                  "APPENDED sent before a sync");
}
