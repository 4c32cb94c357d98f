/* snapvm store: look after the content-addressed snapshot store (store/store.h). */
#include "cli/cli.h"
#include "snapshot/snapshot.h"
#include "store/store.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct store_args {
	const char *command; /* "store ls", ... for messages */
	const char *dir;
	const char *as; /* import --as NAME */
	bool json;
	char **operands;
	int operand_count;
};

struct store_command {
	const char *name;
	const char *synopsis;
	const char *summary;
	int min_operands, max_operands;
	int names;   /* how many leading operands are snapshot names (INT_MAX: all) */
	bool writes; /* opens the store for writing (creating it if missing) */
	int (*run)(struct store *store, const struct store_args *args);
};

static void bytes_format(uint64_t bytes, char *out, size_t size)
{
	static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double value = (double)bytes;
	size_t unit = 0;

	while (value >= 1024 && unit + 1 < ARRAY_SIZE(units)) {
		value /= 1024;
		unit++;
	}
	snprintf(out, size, unit ? "%.1f %s" : "%.0f %s", value, units[unit]);
}

static void time_format(uint64_t ns, char *out, size_t size)
{
	time_t t = (time_t)(ns / 1000000000ULL);
	struct tm tm;

	strftime(out, size, "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
}

/* Prints "key": "escaped value" for JSON output. */
static void json_string(const char *key, const char *value, const char *end)
{
	char escaped[1024];

	json_escape(value, escaped, sizeof(escaped));
	printf("\"%s\": \"%s\"%s", key, escaped, end);
}

/* Draws a bar on stderr for long operations; only set when stderr is a terminal. */
static void progress_draw(void *opaque, const char *what, uint64_t done, uint64_t total)
{
	unsigned width = 40, filled = total ? (unsigned)(done * width / total) : width;

	(void)opaque;
	fprintf(stderr, "\r%-7s [%.*s%*s] %3u%%", what, filled,
		"########################################", (int)(width - filled), "",
		total ? (unsigned)(done * 100 / total) : 100);
	if (done >= total)
		fputc('\n', stderr);
	fflush(stderr);
}

struct ls_state {
	bool json;
	unsigned count;
};

static void ls_print(const struct store_snapshot_info *in, void *opaque)
{
	struct ls_state *st = opaque;
	char when[32], ram[24], stored[24];

	time_format(in->created_ns, when, sizeof(when));
	if (st->json) {
		printf("%s\n  {", st->count ? "," : "");
		json_string("name", in->name, ", ");
		json_string("created", when, ", ");
		printf("\"created_ns\": %" PRIu64 ", \"ram_bytes\": %" PRIu64
		       ", \"nonzero_bytes\": %" PRIu64 ", \"blob_bytes\": %" PRIu64
		       ", \"chunks\": %" PRIu64 ", \"stored_bytes\": %" PRIu64
		       ", \"workset_pages\": %" PRIu64 ", ",
		       in->created_ns, in->ram_size, in->nonzero_pages * STORE_PAGE_SIZE,
		       in->blob_bytes, in->chunks, in->stored_bytes, in->workset_pages);
		json_string("parent", in->parent, ", ");
		json_string("cpu_id", in->cpu_id, "}");
	} else {
		if (!st->count)
			printf("%-24s %-19s %10s %10s  %s\n", "NAME", "CREATED", "RAM", "STORED",
			       "PARENT");
		bytes_format(in->ram_size, ram, sizeof(ram));
		bytes_format(in->stored_bytes, stored, sizeof(stored));
		printf("%-24s %-19s %10s %10s  %s\n", in->name, when, ram, stored,
		       *in->parent ? in->parent : "-");
	}
	st->count++;
}

static int store_ls(struct store *store, const struct store_args *args)
{
	struct ls_state st = { .json = args->json };
	int ret;

	if (args->json)
		printf("[");
	ret = store_list(store, ls_print, &st);
	if (args->json)
		printf("%s]\n", st.count ? "\n" : "");
	return ret ? EXIT_RUNTIME : EXIT_OK;
}

static void info_print_json(const struct store_snapshot_info *in)
{
	char when[32];

	time_format(in->created_ns, when, sizeof(when));
	printf("{");
	json_string("name", in->name, ", ");
	json_string("created", when, ", ");
	json_string("parent", in->parent, ", ");
	json_string("cpu_id", in->cpu_id, ", ");
	printf("\"created_ns\": %" PRIu64 ", \"logical_bytes\": %" PRIu64
	       ", \"nonzero_bytes\": %" PRIu64 ", \"unique_bytes\": %" PRIu64
	       ", \"stored_bytes\": %" PRIu64 ", \"ram_bytes\": %" PRIu64
	       ", \"blob_bytes\": %" PRIu64 ", \"chunks\": %" PRIu64 ", \"workset_pages\": %" PRIu64
	       ", \"blobs\": [",
	       in->created_ns, in->ram_size + in->blob_bytes,
	       in->nonzero_pages * STORE_PAGE_SIZE + in->blob_bytes, in->unique_bytes,
	       in->stored_bytes, in->ram_size, in->blob_bytes, in->chunks, in->workset_pages);
	for (size_t i = 0; i < in->blob_count; i++) {
		printf("%s{", i ? ", " : "");
		json_string("name", in->blobs[i].name, ", ");
		printf("\"bytes\": %" PRIu64 "}", in->blobs[i].len);
	}
	printf("], \"kv\": {");
	for (size_t i = 0; i < in->kv_count; i++) {
		char key[256];

		json_escape(in->kv[i].key, key, sizeof(key));
		printf("%s\"%s\": ", i ? ", " : "", key);
		json_string("", in->kv[i].value, "");
	}
	printf("}}\n");
}

static void info_print_text(const struct store_snapshot_info *in)
{
	char when[32], b[5][24];

	time_format(in->created_ns, when, sizeof(when));
	bytes_format(in->ram_size + in->blob_bytes, b[0], sizeof(b[0]));
	bytes_format(in->nonzero_pages * STORE_PAGE_SIZE + in->blob_bytes, b[1], sizeof(b[1]));
	bytes_format(in->unique_bytes, b[2], sizeof(b[2]));
	bytes_format(in->stored_bytes, b[3], sizeof(b[3]));
	bytes_format(in->ram_size, b[4], sizeof(b[4]));
	printf("name:      %s\ncreated:   %s\nparent:    %s\ncpu:       %s\nguest RAM: %s\n",
	       in->name, when, *in->parent ? in->parent : "-", *in->cpu_id ? in->cpu_id : "-",
	       b[4]);
	printf("logical:   %s (guest RAM and blobs)\nnon-zero:  %s\nunique:    %s (stored "
	       "bytes only this snapshot uses)\nstored:    %s (in %" PRIu64 " chunks)\n",
	       b[0], b[1], b[2], b[3], in->chunks);
	for (size_t i = 0; i < in->blob_count; i++) {
		bytes_format(in->blobs[i].len, b[0], sizeof(b[0]));
		printf("blob:      %s, %s\n", in->blobs[i].name, b[0]);
	}
	if (in->workset_pages)
		printf("working set: %" PRIu64 " pages\n", in->workset_pages);
	for (size_t i = 0; i < in->kv_count; i++)
		printf("%s = %s\n", in->kv[i].key, in->kv[i].value);
}

static int store_info(struct store *store, const struct store_args *args)
{
	struct store_snapshot_info in;

	if (store_snapshot_info(store, args->operands[0], &in))
		return EXIT_RUNTIME;
	if (args->json)
		info_print_json(&in);
	else
		info_print_text(&in);
	return EXIT_OK;
}

static int store_rm(struct store *store, const struct store_args *args)
{
	int status = EXIT_OK, removed = 0;

	if (args->json)
		printf("{\"removed\": [");
	for (int i = 0; i < args->operand_count; i++) {
		if (store_snapshot_remove(store, args->operands[i])) {
			status = EXIT_RUNTIME;
			continue;
		}
		if (args->json)
			printf("%s\"%s\"", removed ? ", " : "", args->operands[i]);
		else
			printf("removed %s\n", args->operands[i]);
		removed++;
	}
	if (args->json)
		printf("]}\n");
	else if (removed)
		printf("'snapvm store gc' reclaims the space they used.\n");
	return status;
}

static int store_gc_run(struct store *store, const struct store_args *args)
{
	struct store_gc_stats st;
	char before[24], after[24], copies[24];
	uint64_t copy_files, copy_bytes;
	int ret;

	if (store_gc(store, &st))
		return EXIT_RUNTIME;
	/* the mmap mode's raw copies of snapshots that are gone */
	ret = snapshot_cache_prune(store, args->dir, &copy_files, &copy_bytes);
	if (ret)
		fprintf(stderr, "snapvm %s: cannot clean the raw-copy cache: %s\n", args->command,
			strerror(-ret));
	if (args->json) {
		printf("{\"chunks_freed\": %" PRIu64 ", \"chunks_moved\": %" PRIu64
		       ", \"packs_rewritten\": %" PRIu64 ", \"packs_written\": %" PRIu64
		       ", \"orphans_removed\": %" PRIu64 ", \"refcounts_fixed\": %" PRIu64
		       ", \"bytes_before\": %" PRIu64 ", \"bytes_after\": %" PRIu64
		       ", \"raw_copies_removed\": %" PRIu64 ", \"raw_copy_bytes_freed\": %" PRIu64
		       "}\n",
		       st.chunks_freed, st.chunks_moved, st.packs_rewritten, st.packs_written,
		       st.orphans_removed, st.refcounts_fixed, st.bytes_before, st.bytes_after,
		       copy_files, copy_bytes);
		return ret ? EXIT_RUNTIME : EXIT_OK;
	}
	bytes_format(st.bytes_before, before, sizeof(before));
	bytes_format(st.bytes_after, after, sizeof(after));
	printf("packs: %s -> %s; %" PRIu64 " chunks freed, %" PRIu64 " moved, %" PRIu64
	       " packs rewritten, %" PRIu64 " left-over files removed\n",
	       before, after, st.chunks_freed, st.chunks_moved, st.packs_rewritten,
	       st.orphans_removed);
	if (st.refcounts_fixed)
		printf("%" PRIu64 " reference counts were wrong and are corrected\n",
		       st.refcounts_fixed);
	if (copy_files) {
		bytes_format(copy_bytes, copies, sizeof(copies));
		printf("%" PRIu64 " raw copies of removed snapshots deleted (%s)\n", copy_files,
		       copies);
	}
	return ret ? EXIT_RUNTIME : EXIT_OK;
}

struct verify_output {
	bool json;
	unsigned chunks, snapshots;
	FILE *snapshot_list; /* JSON: damaged snapshots, printed after the chunks */
};

static void verify_chunk(void *opaque, const struct store_damage *d)
{
	struct verify_output *out = opaque;
	char hex[2 * STORE_DIGEST_SIZE + 1];

	store_digest_hex(d->digest, hex);
	if (out->json)
		printf("%s\n    {\"digest\": \"%s\", \"pack\": \"%016" PRIx64
		       ".pack\", \"offset\": %" PRIu64 ", \"reason\": \"%s\"}",
		       out->chunks ? "," : "", hex, d->pack, d->offset, d->reason);
	else
		printf("damaged chunk %s in pack %016" PRIx64 ".pack at offset %" PRIu64 ": %s\n",
		       hex, d->pack, d->offset, d->reason);
	out->chunks++;
}

static void verify_snapshot(void *opaque, const char *name, const char *reason)
{
	struct verify_output *out = opaque;

	if (out->json)
		fprintf(out->snapshot_list, "%s\n    {\"name\": \"%s\", \"reason\": \"%s\"}",
			out->snapshots ? "," : "", name, reason);
	else
		printf("damaged snapshot %s: %s\n", name, reason);
	out->snapshots++;
}

static int store_verify_run(struct store *store, const struct store_args *args)
{
	struct verify_output out = { .json = args->json };
	struct store_verify_report report = { .chunk_damaged = verify_chunk,
					      .snapshot_damaged = verify_snapshot,
					      .opaque = &out };
	char *snapshots = NULL;
	size_t len = 0;
	int ret;

	if (args->json) {
		out.snapshot_list = open_memstream(&snapshots, &len);
		if (!out.snapshot_list)
			return EXIT_RUNTIME;
		printf("{\"damaged_chunks\": [");
	}
	ret = store_verify(store, args->operand_count ? args->operands[0] : NULL, &report);
	if (args->json) {
		fclose(out.snapshot_list);
		printf("%s], \"damaged_snapshots\": [%s%s], \"ok\": %s, \"chunks_checked\": %" PRIu64
		       ", \"bytes_checked\": %" PRIu64 ", \"index_errors\": %" PRIu64 "}\n",
		       out.chunks ? "\n  " : "", snapshots, out.snapshots ? "\n  " : "",
		       ret == 0 ? "true" : "false", report.chunks_checked, report.bytes_checked,
		       report.index_errors);
		free(snapshots);
	} else if (ret == 0) {
		printf("ok: %" PRIu64 " chunks checked, no damage\n", report.chunks_checked);
	}
	return ret ? EXIT_RUNTIME : EXIT_OK;
}

static int store_du(struct store *store, const struct store_args *args)
{
	struct store_usage u;
	char b[6][24];

	if (store_usage_get(store, &u))
		return EXIT_RUNTIME;
	if (args->json) {
		printf("{\"snapshots\": %" PRIu64 ", \"logical_bytes\": %" PRIu64
		       ", \"nonzero_bytes\": %" PRIu64 ", \"chunks\": %" PRIu64
		       ", \"chunk_bytes\": %" PRIu64 ", \"stored_bytes\": %" PRIu64
		       ", \"dead_bytes\": %" PRIu64 ", \"pack_bytes\": %" PRIu64
		       ", \"packs\": %" PRIu64 ", \"index_bytes\": %" PRIu64
		       ", \"dedup_ratio\": %.3f, \"compression_ratio\": %.3f}\n",
		       u.snapshots, u.logical_bytes, u.nonzero_bytes, u.chunks, u.chunk_bytes,
		       u.stored_bytes, u.dead_bytes, u.pack_bytes, u.packs, u.index_bytes,
		       u.dedup_ratio, u.compression_ratio);
		return EXIT_OK;
	}
	bytes_format(u.logical_bytes, b[0], sizeof(b[0]));
	bytes_format(u.nonzero_bytes, b[1], sizeof(b[1]));
	bytes_format(u.chunk_bytes, b[2], sizeof(b[2]));
	bytes_format(u.stored_bytes, b[3], sizeof(b[3]));
	bytes_format(u.pack_bytes, b[4], sizeof(b[4]));
	bytes_format(u.dead_bytes, b[5], sizeof(b[5]));
	printf("snapshots:         %" PRIu64 "\nlogical:           %s\nnon-zero:          %s\n"
	       "unique:            %s in %" PRIu64 " chunks\nstored:            %s\n"
	       "packs:             %s in %" PRIu64 " files, %s reclaimable by gc\n"
	       "dedup ratio:       %.2f\ncompression ratio: %.2f\n",
	       u.snapshots, b[0], b[1], b[2], u.chunks, b[3], b[4], u.packs, b[5], u.dedup_ratio,
	       u.compression_ratio);
	return EXIT_OK;
}

static int store_export_run(struct store *store, const struct store_args *args)
{
	if (store_export(store, args->operands[0], args->operands[1]))
		return EXIT_RUNTIME;
	if (args->json) {
		printf("{");
		json_string("name", args->operands[0], ", ");
		json_string("file", args->operands[1], "}\n");
	} else {
		printf("exported %s to %s\n", args->operands[0], args->operands[1]);
	}
	return EXIT_OK;
}

static int store_import_run(struct store *store, const struct store_args *args)
{
	char name[STORE_NAME_MAX + 1];

	if (store_import(store, args->operands[0], args->as, name))
		return EXIT_RUNTIME;
	if (args->json) {
		printf("{");
		json_string("name", name, "}\n");
	} else {
		printf("imported %s\n", name);
	}
	return EXIT_OK;
}

static const struct store_command store_commands[] = {
	{ "ls", "ls", "list the snapshots", 0, 0, 0, true, store_ls },
	{ "info", "info NAME", "one snapshot: metadata; logical, non-zero, unique, stored bytes", 1,
	  1, 1, false, store_info },
	{ "rm", "rm NAME...", "delete snapshots (gc then reclaims their space)", 1, INT_MAX,
	  INT_MAX, true, store_rm },
	{ "gc", "gc", "reclaim the space of chunks no snapshot uses, and of raw copies", 0, 0, 0,
	  true, store_gc_run },
	{ "verify", "verify [NAME]", "check chunks against their digests; exit 1 on damage", 0, 1,
	  1, false, store_verify_run },
	{ "du", "du", "logical and stored bytes, dedup and compression ratios", 0, 0, 0, true,
	  store_du },
	{ "export", "export NAME FILE", "write a snapshot and all its chunks to one file", 2, 2, 1,
	  false, store_export_run },
	{ "import", "import FILE [--as NAME]", "add a snapshot from an export, checked whole first",
	  1, 1, 0, true, store_import_run },
	{ 0 },
};

static void store_help(void)
{
	printf("usage: snapvm store COMMAND [ARGS] [--store DIR] [--json]\n\n"
	       "The content-addressed snapshot store: pages named by SHA-256, stored once\n"
	       "however many snapshots use them. Layout: docs/store-format.md.\n\ncommands:\n");
	for (const struct store_command *c = store_commands; c->name; c++)
		printf("  %-24s %s\n", c->synopsis, c->summary);
	printf("\noptions:\n"
	       "  --store DIR   the store (default $SNAPVM_STORE, else ~/.local/share/snapvm),\n"
	       "                or a Ceph pool: rados:POOL[?conf=PATH&id=CLIENT&cache=DIR]\n"
	       "  --store-timeout S  a RADOS store: give up on an operation after S s (5)\n"
	       "  --json        print the result as JSON\n"
	       "  --help        describe a command: 'snapvm store COMMAND --help'\n");
}

static void store_command_help(const struct store_command *c)
{
	printf("usage: snapvm store %s [--store DIR] [--json]\n\n%c%s.\n", c->synopsis,
	       c->summary[0] - 32 * (c->summary[0] >= 'a' && c->summary[0] <= 'z'), c->summary + 1);
	printf("\noptions:\n"
	       "  --store DIR   the store (default $SNAPVM_STORE, else ~/.local/share/snapvm)\n"
	       "  --json        print the result as JSON\n");
	if (!strcmp(c->name, "import"))
		printf("  --as NAME     import under this name instead of the exported one\n");
}

/* Parses options and operands; returns -1 to go on, else the exit code. */
static int store_args_parse(const struct store_command *c, int argc, char **argv,
			    struct store_args *args)
{
	static const struct option longopts[] = {
		{ "store", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "as", required_argument, NULL, 'a' },
		{ "store-timeout", required_argument, NULL, 'O' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int opt;

	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (opt == 's') {
			args->dir = optarg;
		} else if (opt == 'j') {
			args->json = true;
		} else if (opt == 'O') {
			int ret = cli_store_timeout_option(args->command, optarg);

			if (ret)
				return ret;
		} else if (opt == 'a' && !strcmp(c->name, "import")) {
			args->as = optarg;
		} else if (opt == 'h') {
			store_command_help(c);
			return EXIT_OK;
		} else {
			return opt_getopt_error(args->command, opt, argv);
		}
	}
	args->operands = argv + optind;
	args->operand_count = argc - optind;
	if (args->operand_count < c->min_operands || args->operand_count > c->max_operands)
		return opt_usage_error(args->command, "usage: snapvm store %s", c->synopsis);
	return -1;
}

/* Checks that the operands that name snapshots are snapshot names. */
static int store_names_check(const struct store_command *c, const struct store_args *args)
{
	int names = strcmp(c->name, "export")
			    ? (strcmp(c->name, "import") ? args->operand_count : 0)
			    : 1;

	for (int i = 0; i < names; i++) {
		if (store_name_check(args->operands[i]))
			return opt_usage_error(
				args->command,
				"'%s' is not a snapshot name (1-%d of A-Z a-z 0-9 . _ "
				"-, not starting with .)",
				args->operands[i], STORE_NAME_MAX);
	}
	if (args->as && store_name_check(args->as))
		return opt_usage_error(args->command, "--as: '%s' is not a snapshot name",
				       args->as);
	return -1;
}

int cmd_store_main(int argc, char **argv)
{
	char command[32], dir[PATH_MAX];
	struct store_args args = { 0 };
	const struct store_command *c;
	struct store *store;
	int ret;

	if (argc < 2) {
		store_help();
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		store_help();
		return EXIT_OK;
	}
	for (c = store_commands; c->name && strcmp(c->name, argv[1]); c++)
		;
	if (!c->name)
		return opt_usage_error("store", "unknown command '%s'", argv[1]);
	snprintf(command, sizeof(command), "store %s", c->name);
	args.command = command;
	ret = store_args_parse(c, argc - 1, argv + 1, &args);
	if (ret < 0)
		ret = store_names_check(c, &args);
	if (ret >= 0)
		return ret;
	if (args.dir)
		snprintf(dir, sizeof(dir), "%s", args.dir);
	else
		store_dir_default(dir, sizeof(dir));
	args.dir = dir;
	if (store_open(dir, c->writes ? STORE_OPEN_WRITE : STORE_OPEN_READ, &store))
		return EXIT_RUNTIME;
	if (isatty(STDERR_FILENO))
		store_progress_set(store, progress_draw, NULL);
	ret = c->run(store, &args);
	store_close(store);
	return ret;
}
