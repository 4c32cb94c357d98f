#include "bench/bench_util.h"
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int child_spawn(char *const argv[], bool keep_stderr, struct child *child)
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
		if (!keep_stderr) {
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

	child_close_fds(child);
	while (waitpid(child->pid, &status, WNOHANG) == 0) {
		if (time_now_ns() >= deadline) {
			child_kill(child);
			return -1;
		}
		usleep(1000);
	}
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

bool bench_qemu_available(void)
{
	return system("command -v qemu-system-x86_64 >/dev/null 2>&1") == 0;
}

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
		"microvm,x-option-roms=off,rtc=off,pit=off,pic=off",
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
