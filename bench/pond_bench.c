/*  pond-bench: how fast is pond's durable log, measured honestly.

    Starts its own pond-store and pond-broker (from the directory this
    program lives in) on ipc endpoints inside a fresh data directory,
    drives them through the client library exactly as a producer or an
    admin would, prints ONE line of key=value results, then stops both
    processes by pid and removes the directory.

        pond-bench ingest [--events N] [--producers P] [--window W] [--size B]
        pond-bench replay [--events N] [--size B]

    ingest: P threads, each with its own pond_client_t (CZMQ sockets are
    not thread-safe), publish N events in all. Each thread keeps W
    publishes outstanding: W = 1 calls pond_client_publish_bytes and
    waits for each ACK; W > 1 pipelines with pond_client_send_bytes and
    pond_client_recv, resending after NACK 503. Events are encoded before
    the clock starts (a producer's own encoding is not pond's cost). The
    rate is ACKed events over the time from the common start to the last
    ACK; latency is per event, from the call that first sends it to the
    moment its ACK (durable in the store) is read, retries included.

    replay: loads N events (4 names, 1000 entities, ts 1 ms apart) fast,
    then times pond_replay_new plus draining pond_replay_next (every event
    decoded and checked at the reader) for the whole log by seq, and for
    2 names over the first half of the time range.

    Besides the figures, each line carries peak RSS (VmHWM) of store and
    broker, their CPU seconds during the timed part, and for ingest the
    store's synced WriteBatches (one WAL sync each: "commits") from STATS
    and the idle PING round trips to the broker and to the store, measured
    before the clock starts: W = 1 latency is roughly the two round trips
    plus one commit.
*/
#define _GNU_SOURCE
#include "pond_client.h"
#include "pond_time.h"
#include "pond_uuid.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <msgpack.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BENCH_ENTITIES      1000                //  customers the events belong to
#define BENCH_TS_BASE       1640995200000000ULL //  2022-01-01T00:00:00Z, replay load
#define BENCH_TS_STEP       1000                //  replay load: 1 ms between events
#define BENCH_REPLY_WAIT    30000               //  msecs without any reply = failure
#define BENCH_LOAD_PRODUCERS 4                  //  replay: load with these ...
#define BENCH_LOAD_WINDOW   256                 //  ... each this many in flight
#define BENCH_START_WAIT    20000               //  msecs for store/broker to be ready

//  The event names of the replay load, in round-robin order; the "by
//  names" replay asks for the first two.
static const char *s_load_names [] = {
    "QUACKED", "BUTTON_CLICKED", "LABEL_ADDED", "LABEL_REMOVED"
};

typedef struct {
    const char *scenario;
    long events;                //  0: scenario's default
    int producers;
    int window;
    int size;                   //  target encoded event size, bytes
    const char *parent;         //  where our data directory is made
    bool keep;                  //  keep the data directory (debugging)
    bool verbose;
} bench_options_t;

//  ---------------------------------------------------------------------
//  Clock and small helpers

static int64_t
s_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
s_sleep_ms (int msecs)
{
    struct timespec ts = { msecs / 1000, (msecs % 1000) * 1000000L };
    nanosleep (&ts, NULL);
}

static int
s_compare_i64 (const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return (x > y) - (x < y);
}

//  Value at quantile q (0..1) of a sorted array, in microseconds.
static double
s_percentile_us (const int64_t *sorted, size_t count, double q)
{
    if (count == 0)
        return 0;
    size_t index = (size_t) (q * (double) count);
    if (index >= count)
        index = count - 1;
    return (double) sorted [index] / 1e3;
}

//  Our own CPU seconds (user + system, every thread).
static double
s_self_cpu (void)
{
    struct rusage usage;
    getrusage (RUSAGE_SELF, &usage);
    return (double) usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6
         + (double) usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6;
}

//  ---------------------------------------------------------------------
//  A child process's figures from /proc

typedef struct {
    long hwm_kb;                //  VmHWM: peak resident set
    double cpu_s;               //  utime + stime
    long long write_kb;         //  bytes it caused to be written to disk
} bench_proc_t;

static void
s_proc_sample (pid_t pid, bench_proc_t *sample)
{
    memset (sample, 0, sizeof *sample);
    char path [64], line [512];
    snprintf (path, sizeof path, "/proc/%d/status", (int) pid);
    FILE *file = fopen (path, "r");
    if (file) {
        while (fgets (line, sizeof line, file))
            if (strncmp (line, "VmHWM:", 6) == 0)
                sample->hwm_kb = atol (line + 6);
        fclose (file);
    }
    snprintf (path, sizeof path, "/proc/%d/stat", (int) pid);
    file = fopen (path, "r");
    if (file) {
        //  Fields 14 and 15 (utime, stime) follow the ")" that ends the name
        if (fgets (line, sizeof line, file)) {
            char *rest = strrchr (line, ')');
            unsigned long utime = 0, stime = 0;
            if (rest && sscanf (rest + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                                &utime, &stime) == 2)
                sample->cpu_s = (double) (utime + stime) / (double) sysconf (_SC_CLK_TCK);
        }
        fclose (file);
    }
    snprintf (path, sizeof path, "/proc/%d/io", (int) pid);
    file = fopen (path, "r");
    if (file) {
        while (fgets (line, sizeof line, file))
            if (strncmp (line, "write_bytes:", 12) == 0)
                sample->write_kb = atoll (line + 12) / 1024;
        fclose (file);
    }
}

//  ---------------------------------------------------------------------
//  The mesh under test: pond-store and pond-broker in a fresh directory

typedef struct {
    char bin_dir [PATH_MAX];
    char dir [PATH_MAX];            //  our data directory (made by us)
    pid_t store;
    pid_t broker;
    pond_endpoints_t eps;
    char store_endpoint [POND_ENDPOINT_MAX];    //  from DIR/store.zpl
    bool keep;
} bench_mesh_t;

