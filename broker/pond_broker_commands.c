/*  pond_broker_commands: the commands the broker runs for admins. See
    pond_broker_commands.h and proto/PROTOCOL.md, "Control socket".

    Two halves. The table (the broker loop's thread): checks COMMANDs,
    keeps every status, answers COMMAND_STATUS, evicts old statuses. The
    runner (a zactor): takes RUN from the table, sends the COMMAND to the
    actor on a DEALER of its own, and sends back what happens:

        table -> runner   RUN id actor command args
        runner -> table   STARTED id
                          PROGRESS id done total
                          DONE id result
                          FAILED id code reason

    (id: 16 bytes; done and total: decimal text; code: decimal text).
    Each command gets a fresh DEALER, destroyed when it ends, and every
    reply is checked against the id awaited, so no late answer of one
    command is taken for another's.
*/
#include "pond_broker_commands.h"
#include "pond_client.h"
#include "pond_keys.h"
#include "pond_proto.h"
#include "pond_thread.h"
#include "pond_uuid.h"
#include "pond_views.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <time.h>

#define COMMANDS_KEPT_MAX    1000                 //  statuses kept, at most
#define COMMANDS_BYTES_MAX   (8 * 1024 * 1024)    //  ... and their bytes, results included
#define COMMANDS_RUNNING_MAX 8                    //  commands not finished, at most
#define COMMANDS_RETRY_MS    1000                 //  retry_ms of a 503
#define COMMAND_IDLE_MS      120000               //  no news from the actor this long: failed
#define ALIVE_CHECK_MS       500                  //  how often the runner checks the actor's pid
#define RUNNER_POLL_MS       200

typedef enum { S_ACCEPTED, S_RUNNING, S_DONE, S_FAILED } state_t;
static const char *const s_states [] = { "accepted", "running", "done", "failed" };

//  One command's status
typedef struct {
    uint8_t id [POND_ID_SIZE];
    char key [2 * POND_ID_SIZE + 1];    //  id in hex: the table's key
    char command [POND_COMMAND_NAME_MAX];
    char actor [POND_COMMAND_NAME_MAX];
    char digest [41];    //  of command, actor and args: a resend must match
    state_t state;
    uint64_t done, total;
    uint32_t code;
    char reason [POND_REASON_MAX];
    char *result;    //  JSON text when done
    size_t result_size;
    uint64_t accepted, started, finished;
} entry_t;

struct _pond_broker_commands_t {
    char data_dir [PATH_MAX];
    zactor_t *runner;
    zhashx_t *entries;    //  key -> entry_t (owned)
    zlistx_t *order;      //  entry_t, oldest first (not owned)
    size_t bytes;         //  the entries' size, results included
};

//  ---------------------------------------------------------------------
//  Helpers

static uint64_t
s_now_us (void)
{
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    return (uint64_t) now.tv_sec * 1000000 + (uint64_t) now.tv_nsec / 1000;
}

static void
s_hex (const uint8_t *id, char *hex)
{
    for (size_t i = 0; i < POND_ID_SIZE; i++)
        snprintf (hex + 2 * i, 3, "%02x", id [i]);
}

//  An actor's name as DATA/NAME.zpl may be named: [a-z0-9][a-z0-9_-]*
static bool
s_actor_name_valid (const char *name)
{
    size_t length = strlen (name);
    if (length == 0 || length >= POND_COMMAND_NAME_MAX)
        return false;
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9')
              || (c > name && (*c == '-' || *c == '_'))))
            return false;
    return true;
}

static size_t
s_entry_bytes (const entry_t *entry)
{
    return sizeof *entry + entry->result_size;
}

static void
s_entry_destroy (void **item_p)
{
    entry_t *entry = (entry_t *) *item_p;
    if (entry) {
        free (entry->result);
        free (entry);
        *item_p = NULL;
    }
}

//  ERROR {id, code, reason, retry_ms, rid}
static zframe_t *s_error (const pond_command_ref_t *ref, uint32_t code, uint32_t retry_ms,
                          const char *format, ...) __attribute__ ((format (printf, 4, 5)));

