/*  test_time_travel: `pond query VIEW ENTITY --at-seq N / --as-of TIME`
    on a real mesh (`pond up`): the badges a customer held before and after
    the v2 rules, a quack count as of a seq, a time between two events;
    and the refusals: both options, bad text, a seq beyond the head, a
    time before the first event, a second time-travel query while one
    runs (503), malformed at_seq in a raw QUERY on the actor's socket.
    Every test has its own data directory; fini brings the mesh down and
    kills, by pid, anything of it still running.
*/
#include <criterion/criterion.h>
#include <czmq.h>
#include <signal.h>

#include "pond_harness.h"
#include "pond_proto.h"
#include "pond_time.h"

static char *dir;    //  this test's data directory

static void
s_setup (void)
{
    dir = pond_harness_tempdir ();
    cr_assert_not_null (dir);
}

static void
s_teardown (void)
{
    pond_harness_mesh_down (dir, dir, "test_time_travel");
    pond_harness_tempdir_done (&dir);
}

TestSuite (time_travel, .init = s_setup, .fini = s_teardown, .timeout = 120);

//  Run `pond ARGS --data DIR` (stderr into the output too); returns the
//  output (caller frees) and the exit code in *exit_p.
static char *s_pond (int *exit_p, const char *format, ...) __attribute__ ((format (printf, 2, 3)));

static char *
s_pond (int *exit_p, const char *format, ...)
{
    char args [1024];
    va_list list;
    va_start (list, format);
    vsnprintf (args, sizeof args, format, list);
    va_end (list);
    char *out = pond_harness_run (exit_p, "%s/pond %s --data %s 2>&1", POND_BIN_DIR, args, dir);
    cr_assert_not_null (out);
    return out;
}

//  `pond ARGS` must exit 0 with text in its output
static void
s_expect (const char *args, const char *text)
{
    int rc;
    char *out = s_pond (&rc, "%s", args);
    cr_assert_eq (rc, 0, "pond %s: exit %d: %s", args, rc, out);
    cr_assert (strstr (out, text), "pond %s: no %s in %s", args, text, out);
    free (out);
}

//  `pond ARGS` must exit code with text in its output
static void
s_expect_fail (const char *args, int code, const char *text)
{
    int rc;
    char *out = s_pond (&rc, "%s", args);
    cr_assert_eq (rc, code, "pond %s: exit %d, not %d: %s", args, rc, code, out);
    cr_assert (strstr (out, text), "pond %s: no %s in %s", args, text, out);
    free (out);
}

//  Run pond ARGS until its output has text, up to 10 s
static void
s_until (const char *args, const char *text)
{
    char *out = NULL;
    for (int waited = 0; waited <= 10000; waited += 100) {
        free (out);
        out = s_pond (NULL, "%s", args);
        if (strstr (out, text)) {
            free (out);
            return;
        }
        zclock_sleep (100);
    }
    cr_assert_fail ("pond %s never said %s; last: %s", args, text, out);
}

//  Publish one event, return its seq
static uint64_t
s_publish (const char *name, const char *entity)
{
    int rc;
    char *out = s_pond (&rc, "publish --name %s --entity %s --seq-only", name, entity);
    cr_assert_eq (rc, 0, "%s", out);
    uint64_t seq = strtoull (out, NULL, 10);
    cr_assert_gt (seq, 0, "%s", out);
    free (out);
    return seq;
}

static void
s_up (void)
{
    int rc;
    char *out = s_pond (&rc, "up");
    cr_assert_eq (rc, 0, "pond up failed: %s", out);
    free (out);
}

//  =====================================================================

Test (time_travel, badges_before_and_after_the_v2_rules)
{
    s_up ();
    //  12 quacks: Junior under v1 (at 10), none under v2 (Junior at 15)
    uint64_t quacks [12];
    for (int i = 0; i < 12; i++)
        quacks [i] = s_publish ("QUACKED", "anna");
    s_until ("query badges anna", "\"quacks\":12,\"badges\":[{\"name\":\"Junior\"");
    //  A mark in the log once the grant is stored, and a time after it
    uint64_t before = s_publish ("BUTTON_CLICKED", "anna");
    zclock_sleep (20);
    uint64_t between = pond_time_now ();
    zclock_sleep (20);
    s_expect ("recompute badges --rules v2", "\"removed_count\": 1");
    s_until ("query badges anna", "\"badges\":[]");
    uint64_t head = s_publish ("BUTTON_CLICKED", "anna");

    //  Before the recompute: the v1 badges; after: v2's
    char args [256];
    snprintf (args, sizeof args, "query badges anna --at-seq %" PRIu64, before);
    s_expect (args, "\"badges\":[{\"name\":\"Junior\"");
    s_expect (args, "\"rules_version\":\"v1\"");
    snprintf (args, sizeof args, "query badges anna --at-seq %" PRIu64, head);
    s_expect (args, "\"badges\":[],\"rules_version\":\"v2\"");
    //  Before the 10th quack: no badge yet
    snprintf (args, sizeof args, "query badges anna --at-seq %" PRIu64, quacks [8]);
    s_expect (args, "\"quacks\":9,\"badges\":[]");

    //  As of a time between the grant and the recompute: v1, in both
    //  forms of TIME; the seq it stands at is said
    snprintf (args, sizeof args, "query badges anna --as-of %" PRIu64, between);
    s_expect (args, "\"badges\":[{\"name\":\"Junior\"");
    char when [64];
    pond_time_format (between, when, sizeof when);
    snprintf (args, sizeof args, "query badges anna --as-of %s", when);
    s_expect (args, "\"rules_version\":\"v1\"");
    //  ... at the last seq it applied by then: the last quack or the grant
    int rc;
    char *out = s_pond (&rc, "%s", args);
    const char *at = strstr (out, "\"as_of_seq\":");
    cr_assert (at, "%s", out);
    uint64_t as_of_seq = strtoull (at + strlen ("\"as_of_seq\":"), NULL, 10);
    cr_assert (as_of_seq >= quacks [11] && as_of_seq < before, "%s", out);
    free (out);

    //  The live view is untouched by all this
    s_expect ("query badges anna", "\"badges\":[],\"rules_version\":\"v2\"}");
    //  No scratch view is left behind
    out = pond_harness_run (&rc, "ls %s/views", dir);
    cr_assert (!strstr (out, "asof"), "%s", out);
    free (out);
}

