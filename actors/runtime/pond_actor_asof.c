/*  pond_actor_asof: time travel. A QUERY with 'at_seq' (or 'as_of', a
    time) is answered from the view as it stood then: a worker thread
    replays the log up to that seq (or the events up to that time), by
    the actor's names, in seq order, into a scratch view (a RocksDB
    directory beside the live view, removed afterwards), in batches as
    a catch-up does, with emitting off (as --verify), then asks the
    actor's own query function. The live loop goes on meanwhile; the answer comes back on
    the worker's pipe. One such query at a time per actor (a second one
    gets 503 with retry_ms), each bounded by ASOF_TIMEOUT_MS.
    Only actors whose spec says as_of take part: their apply, start and
    query work with state NULL and change nothing outside the view.
    See pond_actor.h and proto/PROTOCOL.md, "Actor query socket".
*/
#include "pond_actor_internal.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <stdarg.h>

#include "pond_time.h"

//  What the worker thread owns (freed by it)
typedef struct {
    const pond_actor_spec_t *spec;    //  functions and names only (state stays home)
    const char *name;
    size_t names_count;
    pond_endpoints_t eps;
    bool verbose;
    char scratch [1100];    //  directory, made by the live side
    pond_query_t query;
    int64_t deadline;
} asof_job_t;

//  The worker's outcome
typedef struct {
    int code;    //  0: result holds the answer
    char reason [POND_REASON_MAX];
    char *result;
    bool terminated;    //  $TERM came: nobody waits for an answer
} asof_outcome_t;

//  True once the live side asked the worker to stop ($TERM)
static bool
s_asof_terminated (zsock_t *pipe, asof_outcome_t *outcome)
{
    if (!outcome->terminated && (zsock_events (pipe) & ZMQ_POLLIN)) {
        char *message = zstr_recv (pipe);
        outcome->terminated = !message || streq (message, "$TERM");
        zstr_free (&message);
    }
    return outcome->terminated;
}

