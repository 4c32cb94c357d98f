/*
 * snapvm bench density: how many clones of one snapshot this host holds at
 * once, how fast they start, and what each costs in host memory.
 *
 * The test guest (256 MiB, heap=64M by default) is snapshotted at READY and
 * answers one request on the original VM, whose reply every clone must give
 * too. One untimed `snapvm invoke` records the snapshot's working set, so
 * that prefetch has one, as a platform's first use of a snapshot would.
 * Then N clones (`snapvm restore NAME`, each its own process and VM, its
 * console on pipes) start, at most --parallel at a time between process
 * start and reply, each is sent the request as it starts, and every clone
 * that has replied stays alive until all have: the figures are for N clones
 * up at once. The first clone that fails (cannot start, dies, answers
 * something else, or gives no reply in 60 s) ends the run, with its reason.
 *
 * Host memory is measured three ways: the drop of the machine's
 * MemAvailable over the run (everything: the clones' own pages, the kernel's
 * page tables, KVM's per-VM memory, pipes, but also whatever else runs on
 * the machine meanwhile), the sum of the clones' PSS (their user-space pages,
 * shared ones split between the processes that map them; no kernel memory),
 * and beside them the guest pages a clone touches (its working set).
 */
#include "bench/bench.h"
#include "bench/bench_util.h"
#include "common/common.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define DEFAULT_CLONES	 1000
#define DEFAULT_PARALLEL 8
#define MAX_CLONES	 20000
#define REPLY_TIMEOUT_MS 60000
#define SETUP_TIMEOUT_MS 60000
#define EXIT_TIMEOUT_MS	 60000
#define CURVE_POINTS	 40
#define FDS_PER_CLONE	 2
#define FDS_SPARE	 64

struct density_options {
	unsigned clones, parallel, rate, touch;
	bool json;
	char kernel[PATH_MAX];
	const char *mem, *heap, *memory;
};

/* The --memory mode snapvm is given: mmap-huge is mmap with the cache on huge pages. */
static char *snapvm_memory(const struct density_options *o)
{
	return !strcmp(o->memory, "mmap-huge") ? "mmap" : (char *)o->memory;
}

enum clone_state { CLONE_UNUSED, CLONE_STARTING, CLONE_UP, CLONE_GONE };

struct density_clone {
	struct child child;
	enum clone_state state;
	uint64_t start_ns;
	char last_line[160]; /* the last line that was not the reply: why it failed */
};

/* The /proc/meminfo fields that show where a clone's host memory goes. */
struct meminfo {
	int64_t available, anon, page_tables, sec_page_tables, kernel_stack, slab_unreclaimable;
};

struct curve_point {
	unsigned clones;
	double elapsed_ms;
	int64_t host_mem_bytes;
	double reply_ms; /* process start to reply of the clone that made the count */
};

struct density_run {
	const struct density_options *o;
	char dir[PATH_MAX], store[PATH_MAX], huge_cache[PATH_MAX], request[64], reply[256];
	uint64_t touched_bytes;
	struct density_clone *clones;
	double *reply_ms;
	unsigned spawned, starting, up;
	int epoll_fd;
	uint64_t t0_ns, last_reply_ns;
	struct meminfo before, after;
	uint64_t pss_sum;
	struct curve_point curve[CURVE_POINTS + 2];
	unsigned curve_count;
	char failure[512]; /* empty: none */
	double teardown_s;
};

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void __attribute__((format(printf, 2, 3)))
run_fail(struct density_run *r, const char *format, ...)
{
	va_list args;

	if (r->failure[0])
		return; /* the first failure is the one that counts */
	va_start(args, format);
	vsnprintf(r->failure, sizeof(r->failure), format, args);
	va_end(args);
}

static void meminfo_read(struct meminfo *m)
{
	static const struct {
		const char *key;
		size_t offset;
	} fields[] = {
		{ "MemAvailable:", offsetof(struct meminfo, available) },
		{ "AnonPages:", offsetof(struct meminfo, anon) },
		{ "PageTables:", offsetof(struct meminfo, page_tables) },
		{ "SecPageTables:", offsetof(struct meminfo, sec_page_tables) },
		{ "KernelStack:", offsetof(struct meminfo, kernel_stack) },
		{ "SUnreclaim:", offsetof(struct meminfo, slab_unreclaimable) },
	};
	FILE *f = fopen("/proc/meminfo", "r");
	char line[256];

	memset(m, 0, sizeof(*m));
	while (f && fgets(line, sizeof(line), f)) {
		for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
			size_t len = strlen(fields[i].key);

			if (!strncmp(line, fields[i].key, len))
				*(int64_t *)((char *)m + fields[i].offset) =
					strtoll(line + len, NULL, 10) * 1024;
		}
	}
	if (f)
		fclose(f);
}

