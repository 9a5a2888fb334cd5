/*  pond-device: a simulated kitchen device ("Silo") of a pond mesh.
    Parses the command line, opens the device's outbox, runs the actions
    (or the load), syncs the outbox and prints a summary. The logic lives
    in pond_device.c, pond_outbox.c and pond_scenario.c.
*/
#include "pond_device.h"
#include "pond_scenario.h"
#include "pond_client.h"
#include "pond_keys.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <math.h>
#include <sys/stat.h>

static void
s_usage (FILE *out)
{
    fprintf (out,
             "Usage: pond-device --device ID --customer ID [OPTIONS] [ACTIONS]\n"
             "       pond-device --device ID --customer ID --scenario FILE [OPTIONS]\n"
             "       pond-device --device ID --load [--rate N/s] [--count N] [--customers K]\n"
             "       pond-device --device ID --state\n"
             "\n"
             "A simulated kitchen device (\"Silo\"): buttons, quacks with sensory data,\n"
             "labels on food containers. Every event is first written to the device's\n"
             "durable outbox (RocksDB), then sent to the broker in order; an ACKed event\n"
             "leaves the outbox. Without a broker the device keeps creating events and\n"
             "sends them when the broker is back, or at its next start. Resends carry\n"
             "the same id, so nothing is lost and nothing doubles.\n"
             "\n"
             "Actions (done in the order given):\n"
             "  --click N            N button presses: BUTTON_CLICKED {button, press_ms}\n"
             "  --quack N            N quacks: QUACKED {duration_ms, loudness_db, firmware}\n"
             "  --label C=LABEL      label container C: LABEL_ADDED {label, container}\n"
             "  --unlabel C          take C's label off: LABEL_REMOVED; C becomes UNLABELED\n"
             "  --scenario FILE      the actions from FILE instead, one a line:\n"
             "                         click [BUTTON [PRESS_MS]]\n"
             "                         quack [DURATION_MS [LOUDNESS_DB]]\n"
             "                         label CONTAINER LABEL...\n"
             "                         unlabel CONTAINER\n"
             "                         sleep MS\n"
             "                         offline | online      (simulated network cut)\n"
             "                         # comment\n"
             "  (none)               only send what the outbox still holds\n"
             "\n"
             "Load (benchmarks):\n"
             "  --load               create QUACKED events round-robin for cust-0..cust-K-1\n"
             "  --rate N[/s]         events per second (default 0: as fast as possible)\n"
             "  --count N            events to create (default 1000)\n"
             "  --customers K        customers (default 1)\n"
             "\n"
             "Options:\n"
             "  --device ID          the device's id: the source of its events (required)\n"
             "  --customer ID        the customer the events belong to (entity); required\n"
             "                       with actions\n"
             "  --data DIR           mesh data directory (default $POND_DATA or ./pond-data);\n"
             "                       the broker is found from DIR/broker.zpl\n"
             "  --ingest EP          the broker's ingest endpoint (default from --data)\n"
             "  --outbox PATH        the outbox (default DIR/devices/ID)\n"
             "  --firmware VER       firmware version reported in QUACKED (default %s)\n"
             "  --clock-skew-ms N    the device's clock is off by N ms (may be negative)\n"
             "  --start-offline S    network cut for the first S seconds\n"
             "  --offline-until-seq N  network cut until the device's N-th event exists\n"
             "  --sync-timeout S     wait at most S seconds for the outbox to empty at the\n"
             "                       end (default 30; 0: do not wait)\n"
             "  --window N           events in flight at once (default %d; 1: one by one)\n"
             "  --keys DIR           CURVE to the broker with the key pair\n"
             "                       DIR/secret/NAME.cert_secret (role device); the broker\n"
             "                       stamps NAME as the source and refuses (403) events for\n"
             "                       customers the key is not bound to (see pond keys --help)\n"
             "  --as NAME            the key to use with --keys (default: the --device ID)\n"
             "  --state              print the device's state as JSON and exit\n"
             "  --verbose            log every event created and acked (with its id)\n"
             "  --help               show this text\n"
             "\n"
             "Output: one JSON line at the end: {device, customer, created, sent, dups,\n"
             "queued, rejected, resends, containers}. Exit codes: 0 all sent (or stopped by\n"
             "SIGINT/SIGTERM), 1 events still queued, refused by the broker (rejected) or\n"
             "the outbox failed, 2 usage error.\n"
             "\n"
             "Example:\n"
             "  pond-device --device silo-1 --customer cust-1 --quack 3 --label c1=milk\n"
             "  pond-device --device silo-1 --state\n",
             POND_DEVICE_FIRMWARE, POND_DEVICE_WINDOW);
}

