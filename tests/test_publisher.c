/*  test_publisher: client/pond_publisher, the pipelined producer.

    The hard paths run against a scripted fake ingest: a ROUTER in the
    test's own thread. The publisher's sends queue on it without waiting
    for the fake, so a test pushes, reads what went over the wire, answers
    (or does not), and then asks the publisher for results: every step is
    in the test's hands and nothing sleeps a fixed time. The fake counts
    what it received, so each test checks the results and the wire.

    The rest runs against a real store and broker (tests/pond_harness):
    many events through one window, ACKs with their seqs, 409 for an id
    used before, and the client CPU per event, old hand-written window
    against the publisher (figures on stderr).
*/
#include <criterion/criterion.h>
#include <inttypes.h>
#include <sys/resource.h>

#include "pond_client.h"
#include "pond_proto.h"
#include "pond_harness.h"

//  =====================================================================
//  The scripted fake ingest

typedef struct {
    zsock_t *router;
    char endpoint [64];
    int publishes;          //  PUBLISH received
    int answered;           //  ... and answered by the test
    int max_outstanding;    //  most received and not yet answered
} fake_t;

//  One PUBLISH as received
typedef struct {
    zframe_t *peer;
    zframe_t *body;
    uint8_t id [POND_ID_SIZE];
} got_t;

static fake_t *fake;
static pond_client_t *client;
static pond_publisher_t *publisher;

static void
s_fake_setup (void)
{
    fake = (fake_t *) zmalloc (sizeof (fake_t));
    fake->router = zsock_new (ZMQ_ROUTER);
    cr_assert_not_null (fake->router);
    zsock_set_linger (fake->router, 0);
    int port = zsock_bind (fake->router, "tcp://127.0.0.1:*");
    cr_assert_gt (port, 0);
    snprintf (fake->endpoint, sizeof fake->endpoint, "tcp://127.0.0.1:%d", port);
    client = pond_client_new (fake->endpoint);
    cr_assert_not_null (client);
    publisher = pond_publisher_new (client);
    cr_assert_not_null (publisher);
}

static void
s_fake_teardown (void)
{
    pond_publisher_destroy (&publisher);
    pond_client_destroy (&client);
    if (fake)
        zsock_destroy (&fake->router);
    free (fake);
    fake = NULL;
}

TestSuite (publisher, .init = s_fake_setup, .fini = s_fake_teardown, .timeout = 30);

static void
s_got_clear (got_t *got)
{
    zframe_destroy (&got->peer);
    zframe_destroy (&got->body);
}

//  Wait up to timeout_ms for the next PUBLISH on the fake. Returns true
//  with it in *got (clear it after), false if none came.
static bool
s_fake_recv (int timeout_ms, got_t *got)
{
    memset (got, 0, sizeof *got);
    zsock_set_rcvtimeo (fake->router, timeout_ms);
    zmsg_t *msg = zmsg_recv (fake->router);
    if (!msg)
        return false;
    cr_assert_eq (zmsg_size (msg), 3, "PUBLISH is [peer, command, body]");
    got->peer = zmsg_pop (msg);
    char *command = zmsg_popstr (msg);
    cr_assert_str_eq (command, POND_PUBLISH);
    free (command);
    got->body = zmsg_pop (msg);
    zmsg_destroy (&msg);
    char err [POND_ERR_SIZE];
    pond_event_t *event = pond_event_decode (zframe_data (got->body), zframe_size (got->body), err,
                                             sizeof err);
    cr_assert_not_null (event, "%s", err);
    memcpy (got->id, pond_event_id (event), POND_ID_SIZE);
    pond_event_destroy (&event);
    fake->publishes++;
    int outstanding = fake->publishes - fake->answered;
    if (outstanding > fake->max_outstanding)
        fake->max_outstanding = outstanding;
    return true;
}

//  Send [peer, command, body] from the fake; takes the body (may be NULL).
static void
s_fake_send (zframe_t *peer, const char *command, zframe_t *body)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_append (msg, &(zframe_t *) { zframe_dup (peer) });
    zmsg_addstr (msg, command);
    if (body)
        zmsg_append (msg, &body);
    cr_assert_eq (zmsg_send (&msg, fake->router), 0);
}

static void
s_fake_ack (got_t *got, uint64_t seq, bool dup)
{
    pond_ack_t ack = { .seq = seq, .dup = dup };
    memcpy (ack.id, got->id, POND_ID_SIZE);
    s_fake_send (got->peer, POND_ACK, pond_ack_encode (&ack));
    fake->answered++;
}

static void
s_fake_nack (got_t *got, uint32_t code, uint32_t retry_ms)
{
    s_fake_send (got->peer, POND_NACK,
                 pond_nack_new (got->id, code, retry_ms, "scripted %u", code));
    fake->answered++;
}

//  Encode a fresh event; its id into id. Caller frees.
static uint8_t *
s_encode (uint8_t *id, size_t *size_p)
{
    pond_event_t *event = pond_event_new ("QUACKED", "cust-pub");
    char err [POND_ERR_SIZE];
    uint8_t *bytes = pond_event_encode (event, size_p, err, sizeof err);
    cr_assert_not_null (bytes, "%s", err);
    memcpy (id, pond_event_id (event), POND_ID_SIZE);
    pond_event_destroy (&event);
    return bytes;
}

