/*  pond_store_writer: the group-commit writer of pond_store_server, the
    APPEND / APPENDED part of the Store link (PROTOCOL.md).

    APPENDs are decoded, validated and prepared (pond_store_prepare:
    dedup, seqs, encoding, WriteBatch) as the server's loop reads them,
    and pile up into one group. Groups are committed by a writer thread
    (an actor), one at a time, each in one synced WriteBatch
    (pond_store_commit: WAL sync, memtables): while it commits one group,
    the loop keeps reading and prepares the next (dedup sees the group in
    flight), which goes to the writer as soon as it is done (group
    commit, pipelined). If a commit fails, the group prepared behind it is
    undone and prepared again, so seqs stay gap-free. When a group is
    written, each of its APPENDs gets its own APPENDED, in the order they
    came, so APPENDED order is seq order. The group being filled is handed
    over when the writer is idle, or as soon as it is full (the loop then
    waits for the writer). A lone APPEND with the writer idle is
    committed by the loop itself (pond_store_writer_hand_over).

    The two threads share no store state: prepare keeps its own next seq
    and pending ids, commit owns head, counts and stats. Signals: the
    writer thread blocks them; every wait on it retries EINTR and checks
    that the answer names the group it waits for, so a signal can never
    make an unwritten group look written.
*/
#include "pond_store_writer.h"
#include "pond_proto.h"
#include "pond_thread.h"

#define GROUP_EVENTS  8192    //  commit once a group holds this many events
#define GROUP_APPENDS 256     //  ... or this many APPENDs

//  An APPEND waiting for its group to be written
typedef struct {
    zframe_t *routing_id;
    uint64_t bid;
    size_t first;    //  its events in the group arrays
    size_t count;
    uint32_t code;    //  0 = read, else the answer the whole APPEND gets
    char reason [POND_REASON_MAX];
} s_append_t;

#define GROUP_CAPACITY (GROUP_EVENTS + POND_APPEND_MAX)

//  A group of APPENDs written in one WriteBatch. Two of them: the loop
//  fills one while the writer writes the other.
typedef struct {
    s_append_t appends [GROUP_APPENDS];
    size_t nappends;
    pond_event_t **events;    //  GROUP_CAPACITY of each
    uint64_t *seqs;
    bool *dups;
    uint8_t **stored;
    size_t *sizes;
    uint32_t *codes;    //  0, or why the event was refused (its slot
    char **reasons;     //  holds no event; the reason is malloc'd)
    size_t nevents;
    pond_store_group_t *prepared;    //  its events, prepared as they come
    int rc;                          //  pond_store_commit's answer
} s_group_t;

struct _pond_store_writer_t {
    pond_store_t *store;        //  not owned
    pond_store_link_t *link;    //  not owned
    //  The group being filled, and the one being written
    s_group_t groups [2];
    s_group_t *filling;
    s_group_t *writing;           //  NULL: the writer is idle
    zactor_t *writer;             //  writes one group per request
    bool writer_lost;             //  it answered something else: stop, answer nothing
    pond_appended_t *appended;    //  reply scratch (large: not on the stack)
    uint64_t conflicts;           //  events refused 409: id used for another event
};

static void s_writer_actor (zsock_t *pipe, void *args);
static int s_writer_answer (pond_store_writer_t *self);

//  Empty a group whose commit was answered (or that is given up): the
//  store forgets its ids, and undoes it if it was not committed.
static void
s_group_reset (pond_store_writer_t *self, s_group_t *group)
{
    if (group->prepared)
        pond_store_finish (self->store, group->prepared);
    for (size_t i = 0; i < group->nevents; i++) {
        pond_event_destroy (&group->events [i]);
        free (group->stored [i]);
        group->stored [i] = NULL;
        free (group->reasons [i]);
        group->reasons [i] = NULL;
        group->codes [i] = 0;
    }
    for (size_t i = 0; i < group->nappends; i++)
        zframe_destroy (&group->appends [i].routing_id);
    group->nevents = 0;
    group->nappends = 0;
}

