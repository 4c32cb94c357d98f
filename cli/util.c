#include "cli/cli.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "snapshot/snapshot.h"

int cli_usage_error(const char *command, const char *fmt, ...)
{
	char message[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	fprintf(stderr, "snapvm %s: %s (see 'snapvm %s --help')\n", command, message, command);
	return EXIT_USAGE;
}

int cli_parse_size_option(const char *command, const char *option, const char *text,
			  uint64_t *bytes)
{
	if (parse_size(text, bytes))
		return cli_usage_error(command,
				       "%s: '%s' is not a size (examples: 4096, 64K, 128M, 2G)",
				       option, text);
	return 0;
}

int cli_parse_uint_option(const char *command, const char *option, const char *text, uint64_t min,
			  uint64_t max, uint64_t *value)
{
	if (parse_u64(text, value) || *value < min || *value > max)
		return cli_usage_error(command,
				       "%s: '%s' is not a number from %" PRIu64 " to %" PRIu64,
				       option, text, min, max);
	return 0;
}

int cli_store_timeout_option(const char *command, const char *text)
{
	uint64_t seconds;
	int ret = cli_parse_uint_option(command, "--store-timeout", text, 1, 3600, &seconds);

	if (!ret)
		setenv("SNAPVM_STORE_TIMEOUT", text, 1);
	return ret;
}

int cli_seccomp_option(const char *command, const char *text, enum sandbox_mode *mode)
{
	if (sandbox_mode_parse(text, mode))
		return cli_usage_error(command, "--seccomp: '%s' is not on, log or off", text);
	return 0;
}

int cli_sandbox_start(enum sandbox_mode mode, enum sandbox_thread kind)
{
	return sandbox_mode_set(mode) || sandbox_thread_enter(kind) ? EXIT_RUNTIME : 0;
}

int cli_snapshot_name_option(const char *command, const char *name)
{
	char error[256];

	if (snapshot_name_check(name, error, sizeof(error)))
		return cli_usage_error(command, "%s", error);
	return 0;
}

int cli_repo_open(const char *command, const char *store_option, bool write,
		  struct snapshot_repo **repo)
{
	char dir[PATH_MAX], error[512];

	if (store_option)
		snprintf(dir, sizeof(dir), "%s", store_option);
	else
		snapshot_repo_default_dir(dir, sizeof(dir));
	if (snapshot_repo_open(dir, write, repo, error, sizeof(error))) {
		if (error[0]) /* else the store has said why */
			fprintf(stderr, "snapvm %s: %s\n", command, error);
		return EXIT_RUNTIME;
	}
	return 0;
}
