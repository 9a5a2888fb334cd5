/*  pond_cmd_commands: commands that say when they are done.

    command    ask the broker where a command is (COMMAND_STATUS), or wait
               for it to finish

    and what pond recompute and pond rebuild share (pond_cmd_actors.c):
    send the COMMAND to the broker's control socket, print its id, follow
    its status until it is done or failed, showing the progress, and print
    the result. The wire work is pond_command_link's.
*/
#include "pond_mesh.h"
#include "pond_command_link.h"
#include "pond_keys.h"
#include "pond_uuid.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define POLL_MS      200    //  between two COMMAND_STATUS
#define LINE_MAX_LEN 128

//  Say what to do after a failure of the broker or of the command
static void
s_hint (pond_cli_t *cli, int code, const char *id)
{
    if (code == POND_CODE_TIMEOUT)
        pond_cli_hint_broker (cli);
    else if (code == POND_CODE_FORBIDDEN)
        fprintf (stderr, "hint: commands are for the admin key: --as admin (or $POND_AS)\n");
    else if (code == POND_CODE_UNAVAILABLE && id)
        fprintf (stderr, "hint: see where it is with: pond command status %s --data %s\n", id,
                 cli->eps.data_dir);
    else if (code == POND_CODE_UNAVAILABLE)
        fprintf (stderr, "hint: is the mesh up? see pond status --data %s\n", cli->eps.data_dir);
}

//  Progress on stderr: one updating line on a terminal, else at most a
//  line a second
static void
s_progress (const char *what, const pond_command_status_t *status, bool tty, int64_t *last_ms)
{
    char line [LINE_MAX_LEN];
    if (status->total)
        snprintf (line, sizeof line, "%s: %s, %llu of %llu (%d%%)", what, status->status,
                  (unsigned long long) status->done, (unsigned long long) status->total,
                  (int) (status->done * 100 / status->total));
    else
        snprintf (line, sizeof line, "%s: %s", what, status->status);
    if (tty)
        fprintf (stderr, "\r%s\033[K", line);
    else {
        int64_t now = zclock_mono ();
        if (now - *last_ms < 1000)
            return;
        *last_ms = now;
        fprintf (stderr, "%s\n", line);
    }
    fflush (stderr);
}

//  Print a final status: the result (pretty JSON), or with json the whole
//  status on one line. Returns the exit code.
static int
s_finished (pond_cli_t *cli, const pond_command_status_t *status, bool json, char **result_p)
{
    char id [37];
    pond_uuid_format (status->id, id);
    if (json) {
        cJSON *tree = pond_command_link_json (status);
        char *text = tree ? cJSON_PrintUnformatted (tree) : NULL;
        printf ("%s\n", text ? text : "{}");
        free (text);
        cJSON_Delete (tree);
    }
    else if (streq (status->status, "done") && result_p)
        *result_p = strdup (status->has_result ? status->result : "{}");
    else if (streq (status->status, "done"))
        pond_mesh_print_json (stdout, status->has_result ? status->result : "{}", true, "");
    if (streq (status->status, "done"))
        return POND_EXIT_OK;
    if (!streq (status->status, "failed"))
        return POND_EXIT_OK;    //  still running: said so
    pond_cli_fail (cli, "command %s (%s on %s) failed: %u %s", id, status->command, status->view,
                   status->code, status->reason);
    if (status->code == POND_CODE_BAD_REQUEST && streq (status->command, "recompute"))
        fprintf (stderr, "hint: fix the rules, then run pond recompute again\n");
    else if (status->code == POND_CODE_UNAVAILABLE)
        fprintf (stderr, "hint: once %s is up (pond status --data %s), run the command again\n",
                 status->view, cli->eps.data_dir);
    return POND_EXIT_FAILURE;
}

