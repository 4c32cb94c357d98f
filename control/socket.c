/*
 * The control socket of a running VM (snapvm run/restore --api-sock) and the
 * snapshot-on-ready trigger. Both end up in take_snapshot(), on the VM's event
 * loop thread, where pausing the vCPUs cannot deadlock with them.
 */
#include "control/control.h"
#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define REQUEST_MAX 512

struct control {
	struct vm *vm;
	struct snapshot_clone *clone; /* NULL for a booted VM */
	struct snapshot_repo *repo;
	int listen_fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	/* snapshot on ready */
	char ready_name[SNAPSHOT_NAME_MAX + 1];
	bool ready_resume;
	bool ready_done;
};

static struct control *control_get(struct control **control, struct vm *vm,
				   struct snapshot_repo *repo)
{
	if (!*control) {
		*control = calloc(1, sizeof(**control));
		if (!*control)
			return NULL;
		(*control)->vm = vm;
		(*control)->repo = repo;
		(*control)->listen_fd = -1;
	}
	return *control;
}

/* Snapshots the VM, then resumes it or stops it; writes a one-line outcome. */
static int take_snapshot(struct control *c, const char *name, bool resume, char *reply,
			 size_t reply_size)
{
	struct snapshot_stats st;
	int ret = snapshot_create(c->vm, c->clone, c->repo, name, &st);

	if (ret) {
		/* the VM's own stderr has the line that says why; the client gets the code */
		snprintf(reply, reply_size, "error %s", strerror(-ret));
		/* a VM paused by a failed snapshot goes on as it was */
		vm_resume(c->vm);
		return ret;
	}
	snprintf(reply, reply_size,
		 "ok snapshot %s state_bytes=%llu memory_bytes=%llu pause_ms=%.3f capture_ms=%.3f "
		 "write_ms=%.3f",
		 name, (unsigned long long)st.state_bytes, (unsigned long long)st.memory_bytes,
		 st.pause_ns / 1e6, st.capture_ns / 1e6, st.write_ns / 1e6);
	if (resume)
		vm_resume(c->vm);
	else
		vm_request_stop(c->vm, EXIT_OK);
	return 0;
}

/* "ok running", with the clone's paging figures and the process's memory. */
static void control_status(struct control *c, char *reply, size_t size)
{
	struct snapshot_memory_stats m = { 0 };

	if (!c->clone) {
		snprintf(reply, size, "ok running");
		return;
	}
	snapshot_clone_memory_stats(c->clone, &m);
	snprintf(reply, size,
		 "ok running faults=%llu pages_faulted=%llu pages_prefetched=%llu bytes_read=%llu "
		 "rss_kib=%llu",
		 (unsigned long long)m.faults, (unsigned long long)m.pages_faulted,
		 (unsigned long long)m.pages_prefetched, (unsigned long long)m.bytes_read,
		 (unsigned long long)(m.rss_bytes >> 10));
}

static void handle_request(struct control *c, char *line, char *reply, size_t size)
{
	char *verb = strtok(line, " \t"), *name = strtok(NULL, " \t"), *flag = strtok(NULL, " \t");

	if (!verb) {
		snprintf(reply, size, "error empty request");
	} else if (!strcmp(verb, "status") && !name) {
		control_status(c, reply, size);
	} else if (!strcmp(verb, "stop") && !name) {
		snprintf(reply, size, "ok stopping");
		/* with ACPI: the power button, so that the guest shuts down cleanly */
		vm_shutdown(c->vm, EXIT_OK);
	} else if (!strcmp(verb, "snapshot") && name && (!flag || !strcmp(flag, "resume")) &&
		   !strtok(NULL, " \t")) {
		if (!snapshot_name_valid(name))
			snprintf(reply, size, "error " SNAPSHOT_NAME_REFUSED, name);
		else
			take_snapshot(c, name, flag != NULL, reply, size);
	} else {
		snprintf(reply, size,
			 "error unknown request (snapshot NAME [resume] | status | stop)");
	}
}

