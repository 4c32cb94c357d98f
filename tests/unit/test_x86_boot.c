/* vmm/arch/x86: page tables, GDT, e820, boot_params, PVH start_info, MP table, sregs, CPUID cache.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"
#include "vmm/arch/x86/x86.h"
#include "tests/unit/test_log.h"
#include "vmm/device.h"

static struct guest_memory mem_of(uint64_t size)
{
	struct guest_memory mem;

	guest_memory_layout(&mem, size);
	assert_int_equal(guest_memory_map(&mem), 0);
	return mem;
}

/* Walks the tables the way the CPU does for a 2 MiB mapping; returns the physical address. */
static uint64_t translate(const struct guest_memory *mem, uint64_t cr3, uint64_t va)
{
	uint64_t *pml4 = guest_memory_ptr(mem, cr3, 4096);
	uint64_t pml4e = pml4[(va >> 39) & 511];
	uint64_t *pdpt = guest_memory_ptr(mem, pml4e & ~0xfffULL, 4096);
	uint64_t pdpte = pdpt[(va >> 30) & 511];
	uint64_t *pd = guest_memory_ptr(mem, pdpte & ~0xfffULL, 4096);
	uint64_t pde = pd[(va >> 21) & 511];

	assert_true(pml4e & 1);
	assert_true(pdpte & 1);
	assert_true(pde & 1);
	assert_true(pde & 0x80); /* a 2 MiB page */
	return (pde & ~0x1fffffULL) | (va & 0x1fffff);
}

static void test_page_tables_identity_map_4g(void **state)
{
	struct guest_memory mem = mem_of(64ULL << 20);

	(void)state;
	assert_int_equal(x86_boot_tables_write(&mem), 0);
	for (uint64_t va = 0; va < (4ULL << 30); va += 0x7654321)
		assert_int_equal(translate(&mem, X86_PAGE_TABLES_ADDR, va), va);
	assert_int_equal(translate(&mem, X86_PAGE_TABLES_ADDR, 0xfee00000), 0xfee00000);
	guest_memory_unmap(&mem);
}

static void test_gdt_has_flat_code_and_data(void **state)
{
	struct guest_memory mem = mem_of(8ULL << 20);
	uint64_t *gdt;

	(void)state;
	assert_int_equal(x86_boot_tables_write(&mem), 0);
	gdt = guest_memory_ptr(&mem, X86_GDT_ADDR, 32);
	assert_int_equal(gdt[0], 0);
	/* 64-bit code: L set, D clear, present, DPL 0, execute/read */
	assert_true(gdt[X86_SEL_CODE64 / 8] & (1ULL << 53));
	assert_false(gdt[X86_SEL_CODE64 / 8] & (1ULL << 54));
	assert_int_equal((gdt[X86_SEL_CODE64 / 8] >> 40) & 0xff, 0x9b);
	/* 32-bit code for PVH: D set, L clear */
	assert_true(gdt[X86_SEL_CODE32 / 8] & (1ULL << 54));
	assert_false(gdt[X86_SEL_CODE32 / 8] & (1ULL << 53));
	assert_int_equal((gdt[X86_SEL_DATA / 8] >> 40) & 0xff, 0x93);
	guest_memory_unmap(&mem);
}

static void test_sregs(void **state)
{
	struct kvm_sregs s;

	(void)state;
	memset(&s, 0xff, sizeof(s));
	x86_sregs_long_mode(&s);
	assert_int_equal(s.cr3, X86_PAGE_TABLES_ADDR);
	assert_true(s.cr0 & 0x80000001); /* PG, PE */
	assert_true(s.cr4 & 0x20);	 /* PAE */
	assert_int_equal(s.efer & 0x500, 0x500);
	assert_int_equal(s.cs.l, 1);
	assert_int_equal(s.cs.selector, X86_SEL_CODE64);
	x86_sregs_pvh(&s);
	assert_int_equal(s.cr0 & 0x80000001, 1); /* protected mode, paging off */
	assert_int_equal(s.efer, 0);
	assert_int_equal(s.cs.l, 0);
	assert_int_equal(s.cs.db, 1);
	assert_int_equal(s.cs.base, 0);
	assert_int_equal(s.cs.limit, 0xffffffff);
}

