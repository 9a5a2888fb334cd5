/*  pond_actor_verify: an actor's --verify. Asks the running actor for its
    view (DUMP), rebuilds a scratch view from the log up to the same
    position, and compares the two. See pond_actor.h and README.md.
*/
#include "pond_actor_internal.h"

#include <errno.h>
#include <signal.h>

//  Ask the live actor for its DUMP. Returns the JSON text (caller frees)
//  or NULL with the reason printed.
static char *
s_verify_dump (pond_actor_t *self)
{
    char endpoint [POND_ENDPOINT_MAX];
    char key [POND_KEY_NAME_MAX + 1] = "";
    snprintf (endpoint, sizeof endpoint, "%s", self->query_endpoint);
    if (!self->query_given) {
        zconfig_t *config = zconfig_load (self->ready_path);
        if (!config) {
            fprintf (stderr,
                     "%s: not running (no %s): --verify compares a running actor's "
                     "view with a rebuild; start it first\n",
                     self->name, self->ready_path);
            return NULL;
        }
        snprintf (endpoint, sizeof endpoint, "%s",
                  zconfig_get (config, "actor/query", self->query_endpoint));
        snprintf (key, sizeof key, "%s", zconfig_get (config, "actor/key", ""));
        int pid = atoi (zconfig_get (config, "actor/pid", "0"));
        zconfig_destroy (&config);
        if (pid > 0 && kill (pid, 0) && errno == ESRCH) {
            fprintf (stderr,
                     "%s: not running (%s names pid %d, which is gone); its view "
                     "cannot be compared\n",
                     self->name, self->ready_path, pid);
            return NULL;
        }
    }
    zsock_t *sock = zsock_new (ZMQ_DEALER);
    //  The live actor's key: its ready file's, else (--query given) ours
    if (sock && pond_keys_active () && pond_keys_client (sock, *key ? key : pond_keys_as ()))
        zsock_destroy (&sock);
    if (!sock || zsock_connect (sock, "%s", endpoint)) {
        fprintf (stderr, "%s: cannot connect to %s\n", self->name, endpoint);
        zsock_destroy (&sock);
        return NULL;
    }
    zsock_set_linger (sock, 0);
    zsock_set_rcvtimeo (sock, VERIFY_DUMP_MS);
    zstr_send (sock, POND_DUMP);
    zmsg_t *reply = zmsg_recv (sock);
    char *dump = NULL;
    if (!reply)
        fprintf (stderr, "%s: no answer from %s within %d s: is it running?\n", self->name,
                 endpoint, VERIFY_DUMP_MS / 1000);
    else {
        zframe_t *command = zmsg_first (reply);
        zframe_t *body = zmsg_next (reply);
        pond_nack_t error;
        char err [POND_ERR_SIZE];
        if (pond_proto_is (command, POND_RESULT) && body)
            dump = strndup ((const char *) zframe_data (body), zframe_size (body));
        else if (pond_proto_is (command, POND_ERROR)
                 && pond_nack_decode (body, &error, err, sizeof err) == 0)
            fprintf (stderr, "%s: the live actor refused DUMP: %u %s\n", self->name, error.code,
                     error.reason);
        else
            fprintf (stderr, "%s: unreadable answer to DUMP from %s\n", self->name, endpoint);
    }
    zmsg_destroy (&reply);
    zsock_destroy (&sock);
    return dump;
}

//  Apply the log up to position into the (scratch) view. Returns 0 or -1.
static int
s_verify_rebuild (pond_actor_t *self, uint64_t position)
{
    if (position == 0)
        return 0;
    pond_replay_req_t request;
    pond_actor_priv_replay_request (self, &request, 1, position + 1);
    pond_reader_t *replay = pond_reader_new (self->eps.control, &request);
    if (!replay) {
        fprintf (stderr, "%s: cannot start a replay on %s\n", self->name, self->eps.control);
        return -1;
    }
    int rc = 0;
    pond_event_t *event;
    while ((event = pond_reader_next (replay, VERIFY_REPLAY_MS))) {
        if (pond_event_seq (event) > self->position && pond_event_seq (event) <= position)
            rc = pond_actor_priv_apply (self, event);
        pond_event_destroy (&event);
        if (rc)
            break;
    }
    if (rc == 0 && pond_reader_code (replay) != POND_CODE_OK) {
        fprintf (stderr, "%s: the replay failed: %d %s\n", self->name, pond_reader_code (replay),
                 pond_reader_reason (replay));
        rc = -1;
    }
    pond_reader_destroy (&replay);
    if (rc == 0) {
        self->position = position;
        rc = pond_actor_priv_persist (self);
    }
    return rc;
}

