/*
 * snapvm bench restore: time from process start to the first reply of a
 * restored guest, for snapvm (`snapvm invoke`) and, with --vs-qemu, for QEMU
 * microvm restoring the same guest from a migration file (`-incoming`). Also
 * the time and size of making each snapshot. Runs alternate between the two.
 *
 * QEMU drops serial input that arrives before its incoming migration has
 * loaded the UART, so its clock runs until QMP says the VM is running, then
 * the request goes in: QEMU is charged for the QMP round trip (~1 ms), not
 * for lost input.
 */
#include "bench/bench.h"
#include "bench/bench_util.h"
#include "common/common.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TIMEOUT_MS 30000
#define MAX_CASES  8
#define MAX_RUNS   10000

struct restore_options {
	unsigned runs;
	bool vs_qemu;
	bool json;
	char kernel[PATH_MAX];
	const char *mem;
	const char *request;
	unsigned case_count;
	const char *heaps[MAX_CASES];
};

struct restore_case {
	const char *heap;
	char reply[256];
	double snapvm_snapshot_ms, qemu_snapshot_ms;
	uint64_t snapvm_snapshot_bytes, qemu_snapshot_bytes;
	double *snapvm_ms, *qemu_ms;
	unsigned count;
};

struct bench_env {
	const struct restore_options *o;
	char dir[PATH_MAX];   /* scratch: the store, QEMU's files */
	char store[PATH_MAX]; /* snapvm's snapshots */
};

/* snapvm run --snapshot-on-ready; its -v line gives the snapshot's figures. */
static int snapvm_snapshot(struct bench_env *env, struct restore_case *c, const char *name)
{
	char cmdline[64], line[512], *self = (char *)bench_self_path();
	char *argv[] = { self,
			 "-v",
			 "run",
			 "--kernel",
			 (char *)env->o->kernel,
			 "--mem",
			 (char *)env->o->mem,
			 "--cmdline",
			 cmdline,
			 "--snapshot-on-ready",
			 (char *)name,
			 "--store",
			 env->store,
			 NULL };
	unsigned long long state, memory;
	double pause, capture, write;
	struct child child;
	int ret;

	snprintf(cmdline, sizeof(cmdline), "heap=%s", c->heap);
	ret = child_spawn(argv, CHILD_STDERR_MERGE, &child);
	if (ret)
		return ret;
	ret = child_wait_line(&child, "snapvm: snapshot ", true, TIMEOUT_MS, line, sizeof(line));
	if (!ret && sscanf(line,
			   "snapvm: snapshot %*s state_bytes=%llu memory_bytes=%llu pause_ms=%lf "
			   "capture_ms=%lf write_ms=%lf",
			   &state, &memory, &pause, &capture, &write) != 5)
		ret = -EPROTO;
	if (child_finish(&child, TIMEOUT_MS) != 0 && !ret)
		ret = -EIO;
	c->snapvm_snapshot_ms = pause + capture + write;
	c->snapvm_snapshot_bytes = state + memory;
	return ret;
}

static void qemu_argv_for(struct bench_env *env, struct restore_case *c, char **argv, size_t max,
			  char *append, size_t append_size, char *extra1, char *extra2)
{
	int n;

	snprintf(append, append_size, "heap=%s", c->heap);
	n = bench_qemu_argv(argv, max - 3, env->o->kernel, append, env->o->mem);
	argv[n++] = extra1;
	argv[n++] = extra2;
	argv[n] = NULL;
}

/* Boots QEMU, waits for READY, migrates to a file while the VM runs (HOST.md). */
static int qemu_snapshot(struct bench_env *env, struct restore_case *c, const char *file)
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
		 "{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"exec:cat > %s\"}}", file);
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
	c->qemu_snapshot_bytes = stat(file, &st) == 0 ? (uint64_t)st.st_size : 0;
	qemu_qmp_close(qmp);
	child_kill(&child);
	return ret;
}

static int snapvm_restore_once(struct bench_env *env, struct restore_case *c, const char *name,
			       double *ms)
{
	char line[256], *self = (char *)bench_self_path();
	char *argv[] = {
		self, "invoke", "--store", env->store, (char *)name, "--", (char *)env->o->request,
		NULL
	};
	uint64_t start = time_now_ns();
	struct child child;
	int ret = child_spawn(argv, CHILD_STDERR_NULL, &child);

	if (ret)
		return ret;
	ret = child_wait_line(&child, "", true, TIMEOUT_MS, line, sizeof(line));
	*ms = (double)(time_now_ns() - start) / 1e6;
	if (child_finish(&child, TIMEOUT_MS) != 0 && !ret)
		ret = -EIO;
	if (!ret && !c->reply[0])
		snprintf(c->reply, sizeof(c->reply), "%s", line);
	else if (!ret && strcmp(line, c->reply))
		ret = -EPROTO; /* every clone must answer alike */
	return ret;
}

