/*  pond-bench: how fast is pond's durable log, measured honestly.

    Starts its own pond-store and pond-broker (from the directory this
    program lives in) on ipc endpoints inside a fresh data directory (or
    in --data DIR, kept), or works on a running mesh (--mesh DIR, pond
    up), drives them through the client library exactly as a producer, a
    subscriber or an admin would, prints ONE line of key=value results,
    then stops what it started by pid and removes what it made.

        pond-bench ingest [--events N] [--producers P | --connections C] [--window W]
                          [--rate R] [--batch B]
        pond-bench load   [--events N] [--entities E] [--names A,B]
        pond-bench replay [--events N] [--range M] [--slow-rate R --slow-seconds S]
        pond-bench fanout [--subscribers S] [--events N] [--producers P] [--window W]
        pond-bench query  --mesh DIR [--connections C] [--events N] [--entities E]

    This file parses the command line and runs one scenario; each scenario
    is a file of its own (pond_bench_ingest.c, pond_bench_load.c,
    pond_bench_replay.c, pond_bench_fanout.c, pond_bench_query.c) on the harness of
    pond_bench.h: the mesh (pond_bench_mesh), the pre-encoded events
    (pond_bench_events), the producers (pond_bench_publish), the clock and
    percentiles (pond_bench.c).

    Besides the figures, each line carries peak RSS (VmHWM) of store and
    broker and of this load generator, and their CPU seconds during the
    timed part.
*/
#include "pond_bench.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BENCH_ENTITIES 1000    //  default --entities
#define BENCH_MAX_SUBS 64      //  fanout: --subscribers

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
             "  query    with --mesh: C threads (--connections, default 1) ask the quack\n"
             "           counter about cust-0000.. (--entities) N times in all, one\n"
             "           query at a time each: answers/s and latency percentiles.\n"
             "\n"
             "Options:\n"
             "  --events N        events in all (default: ingest 5000 with W=1, else\n"
             "                    50000; replay 300000; load 100000; fanout 20000)\n"
             "  --producers P     producer threads, one client each (default 1)\n"
             "  --connections C   ingest, fanout: C clients (producers) driven from one thread's\n"
             "                    event loop, like redis-benchmark -c C, instead of threads\n"
             "  --window W        publishes in flight per producer (default 1)\n"
             "  --batch B         ingest, fanout: up to B of a producer's events in one PUBLISH\n"
             "                    (a batch, one RESULTS); default 1: one event each\n"
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
             "  --with-store      one process: pond-broker --with-store, no pond-store;\n"
             "                    store_* figures are then 0 (broker_* cover both), and\n"
             "                    the line says with_store=1\n"
             "  --keep            keep the data directory and the processes' logs\n"
             "  --help            show this text\n",
             BENCH_ENTITIES);
}

