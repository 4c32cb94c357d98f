/*
 * The daemon's children as request handlers see them: slots (--max-clones),
 * starting one, waiting for its output, stopping it. The supervisor
 * (supervisor.c) does the process work on its own thread, so that every
 * child has a long-lived parent thread (PR_SET_PDEATHSIG follows the thread
 * that forked) and a handler only ever waits on a condition variable.
 */
#include "serve/internal.h"
#include "common/common.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SERVE_WAIT_SLICE_MS 100 /* how often a waiting handler looks at its client */

static void deadline_timespec(uint64_t deadline_ns, struct timespec *ts)
{
	/* the condition variables run on CLOCK_MONOTONIC, like time_now_ns() */
	ts->tv_sec = (time_t)(deadline_ns / 1000000000ULL);
	ts->tv_nsec = (long)(deadline_ns % 1000000000ULL);
}

int serve_slot_take(struct serve *serve)
{
	uint64_t deadline = time_now_ns() + (uint64_t)serve->config.queue_ms * 1000000ULL;
	struct timespec ts;
	int ret = 0;

	deadline_timespec(deadline, &ts);
	pthread_mutex_lock(&serve->lock);
	serve->waiting++;
	while (!serve->stopping && serve->live >= serve->config.max_clones && !ret)
		ret = pthread_cond_timedwait(&serve->slot_cond, &serve->lock, &ts);
	serve->waiting--;
	if (serve->stopping) {
		ret = -ESHUTDOWN;
	} else if (serve->live >= serve->config.max_clones) {
		ret = -EAGAIN;
	} else {
		serve->live++;
		ret = 0;
	}
	pthread_mutex_unlock(&serve->lock);
	return ret;
}

void serve_child_id(struct serve *serve, enum serve_kind kind, char *id, size_t size)
{
	pthread_mutex_lock(&serve->lock);
	snprintf(id, size, "%c%u", "icv"[kind], ++serve->next_id[kind]);
	pthread_mutex_unlock(&serve->lock);
}

int serve_child_sock(struct serve *serve, const char *id, char *path, size_t size)
{
	return path_format(path, size, "%s/%s.sock", serve->run_dir, id);
}

static char **argv_copy(char *const argv[])
{
	size_t n = 0;
	char **copy;

	while (argv[n])
		n++;
	copy = calloc(n + 1, sizeof(*copy));
	for (size_t i = 0; copy && i < n; i++) {
		copy[i] = strdup(argv[i]);
		if (!copy[i]) {
			while (i--)
				free(copy[i]);
			free(copy);
			return NULL;
		}
	}
	return copy;
}

static struct serve_child *child_new(enum serve_kind kind, const char *snapshot, char *const argv[])
{
	struct serve_child *c = calloc(1, sizeof(*c));
	pthread_condattr_t attr;

	if (!c)
		return NULL;
	c->argv = argv_copy(argv);
	if (!c->argv) {
		free(c);
		return NULL;
	}
	c->kind = kind;
	snprintf(c->snapshot, sizeof(c->snapshot), "%s", snapshot ? snapshot : "");
	c->pidfd = c->in_fd = c->out_fd = c->err_fd = -1;
	c->created_ns = time_now_ns();
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cond, &attr);
	pthread_condattr_destroy(&attr);
	pthread_mutex_init(&c->request_lock, NULL);
	return c;
}

void serve_jail_remove(struct serve_child *c)
{
	char proc[sizeof(c->jail_dir) + 8];

	if (!c->jail_dir[0])
		return;
	/* the jail mounted its /proc there in its own mount namespace: here, an empty dir */
	if (!path_format(proc, sizeof(proc), "%s/proc", c->jail_dir))
		rmdir(proc);
	if (rmdir(c->jail_dir) < 0 && errno != ENOENT)
		log_warn("serve: cannot remove jail %s: %s", c->jail_dir, strerror(errno));
	c->jail_dir[0] = '\0';
}

/* Puts copies of extra[] into the child's argv right after the subcommand (before "--"). */
static int child_argv_insert(struct serve_child *c, const char *const *extra, size_t count)
{
	size_t n = 0, at = 0;
	char **argv;

	while (c->argv[n])
		n++;
	argv = calloc(n + count + 1, sizeof(*argv));
	if (!argv)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		argv[at++] = c->argv[i];
		for (size_t j = 0; i == 1 && j < count; j++)
			argv[at++] = strdup(extra[j]);
	}
	free(c->argv);
	c->argv = argv;
	for (size_t i = 0; i < at; i++)
		if (!argv[i])
			return -ENOMEM;
	return 0;
}

