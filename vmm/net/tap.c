/*
 * The TAP backend: an existing TAP device opened with IFF_TAP | IFF_NO_PI |
 * IFF_VNET_HDR, so every frame read or written carries the virtio-net header
 * and the kernel does the checksum and TSO work the guest leaves to the
 * device. Frames stay in the kernel's queue while the guest has no room.
 */
#include "vmm/net/backend.h"
#include "vmm/loop.h"
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/if_tun.h>

struct net_tap {
	struct net_backend base;
	int fd;
	bool watched;
	char name[IFNAMSIZ];
};

static int tap_send(struct net_backend *b, const struct iovec *iov, unsigned count)
{
	struct net_tap *tap = (struct net_tap *)b;
	ssize_t n;

	do {
		n = writev(tap->fd, iov, (int)count);
	} while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : 0;
}

static ssize_t tap_receive(struct net_backend *b, uint8_t *frame, size_t size)
{
	struct net_tap *tap = (struct net_tap *)b;
	ssize_t n;

	do {
		n = read(tap->fd, frame, size);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN ? 0 : -errno;
	return n;
}

static void tap_on_readable(void *opaque, uint32_t events)
{
	struct net_tap *tap = opaque;

	(void)events;
	tap->base.ready(tap->base.opaque);
}

static void tap_watch(struct net_backend *b, bool on)
{
	struct net_tap *tap = (struct net_tap *)b;

	if (!b->loop || tap->watched == on)
		return;
	if (!on)
		event_loop_remove(b->loop, tap->fd);
	else if (event_loop_add(b->loop, tap->fd, EPOLLIN, tap_on_readable, tap))
		return;
	tap->watched = on;
}

static int tap_set_offloads(struct net_backend *b, unsigned offloads)
{
	struct net_tap *tap = (struct net_tap *)b;

	return ioctl(tap->fd, TUNSETOFFLOAD, (unsigned long)offloads) < 0 ? -errno : 0;
}

static void tap_destroy(struct net_backend *b)
{
	struct net_tap *tap = (struct net_tap *)b;

	tap_watch(b, false);
	close(tap->fd);
	free(tap);
}

static const struct net_backend_ops tap_ops = {
	.send = tap_send,
	.receive = tap_receive,
	.watch = tap_watch,
	.set_offloads = tap_set_offloads,
	.destroy = tap_destroy,
};

/* TUNSETIFF with our flags; the header size every frame carries; no offloads until the guest
 * asks. */
static int tap_attach(int fd, const char *name)
{
	struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR };
	int header_size = NET_HEADER_SIZE;

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int ret = -errno;

		log_error("cannot attach to TAP device %s: %s%s", name, strerror(-ret),
			  ret == -EPERM	  ? " (needs CAP_NET_ADMIN, or a TAP device owned by us)"
			  : ret == -EBUSY ? " (another process has it, or it is not a TAP device)"
					  : "");
		return ret;
	}
	if (ioctl(fd, TUNSETVNETHDRSZ, &header_size) < 0 || ioctl(fd, TUNSETOFFLOAD, 0UL) < 0) {
		int ret = -errno;

		log_error("TAP device %s: cannot set up virtio-net headers: %s", name,
			  strerror(-ret));
		return ret;
	}
	return 0;
}

struct net_backend *net_tap_open(const char *name, struct event_loop *loop,
				 void (*ready)(void *opaque), void *opaque)
{
	struct net_tap *tap = calloc(1, sizeof(*tap));

	if (!tap) {
		log_error("TAP device %s: out of memory", name);
		return NULL;
	}
	tap->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (tap->fd < 0) {
		log_error("cannot open /dev/net/tun: %s", strerror(errno));
		free(tap);
		return NULL;
	}
	if (tap_attach(tap->fd, name)) {
		close(tap->fd);
		free(tap);
		return NULL;
	}
	snprintf(tap->name, sizeof(tap->name), "%s", name);
	tap->base = (struct net_backend){
		.ops = &tap_ops, .offloads = true, .loop = loop, .ready = ready, .opaque = opaque
	};
	tap_watch(&tap->base, true);
	return &tap->base;
}