Test (time_travel, quack_count_as_of_a_seq)
{
    s_up ();
    uint64_t quacks [8];
    for (int i = 0; i < 8; i++)
        quacks [i] = s_publish ("QUACKED", "ben");
    s_until ("query quacks ben", "\"quacks\":8");
    char args [256], text [64];
    for (int n = 1; n <= 8; n += 3) {
        snprintf (args, sizeof args, "query quacks ben --at-seq %" PRIu64, quacks [n - 1]);
        snprintf (text, sizeof text, "\"quacks\":%d,", n);
        s_expect (args, text);
    }
    //  The mobile view too (it applies quacks)
    snprintf (args, sizeof args, "query mobile ben --compact --at-seq %" PRIu64, quacks [2]);
    s_expect (args, "\"quacks\":3");
}

Test (time_travel, refusals_on_the_command_line)
{
    s_up ();
    uint64_t seq = s_publish ("QUACKED", "carl");
    s_until ("query quacks carl", "\"quacks\":1");
    //  Usage errors: exit 2
    s_expect_fail ("query quacks carl --at-seq 1 --as-of 2026-01-01", 2, "give one of");
    s_expect_fail ("query quacks carl --at-seq 1 --after 1", 2, "give one of");
    s_expect_fail ("query quacks carl --as-of yesterday", 2, "--as-of takes a time");
    s_expect_fail ("query quacks carl --as-of 2026-13-45", 2, "--as-of takes a time");
    s_expect_fail ("query quacks carl --at-seq -3", 2, "--at-seq takes a seq");
    s_expect_fail ("query quacks carl --at-seq 1x", 2, "--at-seq takes a seq");
    //  Beyond the head: the head is said
    char args [256], text [128];
    snprintf (args, sizeof args, "query quacks carl --at-seq %" PRIu64, seq + 1000);
    snprintf (text, sizeof text, "beyond the head of the log (seq %" PRIu64 ")", seq);
    s_expect_fail (args, 1, text);
    //  Before the first event: the view knew nothing then
    s_expect_fail ("query quacks carl --as-of 2001-01-01", 1, "404");
    s_expect_fail ("query quacks carl --as-of 2001-01-01", 1, "as of 2001-01-01T00:00:00");
    s_expect_fail ("query quacks carl --at-seq 0", 1, "as of seq 0");
    //  An entity unknown then
    snprintf (args, sizeof args, "query quacks nobody --at-seq %" PRIu64, seq);
    s_expect_fail (args, 1, "404");
}

//  ---------------------------------------------------------------------
//  Raw QUERYs on the quack counter's socket

static zsock_t *
s_actor_sock (const char *name)
{
    char path [600];
    snprintf (path, sizeof path, "%s/%s.zpl", dir, name);
    zconfig_t *config = zconfig_load (path);
    cr_assert_not_null (config, "%s", path);
    zsock_t *sock = zsock_new_dealer (zconfig_get (config, "actor/query", ""));
    zconfig_destroy (&config);
    cr_assert_not_null (sock);
    zsock_set_rcvtimeo (sock, 10000);
    return sock;
}

//  A QUERY body: {"entity": "dora", KEY: <value bytes>} in msgpack
static zframe_t *
s_body (const char *key, const uint8_t *value, size_t size)
{
    uint8_t data [128];
    size_t at = 0;
    data [at++] = 0x82;    //  map of 2
    data [at++] = 0xa6;
    memcpy (data + at, "entity", 6);
    at += 6;
    data [at++] = 0xa4;
    memcpy (data + at, "dora", 4);
    at += 4;
    data [at++] = (uint8_t) (0xa0 | strlen (key));
    memcpy (data + at, key, strlen (key));
    at += strlen (key);
    memcpy (data + at, value, size);
    at += size;
    return zframe_new (data, at);
}