/* A process's proportional set size, from /proc/PID/smaps_rollup; 0 if it is gone. */
static uint64_t process_pss(pid_t pid)
{
	char path[64], line[256];
	uint64_t kib = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "Pss:", 4)) {
			kib = strtoull(line + 4, NULL, 10);
			break;
		}
	}
	if (f)
		fclose(f);
	return kib * 1024;
}

/* Each clone holds two pipes here: the soft limit goes up to what N clones need. */
static int raise_fd_limit(unsigned clones)
{
	rlim_t need = (rlim_t)clones * FDS_PER_CLONE + FDS_SPARE;
	struct rlimit lim;

	if (getrlimit(RLIMIT_NOFILE, &lim) < 0)
		return -errno;
	if (lim.rlim_cur >= need)
		return 0;
	lim.rlim_cur = need;
	if (lim.rlim_max < need)
		lim.rlim_max = need; /* only root may raise the hard limit */
	return setrlimit(RLIMIT_NOFILE, &lim) < 0 ? -errno : 0;
}

/*
 * Writes the request to a clone. SIGPIPE is ignored only meanwhile (a clone
 * may already have died), so that the clones, which inherit this process's
 * signal dispositions, keep the default one.
 */
static int send_request(struct child *child, const char *request)
{
	struct sigaction ignore = { .sa_handler = SIG_IGN }, old;
	int ret;

	sigaction(SIGPIPE, &ignore, &old);
	ret = child_send_line(child, request);
	sigaction(SIGPIPE, &old, NULL);
	return ret;
}

/* Boots and snapshots the original: its answer to the request is every clone's reply. */
static int make_snapshot(struct density_run *r)
{
	char line[sizeof(r->reply)];
	const struct bench_guest guest = { .kernel = r->o->kernel,
					   .mem = r->o->mem,
					   .heap = r->o->heap };
	struct child child;
	int ret = bench_original_start(&guest, "density", r->store, &child, NULL, 0,
				       SETUP_TIMEOUT_MS);

	if (ret)
		return ret;
	ret = child_send_line(&child, r->request);
	if (!ret)
		ret = child_wait_line(&child, "OK ", true, SETUP_TIMEOUT_MS, line, sizeof(line));
	if (!ret)
		snprintf(r->reply, sizeof(r->reply), "%s", line);
	if (!ret)
		ret = child_send_line(&child, "exit 0");
	if (child_finish(&child, SETUP_TIMEOUT_MS) != 0 && !ret)
		ret = -EIO;
	return ret;
}

/*
 * One `snapvm invoke --json` of the snapshot. The first one (no working set
 * yet) records the working set; its size is the bytes a clone touches.
 */
static int warm_up(struct density_run *r, const char *memory)
{
	char line[1024], *self = (char *)bench_self_path();
	char *argv[] = { self,		 "invoke",  "--json", "--store",  r->store, "--memory",
			 (char *)memory, "density", "--",     r->request, NULL };
	struct child child;
	int ret = child_spawn(argv, CHILD_STDERR_NULL, &child);

	if (ret)
		return ret;
	ret = child_wait_line(&child, "{", true, SETUP_TIMEOUT_MS, line, sizeof(line));
	if (child_finish(&child, SETUP_TIMEOUT_MS) != 0 && !ret)
		ret = -EIO;
	if (!ret && !strstr(line, r->reply))
		ret = -EPROTO;
	if (!ret && !r->touched_bytes) {
		double pages = bench_json_number(line, "workset_pages");

		r->touched_bytes = isnan(pages) ? 0 : (uint64_t)pages * 4096;
	}
	return ret;
}

