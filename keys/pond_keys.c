/*  pond_keys: CURVE keys, the keys directory, the ZAP handler and the
    process identity. See pond_keys.h.

    Servers authenticate with our own ZAP handler rather than CZMQ's zauth:
    zauth's certificate store aborts the process on two files holding the
    same key, and we need the same view of the directory (role, name,
    customers) in the handler and in the code that reads each message
    anyway. Both use a pond_keyring_t on KEYS/public.
*/
#include "pond_keys.h"
#include "pond_path.h"
#include "pond_thread.h"
#include "pond_event.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define MISS_RESCAN_MS     100      //  unknown key: look again this soon
#define REFUSED_LOGGED_MAX 10000    //  refused keys remembered (logged once)
#define ZAP_ENDPOINT       "inproc://zeromq.zap.01"
#define Z85_KEY_SIZE       40

static const char *s_roles [] = { "broker", "store", "device", "app", "actor", "admin", NULL };

//  ---------------------------------------------------------------------
//  One key

struct _pond_key_t {
    char name [POND_KEY_NAME_MAX + 1];
    char role [16];
    char public_key [Z85_KEY_SIZE + 1];
    char customers [POND_KEY_CUSTOMERS_MAX + 1];
    bool has_secret;
};

const char *
pond_key_name (const pond_key_t *self)
{
    assert (self);
    return self->name;
}

const char *
pond_key_role (const pond_key_t *self)
{
    assert (self);
    return self->role;
}

const char *
pond_key_public (const pond_key_t *self)
{
    assert (self);
    return self->public_key;
}

const char *
pond_key_customers (const pond_key_t *self)
{
    assert (self);
    return self->customers;
}

bool
pond_key_has_secret (const pond_key_t *self)
{
    assert (self);
    return self->has_secret;
}

bool
pond_key_binds (const pond_key_t *self, const char *entity)
{
    assert (self);
    assert (entity);
    size_t len = strlen (entity);
    const char *start = self->customers;
    while (*start) {
        const char *comma = strchr (start, ',');
        size_t size = comma ? (size_t) (comma - start) : strlen (start);
        if (size == len && memcmp (start, entity, len) == 0)
            return true;
        if (!comma)
            break;
        start = comma + 1;
    }
    return false;
}

bool
pond_key_may_publish (const pond_key_t *self, const char *entity, char *reason, size_t size)
{
    assert (self);
    if (streq (self->role, "admin") || streq (self->role, "actor"))
        return true;
    if (streq (self->role, "device") || streq (self->role, "app")) {
        if (pond_key_binds (self, entity))
            return true;
        snprintf (reason, size,
                  "key '%s' (%s) may not publish for '%.128s': it is bound to "
                  "%s%s",
                  self->name, self->role, entity, *self->customers ? "" : "no customer",
                  self->customers);
        return false;
    }
    snprintf (reason, size, "key '%s' (%s) may not publish", self->name, self->role);
    return false;
}

bool
pond_key_may_control (const pond_key_t *self, const char *command, char *reason, size_t size)
{
    assert (self);
    assert (command);
    if (streq (self->role, "admin"))
        return true;
    //  An actor catches up from the log (and replays for its commands)
    if (streq (self->role, "actor")
        && (streq (command, "REPLAY") || streq (command, "CREDIT") || streq (command, "CANCEL")
            || streq (command, "PING")))
        return true;
    snprintf (reason, size, "key '%s' (%s) may not use %.32s on the control socket: %s", self->name,
              self->role, command,
              streq (self->role, "actor") ? "actors may only REPLAY"
                                          : "the control socket is for the admin key");
    return false;
}

bool
pond_key_may_ask (const pond_key_t *self, const char *entity, char *reason, size_t size)
{
    assert (self);
    if (!streq (self->role, "app"))
        return true;    //  actor and admin: anything (may_query said who gets in)
    if (!entity) {
        snprintf (reason, size,
                  "key '%s' (app) may only QUERY about its customers: "
                  "COMMAND, STATUS and DUMP are for actor and admin keys",
                  self->name);
        return false;
    }
    if (pond_key_binds (self, entity))
        return true;
    snprintf (reason, size, "key '%s' (app) may not ask about '%.128s': it is bound to %s%s",
              self->name, entity, *self->customers ? "" : "no customer", self->customers);
    return false;
}

bool
pond_key_may_store (const pond_key_t *self, char *reason, size_t size)
{
    assert (self);
    if (streq (self->role, "broker"))
        return true;
    snprintf (reason, size,
              "key '%s' (%s) may not use the store link: only the broker "
              "talks to the store",
              self->name, self->role);
    return false;
}

