/*  pond_client_io: the socket helpers the producer, the subscriber, the
    replay reader and stats share (a receive with a deadline, sends without
    a zmsg copy, a DEALER made the client's way). Private to client/; see
    pond_client_io.h.
*/
#include "pond_client_io.h"
#include "pond_keys.h"

#include <errno.h>

//  Wait for one message on sock until deadline (zclock_mono msecs; -1 is
//  forever). Returns the message, or NULL on timeout, or NULL with
//  *interrupted set when SIGINT/SIGTERM arrived (zsys_interrupted). A
//  receive that blocks with a timeout, not a poll then a receive: ZeroMQ
//  checks the socket once instead of three times (two system calls
//  each), and not at all when a message is already queued, as replies are
//  for pipelined producers and chunks for a replay. Only this function
//  receives on the client's sockets, so it owns their receive timeout.
zmsg_t *
pond_client_io_recv_until (zsock_t *sock, int64_t deadline, bool *interrupted)
{
    *interrupted = false;
    while (true) {
        int timeout = -1;
        if (deadline >= 0) {
            int64_t left = deadline - zclock_mono ();
            timeout = left > 0 ? (int) left : 0;
        }
        zsock_set_rcvtimeo (sock, timeout);
        zmsg_t *msg = zmsg_recv (sock);
        if (msg)
            return msg;
        int error = zmq_errno ();
        if (zsys_interrupted) {
            *interrupted = true;
            return NULL;
        }
        if (error != EINTR)
            return NULL;    //  Timed out (EAGAIN), or the socket failed
        //  EINTR from some other signal: wait on
    }
}

//  Deadline timeout_ms from now; -1 (forever) for a negative timeout.
int64_t
pond_client_io_deadline (int timeout_ms)
{
    return timeout_ms < 0 ? -1 : zclock_mono () + timeout_ms;
}

//  Send a command frame, then the given frames (may be none), as one
//  multipart message without copying through zmsg. Returns 0 or -1 (errno
//  EAGAIN: the send timed out).
int
pond_client_io_send (zsock_t *sock, const char *command, const void *body, size_t body_size)
{
    void *handle = zsock_resolve (sock);
    if (zmq_send (handle, command, strlen (command), body ? ZMQ_SNDMORE : 0) < 0)
        return -1;
    if (body && zmq_send (handle, body, body_size, 0) < 0)
        return -1;
    return 0;
}

int
pond_client_io_send_many (zsock_t *sock, const char *command, const void *const *frames,
                          const size_t *sizes, size_t count)
{
    void *handle = zsock_resolve (sock);
    if (zmq_send (handle, command, strlen (command), count ? ZMQ_SNDMORE : 0) < 0)
        return -1;
    for (size_t i = 0; i < count; i++)
        if (zmq_send (handle, frames [i], sizes [i], i + 1 < count ? ZMQ_SNDMORE : 0) < 0)
            return -1;
    return 0;
}

//  Send a command and a body frame, destroying the frame. Returns 0 or -1.
int
pond_client_io_send_frame (zsock_t *sock, const char *command, zframe_t **body_p)
{
    if (!*body_p)
        return -1;
    int rc = pond_client_io_send (sock, command, zframe_data (*body_p), zframe_size (*body_p));
    zframe_destroy (body_p);
    return rc;
}

//  Make a DEALER connected to endpoint, linger 0, our HWMs; a CURVE client
//  of the broker when the process has keys (pond_keys_use), then with a
//  watch on its handshakes in *watch_p. NULL if the endpoint is invalid or
//  the broker's key is missing (logged).
zsock_t *
pond_client_io_dealer_new (const char *endpoint, bool immediate, int sndtimeo,
                           pond_keys_watch_t **watch_p)
{
    zsock_t *sock = zsock_new (ZMQ_DEALER);
    if (!sock)
        return NULL;
    zsock_set_linger (sock, 0);
    zsock_set_sndhwm (sock, POND_CLIENT_HWM);
    zsock_set_rcvhwm (sock, POND_CLIENT_HWM);
    zsock_set_immediate (sock, immediate ? 1 : 0);
    zsock_set_sndtimeo (sock, sndtimeo);
    if (pond_keys_client (sock, NULL)) {
        zsock_destroy (&sock);
        return NULL;
    }
    if (watch_p)
        *watch_p = pond_keys_watch_new (sock);
    if (zsock_connect (sock, "%s", endpoint)) {
        zsock_destroy (&sock);
        if (watch_p)
            pond_keys_watch_destroy (watch_p);
        return NULL;
    }
    return sock;
}

//  Format text into dest; -1 if it does not fit.
int
pond_client_io_copy (char *dest, size_t size, const char *format, const char *text)
{
    int rc = snprintf (dest, size, format, text);
    return rc < 0 || (size_t) rc >= size ? -1 : 0;
}

int
pond_client_io_fail (pond_client_io_failure_t *failure, int code, const char *format, ...)
{
    failure->code = code;
    va_list args;
    va_start (args, format);
    vsnprintf (failure->reason, sizeof failure->reason, format, args);
    va_end (args);
    return -1;
}
