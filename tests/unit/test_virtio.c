/*
 * vmm/virtio: the virtio-mmio transport's state machine (driven through its
 * registers, on the entropy device) and the virtqueue walker (on rings built
 * by hand in a small guest memory), including every malformed chain it must
 * refuse and the saved states restore() must refuse.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"
#include "vmm/virtio/virtio.h"
#include "vmm/vmm.h"

/* The devices tested here by name (each registers itself in its own file). */
extern const struct device_ops virtio_rng_device_ops; /* vmm/virtio/rng.c */
extern const struct device_ops virtio_blk_device_ops; /* vmm/virtio/blk.c */

#define MEM_SIZE (1 << 20)
#define DESC	 0x10000
#define AVAIL	 0x11000
#define USED	 0x12000
#define BUF	 0x20000
#define TABLE	 0x30000
#define QSIZE	 8

enum {
	REG_MAGIC = 0x000,
	REG_VERSION = 0x004,
	REG_DEVICE_ID = 0x008,
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
	REG_QUEUE_DRIVER_LOW = 0x090,
	REG_QUEUE_DEVICE_LOW = 0x0a0,
};

static unsigned irq_count;

static void count_irq(void *vm, unsigned gsi, bool level)
{
	(void)vm;
	(void)gsi;
	irq_count += level;
}

struct fixture {
	struct guest_memory mem;
	struct io_registry io;
	struct vmm_config config;
	struct virtio_mmio_slots slots;
	struct device_context ctx;
	void *dev;
	struct virtio_mmio *t;
};

static struct fixture f;

static int setup(void **state)
{
	(void)state;
	memset(&f, 0, sizeof(f));
	guest_memory_layout(&f.mem, MEM_SIZE);
	if (guest_memory_map(&f.mem))
		return -1;
	vmm_config_init(&f.config);
	assert_int_equal(vmm_config_device_arg_add(&f.config, "virtio-rng", ""), 0);
	f.ctx = (struct device_context){ .io = &f.io,
					 .mem = &f.mem,
					 .irq_line = count_irq,
					 .console_out_fd = -1,
					 .console_in_fd = -1,
					 .vm_fd = -1,
					 .config = &f.config,
					 .virtio_slots = &f.slots };
	f.dev = virtio_rng_device_ops.create(&f.ctx);
	f.t = f.dev; /* the transport is the device's first member */
	irq_count = 0;
	return f.dev ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	virtio_rng_device_ops.destroy(f.dev);
	guest_memory_unmap(&f.mem);
	return 0;
}

static uint32_t rd(uint64_t offset)
{
	uint32_t v;

	virtio_mmio_access(f.t, offset, (uint8_t *)&v, 4, false);
	return v;
}

static void wr(uint64_t offset, uint32_t v)
{
	virtio_mmio_access(f.t, offset, (uint8_t *)&v, 4, true);
}

static void *gpa(uint64_t addr)
{
	return guest_memory_ptr(&f.mem, addr, 1);
}

