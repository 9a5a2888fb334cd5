/*  pond_cmd_actors: the commands that talk to the actors of a running mesh.

    query      ask one view about one entity (QUERY on its query socket)
    rebuild    drop a view and rebuild it from the log (COMMAND rebuild)
    verify     compare every view with a rebuild (pond-NAME --verify)
    recompute  apply new badge rules to the whole history (COMMAND
               recompute to badge-granter)

    Each actor says where its query socket is in DIR/NAME.zpl; the wire
    work is pond_actor_link's. Results go to stdout, progress and errors to
    stderr.
*/
#define _GNU_SOURCE
#include "pond_mesh.h"
#include "pond_keys.h"
#include "pond_actor_link.h"
#include "pond_proto.h"
#include "pond_time.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  Commands run as long as they make progress: the idle wait
#define COMMAND_TIMEOUT_MS 60000

//  The options pond recompute and pond rebuild share (a printf format:
//  COMMAND_TIMEOUT_MS follows)
#define COMMAND_OPTIONS_HELP \
    "  --no-wait         print only the command's id and return at once; see\n" \
    "                    where it is with pond command status ID\n" \
    "  --json            print the final status as JSON (pond command status)\n" \
    "  --id UUID         the command's id (sending it again with the same id\n" \
    "                    runs it once: the second gets the first's status)\n" \
    "--timeout is how long the command may go without moving (default\n" \
    "%d ms); it goes on after that, and pond command wait ID follows it.\n"
//  A verify rebuilds a whole view
#define VERIFY_TIMEOUT_MS 300000

//  Parse options and positional arguments in one go: the options through
//  pond_cli_getopt (handler gets each of the command's own), the
//  positional ones into *args_p (caller frees the array). Returns their
//  number, or -1 when the command must return cli->exit_code.
typedef void (option_fn) (pond_cli_t *cli, int opt, void *arg);

static int
s_parse (pond_cli_t *cli, int argc, char *argv [], const struct option *options, option_fn *handler,
         void *arg, char ***args_p)
{
    char **opts = (char **) calloc ((size_t) argc + 1, sizeof (char *));
    char **args = (char **) calloc ((size_t) argc + 1, sizeof (char *));
    *args_p = args;
    if (!opts || !args) {
        free (opts);
        pond_cli_fail (cli, "out of memory");
        return -1;
    }
    int opts_count, args_count;
    pond_mesh_split_args (argc, argv, options, opts, &opts_count, args, &args_count);
    int opt;
    while ((opt = pond_cli_getopt (cli, opts_count, opts, options)) != -1)
        if (handler)
            handler (cli, opt, arg);
    free (opts);
    return cli->done ? -1 : args_count;
}

//  The link to the actor a view name means, at endpoint if given (an
//  actor on another host), else where its ready file in the data
//  directory says; or NULL after saying why.
static pond_actor_link_t *
s_link (pond_cli_t *cli, const char *view, const char *endpoint)
{
    const char *name = pond_mesh_actor_name (view);
    if (!name) {
        pond_cli_usage (cli,
                        "unknown view '%s' (quack-counter or quacks, badge-granter or "
                        "badges, alexa-view or alexa, mobile-view or mobile)",
                        view);
        return NULL;
    }
    char err [512];
    pond_actor_link_t *link = endpoint
                                ? pond_actor_link_new_at (name, endpoint, NULL, err, sizeof err)
                                : pond_actor_link_new (cli->eps.data_dir, name, err, sizeof err);
    if (!link)
        pond_cli_fail (cli, "%s", err);
    return link;
}

//  Say why a request to an actor failed; returns POND_EXIT_FAILURE.
static int
s_link_fail (pond_cli_t *cli, pond_actor_link_t *link, const char *name)
{
    int code = pond_actor_link_code (link);
    if (code == POND_CODE_TIMEOUT) {
        pond_cli_fail (cli, "%s", pond_actor_link_reason (link));
        fprintf (stderr, "hint: is the mesh up? see pond status --data %s\n", cli->eps.data_dir);
    }
    else if (code == POND_CODE_INTERRUPTED)
        pond_cli_fail (cli, "interrupted");
    else
        pond_cli_fail (cli, "%s: %d %s", name, code, pond_actor_link_reason (link));
    if (code == POND_CODE_UNAVAILABLE)
        fprintf (stderr,
                 "hint: %s is not there yet (catching up or rebuilding); try again "
                 "in a moment, or give it longer with --timeout MS\n",
                 name);
    return POND_EXIT_FAILURE;
}

