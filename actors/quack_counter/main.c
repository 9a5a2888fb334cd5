/*  pond-quack-counter: the quack counter as a process. See
    pond_quack_counter.h for what it keeps; pond_actor.h for the options.
*/
#include "pond_quack_counter.h"

int
main (int argc, char *argv [])
{
    pond_actor_spec_t spec;
    pond_quack_counter_spec (&spec);
    return pond_actor_main (&spec, argc, argv, "");
}
