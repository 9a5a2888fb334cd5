/*  pond_gateway_status: the status of a mesh, for people.

    GET /v1/status gathers, as one JSON object, what an operator looks at
    first: the broker's STATS (counters, head, ACK rate; or why it did not
    answer), every process of the mesh with its restarts (from the
    supervisor's DIR/supervisor.zpl when `pond up` runs it), each actor's
    STATUS (its position against the head, live or catching up), and the
    latest events of the log (a short replay of the last N).

    GET / is the status page: one HTML file with its script and style
    inline (no framework, nothing fetched from elsewhere), embedded in the
    binary. It polls /v1/status every two seconds and shows a customer's
    mobile document (GET /v1/views/mobile/ENTITY) for the customer typed in
    its box. In keys mode it sends the token typed in its token box.

    The sockets are made in the calling thread, as the key it speaks as
    (pond_gateway_auth): an app key gets no STATS, and the page says so.
*/
#ifndef POND_GATEWAY_STATUS_H_INCLUDED
#define POND_GATEWAY_STATUS_H_INCLUDED

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define POND_GATEWAY_STATUS_LATEST     10     //  latest events, by default
#define POND_GATEWAY_STATUS_LATEST_MAX 100    //  ?latest=N at most

//  The status of the mesh in data_dir as JSON text (one line), its broker's
//  control socket at control, each view actor's query socket at actors [i]
//  (in the order of pond_views_actors; NULL or "": where its ready file in
//  data_dir says), waiting at most wait_ms for each part; latest events
//  (0: none). Parts that did not
//  answer say why ("error"): a broker down is a status, not a failure.
//  Returns the text (caller frees), or NULL with the HTTP status in
//  *status_p and the reason: 403 when the broker refuses STATS to the key
//  the thread speaks as (the status is for admin keys), 500 out of memory.
char *
    pond_gateway_status_json (const char *data_dir, const char *control, const char *const *actors,
                              int wait_ms, size_t latest, unsigned *status_p, char *reason,
                              size_t size);

//  The status page, HTML (static, NUL-terminated).
const char *
    pond_gateway_status_page (void);

#ifdef __cplusplus
}
#endif

#endif
