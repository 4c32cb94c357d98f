/*
 * virtio vsock (virtio 1.2, 5.10), stream sockets only, with the host side as
 * Unix sockets the way Firecracker does it:
 *
 *   - host to guest: a host program connects to PATH and writes
 *     "CONNECT <port>\n"; once the guest accepts, it reads "OK <host port>\n"
 *     and the socket carries the stream;
 *   - guest to host: a guest connection to host port P reaches the Unix
 *     listener at "PATH_P".
 *
 * Flow control is the spec's credit scheme: the device reads from a host
 * socket only as much as the guest has room for (buf_alloc - (sent -
 * fwd_cnt)), and advertises VSOCK_BUF_ALLOC bytes of its own buffer for
 * guest data that the host socket has not taken yet.
 *
 * Each direction ends on its own, as with TCP: the host's shutdown(SHUT_WR)
 * becomes a SHUTDOWN(SEND) to the guest, and the guest's becomes a
 * shutdown(SHUT_WR) of the host socket once its data is out; the other
 * direction carries on until it ends too.
 *
 * Connections are host resources: a snapshot keeps none of them, and a
 * restored device tells the guest with a TRANSPORT_RESET event. The guest
 * drops every connection it has when it handles that event, so no packet
 * goes to it between the event and its handling: a host connection made
 * right after the restore was reset by the event it overtook. Linux (and the
 * test guest) hands the event buffer back once it has handled the event;
 * that is the acknowledgement.
 */
#include "vmm/virtio/virtio.h"
#include "vmm/loop.h"
#include "vmm/vmm.h"
#include "common/common.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define VIRTIO_ID_VSOCK	  19		 /* its device id (virtio 1.2, section 5) */
#define VSOCK_NAME	  "virtio-vsock" /* device_ops.name, and what --vsock configures */
#define VSOCK_PORT_SUFFIX "_4294967295"	 /* the longest "_<port>" of a guest-to-host listener */
#define VSOCK_CID_MIN	  3		 /* 0-2 are reserved (hypervisor, local, host) */
#define VSOCK_PATH_MAX	  sizeof(((struct sockaddr_un *)0)->sun_path) /* the NUL included */

#define VSOCK_QUEUE_SIZE 128
#define VSOCK_RX	 0
#define VSOCK_TX	 1
#define VSOCK_EVENT	 2

#define VSOCK_HOST_CID	       2
#define VSOCK_TYPE_STREAM      1
#define VSOCK_BUF_ALLOC	       (64 * 1024) /* per connection, guest to host */
#define VSOCK_RX_CHUNK	       4096
#define VSOCK_MAX_CONNECTIONS  64
#define VSOCK_MAX_LONE_RESETS  32
#define VSOCK_CONNECT_LINE_MAX 32
#define VSOCK_EPHEMERAL_BASE   0x40000000u /* host ports for host-initiated connections */

enum vsock_op {
	OP_REQUEST = 1,
	OP_RESPONSE = 2,
	OP_RST = 3,
	OP_SHUTDOWN = 4,
	OP_RW = 5,
	OP_CREDIT_UPDATE = 6,
	OP_CREDIT_REQUEST = 7,
};

#define SHUTDOWN_RCV	      1
#define SHUTDOWN_SEND	      2
#define EVENT_TRANSPORT_RESET 0

struct vsock_header {
	uint64_t src_cid;
	uint64_t dst_cid;
	uint32_t src_port;
	uint32_t dst_port;
	uint32_t len;
	uint16_t type;
	uint16_t op;
	uint32_t flags;
	uint32_t buf_alloc;
	uint32_t fwd_cnt;
} __attribute__((packed));

enum conn_state {
	CONN_FREE,
	CONN_CONNECT_LINE, /* host connected to PATH: reading "CONNECT <port>\n" */
	CONN_CONNECTING,   /* REQUEST sent to the guest, waiting for its RESPONSE */
	CONN_ESTABLISHED,
};

/* Control packets a connection owes the guest, sent as rx buffers allow. */
#define PENDING_REQUEST	 0x01
#define PENDING_RESPONSE 0x02
#define PENDING_CREDIT	 0x04
#define PENDING_SHUTDOWN 0x08
#define PENDING_RST	 0x10