//  Push one fresh event with tag; its id into id.
static void
s_push (uint64_t tag, uint8_t *id)
{
    size_t size;
    uint8_t *bytes = s_encode (id, &size);
    cr_assert_eq (pond_publisher_push (publisher, id, bytes, size, tag), 0, "%s",
                  pond_publisher_reason (publisher));
    free (bytes);
}

//  Push two events, tags 1 and 2, and take both off the wire into got.
static void
s_push_two (got_t *got)
{
    uint8_t id [POND_ID_SIZE];
    for (int i = 0; i < 2; i++) {
        s_push (1 + (uint64_t) i, id);
        cr_assert (s_fake_recv (5000, &got [i]), "PUBLISH %d reaches the broker", i + 1);
        cr_assert_arr_eq (got [i].id, id, POND_ID_SIZE);
    }
}

//  =====================================================================
//  Against the fake

Test (publisher, results_in_reply_order_with_their_tags)
{
    uint8_t ids [5][POND_ID_SIZE];
    for (int i = 0; i < 5; i++)
        s_push (100 + (uint64_t) i, ids [i]);
    cr_assert_eq (pond_publisher_held (publisher), 5);
    got_t got [5];
    for (int i = 0; i < 5; i++) {
        cr_assert (s_fake_recv (5000, &got [i]), "PUBLISH %d reaches the broker", i);
        cr_assert_arr_eq (got [i].id, ids [i], POND_ID_SIZE, "sent in push order");
    }
    //  Answered in reverse: results come by reply, not by push
    for (int i = 4; i >= 0; i--)
        s_fake_ack (&got [i], 10 + (uint64_t) i, i == 2);
    for (int i = 4; i >= 0; i--) {
        pond_publish_result_t result;
        cr_assert_eq (pond_publisher_next (publisher, 5000, &result), 1);
        cr_assert_eq (result.code, POND_CODE_OK);
        cr_assert_eq (result.tag, 100 + (uint64_t) i, "tag %" PRIu64 " for event %d", result.tag,
                      i);
        cr_assert_arr_eq (result.id, ids [i], POND_ID_SIZE);
        cr_assert_eq (result.seq, 10 + (uint64_t) i);
        cr_assert_eq (result.dup, i == 2);
        cr_assert_eq (result.sends, 1);
    }
    cr_assert_eq (pond_publisher_held (publisher), 0);
    cr_assert_eq (pond_publisher_due (publisher), -1);
    pond_publish_result_t result;
    cr_assert_eq (pond_publisher_next (publisher, 0, &result), 0, "nothing held, no result");
    cr_assert_eq (pond_publisher_stale (publisher), 0);
    for (int i = 0; i < 5; i++)
        s_got_clear (&got [i]);
}

Test (publisher, nack_503_resends_the_same_bytes_after_retry_ms)
{
    pond_publisher_set_timeout (publisher, 5000, 3);
    uint8_t id [POND_ID_SIZE];
    s_push (7, id);
    got_t first;
    cr_assert (s_fake_recv (5000, &first));
    s_fake_nack (&first, POND_CODE_UNAVAILABLE, 300);
    int64_t nacked = zclock_mono ();
    //  Drive the publisher in small steps until the resend shows on the wire
    pond_publish_result_t result;
    got_t again;
    bool resent = false;
    while (!resent && zclock_mono () - nacked < 3000) {
        cr_assert_eq (pond_publisher_next (publisher, 10, &result), 0,
                      "a 503 is not final: no result");
        resent = s_fake_recv (0, &again);
    }
    int64_t waited = zclock_mono () - nacked;
    cr_assert (resent, "the event is sent again after a 503");
    cr_assert_geq (waited, 290, "resent after %d ms: it must wait retry_ms (300)", (int) waited);
    cr_assert_lt (waited, 1500, "resent after %d ms", (int) waited);
    cr_assert (zframe_eq (first.body, again.body), "the same bytes are sent again");
    s_fake_ack (&again, 42, false);
    cr_assert_eq (pond_publisher_next (publisher, 5000, &result), 1);
    cr_assert_eq (result.code, POND_CODE_OK);
    cr_assert_eq (result.tag, 7);
    cr_assert_eq (result.seq, 42);
    cr_assert_eq (result.sends, 2);
    cr_assert_eq (pond_publisher_retries (publisher), 1);
    cr_assert_eq (pond_publisher_unavailable (publisher), 1, "the 503 is counted");
    cr_assert_eq (fake->publishes, 2, "one resend, no more");
    s_got_clear (&first);
    s_got_clear (&again);
}

