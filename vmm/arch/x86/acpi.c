/*
 * The fixed ACPI tables (ACPI 6.4 chapter 5): RSDP, XSDT, FADT and MADT,
 * and where all of them go. The DSDT is in acpi_dsdt.c.
 */
#include "vmm/arch/x86/acpi.h"
#include "vmm/arch/x86/x86.h"
#include "vmm/hw/acpi_ports.h"
#include "common/common.h"

#include <errno.h>
#include <string.h>

#define ACPI_OEM_ID	  "SNAPVM"
#define ACPI_OEM_TABLE_ID "SNAPVM  "
#define ACPI_CREATOR_ID	  "SNAP"
#define ACPI_GAS_IO	  1
#define ACPI_GAS_BYTE	  1

/* FADT flags and IA-PC boot architecture flags (ACPI 6.4, tables 5.10 and 5.11). */
#define FADT_PWR_BUTTON	      (1u << 4) /* the power button is a device, not fixed hardware */
#define FADT_SLP_BUTTON	      (1u << 5)
#define FADT_BOOT_NO_VGA      (1u << 2)
#define FADT_BOOT_NO_MSI      (1u << 3)
#define FADT_BOOT_NO_CMOS_RTC (1u << 5)

/* MADT entry types and flags (ACPI 6.4, 5.2.12). */
#define MADT_LOCAL_APIC	     0
#define MADT_IO_APIC	     1
#define MADT_SOURCE_OVERRIDE 2
#define MADT_LOCAL_APIC_NMI  4
#define MADT_PCAT_COMPAT     1
#define MADT_ENABLED	     1
#define MADT_ALL_PROCESSORS  0xff

struct acpi_rsdp {
	char signature[8];
	uint8_t checksum; /* of the first 20 bytes (the ACPI 1.0 structure) */
	char oem_id[6];
	uint8_t revision;
	uint32_t rsdt_address;
	uint32_t length;
	uint64_t xsdt_address;
	uint8_t extended_checksum; /* of all 36 bytes */
	uint8_t reserved[3];
} __attribute__((packed));

/* A Generic Address Structure (5.2.3.2). */
struct acpi_gas {
	uint8_t space_id;
	uint8_t bit_width;
	uint8_t bit_offset;
	uint8_t access_size;
	uint64_t address;
} __attribute__((packed));

struct acpi_fadt {
	struct acpi_table_header header;
	uint32_t firmware_ctrl;
	uint32_t dsdt;
	uint8_t reserved0;
	uint8_t preferred_pm_profile;
	uint16_t sci_int;
	uint32_t smi_cmd;
	uint8_t legacy_fields[57]; /* ACPI_ENABLE to CENTURY: none on hardware-reduced ACPI */
	uint16_t iapc_boot_arch;
	uint8_t reserved1;
	uint32_t flags;
	struct acpi_gas reset_reg;
	uint8_t reset_value;
	uint16_t arm_boot_arch;
	uint8_t minor_version;
	uint64_t x_firmware_ctrl;
	uint64_t x_dsdt;
	struct acpi_gas x_legacy_blocks[8]; /* X_PM1a_EVT_BLK to X_GPE1_BLK: none */
	struct acpi_gas sleep_control;
	struct acpi_gas sleep_status;
	uint64_t hypervisor_vendor;
} __attribute__((packed));

_Static_assert(sizeof(struct acpi_rsdp) == ACPI_RSDP_SIZE, "RSDP layout");
_Static_assert(sizeof(struct acpi_fadt) == ACPI_FADT_SIZE, "FADT layout");
_Static_assert(offsetof(struct acpi_fadt, flags) == 112, "FADT layout");
_Static_assert(offsetof(struct acpi_fadt, x_dsdt) == 140, "FADT layout");
_Static_assert(offsetof(struct acpi_fadt, sleep_control) == 244, "FADT layout");

struct madt_local_apic {
	uint8_t type, length, processor_uid, apic_id;
	uint32_t flags;
} __attribute__((packed));