//  Everything the command line says
typedef struct {
    pond_device_config_t config;
    const char *data_dir;
    const char *outbox;
    const char *scenario;
    bool load;
    double rate;
    uint64_t count;
    int customers;
    bool load_flags;    //  --rate, --count or --customers given
    double sync_timeout;
    bool state;
    bool start_offline;
    const char *keys;    //  --keys DIR, --as NAME
    const char *as;
} args_t;

//  Print a usage error; returns 2.
static int s_usage_error (const char *format, ...) __attribute__ ((format (printf, 1, 2)));

static int
s_usage_error (const char *format, ...)
{
    fprintf (stderr, "pond-device: ");
    va_list args;
    va_start (args, format);
    vfprintf (stderr, format, args);
    va_end (args);
    fprintf (stderr, "; see pond-device --help\n");
    return 2;
}

//  An id (device or customer): 1..128 bytes, no control characters; a
//  device id also names a directory.
static int
s_check_id (const char *flag, const char *id, bool is_path)
{
    size_t len = strlen (id);
    if (len == 0 || len > POND_ENTITY_MAX)
        return s_usage_error ("%s must be 1 to %d bytes", flag, POND_ENTITY_MAX);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char) id [i] < 0x20 || id [i] == 0x7f)
            return s_usage_error ("%s must not contain control characters", flag);
    if (is_path && (strchr (id, '/') || streq (id, ".") || streq (id, "..")))
        return s_usage_error ("%s '%s' names a directory of the outbox: no '/', '.' or '..'", flag,
                              id);
    return 0;
}

//  Create path and its parents. Returns 0 or -1 (errno).
static int
s_mkdir_p (const char *path)
{
    char copy [1024];
    if (strlen (path) >= sizeof copy) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy (copy, path);
    for (char *slash = strchr (copy + 1, '/'); slash; slash = strchr (slash + 1, '/')) {
        *slash = 0;
        if (mkdir (copy, 0755) && errno != EEXIST)
            return -1;
        *slash = '/';
    }
    if (mkdir (copy, 0755) && errno != EEXIST)
        return -1;
    return 0;
}