static zframe_t *
s_error (const pond_command_ref_t *ref, uint32_t code, uint32_t retry_ms, const char *format, ...)
{
    pond_nack_t error = { .code = code, .retry_ms = retry_ms };
    if (ref && ref->has_id) {
        error.has_id = true;
        memcpy (error.id, ref->id, POND_ID_SIZE);
    }
    if (ref && ref->has_rid) {
        error.has_rid = true;
        error.rid = ref->rid;
    }
    va_list args;
    va_start (args, format);
    vsnprintf (error.reason, sizeof error.reason, format, args);
    va_end (args);
    return pond_nack_encode (&error);
}

//  The status body of entry, with the request's rid
static zframe_t *
s_status_body (const entry_t *entry, const pond_command_ref_t *ref, bool dup)
{
    pond_command_status_t *status = (pond_command_status_t *) calloc (1, sizeof *status);
    if (!status)
        return NULL;
    memcpy (status->id, entry->id, POND_ID_SIZE);
    status->has_rid = ref->has_rid;
    status->rid = ref->rid;
    snprintf (status->command, sizeof status->command, "%s", entry->command);
    snprintf (status->view, sizeof status->view, "%s", entry->actor);
    snprintf (status->status, sizeof status->status, "%s", s_states [entry->state]);
    status->dup = dup;
    status->done = entry->done;
    status->total = entry->total;
    status->accepted = entry->accepted;
    status->started = entry->started;
    status->finished = entry->finished;
    if (entry->state == S_FAILED) {
        status->has_code = status->has_reason = true;
        status->code = entry->code;
        snprintf (status->reason, sizeof status->reason, "%s", entry->reason);
    }
    if (entry->state == S_DONE && entry->result) {
        status->has_result = true;
        snprintf (status->result, sizeof status->result, "%s", entry->result);
    }
    zframe_t *body = pond_command_status_encode (status);
    free (status);
    return body;
}

//  ---------------------------------------------------------------------
//  The runner (worker thread)

typedef struct {
    uint8_t id [POND_ID_SIZE];
    char actor [POND_COMMAND_NAME_MAX];
    zsock_t *sock;    //  DEALER to the actor's query socket
    int pid;          //  the actor's, from its ready file (0: unknown)
    int64_t active_at;
    int64_t checked_at;
} job_t;

typedef struct {
    zsock_t *pipe;
    const char *data_dir;
    zlistx_t *jobs;
} runner_t;

static void
s_job_destroy (void **item_p)
{
    job_t *job = (job_t *) *item_p;
    if (job) {
        zsock_destroy (&job->sock);
        free (job);
        *item_p = NULL;
    }
}

static void
s_tell (runner_t *self, const char *what, const uint8_t *id, const char *a, const char *b)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, what);
    zmsg_addmem (msg, id, POND_ID_SIZE);
    if (a)
        zmsg_addstr (msg, a);
    if (b)
        zmsg_addmem (msg, b, strlen (b));
    if (zmsg_send (&msg, self->pipe))
        zmsg_destroy (&msg);
}

static void s_fail (runner_t *self, const uint8_t *id, uint32_t code, const char *format, ...)
    __attribute__ ((format (printf, 4, 5)));

static void
s_fail (runner_t *self, const uint8_t *id, uint32_t code, const char *format, ...)
{
    char reason [POND_REASON_MAX];
    va_list args;
    va_start (args, format);
    vsnprintf (reason, sizeof reason, format, args);
    va_end (args);
    char text [16];
    snprintf (text, sizeof text, "%u", code);
    s_tell (self, "FAILED", id, text, reason);
}

static bool
s_pid_gone (int pid)
{
    return pid > 0 && kill (pid, 0) == -1 && errno == ESRCH;
}

