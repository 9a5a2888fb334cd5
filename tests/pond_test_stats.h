/*  pond_test_stats: one number from a running broker's STATS, for the
    tests that start a mesh and check its counters (test_hostile,
    test_memory). Apart from pond_harness because it needs the client
    library, which the harness does not link.
*/
#ifndef POND_TEST_STATS_H_INCLUDED
#define POND_TEST_STATS_H_INCLUDED

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  The number at path, "section/counter" ("broker/acked", "store/head"),
//  in the STATS of the broker at the control endpoint. Fails the test
//  (Criterion assert) if STATS does not answer within 5 s or has no such
//  number. Returns the number.
uint64_t
    pond_test_stat (const char *control, const char *path);

#ifdef __cplusplus
}
#endif

#endif
