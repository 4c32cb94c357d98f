/*
 * virtio network device (virtio 1.2, 5.1): one receive and one transmit
 * queue, the MAC in config space, merged receive buffers, and the TAP
 * device's checksum and TSO offloads handed through to the guest (the user
 * backend has none to give). One instance per --net, in command-line order.
 *
 * Every frame carries the 12-byte virtio-net header. Transmit gathers a
 * chain's readable buffers and gives them to the backend as they are. Receive
 * takes one frame at a time from the backend and spreads it over as many rx
 * chains as it needs (one without VIRTIO_NET_F_MRG_RXBUF); a frame that finds
 * too little room waits, and the backend is not read again, until the guest
 * posts buffers. Rate limits (--net ...,bw=,pps=) hold each direction on
 * its own: a tx chain, or a received frame, waits (the backend unwatched)
 * until its limiter's timer fires. The backend is configuration: a snapshot keeps neither it
 * nor frames in flight, only the transport and the MAC the guest saw.
 */
#include "vmm/virtio/virtio.h"
#include "vmm/net/backend.h"
#include "vmm/ratelimit.h"
#include "vmm/vmm.h"
#include "common/common.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/if_tun.h>

#define VIRTIO_ID_NET 1 /* its device id (virtio 1.2, section 5) */

#define NET_QUEUE_SIZE 256
#define NET_RX	       0
#define NET_TX	       1

#define VIRTIO_NET_F_CSUM	(1ULL << 0)
#define VIRTIO_NET_F_GUEST_CSUM (1ULL << 1)
#define VIRTIO_NET_F_MAC	(1ULL << 5)
#define VIRTIO_NET_F_GUEST_TSO4 (1ULL << 7)
#define VIRTIO_NET_F_GUEST_TSO6 (1ULL << 8)
#define VIRTIO_NET_F_GUEST_ECN	(1ULL << 9)
#define VIRTIO_NET_F_HOST_TSO4	(1ULL << 11)
#define VIRTIO_NET_F_HOST_TSO6	(1ULL << 12)
#define VIRTIO_NET_F_HOST_ECN	(1ULL << 13)
#define VIRTIO_NET_F_MRG_RXBUF	(1ULL << 15)
#define VIRTIO_NET_F_STATUS	(1ULL << 16)

/* What a backend with offloads (TAP) adds to the features offered. */
#define NET_OFFLOAD_FEATURES                                                         \
	(VIRTIO_NET_F_CSUM | VIRTIO_NET_F_GUEST_CSUM | VIRTIO_NET_F_GUEST_TSO4 |     \
	 VIRTIO_NET_F_GUEST_TSO6 | VIRTIO_NET_F_GUEST_ECN | VIRTIO_NET_F_HOST_TSO4 | \
	 VIRTIO_NET_F_HOST_TSO6 | VIRTIO_NET_F_HOST_ECN)

#define VIRTIO_NET_S_LINK_UP   1
#define NET_HEADER_FLAGS       0  /* offset of flags in the header */
#define NET_HEADER_NUM_BUFFERS 10 /* offset of num_buffers */

struct virtio_net_config {
	uint8_t mac[6];
	uint16_t status;
} __attribute__((packed));

/* The transport, then what the guest saw of the device and its limits (configuration). */
struct virtio_net_state {
	struct virtio_mmio_state transport;
	uint8_t mac[6];
	uint8_t reserved[2];
	struct rate_saved rate;
};

struct virtio_net {
	struct virtio_mmio t;
	struct net_backend *backend;
	struct virtio_net_config config;
	bool backend_watched;
	size_t rx_len;	   /* a frame in rx_frame waits for room in the guest */
	bool rx_paid;	   /* the waiting frame has passed the rx limiter */
	uint8_t *rx_frame; /* NET_FRAME_MAX bytes */
	struct rate_limiter rx_limiter;
	struct rate_limiter tx_limiter;
};
_Static_assert(offsetof(struct virtio_net, t) == 0, "virtio_mmio_device_* take the device");

enum rx_result {
	RX_DELIVERED,
	RX_DROPPED,
	RX_NO_ROOM, /* the frame waits for buffers */
};

