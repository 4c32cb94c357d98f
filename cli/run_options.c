#include "cli/run_options.h"
#include "cli/cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

/* getopt's codes of the VM options: this plus their index in vm_options[]. */
#define RUN_OPT_VM   0x100
#define RUN_OPT_ROOM 64 /* getopt entries: the VM options and run's own */

/* snapvm run's getopt table: every VM option, then run's own options. */
static void run_longopts(struct option *longopts)
{
	static const struct option own[] = {
		{ "api-sock", required_argument, NULL, 'a' },
		{ "snapshot-on-ready", required_argument, NULL, 's' },
		{ "resume", no_argument, NULL, 'r' },
		{ "store", required_argument, NULL, 'S' },
		{ "seccomp", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		JAIL_LONGOPTS,
		{ 0 },
	};
	size_t n = 0;

	for (const struct vm_option *v = vm_options; v->flag; v++, n++) {
		if (n + ARRAY_SIZE(own) == RUN_OPT_ROOM)
			abort(); /* more VM options than RUN_OPT_ROOM holds: raise it */
		longopts[n] = (struct option){ v->flag + 2,
					       v->kind == VM_OPTION_SWITCH ? no_argument
									   : required_argument,
					       NULL, RUN_OPT_VM + (int)n };
	}
	memcpy(longopts + n, own, sizeof(own));
}

int run_options_parse(int argc, char **argv, struct run_options *options)
{
	struct option longopts[RUN_OPT_ROOM];
	const struct vmm_config *vm = &options->vm.config;
	int opt, ret = 0;

	memset(options, 0, sizeof(*options));
	vm_settings_init(&options->vm);
	options->seccomp = SANDBOX_ON;
	jail_options_init(&options->jail);
	run_longopts(longopts);
	optind = 0; /* glibc: start afresh, so that tests can parse many times */
	opterr = 0;
	while (!ret && (opt = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
		switch (opt) {
		case RUN_OPT_VM ... RUN_OPT_VM + RUN_OPT_ROOM - 1:
			ret = vm_option_parse(&vm_options[opt - RUN_OPT_VM], "run", optarg,
					      &options->vm);
			break;
		case 'a':
			options->api_sock = optarg;
			break;
		case 's':
			options->snapshot_on_ready = optarg;
			break;
		case 'r':
			options->resume = true;
			break;
		case 'S':
			options->store = optarg;
			break;
		case 'C':
			ret = cli_seccomp_option("run", optarg, &options->seccomp);
			break;
		case JAIL_OPT_DIR ... JAIL_OPT_LAST:
			ret = jail_option_parse("run", opt, optarg, &options->jail);
			break;
		case 'h':
			options->help = true;
			return 0;
		default: /* ':' (no value) or '?' (unknown) */
			return opt_getopt_error("run", opt, argv);
		}
	}
	if (ret)
		return ret;
	if (optind < argc)
		return opt_usage_error("run", "unexpected argument '%s'", argv[optind]);
	if (!vm->kernel_path)
		return opt_usage_error("run", "--kernel PATH is required");
	if (vm->no_legacy && (vm->console == VMM_CONSOLE_STDIO || vm->console == VMM_CONSOLE_FILE))
		return opt_usage_error("run",
				       "--no-legacy removes the serial port that --console %s "
				       "uses: add --console virtio or none",
				       vm->console == VMM_CONSOLE_STDIO ? "stdio" : "file");
	if (vm->netns[0] && !vm->net_count)
		return opt_usage_error("run", "--netns goes with --net");
	if (options->jail.dir && options->snapshot_on_ready)
		return opt_usage_error("run", "--snapshot-on-ready cannot be jailed: a jailed VM "
					      "cannot write to the store");
	ret = jail_options_check("run", &options->jail);
	if (ret)
		return ret;
	if (options->resume && !options->snapshot_on_ready)
		return opt_usage_error("run", "--resume goes with --snapshot-on-ready NAME");
	if (options->snapshot_on_ready)
		return cli_snapshot_name_option("run", options->snapshot_on_ready);
	return 0;
}
