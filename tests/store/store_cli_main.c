/*
 * snapvm-store: `snapvm store` on its own, linked from cli/cmd_store.c, so
 * that the store's scripted tests can run before (or without) the store
 * command being wired into build/snapvm. The scripts prefer build/snapvm.
 */
#include "cli/cli.h"

#include <string.h>

int main(int argc, char **argv)
{
	int i = 1;

	for (; i < argc && (!strcmp(argv[i], "-v") || !strcmp(argv[i], "-vv")); i++)
		log_threshold = argv[i][2] ? LOG_DEBUG : LOG_INFO;
	argv[i - 1] = "store";
	return cmd_store_main(argc - i + 1, argv + i - 1);
}