//  =====================================================================
//  JSON for humans: two-space indents, whole numbers as whole numbers
//  (cJSON_Print shows big ones as 1.79552031015813e+15), short objects and
//  arrays of scalars on one line

//  A scalar (or a key, as a string item) as JSON text
static void
s_json_scalar (FILE *out, const cJSON *item)
{
    double value = cJSON_GetNumberValue (item);
    if (cJSON_IsNumber (item) && value == floor (value) && fabs (value) < 9007199254740992.0)
        fprintf (out, "%.0f", value);
    else {
        char *text = cJSON_PrintUnformatted (item);
        fprintf (out, "%s", text ? text : "null");
        free (text);
    }
}

//  True if item is an object or array of scalars short enough for a line
static bool
s_json_flat (const cJSON *item)
{
    size_t length = 2;
    for (const cJSON *child = item->child; child; child = child->next) {
        if (cJSON_IsArray (child) || cJSON_IsObject (child))
            return false;
        char *text = cJSON_PrintUnformatted (child);
        length += (text ? strlen (text) : 4) + 2 + (child->string ? strlen (child->string) + 4 : 0);
        free (text);
    }
    return length <= 72;
}

static void
s_json_key (FILE *out, const cJSON *child)
{
    cJSON *key = cJSON_CreateString (child->string ? child->string : "");
    s_json_scalar (out, key);
    cJSON_Delete (key);
    fprintf (out, ": ");
}

static void
s_json_write (FILE *out, const cJSON *item, int depth, const char *indent)
{
    bool object = cJSON_IsObject (item);
    if (!object && !cJSON_IsArray (item)) {
        s_json_scalar (out, item);
        return;
    }
    if (s_json_flat (item)) {
        fprintf (out, object ? "{" : "[");
        for (const cJSON *child = item->child; child; child = child->next) {
            if (object)
                s_json_key (out, child);
            s_json_scalar (out, child);
            fprintf (out, "%s", child->next ? ", " : "");
        }
        fprintf (out, object ? "}" : "]");
        return;
    }
    fprintf (out, object ? "{\n" : "[\n");
    for (const cJSON *child = item->child; child; child = child->next) {
        fprintf (out, "%s%*s", indent, 2 * (depth + 1), "");
        if (object)
            s_json_key (out, child);
        s_json_write (out, child, depth + 1, indent);
        fprintf (out, "%s\n", child->next ? "," : "");
    }
    fprintf (out, "%s%*s%s", indent, 2 * depth, "", object ? "}" : "]");
}

void
pond_mesh_print_json (FILE *out, const char *json, bool pretty, const char *indent)
{
    cJSON *tree = pretty ? cJSON_Parse (json) : NULL;
    fprintf (out, "%s", indent);
    if (tree)
        s_json_write (out, tree, 0, indent);
    else
        fprintf (out, "%s", json);
    fprintf (out, "\n");
    cJSON_Delete (tree);
}

//  =====================================================================
//  pond query VIEW ENTITY [TEXT...] [--text] [--pretty | --compact]
//             [--after SEQ | --at-seq SEQ | --as-of TIME]

