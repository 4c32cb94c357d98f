/* Checking a whole state file before any of it reaches KVM. */
#include "snapshot/state.h"
#include "common/common.h"
#include "vmm/vmm.h"

#include <errno.h>
#include <string.h>

/* Finds a fixed-size section of version 1 and copies it out. */
static int decode_fixed(const struct snapshot_parsed *parsed, uint32_t id, const char *what,
			void *out, size_t size)
{
	const struct snapshot_section *s = snapshot_find(parsed, id);

	if (!s)
		return log_invalid("snapshot has no %s section", what);
	if (s->version != 1)
		return log_invalid("snapshot's %s section has unknown version %u", what,
				   s->version);
	if (s->length != size)
		return log_invalid("snapshot's %s section is %llu bytes, expected %zu", what,
				   (unsigned long long)s->length, size);
	memcpy(out, s->payload, size);
	return 0;
}

static int decode_vm(struct snapshot_state *st)
{
	int ret = decode_fixed(&st->parsed, SECTION_VM, "VM", &st->vm, sizeof(st->vm));

	if (ret)
		return ret;
	if (st->vm.mem_size < VMM_MIN_MEM || st->vm.mem_size > VMM_MAX_MEM ||
	    st->vm.mem_size % 4096)
		return log_invalid("snapshot's guest RAM size %llu is impossible",
				   (unsigned long long)st->vm.mem_size);
	if (st->vm.cpus < 1 || st->vm.cpus > VMM_MAX_CPUS)
		return log_invalid("snapshot has %u vCPUs; snapvm runs 1 to %d", st->vm.cpus,
				   VMM_MAX_CPUS);
	return 0;
}

static int decode_irqchips(struct snapshot_state *st)
{
	int ret =
		decode_fixed(&st->parsed, SECTION_IRQCHIP, "irqchip", st->chips, sizeof(st->chips));

	for (uint32_t id = 0; !ret && id < 3; id++) {
		if (st->chips[id].chip_id != id)
			return log_invalid("snapshot's irqchip %u has id %u", id,
					   st->chips[id].chip_id);
	}
	return ret;
}

/* Every section must be one this snapvm knows, or marked optional. */
static int check_known_sections(const struct snapshot_state *st)
{
	for (unsigned i = 0; i < st->parsed.section_count; i++) {
		const struct snapshot_section *s = &st->parsed.sections[i];
		bool known = s->id == SECTION_VM || s->id == SECTION_CLOCK ||
			     s->id == SECTION_IRQCHIP ||
			     (s->id >= SECTION_VCPU && s->id < SECTION_VCPU + st->vm.cpus) ||
			     section_is_device(s->id);

		if (!known && !(s->flags & SECTION_OPTIONAL))
			return log_invalid(
				"snapshot has unknown section 0x%x (made by a newer snapvm?)",
				s->id);
	}
	return 0;
}

int snapshot_state_decode(const uint8_t *data, size_t len, struct snapshot_state *st)
{
	int ret;

	memset(st, 0, sizeof(*st));
	ret = snapshot_parse(data, len, &st->parsed);
	if (!ret)
		ret = decode_vm(st);
	for (unsigned i = 0; !ret && i < st->vm.cpus; i++) {
		const struct snapshot_section *s = snapshot_find(&st->parsed, SECTION_VCPU + i);

		if (!s)
			return log_invalid("snapshot has no state for vCPU %u", i);
		ret = vcpu_state_decode(s, &st->vcpus[i]);
	}
	if (!ret)
		ret = decode_irqchips(st);
	if (!ret)
		ret = decode_fixed(&st->parsed, SECTION_CLOCK, "clock", &st->clock,
				   sizeof(st->clock));
	if (!ret)
		ret = check_known_sections(st);
	return ret;
}
