/*  pond_identity: the key pair a process speaks CURVE with.

    Over tcp a mesh authenticates every socket with ZeroMQ CURVE (see
    pond_keys.h and `pond keys --help`): a device or an actor of its own
    calls pond_keys_use (KEYS, NAME) once at start, from the main thread,
    and from then on every socket the client library makes (pond_client,
    pond_publisher, pond_sub, pond_reader, stats, actor links) is a CURVE
    client of the broker with that key pair. Without it the process stays
    in local mode: no keys. Public (installed with libpond-client).
*/
#ifndef POND_IDENTITY_H_INCLUDED
#define POND_IDENTITY_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include "pond_export.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Use key pair name of keys directory dir for every socket pond makes in
//  this process from now on. Needs dir/secret/NAME.cert_secret and, except
//  for the broker and the store, dir/public/broker.cert. May be called again to
//  switch keys (tests). Returns 0, or -1 with the reason in err.
POND_EXPORT int
    pond_keys_use (const char *dir, const char *name, char *err, size_t errlen);

//  True after pond_keys_use: the process talks CURVE.
POND_EXPORT bool
    pond_keys_active (void);

//  The keys directory and the key name in use, or NULL in local mode.
POND_EXPORT const char *
    pond_keys_dir (void);
POND_EXPORT const char *
    pond_keys_as (void);

//  Back to local mode: stop the ZAP handler, forget the identity.
POND_EXPORT void
    pond_keys_reset (void);

#ifdef __cplusplus
}
#endif

#endif
