/*
 * The jailer's two steps (cli/jail.h): namespaces and the waiting parent
 * (jail_enter), then the store sealed, the pivot into DIR and the identity
 * dropped (jail_lock). The cgroup leaf is in jail_cgroup.c.
 */
#include "cli/jail.h"
#include "cli/cli.h"
#include "snapshot/snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

void jail_options_init(struct jail_options *options)
{
	memset(options, 0, sizeof(*options));
	options->uid = JAIL_DEFAULT_ID;
	options->gid = JAIL_DEFAULT_ID;
}

/* --jail-cpu Q/P: cgroup v2 takes a quota of at least 1 ms, a period from 1 ms to 1 s. */
static int jail_cpu_parse(const char *command, const char *text, struct jail_options *o)
{
	unsigned long long quota, period;
	char end;

	if (sscanf(text, "%llu/%llu%c", &quota, &period, &end) != 2 || quota < 1000 ||
	    period < 1000 || period > 1000000 || quota > 1000000ULL * 1000)
		return opt_usage_error(command,
				       "--jail-cpu: '%s' is not QUOTA/PERIOD in microseconds "
				       "(quota >= 1000, period 1000 to 1000000)",
				       text);
	o->cpu_quota = quota;
	o->cpu_period = period;
	return 0;
}

int jail_option_parse(const char *command, int opt, const char *value, struct jail_options *options)
{
	uint64_t n;
	int ret = 0;

	switch (opt) {
	case JAIL_OPT_DIR:
		options->dir = value;
		break;
	case JAIL_OPT_UID:
	case JAIL_OPT_GID: /* 0 would be root again */
		ret = opt_parse_uint(command, opt == JAIL_OPT_UID ? "--uid" : "--gid", value, 1,
				     4294967294U, &n);
		if (opt == JAIL_OPT_UID)
			options->uid = (uid_t)n;
		else
			options->gid = (gid_t)n;
		break;
	case JAIL_OPT_NETNS:
		options->netns = true;
		break;
	case JAIL_OPT_MEM:
		ret = opt_parse_size(command, "--jail-mem", value, &options->mem_max);
		if (!ret && options->mem_max < (1 << 20))
			ret = opt_usage_error(command, "--jail-mem: %s is less than 1M", value);
		break;
	case JAIL_OPT_CPU:
		ret = jail_cpu_parse(command, value, options);
		break;
	case JAIL_OPT_PIDS:
		ret = opt_parse_uint(command, "--jail-pids", value, 1, 1 << 22, &options->pids_max);
		break;
	default:
		ret = opt_usage_error(command, "unknown jail option");
	}
	return ret;
}

int jail_options_check(const char *command, const struct jail_options *o)
{
	if (o->dir)
		return o->dir[0] == '/'
			       ? 0
			       : opt_usage_error(command, "--jail: give DIR as an absolute path");
	if (o->netns || o->mem_max || o->cpu_quota || o->pids_max || o->uid != JAIL_DEFAULT_ID ||
	    o->gid != JAIL_DEFAULT_ID)
		return opt_usage_error(command, "--uid, --gid and --jail-* go with --jail DIR");
	return 0;
}

/*
 * Three processes: the caller (the parent, in the host's namespaces), which
 * waits; the jail's init, PID 1 of the new PID namespace, which reaps and
 * passes signals on; the VM process, which goes on with the command. The
 * VM process is not PID 1 so that it can take a PID no other process using
 * the store has: LMDB tells its readers apart by PID (a lock at that
 * offset), and every jail's PID 1 would clash. It takes the parent's host
 * PID, which stays taken on the host while the parent waits.
 */
struct jail_fork {
	struct jail *jail;
	sigset_t forwarded; /* blocked in parent and init, passed on */
	sigset_t old_mask;
	pid_t parent_pid;	/* on the host */
	int go[2];		/* the parent says "in the cgroup, go on" */
	int result[2];		/* init sends the VM process's wait status */
	char oom_score_adj[16]; /* the VM process's, which init gives up for -1000 */
};

