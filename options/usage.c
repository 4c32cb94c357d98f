/* Usage errors and the value parsers every option uses. */
#include "options/options.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

int opt_usage_error(const char *command, const char *fmt, ...)
{
	char message[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	fprintf(stderr, "snapvm %s: %s (see 'snapvm %s --help')\n", command, message, command);
	return EXIT_USAGE;
}

int opt_getopt_error(const char *command, int opt, char *const argv[])
{
	/* getopt_long has stepped past the word it could not take */
	if (opt == ':')
		return opt_usage_error(command, "%s needs a value", argv[optind - 1]);
	return opt_usage_error(command, "unknown option '%s'", argv[optind - 1]);
}

int opt_parse_size(const char *command, const char *option, const char *text, uint64_t *bytes)
{
	if (parse_size(text, bytes))
		return opt_usage_error(command,
				       "%s: '%s' is not a size (examples: 4096, 64K, 128M, 2G)",
				       option, text);
	return 0;
}

int opt_parse_uint(const char *command, const char *option, const char *text, uint64_t min,
		   uint64_t max, uint64_t *value)
{
	if (parse_u64(text, value) || *value < min || *value > max)
		return opt_usage_error(command,
				       "%s: '%s' is not a number from %" PRIu64 " to %" PRIu64,
				       option, text, min, max);
	return 0;
}
