/*  pond_broker: the one write point of a pond mesh, and its fan-out.

    Producers PUBLISH on the ingest socket; the broker validates each event,
    hands batches to pond-store, and only when the store answers that they
    are durable does it publish them on the pub socket and ACK the
    producers (log first, DESIGN.md invariant 1). Admins use the control
    socket for STATS, REPLAY and COMMAND (pond_broker_commands); replays are relayed from the store to the
    reader with the reader's credit, so the broker holds at most a chunk.
    With a keys directory (pond_keys.h) every socket it binds speaks CURVE:
    only known keys get in, `source` is stamped with the sender's key name,
    and what each key may do is checked per message (NACK / ERROR 403).
*/
#ifndef POND_BROKER_H_INCLUDED
#define POND_BROKER_H_INCLUDED

#include <czmq.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char *ingest;      //  endpoint to bind for producers
    const char *pub;         //  endpoint to bind for subscribers
    const char *control;     //  endpoint to bind for admins
    const char *store;       //  endpoint of pond-store to connect to
    const char *keys;        //  keys directory: CURVE on ingest, pub and
                             //  control with key "broker"; NULL: local mode
    const char *data;        //  data directory: where the actors' ready files
                             //  (DATA/NAME.zpl) are, for COMMAND
    int pending_max;         //  events waiting for the store before 503
    int batch_timeout_ms;    //  a batch unanswered this long is NACKed 503
    bool verbose;
} pond_broker_config_t;

typedef struct _pond_broker_t pond_broker_t;

//  Fill config with the defaults for data directory dir (ipc endpoints in
//  it). The strings point into buffers owned by the caller's `scratch`
//  (4 x 256 bytes), and data to dir itself.
void
    pond_broker_config_defaults (pond_broker_config_t *config, const char *dir,
                                 char scratch [4][256]);

//  Bind and connect. Returns NULL, with the reason logged, if an endpoint
//  cannot be bound.
pond_broker_t *
    pond_broker_new (const pond_broker_config_t *config);

//  Destroy the broker; accepts NULL; nulls the caller's pointer.
void
    pond_broker_destroy (pond_broker_t **self_p);

//  The endpoint actually bound for "ingest", "pub" or "control" (wildcard
//  ports resolved), or NULL.
const char *
    pond_broker_endpoint (pond_broker_t *self, const char *which);

//  Also poll sock (not owned; NULL: none), the pipe of a store that runs
//  in this process (pond_store_embedded): a message on it means that
//  store stopped serving, and pond_broker_run returns -1 at once,
//  acknowledging nothing more.
void
    pond_broker_watch_store (pond_broker_t *self, zsock_t *sock);

//  Serve until interrupted (SIGINT/SIGTERM): returns 0; or until the
//  watched store stops: returns -1 (exit and be restarted).
int
    pond_broker_run (pond_broker_t *self);

#ifdef __cplusplus
}
#endif

#endif
