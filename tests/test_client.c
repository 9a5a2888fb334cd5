/*  test_client: client/pond_client and the `pond` command line, against a
    fake broker.

    The fake is a zactor in this process speaking proto/PROTOCOL.md on ipc
    endpoints in a fresh temp dir: ingest ROUTER, pub XPUB, control ROUTER.
    Its behaviour is scripted (drop the first PUBLISH, NACK 503, stale ACKs,
    replay in chunks under credit, ...) and it counts what it saw, so each
    test checks both what the client returned and what went over the wire.
    The CLI tests run the real `pond` binary (POND_BIN_DIR).
*/
#include <criterion/criterion.h>
#include <msgpack.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pond_client.h"
#include "pond_proto.h"
#include "pond_thread.h"
#include "pond_harness.h"
#include "pond_uuid.h"

//  =====================================================================
//  The fake broker

typedef struct {
    int drop_publishes;       //  ignore the first N PUBLISH
    int nack503;              //  then answer N PUBLISH with NACK 503
    uint32_t retry_ms;        //  ... and this retry_ms
    bool nack400;             //  answer every PUBLISH with NACK 400
    bool stale_ack;           //  send an ACK for another id before each ACK
    int replay_events;        //  the log: seq 1..N, all QUACKED
    int chunk_events;         //  events per CHUNK
    int fail_after_chunks;    //  END with end_code after this many chunks
    uint32_t end_code;
    bool replay_error;    //  answer REPLAY with ERROR 400
    bool pack;            //  a CHUNK's events in one frame, back to back
    int damage_chunk;     //  cut the last event of this CHUNK short (1 = first)
} fake_cfg_t;

typedef struct {
    int publishes;    //  PUBLISH received
    int identical;    //  ... byte for byte equal to the first one
    int pings;
    int subscriptions;          //  subscribe messages on XPUB
    int replays;                //  REPLAY requests
    uint32_t initial_credit;    //  credit of the last REPLAY
    uint32_t granted;           //  chunks granted by CREDIT since
    int chunks_sent;
    int violations;    //  CREDIT granted for chunks never sent
    int credits;       //  CREDIT messages
    int cancels;
    int stats;
} fake_counters_t;

typedef struct {
    char *dir;
    char ingest [256];
    char pub [256];
    char control [256];
    fake_cfg_t cfg;
    zactor_t *actor;
} fake_t;

//  What a test made, so that .fini cleans up even after a failed
//  assertion (each test runs in its own process: these are per test)
#define LIVE_MAX 4
static fake_t *s_live_fakes [LIVE_MAX];
static char *s_live_dirs [LIVE_MAX];

//  A fresh temp dir, removed by s_cleanup. Do not free it.
static char *
s_tempdir (void)
{
    char *dir = pond_harness_tempdir ();
    cr_assert (dir);
    for (size_t i = 0; i < LIVE_MAX; i++)
        if (!s_live_dirs [i])
            return s_live_dirs [i] = dir;
    cr_assert_fail ("too many temp dirs in one test");
    return NULL;
}

static void s_fake_destroy (fake_t **self_p);

static void
s_cleanup (void)
{
    for (size_t i = 0; i < LIVE_MAX; i++) {
        if (s_live_fakes [i])
            s_fake_destroy (&s_live_fakes [i]);
        pond_harness_rmtree (s_live_dirs [i]);
        free (s_live_dirs [i]);
        s_live_dirs [i] = NULL;
    }
}

TestSuite (publish, .fini = s_cleanup);
TestSuite (sub, .fini = s_cleanup);
TestSuite (replay, .fini = s_cleanup);
TestSuite (stats, .fini = s_cleanup);
TestSuite (endpoints, .fini = s_cleanup);
TestSuite (cli, .fini = s_cleanup);

typedef struct {
    fake_cfg_t cfg;
    fake_counters_t counters;
    zsock_t *ingest;
    zsock_t *pub;
    zsock_t *control;
    zhashx_t *ids;    //  uuid text -> seq, for dup ACKs
    uint64_t head;
    zchunk_t *first;    //  bytes of the first PUBLISH
    //  One replay at a time
    zframe_t *reader;
    uint64_t rid;
    uint32_t credit;
    uint64_t next;
    uint64_t last;
    bool replaying;
} fake_state_t;

static void
s_send_to (zsock_t *router, zframe_t *identity, const char *command, zframe_t *body)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_append (msg, &identity);
    zmsg_addstr (msg, command);
    if (body)
        zmsg_append (msg, &body);
    zmsg_send (&msg, router);
}

static void
s_fake_ingest (fake_state_t *self)
{
    zmsg_t *msg = zmsg_recv (self->ingest);
    zframe_t *identity = zmsg_pop (msg);
    zframe_t *command = zmsg_first (msg);
    zframe_t *body = zmsg_next (msg);
    if (pond_proto_is (command, POND_PING)) {
        self->counters.pings++;
        s_send_to (self->ingest, identity, POND_PONG, NULL);
        zmsg_destroy (&msg);
        return;
    }
    cr_assert (pond_proto_is (command, POND_PUBLISH));
    self->counters.publishes++;
    if (!self->first)
        self->first = zchunk_new (zframe_data (body), zframe_size (body));
    if (zchunk_size (self->first) == zframe_size (body)
        && memcmp (zchunk_data (self->first), zframe_data (body), zframe_size (body)) == 0)
        self->counters.identical++;
    char err [POND_ERR_SIZE];
    pond_event_t *event = pond_event_decode (zframe_data (body), zframe_size (body), err,
                                             sizeof err);
    if (!event)
        s_send_to (self->ingest, identity, POND_NACK, pond_nack_new (NULL, 400, 0, "%s", err));
    else if (self->cfg.drop_publishes > 0) {
        self->cfg.drop_publishes--;
        zframe_destroy (&identity);
    }
    else if (self->cfg.nack400)
        s_send_to (self->ingest, identity, POND_NACK,
                   pond_nack_new (pond_event_id (event), 400, 0, "entity is not a customer"));
    else if (self->cfg.nack503 > 0) {
        self->cfg.nack503--;
        s_send_to (self->ingest, identity, POND_NACK,
                   pond_nack_new (pond_event_id (event), 503, self->cfg.retry_ms, "store is away"));
    }
    else {
        char key [POND_UUID_STR_SIZE];
        pond_uuid_format (pond_event_id (event), key);
        pond_ack_t ack = { .seq = (uint64_t) (uintptr_t) zhashx_lookup (self->ids, key) };
        ack.dup = ack.seq != 0;
        if (!ack.dup) {
            ack.seq = ++self->head;
            zhashx_insert (self->ids, key, (void *) (uintptr_t) ack.seq);
        }
        if (self->cfg.stale_ack) {
            pond_ack_t stale = { .seq = 999 };
            pond_uuid_v7 (stale.id);
            s_send_to (self->ingest, zframe_dup (identity), POND_ACK, pond_ack_encode (&stale));
        }
        memcpy (ack.id, pond_event_id (event), POND_ID_SIZE);
        s_send_to (self->ingest, identity, POND_ACK, pond_ack_encode (&ack));
    }
    pond_event_destroy (&event);
    zmsg_destroy (&msg);
}

//  An event of the fake log, encoded with its seq
static zframe_t *
s_log_event (const char *name, uint64_t seq)
{
    pond_event_t *event = pond_event_new (name, "cust-1");
    pond_event_set_seq (event, seq);
    pond_event_set_ts (event, 1640995200000000ULL + seq);
    char err [POND_ERR_SIZE];
    size_t size;
    uint8_t *bytes = pond_event_encode (event, &size, err, sizeof err);
    cr_assert (bytes, "%s", err);
    zframe_t *frame = zframe_new (bytes, size);
    free (bytes);
    pond_event_destroy (&event);
    return frame;
}

static void
s_fake_end (fake_state_t *self, uint32_t code, const char *reason)
{
    pond_end_t end = { .rid = self->rid, .count = self->next - 1, .code = code };
    snprintf (end.reason, sizeof end.reason, "%s", reason);
    s_send_to (self->control, zframe_dup (self->reader), POND_END, pond_end_encode (&end));
    self->replaying = false;
}

