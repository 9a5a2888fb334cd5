/*  pond_store_embedded: the store of a data directory run inside another
    process (pond-broker --with-store) instead of as pond-store.

    Takes what pond-store takes before it touches the log: the store's
    lock (DIR/store.lock, so a pond-store on the same directory is refused
    while this runs, and the other way round), then opens DIR/store and
    serves it with pond_store_server bound to an inproc:// endpoint, in a
    zactor whose thread blocks signals. The host connects its store link
    to pond_store_embedded_endpoint and polls pond_store_embedded_pipe: a
    message there means the store stopped serving (its writer thread was
    lost) and the host must stop too, answering nothing more. No
    DIR/store.zpl is written: nothing outside the process can reach an
    inproc endpoint. Keys do not apply: the link never leaves the process.
*/
#ifndef POND_STORE_EMBEDDED_H_INCLUDED
#define POND_STORE_EMBEDDED_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _pond_store_embedded_t pond_store_embedded_t;

//  Lock and open the store of data directory dir and start serving it
//  (verbose: log every replay and refused request, as pond-store
//  --verbose). Returns NULL with the reason in err (what to do next
//  included): the lock is held by another process, or the log cannot be
//  opened.
pond_store_embedded_t *
    pond_store_embedded_new (const char *dir, bool verbose, char *err, size_t errlen);

//  Stop serving ($TERM to the actor, which answers the group being
//  written), destroy the server, close the store, release the lock.
//  Accepts NULL; nulls the caller's pointer.
void
    pond_store_embedded_destroy (pond_store_embedded_t **self_p);

//  The inproc:// endpoint to connect the store link to.
const char *
    pond_store_embedded_endpoint (pond_store_embedded_t *self);

//  The actor's pipe, to poll: readable means the store stopped serving.
zsock_t *
    pond_store_embedded_pipe (pond_store_embedded_t *self);

#ifdef __cplusplus
}
#endif

#endif
