/*
 * virtio block device (virtio 1.2, 5.2) over a raw file: read, write, flush
 * and get-id, submitted to io_uring as the driver posts them and completed
 * from the event loop when the kernel is done. A read-only disk offers
 * VIRTIO_BLK_F_RO and fails writes with VIRTIO_BLK_S_IOERR. With rate
 * limits (--disk ...,bw=,iops=) a request the buckets cannot pay for stays
 * in the ring until the limiter's timer says it can.
 * One instance per --disk, in command-line order.
 */
#include "vmm/virtio/virtio.h"
#include "vmm/loop.h"
#include "vmm/ratelimit.h"
#include "vmm/vmm.h"
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#define VIRTIO_ID_BLOCK 2 /* its device id (virtio 1.2, section 5) */

#define BLK_QUEUE_SIZE 128
#define SECTOR_SIZE    512

#define VIRTIO_BLK_F_SEG_MAX  (1ULL << 2)
#define VIRTIO_BLK_F_RO	      (1ULL << 5)
#define VIRTIO_BLK_F_BLK_SIZE (1ULL << 6)
#define VIRTIO_BLK_F_FLUSH    (1ULL << 9)

#define VIRTIO_BLK_T_IN	    0
#define VIRTIO_BLK_T_OUT    1
#define VIRTIO_BLK_T_FLUSH  4
#define VIRTIO_BLK_T_GET_ID 8

#define VIRTIO_BLK_S_OK	    0
#define VIRTIO_BLK_S_IOERR  1
#define VIRTIO_BLK_S_UNSUPP 2

