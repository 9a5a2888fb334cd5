/*  pond_mobile_view: one denormalized document per customer, ready for an
    app screen.

    Applies LABEL_ADDED, LABEL_REMOVED, QUACKED, BUTTON_CLICKED,
    BADGE_GRANTED and BADGE_REMOVED. View: "customer/ID" ->
      {"customer": ID,
       "inventory": [{"label", "container" (or null), "since"}],
       "containers": {"c1": {"state": "LABELED", "label": "milk"},
                      "c2": {"state": "UNLABELED"}},
       "quacks": N, "clicks": N,
       "badges": [{"name", "granted_ts", "rules_version"}],
       "updated_seq": S, "updated_ts": T}
    inventory is sorted by label, then container (none first); containers
    by id; badges are in the order granted. For this view LABEL_REMOVED
    removes the item from the inventory and turns the container UNLABELED
    (whatever the inventory held in it goes too; without a container it
    removes every entry of that label and unlabels their containers). A
    container holds one label: LABEL_ADDED on a container labelled
    otherwise replaces its inventory entry. Labels compare exactly.
    updated_seq / updated_ts are the seq and event time of the last event
    applied for the customer. Events without a label (LABEL_*) or a badge
    (BADGE_*) are counted in "skipped" and ignored.

    Query: a customer id -> the document; ERROR 404 if unknown.
*/
#ifndef POND_MOBILE_VIEW_H_INCLUDED
#define POND_MOBILE_VIEW_H_INCLUDED

#include "pond_actors.h"

#ifdef __cplusplus
extern "C" {
#endif

#define POND_MOBILE_VIEW_NAME "mobile-view"

//  Fill spec for pond_actor_main
void
    pond_mobile_view_spec (pond_actor_spec_t *spec);

#ifdef __cplusplus
}
#endif

#endif