static int
s_rmtree_entry (const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void) sb; (void) flag; (void) ftw;
    return remove (path);
}

//  Print the last lines of a child's log, to explain a failure.
static void
s_mesh_show_log (bench_mesh_t *self, const char *name)
{
    char path [PATH_MAX + 32];
    snprintf (path, sizeof path, "%s/%s.log", self->dir, name);
    FILE *file = fopen (path, "r");
    if (!file)
        return;
    char lines [10][512];
    size_t count = 0;
    while (fgets (lines [count % 10], sizeof lines [0], file))
        count++;
    fclose (file);
    fprintf (stderr, "pond-bench: last lines of %s:\n", path);
    for (size_t i = count > 10? count - 10: 0; i < count; i++)
        fprintf (stderr, "  %s", lines [i % 10]);
}

//  Start bin_dir/name with its arguments (NULL-terminated), output to
//  DIR/name.log. The child dies with us (PR_SET_PDEATHSIG). Returns the
//  pid or -1.
static pid_t
s_mesh_spawn (bench_mesh_t *self, const char *name, char *const argv [])
{
    char binary [PATH_MAX + 64], log [PATH_MAX + 32];
    snprintf (binary, sizeof binary, "%s/%s", self->bin_dir, name);
    snprintf (log, sizeof log, "%s/%s.log", self->dir, name);
    if (access (binary, X_OK)) {
        fprintf (stderr, "pond-bench: cannot run %s: %s (build it first)\n",
                 binary, strerror (errno));
        return -1;
    }
    pid_t parent = getpid ();
    pid_t pid = fork ();
    if (pid == 0) {
        prctl (PR_SET_PDEATHSIG, SIGKILL);
        if (getppid () != parent)
            _exit (127);
        int fd = open (log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2 (fd, 1);
            dup2 (fd, 2);
            close (fd);
        }
        execv (binary, argv);
        fprintf (stderr, "cannot exec %s: %s\n", binary, strerror (errno));
        _exit (127);
    }
    if (pid < 0)
        fprintf (stderr, "pond-bench: fork failed: %s\n", strerror (errno));
    return pid;
}

//  Wait until DIR/file exists while the child pid lives. Returns 0 or -1.
static int
s_mesh_wait_ready (bench_mesh_t *self, const char *file, pid_t pid)
{
    char path [PATH_MAX + 32];
    snprintf (path, sizeof path, "%s/%s", self->dir, file);
    for (int waited = 0; waited < BENCH_START_WAIT && !zsys_interrupted; waited += 10) {
        if (access (path, F_OK) == 0)
            return 0;
        int status;
        if (waitpid (pid, &status, WNOHANG) == pid) {
            fprintf (stderr, "pond-bench: pid %d exited (status %d) before writing %s\n",
                     (int) pid, status, path);
            return -1;
        }
        s_sleep_ms (10);
    }
    fprintf (stderr, "pond-bench: %s did not appear in %d ms\n", path, BENCH_START_WAIT);
    return -1;
}

//  SIGTERM, wait up to 10 s, then SIGKILL; always reaps. Returns the wait
//  status, or -1.
static int
s_mesh_stop_pid (pid_t pid)
{
    if (pid <= 0)
        return -1;
    kill (pid, SIGTERM);
    int status;
    for (int waited = 0; waited < 10000; waited += 10) {
        pid_t rc = waitpid (pid, &status, WNOHANG);
        if (rc == pid)
            return status;
        if (rc < 0)
            return -1;
        s_sleep_ms (10);
    }
    fprintf (stderr, "pond-bench: pid %d ignored SIGTERM for 10 s, killing it\n", (int) pid);
    kill (pid, SIGKILL);
    return waitpid (pid, &status, 0) == pid? status: -1;
}

//  True if store and broker both still run; a dead one is reaped, reported
//  and forgotten.
static bool
s_mesh_alive (bench_mesh_t *self)
{
    pid_t *pids [] = { &self->store, &self->broker };
    const char *names [] = { "pond-store", "pond-broker" };
    bool alive = true;
    for (int i = 0; i < 2; i++) {
        int status;
        if (*pids [i] > 0 && waitpid (*pids [i], &status, WNOHANG) == *pids [i]) {
            if (WIFSIGNALED (status))
                fprintf (stderr, "pond-bench: %s died of signal %d (%s)\n", names [i],
                         WTERMSIG (status), strsignal (WTERMSIG (status)));
            else
                fprintf (stderr, "pond-bench: %s exited with code %d\n", names [i],
                         WEXITSTATUS (status));
            s_mesh_show_log (self, names [i]);
            *pids [i] = 0;
        }
        if (*pids [i] <= 0)
            alive = false;
    }
    return alive;
}

static void
s_mesh_destroy (bench_mesh_t **self_p)
{
    if (*self_p) {
        bench_mesh_t *self = *self_p;
        s_mesh_alive (self);        //  Reports a process that died on us
        int status = s_mesh_stop_pid (self->broker);
        if (status > 0)
            fprintf (stderr, "pond-bench: pond-broker stopped with status %d\n", status);
        status = s_mesh_stop_pid (self->store);
        if (status > 0)
            fprintf (stderr, "pond-bench: pond-store stopped with status %d\n", status);
        if (self->keep)
            fprintf (stderr, "pond-bench: data kept in %s\n", self->dir);
        else
        if (*self->dir)
            nftw (self->dir, s_rmtree_entry, 16, FTW_DEPTH | FTW_PHYS);
        free (self);
        *self_p = NULL;
    }
}

