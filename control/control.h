/*
 * control/: requests to VMs, one line in and one line out. The control
 * socket of a running VM (snapvm run/restore --api-sock) with its client and
 * the snapshot-on-ready trigger, and the request runtime of snapvm invoke: a
 * fresh clone per request, the request on its console. cli/ and serve/ call
 * it; it calls snapshot/ to take snapshots and to restore clones.
 */
#ifndef SNAPVM_CONTROL_H
#define SNAPVM_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "snapshot/snapshot.h"
#include "vmm/vmm.h"

/* A running VM's control socket and its snapshot-on-ready trigger. */
struct control;

/*
 * Serves requests for vm on a Unix socket at path (replacing a stale one),
 * one line each: "snapshot NAME" (the VM stops after it), "snapshot NAME
 * resume", "status", "stop". Replies are one line, "ok ..." or "error ...".
 * Requests run on the VM's event loop thread. clone: as for snapshot_create.
 * 0 or -errno (logged).
 */
int control_listen(struct control **control, struct vm *vm, struct snapshot_clone *clone,
		   struct snapshot_repo *repo, const char *path);
/* Snapshots the VM as `name` when the guest signals ready, then resumes or stops it. */
int control_on_ready(struct control **control, struct vm *vm, struct snapshot_repo *repo,
		     const char *name, bool resume);
/* Closes the socket (removing it) and frees the control; after vm_run() returned. */
void control_close(struct control *control);
/*
 * The client side: sends one request line to the control socket at path and
 * reads the one-line reply (without its newline) into reply. timeout_ms
 * bounds each send and receive (0: none). 0 or -errno (-ETIMEDOUT).
 */
int control_request(const char *path, const char *request, char *reply, size_t size,
		    int timeout_ms);

struct control_invoke_result {
	char reply[4096];     /* the first line the guest printed, without its newline */
	uint64_t restore_ns;  /* from the start of the restore until the VM runs */
	uint64_t reply_ns;    /* from the start of the restore until the reply */
	uint64_t reply_at_ns; /* CLOCK_MONOTONIC when the reply was complete */
	struct snapshot_memory_stats memory; /* paging, up to the reply */
};

/*
 * Restores a clone of options->name, sends it one request line on its
 * console, waits up to timeout_ms for the reply line, and tears the clone
 * down. on_reply (may be NULL) runs as soon as the reply is complete, before
 * the teardown, which costs more than the restore on some hosts. A snapshot
 * without a working set gets one recorded (up to the reply) when the restore
 * pages lazily. 0; -ETIMEDOUT; -EPIPE if the guest stopped without replying;
 * or a restore error (see snapshot_restore). Every failure is logged.
 * start_ns: when the restore began (CLOCK_MONOTONIC), for a caller that
 * opened part of it ahead (invoke --jail); 0: now.
 */
int control_invoke(struct snapshot_repo *repo, const struct snapshot_restore_options *options,
		   uint64_t start_ns, const char *request, unsigned timeout_ms,
		   void (*on_reply)(const struct control_invoke_result *result, void *opaque),
		   void *opaque, struct control_invoke_result *result);

#endif