//  Send chunks while the reader has credit, then END
static void
s_fake_pump (fake_state_t *self)
{
    while (self->replaying && self->credit > 0 && self->next <= self->last) {
        self->credit--;
        pond_credit_t header = { .rid = self->rid, .chunks = self->credit };
        zmsg_t *msg = zmsg_new ();
        zmsg_append (msg, &(zframe_t *) { zframe_dup (self->reader) });
        zmsg_addstr (msg, POND_CHUNK);
        zmsg_append (msg, &(zframe_t *) { pond_credit_encode (&header) });
        zchunk_t *packed = zchunk_new (NULL, 0);
        for (int i = 0; i < self->cfg.chunk_events && self->next <= self->last; i++) {
            zframe_t *event = s_log_event ("QUACKED", self->next++);
            if (self->cfg.pack) {
                zchunk_extend (packed, zframe_data (event), zframe_size (event));
                zframe_destroy (&event);
            }
            else
                zmsg_append (msg, &event);
        }
        if (self->cfg.pack) {
            size_t size = zchunk_size (packed);
            if (self->counters.chunks_sent + 1 == self->cfg.damage_chunk)
                size -= 5;
            zmsg_addmem (msg, zchunk_data (packed), size);
        }
        zchunk_destroy (&packed);
        zmsg_send (&msg, self->control);
        self->counters.chunks_sent++;
        if (self->counters.chunks_sent == self->cfg.fail_after_chunks)
            s_fake_end (self, self->cfg.end_code, "disk on fire");
    }
    if (self->replaying && self->next > self->last)
        s_fake_end (self, 200, "");
}

static void
s_fake_control (fake_state_t *self)
{
    zmsg_t *msg = zmsg_recv (self->control);
    zframe_t *identity = zmsg_pop (msg);
    zframe_t *command = zmsg_first (msg);
    zframe_t *body = zmsg_next (msg);
    char err [POND_ERR_SIZE];
    if (pond_proto_is (command, POND_STATS)) {
        self->counters.stats++;
        msgpack_sbuffer buffer;
        msgpack_sbuffer_init (&buffer);
        msgpack_packer pk;
        msgpack_packer_init (&pk, &buffer, msgpack_sbuffer_write);
        msgpack_pack_map (&pk, 1);
        msgpack_pack_str_with_body (&pk, "broker", 6);
        msgpack_pack_map (&pk, 2);
        msgpack_pack_str_with_body (&pk, "received", 8);
        msgpack_pack_uint64 (&pk, 1234567);
        msgpack_pack_str_with_body (&pk, "store_up", 8);
        msgpack_pack_true (&pk);
        s_send_to (self->control, identity, POND_STATS, zframe_new (buffer.data, buffer.size));
        msgpack_sbuffer_destroy (&buffer);
    }
    else if (pond_proto_is (command, POND_REPLAY)) {
        self->counters.replays++;
        pond_replay_req_t req;
        if (self->cfg.replay_error)
            s_send_to (self->control, identity, POND_ERROR,
                       pond_nack_new (NULL, 400, 0, "'names' must be an array"));
        else {
            cr_assert_eq (pond_replay_req_decode (body, &req, err, sizeof err), 0, "%s", err);
            self->counters.initial_credit = req.credit;
            self->counters.granted = 0;
            zframe_destroy (&self->reader);
            self->reader = identity;
            self->rid = req.rid;
            self->credit = req.credit;
            self->next = req.from_seq ? req.from_seq : 1;
            self->last = (uint64_t) self->cfg.replay_events;
            if (req.limit && self->next + req.limit - 1 < self->last)
                self->last = self->next + req.limit - 1;
            self->replaying = true;
            s_fake_pump (self);
        }
    }
    else if (pond_proto_is (command, POND_CREDIT)) {
        pond_credit_t credit;
        cr_assert_eq (pond_credit_decode (body, &credit, err, sizeof err), 0, "%s", err);
        cr_assert_eq (credit.rid, self->rid);
        self->counters.credits++;
        self->counters.granted += credit.chunks;
        if ((int) self->counters.granted > self->counters.chunks_sent)
            self->counters.violations++;
        self->credit += credit.chunks;
        s_fake_pump (self);
        zframe_destroy (&identity);
    }
    else if (pond_proto_is (command, POND_CANCEL)) {
        self->counters.cancels++;
        if (self->replaying)
            s_fake_end (self, POND_CODE_CANCELLED, "cancelled by the reader");
        zframe_destroy (&identity);
    }
    else
        zframe_destroy (&identity);
    zmsg_destroy (&msg);
}

static void
s_fake_actor (zsock_t *pipe, void *args)
{
    pond_thread_block_signals (NULL);
    fake_t *fake = (fake_t *) args;
    fake_state_t *self = (fake_state_t *) zmalloc (sizeof (fake_state_t));
    self->cfg = fake->cfg;
    self->ids = zhashx_new ();
    self->ingest = zsock_new (ZMQ_ROUTER);
    self->pub = zsock_new (ZMQ_XPUB);
    self->control = zsock_new (ZMQ_ROUTER);
    zsock_set_xpub_verbose (self->pub, 1);
    cr_assert_eq (zsock_bind (self->ingest, "%s", fake->ingest), 0);
    cr_assert_eq (zsock_bind (self->pub, "%s", fake->pub), 0);
    cr_assert_eq (zsock_bind (self->control, "%s", fake->control), 0);
    zpoller_t *poller = zpoller_new (pipe, self->ingest, self->pub, self->control, NULL);
    zsock_signal (pipe, 0);
    while (true) {
        zsock_t *which = (zsock_t *) zpoller_wait (poller, -1);
        if (which == pipe) {
            zmsg_t *msg = zmsg_recv (pipe);
            char *command = zmsg_popstr (msg);
            bool term = !command || streq (command, "$TERM");
            if (command && streq (command, "COUNTERS"))
                zsock_send (pipe, "b", &self->counters, sizeof self->counters);
            else if (command && streq (command, "SEND"))
                zmsg_send (&msg, self->pub);    //  The rest, as it is
            zstr_free (&command);
            zmsg_destroy (&msg);
            if (term)
                break;
        }
        else if (which == self->ingest)
            s_fake_ingest (self);
        else if (which == self->control)
            s_fake_control (self);
        else if (which == self->pub) {
            zframe_t *frame = zframe_recv (self->pub);
            if (zframe_size (frame) > 0 && zframe_data (frame) [0] == 1)
                self->counters.subscriptions++;
            zframe_destroy (&frame);
        }
        else
            break;    //  Interrupted
    }
    zpoller_destroy (&poller);
    zsock_destroy (&self->ingest);
    zsock_destroy (&self->pub);
    zsock_destroy (&self->control);
    zhashx_destroy (&self->ids);
    zchunk_destroy (&self->first);
    zframe_destroy (&self->reader);
    free (self);
}

//  Start a fake broker in a fresh temp dir. prefix names its socket files
//  (PREFIXingest.ipc, ...): "" gives the default endpoints of that dir.
static fake_t *
s_fake_new (const fake_cfg_t *cfg, const char *prefix)
{
    fake_t *self = (fake_t *) zmalloc (sizeof (fake_t));
    self->dir = s_tempdir ();
    if (cfg)
        self->cfg = *cfg;
    snprintf (self->ingest, sizeof self->ingest, "ipc://%s/%singest.ipc", self->dir, prefix);
    snprintf (self->pub, sizeof self->pub, "ipc://%s/%spub.ipc", self->dir, prefix);
    snprintf (self->control, sizeof self->control, "ipc://%s/%scontrol.ipc", self->dir, prefix);
    self->actor = zactor_new (s_fake_actor, self);
    cr_assert (self->actor);
    for (size_t i = 0; i < LIVE_MAX; i++)
        if (!s_live_fakes [i]) {
            s_live_fakes [i] = self;
            return self;
        }
    cr_assert_fail ("too many fakes in one test");
    return NULL;
}

