/*  bench_quack: the payload of the benchmarks' QUACKED events.

    pond-bench and pond-decode-bench measure the same ~200-byte event: a
    quack's sensory data (duration, loudness, firmware) and a pad string
    that brings the encoded event to the size asked for.
*/
#ifndef BENCH_QUACK_H_INCLUDED
#define BENCH_QUACK_H_INCLUDED

#include <stddef.h>
#include "pond_event.h"

//  Set the data of event (the index-th of a run) to a quack with a pad of
//  pad bytes (at most POND_EVENT_MAX_SIZE). Returns 0, or -1 after saying
//  why on stderr, prefixed with program.
int
    bench_quack_set_data (pond_event_t *event, size_t index, size_t pad, const char *program);

#endif
