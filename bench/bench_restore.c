/*
 * snapvm bench restore: time from process start to the first reply of a
 * restored guest, for snapvm (`snapvm invoke`, in each --memory mode) and,
 * with --vs-qemu, for QEMU microvm restoring the same guest from a migration
 * file (`-incoming`). The guest is the test guest, or a Linux kernel with an
 * initramfs whose init answers ping (guest/linux/): one case, no heap. Also
 * the time and size of making each snapshot, the clones' paging figures
 * (faults, bytes read from the store, RSS), and for requests that touch the
 * heap the floor: a heap=0 clone's first reply plus the same request on the
 * original, never-snapshotted VM, all of whose pages are in place. Runs
 * alternate between modes and QEMU so that all see the same machine.
 *
 * Each mode gets one untimed warm-up restore first: it records the
 * snapshot's working set (the first lazy or prefetch invoke does) and builds
 * the mmap mode's raw memory file, so the timed runs show the steady state a
 * serverless platform sees after a snapshot's first use.
 *
 * QEMU drops serial input that arrives before its incoming migration has
 * loaded the UART, so its clock runs until QMP says the VM is running, then
 * the request goes in: QEMU is charged for the QMP round trip (~1 ms), not
 * for lost input.
 */
#include "bench/bench.h"
#include "bench/bench_util.h"
#include "common/common.h"
#include "vmm/vmm.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TIMEOUT_MS	60000
#define TIMEOUT_MS_TEXT "60000" /* TIMEOUT_MS, for snapvm invoke --timeout */
#define MAX_HEAPS	8
#define MAX_TOUCHES	8
#define MAX_CASES	(1 + MAX_HEAPS * MAX_TOUCHES)
#define MAX_RUNS	10000
#define MAX_TOUCH	(1u << 24)
#define DEFAULT_TOUCH	4096

/*
 * The --memory modes, plus mmap-huge: mmap with the raw copy on a tmpfs of
 * 2 MiB pages, which this run mounts in a mount namespace of its own.
 */
/*
 * With --store rados:..., also rados-cold and rados-warm: prefetch restores
 * from a copy of the snapshot in the RADOS pool, with the local cache's pack
 * bytes deleted before each run (a host that has the catalog but none of the
 * data) or kept (a host that restored it before).
 */
static const char *const memory_modes[] = { "eager",	 "lazy",       "prefetch",  "mmap",
					    "mmap-huge", "rados-cold", "rados-warm" };
/*
 * Each mode again with one thing changed, named MODE-SUFFIX and printed right
 * after it: what the seccomp filters cost (--seccomp-off: the twin runs
 * without them) and what the jail costs (--jail: the twin is jailed).
 */
enum mode_variant { VARIANT_NOSECCOMP, VARIANT_JAIL, VARIANTS };
static const char *const variant_suffixes[VARIANTS] = { "-noseccomp", "-jail" };
#define MAX_MODES ((1 + VARIANTS) * ARRAY_SIZE(memory_modes))

struct restore_options {
	unsigned runs;
	bool vs_qemu;
	bool json;
	char kernel[PATH_MAX];
	const char *initrd; /* a Linux kernel's initramfs */
	bool linux_kernel;  /* one case: the request (default ping) on the Linux guest */
	const char *mem;
	const char *request; /* NULL: ping and touch N */
	unsigned heap_count, touch_count, mode_count;
	const char *heaps[MAX_HEAPS];
	uint64_t touches[MAX_TOUCHES];
	const char *modes[MAX_MODES];
	const char *remote;	 /* --store: a RADOS store for the rados-* modes */
	bool variants[VARIANTS]; /* --seccomp-off, --jail: each mode's twins */
	char twins[ARRAY_SIZE(memory_modes)][VARIANTS][32]; /* their names */
};

/* What one `snapvm invoke --json` reported. */
struct invoke_figures {
	double ms; /* process start to the reply, as the caller saw it */
	double faults, pages_faulted, pages_prefetched, bytes_read, rss_bytes, private_bytes;
};

struct restore_case {
	const char *heap; /* the test guest's heap=; NULL for the Linux guest */
	uint64_t touch;	  /* 0: the request does not touch the heap */
	char request[128];
	char name[64];		  /* the snapvm snapshot */
	char remote_name[64];	  /* its copy in the --store pool */
	char qemu_file[PATH_MAX]; /* QEMU's migration file, one per heap */
	char reply[512];	  /* the original's reply (or the first clone's); all must match */
	double snapshot_ms, qemu_snapshot_ms;
	uint64_t snapshot_bytes, qemu_snapshot_bytes;
	double original_ms; /* median time of the request on the original VM (touch > 0) */
	struct invoke_figures *runs[MAX_MODES];
	double *qemu_ms;
	unsigned count;
};

struct bench_env {
	const struct restore_options *o;
	char dir[PATH_MAX];	   /* scratch: the store, QEMU's files */
	char store[PATH_MAX];	   /* snapvm's snapshots */
	char huge_cache[PATH_MAX]; /* mmap-huge's tmpfs; empty: not mounted */
	char remote[PATH_MAX * 2]; /* --store with a cache directory in dir */
	char remote_cache[PATH_MAX];
	char jail[PATH_MAX]; /* the -jail twins' --jail DIR */
	unsigned case_count;
	struct restore_case cases[MAX_CASES];
};