//  Stop a fake; its dir goes at cleanup. Safe on NULL.
static void
s_fake_destroy (fake_t **self_p)
{
    fake_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < LIVE_MAX; i++)
        if (s_live_fakes [i] == self)
            s_live_fakes [i] = NULL;
    zactor_destroy (&self->actor);
    free (self);
    *self_p = NULL;
}

static fake_counters_t
s_fake_counters (fake_t *self)
{
    zstr_send (self->actor, "COUNTERS");
    byte *data;
    size_t size;
    cr_assert_eq (zsock_recv (self->actor, "b", &data, &size), 0);
    cr_assert_eq (size, sizeof (fake_counters_t));
    fake_counters_t counters;
    memcpy (&counters, data, size);
    free (data);
    return counters;
}

//  Publish frames on the fake's XPUB
static void
s_fake_send (fake_t *self, const char *topic, zframe_t *body)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "SEND");
    zmsg_addstr (msg, topic);
    if (body)
        zmsg_append (msg, &body);
    zmsg_send (&msg, self->actor);
}

//  Wait until the fake has seen at least n subscriptions
static void
s_fake_wait_subscriptions (fake_t *self, int n)
{
    for (int waited = 0; waited < 5000; waited += 10) {
        if (s_fake_counters (self).subscriptions >= n)
            return;
        zclock_sleep (10);
    }
    cr_assert_fail ("the subscriber never subscribed");
}

static zframe_t *
s_heartbeat (uint64_t head)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 2);
    msgpack_pack_str_with_body (&pk, "head", 4);
    msgpack_pack_uint64 (&pk, head);
    msgpack_pack_str_with_body (&pk, "ts", 2);
    msgpack_pack_uint64 (&pk, 1640995200000000ULL);
    zframe_t *frame = zframe_new (buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
    return frame;
}

//  =====================================================================
//  Publishing

Test (publish, ack_with_seq)
{
    fake_t *fake = s_fake_new (NULL, "");
    pond_client_t *client = pond_client_new (fake->ingest);
    cr_assert (client);
    pond_event_t *event = pond_event_new ("QUACKED", "cust-1");
    pond_ack_t ack;
    cr_assert_eq (pond_client_publish (client, event, &ack), 0, "%s", pond_client_reason (client));
    cr_assert_eq (ack.seq, 1);
    cr_assert_not (ack.dup);
    cr_assert_arr_eq (ack.id, pond_event_id (event), POND_ID_SIZE);
    cr_assert_eq (pond_client_code (client), 0);
    cr_assert_str_empty (pond_client_reason (client));

    //  Same event again: the original seq, flagged dup
    cr_assert_eq (pond_client_publish (client, event, &ack), 0);
    cr_assert_eq (ack.seq, 1);
    cr_assert (ack.dup);
    cr_assert_eq (pond_client_ping (client, 2000), 0);

    fake_counters_t counters = s_fake_counters (fake);
    cr_assert_eq (counters.publishes, 2);
    cr_assert_eq (counters.identical, 2);
    cr_assert_eq (counters.pings, 1);
    cr_assert_eq (pond_client_retries (client), 0);
    pond_event_destroy (&event);
    pond_client_destroy (&client);
    cr_assert_null (client);
    s_fake_destroy (&fake);
}

Test (publish, resends_same_bytes_after_timeout)
{
    fake_cfg_t cfg = { .drop_publishes = 1 };
    fake_t *fake = s_fake_new (&cfg, "");
    pond_client_t *client = pond_client_new (fake->ingest);
    pond_client_set_timeout (client, 300, 3);
    pond_event_t *event = pond_event_new ("QUACKED", "cust-1");
    pond_event_set_data_json (event, "{\"loudness\":3}", NULL, 0);
    pond_ack_t ack;
    int64_t start = zclock_mono ();
    cr_assert_eq (pond_client_publish (client, event, &ack), 0, "%s", pond_client_reason (client));
    int64_t elapsed = zclock_mono () - start;
    cr_assert_geq (elapsed, 300, "resent before the timeout (%d ms)", (int) elapsed);
    cr_assert_lt (elapsed, 2000);
    cr_assert_eq (ack.seq, 1);
    cr_assert_arr_eq (ack.id, pond_event_id (event), POND_ID_SIZE);
    cr_assert_eq (pond_client_retries (client), 1);
    fake_counters_t counters = s_fake_counters (fake);
    cr_assert_eq (counters.publishes, 2);
    cr_assert_eq (counters.identical, 2, "the resend must be the same bytes (same id)");
    pond_event_destroy (&event);
    pond_client_destroy (&client);
    s_fake_destroy (&fake);
}

Test (publish, nack_503_waits_retry_ms_and_resends)
{
    fake_cfg_t cfg = { .nack503 = 2, .retry_ms = 150 };
    fake_t *fake = s_fake_new (&cfg, "");
    pond_client_t *client = pond_client_new (fake->ingest);
    pond_client_set_timeout (client, 1000, 3);
    pond_event_t *event = pond_event_new ("QUACKED", "cust-1");
    pond_ack_t ack;
    int64_t start = zclock_mono ();
    cr_assert_eq (pond_client_publish (client, event, &ack), 0, "%s", pond_client_reason (client));
    int64_t elapsed = zclock_mono () - start;
    cr_assert_geq (elapsed, 300, "two back-offs of 150 ms, took %d ms", (int) elapsed);
    cr_assert_lt (elapsed, 1500);
    cr_assert_eq (ack.seq, 1);
    cr_assert_eq (pond_client_retries (client), 2);
    fake_counters_t counters = s_fake_counters (fake);
    cr_assert_eq (counters.publishes, 3);
    cr_assert_eq (counters.identical, 3);
    pond_event_destroy (&event);
    pond_client_destroy (&client);
    s_fake_destroy (&fake);
}

Test (publish, nack_503_gives_up_within_budget)
{
    fake_cfg_t cfg = { .nack503 = 1000, .retry_ms = 100 };
    fake_t *fake = s_fake_new (&cfg, "");
    pond_client_t *client = pond_client_new (fake->ingest);
    pond_client_set_timeout (client, 200, 3);
    pond_event_t *event = pond_event_new ("QUACKED", "cust-1");
    int64_t start = zclock_mono ();
    cr_assert_eq (pond_client_publish (client, event, NULL), -1);
    int64_t elapsed = zclock_mono () - start;
    cr_assert_lt (elapsed, 1000, "budget is 600 ms, took %d ms", (int) elapsed);
    cr_assert_eq (pond_client_code (client), 503);
    cr_assert (strstr (pond_client_reason (client), "store is away"), "%s",
               pond_client_reason (client));
    pond_event_destroy (&event);
    pond_client_destroy (&client);
    s_fake_destroy (&fake);
}

Test (publish, nack_400_fails_with_reason)
{
    fake_cfg_t cfg = { .nack400 = true };
    fake_t *fake = s_fake_new (&cfg, "");
    pond_client_t *client = pond_client_new (fake->ingest);
    pond_event_t *event = pond_event_new ("QUACKED", "cust-1");
    pond_ack_t ack = { .seq = 77 };
    cr_assert_eq (pond_client_publish (client, event, &ack), -1);
    cr_assert_eq (pond_client_code (client), 400);
    cr_assert_str_eq (pond_client_reason (client), "entity is not a customer");
    cr_assert_eq (ack.seq, 77, "no ACK, so *ack is untouched");
    cr_assert_eq (s_fake_counters (fake).publishes, 1, "a 400 is not retried");
    pond_event_destroy (&event);
    pond_client_destroy (&client);
    s_fake_destroy (&fake);
}

Test (publish, stale_ack_is_ignored)
{
    fake_cfg_t cfg = { .stale_ack = true };
    fake_t *fake = s_fake_new (&cfg, "");
    pond_client_t *client = pond_client_new (fake->ingest);
    for (uint64_t i = 1; i <= 3; i++) {
        pond_event_t *event = pond_event_new ("QUACKED", "cust-1");
        pond_ack_t ack;
        cr_assert_eq (pond_client_publish (client, event, &ack), 0);
        cr_assert_eq (ack.seq, i, "took the stale ACK (seq %llu)", (unsigned long long) ack.seq);
        cr_assert_arr_eq (ack.id, pond_event_id (event), POND_ID_SIZE);
        pond_event_destroy (&event);
    }
    cr_assert_eq (s_fake_counters (fake).publishes, 3);
    pond_client_destroy (&client);
    s_fake_destroy (&fake);
}

