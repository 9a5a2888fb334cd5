/*  pond_number: whole numbers from text. See pond_number.h. */
#include "pond_number.h"

#include <errno.h>
#include <stdlib.h>

int
pond_number_parse (const char *text, uint64_t min, uint64_t max, uint64_t *value_p)
{
    //  strtoull alone takes a sign, leading spaces and wraps "-1" around
    if (!text || *text < '0' || *text > '9')
        return -1;
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull (text, &end, 10);
    if (errno || *end || value < min || value > max)
        return -1;
    *value_p = (uint64_t) value;
    return 0;
}