bool
pond_key_may_query (const pond_key_t *self, char *reason, size_t size)
{
    assert (self);
    //  The broker runs the commands admins give it (COMMAND on its
    //  control socket) on the actors' query sockets
    if (streq (self->role, "admin") || streq (self->role, "actor") || streq (self->role, "app")
        || streq (self->role, "broker"))
        return true;
    snprintf (reason, size,
              "key '%s' (%s) may not use the query socket: it is for actor, "
              "app, admin and broker keys",
              self->name, self->role);
    return false;
}

//  ---------------------------------------------------------------------
//  Names and files

bool
pond_keys_role_valid (const char *role)
{
    for (size_t i = 0; role && s_roles [i]; i++)
        if (streq (role, s_roles [i]))
            return true;
    return false;
}

int
pond_keys_check_name (const char *name, char *err, size_t errlen)
{
    size_t len = name ? strlen (name) : 0;
    if (len == 0 || len > POND_KEY_NAME_MAX) {
        snprintf (err, errlen, "a key name is 1 to %d characters", POND_KEY_NAME_MAX);
        return -1;
    }
    if (name [0] == '.') {
        snprintf (err, errlen, "a key name must not start with '.'");
        return -1;
    }
    for (size_t i = 0; i < len; i++)
        if (!isalnum ((unsigned char) name [i]) && !strchr ("._-", name [i])) {
            snprintf (err, errlen,
                      "a key name may only hold letters, digits, '.', '_' "
                      "and '-', not '%c'",
                      name [i]);
            return -1;
        }
    return 0;
}

int
pond_keys_check_customer (const char *customer, char *err, size_t errlen)
{
    size_t len = customer ? strlen (customer) : 0;
    if (len == 0 || len > POND_ENTITY_MAX) {
        snprintf (err, errlen, "a customer is 1 to %d bytes, like an entity", POND_ENTITY_MAX);
        return -1;
    }
    for (size_t i = 0; i < len; i++)
        if ((unsigned char) customer [i] < 0x20 || customer [i] == 0x7f
            || strchr (",\"'", customer [i])) {
            snprintf (err, errlen,
                      "a customer must not hold control characters, ',' or "
                      "quotes");
            return -1;
        }
    return 0;
}

//  Create path and its missing parents.
static int
s_mkdir (const char *path, mode_t mode, char *err, size_t errlen)
{
    char copy [PATH_MAX];
    snprintf (copy, sizeof copy, "%s", path);
    for (char *slash = strchr (copy + 1, '/'); slash; slash = strchr (slash + 1, '/')) {
        *slash = 0;
        if (mkdir (copy, 0755) && errno != EEXIST)
            break;    //  the last mkdir says why
        *slash = '/';
    }
    if (mkdir (path, mode) && errno != EEXIST) {
        snprintf (err, errlen, "cannot create %s: %s", path, strerror (errno));
        return -1;
    }
    return 0;
}

int
pond_keys_create (const char *dir, const char *role, const char *name, const char *const *customers,
                  size_t count, char *err, size_t errlen)
{
    assert (dir);
    assert (customers || count == 0);
    if (!pond_keys_role_valid (role)) {
        snprintf (err, errlen,
                  "role must be broker, store, device, app, actor or admin, "
                  "not '%s'",
                  role ? role : "");
        return -1;
    }
    if (pond_keys_check_name (name, err, errlen))
        return -1;
    bool bound = streq (role, "device") || streq (role, "app");
    if (count && !bound) {
        snprintf (err, errlen, "only device and app keys are bound to customers");
        return -1;
    }
    if (streq (role, "device") && count == 0) {
        snprintf (err, errlen, "a device key is bound to at least one customer (--customer ID)");
        return -1;
    }
    char list [POND_KEY_CUSTOMERS_MAX + 1] = "";
    for (size_t i = 0; i < count; i++) {
        if (pond_keys_check_customer (customers [i], err, errlen))
            return -1;
        size_t used = strlen (list);
        if (used + strlen (customers [i]) + 1 >= sizeof list) {
            snprintf (err, errlen, "too many customers: at most %d bytes in all",
                      POND_KEY_CUSTOMERS_MAX);
            return -1;
        }
        snprintf (list + used, sizeof list - used, "%s%s", used ? "," : "", customers [i]);
    }
    char public_dir [PATH_MAX], secret_dir [PATH_MAX], public_path [PATH_MAX],
        secret_path [PATH_MAX], temp [PATH_MAX];
    if (pond_path (public_dir, sizeof public_dir, "%s/public", dir)
        || pond_path (secret_dir, sizeof secret_dir, "%s/secret", dir)
        || pond_path (public_path, sizeof public_path, "%s/%s.cert", public_dir, name)
        || pond_path (secret_path, sizeof secret_path, "%s/%s.cert_secret", secret_dir, name)
        || pond_path (temp, sizeof temp, "%s/.%s.cert.tmp", public_dir, name)) {
        snprintf (err, errlen, "keys directory path too long");
        return -1;
    }
    if (s_mkdir (dir, 0755, err, errlen) || s_mkdir (public_dir, 0755, err, errlen)
        || s_mkdir (secret_dir, 0700, err, errlen))
        return -1;
    if (zsys_file_exists (public_path) || zsys_file_exists (secret_path)) {
        snprintf (err, errlen,
                  "key '%s' exists already in %s (remove it first with: pond "
                  "keys remove --keys %s --name %s)",
                  name, dir, dir, name);
        return -1;
    }
    zcert_t *cert = zcert_new ();
    if (!cert) {
        snprintf (err, errlen, "cannot make a key pair (is libzmq built with CURVE?)");
        return -1;
    }
    zcert_set_meta (cert, "role", "%s", role);
    zcert_set_meta (cert, "name", "%s", name);
    if (count)
        zcert_set_meta (cert, "customers", "%s", list);
    //  The secret half is never readable by others, not even for a moment
    mode_t mask = umask (077);
    int rc = zcert_save_secret (cert, secret_path);
    umask (mask);
    //  The public half appears whole: servers may be reading the directory
    if (rc == 0)
        rc = zcert_save_public (cert, temp);
    if (rc == 0)
        rc = rename (temp, public_path);
    zcert_destroy (&cert);
    if (rc) {
        snprintf (err, errlen, "cannot write the key files in %s: %s", dir, strerror (errno));
        unlink (temp);
        unlink (secret_path);
        return -1;
    }
    return 0;
}

