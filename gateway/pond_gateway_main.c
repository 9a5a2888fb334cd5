/*  pond-gateway: HTTP/JSON at the edge of a pond mesh.
    Parses the command line, starts the server (pond_gateway), writes the
    URL it bound to DIR/gateway.zpl, serves until SIGINT/SIGTERM.
*/
#include "pond_gateway.h"
#include "pond_gateway_status.h"
#include "pond_client.h"
#include "pond_identity.h"
#include "pond_number.h"
#include "pond_pidlock.h"
#include "pond_ready.h"

#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

static void
s_usage (FILE *out)
{
    fprintf (out,
             "Usage: pond-gateway [OPTIONS]\n"
             "\n"
             "HTTP/JSON at the edge of a pond mesh, for apps, voice and monitoring. It\n"
             "speaks to the mesh through the same sockets as any client:\n"
             "\n"
             "  POST /v1/events               one event (JSON object) or an array of\n"
             "                                them, with ids made by the client: 201\n"
             "                                {\"id\",\"seq\",\"dup\":false} once durable,\n"
             "                                200 with \"dup\":true for a resend\n"
             "  GET  /v1/views/VIEW/ENTITY    a view's answer (quacks, badges, alexa,\n"
             "                                mobile); ?after=SEQ: one that includes SEQ\n"
             "  GET  /v1/alexa/ENTITY?q=TEXT  the Alexa view's spoken answer, as text\n"
             "  GET  /v1/events?names=A,B&from=TIME&to=TIME   stored events as NDJSON\n"
             "       /v1/events?entity=E      (one JSON line per event, as pond replay\n"
             "       /v1/events?from_seq=N&to_seq=M   prints them; &limit=N), read from\n"
             "                                the log at the pace the client reads\n"
             "  GET  /v1/stream?names=A,B&entity=E   live events as Server-Sent Events\n"
             "                                (id: seq); a reconnect with Last-Event-ID\n"
             "                                resumes from the log, no gap, no double\n"
             "  GET  /metrics                 pond stats and each actor's position and\n"
             "                                lag, in the Prometheus text format\n"
             "  GET  /v1/status               the same for people, as JSON: each process\n"
             "                                (position, head, restarts), the broker's\n"
             "                                rates, the latest events (?latest=N, 0..%d)\n"
             "  GET  /                        the status page: open it in a browser\n"
             "\n"
             "Keys mode (--keys): every request but GET / needs a bearer token issued by\n"
             "`pond keys token NAME` for an app, device or admin key, and is served as\n"
             "that key: the mesh applies its rules, as for a CURVE client (an app key\n"
             "reads and publishes only for its customers, the control socket is the\n"
             "admin's). No token, an unknown or revoked one: 401 with WWW-Authenticate;\n"
             "refused by the mesh: 403. Without --keys (local mode) no token is asked.\n"
             "\n"
             "Errors are JSON {\"code\",\"error\"}: 400 bad input, 401, 403, 404, 405, 409 id\n"
             "used for another event, 413 too large, 503 + Retry-After when the mesh\n"
             "cannot take it now.\n"
             "\n"
             "Options:\n"
             "  --data DIR            data directory of the mesh (default $POND_DATA or\n"
             "                        ./pond-data); the URL bound is written to\n"
             "                        DIR/gateway.zpl (gateway/url)\n"
             "  --listen ADDR:PORT    IPv4 address and port (default 127.0.0.1:0: any\n"
             "                        free port on loopback)\n"
             "  --max-body BYTES      larger request bodies get 413 (default %d)\n"
             "  --max-connections N   connections at once; more are closed (default %d)\n"
             "  --max-per-ip N        connections from one address (default: the same)\n"
             "  --timeout S           close a connection idle or slow for S seconds\n"
             "                        (default %d)\n"
             "  --max-streams N       NDJSON and SSE streams at once; more get 503\n"
             "                        (default %d)\n"
             "  --max-streams-per-ip N\n"
             "                        streams from one client address; more get 503, so\n"
             "                        one client cannot take them all (default %d)\n"
             "  --stream-queue BYTES  live events queued for one SSE client that reads\n"
             "                        slower than they come; past it the client is cut\n"
             "                        (its connection closed) and resumes with\n"
             "                        Last-Event-ID (default %d)\n"
             "  --heartbeat S         an SSE comment after S seconds without events, to\n"
             "                        keep proxies open (default %d); an SSE client\n"
             "                        that takes nothing for 2*S+1 s is closed\n"
             "  --ingest EP, --pub EP, --control EP\n"
             "                        the broker's endpoints, overriding DIR/broker.zpl\n"
             "                        (a broker on another host: tcp://HOST:PORT)\n"
             "  --actor VIEW=EP       the query endpoint of an actor (VIEW: quacks,\n"
             "                        badges, alexa, mobile or the actor's name),\n"
             "                        overriding DIR/NAME.zpl; once per actor\n"
             "  --keys DIR --as NAME  keys mode: bearer tokens of DIR/tokens, each request\n"
             "                        served with its token's key pair of DIR/secret;\n"
             "                        NAME is the gateway's own key (as pond up passes\n"
             "                        them)\n"
             "  --verbose             log every refused request\n"
             "  --help                show this text\n"
             "\n"
             "Examples:\n"
             "  pond-gateway --data ./pond-data --listen 127.0.0.1:8080 &\n"
             "  curl -s -X POST http://127.0.0.1:8080/v1/events -d \\\n"
             "    "
             "'{\"id\":\"018f3a5b-6c7d-7e8f-90a1-b2c3d4e5f607\",\"name\":\"QUACKED\",\"entity\":"
             "\"anna\"}'\n"
             "  curl -s http://127.0.0.1:8080/v1/views/quacks/anna?after=1\n"
             "  curl -sN 'http://127.0.0.1:8080/v1/events?names=QUACKED&from=2022-01-01'\n"
             "  curl -sN 'http://127.0.0.1:8080/v1/stream?names=QUACKED,BADGE_GRANTED'\n"
             "  curl -s -H \"Authorization: Bearer $(pond keys token app-1)\" \\\n"
             "    http://127.0.0.1:8080/v1/views/mobile/anna    # keys mode\n"
             "  xdg-open http://127.0.0.1:8080/\n",
             POND_GATEWAY_STATUS_LATEST_MAX, POND_GATEWAY_MAX_BODY, POND_GATEWAY_MAX_CONNECTIONS,
             POND_GATEWAY_TIMEOUT_S, POND_GATEWAY_MAX_STREAMS, POND_GATEWAY_MAX_STREAMS_PER_IP,
             POND_GATEWAY_STREAM_QUEUE, POND_GATEWAY_HEARTBEAT_S);
}