/* The driver's side of set-up, as the spec orders it. */
static void driver_init(void)
{
	wr(REG_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	wr(REG_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	wr(REG_DRIVER_FEATURES_SEL, 1);
	wr(REG_DRIVER_FEATURES, 1); /* VERSION_1 */
	wr(REG_STATUS, 0x0b);
	assert_int_equal(rd(REG_STATUS), 0x0b);
	wr(REG_QUEUE_SEL, 0);
	wr(REG_QUEUE_NUM, QSIZE);
	wr(REG_QUEUE_DESC_LOW, DESC);
	wr(REG_QUEUE_DRIVER_LOW, AVAIL);
	wr(REG_QUEUE_DEVICE_LOW, USED);
	wr(REG_QUEUE_READY, 1);
	wr(REG_STATUS, 0x0f);
	assert_int_equal(rd(REG_STATUS), 0x0f);
}

static void set_desc(unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	struct virtq_desc *d = gpa(DESC);

	d[i] = (struct virtq_desc){ addr, len, flags, next };
}

static void post(uint16_t head)
{
	uint16_t *avail = gpa(AVAIL);

	avail[2 + avail[1] % QSIZE] = head;
	avail[1]++;
}

static uint16_t used_idx(void)
{
	return ((uint16_t *)gpa(USED))[1];
}

static uint32_t used_len(unsigned entry)
{
	return ((uint32_t *)gpa(USED + 4))[2 * entry + 1];
}

static void test_identity_registers(void **state)
{
	(void)state;
	assert_int_equal(rd(REG_MAGIC), 0x74726976);
	assert_int_equal(rd(REG_VERSION), 2);
	assert_int_equal(rd(REG_DEVICE_ID), 4); /* entropy source (virtio 1.2, 5.4) */
	wr(REG_DEVICE_FEATURES_SEL, 1);
	assert_int_equal(rd(REG_DEVICE_FEATURES) & 1, 1); /* VERSION_1 */
	wr(REG_DEVICE_FEATURES_SEL, 7);
	assert_int_equal(rd(REG_DEVICE_FEATURES), 0);
	wr(REG_QUEUE_SEL, 0);
	assert_int_equal(rd(REG_QUEUE_NUM_MAX), 64);
	wr(REG_QUEUE_SEL, 1);
	assert_int_equal(rd(REG_QUEUE_NUM_MAX), 0); /* no such queue */
	assert_int_equal(f.slots.count, 1);
	assert_int_equal(f.slots.slot[0].base, VIRTIO_MMIO_BASE);
	assert_int_equal(f.slots.slot[0].irq, VIRTIO_MMIO_IRQ_BASE);
}

static void test_feature_negotiation(void **state)
{
	(void)state;
	/* a legacy driver (no VERSION_1) does not get FEATURES_OK */
	wr(REG_STATUS, 0x03);
	wr(REG_STATUS, 0x0b);
	assert_int_equal(rd(REG_STATUS), 0x03);
	/* nor one that acknowledges a feature that was not offered */
	wr(REG_DRIVER_FEATURES_SEL, 1);
	wr(REG_DRIVER_FEATURES, 1 | 2);
	wr(REG_STATUS, 0x0b);
	assert_int_equal(rd(REG_STATUS), 0x03);
	wr(REG_DRIVER_FEATURES, 1);
	/* DRIVER_OK before FEATURES_OK does not stick */
	wr(REG_STATUS, 0x07);
	assert_int_equal(rd(REG_STATUS), 0x03);
	wr(REG_STATUS, 0x0b);
	assert_int_equal(rd(REG_STATUS), 0x0b);
	/* features are frozen once accepted */
	wr(REG_DRIVER_FEATURES, 0);
	assert_int_equal(virtio_mmio_features(f.t), VIRTIO_F_VERSION_1);
	/* clearing a bit is an error: NEEDS_RESET and a config interrupt */
	wr(REG_STATUS, 0x01);
	assert_true(rd(REG_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
	assert_int_equal(rd(REG_INTERRUPT_STATUS), VIRTIO_INTERRUPT_CONFIG);
	assert_int_equal(irq_count, 1);
	wr(REG_INTERRUPT_ACK, VIRTIO_INTERRUPT_CONFIG);
	assert_int_equal(rd(REG_INTERRUPT_STATUS), 0);
	/* writing 0 resets everything */
	wr(REG_STATUS, 0);
	assert_int_equal(rd(REG_STATUS), 0);
	assert_int_equal(virtio_mmio_features(f.t), 0);
}

static void test_queue_setup_checks(void **state)
{
	(void)state;
	wr(REG_STATUS, 0x03);
	wr(REG_QUEUE_NUM, 6); /* not a power of two */
	wr(REG_QUEUE_DESC_LOW, DESC);
	wr(REG_QUEUE_DRIVER_LOW, AVAIL);
	wr(REG_QUEUE_DEVICE_LOW, USED);
	wr(REG_QUEUE_READY, 1);
	assert_int_equal(rd(REG_QUEUE_READY), 0);
	assert_true(rd(REG_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
	wr(REG_STATUS, 0);
	driver_init();
	/* a live queue's configuration cannot change */
	wr(REG_QUEUE_NUM, 2);
	assert_int_equal(f.t->queues[0].s.size, QSIZE);
	/* a ring outside guest RAM is refused when the queue goes live */
	wr(REG_STATUS, 0);
	wr(REG_STATUS, 0x03);
	wr(REG_QUEUE_NUM, QSIZE);
	wr(REG_QUEUE_DESC_LOW, MEM_SIZE - 16);
	wr(REG_QUEUE_READY, 1);
	assert_true(rd(REG_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
	/* accesses other than aligned 32-bit ones do nothing */
	wr(REG_STATUS, 0);
	{
		uint8_t byte = 0x0f;

		virtio_mmio_access(f.t, REG_STATUS, &byte, 1, true);
		assert_int_equal(rd(REG_STATUS), 0);
	}
}

static void test_rng_request(void **state)
{
	uint8_t *buf = gpa(BUF);

	(void)state;
	driver_init();
	memset(buf, 0, 64);
	set_desc(0, BUF, 64, VIRTQ_DESC_F_WRITE, 0);
	post(0);
	wr(REG_QUEUE_NOTIFY, 0);
	assert_int_equal(used_idx(), 1);
	assert_int_equal(used_len(0), 64);
	assert_int_equal(rd(REG_INTERRUPT_STATUS), VIRTIO_INTERRUPT_USED_BUFFER);
	assert_int_equal(irq_count, 1);
	/* a readable buffer is the wrong kind: returned unused */
	set_desc(1, BUF, 64, 0, 0);
	post(1);
	wr(REG_QUEUE_NOTIFY, 0);
	assert_int_equal(used_idx(), 2);
	assert_int_equal(used_len(1), 0);
}

/* Pops one chain from queue 0 after posting `head`. */
static enum virtq_pop_result pop(uint16_t head, struct virtq_chain *chain, const char **why)
{
	post(head);
	return virtq_pop(&f.t->queues[0], chain, why);
}

static void test_walker_good_chains(void **state)
{
	struct virtq_chain chain;
	const char *why;
	uint8_t out[8];

	(void)state;
	driver_init();
	assert_int_equal(virtq_pop(&f.t->queues[0], &chain, &why), VIRTQ_EMPTY);
	set_desc(0, BUF, 4, VIRTQ_DESC_F_NEXT, 1);
	set_desc(1, BUF + 100, 4, VIRTQ_DESC_F_NEXT, 2);
	set_desc(2, BUF + 200, 16, VIRTQ_DESC_F_WRITE, 0);
	memcpy(gpa(BUF), "abcd", 4);
	memcpy(gpa(BUF + 100), "efgh", 4);
	assert_int_equal(pop(0, &chain, &why), VIRTQ_CHAIN);
	assert_int_equal(chain.count, 3);
	assert_int_equal(chain.readable_len, 8);
	assert_int_equal(chain.writable_len, 16);
	assert_int_equal(virtq_chain_read(&chain, 2, out, 6), 6);
	assert_memory_equal(out, "cdefgh", 6);
	assert_int_equal(virtq_chain_write(&chain, 10, "0123456789", 10), 6);
	assert_memory_equal(gpa(BUF + 210), "012345", 6);
	virtq_push(&f.t->queues[0], chain.head, 16);
	assert_int_equal(used_idx(), 1);

	/* indirect: a table of two */
	{
		struct virtq_desc *table = gpa(TABLE);

		table[0] = (struct virtq_desc){ BUF, 8, VIRTQ_DESC_F_NEXT, 1 };
		table[1] = (struct virtq_desc){ BUF + 8, 8, VIRTQ_DESC_F_WRITE, 0 };
		set_desc(3, TABLE, 32, VIRTQ_DESC_F_INDIRECT, 0);
		assert_int_equal(pop(3, &chain, &why), VIRTQ_CHAIN);
		assert_int_equal(chain.count, 2);
		assert_int_equal(chain.readable_len, 8);
		assert_int_equal(chain.writable_len, 8);
	}
}

struct bad_case {
	const char *name;
	void (*build)(void);
};

static void bad_outside_ram(void)
{
	set_desc(0, MEM_SIZE - 8, 16, VIRTQ_DESC_F_WRITE, 0);
}

static void bad_length_overflow(void)
{
	set_desc(0, UINT64_MAX - 4, 16, VIRTQ_DESC_F_WRITE, 0);
}

static void bad_loop(void)
{
	set_desc(0, BUF, 4, VIRTQ_DESC_F_NEXT, 1);
	set_desc(1, BUF, 4, VIRTQ_DESC_F_NEXT, 0);
}

static void bad_next(void)
{
	set_desc(0, BUF, 4, VIRTQ_DESC_F_NEXT, QSIZE);
}

static void bad_direction(void)
{
	set_desc(0, BUF, 4, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	set_desc(1, BUF, 4, 0, 0);
}

static void set_table(unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	((struct virtq_desc *)gpa(TABLE))[i] = (struct virtq_desc){ addr, len, flags, next };
}

static void bad_indirect_nested(void)
{
	set_table(0, TABLE + 64, 16, VIRTQ_DESC_F_INDIRECT, 0);
	set_desc(0, TABLE, 16, VIRTQ_DESC_F_INDIRECT, 0);
}

static void bad_indirect_length(void)
{
	set_desc(0, TABLE, 24, VIRTQ_DESC_F_INDIRECT, 0);
}

static void bad_indirect_too_big(void)
{
	set_desc(0, TABLE, (VIRTQ_MAX_INDIRECT + 1) * 16, VIRTQ_DESC_F_INDIRECT, 0);
}

static void bad_indirect_with_next(void)
{
	set_table(0, BUF, 4, 0, 0);
	set_desc(0, TABLE, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
	set_desc(1, BUF, 4, 0, 0);
}

static void bad_indirect_loop(void)
{
	set_table(0, BUF, 4, VIRTQ_DESC_F_NEXT, 1);
	set_table(1, BUF, 4, VIRTQ_DESC_F_NEXT, 0);
	set_desc(0, TABLE, 32, VIRTQ_DESC_F_INDIRECT, 0);
}

static void bad_too_many_buffers(void)
{
	for (uint16_t i = 0; i < VIRTQ_MAX_SEGMENTS + 1; i++)
		set_table(i, BUF + i, 1, VIRTQ_DESC_F_NEXT, (uint16_t)(i + 1));
	set_table(VIRTQ_MAX_SEGMENTS, BUF, 1, 0, 0);
	set_desc(0, TABLE, (VIRTQ_MAX_SEGMENTS + 1) * 16, VIRTQ_DESC_F_INDIRECT, 0);
}

static void test_walker_bad_chains(void **state)
{
	static const struct bad_case cases[] = {
		{ "outside RAM", bad_outside_ram },
		{ "length overflow", bad_length_overflow },
		{ "loop", bad_loop },
		{ "next out of range", bad_next },
		{ "readable after writable", bad_direction },
		{ "nested indirect", bad_indirect_nested },
		{ "indirect length", bad_indirect_length },
		{ "indirect too big", bad_indirect_too_big },
		{ "indirect with next", bad_indirect_with_next },
		{ "indirect loop", bad_indirect_loop },
		{ "too many buffers", bad_too_many_buffers },
	};
	struct virtq_chain chain;
	const char *why;

	(void)state;
	driver_init();
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		memset(gpa(DESC), 0, 16 * QSIZE);
		cases[i].build();
		if (pop(0, &chain, &why) != VIRTQ_BAD_CHAIN)
			fail_msg("%s: accepted", cases[i].name);
		assert_non_null(why);
		assert_int_equal(chain.head, 0);
	}
}

static void test_walker_broken_rings(void **state)
{
	uint16_t *avail = gpa(AVAIL);
	struct virtq_chain chain;
	const char *why;

	(void)state;
	driver_init();
	/* a head outside the table */
	assert_int_equal(pop(QSIZE, &chain, &why), VIRTQ_BROKEN);
	/* the avail index more than a queue ahead */
	wr(REG_STATUS, 0);
	memset(gpa(AVAIL), 0, 64);
	driver_init();
	avail[1] = QSIZE + 1;
	assert_int_equal(virtq_pop(&f.t->queues[0], &chain, &why), VIRTQ_BROKEN);
	/* through the device: NEEDS_RESET, and nothing more is served */
	wr(REG_QUEUE_NOTIFY, 0);
	assert_true(rd(REG_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
	assert_int_equal(used_idx(), 0);
}

static void test_restore_checks(void **state)
{
	const struct device_ops *ops = &virtio_rng_device_ops;
	struct virtio_mmio_state good, bad;

	(void)state;
	driver_init();
	set_desc(0, BUF, 64, VIRTQ_DESC_F_WRITE, 0);
	post(0);
	wr(REG_QUEUE_NOTIFY, 0);
	ops->save(f.dev, &good);
	assert_int_equal(good.queues[0].last_avail, 1);
	assert_int_equal(ops->restore(f.dev, &good), 0);

	bad = good;
	bad.queues[0].size = 128; /* above the maximum */
	assert_int_equal(ops->restore(f.dev, &bad), -EINVAL);
	bad = good;
	bad.queues[0].used_addr = MEM_SIZE - 8; /* outside RAM */
	assert_int_equal(ops->restore(f.dev, &bad), -EINVAL);
	bad = good;
	bad.queues[0].desc_addr = DESC + 8; /* misaligned */
	assert_int_equal(ops->restore(f.dev, &bad), -EINVAL);
	bad = good;
	bad.regs.driver_features |= 1ULL << 40; /* not offered */
	assert_int_equal(ops->restore(f.dev, &bad), -EINVAL);
	bad = good;
	bad.regs.status &= ~VIRTIO_STATUS_FEATURES_OK;
	assert_int_equal(ops->restore(f.dev, &bad), -EINVAL);
	bad = good;
	bad.queues[2].size = 1; /* a queue the device does not have */
	assert_int_equal(ops->restore(f.dev, &bad), -EINVAL);
	/* a refused state leaves the device as it was */
	assert_int_equal(rd(REG_STATUS), 0x0f);
	/* and the good one continues where it stopped */
	assert_int_equal(ops->restore(f.dev, &good), 0);
	set_desc(1, BUF, 64, VIRTQ_DESC_F_WRITE, 0);
	post(1);
	wr(REG_QUEUE_NOTIFY, 0);
	assert_int_equal(used_idx(), 2);
}

/* The block device on a 4 KiB file: requests complete on io_uring, reaped by quiesce. */
static void test_blk_requests(void **state)
{
	static const uint32_t ro_out[4] = { 1, 0, 0, 0 }, get_id[4] = { 8, 0, 0, 0 },
			      bad[4] = { 99, 0, 0, 0 }, read_past_end[4] = { 0, 0, 8, 0 };
	char path[] = "/tmp/snapvm-test-blk-XXXXXX";
	int fd = mkstemp(path);
	struct vmm_config config;
	struct device_context ctx = f.ctx;
	const struct device_ops *ops = &virtio_blk_device_ops;
	void *blk;
	uint8_t *status = gpa(BUF + 0x800);

	(void)state;
	assert_true(fd >= 0 && ftruncate(fd, 4096) == 0);
	vmm_config_init(&config);
	config.disk_count = 1;
	config.disks[0].read_only = true;
	snprintf(config.disks[0].path, sizeof(config.disks[0].path), "%s", path);
	snprintf(config.disks[0].id, sizeof(config.disks[0].id), "serial-7");
	ctx.config = &config;
	blk = ops->create(&ctx);
	assert_non_null(blk);
	f.t = blk;
	driver_init();
	wr(REG_DEVICE_FEATURES_SEL, 0);
	assert_true(rd(REG_DEVICE_FEATURES) & (1u << 5)); /* VIRTIO_BLK_F_RO */
	assert_int_equal(rd(0x100), 8);			  /* capacity: 8 sectors */

	struct {
		const uint32_t *header;
		uint32_t data_len;
		uint16_t data_flags;
		uint8_t want;
	} cases[] = {
		{ ro_out, 512, 0, 1 },		       /* write to a read-only disk: IOERR */
		{ get_id, 20, VIRTQ_DESC_F_WRITE, 0 }, /* get-id */
		{ bad, 0, 0, 2 },		       /* unknown type: UNSUPP */
		{ read_past_end, 1024, VIRTQ_DESC_F_WRITE, 1 },
	};
	for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
		memcpy(gpa(BUF), cases[i].header, 16);
		*status = 0xee;
		set_desc(0, BUF, 16, VIRTQ_DESC_F_NEXT, 1);
		set_desc(1, BUF + 0x100, cases[i].data_len,
			 (uint16_t)(cases[i].data_flags | VIRTQ_DESC_F_NEXT), 2);
		set_desc(2, BUF + 0x800, 1, VIRTQ_DESC_F_WRITE, 0);
		post(0);
		wr(REG_QUEUE_NOTIFY, 0);
		assert_int_equal(ops->quiesce(blk), 0);
		if (*status != cases[i].want)
			fail_msg("case %u: status %u, want %u", i, *status, cases[i].want);
	}
	assert_memory_equal(gpa(BUF + 0x100), "serial-7\0", 9);
	/* a read of the whole disk goes through io_uring */
	memcpy(gpa(BUF), (uint32_t[4]){ 0, 0, 0, 0 }, 16);
	set_desc(0, BUF, 16, VIRTQ_DESC_F_NEXT, 1);
	set_desc(1, BUF + 0x1000, 4096, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
	set_desc(2, BUF + 0x800, 1, VIRTQ_DESC_F_WRITE, 0);
	memset(gpa(BUF + 0x1000), 0xff, 4096);
	post(0);
	wr(REG_QUEUE_NOTIFY, 0);
	assert_int_equal(ops->quiesce(blk), 0);
	assert_int_equal(*status, 0);
	assert_int_equal(used_len(4), 4097);
	assert_int_equal(((uint8_t *)gpa(BUF + 0x1000))[4095], 0);
	ops->destroy(blk);
	f.t = f.dev;
	unlink(path);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_identity_registers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_feature_negotiation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_setup_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rng_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_walker_good_chains, setup, teardown),
		cmocka_unit_test_setup_teardown(test_walker_bad_chains, setup, teardown),
		cmocka_unit_test_setup_teardown(test_walker_broken_rings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restore_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blk_requests, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
