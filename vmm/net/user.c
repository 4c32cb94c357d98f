/*
 * The user-mode backend: a libslirp network (10.0.2.0/24, the host at
 * 10.0.2.2, DNS at 10.0.2.3, DHCP from 10.0.2.15, as QEMU's -netdev user) whose
 * connections are the host's own sockets, so no privilege is needed, and
 * host ports forwarded into the guest (hostfwd).
 *
 * libslirp is loaded with dlopen() when a VM first asks for it: linking it
 * would load GLib into every snapvm process (~0.25 ms of each restore).
 *
 * libslirp wants a poll() loop: before sleeping it lists the sockets to watch
 * (slirp_pollfds_fill), after waking it hears which are ready
 * (slirp_pollfds_poll). Here the list goes into an epoll set of our own,
 * which the VM's loop watches along with a timerfd for slirp's timers; each
 * wake-up polls the list once without waiting, hands the result to slirp and
 * takes a fresh list. Frames slirp sends the guest wait in a bounded queue.
 */
#include "vmm/net/backend.h"
#include "vmm/loop.h"
#include "common/common.h"

#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <slirp/libslirp.h>

#define USER_QUEUE_FRAMES 256 /* frames for the guest while it has no room; more are dropped */
#define USER_MAX_TIMERS	  8

/* The libslirp calls snapvm makes, resolved once per process. */
static struct {
	Slirp *(*new_instance)(const SlirpConfig *, const SlirpCb *, void *);
	void (*cleanup)(Slirp *);
	void (*input)(Slirp *, const uint8_t *, int);
	void (*pollfds_fill)(Slirp *, uint32_t *, SlirpAddPollCb, void *);
	void (*pollfds_poll)(Slirp *, int, SlirpGetREventsCb, void *);
	int (*add_hostfwd)(Slirp *, int, struct in_addr, int, struct in_addr, int);
	const char *error;
} slirp_api;

static pthread_once_t slirp_api_once = PTHREAD_ONCE_INIT;

static void slirp_api_load(void)
{
	void *lib = dlopen("libslirp.so.0", RTLD_NOW | RTLD_LOCAL);

	if (!lib) {
		slirp_api.error = "cannot load libslirp.so.0 (install Debian's libslirp0)";
		return;
	}
	slirp_api.new_instance =
		(Slirp * (*)(const SlirpConfig *, const SlirpCb *, void *)) dlsym(lib, "slirp_new");
	slirp_api.cleanup = (void (*)(Slirp *))dlsym(lib, "slirp_cleanup");
	slirp_api.input = (void (*)(Slirp *, const uint8_t *, int))dlsym(lib, "slirp_input");
	slirp_api.pollfds_fill = (void (*)(Slirp *, uint32_t *, SlirpAddPollCb, void *))dlsym(
		lib, "slirp_pollfds_fill");
	slirp_api.pollfds_poll =
		(void (*)(Slirp *, int, SlirpGetREventsCb, void *))dlsym(lib, "slirp_pollfds_poll");
	slirp_api.add_hostfwd = (int (*)(Slirp *, int, struct in_addr, int, struct in_addr,
					 int))dlsym(lib, "slirp_add_hostfwd");
	if (!slirp_api.new_instance || !slirp_api.cleanup || !slirp_api.input ||
	    !slirp_api.pollfds_fill || !slirp_api.pollfds_poll || !slirp_api.add_hostfwd)
		slirp_api.error = "libslirp.so.0 lacks a function snapvm needs";
}

struct user_timer {
	bool used, armed;
	int64_t expire_ms;
	SlirpTimerCb fn;
	void *opaque;
};

struct user_frame {
	size_t len;
	uint8_t bytes[]; /* the virtio-net header, then the frame */
};

struct net_user {
	struct net_backend base;
	Slirp *slirp;
	int epoll_fd; /* slirp's sockets and timer_fd; the VM's loop watches it */
	int timer_fd;
	bool watching;
	struct pollfd *fds; /* the list slirp asked for last */
	unsigned fd_count, fd_capacity;
	int *registered; /* the fds in epoll_fd */
	unsigned registered_count, registered_capacity;
	struct user_timer timers[USER_MAX_TIMERS];
	struct user_frame *queue[USER_QUEUE_FRAMES];
	unsigned queue_head, queue_count;
	unsigned dropped;
	uint8_t tx_frame[NET_FRAME_MAX]; /* a guest frame made contiguous for slirp */
};

static int64_t user_clock_ns(void *opaque)
{
	(void)opaque;
	return (int64_t)time_now_ns();
}

