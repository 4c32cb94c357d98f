/*
 * snapvm bench vsock: request/reply round trips between a host program and
 * the test guest over vsock ("ping" -> "PONG" on a connection made through
 * snapvm's Unix socket), with the same exchange over the serial console in
 * the same run as the baseline.
 */
#include "bench/bench.h"
#include "bench/bench_util.h"
#include "common/common.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define GUEST_PORT 1234
#define WARMUP	   50
#define TIMEOUT_MS 20000

struct vsock_options {
	unsigned runs;
	bool json;
	char kernel[4096];
};

/* Reads one line from a socket byte by byte (replies are a few bytes). */
static int socket_read_line(int fd, char *line, size_t size)
{
	size_t len = 0;

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		char c;

		if (poll(&pfd, 1, TIMEOUT_MS) != 1 || read(fd, &c, 1) != 1)
			return -EIO;
		if (c == '\n')
			break;
		if (len + 1 < size)
			line[len++] = c;
	}
	line[len] = '\0';
	return 0;
}

/* Firecracker's handshake: CONNECT <port>, answered by OK <host port>. */
static int vsock_connect(const char *path, int *out)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	char reply[64];
	int fd;

	if (strlen(path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	memcpy(addr.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    dprintf(fd, "CONNECT %d\n", GUEST_PORT) < 0 ||
	    socket_read_line(fd, reply, sizeof(reply)) || strncmp(reply, "OK ", 3)) {
		if (fd >= 0)
			close(fd);
		return -ECONNREFUSED;
	}
	*out = fd;
	return 0;
}

static int vsock_round_trips(int fd, unsigned count, double *us)
{
	char reply[16];

	for (unsigned i = 0; i < count; i++) {
		uint64_t start = time_now_ns();

		if (write_all(fd, "ping\n", 5) || socket_read_line(fd, reply, sizeof(reply)) ||
		    strcmp(reply, "PONG"))
			return -EIO;
		if (us)
			us[i] = (double)(time_now_ns() - start) / 1e3;
	}
	return 0;
}

static int console_round_trips(struct child *child, unsigned count, double *us)
{
	for (unsigned i = 0; i < count; i++) {
		uint64_t start = time_now_ns();
		int ret = child_send_line(child, "ping");

		if (!ret)
			ret = child_wait_line(child, "PONG", false, TIMEOUT_MS, NULL, 0);
		if (ret)
			return ret;
		us[i] = (double)(time_now_ns() - start) / 1e3;
	}
	return 0;
}

static void report(const struct vsock_options *o, double *vsock_us, double *console_us)
{
	double total = 0;

	for (unsigned i = 0; i < o->runs; i++)
		total += vsock_us[i];
	if (o->json) {
		printf("{\n  \"bench\": \"vsock\",\n  \"round_trips\": %u,\n"
		       "  \"vsock_round_trips_per_s\": %.0f,\n  \"vsock_us_median\": %.1f,\n"
		       "  \"vsock_us_p99\": %.1f,\n  \"console_us_median\": %.1f\n}\n",
		       o->runs, o->runs / (total / 1e6), stats_percentile(vsock_us, o->runs, 50),
		       stats_percentile(vsock_us, o->runs, 99),
		       stats_percentile(console_us, o->runs, 50));
		return;
	}
	printf("ping -> PONG round trips, host <-> guest, %u each (us)\n", o->runs);
	printf("%-8s %10s %10s %10s %10s %12s\n", "path", "median", "p90", "p99", "min", "trips/s");
	printf("%-8s %10.1f %10.1f %10.1f %10.1f %12.0f\n", "vsock",
	       stats_percentile(vsock_us, o->runs, 50), stats_percentile(vsock_us, o->runs, 90),
	       stats_percentile(vsock_us, o->runs, 99), stats_percentile(vsock_us, o->runs, 0),
	       o->runs / (total / 1e6));
	total = 0;
	for (unsigned i = 0; i < o->runs; i++)
		total += console_us[i];
	printf("%-8s %10.1f %10.1f %10.1f %10.1f %12.0f\n", "serial",
	       stats_percentile(console_us, o->runs, 50), stats_percentile(console_us, o->runs, 90),
	       stats_percentile(console_us, o->runs, 99), stats_percentile(console_us, o->runs, 0),
	       o->runs / (total / 1e6));
}

static void vsock_help(void)
{
	printf("usage: snapvm bench vsock [--runs N] [--json] [--kernel ELF]\n\n"
	       "Boots the test guest with a vsock device, connects to it through the\n"
	       "Unix socket (CONNECT <port>) and times N ping/PONG round trips\n"
	       "(default 2000), then the same over the serial console.\n");
}

static int vsock_parse(int argc, char **argv, struct vsock_options *o)
{
	static const struct option longopts[] = {
		{ "runs", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "kernel", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const struct bench_cli cli = { .name = "vsock",
				       .options = longopts,
				       .help = vsock_help,
				       .json = &o->json,
				       .kernel = o->kernel,
				       .kernel_size = sizeof(o->kernel),
				       .runs = &o->runs,
				       .max_runs = 1000000 };

	*o = (struct vsock_options){ .runs = 2000 };
	return bench_parse(&cli, argc, argv, o);
}

static int vsock_measure(const struct vsock_options *o, struct child *child, const char *path)
{
	double *vsock_us = calloc(o->runs, sizeof(double));
	double *console_us = calloc(o->runs, sizeof(double));
	int fd = -1, ret = vsock_us && console_us ? 0 : -ENOMEM;

	if (!ret)
		ret = child_send_line(child, "vsock listen 1234");
	if (!ret)
		ret = child_wait_line(child, "OK", false, TIMEOUT_MS, NULL, 0);
	if (!ret)
		ret = vsock_connect(path, &fd);
	if (!ret)
		ret = vsock_round_trips(fd, WARMUP, NULL);
	if (!ret)
		ret = vsock_round_trips(fd, o->runs, vsock_us);
	if (!ret)
		ret = console_round_trips(child, o->runs, console_us);
	if (!ret)
		report(o, vsock_us, console_us);
	if (fd >= 0)
		close(fd);
	free(vsock_us);
	free(console_us);
	return ret;
}

int bench_vsock_main(int argc, char **argv)
{
	struct vsock_options o;
	char dir[] = "/tmp/snapvm-bench-vsock-XXXXXX", path[128], vsock_arg[160];
	struct child child;
	int ret = vsock_parse(argc, argv, &o);

	if (ret)
		return ret < 0 ? EXIT_OK : ret;
	if (!mkdtemp(dir)) {
		perror("snapvm bench vsock: mkdtemp");
		return EXIT_RUNTIME;
	}
	snprintf(path, sizeof(path), "%s/v.sock", dir);
	snprintf(vsock_arg, sizeof(vsock_arg), "3,%s", path);
	ret = child_spawn((char *[]){ (char *)bench_self_path(), "run", "--kernel", o.kernel,
				      "--vsock", vsock_arg, NULL },
			  false, &child);
	if (!ret)
		ret = child_wait_line(&child, "READY", false, TIMEOUT_MS, NULL, 0);
	if (!ret)
		ret = vsock_measure(&o, &child, path);
	if (ret)
		fprintf(stderr, "snapvm bench vsock: %s\n", strerror(-ret));
	if (child.pid > 0 && !ret) {
		child_send_line(&child, "exit 0");
		child_finish(&child, TIMEOUT_MS);
	} else if (child.pid > 0) {
		child_kill(&child);
	}
	rmdir(dir);
	return ret ? EXIT_RUNTIME : EXIT_OK;
}
