/* vmm/arch/x86: the AML encoder and the ACPI tables (layout, checksums, what the DSDT names). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "vmm/arch/x86/acpi.h"
#include "vmm/arch/x86/aml.h"
#include "vmm/arch/x86/x86.h"
#include "vmm/device.h"
#include "vmm/hw/acpi_ports.h"

#define EXPECT_BYTES(a, ...)                                        \
	do {                                                        \
		static const uint8_t want[] = { __VA_ARGS__ };      \
		assert_true(aml_ok(a));                             \
		assert_int_equal((a)->len, sizeof(want));           \
		assert_memory_equal((a)->data, want, sizeof(want)); \
	} while (0)

/* Table fields sit at any byte offset: read them without assuming alignment. */
static uint64_t load64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint32_t load32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint8_t buf[8192];

static struct aml *fresh(void)
{
	static struct aml a;

	memset(buf, 0xcc, sizeof(buf));
	aml_init(&a, buf, sizeof(buf));
	return &a;
}

static void test_pkglength(void **state)
{
	uint8_t out[4];

	(void)state;
	/* the length counts its own bytes: 1 byte up to 63 in all */
	assert_int_equal(aml_pkglength_encode(0, out), 1);
	assert_int_equal(out[0], 1);
	assert_int_equal(aml_pkglength_encode(62, out), 1);
	assert_int_equal(out[0], 63);
	/* 63 + 2 = 65 = 0x41: low nibble in the lead byte, the rest after it */
	assert_int_equal(aml_pkglength_encode(63, out), 2);
	assert_int_equal(out[0], 0x41);
	assert_int_equal(out[1], 0x04);
	assert_int_equal(aml_pkglength_encode(0xfff - 2, out), 2);
	assert_int_equal(out[0], 0x4f);
	assert_int_equal(out[1], 0xff);
	assert_int_equal(aml_pkglength_encode(0xfff - 1, out), 3);
	assert_int_equal(out[0], 0x81); /* 0x1001 */
	assert_int_equal(out[1], 0x00);
	assert_int_equal(out[2], 0x01);
	assert_int_equal(aml_pkglength_encode(0xfffff - 3, out), 3);
	assert_int_equal(aml_pkglength_encode(0xfffff - 2, out), 4);
	assert_int_equal(out[0], 0xc1); /* 0x100001 */
	assert_int_equal(out[3], 0x01);
	assert_int_equal(aml_pkglength_encode(0xfffffff, out), 0); /* too long for AML */
}

static void test_name_strings(void **state)
{
	struct aml *a;

	(void)state;
	a = fresh();
	aml_name_string(a, "ABCD");
	EXPECT_BYTES(a, 'A', 'B', 'C', 'D');
	a = fresh();
	aml_name_string(a, "\\_SB");
	EXPECT_BYTES(a, '\\', '_', 'S', 'B', '_');
	a = fresh();
	aml_name_string(a, "\\_SB.PWRB");
	EXPECT_BYTES(a, '\\', 0x2e, '_', 'S', 'B', '_', 'P', 'W', 'R', 'B');
	a = fresh();
	aml_name_string(a, "A.B1.C");
	EXPECT_BYTES(a, 0x2f, 3, 'A', '_', '_', '_', 'B', '1', '_', '_', 'C', '_', '_', '_');
	a = fresh();
	aml_name_string(a, "^^X");
	EXPECT_BYTES(a, '^', '^', 'X', '_', '_', '_');
	a = fresh();
	aml_name_string(a, "\\");
	EXPECT_BYTES(a, '\\', 0);
	/* lower case, a leading digit, five characters, an empty segment: not names */
	a = fresh();
	aml_name_string(a, "abcd");
	assert_false(aml_ok(a));
	a = fresh();
	aml_name_string(a, "1ABC");
	assert_false(aml_ok(a));
	a = fresh();
	aml_name_string(a, "ABCDE");
	assert_false(aml_ok(a));
	a = fresh();
	aml_name_string(a, "A..B");
	assert_false(aml_ok(a));
}

static void test_integers(void **state)
{
	struct aml *a;

	(void)state;
	a = fresh();
	aml_integer(a, 0);
	aml_integer(a, 1);
	aml_integer(a, 2);
	aml_integer(a, 0xff);
	EXPECT_BYTES(a, 0x00, 0x01, 0x0a, 0x02, 0x0a, 0xff);
	a = fresh();
	aml_integer(a, 0x100);
	aml_integer(a, 0x12345678);
	EXPECT_BYTES(a, 0x0b, 0x00, 0x01, 0x0c, 0x78, 0x56, 0x34, 0x12);
	a = fresh();
	aml_integer(a, 0x100000000ULL);
	EXPECT_BYTES(a, 0x0e, 0, 0, 0, 0, 1, 0, 0, 0);
	a = fresh();
	aml_string(a, "AB");
	EXPECT_BYTES(a, 0x0d, 'A', 'B', 0);
	/* EISA ids: "PNP0501" is 0x0105d041 read little-endian */
	a = fresh();
	aml_eisa_id(a, "PNP0501");
	aml_eisa_id(a, "PNP0C0C");
	EXPECT_BYTES(a, 0x0c, 0x41, 0xd0, 0x05, 0x01, 0x0c, 0x41, 0xd0, 0x0c, 0x0c);
	a = fresh();
	aml_eisa_id(a, "pnp0501");
	assert_false(aml_ok(a));
}

