/*
 * snapshot/: captures a running VM's whole state (vCPUs, irqchip, clock,
 * devices, memory) into the content-addressed store, and rebuilds VMs from
 * it with guest memory paged in as the guest needs it. The state file format
 * is in docs/snapshot-format.md; how memory arrives, in docs/lazy-restore.md.
 */
#ifndef SNAPVM_SNAPSHOT_H
#define SNAPVM_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/vmm.h"

struct store;

#define SNAPSHOT_NAME_MAX 64

/* Where snapshots live: a store (store/store.h) opened for this process. */
struct snapshot_repo;
struct snapshot_clone;

/* Fills dir with $SNAPVM_STORE, else ~/.local/share/snapvm. */
void snapshot_repo_default_dir(char *dir, size_t size);
/*
 * Opens the store at dir; for writing (snapshots, working sets) it is
 * created if missing. 0, or -errno (logged; -ENOENT: no store there and not
 * writing).
 */
int snapshot_repo_open(const char *dir, bool write, struct snapshot_repo **repo);
void snapshot_repo_close(struct snapshot_repo *repo);
/*
 * Before a jail: opens every pack clone's pages are in, then closes the
 * store's index and directories, so that no path of the store stays
 * reachable (clone NULL: only the closing). The store serves nothing else
 * afterwards (no working set, no snapshot). 0 or -errno (logged).
 */
int snapshot_repo_seal(struct snapshot_repo *repo, struct snapshot_clone *clone);
/* True for a store in a RADOS pool, which a jail cannot seal. */
bool snapshot_repo_remote(const struct snapshot_repo *repo);

struct store_snapshot;
/*
 * Opens snapshot `name` ahead of its restore (a warm process, before its
 * request; a jailed one, before its jail locks): its manifest read and, in
 * a local store, every chunk looked up and its pack opened, which the pager
 * (and a jail's seal) would otherwise do while the clone runs. Hand it to
 * the restore (.opened). 0 or -errno, quietly: the restore tries again,
 * and says why it fails. Call it while the process has one thread.
 */
int snapshot_open_ahead(struct snapshot_repo *repo, const char *name,
			struct store_snapshot **snapshot);
/* Closes a snapshot opened ahead that no restore took (NULL: nothing). */
void snapshot_ahead_close(struct store_snapshot *snapshot);
/*
 * Makes the userfaultfd of this process's next lazy restore (prefetch, lazy)
 * now, for a process that gives up its privileges before it restores (the
 * after_read hook below). 0 or -errno (logged).
 */
int snapshot_userfaultfd_open_ahead(void);
/*
 * Removes the mmap mode's raw copies (in $SNAPVM_MMAP_CACHE, else
 * store_dir/cache) of snapshots that are no longer in the store, or were
 * replaced; counts the files and bytes freed.
 */
int snapshot_cache_prune(struct store *store, const char *store_dir, uint64_t *files,
			 uint64_t *bytes);
/* The rule for snapshot names, in words. */
#define SNAPSHOT_NAME_RULE \
	"1-" STRINGIFY(SNAPSHOT_NAME_MAX) " of A-Z a-z 0-9 . _ -, not starting with ."
/* Why a name is refused, a printf format taking the name: for front-ends that reply with it. */
#define SNAPSHOT_NAME_REFUSED "'%s' is not a snapshot name (" SNAPSHOT_NAME_RULE ")"
/* True if name is a valid snapshot name; prints nothing. */
bool snapshot_name_valid(const char *name);
/* 0, or -EINVAL (logged with SNAPSHOT_NAME_REFUSED) if name is not a valid snapshot name. */
int snapshot_name_check(const char *name);

struct snapshot_stats {
	uint64_t pause_ns;   /* stopping the vCPUs */
	uint64_t capture_ns; /* reading state from KVM and the devices */
	uint64_t write_ns;   /* writing state and memory, durably */
	uint64_t state_bytes;
	uint64_t memory_bytes; /* bytes the store added for guest memory (new chunks only) */
};

/* A VM restored from a snapshot, with what pages its memory in. */
struct snapshot_clone;

/*
 * Snapshots a running VM as `name`: pauses its vCPUs, captures everything and
 * writes it into the store in one commit (a crash leaves no half snapshot).
 * clone is the VM's restore (NULL for a booted VM): its pages not yet paged
 * in are fetched first, and the snapshot records its parent. The VM stays
 * paused; vm_resume() lets it go on. 0, or -errno (logged).
 */
int snapshot_create(struct vm *vm, struct snapshot_clone *clone, struct snapshot_repo *repo,
		    const char *name, struct snapshot_stats *stats);

