/*  pond_scenario: parse a device's actions and run them in order.
    See pond_scenario.h for the grammar.
*/
#include "pond_scenario.h"
#include "pond_event.h"

#include <czmq.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>

#define TOKENS_MAX 4

typedef enum {
    ACTION_CLICK,
    ACTION_QUACK,
    ACTION_LABEL,
    ACTION_UNLABEL,
    ACTION_SLEEP,
    ACTION_OFFLINE,
    ACTION_ONLINE
} action_kind_t;

typedef struct {
    action_kind_t kind;
    uint64_t count;    //  times to do it
    int number;        //  button, duration_ms, sleep msecs; 0: sensed
    int number2;       //  press_ms; 0: sensed
    double value;      //  loudness_db; 0: sensed
    char *container;
    char *label;
} action_t;

struct _pond_scenario_t {
    action_t *actions;
    size_t size;
    size_t capacity;
};

//  ---------------------------------------------------------------------
//  Life cycle

pond_scenario_t *
pond_scenario_new (void)
{
    return (pond_scenario_t *) zmalloc (sizeof (pond_scenario_t));
}

void
pond_scenario_destroy (pond_scenario_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        pond_scenario_t *self = *self_p;
        for (size_t i = 0; i < self->size; i++) {
            free (self->actions [i].container);
            free (self->actions [i].label);
        }
        free (self->actions);
        free (self);
        *self_p = NULL;
    }
}

size_t
pond_scenario_size (pond_scenario_t *self)
{
    assert (self);
    return self->size;
}

//  Append a copy of action; the scenario owns its strings. Returns 0 or -1.
static int
s_append (pond_scenario_t *self, action_t *action, char *err, size_t errlen)
{
    if (self->size == self->capacity) {
        size_t capacity = self->capacity ? self->capacity * 2 : 16;
        action_t *bigger = (action_t *) realloc (self->actions, capacity * sizeof (action_t));
        if (!bigger) {
            free (action->container);
            free (action->label);
            snprintf (err, errlen, "out of memory");
            return -1;
        }
        self->actions = bigger;
        self->capacity = capacity;
    }
    self->actions [self->size++] = *action;
    return 0;
}

//  ---------------------------------------------------------------------
//  Parsing

//  A container or label: 1..POND_DEVICE_TEXT_MAX bytes, no control bytes.
static int
s_check_text (const char *what, const char *text, char *err, size_t errlen)
{
    size_t len = strlen (text);
    if (len == 0 || len > POND_DEVICE_TEXT_MAX) {
        snprintf (err, errlen, "%s must be 1 to %d bytes", what, POND_DEVICE_TEXT_MAX);
        return -1;
    }
    for (size_t i = 0; i < len; i++)
        if ((unsigned char) text [i] < 0x20 || text [i] == 0x7f) {
            snprintf (err, errlen, "%s must not contain control characters", what);
            return -1;
        }
    return 0;
}

