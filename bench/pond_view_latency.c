/*  pond-view-latency: time from a device's publish to the mobile view
    reflecting it, on a running mesh (pond up).

    For each event, one at a time: publish a QUACKED for one customer and
    wait for its ACK (publish -> durable), then ask the mobile view for the
    customer's document until its updated_seq reaches the event's seq
    (publish -> visible). Asking is back to back, so the figure includes
    up to one query round trip of polling: it is an upper bound.
    Prints one line: p50/p99/p99.9 of both (and p90, max of visible), in
    microseconds; p99.9 means something only with a few thousand events.
*/
#include "pond_client.h"
#include "pond_actor_link.h"

#include <cjson/cJSON.h>
#include <getopt.h>

static int
s_compare (const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return (x > y) - (x < y);
}

static int64_t
s_percentile (int64_t *sorted, size_t count, double p)
{
    size_t index = (size_t) (p * (double) (count - 1) + 0.5);
    return sorted [index < count ? index : count - 1];
}

//  The mobile document's updated_seq, or 0 if it has none yet.
static uint64_t
s_updated_seq (pond_actor_link_t *link, const char *entity)
{
    char *json = pond_actor_link_query (link, entity, NULL, 2000);
    if (!json)
        return 0;
    cJSON *doc = cJSON_Parse (json);
    cJSON *seq = cJSON_GetObjectItem (doc, "updated_seq");
    uint64_t value = cJSON_IsNumber (seq) ? (uint64_t) seq->valuedouble : 0;
    cJSON_Delete (doc);
    free (json);
    return value;
}

int
main (int argc, char *argv [])
{
    const char *dir = getenv ("POND_DATA") ? getenv ("POND_DATA") : "./pond-data";
    size_t events = 2000;
    const char *entity = "latency-probe";
    static const struct option options [] = { { "data", required_argument, NULL, 'd' },
                                              { "events", required_argument, NULL, 'n' },
                                              { "entity", required_argument, NULL, 'e' },
                                              { "help", no_argument, NULL, 'h' },
                                              { NULL, 0, NULL, 0 } };
    int opt;
    while ((opt = getopt_long (argc, argv, "d:n:e:h", options, NULL)) != -1) {
        switch (opt) {
            case 'd': dir = optarg; break;
            case 'n': events = (size_t) atol (optarg); break;
            case 'e': entity = optarg; break;
            case 'h':
                printf ("Usage: pond-view-latency [--data DIR] [--events N] [--entity E]\n\n"
                        "On a mesh started with pond up: publish N QUACKED events one at a\n"
                        "time and measure publish -> ACK and publish -> mobile view updated.\n");
                return 0;
            default: return 2;
        }
    }
    if (events < 10) {
        fprintf (stderr, "pond-view-latency: --events must be at least 10\n");
        return 2;
    }
    zsys_init ();
    pond_endpoints_t eps;
    char err [POND_ERR_SIZE];
    pond_actor_link_t *link = NULL;
    if (pond_endpoints_resolve (dir, &eps)
        || !(link = pond_actor_link_new (dir, "mobile-view", err, sizeof err))) {
        fprintf (stderr, "pond-view-latency: no mesh in %s (start it with pond up): %s\n", dir,
                 link ? "" : err);
        return 1;
    }
    pond_client_t *client = pond_client_new (eps.ingest);
    int64_t *acked = calloc (events, sizeof (int64_t));
    int64_t *visible = calloc (events, sizeof (int64_t));
    uint64_t polls = 0;
    int rc = 0;
    for (size_t i = 0; i < events && rc == 0; i++) {
        pond_event_t *event = pond_event_new ("QUACKED", entity);
        pond_event_set_source (event, "latency-probe");
        pond_ack_t ack;
        int64_t start = zclock_usecs ();
        if (pond_client_publish (client, event, &ack)) {
            fprintf (stderr, "pond-view-latency: publish failed: %s\n",
                     pond_client_reason (client));
            rc = 1;
        }
        acked [i] = zclock_usecs () - start;
        while (rc == 0 && s_updated_seq (link, entity) < ack.seq) {
            polls++;
            if (zclock_usecs () - start > 5000000) {
                fprintf (stderr,
                         "pond-view-latency: the mobile view did not show seq %llu "
                         "within 5 s\n",
                         (unsigned long long) ack.seq);
                rc = 1;
            }
        }
        visible [i] = zclock_usecs () - start;
        pond_event_destroy (&event);
    }
    if (rc == 0) {
        qsort (acked, events, sizeof (int64_t), s_compare);
        qsort (visible, events, sizeof (int64_t), s_compare);
        printf ("scenario=view_latency events=%zu ack_p50_us=%lld ack_p99_us=%lld "
                "ack_p999_us=%lld visible_p50_us=%lld visible_p90_us=%lld "
                "visible_p99_us=%lld visible_p999_us=%lld "
                "visible_max_us=%lld extra_polls_per_event=%.2f\n",
                events, (long long) s_percentile (acked, events, 0.5),
                (long long) s_percentile (acked, events, 0.99),
                (long long) s_percentile (acked, events, 0.999),
                (long long) s_percentile (visible, events, 0.5),
                (long long) s_percentile (visible, events, 0.9),
                (long long) s_percentile (visible, events, 0.99),
                (long long) s_percentile (visible, events, 0.999), (long long) visible [events - 1],
                (double) polls / (double) events);
    }
    free (acked);
    free (visible);
    pond_client_destroy (&client);
    pond_actor_link_destroy (&link);
    return rc;
}
