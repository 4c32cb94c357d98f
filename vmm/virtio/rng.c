/*
 * virtio entropy device (virtio 1.2, 5.4): one queue of device-writable
 * buffers, filled from the host's getrandom(). Enabled with --rng.
 */
#include "vmm/virtio/virtio.h"
#include "vmm/vmm.h"
#include "common/common.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/random.h>

#define VIRTIO_ID_RNG 4		   /* its device id (virtio 1.2, section 5) */
#define RNG_NAME      "virtio-rng" /* device_ops.name, and what --rng switches on */

#define RNG_QUEUE_SIZE	  64
#define RNG_MAX_PER_CHAIN (64 * 1024) /* bounds the time one request holds the device */

struct virtio_rng {
	struct virtio_mmio t;
};

/* Fills the writable segments; returns the bytes written. */
static uint32_t rng_fill(const struct virtq_chain *chain)
{
	uint32_t done = 0;

	for (unsigned i = 0; i < chain->count && done < RNG_MAX_PER_CHAIN; i++) {
		const struct virtq_segment *seg = &chain->segments[i];
		uint32_t want = MIN(seg->len, RNG_MAX_PER_CHAIN - done), got = 0;

		while (got < want) {
			ssize_t n = getrandom(seg->host + got, want - got, 0);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return done + got;
			got += (uint32_t)n;
		}
		done += got;
	}
	return done;
}

static void rng_queue_notify(struct virtio_mmio *t, unsigned index)
{
	struct virtq_chain chain;
	bool used = false;

	while (virtio_mmio_pop(t, index, &chain)) {
		if (chain.readable_len || !chain.writable_len) {
			virtio_mmio_drop(t, index, &chain,
					 "entropy request needs writable buffers only");
			continue;
		}
		virtq_push(&t->queues[index], chain.head, rng_fill(&chain));
		used = true;
	}
	if (used)
		virtio_mmio_notify_used(t, index);
}

static const struct virtio_model rng_model = {
	.name = "rng",
	.device_id = VIRTIO_ID_RNG,
	.queue_count = 1,
	.queue_max_size = RNG_QUEUE_SIZE,
	.queue_notify = rng_queue_notify,
};
_Static_assert(offsetof(struct virtio_rng, t) == 0, "virtio_mmio_device_* take the device");

static unsigned rng_instances(const struct vmm_config *config)
{
	return config && vmm_config_device_arg(config, RNG_NAME, 0) ? 1 : 0;
}

static void *rng_create(const struct device_context *ctx)
{
	struct virtio_rng *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	if (virtio_mmio_init(&r->t, &rng_model, ctx)) {
		virtio_mmio_destroy(&r->t);
		free(r);
		return NULL;
	}
	return r;
}

static int rng_restore_config(const void *const *states, unsigned count,
			      const struct vmm_config *wanted, struct vmm_config *config)
{
	(void)states;
	if (vmm_config_device_arg(wanted, RNG_NAME, 0) && !count) {
		log_error("the snapshot's VM has no entropy device");
		return -EINVAL;
	}
	vmm_config_device_args_drop(config, RNG_NAME);
	return count ? vmm_config_device_arg_add(config, RNG_NAME, "") : 0;
}

static void rng_destroy(void *dev)
{
	struct virtio_rng *r = dev;

	virtio_mmio_destroy(&r->t);
	free(r);
}

const struct device_ops virtio_rng_device_ops = {
	.name = RNG_NAME,
	.section_id = 0x0302,
	.state_version = 1,
	.state_size = sizeof(struct virtio_mmio_state),
	.instances = rng_instances,
	.create = rng_create,
	.reset = virtio_mmio_device_reset,
	.quiesce = virtio_mmio_device_quiesce,
	.save = virtio_mmio_device_save,
	.restore = virtio_mmio_device_restore,
	.restore_config = rng_restore_config,
	.destroy = rng_destroy,
};
DEVICE_REGISTER(virtio_rng_device_ops);
