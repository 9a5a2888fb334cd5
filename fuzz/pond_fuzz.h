/*  pond_fuzz: what every fuzz harness of pond shares.

    Each harness (pond_fuzz_NAME.c) defines LLVMFuzzerTestOneInput and
    nothing else that is public; pond_fuzz_script.c, linked with all of
    them, builds msgpack from byte scripts. With clang and
    -fsanitize=fuzzer a harness becomes a libFuzzer binary
    (pond-fuzz-NAME); with any compiler it is also linked with
    replay_corpus.c into pond-fuzz-replay-NAME, which runs the committed
    corpus (fuzz/corpus/NAME) as a regression test.
    A harness reports a broken invariant with POND_FUZZ_CHECK, which
    aborts: libFuzzer then keeps the input as a crash artifact.
*/
#ifndef POND_FUZZ_H_INCLUDED
#define POND_FUZZ_H_INCLUDED

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Run one input. Returns 0 (libFuzzer reserves other values).
int
    LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

//  Build a msgpack map from a byte script (see pond_fuzz_script.c); keys
//  picks the str keys. Returns a malloc'd buffer the caller frees, its
//  size in *size_p. Never NULL: aborts if memory runs out.
uint8_t *
    pond_fuzz_script_map (const uint8_t *data, size_t size, const char *const *keys, size_t nkeys,
                          size_t *size_p);

//  Inputs that start with this byte (never valid msgpack) are scripts
#define POND_FUZZ_SCRIPT 0xc1

//  Abort with a message if the condition does not hold. Unlike assert,
//  this stays on in release builds: it is the harness's whole point.
#define POND_FUZZ_CHECK(cond, ...) \
    do { \
        if (!(cond)) { \
            fprintf (stderr, "%s:%d: invariant broken: %s: ", __FILE__, __LINE__, #cond); \
            fprintf (stderr, __VA_ARGS__); \
            fprintf (stderr, "\n"); \
            abort (); \
        } \
    } while (0)

//  A NUL-terminated copy of the input, for the parsers that take text.
//  Caller frees. Aborts if memory runs out (the fuzzer's rss limit will
//  have said so first).
static inline char *
    pond_fuzz_strndup (const uint8_t *data, size_t size)
{
    char *text = (char *) malloc (size + 1);
    POND_FUZZ_CHECK (text != NULL, "out of memory");
    if (size)
        memcpy (text, data, size);
    text [size] = 0;
    return text;
}

#endif