void
pond_cmd_query_help (FILE *out)
{
    fprintf (out, "Usage: pond query VIEW ENTITY [TEXT...] [--text] [--pretty | --compact]\n"
                  "                  [--after SEQ | --at-seq SEQ | --as-of TIME] [--query EP]\n"
                  "\n"
                  "Ask one view of the running mesh about one entity (a customer) and\n"
                  "print its answer, a JSON object. VIEW is one of\n"
                  "  quack-counter (or quacks)   how many times the customer quacked\n"
                  "  badge-granter (or badges)   the customer's badges\n"
                  "  alexa-view (or alexa)       answers to a question in TEXT about the\n"
                  "                              customer's food: \"what do I have?\",\n"
                  "                              \"do I have milk?\"\n"
                  "  mobile-view (or mobile)     the customer's whole document\n"
                  "\n"
                  "  --text            print only the \"answer\" of the result (alexa)\n"
                  "  --pretty          indent the JSON (the default for mobile-view)\n"
                  "  --compact         one line (the default for the others)\n"
                  "  --after SEQ       answer once the view has applied seq SEQ (the \"seq\"\n"
                  "                    pond publish printed): read your own writes. A view\n"
                  "                    not there yet (or still catching up) is asked again\n"
                  "                    until --timeout, then: exit 1 with its position\n"
                  "  --at-seq SEQ      time travel: the view as it stood once the log up to\n"
                  "                    seq SEQ was applied. The actor rebuilds it from the\n"
                  "                    log into a scratch view (as pond verify does): a\n"
                  "                    replay, so give it a --timeout of seconds on a long\n"
                  "                    log (the actor gives up after 30 s). The answer gets\n"
                  "                    \"as_of_seq\". One at a time per view: another one\n"
                  "                    running makes this one wait (503, asked again)\n"
                  "  --as-of TIME      time travel to a time: the events whose event time is\n"
                  "                    <= TIME, applied in log order. TIME as pond replay\n"
                  "                    --from takes it: 2026-12-02T10:30:00Z, or microseconds\n"
                  "                    since the epoch. An entity the view did not know then:\n"
                  "                    exit 1 (404 ... as of TIME)\n"
                  "  --query EP        the actor's query endpoint (tcp://HOST:PORT, an actor\n"
                  "                    on another host); default: its DIR/NAME.zpl\n"
                  "\n"
                  "Examples:\n"
                  "  pond query alexa carla \"do I have milk?\" --text\n"
                  "  SEQ=$(pond publish --name QUACKED --entity anna | sed "
                  "'s/.*\"seq\":\\([0-9]*\\).*/\\1/')\n"
                  "  pond query quacks anna --after $SEQ\n"
                  "  pond query badges anna --at-seq 120     # the badges anna held then\n"
                  "  pond query badges anna --as-of 2026-12-01T00:00:00Z\n"
                  "Exit status: 0 answered, 1 the view said no (404: it does not know the\n"
                  "entity) or did not answer (a seq beyond the head: 400, saying the head),\n"
                  "2 usage error (unknown view, --text with a view other than alexa, more\n"
                  "than one of --after, --at-seq and --as-of, a TIME or SEQ not readable).\n"
                  "\n" POND_CLI_COMMON_HELP);
}

typedef struct {
    bool text;
    int pretty;            //  -1 default, 0 compact, 1 pretty
    const char *after;     //  --after SEQ
    const char *at_seq;    //  --at-seq SEQ
    const char *as_of;     //  --as-of TIME
    const char *query;     //  --query EP: the actor's query endpoint
} query_options_t;

static void
s_query_option (pond_cli_t *cli, int opt, void *arg)
{
    (void) cli;
    query_options_t *options = (query_options_t *) arg;
    if (opt == 't')
        options->text = true;
    else if (opt == 'p')
        options->pretty = 1;
    else if (opt == 'c')
        options->pretty = 0;
    else if (opt == 'a')
        options->after = optarg;
    else if (opt == 'S')
        options->at_seq = optarg;
    else if (opt == 'O')
        options->as_of = optarg;
    else if (opt == 'Q')
        options->query = optarg;
}

