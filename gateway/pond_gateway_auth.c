/*  pond_gateway_auth: who the gateway is, towards the mesh, for a request.
    See pond_gateway_auth.h.

    The sessions sit in an array of at most max_sessions, each with its
    key's identity (NULL in local mode), whether a request uses it now,
    and when it was last used. The secret key file's inode
    and mtime are remembered: a key made again under the same name is
    loaded again, not served with the old pair.
*/
#include "pond_gateway_auth.h"
#include "pond_keys.h"
#include "pond_tokens.h"

#include <czmq.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

struct _pond_gateway_session_t {
    char key [POND_KEY_NAME_MAX + 1];    //  "" in local mode
    pond_keys_identity_t *identity;      //  NULL in local mode
    bool busy;                           //  a request uses it now
    bool kept;                           //  in the array (else dropped at end)
    int64_t used_at;                     //  zclock_mono at the last begin
    ino_t secret_ino;                    //  of the secret key file when loaded
    struct timespec secret_mtime;
    const pond_keys_identity_t *previous;    //  the thread's, to put back at end
};

struct _pond_gateway_auth_t {
    char *data_dir;
    char *keys_dir;    //  NULL in local mode
    pthread_mutex_t lock;
    pond_gateway_session_t **sessions;
    size_t count;
    size_t max;
};

//  The session the calling thread serves now (between begin and end)
static _Thread_local pond_gateway_session_t *s_serving;

static void
s_session_destroy (pond_gateway_session_t **session_p)
{
    pond_gateway_session_t *session = *session_p;
    if (session) {
        pond_keys_identity_destroy (&session->identity);
        free (session);
        *session_p = NULL;
    }
}

pond_gateway_auth_t *
pond_gateway_auth_new (const char *data_dir, const char *keys_dir, size_t max_sessions)
{
    assert (data_dir);
    pond_gateway_auth_t *self = (pond_gateway_auth_t *) zmalloc (sizeof (pond_gateway_auth_t));
    if (!self)
        return NULL;
    self->max = max_sessions ? max_sessions : 1;
    self->data_dir = strdup (data_dir);
    self->keys_dir = keys_dir && *keys_dir ? strdup (keys_dir) : NULL;
    self->sessions = (pond_gateway_session_t **) calloc (self->max, sizeof *self->sessions);
    pthread_mutex_init (&self->lock, NULL);
    if (!self->data_dir || !self->sessions || (keys_dir && *keys_dir && !self->keys_dir))
        pond_gateway_auth_destroy (&self);
    return self;
}

void
pond_gateway_auth_destroy (pond_gateway_auth_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        pond_gateway_auth_t *self = *self_p;
        for (size_t i = 0; i < self->count; i++)
            s_session_destroy (&self->sessions [i]);
        free (self->sessions);
        pthread_mutex_destroy (&self->lock);
        free (self->data_dir);
        free (self->keys_dir);
        free (self);
        *self_p = NULL;
    }
}

bool
pond_gateway_auth_keys (pond_gateway_auth_t *self)
{
    assert (self);
    return self->keys_dir != NULL;
}

//  The token of an Authorization header into token [POND_TOKEN_MAX + 1].
//  Returns 0, or -1 with the reason.
static int
s_bearer (const char *authorization, char *token, char *reason, size_t size)
{
    if (!authorization || !*authorization) {
        snprintf (reason, size,
                  "this gateway runs with keys: send Authorization: Bearer TOKEN (pond keys "
                  "token NAME issues one)");
        return -1;
    }
    size_t length = strnlen (authorization, POND_GATEWAY_AUTH_HEADER_MAX + 1);
    if (length > POND_GATEWAY_AUTH_HEADER_MAX || strncasecmp (authorization, "Bearer ", 7)) {
        snprintf (reason, size, "the Authorization header is not 'Bearer TOKEN'");
        return -1;
    }
    const char *start = authorization + 7;
    while (*start == ' ')
        start++;
    size_t token_length = strcspn (start, " \t");
    if (token_length == 0 || token_length > POND_TOKEN_MAX || start [token_length]) {
        snprintf (reason, size, "the token is malformed (pond keys token NAME issues one)");
        return -1;
    }
    memcpy (token, start, token_length);
    token [token_length] = 0;
    return 0;
}

//  Inode and mtime of key's secret file (0 and zero if missing)
static void
s_secret_stat (pond_gateway_auth_t *self, const char *key, ino_t *ino, struct timespec *mtime)
{
    char path [PATH_MAX];
    struct stat info;
    *ino = 0;
    memset (mtime, 0, sizeof *mtime);
    if (snprintf (path, sizeof path, "%s/secret/%s.cert_secret", self->keys_dir, key)
            < (int) sizeof path
        && stat (path, &info) == 0) {
        *ino = info.st_ino;
        *mtime = info.st_mtim;
    }
}