static void test_terms(void **state)
{
	struct aml *a;

	(void)state;
	/* Name(_S5, Package(2) { 5, 5 }) */
	a = fresh();
	aml_name(a, "_S5");
	aml_package_open(a, 2);
	aml_integer(a, 5);
	aml_integer(a, 5);
	aml_close(a);
	EXPECT_BYTES(a, 0x08, '_', 'S', '5', '_', 0x12, 0x06, 0x02, 0x0a, 0x05, 0x0a, 0x05);
	/* Buffer { IO(Decode16, 0x3f8, 0x3f8, 1, 8), EndTag }: its size after the PkgLength */
	a = fresh();
	aml_buffer_open(a);
	aml_io(a, 0x3f8, 8);
	aml_end_tag(a);
	aml_close(a);
	EXPECT_BYTES(a, 0x11, 0x0d, 0x0a, 0x0a, 0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08,
		     0x79, 0x00);
	/* Method(ADDR, 0) { Return(1) } */
	a = fresh();
	aml_method_open(a, "ADDR", 0);
	aml_return(a);
	aml_integer(a, 1);
	aml_close(a);
	EXPECT_BYTES(a, 0x14, 0x08, 'A', 'D', 'D', 'R', 0x00, 0xa4, 0x01);
	/* Device(PWRB) {} and Notify(PWRB, 0x80) */
	a = fresh();
	aml_device_open(a, "PWRB");
	aml_close(a);
	aml_notify(a, "PWRB", 0x80);
	EXPECT_BYTES(a, 0x5b, 0x82, 0x05, 'P', 'W', 'R', 'B', 0x86, 'P', 'W', 'R', 'B', 0x0a, 0x80);
	/* resource descriptors */
	a = fresh();
	aml_memory32_fixed(a, 0xd0000000, 0x1000);
	aml_interrupt(a, AML_EDGE, 5);
	aml_interrupt(a, AML_LEVEL, 16);
	EXPECT_BYTES(a, 0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xd0, 0x00, 0x10, 0x00, 0x00,
		     0x89, 0x06, 0x00, 0x03, 0x01, 0x05, 0x00, 0x00, 0x00, 0x89, 0x06, 0x00, 0x01,
		     0x01, 0x10, 0x00, 0x00, 0x00);
}

/* A body longer than 63 bytes moves behind a 2-byte PkgLength, intact. */
static void test_long_scope(void **state)
{
	struct aml *a = fresh();
	uint8_t body[100];

	(void)state;
	for (unsigned i = 0; i < sizeof(body); i++)
		body[i] = (uint8_t)i;
	aml_scope_open(a, "\\_SB");
	aml_bytes(a, body, sizeof(body));
	aml_close(a);
	assert_true(aml_ok(a));
	/* 0x10, PkgLength (2 bytes: 2 + 5 + 100 = 107 = 0x6b), "\_SB_", the body */
	assert_int_equal(a->len, 1 + 2 + 5 + 100);
	assert_int_equal(buf[0], 0x10);
	assert_int_equal(buf[1], 0x4b);
	assert_int_equal(buf[2], 0x06);
	assert_memory_equal(buf + 3, "\\_SB_", 5);
	assert_memory_equal(buf + 8, body, sizeof(body));
}

static void test_errors_stick(void **state)
{
	uint8_t small[8];
	struct aml a;

	(void)state;
	aml_init(&a, small, sizeof(small));
	aml_string(&a, "too long for eight bytes");
	assert_false(aml_ok(&a));
	aml_init(&a, small, sizeof(small));
	aml_scope_open(&a, "ABCD");
	assert_false(aml_ok(&a)); /* still open */
	aml_close(&a);
	assert_true(aml_ok(&a));
	aml_close(&a); /* one close too many */
	assert_false(aml_ok(&a));
	/* the body fits, its PkgLength does not */
	aml_init(&a, small, 5);
	aml_scope_open(&a, "ABCD");
	aml_close(&a);
	assert_false(aml_ok(&a));
}

static bool sums_to_zero(const void *data, size_t len)
{
	return acpi_checksum(data, len) == 0;
}