int
pond_cmd_query (int argc, char *argv [])
{
    pond_cli_t cli;
    pond_cli_init (&cli, "query", pond_cmd_query_help);
    static const struct option options [] = { POND_CLI_COMMON_OPTIONS,
                                              POND_CLI_DATA_OPTION,
                                              { "text", no_argument, NULL, 't' },
                                              { "pretty", no_argument, NULL, 'p' },
                                              { "compact", no_argument, NULL, 'c' },
                                              { "after", required_argument, NULL, 'a' },
                                              { "at-seq", required_argument, NULL, 'S' },
                                              { "as-of", required_argument, NULL, 'O' },
                                              { "query", required_argument, NULL, 'Q' },
                                              { NULL, 0, NULL, 0 } };
    query_options_t settings = { false, -1, NULL, NULL, NULL, NULL };
    char **args;
    int count = s_parse (&cli, argc, argv, options, s_query_option, &settings, &args);
    if (count < 0) {
        free (args);
        return cli.exit_code;
    }
    if (count < 2) {
        free (args);
        return pond_cli_usage (&cli, "give a VIEW and an ENTITY, like: pond query quacks anna");
    }
    //  The question may come as several words
    char text [POND_QUERY_TEXT_MAX] = "";
    for (int i = 2; i < count; i++) {
        size_t used = strlen (text);
        if (used + strlen (args [i]) + 2 > sizeof text) {
            free (args);
            return pond_cli_usage (&cli, "the question is too long (at most %d bytes)",
                                   POND_QUERY_TEXT_MAX - 1);
        }
        if (used)
            text [used++] = ' ';
        memcpy (text + used, args [i], strlen (args [i]) + 1);
    }
    const char *view = args [0], *entity = args [1];
    free (args);
    if (!*entity || strlen (entity) > POND_ENTITY_MAX)
        return pond_cli_usage (&cli, "the entity must be 1 to %d bytes", POND_ENTITY_MAX);
    if (!!settings.after + !!settings.at_seq + !!settings.as_of > 1)
        return pond_cli_usage (&cli,
                               "give one of --after, --at-seq and --as-of: --after waits for "
                               "the live view, --at-seq and --as-of ask for the view as it stood "
                               "then");
    uint64_t after = 0, at_seq = 0, as_of = 0;
    if (settings.after && pond_cli_parse_uint (settings.after, &after))
        return pond_cli_usage (&cli,
                               "--after takes a seq (a whole number, as pond "
                               "publish prints it), not '%s'",
                               settings.after);
    if (settings.at_seq && pond_cli_parse_uint (settings.at_seq, &at_seq))
        return pond_cli_usage (&cli,
                               "--at-seq takes a seq (a whole number, as pond "
                               "publish prints it), not '%s'",
                               settings.at_seq);
    if (settings.as_of && (pond_time_parse (settings.as_of, &as_of) || as_of == 0))
        return pond_cli_usage (&cli,
                               "--as-of takes a time, like 2026-12-02T10:30:00Z or "
                               "microseconds since the epoch, not '%s'",
                               settings.as_of);
    if (settings.query && !strstr (settings.query, "://"))
        return pond_cli_usage (&cli,
                               "--query takes the actor's query endpoint, like "
                               "tcp://HOST:7010, not '%s'",
                               settings.query);
    pond_actor_link_t *link = s_link (&cli, view, settings.query);
    if (!link)
        return cli.exit_code;
    const char *name = pond_mesh_actor_name (view);
    if (settings.text && !streq (name, "alexa-view")) {
        pond_actor_link_destroy (&link);
        return pond_cli_usage (&cli,
                               "--text prints alexa's spoken answer; %s answers JSON: "
                               "leave --text out",
                               name);
    }
    char *result = settings.at_seq || settings.as_of
                     ? pond_actor_link_query_as_of (link, entity, text, at_seq, as_of,
                                                    cli.timeout_ms)
                     : pond_actor_link_query_after (link, entity, text, after, cli.timeout_ms);
    int rc = POND_EXIT_OK;
    if (!result)
        rc = s_link_fail (&cli, link, name);
    else if (settings.text) {
        cJSON *tree = cJSON_Parse (result);
        const char *answer = cJSON_GetStringValue (cJSON_GetObjectItem (tree, "answer"));
        if (answer)
            printf ("%s\n", answer);
        else
            rc = pond_cli_fail (&cli, "%s's answer has no \"answer\" text: %s", name, result);
        cJSON_Delete (tree);
    }
    else
        pond_mesh_print_json (
            stdout, result,
            settings.pretty == 1 || (settings.pretty == -1 && streq (name, "mobile-view")), "");
    free (result);
    pond_actor_link_destroy (&link);
    return rc;
}