//  Parse argv into args and scenario. Returns 0, or 2 after printing the
//  usage error, or 3 for --help (printed).
static int
s_parse (int argc, char *argv [], args_t *args, pond_scenario_t *scenario)
{
    enum {
        OPT_DEVICE = 256,
        OPT_CUSTOMER,
        OPT_DATA,
        OPT_INGEST,
        OPT_OUTBOX,
        OPT_FIRMWARE,
        OPT_CLICK,
        OPT_QUACK,
        OPT_LABEL,
        OPT_UNLABEL,
        OPT_SCENARIO,
        OPT_LOAD,
        OPT_RATE,
        OPT_COUNT,
        OPT_CUSTOMERS,
        OPT_SKEW,
        OPT_START_OFFLINE,
        OPT_UNTIL_SEQ,
        OPT_SYNC,
        OPT_WINDOW,
        OPT_STATE,
        OPT_VERBOSE,
        OPT_HELP,
        OPT_KEYS,
        OPT_AS
    };
    static struct option options [] = {
        { "device", required_argument, 0, OPT_DEVICE },
        { "customer", required_argument, 0, OPT_CUSTOMER },
        { "data", required_argument, 0, OPT_DATA },
        { "ingest", required_argument, 0, OPT_INGEST },
        { "outbox", required_argument, 0, OPT_OUTBOX },
        { "firmware", required_argument, 0, OPT_FIRMWARE },
        { "click", required_argument, 0, OPT_CLICK },
        { "quack", required_argument, 0, OPT_QUACK },
        { "label", required_argument, 0, OPT_LABEL },
        { "unlabel", required_argument, 0, OPT_UNLABEL },
        { "scenario", required_argument, 0, OPT_SCENARIO },
        { "load", no_argument, 0, OPT_LOAD },
        { "rate", required_argument, 0, OPT_RATE },
        { "count", required_argument, 0, OPT_COUNT },
        { "customers", required_argument, 0, OPT_CUSTOMERS },
        { "clock-skew-ms", required_argument, 0, OPT_SKEW },
        { "start-offline", required_argument, 0, OPT_START_OFFLINE },
        { "offline-until-seq", required_argument, 0, OPT_UNTIL_SEQ },
        { "sync-timeout", required_argument, 0, OPT_SYNC },
        { "window", required_argument, 0, OPT_WINDOW },
        { "state", no_argument, 0, OPT_STATE },
        { "keys", required_argument, 0, OPT_KEYS },
        { "as", required_argument, 0, OPT_AS },
        { "verbose", no_argument, 0, OPT_VERBOSE },
        { "help", no_argument, 0, OPT_HELP },
        { 0, 0, 0, 0 }
    };
    char err [POND_ERR_SIZE];
    bool actions = false;
    int opt;
    opterr = 0;
    while ((opt = getopt_long (argc, argv, "", options, NULL)) != -1) {
        long long whole;
        double number;
        switch (opt) {
            case OPT_DEVICE: args->config.device = optarg; break;
            case OPT_CUSTOMER: args->config.customer = optarg; break;
            case OPT_DATA: args->data_dir = optarg; break;
            case OPT_INGEST: args->config.ingest = optarg; break;
            case OPT_OUTBOX: args->outbox = optarg; break;
            case OPT_FIRMWARE:
                if (!*optarg || strlen (optarg) > 32)
                    return s_usage_error ("--firmware must be 1 to 32 characters");
                args->config.firmware = optarg;
                break;
            case OPT_CLICK:
            case OPT_QUACK:
                if (pond_scenario_whole (optarg, 1, POND_SCENARIO_REPEAT_MAX, &whole))
                    return s_usage_error ("--%s needs a count 1..%d, got '%s'",
                                          opt == OPT_CLICK ? "click" : "quack",
                                          POND_SCENARIO_REPEAT_MAX, optarg);
                if (pond_scenario_add_repeat (scenario, opt == OPT_CLICK ? "click" : "quack",
                                              (uint64_t) whole, err, sizeof err))
                    return s_usage_error ("%s", err);
                actions = true;
                break;
            case OPT_LABEL: {
                const char *equals = strchr (optarg, '=');
                if (!equals || equals == optarg || !equals [1])
                    return s_usage_error ("--label needs CONTAINER=LABEL (--label c1=milk), "
                                          "got '%s'",
                                          optarg);
                char line [1024];
                snprintf (line, sizeof line, "label %.*s %s", (int) (equals - optarg), optarg,
                          equals + 1);
                if (strchr (optarg, ' ') && strchr (optarg, ' ') < equals)
                    return s_usage_error ("--label: the container must not contain spaces, "
                                          "got '%.*s'",
                                          (int) (equals - optarg), optarg);
                if (pond_scenario_add (scenario, line, err, sizeof err))
                    return s_usage_error ("--label %s: %s", optarg, err);
                actions = true;
                break;
            }
            case OPT_UNLABEL: {
                char line [1024];
                snprintf (line, sizeof line, "unlabel %s", optarg);
                if (!*optarg || pond_scenario_add (scenario, line, err, sizeof err))
                    return s_usage_error ("--unlabel needs one CONTAINER (--unlabel c1), "
                                          "got '%s'",
                                          optarg);
                actions = true;
                break;
            }
            case OPT_SCENARIO:
                if (args->scenario)
                    return s_usage_error ("--scenario given twice");
                args->scenario = optarg;
                break;
            case OPT_LOAD: args->load = true; break;
            case OPT_RATE: {
                char rate [64];
                snprintf (rate, sizeof rate, "%s", optarg);
                size_t len = strlen (rate);
                if (len > 2 && streq (rate + len - 2, "/s"))
                    rate [len - 2] = 0;
                if (pond_scenario_number (rate, 0, 10000000, &number))
                    return s_usage_error ("--rate needs events per second 0..10000000 "
                                          "(--rate 500/s), got '%s'",
                                          optarg);
                args->rate = number;
                args->load_flags = true;
                break;
            }
            case OPT_COUNT:
                if (pond_scenario_whole (optarg, 1, 1000000000LL, &whole))
                    return s_usage_error ("--count needs a number 1..1000000000, got '%s'", optarg);
                args->count = (uint64_t) whole;
                args->load_flags = true;
                break;
            case OPT_CUSTOMERS:
                if (pond_scenario_whole (optarg, 1, 1000000, &whole))
                    return s_usage_error ("--customers needs a number 1..1000000, got '%s'",
                                          optarg);
                args->customers = (int) whole;
                args->load_flags = true;
                break;
            case OPT_SKEW:
                //  Ten years either way is plenty to simulate a wrong clock
                if (pond_scenario_whole (optarg, -315360000000LL, 315360000000LL, &whole))
                    return s_usage_error ("--clock-skew-ms needs milliseconds within ten "
                                          "years either way, got '%s'",
                                          optarg);
                args->config.clock_skew_ms = whole;
                break;
            case OPT_START_OFFLINE:
                if (pond_scenario_number (optarg, 0, 86400, &number))
                    return s_usage_error ("--start-offline needs seconds 0..86400, got '%s'",
                                          optarg);
                args->config.start_offline_ms = (int) (number * 1000);
                args->start_offline = true;
                break;
            case OPT_UNTIL_SEQ:
                if (pond_scenario_whole (optarg, 1, 1000000000000LL, &whole))
                    return s_usage_error ("--offline-until-seq needs a local seq >= 1, got '%s'",
                                          optarg);
                args->config.offline_until_seq = (uint64_t) whole;
                break;
            case OPT_SYNC:
                if (pond_scenario_number (optarg, 0, 86400, &number))
                    return s_usage_error ("--sync-timeout needs seconds 0..86400, got '%s'",
                                          optarg);
                args->sync_timeout = number;
                break;
            case OPT_WINDOW:
                if (pond_scenario_whole (optarg, 1, POND_DEVICE_WINDOW_MAX, &whole))
                    return s_usage_error ("--window needs a number 1..%d, got '%s'",
                                          POND_DEVICE_WINDOW_MAX, optarg);
                args->config.window = (int) whole;
                break;
            case OPT_STATE: args->state = true; break;
            case OPT_KEYS: args->keys = optarg; break;
            case OPT_AS: args->as = optarg; break;
            case OPT_VERBOSE: args->config.verbose = true; break;
            case OPT_HELP: s_usage (stdout); return 3;
            default:
                if (optopt >= OPT_DEVICE)
                    return s_usage_error ("%s needs a value", argv [optind - 1]);
                return s_usage_error ("unknown option '%s'", argv [optind - 1]);
        }
    }
    if (optind < argc)
        return s_usage_error ("unexpected argument '%s'", argv [optind]);
    if (!args->config.device)
        return s_usage_error ("--device ID is required");
    if (s_check_id ("--device", args->config.device, true))
        return 2;
    if (args->config.customer && s_check_id ("--customer", args->config.customer, false))
        return 2;
    if (args->scenario && actions)
        return s_usage_error ("give either --scenario or action flags, not both");
    if (args->load && (args->scenario || actions))
        return s_usage_error ("--load creates its own events: no --scenario or actions with it");
    if (args->load_flags && !args->load)
        return s_usage_error ("--rate, --count and --customers go with --load");
    if (args->state && (args->scenario || actions || args->load))
        return s_usage_error ("--state only prints the state: no actions with it");
    if (args->start_offline && args->config.offline_until_seq)
        return s_usage_error ("give either --start-offline or --offline-until-seq");
    if (args->scenario && pond_scenario_load (scenario, args->scenario, err, sizeof err))
        return s_usage_error ("%s", err);
    if ((args->scenario || actions) && !args->config.customer)
        return s_usage_error ("--customer ID is required with actions");
    if (args->as && !args->keys)
        return s_usage_error ("--as names a key of --keys DIR: give both");
    return 0;
}