Test (publish, invalid_event_is_not_sent)
{
    fake_t *fake = s_fake_new (NULL, "");
    pond_client_t *client = pond_client_new (fake->ingest);
    pond_event_t *event = pond_event_new ("quacked", "cust-1");
    cr_assert_eq (pond_client_publish (client, event, NULL), -1);
    cr_assert_eq (pond_client_code (client), 400);
    cr_assert (strstr (pond_client_reason (client), "name"), "%s", pond_client_reason (client));
    pond_event_destroy (&event);

    event = pond_event_new ("QUACKED", "cust-1");
    pond_event_set_seq (event, 5);
    cr_assert_eq (pond_client_publish (client, event, NULL), -1);
    cr_assert_eq (pond_client_code (client), 400);
    cr_assert (strstr (pond_client_reason (client), "seq"));
    cr_assert_eq (pond_client_send (client, event), -1, "send refuses it too");
    pond_event_destroy (&event);
    cr_assert_eq (s_fake_counters (fake).publishes, 0);
    pond_client_destroy (&client);
    s_fake_destroy (&fake);
}

Test (publish, unreachable_broker_times_out)
{
    char *dir = s_tempdir ();
    char endpoint [256];
    snprintf (endpoint, sizeof endpoint, "ipc://%s/ingest.ipc", dir);
    pond_client_t *client = pond_client_new (endpoint);
    cr_assert (client, "creating a client needs no broker");
    pond_client_set_timeout (client, 150, 2);
    pond_event_t *event = pond_event_new ("QUACKED", "cust-1");
    int64_t start = zclock_mono ();
    cr_assert_eq (pond_client_publish (client, event, NULL), -1);
    int64_t elapsed = zclock_mono () - start;
    cr_assert_geq (elapsed, 250);
    cr_assert_lt (elapsed, 1000);
    cr_assert_eq (pond_client_code (client), POND_CODE_TIMEOUT);
    cr_assert (strstr (pond_client_reason (client), endpoint), "%s", pond_client_reason (client));
    cr_assert_eq (pond_client_ping (client, 100), -1);
    cr_assert_null (pond_client_new ("bogus://endpoint"));
    pond_event_destroy (&event);
    pond_client_destroy (&client);
}

Test (publish, pipelined)
{
    fake_t *fake = s_fake_new (NULL, "");
    pond_client_t *client = pond_client_new (fake->ingest);
    pond_event_t *events [50];
    for (int i = 0; i < 50; i++) {
        events [i] = pond_event_new ("QUACKED", "cust-1");
        if (i % 2)
            cr_assert_eq (pond_client_send (client, events [i]), 0);
        else {
            char err [POND_ERR_SIZE];
            size_t size;
            uint8_t *bytes = pond_event_encode (events [i], &size, err, sizeof err);
            cr_assert_eq (pond_client_send_bytes (client, bytes, size), 0);
            free (bytes);
        }
    }
    bool seen [51] = { false };
    for (int i = 0; i < 50; i++) {
        pond_ack_t ack;
        pond_nack_t nack;
        cr_assert_eq (pond_client_recv (client, 2000, &ack, &nack), 1);
        cr_assert (ack.seq >= 1 && ack.seq <= 50 && !seen [ack.seq]);
        seen [ack.seq] = true;
        //  The broker answers in order here: seq n is the n-th event
        cr_assert_arr_eq (ack.id, pond_event_id (events [ack.seq - 1]), POND_ID_SIZE);
    }
    cr_assert_eq (pond_client_recv (client, 100, NULL, NULL), -1);
    cr_assert_eq (pond_client_code (client), POND_CODE_TIMEOUT);
    for (int i = 0; i < 50; i++)
        pond_event_destroy (&events [i]);
    pond_client_destroy (&client);
    s_fake_destroy (&fake);
}

Test (publish, pipelined_nack)
{
    fake_cfg_t cfg = { .nack400 = true };
    fake_t *fake = s_fake_new (&cfg, "");
    pond_client_t *client = pond_client_new (fake->ingest);
    pond_event_t *event = pond_event_new ("QUACKED", "cust-1");
    cr_assert_eq (pond_client_send (client, event), 0);
    pond_nack_t nack;
    cr_assert_eq (pond_client_recv (client, 2000, NULL, &nack), 0);
    cr_assert_eq (nack.code, 400);
    cr_assert (nack.has_id);
    cr_assert_arr_eq (nack.id, pond_event_id (event), POND_ID_SIZE);
    pond_event_destroy (&event);
    pond_client_destroy (&client);
    s_fake_destroy (&fake);
}

//  Several clients in one thread: poll their sockets, read with timeout 0
Test (publish, sock_polls_several_clients)
{
    fake_t *fake = s_fake_new (NULL, "");
    pond_client_t *clients [3];
    zmq_pollitem_t items [3];
    for (int c = 0; c < 3; c++) {
        clients [c] = pond_client_new (fake->ingest);
        cr_assert (clients [c]);
        zsock_t *sock = pond_client_sock (clients [c]);
        cr_assert (sock);
        items [c] = (zmq_pollitem_t) { zsock_resolve (sock), 0, ZMQ_POLLIN, 0 };
    }
    //  Nothing in flight: the poll waits its whole timeout, reading finds nothing
    int64_t start = zclock_mono ();
    cr_assert_eq (zmq_poll (items, 3, 100), 0);
    cr_assert_geq (zclock_mono () - start, 90);
    cr_assert_eq (pond_client_recv (clients [0], 0, NULL, NULL), -1);
    cr_assert_eq (pond_client_code (clients [0]), POND_CODE_TIMEOUT);

    //  Two events on each client, every ACK comes back through the poll
    pond_event_t *events [6];
    for (int i = 0; i < 6; i++) {
        events [i] = pond_event_new ("QUACKED", "cust-1");
        cr_assert_eq (pond_client_send (clients [i % 3], events [i]), 0);
    }
    int acks [3] = { 0, 0, 0 };
    int total = 0;
    while (total < 6) {
        int rc = zmq_poll (items, 3, 2000);
        cr_assert_gt (rc, 0, "a reply within 2 s (%d of 6)", total);
        for (int c = 0; c < 3; c++) {
            if (!(items [c].revents & ZMQ_POLLIN))
                continue;
            pond_ack_t ack;
            while (pond_client_recv (clients [c], 0, &ack, NULL) == 1) {
                bool ours = false;
                for (int i = c; i < 6; i += 3)
                    ours |= memcmp (ack.id, pond_event_id (events [i]), POND_ID_SIZE) == 0;
                cr_assert (ours, "client %d got the ACK of its own event", c);
                acks [c]++;
                total++;
            }
            cr_assert_eq (pond_client_code (clients [c]), POND_CODE_TIMEOUT, "drained");
        }
    }
    for (int c = 0; c < 3; c++)
        cr_assert_eq (acks [c], 2);
    //  Drained: quiet again
    cr_assert_eq (zmq_poll (items, 3, 50), 0);
    //  The socket stays the same while nothing times out
    cr_assert_eq (zsock_resolve (pond_client_sock (clients [0])), items [0].socket);
    for (int i = 0; i < 6; i++)
        pond_event_destroy (&events [i]);
    for (int c = 0; c < 3; c++)
        pond_client_destroy (&clients [c]);
    s_fake_destroy (&fake);
}

//  =====================================================================
//  Subscribing