struct vsock_conn {
	enum conn_state state;
	int fd;
	bool watched;
	uint32_t events;
	uint32_t local_port; /* host side */
	uint32_t peer_port;  /* guest side */
	unsigned pending;
	uint32_t peer_buf_alloc; /* the guest's credit */
	uint32_t peer_fwd_cnt;
	uint32_t rx_cnt;       /* bytes sent to the guest */
	uint32_t fwd_cnt;      /* guest bytes written to the host socket */
	uint32_t fwd_cnt_told; /* fwd_cnt last sent to the guest */
	/*
	 * Each direction closes on its own, as TCP's do: a peer that has sent
	 * everything (shutdown(SHUT_WR)) still reads the answer.
	 */
	bool host_eof;	      /* the host socket's read side ended: SHUTDOWN(SEND) owed */
	bool guest_send_done; /* the guest sends no more: shut the host's write side */
	bool guest_recv_done; /* the guest reads no more: stop reading the host */
	bool host_write_shut;
	uint32_t rx_len; /* host bytes read, waiting for a guest buffer */
	uint8_t rx_buf[VSOCK_RX_CHUNK];
	uint32_t tx_len; /* guest bytes the host socket has not taken yet */
	uint8_t *tx_buf; /* VSOCK_BUF_ALLOC bytes */
	char line[VSOCK_CONNECT_LINE_MAX];
	unsigned line_len;
};

struct vsock_reset {
	uint32_t local_port, peer_port;
};

struct virtio_vsock_state {
	struct virtio_mmio_state transport;
	uint64_t guest_cid;
};

struct virtio_vsock {
	struct virtio_mmio t;
	uint64_t guest_cid;
	char path[VSOCK_PATH_MAX];
	int listen_fd;
	int epoll_fd; /* the connections and the listener; itself watched by the VM's loop */
	uint32_t next_port;
	bool reset_event_pending; /* restored: TRANSPORT_RESET owed to the guest */
	bool reset_unacked;	  /* sent: the guest has not handed its buffer back yet */
	uint16_t reset_buffers;	  /* event buffers the guest had left after it */
	struct vsock_conn conns[VSOCK_MAX_CONNECTIONS];
	unsigned reset_count;
	struct vsock_reset resets[VSOCK_MAX_LONE_RESETS];
};
_Static_assert(offsetof(struct virtio_vsock, t) == 0, "virtio_mmio_device_* take the device");

static void vsock_config_read(struct virtio_mmio *t, uint32_t offset, uint8_t *data, uint32_t len)
{
	struct virtio_vsock *v = (struct virtio_vsock *)t;

	memcpy(data, (const uint8_t *)&v->guest_cid + offset, len);
}

static uint32_t conn_peer_credit(const struct vsock_conn *c)
{
	uint32_t in_flight = c->rx_cnt - c->peer_fwd_cnt;

	return in_flight > c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

/* What the connection wants to hear from its host socket now. */
static uint32_t conn_wanted_events(const struct vsock_conn *c)
{
	uint32_t events = 0;

	if (c->state == CONN_CONNECT_LINE ||
	    (c->state == CONN_ESTABLISHED && !c->host_eof && !c->guest_recv_done && !c->rx_len &&
	     conn_peer_credit(c)))
		events |= EPOLLIN;
	if (c->tx_len)
		events |= EPOLLOUT;
	return events;
}

/* Keeps the epoll registration in step: a socket nobody wants to hear from is not watched. */
static void conn_update_watch(struct virtio_vsock *v, struct vsock_conn *c)
{
	uint32_t events = c->state == CONN_FREE ? 0 : conn_wanted_events(c);
	struct epoll_event ev = { .events = events, .data.ptr = c };

	if (events == c->events && c->watched == (events != 0))
		return;
	if (!events) {
		if (c->watched)
			epoll_ctl(v->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
		c->watched = false;
	} else if (epoll_ctl(v->epoll_fd, c->watched ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) ==
		   0) {
		c->watched = true;
	}
	c->events = events;
}

static void conn_free(struct virtio_vsock *v, struct vsock_conn *c)
{
	if (c->watched)
		epoll_ctl(v->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
	if (c->fd >= 0)
		close(c->fd);
	free(c->tx_buf);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

static struct vsock_conn *conn_alloc(struct virtio_vsock *v, int fd)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNECTIONS; i++) {
		struct vsock_conn *c = &v->conns[i];

		if (c->state != CONN_FREE)
			continue;
		c->tx_buf = malloc(VSOCK_BUF_ALLOC);
		if (!c->tx_buf)
			return NULL;
		c->fd = fd;
		return c;
	}
	return NULL;
}

static struct vsock_conn *conn_find(struct virtio_vsock *v, uint32_t local_port, uint32_t peer_port)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNECTIONS; i++) {
		struct vsock_conn *c = &v->conns[i];

		if (c->state != CONN_FREE && c->state != CONN_CONNECT_LINE &&
		    c->local_port == local_port && c->peer_port == peer_port)
			return c;
	}
	return NULL;
}

