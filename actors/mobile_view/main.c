/*  pond-mobile-view: the mobile app's per-customer document as a process.
    See pond_mobile_view.h for the document; pond_actor.h for the options.
*/
#include "pond_mobile_view.h"

int
main (int argc, char *argv [])
{
    pond_actor_spec_t spec;
    pond_mobile_view_spec (&spec);
    return pond_actor_main (&spec, argc, argv, "");
}
