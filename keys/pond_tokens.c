/*  pond_tokens: bearer tokens that stand for a key. See pond_tokens.h.

    KEYS/tokens/NAME holds one line per token: the BLAKE2b-256 of the token
    in hex, a space, the Unix time it was issued. The file is rewritten
    whole (temporary file + rename), so a reader never sees half of it.
*/
#include "pond_tokens.h"
#include "pond_path.h"

#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HASH_SIZE 32
#define LINE_MAX_ 128

//  The hash of text as hex into hex [HASH_SIZE * 2 + 1]
static void
s_hash_hex (const char *text, char *hex)
{
    unsigned char hash [HASH_SIZE];
    crypto_generichash (hash, sizeof hash, (const unsigned char *) text, strlen (text), NULL, 0);
    sodium_bin2hex (hex, HASH_SIZE * 2 + 1, hash, sizeof hash);
}

//  The path of key name's tokens file. Returns 0, or -1 with the reason.
static int
s_path (char *path, size_t size, const char *dir, const char *name, char *err, size_t errlen)
{
    if (pond_keys_check_name (name, err, errlen))
        return -1;
    if (pond_path (path, size, "%s/tokens/%s", dir, name)) {
        snprintf (err, errlen, "keys directory path too long");
        return -1;
    }
    return 0;
}

//  The lines of a tokens file (up to POND_TOKENS_PER_KEY) into lines;
//  returns how many (0 if there is no file)
static int
s_read (const char *path, char lines [][LINE_MAX_])
{
    FILE *file = fopen (path, "r");
    if (!file)
        return 0;
    int count = 0;
    char line [LINE_MAX_];
    while (count < POND_TOKENS_PER_KEY && fgets (line, sizeof line, file)) {
        line [strcspn (line, "\r\n")] = 0;
        if (strlen (line) > HASH_SIZE * 2 && line [HASH_SIZE * 2] == ' ')
            snprintf (lines [count++], LINE_MAX_, "%s", line);
    }
    fclose (file);
    return count;
}

//  Write count lines to path (0600, via a temporary file). Returns 0 or -1.
static int
s_write (const char *path, char lines [][LINE_MAX_], int count, char *err, size_t errlen)
{
    char temp [PATH_MAX + 32];
    snprintf (temp, sizeof temp, "%s.%d.tmp", path, (int) getpid ());
    mode_t mask = umask (077);
    FILE *file = fopen (temp, "w");
    umask (mask);
    if (!file) {
        snprintf (err, errlen, "cannot write %s: %s", temp, strerror (errno));
        return -1;
    }
    for (int i = 0; i < count; i++)
        fprintf (file, "%s\n", lines [i]);
    bool failed = fflush (file) != 0 || fsync (fileno (file)) != 0;
    failed |= fclose (file) != 0;
    if (failed || rename (temp, path)) {
        snprintf (err, errlen, "cannot write %s: %s", path, strerror (errno));
        unlink (temp);
        return -1;
    }
    return 0;
}

int
pond_tokens_issue (const char *dir, const char *name, char *token, size_t size, char *err,
                   size_t errlen)
{
    assert (dir);
    char path [PATH_MAX];
    if (s_path (path, sizeof path, dir, name, err, errlen))
        return -1;
    if (size < POND_TOKEN_MAX + 1) {
        snprintf (err, errlen, "token buffer too small");
        return -1;
    }
    pond_keyring_t *keys = pond_keyring_new (dir, err, errlen);
    if (!keys)
        return -1;
    const pond_key_t *key = pond_keyring_find (keys, name);
    int rc = -1;
    if (!key)
        snprintf (err, errlen, "no key '%s' in %s (pond keys list shows them)", name, dir);
    else if (!streq (pond_key_role (key), "app") && !streq (pond_key_role (key), "device")
             && !streq (pond_key_role (key), "admin"))
        snprintf (err, errlen,
                  "key '%s' is a %s key: tokens are for app, device and admin keys (HTTP "
                  "clients)",
                  name, pond_key_role (key));
    else if (!pond_key_has_secret (key))
        snprintf (err, errlen,
                  "the secret half of key '%s' is not in %s/secret: the gateway speaks to the "
                  "mesh with it, so issue tokens where the gateway's keys directory is",
                  name, dir);
    else
        rc = 0;
    pond_keyring_destroy (&keys);
    if (rc)
        return -1;
    if (sodium_init () < 0) {
        snprintf (err, errlen, "libsodium cannot start");
        return -1;
    }
    char tokens_dir [PATH_MAX];
    snprintf (tokens_dir, sizeof tokens_dir, "%s/tokens", dir);
    if (mkdir (tokens_dir, 0700) && errno != EEXIST) {
        snprintf (err, errlen, "cannot create %s: %s", tokens_dir, strerror (errno));
        return -1;
    }
    char lines [POND_TOKENS_PER_KEY + 1][LINE_MAX_];
    int count = s_read (path, lines);
    if (count >= POND_TOKENS_PER_KEY) {
        snprintf (err, errlen,
                  "key '%s' has %d tokens already: revoke them (pond keys revoke-token %s) "
                  "and issue new ones",
                  name, count, name);
        return -1;
    }
    unsigned char secret [POND_TOKEN_SECRET_HEX / 2];
    randombytes_buf (secret, sizeof secret);
    char hex [POND_TOKEN_SECRET_HEX + 1];
    sodium_bin2hex (hex, sizeof hex, secret, sizeof secret);
    sodium_memzero (secret, sizeof secret);
    snprintf (token, size, "%s.%s", name, hex);
    sodium_memzero (hex, sizeof hex);
    char hash [HASH_SIZE * 2 + 1];
    s_hash_hex (token, hash);
    snprintf (lines [count++], LINE_MAX_, "%s %lld", hash, (long long) time (NULL));
    if (s_write (path, lines, count, err, errlen)) {
        sodium_memzero (token, size);
        return -1;
    }
    return 0;
}