/* slirp -> guest: queued until the device takes it. */
static ssize_t user_send_packet(const void *buf, size_t len, void *opaque)
{
	struct net_user *u = opaque;
	struct user_frame *f;

	if (u->queue_count == USER_QUEUE_FRAMES || len > NET_FRAME_MAX - NET_HEADER_SIZE) {
		if (u->dropped++ == 0)
			log_warn("user network: the guest takes no frames; dropping some");
		return (ssize_t)len;
	}
	f = malloc(sizeof(*f) + NET_HEADER_SIZE + len);
	if (!f)
		return -1;
	f->len = NET_HEADER_SIZE + len;
	memset(f->bytes, 0, NET_HEADER_SIZE);
	memcpy(f->bytes + NET_HEADER_SIZE, buf, len);
	u->queue[(u->queue_head + u->queue_count++) % USER_QUEUE_FRAMES] = f;
	return (ssize_t)len;
}

static void user_guest_error(const char *msg, void *opaque)
{
	(void)opaque;
	log_debug("user network: guest error: %s", msg);
}

static void *user_timer_new(SlirpTimerCb fn, void *cb_opaque, void *opaque)
{
	struct net_user *u = opaque;

	for (unsigned i = 0; i < USER_MAX_TIMERS; i++) {
		if (!u->timers[i].used) {
			u->timers[i] =
				(struct user_timer){ .used = true, .fn = fn, .opaque = cb_opaque };
			return &u->timers[i];
		}
	}
	log_warn("user network: out of timers");
	return NULL;
}

static void user_timer_free(void *timer, void *opaque)
{
	(void)opaque;
	if (timer)
		memset(timer, 0, sizeof(struct user_timer));
}

static void user_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
	struct user_timer *t = timer;

	(void)opaque;
	if (t) {
		t->expire_ms = expire_ms;
		t->armed = true;
	}
}

static void user_ignore_fd(int fd, void *opaque)
{
	(void)fd;
	(void)opaque;
}

static void user_notify(void *opaque)
{
	(void)opaque;
}

static const SlirpCb user_callbacks = {
	.send_packet = user_send_packet,
	.guest_error = user_guest_error,
	.clock_get_ns = user_clock_ns,
	.timer_new = user_timer_new,
	.timer_free = user_timer_free,
	.timer_mod = user_timer_mod,
	.register_poll_fd = user_ignore_fd,
	.unregister_poll_fd = user_ignore_fd,
	.notify = user_notify,
};

static int user_add_poll(int fd, int events, void *opaque)
{
	struct net_user *u = opaque;
	short want = (short)((events & SLIRP_POLL_IN ? POLLIN : 0) |
			     (events & SLIRP_POLL_OUT ? POLLOUT : 0) |
			     (events & SLIRP_POLL_PRI ? POLLPRI : 0));

	if (u->fd_count == u->fd_capacity) {
		unsigned capacity = u->fd_capacity ? 2 * u->fd_capacity : 16;
		struct pollfd *fds = realloc(u->fds, capacity * sizeof(*fds));

		if (!fds)
			return -1;
		u->fds = fds;
		u->fd_capacity = capacity;
	}
	u->fds[u->fd_count] = (struct pollfd){ .fd = fd, .events = want };
	return (int)u->fd_count++;
}

static int user_get_revents(int index, void *opaque)
{
	struct net_user *u = opaque;
	short r;

	if (index < 0 || (unsigned)index >= u->fd_count)
		return 0;
	r = u->fds[index].revents;
	return (r & POLLIN ? SLIRP_POLL_IN : 0) | (r & POLLOUT ? SLIRP_POLL_OUT : 0) |
	       (r & POLLPRI ? SLIRP_POLL_PRI : 0) | (r & POLLERR ? SLIRP_POLL_ERR : 0) |
	       (r & POLLHUP ? SLIRP_POLL_HUP : 0);
}

static bool user_listed(const struct net_user *u, int fd)
{
	for (unsigned i = 0; i < u->fd_count; i++) {
		if (u->fds[i].fd == fd)
			return true;
	}
	return false;
}

/*
 * Makes epoll_fd watch exactly the listed sockets. Every listed fd is set
 * again (MOD, or ADD when epoll forgot it): slirp may have closed a socket
 * and got its number back for a new one, which epoll dropped on the close.
 */
