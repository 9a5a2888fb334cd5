/*  pond-broker: the write point and fan-out of a pond mesh.
    Parses the command line, binds, writes DIR/broker.zpl, serves. With
    --with-store the store of DIR runs in this process
    (pond_store_embedded) instead of as pond-store.
*/
#include "pond_broker.h"
#include "pond_pidlock.h"
#include "pond_ready.h"
#include "pond_store_embedded.h"
#include "pond_thread.h"

#include <getopt.h>
#include <limits.h>
#include <sys/stat.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

static void
s_usage (FILE *out)
{
    fprintf (out, "Usage: pond-broker [OPTIONS]\n"
                  "\n"
                  "The one write point and the fan-out of a pond mesh. Producers publish on\n"
                  "the ingest socket; each event is made durable by pond-store before it is\n"
                  "acknowledged and published on the pub socket. Admins use the control\n"
                  "socket (pond stats, pond replay).\n"
                  "\n"
                  "Options:\n"
                  "  --data DIR        data directory (default $POND_DATA or ./pond-data);\n"
                  "                    the bound endpoints are written to DIR/broker.zpl\n"
                  "  --ingest EP       producers' endpoint (default ipc://DIR/ingest.ipc)\n"
                  "  --pub EP          live events endpoint (default ipc://DIR/pub.ipc)\n"
                  "  --control EP      admin endpoint (default ipc://DIR/control.ipc)\n"
                  "  --store EP        pond-store's endpoint (default ipc://DIR/store.ipc)\n"
                  "  --with-store      run the store of DIR in this process instead of connecting\n"
                  "                    to a pond-store: one process, less CPU per event. Takes\n"
                  "                    the store's lock (no pond-store may run on DIR meanwhile)\n"
                  "                    and its options (POND_STORE_UNSAFE_NO_SYNC); no --store.\n"
                  "                    If the store fails, pond-broker exits 1: restart it\n"
                  "  --config FILE     ZPL file with broker/ingest, broker/pub, broker/control,\n"
                  "                    broker/store, broker/with_store (1 or 0),\n"
                  "                    broker/pending_max, broker/keys (flags win)\n"
                  "  --keys DIR        CURVE on every socket: the broker's key pair is\n"
                  "                    DIR/secret/broker.cert_secret and only the keys in\n"
                  "                    DIR/public get in (added or removed ones count within\n"
                  "                    seconds); see pond keys --help. Without it: local mode,\n"
                  "                    no keys\n"
                  "  --verbose         log every refused message\n"
                  "  --help            show this text\n"
                  "\n"
                  "Endpoints may use tcp://127.0.0.1:* to pick a free port; read the port\n"
                  "back from DIR/broker.zpl. Over a real network use --keys.\n"
                  "\n"
                  "Examples:\n"
                  "  pond-store --data ./pond-data &\n"
                  "  pond-broker --data ./pond-data &\n"
                  "  pond publish --name QUACKED --entity cust-1\n"
                  "\n"
                  "  pond-broker --data ./pond-data --with-store &     # no pond-store\n"
                  "  pond publish --name QUACKED --entity cust-1\n");
}

//  Write the resolved endpoints where clients and tests look for them.
static int
s_write_endpoints (pond_broker_t *broker, const char *dir, bool curve, bool with_store)
{
    zconfig_t *root = zconfig_new ("root", NULL);
    zconfig_put (root, "broker/ingest", pond_broker_endpoint (broker, "ingest"));
    zconfig_put (root, "broker/pub", pond_broker_endpoint (broker, "pub"));
    zconfig_put (root, "broker/control", pond_broker_endpoint (broker, "control"));
    //  Clients without keys can tell why they get no answer
    zconfig_put (root, "broker/security", curve ? "curve" : "none");
    zconfig_putf (root, "broker/pid", "%d", (int) getpid ());
    //  The store is this process: there is no pond-store to look for
    zconfig_put (root, "broker/with_store", with_store ? "1" : "0");
    char path [512];
    snprintf (path, sizeof path, "%s/broker.zpl", dir);
    return pond_ready_save (&root, path, "pond-broker");
}