//  =====================================================================
//  =====================================================================
//  pond rebuild ACTOR

void
pond_cmd_rebuild_help (FILE *out)
{
    fprintf (out,
             "Usage: pond rebuild VIEW [--no-wait] [--json] [--id UUID]\n"
             "\n"
             "Drop the view of one actor and rebuild it from the log while the mesh\n"
             "runs (the actor answers 503 to queries meanwhile). VIEW is\n"
             "quack-counter (quacks), badge-granter (badges), alexa-view (alexa) or\n"
             "mobile-view (mobile). The broker takes the command (its id goes to\n"
             "stderr) and has the actor run it; pond rebuild follows it, showing the\n"
             "progress, and prints how many events were replayed and how long it\n"
             "took.\n"
             "\n" COMMAND_OPTIONS_HELP
             "Exit status: 0 rebuilt, 1 refused or failed (the reason says what to do).\n"
             "\n" POND_CLI_COMMON_HELP,
             COMMAND_TIMEOUT_MS);
}

//  The first number among keys in result, or -1
static double
s_number (cJSON *result, const char *const *keys)
{
    for (; *keys; keys++) {
        cJSON *item = cJSON_GetObjectItem (result, *keys);
        if (cJSON_IsNumber (item))
            return cJSON_GetNumberValue (item);
    }
    return -1;
}

//  The options of a command sent through the broker
static void
s_command_option (pond_cli_t *cli, int opt, void *arg)
{
    (void) cli;
    pond_cmd_command_options_t *options = (pond_cmd_command_options_t *) arg;
    if (opt == 'j')
        options->json = true;
    else if (opt == 'n')
        options->no_wait = true;
    else if (opt == 'i')
        options->id = optarg;
}

int
pond_cmd_rebuild (int argc, char *argv [])
{
    pond_cli_t cli;
    pond_cli_init (&cli, "rebuild", pond_cmd_rebuild_help);
    cli.timeout_ms = COMMAND_TIMEOUT_MS;
    static const struct option options [] = { POND_CLI_COMMON_OPTIONS,
                                              POND_CLI_DATA_OPTION,
                                              { "json", no_argument, NULL, 'j' },
                                              { "no-wait", no_argument, NULL, 'n' },
                                              { "id", required_argument, NULL, 'i' },
                                              { NULL, 0, NULL, 0 } };
    pond_cmd_command_options_t how = { false, false, NULL };
    char **args;
    int count = s_parse (&cli, argc, argv, options, s_command_option, &how, &args);
    const char *view = count == 1 ? args [0] : NULL;
    free (args);
    if (count < 0)
        return cli.exit_code;
    if (!view)
        return pond_cli_usage (&cli, "give one VIEW, like: pond rebuild mobile");
    const char *name = pond_mesh_actor_name (view);
    if (!name)
        return pond_cli_usage (&cli,
                               "unknown view '%s' (quack-counter or quacks, badge-granter or "
                               "badges, alexa-view or alexa, mobile-view or mobile)",
                               view);
    char what [96];
    snprintf (what, sizeof what, "rebuilding %s", name);
    char *result = NULL;
    int rc = pond_cmd_run_command (&cli, "rebuild", name, "", &how, what,
                                   how.json || how.no_wait ? NULL : &result);
    if (result) {
        cJSON *tree = cJSON_Parse (result);
        static const char *replayed_keys [] = { "replayed", "events", "applied", "count", NULL };
        static const char *position_keys [] = { "position", "head", NULL };
        static const char *seconds_keys [] = { "seconds", NULL };
        double replayed = s_number (tree, replayed_keys);
        double position = s_number (tree, position_keys);
        double seconds = s_number (tree, seconds_keys);
        printf ("rebuilt %s from the log: ", name);
        if (replayed >= 0)
            printf ("replayed %.0f events", replayed);
        else
            printf ("result %s", result);
        if (position >= 0)
            printf (", position %.0f", position);
        if (seconds >= 0)
            printf (", in %.2f s", seconds);
        printf ("\n");
        cJSON_Delete (tree);
    }
    free (result);
    return rc;
}

//  =====================================================================
//  pond verify [VIEW...]

