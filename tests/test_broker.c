/*  test_broker: pond-broker with a real pond-store, spoken to with raw
    sockets at the protocol level: ACK after durability, seq, fan-out,
    every NACK, control relay, store away and back, hostile input.
*/
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <czmq.h>
#include <signal.h>
#include <sys/wait.h>

#include "pond_harness.h"
#include "pond_proto.h"
#include "pond_value.h"

#include <msgpack.h>

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

TestSuite (broker, .init = s_setup, .fini = s_teardown, .timeout = 60);

static zsock_t *
s_dealer (const char *endpoint)
{
    zsock_t *sock = zsock_new_dealer (endpoint);
    cr_assert_not_null (sock);
    zsock_set_linger (sock, 0);
    return sock;
}

static zmsg_t *
s_recv (zsock_t *sock, int timeout_ms)
{
    zpoller_t *poller = zpoller_new (sock, NULL);
    zmsg_t *msg = zpoller_wait (poller, timeout_ms) ? zmsg_recv (sock) : NULL;
    zpoller_destroy (&poller);
    return msg;
}

static zframe_t *
s_encode (pond_event_t *event)
{
    char err [POND_ERR_SIZE];
    size_t size;
    uint8_t *bytes = pond_event_encode (event, &size, err, sizeof err);
    cr_assert_not_null (bytes, "encode: %s", err);
    zframe_t *frame = zframe_new (bytes, size);
    free (bytes);
    return frame;
}

static void
s_send_frames (zsock_t *sock, const char *command, zframe_t *body)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, command);
    if (body)
        zmsg_append (msg, &body);
    zmsg_send (&msg, sock);
}

//  Publish and wait for ACK or NACK; 503 is retried (the broker may still
//  be learning that the store is up). Returns the reply command.
static char *
s_publish (zsock_t *ingest, pond_event_t *event, pond_ack_t *ack, pond_nack_t *nack)
{
    for (int attempt = 0; attempt < 50; attempt++) {
        s_send_frames (ingest, POND_PUBLISH, s_encode (event));
        zmsg_t *reply = s_recv (ingest, 5000);
        cr_assert_not_null (reply, "no reply to PUBLISH");
        char *command = zmsg_popstr (reply);
        zframe_t *body = zmsg_pop (reply);
        char err [POND_ERR_SIZE];
        if (streq (command, POND_ACK))
            cr_assert_eq (pond_ack_decode (body, ack, err, sizeof err), 0, "%s", err);
        else
            cr_assert_eq (pond_nack_decode (body, nack, err, sizeof err), 0, "%s", err);
        zframe_destroy (&body);
        zmsg_destroy (&reply);
        if (streq (command, POND_NACK) && nack->code == POND_CODE_UNAVAILABLE) {
            free (command);
            zclock_sleep ((int) nack->retry_ms);
            continue;
        }
        return command;
    }
    cr_assert_fail ("PUBLISH kept getting 503");
    return NULL;
}

static uint64_t
s_publish_ok (zsock_t *ingest, pond_event_t *event, bool *dup)
{
    pond_ack_t ack;
    pond_nack_t nack;
    char *command = s_publish (ingest, event, &ack, &nack);
    cr_assert_str_eq (command, POND_ACK, "expected ACK, got NACK %u %s", nack.code, nack.reason);
    free (command);
    cr_assert_eq (memcmp (ack.id, pond_event_id (event), POND_ID_SIZE), 0);
    if (dup)
        *dup = ack.dup;
    return ack.seq;
}

//  Send raw frames on ingest and expect a NACK with this code.
static void
s_expect_nack (zsock_t *ingest, zmsg_t *msg, uint32_t code)
{
    zmsg_send (&msg, ingest);
    zmsg_t *reply = s_recv (ingest, 5000);
    cr_assert_not_null (reply, "no NACK");
    char *command = zmsg_popstr (reply);
    cr_assert_str_eq (command, POND_NACK);
    zframe_t *body = zmsg_pop (reply);
    pond_nack_t nack;
    char err [POND_ERR_SIZE];
    cr_assert_eq (pond_nack_decode (body, &nack, err, sizeof err), 0, "%s", err);
    cr_assert_eq (nack.code, code, "expected %u, got %u (%s)", code, nack.code, nack.reason);
    cr_assert_gt (strlen (nack.reason), 5, "a NACK says why");
    free (command);
    zframe_destroy (&body);
    zmsg_destroy (&reply);
}

Test (broker, acks_with_gap_free_seq_and_dedups)
{
    zsock_t *ingest = s_dealer (mesh->ingest);
    uint64_t previous = 0;
    for (int i = 0; i < 20; i++) {
        pond_event_t *event = pond_event_new ("QUACKED", "cust-1");
        bool dup;
        uint64_t seq = s_publish_ok (ingest, event, &dup);
        cr_assert_eq (seq, previous + 1, "seq must be gap-free");
        cr_assert_not (dup);
        previous = seq;
        if (i == 10) {
            uint64_t again = s_publish_ok (ingest, event, &dup);
            cr_assert_eq (again, seq, "a resent id keeps its seq");
            cr_assert (dup);
        }
        pond_event_destroy (&event);
    }
    zsock_destroy (&ingest);
}

Test (broker, fans_out_by_exact_name_after_ack)
{
    zsock_t *quacks = pond_harness_sub_live (mesh->pub, "QUACKED", 5000);
    zsock_t *all = pond_harness_sub_live (mesh->pub, "", 5000);
    cr_assert (quacks && all, "the subscribers are live");
    zsock_t *ingest = s_dealer (mesh->ingest);
    pond_event_t *loud = pond_event_new ("QUACKED_LOUDLY", "cust-1");
    pond_event_t *quack = pond_event_new ("QUACKED", "cust-1");
    uint64_t loud_seq = s_publish_ok (ingest, loud, NULL);
    uint64_t quack_seq = s_publish_ok (ingest, quack, NULL);

    //  The QUACKED subscriber gets both (prefix match) but only one topic
    //  equals QUACKED exactly: that is the client's filter to apply.
    int exact = 0;
    for (int i = 0; i < 2; i++) {
        zmsg_t *msg = pond_harness_recv_event (quacks, 3000);
        cr_assert_not_null (msg);
        char *topic = zmsg_popstr (msg);
        zframe_t *frame = zmsg_pop (msg);
        char err [POND_ERR_SIZE];
        pond_event_t *event = pond_event_decode (zframe_data (frame), zframe_size (frame), err,
                                                 sizeof err);
        cr_assert_not_null (event, "%s", err);
        cr_assert_str_eq (topic, pond_event_name (event));
        if (streq (topic, "QUACKED")) {
            exact++;
            cr_assert_eq (pond_event_seq (event), quack_seq, "published with its seq");
        }
        else
            cr_assert_eq (pond_event_seq (event), loud_seq);
        pond_event_destroy (&event);
        zframe_destroy (&frame);
        free (topic);
        zmsg_destroy (&msg);
    }
    cr_assert_eq (exact, 1);
    int events = 0;
    zmsg_t *msg;
    while ((msg = s_recv (all, 500))) {
        char *topic = zmsg_popstr (msg);
        events += topic [0] != '$';
        free (topic);
        zmsg_destroy (&msg);
    }
    cr_assert_eq (events, 2, "the catch-all subscriber sees both events");
    pond_event_destroy (&loud);
    pond_event_destroy (&quack);
    zsock_destroy (&ingest);
    zsock_destroy (&quacks);
    zsock_destroy (&all);
}