//  Ask STATS for one counter, section/key (e.g. "store", "batches"); true
//  counts as 1, false as 0. Returns -1 if STATS or the counter is missing.
static long long
s_mesh_stat (bench_mesh_t *self, const char *section, const char *key)
{
    char err [POND_ERR_SIZE];
    char *json = pond_client_stats (self->eps.control, 5000, err, sizeof err);
    if (!json) {
        fprintf (stderr, "pond-bench: STATS failed: %s\n", err);
        return -1;
    }
    long long value = -1;
    cJSON *root = cJSON_Parse (json);
    cJSON *map = root? cJSON_GetObjectItemCaseSensitive (root, section): NULL;
    cJSON *item = map? cJSON_GetObjectItemCaseSensitive (map, key): NULL;
    if (cJSON_IsNumber (item))
        value = (long long) item->valuedouble;
    else
    if (cJSON_IsBool (item))
        value = cJSON_IsTrue (item)? 1: 0;
    cJSON_Delete (root);
    free (json);
    return value;
}

//  The store's synced WriteBatches (one WAL sync each) once it has stored
//  at least appended events; -1 if unknown. The broker answers STATS with
//  the store's counters as of its last poll (up to STORE_POLL_MS old), so
//  wait until they show every event we had ACKed.
static long long
s_mesh_commits (bench_mesh_t *self, long long appended)
{
    for (int waited = 0; waited < 5000 && !zsys_interrupted; waited += 50) {
        long long stored = s_mesh_stat (self, "store", "appended");
        if (stored < 0)
            return -1;
        if (stored >= appended)
            return s_mesh_stat (self, "store", "batches");
        s_sleep_ms (50);
    }
    return -1;
}

//  Wait until the broker knows the store is up, so that the first publish
//  is not refused (503) by a broker still looking for its store.
static int
s_mesh_wait_store_up (bench_mesh_t *self)
{
    for (int waited = 0; waited < BENCH_START_WAIT && !zsys_interrupted; waited += 20) {
        if (s_mesh_stat (self, "broker", "store_up") == 1)
            return 0;
        s_sleep_ms (20);
    }
    fprintf (stderr, "pond-bench: the broker did not see the store within %d ms\n",
             BENCH_START_WAIT);
    return -1;
}

//  Make a fresh directory under parent, start pond-store then pond-broker
//  in it, wait until both are ready. Returns NULL (reason printed) if
//  anything failed; nothing is left running then.
static bench_mesh_t *
s_mesh_new (const char *parent, bool keep)
{
    bench_mesh_t *self = (bench_mesh_t *) zmalloc (sizeof (bench_mesh_t));
    self->keep = keep;

    //  Store and broker come from the same build as we do
    char exe [PATH_MAX];
    ssize_t size = readlink ("/proc/self/exe", exe, sizeof exe - 1);
    if (size <= 0) {
        fprintf (stderr, "pond-bench: cannot read /proc/self/exe: %s\n", strerror (errno));
        free (self);
        return NULL;
    }
    exe [size] = 0;
    *strrchr (exe, '/') = 0;
    snprintf (self->bin_dir, sizeof self->bin_dir, "%s", exe);

    char real_parent [PATH_MAX];
    if (!realpath (parent, real_parent)) {
        fprintf (stderr, "pond-bench: cannot use --dir %s: %s\n", parent, strerror (errno));
        free (self);
        return NULL;
    }
    //  ipc:// paths must fit a sockaddr_un (108 bytes)
    int length = snprintf (self->dir, sizeof self->dir, "%s/pond-bench-XXXXXX", real_parent);
    if (length < 0 || length + strlen ("/control.ipc") >= 100) {
        fprintf (stderr, "pond-bench: %s is too long a path for ipc endpoints; "
                 "use a shorter --dir\n", real_parent);
        free (self);
        return NULL;
    }
    if (!mkdtemp (self->dir)) {
        fprintf (stderr, "pond-bench: cannot create a directory in %s: %s\n",
                 real_parent, strerror (errno));
        free (self);
        return NULL;
    }
    char *store_argv [] = { "pond-store", "--data", self->dir, NULL };
    self->store = s_mesh_spawn (self, "pond-store", store_argv);
    if (self->store < 0 || s_mesh_wait_ready (self, "store.zpl", self->store)) {
        s_mesh_show_log (self, "pond-store");
        s_mesh_destroy (&self);
        return NULL;
    }
    char path [PATH_MAX + 32];
    snprintf (path, sizeof path, "%s/store.zpl", self->dir);
    zconfig_t *config = zconfig_load (path);
    snprintf (self->store_endpoint, sizeof self->store_endpoint, "%s",
              config? zconfig_get (config, "store/endpoint", ""): "");
    zconfig_destroy (&config);
    char *broker_argv [] = { "pond-broker", "--data", self->dir, NULL };
    self->broker = s_mesh_spawn (self, "pond-broker", broker_argv);
    if (self->broker < 0 || s_mesh_wait_ready (self, "broker.zpl", self->broker)
    ||  pond_endpoints_resolve (self->dir, &self->eps) || s_mesh_wait_store_up (self)) {
        s_mesh_show_log (self, "pond-broker");
        s_mesh_destroy (&self);
        return NULL;
    }
    return self;
}

//  ---------------------------------------------------------------------
//  Events, encoded before the clock starts

typedef struct {
    uint8_t *bytes;             //  every encoded event, back to back
    size_t *offsets;            //  count + 1 offsets into bytes
    uint8_t (*ids) [POND_ID_SIZE];
    size_t count;
} bench_events_t;

//  Event i's id: a UUIDv7 whose last six random bytes carry the producer
//  and the index, so an ACK leads straight back to its event.
static int
s_make_id (uint8_t *id, int producer, size_t index)
{
    if (pond_uuid_v7 (id))
        return -1;
    id [10] = (uint8_t) (producer >> 8);
    id [11] = (uint8_t) producer;
    for (int byte = 0; byte < 4; byte++)
        id [12 + byte] = (uint8_t) (index >> (24 - 8 * byte));
    return 0;
}