static void vsock_queue_reset(struct virtio_vsock *v, uint32_t local_port, uint32_t peer_port)
{
	if (v->reset_count < VSOCK_MAX_LONE_RESETS)
		v->resets[v->reset_count++] = (struct vsock_reset){ local_port, peer_port };
}

/* --- device to guest (the rx queue) --- */

/* The next packet to send: a lone reset, a connection's control packet, or its data. */
struct rx_packet {
	struct vsock_conn *conn; /* NULL: resets[0] */
	uint16_t op;
	unsigned pending_bit;
	uint32_t flags;
};

static bool conn_next_packet(struct vsock_conn *c, struct rx_packet *p)
{
	static const struct {
		unsigned bit;
		uint16_t op;
	} order[] = { { PENDING_REQUEST, OP_REQUEST },
		      { PENDING_RESPONSE, OP_RESPONSE },
		      { PENDING_CREDIT, OP_CREDIT_UPDATE },
		      { PENDING_SHUTDOWN, OP_SHUTDOWN },
		      { PENDING_RST, OP_RST } };

	p->conn = c;
	for (size_t i = 0; i < ARRAY_SIZE(order); i++) {
		/* data read before the host closed goes out before the SHUTDOWN */
		if (order[i].bit == PENDING_SHUTDOWN && c->rx_len)
			break;
		if (c->pending & order[i].bit) {
			p->op = order[i].op;
			p->pending_bit = order[i].bit;
			/* the host has nothing more to send; it still takes the guest's data */
			p->flags = order[i].op == OP_SHUTDOWN ? SHUTDOWN_SEND : 0;
			return true;
		}
	}
	if (c->state == CONN_ESTABLISHED && c->rx_len && conn_peer_credit(c)) {
		*p = (struct rx_packet){ c, OP_RW, 0, 0 };
		return true;
	}
	return false;
}

static bool vsock_next_packet(struct virtio_vsock *v, struct rx_packet *p)
{
	if (v->reset_count) {
		*p = (struct rx_packet){ NULL, OP_RST, 0, 0 };
		return true;
	}
	for (unsigned i = 0; i < VSOCK_MAX_CONNECTIONS; i++) {
		if (v->conns[i].state != CONN_FREE && conn_next_packet(&v->conns[i], p))
			return true;
	}
	return false;
}

/* Writes the packet into the chain; returns the bytes written (header included). */
static uint32_t vsock_fill(struct virtio_vsock *v, const struct rx_packet *p,
			   const struct virtq_chain *chain)
{
	struct vsock_conn *c = p->conn;
	struct vsock_header h = {
		.src_cid = VSOCK_HOST_CID,
		.dst_cid = v->guest_cid,
		.src_port = c ? c->local_port : v->resets[0].local_port,
		.dst_port = c ? c->peer_port : v->resets[0].peer_port,
		.type = VSOCK_TYPE_STREAM,
		.op = p->op,
		.flags = p->flags,
		.buf_alloc = VSOCK_BUF_ALLOC,
		.fwd_cnt = c ? c->fwd_cnt : 0,
	};

	if (p->op == OP_RW) {
		h.len = (uint32_t)MIN((uint64_t)c->rx_len, chain->writable_len - sizeof(h));
		h.len = MIN(h.len, conn_peer_credit(c));
		virtq_chain_write(chain, sizeof(h), c->rx_buf, h.len);
	}
	virtq_chain_write(chain, 0, &h, sizeof(h));
	if (c)
		c->fwd_cnt_told = c->fwd_cnt;
	return (uint32_t)sizeof(h) + h.len;
}