static int qemu_restore_once(struct bench_env *env, struct restore_case *c, const char *file,
			     double *ms)
{
	char append[64], incoming[PATH_MAX + 16], qmp[PATH_MAX], qmp_arg[PATH_MAX + 32];
	char line[256], *argv[40];
	struct child child;
	struct qmp *q;
	uint64_t start;
	int ret, n;

	path_format(qmp, sizeof(qmp), "%s/qmp", env->dir);
	unlink(qmp);
	snprintf(incoming, sizeof(incoming), "exec:cat %s", file);
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
		ret = child_send_line(&child, env->o->request);
	if (!ret)
		ret = child_wait_line(&child, c->reply, false, TIMEOUT_MS, line, sizeof(line));
	*ms = (double)(time_now_ns() - start) / 1e6;
	child_kill(&child);
	return ret;
}

static int run_case(struct bench_env *env, struct restore_case *c)
{
	const struct restore_options *o = env->o;
	char name[32], file[PATH_MAX];
	int ret;

	snprintf(name, sizeof(name), "bench-heap-%s", c->heap);
	path_format(file, sizeof(file), "%s/qemu-heap-%s.migration", env->dir, c->heap);
	ret = snapvm_snapshot(env, c, name);
	if (!ret && o->vs_qemu)
		ret = qemu_snapshot(env, c, file);
	for (unsigned run = 0; !ret && run < o->runs; run++) {
		ret = snapvm_restore_once(env, c, name, &c->snapvm_ms[c->count]);
		if (!ret && o->vs_qemu)
			ret = qemu_restore_once(env, c, file, &c->qemu_ms[c->count]);
		if (!ret)
			c->count++;
	}
	if (ret)
		fprintf(stderr, "snapvm bench restore: heap=%s: %s\n", c->heap,
			ret == -EPROTO ? "a clone gave another reply" : strerror(-ret));
	return ret;
}

static void report(const struct restore_options *o, struct restore_case *cases)
{
	if (o->json) {
		printf("{\n  \"bench\": \"restore\",\n  \"runs\": %u,\n  \"mem\": \"%s\",\n"
		       "  \"request\": \"%s\",\n  \"cases\": [",
		       o->runs, o->mem, o->request);
		for (unsigned i = 0; i < o->case_count; i++) {
			struct restore_case *c = &cases[i];

			printf("%s\n    {\"heap\": \"%s\", \"snapvm_ms_median\": %.3f, "
			       "\"snapvm_ms_p90\": %.3f, \"snapvm_snapshot_ms\": %.3f, "
			       "\"snapvm_snapshot_bytes\": %" PRIu64,
			       i ? "," : "", c->heap, stats_percentile(c->snapvm_ms, c->count, 50),
			       stats_percentile(c->snapvm_ms, c->count, 90), c->snapvm_snapshot_ms,
			       c->snapvm_snapshot_bytes);
			if (o->vs_qemu)
				printf(", \"qemu_ms_median\": %.3f, \"qemu_ms_p90\": %.3f, "
				       "\"qemu_snapshot_ms\": %.3f, \"qemu_snapshot_bytes\": %" PRIu64,
				       stats_percentile(c->qemu_ms, c->count, 50),
				       stats_percentile(c->qemu_ms, c->count, 90),
				       c->qemu_snapshot_ms, c->qemu_snapshot_bytes);
			printf("}");
		}
		printf("\n  ]\n}\n");
		return;
	}
	printf("restore to first reply (\"%s\"), %u runs, --mem %s (ms)\n", o->request, o->runs,
	       o->mem);
	printf("%-8s %-7s %9s %9s %13s %13s\n", "heap", "vmm", "median", "p90", "snapshot ms",
	       "snapshot MiB");
	for (unsigned i = 0; i < o->case_count; i++) {
		struct restore_case *c = &cases[i];

		printf("%-8s %-7s %9.2f %9.2f %13.1f %13.1f\n", c->heap, "snapvm",
		       stats_percentile(c->snapvm_ms, c->count, 50),
		       stats_percentile(c->snapvm_ms, c->count, 90), c->snapvm_snapshot_ms,
		       c->snapvm_snapshot_bytes / 1048576.0);
		if (o->vs_qemu)
			printf("%-8s %-7s %9.2f %9.2f %13.1f %13.1f   (snapvm %.1fx faster)\n", "",
			       "qemu", stats_percentile(c->qemu_ms, c->count, 50),
			       stats_percentile(c->qemu_ms, c->count, 90), c->qemu_snapshot_ms,
			       c->qemu_snapshot_bytes / 1048576.0,
			       stats_percentile(c->qemu_ms, c->count, 50) /
				       stats_percentile(c->snapvm_ms, c->count, 50));
	}
}

