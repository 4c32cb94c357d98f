/* One registry for port-I/O and MMIO traps: devices register ranges, vCPUs dispatch. */
#ifndef SNAPVM_VMM_IO_H
#define SNAPVM_VMM_IO_H

#include <stdbool.h>
#include <stdint.h>

enum io_bus { IO_BUS_PIO, IO_BUS_MMIO };

/* Handles one access at `offset` within the registered range; reads fill data. */
typedef void (*io_handler_fn)(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
			      bool is_write);

struct io_range {
	enum io_bus bus;
	uint64_t base;
	uint64_t len;
	io_handler_fn handler;
	void *opaque;
};

#define IO_MAX_RANGES 64

struct io_registry {
	unsigned count;
	struct io_range ranges[IO_MAX_RANGES]; /* sorted by (bus, base), never overlapping */
};

/* Adds a range; -EEXIST if it overlaps one already registered, -ENOSPC if full. */
int io_register(struct io_registry *io, enum io_bus bus, uint64_t base, uint64_t len,
		io_handler_fn handler, void *opaque);
/* Finds the range holding [addr, addr + len), or NULL. */
const struct io_range *io_find(const struct io_registry *io, enum io_bus bus, uint64_t addr,
			       uint32_t len);
/* Dispatches an access; unclaimed reads return all ones, unclaimed writes are dropped. */
bool io_dispatch(const struct io_registry *io, enum io_bus bus, uint64_t addr, uint8_t *data,
		 uint32_t len, bool is_write);

#endif
