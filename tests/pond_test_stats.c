/*  pond_test_stats: one number from a running broker's STATS.
    See pond_test_stats.h.
*/
#include "pond_test_stats.h"

#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <string.h>

#include "pond_client.h"

uint64_t
pond_test_stat (const char *control, const char *path)
{
    const char *slash = strchr (path, '/');
    cr_assert_not_null (slash, "'%s' is not section/counter", path);
    char err [256];
    char *stats = pond_client_stats (control, 5000, err, sizeof err);
    cr_assert_not_null (stats, "STATS: %s", err);
    cJSON *json = cJSON_Parse (stats);
    char section [16];
    snprintf (section, sizeof section, "%.*s", (int) (slash - path), path);
    cJSON *item = cJSON_GetObjectItem (cJSON_GetObjectItem (json, section), slash + 1);
    cr_assert (cJSON_IsNumber (item), "no %s in %s", path, stats);
    uint64_t value = (uint64_t) cJSON_GetNumberValue (item);
    cJSON_Delete (json);
    free (stats);
    return value;
}

void
pond_test_wait_store_up (const char *control, int timeout_ms)
{
    char err [256] = "";
    int64_t deadline = zclock_mono () + timeout_ms;
    while (true) {
        char *stats = pond_client_stats (control, 2000, err, sizeof err);
        bool up = stats && strstr (stats, "\"store_up\":true");
        free (stats);
        if (up)
            return;
        cr_assert_lt (zclock_mono (), deadline, "the broker does not see its store: %s", err);
        zclock_sleep (50);
    }
}
