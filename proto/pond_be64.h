/*  pond_be64: 64-bit numbers as 8 big-endian bytes.

    Every RocksDB key that holds a seq or a time (the store's log and
    indexes, a view's position, a device's outbox) uses this form, so that
    byte order is number order and iterators walk keys in sequence.
*/
#ifndef POND_BE64_H_INCLUDED
#define POND_BE64_H_INCLUDED

#include <stdint.h>

static inline void
    pond_put_be64 (uint8_t *dest, uint64_t value)
{
    for (int i = 7; i >= 0; i--) {
        dest [i] = (uint8_t) value;
        value >>= 8;
    }
}

static inline uint64_t
    pond_get_be64 (const uint8_t *source)
{
    uint64_t value = 0;
    for (int i = 0; i < 8; i++)
        value = (value << 8) | source [i];
    return value;
}

#endif