static int jail_fail(const struct jail *jail, const char *step)
{
	fprintf(stderr, "snapvm %s: cannot %s: %s\n", jail->command, step, strerror(errno));
	return EXIT_RUNTIME;
}

/*
 * In init, before the VM process exists: the namespaces it and the VM
 * share; the capabilities either could ever regain given up before any
 * thread exists (no bounding set, no ambient, no_new_privs).
 */
static int jail_namespaces_setup(struct jail *jail)
{
	int flags = CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS;

	if (jail->options.netns)
		flags |= CLONE_NEWNET;
	if (unshare(flags) < 0)
		return jail_fail(jail, "create the jail's namespaces");
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return jail_fail(jail, "make the jail's mounts private");
	if (sethostname("snapvm", 6) < 0)
		return jail_fail(jail, "name the jail's host");
	for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++) {
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
			return jail_fail(jail, "drop the capability bounding set");
	}
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); /* EINVAL before Linux 4.3 */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return jail_fail(jail, "set no_new_privs");
	return 0;
}

/* The next PID in init's namespace is the parent's host PID. */
static int jail_next_pid_set(struct jail *jail, pid_t pid)
{
	char text[32];
	int fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
	int len = snprintf(text, sizeof(text), "%d", (int)pid - 1);

	if (fd < 0 || write(fd, text, (size_t)len) != len) {
		if (fd >= 0)
			close(fd);
		return jail_fail(jail, "choose the jailed process's PID");
	}
	close(fd);
	return 0;
}

/*
 * Writes value to this process's oom_score_adj; the old one into old (size
 * bytes) if old is not NULL. Best effort: the jail works without it.
 */
static void oom_score_adj_swap(const char *value, char *old, size_t size)
{
	int fd = open("/proc/self/oom_score_adj", O_RDWR | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return;
	if (old) {
		n = read(fd, old, size - 1);
		old[n > 0 ? n : 0] = '\0';
	}
	if (pwrite(fd, value, strlen(value), 0) < 0)
		log_debug("jail: oom_score_adj %s: %s", value, strerror(errno));
	close(fd);
}

/*
 * The VM process: INT, TERM and HUP stay blocked so that they wait for the
 * VM's signalfd; inherited descriptors are closed (none is the VM's: it
 * opens its own from here on); it dies with init.
 */
static int jail_vm_start(struct jail_fork *f)
{
	sigset_t mask = f->old_mask;

	/* init's -1000 is inherited: left so, the OOM killer would find no one to kill */
	oom_score_adj_swap(f->oom_score_adj, NULL, 0);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		return jail_fail(f->jail, "tie the jailed process to its init");
	close_range(3, ~0U, 0);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_SETMASK, &mask, NULL);
	return 0;
}

/* Passes signals on to pid until it exits; its wait status. */
static int jail_forward_until_exit(pid_t pid, const sigset_t *set)
{
	siginfo_t info;
	int wstatus;

	while (waitpid(pid, &wstatus, WNOHANG) != pid) {
		if (sigwaitinfo(set, &info) > 0 && info.si_signo != SIGCHLD)
			kill(pid, info.si_signo);
	}
	return wstatus;
}

/* Init: starts the VM process, then only reaps it and passes signals on. */
static void jail_init_run(struct jail_fork *f)
{
	struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3 };
	/* CAP_KILL only: the VM process it passes signals to runs as another uid */
	struct __user_cap_data_struct kill_only[2] = {
		{ .effective = 1u << CAP_KILL, .permitted = 1u << CAP_KILL },
	};
	char byte;
	pid_t pid;
	int wstatus;

	close(f->go[1]);
	close(f->result[0]);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || read(f->go[0], &byte, 1) != 1)
		_exit(EXIT_RUNTIME); /* the parent has failed and said why, or is gone */
	close(f->go[0]);
	if (jail_namespaces_setup(f->jail) || jail_next_pid_set(f->jail, f->parent_pid))
		_exit(EXIT_RUNTIME);
	/* when memory runs out, the VM process is the one to go, not init */
	oom_score_adj_swap("-1000", f->oom_score_adj, sizeof(f->oom_score_adj));
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		if (jail_vm_start(f))
			_exit(EXIT_RUNTIME);
		return;
	}
	if (pid < 0)
		_exit(jail_fail(f->jail, "fork the jailed process"));
	/* the terminal, the pipes, whatever was inherited: the VM process's, not init's */
	close_range(0, (unsigned)f->result[1] - 1, 0);
	close_range((unsigned)f->result[1] + 1, ~0U, 0);
	syscall(SYS_capset, &header, kill_only);
	wstatus = jail_forward_until_exit(pid, &f->forwarded);
	_exit(write(f->result[1], &wstatus, sizeof(wstatus)) == sizeof(wstatus) ? 0 : EXIT_RUNTIME);
}

