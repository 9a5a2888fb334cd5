/*  pond_store_embedded: the store of a data directory as a zactor in its
    host's process. The same lock, path and options as pond-store
    (pond_store_main.c); the link is inproc, so it has no keys and no
    DIR/store.zpl (nothing outside the process could use the endpoint).
*/
#include "pond_store_embedded.h"
#include "pond_store.h"
#include "pond_store_server.h"
#include "pond_pidlock.h"

#include <limits.h>

struct _pond_store_embedded_t {
    pond_pidlock_t *lock;    //  DIR/store.lock, as pond-store takes it
    pond_store_t *store;
    pond_store_server_t *server;
    zactor_t *actor;    //  serves server; its thread blocks signals
};

pond_store_embedded_t *
pond_store_embedded_new (const char *dir, bool verbose, char *err, size_t errlen)
{
    assert (dir);
    assert (err);
    pond_store_embedded_t *self = (pond_store_embedded_t *) zmalloc (
        sizeof (pond_store_embedded_t));
    if (!self) {
        snprintf (err, errlen, "out of memory");
        return NULL;
    }
    char path [PATH_MAX];
    snprintf (path, sizeof path, "%s/store.lock", dir);
    char why [PATH_MAX + 64];
    pid_t holder = 0;
    self->lock = pond_pidlock_new (path, 1, &holder, why, sizeof why);
    if (!self->lock) {
        if (holder)
            snprintf (err, errlen,
                      "the store of %s is in use by pid %d (a pond-store, or "
                      "another pond-broker --with-store): stop it first, or run pond-broker "
                      "without --with-store to use that store",
                      dir, (int) holder);
        else
            snprintf (err, errlen, "%s", why);
        pond_store_embedded_destroy (&self);
        return NULL;
    }
    pond_store_memory_t memory = { 0, 0 };
    if (pond_store_memory_from_env (&memory, err, errlen)) {
        pond_store_embedded_destroy (&self);
        return NULL;
    }
    snprintf (path, sizeof path, "%s/store", dir);
    self->store = pond_store_new_sized (path, &memory);
    if (!self->store) {
        snprintf (err, errlen, "cannot open the log in %s (reason above)", path);
        pond_store_embedded_destroy (&self);
        return NULL;
    }
    //  One name per store in the process: inproc names are per context
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "inproc://pond-store-%p", (void *) self);
    self->server = pond_store_server_new (self->store, endpoint);
    if (!self->server) {
        snprintf (err, errlen, "cannot bind %s (reason above)", endpoint);
        pond_store_embedded_destroy (&self);
        return NULL;
    }
    pond_store_server_set_verbose (self->server, verbose);
    self->actor = zactor_new (pond_store_server_actor, self->server);
    if (!self->actor) {
        snprintf (err, errlen, "cannot start the store's thread");
        pond_store_embedded_destroy (&self);
        return NULL;
    }
    zsys_info ("store: %s in this process on %s, head %" PRIu64, path,
               pond_store_server_endpoint (self->server), pond_store_head (self->store));
    return self;
}

void
pond_store_embedded_destroy (pond_store_embedded_t **self_p)
{
    if (self_p && *self_p) {
        pond_store_embedded_t *self = *self_p;
        //  $TERM: the actor answers the group being written, then ends;
        //  only then may the server and the store go, in that order
        zactor_destroy (&self->actor);
        if (self->store)
            zsys_info ("store: stopping, head %" PRIu64, pond_store_head (self->store));
        pond_store_server_destroy (&self->server);
        pond_store_destroy (&self->store);
        pond_pidlock_destroy (&self->lock);
        free (self);
        *self_p = NULL;
    }
}

const char *
pond_store_embedded_endpoint (pond_store_embedded_t *self)
{
    assert (self);
    return pond_store_server_endpoint (self->server);
}

zsock_t *
pond_store_embedded_pipe (pond_store_embedded_t *self)
{
    assert (self);
    return zactor_sock (self->actor);
}
