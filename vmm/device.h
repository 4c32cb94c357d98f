/*
 * The device model contract. Every device exposes one const ops table; the
 * VM creates devices in the order of the table in devices.c and walks that
 * same order to save and restore them, so snapshots are deterministic.
 *
 * Saved state is a fixed-size struct of fixed-width fields (no pointers, fds
 * or locks), kept apart from the live device. restore() checks the state it
 * is given (it may come from a damaged or hostile snapshot) and rebuilds
 * derived values through the device's normal register paths.
 */
#ifndef SNAPVM_VMM_DEVICE_H
#define SNAPVM_VMM_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/io.h"
#include "vmm/memory.h"
#include "vmm/vmm.h"

struct event_loop;
struct vmm_config;

/*
 * Where virtio-mmio devices sit: fixed 4 KiB windows from VIRTIO_MMIO_BASE and
 * IRQ lines from VIRTIO_MMIO_IRQ_BASE, handed out in creation order, so the
 * same configuration always gives the same layout. The VM keeps the list for
 * the guest's command line (virtio_mmio.device=SIZE@ADDR:IRQ).
 */
#define VIRTIO_MMIO_BASE      0xd0000000ULL
#define VIRTIO_MMIO_SIZE      0x1000
#define VIRTIO_MMIO_IRQ_BASE  5
#define VIRTIO_MMIO_MAX_SLOTS 11 /* IRQs 5-15: ISA lines that guests route without tables */

struct virtio_mmio_slots {
	unsigned count;
	struct {
		uint64_t base;
		unsigned irq;
		uint32_t device_id;
	} slot[VIRTIO_MMIO_MAX_SLOTS];
};

enum guest_event {
	GUEST_EVENT_READY, /* value: the guest's ready code */
	GUEST_EVENT_EXIT,  /* value: exit status 0-255 */
	GUEST_EVENT_PANIC, /* value: exception vector; rip: where */
	GUEST_EVENT_RESET, /* the guest pulsed the reset line (i8042): the VM ends, status 0 */
	/* value 1: the guest makes a VM exit after console output it wants seen (0: no longer) */
	GUEST_EVENT_CONSOLE_BATCHING,
	GUEST_EVENT_POWER_OFF,	 /* ACPI S5 through the GED's sleep control register: status 0 */
	GUEST_EVENT_GUEST_PANIC, /* the kernel said it panicked (pvpanic); value: what it wrote */
};

/* What a device may use of its VM. Tests build one without a VM. */
struct device_context {
	struct io_registry *io;
	struct guest_memory *mem;
	void *vm; /* passed back to the callbacks */
	/* Sets the level of an interrupt line of the in-kernel irqchip. */
	void (*irq_line)(void *vm, unsigned gsi, bool level);
	/* Reports something the guest told the control port. */
	void (*guest_event)(void *vm, enum guest_event event, uint64_t value, uint64_t rip);
	int console_out_fd; /* where console devices write; -1: nowhere */
	int console_in_fd;  /* console input: the virtio console's if any, else COM1's; -1: none */
	/*
	 * Lets KVM keep the guest's writes to [addr, addr + size) in its
	 * coalesced-I/O ring, delivered before the vCPU's next exit (on), or
	 * delivers what it kept and stops (off); 0 or -errno (logged). NULL:
	 * every access exits.
	 */
	int (*coalesced_zone)(void *vm, enum io_bus bus, uint64_t addr, uint32_t size, bool on);
	/* Host fds (ioeventfds, io_uring, sockets) are watched here; NULL: no host I/O. */
	struct event_loop *loop;
	int vm_fd; /* for KVM_IOEVENTFD and KVM_IRQFD; -1: trapped notifications, irq_line */
	const struct vmm_config *config; /* per-device configuration (disks, sockets) */
	unsigned instance;		 /* which of ops->instances() this one is */
	struct virtio_mmio_slots *virtio_slots;
	/* The VM's 128-bit generation id: new for every VM, booted or restored. */
	const uint8_t *generation;
};

struct device_ops {
	const char *name;
	/*
	 * The device's section in a snapshot (the instance number goes in the
	 * upper 16 bits), VMM_DEVICE_SECTION_FIRST-_LAST: 0x02xx legacy and
	 * ACPI devices, 0x03xx virtio. Saved snapshots hold it: a new device
	 * takes a new id, never a used one. Devices are created, saved and
	 * restored in the order of their ids, so a new one goes last in its
	 * range and leaves the guest-visible layout of the others alone.
	 */
	uint32_t section_id;
	uint32_t state_version; /* bumped when the state struct changes */
	uint32_t state_size;
	/*
	 * The oldest version restore() still takes (0: state_version only). An
	 * older state must be a prefix of today's: it arrives zero-extended.
	 */
	uint32_t state_version_oldest;
	/*
	 * Checks one value of the VM option that names this device type
	 * (options/vm_options.c), before it goes into vmm_config.device_args:
	 * 0, or -EINVAL with one line logged. NULL: the option is a switch.
	 */
	int (*check_arg)(const char *value);
	/* How many of this device the configuration asks for; NULL: always one. */
	unsigned (*instances)(const struct vmm_config *config);
	/* Creates the device and registers its I/O ranges; NULL on failure. */
	void *(*create)(const struct device_context *ctx);
	/* Puts the device in its power-on state. */
	void (*reset)(void *dev);
	/* Finishes in-flight work so that the saved state is complete; 0 or -errno. */
	int (*quiesce)(void *dev);
	/* Writes state_size bytes of saved state. */
	void (*save)(void *dev, void *state);
	/* Applies saved state after checking it; -EINVAL for state that cannot be. */
	int (*restore)(void *dev, const void *state);
	/*
	 * Before a restore creates the VM: derives this device type's part of
	 * its configuration from the saved states (`count` of them, in instance
	 * order, each state_size bytes, zero-extended, unchecked) and the
	 * restore options in `wanted`. What the guest saw (presence, MAC, CID,
	 * serial, ...) comes from the states; host resources (files, sockets,
	 * networks) from wanted; rate limits from the states unless wanted sets
	 * them. 0, or -EINVAL with one line logged. NULL: every VM has one.
	 */
	int (*restore_config)(const void *const *states, unsigned count,
			      const struct vmm_config *wanted, struct vmm_config *config);
	/* The VM is about to run, after any restore: host input may flow. 0 or -errno. */
	int (*start)(void *dev);
	/* Hears what the guest told the control port, after the VM has. NULL: nothing to hear. */
	void (*guest_event)(void *dev, enum guest_event event, uint64_t value);
	void (*destroy)(void *dev);
};

/*
 * DEVICE_REGISTER(ops) in a device's own file makes it one of the VM's
 * device types: it puts &ops in the linker section "snapvm_devices", which
 * vmm_devices() reads. Nothing else names the device: adding one is its
 * file (docs/architecture.md, "Adding a device"). The device models'
 * archive is linked whole (vmm/CMakeLists.txt), so that none is left out.
 */
#define DEVICE_REGISTER(ops)                                          \
	static const struct device_ops *const device_registered_##ops \
		__attribute__((used, section("snapvm_devices"), aligned(sizeof(void *)))) = &(ops)

/*
 * Every registered device type, in creation, save and restore order: by
 * section id. NULL-terminated. The first call checks the ids (unique, in
 * range) and stops the process on a clash, naming both devices.
 */
const struct device_ops *const *vmm_devices(void);
/* The device type with this name (device_ops.name), or NULL. */
const struct device_ops *vmm_device_find(const char *name);

/* The GED: the VM presses its power button (vm_power_button). */
extern const struct device_ops ged_device_ops;

#endif
