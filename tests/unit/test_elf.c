/* vmm/arch/x86/elf.c: loading ELF kernels, and refusing malformed ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "vmm/arch/x86/x86.h"
#include "tests/unit/test_log.h"

#define RAM_SIZE  (8ULL << 20)
#define LOAD_ADDR 0x200000ULL

struct fixture {
	struct guest_memory mem;
	uint8_t file[8192];
	size_t size;
	char error[256];
};

static Elf64_Ehdr *ehdr(struct fixture *f)
{
	return (Elf64_Ehdr *)f->file;
}

static Elf64_Phdr *phdr(struct fixture *f, unsigned i)
{
	return (Elf64_Phdr *)(f->file + sizeof(Elf64_Ehdr)) + i;
}

/* A valid image: one PT_LOAD of 256 file bytes + 4 KiB of bss at 2 MiB, and a PVH note. */
static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	Elf64_Ehdr *eh;
	Elf64_Phdr *load, *note;
	uint32_t *n;

	guest_memory_layout(&f->mem, RAM_SIZE);
	assert_int_equal(guest_memory_map(&f->mem), 0);
	eh = ehdr(f);
	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_type = ET_EXEC;
	eh->e_machine = EM_X86_64;
	eh->e_entry = LOAD_ADDR + 0x10;
	eh->e_phoff = sizeof(Elf64_Ehdr);
	eh->e_phentsize = sizeof(Elf64_Phdr);
	eh->e_phnum = 2;
	load = phdr(f, 0);
	load->p_type = PT_LOAD;
	load->p_offset = 4096;
	load->p_paddr = LOAD_ADDR;
	load->p_filesz = 256;
	load->p_memsz = 256 + 4096;
	memset(f->file + 4096, 0xab, 256);
	note = phdr(f, 1);
	note->p_type = PT_NOTE;
	note->p_offset = 1024;
	note->p_filesz = 20;
	n = (uint32_t *)(f->file + 1024);
	n[0] = 4;  /* namesz */
	n[1] = 4;  /* descsz */
	n[2] = 18; /* XEN_ELFNOTE_PHYS32_ENTRY */
	memcpy(&n[3], "Xen", 4);
	n[4] = (uint32_t)LOAD_ADDR + 0x20;
	f->size = 4096 + 256;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	guest_memory_unmap(&f->mem);
	free(f);
	return 0;
}

/* The loads, with what they logged in f->error. */
static int load(struct fixture *f, struct elf_image *image)
{
	return LOGGED(f->error, elf_load(f->file, f->size, &f->mem, image));
}

static int kernel_load(struct fixture *f, enum vmm_boot_mode boot, struct x86_kernel *kernel)
{
	return LOGGED(f->error, x86_kernel_load(f->file, f->size, boot, &f->mem, kernel));
}

static void test_elf_loads_segments_and_pvh_note(void **state)
{
	struct fixture *f = *state;
	struct elf_image image;
	uint8_t *dest = guest_memory_ptr(&f->mem, LOAD_ADDR, 256 + 4096);

	memset(dest + 256, 0x5a, 4096); /* stale bytes where bss goes */
	assert_int_equal(load(f, &image), 0);
	assert_true(image.is64);
	assert_int_equal(image.entry, LOAD_ADDR + 0x10);
	assert_true(image.has_pvh);
	assert_int_equal(image.pvh_entry, LOAD_ADDR + 0x20);
	assert_int_equal(image.load_start, LOAD_ADDR);
	assert_int_equal(image.load_end, LOAD_ADDR + 256 + 4096);
	for (unsigned i = 0; i < 256; i++)
		assert_int_equal(dest[i], 0xab);
	for (unsigned i = 256; i < 256 + 4096; i++)
		assert_int_equal(dest[i], 0); /* bss cleared */
}

