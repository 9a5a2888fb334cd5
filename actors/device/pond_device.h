/*  pond_device: a simulated kitchen device ("Silo") of a pond mesh.

    The device has buttons, quacks with the sensory data measured at that
    moment, and labels food containers. Each of these creates one event
    (BUTTON_CLICKED, QUACKED, LABEL_ADDED, LABEL_REMOVED) for its customer
    (entity), stamped with the device's id (source) and its own clock (ts).

    Offline first: an event is created into the device's durable outbox
    (pond_outbox) and only then sent. A sender drains the outbox in order,
    pipelined (a window of events in flight, first sends in outbox order),
    removing each event on its ACK and resending unacknowledged ones with
    the same id, so nothing is lost and nothing doubles. When the broker is
    unreachable or answers 503, the device backs off and keeps creating;
    when it is back, the queue drains. A network cut can be simulated.

    The device keeps only its own state: the containers it has labeled
    (LABEL_REMOVED makes one UNLABELED), updated in the same write that
    creates the event.

    Everything runs on the caller's thread: pond_device_pump sends and
    reads ACKs for a while; the actions pump briefly between events.
*/
#ifndef POND_DEVICE_H_INCLUDED
#define POND_DEVICE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define POND_DEVICE_WINDOW      64    //  events in flight by default
#define POND_DEVICE_WINDOW_MAX  1024
#define POND_DEVICE_RESEND_MS   2000    //  resend when no reply came by then
#define POND_DEVICE_SEND_MS     100     //  longest a send may block
#define POND_DEVICE_BACKOFF_MIN 100     //  first back-off when unreachable, msecs
#define POND_DEVICE_BACKOFF_MAX 5000    //  back-offs double up to this
#define POND_DEVICE_FIRMWARE    "2.1"
#define POND_DEVICE_TEXT_MAX    128    //  container and label bytes

typedef struct _pond_device_t pond_device_t;

typedef struct {
    const char *device;            //  device id: the source of its events; required
    const char *customer;          //  entity of its events; may be NULL (then kept one)
    const char *outbox;            //  outbox directory (RocksDB); required
    const char *ingest;            //  broker's ingest endpoint; NULL: resolve from data_dir
    const char *data_dir;          //  mesh data directory, for DIR/broker.zpl
    const char *firmware;          //  NULL: POND_DEVICE_FIRMWARE
    int64_t clock_skew_ms;         //  added to the wall clock for ts
    int window;                    //  events in flight, 0: POND_DEVICE_WINDOW
    int resend_ms;                 //  0: POND_DEVICE_RESEND_MS
    int start_offline_ms;          //  network cut for this long after start
    uint64_t offline_until_seq;    //  network cut until this local seq is created
    bool verbose;                  //  log each created and acked event
    bool read_only;                //  only report (--state): the outbox must exist
} pond_device_config_t;

//  Open the device's outbox. Nothing is sent yet. Returns NULL with the
//  reason logged (outbox in use by another process, bad endpoint).
pond_device_t *
    pond_device_new (const pond_device_config_t *config);

//  Destroy; accepts NULL; nulls the caller's pointer. Queued events stay in
//  the outbox for the next start.
void
    pond_device_destroy (pond_device_t **self_p);

//  ---------------------------------------------------------------------
//  Actions: each creates its events durably and then pumps without waiting.
//  Each returns 0, 1 if there was nothing to do (logged), or -1 if the
//  outbox could not be written (logged; nothing was created).

//  A button press: BUTTON_CLICKED {button, press_ms}. press_ms 0: sensed.
int
    pond_device_click (pond_device_t *self, int button, int press_ms);

//  A quack: QUACKED {duration_ms, loudness_db, firmware}, meta {firmware,
//  performer}. Zero values are sensed.
int
    pond_device_quack (pond_device_t *self, int duration_ms, double loudness_db);

//  Same for another customer (load generation); the device's own customer
//  is not changed.
int
    pond_device_quack_for (pond_device_t *self, const char *customer, int duration_ms,
                           double loudness_db);

//  Label a container: LABEL_ADDED {label, container}; the container becomes
//  LABELED. Relabeling a labeled container first removes the old label
//  (LABEL_REMOVED). Returns 1 if it already has this label.
int
    pond_device_label (pond_device_t *self, const char *container, const char *label);

//  Take the label off: LABEL_REMOVED {label, container}; the container
//  becomes UNLABELED. Returns 1 if the device has no label on it.
int
    pond_device_unlabel (pond_device_t *self, const char *container);

//  Create count QUACKED events round-robin over customers cust-0 ..
//  cust-(customers-1), at rate events per second (0: as fast as the outbox
//  takes them), pumping meanwhile. Returns 0, or -1 (outbox error or
//  interrupted).
int
    pond_device_load (pond_device_t *self, uint64_t count, double rate, int customers);

//  ---------------------------------------------------------------------
//  Network and sending

//  Simulate a network cut (false) or its end (true). The end of a cut also
//  ends the cut of start_offline_ms and offline_until_seq.
void
    pond_device_set_online (pond_device_t *self, bool online);

//  Send and read replies for timeout_ms (0: only what is ready now). Returns
//  0, or -1 if interrupted (SIGINT/SIGTERM).
int
    pond_device_pump (pond_device_t *self, int timeout_ms);

//  Pump until the outbox is empty, at most timeout_ms. Returns 0 when it is
//  empty, -1 otherwise (still queued, cut for good, or interrupted).
int
    pond_device_sync (pond_device_t *self, int timeout_ms);

//  Events in the outbox now.
uint64_t
    pond_device_queued (pond_device_t *self);

//  Why the last send failed, for a human ("" if the broker answered).
const char *
    pond_device_network_reason (pond_device_t *self);

//  The ingest endpoint in use.
const char *
    pond_device_ingest (pond_device_t *self);

//  ---------------------------------------------------------------------
//  Reports

//  The device's state: {device, customer, containers, outbox, sent, created,
//  dups, rejected, local_seq}, lifetime counters. Caller frees.
char *
    pond_device_state_json (pond_device_t *self);

//  This run: {device, customer, created, sent, dups, queued, rejected,
//  containers}, plus extra (a JSON object text whose members are added;
//  may be NULL). Caller frees.
char *
    pond_device_summary_json (pond_device_t *self, const char *extra);

//  This run's counters.
uint64_t
    pond_device_created (pond_device_t *self);
uint64_t
    pond_device_sent (pond_device_t *self);
//  Events the broker refused for good (set aside, never sent again).
uint64_t
    pond_device_rejected (pond_device_t *self);

#ifdef __cplusplus
}
#endif

#endif
