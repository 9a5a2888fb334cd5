/*  pond-store: the log of a pond mesh as a process.

    Thin on purpose: parse the command line, open the store, bind the
    server, say where it listens (DIR/store.zpl), serve until SIGTERM or
    SIGINT, close the database.
*/
#include "pond_store.h"
#include "pond_store_server.h"
#include "pond_keys.h"
#include "pond_pidlock.h"
#include "pond_ready.h"
#include "pond_thread.h"

#include <getopt.h>
#include <unistd.h>

static void
s_usage (FILE *out)
{
    fprintf (out,
             "Usage: pond-store [--data DIR] [--endpoint EP] [--keys DIR] [--memtable-mb N]\n"
             "                  [--cache-mb N] [--verbose] [--help]\n"
             "\n"
             "pond-store is the log of a pond mesh: it keeps every event in RocksDB\n"
             "(WAL synced before anything is acknowledged), gives each one a global,\n"
             "gap-free sequence number, indexes events by name and time, by entity and\n"
             "by id, and streams replays with credit flow control. The broker connects\n"
             "to it; see the \"Store link\" section of proto/PROTOCOL.md.\n"
             "\n"
             "Options:\n"
             "  -d, --data DIR      data directory (default: $POND_DATA, else ./pond-data);\n"
             "                      the database lives in DIR/store/\n"
             "  -e, --endpoint EP   ZeroMQ endpoint to bind (default: ipc://DIR/store.ipc)\n"
             "  -k, --keys DIR      CURVE on the store link, with the key pair\n"
             "                      DIR/secret/store.cert_secret (pond keys new --role store);\n"
             "                      only the broker's key may then send requests (others get\n"
             "                      403, unknown keys fail the handshake). Needed when the\n"
             "                      endpoint is tcp and the broker runs with --keys\n"
             "  -m, --memtable-mb N memory for the memtables of all column families together,\n"
             "                      in MiB (default 32, or $POND_STORE_MEMTABLE_MB): more\n"
             "                      means fewer flushes and compactions while ingesting\n"
             "  -c, --cache-mb N    block cache in MiB (default 32, or $POND_STORE_CACHE_MB):\n"
             "                      more helps replays of old events and dedup of old ids.\n"
             "                      The store's RSS stays near memtables + cache + ~30 MiB,\n"
             "                      plus the files' bloom filters: ~2.5 bytes per event.\n"
             "  -v, --verbose       log every replay and every refused request\n"
             "  -h, --help          show this help and exit\n"
             "\n"
             "Once listening, pond-store writes DIR/store.zpl with store/endpoint and\n"
             "store/pid. It stops cleanly on SIGTERM or SIGINT.\n"
             "POND_STORE_UNSAFE_NO_SYNC=1 in the environment turns the WAL sync off: for\n"
             "tests and benchmarks only, ACKed events can then be lost in a power cut.\n"
             "Exit codes: 0 stopped cleanly, 1 runtime failure, 2 usage error.\n");
}

//  DIR/store.zpl: where this store listens and its pid
static int
s_write_ready (const char *dir, const char *endpoint)
{
    char path [PATH_MAX];
    snprintf (path, sizeof path, "%s/store.zpl", dir);
    zconfig_t *root = zconfig_new ("root", NULL);
    if (root) {
        zconfig_put (root, "store/endpoint", endpoint);
        zconfig_putf (root, "store/pid", "%d", (int) getpid ());
    }
    return pond_ready_save (&root, path, "pond-store");
}