Test (broker, refuses_bad_input_with_reasons)
{
    zsock_t *ingest = s_dealer (mesh->ingest);
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, POND_PUBLISH);
    zmsg_addstr (msg, "not msgpack at all");
    s_expect_nack (ingest, msg, POND_CODE_BAD_REQUEST);

    msg = zmsg_new ();
    zmsg_addstr (msg, POND_PUBLISH);
    s_expect_nack (ingest, msg, POND_CODE_BAD_REQUEST);    //  no event frame

    //  Two frames are a batch: each refused on its own, one RESULTS
    pond_event_t *event = pond_event_new ("QUACKED", "cust-1");
    msg = zmsg_new ();
    zmsg_addstr (msg, POND_PUBLISH);
    zmsg_addstr (msg, "extra");
    zmsg_addstr (msg, "more");
    zmsg_send (&msg, ingest);
    zmsg_t *reply = s_recv (ingest, 5000);
    cr_assert_not_null (reply);
    cr_assert (pond_proto_is (zmsg_first (reply), POND_RESULTS));
    pond_result_t results [2];
    size_t count;
    uint32_t code;
    char reason [POND_REASON_MAX], err [POND_ERR_SIZE];
    cr_assert_eq (pond_results_decode (zmsg_next (reply), &code, reason, sizeof reason, results, 2,
                                       &count, err, sizeof err),
                  0, "%s", err);
    cr_assert_eq (count, 2);
    cr_assert_eq (results [0].code, POND_CODE_BAD_REQUEST);
    cr_assert_eq (results [1].code, POND_CODE_BAD_REQUEST);
    zmsg_destroy (&reply);

    pond_event_set_seq (event, 5);
    msg = zmsg_new ();
    zmsg_addstr (msg, POND_PUBLISH);
    zmsg_append (msg, &(zframe_t *) { s_encode (event) });
    s_expect_nack (ingest, msg, POND_CODE_BAD_REQUEST);    //  seq set by producer

    msg = zmsg_new ();
    zmsg_addstr (msg, POND_PUBLISH);
    zframe_t *huge = zframe_new (NULL, POND_PUBLISH_MAX_SIZE + 1);
    memset (zframe_data (huge), 0x90, zframe_size (huge));
    zmsg_append (msg, &huge);
    s_expect_nack (ingest, msg, POND_CODE_TOO_LARGE);

    msg = zmsg_new ();
    zmsg_addstr (msg, "SUBSCRIBE");
    s_expect_nack (ingest, msg, POND_CODE_NOT_FOUND);

    //  After all that, a good event is still accepted with seq 1: nothing
    //  bad was stored.
    pond_event_set_seq (event, 0);
    cr_assert_eq (s_publish_ok (ingest, event, NULL), 1);
    pond_event_destroy (&event);
    zsock_destroy (&ingest);
}

Test (broker, survives_hostile_floods)
{
    zsock_t *ingest = s_dealer (mesh->ingest);
    zsock_t *control = s_dealer (mesh->control);
    zsock_t *raw = zsock_new (ZMQ_DEALER);
    zsock_set_linger (raw, 0);
    zsock_connect (raw, "%s", mesh->ingest);
    uint32_t seed = 42;
    for (int i = 0; i < 2000; i++) {
        zmsg_t *msg = zmsg_new ();
        int frames = 1 + (int) (seed % 4);
        for (int f = 0; f < frames; f++) {
            seed = seed * 1103515245 + 12345;
            size_t size = seed % 300;
            zframe_t *frame = zframe_new (NULL, size);
            for (size_t b = 0; b < size; b++) {
                seed = seed * 1103515245 + 12345;
                zframe_data (frame) [b] = (byte) (seed >> 16);
            }
            if (f == 0 && i % 3 == 0)
                zframe_reset (frame, "PUBLISH", 7);
            zmsg_append (msg, &frame);
        }
        zmsg_t *copy = zmsg_dup (msg);
        zmsg_send (&msg, raw);
        zmsg_send (&copy, control);
    }
    //  The well-behaved client is still served
    pond_event_t *event = pond_event_new ("BUTTON_CLICKED", "cust-2");
    cr_assert_eq (s_publish_ok (ingest, event, NULL), 1);
    pond_event_destroy (&event);
    zsock_destroy (&raw);
    zsock_destroy (&control);
    zsock_destroy (&ingest);
}

Test (broker, control_stats_and_replay_relay)
{
    zsock_t *ingest = s_dealer (mesh->ingest);
    for (int i = 0; i < 1200; i++) {
        pond_event_t *event = pond_event_new (i % 2 ? "QUACKED" : "LABEL_ADDED", "cust-3");
        pond_event_set_ts (event, 1000000 + (uint64_t) (1200 - i));    //  reverse time
        s_publish_ok (ingest, event, NULL);
        pond_event_destroy (&event);
    }
    zsock_t *control = s_dealer (mesh->control);
    //  The rate covers the seconds sampled so far (a sample a second):
    //  asked until the first samples after the 1200 events are in
    int64_t deadline = zclock_mono () + 5000;
    zmsg_t *reply;
    char *command;
    zframe_t *body;
    while (true) {
        zstr_send (control, POND_STATS);
        reply = s_recv (control, 3000);
        cr_assert_not_null (reply);
        command = zmsg_popstr (reply);
        cr_assert_str_eq (command, POND_STATS);
        free (command);
        body = zmsg_pop (reply);
        char *json = pond_value_to_json (zframe_data (body), zframe_size (body));
        cr_assert_not_null (json);
        cr_assert (strstr (json, "\"acked\":1200"), "stats: %s", json);
        cr_assert (strstr (json, "\"store\":{"), "stats include the store: %s", json);
        cJSON *tree = cJSON_Parse (json);
        cJSON *rate = cJSON_GetObjectItem (cJSON_GetObjectItem (tree, "broker"), "acked_per_s_10s");
        cr_assert (cJSON_IsNumber (rate), "stats have a rate: %s", json);
        bool positive = rate->valuedouble > 0;
        cJSON_Delete (tree);
        zframe_destroy (&body);
        zmsg_destroy (&reply);
        if (!positive)
            cr_assert_lt (zclock_mono (), deadline, "a positive rate after 1200 acks: %s", json);
        free (json);
        if (positive)
            break;
        zclock_sleep (100);
    }

    //  Replay QUACKED with credit 1: one chunk at a time
    pond_replay_req_t request = {
        .rid = 99, .names_count = 1, .names = { "QUACKED" }, .credit = 1
    };
    s_send_frames (control, POND_REPLAY, pond_replay_req_encode (&request));
    size_t events = 0, chunks = 0;
    uint64_t last_ts = 0;
    pond_end_t end = { 0 };
    zmsg_t *early = NULL;    //  END may follow the last chunk at once
    while (true) {
        zmsg_t *msg = early ? early : s_recv (control, 5000);
        early = NULL;
        cr_assert_not_null (msg, "replay stalled after %zu events", events);
        command = zmsg_popstr (msg);
        body = zmsg_pop (msg);
        char err [POND_ERR_SIZE];
        if (streq (command, POND_END)) {
            cr_assert_eq (pond_end_decode (body, &end, err, sizeof err), 0, "%s", err);
            free (command);
            zframe_destroy (&body);
            zmsg_destroy (&msg);
            break;
        }
        cr_assert_str_eq (command, POND_CHUNK);
        pond_credit_t chunk;
        cr_assert_eq (pond_credit_decode (body, &chunk, err, sizeof err), 0, "%s", err);
        cr_assert_eq (chunk.rid, 99, "the reader's rid comes back");
        cr_assert_eq (chunk.chunks, 0, "credit 1 used by this chunk");
        //  No second chunk may come before we grant credit
        //  Without credit, nothing but END may come
        early = s_recv (control, 100);
        char *early_command = early ? zmsg_popstr (early) : NULL;
        cr_assert (!early || streq (early_command, POND_END), "%s arrived without credit",
                   early_command);
        if (early)
            zmsg_pushstr (early, early_command);
        free (early_command);
        zframe_t *frame;
        while ((frame = zmsg_pop (msg))) {
            pond_event_t *event = pond_event_decode (zframe_data (frame), zframe_size (frame), err,
                                                     sizeof err);
            cr_assert_not_null (event, "%s", err);
            cr_assert_str_eq (pond_event_name (event), "QUACKED");
            cr_assert_geq (pond_event_ts (event), last_ts, "ordered by event time");
            last_ts = pond_event_ts (event);
            pond_event_destroy (&event);
            zframe_destroy (&frame);
            events++;
        }
        chunks++;
        pond_credit_t credit = { .rid = 99, .chunks = 1 };
        s_send_frames (control, POND_CREDIT, pond_credit_encode (&credit));
        free (command);
        zframe_destroy (&body);
        zmsg_destroy (&msg);
    }
    cr_assert_eq (end.code, POND_CODE_OK, "END %u %s", end.code, end.reason);
    cr_assert_eq (end.rid, 99);
    cr_assert_eq (events, 600);
    cr_assert_eq (end.count, 600);
    cr_assert_geq (chunks, 2, "600 events need more than one chunk of %d", POND_CHUNK_EVENTS);

    //  Bad requests on control: ERROR with a reason
    zmsg_t *bad = zmsg_new ();
    zmsg_addstr (bad, POND_REPLAY);
    zmsg_addstr (bad, "garbage");
    zmsg_send (&bad, control);
    reply = s_recv (control, 3000);
    cr_assert_not_null (reply);
    command = zmsg_popstr (reply);
    cr_assert_str_eq (command, POND_ERROR);
    free (command);
    zmsg_destroy (&reply);
    zstr_send (control, "DROP_TABLES");
    reply = s_recv (control, 3000);
    cr_assert_not_null (reply);
    command = zmsg_popstr (reply);
    cr_assert_str_eq (command, POND_ERROR);
    body = zmsg_pop (reply);
    pond_nack_t error;
    char err [POND_ERR_SIZE];
    cr_assert_eq (pond_nack_decode (body, &error, err, sizeof err), 0);
    cr_assert_eq (error.code, POND_CODE_NOT_FOUND);
    free (command);
    zframe_destroy (&body);
    zmsg_destroy (&reply);
    zsock_destroy (&control);
    zsock_destroy (&ingest);
}

