/*  pond-redis-xrange: the Redis Streams peer of pond's replay.

        pond-redis-xrange --socket PATH [--key K] --load N [--size B]
        pond-redis-xrange --socket PATH [--key K] [--count C] [--expect N]

    --load: appends N entries (XADD K * event <B bytes>, default 200) to
    the stream, pipelined 1000 at a time with hiredis, and reports the
    rate (not a peer figure: loading only prepares the read).

    Otherwise pages through the whole stream the way a reader of a long
    history must: XRANGE K - + COUNT C (default 1000), then XRANGE K
    (LAST + COUNT C from the last id seen, until a page comes back short.
    hiredis parses every reply into its objects (the reader's decode);
    each entry is checked to be an id with one field and a value. Prints
    one line: scenario=redis_xrange events=... seconds=... events_per_s=...
    With --expect N, fails unless exactly N entries were read.
*/
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define XRANGE_PIPELINE 1000    //  --load: XADDs in flight

static int64_t
s_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

//  Append count entries with pipelined XADDs. Returns 0 or -1.
static int
s_load (redisContext *redis, const char *key, long count, long size)
{
    char *value = malloc ((size_t) size + 1);
    if (!value)
        return -1;
    for (long i = 0; i < size; i++)
        value [i] = (char) ('a' + i % 26);
    int rc = 0;
    int64_t start = s_now_ns ();
    for (long done = 0; done < count && rc == 0;) {
        long batch = count - done < XRANGE_PIPELINE ? count - done : XRANGE_PIPELINE;
        for (long i = 0; i < batch; i++) {
            memcpy (value, &done, sizeof done < (size_t) size ? sizeof done : (size_t) size);
            redisAppendCommand (redis, "XADD %s * event %b", key, value, (size_t) size);
        }
        for (long i = 0; i < batch; i++) {
            redisReply *reply = NULL;
            if (redisGetReply (redis, (void **) &reply) != REDIS_OK || !reply
                || reply->type == REDIS_REPLY_ERROR) {
                fprintf (stderr, "pond-redis-xrange: XADD failed: %s\n",
                         reply ? reply->str : redis->errstr);
                rc = -1;
            }
            if (reply)
                freeReplyObject (reply);
            if (rc)
                break;
        }
        done += batch;
    }
    double seconds = (double) (s_now_ns () - start) / 1e9;
    if (rc == 0)
        printf ("scenario=redis_load events=%ld size=%ld seconds=%.3f events_per_s=%.0f\n", count,
                size, seconds, (double) count / seconds);
    free (value);
    return rc;
}

//  Page through the stream. Returns 0 or -1.
static int
s_read (redisContext *redis, const char *key, long page, long expect)
{
    char from [64] = "-";
    long events = 0, pages = 0, bad = 0;
    int rc = 0;
    int64_t start = s_now_ns ();
    while (rc == 0) {
        redisReply *reply = redisCommand (redis, "XRANGE %s %s + COUNT %ld", key, from, page);
        if (!reply || reply->type != REDIS_REPLY_ARRAY) {
            fprintf (stderr, "pond-redis-xrange: XRANGE failed: %s\n",
                     reply && reply->str ? reply->str : redis->errstr);
            rc = -1;
            if (reply)
                freeReplyObject (reply);
            break;
        }
        pages++;
        size_t got = reply->elements;
        for (size_t i = 0; i < got; i++) {
            redisReply *entry = reply->element [i];
            if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2
                || entry->element [0]->type != REDIS_REPLY_STRING
                || entry->element [1]->type != REDIS_REPLY_ARRAY
                || entry->element [1]->elements != 2) {
                bad++;
                continue;
            }
            events++;
            if (i == got - 1)
                snprintf (from, sizeof from, "(%s", entry->element [0]->str);
        }
        freeReplyObject (reply);
        if ((long) got < page)
            break;
    }
    double seconds = (double) (s_now_ns () - start) / 1e9;
    if (rc == 0 && (bad || (expect >= 0 && events != expect))) {
        fprintf (stderr, "pond-redis-xrange: read %ld entries (expected %ld), %ld malformed\n",
                 events, expect, bad);
        rc = -1;
    }
    if (rc == 0)
        printf ("scenario=redis_xrange events=%ld pages=%ld seconds=%.3f events_per_s=%.0f\n",
                events, pages, seconds, (double) events / seconds);
    return rc;
}

static void
s_usage (FILE *out)
{
    fprintf (out, "Usage: pond-redis-xrange --socket PATH [--key K] --load N [--size B]\n"
                  "       pond-redis-xrange --socket PATH [--key K] [--count C] [--expect N]\n"
                  "\n"
                  "Load N entries into a Redis stream (pipelined XADD), or page through it\n"
                  "with XRANGE ... COUNT C (default 1000) and print the rate.\n");
}

int
main (int argc, char *argv [])
{
    const char *socket_path = NULL, *key = "replay";
    long load = 0, size = 200, page = 1000, expect = -1;
    static const struct option options [] = {
        { "socket", required_argument, NULL, 'S' }, { "key", required_argument, NULL, 'k' },
        { "load", required_argument, NULL, 'l' },   { "size", required_argument, NULL, 's' },
        { "count", required_argument, NULL, 'c' },  { "expect", required_argument, NULL, 'e' },
        { "help", no_argument, NULL, 'h' },         { NULL, 0, NULL, 0 }
    };
    int option;
    while ((option = getopt_long (argc, argv, "h", options, NULL)) != -1) {
        switch (option) {
            case 'S': socket_path = optarg; break;
            case 'k': key = optarg; break;
            case 'l': load = atol (optarg); break;
            case 's': size = atol (optarg); break;
            case 'c': page = atol (optarg); break;
            case 'e': expect = atol (optarg); break;
            case 'h': s_usage (stdout); return 0;
            default: s_usage (stderr); return 2;
        }
    }
    if (optind < argc || !socket_path || load < 0 || size < 1 || size > 1048576 || page < 1) {
        s_usage (stderr);
        return 2;
    }
    redisContext *redis = redisConnectUnix (socket_path);
    if (!redis || redis->err) {
        fprintf (stderr, "pond-redis-xrange: cannot connect to %s: %s\n", socket_path,
                 redis ? redis->errstr : "out of memory");
        redisFree (redis);
        return 1;
    }
    int rc = load ? s_load (redis, key, load, size) : s_read (redis, key, page, expect);
    redisFree (redis);
    return rc ? 1 : 0;
}
