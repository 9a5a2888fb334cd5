/*  pond_test_http: a raw HTTP/1.1 client for the gateway's tests, over a
    plain TCP socket as any client would speak (one request per
    connection, Connection: close), so that what the tests see is exactly
    what the gateway wrote. Its parts (connect, send, read, parse) serve
    the tests that write requests byte by byte or read a stream as it
    comes.
*/
#ifndef POND_TEST_HTTP_H_INCLUDED
#define POND_TEST_HTTP_H_INCLUDED

#include <cjson/cJSON.h>
#include <stddef.h>
#include <sys/types.h>

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

//  A TCP connection to 127.0.0.1:port; rcvbuf > 0 shrinks its receive
//  buffer first (a slow reader whose kernel holds little). Returns the
//  fd, or -1.
int
    pond_http_connect (int port, int rcvbuf);

//  The same from source, a loopback address of this host such as
//  127.0.0.2 (another client address, for per-address limits).
int
    pond_http_connect_from (int port, int rcvbuf, const char *source);

//  Send size bytes of data on fd; stops quietly if the server closes (its
//  reply says why).
void
    pond_http_send_all (int fd, const char *data, size_t size);

//  Read fd until the server closes or timeout_ms pass. Returns what came,
//  "" if nothing (NULL only if out of memory). Caller frees.
char *
    pond_http_read_all (int fd, int timeout_ms);

//  The reply in raw (a status line, headers and body as read), which it
//  takes over (NULL: no reply). Free with pond_http_reply_free.
pond_http_reply_t
    pond_http_reply_parse (char *raw);

//  Free what a reply holds.
void
    pond_http_reply_free (pond_http_reply_t *reply);

//  The value of header name (copied into value), or NULL.
const char *
    pond_http_header (const pond_http_reply_t *reply, const char *name, char *value, size_t size);

//  A number member of a JSON object (a reply's json), NaN if absent or
//  not a number.
double
    pond_http_json_number (const cJSON *object, const char *key);

//  A string member of a JSON object, or NULL.
const char *
    pond_http_json_string (const cJSON *object, const char *key);

//  The port of the gateway of a mesh (DIR/gateway.zpl), or -1.
int
    pond_http_gateway_port (const char *data_dir);

//  Start pond-gateway --data data_dir with the NULL-terminated arguments
//  after port_p, stdout and stderr to log_path, and wait up to 10 s for
//  its port (DIR/gateway.zpl) into *port_p (-1 if it never came). Returns
//  the pid (stop it also when *port_p is -1), or -1 if it did not start.
pid_t
    pond_http_gateway_start (const char *data_dir, const char *log_path, int *port_p, ...);

#ifdef __cplusplus
}
#endif

#endif