static void net_config_read(struct virtio_mmio *t, uint32_t offset, uint8_t *data, uint32_t len)
{
	struct virtio_net *n = (struct virtio_net *)t;

	memcpy(data, (const uint8_t *)&n->config + offset, len);
}

/* --- transmit --- */

static void net_tx_chain(struct virtio_net *n, const struct virtq_chain *chain)
{
	struct iovec iov[VIRTQ_MAX_SEGMENTS];
	unsigned count = 0;
	int ret;

	for (unsigned i = 0; i < chain->count; i++)
		iov[count++] = (struct iovec){ chain->segments[i].host, chain->segments[i].len };
	ret = n->backend->ops->send(n->backend, iov, count);
	if (ret)
		log_debug("virtio net: a frame of %llu bytes was not sent: %s",
			  (unsigned long long)chain->readable_len - NET_HEADER_SIZE,
			  strerror(-ret));
}

static void net_tx(struct virtio_net *n)
{
	struct virtq_chain chain;
	bool used = false;

	while (!rate_limiter_blocked(&n->tx_limiter) && virtio_mmio_pop(&n->t, NET_TX, &chain)) {
		uint64_t bytes = chain.readable_len > NET_HEADER_SIZE
					 ? chain.readable_len - NET_HEADER_SIZE
					 : 0;

		if (rate_limiter_enabled(&n->tx_limiter) &&
		    !rate_limiter_admit(&n->tx_limiter, bytes, time_now_ns())) {
			virtq_unpop(&n->t.queues[NET_TX], 1); /* sent when the timer fires */
			break;
		}
		/* a dropped chain is back on the used ring already: not pushed twice */
		if (chain.writable_len) {
			virtio_mmio_drop(&n->t, NET_TX, &chain, "tx chain with writable buffers");
			continue;
		}
		if (chain.readable_len <= NET_HEADER_SIZE || chain.readable_len > NET_FRAME_MAX) {
			virtio_mmio_drop(&n->t, NET_TX, &chain, "tx frame of a bad length");
			continue;
		}
		net_tx_chain(n, &chain);
		virtq_push(&n->t.queues[NET_TX], chain.head, 0);
		used = true;
	}
	if (used)
		virtio_mmio_notify_used(&n->t, NET_TX);
}

/* --- receive --- */

/*
 * Returns the chains taken for a frame that will not go in: to the ring if
 * they can be taken again, else (a bad chain was dropped between them) to the
 * guest empty.
 */
static void net_rx_give_back(struct virtio_net *n, uint16_t start, const uint16_t *heads,
			     unsigned count)
{
	struct virtq *q = &n->t.queues[NET_RX];
	uint32_t empty[NET_QUEUE_SIZE] = { 0 };

	if ((uint16_t)(q->s.last_avail - start) == count)
		virtq_unpop(q, (uint16_t)count);
	else
		virtq_push_many(q, heads, empty, count);
}

/* The header as this guest may see it: without GUEST_CSUM no checksum flags. */
static void net_rx_fix_header(struct virtio_net *n)
{
	if (!(virtio_mmio_features(&n->t) & VIRTIO_NET_F_GUEST_CSUM))
		n->rx_frame[NET_HEADER_FLAGS] = 0;
}

/* Spreads the waiting frame over rx chains (lock held). */
static enum rx_result net_rx_deliver(struct virtio_net *n)
{
	struct virtq *q = &n->t.queues[NET_RX];
	bool merge = virtio_mmio_features(&n->t) & VIRTIO_NET_F_MRG_RXBUF;
	uint16_t heads[NET_QUEUE_SIZE], start = q->s.last_avail, num_buffers;
	uint32_t lens[NET_QUEUE_SIZE];
	struct virtq_chain chain, first;
	unsigned count = 0;
	size_t done = 0;

