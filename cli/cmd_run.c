/* snapvm run: boot a kernel (the test guest, or a Linux ELF) and attach the console. */
#include "cli/cli.h"
#include "control/control.h"
#include "cli/run_options.h"
#include "snapshot/snapshot.h"

#include <stdio.h>

static void run_help(void)
{
	printf("usage: snapvm run --kernel PATH [options]\n\n"
	       "Boots a kernel in a new microVM with its serial console on this terminal.\n"
	       "snapvm exits when the guest does, with the guest's exit code.\n\n"
	       "options:\n");
	vm_options_help(stdout);
	printf("  --api-sock PATH    serve control requests on a Unix socket (see\n"
	       "                     'snapvm snapshot --help')\n"
	       "  --snapshot-on-ready NAME\n"
	       "                     snapshot the VM as NAME when the guest says it is ready,\n"
	       "                     then stop (exit 0), or with --resume keep running\n"
	       "  --store DIR        where snapshots go (default $SNAPVM_STORE or\n"
	       "                     ~/.local/share/snapvm)\n" CLI_SECCOMP_HELP JAIL_HELP
	       "  -h, --help         this help\n\n"
	       "Virtio devices sit at fixed MMIO slots; -v prints them as Linux command-line\n"
	       "words (virtio_mmio.device=...).\n\n"
	       "Exit status: the guest's (control port), 0 when it powers off or resets,\n"
	       "%d when its kernel panics (pvpanic, with ACPI), 1 when it fails, 2 for bad\n"
	       "arguments, 128+N on signal N.\n",
	       VMM_EXIT_GUEST_PANIC);
}

/* The virtio devices as a Linux guest finds them on its command line. */
static void run_list_virtio(const struct vm *vm)
{
	char words[1024];

	if (vm_virtio_cmdline(vm, words, sizeof(words)) > 0)
		log_info("virtio devices: %s%s", words,
			 vm_config(vm)->acpi ? " (given to the guest in the DSDT, not these words)"
					     : "");
}

/* The control socket and snapshot-on-ready, when asked for. */
static int run_control_setup(const struct run_options *o, struct vm *vm,
			     struct snapshot_repo **repo, struct control **control)
{
	int ret;

	if (!o->api_sock && !o->snapshot_on_ready)
		return 0;
	ret = cli_repo_open(o->store, true, repo);
	if (ret)
		return ret;
	if (o->api_sock && control_listen(control, vm, NULL, *repo, o->api_sock))
		return EXIT_RUNTIME;
	if (o->snapshot_on_ready &&
	    control_on_ready(control, vm, *repo, o->snapshot_on_ready, o->resume))
		return EXIT_RUNTIME;
	return 0;
}

int cmd_run_main(int argc, char **argv)
{
	struct run_options options;
	struct snapshot_repo *repo = NULL;
	struct control *control = NULL;
	struct vm *vm = NULL;
	struct jail jail;
	int ret, status;

	ret = run_options_parse(argc, argv, &options);
	if (ret)
		return ret;
	if (options.help) {
		run_help();
		return EXIT_OK;
	}
	if (jail_enter("run", &options.jail, &jail, &status))
		return status;
	if (cli_sandbox_start(options.seccomp,
			      options.jail.dir ? SANDBOX_JAILED_STARTUP : SANDBOX_STARTUP))
		return EXIT_RUNTIME;
	/* the test guest boots without ACPI: no tables to build, nothing to read */
	options.vm.config.acpi = options.vm.acpi == VM_ACPI_ON ||
				 (options.vm.acpi == VM_ACPI_AUTO &&
				  vmm_kernel_is_linux(options.vm.config.kernel_path));
	if (vm_create(&options.vm.config, &vm)) {
		ret = EXIT_RUNTIME;
		goto out;
	}
	log_debug("VM created");
	vm_ram_huge_pages(vm); /* a booting guest touches much of its memory */
	run_list_virtio(vm);
	if (vm_load_kernel(vm)) {
		ret = EXIT_USAGE;
		goto out;
	}
	log_debug("kernel loaded");
	ret = run_control_setup(&options, vm, &repo, &control);
	if (!ret)
		ret = jail_lock(&jail, repo, NULL);
	if (!ret)
		ret = vm_start(vm, false) ? EXIT_RUNTIME : vm_run(vm);
out:
	control_close(control);
	vm_destroy(vm);
	if (repo)
		snapshot_repo_close(repo);
	return ret;
}
