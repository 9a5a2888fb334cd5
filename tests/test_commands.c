/*  test_commands: commands that say when they are done (the broker's
    COMMAND and COMMAND_STATUS on its control socket, pond recompute,
    pond rebuild and pond command through it).

    - control_refuses_bad_commands: malformed, truncated, wrong-typed and
      unknown COMMAND and COMMAND_STATUS bodies each get ERROR with the
      reason (and the rid and id when they could be read); the broker
      goes on serving.
    - actor_down_fails_with_reason: a view whose actor never started, or
      whose ready file names a pid that is gone: accepted, then failed
      with what to do; actor_dies_while_running: a real actor killed
      while it has the command: failed, with why.
    - one_command_per_actor_and_replies_checked: an actor played by the
      test (its ROUTER, its ready file): the COMMAND reaches it with the
      id, a second command on it gets 503, PROGRESS shows in the status,
      replies naming another command are ignored, the RESULT makes it
      done; the same id again is a resend, another command under it 409;
      pipelined COMMAND_STATUS replies carry their rid.
    - statuses_are_bounded: 1,001 commands on an actor played by the
      test that answers at once: the oldest status is forgotten (404), a
      result too large for a reply is kept as a note of its size.
    - recompute_through_broker: pond up, the badge story; v2 through the
      broker: accepted, running, done with the result; every BADGE_* event
      it made carries the command id as causation, no other event does;
      pond recompute --no-wait, pond command status / wait, pond rebuild.
*/
#include <criterion/criterion.h>
#include <czmq.h>
#include <signal.h>
#include <sys/wait.h>

#include "pond_client.h"
#include "pond_harness.h"
#include "pond_proto.h"
#include "pond_uuid.h"

#include <msgpack.h>

static char *dir;    //  the mesh of a test started with pond up (NULL: none)
static pond_mesh_t *mesh;

static void
s_teardown (void)
{
    if (dir) {
        free (pond_harness_run (NULL, "%s/pond down --data %s >/dev/null 2>&1", POND_BIN_DIR, dir));
        pond_harness_rmtree (dir);
        free (dir);
        dir = NULL;
    }
    pond_mesh_destroy (&mesh);
}

TestSuite (commands, .fini = s_teardown, .timeout = 120);

//  ---------------------------------------------------------------------
//  Helpers

//  A DEALER on the control socket
static zsock_t *
s_control (const char *endpoint)
{
    zsock_t *sock = zsock_new_dealer (endpoint);
    cr_assert_not_null (sock);
    zsock_set_rcvtimeo (sock, 5000);
    return sock;
}

//  Send command [body frames...] (NULL-terminated list of frames, taken)
static void
s_send (zsock_t *sock, const char *command, zframe_t *body, zframe_t *extra)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, command);
    if (body)
        zmsg_append (msg, &body);
    if (extra)
        zmsg_append (msg, &extra);
    cr_assert_eq (zmsg_send (&msg, sock), 0);
}

//  A frame of raw bytes
static zframe_t *
s_raw (const void *data, size_t size)
{
    return zframe_new (data, size);
}

//  A msgpack map from pairs: key, type ('s' str, 'u' uint, 'b' bin16,
//  'i' negative int), value; ends at NULL key
static zframe_t *
s_map (const char *key, ...)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    va_list args;
    size_t count = 0;
    va_start (args, key);
    for (const char *k = key; k; k = va_arg (args, const char *)) {
        int type = va_arg (args, int);
        if (type == 's' || type == 'b')
            (void) va_arg (args, const void *);
        else
            (void) va_arg (args, long long);
        count++;
    }
    va_end (args);
    msgpack_pack_map (&pk, count);
    va_start (args, key);
    for (const char *k = key; k; k = va_arg (args, const char *)) {
        msgpack_pack_str (&pk, strlen (k));
        msgpack_pack_str_body (&pk, k, strlen (k));
        int type = va_arg (args, int);
        if (type == 's') {
            const char *text = va_arg (args, const char *);
            msgpack_pack_str (&pk, strlen (text));
            msgpack_pack_str_body (&pk, text, strlen (text));
        }
        else if (type == 'b') {
            const void *id = va_arg (args, const void *);
            msgpack_pack_bin (&pk, POND_ID_SIZE);
            msgpack_pack_bin_body (&pk, id, POND_ID_SIZE);
        }
        else if (type == 'i')
            msgpack_pack_int64 (&pk, va_arg (args, long long));
        else
            msgpack_pack_uint64 (&pk, (uint64_t) va_arg (args, long long));
    }
    va_end (args);
    zframe_t *frame = zframe_new (sbuf.data, sbuf.size);
    msgpack_sbuffer_destroy (&sbuf);
    return frame;
}