//  RUN id actor command args: send the COMMAND to the actor
static void
s_runner_run (runner_t *self, zmsg_t *msg)
{
    zframe_t *id_frame = zmsg_pop (msg);
    char *actor = zmsg_popstr (msg);
    char *name = zmsg_popstr (msg);
    char *args = zmsg_popstr (msg);
    pond_command_t *command = (pond_command_t *) calloc (1, sizeof *command);
    job_t *job = (job_t *) calloc (1, sizeof *job);
    if (!id_frame || zframe_size (id_frame) != POND_ID_SIZE || !actor || !name || !args || !command
        || !job) {
        zsys_error ("pond-broker: commands: a RUN could not be read (out of memory?)");
        if (id_frame && zframe_size (id_frame) == POND_ID_SIZE)
            s_fail (self, zframe_data (id_frame), POND_CODE_UNAVAILABLE, "out of memory");
        goto done;
    }
    memcpy (job->id, zframe_data (id_frame), POND_ID_SIZE);
    snprintf (job->actor, sizeof job->actor, "%s", actor);
    char path [PATH_MAX + 128];
    snprintf (path, sizeof path, "%s/%s.zpl", self->data_dir, actor);
    zconfig_t *ready = zsys_file_exists (path) ? zconfig_load (path) : NULL;
    const char *endpoint = ready ? zconfig_get (ready, "actor/query", "") : "";
    const char *key = ready ? zconfig_get (ready, "actor/key", "") : "";
    job->pid = ready ? atoi (zconfig_get (ready, "actor/pid", "0")) : 0;
    if (!ready || !*endpoint)
        s_fail (self, job->id, POND_CODE_UNAVAILABLE,
                "%s is not running (no %s); start it (pond up --data %s), then send the "
                "command again",
                actor, path, self->data_dir);
    else if (s_pid_gone (job->pid))
        s_fail (self, job->id, POND_CODE_UNAVAILABLE,
                "%s is not running (its pid %d is gone); start it (pond up --data %s, or wait "
                "for the supervisor to restart it), then send the command again",
                actor, job->pid, self->data_dir);
    else {
        job->sock = zsock_new (ZMQ_DEALER);
        if (job->sock) {
            zsock_set_linger (job->sock, 0);
            zsock_set_sndtimeo (job->sock, 0);
            zsock_set_rcvtimeo (job->sock, 0);
            //  With keys, the broker's own key opens the actor's socket
            if (*key && pond_keys_active () && pond_keys_client (job->sock, key))
                zsock_destroy (&job->sock);
            if (job->sock && zsock_connect (job->sock, "%s", endpoint))
                zsock_destroy (&job->sock);
        }
        snprintf (command->command, sizeof command->command, "%s", name);
        snprintf (command->args, sizeof command->args, "%s", args);
        command->has_id = true;
        memcpy (command->id, job->id, POND_ID_SIZE);
        zframe_t *body = job->sock ? pond_command_encode (command) : NULL;
        zmsg_t *out = body ? zmsg_new () : NULL;
        if (out) {
            zmsg_addstr (out, POND_COMMAND);
            zmsg_append (out, &body);
        }
        zframe_destroy (&body);
        if (!out || zmsg_send (&out, job->sock)) {
            zmsg_destroy (&out);
            s_fail (self, job->id, POND_CODE_UNAVAILABLE, "cannot send the command to %s at %s",
                    actor, endpoint);
        }
        else {
            job->active_at = job->checked_at = zclock_mono ();
            s_tell (self, "STARTED", job->id, NULL, NULL);
            zlistx_add_end (self->jobs, job);
            job = NULL;
        }
    }
    zconfig_destroy (&ready);
done:
    if (job)
        s_job_destroy ((void **) &job);
    free (command);
    zframe_destroy (&id_frame);
    zstr_free (&actor);
    zstr_free (&name);
    zstr_free (&args);
}