int
main (int argc, char *argv [])
{
    args_t args = { .count = 1000,
                    .customers = 1,
                    .sync_timeout = 30,
                    .data_dir = getenv ("POND_DATA") && *getenv ("POND_DATA") ? getenv ("POND_DATA")
                                                                              : "./pond-data" };
    pond_scenario_t *scenario = pond_scenario_new ();
    if (!scenario)
        return 1;
    int rc = s_parse (argc, argv, &args, scenario);
    if (rc) {
        pond_scenario_destroy (&scenario);
        return rc == 3 ? 0 : rc;
    }
    zsys_init ();
    zsys_set_logstream (stderr);
    zsys_set_logident ("pond-device");
    char err [512];
    if (args.keys && !args.state
        && pond_keys_use (args.keys, args.as ? args.as : args.config.device, err, sizeof err)) {
        fprintf (stderr, "pond-device: --keys %s: %s\n", args.keys, err);
        pond_scenario_destroy (&scenario);
        return 1;
    }

    //  The outbox: DIR/devices/ID unless given
    char outbox [1024];
    if (args.outbox)
        snprintf (outbox, sizeof outbox, "%s", args.outbox);
    else
        snprintf (outbox, sizeof outbox, "%s/devices/%s", args.data_dir, args.config.device);
    if (args.state) {
        //  Read-only: works while the device runs; creates nothing
        char current [1100];
        snprintf (current, sizeof current, "%s/CURRENT", outbox);
        if (!zsys_file_exists (current)) {
            fprintf (stderr,
                     "pond-device: no outbox at %s: device %s has not run here yet "
                     "(check --data or --outbox)\n",
                     outbox, args.config.device);
            pond_scenario_destroy (&scenario);
            return 1;
        }
        args.config.read_only = true;
    }
    char parent [1024];
    snprintf (parent, sizeof parent, "%s", outbox);
    if (!args.state && s_mkdir_p (dirname (parent))) {
        fprintf (stderr, "pond-device: cannot create the directory of the outbox %s: %s\n", outbox,
                 strerror (errno));
        pond_scenario_destroy (&scenario);
        return 1;
    }
    args.config.outbox = outbox;
    args.config.data_dir = args.data_dir;
    pond_device_t *device = pond_device_new (&args.config);
    if (!device) {
        fprintf (stderr,
                 "pond-device: cannot open the outbox %s (see above); if another "
                 "pond-device runs with --device %s, wait for it or stop it\n",
                 outbox, args.config.device);
        pond_scenario_destroy (&scenario);
        return 1;
    }
    if (args.state) {
        char *state = pond_device_state_json (device);
        if (state)
            printf ("%s\n", state);
        rc = state ? 0 : 1;
        free (state);
        pond_device_destroy (&device);
        pond_scenario_destroy (&scenario);
        return rc;
    }
    uint64_t earlier = pond_device_queued (device);
    if (earlier)
        zsys_info ("pond-device: %llu events queued by an earlier run go first",
                   (unsigned long long) earlier);

    //  Produce, then sync
    int64_t started = zclock_mono ();
    int failed = 0;
    if (args.load)
        failed = pond_device_load (device, args.count, args.rate, args.customers);
    else
        failed = pond_scenario_run (scenario, device);
    int64_t produced = zclock_mono ();
    bool interrupted = zsys_interrupted != 0;
    if (!interrupted && failed == 0)
        pond_device_sync (device, (int) (args.sync_timeout * 1000));
    interrupted = zsys_interrupted != 0;
    int64_t finished = zclock_mono ();

    char extra [512] = "";
    if (args.load) {
        double seconds = (double) (finished - started) / 1000.0;
        double creating = (double) (produced - started) / 1000.0;
        snprintf (extra, sizeof extra,
                  "{\"load\":{\"count\":%llu,\"customers\":%d,\"rate\":%.0f,"
                  "\"seconds\":%.3f,\"created_per_s\":%.0f,\"events_per_s\":%.0f}}",
                  (unsigned long long) args.count, args.customers, args.rate, seconds,
                  creating > 0 ? (double) pond_device_created (device) / creating : 0,
                  seconds > 0 ? (double) pond_device_sent (device) / seconds : 0);
    }
    char *summary = pond_device_summary_json (device, *extra ? extra : NULL);
    if (summary)
        printf ("%s\n", summary);
    fflush (stdout);
    free (summary);

    uint64_t queued = pond_device_queued (device);
    if (failed && !interrupted) {
        fprintf (stderr,
                 "pond-device: an action could not be written to the outbox %s "
                 "(see above); %llu events are queued and will be sent at the next start\n",
                 outbox, (unsigned long long) queued);
        rc = 1;
    }
    else if (interrupted) {
        if (queued)
            fprintf (stderr,
                     "pond-device: stopped; %llu events stay queued in %s and will "
                     "be sent at the next start\n",
                     (unsigned long long) queued, outbox);
        rc = 0;
    }
    else if (queued) {
        const char *reason = pond_device_network_reason (device);
        fprintf (stderr,
                 "pond-device: %llu events still queued in %s (%s); they will be "
                 "sent at the next start of pond-device --device %s\n",
                 (unsigned long long) queued, outbox,
                 *reason ? reason : "the broker did not ACK them in time", args.config.device);
        rc = 1;
    }
    else if (pond_device_rejected (device)) {
        fprintf (stderr,
                 "pond-device: the broker refused %llu events for good (reasons "
                 "above); they are set aside in %s and never sent again: fix the device's "
                 "key or data (see pond-device --device %s --state)\n",
                 (unsigned long long) pond_device_rejected (device), outbox, args.config.device);
        rc = 1;
    }
    pond_device_destroy (&device);
    pond_scenario_destroy (&scenario);
    pond_keys_reset ();
    return rc;
}
