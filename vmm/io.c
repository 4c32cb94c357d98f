#include "vmm/io.h"

#include <errno.h>
#include <string.h>

static int io_range_compare(const struct io_range *r, enum io_bus bus, uint64_t addr)
{
	if (r->bus != bus)
		return r->bus < bus ? -1 : 1;
	if (addr < r->base)
		return 1;
	if (addr - r->base >= r->len)
		return -1;
	return 0;
}

int io_register(struct io_registry *io, enum io_bus bus, uint64_t base, uint64_t len,
		io_handler_fn handler, void *opaque)
{
	unsigned i;

	if (!len || base + len < base)
		return -EINVAL;
	if (io->count == IO_MAX_RANGES)
		return -ENOSPC;
	for (i = 0; i < io->count; i++) {
		const struct io_range *r = &io->ranges[i];

		if (r->bus == bus && base < r->base + r->len && r->base < base + len)
			return -EEXIST;
		if (r->bus > bus || (r->bus == bus && r->base > base))
			break;
	}
	memmove(&io->ranges[i + 1], &io->ranges[i], (io->count - i) * sizeof(io->ranges[0]));
	io->ranges[i] = (struct io_range){ bus, base, len, handler, opaque };
	io->count++;
	return 0;
}

const struct io_range *io_find(const struct io_registry *io, enum io_bus bus, uint64_t addr,
			       uint32_t len)
{
	unsigned lo = 0, hi = io->count;

	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;
		int c = io_range_compare(&io->ranges[mid], bus, addr);

		if (c == 0) {
			const struct io_range *r = &io->ranges[mid];

			/* an access that straddles the end of a range is not the device's */
			return len <= r->len - (addr - r->base) ? r : NULL;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

bool io_dispatch(const struct io_registry *io, enum io_bus bus, uint64_t addr, uint8_t *data,
		 uint32_t len, bool is_write)
{
	const struct io_range *r = io_find(io, bus, addr, len);

	if (!r) {
		if (!is_write)
			memset(data, 0xff, len);
		return false;
	}
	r->handler(r->opaque, addr - r->base, data, len, is_write);
	return true;
}