//  Give up with code and reason (if no reason was given yet)
static int s_asof_fail (asof_outcome_t *outcome, int code, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static int
s_asof_fail (asof_outcome_t *outcome, int code, const char *format, ...)
{
    if (outcome->code)
        return -1;
    outcome->code = code;
    va_list args;
    va_start (args, format);
    vsnprintf (outcome->reason, sizeof outcome->reason, format, args);
    va_end (args);
    return -1;
}

//  What applying the replay needs to know
typedef struct {
    asof_outcome_t *outcome;
    const pond_query_t *query;
    uint64_t last;    //  seq of the last event applied
} asof_apply_t;

//  Apply one replayed event to the scratch view, in batches. With as_of,
//  only events whose time is <= it count.
static int
s_asof_apply (pond_actor_t *scratch, const pond_event_t *event, asof_apply_t *apply)
{
    if (pond_event_seq (event) <= scratch->position)
        return 0;
    if (apply->query->has_as_of && pond_event_ts (event) > apply->query->as_of)
        return 0;
    pond_actor_priv_batch_begin (scratch);
    apply->last = pond_event_seq (event);
    if (pond_actor_priv_apply (scratch, event) == 0
        && ((scratch->batch_events < CATCHUP_BATCH
             && pond_view_staged_bytes (scratch->view) < CATCHUP_BATCH_BYTES)
            || pond_actor_priv_batch_commit (scratch) == 0))
        return 0;
    return s_asof_fail (apply->outcome, POND_CODE_STORE_ERROR,
                        "the scratch view cannot apply seq %" PRIu64 " (see the actor's log)",
                        pond_event_seq (event));
}

//  Replay the log by the actor's names in seq order up to to_seq (0: the
//  head) into the scratch view. Returns 0, or -1 with the outcome set.
static int
s_asof_replay (pond_actor_t *scratch, zsock_t *pipe, const asof_job_t *job, uint64_t to_seq,
               asof_apply_t *apply)
{
    asof_outcome_t *outcome = apply->outcome;
    pond_replay_req_t request;
    pond_actor_priv_replay_request (scratch, &request, 1, to_seq ? to_seq + 1 : 0);
    pond_reader_t *replay = pond_reader_new (job->eps.control, &request);
    if (!replay)
        return s_asof_fail (outcome, POND_CODE_STORE_ERROR, "cannot start a replay on %s",
                            job->eps.control);
    int rc = 0;
    while (rc == 0) {
        if (s_asof_terminated (pipe, outcome)) {
            rc = -1;
            break;
        }
        int64_t left = job->deadline - zclock_mono ();
        if (left <= 0) {
            rc = s_asof_fail (outcome, POND_CODE_TIMEOUT,
                              "the replay into a scratch view did not finish within %d s "
                              "(%" PRIu64 " events read): a time-travel query replays the log "
                              "from the start, so an old seq is cheaper than a recent one",
                              ASOF_TIMEOUT_MS / 1000, pond_reader_count (replay));
            break;
        }
        pond_event_t *event = pond_reader_next (replay, left < 200 ? (int) left : 200);
        if (!event) {
            int code = pond_reader_code (replay);
            if (code == 0)
                continue;    //  nothing yet
            if (code != POND_CODE_OK)
                rc = s_asof_fail (outcome, POND_CODE_STORE_ERROR, "the replay failed: %d %s", code,
                                  pond_reader_reason (replay));
            break;
        }
        if (!to_seq || pond_event_seq (event) <= to_seq)
            rc = s_asof_apply (scratch, event, apply);
        pond_event_destroy (&event);
    }
    pond_reader_destroy (&replay);
    if (rc == 0 && pond_actor_priv_batch_commit (scratch))
        rc = s_asof_fail (outcome, POND_CODE_STORE_ERROR, "cannot write the scratch view");
    return rc;
}

//  Build the scratch view up to the seq (or time) asked for and answer
//  the query from it, as the live view would
static void
s_asof_answer (pond_actor_t *scratch, zsock_t *pipe, asof_job_t *job, asof_outcome_t *outcome)
{
    const pond_query_t *query = &job->query;
    scratch->view = pond_view_open (scratch->view_path);
    if (!scratch->view) {
        s_asof_fail (outcome, POND_CODE_STORE_ERROR, "cannot open a scratch view in %s",
                     job->scratch);
        return;
    }
    if (job->spec->start && job->spec->start (scratch, scratch->view, NULL)) {
        s_asof_fail (outcome, POND_CODE_STORE_ERROR, "the actor cannot start on a scratch view");
        return;
    }
    asof_apply_t apply = { outcome, query, 0 };
    if ((query->has_as_of || query->at_seq > 0)
        && s_asof_replay (scratch, pipe, job, query->has_as_of ? 0 : query->at_seq, &apply))
        return;
    char when [160];
    uint64_t seq = query->has_as_of ? apply.last : query->at_seq;
    if (query->has_as_of) {
        char text [64];
        pond_time_format (query->as_of, text, sizeof text);
        snprintf (when, sizeof when, "as of %s%s", text,
                  apply.last ? "" : " (before the first event it applies)");
    }
    else
        snprintf (when, sizeof when, "as of seq %" PRIu64, seq);
    scratch->error_code = 0;
    char *result = job->spec->query (scratch, scratch->view, query->entity, query->text, NULL);
    if (!result) {
        if (scratch->error_code && scratch->error_code != POND_CODE_NOT_FOUND)
            s_asof_fail (outcome, scratch->error_code, "%s", scratch->error_reason);
        else
            s_asof_fail (outcome, POND_CODE_NOT_FOUND, "%s %s",
                         scratch->error_code ? scratch->error_reason : "the view knows nothing",
                         when);
        return;
    }
    //  Say which seq the answer stands at (as_of: the last one applied),
    //  in the text as the actor wrote it (no reprinting of its numbers)
    size_t end = strlen (result);
    while (end > 0 && isspace ((unsigned char) result [end - 1]))
        end--;
    size_t start = strspn (result, " \t\r\n");
    if (end > start + 1 && result [start] == '{' && result [end - 1] == '}') {
        bool empty = strspn (result + start + 1, " \t\r\n") == end - start - 2;
        outcome->result = zsys_sprintf ("%.*s%s\"as_of_seq\":%" PRIu64 "}", (int) (end - 1), result,
                                        empty ? "" : ",", seq);
        if (!outcome->result)
            s_asof_fail (outcome, POND_CODE_STORE_ERROR, "out of memory");
    }
    else
        outcome->result = strdup (result);
    free (result);
}

static void
s_asof_worker (zsock_t *pipe, void *args)
{
    asof_job_t *job = (asof_job_t *) args;
    zsock_signal (pipe, 0);
    asof_outcome_t outcome = { 0, "", NULL, false };
    pond_actor_t *scratch = (pond_actor_t *) calloc (1, sizeof (pond_actor_t));
    if (!scratch)
        s_asof_fail (&outcome, POND_CODE_STORE_ERROR, "out of memory");
    else {
        scratch->spec = job->spec;
        scratch->name = job->name;
        scratch->names_count = job->names_count;
        scratch->eps = job->eps;
        scratch->verbose = job->verbose;
        scratch->verify = true;    //  emit sends nothing: the log has it all
        scratch->live = true;
        if (snprintf (scratch->view_path, sizeof scratch->view_path, "%s/view", job->scratch)
            >= (int) sizeof scratch->view_path)
            s_asof_fail (&outcome, POND_CODE_STORE_ERROR, "the view's path is too long");
        else
            s_asof_answer (scratch, pipe, job, &outcome);
        pond_view_destroy (&scratch->view);
        pond_view_drop (scratch->view_path);
        zlistx_destroy (&scratch->deferred);
        free (scratch);
    }
    zsys_dir_delete ("%s", job->scratch);
    if (!outcome.terminated) {
        if (outcome.code == 0 && !outcome.result)
            s_asof_fail (&outcome, POND_CODE_STORE_ERROR, "no answer");
        zsock_send (pipe, "iss", outcome.code, outcome.reason,
                    outcome.result ? outcome.result : "");
        //  The live side ends the thread when it has the answer
        while (!outcome.terminated) {
            char *message = zstr_recv (pipe);
            outcome.terminated = !message || streq (message, "$TERM");
            zstr_free (&message);
        }
    }
    zstr_free (&outcome.result);
    free (job);
}

//  ---------------------------------------------------------------------
//  The live side

void
pond_actor_priv_asof_start (pond_actor_t *self, zframe_t *peer, const pond_query_t *query)
{
    if (!self->spec->as_of) {
        pond_actor_priv_error (self, peer, POND_CODE_UNSUPPORTED,
                               "%s cannot answer as of a seq or a time: its view does not "
                               "support time travel; ask without at_seq / as_of",
                               self->name);
        return;
    }
    if (query->has_at_seq && query->has_as_of) {
        pond_actor_priv_error (self, peer, POND_CODE_BAD_REQUEST,
                               "give 'at_seq' or 'as_of', not both");
        return;
    }
    if (self->asof) {
        zframe_t *body = pond_nack_new (NULL, POND_CODE_UNAVAILABLE, ASOF_RETRY_MS,
                                        "%s is answering another time-travel query (one at "
                                        "a time); retry after retry_ms",
                                        self->name);
        pond_actor_priv_send (self, peer, POND_ERROR, &body);
        return;
    }
    uint64_t head = self->sub ? pond_sub_head (self->sub) : 0;
    if (head < self->position)
        head = self->position;
    if (query->has_at_seq && query->at_seq > head) {
        pond_actor_priv_error (self, peer, POND_CODE_BAD_REQUEST,
                               "seq %" PRIu64 " is beyond the head of the log (seq %" PRIu64
                               "); ask for at most %" PRIu64,
                               query->at_seq, head, head);
        return;
    }
    asof_job_t *job = (asof_job_t *) calloc (1, sizeof *job);
    if (!job) {
        pond_actor_priv_error (self, peer, POND_CODE_STORE_ERROR, "out of memory");
        return;
    }
    job->spec = self->spec;
    job->name = self->name;
    job->names_count = self->names_count;
    job->eps = self->eps;
    job->verbose = self->verbose;
    job->query = *query;
    job->deadline = zclock_mono () + ASOF_TIMEOUT_MS;
    if (snprintf (job->scratch, sizeof job->scratch, "%s.asof-XXXXXX", self->view_path)
            >= (int) sizeof job->scratch
        || !mkdtemp (job->scratch)) {
        zsys_error ("%s: cannot create a scratch directory %s: %s", self->name, job->scratch,
                    strerror (errno));
        pond_actor_priv_error (self, peer, POND_CODE_STORE_ERROR,
                               "cannot create a scratch directory beside the view");
        free (job);
        return;
    }
    char scratch [1100];
    memcpy (scratch, job->scratch, sizeof scratch);
    self->asof = zactor_new (s_asof_worker, job);    //  the worker frees job
    if (!self->asof) {
        zsys_dir_delete ("%s", scratch);
        free (job);
        pond_actor_priv_error (self, peer, POND_CODE_STORE_ERROR, "cannot start a thread");
        return;
    }
    zpoller_add (self->poller, self->asof);
    self->asof_peer = zframe_dup (peer);
    self->asof_started = zclock_mono ();
    if (query->has_as_of)
        zsys_info ("%s: time travel: '%s' as of %" PRIu64 " us, in %s", self->name, query->entity,
                   query->as_of, scratch);
    else
        zsys_info ("%s: time travel: '%s' as of seq %" PRIu64 ", in %s", self->name, query->entity,
                   query->at_seq, scratch);
}

void
pond_actor_priv_asof_done (pond_actor_t *self)
{
    if (!self->asof || !(zsock_events (zactor_sock (self->asof)) & ZMQ_POLLIN))
        return;
    int code = POND_CODE_STORE_ERROR;
    char *reason = NULL, *result = NULL;
    if (zsock_recv (self->asof, "iss", &code, &reason, &result))
        code = POND_CODE_STORE_ERROR;
    zpoller_remove (self->poller, self->asof);
    zactor_destroy (&self->asof);
    if (code == 0 && result) {
        zframe_t *body = zframe_new (result, strlen (result));
        pond_actor_priv_send (self, self->asof_peer, POND_RESULT, &body);
    }
    else
        pond_actor_priv_error (self, self->asof_peer, code ? code : POND_CODE_STORE_ERROR, "%s",
                               reason && *reason ? reason : "the time-travel query failed");
    zsys_info ("%s: time travel answered (%d) in %" PRId64 " ms", self->name, code ? code : 200,
               zclock_mono () - self->asof_started);
    zstr_free (&reason);
    zstr_free (&result);
    zframe_destroy (&self->asof_peer);
}

void
pond_actor_priv_asof_stop (pond_actor_t *self)
{
    if (!self->asof)
        return;
    zpoller_remove (self->poller, self->asof);
    zactor_destroy (&self->asof);    //  $TERM: the worker stops within 200 ms
    pond_actor_priv_error (self, self->asof_peer, POND_CODE_UNAVAILABLE,
                           "%s is stopping; ask again when it runs", self->name);
    zframe_destroy (&self->asof_peer);
}

void
pond_actor_priv_asof_clean (pond_actor_t *self)
{
    //  Scratch views are VIEW.asof-XXXXXX beside the view: a process that
    //  died while answering left one behind
    char parent [1024], base [1024];
    snprintf (parent, sizeof parent, "%s", self->view_path);
    snprintf (base, sizeof base, "%s", self->view_path);
    const char *dir_name = dirname (parent);
    char prefix [1100];
    snprintf (prefix, sizeof prefix, "%s.asof-", basename (base));
    DIR *dir = opendir (dir_name);
    struct dirent *entry;
    while (dir && (entry = readdir (dir)))
        if (strncmp (entry->d_name, prefix, strlen (prefix)) == 0) {
            zsys_info ("%s: removing the scratch view %s/%s left behind", self->name, dir_name,
                       entry->d_name);
            char path [2400];
            snprintf (path, sizeof path, "%s/%s/view", dir_name, entry->d_name);
            pond_view_drop (path);
            zsys_dir_delete ("%s/%s", dir_name, entry->d_name);
        }
    if (dir)
        closedir (dir);
}
