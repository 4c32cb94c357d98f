/*
 * snapvm bench serve: invocations per second and latency through the HTTP
 * API (snapvm serve on a Unix socket, N clients on keep-alive connections),
 * beside the same loop driven through `snapvm invoke` processes (N clients,
 * each starting the next process when its last one has exited, as a shell
 * loop would), at 1, 8 and 64 clients, in one run. Every reply is checked.
 */
#include "bench/bench.h"
#include "bench/bench_util.h"
#include "bench/bench_serve.h"
#include "common/common.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define LEVELS_MAX    8
#define IO_TIMEOUT_MS 60000
#define REQUEST_BODY  "{\"request\": \"ping\"}"

struct serve_options {
	unsigned levels[LEVELS_MAX];
	unsigned level_count;
	unsigned requests; /* per level and path */
	bool json;
	bool jail;	     /* --jail: serve --jail, invoke --jail */
	const char *seccomp; /* --seccomp MODE for serve and invoke */
	char guest[4096];
	/* --jail-cost: the jail's cost through serve, cold and warm (bench_serve_jail.c) */
	struct serve_jail_options jail_cost;
};

/* One measured loop: latencies in ms, one per request, and its wall time. */
struct run {
	double *ms, *inside_ms; /* inside_ms: restore start to reply, in the clone */
	unsigned next, failures;
	uint64_t wall_ns;
	pthread_mutex_t lock;
	const char *sock, *store;
	const char *jail;    /* the invoke loop's --jail DIR, or NULL */
	const char *seccomp; /* the invoke loop's --seccomp */
	char error[256];
};

struct result {
	unsigned clients;
	double api_per_s, api_p50, api_p99, inside_p50;
	double invoke_per_s, invoke_p50, invoke_p99;
};

static void serve_bench_help(void)
{
	printf("usage: snapvm bench serve [--concurrency N[,N...]] [--requests N] [--json]\n"
	       "                          [--kernel ELF] [--jail] [--seccomp MODE]\n"
	       "       snapvm bench serve --jail-cost [--requests N] [--warm N] [--pause-ms MS]\n"
	       "                          [--heap SIZE] [--request LINE] [--json]\n\n"
	       "Snapshots the test guest, starts snapvm serve on a Unix socket, and times\n"
	       "POST /snapshots/NAME/invoke {\"request\": \"ping\"} from N concurrent clients\n"
	       "(keep-alive connections), then the same number of `snapvm invoke` processes\n"
	       "run by N concurrent loops. Prints invocations/s, p50 and p99 latency for both,\n"
	       "and the clone's own restore-to-reply time.\n\n"
	       "  --concurrency N    client counts (default 1,8,64)\n"
	       "  --requests N       invocations per count and path (default 200)\n"
	       "  --json             one JSON object\n"
	       "  --kernel ELF       the guest (default: the test guest beside snapvm)\n"
	       "  --jail             jail every clone: snapvm serve --jail, snapvm invoke\n"
	       "                     --jail (README.md, \"Jailer\"; needs root)\n"
	       "  --seccomp MODE     serve's and the invokes' --seccomp (default on; off\n"
	       "                     shows what the filters cost)\n"
	       "  --jail-cost        instead: one client, the jail off and on side by side,\n"
	       "                     cold (a process per invocation) and warm (serve --warm),\n"
	       "                     four daemons taking requests in turn (needs root)\n"
	       "  --warm N           the warm daemons' --warm (default 2)\n"
	       "  --pause-ms MS      --jail-cost: the pause after each reply (default 20),\n"
	       "                     so that one invocation's teardown and refill do not\n"
	       "                     overlap the next\n"
	       "  --heap SIZE, --request LINE\n"
	       "                     --jail-cost: the test guest's heap= (in a 256M guest)\n"
	       "                     and the request (default ping; e.g. --heap 64M\n"
	       "                     --request 'touch 4096 1', as bench restore)\n");
}

static int parse_levels(const char *text, struct serve_options *o)
{
	char copy[128], *save = NULL;
	uint64_t n;

	snprintf(copy, sizeof(copy), "%s", text);
	o->level_count = 0;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (o->level_count == LEVELS_MAX || parse_u64(t, &n) || !n || n > 256)
			return -1;
		o->levels[o->level_count++] = (unsigned)n;
	}
	return o->level_count ? 0 : -1;
}

