/*  pond-alexa-view: the Alexa-style inventory view as a process. See
    pond_alexa_view.h for what it keeps and answers; pond_actor.h for the
    options.
*/
#include "pond_alexa_view.h"

int
main (int argc, char *argv [])
{
    pond_actor_spec_t spec;
    pond_alexa_view_spec (&spec);
    return pond_actor_main (&spec, argc, argv,
                            "Ask: pond query alexa-view CUSTOMER \"what do I have?\"\n"
                            "     pond query alexa-view CUSTOMER \"do I have milk?\"\n");
}
