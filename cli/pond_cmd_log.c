/*  pond_cmd_log: the commands that write and read the log.

    publish  one event (or one per JSON line on stdin), printed once stored
    tail     live events from the pub socket
    replay   stored events from the control socket, in order
    stats    the counters of broker and store

    Results go to stdout as JSON (one object per line); errors and hints to
    stderr. All protocol work is done by client/pond_client.
*/
#include "pond_cli.h"
#include "pond_mesh.h"
#include "pond_actor_link.h"
#include "pond_event_json.h"
#include "pond_time.h"
#include "pond_uuid.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

//  Hints after a failed publish, by code
static void
s_hint_publish (pond_cli_t *cli, int code, const pond_event_t *event)
{
    if (code == POND_CODE_TIMEOUT) {
        pond_cli_hint_broker (cli);
        if (event) {
            //  The same event: same id and same ts (another ts is another
            //  event, which that id would get 409 for)
            char text [POND_UUID_STR_SIZE];
            pond_uuid_format (pond_event_id (event), text);
            fprintf (stderr,
                     "hint: publishing it again with --id %s --ts %llu is safe "
                     "(an id is stored at most once)\n",
                     text, (unsigned long long) pond_event_ts (event));
        }
    }
    else if (code == POND_CODE_UNAVAILABLE)
        fprintf (stderr,
                 "hint: the broker cannot store events now; is pond-store running? "
                 "start it with: pond-store --data %s\n",
                 cli->eps.data_dir);
    else if (code == POND_CODE_STORE_ERROR)
        fprintf (stderr, "hint: the store could not write (disk full?); see its log\n");
    else if (code == POND_CODE_CONFLICT)
        fprintf (stderr, "hint: --id names another event already stored; leave --id out "
                         "(a fresh one is made) or resend that event exactly\n");
    else if (code == POND_CODE_TOO_LARGE)
        fprintf (stderr, "hint: an event is at most %d bytes encoded; make --data smaller\n",
                 POND_PUBLISH_MAX_SIZE);
}

//  =====================================================================
//  pond publish --name NAME --entity ID [--payload JSON] [--meta JSON]
//               [--source S] [--ts TIME] [--id UUID] [--causation UUID]
//  pond publish --stdin

void
pond_cmd_publish_help (FILE *out)
{
    fprintf (out,
             "Usage: pond publish --name NAME --entity ID [--payload JSON] [--meta JSON]\n"
             "                    [--source S] [--ts TIME] [--id UUID] [--causation UUID]\n"
             "       pond publish --stdin\n"
             "\n"
             "Publish an event and wait until the store has it (ACK), then print\n"
             "{\"id\":\"...\",\"seq\":N,\"dup\":false} on one line. Publishing the same\n"
             "event again (same --id, --ts, --name, --entity, --source, --payload) is\n"
             "harmless: the ACK says \"dup\":true with the original seq. An --id already\n"
             "stored for a different event is refused: \"refused (409)\", exit status 1.\n"
             "\n"
             "  --name NAME       event name, [A-Z][A-Z0-9_]*, like QUACKED\n"
             "  --entity ID       the customer the event belongs to\n"
             "  --payload JSON    the event's data, a JSON object\n"
             "  --meta JSON       enrichment, a JSON object\n"
             "  --source S        device or actor that produced it\n"
             "  --ts TIME         event time: 2022-01-01, 2022-01-01T10:30:00[.123456][Z]\n"
             "                    or microseconds since the epoch (default: now)\n"
             "  --id UUID         event id (default: a new UUIDv7)\n"
             "  --causation UUID  id of the event or command that caused this one\n"
             "  --stdin           read events from stdin, one JSON object per line with\n"
             "                    keys name, entity and optional data (the payload),\n"
             "                    meta, source, ts,\n"
             "                    id, causation (seq and time, as printed by tail and\n"
             "                    replay, are ignored); print one line per event; stop at\n"
             "                    the first failure and say which line\n"
             "  --seq-only        print only the seq (for a script to pass on, e.g. to\n"
             "                    pond query VIEW ENTITY --after SEQ)\n"
             "  --wait VIEW[,VIEW]  once stored, wait until each view (quacks, badges,\n"
             "                    alexa, mobile) has applied it, within --timeout: a\n"
             "                    query right after then sees it. Exit 1 naming the view\n"
             "                    that is not there yet\n"
             "\n"
             "Examples:\n"
             "  pond publish --name QUACKED --entity cust-1 --payload '{\"loudness_db\":61}' \\\n"
             "      --wait quacks,badges\n"
             "  SEQ=$(pond publish --name LABEL_ADDED --entity cust-1 \\\n"
             "      --payload '{\"container\":\"c1\",\"label\":\"milk\"}' --seq-only)\n"
             "  pond query alexa cust-1 \"do I have milk?\" --text --after $SEQ\n"
             "\n" POND_CLI_COMMON_HELP);
}

