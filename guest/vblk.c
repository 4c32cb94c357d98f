/*
 * Requests for the virtio block and entropy devices. Block data is a pure
 * function of (seed, sector), and replies are checksums of the data moved,
 * so a write in one VM and a read in another can be compared by their
 * replies.
 */
#include "virtio.h"

#define SECTOR_SIZE	  512
#define WORDS_PER_SECTOR  (SECTOR_SIZE / 8)
#define BLK_CHUNK_SECTORS 128 /* 64 KiB per request */
#define BLK_T_IN	  0
#define BLK_T_OUT	  1
#define BLK_GAVE_UP	  0xff /* the device went to NEEDS_RESET */
#define RNG_CHUNK	  4096

static struct {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
} blk_header;
static volatile uint8_t blk_status;
static GUEST_BUFFER uint64_t blk_data[BLK_CHUNK_SECTORS * WORDS_PER_SECTOR]
	__attribute__((aligned(4096)));
static GUEST_BUFFER uint8_t rng_data[RNG_CHUNK] __attribute__((aligned(4096)));

static void reply_hex(uint64_t value)
{
	console_put_str("OK ");
	console_put_hex64(value);
	console_put_char('\n');
}

static struct vdev *device_ready(uint32_t id, const char *missing)
{
	struct vdev *dev = virtio_find(id, 0);

	if (!dev) {
		console_put_str(missing);
		return 0;
	}
	if (!dev->ready && !virtio_setup(dev, 1)) {
		console_put_str("ERR device refused set-up\n");
		return 0;
	}
	return dev;
}

/* One read or write of `sectors` sectors at `lba` through blk_data; the device's status. */
static uint8_t blk_io(struct vdev *dev, uint32_t type, uint64_t lba, uint64_t sectors)
{
	struct vq *q = dev->queues[0];
	struct vq_used_elem used;

	blk_header.type = type;
	blk_header.sector = lba;
	blk_status = BLK_GAVE_UP;
	q->desc[0] = (struct vq_desc){ (uint64_t)&blk_header, sizeof(blk_header), VQ_F_NEXT, 1 };
	q->desc[1] =
		(struct vq_desc){ (uint64_t)blk_data, (uint32_t)(sectors * SECTOR_SIZE),
				  (uint16_t)(VQ_F_NEXT | (type == BLK_T_IN ? VQ_F_WRITE : 0)), 2 };
	q->desc[2] = (struct vq_desc){ (uint64_t)&blk_status, 1, VQ_F_WRITE, 0 };
	vq_post(q, 0);
	virtio_notify(dev, 0);
	if (!virtio_wait_used(dev, 0, &used)) {
		dev->ready = false;
		return BLK_GAVE_UP;
	}
	return blk_status;
}

static void blk_fill(uint64_t lba, uint64_t sectors, uint64_t seed)
{
	for (uint64_t s = 0; s < sectors; s++) {
		for (unsigned w = 0; w < WORDS_PER_SECTOR; w++)
			blk_data[s * WORDS_PER_SECTOR + w] =
				mix64(seed * 0x100000001b3ULL + (lba + s) * WORDS_PER_SECTOR + w);
	}
}

static uint64_t blk_checksum(uint64_t sum, uint64_t sectors)
{
	for (uint64_t i = 0; i < sectors * WORDS_PER_SECTOR; i++)
		sum = mix64(sum + blk_data[i]);
	return sum;
}

static bool blk_reply_error(uint8_t status)
{
	if (status == 0)
		return false;
	console_put_str("ERR blk status ");
	console_put_dec(status);
	console_put_char('\n');
	return true;
}

/* blk write LBA N SEED / blk read LBA N: N sectors from LBA, in 64 KiB requests. */
static void blk_transfer(uint32_t type, uint64_t lba, uint64_t count, uint64_t seed)
{
	struct vdev *dev = device_ready(VIRTIO_ID_BLOCK, "ERR no disk\n");
	uint64_t sum = 0;

	if (!dev)
		return;
	for (uint64_t done = 0; done < count;) {
		uint64_t n = count - done < BLK_CHUNK_SECTORS ? count - done : BLK_CHUNK_SECTORS;

		if (type == BLK_T_OUT)
			blk_fill(lba + done, n, seed);
		if (blk_reply_error(blk_io(dev, type, lba + done, n)))
			return;
		sum = blk_checksum(sum, n);
		done += n;
	}
	reply_hex(sum);
}

void request_blk_write(const uint64_t *arg)
{
	blk_transfer(BLK_T_OUT, arg[0], arg[1], arg[2]);
}

void request_blk_read(const uint64_t *arg)
{
	blk_transfer(BLK_T_IN, arg[0], arg[1], 0);
}

/* blk random read|write COUNT SEED: COUNT 4 KiB requests at pseudo-random 4 KiB offsets. */
static void blk_random(uint32_t type, uint64_t count, uint64_t seed)
{
	struct vdev *dev = device_ready(VIRTIO_ID_BLOCK, "ERR no disk\n");
	uint64_t blocks, sum = 0;

	if (!dev)
		return;
	blocks = (virtio_config_read(dev, 0) | (uint64_t)virtio_config_read(dev, 4) << 32) / 8;
	if (!blocks) {
		console_put_str("ERR disk smaller than 4 KiB\n");
		return;
	}
	for (uint64_t i = 0; i < count; i++) {
		uint64_t lba = mix64(seed * 0x9e3779b97f4a7c15ULL + i) % blocks * 8;

		if (type == BLK_T_OUT)
			blk_fill(lba, 8, seed);
		if (blk_reply_error(blk_io(dev, type, lba, 8)))
			return;
		sum = blk_checksum(sum, 8);
	}
	reply_hex(sum);
}

void request_blk_random_read(const uint64_t *arg)
{
	blk_random(BLK_T_IN, arg[0], arg[1]);
}

void request_blk_random_write(const uint64_t *arg)
{
	blk_random(BLK_T_OUT, arg[0], arg[1]);
}

/* rng N: N bytes from the entropy device; the reply is a checksum of them (never the same). */
void request_rng(const uint64_t *arg)
{
	struct vdev *dev = device_ready(VIRTIO_ID_RNG, "ERR no rng\n");
	uint64_t sum = 0, done = 0;

	if (!dev)
		return;
	while (done < arg[0]) {
		struct vq *q = dev->queues[0];
		uint64_t want = arg[0] - done < RNG_CHUNK ? arg[0] - done : RNG_CHUNK;
		struct vq_used_elem used;

		q->desc[0] = (struct vq_desc){ (uint64_t)rng_data, (uint32_t)want, VQ_F_WRITE, 0 };
		vq_post(q, 0);
		virtio_notify(dev, 0);
		if (!virtio_wait_used(dev, 0, &used) || used.len > want) {
			dev->ready = false;
			console_put_str("ERR rng failed\n");
			return;
		}
		for (uint32_t i = 0; i < used.len; i++)
			sum = mix64(sum + rng_data[i]);
		done += used.len;
	}
	reply_hex(sum);
}
