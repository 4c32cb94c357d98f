/*
 * The guest's vsock driver: stream connections to and from the host (CID 2),
 * each serving the line protocol of the console. Replies are gathered into
 * lines, one packet (one notification) per line.
 */
#include "virtio.h"

#define RX_Q	       0
#define TX_Q	       1
#define EVENT_Q	       2
#define RX_BUFS	       8
#define EVENT_BUFS     2
#define BUF_SIZE       2048
#define HOST_CID       2
#define MAX_CONNS      8
#define BUF_ALLOC      (64 * 1024)
#define LOCAL_PORT_MIN 50000
#define LINE_MAX       128

enum {
	OP_REQUEST = 1,
	OP_RESPONSE,
	OP_RST,
	OP_SHUTDOWN,
	OP_RW,
	OP_CREDIT_UPDATE,
	OP_CREDIT_REQUEST
};

struct header {
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

struct conn {
	bool in_use;
	bool established;
	uint32_t host_port;
	uint32_t guest_port;
	uint32_t fwd_cnt; /* bytes received and consumed */
	uint32_t fwd_told;
	char line[LINE_MAX];
	size_t line_len;
};

static struct vdev *vs;
static uint64_t guest_cid;
static bool listening;
static uint32_t listen_port, next_local_port = LOCAL_PORT_MIN;
static struct conn conns[MAX_CONNS];
static GUEST_BUFFER uint8_t rx_bufs[RX_BUFS][BUF_SIZE] __attribute__((aligned(4096)));
static GUEST_BUFFER uint8_t tx_bufs[VQ_SIZE][BUF_SIZE];
static uint32_t event_bufs[EVENT_BUFS][2];
static uint16_t tx_posted, tx_done;
static struct conn *reply_conn; /* where console output goes while serving a line */
static char out[LINE_MAX];
static size_t out_len;

static void send_packet(uint32_t host_port, uint32_t guest_port, uint16_t op, uint32_t fwd_cnt,
			const char *data, size_t len)
{
	struct vq *q = vs->queues[TX_Q];
	struct vq_used_elem used;
	struct header h = { guest_cid, HOST_CID, guest_port, host_port, (uint32_t)len,
			    1,	       op,	 0,	     BUF_ALLOC, fwd_cnt };
	uint16_t slot;

	while (vq_take_used(q, &used))
		tx_done++;
	if ((uint16_t)(tx_posted - tx_done) == VQ_SIZE && virtio_wait_used(vs, TX_Q, &used))
		tx_done++;
	slot = tx_posted++ % VQ_SIZE;
	memcpy(tx_bufs[slot], &h, sizeof(h));
	memcpy(tx_bufs[slot] + sizeof(h), data, len);
	q->desc[slot] =
		(struct vq_desc){ (uint64_t)tx_bufs[slot], (uint32_t)(sizeof(h) + len), 0, 0 };
	vq_post(q, slot);
	virtio_notify(vs, TX_Q);
}

static void conn_send(struct conn *c, uint16_t op, const char *data, size_t len)
{
	c->fwd_told = c->fwd_cnt;
	send_packet(c->host_port, c->guest_port, op, c->fwd_cnt, data, len);
}

static void reply_flush(void)
{
	if (out_len && reply_conn && reply_conn->in_use)
		conn_send(reply_conn, OP_RW, out, out_len);
	out_len = 0;
}

static void reply_write(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		out[out_len++] = s[i];
		if (s[i] == '\n' || out_len == sizeof(out))
			reply_flush();
	}
}

/* Serves one line of the protocol with its replies going back on the connection. */
static void conn_serve_line(struct conn *c)
{
	void (*sink)(const char *s, size_t len) = console_sink;
	struct conn *outer = reply_conn;

	reply_flush();
	reply_conn = c;
	console_sink = reply_write;
	if (c->line_len)
		serve_request(c->line);
	reply_flush();
	console_sink = sink;
	reply_conn = outer;
	c->line_len = 0;
}

static void conn_receive(struct conn *c, const uint8_t *data, uint32_t len)
{
	for (uint32_t i = 0; i < len && c->in_use; i++) {
		c->fwd_cnt++;
		if (data[i] == '\r')
			continue;
		if (data[i] == '\n') {
			c->line[c->line_len] = '\0';
			conn_serve_line(c);
			continue;
		}
		if (c->line_len + 1 < sizeof(c->line))
			c->line[c->line_len++] = (char)data[i];
	}
	if (c->in_use && c->fwd_cnt - c->fwd_told >= BUF_ALLOC / 2)
		conn_send(c, OP_CREDIT_UPDATE, 0, 0);
}

static struct conn *conn_find(uint32_t host_port, uint32_t guest_port)
{
	for (unsigned i = 0; i < MAX_CONNS; i++) {
		if (conns[i].in_use && conns[i].host_port == host_port &&
		    conns[i].guest_port == guest_port)
			return &conns[i];
	}
	return 0;
}