static int setup(struct density_run *r)
{
	int ret = make_snapshot(r);

	if (ret) {
		fprintf(stderr, "snapvm bench density: the original VM: %s\n", strerror(-ret));
		return ret;
	}
	ret = warm_up(r, "prefetch");
	/* mmap makes its raw copy on first use: once here, not in N clones at once */
	if (!ret && strcmp(r->o->memory, "prefetch") && strcmp(r->o->memory, "lazy"))
		ret = warm_up(r, snapvm_memory(r->o));
	if (ret)
		fprintf(stderr, "snapvm bench density: the warm-up invoke: %s\n",
			ret == -EPROTO ? "its reply is not the original's" : strerror(-ret));
	return ret;
}

static double elapsed_ms(const struct density_run *r, uint64_t now)
{
	return (double)(now - r->t0_ns) / 1e6;
}

/* A point of the curve every N/CURVE_POINTS clones up, and at the last one. */
static void curve_sample(struct density_run *r, bool last)
{
	unsigned step = (r->o->clones + CURVE_POINTS - 1) / CURVE_POINTS;
	struct meminfo now;

	if (r->curve_count == ARRAY_SIZE(r->curve) || (!last && r->up % step))
		return;
	if (r->curve_count && r->curve[r->curve_count - 1].clones == r->up)
		return;
	meminfo_read(&now);
	r->curve[r->curve_count++] = (struct curve_point){
		.clones = r->up,
		.elapsed_ms = elapsed_ms(r, time_now_ns()),
		.host_mem_bytes = r->before.available - now.available,
		.reply_ms = r->up ? r->reply_ms[r->up - 1] : 0,
	};
}

/* Starts clone r->spawned: `snapvm restore`, its request sent at once. */
static int clone_start(struct density_run *r)
{
	char *self = (char *)bench_self_path();
	char *argv[] = { self,	   "restore",  "density",	    "--store",
			 r->store, "--memory", snapvm_memory(r->o), NULL };
	unsigned index = r->spawned;
	struct density_clone *c = &r->clones[index];
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = index };
	int ret;

	c->start_ns = time_now_ns();
	/* its errors come on its stdout, to give the reason if it fails */
	ret = child_spawn(argv, CHILD_STDERR_MERGE, &c->child);
	if (ret) {
		run_fail(r, "clone %u: cannot start a process: %s", index, strerror(-ret));
		return ret;
	}
	c->state = CLONE_STARTING;
	r->spawned++;
	r->starting++;
	if (epoll_ctl(r->epoll_fd, EPOLL_CTL_ADD, c->child.out_fd, &ev) < 0) {
		ret = -errno;
		run_fail(r, "clone %u: epoll: %s", index, strerror(errno));
		return ret;
	}
	ret = send_request(&c->child, r->request);
	if (ret)
		run_fail(r, "clone %u: cannot send the request: %s", index, strerror(-ret));
	return ret;
}

static void clone_line(struct density_run *r, unsigned index, const char *line)
{
	struct density_clone *c = &r->clones[index];
	uint64_t now = time_now_ns();

	if (c->state == CLONE_STARTING && !strcmp(line, r->reply)) {
		c->state = CLONE_UP;
		r->reply_ms[r->up++] = (double)(now - c->start_ns) / 1e6;
		r->starting--;
		r->last_reply_ns = now;
		curve_sample(r, r->up == r->o->clones);
		return;
	}
	snprintf(c->last_line, sizeof(c->last_line), "%.*s", (int)sizeof(c->last_line) - 1, line);
	if (!strncmp(line, "OK", 2) || !strncmp(line, "ERR", 3))
		run_fail(r, "clone %u: replied '%s', the original '%s'", index, line, r->reply);
}

/* The clone closed its output: it has exited (or is about to). */
static void clone_gone(struct density_run *r, unsigned index)
{
	struct density_clone *c = &r->clones[index];
	int status = -1;

	epoll_ctl(r->epoll_fd, EPOLL_CTL_DEL, c->child.out_fd, NULL);
	if (waitpid(c->child.pid, &status, 0) == c->child.pid)
		c->child.pid = -1; /* reaped */
	run_fail(r, "clone %u %s (%s %d)%s%s", index,
		 c->state == CLONE_UP ? "exited after its reply" : "exited before replying",
		 WIFSIGNALED(status) ? "signal" : "status",
		 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
		 c->last_line[0] ? ": " : "", c->last_line);
	if (c->state == CLONE_STARTING)
		r->starting--;
	c->state = CLONE_GONE;
}