//  Index of the event whose id this is, or -1 if it is none of ours.
static long
s_id_index (const bench_events_t *events, int producer, const uint8_t *id)
{
    if (id [10] != (uint8_t) (producer >> 8) || id [11] != (uint8_t) producer)
        return -1;
    size_t index = ((size_t) id [12] << 24) | ((size_t) id [13] << 16)
                 | ((size_t) id [14] << 8) | id [15];
    if (index >= events->count || memcmp (events->ids [index], id, POND_ID_SIZE))
        return -1;
    return (long) index;
}

//  The sensory data of a quack, with a pad string of pad bytes.
static int
s_set_data (pond_event_t *event, size_t index, size_t pad)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 4);
    msgpack_pack_str_with_body (&pk, "duration_ms", 11);
    msgpack_pack_uint32 (&pk, (uint32_t) (80 + index % 400));
    msgpack_pack_str_with_body (&pk, "loudness_db", 11);
    msgpack_pack_double (&pk, 40.0 + (double) (index % 50) / 2);
    msgpack_pack_str_with_body (&pk, "firmware", 8);
    msgpack_pack_str_with_body (&pk, "silo-2.3.1", 10);
    msgpack_pack_str_with_body (&pk, "pad", 3);
    char text [POND_EVENT_MAX_SIZE];
    for (size_t i = 0; i < pad && i < sizeof text; i++)
        text [i] = (char) ('a' + (index + i) % 26);
    msgpack_pack_str_with_body (&pk, text, pad);
    char err [POND_ERR_SIZE];
    int rc = pond_event_set_data (event, (const uint8_t *) buffer.data, buffer.size,
                                  err, sizeof err);
    if (rc)
        fprintf (stderr, "pond-bench: cannot set data: %s\n", err);
    msgpack_sbuffer_destroy (&buffer);
    return rc;
}

static void
s_events_destroy (bench_events_t *self)
{
    free (self->bytes);
    free (self->offsets);
    free (self->ids);
    memset (self, 0, sizeof *self);
}

//  Encode count events for one producer. Event i is the first + i-th of
//  the whole run: named names [(first + i) % names_count], with ts now
//  (ingest) or BENCH_TS_BASE + (first + i) ms (load, ts_base true), data
//  padded so that each event is about size bytes. Returns 0 or -1.
static int
s_events_new (bench_events_t *self, int producer, size_t first, size_t count,
              const char **names, size_t names_count, bool ts_base, int size)
{
    memset (self, 0, sizeof *self);
    pond_event_t *event = pond_event_new (names [0], "cust-0");
    char source [32];
    snprintf (source, sizeof source, "bench-%d", producer);
    if (!event || pond_event_set_source (event, source)) {
        pond_event_destroy (&event);
        return -1;
    }
    //  Find the pad that brings a typical event to the size asked for
    size_t pad = 0;
    for (int attempt = 0; attempt < 4; attempt++) {
        if (s_set_data (event, 0, pad)) {
            pond_event_destroy (&event);
            return -1;
        }
        char err [POND_ERR_SIZE];
        size_t encoded;
        uint8_t *bytes = pond_event_encode (event, &encoded, err, sizeof err);
        if (!bytes) {
            fprintf (stderr, "pond-bench: cannot encode: %s\n", err);
            pond_event_destroy (&event);
            return -1;
        }
        free (bytes);
        long want = (long) pad + size - (long) encoded;
        pad = want > 0? (size_t) want: 0;
    }
    size_t capacity = count * ((size_t) size + 64) + 1024;
    self->bytes = malloc (capacity);
    self->offsets = calloc (count + 1, sizeof (size_t));
    self->ids = calloc (count? count: 1, POND_ID_SIZE);
    if (!self->bytes || !self->offsets || !self->ids) {
        pond_event_destroy (&event);
        s_events_destroy (self);
        return -1;
    }
    int rc = 0;
    size_t used = 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        size_t global = first + i;
        char entity [32];
        snprintf (entity, sizeof entity, "cust-%04zu", global % BENCH_ENTITIES);
        pond_event_set_name (event, names [global % names_count]);
        pond_event_set_entity (event, entity);
        pond_event_set_ts (event, ts_base? BENCH_TS_BASE + global * BENCH_TS_STEP
                                         : pond_time_now ());
        if (s_make_id (self->ids [i], producer, i) || s_set_data (event, global, pad)) {
            rc = -1;
            break;
        }
        pond_event_set_id (event, self->ids [i]);
        char err [POND_ERR_SIZE];
        size_t encoded;
        uint8_t *bytes = pond_event_encode (event, &encoded, err, sizeof err);
        if (!bytes) {
            fprintf (stderr, "pond-bench: cannot encode: %s\n", err);
            rc = -1;
            break;
        }
        if (used + encoded > capacity) {
            capacity = (used + encoded) * 2;
            uint8_t *bigger = realloc (self->bytes, capacity);
            if (!bigger) {
                free (bytes);
                rc = -1;
                break;
            }
            self->bytes = bigger;
        }
        memcpy (self->bytes + used, bytes, encoded);
        free (bytes);
        self->offsets [i] = used;
        used += encoded;
        self->offsets [i + 1] = used;
    }
    self->count = count;
    pond_event_destroy (&event);
    if (rc)
        s_events_destroy (self);
    return rc;
}

//  ---------------------------------------------------------------------
//  Producers