int
pond_scenario_add (pond_scenario_t *self, const char *line, char *err, size_t errlen)
{
    assert (self);
    assert (line);
    //  Split into at most TOKENS_MAX words; rest points after the second
    //  word (a label is the rest of its line, spaces included)
    char copy [1024];
    if (strlen (line) >= sizeof copy) {
        snprintf (err, errlen, "line longer than %zu characters", sizeof copy - 1);
        return -1;
    }
    strcpy (copy, line);
    size_t len = strlen (copy);
    while (len && isspace ((unsigned char) copy [len - 1]))
        copy [--len] = 0;
    char *cursor = copy;
    while (isspace ((unsigned char) *cursor))
        cursor++;
    if (*cursor == 0 || *cursor == '#')
        return 0;
    char *tokens [TOKENS_MAX + 1] = { NULL };
    size_t rest_at = len;    //  where the third word starts in line
    int count = 0;
    while (*cursor && count <= TOKENS_MAX) {
        if (count == 2)
            rest_at = (size_t) (cursor - copy);
        tokens [count++] = cursor;
        while (*cursor && !isspace ((unsigned char) *cursor))
            cursor++;
        if (*cursor)
            *cursor++ = 0;
        while (isspace ((unsigned char) *cursor))
            cursor++;
    }
    //  The label is the rest of the line, inner spaces kept
    char rest [1024];
    snprintf (rest, sizeof rest, "%.*s", (int) (len - rest_at), line + rest_at);
    const char *verb = tokens [0];
    int args = count - 1;
    action_t action = { .count = 1 };
    long long number;
    double value;

    if (streq (verb, "click")) {
        action.kind = ACTION_CLICK;
        if (args > 2) {
            snprintf (err, errlen, "'click' takes at most BUTTON and PRESS_MS (click 1 120)");
            return -1;
        }
        if (args >= 1) {
            if (pond_scenario_whole (tokens [1], 1, 16, &number)) {
                snprintf (err, errlen, "'click' BUTTON must be a number 1..16, got '%s'",
                          tokens [1]);
                return -1;
            }
            action.number = (int) number;
        }
        if (args == 2) {
            if (pond_scenario_whole (tokens [2], 1, 60000, &number)) {
                snprintf (err, errlen, "'click' PRESS_MS must be a number 1..60000, got '%s'",
                          tokens [2]);
                return -1;
            }
            action.number2 = (int) number;
        }
    }
    else if (streq (verb, "quack")) {
        action.kind = ACTION_QUACK;
        if (args > 2) {
            snprintf (err, errlen,
                      "'quack' takes at most DURATION_MS and LOUDNESS_DB (quack 250 62.5)");
            return -1;
        }
        if (args >= 1) {
            if (pond_scenario_whole (tokens [1], 1, 60000, &number)) {
                snprintf (err, errlen,
                          "'quack' DURATION_MS must be a whole number 1..60000, got '%s'",
                          tokens [1]);
                return -1;
            }
            action.number = (int) number;
        }
        if (args == 2) {
            if (pond_scenario_number (tokens [2], 0.1, 200, &value)) {
                snprintf (err, errlen, "'quack' LOUDNESS_DB must be a number 0.1..200, got '%s'",
                          tokens [2]);
                return -1;
            }
            action.value = value;
        }
    }
    else if (streq (verb, "label")) {
        action.kind = ACTION_LABEL;
        if (args < 2) {
            snprintf (err, errlen, "'label' needs CONTAINER and LABEL (label c1 milk)");
            return -1;
        }
        if (s_check_text ("the container", tokens [1], err, errlen)
            || s_check_text ("the label", rest, err, errlen))
            return -1;
        action.container = strdup (tokens [1]);
        action.label = strdup (rest);
    }
    else if (streq (verb, "unlabel")) {
        action.kind = ACTION_UNLABEL;
        if (args != 1) {
            snprintf (err, errlen, "'unlabel' needs exactly one CONTAINER (unlabel c1)");
            return -1;
        }
        if (s_check_text ("the container", tokens [1], err, errlen))
            return -1;
        action.container = strdup (tokens [1]);
    }
    else if (streq (verb, "sleep")) {
        action.kind = ACTION_SLEEP;
        if (args != 1 || pond_scenario_whole (tokens [1], 0, 3600000, &number)) {
            snprintf (err, errlen, "'sleep' needs one number of milliseconds 0..3600000%s%s%s",
                      args >= 1 ? ", got '" : "", args >= 1 ? tokens [1] : "",
                      args >= 1 ? "'" : "");
            return -1;
        }
        action.number = (int) number;
    }
    else if (streq (verb, "offline") || streq (verb, "online")) {
        action.kind = streq (verb, "offline") ? ACTION_OFFLINE : ACTION_ONLINE;
        if (args) {
            snprintf (err, errlen, "'%s' takes nothing after it", verb);
            return -1;
        }
    }
    else {
        snprintf (err, errlen,
                  "unknown action '%s' (expected click, quack, label, unlabel, "
                  "sleep, offline or online)",
                  verb);
        return -1;
    }
    if ((action.kind == ACTION_LABEL && (!action.container || !action.label))
        || (action.kind == ACTION_UNLABEL && !action.container)) {
        free (action.container);
        free (action.label);
        snprintf (err, errlen, "out of memory");
        return -1;
    }
    return s_append (self, &action, err, errlen);
}

