/*
 * store/: a content-addressed store for snapshots, with no knowledge of VMs.
 *
 * Guest memory is cut into 4 KiB pages, each named by its SHA-256; all-zero
 * pages are recorded in the page map and never stored. Named blobs (a VM's
 * state file) and the manifests themselves are cut into chunks the same way.
 * Chunks are zstd-compressed (or kept raw when that does not pay) into
 * append-only pack files; an LMDB environment maps digests to pack offsets
 * and snapshot names to manifests. Layout and formats: docs/store-format.md.
 *
 * Any number of processes may read while one writes. Every chunk read is
 * checked against its digest. Every function returns 0 (or a documented
 * positive value) on success, or a negative errno after logging one line
 * that names what failed:
 *   -ENOENT   no such snapshot, blob or store
 *   -EEXIST   a snapshot of that name exists
 *   -EBUSY    another process is writing (with STORE_OPEN_NOWAIT)
 *   -EBADMSG  stored data is damaged (digest mismatch, bad record, short pack)
 *   -EUCLEAN  the LMDB index is damaged
 *   -EINVAL   a bad argument
 * and other errno values from the system (-ENOSPC, -EIO, -ENOMEM, ...).
 *
 * Open a store once per process and share the handle: LMDB forbids opening
 * one environment twice in a process. A store handle and a snapshot handle
 * may be used from several threads; a writer belongs to one thread.
 */
#ifndef SNAPVM_STORE_H
#define SNAPVM_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_PAGE_SIZE	    4096
#define STORE_DIGEST_SIZE   32
#define STORE_NAME_MAX	    64	/* snapshot and blob names: [A-Za-z0-9._-], not starting with '.' */
#define STORE_CPU_ID_MAX    255 /* bytes of the CPU identity string */
#define STORE_KV_MAX	    16	/* free-form key/value pairs per snapshot */
#define STORE_KEY_MAX	    64
#define STORE_VALUE_MAX	    255
#define STORE_BLOB_MAX	    16		 /* named blobs per snapshot */
#define STORE_RAM_MAX	    (1ULL << 40) /* guest RAM a snapshot may describe */
#define STORE_BLOB_SIZE_MAX (1ULL << 30)

struct store;
struct store_writer;
struct store_snapshot;

enum store_open_flags {
	STORE_OPEN_READ = 0,	    /* read only; the store must exist */
	STORE_OPEN_WRITE = 1 << 0,  /* may also write; creates the store if it is missing */
	STORE_OPEN_NOWAIT = 1 << 1, /* a write fails (-EBUSY) rather than wait for another */
};

/* Fills dir with $SNAPVM_STORE, else $HOME/.local/share/snapvm. */
void store_dir_default(char *dir, size_t size);
/* 0 if name may name a snapshot or a blob, else -EINVAL (logs nothing). */
int store_name_check(const char *name);
/* Formats a digest as 64 lowercase hex digits and a NUL. */
void store_digest_hex(const uint8_t digest[STORE_DIGEST_SIZE], char hex[2 * STORE_DIGEST_SIZE + 1]);

/* Opens the store in dir with STORE_OPEN_* flags; -ENOENT if there is none and not writing. */
int store_open(const char *dir, unsigned flags, struct store **store);
/* The local directory of the store: dir itself, or a RADOS store's cache directory. */
const char *store_local_dir(const struct store *store);
/* True for a store in a RADOS pool ("rados:POOL..."). */
bool store_is_remote(const struct store *store);
/*
 * Makes the chunks of count pages readable locally at once (parallel reads
 * from a RADOS pool into the cache); 0 at once for a local store. A page
 * that cannot be fetched is reported as store_page_read would.
 */
int store_pages_fetch(struct store_snapshot *snapshot, const uint32_t *pages, size_t count);
/* A RADOS store: forgets the pack bytes cached locally, so that reads come from the pool. */
void store_cache_clear(struct store *store);
/* True if page can be read without a round trip to a remote store (always, for a local one). */
bool store_page_cached(struct store_snapshot *snapshot, uint64_t page);
/* Closes the store; every snapshot handle and writer must be closed first. */
void store_close(struct store *store);

