/*  pond-bench: how fast is pond's durable log, measured honestly.

    Starts its own pond-store and pond-broker (from the directory this
    program lives in) on ipc endpoints inside a fresh data directory (or
    in --data DIR, kept), or works on a running mesh (--mesh DIR, pond
    up), drives them through the client library exactly as a producer, a
    subscriber or an admin would, prints ONE line of key=value results,
    then stops what it started by pid and removes what it made.

        pond-bench ingest [--events N] [--producers P | --connections C] [--window W]
                          [--rate R]
        pond-bench load   [--events N] [--entities E] [--names A,B]
        pond-bench replay [--events N] [--range M] [--slow-rate R --slow-seconds S]
        pond-bench fanout [--subscribers S] [--events N] [--producers P] [--window W]

    ingest: N events in all from P producers, each with its own
    pond_client_t, each keeping W publishes outstanding. Two ways to run
    them:
    - --producers P: P threads (CZMQ sockets are not thread-safe). W = 1
      calls pond_client_publish_bytes and waits for each ACK; W > 1
      pipelines (the event loop below, with one client).
    - --connections C: C clients driven from ONE thread, as redis-benchmark
      -c C -P W drives its connections: an event loop waits on every
      client's socket (pond_client_sock) and sends a client's next event
      as soon as an ACK frees a place in its window; NACK 503 queues the
      event for a resend after retry_ms. On the 2 cores that load
      generator, store and broker share, this costs the generator a
      fraction of the CPU of P threads.
    Events are encoded before the clock starts (a producer's own encoding
    is not pond's cost). The rate is ACKed events over the time from the
    common start to the last ACK; latency is per event, from the call
    that first sends it to the moment its ACK (durable in the store) is
    read, retries included. With --rate R (open loop), each producer sends
    event i at start + i / R' (R' = R / P) whatever the ACKs do, with no
    window, and latency counts from that scheduled time, so a stall is
    charged to every event it delays (no coordinated omission). Between
    sends the loop sleeps until the next scheduled send or a reply,
    whichever comes first. If the mesh cannot keep up, the achieved rate
    says so. bench_timed_cpu_s is this program's CPU from the start to
    the last ACK (bench_cpu_s also counts encoding and connecting).

    load: publishes N events (names round robin, E entities, ts 1 ms
    apart from 2022-01-01) with pipelined producers, in chunks so memory
    stays bounded; with --data DIR the store is kept for later replays,
    with --mesh DIR it goes to a running mesh.

    replay: loads N events (4 names, 1000 entities, ts 1 ms apart) fast,
    unless --data DIR already holds exactly them (loaded once, replayed by
    every round), then times pond_reader_new plus draining
    pond_reader_next (every event decoded and checked at the reader) for
    M events by seq (a seq range in the middle of the log), and for 2
    names over a time window holding M of their events (2M events of the
    log). M defaults to N / 4. With --slow-rate, a third replay of the
    same window is read at only R events/s for S seconds while the RSS of
    store and broker is sampled every 100 ms: with credit flow control it
    stays flat.

    fanout: S subscriber threads (pond_sub_t on QUACKED, each event
    decoded) while P pipelined producers publish N events: deliveries/s is
    the events received by all subscribers over the time from the first
    publish to the last delivery. Then, at 10% of the ingest rate just
    measured (open loop, one producer), publish -> subscriber latency
    from each event's scheduled send time to its arrival at a subscriber.

    Besides the figures, each line carries peak RSS (VmHWM) of store and
    broker and of this load generator, their CPU seconds during the timed
    part, and for ingest the store's synced WriteBatches (one WAL sync
    each: "commits") from STATS and the idle PING round trips to the
    broker and to the store, measured before the clock starts: W = 1
    latency is roughly the two round trips plus one commit.
*/
#define _GNU_SOURCE
#include "bench_quack.h"
#include "pond_client.h"
#include "pond_process.h"
#include "pond_time.h"
#include "pond_thread.h"
#include "pond_uuid.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <msgpack.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
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
#define BENCH_LOAD_CHUNK    1000000             //  load: events encoded at a time
#define BENCH_MAX_NAMES     8                   //  load: --names
#define BENCH_LAT_PRODUCER  100                 //  fanout: the latency phase's producer
#define BENCH_MAX_SUBS      64                  //  fanout: --subscribers

//  The event names of the replay load, in round-robin order; the "by
//  names" replay asks for the first two.
static const char *s_load_names [] = {
    "QUACKED", "BUTTON_CLICKED", "LABEL_ADDED", "LABEL_REMOVED"
};

typedef struct {
    const char *scenario;
    long events;                //  0: scenario's default
    int producers;
    bool loop;                  //  ingest: --connections, one event-loop thread
    int window;
    double rate;                //  ingest: open loop at this many events/s (0: closed)
    int size;                   //  target encoded event size, bytes
    long range;                 //  replay: events per timed replay (0: events / 4)
    double slow_rate;           //  replay: slow reader's events/s (0: none)
    double slow_seconds;        //  replay: how long the slow reader reads
    int subscribers;            //  fanout
    const char *names [BENCH_MAX_NAMES];   //  load: event names, round robin
    size_t names_count;
    const char *parent;         //  where our data directory is made
    const char *data;           //  --data: our data directory, kept
    const char *mesh;           //  --mesh: a running mesh's data directory
    bool keep;                  //  keep the data directory (debugging)
    bool verbose;
} bench_options_t;

//  Entities the events belong to: cust-0000 ... (--entities)
static size_t s_entities = BENCH_ENTITIES;

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

//  Our own peak RSS (VmHWM), in KiB.
static long
s_self_hwm_kb (void)
{
    struct rusage usage;
    getrusage (RUSAGE_SELF, &usage);
    return usage.ru_maxrss;
}

//  ---------------------------------------------------------------------
//  A child process's figures from /proc

