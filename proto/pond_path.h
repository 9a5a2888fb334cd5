/*  pond_path: printf into a fixed buffer, or fail. Paths and endpoints
    are built into char arrays of a fixed size; one cut short would name
    another file or socket, so it is an error the caller reports, never a
    silent truncation.
*/
#ifndef POND_PATH_H_INCLUDED
#define POND_PATH_H_INCLUDED

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

//  snprintf into dest (size bytes) that fails instead of truncating.
//  Returns 0, or -1 if the text does not fit or format is bad (dest then
//  holds a cut-short string: do not use it).
int
    pond_path (char *dest, size_t size, const char *format, ...)
        __attribute__ ((format (printf, 3, 4)));

#ifdef __cplusplus
}
#endif

#endif