/*
 * One line when the VM ran out of its --jail-mem: killed by the OOM killer,
 * or failed because an allocation did (guest memory paged in through
 * userfaultfd gets -ENOMEM at the limit rather than the OOM killer).
 */
static void jail_report_oom(const struct jail *jail, int wstatus)
{
	enum jail_oom oom = jail_cgroup_oom(jail);
	unsigned long long kib = jail->options.mem_max >> 10;

	if (oom == JAIL_OOM_KILLED && WIFSIGNALED(wstatus))
		fprintf(stderr,
			"snapvm %s: the jailed VM was killed: out of memory (--jail-mem %llu KiB)\n",
			jail->command, kib);
	else if (oom != JAIL_OOM_NONE && !(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0))
		fprintf(stderr,
			"snapvm %s: the jailed VM failed at its memory limit (--jail-mem %llu KiB)\n",
			jail->command, kib);
}

/* The VM was killed by sig: so is the parent, for its own waiter to see the same. */
static int jail_die_like(int sig)
{
	struct rlimit none = { 0, 0 };
	sigset_t set;

	setrlimit(RLIMIT_CORE, &none); /* the VM's core, if any, is the one to look at */
	signal(sig, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, sig);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	raise(sig);
	return 128 + sig; /* a signal that does not kill */
}

/* The parent: passes signals on until init is gone, then cleans up; the VM's status. */
static int jail_parent_wait(struct jail_fork *f, pid_t init)
{
	int wstatus = jail_forward_until_exit(init, &f->forwarded);
	int vm_status;

	/* init sends the VM's status; without it (init itself killed), init's own */
	if (read(f->result[0], &vm_status, sizeof(vm_status)) == sizeof(vm_status))
		wstatus = vm_status;
	close(f->result[0]);
	jail_report_oom(f->jail, wstatus);
	jail_cgroup_remove(f->jail);
	if (WIFEXITED(wstatus))
		return WEXITSTATUS(wstatus);
	return jail_die_like(WTERMSIG(wstatus));
}

/* DIR must be a directory; root is needed for namespaces, mounts and setuid. */
static int jail_enter_check(const struct jail *jail)
{
	struct stat st;

	if (stat(jail->options.dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "snapvm %s: --jail %s: %s\n", jail->command, jail->options.dir,
			errno ? strerror(errno) : "not a directory");
		return EXIT_USAGE;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "snapvm %s: --jail needs root (namespaces, pivot_root, setuid)\n",
			jail->command);
		return EXIT_USAGE;
	}
	return 0;
}

/* Every signal a shell or a supervisor sends, for the parent and init to pass on. */
static void jail_forwarded_signals(sigset_t *set)
{
	static const int kept[] = { SIGKILL, SIGSTOP, SIGSEGV, SIGBUS,	SIGFPE,	 SIGILL,
				    SIGTRAP, SIGABRT, SIGTSTP, SIGTTIN, SIGTTOU, SIGCONT };

	sigfillset(set);
	for (size_t i = 0; i < ARRAY_SIZE(kept); i++)
		sigdelset(set, kept[i]);
	for (int sig = SIGRTMIN; sig <= SIGRTMAX; sig++)
		sigdelset(set, sig);
}