typedef struct {
    int index;                  //  producer number, in the ids
    const char *ingest;
    int window;
    bench_events_t events;
    pthread_barrier_t *barrier; //  NULL: run at once, no thread
    int64_t *latency;           //  per event: publish -> ACK, ns
    int64_t start;              //  monotonic ns
    int64_t end;
    uint64_t nacks;             //  NACK 503 received (and resent)
    uint64_t retries;           //  resends by pond_client_publish
    int rc;
    char error [POND_REASON_MAX + 192];
} bench_producer_t;

//  Window 1: one publish at a time, each waiting for its durable ACK.
static int
s_producer_sync (bench_producer_t *self, pond_client_t *client)
{
    bench_events_t *events = &self->events;
    for (size_t i = 0; i < events->count; i++) {
        if (zsys_interrupted) {
            snprintf (self->error, sizeof self->error, "interrupted");
            return -1;
        }
        int64_t sent = s_now_ns ();
        pond_ack_t ack;
        if (pond_client_publish_bytes (client, events->ids [i],
                                       events->bytes + events->offsets [i],
                                       events->offsets [i + 1] - events->offsets [i], &ack)) {
            snprintf (self->error, sizeof self->error, "publish %zu: %d %s", i,
                      pond_client_code (client), pond_client_reason (client));
            return -1;
        }
        self->latency [i] = s_now_ns () - sent;
    }
    return 0;
}

//  Window > 1: keep window publishes outstanding; match each ACK to its
//  event by id; after NACK 503 resend the same bytes when retry_ms is up.
static int
s_producer_pipelined (bench_producer_t *self, pond_client_t *client)
{
    bench_events_t *events = &self->events;
    size_t count = events->count;
    //  Event state: 0 not sent, 1 in flight, 2 waiting to be resent, 3 ACKed
    uint8_t *state = calloc (count? count: 1, 1);
    int64_t *sent_at = calloc (count? count: 1, sizeof (int64_t));
    //  Resend queue (FIFO: every NACK gets the same retry_ms)
    size_t *resend = calloc ((size_t) self->window + 1, sizeof (size_t));
    int64_t *resend_at = calloc ((size_t) self->window + 1, sizeof (int64_t));
    size_t resend_head = 0, resend_count = 0, queue_size = (size_t) self->window + 1;
    int rc = 0;
    if (!state || !sent_at || !resend || !resend_at) {
        snprintf (self->error, sizeof self->error, "out of memory");
        rc = -1;
    }
    size_t next = 0, acked = 0, in_flight = 0;
    int64_t last_reply = s_now_ns ();
    while (rc == 0 && acked < count) {
        if (zsys_interrupted) {
            snprintf (self->error, sizeof self->error, "interrupted");
            rc = -1;
            break;
        }
        int64_t now = s_now_ns ();
        //  Resend what the broker asked us to retry, once it is time
        while (resend_count && resend_at [resend_head] <= now) {
            size_t i = resend [resend_head];
            resend_head = (resend_head + 1) % queue_size;
            resend_count--;
            if (state [i] != 2)
                continue;
            if (pond_client_send_bytes (client, events->bytes + events->offsets [i],
                                        events->offsets [i + 1] - events->offsets [i])) {
                rc = -1;
                break;
            }
            state [i] = 1;
        }
        //  Fill the window
        while (rc == 0 && in_flight < (size_t) self->window && next < count) {
            sent_at [next] = s_now_ns ();
            if (pond_client_send_bytes (client, events->bytes + events->offsets [next],
                                        events->offsets [next + 1] - events->offsets [next])) {
                rc = -1;
                break;
            }
            state [next++] = 1;
            in_flight++;
        }
        if (rc) {
            snprintf (self->error, sizeof self->error, "send: %d %s",
                      pond_client_code (client), pond_client_reason (client));
            break;
        }
        int timeout = 1000;
        if (resend_count) {
            int64_t wait = (resend_at [resend_head] - s_now_ns ()) / 1000000;
            timeout = wait < 0? 0: wait < 1000? (int) wait: 1000;
        }
        pond_ack_t ack;
        pond_nack_t nack;
        int got = pond_client_recv (client, timeout, &ack, &nack);
        now = s_now_ns ();
        if (got == 1) {
            last_reply = now;
            long i = s_id_index (events, self->index, ack.id);
            if (i >= 0 && state [i] != 3) {
                self->latency [i] = now - sent_at [i];
                state [i] = 3;
                acked++;
                in_flight--;
            }
        }
        else
        if (got == 0) {
            last_reply = now;
            long i = nack.has_id? s_id_index (events, self->index, nack.id): -1;
            if (nack.code != POND_CODE_UNAVAILABLE || i < 0) {
                snprintf (self->error, sizeof self->error, "NACK %u: %s",
                          nack.code, nack.reason);
                rc = -1;
            }
            else
            if (state [i] == 1 && resend_count == queue_size) {
                snprintf (self->error, sizeof self->error, "resend queue full");
                rc = -1;
            }
            else
            if (state [i] == 1) {
                self->nacks++;
                state [i] = 2;
                size_t tail = (resend_head + resend_count) % queue_size;
                resend [tail] = (size_t) i;
                resend_at [tail] = now + (int64_t) (nack.retry_ms? nack.retry_ms: 100) * 1000000;
                resend_count++;
            }
        }
        else
        if (pond_client_code (client) == POND_CODE_INTERRUPTED) {
            snprintf (self->error, sizeof self->error, "interrupted");
            rc = -1;
        }
        else
        if (now - last_reply > (int64_t) BENCH_REPLY_WAIT * 1000000) {
            snprintf (self->error, sizeof self->error,
                      "no ACK or NACK for %d ms (%zu of %zu ACKed)",
                      BENCH_REPLY_WAIT, acked, count);
            rc = -1;
        }
    }
    free (state);
    free (sent_at);
    free (resend);
    free (resend_at);
    return rc;
}

