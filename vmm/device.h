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

enum guest_event {
	GUEST_EVENT_READY, /* value: the guest's ready code */
	GUEST_EVENT_EXIT,  /* value: exit status 0-255 */
	GUEST_EVENT_PANIC, /* value: exception vector; rip: where */
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
	int console_out_fd; /* where the UART writes; -1: nowhere */
};

struct device_ops {
	const char *name;
	uint32_t section_id;	/* the device's section in a snapshot */
	uint32_t state_version; /* bumped when the state struct changes */
	uint32_t state_size;
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
	void (*destroy)(void *dev);
};

extern const struct device_ops ctl_device_ops;
extern const struct device_ops uart_device_ops;

/* Every device type, in creation, save and restore order; NULL-terminated. */
extern const struct device_ops *const device_table[];

#endif
