/*
 * A small AML (ACPI Machine Language, ACPI 6.4 chapter 20) encoder: just
 * what snapvm's DSDT needs. Terms are appended to one buffer; a term with a
 * PkgLength (Scope, Device, Method, Package, Buffer) is opened, filled, then
 * closed, and its length is inserted in front of its body when it closes.
 * Errors (no room, too deep, a bad name) stick: check aml_ok() at the end.
 */
#ifndef SNAPVM_X86_AML_H
#define SNAPVM_X86_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AML_MAX_DEPTH 16

struct aml {
	uint8_t *data;
	size_t size; /* room in data */
	size_t len;
	bool failed;
	unsigned depth;
	size_t open[AML_MAX_DEPTH];	 /* where each open term's PkgLength goes */
	bool open_buffer[AML_MAX_DEPTH]; /* a Buffer: its byte count goes after the PkgLength */
};

/* Interrupt trigger modes for aml_interrupt(). */
enum aml_trigger { AML_EDGE, AML_LEVEL };

/* Starts an encoder writing into data[0..size). */
void aml_init(struct aml *a, uint8_t *data, size_t size);
/* True if every term fit and every open term was closed. */
bool aml_ok(const struct aml *a);

/* Encodes a PkgLength for a body of `body` bytes into out (1-4 bytes); returns its size, 0 if too
 * long. */
unsigned aml_pkglength_encode(size_t body, uint8_t out[4]);

/* A NameString: "ABCD", "\\_SB_", "\\_SB_.PCI0" or "^ABC"; short segments are padded with '_'. */
void aml_name_string(struct aml *a, const char *path);
/* The smallest integer encoding of v (ZeroOp, OneOp, BytePrefix ... QWordPrefix). */
void aml_integer(struct aml *a, uint64_t v);
/* A String constant. */
void aml_string(struct aml *a, const char *s);
/* An EISA id ("PNP0501") as the 32-bit compressed integer ACPI uses for _HID/_CID. */
void aml_eisa_id(struct aml *a, const char *id);

/* Name(path, <next term>): the caller appends the value. */
void aml_name(struct aml *a, const char *path);
/* Scope(path) { ... } */
void aml_scope_open(struct aml *a, const char *path);
/* Device(path) { ... } */
void aml_device_open(struct aml *a, const char *path);
/* Method(path, args, NotSerialized) { ... } */
void aml_method_open(struct aml *a, const char *path, unsigned args);
/* Package(count) { ... }: the caller appends exactly count data terms. */
void aml_package_open(struct aml *a, unsigned count);
/* Buffer() { ... } holding raw bytes (a resource template). */
void aml_buffer_open(struct aml *a);
/* Closes the innermost open term. */
void aml_close(struct aml *a);

/* Return <next term> */
void aml_return(struct aml *a);
/* Notify(path, value) */
void aml_notify(struct aml *a, const char *path, uint64_t value);
/* OperationRegion(name, space, offset, length): space 0 memory, 1 I/O. */
void aml_operation_region(struct aml *a, const char *name, uint8_t space, uint64_t offset,
			  uint64_t length);
/* Field(region, DWordAcc, NoLock, Preserve) { name, 32 }: one 32-bit field. */
void aml_field_dword(struct aml *a, const char *region, const char *name);
/* Store(source name, Local0) */
void aml_store_to_local0(struct aml *a, const char *source);
/* If (And(Local0, mask)) { ... } */
void aml_if_local0_and_open(struct aml *a, uint64_t mask);

/* Raw bytes inside a Buffer (resource descriptors below). */
void aml_bytes(struct aml *a, const void *data, size_t len);
/* Memory32Fixed(ReadWrite, base, length) */
void aml_memory32_fixed(struct aml *a, uint32_t base, uint32_t length);
/* IO(Decode16, port, port, 1, length) */
void aml_io(struct aml *a, uint16_t port, uint8_t length);
/* Interrupt(ResourceConsumer, trigger, ActiveHigh, Exclusive) { gsi } */
void aml_interrupt(struct aml *a, enum aml_trigger trigger, uint32_t gsi);
/* The EndTag that closes a resource template (checksum 0: not computed). */
void aml_end_tag(struct aml *a);

#endif
