/* A small epoll event loop: the VM's main thread waits here for every host event. */
#ifndef SNAPVM_VMM_LOOP_H
#define SNAPVM_VMM_LOOP_H

#include <stdint.h>

struct event_loop;

typedef void (*event_fn)(void *opaque, uint32_t events);

/* Creates a loop; 0 or -errno. */
int event_loop_create(struct event_loop **loop);
/* Watches fd for events (EPOLLIN, ...); -EPERM for files epoll cannot watch. */
int event_loop_add(struct event_loop *loop, int fd, uint32_t events, event_fn fn, void *opaque);
/* Stops watching fd. */
void event_loop_remove(struct event_loop *loop, int fd);
/* Dispatches events until event_loop_stop(); 0 or -errno. */
int event_loop_run(struct event_loop *loop);
/* Makes event_loop_run() return after the current callback; call it on the loop's thread. */
void event_loop_stop(struct event_loop *loop);
void event_loop_destroy(struct event_loop *loop);

#endif
