/*
 * Other CPUs: found in the MP table (when the VMM provides one), started with
 * INIT + SIPI through a real-mode trampoline, then parked in ring 3 waiting
 * (halted, not spinning) for work the BSP hands out.
 */
#include "guest.h"
#include "virtio.h"

#define ICR_INIT       0x4500
#define ICR_STARTUP    0x4600
#define AP_START_SPINS 200000000ULL

struct mp_floating_pointer {
	char signature[4]; /* "_MP_" */
	uint32_t config_table;
	uint8_t length;
	uint8_t revision;
	uint8_t checksum;
	uint8_t features[5];
};

struct mp_config_header {
	char signature[4]; /* "PCMP" */
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
};

struct mp_processor {
	uint8_t type; /* 0 */
	uint8_t apic_id;
	uint8_t apic_version;
	uint8_t flags; /* bit 0 enabled, bit 1 bootstrap processor */
	uint32_t signature;
	uint32_t features;
	uint32_t reserved[2];
};

extern const char trampoline_start[], trampoline_end[], trampoline_cpu[];

unsigned cpus_online = 1;
bool on_snapvm;
static uint8_t ap_apic_ids[GUEST_MAX_CPUS];
static unsigned ap_count;

/* Work handed to every CPU by smp_run_all. */
static struct {
	volatile uint64_t generation;
	uint64_t (*fn)(unsigned cpu, unsigned ncpus, const void *arg);
	const void *arg;
	volatile uint64_t result[GUEST_MAX_CPUS];
	volatile unsigned done;
} work;

static const struct mp_floating_pointer *mp_find_in(uint64_t start, uint64_t end)
{
	for (uint64_t p = start; p + sizeof(struct mp_floating_pointer) <= end; p += 16) {
		if (!memcmp((const void *)p, "_MP_", 4))
			return (const void *)p;
	}
	return 0;
}

static void mp_table_read(void)
{
	const struct mp_floating_pointer *fp = mp_find_in(0x9fc00, 0xa0000);
	const struct mp_config_header *config;
	const uint8_t *entry;

	if (!fp)
		fp = mp_find_in(0xf0000, 0x100000);
	if (!fp || !fp->config_table)
		return;
	config = (const void *)(uint64_t)fp->config_table;
	if (memcmp(config->signature, "PCMP", 4))
		return;
	on_snapvm = !memcmp(config->oem, "SNAPVM  ", 8);
	if (on_snapvm && config->oem_table) /* older snapvms have none: the devices are probed */
		virtio_oem_table_read((const void *)(uint64_t)config->oem_table,
				      config->oem_table_size);
	entry = (const uint8_t *)(config + 1);
	for (unsigned i = 0; i < config->entry_count; i++) {
		if (entry[0] != 0) {
			entry += 8; /* bus, I/O APIC and interrupt entries */
			continue;
		}
		const struct mp_processor *cpu = (const void *)entry;

		if ((cpu->flags & 1) && !(cpu->flags & 2) && ap_count + 1 < GUEST_MAX_CPUS)
			ap_apic_ids[ap_count++] = cpu->apic_id;
		entry += sizeof(*cpu);
	}
}

void smp_start_aps(void)
{
	size_t size = (size_t)(trampoline_end - trampoline_start);
	volatile uint32_t *mailbox =
		(volatile uint32_t *)(GUEST_TRAMPOLINE_ADDR + (trampoline_cpu - trampoline_start));

	mp_table_read();
	if (!ap_count)
		return;
	memcpy((void *)GUEST_TRAMPOLINE_ADDR, trampoline_start, size);
	for (unsigned i = 0; i < ap_count; i++) {
		unsigned cpu = i + 1;
		uint64_t spins = 0;

		*mailbox = cpu;
		call_write_icr(ap_apic_ids[i], ICR_INIT);
		call_write_icr(ap_apic_ids[i], ICR_STARTUP | (GUEST_TRAMPOLINE_ADDR >> 12));
		while (*(volatile unsigned *)&cpus_online <= cpu && ++spins < AP_START_SPINS)
			cpu_relax();
		if (spins == AP_START_SPINS) {
			console_put_str("ERR cpu did not start\n");
			guest_exit(1);
		}
	}
}

void smp_ap_main(unsigned cpu)
{
	uint64_t seen = 0;

	__atomic_add_fetch(&cpus_online, 1, __ATOMIC_SEQ_CST);
	for (;;) {
		while (work.generation == seen)
			call_wait();
		seen = work.generation;
		work.result[cpu] = work.fn(cpu, cpus_online, work.arg);
		__atomic_add_fetch(&work.done, 1, __ATOMIC_SEQ_CST);
	}
}

uint64_t smp_run_all(uint64_t (*fn)(unsigned cpu, unsigned ncpus, const void *arg), const void *arg)
{
	uint64_t sum;

	work.fn = fn;
	work.arg = arg;
	work.done = 0;
	__atomic_add_fetch(&work.generation, 1, __ATOMIC_SEQ_CST);
	for (unsigned i = 0; i < ap_count; i++)
		call_write_icr(ap_apic_ids[i], VECTOR_WAKE);
	sum = fn(0, cpus_online, arg);
	while (work.done != cpus_online - 1)
		cpu_relax();
	for (unsigned cpu = 1; cpu < cpus_online; cpu++)
		sum += work.result[cpu];
	return sum;
}
