/*  actor.c: a minimal custom pond actor, built against an installed pond.

    Keeps a count of QUACKED events per customer, the way every actor of a
    mesh keeps its view: it subscribes to the live events first, catches
    up from the log (a replay of QUACKED in seq order, up to the head the
    store had when the replay began), then goes on live. An event counts
    once: live events at or below the replay's head were in the replay
    already and are skipped. The subscription is known to be active (the
    first heartbeat came through it) before the replay starts, so nothing
    stored after the replay's head can be missed.

    It prints the counts and exits once it has counted --until N events
    (or after --idle MS without a new event). A real actor would also
    write its counts and its last seq in one atomic write (pond's own
    actors do, in RocksDB), so that a restart catches up from there.

    Build it with its CMakeLists.txt, or in one line:
        cc actor.c -o actor $(pkg-config --cflags --libs pond-client)
    Run it against a mesh (pond up --data DIR):
        ./actor --data DIR --until 8
*/
#include <pond/pond.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CUSTOMERS_MAX 64
#define WAIT_MS       3000    //  for a heartbeat, and for each replayed event

typedef struct {
    char name [POND_ENTITY_MAX + 1];
    unsigned long count;
} customer_t;

typedef struct {
    customer_t customers [CUSTOMERS_MAX];
    size_t size;
    unsigned long total;
    uint64_t last_seq;    //  the newest seq applied or skipped
} counts_t;

static int
s_usage (void)
{
    fprintf (stderr, "Usage: actor [--data DIR] [--until N] [--idle MS]\n"
                     "Count QUACKED events per customer in the mesh in DIR (default\n"
                     "$POND_DATA, else ./pond-data): the stored ones, then live ones,\n"
                     "until N were counted (default: no limit) or none came for MS\n"
                     "milliseconds (default 10000). Prints one line per customer.\n");
    return 2;
}

//  Apply one event: count it once. Returns 0, or -1 if the table is full.
static int
s_apply (counts_t *self, const pond_event_t *event)
{
    if (pond_event_seq (event) <= self->last_seq)
        return 0;    //  replayed already
    self->last_seq = pond_event_seq (event);
    const char *entity = pond_event_entity (event);
    size_t i;
    for (i = 0; i < self->size; i++)
        if (strcmp (self->customers [i].name, entity) == 0)
            break;
    if (i == self->size) {
        if (self->size == CUSTOMERS_MAX)
            return -1;
        snprintf (self->customers [i].name, sizeof self->customers [i].name, "%s", entity);
        self->size++;
    }
    self->customers [i].count++;
    self->total++;
    return 0;
}

//  Catch up: replay every stored QUACKED in seq order. Returns 0, or -1
//  (said why).
static int
s_catch_up (counts_t *self, const char *control)
{
    pond_replay_req_t req;
    memset (&req, 0, sizeof req);
    req.names_count = 1;
    strcpy (req.names [0], "QUACKED");
    strcpy (req.order, "seq");
    pond_reader_t *reader = pond_reader_new (control, &req);
    if (!reader) {
        fprintf (stderr, "actor: cannot replay from %s\n", control);
        return -1;
    }
    int rc = 0;
    pond_event_t *event;
    while ((event = pond_reader_next (reader, WAIT_MS))) {
        rc = s_apply (self, event);
        pond_event_destroy (&event);
        if (rc)
            break;
    }
    if (rc == 0 && pond_reader_code (reader) != POND_CODE_OK) {
        fprintf (stderr, "actor: replay failed: %d %s\n", pond_reader_code (reader),
                 pond_reader_reason (reader));
        rc = -1;
    }
    if (rc == 0 && pond_reader_head (reader) > self->last_seq)
        self->last_seq = pond_reader_head (reader);
    pond_reader_destroy (&reader);
    return rc;
}

int
main (int argc, char *argv [])
{
    const char *data_dir = NULL;
    unsigned long until = 0;
    long idle_ms = 10000;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "--data") == 0 && i + 1 < argc)
            data_dir = argv [++i];
        else if (strcmp (argv [i], "--until") == 0 && i + 1 < argc)
            until = strtoul (argv [++i], NULL, 10);
        else if (strcmp (argv [i], "--idle") == 0 && i + 1 < argc)
            idle_ms = strtol (argv [++i], NULL, 10);
        else
            return s_usage ();
    }
    pond_endpoints_t eps;
    if (pond_endpoints_resolve (data_dir, &eps)) {
        fprintf (stderr, "actor: the data directory's path is too long\n");
        return 1;
    }
    const char *names [] = { "QUACKED" };
    pond_sub_t *sub = pond_sub_new (eps.pub, names, 1);
    if (!sub) {
        fprintf (stderr, "actor: cannot subscribe to %s\n", eps.pub);
        return 1;
    }
    //  Subscribed once a heartbeat comes through: events before it are
    //  stored before the replay begins, so the replay has them
    int64_t deadline = zclock_mono () + WAIT_MS;
    while (pond_sub_heartbeats (sub) == 0 && zclock_mono () < deadline) {
        pond_event_t *event = pond_sub_recv (sub, 100);
        pond_event_destroy (&event);
    }
    counts_t counts;
    memset (&counts, 0, sizeof counts);
    int rc = 0;
    if (pond_sub_heartbeats (sub) == 0) {
        fprintf (stderr, "actor: no heartbeat from %s in %d ms: is the mesh up?\n", eps.pub,
                 WAIT_MS);
        rc = 1;
    }
    else if (s_catch_up (&counts, eps.control))
        rc = 1;
    else {
        printf ("caught up: %lu QUACKED, log at seq %llu\n", counts.total,
                (unsigned long long) counts.last_seq);
        fflush (stdout);
        //  Live
        while (until == 0 || counts.total < until) {
            pond_event_t *event = pond_sub_recv (sub, (int) idle_ms);
            if (!event)
                break;    //  idle, or interrupted
            rc = s_apply (&counts, event) ? 1 : 0;
            pond_event_destroy (&event);
            if (rc)
                break;
        }
        for (size_t i = 0; i < counts.size; i++)
            printf ("%s %lu\n", counts.customers [i].name, counts.customers [i].count);
        printf ("total %lu, last seq %llu\n", counts.total, (unsigned long long) counts.last_seq);
        if (until && counts.total < until) {
            fprintf (stderr, "actor: counted %lu of %lu QUACKED before %ld ms without one\n",
                     counts.total, until, idle_ms);
            rc = 1;
        }
    }
    pond_sub_destroy (&sub);
    return rc;
}