//  Send [QUERY, body], expect ERROR code with text in the reason
static void
s_expect_error (zsock_t *sock, zframe_t *body, uint32_t code, const char *text)
{
    zstr_sendm (sock, POND_QUERY);
    zframe_send (&body, sock, 0);
    zmsg_t *reply = zmsg_recv (sock);
    cr_assert_not_null (reply, "no reply");
    char *command = zmsg_popstr (reply);
    zframe_t *frame = zmsg_pop (reply);
    pond_nack_t nack;
    char err [256];
    cr_assert_str_eq (command, POND_ERROR);
    cr_assert_eq (pond_nack_decode (frame, &nack, err, sizeof err), 0, "%s", err);
    cr_assert_eq (nack.code, code, "%u %s", nack.code, nack.reason);
    cr_assert (strstr (nack.reason, text), "%s", nack.reason);
    free (command);
    zframe_destroy (&frame);
    zmsg_destroy (&reply);
}

Test (time_travel, malformed_at_seq_in_a_raw_query)
{
    s_up ();
    uint64_t seq = s_publish ("QUACKED", "dora");
    s_until ("query quacks dora", "\"quacks\":1");
    zsock_t *sock = s_actor_sock ("quack-counter");
    const uint8_t text [] = { 0xa1, '5' };    //  "5"
    const uint8_t negative [] = { 0xff };     //  -1
    const uint8_t huge [] = { 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    const uint8_t boolean [] = { 0xc3 };    //  true
    s_expect_error (sock, s_body ("at_seq", text, sizeof text), 400, "'at_seq' must be");
    s_expect_error (sock, s_body ("at_seq", negative, sizeof negative), 400, "'at_seq' must be");
    s_expect_error (sock, s_body ("at_seq", boolean, sizeof boolean), 400, "'at_seq' must be");
    s_expect_error (sock, s_body ("as_of", text, sizeof text), 400, "'as_of' must be");
    s_expect_error (sock, s_body ("at_seq", huge, sizeof huge), 400, "beyond the head");

    //  Both at once
    pond_query_t query;
    memset (&query, 0, sizeof query);
    strcpy (query.entity, "dora");
    query.at_seq = seq;
    query.has_at_seq = true;
    query.as_of = pond_time_now ();
    query.has_as_of = true;
    s_expect_error (sock, pond_query_encode (&query), 400, "not both");

    //  The actor still answers, live and as of a seq
    query.has_as_of = false;
    zframe_t *body = pond_query_encode (&query);
    zstr_sendm (sock, POND_QUERY);
    zframe_send (&body, sock, 0);
    char *command = NULL, *result = NULL;
    cr_assert_eq (zsock_recv (sock, "ss", &command, &result), 0);
    cr_assert_str_eq (command, POND_RESULT, "%s", result);
    cr_assert (strstr (result, "\"quacks\":1"), "%s", result);
    zstr_free (&command);
    zstr_free (&result);
    zsock_destroy (&sock);
    s_expect ("query quacks dora", "\"quacks\":1");
}

Test (time_travel, one_at_a_time_a_second_one_is_busy)
{
    s_up ();
    uint64_t seq = 0;
    for (int i = 0; i < 20; i++)
        seq = s_publish ("QUACKED", "dora");
    s_until ("query quacks dora", "\"quacks\":20");
    zsock_t *sock = s_actor_sock ("quack-counter");
    pond_query_t query;
    memset (&query, 0, sizeof query);
    strcpy (query.entity, "dora");
    query.at_seq = seq;
    query.has_at_seq = true;
    //  Two at once on one socket: the first runs, the second is refused
    for (int i = 0; i < 2; i++) {
        zframe_t *body = pond_query_encode (&query);
        zstr_sendm (sock, POND_QUERY);
        zframe_send (&body, sock, 0);
    }
    bool busy = false, answered = false;
    for (int i = 0; i < 2; i++) {
        zmsg_t *reply = zmsg_recv (sock);
        cr_assert_not_null (reply, "no reply");
        char *command = zmsg_popstr (reply);
        zframe_t *frame = zmsg_pop (reply);
        if (streq (command, POND_ERROR)) {
            pond_nack_t nack;
            char err [256];
            cr_assert_eq (pond_nack_decode (frame, &nack, err, sizeof err), 0, "%s", err);
            cr_assert_eq (nack.code, 503, "%u %s", nack.code, nack.reason);
            cr_assert_gt (nack.retry_ms, 0);
            cr_assert (strstr (nack.reason, "another time-travel query"), "%s", nack.reason);
            busy = true;
        }
        else {
            cr_assert_str_eq (command, POND_RESULT);
            char *text = zframe_strdup (frame);
            cr_assert (strstr (text, "\"quacks\":20"), "%s", text);
            free (text);
            answered = true;
        }
        free (command);
        zframe_destroy (&frame);
        zmsg_destroy (&reply);
    }
    cr_assert (busy && answered);
    zsock_destroy (&sock);
    //  The command line waits its turn (asks again after retry_ms)
    char args [128];
    snprintf (args, sizeof args, "query quacks dora --at-seq %" PRIu64, seq);
    s_expect (args, "\"quacks\":20");
}