static int serve_option(int opt, const char *value, void *ctx)
{
	struct serve_options *o = ctx;
	uint64_t n;

	switch (opt) {
	case 'c':
		if (parse_levels(value, o))
			return bench_usage_error("serve",
						 "--concurrency: '%s' is not a list of 1 to 8 "
						 "counts from 1 to 256",
						 value);
		return 0;
	case 'J':
		o->jail = true;
		return 0;
	case 'K':
		o->jail_cost.on = true;
		return 0;
	case 'W':
		if (parse_u64(value, &n) || !n || n > 64)
			return bench_usage_error("serve", "--warm: from 1 to 64");
		o->jail_cost.warm = (unsigned)n;
		return 0;
	case 'P':
		if (parse_u64(value, &n) || n > 10000)
			return bench_usage_error("serve", "--pause-ms: from 0 to 10000");
		o->jail_cost.pause_ms = (unsigned)n;
		return 0;
	case 'H':
		if (parse_size(value, &n) || n > 192 * MiB)
			return bench_usage_error("serve", "--heap: '%s' is not a size up to 192M",
						 value);
		o->jail_cost.heap = value;
		return 0;
	case 'R': /* it goes into a JSON string as it is */
		if (!value[0] || strpbrk(value, "\n\"\\") || strlen(value) > 200)
			return bench_usage_error("serve", "--request: one line of 1 to 200 bytes, "
							  "without '\"' or '\\'");
		o->jail_cost.request = value;
		return 0;
	case 'C':
		if (strcmp(value, "on") && strcmp(value, "off") && strcmp(value, "log"))
			return bench_usage_error("serve", "--seccomp: '%s' is not on, log or off",
						 value);
		o->seccomp = value;
		return 0;
	case 'n':
		if (parse_u64(value, &n) || !n || n > 100000)
			return bench_usage_error("serve", "--requests: from 1 to 100000");
		o->requests = (unsigned)n;
		return 0;
	default:
		return EXIT_USAGE;
	}
}

static int serve_parse(int argc, char **argv, struct serve_options *o)
{
	static const struct option longopts[] = {
		{ "concurrency", required_argument, NULL, 'c' },
		{ "requests", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "kernel", required_argument, NULL, 'k' },
		{ "jail", no_argument, NULL, 'J' },
		{ "seccomp", required_argument, NULL, 'C' },
		{ "jail-cost", no_argument, NULL, 'K' },
		{ "warm", required_argument, NULL, 'W' },
		{ "pause-ms", required_argument, NULL, 'P' },
		{ "heap", required_argument, NULL, 'H' },
		{ "request", required_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const struct bench_cli cli = { .name = "serve",
				       .options = longopts,
				       .option = serve_option,
				       .help = serve_bench_help,
				       .json = &o->json,
				       .kernel = o->guest,
				       .kernel_size = sizeof(o->guest) };

	*o = (struct serve_options){ .levels = { 1, 8, 64 },
				     .level_count = 3,
				     .requests = 200,
				     .seccomp = "on",
				     .jail_cost = {
					     .warm = 2, .pause_ms = 20, .request = "ping" } };
	return bench_parse(&cli, argc, argv, o);
}

int bench_unix_connect(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd;

	if (path_format(addr.sun_path, sizeof(addr.sun_path), "%s", path))
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		close(fd);
		return -errno;
	}
	return fd;
}

static ssize_t read_some(int fd, char *buf, size_t size)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	if (poll(&pfd, 1, IO_TIMEOUT_MS) != 1)
		return -ETIMEDOUT;
	return read(fd, buf, size);
}

/*
 * One HTTP/1.1 exchange on a keep-alive connection; the body (JSON) goes to
 * body. Returns the status, or -errno. The server always sends Content-Length.
 */
