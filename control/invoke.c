/*
 * control_invoke: one request to a fresh clone. The clone's console is a
 * pair of pipes owned here: the request goes in before the vCPUs resume (the
 * UART holds it until the guest reads), and the first line that comes out is
 * the reply. A timer bounds the wait.
 */
#include "control/control.h"
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

struct invoke {
	struct vm *vm;
	struct snapshot_clone *clone;
	int out_fd; /* read end of the guest's console output */
	int timer_fd;
	uint64_t start_ns;
	struct control_invoke_result *result;
	void (*on_reply)(const struct control_invoke_result *result, void *opaque);
	void *opaque;
	size_t len;
	int status; /* 0 once the reply is complete */
};

static void invoke_on_output(void *opaque, uint32_t events)
{
	struct invoke *inv = opaque;
	char *reply = inv->result->reply;
	size_t room = sizeof(inv->result->reply) - 1 - inv->len;
	ssize_t n;
	char *nl;

	(void)events;
	n = read(inv->out_fd, reply + inv->len, room ? room : 1);
	if (n <= 0) {
		vm_request_stop(inv->vm, EXIT_RUNTIME);
		return;
	}
	if (!room)
		n = 0; /* a reply longer than the buffer: keep its beginning */
	inv->len += (size_t)n;
	reply[inv->len] = '\0';
	nl = strchr(reply, '\n');
	if (!nl)
		return;
	*nl = '\0';
	inv->result->reply_at_ns = time_now_ns();
	inv->result->reply_ns = inv->result->reply_at_ns - inv->start_ns;
	inv->status = 0;
	snapshot_clone_memory_stats(inv->clone, &inv->result->memory);
	if (inv->on_reply)
		inv->on_reply(inv->result, inv->opaque);
	vm_request_stop(inv->vm, EXIT_OK);
}

static void invoke_on_timeout(void *opaque, uint32_t events)
{
	struct invoke *inv = opaque;

	(void)events;
	inv->status = -ETIMEDOUT;
	vm_request_stop(inv->vm, EXIT_RUNTIME);
}

static int invoke_watch(struct invoke *inv, unsigned timeout_ms)
{
	struct itimerspec when = { .it_value = { .tv_sec = timeout_ms / 1000,
						 .tv_nsec = (long)(timeout_ms % 1000) * 1000000 } };
	int ret;

	inv->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (inv->timer_fd < 0 || timerfd_settime(inv->timer_fd, 0, &when, NULL) < 0)
		return -errno;
	ret = vm_watch_fd(inv->vm, inv->out_fd, EPOLLIN, invoke_on_output, inv);
	if (!ret)
		ret = vm_watch_fd(inv->vm, inv->timer_fd, EPOLLIN, invoke_on_timeout, inv);
	return ret;
}

static void close_pair(int fds[2])
{
	for (int i = 0; i < 2; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = -1;
	}
}

int control_invoke(struct snapshot_repo *repo, const struct snapshot_restore_options *options,
		   uint64_t start_ns, const char *request, unsigned timeout_ms,
		   void (*on_reply)(const struct control_invoke_result *result, void *opaque),
		   void *opaque, struct control_invoke_result *result)
{
	struct snapshot_restore_options o = *options;
	struct invoke inv = { .timer_fd = -1,
			      .result = result,
			      .on_reply = on_reply,
			      .opaque = opaque,
			      .status = -EPIPE };
	int in[2] = { -1, -1 }, out[2] = { -1, -1 };
	int ret;

	memset(result, 0, sizeof(*result));
	inv.start_ns = start_ns ? start_ns : time_now_ns();
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC | O_NONBLOCK) < 0) {
		ret = -errno;
		log_error("cannot make the clone's console pipes: %s", strerror(-ret));
		goto out;
	}
	/* the request is small: the pipe holds it whole until the console reads it */
	ret = write_all(in[1], request, strlen(request));
	if (!ret)
		ret = write_all(in[1], "\n", 1);
	close(in[1]);
	in[1] = -1;
	if (ret) {
		log_error("cannot write the request to the clone's console: %s", strerror(-ret));
		goto out;
	}
	o.vm.console = VMM_CONSOLE_FDS;
	o.vm.console_in_fd = in[0];
	o.vm.console_out_fd = out[1];
	/* the first invoke of a snapshot with no working set records one, up to its reply */
	o.record_ws = o.record_ws || snapshot_workset_wanted(repo, &o);
	ret = snapshot_restore(repo, &o, &inv.clone);
	o.opened = NULL; /* the restore took it */
	if (ret)
		goto out;
	inv.vm = snapshot_clone_vm(inv.clone);
	inv.out_fd = out[0];
	ret = invoke_watch(&inv, timeout_ms);
	if (ret) {
		log_error("cannot watch the clone's console: %s", strerror(-ret));
		goto out;
	}
	if (o.before_start && (ret = o.before_start(repo, inv.clone, o.before_start_opaque)))
		goto out; /* the hook has said why */
	result->restore_ns = time_now_ns() - inv.start_ns;
	vm_resume(inv.vm);
	vm_run(inv.vm);
	ret = inv.status;
	if (ret && snapshot_clone_failed(inv.clone))
		ret = -EIO; /* paging failed; the pager has said why */
	else if (ret == -ETIMEDOUT)
		log_error("no reply from %s within %u ms", o.name, timeout_ms);
	else if (ret)
		log_error("the clone of %s stopped without replying", o.name);
	if (!ret && snapshot_clone_save_workset(inv.clone, repo))
		log_warn("snapshot %s: the working set was not stored", o.name);
out:
	snapshot_ahead_close(o.opened); /* the pipes failed before the restore */
	snapshot_clone_destroy(inv.clone);
	if (inv.timer_fd >= 0)
		close(inv.timer_fd);
	close_pair(in);
	close_pair(out);
	return ret;
}
