/*
 * The guest's network stack, just enough to be reached: with `net=IP[,udp=PORT]`
 * on the command line it answers ARP requests for IP, ICMP echo requests,
 * and UDP datagrams to PORT (default 7), each carrying request lines of the
 * console protocol, with one datagram holding the replies. It only ever
 * answers, so it keeps no tables: a reply goes to the MAC and address the
 * request came from.
 *
 * Register traffic is kept low (each access is a VM exit): transmit
 * completions raise no interrupt and are reclaimed when the ring fills, and
 * the rx queue is notified only when the device runs short of buffers.
 */
#include "virtio.h"

#define RX_Q	    0
#define TX_Q	    1
#define BUF_SIZE    2048
#define HDR_SIZE    12 /* virtio_net_hdr_v1, num_buffers included */
#define F_MAC	    (1u << 5)
#define F_MRG_RXBUF (1u << 15)
#define ETH_ARP	    0x0806
#define ETH_IPV4    0x0800
#define IP_ICMP	    1
#define IP_UDP	    17
#define LINE_MAX    128
#define REPLY_MAX   1400 /* one datagram of replies, within a 1500-byte MTU */

struct eth {
	uint8_t dst[6], src[6];
	uint16_t type; /* big-endian, like every field below */
} __attribute__((packed));

struct arp {
	uint16_t htype, ptype;
	uint8_t hlen, plen;
	uint16_t oper;
	uint8_t sha[6];
	uint32_t spa;
	uint8_t tha[6];
	uint32_t tpa;
} __attribute__((packed));

struct ip {
	uint8_t ver_ihl, tos;
	uint16_t len, id, frag;
	uint8_t ttl, proto;
	uint16_t sum;
	uint32_t src, dst;
} __attribute__((packed));

struct udp {
	uint16_t sport, dport, len, sum;
} __attribute__((packed));

static struct vdev *nd;
static uint8_t mac[6];
static uint32_t my_ip; /* big-endian, as on the wire */
static uint16_t udp_port = 7;
static GUEST_BUFFER uint8_t rx_bufs[VQ_SIZE][BUF_SIZE] __attribute__((aligned(4096)));
static GUEST_BUFFER uint8_t tx_bufs[VQ_SIZE][BUF_SIZE] __attribute__((aligned(4096)));
static uint16_t tx_posted, tx_done;

static uint16_t be16(uint16_t v)
{
	return (uint16_t)(v << 8 | v >> 8);
}

static uint32_t be32(uint32_t v)
{
	return v >> 24 | (v >> 8 & 0xff00) | (v << 8 & 0xff0000) | v << 24;
}

static uint32_t sum_add(uint32_t sum, const void *data, size_t len)
{
	const uint8_t *p = data;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)(p[len - 1] << 8);
	return sum;
}

static uint16_t sum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return be16((uint16_t)~sum);
}

/* --- the device --- */

/* The next free tx buffer, past the header; waits (with interrupts) if all are in flight. */
static uint8_t *tx_buffer(void)
{
	struct vq *q = nd->queues[TX_Q];
	struct vq_used_elem used;

	while (vq_take_used(q, &used))
		tx_done++;
	if ((uint16_t)(tx_posted - tx_done) == VQ_SIZE) {
		q->avail.flags = 0;
		if (virtio_wait_used(nd, TX_Q, &used))
			tx_done++;
		q->avail.flags = 1; /* VIRTQ_AVAIL_F_NO_INTERRUPT */
	}
	return tx_bufs[tx_posted % VQ_SIZE] + HDR_SIZE;
}

static void tx_send(size_t len)
{
	struct vq *q = nd->queues[TX_Q];
	uint16_t slot = tx_posted++ % VQ_SIZE;

	memset(tx_bufs[slot], 0, HDR_SIZE);
	q->desc[slot] =
		(struct vq_desc){ (uint64_t)tx_bufs[slot], (uint32_t)(HDR_SIZE + len), 0, 0 };
	vq_post(q, slot);
	virtio_notify(nd, TX_Q);
}

