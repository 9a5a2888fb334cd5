/*  pond_uuid: UUIDv7 generation, formatting and parsing. See pond_uuid.h.
*/
#include "pond_uuid.h"

#include <czmq.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

int
pond_uuid_v7 (uint8_t *id)
{
    if (getrandom (id, 16, 0) != 16) {
        zsys_error ("pond_uuid: getrandom failed: %s", strerror (errno));
        return -1;
    }
    uint64_t ms = (uint64_t) zclock_time ();
    for (int i = 0; i < 6; i++)
        id [i] = (uint8_t) (ms >> (40 - 8 * i));
    id [6] = (uint8_t) (0x70 | (id [6] & 0x0f));    //  version 7
    id [8] = (uint8_t) (0x80 | (id [8] & 0x3f));    //  variant 10
    return 0;
}

void
pond_uuid_format (const uint8_t *id, char *text)
{
    static const char hex [] = "0123456789abcdef";
    char *out = text;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *out++ = '-';
        *out++ = hex [id [i] >> 4];
        *out++ = hex [id [i] & 0x0f];
    }
    *out = 0;
}

static int
s_hex_digit (char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int
pond_uuid_parse (const char *text, uint8_t *id)
{
    size_t len = strlen (text);
    bool dashed = len == 36;
    if (!dashed && len != 32)
        return -1;
    const char *in = text;
    for (int i = 0; i < 16; i++) {
        if (dashed && (i == 4 || i == 6 || i == 8 || i == 10) && *in++ != '-')
            return -1;
        int high = s_hex_digit (in [0]);
        int low = s_hex_digit (in [1]);
        if (high < 0 || low < 0)
            return -1;
        id [i] = (uint8_t) (high << 4 | low);
        in += 2;
    }
    return 0;
}
