/*
 * snapvm bench serve --jail-cost: what the jail adds to an invocation's
 * latency through snapvm serve, with and without warm processes (serve
 * --warm). Four daemons on one store (jail off and on, each cold and warm)
 * take the same request in turn from one client, a pause after each reply,
 * so that the machine's load falls on the four alike. Warm is compared with
 * warm: a warm process saves exec, linking and option parsing with or
 * without a jail, and only the jail's own cost is the difference.
 */
#include "bench/bench.h"
#include "bench/bench_serve.h"
#include "bench/bench_util.h"
#include "common/common.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define IO_TIMEOUT_MS 60000

enum { COLD_OFF, COLD_ON, WARM_OFF, WARM_ON, CONFIGS };

static const char *const config_names[CONFIGS] = { "cold, jail off", "cold, jail on",
						   "warm, jail off", "warm, jail on" };

struct config {
	struct child daemon;
	char sock[300], jails[300];
	int fd;
	double *api_ms,
		*clone_ms; /* request to reply at the client; restore to reply in the clone */
	unsigned long long hits, misses;
};

static int daemon_start(struct config *c, int which, const char *store, const char *seccomp,
			unsigned warm)
{
	char listen[320], warm_text[16];
	bool jail = which == COLD_ON || which == WARM_ON;
	char *argv[] = { (char *)bench_self_path(),
			 "serve",
			 "--listen",
			 listen,
			 "--store",
			 (char *)store,
			 "--seccomp",
			 (char *)seccomp,
			 "--warm",
			 warm_text,
			 jail ? "--jail" : NULL,
			 c->jails,
			 NULL };

	snprintf(listen, sizeof(listen), "unix:%s", c->sock);
	snprintf(warm_text, sizeof(warm_text), "%u", which >= WARM_OFF ? warm : 0);
	if (bench_serve_spawn(argv, &c->daemon))
		return -1;
	c->fd = bench_unix_connect(c->sock);
	if (c->fd < 0) {
		child_kill(&c->daemon);
		return -1;
	}
	return 0;
}

/* One invocation; its latencies into slot i. 0, or -1 with a message. */
static int invoke_once(struct config *c, const char *body_json, const char *want, unsigned i)
{
	char body[8192];
	uint64_t start = time_now_ns();
	int status =
		bench_http(c->fd, "POST", "/snapshots/fn/invoke", body_json, body, sizeof(body));
	json_t *o = status == 200 ? json_loads(body, 0, NULL) : NULL;
	const char *reply = json_string_value(json_object_get(o, "reply"));
	int ret = 0;

	if (c->api_ms) {
		c->api_ms[i] = (double)(time_now_ns() - start) / 1e6;
		c->clone_ms[i] = json_number_value(json_object_get(o, "reply_ms"));
	}
	if (!reply || strcmp(reply, want)) {
		fprintf(stderr, "snapvm bench serve: a reply was not '%s': %d %.200s\n", want,
			status, status > 0 ? body : "");
		ret = -1;
	}
	json_decref(o);
	return ret;
}

static unsigned long long metric(const char *text, const char *name)
{
	const char *p = strstr(text, name);

	/* "NAME VALUE" at the start of a line (the HELP and TYPE lines have NAME after '# ') */
	while (p && (p == text || p[-1] != '\n' || p[strlen(name)] != ' '))
		p = strstr(p + 1, name);
	return p ? strtoull(p + strlen(name) + 1, NULL, 10) : 0;
}

static void warm_counts(struct config *c)
{
	char body[65536];

	if (bench_http(c->fd, "GET", "/metrics", "", body, sizeof(body)) == 200) {
		c->hits = metric(body, "snapvm_warm_hits_total");
		c->misses = metric(body, "snapvm_warm_misses_total");
	}
}

