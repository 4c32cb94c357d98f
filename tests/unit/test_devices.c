/*
 * Every device in vmm/'s device table: save, restore into a fresh device,
 * save again and compare; then change the device through its own ports and
 * check that the saved state changes too (save must not replay stale bytes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "vmm/device.h"

static void ignore_irq(void *vm, unsigned gsi, bool level)
{
	(void)vm;
	(void)gsi;
	(void)level;
}

static void ignore_event(void *vm, enum guest_event event, uint64_t value, uint64_t rip)
{
	(void)vm;
	(void)event;
	(void)value;
	(void)rip;
}

struct instance {
	struct io_registry io;
	struct device_context ctx;
	void *dev;
};

static void instance_create(struct instance *in, const struct device_ops *ops)
{
	memset(in, 0, sizeof(*in));
	in->ctx = (struct device_context){ .io = &in->io,
					   .irq_line = ignore_irq,
					   .guest_event = ignore_event,
					   .console_out_fd = -1 };
	in->dev = ops->create(&in->ctx);
	assert_non_null(in->dev);
	assert_true(in->io.count > 0);
}

/* Writes a pattern to every byte of every range the device registered. */
static void instance_poke(struct instance *in, uint8_t pattern)
{
	for (unsigned r = 0; r < in->io.count; r++) {
		const struct io_range *range = &in->io.ranges[r];

		for (uint64_t off = 0; off < range->len && off < 256; off++) {
			uint8_t v = (uint8_t)(pattern + off);

			range->handler(range->opaque, off, &v, 1, true);
		}
	}
}

static void test_device_round_trip(const struct device_ops *ops)
{
	struct instance a, b;
	uint8_t *first = calloc(1, ops->state_size), *second = calloc(1, ops->state_size);

	instance_create(&a, ops);
	instance_poke(&a, 0x01);
	assert_int_equal(ops->quiesce(a.dev), 0);
	ops->save(a.dev, first);

	instance_create(&b, ops);
	if (ops->restore(b.dev, first))
		fail_msg("%s: restore of its own saved state failed", ops->name);
	ops->save(b.dev, second);
	if (memcmp(first, second, ops->state_size))
		fail_msg("%s: save -> restore -> save changed the state", ops->name);

	instance_poke(&b, 0x03);
	ops->save(b.dev, second);
	if (!memcmp(first, second, ops->state_size))
		fail_msg("%s: a change after restore did not change the saved state", ops->name);

	ops->reset(b.dev);
	ops->destroy(a.dev);
	ops->destroy(b.dev);
	free(first);
	free(second);
}

static void test_every_device(void **state)
{
	unsigned count = 0;

	(void)state;
	for (unsigned i = 0; device_table[i]; i++, count++) {
		const struct device_ops *ops = device_table[i];

		assert_non_null(ops->name);
		assert_true(ops->state_size > 0);
		test_device_round_trip(ops);
		for (unsigned j = 0; j < i; j++)
			assert_int_not_equal(device_table[j]->section_id, ops->section_id);
	}
	assert_true(count >= 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_device),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