	net_rx_fix_header(n);
	while (done < n->rx_len) {
		if (count == q->s.size || (count && !merge)) {
			net_rx_give_back(n, start, heads, count); /* it will never fit */
			return RX_DROPPED;
		}
		if (!virtio_mmio_pop(&n->t, NET_RX, &chain)) {
			net_rx_give_back(n, start, heads, count);
			return RX_NO_ROOM;
		}
		if (chain.readable_len || chain.writable_len < NET_HEADER_SIZE) {
			virtio_mmio_drop(&n->t, NET_RX, &chain, "rx chain unfit for a frame");
			continue;
		}
		lens[count] = (uint32_t)virtq_chain_write(&chain, 0, n->rx_frame + done,
							  n->rx_len - done);
		heads[count] = chain.head;
		if (!count)
			first = chain;
		done += lens[count++];
	}
	num_buffers = (uint16_t)count;
	virtq_chain_write(&first, NET_HEADER_NUM_BUFFERS, &num_buffers, sizeof(num_buffers));
	virtq_push_many(q, heads, lens, count);
	return RX_DELIVERED;
}

static void net_backend_watch(struct virtio_net *n, bool on)
{
	if (n->backend_watched != on)
		n->backend->ops->watch(n->backend, on);
	n->backend_watched = on;
}

/* Moves frames from the backend to the guest until either runs out (lock held). */
static void net_rx(struct virtio_net *n)
{
	bool used = false;

	for (;;) {
		enum rx_result result;

		/* over the limit: the backend keeps its frames until the timer fires */
		if (rate_limiter_blocked(&n->rx_limiter)) {
			net_backend_watch(n, false);
			goto out;
		}
		if (!n->rx_len) {
			ssize_t got =
				n->backend->ops->receive(n->backend, n->rx_frame, NET_FRAME_MAX);

			if (got < 0) {
				/* a TAP device that went away: stop listening to it */
				log_error("virtio net: the backend failed: %s",
					  strerror((int)-got));
				net_backend_watch(n, false);
				goto out;
			}
			if (got == 0)
				break;
			if (got <= NET_HEADER_SIZE)
				continue; /* a runt: the next one */
			n->rx_len = (size_t)got;
			n->rx_paid = false;
		}
		if (!n->rx_paid && rate_limiter_enabled(&n->rx_limiter) &&
		    !rate_limiter_admit(&n->rx_limiter, n->rx_len - NET_HEADER_SIZE, time_now_ns()))
			continue; /* blocked now: the check above stops */
		n->rx_paid = true;
		result = virtio_mmio_live(&n->t) && n->t.queues[NET_RX].s.ready ? net_rx_deliver(n)
										: RX_NO_ROOM;
		if (result == RX_NO_ROOM) {
			net_backend_watch(n, false);
			goto out;
		}
		used |= result == RX_DELIVERED;
		n->rx_len = 0;
	}
	net_backend_watch(n, true);
out:
	if (used)
		virtio_mmio_notify_used(&n->t, NET_RX);
}

/* The rx limiter's timer: the waiting frame, and those after it, may go. */
static void net_rx_resume(void *opaque)
{
	struct virtio_net *n = opaque;

	pthread_mutex_lock(&n->t.lock);
	net_rx(n);
	pthread_mutex_unlock(&n->t.lock);
}

static void net_on_backend_ready(void *opaque)
{
	struct virtio_net *n = opaque;

	pthread_mutex_lock(&n->t.lock);
	net_rx(n);
	pthread_mutex_unlock(&n->t.lock);
}

static void net_queue_notify(struct virtio_mmio *t, unsigned index)
{
	struct virtio_net *n = (struct virtio_net *)t;

	if (index == NET_TX)
		net_tx(n);
	/* rx buffers may have come; the user network may have answered at once */
	net_rx(n);
}

/*
 * The tx limiter's timer: the chains left in the ring may go. As after a
 * guest's notification, look at rx too: sending runs the user network, which
 * may have queued frames for the guest without telling us.
 */
static void net_tx_resume(void *opaque)
{
	struct virtio_net *n = opaque;

	pthread_mutex_lock(&n->t.lock);
	if (virtio_mmio_live(&n->t) && n->t.queues[NET_TX].s.ready)
		net_queue_notify(&n->t, NET_TX);
	pthread_mutex_unlock(&n->t.lock);
}

