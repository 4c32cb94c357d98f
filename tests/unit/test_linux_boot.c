/*
 * The Linux boot protocol in vmm/arch/x86: the bzImage setup-header parser
 * (and every kind of bad header), where the kernel and the initrd go, and the
 * boot_params and PVH start_info a Linux kernel is handed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "vmm/arch/x86/x86.h"
#include "tests/unit/test_log.h"
#include "vmm/device.h"

#define SETUP_SECTS  4
#define SETUP_BYTES  ((SETUP_SECTS + 1) * 512)
#define KERNEL_BYTES 8192
#define PREF_ADDRESS 0x1000000ULL
#define INIT_SIZE    (4ULL << 20)

struct fixture {
	uint8_t file[SETUP_BYTES + KERNEL_BYTES];
	size_t size;
	struct guest_memory mem;
	char error[256];
};

static struct setup_header *hdr_of(struct fixture *f)
{
	return (struct setup_header *)(f->file + SETUP_HEADER_OFFSET);
}

/* A bzImage as Linux 6.1's build makes it, with a recognizable protected-mode part. */
static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct setup_header *hdr = hdr_of(f);

	hdr->setup_sects = SETUP_SECTS;
	hdr->syssize = KERNEL_BYTES / 16;
	hdr->boot_flag = BOOT_FLAG_MAGIC;
	hdr->jump = 0x66eb; /* jmp over a header that ends at 0x268 */
	hdr->header = SETUP_HEADER_MAGIC;
	hdr->version = 0x020f;
	hdr->loadflags = LOADFLAGS_LOADED_HIGH;
	hdr->code32_start = 0x100000;
	hdr->initrd_addr_max = 0x7fffffff;
	hdr->kernel_alignment = 0x200000;
	hdr->relocatable_kernel = 1;
	hdr->xloadflags = XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G;
	hdr->cmdline_size = 2047;
	hdr->pref_address = PREF_ADDRESS;
	hdr->init_size = (uint32_t)INIT_SIZE;
	hdr->setup_data = 0xdeadbeef; /* a loader must not pass this on */
	for (unsigned i = 0; i < KERNEL_BYTES; i++)
		f->file[SETUP_BYTES + i] = (uint8_t)(i * 7);
	f->size = sizeof(f->file);
	guest_memory_layout(&f->mem, 64ULL << 20);
	assert_int_equal(guest_memory_map(&f->mem), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	guest_memory_unmap(&f->mem);
	free(f);
	return 0;
}

/* The parse, with what it logged in f->error. */
static int parse(struct fixture *f, struct bzimage_header *header)
{
	return LOGGED(f->error, bzimage_header_parse(f->file, f->size, header));
}

static void expect_error(struct fixture *f, const char *fragment)
{
	struct bzimage_header header;

	assert_int_equal(parse(f, &header), -EINVAL);
	log_expect_one_line(f->error, fragment);
}

static void test_header_parse(void **state)
{
	struct fixture *f = *state;
	struct bzimage_header header;

	assert_true(bzimage_is_bzimage(f->file, f->size));
	assert_int_equal(parse(f, &header), 0);
	assert_int_equal(header.setup_size, SETUP_BYTES);
	assert_int_equal(header.kernel_size, KERNEL_BYTES);
	assert_int_equal(header.hdr.version, 0x020f);
	assert_int_equal(header.hdr.cmdline_size, 2047);
	assert_int_equal(header.hdr.init_size, INIT_SIZE);
	hdr_of(f)->setup_sects = 0; /* means 4 */
	assert_int_equal(parse(f, &header), 0);
	assert_int_equal(header.setup_size, SETUP_BYTES);
}

static void test_header_only_as_long_as_the_jump_says(void **state)
{
	struct fixture *f = *state;
	struct bzimage_header header;

	/* a 2.12 header ends at 0x264: init_size is its last field, nothing past it is read */
	hdr_of(f)->version = 0x020c;
	hdr_of(f)->jump = 0x62eb;
	hdr_of(f)->kernel_info_offset = 0x1234;
	assert_int_equal(parse(f, &header), 0);
	assert_int_equal(header.hdr.init_size, INIT_SIZE);
	assert_int_equal(header.hdr.kernel_info_offset, 0);
	hdr_of(f)->jump = 0x30eb; /* ends before pref_address */
	expect_error(f, "setup header is only");
}

