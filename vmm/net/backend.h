/*
 * The host networks behind virtio-net devices (private to vmm/): a TAP
 * device, or a user-mode network (libslirp). A backend moves whole Ethernet
 * frames, each with the 12-byte virtio-net header in front, and never sees
 * the guest's rings.
 *
 * Threads: everything here runs on the VM's event loop thread with the
 * device's lock held, except ops->set_offloads (any thread, lock held).
 * ready() is called from the backend's own loop callbacks only, never from
 * inside an op, so the device may take its lock there.
 */
#ifndef SNAPVM_VMM_NET_BACKEND_H
#define SNAPVM_VMM_NET_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "vmm/vmm.h"

#define NET_HEADER_SIZE 12 /* struct virtio_net_hdr_v1, num_buffers included */
/* The largest frame a backend hands over: a 64 KiB TSO frame, its headers and ours. */
#define NET_FRAME_MAX (NET_HEADER_SIZE + 65536 + 256)

struct event_loop;
struct net_backend;

struct net_backend_ops {
	/* Sends one frame (header first) to the host network; 0 or -errno (the frame is lost). */
	int (*send)(struct net_backend *b, const struct iovec *iov, unsigned count);
	/* Takes the next frame for the guest, header first; its length, 0 if none waits, or -errno.
	 */
	ssize_t (*receive)(struct net_backend *b, uint8_t *frame, size_t size);
	/* Whether to call ready() when frames wait (off while the guest has no room). */
	void (*watch)(struct net_backend *b, bool on);
	/* Lets the host hand over frames with these TUN_F_* offloads; 0 or -errno. */
	int (*set_offloads)(struct net_backend *b, unsigned offloads);
	void (*destroy)(struct net_backend *b);
};

struct net_backend {
	const struct net_backend_ops *ops;
	bool offloads;		     /* the host takes and gives partial checksums and TSO frames */
	struct event_loop *loop;     /* NULL: no host I/O (unit tests) */
	void (*ready)(void *opaque); /* frames wait in receive() */
	void *opaque;
};

/*
 * Attaches to the TAP device `name` (creating it if we may). The backend
 * calls ready(opaque) when frames arrive. NULL if it cannot (logged).
 */
struct net_backend *net_tap_open(const char *name, struct event_loop *loop,
				 void (*ready)(void *opaque), void *opaque);
/* Starts a user-mode network with net's port forwards; NULL if it cannot (logged). */
struct net_backend *net_user_open(const struct vmm_net *net, struct event_loop *loop,
				  void (*ready)(void *opaque), void *opaque);
/* Moves the calling thread into the network namespace at path; 0 or -errno. */
int net_namespace_enter(const char *path);

#endif
