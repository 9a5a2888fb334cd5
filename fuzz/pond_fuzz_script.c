/*  pond_fuzz_script: msgpack built from a byte script, for the harnesses.

    Raw msgpack hides sizes in headers: to make a 128-byte string 129 bytes
    long, a fuzzer must change the header and insert a byte at once, and
    it rarely does. Read through this script, one byte is a length and one
    byte a type, so every size limit and every wrong type is one mutation
    away. The result need not be valid: it is what a hostile peer sends.

        map     = *( key value )                the whole script; the map's
                                                count is the pairs found
        key     = byte                          a name from the harness's
                                                list, or an int key
        value   = type payload, by type % 12:
            0  str      len bytes               len = byte, or if 255 the
            1  bin      len bytes                     next 2 bytes (BE)
            2  fill     len byte                a str of len copies of byte
                                                (65 KiB in all at most)
            3  uint     byte
            4  uint     4 bytes (BE)
            5  uint     8 bytes (BE)
            6  negint   byte                    -(byte + 1)
            7  bool     byte                    byte & 1
            8  nil
            9  array    count *value            count = byte
            10 map      count *( key value )
            11 raw      len bytes               copied as they are

    A script that ends early ends its strings there; the items and pairs
    an array or map still owes are nil, keys too; a number cut short
    reads as if padded with zeros.
*/
#include "pond_fuzz.h"

#include <msgpack.h>

#define POND_FUZZ_SCRIPT_DEPTH 20
//  Bytes of filled strings one script may make: just over the largest
//  field (COMMAND args, 64 KiB) and event, so that their limits are
//  reachable and the fuzzer does not spend its time on megabytes
#define POND_FUZZ_SCRIPT_FILL  (65536 + 1024)

typedef struct {
    const uint8_t *data;
    size_t size;
    size_t pos;
    const char *const *keys;
    size_t nkeys;
    size_t fill_left;    //  of POND_FUZZ_SCRIPT_FILL
    msgpack_packer pk;
} s_script_t;

static uint8_t
s_byte (s_script_t *self)
{
    return self->pos < self->size ? self->data [self->pos++] : 0;
}

static uint64_t
s_uint (s_script_t *self, int bytes)
{
    uint64_t value = 0;
    while (bytes--)
        value = (value << 8) | s_byte (self);
    return value;
}

//  A length, and a pointer to that many bytes (fewer if the script ends)
static const char *
s_bytes (s_script_t *self, size_t *len_p)
{
    size_t len = s_byte (self);
    if (len == 255)
        len = (size_t) s_uint (self, 2);
    if (len > self->size - self->pos)
        len = self->size - self->pos;
    const char *bytes = (const char *) self->data + self->pos;
    self->pos += len;
    *len_p = len;
    return bytes;
}

static void
s_str (msgpack_packer *pk, const char *text, size_t len)
{
    msgpack_pack_str (pk, len);
    msgpack_pack_str_body (pk, text, len);
}

static void s_value (s_script_t *self, int depth);

static void
s_key (s_script_t *self)
{
    if (self->pos >= self->size) {
        msgpack_pack_nil (&self->pk);
        return;
    }
    uint8_t choice = s_byte (self);
    if (choice % (self->nkeys + 1) < self->nkeys) {
        const char *key = self->keys [choice % (self->nkeys + 1)];
        s_str (&self->pk, key, strlen (key));
    }
    else
        msgpack_pack_uint8 (&self->pk, choice);
}

//  Pairs until the script ends
static size_t
s_pairs (s_script_t *self, int depth)
{
    size_t count = 0;
    while (self->pos < self->size) {
        s_key (self);
        s_value (self, depth + 1);
        count++;
    }
    return count;
}

static void
s_value (s_script_t *self, int depth)
{
    size_t len;
    const char *bytes;
    uint8_t type = self->pos < self->size ? s_byte (self) % 12 : 8;
    if (depth > POND_FUZZ_SCRIPT_DEPTH && (type == 9 || type == 10))
        type = 8;    //  deep enough: the checker says no at 17
    switch (type) {
        case 0:
            bytes = s_bytes (self, &len);
            s_str (&self->pk, bytes, len);
            break;
        case 1:
            bytes = s_bytes (self, &len);
            msgpack_pack_bin (&self->pk, len);
            msgpack_pack_bin_body (&self->pk, bytes, len);
            break;
        case 2: {
            len = s_byte (self);
            if (len == 255)
                len = (size_t) s_uint (self, 2);
            if (len > self->fill_left)
                len = self->fill_left;
            self->fill_left -= len;
            char block [1024];
            memset (block, s_byte (self), sizeof block);
            msgpack_pack_str (&self->pk, len);
            for (size_t done = 0; done < len; done += sizeof block)
                msgpack_pack_str_body (&self->pk, block,
                                       len - done < sizeof block ? len - done : sizeof block);
            break;
        }
        case 3: msgpack_pack_uint64 (&self->pk, s_uint (self, 1)); break;
        case 4: msgpack_pack_uint64 (&self->pk, s_uint (self, 4)); break;
        case 5: msgpack_pack_uint64 (&self->pk, s_uint (self, 8)); break;
        case 6: msgpack_pack_int64 (&self->pk, -(int64_t) s_uint (self, 1) - 1); break;
        case 7:
            if (s_byte (self) & 1)
                msgpack_pack_true (&self->pk);
            else
                msgpack_pack_false (&self->pk);
            break;
        case 8: msgpack_pack_nil (&self->pk); break;
        case 9: {    //  past the script's end, items are nil
            size_t count = s_byte (self);
            msgpack_pack_array (&self->pk, count);
            for (size_t i = 0; i < count; i++)
                s_value (self, depth + 1);
            break;
        }
        case 10: {
            size_t count = s_byte (self);
            msgpack_pack_map (&self->pk, count);
            for (size_t i = 0; i < count; i++) {
                s_key (self);
                s_value (self, depth + 1);
            }
            break;
        }
        case 11:
            bytes = s_bytes (self, &len);
            msgpack_pack_str_body (&self->pk, bytes, len);    //  raw bytes, no header
            break;
    }
}

uint8_t *
pond_fuzz_script_map (const uint8_t *data, size_t size, const char *const *keys, size_t nkeys,
                      size_t *size_p)
{
    //  The pairs first, then the map's header in front of them
    msgpack_sbuffer pairs, map;
    msgpack_sbuffer_init (&pairs);
    msgpack_sbuffer_init (&map);
    s_script_t self = { data, size, 0, keys, nkeys, POND_FUZZ_SCRIPT_FILL, { 0 } };
    msgpack_packer_init (&self.pk, &pairs, msgpack_sbuffer_write);
    size_t count = s_pairs (&self, 0);
    msgpack_packer_init (&self.pk, &map, msgpack_sbuffer_write);
    msgpack_pack_map (&self.pk, count);
    msgpack_sbuffer_write (&map, pairs.data, pairs.size);
    msgpack_sbuffer_destroy (&pairs);
    POND_FUZZ_CHECK (map.data, "out of memory");
    *size_p = map.size;
    return (uint8_t *) msgpack_sbuffer_release (&map);
}