Test (sub, exact_names_and_heartbeat_head)
{
    fake_t *fake = s_fake_new (NULL, "");
    const char *names [] = { "QUACKED" };
    pond_sub_t *sub = pond_sub_new (fake->pub, names, 1);
    cr_assert (sub);
    cr_assert (pond_sub_sock (sub));
    s_fake_wait_subscriptions (fake, 2);    //  QUACKED and $HEARTBEAT

    s_fake_send (fake, POND_HEARTBEAT, s_heartbeat (42));
    s_fake_send (fake, "QUACKED_LOUDLY", s_log_event ("QUACKED_LOUDLY", 40));
    s_fake_send (fake, "QUACKED", s_log_event ("QUACKED", 41));
    pond_event_t *event = pond_sub_recv (sub, 2000);
    cr_assert (event);
    cr_assert_str_eq (pond_event_name (event), "QUACKED");
    cr_assert_eq (pond_event_seq (event), 41);
    cr_assert_eq (pond_sub_head (sub), 42);
    cr_assert_eq (pond_sub_heartbeats (sub), 1);
    cr_assert_eq (pond_sub_dropped (sub), 0, "a prefix match is not malformed");
    pond_event_destroy (&event);
    cr_assert_null (pond_sub_recv (sub, 100));
    pond_sub_destroy (&sub);
    cr_assert_null (sub);
    s_fake_destroy (&fake);
}

Test (sub, all_names)
{
    fake_t *fake = s_fake_new (NULL, "");
    pond_sub_t *sub = pond_sub_new (fake->pub, NULL, 0);
    s_fake_wait_subscriptions (fake, 1);
    s_fake_send (fake, "QUACKED_LOUDLY", s_log_event ("QUACKED_LOUDLY", 1));
    s_fake_send (fake, POND_HEARTBEAT, s_heartbeat (7));
    s_fake_send (fake, "QUACKED", s_log_event ("QUACKED", 2));
    pond_event_t *event = pond_sub_recv (sub, 2000);
    cr_assert (event);
    cr_assert_str_eq (pond_event_name (event), "QUACKED_LOUDLY");
    pond_event_destroy (&event);
    event = pond_sub_recv (sub, 2000);
    cr_assert (event);
    cr_assert_str_eq (pond_event_name (event), "QUACKED");
    cr_assert_eq (pond_sub_head (sub), 7);
    pond_event_destroy (&event);
    pond_sub_destroy (&sub);
    s_fake_destroy (&fake);
}

Test (sub, malformed_frames_dropped_and_counted)
{
    fake_t *fake = s_fake_new (NULL, "");
    const char *names [] = { "QUACKED", "LABEL_ADDED" };
    pond_sub_t *sub = pond_sub_new (fake->pub, names, 2);
    s_fake_wait_subscriptions (fake, 3);
    s_fake_send (fake, "QUACKED", zframe_new ("\xc1garbage", 8));     //  not msgpack
    s_fake_send (fake, "QUACKED", NULL);                              //  no body
    s_fake_send (fake, "LABEL_ADDED", s_log_event ("QUACKED", 3));    //  topic lies
    s_fake_send (fake, POND_HEARTBEAT, zframe_new ("\x80", 1));       //  no head
    s_fake_send (fake, "QUACKED", s_log_event ("QUACKED", 0));        //  no seq
    s_fake_send (fake, "LABEL_ADDED", s_log_event ("LABEL_ADDED", 9));
    pond_event_t *event = pond_sub_recv (sub, 2000);
    cr_assert (event);
    cr_assert_str_eq (pond_event_name (event), "LABEL_ADDED");
    cr_assert_eq (pond_event_seq (event), 9);
    cr_assert_eq (pond_sub_dropped (sub), 5);
    cr_assert_eq (pond_sub_heartbeats (sub), 0);
    pond_event_destroy (&event);
    pond_sub_destroy (&sub);
    s_fake_destroy (&fake);
}

Test (sub, bad_name_refused_and_timeout)
{
    const char *names [] = { "quacked" };
    cr_assert_null (pond_sub_new ("ipc:///tmp/pond-test-none/pub.ipc", names, 1));
    pond_sub_t *sub = pond_sub_new ("ipc:///tmp/pond-test-none/pub.ipc", NULL, 0);
    cr_assert (sub);
    int64_t start = zclock_mono ();
    cr_assert_null (pond_sub_recv (sub, 150));
    cr_assert_geq (zclock_mono () - start, 140);
    cr_assert_null (pond_sub_recv (sub, 0));
    pond_sub_destroy (&sub);
}

//  =====================================================================
//  Replaying

//  Read replay to its end; each event must carry the next seq from 1.
//  Returns how many came.
static uint64_t
s_drain_in_order (pond_reader_t *replay)
{
    uint64_t count = 0;
    pond_event_t *event;
    while ((event = pond_reader_next (replay, 2000))) {
        cr_assert_eq (pond_event_seq (event), ++count);
        pond_event_destroy (&event);
    }
    return count;
}

static pond_replay_req_t
s_seq_request (uint32_t credit)
{
    pond_replay_req_t req = { .from_seq = 1, .credit = credit };
    return req;
}

Test (replay, credit_bounds_what_is_in_flight)
{
    fake_cfg_t cfg = { .replay_events = 100, .chunk_events = 10 };
    fake_t *fake = s_fake_new (&cfg, "");
    pond_replay_req_t req = s_seq_request (2);
    pond_reader_t *replay = pond_reader_new (fake->control, &req);
    cr_assert (replay);
    uint64_t expected = 1;
    for (int i = 0; i < 25; i++) {
        pond_event_t *event = pond_reader_next (replay, 2000);
        cr_assert (event, "%s", pond_reader_reason (replay));
        cr_assert_eq (pond_event_seq (event), expected++);
        pond_event_destroy (&event);
    }
    //  Two chunks consumed: two chunks granted, so four sent and no more
    fake_counters_t counters = s_fake_counters (fake);
    for (int waited = 0; counters.granted < 2 && waited < 5000; waited += 10) {
        zclock_sleep (10);
        counters = s_fake_counters (fake);
    }
    cr_assert_eq (counters.initial_credit, 2);
    cr_assert_eq (counters.granted, 2);
    cr_assert_eq (counters.chunks_sent, 4);
    cr_assert_eq (pond_reader_code (replay), 0, "still running");

    pond_event_t *event;
    while ((event = pond_reader_next (replay, 2000))) {
        cr_assert_eq (pond_event_seq (event), expected++);
        cr_assert_str_eq (pond_event_name (event), "QUACKED");
        pond_event_destroy (&event);
    }
    cr_assert_eq (expected, 101);
    cr_assert_eq (pond_reader_code (replay), 200, "%s", pond_reader_reason (replay));
    cr_assert_eq (pond_reader_count (replay), 100);
    cr_assert_null (pond_reader_next (replay, 100), "over is over");
    pond_reader_destroy (&replay);
    cr_assert_null (replay);

    counters = s_fake_counters (fake);
    cr_assert_eq (counters.chunks_sent, 10);
    cr_assert_eq (counters.violations, 0, "credit granted for chunks not received");
    cr_assert_leq (counters.granted, 10);
    cr_assert_eq (counters.cancels, 0, "a finished replay is not cancelled");
    s_fake_destroy (&fake);
}

Test (replay, credit_is_granted_in_batches)
{
    fake_cfg_t cfg = { .replay_events = 200, .chunk_events = 10 };
    fake_t *fake = s_fake_new (&cfg, "");
    pond_replay_req_t req = s_seq_request (8);
    pond_reader_t *replay = pond_reader_new (fake->control, &req);
    cr_assert_eq (s_drain_in_order (replay), 200);
    cr_assert_eq (pond_reader_code (replay), 200, "%s", pond_reader_reason (replay));
    pond_reader_destroy (&replay);
    //  20 chunks, a window of 8: one CREDIT of 4 per 4 chunks taken
    fake_counters_t counters = s_fake_counters (fake);
    cr_assert_eq (counters.chunks_sent, 20);
    cr_assert_eq (counters.violations, 0, "credit granted for chunks not received");
    cr_assert_geq (counters.credits, 3, "credit keeps coming");
    cr_assert_leq (counters.credits, 5, "%d CREDITs for 20 chunks", counters.credits);
    cr_assert_eq (counters.granted, (uint32_t) counters.credits * 4);
    s_fake_destroy (&fake);
}

