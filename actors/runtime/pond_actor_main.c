/*  pond_actor_main: an actor's command line. pond_actor_main parses the
    options every actor shares, takes the actor's lock in the data
    directory, opens the view and runs the loop (pond_actor.c), or runs
    --verify (pond_actor_verify.c).
    Part of the actor runtime; state in pond_actor_internal.h.
*/
#include "pond_actor_internal.h"
#include "pond_path.h"
#include "pond_number.h"
#include "pond_pidlock.h"

#include <getopt.h>
#include <malloc.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

//  ---------------------------------------------------------------------
//  Command line

static void
s_usage (const pond_actor_spec_t *spec, const char *extra_usage, FILE *out)
{
    fprintf (out, "Usage: pond-%s [OPTIONS]\n\n", spec->name);
    if (spec->description)
        fprintf (out, "%s\n\n", spec->description);
    fprintf (out, "Applies:");
    for (size_t i = 0; spec->names [i]; i++)
        fprintf (out, "%s %s", i ? "," : "", spec->names [i]);
    fprintf (out,
             "\n\n"
             "Options:\n"
             "  --data DIR     data directory (default $POND_DATA or ./pond-data); the\n"
             "                 broker's endpoints are read from DIR/broker.zpl\n"
             "  --ingest EP, --pub EP, --control EP\n"
             "                 the broker's endpoints, overriding DIR/broker.zpl (a\n"
             "                 broker on another host: tcp://HOST:PORT, with --keys)\n"
             "  --view PATH    the view database (default DIR/views/%s)\n"
             "  --query EP     query socket (default ipc://DIR/%s.ipc); once it is\n"
             "                 bound, the endpoint and pid are written to DIR/%s.zpl\n"
             "  --rebuild      delete the view first, rebuild it from the log, go live\n"
             "  --verify       ask the running actor for its view (DUMP), rebuild one from\n"
             "                 the log up to the same seq in a scratch directory, compare;\n"
             "                 exit 0 if they match, 1 if not\n"
             "  --keys DIR     CURVE on every socket, with the key pair\n"
             "                 DIR/secret/NAME.cert_secret (role actor); the query socket\n"
             "                 lets in the actor, app and admin keys of DIR/public (see\n"
             "                 pond keys --help). Without it: local mode, no keys\n"
             "  --as NAME      the key to use with --keys (default %s)\n"
             "  --verbose      log every event applied and every refused request\n"
             "  --help         show this text\n"
             "\n"
             "Memory of the view (MiB; each also from the environment variable named):\n"
             "  --memtable-mb N   RocksDB memtable, two at most: one filling, one being\n"
             "                    flushed (1-%d, default %d; POND_VIEW_MEMTABLE_MB)\n"
             "  --cache-mb N      RocksDB block cache (0-%d, 0 none; default %d;\n"
             "                    POND_VIEW_CACHE_MB)\n"
             "  --doc-cache-mb N  parsed documents kept for the next event or query\n"
             "                    (0-%d, 0 none; default %d; POND_VIEW_DOC_CACHE_MB)\n"
             "                 Peak memory is about 2 x memtable + cache + doc cache, plus\n"
             "                 some 12 MiB of the actor's own and the shared libraries;\n"
             "                 larger caches pay when the entities touched often do not\n"
             "                 fit (many more customers than 10,000).\n",
             spec->name, spec->name, spec->name, spec->name, POND_VIEW_MB_MAX,
             POND_VIEW_MEMTABLE_MB, POND_VIEW_MB_MAX, POND_VIEW_CACHE_MB, POND_VIEW_MB_MAX,
             POND_VIEW_DOC_CACHE_MB);
    if (extra_usage && *extra_usage)
        fprintf (out, "\n%s\n", extra_usage);
}

//  A size in MiB from text (an option's, or an environment variable's):
//  digits only, at most POND_VIEW_MB_MAX (pond_view_limits_check judges
//  the lower bound). Returns 0, or -1 after telling why on stderr.
static int
s_parse_mb (const pond_actor_spec_t *spec, const char *what, const char *text, size_t *mb_p)
{
    uint64_t mb;
    if (pond_number_parse (text, 0, POND_VIEW_MB_MAX, &mb)) {
        fprintf (stderr, "pond-%s: %s must be a number of MiB from 0 to %d, not '%s'\n", spec->name,
                 what, POND_VIEW_MB_MAX, text);
        return -1;
    }
    *mb_p = (size_t) mb;
    return 0;
}

