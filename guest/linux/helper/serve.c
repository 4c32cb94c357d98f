/*
 * serve: the Linux guest as a serverless function. It initializes (fills
 * memory with a pattern if asked, starts a busy loop on each CPU if asked),
 * prints READY, writes the ready code (snapvm --snapshot-on-ready snapshots
 * the VM right there), and from then on answers one-line requests, each
 * with one line, on the console (stdin/stdout) and on every connection to
 * its vsock port. A clone restored from the snapshot wakes up in the same
 * loop, so its first request is its first work.
 *
 * Requests: ping, cpus, oncpu N, klog WORD, genid, time, memcheck,
 * corrupt, exit (README.md, "The Linux guest").
 */
#define _GNU_SOURCE /* sched_setaffinity, strcasestr, accept4 */
#include "helper.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/klog.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

#define MAX_PEERS 9 /* the console and 8 vsock connections */
#define LINE_MAX_ 256

struct peer {
	int in, out; /* the console reads stdin and writes stdout; a socket is both */
	size_t len;
	char line[LINE_MAX_];
};

/* oncpu N: a loop pinned to CPU N finishes, so that CPU runs (after a restore, say). */
static void request_oncpu(const char *arg, char *reply, size_t size)
{
	int cpu = atoi(arg), status = 1;
	pid_t pid = fork();

	if (pid == 0) {
		cpu_set_t set;
		volatile unsigned long i;

		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (cpu < 0 || cpu >= CPU_SETSIZE || sched_setaffinity(0, sizeof(set), &set) < 0)
			_exit(1);
		for (i = 0; i < 1000000; i++)
			;
		_exit(sched_getcpu() == cpu ? 0 : 1);
	}
	if (pid > 0)
		waitpid(pid, &status, 0);
	snprintf(reply, size, "%s cpu %d", status == 0 ? "OK" : "ERR", cpu);
}

/* klog WORD: the last 3 kernel log lines that mention WORD, joined by '|'. */
static void request_klog(const char *word, char *reply, size_t size)
{
	static char log[1 << 17];
	const char *last[3] = { NULL };
	int n = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, log, sizeof(log) - 1);
	size_t used;

	if (n < 0) {
		snprintf(reply, size, "ERR klog: %s", strerror(errno));
		return;
	}
	log[n] = '\0';
	for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n")) {
		if (line[0] == '<' && strchr(line, '>')) /* the level, as "<6>" */
			line = strchr(line, '>') + 1;
		if (!*word || !strcasestr(line, word))
			continue;
		last[0] = last[1];
		last[1] = last[2];
		last[2] = line;
	}
	used = (size_t)snprintf(reply, size, "OK ");
	for (int i = 0; i < 3 && used < size; i++)
		if (last[i])
			used += (size_t)snprintf(reply + used, size - used, "%s|", last[i]);
}

/* The reply to LINE in REPLY; returns 1 when the request is "exit". */
static int request_answer(char *line, char *reply, size_t size)
{
	char *arg = strchr(line, ' ');
	char hex[33];

	if (arg)
		*arg++ = '\0';
	else
		arg = "";
	if (!strcmp(line, "ping")) {
		snprintf(reply, size, "PONG");
	} else if (!strcmp(line, "cpus")) {
		snprintf(reply, size, "CPUS %ld", sysconf(_SC_NPROCESSORS_ONLN));
	} else if (!strcmp(line, "oncpu")) {
		request_oncpu(arg, reply, size);
	} else if (!strcmp(line, "klog")) {
		request_klog(arg, reply, size);
	} else if (!strcmp(line, "genid")) {
		if (ctl_generation(hex) < 0)
			snprintf(reply, size, "ERR genid");
		else
			snprintf(reply, size, "GENID %s", hex);
	} else if (!strcmp(line, "time")) {
		snprintf(reply, size, "TIME %lld", (long long)time(NULL));
	} else if (!strcmp(line, "memcheck")) {
		memory_check(reply, size);
	} else if (!strcmp(line, "corrupt")) {
		memory_corrupt(reply, size);
	} else if (!strcmp(line, "exit")) {
		return 1;
	} else {
		snprintf(reply, size, "ERR unknown request");
	}
	return 0;
}