int
pond_tokens_revoke (const char *dir, const char *name, char *err, size_t errlen)
{
    assert (dir);
    char path [PATH_MAX];
    if (s_path (path, sizeof path, dir, name, err, errlen))
        return -1;
    int count = pond_tokens_count (dir, name);
    if (unlink (path) && errno != ENOENT) {
        snprintf (err, errlen, "cannot remove %s: %s", path, strerror (errno));
        return -1;
    }
    return count;
}

int
pond_tokens_count (const char *dir, const char *name)
{
    char path [PATH_MAX], err [256];
    if (s_path (path, sizeof path, dir, name, err, sizeof err))
        return 0;
    char lines [POND_TOKENS_PER_KEY][LINE_MAX_];
    return s_read (path, lines);
}

int
pond_tokens_check (const char *dir, const char *token, char *name, size_t size, char *err,
                   size_t errlen)
{
    assert (dir);
    assert (token);
    size_t length = strlen (token);
    const char *dot = strrchr (token, '.');
    if (length > POND_TOKEN_MAX || !dot || dot == token || strlen (dot + 1) != POND_TOKEN_SECRET_HEX
        || strspn (dot + 1, "0123456789abcdef") != POND_TOKEN_SECRET_HEX) {
        snprintf (err, errlen, "the token is malformed (pond keys token NAME issues one)");
        return -1;
    }
    if (sodium_init () < 0) {    //  Once; thread-safe
        snprintf (err, errlen, "libsodium cannot start");
        return -1;
    }
    char key_name [POND_KEY_NAME_MAX + 1];
    memcpy (key_name, token, (size_t) (dot - token));
    key_name [dot - token] = 0;
    char path [PATH_MAX], cert [PATH_MAX], why [256];
    if (s_path (path, sizeof path, dir, key_name, why, sizeof why)
        || pond_path (cert, sizeof cert, "%s/public/%s.cert", dir, key_name)) {
        snprintf (err, errlen, "the token is malformed (pond keys token NAME issues one)");
        return -1;
    }
    if (access (cert, F_OK)) {
        snprintf (err, errlen, "the token's key was removed");
        return -1;
    }
    char lines [POND_TOKENS_PER_KEY][LINE_MAX_];
    int count = s_read (path, lines);
    char hash [HASH_SIZE * 2 + 1];
    s_hash_hex (token, hash);
    unsigned char given [HASH_SIZE], known [HASH_SIZE];
    sodium_hex2bin (given, sizeof given, hash, HASH_SIZE * 2, NULL, NULL, NULL);
    bool found = false;
    for (int i = 0; i < count; i++) {
        size_t got = 0;
        //  Every line is compared, in constant time
        if (sodium_hex2bin (known, sizeof known, lines [i], HASH_SIZE * 2, NULL, &got, NULL) == 0
            && got == HASH_SIZE)
            found |= sodium_memcmp (given, known, HASH_SIZE) == 0;
    }
    if (!found) {
        snprintf (err, errlen, "the token is unknown or was revoked");
        return -1;
    }
    snprintf (name, size, "%s", key_name);
    return 0;
}
