/*
 * snapshot/: the state file container, the state sections, and the checks a
 * state file goes through before it reaches KVM. Every malformed case of the
 * snapshot issue is here: truncation, bad checksum, unknown major version,
 * newer minor, oversized sections, incompatible CPUs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "snapshot/cpu.h"
#include "snapshot/format.h"
#include "snapshot/state.h"
#include "vmm/device.h"
#include "tests/unit/test_log.h"

static char error[512];

/* Recomputes the trailer after a test edited the bytes before it. */
static void resign(struct snapshot_buffer *b)
{
	struct snapshot_trailer *t = (void *)(b->data + b->len - sizeof(*t));

	sha256_digest(b->data, b->len - sizeof(*t), t->sha256);
}

static struct snapshot_header *header_of(struct snapshot_buffer *b)
{
	return (struct snapshot_header *)b->data;
}

/* A vCPU state with recognizable contents: 2 CPUID entries, 3 MSRs, 4 KiB of xsave. */
static struct vcpu_state sample_vcpu(unsigned seed)
{
	static uint8_t xsave[4096];
	static struct kvm_cpuid_entry2 cpuid[2];
	static struct kvm_msr_entry msrs[3];
	struct vcpu_state s = { 0 };

	memset(xsave, (int)seed, sizeof(xsave));
	cpuid[0] = (struct kvm_cpuid_entry2){ .function = 0, .ebx = 0x756e6547 };
	cpuid[1] = (struct kvm_cpuid_entry2){ .function = 1, .ecx = 0x80000001, .edx = 0x10 };
	for (unsigned i = 0; i < 3; i++)
		msrs[i] = (struct kvm_msr_entry){ .index = 0x10 + i, .data = seed * 100 + i };
	s.fixed.regs.rip = 0x100000 + seed;
	s.fixed.sregs.cr3 = 0x9000;
	s.fixed.xsave_size = sizeof(xsave);
	s.fixed.cpuid_count = 2;
	s.fixed.msr_count = 3;
	s.xsave = xsave;
	s.cpuid = cpuid;
	s.msrs = msrs;
	return s;
}

/* A complete, valid state file for a VM with `cpus` vCPUs. */
static void sample_state(struct snapshot_buffer *b, unsigned cpus)
{
	struct snapshot_header h = { .cpu_vendor = "GenuineIntel", .created_ns = 1 };
	struct vm_section vm = { .mem_size = 128ULL << 20, .cpus = cpus };
	struct kvm_irqchip chips[3] = { { .chip_id = 0 }, { .chip_id = 1 }, { .chip_id = 2 } };
	struct clock_section clock = { .kvm.clock = 123456789 };
	uint8_t device[16] = { 1, 2, 3 };

	snapshot_write_begin(b, &h);
	snapshot_write_section(b, SECTION_VM, 1, 0, &vm, sizeof(vm));
	for (unsigned i = 0; i < cpus; i++) {
		struct vcpu_state v = sample_vcpu(i + 1);

		vcpu_state_encode(b, i, &v);
	}
	snapshot_write_section(b, SECTION_IRQCHIP, 1, 0, chips, sizeof(chips));
	snapshot_write_section(b, SECTION_CLOCK, 1, 0, &clock, sizeof(clock));
	snapshot_write_section(b, VMM_DEVICE_SECTION_FIRST + 1, 1, 0, device,
			       sizeof(device)); /* a device */
	assert_int_equal(snapshot_write_finish(b), 0);
}

static int decode(struct snapshot_buffer *b)
{
	struct snapshot_state *st = malloc(sizeof(*st));
	int ret;

	ret = LOGGED(error, snapshot_state_decode(b->data, b->len, st));
	free(st);
	return ret;
}

static void expect_refused(struct snapshot_buffer *b, int code, const char *fragment)
{
	int ret = decode(b);

	if (ret != code)
		fail_msg("decode returned %d, expected %d (%s)", ret, code, error);
	log_expect_one_line(error, fragment);
}