Test (publisher, attempts_1_makes_a_503_final_with_its_retry_ms)
{
    pond_publisher_set_timeout (publisher, 5000, 1);
    uint8_t id [POND_ID_SIZE];
    s_push (3, id);
    got_t got;
    cr_assert (s_fake_recv (5000, &got));
    s_fake_nack (&got, POND_CODE_UNAVAILABLE, 250);
    pond_publish_result_t result;
    cr_assert_eq (pond_publisher_next (publisher, 5000, &result), 1);
    cr_assert_eq (result.code, POND_CODE_UNAVAILABLE);
    cr_assert_eq (result.retry_ms, 250, "the broker's hint, for the caller's own back-off");
    cr_assert_eq (result.tag, 3);
    cr_assert_eq (pond_publisher_unavailable (publisher), 1, "a final 503 is counted too");
    got_t more;
    cr_assert_not (s_fake_recv (400, &more), "never resent with attempts 1");
    s_got_clear (&got);
}

Test (publisher, push_fails_when_the_broker_is_not_reachable)
{
    char *dir = pond_harness_tempdir ();
    char endpoint [512];
    snprintf (endpoint, sizeof endpoint, "ipc://%s/nobody.ipc", dir);
    pond_client_t *lonely = pond_client_new (endpoint);
    pond_client_set_timeout (lonely, 100, 0);
    pond_publisher_t *self = pond_publisher_new (lonely);
    uint8_t id [POND_ID_SIZE];
    size_t size;
    uint8_t *bytes = s_encode (id, &size);
    cr_assert_eq (pond_publisher_push (self, id, bytes, size, 1), -1);
    cr_assert_eq (pond_publisher_code (self), POND_CODE_TIMEOUT, "%s",
                  pond_publisher_reason (self));
    cr_assert_eq (pond_publisher_held (self), 0, "nothing held: no result will come");
    free (bytes);
    pond_publisher_destroy (&self);
    pond_client_destroy (&lonely);
    pond_harness_rmtree (dir);
    free (dir);
}

Test (publisher, nack_503_alone_does_not_block_the_others)
{
    got_t got [2];
    s_push_two (got);
    s_fake_nack (&got [0], POND_CODE_UNAVAILABLE, 2000);
    s_fake_ack (&got [1], 5, false);
    //  The second comes back at once while the first waits its 2 s
    int64_t start = zclock_mono ();
    pond_publish_result_t result;
    cr_assert_eq (pond_publisher_next (publisher, 1000, &result), 1);
    cr_assert_eq (result.tag, 2);
    cr_assert_lt (zclock_mono () - start, 500, "the caller's loop is not held by a back-off");
    cr_assert_eq (pond_publisher_held (publisher), 1);
    int due = pond_publisher_due (publisher);
    cr_assert (due > 1000 && due <= 2000, "the resend is due in %d ms", due);
    s_got_clear (&got [0]);
    s_got_clear (&got [1]);
}

Test (publisher, timeout_resends_then_gives_up_with_408)
{
    pond_publisher_set_timeout (publisher, 150, 3);
    uint8_t id [POND_ID_SIZE];
    int64_t start = zclock_mono ();
    s_push (9, id);
    pond_publish_result_t result;
    cr_assert_eq (pond_publisher_next (publisher, 5000, &result), 1);
    int64_t elapsed = zclock_mono () - start;
    cr_assert_eq (result.code, POND_CODE_TIMEOUT, "code %d: %s", result.code, result.reason);
    cr_assert_eq (result.tag, 9);
    cr_assert_eq (result.sends, 3);
    cr_assert (strstr (result.reason, "3 sends"), "%s", result.reason);
    cr_assert_geq (elapsed, 440, "3 attempts of 150 ms took %d ms", (int) elapsed);
    cr_assert_lt (elapsed, 2000);
    cr_assert_eq (pond_publisher_held (publisher), 0);
    cr_assert_eq (pond_publisher_retries (publisher), 2);
    cr_assert_eq (pond_publisher_unavailable (publisher), 0, "timeouts are no 503s");
    //  On the wire: exactly three identical sends
    got_t got [4];
    for (int i = 0; i < 3; i++)
        cr_assert (s_fake_recv (1000, &got [i]), "send %d", i + 1);
    cr_assert_not (s_fake_recv (100, &got [3]), "no fourth send");
    cr_assert (zframe_eq (got [0].body, got [1].body) && zframe_eq (got [1].body, got [2].body));
    cr_assert_arr_eq (got [0].id, id, POND_ID_SIZE);
    for (int i = 0; i < 3; i++)
        s_got_clear (&got [i]);
}

Test (publisher, other_nacks_are_final_with_their_code)
{
    got_t got [2];
    s_push_two (got);
    s_fake_nack (&got [0], POND_CODE_CONFLICT, 0);
    s_fake_nack (&got [1], POND_CODE_BAD_REQUEST, 0);
    pond_publish_result_t result;
    cr_assert_eq (pond_publisher_next (publisher, 5000, &result), 1);
    cr_assert_eq (result.code, POND_CODE_CONFLICT);
    cr_assert_eq (result.tag, 1);
    cr_assert_str_eq (result.reason, "scripted 409");
    cr_assert_eq (pond_publisher_next (publisher, 5000, &result), 1);
    cr_assert_eq (result.code, POND_CODE_BAD_REQUEST);
    cr_assert_eq (result.tag, 2);
    cr_assert_eq (result.sends, 1);
    got_t more;
    cr_assert_not (s_fake_recv (200, &more), "never resent");
    cr_assert_eq (pond_publisher_retries (publisher), 0);
    //  flush reports the first failure
    uint8_t id [POND_ID_SIZE];
    s_push (3, id);
    s_got_clear (&got [0]);
    cr_assert (s_fake_recv (5000, &got [0]));
    s_fake_nack (&got [0], POND_CODE_FORBIDDEN, 0);
    cr_assert_eq (pond_publisher_flush (publisher, 5000), -1);
    cr_assert_eq (pond_publisher_code (publisher), POND_CODE_FORBIDDEN);
    s_got_clear (&got [0]);
    s_got_clear (&got [1]);
}

