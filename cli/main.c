/* snapvm: entry point; global options, then dispatch to a subcommand. */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

static void print_help(void)
{
	printf("usage: snapvm [-v|-vv] COMMAND [ARGS...]\n\n"
	       "A microVM monitor for KVM on x86-64 that boots a guest once, snapshots it and\n"
	       "restores clones of it in milliseconds.\n\ncommands:\n");
	for (const struct cli_command *c = cli_commands; c->name; c++)
		printf("  %-10s %s\n", c->name, c->summary);
	printf("\n'snapvm COMMAND --help' describes a command's options.\n");
}

int main(int argc, char **argv)
{
	int i = 1;

	/* replies and figures go out as soon as they are printed, even into a pipe */
	setvbuf(stdout, NULL, _IOLBF, 0);

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			print_help();
			return EXIT_OK;
		} else if (!strcmp(argv[i], "-v")) {
			log_threshold = LOG_INFO;
		} else if (!strcmp(argv[i], "-vv")) {
			log_threshold = LOG_DEBUG;
		} else if (!strcmp(argv[i], "--version")) {
			printf("snapvm %s\n", SNAPVM_VERSION);
			return EXIT_OK;
		} else {
			fprintf(stderr, "snapvm: unknown option '%s' (see 'snapvm --help')\n",
				argv[i]);
			return EXIT_USAGE;
		}
	}
	if (i == argc) {
		print_help();
		return EXIT_USAGE;
	}
	for (const struct cli_command *c = cli_commands; c->name; c++) {
		if (!strcmp(argv[i], c->name))
			return c->main(argc - i, argv + i);
	}
	fprintf(stderr, "snapvm: unknown command '%s' (see 'snapvm --help')\n", argv[i]);
	return EXIT_USAGE;
}