static void test_e820_small_and_large(void **state)
{
	struct e820_entry table[8];
	struct guest_memory mem;
	unsigned n;
	uint64_t ram = 0;

	(void)state;
	guest_memory_layout(&mem, 128ULL << 20);
	n = x86_e820_build(&mem, table, 8, false);
	assert_int_equal(n, 3);
	assert_int_equal(table[0].type, E820_RAM);
	assert_int_equal(table[0].addr + table[0].size, X86_MPTABLE_ADDR);
	assert_int_equal(table[1].type, E820_RESERVED);
	assert_int_equal(table[2].addr, 0x100000);
	assert_int_equal(table[2].addr + table[2].size, 128ULL << 20);

	guest_memory_layout(&mem, 5ULL << 30); /* 3 GiB low, 2 GiB from 4 GiB */
	n = x86_e820_build(&mem, table, 8, false);
	assert_int_equal(n, 4);
	assert_int_equal(table[2].addr + table[2].size, 3ULL << 30);
	assert_int_equal(table[3].addr, 4ULL << 30);
	assert_int_equal(table[3].size, 2ULL << 30);
	for (unsigned i = 0; i < n; i++)
		ram += table[i].type == E820_RAM ? table[i].size : 0;
	/* all RAM but the reserved MP-table KiB and the legacy hole below 1 MiB */
	assert_int_equal(ram, (5ULL << 30) - (0x100000 - X86_MPTABLE_ADDR));
	assert_int_equal(x86_e820_build(&mem, table, 2, false), 0); /* too small a table */
}

static void test_zero_page(void **state)
{
	struct guest_memory mem = mem_of(64ULL << 20);
	struct boot_params *bp;

	(void)state;
	assert_int_equal(x86_zero_page_write(
				 &mem, &(struct x86_boot_info){ .cmdline_gpa = X86_CMDLINE_ADDR }),
			 0);
	bp = guest_memory_ptr(&mem, X86_ZERO_PAGE_ADDR, sizeof(*bp));
	assert_int_equal(bp->hdr.boot_flag, 0xaa55);
	assert_int_equal(bp->hdr.header, SETUP_HEADER_MAGIC);
	assert_int_equal(bp->hdr.cmd_line_ptr, X86_CMDLINE_ADDR);
	assert_int_equal(bp->ext_cmd_line_ptr, 0);
	assert_int_equal(bp->e820_entries, 3);
	assert_int_equal(bp->e820_table[2].addr + bp->e820_table[2].size, 64ULL << 20);
	guest_memory_unmap(&mem);
}

static void test_pvh_start_info(void **state)
{
	struct guest_memory mem = mem_of(64ULL << 20);
	struct hvm_start_info *si;
	struct hvm_memmap_table_entry *map;

	(void)state;
	assert_int_equal(x86_pvh_start_info_write(
				 &mem, &(struct x86_boot_info){ .cmdline_gpa = X86_CMDLINE_ADDR }),
			 0);
	si = guest_memory_ptr(&mem, X86_PVH_INFO_ADDR, sizeof(*si));
	assert_int_equal(si->magic, PVH_START_MAGIC);
	assert_int_equal(si->version, 1);
	assert_int_equal(si->cmdline_paddr, X86_CMDLINE_ADDR);
	assert_int_equal(si->memmap_entries, 3);
	map = guest_memory_ptr(&mem, si->memmap_paddr, 3 * sizeof(*map));
	assert_non_null(map);
	assert_int_equal(map[2].addr, 0x100000);
	assert_int_equal(map[2].type, E820_RAM);
	/* the start_info and its map must not overlap */
	assert_true(si->memmap_paddr >= X86_PVH_INFO_ADDR + sizeof(*si));
	guest_memory_unmap(&mem);
}

static uint8_t sum_bytes(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s += *p++;
	return s;
}

static const struct virtio_mmio_slots no_virtio;
static struct virtio_mmio_slots every_slot; /* main() fills it */

