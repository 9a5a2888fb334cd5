/*  pond_test_http: a raw HTTP/1.1 client for the gateway's tests. See
    pond_test_http.h.
*/
#define _GNU_SOURCE    //  strcasestr
#include "pond_test_http.h"
#include "pond_harness.h"

#include <arpa/inet.h>
#include <czmq.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int
pond_http_connect (int port, int rcvbuf)
{
    return pond_http_connect_from (port, rcvbuf, NULL);
}

int
pond_http_connect_from (int port, int rcvbuf, const char *source)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    if (rcvbuf > 0)
        setsockopt (fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (source) {
        struct sockaddr_in local = { .sin_family = AF_INET };
        inet_pton (AF_INET, source, &local.sin_addr);
        if (bind (fd, (struct sockaddr *) &local, sizeof local) != 0) {
            close (fd);
            return -1;
        }
    }
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) port) };
    inet_pton (AF_INET, "127.0.0.1", &addr.sin_addr);
    if (connect (fd, (struct sockaddr *) &addr, sizeof addr) != 0) {
        close (fd);
        return -1;
    }
    return fd;
}

void
pond_http_send_all (int fd, const char *data, size_t size)
{
    while (size) {
        ssize_t sent = send (fd, data, size, MSG_NOSIGNAL);
        if (sent <= 0)
            return;    //  The server closed: the reply says why
        data += sent;
        size -= (size_t) sent;
    }
}

char *
pond_http_read_all (int fd, int timeout_ms)
{
    size_t size = 0, capacity = 65536;
    char *text = malloc (capacity + 1);
    int64_t deadline = zclock_mono () + timeout_ms;
    while (text && zclock_mono () < deadline) {
        struct pollfd item = { fd, POLLIN, 0 };
        if (poll (&item, 1, (int) (deadline - zclock_mono ())) <= 0)
            break;
        if (size == capacity)
            text = realloc (text, (capacity *= 2) + 1);
        ssize_t got = text ? recv (fd, text + size, capacity - size, 0) : 0;
        if (got <= 0)
            break;
        size += (size_t) got;
    }
    if (text)
        text [size] = 0;
    return text;
}

pond_http_reply_t
pond_http_reply_parse (char *raw)
{
    pond_http_reply_t reply = { 0, raw ? raw : strdup (""), NULL, NULL };
    sscanf (reply.raw, "HTTP/1.1 %d", &reply.status);
    char *end = strstr (reply.raw, "\r\n\r\n");
    if (end) {
        reply.body = end + 4;
        reply.json = cJSON_Parse (reply.body);
    }
    return reply;
}

pond_http_reply_t
pond_http_request (int port, const char *method, const char *path, const char *headers,
                   const char *body)
{
    size_t head_size = strlen (path) + (headers ? strlen (headers) : 0) + 256;
    char *head = malloc (head_size);
    snprintf (head, head_size,
              "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s"
              "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
              method, path, headers ? headers : "", body ? strlen (body) : 0);
    char *raw = NULL;
    int fd = pond_http_connect (port, 0);
    if (fd >= 0) {
        pond_http_send_all (fd, head, strlen (head));
        if (body)
            pond_http_send_all (fd, body, strlen (body));
        raw = pond_http_read_all (fd, 15000);
        close (fd);
    }
    free (head);
    return pond_http_reply_parse (raw);
}

void
pond_http_reply_free (pond_http_reply_t *reply)
{
    free (reply->raw);
    cJSON_Delete (reply->json);
    memset (reply, 0, sizeof *reply);
}

const char *
pond_http_header (const pond_http_reply_t *reply, const char *name, char *value, size_t size)
{
    char key [64];
    snprintf (key, sizeof key, "\r\n%s: ", name);
    const char *at = strcasestr (reply->raw, key);
    if (!at || (reply->body && at > reply->body))
        return NULL;
    at += strlen (key);
    size_t length = strcspn (at, "\r\n");
    snprintf (value, size, "%.*s", (int) (length < size ? length : size - 1), at);
    return value;
}

double
pond_http_json_number (const cJSON *object, const char *key)
{
    return cJSON_GetNumberValue (cJSON_GetObjectItem (object, key));
}

const char *
pond_http_json_string (const cJSON *object, const char *key)
{
    return cJSON_GetStringValue (cJSON_GetObjectItem (object, key));
}

int
pond_http_gateway_port (const char *data_dir)
{
    char path [1024];
    snprintf (path, sizeof path, "%s/gateway.zpl", data_dir);
    zconfig_t *ready = zsys_file_exists (path) ? zconfig_load (path) : NULL;
    const char *url = ready ? zconfig_get (ready, "gateway/url", "") : "";
    int port = strncmp (url, "http://127.0.0.1:", 17) == 0 ? atoi (url + 17) : -1;
    zconfig_destroy (&ready);
    return port > 0 ? port : -1;
}

pid_t
pond_http_gateway_start (const char *data_dir, const char *log_path, int *port_p, ...)
{
    char *argv [64] = { "pond-gateway", "--data", (char *) data_dir };
    va_list args;
    va_start (args, port_p);
    for (int i = 3; i < 63; i++)
        if (!(argv [i] = va_arg (args, char *)))
            break;
    va_end (args);
    *port_p = -1;
    pid_t pid = pond_harness_spawnv (log_path, argv);
    if (pid <= 0)
        return -1;
    char path [1024];
    snprintf (path, sizeof path, "%s/gateway.zpl", data_dir);
    if (pond_harness_wait_file (path, 10000) == 0)
        *port_p = pond_http_gateway_port (data_dir);
    return pid;
}