Test (publisher, stale_and_malformed_replies_are_counted_and_ignored)
{
    uint8_t id [POND_ID_SIZE];
    s_push (5, id);
    got_t got;
    cr_assert (s_fake_recv (5000, &got));
    //  An ACK and a NACK for ids never pushed, a NACK without id
    uint8_t other [POND_ID_SIZE];
    memset (other, 0x77, sizeof other);
    pond_ack_t ack = { .seq = 99 };
    memcpy (ack.id, other, POND_ID_SIZE);
    s_fake_send (got.peer, POND_ACK, pond_ack_encode (&ack));
    s_fake_send (got.peer, POND_NACK, pond_nack_new (other, 400, 0, "not yours"));
    s_fake_send (got.peer, POND_NACK, pond_nack_new (NULL, 400, 0, "no id"));
    //  Unreadable: an ACK with a body that is not msgpack, one with no
    //  body, an unknown command
    s_fake_send (got.peer, POND_ACK, zframe_new ("\xc1\xc1", 2));
    s_fake_send (got.peer, POND_ACK, NULL);
    s_fake_send (got.peer, "WHAT", zframe_new ("x", 1));
    s_fake_ack (&got, 1, false);
    pond_publish_result_t result;
    cr_assert_eq (pond_publisher_next (publisher, 5000, &result), 1);
    cr_assert_eq (result.code, POND_CODE_OK);
    cr_assert_eq (result.tag, 5);
    cr_assert_eq (result.seq, 1, "the real ACK, not the stale one");
    cr_assert_eq (pond_publisher_stale (publisher), 3);
    cr_assert_eq (pond_publisher_malformed (publisher), 3);
    //  A second ACK for the same event, once it is done: stale too
    s_fake_ack (&got, 1, false);
    cr_assert_eq (pond_publisher_next (publisher, 100, &result), 0);
    s_fake_send (got.peer, POND_ACK, pond_ack_encode (&ack));
    s_push (6, id);
    cr_assert_eq (pond_publisher_next (publisher, 200, &result), 0);
    cr_assert_eq (pond_publisher_stale (publisher), 5);
    s_got_clear (&got);
}

Test (publisher, window_in_events_is_respected)
{
    cr_assert_eq (pond_publisher_set_window (publisher, 8, 0), 0);
    int pushed = 0, results = 0;
    uint8_t id [POND_ID_SIZE];
    got_t held [64];
    int held_count = 0;
    unsigned answered = 0;
    while (results < 200) {
        while (pushed < 200 && pond_publisher_room (publisher) > 0)
            s_push ((uint64_t) pushed++, id);
        if (pushed < 200) {
            size_t size;
            uint8_t *bytes = s_encode (id, &size);
            cr_assert_eq (pond_publisher_push (publisher, id, bytes, size, 0), -1,
                          "no room: push refuses");
            cr_assert_eq (pond_publisher_code (publisher), POND_CODE_UNAVAILABLE);
            free (bytes);
        }
        cr_assert_leq (pond_publisher_held (publisher), 8);
        //  The fake takes what arrived, answers a varying part of it
        while (s_fake_recv (held_count ? 0 : 5000, &held [held_count]))
            held_count++;
        int answer = 1 + (int) (answered++ % (unsigned) held_count);
        for (int i = 0; i < answer; i++) {
            s_fake_ack (&held [i], (uint64_t) (fake->answered + 1), false);
            s_got_clear (&held [i]);
        }
        memmove (&held [0], &held [answer], (size_t) (held_count - answer) * sizeof (got_t));
        held_count -= answer;
        pond_publish_result_t result;
        for (int i = 0; i < answer; i++) {
            cr_assert_eq (pond_publisher_next (publisher, 5000, &result), 1);
            results++;
        }
    }
    cr_assert_eq (fake->publishes, 200);
    cr_assert_eq (fake->max_outstanding, 8, "at most the window in flight, and all of it used");
}

