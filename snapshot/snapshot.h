/*
 * snapshot/: captures a running VM's whole state (vCPUs, irqchip, clock,
 * devices, memory) and rebuilds VMs from it. The state file format is in
 * docs/snapshot-format.md; where snapshots are kept is a repository.
 */
#ifndef SNAPVM_SNAPSHOT_H
#define SNAPVM_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/vmm.h"

#define SNAPSHOT_NAME_MAX 64

/* Where snapshots live. */
struct snapshot_repo;

/* Fills dir with $SNAPVM_STORE, else ~/.local/share/snapvm. */
void snapshot_repo_default_dir(char *dir, size_t size);
/* Opens (creating if needed) the repository at dir; 0 or -errno with a message in error. */
int snapshot_repo_open(const char *dir, struct snapshot_repo **repo, char *error,
		       size_t error_size);
void snapshot_repo_close(struct snapshot_repo *repo);
/* 0 if name is a valid snapshot name ([A-Za-z0-9._-], 1-64, not starting with '.'). */
int snapshot_name_check(const char *name, char *error, size_t error_size);

struct snapshot_info {
	char name[SNAPSHOT_NAME_MAX + 1];
	uint64_t created_ns; /* wall clock */
	uint64_t mem_size;
	unsigned cpus;
	uint64_t state_bytes;
	uint64_t memory_bytes; /* stored bytes of guest memory */
};

/* Calls fn for every snapshot, in name order; 0 or -errno. */
int snapshot_list(struct snapshot_repo *repo,
		  void (*fn)(const struct snapshot_info *info, void *opaque), void *opaque);
/* Reads one snapshot's description; -ENOENT if there is none of that name. */
int snapshot_info_get(struct snapshot_repo *repo, const char *name, struct snapshot_info *info,
		      char *error, size_t error_size);
/* Deletes a snapshot; -ENOENT if there is none. */
int snapshot_remove(struct snapshot_repo *repo, const char *name, char *error, size_t error_size);

struct snapshot_stats {
	uint64_t pause_ns;   /* stopping the vCPUs */
	uint64_t capture_ns; /* reading state from KVM and the devices */
	uint64_t write_ns;   /* writing state and memory, durably */
	uint64_t state_bytes;
	uint64_t memory_bytes; /* guest memory bytes written (zero pages are not) */
};

/*
 * Snapshots a running VM as `name`: pauses its vCPUs, captures everything and
 * writes it atomically (a crash leaves no half snapshot). The VM stays
 * paused; vm_resume() lets it go on. 0, or -errno with one line in error.
 */
int snapshot_create(struct vm *vm, struct snapshot_repo *repo, const char *name,
		    struct snapshot_stats *stats, char *error, size_t error_size);

struct snapshot_restore_options {
	const char *name;
	struct vmm_config
		vm; /* console and other host resources; RAM and vCPUs come from the snapshot */
	bool clock_realtime; /* advance the guest's clock to the host's now */
};

/*
 * Checks the snapshot whole, then builds a VM from it with its vCPUs parked:
 * vm_resume() runs it, vm_run() serves it. Returns 0; -EINVAL (or -EPROTO,
 * -ENOENT) with one line in error for a snapshot that cannot be restored, in
 * which case no VM was started; other -errno for host failures.
 */
int snapshot_restore(struct snapshot_repo *repo, const struct snapshot_restore_options *options,
		     struct vm **vm, char *error, size_t error_size);

/* A running VM's control socket and its snapshot-on-ready trigger. */
struct snapshot_control;

/*
 * Serves requests for vm on a Unix socket at path (replacing a stale one),
 * one line each: "snapshot NAME" (the VM stops after it), "snapshot NAME
 * resume", "status", "stop". Replies are one line, "ok ..." or "error ...".
 * Requests run on the VM's event loop thread.
 */
int snapshot_control_listen(struct snapshot_control **control, struct vm *vm,
			    struct snapshot_repo *repo, const char *path, char *error,
			    size_t error_size);
/* Snapshots the VM as `name` when the guest signals ready, then resumes or stops it. */
int snapshot_control_on_ready(struct snapshot_control **control, struct vm *vm,
			      struct snapshot_repo *repo, const char *name, bool resume);
/* Closes the socket (removing it) and frees the control; after vm_run() returned. */
void snapshot_control_close(struct snapshot_control *control);

struct snapshot_invoke_result {
	char reply[4096];     /* the first line the guest printed, without its newline */
	uint64_t restore_ns;  /* from the start of the restore until the VM runs */
	uint64_t reply_ns;    /* from the start of the restore until the reply */
	uint64_t reply_at_ns; /* CLOCK_MONOTONIC when the reply was complete */
};

/*
 * Restores a clone of `name`, sends it one request line on its console,
 * waits up to timeout_ms for the reply line, and tears the clone down.
 * on_reply (may be NULL) runs as soon as the reply is complete, before the
 * teardown, which costs more than the restore on some hosts. 0; -ETIMEDOUT;
 * -EPIPE if the guest stopped without replying; or a restore error (see
 * snapshot_restore) with one line in error.
 */
int snapshot_invoke(struct snapshot_repo *repo, const char *name, const char *request,
		    unsigned timeout_ms, const struct snapshot_restore_options *options,
		    void (*on_reply)(const struct snapshot_invoke_result *result, void *opaque),
		    void *opaque, struct snapshot_invoke_result *result, char *error,
		    size_t error_size);

#endif