static void rx_post(uint16_t i)
{
	struct vq *q = nd->queues[RX_Q];

	q->desc[i] = (struct vq_desc){ (uint64_t)rx_bufs[i], BUF_SIZE, VQ_F_WRITE, 0 };
	vq_post(q, i);
}

static bool net_setup(void)
{
	uint32_t low, high;

	nd->features = F_MAC | F_MRG_RXBUF;
	if (!virtio_setup(nd, 2))
		return false;
	low = virtio_config_read(nd, 0);
	high = virtio_config_read(nd, 4);
	for (unsigned i = 0; i < 4; i++)
		mac[i] = (uint8_t)(low >> (8 * i));
	mac[4] = (uint8_t)high;
	mac[5] = (uint8_t)(high >> 8);
	tx_posted = tx_done = 0;
	nd->queues[TX_Q]->avail.flags = 1; /* no interrupt for sent frames */
	for (uint16_t i = 0; i < VQ_SIZE; i++)
		rx_post(i);
	virtio_notify(nd, RX_Q);
	return true;
}

/* --- answers --- */

/* Starts a reply to the frame `req`: Ethernet back to its sender, then IPv4 to its source. */
static uint8_t *reply_ip(const struct eth *req, uint8_t proto, size_t payload)
{
	const struct ip *rip = (const struct ip *)(req + 1);
	uint8_t *frame = tx_buffer();
	struct eth *e = (struct eth *)frame;
	struct ip *ip = (struct ip *)(e + 1);

	memcpy(e->dst, req->src, 6);
	memcpy(e->src, mac, 6);
	e->type = be16(ETH_IPV4);
	*ip = (struct ip){ 0x45,
			   0,
			   be16((uint16_t)(sizeof(*ip) + payload)),
			   0,
			   be16(0x4000),
			   64,
			   proto,
			   0,
			   my_ip,
			   rip->src };
	ip->sum = sum_fold(sum_add(0, ip, sizeof(*ip)));
	return (uint8_t *)(ip + 1);
}

static void answer_arp(const struct eth *req, size_t len)
{
	const struct arp *a = (const struct arp *)(req + 1);
	struct eth *e;
	struct arp *r;

	if (len < sizeof(*req) + sizeof(*a) || a->htype != be16(1) || a->ptype != be16(ETH_IPV4) ||
	    a->hlen != 6 || a->plen != 4 || a->oper != be16(1) || a->tpa != my_ip)
		return;
	e = (struct eth *)tx_buffer();
	r = (struct arp *)(e + 1);
	memcpy(e->dst, a->sha, 6);
	memcpy(e->src, mac, 6);
	e->type = be16(ETH_ARP);
	*r = *a;
	r->oper = be16(2);
	memcpy(r->sha, mac, 6);
	r->spa = my_ip;
	memcpy(r->tha, a->sha, 6);
	r->tpa = a->spa;
	tx_send(sizeof(*e) + sizeof(*r));
}

static void answer_ping(const struct eth *req, const uint8_t *icmp, size_t len)
{
	uint8_t *r;

	if (len < 8 || len > BUF_SIZE - HDR_SIZE - 34 || icmp[0] != 8 || icmp[1] != 0)
		return;
	r = reply_ip(req, IP_ICMP, len);
	memcpy(r, icmp, len);
	r[0] = 0; /* echo reply, same identifier, sequence and data */
	r[2] = r[3] = 0;
	memcpy(r + 2, &(uint16_t){ sum_fold(sum_add(0, r, len)) }, 2);
	tx_send(34 + len);
}

static char reply[REPLY_MAX];
static size_t reply_len;

static void reply_collect(const char *s, size_t len)
{
	for (size_t i = 0; i < len && reply_len < sizeof(reply); i++)
		reply[reply_len++] = s[i];
}

/* Serves every line of the datagram, the replies going into `reply`. */
static void serve_datagram(const uint8_t *data, size_t len)
{
	void (*sink)(const char *s, size_t len) = console_sink;
	char line[LINE_MAX];
	size_t n = 0;

	reply_len = 0;
	console_sink = reply_collect;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || data[i] == '\n') {
			line[n] = '\0';
			if (n)
				serve_request(line);
			n = 0;
		} else if (data[i] != '\r' && n + 1 < sizeof(line)) {
			line[n++] = (char)data[i];
		}
	}
	console_sink = sink;
}