//  A message from the actor of job. Returns true when the command ended.
static bool
s_runner_reply (runner_t *self, job_t *job, zmsg_t *msg)
{
    zframe_t *head = zmsg_first (msg);
    zframe_t *body = zmsg_next (msg);
    zframe_t *extra = zmsg_next (msg);
    char err [POND_ERR_SIZE];
    job->active_at = zclock_mono ();
    if (pond_proto_is (head, POND_PROGRESS)) {
        pond_progress_t progress;
        if (pond_progress_decode (body, &progress, err, sizeof err) == 0
            && (!progress.has_id || memcmp (progress.id, job->id, POND_ID_SIZE) == 0)) {
            char done [24], total [24];
            snprintf (done, sizeof done, "%" PRIu64, progress.done);
            snprintf (total, sizeof total, "%" PRIu64, progress.total);
            s_tell (self, "PROGRESS", job->id, done, total);
        }
        return false;
    }
    if (pond_proto_is (head, POND_RESULT)) {
        //  The third frame, when there is one, names the command
        if (extra
            && (zframe_size (extra) != POND_ID_SIZE
                || memcmp (zframe_data (extra), job->id, POND_ID_SIZE) != 0)) {
            zsys_warning ("pond-broker: %s answered another command than the one awaited; "
                          "ignored",
                          job->actor);
            return false;
        }
        char *text = body ? zframe_strdup (body) : NULL;
        if (text && strlen (text) == zframe_size (body))
            s_tell (self, "DONE", job->id, NULL, text);
        else
            s_fail (self, job->id, POND_CODE_BAD_REPLY, "%s sent a RESULT that is not text",
                    job->actor);
        zstr_free (&text);
        return true;
    }
    if (pond_proto_is (head, POND_ERROR)) {
        pond_nack_t error;
        if (pond_nack_decode (body, &error, err, sizeof err)) {
            s_fail (self, job->id, POND_CODE_BAD_REPLY, "%s sent an unreadable ERROR: %s",
                    job->actor, err);
            return true;
        }
        if (error.has_id && memcmp (error.id, job->id, POND_ID_SIZE) != 0)
            return false;    //  not this command's
        s_fail (self, job->id, error.code, "%s", error.reason);
        return true;
    }
    return false;    //  nothing a command gets: wait on
}

//  Commands whose actor died or went silent
static void
s_runner_timers (runner_t *self)
{
    int64_t now = zclock_mono ();
    job_t *job = (job_t *) zlistx_first (self->jobs);
    while (job) {
        job_t *next = (job_t *) zlistx_next (self->jobs);
        bool ended = false;
        if (now - job->checked_at >= ALIVE_CHECK_MS) {
            job->checked_at = now;
            if (s_pid_gone (job->pid)) {
                s_fail (self, job->id, POND_CODE_UNAVAILABLE,
                        "%s (pid %d) stopped while it ran the command; send the command again "
                        "once it is back (pond status)",
                        job->actor, job->pid);
                ended = true;
            }
        }
        if (!ended && now - job->active_at >= COMMAND_IDLE_MS) {
            s_fail (self, job->id, POND_CODE_TIMEOUT,
                    "no news from %s for %d s: it may still run the command (see pond status); "
                    "send it again later",
                    job->actor, COMMAND_IDLE_MS / 1000);
            ended = true;
        }
        if (ended) {
            void *handle = zlistx_find (self->jobs, job);
            if (handle)
                zlistx_delete (self->jobs, handle);
        }
        job = next;
        if (job)
            zlistx_find (self->jobs, job);    //  the cursor back on it
    }
}

