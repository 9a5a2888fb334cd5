/*  pond_ready: the ready files processes write into their data directory
    (DIR/store.zpl, DIR/broker.zpl, DIR/gateway.zpl): where they listen
    and their pid, read by clients, the supervisor and tests. Written
    whole or not at all (a temporary file, then rename), so a reader never
    sees half of one.
*/
#ifndef POND_READY_H_INCLUDED
#define POND_READY_H_INCLUDED

#include <czmq.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Save *root_p to path atomically and destroy it (nulls the caller's
//  pointer, also on failure). Returns 0, or -1 after one log line naming
//  who could not write path and why.
int
    pond_ready_save (zconfig_t **root_p, const char *path, const char *who);

#ifdef __cplusplus
}
#endif

#endif