Test (replay, packed_chunks_are_read)
{
    fake_cfg_t cfg = { .replay_events = 95, .chunk_events = 10, .pack = true };
    fake_t *fake = s_fake_new (&cfg, "");
    pond_replay_req_t req = s_seq_request (2);
    pond_reader_t *replay = pond_reader_new (fake->control, &req);
    cr_assert_eq (s_drain_in_order (replay), 95);
    cr_assert_eq (pond_reader_code (replay), 200, "%s", pond_reader_reason (replay));
    cr_assert_eq (pond_reader_count (replay), 95);
    pond_reader_destroy (&replay);
    cr_assert_eq (s_fake_counters (fake).violations, 0);
    s_fake_destroy (&fake);
}

Test (replay, damaged_packed_chunk_fails)
{
    fake_cfg_t cfg = { .replay_events = 100, .chunk_events = 10, .pack = true, .damage_chunk = 2 };
    fake_t *fake = s_fake_new (&cfg, "");
    pond_replay_req_t req = s_seq_request (8);
    pond_reader_t *replay = pond_reader_new (fake->control, &req);
    cr_assert_eq (s_drain_in_order (replay), 19, "the events before the damage arrive");
    cr_assert_eq (pond_reader_code (replay), POND_CODE_BAD_REPLY);
    cr_assert (strstr (pond_reader_reason (replay), "event 20"), "%s", pond_reader_reason (replay));
    cr_assert_null (pond_reader_next (replay, 100), "failed is over");
    pond_reader_destroy (&replay);
    fake_counters_t counters;
    for (int waited = 0; waited < 2000; waited += 10) {
        counters = s_fake_counters (fake);
        if (counters.cancels)
            break;
        zclock_sleep (10);
    }
    cr_assert_eq (counters.cancels, 1, "the server is told to stop");
    s_fake_destroy (&fake);
}

Test (replay, default_credit_and_limit)
{
    fake_cfg_t cfg = { .replay_events = 1000, .chunk_events = 7 };
    fake_t *fake = s_fake_new (&cfg, "");
    pond_replay_req_t req = { .limit = 30 };
    pond_reader_t *replay = pond_reader_new (fake->control, &req);
    int count = 0;
    pond_event_t *event;
    while ((event = pond_reader_next (replay, 2000))) {
        count++;
        pond_event_destroy (&event);
    }
    cr_assert_eq (count, 30);
    cr_assert_eq (pond_reader_code (replay), 200, "%s", pond_reader_reason (replay));
    cr_assert_eq (s_fake_counters (fake).initial_credit, POND_REPLAY_CREDIT);
    pond_reader_destroy (&replay);
    s_fake_destroy (&fake);
}

Test (replay, end_code_surfaces)
{
    fake_cfg_t cfg = {
        .replay_events = 100, .chunk_events = 10, .fail_after_chunks = 1, .end_code = 500
    };
    fake_t *fake = s_fake_new (&cfg, "");
    pond_replay_req_t req = s_seq_request (4);
    pond_reader_t *replay = pond_reader_new (fake->control, &req);
    int count = 0;
    pond_event_t *event;
    while ((event = pond_reader_next (replay, 2000))) {
        count++;
        pond_event_destroy (&event);
    }
    cr_assert_eq (count, 10, "the events of the chunk before END still count");
    cr_assert_eq (pond_reader_code (replay), 500);
    cr_assert_str_eq (pond_reader_reason (replay), "disk on fire");
    pond_reader_destroy (&replay);
    cr_assert_eq (s_fake_counters (fake).cancels, 0);
    s_fake_destroy (&fake);
}

Test (replay, error_reply_surfaces)
{
    fake_cfg_t cfg = { .replay_error = true };
    fake_t *fake = s_fake_new (&cfg, "");
    pond_replay_req_t req = s_seq_request (0);
    pond_reader_t *replay = pond_reader_new (fake->control, &req);
    cr_assert_null (pond_reader_next (replay, 2000));
    cr_assert_eq (pond_reader_code (replay), 400);
    cr_assert (strstr (pond_reader_reason (replay), "names"));
    pond_reader_destroy (&replay);
    s_fake_destroy (&fake);
}

Test (replay, invalid_request_is_not_sent)
{
    fake_t *fake = s_fake_new (NULL, "");
    pond_replay_req_t req = { .from_seq = 10, .to_seq = 5 };
    pond_reader_t *replay = pond_reader_new (fake->control, &req);
    cr_assert (replay);
    cr_assert_null (pond_reader_next (replay, 100));
    cr_assert_eq (pond_reader_code (replay), 400);
    cr_assert (strstr (pond_reader_reason (replay), "to_seq"), "%s", pond_reader_reason (replay));
    pond_reader_destroy (&replay);
    cr_assert_eq (s_fake_counters (fake).replays, 0);
    s_fake_destroy (&fake);
}

Test (replay, cancel_when_destroyed_early)
{
    fake_cfg_t cfg = { .replay_events = 100, .chunk_events = 10 };
    fake_t *fake = s_fake_new (&cfg, "");
    pond_replay_req_t req = s_seq_request (1);
    pond_reader_t *replay = pond_reader_new (fake->control, &req);
    pond_event_t *event = pond_reader_next (replay, 2000);
    cr_assert (event);
    pond_event_destroy (&event);
    pond_reader_destroy (&replay);
    fake_counters_t counters;
    for (int waited = 0; waited < 2000; waited += 10) {
        counters = s_fake_counters (fake);
        if (counters.cancels)
            break;
        zclock_sleep (10);
    }
    cr_assert_eq (counters.cancels, 1);
    cr_assert_eq (counters.chunks_sent, 1, "credit 1, nothing consumed fully");
    s_fake_destroy (&fake);
}

Test (replay, timeout_leaves_it_running)
{
    char *dir = s_tempdir ();
    char endpoint [256];
    snprintf (endpoint, sizeof endpoint, "ipc://%s/control.ipc", dir);
    pond_replay_req_t req = s_seq_request (0);
    pond_reader_t *replay = pond_reader_new (endpoint, &req);
    cr_assert (replay);
    int64_t start = zclock_mono ();
    cr_assert_null (pond_reader_next (replay, 200));
    cr_assert_geq (zclock_mono () - start, 190);
    cr_assert_eq (pond_reader_code (replay), 0);
    cr_assert (strstr (pond_reader_reason (replay), "no reply"));
    pond_reader_destroy (&replay);
}

//  =====================================================================
//  Stats and endpoints

Test (stats, json_of_the_body)
{
    fake_t *fake = s_fake_new (NULL, "");
    char err [POND_ERR_SIZE];
    char *json = pond_client_stats (fake->control, 2000, err, sizeof err);
    cr_assert (json, "%s", err);
    cr_assert_str_eq (json, "{\"broker\":{\"received\":1234567,\"store_up\":true}}");
    free (json);
    cr_assert_eq (s_fake_counters (fake).stats, 1);
    s_fake_destroy (&fake);

    char *dir = s_tempdir ();
    char endpoint [256];
    snprintf (endpoint, sizeof endpoint, "ipc://%s/control.ipc", dir);
    cr_assert_null (pond_client_stats (endpoint, 100, err, sizeof err));
    cr_assert (strstr (err, "no reply"), "%s", err);
    cr_assert_null (pond_client_stats (endpoint, 50, NULL, 0));
}

