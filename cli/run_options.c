#include "cli/run_options.h"
#include "cli/cli.h"

#include <getopt.h>
#include <string.h>

int console_option_parse(const char *command, const char *text, struct vmm_config *config)
{
	if (!strcmp(text, "stdio")) {
		config->console = VMM_CONSOLE_STDIO;
	} else if (!strcmp(text, "none")) {
		config->console = VMM_CONSOLE_NONE;
	} else if (!strcmp(text, "virtio")) {
		config->console = VMM_CONSOLE_VIRTIO;
	} else if (!strncmp(text, "file:", 5) && text[5]) {
		config->console = VMM_CONSOLE_FILE;
		config->console_path = text + 5;
	} else {
		return cli_usage_error(
			command, "--console: '%s' is not stdio, none, virtio or file:PATH", text);
	}
	return 0;
}

static int boot_option_parse(const char *text, enum vmm_boot_mode *boot)
{
	static const struct {
		const char *name;
		enum vmm_boot_mode mode;
	} modes[] = { { "auto", VMM_BOOT_AUTO },
		      { "elf64", VMM_BOOT_ELF64 },
		      { "pvh", VMM_BOOT_PVH } };

	for (size_t i = 0; i < ARRAY_SIZE(modes); i++) {
		if (!strcmp(text, modes[i].name)) {
			*boot = modes[i].mode;
			return 0;
		}
	}
	return cli_usage_error("run", "--boot: '%s' is not auto, elf64 or pvh", text);
}

static int acpi_option_parse(const char *text, enum run_acpi *acpi)
{
	if (!strcmp(text, "on"))
		*acpi = RUN_ACPI_ON;
	else if (!strcmp(text, "off"))
		*acpi = RUN_ACPI_OFF;
	else
		return cli_usage_error("run", "--acpi: '%s' is not on or off", text);
	return 0;
}

int run_options_parse(int argc, char **argv, struct run_options *options)
{
	static const struct option longopts[] = {
		{ "kernel", required_argument, NULL, 'k' },
		{ "initrd", required_argument, NULL, 'i' },
		{ "cmdline", required_argument, NULL, 'c' },
		{ "no-legacy", no_argument, NULL, 'L' },
		{ "mem", required_argument, NULL, 'm' },
		{ "cpus", required_argument, NULL, 'n' },
		{ "console", required_argument, NULL, 'o' },
		{ "boot", required_argument, NULL, 'b' },
		{ "api-sock", required_argument, NULL, 'a' },
		{ "snapshot-on-ready", required_argument, NULL, 's' },
		{ "resume", no_argument, NULL, 'r' },
		{ "store", required_argument, NULL, 'S' },
		{ "disk", required_argument, NULL, 'd' },
		{ "vsock", required_argument, NULL, 'v' },
		{ "rng", no_argument, NULL, 'R' },
		{ "net", required_argument, NULL, 'N' },
		{ "netns", required_argument, NULL, 'T' },
		{ "acpi", required_argument, NULL, 'A' },
		{ "graceful", no_argument, NULL, 'G' },
		{ "seccomp", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		JAIL_LONGOPTS,
		{ 0 },
	};
	struct vmm_config *vm = &options->vm;
	uint64_t value;
	int opt, ret = 0;

	memset(options, 0, sizeof(*options));
	vmm_config_init(vm);
	options->seccomp = SANDBOX_ON;
	jail_options_init(&options->jail);
	optind = 0; /* glibc: start afresh, so that tests can parse many times */
	opterr = 0;
	while (!ret && (opt = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'k':
			vm->kernel_path = optarg;
			break;
		case 'i':
			vm->initrd_path = optarg;
			break;
		case 'c':
			vm->cmdline = optarg;
			break;
		case 'L':
			vm->no_legacy = true;
			break;
		case 'm':
			ret = cli_parse_size_option("run", "--mem", optarg, &vm->mem_size);
			if (!ret && (vm->mem_size < VMM_MIN_MEM || vm->mem_size > VMM_MAX_MEM ||
				     vm->mem_size % PAGE_SIZE))
				ret = cli_usage_error(
					"run",
					"--mem: %s is not a multiple of 4 KiB from 4M to 256G",
					optarg);
			break;
		case 'n':
			ret = cli_parse_uint_option("run", "--cpus", optarg, 1, VMM_MAX_CPUS,
						    &value);
			vm->cpus = (unsigned)value;
			break;
		case 'o':
			ret = console_option_parse("run", optarg, vm);
			break;
		case 'b':
			ret = boot_option_parse(optarg, &vm->boot);
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
		case 'd':
			ret = disk_option_parse("run", optarg, vm);
			break;
		case 'v':
			ret = vsock_option_parse("run", optarg, vm);
			break;
		case 'R':
			vm->rng = true;
			break;
		case 'N':
			ret = net_option_parse("run", optarg, vm);
			break;
		case 'T':
			ret = netns_option_parse("run", optarg, vm);
			break;
		case 'A':
			ret = acpi_option_parse(optarg, &options->acpi);
			break;
		case 'G':
			vm->graceful = true;
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
		case ':':
			return cli_usage_error("run", "%s needs a value", argv[optind - 1]);
		default:
			return cli_usage_error("run", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (ret)
		return ret;
	if (optind < argc)
		return cli_usage_error("run", "unexpected argument '%s'", argv[optind]);
	if (!vm->kernel_path)
		return cli_usage_error("run", "--kernel PATH is required");
	if (vm->no_legacy && (vm->console == VMM_CONSOLE_STDIO || vm->console == VMM_CONSOLE_FILE))
		return cli_usage_error("run",
				       "--no-legacy removes the serial port that --console %s "
				       "uses: add --console virtio or none",
				       vm->console == VMM_CONSOLE_STDIO ? "stdio" : "file");
	if (vm->netns[0] && !vm->net_count)
		return cli_usage_error("run", "--netns goes with --net");
	if (options->jail.dir && options->snapshot_on_ready)
		return cli_usage_error("run", "--snapshot-on-ready cannot be jailed: a jailed VM "
					      "cannot write to the store");
	ret = jail_options_check("run", &options->jail);
	if (ret)
		return ret;
	if (options->resume && !options->snapshot_on_ready)
		return cli_usage_error("run", "--resume goes with --snapshot-on-ready NAME");
	if (options->snapshot_on_ready)
		return cli_snapshot_name_option("run", options->snapshot_on_ready);
	return 0;
}
