/*  pond_keys: who may talk to a pond mesh over a real network.

    Over tcp every socket of a mesh uses ZeroMQ CURVE: each process has a
    key pair (a CZMQ zcert), servers only let in public keys they know, and
    every message a server receives says which key sent it. This module
    holds all of it, so broker, actors, devices and the command line agree:

    - A keys directory KEYS (`pond keys new` makes it):
        KEYS/public/NAME.cert         the public key and its metadata: role,
                                      name, customers (comma-separated)
        KEYS/secret/NAME.cert_secret  the secret key (mode 0600): copy it
                                      only to where NAME runs
      Servers let in exactly the keys of KEYS/public, and notice within a
      few seconds when a file is added or removed (no restart).
    - Roles, and what each may do (the pond_key_may_* functions):
        broker   serves ingest, pub and control; its key is named "broker"
        store    serves the store link, to the broker only; named "store"
        device   publishes only for its customers (entities); subscribes
        app      queries the actors about its customers only; publishes only
                 for its customers
        actor    publishes for anyone; REPLAY on control (its catch-up);
                 serves its query socket
        admin    everything, and the only key STATS is answered for
    - The process identity: pond_keys_use (KEYS, NAME) once at start. From
      then on every socket pond makes in this process uses CURVE with that
      key pair: clients (pond_client, pond_sub, pond_reader, stats, actor
      links) through pond_keys_client, servers through pond_keys_server,
      which also starts the process's ZAP handler. Without pond_keys_use a
      process stays in local mode: no keys, nothing changes.
    - The sender of a message: pond_keys_sender (frame) maps the frame's
      ZAP User-Id (the client's public key, set by our handler) to its
      pond_key_t.

    The process identity and the ZAP handler are process-wide, like the
    settings of zsys: call these functions from the main thread only.
*/
#ifndef POND_KEYS_H_INCLUDED
#define POND_KEYS_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include "pond_identity.h"