//  The next reply; fails the test if none within 5 s
static zmsg_t *
s_recv (zsock_t *sock)
{
    zmsg_t *msg = zmsg_recv (sock);
    cr_assert_not_null (msg, "no reply within 5 s");
    return msg;
}

//  Expect ERROR code whose reason contains text; returns the decoded body
static pond_nack_t
s_expect_error (zsock_t *sock, uint32_t code, const char *text)
{
    zmsg_t *msg = s_recv (sock);
    zframe_t *head = zmsg_first (msg);
    char *command = zframe_strdup (head);
    cr_assert_str_eq (command, POND_ERROR);
    free (command);
    pond_nack_t error;
    char err [POND_ERR_SIZE];
    cr_assert_eq (pond_nack_decode (zmsg_next (msg), &error, err, sizeof err), 0, "%s", err);
    cr_assert_eq (error.code, code, "%u %s (expected %u with '%s')", error.code, error.reason, code,
                  text);
    cr_assert (strstr (error.reason, text), "'%s' not in '%s'", text, error.reason);
    zmsg_destroy (&msg);
    return error;
}

//  Expect reply (ACCEPTED or COMMAND_STATUS) and decode it into status
static void
s_expect_status (zsock_t *sock, const char *reply, pond_command_status_t *status)
{
    zmsg_t *msg = s_recv (sock);
    char *command = zframe_strdup (zmsg_first (msg));
    zframe_t *body = zmsg_next (msg);
    if (!streq (command, reply)) {
        pond_nack_t error = { 0 };
        char err [POND_ERR_SIZE];
        pond_nack_decode (body, &error, err, sizeof err);
        cr_assert_fail ("%s expected, got %s: %u %s", reply, command, error.code, error.reason);
    }
    free (command);
    char err [POND_ERR_SIZE];
    cr_assert_eq (pond_command_status_decode (body, status, err, sizeof err), 0, "%s", err);
    zmsg_destroy (&msg);
}

//  COMMAND_STATUS of id until its status is final (or timeout_ms)
static void
s_until_final (zsock_t *sock, const uint8_t *id, pond_command_status_t *status, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        s_send (sock, POND_COMMAND_STATUS, s_map ("id", 'b', id, NULL), NULL);
        s_expect_status (sock, POND_COMMAND_STATUS, status);
        if (streq (status->status, "done") || streq (status->status, "failed"))
            return;
        zclock_sleep (50);
    }
    cr_assert_fail ("command still %s after %d ms", status->status, timeout_ms);
}

//  The rules file shipped with pond, as text (caller frees)
static char *
s_rules (const char *version)
{
    char path [512];
    snprintf (path, sizeof path, "%s/../rules/%s.json", POND_BIN_DIR, version);
    zfile_t *file = zfile_new (NULL, path);
    cr_assert (file && zfile_input (file) == 0, "cannot read %s", path);
    zchunk_t *chunk = zfile_read (file, 65536, 0);
    char *text = zchunk_strdup (chunk);
    zchunk_destroy (&chunk);
    zfile_destroy (&file);
    return text;
}

//  =====================================================================