void
pond_cmd_verify_help (FILE *out)
{
    fprintf (out, "Usage: pond verify [VIEW...]\n"
                  "\n"
                  "Check that views are what the log says: for each VIEW (default: all\n"
                  "four), run pond-NAME --verify --data DIR, which rebuilds the view from\n"
                  "the log into a scratch copy up to the live actor's position and\n"
                  "compares the two. The checks run side by side; each one's lines are\n"
                  "printed in order, then a summary. A view that differs is a bug: its\n"
                  "live copy can be replaced with pond rebuild VIEW. With --ingest, --pub\n"
                  "or --control (a broker on another host), each check is given them.\n"
                  "Exit status: 0 every view matches, 1 a view differs or a check failed,\n"
                  "2 usage error.\n"
                  "\n" POND_CLI_COMMON_HELP);
}

int
pond_cmd_verify (int argc, char *argv [])
{
    pond_cli_t cli;
    pond_cli_init (&cli, "verify", pond_cmd_verify_help);
    cli.timeout_ms = VERIFY_TIMEOUT_MS;
    static const struct option options [] = { POND_CLI_COMMON_OPTIONS,
                                              POND_CLI_DATA_OPTION,
                                              { NULL, 0, NULL, 0 } };
    char **args;
    int count = s_parse (&cli, argc, argv, options, NULL, NULL, &args);
    if (count < 0) {
        free (args);
        return cli.exit_code;
    }
    const char *names [POND_MESH_ACTORS];
    size_t runs_count = 0;
    for (int i = 0; i < count; i++) {
        const char *name = pond_mesh_actor_name (args [i]);
        if (!name) {
            pond_cli_usage (&cli,
                            "unknown view '%s' (quack-counter, badge-granter, "
                            "alexa-view, mobile-view, or quacks, badges, alexa, mobile)",
                            args [i]);
            free (args);
            return cli.exit_code;
        }
        bool listed = false;
        for (size_t j = 0; j < runs_count; j++)
            listed = listed || streq (names [j], name);
        if (!listed)
            names [runs_count++] = name;
    }
    free (args);
    if (runs_count == 0)
        for (size_t i = 0; i < POND_MESH_ACTORS; i++)
            names [runs_count++] = pond_mesh_actors [i];
    char bin_dir [PATH_MAX];
    if (pond_mesh_bin_dir (bin_dir, sizeof bin_dir))
        return pond_cli_fail (&cli, "cannot find the directory of the pond binary");

    //  Side by side: pond-NAME --verify --data DIR
    pond_mesh_child_t runs [POND_MESH_ACTORS];
    for (size_t i = 0; i < runs_count; i++) {
        char path [PATH_MAX + 80], program [80];
        snprintf (program, sizeof program, "pond-%s", names [i]);
        snprintf (path, sizeof path, "%s/%s", bin_dir, program);
        //  With keys, the check runs as this command's key (REPLAY and DUMP);
        //  broker endpoints given to this command go to the check too
        char *argv_verify [16] = { program, "--verify", "--data", cli.eps.data_dir };
        size_t argc_verify = 4;
        const char *flags [] = { "--ingest", "--pub", "--control" };
        const char *given [] = { cli.ingest, cli.pub, cli.control };
        for (size_t flag = 0; flag < 3; flag++)
            if (given [flag]) {
                argv_verify [argc_verify++] = (char *) flags [flag];
                argv_verify [argc_verify++] = (char *) given [flag];
            }
        if (pond_keys_active ()) {
            argv_verify [argc_verify++] = "--keys";
            argv_verify [argc_verify++] = (char *) pond_keys_dir ();
            argv_verify [argc_verify++] = "--as";
            argv_verify [argc_verify++] = (char *) pond_keys_as ();
        }
        argv_verify [argc_verify] = NULL;
        if (pond_mesh_child_start (&runs [i], path, argv_verify, false))
            fprintf (stderr, "pond verify: cannot start %s: %s\n", path, strerror (errno));
    }
    bool timed_out = pond_mesh_children_finish (runs, runs_count, cli.timeout_ms) != 0;
    size_t matched = 0;
    for (size_t i = 0; i < runs_count; i++) {
        pond_mesh_child_t *run = &runs [i];
        const char *name = names [i];
        if (run->size [0])
            printf ("%s%s", run->text [0], run->text [0][run->size [0] - 1] == '\n' ? "" : "\n");
        int code = pond_mesh_child_exit (run);
        if (code == 0)
            matched++;
        else if (run->pid <= 0)
            printf ("%s: not checked (could not start pond-%s)\n", name, name);
        else if (timed_out)
            printf ("%s: not checked: no result within %d ms\n", name, cli.timeout_ms);
        else if (code == 1 && run->size [0] && strstr (run->text [0], "disagrees with its rules"))
            printf ("%s: DISAGREES with its own rules (a rebuild gives the same; for "
                    "badges, pond recompute badges --rules with the rules in force repairs "
                    "it)\n",
                    name);
        else if (code == 1 && run->size [0])
            printf ("%s: DIFFERS from its rebuild (to replace the view: pond rebuild %s)\n", name,
                    name);
        else
            printf ("%s: the check failed (exit code %d); is the mesh up? see pond status\n", name,
                    code);
        if (code != 0 && run->size [1]) {
            fflush (stdout);
            fprintf (stderr, "%s", run->text [1]);
        }
        pond_mesh_child_free (run);
    }
    printf ("verify: %zu of %zu views match their rebuild from the log\n", matched, runs_count);
    return matched == runs_count ? POND_EXIT_OK : POND_EXIT_FAILURE;
}