static void user_sync_epoll(struct net_user *u)
{
	unsigned kept = 0;

	for (unsigned i = 0; i < u->registered_count; i++) {
		if (user_listed(u, u->registered[i]))
			continue;
		epoll_ctl(u->epoll_fd, EPOLL_CTL_DEL, u->registered[i], NULL);
	}
	if (u->fd_count > u->registered_capacity) {
		int *registered = realloc(u->registered, u->fd_capacity * sizeof(int));

		if (!registered)
			return;
		u->registered = registered;
		u->registered_capacity = u->fd_capacity;
	}
	for (unsigned i = 0; i < u->fd_count; i++) {
		struct epoll_event ev = { .events = (uint32_t)u->fds[i].events, .data.fd = -1 };

		if (epoll_ctl(u->epoll_fd, EPOLL_CTL_MOD, u->fds[i].fd, &ev) == 0 ||
		    (errno == ENOENT &&
		     epoll_ctl(u->epoll_fd, EPOLL_CTL_ADD, u->fds[i].fd, &ev) == 0))
			u->registered[kept++] = u->fds[i].fd;
	}
	u->registered_count = kept;
}

/* The next wake-up: slirp's own timeout or the earliest armed timer. */
static void user_arm_timer(struct net_user *u, uint32_t timeout_ms)
{
	int64_t now_ms = (int64_t)(time_now_ns() / 1000000), wait_ms = timeout_ms;
	struct itimerspec when = { 0 };

	for (unsigned i = 0; i < USER_MAX_TIMERS; i++) {
		if (u->timers[i].used && u->timers[i].armed)
			wait_ms = MIN(wait_ms, MAX(u->timers[i].expire_ms - now_ms, 0));
	}
	if (wait_ms != UINT32_MAX) {
		wait_ms = MAX(wait_ms, 1); /* 0 would disarm the timerfd */
		when.it_value.tv_sec = wait_ms / 1000;
		when.it_value.tv_nsec = (wait_ms % 1000) * 1000000;
	}
	timerfd_settime(u->timer_fd, 0, &when, NULL);
}

/* Takes slirp's list of sockets and its timeout, and watches them. */
static void user_refill(struct net_user *u)
{
	uint32_t timeout = UINT32_MAX;

	u->fd_count = 0;
	slirp_api.pollfds_fill(u->slirp, &timeout, user_add_poll, u);
	user_sync_epoll(u);
	user_arm_timer(u, timeout);
}

static void user_run_timers(struct net_user *u)
{
	int64_t now_ms = (int64_t)(time_now_ns() / 1000000);

	for (unsigned i = 0; i < USER_MAX_TIMERS; i++) {
		struct user_timer *t = &u->timers[i];

		if (t->used && t->armed && t->expire_ms <= now_ms) {
			t->armed = false;
			t->fn(t->opaque); /* may re-arm or free timers */
		}
	}
}

/*
 * One turn of slirp's loop without sleeping: the ready sockets, the timers,
 * then frames slirp held back (waiting for the guest's ARP reply, say) go out.
 */
static void user_step(struct net_user *u)
{
	int ready = u->fd_count ? poll(u->fds, u->fd_count, 0) : 0;

	slirp_api.pollfds_poll(u->slirp, ready < 0, user_get_revents, u);
	user_run_timers(u);
	user_refill(u);
}