static void
s_runner_actor (zsock_t *pipe, void *args)
{
    pond_thread_block_signals (NULL);
    pond_thread_name ("commands");
    runner_t self = { pipe, (const char *) args, zlistx_new () };
    if (!self.jobs) {
        zsock_signal (pipe, 1);
        return;
    }
    zlistx_set_destructor (self.jobs, s_job_destroy);
    zsock_signal (pipe, 0);
    bool stop = false;
    while (!stop) {
        zmq_pollitem_t items [1 + COMMANDS_RUNNING_MAX];
        job_t *polled [1 + COMMANDS_RUNNING_MAX];
        items [0] = (zmq_pollitem_t) { zsock_resolve (pipe), 0, ZMQ_POLLIN, 0 };
        size_t n = 1;
        for (job_t *job = (job_t *) zlistx_first (self.jobs); job && n <= COMMANDS_RUNNING_MAX;
             job = (job_t *) zlistx_next (self.jobs)) {
            items [n] = (zmq_pollitem_t) { zsock_resolve (job->sock), 0, ZMQ_POLLIN, 0 };
            polled [n++] = job;
        }
        int rc = zmq_poll (items, (int) n, RUNNER_POLL_MS);
        if (rc < 0) {
            if (zmq_errno () == ETERM)
                break;
            continue;    //  EINTR (signals are blocked here, but be safe)
        }
        if (items [0].revents & ZMQ_POLLIN) {
            zmsg_t *msg = zmsg_recv (pipe);
            char *what = msg ? zmsg_popstr (msg) : NULL;
            if (!msg || !what || streq (what, "$TERM"))
                stop = true;
            else if (streq (what, "RUN"))
                s_runner_run (&self, msg);
            else
                zsys_warning ("pond-broker: commands: unknown request '%s'", what);
            zstr_free (&what);
            zmsg_destroy (&msg);
        }
        for (size_t i = 1; !stop && i < n; i++) {
            if (!(items [i].revents & ZMQ_POLLIN))
                continue;
            job_t *job = polled [i];
            bool ended = false;
            zmsg_t *msg;
            while (!ended && (msg = zmsg_recv (job->sock))) {
                ended = s_runner_reply (&self, job, msg);
                zmsg_destroy (&msg);
            }
            if (ended) {
                void *handle = zlistx_find (self.jobs, job);
                if (handle)
                    zlistx_delete (self.jobs, handle);
            }
        }
        if (!stop)
            s_runner_timers (&self);
    }
    zlistx_destroy (&self.jobs);
}

//  ---------------------------------------------------------------------
//  The table (the broker loop's thread)

pond_broker_commands_t *
pond_broker_commands_new (const char *data_dir)
{
    assert (data_dir);
    pond_broker_commands_t *self = (pond_broker_commands_t *) zmalloc (sizeof *self);
    if (!self)
        return NULL;
    snprintf (self->data_dir, sizeof self->data_dir, "%s", data_dir);
    self->entries = zhashx_new ();
    self->order = zlistx_new ();
    if (self->entries)
        zhashx_set_destructor (self->entries, s_entry_destroy);
    self->runner = self->entries && self->order ? zactor_new (s_runner_actor, self->data_dir)
                                                : NULL;
    if (!self->runner) {
        zsys_error ("pond-broker: cannot start the commands' thread");
        pond_broker_commands_destroy (&self);
        return NULL;
    }
    return self;
}

void
pond_broker_commands_destroy (pond_broker_commands_t **self_p)
{
    if (self_p && *self_p) {
        pond_broker_commands_t *self = *self_p;
        zactor_destroy (&self->runner);
        zlistx_destroy (&self->order);
        zhashx_destroy (&self->entries);
        free (self);
        *self_p = NULL;
    }
}

zsock_t *
pond_broker_commands_sock (pond_broker_commands_t *self)
{
    assert (self);
    return zactor_sock (self->runner);
}

static void
s_entry_remove (pond_broker_commands_t *self, entry_t *entry)
{
    void *handle = zlistx_find (self->order, entry);
    if (handle)
        zlistx_detach (self->order, handle);
    self->bytes -= s_entry_bytes (entry);
    zhashx_delete (self->entries, entry->key);
}

//  Forget the oldest finished statuses until one more of bytes fits
static void
s_evict (pond_broker_commands_t *self, size_t bytes)
{
    entry_t *entry = (entry_t *) zlistx_first (self->order);
    while (entry
           && (zlistx_size (self->order) >= COMMANDS_KEPT_MAX
               || self->bytes + bytes > COMMANDS_BYTES_MAX)) {
        entry_t *next = (entry_t *) zlistx_next (self->order);
        if (entry->state == S_DONE || entry->state == S_FAILED)
            s_entry_remove (self, entry);
        entry = next;
        if (entry)
            zlistx_find (self->order, entry);
    }
}

