/*  pond-badge-granter: the badge granter as a process. See
    pond_badge_granter.h for the badges, the rules and the recompute
    command; pond_actor.h for the options.
*/
#include <stdio.h>
#include "pond_badge_granter.h"

int
main (int argc, char *argv [])
{
    pond_badge_granter_t *granter = pond_badge_granter_new ();
    if (!granter) {
        fprintf (stderr, "pond-badge-granter: out of memory\n");
        return 1;
    }
    pond_actor_spec_t spec;
    pond_badge_granter_spec (&spec);
    spec.state = granter;
    int rc = pond_actor_main (
        &spec, argc, argv,
        "Recompute every badge under new rules (emits only the differences):\n"
        "  pond recompute badges --rules actors/badge_granter/rules/v2.json\n"
        "Rules: {\"version\": \"v2\", \"badges\": [{\"name\": \"Junior\", \"at\": 15}, ...]}\n");
    pond_badge_granter_destroy (&granter);
    return rc;
}