//  =====================================================================
//  pond recompute badges --rules FILE

void
pond_cmd_recompute_help (FILE *out)
{
    fprintf (
        out,
        "Usage: pond recompute badges --rules FILE [--no-wait] [--json] [--id UUID]\n"
        "\n"
        "Apply new badge rules to the whole history. The broker takes the\n"
        "command (its id goes to stderr), and badge-granter runs it: it catches up\n"
        "with the log as of this command, replays every QUACKED event, counts\n"
        "per customer and, if the rules differ from those in force or a\n"
        "customer holds badges they do not give, emits one BADGE_RULES_CHANGED;\n"
        "applying it re-evaluates every customer's badges and emits only the\n"
        "differences as events (BADGE_REMOVED, BADGE_GRANTED), each with the\n"
        "command's id as its causation. Progress goes to stderr; the result\n"
        "(granted and removed lists) to stdout as JSON. Running it again changes\n"
        "nothing.\n"
        "\n"
        "  --rules FILE      the rules, JSON:\n"
        "                      {\"version\":\"v2\",\"badges\":[{\"name\":\"Junior\",\"at\":15},\n"
        "                       {\"name\":\"Master\",\"at\":25},{\"name\":\"Grand\",\"at\":45}]}\n"
        "                    v1 and v2 (or v1.json, v2.json) name the rules that\n"
        "                    come with pond (the rules directory of the build, or\n"
        "                    PREFIX/share/pond/rules where pond is "
        "installed)\n" COMMAND_OPTIONS_HELP
        "Exit status: 0 done, 1 refused or failed (the reason says what to do next:\n"
        "503 another command runs on badge-granter, or it is not running), 2 usage\n"
        "error (rules file unreadable or not JSON).\n"
        "\n" POND_CLI_COMMON_HELP,
        COMMAND_TIMEOUT_MS);
}

//  Find a rules file: as given, else v1/v2 among the shipped rules.
//  Returns 0 with the path, or -1.
static int
s_rules_path (const char *given, char *path, size_t size)
{
    if (access (given, R_OK) == 0 || strchr (given, '/')) {
        snprintf (path, size, "%s", given);
        return access (path, R_OK);
    }
    char bin_dir [PATH_MAX];
    const char *suffix = strstr (given, ".json") ? "" : ".json";
    int length;
    //  Beside the binaries: build/rules of a build tree, PREFIX/share/pond/
    //  rules of an installed pond (PREFIX/bin/pond)
    static const char *const beside [] = { "../rules", "../share/pond/rules" };
    if (pond_mesh_bin_dir (bin_dir, sizeof bin_dir) == 0)
        for (size_t i = 0; i < sizeof beside / sizeof beside [0]; i++) {
            length = snprintf (path, size, "%s/%s/%s%s", bin_dir, beside [i], given, suffix);
            if (length > 0 && (size_t) length < size && access (path, R_OK) == 0)
                return 0;
        }
#ifdef POND_RULES_DIR
    length = snprintf (path, size, "%s/%s%s", POND_RULES_DIR, given, suffix);
    if (length > 0 && (size_t) length < size && access (path, R_OK) == 0)
        return 0;
#endif
    snprintf (path, size, "%s", given);
    return -1;
}

