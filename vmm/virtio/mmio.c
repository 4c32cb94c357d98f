/*
 * The virtio-mmio transport, version 2 registers (virtio 1.2, section 4.2):
 * feature negotiation, the device status state machine, queue set-up,
 * interrupt status and reset. Device models plug in through struct
 * virtio_model and never see a register.
 *
 * Queue notifications go through an ioeventfd (KVM signals it without
 * leaving the kernel) to the event loop; interrupts through an irqfd. Without
 * a VM fd (unit tests) notifications trap to virtio_mmio_access and
 * interrupts go through ctx->irq_line.
 */
#include "vmm/virtio/virtio.h"
#include "vmm/loop.h"
#include "common/common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/kvm.h>

enum {
	REG_MAGIC = 0x000,
	REG_VERSION = 0x004,
	REG_DEVICE_ID = 0x008,
	REG_VENDOR_ID = 0x00c,
	REG_DEVICE_FEATURES = 0x010,
	REG_DEVICE_FEATURES_SEL = 0x014,
	REG_DRIVER_FEATURES = 0x020,
	REG_DRIVER_FEATURES_SEL = 0x024,
	REG_QUEUE_SEL = 0x030,
	REG_QUEUE_NUM_MAX = 0x034,
	REG_QUEUE_NUM = 0x038,
	REG_QUEUE_READY = 0x044,
	REG_QUEUE_NOTIFY = 0x050,
	REG_INTERRUPT_STATUS = 0x060,
	REG_INTERRUPT_ACK = 0x064,
	REG_STATUS = 0x070,
	REG_QUEUE_DESC_LOW = 0x080,
	REG_QUEUE_DESC_HIGH = 0x084,
	REG_QUEUE_DRIVER_LOW = 0x090,
	REG_QUEUE_DRIVER_HIGH = 0x094,
	REG_QUEUE_DEVICE_LOW = 0x0a0,
	REG_QUEUE_DEVICE_HIGH = 0x0a4,
	REG_CONFIG_GENERATION = 0x0fc,
	REG_CONFIG = 0x100,
};

#define VIRTIO_MMIO_MAGIC   0x74726976 /* "virt" */
#define VIRTIO_MMIO_VERSION 2
#define VIRTIO_VENDOR_ID    0x50414e53 /* "SNAP" */
#define STATUS_DRIVER_BITS                                                            \
	(VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK | \
	 VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_FAILED)

static void virtio_mmio_interrupt(struct virtio_mmio *t, uint32_t bit)
{
	uint64_t one = 1;

	t->regs.interrupt_status |= bit;
	/* an edge, as an irqfd without resampling gives: the driver reads the status anyway */
	if (t->irq_fd >= 0) {
		if (write(t->irq_fd, &one, sizeof(one)) < 0)
			log_warn("virtio %s: irqfd write failed: %s", t->model->name,
				 strerror(errno));
	} else if (t->ctx.irq_line) {
		t->ctx.irq_line(t->ctx.vm, t->irq, true);
		t->ctx.irq_line(t->ctx.vm, t->irq, false);
	}
}

void virtio_mmio_notify_used(struct virtio_mmio *t, unsigned index)
{
	if (!virtq_interrupt_suppressed(&t->queues[index]))
		virtio_mmio_interrupt(t, VIRTIO_INTERRUPT_USED_BUFFER);
}

/* A misbehaving guest could flood the log: the first error of a device is logged, later ones at
 * -vv. */
static void virtio_mmio_log_error(struct virtio_mmio *t, const char *why)
{
	if (!t->error_logged) {
		t->error_logged = true;
		log_error("virtio %s at 0x%llx: %s (further errors of this device are not logged)",
			  t->model->name, (unsigned long long)t->base, why);
	} else {
		log_debug("virtio %s: %s", t->model->name, why);
	}
}

void virtio_mmio_fail(struct virtio_mmio *t, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	virtio_mmio_log_error(t, why);
	if (t->regs.status & VIRTIO_STATUS_NEEDS_RESET)
		return;
	t->regs.status |= VIRTIO_STATUS_NEEDS_RESET;
	virtio_mmio_interrupt(t, VIRTIO_INTERRUPT_CONFIG);
}