/* serve --jail: the child's own jail directory, BASE/ID, and the jail options. */
static int child_jail(struct serve *serve, struct serve_child *c)
{
	const struct serve_config *config = &serve->config;
	const char *extra[2 + ARRAY_SIZE(config->jail_args)] = { "--jail", c->jail_dir };

	if (path_format(c->jail_dir, sizeof(c->jail_dir), "%s/%s", config->jail_base, c->id))
		return -ENAMETOOLONG;
	/* 0755: the jailed uid looks paths up in it (its /proc, vsock sockets) */
	if (mkdir(c->jail_dir, 0755) < 0 && errno != EEXIST) {
		int err = -errno;

		log_error("serve: cannot make jail %s: %s", c->jail_dir, strerror(errno));
		c->jail_dir[0] = '\0';
		return err;
	}
	for (unsigned j = 0; j < config->jail_arg_count; j++)
		extra[2 + j] = config->jail_args[j];
	return child_argv_insert(c, extra, 2 + config->jail_arg_count);
}

struct serve_child *serve_child_prepare(struct serve *serve, enum serve_kind kind, const char *id,
					const char *snapshot, char *const argv[], int *error)
{
	struct serve_child *c = child_new(kind, snapshot, argv);

	if (!c) {
		*error = -ENOMEM;
		return NULL;
	}
	if (id)
		snprintf(c->id, sizeof(c->id), "%s", id);
	else
		serve_child_id(serve, kind, c->id, sizeof(c->id));
	/* every child runs under serve's --seccomp mode */
	*error = child_argv_insert(
		c, (const char *const[]){ "--seccomp", sandbox_mode_name(serve->config.seccomp) },
		2);
	if (!*error && serve->config.jail_base && kind != SERVE_VM)
		*error = child_jail(serve, c);
	if (*error) {
		serve_child_free(c);
		return NULL;
	}
	return c;
}

struct serve_child *serve_child_start(struct serve *serve, enum serve_kind kind, const char *id,
				      const char *snapshot, const char *api_sock,
				      char *const argv[], int *error)
{
	struct serve_child *c = serve_child_prepare(serve, kind, id, snapshot, argv, error);

	if (!c) {
		pthread_mutex_lock(&serve->lock);
		serve->live--; /* the caller's slot */
		pthread_cond_signal(&serve->slot_cond);
		pthread_mutex_unlock(&serve->lock);
		return NULL;
	}
	snprintf(c->api_sock, sizeof(c->api_sock), "%s", api_sock ? api_sock : "");
	pthread_mutex_lock(&serve->lock);
	c->refs = 1;
	c->holds_slot = true;
	c->next = serve->children;
	serve->children = c;
	serve_wake(serve);
	while (!c->spawned && !c->spawn_error)
		pthread_cond_wait(&c->cond, &serve->lock);
	*error = c->spawn_error;
	pthread_mutex_unlock(&serve->lock);
	if (*error) {
		serve_child_put(serve, c);
		return NULL;
	}
	return c;
}

struct serve_child *serve_child_get(struct serve *serve, enum serve_kind kind, const char *id)
{
	struct serve_child *c;

	pthread_mutex_lock(&serve->lock);
	for (c = serve->children; c; c = c->next) {
		if (c->kind == kind && !c->deleted && !strcmp(c->id, id)) {
			c->refs++;
			break;
		}
	}
	pthread_mutex_unlock(&serve->lock);
	return c;
}

void serve_child_put(struct serve *serve, struct serve_child *child)
{
	pthread_mutex_lock(&serve->lock);
	child->refs--;
	if (child->kind == SERVE_INVOKE || child->spawn_error)
		child->deleted = true; /* nobody can find it again: gone once it exited */
	pthread_mutex_unlock(&serve->lock);
	serve_wake(serve); /* the supervisor frees it when it may */
}

static bool take_line(struct serve_child *c, char *line, size_t size)
{
	if (!c->line_count)
		return false;
	snprintf(line, size, "%s", c->lines[c->line_first]);
	free(c->lines[c->line_first]);
	c->lines[c->line_first] = NULL;
	c->line_first = (c->line_first + 1) % SERVE_LINES_KEPT;
	c->line_count--;
	return true;
}

void serve_child_drop_lines(struct serve_child *child)
{
	char line[8];

	while (take_line(child, line, sizeof(line)))
		;
}