int
main (int argc, char *argv [])
{
    const char *dir = getenv ("POND_DATA");
    if (!dir || !*dir)
        dir = "./pond-data";
    const char *endpoint = NULL;
    const char *keys = NULL;
    bool verbose = false;
    static const struct option options [] = { { "data", required_argument, NULL, 'd' },
                                              { "endpoint", required_argument, NULL, 'e' },
                                              { "keys", required_argument, NULL, 'k' },
                                              { "verbose", no_argument, NULL, 'v' },
                                              { "memtable-mb", required_argument, NULL, 'm' },
                                              { "cache-mb", required_argument, NULL, 'c' },
                                              { "help", no_argument, NULL, 'h' },
                                              { NULL, 0, NULL, 0 } };
    pond_store_memory_t memory = { 0, 0 };
    char why [256];
    if (pond_store_memory_from_env (&memory, why, sizeof why)) {
        fprintf (stderr, "pond-store: %s\n", why);
        return 2;
    }
    int option;
    while ((option = getopt_long (argc, argv, "d:e:k:m:c:vh", options, NULL)) != -1) {
        switch (option) {
            case 'd': dir = optarg; break;
            case 'e': endpoint = optarg; break;
            case 'k': keys = optarg; break;
            case 'v': verbose = true; break;
            case 'm':
            case 'c':
                if (pond_store_memory_parse (option == 'm' ? &memory.memtable_mb : &memory.cache_mb,
                                             optarg, option == 'm' ? 4 : 1,
                                             option == 'm' ? "--memtable-mb" : "--cache-mb", why,
                                             sizeof why)) {
                    fprintf (stderr, "pond-store: %s\n", why);
                    return 2;
                }
                break;
            case 'h': s_usage (stdout); return 0;
            default: fprintf (stderr, "Try 'pond-store --help'.\n"); return 2;
        }
    }
    if (optind < argc) {
        fprintf (stderr, "pond-store: unexpected argument '%s'. Try 'pond-store --help'.\n",
                 argv [optind]);
        return 2;
    }
    if (!*dir || (endpoint && !*endpoint)) {
        fprintf (stderr, "pond-store: --data and --endpoint must not be empty\n");
        return 2;
    }
    if (keys) {
        char err [1024];
        if (!*keys || pond_keys_use (keys, POND_KEYS_STORE, err, sizeof err)) {
            fprintf (stderr, "pond-store: --keys %s: %s\n", keys,
                     *keys ? err : "give the keys directory");
            return 2;
        }
    }
    if (zsys_dir_create ("%s", dir)) {
        fprintf (stderr, "pond-store: cannot create %s: %s\n", dir, strerror (errno));
        return 1;
    }
    //  One store per data directory; RocksDB's own lock would refuse a
    //  second one too, but cannot say which process holds it
    char lock_path [PATH_MAX];
    snprintf (lock_path, sizeof lock_path, "%s/store.lock", dir);
    char err [PATH_MAX + 64];
    pid_t holder = 0;
    pond_pidlock_t *lock = pond_pidlock_new (lock_path, 1, &holder, err, sizeof err);
    if (!lock) {
        if (holder)
            fprintf (stderr,
                     "pond-store: another pond-store, or a pond-broker --with-store "
                     "(pid %d), uses %s; stop it first (pond down --data %s for a mesh "
                     "started with pond up)\n",
                     (int) holder, dir, dir);
        else
            fprintf (stderr, "pond-store: %s\n", err);
        pond_keys_reset ();
        return 1;
    }
    char db_path [PATH_MAX], default_endpoint [PATH_MAX + 16];
    snprintf (db_path, sizeof db_path, "%s/store", dir);
    if (!endpoint) {
        snprintf (default_endpoint, sizeof default_endpoint, "ipc://%s/store.ipc", dir);
        endpoint = default_endpoint;
    }
    pond_store_t *store = pond_store_new_sized (db_path, &memory);
    if (!store) {
        fprintf (stderr,
                 "pond-store: cannot open the log in %s (reason above); if another "
                 "pond-store is using %s, stop it first\n",
                 db_path, dir);
        return 1;
    }
    pond_store_server_t *server = pond_store_server_new (store, endpoint);
    if (!server) {
        fprintf (stderr, "pond-store: cannot listen on %s (reason above)\n", endpoint);
        pond_store_destroy (&store);
        pond_keys_reset ();
        return 1;
    }
    pond_store_server_set_verbose (server, verbose);
    int rc = s_write_ready (dir, pond_store_server_endpoint (server));
    if (rc == 0) {
        zsys_info ("pond-store: %s on %s, head %" PRIu64 "%s", db_path,
                   pond_store_server_endpoint (server), pond_store_head (store),
                   keys ? ", CURVE: only the broker's key may talk" : ", no keys");
        rc = pond_store_server_run (server, NULL);
        //  Stopping: a second signal (Ctrl-C twice, a supervisor and a
        //  user) waits, pending, instead of killing the process half-way
        //  through its shutdown, once CZMQ has put the default handlers back
        pond_thread_block_signals (NULL);
        zsys_info ("pond-store: stopping, head %" PRIu64, pond_store_head (store));
        char ready [PATH_MAX];
        snprintf (ready, sizeof ready, "%s/store.zpl", dir);
        unlink (ready);
    }
    pond_store_server_destroy (&server);
    pond_store_destroy (&store);
    pond_keys_reset ();    //  stops the ZAP handler, if keys started one
    pond_pidlock_destroy (&lock);
    return rc ? 1 : 0;
}
