/*  pond_uuid: event identity made by the producer (DESIGN.md invariant 2).

    UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits, so
    ids sort roughly by creation time and never need a database to mint.
*/
#ifndef POND_UUID_H_INCLUDED
#define POND_UUID_H_INCLUDED

#include <stdint.h>
#include <stddef.h>
#include "pond_export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define POND_UUID_STR_SIZE 37    //  36 characters and the terminating NUL

//  Fill id [16] with a new UUIDv7. Returns 0, or -1 if the kernel's random
//  source failed (logged).
POND_EXPORT int
    pond_uuid_v7 (uint8_t *id);

//  Format as canonical 8-4-4-4-12 lower-case hex into text [37].
POND_EXPORT void
    pond_uuid_format (const uint8_t *id, char *text);

//  Parse canonical or 32-hex-digit text. Returns 0, or -1 if malformed.
POND_EXPORT int
    pond_uuid_parse (const char *text, uint8_t *id);

#ifdef __cplusplus
}
#endif

#endif