int
pond_keys_remove (const char *dir, const char *name, char *err, size_t errlen)
{
    assert (dir);
    if (pond_keys_check_name (name, err, errlen))
        return -1;
    char public_path [PATH_MAX], secret_path [PATH_MAX];
    if (pond_path (public_path, sizeof public_path, "%s/public/%s.cert", dir, name)
        || pond_path (secret_path, sizeof secret_path, "%s/secret/%s.cert_secret", dir, name)) {
        snprintf (err, errlen, "keys directory path too long");
        return -1;
    }
    int removed = 0;
    removed += unlink (public_path) == 0;
    removed += unlink (secret_path) == 0;
    if (!removed) {
        snprintf (err, errlen, "no key '%s' in %s", name, dir);
        return -1;
    }
    //  Its bearer tokens (pond_tokens) go with it: a new key of the same
    //  name starts with none
    char tokens_path [PATH_MAX];
    if (pond_path (tokens_path, sizeof tokens_path, "%s/tokens/%s", dir, name) == 0)
        unlink (tokens_path);
    return 0;
}

//  ---------------------------------------------------------------------
//  Keyring

struct _pond_keyring_t {
    char dir [PATH_MAX];
    char public_dir [PATH_MAX];
    pond_key_t **keys;    //  sorted by name
    size_t count;
    zhashx_t *by_public;    //  Z85 -> pond_key_t *, in keys
    zhashx_t *by_name;
    uint64_t signature;    //  of public_dir when loaded
    int64_t checked_at;    //  last look at public_dir
    int64_t missed_at;     //  last look for an unknown key
    bool loaded;
    bool quiet;    //  a second view of the same directory: no logs
};

//  A summary of what public_dir holds: changes when a file is added,
//  removed, renamed or rewritten. Order-independent. 0 if unreadable.
static uint64_t
s_signature (const char *path)
{
    DIR *handle = opendir (path);
    if (!handle)
        return 0;
    uint64_t signature = 1;
    struct dirent *entry;
    while ((entry = readdir (handle))) {
        char file [PATH_MAX];
        struct stat info;
        if (pond_path (file, sizeof file, "%s/%s", path, entry->d_name) || stat (file, &info))
            continue;
        uint64_t hash = 1469598103934665603ULL;    //  FNV-1a
        for (const char *c = entry->d_name; *c; c++)
            hash = (hash ^ (uint8_t) *c) * 1099511628211ULL;
        uint64_t facts [] = { (uint64_t) info.st_mtim.tv_sec, (uint64_t) info.st_mtim.tv_nsec,
                              (uint64_t) info.st_size, (uint64_t) info.st_ino };
        for (size_t i = 0; i < 4; i++)
            hash = (hash ^ facts [i]) * 1099511628211ULL;
        signature += hash;
    }
    closedir (handle);
    return signature;
}

static int
s_compare_strings (const void *a, const void *b)
{
    return strcmp (*(char *const *) a, *(char *const *) b);
}

static void
s_keyring_clear (pond_keyring_t *self)
{
    for (size_t i = 0; i < self->count; i++)
        free (self->keys [i]);
    free (self->keys);
    self->keys = NULL;
    self->count = 0;
    zhashx_purge (self->by_public);
    zhashx_purge (self->by_name);
}