/* Reads what a clone printed and acts on each complete line. */
static void clone_read(struct density_run *r, unsigned index)
{
	struct child *child = &r->clones[index].child;
	ssize_t n;
	char *nl;

	if (child->len == sizeof(child->buf))
		child->len = 0; /* a line longer than the buffer: drop it */
	n = read(child->out_fd, child->buf + child->len, sizeof(child->buf) - child->len);
	if (n <= 0) {
		if (n == 0 || errno != EAGAIN)
			clone_gone(r, index);
		return;
	}
	child->len += (size_t)n;
	while ((nl = memchr(child->buf, '\n', child->len))) {
		size_t line_len = (size_t)(nl - child->buf);
		char line[sizeof(child->buf)];

		memcpy(line, child->buf, line_len);
		line[line_len] = '\0';
		memmove(child->buf, nl + 1, child->len - line_len - 1);
		child->len -= line_len + 1;
		clone_line(r, index, line);
	}
}

/* Clones that have not replied within REPLY_TIMEOUT_MS of their start fail the run. */
static void check_timeouts(struct density_run *r, uint64_t now)
{
	for (unsigned i = 0; i < r->spawned && r->starting; i++) {
		struct density_clone *c = &r->clones[i];

		if (c->state == CLONE_STARTING &&
		    now - c->start_ns > (uint64_t)REPLY_TIMEOUT_MS * 1000000ULL) {
			run_fail(r, "clone %u: no reply %d s after its start%s%s", i,
				 REPLY_TIMEOUT_MS / 1000, c->last_line[0] ? "; it printed: " : "",
				 c->last_line);
			return;
		}
	}
}

/* With --rate, how long until the next start is due (0: now). */
static int next_start_in_ms(const struct density_run *r, uint64_t now)
{
	uint64_t due;

	if (!r->o->rate)
		return 0;
	due = r->t0_ns + (uint64_t)r->spawned * 1000000000ULL / r->o->rate;
	return due > now ? (int)((due - now) / 1000000ULL) + 1 : 0;
}

/* Starts clones as --parallel and --rate allow, until all are up or one fails. */
static void clones_run(struct density_run *r)
{
	struct epoll_event events[64];

	r->t0_ns = r->last_reply_ns = time_now_ns();
	while (r->up < r->o->clones && !r->failure[0] && !interrupted) {
		uint64_t now = time_now_ns();
		int wait_ms = 100, n;

		while (r->spawned < r->o->clones && r->starting < r->o->parallel &&
		       !next_start_in_ms(r, now) && !r->failure[0]) {
			clone_start(r);
			now = time_now_ns();
		}
		if (r->spawned < r->o->clones && r->starting < r->o->parallel)
			wait_ms = MIN(wait_ms, next_start_in_ms(r, now));
		n = epoll_wait(r->epoll_fd, events, ARRAY_SIZE(events), wait_ms);
		for (int i = 0; i < n; i++)
			clone_read(r, events[i].data.u32);
		check_timeouts(r, time_now_ns());
	}
	if (interrupted)
		run_fail(r, "interrupted");
}

/* Memory with every clone that replied still up: MemAvailable's drop, the sum of their PSS. */
static void measure_memory(struct density_run *r)
{
	meminfo_read(&r->after);
	curve_sample(r, true);
	for (unsigned i = 0; i < r->spawned; i++)
		if (r->clones[i].state == CLONE_UP)
			r->pss_sum += process_pss(r->clones[i].child.pid);
}

/*
 * Every clone is asked to exit ("exit 0" on its console: the end of its
 * input alone does not stop a guest); those still there after
 * EXIT_TIMEOUT_MS are killed.
 */
static void clones_teardown(struct density_run *r)
{
	uint64_t start = time_now_ns(), deadline = start + (uint64_t)EXIT_TIMEOUT_MS * 1000000ULL;

	for (unsigned i = 0; i < r->spawned; i++) {
		struct child *child = &r->clones[i].child;

		if (child->in_fd < 0)
			continue;
		send_request(child, "exit 0");
		close(child->in_fd);
		child->in_fd = -1;
	}
	for (unsigned i = 0; i < r->spawned; i++) {
		struct child *child = &r->clones[i].child;
		uint64_t now = time_now_ns();

		if (child->pid < 0) { /* reaped already */
			child_kill(child);
			continue;
		}
		child_finish(child, now < deadline ? (int)((deadline - now) / 1000000ULL) : 0);
	}
	r->teardown_s = (double)(time_now_ns() - start) / 1e9;
}