int bench_http(int fd, const char *method, const char *path, const char *json, char *body,
	       size_t size)
{
	char buf[8192], *end, *length;
	size_t len = 0, head, want;
	int status;

	snprintf(buf, sizeof(buf),
		 "%s %s HTTP/1.1\r\nHost: snapvm\r\nContent-Type: application/json\r\n"
		 "Content-Length: %zu\r\n\r\n%s",
		 method, path, strlen(json), json);
	if (write_all(fd, buf, strlen(buf)))
		return -EIO;
	while (!(end = memmem(buf, len, "\r\n\r\n", 4))) {
		ssize_t n = len < sizeof(buf) - 1 ? read_some(fd, buf + len, sizeof(buf) - 1 - len)
						  : -EMSGSIZE;

		if (n <= 0)
			return n < 0 ? (int)n : -EPIPE;
		len += (size_t)n;
	}
	buf[len] = '\0';
	head = (size_t)(end - buf) + 4;
	length = strcasestr(buf, "\r\nContent-Length:");
	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1 || !length || length > end)
		return -EPROTO;
	want = strtoul(length + 17, NULL, 10);
	if (want >= size)
		return -EMSGSIZE;
	memcpy(body, buf + head, MIN(len - head, want));
	for (size_t got = MIN(len - head, want); got < want;) {
		ssize_t n = read_some(fd, body + got, want - got);

		if (n <= 0)
			return n < 0 ? (int)n : -EPIPE;
		got += (size_t)n;
	}
	body[want] = '\0';
	return status;
}

/* The next request index for a client, or -1 when the level is done. */
static int run_take(struct run *r, unsigned total)
{
	int i = -1;

	pthread_mutex_lock(&r->lock);
	if (r->next < total)
		i = (int)r->next++;
	pthread_mutex_unlock(&r->lock);
	return i;
}

static void run_fail(struct run *r, const char *fmt, const char *detail)
{
	pthread_mutex_lock(&r->lock);
	r->failures++;
	if (!r->error[0])
		snprintf(r->error, sizeof(r->error), fmt, detail);
	pthread_mutex_unlock(&r->lock);
}

struct client {
	struct run *run;
	unsigned total;
};