//  Publish one event; print its ACK line or say why not. where prefixes
//  the message ("" or "line N: "). Returns an exit code.
typedef struct {
    bool seq_only;                        //  --seq-only
    const char *wait;                     //  --wait VIEW[,VIEW]
    uint64_t last_seq;                    //  the newest seq an ACK gave
    char entity [POND_ENTITY_MAX + 1];    //  ... and its event's entity
} publish_options_t;

static int
s_publish_one (pond_cli_t *cli, pond_client_t *client, const pond_event_t *event, const char *where,
               publish_options_t *options)
{
    pond_ack_t ack;
    if (pond_client_publish (client, event, &ack) == 0) {
        char id [POND_UUID_STR_SIZE];
        pond_uuid_format (ack.id, id);
        if (options->seq_only)
            printf ("%llu\n", (unsigned long long) ack.seq);
        else
            printf ("{\"id\":\"%s\",\"seq\":%llu,\"dup\":%s}\n", id, (unsigned long long) ack.seq,
                    ack.dup ? "true" : "false");
        fflush (stdout);
        if (ack.seq >= options->last_seq) {
            options->last_seq = ack.seq;
            snprintf (options->entity, sizeof options->entity, "%s", pond_event_entity (event));
        }
        return POND_EXIT_OK;
    }
    int code = pond_client_code (client);
    if (code == POND_CODE_TIMEOUT || code == POND_CODE_INTERRUPTED)
        pond_cli_fail (cli, "%s%s", where, pond_client_reason (client));
    else
        pond_cli_fail (cli, "%srefused (%d): %s", where, code, pond_client_reason (client));
    s_hint_publish (cli, code, code == POND_CODE_TIMEOUT ? event : NULL);
    return POND_EXIT_FAILURE;
}

//  Publish one event per line of stdin, in order; stop at the first failure.
//  --wait: each view has applied options->last_seq (a QUERY with 'after'
//  about the event's entity: an answer or a 404 both say it has). Returns
//  an exit code.
static int
s_publish_wait (pond_cli_t *cli, publish_options_t *options)
{
    char views [256];
    snprintf (views, sizeof views, "%s", options->wait);
    int64_t deadline = zclock_mono () + cli->timeout_ms;
    for (char *save = NULL, *view = strtok_r (views, ",", &save); view;
         view = strtok_r (NULL, ",", &save)) {
        const char *name = pond_mesh_actor_name (view);
        char err [512];
        pond_actor_link_t *link = name
                                    ? pond_actor_link_new (cli->eps.data_dir, name, err, sizeof err)
                                    : NULL;
        if (!link)
            return pond_cli_fail (cli, "--wait %s: %s; the event is stored (seq %llu)", view,
                                  name ? err : "no such view",
                                  (unsigned long long) options->last_seq);
        int64_t left = deadline - zclock_mono ();
        char *result = pond_actor_link_query_after (link, options->entity, NULL, options->last_seq,
                                                    left > 1 ? (int) left : 1);
        int code = pond_actor_link_code (link);
        if (!result && code != POND_CODE_NOT_FOUND) {
            pond_cli_fail (cli,
                           "the event is stored (seq %llu) but %s has not applied it "
                           "within --timeout: %s",
                           (unsigned long long) options->last_seq, name,
                           pond_actor_link_reason (link));
            pond_actor_link_destroy (&link);
            return POND_EXIT_FAILURE;
        }
        free (result);
        pond_actor_link_destroy (&link);
    }
    return POND_EXIT_OK;
}