static double total_s(const struct density_run *r)
{
	return (double)(r->last_reply_ns - r->t0_ns) / 1e9;
}

static double per_clone(const struct density_run *r, int64_t bytes)
{
	return r->up ? (double)bytes / r->up : 0;
}

static double reply_percentile(struct density_run *r, double p)
{
	return r->up ? stats_percentile(r->reply_ms, r->up, p) : 0;
}

static void report_json(struct density_run *r)
{
	const struct density_options *o = r->o;
	const struct meminfo *b = &r->before, *a = &r->after;
	char failure[6 * sizeof(r->failure)]; /* our messages may quote a clone's output */

	json_escape(r->failure, failure, sizeof(failure));
	printf("{\"bench\": \"density\", \"clones_requested\": %u, \"clones_started\": %u, "
	       "\"mem\": \"%s\", \"heap\": \"%s\", \"memory\": \"%s\", \"request\": \"%s\", "
	       "\"parallel\": %u, \"rate\": %u,\n",
	       o->clones, r->up, o->mem, o->heap, o->memory, r->request, o->parallel, o->rate);
	printf(" \"total_s\": %.3f, \"clones_per_s\": %.1f, \"reply_ms_p50\": %.3f, "
	       "\"reply_ms_p99\": %.3f, \"teardown_s\": %.3f,\n",
	       total_s(r), total_s(r) > 0 ? r->up / total_s(r) : 0, reply_percentile(r, 50),
	       reply_percentile(r, 99), r->teardown_s);
	printf(" \"host_mem_per_clone_bytes\": %.0f, \"pss_per_clone_bytes\": %.0f, "
	       "\"touched_bytes_per_clone\": %" PRIu64 ",\n",
	       per_clone(r, b->available - a->available), per_clone(r, (int64_t)r->pss_sum),
	       r->touched_bytes);
	printf(" \"kernel_per_clone_bytes\": {\"page_tables\": %.0f, \"sec_page_tables\": %.0f, "
	       "\"kernel_stack\": %.0f, \"slab_unreclaimable\": %.0f, \"anon\": %.0f},\n",
	       per_clone(r, a->page_tables - b->page_tables),
	       per_clone(r, a->sec_page_tables - b->sec_page_tables),
	       per_clone(r, a->kernel_stack - b->kernel_stack),
	       per_clone(r, a->slab_unreclaimable - b->slab_unreclaimable),
	       per_clone(r, a->anon - b->anon));
	if (r->failure[0])
		printf(" \"failure\": \"%s\",\n", failure);
	else
		printf(" \"failure\": null,\n");
	printf(" \"curve\": [");
	for (unsigned i = 0; i < r->curve_count; i++)
		printf("%s{\"clones\": %u, \"elapsed_ms\": %.1f, \"host_mem_bytes\": %" PRId64
		       ", \"reply_ms\": %.3f}",
		       i ? ",\n           " : "", r->curve[i].clones, r->curve[i].elapsed_ms,
		       r->curve[i].host_mem_bytes, r->curve[i].reply_ms);
	printf("]}\n");
}

static double mib(double bytes)
{
	return bytes / (1024.0 * 1024.0);
}

static void report_text(struct density_run *r)
{
	const struct density_options *o = r->o;
	const struct meminfo *b = &r->before, *a = &r->after;

	printf("density: %u of %u clones up at once; %s guest, heap=%s, --memory %s, "
	       "\"%s\", %u starting at a time%s\n",
	       r->up, o->clones, o->mem, o->heap, o->memory, r->request, o->parallel,
	       o->rate ? " (rate-bounded)" : "");
	printf("  all up in %.2f s: %.1f clones/s; process start to reply p50 %.2f ms, "
	       "p99 %.2f ms\n",
	       total_s(r), total_s(r) > 0 ? r->up / total_s(r) : 0, reply_percentile(r, 50),
	       reply_percentile(r, 99));
	printf("  host memory per clone: %.2f MiB (MemAvailable's drop / %u), PSS %.2f MiB; "
	       "the guest touches %.2f MiB\n",
	       mib(per_clone(r, b->available - a->available)), r->up,
	       mib(per_clone(r, (int64_t)r->pss_sum)), mib((double)r->touched_bytes));
	printf("  of it in the kernel, per clone: page tables %.0f KiB, KVM's (secondary) "
	       "%.0f KiB, stacks %.0f KiB, slab %.0f KiB\n",
	       per_clone(r, a->page_tables - b->page_tables) / 1024,
	       per_clone(r, a->sec_page_tables - b->sec_page_tables) / 1024,
	       per_clone(r, a->kernel_stack - b->kernel_stack) / 1024,
	       per_clone(r, a->slab_unreclaimable - b->slab_unreclaimable) / 1024);
	printf("  teardown of all: %.2f s\n", r->teardown_s);
	printf("  failure: %s\n", r->failure[0] ? r->failure : "none");
}