/* Handles the complete lines in PEER's buffer; 1 after "exit". */
static int peer_lines(struct peer *peer)
{
	char *newline, reply[LINE_MAX_ + 1024];

	while ((newline = memchr(peer->line, '\n', peer->len))) {
		size_t used = (size_t)(newline - peer->line) + 1;

		*newline = '\0';
		if (newline > peer->line && newline[-1] == '\r')
			newline[-1] = '\0';
		if (peer->line[0]) {
			if (request_answer(peer->line, reply, sizeof(reply) - 1))
				return 1;
			strcat(reply, "\n");
			write_all(peer->out, reply, strlen(reply));
		}
		memmove(peer->line, peer->line + used, peer->len - used);
		peer->len -= used;
	}
	if (peer->len == sizeof(peer->line)) /* a line too long to be a request */
		peer->len = 0;
	return 0;
}

/* Reads from PEER; -1 when it is gone, 1 after "exit", else 0. */
static int peer_read(struct peer *peer)
{
	ssize_t n = read(peer->in, peer->line + peer->len, sizeof(peer->line) - peer->len);

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n <= 0)
		return -1;
	peer->len += (size_t)n;
	return peer_lines(peer);
}

static int vsock_listener(unsigned port)
{
	struct sockaddr_vm addr = { .svm_family = AF_VSOCK,
				    .svm_cid = VMADDR_CID_ANY,
				    .svm_port = port };
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 8) < 0) {
		perror("snapvm-helper serve: vsock");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* A busy loop on each CPU, at the lowest priority, so that requests still run. */
static void busy_loops(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	for (long cpu = 0; cpu < cpus && cpu < CPU_SETSIZE; cpu++) {
		if (fork() != 0)
			continue;
		cpu_set_t set;
		volatile unsigned long spins = 0;

		CPU_ZERO(&set);
		CPU_SET((int)cpu, &set);
		sched_setaffinity(0, sizeof(set), &set);
		if (nice(19) < 0)
			perror("snapvm-helper: nice");
		for (;;)
			spins++;
	}
}

/* Serves the console (peers[0]) and vsock connections until "exit" or console EOF. */
static int serve_loop(int listener)
{
	struct peer peers[MAX_PEERS] = { { .in = 0, .out = 1 } };
	struct pollfd fds[MAX_PEERS + 1];
	int count = 1;

	for (;;) {
		for (int i = 0; i < count; i++)
			fds[i] = (struct pollfd){ .fd = peers[i].in, .events = POLLIN };
		fds[count] = (struct pollfd){ .fd = listener, .events = POLLIN };
		if (poll(fds, (nfds_t)count + 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		for (int i = count - 1; i >= 0; i--) {
			int r = fds[i].revents ? peer_read(&peers[i]) : 0;

			if (r == 1 || (r < 0 && i == 0))
				return r == 1 ? 0 : 1;
			if (r < 0) { /* a vsock peer went away, or the VM was restored */
				close(peers[i].in);
				peers[i] = peers[--count];
			}
		}
		if (listener >= 0 && (fds[count].revents & POLLIN)) {
			int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);

			if (fd >= 0 && count < MAX_PEERS)
				peers[count++] = (struct peer){ .in = fd, .out = fd };
			else if (fd >= 0)
				close(fd);
		}
	}
}

int serve_main(int argc, char **argv)
{
	unsigned fill = 0, port = HELPER_VSOCK_PORT;
	uint64_t seed = 1;
	int busy = 0, listener, status;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--busy"))
			busy = 1;
		else if (!strcmp(argv[i], "--fill") && i + 1 < argc)
			fill = (unsigned)strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			seed = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--vsock") && i + 1 < argc)
			port = (unsigned)strtoul(argv[++i], NULL, 0);
		else
			return 2;
	}
	if (fill && memory_fill(fill, seed) < 0)
		return 1;
	if (busy)
		busy_loops();
	/* without a vsock device the console alone is served */
	listener = vsock_listener(port);
	write_all(1, "READY\n", 6);
	/*
	 * The UART sends from its interrupt, which may be another CPU's: with 2
	 * vCPUs the snapshot caught READY still queued, and every clone printed
	 * it first. Ready once it is out.
	 */
	tcdrain(1);
	if (ctl_ready(1) < 0)
		return 1;
	status = serve_loop(listener);
	if (status == 0) { /* "exit": the VM ends with status 0 (reboot=k, through the i8042) */
		sync();
		reboot(RB_AUTOBOOT);
	}
	return status;
}