int
main (int argc, char *argv [])
{
    pond_reader_tune_malloc ();    //  a bulk reader: see pond_client.h
    pond_bench_options_t options = { .producers = 1,
                                     .window = 1,
                                     .batch = 1,
                                     .size = 200,
                                     .parent = ".",
                                     .subscribers = 1,
                                     .slow_seconds = 5 };
    static const struct option long_options [] = { { "events", required_argument, NULL, 'n' },
                                                   { "producers", required_argument, NULL, 'p' },
                                                   { "connections", required_argument, NULL, 'c' },
                                                   { "window", required_argument, NULL, 'w' },
                                                   { "batch", required_argument, NULL, 'b' },
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
                                                   { "with-store", no_argument, NULL, 'W' },
                                                   { "help", no_argument, NULL, 'h' },
                                                   { NULL, 0, NULL, 0 } };
    char *names_arg = NULL;
    long entities = BENCH_ENTITIES;
    bool producers_given = false;
    int option;
    while ((option = getopt_long (argc, argv, "n:p:w:s:d:kh", long_options, NULL)) != -1) {
        switch (option) {
            case 'n': options.events = atol (optarg); break;
            case 'p':
                options.producers = atoi (optarg);
                producers_given = true;
                break;
            case 'c':
                options.producers = atoi (optarg);
                options.loop = true;
                break;
            case 'w': options.window = atoi (optarg); break;
            case 'b': options.batch = atoi (optarg); break;
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
            case 'W': options.with_store = true; break;
            case 'h': s_usage (stdout); return 0;
            default: fprintf (stderr, "pond-bench: see pond-bench --help\n"); return 2;
        }
    }
    if (optind != argc - 1) {
        s_usage (stderr);
        return 2;
    }
    options.scenario = argv [optind];
    const char *scenarios [] = { "ingest", "load", "replay", "fanout", "query" };
    int which = -1;
    for (int i = 0; i < 5; i++)
        if (streq (options.scenario, scenarios [i]))
            which = i;
    if (which < 0) {
        fprintf (stderr, "pond-bench: unknown scenario '%s'; see pond-bench --help\n",
                 options.scenario);
        return 2;
    }
    if (names_arg) {
        for (char *name = strtok (names_arg, ","); name; name = strtok (NULL, ","))
            if (options.names_count < POND_BENCH_MAX_NAMES)
                options.names [options.names_count++] = name;
    }
    else
        for (size_t i = 0; i < POND_BENCH_LOAD_NAMES_COUNT; i++)
            options.names [options.names_count++] = pond_bench_load_names [i];
    if (options.events == 0) {
        long defaults [] = { options.window <= 1 && options.rate <= 0 ? 5000 : 50000, 100000,
                             300000, 20000, 20000 };
        options.events = defaults [which];
    }
    if (options.events < 1 || options.events > 100000000 || options.producers < 1
        || options.producers > 256 || options.window < 1 || options.window > 4096
        || options.batch < 1 || options.batch > 1024 || options.size < 64 || options.size > 60000
        || options.rate < 0 || options.slow_rate < 0 || options.slow_seconds <= 0
        || options.subscribers < 1 || options.subscribers > BENCH_MAX_SUBS || entities < 1
        || entities > 100000000 || options.names_count == 0) {
        fprintf (stderr,
                 "pond-bench: --events 1.., --producers/--connections 1..256, "
                 "--window 1..4096, --batch 1..1024, "
                 "--size 64..60000, --subscribers 1..%d, --entities 1..\n",
                 BENCH_MAX_SUBS);
        return 2;
    }
    if (options.loop && (producers_given || (which != 0 && which != 3 && which != 4))) {
        fprintf (stderr, "pond-bench: --connections is for ingest, fanout and query, instead of "
                         "--producers\n");
        return 2;
    }
    if (options.mesh && options.with_store) {
        fprintf (stderr, "pond-bench: --mesh starts nothing, --with-store says how to start "
                         "the mesh: give one of them\n");
        return 2;
    }
    if (options.mesh && which != 0 && which != 1 && which != 4) {
        fprintf (stderr, "pond-bench: --mesh works with ingest, load and query only\n");
        return 2;
    }
    if (!options.mesh && which == 4) {
        fprintf (stderr, "pond-bench: query needs a running mesh: --mesh DIR (pond up)\n");
        return 2;
    }
    options.entities = (size_t) entities;
    if (options.events < POND_BENCH_LOAD_PRODUCERS && which == 2)
        options.events = POND_BENCH_LOAD_PRODUCERS;

    //  SIGINT/SIGTERM set zsys_interrupted; every wait below checks it
    zsys_init ();
    zsys_set_logident ("pond-bench");
    pond_bench_mesh_t *mesh = options.mesh ? pond_bench_mesh_attach (options.mesh)
                                           : pond_bench_mesh_new (options.parent, options.data,
                                                                  options.keep, options.with_store);
    if (!mesh)
        return 1;
    int rc = which == 0 ? pond_bench_ingest (mesh, &options)
           : which == 1 ? pond_bench_load (mesh, &options)
           : which == 2 ? pond_bench_replay (mesh, &options)
           : which == 3 ? pond_bench_fanout (mesh, &options)
                        : pond_bench_query (mesh, &options);
    fflush (stdout);
    pond_bench_mesh_destroy (&mesh);
    if (zsys_interrupted)
        return 130;
    return rc ? 1 : 0;
}
