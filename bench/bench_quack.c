/*  bench_quack: the payload of the benchmarks' QUACKED events (see .h).
*/
#include "bench_quack.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>

int
bench_quack_set_data (pond_event_t *event, size_t index, size_t pad, const char *program)
{
    if (pad > POND_EVENT_MAX_SIZE)
        pad = POND_EVENT_MAX_SIZE;
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 4);
    msgpack_pack_str_with_body (&pk, "duration_ms", 11);
    msgpack_pack_uint32 (&pk, (uint32_t) (80 + index % 400));
    msgpack_pack_str_with_body (&pk, "loudness_db", 11);
    msgpack_pack_double (&pk, 40.0 + (double) (index % 50) / 2);
    msgpack_pack_str_with_body (&pk, "firmware", 8);
    msgpack_pack_str_with_body (&pk, "silo-2.3.1", 10);
    msgpack_pack_str_with_body (&pk, "pad", 3);
    char *text = (char *) malloc (pad + 1);
    int rc = -1;
    char err [POND_ERR_SIZE] = "out of memory";
    if (text) {
        for (size_t i = 0; i < pad; i++)
            text [i] = (char) ('a' + (index + i) % 26);
        msgpack_pack_str_with_body (&pk, text, pad);
        rc = pond_event_set_data (event, (const uint8_t *) buffer.data, buffer.size, err,
                                  sizeof err);
        free (text);
    }
    if (rc)
        fprintf (stderr, "%s: cannot set data: %s\n", program, err);
    msgpack_sbuffer_destroy (&buffer);
    return rc;
}