void virtio_mmio_drop(struct virtio_mmio *t, unsigned index, const struct virtq_chain *chain,
		      const char *why)
{
	char message[256];

	snprintf(message, sizeof(message), "queue %u: dropped a descriptor chain: %s", index, why);
	virtio_mmio_log_error(t, message);
	virtq_push(&t->queues[index], chain->head, 0);
	virtio_mmio_notify_used(t, index);
}

bool virtio_mmio_pop(struct virtio_mmio *t, unsigned index, struct virtq_chain *chain)
{
	const char *why;

	while (virtio_mmio_live(t)) {
		switch (virtq_pop(&t->queues[index], chain, &why)) {
		case VIRTQ_EMPTY:
			return false;
		case VIRTQ_CHAIN:
			return true;
		case VIRTQ_BAD_CHAIN:
			virtio_mmio_drop(t, index, chain, why);
			break;
		case VIRTQ_BROKEN:
			virtio_mmio_fail(t, "queue %u: %s", index, why);
			return false;
		}
	}
	return false;
}

bool virtio_mmio_live(const struct virtio_mmio *t)
{
	return (t->regs.status & (VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_NEEDS_RESET)) ==
	       VIRTIO_STATUS_DRIVER_OK;
}

uint64_t virtio_mmio_features(const struct virtio_mmio *t)
{
	return t->regs.driver_features;
}

void virtio_mmio_reset(struct virtio_mmio *t)
{
	uint32_t generation = t->regs.config_generation;

	memset(&t->regs, 0, sizeof(t->regs));
	t->regs.config_generation = generation;
	for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		memset(&t->queues[i].s, 0, sizeof(t->queues[i].s));
		t->queues[i].max_size = i < t->model->queue_count ? t->model->queue_max_size : 0;
		t->queues[i].mem = t->ctx.mem;
	}
}

static struct virtq *virtio_mmio_selected(struct virtio_mmio *t)
{
	return t->regs.queue_sel < t->model->queue_count ? &t->queues[t->regs.queue_sel] : NULL;
}

static uint32_t virtio_mmio_read_reg(struct virtio_mmio *t, uint64_t offset)
{
	struct virtq *q = virtio_mmio_selected(t);

	switch (offset) {
	case REG_MAGIC:
		return VIRTIO_MMIO_MAGIC;
	case REG_VERSION:
		return VIRTIO_MMIO_VERSION;
	case REG_DEVICE_ID:
		return t->model->device_id;
	case REG_VENDOR_ID:
		return VIRTIO_VENDOR_ID;
	case REG_DEVICE_FEATURES:
		return t->regs.device_features_sel < 2
			       ? (uint32_t)(t->features >> (32 * t->regs.device_features_sel))
			       : 0;
	case REG_QUEUE_NUM_MAX:
		return q ? q->max_size : 0;
	case REG_QUEUE_NUM:
		return q ? q->s.size : 0;
	case REG_QUEUE_READY:
		return q ? q->s.ready : 0;
	case REG_INTERRUPT_STATUS:
		return t->regs.interrupt_status;
	case REG_STATUS:
		return t->regs.status;
	case REG_CONFIG_GENERATION:
		return t->regs.config_generation;
	default:
		return 0; /* write-only and reserved registers */
	}
}

/* Acknowledging features is only valid before FEATURES_OK. */
static void virtio_mmio_write_features(struct virtio_mmio *t, uint32_t value)
{
	unsigned shift = 32 * t->regs.driver_features_sel;

	if (t->regs.driver_features_sel >= 2 || (t->regs.status & VIRTIO_STATUS_FEATURES_OK))
		return;
	t->regs.driver_features &= ~(0xffffffffULL << shift);
	t->regs.driver_features |= (uint64_t)value << shift;
}

/* Lock held. */
static void virtio_mmio_reset_all(struct virtio_mmio *t)
{
	if (t->model->reset)
		t->model->reset(t);
	virtio_mmio_reset(t);
}

void virtio_mmio_device_reset(void *dev)
{
	struct virtio_mmio *t = dev;

	pthread_mutex_lock(&t->lock);
	virtio_mmio_reset_all(t);
	pthread_mutex_unlock(&t->lock);
}

/*
 * The driver may only add status bits (writing 0 resets). FEATURES_OK sticks
 * only when the acknowledged features are offered ones and include
 * VERSION_1 (a legacy driver is refused, as the spec allows); DRIVER_OK
 * only after FEATURES_OK.
 */