static void test_header_truncated(void **state)
{
	struct fixture *f = *state;

	assert_false(bzimage_is_bzimage(f->file, 0x200)); /* cut before "HdrS" */
	f->size = 0x230;
	expect_error(f, "truncated bzImage");
	f->size = SETUP_BYTES; /* setup code, no kernel */
	expect_error(f, "truncated bzImage");
	f->size = SETUP_BYTES + KERNEL_BYTES - 16;
	expect_error(f, "header says");
	f->size = sizeof(f->file);
	hdr_of(f)->setup_sects = 200; /* setup code past the end of the file */
	expect_error(f, "truncated bzImage");
}

static void test_header_wrong_magic(void **state)
{
	struct fixture *f = *state;

	hdr_of(f)->boot_flag = 0;
	expect_error(f, "not a bzImage");
	hdr_of(f)->boot_flag = BOOT_FLAG_MAGIC;
	hdr_of(f)->header = 0x12345678;
	assert_false(bzimage_is_bzimage(f->file, f->size));
	expect_error(f, "not a bzImage");
}

static void test_header_too_old_or_not_64_bit(void **state)
{
	struct fixture *f = *state;

	hdr_of(f)->version = 0x020b;
	expect_error(f, "boot protocol 2.11");
	hdr_of(f)->version = 0x0201;
	expect_error(f, "2.12 or later");
	hdr_of(f)->version = 0x020f;
	hdr_of(f)->loadflags = 0;
	expect_error(f, "zImage");
	hdr_of(f)->loadflags = LOADFLAGS_LOADED_HIGH;
	hdr_of(f)->xloadflags = 0;
	expect_error(f, "64-bit entry");
}

static void test_header_bad_fields(void **state)
{
	struct fixture *f = *state;

	hdr_of(f)->kernel_alignment = 0x300000;
	expect_error(f, "kernel_alignment");
	hdr_of(f)->kernel_alignment = 16;
	expect_error(f, "kernel_alignment");
	hdr_of(f)->relocatable_kernel = 0; /* alignment only matters to a relocatable kernel */
	assert_int_equal(parse(f, &(struct bzimage_header){ 0 }), 0);
	hdr_of(f)->pref_address = 0;
	expect_error(f, "pref_address");
	hdr_of(f)->pref_address = 0xfffff000ULL;
	expect_error(f, "pref_address");
	hdr_of(f)->pref_address = PREF_ADDRESS;
	hdr_of(f)->cmdline_size = 0;
	expect_error(f, "cmdline_size");
	hdr_of(f)->cmdline_size = 2047;
	hdr_of(f)->init_size = 100;
	expect_error(f, "init_size");
}

/* The load, with what it logged in f->error. */
static int kernel_load(struct fixture *f, enum vmm_boot_mode boot, struct x86_kernel *kernel)
{
	return LOGGED(f->error, x86_kernel_load(f->file, f->size, boot, &f->mem, kernel));
}

static int load(struct fixture *f, struct x86_kernel *kernel)
{
	return kernel_load(f, VMM_BOOT_AUTO, kernel);
}

static void test_relocatable_kernel_loads_at_pref_address(void **state)
{
	struct fixture *f = *state;
	struct x86_kernel kernel;

	assert_int_equal(load(f, &kernel), 0);
	assert_true(kernel.linux_kernel);
	assert_false(kernel.pvh);
	assert_int_equal(kernel.load_addr, PREF_ADDRESS);
	assert_int_equal(kernel.entry, PREF_ADDRESS + 0x200);
	assert_int_equal(kernel.end, PREF_ADDRESS + INIT_SIZE);
	assert_int_equal(kernel.cmdline_max, 2047);
	assert_int_equal(kernel.initrd_addr_max, 0x7fffffff);
	assert_memory_equal(guest_memory_ptr(&f->mem, PREF_ADDRESS, KERNEL_BYTES),
			    f->file + SETUP_BYTES, KERNEL_BYTES);

	/* an unaligned preference is rounded up to kernel_alignment */
	hdr_of(f)->pref_address = PREF_ADDRESS + 0x1000;
	assert_int_equal(load(f, &kernel), 0);
	assert_int_equal(kernel.load_addr, PREF_ADDRESS + 0x200000);
}

