/* snapvm serve: the HTTP/JSON API daemon (docs/api.md). */
#include "cli/cli.h"
#include "cli/jail.h"
#include "serve/serve.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define DEFAULT_MAX_CLONES 32
#define DEFAULT_QUEUE_MS   2000
#define DEFAULT_MAX_BODY   (64 * 1024)

struct serve_cli {
	struct serve_config config;
	struct jail_options jail; /* checked here, passed on to the children as text */
	const char *listen;
	char default_listen[128];
};

static void serve_help(void)
{
	printf("usage: snapvm serve [--listen unix:PATH|tcp:127.0.0.1:PORT] [--store DIR]\n"
	       "                    [--max-clones N] [--memory MODE] [--queue-ms MS]\n"
	       "                    [--max-body SIZE] [--seccomp MODE] [--warm N]\n\n"
	       "Serves the HTTP/JSON API (docs/api.md): list and delete snapshots, invoke a\n"
	       "fresh clone per request, keep clones up, boot VMs and snapshot them, and\n"
	       "Prometheus metrics. Every clone and VM is a snapvm child process. SIGTERM or\n"
	       "SIGINT: no new work, running requests finish, every child is stopped, exit 0.\n\n"
	       "options:\n"
	       "  --listen WHERE     unix:PATH (default $XDG_RUNTIME_DIR/snapvm.sock, else\n"
	       "                     /tmp/snapvm-UID.sock; made mode 0600) or\n"
	       "                     tcp:127.0.0.1:PORT (loopback only; PORT 0: any free one)\n"
	       "  --store DIR        where snapshots are (default $SNAPVM_STORE or\n"
	       "                     ~/.local/share/snapvm)\n"
	       "  --max-clones N     child VMs alive at once: invocations, clones and VMs\n"
	       "                     (default %d); more wait, then get 429\n"
	       "  --queue-ms MS      how long a request waits for a free slot before 429\n"
	       "                     (default %d; 0: never wait)\n"
	       "  --memory MODE      how restores page memory in: prefetch (default), lazy,\n"
	       "                     eager or mmap (see snapvm restore --help); a request's\n"
	       "                     \"memory\" field overrides it\n"
	       "  --max-body SIZE    the largest request body (default 64K); larger: 413\n"
	       "  --seccomp MODE     on (default), log or off: for serve's own threads (its\n"
	       "                     HTTP threads, its supervisor) and for every child, as\n"
	       "                     for snapvm run\n"
	       "  --jail BASE        jail every invocation and clone (not booted VMs) in its\n"
	       "                     own directory BASE/ID, made and removed by serve\n"
	       "                     (README.md, \"Jailer\"); BASE is made if missing\n"
	       "  --uid N, --gid N, --jail-netns, --jail-mem SIZE, --jail-cpu Q/P,\n"
	       "  --jail-pids N      given to each jailed child (see snapvm invoke --help)\n"
	       "  --warm N           keep N invoke processes started ahead for each snapshot\n"
	       "                     invoked (at most --max-clones in all; default 0): started,\n"
	       "                     options read, jailed with --jail, waiting for a request;\n"
	       "                     nothing of the snapshot read. An invocation whose body\n"
	       "                     has VM options or \"memory\" starts its own (README.md,\n"
	       "                     \"Warm processes\")\n"
	       "  -h, --help         this help\n\n"
	       "It prints \"listening on WHERE\" on stdout once it accepts connections.\n",
	       DEFAULT_MAX_CLONES, DEFAULT_QUEUE_MS);
}

static void listen_default(struct serve_cli *o)
{
	const char *runtime = getenv("XDG_RUNTIME_DIR");

	if (runtime && runtime[0] && strlen(runtime) < 80)
		snprintf(o->default_listen, sizeof(o->default_listen), "unix:%s/snapvm.sock",
			 runtime);
	else
		snprintf(o->default_listen, sizeof(o->default_listen), "unix:/tmp/snapvm-%u.sock",
			 (unsigned)getuid());
	o->listen = o->default_listen;
}

/* A jail option other than --jail: checked, then kept as text for the children. */
static int serve_jail_option(struct serve_cli *o, int opt, const char *value)
{
	static const char *const names[] = {
		[JAIL_OPT_UID - JAIL_OPT_DIR] = "--uid",
		[JAIL_OPT_GID - JAIL_OPT_DIR] = "--gid",
		[JAIL_OPT_NETNS - JAIL_OPT_DIR] = "--jail-netns",
		[JAIL_OPT_MEM - JAIL_OPT_DIR] = "--jail-mem",
		[JAIL_OPT_CPU - JAIL_OPT_DIR] = "--jail-cpu",
		[JAIL_OPT_PIDS - JAIL_OPT_DIR] = "--jail-pids",
	};
	struct serve_config *c = &o->config;
	int ret = jail_option_parse("serve", opt, value, &o->jail);

	if (ret)
		return ret;
	if (c->jail_arg_count + 2 > ARRAY_SIZE(c->jail_args))
		return opt_usage_error("serve", "too many jail options");
	c->jail_args[c->jail_arg_count++] = names[opt - JAIL_OPT_DIR];
	if (opt != JAIL_OPT_NETNS)
		c->jail_args[c->jail_arg_count++] = value;
	return 0;
}