//  A whole number in [min, max] from text, or -1
static long long
s_number (const char *text, long long min, long long max)
{
    uint64_t value;
    return pond_number_parse (text, (uint64_t) min, (uint64_t) max, &value) ? -1
                                                                            : (long long) value;
}

//  DIR/gateway.zpl: the URL and this pid (the supervisor's ready file)
static int
s_write_ready (const char *path, const char *url)
{
    zconfig_t *root = zconfig_new ("root", NULL);
    zconfig_put (root, "gateway/url", url);
    zconfig_putf (root, "gateway/pid", "%d", (int) getpid ());
    return pond_ready_save (&root, path, "pond-gateway");
}

//  --actor VIEW=EP into config (EP points into text). Returns NULL, or
//  what is wrong.
static const char *
s_actor_option (pond_gateway_config_t *config, char *text)
{
    char *equals = strchr (text, '=');
    if (!equals || !strstr (equals + 1, "://") || strlen (equals + 1) >= POND_ENDPOINT_MAX)
        return "--actor takes VIEW=ENDPOINT, like quacks=tcp://10.0.0.2:7010";
    *equals = 0;
    const char *actor = pond_views_actor (text);
    *equals = '=';
    for (size_t i = 0; actor && i < POND_VIEWS; i++)
        if (streq (pond_views_actors [i], actor)) {
            config->actors [i] = equals + 1;
            return NULL;
        }
    return "--actor: the view is one of quacks, badges, alexa, mobile (or the actor's name)";
}

