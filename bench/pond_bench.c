/*  pond_bench: the clock and the figures every pond-bench scenario reports.

    The monotonic clock, latency percentiles, and this program's own CPU
    and peak RSS (getrusage). The mesh's processes are measured from /proc
    by pond_bench_mesh.
*/
#define _GNU_SOURCE
#include "pond_bench.h"

#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

int64_t
pond_bench_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void
pond_bench_sleep_ms (int msecs)
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

void
pond_bench_sort_ns (int64_t *values, size_t count)
{
    qsort (values, count, sizeof (int64_t), s_compare_i64);
}

double
pond_bench_percentile_us (const int64_t *sorted, size_t count, double q)
{
    if (count == 0)
        return 0;
    size_t index = (size_t) (q * (double) count);
    if (index >= count)
        index = count - 1;
    return (double) sorted [index] / 1e3;
}

double
pond_bench_self_cpu (void)
{
    struct rusage usage;
    getrusage (RUSAGE_SELF, &usage);
    return (double) usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6
         + (double) usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6;
}

long
pond_bench_self_hwm_kb (void)
{
    struct rusage usage;
    getrusage (RUSAGE_SELF, &usage);
    return usage.ru_maxrss;
}
