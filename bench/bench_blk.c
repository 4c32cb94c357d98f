/*
 * snapvm bench blk: virtio-blk throughput seen from the test guest
 * (sequential 64 KiB requests over the whole disk, then 4 KiB requests at
 * random offsets, one request in flight), beside the same pattern of
 * pread/pwrite on the raw file from the host in the same run. Guest figures
 * are timed from the host, request line to reply.
 */
#include "bench/bench.h"
#include "bench/bench_util.h"
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TIMEOUT_MS  120000
#define SEQ_CHUNK   (64 * 1024)
#define RANDOM_SIZE 4096

struct blk_options {
	uint64_t size;
	unsigned random_count;
	bool json;
	char kernel[4096];
};

struct blk_result {
	const char *name;
	uint64_t bytes;
	double guest_s;
	double host_s;
};

/* Times one guest request, from sending its line to its OK reply. */
static int guest_timed(struct child *child, const char *request, double *seconds)
{
	uint64_t start = time_now_ns();
	char reply[128];
	int ret = child_send_line(child, request);

	if (!ret)
		ret = child_wait_line(child, "", true, TIMEOUT_MS, reply, sizeof(reply));
	if (!ret && strncmp(reply, "OK ", 3)) {
		fprintf(stderr, "snapvm bench blk: '%s' got '%s'\n", request, reply);
		ret = -EIO;
	}
	*seconds = (double)(time_now_ns() - start) / 1e9;
	return ret;
}

/* The same pattern on the host: sequential chunks, or the guest's random 4 KiB offsets. */
static int host_timed(int fd, bool write, bool random, const struct blk_options *o, double *seconds)
{
	static uint8_t buf[SEQ_CHUNK];
	uint64_t start = time_now_ns(), count = random ? o->random_count : o->size / SEQ_CHUNK;
	size_t len = random ? RANDOM_SIZE : SEQ_CHUNK;

	memset(buf, 0x5a, sizeof(buf));
	for (uint64_t i = 0; i < count; i++) {
		uint64_t offset = random ? (uint64_t)rand() % (o->size / RANDOM_SIZE) * RANDOM_SIZE
					 : i * SEQ_CHUNK;
		ssize_t n = write ? pwrite(fd, buf, len, (off_t)offset)
				  : pread(fd, buf, len, (off_t)offset);

		if (n != (ssize_t)len)
			return -EIO;
	}
	*seconds = (double)(time_now_ns() - start) / 1e9;
	return 0;
}

static void report(const struct blk_options *o, const struct blk_result *r, unsigned n)
{
	if (o->json) {
		printf("{\n  \"bench\": \"blk\",\n  \"disk_bytes\": %llu,\n",
		       (unsigned long long)o->size);
		for (unsigned i = 0; i < n; i++)
			printf("  \"%s_guest_mib_s\": %.1f,\n  \"%s_host_mib_s\": %.1f%s\n",
			       r[i].name, r[i].bytes / r[i].guest_s / MiB, r[i].name,
			       r[i].bytes / r[i].host_s / MiB, i + 1 == n ? "" : ",");
		printf("}\n");
		return;
	}
	printf("virtio-blk, %llu MiB raw file, one request in flight (MiB/s)\n",
	       (unsigned long long)(o->size / MiB));
	printf("%-14s %12s %12s %8s %10s\n", "pattern", "guest", "host file", "ratio",
	       "guest IOPS");
	for (unsigned i = 0; i < n; i++) {
		double guest = r[i].bytes / r[i].guest_s / MiB,
		       host = r[i].bytes / r[i].host_s / MiB;
		bool small = strstr(r[i].name, "4k") != NULL;

		printf("%-14s %12.1f %12.1f %7.0f%% %10.0f\n", r[i].name, guest, host,
		       100 * guest / host,
		       (r[i].bytes / (small ? RANDOM_SIZE : SEQ_CHUNK)) / r[i].guest_s);
	}
}