void
pond_broker_commands_update (pond_broker_commands_t *self)
{
    assert (self);
    zsock_t *pipe = zactor_sock (self->runner);
    for (int i = 0; i < 1000 && zsock_events (pipe) & ZMQ_POLLIN; i++) {
        zmsg_t *msg = zmsg_recv (pipe);
        if (!msg)
            break;
        char *what = zmsg_popstr (msg);
        zframe_t *id = zmsg_pop (msg);
        char key [2 * POND_ID_SIZE + 1] = "";
        if (id && zframe_size (id) == POND_ID_SIZE)
            s_hex (zframe_data (id), key);
        entry_t *entry = *key ? (entry_t *) zhashx_lookup (self->entries, key) : NULL;
        if (entry && what) {
            if (streq (what, "STARTED")) {
                entry->state = S_RUNNING;
                entry->started = s_now_us ();
            }
            else if (streq (what, "PROGRESS")) {
                char *done = zmsg_popstr (msg);
                char *total = zmsg_popstr (msg);
                entry->done = done ? strtoull (done, NULL, 10) : 0;
                entry->total = total ? strtoull (total, NULL, 10) : 0;
                zstr_free (&done);
                zstr_free (&total);
            }
            else if (streq (what, "DONE") || streq (what, "FAILED")) {
                entry->finished = s_now_us ();    //  started stays 0 if it never reached the actor
                if (streq (what, "DONE")) {
                    entry->state = S_DONE;
                    if (entry->total)
                        entry->done = entry
                                          ->total;    //  all of it, whatever the last PROGRESS said
                    char *result = zmsg_popstr (msg);
                    size_t size = result ? strlen (result) : 0;
                    //  A status must fit a reply: a larger result is not kept
                    if (result && size >= POND_COMMAND_RESULT_MAX) {
                        zstr_free (&result);
                        result = zsys_sprintf ("{\"truncated\":true,\"bytes\":%zu}", size);
                    }
                    if (result) {
                        //  Make room for it first: finished ones go
                        s_evict (self, strlen (result));
                        entry->result = result;
                        entry->result_size = strlen (result);
                        self->bytes += entry->result_size;
                    }
                    zsys_info ("pond-broker: command %s %s on %s: done", entry->key, entry->command,
                               entry->actor);
                }
                else {
                    entry->state = S_FAILED;
                    char *code = zmsg_popstr (msg);
                    char *reason = zmsg_popstr (msg);
                    entry->code = code ? (uint32_t) atoi (code) : POND_CODE_STORE_ERROR;
                    snprintf (entry->reason, sizeof entry->reason, "%s", reason ? reason : "");
                    zsys_info ("pond-broker: command %s %s on %s: failed: %u %s", entry->key,
                               entry->command, entry->actor, entry->code, entry->reason);
                    zstr_free (&code);
                    zstr_free (&reason);
                }
            }
        }
        zstr_free (&what);
        zframe_destroy (&id);
        zmsg_destroy (&msg);
    }
}

//  What to do when COMMAND names view: the actor's name, or NULL with
//  the error set
static const char *
s_actor_of (pond_broker_commands_t *self, const char *view, char *actor, size_t size)
{
    const char *known = pond_views_actor (view);
    if (known) {
        snprintf (actor, size, "%s", known);
        return actor;
    }
    if (!s_actor_name_valid (view))
        return NULL;
    char path [PATH_MAX + 128];
    snprintf (path, sizeof path, "%s/%s.zpl", self->data_dir, view);
    if (!zsys_file_exists (path))
        return NULL;
    snprintf (actor, size, "%s", view);
    return actor;
}