//  Make a key from one public cert file; NULL (logged) if it is not usable.
static pond_key_t *
s_key_load (pond_keyring_t *self, const char *path)
{
    zcert_t *cert = zcert_load (path);
    const char *role = cert ? zcert_meta (cert, "role") : NULL;
    const char *name = cert ? zcert_meta (cert, "name") : NULL;
    const char *customers = cert ? zcert_meta (cert, "customers") : NULL;
    const pond_key_t *twin = cert ? (const pond_key_t *) zhashx_lookup (self->by_public,
                                                                        zcert_public_txt (cert))
                                  : NULL;
    char err [256], why [320] = "";
    if (!cert)
        snprintf (why, sizeof why, "cannot be read as a certificate");
    else if (!pond_keys_role_valid (role))
        snprintf (why, sizeof why, "has no valid role (broker, store, device, app, actor, admin)");
    else if (pond_keys_check_name (name, err, sizeof err))
        snprintf (why, sizeof why, "%s", err);
    else if (customers && strlen (customers) > POND_KEY_CUSTOMERS_MAX)
        snprintf (why, sizeof why, "has too many customers");
    else if (twin)
        snprintf (why, sizeof why, "holds the same key as '%s'", twin->name);
    else if (zhashx_lookup (self->by_name, name))
        snprintf (why, sizeof why, "is named '%s' like another key", name);
    pond_key_t *key = NULL;
    if (*why) {
        if (!self->quiet)
            zsys_warning ("pond: keys: %s %s; skipped", path, why);
    }
    else if ((key = (pond_key_t *) zmalloc (sizeof (pond_key_t)))) {
        snprintf (key->name, sizeof key->name, "%s", name);
        snprintf (key->role, sizeof key->role, "%s", role);
        snprintf (key->public_key, sizeof key->public_key, "%s", zcert_public_txt (cert));
        snprintf (key->customers, sizeof key->customers, "%s", customers ? customers : "");
        char secret [PATH_MAX];
        key->has_secret = pond_path (secret, sizeof secret, "%s/secret/%s.cert_secret", self->dir,
                                     key->name)
                           == 0
                       && zsys_file_exists (secret);
    }
    zcert_destroy (&cert);
    return key;
}

//  (Re)load every NAME.cert of public_dir. Returns 0, or -1 if the
//  directory cannot be read (the keys loaded before are kept).
static int
s_keyring_load (pond_keyring_t *self)
{
    uint64_t signature = s_signature (self->public_dir);
    DIR *handle = opendir (self->public_dir);
    if (!handle)
        return -1;
    zlistx_t *files = zlistx_new ();
    zlistx_set_destructor (files, (zlistx_destructor_fn *) zstr_free);
    struct dirent *entry;
    while ((entry = readdir (handle))) {
        size_t len = strlen (entry->d_name);
        if (entry->d_name [0] != '.' && len > 5 && streq (entry->d_name + len - 5, ".cert"))
            zlistx_add_end (files, strdup (entry->d_name));
    }
    closedir (handle);
    size_t total = zlistx_size (files);
    char **names = (char **) calloc (total + 1, sizeof (char *));
    size_t index = 0;
    for (char *name = (char *) zlistx_first (files); name && names;
         name = (char *) zlistx_next (files))
        names [index++] = name;
    if (names)
        qsort (names, total, sizeof (char *), s_compare_strings);

    s_keyring_clear (self);
    self->keys = (pond_key_t **) calloc (total + 1, sizeof (pond_key_t *));
    for (size_t i = 0; names && self->keys && i < total; i++) {
        char path [PATH_MAX];
        if (pond_path (path, sizeof path, "%s/%s", self->public_dir, names [i]))
            continue;
        pond_key_t *key = s_key_load (self, path);
        if (key) {
            self->keys [self->count++] = key;
            zhashx_insert (self->by_public, key->public_key, key);
            zhashx_insert (self->by_name, key->name, key);
        }
    }
    //  Sorted by file name; keys made by `pond keys new` are named so too
    free (names);
    zlistx_destroy (&files);
    if (self->loaded && !self->quiet)
        zsys_info ("pond: keys: %s changed; %zu keys now", self->public_dir, self->count);
    self->signature = signature;
    self->loaded = true;
    return 0;
}