struct virtio_blk_header {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

/* The config space layout, up to blk_size. */
struct virtio_blk_config {
	uint64_t capacity; /* in 512-byte sectors */
	uint32_t size_max;
	uint32_t seg_max;
	uint16_t cylinders;
	uint8_t heads;
	uint8_t sectors;
	uint32_t blk_size;
} __attribute__((packed));

/* The transport, then what the guest saw of the disk and its limits (configuration). */
struct virtio_blk_state {
	struct virtio_mmio_state transport;
	uint8_t read_only;
	uint8_t reserved[7];
	char id[24]; /* the serial (GET_ID), NUL-terminated; empty: none */
	struct rate_saved rate;
};

/* A request handed to io_uring; its index is the completion's user_data. */
struct blk_request {
	bool busy;
	uint16_t head;
	uint8_t *status;   /* in guest RAM */
	uint32_t written;  /* bytes the device writes on success, status included */
	uint64_t expected; /* what the kernel must return for success */
	unsigned iov_count;
	struct iovec iov[VIRTQ_MAX_SEGMENTS];
};

struct virtio_blk {
	struct virtio_mmio t;
	int fd;
	bool read_only;
	char id[VMM_DISK_ID_MAX];
	struct virtio_blk_config config;
	struct io_uring ring;
	bool ring_ready;
	struct event_loop *loop;
	int completion_fd; /* the ring signals completions here */
	unsigned in_flight;
	struct rate_limiter limiter;
	struct blk_request requests[BLK_QUEUE_SIZE];
};
_Static_assert(offsetof(struct virtio_blk, t) == 0, "virtio_mmio_device_* take the device");

static void blk_config_read(struct virtio_mmio *t, uint32_t offset, uint8_t *data, uint32_t len)
{
	struct virtio_blk *b = (struct virtio_blk *)t;

	memcpy(data, (const uint8_t *)&b->config + offset, len);
}

/* Collects [offset, offset + len) of one direction of the chain as iovecs. */
static unsigned blk_iovecs(const struct virtq_chain *chain, bool writable, uint64_t offset,
			   uint64_t len, struct iovec *iov)
{
	unsigned n = 0;

	for (unsigned i = 0; i < chain->count && len; i++) {
		const struct virtq_segment *seg = &chain->segments[i];
		uint64_t take;

		if (seg->writable != writable)
			continue;
		if (offset >= seg->len) {
			offset -= seg->len;
			continue;
		}
		take = MIN(len, seg->len - offset);
		iov[n++] = (struct iovec){ seg->host + offset, (size_t)take };
		len -= take;
		offset = 0;
	}
	return n;
}

static uint8_t *blk_status_byte(const struct virtq_chain *chain)
{
	for (unsigned i = chain->count; i-- > 0;) {
		if (chain->segments[i].writable)
			return chain->segments[i].host + chain->segments[i].len - 1;
	}
	return NULL;
}

static void blk_complete(struct virtio_blk *b, uint16_t head, uint8_t *status, uint8_t value,
			 uint32_t written)
{
	*status = value;
	virtq_push(&b->t.queues[0], head, written);
}

/* Checks a read or write against the disk; VIRTIO_BLK_S_OK or the status to fail with. */
static uint8_t blk_check_io(const struct virtio_blk *b, const struct virtio_blk_header *h,
			    uint64_t len)
{
	if (h->type == VIRTIO_BLK_T_OUT && b->read_only)
		return VIRTIO_BLK_S_IOERR;
	if (len % SECTOR_SIZE || h->sector > b->config.capacity ||
	    len / SECTOR_SIZE > b->config.capacity - h->sector)
		return VIRTIO_BLK_S_IOERR;
	return VIRTIO_BLK_S_OK;
}

static struct blk_request *blk_request_slot(struct virtio_blk *b)
{
	for (unsigned i = 0; i < BLK_QUEUE_SIZE; i++) {
		if (!b->requests[i].busy)
			return &b->requests[i];
	}
	return NULL;
}

/* Queues a read, write or flush on the ring; false if it completed at once (an error). */
static bool blk_submit(struct virtio_blk *b, const struct virtq_chain *chain,
		       const struct virtio_blk_header *h, uint8_t *status)
{
	struct blk_request *r = blk_request_slot(b);
	struct io_uring_sqe *sqe = b->ring_ready ? io_uring_get_sqe(&b->ring) : NULL;
	bool is_read = h->type == VIRTIO_BLK_T_IN;
	uint64_t len = is_read ? chain->writable_len - 1 : chain->readable_len - sizeof(*h);

	if (!r || !sqe) {
		blk_complete(b, chain->head, status, VIRTIO_BLK_S_IOERR, 1);
		return false;
	}
	*r = (struct blk_request){ .busy = true, .head = chain->head, .status = status };
	if (h->type == VIRTIO_BLK_T_FLUSH) {
		io_uring_prep_fsync(sqe, b->fd, IORING_FSYNC_DATASYNC);
		r->written = 1;
	} else {
		r->iov_count = blk_iovecs(chain, is_read, is_read ? 0 : sizeof(*h), len, r->iov);
		r->expected = len;
		r->written = (uint32_t)(is_read ? len + 1 : 1);
		if (is_read)
			io_uring_prep_readv(sqe, b->fd, r->iov, r->iov_count,
					    h->sector * SECTOR_SIZE);
		else
			io_uring_prep_writev(sqe, b->fd, r->iov, r->iov_count,
					     h->sector * SECTOR_SIZE);
	}
	io_uring_sqe_set_data64(sqe, (uint64_t)(r - b->requests));
	b->in_flight++;
	return true;
}

/* Handles one request; true if it went to io_uring. */
static bool blk_handle(struct virtio_blk *b, const struct virtq_chain *chain)
{
	struct virtio_blk_header h;
	uint8_t *status = blk_status_byte(chain);
	uint8_t result;

	if (!status || virtq_chain_read(chain, 0, &h, sizeof(h)) != sizeof(h)) {
		virtio_mmio_drop(&b->t, 0, chain, "block request without header or status byte");
		return false;
	}
	switch (h.type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		result = blk_check_io(b, &h,
				      h.type == VIRTIO_BLK_T_IN ? chain->writable_len - 1
								: chain->readable_len - sizeof(h));
		if (result == VIRTIO_BLK_S_OK)
			return blk_submit(b, chain, &h, status);
		break;
	case VIRTIO_BLK_T_FLUSH:
		return blk_submit(b, chain, &h, status);
	case VIRTIO_BLK_T_GET_ID: {
		size_t n = virtq_chain_write(chain, 0, b->id,
					     MIN(sizeof(b->id), chain->writable_len - 1));

		blk_complete(b, chain->head, status, VIRTIO_BLK_S_OK, (uint32_t)n + 1);
		return false;
	}
	default:
		result = VIRTIO_BLK_S_UNSUPP;
		break;
	}
	blk_complete(b, chain->head, status, result, 1);
	return false;
}

/* The data bytes a request moves, as the bandwidth limit counts them. */
static uint64_t blk_request_bytes(const struct virtq_chain *chain)
{
	struct virtio_blk_header h;

	if (virtq_chain_read(chain, 0, &h, sizeof(h)) != sizeof(h))
		return 0;
	if (h.type == VIRTIO_BLK_T_IN && chain->writable_len)
		return chain->writable_len - 1;
	if (h.type == VIRTIO_BLK_T_OUT)
		return chain->readable_len - sizeof(h);
	return 0;
}

static void blk_queue_notify(struct virtio_mmio *t, unsigned index)
{
	struct virtio_blk *b = (struct virtio_blk *)t;
	struct virtq_chain chain;
	bool submitted = false, completed = false;

	/* leave the chains in the ring while every request slot is busy, or the limits hold */
	while (b->in_flight < BLK_QUEUE_SIZE && !rate_limiter_blocked(&b->limiter) &&
	       virtio_mmio_pop(t, index, &chain)) {
		if (rate_limiter_enabled(&b->limiter) &&
		    !rate_limiter_admit(&b->limiter, blk_request_bytes(&chain), time_now_ns())) {
			virtq_unpop(&t->queues[index], 1); /* taken again when the timer fires */
			break;
		}
		if (blk_handle(b, &chain))
			submitted = true;
		else
			completed = true;
	}
	if (submitted)
		io_uring_submit(&b->ring);
	if (completed)
		virtio_mmio_notify_used(t, index);
}

/* Completes what the kernel finished; with wait, until nothing is in flight. Lock held. */
static void blk_reap(struct virtio_blk *b, bool wait)
{
	struct io_uring_cqe *cqe;
	bool completed = false;

	while (b->in_flight) {
		int ret = wait ? io_uring_wait_cqe(&b->ring, &cqe)
			       : io_uring_peek_cqe(&b->ring, &cqe);
		struct blk_request *r;

		if (ret == -EINTR)
			continue;
		if (ret)
			break;
		r = &b->requests[io_uring_cqe_get_data64(cqe) % BLK_QUEUE_SIZE];
		if (r->busy) {
			bool ok = cqe->res >= 0 && (uint64_t)cqe->res == r->expected;

			blk_complete(b, r->head, r->status,
				     ok ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR,
				     ok ? r->written : 1);
			r->busy = false;
			b->in_flight--;
			completed = true;
		}
		io_uring_cqe_seen(&b->ring, cqe);
	}
	if (completed)
		virtio_mmio_notify_used(&b->t, 0);
}

static void blk_on_completion(void *opaque, uint32_t events)
{
	struct virtio_blk *b = opaque;
	uint64_t count;

	(void)events;
	if (read(b->completion_fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&b->t.lock);
	blk_reap(b, false);
	/* chains left in the ring for want of a request slot */
	if (virtio_mmio_live(&b->t))
		blk_queue_notify(&b->t, 0);
	pthread_mutex_unlock(&b->t.lock);
}

/* The limiter's timer: the tokens for the request left in the ring are there. */
static void blk_rate_resume(void *opaque)
{
	struct virtio_blk *b = opaque;

	pthread_mutex_lock(&b->t.lock);
	if (virtio_mmio_live(&b->t))
		blk_queue_notify(&b->t, 0);
	pthread_mutex_unlock(&b->t.lock);
}

/* A driver reset: requests in flight still write guest memory, so let them finish first. */
static void blk_model_reset(struct virtio_mmio *t)
{
	blk_reap((struct virtio_blk *)t, true);
}

static const struct virtio_model blk_model = {
	.name = "block",
	.device_id = VIRTIO_ID_BLOCK,
	.features = VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_FLUSH,
	.queue_count = 1,
	.queue_max_size = BLK_QUEUE_SIZE,
	.config_read = blk_config_read,
	.config_size = sizeof(struct virtio_blk_config),
	.queue_notify = blk_queue_notify,
	.reset = blk_model_reset,
};

static int blk_open(struct virtio_blk *b, const struct vmm_disk *disk)
{
	off_t size;

	b->fd = open(disk->path, (disk->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (b->fd < 0)
		return -errno;
	size = lseek(b->fd, 0, SEEK_END);
	if (size < 0)
		return -errno;
	b->read_only = disk->read_only;
	/* the serial is a fixed 20-byte field, unterminated when full */
	memcpy(b->id, disk->id, strnlen(disk->id, sizeof(b->id)));
	b->config = (struct virtio_blk_config){ .capacity = (uint64_t)size / SECTOR_SIZE,
						.seg_max = VIRTQ_MAX_SEGMENTS - 2,
						.blk_size = SECTOR_SIZE };
	return 0;
}

static int blk_ring_setup(struct virtio_blk *b, const struct device_context *ctx)
{
	int ret = io_uring_queue_init(BLK_QUEUE_SIZE, &b->ring, 0);

	if (ret)
		return ret;
	b->ring_ready = true;
	if (!ctx->loop)
		return 0;
	b->loop = ctx->loop;
	b->completion_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (b->completion_fd < 0)
		return -errno;
	ret = io_uring_register_eventfd(&b->ring, b->completion_fd);
	if (!ret)
		ret = event_loop_add(ctx->loop, b->completion_fd, EPOLLIN, blk_on_completion, b);
	return ret;
}

static unsigned blk_instances(const struct vmm_config *config)
{
	return config ? config->disk_count : 0;
}

static void blk_destroy(void *dev);

static void *blk_create(const struct device_context *ctx)
{
	const struct vmm_disk *disk = &ctx->config->disks[ctx->instance];
	struct virtio_blk *b = calloc(1, sizeof(*b));
	int ret;

	if (!b)
		return NULL;
	b->fd = b->completion_fd = -1;
	b->t.notify_fd = b->t.irq_fd = -1;
	rate_limiter_init_unlimited(&b->limiter);
	ret = blk_open(b, disk);
	if (ret) {
		log_error("disk %s: %s", disk->path, strerror(-ret));
		goto fail;
	}
	ret = blk_ring_setup(b, ctx);
	if (ret) {
		log_error("disk %s: cannot set up io_uring: %s", disk->path, strerror(-ret));
		goto fail;
	}
	ret = rate_limiter_init(&b->limiter, &disk->rate, ctx->loop, blk_rate_resume, b);
	if (ret) {
		log_error("disk %s: cannot set up its rate limiter: %s", disk->path,
			  strerror(-ret));
		goto fail;
	}
	ret = virtio_mmio_init(&b->t, &blk_model, ctx);
	if (ret)
		goto fail;
	if (b->read_only)
		b->t.features |= VIRTIO_BLK_F_RO;
	return b;
fail:
	blk_destroy(b);
	return NULL;
}

static int blk_quiesce(void *dev)
{
	struct virtio_blk *b = dev;

	pthread_mutex_lock(&b->t.lock);
	blk_reap(b, true);
	pthread_mutex_unlock(&b->t.lock);
	return 0;
}

static void blk_save(void *dev, void *state)
{
	struct virtio_blk *b = dev;
	struct virtio_blk_state *s = state;

	pthread_mutex_lock(&b->t.lock);
	virtio_mmio_save(&b->t, &s->transport);
	pthread_mutex_unlock(&b->t.lock);
	s->read_only = b->read_only;
	memset(s->reserved, 0, sizeof(s->reserved));
	memset(s->id, 0, sizeof(s->id));
	memcpy(s->id, b->id, sizeof(b->id));
	s->rate = rate_saved_from(&b->t.ctx.config->disks[b->t.ctx.instance].rate);
}

static int blk_restore(void *dev, const void *state)
{
	struct virtio_blk *b = dev;
	const struct virtio_blk_state *s = state;
	int ret;

	/* the configuration was derived from this state (blk_restore_config) */
	if (s->read_only != b->read_only || strncmp(s->id, b->id, sizeof(b->id)) ||
	    s->id[sizeof(b->id)])
		return -EINVAL;
	pthread_mutex_lock(&b->t.lock);
	blk_reap(b, true);
	ret = virtio_mmio_restore(&b->t, &s->transport);
	pthread_mutex_unlock(&b->t.lock);
	return ret;
}

/* The guest keeps its disks, read-only flag and serial; the files are the restore's. */
static int blk_restore_config(const void *const *states, unsigned count,
			      const struct vmm_config *wanted, struct vmm_config *config)
{
	if (wanted->disk_count != count) {
		if (count)
			log_error("the snapshot's VM has %u disk%s: give --disk PATH for each at "
				  "restore",
				  count, count == 1 ? "" : "s");
		else
			log_error("the snapshot's VM has no disk");
		return -EINVAL;
	}
	config->disk_count = count;
	for (unsigned i = 0; i < count; i++) {
		const struct virtio_blk_state *s = states[i];
		struct vmm_disk *disk = &config->disks[i];

		if (s->read_only > 1 || !memchr(s->id, '\0', VMM_DISK_ID_MAX + 1)) {
			log_error("snapshot's disk %u configuration is damaged", i);
			return -EINVAL;
		}
		if (wanted->disks[i].read_only != s->read_only) {
			log_error("disk %u was %s in the snapshot; that cannot change", i,
				  s->read_only ? "read-only" : "writable");
			return -EINVAL;
		}
		memcpy(disk->id, s->id, sizeof(disk->id)); /* NUL-terminated within: checked */
		if (rate_saved_restore(&s->rate, &wanted->disks[i].rate, "disk", &disk->rate))
			return -EINVAL;
	}
	return 0;
}

static void blk_destroy(void *dev)
{
	struct virtio_blk *b = dev;

	if (b->ring_ready) {
		blk_reap(b, true);
		io_uring_queue_exit(&b->ring);
	}
	if (b->completion_fd >= 0) {
		if (b->loop)
			event_loop_remove(b->loop, b->completion_fd);
		close(b->completion_fd);
	}
	if (b->fd >= 0)
		close(b->fd);
	rate_limiter_destroy(&b->limiter);
	virtio_mmio_destroy(&b->t);
	free(b);
}

const struct device_ops virtio_blk_device_ops = {
	.name = "virtio-blk",
	.section_id = 0x0304,
	.state_version = 2, /* 2: the disk's configuration */
	.state_size = sizeof(struct virtio_blk_state),
	.instances = blk_instances,
	.create = blk_create,
	.reset = virtio_mmio_device_reset,
	.quiesce = blk_quiesce,
	.save = blk_save,
	.restore = blk_restore,
	.restore_config = blk_restore_config,
	.destroy = blk_destroy,
};
DEVICE_REGISTER(virtio_blk_device_ops);