static void virtio_mmio_write_status(struct virtio_mmio *t, uint32_t value)
{
	uint32_t old = t->regs.status,
		 new = (value & STATUS_DRIVER_BITS) | (old & ~STATUS_DRIVER_BITS);
	uint64_t acked = t->regs.driver_features;

	if (value == 0) {
		virtio_mmio_reset_all(t);
		return;
	}
	if ((old & STATUS_DRIVER_BITS) & ~new) {
		virtio_mmio_fail(t, "driver cleared status bits (0x%x -> 0x%x)", old, value);
		return;
	}
	if ((new & ~old &VIRTIO_STATUS_FEATURES_OK) &&
	    ((acked & ~t->features) || !(acked & VIRTIO_F_VERSION_1)))
		new &= ~VIRTIO_STATUS_FEATURES_OK;
	if (!(new &VIRTIO_STATUS_FEATURES_OK))
		new &= ~VIRTIO_STATUS_DRIVER_OK;
	t->regs.status = new;
	if ((new & ~old &VIRTIO_STATUS_DRIVER_OK) && t->model->driver_ok)
		t->model->driver_ok(t);
}

static void virtio_mmio_set_address(uint64_t *address, bool high, uint32_t value)
{
	if (high)
		*address = (*address & 0xffffffffULL) | (uint64_t)value << 32;
	else
		*address = (*address & ~0xffffffffULL) | value;
}

static void virtio_mmio_write_queue_ready(struct virtio_mmio *t, struct virtq *q, uint32_t value)
{
	const char *why;

	if (!value) {
		q->s.ready = 0;
		return;
	}
	if (q->s.ready)
		return;
	why = virtq_check(&q->s, q->max_size, t->ctx.mem);
	if (why) {
		virtio_mmio_fail(t, "queue %u: %s", t->regs.queue_sel, why);
		return;
	}
	q->s.last_avail = q->s.used_idx = 0;
	q->broken_logged = false;
	q->s.ready = 1;
}

/* Queue configuration registers: ignored for a queue that is live or does not exist. */
static void virtio_mmio_write_queue(struct virtio_mmio *t, uint64_t offset, uint32_t value)
{
	struct virtq *q = virtio_mmio_selected(t);

	if (!q)
		return;
	if (offset == REG_QUEUE_READY) {
		virtio_mmio_write_queue_ready(t, q, value);
		return;
	}
	if (q->s.ready)
		return;
	switch (offset) {
	case REG_QUEUE_NUM:
		q->s.size = (uint16_t)MIN(value, 0xffffu);
		break;
	case REG_QUEUE_DESC_LOW:
	case REG_QUEUE_DESC_HIGH:
		virtio_mmio_set_address(&q->s.desc_addr, offset == REG_QUEUE_DESC_HIGH, value);
		break;
	case REG_QUEUE_DRIVER_LOW:
	case REG_QUEUE_DRIVER_HIGH:
		virtio_mmio_set_address(&q->s.avail_addr, offset == REG_QUEUE_DRIVER_HIGH, value);
		break;
	case REG_QUEUE_DEVICE_LOW:
	case REG_QUEUE_DEVICE_HIGH:
		virtio_mmio_set_address(&q->s.used_addr, offset == REG_QUEUE_DEVICE_HIGH, value);
		break;
	}
}

static void virtio_mmio_queue_notify(struct virtio_mmio *t, unsigned index)
{
	if (virtio_mmio_live(t) && index < t->model->queue_count && t->queues[index].s.ready)
		t->model->queue_notify(t, index);
}