static void answer_udp(const struct eth *req, const uint8_t *seg, size_t len)
{
	const struct ip *rip = (const struct ip *)(req + 1);
	const struct udp *u = (const struct udp *)seg;
	struct udp *r;
	uint32_t sum;

	if (len < sizeof(*u) || u->dport != be16(udp_port) || be16(u->len) < sizeof(*u) ||
	    be16(u->len) > len)
		return;
	serve_datagram(seg + sizeof(*u), be16(u->len) - sizeof(*u));
	if (!reply_len)
		return;
	r = (struct udp *)reply_ip(req, IP_UDP, sizeof(*r) + reply_len);
	*r = (struct udp){ u->dport, u->sport, be16((uint16_t)(sizeof(*r) + reply_len)), 0 };
	memcpy(r + 1, reply, reply_len);
	sum = sum_add(0, &my_ip, 4);
	sum = sum_add(sum, &rip->src, 4);
	sum += IP_UDP + sizeof(*r) + reply_len;
	r->sum = sum_fold(sum_add(sum, r, sizeof(*r) + reply_len));
	if (!r->sum)
		r->sum = 0xffff;
	tx_send(34 + sizeof(*r) + reply_len);
}

static void answer_ipv4(const struct eth *req, size_t len)
{
	const struct ip *ip = (const struct ip *)(req + 1);
	size_t ihl, total;

	if (len < sizeof(*req) + sizeof(*ip) || ip->ver_ihl >> 4 != 4 || ip->dst != my_ip)
		return;
	ihl = (ip->ver_ihl & 0xf) * 4u;
	total = be16(ip->len);
	/* fragments (MF or an offset) are not reassembled here */
	if (ihl < sizeof(*ip) || total < ihl || total > len - sizeof(*req) ||
	    (be16(ip->frag) & 0x3fff))
		return;
	if (ip->proto == IP_ICMP)
		answer_ping(req, (const uint8_t *)ip + ihl, total - ihl);
	else if (ip->proto == IP_UDP)
		answer_udp(req, (const uint8_t *)ip + ihl, total - ihl);
}

static void handle_frame(const uint8_t *frame, size_t len)
{
	const struct eth *e = (const struct eth *)frame;

	if (len < sizeof(*e))
		return;
	if (e->type == be16(ETH_ARP))
		answer_arp(e, len);
	else if (e->type == be16(ETH_IPV4))
		answer_ipv4(e, len);
}

/* --- the loop --- */

bool net_poll(void)
{
	struct vq *q;
	struct vq_used_elem used;
	uint16_t skip = 0, had;
	bool any = false;

	if (!nd || !nd->ready)
		return false;
	/*
	 * Under QEMU the line stays up until acknowledged, and an edge lost while
	 * it was up (before the pin was routed, say) would never come again.
	 */
	virtio_irq_ack(nd);
	q = nd->queues[RX_Q];
	had = (uint16_t)(q->avail.idx - q->used.idx);
	while (vq_take_used(q, &used)) {
		uint16_t num_buffers;

		if (used.id >= VQ_SIZE)
			continue;
		memcpy(&num_buffers, rx_bufs[used.id] + 10, 2);
		/* frames bigger than a buffer (more than the MTU) are not for this guest */
		if (skip)
			skip--;
		else if (num_buffers > 1)
			skip = (uint16_t)(num_buffers - 1);
		else if (used.len > HDR_SIZE && used.len <= BUF_SIZE)
			handle_frame(rx_bufs[used.id] + HDR_SIZE, used.len - HDR_SIZE);
		rx_post((uint16_t)used.id);
		any = true;
	}
	/* the device needs a notification only when it may have run dry */
	if (any && had < VQ_SIZE / 2)
		virtio_notify(nd, RX_Q);
	return any;
}

