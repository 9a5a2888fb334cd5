/*  pond_endpoints: where a mesh's sockets are, from its data directory
    (the defaults, or the broker's broker.zpl). See pond_client.h.
*/
#include "pond_client_io.h"

int
pond_endpoints_resolve (const char *data_dir, pond_endpoints_t *eps)
{
    assert (eps);
    memset (eps, 0, sizeof (*eps));
    if (!data_dir || !*data_dir)
        data_dir = getenv ("POND_DATA");
    if (!data_dir || !*data_dir)
        data_dir = "./pond-data";
    if (pond_client_io_copy (eps->data_dir, sizeof eps->data_dir, "%s", data_dir)
        || pond_client_io_copy (eps->ingest, sizeof eps->ingest, "ipc://%s/ingest.ipc", data_dir)
        || pond_client_io_copy (eps->pub, sizeof eps->pub, "ipc://%s/pub.ipc", data_dir)
        || pond_client_io_copy (eps->control, sizeof eps->control, "ipc://%s/control.ipc",
                                data_dir))
        return -1;

    char path [POND_ENDPOINT_MAX + 16];
    snprintf (path, sizeof path, "%s/broker.zpl", data_dir);
    if (!zsys_file_exists (path))
        return 0;
    zconfig_t *config = zconfig_load (path);
    if (!config)
        return 0;    //  Being written, or garbage: keep the defaults
    const char *keys [] = { "broker/ingest", "broker/pub", "broker/control" };
    char *slots [] = { eps->ingest, eps->pub, eps->control };
    int rc = 0;
    for (size_t i = 0; i < 3; i++) {
        const char *value = zconfig_get (config, keys [i], NULL);
        if (value && *value && pond_client_io_copy (slots [i], POND_ENDPOINT_MAX, "%s", value))
            rc = -1;
    }
    eps->broker_pid = atoi (zconfig_get (config, "broker/pid", "0"));
    eps->from_broker_file = true;
    zconfig_destroy (&config);
    return rc;
}