//  Take a free session of key out of the array (kept there, marked busy),
//  or NULL. With the lock held.
static pond_gateway_session_t *
s_take (pond_gateway_auth_t *self, const char *key, ino_t ino, const struct timespec *mtime)
{
    for (size_t i = 0; i < self->count; i++) {
        pond_gateway_session_t *session = self->sessions [i];
        if (session->busy || !streq (session->key, key))
            continue;
        if (self->keys_dir
            && (session->secret_ino != ino || session->secret_mtime.tv_sec != mtime->tv_sec
                || session->secret_mtime.tv_nsec != mtime->tv_nsec)) {
            //  The key was made again: its old pair is of no use
            s_session_destroy (&self->sessions [i]);
            self->sessions [i] = self->sessions [--self->count];
            return NULL;
        }
        session->busy = true;
        return session;
    }
    return NULL;
}

//  Put a new session in the array if there is room, or in the place of
//  the least recently used free one; else it stays apart (dropped at
//  end). With the lock held.
static void
s_keep (pond_gateway_auth_t *self, pond_gateway_session_t *session)
{
    if (self->count < self->max) {
        self->sessions [self->count++] = session;
        session->kept = true;
        return;
    }
    size_t oldest = self->count;
    for (size_t i = 0; i < self->count; i++)
        if (!self->sessions [i]->busy
            && (oldest == self->count
                || self->sessions [i]->used_at < self->sessions [oldest]->used_at))
            oldest = i;
    if (oldest < self->count) {
        s_session_destroy (&self->sessions [oldest]);
        self->sessions [oldest] = session;
        session->kept = true;
    }
}

pond_gateway_session_t *
pond_gateway_auth_begin (pond_gateway_auth_t *self, const char *authorization, unsigned *status_p,
                         char *reason, size_t size)
{
    assert (self);
    assert (!s_serving);    //  One request at a time per thread
    char key [POND_KEY_NAME_MAX + 1] = "";
    ino_t ino = 0;
    struct timespec mtime = { 0, 0 };
    *status_p = 401;
    if (self->keys_dir) {
        char token [POND_TOKEN_MAX + 1];
        if (s_bearer (authorization, token, reason, size)
            || pond_tokens_check (self->keys_dir, token, key, sizeof key, reason, size))
            return NULL;
        s_secret_stat (self, key, &ino, &mtime);
    }
    pthread_mutex_lock (&self->lock);
    pond_gateway_session_t *session = s_take (self, key, ino, &mtime);
    pthread_mutex_unlock (&self->lock);
    if (!session) {
        session = (pond_gateway_session_t *) zmalloc (sizeof (pond_gateway_session_t));
        if (!session) {
            *status_p = 500;
            snprintf (reason, size, "out of memory");
            return NULL;
        }
        snprintf (session->key, sizeof session->key, "%s", key);
        session->busy = true;
        session->secret_ino = ino;
        session->secret_mtime = mtime;
        if (self->keys_dir) {
            char err [512];
            session->identity = pond_keys_identity_new (self->keys_dir, key, err, sizeof err);
            if (!session->identity) {
                zsys_error ("pond-gateway: cannot serve key '%s': %s", key, err);
                *status_p = 500;
                snprintf (reason, size, "the gateway cannot use key '%s': %s", key, err);
                free (session);
                return NULL;
            }
        }
        pthread_mutex_lock (&self->lock);
        s_keep (self, session);
        pthread_mutex_unlock (&self->lock);
    }
    session->used_at = zclock_mono ();
    session->previous = pond_keys_thread_use (session->identity);
    s_serving = session;
    return session;
}

void
pond_gateway_auth_end (pond_gateway_auth_t *self, pond_gateway_session_t **session_p)
{
    assert (self);
    assert (session_p);
    pond_gateway_session_t *session = *session_p;
    if (!session)
        return;
    *session_p = NULL;
    s_serving = NULL;
    pond_keys_thread_use (session->previous);
    if (!session->kept) {
        s_session_destroy (&session);
        return;
    }
    pthread_mutex_lock (&self->lock);
    session->busy = false;
    pthread_mutex_unlock (&self->lock);
}

bool
pond_gateway_auth_may_see (pond_gateway_auth_t *self, const char *entity, char *reason, size_t size)
{
    assert (self);
    if (!self->keys_dir)
        return true;
    if (!s_serving) {
        snprintf (reason, size, "no key");
        return false;
    }
    char err [512];
    pond_keyring_t *keys = pond_keyring_new (self->keys_dir, err, sizeof err);
    const pond_key_t *key = keys ? pond_keyring_find (keys, s_serving->key) : NULL;
    bool may = key && pond_key_may_query (key, reason, size)
            && pond_key_may_ask (key, entity, reason, size);
    if (key && !may && !entity && streq (pond_key_role (key), "app"))
        snprintf (reason, size, "key '%s' (app) sees only its customers: add entity=%s",
                  pond_key_name (key), pond_key_customers (key));
    if (!key)
        snprintf (reason, size, "key '%s' is gone", s_serving->key);
    pond_keyring_destroy (&keys);
    return may;
}

const char *
pond_gateway_auth_key (pond_gateway_auth_t *self)
{
    (void) self;
    return s_serving && *s_serving->key ? s_serving->key : NULL;
}