//  A keyring that logs nothing when quiet (a second view of a directory).
static pond_keyring_t *
s_keyring_new (const char *dir, bool quiet, char *err, size_t errlen)
{
    assert (dir);
    pond_keyring_t *self = (pond_keyring_t *) zmalloc (sizeof (pond_keyring_t));
    if (!self)
        return NULL;
    self->quiet = quiet;
    self->by_public = zhashx_new ();
    self->by_name = zhashx_new ();
    if (pond_path (self->dir, sizeof self->dir, "%s", dir)
        || pond_path (self->public_dir, sizeof self->public_dir, "%s/public", dir)) {
        snprintf (err, errlen, "keys directory path too long");
        pond_keyring_destroy (&self);
        return NULL;
    }
    if (s_keyring_load (self)) {
        snprintf (err, errlen,
                  "cannot read the keys in %s: %s (create keys with: pond keys "
                  "new --keys %s ...)",
                  self->public_dir, strerror (errno), dir);
        pond_keyring_destroy (&self);
        return NULL;
    }
    self->checked_at = zclock_mono ();
    return self;
}

pond_keyring_t *
pond_keyring_new (const char *dir, char *err, size_t errlen)
{
    return s_keyring_new (dir, false, err, errlen);
}

void
pond_keyring_destroy (pond_keyring_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        pond_keyring_t *self = *self_p;
        if (self->by_public && self->by_name)
            s_keyring_clear (self);
        zhashx_destroy (&self->by_public);
        zhashx_destroy (&self->by_name);
        free (self);
        *self_p = NULL;
    }
}

const pond_key_t *
pond_keyring_lookup (pond_keyring_t *self, const char *public_key)
{
    assert (self);
    if (!public_key)
        return NULL;
    const pond_key_t *key = (const pond_key_t *) zhashx_lookup (self->by_public, public_key);
    int64_t now = zclock_mono ();
    //  Every few seconds; at once for an unknown key (a key just added),
    //  but not more than ten times a second (a removed key that insists)
    bool look = now - self->checked_at >= POND_KEYS_RESCAN_MS
             || (!key && now - self->missed_at >= MISS_RESCAN_MS);
    if (look) {
        self->checked_at = now;
        if (!key)
            self->missed_at = now;
        if (s_signature (self->public_dir) != self->signature) {
            s_keyring_load (self);
            key = (const pond_key_t *) zhashx_lookup (self->by_public, public_key);
        }
    }
    return key;
}

const pond_key_t *
pond_keyring_find (pond_keyring_t *self, const char *name)
{
    assert (self);
    return name ? (const pond_key_t *) zhashx_lookup (self->by_name, name) : NULL;
}

size_t
pond_keyring_size (pond_keyring_t *self)
{
    assert (self);
    return self->count;
}

const pond_key_t *
pond_keyring_at (pond_keyring_t *self, size_t index)
{
    assert (self);
    return index < self->count ? self->keys [index] : NULL;
}

//  ---------------------------------------------------------------------
//  ZAP handler: lets in the keys of KEYS/public (RFC 27)

typedef struct {
    const char *dir;    //  the keys directory
    pond_keyring_t *keys;
    zhashx_t *refused;    //  keys logged as refused already
} zap_t;

//  Answer one ZAP request.
static void
s_zap_answer (zap_t *self, zsock_t *handler)
{
    zmsg_t *request = zmsg_recv (handler);
    if (!request)
        return;
    zframe_t *version = zmsg_pop (request);
    zframe_t *sequence = zmsg_pop (request);
    char *domain = zmsg_popstr (request);
    char *address = zmsg_popstr (request);
    zframe_t *identity = zmsg_pop (request);
    char *mechanism = zmsg_popstr (request);
    zframe_t *credential = zmsg_pop (request);
    const char *code = "400", *text = "unknown key";
    char client [Z85_KEY_SIZE + 1] = "";
    if (!version || !zframe_streq (version, "1.0") || !mechanism) {
        code = "500";
        text = "bad ZAP request";
    }
    else if (!streq (mechanism, "CURVE") || !credential || zframe_size (credential) != 32)
        text = "CURVE only";
    else {
        zmq_z85_encode (client, zframe_data (credential), 32);
        if (pond_keyring_lookup (self->keys, client)) {
            code = "200";
            text = "OK";
        }
        else if (zhashx_size (self->refused) < REFUSED_LOGGED_MAX
                 && zhashx_insert (self->refused, client, (void *) "") == 0)
            zsys_warning ("pond: refused a connection from %s: key %s is not in %s/public "
                          "(logged once per key)",
                          address ? address : "?", client, self->dir);
    }
    zmsg_t *reply = zmsg_new ();
    zmsg_addstr (reply, "1.0");
    if (sequence)
        zmsg_append (reply, &sequence);
    else
        zmsg_addstr (reply, "");
    zmsg_addstr (reply, code);
    zmsg_addstr (reply, text);
    zmsg_addstr (reply, streq (code, "200") ? client : "");
    zmsg_addmem (reply, NULL, 0);    //  no metadata
    zmsg_send (&reply, handler);
    zframe_destroy (&version);
    zframe_destroy (&sequence);
    zframe_destroy (&identity);
    zframe_destroy (&credential);
    zstr_free (&domain);
    zstr_free (&address);
    zstr_free (&mechanism);
    zmsg_destroy (&request);
}