/* Called now and then by long operations: what is being done, and how far. */
typedef void store_progress_fn(void *opaque, const char *what, uint64_t done, uint64_t total);
/* Sets (or with NULL clears) the progress callback of gc, verify, export and import. */
void store_progress_set(struct store *store, store_progress_fn *fn, void *opaque);

/* ---- Writing a snapshot ---- */

struct store_kv {
	const char *key;
	const char *value;
};

/* What a snapshot records besides its pages and blobs. */
struct store_commit_info {
	uint64_t created_ns;	   /* wall-clock time; 0 means now */
	const char *parent;	   /* the snapshot this one was restored from, or NULL */
	const char *cpu_id;	   /* host CPU identity, free-form, or NULL */
	const struct store_kv *kv; /* up to STORE_KV_MAX free-form pairs */
	size_t kv_count;
};

struct store_write_stats {
	uint64_t pages;	     /* guest pages put */
	uint64_t zero_pages; /* of which all zero (not stored) */
	uint64_t dup_pages;  /* of which already stored, here or in this snapshot */
	uint64_t new_chunks; /* chunks added to packs (pages, blobs, manifest) */
	uint64_t new_bytes;  /* bytes added to packs */
};

/*
 * Starts snapshot `name` of a guest with ram_size bytes of RAM (a multiple of
 * 4 KiB, at most STORE_RAM_MAX). Takes the store's writer lock until commit
 * or abort (other writes wait for it, even from this process); -EEXIST if the
 * name is taken. Nothing is visible until commit.
 */
int store_snapshot_begin(struct store *store, const char *name, uint64_t ram_size,
			 struct store_writer **writer);
/* Stores count guest pages from mem as pages first..first+count-1; pages never put are zero. */
int store_snapshot_put_pages(struct store_writer *writer, uint64_t first, const void *mem,
			     uint64_t count);
/* Stores a named blob (at most STORE_BLOB_SIZE_MAX bytes), e.g. the VM state file. */
int store_snapshot_put_blob(struct store_writer *writer, const char *name, const void *data,
			    size_t len);
/*
 * Makes the snapshot durable and visible in one index commit after its packs
 * are synced, fills stats if not NULL, and frees the writer (also on error).
 */
int store_snapshot_commit(struct store_writer *writer, const struct store_commit_info *info,
			  struct store_write_stats *stats);
/* Drops everything written and frees the writer. */
void store_snapshot_abort(struct store_writer *writer);

/* ---- Reading a snapshot ---- */

/* Opens snapshot `name` for reading: loads and checks its manifest. */
int store_snapshot_open(struct store *store, const char *name, struct store_snapshot **snapshot);
/* Closes the snapshot; pack descriptors handed out by store_page_locate close with it. */
void store_snapshot_close(struct store_snapshot *snapshot);
/*
 * Before a jail: looks up every chunk of the snapshot and opens its packs,
 * then store_seal()s the store, so that its pages stay readable through
 * these descriptors alone. 0, -EOPNOTSUPP (as store_seal), or -errno (the
 * store has said why).
 */
int store_snapshot_seal(struct store_snapshot *snapshot);
/*
 * The lookups of store_snapshot_seal without the seal, for a snapshot opened
 * ahead of its use (a warm process): the seal then has none left. 0 or
 * -errno (the store has said why).
 */
int store_snapshot_resolve(struct store_snapshot *snapshot);
/*
 * Whether the snapshot's name still names what was opened: false once it
 * was deleted, or replaced by another snapshot of that name. Chunks moved
 * by a gc since do not matter: the packs held open keep their bytes.
 */
bool store_snapshot_current(struct store_snapshot *snapshot);
/*
 * Closes the index and the pack directory: no path or directory of the
 * store stays open; packs open stay readable; any other use fails (-EPERM).
 * 0, or -EOPNOTSUPP for a store that cannot be sealed (RADOS).
 */