static int
s_publish_stdin (pond_cli_t *cli, pond_client_t *client, publish_options_t *options)
{
    char *line = NULL;
    size_t capacity = 0;
    ssize_t length;
    int rc = POND_EXIT_OK;
    for (size_t number = 1; rc == POND_EXIT_OK && (length = getline (&line, &capacity, stdin)) >= 0;
         number++) {
        while (length > 0 && (line [length - 1] == '\n' || line [length - 1] == '\r'))
            line [--length] = 0;
        if (strspn (line, " \t") == (size_t) length)
            continue;    //  Blank lines are allowed
        char where [48];
        snprintf (where, sizeof where, "line %zu: ", number);
        char err [POND_ERR_SIZE];
        pond_event_t *event = pond_event_from_json_text (line, err, sizeof err);
        if (!event)
            rc = pond_cli_fail (cli, "%s%s", where, err);
        else
            rc = s_publish_one (cli, client, event, where, options);
        pond_event_destroy (&event);
    }
    free (line);
    return rc;
}

int
pond_cmd_publish (int argc, char *argv [])
{
    pond_cli_t cli;
    pond_cli_init (&cli, "publish", pond_cmd_publish_help);
    static const struct option options [] = { POND_CLI_COMMON_OPTIONS,
                                              POND_CLI_DATA_OPTION,
                                              { "name", required_argument, NULL, 'n' },
                                              { "entity", required_argument, NULL, 'e' },
                                              { "payload", required_argument, NULL, 'd' },
                                              { "meta", required_argument, NULL, 'm' },
                                              { "source", required_argument, NULL, 's' },
                                              { "ts", required_argument, NULL, 't' },
                                              { "id", required_argument, NULL, 'i' },
                                              { "causation", required_argument, NULL, 'c' },
                                              { "stdin", no_argument, NULL, 'S' },
                                              { "seq-only", no_argument, NULL, 'q' },
                                              { "wait", required_argument, NULL, 'w' },
                                              { NULL, 0, NULL, 0 } };
    pond_event_args_t args = { 0 };
    publish_options_t settings = { 0 };
    bool from_stdin = false;
    int opt;
    while ((opt = pond_cli_getopt (&cli, argc, argv, options)) != -1)
        switch (opt) {
            case 'n': args.name = optarg; break;
            case 'e': args.entity = optarg; break;
            case 'd': args.data = optarg; break;
            case 'm': args.meta = optarg; break;
            case 's': args.source = optarg; break;
            case 't': args.ts = optarg; break;
            case 'i': args.id = optarg; break;
            case 'c': args.causation = optarg; break;
            case 'S': from_stdin = true; break;
            case 'q': settings.seq_only = true; break;
            case 'w': settings.wait = optarg; break;
        }
    if (cli.done)
        return cli.exit_code;

    pond_event_t *event = NULL;
    if (from_stdin) {
        if (args.name || args.entity || args.data || args.meta || args.source || args.ts || args.id
            || args.causation)
            return pond_cli_usage (&cli, "--stdin takes every event from stdin: "
                                         "give no --name, --entity, ... with it");
    }
    else {
        if (!args.name)
            return pond_cli_usage (&cli, "--name NAME is required (like --name QUACKED)");
        if (!args.entity)
            return pond_cli_usage (&cli, "--entity ID is required (like --entity cust-1)");
        if (args.data && args.data [strspn (args.data, " \t\r\n")] != '{')
            return pond_cli_usage (&cli, "--payload takes the event's data as a JSON object "
                                         "(like --payload '{\"loudness\":3}')");
        char err [POND_ERR_SIZE];
        event = pond_event_from_args (&args, err, sizeof err);
        if (!event)
            return pond_cli_usage (&cli, "invalid event: %s", err);
    }
    pond_client_t *client = pond_client_new (cli.eps.ingest);
    if (!client) {
        pond_event_destroy (&event);
        return pond_cli_usage (&cli, "cannot use ingest endpoint '%s'", cli.eps.ingest);
    }
    //  --timeout bounds the whole publish: three attempts share it
    int attempts = 3;
    pond_client_set_timeout (client, cli.timeout_ms / attempts > 0 ? cli.timeout_ms / attempts : 1,
                             attempts);
    pond_client_set_verbose (client, cli.verbose);
    if (settings.wait) {
        char views [256];
        snprintf (views, sizeof views, "%s", settings.wait);
        for (char *save = NULL, *view = strtok_r (views, ",", &save); view;
             view = strtok_r (NULL, ",", &save))
            if (!pond_mesh_actor_name (view)) {
                pond_client_destroy (&client);
                pond_event_destroy (&event);
                return pond_cli_usage (&cli,
                                       "--wait: unknown view '%s' (quacks, badges, "
                                       "alexa, mobile, or their actors' names)",
                                       view);
            }
    }
    int rc = from_stdin ? s_publish_stdin (&cli, client, &settings)
                        : s_publish_one (&cli, client, event, "", &settings);
    if (rc == POND_EXIT_OK && settings.wait && settings.last_seq)
        rc = s_publish_wait (&cli, &settings);
    pond_client_destroy (&client);
    pond_event_destroy (&event);
    return rc;
}