static void density_help(void)
{
	printf("usage: snapvm bench density [--clones N] [--parallel N] [--rate N] [--json]\n"
	       "                            [--mem SIZE] [--heap SIZE] [--touch PAGES]\n"
	       "                            [--memory MODE] [--kernel ELF]\n\n"
	       "Snapshots the test guest at READY, records its working set with one invoke,\n"
	       "then starts N clones (snapvm restore) that each answer \"touch PAGES 1\" and\n"
	       "stay up until all have. Prints the time until all are up, clones/s, process\n"
	       "start to reply (p50, p99), host memory per clone (MemAvailable's drop, and\n"
	       "PSS) beside the pages the guest touches, and the first failure, if any: the\n"
	       "run stops there, and the clones up by then are the machine's figure.\n\n"
	       "  --clones N      clones to start (default %d: about 10-20 s here, with the\n"
	       "                  teardown; each takes 2 file descriptors of this process)\n"
	       "  --parallel N    at most N clones between process start and reply (default\n"
	       "                  %d: on 2 cores more only queue up)\n"
	       "  --rate N        at most N starts per second (default: as fast as --parallel\n"
	       "                  allows)\n"
	       "  --memory MODE   prefetch (default), lazy, eager, mmap or mmap-huge (mmap with\n"
	       "                  its cache on a tmpfs of 2 MiB pages mounted for this run;\n"
	       "                  root only)\n"
	       "  --mem SIZE      guest RAM (default 256M)\n"
	       "  --heap SIZE     the guest's random heap (default 64M)\n"
	       "  --touch PAGES   heap pages the request touches (default 256)\n"
	       "  --json          one JSON object instead of text\n",
	       DEFAULT_CLONES, DEFAULT_PARALLEL);
}

static int option_uint(const char *name, const char *text, unsigned min, unsigned max,
		       unsigned *out)
{
	uint64_t value;

	if (parse_u64(text, &value) || value < min || value > max)
		return bench_usage_error("density", "%s: '%s' is not %u-%u", name, text, min, max);
	*out = (unsigned)value;
	return 0;
}

static int option_size(const char *name, const char *text, const char **out)
{
	uint64_t bytes;

	if (parse_size(text, &bytes))
		return bench_usage_error("density", "%s: '%s' is not a size", name, text);
	*out = text;
	return 0;
}

static int density_option(int opt, const char *value, void *ctx)
{
	struct density_options *o = ctx;

	switch (opt) {
	case 'n':
		return option_uint("--clones", value, 1, MAX_CLONES, &o->clones);
	case 'p':
		return option_uint("--parallel", value, 1, MAX_CLONES, &o->parallel);
	case 'r':
		return option_uint("--rate", value, 1, 1000000, &o->rate);
	case 't':
		return option_uint("--touch", value, 1, 1u << 24, &o->touch);
	case 'm':
		return option_size("--mem", value, &o->mem);
	case 'H':
		return option_size("--heap", value, &o->heap);
	case 'M':
		if (strcmp(value, "prefetch") && strcmp(value, "lazy") && strcmp(value, "eager") &&
		    strcmp(value, "mmap") && strcmp(value, "mmap-huge"))
			return bench_usage_error(
				"density",
				"--memory: '%s' is not prefetch, lazy, eager, mmap or mmap-huge",
				value);
		o->memory = value;
		return 0;
	default:
		return EXIT_USAGE;
	}
}