pond_store_writer_t *
pond_store_writer_new (pond_store_t *store, pond_store_link_t *link)
{
    assert (store);
    assert (link);
    pond_store_writer_t *self = (pond_store_writer_t *) zmalloc (sizeof (pond_store_writer_t));
    if (!self)
        return NULL;
    self->store = store;
    self->link = link;
    bool groups_ok = true;
    for (int i = 0; i < 2; i++) {
        s_group_t *group = &self->groups [i];
        group->events = (pond_event_t **) calloc (GROUP_CAPACITY, sizeof (pond_event_t *));
        group->seqs = (uint64_t *) calloc (GROUP_CAPACITY, sizeof (uint64_t));
        group->dups = (bool *) calloc (GROUP_CAPACITY, sizeof (bool));
        group->stored = (uint8_t **) calloc (GROUP_CAPACITY, sizeof (uint8_t *));
        group->sizes = (size_t *) calloc (GROUP_CAPACITY, sizeof (size_t));
        group->codes = (uint32_t *) calloc (GROUP_CAPACITY, sizeof (uint32_t));
        group->reasons = (char **) calloc (GROUP_CAPACITY, sizeof (char *));
        group->prepared = pond_store_group_new ();
        groups_ok = groups_ok && group->events && group->seqs && group->dups && group->stored
                 && group->sizes && group->codes && group->reasons && group->prepared;
    }
    self->filling = &self->groups [0];
    self->appended = (pond_appended_t *) zmalloc (sizeof (pond_appended_t));
    self->writer = groups_ok ? zactor_new (s_writer_actor, store) : NULL;
    if (!groups_ok || !self->writer || !self->appended)
        pond_store_writer_destroy (&self);
    return self;
}

void
pond_store_writer_destroy (pond_store_writer_t **self_p)
{
    if (self_p && *self_p) {
        pond_store_writer_t *self = *self_p;
        //  A group being written is finished first (its APPENDs are not
        //  answered: the broker resends them and gets dups)
        if (self->writing && !self->writer_lost)
            s_writer_answer (self);
        self->writing = NULL;
        zactor_destroy (&self->writer);
        for (int i = 0; i < 2; i++) {
            s_group_t *group = &self->groups [i];
            if (group->events)
                s_group_reset (self, group);
            pond_store_group_destroy (&group->prepared);
            free (group->events);
            free (group->seqs);
            free (group->dups);
            free (group->stored);
            free (group->sizes);
            free (group->codes);
            free (group->reasons);
        }
        free (self->appended);
        free (self);
        *self_p = NULL;
    }
}

//  ---------------------------------------------------------------------
//  APPEND: "APPEND", body {bid}, event, event, ...
//  Decoded and validated now, written with its group by the writer.

//  The writer: an actor that commits one prepared group per request (the
//  address of the group on its pipe): one synced WriteBatch with
//  pond_store_commit, then group->rc is set and it answers with the same
//  address, which the loop checks (s_writer_answer). Meanwhile the loop
//  prepares the next group. It takes no signals (the main thread does),
//  retries a call a signal interrupted anyway, and ends on $TERM only
//  (or when the context goes).
static void
s_writer_actor (zsock_t *pipe, void *args)
{
    pond_thread_block_signals (NULL);
    pond_thread_name ("store-writer");
    pond_store_t *store = (pond_store_t *) args;
    void *handle = zsock_resolve (pipe);
    zsock_signal (pipe, 0);
    while (true) {
        char request [16];
        int size = zmq_recv (handle, request, sizeof request, 0);
        if (size == -1 && zmq_errno () == EINTR)
            continue;
        if (size == (int) sizeof (s_group_t *)) {
            s_group_t *group;
            memcpy (&group, request, sizeof group);
            group->rc = pond_store_commit (store, group->prepared);
            int rc;
            while ((rc = zmq_send (handle, &group, sizeof group, 0)) == -1 && zmq_errno () == EINTR)
                ;
            if (rc == -1)
                break;
        }
        else if (size == -1 || (size == 5 && memcmp (request, "$TERM", 5) == 0))
            break;
        else
            zsys_error ("store: writer: unknown request of %d bytes", size);
    }
}

