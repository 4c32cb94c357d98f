#include "cli/cli.h"

#include <errno.h>
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
	if (!snapshot_name_valid(name))
		return opt_usage_error(command, SNAPSHOT_NAME_REFUSED, name);
	return 0;
}

int cli_repo_open(const char *store_option, bool write, struct snapshot_repo **repo)
{
	char dir[PATH_MAX];

	if (store_option)
		snprintf(dir, sizeof(dir), "%s", store_option);
	else
		snapshot_repo_default_dir(dir, sizeof(dir));
	return snapshot_repo_open(dir, write, repo) ? EXIT_RUNTIME : 0;
}

int cli_exit_status(int ret)
{
	return ret == -EINVAL || ret == -EPROTO || ret == -ENOENT || ret == -EBADMSG ||
			       ret == -EUCLEAN
		       ? EXIT_USAGE
		       : EXIT_RUNTIME;
}
