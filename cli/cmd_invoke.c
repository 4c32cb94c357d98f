/* snapvm invoke: one request to a fresh clone of a snapshot, the reply on stdout. */
#include "cli/cli.h"
#include "control/control.h"
#include "cli/jail.h"
#include "cli/run_options.h"
#include "snapshot/snapshot.h"
#include "vmm/vmm.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_TIMEOUT_MS 10000
#define MAX_TIMEOUT_MS	   3600000

static void invoke_help(void)
{
	printf("usage: snapvm invoke NAME REQUEST... [--timeout MS] [--json] [--store DIR]\n"
	       "                     [--seccomp MODE]\n\n"
	       "Restores a clone of snapshot NAME, sends REQUEST (the remaining words, joined\n"
	       "by spaces) as one line on its console, prints the first line it answers, and\n"
	       "tears the clone down. Exit 0 with a reply; 1 if none came within the timeout\n"
	       "(default %d ms); 2 if the snapshot cannot be restored. Options may come\n"
	       "anywhere; after \"--\" every word belongs to the request.\n\n"
	       "  --json             print {\"reply\", \"restore_ms\", \"reply_ms\", \"total_ms\",\n"
	       "                     and the paging figures}: restore_ms and reply_ms count\n"
	       "                     from the start of the restore, total_ms from snapvm's\n"
	       "                     start to the reply (README.md, \"snapvm invoke\")\n"
	       "  --memory MODE, --clock-realtime, --disk PATH[,ro], --net ..., --netns PATH,\n"
	       "  the device options (--vsock CID,PATH),\n"
	       "  --store-timeout S  as for snapvm restore\n" CLI_SECCOMP_HELP JAIL_HELP
	       "                     (a jailed invoke records no working set)\n"
	       "  --warm             for snapvm serve --warm: give NAME only; get as far as a\n"
	       "                     request allows (options read, jail entered, filters on),\n"
	       "                     then read one line \"TIMEOUT_MS REQUEST\" from stdin and\n"
	       "                     go on as an invoke of REQUEST; exit 0 at end of input\n",
	       DEFAULT_TIMEOUT_MS);
}

static int join_request(int argc, char **argv, char *request, size_t size)
{
	size_t len = 0;

	request[0] = '\0';
	for (int i = 0; i < argc; i++) {
		int n = snprintf(request + len, size - len, "%s%s", i ? " " : "", argv[i]);

		if (n < 0 || (size_t)n >= size - len)
			return -ENAMETOOLONG;
		len += (size_t)n;
	}
	return strchr(request, '\n') ? -EINVAL : 0;
}

/*
 * invoke --warm: waits for "TIMEOUT_MS REQUEST\n" on stdin. 0 with the
 * request; 1 at end of input (serve discarded the process: exit quietly);
 * EXIT_USAGE after one line for anything else.
 */
