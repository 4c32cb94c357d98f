/* The test guest's ring-3 helpers: port I/O, calls into ring 0, console, numbers. */
#ifndef SNAPGUEST_GUEST_H
#define SNAPGUEST_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layout.h"

/*
 * Where buffers of a page or more go. The linker script puts the guest's
 * other zero-initialized variables in .data, as zeros in the file, so that
 * the few pages a boot touches are loaded with the code: present on the host,
 * one shadow-paging fault (~20 us on PVM) maps eight of them at once, where
 * .bss pages, which snapvm leaves untouched, take a fault each and two when
 * first read. The script checks that .data stays small.
 */
#define GUEST_BUFFER __attribute__((section(".bss.buffers")))

static inline void outb(uint16_t port, uint8_t value)
{
	__asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port));
}

static inline void outw(uint16_t port, uint16_t value)
{
	__asm__ volatile("outw %0, %1" : : "a"(value), "Nd"(port));
}

static inline void outl(uint16_t port, uint32_t value)
{
	__asm__ volatile("outl %0, %1" : : "a"(value), "Nd"(port));
}

static inline uint32_t inl(uint16_t port)
{
	uint32_t value;

	__asm__ volatile("inl %1, %0" : "=a"(value) : "Nd"(port));
	return value;
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t value;

	__asm__ volatile("inb %1, %0" : "=a"(value) : "Nd"(port));
	return value;
}

static inline void cpu_relax(void)
{
	__asm__ volatile("pause" ::: "memory");
}

/* console.c: makes the VM exit after which snapvm sends the console output it holds. */
void console_flush(void);

/* Halts in ring 0 with interrupts enabled until an interrupt (UART, IPI) arrives. */
static inline void call_wait(void)
{
	uint64_t number = CALL_WAIT;

	console_flush(); /* never halt on output snapvm still holds (CTL_PORT_CONSOLE_BATCHING) */
	__asm__ volatile("ud2" : "+a"(number) : : "rcx", "rdx", "memory");
}

/*
 * Set to 1 by ring 0 for each interrupt vector taken; ring 3 clears the
 * entries it looks at (interrupts only arrive during call_wait, so there is
 * no race with ring 3 on the CPU that takes them).
 */
extern volatile uint8_t irq_seen[256];

/* Writes the x2APIC interrupt command register (IPI, INIT, SIPI). */
static inline void call_write_icr(uint32_t apic_id, uint32_t icr)
{
	uint64_t number = CALL_WRITE_ICR;

	__asm__ volatile("ud2"
			 : "+a"(number)
			 : "D"((uint64_t)apic_id), "S"((uint64_t)icr)
			 : "rcx", "rdx", "memory");
}

/* Tells snapvm (control port) that the guest ends with this code; does not return. */
void guest_exit(unsigned code) __attribute__((noreturn));

/* console.c: the 16550 on COM1. */
void console_init(void);
void console_write(const char *s, size_t len);
void console_put_char(char c);
void console_put_str(const char *s);
void console_put_hex64(uint64_t value);
void console_put_dec(uint64_t value);
/* Reads one line (without its end) into buf; waits without spinning. */
size_t console_read_line(char *buf, size_t size);
/* Takes a whole line into buf if the UART has one; never waits. */
bool console_poll_line(char *buf, size_t size);
/* When set, console output goes here instead of the UART (virtio console, vsock replies). */
extern void (*console_sink)(const char *s, size_t len);

/* main.c: answers one request line (replies through console_write). */
void serve_request(const char *line);

/* lib.c */
void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
bool str_starts_with(const char *s, const char *prefix);
/* Parses a decimal number with an optional K/M/G suffix; advances *s. */
bool parse_number(const char **s, uint64_t *value, bool allow_suffix);
const char *skip_spaces(const char *s);
uint64_t mix64(uint64_t x);

/* boot.c: what the boot protocol told us. */
struct boot_info {
	const char *cmdline;
	uint64_t ram_below_4g_end; /* end of the RAM region that holds the image */
};
void boot_info_read(uint64_t kind, uint64_t info, struct boot_info *out);

/* time.c: KVM's paravirtual clock. */
uint64_t time_monotonic_ns(void);
uint64_t time_realtime_ns(void);

/* smp.c */
extern unsigned cpus_online;
/* The MP table names snapvm as its maker; known once smp_start_aps() has read it. */
extern bool on_snapvm;
/* Reads the MP table and starts the other CPUs it lists. */
void smp_start_aps(void);
void smp_ap_main(unsigned cpu) __attribute__((noreturn));
/* Runs fn(cpu, arg) on every online CPU at once; returns the sum of the results. */
uint64_t smp_run_all(uint64_t (*fn)(unsigned cpu, unsigned ncpus, const void *arg),
		     const void *arg);

#endif
