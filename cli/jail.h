/*
 * The jailer (snapvm run|restore|invoke --jail DIR): each VM process in its
 * own mount, PID, IPC and UTS namespaces (and network, with --jail-netns),
 * an optional cgroup v2 leaf with limits, pivoted into DIR, as an
 * unprivileged uid and gid with no capabilities and no_new_privs.
 *
 * Two steps, at two fixed points of a command's start-up:
 *  1. jail_enter(), first thing after the options are parsed, before any
 *     thread, file or store is opened: makes the cgroup leaf, unshares the
 *     namespaces and forks. The parent only waits, passes signals on and
 *     returns the child's status; the child goes on with the command.
 *  2. jail_lock(), once the VM's host resources are open (KVM, TAP, disks,
 *     console, sockets, the snapshot's packs) and before the first guest
 *     instruction: seals the store, pivots into DIR, drops the identity.
 *     Seccomp filters belong right after it. A warm process (invoke
 *     --warm) opens those resources and pivots ahead (jail_prepare), and
 *     locks as soon as its snapshot is read, before its VM is built.
 * README.md, "Jailer", says what stays reachable inside.
 */
#ifndef SNAPVM_CLI_JAIL_H
#define SNAPVM_CLI_JAIL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define JAIL_DEFAULT_ID 65534 /* nobody / nogroup */

enum jail_option {
	JAIL_OPT_DIR = 0x1000,
	JAIL_OPT_UID,
	JAIL_OPT_GID,
	JAIL_OPT_NETNS,
	JAIL_OPT_MEM,
	JAIL_OPT_CPU,
	JAIL_OPT_PIDS,
	JAIL_OPT_LAST = JAIL_OPT_PIDS,
};

/* The getopt_long entries of the jail options, for a command's longopts table. */
/* clang-format off */
#define JAIL_LONGOPTS                                               \
	{ "jail", required_argument, NULL, JAIL_OPT_DIR },          \
	{ "uid", required_argument, NULL, JAIL_OPT_UID },           \
	{ "gid", required_argument, NULL, JAIL_OPT_GID },           \
	{ "jail-netns", no_argument, NULL, JAIL_OPT_NETNS },        \
	{ "jail-mem", required_argument, NULL, JAIL_OPT_MEM },      \
	{ "jail-cpu", required_argument, NULL, JAIL_OPT_CPU },      \
	{ "jail-pids", required_argument, NULL, JAIL_OPT_PIDS }
/* clang-format on */

/* The --help lines of the jail options. */
#define JAIL_HELP                                                                         \
	"  --jail DIR         run in a jail rooted at DIR (README.md, \"Jailer\"): own\n" \
	"                     namespaces, only already-open files reachable, no\n"        \
	"                     capabilities; needs root\n"                                 \
	"  --uid N, --gid N   the jailed process's identity (default 65534, nobody)\n"    \
	"  --jail-netns       also a new, empty network namespace\n"                      \
	"  --jail-mem SIZE    cgroup v2 memory.max of the jail (e.g. 256M)\n"             \
	"  --jail-cpu Q/P     cgroup v2 cpu.max: Q us of CPU time every P us\n"           \
	"  --jail-pids N      cgroup v2 pids.max (threads count)\n"

struct jail_options {
	const char *dir; /* NULL: no jail */
	uid_t uid;
	gid_t gid;
	bool netns;
	uint64_t mem_max;		/* bytes; 0: no limit */
	uint64_t cpu_quota, cpu_period; /* us; 0: no limit */
	uint64_t pids_max;		/* 0: no limit */
};

/* What jail_enter leaves for jail_lock and the parent's report. */
struct jail {
	struct jail_options options;
	const char *command;
	char cgroup[4096];  /* the leaf's directory, or "" */
	bool root_prepared; /* DIR's mounts made (jail_prepare) */
	bool group_dropped; /* gid and groups already the jail's (jail_prepare) */
	bool pivoted;	    /* DIR is / already (jail_prepare, or jail_lock) */
};

/* The defaults: no jail, uid and gid 65534. */
void jail_options_init(struct jail_options *options);
/* Parses one jail option (opt from JAIL_LONGOPTS). 0 or EXIT_USAGE with one line. */
int jail_option_parse(const char *command, int opt, const char *value,
		      struct jail_options *options);
/* Checks the options together (limits need --jail). 0 or EXIT_USAGE. */
int jail_options_check(const char *command, const struct jail_options *options);

/*
 * Step 1 (see above). Returns 0 in the jailed VM process (and without
 * --jail, in the caller, doing nothing): go on. Returns 1 when the caller
 * must exit with *status: in the parent once the VM is gone (a VM killed by
 * a signal is killed again in the parent, so that its waiter sees the
 * same), or after one line on stderr if the jail could not be made.
 */
int jail_enter(const char *command, const struct jail_options *options, struct jail *jail,
	       int *status);

struct snapshot_repo;
struct snapshot_clone;
/*
 * Step 2 (see above), in the child: seals repo (may be NULL) to clone's
 * packs, pivots into DIR, drops the identity. 0 (or nothing to do), or
 * EXIT_RUNTIME after one line on stderr.
 */
int jail_lock(struct jail *jail, struct snapshot_repo *repo, struct snapshot_clone *clone);
/*
 * What of jail_lock can come before the VM's host resources are open, for
 * a warm process (invoke --warm), which has opened all it will open at a
 * host path (KVM: vm_host_open_ahead; the store and its snapshot:
 * snapshot_open_ahead): DIR's mounts, the jail's gid with no supplementary
 * groups (taken while the process has one thread) and, with pivot, the
 * pivot into DIR. In the jailed VM process; 0 (or no jail), or EXIT_RUNTIME
 * after one line on stderr.
 */
int jail_prepare(struct jail *jail, bool pivot);
/* jail_lock in snapshot_restore_options.before_start's shape (opaque is the jail). */
int jail_lock_hook(struct snapshot_repo *repo, struct snapshot_clone *clone, void *opaque);

/* ---- jail_cgroup.c ---- */

/* Makes the cgroup v2 leaf for the limits asked (if any). 0 or EXIT_RUNTIME with one line. */
int jail_cgroup_create(struct jail *jail);
/* Moves process pid into the leaf. 0 or EXIT_RUNTIME with one line. */
int jail_cgroup_join(const struct jail *jail, pid_t pid);
enum jail_oom {
	JAIL_OOM_NONE,
	JAIL_OOM_REACHED, /* an allocation failed at memory.max (userfaultfd's: -ENOMEM) */
	JAIL_OOM_KILLED,  /* the OOM killer killed in the leaf */
};
/* Whether the leaf ran out of memory. */
enum jail_oom jail_cgroup_oom(const struct jail *jail);
/* Removes the leaf (its processes have exited). */
void jail_cgroup_remove(struct jail *jail);

#endif
