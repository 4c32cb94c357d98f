/*
 * The seccomp allow-lists, one per kind of thread (README "seccomp" gives the
 * reasons), turned into libseccomp rules. Only the build uses this file:
 * sandbox_gen.c compiles every filter to BPF once, at build time, as
 * Firecracker does, because libseccomp takes ~1 ms per process to compile
 * them, a quarter of a restore. sandbox.c loads the result.
 */
#include <errno.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/socket.h>

#include "common/common.h"
#include "common/sandbox_rules.h"

/* ioctl request types ((request >> 8) & 0xff) that threads may use */
#define IOCTL_TYPE_KVM	0xae /* KVM: /dev/kvm, VM and vCPU fds */
#define IOCTL_TYPE_UFFD 0xaa /* userfaultfd */
#define IOCTL_TYPE_TTY	0x54 /* 'T': terminal modes, FIONBIO, FIONREAD, and TUN's TUNSET* */

/*
 * The lists. Each thread kind's own list comes on top of base_calls; the
 * README ("seccomp") gives the reasons per call. Kept out of clang-format so
 * that they stay tables.
 */
/* clang-format off */

/*
 * Every thread: memory, locks, time, signals, logging to stderr, exiting,
 * and installing its own filter (seccomp, and prctl for no_new_privs).
 */
static const char *const base_calls[] = {
	"futex", "rt_sigreturn", "rt_sigprocmask", "restart_syscall", "exit", "exit_group",
	"sched_yield", "nanosleep", "clock_nanosleep", "clock_gettime", "gettimeofday",
	"getpid", "gettid", "tgkill", "write", "writev", "mmap", "munmap", "mremap",
	"madvise", "brk", "mprotect", "close", "set_robust_list", "rseq", "getrandom",
	"sched_getaffinity", "seccomp", "prctl",
	/* glibc makes every thread change its ids when one does (jail_lock) */
	"setresuid", "setresgid", "setgroups",
};

/*
 * The vCPU threads: KVM_RUN and the KVM ioctls of a snapshot's save (ioctl,
 * KVM's own requests only, and TUNSETOFFLOAD: a virtio-net driver's features
 * set the TAP's offloads), and the UART's transmit timer, armed when the
 * guest writes its register.
 */
static const char *const vcpu_calls[] = { "read", "timerfd_settime" };

/*
 * The store readers: the page-fault thread and the eager loaders (which also
 * write the mmap mode's cache file). ioctl: userfaultfd's requests only.
 */
static const char *const pager_calls[] = {
	"read", "pread64", "preadv", "pwrite64", "poll", "ppoll", "epoll_wait", "epoll_pwait",
	"openat", "fstat", "newfstatat", "statx", "lseek", "fcntl",
	/* a RADOS store's cache files */
	"fgetxattr", "fsetxattr", "fremovexattr",
};

/* The working-set prefetcher: the pager's calls, and io_uring. */
static const char *const prefetch_calls[] = {
	"io_uring_setup", "io_uring_enter", "io_uring_register",
};

/* A snapshot's compression workers: they read the LMDB index. */
static const char *const store_worker_calls[] = { "pread64", "fcntl", "fstat" };

/*
 * The event loop and the device back-ends: the main thread after start-up.
 * ioctl: KVM's, userfaultfd's and the terminal's requests only; socket: UNIX
 * and IP only; clone: threads only.
 */
static const char *const loop_calls[] = {
	/* the loop, its eventfds and timerfds, the console, disks, sockets */
	"epoll_wait", "epoll_pwait", "epoll_ctl", "poll", "ppoll", "read", "readv", "pread64",
	"preadv", "pwrite64", "pwritev", "lseek", "fsync", "fdatasync", "io_uring_enter",
	"timerfd_settime", "timerfd_gettime", "eventfd2", "fcntl", "dup",
	/* the power button's grace timer, made when a stop asks for it */
	"timerfd_create",
	/* a RADOS store: its cache files' sizes, librados's messengers */
	"fgetxattr", "fsetxattr", "fremovexattr", "epoll_create",
	"connect", "accept", "accept4", "bind", "listen", "sendto", "recvfrom", "sendmsg",
	"recvmsg", "shutdown", "setsockopt", "getsockopt", "getsockname", "getpeername",
	/* a snapshot taken while running: the store's files and its workers */
	"openat", "mkdir", "mkdirat", "rename", "renameat", "renameat2", "unlink", "unlinkat",
	"link", "linkat", "fstat", "newfstatat", "statx", "ftruncate", "fallocate", "fadvise64",
	"sync_file_range",
	"getdents64", "flock", "msync", "mincore", "sysinfo", "uname", "readlink", "readlinkat",
	/* the end: default signal handlers back, the terminal restored */
	"rt_sigaction",
};

