/*  pond_time: event time parsing and formatting. See pond_time.h.
*/
#define _GNU_SOURCE
#include "pond_time.h"

#include <stdbool.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t
pond_time_now (void)
{
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    return (uint64_t) now.tv_sec * 1000000ULL + (uint64_t) now.tv_nsec / 1000;
}

static bool
s_all_digits (const char *text)
{
    if (!*text)
        return false;
    for (; *text; text++)
        if (!isdigit ((unsigned char) *text))
            return false;
    return true;
}

int
pond_time_parse (const char *text, uint64_t *us)
{
    if (s_all_digits (text) && strlen (text) <= 18) {
        uint64_t value = strtoull (text, NULL, 10);
        if (value > POND_TIME_MAX)
            return -1;
        *us = value;
        return 0;
    }
    struct tm tm = { 0 };
    const char *rest = strptime (text, "%Y-%m-%d", &tm);
    if (!rest)
        return -1;
    uint64_t micros = 0;
    if (*rest == 'T' || *rest == ' ') {
        rest = strptime (rest + 1, "%H:%M:%S", &tm);
        if (!rest)
            return -1;
        if (*rest == '.') {
            rest++;
            int digits = 0;
            while (isdigit ((unsigned char) *rest)) {
                if (digits < 6) {
                    micros = micros * 10 + (uint64_t) (*rest - '0');
                    digits++;
                }
                rest++;
            }
            if (digits == 0)
                return -1;
            for (; digits < 6; digits++)
                micros *= 10;
        }
        if (*rest == 'Z')
            rest++;
    }
    if (*rest)
        return -1;
    //  timegm turns 2022-02-30 into March 2: refuse any field it changed
    struct tm given = tm;
    time_t seconds = timegm (&tm);
    if (seconds < 0 || tm.tm_year != given.tm_year || tm.tm_mon != given.tm_mon
        || tm.tm_mday != given.tm_mday || tm.tm_hour != given.tm_hour || tm.tm_min != given.tm_min
        || tm.tm_sec != given.tm_sec)
        return -1;
    *us = (uint64_t) seconds * 1000000ULL + micros;
    return *us > POND_TIME_MAX ? -1 : 0;
}

void
pond_time_format (uint64_t us, char *text, size_t size)
{
    time_t seconds = (time_t) (us / 1000000ULL);
    struct tm tm;
    gmtime_r (&seconds, &tm);
    char date [24];
    strftime (date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf (text, size, "%s.%06uZ", date, (unsigned) (us % 1000000ULL));
}