/* 0, -1 after --help, or EXIT_USAGE with a message. */
static int density_parse(int argc, char **argv, struct density_options *o)
{
	static const struct option longopts[] = {
		{ "clones", required_argument, NULL, 'n' },
		{ "parallel", required_argument, NULL, 'p' },
		{ "rate", required_argument, NULL, 'r' },
		{ "touch", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "kernel", required_argument, NULL, 'k' },
		{ "mem", required_argument, NULL, 'm' },
		{ "heap", required_argument, NULL, 'H' },
		{ "memory", required_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const struct bench_cli cli = { .name = "density",
				       .options = longopts,
				       .option = density_option,
				       .help = density_help,
				       .json = &o->json,
				       .kernel = o->kernel,
				       .kernel_size = sizeof(o->kernel) };

	*o = (struct density_options){ .clones = DEFAULT_CLONES,
				       .parallel = DEFAULT_PARALLEL,
				       .touch = 256,
				       .mem = "256M",
				       .heap = "64M",
				       .memory = "prefetch" };
	return bench_parse(&cli, argc, argv, o);
}

/*
 * Everything a run keeps per clone is allocated and touched before the
 * baseline is read, so that this process's own growth is not counted.
 */
static int run_init(struct density_run *r, const struct density_options *o)
{
	*r = (struct density_run){ .o = o, .epoll_fd = -1 };
	snprintf(r->request, sizeof(r->request), "touch %u 1", o->touch);
	r->clones = calloc(o->clones, sizeof(*r->clones));
	r->reply_ms = calloc(o->clones, sizeof(*r->reply_ms));
	if (!r->clones || !r->reply_ms)
		return -ENOMEM;
	memset(r->clones, 0, o->clones * sizeof(*r->clones));
	memset(r->reply_ms, 0, o->clones * sizeof(*r->reply_ms));
	r->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	return r->epoll_fd < 0 ? -errno : 0;
}

static void run_free(struct density_run *r)
{
	if (r->epoll_fd >= 0)
		close(r->epoll_fd);
	free(r->clones);
	free(r->reply_ms);
}

static int density_run(struct density_run *r)
{
	struct sigaction stop = { .sa_handler = on_interrupt }, old_int, old_term;
	int ret = setup(r);

	if (ret)
		return ret;
	sigaction(SIGINT, &stop, &old_int);
	sigaction(SIGTERM, &stop, &old_term);
	meminfo_read(&r->before);
	clones_run(r);
	measure_memory(r);
	clones_teardown(r);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	if (r->o->json)
		report_json(r);
	else
		report_text(r);
	return 0;
}

int bench_density_main(int argc, char **argv)
{
	struct density_options o;
	struct density_run r;
	int ret = density_parse(argc, argv, &o);

	if (ret)
		return ret < 0 ? EXIT_OK : ret;
	ret = raise_fd_limit(o.clones);
	if (ret)
		return bench_usage_error("density", "--clones %u needs %u file descriptors: %s",
					 o.clones, o.clones * FDS_PER_CLONE + FDS_SPARE,
					 strerror(-ret));
	ret = run_init(&r, &o);
	if (!ret)
		ret = bench_tmpdir(r.dir, sizeof(r.dir));
	if (ret) {
		fprintf(stderr, "snapvm bench density: %s\n", strerror(-ret));
		run_free(&r);
		return EXIT_RUNTIME;
	}
	path_format(r.store, sizeof(r.store), "%s/store", r.dir);
	if (!strcmp(o.memory, "mmap-huge")) {
		ret = bench_huge_cache_mount(r.dir, r.huge_cache, sizeof(r.huge_cache));
		if (ret) {
			fprintf(stderr,
				"snapvm bench density: mmap-huge: cannot mount a tmpfs of huge pages "
				"(root only): %s\n",
				strerror(-ret));
			bench_tmpdir_remove(r.dir);
			run_free(&r);
			return EXIT_RUNTIME;
		}
		setenv("SNAPVM_MMAP_CACHE", r.huge_cache, 1); /* for every snapvm started */
	}
	ret = density_run(&r);
	bench_huge_cache_unmount(r.huge_cache);
	bench_tmpdir_remove(r.dir);
	run_free(&r);
	/* a clone that fails is the machine's limit, reported as a figure; not an error */
	return ret ? EXIT_RUNTIME : EXIT_OK;
}