//  Print the keys whose documents differ (at most 10) and how many.
static void
s_verify_report (pond_actor_t *self, const char *live, const char *rebuilt, uint64_t position)
{
    cJSON *a = cJSON_Parse (live);
    cJSON *b = cJSON_Parse (rebuilt);
    cJSON *docs_a = cJSON_GetObjectItemCaseSensitive (a, "docs");
    cJSON *docs_b = cJSON_GetObjectItemCaseSensitive (b, "docs");
    printf ("%s: view differs from its rebuild at seq %" PRIu64 "\n", self->name, position);
    size_t shown = 0, differ = 0;
    //  Both are sorted by key: walk them side by side
    cJSON *x = docs_a ? docs_a->child : NULL;
    cJSON *y = docs_b ? docs_b->child : NULL;
    while (x || y) {
        int order = !x ? 1 : !y ? -1 : strcmp (x->string, y->string);
        char *text_x = order <= 0 ? cJSON_PrintUnformatted (x) : NULL;
        char *text_y = order >= 0 ? cJSON_PrintUnformatted (y) : NULL;
        if (order != 0 || strcmp (text_x, text_y) != 0) {
            differ++;
            if (shown++ < 10)
                printf ("  %s: live %.200s, rebuilt %.200s\n", order <= 0 ? x->string : y->string,
                        text_x ? text_x : "(absent)", text_y ? text_y : "(absent)");
        }
        cJSON_free (text_x);
        cJSON_free (text_y);
        if (order <= 0)
            x = x->next;
        if (order >= 0)
            y = y->next;
    }
    printf ("  %zu key%s differ\n", differ, differ == 1 ? "" : "s");
    cJSON_Delete (a);
    cJSON_Delete (b);
}

int
pond_actor_priv_verify (pond_actor_t *self)
{
    char *live = s_verify_dump (self);
    if (!live)
        return 1;
    cJSON *parsed = cJSON_Parse (live);
    cJSON *position_item = cJSON_GetObjectItemCaseSensitive (parsed, "position");
    cJSON *docs = cJSON_GetObjectItemCaseSensitive (parsed, "docs");
    if (!cJSON_IsNumber (position_item) || !cJSON_IsObject (docs)) {
        fprintf (stderr, "%s: the live actor's DUMP is not {\"position\", \"docs\"}\n", self->name);
        cJSON_Delete (parsed);
        free (live);
        return 1;
    }
    uint64_t position = (uint64_t) position_item->valuedouble;
    size_t count = (size_t) cJSON_GetArraySize (docs);
    cJSON_Delete (parsed);

    const char *tmp = getenv ("TMPDIR") ? getenv ("TMPDIR") : "/tmp";
    char scratch [512];
    snprintf (scratch, sizeof scratch, "%s/pond-verify-%s-XXXXXX", tmp, self->name);
    if (!mkdtemp (scratch)) {
        fprintf (stderr, "%s: cannot create a scratch directory in %s: %s\n", self->name, tmp,
                 strerror (errno));
        free (live);
        return 1;
    }
    if (snprintf (self->view_path, sizeof self->view_path, "%s/view", scratch) < 0)
        return 1;
    int rc = 1;
    char *rebuilt = NULL;
    self->view = pond_view_open_with (self->view_path, &self->limits);
    if (self->view
        && (!self->spec->start || self->spec->start (self, self->view, self->spec->state) == 0)
        && s_verify_rebuild (self, position) == 0 && (rebuilt = pond_view_dump (self->view))) {
        //  Equal to its rebuild is not enough: both may disagree with
        //  the actor's own rules (a bug in how the log is applied)
        char *problems = streq (live, rebuilt) && self->spec->check
                           ? self->spec->check (self, self->view, self->spec->state)
                           : NULL;
        if (problems) {
            printf ("%s: view matches its rebuild at seq %" PRIu64 " but disagrees with its "
                    "rules:\n%s",
                    self->name, position, problems);
            free (problems);
        }
        else if (streq (live, rebuilt)) {
            printf ("%s: view matches its rebuild at seq %" PRIu64 " (%zu docs)\n", self->name,
                    position, count);
            rc = 0;
        }
        else
            s_verify_report (self, live, rebuilt, position);
    }
    else
        fprintf (stderr, "%s: cannot rebuild the view into %s\n", self->name, scratch);
    free (rebuilt);
    free (live);
    pond_view_destroy (&self->view);
    pond_view_drop (self->view_path);
    zsys_dir_delete ("%s", scratch);
    return rc;
}