/* The offloads the guest can take, as TUN_F_* flags for the TAP device. */
static unsigned net_tun_offloads(uint64_t features)
{
	unsigned flags = 0;

	if (!(features & VIRTIO_NET_F_GUEST_CSUM))
		return 0;
	flags |= TUN_F_CSUM;
	if (features & VIRTIO_NET_F_GUEST_TSO4)
		flags |= TUN_F_TSO4;
	if (features & VIRTIO_NET_F_GUEST_TSO6)
		flags |= TUN_F_TSO6;
	if (features & VIRTIO_NET_F_GUEST_ECN)
		flags |= TUN_F_TSO_ECN;
	return flags;
}

static void net_apply_offloads(struct virtio_net *n)
{
	unsigned flags =
		virtio_mmio_live(&n->t) ? net_tun_offloads(virtio_mmio_features(&n->t)) : 0;
	int ret;

	if (!n->backend->offloads)
		return;
	ret = n->backend->ops->set_offloads(n->backend, flags);
	if (ret)
		log_warn("virtio net: cannot set the TAP device's offloads: %s", strerror(-ret));
}

static void net_driver_ok(struct virtio_mmio *t)
{
	net_apply_offloads((struct virtio_net *)t);
}

/* A driver reset: the waiting frame goes (its buffers are gone), offloads too. */
static void net_model_reset(struct virtio_mmio *t)
{
	struct virtio_net *n = (struct virtio_net *)t;

	n->rx_len = 0;
	if (n->backend->offloads)
		n->backend->ops->set_offloads(n->backend, 0);
}

static const struct virtio_model net_model = {
	.name = "net",
	.device_id = VIRTIO_ID_NET,
	.features = VIRTIO_NET_F_MAC | VIRTIO_NET_F_MRG_RXBUF | VIRTIO_NET_F_STATUS,
	.queue_count = 2,
	.queue_max_size = NET_QUEUE_SIZE,
	.config_read = net_config_read,
	.config_size = sizeof(struct virtio_net_config),
	.queue_notify = net_queue_notify,
	.driver_ok = net_driver_ok,
	.reset = net_model_reset,
};

/* --- life cycle --- */

static unsigned net_instances(const struct vmm_config *config)
{
	return config ? config->net_count : 0;
}

