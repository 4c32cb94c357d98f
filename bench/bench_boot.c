/*
 * snapvm bench boot: time from process start to the guest's READY line, for
 * snapvm and, with --vs-qemu, for QEMU microvm booting the same kernel in the
 * same run. Runs alternate between the two so that both see the same machine
 * conditions. The guest is the test guest, or Linux with an initramfs whose
 * init says READY (guest/linux/), which needs hardware virtualization.
 */
#include "bench/bench.h"
#include "bench/bench_util.h"
#include "common/common.h"
#include "vmm/vmm.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* a hang guard: Linux takes 6-8 s to READY on the nested platform */
#define BOOT_TIMEOUT_MS 60000
#define MAX_RUNS	10000

struct boot_options {
	unsigned runs;
	bool vs_qemu;
	bool json;
	char kernel[4096];
	const char *initrd;
	const char *mem;
	const char *cmdline;
	const char *acpi; /* --acpi for snapvm run; NULL: its default */
	bool linux_kernel;
	char qemu_append[VMM_CMDLINE_MAX]; /* what snapvm gives a Linux kernel, for QEMU too */
};

struct series {
	const char *name;
	double *ms;
	unsigned count;
};

/*
 * One boot: spawn, wait for READY, then end it (not timed). The test guest
 * under snapvm is told to exit, which checks that it ran well; QEMU has no exit
 * device here, and the Linux guest's protocol promises only ping: both are
 * killed.
 */
static int boot_once(char *const argv[], bool ask_exit, double *ms)
{
	struct child child;
	uint64_t start = time_now_ns();
	int ret = child_spawn(argv, CHILD_STDERR_NULL, &child);

	if (ret)
		return ret;
	ret = child_wait_line(&child, "READY", false, BOOT_TIMEOUT_MS, NULL, 0);
	*ms = (double)(time_now_ns() - start) / 1e6;
	if (ret == 0 && ask_exit) {
		child_send_line(&child, "exit 0");
		if (child_finish(&child, BOOT_TIMEOUT_MS) != 0)
			ret = -EIO;
	} else {
		child_kill(&child);
	}
	return ret;
}

/* The samples first, in run order: the statistics below sort them in place. */
static void series_print_json(const struct series *s, bool last)
{
	printf("  \"%s_ms\": [", s->name);
	for (unsigned i = 0; i < s->count; i++)
		printf("%s%.3f", i ? ", " : "", s->ms[i]);
	printf("],\n");
	printf("  \"%s_ms_median\": %.3f,\n  \"%s_ms_p90\": %.3f,\n  \"%s_ms_min\": %.3f%s\n",
	       s->name, stats_percentile(s->ms, s->count, 50), s->name,
	       stats_percentile(s->ms, s->count, 90), s->name, stats_percentile(s->ms, s->count, 0),
	       last ? "" : ",");
}

static void series_print_row(const struct series *s)
{
	printf("%-8s %6u %10.2f %10.2f %10.2f %10.2f\n", s->name, s->count,
	       stats_percentile(s->ms, s->count, 50), stats_percentile(s->ms, s->count, 90),
	       stats_percentile(s->ms, s->count, 0), stats_percentile(s->ms, s->count, 100));
}

static void boot_report(const struct boot_options *o, struct series *series, unsigned n)
{
	double snapvm;

	if (o->json) {
		printf("{\n  \"bench\": \"boot\",\n  \"runs\": %u,\n  \"mem\": \"%s\",\n"
		       "  \"cmdline\": \"%s\",\n",
		       o->runs, o->mem, o->cmdline);
		for (unsigned i = 0; i < n; i++)
			series_print_json(&series[i], i + 1 == n);
		printf("}\n");
		return;
	}
	snapvm = stats_percentile(series[0].ms, series[0].count, 50);
	printf("boot to READY, %u runs, --mem %s, cmdline \"%s\" (ms)\n", o->runs, o->mem,
	       o->cmdline);
	printf("%-8s %6s %10s %10s %10s %10s\n", "vmm", "runs", "median", "p90", "min", "max");
	for (unsigned i = 0; i < n; i++)
		series_print_row(&series[i]);
	if (n == 2)
		printf("snapvm's median is %.1fx lower than QEMU microvm's\n",
		       stats_percentile(series[1].ms, series[1].count, 50) / snapvm);
}

static void boot_help(void)
{
	printf("usage: snapvm bench boot [--runs N] [--vs-qemu] [--json]\n"
	       "                         [--kernel PATH [--initrd FILE]] [--mem SIZE]\n"
	       "                         [--cmdline STR] [--acpi on|off]\n\n"
	       "Times process start to the guest's READY line over N runs (default 20)\n"
	       "and prints median and p90; --vs-qemu also boots the same kernel under\n"
	       "QEMU microvm, alternating runs. Defaults: the test guest beside this\n"
	       "binary, --mem 128M, --cmdline heap=0. A Linux kernel (bzImage or\n"
	       "vmlinux) needs an --initrd whose init prints READY (make guest-linux\n"
	       "builds one) and a host with hardware virtualization (elsewhere the bench\n"
	       "says why it cannot run); QEMU then gets the same initrd and snapvm's\n"
	       "command line. --acpi goes to snapvm run (default: on for Linux, off for\n"
	       "the test guest) and to QEMU (-M microvm,acpi=...), so that a Linux boot\n"
	       "can be timed with and without the ACPI tables.\n");
}