Test (broker, no_ack_and_no_publish_before_durable)
{
    zsock_t *ingest = s_dealer (mesh->ingest);
    zsock_t *sub = zsock_new_sub (mesh->pub, "QUACKED");
    pond_event_t *first = pond_event_new ("QUACKED", "cust-4");
    cr_assert_eq (s_publish_ok (ingest, first, NULL), 1);
    zmsg_t *live = s_recv (sub, 2000);
    zmsg_destroy (&live);

    //  Freeze the store: the event cannot become durable, so no ACK and
    //  no live delivery; the broker answers 503 after its batch timeout.
    kill (mesh->store, SIGSTOP);
    pond_event_t *second = pond_event_new ("QUACKED", "cust-4");
    s_send_frames (ingest, POND_PUBLISH, s_encode (second));
    zmsg_t *reply = s_recv (ingest, 8000);
    cr_assert_not_null (reply, "the broker must answer even when the store is stuck");
    char *command = zmsg_popstr (reply);
    cr_assert_str_eq (command, POND_NACK, "no ACK while the store cannot write");
    free (command);
    zmsg_destroy (&reply);
    cr_assert_null (s_recv (sub, 200), "nothing published before it is durable");
    kill (mesh->store, SIGCONT);

    //  Resending the same id is safe: exactly one copy, with one seq
    bool dup;
    uint64_t seq = s_publish_ok (ingest, second, &dup);
    cr_assert_eq (seq, 2, "seq stays gap-free");
    uint64_t again = s_publish_ok (ingest, second, &dup);
    cr_assert_eq (again, 2);
    cr_assert (dup);
    pond_event_destroy (&first);
    pond_event_destroy (&second);
    zsock_destroy (&sub);
    zsock_destroy (&ingest);
}

//  PING (with a body) on dealer until the PONG says store_up: false, each
//  PONG within reply_ms. Returns true if it did within total_ms.
static bool
s_store_down_within (zsock_t *dealer, int total_ms, int reply_ms)
{
    uint8_t empty_map [] = { 0x80 };
    int64_t deadline = zclock_mono () + total_ms;
    while (true) {
        s_send_frames (dealer, POND_PING, zframe_new (empty_map, 1));
        zmsg_t *reply = s_recv (dealer, reply_ms);
        cr_assert_not_null (reply, "PONG");
        cr_assert (pond_proto_is (zmsg_first (reply), POND_PONG));
        pond_pong_t pong;
        char err [POND_ERR_SIZE];
        cr_assert_eq (pond_pong_decode (zmsg_next (reply), &pong, err, sizeof err), 0, "%s", err);
        zmsg_destroy (&reply);
        if (!pong.store_up)
            return true;
        if (zclock_mono () >= deadline)
            return false;
        zclock_sleep (50);
    }
}

Test (broker, store_away_gives_503_then_recovers)
{
    zsock_t *ingest = s_dealer (mesh->ingest);
    pond_event_t *event = pond_event_new ("LABEL_ADDED", "cust-5");
    cr_assert_eq (s_publish_ok (ingest, event, NULL), 1);
    pond_event_destroy (&event);
    pond_harness_stop (mesh->store, SIGTERM);
    mesh->store = 0;
    //  Until the broker's PONG says the store is gone
    zsock_t *probe = s_dealer (mesh->ingest);
    cr_assert (s_store_down_within (probe, 8000, 1000), "the broker noticed the store is gone");
    zsock_destroy (&probe);
    event = pond_event_new ("LABEL_ADDED", "cust-5");
    s_send_frames (ingest, POND_PUBLISH, s_encode (event));
    zmsg_t *reply = s_recv (ingest, 8000);
    cr_assert_not_null (reply);
    char *command = zmsg_popstr (reply);
    zframe_t *body = zmsg_pop (reply);
    pond_nack_t nack;
    char err [POND_ERR_SIZE];
    cr_assert_str_eq (command, POND_NACK);
    cr_assert_eq (pond_nack_decode (body, &nack, err, sizeof err), 0);
    cr_assert_eq (nack.code, POND_CODE_UNAVAILABLE);
    cr_assert_gt (nack.retry_ms, 0, "503 tells the producer when to retry");
    free (command);
    zframe_destroy (&body);
    zmsg_destroy (&reply);

    cr_assert_eq (pond_mesh_start_store (mesh), 0);
    cr_assert_eq (s_publish_ok (ingest, event, NULL), 2, "seq continues after the restart");
    pond_event_destroy (&event);
    zsock_destroy (&ingest);
}

//  Many producers with many publishes in flight each: the broker batches
//  them into concurrent APPENDs and the store writes group after group
//  while it reads the next. Every event gets one ACK; seqs are 1..N with
//  no gap and no double; each producer's ACKs come in seq order (ACK order
//  is seq order); live subscribers see the events in seq order too.
Test (broker, pipelined_producers_get_ordered_gap_free_acks)
{
#define PIPE_PRODUCERS 6
#define PIPE_EVENTS    400    //  per producer, all sent at once
    zsock_t *all = pond_harness_sub_live (mesh->pub, "QUACKED", 5000);
    cr_assert_not_null (all, "the subscriber is live");
    zsock_t *ingest [PIPE_PRODUCERS];
    for (int p = 0; p < PIPE_PRODUCERS; p++) {
        ingest [p] = s_dealer (mesh->ingest);
        zsock_set_sndhwm (ingest [p], 10000);
    }
    //  Wait until the broker knows the store is up (no 503 below)
    pond_event_t *first = pond_event_new ("QUACKED", "cust-pipe");
    cr_assert_eq (s_publish_ok (ingest [0], first, NULL), 1);
    pond_event_destroy (&first);
    for (int i = 0; i < PIPE_EVENTS; i++)
        for (int p = 0; p < PIPE_PRODUCERS; p++) {
            pond_event_t *event = pond_event_new ("QUACKED", "cust-pipe");
            s_send_frames (ingest [p], POND_PUBLISH, s_encode (event));
            pond_event_destroy (&event);
        }
    size_t total = 1 + PIPE_PRODUCERS * PIPE_EVENTS;
    bool *seen = calloc (total + 1, sizeof (bool));
    seen [1] = true;
    for (int p = 0; p < PIPE_PRODUCERS; p++) {
        uint64_t previous = 0;
        for (int i = 0; i < PIPE_EVENTS; i++) {
            zmsg_t *reply = s_recv (ingest [p], 10000);
            cr_assert_not_null (reply, "producer %d: no reply to publish %d", p, i);
            char *command = zmsg_popstr (reply);
            cr_assert_str_eq (command, POND_ACK, "producer %d: every publish is ACKed", p);
            zframe_t *body = zmsg_pop (reply);
            pond_ack_t ack;
            char err [POND_ERR_SIZE];
            cr_assert_eq (pond_ack_decode (body, &ack, err, sizeof err), 0, "%s", err);
            cr_assert_not (ack.dup);
            cr_assert (ack.seq >= 2 && ack.seq <= total, "seq %" PRIu64 " out of range", ack.seq);
            cr_assert_not (seen [ack.seq], "seq %" PRIu64 " given twice", ack.seq);
            cr_assert_gt (ack.seq, previous, "a producer's ACKs come in seq order");
            seen [ack.seq] = true;
            previous = ack.seq;
            free (command);
            zframe_destroy (&body);
            zmsg_destroy (&reply);
        }
    }
    for (size_t seq = 1; seq <= total; seq++)
        cr_assert (seen [seq], "seq %zu missing: seqs must be gap-free", seq);
    //  Live: the same events, in seq order
    uint64_t last = 0;
    for (size_t n = 0; n < total; n++) {
        zmsg_t *msg = pond_harness_recv_event (all, 5000);
        cr_assert_not_null (msg, "published %zu of %zu events", n, total);
        char *topic = zmsg_popstr (msg);
        zframe_t *frame = zmsg_pop (msg);
        cr_assert_str_eq (topic, "QUACKED");
        char err [POND_ERR_SIZE];
        pond_event_t *event = pond_event_decode (zframe_data (frame), zframe_size (frame), err,
                                                 sizeof err);
        cr_assert_not_null (event, "%s", err);
        cr_assert_eq (pond_event_seq (event), last + 1, "published in seq order");
        last = pond_event_seq (event);
        pond_event_destroy (&event);
        zframe_destroy (&frame);
        free (topic);
        zmsg_destroy (&msg);
    }
    free (seen);
    for (int p = 0; p < PIPE_PRODUCERS; p++)
        zsock_destroy (&ingest [p]);
    zsock_destroy (&all);
}

