/*  pond_test_http: a raw HTTP/1.1 client for the gateway's tests, over a
    plain TCP socket as any client would speak (one request per
    connection, Connection: close), so that what the tests see is exactly
    what the gateway wrote.
*/
#ifndef POND_TEST_HTTP_H_INCLUDED
#define POND_TEST_HTTP_H_INCLUDED

#include <cjson/cJSON.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int status;          //  0: no reply
    char *raw;           //  status line, headers and body
    const char *body;    //  into raw
    cJSON *json;         //  the body parsed, or NULL
} pond_http_reply_t;

//  One request to 127.0.0.1:port; headers (may be NULL) are extra header
//  lines, each ended by \r\n; body may be NULL. Waits up to 15 s.
pond_http_reply_t
    pond_http_request (int port, const char *method, const char *path, const char *headers,
                       const char *body);

//  Free what a reply holds.
void
    pond_http_reply_free (pond_http_reply_t *reply);

//  The value of header name (copied into value), or NULL.
const char *
    pond_http_header (const pond_http_reply_t *reply, const char *name, char *value, size_t size);

//  The port of the gateway of a mesh (DIR/gateway.zpl), or -1.
int
    pond_http_gateway_port (const char *data_dir);

#ifdef __cplusplus
}
#endif

#endif
