#include "cli/cli.h"

/* One line per subcommand; `snapvm --help` lists them in this order. */
const struct cli_command cli_commands[] = {
	{ "run", "boot a kernel or the test guest", cmd_run_main },
	{ "snapshot", "snapshot a running VM through its control socket", cmd_snapshot_main },
	{ "restore", "start clones of a snapshot", cmd_restore_main },
	{ "invoke", "send one request to a fresh clone, print the reply", cmd_invoke_main },
	{ "serve", "the HTTP/JSON API: invocations, clones, VMs, metrics", cmd_serve_main },
	{ "ls", "list snapshots (snapvm store ls)", cmd_ls_main },
	{ "rm", "delete snapshots (snapvm store rm)", cmd_rm_main },
	{ "store", "the snapshot store: ls, info, rm, gc, verify, du, export, import",
	  cmd_store_main },
	{ "bench", "measure boot and restore times, beside QEMU microvm", cmd_bench_main },
	{ 0 },
};