struct madt_io_apic {
	uint8_t type, length, id, reserved;
	uint32_t address;
	uint32_t gsi_base;
} __attribute__((packed));

struct madt_source_override {
	uint8_t type, length, bus, source;
	uint32_t gsi;
	uint16_t flags;
} __attribute__((packed));

struct madt_local_apic_nmi {
	uint8_t type, length, processor_uid;
	uint16_t flags;
	uint8_t lint;
} __attribute__((packed));

uint8_t acpi_checksum(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint8_t sum = 0;

	while (len--)
		sum += *p++;
	return (uint8_t)-sum;
}

void acpi_header_fill(struct acpi_table_header *h, const char signature[4], uint32_t length,
		      uint8_t revision)
{
	memset(h, 0, sizeof(*h));
	memcpy(h->signature, signature, 4);
	h->length = length;
	h->revision = revision;
	memcpy(h->oem_id, ACPI_OEM_ID, 6);
	memcpy(h->oem_table_id, ACPI_OEM_TABLE_ID, 8);
	h->oem_revision = 1;
	memcpy(h->creator_id, ACPI_CREATOR_ID, 4);
	h->creator_revision = 1;
}

void acpi_table_finish(struct acpi_table_header *h)
{
	h->checksum = 0;
	h->checksum = acpi_checksum(h, h->length);
}

static void acpi_rsdp_fill(struct acpi_rsdp *r, uint64_t xsdt)
{
	memset(r, 0, sizeof(*r));
	memcpy(r->signature, "RSD PTR ", 8);
	memcpy(r->oem_id, ACPI_OEM_ID, 6);
	r->revision = 2; /* ACPI 2.0+: the XSDT; no RSDT */
	r->length = sizeof(*r);
	r->xsdt_address = xsdt;
	r->checksum = acpi_checksum(r, 20);
	r->extended_checksum = acpi_checksum(r, sizeof(*r));
}

static struct acpi_gas acpi_gas_port(uint16_t port)
{
	return (struct acpi_gas){ ACPI_GAS_IO, 8, 0, ACPI_GAS_BYTE, port };
}

/*
 * Hardware-reduced ACPI: no PM1 blocks, GPEs or SCI; the power button is a
 * device that the GED notifies, and S5 is a write to the sleep control
 * register (Linux's acpi_power_off needs both it and the status register).
 */
static void acpi_fadt_fill(struct acpi_fadt *f, uint64_t dsdt)
{
	memset(f, 0, sizeof(*f));
	acpi_header_fill(&f->header, "FACP", sizeof(*f), 6);
	f->minor_version = 4;
	f->dsdt = (uint32_t)dsdt;
	f->x_dsdt = dsdt;
	f->flags = ACPI_FADT_HW_REDUCED | FADT_PWR_BUTTON | FADT_SLP_BUTTON;
	/* no 8042 flag: Linux then leaves the i8042 (only snapvm's reset line) alone */
	f->iapc_boot_arch = FADT_BOOT_NO_VGA | FADT_BOOT_NO_MSI | FADT_BOOT_NO_CMOS_RTC;
	f->sleep_control = acpi_gas_port(ACPI_GED_PORT_BASE + ACPI_GED_SLEEP_CONTROL);
	f->sleep_status = acpi_gas_port(ACPI_GED_PORT_BASE + ACPI_GED_SLEEP_STATUS);
	acpi_table_finish(&f->header);
}

static size_t madt_size(unsigned cpus)
{
	return ACPI_HEADER_SIZE + 8 + cpus * sizeof(struct madt_local_apic) +
	       sizeof(struct madt_io_apic) + sizeof(struct madt_source_override) +
	       sizeof(struct madt_local_apic_nmi);
}

/*
 * The MP table's machine, told again: processors with APIC ids 0..cpus-1, the
 * I/O APIC (id cpus) with GSIs from 0, ISA IRQ 0 on pin 0 (not the PC's pin 2:
 * KVM's PIT drives pin 0), every other ISA line on its own pin, and NMIs on
 * every local APIC's LINT1.
 */