/* Forks init into a new PID namespace; 0 in the VM process, 1 in the parent once all is over. */
static int jail_fork(struct jail *jail, int *status)
{
	struct jail_fork f = { .jail = jail, .parent_pid = getpid() };
	int own_ns;
	pid_t init;

	jail_forwarded_signals(&f.forwarded);
	own_ns = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
	if (own_ns < 0 || pipe2(f.go, O_CLOEXEC) < 0 || pipe2(f.result, O_CLOEXEC) < 0 ||
	    unshare(CLONE_NEWPID) < 0) {
		*status = jail_fail(jail, "create the jail's PID namespace");
		return 1;
	}
	sigprocmask(SIG_BLOCK, &f.forwarded, &f.old_mask);
	fflush(NULL);
	init = fork();
	if (init == 0) {
		jail_init_run(&f); /* returns in the VM process only */
		return 0;
	}
	/* the parent's own children (LeakSanitizer's tracer, at exit) stay in its namespace */
	if (setns(own_ns, CLONE_NEWPID) < 0)
		log_warn("jail: cannot return to its PID namespace: %s", strerror(errno));
	close(own_ns);
	close(f.go[0]);
	close(f.result[1]);
	if (init < 0 || jail_cgroup_join(jail, init)) {
		if (init < 0)
			jail_fail(jail, "fork the jail's init");
		close(f.go[1]); /* init, if any, exits */
		if (init > 0)
			waitpid(init, NULL, 0);
		close(f.result[0]);
		jail_cgroup_remove(jail);
		*status = EXIT_RUNTIME;
		return 1;
	}
	if (write(f.go[1], "", 1) != 1)
		kill(init, SIGKILL);
	close(f.go[1]);
	*status = jail_parent_wait(&f, init);
	return 1;
}

int jail_enter(const char *command, const struct jail_options *options, struct jail *jail,
	       int *status)
{
	memset(jail, 0, sizeof(*jail));
	jail->options = *options;
	jail->command = command;
	if (!options->dir)
		return 0;
	*status = jail_enter_check(jail);
	if (!*status)
		*status = jail_cgroup_create(jail);
	if (*status)
		return 1;
	return jail_fork(jail, status);
}

static int jail_root_fail(const struct jail *jail, const char *step)
{
	fprintf(stderr, "snapvm %s: jail %s: cannot %s: %s\n", jail->command, jail->options.dir,
		step, strerror(errno));
	return EXIT_RUNTIME;
}

/*
 * pivot_root refuses a root that an initramfs switch_root left (EINVAL):
 * then DIR is moved over / and chrooted into, as runc does. The host's
 * root stays under it, out of reach without CAP_SYS_CHROOT, dropped soon.
 */
static int jail_root_move(const struct jail *jail)
{
	log_debug("jail: pivot_root refused; moving DIR over / instead");
	if (mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 || chdir("/") < 0)
		return jail_root_fail(jail, "move DIR over /");
	return 0;
}

/*
 * DIR's mounts, in the jail's own mount namespace: a read-only bind of
 * itself (no device, set-uid or executable file usable) with a /proc of the
 * jail's own PID namespace. They hide nothing of the host yet.
 */
