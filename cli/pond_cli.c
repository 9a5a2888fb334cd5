/*  pond_cli: option parsing, messages and hints shared by every command of
    the `pond` command line. See pond_cli.h.
*/
#include "pond_cli.h"
#include "pond_keys.h"
#include "pond_number.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void
pond_cli_init (pond_cli_t *cli, const char *command, void (*help) (FILE *out))
{
    memset (cli, 0, sizeof (*cli));
    cli->command = command;
    cli->help = help;
    cli->timeout_ms = POND_CLI_TIMEOUT;
}

static void
s_vprint (pond_cli_t *cli, const char *format, va_list args)
{
    fprintf (stderr, "pond %s: ", cli->command);
    vfprintf (stderr, format, args);
    fprintf (stderr, "\n");
}

int
pond_cli_usage (pond_cli_t *cli, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    s_vprint (cli, format, args);
    va_end (args);
    fprintf (stderr, "Try 'pond %s --help'.\n", cli->command);
    cli->done = true;
    cli->exit_code = POND_EXIT_USAGE;
    return POND_EXIT_USAGE;
}

int
pond_cli_fail (pond_cli_t *cli, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    s_vprint (cli, format, args);
    va_end (args);
    cli->done = true;
    cli->exit_code = POND_EXIT_FAILURE;
    return POND_EXIT_FAILURE;
}

void
pond_cli_hint_broker (pond_cli_t *cli)
{
    const pond_endpoints_t *eps = &cli->eps;
    if (eps->from_broker_file && eps->broker_pid > 0 && kill (eps->broker_pid, 0) == -1
        && errno == ESRCH)
        fprintf (stderr,
                 "hint: %s/broker.zpl names pid %d, which is not running: "
                 "the broker has stopped\n",
                 eps->data_dir, eps->broker_pid);
    fprintf (stderr, "hint: is pond-broker running? start it with: pond-broker --data %s\n",
             eps->data_dir);
    if (pond_keys_active ())
        fprintf (stderr,
                 "hint: this command talks CURVE with key '%s' of %s: the broker must "
                 "run with --keys and know that key (pond keys list --keys %s)\n",
                 pond_keys_as (), pond_keys_dir (), pond_keys_dir ());
    else if (eps->from_broker_file) {
        char path [POND_ENDPOINT_MAX + 16];
        snprintf (path, sizeof path, "%s/broker.zpl", eps->data_dir);
        zconfig_t *config = zconfig_load (path);
        if (config && streq (zconfig_get (config, "broker/security", "none"), "curve"))
            fprintf (stderr, "hint: the broker uses CURVE keys: give --keys DIR and --as NAME "
                             "(or $POND_KEYS and $POND_AS)\n");
        zconfig_destroy (&config);
    }
}

int
pond_cli_parse_uint (const char *text, uint64_t *value)
{
    return pond_number_parse (text, 0, UINT64_MAX, value);
}

int
pond_cli_parse_names (pond_cli_t *cli, const char *text, char (*names) [POND_NAME_MAX + 1],
                      size_t max)
{
    size_t count = 0;
    const char *start = text;
    while (true) {
        const char *comma = strchr (start, ',');
        size_t len = comma ? (size_t) (comma - start) : strlen (start);
        if (count == max) {
            pond_cli_usage (cli, "at most %zu names", max);
            return -1;
        }
        char name [POND_NAME_MAX + 2];
        snprintf (name, sizeof name, "%.*s",
                  (int) (len < POND_NAME_MAX + 1 ? len : POND_NAME_MAX + 1), start);
        //  The envelope's own rule, so the message is the same everywhere
        char err [POND_ERR_SIZE] = "";
        pond_event_t *probe = pond_event_new (NULL, "probe");
        int rc = probe && len <= POND_NAME_MAX ? pond_event_set_name (probe, name) : -1;
        if (rc == 0)
            rc = pond_event_validate (probe, err, sizeof err);
        else
            snprintf (err, sizeof err, "name must be 1 to %d characters", POND_NAME_MAX);
        pond_event_destroy (&probe);
        if (rc) {
            pond_cli_usage (cli, "'%.*s' is not an event name: %s", (int) len, start, err);
            return -1;
        }
        strcpy (names [count++], name);
        if (!comma)
            return (int) count;
        start = comma + 1;
    }
}

