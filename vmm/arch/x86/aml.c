/* The AML encoder (aml.h); opcodes and encodings from ACPI 6.4, section 20.2. */
#include "vmm/arch/x86/aml.h"

#include <string.h>

#define AML_ZERO_OP	      0x00
#define AML_ONE_OP	      0x01
#define AML_NAME_OP	      0x08
#define AML_BYTE_PREFIX	      0x0a
#define AML_WORD_PREFIX	      0x0b
#define AML_DWORD_PREFIX      0x0c
#define AML_STRING_PREFIX     0x0d
#define AML_QWORD_PREFIX      0x0e
#define AML_SCOPE_OP	      0x10
#define AML_BUFFER_OP	      0x11
#define AML_PACKAGE_OP	      0x12
#define AML_METHOD_OP	      0x14
#define AML_DUAL_NAME_PREFIX  0x2e
#define AML_MULTI_NAME_PREFIX 0x2f
#define AML_EXT_OP_PREFIX     0x5b
#define AML_ROOT_CHAR	      '\\'
#define AML_PARENT_PREFIX     '^'
#define AML_LOCAL0_OP	      0x60
#define AML_STORE_OP	      0x70
#define AML_AND_OP	      0x7b
#define AML_NOTIFY_OP	      0x86
#define AML_IF_OP	      0xa0
#define AML_RETURN_OP	      0xa4
#define AML_EXT_REGION_OP     0x80
#define AML_EXT_FIELD_OP      0x81
#define AML_EXT_DEVICE_OP     0x82
#define AML_FIELD_DWORD_ACC   0x03 /* DWordAcc, NoLock, Preserve */

#define AML_NAME_SEG_MAX 255

void aml_init(struct aml *a, uint8_t *data, size_t size)
{
	memset(a, 0, sizeof(*a));
	a->data = data;
	a->size = size;
}

bool aml_ok(const struct aml *a)
{
	return !a->failed && a->depth == 0;
}

void aml_bytes(struct aml *a, const void *data, size_t len)
{
	if (a->failed || len > a->size - a->len) {
		a->failed = true;
		return;
	}
	memcpy(a->data + a->len, data, len);
	a->len += len;
}

static void aml_byte(struct aml *a, uint8_t b)
{
	aml_bytes(a, &b, 1);
}

static void aml_le(struct aml *a, uint64_t v, unsigned bytes)
{
	for (unsigned i = 0; i < bytes; i++)
		aml_byte(a, (uint8_t)(v >> (8 * i)));
}

/*
 * PkgLength counts its own bytes. One byte holds up to 63; longer lengths
 * put the count of following bytes in bits 7-6 of the lead byte, the low
 * nibble in its bits 3-0, and the rest, 8 bits at a time, after it.
 */
