/* ELF kernels (64- and 32-bit): checked as untrusted input, then loaded by physical address. */
#include "vmm/arch/x86/x86.h"
#include "common/common.h"

#include <elf.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#define ELF_MAX_PHDRS		 64
#define XEN_ELFNOTE_PHYS32_ENTRY 18

/*
 * A header check refuses with one logged line, or, when only probing
 * (elf_is_linux), with -ENOEXEC and no line: "not this format" is no error.
 */
#define ELF_REFUSE(report, ...) ((report) ? log_invalid(__VA_ARGS__) : -ENOEXEC)

bool elf_is_elf(const uint8_t *file, size_t size)
{
	return size >= SELFMAG && !memcmp(file, ELFMAG, SELFMAG);
}

/* True if [offset, offset + len) lies within a file of `size` bytes. */
static bool in_file(uint64_t offset, uint64_t len, size_t size)
{
	return offset <= size && len <= size - offset;
}

/*
 * What snapvm reads of an ELF header, the same for both classes: QEMU boots
 * 32-bit ELF kernels by their PVH note, so snapvm takes ELF32 (i386) too.
 */
struct elf_header {
	bool is64;
	uint64_t entry, phoff;
	unsigned phnum;
};

static int elf_check_ident(const uint8_t *file, size_t size, bool report)
{
	if (size < EI_NIDENT)
		return ELF_REFUSE(report, "not an ELF file: only %zu bytes", size);
	if (memcmp(file, ELFMAG, SELFMAG))
		return ELF_REFUSE(report, "not an ELF file (no ELF magic)");
	if ((file[EI_CLASS] != ELFCLASS64 && file[EI_CLASS] != ELFCLASS32) ||
	    file[EI_DATA] != ELFDATA2LSB)
		return ELF_REFUSE(report, "not a 32- or 64-bit little-endian ELF file");
	return 0;
}

/* The class-specific fields, checked for the class's machine and sizes. */
static int elf_header_read(const uint8_t *file, size_t size, struct elf_header *h, bool report)
{
	unsigned machine, type, phentsize, want_phentsize, want_machine;

	h->is64 = file[EI_CLASS] == ELFCLASS64;
	if (size < (h->is64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr)))
		return ELF_REFUSE(report, "not an ELF file: only %zu bytes", size);
	if (h->is64) {
		Elf64_Ehdr eh;

		memcpy(&eh, file, sizeof(eh));
		machine = eh.e_machine, type = eh.e_type, phentsize = eh.e_phentsize;
		h->entry = eh.e_entry, h->phoff = eh.e_phoff, h->phnum = eh.e_phnum;
		want_machine = EM_X86_64, want_phentsize = sizeof(Elf64_Phdr);
	} else {
		Elf32_Ehdr eh;

		memcpy(&eh, file, sizeof(eh));
		machine = eh.e_machine, type = eh.e_type, phentsize = eh.e_phentsize;
		h->entry = eh.e_entry, h->phoff = eh.e_phoff, h->phnum = eh.e_phnum;
		want_machine = EM_386, want_phentsize = sizeof(Elf32_Phdr);
	}
	if (machine != want_machine)
		return ELF_REFUSE(report, "ELF%s file for machine %u, not %s",
				  h->is64 ? "64" : "32", machine, h->is64 ? "x86-64" : "i386");
	if (type != ET_EXEC)
		return ELF_REFUSE(report, "ELF file is not an executable (type %u)", type);
	if (phentsize != want_phentsize || h->phnum == 0 || h->phnum > ELF_MAX_PHDRS)
		return ELF_REFUSE(
			report, "ELF file has a bad program header table (%u entries of %u bytes)",
			h->phnum, phentsize);
	if (!in_file(h->phoff, (uint64_t)h->phnum * phentsize, size))
		return ELF_REFUSE(
			report, "truncated ELF file: program headers end past the file's %zu bytes",
			size);
	return 0;
}

static int elf_check_header(const uint8_t *file, size_t size, struct elf_header *h, bool report)
{
	int ret = elf_check_ident(file, size, report);

	return ret ? ret : elf_header_read(file, size, h, report);
}

/* Program header i, widened to the 64-bit form; the header must have been checked. */
static void elf_phdr_get(const uint8_t *file, const struct elf_header *h, unsigned i,
			 Elf64_Phdr *ph)
{
	Elf32_Phdr ph32;

	if (h->is64) {
		memcpy(ph, file + h->phoff + (uint64_t)i * sizeof(*ph), sizeof(*ph));
		return;
	}
	memcpy(&ph32, file + h->phoff + (uint64_t)i * sizeof(ph32), sizeof(ph32));
	*ph = (Elf64_Phdr){ .p_type = ph32.p_type,
			    .p_flags = ph32.p_flags,
			    .p_offset = ph32.p_offset,
			    .p_vaddr = ph32.p_vaddr,
			    .p_paddr = ph32.p_paddr,
			    .p_filesz = ph32.p_filesz,
			    .p_memsz = ph32.p_memsz,
			    .p_align = ph32.p_align };
}

