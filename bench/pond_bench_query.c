/*  pond_bench_query: the query scenario of pond-bench.

        pond-bench query --mesh DIR [--connections C] [--events N] [--entities E]

    On a running mesh (pond up) whose quack counter knows cust-0000 ...
    (pond-bench load --mesh DIR --names QUACKED --entities E first): C
    threads, each with its own link to the quack counter's query socket,
    ask N queries in all, one at a time each (entities round robin), and
    time each from send to answer. The native figure next to GET
    /v1/views/quacks/ENTITY through pond-gateway (bench/http).
*/
#include "pond_bench.h"
#include "pond_actor_link.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    const char *dir;
    size_t first, count, entities;
    int64_t *latency;    //  count of them, ns
    size_t failed;
    char reason [256];
} worker_t;

static void *
s_worker (void *args)
{
    worker_t *self = (worker_t *) args;
    pond_actor_link_t *link = pond_actor_link_new (self->dir, "quack-counter", self->reason,
                                                   sizeof self->reason);
    if (!link) {
        self->failed = self->count;
        return NULL;
    }
    for (size_t i = 0; i < self->count && !zsys_interrupted; i++) {
        char entity [32];
        snprintf (entity, sizeof entity, "cust-%04zu", (self->first + i) % self->entities);
        int64_t started = pond_bench_now_ns ();
        char *answer = pond_actor_link_query (link, entity, NULL, 5000);
        self->latency [i] = pond_bench_now_ns () - started;
        if (!answer && self->failed++ == 0)
            snprintf (self->reason, sizeof self->reason, "%s: %s", entity,
                      pond_actor_link_reason (link));
        free (answer);
    }
    pond_actor_link_destroy (&link);
    return NULL;
}

int
pond_bench_query (pond_bench_mesh_t *mesh, const pond_bench_options_t *options)
{
    size_t threads = (size_t) options->producers, total = (size_t) options->events;
    worker_t *workers = calloc (threads, sizeof *workers);
    pthread_t *ids = calloc (threads, sizeof *ids);
    int64_t *latency = calloc (total, sizeof *latency);
    if (!workers || !ids || !latency) {
        free (workers);
        free (ids);
        free (latency);
        return -1;
    }
    double cpu_before = pond_bench_self_cpu ();
    int64_t started = pond_bench_now_ns ();
    size_t given = 0;
    for (size_t i = 0; i < threads; i++) {
        size_t count = total / threads + (i < total % threads ? 1 : 0);
        workers [i] = (worker_t) { .dir = pond_bench_mesh_dir (mesh),
                                   .first = given,
                                   .count = count,
                                   .entities = options->entities,
                                   .latency = latency + given };
        given += count;
        pthread_create (&ids [i], NULL, s_worker, &workers [i]);
    }
    size_t failed = 0;
    for (size_t i = 0; i < threads; i++) {
        pthread_join (ids [i], NULL);
        if (workers [i].failed && !failed)
            fprintf (stderr, "pond-bench query: %zu failed, first: %s\n", workers [i].failed,
                     workers [i].reason);
        failed += workers [i].failed;
    }
    double seconds = (double) (pond_bench_now_ns () - started) / 1e9;
    double cpu = pond_bench_self_cpu () - cpu_before;
    pond_bench_sort_ns (latency, total);
    printf ("scenario=query queries=%zu connections=%zu entities=%zu seconds=%.3f "
            "queries_per_s=%.0f p50_us=%.0f p99_us=%.0f p999_us=%.0f failed=%zu bench_cpu_s=%.2f\n",
            total, threads, options->entities, seconds, (double) total / seconds,
            pond_bench_percentile_us (latency, total, 0.50),
            pond_bench_percentile_us (latency, total, 0.99),
            pond_bench_percentile_us (latency, total, 0.999), failed, cpu);
    free (workers);
    free (ids);
    free (latency);
    return failed == total ? -1 : 0;
}