//  The handler's actor: args is the keys directory. After the start
//  signal it sends "OK" or the reason it cannot run.
static void
s_zap_actor (zsock_t *pipe, void *args)
{
    pond_thread_block_signals (NULL);
    char dir [PATH_MAX];
    snprintf (dir, sizeof dir, "%s", (const char *) args);
    zap_t self = { dir, NULL, zhashx_new () };
    char err [512] = "";
    zsock_t *handler = zsock_new (ZMQ_REP);
    //  The main thread's keyring (pond_keys_sender) logs what is wrong
    self.keys = s_keyring_new (dir, true, err, sizeof err);
    if (!handler)
        snprintf (err, sizeof err, "cannot make the ZAP handler's socket");
    else if (!*err && zsock_bind (handler, ZAP_ENDPOINT))
        snprintf (err, sizeof err,
                  "cannot bind the ZAP handler: %s (another one runs in "
                  "this process?)",
                  zmq_strerror (zmq_errno ()));
    zsock_signal (pipe, 0);
    zstr_send (pipe, *err ? err : "OK");
    zpoller_t *poller = *err ? NULL : zpoller_new (pipe, handler, NULL);
    //  Serve through SIGINT/SIGTERM: the owner ends us with $TERM
    if (poller)
        zpoller_set_nonstop (poller, true);
    while (poller) {
        zsock_t *which = (zsock_t *) zpoller_wait (poller, -1);
        if (which == handler)
            s_zap_answer (&self, handler);
        else if (which == pipe) {
            char *command = zstr_recv (pipe);
            bool term = !command || streq (command, "$TERM");
            zstr_free (&command);
            if (term)
                break;
        }
    }
    if (*err) {
        //  Wait for $TERM, as every actor must
        char *command = zstr_recv (pipe);
        zstr_free (&command);
    }
    zpoller_destroy (&poller);
    zsock_destroy (&handler);
    pond_keyring_destroy (&self.keys);
    zhashx_destroy (&self.refused);
}

//  ---------------------------------------------------------------------
//  Identities: the process's, and the one a thread speaks as for a while

struct _pond_keys_identity_t {
    char dir [PATH_MAX];
    char name [POND_KEY_NAME_MAX + 1];
    zcert_t *cert;                         //  the key pair
    char broker_key [Z85_KEY_SIZE + 1];    //  "" for the broker and the store
};

static struct {
    pond_keys_identity_t id;    //  cert NULL in local mode
    zactor_t *zap;              //  once a server socket was made
    pond_keyring_t *senders;    //  main thread's view of KEYS/public
    bool cleanup_registered;
} s_identity;

//  The identity this thread speaks as instead of the process's, if any
static _Thread_local const pond_keys_identity_t *s_thread_identity;

//  The identity sockets made now use: the thread's, else the process's
//  (its cert NULL in local mode)
static const pond_keys_identity_t *
s_current (void)
{
    return s_thread_identity ? s_thread_identity : &s_identity.id;
}

static void
s_stop_servers (void)
{
    zactor_destroy (&s_identity.zap);
    pond_keyring_destroy (&s_identity.senders);
}

void
pond_keys_reset (void)
{
    s_stop_servers ();
    zcert_destroy (&s_identity.id.cert);
    s_identity.id.dir [0] = 0;
    s_identity.id.name [0] = 0;
    s_identity.id.broker_key [0] = 0;
}

//  Load the public key of server name, which must have one of the roles
//  (NULL-terminated). Returns 0 with the Z85 key in key, or -1 with the
//  reason in err.
static int
s_server_key (const char *dir, const char *name, const char *const *roles, char *key, char *err,
              size_t errlen)
{
    char path [PATH_MAX];
    if (pond_path (path, sizeof path, "%s/public/%s.cert", dir, name)) {
        snprintf (err, errlen, "keys directory path too long");
        return -1;
    }
    zcert_t *cert = zsys_file_exists (path) ? zcert_load (path) : NULL;
    if (!cert) {
        snprintf (err, errlen, "no public key of '%s' in %s/public (%s.cert)", name, dir, name);
        return -1;
    }
    const char *role = zcert_meta (cert, "role");
    bool fits = false;
    for (size_t i = 0; role && roles [i]; i++)
        fits = fits || streq (role, roles [i]);
    if (fits)
        snprintf (key, Z85_KEY_SIZE + 1, "%s", zcert_public_txt (cert));
    else
        snprintf (err, errlen, "%s.cert in %s/public is a '%s' key, not a %s's", name, dir,
                  role ? role : "(no role)", roles [0]);
    zcert_destroy (&cert);
    return fits ? 0 : -1;
}