static void test_container_round_trip(void **state)
{
	struct snapshot_buffer b, again;
	struct snapshot_parsed *p = malloc(sizeof(*p));

	(void)state;
	sample_state(&b, 2);
	assert_int_equal(snapshot_parse(b.data, b.len, p), 0);
	assert_int_equal(p->section_count, 6);
	assert_int_equal(p->header.major, SNAPSHOT_FORMAT_MAJOR);
	/* rebuilding from what was parsed gives the same bytes */
	snapshot_write_begin(&again, &p->header);
	for (unsigned i = 0; i < p->section_count; i++)
		snapshot_write_section(&again, p->sections[i].id, p->sections[i].version,
				       p->sections[i].flags, p->sections[i].payload,
				       p->sections[i].length);
	assert_int_equal(snapshot_write_finish(&again), 0);
	assert_int_equal(again.len, b.len);
	assert_memory_equal(again.data, b.data, b.len);
	snapshot_buffer_free(&b);
	snapshot_buffer_free(&again);
	free(p);
}

static void test_vcpu_section_round_trip(void **state)
{
	struct snapshot_buffer b, again;
	struct snapshot_parsed *p = malloc(sizeof(*p));
	struct vcpu_state in = sample_vcpu(7), out;
	struct snapshot_header h = { 0 };

	(void)state;
	snapshot_write_begin(&b, &h);
	vcpu_state_encode(&b, 3, &in);
	assert_int_equal(snapshot_write_finish(&b), 0);
	assert_int_equal(snapshot_parse(b.data, b.len, p), 0);
	assert_int_equal(p->sections[0].id, SECTION_VCPU + 3);
	assert_int_equal(vcpu_state_decode(&p->sections[0], &out), 0);
	assert_int_equal(out.fixed.regs.rip, in.fixed.regs.rip);
	assert_int_equal(out.msrs[2].data, 702);
	assert_int_equal(out.cpuid[1].ecx, 0x80000001);
	assert_memory_equal(out.xsave, in.xsave, 4096);
	snapshot_write_begin(&again, &h);
	vcpu_state_encode(&again, 3, &out);
	assert_int_equal(snapshot_write_finish(&again), 0);
	assert_memory_equal(again.data, b.data, b.len); /* save -> load -> save: same bytes */
	snapshot_buffer_free(&b);
	snapshot_buffer_free(&again);
	free(p);
}

static void test_valid_state_decodes(void **state)
{
	struct snapshot_buffer b;

	(void)state;
	sample_state(&b, 2);
	assert_int_equal(decode(&b), 0);
	snapshot_buffer_free(&b);
}

static void test_truncated(void **state)
{
	struct snapshot_buffer b;
	size_t full;

	(void)state;
	sample_state(&b, 1);
	full = b.len;
	for (size_t len = 0; len < full; len += 97) {
		b.len = len;
		assert_int_equal(decode(&b), -EINVAL);
		assert_true(strstr(error, "truncated") || strstr(error, "bad magic"));
	}
	b.len = full - 1;
	expect_refused(&b, -EINVAL, "truncated");
	snapshot_buffer_free(&b);
}

static void test_bad_checksum(void **state)
{
	struct snapshot_buffer b;

	(void)state;
	sample_state(&b, 1);
	b.data[sizeof(struct snapshot_header) + 40] ^= 0x01;
	expect_refused(&b, -EINVAL, "checksum");
	snapshot_buffer_free(&b);
}

static void test_versions(void **state)
{
	struct snapshot_buffer b;

	(void)state;
	sample_state(&b, 1);
	header_of(&b)->major = SNAPSHOT_FORMAT_MAJOR + 1;
	resign(&b);
	expect_refused(&b, -EPROTO, "snapshot format 3.0: this snapvm reads format 2.x only");
	/* format 1 kept the devices' configuration apart from them: not read, taken again */
	header_of(&b)->major = 1;
	resign(&b);
	expect_refused(&b, -EPROTO,
		       "snapshot format 1.0: this snapvm reads format 2.x only (take the snapshot "
		       "again)");
	header_of(&b)->major = SNAPSHOT_FORMAT_MAJOR;
	header_of(&b)->minor = SNAPSHOT_FORMAT_MINOR + 1;
	resign(&b);
	expect_refused(&b, -EPROTO, "is newer than this snapvm");
	header_of(&b)->minor = SNAPSHOT_FORMAT_MINOR;
	memcpy(header_of(&b)->magic, "NOTASNAP", 8);
	resign(&b);
	expect_refused(&b, -EINVAL, "bad magic");
	snapshot_buffer_free(&b);
}

static bool device_section_fits(uint32_t version, uint64_t length, uint32_t state_version,
				uint32_t state_size, uint32_t oldest)
{
	struct vm_device_info info = { "device", 0x0200, state_version, state_size, oldest };

	return vmm_device_state_fits(&info, version, length);
}