//  The options of pond recompute
typedef struct {
    const char *rules;
    pond_cmd_command_options_t how;
} recompute_options_t;

static void
s_recompute_option (pond_cli_t *cli, int opt, void *arg)
{
    recompute_options_t *options = (recompute_options_t *) arg;
    if (opt == 'r')
        options->rules = optarg;
    else
        s_command_option (cli, opt, &options->how);
}

int
pond_cmd_recompute (int argc, char *argv [])
{
    pond_cli_t cli;
    pond_cli_init (&cli, "recompute", pond_cmd_recompute_help);
    cli.timeout_ms = COMMAND_TIMEOUT_MS;
    static const struct option options [] = { POND_CLI_COMMON_OPTIONS,
                                              POND_CLI_DATA_OPTION,
                                              { "rules", required_argument, NULL, 'r' },
                                              { "json", no_argument, NULL, 'j' },
                                              { "no-wait", no_argument, NULL, 'n' },
                                              { "id", required_argument, NULL, 'i' },
                                              { NULL, 0, NULL, 0 } };
    recompute_options_t given = { NULL, { false, false, NULL } };
    char **args;
    int count = s_parse (&cli, argc, argv, options, s_recompute_option, &given, &args);
    const char *rules = given.rules;
    bool badges = count == 1 && streq (args [0], "badges");
    free (args);
    if (count < 0)
        return cli.exit_code;
    if (!badges)
        return pond_cli_usage (&cli, "what is recomputed is badges: pond recompute badges "
                                     "--rules FILE");
    if (!rules)
        return pond_cli_usage (&cli, "--rules FILE is required (like --rules v2)");
    char path [PATH_MAX];
    if (s_rules_path (rules, path, sizeof path))
        return pond_cli_usage (&cli, "cannot read the rules file %s: %s", rules, strerror (ENOENT));
    char *text = NULL;
    zfile_t *file = zfile_new (NULL, path);
    zchunk_t *chunk = file && zfile_input (file) == 0 ? zfile_read (file, POND_COMMAND_ARGS_MAX, 0)
                                                      : NULL;
    if (chunk && zchunk_size (chunk) < POND_COMMAND_ARGS_MAX)
        text = zchunk_strdup (chunk);
    size_t size = chunk ? zchunk_size (chunk) : 0;
    zchunk_destroy (&chunk);
    zfile_destroy (&file);
    if (!text) {
        if (size >= POND_COMMAND_ARGS_MAX)
            return pond_cli_usage (&cli, "the rules file %s is too big (at most %d bytes)", path,
                                   POND_COMMAND_ARGS_MAX - 1);
        return pond_cli_usage (&cli, "cannot read the rules file %s", path);
    }
    const char *error_at = NULL;
    cJSON *tree = cJSON_ParseWithOpts (text, &error_at, true);
    if (!cJSON_IsObject (tree)) {
        int offset = error_at && tree == NULL ? (int) (error_at - text) : 0;
        cJSON_Delete (tree);
        free (text);
        if (offset)
            return pond_cli_usage (&cli, "%s is not valid JSON (error near byte %d)", path, offset);
        return pond_cli_usage (&cli,
                               "%s must hold one JSON object, like {\"version\":\"v2\","
                               "\"badges\":[{\"name\":\"Junior\",\"at\":15}]}",
                               path);
    }
    cJSON_Delete (tree);

    int rc = pond_cmd_run_command (&cli, "recompute", "badge-granter", text, &given.how,
                                   "recomputing badges", NULL);
    free (text);
    return rc;
}