Test (publisher, window_in_bytes_is_respected)
{
    uint8_t id [POND_ID_SIZE];
    size_t size;
    uint8_t *bytes = s_encode (id, &size);
    free (bytes);
    cr_assert_eq (pond_publisher_set_window (publisher, 100, 3 * size + size / 2), 0);
    for (int i = 0; i < 3; i++)
        s_push ((uint64_t) i, id);
    cr_assert_eq (pond_publisher_room (publisher), 97, "events fit, but not their bytes:");
    bytes = s_encode (id, &size);
    cr_assert_eq (pond_publisher_push (publisher, id, bytes, size, 3), -1, "over the bytes");
    cr_assert_eq (pond_publisher_code (publisher), POND_CODE_UNAVAILABLE);
    free (bytes);
    got_t got [4];
    for (int i = 0; i < 3; i++)
        cr_assert (s_fake_recv (5000, &got [i]));
    cr_assert_not (s_fake_recv (100, &got [3]));
    cr_assert_eq (fake->max_outstanding, 3);
    cr_assert_eq (pond_publisher_set_window (publisher, 4, 0), -1, "not while events are held");
    s_fake_ack (&got [0], 1, false);
    pond_publish_result_t result;
    cr_assert_eq (pond_publisher_next (publisher, 5000, &result), 1);
    s_push (3, id);
    cr_assert (s_fake_recv (5000, &got [3]));
    for (int i = 1; i < 4; i++) {
        s_fake_ack (&got [i], 1 + (uint64_t) i, false);
        s_got_clear (&got [i]);
    }
    s_got_clear (&got [0]);
    cr_assert_eq (pond_publisher_flush (publisher, 5000), 0, "%s",
                  pond_publisher_reason (publisher));
    //  One event larger than the bound still goes when nothing else is held
    cr_assert_eq (pond_publisher_set_window (publisher, 0, size / 2), 0);
    s_push (10, id);
    bytes = s_encode (id, &size);
    cr_assert_eq (pond_publisher_push (publisher, id, bytes, size, 11), -1);
    free (bytes);
}

Test (publisher, push_refuses_what_cannot_go)
{
    pond_event_t *event = pond_event_new ("QUACKED", "cust-pub");
    pond_event_set_seq (event, 5);
    cr_assert_eq (pond_publisher_push_event (publisher, event, 1), -1);
    cr_assert_eq (pond_publisher_code (publisher), POND_CODE_BAD_REQUEST, "%s",
                  pond_publisher_reason (publisher));
    pond_event_destroy (&event);
    uint8_t *big = (uint8_t *) calloc (1, POND_PUBLISH_MAX_SIZE + 1);
    uint8_t id [POND_ID_SIZE] = { 1 };
    cr_assert_eq (pond_publisher_push (publisher, id, big, POND_PUBLISH_MAX_SIZE + 1, 2), -1);
    cr_assert_eq (pond_publisher_code (publisher), POND_CODE_TOO_LARGE);
    free (big);
    cr_assert_eq (pond_publisher_held (publisher), 0);
}

//  The next message on the fake, any number of event frames: their ids
//  into ids (at most max), the peer into *peer. Returns the events, or 0
//  if none came within timeout_ms.
static size_t
s_fake_recv_batch (int timeout_ms, zframe_t **peer, uint8_t (*ids) [POND_ID_SIZE], size_t max)
{
    zsock_set_rcvtimeo (fake->router, timeout_ms);
    zmsg_t *msg = zmsg_recv (fake->router);
    if (!msg)
        return 0;
    *peer = zmsg_pop (msg);
    char *command = zmsg_popstr (msg);
    cr_assert_str_eq (command, POND_PUBLISH);
    free (command);
    size_t count = 0;
    zframe_t *frame;
    while ((frame = zmsg_pop (msg))) {
        char err [POND_ERR_SIZE];
        pond_event_t *event = pond_event_decode (zframe_data (frame), zframe_size (frame), err,
                                                 sizeof err);
        cr_assert_not_null (event, "%s", err);
        cr_assert_lt (count, max);
        memcpy (ids [count++], pond_event_id (event), POND_ID_SIZE);
        pond_event_destroy (&event);
        zframe_destroy (&frame);
    }
    zmsg_destroy (&msg);
    fake->publishes++;
    return count;
}

