#include "snapshot/format.h"
#include "common/common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void buffer_reserve(struct snapshot_buffer *b, size_t more)
{
	size_t cap = b->cap ? b->cap : 64 * 1024;
	uint8_t *data;

	if (b->failed || b->len + more <= b->cap)
		return;
	while (cap < b->len + more)
		cap *= 2;
	data = realloc(b->data, cap);
	if (!data) {
		b->failed = true;
		return;
	}
	b->data = data;
	b->cap = cap;
}

static void buffer_append(struct snapshot_buffer *b, const void *bytes, size_t len)
{
	buffer_reserve(b, len);
	if (b->failed || len == 0) /* an empty part may come with no pointer at all */
		return;
	memcpy(b->data + b->len, bytes, len);
	b->len += len;
}

static void buffer_pad(struct snapshot_buffer *b)
{
	static const uint8_t zeros[8];

	buffer_append(b, zeros, ALIGN_UP(b->len, 8) - b->len);
}

void snapshot_write_begin(struct snapshot_buffer *b, const struct snapshot_header *header)
{
	struct snapshot_header h = *header;

	memset(b, 0, sizeof(*b));
	memcpy(h.magic, SNAPSHOT_MAGIC, sizeof(h.magic));
	h.major = SNAPSHOT_FORMAT_MAJOR;
	h.minor = SNAPSHOT_FORMAT_MINOR;
	h.header_size = sizeof(h);
	h.section_count = 0;
	buffer_append(b, &h, sizeof(h));
}

void snapshot_write_section_open(struct snapshot_buffer *b, uint32_t id, uint16_t version,
				 uint16_t flags)
{
	struct snapshot_section_header sh = { .id = id, .version = version, .flags = flags };

	b->open_section = b->len;
	buffer_append(b, &sh, sizeof(sh));
}

void snapshot_write_bytes(struct snapshot_buffer *b, const void *bytes, size_t length)
{
	buffer_append(b, bytes, length);
}

void snapshot_write_section_close(struct snapshot_buffer *b)
{
	struct snapshot_section_header *sh;
	struct snapshot_header *h;

	if (b->failed)
		return;
	sh = (struct snapshot_section_header *)(b->data + b->open_section);
	sh->length = b->len - b->open_section - sizeof(*sh);
	buffer_pad(b);
	if (b->failed)
		return;
	h = (struct snapshot_header *)b->data;
	h->section_count++;
}

void snapshot_write_section(struct snapshot_buffer *b, uint32_t id, uint16_t version,
			    uint16_t flags, const void *payload, size_t length)
{
	snapshot_write_section_open(b, id, version, flags);
	snapshot_write_bytes(b, payload, length);
	snapshot_write_section_close(b);
}

int snapshot_write_finish(struct snapshot_buffer *b)
{
	struct snapshot_trailer trailer = { .magic = SNAPSHOT_TRAILER_MAGIC };

	if (b->failed)
		return -ENOMEM;
	sha256_digest(b->data, b->len, trailer.sha256);
	buffer_append(b, &trailer, sizeof(trailer));
	return b->failed ? -ENOMEM : 0;
}

void snapshot_buffer_free(struct snapshot_buffer *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

static int parse_header(const uint8_t *data, size_t len, struct snapshot_header *h)
{
	if (len > SNAPSHOT_MAX_FILE_SIZE)
		return log_invalid("snapshot state is %zu bytes, more than the %u MiB limit", len,
				   SNAPSHOT_MAX_FILE_SIZE >> 20);
	if (len < sizeof(*h) + sizeof(struct snapshot_trailer))
		return log_invalid("snapshot state is truncated (%zu bytes)", len);
	memcpy(h, data, sizeof(*h));
	if (memcmp(h->magic, SNAPSHOT_MAGIC, sizeof(h->magic)))
		return log_invalid("not a snapvm snapshot (bad magic)");
	if (h->major != SNAPSHOT_FORMAT_MAJOR) {
		/* an older snapshot is not converted: take it again (docs/snapshot-format.md) */
		log_error("snapshot format %u.%u: this snapvm reads format %u.x only%s", h->major,
			  h->minor, SNAPSHOT_FORMAT_MAJOR,
			  h->major < SNAPSHOT_FORMAT_MAJOR ? " (take the snapshot again)" : "");
		return -EPROTO;
	}
	if (h->minor > SNAPSHOT_FORMAT_MINOR) {
		log_error("snapshot format %u.%u is newer than this snapvm (it reads up to %u.%u)",
			  h->major, h->minor, SNAPSHOT_FORMAT_MAJOR, SNAPSHOT_FORMAT_MINOR);
		return -EPROTO;
	}
	if (h->header_size != sizeof(*h))
		return log_invalid("snapshot header is %u bytes, expected %zu", h->header_size,
				   sizeof(*h));
	if (h->section_count > SNAPSHOT_MAX_SECTIONS)
		return log_invalid("snapshot has %u sections, more than %u", h->section_count,
				   SNAPSHOT_MAX_SECTIONS);
	return 0;
}

static int check_trailer(const uint8_t *data, size_t len)
{
	struct snapshot_trailer trailer;
	uint8_t digest[32];

	memcpy(&trailer, data + len - sizeof(trailer), sizeof(trailer));
	if (memcmp(trailer.magic, SNAPSHOT_TRAILER_MAGIC, sizeof(trailer.magic)))
		return log_invalid("snapshot state is truncated (no trailer)");
	sha256_digest(data, len - sizeof(trailer), digest);
	if (memcmp(digest, trailer.sha256, sizeof(digest)))
		return log_invalid("snapshot state is damaged (checksum mismatch)");
	return 0;
}

int snapshot_parse(const uint8_t *data, size_t len, struct snapshot_parsed *parsed)
{
	size_t pos, end;
	int ret;

	ret = parse_header(data, len, &parsed->header);
	if (!ret)
		ret = check_trailer(data, len);
	if (ret)
		return ret;
	pos = sizeof(struct snapshot_header);
	end = len - sizeof(struct snapshot_trailer);
	parsed->section_count = 0;
	for (unsigned i = 0; i < parsed->header.section_count; i++) {
		struct snapshot_section_header sh;
		struct snapshot_section *s = &parsed->sections[i];

		if (end - pos < sizeof(sh))
			return log_invalid("snapshot section %u starts past the end", i);
		memcpy(&sh, data + pos, sizeof(sh));
		pos += sizeof(sh);
		if (sh.length > SNAPSHOT_MAX_SECTION_SIZE)
			return log_invalid("snapshot section 0x%x is %llu bytes, more than %u MiB",
					   sh.id, (unsigned long long)sh.length,
					   SNAPSHOT_MAX_SECTION_SIZE >> 20);
		if (ALIGN_UP(sh.length, 8) > end - pos)
			return log_invalid("snapshot section 0x%x runs past the end", sh.id);
		if (snapshot_find(parsed, sh.id))
			return log_invalid("snapshot has section 0x%x twice", sh.id);
		*s = (struct snapshot_section){ sh.id, sh.version, sh.flags, data + pos,
						sh.length };
		parsed->section_count++;
		pos += ALIGN_UP(sh.length, 8);
	}
	if (pos != end)
		return log_invalid("snapshot has %zu bytes after its last section", end - pos);
	return 0;
}

const struct snapshot_section *snapshot_find(const struct snapshot_parsed *parsed, uint32_t id)
{
	for (unsigned i = 0; i < parsed->section_count; i++) {
		if (parsed->sections[i].id == id)
			return &parsed->sections[i];
	}
	return NULL;
}