Test (commands, control_refuses_bad_commands)
{
    mesh = pond_harness_mesh_up ();
    zsock_t *sock = s_control (mesh->control);
    uint8_t id [POND_ID_SIZE];
    pond_uuid_v7 (id);

    s_send (sock, POND_COMMAND, NULL, NULL);
    s_expect_error (sock, 400, "COMMAND takes a body");
    s_send (sock, POND_COMMAND, s_raw ("\xc1", 1), NULL);
    s_expect_error (sock, 400, "");
    //  A map cut short: three keys announced, one given
    s_send (sock, POND_COMMAND,
            s_raw ("\x83\xa7"
                   "command\xa7rebuild",
                   17),
            NULL);
    s_expect_error (sock, 400, "");
    s_send (sock, POND_COMMAND, s_raw ("\x92\x01\x02", 3), NULL);
    s_expect_error (sock, 400, "map");
    //  Wrong types, each named
    s_send (sock, POND_COMMAND, s_map ("command", 'u', 7LL, "view", 's', "badges", NULL), NULL);
    s_expect_error (sock, 400, "'command' must be a str");
    s_send (sock, POND_COMMAND,
            s_map ("command", 's', "rebuild", "view", 's', "badges", "id", 's', "not-bin", NULL),
            NULL);
    s_expect_error (sock, 400, "'id' must be 16 bytes of bin");
    s_send (sock, POND_COMMAND,
            s_map ("command", 's', "rebuild", "view", 's', "badges", "rid", 'i', -5LL, NULL), NULL);
    s_expect_error (sock, 400, "'rid' must be a positive integer");
    s_send (sock, POND_COMMAND,
            s_map ("command", 's', "rebuild", "view", 's', "badges", "args", 'u', 1LL, NULL), NULL);
    s_expect_error (sock, 400, "'args' must be a str");
    //  Too many frames
    s_send (sock, POND_COMMAND, s_map ("command", 's', "rebuild", "view", 's', "badges", NULL),
            s_raw ("x", 1));
    s_expect_error (sock, 400, "too many frames");
    //  Missing or unknown command and view; what can be read is echoed
    s_send (sock, POND_COMMAND, s_map ("view", 's', "badges", "rid", 'u', 41LL, NULL), NULL);
    pond_nack_t error = s_expect_error (sock, 400, "missing required key 'command'");
    cr_assert (error.has_rid && error.rid == 41);
    s_send (sock, POND_COMMAND,
            s_map ("command", 's', "explode", "view", 's', "badges", "rid", 'u', 42LL, "id", 'b',
                   id, NULL),
            NULL);
    error = s_expect_error (sock, 400, "unknown command 'explode'");
    cr_assert (error.has_rid && error.rid == 42);
    cr_assert (error.has_id && memcmp (error.id, id, POND_ID_SIZE) == 0, "the id is echoed");
    s_send (sock, POND_COMMAND, s_map ("command", 's', "rebuild", NULL), NULL);
    s_expect_error (sock, 400, "missing required key 'view'");
    s_send (sock, POND_COMMAND, s_map ("command", 's', "rebuild", "view", 's', "nosuch", NULL),
            NULL);
    s_expect_error (sock, 404, "unknown view 'nosuch'");
    s_send (sock, POND_COMMAND, s_map ("command", 's', "rebuild", "view", 's', "../etc", NULL),
            NULL);
    s_expect_error (sock, 404, "unknown view");
    s_send (sock, POND_COMMAND,
            s_map ("command", 's', "recompute", "view", 's', "quacks", "args", 's', "{}", NULL),
            NULL);
    s_expect_error (sock, 400, "recompute is the badge granter's command");
    s_send (sock, POND_COMMAND,
            s_map ("command", 's', "recompute", "view", 's', "badges", "args", 's', "{\"ver", NULL),
            NULL);
    s_expect_error (sock, 400, "'args' must be the rules as JSON text");

    //  COMMAND_STATUS
    s_send (sock, POND_COMMAND_STATUS, NULL, NULL);
    s_expect_error (sock, 400, "COMMAND_STATUS takes a body");
    s_send (sock, POND_COMMAND_STATUS, s_map ("id", 'u', 5LL, NULL), NULL);
    s_expect_error (sock, 400, "'id' must be 16 bytes of bin");
    s_send (sock, POND_COMMAND_STATUS, s_map ("rid", 'u', 9LL, NULL), NULL);
    error = s_expect_error (sock, 400, "missing required key 'id'");
    cr_assert (error.has_rid && error.rid == 9);
    s_send (sock, POND_COMMAND_STATUS, s_map ("id", 'b', id, "rid", 'u', 10LL, NULL), NULL);
    error = s_expect_error (sock, 404, "unknown command id");
    cr_assert (strstr (error.reason, "never accepted it, or forgot it"), "%s", error.reason);
    cr_assert (error.has_rid && error.rid == 10 && error.has_id);
    s_send (sock, "COMMAND_STATU", NULL, NULL);
    s_expect_error (sock, 404, "COMMAND_STATUS");

    //  The broker goes on, and counted the malformed requests
    char err [POND_ERR_SIZE];
    char *stats = pond_client_stats (mesh->control, 3000, err, sizeof err);
    cr_assert_not_null (stats, "%s", err);
    cr_assert (strstr (stats, "\"malformed\":17") && strstr (stats, "\"unknown_command\":1"), "%s",
               stats);
    free (stats);
    zsock_destroy (&sock);
}