unsigned aml_pkglength_encode(size_t body, uint8_t out[4])
{
	static const size_t limit[] = { 0x3f, 0xfff, 0xfffff, 0xfffffff };

	for (unsigned n = 1; n <= 4; n++) {
		size_t total = body + n;

		if (total > limit[n - 1])
			continue;
		if (n == 1) {
			out[0] = (uint8_t)total;
			return 1;
		}
		out[0] = (uint8_t)((n - 1) << 6 | (total & 0xf));
		for (unsigned i = 1; i < n; i++)
			out[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
		return n;
	}
	return 0;
}

static unsigned aml_integer_encode(uint64_t v, uint8_t out[9])
{
	unsigned bytes;

	if (v <= 1) {
		out[0] = v ? AML_ONE_OP : AML_ZERO_OP;
		return 1;
	}
	if (v <= 0xff) {
		out[0] = AML_BYTE_PREFIX;
		bytes = 1;
	} else if (v <= 0xffff) {
		out[0] = AML_WORD_PREFIX;
		bytes = 2;
	} else if (v <= 0xffffffff) {
		out[0] = AML_DWORD_PREFIX;
		bytes = 4;
	} else {
		out[0] = AML_QWORD_PREFIX;
		bytes = 8;
	}
	for (unsigned i = 0; i < bytes; i++)
		out[1 + i] = (uint8_t)(v >> (8 * i));
	return 1 + bytes;
}

void aml_integer(struct aml *a, uint64_t v)
{
	uint8_t enc[9];

	aml_bytes(a, enc, aml_integer_encode(v, enc));
}

void aml_string(struct aml *a, const char *s)
{
	aml_byte(a, AML_STRING_PREFIX);
	aml_bytes(a, s, strlen(s) + 1);
}

static bool aml_name_char_ok(char c, bool first)
{
	return (c >= 'A' && c <= 'Z') || c == '_' || (!first && c >= '0' && c <= '9');
}

/* One NameSeg: 1-4 characters, padded to 4 with '_'. */
static void aml_name_seg(struct aml *a, const char *seg, size_t len)
{
	char out[4] = { '_', '_', '_', '_' };

	if (len == 0 || len > 4) {
		a->failed = true;
		return;
	}
	for (size_t i = 0; i < len; i++) {
		if (!aml_name_char_ok(seg[i], i == 0)) {
			a->failed = true;
			return;
		}
		out[i] = seg[i];
	}
	aml_bytes(a, out, 4);
}

static void aml_name_prefix(struct aml *a, unsigned segments)
{
	if (segments == 2)
		aml_byte(a, AML_DUAL_NAME_PREFIX);
	else if (segments > 2) {
		aml_byte(a, AML_MULTI_NAME_PREFIX);
		aml_byte(a, (uint8_t)segments);
	}
}

void aml_name_string(struct aml *a, const char *path)
{
	unsigned segments = 0;
	const char *p;

	if (*path == AML_ROOT_CHAR)
		aml_byte(a, (uint8_t)*path++);
	else
		while (*path == AML_PARENT_PREFIX)
			aml_byte(a, (uint8_t)*path++);
	if (!*path) {
		aml_byte(a, 0); /* NullName */
		return;
	}
	for (p = path; p; p = strchr(p, '.'), p = p ? p + 1 : NULL)
		segments++;
	if (segments > AML_NAME_SEG_MAX) {
		a->failed = true;
		return;
	}
	aml_name_prefix(a, segments);
	while (*path) {
		const char *dot = strchr(path, '.');
		size_t len = dot ? (size_t)(dot - path) : strlen(path);

		aml_name_seg(a, path, len);
		path += len + (dot ? 1 : 0);
	}
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Three letters in 5 bits each ('A' is 1), then four hex digits: big-endian in memory. */
void aml_eisa_id(struct aml *a, const char *id)
{
	uint32_t v = 0;

	if (strlen(id) != 7) {
		a->failed = true;
		return;
	}
	for (int i = 0; i < 3; i++) {
		if (id[i] < 'A' || id[i] > 'Z') {
			a->failed = true;
			return;
		}
		v = v << 5 | (uint32_t)(id[i] - 'A' + 1);
	}
	for (int i = 3; i < 7; i++) {
		int d = hex_digit(id[i]);

		if (d < 0) {
			a->failed = true;
			return;
		}
		v = v << 4 | (uint32_t)d;
	}
	/* the id is stored most significant byte first */
	aml_byte(a, AML_DWORD_PREFIX);
	aml_le(a, __builtin_bswap32(v), 4);
}

static void aml_open(struct aml *a, bool buffer)
{
	if (a->depth == AML_MAX_DEPTH) {
		a->failed = true;
		return;
	}
	a->open_buffer[a->depth] = buffer;
	a->open[a->depth++] = a->len;
}

void aml_close(struct aml *a)
{
	uint8_t head[4 + 9];
	unsigned n = 0, size_bytes = 0;
	size_t pos, body;

	if (a->depth == 0) {
		a->failed = true;
		return;
	}
	pos = a->open[--a->depth];
	if (a->failed)
		return;
	body = a->len - pos;
	if (a->open_buffer[a->depth])
		size_bytes = aml_integer_encode(body, head + 4);
	n = aml_pkglength_encode(body + size_bytes, head);
	if (!n || n + size_bytes > a->size - a->len) {
		a->failed = true;
		return;
	}
	memmove(a->data + pos + n + size_bytes, a->data + pos, body);
	memcpy(a->data + pos, head, n);
	memcpy(a->data + pos + n, head + 4, size_bytes);
	a->len += n + size_bytes;
}

void aml_name(struct aml *a, const char *path)
{
	aml_byte(a, AML_NAME_OP);
	aml_name_string(a, path);
}

void aml_scope_open(struct aml *a, const char *path)
{
	aml_byte(a, AML_SCOPE_OP);
	aml_open(a, false);
	aml_name_string(a, path);
}

void aml_device_open(struct aml *a, const char *path)
{
	aml_byte(a, AML_EXT_OP_PREFIX);
	aml_byte(a, AML_EXT_DEVICE_OP);
	aml_open(a, false);
	aml_name_string(a, path);
}

void aml_method_open(struct aml *a, const char *path, unsigned args)
{
	aml_byte(a, AML_METHOD_OP);
	aml_open(a, false);
	aml_name_string(a, path);
	if (args > 7)
		a->failed = true;
	aml_byte(a, (uint8_t)(args & 7)); /* NotSerialized, SyncLevel 0 */
}

void aml_package_open(struct aml *a, unsigned count)
{
	aml_byte(a, AML_PACKAGE_OP);
	aml_open(a, false);
	if (count > 255)
		a->failed = true;
	aml_byte(a, (uint8_t)count);
}

void aml_buffer_open(struct aml *a)
{
	aml_byte(a, AML_BUFFER_OP);
	aml_open(a, true);
}

void aml_return(struct aml *a)
{
	aml_byte(a, AML_RETURN_OP);
}

void aml_notify(struct aml *a, const char *path, uint64_t value)
{
	aml_byte(a, AML_NOTIFY_OP);
	aml_name_string(a, path);
	aml_integer(a, value);
}

void aml_operation_region(struct aml *a, const char *name, uint8_t space, uint64_t offset,
			  uint64_t length)
{
	aml_byte(a, AML_EXT_OP_PREFIX);
	aml_byte(a, AML_EXT_REGION_OP);
	aml_name_string(a, name);
	aml_byte(a, space);
	aml_integer(a, offset);
	aml_integer(a, length);
}

void aml_field_dword(struct aml *a, const char *region, const char *name)
{
	uint8_t bits[4];

	aml_byte(a, AML_EXT_OP_PREFIX);
	aml_byte(a, AML_EXT_FIELD_OP);
	aml_open(a, false);
	aml_name_string(a, region);
	aml_byte(a, AML_FIELD_DWORD_ACC);
	aml_name_seg(a, name, strlen(name));
	/* a field's width in bits takes a PkgLength's encoding, its own bytes not counted */
	bits[0] = 32;
	aml_bytes(a, bits, 1);
	aml_close(a);
}

void aml_store_to_local0(struct aml *a, const char *source)
{
	aml_byte(a, AML_STORE_OP);
	aml_name_string(a, source);
	aml_byte(a, AML_LOCAL0_OP);
}

void aml_if_local0_and_open(struct aml *a, uint64_t mask)
{
	aml_byte(a, AML_IF_OP);
	aml_open(a, false);
	aml_byte(a, AML_AND_OP);
	aml_byte(a, AML_LOCAL0_OP);
	aml_integer(a, mask);
	aml_byte(a, AML_ZERO_OP); /* no target: NullName */
}

void aml_memory32_fixed(struct aml *a, uint32_t base, uint32_t length)
{
	aml_byte(a, 0x86); /* large item: 32-bit fixed memory range */
	aml_le(a, 9, 2);
	aml_byte(a, 1); /* read/write */
	aml_le(a, base, 4);
	aml_le(a, length, 4);
}

void aml_io(struct aml *a, uint16_t port, uint8_t length)
{
	aml_byte(a, 0x47); /* small item: I/O port, 7 bytes */
	aml_byte(a, 1);	   /* decodes 16 address lines */
	aml_le(a, port, 2);
	aml_le(a, port, 2);
	aml_byte(a, 1); /* alignment */
	aml_byte(a, length);
}

void aml_interrupt(struct aml *a, enum aml_trigger trigger, uint32_t gsi)
{
	aml_byte(a, 0x89); /* large item: extended interrupt */
	aml_le(a, 6, 2);
	/* consumer (bit 0), edge (bit 1); active high and exclusive are 0 */
	aml_byte(a, (uint8_t)(1 | (trigger == AML_EDGE ? 2 : 0)));
	aml_byte(a, 1); /* one interrupt */
	aml_le(a, gsi, 4);
}

void aml_end_tag(struct aml *a)
{
	aml_byte(a, 0x79);
	aml_byte(a, 0);
}