static void *
s_producer_run (void *args)
{
    bench_producer_t *self = (bench_producer_t *) args;
    pond_client_t *client = pond_client_new (self->ingest);
    if (!client) {
        snprintf (self->error, sizeof self->error, "cannot connect to %s", self->ingest);
        self->rc = -1;
    }
    else {
        //  Long waits: a slow ACK is a figure to report, not a reason to resend
        pond_client_set_timeout (client, 10000, 3);
        if (pond_client_ping (client, 10000)) {
            snprintf (self->error, sizeof self->error, "broker not answering PING: %s",
                      pond_client_reason (client));
            self->rc = -1;
        }
    }
    //  Everyone starts together, connected, whatever happened
    if (self->barrier)
        pthread_barrier_wait (self->barrier);
    self->start = s_now_ns ();
    if (self->rc == 0)
        self->rc = self->window <= 1? s_producer_sync (self, client)
                                    : s_producer_pipelined (self, client);
    self->end = s_now_ns ();
    if (client)
        self->retries = pond_client_retries (client);
    pond_client_destroy (&client);
    return NULL;
}

typedef struct {
    double seconds;
    size_t events;
    double bytes_avg;
    uint64_t nacks;
    uint64_t retries;
    int64_t *latency;           //  all events, sorted
} bench_ingest_t;

//  Publish total events of the given names from producers threads with
//  window each, all starting together. Fills result (caller frees
//  result->latency). Returns 0 or -1 (reason printed).
static int
s_ingest_run (bench_mesh_t *mesh, int producers, int window, size_t total,
              const char **names, size_t names_count, bool ts_base, int size,
              bench_ingest_t *result)
{
    memset (result, 0, sizeof *result);
    bench_producer_t *producer = calloc ((size_t) producers, sizeof (bench_producer_t));
    pthread_t *threads = calloc ((size_t) producers, sizeof (pthread_t));
    result->latency = calloc (total? total: 1, sizeof (int64_t));
    if (!producer || !threads || !result->latency) {
        fprintf (stderr, "pond-bench: out of memory\n");
        free (producer);
        free (threads);
        return -1;
    }
    int rc = 0;
    size_t first = 0, bytes = 0;
    for (int p = 0; p < producers && rc == 0; p++) {
        size_t count = total / (size_t) producers + ((size_t) p < total % (size_t) producers);
        producer [p].index = p;
        producer [p].ingest = mesh->eps.ingest;
        producer [p].window = window;
        producer [p].latency = result->latency + first;
        rc = s_events_new (&producer [p].events, p, first, count, names, names_count,
                           ts_base, size);
        if (rc == 0)
            bytes += producer [p].events.offsets [count];
        first += count;
    }
    pthread_barrier_t barrier;
    int started = 0;
    if (rc == 0) {
        pthread_barrier_init (&barrier, NULL, (unsigned) producers);
        for (started = 0; started < producers; started++) {
            producer [started].barrier = &barrier;
            if (pthread_create (&threads [started], NULL, s_producer_run, &producer [started]))
                break;
        }
        if (started < producers) {
            //  Cannot happen on a sane machine; the barrier would hang
            fprintf (stderr, "pond-bench: cannot start producer threads\n");
            abort ();
        }
        for (int p = 0; p < producers; p++)
            pthread_join (threads [p], NULL);
        pthread_barrier_destroy (&barrier);
        int64_t start = producer [0].start, end = producer [0].end;
        for (int p = 0; p < producers; p++) {
            if (producer [p].start < start)
                start = producer [p].start;
            if (producer [p].end > end)
                end = producer [p].end;
            result->nacks += producer [p].nacks;
            result->retries += producer [p].retries;
            if (producer [p].rc) {
                fprintf (stderr, "pond-bench: producer %d: %s\n", p, producer [p].error);
                rc = -1;
            }
        }
        result->seconds = (double) (end - start) / 1e9;
        result->events = total;
        result->bytes_avg = total? (double) bytes / (double) total: 0;
        qsort (result->latency, total, sizeof (int64_t), s_compare_i64);
    }
    for (int p = 0; p < producers; p++)
        s_events_destroy (&producer [p].events);
    free (producer);
    free (threads);
    return rc;
}

//  Median round trip of count PINGs to endpoint (a broker's ingest socket,
//  or the store's link socket, which answers PING too), in microseconds;
//  -1 if it did not answer. Tells messaging cost apart from commit cost.
static double
s_ping_p50_us (const char *endpoint, int count)
{
    pond_client_t *client = pond_client_new (endpoint);
    int64_t *rtt = calloc ((size_t) count, sizeof (int64_t));
    double p50 = -1;
    if (client && rtt && pond_client_ping (client, 5000) == 0) {
        int done = 0;
        for (; done < count && !zsys_interrupted; done++) {
            int64_t sent = s_now_ns ();
            if (pond_client_ping (client, 5000))
                break;
            rtt [done] = s_now_ns () - sent;
        }
        if (done == count) {
            qsort (rtt, (size_t) count, sizeof (int64_t), s_compare_i64);
            p50 = s_percentile_us (rtt, (size_t) count, 0.5);
        }
    }
    free (rtt);
    pond_client_destroy (&client);
    return p50;
}

//  ---------------------------------------------------------------------
//  Scenario: ingest

