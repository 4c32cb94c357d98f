#include "cli/cli.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "snapshot/snapshot.h"

int cli_store_timeout_option(const char *command, const char *text)
{
	uint64_t seconds;
	int ret = opt_parse_uint(command, "--store-timeout", text, 1, 3600, &seconds);

	if (!ret)
		setenv("SNAPVM_STORE_TIMEOUT", text, 1);
	return ret;
}

int cli_seccomp_option(const char *command, const char *text, enum sandbox_mode *mode)
{
	if (sandbox_mode_parse(text, mode))
		return opt_usage_error(command, "--seccomp: '%s' is not on, log or off", text);
	return 0;
}

int cli_memory_option(const char *command, const char *text, enum snapshot_memory_mode *mode)
{
	if (snapshot_memory_mode_parse(text, mode))
		return opt_usage_error(command,
				       "--memory: '%s' is not prefetch, lazy, eager or mmap", text);
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
		return opt_usage_error(command, "%s", error);
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