/* A device takes its own state, or an older, shorter one it still reads. */
static void test_device_section_versions(void **state)
{
	(void)state;
	/* today's version: exactly today's size */
	assert_true(device_section_fits(2, 20, 2, 20, 1));
	assert_false(device_section_fits(2, 16, 2, 20, 1));
	assert_false(device_section_fits(2, 24, 2, 20, 1));
	/* an older version it reads: shorter, zero-extended */
	assert_true(device_section_fits(1, 16, 2, 20, 1));
	assert_false(device_section_fits(1, 20, 2, 20, 1));
	assert_false(device_section_fits(1, 0, 2, 20, 1));
	/* older than it reads, none older at all, or newer */
	assert_false(device_section_fits(1, 16, 3, 24, 2));
	assert_false(device_section_fits(1, 16, 2, 20, 0));
	assert_false(device_section_fits(3, 20, 2, 20, 1));
}

static void test_oversized_and_overlapping_sections(void **state)
{
	struct snapshot_buffer b;
	struct snapshot_section_header *first;

	(void)state;
	sample_state(&b, 1);
	first = (void *)(b.data + sizeof(struct snapshot_header));
	first->length = (uint64_t)SNAPSHOT_MAX_SECTION_SIZE + 1;
	resign(&b);
	expect_refused(&b, -EINVAL, "more than 16 MiB");
	first->length = b.len; /* runs past the end */
	resign(&b);
	expect_refused(&b, -EINVAL, "runs past the end");
	first->length = sizeof(struct vm_section);
	header_of(&b)->section_count = SNAPSHOT_MAX_SECTIONS + 1;
	resign(&b);
	expect_refused(&b, -EINVAL, "sections, more than");
	header_of(&b)->section_count = 3; /* fewer than there are: bytes left over */
	resign(&b);
	expect_refused(&b, -EINVAL, "after its last section");
	snapshot_buffer_free(&b);
}

static void test_file_size_cap(void **state)
{
	static uint8_t big[SNAPSHOT_MAX_FILE_SIZE + 1];
	struct snapshot_parsed *p = malloc(sizeof(*p));

	(void)state;
	assert_int_equal(LOGGED(error, snapshot_parse(big, sizeof(big), p)), -EINVAL);
	assert_non_null(strstr(error, "limit"));
	free(p);
}

static void test_bad_sections(void **state)
{
	struct snapshot_buffer b;
	struct snapshot_header h = { 0 };
	struct vm_section vm = { .mem_size = 128ULL << 20, .cpus = 1 };
	struct vm_section zero_mem = { .mem_size = 0, .cpus = 1 };
	struct vm_section many_cpus = { .mem_size = 128ULL << 20, .cpus = 99 };
	struct vcpu_state v = sample_vcpu(1);

	(void)state;
	/* no vCPU section */
	snapshot_write_begin(&b, &h);
	snapshot_write_section(&b, SECTION_VM, 1, 0, &vm, sizeof(vm));
	assert_int_equal(snapshot_write_finish(&b), 0);
	expect_refused(&b, -EINVAL, "no state for vCPU 0");
	snapshot_buffer_free(&b);

	snapshot_write_begin(&b, &h);
	snapshot_write_section(&b, SECTION_VM, 1, 0, &zero_mem, sizeof(zero_mem));
	assert_int_equal(snapshot_write_finish(&b), 0);
	expect_refused(&b, -EINVAL, "RAM size");
	snapshot_buffer_free(&b);

	snapshot_write_begin(&b, &h);
	snapshot_write_section(&b, SECTION_VM, 1, 0, &many_cpus, sizeof(many_cpus));
	assert_int_equal(snapshot_write_finish(&b), 0);
	expect_refused(&b, -EINVAL, "99 vCPUs");
	snapshot_buffer_free(&b);

	/* a vCPU section whose counts promise more than it holds */
	v.fixed.msr_count = 1000;
	snapshot_write_begin(&b, &h);
	snapshot_write_section(&b, SECTION_VM, 1, 0, &vm, sizeof(vm));
	snapshot_write_section_open(&b, SECTION_VCPU, 1, 0);
	snapshot_write_bytes(&b, &v.fixed, sizeof(v.fixed));
	snapshot_write_section_close(&b);
	assert_int_equal(snapshot_write_finish(&b), 0);
	expect_refused(&b, -EINVAL, "its counts say");
	snapshot_buffer_free(&b);

	v.fixed.xsave_size = VCPU_MAX_XSAVE_SIZE + 1;
	snapshot_write_begin(&b, &h);
	snapshot_write_section(&b, SECTION_VM, 1, 0, &vm, sizeof(vm));
	snapshot_write_section(&b, SECTION_VCPU, 1, 0, &v.fixed, sizeof(v.fixed));
	assert_int_equal(snapshot_write_finish(&b), 0);
	expect_refused(&b, -EINVAL, "impossible sizes");
	snapshot_buffer_free(&b);
}

