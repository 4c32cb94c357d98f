/* snapvm ls and snapvm rm: short for snapvm store ls and snapvm store rm. */
#include "cli/cli.h"

#include <stdlib.h>

static int store_alias(const char *subcommand, int argc, char **argv)
{
	char **args = calloc((size_t)argc + 2, sizeof(*args));
	int ret;

	if (!args)
		return EXIT_RUNTIME;
	args[0] = "store";
	args[1] = (char *)subcommand;
	for (int i = 1; i < argc; i++)
		args[i + 1] = argv[i];
	ret = cmd_store_main(argc + 1, args);
	free(args);
	return ret;
}

int cmd_ls_main(int argc, char **argv)
{
	return store_alias("ls", argc, argv);
}

int cmd_rm_main(int argc, char **argv)
{
	return store_alias("rm", argc, argv);
}