static void test_fixed_kernel_loads_at_1m_and_runs_at_pref_address(void **state)
{
	struct fixture *f = *state;
	struct x86_kernel kernel;

	hdr_of(f)->relocatable_kernel = 0;
	assert_int_equal(load(f, &kernel), 0);
	assert_int_equal(kernel.load_addr, 0x100000);
	assert_int_equal(kernel.entry, 0x100000 + 0x200);
	assert_int_equal(kernel.end, PREF_ADDRESS + INIT_SIZE);
}

static void test_kernel_larger_than_ram(void **state)
{
	struct fixture *f = *state;
	struct x86_kernel kernel;

	hdr_of(f)->init_size = 60 << 20; /* 16 MiB + 60 MiB in a 64 MiB guest */
	assert_int_equal(load(f, &kernel), -EINVAL);
	assert_non_null(strstr(f->error, "guest RAM up to 76 MiB"));
	assert_non_null(strstr(f->error, "the guest has 64 MiB"));
}

static void test_kernel_format_and_boot_mode(void **state)
{
	struct fixture *f = *state;
	struct x86_kernel kernel;

	assert_int_equal(kernel_load(f, VMM_BOOT_PVH, &kernel), -EINVAL);
	assert_non_null(strstr(f->error, "--boot pvh needs an ELF kernel"));
	memset(f->file, 0, sizeof(f->file));
	assert_int_equal(load(f, &kernel), -EINVAL);
	assert_non_null(strstr(f->error, "neither an ELF file nor a bzImage"));
}

static void test_initrd_placement(void **state)
{
	struct fixture *f = *state; /* 64 MiB of RAM */
	uint64_t gpa;

	/* at the top of RAM, page aligned */
	assert_int_equal(x86_initrd_place(&f->mem, 20 << 20, 0x7fffffff, 10000, &gpa), 0);
	assert_int_equal(gpa, ALIGN_DOWN((64ULL << 20) - 10000, PAGE_SIZE));
	/* below initrd_addr_max, the highest byte it may occupy */
	assert_int_equal(x86_initrd_place(&f->mem, 20 << 20, (32 << 20) - 1, 1 << 20, &gpa), 0);
	assert_int_equal(gpa, 31 << 20);
	/* never over the kernel */
	assert_int_equal(x86_initrd_place(&f->mem, 20 << 20, 0x7fffffff, 44 << 20, &gpa), 0);
	assert_int_equal(gpa, 20 << 20);
	assert_int_equal(x86_initrd_place(&f->mem, 20 << 20, 0x7fffffff, (44 << 20) + 1, &gpa),
			 -ENOSPC);
	assert_int_equal(x86_initrd_place(&f->mem, 20 << 20, (20 << 20) - 1, 4096, &gpa), -ENOSPC);
	assert_int_equal(x86_initrd_place(&f->mem, 80 << 20, 0x7fffffff, 4096, &gpa), -ENOSPC);
	assert_int_equal(x86_initrd_place(&f->mem, 20 << 20, 0x7fffffff, UINT64_MAX, &gpa),
			 -ENOSPC);
}

static void test_initrd_stays_below_the_mmio_hole(void **state)
{
	struct guest_memory mem;
	uint64_t gpa;

	(void)state;
	guest_memory_layout(&mem, 6ULL << 30); /* no mapping needed: placement is arithmetic */
	assert_int_equal(x86_initrd_place(&mem, 20 << 20, 0xffffffff, 1 << 20, &gpa), 0);
	assert_int_equal(gpa, GUEST_LOW_RAM_END - (1 << 20));
	assert_int_equal(x86_initrd_place(&mem, 20 << 20, 0x7fffffff, 1 << 20, &gpa), 0);
	assert_int_equal(gpa, 0x80000000ULL - (1 << 20));
}

static struct boot_params *boot_data_write(struct fixture *f, const struct x86_kernel *kernel,
					   const char *cmdline, int expect)
{
	static const struct virtio_mmio_slots no_virtio;

	assert_int_equal(LOGGED(f->error, x86_boot_data_write(&f->mem, kernel, cmdline, 0x3000000,
							      0x12345, 2, &no_virtio, 0)),
			 expect);
	return guest_memory_ptr(&f->mem, X86_ZERO_PAGE_ADDR, sizeof(struct boot_params));
}