static const struct acpi_table_header *table_at(const struct guest_memory *mem, uint64_t gpa,
						const char *signature)
{
	const struct acpi_table_header *h = guest_memory_ptr(mem, gpa, ACPI_HEADER_SIZE);

	assert_non_null(h);
	assert_memory_equal(h->signature, signature, 4);
	assert_non_null(guest_memory_ptr(mem, gpa, h->length));
	assert_true(sums_to_zero(h, h->length));
	assert_true(gpa + h->length <= X86_ACPI_END);
	return h;
}

static bool contains(const void *hay, size_t len, const void *needle, size_t n)
{
	return memmem(hay, len, needle, n) != NULL;
}

static unsigned count_of(const void *hay, size_t len, const char *needle)
{
	const uint8_t *p = hay, *end = p + len;
	unsigned count = 0;

	while ((p = memmem(p, (size_t)(end - p), needle, strlen(needle)))) {
		count++;
		p++;
	}
	return count;
}

struct tables {
	struct guest_memory mem;
	const uint8_t *rsdp;
	const struct acpi_table_header *xsdt, *fadt, *madt, *dsdt;
};

static void tables_build(struct tables *t, unsigned cpus, bool com1, unsigned virtio_count)
{
	struct virtio_mmio_slots virtio = { .count = virtio_count };
	static const uint8_t id[ACPI_VMGENID_SIZE] = { 0x5a, 1, 2,  3,	4,  5,	6,  7,
						       8,    9, 10, 11, 12, 13, 14, 0xa5 };
	struct x86_acpi_config config = { cpus, com1, &virtio, id };
	uint64_t rsdp = 0, entries[2], dsdt;

	for (unsigned i = 0; i < virtio_count; i++) {
		virtio.slot[i].base = VIRTIO_MMIO_BASE + i * VIRTIO_MMIO_SIZE;
		virtio.slot[i].irq = VIRTIO_MMIO_IRQ_BASE + i;
	}
	guest_memory_layout(&t->mem, 16 << 20);
	assert_int_equal(guest_memory_map(&t->mem), 0);
	assert_int_equal(x86_acpi_write(&t->mem, &config, &rsdp), 0);
	assert_int_equal(rsdp, X86_ACPI_ADDR);
	t->rsdp = guest_memory_ptr(&t->mem, rsdp, ACPI_RSDP_SIZE);
	assert_memory_equal(t->rsdp, "RSD PTR ", 8);
	assert_true(sums_to_zero(t->rsdp, 20)); /* the ACPI 1.0 part */
	assert_true(sums_to_zero(t->rsdp, ACPI_RSDP_SIZE));
	assert_int_equal(t->rsdp[15], 2); /* revision: an XSDT */
	t->xsdt = table_at(&t->mem, load64(t->rsdp + 24), "XSDT");
	assert_memory_equal(guest_memory_ptr(&t->mem, ACPI_VMGENID_ADDR, sizeof(id)), id,
			    sizeof(id));
	assert_int_equal(t->xsdt->length, ACPI_HEADER_SIZE + 16);
	memcpy(entries, (const uint8_t *)t->xsdt + ACPI_HEADER_SIZE, sizeof(entries));
	t->fadt = table_at(&t->mem, entries[0], "FACP");
	t->madt = table_at(&t->mem, entries[1], "APIC");
	memcpy(&dsdt, (const uint8_t *)t->fadt + 140, 8); /* X_DSDT */
	t->dsdt = table_at(&t->mem, dsdt, "DSDT");
}

static void test_fadt(void **state)
{
	struct tables t;
	const uint8_t *f;
	uint32_t flags, dsdt32;
	uint64_t dsdt64;

	(void)state;
	tables_build(&t, 1, true, 2);
	f = (const uint8_t *)t.fadt;
	assert_int_equal(t.fadt->length, ACPI_FADT_SIZE);
	assert_int_equal(t.fadt->revision, 6);
	memcpy(&flags, f + 112, 4);
	assert_true(flags & ACPI_FADT_HW_REDUCED);
	memcpy(&dsdt32, f + 40, 4);
	memcpy(&dsdt64, f + 140, 8);
	assert_int_equal(dsdt32, dsdt64);
	/* SLEEP_CONTROL_REG and SLEEP_STATUS_REG: byte-wide I/O ports of the GED */
	assert_int_equal(f[244], 1);
	assert_int_equal(f[245], 8);
	assert_int_equal(load64(f + 248), ACPI_GED_PORT_BASE + ACPI_GED_SLEEP_CONTROL);
	assert_int_equal(f[256], 1);
	assert_int_equal(load64(f + 260), ACPI_GED_PORT_BASE + ACPI_GED_SLEEP_STATUS);
	guest_memory_unmap(&t.mem);
}