static int restore_parse(int argc, char **argv, struct restore_options *o)
{
	static const struct option longopts[] = {
		{ "runs", required_argument, NULL, 'r' },
		{ "vs-qemu", no_argument, NULL, 'q' },
		{ "json", no_argument, NULL, 'j' },
		{ "kernel", required_argument, NULL, 'k' },
		{ "mem", required_argument, NULL, 'm' },
		{ "heap", required_argument, NULL, 'H' },
		{ "request", required_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	uint64_t value;
	int opt;

	*o = (struct restore_options){ .runs = 20, .mem = "128M", .request = "ping" };
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'r':
			if (parse_u64(optarg, &value) || value < 1 || value > MAX_RUNS) {
				fprintf(stderr, "snapvm bench restore: --runs: '%s' is not 1-%d\n",
					optarg, MAX_RUNS);
				return EXIT_USAGE;
			}
			o->runs = (unsigned)value;
			break;
		case 'q':
			o->vs_qemu = true;
			break;
		case 'j':
			o->json = true;
			break;
		case 'k':
			snprintf(o->kernel, sizeof(o->kernel), "%s", optarg);
			break;
		case 'm':
			o->mem = optarg;
			break;
		case 'H':
			if (o->case_count == MAX_CASES || parse_size(optarg, &value)) {
				fprintf(stderr,
					"snapvm bench restore: --heap: '%s' is not a size\n",
					optarg);
				return EXIT_USAGE;
			}
			o->heaps[o->case_count++] = optarg;
			break;
		case 'R':
			o->request = optarg;
			break;
		case 'h':
			printf("usage: snapvm bench restore [--runs N] [--vs-qemu] [--json] [--heap SIZE]...\n"
			       "                            [--mem SIZE] [--request LINE] [--kernel ELF]\n\n"
			       "Snapshots the test guest at READY, then times process start to the\n"
			       "guest's first reply (to \"ping\" unless --request) over N restores\n"
			       "(default 20): snapvm invoke beside QEMU microvm -incoming with\n"
			       "--vs-qemu. One case per --heap (default: 0 and 64M), --mem 128M.\n"
			       "Also prints the time and size of making each snapshot.\n");
			return -1;
		case ':':
			fprintf(stderr, "snapvm bench restore: %s needs a value\n",
				argv[optind - 1]);
			return EXIT_USAGE;
		default:
			fprintf(stderr, "snapvm bench restore: unknown option '%s' (see --help)\n",
				argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (!o->case_count) {
		o->heaps[o->case_count++] = "0";
		o->heaps[o->case_count++] = "64M";
	}
	if (!o->kernel[0] && bench_guest_path(o->kernel, sizeof(o->kernel))) {
		fprintf(stderr, "snapvm bench restore: the test guest is not built next to snapvm; "
				"pass --kernel\n");
		return EXIT_USAGE;
	}
	if (o->vs_qemu && !bench_qemu_available()) {
		fprintf(stderr, "snapvm bench restore: --vs-qemu needs qemu-system-x86_64 "
				"(Debian package qemu-system-x86)\n");
		return EXIT_USAGE;
	}
	return 0;
}

int bench_restore_main(int argc, char **argv)
{
	struct restore_options o;
	struct restore_case cases[MAX_CASES] = { 0 };
	struct bench_env env = { .o = &o };
	int ret = restore_parse(argc, argv, &o);

	if (ret)
		return ret < 0 ? EXIT_OK : ret;
	ret = bench_tmpdir(env.dir, sizeof(env.dir));
	if (ret) {
		fprintf(stderr, "snapvm bench restore: cannot make a scratch directory: %s\n",
			strerror(-ret));
		return EXIT_RUNTIME;
	}
	path_format(env.store, sizeof(env.store), "%s/store", env.dir);
	for (unsigned i = 0; i < o.case_count && !ret; i++) {
		cases[i].heap = o.heaps[i];
		cases[i].snapvm_ms = calloc(o.runs, sizeof(double));
		cases[i].qemu_ms = calloc(o.runs, sizeof(double));
		ret = run_case(&env, &cases[i]);
	}
	if (!ret)
		report(&o, cases);
	for (unsigned i = 0; i < o.case_count; i++) {
		free(cases[i].snapvm_ms);
		free(cases[i].qemu_ms);
	}
	bench_tmpdir_remove(env.dir);
	return ret ? EXIT_RUNTIME : EXIT_OK;
}
