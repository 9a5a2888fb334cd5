/*  pond_store_internal: what pond_cursor needs from pond_store, and no one
    else: the RocksDB handles and the key layout. Not installed, not for
    other modules.
*/
#ifndef POND_STORE_INTERNAL_H_INCLUDED
#define POND_STORE_INTERNAL_H_INCLUDED

#include "pond_be64.h"
#include <rocksdb/c.h>
#include "pond_store.h"

//  Column families, in the order they are opened
typedef enum {
    POND_CF_META = 0,    //  "default"
    POND_CF_LOG,
    POND_CF_BY_NAME,
    POND_CF_BY_ID,
    POND_CF_BY_ENTITY,
    POND_CF_COUNT
} pond_store_cf_t;

//  The separator after a name or an entity in index keys. Neither may hold
//  a control byte, so NAME 0x00 ... sorts before any longer name, and
//  NAME 0x01 is an exclusive upper bound for every key of NAME.
#define POND_KEY_SEP     0x00
#define POND_KEY_SEP_END 0x01

rocksdb_t *
    pond_store_db (pond_store_t *self);
rocksdb_column_family_handle_t *
    pond_store_cf (pond_store_t *self, pond_store_cf_t which);

#endif