/* How a restored clone's memory arrives (docs/lazy-restore.md). */
enum snapshot_memory_mode {
	SNAPSHOT_MEMORY_PREFETCH, /* lazy, plus the recorded working set in bulk, at once */
	SNAPSHOT_MEMORY_LAZY,	  /* each page from the store when the guest first touches it */
	SNAPSHOT_MEMORY_EAGER,	  /* every page before the vCPUs start */
	SNAPSHOT_MEMORY_MMAP,	  /* a raw copy made once in a cache, mapped copy-on-write */
};

/* Parses "prefetch", "lazy", "eager" or "mmap"; -EINVAL otherwise. */
int snapshot_memory_mode_parse(const char *text, enum snapshot_memory_mode *mode);
const char *snapshot_memory_mode_name(enum snapshot_memory_mode mode);

struct snapshot_restore_options {
	const char *name;
	struct vmm_config vm; /* host resources; RAM, vCPUs and devices come from the snapshot */
	bool clock_realtime;  /* advance the guest's clock to the host's now */
	enum snapshot_memory_mode memory;
	bool record_ws; /* record the pages the guest faults, in order (lazy paging) */
	/*
	 * NULL, or name opened ahead (snapshot_open_ahead), which the restore
	 * takes, even when it fails. Deleted or replaced since, it is closed and
	 * name looked up again: the restore is of what name names now.
	 */
	struct store_snapshot *opened;
	/*
	 * control_invoke calls it once the clone is built, before its first
	 * instruction (cli/jail.c locks the jail there); -ECANCELED: no start,
	 * and the hook has printed why.
	 */
	int (*before_start)(struct snapshot_repo *repo, struct snapshot_clone *clone, void *opaque);
	void *before_start_opaque;
	/*
	 * snapshot_restore calls it once the snapshot is read (its state and
	 * working set; its pages stay to come) and before any part of the VM
	 * is made, for a process that opened every host resource its VM needs
	 * ahead (invoke --warm --jail: KVM, the userfaultfd, the snapshot's
	 * packs), so that the VM is built already jailed. Nonzero: no restore
	 * (-ECANCELED), and the hook has printed why.
	 */
	int (*after_read)(struct snapshot_repo *repo, struct snapshot_clone *clone, void *opaque);
	void *after_read_opaque;
};

/*
 * Checks the snapshot whole, then builds its VM with the vCPUs parked:
 * vm_resume(snapshot_clone_vm()) runs it. 0; -EINVAL (or -EPROTO, -ENOENT)
 * for a snapshot that cannot be restored, in which case no vCPU ran; other
 * -errno for host failures. Every failure is logged.
 */
int snapshot_restore(struct snapshot_repo *repo, const struct snapshot_restore_options *options,
		     struct snapshot_clone **clone);
struct vm *snapshot_clone_vm(const struct snapshot_clone *clone);

struct snapshot_memory_stats {
	uint64_t faults;	   /* guest page faults answered */
	uint64_t pages_faulted;	   /* pages installed to answer them (with neighbours) */
	uint64_t pages_prefetched; /* working-set pages installed ahead of faults */
	uint64_t pages_loaded;	   /* eager and mmap: pages read before the start */
	uint64_t bytes_read;	   /* from the store's packs */
	uint64_t fault_ns;	   /* time spent answering faults */
	uint64_t workset_pages;	   /* the working set used, or recorded */
	uint64_t rss_bytes;	   /* the process's resident memory */
	uint64_t private_bytes;	   /* of which not shared with other processes' files */
};

/* What paging has done so far. */
void snapshot_clone_memory_stats(struct snapshot_clone *clone, struct snapshot_memory_stats *stats);
/*
 * Stops recording and stores the working set with the snapshot (laying its
 * chunks out in that order), if the restore was recording. 0 or -errno.
 */
int snapshot_clone_save_workset(struct snapshot_clone *clone, struct snapshot_repo *repo);
/* True if the clone's memory could not be paged in (the VM was stopped, the cause logged). */
bool snapshot_clone_failed(struct snapshot_clone *clone);
/* Tears the VM down, then the pager. */
void snapshot_clone_destroy(struct snapshot_clone *clone);

/*
 * True if a restore with these options should record a working set: the
 * repo is writable, memory is paged lazily (lazy, prefetch) and the store
 * has no working set for options->name yet (or an unreadable one).
 */
bool snapshot_workset_wanted(struct snapshot_repo *repo,
			     const struct snapshot_restore_options *options);

#endif