/* The packet went out: update the connection. */
static void vsock_sent(struct virtio_vsock *v, const struct rx_packet *p, uint32_t payload)
{
	struct vsock_conn *c = p->conn;

	if (!c) {
		memmove(&v->resets[0], &v->resets[1], --v->reset_count * sizeof(v->resets[0]));
		return;
	}
	c->pending &= ~p->pending_bit;
	if (p->op == OP_RW) {
		memmove(c->rx_buf, c->rx_buf + payload, c->rx_len - payload);
		c->rx_len -= payload;
		c->rx_cnt += payload;
	} else if (p->op == OP_RST) {
		conn_free(v, c);
		return;
	}
	conn_update_watch(v, c);
}

static bool vsock_reset_in_flight(struct virtio_vsock *v);

static void vsock_rx(struct virtio_vsock *v)
{
	struct virtq_chain chain;
	struct rx_packet p;
	bool used = false;

	if (vsock_reset_in_flight(v))
		return;
	while (vsock_next_packet(v, &p) && virtio_mmio_pop(&v->t, VSOCK_RX, &chain)) {
		uint32_t written;

		if (chain.readable_len || chain.writable_len < sizeof(struct vsock_header)) {
			virtio_mmio_drop(&v->t, VSOCK_RX, &chain,
					 "rx buffer smaller than a header");
			continue;
		}
		written = vsock_fill(v, &p, &chain);
		virtq_push(&v->t.queues[VSOCK_RX], chain.head, written);
		vsock_sent(v, &p, written - (uint32_t)sizeof(struct vsock_header));
		used = true;
	}
	if (used)
		virtio_mmio_notify_used(&v->t, VSOCK_RX);
}

/* Event buffers the guest has made available and the device not taken yet. */
static uint16_t vsock_event_buffers(struct virtio_vsock *v)
{
	struct virtq *q = &v->t.queues[VSOCK_EVENT];
	uint16_t first = q->s.last_avail;
	struct virtq_chain chain;
	const char *why;
	enum virtq_pop_result r;

	do
		r = virtq_pop(q, &chain, &why);
	while ((r == VIRTQ_CHAIN || r == VIRTQ_BAD_CHAIN) &&
	       (uint16_t)(q->s.last_avail - first) < q->s.size);
	first = (uint16_t)(q->s.last_avail - first);
	virtq_unpop(q, first);
	return first;
}

static void vsock_event(struct virtio_vsock *v)
{
	struct virtq_chain chain;
	uint32_t id = EVENT_TRANSPORT_RESET;

	if (v->reset_unacked && vsock_event_buffers(v) > v->reset_buffers)
		v->reset_unacked = false; /* the guest has handled it */
	if (!v->reset_event_pending)
		return;
	v->reset_event_pending = false;
	/* a guest that gave no event buffer cannot be told: nothing to wait for */
	if (!virtio_mmio_pop(&v->t, VSOCK_EVENT, &chain))
		return;
	virtq_push(&v->t.queues[VSOCK_EVENT], chain.head,
		   (uint32_t)virtq_chain_write(&chain, 0, &id, sizeof(id)));
	v->reset_unacked = true;
	v->reset_buffers = vsock_event_buffers(v);
	virtio_mmio_notify_used(&v->t, VSOCK_EVENT);
}

/* Sends the restore's TRANSPORT_RESET if owed; true while the guest has not handled it. */
static bool vsock_reset_in_flight(struct virtio_vsock *v)
{
	if (v->reset_event_pending || v->reset_unacked)
		vsock_event(v);
	return v->reset_unacked;
}

/* --- guest to device (the tx queue) --- */

/* Writes what the host socket takes now; the rest waits for EPOLLOUT. */
static void conn_flush(struct virtio_vsock *v, struct vsock_conn *c)
{
	while (c->tx_len) {
		ssize_t n = send(c->fd, c->tx_buf, c->tx_len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			/* the host side went away: reset the guest's end */
			c->tx_len = 0;
			c->pending |= PENDING_RST;
			break;
		}
		memmove(c->tx_buf, c->tx_buf + n, c->tx_len - (size_t)n);
		c->tx_len -= (uint32_t)n;
		c->fwd_cnt += (uint32_t)n;
	}
	/* tell the guest about freed room before it has to ask */
	if (c->fwd_cnt - c->fwd_cnt_told >= VSOCK_BUF_ALLOC / 2)
		c->pending |= PENDING_CREDIT;
	if (!c->tx_len && c->guest_send_done) {
		/* all the guest sent is out: the host reader sees its end of stream */
		if (!c->host_write_shut)
			shutdown(c->fd, SHUT_WR);
		c->host_write_shut = true;
		/* both of the guest's directions closed (its close()): the connection is over */
		if (c->guest_recv_done)
			c->pending |= PENDING_RST;
	}
	conn_update_watch(v, c);
}