static void pause_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static void report(const struct serve_jail_options *o, struct config *c, unsigned runs, bool json)
{
	double api[CONFIGS], clone[CONFIGS];

	for (int k = 0; k < CONFIGS; k++) {
		api[k] = stats_percentile(c[k].api_ms, runs, 50);
		clone[k] = stats_percentile(c[k].clone_ms, runs, 50);
	}
	if (json) {
		printf("{\n  \"bench\": \"serve-jail-cost\",\n  \"runs\": %u,\n  \"heap\": \"%s\",\n"
		       "  \"request\": \"%s\",\n  \"pause_ms\": %u,\n  \"configs\": [",
		       runs, o->heap ? o->heap : "0", o->request, o->pause_ms);
		for (int k = 0; k < CONFIGS; k++)
			printf("%s\n    {\"name\": \"%s\", \"api_ms_p50\": %.3f, "
			       "\"clone_reply_ms_p50\": %.3f, \"warm_hits\": %llu, "
			       "\"warm_misses\": %llu}",
			       k ? "," : "", config_names[k], api[k], clone[k], c[k].hits,
			       c[k].misses);
		printf("\n  ]\n}\n");
		return;
	}
	printf("'%s' to a fresh clone through snapvm serve, heap=%s, %u runs per column, 1 "
	       "client, %u ms apart; medians in ms\n",
	       o->request, o->heap ? o->heap : "0", runs, o->pause_ms);
	printf("%-28s %10s %10s %8s\n", "", "jail off", "jail on", "added");
	for (int w = 0; w < 2; w++) {
		int off = w ? WARM_OFF : COLD_OFF, on = w ? WARM_ON : COLD_ON;

		printf("%-28s %10.3f %10.3f %+7.1f%%\n",
		       w ? "warm: request to reply" : "cold: request to reply", api[off], api[on],
		       100.0 * (api[on] - api[off]) / api[off]);
		printf("%-28s %10.3f %10.3f %+7.1f%%\n", "      in the clone", clone[off],
		       clone[on], 100.0 * (clone[on] - clone[off]) / clone[off]);
	}
	printf("warm hits/misses: jail off %llu/%llu, jail on %llu/%llu (the first request of "
	       "each daemon fills its pool, untimed)\n",
	       c[WARM_OFF].hits, c[WARM_OFF].misses, c[WARM_ON].hits, c[WARM_ON].misses);
}

static int measure(const struct serve_jail_options *o, struct config *c, const char *want,
		   unsigned runs)
{
	char body_json[512];

	snprintf(body_json, sizeof(body_json), "{\"request\": \"%s\"}", o->request);
	/* untimed: each daemon's first invocation, which starts its warm pool */
	for (int k = 0; k < CONFIGS; k++) {
		double *a = c[k].api_ms;

		c[k].api_ms = NULL;
		if (invoke_once(&c[k], body_json, want, 0))
			return -1;
		c[k].api_ms = a;
		pause_ms(o->pause_ms);
	}
	for (unsigned i = 0; i < runs; i++) {
		for (int k = 0; k < CONFIGS; k++) {
			/* each round in another order: none always follows the same one */
			int which = (k + (int)i) % CONFIGS;

			if (invoke_once(&c[which], body_json, want, i))
				return -1;
			pause_ms(o->pause_ms);
		}
	}
	for (int k = 0; k < CONFIGS; k++)
		warm_counts(&c[k]);
	return 0;
}

int bench_serve_jail_cost(const struct serve_jail_options *o, const char *guest, unsigned runs,
			  const char *seccomp, bool json)
{
	struct config c[CONFIGS] = { 0 };
	char dir[256], store[300], want[256];
	int started = 0, ret = EXIT_RUNTIME;

	if (geteuid() != 0) {
		fprintf(stderr, "snapvm bench serve: --jail-cost needs root (the jail does)\n");
		return EXIT_USAGE;
	}
	if (bench_tmpdir(dir, sizeof(dir)))
		return EXIT_RUNTIME;
	snprintf(store, sizeof(store), "%s/store", dir);
	if (bench_serve_store(guest, o->heap, store, o->request, want, sizeof(want))) {
		fprintf(stderr, "snapvm bench serve: cannot snapshot %s\n", guest);
		goto out;
	}
	for (; started < CONFIGS; started++) {
		struct config *x = &c[started];

		snprintf(x->sock, sizeof(x->sock), "%s/api%d.sock", dir, started);
		snprintf(x->jails, sizeof(x->jails), "%s/jails%d", dir, started);
		x->api_ms = calloc(runs, sizeof(double));
		x->clone_ms = calloc(runs, sizeof(double));
		if (!x->api_ms || !x->clone_ms ||
		    daemon_start(x, started, store, seccomp, o->warm)) {
			fprintf(stderr, "snapvm bench serve: snapvm serve (%s) did not start\n",
				config_names[started]);
			break;
		}
	}
	if (started == CONFIGS && !measure(o, c, want, runs)) {
		report(o, c, runs, json);
		ret = EXIT_OK;
	}
out:
	for (int k = 0; k < CONFIGS; k++) {
		if (k < started) {
			close(c[k].fd);
			kill(c[k].daemon.pid, SIGTERM);
			if (child_finish(&c[k].daemon, IO_TIMEOUT_MS))
				fprintf(stderr,
					"snapvm bench serve: a daemon did not exit cleanly\n");
		}
		free(c[k].api_ms);
		free(c[k].clone_ms);
	}
	bench_tmpdir_remove(dir);
	return ret;
}