static int warm_request_read(char *request, size_t size, uint64_t *timeout_ms)
{
	char line[1100], *end;
	size_t len = 0;
	unsigned long long ms;
	ssize_t n;

	while (!memchr(line, '\n', len)) {
		if (len == sizeof(line))
			return opt_usage_error("invoke", "--warm: the request line is too long");
		n = read(STDIN_FILENO, line + len, sizeof(line) - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return len ? opt_usage_error("invoke", "--warm: a request line without end")
				   : 1;
		len += (size_t)n;
	}
	*(char *)memchr(line, '\n', len) = '\0';
	errno = 0;
	ms = strtoull(line, &end, 10);
	if (errno || end == line || *end != ' ' || !ms || ms > MAX_TIMEOUT_MS ||
	    strlen(end + 1) >= size)
		return opt_usage_error("invoke", "--warm: not a line 'TIMEOUT_MS REQUEST'");
	*timeout_ms = ms;
	snprintf(request, size, "%s", end + 1);
	return 0;
}

/*
 * What opens before the restore: a warm process's before its request, and
 * a jailed invocation's, so that its restore runs jailed. KVM opened, the
 * snapshot opened (every chunk looked up, its pack open), and with --jail,
 * DIR's mounts. The restore checks that the name still names that
 * snapshot when it starts. Jailed, when nothing of the VM is at a host
 * path (no_host_paths: no disk, TAP, netns or device option; not the mmap
 * mode's cache; not a RADOS store), it also makes the userfaultfd and
 * pivots into DIR now, and the jail locks as soon as the snapshot is read
 * (after_read), before any part of the VM is made; else it locks before the
 * start. 0, or an exit status after one line.
 */
static int invoke_prepare(struct jail *jail, struct snapshot_repo *repo, const char *name,
			  bool no_host_paths, struct snapshot_restore_options *options)
{
	bool jailed = jail->options.dir != NULL, early;
	int ret;

	if (vm_host_open_ahead())
		return EXIT_RUNTIME;
	/* not there yet: the restore looks it up again, and says why if it must */
	if (snapshot_open_ahead(repo, name, &options->opened))
		options->opened = NULL;
	early = jailed && no_host_paths && !snapshot_repo_remote(repo) &&
		options->memory != SNAPSHOT_MEMORY_MMAP;
	if (early && options->memory != SNAPSHOT_MEMORY_EAGER && snapshot_userfaultfd_open_ahead())
		return EXIT_RUNTIME;
	ret = jail_prepare(jail, early);
	if (!ret && early) {
		options->after_read = jail_lock_hook;
		options->after_read_opaque = jail;
	}
	return ret;
}

/* Prints the reply the moment it arrives: tearing the clone down comes after. */
static void invoke_print(const struct control_invoke_result *result, void *opaque)
{
	const bool *json = opaque;

	if (*json) {
		char escaped[sizeof(result->reply) * 6];

		json_escape(result->reply, escaped, sizeof(escaped));
		const struct snapshot_memory_stats *m = &result->memory;

		printf("{\"reply\": \"%s\", \"restore_ms\": %.3f, \"reply_ms\": %.3f, "
		       "\"total_ms\": %.3f, \"faults\": %llu, \"pages_faulted\": %llu, "
		       "\"pages_prefetched\": %llu, \"pages_loaded\": %llu, \"bytes_read\": %llu, "
		       "\"fault_ms\": %.3f, \"workset_pages\": %llu, \"rss_bytes\": %llu, "
		       "\"private_bytes\": %llu}\n",
		       escaped, result->restore_ns / 1e6, result->reply_ns / 1e6,
		       (result->reply_at_ns - process_start_ns()) / 1e6,
		       (unsigned long long)m->faults, (unsigned long long)m->pages_faulted,
		       (unsigned long long)m->pages_prefetched, (unsigned long long)m->pages_loaded,
		       (unsigned long long)m->bytes_read, m->fault_ns / 1e6,
		       (unsigned long long)m->workset_pages, (unsigned long long)m->rss_bytes,
		       (unsigned long long)m->private_bytes);
	} else {
		printf("%s\n", result->reply);
	}
	fflush(stdout);
}

int cmd_invoke_main(int argc, char **argv)
{
	static const struct option own[] = {
		{ "timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "clock-realtime", no_argument, NULL, 'r' },
		{ "memory", required_argument, NULL, 'M' },
		{ "disk", required_argument, NULL, 'd' },
		{ "net", required_argument, NULL, 'N' },
		{ "netns", required_argument, NULL, 'T' },
		{ "store", required_argument, NULL, 's' },
		{ "store-timeout", required_argument, NULL, 'O' },
		{ "seccomp", required_argument, NULL, 'C' },
		{ "warm", no_argument, NULL, 'W' },
		{ "help", no_argument, NULL, 'h' },
		JAIL_LONGOPTS,
		{ 0 },
	};
	struct option longopts[VM_RESTORE_OPT_ROOM + ARRAY_SIZE(own)];
	struct snapshot_restore_options options = { 0 };
	enum sandbox_mode seccomp = SANDBOX_ON;
	struct control_invoke_result result;
	struct jail_options jail_options;
	struct snapshot_repo *repo = NULL;
	bool discarded = false, host_paths = false; /* a VM option opens a host path */
	struct jail jail;
	const char *store = NULL;
	char request[1024];
	uint64_t timeout = DEFAULT_TIMEOUT_MS, start_ns;
	bool json = false, warm = false;
	int opt, status, ret = 0;

	vmm_config_init(&options.vm);
	jail_options_init(&jail_options);
	/* the devices' own restore-time options (--vsock), then ours */
	memcpy(longopts + vm_restore_longopts(longopts), own, sizeof(own));
	optind = 0;
	opterr = 0;
	while (!ret && (opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (opt) {
		case 't':
			ret = opt_parse_uint("invoke", "--timeout", optarg, 1, MAX_TIMEOUT_MS,
					     &timeout);
			break;
		case 'j':
			json = true;
			break;
		case 'r':
			options.clock_realtime = true;
			break;
		case 'M':
			ret = cli_memory_option("invoke", optarg, &options.memory);
			break;
		case 'd':
			ret = disk_option_parse("invoke", optarg, &options.vm);
			host_paths = true;
			break;
		case VM_RESTORE_OPT ... VM_RESTORE_OPT + VM_RESTORE_OPT_ROOM - 1:
			ret = vm_restore_option_parse(opt, optarg, &options.vm);
			host_paths = true; /* as vsock's socket */
			break;
		case 'N':
			ret = net_option_parse("invoke", optarg, &options.vm);
			host_paths = true;
			break;
		case 'T':
			ret = netns_option_parse("invoke", optarg, &options.vm);
			host_paths = true;
			break;
		case 's':
			store = optarg;
			break;
		case 'O':
			ret = cli_store_timeout_option("invoke", optarg);
			break;
		case 'C':
			ret = cli_seccomp_option("invoke", optarg, &seccomp);
			break;
		case JAIL_OPT_DIR ... JAIL_OPT_LAST:
			ret = jail_option_parse("invoke", opt, optarg, &jail_options);
			break;
		case 'W':
			warm = true;
			break;
		case 'h':
			invoke_help();
			return EXIT_OK;
		case ':':
			return opt_usage_error("invoke", "%s needs a value", argv[optind - 1]);
		default:
			return opt_usage_error("invoke", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (ret)
		return ret;
	if (warm && argc - optind != 1)
		return opt_usage_error("invoke", "--warm: give a snapshot NAME and no REQUEST");
	if (!warm && argc - optind < 2)
		return opt_usage_error("invoke", "give a snapshot NAME and a REQUEST");
	ret = cli_snapshot_name_option("invoke", argv[optind]);
	if (ret)
		return ret;
	if (!warm && join_request(argc - optind - 1, argv + optind + 1, request, sizeof(request)))
		return opt_usage_error("invoke", "REQUEST must be one line of at most %zu bytes",
				       sizeof(request) - 1);
	ret = jail_options_check("invoke", &jail_options);
	if (ret)
		return ret;
	if (jail_enter("invoke", &jail_options, &jail, &status))
		return status;
	ret = cli_sandbox_start(seccomp,
				jail_options.dir ? SANDBOX_JAILED_STARTUP : SANDBOX_STARTUP);
	/* for writing: the first invoke of a snapshot records its working set (not jailed) */
	if (!ret)
		ret = cli_repo_open(store, !jail_options.dir, &repo);
	/* a cold invocation's restore begins here: what it opens ahead belongs to it */
	start_ns = warm ? 0 : time_now_ns();
	if (!ret && (warm || (jail_options.dir && !host_paths)))
		ret = invoke_prepare(&jail, repo, argv[optind], !host_paths, &options);
	if (!ret && warm) {
		ret = warm_request_read(request, sizeof(request), &timeout);
		discarded = ret == 1; /* end of input: serve discarded the process */
	}
	if (ret) {
		snapshot_ahead_close(options.opened);
		snapshot_repo_close(repo);
		return discarded ? EXIT_OK : ret; /* discarded: quietly */
	}
	options.name = argv[optind];
	if (jail_options.dir && !options.after_read) {
		options.before_start = jail_lock_hook;
		options.before_start_opaque = &jail;
	}
	ret = control_invoke(repo, &options, start_ns, request, (unsigned)timeout, invoke_print,
			     &json, &result);
	snapshot_repo_close(repo);
	return ret ? cli_exit_status(ret) : EXIT_OK;
}
