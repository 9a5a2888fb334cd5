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