/* The string after "reply": (our replies hold no quotes or escapes). */
static int json_reply(const char *line, char *reply, size_t size)
{
	const char *at = strstr(line, "\"reply\": \""), *end;

	if (!at)
		return -EPROTO;
	at += strlen("\"reply\": \"");
	end = strchr(at, '"');
	if (!end)
		return -EPROTO;
	snprintf(reply, size, "%.*s", (int)(end - at), at);
	return 0;
}

/* A clone's reply must be the original's; the first one sets it where there is none. */
static int reply_check(struct restore_case *c, const char *reply)
{
	if (!c->reply[0])
		snprintf(c->reply, sizeof(c->reply), "%s", reply);
	return strcmp(reply, c->reply) ? -EPROTO : 0;
}

/*
 * Ends the original VM. The test guest is told to exit, which checks that it
 * ran well; the Linux guest's protocol promises only ping, so it is killed.
 */
static int original_finish(struct child *child, const struct restore_case *c, int ret)
{
	if (!c->heap) {
		child_kill(child);
		return ret;
	}
	if (!ret)
		ret = child_send_line(child, "exit 0");
	if (child_finish(child, TIMEOUT_MS) != 0 && !ret)
		ret = -EIO;
	return ret;
}

/*
 * snapvm run --snapshot-on-ready --resume: its -v line gives the snapshot's
 * figures; then, for a request that touches the heap, the same request on
 * this original VM, timed from sending the line to its reply.
 */
static int snapvm_snapshot(struct bench_env *env, struct restore_case *c)
{
	const struct bench_guest guest = { .kernel = env->o->kernel,
					   .initrd = env->o->initrd,
					   .mem = env->o->mem,
					   .heap = c->heap };
	char line[512];
	unsigned long long state, memory;
	double pause, capture, write, *ms = calloc(env->o->runs, sizeof(double));
	struct child child;
	int ret = ms ? bench_original_start(&guest, c->name, env->store, &child, line, sizeof(line),
					    TIMEOUT_MS)
		     : -ENOMEM;

	if (ret) {
		free(ms);
		return ret;
	}
	if (sscanf(line,
		   "snapvm: snapshot %*s state_bytes=%llu memory_bytes=%llu pause_ms=%lf "
		   "capture_ms=%lf write_ms=%lf",
		   &state, &memory, &pause, &capture, &write) != 5)
		ret = -EPROTO;
	for (unsigned run = 0; !ret && c->touch && run < env->o->runs; run++) {
		uint64_t start = time_now_ns();

		ret = child_send_line(&child, c->request);
		if (!ret)
			ret = child_wait_line(&child, "OK ", true, TIMEOUT_MS, line, sizeof(line));
		ms[run] = (double)(time_now_ns() - start) / 1e6;
		if (!ret)
			ret = reply_check(c, line);
	}
	if (!ret && c->touch)
		c->original_ms = stats_percentile(ms, env->o->runs, 50);
	ret = original_finish(&child, c, ret);
	c->snapshot_ms = pause + capture + write;
	c->snapshot_bytes = state + memory;
	free(ms);
	return ret;
}

/* QEMU microvm booting the case's guest (with the words snapvm gives Linux), then extra1 extra2. */
static void qemu_argv_for(struct bench_env *env, struct restore_case *c, char **argv, size_t max,
			  char *append, size_t append_size, char *extra1, char *extra2)
{
	int n;

	if (c->heap)
		snprintf(append, append_size, "heap=%s", c->heap);
	else
		snprintf(append, append_size, "%s", BENCH_QEMU_LINUX_APPEND);
	n = bench_qemu_argv(argv, max - 3, env->o->kernel, append, env->o->mem);
	if (!c->heap)
		n = bench_qemu_argv_linux(argv, n, max - 3, env->o->initrd, true);
	argv[n++] = extra1;
	argv[n++] = extra2;
	argv[n] = NULL;
}

/* Boots QEMU, waits for READY, migrates to a file while the VM runs (HOST.md). */
static int qemu_snapshot(struct bench_env *env, struct restore_case *c)
{
	char append[64], qmp_path[PATH_MAX], qmp_arg[PATH_MAX + 32], command[PATH_MAX + 96];
	char reply[4096], *argv[32];
	struct qmp *qmp = NULL;
	struct child child;
	struct stat st;
	uint64_t start;
	int ret;

	path_format(qmp_path, sizeof(qmp_path), "%s/qmp-snapshot", env->dir);
	snprintf(qmp_arg, sizeof(qmp_arg), "unix:%s,server=on,wait=off", qmp_path);
	qemu_argv_for(env, c, argv, ARRAY_SIZE(argv), append, sizeof(append), "-qmp", qmp_arg);
	ret = child_spawn(argv, CHILD_STDERR_NULL, &child);
	if (ret)
		return ret;
	ret = child_wait_line(&child, "READY", false, TIMEOUT_MS, NULL, 0);
	if (!ret && !(qmp = qemu_qmp_open(qmp_path, TIMEOUT_MS)))
		ret = -EIO;
	start = time_now_ns();
	snprintf(command, sizeof(command),
		 "{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"exec:cat > %s\"}}",
		 c->qemu_file);
	if (!ret)
		ret = qemu_qmp_command(qmp, command, reply, sizeof(reply), TIMEOUT_MS);
	while (!ret) {
		ret = qemu_qmp_command(qmp, "{\"execute\": \"query-migrate\"}", reply,
				       sizeof(reply), TIMEOUT_MS);
		if (ret || strstr(reply, "\"status\": \"completed\""))
			break;
		if (strstr(reply, "\"status\": \"failed\""))
			ret = -EIO;
		usleep(200);
	}
	c->qemu_snapshot_ms = (double)(time_now_ns() - start) / 1e6;
	c->qemu_snapshot_bytes = stat(c->qemu_file, &st) == 0 ? (uint64_t)st.st_size : 0;
	qemu_qmp_close(qmp);
	child_kill(&child);
	return ret;
}