static void conn_receive(struct virtio_vsock *v, struct vsock_conn *c,
			 const struct virtq_chain *chain, uint32_t len)
{
	if (len > VSOCK_BUF_ALLOC - c->tx_len) {
		/* the guest ignored our credit */
		c->pending |= PENDING_RST;
		return;
	}
	virtq_chain_read(chain, sizeof(struct vsock_header), c->tx_buf + c->tx_len, len);
	c->tx_len += len;
	conn_flush(v, c);
}

static int vsock_connect_host(const char *path, uint32_t port)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd;

	if (snprintf(addr.sun_path, sizeof(addr.sun_path), "%s_%u", path, port) >=
	    (int)sizeof(addr.sun_path))
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The guest connects to a host port: the listener at PATH_<port>. */
static void vsock_guest_connect(struct virtio_vsock *v, const struct vsock_header *h)
{
	int fd = vsock_connect_host(v->path, h->dst_port);
	struct vsock_conn *c = fd >= 0 ? conn_alloc(v, fd) : NULL;

	if (!c) {
		if (fd >= 0)
			close(fd);
		vsock_queue_reset(v, h->dst_port, h->src_port);
		return;
	}
	c->state = CONN_ESTABLISHED;
	c->local_port = h->dst_port;
	c->peer_port = h->src_port;
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	c->pending = PENDING_RESPONSE;
	conn_update_watch(v, c);
}

static void conn_established(struct virtio_vsock *v, struct vsock_conn *c)
{
	char line[32];
	int n = snprintf(line, sizeof(line), "OK %u\n", c->local_port);

	c->state = CONN_ESTABLISHED;
	if (write_all(c->fd, line, (size_t)n))
		c->pending |= PENDING_RST;
	conn_update_watch(v, c);
}

static void conn_handle(struct virtio_vsock *v, struct vsock_conn *c, const struct vsock_header *h,
			const struct virtq_chain *chain)
{
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	switch (h->op) {
	case OP_RESPONSE:
		if (c->state == CONN_CONNECTING)
			conn_established(v, c);
		else
			c->pending |= PENDING_RST;
		break;
	case OP_RW:
		if (c->state == CONN_ESTABLISHED)
			conn_receive(v, c, chain, h->len);
		else
			c->pending |= PENDING_RST;
		break;
	case OP_SHUTDOWN:
		if (h->flags & SHUTDOWN_SEND)
			c->guest_send_done = true;
		if (h->flags & SHUTDOWN_RCV) {
			c->guest_recv_done = true;
			c->rx_len = 0; /* nobody will read it */
		}
		conn_flush(v, c);
		return;
	case OP_RST:
		conn_free(v, c);
		return;
	case OP_CREDIT_REQUEST:
		c->pending |= PENDING_CREDIT;
		break;
	case OP_CREDIT_UPDATE:
		break;
	default:
		c->pending |= PENDING_RST;
		break;
	}
	conn_update_watch(v, c);
}

/* Handles one packet; false if the chain was malformed and has been given back already. */
static bool vsock_tx_packet(struct virtio_vsock *v, const struct virtq_chain *chain)
{
	struct vsock_header h;
	struct vsock_conn *c;

	if (virtq_chain_read(chain, 0, &h, sizeof(h)) != sizeof(h) ||
	    chain->readable_len - sizeof(h) < h.len) {
		virtio_mmio_drop(&v->t, VSOCK_TX, chain, "tx packet shorter than its header says");
		return false;
	}
	if (h.src_cid != v->guest_cid || h.dst_cid != VSOCK_HOST_CID ||
	    h.type != VSOCK_TYPE_STREAM) {
		if (h.op != OP_RST)
			vsock_queue_reset(v, h.dst_port, h.src_port);
		return true;
	}
	c = conn_find(v, h.dst_port, h.src_port);
	if (c)
		conn_handle(v, c, &h, chain);
	else if (h.op == OP_REQUEST)
		vsock_guest_connect(v, &h);
	else if (h.op != OP_RST)
		vsock_queue_reset(v, h.dst_port, h.src_port);
	return true;
}