//  ZeroMQ frees a stored event with this once it has sent it.
static void
s_free_stored (void *data, void *hint)
{
    (void) hint;
    free (data);
}

//  Send [routing id, "APPENDED", body, stored event ...] without copying
//  the events (their buffers move to ZeroMQ). Returns 0, or -1 (errno
//  set) if the peer cannot take it now or is gone: nothing was sent then.
static int
s_send_appended (pond_store_writer_t *self, s_group_t *group, s_append_t *append, zframe_t *body)
{
    void *handle = zsock_resolve (pond_store_link_router (self->link));
    size_t last = append->first + append->count;
    bool with_events = self->appended->code == POND_CODE_OK;
    //  Frames after the body: the events stored now (not duplicates, not
    //  refused)
    size_t more = 0;
    for (size_t k = append->first; with_events && k < last; k++)
        more += group->stored [k] != NULL;
    //  ROUTER_MANDATORY: a full or unknown peer refuses the first frame
    if (zmq_send (handle, zframe_data (append->routing_id), zframe_size (append->routing_id),
                  ZMQ_SNDMORE | ZMQ_DONTWAIT)
        == -1)
        return -1;
    zmq_send (handle, POND_APPENDED, strlen (POND_APPENDED), ZMQ_SNDMORE);
    zmq_send (handle, zframe_data (body), zframe_size (body), more ? ZMQ_SNDMORE : 0);
    for (size_t k = append->first; more && k < last; k++) {
        if (!group->stored [k])
            continue;
        zmq_msg_t frame;
        if (zmq_msg_init_data (&frame, group->stored [k], group->sizes [k], s_free_stored, NULL)
            == 0) {
            group->stored [k] = NULL;    //  ZeroMQ frees it once sent
            zmq_msg_send (&frame, handle, --more ? ZMQ_SNDMORE : 0);
        }
        else {
            //  Out of memory: end the message rather than leave it open
            zmq_send (handle, group->stored [k], group->sizes [k], --more ? ZMQ_SNDMORE : 0);
        }
    }
    return 0;
}

//  Answer each APPEND of a written group, in order.
static void
s_answer_group (pond_store_writer_t *self, s_group_t *group)
{
    for (size_t i = 0; i < group->nappends; i++) {
        s_append_t *append = &group->appends [i];
        pond_appended_t *reply = self->appended;
        reply->bid = append->bid;
        reply->count = 0;
        reply->reason [0] = 0;
        if (append->code) {
            reply->code = append->code;
            snprintf (reply->reason, sizeof reply->reason, "%s", append->reason);
        }
        else if (group->rc) {
            reply->code = POND_CODE_STORE_ERROR;
            snprintf (reply->reason, sizeof reply->reason,
                      "the store could not write; nothing was stored, retry later");
        }
        else {
            //  Each event its own result: one bad event fails no other
            reply->code = POND_CODE_OK;
            reply->count = append->count;
            memcpy (reply->seqs, group->seqs + append->first, append->count * sizeof (uint64_t));
            memcpy (reply->dups, group->dups + append->first, append->count * sizeof (bool));
            for (size_t j = 0; j < append->count; j++) {
                size_t k = append->first + j;
                const char *reason = "";
                reply->codes [j] = POND_CODE_OK;
                if (group->codes [k]) {
                    reply->codes [j] = group->codes [k];
                    reason = group->reasons [k] ? group->reasons [k] : "refused";
                }
                else if (group->dups [k] && group->seqs [k] == 0) {
                    reply->codes [j] = POND_CODE_CONFLICT;
                    reply->dups [j] = false;
                    reason = "id already used for a different event; give this event a new id";
                    self->conflicts++;
                }
                snprintf (reply->reasons [j], POND_APPENDED_REASON_MAX, "%s", reason);
            }
        }
        zframe_t *body = pond_appended_encode (reply);
        if (!body)
            zsys_error ("store: out of memory answering APPEND %" PRIu64, append->bid);
        else if (s_send_appended (self, group, append, body)) {
            pond_store_link_count_send_failure (self->link);
            pond_store_link_log_once (self->link, "send",
                                      "cannot answer a peer (%s): reply dropped",
                                      errno == EAGAIN ? "its queue is full" : "it is gone");
        }
        zframe_destroy (&body);
    }
    s_group_reset (self, group);
}

