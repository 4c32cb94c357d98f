/* The store handle and helpers shared by the store's operations (private to store/). */
#ifndef SNAPVM_STORE_INTERNAL_H
#define SNAPVM_STORE_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "store/store.h"
#include "store/backend.h"
#include "store/dset.h"
#include "store/index.h"
#include "store/manifest.h"
#include "store/pack.h"

struct store {
	char dir[PATH_MAX];
	unsigned flags;
	struct index index;
	struct backend *backend;
	dev_t dev; /* of the store directory: one open per process */
	ino_t ino;
	pid_t pid;		     /* of the process that opened it */
	struct remote *remote;	     /* a RADOS store: dir is the local cache */
	struct kv_list *remote_base; /* the pool's catalog as last seen (remote_sync.c) */
	pthread_mutex_t remote_sync; /* one pull or push at a time (pager threads pull too) */
	bool lock_exclusive;	     /* the next store_lock_take is gc's */
	store_progress_fn *progress;
	void *progress_opaque;
	uint64_t progress_last_ns;
};

/*
 * Set by a thread trying a RADOS store's cached index first: the failures it
 * meets are retried after a pull, so they are not logged.
 */
extern __thread bool store_errors_quiet;
/* Takes the writer lock (waiting, or -EBUSY with STORE_OPEN_NOWAIT); *fd holds it. */
int store_lock_take(struct store *store, int *fd);
/* Releases the writer lock. */
void store_lock_release(struct store *store, int fd);
/* A RADOS store: remote_pull, for operations that must see every host's snapshots; else 0. */
int store_remote_refresh(struct store *store);
/* A RADOS store: brings the local index up to date with the pool's catalog. */
int remote_pull(struct store *store);
/* A RADOS store: publishes what txn changed in the local index, before txn commits. */
int remote_push(struct store *store, MDB_txn *txn);
/*
 * Ends a write transaction of the store's index: when ret is 0, publishes it
 * (remote_push, a RADOS store) and commits it; otherwise, or when that fails,
 * aborts it (txn may be NULL). Returns ret, or the failure of the commit.
 */
int store_txn_end(struct store *store, MDB_txn *txn, int ret);
/* Frees the remote state of the store. */
void remote_state_free(struct store *store);
/* Reports progress to the callback, at most ten times a second (and always at the end). */
void store_progress(struct store *store, const char *what, uint64_t done, uint64_t total);
/* Logs the one line that names a damaged or unreadable chunk, its pack and offset. */
void store_chunk_error(const uint8_t digest[STORE_DIGEST_SIZE], const struct chunk_entry *e,
		       const char *context, const char *reason);

/*
 * Reads the chunks of a blob (count digests, len bytes in all) into a
 * malloc'ed buffer, checking each; context names the blob in messages.
 */
int store_chunks_load(struct store *store, MDB_txn *txn, struct pack_cache *cache,
		      const uint8_t (*digests)[STORE_DIGEST_SIZE], uint32_t count, uint64_t len,
		      uint8_t **out, const char *context);
/* Reads and decodes the record of snapshot name; -ENOENT (logged) if there is none. */
int store_record_load(struct store *store, MDB_txn *txn, const char *name,
		      struct snap_record *record);
/* Reads a snapshot's record and manifest. */
int store_snapshot_load(struct store *store, MDB_txn *txn, struct pack_cache *cache,
			const char *name, struct snap_record *record, struct manifest *manifest);
/* Adds every chunk the snapshot references (manifest, pages, blobs) to set. */
int store_snapshot_refs(const struct snap_record *record, const struct manifest *manifest,
			struct dset *set);
/* Pages in the working set recorded for name, 0 if none; -EUCLEAN if its record is damaged. */
int store_workset_count(struct store *store, MDB_txn *txn, const char *name, uint64_t *count);
struct refs;
/*
 * The one index commit that makes snapshot name exist: a reference to each
 * chunk of refs (new ones inserted), the packs just written and the record.
 * The packs must be committed (synced) already.
 */
int store_snapshot_publish(struct store *store, const char *name, const struct refs *refs,
			   const struct pack_writer *packs, const uint8_t *record, size_t len);
/* Records packs just written by writer, and the next pack id, in txn. */
int store_packs_record(struct store *store, MDB_txn *txn, const struct pack_writer *writer);

#endif
