/*  pond_event: the event envelope, the unit of the whole system.

    One envelope type and one codec, used by broker, store, actors and the
    command line alike. An event is a msgpack map (see proto/PROTOCOL.md):
    id, name, ts, entity, source, causation, meta, data and seq. The decoder
    validates everything (types, required keys, name syntax, sizes) so that
    a process holding a pond_event_t can trust every field.
*/
#ifndef POND_EVENT_H_INCLUDED
#define POND_EVENT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "pond_export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define POND_EVENT_MAX_SIZE   65536    //  Largest encoded event, seq included
#define POND_PUBLISH_MAX_SIZE 65520    //  Largest event published: room for seq
#define POND_NAME_MAX         64       //  [A-Z][A-Z0-9_]{0,63}
#define POND_ENTITY_MAX       128      //  Bytes in entity and source
#define POND_ID_SIZE          16       //  UUID, binary
#define POND_ERR_SIZE         256      //  Room for a decoder's reason

typedef struct _pond_event_t pond_event_t;

//  Create a new event with a fresh UUIDv7 id and ts = now. Name and entity
//  are not checked here; pond_event_validate or encode will. Returns NULL
//  only if memory runs out.
POND_EXPORT pond_event_t *
    pond_event_new (const char *name, const char *entity);

//  Destroy an event; accepts NULL; nulls the caller's pointer.
POND_EXPORT void
    pond_event_destroy (pond_event_t **self_p);

//  Deep copy. Caller owns return value and must destroy it.
POND_EXPORT pond_event_t *
    pond_event_dup (const pond_event_t *self);

//  Accessors. Strings are owned by the event.
POND_EXPORT const uint8_t *
    pond_event_id (const pond_event_t *self);
POND_EXPORT void
    pond_event_set_id (pond_event_t *self, const uint8_t *id);
POND_EXPORT const char *
    pond_event_name (const pond_event_t *self);
POND_EXPORT int
    pond_event_set_name (pond_event_t *self, const char *name);
POND_EXPORT uint64_t
    pond_event_ts (const pond_event_t *self);
POND_EXPORT void
    pond_event_set_ts (pond_event_t *self, uint64_t ts);
POND_EXPORT const char *
    pond_event_entity (const pond_event_t *self);
POND_EXPORT int
    pond_event_set_entity (pond_event_t *self, const char *entity);
//  Source is "" when absent.
POND_EXPORT const char *
    pond_event_source (const pond_event_t *self);
POND_EXPORT int
    pond_event_set_source (pond_event_t *self, const char *source);
//  Causation: NULL when absent.
POND_EXPORT const uint8_t *
    pond_event_causation (const pond_event_t *self);
POND_EXPORT void
    pond_event_set_causation (pond_event_t *self, const uint8_t *id);
//  Global position; 0 means "not assigned yet" (seq starts at 1).
POND_EXPORT uint64_t
    pond_event_seq (const pond_event_t *self);
POND_EXPORT void
    pond_event_set_seq (pond_event_t *self, uint64_t seq);

//  Data and meta are kept as msgpack-encoded maps. Getters return NULL
//  and size 0 when absent.
POND_EXPORT const uint8_t *
    pond_event_data (const pond_event_t *self, size_t *size_p);
POND_EXPORT const uint8_t *
    pond_event_meta (const pond_event_t *self, size_t *size_p);
//  Set data/meta from msgpack bytes that must hold exactly one map; pass
//  NULL to clear. Returns 0, or -1 with the reason in err.
POND_EXPORT int
    pond_event_set_data (pond_event_t *self, const uint8_t *msgpack, size_t size, char *err,
                         size_t errlen);
POND_EXPORT int
    pond_event_set_meta (pond_event_t *self, const uint8_t *msgpack, size_t size, char *err,
                         size_t errlen);
//  Set data/meta from a JSON object text. Returns 0, or -1 with the reason.
POND_EXPORT int
    pond_event_set_data_json (pond_event_t *self, const char *json, char *err, size_t errlen);
POND_EXPORT int
    pond_event_set_meta_json (pond_event_t *self, const char *json, char *err, size_t errlen);

//  Check every field against the envelope rules. Returns 0, or -1 with the
//  reason in err.
POND_EXPORT int
    pond_event_validate (const pond_event_t *self, char *err, size_t errlen);

//  Encode to msgpack. Returns a malloc'd buffer the caller must free, with
//  its size in *size_p, or NULL if the event is invalid (reason in err) or
//  the encoding is larger than POND_EVENT_MAX_SIZE.
POND_EXPORT uint8_t *
    pond_event_encode (const pond_event_t *self, size_t *size_p, char *err, size_t errlen);

//  Decode and fully validate one event. Returns NULL with the reason in err
//  on any malformed, truncated, oversized or wrong-typed input.
//  Caller owns return value and must destroy it.
POND_EXPORT pond_event_t *
    pond_event_decode (const uint8_t *data, size_t size, char *err, size_t errlen);

//  Decode and fully validate the first event of a msgpack stream (events
//  back to back, as in a packed CHUNK); its size goes to *used_p. Returns
//  NULL with the reason in err as pond_event_decode does.
//  Caller owns return value and must destroy it.
POND_EXPORT pond_event_t *
    pond_event_decode_next (const uint8_t *data, size_t size, size_t *used_p, char *err,
                            size_t errlen);

//  Read the id of an event that may not decode (too large, a bad field):
//  the top-level map's "id" key, if it is reached before anything
//  unreadable and holds 16 bytes of bin, not all zeros. Returns true with
//  the id in id, else false. Lets a NACK name the event it refuses.
POND_EXPORT bool
    pond_event_peek_id (const uint8_t *data, size_t size, uint8_t *id);

//  Render as one line of JSON (no newline). Caller owns the string and
//  must free it. Returns NULL only if memory runs out.
POND_EXPORT char *
    pond_event_to_json (const pond_event_t *self);

#ifdef __cplusplus
}
#endif

#endif