static int boot_option(int opt, const char *value, void *ctx)
{
	struct boot_options *o = ctx;

	switch (opt) {
	case 'i':
		o->initrd = value;
		return 0;
	case 'm':
		o->mem = value;
		return 0;
	case 'c':
		o->cmdline = value;
		return 0;
	case 'a':
		if (strcmp(value, "on") && strcmp(value, "off"))
			return bench_usage_error("boot", "--acpi: '%s' is not on or off", value);
		o->acpi = value;
		return 0;
	default:
		return EXIT_USAGE;
	}
}

static int boot_parse(int argc, char **argv, struct boot_options *o)
{
	static const struct option longopts[] = {
		{ "runs", required_argument, NULL, 'r' },
		{ "vs-qemu", no_argument, NULL, 'q' },
		{ "json", no_argument, NULL, 'j' },
		{ "kernel", required_argument, NULL, 'k' },
		{ "initrd", required_argument, NULL, 'i' },
		{ "mem", required_argument, NULL, 'm' },
		{ "cmdline", required_argument, NULL, 'c' },
		{ "acpi", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const struct bench_cli cli = { .name = "boot",
				       .options = longopts,
				       .option = boot_option,
				       .help = boot_help,
				       .json = &o->json,
				       .kernel = o->kernel,
				       .kernel_size = sizeof(o->kernel),
				       .runs = &o->runs,
				       .max_runs = MAX_RUNS,
				       .vs_qemu = &o->vs_qemu };
	int ret;

	*o = (struct boot_options){ .runs = 20, .mem = "128M" };
	ret = bench_parse(&cli, argc, argv, o);
	if (ret)
		return ret;
	o->linux_kernel = vmm_kernel_is_linux(o->kernel);
	if (!o->cmdline)
		o->cmdline = o->linux_kernel ? "" : "heap=0";
	/* QEMU gets the words snapvm puts before a Linux command line (vmm/kernel.c) */
	snprintf(o->qemu_append, sizeof(o->qemu_append), "%s%s%s",
		 o->linux_kernel ? BENCH_QEMU_LINUX_APPEND : "",
		 o->linux_kernel && o->cmdline[0] ? " " : "", o->cmdline);
	return 0;
}

int bench_boot_main(int argc, char **argv)
{
	struct boot_options o;
	struct series series[2] = { { .name = "snapvm" }, { .name = "qemu" } };
	unsigned nseries;
	int n;
	char *snapvm_argv[14], *qemu_argv[24];
	int ret = boot_parse(argc, argv, &o);

	if (ret)
		return ret < 0 ? EXIT_OK : ret;
	if (o.linux_kernel && !bench_host_has_hardware_virtualization())
		return bench_report_no_linux("boot", o.json);
	nseries = o.vs_qemu ? 2 : 1;
	snapvm_argv[0] = (char *)bench_self_path();
	memcpy(&snapvm_argv[1],
	       (char *[]){ "run", "--kernel", o.kernel, "--mem", (char *)o.mem, "--cmdline",
			   (char *)o.cmdline, "--acpi", (char *)(o.acpi ? o.acpi : ""),
			   o.initrd ? "--initrd" : NULL, (char *)o.initrd, NULL },
	       12 * sizeof(char *));
	if (!o.acpi) /* snapvm run's own default */
		memmove(&snapvm_argv[8], &snapvm_argv[10], 3 * sizeof(char *));
	n = bench_qemu_argv(qemu_argv, ARRAY_SIZE(qemu_argv), o.kernel, o.qemu_append, o.mem);
	if (o.linux_kernel) /* QEMU's ACPI as snapvm's: on for Linux unless --acpi off */
		bench_qemu_argv_linux(qemu_argv, n, ARRAY_SIZE(qemu_argv), o.initrd,
				      !o.acpi || !strcmp(o.acpi, "on"));
	for (unsigned i = 0; i < nseries; i++)
		series[i].ms = calloc(o.runs, sizeof(double));
	for (unsigned run = 0; run < o.runs; run++) {
		for (unsigned i = 0; i < nseries; i++) {
			char *const *argv_i = i == 0 ? snapvm_argv : qemu_argv;

			ret = boot_once(argv_i, i == 0 && !o.linux_kernel,
					&series[i].ms[series[i].count]);
			if (ret) {
				fprintf(stderr, "snapvm bench boot: %s run %u failed: %s\n",
					series[i].name, run + 1, strerror(-ret));
				goto out;
			}
			series[i].count++;
		}
	}
	boot_report(&o, series, nseries);
out:
	for (unsigned i = 0; i < nseries; i++)
		free(series[i].ms);
	return ret ? EXIT_RUNTIME : EXIT_OK;
}
