/* snapvm run: boot a kernel (the test guest, or a Linux ELF) and attach the console. */
#include "cli/cli.h"
#include "cli/run_options.h"

#include <stdio.h>

static void run_help(void)
{
	printf("usage: snapvm run --kernel PATH [options]\n\n"
	       "Boots a kernel in a new microVM with its serial console on this terminal.\n"
	       "snapvm exits when the guest does, with the guest's exit code.\n\n"
	       "options:\n"
	       "  --kernel PATH      ELF64 kernel: snapvm's test guest or a Linux vmlinux\n"
	       "  --cmdline STR      kernel command line (test guest: heap=SIZE)\n"
	       "  --mem SIZE         guest RAM, e.g. 128M or 2G (default 128M)\n"
	       "  --cpus N           vCPUs, 1 to %d (default 1)\n"
	       "  --console WHERE    stdio (default), file:PATH (output to PATH, input from\n"
	       "                     stdin) or none\n"
	       "  --boot MODE        auto (default), elf64 (64-bit entry, Linux boot_params)\n"
	       "                     or pvh (the PVH note's 32-bit entry, as QEMU uses)\n"
	       "  -h, --help         this help\n",
	       VMM_MAX_CPUS);
}

int cmd_run_main(int argc, char **argv)
{
	struct run_options options;
	char error[256];
	struct vm *vm = NULL;
	int ret;

	ret = run_options_parse(argc, argv, &options);
	if (ret)
		return ret;
	if (options.help) {
		run_help();
		return EXIT_OK;
	}
	ret = vm_create(&options.vm, &vm);
	if (ret) {
		vm_destroy(vm);
		return EXIT_RUNTIME;
	}
	log_debug("VM created");
	ret = vm_load_kernel(vm, error, sizeof(error));
	if (ret) {
		fprintf(stderr, "snapvm run: %s\n", error);
		vm_destroy(vm);
		return EXIT_USAGE;
	}
	log_debug("kernel loaded");
	ret = vm_start(vm, false);
	ret = ret ? EXIT_RUNTIME : vm_run(vm);
	vm_destroy(vm);
	return ret;
}