/* An API client: one connection, requests until the level's count is reached. */
static void *api_client(void *opaque)
{
	struct client *c = opaque;
	struct run *r = c->run;
	char body[8192];
	int fd = bench_unix_connect(r->sock), i;

	if (fd < 0) {
		run_fail(r, "cannot connect to %s", r->sock);
		return NULL;
	}
	while ((i = run_take(r, c->total)) >= 0) {
		uint64_t start = time_now_ns();
		int status = bench_http(fd, "POST", "/snapshots/fn/invoke", REQUEST_BODY, body,
					sizeof(body));
		json_t *o = status == 200 ? json_loads(body, 0, NULL) : NULL;
		const char *reply = json_string_value(json_object_get(o, "reply"));

		r->ms[i] = (double)(time_now_ns() - start) / 1e6;
		r->inside_ms[i] = json_number_value(json_object_get(o, "reply_ms"));
		if (!reply || strcmp(reply, "PONG"))
			run_fail(r, "an API reply was not PONG: %.200s", status > 0 ? body : "");
		json_decref(o);
		if (status <= 0) {
			close(fd); /* the connection broke: a new one for the next */
			fd = bench_unix_connect(r->sock);
			if (fd < 0)
				break;
		}
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

/* An invoke loop: one `snapvm invoke` at a time, the next once the last has exited. */
static void *invoke_client(void *opaque)
{
	struct client *c = opaque;
	struct run *r = c->run;
	char *argv[] = { (char *)bench_self_path(),
			 "invoke",
			 "--store",
			 (char *)r->store,
			 "--seccomp",
			 (char *)r->seccomp,
			 "fn",
			 "ping",
			 r->jail ? "--jail" : NULL,
			 (char *)r->jail,
			 NULL };
	int i;

	while ((i = run_take(r, c->total)) >= 0) {
		uint64_t start = time_now_ns();
		struct child child = { .pid = -1 };
		int ret = child_spawn(argv, CHILD_STDERR_NULL, &child);

		if (!ret)
			ret = child_wait_line(&child, "PONG", false, IO_TIMEOUT_MS, NULL, 0);
		r->ms[i] = (double)(time_now_ns() - start) / 1e6;
		if (ret)
			run_fail(r, "snapvm invoke did not answer PONG%s", "");
		if (child.pid > 0 && child_finish(&child, IO_TIMEOUT_MS) && !ret)
			run_fail(r, "snapvm invoke did not exit with 0%s", "");
	}
	return NULL;
}

/* Runs total requests with `clients` threads of fn; 0 or -1 with r->error. */
static int run_level(struct run *r, unsigned clients, unsigned total, void *(*fn)(void *))
{
	pthread_t *threads = calloc(clients, sizeof(*threads));
	struct client c = { .run = r, .total = total };
	uint64_t start = time_now_ns();
	unsigned started = 0;

	r->next = r->failures = 0;
	r->error[0] = '\0';
	for (unsigned i = 0; threads && i < clients; i++)
		started += !pthread_create(&threads[i], NULL, fn, &c);
	for (unsigned i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	r->wall_ns = time_now_ns() - start;
	free(threads);
	if (!r->failures && started == clients && r->next == total)
		return 0;
	if (!r->error[0])
		snprintf(r->error, sizeof(r->error), "%u of %u clients started", started, clients);
	return -1;
}

int bench_serve_store(const char *guest, const char *heap, const char *store, const char *request,
		      char *reply, size_t size)
{
	char cmdline[64];
	char *run[] = { (char *)bench_self_path(),
			"run",
			"--kernel",
			(char *)guest,
			"--store",
			(char *)store,
			"--mem",
			"256M",
			"--cmdline",
			cmdline,
			"--snapshot-on-ready",
			"fn",
			NULL };
	/* the first invoke records the snapshot's working set for this request */
	char *invoke[] = {
		(char *)bench_self_path(), "invoke", "--store", (char *)store, "--", "fn",
		(char *)request,	   NULL
	};
	struct child child;

	snprintf(cmdline, sizeof(cmdline), "heap=%s", heap ? heap : "0");
	if (child_spawn(run, CHILD_STDERR_KEEP, &child) || child_finish(&child, IO_TIMEOUT_MS))
		return -1;
	if (child_spawn(invoke, CHILD_STDERR_KEEP, &child) ||
	    child_wait_line(&child, "", true, IO_TIMEOUT_MS, reply, size)) {
		child_kill(&child);
		return -1;
	}
	return child_finish(&child, IO_TIMEOUT_MS) ? -1 : 0;
}

int bench_serve_spawn(char *const argv[], struct child *daemon)
{
	if (child_spawn(argv, CHILD_STDERR_KEEP, daemon))
		return -1;
	if (child_wait_line(daemon, "listening on ", true, IO_TIMEOUT_MS, NULL, 0)) {
		child_kill(daemon);
		return -1;
	}
	return 0;
}

static int daemon_start(const struct serve_options *o, const char *sock, const char *store,
			const char *jails, struct child *daemon)
{
	char listen[320], max[16];
	unsigned most = 1;
	char *argv[] = { (char *)bench_self_path(),
			 "serve",
			 "--listen",
			 listen,
			 "--store",
			 (char *)store,
			 "--max-clones",
			 max,
			 "--queue-ms",
			 "60000",
			 "--seccomp",
			 (char *)o->seccomp,
			 o->jail ? "--jail" : NULL,
			 (char *)jails,
			 NULL };

	for (unsigned i = 0; i < o->level_count; i++)
		most = MAX(most, o->levels[i]);
	snprintf(listen, sizeof(listen), "unix:%s", sock);
	snprintf(max, sizeof(max), "%u", most);
	return bench_serve_spawn(argv, daemon);
}

static void daemon_stop(struct child *daemon)
{
	kill(daemon->pid, SIGTERM);
	if (child_finish(daemon, IO_TIMEOUT_MS))
		fprintf(stderr, "snapvm bench serve: snapvm serve did not exit cleanly\n");
}

static int measure(const struct serve_options *o, struct run *r, struct result *res)
{
	unsigned n = o->requests;

	for (unsigned l = 0; l < o->level_count; l++) {
		struct result *x = &res[l];

		x->clients = o->levels[l];
		if (run_level(r, x->clients, n, api_client))
			return -1;
		x->api_per_s = n / (r->wall_ns / 1e9);
		x->inside_p50 = stats_percentile(r->inside_ms, n, 50);
		x->api_p50 = stats_percentile(r->ms, n, 50);
		x->api_p99 = stats_percentile(r->ms, n, 99);
		if (run_level(r, x->clients, n, invoke_client))
			return -1;
		x->invoke_per_s = n / (r->wall_ns / 1e9);
		x->invoke_p50 = stats_percentile(r->ms, n, 50);
		x->invoke_p99 = stats_percentile(r->ms, n, 99);
	}
	return 0;
}

static void report(const struct serve_options *o, const struct result *res)
{
	if (o->json) {
		printf("{\n  \"bench\": \"serve\",\n  \"requests\": %u,\n  \"levels\": [",
		       o->requests);
		for (unsigned l = 0; l < o->level_count; l++)
			printf("%s\n    {\"clients\": %u, \"api_per_s\": %.0f, \"api_ms_p50\": %.2f, "
			       "\"api_ms_p99\": %.2f, \"invoke_per_s\": %.0f, \"invoke_ms_p50\": "
			       "%.2f, \"invoke_ms_p99\": %.2f, \"clone_reply_ms_p50\": %.2f}",
			       l ? "," : "", res[l].clients, res[l].api_per_s, res[l].api_p50,
			       res[l].api_p99, res[l].invoke_per_s, res[l].invoke_p50,
			       res[l].invoke_p99, res[l].inside_p50);
		printf("\n  ]\n}\n");
		return;
	}
	printf("'ping' to a fresh clone of the test guest, %u invocations per row\n", o->requests);
	printf("%-8s %24s   %24s   %s\n", "", "API (snapvm serve)", "snapvm invoke processes",
	       "in the clone");
	printf("%-8s %8s %7s %7s   %8s %7s %7s   %s\n", "clients", "inv/s", "p50 ms", "p99 ms",
	       "inv/s", "p50 ms", "p99 ms", "restore-to-reply p50 ms");
	for (unsigned l = 0; l < o->level_count; l++)
		printf("%-8u %8.0f %7.2f %7.2f   %8.0f %7.2f %7.2f   %.2f\n", res[l].clients,
		       res[l].api_per_s, res[l].api_p50, res[l].api_p99, res[l].invoke_per_s,
		       res[l].invoke_p50, res[l].invoke_p99, res[l].inside_p50);
}

int bench_serve_main(int argc, char **argv)
{
	struct serve_options o;
	struct result res[LEVELS_MAX];
	struct run r = { 0 };
	struct child daemon;
	char dir[256], store[300], sock[300], jail[300], jails[300], reply[64];
	int ret = serve_parse(argc, argv, &o);

	if (ret)
		return ret < 0 ? EXIT_OK : ret;
	if (o.jail_cost.on)
		return bench_serve_jail_cost(&o.jail_cost, o.guest, o.requests, o.seccomp, o.json);
	if (bench_tmpdir(dir, sizeof(dir)))
		return EXIT_RUNTIME;
	snprintf(store, sizeof(store), "%s/store", dir);
	snprintf(sock, sizeof(sock), "%s/api.sock", dir);
	r.ms = calloc(o.requests, sizeof(double));
	r.inside_ms = calloc(o.requests, sizeof(double));
	r.sock = sock;
	r.store = store;
	snprintf(jail, sizeof(jail), "%s/jail", dir);
	snprintf(jails, sizeof(jails), "%s/jails", dir);
	if (o.jail && mkdir(jail, 0755) < 0) {
		fprintf(stderr, "snapvm bench serve: cannot make %s\n", jail);
		return EXIT_RUNTIME;
	}
	r.jail = o.jail ? jail : NULL;
	r.seccomp = o.seccomp;
	pthread_mutex_init(&r.lock, NULL);
	ret = EXIT_RUNTIME;
	if (!r.ms || !r.inside_ms ||
	    bench_serve_store(o.guest, NULL, store, "ping", reply, sizeof(reply)) ||
	    strcmp(reply, "PONG")) {
		fprintf(stderr, "snapvm bench serve: cannot snapshot %s\n", o.guest);
	} else if (daemon_start(&o, sock, store, jails, &daemon)) {
		fprintf(stderr, "snapvm bench serve: snapvm serve did not start\n");
	} else {
		if (measure(&o, &r, res))
			fprintf(stderr, "snapvm bench serve: %s\n", r.error);
		else
			ret = EXIT_OK;
		daemon_stop(&daemon);
	}
	if (!ret)
		report(&o, res);
	pthread_mutex_destroy(&r.lock);
	free(r.ms);
	free(r.inside_ms);
	bench_tmpdir_remove(dir);
	return ret;
}