//  =====================================================================
//  pond tail [--names A,B] [--count N] [--seconds S]

#define TAIL_NAMES_MAX 64

void
pond_cmd_tail_help (FILE *out)
{
    fprintf (out, "Usage: pond tail [--names A,B] [--count N] [--seconds S]\n"
                  "\n"
                  "Print live events as JSON lines, as the broker publishes them, until N\n"
                  "events, S seconds, or Ctrl-C (SIGINT/SIGTERM end it with status 0).\n"
                  "Live delivery is at most once; the log is read with pond replay.\n"
                  "\n"
                  "  --names A,B       only events with exactly these names (default: all)\n"
                  "  --count N         stop after N events\n"
                  "  --seconds S       stop after S seconds\n"
                  "Once subscribed it says \"pond tail: live at head N\" on stderr: every\n"
                  "event published from then on is printed (a script may wait for it).\n"
                  "Fails (exit 1) if no broker answers within --timeout at the start, or\n"
                  "when the broker stops answering later (pond down): a tail in the\n"
                  "background never outlives its mesh.\n"
                  "\n" POND_CLI_COMMON_HELP);
}

int
pond_cmd_tail (int argc, char *argv [])
{
    pond_cli_t cli;
    pond_cli_init (&cli, "tail", pond_cmd_tail_help);
    static const struct option options [] = { POND_CLI_COMMON_OPTIONS,
                                              POND_CLI_DATA_OPTION,
                                              { "names", required_argument, NULL, 'n' },
                                              { "count", required_argument, NULL, 'c' },
                                              { "seconds", required_argument, NULL, 's' },
                                              { NULL, 0, NULL, 0 } };
    char names [TAIL_NAMES_MAX][POND_NAME_MAX + 1];
    int count = 0;
    uint64_t limit = 0;
    double seconds = 0;
    int opt;
    while ((opt = pond_cli_getopt (&cli, argc, argv, options)) != -1)
        switch (opt) {
            case 'n': count = pond_cli_parse_names (&cli, optarg, names, TAIL_NAMES_MAX); break;
            case 'c':
                if (pond_cli_parse_uint (optarg, &limit) || limit == 0)
                    pond_cli_usage (&cli, "--count takes a number of events, not '%s'", optarg);
                break;
            case 's': {
                char *end;
                seconds = strtod (optarg, &end);
                if (*end || !(seconds > 0 && seconds < 1e9))
                    pond_cli_usage (&cli, "--seconds takes a positive number, not '%s'", optarg);
                break;
            }
        }
    if (cli.done)
        return cli.exit_code;

    //  A broker must answer now, and later whenever it falls silent:
    //  tail never waits on a mesh that is gone
    pond_client_t *probe = pond_client_new (cli.eps.ingest);
    if (!probe)
        return pond_cli_usage (&cli, "cannot use ingest endpoint '%s'", cli.eps.ingest);
    int first_wait = cli.timeout_ms;
    if (seconds > 0 && seconds * 1000 < first_wait)
        first_wait = (int) (seconds * 1000) + 1;
    pond_client_set_timeout (probe, first_wait, 1);
    if (pond_client_ping (probe, first_wait)) {
        pond_client_destroy (&probe);
        if (zsys_interrupted)
            return POND_EXIT_OK;
        pond_cli_fail (&cli, "no broker answers at %s within %d ms", cli.eps.ingest, first_wait);
        pond_cli_hint_broker (&cli);
        return POND_EXIT_FAILURE;
    }
    const char *pointers [TAIL_NAMES_MAX];
    for (int i = 0; i < count; i++)
        pointers [i] = names [i];
    pond_sub_t *sub = pond_sub_new (cli.eps.pub, pointers, (size_t) count);
    if (!sub)
        return pond_cli_usage (&cli, "cannot use pub endpoint '%s'", cli.eps.pub);

    int64_t start = zclock_mono ();
    int64_t end = seconds > 0 ? start + (int64_t) (seconds * 1000) : -1;
    int64_t last_heard = start;
    uint64_t heard = 0;    //  events and heartbeats so far
    uint64_t printed = 0;
    bool warned = false;
    bool live = false;
    int rc = POND_EXIT_OK;
    while (!zsys_interrupted && (limit == 0 || printed < limit)) {
        int64_t now = zclock_mono ();
        if (end >= 0 && now >= end)
            break;
        int slice = 200;
        if (end >= 0 && end - now < slice)
            slice = (int) (end - now);
        pond_event_t *event = pond_sub_recv (sub, slice);
        if (event) {
            char *json = pond_event_to_json (event);
            if (json) {
                printf ("%s\n", json);
                fflush (stdout);
                free (json);
            }
            pond_event_destroy (&event);
            printed++;
        }
        now = zclock_mono ();
        if (!live && pond_sub_heartbeats (sub)) {
            //  The broker sends a heartbeat to each new subscriber: from
            //  here on every event published reaches this tail
            live = true;
            fprintf (stderr, "pond tail: live at head %llu\n",
                     (unsigned long long) pond_sub_head (sub));
        }
        uint64_t total = printed + pond_sub_heartbeats (sub) + pond_sub_dropped (sub);
        if (total != heard) {
            heard = total;
            last_heard = now;
            warned = false;
        }
        else if (now - last_heard >= cli.timeout_ms) {
            //  Heartbeats come every second: silence means the broker is
            //  gone (pond down) or cannot reach us; ask it once
            if (pond_client_ping (probe, cli.timeout_ms)) {
                if (zsys_interrupted)
                    break;
                rc = pond_cli_fail (&cli, "the broker at %s stopped answering", cli.eps.ingest);
                pond_cli_hint_broker (&cli);
                break;
            }
            if (!warned)
                fprintf (stderr,
                         "pond tail: nothing on %s for %d ms although the broker "
                         "answers; waiting\n",
                         cli.eps.pub, cli.timeout_ms);
            warned = true;
            last_heard = zclock_mono ();    //  ask again after the next silence
        }
    }
    if (pond_sub_dropped (sub))
        fprintf (stderr, "pond tail: dropped %llu malformed messages\n",
                 (unsigned long long) pond_sub_dropped (sub));
    pond_sub_destroy (&sub);
    pond_client_destroy (&probe);
    return rc;
}

