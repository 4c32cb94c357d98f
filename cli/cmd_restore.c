/*
 * snapvm restore: start clones of a snapshot. One clone runs in this process
 * with its console here; N clones run as N child processes, each with its own
 * VM, fed the same input, their output lines prefixed with the clone number.
 */
#include "cli/cli.h"
#include "control/control.h"
#include "cli/jail.h"
#include "cli/run_options.h"
#include "snapshot/snapshot.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_CLONES 256

struct restore_cli {
	struct snapshot_restore_options restore;
	const char *console_text;	     /* as given, may hold %i */
	const char *api_sock;		     /* may hold %i */
	const char *net_texts[VMM_MAX_NETS]; /* --net as given, may hold %i */
	unsigned net_count;
	const char *netns_text; /* may hold %i */
	const char *store;
	enum sandbox_mode seccomp;
	unsigned clones;
	unsigned record_ms;	  /* 0: record until the clone exits */
	struct jail_options jail; /* dir may hold %i */
};

static void restore_help(void)
{
	printf("usage: snapvm restore NAME [options]\n\n"
	       "Starts a clone of snapshot NAME where the original was. snapvm exits when\n"
	       "the clone does, with its exit code.\n\n"
	       "options:\n"
	       "  --clones N         start N clones (each its own VM and process); with the\n"
	       "                     stdio console, every input line goes to all of them and\n"
	       "                     their output lines come back as \"[i] line\"\n"
	       "  --console WHERE    stdio (default), file:PATH or none; with --clones, %%i in\n"
	       "                     PATH becomes the clone number\n"
	       "  --api-sock PATH    serve control requests (snapvm snapshot); %%i as above\n"
	       "  --disk PATH[,ro][,bw=BYTES][,iops=N]\n"
	       "                     the file behind the snapshot's next disk, in order; one\n"
	       "                     for each of its disks (a snapshot keeps no host paths);\n"
	       "                     bw and iops replace the snapshot's limits (0: none)\n"
	       "  --net tap=NAME|user[,mac=MAC][,hostfwd=RULE][,bw=BYTES][,pps=N]...\n"
	       "                     the host network behind the snapshot's next network\n"
	       "                     device, in order (as snapvm run --net; the MAC must not\n"
	       "                     change); one for each; %%i as above; bw and pps\n"
	       "                     replace the snapshot's limits (0: none)\n"
	       "  --netns PATH       run the clone's host side in network namespace PATH\n"
	       "                     (default: snapvm's own); %%i as above, one namespace\n"
	       "                     per clone\n"
	       "  device options, as for snapvm run: each gives the host side of a device the\n"
	       "  snapshot has (needed then); what the guest saw, such as a vsock CID, must not\n"
	       "  change:\n");
	vm_restore_options_help(stdout);
	printf("  --memory MODE      how guest memory arrives: prefetch (default: pages on\n"
	       "                     demand, the recorded working set in bulk first), lazy\n"
	       "                     (pages on demand), eager (all before the start) or mmap\n"
	       "                     (a raw copy made once in the store's cache, mapped)\n"
	       "  --record-ws        record the pages the guest touches, in order, and store\n"
	       "                     them as the snapshot's working set (until it exits, or\n"
	       "                     --record-ms MS after the start)\n"
	       "  --clock-realtime   advance the guest's clock by the time the snapshot was\n"
	       "                     stored, so that its wall time is the host's now\n"
	       "  --store DIR        where snapshots are (default $SNAPVM_STORE or\n"
	       "                     ~/.local/share/snapvm), or rados:POOL[?...]\n"
	       "  --store-timeout S  a RADOS store: give up on an operation after S seconds\n"
	       "                     (default 5), stopping the clone with one line\n" CLI_SECCOMP_HELP
		       JAIL_HELP
	       "                     (with --clones, %%i in DIR as above: one jail each)\n"
	       "  -h, --help         this help\n");
}