/* Notes snapvm reads: the PVH entry, and any note of Linux's own (a vmlinux has several). */
static void elf_note_apply(const Elf64_Nhdr *nh, const uint8_t *name, const uint8_t *desc,
			   struct elf_image *image)
{
	if (nh->n_namesz == 6 && !memcmp(name, "Linux", 6))
		image->is_linux = true;
	if (nh->n_type == XEN_ELFNOTE_PHYS32_ENTRY && nh->n_namesz == 4 &&
	    !memcmp(name, "Xen", 4) && (nh->n_descsz == 4 || nh->n_descsz == 8)) {
		uint64_t entry = 0;

		memcpy(&entry, desc, nh->n_descsz);
		image->has_pvh = true;
		image->pvh_entry = entry;
	}
}

/* Walks the notes of one PT_NOTE segment; a malformed note ends the walk. */
static void elf_notes_scan(const uint8_t *notes, uint64_t len, struct elf_image *image)
{
	uint64_t pos = 0;

	while (len - pos >= sizeof(Elf64_Nhdr)) {
		Elf64_Nhdr nh;
		uint64_t name_len, desc_len;

		memcpy(&nh, notes + pos, sizeof(nh));
		pos += sizeof(nh);
		name_len = ALIGN_UP((uint64_t)nh.n_namesz, 4);
		desc_len = ALIGN_UP((uint64_t)nh.n_descsz, 4);
		if (name_len > len - pos || desc_len > len - pos - name_len)
			return;
		elf_note_apply(&nh, notes + pos, notes + pos + name_len, image);
		pos += name_len + desc_len;
	}
}

/* The notes of every PT_NOTE segment (Elf32_Nhdr and Elf64_Nhdr are alike). */
static void elf_notes_find(const uint8_t *file, size_t size, const struct elf_header *h,
			   struct elf_image *image)
{
	Elf64_Phdr ph;

	for (unsigned i = 0; i < h->phnum; i++) {
		elf_phdr_get(file, h, i, &ph);
		if (ph.p_type == PT_NOTE && in_file(ph.p_offset, ph.p_filesz, size))
			elf_notes_scan(file + ph.p_offset, ph.p_filesz, image);
	}
}

bool elf_is_linux(const uint8_t *file, size_t size)
{
	struct elf_image image = { 0 };
	struct elf_header h;

	if (elf_check_header(file, size, &h, false))
		return false;
	elf_notes_find(file, size, &h, &image);
	return image.is_linux;
}

static int elf_load_segment(const uint8_t *file, size_t size, const Elf64_Phdr *ph, unsigned index,
			    const struct guest_memory *mem, struct elf_image *image)
{
	uint8_t *dest;

	if (ph->p_filesz > ph->p_memsz)
		return log_invalid("ELF segment %u is larger in the file than in memory", index);
	if (!in_file(ph->p_offset, ph->p_filesz, size))
		return log_invalid("truncated ELF file: segment %u ends past the file's %zu bytes",
				   index, size);
	if (ph->p_paddr < X86_KERNEL_MIN_ADDR)
		return log_invalid("ELF segment %u at 0x%" PRIx64
				   " lies below 1 MiB, where boot data goes",
				   index, (uint64_t)ph->p_paddr);
	dest = guest_memory_ptr(mem, ph->p_paddr, ph->p_memsz);
	if (!dest)
		return log_invalid("ELF segment %u (0x%" PRIx64 "-0x%" PRIx64
				   ") lies outside guest RAM (%" PRIu64 " MiB)",
				   index, (uint64_t)ph->p_paddr,
				   (uint64_t)(ph->p_paddr + ph->p_memsz), mem->size >> 20);
	memcpy(dest, file + ph->p_offset, ph->p_filesz);
	guest_memory_clear(mem, ph->p_paddr + ph->p_filesz, ph->p_memsz - ph->p_filesz);
	image->load_start = MIN(image->load_start, ph->p_paddr);
	image->load_end = MAX(image->load_end, ph->p_paddr + ph->p_memsz);
	return 0;
}

static bool in_image(const struct elf_image *image, uint64_t address)
{
	return address >= image->load_start && address < image->load_end;
}

int elf_load(const uint8_t *file, size_t size, const struct guest_memory *mem,
	     struct elf_image *image)
{
	struct elf_header h;
	Elf64_Phdr ph;
	int ret;

	ret = elf_check_header(file, size, &h, true);
	if (ret)
		return ret;
	*image = (struct elf_image){ .is64 = h.is64, .entry = h.entry, .load_start = UINT64_MAX };
	elf_notes_find(file, size, &h, image);
	for (unsigned i = 0; i < h.phnum; i++) {
		elf_phdr_get(file, &h, i, &ph);
		if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
			continue;
		ret = elf_load_segment(file, size, &ph, i, mem, image);
		if (ret)
			return ret;
	}
	if (image->load_start == UINT64_MAX)
		return log_invalid("ELF file has no loadable segment");
	if (!in_image(image, image->entry))
		return log_invalid("ELF entry point 0x%" PRIx64 " is outside the loaded segments",
				   image->entry);
	if (image->has_pvh && !in_image(image, image->pvh_entry))
		return log_invalid("PVH entry point 0x%" PRIx64 " is outside the loaded segments",
				   image->pvh_entry);
	return 0;
}