#ifdef __cplusplus
extern "C" {
#endif

#define POND_KEY_NAME_MAX      64          //  [A-Za-z0-9._-], not starting with '.'
#define POND_KEY_CUSTOMERS_MAX 1024        //  bytes of the customers list
#define POND_KEYS_RESCAN_MS    2000        //  servers look at KEYS/public this often
#define POND_KEYS_BROKER       "broker"    //  the broker's key name
#define POND_KEYS_STORE        "store"     //  the store's key name

//  ---------------------------------------------------------------------
//  One key: a public cert's metadata

typedef struct _pond_key_t pond_key_t;

//  The key's name (the `source` the broker stamps), role, Z85 public key,
//  and customers ("anna,ben"; "" when none).
const char *
    pond_key_name (const pond_key_t *self);
const char *
    pond_key_role (const pond_key_t *self);
const char *
    pond_key_public (const pond_key_t *self);
const char *
    pond_key_customers (const pond_key_t *self);

//  True if the keys directory also holds the key's secret half.
bool
    pond_key_has_secret (const pond_key_t *self);

//  True if entity is one of the key's customers.
bool
    pond_key_binds (const pond_key_t *self, const char *entity);

//  May this key publish an event for entity? Returns true, or false with
//  the reason (for a NACK 403) in reason.
bool
    pond_key_may_publish (const pond_key_t *self, const char *entity, char *reason, size_t size);

//  May this key send command (STATS, REPLAY, ...) on the control socket?
bool
    pond_key_may_control (const pond_key_t *self, const char *command, char *reason, size_t size);

//  May this key (let in by pond_key_may_query) ask an actor about entity?
//  App keys only about their customers, and only with QUERY (entity NULL
//  asks about COMMAND, STATUS or DUMP, which they may not use); actor and
//  admin keys about anything.
bool
    pond_key_may_ask (const pond_key_t *self, const char *entity, char *reason, size_t size);

//  May this key use the store link? Only the broker's.
bool
    pond_key_may_store (const pond_key_t *self, char *reason, size_t size);

//  May this key use an actor's query socket?
bool
    pond_key_may_query (const pond_key_t *self, char *reason, size_t size);

//  ---------------------------------------------------------------------
//  A keys directory

//  True if role is one of broker, store, device, app, actor, admin.
bool
    pond_keys_role_valid (const char *role);

//  Check a key or customer name. Returns 0, or -1 with the reason.
int
    pond_keys_check_name (const char *name, char *err, size_t errlen);
int
    pond_keys_check_customer (const char *customer, char *err, size_t errlen);

//  Create key pair NAME with role and customers (count of them, may be 0)
//  in keys directory dir: dir/public/NAME.cert and dir/secret/NAME.cert_secret.
//  Refuses an existing name, an invalid role, name or customer, and
//  customers for roles other than device and app. Returns 0, or -1 with
//  the reason in err.
int
    pond_keys_create (const char *dir, const char *role, const char *name,
                      const char *const *customers, size_t count, char *err, size_t errlen);

//  Remove key NAME (public and secret) from dir: servers refuse it within
//  POND_KEYS_RESCAN_MS, even on connections already open. Returns 0, or -1
//  with the reason in err (no such key).
int
    pond_keys_remove (const char *dir, const char *name, char *err, size_t errlen);

//  A keyring: the public keys of dir/public (files NAME.cert), indexed by
//  public key and by name. A file that cannot be read, lacks a valid role
//  or name, or repeats a key or a name already loaded is skipped with a
//  warning.
typedef struct _pond_keyring_t pond_keyring_t;

//  Load the public keys of a keys directory. Returns NULL if dir/public
//  cannot be read (reason in err). Caller destroys.
pond_keyring_t *
    pond_keyring_new (const char *dir, char *err, size_t errlen);

//  Destroy; accepts NULL; nulls the caller's pointer.
void
    pond_keyring_destroy (pond_keyring_t **self_p);

//  The key with this Z85 public key, or NULL. Reloads the directory when it
//  changed, looking at most every POND_KEYS_RESCAN_MS (sooner for an
//  unknown key, so a key just added is found at once). Keys returned are
//  valid until the next lookup.
const pond_key_t *
    pond_keyring_lookup (pond_keyring_t *self, const char *public_key);

//  The key of this name, or NULL (no reload).
const pond_key_t *
    pond_keyring_find (pond_keyring_t *self, const char *name);

//  Number of keys, and the index-th in name order (NULL past the end).
size_t
    pond_keyring_size (pond_keyring_t *self);
const pond_key_t *
    pond_keyring_at (pond_keyring_t *self, size_t index);

//  ---------------------------------------------------------------------
//  The process identity

//  pond_keys_use, _active, _dir, _as and _reset (the public part of this
//  module, installed with libpond-client): see
//  pond_identity.h

//  A key pair to speak as apart from the process's: for a server that acts
//  for several keys (the gateway, one key per bearer token).
typedef struct _pond_keys_identity_t pond_keys_identity_t;

//  Load key pair name of keys directory dir (as pond_keys_use does: the
//  secret key, and the broker's public key). Returns NULL with the reason
//  in err. Caller destroys.
pond_keys_identity_t *
    pond_keys_identity_new (const char *dir, const char *name, char *err, size_t errlen);

//  Destroy; accepts NULL; nulls the caller's pointer. Not while a thread
//  speaks as it.
void
    pond_keys_identity_destroy (pond_keys_identity_t **self_p);

//  The key's name.
const char *
    pond_keys_identity_name (const pond_keys_identity_t *self);

//  From now on the sockets the calling thread makes (pond_keys_client,
//  watches; pond_keys_active, _dir and _as answer for it) speak as
//  identity instead of the process's; NULL goes back to the process's.
//  Other threads are not affected. Returns the identity in use before, to
//  put back. A socket keeps the key it was made with: keep the identity
//  while a client may remake its socket (pond_client after a timeout).
const pond_keys_identity_t *
    pond_keys_thread_use (const pond_keys_identity_t *identity);

//  Make sock (not connected yet) a CURVE client with our key pair, of the
//  server whose key is dir/public/SERVER.cert: NULL or "broker" for the
//  broker (role broker), "store" for the store (role store), else an actor
//  (role actor). Does nothing in local
//  mode. Returns 0, or -1 (logged) if that key is missing or has another
//  role.
int
    pond_keys_client (zsock_t *sock, const char *server);

//  Make sock (not bound yet) a CURVE server with our key pair, starting
//  the process's ZAP handler on first use: it lets in the keys of
//  dir/public and logs each refused key once. Does nothing in local mode.
//  Returns 0 or -1 (logged).
int
    pond_keys_server (zsock_t *sock);

//  The key that sent frame, a frame of a message received on a server
//  socket pond_keys_server set up, or NULL: local mode, or the key is no
//  longer in dir/public (removed since the connection was made). Give a
//  frame that came from the wire (the command), not the routing id a
//  ROUTER adds: after a poll, libzmq 4.3 gives that one no metadata.
const pond_key_t *
    pond_keys_sender (zframe_t *frame);

//  A watch on the handshakes of one client socket, to tell "the server
//  refused our key" from "no answer".
typedef struct _pond_keys_watch_t pond_keys_watch_t;

//  Watch sock (a client, before it connects). Returns NULL in local mode.
//  Destroy the watch after the socket.
pond_keys_watch_t *
    pond_keys_watch_new (zsock_t *sock);

//  Destroy; accepts NULL; nulls the caller's pointer.
void
    pond_keys_watch_destroy (pond_keys_watch_t **self_p);

//  What the watch has seen so far (reads its events without waiting;
//  accepts NULL). Returns true, with a sentence in reason, if the server
//  refused our key or does not speak CURVE with the key we expect.
bool
    pond_keys_watch_refused (pond_keys_watch_t *self, char *reason, size_t size);

#ifdef __cplusplus
}
#endif

#endif
