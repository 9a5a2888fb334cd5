/*  test_store_server: the store server and the pond-store process.

    Server tests run pond_store_server in-process (as a zactor) where a
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

#include "pond_store_fixture.h"
#include "pond_store_server.h"

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
    return which ? zmsg_recv (dealer) : NULL;
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
               command ? zframe_strdup (command) : "nothing");
    zframe_t *body = zmsg_pop (msg);
    char err [POND_ERR_SIZE];
    cr_assert_eq (pond_appended_decode (body, reply, err, sizeof err), 0, "%s", err);
    size_t frames = zmsg_size (msg);
    //  Every stored frame is a valid event with its seq
    size_t index = 0;
    for (zframe_t *frame = zmsg_first (msg); frame; frame = zmsg_next (msg)) {
        pond_event_t *event = pond_event_decode (zframe_data (frame), zframe_size (frame), err,
                                                 sizeof err);
        cr_assert_not_null (event, "%s", err);
        //  Frames: the events stored now (not dups, not refused)
        while (index < reply->count
               && (reply->dups [index]
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
s_socket_append (zsock_t *dealer, uint64_t bid, pond_event_t **events, size_t count, uint64_t *seqs)
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
                                       zframe_size (body), NULL),
                  MSGPACK_UNPACK_SUCCESS);
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
        if (kv->key.via.str.size != strlen (key) || memcmp (kv->key.via.str.ptr, key, strlen (key)))
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
                    && memcmp (entry->key.via.str.ptr, name, strlen (name)) == 0)
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
                pond_event_t *event = pond_event_decode_next (
                    zframe_data (frame) + at, zframe_size (frame) - at, &used, err, sizeof err);
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
    *server_p = pond_store_server_new (store, fixture_endpoint);
    cr_assert_not_null (*server_p);
    cr_assert_str_eq (pond_store_server_endpoint (*server_p), fixture_endpoint);
    if (replay_timeout)
        pond_store_server_set_replay_timeout (*server_p, replay_timeout);
    fixture_actor = zactor_new (pond_store_server_actor, *server_p);
    cr_assert_not_null (fixture_actor);
}

Test (server, group_commit_answers_each_append_in_order, .init = fixture_setup,
      .fini = fixture_teardown)
{
    pond_store_t *store = pond_store_new (fixture_db);
    pond_store_server_t *server = pond_store_server_new (store, fixture_endpoint);
    cr_assert_not_null (server);
    zsock_t *dealer = s_dealer (fixture_endpoint);

    //  Queue 20 APPENDs before the server runs: one turn must read them
    //  all and write them in one batch. APPEND 7 is invalid; APPEND 12
    //  resends the event of APPEND 3.
    pond_event_t *sent [20];
    for (int i = 0; i < 20; i++) {
        sent [i] = fixture_event ("QUACKED", "cust-1", 1000 + i);
        pond_event_t *copy = pond_event_dup (i == 12 ? sent [3] : sent [i]);
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
    fixture_actor = zactor_new (pond_store_server_actor, server);

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
    zactor_destroy (&fixture_actor);
    pond_store_server_destroy (&server);
    pond_store_destroy (&store);
}

Test (server, write_error_answers_500, .init = fixture_setup, .fini = fixture_teardown)
{
    pond_store_t *store = pond_store_new (fixture_db);
    pond_store_server_t *server;
    s_server_start (store, &server, 0);
    zsock_t *dealer = s_dealer (fixture_endpoint);
    pond_event_t *events [2] = { fixture_event ("QUACKED", "c", 1),
                                 fixture_event ("QUACKED", "c", 2) };
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
    zactor_destroy (&fixture_actor);
    pond_store_server_destroy (&server);
    pond_store_destroy (&store);
}

Test (server, replay_without_credit_is_dropped, .init = fixture_setup, .fini = fixture_teardown)
{
    pond_store_t *store = pond_store_new (fixture_db);
    for (int g = 0; g < 10; g++) {
        pond_event_t *events [60];
        for (int i = 0; i < 60; i++)
            events [i] = fixture_event ("QUACKED", "cust-1", 1000 + i);
        fixture_append (store, events, 60, NULL, NULL);
    }
    pond_store_server_t *server;
    s_server_start (store, &server, 300);
    zsock_t *dealer = s_dealer (fixture_endpoint);
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
    zactor_destroy (&fixture_actor);
    pond_store_server_destroy (&server);
    pond_store_destroy (&store);
}

Test (server, replays_interleave_with_appends, .init = fixture_setup, .fini = fixture_teardown)
{
    pond_store_t *store = pond_store_new (fixture_db);
    for (int g = 0; g < 40; g++) {
        pond_event_t *events [64];
        for (int i = 0; i < 64; i++)
            events [i] = fixture_event ("QUACKED", "cust-1", 1000 + i);
        fixture_append (store, events, 64, NULL, NULL);
    }
    pond_store_server_t *server;
    s_server_start (store, &server, 0);
    zsock_t *reader = s_dealer (fixture_endpoint);
    zsock_t *writer = s_dealer (fixture_endpoint);
    //  Three long replays of 5 chunks each, paused after their first
    //  chunk, and a second replay with a rid that is running
    uint64_t seqs [POND_CHUNK_EVENTS];
    uint32_t left;
    pond_end_t end;
    for (uint64_t rid = 1; rid <= 3; rid++) {
        pond_replay_req_t request = { .rid = rid, .credit = 1 };
        s_send_replay (reader, &request);
        cr_assert_eq (s_recv_stream (reader, rid, seqs, POND_CHUNK_EVENTS, &left, &end, NULL), 512);
        cr_assert_eq (seqs [0], 1);
        cr_assert_eq (left, 0);
    }
    pond_replay_req_t request = { .rid = 2, .credit = 1 };
    s_send_replay (reader, &request);
    s_expect_error (reader, POND_CODE_BAD_REQUEST, "already");

    //  An APPEND while they run is answered at once
    pond_event_t *event = fixture_event ("LABEL_ADDED", "cust-1", 5);
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
    zactor_destroy (&fixture_actor);
    pond_store_server_destroy (&server);
    pond_store_destroy (&store);
}

//  ---------------------------------------------------------------------
//  The real process

static pid_t
s_start_process (int slot)
{
    char ready [600], log [600];
    snprintf (ready, sizeof ready, "%s/store.zpl", fixture_dir);
    snprintf (log, sizeof log, "%s/store.log", fixture_dir);
    unlink (ready);
    pid_t pid = pond_harness_spawn ("pond-store", log, "--data", fixture_dir, "--endpoint",
                                    fixture_endpoint, NULL);
    cr_assert_gt (pid, 0);
    fixture_pids [slot] = pid;
    cr_assert_eq (pond_harness_wait_file (ready, 10000), 0, "pond-store did not start; see %s",
                  log);
    //  The ready file tells where it listens and who it is
    zconfig_t *config = zconfig_load (ready);
    cr_assert_not_null (config);
    cr_assert_str_eq (zconfig_get (config, "store/endpoint", ""), fixture_endpoint);
    cr_assert_eq (atoi (zconfig_get (config, "store/pid", "0")), pid);
    zconfig_destroy (&config);
    return pid;
}

//  SIGTERM: a clean stop, exit code 0
static void
s_stop_process (int slot)
{
    int status = pond_harness_stop (fixture_pids [slot], SIGTERM);
    fixture_pids [slot] = 0;
    cr_assert (WIFEXITED (status), "pond-store did not exit by itself (status %d)", status);
    cr_assert_eq (WEXITSTATUS (status), 0);
}

Test (process, append_and_appended, .init = fixture_setup, .fini = fixture_teardown, .timeout = 30)
{
    s_start_process (0);
    zsock_t *dealer = s_dealer (fixture_endpoint);
    cr_assert_eq (zstr_send (dealer, POND_PING), 0);
    char *pong = zstr_recv (dealer);
    cr_assert_str_eq (pong, POND_PONG);
    zstr_free (&pong);

    pond_event_t *events [3] = { fixture_event ("QUACKED", "cust-1", 10),
                                 fixture_event ("BUTTON_CLICKED", "cust-1", 11),
                                 fixture_event ("QUACKED", "cust-2", 12) };
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
    snprintf (ready, sizeof ready, "%s/store.zpl", fixture_dir);
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

Test (process, bad_input_gets_errors_and_changes_nothing, .init = fixture_setup,
      .fini = fixture_teardown, .timeout = 30)
{
    s_start_process (0);
    zsock_t *dealer = s_dealer (fixture_endpoint);
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
    const uint8_t truncated [] = { 0x81, 0xa3, 'b', 'i' };    //  {"bi...
    s_send_frames (dealer, 2, "APPEND", (size_t) 6, truncated, sizeof truncated);
    s_expect_error (dealer, POND_CODE_BAD_REQUEST, "APPEND body");
    const uint8_t huge_claim [] = { 0xdf, 0xff, 0xff, 0xff, 0xff };    //  map of 4G pairs
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

    pond_event_t *good = fixture_event ("QUACKED", "cust-1", 10);
    pond_event_t *bad_name = fixture_event ("QUACKED", "cust-1", 10);
    pond_event_t *with_seq = fixture_event ("QUACKED", "cust-1", 10);
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
    s_send_frames (dealer, 3, "APPEND", (size_t) 6, zframe_data (body), zframe_size (body), garbage,
                   sizeof garbage);
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
    pond_event_t *pair [2] = { pond_event_dup (good), fixture_event ("QUACKED", "cust-1", 11) };
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
    snprintf (log, sizeof log, "%s/store.log", fixture_dir);
    int exit_code;
    char *output = pond_harness_run (&exit_code, "grep -c 'unknown command' '%s'", log);
    cr_assert_not_null (output);
    cr_assert_eq (atoi (output), 1, "unknown commands logged %s times", output);
    free (output);
}

Test (server, packed_replay_sends_big_chunks, .init = fixture_setup, .fini = fixture_teardown)
{
    pond_store_t *store = pond_store_new (fixture_db);
    for (int g = 0; g < 80; g++) {
        pond_event_t *events [64];
        for (int i = 0; i < 64; i++)
            events [i] = fixture_event ("QUACKED", "cust-1", 1000 + g * 64 + i);
        fixture_append (store, events, 64, NULL, NULL);
    }
    pond_store_server_t *server;
    s_server_start (store, &server, 300);
    zsock_t *dealer = s_dealer (fixture_endpoint);
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
    cr_assert_eq (s_recv_stream (dealer, 9, seqs, POND_CHUNK_PACKED_EVENTS, &left, &end, NULL), -1);
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
    while ((count = s_recv_stream (dealer, 10, seqs, POND_CHUNK_PACKED_EVENTS, &left, &end, NULL))
           >= 0)
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
    zactor_destroy (&fixture_actor);
    pond_store_server_destroy (&server);
    zsock_destroy (&dealer);
    pond_store_destroy (&store);
}

Test (process, replay_with_credit, .init = fixture_setup, .fini = fixture_teardown, .timeout = 30)
{
    s_start_process (0);
    zsock_t *dealer = s_dealer (fixture_endpoint);
    //  1200 events: 1024 + 176
    pond_event_t *events [POND_APPEND_MAX];
    for (int g = 0, bid = 1; g < 1200; bid++) {
        int count = 1200 - g < POND_APPEND_MAX ? 1200 - g : POND_APPEND_MAX;
        for (int i = 0; i < count; i++)
            events [i] = fixture_event ("QUACKED", "cust-1", 5000 - g - i);
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
#define KILL_BATCH    4
#define KILL_INFLIGHT 16
#define KILL_MAX      4096

Test (process, kill_9_loses_nothing_answered, .init = fixture_setup, .fini = fixture_teardown,
      .timeout = 60)
{
    s_start_process (0);
    zsock_t *dealer = s_dealer (fixture_endpoint);
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
                events [i] = fixture_event ("QUACKED", "cust-1", 1000 + bid);
                memcpy (ids [bid * KILL_BATCH + i], pond_event_id (events [i]), POND_ID_SIZE);
            }
            s_send_append (dealer, bid++, events, KILL_BATCH);
            for (int i = 0; i < KILL_BATCH; i++)
                pond_event_destroy (&events [i]);
            inflight++;
        }
        if (!killed && replies >= 150) {
            //  Mid-stream: APPENDs are queued and being written
            pond_harness_stop (fixture_pids [0], SIGKILL);
            fixture_pids [0] = 0;
            killed = true;
        }
        //  Before the kill, wait for answers; after, collect what arrived
        zmsg_t *msg = s_recv (dealer, killed ? 200 : 5000);
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
    dealer = s_dealer (fixture_endpoint);
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
    while (
        (count = s_recv_stream (dealer, 1, seqs + total, head - total, NULL, &end, log_ids + total))
        >= 0)
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
    pond_event_t *event = fixture_event ("QUACKED", "cust-1", 1);
    uint64_t seq;
    s_socket_append (dealer, 999999, &event, 1, &seq);
    cr_assert_eq (seq, head + 1);
    pond_event_set_id (event, ids [0]);
    pond_event_set_ts (event, 1000);    //  the same event as ids [0]
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

Test (process, command_line, .init = fixture_setup, .fini = fixture_teardown, .timeout = 30)
{
    int code;
    char *output = pond_harness_run (&code, "%s/pond-store --help", POND_BIN_DIR);
    cr_assert_eq (code, 0);
    cr_assert (strstr (output, "--data") && strstr (output, "--endpoint")
                   && strstr (output, "RocksDB"),
               "help: %s", output);
    free (output);
    output = pond_harness_run (&code, "%s/pond-store --no-such-option 2>&1", POND_BIN_DIR);
    cr_assert_eq (code, 2);
    free (output);
    output = pond_harness_run (&code, "%s/pond-store --data 2>&1", POND_BIN_DIR);
    cr_assert_eq (code, 2);
    free (output);
    //  The memory budget: numbers of MiB in range, from options or the
    //  environment, else status 2 and what to give instead
    const char *bad [] = { "--memtable-mb 3", "--memtable-mb 0", "--cache-mb 0",
                           "--cache-mb 12x",  "--cache-mb -5",   "--memtable-mb 99999999" };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        output = pond_harness_run (&code, "%s/pond-store --data '%s' %s 2>&1", POND_BIN_DIR,
                                   fixture_dir, bad [i]);
        cr_assert_eq (code, 2, "%s: status %d", bad [i], code);
        cr_assert (strstr (output, "give a number of MiB from"), "%s: %s", bad [i], output);
        free (output);
    }
    output = pond_harness_run (&code, "POND_STORE_CACHE_MB=lots %s/pond-store --data '%s' 2>&1",
                               POND_BIN_DIR, fixture_dir);
    cr_assert_eq (code, 2);
    cr_assert (strstr (output, "POND_STORE_CACHE_MB 'lots'"), "%s", output);
    free (output);
    output = pond_harness_run (&code, "%s/pond-store --help", POND_BIN_DIR);
    cr_assert (strstr (output, "--memtable-mb") && strstr (output, "--cache-mb"), "%s", output);
    free (output);

    //  A second store on the same data refuses to start and says why
    s_start_process (0);
    output = pond_harness_run (&code, "%s/pond-store --data '%s' --endpoint '%s-2' 2>&1",
                               POND_BIN_DIR, fixture_dir, fixture_endpoint);
    cr_assert_eq (code, 1);
    cr_assert (strstr (output, "stop it first"), "output: %s", output);
    free (output);
    //  ... and the first still serves
    zsock_t *dealer = s_dealer (fixture_endpoint);
    cr_assert_eq (zstr_send (dealer, POND_PING), 0);
    char *pong = zstr_recv (dealer);
    cr_assert_str_eq (pong, POND_PONG);
    zstr_free (&pong);
    zsock_destroy (&dealer);
    s_stop_process (0);
}