//  ==============================================================//  Every reply correlates; each event its own result; what is stored is
//  published

//  Read one reply on sock: its command (caller frees) and NACK/ERROR body.
static char *
s_recv_nack (zsock_t *sock, pond_nack_t *nack)
{
    zmsg_t *reply = s_recv (sock, 5000);
    cr_assert_not_null (reply, "no reply");
    char *command = zmsg_popstr (reply);
    zframe_t *body = zmsg_pop (reply);
    char err [POND_ERR_SIZE];
    memset (nack, 0, sizeof *nack);
    if (streq (command, POND_NACK) || streq (command, POND_ERROR))
        cr_assert_eq (pond_nack_decode (body, nack, err, sizeof err), 0, "%s", err);
    zframe_destroy (&body);
    zmsg_destroy (&reply);
    return command;
}

//  A broker STATS counter (broker part)
static uint64_t
s_broker_counter (zsock_t *control, const char *name)
{
    zstr_send (control, POND_STATS);
    zmsg_t *reply = s_recv (control, 3000);
    cr_assert_not_null (reply);
    zstr_free (&(char *) { zmsg_popstr (reply) });
    zframe_t *body = zmsg_pop (reply);
    char *json = pond_value_to_json (zframe_data (body), zframe_size (body));
    cJSON *tree = cJSON_Parse (json);
    cJSON *item = cJSON_GetObjectItem (cJSON_GetObjectItem (tree, "broker"), name);
    cr_assert (cJSON_IsNumber (item), "no broker counter %s: %s", name, json);
    uint64_t value = (uint64_t) item->valuedouble;
    cJSON_Delete (tree);
    free (json);
    zframe_destroy (&body);
    zmsg_destroy (&reply);
    return value;
}

Test (broker, nack_names_the_event_and_counters_say_which_refusal)
{
    zsock_t *ingest = s_dealer (mesh->ingest);
    zsock_t *control = s_dealer (mesh->control);
    //  A bad name after a valid id: NACK 400 carries that id
    pond_event_t *event = pond_event_new ("QUACKED", "cust-1");
    zframe_t *frame = s_encode (event);
    uint8_t *at = memmem (zframe_data (frame), zframe_size (frame), "QUACKED", 7);
    cr_assert_not_null (at);
    memcpy (at, "quacked", 7);
    s_send_frames (ingest, POND_PUBLISH, frame);
    pond_nack_t nack;
    char *command = s_recv_nack (ingest, &nack);
    cr_assert_str_eq (command, POND_NACK);
    free (command);
    cr_assert_eq (nack.code, POND_CODE_BAD_REQUEST);
    cr_assert (nack.has_id, "the NACK names the event it refuses");
    cr_assert_arr_eq (nack.id, pond_event_id (event), POND_ID_SIZE);

    //  An entity that is not UTF-8: 400 naming the key, with the id
    pond_event_set_entity (event, "cu\xff"
                                  "s1");
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, POND_PUBLISH);
    //  pond_event_encode refuses it now: write the map by hand
    uint8_t raw [128];
    size_t n = 0;
    raw [n++] = 0x84;
    memcpy (raw + n,
            "\xa2"
            "id\xc4\x10",
            5);
    n += 5;
    memcpy (raw + n, pond_event_id (event), 16);
    n += 16;
    memcpy (raw + n,
            "\xa4"
            "name\xa7"
            "QUACKED",
            13);
    n += 13;
    memcpy (raw + n,
            "\xa2"
            "ts\x01",
            4);
    n += 4;
    memcpy (raw + n,
            "\xa6"
            "entity\xa5"
            "cu\xff"
            "s1",
            13);
    n += 13;
    zmsg_addmem (msg, raw, n);
    zmsg_send (&msg, ingest);
    command = s_recv_nack (ingest, &nack);
    cr_assert_str_eq (command, POND_NACK);
    free (command);
    cr_assert_eq (nack.code, POND_CODE_BAD_REQUEST, "%u %s", nack.code, nack.reason);
    cr_assert (strstr (nack.reason, "entity") && strstr (nack.reason, "UTF-8"), "%s", nack.reason);
    cr_assert (nack.has_id);
    cr_assert_arr_eq (nack.id, pond_event_id (event), POND_ID_SIZE);

    //  Too large, id first: 413 with the id
    pond_event_set_entity (event, "cust-1");
    char err [POND_ERR_SIZE];
    char *big = malloc (POND_PUBLISH_MAX_SIZE);
    memset (big, 'x', POND_PUBLISH_MAX_SIZE - 1);
    big [POND_PUBLISH_MAX_SIZE - 1] = 0;
    char *json = malloc (POND_PUBLISH_MAX_SIZE + 16);
    snprintf (json, POND_PUBLISH_MAX_SIZE + 16, "{\"pad\":\"%s\"}", big);
    cr_assert_eq (pond_event_set_data_json (event, json, err, sizeof err), 0, "%s", err);
    size_t size;
    uint8_t *bytes = pond_event_encode (event, &size, err, sizeof err);
    if (!bytes) {
        //  Over what encode takes: make the frame by hand, id first
        bytes = malloc (POND_PUBLISH_MAX_SIZE + 100);
        memcpy (bytes, raw, 22);
        memset (bytes + 22, 0xc0, POND_PUBLISH_MAX_SIZE + 78);
        size = POND_PUBLISH_MAX_SIZE + 100;
    }
    cr_assert_gt (size, POND_PUBLISH_MAX_SIZE);
    s_send_frames (ingest, POND_PUBLISH, zframe_new (bytes, size));
    command = s_recv_nack (ingest, &nack);
    cr_assert_str_eq (command, POND_NACK);
    free (command);
    cr_assert_eq (nack.code, POND_CODE_TOO_LARGE, "%u %s", nack.code, nack.reason);
    cr_assert (nack.has_id, "413 names the event too");
    cr_assert_arr_eq (nack.id, pond_event_id (event), POND_ID_SIZE);
    free (bytes);
    free (big);
    free (json);

    //  An unknown command
    zstr_send (ingest, "SUBSCRIBE");
    command = s_recv_nack (ingest, &nack);
    free (command);
    cr_assert_eq (nack.code, POND_CODE_NOT_FOUND);

    //  Each refusal in its own counter: malformed is 400 alone
    cr_assert_eq (s_broker_counter (control, "malformed"), 2);
    cr_assert_eq (s_broker_counter (control, "too_large"), 1);
    cr_assert_eq (s_broker_counter (control, "unknown_command"), 1);
    cr_assert_eq (s_broker_counter (control, "nacked"), 4);
    pond_event_destroy (&event);
    zsock_destroy (&control);
    zsock_destroy (&ingest);
}