static int jail_root_prepare(struct jail *jail)
{
	const char *dir = jail->options.dir;
	char proc[PATH_MAX];
	const char *step = "make DIR/proc";

	if (!dir || jail->root_prepared)
		return 0;
	if (path_format(proc, sizeof(proc), "%s/proc", dir) ||
	    (mkdir(proc, 0555) < 0 && errno != EEXIST))
		goto err;
	step = "bind-mount DIR";
	if (mount(dir, dir, NULL, MS_BIND | MS_REC, NULL) < 0)
		goto err;
	step = "mount DIR/proc";
	if (mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		goto err;
	step = "make DIR read-only";
	if (mount(NULL, dir, NULL,
		  MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		goto err;
	jail->root_prepared = true;
	return 0;
err:
	fprintf(stderr, "snapvm %s: jail %s: cannot %s: %s\n", jail->command, dir, step,
		strerror(errno));
	return EXIT_RUNTIME;
}

/*
 * The jail's group, and no supplementary group, while the process is still
 * one thread: root needs neither to open what it opens (its capabilities
 * do), and jail_lock then changes one identity less on every thread. A file
 * it creates from here on has the jail's group: for a warm process only.
 */
static int jail_group_drop(struct jail *jail)
{
	gid_t gid = jail->options.gid;

	if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0) {
		fprintf(stderr, "snapvm %s: jail: cannot take gid %u: %s\n", jail->command,
			(unsigned)gid, strerror(errno));
		return EXIT_RUNTIME;
	}
	jail->group_dropped = true;
	return 0;
}

/* DIR (its mounts prepared) becomes /, the host's root detached; once. */
static int jail_root_enter(struct jail *jail)
{
	const char *step = "pivot_root into DIR";
	int ret;

	if (jail->pivoted)
		return 0;
	/* pivot_root(".", "."): the old root stacks on the new one, and is detached */
	if (chdir(jail->options.dir) < 0)
		goto err;
	if (syscall(SYS_pivot_root, ".", ".") < 0) {
		if (errno != EINVAL)
			goto err;
		ret = jail_root_move(jail);
		jail->pivoted = ret == 0;
		return ret;
	}
	step = "detach the host's root";
	if (umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
		goto err;
	jail->pivoted = true;
	return 0;
err:
	return jail_root_fail(jail, step);
}

int jail_prepare(struct jail *jail, bool pivot)
{
	if (!jail->options.dir)
		return 0;
	if (jail_root_prepare(jail) || jail_group_drop(jail))
		return EXIT_RUNTIME;
	if (!pivot)
		return 0;
	if (jail_root_enter(jail))
		return EXIT_RUNTIME;
	log_debug("jail: DIR is / already, before the restore");
	return 0;
}

/* The size of this process's descriptor table (FDSize): every descriptor is below it. */
static int fd_table_size(void)
{
	char buf[2048], *p;
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	p = strstr(buf, "\nFDSize:");
	return p ? atoi(p + 8) : -1;
}

/*
 * No directory may stay open: openat() from one (or "..") would reach the
 * host's files again. The store and the VM keep files, sockets and devices.
 * poll() over the table tells the open descriptors (the others are
 * POLLNVAL) in a call or a few (it takes at most RLIMIT_NOFILE entries):
 * listing /proc/self/fd would cost a dentry for each.
 */
static int jail_fds_check(const struct jail *jail)
{
	int size = fd_table_size(), bad = -1;
	struct pollfd *fds = size > 0 ? calloc((size_t)size, sizeof(*fds)) : NULL;
	struct rlimit limit;
	size_t chunk;
	struct stat st;

	if (!fds || getrlimit(RLIMIT_NOFILE, &limit) < 0 || limit.rlim_cur == 0) {
		fprintf(stderr, "snapvm %s: jail: cannot list its descriptors\n", jail->command);
		free(fds);
		return EXIT_RUNTIME;
	}
	chunk = (size_t)MIN(limit.rlim_cur, (rlim_t)size);
	for (int fd = 0; fd < size; fd++)
		fds[fd].fd = fd;
	for (size_t at = 0; at < (size_t)size; at += chunk) {
		if (poll(fds + at, MIN(chunk, (size_t)size - at), 0) < 0) {
			fprintf(stderr, "snapvm %s: jail: cannot list its descriptors: %s\n",
				jail->command, strerror(errno));
			free(fds);
			return EXIT_RUNTIME;
		}
	}
	for (int fd = 0; fd < size && bad < 0; fd++)
		if (!(fds[fd].revents & POLLNVAL) && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode))
			bad = fd;
	free(fds);
	if (bad < 0)
		return 0;
	fprintf(stderr, "snapvm %s: jail: descriptor %d is an open directory: refusing to run\n",
		jail->command, bad);
	return EXIT_RUNTIME;
}

/* The jail's uid and gid, no supplementary groups, no capability left in any set. */
static int jail_identity_drop(const struct jail *jail)
{
	struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2] = { { 0 } };
	uid_t uid = jail->options.uid;
	gid_t gid = jail->options.gid;

	/* glibc applies these to every thread (the pager's, the vCPUs'): none keeps root */
	if ((!jail->group_dropped && (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0)) ||
	    setresuid(uid, uid, uid) < 0 || syscall(SYS_capset, &header, data) < 0) {
		fprintf(stderr, "snapvm %s: jail: cannot become uid %u gid %u: %s\n", jail->command,
			(unsigned)uid, (unsigned)gid, strerror(errno));
		return EXIT_RUNTIME;
	}
	/*
	 * The raw call, on this thread only: glibc's would be sent to every
	 * thread again, and every thread's credentials were just set alike.
	 */
	if (syscall(SYS_setresuid, 0, 0, 0) == 0) {
		fprintf(stderr, "snapvm %s: jail: uid 0 could be taken back\n", jail->command);
		return EXIT_RUNTIME;
	}
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0); /* a change of identity cleared it */
	return 0;
}

