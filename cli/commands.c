#include "cli/cli.h"

/* One line per subcommand; `snapvm --help` lists them in this order. */
const struct cli_command cli_commands[] = {
	{ "run", "boot a kernel or the test guest", cmd_run_main },
	{ "bench", "measure boot and restore times, beside QEMU microvm", cmd_bench_main },
	{ 0 },
};
