/*  pond-fsync-loop: the durability limit of one producer on this disk.

    Appends a record of --size bytes (default 200) to a fresh file in --dir
    and calls fdatasync after each one, --count times (default 5000). Every
    record grows the file, as a write-ahead log does, so each fdatasync
    also commits the file size: this is what one synced WAL append costs.
    A producer that waits for each durable ACK can never beat this rate.
    Prints one line: scenario=fsync_loop count=... seconds=... per_s=...
    p50_us=... p99_us=... (latency of one write + fdatasync pair).
*/
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void
s_usage (FILE *out)
{
    fprintf (out, "Usage: pond-fsync-loop [--dir DIR] [--count N] [--size BYTES]\n"
                  "\n"
                  "Appends BYTES (default 200) to a new file in DIR (default .) and calls\n"
                  "fdatasync after each append, N times (default 5000); prints the rate and\n"
                  "the latency of one append+fdatasync. The file is removed at the end.\n");
}

static int64_t
s_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int
s_compare (const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return (x > y) - (x < y);
}

int
main (int argc, char *argv [])
{
    const char *dir = ".";
    long count = 5000, size = 200;
    static const struct option options [] = { { "dir", required_argument, NULL, 'd' },
                                              { "count", required_argument, NULL, 'n' },
                                              { "size", required_argument, NULL, 's' },
                                              { "help", no_argument, NULL, 'h' },
                                              { NULL, 0, NULL, 0 } };
    int option;
    while ((option = getopt_long (argc, argv, "d:n:s:h", options, NULL)) != -1) {
        switch (option) {
            case 'd': dir = optarg; break;
            case 'n': count = atol (optarg); break;
            case 's': size = atol (optarg); break;
            case 'h': s_usage (stdout); return 0;
            default: s_usage (stderr); return 2;
        }
    }
    if (optind < argc || count < 1 || size < 1 || size > 1048576) {
        s_usage (stderr);
        return 2;
    }
    char path [4096];
    snprintf (path, sizeof path, "%s/pond-fsync-loop-%d.dat", dir, (int) getpid ());
    int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    if (fd < 0) {
        fprintf (stderr, "pond-fsync-loop: cannot create %s: %s\n", path, strerror (errno));
        return 1;
    }
    char *record = malloc ((size_t) size);
    int64_t *latency = malloc ((size_t) count * sizeof (int64_t));
    if (!record || !latency) {
        fprintf (stderr, "pond-fsync-loop: out of memory\n");
        return 1;
    }
    for (long i = 0; i < size; i++)
        record [i] = (char) ('a' + i % 26);

    int rc = 0;
    int64_t start = s_now_ns ();
    for (long i = 0; i < count && rc == 0; i++) {
        int64_t before = s_now_ns ();
        memcpy (record, &i, sizeof i < (size_t) size ? sizeof i : (size_t) size);
        if (write (fd, record, (size_t) size) != (ssize_t) size || fdatasync (fd)) {
            fprintf (stderr, "pond-fsync-loop: write or fdatasync failed: %s\n", strerror (errno));
            rc = 1;
        }
        latency [i] = s_now_ns () - before;
    }
    double seconds = (double) (s_now_ns () - start) / 1e9;
    close (fd);
    unlink (path);
    if (rc == 0) {
        qsort (latency, (size_t) count, sizeof (int64_t), s_compare);
        printf ("scenario=fsync_loop count=%ld size=%ld seconds=%.3f per_s=%.0f "
                "p50_us=%.0f p99_us=%.0f\n",
                count, size, seconds, (double) count / seconds, (double) latency [count / 2] / 1e3,
                (double) latency [(count * 99) / 100] / 1e3);
    }
    free (record);
    free (latency);
    return rc;
}
