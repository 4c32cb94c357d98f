#include "bench/bench_util.h"
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

int child_spawn(char *const argv[], enum child_stderr err, struct child *child)
{
	int in[2], out[2];
	pid_t pid;

	if (pipe2(in, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(out, O_CLOEXEC) < 0) {
		close(in[0]);
		close(in[1]);
		return -errno;
	}
	pid = fork();
	if (pid < 0) {
		int ret = -errno;

		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		return ret;
	}
	if (pid == 0) {
		dup2(in[0], STDIN_FILENO);
		dup2(out[1], STDOUT_FILENO);
		if (err == CHILD_STDERR_MERGE) {
			dup2(out[1], STDERR_FILENO);
		} else if (err == CHILD_STDERR_NULL) {
			int null = open("/dev/null", O_WRONLY);

			if (null >= 0)
				dup2(null, STDERR_FILENO);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	*child = (struct child){ .pid = pid, .in_fd = in[1], .out_fd = out[0] };
	return 0;
}

/* Takes the first complete line out of the buffer, if there is one. */
static bool child_take_line(struct child *child, char *line, size_t size)
{
	char *nl = memchr(child->buf, '\n', child->len);
	size_t n;

	if (!nl)
		return false;
	n = (size_t)(nl - child->buf);
	snprintf(line, size, "%.*s", (int)n, child->buf);
	memmove(child->buf, nl + 1, child->len - n - 1);
	child->len -= n + 1;
	return true;
}

int child_wait_line(struct child *child, const char *want, bool prefix, int timeout_ms, char *got,
		    size_t got_size)
{
	uint64_t deadline = time_now_ns() + (uint64_t)timeout_ms * 1000000ULL;
	char line[sizeof(child->buf)];

	for (;;) {
		struct pollfd pfd = { .fd = child->out_fd, .events = POLLIN };
		uint64_t now;
		ssize_t n;

		while (child_take_line(child, line, sizeof(line))) {
			if (prefix ? !strncmp(line, want, strlen(want)) : !strcmp(line, want)) {
				if (got)
					snprintf(got, got_size, "%s", line);
				return 0;
			}
		}
		now = time_now_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		if (child->len == sizeof(child->buf))
			child->len = 0; /* a line longer than the buffer: drop it */
		if (poll(&pfd, 1, (int)((deadline - now) / 1000000ULL) + 1) < 0 && errno != EINTR)
			return -errno;
		if (!(pfd.revents & (POLLIN | POLLHUP)))
			continue;
		n = read(child->out_fd, child->buf + child->len, sizeof(child->buf) - child->len);
		if (n <= 0)
			return -EPIPE;
		child->len += (size_t)n;
	}
}

int child_send_line(struct child *child, const char *line)
{
	int ret = write_all(child->in_fd, line, strlen(line));

	return ret ? ret : write_all(child->in_fd, "\n", 1);
}

static void child_close_fds(struct child *child)
{
	if (child->in_fd >= 0)
		close(child->in_fd);
	if (child->out_fd >= 0)
		close(child->out_fd);
	child->in_fd = child->out_fd = -1;
}

int child_finish(struct child *child, int timeout_ms)
{
	uint64_t deadline = time_now_ns() + (uint64_t)timeout_ms * 1000000ULL;
	int status;

	/*
	 * EOF on its stdin asks the child to stop; what it still prints is read
	 * and dropped, so that it never dies of SIGPIPE on its way out.
	 */
	if (child->in_fd >= 0)
		close(child->in_fd);
	child->in_fd = -1;
	while (waitpid(child->pid, &status, WNOHANG) == 0) {
		struct pollfd out = { .fd = child->out_fd, .events = POLLIN };
		char discard[4096];

		if (time_now_ns() >= deadline) {
			child_kill(child);
			return -1;
		}
		if (poll(&out, child->out_fd >= 0, 1) > 0 &&
		    read(child->out_fd, discard, sizeof(discard)) == 0) {
			close(child->out_fd); /* EOF: nothing more to drain */
			child->out_fd = -1;
		}
	}
	child_close_fds(child);
	child->pid = -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void child_kill(struct child *child)
{
	child_close_fds(child);
	if (child->pid > 0) {
		kill(child->pid, SIGKILL);
		waitpid(child->pid, NULL, 0);
	}
	child->pid = -1;
}

const char *bench_self_path(void)
{
	static char path[PATH_MAX];

	if (!path[0]) {
		ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);

		path[n > 0 ? n : 0] = '\0';
	}
	return path;
}

int bench_guest_path(char *path, size_t size)
{
	const char *self = bench_self_path();
	const char *slash = strrchr(self, '/');

	if (!slash)
		return -ENOENT;
	snprintf(path, size, "%.*s/guest/snapguest.elf", (int)(slash - self), self);
	return access(path, R_OK) == 0 ? 0 : -ENOENT;
}

int bench_usage_error(const char *bench, const char *format, ...)
{
	va_list args;

	fprintf(stderr, "snapvm bench %s: ", bench);
	va_start(args, format);
	vfprintf(stderr, format, args);
	va_end(args);
	fprintf(stderr, "\n");
	return EXIT_USAGE;
}

static int bench_runs_parse(const struct bench_cli *cli, const char *value)
{
	uint64_t n;

	if (parse_u64(value, &n) || n < 1 || n > cli->max_runs)
		return bench_usage_error(cli->name, "--runs: '%s' is not 1-%u", value,
					 cli->max_runs);
	*cli->runs = (unsigned)n;
	return 0;
}

int bench_parse(const struct bench_cli *cli, int argc, char **argv, void *ctx)
{
	int opt, ret;

	/* getopt keeps its state in globals: start afresh, and word the errors here */
	optind = 0;
	opterr = 0;
	/* the leading ':' tells a missing value (':') apart from an unknown option ('?') */
	while ((opt = getopt_long(argc, argv, ":h", cli->options, NULL)) != -1) {
		if (opt == 'h') {
			cli->help();
			return -1;
		}
		if (opt == ':')
			return bench_usage_error(cli->name, "%s needs a value", argv[optind - 1]);
		if (opt == '?')
			return bench_usage_error(cli->name, "unknown option '%s' (see --help)",
						 argv[optind - 1]);
		if (opt == 'j' && cli->json) {
			*cli->json = true;
		} else if (opt == 'k' && cli->kernel) {
			snprintf(cli->kernel, cli->kernel_size, "%s", optarg);
		} else if (opt == 'r' && cli->runs) {
			ret = bench_runs_parse(cli, optarg);
			if (ret)
				return ret;
		} else if (opt == 'q' && cli->vs_qemu) {
			*cli->vs_qemu = true;
		} else {
			ret = cli->option ? cli->option(opt, optarg, ctx) : EXIT_USAGE;
			if (ret)
				return ret;
		}
	}
	if (optind < argc)
		return bench_usage_error(cli->name, "unexpected argument '%s' (see --help)",
					 argv[optind]);
	if (cli->kernel && !cli->kernel[0] && bench_guest_path(cli->kernel, cli->kernel_size))
		return bench_usage_error(cli->name, "the test guest is not built next to snapvm; "
						    "pass --kernel");
	if (cli->vs_qemu && *cli->vs_qemu && !bench_qemu_available())
		return bench_usage_error(cli->name, "--vs-qemu needs qemu-system-x86_64 "
						    "(Debian package qemu-system-x86)");
	return 0;
}

bool bench_qemu_available(void)
{
	return system("command -v qemu-system-x86_64 >/dev/null 2>&1") == 0;
}

/* QEMU's microvm machine, with the flags that work on PVM hosts (HOST.md). */
#define QEMU_MACHINE "microvm,x-option-roms=off,rtc=off,pit=off,pic=off"

int bench_qemu_argv(char **argv, size_t max, const char *kernel, const char *append,
		    const char *mem)
{
	/* -cpu host aborts on PVM hosts (MSR 0x10a); HOST.md has the flags that work */
	const char *args[] = {
		"qemu-system-x86_64",
		"-enable-kvm",
		"-cpu",
		"host,-arch-capabilities",
		"-M",
		QEMU_MACHINE,
		"-serial",
		"stdio",
		"-nodefaults",
		"-no-user-config",
		"-nographic",
		"-display",
		"none",
		"-m",
		mem,
		"-kernel",
		kernel,
		"-append",
		append,
	};
	size_t n = 0;

	for (; n < ARRAY_SIZE(args) && n + 1 < max; n++)
		argv[n] = (char *)args[n];
	argv[n] = NULL;
	return (int)n;
}

int bench_qemu_argv_linux(char **argv, int n, size_t max, const char *initrd, bool acpi)
{
	for (int i = 0; i + 1 < n && !acpi; i++)
		if (!strcmp(argv[i], "-M"))
			argv[i + 1] = QEMU_MACHINE ",acpi=off";
	if (initrd && (size_t)n + 3 <= max) {
		argv[n++] = "-initrd";
		argv[n++] = (char *)initrd;
		argv[n] = NULL;
	}
	return n;
}

static bool cpuinfo_flags_have(const char *line, const char *flag)
{
	size_t len = strlen(flag);

	for (const char *p = strstr(line, flag); p; p = strstr(p + 1, flag))
		if (p[-1] == ' ' && (p[len] == ' ' || p[len] == '\n' || p[len] == '\0'))
			return true;
	return false;
}

bool bench_host_has_hardware_virtualization(void)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[8192];
	bool flag = false;

	while (f && !flag && fgets(line, sizeof(line), f))
		flag = !strncmp(line, "flags", 5) &&
		       (cpuinfo_flags_have(line, "vmx") || cpuinfo_flags_have(line, "svm"));
	if (f)
		fclose(f);
	return flag &&
	       (!access("/sys/module/kvm_intel", F_OK) || !access("/sys/module/kvm_amd", F_OK));
}

int bench_report_no_linux(const char *bench, bool json)
{
	const char *why = "Linux cannot reach its init on this host: its KVM has no hardware "
			  "virtualization (PVM emulates guest ring-0 code), so there is nothing to "
			  "measure; run it on a host with VT-x or AMD-V";

	if (json)
		printf("{\n  \"bench\": \"%s\",\n  \"kernel\": \"linux\",\n"
		       "  \"skipped\": \"%s\"\n}\n",
		       bench, why);
	else
		printf("snapvm bench %s: %s\n", bench, why);
	return EXIT_OK;
}

struct qmp {
	int fd;
	char buf[8192];
	size_t len;
	char line[8192]; /* the last line qmp_wait_for matched */
	bool resumed;	 /* a RESUME event went by */
};

/* Reads QMP output until a line contains `want`; 0, -ETIMEDOUT or -EPIPE. */
static int qmp_wait_for(struct qmp *q, const char *want, uint64_t deadline)
{
	for (;;) {
		struct pollfd pfd = { .fd = q->fd, .events = POLLIN };
		uint64_t now = time_now_ns();
		ssize_t n;
		char *nl;

		while ((nl = memchr(q->buf, '\n', q->len))) {
			size_t line_len = (size_t)(nl - q->buf);

			snprintf(q->line, sizeof(q->line), "%.*s", (int)line_len, q->buf);
			q->len -= line_len + 1;
			memmove(q->buf, nl + 1, q->len);
			if (strstr(q->line, "\"RESUME\""))
				q->resumed = true;
			if (strstr(q->line, want))
				return 0;
		}
		if (now >= deadline)
			return -ETIMEDOUT;
		if (poll(&pfd, 1, (int)((deadline - now) / 1000000) + 1) <= 0)
			continue;
		if (q->len == sizeof(q->buf))
			q->len = 0; /* a line longer than the buffer: drop it */
		n = read(q->fd, q->buf + q->len, sizeof(q->buf) - q->len);
		if (n <= 0)
			return -EPIPE;
		q->len += (size_t)n;
	}
}

struct qmp *qemu_qmp_open(const char *socket_path, int timeout_ms)
{
	static const char negotiate[] = "{\"execute\": \"qmp_capabilities\"}\n";
	uint64_t deadline = time_now_ns() + (uint64_t)timeout_ms * 1000000ULL;
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct qmp *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (q->fd < 0 || path_format(addr.sun_path, sizeof(addr.sun_path), "%s", socket_path))
		goto fail;
	/* QEMU makes the socket while it starts: retry until it is there */
	while (connect(q->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		if (time_now_ns() >= deadline)
			goto fail;
		usleep(100);
	}
	if (qmp_wait_for(q, "\"QMP\"", deadline) ||
	    write_all(q->fd, negotiate, strlen(negotiate)) ||
	    qmp_wait_for(q, "\"return\"", deadline))
		goto fail;
	return q;
fail:
	qemu_qmp_close(q);
	return NULL;
}

int qemu_qmp_command(struct qmp *q, const char *command, char *reply, size_t size, int timeout_ms)
{
	uint64_t deadline = time_now_ns() + (uint64_t)timeout_ms * 1000000ULL;
	int ret = write_all(q->fd, command, strlen(command));

	if (!ret)
		ret = write_all(q->fd, "\n", 1);
	/* events may come first; the command's answer is a "return" or an "error" */
	while (!ret) {
		ret = qmp_wait_for(q, "", deadline);
		if (!ret && (strstr(q->line, "\"return\"") || strstr(q->line, "\"error\""))) {
			snprintf(reply, size, "%s", q->line);
			return strstr(q->line, "\"error\"") ? -EIO : 0;
		}
		if (!ret && strstr(q->line, "\"RESUME\""))
			q->resumed = true;
	}
	return ret;
}

int qemu_qmp_wait_running(struct qmp *q, int timeout_ms)
{
	uint64_t deadline = time_now_ns() + (uint64_t)timeout_ms * 1000000ULL;
	char reply[4096];
	int ret = qemu_qmp_command(q, "{\"execute\": \"query-status\"}", reply, sizeof(reply),
				   timeout_ms);

	if (ret || q->resumed || strstr(reply, "\"running\": true"))
		return ret;
	return qmp_wait_for(q, "\"RESUME\"", deadline);
}

void qemu_qmp_close(struct qmp *q)
{
	if (!q)
		return;
	if (q->fd >= 0)
		close(q->fd);
	free(q);
}

int bench_tmpdir(char *path, size_t size)
{
	const char *base = getenv("TMPDIR");

	if (path_format(path, size, "%s/snapvm-bench.XXXXXX", base && *base ? base : "/tmp"))
		return -ENAMETOOLONG;
	return mkdtemp(path) ? 0 : -errno;
}

void bench_tmpdir_remove(const char *path)
{
	char command[4200];

	/* only ever a directory bench_tmpdir made */
	if (strstr(path, "/snapvm-bench.") &&
	    snprintf(command, sizeof(command), "rm -rf '%s'", path) < (int)sizeof(command) &&
	    system(command) != 0)
		log_warn("cannot remove %s", path);
}

static int compare_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double stats_percentile(double *values, size_t n, double p)
{
	double rank;
	size_t lo;

	if (!n)
		return 0;
	qsort(values, n, sizeof(*values), compare_double);
	/* linear interpolation between the closest ranks */
	rank = p / 100.0 * (double)(n - 1);
	lo = (size_t)rank;
	if (lo + 1 >= n)
		return values[n - 1];
	return values[lo] + (rank - (double)lo) * (values[lo + 1] - values[lo]);
}

int bench_huge_cache_mount(const char *dir, char *path, size_t size)
{
	path_format(path, size, "%s/huge-cache", dir);
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mkdir(path, 0700) < 0 ||
	    mount("snapvm-bench", path, "tmpfs", 0, "huge=always,mode=0700") < 0) {
		int ret = -errno;

		path[0] = '\0';
		return ret;
	}
	return 0;
}

void bench_huge_cache_unmount(const char *path)
{
	if (path[0])
		umount2(path, MNT_DETACH);
}

double bench_json_number(const char *line, const char *key)
{
	char pattern[64];
	const char *at;

	snprintf(pattern, sizeof(pattern), "\"%s\": ", key);
	at = strstr(line, pattern);
	return at ? strtod(at + strlen(pattern), NULL) : __builtin_nan("");
}

int bench_original_start(const struct bench_guest *guest, const char *name, const char *store,
			 struct child *child, char *line, size_t line_size, int timeout_ms)
{
	char cmdline[64], *argv[20];
	int n = 0, ret;

	argv[n++] = (char *)bench_self_path();
	argv[n++] = "-v";
	argv[n++] = "run";
	argv[n++] = "--kernel";
	argv[n++] = (char *)guest->kernel;
	argv[n++] = "--mem";
	argv[n++] = (char *)guest->mem;
	if (guest->initrd) {
		argv[n++] = "--initrd";
		argv[n++] = (char *)guest->initrd;
	}
	if (guest->heap) {
		snprintf(cmdline, sizeof(cmdline), "heap=%s", guest->heap);
		argv[n++] = "--cmdline";
		argv[n++] = cmdline;
	}
	argv[n++] = "--snapshot-on-ready";
	argv[n++] = (char *)name;
	argv[n++] = "--resume";
	argv[n++] = "--store";
	argv[n++] = (char *)store;
	argv[n] = NULL;
	ret = child_spawn(argv, CHILD_STDERR_MERGE, child);
	if (!ret)
		ret = child_wait_line(child, "snapvm: snapshot ", true, timeout_ms, line,
				      line_size);
	if (ret && child->pid > 0)
		child_kill(child);
	return ret;
}
