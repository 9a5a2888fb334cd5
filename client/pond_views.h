/*  pond_views: the views of a mesh by the names users give them.

    Each view is kept by one actor, reached through its query socket
    (pond_actor_link) under the actor's name. Users name a view by that
    name or by its short alias: quacks (quack-counter), badges
    (badge-granter), alexa (alexa-view), mobile (mobile-view). `pond
    query` and pond-gateway's /v1/views/VIEW/ENTITY both take either.
*/
#ifndef POND_VIEWS_H_INCLUDED
#define POND_VIEWS_H_INCLUDED

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

//  The four actors of a mesh, in start order, and how many
#define POND_VIEWS 4
extern const char *const pond_views_actors [POND_VIEWS];

//  The actor a view name or alias means, or NULL if none.
const char *
    pond_views_actor (const char *view);

#ifdef __cplusplus
}
#endif

#endif
