/*  pond_ready: ready files written whole. See pond_ready.h. */
#include "pond_ready.h"

int
pond_ready_save (zconfig_t **root_p, const char *path, const char *who)
{
    assert (root_p);
    zconfig_t *root = *root_p;
    *root_p = NULL;
    bool made = root != NULL;    //  zconfig_new may have failed
    char temp [PATH_MAX + 32];
    snprintf (temp, sizeof temp, "%s.%d.tmp", path, (int) getpid ());
    int rc = root ? zconfig_save (root, temp) : -1;
    zconfig_destroy (&root);
    if (rc == 0 && rename (temp, path) == 0)
        return 0;
    zsys_error ("%s: cannot write %s: %s", who, path, made ? strerror (errno) : "no memory");
    unlink (temp);
    return -1;
}
