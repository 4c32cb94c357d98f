/*
 * snapvm bench net: UDP request/reply between the host and the test guest
 * ("ping" -> "PONG", the guest's line protocol over UDP), over a TAP device
 * and over user networking (libslirp, hostfwd), with QEMU microvm on the same
 * backend in the same run. Two figures per case: the latency of one request
 * at a time, and packets per second with a window of requests in flight.
 *
 * The TAP device lives in a network namespace of the benchmark's own (it
 * unshares one, so nothing outside it is touched; that needs root); snapvm
 * and QEMU take turns on it. User networking forwards a loopback port.
 */
#include "bench/bench.h"
#include "bench/bench_util.h"
#include "common/common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define TIMEOUT_MS    20000
#define REPLY_MS      1000 /* a request without a reply by then is counted lost */
#define WARMUP	      50
#define TAP_NAME      "snapbench0"
#define TAP_HOST_ADDR "192.0.2.1"
#define TAP_GUEST     "192.0.2.2"
#define USER_GUEST    "10.0.2.15"
#define GUEST_PORT    7

struct net_options {
	unsigned requests;
	unsigned window;
	bool json;
	char kernel[4096];
};

enum vmm_kind { VMM_SNAPVM, VMM_QEMU };
enum backend_kind { BACKEND_TAP, BACKEND_USER };

struct net_result {
	bool measured;
	double us_median, us_p99, trips_per_s, packets_per_s;
	unsigned lost;
};

/* Sends "ping" and waits for "PONG"; the time in us, or a negative errno. */
static double round_trip(int fd)
{
	uint64_t start = time_now_ns();
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char reply[64];
	ssize_t n;

	if (send(fd, "ping\n", 5, 0) != 5)
		return -errno;
	if (poll(&pfd, 1, REPLY_MS) != 1)
		return -ETIMEDOUT;
	n = recv(fd, reply, sizeof(reply), 0);
	if (n != 5 || memcmp(reply, "PONG\n", 5))
		return -EIO;
	return (double)(time_now_ns() - start) / 1e3;
}

static int measure_latency(int fd, unsigned count, struct net_result *r)
{
	double *us = calloc(count, sizeof(double)), total = 0;

	if (!us)
		return -ENOMEM;
	for (unsigned i = 0; i < count; i++) {
		us[i] = round_trip(fd);
		if (us[i] < 0) {
			int ret = (int)us[i];

			free(us);
			return ret;
		}
		total += us[i];
	}
	r->trips_per_s = count / (total / 1e6);
	r->us_median = stats_percentile(us, count, 50);
	r->us_p99 = stats_percentile(us, count, 99);
	free(us);
	return 0;
}

/* `count` requests with up to `window` in flight; replies per second. */
static int measure_throughput(int fd, unsigned count, unsigned window, struct net_result *r)
{
	uint64_t start = time_now_ns();
	unsigned sent = 0, answered = 0;
	char reply[64];

	while (answered + r->lost < count) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };

		while (sent < count && sent - answered - r->lost < window) {
			if (send(fd, "ping\n", 5, 0) != 5)
				return -errno;
			sent++;
		}
		if (poll(&pfd, 1, REPLY_MS) != 1) {
			r->lost += sent - answered - r->lost; /* all in flight are given up */
			continue;
		}
		while (recv(fd, reply, sizeof(reply), MSG_DONTWAIT) > 0)
			answered++;
	}
	r->packets_per_s = answered / ((double)(time_now_ns() - start) / 1e9);
	return answered ? 0 : -ETIMEDOUT;
}