//  =====================================================================
//  pond replay --names A,B [--from TIME] [--to TIME] [--limit N]
//  pond replay --entity ID [--limit N]
//  pond replay [--from-seq N] [--to-seq N] [--limit N]

void
pond_cmd_replay_help (FILE *out)
{
    fprintf (out,
             "Usage: pond replay --names A,B [--from TIME] [--to TIME] [--limit N]\n"
             "       pond replay --entity ID [--limit N]\n"
             "       pond replay [--from-seq N] [--to-seq N] [--limit N]\n"
             "\n"
             "Print stored events as JSON lines, in order, then \"replayed N events\"\n"
             "on stderr once the replay is complete (a failed one says so instead,\n"
             "with how many events came before). The replay sees the log as it was\n"
             "when it started.\n"
             "\n"
             "  --names A,B       events with these names (up to %d), ordered by event\n"
             "                    time, then seq\n"
             "  --from TIME       event time from TIME, inclusive (with --names); TIME\n"
             "                    is 2022-01-01, 2022-01-01T10:30:00Z or microseconds\n"
             "  --to TIME         event time up to TIME, exclusive (with --names)\n"
             "  --entity ID       every event of this entity, ordered by seq\n"
             "  --from-seq N      the log from seq N, inclusive (default: the start)\n"
             "  --to-seq N        the log up to seq N, exclusive (default: the head)\n"
             "  --limit N         at most N events\n"
             "--timeout is how long to wait for each reply. Exit 1 if the replay did\n"
             "not complete.\n"
             "\n" POND_CLI_COMMON_HELP,
             POND_REPLAY_MAX_NAMES);
}

