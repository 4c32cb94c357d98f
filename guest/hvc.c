/*
 * The virtio console as the guest's line console (hvc0): when snapvm runs
 * with --console virtio, the guest says READY and serves requests here.
 * Output is gathered into lines so that a reply costs one notification.
 */
#include "virtio.h"

#define RX_Q	 0
#define TX_Q	 1
#define RX_BUFS	 8
#define BUF_SIZE 256

static struct vdev *hvc;
static GUEST_BUFFER char rx_bufs[RX_BUFS][BUF_SIZE] __attribute__((aligned(4096)));
static GUEST_BUFFER char tx_bufs[VQ_SIZE][BUF_SIZE];
static uint16_t tx_posted, tx_done;
static char out[BUF_SIZE];
static size_t out_len;
static char in[BUF_SIZE]; /* received, not yet taken into a line */
static size_t in_len, in_pos;

static void hvc_post_rx(uint16_t i)
{
	struct vq *q = hvc->queues[RX_Q];

	q->desc[i] = (struct vq_desc){ (uint64_t)rx_bufs[i], BUF_SIZE, VQ_F_WRITE, 0 };
	vq_post(q, i);
}

static void hvc_flush(void)
{
	struct vq *q = hvc->queues[TX_Q];
	struct vq_used_elem used;
	uint16_t slot;

	if (!out_len)
		return;
	while (vq_take_used(q, &used))
		tx_done++;
	if ((uint16_t)(tx_posted - tx_done) == VQ_SIZE && virtio_wait_used(hvc, TX_Q, &used))
		tx_done++;
	slot = tx_posted++ % VQ_SIZE;
	memcpy(tx_bufs[slot], out, out_len);
	q->desc[slot] = (struct vq_desc){ (uint64_t)tx_bufs[slot], (uint32_t)out_len, 0, 0 };
	vq_post(q, slot);
	virtio_notify(hvc, TX_Q);
	out_len = 0;
}

void hvc_write(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		out[out_len++] = s[i];
		if (s[i] == '\n' || out_len == BUF_SIZE)
			hvc_flush();
	}
}

bool hvc_start(void)
{
	hvc = virtio_find(VIRTIO_ID_CONSOLE, 0);
	if (!hvc || !virtio_setup(hvc, 2))
		return false;
	for (uint16_t i = 0; i < RX_BUFS; i++)
		hvc_post_rx(i);
	virtio_notify(hvc, RX_Q);
	console_sink = hvc_write;
	return true;
}

/* Takes the next received buffer into `in`, giving the buffer back to the device. */
static bool hvc_receive(void)
{
	struct vq_used_elem used;

	if (!vq_take_used(hvc->queues[RX_Q], &used))
		return false;
	if (used.id < RX_BUFS) {
		in_len = used.len < BUF_SIZE ? used.len : BUF_SIZE;
		in_pos = 0;
		memcpy(in, rx_bufs[used.id], in_len);
		hvc_post_rx((uint16_t)used.id);
		virtio_notify(hvc, RX_Q);
	}
	return true;
}

bool hvc_poll_line(char *line, size_t size, size_t *len)
{
	for (;;) {
		char c;

		if (in_pos == in_len && !hvc_receive())
			return false;
		if (in_pos == in_len)
			continue;
		c = in[in_pos++];
		if (c == '\r' || c == '\0')
			continue;
		if (c == '\n') {
			line[*len] = '\0';
			*len = 0;
			return true;
		}
		if (*len + 1 < size)
			line[(*len)++] = c;
	}
}