static void test_madt_every_cpu_count(void **state)
{
	(void)state;
	for (unsigned cpus = 1; cpus <= VMM_MAX_CPUS; cpus++) {
		struct tables t;
		const uint8_t *p, *end;
		unsigned lapics = 0, ioapics = 0;
		uint32_t lapic_addr;

		tables_build(&t, cpus, true, 0);
		p = (const uint8_t *)t.madt + ACPI_HEADER_SIZE;
		end = (const uint8_t *)t.madt + t.madt->length;
		memcpy(&lapic_addr, p, 4);
		assert_int_equal(lapic_addr, X86_LAPIC_ADDR);
		for (p += 8; p < end; p += p[1]) {
			assert_true(p[1] >= 2 && p + p[1] <= end);
			if (p[0] == 0) { /* local APIC: uid, APIC id, enabled */
				assert_int_equal(p[2], lapics);
				assert_int_equal(p[3], lapics);
				assert_int_equal(p[4] & 1, 1);
				lapics++;
			} else if (p[0] == 1) {
				assert_int_equal(load32(p + 4), X86_IOAPIC_ADDR);
				assert_int_equal(load32(p + 8), 0); /* GSI base */
				ioapics++;
			}
		}
		assert_ptr_equal(p, end);
		assert_int_equal(lapics, cpus);
		assert_int_equal(ioapics, 1);
		guest_memory_unmap(&t.mem);
	}
}

static void test_dsdt_devices(void **state)
{
	static const uint8_t pnp0501[] = { 0x0c, 0x41, 0xd0, 0x05, 0x01 };
	struct tables t;
	size_t len;

	(void)state;
	tables_build(&t, 2, true, VIRTIO_MMIO_MAX_SLOTS);
	len = t.dsdt->length;
	assert_int_equal(count_of(t.dsdt, len, "LNRO0005"), VIRTIO_MMIO_MAX_SLOTS);
	assert_true(contains(t.dsdt, len, pnp0501, sizeof(pnp0501)));
	assert_int_equal(count_of(t.dsdt, len, "ACPI0013"), 1);
	assert_int_equal(count_of(t.dsdt, len, "VM_GEN_COUNTER"), 1);
	assert_int_equal(count_of(t.dsdt, len, "QEMU0001"), 1);
	assert_int_equal(count_of(t.dsdt, len, "_S5_"), 1);
	assert_int_equal(count_of(t.dsdt, len, "_EVT"), 1);
	guest_memory_unmap(&t.mem);

	/* --no-legacy: no COM1 in the DSDT either */
	tables_build(&t, 1, false, 0);
	assert_false(contains(t.dsdt, t.dsdt->length, pnp0501, sizeof(pnp0501)));
	assert_int_equal(count_of(t.dsdt, t.dsdt->length, "LNRO0005"), 0);
	guest_memory_unmap(&t.mem);
}

/* The tables' home and the generation id are reserved; boot_params points to the RSDP. */
static void test_boot_data_points_to_rsdp(void **state)
{
	struct guest_memory mem;
	struct e820_entry table[8];
	struct x86_boot_info info = { .cmdline_gpa = X86_CMDLINE_ADDR, .rsdp_gpa = X86_ACPI_ADDR };
	const struct boot_params *bp;
	const struct hvm_start_info *si;
	unsigned n;
	bool reserved = false;

	(void)state;
	guest_memory_layout(&mem, 16 << 20);
	assert_int_equal(guest_memory_map(&mem), 0);
	n = x86_e820_build(&mem, table, 8, true);
	for (unsigned i = 0; i < n; i++)
		if (table[i].type == E820_RESERVED && table[i].addr <= X86_ACPI_ADDR &&
		    table[i].addr + table[i].size >= ACPI_VMGENID_ADDR + ACPI_VMGENID_SIZE)
			reserved = true;
	assert_true(reserved);
	assert_int_equal(x86_zero_page_write(&mem, &info), 0);
	bp = guest_memory_ptr(&mem, X86_ZERO_PAGE_ADDR, sizeof(*bp));
	assert_int_equal(bp->acpi_rsdp_addr, X86_ACPI_ADDR);
	assert_int_equal(bp->e820_entries, n);
	assert_int_equal(x86_pvh_start_info_write(&mem, &info), 0);
	si = guest_memory_ptr(&mem, X86_PVH_INFO_ADDR, sizeof(*si));
	assert_int_equal(si->rsdp_paddr, X86_ACPI_ADDR);
	guest_memory_unmap(&mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pkglength),
		cmocka_unit_test(test_name_strings),
		cmocka_unit_test(test_integers),
		cmocka_unit_test(test_terms),
		cmocka_unit_test(test_long_scope),
		cmocka_unit_test(test_errors_stick),
		cmocka_unit_test(test_fadt),
		cmocka_unit_test(test_madt_every_cpu_count),
		cmocka_unit_test(test_dsdt_devices),
		cmocka_unit_test(test_boot_data_points_to_rsdp),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