/* A vmlinux carries notes named "Linux": that is how snapvm knows to give it Linux's defaults. */
static void test_elf_linux_note(void **state)
{
	struct fixture *f = *state;
	struct elf_image image;
	uint32_t *n = (uint32_t *)(f->file + 1024 + 20);

	assert_int_equal(load(f, &image), 0);
	assert_false(image.is_linux);
	n[0] = 6; /* namesz: "Linux" and its NUL */
	n[1] = 4;
	n[2] = 0x100; /* LINUX_ELFNOTE_BUILD_SALT */
	memcpy(&n[3], "Linux\0\0", 8);
	n[5] = 0;
	phdr(f, 1)->p_filesz = 20 + 24;
	assert_int_equal(load(f, &image), 0);
	assert_true(image.is_linux);
	assert_true(image.has_pvh); /* the note after the Xen one did not hide it */
	memcpy(&n[3], "Linus", 6);
	assert_int_equal(load(f, &image), 0);
	assert_false(image.is_linux);
}

/* --boot auto: a Linux vmlinux with a PVH note boots by it, as QEMU and Firecracker do. */
static void test_elf_auto_boots_linux_by_pvh(void **state)
{
	struct fixture *f = *state;
	struct x86_kernel kernel;
	uint32_t *n = (uint32_t *)(f->file + 1024 + 20);

	n[0] = 6;
	n[1] = 4;
	n[2] = 0x100;
	memcpy(&n[3], "Linux\0\0", 8);
	n[5] = 0;
	phdr(f, 1)->p_filesz = 20 + 24;
	assert_int_equal(kernel_load(f, VMM_BOOT_AUTO, &kernel), 0);
	assert_true(kernel.linux_kernel);
	assert_true(kernel.pvh);
	assert_int_equal(kernel.entry, LOAD_ADDR + 0x20);
}

static void test_elf_kernel_entry_and_limits(void **state)
{
	struct fixture *f = *state;
	struct x86_kernel kernel;

	assert_int_equal(kernel_load(f, VMM_BOOT_AUTO, &kernel), 0);
	/* auto takes e_entry of an ELF that is not Linux, even with a PVH note */
	assert_false(kernel.pvh);
	assert_int_equal(kernel.entry, LOAD_ADDR + 0x10);
	assert_false(kernel.linux_kernel);
	assert_int_equal(kernel.cmdline_max, VMM_CMDLINE_MAX - 1);
	assert_int_equal(kernel.end, LOAD_ADDR + 256 + 4096);
	assert_int_equal(kernel_load(f, VMM_BOOT_ELF64, &kernel), 0);
	assert_false(kernel.pvh);
	assert_int_equal(kernel.entry, LOAD_ADDR + 0x10);
	ehdr(f)->e_phnum = 1; /* no PVH note: auto takes the ELF entry, pvh is refused */
	assert_int_equal(kernel_load(f, VMM_BOOT_AUTO, &kernel), 0);
	assert_false(kernel.pvh);
	assert_int_equal(kernel_load(f, VMM_BOOT_PVH, &kernel), -EINVAL);
	assert_non_null(strstr(f->error, "no PVH entry note"));
}

static void test_elf_without_pvh_note(void **state)
{
	struct fixture *f = *state;
	struct elf_image image;

	ehdr(f)->e_phnum = 1;
	assert_int_equal(load(f, &image), 0);
	assert_false(image.has_pvh);
}

static void expect_error(struct fixture *f, const char *fragment)
{
	struct elf_image image;

	assert_int_equal(load(f, &image), -EINVAL);
	log_expect_one_line(f->error, fragment);
}

/* Probing is no error: elf_is_linux says no without a line, where a load says why. */
static void test_elf_probe_is_quiet(void **state)
{
	struct fixture *f = *state;

	ehdr(f)->e_machine = EM_AARCH64;
	assert_false(LOGGED(f->error, elf_is_linux(f->file, f->size)));
	assert_string_equal(f->error, "");
	expect_error(f, "not x86-64");
}

