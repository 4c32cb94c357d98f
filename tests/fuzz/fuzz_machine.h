/*
 * A machine without KVM for the device fuzzers: guest RAM as one malloc'ed
 * buffer (so that AddressSanitizer guards both of its ends) in two regions,
 * as on either side of the MMIO hole, an I/O registry, and the devices of
 * registered devices (vmm_devices) created as vm_create would, without an event loop or a VM fd:
 * notifications and interrupts are handled on the caller's thread. Hosts
 * resources are fakes or scratch files: a memfd disk, a vsock listener in a
 * scratch directory, and a network backend that hands the guest frames the
 * fuzzer chose. Included by one harness per binary.
 */
#ifndef SNAPVM_TESTS_FUZZ_MACHINE_H
#define SNAPVM_TESTS_FUZZ_MACHINE_H

#include "vmm/device.h"
#include "vmm/net/backend.h"
#include "vmm/virtio/virtio.h"
#include "vmm/vmm.h"
#include "tests/fuzz/fuzz_scratch.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define FUZZ_REGION_SIZE 0x10000
#define FUZZ_HIGH_GPA	 0x100000000ULL /* where the second RAM region starts */
#define FUZZ_DISK_SIZE	 (64 << 10)
#define FUZZ_VSOCK_PORT	 1024 /* the guest's connections to this host port find a listener */
#define FUZZ_MAX_DEVICES 16

struct fuzz_device {
	const struct device_ops *ops;
	void *dev;
	unsigned instance;
};

struct fuzz_machine {
	struct guest_memory mem;
	struct io_registry io;
	struct virtio_mmio_slots slots;
	struct device_context ctx;
	unsigned count;
	struct fuzz_device devices[FUZZ_MAX_DEVICES];
};

/* ---- the fake network backend: frames come from the fuzzer, sends are dropped ---- */

static const uint8_t *fuzz_net_frames; /* what receive() hands out, cut into frames */
static size_t fuzz_net_left;

static int fuzz_net_send(struct net_backend *b, const struct iovec *iov, unsigned count)
{
	volatile uint8_t sink = 0;

	(void)b;
	for (unsigned i = 0; i < count; i++) /* every byte must be readable */
		for (size_t j = 0; j < iov[i].iov_len; j++)
			sink ^= ((const uint8_t *)iov[i].iov_base)[j];
	(void)sink;
	return 0;
}

/* Frames of 1 to 256 + 12 bytes; the length comes from the stream, as a TAP read would. */
static ssize_t fuzz_net_receive(struct net_backend *b, uint8_t *frame, size_t size)
{
	size_t len;

	(void)b;
	if (fuzz_net_left < 2)
		return 0;
	len = NET_HEADER_SIZE + 1 + fuzz_net_frames[0];
	len = len < fuzz_net_left - 1 ? len : fuzz_net_left - 1;
	len = len < size ? len : size;
	memcpy(frame, fuzz_net_frames + 1, len);
	fuzz_net_frames += len + 1;
	fuzz_net_left -= len + 1;
	return (ssize_t)len;
}

static void fuzz_net_watch(struct net_backend *b, bool on)
{
	(void)b;
	(void)on;
}

static int fuzz_net_set_offloads(struct net_backend *b, unsigned offloads)
{
	(void)b;
	(void)offloads;
	return 0;
}

static void fuzz_net_destroy(struct net_backend *b)
{
	free(b);
}

static const struct net_backend_ops fuzz_net_ops = {
	.send = fuzz_net_send,
	.receive = fuzz_net_receive,
	.watch = fuzz_net_watch,
	.set_offloads = fuzz_net_set_offloads,
	.destroy = fuzz_net_destroy,
};

static struct net_backend *fuzz_net_open(bool offloads, void (*ready)(void *opaque), void *opaque)
{
	struct net_backend *b = calloc(1, sizeof(*b));

	if (b)
		*b = (struct net_backend){ &fuzz_net_ops, offloads, NULL, ready, opaque };
	return b;
}

/* These replace vmm/net/tap.c's and user.c's: a TAP backend offers offloads, a user one none. */
struct net_backend *net_tap_open(const char *name, struct event_loop *loop,
				 void (*ready)(void *opaque), void *opaque)
{
	(void)name, (void)loop;
	return fuzz_net_open(true, ready, opaque);
}

struct net_backend *net_user_open(const struct vmm_net *net, struct event_loop *loop,
				  void (*ready)(void *opaque), void *opaque)
{
	(void)net, (void)loop;
	return fuzz_net_open(false, ready, opaque);
}

/* ---- the machine ---- */

static void fuzz_irq_line(void *vm, unsigned gsi, bool level)
{
	(void)vm, (void)gsi, (void)level;
}

static void fuzz_guest_event(void *vm, enum guest_event event, uint64_t value, uint64_t rip)
{
	(void)vm, (void)event, (void)value, (void)rip;
}

static struct vmm_config fuzz_config;
static int fuzz_vsock_listener = -1;
static const uint8_t fuzz_generation[16] = { 0x5a };

