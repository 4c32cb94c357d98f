/* snapvm bench: dispatch to the measurements in bench/. */
#include "cli/cli.h"
#include "bench/bench.h"

#include <stdio.h>
#include <string.h>

static const struct cli_command bench_commands[] = {
	{ "boot", "process start to READY, snapvm beside QEMU microvm", bench_boot_main },
	{ "restore", "process start to a restored clone's first reply, beside QEMU",
	  bench_restore_main },
	{ "density", "N clones of one snapshot up at once: rate, reply time, memory each",
	  bench_density_main },
	{ "store", "the snapshot store's writes and reads beside plain files", bench_store_main },
	{ "vsock", "host <-> guest round trips over vsock, beside the serial console",
	  bench_vsock_main },
	{ "blk", "virtio-blk throughput, beside the raw file's on the host", bench_blk_main },
	{ "net", "UDP request/reply over TAP and user networking, beside QEMU microvm",
	  bench_net_main },
	{ "serve", "invocations through snapvm serve, beside snapvm invoke processes",
	  bench_serve_main },
	{ 0 },
};

static void bench_help(void)
{
	printf("usage: snapvm bench WHAT [options]\n\nmeasurements:\n");
	for (const struct cli_command *c = bench_commands; c->name; c++)
		printf("  %-10s %s\n", c->name, c->summary);
	printf("\n'snapvm bench WHAT --help' describes its options.\n");
}

int cmd_bench_main(int argc, char **argv)
{
	if (argc < 2) {
		bench_help();
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		bench_help();
		return EXIT_OK;
	}
	for (const struct cli_command *c = bench_commands; c->name; c++) {
		if (!strcmp(argv[1], c->name))
			return c->main(argc - 1, argv + 1);
	}
	return opt_usage_error("bench", "unknown measurement '%s'", argv[1]);
}