int
main (int argc, char *argv [])
{
    const char *dir = getenv ("POND_DATA") ? getenv ("POND_DATA") : "./pond-data";
    const char *keys = NULL, *as = "gateway";
    pond_gateway_config_t config;
    pond_gateway_config_defaults (&config, dir);
    static struct option options [] = { { "data", required_argument, 0, 'd' },
                                        { "listen", required_argument, 0, 'l' },
                                        { "max-body", required_argument, 0, 'b' },
                                        { "max-connections", required_argument, 0, 'c' },
                                        { "max-per-ip", required_argument, 0, 'p' },
                                        { "timeout", required_argument, 0, 't' },
                                        { "max-streams", required_argument, 0, 's' },
                                        { "max-streams-per-ip", required_argument, 0, 'S' },
                                        { "stream-queue", required_argument, 0, 'q' },
                                        { "heartbeat", required_argument, 0, 'H' },
                                        { "ingest", required_argument, 0, 'I' },
                                        { "pub", required_argument, 0, 'P' },
                                        { "control", required_argument, 0, 'O' },
                                        { "actor", required_argument, 0, 'A' },
                                        { "keys", required_argument, 0, 'k' },
                                        { "as", required_argument, 0, 'a' },
                                        { "verbose", no_argument, 0, 'v' },
                                        { "help", no_argument, 0, 'h' },
                                        { 0, 0, 0, 0 } };
    int opt;
    long long value = 0;
    while ((opt = getopt_long (argc, argv, "d:l:b:c:p:t:s:q:H:k:a:vh", options, NULL)) != -1) {
        const char *bad = NULL;
        switch (opt) {
            case 'd': config.data_dir = dir = optarg; break;
            case 'l': config.listen = optarg; break;
            case 'b':
                if ((value = s_number (optarg, 1, 1LL << 30)) < 0)
                    bad = "--max-body takes bytes, 1 to 1073741824";
                config.max_body = (size_t) value;
                break;
            case 'c':
                if ((value = s_number (optarg, 1, 10000)) < 0)
                    bad = "--max-connections takes 1 to 10000";
                config.max_connections = (unsigned) value;
                break;
            case 'p':
                if ((value = s_number (optarg, 1, 10000)) < 0)
                    bad = "--max-per-ip takes 1 to 10000";
                config.max_per_ip = (unsigned) value;
                break;
            case 't':
                if ((value = s_number (optarg, 1, 3600)) < 0)
                    bad = "--timeout takes seconds, 1 to 3600";
                config.timeout_s = (unsigned) value;
                break;
            case 's':
                if ((value = s_number (optarg, 1, 1000)) < 0)
                    bad = "--max-streams takes 1 to 1000";
                config.max_streams = (unsigned) value;
                break;
            case 'S':
                if ((value = s_number (optarg, 1, 1000)) < 0)
                    bad = "--max-streams-per-ip takes 1 to 1000";
                config.max_streams_per_ip = (unsigned) value;
                break;
            case 'q':
                if ((value = s_number (optarg, 4096, 1LL << 30)) < 0)
                    bad = "--stream-queue takes bytes, 4096 to 1073741824";
                config.stream_queue = (size_t) value;
                break;
            case 'H':
                if ((value = s_number (optarg, 1, 3600)) < 0)
                    bad = "--heartbeat takes seconds, 1 to 3600";
                config.heartbeat_s = (unsigned) value;
                break;
            case 'I':
            case 'P':
            case 'O':
                if (!strstr (optarg, "://") || strlen (optarg) >= POND_ENDPOINT_MAX)
                    bad = opt == 'I' ? "--ingest takes an endpoint such as tcp://HOST:PORT"
                        : opt == 'P' ? "--pub takes an endpoint such as tcp://HOST:PORT"
                                     : "--control takes an endpoint such as tcp://HOST:PORT";
                else
                    *(opt == 'I'   ? &config.ingest
                      : opt == 'P' ? &config.pub
                                   : &config.control) = optarg;
                break;
            case 'A': bad = s_actor_option (&config, optarg); break;
            case 'k': keys = optarg; break;
            case 'a': as = optarg; break;
            case 'v': config.verbose = true; break;
            case 'h': s_usage (stdout); return 0;
            default: fprintf (stderr, "pond-gateway: see pond-gateway --help\n"); return 2;
        }
        if (bad) {
            fprintf (stderr, "pond-gateway: %s, not '%s'\n", bad, optarg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf (stderr, "pond-gateway: unexpected argument '%s'; see pond-gateway --help\n",
                 argv [optind]);
        return 2;
    }
    zsys_set_logident ("pond-gateway");
    //  CZMQ's SIGINT/SIGTERM handler (sets zsys_interrupted), installed now:
    //  no socket may have been made yet when the first signal comes
    zsys_init ();
    if (mkdir (dir, 0755) && errno != EEXIST) {
        fprintf (stderr, "pond-gateway: cannot create data directory %s: %s\n", dir,
                 strerror (errno));
        return 1;
    }
    char err [PATH_MAX + 64];
    if (keys && *keys && pond_keys_use (keys, as, err, sizeof err)) {
        fprintf (stderr, "pond-gateway: --keys %s: %s\n", keys, err);
        return 1;
    }
    //  One gateway per data directory: a second one would rewrite gateway.zpl
    char path [PATH_MAX];
    snprintf (path, sizeof path, "%s/gateway.lock", dir);
    pid_t holder = 0;
    pond_pidlock_t *lock = pond_pidlock_new (path, 1, &holder, err, sizeof err);
    if (!lock) {
        if (holder)
            fprintf (stderr,
                     "pond-gateway: another pond-gateway (pid %d) serves %s; stop it first\n",
                     (int) holder, dir);
        else
            fprintf (stderr, "pond-gateway: %s\n", err);
        return 1;
    }
    if (keys && *keys)
        config.keys_dir = keys;
    else if (strncmp (config.listen, "127.", 4) != 0 && config.listen [0] != ':')
        zsys_warning ("pond-gateway: no --keys: whoever reaches %s is served without a token "
                      "(local mode is meant for loopback)",
                      config.listen);
    pond_gateway_t *gateway = pond_gateway_new (&config);
    snprintf (path, sizeof path, "%s/gateway.zpl", dir);
    int rc = 1;
    if (gateway && s_write_ready (path, pond_gateway_url (gateway)) == 0) {
        zsys_info ("pond-gateway: serving %s for the mesh in %s", pond_gateway_url (gateway), dir);
        while (!zsys_interrupted)
            zclock_sleep (100);
        unlink (path);
        rc = 0;
    }
    pond_gateway_destroy (&gateway);
    pond_pidlock_destroy (&lock);
    return rc;
}
