/*  pond_fuzz_value: libFuzzer harness for pond_value, the schemaless part
    of an event (its data and meta maps).

    The input is read both ways. As msgpack: pond_value_check must refuse
    with a reason or accept and say how many bytes the first object takes
    (never more than the input); pond_value_to_json must then render it
    (it runs the same check itself, so a check that accepts what msgpack-c
    cannot unpack shows up here). As JSON text (a NUL-terminated copy):
    pond_value_from_json must refuse with a reason or give one msgpack map
    that passes the check exactly, and JSON -> msgpack -> JSON must be a
    fixed point after one round (the second round changes nothing). An
    input that starts with POND_FUZZ_SCRIPT also builds a map from its
    script (pond_fuzz_script.c) and reads that as msgpack.
*/
#include "pond_fuzz.h"
#include "pond_value.h"

#include <string.h>

static void
s_msgpack (const uint8_t *data, size_t size)
{
    char err [256] = "";
    size_t used = 0;
    if (pond_value_check (data, size, &used, err, sizeof err)) {
        POND_FUZZ_CHECK (*err, "check refused without a reason");
        POND_FUZZ_CHECK (pond_value_to_json (data, size) == NULL,
                         "to_json renders what the check refuses");
        return;
    }
    POND_FUZZ_CHECK (used >= 1 && used <= size, "used %zu of %zu bytes", used, size);
    //  The first object alone passes too, and uses all its bytes
    size_t alone = 0;
    POND_FUZZ_CHECK (pond_value_check (data, used, &alone, err, sizeof err) == 0 && alone == used,
                     "first object alone refused: %s", err);
    //  The deeper event limit accepts whatever the default accepts
    POND_FUZZ_CHECK (
        pond_value_check_depth (data, size, POND_VALUE_MAX_DEPTH + 1, &alone, err, sizeof err) == 0
            && alone == used,
        "deeper limit refuses: %s", err);
    char *json = pond_value_to_json (data, size);
    POND_FUZZ_CHECK (json, "checked msgpack does not render as JSON");
    free (json);
}

//  JSON -> msgpack, checked; returns the JSON rendering of the result or
//  NULL if the text was refused.
static char *
s_json_round (const char *text)
{
    char err [256] = "";
    size_t size = 0;
    uint8_t *msgpack = pond_value_from_json (text, &size, err, sizeof err);
    if (!msgpack) {
        POND_FUZZ_CHECK (*err, "from_json refused without a reason");
        return NULL;
    }
    size_t used = 0;
    POND_FUZZ_CHECK (pond_value_check (msgpack, size, &used, err, sizeof err) == 0,
                     "from_json output fails the check: %s", err);
    POND_FUZZ_CHECK (used == size, "from_json output has %zu trailing bytes", size - used);
    uint8_t tag = msgpack [0];
    POND_FUZZ_CHECK ((tag >= 0x80 && tag <= 0x8f) || tag == 0xde || tag == 0xdf,
                     "from_json output is not a map (0x%02x)", tag);
    char *json = pond_value_to_json (msgpack, size);
    POND_FUZZ_CHECK (json, "from_json output does not render as JSON");
    free (msgpack);
    return json;
}

static void
s_json (const uint8_t *data, size_t size)
{
    char *text = pond_fuzz_strndup (data, size);
    char *once = s_json_round (text);
    if (once) {
        char *twice = s_json_round (once);
        POND_FUZZ_CHECK (twice, "from_json refuses JSON it rendered: %s", once);
        POND_FUZZ_CHECK (strcmp (once, twice) == 0, "JSON round trip is not stable:\n  %s\n  %s",
                         once, twice);
        free (twice);
        free (once);
    }
    free (text);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    s_msgpack (data, size);
    s_json (data, size);
    if (size > 0 && data [0] == POND_FUZZ_SCRIPT) {
        //  Any keys will do: pond_value has no schema
        static const char *const keys [] = { "a", "" };
        size_t built_size;
        uint8_t *built = pond_fuzz_script_map (data + 1, size - 1, keys, 2, &built_size);
        s_msgpack (built, built_size);
        free (built);
    }
    return 0;
}
