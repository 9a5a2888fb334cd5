/*  pond_client_stats: one STATS request to a mesh's control socket, the
    reply as JSON text. See pond_client.h and proto/PROTOCOL.md, "Control socket".
*/
#include "pond_client_io.h"
#include "pond_value.h"

char *
pond_client_stats (const char *control_endpoint, int timeout_ms, char *err, size_t errlen)
{
    assert (control_endpoint);
    char scratch [POND_ERR_SIZE];
    if (!err) {
        err = scratch;
        errlen = sizeof scratch;
    }
    pond_keys_watch_t *watch = NULL;
    zsock_t *sock = pond_client_io_dealer_new (control_endpoint, false, timeout_ms, &watch);
    if (!sock) {
        snprintf (err, errlen, "cannot connect to %s", control_endpoint);
        return NULL;
    }
    char *json = NULL;
    if (pond_client_io_send (sock, POND_STATS, NULL, 0))
        snprintf (err, errlen, "cannot send to %s", control_endpoint);
    else {
        int64_t deadline = pond_client_io_deadline (timeout_ms);
        while (!json) {
            bool interrupted;
            zmsg_t *msg = pond_client_io_recv_until (sock, deadline, &interrupted);
            if (!msg) {
                if (interrupted)
                    snprintf (err, errlen, "interrupted");
                else if (!pond_keys_watch_refused (watch, err, errlen))
                    snprintf (err, errlen, "no reply from %s within %d ms", control_endpoint,
                              timeout_ms);
                break;
            }
            zframe_t *command = zmsg_first (msg);
            zframe_t *body = zmsg_next (msg);
            bool done = true;
            if (pond_proto_is (command, POND_STATS)) {
                if (!body || !(json = pond_value_to_json (zframe_data (body), zframe_size (body))))
                    snprintf (err, errlen, "unreadable STATS reply");
            }
            else if (pond_proto_is (command, POND_ERROR)) {
                pond_nack_t error;
                if (pond_nack_decode (body, &error, err, errlen) == 0)
                    snprintf (err, errlen, "%u %s", error.code, error.reason);
            }
            else
                done = false;    //  Not ours: wait on
            zmsg_destroy (&msg);
            if (done)
                break;
        }
    }
    zsock_destroy (&sock);
    pond_keys_watch_destroy (&watch);
    return json;
}