//  Parse --timeout: 1 ms .. 1 hour
static int
s_parse_timeout (pond_cli_t *cli, const char *text)
{
    uint64_t value;
    if (pond_number_parse (text, 1, 3600000, &value))
        return pond_cli_usage (cli, "--timeout takes milliseconds, 1 to 3600000, not '%s'", text);
    cli->timeout_ms = (int) value;
    return 0;
}

//  Options are over: no stray arguments; resolve the endpoints.
static void
s_finish (pond_cli_t *cli, int argc, char *argv [])
{
    if (optind < argc) {
        pond_cli_usage (cli, "unexpected argument '%s'", argv [optind]);
        return;
    }
    if (pond_endpoints_resolve (cli->data_dir, &cli->eps)) {
        pond_cli_usage (cli, "data directory path too long");
        return;
    }
    //  Keys: flags, else the environment; none means local mode
    if (!cli->keys && getenv ("POND_KEYS") && *getenv ("POND_KEYS"))
        cli->keys = getenv ("POND_KEYS");
    if (!cli->as && getenv ("POND_AS") && *getenv ("POND_AS"))
        cli->as = getenv ("POND_AS");
    //  pond demo makes its own local mesh, which has no keys
    if (streq (cli->command, "demo"))
        cli->keys = NULL;
    if (!cli->keys_managed && cli->keys) {
        char err [768];
        if (!cli->as)
            cli->as = "admin";
        if (pond_keys_use (cli->keys, cli->as, err, sizeof err)) {
            pond_cli_fail (cli, "%s", err);
            return;
        }
    }
    const char *overrides [] = { cli->ingest, cli->pub, cli->control };
    char *slots [] = { cli->eps.ingest, cli->eps.pub, cli->eps.control };
    for (size_t i = 0; i < 3; i++)
        if (overrides [i]) {
            if (strlen (overrides [i]) >= POND_ENDPOINT_MAX) {
                pond_cli_usage (cli, "endpoint '%s' is too long", overrides [i]);
                return;
            }
            strcpy (slots [i], overrides [i]);
        }
}

int
pond_cli_getopt (pond_cli_t *cli, int argc, char *argv [], const struct option *options)
{
    opterr = 0;    //  We say what went wrong ourselves
    while (!cli->done) {
        int opt = getopt_long (argc, argv, ":h", options, NULL);
        switch (opt) {
            case POND_OPT_DATA:
            case POND_OPT_DATA_DIR:
                //  --data is always the directory; a payload here is an old habit
                if (optarg [strspn (optarg, " \t\r\n")] == '{')
                    return pond_cli_usage (cli, "--data is the data directory; give an "
                                                "event's payload with --payload JSON"),
                         -1;
                cli->data_dir = optarg;
                break;
            case POND_OPT_INGEST: cli->ingest = optarg; break;
            case POND_OPT_PUB: cli->pub = optarg; break;
            case POND_OPT_CONTROL: cli->control = optarg; break;
            case POND_OPT_KEYS: cli->keys = optarg; break;
            case POND_OPT_AS: cli->as = optarg; break;
            case POND_OPT_TIMEOUT: s_parse_timeout (cli, optarg); break;
            case POND_OPT_VERBOSE: cli->verbose = true; break;
            case 'h':
            case POND_OPT_HELP:
                cli->help (stdout);
                cli->done = true;
                cli->exit_code = POND_EXIT_OK;
                break;
            case '?':
                if (optopt)
                    pond_cli_usage (cli, "unknown option '-%c'", optopt);
                else
                    pond_cli_usage (cli, "unknown option '%s'", argv [optind - 1]);
                break;
            case ':': pond_cli_usage (cli, "option '%s' needs a value", argv [optind - 1]); break;
            case -1: s_finish (cli, argc, argv); return -1;
            default: return opt;
        }
    }
    return -1;
}
