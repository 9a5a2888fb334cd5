/*  device.c: a minimal pond device, built against an installed pond.

    Publishes QUACKED events for one customer, each with an id the device
    makes itself (a UUIDv7), and waits for each one's ACK: the event is
    durable in the log and the ACK says its seq. A NACK 503 (the broker is
    busy, or its store is away for a moment) is answered by sending the
    same event again, with the same id, a little later: the store keeps
    an id once, so a resend never doubles an event. No answer in time
    (408: the event may or may not be stored) is answered the same way,
    twice at most. Any other refusal (400, 403, 409, 413), or no answer
    three times, ends the run with exit 1.

    Build it with its CMakeLists.txt, or in one line:
        cc device.c -o device $(pkg-config --cflags --libs pond-client)
    Run it against a mesh (pond up --data DIR):
        ./device --data DIR --customer anna --count 3
*/
#include <pond/pond.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RESENDS_MAX  20    //  NACK 503s taken for one event before giving up
#define TIMEOUTS_MAX 3     //  ... and sends without an answer

static int
s_usage (void)
{
    fprintf (stderr, "Usage: device [--data DIR] [--customer NAME] [--count N]\n"
                     "Publish N QUACKED events (default 3) for customer NAME (default\n"
                     "anna) to the mesh in DIR (default $POND_DATA, else ./pond-data).\n");
    return 2;
}

//  Publish one event until it is ACKed, resending the same bytes (same id)
//  after each NACK 503 and after a send without an answer. Returns 0
//  with the ACK, or -1 (said why).
static int
s_publish (pond_client_t *client, pond_event_t *event, pond_ack_t *ack)
{
    char id [POND_UUID_STR_SIZE];
    pond_uuid_format (pond_event_id (event), id);
    int wait_ms = 100, unavailable = 0, timeouts = 0;
    while (pond_client_publish (client, event, ack)) {
        int code = pond_client_code (client);
        if (code == POND_CODE_UNAVAILABLE && ++unavailable <= RESENDS_MAX) {
            fprintf (stderr, "device: 503 for %s (%s); sending it again in %d ms\n", id,
                     pond_client_reason (client), wait_ms);
            usleep ((useconds_t) wait_ms * 1000);
            if (wait_ms < 1600)
                wait_ms *= 2;
        }
        else if (code == POND_CODE_TIMEOUT && ++timeouts < TIMEOUTS_MAX)
            fprintf (stderr, "device: no answer for %s; sending it again\n", id);
        else {
            fprintf (stderr, "device: %s not stored: %d %s\n", id, code,
                     pond_client_reason (client));
            return -1;
        }
    }
    return 0;
}

int
main (int argc, char *argv [])
{
    const char *data_dir = NULL;    //  $POND_DATA, else ./pond-data
    const char *customer = "anna";
    long count = 3;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "--data") == 0 && i + 1 < argc)
            data_dir = argv [++i];
        else if (strcmp (argv [i], "--customer") == 0 && i + 1 < argc)
            customer = argv [++i];
        else if (strcmp (argv [i], "--count") == 0 && i + 1 < argc)
            count = strtol (argv [++i], NULL, 10);
        else
            return s_usage ();
    }
    if (count < 1)
        return s_usage ();

    pond_endpoints_t eps;
    if (pond_endpoints_resolve (data_dir, &eps)) {
        fprintf (stderr, "device: the data directory's path is too long\n");
        return 1;
    }
    pond_client_t *client = pond_client_new (eps.ingest);
    if (!client) {
        fprintf (stderr, "device: cannot connect to %s\n", eps.ingest);
        return 1;
    }
    //  One send per call, 2 s for its ACK: this device takes the 503s
    //  itself (s_publish); pond_client_publish alone would resend too
    pond_client_set_timeout (client, 2000, 1);

    int rc = 0;
    for (long i = 0; i < count && rc == 0; i++) {
        pond_event_t *event = pond_event_new ("QUACKED", customer);
        uint8_t id [POND_ID_SIZE];
        char err [POND_ERR_SIZE];
        if (!event || pond_uuid_v7 (id)
            || pond_event_set_data_json (event, "{\"duration_ms\":420,\"loudness_db\":61}", err,
                                         sizeof err)) {
            fprintf (stderr, "device: cannot make the event\n");
            pond_event_destroy (&event);
            rc = 1;
            break;
        }
        pond_event_set_id (event, id);    //  our own id: the one resends carry
        pond_event_set_source (event, "example-device");
        pond_ack_t ack;
        if (s_publish (client, event, &ack) == 0) {
            char text [POND_UUID_STR_SIZE];
            pond_uuid_format (id, text);
            printf ("QUACKED %s for %s: stored as seq %llu%s\n", text, customer,
                    (unsigned long long) ack.seq, ack.dup ? " (stored before)" : "");
            fflush (stdout);
        }
        else
            rc = 1;
        pond_event_destroy (&event);
    }
    pond_client_destroy (&client);
    return rc;
}