/*
 * Test hook: SNAPVM_TEST_JAIL_PROBE=PATH[:PATH...] makes the jailed process
 * try each PATH and print what it can see and who it is, on stderr. Only the
 * host user who starts snapvm sets it; nothing in a guest reaches it.
 */
static void jail_probe(void)
{
	const char *spec = getenv("SNAPVM_TEST_JAIL_PROBE");
	char *copy, *save = NULL, line[256];
	DIR *d;
	FILE *f;

	if (!spec || !(copy = strdup(spec)))
		return;
	for (char *p = strtok_r(copy, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
		int fd = open(p, O_RDONLY | O_CLOEXEC);

		fprintf(stderr, "jail-probe: open %s: %s\n", p, fd >= 0 ? "ok" : strerror(errno));
		if (fd >= 0)
			close(fd);
	}
	free(copy);
	fprintf(stderr, "jail-probe: pids:");
	if ((d = opendir("/proc"))) {
		for (struct dirent *de; (de = readdir(d));)
			if (de->d_name[0] >= '1' && de->d_name[0] <= '9')
				fprintf(stderr, " %s", de->d_name);
		closedir(d);
	}
	fprintf(stderr, "\n");
	if ((f = fopen("/proc/self/status", "r"))) {
		while (fgets(line, sizeof(line), f))
			if (!strncmp(line, "Uid:", 4) || !strncmp(line, "Gid:", 4) ||
			    !strncmp(line, "Cap", 3) || !strncmp(line, "NoNewPrivs:", 11))
				fprintf(stderr, "jail-probe: %s", line);
		fclose(f);
	}
}

int jail_lock(struct jail *jail, struct snapshot_repo *repo, struct snapshot_clone *clone)
{
	uint64_t start = time_now_ns(), sealed, rooted, pivoted, checked;
	int ret;

	if (!jail->options.dir)
		return 0;
	ret = repo ? snapshot_repo_seal(repo, clone) : 0;
	if (ret == -EOPNOTSUPP) {
		fprintf(stderr,
			"snapvm %s: --jail needs a local store: a RADOS store's clone reads "
			"through the cluster and its cache, which a jail cannot reach yet\n",
			jail->command);
		return EXIT_USAGE;
	}
	if (ret) {
		fprintf(stderr, "snapvm %s: jail: cannot open the snapshot's packs ahead\n",
			jail->command);
		return EXIT_RUNTIME;
	}
	sealed = time_now_ns();
	if (jail_root_prepare(jail)) /* each step once: a warm process made them ahead */
		return EXIT_RUNTIME;
	rooted = time_now_ns();
	if (jail_root_enter(jail))
		return EXIT_RUNTIME;
	pivoted = time_now_ns();
	if (jail_fds_check(jail))
		return EXIT_RUNTIME;
	checked = time_now_ns();
	if (jail_identity_drop(jail))
		return EXIT_RUNTIME;
	log_debug("jail locked in %.3f ms: store sealed %.3f, mounts %.3f, pivot %.3f, "
		  "descriptors checked %.3f, identity %.3f",
		  (time_now_ns() - start) / 1e6, (sealed - start) / 1e6, (rooted - sealed) / 1e6,
		  (pivoted - rooted) / 1e6, (checked - pivoted) / 1e6,
		  (time_now_ns() - checked) / 1e6);
	jail_probe();
	return 0;
}

int jail_lock_hook(struct snapshot_repo *repo, struct snapshot_clone *clone, void *opaque)
{
	return jail_lock(opaque, repo, clone) ? -ECANCELED : 0; /* it has said why */
}
