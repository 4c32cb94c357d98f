/* Options of `snapvm run`, parsed apart from running so that tests can check them. */
#ifndef SNAPVM_CLI_RUN_OPTIONS_H
#define SNAPVM_CLI_RUN_OPTIONS_H

#include <stdbool.h>

#include "common/common.h"
#include "cli/jail.h"
#include "options/options.h"

struct run_options {
	struct vm_settings vm;	       /* the VM options (options/options.h) */
	const char *api_sock;	       /* --api-sock: control socket */
	const char *snapshot_on_ready; /* --snapshot-on-ready NAME */
	bool resume;		       /* --resume: keep running after that snapshot */
	const char *store;	       /* --store DIR */
	enum sandbox_mode seccomp;     /* --seccomp */
	struct jail_options jail;      /* --jail DIR and its options */
	bool help;
};

/*
 * Parses `snapvm run` arguments (argv[0] = "run") into options, starting from
 * the defaults. Returns 0, or EXIT_USAGE after printing one line on stderr.
 */
int run_options_parse(int argc, char **argv, struct run_options *options);

#endif