/* net=A.B.C.D[,udp=PORT] */
static bool parse_config(const char *s)
{
	uint64_t value;

	for (unsigned i = 0; i < 4; i++) {
		if (!parse_number(&s, &value, false) || value > 255 || (i < 3 && *s++ != '.'))
			return false;
		my_ip |= (uint32_t)value << (8 * i); /* wire order in memory */
	}
	if (str_starts_with(s, ",udp=")) {
		s += 5;
		if (!parse_number(&s, &value, false) || !value || value > 65535)
			return false;
		udp_port = (uint16_t)value;
	}
	return !*s || *s == ' ';
}

void net_start(const char *cmdline)
{
	const char *s = cmdline;

	while (*(s = skip_spaces(s))) {
		if (str_starts_with(s, "net=")) {
			if (!parse_config(s + 4)) {
				console_put_str("ERR bad net= on the command line\n");
				guest_exit(1);
			}
			nd = virtio_find(VIRTIO_ID_NET, 0);
			if (!nd || !net_setup()) {
				console_put_str("ERR net= but no network device\n");
				guest_exit(1);
			}
		}
		while (*s && *s != ' ')
			s++;
	}
}

void net_restart(void)
{
	if (nd && !net_setup())
		nd->ready = false;
}

static void put_hex_byte(uint8_t b)
{
	console_put_char("0123456789abcdef"[b >> 4]);
	console_put_char("0123456789abcdef"[b & 15]);
}

/* `net`: NET <mac> <ip>:<udp port>, or ERR without net= */
void request_net(const uint64_t *arg)
{
	(void)arg;
	if (!nd || !nd->ready) {
		console_put_str("ERR no network (boot with net=IP)\n");
		return;
	}
	console_put_str("NET ");
	for (unsigned i = 0; i < 6; i++) {
		put_hex_byte(mac[i]);
		console_put_char(i < 5 ? ':' : ' ');
	}
	for (unsigned i = 0; i < 4; i++) {
		console_put_dec(my_ip >> (8 * i) & 0xff);
		console_put_char(i < 3 ? '.' : ':');
	}
	console_put_dec(udp_port);
	console_put_char('\n');
}

/* --- net evil: frames a hostile guest might send --- */

#define EVIL_SEGMENTS 20

static GUEST_BUFFER uint8_t evil_page[4096] __attribute__((aligned(4096)));
static struct vq_desc evil_table[EVIL_SEGMENTS + 1];

/* Sends header + frame as `segments` copies of evil_page, plus a writable one if asked. */
static void evil_send(uint32_t first_len, unsigned segments, bool writable)
{
	struct vq *q = nd->queues[TX_Q];
	struct vq_used_elem used;
	uint16_t slot;
	unsigned n = 0;

	tx_buffer();
	slot = tx_posted++ % VQ_SIZE;
	for (unsigned i = 0; i < segments; i++)
		evil_table[n++] = (struct vq_desc){ (uint64_t)evil_page, i ? 4096 : first_len,
						    VQ_F_NEXT, (uint16_t)(n + 1) };
	if (writable)
		evil_table[n++] = (struct vq_desc){ (uint64_t)tx_bufs[slot], 64, VQ_F_WRITE, 0 };
	evil_table[n - 1].flags &= (uint16_t)~VQ_F_NEXT;
	q->desc[slot] = (struct vq_desc){ (uint64_t)evil_table, n * 16, VQ_F_INDIRECT, 0 };
	vq_post(q, slot);
	virtio_notify(nd, TX_Q);
	/* the table is reused: wait until the device is done with it */
	q->avail.flags = 0;
	if (virtio_wait_used(nd, TX_Q, &used))
		tx_done++;
	q->avail.flags = 1;
}

/* An Ethernet + IPv4 frame to the user network's host (10.0.2.2) with these fields. */
static void evil_ipv4(uint8_t ver_ihl, uint16_t total, uint16_t frag, uint8_t proto,
		      const void *payload, size_t payload_len)
{
	struct eth *e = (struct eth *)(evil_page + HDR_SIZE);
	struct ip *ip = (struct ip *)(e + 1);

	memset(evil_page, 0, sizeof(evil_page));
	memset(e->dst, 0xff, 6);
	memcpy(e->src, mac, 6);
	e->type = be16(ETH_IPV4);
	*ip = (struct ip){ ver_ihl, 0,	   be16(total), 0,     be16(frag),
			   64,	    proto, 0,		my_ip, be32(0x0a000202) };
	ip->sum = sum_fold(sum_add(0, ip, sizeof(*ip)));
	memcpy(ip + 1, payload, payload_len);
	evil_send(HDR_SIZE + 34 + (uint32_t)payload_len, 1, false);
}