static int
s_scenario_ingest (bench_mesh_t *mesh, bench_options_t *options)
{
    static const char *quacked [] = { "QUACKED" };
    //  Idle round trips first, to split latency into messaging and commit
    double broker_rtt = s_ping_p50_us (mesh->eps.ingest, 300);
    double store_rtt = s_ping_p50_us (mesh->store_endpoint, 300);
    bench_proc_t store_before, broker_before, store_after, broker_after;
    long long commits_before = s_mesh_commits (mesh, 0);
    s_proc_sample (mesh->store, &store_before);
    s_proc_sample (mesh->broker, &broker_before);
    double cpu_before = s_self_cpu ();

    bench_ingest_t result;
    int rc = s_ingest_run (mesh, options->producers, options->window, (size_t) options->events,
                           quacked, 1, false, options->size, &result);

    double cpu_bench = s_self_cpu () - cpu_before;
    s_proc_sample (mesh->store, &store_after);
    s_proc_sample (mesh->broker, &broker_after);
    long long commits = rc? -1: s_mesh_commits (mesh, (long long) result.events);
    if (commits >= 0 && commits_before >= 0)
        commits -= commits_before;
    if (rc == 0)
        printf ("scenario=ingest producers=%d window=%d events=%zu event_bytes=%.0f "
                "seconds=%.3f events_per_s=%.0f p50_us=%.0f p90_us=%.0f p99_us=%.0f "
                "max_us=%.0f nacks=%" PRIu64 " retries=%" PRIu64 " store_commits=%lld "
                "events_per_commit=%.1f store_rss_kb=%ld broker_rss_kb=%ld "
                "store_cpu_s=%.2f broker_cpu_s=%.2f bench_cpu_s=%.2f store_write_kb=%lld "
                "broker_rtt_us=%.0f store_rtt_us=%.0f\n",
                options->producers, options->window, result.events, result.bytes_avg,
                result.seconds, (double) result.events / result.seconds,
                s_percentile_us (result.latency, result.events, 0.50),
                s_percentile_us (result.latency, result.events, 0.90),
                s_percentile_us (result.latency, result.events, 0.99),
                s_percentile_us (result.latency, result.events, 1.0),
                result.nacks, result.retries, commits,
                commits > 0? (double) result.events / (double) commits: 0.0,
                store_after.hwm_kb, broker_after.hwm_kb,
                store_after.cpu_s - store_before.cpu_s,
                broker_after.cpu_s - broker_before.cpu_s, cpu_bench,
                store_after.write_kb - store_before.write_kb, broker_rtt, store_rtt);
    free (result.latency);
    return rc;
}

//  ---------------------------------------------------------------------
//  Scenario: replay

typedef struct {
    size_t events;
    double seconds;
    double first_ms;            //  time to the first event
} bench_replay_t;

//  Time one replay from pond_replay_new to its END, decoding every event.
//  by_seq: events must come with seq 1, 2, 3, ...; else in (ts, seq)
//  order. Returns 0, or -1 if it failed or the order was wrong.
static int
s_replay_time (bench_mesh_t *mesh, const pond_replay_req_t *req, bool by_seq,
               size_t expected, bench_replay_t *result)
{
    memset (result, 0, sizeof *result);
    int64_t start = s_now_ns ();
    pond_replay_t *replay = pond_replay_new (mesh->eps.control, req);
    if (!replay) {
        fprintf (stderr, "pond-bench: cannot start a replay on %s\n", mesh->eps.control);
        return -1;
    }
    uint64_t last_seq = 0, last_ts = 0;
    size_t disorder = 0;
    int waited = 0;
    while (true) {
        pond_event_t *event = pond_replay_next (replay, 1000);
        if (!event) {
            //  Timed out: go on waiting while store and broker live
            if (pond_replay_code (replay) || zsys_interrupted || !s_mesh_alive (mesh)
            ||  (waited += 1000) >= BENCH_REPLY_WAIT)
                break;
            continue;
        }
        waited = 0;
        if (result->events++ == 0)
            result->first_ms = (double) (s_now_ns () - start) / 1e6;
        uint64_t seq = pond_event_seq (event), ts = pond_event_ts (event);
        if (by_seq? seq != last_seq + 1
                  : ts < last_ts || (ts == last_ts && seq <= last_seq))
            disorder++;
        last_seq = seq;
        last_ts = ts;
        pond_event_destroy (&event);
    }
    result->seconds = (double) (s_now_ns () - start) / 1e9;
    int rc = 0;
    if (pond_replay_code (replay) != POND_CODE_OK) {
        if (pond_replay_code (replay) == 0 && !zsys_interrupted)
            fprintf (stderr, "pond-bench: the replay stalled (%s)\n",
                     s_mesh_alive (mesh)? "no event for 30 s": "a process died");
        fprintf (stderr, "pond-bench: replay failed after %zu events: %d %s\n",
                 result->events, pond_replay_code (replay), pond_replay_reason (replay));
        rc = -1;
    }
    else
    if (disorder || result->events != expected) {
        fprintf (stderr, "pond-bench: replay gave %zu events (expected %zu), %zu out of order\n",
                 result->events, expected, disorder);
        rc = -1;
    }
    pond_replay_destroy (&replay);
    return rc;
}