int store_seal(struct store *store);
/* The snapshot's metadata and sizes as recorded at commit (no unique_bytes, no blobs). */
const struct store_snapshot_info *store_snapshot_meta(const struct store_snapshot *snapshot);
/* Guest pages the snapshot describes (its RAM size / 4 KiB). */
uint64_t store_snapshot_page_count(const struct store_snapshot *snapshot);
/* True if page is all zero (or out of range). */
bool store_page_is_zero(const struct store_snapshot *snapshot, uint64_t page);
/* Reads page into buf (4 KiB): one pread, one decompress, one digest check. */
int store_page_read(struct store_snapshot *snapshot, uint64_t page, void *buf);

/* Where a stored chunk is, for callers that batch their own reads (io_uring). */
struct store_chunk_loc {
	int fd;		     /* pack file to read from; open until store_snapshot_close */
	uint32_t length;     /* bytes to read at offset: record header and payload */
	uint64_t offset;     /* where the chunk's record starts in the pack */
	uint64_t pack;	     /* pack id, for messages */
	uint32_t raw_len;    /* bytes the chunk decodes to */
	uint32_t stored_len; /* payload bytes after the header */
	uint32_t codec;	     /* 0: payload stored raw, 1: one zstd frame */
	uint8_t digest[STORE_DIGEST_SIZE];
};

#define STORE_PAGE_ZERO 1
/* Locates page's chunk; returns STORE_PAGE_ZERO (loc untouched) for a zero page. */
int store_page_locate(struct store_snapshot *snapshot, uint64_t page, struct store_chunk_loc *loc);
/* Checks and decodes a record read at loc (loc->length bytes) into out (loc->raw_len bytes). */
int store_chunk_decode(const struct store_chunk_loc *loc, const void *record, void *out);
/*
 * The same for page's chunk: a damaged chunk is reported as that page of the
 * snapshot, once per open snapshot (threads that meet it too say nothing).
 */
int store_page_decode(struct store_snapshot *snapshot, uint64_t page,
		      const struct store_chunk_loc *loc, const void *record, void *out);
/* Reads the whole blob `name` into a malloc'ed buffer; -ENOENT if there is none. */
int store_blob_read(struct store_snapshot *snapshot, const char *name, uint8_t **data, size_t *len);

/* ---- Working sets: the pages a restore touched, in order ---- */

/* Records the ordered page list of snapshot `name` (replacing any earlier one), atomically. */
int store_workset_put(struct store *store, const char *name, const uint32_t *pages, size_t count);
/* Reads it back as a malloc'ed array; -ENOENT if none was recorded. */
int store_workset_get(struct store *store, const char *name, uint32_t **pages, size_t *count);
/* Copies the working set's chunks, in its order, into a new pack so that prefetch reads are
 * sequential. */
int store_snapshot_relayout(struct store *store, const char *name);

/* ---- Listing and housekeeping ---- */

struct store_snapshot_info {
	char name[STORE_NAME_MAX + 1];
	char parent[STORE_NAME_MAX + 1]; /* "" when none */
	char cpu_id[STORE_CPU_ID_MAX + 1];
	uint64_t created_ns;
	uint64_t ram_size;	/* logical bytes of guest memory */
	uint64_t nonzero_pages; /* pages that are not all zero */
	uint64_t blob_bytes;	/* logical bytes of its blobs */
	uint64_t chunks;	/* distinct chunks it references */
	uint64_t stored_bytes;	/* pack bytes of those chunks: what it would take alone */
	uint64_t unique_bytes;	/* pack bytes no other snapshot shares (store_snapshot_info only) */
	uint64_t workset_pages; /* pages in its working set, 0 if none */
	size_t kv_count;
	struct {
		char key[STORE_KEY_MAX + 1];
		char value[STORE_VALUE_MAX + 1];
	} kv[STORE_KV_MAX];
	size_t blob_count; /* store_snapshot_info only */
	struct {
		char name[STORE_NAME_MAX + 1];
		uint64_t len;
	} blobs[STORE_BLOB_MAX];
};