/* One connection: read one request line (bounded), answer it, close. */
static void control_on_accept(void *opaque, uint32_t events)
{
	struct control *c = opaque;
	char line[REQUEST_MAX + 1], reply[512];
	struct timeval timeout = { .tv_sec = 5 };
	size_t len = 0;
	int fd;

	(void)events;
	fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	/* a client that sends nothing cannot hold the VM's loop for long */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
	while (len < REQUEST_MAX) {
		ssize_t n = read(fd, line + len, REQUEST_MAX - len);

		if (n <= 0)
			break;
		len += (size_t)n;
		if (memchr(line, '\n', len))
			break;
	}
	line[len] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	if (len == REQUEST_MAX && !memchr(line, '\n', len))
		snprintf(reply, sizeof(reply), "error request longer than %d bytes", REQUEST_MAX);
	else
		handle_request(c, line, reply, sizeof(reply));
	strncat(reply, "\n", sizeof(reply) - strlen(reply) - 1);
	if (write_all(fd, reply, strlen(reply)))
		log_warn("control socket: the client left before the reply");
	close(fd);
}

int control_listen(struct control **control, struct vm *vm, struct snapshot_clone *clone,
		   struct snapshot_repo *repo, const char *path)
{
	struct control *c = control_get(control, vm, repo);
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int ret;

	if (!c)
		return -ENOMEM;
	c->clone = clone;
	if (path_format(addr.sun_path, sizeof(addr.sun_path), "%s", path)) {
		log_error("--api-sock: path longer than %zu bytes", sizeof(addr.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	c->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->listen_fd < 0)
		return -errno;
	unlink(path); /* a socket left by a VM that died */
	if (bind(c->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(c->listen_fd, 8) < 0) {
		ret = -errno;
		log_error("cannot listen on %s: %s", path, strerror(errno));
		return ret;
	}
	snprintf(c->path, sizeof(c->path), "%s", path);
	ret = vm_watch_fd(vm, c->listen_fd, EPOLLIN, control_on_accept, c);
	if (ret)
		log_error("cannot watch %s: %s", path, strerror(-ret));
	return ret;
}

static void on_ready_in_loop(struct vm *vm, void *opaque)
{
	struct control *c = opaque;
	char reply[512];

	(void)vm;
	/* a failure has been logged where it happened */
	if (take_snapshot(c, c->ready_name, c->ready_resume, reply, sizeof(reply))) {
		vm_request_stop(c->vm, EXIT_RUNTIME);
		return;
	}
	log_info("%s", reply + strlen("ok "));
}

/* Runs on the vCPU thread that reported READY: hand over to the loop. */
static void on_ready_event(struct vm *vm, enum vm_event event, uint64_t value, void *opaque)
{
	struct control *c = opaque;

	(void)value;
	if (event != VM_EVENT_READY || c->ready_done)
		return;
	c->ready_done = true; /* one snapshot, even if the guest says ready again */
	if (vm_run_on_loop(vm, on_ready_in_loop, c)) {
		log_error("snapshot on ready: cannot reach the event loop");
		vm_request_stop(vm, EXIT_RUNTIME);
	}
}

int control_on_ready(struct control **control, struct vm *vm, struct snapshot_repo *repo,
		     const char *name, bool resume)
{
	struct control *c = control_get(control, vm, repo);

	if (!c)
		return -ENOMEM;
	snprintf(c->ready_name, sizeof(c->ready_name), "%s", name);
	c->ready_resume = resume;
	vm_set_event_handler(vm, on_ready_event, c);
	return 0;
}

void control_close(struct control *c)
{
	if (!c)
		return;
	if (c->listen_fd >= 0) {
		close(c->listen_fd);
		unlink(c->path);
	}
	free(c);
}

int control_request(const char *path, const char *request, char *reply, size_t size, int timeout_ms)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
	size_t len = 0;
	int fd, ret;

	if (path_format(addr.sun_path, sizeof(addr.sun_path), "%s", path))
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (timeout_ms) { /* a wedged VM must not hold the caller */
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	ret = write_all(fd, request, strlen(request));
	while (!ret && len + 1 < size) {
		ssize_t n = read(fd, reply + len, size - 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			ret = errno == EAGAIN ? -ETIMEDOUT : -errno;
		if (n <= 0 || memchr(reply + len, '\n', (size_t)n)) {
			len += n > 0 ? (size_t)n : 0;
			break;
		}
		len += (size_t)n;
	}
	close(fd);
	reply[len] = '\0';
	reply[strcspn(reply, "\n")] = '\0';
	return ret ? ret : (len ? 0 : -EPIPE);
}
