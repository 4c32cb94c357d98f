/*
 * Test helper: damages a snapshot's state file in one precise way and, where
 * the damage is not the checksum itself, signs it again, so that the test
 * reaches the check it means to exercise.
 *   snapshot_tamper FILE major N | minor N | vendor TEXT | section-length ID LEN
 *                        | section-byte ID OFFSET VALUE
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "snapshot/format.h"

int main(int argc, char **argv)
{
	struct snapshot_header *h;
	struct snapshot_trailer *t;
	unsigned char *data;
	long len;
	FILE *f;

	if (argc < 4 || !(f = fopen(argv[1], "r+b"))) {
		fprintf(stderr, "usage: snapshot_tamper FILE major N|minor N|vendor TEXT|"
				"section-length ID LEN|section-byte ID OFFSET VALUE\n");
		return 2;
	}
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	data = malloc((size_t)len);
	if (!data || fread(data, 1, (size_t)len, f) != (size_t)len)
		return 1;
	h = (struct snapshot_header *)data;
	if (!strcmp(argv[2], "major")) {
		h->major = (uint16_t)atoi(argv[3]);
	} else if (!strcmp(argv[2], "minor")) {
		h->minor = (uint16_t)atoi(argv[3]);
	} else if (!strcmp(argv[2], "vendor")) {
		memset(h->cpu_vendor, 0, sizeof(h->cpu_vendor));
		memcpy(h->cpu_vendor, argv[3], strnlen(argv[3], sizeof(h->cpu_vendor)));
	} else if ((!strcmp(argv[2], "section-length") && argc == 5) ||
		   (!strcmp(argv[2], "section-byte") && argc == 6)) {
		unsigned long id = strtoul(argv[3], NULL, 0);
		size_t pos = sizeof(*h);

		for (unsigned i = 0; i < h->section_count; i++) {
			struct snapshot_section_header *sh = (void *)(data + pos);

			if (sh->id != id) {
				pos += sizeof(*sh) + ((sh->length + 7) & ~7ULL);
				continue;
			}
			if (argc == 5)
				sh->length = strtoull(argv[4], NULL, 0);
			else if (strtoul(argv[4], NULL, 0) < sh->length)
				data[pos + sizeof(*sh) + strtoul(argv[4], NULL, 0)] =
					(unsigned char)strtoul(argv[5], NULL, 0);
			break;
		}
	} else {
		fprintf(stderr, "snapshot_tamper: unknown action %s\n", argv[2]);
		return 2;
	}
	t = (struct snapshot_trailer *)(data + len - sizeof(*t));
	sha256_digest(data, (size_t)len - sizeof(*t), t->sha256);
	rewind(f);
	if (fwrite(data, 1, (size_t)len, f) != (size_t)len)
		return 1;
	fclose(f);
	free(data);
	return 0;
}