int
pond_cmd_replay (int argc, char *argv [])
{
    pond_cli_t cli;
    pond_cli_init (&cli, "replay", pond_cmd_replay_help);
    static const struct option options [] = { POND_CLI_COMMON_OPTIONS,
                                              POND_CLI_DATA_OPTION,
                                              { "names", required_argument, NULL, 'n' },
                                              { "from", required_argument, NULL, 'f' },
                                              { "to", required_argument, NULL, 't' },
                                              { "entity", required_argument, NULL, 'e' },
                                              { "from-seq", required_argument, NULL, 'F' },
                                              { "to-seq", required_argument, NULL, 'T' },
                                              { "limit", required_argument, NULL, 'l' },
                                              { NULL, 0, NULL, 0 } };
    pond_replay_req_t req = { 0 };
    bool by_time = false, by_seq = false;
    int opt;
    while ((opt = pond_cli_getopt (&cli, argc, argv, options)) != -1)
        switch (opt) {
            case 'n': {
                int count = pond_cli_parse_names (&cli, optarg, req.names, POND_REPLAY_MAX_NAMES);
                req.names_count = count > 0 ? (size_t) count : 0;
                break;
            }
            case 'f':
            case 't':
                if (pond_time_parse (optarg, opt == 'f' ? &req.from_ts : &req.to_ts))
                    pond_cli_usage (&cli,
                                    "--%s takes a time (2022-01-01, "
                                    "2022-01-01T10:30:00Z or microseconds), not '%s'",
                                    opt == 'f' ? "from" : "to", optarg);
                by_time = true;
                break;
            case 'e':
                if (!*optarg || strlen (optarg) > POND_ENTITY_MAX)
                    pond_cli_usage (&cli, "--entity takes 1 to %d bytes", POND_ENTITY_MAX);
                else
                    strcpy (req.entity, optarg);
                break;
            case 'F':
            case 'T':
                if (pond_cli_parse_uint (optarg, opt == 'F' ? &req.from_seq : &req.to_seq))
                    pond_cli_usage (&cli, "--%s takes a seq number, not '%s'",
                                    opt == 'F' ? "from-seq" : "to-seq", optarg);
                by_seq = true;
                break;
            case 'l':
                if (pond_cli_parse_uint (optarg, &req.limit) || req.limit == 0)
                    pond_cli_usage (&cli, "--limit takes a number of events, not '%s'", optarg);
                break;
        }
    if (cli.done)
        return cli.exit_code;
    if (req.names_count && *req.entity)
        return pond_cli_usage (&cli, "give --names or --entity, not both");
    if (by_time && !req.names_count)
        return pond_cli_usage (&cli, "--from and --to (event time) go with --names; "
                                     "the log is read by seq with --from-seq and --to-seq");
    if (by_seq && (req.names_count || *req.entity))
        return pond_cli_usage (&cli, "--from-seq and --to-seq read the whole log; "
                                     "they do not go with --names or --entity");
    if (req.to_ts && req.to_ts <= req.from_ts)
        return pond_cli_usage (&cli, "--to must be after --from");
    if (req.to_seq && req.to_seq <= req.from_seq)
        return pond_cli_usage (&cli, "--to-seq must be after --from-seq");

    pond_reader_tune_malloc ();    //  this process is a bulk reader
    pond_reader_t *replay = pond_reader_new (cli.eps.control, &req);
    if (!replay)
        return pond_cli_usage (&cli, "cannot use control endpoint '%s'", cli.eps.control);
    pond_event_t *event;
    while ((event = pond_reader_next (replay, cli.timeout_ms))) {
        char *json = pond_event_to_json (event);
        if (json) {
            printf ("%s\n", json);
            free (json);
        }
        pond_event_destroy (&event);
    }
    fflush (stdout);
    int code = pond_reader_code (replay);
    int rc = POND_EXIT_OK;
    if (code == 0) {
        rc = pond_cli_fail (&cli, "no reply from the broker at %s within %d ms", cli.eps.control,
                            cli.timeout_ms);
        pond_cli_hint_broker (&cli);
    }
    else if (code != POND_CODE_OK)
        rc = pond_cli_fail (&cli, "replay failed (%d) after %llu events: %s", code,
                            (unsigned long long) pond_reader_count (replay),
                            pond_reader_reason (replay));
    if (rc == POND_EXIT_OK)
        fprintf (stderr, "replayed %llu events\n", (unsigned long long) pond_reader_count (replay));
    pond_reader_destroy (&replay);
    return rc;
}

