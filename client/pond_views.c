/*  pond_views: the views of a mesh by the names users give them.
    See pond_views.h.
*/
#include "pond_views.h"

#include <string.h>

const char *const pond_views_actors [POND_VIEWS] = { "quack-counter", "badge-granter", "alexa-view",
                                                     "mobile-view" };

const char *
pond_views_actor (const char *view)
{
    static const char *const aliases [POND_VIEWS] = { "quacks", "badges", "alexa", "mobile" };
    for (size_t i = 0; view && i < POND_VIEWS; i++)
        if (strcmp (view, pond_views_actors [i]) == 0 || strcmp (view, aliases [i]) == 0)
            return pond_views_actors [i];
    return NULL;
}
