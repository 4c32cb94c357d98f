/*
 * seccomp filters, one allow-list per kind of thread (sandbox_rules.c holds
 * the lists; README "seccomp" gives the reasons). Each thread installs its
 * own filter when it starts its work; a thread it creates inherits that
 * filter and may only narrow it, since the kernel applies every filter a
 * thread carries and takes the strictest answer. The process therefore first
 * takes the start-up filter (everything set-up needs, nothing a running VM
 * must never do: exec, ptrace, mount, ...), before any byte of a snapshot is
 * read; its threads then narrow it to their own lists.
 *
 * The filters are compiled to BPF at build time (sandbox_gen.c), so that
 * installing one is a single system call.
 *
 * A forbidden call is not executed: in "on" mode it raises SIGSYS
 * (SECCOMP_RET_TRAP), whose handler names the thread and the call on stderr
 * and ends the process at once with status 159 (128 + SIGSYS). The handler
 * cannot be replaced afterwards (rt_sigaction is not on a running thread's
 * list but the loop's), and a thread that blocked SIGSYS is killed by the
 * kernel instead. In "log" mode the kernel logs the call (audit type 1326,
 * in dmesg) and lets it run.
 */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/ucontext.h>
#include <unistd.h>

#include "common/common.h"
#include "sandbox_filters.h" /* generated: filters[kind][mode], syscall_names[] */

static enum sandbox_mode sandbox_mode = SANDBOX_OFF;
static __thread enum sandbox_thread sandbox_current = SANDBOX_NONE;

static const char *const thread_names[] = {
	[SANDBOX_NONE] = "new (its creator's filter)",
	[SANDBOX_STARTUP] = "start-up",
	[SANDBOX_LOOP] = "event loop",
	[SANDBOX_VCPU] = "vCPU",
	[SANDBOX_PAGER] = "pager",
	[SANDBOX_PREFETCH] = "prefetch",
	[SANDBOX_STORE_WORKER] = "store worker",
	[SANDBOX_HTTP] = "HTTP",
	[SANDBOX_SUPERVISOR] = "supervisor",
	[SANDBOX_JAILED_STARTUP] = "start-up (jailed)",
};

const char *sandbox_thread_name(enum sandbox_thread kind)
{
	return kind < ARRAY_SIZE(thread_names) ? thread_names[kind] : "?";
}

int sandbox_mode_parse(const char *text, enum sandbox_mode *mode)
{
	static const char *const names[] = {
		[SANDBOX_OFF] = "off", [SANDBOX_LOG] = "log", [SANDBOX_ON] = "on"
	};

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		if (!strcmp(text, names[i])) {
			*mode = (enum sandbox_mode)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *sandbox_mode_name(enum sandbox_mode mode)
{
	return mode == SANDBOX_ON ? "on" : mode == SANDBOX_LOG ? "log" : "off";
}

/* Writes the pieces to stderr with write(2) alone: called in a signal handler. */
static void write_pieces(const char *const *pieces, size_t count)
{
	for (size_t i = 0; i < count; i++)
		if (write(STDERR_FILENO, pieces[i], strlen(pieces[i])) < 0)
			return;
}

/* Formats value in base (10 or 16) at the end of buf; returns where it starts. */
static char *format_number(char *buf, size_t size, uint64_t value, unsigned base)
{
	char *p = buf + size;

	*--p = '\0';
	do
		*--p = "0123456789abcdef"[value % base];
	while (value /= base);
	if (base == 16) {
		*--p = 'x';
		*--p = '0';
	}
	return p;
}

static void sandbox_sigsys(int signal, siginfo_t *info, void *context)
{
	char number[24], request[24];
	int nr = info->si_syscall;
	const char *name = nr >= 0 && (size_t)nr < ARRAY_SIZE(syscall_names) && syscall_names[nr]
				   ? syscall_names[nr]
				   : "unknown";
	const char *detail = "";

	(void)signal;
#ifdef __x86_64__
	/* an ioctl is allowed by request: say which one it was */
	if (nr == SYS_ioctl)
		detail = format_number(
			request, sizeof(request),
			(uint64_t)((ucontext_t *)context)->uc_mcontext.gregs[REG_RSI], 16);
#else
	(void)context;
	(void)request;
#endif
	write_pieces((const char *const[]){ "snapvm: error: seccomp: the ",
					    sandbox_thread_name(sandbox_current),
					    " thread made the system call ", name, " (",
					    format_number(number, sizeof(number), (unsigned)nr, 10),
					    detail[0] ? ", request " : "", detail,
					    "), which its filter forbids; stopping\n" },
		     9);
	syscall(SYS_exit_group, 128 + SIGSYS);
}

int sandbox_mode_set(enum sandbox_mode mode)
{
	struct sigaction sa = { .sa_sigaction = sandbox_sigsys, .sa_flags = SA_SIGINFO };

	sandbox_mode = mode;
	if (mode != SANDBOX_ON)
		return 0;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL)) {
		log_error("seccomp: cannot install the SIGSYS handler: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

int sandbox_thread_enter(enum sandbox_thread kind)
{
	const struct sock_fprog *filter;

	if (sandbox_mode == SANDBOX_OFF)
		return 0;
	if (kind <= SANDBOX_NONE || (size_t)kind >= ARRAY_SIZE(filters))
		return -EINVAL;
	filter = &filters[kind][sandbox_mode == SANDBOX_ON ? 0 : 1];
	/* no_new_privs first: the kernel takes a filter from an unprivileged thread only so */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, filter)) {
		int error = errno;

		log_error("seccomp: cannot install the %s thread's filter: %s",
			  sandbox_thread_name(kind), strerror(error));
		return -error;
	}
	sandbox_current = kind;
	return 0;
}

enum sandbox_thread sandbox_thread_current(void)
{
	return sandbox_current;
}

long sandbox_syscall_number(const char *name)
{
	for (size_t nr = 0; nr < ARRAY_SIZE(syscall_names); nr++)
		if (syscall_names[nr] && !strcmp(syscall_names[nr], name))
			return (long)nr;
	return -1;
}