zframe_t *
pond_broker_commands_submit (pond_broker_commands_t *self, zframe_t *body, size_t frames,
                             const char **reply, uint32_t *code)
{
    assert (self);
    *reply = POND_ERROR;
    *code = POND_CODE_BAD_REQUEST;
    //  What can be read of id and rid names every ERROR
    pond_command_ref_t ref;
    char err [POND_ERR_SIZE];
    if (!body || pond_command_ref_decode (body, &ref, err, sizeof err))
        memset (&ref, 0, sizeof ref);
    if (!body)
        return s_error (&ref, *code, 0,
                        "COMMAND takes a body: {command, view, args, id}, e.g. "
                        "{command: \"recompute\", view: \"badges\", args: \"{...rules...}\"}");
    if (frames > 1)
        return s_error (&ref, *code, 0, "too many frames: COMMAND takes a command and a body");
    pond_command_t *command = (pond_command_t *) malloc (sizeof *command);
    if (!command) {
        *code = POND_CODE_UNAVAILABLE;
        return s_error (&ref, *code, COMMANDS_RETRY_MS, "out of memory");
    }
    zframe_t *out = NULL;
    char actor [POND_COMMAND_NAME_MAX];
    if (pond_command_decode (body, command, err, sizeof err))
        out = s_error (&ref, *code, 0, "%s", err);
    else if (!streq (command->command, "recompute") && !streq (command->command, "rebuild"))
        out = s_error (&ref, *code, 0,
                       "unknown command '%s': the broker runs recompute (view badges) and "
                       "rebuild (any view)",
                       command->command);
    else if (!*command->view)
        out = s_error (&ref, *code, 0,
                       "missing required key 'view' (quacks, badges, alexa, mobile or an "
                       "actor's name)");
    else if (!s_actor_of (self, command->view, actor, sizeof actor)) {
        *code = POND_CODE_NOT_FOUND;
        out = s_error (&ref, *code, 0,
                       "unknown view '%s': the views are quacks, badges, alexa and mobile (or "
                       "the name of an actor that wrote DATA/NAME.zpl)",
                       command->view);
    }
    else if (streq (command->command, "recompute") && !streq (actor, "badge-granter"))
        out = s_error (&ref, *code, 0,
                       "recompute is the badge granter's command: give view badges, not '%s'",
                       command->view);
    if (out || streq (command->command, "rebuild")) {
        if (!out)
            command->args [0] = 0;    //  rebuild takes none
    }
    else {
        //  The rules: one JSON object (the actor checks what it says)
        cJSON *rules = cJSON_Parse (command->args);
        if (!cJSON_IsObject (rules))
            out = s_error (&ref, *code, 0,
                           "'args' must be the rules as JSON text, like "
                           "{\"version\":\"v2\",\"badges\":[{\"name\":\"Junior\",\"at\":15}]}");
        cJSON_Delete (rules);
    }
    if (out) {
        free (command);
        return out;
    }
    //  The same command again (same id): its status; another under that id: 409
    zdigest_t *digest = zdigest_new ();
    zdigest_update (digest, (const byte *) command->command, strlen (command->command) + 1);
    zdigest_update (digest, (const byte *) actor, strlen (actor) + 1);
    zdigest_update (digest, (const byte *) command->args, strlen (command->args));
    char print [41];
    snprintf (print, sizeof print, "%s", zdigest_string (digest));
    zdigest_destroy (&digest);
    if (!command->has_id && pond_uuid_v7 (command->id)) {
        free (command);
        *code = POND_CODE_UNAVAILABLE;
        return s_error (&ref, *code, COMMANDS_RETRY_MS, "cannot make a command id");
    }
    ref.has_id = true;
    memcpy (ref.id, command->id, POND_ID_SIZE);
    char key [2 * POND_ID_SIZE + 1];
    s_hex (command->id, key);
    entry_t *entry = (entry_t *) zhashx_lookup (self->entries, key);
    if (entry) {
        free (command);
        if (!streq (entry->digest, print)) {
            *code = POND_CODE_CONFLICT;
            return s_error (&ref, *code, 0,
                            "command id %s was used for another command (%s on %s): give this "
                            "one a new id",
                            key, entry->command, entry->actor);
        }
        *reply = POND_ACCEPTED;
        *code = POND_CODE_OK;
        return s_status_body (entry, &ref, true);
    }
    //  One command per actor, and a few in all
    size_t unfinished = 0;
    entry_t *busy = NULL;
    for (entry_t *other = (entry_t *) zlistx_first (self->order); other;
         other = (entry_t *) zlistx_next (self->order))
        if (other->state == S_ACCEPTED || other->state == S_RUNNING) {
            unfinished++;
            if (streq (other->actor, actor))
                busy = other;
        }
    if (busy || unfinished >= COMMANDS_RUNNING_MAX) {
        free (command);
        *code = POND_CODE_UNAVAILABLE;
        if (busy) {
            char busy_id [37];
            pond_uuid_format (busy->id, busy_id);
            return s_error (&ref, *code, COMMANDS_RETRY_MS,
                            "%s is running command %s (%s) already; one command per view at a "
                            "time: wait for it (pond command status %s), then send this one "
                            "again",
                            actor, busy_id, busy->command, busy_id);
        }
        return s_error (&ref, *code, COMMANDS_RETRY_MS,
                        "%d commands are running already; send this one again once one is "
                        "done",
                        COMMANDS_RUNNING_MAX);
    }
    entry = (entry_t *) calloc (1, sizeof *entry);
    zmsg_t *run = entry ? zmsg_new () : NULL;
    if (run) {
        zmsg_addstr (run, "RUN");
        zmsg_addmem (run, command->id, POND_ID_SIZE);
        zmsg_addstr (run, actor);
        zmsg_addstr (run, command->command);
        zmsg_addstr (run, command->args);
    }
    if (!run || zmsg_send (&run, zactor_sock (self->runner))) {
        zmsg_destroy (&run);
        free (entry);
        free (command);
        *code = POND_CODE_UNAVAILABLE;
        return s_error (&ref, *code, COMMANDS_RETRY_MS, "cannot start the command; retry");
    }
    s_evict (self, sizeof *entry);
    memcpy (entry->id, command->id, POND_ID_SIZE);
    snprintf (entry->key, sizeof entry->key, "%s", key);
    snprintf (entry->command, sizeof entry->command, "%s", command->command);
    snprintf (entry->actor, sizeof entry->actor, "%s", actor);
    snprintf (entry->digest, sizeof entry->digest, "%s", print);
    entry->state = S_ACCEPTED;
    entry->accepted = s_now_us ();
    zhashx_insert (self->entries, entry->key, entry);
    zlistx_add_end (self->order, entry);
    self->bytes += s_entry_bytes (entry);
    zsys_info ("pond-broker: command %s %s on %s: accepted", key, entry->command, entry->actor);
    free (command);
    *reply = POND_ACCEPTED;
    *code = POND_CODE_OK;
    return s_status_body (entry, &ref, false);
}