/*
 * Start-up, on top of the loop's calls: what builds a VM and its devices, and
 * what a new process (a serve child) runs before main. ioctl: any request.
 */
static const char *const startup_calls[] = {
	/* the program's own start (dynamic loader, libc) */
	"arch_prctl", "set_tid_address", "access", "faccessat", "faccessat2",
	"prlimit64", "getrlimit", "stat", "lstat", "open", "statfs", "fstatfs",
	/* the VM, its memory and its devices */
	"ioctl", "userfaultfd", "io_uring_setup", "io_uring_register", "timerfd_create",
	"epoll_create1", "signalfd4", "memfd_create", "setns", "mlock", "munlock", "readahead",
	"sched_setaffinity", "pipe2", "socketpair", "dup2", "dup3", "close_range",
	/* signals, terminal, identity */
	"rt_sigaction", "sigaltstack", "getuid", "geteuid", "getgid", "getegid", "getppid",
	"getpgrp", "kill", "wait4", "getpriority", "setpriority", "clock_getres", "pidfd_open",
	/* files: the store, disks, the console file */
	"getcwd", "fchmod", "fchown", "chmod", "umask", "symlink", "sync_file_range",
	"sendfile", "copy_file_range", "mincore",
};

/*
 * serve's HTTP threads: their connections, a clone's control socket (socket:
 * UNIX only), the store's listings and deletions, and kill for the clone of
 * a client that left.
 */
static const char *const http_calls[] = {
	"read", "poll", "ppoll", "epoll_wait", "epoll_ctl", "eventfd2", "recvfrom", "sendto",
	"recvmsg", "sendmsg", "shutdown", "setsockopt", "getsockopt", "fcntl", "connect",
	"kill", "pidfd_send_signal",
	"openat", "fstat", "newfstatat", "statx", "pread64", "pwrite64", "lseek", "getdents64",
	"unlink", "unlinkat", "rename", "renameat", "renameat2", "mkdir", "mkdirat", "fsync",
	"fdatasync", "ftruncate", "fallocate", "flock", "msync",
};

/*
 * serve's supervisor and restore --clones: the start-up calls (a child starts
 * under this filter), and fork, exec, wait and kill for the children.
 */
static const char *const supervisor_calls[] = {
	"execve", "wait4", "waitid", "kill", "setsid", "setpgid", "pidfd_send_signal", "rmdir",
};

/*
 * --jail: what jail_lock() does after start-up and before the guest runs
 * (cli/jail.c): DIR mounted read-only with its own /proc, pivot_root into
 * it, a new identity without capabilities. A supervisor's clones start
 * jailed (jail_enter) under its filter too.
 */
static const char *const jail_calls[] = {
	"mount", "umount2", "pivot_root", "chroot", "chdir", "fchdir", "mkdir", "setgroups",
	"setresuid", "setresgid", "capset", "capget", "unshare", "setns", "close_range", "sethostname",
	"rt_sigtimedwait",
};

/* The sanitizers' runtime (ASan/UBSan builds only): reports, and LeakSanitizer at exit. */
static const char *const sanitizer_calls[] = {
	"sigaltstack", "rt_sigaction", "prctl", "ptrace", "wait4", "open", "openat", "read", "readlink", "getdents",
	"readlinkat", "getdents64", "fstat", "newfstatat", "sched_getaffinity", "getppid",
	"lseek", "pread64", "uname", "kill", "clone", "getrlimit", "prlimit64",
};

/* clang-format on */

struct call_list {
	const char *const *names;
	size_t count;
};

#define CALLS(list)                      \
	{                                \
		(list), ARRAY_SIZE(list) \
	}

static int rule_add_list(scmp_filter_ctx ctx, struct call_list list)
{
	for (size_t i = 0; i < list.count; i++) {
		int nr = seccomp_syscall_resolve_name(list.names[i]);
		int ret;

		if (nr == __NR_SCMP_ERROR)
			continue; /* a call this architecture does not have (open, stat on arm64) */
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
		if (ret && ret != -EEXIST)
			return ret;
	}
	return 0;
}

/* ioctl with a request of one of these types only. */
static int rule_add_ioctl(scmp_filter_ctx ctx, const unsigned *types, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		int ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
					   SCMP_A1(SCMP_CMP_MASKED_EQ, 0xff00, types[i] << 8));

		if (ret && ret != -EEXIST)
			return ret;
	}
	return 0;
}

