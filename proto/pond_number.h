/*  pond_number: whole numbers from text, as options, environment variables
    and config files give them. One strict reading for every program: only
    decimal digits (no sign, no spaces, no suffix), within [min, max], so
    "-1", "8MB", "" or a number past max is refused the same way by the
    store, the actors, the broker, the gateway and the CLI.
*/
#ifndef POND_NUMBER_H_INCLUDED
#define POND_NUMBER_H_INCLUDED

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Read text as a whole number in [min, max] into *value_p. Returns 0, or
//  -1 (and *value_p unchanged) if text is not that. Logs nothing: the
//  caller knows which option it was and what to tell the user.
int
    pond_number_parse (const char *text, uint64_t min, uint64_t max, uint64_t *value_p);

#ifdef __cplusplus
}
#endif

#endif