//  Load key pair name of dir into id (which has no cert yet). Returns 0,
//  or -1 with the reason in err.
static int
s_identity_load (pond_keys_identity_t *id, const char *dir, const char *name, char *err,
                 size_t errlen)
{
    if (pond_keys_check_name (name, err, errlen))
        return -1;
    char secret [PATH_MAX], base [PATH_MAX];
    if (pond_path (secret, sizeof secret, "%s/secret/%s.cert_secret", dir, name)
        || pond_path (base, sizeof base, "%s/secret/%s.cert", dir, name)
        || strlen (dir) >= sizeof id->dir) {
        snprintf (err, errlen, "keys directory path too long");
        return -1;
    }
    if (!zsys_file_exists (secret)) {
        snprintf (err, errlen,
                  "no secret key for '%s': %s is missing (make the key with: "
                  "pond keys new --keys %s --role ROLE --name %s, or copy it here)",
                  name, secret, dir, name);
        return -1;
    }
    zcert_t *cert = zcert_load (base);    //  reads base + "_secret"
    if (!cert || streq (zcert_secret_txt (cert), "0000000000000000000000000000000000000000")) {
        snprintf (err, errlen, "%s is not a secret certificate", secret);
        zcert_destroy (&cert);
        return -1;
    }
    char broker_key [Z85_KEY_SIZE + 1] = "";
    static const char *const broker_roles [] = { "broker", NULL };
    if (!streq (name, POND_KEYS_BROKER) && !streq (name, POND_KEYS_STORE)
        && s_server_key (dir, POND_KEYS_BROKER, broker_roles, broker_key, err, errlen)) {
        zcert_destroy (&cert);
        return -1;
    }
    id->cert = cert;
    strcpy (id->dir, dir);
    strcpy (id->name, name);
    strcpy (id->broker_key, broker_key);
    return 0;
}

int
pond_keys_use (const char *dir, const char *name, char *err, size_t errlen)
{
    assert (dir);
    char scratch [256];
    if (!err) {
        err = scratch;
        errlen = sizeof scratch;
    }
    pond_keys_identity_t id = { .cert = NULL };
    if (s_identity_load (&id, dir, name, err, errlen))
        return -1;
    //  A new directory: servers started for the old one go
    if (!streq (dir, s_identity.id.dir))
        s_stop_servers ();
    zcert_destroy (&s_identity.id.cert);
    s_identity.id = id;
    return 0;
}

bool
pond_keys_active (void)
{
    return s_current ()->cert != NULL;
}

const char *
pond_keys_dir (void)
{
    return s_current ()->cert ? s_current ()->dir : NULL;
}

const char *
pond_keys_as (void)
{
    return s_current ()->cert ? s_current ()->name : NULL;
}

pond_keys_identity_t *
pond_keys_identity_new (const char *dir, const char *name, char *err, size_t errlen)
{
    assert (dir);
    pond_keys_identity_t *self = (pond_keys_identity_t *) zmalloc (sizeof (pond_keys_identity_t));
    if (self && s_identity_load (self, dir, name, err, errlen))
        free (self), self = NULL;
    return self;
}

void
pond_keys_identity_destroy (pond_keys_identity_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        pond_keys_identity_t *self = *self_p;
        assert (self != s_thread_identity);    //  pond_keys_thread_use (previous) first
        zcert_destroy (&self->cert);
        free (self);
        *self_p = NULL;
    }
}

const char *
pond_keys_identity_name (const pond_keys_identity_t *self)
{
    assert (self);
    return self->name;
}

const pond_keys_identity_t *
pond_keys_thread_use (const pond_keys_identity_t *identity)
{
    const pond_keys_identity_t *previous = s_thread_identity;
    s_thread_identity = identity;
    return previous;
}

int
pond_keys_client (zsock_t *sock, const char *server)
{
    assert (sock);
    const pond_keys_identity_t *id = s_current ();
    if (!id->cert)
        return 0;
    char key [Z85_KEY_SIZE + 1];
    char err [512];
    static const char *const broker_roles [] = { "broker", NULL };
    static const char *const actor_roles [] = { "actor", NULL };
    static const char *const store_roles [] = { "store", NULL };
    if (!server || streq (server, POND_KEYS_BROKER)) {
        if (*id->broker_key)
            strcpy (key, id->broker_key);
        else if (s_server_key (id->dir, POND_KEYS_BROKER, broker_roles, key, err, sizeof err)) {
            zsys_error ("pond: cannot use CURVE: %s", err);
            return -1;
        }
    }
    else if (s_server_key (id->dir, server,
                           streq (server, POND_KEYS_STORE) ? store_roles : actor_roles, key, err,
                           sizeof err)) {
        zsys_error ("pond: cannot use CURVE: %s", err);
        return -1;
    }
    zcert_apply (id->cert, sock);
    zsock_set_curve_serverkey (sock, key);
    return 0;
}