//  Prepare the events of one APPEND into its group (pond_store_prepare:
//  dedup, seqs, encoding, batch). Returns 0, or -1 with the APPEND
//  answered 500 in its turn (read error): nothing of it is stored.
static int
s_append_prepare (pond_store_writer_t *self, s_group_t *group, s_append_t *append)
{
    size_t first = append->first;
    if (pond_store_prepare (self->store, group->prepared, group->events + first, append->count,
                            group->seqs + first, group->dups + first, group->stored + first,
                            group->sizes + first)
        == 0)
        return 0;
    append->code = POND_CODE_STORE_ERROR;
    snprintf (append->reason, sizeof append->reason,
              "the store could not read; nothing was stored, retry later");
    return -1;
}

//  A group's commit returned: answer it. If it failed, the group being
//  filled (prepared behind it) holds seqs that will never be: undo it
//  and prepare it again, so seqs stay gap-free.
static void
s_group_done (pond_store_writer_t *self, s_group_t *group)
{
    pond_store_finish (self->store, group->prepared);
    s_group_t *behind = self->filling;
    if (group->rc && behind != group && behind->nevents > 0) {
        pond_store_finish (self->store, behind->prepared);
        for (size_t k = 0; k < behind->nevents; k++) {
            free (behind->stored [k]);
            behind->stored [k] = NULL;
        }
        for (size_t i = 0; i < behind->nappends; i++) {
            s_append_t *append = &behind->appends [i];
            if (append->code == 0 && append->count > 0)
                s_append_prepare (self, behind, append);
        }
    }
    s_answer_group (self, group);
}

//  Hand the group being filled to the writer, if it holds anything and
//  the writer is idle.
static void
s_writer_start (pond_store_writer_t *self)
{
    if (self->writing || self->filling->nappends == 0 || self->writer_lost)
        return;
    self->writing = self->filling;
    self->filling = self->writing == &self->groups [0] ? &self->groups [1] : &self->groups [0];
    s_group_t *group = self->writing;
    int rc;
    while ((rc = zmq_send (zsock_resolve (self->writer), &group, sizeof group, 0)) == -1
           && zmq_errno () == EINTR)
        ;
    if (rc == -1) {
        //  Only when the context is going away: write it here instead
        group->rc = pond_store_commit (self->store, group->prepared);
        self->writing = NULL;
        s_group_done (self, group);
    }
}

//  Read the writer's answer for the group being written, waiting for it
//  (a signal does not end the wait: the commit is short). Returns 1 if
//  the writer answered with that group's address (group->rc holds the
//  commit's result), 0 if nothing came (only with ZMQ_DONTWAIT), -1 if
//  anything else came or the pipe failed: the writer is gone (its exit
//  signal looks like an answer of the same size), and whether the group
//  was written is unknown. Then writer_lost is set: nothing is answered
//  and nothing more is committed, the server stops, and the broker
//  resends to the next store, which knows from the log what was written.
static int
s_writer_reply (pond_store_writer_t *self, int flags)
{
    char reply [16];
    int size;
    while ((size = zmq_recv (zsock_resolve (self->writer), reply, sizeof reply, flags)) == -1
           && zmq_errno () == EINTR)
        ;
    if (size == -1 && zmq_errno () == EAGAIN && (flags & ZMQ_DONTWAIT))
        return 0;
    if (size == (int) sizeof self->writing
        && memcmp (reply, &self->writing, sizeof self->writing) == 0)
        return 1;
    if (!self->writer_lost)
        zsys_error ("store: the writer thread %s (%d bytes on its pipe): stopping without "
                    "answering the APPENDs in flight; the broker resends them to the next "
                    "store, which knows from its log what was written",
                    size == -1 ? "cannot be reached" : "answered something else", size);
    self->writer_lost = true;
    return -1;
}

