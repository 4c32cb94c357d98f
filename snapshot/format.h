/*
 * The snapshot state file: a header, sections {id, version, flags, length},
 * and a SHA-256 trailer (docs/snapshot-format.md). This file only builds and
 * parses the container; what each section holds is the business of state.c.
 * A state file is untrusted input: parsing checks every length before use.
 */
#ifndef SNAPVM_SNAPSHOT_FORMAT_H
#define SNAPVM_SNAPSHOT_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SNAPSHOT_MAGIC		  "SNAPVMST"
#define SNAPSHOT_TRAILER_MAGIC	  "SNAPEND"
#define SNAPSHOT_FORMAT_MAJOR	  2
#define SNAPSHOT_FORMAT_MINOR	  0
#define SNAPSHOT_MAX_FILE_SIZE	  (64u << 20)
#define SNAPSHOT_MAX_SECTION_SIZE (16u << 20)
#define SNAPSHOT_MAX_SECTIONS	  256

/* Section flag: a reader that does not know the section may skip it. */
#define SECTION_OPTIONAL 0x1

struct snapshot_header {
	char magic[8];
	uint16_t major;
	uint16_t minor;
	uint32_t header_size;
	char cpu_vendor[12];	  /* CPUID leaf 0 of the host that took it */
	uint32_t cpu_signature;	  /* CPUID leaf 1 EAX: family, model, stepping */
	uint8_t cpuid_digest[32]; /* SHA-256 of vCPU 0's CPUID table */
	uint64_t created_ns;	  /* wall clock */
	uint32_t section_count;
	uint32_t flags;
	uint64_t reserved;
};

struct snapshot_section_header {
	uint32_t id;
	uint16_t version;
	uint16_t flags;
	uint64_t length; /* payload bytes; the payload is padded to 8 bytes */
};

struct snapshot_trailer {
	char magic[8];
	uint8_t sha256[32]; /* of every byte before the trailer */
};

_Static_assert(sizeof(struct snapshot_header) == 88, "header layout");
_Static_assert(sizeof(struct snapshot_section_header) == 16, "section header layout");

/* A growing buffer the writer appends to. */
struct snapshot_buffer {
	uint8_t *data;
	size_t len;
	size_t cap;
	size_t open_section; /* offset of the section being written */
	bool failed;	     /* an allocation failed: finish() reports it */
};

/* Starts a state file with this header (magic, version and counts are filled in). */
void snapshot_write_begin(struct snapshot_buffer *b, const struct snapshot_header *header);
/* Appends one section. */
void snapshot_write_section(struct snapshot_buffer *b, uint32_t id, uint16_t version,
			    uint16_t flags, const void *payload, size_t length);
/* Appends part of the current section's payload without a header (see _open/_close). */
void snapshot_write_section_open(struct snapshot_buffer *b, uint32_t id, uint16_t version,
				 uint16_t flags);
void snapshot_write_bytes(struct snapshot_buffer *b, const void *bytes, size_t length);
void snapshot_write_section_close(struct snapshot_buffer *b);
/* Completes the count and the checksum; 0, or -ENOMEM if anything failed. */
int snapshot_write_finish(struct snapshot_buffer *b);
void snapshot_buffer_free(struct snapshot_buffer *b);

struct snapshot_section {
	uint32_t id;
	uint16_t version;
	uint16_t flags;
	const uint8_t *payload;
	uint64_t length;
};

struct snapshot_parsed {
	struct snapshot_header header;
	unsigned section_count;
	struct snapshot_section sections[SNAPSHOT_MAX_SECTIONS];
};

/*
 * Checks a whole state file: size caps, magic, format version, checksum,
 * section bounds and duplicate ids. 0, or -EINVAL (-EPROTO for a format
 * version this snapvm cannot read), logged.
 */
int snapshot_parse(const uint8_t *data, size_t len, struct snapshot_parsed *parsed);
/* The section with this id, or NULL. */
const struct snapshot_section *snapshot_find(const struct snapshot_parsed *parsed, uint32_t id);

#endif