Test (broker, reused_id_gets_409_and_the_batch_is_stored)
{
    zsock_t *ingest = s_dealer (mesh->ingest);
    zsock_t *other = s_dealer (mesh->ingest);
    zsock_t *control = s_dealer (mesh->control);
    char err [POND_ERR_SIZE];
    pond_event_t *first = pond_event_new ("QUACKED", "cust-1");
    cr_assert_eq (pond_event_set_data_json (first, "{\"n\":1}", err, sizeof err), 0);
    cr_assert_eq (s_publish_ok (ingest, first, NULL), 1);

    //  The same id for another event, pipelined with a fresh event from
    //  another producer (one APPEND, most of the time): the first gets
    //  409, the second its ACK
    pond_event_t *reuse = pond_event_dup (first);
    cr_assert_eq (pond_event_set_data_json (reuse, "{\"n\":2}", err, sizeof err), 0);
    pond_event_t *fresh = pond_event_new ("QUACKED", "cust-2");
    s_send_frames (ingest, POND_PUBLISH, s_encode (reuse));
    s_send_frames (other, POND_PUBLISH, s_encode (fresh));
    pond_nack_t nack;
    char *command = s_recv_nack (ingest, &nack);
    cr_assert_str_eq (command, POND_NACK, "an id reused for another event is refused");
    free (command);
    cr_assert_eq (nack.code, POND_CODE_CONFLICT, "%u %s", nack.code, nack.reason);
    cr_assert (strstr (nack.reason, "different event"), "%s", nack.reason);
    cr_assert (nack.has_id);
    cr_assert_arr_eq (nack.id, pond_event_id (first), POND_ID_SIZE);
    zmsg_t *reply = s_recv (other, 5000);
    cr_assert_not_null (reply);
    command = zmsg_popstr (reply);
    cr_assert_str_eq (command, POND_ACK, "the other event of the batch is stored");
    free (command);
    zmsg_destroy (&reply);

    //  The exact event again is still a duplicate
    bool dup = false;
    cr_assert_eq (s_publish_ok (ingest, first, &dup), 1);
    cr_assert (dup);
    cr_assert_eq (s_broker_counter (control, "conflicts"), 1);
    pond_event_destroy (&first);
    pond_event_destroy (&reuse);
    pond_event_destroy (&fresh);
    zsock_destroy (&control);
    zsock_destroy (&other);
    zsock_destroy (&ingest);
}

Test (broker, late_appended_is_published_and_resend_acks_dup)
{
    zsock_t *ingest = s_dealer (mesh->ingest);
    zsock_t *sub = zsock_new_sub (mesh->pub, "QUACKED");
    pond_event_t *first = pond_event_new ("QUACKED", "cust-4");
    cr_assert_eq (s_publish_ok (ingest, first, NULL), 1);
    zmsg_t *live = s_recv (sub, 2000);
    cr_assert_not_null (live);
    zmsg_destroy (&live);

    //  The store freezes with the APPEND queued: the broker answers 503
    kill (mesh->store, SIGSTOP);
    pond_event_t *second = pond_event_new ("QUACKED", "cust-4");
    s_send_frames (ingest, POND_PUBLISH, s_encode (second));
    pond_nack_t nack;
    char *command = s_recv_nack (ingest, &nack);
    cr_assert_str_eq (command, POND_NACK);
    free (command);
    cr_assert_eq (nack.code, POND_CODE_UNAVAILABLE);
    //  It wakes up and writes the event: durable, so published live
    kill (mesh->store, SIGCONT);
    live = s_recv (sub, 5000);
    cr_assert_not_null (live, "an event stored after its 503 is published all the same");
    zframe_t *topic = zmsg_pop (live);
    zframe_t *frame = zmsg_pop (live);
    cr_assert (zframe_streq (topic, "QUACKED"));
    char err [POND_ERR_SIZE];
    pond_event_t *got = pond_event_decode (zframe_data (frame), zframe_size (frame), err,
                                           sizeof err);
    cr_assert_not_null (got, "%s", err);
    cr_assert_arr_eq (pond_event_id (got), pond_event_id (second), POND_ID_SIZE);
    cr_assert_eq (pond_event_seq (got), 2);
    pond_event_destroy (&got);
    zframe_destroy (&topic);
    zframe_destroy (&frame);
    zmsg_destroy (&live);
    //  The producer's resend: ACK dup, same seq, not published twice
    bool dup = false;
    cr_assert_eq (s_publish_ok (ingest, second, &dup), 2);
    cr_assert (dup);
    cr_assert_null (s_recv (sub, 300), "a duplicate is not published again");
    pond_event_destroy (&first);
    pond_event_destroy (&second);
    zsock_destroy (&sub);
    zsock_destroy (&ingest);
}

Test (broker, error_carries_rid_and_cancel_ends_410)
{
    zsock_t *ingest = s_dealer (mesh->ingest);
    for (int i = 0; i < 600; i++) {
        pond_event_t *event = pond_event_new ("QUACKED", "cust-3");
        s_publish_ok (ingest, event, NULL);
        pond_event_destroy (&event);
    }
    zsock_t *control = s_dealer (mesh->control);
    //  A REPLAY refused (credit 0): ERROR with the rid it was sent with
    pond_replay_req_t request = { .rid = 41, .credit = 0 };
    s_send_frames (control, POND_REPLAY, pond_replay_req_encode (&request));
    pond_nack_t error;
    char *command = s_recv_nack (control, &error);
    cr_assert_str_eq (command, POND_ERROR);
    free (command);
    cr_assert_eq (error.code, POND_CODE_BAD_REQUEST);
    cr_assert (error.has_rid, "ERROR for a refused REPLAY carries its rid");
    cr_assert_eq (error.rid, 41);
    //  A body with no rid at all: ERROR without one
    s_send_frames (control, POND_REPLAY, zframe_new ("\x80", 1));
    command = s_recv_nack (control, &error);
    free (command);
    cr_assert_not (error.has_rid);

    //  CANCEL: END with its own code, not 200
    request = (pond_replay_req_t) { .rid = 42, .credit = 1 };
    s_send_frames (control, POND_REPLAY, pond_replay_req_encode (&request));
    zmsg_t *msg = s_recv (control, 5000);
    cr_assert_not_null (msg);
    command = zmsg_popstr (msg);
    cr_assert_str_eq (command, POND_CHUNK);
    free (command);
    zmsg_destroy (&msg);
    pond_credit_t cancel = { .rid = 42 };
    s_send_frames (control, POND_CANCEL, pond_credit_encode (&cancel));
    msg = s_recv (control, 5000);
    cr_assert_not_null (msg);
    command = zmsg_popstr (msg);
    cr_assert_str_eq (command, POND_END);
    free (command);
    zframe_t *body = zmsg_pop (msg);
    pond_end_t end;
    char err [POND_ERR_SIZE];
    cr_assert_eq (pond_end_decode (body, &end, err, sizeof err), 0, "%s", err);
    cr_assert_eq (end.rid, 42);
    cr_assert_eq (end.code, POND_CODE_CANCELLED, "END after CANCEL: %u %s", end.code, end.reason);
    cr_assert_eq (end.count, POND_CHUNK_EVENTS);
    zframe_destroy (&body);
    zmsg_destroy (&msg);
    zsock_destroy (&control);
    zsock_destroy (&ingest);
}

//  A second broker on the data directory of a running
//  one is refused before it binds anything, naming the holder's pid, and
//  the first keeps serving (it used to take over the ipc endpoints: once
//  it stopped, nothing could publish)
Test (broker, second_broker_on_the_same_data_is_refused)
{
    zsock_t *ingest = s_dealer (mesh->ingest);
    pond_event_t *event = pond_event_new ("QUACKED", "cust-1");
    uint64_t first = s_publish_ok (ingest, event, NULL);
    pond_event_destroy (&event);

    char log [600];
    snprintf (log, sizeof log, "%s/second-broker.log", mesh->dir);
    pid_t second = pond_harness_spawn ("pond-broker", log, "--data", mesh->dir, NULL);
    cr_assert_gt (second, 0);
    int status = -1;
    for (int waited = 0; waited < 5000 && status < 0; waited += 20) {
        int wstatus;
        if (waitpid (second, &wstatus, WNOHANG) == second)
            status = wstatus;
        else
            zclock_sleep (20);
    }
    if (status < 0)
        pond_harness_stop (second, SIGTERM);
    cr_assert_geq (status, 0, "the second broker still runs after 5 s");
    cr_assert (WIFEXITED (status) && WEXITSTATUS (status) != 0, "it must exit non-zero");
    char *out = pond_harness_run (NULL, "cat %s", log);
    char holder [32];
    snprintf (holder, sizeof holder, "(pid %d)", (int) mesh->broker);
    cr_assert (strstr (out, "another pond-broker") && strstr (out, holder),
               "the message names the holder %s: %s", holder, out);
    free (out);

    //  The first broker still serves, on the same ingest socket
    for (int i = 0; i < 5; i++) {
        event = pond_event_new ("QUACKED", "cust-1");
        cr_assert_eq (s_publish_ok (ingest, event, NULL), first + 1 + (uint64_t) i);
        pond_event_destroy (&event);
    }
    zsock_destroy (&ingest);
    //  ... and so does a new client, which would not reach it if the
    //  second broker had taken the ipc endpoint over
    ingest = s_dealer (mesh->ingest);
    event = pond_event_new ("QUACKED", "cust-1");
    cr_assert_eq (s_publish_ok (ingest, event, NULL), first + 6);
    pond_event_destroy (&event);
    zsock_destroy (&ingest);
}

