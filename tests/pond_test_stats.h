/*  pond_test_stats: one number from a running broker's STATS, for the
    tests that start a mesh and check its counters (test_hostile,
    test_memory), and the wait until the broker sees its store
    (test_embedded, test_security). Apart from pond_harness because it needs the client
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

//  Wait up to timeout_ms until the STATS of the broker at control say
//  "store_up":true (a publish before that gets NACK 503). Fails the test
//  (Criterion assert), with the last STATS error, if they do not.
void
    pond_test_wait_store_up (const char *control, int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif
