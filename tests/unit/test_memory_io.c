/* vmm/memory.c and vmm/io.c: the guest-physical bounds check and the trap registry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "common/common.h"
#include "vmm/io.h"
#include "vmm/memory.h"

static void test_memory_layout_around_the_hole(void **state)
{
	struct guest_memory mem;

	(void)state;
	guest_memory_layout(&mem, 128ULL << 20);
	assert_int_equal(mem.region_count, 1);
	guest_memory_layout(&mem, 4ULL << 30);
	assert_int_equal(mem.region_count, 2);
	assert_int_equal(mem.regions[0].size, GUEST_LOW_RAM_END);
	assert_int_equal(mem.regions[1].gpa, GUEST_HIGH_RAM_START);
	assert_int_equal(mem.regions[1].size, (4ULL << 30) - GUEST_LOW_RAM_END);
	assert_int_equal(mem.regions[1].offset, GUEST_LOW_RAM_END);
}

static void test_memory_ptr_bounds(void **state)
{
	struct guest_memory mem;
	uint8_t *backing;

	(void)state;
	guest_memory_layout(&mem, 4ULL << 30);
	assert_int_equal(guest_memory_map(&mem), 0); /* reserved, never touched */
	backing = mem.host;
	assert_ptr_equal(guest_memory_ptr(&mem, 0, 16), backing);
	assert_ptr_equal(guest_memory_ptr(&mem, GUEST_LOW_RAM_END - 16, 16),
			 backing + GUEST_LOW_RAM_END - 16);
	assert_null(guest_memory_ptr(&mem, GUEST_LOW_RAM_END - 16, 17)); /* into the hole */
	assert_null(guest_memory_ptr(&mem, GUEST_LOW_RAM_END, 1));
	assert_null(guest_memory_ptr(&mem, 0xfee00000, 4));
	assert_ptr_equal(guest_memory_ptr(&mem, GUEST_HIGH_RAM_START, 4),
			 backing + GUEST_LOW_RAM_END);
	assert_null(guest_memory_ptr(&mem, GUEST_HIGH_RAM_START + (1ULL << 30), 1));
	assert_null(guest_memory_ptr(&mem, UINT64_MAX, 2));
	assert_null(guest_memory_ptr(&mem, 16, UINT64_MAX));
	assert_null(guest_memory_ptr(&mem, UINT64_MAX - 4, UINT64_MAX));
	guest_memory_unmap(&mem);
}

static void test_memory_clear(void **state)
{
	struct guest_memory mem;
	uint8_t *p;

	(void)state;
	guest_memory_layout(&mem, 1ULL << 20);
	assert_int_equal(guest_memory_map(&mem), 0);
	p = guest_memory_ptr(&mem, 0, 1 << 20);
	memset(p, 0x77, 1 << 20);
	guest_memory_clear(&mem, 100, 3 * 4096);
	assert_int_equal(p[99], 0x77);
	for (unsigned i = 100; i < 100 + 3 * 4096; i++)
		assert_int_equal(p[i], 0);
	assert_int_equal(p[100 + 3 * 4096], 0x77);
	guest_memory_clear(&mem, 10, 5); /* inside one page */
	assert_int_equal(p[9], 0x77);
	assert_int_equal(p[14], 0);
	assert_int_equal(p[15], 0x77);
	guest_memory_unmap(&mem);
}

struct recorder {
	uint64_t offset;
	uint32_t len;
	bool is_write;
	unsigned calls;
};

static void record(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct recorder *r = opaque;

	r->offset = offset;
	r->len = len;
	r->is_write = is_write;
	r->calls++;
	if (!is_write)
		memset(data, 0x42, len);
}

static void test_io_registry(void **state)
{
	struct io_registry io = { 0 };
	struct recorder a = { 0 }, b = { 0 };
	uint8_t data[4];

	(void)state;
	assert_int_equal(io_register(&io, IO_BUS_PIO, 0x3f8, 8, record, &a), 0);
	assert_int_equal(io_register(&io, IO_BUS_PIO, 0x600, 12, record, &b), 0);
	assert_int_equal(io_register(&io, IO_BUS_PIO, 0x3fc, 8, record, &b), -EEXIST);
	assert_int_equal(io_register(&io, IO_BUS_PIO, 0x3f0, 9, record, &b), -EEXIST);
	assert_int_equal(io_register(&io, IO_BUS_MMIO, 0x3f8, 8, record, &b), 0); /* other bus */
	assert_int_equal(io_register(&io, IO_BUS_PIO, 0, 0, record, &b), -EINVAL);
	assert_int_equal(io_register(&io, IO_BUS_MMIO, UINT64_MAX, 2, record, &b), -EINVAL);

	assert_true(io_dispatch(&io, IO_BUS_PIO, 0x3fd, data, 1, false));
	assert_int_equal(a.offset, 5);
	assert_int_equal(data[0], 0x42);
	assert_true(io_dispatch(&io, IO_BUS_PIO, 0x604, data, 4, true));
	assert_int_equal(b.offset, 4);
	assert_true(b.is_write);
	/* an access straddling the end of a range, and one nobody claims */
	assert_false(io_dispatch(&io, IO_BUS_PIO, 0x3fe, data, 4, false));
	assert_int_equal(data[0], 0xff);
	assert_false(io_dispatch(&io, IO_BUS_PIO, 0x80, data, 1, true));
	assert_int_equal(a.calls, 1);
	assert_int_equal(b.calls, 1);
}

static void test_io_registry_full(void **state)
{
	struct io_registry io = { 0 };
	struct recorder r = { 0 };

	(void)state;
	for (unsigned i = 0; i < IO_MAX_RANGES; i++)
		assert_int_equal(io_register(&io, IO_BUS_MMIO, 0x1000ULL * (IO_MAX_RANGES - i), 16,
					     record, &r),
				 0);
	assert_int_equal(io_register(&io, IO_BUS_MMIO, 0x100000, 16, record, &r), -ENOSPC);
	for (unsigned i = 1; i <= IO_MAX_RANGES; i++)
		assert_non_null(io_find(&io, IO_BUS_MMIO, 0x1000ULL * i + 15, 1));
	assert_null(io_find(&io, IO_BUS_MMIO, 0x1010, 1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_memory_layout_around_the_hole),
		cmocka_unit_test(test_memory_ptr_bounds),
		cmocka_unit_test(test_memory_clear),
		cmocka_unit_test(test_io_registry),
		cmocka_unit_test(test_io_registry_full),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