enum serve_wait serve_child_wait_line(struct serve *serve, struct serve_child *child,
				      uint64_t deadline_ns, const struct serve_request *request,
				      char *line, size_t size)
{
	for (;;) {
		uint64_t now = time_now_ns(), until;
		struct timespec ts;

		if (take_line(child, line, size))
			return SERVE_WAIT_LINE;
		if (child->exited)
			return SERVE_WAIT_EXITED;
		if (now >= deadline_ns)
			return SERVE_WAIT_TIMEOUT;
		if (request && request->client_gone) {
			bool gone;

			pthread_mutex_unlock(&serve->lock);
			gone = request->client_gone(request->opaque);
			pthread_mutex_lock(&serve->lock);
			if (gone)
				return SERVE_WAIT_GONE;
		}
		until = MIN(deadline_ns, now + SERVE_WAIT_SLICE_MS * 1000000ULL);
		deadline_timespec(until, &ts);
		pthread_cond_timedwait(&child->cond, &serve->lock, &ts);
	}
}

void serve_child_kill(struct serve *serve, struct serve_child *child)
{
	/* not reaped yet (reaping happens under the lock): the pid is still the child's */
	if (child->spawned && !child->exited)
		kill(child->pid, SIGKILL);
	child->stop_sent = true;
	child->kill_at_ns = 0;
	serve_wake(serve);
}

void serve_child_stop(struct serve *serve, struct serve_child *child, bool signal)
{
	if (!child->spawned || child->exited || child->stop_sent)
		return;
	child->stop_sent = true;
	/* a clean exit through the child's own teardown; the supervisor SIGKILLs it later */
	if (signal)
		kill(child->pid, SIGTERM);
	child->kill_at_ns = time_now_ns() + SERVE_KILL_GRACE_MS * 1000000ULL;
	serve_wake(serve);
}

void serve_message_clean(const char *line, char *out, size_t size)
{
	const char *see;
	size_t len;

	/* "snapvm restore: MESSAGE (see 'snapvm restore --help')", "snapvm: error: MESSAGE" */
	if (!strncmp(line, "snapvm", 6) && strstr(line, ": "))
		line = strstr(line, ": ") + 2;
	if (!strncmp(line, "error: ", 7))
		line += 7;
	see = strstr(line, " (see 'snapvm ");
	len = see ? (size_t)(see - line) : strlen(line);
	snprintf(out, size, "%.*s", (int)len, line);
}

bool serve_child_usage_reply(const struct serve_child *child, struct serve_reply *reply)
{
	char message[512];

	if (!WIFEXITED(child->wait_status) || WEXITSTATUS(child->wait_status) != EXIT_USAGE)
		return false;
	/* run's complaint is its last line; a restore's comes first ("invoke failed: ..." after) */
	serve_message_clean(child->kind == SERVE_VM ? child->err_line : child->err_first, message,
			    sizeof(message));
	serve_reply_error(reply, 400, "bad_vm_options", "%s", message);
	return true;
}

void serve_child_describe_exit(const struct serve_child *child, char *text, size_t size)
{
	int st = child->wait_status;
	char first[512], last[512], message[1100];

	/* the first line names the cause ("guest triple fault"), the last what followed */
	serve_message_clean(child->err_first, first, sizeof(first));
	serve_message_clean(child->err_line, last, sizeof(last));
	snprintf(message, sizeof(message), "%s%s%s", first, strcmp(first, last) ? "; " : "",
		 strcmp(first, last) ? last : "");
	if (WIFSIGNALED(st))
		snprintf(text, size, "killed by signal %d%s%s", WTERMSIG(st),
			 message[0] ? ": " : "", message);
	else
		snprintf(text, size, "exit status %d%s%s", WEXITSTATUS(st), message[0] ? ": " : "",
			 message);
}

static const char *child_state(const struct serve_child *c)
{
	if (c->exited)
		return "exited";
	if (c->stop_sent)
		return "stopping";
	return c->ready_ns ? "running" : "starting";
}

json_t *serve_child_json(const struct serve_child *c)
{
	json_t *o = json_object();
	uint64_t now = c->exited ? c->exited_ns : time_now_ns();

	json_object_set_new(o, "id", json_string(c->id));
	if (c->snapshot[0])
		json_object_set_new(o, "snapshot", json_string(c->snapshot));
	json_object_set_new(o, "state", json_string(child_state(c)));
	json_object_set_new(o, "pid", json_integer(c->pid));
	json_object_set_new(o, "uptime_ms", serve_json_ms(now - c->created_ns));
	json_object_set_new(o, "requests", json_integer(c->requests));
	if (c->ready_ns)
		json_object_set_new(o, "start_ms", serve_json_ms(c->ready_ns - c->created_ns));
	if (c->exited) {
		char how[1200];

		serve_child_describe_exit(c, how, sizeof(how));
		json_object_set_new(o, "exit", json_string(how));
		if (WIFEXITED(c->wait_status))
			json_object_set_new(o, "exit_code",
					    json_integer(WEXITSTATUS(c->wait_status)));
	}
	return o;
}
