/*
 * ACPI tables for Linux guests (private to vmm/): an RSDP, an XSDT, a
 * hardware-reduced FADT, a MADT and a DSDT that names every device, in the
 * reserved BIOS area below 1 MiB. Guest memory holds them, so a snapshot
 * keeps them and a restore never rebuilds them.
 */
#ifndef SNAPVM_X86_ACPI_H
#define SNAPVM_X86_ACPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/memory.h"

struct virtio_mmio_slots;

#define X86_ACPI_ADDR	     0xe0000 /* the RSDP, where a legacy scan finds it too */
#define X86_ACPI_END	     0xef000 /* the VM generation id follows */
#define X86_BIOS_AREA_END    0x100000
#define ACPI_HEADER_SIZE     36
#define ACPI_RSDP_SIZE	     36
#define ACPI_FADT_SIZE	     276
#define ACPI_FADT_HW_REDUCED (1u << 20)

/* What the tables describe. */
struct x86_acpi_config {
	unsigned cpus;
	bool com1; /* the COM1 UART exists (no --no-legacy) */
	const struct virtio_mmio_slots *virtio;
	const uint8_t *generation; /* the VM generation id for ACPI_VMGENID_ADDR; NULL: zeros */
};

/* The common header every ACPI table but the RSDP starts with (ACPI 6.4, 5.2.6). */
struct acpi_table_header {
	char signature[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	char creator_id[4];
	uint32_t creator_revision;
} __attribute__((packed));

_Static_assert(sizeof(struct acpi_table_header) == ACPI_HEADER_SIZE, "ACPI header layout");

/* The byte that makes len bytes at data sum to zero (with the checksum byte at 0). */
uint8_t acpi_checksum(const void *data, size_t len);
/* Fills a table header and, once the body is written, its checksum (acpi_table_finish). */
void acpi_header_fill(struct acpi_table_header *h, const char signature[4], uint32_t length,
		      uint8_t revision);
/* Sets the checksum of a whole table whose header gives its length. */
void acpi_table_finish(struct acpi_table_header *h);
/* Writes the DSDT into buf; its length, or 0 if it does not fit in size bytes. */
size_t acpi_dsdt_build(uint8_t *buf, size_t size, const struct x86_acpi_config *config);
/* Writes the MADT into buf; its length, or 0 if it does not fit. */
size_t acpi_madt_build(uint8_t *buf, size_t size, unsigned cpus);
/*
 * Writes every table from X86_ACPI_ADDR, the RSDP first, and the generation
 * id at ACPI_VMGENID_ADDR; 0 and the RSDP's
 * address in *rsdp_gpa, or -EINVAL if guest RAM cannot hold them.
 */
int x86_acpi_write(const struct guest_memory *mem, const struct x86_acpi_config *config,
		   uint64_t *rsdp_gpa);

#endif