static void vsock_tx(struct virtio_vsock *v)
{
	struct virtq_chain chain;
	bool used = false;

	while (virtio_mmio_pop(&v->t, VSOCK_TX, &chain)) {
		/* a dropped chain is back on the used ring: pushing it again would hand it twice */
		if (vsock_tx_packet(v, &chain)) {
			virtq_push(&v->t.queues[VSOCK_TX], chain.head, 0);
			used = true;
		}
	}
	if (used)
		virtio_mmio_notify_used(&v->t, VSOCK_TX);
}

static void vsock_queue_notify(struct virtio_mmio *t, unsigned index)
{
	struct virtio_vsock *v = (struct virtio_vsock *)t;

	if (index == VSOCK_TX)
		vsock_tx(v);
	else if (index == VSOCK_EVENT)
		vsock_event(v);
	/* tx may have produced replies; rx buffers may have come */
	vsock_rx(v);
}

/* --- host sockets --- */

/* "CONNECT <port>\n" from a host program: ask the guest to accept. */
static void conn_read_line(struct virtio_vsock *v, struct vsock_conn *c)
{
	ssize_t n = read(c->fd, c->line + c->line_len, sizeof(c->line) - 1 - c->line_len);
	char *end;
	unsigned long port;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		conn_free(v, c);
		return;
	}
	c->line_len += (unsigned)n;
	c->line[c->line_len] = '\0';
	end = strchr(c->line, '\n');
	if (!end) {
		if (c->line_len == sizeof(c->line) - 1)
			conn_free(v, c);
		return;
	}
	if (strncmp(c->line, "CONNECT ", 8) ||
	    (port = strtoul(c->line + 8, &end, 10)) > UINT32_MAX || *end != '\n' ||
	    end == c->line + 8 || !virtio_mmio_live(&v->t)) {
		conn_free(v, c);
		return;
	}
	c->state = CONN_CONNECTING;
	c->peer_port = (uint32_t)port;
	c->local_port = v->next_port++;
	c->pending = PENDING_REQUEST;
	conn_update_watch(v, c);
}

static void conn_read_host(struct virtio_vsock *v, struct vsock_conn *c)
{
	uint32_t room = MIN((uint32_t)sizeof(c->rx_buf), conn_peer_credit(c));
	ssize_t n;

	/* a hung-up socket stays readable: its end is reported once */
	if (c->rx_len || !room || c->host_eof || c->guest_recv_done)
		return;
	n = recv(c->fd, c->rx_buf, room, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		c->host_eof = true;
		c->pending |= PENDING_SHUTDOWN;
	} else {
		c->rx_len = (uint32_t)n;
	}
	conn_update_watch(v, c);
}

static void vsock_accept(struct virtio_vsock *v)
{
	int fd = accept4(v->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	struct vsock_conn *c;

	if (fd < 0)
		return;
	c = conn_alloc(v, fd);
	if (!c) {
		log_warn("vsock: too many connections; refusing one");
		close(fd);
		return;
	}
	c->state = CONN_CONNECT_LINE;
	conn_update_watch(v, c);
}

static void vsock_on_host_event(void *opaque, uint32_t events)
{
	struct virtio_vsock *v = opaque;
	struct epoll_event ev[16];
	int n;

	(void)events;
	pthread_mutex_lock(&v->t.lock);
	n = epoll_wait(v->epoll_fd, ev, ARRAY_SIZE(ev), 0);
	for (int i = 0; i < n; i++) {
		struct vsock_conn *c = ev[i].data.ptr;

		if (!c) {
			vsock_accept(v);
			continue;
		}
		if (c->state == CONN_FREE)
			continue;
		if (ev[i].events & EPOLLOUT)
			conn_flush(v, c);
		if (c->state == CONN_CONNECT_LINE)
			conn_read_line(v, c);
		else if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
			conn_read_host(v, c);
	}
	vsock_rx(v);
	pthread_mutex_unlock(&v->t.lock);
}

/* --- life cycle --- */

static void vsock_close_all(struct virtio_vsock *v)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNECTIONS; i++) {
		if (v->conns[i].state != CONN_FREE)
			conn_free(v, &v->conns[i]);
	}
	v->reset_count = 0;
	v->reset_event_pending = false;
	v->reset_unacked = false;
}

