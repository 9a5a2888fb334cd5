/*  pond_path: printf into a fixed buffer, or fail. See pond_path.h.
*/
#include "pond_path.h"

#include <stdarg.h>
#include <stdio.h>

int
pond_path (char *dest, size_t size, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    int rc = vsnprintf (dest, size, format, args);
    va_end (args);
    return rc < 0 || (size_t) rc >= size ? -1 : 0;
}
