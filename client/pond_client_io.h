/*  pond_client_io: socket helpers shared inside the client library (not
    installed, not for users: include pond_client.h instead).
*/
#ifndef POND_CLIENT_IO_H_INCLUDED
#define POND_CLIENT_IO_H_INCLUDED

#include "pond_client.h"
#include "pond_keys.h"
#include "pond_proto.h"

//  Wait for one message on sock until deadline (zclock_mono msecs; -1 is
//  forever). Returns the message, or NULL on timeout, or NULL with
//  *interrupted set when SIGINT/SIGTERM arrived (zsys_interrupted). A
//  receive that blocks with a timeout, not a poll then a receive: ZeroMQ
//  checks the socket once instead of three times (two system calls
//  each), and not at all when a message is already queued, as replies are
//  for pipelined producers and chunks for a replay. Only this function
//  receives on the client's sockets, so it owns their receive timeout.
zmsg_t *
    pond_client_io_recv_until (zsock_t *sock, int64_t deadline, bool *interrupted);

//  Deadline timeout_ms from now; -1 (forever) for a negative timeout.
int64_t
    pond_client_io_deadline (int timeout_ms);

//  Send a command frame, then the given frames (may be none), as one
//  multipart message without copying through zmsg. Returns 0 or -1 (errno
//  EAGAIN: the send timed out).
int
    pond_client_io_send (zsock_t *sock, const char *command, const void *body, size_t body_size);

//  Send a command frame, then count frames, as one multipart message.
//  Only the first frame can block (the high-water mark is per message).
//  Returns 0 or -1 (errno EAGAIN: the send timed out).
int
    pond_client_io_send_many (zsock_t *sock, const char *command, const void *const *frames,
                              const size_t *sizes, size_t count);

//  Send a command and a body frame, destroying the frame. Returns 0 or -1.
int
    pond_client_io_send_frame (zsock_t *sock, const char *command, zframe_t **body_p);

//  Make a DEALER connected to endpoint, linger 0, our HWMs; a CURVE client
//  of the broker when the process has keys (pond_keys_use), then with a
//  watch on its handshakes in *watch_p. NULL if the endpoint is invalid or
//  the broker's key is missing (logged).
zsock_t *
    pond_client_io_dealer_new (const char *endpoint, bool immediate, int sndtimeo,
                               pond_keys_watch_t **watch_p);

//  Encode an event for PUBLISH (pond_client.c): valid, without seq, at
//  most POND_PUBLISH_MAX_SIZE. Returns the bytes (caller frees), or NULL
//  with the client's code (400, 413) and reason set.
uint8_t *
    pond_client_io_encode (pond_client_t *self, const pond_event_t *event, size_t *size_p);

//  Why the last call of a client object failed: an HTTP-like code (0 if
//  it did not) and a sentence for the user.
typedef struct {
    int code;
    char reason [POND_REASON_MAX + 128];
} pond_client_io_failure_t;

//  Set the failure to code and the formatted reason. Returns -1, for
//  "return pond_client_io_fail (...)".
int
    pond_client_io_fail (pond_client_io_failure_t *failure, int code, const char *format, ...)
        __attribute__ ((format (printf, 3, 4)));

//  Format text into dest; -1 if it does not fit.
int
    pond_client_io_copy (char *dest, size_t size, const char *format, const char *text);

#endif