static unsigned evil_headers(void)
{
	/* flags NEEDS_CSUM, then gso_type, hdr_len, gso_size, csum_start, csum_offset */
	static const uint8_t bad[][10] = {
		{ 1, 1, 0xff, 0xff, 1, 0, 0xf0, 0xff, 0xff,
		  0xff },				   /* TCPv4 TSO, all out of range */
		{ 0, 3, 0, 0, 0, 0, 0, 0, 0, 0 },	   /* UDP GSO of segment size 0 */
		{ 1, 0x84, 40, 0, 0x40, 0, 34, 0, 16, 0 }, /* ECN | TCPv6 on IPv4 */
		{ 0xfe, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0 },	   /* unknown flags and type */
	};
	unsigned n = 0;

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(evil_page, 0xa5, sizeof(evil_page));
		memcpy(evil_page, bad[i], sizeof(bad[i]));
		evil_send(4096, i == 2 ? 16 : 1, false); /* one of them 64 KiB long */
		n++;
	}
	return n;
}

static unsigned evil_framing(void)
{
	memset(evil_page, 0, sizeof(evil_page));
	evil_send(4, 1, false);		       /* shorter than the header */
	evil_send(HDR_SIZE, 1, false);	       /* the header alone */
	evil_send(HDR_SIZE + 5, 1, false);     /* a runt */
	evil_send(4096, EVIL_SEGMENTS, false); /* 80 KiB: longer than any frame */
	evil_send(HDR_SIZE + 60, 1, true);     /* a writable buffer in a tx chain */
	return 5;
}

static unsigned evil_packets(void)
{
	static const uint8_t arp[] = { 0, 1, 8, 0, 255, 255, 0, 1 };   /* hlen, plen 255 */
	static const uint8_t udp[] = { 0, 9, 0, 9, 0xff, 0xff, 0, 0 }; /* length past the end */
	static const uint8_t syn[] = { 0, 9, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0xf0, 0x02, 0xff, 0xff };
	static const uint8_t echo[] = { 8, 0, 0, 0 };
	struct eth *e = (struct eth *)(evil_page + HDR_SIZE);

	memset(evil_page, 0, sizeof(evil_page));
	memset(e->dst, 0xff, 6);
	memcpy(e->src, mac, 6);
	e->type = be16(ETH_ARP);
	memcpy(e + 1, arp, sizeof(arp));
	evil_send(HDR_SIZE + 14 + 28, 1, false);
	e->type = be16(0x86dd); /* IPv6 claiming a 64 KiB payload */
	memset(e + 1, 0xff, 40);
	evil_send(HDR_SIZE + 14 + 40, 1, false);
	evil_ipv4(0x4f, 20, 0, IP_UDP, udp, sizeof(udp));	  /* IHL past the length */
	evil_ipv4(0x45, 65535, 0, IP_UDP, udp, sizeof(udp));	  /* length past the frame */
	evil_ipv4(0x45, 28, 0, IP_UDP, udp, sizeof(udp));	  /* UDP length too big */
	evil_ipv4(0x45, 24, 0x3fff, IP_ICMP, echo, sizeof(echo)); /* the last fragment */
	evil_ipv4(0x45, 36, 0, 6, syn, sizeof(syn));		  /* TCP options past the end */
	evil_ipv4(0x46, 24, 0, IP_ICMP, echo, sizeof(echo));	  /* options, no payload */
	return 8;
}

/* `net evil`: malformed frames of every kind; snapvm must drop them and go on. */
void request_net_evil(const uint64_t *arg)
{
	unsigned n;

	(void)arg;
	if (!nd || !nd->ready) {
		console_put_str("ERR no network (boot with net=IP)\n");
		return;
	}
	n = evil_framing() + evil_headers() + evil_packets();
	console_put_str("OK net evil: ");
	console_put_dec(n);
	console_put_str(" bad frames sent\n");
}
