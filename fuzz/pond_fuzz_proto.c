/*  pond_fuzz_proto: libFuzzer harness for the protocol body decoders.

    The first byte of the input picks a message (its value modulo the
    number of messages: ack, nack, replay_req, credit, end, append,
    appended, heartbeat, query, command, progress, command_ref,
    command_status); the rest is its body
    frame, as a ROUTER would hand it over, or if the rest starts with
    POND_FUZZ_SCRIPT, the map its script builds (pond_fuzz_script.c: every
    size limit and wrong type one mutation away). A decoder must either
    refuse with a reason or accept a body whose re-encoding it accepts
    again and that encodes to the same bytes the second time. Anything
    else aborts.
*/
#include "pond_fuzz.h"
#include "pond_proto.h"

#include <string.h>

//  One function per message: decode the frame; if accepted, encode,
//  decode that, encode again and compare. The structs live in static
//  storage: pond_command_t alone is 64 KiB.
#define POND_FUZZ_MESSAGE(type, prefix) \
    static void s_##prefix (zframe_t *frame) \
    { \
        static type first, second; \
        char err [POND_REASON_MAX] = ""; \
        if (prefix##_decode (frame, &first, err, sizeof err)) { \
            POND_FUZZ_CHECK (*err, #prefix "_decode refused without a reason"); \
            return; \
        } \
        zframe_t *encoded = prefix##_encode (&first); \
        POND_FUZZ_CHECK (encoded, #prefix "_encode failed"); \
        POND_FUZZ_CHECK (prefix##_decode (encoded, &second, err, sizeof err) == 0, \
                         #prefix " refuses its own encoding: %s", err); \
        zframe_t *again = prefix##_encode (&second); \
        POND_FUZZ_CHECK (again, #prefix "_encode failed"); \
        POND_FUZZ_CHECK (zframe_eq (encoded, again), \
                         #prefix ": encodings differ (%zu and %zu bytes)", zframe_size (encoded), \
                         zframe_size (again)); \
        zframe_destroy (&again); \
        zframe_destroy (&encoded); \
    }

POND_FUZZ_MESSAGE (pond_ack_t, pond_ack)
POND_FUZZ_MESSAGE (pond_nack_t, pond_nack)
POND_FUZZ_MESSAGE (pond_replay_req_t, pond_replay_req)
POND_FUZZ_MESSAGE (pond_credit_t, pond_credit)
POND_FUZZ_MESSAGE (pond_end_t, pond_end)
POND_FUZZ_MESSAGE (pond_append_t, pond_append)
POND_FUZZ_MESSAGE (pond_appended_t, pond_appended)
POND_FUZZ_MESSAGE (pond_heartbeat_t, pond_heartbeat)
POND_FUZZ_MESSAGE (pond_query_t, pond_query)
POND_FUZZ_MESSAGE (pond_command_t, pond_command)
POND_FUZZ_MESSAGE (pond_progress_t, pond_progress)
POND_FUZZ_MESSAGE (pond_command_ref_t, pond_command_ref)
POND_FUZZ_MESSAGE (pond_command_status_t, pond_command_status)

//  The selector byte's meaning: fuzz/make_seeds.py writes seeds with it
static void (*const s_messages []) (zframe_t *) = {
    s_pond_ack,      s_pond_nack,        s_pond_replay_req,    s_pond_credit, s_pond_end,
    s_pond_append,   s_pond_appended,    s_pond_heartbeat,     s_pond_query,  s_pond_command,
    s_pond_progress, s_pond_command_ref, s_pond_command_status
};
#define POND_FUZZ_MESSAGES (sizeof s_messages / sizeof s_messages [0])

//  Keys for script bodies: every key of every body (a decoder ignores the
//  others), and a near miss
static const char *const s_keys [] = {
    "id",    "seq",      "dup",    "code",   "reason",   "retry_ms", "rid",     "names",    "from",
    "to",    "from_seq", "to_seq", "entity", "limit",    "credit",   "order",   "chunks",   "count",
    "head",  "ts",       "bid",    "seqs",   "dups",     "text",     "command", "args",     "done",
    "total", "Rid",      "view",   "status", "progress", "accepted", "started", "finished", "result"
};

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    void (*message) (zframe_t *) = s_messages [data [0] % POND_FUZZ_MESSAGES];
    zframe_t *frame;
    if (size == 1) {
        message (NULL);    //  a message without its body frame
        frame = zframe_new (NULL, 0);
    }
    else if (data [1] == POND_FUZZ_SCRIPT) {
        size_t built_size;
        uint8_t *built = pond_fuzz_script_map (data + 2, size - 2, s_keys,
                                               sizeof s_keys / sizeof s_keys [0], &built_size);
        frame = zframe_new (built, built_size);
        free (built);
    }
    else
        frame = zframe_new (data + 1, size - 1);
    POND_FUZZ_CHECK (frame, "out of memory");
    message (frame);
    zframe_destroy (&frame);
    return 0;
}