static void vsock_model_reset(struct virtio_mmio *t)
{
	vsock_close_all((struct virtio_vsock *)t);
}

static const struct virtio_model vsock_model = {
	.name = "vsock",
	.device_id = VIRTIO_ID_VSOCK,
	.queue_count = 3,
	.queue_max_size = VSOCK_QUEUE_SIZE,
	.config_read = vsock_config_read,
	.config_size = sizeof(uint64_t),
	.queue_notify = vsock_queue_notify,
	.reset = vsock_model_reset,
};

/* A socket file left by a process that is gone: connecting to it is refused. */
static bool vsock_path_stale(const struct sockaddr_un *addr)
{
	struct stat st;
	int probe;
	bool stale;

	if (stat(addr->sun_path, &st) || !S_ISSOCK(st.st_mode))
		return false;
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe < 0)
		return false;
	stale = connect(probe, (const struct sockaddr *)addr, sizeof(*addr)) < 0 &&
		errno == ECONNREFUSED;
	close(probe);
	return stale;
}

/* Binds PATH, replacing a socket file that nobody listens on any more. */
static int vsock_listen(struct virtio_vsock *v)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd, ret = 0;

	memcpy(addr.sun_path, v->path, sizeof(addr.sun_path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		ret = -errno;
		if (ret == -EADDRINUSE && vsock_path_stale(&addr) && unlink(v->path) == 0)
			ret = bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ? -errno : 0;
	}
	if (!ret && listen(fd, 64) < 0)
		ret = -errno;
	if (ret) {
		close(fd);
		return ret;
	}
	v->listen_fd = fd;
	return 0;
}

/*
 * Reads a --vsock value, CID,PATH: the guest's CID, and the host socket
 * that host programs connect to (PATH_<port> for the guest's connections).
 * 0, or -EINVAL with one line logged.
 */
static int vsock_arg_parse(const char *value, uint64_t *cid, const char **path)
{
	const char *comma = strchr(value, ',');
	char number[24];

	if (!comma || (size_t)(comma - value) >= sizeof(number))
		return log_invalid("vsock: '%s' is not CID,PATH", value);
	snprintf(number, sizeof(number), "%.*s", (int)(comma - value), value);
	if (parse_u64(number, cid) || *cid < VSOCK_CID_MIN || *cid > UINT32_MAX)
		return log_invalid("vsock: CID '%s' is not a number from %d to %u", number,
				   VSOCK_CID_MIN, UINT32_MAX);
	*path = comma + 1;
	if (!**path || strlen(*path) + sizeof(VSOCK_PORT_SUFFIX) > VSOCK_PATH_MAX)
		return log_invalid("vsock: PATH must be 1 to %zu bytes",
				   VSOCK_PATH_MAX - sizeof(VSOCK_PORT_SUFFIX));
	return 0;
}

static int vsock_check_arg(const char *value)
{
	uint64_t cid;
	const char *path;

	return vsock_arg_parse(value, &cid, &path);
}

static int vsock_host_setup(struct virtio_vsock *v, const struct device_context *ctx,
			    const char *path)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	int ret;

	if (strlen(path) + sizeof(VSOCK_PORT_SUFFIX) > sizeof(v->path))
		return -ENAMETOOLONG;
	strcpy(v->path, path);
	ret = vsock_listen(v);
	if (ret)
		return ret;
	v->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (v->epoll_fd < 0 || epoll_ctl(v->epoll_fd, EPOLL_CTL_ADD, v->listen_fd, &ev) < 0)
		return -errno;
	return ctx->loop ? event_loop_add(ctx->loop, v->epoll_fd, EPOLLIN, vsock_on_host_event, v)
			 : 0;
}

static unsigned vsock_instances(const struct vmm_config *config)
{
	return config && vmm_config_device_arg(config, VSOCK_NAME, 0) ? 1 : 0;
}

static void vsock_destroy(void *dev);