Test (publisher, batch_sends_pushed_events_as_one_message_and_maps_results)
{
    pond_publisher_set_batch (publisher, 64, 0);
    uint8_t ids [5][POND_ID_SIZE];
    for (int i = 0; i < 5; i++)
        s_push (100 + (uint64_t) i, ids [i]);
    cr_assert_eq (pond_publisher_held (publisher), 5);
    zframe_t *peer = NULL;
    uint8_t got [8][POND_ID_SIZE];
    cr_assert_eq (s_fake_recv_batch (100, &peer, got, 8), 0, "push only queues");
    //  next (or flush, or due) sends what is queued, as one message
    pond_publish_result_t result;
    cr_assert_eq (pond_publisher_next (publisher, 0, &result), 0);
    cr_assert_eq (s_fake_recv_batch (5000, &peer, got, 8), 5, "one PUBLISH with 5 events");
    for (int i = 0; i < 5; i++)
        cr_assert_arr_eq (got [i], ids [i], POND_ID_SIZE, "in push order");
    cr_assert_eq (s_fake_recv_batch (100, &peer, got, 8), 0, "and nothing else");
    //  One RESULTS: 200, 200 dup, 409, 503 (resent alone), 200
    pond_result_t replies [5];
    uint32_t codes [] = { 200, 200, 409, 503, 200 };
    for (int i = 0; i < 5; i++) {
        replies [i] = (pond_result_t) { .has_id = true,
                                        .code = codes [i],
                                        .seq = 10 + (uint64_t) i,
                                        .dup = i == 1,
                                        .retry_ms = i == 3 ? 50 : 0 };
        memcpy (replies [i].id, ids [i], POND_ID_SIZE);
        snprintf (replies [i].reason, sizeof replies [i].reason, "%s",
                  codes [i] == 200 ? "" : "scripted");
    }
    s_fake_send (peer, POND_RESULTS, pond_results_encode (200, "", replies, 5));
    int tags [] = { 100, 101, 102, 104 };
    for (int i = 0; i < 4; i++) {
        cr_assert_eq (pond_publisher_next (publisher, 5000, &result), 1);
        cr_assert_eq (result.tag, (uint64_t) tags [i], "tag %" PRIu64, result.tag);
        int k = tags [i] - 100;
        cr_assert_arr_eq (result.id, ids [k], POND_ID_SIZE);
        cr_assert_eq (result.code, (int) codes [k]);
        if (codes [k] == 200) {
            cr_assert_eq (result.seq, 10 + (uint64_t) k);
            cr_assert_eq (result.dup, k == 1);
        }
    }
    //  The 503 one goes again, alone, after its retry_ms (50 ms)
    cr_assert_eq (pond_publisher_next (publisher, 300, &result), 0);
    zframe_t *again = NULL;
    cr_assert_eq (s_fake_recv_batch (5000, &again, got, 8), 1);
    cr_assert_arr_eq (got [0], ids [3], POND_ID_SIZE);
    pond_ack_t ack = { .seq = 13 };
    memcpy (ack.id, ids [3], POND_ID_SIZE);
    s_fake_send (again, POND_ACK, pond_ack_encode (&ack));
    cr_assert_eq (pond_publisher_next (publisher, 5000, &result), 1);
    cr_assert_eq (result.tag, 103);
    cr_assert_eq (result.code, POND_CODE_OK);
    cr_assert_eq (result.seq, 13);
    cr_assert_eq (result.sends, 2);
    cr_assert_eq (pond_publisher_held (publisher), 0);
    cr_assert_eq (fake->publishes, 2, "two messages for six sends");
    cr_assert_eq (pond_publisher_stale (publisher), 0);
    zframe_destroy (&peer);
    zframe_destroy (&again);
}

Test (publisher, batch_goes_out_when_full_and_a_lone_event_goes_plain)
{
    pond_publisher_set_batch (publisher, 3, 0);
    uint8_t ids [4][POND_ID_SIZE];
    for (int i = 0; i < 3; i++)
        s_push ((uint64_t) i, ids [i]);
    zframe_t *peer = NULL;
    uint8_t got [4][POND_ID_SIZE];
    cr_assert_eq (s_fake_recv_batch (5000, &peer, got, 4), 3, "full: sent by push");
    zframe_destroy (&peer);
    s_push (3, ids [3]);
    int due = pond_publisher_due (publisher);
    cr_assert_gt (due, 0, "due sent what was queued: it waits for the reply (%d ms)", due);
    got_t lone;
    cr_assert (s_fake_recv (5000, &lone), "one event alone is a plain PUBLISH");
    cr_assert_arr_eq (lone.id, ids [3], POND_ID_SIZE);
    s_got_clear (&lone);
    //  Bytes bound the batch too: two events' bytes make a batch of two
    size_t size;
    uint8_t *bytes = s_encode (ids [0], &size);
    free (bytes);
    pond_publisher_set_batch (publisher, 0, 2 * size);    //  queue empty: events kept
    for (int i = 0; i < 3; i++)
        s_push (10 + (uint64_t) i, ids [i]);
    cr_assert_eq (s_fake_recv_batch (5000, &peer, got, 4), 2, "the third did not fit");
    zframe_destroy (&peer);
    cr_assert_eq (pond_publisher_next (publisher, 0, &(pond_publish_result_t) { 0 }), 0);
    cr_assert_eq (s_fake_recv_batch (5000, &peer, got, 4), 1);
    cr_assert_arr_eq (got [0], ids [2], POND_ID_SIZE);
    zframe_destroy (&peer);
}

//  =====================================================================
//  Against a real store and broker

static pond_mesh_t *mesh;

static void
s_mesh_setup (void)
{
    mesh = pond_harness_mesh_up ();
}

static void
s_mesh_teardown (void)
{
    pond_mesh_destroy (&mesh);
}

TestSuite (publisher_mesh, .init = s_mesh_setup, .fini = s_mesh_teardown, .timeout = 120);

//  Events to publish: $POND_PUBLISHER_EVENTS, else count
static size_t
s_events (size_t count)
{
    const char *env = getenv ("POND_PUBLISHER_EVENTS");
    return env && atol (env) > 0 ? (size_t) atol (env) : count;
}