//  A PING with a body gets a PONG saying whether the
//  store is reachable, and the head; a bare PING still gets a bare PONG
Test (broker, pong_says_whether_the_store_is_reachable)
{
    zsock_t *ingest = s_dealer (mesh->ingest);
    pond_event_t *event = pond_event_new ("QUACKED", "cust-1");
    uint64_t seq = s_publish_ok (ingest, event, NULL);
    pond_event_destroy (&event);
    s_send_frames (ingest, POND_PING, NULL);
    zmsg_t *reply = s_recv (ingest, 5000);
    cr_assert_not_null (reply);
    cr_assert_eq (zmsg_size (reply), 1, "a bare PING gets a bare PONG");
    cr_assert (pond_proto_is (zmsg_first (reply), POND_PONG));
    zmsg_destroy (&reply);

    uint8_t empty_map [] = { 0x80 };
    s_send_frames (ingest, POND_PING, zframe_new (empty_map, 1));
    reply = s_recv (ingest, 5000);
    cr_assert_not_null (reply);
    cr_assert (pond_proto_is (zmsg_first (reply), POND_PONG));
    pond_pong_t pong;
    char err [POND_ERR_SIZE];
    cr_assert_eq (pond_pong_decode (zmsg_next (reply), &pong, err, sizeof err), 0, "%s", err);
    cr_assert (pong.store_up);
    cr_assert_eq (pong.head, seq);
    zmsg_destroy (&reply);

    //  The store away: store_up false (within the broker's liveness check)
    pond_harness_stop (mesh->store, SIGKILL);
    mesh->store = 0;
    cr_assert (s_store_down_within (ingest, 15000, 5000),
               "PONG says store_up: false once the store is gone");
    zsock_destroy (&ingest);
}

//  ---------------------------------------------------------------------
//  PUBLISH batches: "PUBLISH", event, event, ... answered by one RESULTS

//  An event of name QUACKED for entity with a data blob of pad bytes
static pond_event_t *
s_event_padded (const char *entity, size_t pad)
{
    pond_event_t *event = pond_event_new ("QUACKED", entity);
    if (pad) {
        char *json = (char *) malloc (pad + 32);
        int len = snprintf (json, 32, "{\"pad\":\"");
        memset (json + len, 'x', pad);
        strcpy (json + len + pad, "\"}");
        char err [POND_ERR_SIZE];
        cr_assert_eq (pond_event_set_data_json (event, json, err, sizeof err), 0, "%s", err);
        free (json);
    }
    return event;
}

//  An event over the size limit (pond_event_encode refuses those),
//  encoded by hand: its id into id
static zframe_t *
s_encode_oversized (uint8_t *id, size_t pad)
{
    pond_event_t *model = pond_event_new ("QUACKED", "cust-b");
    memcpy (id, pond_event_id (model), POND_ID_SIZE);
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 5);
    const char *keys [] = { "id", "name", "ts", "entity", "data" };
    for (int i = 0; i < 5; i++) {
        msgpack_pack_str (&pk, strlen (keys [i]));
        msgpack_pack_str_body (&pk, keys [i], strlen (keys [i]));
        if (i == 0) {
            msgpack_pack_bin (&pk, POND_ID_SIZE);
            msgpack_pack_bin_body (&pk, id, POND_ID_SIZE);
        }
        else if (i == 1) {
            msgpack_pack_str (&pk, 7);
            msgpack_pack_str_body (&pk, "QUACKED", 7);
        }
        else if (i == 2)
            msgpack_pack_uint64 (&pk, pond_event_ts (model));
        else if (i == 3) {
            msgpack_pack_str (&pk, 6);
            msgpack_pack_str_body (&pk, "cust-b", 6);
        }
        else {
            char *blob = (char *) malloc (pad);
            memset (blob, 'x', pad);
            msgpack_pack_map (&pk, 1);
            msgpack_pack_str (&pk, 3);
            msgpack_pack_str_body (&pk, "pad", 3);
            msgpack_pack_str (&pk, pad);
            msgpack_pack_str_body (&pk, blob, pad);
            free (blob);
        }
    }
    zframe_t *frame = zframe_new (sbuf.data, sbuf.size);
    msgpack_sbuffer_destroy (&sbuf);
    pond_event_destroy (&model);
    return frame;
}

//  count new QUACKED events for cust-b, encoded into frames; their ids
//  into ids unless it is NULL.
static void
s_quacked_frames (zframe_t **frames, size_t count, uint8_t (*ids) [POND_ID_SIZE])
{
    for (size_t i = 0; i < count; i++) {
        pond_event_t *event = pond_event_new ("QUACKED", "cust-b");
        if (ids)
            memcpy (ids [i], pond_event_id (event), POND_ID_SIZE);
        frames [i] = s_encode (event);
        pond_event_destroy (&event);
    }
}

//  Send PUBLISH with these frames (taken) as one message.
static void
s_send_batch (zsock_t *sock, zframe_t **frames, size_t count)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, POND_PUBLISH);
    for (size_t i = 0; i < count; i++)
        zmsg_append (msg, &frames [i]);
    cr_assert_eq (zmsg_send (&msg, sock), 0);
}

//  Wait for one RESULTS; its results into results (POND_BATCH_EVENTS_MAX
//  of room), their number into *count. Returns the batch's code.
static uint32_t
s_recv_results (zsock_t *sock, pond_result_t *results, size_t *count, char *reason)
{
    zmsg_t *reply = s_recv (sock, 10000);
    cr_assert_not_null (reply, "no reply to a PUBLISH batch");
    cr_assert_eq (zmsg_size (reply), 2, "RESULTS is [command, body]");
    cr_assert (pond_proto_is (zmsg_first (reply), POND_RESULTS), "the reply is RESULTS");
    uint32_t code;
    char err [POND_ERR_SIZE];
    char ignored [POND_REASON_MAX];
    cr_assert_eq (pond_results_decode (zmsg_next (reply), &code, reason ? reason : ignored,
                                       POND_REASON_MAX, results, POND_BATCH_EVENTS_MAX, count, err,
                                       sizeof err),
                  0, "%s", err);
    zmsg_destroy (&reply);
    return code;
}

//  The head as the broker's PONG says
static uint64_t
s_head (zsock_t *ingest)
{
    uint8_t empty_map [] = { 0x80 };
    s_send_frames (ingest, POND_PING, zframe_new (empty_map, 1));
    zmsg_t *reply = s_recv (ingest, 5000);
    cr_assert_not_null (reply);
    cr_assert (pond_proto_is (zmsg_first (reply), POND_PONG));
    pond_pong_t pong;
    char err [POND_ERR_SIZE];
    cr_assert_eq (pond_pong_decode (zmsg_next (reply), &pong, err, sizeof err), 0, "%s", err);
    zmsg_destroy (&reply);
    return pong.head;
}

static pond_result_t *
s_results_new (void)
{
    pond_result_t *results = (pond_result_t *) calloc (POND_BATCH_EVENTS_MAX,
                                                       sizeof (pond_result_t));
    cr_assert_not_null (results);
    return results;
}

Test (broker, batch_of_100_gets_one_results_in_order_with_gap_free_seqs)
{
    zsock_t *ingest = s_dealer (mesh->ingest);
    zsock_t *control = s_dealer (mesh->control);
    pond_event_t *first = pond_event_new ("QUACKED", "cust-b");
    cr_assert_eq (s_publish_ok (ingest, first, NULL), 1);    //  the store is up
    pond_event_destroy (&first);
#define BATCH_N 100
    zframe_t *frames [BATCH_N];
    uint8_t ids [BATCH_N][POND_ID_SIZE];
    s_quacked_frames (frames, BATCH_N, ids);
    s_send_batch (ingest, frames, BATCH_N);
    pond_result_t *results = s_results_new ();
    size_t count;
    cr_assert_eq (s_recv_results (ingest, results, &count, NULL), POND_CODE_OK);
    cr_assert_eq (count, BATCH_N, "one result per event");
    for (int i = 0; i < BATCH_N; i++) {
        cr_assert_eq (results [i].code, POND_CODE_OK, "%d: %u %s", i, results [i].code,
                      results [i].reason);
        cr_assert (results [i].has_id);
        cr_assert_arr_eq (results [i].id, ids [i], POND_ID_SIZE, "in frame order");
        cr_assert_eq (results [i].seq, 2 + (uint64_t) i, "gap-free seqs in order");
        cr_assert_not (results [i].dup);
    }
    cr_assert_null (s_recv (ingest, 300), "one reply for the whole batch");
    cr_assert_eq (s_broker_counter (control, "batches"), 1);
    cr_assert_eq (s_broker_counter (control, "received"), 1 + BATCH_N);
    cr_assert_eq (s_broker_counter (control, "acked"), 1 + BATCH_N);
    free (results);
    zsock_destroy (&control);
    zsock_destroy (&ingest);
}