static void test_unknown_sections(void **state)
{
	struct snapshot_buffer b;
	uint8_t extra[8] = { 0 };
	struct snapshot_parsed *p = malloc(sizeof(*p));
	struct snapshot_header h;

	(void)state;
	sample_state(&b, 1);
	assert_int_equal(snapshot_parse(b.data, b.len, p), 0);
	h = p->header;
	snapshot_buffer_free(&b);
	/* rebuild with two extra sections: an optional one is skipped, a mandatory one refused */
	for (int optional = 1; optional >= 0; optional--) {
		sample_state(&b, 1);
		assert_int_equal(snapshot_parse(b.data, b.len, p), 0);
		{
			struct snapshot_buffer c;

			snapshot_write_begin(&c, &h);
			for (unsigned i = 0; i < p->section_count; i++)
				snapshot_write_section(&c, p->sections[i].id,
						       p->sections[i].version, p->sections[i].flags,
						       p->sections[i].payload,
						       p->sections[i].length);
			snapshot_write_section(&c, 0x5000, 1, optional ? SECTION_OPTIONAL : 0,
					       extra, sizeof(extra));
			assert_int_equal(snapshot_write_finish(&c), 0);
			if (optional)
				assert_int_equal(decode(&c), 0);
			else
				expect_refused(&c, -EINVAL, "unknown section 0x5000");
			snapshot_buffer_free(&c);
		}
		snapshot_buffer_free(&b);
	}
	free(p);
}

static void test_duplicate_section(void **state)
{
	struct snapshot_buffer b;
	struct snapshot_header h = { 0 };
	struct vm_section vm = { .mem_size = 128ULL << 20, .cpus = 1 };

	(void)state;
	snapshot_write_begin(&b, &h);
	snapshot_write_section(&b, SECTION_VM, 1, 0, &vm, sizeof(vm));
	snapshot_write_section(&b, SECTION_VM, 1, 0, &vm, sizeof(vm));
	assert_int_equal(snapshot_write_finish(&b), 0);
	expect_refused(&b, -EINVAL, "twice");
	snapshot_buffer_free(&b);
}

static void test_cpu_checks(void **state)
{
	struct kvm_cpuid_entry2 saved[2] = {
		{ .function = 1, .ecx = 0x1 | (1u << 31), .edx = 0x10, .ebx = 0x01000000 },
		{ .function = 7, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .ebx = 0x20 },
	};
	struct kvm_cpuid_entry2 here[2] = {
		{ .function = 1, .ecx = 0x1, .edx = 0x10 },
		{ .function = 7, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .ebx = 0x20 },
	};

	(void)state;
	assert_int_equal(cpu_check_vendor("GenuineIntel", "GenuineIntel"), 0);
	assert_int_equal(LOGGED(error, cpu_check_vendor("AuthenticAMD", "GenuineIntel")), -EINVAL);
	assert_non_null(strstr(error, "incompatible CPU"));
	/* the hypervisor bit and the APIC id do not count */
	assert_int_equal(cpu_check_features(saved, 2, here, 2), 0);
	here[1].ebx = 0; /* leaf 7 EBX bit 5 (AVX2) missing here */
	assert_int_equal(LOGGED(error, cpu_check_features(saved, 2, here, 2)), -EINVAL);
	assert_non_null(strstr(error, "leaf 0x7.0 ebx bit 5"));
	assert_int_equal(LOGGED(error, cpu_check_features(saved, 2, here, 1)), -EINVAL);
}

/*
 * A Linux guest's snapshot shows OSXSAVE and OSPKE (KVM mirrors CR4 into
 * CPUID), the APIC bit and the XSAVE size of its XCR0; a fresh vCPU on the
 * same host shows none of them. They must not refuse the restore, and a
 * real feature next to them must still be compared.
 */