/* 0, -1 for --help, or EXIT_USAGE after a message. */
static int serve_parse(int argc, char **argv, struct serve_cli *o)
{
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "store", required_argument, NULL, 's' },
		{ "max-clones", required_argument, NULL, 'n' },
		{ "queue-ms", required_argument, NULL, 'q' },
		{ "memory", required_argument, NULL, 'M' },
		{ "max-body", required_argument, NULL, 'b' },
		{ "seccomp", required_argument, NULL, 'C' },
		{ "warm", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		JAIL_LONGOPTS,
		{ 0 },
	};
	uint64_t value;
	int opt, ret = 0;

	memset(o, 0, sizeof(*o));
	o->config.max_clones = DEFAULT_MAX_CLONES;
	o->config.queue_ms = DEFAULT_QUEUE_MS;
	o->config.max_body = DEFAULT_MAX_BODY;
	o->config.seccomp = SANDBOX_ON;
	listen_default(o);
	jail_options_init(&o->jail);
	optind = 0;
	opterr = 0;
	while (!ret && (opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'l':
			o->listen = optarg;
			break;
		case 's':
			o->config.store_dir = optarg;
			break;
		case 'n':
			ret = opt_parse_uint("serve", "--max-clones", optarg, 1, 1024, &value);
			o->config.max_clones = (unsigned)value;
			break;
		case 'q':
			ret = opt_parse_uint("serve", "--queue-ms", optarg, 0, 3600000, &value);
			o->config.queue_ms = (unsigned)value;
			break;
		case 'M':
			ret = cli_memory_option("serve", optarg, &o->config.memory);
			o->config.memory_set = true;
			break;
		case 'b':
			ret = opt_parse_size("serve", "--max-body", optarg, &value);
			if (!ret && (value < 1024 || value > 64 * MiB))
				ret = opt_usage_error("serve", "--max-body: from 1K to 64M");
			o->config.max_body = (size_t)value;
			break;
		case 'C':
			ret = cli_seccomp_option("serve", optarg, &o->config.seccomp);
			break;
		case 'w':
			ret = opt_parse_uint("serve", "--warm", optarg, 0, 64, &value);
			o->config.warm = (unsigned)value;
			break;
		case JAIL_OPT_DIR:
			o->config.jail_base = optarg;
			o->jail.dir = optarg;
			break;
		case JAIL_OPT_UID ... JAIL_OPT_LAST:
			ret = serve_jail_option(o, opt, optarg);
			break;
		case 'h':
			serve_help();
			return -1;
		default: /* ':' (no value) or '?' (unknown) */
			return opt_getopt_error("serve", opt, argv);
		}
	}
	if (!ret && optind < argc)
		ret = opt_usage_error("serve", "unexpected argument '%s'", argv[optind]);
	if (!ret)
		ret = jail_options_check("serve", &o->jail);
	return ret;
}

/* Hundreds of clones, three pipes and a pidfd each, pass the default 1024 descriptors. */
static void raise_fd_limit(void)
{
	struct rlimit limit;

	if (!getrlimit(RLIMIT_NOFILE, &limit) && limit.rlim_cur < limit.rlim_max) {
		limit.rlim_cur = limit.rlim_max;
		setrlimit(RLIMIT_NOFILE, &limit);
	}
}

/* Signals go to serve_run() through a signalfd: blocked here, before any thread exists. */
static void signals_block(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN); /* a child's closed stdin is an error return, not a death */
}

static void on_stop(void *opaque)
{
	serve_http_close_door(opaque);
}

int cmd_serve_main(int argc, char **argv)
{
	struct serve_cli o;
	struct serve *serve;
	struct serve_http *http = NULL;
	char self[PATH_MAX];
	ssize_t len;
	int ret = serve_parse(argc, argv, &o);

	if (ret)
		return ret < 0 ? EXIT_OK : ret;
	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len <= 0) {
		fprintf(stderr, "snapvm serve: cannot find its own binary: %s\n", strerror(errno));
		return EXIT_RUNTIME;
	}
	self[len] = '\0';
	o.config.self_path = self;
	signals_block();
	raise_fd_limit();
	/* the supervisor forks children, which start under its filter: see sandbox.c */
	if (cli_sandbox_start(o.config.seccomp, SANDBOX_SUPERVISOR))
		return EXIT_RUNTIME;
	if (serve_create(&o.config, &serve))
		return EXIT_RUNTIME;
	ret = serve_http_start(serve, o.listen, o.config.max_body, &http);
	if (ret) {
		serve_destroy(serve);
		return ret == -EINVAL ? EXIT_USAGE : EXIT_RUNTIME;
	}
	printf("listening on %s\n", serve_http_address(http));
	fflush(stdout);
	serve_set_on_stop(serve, on_stop, http);
	ret = serve_run(serve, true);
	serve_http_drain(http);
	serve_http_stop(http);
	serve_destroy(serve);
	if (ret)
		fprintf(stderr, "snapvm serve: %s\n", strerror(-ret));
	return ret ? EXIT_RUNTIME : EXIT_OK;
}
