#include "common/common.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <strings.h>

int parse_u64(const char *text, uint64_t *value)
{
	char *end;
	unsigned long long v;

	if (!text || !*text || *text == '-' || isspace((unsigned char)*text))
		return -EINVAL;
	errno = 0;
	v = strtoull(text, &end, 0);
	if (errno == ERANGE)
		return -ERANGE;
	if (end == text || *end != '\0')
		return -EINVAL;
	*value = v;
	return 0;
}

static int size_suffix_shift(const char *suffix, unsigned *shift)
{
	static const struct {
		char letter;
		unsigned shift;
	} units[] = { { 'K', 10 }, { 'M', 20 }, { 'G', 30 }, { 'T', 40 } };

	if (*suffix == '\0' || !strcasecmp(suffix, "B")) {
		*shift = 0;
		return 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (toupper((unsigned char)suffix[0]) != units[i].letter)
			continue;
		if (suffix[1] == '\0' || !strcasecmp(suffix + 1, "B") ||
		    !strcasecmp(suffix + 1, "iB")) {
			*shift = units[i].shift;
			return 0;
		}
	}
	return -EINVAL;
}

int parse_size(const char *text, uint64_t *bytes)
{
	char *end;
	unsigned long long v;
	unsigned shift;

	if (!text || !isdigit((unsigned char)*text))
		return -EINVAL;
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	if (size_suffix_shift(end, &shift))
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*bytes = (uint64_t)v << shift;
	return 0;
}

void json_escape(const char *text, char *out, size_t size)
{
	size_t n = 0;

	for (; *text && n + 7 < size; text++) {
		unsigned char c = (unsigned char)*text;

		if (c == '"' || c == '\\') {
			out[n++] = '\\';
			out[n++] = (char)c;
		} else if (c < 0x20) {
			n += (size_t)snprintf(out + n, size - n, "\\u%04x", c);
		} else {
			out[n++] = (char)c;
		}
	}
	if (size)
		out[n < size ? n : size - 1] = '\0';
}