//  The view's limits: defaults, then the environment, then the options
//  given (NULL if not). Returns 0, or -1 after telling why on stderr.
static int
s_limits (const pond_actor_spec_t *spec, pond_view_limits_t *limits, const char *memtable,
          const char *cache, const char *doc_cache)
{
    pond_view_limits_default (limits);
    struct {
        const char *option, *variable, *given;
        size_t *mb;
    } knobs [] = {
        { "--memtable-mb", "POND_VIEW_MEMTABLE_MB", memtable, &limits->memtable_mb },
        { "--cache-mb", "POND_VIEW_CACHE_MB", cache, &limits->cache_mb },
        { "--doc-cache-mb", "POND_VIEW_DOC_CACHE_MB", doc_cache, &limits->doc_cache_mb },
    };
    for (size_t i = 0; i < sizeof knobs / sizeof knobs [0]; i++) {
        const char *env = getenv (knobs [i].variable);
        if (env && *env && s_parse_mb (spec, knobs [i].variable, env, knobs [i].mb))
            return -1;
        if (knobs [i].given && s_parse_mb (spec, knobs [i].option, knobs [i].given, knobs [i].mb))
            return -1;
    }
    char err [128];
    if (pond_view_limits_check (limits, err, sizeof err)) {
        fprintf (stderr, "pond-%s: %s\n", spec->name, err);
        return -1;
    }
    return 0;
}

//  The broker's endpoints given as options (NULL where not) replace those
//  of the data directory. Returns 0, or -1 after telling why on stderr.
static int
s_broker_endpoints (const pond_actor_spec_t *spec, pond_endpoints_t *eps, const char *given [3])
{
    const char *flags [3] = { "--ingest", "--pub", "--control" };
    char *slots [3] = { eps->ingest, eps->pub, eps->control };
    for (size_t i = 0; i < 3; i++) {
        if (!given [i])
            continue;
        if (!*given [i] || strlen (given [i]) >= POND_ENDPOINT_MAX || !strstr (given [i], "://")) {
            fprintf (stderr,
                     "pond-%s: %s needs an endpoint such as tcp://HOST:PORT (at most %d "
                     "bytes), not '%s'; see pond-%s --help\n",
                     spec->name, flags [i], POND_ENDPOINT_MAX - 1, given [i], spec->name);
            return -1;
        }
        strcpy (slots [i], given [i]);
    }
    return 0;
}