static void test_zero_page_from_bzimage_header(void **state)
{
	struct fixture *f = *state;
	struct x86_kernel kernel;
	struct boot_params *bp;

	assert_int_equal(load(f, &kernel), 0);
	bp = boot_data_write(f, &kernel, "console=ttyS0 quiet", 0);
	assert_int_equal(bp->hdr.header, SETUP_HEADER_MAGIC);
	assert_int_equal(bp->hdr.version, 0x020f);
	assert_int_equal(bp->hdr.init_size, INIT_SIZE);
	assert_int_equal(bp->hdr.type_of_loader, 0xff);
	assert_int_equal(bp->hdr.code32_start, PREF_ADDRESS);
	assert_int_equal(bp->hdr.setup_data, 0);
	assert_int_equal(bp->hdr.cmd_line_ptr, X86_CMDLINE_ADDR);
	assert_string_equal(guest_memory_ptr(&f->mem, X86_CMDLINE_ADDR, 20), "console=ttyS0 quiet");
	assert_int_equal(bp->hdr.ramdisk_image, 0x3000000);
	assert_int_equal(bp->hdr.ramdisk_size, 0x12345);
	assert_int_equal(bp->ext_ramdisk_image, 0);
	assert_int_equal(bp->sentinel, 0);
	assert_int_equal(bp->e820_entries, 3);
	assert_int_equal(bp->e820_table[2].addr + bp->e820_table[2].size, 64ULL << 20);
}

static void test_cmdline_longer_than_the_kernel_takes(void **state)
{
	struct fixture *f = *state;
	struct x86_kernel kernel;
	char line[2100];

	memset(line, 'x', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\0';
	hdr_of(f)->cmdline_size = 255;
	assert_int_equal(load(f, &kernel), 0);
	boot_data_write(f, &kernel, line + sizeof(line) - 256, 0); /* exactly 255 */
	boot_data_write(f, &kernel, line + sizeof(line) - 257, -EINVAL);
	assert_non_null(strstr(f->error, "command line is 256 bytes"));
	assert_non_null(strstr(f->error, "at most 255"));
	hdr_of(f)->cmdline_size = 0x7fffffff; /* the kernel's word, capped by snapvm's buffer */
	assert_int_equal(load(f, &kernel), 0);
	boot_data_write(f, &kernel, line, 0);
}

static void test_pvh_start_info_with_initrd(void **state)
{
	struct fixture *f = *state;
	struct x86_boot_info info = { .cmdline_gpa = X86_CMDLINE_ADDR,
				      .initrd_gpa = 0x3000000,
				      .initrd_size = 0x12345 };
	struct hvm_start_info *si;
	struct hvm_modlist_entry *mod;

	assert_int_equal(x86_pvh_start_info_write(&f->mem, &info), 0);
	si = guest_memory_ptr(&f->mem, X86_PVH_INFO_ADDR, sizeof(*si));
	assert_int_equal(si->magic, PVH_START_MAGIC);
	assert_int_equal(si->nr_modules, 1);
	mod = guest_memory_ptr(&f->mem, si->modlist_paddr, sizeof(*mod));
	assert_non_null(mod);
	assert_int_equal(mod->paddr, 0x3000000);
	assert_int_equal(mod->size, 0x12345);
	/* the module list overlaps neither the start_info nor its memory map */
	assert_true(si->modlist_paddr >= si->memmap_paddr + si->memmap_entries * 24);
	assert_true(si->modlist_paddr + sizeof(*mod) <= X86_ZERO_PAGE_ADDR);

	info.initrd_size = 0;
	assert_int_equal(x86_pvh_start_info_write(&f->mem, &info), 0);
	assert_int_equal(si->nr_modules, 0);
	assert_int_equal(si->modlist_paddr, 0);
}

#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_header_parse),
		TEST(test_header_only_as_long_as_the_jump_says),
		TEST(test_header_truncated),
		TEST(test_header_wrong_magic),
		TEST(test_header_too_old_or_not_64_bit),
		TEST(test_header_bad_fields),
		TEST(test_relocatable_kernel_loads_at_pref_address),
		TEST(test_fixed_kernel_loads_at_1m_and_runs_at_pref_address),
		TEST(test_kernel_larger_than_ram),
		TEST(test_kernel_format_and_boot_mode),
		TEST(test_initrd_placement),
		TEST(test_initrd_stays_below_the_mmio_hole),
		TEST(test_zero_page_from_bzimage_header),
		TEST(test_cmdline_longer_than_the_kernel_takes),
		TEST(test_pvh_start_info_with_initrd),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
