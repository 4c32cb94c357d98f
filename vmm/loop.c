#include "vmm/loop.h"
#include "common/common.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#define LOOP_MAX_SOURCES 32

struct event_source {
	int fd;
	event_fn fn;
	void *opaque;
};

struct event_loop {
	int epoll_fd;
	bool stopping;
	struct event_source sources[LOOP_MAX_SOURCES]; /* fd == -1: free slot */
};

int event_loop_create(struct event_loop **out)
{
	struct event_loop *loop = calloc(1, sizeof(*loop));

	if (!loop)
		return -ENOMEM;
	loop->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epoll_fd < 0) {
		int ret = -errno;

		free(loop);
		return ret;
	}
	for (unsigned i = 0; i < LOOP_MAX_SOURCES; i++)
		loop->sources[i].fd = -1;
	*out = loop;
	return 0;
}

int event_loop_add(struct event_loop *loop, int fd, uint32_t events, event_fn fn, void *opaque)
{
	for (unsigned i = 0; i < LOOP_MAX_SOURCES; i++) {
		struct event_source *s = &loop->sources[i];
		struct epoll_event ev = { .events = events, .data.ptr = s };

		if (s->fd != -1)
			continue;
		if (epoll_ctl(loop->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
			return -errno;
		*s = (struct event_source){ fd, fn, opaque };
		return 0;
	}
	return -ENOSPC;
}

void event_loop_remove(struct event_loop *loop, int fd)
{
	for (unsigned i = 0; i < LOOP_MAX_SOURCES; i++) {
		if (loop->sources[i].fd != fd)
			continue;
		epoll_ctl(loop->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
		loop->sources[i].fd = -1;
	}
}

int event_loop_run(struct event_loop *loop)
{
	loop->stopping = false;
	while (!loop->stopping) {
		struct epoll_event events[8];
		int n = epoll_wait(loop->epoll_fd, events, ARRAY_SIZE(events), -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (int i = 0; i < n && !loop->stopping; i++) {
			struct event_source *s = events[i].data.ptr;

			/* a callback may have removed this source meanwhile */
			if (s->fd != -1)
				s->fn(s->opaque, events[i].events);
		}
	}
	return 0;
}

void event_loop_stop(struct event_loop *loop)
{
	loop->stopping = true;
}

void event_loop_destroy(struct event_loop *loop)
{
	if (!loop)
		return;
	close(loop->epoll_fd);
	free(loop);
}
