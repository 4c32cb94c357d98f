/*
 * Where snapvm's ACPI devices sit, shared by their models (ged.c, pvpanic.c,
 * vmgenid.c) and by the DSDT and FADT that describe them (arch/x86/acpi*.c).
 * Documented in README.md, "ACPI".
 */
#ifndef SNAPVM_VMM_HW_ACPI_PORTS_H
#define SNAPVM_VMM_HW_ACPI_PORTS_H

/*
 * The Generic Event Device's I/O ports: the FADT's sleep control and status
 * registers (hardware-reduced ACPI has no PM1 blocks), and the event register
 * that its _EVT method reads. 0x620 follows the control port's 0x600-0x61f.
 */
#define ACPI_GED_PORT_BASE	    0x620
#define ACPI_GED_PORT_COUNT	    8
#define ACPI_GED_SLEEP_CONTROL	    0  /* write8: SLP_TYP (bits 4-2) | SLP_EN (bit 5) */
#define ACPI_GED_SLEEP_STATUS	    1  /* read8: 0, the VM never wakes from sleep */
#define ACPI_GED_EVENT		    4  /* read32: pending events, cleared by the read */
#define ACPI_GED_GSI		    16 /* the first I/O APIC pin past the ISA lines */
#define ACPI_GED_EVENT_POWER_BUTTON 0x1
#define ACPI_GED_EVENT_GENERATION   0x2 /* the VM generation id changed */

#define ACPI_SLEEP_ENABLE     0x20
#define ACPI_SLEEP_TYPE_SHIFT 2
#define ACPI_SLEEP_TYPE_MASK  0x7
#define ACPI_SLEEP_TYPE_S5    5 /* the value of \_S5 the DSDT gives */

/* pvpanic's port, where QEMU has it: the guest writes 1 when it panics. */
#define ACPI_PVPANIC_PORT     0x505
#define ACPI_PVPANIC_PANICKED 0x1

/*
 * The 16-byte VM generation id, in the reserved BIOS area below 1 MiB
 * (after the ACPI tables), at a fixed address so that a test can read it
 * through /dev/mem without parsing the DSDT.
 */
#define ACPI_VMGENID_ADDR 0xef000
#define ACPI_VMGENID_SIZE 16

#endif