//  Wait for the writer's answer and drop it (the server goes away).
static int
s_writer_answer (pond_store_writer_t *self)
{
    return s_writer_reply (self, 0) == 1 ? 0 : -1;
}

//  If the writer is done (wait for it if block), answer its group and
//  give it the next. Returns true if a group was finished.
static bool
s_writer_collect (pond_store_writer_t *self, bool block)
{
    if (!self->writing || self->writer_lost)
        return false;
    if (s_writer_reply (self, block ? 0 : ZMQ_DONTWAIT) != 1)
        return false;
    s_group_t *group = self->writing;
    self->writing = NULL;
    s_group_done (self, group);
    s_writer_start (self);
    return true;
}

//  Wait until the writer is idle (answering what it wrote).
void
pond_store_writer_wait (pond_store_writer_t *self)
{
    while (self->writing && s_writer_collect (self, true))
        ;
}

//  Write every APPEND read so far and answer them all: what comes next
//  (STATS, REPLAY) sees them, and the store is ours alone until the next
//  s_writer_start.
void
pond_store_writer_commit (pond_store_writer_t *self)
{
    pond_store_writer_wait (self);
    s_writer_start (self);
    pond_store_writer_wait (self);
}

//  The group being filled is full: hand it over, waiting for the writer
//  if it is still busy with the previous one. Returns 0 once the group
//  being filled is empty, or -1 if the writer is lost (nothing can be
//  added then: the server stops).
static int
s_group_full (pond_store_writer_t *self)
{
    //  Collecting the group being written hands this one over at once
    //  (s_writer_collect starts the next): wait for one sync, not two
    while (self->filling->nappends && !self->writer_lost) {
        if (self->writing)
            s_writer_collect (self, true);
        else
            s_writer_start (self);
    }
    return self->writer_lost ? -1 : 0;
}

//  Can the store take this decoded event (size bytes as received)? Its
//  stored form adds a seq (at most 13 bytes) to an encoding no larger than
//  the one received (pond_event_encode writes the shortest forms), so only
//  events near the limit need the full check, which encodes the event.
static int
s_check (pond_event_t *event, size_t size, char *reason, size_t reason_size)
{
    if (size + 64 > POND_EVENT_MAX_SIZE || pond_event_seq (event))
        return pond_store_check (event, reason, reason_size);
    return 0;
}