static void user_on_event(void *opaque, uint32_t events)
{
	struct net_user *u = opaque;
	uint64_t expirations;

	(void)events;
	if (read(u->timer_fd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
		log_debug("user network: timerfd: %s", strerror(errno));
	user_step(u);
	if (u->queue_count && u->watching)
		u->base.ready(u->base.opaque);
}

static int user_send(struct net_backend *b, const struct iovec *iov, unsigned count)
{
	struct net_user *u = (struct net_user *)b;
	uint8_t *frame = u->tx_frame;
	size_t len = 0;

	for (unsigned i = 0; i < count; i++) {
		if (iov[i].iov_len > sizeof(u->tx_frame) - len)
			return -EMSGSIZE;
		memcpy(frame + len, iov[i].iov_base, iov[i].iov_len);
		len += iov[i].iov_len;
	}
	/* slirp takes the frame without our header; it computes checksums itself */
	if (len <= NET_HEADER_SIZE)
		return -EINVAL;
	slirp_api.input(u->slirp, frame + NET_HEADER_SIZE, (int)(len - NET_HEADER_SIZE));
	user_step(u); /* the frame may have opened a socket, or answered slirp's ARP */
	return 0;
}

static ssize_t user_receive(struct net_backend *b, uint8_t *frame, size_t size)
{
	struct net_user *u = (struct net_user *)b;
	struct user_frame *f;
	size_t len;

	if (!u->queue_count)
		return 0;
	f = u->queue[u->queue_head];
	u->queue_head = (u->queue_head + 1) % USER_QUEUE_FRAMES;
	u->queue_count--;
	len = f->len;
	if (len <= size)
		memcpy(frame, f->bytes, len);
	free(f);
	return len <= size ? (ssize_t)len : -EMSGSIZE;
}

static void user_watch(struct net_backend *b, bool on)
{
	((struct net_user *)b)->watching = on;
}

static int user_set_offloads(struct net_backend *b, unsigned offloads)
{
	(void)b;
	return offloads ? -EOPNOTSUPP : 0;
}

static void user_destroy(struct net_backend *b)
{
	struct net_user *u = (struct net_user *)b;

	if (u->slirp)
		slirp_api.cleanup(u->slirp);
	if (u->epoll_fd >= 0) {
		if (b->loop)
			event_loop_remove(b->loop, u->epoll_fd);
		close(u->epoll_fd);
	}
	if (u->timer_fd >= 0)
		close(u->timer_fd);
	while (u->queue_count) {
		free(u->queue[u->queue_head]);
		u->queue_head = (u->queue_head + 1) % USER_QUEUE_FRAMES;
		u->queue_count--;
	}
	free(u->fds);
	free(u->registered);
	free(u);
}

static const struct net_backend_ops user_ops = {
	.send = user_send,
	.receive = user_receive,
	.watch = user_watch,
	.set_offloads = user_set_offloads,
	.destroy = user_destroy,
};

static struct in_addr user_addr(uint32_t host_order)
{
	return (struct in_addr){ .s_addr = htonl(host_order) };
}

/* QEMU's defaults for -netdev user, IPv4 and IPv6. */
static Slirp *user_slirp_new(struct net_user *u)
{
	SlirpConfig config = {
		.version = 1,
		.in_enabled = true,
		.vnetwork = user_addr(0x0a000200),
		.vnetmask = user_addr(0xffffff00),
		.vhost = user_addr(0x0a000202),
		.vdhcp_start = user_addr(VMM_NET_GUEST_ADDR),
		.vnameserver = user_addr(0x0a000203),
		.in6_enabled = true,
		.vprefix_len = 64,
	};

	inet_pton(AF_INET6, "fec0::", &config.vprefix_addr6);
	inet_pton(AF_INET6, "fec0::2", &config.vhost6);
	inet_pton(AF_INET6, "fec0::3", &config.vnameserver6);
	return slirp_api.new_instance(&config, &user_callbacks, u);
}

static int user_add_hostfwds(struct net_user *u, const struct vmm_net *net)
{
	for (unsigned i = 0; i < net->hostfwd_count; i++) {
		const struct vmm_hostfwd *f = &net->hostfwds[i];
		uint32_t guest = f->guest_addr ? f->guest_addr : VMM_NET_GUEST_ADDR;

		if (slirp_api.add_hostfwd(u->slirp, f->udp, user_addr(f->host_addr), f->host_port,
					  user_addr(guest), f->guest_port) < 0) {
			log_error("user network: cannot forward host %s port %u (in use?): %s",
				  f->udp ? "UDP" : "TCP", f->host_port, strerror(errno));
			return -EADDRINUSE;
		}
	}
	return 0;
}

static int user_setup(struct net_user *u, const struct vmm_net *net)
{
	pthread_once(&slirp_api_once, slirp_api_load);
	if (slirp_api.error) {
		log_error("user network: %s", slirp_api.error);
		return -ENOENT;
	}
	u->slirp = user_slirp_new(u);
	if (!u->slirp) {
		log_error("user network: libslirp would not start");
		return -EINVAL;
	}
	if (user_add_hostfwds(u, net))
		return -EADDRINUSE;
	u->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	u->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (u->epoll_fd < 0 || u->timer_fd < 0 ||
	    epoll_ctl(u->epoll_fd, EPOLL_CTL_ADD, u->timer_fd,
		      &(struct epoll_event){ .events = EPOLLIN, .data.fd = -1 }) < 0 ||
	    (u->base.loop &&
	     event_loop_add(u->base.loop, u->epoll_fd, EPOLLIN, user_on_event, u) < 0)) {
		log_error("user network: cannot set up its events: %s", strerror(errno));
		return -EIO;
	}
	user_refill(u);
	return 0;
}

struct net_backend *net_user_open(const struct vmm_net *net, struct event_loop *loop,
				  void (*ready)(void *opaque), void *opaque)
{
	struct net_user *u = calloc(1, sizeof(*u));

	if (!u) {
		log_error("user network: out of memory");
		return NULL;
	}
	u->epoll_fd = u->timer_fd = -1;
	u->base = (struct net_backend){
		.ops = &user_ops, .loop = loop, .ready = ready, .opaque = opaque
	};
	u->watching = true;
	if (user_setup(u, net)) {
		user_destroy(&u->base);
		return NULL;
	}
	return &u->base;
}
