/*  pond_quack_counter: how many times each customer quacked, in total and
    per calendar year (UTC, from the event time).

    Applies QUACKED. View: "customer/ID" -> {"customer": ID, "quacks": N,
    "by_year": {"2022": n, ...}, "last_seq": S}. Query (any text): the
    customer's {"customer", "quacks", "by_year"}; ERROR 404 if the customer
    never quacked.
*/
#ifndef POND_QUACK_COUNTER_H_INCLUDED
#define POND_QUACK_COUNTER_H_INCLUDED

#include "pond_actors.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Runtime name: process pond-quack-counter, view DIR/views/quack-counter
#define POND_QUACK_COUNTER_NAME "quack-counter"

//  Fill spec (name, names, description, apply, query; no command, no
//  state).
void
    pond_quack_counter_spec (pond_actor_spec_t *spec);

#ifdef __cplusplus
}
#endif

#endif