int
main (int argc, char *argv [])
{
    const char *dir = getenv ("POND_DATA") ? getenv ("POND_DATA") : "./pond-data";
    const char *flags [6] = { NULL };    //  ingest, pub, control, store, config, keys
    bool verbose = false;
    int with_store = -1;    //  -1: not on the command line
    static struct option options [] = { { "with-store", no_argument, 0, 'w' },
                                        { "data", required_argument, 0, 'd' },
                                        { "ingest", required_argument, 0, 'i' },
                                        { "pub", required_argument, 0, 'p' },
                                        { "control", required_argument, 0, 'c' },
                                        { "store", required_argument, 0, 's' },
                                        { "config", required_argument, 0, 'f' },
                                        { "keys", required_argument, 0, 'k' },
                                        { "verbose", no_argument, 0, 'v' },
                                        { "help", no_argument, 0, 'h' },
                                        { 0, 0, 0, 0 } };
    int opt;
    while ((opt = getopt_long (argc, argv, "d:i:p:c:s:f:k:vh", options, NULL)) != -1) {
        switch (opt) {
            case 'd': dir = optarg; break;
            case 'i': flags [0] = optarg; break;
            case 'p': flags [1] = optarg; break;
            case 'c': flags [2] = optarg; break;
            case 's': flags [3] = optarg; break;
            case 'f': flags [4] = optarg; break;
            case 'k': flags [5] = optarg; break;
            case 'v': verbose = true; break;
            case 'w': with_store = 1; break;
            case 'h': s_usage (stdout); return 0;
            default: fprintf (stderr, "pond-broker: see pond-broker --help\n"); return 2;
        }
    }
    if (optind < argc) {
        fprintf (stderr, "pond-broker: unexpected argument '%s'; see pond-broker --help\n",
                 argv [optind]);
        return 2;
    }
    zsys_set_logident ("pond-broker");
#if defined(__GLIBC__)
    //  Replay CHUNKs (up to 512 KiB each) pass through here by the
    //  thousand: ZeroMQ mallocs each one it receives. glibc's defaults
    //  mmap or trim such blocks, so every chunk faulted fresh pages in
    //  (profiled: 40% of the broker's CPU in a replay); keep them instead
    mallopt (M_MMAP_THRESHOLD, 4 * 1024 * 1024);
    mallopt (M_TRIM_THRESHOLD, 32 * 1024 * 1024);
#endif
    if (mkdir (dir, 0755) && errno != EEXIST) {
        fprintf (stderr, "pond-broker: cannot create data directory %s: %s\n", dir,
                 strerror (errno));
        return 1;
    }
    //  One broker per data directory: a second one would bind the same
    //  ipc endpoints (taking them from the first) and rewrite broker.zpl
    char lock_path [PATH_MAX];
    snprintf (lock_path, sizeof lock_path, "%s/broker.lock", dir);
    char err [PATH_MAX + 64];
    pid_t holder = 0;
    pond_pidlock_t *lock = pond_pidlock_new (lock_path, 1, &holder, err, sizeof err);
    if (!lock) {
        if (holder)
            fprintf (stderr,
                     "pond-broker: another pond-broker (pid %d) serves %s; stop it "
                     "first (pond down --data %s for a mesh started with pond up)\n",
                     (int) holder, dir, dir);
        else
            fprintf (stderr, "pond-broker: %s\n", err);
        return 1;
    }
    char scratch [4][256];
    pond_broker_config_t config;
    pond_broker_config_defaults (&config, dir, scratch);
    zconfig_t *file = NULL;
    if (flags [4]) {
        file = zconfig_load (flags [4]);
        if (!file) {
            fprintf (stderr, "pond-broker: cannot read config file %s (ZPL expected)\n", flags [4]);
            return 2;
        }
        config.ingest = zconfig_get (file, "broker/ingest", config.ingest);
        config.pub = zconfig_get (file, "broker/pub", config.pub);
        config.control = zconfig_get (file, "broker/control", config.control);
        config.store = zconfig_get (file, "broker/store", config.store);
        config.pending_max = atoi (zconfig_get (file, "broker/pending_max", "16384"));
        config.keys = zconfig_get (file, "broker/keys", NULL);
        if (with_store == -1)
            with_store = atoi (zconfig_get (file, "broker/with_store", "0")) != 0;
        if (with_store == 1 && zconfig_locate (file, "broker/store") && !flags [3]) {
            fprintf (stderr,
                     "pond-broker: %s sets both broker/store and broker/with_store; "
                     "keep one (broker/store: a separate pond-store, with_store: the store "
                     "in pond-broker)\n",
                     flags [4]);
            return 2;
        }
    }
    if (with_store == 1 && flags [3]) {
        fprintf (stderr, "pond-broker: --store and --with-store exclude each other: --store "
                         "connects to a separate pond-store, --with-store runs the store here\n");
        return 2;
    }
    if (flags [0])
        config.ingest = flags [0];
    if (flags [1])
        config.pub = flags [1];
    if (flags [2])
        config.control = flags [2];
    if (flags [3])
        config.store = flags [3];
    if (flags [5])
        config.keys = flags [5];
    if (config.keys && !*config.keys)
        config.keys = NULL;
    config.verbose = verbose;
    pond_store_embedded_t *store = NULL;
    if (with_store == 1) {
        char why [PATH_MAX + 256];
        store = pond_store_embedded_new (dir, verbose, why, sizeof why);
        if (!store) {
            fprintf (stderr, "pond-broker: --with-store: %s\n", why);
            zconfig_destroy (&file);
            pond_pidlock_destroy (&lock);
            return 1;
        }
        config.store = pond_store_embedded_endpoint (store);
    }
    pond_broker_t *broker = pond_broker_new (&config);
    int rc = 1;
    if (broker && store)
        pond_broker_watch_store (broker, pond_store_embedded_pipe (store));
    if (broker && s_write_endpoints (broker, dir, config.keys != NULL, store != NULL) == 0) {
        rc = pond_broker_run (broker) == 0 ? 0 : 1;
        //  Stopping: a second signal waits instead of cutting the shutdown
        pond_thread_block_signals (NULL);
    }
    //  The loop has ended: the store answers what it is writing, then
    //  closes; the broker's sockets go after it
    pond_store_embedded_destroy (&store);
    pond_broker_destroy (&broker);
    zconfig_destroy (&file);
    pond_pidlock_destroy (&lock);
    return rc;
}