static void blk_help(void)
{
	printf("usage: snapvm bench blk [--size SIZE] [--random N] [--json] [--kernel ELF]\n\n"
	       "Boots the test guest with a fresh raw disk of SIZE (default 64M) and times\n"
	       "sequential 64 KiB writes and reads of all of it, then N (default 2000)\n"
	       "4 KiB writes and reads at random offsets; the host does the same on the\n"
	       "file with pwrite/pread in the same run.\n");
}

static int blk_option(int opt, const char *value, void *ctx)
{
	struct blk_options *o = ctx;
	uint64_t n;

	switch (opt) {
	case 's':
		if (parse_size(value, &o->size) || o->size < MiB || o->size % MiB)
			return bench_usage_error("blk", "--size: '%s' is not whole MiB", value);
		return 0;
	case 'r':
		if (parse_u64(value, &n) || n < 1 || n > 1000000)
			return bench_usage_error("blk", "--random: '%s' is not 1-1000000", value);
		o->random_count = (unsigned)n;
		return 0;
	default:
		return EXIT_USAGE;
	}
}

static int blk_parse(int argc, char **argv, struct blk_options *o)
{
	static const struct option longopts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "random", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "kernel", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const struct bench_cli cli = { .name = "blk",
				       .options = longopts,
				       .option = blk_option,
				       .help = blk_help,
				       .json = &o->json,
				       .kernel = o->kernel,
				       .kernel_size = sizeof(o->kernel) };

	*o = (struct blk_options){ .size = 64 * MiB, .random_count = 2000 };
	return bench_parse(&cli, argc, argv, o);
}

static int blk_measure(const struct blk_options *o, struct child *child, int fd)
{
	char seq_write[64], seq_read[64], rnd_write[64], rnd_read[64];
	struct blk_result r[4] = {
		{ "seq write", o->size, 0, 0 },
		{ "seq read", o->size, 0, 0 },
		{ "4k rand write", (uint64_t)o->random_count * RANDOM_SIZE, 0, 0 },
		{ "4k rand read", (uint64_t)o->random_count * RANDOM_SIZE, 0, 0 },
	};
	const char *requests[4] = { seq_write, seq_read, rnd_write, rnd_read };
	int ret = 0;

	snprintf(seq_write, sizeof(seq_write), "blk write 0 %llu 1",
		 (unsigned long long)(o->size / 512));
	snprintf(seq_read, sizeof(seq_read), "blk read 0 %llu",
		 (unsigned long long)(o->size / 512));
	snprintf(rnd_write, sizeof(rnd_write), "blk random write %u 1", o->random_count);
	snprintf(rnd_read, sizeof(rnd_read), "blk random read %u 1", o->random_count);
	for (unsigned i = 0; i < 4 && !ret; i++) {
		ret = guest_timed(child, requests[i], &r[i].guest_s);
		if (!ret)
			ret = host_timed(fd, i % 2 == 0, i >= 2, o, &r[i].host_s);
	}
	if (!ret)
		report(o, r, 4);
	return ret;
}

int bench_blk_main(int argc, char **argv)
{
	struct blk_options o;
	char path[] = "/tmp/snapvm-bench-blk-XXXXXX";
	struct child child = { .pid = -1 };
	int fd, ret = blk_parse(argc, argv, &o);

	if (ret)
		return ret < 0 ? EXIT_OK : ret;
	fd = mkstemp(path);
	if (fd < 0 || ftruncate(fd, (off_t)o.size)) {
		perror("snapvm bench blk: disk file");
		return EXIT_RUNTIME;
	}
	ret = child_spawn((char *[]){ (char *)bench_self_path(), "run", "--kernel", o.kernel,
				      "--disk", path, NULL },
			  false, &child);
	if (!ret)
		ret = child_wait_line(&child, "READY", false, TIMEOUT_MS, NULL, 0);
	if (!ret)
		ret = blk_measure(&o, &child, fd);
	if (ret)
		fprintf(stderr, "snapvm bench blk: %s\n", strerror(-ret));
	if (child.pid > 0 && !ret) {
		child_send_line(&child, "exit 0");
		child_finish(&child, TIMEOUT_MS);
	} else if (child.pid > 0) {
		child_kill(&child);
	}
	close(fd);
	unlink(path);
	return ret ? EXIT_RUNTIME : EXIT_OK;
}
