/*  replay_corpus: run a fuzz harness over saved inputs, without libFuzzer.

    Linked with one harness (pond_fuzz_NAME.c) into pond-fuzz-replay-NAME,
    it calls LLVMFuzzerTestOneInput once per file, so the seed corpus and
    every crash a fuzzer once found (fuzz/corpus/NAME) run as an ordinary
    CTest entry in every build, gcc or clang, plain or sanitized. A broken
    invariant aborts, which fails the test; the file being run is printed
    first, so the log names the culprit.

        pond-fuzz-replay-NAME DIR|FILE...

    Returns 0 if every input ran, 1 if a file could not be read or no
    input was found.
*/
#define _GNU_SOURCE
#include "pond_fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>

//  Run the harness on one file. Returns 0, or -1 if it cannot be read.
static int
s_run_file (const char *path)
{
    FILE *file = fopen (path, "rb");
    struct stat st;
    if (!file || fstat (fileno (file), &st)) {
        fprintf (stderr, "replay_corpus: cannot open %s: %s\n", path, strerror (errno));
        if (file)
            fclose (file);
        return -1;
    }
    //  Exactly the file's size, so that ASan sees a read past the input's end
    size_t size = (size_t) st.st_size;
    uint8_t *data = (uint8_t *) malloc (size ? size : 1);
    bool failed = !data || fread (data, 1, size, file) != size;
    fclose (file);
    if (failed) {
        fprintf (stderr, "replay_corpus: cannot read %s\n", path);
        free (data);
        return -1;
    }
    //  Print before running: if the harness aborts, this line names the file
    fprintf (stderr, "replay_corpus: %s (%zu bytes)\n", path, size);
    LLVMFuzzerTestOneInput (data, size);
    free (data);
    return 0;
}

static int
s_compare (const void *a, const void *b)
{
    return strcmp (*(char *const *) a, *(char *const *) b);
}

//  Run every regular file of a folder, in name order. Returns the number
//  run, or -1 on error.
static int
s_run_dir (const char *path)
{
    DIR *dir = opendir (path);
    if (!dir) {
        fprintf (stderr, "replay_corpus: cannot open %s: %s\n", path, strerror (errno));
        return -1;
    }
    char **names = NULL;
    size_t count = 0, capacity = 0;
    struct dirent *entry;
    int rc = 0;
    while ((entry = readdir (dir)) != NULL) {
        if (entry->d_name [0] == '.')
            continue;    //  ., .. and hidden files
        if (count == capacity) {
            capacity = capacity ? capacity * 2 : 64;
            char **bigger = (char **) realloc (names, capacity * sizeof (char *));
            if (!bigger) {
                rc = -1;
                break;
            }
            names = bigger;
        }
        if (asprintf (&names [count], "%s/%s", path, entry->d_name) < 0) {
            rc = -1;
            break;
        }
        count++;
    }
    closedir (dir);
    if (count)
        qsort (names, count, sizeof (char *), s_compare);
    int run = 0;
    for (size_t i = 0; i < count; i++) {
        struct stat st;
        if (rc == 0 && stat (names [i], &st) == 0 && S_ISREG (st.st_mode)) {
            if (s_run_file (names [i]))
                rc = -1;
            else
                run++;
        }
        free (names [i]);
    }
    free (names);
    return rc ? -1 : run;
}

int
main (int argc, char *argv [])
{
    int total = 0;
    bool failed = false;
    for (int arg = 1; arg < argc; arg++) {
        struct stat st;
        if (stat (argv [arg], &st)) {
            fprintf (stderr, "replay_corpus: %s: %s\n", argv [arg], strerror (errno));
            failed = true;
        }
        else if (S_ISDIR (st.st_mode)) {
            int run = s_run_dir (argv [arg]);
            if (run < 0)
                failed = true;
            else
                total += run;
        }
        else if (s_run_file (argv [arg]))
            failed = true;
        else
            total++;
    }
    printf ("replay_corpus: %d inputs run%s\n", total, failed ? ", some could not be read" : "");
    return failed || total == 0 ? 1 : 0;
}
