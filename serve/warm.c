/*
 * serve --warm N: for each snapshot invoked, N `snapvm invoke --warm`
 * processes started ahead, so that a request does not wait for what a
 * process does before it can know the request: exec, dynamic linking,
 * option parsing, opening KVM, the store and the snapshot, and with --jail
 * the jail's namespaces, cgroup leaf, processes, mounts and pivot. When its
 * request line arrives on its stdin, a warm process checks that the name
 * still names the snapshot it opened, so a snapshot replaced meanwhile is
 * restored as it is then, and a deleted one fails as a cold invocation
 * would. A pool is refilled once the reply that emptied it is sent
 * (serve_reply_sent), not while it is being made.
 *
 * A warm process holds no slot (--max-clones): a request takes its slot
 * first, then hands it to the warm process it claims. The idle ones are
 * bounded by --warm per snapshot and by --max-clones in all. One that dies
 * while it waits is reaped and forgotten; closing its stdin ends it cleanly
 * (its jail's parent removes the cgroup leaf, serve the jail directory).
 */
#include "serve/internal.h"
#include "common/common.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool warm_idle(const struct serve_child *c)
{
	return c->warm && !c->exited && !c->deleted && !c->spawn_error;
}

unsigned serve_warm_idle(const struct serve *serve)
{
	unsigned n = 0;

	for (const struct serve_child *c = serve->children; c; c = c->next)
		n += warm_idle(c);
	return n;
}

/* Dead but not reaped yet (the supervisor will): its pidfd is readable. */
static bool warm_dead(const struct serve_child *c)
{
	struct pollfd pfd = { .fd = c->pidfd, .events = POLLIN };

	return c->pidfd < 0 || poll(&pfd, 1, 0) != 0;
}

/* Lock held. */
static struct serve_child *warm_take(struct serve *serve, const char *name)
{
	struct serve_child *c = NULL;

	/* the oldest (the list's last): the likeliest to be waiting already */
	for (struct serve_child *o = serve->children; o; o = o->next)
		if (warm_idle(o) && o->spawned && !strcmp(o->snapshot, name) && !warm_dead(o))
			c = o; /* a dead one is left to the supervisor, which reaps it */
	if (c) {
		c->warm = false;
		c->holds_slot = true; /* the request's */
		c->refs = 1;
		c->created_ns = time_now_ns(); /* its invocation starts now */
	}
	return c;
}

struct serve_child *serve_warm_claim(struct serve *serve, const char *name, const char *request,
				     uint64_t timeout_ms)
{
	struct serve_child *c;
	char line[SERVE_REQUEST_MAX + 32];
	int len;

	if (!serve->config.warm)
		return NULL;
	len = snprintf(line, sizeof(line), "%llu %s\n", (unsigned long long)timeout_ms, request);
	for (;;) {
		pthread_mutex_lock(&serve->lock);
		c = warm_take(serve, name);
		/* an empty pipe takes a line this short whole: the write never blocks */
		if (c && write(c->in_fd, line, (size_t)len) == len) {
			pthread_mutex_unlock(&serve->lock);
			break;
		}
		if (c) { /* it died after the look: forgotten, and the request's slot kept */
			log_debug("serve: warm process %s of %s is gone", c->id, name);
			c->holds_slot = false;
			c->refs = 0;
			c->deleted = true;
		}
		pthread_mutex_unlock(&serve->lock);
		if (!c)
			break;
	}
	pthread_mutex_lock(&serve->metrics.lock);
	if (c)
		serve->metrics.warm_hits++;
	else
		serve->metrics.warm_misses++;
	pthread_mutex_unlock(&serve->metrics.lock);
	if (c)
		log_debug("serve: %s: warm process %s", name, c->id);
	return c;
}

/* `snapvm invoke --warm` of name, with serve's --store and --memory. */
static struct serve_child *warm_prepare(struct serve *serve, const char *name)
{
	const char *argv[12] = { serve->config.self_path, "invoke", "--json", "--store",
				 serve->config.store_dir };
	size_t n = 5;
	int error;

	n += serve_memory_args(serve, NULL, argv + n);
	argv[n++] = "--warm";
	argv[n++] = "--";
	argv[n++] = name;
	argv[n] = NULL;
	return serve_child_prepare(serve, SERVE_INVOKE, NULL, name, (char *const *)argv, &error);
}

/* How many more name may have (lock held). */
static unsigned warm_wanted(const struct serve *serve, const char *name)
{
	unsigned mine = 0, all = 0;

	if (serve->stopping)
		return 0;
	for (const struct serve_child *c = serve->children; c; c = c->next) {
		all += warm_idle(c);
		mine += warm_idle(c) && !strcmp(c->snapshot, name);
	}
	if (mine >= serve->config.warm || all >= serve->config.max_clones)
		return 0;
	return MIN(serve->config.warm - mine, serve->config.max_clones - all);
}

void serve_warm_fill(struct serve *serve, const char *name)
{
	struct serve_child *c;
	unsigned want;

	if (!serve->config.warm)
		return;
	pthread_mutex_lock(&serve->lock);
	want = warm_wanted(serve, name);
	pthread_mutex_unlock(&serve->lock);
	while (want--) {
		c = warm_prepare(serve, name); /* argv and jail directory: outside the lock */
		if (!c)
			return; /* it has said why; the next invocation tries again */
		pthread_mutex_lock(&serve->lock);
		if (!warm_wanted(serve, name)) { /* another handler filled it meanwhile */
			pthread_mutex_unlock(&serve->lock);
			serve_child_free(c);
			return;
		}
		c->warm = true;
		c->next = serve->children;
		serve->children = c;
		pthread_mutex_unlock(&serve->lock);
		pthread_mutex_lock(&serve->metrics.lock);
		serve->metrics.warm_started++;
		pthread_mutex_unlock(&serve->metrics.lock);
		serve_wake(serve); /* the supervisor forks it; nobody waits for that */
	}
}

void serve_reply_sent(struct serve *serve, const char *warm_fill)
{
	if (warm_fill && warm_fill[0])
		serve_warm_fill(serve, warm_fill);
}

void serve_warm_discard(struct serve *serve, const char *name)
{
	for (struct serve_child *c = serve->children; c; c = c->next) {
		if (!warm_idle(c) || (name && strcmp(c->snapshot, name)))
			continue;
		c->warm = false;
		c->deleted = true;
		if (!c->spawned) {
			c->spawn_error = -ECANCELED; /* never started: freed as it is */
			continue;
		}
		/* the end of its input ends it: exit 0, its jail undone by its own parent */
		if (c->in_fd >= 0)
			close(c->in_fd);
		c->in_fd = -1;
		c->stop_sent = true;
		c->kill_at_ns = time_now_ns() + SERVE_KILL_GRACE_MS * 1000000ULL;
	}
	serve_wake(serve);
}