int
pond_keys_server (zsock_t *sock)
{
    assert (sock);
    if (!s_identity.id.cert)
        return 0;
    if (!s_identity.zap) {
        char err [512];
        s_identity.senders = pond_keyring_new (s_identity.id.dir, err, sizeof err);
        if (!s_identity.senders) {
            zsys_error ("pond: %s", err);
            return -1;
        }
        s_identity.zap = zactor_new (s_zap_actor, s_identity.id.dir);
        char *status = s_identity.zap ? zstr_recv (s_identity.zap) : NULL;
        if (!status || !streq (status, "OK")) {
            zsys_error ("pond: %s", status ? status : "cannot start the ZAP handler");
            zstr_free (&status);
            s_stop_servers ();
            return -1;
        }
        zstr_free (&status);
        if (!s_identity.cleanup_registered) {
            //  Before zsys's own exit handler, registered earlier, closes the
            //  sockets under the handler's feet
            atexit (pond_keys_reset);
            s_identity.cleanup_registered = true;
        }
        zsys_info ("pond: CURVE with key '%s'; %zu keys let in from %s/public", s_identity.id.name,
                   pond_keyring_size (s_identity.senders), s_identity.id.dir);
    }
    zcert_apply (s_identity.id.cert, sock);
    zsock_set_curve_server (sock, 1);
    zsock_set_zap_domain (sock, "pond");
    return 0;
}

const pond_key_t *
pond_keys_sender (zframe_t *frame)
{
    if (!s_identity.senders || !frame)
        return NULL;
    return pond_keyring_lookup (s_identity.senders, zframe_meta (frame, "User-Id"));
}

//  ---------------------------------------------------------------------
//  Watching a client's handshakes

struct _pond_keys_watch_t {
    zsock_t *monitor;    //  PAIR: the socket's monitor events
    bool refused;
    char reason [640];
    char name [POND_KEY_NAME_MAX + 1];    //  the key the socket speaks with
    char dir [PATH_MAX];
};

pond_keys_watch_t *
pond_keys_watch_new (zsock_t *sock)
{
    assert (sock);
    const pond_keys_identity_t *id = s_current ();
    if (!id->cert)
        return NULL;
    static unsigned int counter = 0;
    char endpoint [96];
    snprintf (endpoint, sizeof endpoint, "inproc://pond-keys-watch-%d-%u", (int) getpid (),
              counter++);
    pond_keys_watch_t *self = (pond_keys_watch_t *) zmalloc (sizeof (pond_keys_watch_t));
    if (!self)
        return NULL;
    strcpy (self->name, id->name);
    strcpy (self->dir, id->dir);
    if (zmq_socket_monitor (zsock_resolve (sock), endpoint,
                            ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
                                | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
        || !(self->monitor = zsock_new (ZMQ_PAIR))
        || zsock_connect (self->monitor, "%s", endpoint)) {
        pond_keys_watch_destroy (&self);
        return NULL;
    }
    zsock_set_rcvtimeo (self->monitor, 0);
    return self;
}

void
pond_keys_watch_destroy (pond_keys_watch_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        pond_keys_watch_t *self = *self_p;
        zsock_destroy (&self->monitor);
        free (self);
        *self_p = NULL;
    }
}

bool
pond_keys_watch_refused (pond_keys_watch_t *self, char *reason, size_t size)
{
    if (!self)
        return false;
    zmsg_t *event;
    while ((event = zmsg_recv (self->monitor))) {
        zframe_t *head = zmsg_first (event);
        zframe_t *address = zmsg_next (event);
        if (head && zframe_size (head) == 6) {
            uint16_t what;
            uint32_t value;
            memcpy (&what, zframe_data (head), 2);
            memcpy (&value, zframe_data (head) + 2, 4);
            char *where = address ? zframe_strdup (address) : NULL;
            if (what == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
                self->refused = false;
            else if (what == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
                self->refused = true;
                snprintf (self->reason, sizeof self->reason,
                          "%.100s refused key '%s' (ZAP %u): the server does not know it; "
                          "is %.120s/public/%s.cert in the server's keys directory?",
                          where ? where : "the server", self->name, value, self->dir, self->name);
            }
            else if (what == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
                self->refused = true;
                snprintf (self->reason, sizeof self->reason,
                          "the CURVE handshake with %.100s failed (protocol error 0x%x): the "
                          "server runs without keys, or with another key than the one in %.120s",
                          where ? where : "the server", value, self->dir);
            }
            zstr_free (&where);
        }
        zmsg_destroy (&event);
    }
    if (self->refused && reason)
        snprintf (reason, size, "%s", self->reason);
    return self->refused;
}
