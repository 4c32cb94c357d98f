/* snapvm ls and snapvm rm: the snapshots in the repository. */
#include "cli/cli.h"
#include "snapshot/snapshot.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

struct ls_state {
	bool json;
	unsigned count;
};

static void ls_print(const struct snapshot_info *info, void *opaque)
{
	struct ls_state *st = opaque;
	time_t created = (time_t)(info->created_ns / 1000000000ULL);
	char when[32];

	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime(&created));
	if (st->json) {
		printf("%s\n  {\"name\": \"%s\", \"created\": \"%s\", \"mem_bytes\": %llu, \"cpus\": %u, "
		       "\"state_bytes\": %llu, \"memory_bytes\": %llu}",
		       st->count ? "," : "", info->name, when, (unsigned long long)info->mem_size,
		       info->cpus, (unsigned long long)info->state_bytes,
		       (unsigned long long)info->memory_bytes);
	} else {
		if (!st->count)
			printf("%-24s %-19s %8s %4s %10s %12s\n", "NAME", "CREATED", "MEM", "CPUS",
			       "STATE", "MEMORY");
		printf("%-24s %-19s %7lluM %4u %9.1fK %11.1fM\n", info->name, when,
		       (unsigned long long)(info->mem_size >> 20), info->cpus,
		       info->state_bytes / 1024.0, info->memory_bytes / 1048576.0);
	}
	st->count++;
}

/* Parses the options common to ls and rm; returns the index of the first operand. */
static int repo_command_parse(const char *command, int argc, char **argv, const char **store,
			      bool *json, const char *usage)
{
	static const struct option longopts[] = {
		{ "store", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int opt;

	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			*store = optarg;
			break;
		case 'j':
			if (!json)
				return -cli_usage_error(command, "unknown option '--json'");
			*json = true;
			break;
		case 'h':
			printf("%s", usage);
			return -EXIT_OK - 1000;
		case ':':
			return -cli_usage_error(command, "%s needs a value", argv[optind - 1]);
		default:
			return -cli_usage_error(command, "unknown option '%s'", argv[optind - 1]);
		}
	}
	return optind;
}

int cmd_ls_main(int argc, char **argv)
{
	struct ls_state st = { 0 };
	struct snapshot_repo *repo;
	const char *store = NULL;
	int first = repo_command_parse(
		"ls", argc, argv, &store, &st.json,
		"usage: snapvm ls [--json] [--store DIR]\n\nLists the snapshots: name, when taken, "
		"guest RAM, vCPUs, and the bytes\nits state and its memory take on disk.\n");
	int ret;

	if (first < 0)
		return first == -1000 ? EXIT_OK : -first;
	if (first != argc)
		return cli_usage_error("ls", "unexpected argument '%s'", argv[first]);
	ret = cli_repo_open("ls", store, &repo);
	if (ret)
		return ret;
	if (st.json)
		printf("[");
	ret = snapshot_list(repo, ls_print, &st);
	if (st.json)
		printf("%s]\n", st.count ? "\n" : "");
	snapshot_repo_close(repo);
	return ret ? EXIT_RUNTIME : EXIT_OK;
}

int cmd_rm_main(int argc, char **argv)
{
	struct snapshot_repo *repo;
	const char *store = NULL;
	char error[512];
	int first = repo_command_parse(
		"rm", argc, argv, &store, NULL,
		"usage: snapvm rm NAME... [--store DIR]\n\nDeletes snapshots.\n");
	int ret, status = EXIT_OK;

	if (first < 0)
		return first == -1000 ? EXIT_OK : -first;
	if (first == argc)
		return cli_usage_error("rm", "give the NAME of a snapshot to delete");
	for (int i = first; i < argc; i++) {
		ret = cli_snapshot_name_option("rm", argv[i]);
		if (ret)
			return ret;
	}
	ret = cli_repo_open("rm", store, &repo);
	if (ret)
		return ret;
	for (int i = first; i < argc; i++) {
		if (snapshot_remove(repo, argv[i], error, sizeof(error))) {
			fprintf(stderr, "snapvm rm: %s\n", error);
			status = EXIT_RUNTIME;
		}
	}
	snapshot_repo_close(repo);
	return status;
}
