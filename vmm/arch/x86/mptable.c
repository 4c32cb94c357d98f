/*
 * An MP table (Intel MultiProcessor Specification 1.4): how a guest without
 * ACPI finds its processors, its I/O APIC and how ISA interrupts are wired.
 *
 * Its OEM table (the spec's place for what the maker adds) lists snapvm's
 * virtio-mmio devices, so that a guest that recognizes snapvm by the OEM ID
 * finds them without probing each slot, where every read is a VM exit.
 * Linux does not read it and takes its virtio_mmio.device= words instead.
 */
#include "vmm/arch/x86/x86.h"
#include "vmm/device.h"
#include "common/common.h"

#include <errno.h>
#include <string.h>

#define MP_SPEC_REVISION  4
#define MP_LAPIC_VERSION  0x14
#define MP_IOAPIC_VERSION 0x11
#define MP_ISA_IRQS	  16

enum { MP_PROCESSOR, MP_BUS, MP_IOAPIC, MP_IO_INTERRUPT, MP_LOCAL_INTERRUPT };
enum { MP_INT, MP_NMI, MP_SMI, MP_EXTINT };

struct mp_floating_pointer {
	char signature[4];
	uint32_t config_table;
	uint8_t length; /* in 16-byte units */
	uint8_t revision;
	uint8_t checksum;
	uint8_t features[5];
} __attribute__((packed));

struct mp_config_header {
	char signature[4];
	uint16_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem[8];
	char product[12];
	uint32_t oem_table;
	uint16_t oem_table_size;
	uint16_t entry_count;
	uint32_t lapic_address;
	uint16_t extended_length;
	uint8_t extended_checksum;
	uint8_t reserved;
} __attribute__((packed));

struct mp_processor {
	uint8_t type;
	uint8_t apic_id;
	uint8_t apic_version;
	uint8_t flags; /* bit 0: enabled, bit 1: bootstrap processor */
	uint32_t signature;
	uint32_t features;
	uint32_t reserved[2];
} __attribute__((packed));

struct mp_bus {
	uint8_t type;
	uint8_t bus_id;
	char bus_type[6];
} __attribute__((packed));

struct mp_ioapic {
	uint8_t type;
	uint8_t apic_id;
	uint8_t apic_version;
	uint8_t flags;
	uint32_t address;
} __attribute__((packed));

struct mp_interrupt {
	uint8_t type;
	uint8_t interrupt_type;
	uint16_t flags; /* 0: polarity and trigger conform to the bus */
	uint8_t source_bus;
	uint8_t source_irq;
	uint8_t dest_apic;
	uint8_t dest_pin;
} __attribute__((packed));

/* snapvm's OEM table: a header, then one entry per virtio-mmio device in slot order. */
struct mp_oem_virtio_header {
	char signature[4]; /* "VIRT" */
	uint16_t length;   /* header and entries, in bytes */
	uint8_t count;
	uint8_t checksum; /* the whole table sums to 0 */
} __attribute__((packed));

struct mp_oem_virtio_entry {
	uint64_t base; /* MMIO window, VIRTIO_MMIO_SIZE bytes */
	uint32_t device_id;
	uint8_t irq; /* I/O APIC pin */
	uint8_t reserved[3];
} __attribute__((packed));

_Static_assert(sizeof(struct mp_config_header) == 44, "MP config header layout");
_Static_assert(sizeof(struct mp_processor) == 20, "MP processor entry layout");

static uint8_t mp_checksum(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint8_t sum = 0;

	while (len--)
		sum += *p++;
	return (uint8_t)-sum;
}

static size_t mptable_size(unsigned cpus)
{
	return sizeof(struct mp_floating_pointer) + sizeof(struct mp_config_header) +
	       cpus * sizeof(struct mp_processor) + sizeof(struct mp_bus) +
	       sizeof(struct mp_ioapic) + (MP_ISA_IRQS + 2) * sizeof(struct mp_interrupt);
}

static size_t oem_table_size(const struct virtio_mmio_slots *virtio)
{
	return sizeof(struct mp_oem_virtio_header) +
	       virtio->count * sizeof(struct mp_oem_virtio_entry);
}