static void test_elf_rejects_short_and_foreign_files(void **state)
{
	struct fixture *f = *state;

	f->size = 10;
	expect_error(f, "not an ELF file");
	f->size = 4096 + 256;
	ehdr(f)->e_ident[0] = 0;
	expect_error(f, "no ELF magic");
	ehdr(f)->e_ident[0] = ELFMAG0;
	ehdr(f)->e_ident[EI_CLASS] = ELFCLASSNONE;
	expect_error(f, "32- or 64-bit");
	ehdr(f)->e_ident[EI_CLASS] = ELFCLASS32; /* an ELF64 header read as ELF32: i386 wanted */
	expect_error(f, "not i386");
	ehdr(f)->e_ident[EI_CLASS] = ELFCLASS64;
	ehdr(f)->e_machine = EM_AARCH64;
	expect_error(f, "not x86-64");
	ehdr(f)->e_machine = EM_X86_64;
	ehdr(f)->e_type = ET_REL;
	expect_error(f, "not an executable");
}

static void test_elf_rejects_bad_program_headers(void **state)
{
	struct fixture *f = *state;

	ehdr(f)->e_phnum = 0;
	expect_error(f, "program header table");
	ehdr(f)->e_phnum = 1000;
	expect_error(f, "program header table");
	ehdr(f)->e_phnum = 2;
	ehdr(f)->e_phoff = f->size - 10;
	expect_error(f, "truncated ELF");
	ehdr(f)->e_phoff = UINT64_MAX - 8; /* offset + length overflows */
	expect_error(f, "truncated ELF");
}

static void test_elf_rejects_bad_segments(void **state)
{
	struct fixture *f = *state;
	Elf64_Phdr *load = phdr(f, 0);

	f->size = 4096 + 100; /* the segment's bytes are cut off */
	expect_error(f, "truncated ELF");
	f->size = 4096 + 256;
	load->p_offset = UINT64_MAX - 16;
	expect_error(f, "truncated ELF");
	load->p_offset = 4096;
	load->p_filesz = load->p_memsz + 1;
	expect_error(f, "larger in the file");
	load->p_filesz = 256;
	load->p_paddr = RAM_SIZE - 128; /* runs past the end of RAM */
	expect_error(f, "outside guest RAM");
	load->p_paddr = UINT64_MAX - 100; /* wraps around */
	expect_error(f, "outside guest RAM");
	load->p_paddr = 0x1000;
	expect_error(f, "below 1 MiB");
	load->p_paddr = LOAD_ADDR;
	load->p_type = PT_NULL;
	expect_error(f, "no loadable segment");
}

static void test_elf_rejects_entry_outside_image(void **state)
{
	struct fixture *f = *state;

	ehdr(f)->e_entry = 0x1000000;
	expect_error(f, "entry point");
	ehdr(f)->e_entry = LOAD_ADDR;
	((uint32_t *)(f->file + 1024))[4] = 0x1000; /* PVH entry */
	expect_error(f, "PVH entry point");
}

static void test_elf_ignores_broken_notes(void **state)
{
	struct fixture *f = *state;
	struct elf_image image;
	uint32_t *n = (uint32_t *)(f->file + 1024);

	n[1] = 0xfffffff0; /* descsz far past the segment */
	assert_int_equal(load(f, &image), 0);
	assert_false(image.has_pvh);
	n[1] = 4;
	phdr(f, 1)->p_offset = UINT64_MAX - 4; /* note segment outside the file */
	assert_int_equal(load(f, &image), 0);
	assert_false(image.has_pvh);
}

