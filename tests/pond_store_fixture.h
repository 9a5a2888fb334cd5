/*  pond_store_fixture: what test_store, test_cursor and test_store_server
    share: a temporary store directory per test, the processes and the
    in-process server a test started (stopped at teardown even on failure),
    and helpers that append events and run a whole replay.
*/
#ifndef POND_STORE_FIXTURE_H_INCLUDED
#define POND_STORE_FIXTURE_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "pond_harness.h"
#include "pond_proto.h"
#include "pond_cursor.h"
#include "pond_store.h"
#include "pond_store_internal.h"

//  Set by fixture_setup for the running test, cleared by fixture_teardown
extern char *fixture_dir;              //  a fresh temporary directory
extern char fixture_db [512];          //  the store's path inside it
extern char fixture_endpoint [512];    //  an ipc endpoint inside it
extern pid_t fixture_pids [4];         //  processes to kill at teardown
extern zactor_t *fixture_actor;        //  an in-process server, if any

//  Criterion .init / .fini of every test of the three files.
void
    fixture_setup (void);
void
    fixture_teardown (void);

//  A new event with this name, entity and ts; asserts.
pond_event_t *
    fixture_event (const char *name, const char *entity, uint64_t ts);

//  Append events as one group; asserts success; destroys the events.
void
    fixture_append (pond_store_t *store, pond_event_t **events, size_t count, uint64_t *seqs,
                    bool *dups);

//  Append one event; returns its seq.
uint64_t
    fixture_append_one (pond_store_t *store, const char *name, const char *entity, uint64_t ts);

//  Decode the events a fill appended into msg, checking each.
size_t
    fixture_drain_events (zmsg_t *msg, uint64_t *seqs, uint64_t *tss,
                          char (*names) [POND_NAME_MAX + 1], size_t capacity);

//  Run a whole replay; returns the events seen (seqs, ts, names).
size_t
    fixture_replay_all (pond_store_t *store, const pond_replay_req_t *request, uint64_t *seqs,
                        uint64_t *tss, char (*names) [POND_NAME_MAX + 1], size_t capacity);

#endif