Test (commands, actor_down_fails_with_reason)
{
    mesh = pond_harness_mesh_up ();
    zsock_t *sock = s_control (mesh->control);
    pond_command_status_t *status = malloc (sizeof *status);
    //  badges: a view of the mesh, whose actor never started
    s_send (sock, POND_COMMAND, s_map ("command", 's', "rebuild", "view", 's', "badges", NULL),
            NULL);
    s_expect_status (sock, POND_ACCEPTED, status);
    cr_assert_str_eq (status->status, "accepted");
    cr_assert_str_eq (status->view, "badge-granter");
    cr_assert_gt (status->accepted, 0);
    uint8_t id [POND_ID_SIZE];
    memcpy (id, status->id, POND_ID_SIZE);
    s_until_final (sock, id, status, 5000);
    cr_assert_str_eq (status->status, "failed");
    cr_assert (status->has_code && status->code == 503, "%u", status->code);
    cr_assert (strstr (status->reason, "badge-granter is not running")
                   && strstr (status->reason, "pond up"),
               "%s", status->reason);
    cr_assert (!status->has_result);
    cr_assert_geq (status->finished, status->accepted);

    //  An actor whose ready file names a pid that is gone
    pid_t child = fork ();
    if (child == 0)
        _exit (0);
    waitpid (child, NULL, 0);
    char path [600];
    snprintf (path, sizeof path, "%s/ghost.zpl", mesh->dir);
    FILE *file = fopen (path, "w");
    fprintf (file, "actor\n    query = \"ipc://%s/ghost.ipc\"\n    pid = %d\n", mesh->dir,
             (int) child);
    fclose (file);
    s_send (sock, POND_COMMAND, s_map ("command", 's', "rebuild", "view", 's', "ghost", NULL),
            NULL);
    s_expect_status (sock, POND_ACCEPTED, status);
    cr_assert_str_eq (status->view, "ghost");
    memcpy (id, status->id, POND_ID_SIZE);
    s_until_final (sock, id, status, 5000);
    cr_assert_str_eq (status->status, "failed");
    char pid_text [64];
    snprintf (pid_text, sizeof pid_text, "its pid %d is gone", (int) child);
    cr_assert (strstr (status->reason, pid_text), "%s", status->reason);
    free (status);
    zsock_destroy (&sock);
}

//  An actor the test plays: a ROUTER at ipc://DIR/NAME.ipc and the ready
//  file DIR/NAME.zpl naming it and this process's pid
static zsock_t *
s_fake_actor (const char *name)
{
    char endpoint [600], path [600];
    snprintf (endpoint, sizeof endpoint, "ipc://%s/%s.ipc", mesh->dir, name);
    zsock_t *actor = zsock_new_router (endpoint);
    cr_assert_not_null (actor);
    zsock_set_rcvtimeo (actor, 5000);
    snprintf (path, sizeof path, "%s/%s.zpl", mesh->dir, name);
    FILE *file = fopen (path, "w");
    cr_assert_not_null (file);
    fprintf (file, "actor\n    query = \"%s\"\n    pid = %d\n", endpoint, (int) getpid ());
    fclose (file);
    return actor;
}