static void oem_table_write(uint8_t *p, const struct virtio_mmio_slots *virtio)
{
	struct mp_oem_virtio_header *h = (void *)p;
	struct mp_oem_virtio_entry *e = (void *)(h + 1);

	memcpy(h->signature, "VIRT", 4);
	h->length = (uint16_t)oem_table_size(virtio);
	h->count = (uint8_t)virtio->count;
	for (unsigned i = 0; i < virtio->count; i++)
		e[i] = (struct mp_oem_virtio_entry){ .base = virtio->slot[i].base,
						     .device_id = virtio->slot[i].device_id,
						     .irq = (uint8_t)virtio->slot[i].irq };
	h->checksum = mp_checksum(h, h->length);
}

int x86_mptable_write(const struct guest_memory *mem, unsigned cpus,
		      const struct virtio_mmio_slots *virtio)
{
	size_t table = mptable_size(cpus), size = table + oem_table_size(virtio);
	uint8_t *base = guest_memory_ptr(mem, X86_MPTABLE_ADDR, size);
	struct mp_floating_pointer *fp = (void *)base;
	struct mp_config_header *hdr = (void *)(fp + 1);
	uint8_t *p = (uint8_t *)(hdr + 1);
	uint8_t ioapic_id = (uint8_t)cpus;

	if (!base || size > X86_BASE_MEMORY_END - X86_MPTABLE_ADDR || cpus > 254 ||
	    virtio->count > VIRTIO_MMIO_MAX_SLOTS)
		return -EINVAL;
	memset(base, 0, size);
	oem_table_write(base + table, virtio);
	hdr->oem_table = (uint32_t)(X86_MPTABLE_ADDR + table);
	hdr->oem_table_size = (uint16_t)oem_table_size(virtio);
	for (unsigned i = 0; i < cpus; i++, p += sizeof(struct mp_processor))
		*(struct mp_processor *)p = (struct mp_processor){
			.type = MP_PROCESSOR,
			.apic_id = (uint8_t)i,
			.apic_version = MP_LAPIC_VERSION,
			.flags = (uint8_t)(1 | (i == 0 ? 2 : 0)),
			.signature = 0x600, /* family 6 */
			.features = 0x201,  /* FPU, APIC */
		};
	*(struct mp_bus *)p = (struct mp_bus){ .type = MP_BUS, .bus_type = "ISA   " };
	p += sizeof(struct mp_bus);
	*(struct mp_ioapic *)p =
		(struct mp_ioapic){ MP_IOAPIC, ioapic_id, MP_IOAPIC_VERSION, 1, X86_IOAPIC_ADDR };
	p += sizeof(struct mp_ioapic);
	for (uint8_t irq = 0; irq < MP_ISA_IRQS; irq++, p += sizeof(struct mp_interrupt))
		*(struct mp_interrupt *)p =
			(struct mp_interrupt){ MP_IO_INTERRUPT, MP_INT, 0, 0, irq, ioapic_id, irq };
	/* LINT0 takes the 8259's ExtINT, LINT1 NMIs, on every local APIC (0xff) */
	*(struct mp_interrupt *)p =
		(struct mp_interrupt){ MP_LOCAL_INTERRUPT, MP_EXTINT, 0, 0, 0, 0xff, 0 };
	p += sizeof(struct mp_interrupt);
	*(struct mp_interrupt *)p =
		(struct mp_interrupt){ MP_LOCAL_INTERRUPT, MP_NMI, 0, 0, 0, 0xff, 1 };

	memcpy(hdr->signature, "PCMP", 4);
	hdr->length = (uint16_t)(table - sizeof(*fp));
	hdr->revision = MP_SPEC_REVISION;
	memcpy(hdr->oem, "SNAPVM  ", 8);
	memcpy(hdr->product, "MICROVM     ", 12);
	hdr->entry_count = (uint16_t)(cpus + 2 + MP_ISA_IRQS + 2);
	hdr->lapic_address = X86_LAPIC_ADDR;
	hdr->checksum = mp_checksum(hdr, hdr->length);

	memcpy(fp->signature, "_MP_", 4);
	fp->config_table = X86_MPTABLE_ADDR + sizeof(*fp);
	fp->length = 1;
	fp->revision = MP_SPEC_REVISION;
	fp->checksum = mp_checksum(fp, sizeof(*fp));
	return 0;
}
