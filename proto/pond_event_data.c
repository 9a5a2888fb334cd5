/*  pond_event_data: read one field of an event's data map in place.
    See pond_event_data.h.

    The walk reads one msgpack header at a time. Skipping a value needs no
    stack: a container only adds its children to the count of objects
    still to skip, and every object takes at least one byte, so a count
    larger than the bytes left is refused at once. The walk is therefore
    bounded by the size of the buffer whatever its headers declare.
*/
#include "pond_event_data.h"

#include <string.h>

typedef enum {
    S_NIL,
    S_BOOL,
    S_UINT,
    S_INT,
    S_FLOAT,
    S_STR,
    S_BIN,
    S_EXT,
    S_ARRAY,
    S_MAP
} s_kind_t;

//  One msgpack header: its kind, and its value (a number, a bool), its
//  payload bytes (str, bin, ext: at data + pos after the header) or its
//  count of children (array, map)
typedef struct {
    s_kind_t kind;
    uint64_t u;    //  S_UINT, S_BOOL, lengths and counts
    int64_t i;     //  S_INT (negative values only)
    double f;      //  S_FLOAT
} s_head_t;

typedef struct {
    const uint8_t *data;
    size_t size;
    size_t pos;
} s_reader_t;

//  Big-endian unsigned of n bytes; -1 if cut short
static int
s_uint (s_reader_t *self, size_t n, uint64_t *value_p)
{
    if (self->size - self->pos < n)
        return -1;
    uint64_t value = 0;
    for (size_t index = 0; index < n; index++)
        value = (value << 8) | self->data [self->pos + index];
    self->pos += n;
    *value_p = value;
    return 0;
}

//  Read one header at pos. Returns 0, or -1 if cut short or the tag is
//  0xc1 (never used). The payload of str, bin and ext is not skipped.
static int
s_head (s_reader_t *self, s_head_t *head)
{
    if (self->pos >= self->size)
        return -1;
    uint8_t tag = self->data [self->pos++];
    uint64_t value = 0;
    if (tag <= 0x7f) {
        head->kind = S_UINT;
        head->u = tag;
        return 0;
    }
    if (tag >= 0xe0) {
        head->kind = S_INT;
        head->i = (int8_t) tag;
        return 0;
    }
    if (tag <= 0x8f || (tag >= 0x90 && tag <= 0x9f) || (tag >= 0xa0 && tag <= 0xbf)) {
        head->kind = tag <= 0x8f ? S_MAP : tag <= 0x9f ? S_ARRAY : S_STR;
        head->u = tag & (tag <= 0x9f ? 0x0f : 0x1f);
        return 0;
    }
    switch (tag) {
        case 0xc0: head->kind = S_NIL; return 0;
        case 0xc2:
        case 0xc3:
            head->kind = S_BOOL;
            head->u = tag == 0xc3;
            return 0;
        case 0xc4:
        case 0xc5:
        case 0xc6: head->kind = S_BIN; return s_uint (self, (size_t) 1 << (tag - 0xc4), &head->u);
        case 0xc7:
        case 0xc8:
        case 0xc9:
            //  The type byte is part of the payload here
            head->kind = S_EXT;
            if (s_uint (self, (size_t) 1 << (tag - 0xc7), &head->u))
                return -1;
            head->u += 1;
            return 0;
        case 0xca: {
            if (s_uint (self, 4, &value))
                return -1;
            uint32_t bits = (uint32_t) value;
            float number;
            memcpy (&number, &bits, sizeof number);
            head->kind = S_FLOAT;
            head->f = number;
            return 0;
        }
        case 0xcb:
            if (s_uint (self, 8, &value))
                return -1;
            memcpy (&head->f, &value, sizeof head->f);
            head->kind = S_FLOAT;
            return 0;
        case 0xcc:
        case 0xcd:
        case 0xce:
        case 0xcf: head->kind = S_UINT; return s_uint (self, (size_t) 1 << (tag - 0xcc), &head->u);
        case 0xd0:
        case 0xd1:
        case 0xd2:
        case 0xd3: {
            size_t n = (size_t) 1 << (tag - 0xd0);
            if (s_uint (self, n, &value))
                return -1;
            //  Sign-extend from n bytes
            int64_t number = n == 8 ? (int64_t) value
                                    : (int64_t) (value ^ (1ULL << (n * 8 - 1)))
                                          - (int64_t) (1ULL << (n * 8 - 1));
            if (number >= 0) {
                head->kind = S_UINT;
                head->u = (uint64_t) number;
            }
            else {
                head->kind = S_INT;
                head->i = number;
            }
            return 0;
        }
        case 0xd4:
        case 0xd5:
        case 0xd6:
        case 0xd7:
        case 0xd8:
            head->kind = S_EXT;
            head->u = 1 + ((uint64_t) 1 << (tag - 0xd4));
            return 0;
        case 0xd9:
        case 0xda:
        case 0xdb: head->kind = S_STR; return s_uint (self, (size_t) 1 << (tag - 0xd9), &head->u);
        case 0xdc:
        case 0xdd: head->kind = S_ARRAY; return s_uint (self, tag == 0xdc ? 2 : 4, &head->u);
        case 0xde:
        case 0xdf: head->kind = S_MAP; return s_uint (self, tag == 0xde ? 2 : 4, &head->u);
    }
    return -1;    //  0xc1
}

