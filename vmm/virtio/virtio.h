/*
 * virtio 1.x over MMIO (private to vmm/virtio/): the transport that every
 * device model sits on, and the split-virtqueue walker they all use.
 *
 * A device model embeds a struct virtio_mmio, describes itself with a const
 * struct virtio_model, and only ever sees guest buffers through
 * virtq_pop(): every descriptor there has been checked against guest RAM.
 *
 * Threads: register accesses arrive on vCPU threads; queue notifications
 * (ioeventfd) and host I/O on the event loop's thread, so only the loop's
 * thread calls queue_notify and the models' fd callbacks. Each device has one
 * lock, held by the transport around every register access and every model
 * callback, so a model never needs its own.
 */
#ifndef SNAPVM_VMM_VIRTIO_H
#define SNAPVM_VMM_VIRTIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/device.h"

/* Feature bits every device may offer. */
#define VIRTIO_F_INDIRECT_DESC (1ULL << 28)
#define VIRTIO_F_VERSION_1     (1ULL << 32)

/* Device status bits. */
#define VIRTIO_STATUS_ACKNOWLEDGE 0x01
#define VIRTIO_STATUS_DRIVER	  0x02
#define VIRTIO_STATUS_DRIVER_OK	  0x04
#define VIRTIO_STATUS_FEATURES_OK 0x08
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED	  0x80

/* InterruptStatus bits. */
#define VIRTIO_INTERRUPT_USED_BUFFER 0x1
#define VIRTIO_INTERRUPT_CONFIG	     0x2

/* Split virtqueue layout (virtio 1.2, 2.7). */
#define VIRTQ_DESC_F_NEXT	   1
#define VIRTQ_DESC_F_WRITE	   2
#define VIRTQ_DESC_F_INDIRECT	   4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1

struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

#define VIRTQ_MAX_SIZE	   256 /* the largest queue any device here offers */
#define VIRTQ_MAX_SEGMENTS 64  /* buffers in one chain, indirect ones included */
#define VIRTQ_MAX_INDIRECT 256 /* descriptors in one indirect table */
#define VIRTIO_MAX_QUEUES  3

/* Saved state of one queue: what the driver configured and how far the device got. */
struct virtq_state {
	uint64_t desc_addr;
	uint64_t avail_addr;
	uint64_t used_addr;
	uint16_t size;
	uint16_t ready;
	uint16_t last_avail; /* next avail ring entry the device will take */
	uint16_t used_idx;   /* next used ring entry the device will fill */
};

/* A live queue: its configuration plus what is derived from it. */
struct virtq {
	struct virtq_state s;
	uint16_t max_size;
	const struct guest_memory *mem;
	bool broken_logged;
};

/* One checked guest buffer of a chain; `host` points into guest RAM. */
struct virtq_segment {
	uint8_t *host;
	uint32_t len;
	bool writable;
};

/* A descriptor chain taken from the avail ring. */
struct virtq_chain {
	uint16_t head;
	unsigned count;
	struct virtq_segment segments[VIRTQ_MAX_SEGMENTS];
	uint64_t readable_len; /* bytes in the device-readable segments (which come first) */
	uint64_t writable_len;
};

enum virtq_pop_result {
	VIRTQ_EMPTY,	 /* nothing new in the avail ring */
	VIRTQ_CHAIN,	 /* *chain is a valid chain */
	VIRTQ_BAD_CHAIN, /* chain->head is a malformed chain: return it unused */
	VIRTQ_BROKEN,	 /* the ring itself is corrupt: the device needs a reset */
};

/* Checks that a queue's size and ring addresses are usable; NULL or why not. */
const char *virtq_check(const struct virtq_state *s, uint16_t max_size,
			const struct guest_memory *mem);
/*
 * Takes the next chain from the avail ring and checks every descriptor: in
 * guest RAM, bounded in number, no loops, indirect tables well formed,
 * readable buffers before writable ones. On VIRTQ_BAD_CHAIN or VIRTQ_BROKEN,
 * *why says what was wrong.
 */
enum virtq_pop_result virtq_pop(struct virtq *q, struct virtq_chain *chain, const char **why);
/* Puts a chain back on the used ring with `written` bytes written by the device. */
void virtq_push(struct virtq *q, uint16_t head, uint32_t written);
/* Puts chains back and publishes them together (one frame over merged rx buffers). */
void virtq_push_many(struct virtq *q, const uint16_t *heads, const uint32_t *written,
		     unsigned count);
/*
 * Gives back the last `count` chains taken, none of them pushed, all of them
 * good and taken one after the other: the device will take them again.
 */
void virtq_unpop(struct virtq *q, uint16_t count);
/* Whether the driver asked not to be interrupted for used buffers. */
bool virtq_interrupt_suppressed(const struct virtq *q);
/*
 * Copies up to len bytes out of the chain's readable segments, from byte
 * `offset` of the readable part; returns how many were copied.
 */
size_t virtq_chain_read(const struct virtq_chain *chain, uint64_t offset, void *dst, size_t len);
/* Copies into the writable segments from byte `offset` of the writable part; returns how many. */
size_t virtq_chain_write(const struct virtq_chain *chain, uint64_t offset, const void *src,
			 size_t len);