/* The configuration every machine has, with its host resources; made once per process. */
static const struct vmm_config *fuzz_config_get(void)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	char vsock[VMM_DEVICE_ARG_MAX]; /* "3,DIR/v.sock" */
	const char *dir;
	int disk;

	if (fuzz_config.mem_size)
		return &fuzz_config;
	dir = fuzz_scratch_dir("machine");
	if ((disk = memfd_create("fuzz-disk", 0)) < 0 || ftruncate(disk, FUZZ_DISK_SIZE) < 0) {
		perror("fuzz machine set-up");
		abort();
	}
	fuzz_config.mem_size = 2 * FUZZ_REGION_SIZE;
	fuzz_config.cpus = 1;
	fuzz_config.acpi = true;
	fuzz_config.console = VMM_CONSOLE_VIRTIO;
	fuzz_config.console_in_fd = fuzz_config.console_out_fd = -1;
	vmm_config_device_arg_add(&fuzz_config, "virtio-rng", "");
	fuzz_config.disk_count = 2;
	snprintf(fuzz_config.disks[0].path, VMM_DISK_PATH_MAX, "/proc/self/fd/%d", disk);
	snprintf(fuzz_config.disks[0].id, sizeof(fuzz_config.disks[0].id), "fuzz-disk");
	snprintf(fuzz_config.disks[1].path, VMM_DISK_PATH_MAX, "/proc/self/fd/%d", disk);
	fuzz_config.disks[1].read_only = true;
	snprintf(vsock, sizeof(vsock), "3,%s/v.sock", dir);
	if (vmm_config_device_arg_add(&fuzz_config, "virtio-vsock", vsock)) /* logs why */
		abort();
	fuzz_config.net_count = 2;
	fuzz_config.nets[0].backend = VMM_NET_TAP;
	fuzz_config.nets[1].backend = VMM_NET_USER;
	/* a host program listening on one port, so that the guest's connections can succeed */
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s_%u", vsock + 2, FUZZ_VSOCK_PORT);
	fuzz_vsock_listener = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fuzz_vsock_listener < 0 ||
	    bind(fuzz_vsock_listener, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(fuzz_vsock_listener, 64) < 0) {
		perror("fuzz vsock listener");
		abort();
	}
	return &fuzz_config;
}

/* Closes the connections the guest made to the listener, so that its backlog never fills. */
static void fuzz_vsock_drain(void)
{
	int fd;

	while ((fd = accept(fuzz_vsock_listener, NULL, NULL)) >= 0)
		close(fd);
}

/*
 * Guest RAM filled from ram (the rest zero), and every registered device
 * for which want(ops) says yes (NULL: all of them).
 */
static void fuzz_machine_create(struct fuzz_machine *m, const uint8_t *ram, size_t ram_len,
				bool (*want)(const struct device_ops *ops))
{
	memset(m, 0, sizeof(*m));
	m->mem.size = 2 * FUZZ_REGION_SIZE;
	m->mem.host = malloc(m->mem.size);
	m->mem.region_count = 2;
	m->mem.regions[0] = (struct guest_region){ 0, FUZZ_REGION_SIZE, 0 };
	m->mem.regions[1] =
		(struct guest_region){ FUZZ_HIGH_GPA, FUZZ_REGION_SIZE, FUZZ_REGION_SIZE };
	memset(m->mem.host, 0, m->mem.size);
	if (ram_len)
		memcpy(m->mem.host, ram, ram_len < m->mem.size ? ram_len : m->mem.size);
	m->ctx = (struct device_context){ .io = &m->io,
					  .mem = &m->mem,
					  .irq_line = fuzz_irq_line,
					  .guest_event = fuzz_guest_event,
					  .console_out_fd = -1,
					  .console_in_fd = -1,
					  .vm_fd = -1,
					  .config = fuzz_config_get(),
					  .virtio_slots = &m->slots,
					  .generation = fuzz_generation };
	for (const struct device_ops *const *d = vmm_devices(); *d; d++) {
		const struct device_ops *ops = *d;
		unsigned count = ops->instances ? ops->instances(m->ctx.config) : 1;

		if (want && !want(ops))
			continue;
		for (m->ctx.instance = 0; m->ctx.instance < count; m->ctx.instance++) {
			void *dev = m->count < FUZZ_MAX_DEVICES ? ops->create(&m->ctx) : NULL;

			if (!dev) {
				fprintf(stderr, "fuzz machine: cannot create %s\n", ops->name);
				abort();
			}
			m->devices[m->count++] = (struct fuzz_device){ ops, dev, m->ctx.instance };
		}
	}
}

/* The virtio transport of a device, its first member; NULL for the others. */
static inline struct virtio_mmio *fuzz_transport(const struct fuzz_device *d)
{
	const struct device_ops *ops = d->ops;

	return !strncmp(ops->name, "virtio-", 7) ? d->dev : NULL;
}

/*
 * What no guest can make a device do: give back more chains than it took
 * (a chain pushed twice), or hold more than the queue has. Aborts, so that
 * the fuzzer keeps the input.
 */
static inline void fuzz_machine_check_queues(const struct fuzz_machine *m)
{
	for (unsigned i = 0; i < m->count; i++) {
		const struct virtio_mmio *t = fuzz_transport(&m->devices[i]);

		for (unsigned q = 0; t && q < VIRTIO_MAX_QUEUES; q++) {
			const struct virtq_state *s = &t->queues[q].s;
			uint16_t held = (uint16_t)(s->last_avail - s->used_idx);

			if (s->ready && held > s->size) {
				fprintf(stderr, "%s queue %u: %u chains taken, %u given back\n",
					m->devices[i].ops->name, q, s->last_avail, s->used_idx);
				abort();
			}
		}
	}
}

/* Lets every device finish its host I/O (io_uring), then frees them and RAM. */
static void fuzz_machine_destroy(struct fuzz_machine *m)
{
	for (unsigned i = 0; i < m->count; i++)
		if (m->devices[i].ops->quiesce)
			m->devices[i].ops->quiesce(m->devices[i].dev);
	for (unsigned i = m->count; i-- > 0;)
		m->devices[i].ops->destroy(m->devices[i].dev);
	fuzz_vsock_drain();
	free(m->mem.host);
}

#endif