static void test_cpu_checks_ignore_dynamic_bits(void **state)
{
	struct kvm_cpuid_entry2 saved[3] = {
		{ .function = 1, .ecx = (1u << 27) | (1u << 3) | 0x1, .edx = (1u << 9) | 0x10 },
		{ .function = 7, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .ecx = (1u << 4) | 0x8 },
		{ .function = 0xd,
		  .index = 1,
		  .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
		  .eax = 0xf,
		  .ebx = 0x988 },
	};
	struct kvm_cpuid_entry2 here[3] = {
		{ .function = 1, .ecx = 0x1, .edx = 0x10 },
		{ .function = 7, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .ecx = 0x8 },
		{ .function = 0xd,
		  .index = 1,
		  .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
		  .eax = 0xf,
		  .ebx = 0x240 },
	};

	(void)state;
	assert_int_equal(cpu_check_features(saved, 3, here, 3), 0);
	here[1].ecx = 0; /* leaf 7 ECX bit 3 (PKU) is a real feature */
	assert_int_equal(LOGGED(error, cpu_check_features(saved, 3, here, 3)), -EINVAL);
	assert_non_null(strstr(error, "leaf 0x7.0 ecx bit 3"));
}

/*
 * Linux before 6.5 leaves KVM_GET_CPUID2's nent as the caller set it, so a
 * read into a zeroed buffer of 512 reports 512. Only the entries before the
 * first all-zero one are real, and a snapshot that stored the zeroed rest
 * (as every one taken on such a host did) decodes to the real ones only:
 * KVM_SET_CPUID2 refuses more than 256 entries.
 */
static void test_cpuid_count_ignores_zeroed_tail(void **state)
{
	struct kvm_cpuid_entry2 *entries = calloc(VCPU_MAX_CPUID_ENTRIES, sizeof(*entries));
	struct snapshot_parsed *p = malloc(sizeof(*p));
	struct snapshot_header h = { 0 };
	struct snapshot_buffer b;
	struct vcpu_state in, out;
	uint8_t xsave[sizeof(struct kvm_xsave)] = { 0 };
	struct kvm_msr_entry msr = { .index = 0x10 };

	(void)state;
	assert_int_equal(cpu_cpuid_count(entries, VCPU_MAX_CPUID_ENTRIES), 0);
	entries[0] = (struct kvm_cpuid_entry2){ .function = 0, .ebx = 0x68747541 };
	entries[1] = (struct kvm_cpuid_entry2){ .function = 1, .eax = 0xa20f10 };
	entries[2] = (struct kvm_cpuid_entry2){ .function = 0x80000000 }; /* zero regs, not empty */
	assert_int_equal(cpu_cpuid_count(entries, VCPU_MAX_CPUID_ENTRIES), 3);
	assert_int_equal(cpu_cpuid_count(entries, 2), 2);

	memset(&in, 0, sizeof(in));
	in.fixed.xsave_size = sizeof(xsave);
	in.fixed.cpuid_count = VCPU_MAX_CPUID_ENTRIES; /* as a 6.1 host saved it */
	in.xsave = xsave;
	in.cpuid = entries;
	in.msrs = &msr;
	in.fixed.msr_count = 1;
	snapshot_write_begin(&b, &h);
	vcpu_state_encode(&b, 0, &in);
	assert_int_equal(snapshot_write_finish(&b), 0);
	assert_int_equal(snapshot_parse(b.data, b.len, p), 0);
	assert_int_equal(vcpu_state_decode(&p->sections[0], &out), 0);
	assert_int_equal(out.fixed.cpuid_count, 3);
	assert_int_equal(out.cpuid[2].function, 0x80000000);
	snapshot_buffer_free(&b);
	free(p);
	free(entries);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_container_round_trip),
		cmocka_unit_test(test_vcpu_section_round_trip),
		cmocka_unit_test(test_valid_state_decodes),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_bad_checksum),
		cmocka_unit_test(test_versions),
		cmocka_unit_test(test_device_section_versions),
		cmocka_unit_test(test_oversized_and_overlapping_sections),
		cmocka_unit_test(test_file_size_cap),
		cmocka_unit_test(test_bad_sections),
		cmocka_unit_test(test_unknown_sections),
		cmocka_unit_test(test_duplicate_section),
		cmocka_unit_test(test_cpu_checks),
		cmocka_unit_test(test_cpu_checks_ignore_dynamic_bits),
		cmocka_unit_test(test_cpuid_count_ignores_zeroed_tail),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