//  Skip the payload of the header just read, and (for a container) add
//  its children to *pending. Returns 0, or -1 if the bytes cannot hold it.
static int
s_skip_payload (s_reader_t *self, const s_head_t *head, uint64_t *pending)
{
    size_t left = self->size - self->pos;
    if (head->kind == S_STR || head->kind == S_BIN || head->kind == S_EXT) {
        if (head->u > left)
            return -1;
        self->pos += (size_t) head->u;
    }
    else if (head->kind == S_ARRAY || head->kind == S_MAP) {
        uint64_t children = head->kind == S_MAP ? head->u * 2 : head->u;
        //  Each child takes a byte at least: refuse early, and no overflow
        if (children > left || *pending > left - children)
            return -1;
        *pending += children;
    }
    return 0;
}

//  Skip pending whole objects at pos
static int
s_skip (s_reader_t *self, uint64_t pending)
{
    while (pending) {
        s_head_t head;
        if (s_head (self, &head) || s_skip_payload (self, &head, &pending))
            return -1;
        pending--;
    }
    return 0;
}

//  Find key in the top-level map and read the header of its value (a
//  str's payload then starts at reader->pos). Returns 0 or -1.
static int
s_find (s_reader_t *self, const char *key, s_head_t *value)
{
    if (!self->data || !key)
        return -1;
    size_t key_len = strlen (key);
    s_head_t head;
    if (s_head (self, &head) || head.kind != S_MAP)
        return -1;
    for (uint64_t entry = 0; entry < head.u; entry++) {
        s_head_t name;
        if (s_head (self, &name))
            return -1;
        if (name.kind == S_STR && name.u == key_len && self->size - self->pos >= key_len
            && memcmp (self->data + self->pos, key, key_len) == 0) {
            self->pos += key_len;
            if (s_head (self, value))
                return -1;
            //  The value must lie whole within the buffer
            if ((value->kind == S_STR || value->kind == S_BIN || value->kind == S_EXT)
                && value->u > self->size - self->pos)
                return -1;
            return 0;
        }
        uint64_t pending = 0;
        if (s_skip_payload (self, &name, &pending))
            return -1;
        //  Children of a container key, then the value
        if (s_skip (self, pending + 1))
            return -1;
    }
    return -1;
}

int
pond_event_data_get_uint_bytes (const uint8_t *data, size_t size, const char *key,
                                uint64_t *value_p)
{
    s_reader_t reader = { data, size, 0 };
    s_head_t value;
    if (s_find (&reader, key, &value) || value.kind != S_UINT)
        return -1;
    *value_p = value.u;
    return 0;
}

int
pond_event_data_get_int_bytes (const uint8_t *data, size_t size, const char *key, int64_t *value_p)
{
    s_reader_t reader = { data, size, 0 };
    s_head_t value;
    if (s_find (&reader, key, &value))
        return -1;
    if (value.kind == S_INT)
        *value_p = value.i;
    else if (value.kind == S_UINT && value.u <= INT64_MAX)
        *value_p = (int64_t) value.u;
    else
        return -1;
    return 0;
}

int
pond_event_data_get_double_bytes (const uint8_t *data, size_t size, const char *key,
                                  double *value_p)
{
    s_reader_t reader = { data, size, 0 };
    s_head_t value;
    if (s_find (&reader, key, &value))
        return -1;
    if (value.kind == S_FLOAT)
        *value_p = value.f;
    else if (value.kind == S_UINT)
        *value_p = (double) value.u;
    else if (value.kind == S_INT)
        *value_p = (double) value.i;
    else
        return -1;
    return 0;
}

int
pond_event_data_get_bool_bytes (const uint8_t *data, size_t size, const char *key, bool *value_p)
{
    s_reader_t reader = { data, size, 0 };
    s_head_t value;
    if (s_find (&reader, key, &value) || value.kind != S_BOOL)
        return -1;
    *value_p = value.u != 0;
    return 0;
}

int
pond_event_data_get_str_bytes (const uint8_t *data, size_t size, const char *key,
                               const char **ptr_p, size_t *len_p)
{
    s_reader_t reader = { data, size, 0 };
    s_head_t value;
    if (s_find (&reader, key, &value) || value.kind != S_STR)
        return -1;
    *ptr_p = (const char *) data + reader.pos;
    *len_p = (size_t) value.u;
    return 0;
}

//  ---------------------------------------------------------------------
//  Over an event's data

int
pond_event_data_get_int (const pond_event_t *event, const char *key, int64_t *value_p)
{
    size_t size = 0;
    const uint8_t *data = pond_event_data (event, &size);
    return pond_event_data_get_int_bytes (data, size, key, value_p);
}

int
pond_event_data_get_uint (const pond_event_t *event, const char *key, uint64_t *value_p)
{
    size_t size = 0;
    const uint8_t *data = pond_event_data (event, &size);
    return pond_event_data_get_uint_bytes (data, size, key, value_p);
}

int
pond_event_data_get_double (const pond_event_t *event, const char *key, double *value_p)
{
    size_t size = 0;
    const uint8_t *data = pond_event_data (event, &size);
    return pond_event_data_get_double_bytes (data, size, key, value_p);
}

int
pond_event_data_get_bool (const pond_event_t *event, const char *key, bool *value_p)
{
    size_t size = 0;
    const uint8_t *data = pond_event_data (event, &size);
    return pond_event_data_get_bool_bytes (data, size, key, value_p);
}

int
pond_event_data_get_str (const pond_event_t *event, const char *key, const char **ptr_p,
                         size_t *len_p)
{
    size_t size = 0;
    const uint8_t *data = pond_event_data (event, &size);
    return pond_event_data_get_str_bytes (data, size, key, ptr_p, len_p);
}

int
pond_event_data_copy_str (const pond_event_t *event, const char *key, char *buf, size_t size)
{
    const char *ptr;
    size_t len;
    if (size)
        buf [0] = 0;
    if (pond_event_data_get_str (event, key, &ptr, &len) || len >= size)
        return -1;
    memcpy (buf, ptr, len);
    buf [len] = 0;
    return 0;
}