static void test_mptable(void **state)
{
	struct guest_memory mem = mem_of(64ULL << 20);
	const uint8_t *fp, *config;
	uint16_t length, entries;
	unsigned processors = 0, bsp = 0;

	(void)state;
	assert_int_equal(x86_mptable_write(&mem, 4, &no_virtio), 0);
	fp = guest_memory_ptr(&mem, X86_MPTABLE_ADDR, 16);
	assert_memory_equal(fp, "_MP_", 4);
	assert_int_equal(sum_bytes(fp, 16), 0);
	config = guest_memory_ptr(&mem, *(const uint32_t *)(fp + 4), 44);
	assert_memory_equal(config, "PCMP", 4);
	memcpy(&length, config + 4, 2);
	memcpy(&entries, config + 34, 2);
	assert_int_equal(sum_bytes(config, length), 0);
	assert_true(X86_MPTABLE_ADDR + 16 + length <= X86_BASE_MEMORY_END);
	for (const uint8_t *e = config + 44; entries--; e += e[0] == 0 ? 20 : 8) {
		if (e[0] != 0)
			continue;
		assert_int_equal(e[1], processors); /* APIC ids 0..n-1 */
		processors++;
		bsp += (e[3] & 2) != 0;
	}
	assert_int_equal(processors, 4);
	assert_int_equal(bsp, 1);
	assert_int_equal(x86_mptable_write(&mem, 255, &no_virtio), -EINVAL);
	guest_memory_unmap(&mem);
}

/* The OEM table lists the virtio devices, in slot order, with its own checksum. */
static void test_mptable_oem_virtio(void **state)
{
	struct guest_memory mem = mem_of(64ULL << 20);
	struct virtio_mmio_slots two = { .count = 2,
					 .slot = { { 0xd0000000, 5, 3 }, { 0xd0001000, 6, 19 } } };
	const uint8_t *fp, *config, *oem;
	uint32_t config_addr, oem_addr, device_id;
	uint16_t oem_size;
	uint64_t base;

	(void)state;
	assert_int_equal(x86_mptable_write(&mem, 2, &two), 0);
	fp = guest_memory_ptr(&mem, X86_MPTABLE_ADDR, 16);
	memcpy(&config_addr, fp + 4, 4);
	config = guest_memory_ptr(&mem, config_addr, 44);
	assert_memory_equal(config + 8, "SNAPVM  ", 8);
	memcpy(&oem_addr, config + 28, 4);
	memcpy(&oem_size, config + 32, 2);
	assert_int_equal(oem_size, 8 + 2 * 16);
	assert_true(oem_addr + oem_size <= X86_BASE_MEMORY_END);
	oem = guest_memory_ptr(&mem, oem_addr, oem_size);
	assert_memory_equal(oem, "VIRT", 4);
	assert_int_equal(oem[6], 2);
	assert_int_equal(sum_bytes(oem, oem_size), 0);
	memcpy(&base, oem + 8 + 16, 8);
	memcpy(&device_id, oem + 8 + 16 + 8, 4);
	assert_int_equal(base, 0xd0001000);
	assert_int_equal(device_id, 19);
	assert_int_equal(oem[8 + 16 + 12], 6);
	two.count = VIRTIO_MMIO_MAX_SLOTS + 1; /* more than there are slots */
	assert_int_equal(x86_mptable_write(&mem, 2, &two), -EINVAL);
	guest_memory_unmap(&mem);
}

/* Both checksums and the entry count hold for every vCPU count snapvm allows. */
static void test_mptable_every_cpu_count(void **state)
{
	struct guest_memory mem = mem_of(16ULL << 20);

	(void)state;
	for (unsigned cpus = 1; cpus <= VMM_MAX_CPUS; cpus++) {
		const uint8_t *fp, *config;
		uint16_t length, entries;
		uint32_t config_addr;

		assert_int_equal(x86_mptable_write(&mem, cpus, &every_slot), 0);
		fp = guest_memory_ptr(&mem, X86_MPTABLE_ADDR, 16);
		assert_int_equal(sum_bytes(fp, 16), 0);
		memcpy(&config_addr, fp + 4, 4);
		config = guest_memory_ptr(&mem, config_addr, 44);
		memcpy(&length, config + 4, 2);
		memcpy(&entries, config + 34, 2);
		assert_int_equal(sum_bytes(config, length), 0);
		/* processors, the ISA bus, the I/O APIC, 16 ISA interrupts, LINT0 and LINT1 */
		assert_int_equal(entries, cpus + 2 + 16 + 2);
		assert_int_equal(length, 44 + cpus * 20 + (2 + 16 + 2) * 8);
	}
	guest_memory_unmap(&mem);
}