Test (endpoints, defaults_env_and_broker_file)
{
    pond_endpoints_t eps;
    unsetenv ("POND_DATA");
    cr_assert_eq (pond_endpoints_resolve (NULL, &eps), 0);
    cr_assert_str_eq (eps.data_dir, "./pond-data");
    cr_assert_str_eq (eps.ingest, "ipc://./pond-data/ingest.ipc");
    cr_assert_not (eps.from_broker_file);

    char *dir = s_tempdir ();
    setenv ("POND_DATA", dir, 1);
    cr_assert_eq (pond_endpoints_resolve (NULL, &eps), 0);
    cr_assert_str_eq (eps.data_dir, dir);
    char expected [512];
    snprintf (expected, sizeof expected, "ipc://%s/pub.ipc", dir);
    cr_assert_str_eq (eps.pub, expected);
    snprintf (expected, sizeof expected, "ipc://%s/control.ipc", dir);
    cr_assert_str_eq (eps.control, expected);

    //  A running broker says where it is
    zconfig_t *config = zconfig_new ("root", NULL);
    zconfig_put (config, "broker/ingest", "tcp://127.0.0.1:5001");
    zconfig_put (config, "broker/pub", "tcp://127.0.0.1:5002");
    zconfig_put (config, "broker/control", "tcp://127.0.0.1:5003");
    zconfig_put (config, "broker/pid", "4242");
    char path [512];
    snprintf (path, sizeof path, "%s/broker.zpl", dir);
    cr_assert_eq (zconfig_save (config, path), 0);
    zconfig_destroy (&config);
    cr_assert_eq (pond_endpoints_resolve (dir, &eps), 0);
    cr_assert (eps.from_broker_file);
    cr_assert_eq (eps.broker_pid, 4242);
    cr_assert_str_eq (eps.ingest, "tcp://127.0.0.1:5001");
    cr_assert_str_eq (eps.pub, "tcp://127.0.0.1:5002");
    cr_assert_str_eq (eps.control, "tcp://127.0.0.1:5003");

    char *long_dir = malloc (400);
    memset (long_dir, 'x', 399);
    long_dir [399] = 0;
    cr_assert_eq (pond_endpoints_resolve (long_dir, &eps), -1);
    free (long_dir);
}

//  =====================================================================
//  The command line

#define POND POND_BIN_DIR "/pond"

static void
s_require_pond (void)
{
    cr_assert_eq (access (POND, X_OK), 0, "build the pond target first: %s", POND);
}