static int restore_parse(int argc, char **argv, struct restore_cli *o)
{
	static const struct option own[] = {
		{ "clones", required_argument, NULL, 'n' },
		{ "console", required_argument, NULL, 'c' },
		{ "api-sock", required_argument, NULL, 'a' },
		{ "clock-realtime", no_argument, NULL, 'r' },
		{ "memory", required_argument, NULL, 'M' },
		{ "record-ws", no_argument, NULL, 'w' },
		{ "record-ms", required_argument, NULL, 'W' },
		{ "disk", required_argument, NULL, 'd' },
		{ "net", required_argument, NULL, 'N' },
		{ "netns", required_argument, NULL, 'T' },
		{ "store", required_argument, NULL, 's' },
		{ "store-timeout", required_argument, NULL, 'O' },
		{ "seccomp", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		JAIL_LONGOPTS,
		{ 0 },
	};
	struct option longopts[VM_RESTORE_OPT_ROOM + ARRAY_SIZE(own)];
	uint64_t value;
	int opt, ret = 0;

	memset(o, 0, sizeof(*o));
	vmm_config_init(&o->restore.vm);
	jail_options_init(&o->jail);
	o->clones = 1;
	o->seccomp = SANDBOX_ON;
	/* the devices' own restore-time options (--vsock), then ours */
	memcpy(longopts + vm_restore_longopts(longopts), own, sizeof(own));
	optind = 0;
	opterr = 0;
	while (!ret && (opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'n':
			ret = opt_parse_uint("restore", "--clones", optarg, 1, MAX_CLONES, &value);
			o->clones = (unsigned)value;
			break;
		case 'c':
			o->console_text = optarg;
			ret = console_option_parse("restore", optarg, &o->restore.vm);
			break;
		case 'a':
			o->api_sock = optarg;
			break;
		case 'r':
			o->restore.clock_realtime = true;
			break;
		case 'M':
			ret = cli_memory_option("restore", optarg, &o->restore.memory);
			break;
		case 'w':
			o->restore.record_ws = true;
			break;
		case 'O':
			ret = cli_store_timeout_option("restore", optarg);
			break;
		case 'W':
			ret = opt_parse_uint("restore", "--record-ms", optarg, 1, 3600000, &value);
			o->record_ms = (unsigned)value;
			break;
		case 'd':
			ret = disk_option_parse("restore", optarg, &o->restore.vm);
			break;
		case VM_RESTORE_OPT ... VM_RESTORE_OPT + VM_RESTORE_OPT_ROOM - 1:
			ret = vm_restore_option_parse(opt, optarg, &o->restore.vm);
			break;
		case 'N':
			if (o->net_count < VMM_MAX_NETS)
				o->net_texts[o->net_count++] = optarg;
			ret = net_option_parse("restore", optarg, &o->restore.vm);
			break;
		case 'T':
			o->netns_text = optarg;
			ret = netns_option_parse("restore", optarg, &o->restore.vm);
			break;
		case 's':
			o->store = optarg;
			break;
		case 'C':
			ret = cli_seccomp_option("restore", optarg, &o->seccomp);
			break;
		case JAIL_OPT_DIR ... JAIL_OPT_LAST:
			ret = jail_option_parse("restore", opt, optarg, &o->jail);
			break;
		case 'h':
			restore_help();
			return -1;
		default: /* ':' (no value) or '?' (unknown) */
			return opt_getopt_error("restore", opt, argv);
		}
	}
	if (ret)
		return ret;
	if (optind + 1 != argc)
		return opt_usage_error("restore", "give exactly one snapshot NAME");
	o->restore.name = argv[optind];
	if (o->record_ms && !o->restore.record_ws)
		return opt_usage_error("restore", "--record-ms goes with --record-ws");
	if (o->restore.record_ws && (o->restore.memory == SNAPSHOT_MEMORY_EAGER ||
				     o->restore.memory == SNAPSHOT_MEMORY_MMAP))
		return opt_usage_error("restore", "--record-ws needs --memory lazy or prefetch");
	if (o->clones > 1 && o->api_sock && !strstr(o->api_sock, "%i"))
		return opt_usage_error("restore",
				       "--api-sock needs %%i with --clones: one socket each");
	if (o->clones > 1 && o->restore.vm.console == VMM_CONSOLE_FILE &&
	    !strstr(o->console_text, "%i"))
		return opt_usage_error("restore", "--console file:PATH needs %%i with --clones");
	if (o->clones > 1 && o->jail.dir && !strstr(o->jail.dir, "%i"))
		return opt_usage_error("restore",
				       "--jail DIR needs %%i with --clones: one jail each");
	if (o->jail.dir && o->restore.record_ws)
		return opt_usage_error("restore",
				       "--record-ws cannot be jailed: a jailed clone cannot write "
				       "to the store");
	ret = jail_options_check("restore", &o->jail);
	if (ret)
		return ret;
	return cli_snapshot_name_option("restore", o->restore.name);
}

/* Stores the working set recorded so far (--record-ms elapsed, or the clone exits). */
static void restore_save_workset(struct snapshot_clone *clone, struct snapshot_repo *repo)
{
	if (snapshot_clone_save_workset(clone, repo))
		log_warn("the working set was not stored");
}

struct workset_timer {
	struct snapshot_clone *clone;
	struct snapshot_repo *repo;
	int fd;
};

static void restore_on_record_timer(void *opaque, uint32_t events)
{
	struct workset_timer *t = opaque;

	(void)events;
	vm_unwatch_fd(snapshot_clone_vm(t->clone), t->fd);
	restore_save_workset(t->clone, t->repo);
}

/* With --record-ms, the working set is stored when the time is up. */
static int restore_record_timer(struct restore_cli *o, struct workset_timer *t)
{
	struct itimerspec when = { .it_value = { .tv_sec = o->record_ms / 1000,
						 .tv_nsec =
							 (long)(o->record_ms % 1000) * 1000000 } };

	t->fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (t->fd < 0 || timerfd_settime(t->fd, 0, &when, NULL) < 0)
		return -errno;
	return vm_watch_fd(snapshot_clone_vm(t->clone), t->fd, EPOLLIN, restore_on_record_timer, t);
}

/* Runs one clone in this process (jailed, with --jail) until it exits. */
static int restore_one(struct restore_cli *o)
{
	struct control *control = NULL;
	struct workset_timer timer = { .fd = -1 };
	struct snapshot_repo *repo;
	struct snapshot_clone *clone;
	struct jail jail;
	int status, ret;

	if (jail_enter("restore", &o->jail, &jail, &status))
		return status;
	if (cli_sandbox_start(o->seccomp, o->jail.dir ? SANDBOX_JAILED_STARTUP : SANDBOX_STARTUP))
		return EXIT_RUNTIME;
	/* writable when this clone may record a working set or be snapshotted (not jailed) */
	ret = cli_repo_open(o->store, !o->jail.dir && (o->restore.record_ws || o->api_sock), &repo);
	if (ret)
		return ret;
	ret = snapshot_restore(repo, &o->restore, &clone);
	if (ret) {
		snapshot_repo_close(repo);
		return cli_exit_status(ret);
	}
	log_debug("clone restored");
	timer = (struct workset_timer){ .clone = clone, .repo = repo, .fd = -1 };
	if (o->api_sock &&
	    control_listen(&control, snapshot_clone_vm(clone), clone, repo, o->api_sock)) {
		ret = EXIT_RUNTIME;
	} else if (o->record_ms && restore_record_timer(o, &timer)) {
		fprintf(stderr, "snapvm restore: cannot start the --record-ms timer\n");
		ret = EXIT_RUNTIME;
	} else if (jail_lock(&jail, repo, clone)) {
		ret = EXIT_RUNTIME;
	} else {
		vm_resume(snapshot_clone_vm(clone));
		ret = vm_run(snapshot_clone_vm(clone));
		restore_save_workset(clone, repo);
	}
	if (timer.fd >= 0)
		close(timer.fd);
	control_close(control);
	snapshot_clone_destroy(clone);
	snapshot_repo_close(repo);
	return ret;
}

static char *with_index(const char *text, unsigned index);

/* A clone's own host network: --net and --netns again with %i replaced. */
static int clone_network(struct restore_cli *o, unsigned index)
{
	int ret = 0;

	o->restore.vm.net_count = 0;
	for (unsigned i = 0; i <= o->net_count && !ret; i++) {
		const char *text = i < o->net_count ? o->net_texts[i] : o->netns_text;
		char *mine = text ? with_index(text, index) : NULL;

		if (mine && i < o->net_count)
			ret = net_option_parse("restore", mine, &o->restore.vm);
		else if (mine)
			ret = netns_option_parse("restore", mine, &o->restore.vm);
		free(mine); /* the options were copied into the configuration */
	}
	return ret;
}

/* Replaces every %i in text by index. */
static char *with_index(const char *text, unsigned index)
{
	char *out = malloc(strlen(text) * 4 + 16), *p = out;

	if (!out)
		return NULL;
	for (; *text; text++) {
		if (text[0] == '%' && text[1] == 'i') {
			p += sprintf(p, "%u", index);
			text++;
		} else {
			*p++ = *text;
		}
	}
	*p = '\0';
	return out;
}

struct clone {
	pid_t pid;
	int in_fd, out_fd;
	char line[4096];
	size_t len;
};

/* Starts clone `index` as a child process; clones[index] describes it. */
static pid_t clone_spawn(struct restore_cli *o, unsigned index, struct clone *clones)
{
	struct clone *c = &clones[index];
	int in[2], out[2];
	pid_t pid;

	if (pipe(in) < 0 || pipe(out) < 0)
		return -1;
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		close(in[1]);
		close(out[0]);
		dup2(in[0], STDIN_FILENO);
		dup2(out[1], STDOUT_FILENO);
		free(clones); /* the parent's, which LeakSanitizer would report at the child's exit
			       */
		if (o->api_sock)
			o->api_sock = with_index(o->api_sock, index);
		if (o->restore.vm.console == VMM_CONSOLE_FILE)
			o->restore.vm.console_path = with_index(o->restore.vm.console_path, index);
		if (o->jail.dir)
			o->jail.dir = with_index(o->jail.dir, index);
		if (clone_network(o, index))
			exit(EXIT_USAGE);
		exit(restore_one(o)); /* each clone opens the store itself: no LMDB across fork */
	}
	close(in[0]);
	close(out[1]);
	*c = (struct clone){ .pid = pid, .in_fd = in[1], .out_fd = out[0] };
	return pid;
}