//  The test plays an actor named slowpoke: a ROUTER and a ready file
Test (commands, one_command_per_actor_and_replies_checked)
{
    mesh = pond_harness_mesh_up ();
    zsock_t *actor = s_fake_actor ("slowpoke");

    zsock_t *sock = s_control (mesh->control);
    pond_command_status_t *status = malloc (sizeof *status);
    uint8_t id [POND_ID_SIZE];
    pond_uuid_v7 (id);
    s_send (sock, POND_COMMAND,
            s_map ("command", 's', "rebuild", "view", 's', "slowpoke", "id", 'b', id, "rid", 'u',
                   7LL, NULL),
            NULL);
    s_expect_status (sock, POND_ACCEPTED, status);
    cr_assert (memcmp (status->id, id, POND_ID_SIZE) == 0, "the client's id is the command's");
    cr_assert (status->has_rid && status->rid == 7);
    cr_assert (!status->dup);

    //  The actor gets COMMAND rebuild with the id
    zmsg_t *msg = zmsg_recv (actor);
    cr_assert_not_null (msg, "the COMMAND never reached the actor");
    zframe_t *peer = zmsg_pop (msg);
    char *command = zmsg_popstr (msg);
    cr_assert_str_eq (command, POND_COMMAND);
    free (command);
    zframe_t *body = zmsg_pop (msg);
    pond_command_t *request = malloc (sizeof *request);
    char err [POND_ERR_SIZE];
    cr_assert_eq (pond_command_decode (body, request, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq (request->command, "rebuild");
    cr_assert (request->has_id && memcmp (request->id, id, POND_ID_SIZE) == 0);
    free (request);
    zframe_destroy (&body);
    zmsg_destroy (&msg);
    //  Running now
    s_send (sock, POND_COMMAND_STATUS, s_map ("id", 'b', id, NULL), NULL);
    s_expect_status (sock, POND_COMMAND_STATUS, status);
    cr_assert_str_eq (status->status, "running");
    cr_assert_gt (status->started, 0);

    //  A second command on the same actor: 503, naming the first
    s_send (sock, POND_COMMAND, s_map ("command", 's', "rebuild", "view", 's', "slowpoke", NULL),
            NULL);
    pond_nack_t error = s_expect_error (sock, 503, "one command per view at a time");
    cr_assert_gt (error.retry_ms, 0);
    char text [37];
    pond_uuid_format (id, text);
    cr_assert (strstr (error.reason, text), "%s", error.reason);

    //  The same id again: a resend, the first's status
    s_send (sock, POND_COMMAND,
            s_map ("command", 's', "rebuild", "view", 's', "slowpoke", "id", 'b', id, NULL), NULL);
    s_expect_status (sock, POND_ACCEPTED, status);
    cr_assert (status->dup);
    cr_assert_str_eq (status->status, "running");
    //  ... under that id another command: 409
    s_send (sock, POND_COMMAND,
            s_map ("command", 's', "rebuild", "view", 's', "badges", "id", 'b', id, NULL), NULL);
    s_expect_error (sock, 409, "was used for another command");

    //  PROGRESS shows; replies that name another command change nothing
    uint8_t other [POND_ID_SIZE];
    pond_uuid_v7 (other);
    pond_progress_t progress = { .done = 5, .total = 10, .has_id = true };
    memcpy (progress.id, id, POND_ID_SIZE);
    zmsg_t *reply = zmsg_new ();
    zmsg_append (reply, &(zframe_t *) { zframe_dup (peer) });
    zmsg_addstr (reply, POND_PROGRESS);
    zmsg_append (reply, &(zframe_t *) { pond_progress_encode (&progress) });
    zmsg_send (&reply, actor);
    reply = zmsg_new ();
    zmsg_append (reply, &(zframe_t *) { zframe_dup (peer) });
    zmsg_addstr (reply, POND_RESULT);
    zmsg_addstr (reply, "{\"wrong\":true}");
    zmsg_addmem (reply, other, POND_ID_SIZE);
    zmsg_send (&reply, actor);
    reply = zmsg_new ();
    zmsg_append (reply, &(zframe_t *) { zframe_dup (peer) });
    zmsg_addstr (reply, POND_ERROR);
    zmsg_append (reply, &(zframe_t *) { pond_nack_new (other, 500, 0, "not yours") });
    zmsg_send (&reply, actor);
    for (int i = 0; i < 100; i++) {
        s_send (sock, POND_COMMAND_STATUS, s_map ("id", 'b', id, NULL), NULL);
        s_expect_status (sock, POND_COMMAND_STATUS, status);
        if (status->done == 5)
            break;
        zclock_sleep (20);
    }
    cr_assert_eq (status->done, 5);
    cr_assert_eq (status->total, 10);
    zclock_sleep (200);
    s_send (sock, POND_COMMAND_STATUS, s_map ("id", 'b', id, NULL), NULL);
    s_expect_status (sock, POND_COMMAND_STATUS, status);
    cr_assert_str_eq (status->status, "running", "a reply for another command ended it");

    //  Pipelined: each reply carries its rid
    s_send (sock, POND_COMMAND_STATUS, s_map ("id", 'b', id, "rid", 'u', 1001LL, NULL), NULL);
    s_send (sock, POND_COMMAND_STATUS, s_map ("id", 'b', other, "rid", 'u', 1002LL, NULL), NULL);
    s_expect_status (sock, POND_COMMAND_STATUS, status);
    cr_assert (status->has_rid && status->rid == 1001);
    error = s_expect_error (sock, 404, "unknown command id");
    cr_assert (error.has_rid && error.rid == 1002);

    //  The RESULT with the id: done, with the result
    reply = zmsg_new ();
    zmsg_append (reply, &(zframe_t *) { zframe_dup (peer) });
    zmsg_addstr (reply, POND_RESULT);
    zmsg_addstr (reply, "{\"command\":\"rebuild\",\"applied\":3}");
    zmsg_addmem (reply, id, POND_ID_SIZE);
    zmsg_send (&reply, actor);
    s_until_final (sock, id, status, 5000);
    cr_assert_str_eq (status->status, "done");
    cr_assert (status->has_result);
    cr_assert_str_eq (status->result, "{\"command\":\"rebuild\",\"applied\":3}");
    cr_assert (!status->has_code);
    cr_assert_geq (status->finished, status->started);
    //  Free again: the next command on it is accepted
    s_send (sock, POND_COMMAND, s_map ("command", 's', "rebuild", "view", 's', "slowpoke", NULL),
            NULL);
    s_expect_status (sock, POND_ACCEPTED, status);
    cr_assert (!status->dup && memcmp (status->id, id, POND_ID_SIZE) != 0);
    free (status);
    zframe_destroy (&peer);
    zsock_destroy (&sock);
    zsock_destroy (&actor);
}

//  ---------------------------------------------------------------------
//  The whole mesh

//  Run `pond ARGS --data DIR`; returns stdout (and stderr when with_stderr)
static char *
s_pond (int *exit_p, bool with_stderr, const char *format, ...)
{
    char args [2048];
    va_list list;
    va_start (list, format);
    vsnprintf (args, sizeof args, format, list);
    va_end (list);
    char *out = pond_harness_run (exit_p, "%s/pond %s --data %s %s", POND_BIN_DIR, args, dir,
                                  with_stderr ? "2>&1" : "2>/dev/null");
    cr_assert_not_null (out);
    return out;
}

static void
s_until (const char *args, const char *text)
{
    char *out = NULL;
    for (int waited = 0; waited <= 10000; waited += 100) {
        free (out);
        out = s_pond (NULL, false, "%s", args);
        if (strstr (out, text)) {
            free (out);
            return;
        }
        zclock_sleep (100);
    }
    cr_assert_fail ("pond %s never said %s: %s", args, text, out);
}

Test (commands, recompute_through_broker, .timeout = 240)
{
    dir = pond_harness_tempdir ();
    int rc;
    char *out = s_pond (&rc, true, "up");
    cr_assert_eq (rc, 0, "%s", out);
    free (out);
    pond_endpoints_t eps;
    cr_assert_eq (pond_endpoints_resolve (dir, &eps), 0);
    out = pond_harness_run (&rc,
                            "%s/pond-device --data %s --device silo-anna --customer anna "
                            "--quack 20 2>&1 && %s/pond-device --data %s --device silo-ben "
                            "--customer ben --quack 30 2>&1",
                            POND_BIN_DIR, dir, POND_BIN_DIR, dir);
    cr_assert_eq (rc, 0, "%s", out);
    free (out);
    s_until ("query badges anna", "Master");
    s_until ("query badges ben", "Master");
    //  Everything stored so far (the v1 grants included)
    s_until ("replay --names BADGE_GRANTED", "ben");
    zsock_t *sock = s_control (eps.control);
    s_send (sock, POND_PING, s_map ("x", 'u', 1LL, NULL), NULL);
    zmsg_t *pong = s_recv (sock);
    pond_pong_t head_before;
    char err [POND_ERR_SIZE];
    zmsg_first (pong);
    cr_assert_eq (pond_pong_decode (zmsg_next (pong), &head_before, err, sizeof err), 0, "%s", err);
    zmsg_destroy (&pong);
    cr_assert_geq (head_before.head, 54);

    //  v2 through the broker: accepted at once, then running, then done
    char *rules = s_rules ("v2");
    s_send (sock, POND_COMMAND,
            s_map ("command", 's', "recompute", "view", 's', "badges", "args", 's', rules, NULL),
            NULL);
    pond_command_status_t *status = malloc (sizeof *status);
    s_expect_status (sock, POND_ACCEPTED, status);
    cr_assert_str_eq (status->status, "accepted");
    cr_assert_str_eq (status->command, "recompute");
    cr_assert_str_eq (status->view, "badge-granter");
    uint8_t id [POND_ID_SIZE];
    memcpy (id, status->id, POND_ID_SIZE);
    bool seen_running = false;
    for (int i = 0; i < 600; i++) {
        s_send (sock, POND_COMMAND_STATUS, s_map ("id", 'b', id, NULL), NULL);
        s_expect_status (sock, POND_COMMAND_STATUS, status);
        seen_running |= streq (status->status, "running");
        if (streq (status->status, "done") || streq (status->status, "failed"))
            break;
        zclock_sleep (10);
    }
    cr_assert_str_eq (status->status, "done", "%u %s", status->code, status->reason);
    cr_assert (seen_running || status->started > 0, "it ran");
    cr_assert (status->has_result);
    cr_assert (strstr (status->result, "\"removed_count\":1"), "%s", status->result);
    cr_assert (strstr (status->result, "\"granted_count\":0"), "%s", status->result);
    cr_assert (status->accepted <= status->started && status->started <= status->finished);

    //  Everything this command changed is one replay: the BADGE_* events
    //  stored since carry its id as causation, and no other event does
    pond_replay_req_t request = { .credit = 4, .from_seq = 1 };
    size_t caused = 0, removed = 0;
    for (int attempt = 0; attempt < 50 && removed == 0; attempt++) {
        caused = removed = 0;
        pond_reader_t *reader = pond_reader_new (eps.control, &request);
        cr_assert_not_null (reader);
        pond_event_t *event;
        while ((event = pond_reader_next (reader, 5000))) {
            const uint8_t *causation = pond_event_causation (event);
            bool ours = causation && memcmp (causation, id, POND_ID_SIZE) == 0;
            if (pond_event_seq (event) > head_before.head
                && strncmp (pond_event_name (event), "BADGE_", 6) == 0) {
                cr_assert (ours, "%s at seq %" PRIu64 " lacks the command's causation",
                           pond_event_name (event), pond_event_seq (event));
                caused++;
                removed += streq (pond_event_name (event), "BADGE_REMOVED");
            }
            else
                cr_assert (!ours, "%s at seq %" PRIu64 " carries the command's causation",
                           pond_event_name (event), pond_event_seq (event));
            pond_event_destroy (&event);
        }
        cr_assert_eq (pond_reader_code (reader), 200, "%s", pond_reader_reason (reader));
        pond_reader_destroy (&reader);
        if (removed == 0)
            zclock_sleep (100);
    }
    cr_assert_eq (removed, 1, "anna's Master goes");
    cr_assert_eq (caused, 2, "BADGE_RULES_CHANGED and one BADGE_REMOVED");

    //  The same command again (same id): its status, nothing runs again
    s_send (sock, POND_COMMAND,
            s_map ("command", 's', "recompute", "view", 's', "badges", "args", 's', rules, "id",
                   'b', id, NULL),
            NULL);
    s_expect_status (sock, POND_ACCEPTED, status);
    cr_assert (status->dup);
    cr_assert_str_eq (status->status, "done");
    free (rules);

    //  The command line: --no-wait prints the id alone; status and wait
    out = s_pond (&rc, false, "recompute badges --rules v1 --no-wait");
    cr_assert_eq (rc, 0, "%s", out);
    uint8_t cli_id [POND_ID_SIZE];
    out [strcspn (out, "\n")] = 0;
    cr_assert_eq (pond_uuid_parse (out, cli_id), 0, "not an id: '%s'", out);
    char text [37];
    snprintf (text, sizeof text, "%s", out);
    free (out);
    out = s_pond (&rc, false, "command status %s", text);
    cr_assert_eq (rc, 0, "%s", out);
    cr_assert (strstr (out, text) && strstr (out, "\"command\":\"recompute\"")
                   && strstr (out, "\"progress\":{"),
               "%s", out);
    free (out);
    out = s_pond (&rc, false, "command wait %s --json", text);
    cr_assert_eq (rc, 0, "%s", out);
    cr_assert (strstr (out, "\"status\":\"done\"") && strstr (out, "\"removed_count\":0")
                   && strstr (out, "\"granted_count\":1"),
               "v1 gives ben Master back? no: anna gets Master again: %s", out);
    free (out);
    //  The human way: the id on stderr, the result on stdout
    out = s_pond (&rc, true, "recompute badges --rules v2");
    cr_assert_eq (rc, 0, "%s", out);
    cr_assert (strstr (out, "recomputing badges: command ") && strstr (out, "\"removed_count\": 1"),
               "%s", out);
    free (out);
    out = s_pond (&rc, true, "rebuild mobile");
    cr_assert_eq (rc, 0, "%s", out);
    cr_assert (strstr (out, "rebuilt mobile-view from the log: replayed"), "%s", out);
    free (out);
    //  Errors say what to do
    out = s_pond (&rc, true, "command status 018f3a5b-6c7d-7e8f-90a1-b2c3d4e5f607");
    cr_assert_eq (rc, 1, "%s", out);
    cr_assert (strstr (out, "404") && strstr (out, "never accepted it"), "%s", out);
    free (out);
    out = s_pond (&rc, true, "command status nonsense");
    cr_assert_eq (rc, 2, "%s", out);
    free (out);
    out = s_pond (&rc, true, "recompute badges --rules v2 --id nonsense");
    cr_assert_eq (rc, 2, "%s", out);
    free (out);
    free (status);
    zsock_destroy (&sock);
}

//  The test plays an actor that answers at once: 1,001 commands one
//  after the other; the table keeps 1,000, so the first is forgotten
//  (404), the last ones are there; a result too large for a reply is
//  kept as a note of its size
Test (commands, statuses_are_bounded)
{
    mesh = pond_harness_mesh_up ();
    zsock_t *actor = s_fake_actor ("quick");
    zsock_t *sock = s_control (mesh->control);
    pond_command_status_t *status = malloc (sizeof *status);
    pond_command_t *request = malloc (sizeof *request);
    char *large = malloc (200 * 1024 + 32);
    memset (large, 'x', 200 * 1024);
    memcpy (large, "{\"x\":\"", 6);
    strcpy (large + 200 * 1024, "\"}");
    uint8_t first [POND_ID_SIZE], last [POND_ID_SIZE];
    for (int i = 0; i < 1001; i++) {
        s_send (sock, POND_COMMAND, s_map ("command", 's', "rebuild", "view", 's', "quick", NULL),
                NULL);
        s_expect_status (sock, POND_ACCEPTED, status);
        memcpy (i == 0 ? first : last, status->id, POND_ID_SIZE);
        zmsg_t *msg = zmsg_recv (actor);
        cr_assert_not_null (msg, "command %d never reached the actor", i);
        zframe_t *peer = zmsg_pop (msg);
        zframe_t *command = zmsg_pop (msg);
        zframe_t *body = zmsg_pop (msg);
        char err [POND_ERR_SIZE];
        cr_assert_eq (pond_command_decode (body, request, err, sizeof err), 0, "%s", err);
        zmsg_t *reply = zmsg_new ();
        zmsg_append (reply, &peer);
        zmsg_addstr (reply, POND_RESULT);
        zmsg_addstr (reply, i == 1000 ? large : "{\"ok\":true}");
        zmsg_addmem (reply, request->id, POND_ID_SIZE);
        zmsg_send (&reply, actor);
        zframe_destroy (&command);
        zframe_destroy (&body);
        zmsg_destroy (&msg);
        s_until_final (sock, status->id, status, 5000);
        cr_assert_str_eq (status->status, "done");
    }
    cr_assert (strstr (status->result, "\"truncated\":true"), "%.100s", status->result);
    s_send (sock, POND_COMMAND_STATUS, s_map ("id", 'b', first, NULL), NULL);
    pond_nack_t error = s_expect_error (sock, 404, "forgot it");
    cr_assert (strstr (error.reason, "last 1000 commands"), "%s", error.reason);
    s_send (sock, POND_COMMAND_STATUS, s_map ("id", 'b', last, NULL), NULL);
    s_expect_status (sock, POND_COMMAND_STATUS, status);
    cr_assert_str_eq (status->status, "done");
    free (large);
    free (request);
    free (status);
    zsock_destroy (&sock);
    zsock_destroy (&actor);
}

//  A real actor that dies while it has the command: failed, with why
Test (commands, actor_dies_while_running)
{
    mesh = pond_harness_mesh_up ();
    char log [600], path [600];
    snprintf (log, sizeof log, "%s/quack-counter.log", mesh->dir);
    pid_t counter = pond_harness_spawn ("pond-quack-counter", log, "--data", mesh->dir, NULL);
    cr_assert_gt (counter, 0);
    snprintf (path, sizeof path, "%s/quack-counter.zpl", mesh->dir);
    cr_assert_eq (pond_harness_wait_file (path, 10000), 0, "the quack counter must start");
    //  Stopped: the command waits in its socket
    cr_assert_eq (kill (counter, SIGSTOP), 0);
    zsock_t *sock = s_control (mesh->control);
    pond_command_status_t *status = malloc (sizeof *status);
    s_send (sock, POND_COMMAND, s_map ("command", 's', "rebuild", "view", 's', "quacks", NULL),
            NULL);
    s_expect_status (sock, POND_ACCEPTED, status);
    uint8_t id [POND_ID_SIZE];
    memcpy (id, status->id, POND_ID_SIZE);
    for (int i = 0; i < 100 && !streq (status->status, "running"); i++) {
        zclock_sleep (20);
        s_send (sock, POND_COMMAND_STATUS, s_map ("id", 'b', id, NULL), NULL);
        s_expect_status (sock, POND_COMMAND_STATUS, status);
    }
    cr_assert_str_eq (status->status, "running");
    pond_harness_stop (counter, SIGKILL);
    s_until_final (sock, id, status, 5000);
    cr_assert_str_eq (status->status, "failed");
    cr_assert_eq (status->code, 503);
    cr_assert (strstr (status->reason, "stopped while it ran the command"), "%s", status->reason);
    free (status);
    zsock_destroy (&sock);
}