static struct conn *conn_new(uint32_t host_port, uint32_t guest_port)
{
	for (unsigned i = 0; i < MAX_CONNS; i++) {
		if (!conns[i].in_use) {
			conns[i] = (struct conn){ .in_use = true,
						  .host_port = host_port,
						  .guest_port = guest_port };
			return &conns[i];
		}
	}
	return 0;
}

static void handle_packet(const struct header *h, const uint8_t *data, uint32_t len)
{
	struct conn *c = conn_find(h->src_port, h->dst_port);

	if (h->op == OP_REQUEST && !c && listening && h->dst_port == listen_port &&
	    (c = conn_new(h->src_port, h->dst_port))) {
		c->established = true;
		conn_send(c, OP_RESPONSE, 0, 0);
		return;
	}
	if (!c) {
		if (h->op != OP_RST)
			send_packet(h->src_port, h->dst_port, OP_RST, 0, 0, 0);
		return;
	}
	switch (h->op) {
	case OP_RESPONSE:
		c->established = true;
		break;
	case OP_RW:
		conn_receive(c, data, len);
		break;
	case OP_CREDIT_REQUEST:
		conn_send(c, OP_CREDIT_UPDATE, 0, 0);
		break;
	case OP_SHUTDOWN:
		conn_send(c, OP_RST, 0, 0);
		c->in_use = false;
		break;
	case OP_RST:
		c->in_use = false;
		break;
	default:
		break;
	}
}

static void post_rx(uint16_t i)
{
	struct vq *q = vs->queues[RX_Q];

	q->desc[i] = (struct vq_desc){ (uint64_t)rx_bufs[i], BUF_SIZE, VQ_F_WRITE, 0 };
	vq_post(q, i);
}

static void post_event(uint16_t i)
{
	struct vq *q = vs->queues[EVENT_Q];

	q->desc[i] =
		(struct vq_desc){ (uint64_t)event_bufs[i], sizeof(event_bufs[i]), VQ_F_WRITE, 0 };
	vq_post(q, i);
}

/* A restored VM's connections are gone on the host side: forget them. */
static bool poll_events(void)
{
	struct vq_used_elem used;
	bool any = false;

	while (vq_take_used(vs->queues[EVENT_Q], &used)) {
		for (unsigned i = 0; i < MAX_CONNS; i++)
			conns[i].in_use = false;
		if (used.id < EVENT_BUFS)
			post_event((uint16_t)used.id);
		any = true;
	}
	if (any)
		virtio_notify(vs, EVENT_Q);
	return any;
}

bool vsock_poll(void)
{
	struct vq_used_elem used;
	bool any = false;

	if (!vs || !vs->ready)
		return false;
	while (vq_take_used(vs->queues[RX_Q], &used)) {
		struct header h;

		if (used.id >= RX_BUFS)
			continue;
		memcpy(&h, rx_bufs[used.id], sizeof(h));
		if (used.len >= sizeof(h) && h.len <= used.len - sizeof(h))
			handle_packet(&h, rx_bufs[used.id] + sizeof(h), h.len);
		post_rx((uint16_t)used.id);
		any = true;
	}
	if (any)
		virtio_notify(vs, RX_Q);
	return poll_events() || any;
}

static bool vsock_ready(void)
{
	if (vs && vs->ready)
		return true;
	vs = virtio_find(VIRTIO_ID_VSOCK, 0);
	if (!vs || !virtio_setup(vs, 3)) {
		console_put_str("ERR no vsock\n");
		return false;
	}
	guest_cid = virtio_config_read(vs, 0) | (uint64_t)virtio_config_read(vs, 4) << 32;
	for (uint16_t i = 0; i < RX_BUFS; i++)
		post_rx(i);
	for (uint16_t i = 0; i < EVENT_BUFS; i++)
		post_event(i);
	virtio_notify(vs, RX_Q);
	virtio_notify(vs, EVENT_Q);
	return true;
}

void request_vsock_listen(const uint64_t *arg)
{
	if (arg[0] > 0xffffffffULL) {
		console_put_str("ERR bad port\n");
		return;
	}
	if (!vsock_ready())
		return;
	listen_port = (uint32_t)arg[0];
	listening = true;
	console_put_str("OK\n");
}

/* Connects to a host port and serves the line protocol there too. */
void request_vsock_connect(const uint64_t *arg)
{
	struct conn *c;
	uint32_t port;

	if (arg[0] > 0xffffffffULL) {
		console_put_str("ERR bad port\n");
		return;
	}
	if (!vsock_ready())
		return;
	port = next_local_port++;
	c = conn_new((uint32_t)arg[0], port);
	if (!c) {
		console_put_str("ERR too many connections\n");
		return;
	}
	conn_send(c, OP_REQUEST, 0, 0);
	while (c->in_use && !c->established) {
		if (!vsock_poll())
			call_wait();
	}
	/* the host may have used the connection and closed it within one poll */
	console_put_str(c->guest_port == port && c->established ? "OK\n"
								: "ERR connection refused\n");
}
