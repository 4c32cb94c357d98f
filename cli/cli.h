/* cli/: the snapvm command line. Each subcommand lives in its own cmd_*.c. */
#ifndef SNAPVM_CLI_H
#define SNAPVM_CLI_H

#include "common/common.h"
#include "options/options.h"
#include "snapshot/snapshot.h"

struct cli_command {
	const char *name;
	const char *summary;
	int (*main)(int argc, char **argv); /* argv[0] is the subcommand name */
};

/* Every subcommand, in the order `snapvm --help` lists them; ends with a zeroed entry. */
extern const struct cli_command cli_commands[];

/*
 * Parses --store-timeout SECONDS (1..3600) for a RADOS store and passes it
 * on through $SNAPVM_STORE_TIMEOUT, which child processes inherit too.
 */
int cli_store_timeout_option(const char *command, const char *text);
/* Checks a snapshot name given on the command line; 0 or EXIT_USAGE with a message. */
int cli_snapshot_name_option(const char *command, const char *name);
struct snapshot_repo;
/*
 * Opens the snapshot store: --store DIR, else $SNAPVM_STORE, else the default;
 * for writing it is created if missing. 0, or EXIT_RUNTIME (the failure is logged).
 */
int cli_repo_open(const char *store_option, bool write, struct snapshot_repo **repo);
/*
 * The exit status for a restore's or an invoke's -errno (already logged):
 * EXIT_USAGE for a snapshot that is bad or missing, else EXIT_RUNTIME.
 */
int cli_exit_status(int ret);

/* --seccomp's help lines, the same for every command that starts VMs. */
#define CLI_SECCOMP_HELP                                                                  \
	"  --seccomp MODE     on (default): each thread runs under a seccomp filter of\n" \
	"                     the system calls it needs, and any other call stops\n"      \
	"                     snapvm with a line naming it; log: the kernel logs such\n"  \
	"                     calls (dmesg) and lets them run; off: no filter\n"
/* Parses a --seccomp value (off, log, on); 0 or EXIT_USAGE with a message. */
int cli_seccomp_option(const char *command, const char *text, enum sandbox_mode *mode);
/* Parses a --memory mode (prefetch, lazy, eager, mmap); 0 or EXIT_USAGE with a message. */
int cli_memory_option(const char *command, const char *text, enum snapshot_memory_mode *mode);
/*
 * Sets the seccomp mode and installs this process's filter (kind: the
 * start-up one, or a supervisor's); 0 or EXIT_RUNTIME with a message.
 */
int cli_sandbox_start(enum sandbox_mode mode, enum sandbox_thread kind);

int cmd_run_main(int argc, char **argv);
int cmd_snapshot_main(int argc, char **argv);
int cmd_restore_main(int argc, char **argv);
int cmd_invoke_main(int argc, char **argv);
int cmd_ls_main(int argc, char **argv);
int cmd_rm_main(int argc, char **argv);
int cmd_bench_main(int argc, char **argv);
int cmd_serve_main(int argc, char **argv);
int cmd_store_main(int argc, char **argv);

#endif