/* A trapped QueueNotify: hand it to the loop's thread, as an ioeventfd would. */
static void virtio_mmio_kick_loop(struct virtio_mmio *t)
{
	uint64_t one = 1;

	if (write(t->notify_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("virtio %s: cannot signal a notification: %s", t->model->name,
			 strerror(errno));
}

static void virtio_mmio_on_notify(void *opaque, uint32_t events);

static void virtio_mmio_write_reg(struct virtio_mmio *t, uint64_t offset, uint32_t value)
{
	switch (offset) {
	case REG_DEVICE_FEATURES_SEL:
		t->regs.device_features_sel = value;
		break;
	case REG_DRIVER_FEATURES:
		virtio_mmio_write_features(t, value);
		break;
	case REG_DRIVER_FEATURES_SEL:
		t->regs.driver_features_sel = value;
		break;
	case REG_QUEUE_SEL:
		t->regs.queue_sel = value;
		break;
	case REG_QUEUE_NOTIFY:
		if (t->notify_fd >= 0)
			virtio_mmio_kick_loop(t);
		else
			virtio_mmio_queue_notify(t, value);
		break;
	case REG_INTERRUPT_ACK:
		t->regs.interrupt_status &= ~value;
		break;
	case REG_STATUS:
		virtio_mmio_write_status(t, value);
		break;
	case REG_QUEUE_NUM:
	case REG_QUEUE_READY:
	case REG_QUEUE_DESC_LOW:
	case REG_QUEUE_DESC_HIGH:
	case REG_QUEUE_DRIVER_LOW:
	case REG_QUEUE_DRIVER_HIGH:
	case REG_QUEUE_DEVICE_LOW:
	case REG_QUEUE_DEVICE_HIGH:
		virtio_mmio_write_queue(t, offset, value);
		break;
	default:
		break; /* read-only and reserved registers */
	}
}

/* Registers take 32-bit aligned accesses only; config space any width (device config is read-only
 * here). */
void virtio_mmio_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct virtio_mmio *t = opaque;
	uint32_t value = 0;

	pthread_mutex_lock(&t->lock);
	if (offset >= REG_CONFIG) {
		uint64_t config_offset = offset - REG_CONFIG;

		if (!is_write) {
			memset(data, 0, len);
			if (config_offset < t->model->config_size &&
			    len <= t->model->config_size - config_offset)
				t->model->config_read(t, (uint32_t)config_offset, data, len);
		}
	} else if (len != 4 || offset % 4) {
		if (!is_write)
			memset(data, 0, len);
	} else if (is_write) {
		memcpy(&value, data, 4);
		virtio_mmio_write_reg(t, offset, value);
	} else {
		value = virtio_mmio_read_reg(t, offset);
		memcpy(data, &value, 4);
	}
	pthread_mutex_unlock(&t->lock);
}

/* The driver wrote QueueNotify (one eventfd for every queue): look at each live queue. */
static void virtio_mmio_on_notify(void *opaque, uint32_t events)
{
	struct virtio_mmio *t = opaque;
	uint64_t count;

	(void)events;
	if (read(t->notify_fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&t->lock);
	for (unsigned i = 0; i < t->model->queue_count; i++)
		virtio_mmio_queue_notify(t, i);
	pthread_mutex_unlock(&t->lock);
}

/*
 * Queue notifications reach the models on the event loop's thread: KVM
 * signals an eventfd for QueueNotify writes (or, without KVM_IOEVENTFD, the
 * trapped write does), so models may add and remove loop sources freely.
 * KVM injects our IRQ from an irqfd.
 */
static int virtio_mmio_events_setup(struct virtio_mmio *t)
{
	struct kvm_ioeventfd ioeventfd = { .addr = t->base + REG_QUEUE_NOTIFY, .len = 4 };
	struct kvm_irqfd irqfd = { .gsi = t->irq };
	int ret;

	t->notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (t->notify_fd < 0)
		return -errno;
	ret = event_loop_add(t->ctx.loop, t->notify_fd, EPOLLIN, virtio_mmio_on_notify, t);
	if (ret)
		return ret;
	if (t->ctx.vm_fd < 0)
		return 0;
	ioeventfd.fd = t->notify_fd;
	if (ioctl(t->ctx.vm_fd, KVM_IOEVENTFD, &ioeventfd) < 0)
		log_warn("virtio %s: KVM_IOEVENTFD failed (%s): notifications trap", t->model->name,
			 strerror(errno));
	else
		t->notify_in_kernel = true;
	irqfd.fd = (uint32_t)eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if ((int)irqfd.fd < 0)
		return -errno;
	if (ioctl(t->ctx.vm_fd, KVM_IRQFD, &irqfd) < 0) {
		log_warn("virtio %s: KVM_IRQFD failed (%s): using KVM_IRQ_LINE", t->model->name,
			 strerror(errno));
		close((int)irqfd.fd);
	} else {
		t->irq_fd = (int)irqfd.fd;
	}
	return 0;
}

int virtio_mmio_init(struct virtio_mmio *t, const struct virtio_model *model,
		     const struct device_context *ctx)
{
	struct virtio_mmio_slots *slots = ctx->virtio_slots;
	unsigned slot;
	int ret;

	memset(t, 0, sizeof(*t));
	t->notify_fd = t->irq_fd = -1;
	if (!slots || slots->count == VIRTIO_MMIO_MAX_SLOTS)
		return -ENOSPC;
	slot = slots->count;
	pthread_mutex_init(&t->lock, NULL);
	t->model = model;
	t->ctx = *ctx;
	t->base = VIRTIO_MMIO_BASE + (uint64_t)slot * VIRTIO_MMIO_SIZE;
	t->irq = VIRTIO_MMIO_IRQ_BASE + slot;
	t->features = model->features | VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT_DESC;
	virtio_mmio_reset(t);
	ret = io_register(ctx->io, IO_BUS_MMIO, t->base, VIRTIO_MMIO_SIZE, virtio_mmio_access, t);
	if (ret)
		return ret;
	if (ctx->loop) {
		ret = virtio_mmio_events_setup(t);
		if (ret)
			return ret;
	}
	slots->slot[slot].base = t->base;
	slots->slot[slot].irq = t->irq;
	slots->slot[slot].device_id = model->device_id;
	slots->count++;
	return 0;
}

void virtio_mmio_destroy(struct virtio_mmio *t)
{
	if (t->notify_fd >= 0) {
		if (t->ctx.loop)
			event_loop_remove(t->ctx.loop, t->notify_fd);
		close(t->notify_fd);
	}
	if (t->irq_fd >= 0)
		close(t->irq_fd);
	t->notify_fd = t->irq_fd = -1;
	pthread_mutex_destroy(&t->lock);
}

void virtio_mmio_save(struct virtio_mmio *t, struct virtio_mmio_state *state)
{
	state->regs = t->regs;
	for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++)
		state->queues[i] = t->queues[i].s;
}

static int virtio_mmio_check_state(const struct virtio_mmio *t, const struct virtio_mmio_state *s)
{
	static const struct virtq_state unused;
	const struct virtio_mmio_regs *r = &s->regs;

	if (r->status & ~(STATUS_DRIVER_BITS | VIRTIO_STATUS_NEEDS_RESET) ||
	    r->interrupt_status & ~(VIRTIO_INTERRUPT_USED_BUFFER | VIRTIO_INTERRUPT_CONFIG))
		return -EINVAL;
	/* features count as acknowledged once FEATURES_OK stuck; before, they are a register */
	if ((r->status & VIRTIO_STATUS_FEATURES_OK) &&
	    ((r->driver_features & ~t->features) || !(r->driver_features & VIRTIO_F_VERSION_1)))
		return -EINVAL;
	if ((r->status & VIRTIO_STATUS_DRIVER_OK) && !(r->status & VIRTIO_STATUS_FEATURES_OK))
		return -EINVAL;
	for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		const struct virtq_state *q = &s->queues[i];

		if (i >= t->model->queue_count) {
			if (memcmp(q, &unused, sizeof(*q)))
				return -EINVAL;
			continue;
		}
		if (q->size > t->model->queue_max_size || q->ready > 1)
			return -EINVAL;
		if (q->ready && virtq_check(q, t->model->queue_max_size, t->ctx.mem))
			return -EINVAL;
	}
	return 0;
}

