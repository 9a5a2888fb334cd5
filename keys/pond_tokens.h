/*  pond_tokens: bearer tokens that stand for a key of a keys directory.

    An HTTP client cannot speak CURVE, so `pond keys token NAME` issues it
    a bearer token for key NAME instead, and pond-gateway (in keys mode)
    serves each request as the key its token stands for: the mesh applies
    that key's rules, exactly as for a CURVE client.

    A token is NAME.SECRET: the key's name, a dot, and 64 hex digits
    (32 random bytes from libsodium's randombytes). Only a hash of each
    token is kept, one line per token in KEYS/tokens/NAME (mode 0600):
    the BLAKE2b-256 of the whole token in hex, and when it was issued. A
    token is checked by hashing what the client sent and comparing the
    hashes in constant time. A key may have several tokens (one per app
    or device); `pond keys revoke-token NAME` removes them all, and so does
    removing the key. Tokens are issued for app, device and admin keys
    only, and only when the keys directory holds the key's secret half
    (the gateway speaks CURVE with it).

    Kept apart from pond_keys (which goes into libpond-client) so that
    only the command line and the gateway need libsodium.
*/
#ifndef POND_TOKENS_H_INCLUDED
#define POND_TOKENS_H_INCLUDED

#include <stddef.h>
#include "pond_keys.h"

#ifdef __cplusplus
extern "C" {
#endif

#define POND_TOKEN_SECRET_HEX 64    //  hex digits after the dot
#define POND_TOKEN_MAX        (POND_KEY_NAME_MAX + 1 + POND_TOKEN_SECRET_HEX)
#define POND_TOKENS_PER_KEY   64    //  a key's tokens kept at once

//  Issue a new token for key name of keys directory dir. Returns 0 with
//  the token (POND_TOKEN_MAX + 1 bytes are enough) in token, or -1 with
//  the reason in err: no such key, no secret half here, a role other than
//  app, device or admin, POND_TOKENS_PER_KEY tokens already.
int
    pond_tokens_issue (const char *dir, const char *name, char *token, size_t size, char *err,
                       size_t errlen);

//  Revoke every token of key name. Returns how many there were (0 or
//  more), or -1 with the reason in err.
int
    pond_tokens_revoke (const char *dir, const char *name, char *err, size_t errlen);

//  Number of tokens key name has (0 if none or unreadable).
int
    pond_tokens_count (const char *dir, const char *name);

//  The key token stands for: 0 with its name in name (POND_KEY_NAME_MAX +
//  1 bytes), or -1 with the reason in err (malformed, unknown or revoked,
//  or the key was removed). Reads the files each time: a revoked token
//  fails at once. Safe from any thread.
int
    pond_tokens_check (const char *dir, const char *token, char *name, size_t size, char *err,
                       size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
