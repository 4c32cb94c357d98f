/* A 16550A UART (COM1): what the event loop and tests use beyond its ops table. */
#ifndef SNAPVM_VMM_HW_UART_H
#define SNAPVM_VMM_HW_UART_H

#include <stddef.h>
#include <stdint.h>

#define UART_COM1_BASE	  0x3f8
#define UART_COM1_IRQ	  4
#define UART_RX_FIFO_SIZE 64

struct uart;

/* Saved state (a snapshot section): fixed-width fields only. */
struct uart_state {
	uint8_t ier, lcr, mcr, lsr_errors, msr, scr, dll, dlm;
	uint8_t fcr;
	uint8_t thr_interrupt_pending;
	uint8_t rx_count;
	uint8_t reserved[5];
	uint8_t rx_fifo[UART_RX_FIFO_SIZE]; /* the oldest byte first */
};

/* Queues bytes received from the host side; returns how many fit in the FIFO. */
size_t uart_receive(struct uart *uart, const uint8_t *bytes, size_t len);
/* Room left in the receive FIFO. */
size_t uart_rx_space(struct uart *uart);

#endif
