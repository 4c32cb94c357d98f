/*
 * A store shared by hosts through a Ceph RADOS pool (private to store/).
 *
 * The pool holds the packs (one object each, named like the local files),
 * one "<pack>.idx" object per pack listing the chunks the index points at
 * in it, and the catalog: the omap of object "snapvm.catalog", keys
 *   pack.<16 hex>  -> pack entry (size, chunks)
 *   snap.<name>    -> snapshot record, exactly as in the local index
 *   ws.<name>      -> working set
 *   next_pack      -> a lower bound for new pack ids (u64)
 * One omap write makes a snapshot visible everywhere. The local store
 * directory (LMDB index and packs/) is a cache of the pool, rebuilt from it.
 * Writers hold a shared lock on "snapvm.lock", gc the exclusive one.
 */
#ifndef SNAPVM_STORE_REMOTE_H
#define SNAPVM_STORE_REMOTE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/backend.h"

#define REMOTE_PREFIX	 "rados:"
#define REMOTE_CATALOG	 "snapvm.catalog"
#define REMOTE_TIMEOUT_S 5

struct remote_spec {
	char pool[128];
	char conf[PATH_MAX];  /* "" for librados' default search */
	char id[64];	      /* client id, default "admin" */
	char cache[PATH_MAX]; /* local cache directory */
	unsigned timeout_s;   /* OSD and monitor operation timeout */
};

struct remote;

/* True if spec names a RADOS store ("rados:POOL..."). */
bool remote_spec_is(const char *spec);
/* Parses rados:POOL[?conf=PATH&id=CLIENT&cache=DIR&timeout=S]; logs and -EINVAL when bad. */
int remote_spec_parse(const char *spec, struct remote_spec *out);
/* Prepares a connection to the cluster, made when first needed (remote_ready). */
int remote_connect(const struct remote_spec *spec, struct remote **out);
/* Waits for the connection: 0, or the error (logged once) that stopped it. */
int remote_ready(struct remote *remote);
void remote_disconnect(struct remote *remote);
/* A backend keeping packs in the pool, with ranges cached in files under cache_dir. */
int backend_rados_create(struct remote *remote, const char *cache_dir, struct backend **out);
/* Forgets every cached range, so that the next reads come from the pool (verify). */
void backend_rados_cache_clear(struct backend *backend);

/* Takes the cluster-wide lock, shared (writers) or exclusive (gc); waits unless !wait. */
int remote_lock(struct remote *remote, bool exclusive, bool wait);
void remote_unlock(struct remote *remote);

/* Reads a whole object into a malloc'ed buffer; -ENOENT if there is none. */
int remote_object_get(struct remote *remote, const char *name, uint8_t **data, size_t *len);
/* Replaces a whole object atomically. */
int remote_object_put(struct remote *remote, const char *name, const void *data, size_t len);
/* Deletes an object; -ENOENT if there is none. */
int remote_object_remove(struct remote *remote, const char *name);
/* Calls fn for every catalog entry in key order; stops when fn returns non-zero. */
int remote_catalog_read(struct remote *remote,
			int (*fn)(void *opaque, const char *key, const void *value, size_t len),
			void *opaque);
struct remote_update {
	const char *const *set_keys; /* set to values */
	const void *const *values;
	const size_t *value_lens;
	size_t set_count;
	const char *const *rm_keys; /* removed */
	size_t rm_count;
	const char *const *absent_keys; /* which must not exist, else -EEXIST and no change */
	size_t absent_count;
};

/* Applies an update to the catalog in one atomic operation. */
int remote_catalog_update(struct remote *remote, const struct remote_update *update);

#endif