/*
 * Threads only, never processes: clone without CLONE_THREAD (fork) is not
 * allowed, and clone3, whose flags sit behind a pointer that a filter cannot
 * read, fails with ENOSYS so that glibc falls back to clone.
 */
static int rule_add_threads(scmp_filter_ctx ctx)
{
	int ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
				   SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));

	if (!ret || ret == -EEXIST)
		ret = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	return ret == -EEXIST ? 0 : ret;
}

/* socket() of these families only. */
static int rule_add_sockets(scmp_filter_ctx ctx, const int *families, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		int ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
					   SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)families[i]));

		if (ret && ret != -EEXIST)
			return ret;
	}
	return 0;
}

int sandbox_rules_add(scmp_filter_ctx ctx, enum sandbox_thread kind)
{
	static const unsigned vcpu_ioctls[] = { IOCTL_TYPE_KVM };
	static const unsigned pager_ioctls[] = { IOCTL_TYPE_UFFD };
	static const unsigned loop_ioctls[] = { IOCTL_TYPE_KVM, IOCTL_TYPE_UFFD, IOCTL_TYPE_TTY };
	/* UNIX: vsock, the control socket; IP: user networking */
	static const int loop_sockets[] = { AF_UNIX, AF_INET, AF_INET6 };
	/* UNIX: a clone's control socket */
	static const int http_sockets[] = { AF_UNIX };
	int ret = rule_add_list(ctx, (struct call_list)CALLS(base_calls));

#ifdef SNAPVM_SANITIZE
	ret = ret ? ret : rule_add_list(ctx, (struct call_list)CALLS(sanitizer_calls));
#else
	(void)sanitizer_calls;
#endif
	switch (kind) {
	case SANDBOX_VCPU:
		ret = ret ? ret : rule_add_list(ctx, (struct call_list)CALLS(vcpu_calls));
		ret = ret ? ret
			  : seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
					     SCMP_A1(SCMP_CMP_EQ, TUNSETOFFLOAD));
		return ret ? ret : rule_add_ioctl(ctx, vcpu_ioctls, ARRAY_SIZE(vcpu_ioctls));
	case SANDBOX_PREFETCH:
		ret = ret ? ret : rule_add_list(ctx, (struct call_list)CALLS(prefetch_calls));
		/* and what the pager does */
		__attribute__((fallthrough));
	case SANDBOX_PAGER:
		ret = ret ? ret : rule_add_list(ctx, (struct call_list)CALLS(pager_calls));
		return ret ? ret : rule_add_ioctl(ctx, pager_ioctls, ARRAY_SIZE(pager_ioctls));
	case SANDBOX_STORE_WORKER:
		return ret ? ret : rule_add_list(ctx, (struct call_list)CALLS(store_worker_calls));
	case SANDBOX_HTTP:
		ret = ret ? ret : rule_add_list(ctx, (struct call_list)CALLS(http_calls));
		ret = ret ? ret : rule_add_sockets(ctx, http_sockets, ARRAY_SIZE(http_sockets));
		return ret ? ret : rule_add_threads(ctx);
	case SANDBOX_SUPERVISOR:
		ret = ret ? ret : rule_add_list(ctx, (struct call_list)CALLS(supervisor_calls));
		/* clone for fork too: the supervisor starts clones as processes */
		ret = ret ? ret : seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 0);
		ret = ret ? ret
			  : seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
		/* and all a clone's start-up needs: it inherits this filter */
		__attribute__((fallthrough));
	case SANDBOX_JAILED_STARTUP:
		ret = ret ? ret : rule_add_list(ctx, (struct call_list)CALLS(jail_calls));
		__attribute__((fallthrough));
	case SANDBOX_STARTUP:
		ret = ret ? ret : rule_add_list(ctx, (struct call_list)CALLS(startup_calls));
		__attribute__((fallthrough));
	case SANDBOX_LOOP:
		ret = ret ? ret : rule_add_list(ctx, (struct call_list)CALLS(loop_calls));
		ret = ret ? ret : rule_add_ioctl(ctx, loop_ioctls, ARRAY_SIZE(loop_ioctls));
		ret = ret ? ret : rule_add_sockets(ctx, loop_sockets, ARRAY_SIZE(loop_sockets));
		if (kind != SANDBOX_SUPERVISOR)
			ret = ret ? ret : rule_add_threads(ctx);
		return ret;
	case SANDBOX_NONE:
	case SANDBOX_KINDS:
		break;
	}
	return -EINVAL;
}