struct virtio_mmio;

/* What a device model tells the transport about itself. */
struct virtio_model {
	const char *name;
	uint32_t device_id;
	uint64_t features; /* offered, besides VIRTIO_F_VERSION_1 and INDIRECT_DESC */
	unsigned queue_count;
	uint16_t queue_max_size;
	/* Reads device config space (offset, len already within config_size). */
	void (*config_read)(struct virtio_mmio *t, uint32_t offset, uint8_t *data, uint32_t len);
	uint32_t config_size;
	/* The driver has new buffers on queue `index` (lock held). */
	void (*queue_notify)(struct virtio_mmio *t, unsigned index);
	/* The driver set DRIVER_OK: the device is live (lock held; may be NULL). */
	void (*driver_ok)(struct virtio_mmio *t);
	/* The driver reset the device: drop in-flight work (lock held; may be NULL). */
	void (*reset)(struct virtio_mmio *t);
};

/* The transport's registers apart from the queues'. */
struct virtio_mmio_regs {
	uint32_t status;
	uint32_t device_features_sel;
	uint32_t driver_features_sel;
	uint32_t queue_sel;
	uint64_t driver_features;
	uint32_t interrupt_status;
	uint32_t config_generation;
};

/* Saved transport state (the first part of every virtio device's snapshot section). */
struct virtio_mmio_state {
	struct virtio_mmio_regs regs;
	struct virtq_state queues[VIRTIO_MAX_QUEUES];
};

struct virtio_mmio {
	pthread_mutex_t lock;
	const struct virtio_model *model;
	struct device_context ctx;
	struct virtio_mmio_regs regs;
	struct virtq queues[VIRTIO_MAX_QUEUES];
	uint64_t base;	       /* guest-physical address of the register window */
	unsigned irq;	       /* GSI */
	uint64_t features;     /* offered */
	int notify_fd;	       /* QueueNotify, signalled by KVM or the trapped write; -1: no loop */
	bool notify_in_kernel; /* KVM_IOEVENTFD took it */
	int irq_fd;	       /* irqfd, -1 when KVM_IRQ_LINE is used */
	bool error_logged;
};

/*
 * Sets up the transport in the next free slot of ctx->virtio_slots: registers
 * its range, and its ioeventfd and irqfd when ctx has a VM fd. 0 or -errno.
 */
int virtio_mmio_init(struct virtio_mmio *t, const struct virtio_model *model,
		     const struct device_context *ctx);
/* Releases the eventfds (the registered range goes away with the VM). */
void virtio_mmio_destroy(struct virtio_mmio *t);
/* Puts the transport in its reset state (lock held by the caller, or not yet shared). */
void virtio_mmio_reset(struct virtio_mmio *t);
/*
 * device_ops callbacks for any virtio device, whose struct starts with its
 * struct virtio_mmio. reset: from the host side, the model's and the
 * transport's.
 */
void virtio_mmio_device_reset(void *dev);
/*
 * For a transport-only device, whose saved state is a struct
 * virtio_mmio_state and nothing else (console, rng): save and restore under
 * the device's lock; quiesce has nothing to wait for (requests complete as
 * they are taken).
 */
int virtio_mmio_device_quiesce(void *dev);
void virtio_mmio_device_save(void *dev, void *state);
int virtio_mmio_device_restore(void *dev, const void *state);
/* Raises the used-buffer interrupt unless queue `index` suppresses it (lock held). */
void virtio_mmio_notify_used(struct virtio_mmio *t, unsigned index);
/*
 * Reports a broken device: sets NEEDS_RESET, raises a config interrupt and
 * logs `why` once per device (lock held).
 */
void virtio_mmio_fail(struct virtio_mmio *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/*
 * Takes the next good chain from queue `index` (lock held): bad chains are
 * returned unused (logged once), a broken ring fails the device. False when
 * there is nothing (more) to do.
 */
bool virtio_mmio_pop(struct virtio_mmio *t, unsigned index, struct virtq_chain *chain);
/* Returns a chain the device cannot serve unused and logs why, once per device (lock held). */
void virtio_mmio_drop(struct virtio_mmio *t, unsigned index, const struct virtq_chain *chain,
		      const char *why);
/* Whether the device is live: DRIVER_OK set and NEEDS_RESET clear. */
bool virtio_mmio_live(const struct virtio_mmio *t);
/* The acknowledged features. */
uint64_t virtio_mmio_features(const struct virtio_mmio *t);
/* Copies the transport state out (lock held). */
void virtio_mmio_save(struct virtio_mmio *t, struct virtio_mmio_state *state);
/*
 * Checks saved transport state against this device (features, queue sizes,
 * ring addresses in guest RAM) and applies it (lock held). 0 or -EINVAL.
 */
int virtio_mmio_restore(struct virtio_mmio *t, const struct virtio_mmio_state *state);
/* The transport's register handler (exposed for unit tests and the fuzzer). */
void virtio_mmio_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

#endif