//  =====================================================================
//  pond stats [--compact]

void
pond_cmd_stats_help (FILE *out)
{
    fprintf (out, "Usage: pond stats [--compact]\n"
                  "\n"
                  "Print the counters of the broker and of the store (see STATS in\n"
                  "proto/PROTOCOL.md) as JSON; \"store\" is absent when the store did not\n"
                  "answer the broker.\n"
                  "\n"
                  "  --compact         one line instead of indented JSON\n"
                  "\n" POND_CLI_COMMON_HELP);
}

int
pond_cmd_stats (int argc, char *argv [])
{
    pond_cli_t cli;
    pond_cli_init (&cli, "stats", pond_cmd_stats_help);
    static const struct option options [] = { POND_CLI_COMMON_OPTIONS,
                                              POND_CLI_DATA_OPTION,
                                              { "compact", no_argument, NULL, 'c' },
                                              { NULL, 0, NULL, 0 } };
    bool compact = false;
    int opt;
    while ((opt = pond_cli_getopt (&cli, argc, argv, options)) != -1)
        if (opt == 'c')
            compact = true;
    if (cli.done)
        return cli.exit_code;

    char err [POND_ERR_SIZE];
    char *json = pond_client_stats (cli.eps.control, cli.timeout_ms, err, sizeof err);
    if (!json) {
        pond_cli_fail (&cli, "%s", err);
        if (strncmp (err, "403 ", 4) == 0)
            fprintf (stderr,
                     "hint: the broker answers STATS for the admin key only: run "
                     "with --as admin (and --keys DIR, where DIR/secret has admin's key)\n");
        else if (strncmp (err, "no reply", 8) == 0 || strncmp (err, "cannot", 6) == 0)
            pond_cli_hint_broker (&cli);
        return POND_EXIT_FAILURE;
    }
    cJSON *tree = compact ? NULL : cJSON_Parse (json);
    char *pretty = tree ? cJSON_Print (tree) : NULL;
    printf ("%s\n", pretty ? pretty : json);
    free (pretty);
    cJSON_Delete (tree);
    free (json);
    return POND_EXIT_OK;
}
