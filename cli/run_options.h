/* Options of `snapvm run`, parsed apart from running so that tests can check them. */
#ifndef SNAPVM_CLI_RUN_OPTIONS_H
#define SNAPVM_CLI_RUN_OPTIONS_H

#include <stdbool.h>

#include "common/common.h"
#include "cli/jail.h"
#include "vmm/vmm.h"

/* --acpi: auto gives ACPI to Linux kernels only (cmd_run.c decides). */
enum run_acpi { RUN_ACPI_AUTO, RUN_ACPI_ON, RUN_ACPI_OFF };

struct run_options {
	struct vmm_config vm;
	enum run_acpi acpi;
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
/* Parses a --console value: stdio, none, virtio or file:PATH. 0 or EXIT_USAGE. */
int console_option_parse(const char *command, const char *text, struct vmm_config *config);
/* Adds a --disk PATH[,ro][,id=NAME] to config. 0 or EXIT_USAGE. */
int disk_option_parse(const char *command, const char *text, struct vmm_config *config);
/* Parses --vsock CID,PATH (PATH points into text). 0 or EXIT_USAGE. */
int vsock_option_parse(const char *command, const char *text, struct vmm_config *config);
/* Adds a --net tap=NAME[,mac=MAC] or user[,mac=MAC][,hostfwd=RULE]... 0 or EXIT_USAGE. */
int net_option_parse(const char *command, const char *text, struct vmm_config *config);
/* Parses --netns PATH into config. 0 or EXIT_USAGE. */
int netns_option_parse(const char *command, const char *text, struct vmm_config *config);

#endif