/* Rewrites the fixture's image as the same kernel in ELF32 (i386) form. */
static void fixture_to_elf32(struct fixture *f)
{
	Elf64_Ehdr eh64 = *ehdr(f);
	Elf64_Phdr ph64[2] = { *phdr(f, 0), *phdr(f, 1) };
	Elf32_Ehdr *eh = (Elf32_Ehdr *)f->file;
	Elf32_Phdr *ph = (Elf32_Phdr *)(f->file + sizeof(*eh));

	memset(f->file, 0, 1024); /* headers only: the note and the segment stay */
	memcpy(eh->e_ident, eh64.e_ident, EI_NIDENT);
	eh->e_ident[EI_CLASS] = ELFCLASS32;
	eh->e_type = ET_EXEC;
	eh->e_machine = EM_386;
	eh->e_entry = (uint32_t)eh64.e_entry;
	eh->e_phoff = sizeof(*eh);
	eh->e_phentsize = sizeof(*ph);
	eh->e_phnum = 2;
	for (unsigned i = 0; i < 2; i++)
		ph[i] = (Elf32_Phdr){ .p_type = ph64[i].p_type,
				      .p_offset = (uint32_t)ph64[i].p_offset,
				      .p_paddr = (uint32_t)ph64[i].p_paddr,
				      .p_filesz = (uint32_t)ph64[i].p_filesz,
				      .p_memsz = (uint32_t)ph64[i].p_memsz };
}

/* QEMU boots a 32-bit ELF kernel by its PVH note; so does snapvm, and by nothing else. */
static void test_elf32_boots_by_pvh_note(void **state)
{
	struct fixture *f = *state;
	struct x86_kernel kernel;
	struct elf_image image;

	fixture_to_elf32(f);
	assert_int_equal(load(f, &image), 0);
	assert_false(image.is64);
	assert_true(image.has_pvh);
	assert_int_equal(image.pvh_entry, LOAD_ADDR + 0x20);
	assert_int_equal(image.load_end, LOAD_ADDR + 256 + 4096);
	assert_int_equal(*(uint8_t *)guest_memory_ptr(&f->mem, LOAD_ADDR, 1), 0xab);
	assert_int_equal(kernel_load(f, VMM_BOOT_AUTO, &kernel), 0);
	assert_true(kernel.pvh);
	assert_int_equal(kernel.entry, LOAD_ADDR + 0x20);
	assert_int_equal(kernel_load(f, VMM_BOOT_ELF64, &kernel), -EINVAL);
	assert_non_null(strstr(f->error, "32-bit"));
	((Elf32_Ehdr *)f->file)->e_phnum = 1; /* the note is gone: no way in */
	assert_int_equal(kernel_load(f, VMM_BOOT_AUTO, &kernel), -EINVAL);
	assert_non_null(strstr(f->error, "without a PVH entry note"));
	((Elf32_Ehdr *)f->file)->e_machine = EM_X86_64;
	expect_error(f, "not i386");
}

static void test_elf_loads_the_test_guest(void **state)
{
	struct guest_memory mem;
	struct elf_image image;
	uint8_t *file;
	size_t size;

	(void)state;
	guest_memory_layout(&mem, 16ULL << 20);
	assert_int_equal(guest_memory_map(&mem), 0);
	assert_int_equal(file_read_all(SNAPGUEST_ELF, &file, &size, 64 << 20), 0);
	assert_int_equal(elf_load(file, size, &mem, &image), 0);
	assert_true(image.has_pvh);
	assert_false(image.is_linux); /* so it gets exactly the user's command line */
	assert_int_equal(image.load_start, 0x100000);
	assert_true(image.entry > image.pvh_entry);
	free(file);
	guest_memory_unmap(&mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_elf_loads_segments_and_pvh_note, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_elf_without_pvh_note, setup, teardown),
		cmocka_unit_test_setup_teardown(test_elf_linux_note, setup, teardown),
		cmocka_unit_test_setup_teardown(test_elf_auto_boots_linux_by_pvh, setup, teardown),
		cmocka_unit_test_setup_teardown(test_elf_kernel_entry_and_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_elf_rejects_short_and_foreign_files, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_elf_probe_is_quiet, setup, teardown),
		cmocka_unit_test_setup_teardown(test_elf_rejects_bad_program_headers, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_elf_rejects_bad_segments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_elf_rejects_entry_outside_image, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_elf_ignores_broken_notes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_elf32_boots_by_pvh_note, setup, teardown),
		cmocka_unit_test(test_elf_loads_the_test_guest),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