Test (cli, help_and_usage_errors)
{
    s_require_pond ();
    int rc;
    char *out = pond_harness_run (&rc, "%s --help", POND);
    cr_assert_eq (rc, 0);
    cr_assert (strstr (out, "publish") && strstr (out, "tail") && strstr (out, "replay")
                   && strstr (out, "stats"),
               "%s", out);
    free (out);
    const char *commands [] = { "publish", "tail", "replay", "stats" };
    for (size_t i = 0; i < 4; i++) {
        out = pond_harness_run (&rc, "%s %s --help", POND, commands [i]);
        cr_assert_eq (rc, 0, "%s --help", commands [i]);
        cr_assert (strstr (out, "Usage: pond ") && strstr (out, commands [i]), "%s", out);
        cr_assert (strstr (out, "--timeout"));
        free (out);
        out = pond_harness_run (&rc, "%s help %s", POND, commands [i]);
        cr_assert_eq (rc, 0);
        cr_assert (strstr (out, "Usage: pond "));
        free (out);
    }
    //  Usage errors: status 2, a message on stderr, nothing on stdout
    struct {
        const char *args;
        const char *says;
    } cases [] = {
        { "", "Usage: pond COMMAND" },
        { "frobnicate", "unknown command 'frobnicate'" },
        { "help frobnicate", "unknown command" },
        { "publish --entity cust-1", "--name" },
        { "publish --name QUACKED", "--entity" },
        { "publish --name QUACKED --entity c --bogus", "unknown option '--bogus'" },
        { "publish --name QUACKED --entity c --timeout", "needs a value" },
        { "publish --name QUACKED --entity c --timeout soon", "--timeout" },
        { "publish --name quacked --entity c", "name must start with A-Z" },
        { "publish --name QUACKED --entity c --payload '[1]'", "JSON object" },
        { "publish --name QUACKED --entity c --data '{\"a\":1}'", "--payload" },
        { "publish --name QUACKED --entity c --ts yesterday", "not a time" },
        { "publish --name QUACKED --entity c --id 1234", "not a UUID" },
        { "publish --stdin --name QUACKED", "--stdin" },
        { "tail --names QUACKED,quacked", "'quacked' is not an event name" },
        { "tail --count -1", "--count" },
        { "replay --names QUACKED --entity cust-1", "not both" },
        { "replay --from 2022-01-01", "go with --names" },
        { "replay --names QUACKED --from-seq 3", "--from-seq" },
        { "replay --from-seq 10 --to-seq 5", "after" },
        { "stats extra", "unexpected argument 'extra'" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        out = pond_harness_run (&rc, "%s %s 2>&1 >/dev/null", POND, cases [i].args);
        cr_assert_eq (rc, 2, "pond %s: status %d", cases [i].args, rc);
        cr_assert (strstr (out, cases [i].says), "pond %s said: %s", cases [i].args, out);
        free (out);
        out = pond_harness_run (&rc, "%s %s 2>/dev/null", POND, cases [i].args);
        cr_assert_str_empty (out, "pond %s wrote to stdout: %s", cases [i].args, out);
        free (out);
    }
}

Test (cli, broker_not_reachable)
{
    s_require_pond ();
    char *dir = s_tempdir ();
    const char *commands [] = { "publish --name QUACKED --entity cust-1", "stats",
                                "replay --names QUACKED", "tail" };
    for (size_t i = 0; i < 4; i++) {
        int rc;
        int64_t start = zclock_mono ();
        char *out = pond_harness_run (&rc, "%s %s --data-dir %s --timeout 500 2>&1", POND,
                                      commands [i], dir);
        int64_t elapsed = zclock_mono () - start;
        cr_assert_eq (rc, 1, "pond %s: status %d: %s", commands [i], rc, out);
        cr_assert (strstr (out, "is pond-broker running?"), "%s", out);
        cr_assert (strstr (out, "pond-broker --data"), "%s", out);
        cr_assert (strstr (out, dir), "the hint names the data dir: %s", out);
        cr_assert_lt (elapsed, 1500, "pond %s took %d ms with --timeout 500", commands [i],
                      (int) elapsed);
        free (out);
    }
}

Test (cli, publish_and_stdin)
{
    s_require_pond ();
    fake_t *fake = s_fake_new (NULL, "");
    int rc;
    //  Default endpoints of --data-dir
    char *out = pond_harness_run (&rc,
                                  "%s publish --data-dir %s --name QUACKED --entity cust-1 "
                                  "--payload '{\"loudness\":3}' --meta '{\"firmware\":\"2.1\"}' "
                                  "--source silo-7 --ts 2022-01-01T10:30:00Z "
                                  "--id 01890a5d-ac96-774b-bcce-b302099a8057",
                                  POND, fake->dir);
    cr_assert_eq (rc, 0, "%s", out);
    cr_assert_str_eq (out, "{\"id\":\"01890a5d-ac96-774b-bcce-b302099a8057\",\"seq\":1,"
                           "\"dup\":false}\n");
    free (out);
    //  Same id again: dup
    out = pond_harness_run (&rc,
                            "%s publish --ingest %s --name QUACKED --entity cust-1 "
                            "--id 01890a5d-ac96-774b-bcce-b302099a8057",
                            POND, fake->ingest);
    cr_assert_eq (rc, 0);
    cr_assert (strstr (out, "\"seq\":1,\"dup\":true"), "%s", out);
    free (out);

    //  One line per event; blank lines skipped; tail/replay output accepted
    out = pond_harness_run (&rc,
                            "printf '%%s\\n' "
                            "'{\"name\":\"QUACKED\",\"entity\":\"cust-1\",\"data\":{\"n\":1}}' '' "
                            "'{\"seq\":9,\"time\":\"x\",\"name\":\"LABEL_ADDED\",\"entity\":\"cust-"
                            "2\",\"ts\":1640995200000000}' "
                            "| %s publish --stdin --ingest %s",
                            POND, fake->ingest);
    cr_assert_eq (rc, 0, "%s", out);
    cr_assert (strstr (out, "\"seq\":2,\"dup\":false}\n{\"id\":"), "%s", out);
    cr_assert (strstr (out, "\"seq\":3,\"dup\":false}\n"), "%s", out);
    free (out);

    //  The first bad line stops it, and says which
    out = pond_harness_run (&rc,
                            "printf '%%s\\n' '{\"name\":\"QUACKED\",\"entity\":\"c\"}' "
                            "'{\"name\":\"QUACKED\"}' '{\"name\":\"QUACKED\",\"entity\":\"c\"}' "
                            "| %s publish --stdin --ingest %s 2>&1",
                            POND, fake->ingest);
    cr_assert_eq (rc, 1, "%s", out);
    cr_assert (strstr (out, "line 2: 'entity' is missing"), "%s", out);
    cr_assert (strstr (out, "\"seq\":4"), "%s", out);
    cr_assert_null (strstr (out, "\"seq\":5"), "%s", out);
    free (out);
    cr_assert_eq (s_fake_counters (fake).publishes, 5);
    s_fake_destroy (&fake);

    //  NACK: status 1, the code and reason
    fake_cfg_t cfg = { .nack400 = true };
    fake = s_fake_new (&cfg, "");
    out = pond_harness_run (&rc, "%s publish --ingest %s --name QUACKED --entity c 2>&1", POND,
                            fake->ingest);
    cr_assert_eq (rc, 1);
    cr_assert (strstr (out, "refused (400): entity is not a customer"), "%s", out);
    free (out);
    s_fake_destroy (&fake);
}

Test (cli, endpoints_from_broker_file)
{
    s_require_pond ();
    fake_t *fake = s_fake_new (NULL, "fake-");
    zconfig_t *config = zconfig_new ("root", NULL);
    zconfig_put (config, "broker/ingest", fake->ingest);
    zconfig_put (config, "broker/pub", fake->pub);
    zconfig_put (config, "broker/control", fake->control);
    zconfig_putf (config, "broker/pid", "%d", (int) getpid ());
    char path [512];
    snprintf (path, sizeof path, "%s/broker.zpl", fake->dir);
    cr_assert_eq (zconfig_save (config, path), 0);
    zconfig_destroy (&config);
    int rc;
    char *out = pond_harness_run (&rc, "POND_DATA=%s %s publish --name QUACKED --entity c",
                                  fake->dir, POND);
    cr_assert_eq (rc, 0, "%s", out);
    cr_assert (strstr (out, "\"seq\":1"));
    free (out);
    out = pond_harness_run (&rc, "%s stats --data %s", POND, fake->dir);
    cr_assert_eq (rc, 0, "%s", out);
    cr_assert (strstr (out, "\"received\":\t1234567"), "pretty printed: %s", out);
    free (out);
    out = pond_harness_run (&rc, "%s stats --compact --data %s", POND, fake->dir);
    cr_assert_eq (rc, 0);
    cr_assert_str_eq (out, "{\"broker\":{\"received\":1234567,\"store_up\":true}}\n");
    free (out);
    s_fake_destroy (&fake);
}

Test (cli, replay)
{
    s_require_pond ();
    fake_cfg_t cfg = { .replay_events = 25, .chunk_events = 4 };
    fake_t *fake = s_fake_new (&cfg, "");
    int rc;
    char *out = pond_harness_run (&rc, "%s replay --data %s --from-seq 1 2>%s/err", POND, fake->dir,
                                  fake->dir);
    cr_assert_eq (rc, 0, "%s", out);
    int lines = 0;
    for (char *line = out; (line = strstr (line, "{\"seq\":")); line++) {
        lines++;
        cr_assert_eq (atoi (line + 7), lines, "in order");
    }
    cr_assert_eq (lines, 25);
    free (out);
    out = pond_harness_run (&rc, "cat %s/err", fake->dir);
    cr_assert_str_eq (out, "replayed 25 events\n");
    free (out);
    s_fake_destroy (&fake);

    fake_cfg_t failing = {
        .replay_events = 25, .chunk_events = 4, .fail_after_chunks = 2, .end_code = 500
    };
    fake = s_fake_new (&failing, "");
    out = pond_harness_run (&rc,
                            "%s replay --control %s --names QUACKED --from 2022-01-01 "
                            "2>&1 >/dev/null",
                            POND, fake->control);
    cr_assert_eq (rc, 1);
    cr_assert (strstr (out, "replay failed (500) after 8 events: disk on fire"), "%s", out);
    cr_assert_null (strstr (out, "replayed"), "a failed replay does not claim one: %s", out);
    free (out);
    s_fake_destroy (&fake);
}

//  Wait for a child of ours to exit, up to timeout_ms. Returns its wait
//  status, or -1 (after killing it) if it did not.
static int
s_wait_child (pid_t pid, int timeout_ms)
{
    int status;
    for (int waited = 0; waited < timeout_ms; waited += 10) {
        if (waitpid (pid, &status, WNOHANG) == pid)
            return status;
        zclock_sleep (10);
    }
    pond_harness_stop (pid, SIGKILL);
    return -1;
}

Test (cli, tail)
{
    s_require_pond ();
    fake_t *fake = s_fake_new (NULL, "");
    char log [512];
    snprintf (log, sizeof log, "%s/tail.log", fake->dir);
    pid_t pid = pond_harness_spawn ("pond", log, "tail", "--data", fake->dir, "--names",
                                    "QUACKED,LABEL_ADDED", "--count", "2", NULL);
    cr_assert_gt (pid, 0);
    s_fake_wait_subscriptions (fake, 3);
    s_fake_send (fake, POND_HEARTBEAT, s_heartbeat (3));
    s_fake_send (fake, "QUACKED_LOUDLY", s_log_event ("QUACKED_LOUDLY", 1));
    s_fake_send (fake, "QUACKED", s_log_event ("QUACKED", 2));
    s_fake_send (fake, "LABEL_ADDED", s_log_event ("LABEL_ADDED", 3));
    s_fake_send (fake, "QUACKED", s_log_event ("QUACKED", 4));
    int status = s_wait_child (pid, 5000);
    cr_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0, "status %d", status);
    int rc;
    char *out = pond_harness_run (&rc, "cat %s", log);
    cr_assert (strstr (out, "{\"seq\":2,"), "%s", out);
    cr_assert (strstr (out, "{\"seq\":3,"), "%s", out);
    cr_assert_null (strstr (out, "LOUDLY"), "%s", out);
    cr_assert_null (strstr (out, "{\"seq\":4,"), "stopped after --count 2: %s", out);
    free (out);

    //  SIGTERM ends a tail normally
    pid = pond_harness_spawn ("pond", log, "tail", "--data", fake->dir, NULL);
    s_fake_wait_subscriptions (fake, 4);
    status = pond_harness_stop (pid, SIGTERM);
    cr_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0, "status %d", status);

    //  --seconds
    int64_t start = zclock_mono ();
    out = pond_harness_run (&rc, "%s tail --data %s --seconds 0.3", POND, fake->dir);
    cr_assert_eq (rc, 0);
    cr_assert_str_empty (out);
    cr_assert_geq (zclock_mono () - start, 300);
    free (out);

    //  A tail in the background ends (status 1) once its broker is gone
    int before = s_fake_counters (fake).subscriptions;
    pid = pond_harness_spawn ("pond", log, "tail", "--data", fake->dir, "--timeout", "300", NULL);
    s_fake_wait_subscriptions (fake, before + 1);
    s_fake_destroy (&fake);
    status = s_wait_child (pid, 3000);
    cr_assert (WIFEXITED (status) && WEXITSTATUS (status) == 1,
               "a tail outlives its broker (status %d)", status);
    out = pond_harness_run (&rc, "cat %s", log);
    cr_assert (strstr (out, "stopped answering"), "%s", out);
    free (out);
}

//  --seconds bounds the wait for a broker too: no broker is a failure
Test (cli, tail_seconds_without_broker_fails)
{
    s_require_pond ();
    char *dir = s_tempdir ();
    int rc;
    int64_t start = zclock_mono ();
    char *out = pond_harness_run (&rc, "%s tail --data %s --seconds 1 2>&1", POND, dir);
    cr_assert_eq (rc, 1, "status %d: %s", rc, out);
    cr_assert (strstr (out, "no broker answers"), "%s", out);
    cr_assert_lt (zclock_mono () - start, 2500);
    free (out);
}