zframe_t *
pond_broker_commands_status (pond_broker_commands_t *self, zframe_t *body, size_t frames,
                             const char **reply, uint32_t *code)
{
    assert (self);
    *reply = POND_ERROR;
    *code = POND_CODE_BAD_REQUEST;
    pond_command_ref_t ref;
    char err [POND_ERR_SIZE];
    if (!body)
        return s_error (NULL, *code, 0, "COMMAND_STATUS takes a body: {id}");
    if (pond_command_ref_decode (body, &ref, err, sizeof err)) {
        pond_command_ref_t none = { 0 };
        return s_error (&none, *code, 0, "%s", err);
    }
    if (frames > 1)
        return s_error (&ref, *code, 0,
                        "too many frames: COMMAND_STATUS takes a command and a body");
    if (!ref.has_id)
        return s_error (&ref, *code, 0, "missing required key 'id' (the command's, 16 bytes)");
    char key [2 * POND_ID_SIZE + 1];
    s_hex (ref.id, key);
    entry_t *entry = (entry_t *) zhashx_lookup (self->entries, key);
    if (!entry) {
        char text [37];
        pond_uuid_format (ref.id, text);
        *code = POND_CODE_NOT_FOUND;
        return s_error (&ref, *code, 0,
                        "unknown command id %s: this broker never accepted it, or forgot it (it "
                        "keeps the last %d commands, and none across a restart)",
                        text, COMMANDS_KEPT_MAX);
    }
    *reply = POND_COMMAND_STATUS;
    *code = POND_CODE_OK;
    return s_status_body (entry, &ref, false);
}
