/* snapvm snapshot: ask a running VM (through its --api-sock) to snapshot itself. */
#include "cli/cli.h"
#include "control/control.h"
#include "snapshot/snapshot.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void snapshot_help(void)
{
	printf("usage: snapvm snapshot --api-sock PATH NAME [--resume]\n\n"
	       "Snapshots the VM that serves PATH (snapvm run/restore --api-sock PATH) as NAME.\n"
	       "The VM stops after the snapshot unless --resume is given. Prints one line:\n"
	       "the snapshot's sizes and how long pausing, capturing and writing took.\n"
	       "The VM writes it into its own store, the one it was started with (its\n"
	       "--store): this command takes no --store.\n\n"
	       "The socket speaks one request per connection, a line each way:\n"
	       "  snapshot NAME [resume]   ->  ok snapshot NAME ...   |  error MESSAGE\n"
	       "  status                   ->  ok running\n"
	       "  stop                     ->  ok stopping\n");
}

int cmd_snapshot_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "api-sock", required_argument, NULL, 'a' },
		{ "resume", no_argument, NULL, 'r' },
		{ "store", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *path = NULL;
	char request[256], reply[1024];
	bool resume = false;
	int opt, ret;

	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'a':
			path = optarg;
			break;
		case 'r':
			resume = true;
			break;
		case 's':
			return opt_usage_error("snapshot",
					       "--store: the VM writes the snapshot into its own "
					       "store, the one given to its run or restore");
		case 'h':
			snapshot_help();
			return EXIT_OK;
		default: /* ':' (no value) or '?' (unknown) */
			return opt_getopt_error("snapshot", opt, argv);
		}
	}
	if (!path)
		return opt_usage_error("snapshot", "--api-sock PATH is required");
	if (optind + 1 != argc)
		return opt_usage_error("snapshot", "give exactly one snapshot NAME");
	ret = cli_snapshot_name_option("snapshot", argv[optind]);
	if (ret)
		return ret;
	snprintf(request, sizeof(request), "snapshot %s%s\n", argv[optind],
		 resume ? " resume" : "");
	ret = control_request(path, request, reply, sizeof(reply), 0);
	if (ret) {
		fprintf(stderr, "snapvm snapshot: cannot reach a VM at %s: %s\n", path,
			strerror(-ret));
		return EXIT_RUNTIME;
	}
	if (strncmp(reply, "ok ", 3)) {
		fprintf(stderr, "snapvm snapshot: %s\n",
			strncmp(reply, "error ", 6) ? reply : reply + 6);
		return EXIT_RUNTIME;
	}
	printf("%s\n", reply + 3);
	return EXIT_OK;
}
