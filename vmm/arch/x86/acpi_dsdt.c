/*
 * The DSDT: every device a stock kernel cannot find by itself. Linux binds
 * its drivers by these ids: LNRO0005 (virtio_mmio), PNP0501 (8250 serial),
 * ACPI0013 (evged), PNP0C0C (the ACPI power button), VM_GEN_COUNTER
 * (vmgenid) and QEMU0001 (pvpanic-mmio, which takes an I/O port too).
 */
#include "vmm/arch/x86/acpi.h"
#include "vmm/arch/x86/aml.h"
#include "vmm/device.h"
#include "vmm/hw/acpi_ports.h"
#include "vmm/hw/uart.h"

#include <stdio.h>

#define ACPI_REGION_IO	   1
#define ACPI_NOTIFY_DEVICE 0x80 /* power button: pressed; vmgenid: the id changed */

/* Name(_CRS, ResourceTemplate() { ... }): the caller adds descriptors, then closes. */
static void dsdt_crs_open(struct aml *a)
{
	aml_name(a, "_CRS");
	aml_buffer_open(a);
}

static void dsdt_crs_close(struct aml *a)
{
	aml_end_tag(a);
	aml_close(a);
}

static void dsdt_hid_string(struct aml *a, const char *hid, unsigned uid)
{
	aml_name(a, "_HID");
	aml_string(a, hid);
	aml_name(a, "_UID");
	aml_integer(a, uid);
}

/* Virtio-mmio windows, edge-triggered as their transport raises them. */
static void dsdt_virtio(struct aml *a, const struct virtio_mmio_slots *virtio)
{
	for (unsigned i = 0; i < virtio->count; i++) {
		char name[5];

		snprintf(name, sizeof(name), "VR%02u", i % 100); /* at most VIRTIO_MMIO_MAX_SLOTS */
		aml_device_open(a, name);
		dsdt_hid_string(a, "LNRO0005", i);
		dsdt_crs_open(a);
		aml_memory32_fixed(a, (uint32_t)virtio->slot[i].base, VIRTIO_MMIO_SIZE);
		aml_interrupt(a, AML_EDGE, virtio->slot[i].irq);
		dsdt_crs_close(a);
		aml_close(a);
	}
}

static void dsdt_com1(struct aml *a)
{
	aml_device_open(a, "COM1");
	aml_name(a, "_HID");
	aml_eisa_id(a, "PNP0501");
	aml_name(a, "_UID");
	aml_integer(a, 1);
	dsdt_crs_open(a);
	aml_io(a, UART_COM1_BASE, 8);
	aml_interrupt(a, AML_EDGE, UART_COM1_IRQ);
	dsdt_crs_close(a);
	aml_close(a);
}

/*
 * The GED: a level interrupt that stays up until _EVT reads the event
 * register, which dispatches each pending event as a Notify.
 */
static void dsdt_ged(struct aml *a)
{
	aml_device_open(a, "PWRB");
	aml_name(a, "_HID");
	aml_eisa_id(a, "PNP0C0C");
	aml_name(a, "_UID");
	aml_integer(a, 0);
	aml_close(a);

	aml_device_open(a, "GED");
	dsdt_hid_string(a, "ACPI0013", 0);
	dsdt_crs_open(a);
	aml_interrupt(a, AML_LEVEL, ACPI_GED_GSI);
	dsdt_crs_close(a);
	aml_operation_region(a, "EREG", ACPI_REGION_IO, ACPI_GED_PORT_BASE + ACPI_GED_EVENT, 4);
	aml_field_dword(a, "EREG", "ESEL");
	aml_method_open(a, "_EVT", 1);
	aml_store_to_local0(a, "ESEL");
	aml_if_local0_and_open(a, ACPI_GED_EVENT_POWER_BUTTON);
	aml_notify(a, "\\_SB.PWRB", ACPI_NOTIFY_DEVICE);
	aml_close(a);
	aml_if_local0_and_open(a, ACPI_GED_EVENT_GENERATION);
	aml_notify(a, "\\_SB.VGEN", ACPI_NOTIFY_DEVICE);
	aml_close(a);
	aml_close(a); /* _EVT */
	aml_close(a); /* GED */
}

/* ADDR returns the id's address as two 32-bit halves, low first, as vmgenid.c reads it. */
static void dsdt_vmgenid(struct aml *a)
{
	aml_device_open(a, "VGEN");
	dsdt_hid_string(a, "SNAP0001", 0);
	aml_name(a, "_CID");
	aml_string(a, "VM_GEN_COUNTER");
	aml_name(a, "_DDN");
	aml_string(a, "VM_Gen_Counter");
	aml_method_open(a, "ADDR", 0);
	aml_return(a);
	aml_package_open(a, 2);
	aml_integer(a, (uint32_t)ACPI_VMGENID_ADDR);
	aml_integer(a, (uint64_t)ACPI_VMGENID_ADDR >> 32);
	aml_close(a);
	aml_close(a);
	aml_close(a);
}

static void dsdt_pvpanic(struct aml *a)
{
	aml_device_open(a, "PEVT");
	dsdt_hid_string(a, "QEMU0001", 0);
	dsdt_crs_open(a);
	aml_io(a, ACPI_PVPANIC_PORT, 1);
	dsdt_crs_close(a);
	aml_close(a);
}

size_t acpi_dsdt_build(uint8_t *buf, size_t size, const struct x86_acpi_config *config)
{
	struct aml a;

	if (size < ACPI_HEADER_SIZE)
		return 0;
	aml_init(&a, buf + ACPI_HEADER_SIZE, size - ACPI_HEADER_SIZE);
	aml_scope_open(&a, "\\_SB");
	dsdt_virtio(&a, config->virtio);
	if (config->com1)
		dsdt_com1(&a);
	dsdt_ged(&a);
	dsdt_vmgenid(&a);
	dsdt_pvpanic(&a);
	aml_close(&a);
	/* S5 (soft off): SLP_TYPa and SLP_TYPb for the sleep control register */
	aml_name(&a, "\\_S5");
	aml_package_open(&a, 2);
	aml_integer(&a, ACPI_SLEEP_TYPE_S5);
	aml_integer(&a, ACPI_SLEEP_TYPE_S5);
	aml_close(&a);
	if (!aml_ok(&a))
		return 0;
	/* revision 2: integers are 64 bits */
	acpi_header_fill((struct acpi_table_header *)buf, "DSDT",
			 (uint32_t)(ACPI_HEADER_SIZE + a.len), 2);
	acpi_table_finish((struct acpi_table_header *)buf);
	return ACPI_HEADER_SIZE + a.len;
}
