/* The 16550 UART on COM1, driven from ring 3 (allowed by the TSS I/O bitmap). */
#include "guest.h"

#define UART_RBR       0 /* receive buffer (read) / transmit holding (write) */
#define UART_IER       1
#define UART_FCR       2
#define UART_LCR       3
#define UART_MCR       4
#define UART_LSR       5
#define LSR_DATA_READY 0x01
#define LSR_THR_EMPTY  0x20

void console_init(void)
{
	outb(COM1_PORT + UART_LCR, 0x03); /* 8 bits, no parity, 1 stop bit */
	outb(COM1_PORT + UART_FCR, 0x07); /* FIFOs on and cleared */
	outb(COM1_PORT + UART_MCR, 0x0b); /* DTR, RTS, OUT2 (gates the IRQ on PCs) */
	outb(COM1_PORT + UART_IER, 0x01); /* interrupt when received data is available */
}

void console_put_char(char c)
{
	while (!(inb(COM1_PORT + UART_LSR) & LSR_THR_EMPTY))
		cpu_relax();
	outb(COM1_PORT + UART_RBR, (uint8_t)c);
}

void console_put_str(const char *s)
{
	while (*s)
		console_put_char(*s++);
}

void console_put_hex64(uint64_t value)
{
	for (int shift = 60; shift >= 0; shift -= 4)
		console_put_char("0123456789abcdef"[(value >> shift) & 0xf]);
}

void console_put_dec(uint64_t value)
{
	char digits[21];
	int n = 0;

	do {
		digits[n++] = (char)('0' + value % 10);
		value /= 10;
	} while (value);
	while (n)
		console_put_char(digits[--n]);
}

/*
 * Waiting never spins: with no byte in the receive FIFO, the CPU halts in
 * ring 0 until the UART's interrupt arrives. A byte that lands between the
 * check and the halt leaves its interrupt pending, which ends the halt at once.
 */
size_t console_read_line(char *buf, size_t size)
{
	size_t len = 0;

	for (;;) {
		char c;

		if (!(inb(COM1_PORT + UART_LSR) & LSR_DATA_READY)) {
			call_wait();
			continue;
		}
		c = (char)inb(COM1_PORT + UART_RBR);
		if (c == '\n')
			break;
		if (c == '\r')
			continue;
		if (len + 1 < size)
			buf[len++] = c;
	}
	buf[len] = '\0';
	return len;
}