Test (broker, batch_refusals_409_400_413_fail_only_themselves)
{
    zsock_t *ingest = s_dealer (mesh->ingest);
    char err [POND_ERR_SIZE];
    pond_event_t *first = pond_event_new ("QUACKED", "cust-b");
    cr_assert_eq (pond_event_set_data_json (first, "{\"n\":1}", err, sizeof err), 0);
    cr_assert_eq (s_publish_ok (ingest, first, NULL), 1);
    pond_event_t *reuse = pond_event_dup (first);    //  same id, other data: 409
    cr_assert_eq (pond_event_set_data_json (reuse, "{\"n\":2}", err, sizeof err), 0);
    uint8_t big_id [POND_ID_SIZE];
    pond_event_t *good [3];
    for (int i = 0; i < 3; i++)
        good [i] = pond_event_new ("QUACKED", "cust-b");
    zframe_t *frames [] = { s_encode (good [0]),
                            s_encode (reuse),
                            zframe_new ("\x93\x01\x02", 3),
                            s_encode_oversized (big_id, 70000),
                            s_encode (good [1]),
                            s_encode (good [2]) };
    s_send_batch (ingest, frames, 6);
    pond_result_t *results = s_results_new ();
    size_t count;
    cr_assert_eq (s_recv_results (ingest, results, &count, NULL), POND_CODE_OK);
    cr_assert_eq (count, 6);
    uint32_t codes [] = { 200, 409, 400, 413, 200, 200 };
    for (int i = 0; i < 6; i++)
        cr_assert_eq (results [i].code, codes [i], "%d: %u %s", i, results [i].code,
                      results [i].reason);
    cr_assert_arr_eq (results [1].id, pond_event_id (first), POND_ID_SIZE);
    cr_assert_not (results [2].has_id, "no id could be read from the garbage");
    cr_assert (results [3].has_id, "the 413 names its event");
    cr_assert_arr_eq (results [3].id, big_id, POND_ID_SIZE);
    cr_assert (strstr (results [1].reason, "different event"), "%s", results [1].reason);
    cr_assert_gt (strlen (results [2].reason), 5);
    cr_assert_eq (results [0].seq, 2);
    cr_assert_eq (results [4].seq, 3);
    cr_assert_eq (results [5].seq, 4);
    cr_assert_eq (s_head (ingest), 4, "only the good ones were stored");
    free (results);
    pond_event_destroy (&first);
    pond_event_destroy (&reuse);
    for (int i = 0; i < 3; i++)
        pond_event_destroy (&good [i]);
    zsock_destroy (&ingest);
}

Test (broker, batch_over_the_byte_bound_is_refused_whole)
{
    zsock_t *ingest = s_dealer (mesh->ingest);
    zsock_t *other = s_dealer (mesh->ingest);
    pond_event_t *first = pond_event_new ("QUACKED", "cust-b");
    cr_assert_eq (s_publish_ok (ingest, first, NULL), 1);
    pond_event_destroy (&first);
    //  20 events of about 60,000 bytes: each is fine, together over 1 MiB
    zframe_t *frames [20];
    uint8_t ids [20][POND_ID_SIZE];
    size_t bytes = 0;
    for (int i = 0; i < 20; i++) {
        pond_event_t *event = s_event_padded ("cust-b", 60000);
        memcpy (ids [i], pond_event_id (event), POND_ID_SIZE);
        frames [i] = s_encode (event);
        bytes += zframe_size (frames [i]);
        pond_event_destroy (&event);
    }
    cr_assert_gt (bytes, POND_BATCH_BYTES_MAX);
    s_send_batch (ingest, frames, 20);
    pond_result_t *results = s_results_new ();
    size_t count;
    char reason [POND_REASON_MAX];
    cr_assert_eq (s_recv_results (ingest, results, &count, reason), POND_CODE_TOO_LARGE);
    cr_assert (strstr (reason, "bytes") && strstr (reason, "fewer"), "%s", reason);
    cr_assert_eq (count, 20, "every event named");
    for (int i = 0; i < 20; i++) {
        cr_assert_eq (results [i].code, POND_CODE_TOO_LARGE);
        cr_assert_arr_eq (results [i].id, ids [i], POND_ID_SIZE);
    }
    cr_assert_eq (s_head (ingest), 1, "nothing of it was stored");
    //  The broker is up and serves others, singles and batches
    pond_event_t *event = pond_event_new ("QUACKED", "cust-c");
    cr_assert_eq (s_publish_ok (other, event, NULL), 2);
    pond_event_destroy (&event);
    zframe_t *two [2];
    for (int i = 0; i < 2; i++) {
        event = pond_event_new ("QUACKED", "cust-c");
        two [i] = s_encode (event);
        pond_event_destroy (&event);
    }
    s_send_batch (ingest, two, 2);
    cr_assert_eq (s_recv_results (ingest, results, &count, NULL), POND_CODE_OK);
    cr_assert_eq (count, 2);
    cr_assert_eq (results [0].seq, 3);
    cr_assert_eq (results [1].seq, 4);
    free (results);
    zsock_destroy (&other);
    zsock_destroy (&ingest);
}

Test (broker, batch_of_1025_events_is_refused_and_1024_taken)
{
    zsock_t *ingest = s_dealer (mesh->ingest);
    pond_event_t *first = pond_event_new ("QUACKED", "cust-b");
    cr_assert_eq (s_publish_ok (ingest, first, NULL), 1);
    pond_event_destroy (&first);
    zframe_t **frames = (zframe_t **) calloc (POND_BATCH_EVENTS_MAX + 1, sizeof (zframe_t *));
    s_quacked_frames (frames, POND_BATCH_EVENTS_MAX + 1, NULL);
    s_send_batch (ingest, frames, POND_BATCH_EVENTS_MAX + 1);
    pond_result_t *results = s_results_new ();
    size_t count;
    char reason [POND_REASON_MAX];
    cr_assert_eq (s_recv_results (ingest, results, &count, reason), POND_CODE_TOO_LARGE);
    cr_assert (strstr (reason, "1025 events") && strstr (reason, "1024"), "%s", reason);
    cr_assert_eq (count, 0);
    cr_assert_eq (s_head (ingest), 1, "nothing of it was stored");
    s_quacked_frames (frames, POND_BATCH_EVENTS_MAX, NULL);
    s_send_batch (ingest, frames, POND_BATCH_EVENTS_MAX);
    cr_assert_eq (s_recv_results (ingest, results, &count, NULL), POND_CODE_OK);
    cr_assert_eq (count, POND_BATCH_EVENTS_MAX);
    for (int i = 0; i < POND_BATCH_EVENTS_MAX; i++)
        cr_assert_eq (results [i].seq, 2 + (uint64_t) i, "%d: %u %s", i, results [i].code,
                      results [i].reason);
    free (frames);
    free (results);
    zsock_destroy (&ingest);
}