/* Prints the clone's complete lines, prefixed with its number. */
static void clone_output(struct clone *c, unsigned index, const char *bytes, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (c->len < sizeof(c->line) - 1)
			c->line[c->len++] = bytes[i];
		if (bytes[i] == '\n' || c->len == sizeof(c->line) - 1) {
			printf("[%u] %.*s%s", index, (int)c->len, c->line,
			       c->line[c->len - 1] == '\n' ? "" : "\n");
			fflush(stdout);
			c->len = 0;
		}
	}
}

/* Feeds stdin to every clone and prints their output until all have exited. */
static int clones_supervise(struct clone *clones, unsigned n)
{
	struct pollfd *fds = calloc(n + 1, sizeof(*fds));
	unsigned alive = n;
	int status = EXIT_OK;
	char buf[4096];

	if (!fds)
		return EXIT_RUNTIME;
	while (alive) {
		fds[0] = (struct pollfd){ .fd = STDIN_FILENO, .events = POLLIN };
		for (unsigned i = 0; i < n; i++)
			fds[i + 1] = (struct pollfd){ .fd = clones[i].out_fd, .events = POLLIN };
		if (poll(fds, n + 1, -1) < 0 && errno != EINTR)
			break;
		if (fds[0].revents) {
			ssize_t got = read(STDIN_FILENO, buf, sizeof(buf));

			for (unsigned i = 0; i < n; i++) {
				if (got > 0 && clones[i].in_fd >= 0 &&
				    write_all(clones[i].in_fd, buf, (size_t)got) == 0)
					continue;
				if (got <= 0 &&
				    clones[i].in_fd >= 0) { /* end of input: pass it on */
					close(clones[i].in_fd);
					clones[i].in_fd = -1;
				}
			}
		}
		for (unsigned i = 0; i < n; i++) {
			ssize_t got;
			int wstatus;

			if (clones[i].out_fd < 0 || !fds[i + 1].revents)
				continue;
			got = read(clones[i].out_fd, buf, sizeof(buf));
			if (got > 0) {
				clone_output(&clones[i], i, buf, (size_t)got);
				continue;
			}
			close(clones[i].out_fd);
			clones[i].out_fd = -1;
			waitpid(clones[i].pid, &wstatus, 0);
			if (status == EXIT_OK)
				status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : EXIT_RUNTIME;
			alive--;
		}
	}
	free(fds);
	return status;
}

static int restore_clones(struct restore_cli *o)
{
	struct clone *clones = calloc(o->clones, sizeof(*clones));
	int status;

	if (!clones)
		return EXIT_RUNTIME;
	/* this process only starts the clones, which narrow its filter to their own */
	if (cli_sandbox_start(o->seccomp, SANDBOX_SUPERVISOR)) {
		free(clones);
		return EXIT_RUNTIME;
	}
	for (unsigned i = 0; i < o->clones; i++) {
		if (clone_spawn(o, i, clones) < 0) {
			fprintf(stderr, "snapvm restore: cannot start clone %u: %s\n", i,
				strerror(errno));
			o->clones = i;
			break;
		}
	}
	status = clones_supervise(clones, o->clones);
	free(clones);
	return status;
}

int cmd_restore_main(int argc, char **argv)
{
	struct restore_cli o;
	int ret = restore_parse(argc, argv, &o);

	if (ret)
		return ret < 0 ? EXIT_OK : ret;
	return o.clones == 1 ? restore_one(&o) : restore_clones(&o);
}