void
pond_store_writer_handle_append (pond_store_writer_t *self, zframe_t *routing_id, zmsg_t *msg)
{
    zframe_t *body = zmsg_pop (msg);
    pond_append_t header;
    char reason [POND_ERR_SIZE];
    if (!body) {
        pond_store_link_refuse (self->link, routing_id, POND_CODE_BAD_REQUEST, "APPEND/body",
                                "APPEND needs a body {bid} and 1..%d events", POND_APPEND_MAX);
        return;
    }
    if (zframe_size (body) > POND_BODY_MAX) {
        pond_store_link_refuse (self->link, routing_id, POND_CODE_TOO_LARGE, "APPEND/size",
                                "APPEND body is %zu bytes; the limit is %d", zframe_size (body),
                                POND_BODY_MAX);
        zframe_destroy (&body);
        return;
    }
    int rc = pond_append_decode (body, &header, reason, sizeof reason);
    zframe_destroy (&body);
    if (rc) {
        pond_store_link_refuse (self->link, routing_id, POND_CODE_BAD_REQUEST, "APPEND/body",
                                "APPEND body: %s", reason);
        return;
    }
    size_t count = zmsg_size (msg);
    if ((self->filling->nevents + count > GROUP_CAPACITY
         || self->filling->nappends == GROUP_APPENDS)
        && s_group_full (self))
        return;    //  not answered: the server stops
    s_group_t *group = self->filling;
    s_append_t *append = &group->appends [group->nappends];
    memset (append, 0, sizeof (*append));
    append->bid = header.bid;
    append->first = group->nevents;
    if (count == 0 || count > POND_APPEND_MAX) {
        append->code = count ? POND_CODE_TOO_LARGE : POND_CODE_BAD_REQUEST;
        snprintf (append->reason, sizeof append->reason,
                  "APPEND carries %zu events; it must carry 1..%d", count, POND_APPEND_MAX);
    }
    //  Each event is judged alone: a refused one keeps its slot (no event,
    //  its code and reason) and the others are stored
    size_t index = 0;
    size_t refused = 0;
    for (zframe_t *frame = zmsg_first (msg); frame && !append->code;
         frame = zmsg_next (msg), index++) {
        const uint8_t *data = zframe_data (frame);
        size_t size = zframe_size (frame);
        size_t k = group->nevents + append->count++;
        pond_event_t *event = NULL;
        uint32_t code = 0;
        if (size > POND_EVENT_MAX_SIZE) {
            code = POND_CODE_TOO_LARGE;
            snprintf (reason, sizeof reason, "event is %zu bytes; the limit is %d", size,
                      POND_EVENT_MAX_SIZE);
        }
        else if (!(event = pond_event_decode (data, size, reason, sizeof reason))
                 || s_check (event, size, reason, sizeof reason)) {
            //  Too large once the seq is added is 413, as on ingest
            code = event && !pond_event_seq (event) ? POND_CODE_TOO_LARGE : POND_CODE_BAD_REQUEST;
            pond_event_destroy (&event);
        }
        group->events [k] = event;
        if (code) {
            group->codes [k] = code;
            group->reasons [k] = strdup (reason);
            refused++;
            pond_store_link_log_once (self->link, "APPEND/event",
                                      "refused event %zu of APPEND %" PRIu64 " (%u): %s", index,
                                      append->bid, code, reason);
        }
    }
    pond_store_link_count_malformed (self->link, refused);
    //  Prepared now, while the writer may be syncing the group before
    if (append->code || s_append_prepare (self, group, append)) {
        //  Nothing of an unreadable APPEND goes into the group
        for (size_t i = 0; i < append->count; i++) {
            size_t k = append->first + i;
            pond_event_destroy (&group->events [k]);
            free (group->reasons [k]);
            group->reasons [k] = NULL;
            group->codes [k] = 0;
        }
        append->count = 0;
    }
    if (append->code && append->code != POND_CODE_STORE_ERROR) {
        pond_store_link_count_malformed (self->link, 1);
        pond_store_link_log_once (self->link, "APPEND/batch", "refused APPEND %" PRIu64 " (%u): %s",
                                  append->bid, append->code, append->reason);
    }
    append->routing_id = zframe_dup (routing_id);
    group->nevents += append->count;
    group->nappends++;
    if (group->nevents >= GROUP_EVENTS || group->nappends == GROUP_APPENDS)
        s_group_full (self);
}

void
pond_store_writer_hand_over (pond_store_writer_t *self, size_t read)
{
    if (self->writer_lost)
        return;
    if (read == 1 && !self->writing && self->filling->nappends == 1) {
        s_group_t *group = self->filling;
        group->rc = pond_store_commit (self->store, group->prepared);
        s_group_done (self, group);
    }
    else
        s_writer_start (self);
}

void
pond_store_writer_collect (pond_store_writer_t *self)
{
    s_writer_collect (self, false);
}

bool
pond_store_writer_lost (pond_store_writer_t *self)
{
    return self->writer_lost;
}

bool
pond_store_writer_busy (pond_store_writer_t *self)
{
    return self->writing != NULL;
}

void *
pond_store_writer_handle (pond_store_writer_t *self)
{
    return zsock_resolve (self->writer);
}

uint64_t
pond_store_writer_conflicts (pond_store_writer_t *self)
{
    return self->conflicts;
}