int
pond_scenario_add_repeat (pond_scenario_t *self, const char *verb, uint64_t count, char *err,
                          size_t errlen)
{
    assert (self);
    assert (verb);
    if (count < 1 || count > POND_SCENARIO_REPEAT_MAX) {
        snprintf (err, errlen, "--%s needs a count 1..%d", verb, POND_SCENARIO_REPEAT_MAX);
        return -1;
    }
    action_t action = { .count = count };
    if (streq (verb, "click"))
        action.kind = ACTION_CLICK;
    else if (streq (verb, "quack"))
        action.kind = ACTION_QUACK;
    else {
        snprintf (err, errlen, "'%s' cannot be repeated", verb);
        return -1;
    }
    return s_append (self, &action, err, errlen);
}

int
pond_scenario_load (pond_scenario_t *self, const char *path, char *err, size_t errlen)
{
    assert (self);
    assert (path);
    FILE *file = fopen (path, "r");
    if (!file) {
        snprintf (err, errlen, "cannot read scenario %s: %s", path, strerror (errno));
        return -1;
    }
    char line [1024 + 2];
    char reason [POND_ERR_SIZE];
    int number = 0, rc = 0;
    while (rc == 0 && fgets (line, sizeof line, file)) {
        number++;
        size_t len = strlen (line);
        if (len && line [len - 1] == '\n')
            line [--len] = 0;
        else if (!feof (file)) {
            snprintf (err, errlen, "scenario %s line %d: longer than 1023 characters", path,
                      number);
            rc = -1;
            break;
        }
        if (memchr (line, 0, len) || strlen (line) != len) {
            snprintf (err, errlen, "scenario %s line %d: holds a NUL byte", path, number);
            rc = -1;
        }
        else if (pond_scenario_add (self, line, reason, sizeof reason)) {
            snprintf (err, errlen, "scenario %s line %d: %s", path, number, reason);
            rc = -1;
        }
    }
    if (rc == 0 && ferror (file)) {
        snprintf (err, errlen, "cannot read scenario %s: %s", path, strerror (errno));
        rc = -1;
    }
    fclose (file);
    return rc;
}

//  ---------------------------------------------------------------------
//  Running

//  Do one action once. Returns 0, or -1 (outbox failure or interrupted).
static int
s_run_one (action_t *action, pond_device_t *device)
{
    int rc = 0;
    switch (action->kind) {
        case ACTION_CLICK: rc = pond_device_click (device, action->number, action->number2); break;
        case ACTION_QUACK: rc = pond_device_quack (device, action->number, action->value); break;
        case ACTION_LABEL: rc = pond_device_label (device, action->container, action->label); break;
        case ACTION_UNLABEL: rc = pond_device_unlabel (device, action->container); break;
        case ACTION_SLEEP: rc = pond_device_pump (device, action->number); break;
        case ACTION_OFFLINE: pond_device_set_online (device, false); break;
        case ACTION_ONLINE: pond_device_set_online (device, true); break;
    }
    return rc < 0 || zsys_interrupted ? -1 : 0;
}

int
pond_scenario_run (pond_scenario_t *self, pond_device_t *device)
{
    assert (self);
    assert (device);
    for (size_t i = 0; i < self->size; i++)
        for (uint64_t done = 0; done < self->actions [i].count; done++)
            if (s_run_one (&self->actions [i], device))
                return -1;
    return 0;
}

//  ---------------------------------------------------------------------
//  Numbers, for scenario lines and for pond-device's flags alike

int
pond_scenario_whole (const char *text, long long lo, long long hi, long long *value)
{
    errno = 0;
    char *end;
    long long number = strtoll (text, &end, 10);
    if (errno || end == text || *end || number < lo || number > hi)
        return -1;
    *value = number;
    return 0;
}

int
pond_scenario_number (const char *text, double lo, double hi, double *value)
{
    errno = 0;
    char *end;
    double number = strtod (text, &end);
    if (errno || end == text || *end || !isfinite (number) || number < lo || number > hi)
        return -1;
    *value = number;
    return 0;
}
