/*
 * virtio console (virtio 1.2, 5.3), one port, no multiport: the guest's hvc0.
 * Transmit buffers go to the console output (stdout); host input (stdin) is
 * read only while the guest has receive buffers posted, so a fast writer
 * waits instead of being dropped. Enabled with --console virtio.
 */
#include "vmm/virtio/virtio.h"
#include "vmm/loop.h"
#include "vmm/vmm.h"
#include "common/common.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define VIRTIO_ID_CONSOLE 3 /* its device id (virtio 1.2, section 5) */

#define CONSOLE_QUEUE_SIZE 64
#define CONSOLE_RX	   0
#define CONSOLE_TX	   1

struct virtio_console {
	struct virtio_mmio t;
	int in_fd;	  /* -1 once input ended */
	bool in_watched;  /* in_fd is in the event loop */
	bool in_pollable; /* false for files, which epoll refuses */
	bool out_error_logged;
	uint8_t pending[4096]; /* read from in_fd, not yet in a guest buffer */
	size_t pending_len;
};
_Static_assert(offsetof(struct virtio_console, t) == 0, "virtio_mmio_device_* take the device");

static void console_transmit(struct virtio_console *c, const struct virtq_chain *chain)
{
	for (unsigned i = 0; i < chain->count; i++) {
		const struct virtq_segment *seg = &chain->segments[i];
		int ret;

		if (seg->writable || c->t.ctx.console_out_fd < 0)
			continue;
		ret = write_all(c->t.ctx.console_out_fd, seg->host, seg->len);
		if (ret && !c->out_error_logged) {
			c->out_error_logged = true;
			log_warn("virtio console: output dropped: %s", strerror(-ret));
		}
	}
}

static void console_tx(struct virtio_console *c)
{
	struct virtq_chain chain;
	bool used = false;

	while (virtio_mmio_pop(&c->t, CONSOLE_TX, &chain)) {
		console_transmit(c, &chain);
		virtq_push(&c->t.queues[CONSOLE_TX], chain.head, 0);
		used = true;
	}
	if (used)
		virtio_mmio_notify_used(&c->t, CONSOLE_TX);
}

/* Moves pending input into receive buffers; false when the guest has none posted. */
static bool console_deliver(struct virtio_console *c)
{
	struct virtq_chain chain;
	bool used = false, room = true;

	while (c->pending_len) {
		size_t n;

		if (!virtio_mmio_pop(&c->t, CONSOLE_RX, &chain)) {
			room = false;
			break;
		}
		n = virtq_chain_write(&chain, 0, c->pending, c->pending_len);
		memmove(c->pending, c->pending + n, c->pending_len - n);
		c->pending_len -= n;
		virtq_push(&c->t.queues[CONSOLE_RX], chain.head, (uint32_t)n);
		used = true;
	}
	if (used)
		virtio_mmio_notify_used(&c->t, CONSOLE_RX);
	return room;
}

static void console_on_input(void *opaque, uint32_t events);

static void console_watch(struct virtio_console *c, bool want)
{
	if (want == c->in_watched || !c->in_pollable || !c->t.ctx.loop)
		return;
	if (!want) {
		event_loop_remove(c->t.ctx.loop, c->in_fd);
		c->in_watched = false;
	} else if (event_loop_add(c->t.ctx.loop, c->in_fd, EPOLLIN, console_on_input, c) == 0) {
		c->in_watched = true;
	} else {
		c->in_pollable = false; /* a regular file or /dev/null: always readable */
	}
}

static void console_read_input(struct virtio_console *c)
{
	ssize_t n;

	do {
		n = read(c->in_fd, c->pending, sizeof(c->pending));
	} while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) {
		/* end of input: the guest keeps running without it */
		console_watch(c, false);
		c->in_fd = -1;
		return;
	}
	c->pending_len = (size_t)n;
}

/*
 * Moves input to the guest while it has buffers posted; input is watched
 * only while nothing is pending, so a fast writer waits for the guest.
 */
static void console_pump(struct virtio_console *c)
{
	while (virtio_mmio_live(&c->t)) {
		if (c->pending_len && !console_deliver(c))
			break;
		if (c->in_fd < 0)
			break;
		console_watch(c, true);
		if (c->in_pollable)
			break; /* the loop says when there is more */
		console_read_input(c);
		if (!c->pending_len)
			break;
	}
	console_watch(c, c->in_fd >= 0 && !c->pending_len && virtio_mmio_live(&c->t));
}

static void console_on_input(void *opaque, uint32_t events)
{
	struct virtio_console *c = opaque;

	(void)events;
	pthread_mutex_lock(&c->t.lock);
	if (c->in_fd >= 0 && !c->pending_len)
		console_read_input(c);
	console_pump(c);
	pthread_mutex_unlock(&c->t.lock);
}

static void console_queue_notify(struct virtio_mmio *t, unsigned index)
{
	struct virtio_console *c = (struct virtio_console *)t;

	if (index == CONSOLE_TX)
		console_tx(c);
	else
		console_pump(c);
}

static const struct virtio_model console_model = {
	.name = "console",
	.device_id = VIRTIO_ID_CONSOLE,
	.queue_count = 2,
	.queue_max_size = CONSOLE_QUEUE_SIZE,
	.queue_notify = console_queue_notify,
};

static unsigned console_instances(const struct vmm_config *config)
{
	return config && config->console == VMM_CONSOLE_VIRTIO ? 1 : 0;
}

static void *console_create(const struct device_context *ctx)
{
	struct virtio_console *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->in_fd = ctx->console_in_fd;
	c->in_pollable = true;
	if (virtio_mmio_init(&c->t, &console_model, ctx)) {
		virtio_mmio_destroy(&c->t);
		free(c);
		return NULL;
	}
	return c;
}

/* A guest with a virtio console keeps it, on this process's stdio. */
static int console_restore_config(const void *const *states, unsigned count,
				  const struct vmm_config *wanted, struct vmm_config *config)
{
	(void)states;
	if (count && wanted->console != VMM_CONSOLE_STDIO &&
	    wanted->console != VMM_CONSOLE_VIRTIO) {
		log_error(
			"the snapshot's VM has a virtio console: restore it with --console stdio");
		return -EINVAL;
	}
	if (!count && wanted->console == VMM_CONSOLE_VIRTIO) {
		log_error("the snapshot's VM has no virtio console");
		return -EINVAL;
	}
	if (count)
		config->console = VMM_CONSOLE_VIRTIO;
	return 0;
}

static void console_destroy(void *dev)
{
	struct virtio_console *c = dev;

	if (c->in_watched)
		event_loop_remove(c->t.ctx.loop, c->in_fd);
	virtio_mmio_destroy(&c->t);
	free(c);
}

const struct device_ops virtio_console_device_ops = {
	.name = "virtio-console",
	.section_id = 0x0301,
	.state_version = 1,
	.state_size = sizeof(struct virtio_mmio_state),
	.instances = console_instances,
	.create = console_create,
	.reset = virtio_mmio_device_reset,
	.quiesce = virtio_mmio_device_quiesce,
	.save = virtio_mmio_device_save,
	.restore = virtio_mmio_device_restore,
	.restore_config = console_restore_config,
	.destroy = console_destroy,
};
DEVICE_REGISTER(virtio_console_device_ops);