static int
s_scenario_replay (bench_mesh_t *mesh, bench_options_t *options)
{
    size_t total = (size_t) options->events;
    size_t names_count = sizeof s_load_names / sizeof s_load_names [0];
    bench_ingest_t load;
    int rc = s_ingest_run (mesh, BENCH_LOAD_PRODUCERS, BENCH_LOAD_WINDOW, total,
                           s_load_names, names_count, true, options->size, &load);
    free (load.latency);
    if (rc)
        return rc;

    bench_proc_t store_before, broker_before, store_after, broker_after;
    s_proc_sample (mesh->store, &store_before);
    s_proc_sample (mesh->broker, &broker_before);
    double cpu_before = s_self_cpu ();

    //  (a) the whole log, by seq
    pond_replay_req_t req;
    memset (&req, 0, sizeof req);
    bench_replay_t by_seq;
    rc = s_replay_time (mesh, &req, true, total, &by_seq);

    //  (b) the first two names, over the first half of the time range:
    //  the events i < total / 2 with i % 4 in {0, 1}
    size_t half = total / 2, expected = 0;
    for (size_t i = 0; i < half; i++)
        if (i % names_count < 2)
            expected++;
    memset (&req, 0, sizeof req);
    req.names_count = 2;
    strcpy (req.names [0], s_load_names [0]);
    strcpy (req.names [1], s_load_names [1]);
    req.from_ts = BENCH_TS_BASE;
    req.to_ts = BENCH_TS_BASE + (uint64_t) half * BENCH_TS_STEP;
    bench_replay_t by_names;
    if (rc == 0)
        rc = s_replay_time (mesh, &req, false, expected, &by_names);

    double cpu_bench = s_self_cpu () - cpu_before;
    s_proc_sample (mesh->store, &store_after);
    s_proc_sample (mesh->broker, &broker_after);
    if (rc == 0)
        printf ("scenario=replay events=%zu event_bytes=%.0f load_seconds=%.3f "
                "load_events_per_s=%.0f seq_events=%zu seq_seconds=%.3f "
                "seq_events_per_s=%.0f seq_first_ms=%.1f names_events=%zu "
                "names_seconds=%.3f names_events_per_s=%.0f names_first_ms=%.1f "
                "store_rss_kb=%ld broker_rss_kb=%ld store_cpu_s=%.2f broker_cpu_s=%.2f "
                "bench_cpu_s=%.2f\n",
                total, load.bytes_avg, load.seconds, (double) total / load.seconds,
                by_seq.events, by_seq.seconds, (double) by_seq.events / by_seq.seconds,
                by_seq.first_ms, by_names.events, by_names.seconds,
                (double) by_names.events / by_names.seconds, by_names.first_ms,
                store_after.hwm_kb, broker_after.hwm_kb,
                store_after.cpu_s - store_before.cpu_s,
                broker_after.cpu_s - broker_before.cpu_s, cpu_bench);
    return rc;
}

//  ---------------------------------------------------------------------
//  Command line

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: pond-bench SCENARIO [OPTIONS]\n"
        "\n"
        "Starts its own pond-store and pond-broker (from this program's directory)\n"
        "in a fresh data directory, runs one scenario, prints one line of\n"
        "key=value results, stops both and removes the directory.\n"
        "\n"
        "Scenarios:\n"
        "  ingest   P producers publish N ~SIZE-byte QUACKED events, each keeping W\n"
        "           publishes outstanding (W=1: wait for every ACK). Reports\n"
        "           ACKed events per second and publish->ACK latency percentiles.\n"
        "  replay   loads N events (4 names), then times a replay of the whole\n"
        "           log by seq and a replay of 2 names over half the time range.\n"
        "\n"
        "Options:\n"
        "  --events N      events in all (default: ingest 5000 with W=1, else\n"
        "                  50000; replay 300000)\n"
        "  --producers P   producer threads, one client each (default 1)\n"
        "  --window W      publishes in flight per producer (default 1)\n"
        "  --size BYTES    encoded event size, about (default 200)\n"
        "  --dir DIR       where to make the data directory (default .); use a\n"
        "                  real disk, not tmpfs, or fsync costs nothing\n"
        "  --keep          keep the data directory and the processes' logs\n"
        "  --help          show this text\n");
}

int
main (int argc, char *argv [])
{
    bench_options_t options = {
        .producers = 1, .window = 1, .size = 200, .parent = "."
    };
    static const struct option long_options [] = {
        { "events", required_argument, NULL, 'n' },
        { "producers", required_argument, NULL, 'p' },
        { "window", required_argument, NULL, 'w' },
        { "size", required_argument, NULL, 's' },
        { "dir", required_argument, NULL, 'd' },
        { "keep", no_argument, NULL, 'k' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int option;
    while ((option = getopt_long (argc, argv, "n:p:w:s:d:kh", long_options, NULL)) != -1) {
        switch (option) {
            case 'n': options.events = atol (optarg); break;
            case 'p': options.producers = atoi (optarg); break;
            case 'w': options.window = atoi (optarg); break;
            case 's': options.size = atoi (optarg); break;
            case 'd': options.parent = optarg; break;
            case 'k': options.keep = true; break;
            case 'h': s_usage (stdout); return 0;
            default:
                fprintf (stderr, "pond-bench: see pond-bench --help\n");
                return 2;
        }
    }
    if (optind != argc - 1) {
        s_usage (stderr);
        return 2;
    }
    options.scenario = argv [optind];
    bool ingest = streq (options.scenario, "ingest");
    if (!ingest && !streq (options.scenario, "replay")) {
        fprintf (stderr, "pond-bench: unknown scenario '%s'; see pond-bench --help\n",
                 options.scenario);
        return 2;
    }
    if (options.events == 0)
        options.events = ingest? (options.window <= 1? 5000: 50000): 300000;
    if (options.events < 1 || options.events > 100000000
    ||  options.producers < 1 || options.producers > 256
    ||  options.window < 1 || options.window > 4096
    ||  options.size < 64 || options.size > 60000) {
        fprintf (stderr, "pond-bench: --events 1.., --producers 1..256, --window 1..4096, "
                 "--size 64..60000\n");
        return 2;
    }
    if (options.events < BENCH_LOAD_PRODUCERS && !ingest)
        options.events = BENCH_LOAD_PRODUCERS;

    //  SIGINT/SIGTERM set zsys_interrupted; every wait below checks it
    zsys_init ();
    zsys_set_logident ("pond-bench");
    bench_mesh_t *mesh = s_mesh_new (options.parent, options.keep);
    if (!mesh)
        return 1;
    int rc = ingest? s_scenario_ingest (mesh, &options): s_scenario_replay (mesh, &options);
    fflush (stdout);
    s_mesh_destroy (&mesh);
    if (zsys_interrupted)
        return 130;
    return rc? 1: 0;
}