//  Follow the command id until it is done or failed, or no progress came
//  for idle_ms. Returns the exit code.
static int
s_follow (pond_cli_t *cli, const uint8_t *id, const char *what, int idle_ms, bool json,
          char **result_p)
{
    pond_command_status_t *status = (pond_command_status_t *) malloc (sizeof *status);
    if (!status)
        return pond_cli_fail (cli, "out of memory");
    char text [37];
    pond_uuid_format (id, text);
    bool tty = isatty (2);
    int64_t last_ms = 0, moved_at = zclock_mono ();
    uint64_t done = 0;
    char state [POND_COMMAND_STATUS_MAX] = "";
    int rc = -1;
    while (rc < 0) {
        pond_command_failure_t failure;
        if (pond_command_link_status (cli->eps.control, id, POND_CLI_TIMEOUT, status, &failure)) {
            if (tty)
                fprintf (stderr, "\n");
            rc = pond_cli_fail (cli, "cannot follow command %s: %d %s", text, failure.code,
                                failure.reason);
            s_hint (cli, failure.code, NULL);
            break;
        }
        if (pond_command_link_finished (status)) {
            if (tty)
                fprintf (stderr, "\r%s: %s\033[K\n", what, status->status);
            rc = s_finished (cli, status, json, result_p);
            break;
        }
        s_progress (what, status, tty, &last_ms);
        if (status->done != done || !streq (status->status, state)) {
            done = status->done;
            snprintf (state, sizeof state, "%s", status->status);
            moved_at = zclock_mono ();
        }
        else if (zclock_mono () - moved_at >= idle_ms) {
            if (tty)
                fprintf (stderr, "\n");
            rc = pond_cli_fail (cli,
                                "command %s has not moved for %d ms (%s); it goes on: see "
                                "pond command status %s",
                                text, idle_ms, status->status, text);
            break;
        }
        if (zsys_interrupted) {
            rc = pond_cli_fail (cli, "interrupted; the command goes on: see pond command status %s",
                                text);
            break;
        }
        zclock_sleep (POLL_MS);
    }
    free (status);
    return rc;
}

int
pond_cmd_run_command (pond_cli_t *cli, const char *command, const char *view, const char *args,
                      const pond_cmd_command_options_t *options, const char *what, char **result_p)
{
    pond_command_t *message = (pond_command_t *) calloc (1, sizeof *message);
    pond_command_status_t *status = (pond_command_status_t *) malloc (sizeof *status);
    if (!message || !status) {
        free (message);
        free (status);
        return pond_cli_fail (cli, "out of memory");
    }
    snprintf (message->command, sizeof message->command, "%s", command);
    snprintf (message->view, sizeof message->view, "%s", view);
    snprintf (message->args, sizeof message->args, "%s", args ? args : "");
    int rc = POND_EXIT_OK;
    if (options->id) {
        if (pond_uuid_parse (options->id, message->id)) {
            free (message);
            free (status);
            return pond_cli_usage (cli, "--id %s is not a UUID (like %s)", options->id,
                                   "018f3a5b-6c7d-7e8f-90a1-b2c3d4e5f607");
        }
        message->has_id = true;
    }
    pond_command_failure_t failure;
    if (pond_command_link_submit (cli->eps.control, message, POND_CLI_TIMEOUT, status, &failure)) {
        rc = pond_cli_fail (cli, "%d %s", failure.code, failure.reason);
        s_hint (cli, failure.code, NULL);
    }
    else {
        char id [37];
        pond_uuid_format (status->id, id);
        if (options->no_wait)
            printf ("%s\n", id);
        else {
            fprintf (stderr, "%s: command %s %s%s\n", what, id, status->status,
                     status->dup ? " (sent before with this id)" : "");
            rc = s_follow (cli, status->id, what, cli->timeout_ms, options->json, result_p);
        }
    }
    free (message);
    free (status);
    return rc;
}

//  =====================================================================
//  pond command status ID | pond command wait ID