static void *vsock_create(const struct device_context *ctx)
{
	const char *path, *arg = vmm_config_device_arg(ctx->config, VSOCK_NAME, 0);
	struct virtio_vsock *v;
	uint64_t cid;
	int ret;

	if (!arg || vsock_arg_parse(arg, &cid, &path))
		return NULL;
	v = calloc(1, sizeof(*v));
	if (!v)
		return NULL;
	v->listen_fd = v->epoll_fd = -1;
	v->t.notify_fd = v->t.irq_fd = -1;
	for (unsigned i = 0; i < VSOCK_MAX_CONNECTIONS; i++)
		v->conns[i].fd = -1;
	v->guest_cid = cid;
	v->next_port = VSOCK_EPHEMERAL_BASE;
	ret = virtio_mmio_init(&v->t, &vsock_model, ctx);
	if (!ret) {
		ret = vsock_host_setup(v, ctx, path);
		if (ret)
			log_error("vsock: cannot listen on %s: %s", path, strerror(-ret));
	}
	if (ret) {
		vsock_destroy(v);
		return NULL;
	}
	return v;
}

static int vsock_quiesce(void *dev)
{
	(void)dev; /* packets move whole while the lock is held: nothing is half done */
	return 0;
}

static void vsock_save(void *dev, void *state)
{
	struct virtio_vsock *v = dev;
	struct virtio_vsock_state *s = state;

	pthread_mutex_lock(&v->t.lock);
	virtio_mmio_save(&v->t, &s->transport);
	s->guest_cid = v->guest_cid;
	pthread_mutex_unlock(&v->t.lock);
}

/* Connections do not survive a snapshot: the guest is told to drop its own. */
static int vsock_restore(void *dev, const void *state)
{
	struct virtio_vsock *v = dev;
	const struct virtio_vsock_state *s = state;
	int ret;

	/* the configuration was derived from this state (vsock_restore_config) */
	if (s->guest_cid != v->guest_cid)
		return -EINVAL;
	pthread_mutex_lock(&v->t.lock);
	vsock_close_all(v);
	ret = virtio_mmio_restore(&v->t, &s->transport);
	if (!ret)
		v->reset_event_pending = virtio_mmio_live(&v->t);
	pthread_mutex_unlock(&v->t.lock);
	return ret;
}

/* The guest keeps its CID; the host socket is the restore's (wanted's --vsock, kept as given). */
static int vsock_restore_config(const void *const *states, unsigned count,
				const struct vmm_config *wanted, struct vmm_config *config)
{
	const struct virtio_vsock_state *s = count ? states[0] : NULL;
	const char *path, *arg = vmm_config_device_arg(wanted, VSOCK_NAME, 0);
	uint64_t cid = 0;

	(void)config; /* a copy of wanted: its --vsock is the one to use */
	if (arg && vsock_arg_parse(arg, &cid, &path))
		return -EINVAL;
	if (!s) {
		if (arg)
			return log_invalid("the snapshot's VM has no vsock device");
		return 0;
	}
	if (s->guest_cid < VSOCK_CID_MIN || s->guest_cid > UINT32_MAX)
		return log_invalid("snapshot's vsock configuration is damaged");
	if (!arg)
		return log_invalid(
			"the snapshot's VM has a vsock device: give --vsock %llu,PATH at "
			"restore",
			(unsigned long long)s->guest_cid);
	if (cid != s->guest_cid)
		return log_invalid("the guest's vsock CID is %llu; it cannot change",
				   (unsigned long long)s->guest_cid);
	return 0;
}

static void vsock_destroy(void *dev)
{
	struct virtio_vsock *v = dev;

	vsock_close_all(v);
	if (v->epoll_fd >= 0) {
		if (v->t.ctx.loop)
			event_loop_remove(v->t.ctx.loop, v->epoll_fd);
		close(v->epoll_fd);
	}
	if (v->listen_fd >= 0) {
		close(v->listen_fd);
		unlink(v->path);
	}
	virtio_mmio_destroy(&v->t);
	free(v);
}

const struct device_ops virtio_vsock_device_ops = {
	.name = VSOCK_NAME,
	.section_id = 0x0303,
	.state_version = 1,
	.state_size = sizeof(struct virtio_vsock_state),
	.check_arg = vsock_check_arg,
	.instances = vsock_instances,
	.create = vsock_create,
	.reset = virtio_mmio_device_reset,
	.quiesce = vsock_quiesce,
	.save = vsock_save,
	.restore = vsock_restore,
	.restore_config = vsock_restore_config,
	.destroy = vsock_destroy,
};
DEVICE_REGISTER(virtio_vsock_device_ops);