int virtio_mmio_restore(struct virtio_mmio *t, const struct virtio_mmio_state *state)
{
	if (virtio_mmio_check_state(t, state))
		return -EINVAL;
	virtio_mmio_reset(t);
	t->regs = state->regs;
	for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++)
		t->queues[i].s = state->queues[i];
	/* an interrupt the guest had not acknowledged may have been lost with the old VM */
	if (t->regs.interrupt_status)
		virtio_mmio_interrupt(t, 0);
	/* buffers the guest posted before the snapshot get looked at without a new notification */
	if (t->notify_fd >= 0)
		virtio_mmio_kick_loop(t);
	return 0;
}

int virtio_mmio_device_quiesce(void *dev)
{
	(void)dev;
	return 0;
}

void virtio_mmio_device_save(void *dev, void *state)
{
	struct virtio_mmio *t = dev;

	pthread_mutex_lock(&t->lock);
	virtio_mmio_save(t, state);
	pthread_mutex_unlock(&t->lock);
}

int virtio_mmio_device_restore(void *dev, const void *state)
{
	struct virtio_mmio *t = dev;
	int ret;

	pthread_mutex_lock(&t->lock);
	ret = virtio_mmio_restore(t, state);
	pthread_mutex_unlock(&t->lock);
	return ret;
}