int
pond_actor_main (const pond_actor_spec_t *spec, int argc, char *argv [], const char *extra_usage)
{
    assert (spec);
    assert (spec->name && spec->names && spec->apply && spec->query);
    const char *dir = NULL, *view = NULL, *query = NULL, *keys = NULL, *as = NULL;
    const char *broker [3] = { NULL, NULL, NULL };    //  --ingest, --pub, --control
    const char *memtable = NULL, *cache = NULL, *doc_cache = NULL;
    bool rebuild = false, verify = false, verbose = false;
    pond_pidlock_t *lock = NULL;    //  held while this actor runs
    static struct option options [] = { { "data", required_argument, 0, 'd' },
                                        { "view", required_argument, 0, 'w' },
                                        { "query", required_argument, 0, 'q' },
                                        { "rebuild", no_argument, 0, 'r' },
                                        { "verify", no_argument, 0, 'V' },
                                        { "verbose", no_argument, 0, 'v' },
                                        { "keys", required_argument, 0, 'k' },
                                        { "as", required_argument, 0, 'a' },
                                        { "memtable-mb", required_argument, 0, 'M' },
                                        { "cache-mb", required_argument, 0, 'C' },
                                        { "doc-cache-mb", required_argument, 0, 'D' },
                                        { "ingest", required_argument, 0, 'I' },
                                        { "pub", required_argument, 0, 'P' },
                                        { "control", required_argument, 0, 'O' },
                                        { "help", no_argument, 0, 'h' },
                                        { 0, 0, 0, 0 } };
    optind = 1;
    int opt;
    while ((opt = getopt_long (argc, argv, "d:w:q:rVvk:a:h", options, NULL)) != -1) {
        switch (opt) {
            case 'd': dir = optarg; break;
            case 'k': keys = optarg; break;
            case 'a': as = optarg; break;
            case 'w': view = optarg; break;
            case 'q': query = optarg; break;
            case 'r': rebuild = true; break;
            case 'V': verify = true; break;
            case 'v': verbose = true; break;
            case 'M': memtable = optarg; break;
            case 'C': cache = optarg; break;
            case 'D': doc_cache = optarg; break;
            case 'I': broker [0] = optarg; break;
            case 'P': broker [1] = optarg; break;
            case 'O': broker [2] = optarg; break;
            case 'h': s_usage (spec, extra_usage, stdout); return 0;
            default:
                fprintf (stderr, "pond-%s: see pond-%s --help\n", spec->name, spec->name);
                return 2;
        }
    }
    if (optind < argc || (rebuild && verify) || (as && !keys)) {
        if (optind < argc)
            fprintf (stderr, "pond-%s: unexpected argument '%s'", spec->name, argv [optind]);
        else if (as && !keys)
            fprintf (stderr, "pond-%s: --as names a key of --keys DIR: give both", spec->name);
        else
            fprintf (stderr, "pond-%s: --rebuild and --verify do not mix", spec->name);
        fprintf (stderr, "; see pond-%s --help\n", spec->name);
        return 2;
    }
    pond_view_limits_t limits;
    if (s_limits (spec, &limits, memtable, cache, doc_cache)) {
        fprintf (stderr, "pond-%s: see pond-%s --help\n", spec->name, spec->name);
        return 2;
    }
    //  Large blocks (RocksDB's memtable arena, a big write batch, replay
    //  chunks) straight from the OS and back to it when freed. glibc's
    //  default moves this threshold up to the largest block freed so far,
    //  after which such blocks come from the heap and leave holes there
    //  that the process never gives back: measured, 6-10 MiB of an actor's
    //  peak after a recompute. MALLOC_MMAP_THRESHOLD_ still overrides it.
    if (!getenv ("MALLOC_MMAP_THRESHOLD_"))
        mallopt (M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    char ident [128];
    snprintf (ident, sizeof ident, "pond-%s", spec->name);
    zsys_init ();
    zsys_set_logident (ident);
    if (verify)
        zsys_set_logstream (stderr);    //  stdout is the verdict
    char err [512];
    if (keys && pond_keys_use (keys, as ? as : spec->name, err, sizeof err)) {
        fprintf (stderr, "pond-%s: --keys %s: %s\n", spec->name, keys, err);
        return 1;
    }

    pond_actor_t *self = (pond_actor_t *) zmalloc (sizeof (pond_actor_t));
    assert (self);
    self->spec = spec;
    self->name = spec->name;
    while (spec->names [self->names_count])
        self->names_count++;
    self->verbose = verbose;
    self->verify = verify;
    self->limits = limits;
    self->query_given = query != NULL;
    int rc = 1;
    if (pond_endpoints_resolve (dir, &self->eps)) {
        fprintf (stderr, "pond-%s: data directory path too long\n", spec->name);
        goto done;
    }
    dir = self->eps.data_dir;
    if (s_broker_endpoints (spec, &self->eps, broker)) {
        rc = 2;
        goto done;
    }
    if (!verify && mkdir (dir, 0755) && errno != EEXIST) {
        fprintf (stderr, "pond-%s: cannot create data directory %s: %s\n", spec->name, dir,
                 strerror (errno));
        goto done;
    }
    if ((view ? pond_path (self->view_path, sizeof self->view_path, "%s", view)
              : pond_path (self->view_path, sizeof self->view_path, "%s/views/%s", dir, spec->name))
        || (query ? pond_path (self->query_endpoint, sizeof self->query_endpoint, "%s", query)
                  : pond_path (self->query_endpoint, sizeof self->query_endpoint, "ipc://%s/%s.ipc",
                               dir, spec->name))
        || pond_path (self->ready_path, sizeof self->ready_path, "%s/%s.zpl", dir, spec->name)) {
        fprintf (stderr, "pond-%s: a path or endpoint is too long\n", spec->name);
        goto done;
    }

    if (verify) {
        rc = pond_actor_priv_verify (self);
        goto done;
    }
    //  One actor of a name per data directory: a second one is refused,
    //  naming the pid that holds the lock, before it touches anything
    char lock_path [1100];
    snprintf (lock_path, sizeof lock_path, "%s/%s.lock", dir, spec->name);
    char lock_err [1200];
    pid_t holder = 0;
    lock = pond_pidlock_new (lock_path, 1, &holder, lock_err, sizeof lock_err);
    if (!lock) {
        if (holder)
            fprintf (stderr,
                     "pond-%s: another pond-%s (pid %d) serves %s; stop it first "
                     "(pond down --data %s for a mesh started with pond up)\n",
                     spec->name, spec->name, (int) holder, dir, dir);
        else
            fprintf (stderr, "pond-%s: %s\n", spec->name, lock_err);
        goto done;
    }
    if (rebuild) {
        zsys_info ("%s: --rebuild: deleting the view %s", self->name, self->view_path);
        if (pond_view_drop (self->view_path))
            goto done;
    }
    self->view = pond_view_open_with (self->view_path, &self->limits);
    if (!self->view)
        goto done;
    self->position = pond_view_position (self->view);
    if (spec->start && spec->start (self, self->view, spec->state)) {
        zsys_error ("%s: start failed", self->name);
        goto done;
    }
    rc = pond_actor_priv_run (self);

done:
    if (self->replay)
        pond_reader_destroy (&self->replay);
    zpoller_destroy (&self->poller);
    zsock_destroy (&self->query);
    pond_sub_destroy (&self->sub);
    pond_client_destroy (&self->client);
    zlistx_destroy (&self->buffer);
    zlistx_destroy (&self->deferred);
    zlistx_destroy (&self->parked);
    zframe_destroy (&self->rebuild_peer);
    pond_view_destroy (&self->view);
    free (self);
    pond_keys_reset ();
    pond_pidlock_destroy (&lock);
    return rc;
}
