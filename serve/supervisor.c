/*
 * The supervisor: one thread (serve_run's caller) owns every child process.
 * It forks them, so that PR_SET_PDEATHSIG, which follows the forking
 * thread, kills them if the daemon dies; it reads their stdout and stderr
 * (a child never blocks on a full pipe), reaps them through pidfds, and
 * SIGKILLs those that outlive a stop request. Handlers wait on conditions.
 */
#include "serve/internal.h"
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

enum { WATCH_OUT, WATCH_ERR, WATCH_PID };

static int wake_tag, signal_tag; /* epoll tags of the eventfd and the signalfd */

void serve_wake(struct serve *serve)
{
	uint64_t one = 1;

	if (write(serve->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("serve: cannot wake the supervisor: %s", strerror(errno));
}

/* In the child, between fork and exec: async-signal-safe calls only. */
static void child_exec(struct serve_child *c, pid_t parent, int in, int out, int err)
{
	sigset_t none;

	/* die with the daemon; it may have died already, before the prctl */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(127);
	/* its own process group: a terminal's ^C reaches the daemon, which stops it cleanly */
	setpgid(0, 0);
	if (dup2(in, STDIN_FILENO) < 0 || dup2(out, STDOUT_FILENO) < 0 ||
	    dup2(err, STDERR_FILENO) < 0)
		_exit(127);
	close_range(3, ~0U, 0);
	signal(SIGPIPE, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execv(c->argv[0], c->argv);
	_exit(127);
}

static int watch_add(struct serve *serve, struct serve_child *c, int which, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &c->watch[which] };

	c->watch[which] = (struct serve_watch){ .child = c, .fd = fd };
	return epoll_ctl(serve->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static void close_fds(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = -1;
	}
}

/* Forks and execs the child's argv with pipes on its stdin, stdout and stderr. */
static int child_spawn(struct serve *serve, struct serve_child *c)
{
	int fds[6] = { -1, -1, -1, -1, -1, -1 }, ret = 0; /* in, out, err: read and write ends */
	pid_t parent = getpid(), pid;

	for (int i = 0; i < 3 && !ret; i++)
		ret = pipe2(fds + 2 * i, O_CLOEXEC) < 0 ? -errno : 0;
	if (ret) {
		close_fds(fds, 6);
		return ret;
	}
	pid = fork();
	if (pid == 0)
		child_exec(c, parent, fds[0], fds[3], fds[5]);
	if (pid < 0) {
		ret = -errno;
		close_fds(fds, 6);
		return ret;
	}
	close_fds((int[]){ fds[0], fds[3], fds[5] }, 3);
	c->pid = pid;
	c->in_fd = fds[1];
	c->out_fd = fds[2];
	c->err_fd = fds[4];
	for (int i = 1; i < 5; i++)
		fcntl(fds[i], F_SETFL, O_NONBLOCK);
	c->pidfd = pidfd_open(pid, 0);
	if (c->pidfd < 0)
		ret = -errno;
	if (!ret)
		ret = watch_add(serve, c, WATCH_OUT, c->out_fd);
	if (!ret)
		ret = watch_add(serve, c, WATCH_ERR, c->err_fd);
	if (!ret)
		ret = watch_add(serve, c, WATCH_PID, c->pidfd);
	if (ret) { /* it runs, but cannot be watched: stop it, and reap it here */
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		for (int i = 0; i < 3; i++)
			epoll_ctl(serve->epoll_fd, EPOLL_CTL_DEL, c->watch[i].fd, NULL);
		close_fds((int[]){ c->in_fd, c->out_fd, c->err_fd, c->pidfd }, 4);
		c->in_fd = c->out_fd = c->err_fd = c->pidfd = -1;
	}
	return ret;
}

static void start_pending(struct serve *serve)
{
	for (struct serve_child *c = serve->children; c; c = c->next) {
		if (c->spawned || c->spawn_error)
			continue;
		c->spawn_error = child_spawn(serve, c);
		if (c->spawn_error) {
			log_error("serve: cannot start %s: %s", c->argv[0],
				  strerror(-c->spawn_error));
			if (c->holds_slot) {
				serve->live--;
				pthread_cond_signal(&serve->slot_cond);
			}
			if (c->warm) { /* nobody holds it: forgotten */
				c->warm = false;
				c->deleted = true;
			}
		} else {
			c->spawned = true;
		}
		for (char **a = c->argv; *a; a++)
			free(*a);
		free(c->argv);
		c->argv = NULL;
		pthread_cond_broadcast(&c->cond);
	}
}

static void push_line(struct serve_child *c, const char *text, size_t len)
{
	char *line = strndup(text, len);

	if (!line)
		return;
	if (c->line_count == SERVE_LINES_KEPT) { /* nobody asked: drop the oldest */
		free(c->lines[c->line_first]);
		c->line_first = (c->line_first + 1) % SERVE_LINES_KEPT;
		c->line_count--;
	}
	c->lines[(c->line_first + c->line_count++) % SERVE_LINES_KEPT] = line;
}

/* Reads what is there; a line longer than SERVE_LINE_MAX is cut. false at end of file. */
static bool read_stdout(struct serve_child *c)
{
	char buf[4096];
	ssize_t n = read(c->out_fd, buf, sizeof(buf));

	if (n <= 0)
		return n < 0 && errno == EAGAIN;
	for (ssize_t i = 0; i < n; i++) {
		if (buf[i] != '\n') {
			if (c->partial_len < sizeof(c->partial) - 1)
				c->partial[c->partial_len++] = buf[i];
			continue;
		}
		push_line(c, c->partial, c->partial_len);
		c->partial_len = 0;
	}
	pthread_cond_broadcast(&c->cond);
	return true;
}

/* Keeps the last complete line of the child's stderr: its error message. */
static bool read_stderr(struct serve_child *c)
{
	char buf[1024];
	ssize_t n = read(c->err_fd, buf, sizeof(buf));

	if (n <= 0)
		return n < 0 && errno == EAGAIN;
	for (ssize_t i = 0; i < n; i++) {
		if (buf[i] != '\n') {
			if (c->err_len < sizeof(c->err_partial) - 1)
				c->err_partial[c->err_len++] = buf[i];
			continue;
		}
		if (c->err_len) {
			c->err_partial[c->err_len] = '\0';
			snprintf(c->err_line, sizeof(c->err_line), "%s", c->err_partial);
			if (!c->err_first[0])
				snprintf(c->err_first, sizeof(c->err_first), "%s", c->err_partial);
		}
		c->err_len = 0;
	}
	return true;
}

/* The child exited: take the rest of its output, its status, and free its slot. */
static void child_reap(struct serve *serve, struct serve_child *c)
{
	int fds[4] = { c->in_fd, c->out_fd, c->err_fd, c->pidfd };

	while (read_stdout(c))
		;
	while (read_stderr(c))
		;
	if (waitpid(c->pid, &c->wait_status, WNOHANG) <= 0)
		return; /* not yet: the pidfd says so again */
	for (int i = 1; i < 4; i++)
		epoll_ctl(serve->epoll_fd, EPOLL_CTL_DEL, fds[i], NULL);
	close_fds(fds, 4);
	c->in_fd = c->out_fd = c->err_fd = c->pidfd = -1;
	c->exited = true;
	c->exited_ns = time_now_ns();
	c->kill_at_ns = 0;
	if (c->api_sock[0])
		unlink(c->api_sock); /* left behind when it was killed, or by a jailed child */
	serve_jail_remove(c);
	if (c->warm) { /* died waiting (killed, or discarded): nobody holds it */
		c->warm = false;
		c->deleted = true;
	}
	if (c->holds_slot) {
		serve->live--;
		pthread_cond_signal(&serve->slot_cond);
	}
	pthread_cond_broadcast(&c->cond);
}

void serve_child_free(struct serve_child *c)
{
	serve_jail_remove(c);
	for (unsigned i = 0; i < SERVE_LINES_KEPT; i++)
		free(c->lines[i]);
	if (c->argv) {
		for (char **a = c->argv; *a; a++)
			free(*a);
		free(c->argv);
	}
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->request_lock);
	free(c);
}

/* Frees children nobody can reach any more; SIGKILLs those whose grace is over. */
static int sweep(struct serve *serve)
{
	uint64_t now = time_now_ns(), next = UINT64_MAX;

	for (struct serve_child **p = &serve->children; *p;) {
		struct serve_child *c = *p;

		if (c->kill_at_ns && !c->exited && now >= c->kill_at_ns) {
			log_warn("serve: %s did not stop in time; killing it", c->id);
			serve_child_kill(serve, c);
		} else if (c->kill_at_ns && !c->exited) {
			next = MIN(next, c->kill_at_ns);
		}
		if (c->deleted && !c->refs && (c->exited || c->spawn_error)) {
			*p = c->next;
			serve_child_free(c);
			continue;
		}
		p = &c->next;
	}
	return next == UINT64_MAX ? -1 : (int)((next - now) / 1000000 + 1);
}

static void on_event(struct serve *serve, struct epoll_event *ev, int signal_fd)
{
	struct serve_watch *w = ev->data.ptr;

	if (ev->data.ptr == &wake_tag) {
		uint64_t count;

		if (read(serve->wake_fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
			log_warn("serve: eventfd: %s", strerror(errno));
		return;
	}
	if (ev->data.ptr == &signal_tag) {
		struct signalfd_siginfo si;

		if (read(signal_fd, &si, sizeof(si)) == sizeof(si)) {
			log_info("serve: signal %u: stopping", si.ssi_signo);
			if (serve->stopping) /* a second one: no more waiting */
				for (struct serve_child *c = serve->children; c; c = c->next)
					serve_child_kill(serve, c);
			serve->stopping = true;
			pthread_cond_broadcast(&serve->slot_cond);
		}
		return;
	}
	if (w->fd == w->child->out_fd && !read_stdout(w->child))
		epoll_ctl(serve->epoll_fd, EPOLL_CTL_DEL, w->fd, NULL); /* until it is reaped */
	else if (w->fd == w->child->err_fd && !read_stderr(w->child))
		epoll_ctl(serve->epoll_fd, EPOLL_CTL_DEL, w->fd, NULL);
	else if (w->fd == w->child->pidfd)
		child_reap(serve, w->child);
}

static void supervise(struct serve *serve, int timeout_ms, int signal_fd)
{
	struct epoll_event events[64];
	int n, next;

	pthread_mutex_lock(&serve->lock);
	start_pending(serve);
	next = sweep(serve);
	pthread_mutex_unlock(&serve->lock);
	if (next >= 0 && next < timeout_ms)
		timeout_ms = next;
	n = epoll_wait(serve->epoll_fd, events, ARRAY_SIZE(events), timeout_ms);
	pthread_mutex_lock(&serve->lock);
	for (int i = 0; i < n; i++)
		on_event(serve, &events[i], signal_fd);
	pthread_mutex_unlock(&serve->lock);
}

void serve_supervise_once(struct serve *serve, int timeout_ms)
{
	supervise(serve, timeout_ms, -1);
}

static int signals_watch(struct serve *serve)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &signal_tag };
	sigset_t set;
	int fd;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (fd < 0 || epoll_ctl(serve->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		log_error("serve: cannot watch signals: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static bool all_exited(struct serve *serve)
{
	bool done = true;

	pthread_mutex_lock(&serve->lock);
	for (struct serve_child *c = serve->children; c; c = c->next)
		done = done && (c->exited || c->spawn_error);
	pthread_mutex_unlock(&serve->lock);
	return done;
}

static void stop_children(struct serve *serve)
{
	pthread_mutex_lock(&serve->lock);
	serve_warm_discard(serve, NULL); /* they end at the end of their input */
	for (struct serve_child *c = serve->children; c; c = c->next)
		serve_child_stop(serve, c, true);
	pthread_mutex_unlock(&serve->lock);
}

int serve_run(struct serve *serve, bool signals)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &wake_tag };
	int signal_fd = -1;

	if (epoll_ctl(serve->epoll_fd, EPOLL_CTL_ADD, serve->wake_fd, &ev) < 0)
		return -errno;
	if (signals && (signal_fd = signals_watch(serve)) < 0)
		return -EIO;
	while (!serve_stopping(serve))
		supervise(serve, 1000, signal_fd);
	/* no new work: running requests finish (each has a deadline), then the rest stops */
	if (serve->on_stop)
		serve->on_stop(serve->on_stop_opaque);
	for (;;) {
		bool idle;

		pthread_mutex_lock(&serve->lock);
		idle = !serve->active;
		pthread_mutex_unlock(&serve->lock);
		if (idle)
			break;
		supervise(serve, 100, signal_fd);
	}
	stop_children(serve);
	while (!all_exited(serve))
		supervise(serve, 100, signal_fd);
	pthread_mutex_lock(&serve->lock);
	sweep(serve);
	pthread_mutex_unlock(&serve->lock);
	epoll_ctl(serve->epoll_fd, EPOLL_CTL_DEL, serve->wake_fd, NULL);
	if (signal_fd >= 0)
		close(signal_fd);
	return 0;
}

void serve_stop(struct serve *serve)
{
	pthread_mutex_lock(&serve->lock);
	serve->stopping = true;
	pthread_cond_broadcast(&serve->slot_cond);
	pthread_mutex_unlock(&serve->lock);
	serve_wake(serve);
}

bool serve_stopping(const struct serve *serve)
{
	struct serve *s = (struct serve *)serve;
	bool stopping;

	pthread_mutex_lock(&s->lock);
	stopping = s->stopping;
	pthread_mutex_unlock(&s->lock);
	return stopping;
}

void serve_set_on_stop(struct serve *serve, void (*fn)(void *opaque), void *opaque)
{
	serve->on_stop = fn;
	serve->on_stop_opaque = opaque;
}