void vmm_net_mac(const struct vmm_config *config, unsigned index, uint8_t mac[6])
{
	static const uint8_t none[6], qemu[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
	const uint8_t *given = config->nets[index].mac;

	memcpy(mac, memcmp(given, none, 6) ? given : qemu, 6);
	if (!memcmp(given, none, 6))
		mac[5] = (uint8_t)(mac[5] + index);
}

static struct net_backend *net_backend_open(struct virtio_net *n, const struct device_context *ctx)
{
	const struct vmm_net *net = &ctx->config->nets[ctx->instance];

	/* a backend that cannot open has logged why */
	if (net->backend == VMM_NET_TAP)
		return net_tap_open(net->tap, ctx->loop, net_on_backend_ready, n);
	return net_user_open(net, ctx->loop, net_on_backend_ready, n);
}

static void net_destroy(void *dev);

static int net_limiters_init(struct virtio_net *n, const struct device_context *ctx)
{
	const struct vmm_rate_limit *limit = &ctx->config->nets[ctx->instance].rate;
	int ret = rate_limiter_init(&n->rx_limiter, limit, ctx->loop, net_rx_resume, n);

	if (!ret)
		ret = rate_limiter_init(&n->tx_limiter, limit, ctx->loop, net_tx_resume, n);
	if (ret)
		log_error("network device %u: cannot set up its rate limiter: %s", ctx->instance,
			  strerror(-ret));
	return ret;
}

static void *net_create(const struct device_context *ctx)
{
	struct virtio_net *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->t.notify_fd = n->t.irq_fd = -1;
	rate_limiter_init_unlimited(&n->rx_limiter);
	rate_limiter_init_unlimited(&n->tx_limiter);
	n->rx_frame = malloc(NET_FRAME_MAX);
	if (!n->rx_frame || virtio_mmio_init(&n->t, &net_model, ctx))
		goto fail;
	if (net_limiters_init(n, ctx))
		goto fail;
	n->backend = net_backend_open(n, ctx);
	if (!n->backend)
		goto fail;
	n->backend_watched = true;
	if (n->backend->offloads)
		n->t.features |= NET_OFFLOAD_FEATURES;
	vmm_net_mac(ctx->config, ctx->instance, n->config.mac);
	n->config.status = VIRTIO_NET_S_LINK_UP;
	return n;
fail:
	net_destroy(n);
	return NULL;
}

static int net_quiesce(void *dev)
{
	(void)dev; /* frames move whole under the lock; a waiting one is the host's, not saved */
	return 0;
}

static void net_save(void *dev, void *state)
{
	struct virtio_net *n = dev;
	struct virtio_net_state *s = state;

	pthread_mutex_lock(&n->t.lock);
	virtio_mmio_save(&n->t, &s->transport);
	memcpy(s->mac, n->config.mac, sizeof(s->mac));
	memset(s->reserved, 0, sizeof(s->reserved));
	pthread_mutex_unlock(&n->t.lock);
	s->rate = rate_saved_from(&n->t.ctx.config->nets[n->t.ctx.instance].rate);
}

static int net_restore(void *dev, const void *state)
{
	struct virtio_net *n = dev;
	const struct virtio_net_state *s = state;
	uint64_t missing = s->transport.regs.driver_features & ~n->t.features;
	int ret;

	/* the guest knows its MAC: the restored configuration carries the snapshot's */
	if (memcmp(s->mac, n->config.mac, sizeof(s->mac)))
		return -EINVAL;
	if ((s->transport.regs.status & VIRTIO_STATUS_FEATURES_OK) &&
	    (missing & NET_OFFLOAD_FEATURES))
		log_error("virtio net: the guest uses checksum/TSO offloads, which the user "
			  "network cannot give: restore it onto a TAP device");
	pthread_mutex_lock(&n->t.lock);
	n->rx_len = 0;
	ret = virtio_mmio_restore(&n->t, &s->transport);
	if (!ret)
		net_apply_offloads(n);
	pthread_mutex_unlock(&n->t.lock);
	return ret;
}

/* The guest keeps its devices and MACs; the networks behind them are the restore's. */
static int net_restore_config(const void *const *states, unsigned count,
			      const struct vmm_config *wanted, struct vmm_config *config)
{
	static const uint8_t no_mac[6];

	if (wanted->net_count != count || (wanted->netns[0] && !count)) {
		if (count)
			log_error("the snapshot's VM has %u network device%s: give --net for each "
				  "at restore",
				  count, count == 1 ? "" : "s");
		else
			log_error("the snapshot's VM has no network device");
		return -EINVAL;
	}
	config->net_count = count;
	for (unsigned i = 0; i < count; i++) {
		const struct virtio_net_state *s = states[i];
		const uint8_t *mac = s->mac;

		if (memcmp(wanted->nets[i].mac, no_mac, 6) && memcmp(wanted->nets[i].mac, mac, 6)) {
			log_error("network device %u: the guest's MAC is "
				  "%02x:%02x:%02x:%02x:%02x:%02x; it cannot change",
				  i, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
			return -EINVAL;
		}
		memcpy(config->nets[i].mac, mac, 6);
		if (rate_saved_restore(&s->rate, &wanted->nets[i].rate, "network device",
				       &config->nets[i].rate))
			return -EINVAL;
	}
	return 0;
}

static void net_destroy(void *dev)
{
	struct virtio_net *n = dev;

	if (n->backend)
		n->backend->ops->destroy(n->backend);
	rate_limiter_destroy(&n->rx_limiter);
	rate_limiter_destroy(&n->tx_limiter);
	virtio_mmio_destroy(&n->t);
	free(n->rx_frame);
	free(n);
}

const struct device_ops virtio_net_device_ops = {
	.name = "virtio-net",
	.section_id = 0x0305,
	.state_version = 2, /* 2: the rate limits */
	.state_size = sizeof(struct virtio_net_state),
	.instances = net_instances,
	.create = net_create,
	.reset = virtio_mmio_device_reset,
	.quiesce = net_quiesce,
	.save = net_save,
	.restore = net_restore,
	.restore_config = net_restore_config,
	.destroy = net_destroy,
};
DEVICE_REGISTER(virtio_net_device_ops);