Test (broker, batch_with_truncated_and_empty_frames)
{
    zsock_t *ingest = s_dealer (mesh->ingest);
    pond_event_t *first = pond_event_new ("QUACKED", "cust-b");
    cr_assert_eq (s_publish_ok (ingest, first, NULL), 1);
    pond_event_destroy (&first);
    pond_event_t *events [3];
    for (int i = 0; i < 3; i++)
        events [i] = pond_event_new ("QUACKED", "cust-b");
    zframe_t *whole = s_encode (events [1]);
    zframe_t *frames [] = { s_encode (events [0]),
                            zframe_new (zframe_data (whole),
                                        zframe_size (whole) / 2),    //  cut short
                            zframe_new (NULL, 0),                    //  empty
                            zframe_new ("\xc1\xc1\xc1", 3),          //  never msgpack
                            s_encode (events [2]) };
    zframe_destroy (&whole);
    s_send_batch (ingest, frames, 5);
    pond_result_t *results = s_results_new ();
    size_t count;
    cr_assert_eq (s_recv_results (ingest, results, &count, NULL), POND_CODE_OK);
    cr_assert_eq (count, 5);
    uint32_t codes [] = { 200, 400, 400, 400, 200 };
    for (int i = 0; i < 5; i++)
        cr_assert_eq (results [i].code, codes [i], "%d: %u %s", i, results [i].code,
                      results [i].reason);
    cr_assert_not (results [2].has_id);
    cr_assert_not (results [3].has_id);
    cr_assert_arr_eq (results [0].id, pond_event_id (events [0]), POND_ID_SIZE);
    cr_assert_arr_eq (results [4].id, pond_event_id (events [2]), POND_ID_SIZE);
    cr_assert_eq (results [0].seq, 2);
    cr_assert_eq (results [4].seq, 3);
    free (results);
    for (int i = 0; i < 3; i++)
        pond_event_destroy (&events [i]);
    zsock_destroy (&ingest);
}

Test (broker, batch_while_the_store_is_away_gets_503_per_event)
{
    zsock_t *ingest = s_dealer (mesh->ingest);
    pond_event_t *first = pond_event_new ("QUACKED", "cust-b");
    cr_assert_eq (s_publish_ok (ingest, first, NULL), 1);
    pond_event_destroy (&first);
    pond_harness_stop (mesh->store, SIGKILL);
    mesh->store = 0;
    cr_assert (s_store_down_within (ingest, 15000, 5000), "the broker noticed the store is gone");
    pond_event_t *events [5];
    zframe_t *frames [5];
    for (int i = 0; i < 5; i++) {
        events [i] = pond_event_new ("QUACKED", "cust-b");
        frames [i] = s_encode (events [i]);
    }
    s_send_batch (ingest, frames, 5);
    pond_result_t *results = s_results_new ();
    size_t count;
    cr_assert_eq (s_recv_results (ingest, results, &count, NULL), POND_CODE_OK);
    cr_assert_eq (count, 5);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq (results [i].code, POND_CODE_UNAVAILABLE);
        cr_assert_gt (results [i].retry_ms, 0, "503 says when to resend");
        cr_assert_arr_eq (results [i].id, pond_event_id (events [i]), POND_ID_SIZE);
    }
    //  Back: the same batch is stored, in order
    cr_assert_eq (pond_mesh_start_store (mesh), 0);
    bool stored = false;
    for (int attempt = 0; attempt < 50 && !stored; attempt++) {
        for (int i = 0; i < 5; i++)
            frames [i] = s_encode (events [i]);
        s_send_batch (ingest, frames, 5);
        cr_assert_eq (s_recv_results (ingest, results, &count, NULL), POND_CODE_OK);
        stored = results [0].code == POND_CODE_OK;
        if (!stored)
            zclock_sleep ((int) results [0].retry_ms);
    }
    cr_assert (stored);
    for (int i = 0; i < 5; i++)
        cr_assert_eq (results [i].seq, 2 + (uint64_t) i, "%d: %u", i, results [i].code);
    free (results);
    for (int i = 0; i < 5; i++)
        pond_event_destroy (&events [i]);
    zsock_destroy (&ingest);
}

//  ---------------------------------------------------------------------
//  The store link ending in the middle of a reply. The broker is alone
//  here, with a stand-in store (a ROUTER) that answers its STATS with
//  replies of many frames and then goes away. With ZMQ_IMMEDIATE on the
//  store DEALER, libzmq 4.3 tore the link's pipe down without delay when
//  the connection ended, also while the broker was half way through a
//  reply (libzmq handles commands every 100 frames inside zmq_msg_recv),
//  and the next frame aborted the broker: "Assertion failed: !_more
//  (src/fq.cpp:112)".

#define CUT_ROUNDS  3
#define CUT_REPLIES 4        //  replies queued before the store goes
#define CUT_FRAMES  50000    //  frames per reply

static pid_t cut_broker = -1;
static char *cut_dir;
static zsock_t *fake;    //  the stand-in store

static void
s_cut_teardown (void)
{
    if (cut_broker > 0)
        pond_harness_stop (cut_broker, SIGTERM);
    cut_broker = -1;
    zsock_destroy (&fake);
    pond_harness_tempdir_done (&cut_dir);
}

//  A broker that has died: its status in words, else NULL
static const char *
s_died (pid_t pid, char *text, size_t size)
{
    int status;
    if (waitpid (pid, &status, WNOHANG) != pid)
        return NULL;
    snprintf (text, size, "%s %d", WIFSIGNALED (status) ? "signal" : "exit code",
              WIFSIGNALED (status) ? WTERMSIG (status) : WEXITSTATUS (status));
    return text;
}

Test (broker_link, survives_the_store_going_away_mid_reply, .fini = s_cut_teardown, .timeout = 120)
{
    zsys_init ();
    zsys_set_logstream (stderr);
    cut_dir = pond_harness_tempdir ();
    cr_assert_not_null (cut_dir);
    char store [256], ingest [256], pub [256], control [256], ready [512], log [512];
    //  tcp, on one port: a new store's ipc file could be unlinked by the
    //  previous one's listener as it closes
    snprintf (store, sizeof store, "tcp://127.0.0.1:*");
    snprintf (ingest, sizeof ingest, "ipc://%s/ingest.ipc", cut_dir);
    snprintf (pub, sizeof pub, "ipc://%s/pub.ipc", cut_dir);
    snprintf (control, sizeof control, "ipc://%s/control.ipc", cut_dir);
    snprintf (ready, sizeof ready, "%s/broker.zpl", cut_dir);
    snprintf (log, sizeof log, "%s/broker.log", cut_dir);
    char died [64];
    for (int round = 0; round <= CUT_ROUNDS; round++) {
        fake = zsock_new (ZMQ_ROUTER);
        cr_assert_not_null (fake);
        //  Linger: every queued reply goes out before the connection ends
        zsock_set_linger (fake, 30000);
        int64_t deadline = zclock_mono () + 10000;
        int rc;
        while ((rc = zsock_bind (fake, "%s", store)) < 0 && zclock_mono () < deadline)
            zclock_sleep (20);    //  the previous store's port is still closing
        cr_assert_geq (rc, 0, "cannot bind %s", store);
        char *bound = zsock_last_endpoint (fake);
        snprintf (store, sizeof store, "%s", bound);
        zstr_free (&bound);
        if (round == 0) {
            cut_broker = pond_harness_spawn ("pond-broker", log, "--data", cut_dir, "--store",
                                             store, "--ingest", ingest, "--pub", pub, "--control",
                                             control, NULL);
            cr_assert_gt (cut_broker, 0);
            cr_assert_eq (pond_harness_wait_file (ready, 10000), 0,
                          "pond-broker did not start; see %s", log);
        }
        //  The broker asks for STATS as soon as it reaches the store: it
        //  is alive and connected
        zmsg_t *ask = NULL;
        const char *dead = NULL;
        deadline = zclock_mono () + 20000;
        while (!ask && !(dead = s_died (cut_broker, died, sizeof died))
               && zclock_mono () < deadline)
            ask = s_recv (fake, 100);
        if (dead)
            cut_broker = -1;    //  reaped
        cr_assert_not_null (ask, "round %d: no STATS from the broker (%s; see %s)", round,
                            dead ? dead : "alive", log);
        zframe_t *routing_id = zmsg_pop (ask);
        zmsg_destroy (&ask);
        if (round == CUT_ROUNDS) {
            zframe_destroy (&routing_id);
            zsock_destroy (&fake);
            break;
        }
        //  Long replies, then the store goes: the broker is still reading
        //  the first when the connection ends
        for (int reply_nbr = 0; reply_nbr < CUT_REPLIES; reply_nbr++) {
            zmsg_t *reply = zmsg_new ();
            zframe_t *to = zframe_dup (routing_id);
            zmsg_append (reply, &to);
            zmsg_addstr (reply, POND_STATS);
            for (int frame_nbr = 0; frame_nbr < CUT_FRAMES; frame_nbr++)
                zmsg_addmem (reply, "x", 1);
            cr_assert_eq (zmsg_send (&reply, fake), 0);
        }
        zframe_destroy (&routing_id);
        zsock_destroy (&fake);
    }
    cr_assert_null (s_died (cut_broker, died, sizeof died), "the broker died (%s); see %s", died,
                    log);
}