static void test_cmdline(void **state)
{
	struct guest_memory mem = mem_of(8ULL << 20);
	char error[128], long_line[5000];

	(void)state;
	assert_int_equal(x86_cmdline_write(&mem, "heap=16M", 4096), 0);
	assert_string_equal(guest_memory_ptr(&mem, X86_CMDLINE_ADDR, 9), "heap=16M");
	memset(long_line, 'x', sizeof(long_line) - 1);
	long_line[sizeof(long_line) - 1] = '\0';
	assert_int_equal(LOGGED(error, x86_cmdline_write(&mem, long_line, 4096)), -EINVAL);
	assert_non_null(strstr(error, "command line"));
	assert_int_equal(x86_cmdline_write(&mem, "", 4096), 0);
	guest_memory_unmap(&mem);
}

/* The supported-CPUID cache gives back what it kept, for its key only, and only whole. */
static void test_cpuid_cache(void **state)
{
	char dir[] = "/tmp/snapvm-test-cpuid-XXXXXX", path[64];
	struct x86_cpuid_cache_key key, other;
	struct kvm_cpuid2 *kept = calloc(1, sizeof(*kept) + 3 * sizeof(kept->entries[0])), *got;
	int fd = open("/dev/null", O_RDONLY);

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/kvm-cpuid", dir);
	assert_int_equal(x86_cpuid_cache_key(fd, &key), 0); /* any fd names a file's identity */
	close(fd);
	assert_true(strlen(key.boot_id) >= 32);
	assert_null(x86_cpuid_cache_load(path, &key)); /* nothing kept yet */

	kept->nent = 3;
	for (unsigned i = 0; i < 3; i++)
		kept->entries[i] = (struct kvm_cpuid_entry2){ .function = i, .eax = 0x1000 + i };
	assert_int_equal(x86_cpuid_cache_store(path, &key, kept), 0);
	got = x86_cpuid_cache_load(path, &key);
	assert_non_null(got);
	assert_int_equal(got->nent, 3);
	assert_memory_equal(got->entries, kept->entries, 3 * sizeof(kept->entries[0]));
	free(got);

	other = key; /* the KVM module loaded again: /dev/kvm is a new node */
	other.kvm_ctime_nsec++;
	assert_null(x86_cpuid_cache_load(path, &other));
	other = key; /* another boot */
	other.boot_id[0] ^= 1;
	assert_null(x86_cpuid_cache_load(path, &other));

	assert_int_equal(truncate(path, 100), 0); /* torn */
	assert_null(x86_cpuid_cache_load(path, &key));
	assert_int_equal(x86_cpuid_cache_store(path, &key, kept), 0);
	fd = open(path, O_WRONLY | O_APPEND);
	assert_int_equal(write(fd, "x", 1), 1); /* longer than it says */
	close(fd);
	assert_null(x86_cpuid_cache_load(path, &key));

	unlink(path);
	rmdir(dir);
	free(kept);
}

int main(void)
{
	every_slot.count =
		VIRTIO_MMIO_MAX_SLOTS; /* the largest OEM table, beside each vCPU count */
	for (unsigned i = 0; i < VIRTIO_MMIO_MAX_SLOTS; i++)
		every_slot.slot[i].base = VIRTIO_MMIO_BASE + i * VIRTIO_MMIO_SIZE;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_page_tables_identity_map_4g),
		cmocka_unit_test(test_gdt_has_flat_code_and_data),
		cmocka_unit_test(test_sregs),
		cmocka_unit_test(test_e820_small_and_large),
		cmocka_unit_test(test_zero_page),
		cmocka_unit_test(test_pvh_start_info),
		cmocka_unit_test(test_mptable),
		cmocka_unit_test(test_mptable_every_cpu_count),
		cmocka_unit_test(test_mptable_oem_virtio),
		cmocka_unit_test(test_cmdline),
		cmocka_unit_test(test_cpuid_cache),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