static double
s_cpu_us (void)
{
    struct rusage usage;
    getrusage (RUSAGE_SELF, &usage);
    return (double) (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e6
         + (double) (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

//  count events, encoded, with their ids
typedef struct {
    uint8_t **bytes;
    size_t *sizes;
    uint8_t (*ids) [POND_ID_SIZE];
    size_t count;
} batch_t;

static batch_t *
s_batch_new (size_t count)
{
    batch_t *self = (batch_t *) zmalloc (sizeof (batch_t));
    self->count = count;
    self->bytes = (uint8_t **) calloc (count, sizeof (uint8_t *));
    self->sizes = (size_t *) calloc (count, sizeof (size_t));
    self->ids = calloc (count, POND_ID_SIZE);
    for (size_t i = 0; i < count; i++)
        self->bytes [i] = s_encode (self->ids [i], &self->sizes [i]);
    return self;
}

static void
s_batch_destroy (batch_t **self_p)
{
    batch_t *self = *self_p;
    for (size_t i = 0; i < self->count; i++)
        free (self->bytes [i]);
    free (self->bytes);
    free (self->sizes);
    free (self->ids);
    free (self);
    *self_p = NULL;
}

//  Publish a batch through the publisher, checking every result. Returns
//  the client CPU in microseconds.
static double
s_publish_batch (pond_publisher_t *self, batch_t *batch, uint64_t *seqs)
{
    double cpu = s_cpu_us ();
    size_t next = 0, done = 0;
    while (done < batch->count) {
        while (next < batch->count && pond_publisher_room (self) > 0) {
            cr_assert_eq (pond_publisher_push (self, batch->ids [next], batch->bytes [next],
                                               batch->sizes [next], next),
                          0, "%s", pond_publisher_reason (self));
            next++;
        }
        pond_publish_result_t result;
        cr_assert_eq (pond_publisher_next (self, 10000, &result), 1);
        cr_assert_eq (result.code, POND_CODE_OK, "%d %s", result.code, result.reason);
        cr_assert_lt (result.tag, batch->count);
        cr_assert_arr_eq (result.id, batch->ids [result.tag], POND_ID_SIZE);
        cr_assert_eq (seqs [result.tag], 0, "one result per event");
        seqs [result.tag] = result.seq;
        done++;
    }
    return s_cpu_us () - cpu;
}

Test (publisher_mesh, many_events_acked_with_their_seqs_and_409)
{
    size_t count = s_events (5000);
    batch_t *batch = s_batch_new (count);
    pond_client_t *producer = pond_client_new (mesh->ingest);
    pond_publisher_t *self = pond_publisher_new (producer);
    cr_assert_not_null (self);
    uint64_t *seqs = (uint64_t *) calloc (count, sizeof (uint64_t));
    s_publish_batch (self, batch, seqs);
    //  seqs 1..count, each once
    bool *seen = (bool *) calloc (count + 1, 1);
    for (size_t i = 0; i < count; i++) {
        cr_assert (seqs [i] >= 1 && seqs [i] <= count && !seen [seqs [i]]);
        seen [seqs [i]] = true;
    }
    //  The same bytes again: dup with the original seq; other bytes under
    //  a used id: 409, final
    cr_assert_eq (pond_publisher_push (self, batch->ids [0], batch->bytes [0], batch->sizes [0], 1),
                  0);
    pond_event_t *event = pond_event_new ("LABEL_ADDED", "cust-pub");
    pond_event_set_id (event, batch->ids [1]);
    cr_assert_eq (pond_publisher_push_event (self, event, 2), 0);
    pond_event_destroy (&event);
    for (int i = 0; i < 2; i++) {
        pond_publish_result_t result;
        cr_assert_eq (pond_publisher_next (self, 10000, &result), 1);
        if (result.tag == 1) {
            cr_assert_eq (result.code, POND_CODE_OK);
            cr_assert (result.dup);
            cr_assert_eq (result.seq, seqs [0]);
        }
        else {
            cr_assert_eq (result.tag, 2);
            cr_assert_eq (result.code, POND_CODE_CONFLICT, "%d %s", result.code, result.reason);
        }
    }
    cr_assert_eq (pond_publisher_flush (self, 1000), 0, "nothing held");
    free (seen);
    free (seqs);
    pond_publisher_destroy (&self);
    pond_client_destroy (&producer);
    s_batch_destroy (&batch);
}

//  The window the runtime kept by hand before the publisher (as in
//  pond_actor_emit_many), for the CPU comparison only.
static double
s_publish_old_window (pond_client_t *producer, batch_t *batch, size_t window)
{
    double cpu = s_cpu_us ();
    bool *acked = (bool *) calloc (batch->count, 1);
    size_t next = 0, oldest = 0, outstanding = 0, done = 0;
    while (done < batch->count) {
        while (next < batch->count && outstanding < window) {
            cr_assert_eq (
                pond_client_send_bytes (producer, batch->bytes [next], batch->sizes [next]), 0);
            next++;
            outstanding++;
        }
        pond_ack_t ack;
        pond_nack_t nack;
        cr_assert_eq (pond_client_recv (producer, 10000, &ack, &nack), 1);
        for (size_t i = oldest; i < next; i++)
            if (!acked [i] && memcmp (batch->ids [i], ack.id, POND_ID_SIZE) == 0) {
                acked [i] = true;
                outstanding--;
                done++;
                break;
            }
        while (oldest < next && acked [oldest])
            oldest++;
    }
    free (acked);
    return s_cpu_us () - cpu;
}

Test (publisher_mesh, client_cpu_old_window_against_publisher)
{
    //  Old, new, new, old: each way twice, so a store that warms up or a
    //  busy machine favours neither
    size_t count = s_events (5000);
    pond_client_t *producer = pond_client_new (mesh->ingest);
    cr_assert_eq (pond_client_ping (producer, 5000), 0);
    pond_publisher_t *self = pond_publisher_new (producer);
    uint64_t *seqs = (uint64_t *) calloc (count, sizeof (uint64_t));
    double cpu [2] = { 0, 0 };
    int64_t wall [2] = { 0, 0 };
    for (int round = 0; round < 4; round++) {
        int way = round == 1 || round == 2;
        batch_t *batch = s_batch_new (count);
        int64_t start = zclock_mono ();
        memset (seqs, 0, count * sizeof (uint64_t));
        cpu [way] += way ? s_publish_batch (self, batch, seqs)
                         : s_publish_old_window (producer, batch, 1024);
        wall [way] += zclock_mono () - start;
        s_batch_destroy (&batch);
    }
    fprintf (stderr,
             "publisher: 2 x %zu events each way, window 1024; client CPU per event "
             "(user + system, all threads): old window %.2f us (%" PRId64 " ms wall), "
             "publisher %.2f us (%" PRId64 " ms wall)\n",
             count, cpu [0] / (double) (2 * count), wall [0], cpu [1] / (double) (2 * count),
             wall [1]);
    free (seqs);
    pond_publisher_destroy (&self);
    pond_client_destroy (&producer);
}

//  CPU seconds pid has used (user + system), from /proc/PID/stat
static double
s_proc_cpu_s (pid_t pid)
{
    char path [64];
    snprintf (path, sizeof path, "/proc/%d/stat", (int) pid);
    FILE *file = fopen (path, "r");
    cr_assert_not_null (file);
    char line [1024];
    cr_assert_not_null (fgets (line, sizeof line, file));
    fclose (file);
    //  Fields after the command (which may hold spaces) start after ')'
    char *rest = strrchr (line, ')');
    cr_assert_not_null (rest);
    unsigned long utime = 0, stime = 0;
    cr_assert_eq (
        sscanf (rest + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime),
        2);
    return (double) (utime + stime) / (double) sysconf (_SC_CLK_TCK);
}

//  Batches on the wire against the real broker: every event its result and
//  seq, once, batch 1 (one PUBLISH per event) as batch 64. Figures per
//  event for the client, broker and store ($POND_PUBLISHER_EVENTS events,
//  $POND_PUBLISHER_RUNS rounds of batch 1 then 64 then 64 then 1).
Test (publisher_mesh, batches_get_every_seq_once_and_cost_less)
{
    size_t count = s_events (5000);
    const char *env = getenv ("POND_PUBLISHER_RUNS");
    int runs = env && atoi (env) > 0 ? atoi (env) : 1;
    batch_t *batch = s_batch_new (count);
    pond_client_t *producer = pond_client_new (mesh->ingest);
    cr_assert_eq (pond_client_ping (producer, 5000), 0);
    uint64_t *seqs = (uint64_t *) calloc (count, sizeof (uint64_t));
    bool *seen = (bool *) calloc (count * 4 * (size_t) runs + 1, 1);
    uint64_t stored = 0;
    for (int round = 0; round < 4 * runs; round++) {
        int size = (round % 4 == 0 || round % 4 == 3) ? 1 : 64;
        //  New ids each round, so each event is stored (no dups)
        for (size_t i = 0; i < count; i++) {
            free (batch->bytes [i]);
            batch->bytes [i] = s_encode (batch->ids [i], &batch->sizes [i]);
        }
        pond_publisher_t *self = pond_publisher_new (producer);
        pond_publisher_set_batch (self, size, 0);
        memset (seqs, 0, count * sizeof (uint64_t));
        double broker_cpu = s_proc_cpu_s (mesh->broker);
        double store_cpu = s_proc_cpu_s (mesh->store);
        int64_t started = zclock_usecs ();
        double client_us = s_publish_batch (self, batch, seqs);
        double wall_s = (double) (zclock_usecs () - started) / 1e6;
        broker_cpu = s_proc_cpu_s (mesh->broker) - broker_cpu;
        store_cpu = s_proc_cpu_s (mesh->store) - store_cpu;
        for (size_t i = 0; i < count; i++) {
            cr_assert (seqs [i] > stored && seqs [i] <= stored + count && !seen [seqs [i]],
                       "seq %" PRIu64 " once, after the last round's", seqs [i]);
            seen [seqs [i]] = true;
        }
        stored += count;
        fprintf (stderr,
                 "publisher: batch %2d: %zu events of %zu bytes in %.3f s, %.0f "
                 "events/s; CPU per event: client %.2f us, broker %.2f us, store %.2f us\n",
                 size, count, batch->sizes [0], wall_s, (double) count / wall_s,
                 client_us / (double) count, broker_cpu * 1e6 / (double) count,
                 store_cpu * 1e6 / (double) count);
        pond_publisher_destroy (&self);
    }
    free (seen);
    free (seqs);
    pond_client_destroy (&producer);
    s_batch_destroy (&batch);
}