/* Deletes the pack bytes the RADOS store's cache holds (its index stays). */
static void remote_cache_drop(struct bench_env *env)
{
	char packs[PATH_MAX + 8], command[PATH_MAX + 32];

	path_format(packs, sizeof(packs), "%s/packs", env->remote_cache);
	snprintf(command, sizeof(command), "rm -rf '%s'", packs);
	if (system(command) != 0)
		fprintf(stderr, "snapvm bench restore: cannot empty %s\n", packs);
}

/* Runs `snapvm store ARGS...` to its end; 0 if it succeeded. */
static int store_command(char *const *args)
{
	char *argv[16] = { (char *)bench_self_path(), "store" };
	struct child child;
	size_t n = 2;
	int ret;

	for (; *args && n < ARRAY_SIZE(argv) - 1; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	ret = child_spawn(argv, CHILD_STDERR_KEEP, &child);
	if (!ret)
		ret = child_finish(&child, TIMEOUT_MS) == 0 ? 0 : -EIO;
	return ret;
}

/* Copies the case's snapshot into the --store pool (export, import under a name of this run). */
static int remote_copy(struct bench_env *env, struct restore_case *c)
{
	char file[PATH_MAX + 64];
	char *export[] = { "export", c->name, file, "--store", env->store, NULL };
	char *import[] = { "import", file, "--as", c->remote_name, "--store", env->remote, NULL };
	int ret;

	snprintf(c->remote_name, sizeof(c->remote_name), "bench-%d-%u", (int)getpid(),
		 (unsigned)(c - env->cases));
	path_format(file, sizeof(file), "%s/%s.export", env->dir, c->name);
	ret = store_command(export);
	if (!ret)
		ret = store_command(import);
	unlink(file);
	if (ret)
		fprintf(stderr, "snapvm bench restore: cannot copy %s into %s\n", c->name,
			env->o->remote);
	return ret;
}

/* Removes the case's copy from the pool again. */
static void remote_remove(struct bench_env *env, struct restore_case *c)
{
	char *rm[] = { "rm", c->remote_name, "--store", env->remote, NULL };

	if (c->remote_name[0])
		store_command(rm);
}

/* MODE-SUFFIX: MODE into base, and which variant (-1: none). */
static int mode_variant_split(const char *mode, char *base, size_t size)
{
	size_t len = strlen(mode);

	for (int v = 0; v < VARIANTS; v++) {
		size_t suffix = strlen(variant_suffixes[v]);

		if (len > suffix && !strcmp(mode + len - suffix, variant_suffixes[v])) {
			snprintf(base, size, "%.*s", (int)(len - suffix), mode);
			return v;
		}
	}
	snprintf(base, size, "%s", mode);
	return -1;
}

/* One `snapvm invoke --json --memory MODE`: its reply line carries the paging figures. */
static int snapvm_restore_once(struct bench_env *env, struct restore_case *c, const char *mode,
			       struct invoke_figures *f)
{
	char base[32], line[1024], reply[512];
	int variant = mode_variant_split(mode, base, sizeof(base));
	bool huge = !strncmp(mode, "mmap-huge", 9), remote = !strncmp(mode, "rados-", 6);
	char *argv[20] = { (char *)bench_self_path(),
			   "invoke",
			   "--json",
			   "--timeout",
			   TIMEOUT_MS_TEXT,
			   "--store",
			   remote ? env->remote : env->store,
			   "--memory",
			   huge	    ? "mmap"
			   : remote ? "prefetch"
				    : base,
			   "--seccomp",
			   variant == VARIANT_NOSECCOMP ? "off" : "on" };
	unsigned argc = 11;
	uint64_t start;
	struct child child;
	int ret;

	if (variant == VARIANT_JAIL) {
		argv[argc++] = "--jail";
		argv[argc++] = env->jail;
	}
	argv[argc++] = remote ? c->remote_name : c->name;
	argv[argc++] = "--";
	argv[argc++] = c->request;
	argv[argc] = NULL;
	if (!strcmp(base, "rados-cold"))
		remote_cache_drop(env);
	start = time_now_ns();
	if (huge)
		setenv("SNAPVM_MMAP_CACHE", env->huge_cache, 1);
	ret = child_spawn(argv, CHILD_STDERR_KEEP, &child);
	unsetenv("SNAPVM_MMAP_CACHE");
	if (ret)
		return ret;
	ret = child_wait_line(&child, "{", true, TIMEOUT_MS, line, sizeof(line));
	f->ms = (double)(time_now_ns() - start) / 1e6;
	if (child_finish(&child, TIMEOUT_MS) != 0 && !ret)
		ret = -EIO;
	if (!ret)
		ret = json_reply(line, reply, sizeof(reply));
	if (!ret)
		ret = reply_check(c, reply);
	f->faults = bench_json_number(line, "faults");
	f->pages_faulted = bench_json_number(line, "pages_faulted");
	f->pages_prefetched = bench_json_number(line, "pages_prefetched");
	f->bytes_read = bench_json_number(line, "bytes_read");
	f->rss_bytes = bench_json_number(line, "rss_bytes");
	f->private_bytes = bench_json_number(line, "private_bytes");
	return ret;
}

static int qemu_restore_once(struct bench_env *env, struct restore_case *c, double *ms)
{
	char append[64], incoming[PATH_MAX + 16], qmp[PATH_MAX], qmp_arg[PATH_MAX + 32];
	char line[256], *argv[40];
	struct child child;
	struct qmp *q;
	uint64_t start;
	int ret, n;

	path_format(qmp, sizeof(qmp), "%s/qmp", env->dir);
	unlink(qmp);
	snprintf(incoming, sizeof(incoming), "exec:cat %s", c->qemu_file);
	snprintf(qmp_arg, sizeof(qmp_arg), "unix:%s,server=on,wait=off", qmp);
	qemu_argv_for(env, c, argv, ARRAY_SIZE(argv) - 2, append, sizeof(append), "-incoming",
		      incoming);
	for (n = 0; argv[n]; n++)
		;
	argv[n++] = "-qmp";
	argv[n++] = qmp_arg;
	argv[n] = NULL;
	start = time_now_ns();
	ret = child_spawn(argv, CHILD_STDERR_NULL, &child);
	if (ret)
		return ret;
	q = qemu_qmp_open(qmp, TIMEOUT_MS);
	ret = q ? qemu_qmp_wait_running(q, TIMEOUT_MS) : -EIO;
	qemu_qmp_close(q);
	if (!ret)
		ret = child_send_line(&child, c->request);
	if (!ret)
		ret = child_wait_line(&child, c->reply, false, TIMEOUT_MS, line, sizeof(line));
	*ms = (double)(time_now_ns() - start) / 1e6;
	child_kill(&child);
	return ret;
}

/* The case with the same heap made earlier, whose QEMU migration file this one shares. */
static const struct restore_case *case_same_heap(const struct bench_env *env,
						 const struct restore_case *c)
{
	for (const struct restore_case *other = env->cases; other < c; other++)
		if (other->heap && c->heap && !strcmp(other->heap, c->heap))
			return other;
	return NULL;
}

static int case_prepare(struct bench_env *env, struct restore_case *c)
{
	const struct restore_case *same = case_same_heap(env, c);
	struct invoke_figures warm_up;
	int ret = snapvm_snapshot(env, c);

	if (!ret && env->o->vs_qemu && same) {
		c->qemu_snapshot_ms = same->qemu_snapshot_ms;
		c->qemu_snapshot_bytes = same->qemu_snapshot_bytes;
	} else if (!ret && env->o->vs_qemu) {
		ret = qemu_snapshot(env, c);
	}
	if (!ret && env->o->remote)
		ret = remote_copy(env, c);
	for (unsigned m = 0; !ret && m < env->o->mode_count; m++)
		ret = snapvm_restore_once(env, c, env->o->modes[m], &warm_up);
	return ret;
}

/* "heap=64M", or "Linux" for the Linux guest. */
static const char *case_label(const struct restore_case *c, char *buf, size_t size)
{
	if (c->heap)
		snprintf(buf, size, "heap=%s", c->heap);
	else
		snprintf(buf, size, "Linux");
	return buf;
}

static int run_case(struct bench_env *env, struct restore_case *c)
{
	char label[64];
	const struct restore_options *o = env->o;
	int ret = case_prepare(env, c);

	for (unsigned run = 0; !ret && run < o->runs; run++) {
		for (unsigned m = 0; !ret && m < o->mode_count; m++)
			ret = snapvm_restore_once(env, c, o->modes[m], &c->runs[m][c->count]);
		if (!ret && o->vs_qemu)
			ret = qemu_restore_once(env, c, &c->qemu_ms[c->count]);
		if (!ret)
			c->count++;
	}
	if (ret)
		fprintf(stderr, "snapvm bench restore: %s, \"%s\": %s\n",
			case_label(c, label, sizeof(label)), c->request,
			ret == -EPROTO ? "a clone gave another reply than the original"
				       : strerror(-ret));
	return ret;
}

/* Median of one field of a mode's runs. */
static double figures_median(const struct restore_case *c, unsigned mode, size_t offset)
{
	double values[c->count ? c->count : 1];

	for (unsigned i = 0; i < c->count; i++)
		values[i] = *(const double *)((const char *)&c->runs[mode][i] + offset);
	return stats_percentile(values, c->count, 50);
}

#define MEDIAN(c, m, field) figures_median(c, m, offsetof(struct invoke_figures, field))

static double mode_percentile(const struct restore_case *c, unsigned mode, double p)
{
	double values[c->count ? c->count : 1];

	for (unsigned i = 0; i < c->count; i++)
		values[i] = c->runs[mode][i].ms;
	return stats_percentile(values, c->count, p);
}

/* The restore half of the floor: the quickest mode's median for the heap=0 case. */
static double floor_restore_ms(const struct bench_env *env)
{
	double best = 0;

	for (unsigned m = 0; m < env->o->mode_count; m++) {
		double ms = mode_percentile(&env->cases[0], m, 50);

		if (!m || ms < best)
			best = ms;
	}
	return best;
}

static void json_samples(const char *key, const double *values, unsigned n)
{
	printf("\"%s\": [", key);
	for (unsigned i = 0; i < n; i++)
		printf("%s%.3f", i ? ", " : "", values[i]);
	printf("]");
}

/* The mode the case's headline snapvm_ms_* figures come from: the default, prefetch, if run. */
static unsigned headline_mode(const struct restore_options *o)
{
	for (unsigned m = 0; m < o->mode_count; m++)
		if (!strcmp(o->modes[m], "prefetch"))
			return m;
	return 0;
}

static void json_case(const struct bench_env *env, const struct restore_case *c)
{
	const struct restore_options *o = env->o;
	unsigned headline = headline_mode(o);
	char heap[64];

	if (c->heap)
		snprintf(heap, sizeof(heap), "\"%s\"", c->heap);
	else
		snprintf(heap, sizeof(heap), "null"); /* the Linux guest has no heap */
	printf("    {\"heap\": %s, \"touch\": %" PRIu64 ", \"request\": \"%s\", "
	       "\"snapvm_snapshot_ms\": %.3f, \"snapvm_snapshot_bytes\": %" PRIu64 ",\n"
	       "     \"snapvm_memory\": \"%s\", \"snapvm_ms_median\": %.3f, "
	       "\"snapvm_ms_p90\": %.3f,\n     \"modes\": [",
	       heap, c->touch, c->request, c->snapshot_ms, c->snapshot_bytes, o->modes[headline],
	       mode_percentile(c, headline, 50), mode_percentile(c, headline, 90));
	for (unsigned m = 0; m < o->mode_count; m++) {
		double ms[c->count ? c->count : 1];

		for (unsigned i = 0; i < c->count; i++)
			ms[i] = c->runs[m][i].ms;
		printf("%s\n       {\"memory\": \"%s\", \"ms_median\": %.3f, \"ms_p90\": %.3f, "
		       "\"faults\": %.0f, \"pages_faulted\": %.0f, \"pages_prefetched\": %.0f, "
		       "\"bytes_read\": %.0f, \"rss_bytes\": %.0f, \"private_bytes\": %.0f, ",
		       m ? "," : "", o->modes[m], mode_percentile(c, m, 50),
		       mode_percentile(c, m, 90), MEDIAN(c, m, faults), MEDIAN(c, m, pages_faulted),
		       MEDIAN(c, m, pages_prefetched), MEDIAN(c, m, bytes_read),
		       MEDIAN(c, m, rss_bytes), MEDIAN(c, m, private_bytes));
		json_samples("ms", ms, c->count);
		printf("}");
	}
	printf("]");
	if (o->vs_qemu) {
		printf(",\n     \"qemu_ms_median\": %.3f, \"qemu_ms_p90\": %.3f, "
		       "\"qemu_snapshot_ms\": %.3f, \"qemu_snapshot_bytes\": %" PRIu64 ", ",
		       stats_percentile(c->qemu_ms, c->count, 50),
		       stats_percentile(c->qemu_ms, c->count, 90), c->qemu_snapshot_ms,
		       c->qemu_snapshot_bytes);
		json_samples("qemu_ms", c->qemu_ms, c->count);
	}
	if (c->touch)
		printf(",\n     \"original_ms\": %.3f, \"floor_ms\": %.3f", c->original_ms,
		       floor_restore_ms(env) + c->original_ms);
	printf("}");
}

static void report_json(const struct bench_env *env)
{
	const struct restore_options *o = env->o;

	printf("{\n  \"bench\": \"restore\",\n  \"kernel\": \"%s\",\n  \"runs\": %u,\n"
	       "  \"mem\": \"%s\",\n  \"memory\": [",
	       o->linux_kernel ? "linux" : "test guest", o->runs, o->mem);
	for (unsigned m = 0; m < o->mode_count; m++)
		printf("%s\"%s\"", m ? ", " : "", o->modes[m]);
	printf("],\n  \"cases\": [\n");
	for (unsigned i = 0; i < env->case_count; i++) {
		json_case(env, &env->cases[i]);
		printf("%s\n", i + 1 < env->case_count ? "," : "");
	}
	printf("  ]\n}\n");
}

/* "12.3x", or "-" where there is nothing to compare with. */
static const char *ratio_text(char *buf, size_t size, double ratio)
{
	if (ratio > 0)
		snprintf(buf, size, "%.1fx", ratio);
	else
		snprintf(buf, size, "-");
	return buf;
}

static void report_case(const struct bench_env *env, const struct restore_case *c)
{
	const struct restore_options *o = env->o;
	double qemu = o->vs_qemu ? stats_percentile(c->qemu_ms, c->count, 50) : 0;
	double floor = c->touch ? floor_restore_ms(env) + c->original_ms : 0;
	char vs_qemu[16], vs_floor[16], label[64];
	int width = o->variants[VARIANT_NOSECCOMP] || o->variants[VARIANT_JAIL]
			    ? 26 /* "snapvm mmap-huge-noseccomp" */
			    : 16;

	printf("%s, \"%s\": snapshot %.1f ms, %.1f MiB stored", case_label(c, label, sizeof(label)),
	       c->request, c->snapshot_ms, c->snapshot_bytes / 1048576.0);
	if (o->vs_qemu)
		printf(" (QEMU: %.1f ms, %.1f MiB)", c->qemu_snapshot_ms,
		       c->qemu_snapshot_bytes / 1048576.0);
	printf("\n  %-*s %8s %8s %7s %9s %8s %8s %8s %8s\n", width, "restore", "median", "p90",
	       "faults", "read MiB", "RSS MiB", "private", "QEMU/", "/floor");
	for (unsigned m = 0; m < o->mode_count; m++) {
		double median = mode_percentile(c, m, 50);

		printf("  snapvm %-*s %8.2f %8.2f %7.0f %9.1f %8.1f %8.1f %8s %8s\n", width - 7,
		       o->modes[m], median, mode_percentile(c, m, 90), MEDIAN(c, m, faults),
		       MEDIAN(c, m, bytes_read) / 1048576.0, MEDIAN(c, m, rss_bytes) / 1048576.0,
		       MEDIAN(c, m, private_bytes) / 1048576.0,
		       ratio_text(vs_qemu, sizeof(vs_qemu), qemu / median),
		       ratio_text(vs_floor, sizeof(vs_floor), floor > 0 ? median / floor : 0));
	}
	if (o->vs_qemu)
		printf("  %-*s %8.2f %8.2f\n", width, "qemu", qemu,
		       stats_percentile(c->qemu_ms, c->count, 90));
	if (c->touch)
		printf("  floor %.2f ms: heap=0 restore %.2f + the request on the original VM "
		       "%.2f\n",
		       floor, floor_restore_ms(env), c->original_ms);
}

static void report(const struct bench_env *env)
{
	if (env->o->json) {
		report_json(env);
		return;
	}
	printf("restore to first reply, %u runs, --mem %s (ms; faults served, MiB read from the "
	       "store, clone RSS at the reply)\n",
	       env->o->runs, env->o->mem);
	for (unsigned i = 0; i < env->case_count; i++)
		report_case(env, &env->cases[i]);
}

static void restore_help(void)
{
	printf("usage: snapvm bench restore [--memory MODE,...] [--heap SIZE]... [--touch N,...]\n"
	       "                            [--runs N] [--vs-qemu] [--json] [--mem SIZE]\n"
	       "                            [--request LINE] [--kernel PATH [--initrd FILE]]\n"
	       "                            [--seccomp-off] [--jail]\n\n"
	       "Snapshots the guest at its ready code, then times process start to the\n"
	       "guest's first reply over N restores (default 10) with snapvm invoke in each\n"
	       "memory mode, beside QEMU microvm -incoming with --vs-qemu.\n\n"
	       "  --memory LIST   modes to compare: eager, lazy, prefetch, mmap, and\n"
	       "                  mmap-huge (mmap with the cache on a tmpfs of 2 MiB pages,\n"
	       "                  mounted for this run; root only); default all, for root\n"
	       "  --heap SIZE     one guest per --heap (default 0 and 64M); heap=0 answers\n"
	       "                  \"ping\" and is always measured: it is half of the floor\n"
	       "  --touch LIST    for each non-zero heap, one case per N: the request\n"
	       "                  \"touch N 1\" (default %d); the floor is the heap=0 restore\n"
	       "                  plus the same request on the original VM\n"
	       "  --request LINE  send LINE to every guest instead (no floor)\n"
	       "  --store SPEC    a RADOS store (rados:POOL?conf=PATH): each snapshot is copied\n"
	       "                  there too, and the modes rados-cold and rados-warm restore\n"
	       "                  it with prefetch, with an empty or a warm local cache (the\n"
	       "                  default modes become prefetch,rados-cold,rados-warm)\n"
	       "  --seccomp-off   also time each mode with --seccomp off, printed beside it\n"
	       "                  as MODE-noseccomp: what the filters cost\n"
	       "  --jail          also time each local mode jailed (invoke --jail, README\n"
	       "                  \"Jailer\"; root only), printed beside it as MODE-jail\n"
	       "  --mem SIZE      guest RAM (default 256M)\n"
	       "  --kernel PATH   the guest: the test guest beside this binary (default), or\n"
	       "                  a Linux bzImage or vmlinux with --initrd\n"
	       "  --initrd FILE   the Linux guest's initramfs: its init prints READY, writes\n"
	       "                  the ready code and answers \"ping\" with \"PONG\" (make\n"
	       "                  guest-linux builds one)\n\n"
	       "A Linux guest has no heap: it is measured in one case, its reply to\n"
	       "\"ping\" (or --request), and --heap and --touch are refused. It needs a host\n"
	       "with hardware virtualization; on PVM the bench says so instead.\n\n"
	       "Each mode restores once untimed first (recording the working set and the\n"
	       "mmap file). Prints per mode the median and p90 in ms, faults served, bytes\n"
	       "read from the store and the clone's RSS, and each snapshot's time and size.\n",
	       DEFAULT_TOUCH);
}

static int modes_parse(const char *list, struct restore_options *o)
{
	char copy[64], *save = NULL;

	if (snprintf(copy, sizeof(copy), "%s", list) >= (int)sizeof(copy))
		return bench_usage_error("restore", "--memory: '%s' is too long", list);
	o->mode_count = 0;
	for (char *word = strtok_r(copy, ",", &save); word; word = strtok_r(NULL, ",", &save)) {
		unsigned m = 0;

		while (m < ARRAY_SIZE(memory_modes) && strcmp(word, memory_modes[m]))
			m++;
		if (m == ARRAY_SIZE(memory_modes))
			return bench_usage_error(
				"restore",
				"--memory: '%s' is not eager, lazy, prefetch, mmap, "
				"mmap-huge, rados-cold or rados-warm",
				word);
		for (unsigned i = 0; i < o->mode_count; i++)
			if (o->modes[i] == memory_modes[m])
				return bench_usage_error("restore", "--memory: '%s' is given twice",
							 word);
		o->modes[o->mode_count++] = memory_modes[m];
	}
	return o->mode_count ? 0
			     : bench_usage_error("restore", "--memory: '%s' names no mode", list);
}

static int touches_parse(const char *list, struct restore_options *o)
{
	char copy[128], *save = NULL;
	uint64_t value;

	if (snprintf(copy, sizeof(copy), "%s", list) >= (int)sizeof(copy))
		return bench_usage_error("restore", "--touch: '%s' is too long", list);
	o->touch_count = 0;
	for (char *word = strtok_r(copy, ",", &save); word; word = strtok_r(NULL, ",", &save)) {
		if (o->touch_count == MAX_TOUCHES || parse_u64(word, &value) || !value ||
		    value > MAX_TOUCH)
			return bench_usage_error(
				"restore",
				"--touch: '%s' is not a list of up to 8 page counts "
				"(1-16777216)",
				list);
		o->touches[o->touch_count++] = value;
	}
	return o->touch_count ? 0
			      : bench_usage_error("restore", "--touch: '%s' names no count", list);
}

static int restore_option(int opt, const char *value, void *ctx)
{
	struct restore_options *o = ctx;
	uint64_t n;

	switch (opt) {
	case 'm':
		if (parse_size(value, &n))
			return bench_usage_error("restore", "--mem: '%s' is not a size", value);
		o->mem = value;
		return 0;
	case 'H':
		if (parse_size(value, &n))
			return bench_usage_error("restore", "--heap: '%s' is not a size", value);
		if (o->heap_count == MAX_HEAPS)
			return bench_usage_error("restore", "--heap: at most 8 (got '%s' too)",
						 value);
		o->heaps[o->heap_count++] = value;
		return 0;
	case 'i':
		o->initrd = value;
		return 0;
	case 'M':
		return modes_parse(value, o);
	case 'T':
		return touches_parse(value, o);
	case 'S':
		o->remote = value;
		return 0;
	case 'F':
		o->variants[VARIANT_NOSECCOMP] = true;
		return 0;
	case 'J':
		o->variants[VARIANT_JAIL] = true;
		return 0;
	case 'R':
		if (!value[0] || strchr(value, '\n') || strchr(value, '"'))
			return bench_usage_error(
				"restore", "--request: '%s' is not one line without quotes", value);
		o->request = value;
		return 0;
	default:
		return EXIT_USAGE;
	}
}

/*
 * Each mode's twins go right after it, so that they print side by side (a
 * RADOS mode has no jailed twin: the jail needs a local store).
 */
static void modes_twin(struct restore_options *o)
{
	for (unsigned m = o->mode_count; m-- > 0;) {
		unsigned k = 0, at = m + 1;

		while (strcmp(o->modes[m], memory_modes[k]))
			k++;
		for (int v = 0; v < VARIANTS; v++) {
			if (!o->variants[v] ||
			    (v == VARIANT_JAIL && !strncmp(o->modes[m], "rados-", 6)))
				continue;
			memmove(&o->modes[at + 1], &o->modes[at],
				(o->mode_count - at) * sizeof(o->modes[0]));
			snprintf(o->twins[k][v], sizeof(o->twins[k][v]), "%s%s", memory_modes[k],
				 variant_suffixes[v]);
			o->modes[at++] = o->twins[k][v];
			o->mode_count++;
		}
	}
}

/* The Linux guest answers ping and has no heap: it needs its initramfs and no heap cases. */
static int restore_check_linux(const struct restore_options *o)
{
	if (o->linux_kernel && !o->initrd)
		return bench_usage_error("restore",
					 "a Linux --kernel needs --initrd, an initramfs "
					 "whose init writes the ready code and answers ping");
	if (!o->linux_kernel && o->initrd)
		return bench_usage_error("restore", "--initrd goes with a Linux --kernel");
	if (o->linux_kernel && (o->heap_count || o->touch_count))
		return bench_usage_error("restore", "the Linux guest has no heap: --heap and "
						    "--touch are for the test guest");
	return 0;
}

static int restore_parse(int argc, char **argv, struct restore_options *o)
{
	static const struct option longopts[] = {
		{ "runs", required_argument, NULL, 'r' },
		{ "vs-qemu", no_argument, NULL, 'q' },
		{ "json", no_argument, NULL, 'j' },
		{ "kernel", required_argument, NULL, 'k' },
		{ "initrd", required_argument, NULL, 'i' },
		{ "mem", required_argument, NULL, 'm' },
		{ "heap", required_argument, NULL, 'H' },
		{ "memory", required_argument, NULL, 'M' },
		{ "touch", required_argument, NULL, 'T' },
		{ "request", required_argument, NULL, 'R' },
		{ "store", required_argument, NULL, 'S' },
		{ "seccomp-off", no_argument, NULL, 'F' },
		{ "jail", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const struct bench_cli cli = { .name = "restore",
				       .options = longopts,
				       .option = restore_option,
				       .help = restore_help,
				       .json = &o->json,
				       .kernel = o->kernel,
				       .kernel_size = sizeof(o->kernel),
				       .runs = &o->runs,
				       .max_runs = MAX_RUNS,
				       .vs_qemu = &o->vs_qemu };
	int ret;

	*o = (struct restore_options){ .runs = 10, .mem = "256M" };
	ret = bench_parse(&cli, argc, argv, o);
	if (ret)
		return ret;
	o->linux_kernel = vmm_kernel_is_linux(o->kernel);
	ret = restore_check_linux(o);
	if (ret)
		return ret;
	if (!o->mode_count && o->remote) /* the pool beside the local store */
		modes_parse("prefetch,rados-cold,rados-warm", o);
	if (!o->mode_count) /* mmap-huge mounts a tmpfs: only root can */
		modes_parse(geteuid() ? "eager,lazy,prefetch,mmap"
				      : "eager,lazy,prefetch,mmap,mmap-huge",
			    o);
	for (unsigned m = 0; m < o->mode_count; m++) {
		if (!strncmp(o->modes[m], "rados-", 6) && !o->remote)
			return bench_usage_error("restore", "--memory %s needs --store rados:...",
						 o->modes[m]);
	}
	if (o->remote && strncmp(o->remote, "rados:", 6))
		return bench_usage_error("restore", "--store: '%s' is not rados:POOL[?...]",
					 o->remote);
	if (o->variants[VARIANT_JAIL] && geteuid())
		return bench_usage_error("restore", "--jail needs root");
	modes_twin(o);
	if (!o->touch_count)
		o->touches[o->touch_count++] = DEFAULT_TOUCH;
	if (!o->heap_count) {
		o->heaps[o->heap_count++] = "0";
		o->heaps[o->heap_count++] = "64M";
	}
	return 0;
}

static bool heap_is_zero(const char *heap)
{
	uint64_t bytes;

	return parse_size(heap, &bytes) == 0 && bytes == 0;
}

static struct restore_case *case_add(struct bench_env *env, const char *heap, uint64_t touch)
{
	struct restore_case *c = &env->cases[env->case_count];
	const struct restore_options *o = env->o;

	*c = (struct restore_case){ .heap = heap, .touch = touch };
	if (o->request)
		snprintf(c->request, sizeof(c->request), "%s", o->request);
	else if (touch)
		snprintf(c->request, sizeof(c->request), "touch %" PRIu64 " 1", touch);
	else
		snprintf(c->request, sizeof(c->request), "ping");
	snprintf(c->name, sizeof(c->name), "bench-%u", env->case_count);
	path_format(c->qemu_file, sizeof(c->qemu_file), "%s/qemu-heap-%s.migration", env->dir,
		    heap ? heap : "linux");
	for (unsigned m = 0; m < o->mode_count; m++)
		c->runs[m] = calloc(o->runs, sizeof(struct invoke_figures));
	c->qemu_ms = calloc(o->runs, sizeof(double));
	env->case_count++;
	return c;
}

/*
 * The heap=0 case first (the floor needs it), then each other heap with each
 * --touch; the Linux guest has one case, without a heap.
 */
static void cases_make(struct bench_env *env)
{
	const struct restore_options *o = env->o;

	if (o->linux_kernel) {
		case_add(env, NULL, 0);
		return;
	}
	case_add(env, "0", 0);
	for (unsigned h = 0; h < o->heap_count; h++) {
		if (heap_is_zero(o->heaps[h]))
			continue;
		for (unsigned t = 0; t < (o->request ? 1 : o->touch_count); t++)
			case_add(env, o->heaps[h], o->request ? 0 : o->touches[t]);
	}
}

static bool cases_allocated(const struct bench_env *env)
{
	for (unsigned i = 0; i < env->case_count; i++) {
		for (unsigned m = 0; m < env->o->mode_count; m++)
			if (!env->cases[i].runs[m])
				return false;
		if (!env->cases[i].qemu_ms)
			return false;
	}
	return true;
}

static void cases_free(struct bench_env *env)
{
	for (unsigned i = 0; i < env->case_count; i++) {
		for (unsigned m = 0; m < env->o->mode_count; m++)
			free(env->cases[i].runs[m]);
		free(env->cases[i].qemu_ms);
	}
}

int bench_restore_main(int argc, char **argv)
{
	struct restore_options o;
	struct bench_env *env = calloc(1, sizeof(*env));
	int ret = env ? restore_parse(argc, argv, &o) : EXIT_RUNTIME;

	if (ret) {
		free(env);
		return ret < 0 ? EXIT_OK : ret;
	}
	if (o.linux_kernel && !bench_host_has_hardware_virtualization()) {
		free(env);
		return bench_report_no_linux("restore", o.json);
	}
	env->o = &o;
	ret = bench_tmpdir(env->dir, sizeof(env->dir));
	if (ret) {
		fprintf(stderr, "snapvm bench restore: cannot make a scratch directory: %s\n",
			strerror(-ret));
		free(env);
		return EXIT_RUNTIME;
	}
	path_format(env->store, sizeof(env->store), "%s/store", env->dir);
	path_format(env->jail, sizeof(env->jail), "%s/jail", env->dir);
	if (o.variants[VARIANT_JAIL] && mkdir(env->jail, 0755) < 0) {
		fprintf(stderr, "snapvm bench restore: cannot make %s: %s\n", env->jail,
			strerror(errno));
		ret = -errno;
	}
	if (o.remote) {
		path_format(env->remote_cache, sizeof(env->remote_cache), "%s/rados-cache",
			    env->dir);
		snprintf(env->remote, sizeof(env->remote), "%s%scache=%s", o.remote,
			 strchr(o.remote, '?') ? "&" : "?", env->remote_cache);
	}
	for (unsigned m = 0; m < o.mode_count && !ret; m++) {
		if (!strcmp(o.modes[m], "mmap-huge") && !env->huge_cache[0] &&
		    (ret = bench_huge_cache_mount(env->dir, env->huge_cache,
						  sizeof(env->huge_cache))))
			fprintf(stderr,
				"snapvm bench restore: mmap-huge: cannot mount a tmpfs of huge pages "
				"(root only): %s\n",
				strerror(-ret));
	}
	cases_make(env);
	if (!ret)
		ret = cases_allocated(env) ? 0 : -ENOMEM;
	for (unsigned i = 0; i < env->case_count && !ret; i++)
		ret = run_case(env, &env->cases[i]);
	if (!ret)
		report(env);
	for (unsigned i = 0; i < env->case_count; i++)
		remote_remove(env, &env->cases[i]);
	cases_free(env);
	bench_huge_cache_unmount(env->huge_cache);
	bench_tmpdir_remove(env->dir);
	free(env);
	return ret ? EXIT_RUNTIME : EXIT_OK;
}