/* Calls fn for every snapshot in name order (sizes from its record; no unique_bytes, no blobs). */
int store_list(struct store *store,
	       void (*fn)(const struct store_snapshot_info *info, void *opaque), void *opaque);
/* Describes one snapshot fully, reading its manifest to work out unique_bytes. */
int store_snapshot_info(struct store *store, const char *name, struct store_snapshot_info *info);
/* Deletes a snapshot and drops its chunk references; store_gc reclaims the space. */
int store_snapshot_remove(struct store *store, const char *name);

struct store_usage {
	uint64_t snapshots;
	uint64_t logical_bytes; /* guest RAM and blobs of every snapshot */
	uint64_t nonzero_bytes; /* of which not zero pages */
	uint64_t chunks;	/* distinct chunks stored */
	uint64_t chunk_bytes;	/* their decoded bytes */
	uint64_t stored_bytes;	/* their bytes in packs, record headers included */
	uint64_t dead_bytes;	/* pack bytes nothing references (gc reclaims them) */
	uint64_t pack_bytes;	/* size of every pack */
	uint64_t packs;
	uint64_t index_bytes;	  /* size of the LMDB file */
	double dedup_ratio;	  /* nonzero_bytes / chunk_bytes */
	double compression_ratio; /* chunk_bytes / stored_bytes */
};

/* Adds up what the store holds. */
int store_usage_get(struct store *store, struct store_usage *usage);

struct store_gc_stats {
	uint64_t chunks_freed;	  /* unreferenced chunks dropped from the index */
	uint64_t chunks_moved;	  /* live chunks copied into new packs */
	uint64_t packs_rewritten; /* packs replaced (or deleted when nothing in them lived) */
	uint64_t packs_written;
	uint64_t orphans_removed; /* pack files left by crashed writers */
	uint64_t refcounts_fixed; /* reference counts found wrong and corrected */
	uint64_t bytes_before;	  /* pack bytes before and after */
	uint64_t bytes_after;
};

/*
 * Reclaims unreferenced chunks: copies the live chunks of packs holding dead
 * ones into new packs, switches the index in one commit, then deletes the
 * old packs. Safe against a crash at any point and against readers.
 */
int store_gc(struct store *store, struct store_gc_stats *stats);

/* One damaged chunk, as store_verify reports it. */
struct store_damage {
	uint8_t digest[STORE_DIGEST_SIZE];
	uint64_t pack;
	uint64_t offset;
	const char *reason;
};

struct store_verify_report {
	/* Called for each damaged chunk and each snapshot it makes unreadable; may be NULL. */
	void (*chunk_damaged)(void *opaque, const struct store_damage *damage);
	void (*snapshot_damaged)(void *opaque, const char *name, const char *reason);
	void *opaque;
	/* Filled by store_verify. */
	uint64_t chunks_checked;
	uint64_t bytes_checked;
	uint64_t damaged_chunks;
	uint64_t damaged_snapshots;
	uint64_t index_errors; /* bad records, wrong reference counts */
};

/*
 * Reads and checks every chunk of snapshot `name` (all chunks and the whole
 * index when NULL) against its digest. 0 when all is well, -EBADMSG when
 * anything is damaged (each reported through report).
 */
int store_verify(struct store *store, const char *name, struct store_verify_report *report);

/* Writes snapshot `name` and all its chunks into one self-contained file at path. */
int store_export(struct store *store, const char *name, const char *path);
/*
 * Imports a file made by store_export, as `name` (NULL: the exported name,
 * copied to imported_name if not NULL). Checks it whole first; a damaged or
 * truncated file adds nothing.
 */
int store_import(struct store *store, const char *path, const char *name,
		 char imported_name[STORE_NAME_MAX + 1]);

#endif
