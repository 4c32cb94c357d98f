/*
 * The test guest's virtio-mmio drivers, in ring 3. Every register access is
 * a VM exit (~57 us on PVM hosts), so the drivers touch registers only to
 * set a device up and to notify; completions are found in the used ring,
 * waiting in call_wait() for the device's interrupt when they are not there
 * yet.
 */
#ifndef SNAPGUEST_VIRTIO_H
#define SNAPGUEST_VIRTIO_H

#include "guest.h"

#define VIRTIO_ID_NET	  1
#define VIRTIO_ID_BLOCK	  2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG	  4
#define VIRTIO_ID_VSOCK	  19

#define VQ_SIZE	      16 /* the driver's choice; the devices offer more */
#define VQ_MAX	      3
#define VQ_F_NEXT     1
#define VQ_F_WRITE    2
#define VQ_F_INDIRECT 4

struct vq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vq_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[VQ_SIZE];
	uint16_t used_event;
};

struct vq_used_elem {
	uint32_t id;
	uint32_t len;
};

struct vq_used {
	uint16_t flags;
	uint16_t idx;
	struct vq_used_elem ring[VQ_SIZE];
	uint16_t avail_event;
};

/* One queue's rings, in one page. */
struct vq {
	struct vq_desc desc[VQ_SIZE];
	struct vq_avail avail;
	uint8_t pad[256 - sizeof(struct vq_avail)];
	struct vq_used used;
	uint16_t used_seen; /* used entries consumed */
} __attribute__((aligned(4096)));

struct vdev {
	volatile uint32_t *regs;
	unsigned slot; /* its interrupt vector is VECTOR_VIRTIO + slot */
	unsigned irq;  /* its I/O APIC pin */
	uint32_t device_id;
	bool ready;
	uint32_t features; /* device-specific feature bits (0-31) the driver acks */
	unsigned queue_count;
	struct vq *queues[VQ_MAX];
};

/* Finds the nth (0-based) device of this type; NULL if there is none. */
struct vdev *virtio_find(uint32_t device_id, unsigned nth);
/* Takes snapvm's device list from its MP OEM table, so nothing is probed. */
void virtio_oem_table_read(const void *table, uint32_t size);
/* Resets and sets the device up with `queues` queues of VQ_SIZE; false if it refuses. */
bool virtio_setup(struct vdev *dev, unsigned queues);
/* Sets queue 0 up with its descriptor table outside RAM; true if the device then needs a reset. */
bool virtio_setup_bad_ring(struct vdev *dev);
/* Reads 32 bits of device config space. */
uint32_t virtio_config_read(struct vdev *dev, unsigned offset);
/* The device's status register. */
uint32_t virtio_status(struct vdev *dev);
/* Makes descriptor `head` available on queue q (no notification). */
void vq_post(struct vq *q, uint16_t head);
/* Tells the device queue q has new buffers. */
void virtio_notify(struct vdev *dev, unsigned q);
/* Takes the next used entry of queue q, if any. */
bool vq_take_used(struct vq *q, struct vq_used_elem *elem);
/*
 * Waits for the next used entry of queue q: polls briefly, then halts until
 * the device's interrupt. False if the device gave up (NEEDS_RESET) instead.
 */
bool virtio_wait_used(struct vdev *dev, unsigned q, struct vq_used_elem *elem);
/* Whether the device's interrupt came since the last call (clears it, acknowledges it). */
bool virtio_irq_seen(struct vdev *dev);
/* Lowers a level-triggered interrupt line (QEMU's); nothing to do under snapvm. */
void virtio_irq_ack(struct vdev *dev);

/* Device requests of the line protocol (main.c's table). */
void request_rng(const uint64_t *arg);
void request_blk_write(const uint64_t *arg);
void request_blk_read(const uint64_t *arg);
void request_blk_random_read(const uint64_t *arg);
void request_blk_random_write(const uint64_t *arg);
void request_vsock_listen(const uint64_t *arg);
void request_vsock_connect(const uint64_t *arg);
void request_evil(const uint64_t *arg);

/* hvc.c: the virtio console, when there is one. */
bool hvc_start(void);
void hvc_write(const char *s, size_t len);
/* Moves received bytes into the line; true when a whole line is there. */
bool hvc_poll_line(char *line, size_t size, size_t *len);

/* vsock.c: serves connections; true if it did any work. */
bool vsock_poll(void);

/* net.c: with net=IP[,udp=PORT] on the command line, sets the network device up. */
void net_start(const char *cmdline);
/* Answers ARP, ping and UDP requests that came in; true if it did any work. */
bool net_poll(void);
/* Sets the network device up again (after `evil` reset it), if it was. */
void net_restart(void);
void request_net(const uint64_t *arg);
void request_net_evil(const uint64_t *arg);

#endif