size_t acpi_madt_build(uint8_t *buf, size_t size, unsigned cpus)
{
	size_t len = madt_size(cpus);
	uint8_t *p = buf + ACPI_HEADER_SIZE;

	if (len > size || cpus == 0 || cpus > 254)
		return 0;
	memset(buf, 0, len);
	acpi_header_fill((struct acpi_table_header *)buf, "APIC", (uint32_t)len, 5);
	*(uint32_t *)p = X86_LAPIC_ADDR;
	*(uint32_t *)(p + 4) = MADT_PCAT_COMPAT; /* KVM has the 8259s too */
	p += 8;
	for (unsigned i = 0; i < cpus; i++, p += sizeof(struct madt_local_apic))
		*(struct madt_local_apic *)p =
			(struct madt_local_apic){ MADT_LOCAL_APIC, sizeof(struct madt_local_apic),
						  (uint8_t)i, (uint8_t)i, MADT_ENABLED };
	*(struct madt_io_apic *)p = (struct madt_io_apic){
		MADT_IO_APIC, sizeof(struct madt_io_apic), (uint8_t)cpus, 0, X86_IOAPIC_ADDR, 0
	};
	p += sizeof(struct madt_io_apic);
	*(struct madt_source_override *)p = (struct madt_source_override){
		MADT_SOURCE_OVERRIDE, sizeof(struct madt_source_override), 0, 0, 0, 0
	};
	p += sizeof(struct madt_source_override);
	*(struct madt_local_apic_nmi *)p = (struct madt_local_apic_nmi){
		MADT_LOCAL_APIC_NMI, sizeof(struct madt_local_apic_nmi), MADT_ALL_PROCESSORS, 0, 1
	};
	acpi_table_finish((struct acpi_table_header *)buf);
	return len;
}

/* Where the next table goes: 16-byte aligned after the last. */
static uint64_t acpi_next(uint64_t gpa, size_t len)
{
	return ALIGN_UP(gpa + len, 16);
}

int x86_acpi_write(const struct guest_memory *mem, const struct x86_acpi_config *config,
		   uint64_t *rsdp_gpa)
{
	uint64_t xsdt = acpi_next(X86_ACPI_ADDR, ACPI_RSDP_SIZE);
	uint64_t fadt = acpi_next(xsdt, ACPI_HEADER_SIZE + 16);
	uint64_t madt = acpi_next(fadt, ACPI_FADT_SIZE), dsdt;
	uint8_t *area = guest_memory_ptr(mem, X86_ACPI_ADDR, X86_ACPI_END - X86_ACPI_ADDR);
	uint8_t *id = guest_memory_ptr(mem, ACPI_VMGENID_ADDR, ACPI_VMGENID_SIZE);
	struct acpi_table_header *x;
	size_t len;

	if (!area || !id)
		return -EINVAL;
	if (config->generation)
		memcpy(id, config->generation, ACPI_VMGENID_SIZE);
	len = acpi_madt_build(area + (madt - X86_ACPI_ADDR), X86_ACPI_END - madt, config->cpus);
	if (!len)
		return -EINVAL;
	dsdt = acpi_next(madt, len);
	if (!acpi_dsdt_build(area + (dsdt - X86_ACPI_ADDR), X86_ACPI_END - dsdt, config))
		return -EINVAL;
	acpi_fadt_fill((struct acpi_fadt *)(area + (fadt - X86_ACPI_ADDR)), dsdt);
	x = (struct acpi_table_header *)(area + (xsdt - X86_ACPI_ADDR));
	acpi_header_fill(x, "XSDT", ACPI_HEADER_SIZE + 16, 1);
	memcpy((uint8_t *)x + ACPI_HEADER_SIZE, &fadt, 8);
	memcpy((uint8_t *)x + ACPI_HEADER_SIZE + 8, &madt, 8);
	acpi_table_finish(x);
	acpi_rsdp_fill((struct acpi_rsdp *)area, xsdt);
	*rsdp_gpa = X86_ACPI_ADDR;
	return 0;
}