void
pond_cmd_command_help (FILE *out)
{
    fprintf (out, "Usage: pond command status ID [--json]\n"
                  "       pond command wait ID [--json]\n"
                  "\n"
                  "Where a command is. pond recompute and pond rebuild send a command to\n"
                  "the broker, which answers at once with the command's id (printed on\n"
                  "stderr, or alone on stdout with --no-wait); the actor runs it meanwhile.\n"
                  "\n"
                  "  status ID   print the command's status as one JSON line: id, command,\n"
                  "              view, status (accepted, running, done or failed),\n"
                  "              progress {done, total}, result (done) or code and reason\n"
                  "              (failed), accepted/started/finished (microseconds since\n"
                  "              the epoch). Exit 0 whatever the status, 1 if the broker\n"
                  "              does not know the id (it keeps the last 1000 commands, and\n"
                  "              forgets them all when it restarts)\n"
                  "  wait ID     follow it until it is done (print the result, exit 0) or\n"
                  "              failed (print the reason, exit 1), showing the progress on\n"
                  "              stderr; --timeout MS is how long it may go without moving\n"
                  "              (default 60000)\n"
                  "  --json      wait: print the whole final status as status does\n"
                  "\n"
                  "Examples:\n"
                  "  ID=$(pond recompute badges --rules v2 --no-wait)\n"
                  "  pond command status $ID\n"
                  "  pond command wait $ID\n"
                  "\n" POND_CLI_COMMON_HELP);
}

static void
s_json_option (pond_cli_t *cli, int opt, void *arg)
{
    (void) cli;
    if (opt == 'j')
        *(bool *) arg = true;
}

int
pond_cmd_command (int argc, char *argv [])
{
    pond_cli_t cli;
    pond_cli_init (&cli, "command", pond_cmd_command_help);
    cli.timeout_ms = 60000;
    static const struct option options [] = { POND_CLI_COMMON_OPTIONS,
                                              POND_CLI_DATA_OPTION,
                                              { "json", no_argument, NULL, 'j' },
                                              { NULL, 0, NULL, 0 } };
    bool json = false;
    char **opts = (char **) calloc ((size_t) argc + 1, sizeof (char *));
    char **args = (char **) calloc ((size_t) argc + 1, sizeof (char *));
    if (!opts || !args) {
        free (opts);
        free (args);
        return pond_cli_fail (&cli, "out of memory");
    }
    int opts_count, args_count;
    pond_mesh_split_args (argc, argv, options, opts, &opts_count, args, &args_count);
    int opt;
    while ((opt = pond_cli_getopt (&cli, opts_count, opts, options)) != -1)
        s_json_option (&cli, opt, &json);
    free (opts);
    const char *verb = args_count == 2 ? args [0] : NULL;
    const char *text = args_count == 2 ? args [1] : NULL;
    free (args);
    if (cli.done)
        return cli.exit_code;
    if (!verb || (!streq (verb, "status") && !streq (verb, "wait")))
        return pond_cli_usage (&cli, "give status ID or wait ID, like: pond command status "
                                     "018f3a5b-6c7d-7e8f-90a1-b2c3d4e5f607");
    uint8_t id [POND_ID_SIZE];
    if (pond_uuid_parse (text, id))
        return pond_cli_usage (&cli,
                               "'%s' is not a command id (a UUID, as pond recompute "
                               "printed it)",
                               text);
    if (streq (verb, "wait"))
        return s_follow (&cli, id, "command", cli.timeout_ms, json, NULL);
    pond_command_status_t *status = (pond_command_status_t *) malloc (sizeof *status);
    if (!status)
        return pond_cli_fail (&cli, "out of memory");
    pond_command_failure_t failure;
    int rc = POND_EXIT_OK;
    if (pond_command_link_status (cli.eps.control, id, POND_CLI_TIMEOUT, status, &failure)) {
        rc = pond_cli_fail (&cli, "%d %s", failure.code, failure.reason);
        s_hint (&cli, failure.code, NULL);
    }
    else {
        cJSON *tree = pond_command_link_json (status);
        char *line = tree ? cJSON_PrintUnformatted (tree) : NULL;
        printf ("%s\n", line ? line : "{}");
        free (line);
        cJSON_Delete (tree);
    }
    free (status);
    return rc;
}
