/*
 * The 16550 UART on COM1, driven from ring 3 (allowed by the TSS I/O bitmap).
 *
 * Every port access from ring 3 is a VM exit, and on PVM hosts one costs
 * ~57 us (HOST.md), so the console moves bytes in bursts: output sends up to
 * 16 bytes (the FIFO's depth) with one `rep outsb` and reads the line status
 * only when those 16 are spent (the transmitter is empty at power-on, so the
 * first 16 need no check); input reads 16 bytes with one `rep insb` once the
 * line status says data is ready. An empty receive FIFO reads as 0 (snapvm and
 * QEMU both do so) and the line protocol never carries NUL, so NULs are
 * dropped.
 *
 * Under snapvm the guest also asks for batched output (control port 0x60c):
 * KVM keeps the transmit writes of a `rep outsb` without an exit per byte,
 * and snapvm sends them at the guest's next exit. The guest's side of that
 * bargain is console_flush() before every halt.
 */
#include "guest.h"

#define UART_RBR       0 /* receive buffer (read) / transmit holding (write) */
#define UART_IER       1
#define UART_FCR       2
#define UART_LSR       5
#define LSR_DATA_READY 0x01
#define LSR_THR_EMPTY  0x20
#define FIFO_DEPTH     16

/*
 * Only what a virtual UART acts on: line settings and modem control (OUT2
 * gates the IRQ on real PCs) change nothing in snapvm's or QEMU's, and each
 * write costs a ring-3 exit.
 */
void console_init(void)
{
	/*
	 * One 16-bit write sets IER (interrupt when received data is available)
	 * and, in the next register, FCR (FIFOs on; input that came before boot
	 * is kept): the bus splits it into two byte writes, as QEMU and snapvm
	 * do, and it costs one exit instead of two.
	 */
	outw(COM1_PORT + UART_IER, 0x01 | 0x01 << 8);
	/*
	 * Tells snapvm that this guest makes a VM exit after the output it wants
	 * seen (console_flush() before every halt), so that snapvm may hold the
	 * transmit writes until then: one line then costs one exit, not one per
	 * byte. QEMU has nothing at this port and ignores it.
	 */
	outb(CTL_PORT_CONSOLE_BATCHING, 1);
}

static void outsb(uint16_t port, const char *bytes, size_t len)
{
	__asm__ volatile("rep outsb" : "+S"(bytes), "+c"(len) : "d"(port) : "memory");
}

static void insb(uint16_t port, char *bytes, size_t len)
{
	__asm__ volatile("rep insb" : "+D"(bytes), "+c"(len) : "d"(port) : "memory");
}

void (*console_sink)(const char *s, size_t len);

static size_t fifo_room = FIFO_DEPTH; /* left of the FIFO since it was last seen empty */
static bool output_held;	      /* sent since the guest's last VM exit here */

/* Reads the line status: a VM exit, after which snapvm has sent all it held. */
static uint8_t uart_line_status(void)
{
	uint8_t lsr = inb(COM1_PORT + UART_LSR);

	output_held = false;
	if (lsr & LSR_THR_EMPTY)
		fifo_room = FIFO_DEPTH;
	return lsr;
}

void console_flush(void)
{
	if (output_held)
		uart_line_status();
}

void console_write(const char *s, size_t len)
{
	if (console_sink) {
		console_sink(s, len);
		return;
	}
	while (len) {
		size_t burst;

		while (!fifo_room && !(uart_line_status() & LSR_THR_EMPTY))
			cpu_relax();
		burst = len < fifo_room ? len : fifo_room;
		outsb(COM1_PORT + UART_RBR, s, burst);
		output_held = true;
		fifo_room -= burst;
		s += burst;
		len -= burst;
	}
}

void console_put_char(char c)
{
	console_write(&c, 1);
}

void console_put_str(const char *s)
{
	console_write(s, strlen(s));
}

void console_put_hex64(uint64_t value)
{
	char digits[16];

	for (int i = 0; i < 16; i++)
		digits[i] = "0123456789abcdef"[(value >> (60 - 4 * i)) & 0xf];
	console_write(digits, sizeof(digits));
}

void console_put_dec(uint64_t value)
{
	char digits[20];
	int n = sizeof(digits);

	do {
		digits[--n] = (char)('0' + value % 10);
		value /= 10;
	} while (value);
	console_write(digits + n, sizeof(digits) - (size_t)n);
}

/*
 * Takes what the UART has, without waiting. The LSR is read (a VM exit) only
 * when the UART's interrupt came since the FIFO was last found empty: its
 * line stays up while bytes remain, so one edge covers them all.
 */
bool console_poll_line(char *buf, size_t size)
{
	static char pending[FIFO_DEPTH];
	static size_t pending_len, pending_pos, len;
	static bool maybe_data = true; /* input may have come before boot */

	for (;;) {
		char c;

		if (pending_pos == pending_len) {
			maybe_data |= irq_seen[VECTOR_UART];
			irq_seen[VECTOR_UART] = 0;
			if (!maybe_data || !(uart_line_status() & LSR_DATA_READY)) {
				maybe_data = false;
				return false;
			}
			insb(COM1_PORT + UART_RBR, pending, FIFO_DEPTH);
			pending_len = FIFO_DEPTH;
			pending_pos = 0;
		}
		c = pending[pending_pos++];
		if (c == '\0' || c == '\r')
			continue;
		if (c == '\n') {
			buf[len] = '\0';
			len = 0;
			return true;
		}
		if (len + 1 < size)
			buf[len++] = c;
	}
}

/*
 * Waiting never spins: with no byte in the receive FIFO, the CPU halts in
 * ring 0 until the UART's interrupt arrives. A byte that lands between the
 * check and the halt leaves its interrupt pending, which ends the halt at once.
 */
size_t console_read_line(char *buf, size_t size)
{
	while (!console_poll_line(buf, size))
		call_wait();
	return strlen(buf);
}
