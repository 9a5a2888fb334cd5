/*  pond_scenario: what a simulated device does, in order.

    A scenario is a list of actions, read from a file (one per line) or
    built from command-line flags, and run against a pond_device. The file
    grammar, one action per line, '#' starts a comment line:

        click [BUTTON [PRESS_MS]]               BUTTON_CLICKED
        quack [DURATION_MS [LOUDNESS_DB]]       QUACKED
        label CONTAINER LABEL...                LABEL_ADDED (label: rest of line)
        unlabel CONTAINER                       LABEL_REMOVED
        sleep MS                                wait, still sending
        offline                                 cut the network (keep creating)
        online                                  the network is back

    Values left out are sensed (simulated). Parsing is strict: a bad line
    is refused with its number and what is wrong, and nothing runs.
*/
#ifndef POND_SCENARIO_H_INCLUDED
#define POND_SCENARIO_H_INCLUDED

#include <stddef.h>
#include <stdint.h>
#include "pond_device.h"

#ifdef __cplusplus
extern "C" {
#endif

#define POND_SCENARIO_REPEAT_MAX 10000000    //  --click N, --quack N

typedef struct _pond_scenario_t pond_scenario_t;

//  An empty scenario. NULL if memory ran out.
pond_scenario_t *
    pond_scenario_new (void);

//  Destroy; accepts NULL; nulls the caller's pointer.
void
    pond_scenario_destroy (pond_scenario_t **self_p);

//  Parse one line of the grammar and append its action (blank and comment
//  lines add nothing). Returns 0, or -1 with what is wrong in err.
int
    pond_scenario_add (pond_scenario_t *self, const char *line, char *err, size_t errlen);

//  Append an action done count times ("click" or "quack", as --click N).
//  Returns 0, or -1 with the reason in err.
int
    pond_scenario_add_repeat (pond_scenario_t *self, const char *verb, uint64_t count, char *err,
                              size_t errlen);

//  Read a scenario file and append its actions. Returns 0, or -1 with
//  "FILE line N: what is wrong" (or why the file cannot be read) in err.
int
    pond_scenario_load (pond_scenario_t *self, const char *path, char *err, size_t errlen);

//  Actions appended so far.
size_t
    pond_scenario_size (pond_scenario_t *self);

//  Run every action against device, in order. Returns 0, or -1 if an
//  action could not create its events (logged) or on SIGINT/SIGTERM.
int
    pond_scenario_run (pond_scenario_t *self, pond_device_t *device);

//  Parse text, all of it, as a whole decimal number in lo..hi (scenario
//  lines and pond-device's flags). Returns 0 with the number in *value,
//  or -1 if text is not one or is out of range.
int
    pond_scenario_whole (const char *text, long long lo, long long hi, long long *value);

//  Parse text, all of it, as a finite decimal number in lo..hi ("62.5",
//  "1e3"). Returns 0 with the number in *value, or -1.
int
    pond_scenario_number (const char *text, double lo, double hi, double *value);

#ifdef __cplusplus
}
#endif

#endif