typedef struct {
    long hwm_kb;                //  VmHWM: peak resident set
    long rss_kb;                //  VmRSS: resident set now
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
            else
            if (strncmp (line, "VmRSS:", 6) == 0)
                sample->rss_kb = atol (line + 6);
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
    bool given;                     //  dir is --data: kept, not made by us
    bool attached;                  //  a running mesh (--mesh): we started nothing
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
    pond_process_options_t options = { .death_signal = SIGKILL };
    pid_t pid = pond_process_spawn (binary, argv, log, &options);
    if (pid < 0)
        fprintf (stderr, "pond-bench: cannot start %s: %s\n", binary, strerror (errno));
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
        if (pond_process_wait_exit (pid, 0, &status) == 0) {
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
    int rc = pond_process_wait_exit (pid, 10000, &status);
    if (rc == 1) {
        fprintf (stderr, "pond-bench: pid %d ignored SIGTERM for 10 s, killing it\n", (int) pid);
        return pond_process_stop (pid, SIGKILL, -1);
    }
    return rc == 0? status: -1;
}

//  True if store and broker both still run; a dead one is reaped, reported
//  and forgotten.
static bool
s_mesh_alive (bench_mesh_t *self)
{
    if (self->attached)
        return true;
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
        if (self->keep && !self->given)
            fprintf (stderr, "pond-bench: data kept in %s\n", self->dir);
        else
        if (*self->dir && !self->given)
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
s_mesh_new (const char *parent, const char *data, bool keep)
{
    bench_mesh_t *self = (bench_mesh_t *) zmalloc (sizeof (bench_mesh_t));
    self->keep = keep;
    self->given = data != NULL;

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
    if (data) {
        //  Our own store and broker in a directory that outlives us
        if (mkdir (data, 0755) && errno != EEXIST) {
            fprintf (stderr, "pond-bench: cannot create --data %s: %s\n", data,
                     strerror (errno));
            free (self);
            return NULL;
        }
        if (!realpath (data, self->dir) || strlen (self->dir) + strlen ("/control.ipc") >= 100) {
            fprintf (stderr, "pond-bench: cannot use --data %s (missing, or too long a path "
                     "for ipc endpoints)\n", data);
            free (self);
            return NULL;
        }
        //  Ready files of a previous run would look like ready processes
        char stale [PATH_MAX + 32];
        snprintf (stale, sizeof stale, "%s/store.zpl", self->dir);
        unlink (stale);
        snprintf (stale, sizeof stale, "%s/broker.zpl", self->dir);
        unlink (stale);
    }
    else
    if (!realpath (parent, real_parent)) {
        fprintf (stderr, "pond-bench: cannot use --dir %s: %s\n", parent, strerror (errno));
        free (self);
        return NULL;
    }
    //  ipc:// paths must fit a sockaddr_un (108 bytes)
    int length = data? 0: snprintf (self->dir, sizeof self->dir, "%s/pond-bench-XXXXXX", real_parent);
    if (!data && (length < 0 || length + strlen ("/control.ipc") >= 100)) {
        fprintf (stderr, "pond-bench: %s is too long a path for ipc endpoints; "
                 "use a shorter --dir\n", real_parent);
        free (self);
        return NULL;
    }
    if (!data && !mkdtemp (self->dir)) {
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

//  Work on the running mesh of data directory dir (pond up): nothing is
//  started or stopped. Returns NULL (reason printed) if it is not there.
static bench_mesh_t *
s_mesh_attach (const char *dir)
{
    bench_mesh_t *self = (bench_mesh_t *) zmalloc (sizeof (bench_mesh_t));
    self->given = true;
    self->attached = true;
    snprintf (self->dir, sizeof self->dir, "%s", dir);
    if (pond_endpoints_resolve (dir, &self->eps) || !self->eps.from_broker_file
    ||  s_mesh_wait_store_up (self)) {
        fprintf (stderr, "pond-bench: no running mesh in %s (pond up --data %s)\n", dir, dir);
        free (self);
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
        if (bench_quack_set_data (event, 0, pad, "pond-bench")) {
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
        snprintf (entity, sizeof entity, "cust-%04zu", global % s_entities);
        pond_event_set_name (event, names [global % names_count]);
        pond_event_set_entity (event, entity);
        pond_event_set_ts (event, ts_base? BENCH_TS_BASE + global * BENCH_TS_STEP
                                         : pond_time_now ());
        if (s_make_id (self->ids [i], producer, i)
        ||  bench_quack_set_data (event, global, pad, "pond-bench")) {
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
//
//  A producer is one pond_client_t and the events it publishes. Window 1
//  in a thread of its own calls pond_client_publish_bytes, which waits for
//  each ACK. Everything else (window > 1, open loop, and every producer of
//  the event loop) is driven by s_loop_run: one thread waits on the
//  sockets of one or many producers at once (pond_client_sock) and reacts
//  to replies and timers, as redis-benchmark drives its -c connections
//  from one event loop.

typedef struct {
    int index;                  //  producer number, in the ids
    const char *ingest;
    int window;
    double rate;                //  open loop: this producer's events/s (0: closed loop)
    size_t first;               //  global index of its first event
    size_t count;               //  events it publishes
    const char **names;         //  event names, round robin by global index
    size_t names_count;
    bool ts_base;               //  ts from BENCH_TS_BASE (load), else now
    int size;                   //  encoded event size, about
    bench_events_t events;      //  encoded before the clock starts
    size_t bytes;               //  their encoded size in all
    pond_client_t *client;
    pthread_barrier_t *barrier; //  threads: start together
    double *cpu_start;          //  threads: our CPU seconds once all are ready
    int64_t *latency;           //  per event: publish -> ACK, ns
    int64_t *sent_at;           //  per event: (scheduled) first send, ns, or NULL
    int64_t start;              //  monotonic ns
    int64_t end;
    uint64_t nacks;             //  NACK 503 received (and resent)
    uint64_t retries;           //  resends by pond_client_publish
    int rc;
    char error [POND_REASON_MAX + 192];
    //  Pipelined state, kept by s_pipe_*
    uint8_t *state;             //  per event: 0 not sent, 1 in flight, 2 to resend, 3 ACKed
    int64_t *own_sent_at;       //  sent_at when the caller gave none
    size_t *resend;             //  resend queue (FIFO: every NACK gets the same retry_ms)
    int64_t *resend_at;
    size_t queue_size, resend_head, resend_count;
    size_t window_size;         //  events in flight at most (open loop: all)
    int64_t interval;           //  open loop: ns between scheduled sends
    size_t next, acked, in_flight;
    int64_t last_reply;         //  ns: last reply, or when the window was empty
    bool dirty;                 //  sent since its socket was last checked
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

static int
s_producer_fail (bench_producer_t *self, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

static int
s_producer_fail (bench_producer_t *self, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (self->error, sizeof self->error, format, args);
    va_end (args);
    self->rc = -1;
    return -1;
}

//  Get ready to pipeline from start (monotonic ns). Keeps window publishes
//  outstanding; open loop (rate > 0): no window, event i is due at
//  start + i / rate. Returns 0 or -1.
static int
s_pipe_start (bench_producer_t *self, int64_t start)
{
    size_t count = self->events.count;
    bool open_loop = self->rate > 0;
    self->window_size = open_loop? count: (size_t) self->window;
    self->interval = open_loop? (int64_t) (1e9 / self->rate): 0;
    self->state = calloc (count? count: 1, 1);
    if (!self->sent_at)
        self->sent_at = self->own_sent_at = calloc (count? count: 1, sizeof (int64_t));
    self->queue_size = self->window_size + 1;
    self->resend = calloc (self->queue_size, sizeof (size_t));
    self->resend_at = calloc (self->queue_size, sizeof (int64_t));
    self->start = self->last_reply = start;
    if (!self->state || !self->sent_at || !self->resend || !self->resend_at)
        return s_producer_fail (self, "out of memory");
    return 0;
}

static void
s_pipe_stop (bench_producer_t *self)
{
    free (self->state);
    free (self->own_sent_at);
    free (self->resend);
    free (self->resend_at);
    if (self->sent_at == self->own_sent_at)
        self->sent_at = NULL;
    self->state = NULL;
    self->own_sent_at = NULL;
    self->resend = NULL;
    self->resend_at = NULL;
}

static bool
s_pipe_done (bench_producer_t *self)
{
    return self->rc || self->acked == self->events.count;
}

//  Send what is due at now: resends whose retry_ms is up, then new events
//  while the window has room (open loop: every event whose scheduled time
//  has come). Returns 0 or -1.
static int
s_pipe_send (bench_producer_t *self, int64_t now)
{
    bench_events_t *events = &self->events;
    while (self->resend_count && self->resend_at [self->resend_head] <= now) {
        size_t i = self->resend [self->resend_head];
        self->resend_head = (self->resend_head + 1) % self->queue_size;
        self->resend_count--;
        if (self->state [i] != 2)
            continue;
        if (pond_client_send_bytes (self->client, events->bytes + events->offsets [i],
                                    events->offsets [i + 1] - events->offsets [i]))
            return s_producer_fail (self, "resend: %d %s", pond_client_code (self->client),
                                pond_client_reason (self->client));
        self->state [i] = 1;
        self->dirty = true;
    }
    bool open_loop = self->interval > 0;
    while (self->in_flight < self->window_size && self->next < events->count) {
        size_t i = self->next;
        int64_t due = self->start + (int64_t) i * self->interval;
        if (open_loop && due > now)
            break;
        if (self->in_flight == 0)
            self->last_reply = now;     //  Nothing was outstanding: no stall
        __atomic_store_n (&self->sent_at [i], open_loop? due: now, __ATOMIC_RELEASE);
        if (pond_client_send_bytes (self->client, events->bytes + events->offsets [i],
                                    events->offsets [i + 1] - events->offsets [i]))
            return s_producer_fail (self, "send: %d %s", pond_client_code (self->client),
                                pond_client_reason (self->client));
        self->state [i] = 1;
        self->next++;
        self->in_flight++;
        self->dirty = true;
    }
    return 0;
}

//  Read every reply the socket holds now, without waiting: an ACK ends its
//  event's latency; a NACK 503 queues the event for a resend after
//  retry_ms; any other NACK fails the run. Returns 0 or -1.
static int
s_pipe_read (bench_producer_t *self)
{
    while (true) {
        pond_ack_t ack;
        pond_nack_t nack;
        int got = pond_client_recv (self->client, 0, &ack, &nack);
        if (got < 0)
            return pond_client_code (self->client) == POND_CODE_INTERRUPTED
                 ? s_producer_fail (self, "interrupted"): 0;
        int64_t now = s_now_ns ();
        self->last_reply = now;
        if (got == 1) {
            long i = s_id_index (&self->events, self->index, ack.id);
            if (i >= 0 && self->state [i] != 3) {
                self->latency [i] = now - self->sent_at [i];
                self->state [i] = 3;
                self->in_flight--;
                if (++self->acked == self->events.count)
                    self->end = now;
            }
            continue;
        }
        long i = nack.has_id? s_id_index (&self->events, self->index, nack.id): -1;
        if (nack.code != POND_CODE_UNAVAILABLE || i < 0)
            return s_producer_fail (self, "NACK %u: %s", nack.code, nack.reason);
        if (self->state [i] != 1)
            continue;
        if (self->resend_count == self->queue_size)
            return s_producer_fail (self, "resend queue full");
        self->nacks++;
        self->state [i] = 2;
        size_t tail = (self->resend_head + self->resend_count) % self->queue_size;
        self->resend [tail] = (size_t) i;
        self->resend_at [tail] = now + (int64_t) (nack.retry_ms? nack.retry_ms: 100) * 1000000;
        self->resend_count++;
    }
}

//  When this producer must act even if no reply comes: its next scheduled
//  send (open loop) or its next resend; INT64_MAX if only a reply can
//  move it on.
static int64_t
s_pipe_wake (bench_producer_t *self)
{
    int64_t wake = INT64_MAX;
    if (self->interval > 0 && self->next < self->events.count)
        wake = self->start + (int64_t) self->next * self->interval;
    if (self->resend_count && self->resend_at [self->resend_head] < wake)
        wake = self->resend_at [self->resend_head];
    return wake;
}

//  The event loop: drive count producers, each with its client connected,
//  from this one thread until every event is ACKed or one fails. It sends
//  whatever is due, then sleeps in ppoll (a nanosecond timeout, where
//  zmq_poll has milliseconds: open loop at 10k events/s sends every
//  100 us) on the sockets' ZMQ_FD until a reply or the next send time,
//  whichever comes first. The fds are edge-triggered, as zmq_poll knows:
//  a socket we sent on is checked with ZMQ_EVENTS before we sleep, one
//  whose fd fires is read until empty. Returns 0 or -1 (reasons in the
//  producers' error).
static int
s_loop_run (bench_producer_t *producers, int count)
{
    struct pollfd *fds = calloc ((size_t) count, sizeof (struct pollfd));
    if (!fds)
        return s_producer_fail (&producers [0], "out of memory");
    int64_t start = s_now_ns ();
    int rc = 0;
    for (int c = 0; c < count; c++) {
        bench_producer_t *self = &producers [c];
        rc |= s_pipe_start (self, start);
        fds [c].fd = zsock_fd (pond_client_sock (self->client));
        fds [c].events = POLLIN;
    }
    int done = 0;
    while (rc == 0 && done < count) {
        if (zsys_interrupted) {
            rc = s_producer_fail (&producers [0], "interrupted");
            break;
        }
        //  Send what is due; then look at the sockets we sent on: a send
        //  may have taken the signal of a reply that came meanwhile
        int64_t now = s_now_ns ();
        bool progress = false;
        for (int c = 0; c < count && rc == 0; c++) {
            bench_producer_t *self = &producers [c];
            if (s_pipe_done (self))
                continue;
            rc = s_pipe_send (self, now);
            if (rc == 0 && self->dirty) {
                self->dirty = false;
                if (zsock_events (pond_client_sock (self->client)) & ZMQ_POLLIN) {
                    rc = s_pipe_read (self);
                    progress = true;
                }
            }
        }
        if (rc)
            break;
        //  Sleep until a reply or the earliest timer, at most 100 ms
        int64_t wake = now + 100000000;
        done = 0;
        for (int c = 0; c < count; c++) {
            bench_producer_t *self = &producers [c];
            if (s_pipe_done (self)) {
                done++;
                fds [c].fd = -1;        //  ppoll ignores it
                continue;
            }
            int64_t at = s_pipe_wake (self);
            if (at < wake)
                wake = at;
            if (self->in_flight && now - self->last_reply > (int64_t) BENCH_REPLY_WAIT * 1000000) {
                rc = s_producer_fail (self, "no ACK or NACK for %d ms (%zu of %zu ACKed)",
                                  BENCH_REPLY_WAIT, self->acked, self->events.count);
                break;
            }
        }
        if (rc || done == count || progress)
            continue;
        int64_t wait = wake - s_now_ns ();
        if (wait <= 0)
            continue;
        struct timespec timeout = { (time_t) (wait / 1000000000), (long) (wait % 1000000000) };
        int ready = ppoll (fds, (nfds_t) count, &timeout, NULL);
        if (ready < 0 && errno != EINTR) {
            rc = s_producer_fail (&producers [0], "ppoll: %s", strerror (errno));
            break;
        }
        for (int c = 0; c < count && ready > 0 && rc == 0; c++)
            if (fds [c].fd >= 0 && fds [c].revents)
                rc = s_pipe_read (&producers [c]);
    }
    for (int c = 0; c < count; c++) {
        if (producers [c].end == 0)
            producers [c].end = s_now_ns ();
        s_pipe_stop (&producers [c]);
    }
    free (fds);
    return rc? -1: 0;
}

//  Encode the producer's events, connect its client and check with PING
//  that the broker answers. Returns 0 or -1 (reason in error).
static int
s_producer_prepare (bench_producer_t *self)
{
    if (s_events_new (&self->events, self->index, self->first, self->count, self->names,
                      self->names_count, self->ts_base, self->size))
        return s_producer_fail (self, "cannot encode the events");
    self->bytes = self->events.offsets [self->count];
    self->client = pond_client_new (self->ingest);
    if (!self->client)
        return s_producer_fail (self, "cannot connect to %s", self->ingest);
    //  Long waits: a slow ACK is a figure to report, not a reason to resend
    pond_client_set_timeout (self->client, 10000, 3);
    if (pond_client_ping (self->client, 10000))
        return s_producer_fail (self, "broker not answering PING: %s",
                            pond_client_reason (self->client));
    return 0;
}

static void
s_producer_finish (bench_producer_t *self)
{
    if (self->client)
        self->retries = pond_client_retries (self->client);
    pond_client_destroy (&self->client);
    s_events_destroy (&self->events);
}

//  One producer thread: prepare, wait for the others, publish.
static void *
s_producer_run (void *args)
{
    bench_producer_t *self = (bench_producer_t *) args;
    pond_thread_block_signals (NULL);   //  main takes Ctrl-C; the loop sees zsys_interrupted
    //  Encode first, every thread at once; the clock has not started yet
    s_producer_prepare (self);
    //  Everyone starts together, connected, whatever happened
    if (pthread_barrier_wait (self->barrier) == PTHREAD_BARRIER_SERIAL_THREAD)
        *self->cpu_start = s_self_cpu ();
    self->start = s_now_ns ();
    if (self->rc == 0) {
        if (self->window <= 1 && self->rate <= 0)
            self->rc = s_producer_sync (self, self->client);
        else
            s_loop_run (self, 1);
    }
    if (self->end == 0)
        self->end = s_now_ns ();
    s_producer_finish (self);
    return NULL;
}

//  What s_ingest_run publishes, and how
typedef struct {
    int producers;
    bool loop;                  //  one thread drives every producer (event loop)
    int window;                 //  publishes in flight per producer
    double rate;                //  open loop: events/s of all producers (0: closed)
    size_t total;               //  events in all
    size_t first;               //  global index of the first event (load chunks)
    int index_base;             //  producer numbers (in the ids) start here
    const char **names;
    size_t names_count;
    bool ts_base;               //  ts from BENCH_TS_BASE by global index
    int size;
    int64_t *sent_at;           //  NULL, or total entries: (scheduled) send times
} bench_run_t;

typedef struct {
    double seconds;
    size_t events;
    double bytes_avg;
    uint64_t nacks;
    uint64_t retries;
    int64_t start;              //  monotonic ns: first producer's start
    int64_t end;                //  last producer's end
    double cpu_s;               //  our CPU seconds from start to end (no encoding)
    int64_t *latency;           //  all events, sorted
} bench_ingest_t;

//  Publish run->total events from run->producers producers, all starting
//  together: each in a thread of its own, or (run->loop) all from this
//  thread's event loop. Fills result (caller frees result->latency).
//  Returns 0 or -1 (reason printed).
static int
s_ingest_run (bench_mesh_t *mesh, const bench_run_t *run, bench_ingest_t *result)
{
    memset (result, 0, sizeof *result);
    int producers = run->producers;
    size_t total = run->total;
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
    size_t first = 0;
    for (int p = 0; p < producers; p++) {
        size_t count = total / (size_t) producers + ((size_t) p < total % (size_t) producers);
        producer [p].index = run->index_base + p;
        producer [p].ingest = mesh->eps.ingest;
        producer [p].window = run->window;
        producer [p].rate = run->rate / producers;
        producer [p].first = run->first + first;
        producer [p].count = count;
        producer [p].names = run->names;
        producer [p].names_count = run->names_count;
        producer [p].ts_base = run->ts_base;
        producer [p].size = run->size;
        producer [p].latency = result->latency + first;
        producer [p].sent_at = run->sent_at? run->sent_at + first: NULL;
        first += count;
    }
    double cpu_start = 0;
    if (run->loop) {
        int ready = 0;
        for (int p = 0; p < producers && ready == p; p++)
            ready += s_producer_prepare (&producer [p]) == 0;
        cpu_start = s_self_cpu ();
        if (ready == producers)
            s_loop_run (producer, producers);
        for (int p = 0; p < producers; p++)
            s_producer_finish (&producer [p]);
    }
    else {
        pthread_barrier_t barrier;
        pthread_barrier_init (&barrier, NULL, (unsigned) producers);
        int started;
        for (started = 0; started < producers; started++) {
            producer [started].barrier = &barrier;
            producer [started].cpu_start = &cpu_start;
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
    }
    result->cpu_s = s_self_cpu () - cpu_start;
    int64_t start = producer [0].start, end = producer [0].end;
    double bytes = 0;
    for (int p = 0; p < producers; p++) {
        if (producer [p].start && (producer [p].start < start || !start))
            start = producer [p].start;
        if (producer [p].end > end)
            end = producer [p].end;
        result->nacks += producer [p].nacks;
        result->retries += producer [p].retries;
        bytes += (double) producer [p].bytes;
        if (producer [p].rc) {
            fprintf (stderr, "pond-bench: producer %d: %s\n", p, producer [p].error);
            rc = -1;
        }
    }
    result->start = start;
    result->end = end;
    result->seconds = (double) (end - start) / 1e9;
    result->events = total;
    result->bytes_avg = total? bytes / (double) total: 0;
    qsort (result->latency, total, sizeof (int64_t), s_compare_i64);
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

    bench_run_t run = {
        .producers = options->producers, .loop = options->loop, .window = options->window,
        .rate = options->rate, .total = (size_t) options->events, .names = quacked,
        .names_count = 1, .size = options->size
    };
    bench_ingest_t result;
    int rc = s_ingest_run (mesh, &run, &result);

    double cpu_bench = s_self_cpu () - cpu_before;
    s_proc_sample (mesh->store, &store_after);
    s_proc_sample (mesh->broker, &broker_after);
    long long commits = rc? -1: s_mesh_commits (mesh, (long long) result.events);
    if (commits >= 0 && commits_before >= 0)
        commits -= commits_before;
    if (rc == 0)
        printf ("scenario=ingest mode=%s producers=%d window=%d offered_per_s=%.0f events=%zu "
                "event_bytes=%.0f seconds=%.3f events_per_s=%.0f p50_us=%.0f p90_us=%.0f "
                "p99_us=%.0f p999_us=%.0f max_us=%.0f nacks=%" PRIu64 " retries=%" PRIu64
                " store_commits=%lld events_per_commit=%.1f store_rss_kb=%ld broker_rss_kb=%ld "
                "bench_rss_kb=%ld store_cpu_s=%.2f broker_cpu_s=%.2f bench_cpu_s=%.2f "
                "bench_timed_cpu_s=%.2f bench_cpu_us_per_event=%.1f "
                "store_write_kb=%lld broker_rtt_us=%.0f store_rtt_us=%.0f\n",
                options->loop? "loop": "threads", options->producers, options->rate > 0? 0: options->window, options->rate,
                result.events, result.bytes_avg,
                result.seconds, (double) result.events / result.seconds,
                s_percentile_us (result.latency, result.events, 0.50),
                s_percentile_us (result.latency, result.events, 0.90),
                s_percentile_us (result.latency, result.events, 0.99),
                s_percentile_us (result.latency, result.events, 0.999),
                s_percentile_us (result.latency, result.events, 1.0),
                result.nacks, result.retries, commits,
                commits > 0? (double) result.events / (double) commits: 0.0,
                store_after.hwm_kb, broker_after.hwm_kb, s_self_hwm_kb (),
                store_after.cpu_s - store_before.cpu_s,
                broker_after.cpu_s - broker_before.cpu_s, cpu_bench, result.cpu_s,
                result.events? result.cpu_s * 1e6 / (double) result.events: 0.0,
                store_after.write_kb - store_before.write_kb, broker_rtt, store_rtt);
    free (result.latency);
    return rc;
}

//  ---------------------------------------------------------------------
//  Scenario: load

//  Publish total events (names round robin, s_entities entities, ts 1 ms
//  apart from BENCH_TS_BASE) with pipelined producers, BENCH_LOAD_CHUNK
//  events at a time so that memory stays bounded. Adds up the time spent
//  in *seconds. Returns 0 or -1.
static int
s_load (bench_mesh_t *mesh, size_t total, const char **names, size_t names_count, int size,
        double *seconds, double *bytes_avg)
{
    *seconds = 0;
    for (size_t done = 0; done < total && !zsys_interrupted; ) {
        size_t chunk = total - done < BENCH_LOAD_CHUNK? total - done: BENCH_LOAD_CHUNK;
        bench_run_t run = {
            .producers = chunk < BENCH_LOAD_PRODUCERS? 1: BENCH_LOAD_PRODUCERS,
            .window = BENCH_LOAD_WINDOW, .total = chunk, .first = done,
            .names = names, .names_count = names_count, .ts_base = true, .size = size
        };
        bench_ingest_t result;
        int rc = s_ingest_run (mesh, &run, &result);
        free (result.latency);
        if (rc)
            return -1;
        *seconds += result.seconds;
        *bytes_avg = result.bytes_avg;
        done += chunk;
    }
    return zsys_interrupted? -1: 0;
}

static int
s_scenario_load (bench_mesh_t *mesh, bench_options_t *options)
{
    bench_proc_t store_before, store_after;
    s_proc_sample (mesh->store, &store_before);
    double seconds, bytes_avg = 0;
    int rc = s_load (mesh, (size_t) options->events, options->names, options->names_count,
                     options->size, &seconds, &bytes_avg);
    s_proc_sample (mesh->store, &store_after);
    if (rc == 0)
        printf ("scenario=load events=%ld entities=%zu event_bytes=%.0f seconds=%.3f "
                "events_per_s=%.0f store_rss_kb=%ld store_cpu_s=%.2f bench_rss_kb=%ld\n",
                options->events, s_entities, bytes_avg, seconds,
                (double) options->events / seconds, store_after.hwm_kb,
                store_after.cpu_s - store_before.cpu_s, s_self_hwm_kb ());
    return rc;
}

//  ---------------------------------------------------------------------
//  Scenario: replay

typedef struct {
    size_t events;
    double seconds;
    double first_ms;            //  time to the first event
} bench_replay_t;

//  Time one replay from pond_reader_new to its END, decoding every event.
//  by_seq: events must come with seq first_seq, first_seq + 1, ...; else
//  in (ts, seq) order. Returns 0, or -1 if it failed or the order was wrong.
static int
s_replay_time (bench_mesh_t *mesh, const pond_replay_req_t *req, bool by_seq,
               uint64_t first_seq, size_t expected, bench_replay_t *result)
{
    memset (result, 0, sizeof *result);
    int64_t start = s_now_ns ();
    pond_reader_t *replay = pond_reader_new (mesh->eps.control, req);
    if (!replay) {
        fprintf (stderr, "pond-bench: cannot start a replay on %s\n", mesh->eps.control);
        return -1;
    }
    uint64_t last_seq = by_seq? first_seq - 1: 0, last_ts = 0;
    size_t disorder = 0;
    int waited = 0;
    while (true) {
        pond_event_t *event = pond_reader_next (replay, 1000);
        if (!event) {
            //  Timed out: go on waiting while store and broker live
            if (pond_reader_code (replay) || zsys_interrupted || !s_mesh_alive (mesh)
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
    if (pond_reader_code (replay) != POND_CODE_OK) {
        if (pond_reader_code (replay) == 0 && !zsys_interrupted)
            fprintf (stderr, "pond-bench: the replay stalled (%s)\n",
                     s_mesh_alive (mesh)? "no event for 30 s": "a process died");
        fprintf (stderr, "pond-bench: replay failed after %zu events: %d %s\n",
                 result->events, pond_reader_code (replay), pond_reader_reason (replay));
        rc = -1;
    }
    else
    if (disorder || result->events != expected) {
        fprintf (stderr, "pond-bench: replay gave %zu events (expected %zu), %zu out of order\n",
                 result->events, expected, disorder);
        rc = -1;
    }
    pond_reader_destroy (&replay);
    return rc;
}

typedef struct {
    size_t events;
    double seconds;
    long store_rss_first_kb;    //  VmRSS once the first event is in
    long store_rss_max_kb;
    long store_rss_last_kb;
    long broker_rss_first_kb;
    long broker_rss_max_kb;
    long bench_rss_max_kb;
} bench_slow_t;

//  A deliberately slow reader: consume req at rate events/s for seconds,
//  sampling the RSS of store, broker and ourselves every 100 ms, then
//  cancel. Returns 0 or -1.
static int
s_replay_slow (bench_mesh_t *mesh, const pond_replay_req_t *req, double rate, double seconds,
               bench_slow_t *result)
{
    memset (result, 0, sizeof *result);
    pond_reader_t *replay = pond_reader_new (mesh->eps.control, req);
    if (!replay) {
        fprintf (stderr, "pond-bench: cannot start a replay on %s\n", mesh->eps.control);
        return -1;
    }
    int64_t interval = (int64_t) (1e9 / rate), start = s_now_ns (), sampled = 0;
    int64_t stop = start + (int64_t) (seconds * 1e9);
    int rc = 0;
    while (!zsys_interrupted) {
        int64_t now = s_now_ns ();
        if (now >= stop)
            break;
        if (result->events && now - sampled >= 100000000) {
            bench_proc_t store, broker;
            s_proc_sample (mesh->store, &store);
            s_proc_sample (mesh->broker, &broker);
            if (sampled == 0) {
                result->store_rss_first_kb = store.rss_kb;
                result->broker_rss_first_kb = broker.rss_kb;
            }
            if (store.rss_kb > result->store_rss_max_kb)
                result->store_rss_max_kb = store.rss_kb;
            if (broker.rss_kb > result->broker_rss_max_kb)
                result->broker_rss_max_kb = broker.rss_kb;
            result->store_rss_last_kb = store.rss_kb;
            sampled = now;
        }
        int64_t due = start + (int64_t) result->events * interval;
        if (due > now) {
            int64_t wait = due - now < 10000000? due - now: 10000000;
            struct timespec ts = { 0, (long) wait };
            nanosleep (&ts, NULL);
            continue;
        }
        pond_event_t *event = pond_reader_next (replay, 1000);
        if (!event) {
            if (pond_reader_code (replay) || !s_mesh_alive (mesh)) {
                fprintf (stderr, "pond-bench: slow replay ended after %zu events: %d %s\n",
                         result->events, pond_reader_code (replay),
                         pond_reader_reason (replay));
                rc = -1;
                break;
            }
            continue;
        }
        result->events++;
        pond_event_destroy (&event);
    }
    result->seconds = (double) (s_now_ns () - start) / 1e9;
    result->bench_rss_max_kb = s_self_hwm_kb ();
    pond_reader_destroy (&replay);
    return rc;
}

static int
s_scenario_replay (bench_mesh_t *mesh, bench_options_t *options)
{
    size_t total = (size_t) options->events;
    size_t range = options->range? (size_t) options->range: total / 4;
    size_t names_count = sizeof s_load_names / sizeof s_load_names [0];
    size_t span = 2 * range;            //  log events in the names' time window
    if (span > total || range < 1) {
        fprintf (stderr, "pond-bench: --range must be 1..events / 2\n");
        return -1;
    }
    //  Load, unless --data already holds exactly these events
    double load_seconds = 0, bytes_avg = 0;
    long long stored = s_mesh_stat (mesh, "store", "events");
    if (stored == 0) {
        if (s_load (mesh, total, s_load_names, names_count, options->size,
                    &load_seconds, &bytes_avg))
            return -1;
    }
    else
    if (stored != (long long) total) {
        fprintf (stderr, "pond-bench: %s holds %lld events, not %zu: use a fresh --data\n",
                 mesh->dir, stored, total);
        return -1;
    }
    bench_proc_t store_before, broker_before, store_after, broker_after;
    s_proc_sample (mesh->store, &store_before);
    s_proc_sample (mesh->broker, &broker_before);
    double cpu_before = s_self_cpu ();

    //  The window: span log events from index s0 (a multiple of the names
    //  count, in the middle of the log)
    size_t s0 = ((total - span) / 2) / names_count * names_count;

    //  (a) range events by seq, from the middle of the log
    pond_replay_req_t req;
    memset (&req, 0, sizeof req);
    req.from_seq = s0 + 1;
    req.to_seq = s0 + 1 + range;
    bench_replay_t by_seq;
    int rc = s_replay_time (mesh, &req, true, req.from_seq, range, &by_seq);

    //  (b) the first two names over the time window of events s0 .. s0 + span
    size_t expected = 0;
    for (size_t i = s0; i < s0 + span; i++)
        if (i % names_count < 2)
            expected++;
    memset (&req, 0, sizeof req);
    req.names_count = 2;
    strcpy (req.names [0], s_load_names [0]);
    strcpy (req.names [1], s_load_names [1]);
    req.from_ts = BENCH_TS_BASE + (uint64_t) s0 * BENCH_TS_STEP;
    req.to_ts = BENCH_TS_BASE + (uint64_t) (s0 + span) * BENCH_TS_STEP;
    bench_replay_t by_names;
    if (rc == 0)
        rc = s_replay_time (mesh, &req, false, 0, expected, &by_names);

    double cpu_bench = s_self_cpu () - cpu_before;
    s_proc_sample (mesh->store, &store_after);
    s_proc_sample (mesh->broker, &broker_after);

    //  (c) the same window to a slow reader
    bench_slow_t slow;
    memset (&slow, 0, sizeof slow);
    if (rc == 0 && options->slow_rate > 0)
        rc = s_replay_slow (mesh, &req, options->slow_rate, options->slow_seconds, &slow);

    if (rc == 0)
        printf ("scenario=replay events=%zu range=%zu event_bytes=%.0f load_seconds=%.3f "
                "load_events_per_s=%.0f seq_events=%zu seq_seconds=%.3f "
                "seq_events_per_s=%.0f seq_first_ms=%.1f names_events=%zu "
                "names_seconds=%.3f names_events_per_s=%.0f names_first_ms=%.1f "
                "store_rss_kb=%ld broker_rss_kb=%ld bench_rss_kb=%ld store_cpu_s=%.2f "
                "broker_cpu_s=%.2f bench_cpu_s=%.2f slow_events=%zu slow_events_per_s=%.0f "
                "slow_store_rss_first_kb=%ld slow_store_rss_max_kb=%ld "
                "slow_store_rss_last_kb=%ld slow_store_rss_growth_kb=%ld "
                "slow_broker_rss_first_kb=%ld slow_broker_rss_max_kb=%ld\n",
                total, range, bytes_avg, load_seconds,
                load_seconds > 0? (double) total / load_seconds: 0.0,
                by_seq.events, by_seq.seconds, (double) by_seq.events / by_seq.seconds,
                by_seq.first_ms, by_names.events, by_names.seconds,
                (double) by_names.events / by_names.seconds, by_names.first_ms,
                store_after.hwm_kb, broker_after.hwm_kb, s_self_hwm_kb (),
                store_after.cpu_s - store_before.cpu_s,
                broker_after.cpu_s - broker_before.cpu_s, cpu_bench,
                slow.events, slow.seconds > 0? (double) slow.events / slow.seconds: 0.0,
                slow.store_rss_first_kb, slow.store_rss_max_kb, slow.store_rss_last_kb,
                slow.store_rss_max_kb - slow.store_rss_first_kb,
                slow.broker_rss_first_kb, slow.broker_rss_max_kb);
    return rc;
}

//  ---------------------------------------------------------------------
//  Scenario: fanout

typedef struct {
    const char *endpoint;
    const int *stop;            //  set by main: leave
    int ready;                  //  connected: a heartbeat came in
    size_t received;            //  throughput phase deliveries
    int64_t last;               //  ns of the last of them
    const int64_t *sent_at;     //  latency phase: scheduled send times
    int64_t *latency;           //  latency phase: per event, ns (0: not received)
    size_t lat_events;
    size_t lat_received;
} bench_sub_t;

static void *
s_subscriber_run (void *args)
{
    bench_sub_t *self = (bench_sub_t *) args;
    pond_thread_block_signals (NULL);
    const char *names [] = { "QUACKED" };
    pond_sub_t *sub = pond_sub_new (self->endpoint, names, 1);
    while (sub && !__atomic_load_n (self->stop, __ATOMIC_ACQUIRE)
        && pond_sub_heartbeats (sub) == 0) {
        pond_event_t *event = pond_sub_recv (sub, 100);
        pond_event_destroy (&event);
    }
    __atomic_store_n (&self->ready, sub? 1: -1, __ATOMIC_RELEASE);
    while (sub && !__atomic_load_n (self->stop, __ATOMIC_ACQUIRE)) {
        pond_event_t *event = pond_sub_recv (sub, 100);
        if (!event)
            continue;
        int64_t now = s_now_ns ();
        const uint8_t *id = pond_event_id (event);
        int producer = (id [10] << 8) | id [11];
        size_t index = ((size_t) id [12] << 24) | ((size_t) id [13] << 16)
                     | ((size_t) id [14] << 8) | id [15];
        if (producer >= BENCH_LAT_PRODUCER) {
            int64_t sent = index < self->lat_events
                         ? __atomic_load_n (&self->sent_at [index], __ATOMIC_ACQUIRE): 0;
            if (sent > 0 && self->latency [index] == 0) {
                self->latency [index] = now - sent;
                __atomic_add_fetch (&self->lat_received, 1, __ATOMIC_RELEASE);
            }
        }
        else {
            __atomic_store_n (&self->last, now, __ATOMIC_RELEASE);
            __atomic_add_fetch (&self->received, 1, __ATOMIC_RELEASE);
        }
        pond_event_destroy (&event);
    }
    pond_sub_destroy (&sub);
    return NULL;
}

//  Wait until every subscriber has want events (lat: of the latency
//  phase), or nothing came for a second. Returns the deliveries.
static size_t
s_subscribers_wait (bench_sub_t *subs, int count, size_t want, bool lat)
{
    size_t before = (size_t) -1;
    int64_t progress = s_now_ns ();
    while (!zsys_interrupted) {
        size_t sum = 0;
        bool all = true;
        for (int s = 0; s < count; s++) {
            size_t got = __atomic_load_n (lat? &subs [s].lat_received: &subs [s].received,
                                          __ATOMIC_ACQUIRE);
            sum += got;
            if (got < want)
                all = false;
        }
        if (all)
            return sum;
        if (sum != before) {
            before = sum;
            progress = s_now_ns ();
        }
        else
        if (s_now_ns () - progress > 1000000000)
            return sum;
        s_sleep_ms (5);
    }
    return before;
}

static int
s_scenario_fanout (bench_mesh_t *mesh, bench_options_t *options)
{
    static const char *quacked [] = { "QUACKED" };
    int count = options->subscribers;
    size_t events = (size_t) options->events;
    bench_sub_t *subs = calloc ((size_t) count, sizeof (bench_sub_t));
    pthread_t *threads = calloc ((size_t) count, sizeof (pthread_t));
    //  Latency phase size is known only after the throughput phase; the
    //  arrays are made for the most it can be
    size_t lat_max = 20000;
    int64_t *sent_at = calloc (lat_max, sizeof (int64_t));
    int stop = 0, rc = 0, started = 0;
    if (!subs || !threads || !sent_at) {
        fprintf (stderr, "pond-bench: out of memory\n");
        rc = -1;
    }
    for (int s = 0; rc == 0 && s < count; s++) {
        subs [s].endpoint = mesh->eps.pub;
        subs [s].stop = &stop;
        subs [s].sent_at = sent_at;
        subs [s].latency = calloc (lat_max, sizeof (int64_t));
        if (!subs [s].latency || pthread_create (&threads [s], NULL, s_subscriber_run, &subs [s]))
            rc = -1;
        else
            started++;
    }
    //  Every subscriber connected (heartbeats come once a second)
    for (int waited = 0; rc == 0 && waited < 5000; waited += 10) {
        int ready = 0;
        for (int s = 0; s < count; s++)
            ready += __atomic_load_n (&subs [s].ready, __ATOMIC_ACQUIRE) == 1;
        if (ready == count)
            break;
        if (waited + 10 >= 5000) {
            fprintf (stderr, "pond-bench: subscribers not connected within 5 s\n");
            rc = -1;
        }
        s_sleep_ms (10);
    }
    s_sleep_ms (100);           //  Let subscriptions settle

    bench_proc_t store_before, broker_before, store_after, broker_after;
    s_proc_sample (mesh->store, &store_before);
    s_proc_sample (mesh->broker, &broker_before);
    double cpu_before = s_self_cpu ();

    //  (a) throughput: pipelined producers, every subscriber counts
    bench_ingest_t load;
    memset (&load, 0, sizeof load);
    size_t deliveries = 0;
    double seconds = 0;
    if (rc == 0) {
        bench_run_t run = {
            .producers = options->producers, .window = options->window, .total = events,
            .names = quacked, .names_count = 1, .size = options->size
        };
        rc = s_ingest_run (mesh, &run, &load);
        deliveries = s_subscribers_wait (subs, count, events, false);
        int64_t last = load.end;
        for (int s = 0; s < count; s++) {
            int64_t at = __atomic_load_n (&subs [s].last, __ATOMIC_ACQUIRE);
            if (at > last)
                last = at;
        }
        seconds = (double) (last - load.start) / 1e9;
    }
    double cpu_bench = s_self_cpu () - cpu_before;
    s_proc_sample (mesh->store, &store_after);
    s_proc_sample (mesh->broker, &broker_after);

    //  (b) latency at 10% of the ingest rate just measured, open loop
    double ingest_rate = rc == 0 && load.seconds > 0? (double) events / load.seconds: 0;
    double lat_rate = ingest_rate / 10;
    size_t lat_events = (size_t) (lat_rate * 2);      //  two seconds' worth
    if (lat_events < 200)
        lat_events = 200;
    if (lat_events > lat_max)
        lat_events = lat_max;
    bench_ingest_t lat;
    memset (&lat, 0, sizeof lat);
    int64_t *latency = NULL;
    size_t lat_count = 0;
    if (rc == 0) {
        for (int s = 0; s < count; s++)
            subs [s].lat_events = lat_events;
        bench_run_t run = {
            .producers = 1, .rate = lat_rate, .total = lat_events,
            .index_base = BENCH_LAT_PRODUCER, .names = quacked, .names_count = 1,
            .size = options->size, .sent_at = sent_at
        };
        rc = s_ingest_run (mesh, &run, &lat);
        s_subscribers_wait (subs, count, lat_events, true);
        latency = calloc (lat_events * (size_t) count, sizeof (int64_t));
        for (int s = 0; latency && s < count; s++)
            for (size_t i = 0; i < lat_events; i++)
                if (subs [s].latency [i] > 0)
                    latency [lat_count++] = subs [s].latency [i];
        if (latency)
            qsort (latency, lat_count, sizeof (int64_t), s_compare_i64);
    }
    __atomic_store_n (&stop, 1, __ATOMIC_RELEASE);
    for (int s = 0; s < started; s++)
        pthread_join (threads [s], NULL);

    if (rc == 0)
        printf ("scenario=fanout subscribers=%d producers=%d window=%d events=%zu "
                "event_bytes=%.0f ingest_events_per_s=%.0f deliveries=%zu lost=%zu "
                "seconds=%.3f deliveries_per_s=%.0f lat_rate=%.0f lat_events=%zu "
                "lat_deliveries=%zu sub_p50_us=%.0f sub_p99_us=%.0f sub_p999_us=%.0f "
                "ack_p50_us=%.0f ack_p99_us=%.0f store_rss_kb=%ld broker_rss_kb=%ld "
                "bench_rss_kb=%ld store_cpu_s=%.2f broker_cpu_s=%.2f bench_cpu_s=%.2f\n",
                count, options->producers, options->window, events, load.bytes_avg,
                ingest_rate, deliveries, events * (size_t) count - deliveries, seconds,
                seconds > 0? (double) deliveries / seconds: 0.0, lat_rate, lat_events,
                lat_count, s_percentile_us (latency, lat_count, 0.50),
                s_percentile_us (latency, lat_count, 0.99),
                s_percentile_us (latency, lat_count, 0.999),
                s_percentile_us (lat.latency, lat.events, 0.50),
                s_percentile_us (lat.latency, lat.events, 0.99),
                store_after.hwm_kb, broker_after.hwm_kb, s_self_hwm_kb (),
                store_after.cpu_s - store_before.cpu_s,
                broker_after.cpu_s - broker_before.cpu_s, cpu_bench);
    free (latency);
    free (load.latency);
    free (lat.latency);
    for (int s = 0; subs && s < count; s++)
        free (subs [s].latency);
    free (subs);
    free (threads);
    free (sent_at);
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
        "in a fresh data directory (or --data DIR, kept; or uses the running mesh\n"
        "of --mesh DIR), runs one scenario, prints one line of key=value results,\n"
        "stops what it started and removes the directory it made.\n"
        "\n"
        "Scenarios:\n"
        "  ingest   P producers (threads, or C clients of one event loop) publish N\n"
        "           ~SIZE-byte QUACKED events, each keeping W\n"
        "           publishes outstanding (W=1: wait for every ACK), or with --rate\n"
        "           open loop at R events/s. Reports ACKed events per second and\n"
        "           publish->ACK latency percentiles.\n"
        "  load     publishes N events (--names, --entities; ts 1 ms apart) fast.\n"
        "  replay   loads N events (4 names), unless --data holds them already, then\n"
        "           times a replay of M events by seq and of 2 names over a time\n"
        "           window holding M of their events; --slow-rate adds a slow reader.\n"
        "  fanout   S subscribers while P producers (window W) publish N events:\n"
        "           deliveries/s; then publish->subscriber latency at 10%% load.\n"
        "\n"
        "Options:\n"
        "  --events N        events in all (default: ingest 5000 with W=1, else\n"
        "                    50000; replay 300000; load 100000; fanout 20000)\n"
        "  --producers P     producer threads, one client each (default 1)\n"
        "  --connections C   ingest: C clients (producers) driven from one thread's\n"
        "                    event loop, like redis-benchmark -c C, instead of threads\n"
        "  --window W        publishes in flight per producer (default 1)\n"
        "  --rate R          ingest: open loop, R events/s in all, latency counted\n"
        "                    from each event's scheduled send time\n"
        "  --size BYTES      encoded event size, about (default 200)\n"
        "  --range M         replay: events per timed replay (default N / 4)\n"
        "  --slow-rate R     replay: then read the window at R events/s ...\n"
        "  --slow-seconds S  ... for S seconds (default 5), sampling RSS\n"
        "  --subscribers S   fanout: subscriber threads (default 1)\n"
        "  --entities E      entities the events belong to (default %d)\n"
        "  --names A,B,...   load: event names, round robin (default QUACKED,\n"
        "                    BUTTON_CLICKED,LABEL_ADDED,LABEL_REMOVED)\n"
        "  --dir DIR         where to make the data directory (default .); use a\n"
        "                    real disk, not tmpfs, or fsync costs nothing\n"
        "  --data DIR        use (and keep) DIR as the data directory instead\n"
        "  --mesh DIR        start nothing: use the mesh running in DIR (pond up)\n"
        "  --keep            keep the data directory and the processes' logs\n"
        "  --help            show this text\n", BENCH_ENTITIES);
}

int
main (int argc, char *argv [])
{
    pond_reader_tune_malloc ();         //  a bulk reader: see pond_client.h
    bench_options_t options = {
        .producers = 1, .window = 1, .size = 200, .parent = ".", .subscribers = 1,
        .slow_seconds = 5
    };
    static const struct option long_options [] = {
        { "events", required_argument, NULL, 'n' },
        { "producers", required_argument, NULL, 'p' },
        { "connections", required_argument, NULL, 'c' },
        { "window", required_argument, NULL, 'w' },
        { "rate", required_argument, NULL, 'r' },
        { "size", required_argument, NULL, 's' },
        { "range", required_argument, NULL, 'R' },
        { "slow-rate", required_argument, NULL, 'L' },
        { "slow-seconds", required_argument, NULL, 'S' },
        { "subscribers", required_argument, NULL, 'u' },
        { "entities", required_argument, NULL, 'e' },
        { "names", required_argument, NULL, 'N' },
        { "dir", required_argument, NULL, 'd' },
        { "data", required_argument, NULL, 'D' },
        { "mesh", required_argument, NULL, 'm' },
        { "keep", no_argument, NULL, 'k' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    char *names_arg = NULL;
    long entities = BENCH_ENTITIES;
    bool producers_given = false;
    int option;
    while ((option = getopt_long (argc, argv, "n:p:w:s:d:kh", long_options, NULL)) != -1) {
        switch (option) {
            case 'n': options.events = atol (optarg); break;
            case 'p': options.producers = atoi (optarg); producers_given = true; break;
            case 'c': options.producers = atoi (optarg); options.loop = true; break;
            case 'w': options.window = atoi (optarg); break;
            case 'r': options.rate = atof (optarg); break;
            case 's': options.size = atoi (optarg); break;
            case 'R': options.range = atol (optarg); break;
            case 'L': options.slow_rate = atof (optarg); break;
            case 'S': options.slow_seconds = atof (optarg); break;
            case 'u': options.subscribers = atoi (optarg); break;
            case 'e': entities = atol (optarg); break;
            case 'N': names_arg = optarg; break;
            case 'd': options.parent = optarg; break;
            case 'D': options.data = optarg; break;
            case 'm': options.mesh = optarg; break;
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
    const char *scenarios [] = { "ingest", "load", "replay", "fanout" };
    int which = -1;
    for (int i = 0; i < 4; i++)
        if (streq (options.scenario, scenarios [i]))
            which = i;
    if (which < 0) {
        fprintf (stderr, "pond-bench: unknown scenario '%s'; see pond-bench --help\n",
                 options.scenario);
        return 2;
    }
    if (names_arg) {
        for (char *name = strtok (names_arg, ","); name; name = strtok (NULL, ","))
            if (options.names_count < BENCH_MAX_NAMES)
                options.names [options.names_count++] = name;
    }
    else
        for (size_t i = 0; i < sizeof s_load_names / sizeof s_load_names [0]; i++)
            options.names [options.names_count++] = s_load_names [i];
    if (options.events == 0) {
        long defaults [] = { options.window <= 1 && options.rate <= 0? 5000: 50000,
                             100000, 300000, 20000 };
        options.events = defaults [which];
    }
    if (options.events < 1 || options.events > 100000000
    ||  options.producers < 1 || options.producers > 256
    ||  options.window < 1 || options.window > 4096
    ||  options.size < 64 || options.size > 60000
    ||  options.rate < 0 || options.slow_rate < 0 || options.slow_seconds <= 0
    ||  options.subscribers < 1 || options.subscribers > BENCH_MAX_SUBS
    ||  entities < 1 || entities > 100000000 || options.names_count == 0) {
        fprintf (stderr, "pond-bench: --events 1.., --producers/--connections 1..256, "
                 "--window 1..4096, "
                 "--size 64..60000, --subscribers 1..%d, --entities 1..\n", BENCH_MAX_SUBS);
        return 2;
    }
    if (options.loop && (producers_given || which != 0)) {
        fprintf (stderr, "pond-bench: --connections is for ingest, instead of --producers\n");
        return 2;
    }
    if (options.mesh && which != 0 && which != 1) {
        fprintf (stderr, "pond-bench: --mesh works with ingest and load only\n");
        return 2;
    }
    s_entities = (size_t) entities;
    if (options.events < BENCH_LOAD_PRODUCERS && which == 2)
        options.events = BENCH_LOAD_PRODUCERS;

    //  SIGINT/SIGTERM set zsys_interrupted; every wait below checks it
    zsys_init ();
    zsys_set_logident ("pond-bench");
    bench_mesh_t *mesh = options.mesh? s_mesh_attach (options.mesh)
                                     : s_mesh_new (options.parent, options.data, options.keep);
    if (!mesh)
        return 1;
    int rc = which == 0? s_scenario_ingest (mesh, &options)
           : which == 1? s_scenario_load (mesh, &options)
           : which == 2? s_scenario_replay (mesh, &options)
           : s_scenario_fanout (mesh, &options);
    fflush (stdout);
    s_mesh_destroy (&mesh);
    if (zsys_interrupted)
        return 130;
    return rc? 1: 0;
}
