/*  pond_time: event time, in microseconds since the Unix epoch (UTC).

    Parsing accepts what an admin types on a command line: a date
    (2022-01-01), a date and time (2022-01-01T10:30:00, optional fraction
    and Z), or a raw integer of microseconds. Formatting gives RFC 3339.
*/
#ifndef POND_TIME_H_INCLUDED
#define POND_TIME_H_INCLUDED

#include <stdint.h>
#include <stddef.h>
#include "pond_export.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Latest event time accepted: 9999-12-31T23:59:59.999999Z
#define POND_TIME_MAX 253402300799999999ULL

//  Wall clock now, microseconds.
POND_EXPORT uint64_t
    pond_time_now (void);

//  Parse text as above into *us. Returns 0, or -1 if it is none of those.
POND_EXPORT int
    pond_time_parse (const char *text, uint64_t *us);

//  Format as 2022-01-01T10:30:00.000000Z into text [32].
POND_EXPORT void
    pond_time_format (uint64_t us, char *text, size_t size);

#ifdef __cplusplus
}
#endif

#endif