/* A UDP socket connected to the guest's port (through hostfwd for user networking). */
static int guest_socket(enum backend_kind backend, unsigned host_port)
{
	struct sockaddr_in to = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	inet_pton(AF_INET, backend == BACKEND_TAP ? TAP_GUEST : "127.0.0.1", &to.sin_addr);
	to.sin_port = htons((uint16_t)(backend == BACKEND_TAP ? GUEST_PORT : host_port));
	if (fd >= 0 && connect(fd, (struct sockaddr *)&to, sizeof(to)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A loopback UDP port nobody uses now. */
static unsigned free_udp_port(void)
{
	struct sockaddr_in addr = { .sin_family = AF_INET,
				    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(addr);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	unsigned port = 0;

	if (fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&addr, &len) == 0)
		port = ntohs(addr.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

struct vm_args {
	char cmdline[64], net[128], qemu_netdev[160];
	char *argv[48];
};

static void vm_args_build(const struct net_options *o, enum vmm_kind vmm, enum backend_kind backend,
			  unsigned port, struct vm_args *a)
{
	static const char qemu_machine[] = "microvm,x-option-roms=off,rtc=off,pit=off,pic=off,"
					   "ioapic2=off";
	bool tap = backend == BACKEND_TAP;
	int n = 0;

	snprintf(a->cmdline, sizeof(a->cmdline), "net=%s,udp=%d", tap ? TAP_GUEST : USER_GUEST,
		 GUEST_PORT);
	if (vmm == VMM_SNAPVM) {
		if (tap)
			snprintf(a->net, sizeof(a->net), "tap=%s", TAP_NAME);
		else
			snprintf(a->net, sizeof(a->net), "user,hostfwd=udp:127.0.0.1:%u-:%d", port,
				 GUEST_PORT);
		memcpy(a->argv,
		       (char *[]){ (char *)bench_self_path(), "run", "--kernel", (char *)o->kernel,
				   "--cmdline", a->cmdline, "--net", a->net, NULL },
		       9 * sizeof(char *));
		return;
	}
	n = bench_qemu_argv(a->argv, ARRAY_SIZE(a->argv) - 8, o->kernel, a->cmdline, "128M");
	for (int i = 0; i + 1 < n; i++) {
		if (!strcmp(a->argv[i], "-M"))
			a->argv[i + 1] =
				(char *)qemu_machine; /* IRQs 16-23, where the guest looks */
	}
	if (tap)
		snprintf(a->qemu_netdev, sizeof(a->qemu_netdev),
			 "tap,id=n0,ifname=" TAP_NAME ",script=no,downscript=no");
	else
		snprintf(a->qemu_netdev, sizeof(a->qemu_netdev),
			 "user,id=n0,hostfwd=udp:127.0.0.1:%u-:%d", port, GUEST_PORT);
	memcpy(a->argv + n,
	       (char *[]){ "-global", "virtio-mmio.force-legacy=false", "-netdev", a->qemu_netdev,
			   "-device", "virtio-net-device,netdev=n0,mac=52:54:00:12:34:56", NULL },
	       7 * sizeof(char *));
}

/* Boots one VM on one backend, measures, stops it. */
static int net_case(const struct net_options *o, enum vmm_kind vmm, enum backend_kind backend,
		    struct net_result *r)
{
	unsigned port = backend == BACKEND_USER ? free_udp_port() : 0;
	struct vm_args a;
	struct child child = { .pid = -1 };
	int fd = -1, ret;

	vm_args_build(o, vmm, backend, port, &a);
	ret = child_spawn(a.argv, CHILD_STDERR_KEEP, &child);
	if (!ret)
		ret = child_wait_line(&child, "READY", false, TIMEOUT_MS, NULL, 0);
	fd = ret ? -1 : guest_socket(backend, port);
	if (!ret && fd < 0)
		ret = -errno;
	for (unsigned i = 0; !ret && i < WARMUP; i++) {
		double us = round_trip(fd);

		ret = us == -ETIMEDOUT && i < 5 ? 0 : us < 0 ? (int)us : 0; /* ARP comes first */
	}
	if (!ret)
		ret = measure_latency(fd, o->requests, r);
	if (!ret)
		ret = measure_throughput(fd, o->requests, o->window, r);
	r->measured = !ret;
	if (fd >= 0)
		close(fd);
	if (child.pid > 0) {
		if (vmm == VMM_SNAPVM && !ret) {
			child_send_line(&child, "exit 0");
			child_finish(&child, TIMEOUT_MS);
		} else {
			child_kill(&child);
		}
	}
	return ret;
}

/*
 * A network namespace of our own with loopback up and the TAP device, the
 * host side at 192.0.2.1/24; the VMs started from here share it.
 */
static int net_private_namespace(void)
{
	if (unshare(CLONE_NEWNET) < 0)
		return -errno;
	if (system("ip link set lo up && ip tuntap add mode tap name " TAP_NAME
		   " && ip addr add " TAP_HOST_ADDR "/24 dev " TAP_NAME " && ip link set " TAP_NAME
		   " up") != 0)
		return -EIO;
	return 0;
}

static const char *const vmm_names[] = { "snapvm", "qemu" };
static const char *const backend_names[] = { "tap", "user" };

static void report_json_case(const struct net_result *r)
{
	if (!r->measured) {
		printf("null");
		return;
	}
	printf("{ \"us_median\": %.1f, \"us_p99\": %.1f, \"round_trips_per_s\": %.0f, "
	       "\"packets_per_s\": %.0f, \"lost\": %u }",
	       r->us_median, r->us_p99, r->trips_per_s, r->packets_per_s, r->lost);
}

static void report(const struct net_options *o, struct net_result r[2][2])
{
	if (o->json) {
		printf("{\n  \"bench\": \"net\",\n  \"requests\": %u,\n  \"window\": %u",
		       o->requests, o->window);
		for (int b = 0; b < 2; b++) {
			for (int v = 0; v < 2; v++) {
				printf(",\n  \"%s_%s\": ", backend_names[b], vmm_names[v]);
				report_json_case(&r[b][v]);
			}
		}
		printf("\n}\n");
		return;
	}
	printf("UDP ping -> PONG, host <-> test guest, %u requests per case\n", o->requests);
	printf("%-6s %-7s %10s %10s %10s %14s %6s\n", "net", "vmm", "median_us", "p99_us",
	       "trips/s", "packets/s", "lost");
	for (int b = 0; b < 2; b++) {
		for (int v = 0; v < 2; v++) {
			const struct net_result *c = &r[b][v];

			if (!c->measured) {
				printf("%-6s %-7s %10s\n", backend_names[b], vmm_names[v],
				       "not measured");
				continue;
			}
			printf("%-6s %-7s %10.1f %10.1f %10.0f %14.0f %6u\n", backend_names[b],
			       vmm_names[v], c->us_median, c->us_p99, c->trips_per_s,
			       c->packets_per_s, c->lost);
		}
	}
	printf("packets/s: %u requests in flight at a time\n", o->window);
}

static void net_help(void)
{
	printf("usage: snapvm bench net [--requests N] [--window W] [--json] "
	       "[--kernel ELF]\n\n"
	       "Boots the test guest with a network device and times UDP ping/PONG\n"
	       "requests from the host: N one at a time (latency, default 2000), then\n"
	       "N with W in flight (packets/s, default 8, at most 14: the guest's 16\n"
	       "rx buffers). Over a TAP device in a network namespace of its own\n"
	       "(needs root) and over user networking's hostfwd, each beside QEMU\n"
	       "microvm on the same backend.\n");
}

static int net_option(int opt, const char *value, void *ctx)
{
	struct net_options *o = ctx;
	uint64_t n;

	switch (opt) {
	case 'r':
	case 'w':
		if (parse_u64(value, &n) || n < 1 || n > (opt == 'r' ? 1000000 : 14))
			return bench_usage_error("net", "%s: '%s' is out of range",
						 opt == 'r' ? "--requests" : "--window", value);
		*(opt == 'r' ? &o->requests : &o->window) = (unsigned)n;
		return 0;
	default:
		return EXIT_USAGE;
	}
}

static int net_parse(int argc, char **argv, struct net_options *o)
{
	static const struct option longopts[] = {
		{ "requests", required_argument, NULL, 'r' },
		{ "window", required_argument, NULL, 'w' },
		{ "json", no_argument, NULL, 'j' },
		{ "kernel", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const struct bench_cli cli = { .name = "net",
				       .options = longopts,
				       .option = net_option,
				       .help = net_help,
				       .json = &o->json,
				       .kernel = o->kernel,
				       .kernel_size = sizeof(o->kernel) };

	*o = (struct net_options){ .requests = 2000, .window = 8 };
	return bench_parse(&cli, argc, argv, o);
}

int bench_net_main(int argc, char **argv)
{
	struct net_result r[2][2] = { 0 };
	struct net_options o;
	bool qemu = bench_qemu_available();
	int ret = net_parse(argc, argv, &o), failed = 0;

	if (ret)
		return ret < 0 ? EXIT_OK : ret;
	ret = net_private_namespace();
	if (ret)
		fprintf(stderr,
			"snapvm bench net: no TAP case: cannot make a network namespace "
			"with a TAP device (%s; it needs root)\n",
			strerror(-ret));
	if (!qemu)
		fprintf(stderr, "snapvm bench net: qemu-system-x86_64 is not installed: no "
				"QEMU column\n");
	for (int b = ret ? BACKEND_USER : BACKEND_TAP; b <= BACKEND_USER; b++) {
		for (int v = VMM_SNAPVM; v <= (qemu ? VMM_QEMU : VMM_SNAPVM); v++) {
			int err = net_case(&o, v, b, &r[b][v]);

			if (err) {
				fprintf(stderr, "snapvm bench net: %s on %s: %s\n", vmm_names[v],
					backend_names[b], strerror(-err));
				failed++;
			}
		}
	}
	report(&o, r);
	return failed ? EXIT_RUNTIME : EXIT_OK;
}
