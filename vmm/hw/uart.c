/*
 * A 16550A UART model, enough for the test guest and Linux's 8250 driver:
 * receive FIFO with data-available interrupts, immediate transmit with
 * THR-empty interrupts, scratch register, divisor latch and loopback.
 *
 * Output reaches the console a line at a time: a guest writes one byte per
 * VM exit, and a write(2) per byte would wake whoever reads the console once
 * per byte (a wake-up across CPUs measured ~50 us on a PVM host). A
 * line without its newline goes out after TX_FLUSH_DELAY_MS at most (a
 * prompt), and everything pending goes out before a snapshot and at the end.
 *
 * Host input (the console's, unless a virtio console takes it) is fed to the
 * receive FIFO as room frees up, so that a fast writer never overruns the
 * guest; it starts when the VM starts, after any restore of the FIFO.
 *
 * Console batching (control port 0x60c): a guest that promises a VM exit
 * after the console output it wants seen lets KVM keep its writes to the
 * transmit register in the coalesced-I/O ring instead of exiting to snapvm
 * for each byte; a line sent with `rep outsb` then costs one emulation, not
 * one exit per byte (~60 us each on PVM).
 */
#include "vmm/hw/uart.h"
#include "vmm/device.h"
#include "vmm/vmm.h"
#include "common/common.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "vmm/loop.h"

enum {
	REG_DATA = 0, /* RBR on read, THR on write, DLL with DLAB */
	REG_IER = 1,  /* DLM with DLAB */
	REG_IIR = 2,  /* FCR on write */
	REG_LCR = 3,
	REG_MCR = 4,
	REG_LSR = 5,
	REG_MSR = 6,
	REG_SCR = 7,
};

#define IER_RX_AVAILABLE 0x01
#define IER_THR_EMPTY	 0x02
#define IER_MASK	 0x0f
#define IIR_NONE	 0x01
#define IIR_THR_EMPTY	 0x02
#define IIR_RX_AVAILABLE 0x04
#define IIR_FIFO_ENABLED 0xc0
#define FCR_FIFO_ENABLE	 0x01
#define FCR_CLEAR_RX	 0x02
#define LCR_DLAB	 0x80
#define MCR_LOOPBACK	 0x10
#define MCR_MASK	 0x1f
#define LSR_DATA_READY	 0x01
#define LSR_OVERRUN	 0x02
#define LSR_THR_EMPTY	 0x20
#define LSR_TX_EMPTY	 0x40
#define MSR_DCD		 0x80
#define MSR_RI		 0x40
#define MSR_DSR		 0x20
#define MSR_CTS		 0x10

#define TX_BUFFER_SIZE	  256
#define TX_FLUSH_DELAY_MS 5

struct uart {
	pthread_mutex_t lock;
	struct device_context ctx;
	struct uart_state regs; /* live registers; rx_fifo is a ring from rx_head */
	unsigned rx_head;
	bool irq_level;
	bool write_error_logged;
	/* host input: read on the loop's thread while the FIFO has room */
	int in_fd;	 /* -1: none, or it ended */
	bool in_polled;	 /* in_fd is in the event loop */
	int rx_space_fd; /* written (on a vCPU thread) when the guest frees FIFO room */
	pthread_mutex_t batching_lock; /* changes of `batched`, one at a time */
	bool batched;		       /* the transmit register is a coalesced zone */
	/* output not yet written to console_out_fd; sent at a newline or by the timer */
	uint8_t tx_buf[TX_BUFFER_SIZE];
	size_t tx_len;
	int tx_timer_fd; /* -1 without an event loop: every byte goes out at once */
	bool tx_timer_armed;
};

static uint8_t uart_iir(const struct uart *u)
{
	uint8_t fifo = (u->regs.fcr & FCR_FIFO_ENABLE) ? IIR_FIFO_ENABLED : 0;

	if ((u->regs.ier & IER_RX_AVAILABLE) && u->regs.rx_count)
		return fifo | IIR_RX_AVAILABLE;
	if ((u->regs.ier & IER_THR_EMPTY) && u->regs.thr_interrupt_pending)
		return fifo | IIR_THR_EMPTY;
	return fifo | IIR_NONE;
}

/* Called with the lock held after every change that can move the IRQ line. */
static void uart_update_irq(struct uart *u)
{
	bool level = !(uart_iir(u) & IIR_NONE);

	if (level == u->irq_level)
		return;
	u->irq_level = level;
	if (u->ctx.irq_line)
		u->ctx.irq_line(u->ctx.vm, UART_COM1_IRQ, level);
}

static size_t uart_rx_push(struct uart *u, const uint8_t *bytes, size_t len)
{
	size_t n = 0;

	for (; n < len && u->regs.rx_count < UART_RX_FIFO_SIZE; n++) {
		unsigned tail = (u->rx_head + u->regs.rx_count) % UART_RX_FIFO_SIZE;

		u->regs.rx_fifo[tail] = bytes[n];
		u->regs.rx_count++;
	}
	if (n < len)
		u->regs.lsr_errors |= LSR_OVERRUN;
	return n;
}

static uint8_t uart_rx_pop(struct uart *u)
{
	uint8_t byte;

	if (!u->regs.rx_count)
		return 0;
	byte = u->regs.rx_fifo[u->rx_head];
	u->rx_head = (u->rx_head + 1) % UART_RX_FIFO_SIZE;
	u->regs.rx_count--;
	return byte;
}

static void uart_tx_timer_set(struct uart *u, bool arm)
{
	struct itimerspec when = { .it_value.tv_nsec = arm ? TX_FLUSH_DELAY_MS * 1000000L : 0 };

	if (timerfd_settime(u->tx_timer_fd, 0, &when, NULL) == 0)
		u->tx_timer_armed = arm;
}

/* Writes out what the guest has sent; called with the lock held. */
static void uart_tx_flush(struct uart *u)
{
	int ret;

	if (u->tx_timer_armed)
		uart_tx_timer_set(u, false);
	if (!u->tx_len)
		return;
	ret = write_all(u->ctx.console_out_fd, u->tx_buf, u->tx_len);
	u->tx_len = 0;
	if (ret && !u->write_error_logged) {
		u->write_error_logged = true;
		log_warn("serial console: output dropped: %s", strerror(-ret));
	}
}

static void uart_on_tx_timer(void *opaque, uint32_t events)
{
	struct uart *u = opaque;
	uint64_t expirations;

	(void)events;
	if (read(u->tx_timer_fd, &expirations, sizeof(expirations)) < 0)
		return;
	pthread_mutex_lock(&u->lock);
	u->tx_timer_armed = false;
	uart_tx_flush(u);
	pthread_mutex_unlock(&u->lock);
}

static void uart_transmit(struct uart *u, uint8_t byte)
{
	if (u->regs.mcr & MCR_LOOPBACK) {
		uart_rx_push(u, &byte, 1);
	} else if (u->ctx.console_out_fd >= 0) {
		u->tx_buf[u->tx_len++] = byte;
		if (byte == '\n' || u->tx_len == TX_BUFFER_SIZE || u->tx_timer_fd < 0)
			uart_tx_flush(u);
		else if (!u->tx_timer_armed)
			uart_tx_timer_set(u, true);
	}
	u->regs.thr_interrupt_pending = 1;
}

static uint8_t uart_msr(const struct uart *u)
{
	uint8_t mcr = u->regs.mcr;

	if (!(mcr & MCR_LOOPBACK))
		return u->regs.msr;
	/* loopback wires DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD */
	return (uint8_t)(((mcr & 0x01) ? MSR_DSR : 0) | ((mcr & 0x02) ? MSR_CTS : 0) |
			 ((mcr & 0x04) ? MSR_RI : 0) | ((mcr & 0x08) ? MSR_DCD : 0));
}

static uint8_t uart_read(struct uart *u, unsigned reg, bool *freed_space)
{
	uint8_t value;

	switch (reg) {
	case REG_DATA:
		if (u->regs.lcr & LCR_DLAB)
			return u->regs.dll;
		*freed_space = u->regs.rx_count == UART_RX_FIFO_SIZE;
		return uart_rx_pop(u);
	case REG_IER:
		return (u->regs.lcr & LCR_DLAB) ? u->regs.dlm : u->regs.ier;
	case REG_IIR:
		value = uart_iir(u);
		/* reading IIR acknowledges a THR-empty interrupt */
		if ((value & 0x0f) == IIR_THR_EMPTY)
			u->regs.thr_interrupt_pending = 0;
		return value;
	case REG_LCR:
		return u->regs.lcr;
	case REG_MCR:
		return u->regs.mcr;
	case REG_LSR:
		value = LSR_THR_EMPTY | LSR_TX_EMPTY | u->regs.lsr_errors;
		if (u->regs.rx_count)
			value |= LSR_DATA_READY;
		u->regs.lsr_errors = 0;
		return value;
	case REG_MSR:
		return uart_msr(u);
	default:
		return u->regs.scr;
	}
}

static void uart_write(struct uart *u, unsigned reg, uint8_t value)
{
	switch (reg) {
	case REG_DATA:
		if (u->regs.lcr & LCR_DLAB)
			u->regs.dll = value;
		else
			uart_transmit(u, value);
		break;
	case REG_IER:
		if (u->regs.lcr & LCR_DLAB) {
			u->regs.dlm = value;
			break;
		}
		/* enabling THR-empty interrupts with THR empty raises one at once */
		if ((value & IER_THR_EMPTY) && !(u->regs.ier & IER_THR_EMPTY))
			u->regs.thr_interrupt_pending = 1;
		u->regs.ier = value & IER_MASK;
		break;
	case REG_IIR:
		u->regs.fcr = value & FCR_FIFO_ENABLE;
		if (value & FCR_CLEAR_RX) {
			u->regs.rx_count = 0;
			u->rx_head = 0;
		}
		break;
	case REG_LCR:
		u->regs.lcr = value;
		break;
	case REG_MCR:
		u->regs.mcr = value & MCR_MASK;
		break;
	case REG_LSR:
	case REG_MSR:
		break; /* read-only */
	default:
		u->regs.scr = value;
		break;
	}
}

static void uart_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct uart *u = opaque;
	bool freed_space = false;

	pthread_mutex_lock(&u->lock);
	/* wider accesses touch consecutive registers, as on real hardware */
	for (uint32_t i = 0; i < len && offset + i < 8; i++) {
		if (is_write)
			uart_write(u, (unsigned)(offset + i), data[i]);
		else
			data[i] = uart_read(u, (unsigned)(offset + i), &freed_space);
	}
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
	if (freed_space && u->rx_space_fd >= 0 && write(u->rx_space_fd, &(uint64_t){ 1 }, 8) < 0 &&
	    errno != EAGAIN)
		log_warn("serial console: cannot signal FIFO room: %s", strerror(errno));
}

size_t uart_receive(struct uart *u, const uint8_t *bytes, size_t len)
{
	size_t n;

	pthread_mutex_lock(&u->lock);
	n = uart_rx_push(u, bytes, MIN(len, (size_t)UART_RX_FIFO_SIZE - u->regs.rx_count));
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return n;
}

size_t uart_rx_space(struct uart *u)
{
	size_t space;

	pthread_mutex_lock(&u->lock);
	space = UART_RX_FIFO_SIZE - u->regs.rx_count;
	pthread_mutex_unlock(&u->lock);
	return space;
}

static void uart_input_stop(struct uart *u)
{
	if (u->in_polled)
		event_loop_remove(u->ctx.loop, u->in_fd);
	u->in_polled = false;
}

/* Moves as much input as the FIFO takes; stops watching it while the FIFO is full. */
static void uart_input_feed(struct uart *u)
{
	uint8_t buf[UART_RX_FIFO_SIZE];

	while (u->in_fd >= 0) {
		size_t space = uart_rx_space(u);
		ssize_t n;

		if (space == 0) {
			uart_input_stop(u);
			return;
		}
		n = read(u->in_fd, buf, space);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			/* end of input (or an error): the guest keeps running without it */
			uart_input_stop(u);
			u->in_fd = -1;
			return;
		}
		uart_receive(u, buf, (size_t)n);
		/* a pollable input is read again when epoll says so, a file right away */
		if (u->in_polled)
			return;
	}
}

static void uart_on_input(void *opaque, uint32_t events)
{
	(void)events;
	uart_input_feed(opaque);
}

static void uart_on_rx_space(void *opaque, uint32_t events)
{
	struct uart *u = opaque;
	uint64_t count;

	(void)events;
	if (read(u->rx_space_fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		log_warn("serial console: reading the FIFO event failed: %s", strerror(errno));
	if (u->in_fd < 0)
		return;
	if (!u->in_polled && event_loop_add(u->ctx.loop, u->in_fd, EPOLLIN, uart_on_input, u) == 0)
		u->in_polled = true;
	uart_input_feed(u);
}

/* The VM starts: host input flows into the FIFO from now on (after any restore). */
static int uart_start(void *dev)
{
	struct uart *u = dev;
	int ret;

	if (u->in_fd < 0 || !u->ctx.loop)
		return 0;
	u->rx_space_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (u->rx_space_fd < 0)
		return -errno;
	ret = event_loop_add(u->ctx.loop, u->rx_space_fd, EPOLLIN, uart_on_rx_space, u);
	if (ret)
		return ret;
	ret = event_loop_add(u->ctx.loop, u->in_fd, EPOLLIN, uart_on_input, u);
	if (ret == 0) {
		u->in_polled = true;
		return 0;
	}
	/* regular files and /dev/null cannot be polled: they are always readable */
	if (ret == -EPERM) {
		uart_input_feed(u);
		return 0;
	}
	return ret;
}

/*
 * On a vCPU thread (the control port's write) or, at restore, the main
 * thread. Not under u->lock: ending the zone passes what KVM kept in its ring
 * to uart_io first.
 */
static void uart_guest_event(void *dev, enum guest_event event, uint64_t value)
{
	struct uart *u = dev;
	bool on = value != 0;

	if (event != GUEST_EVENT_CONSOLE_BATCHING || !u->ctx.coalesced_zone)
		return;
	pthread_mutex_lock(&u->batching_lock);
	if (on != u->batched &&
	    u->ctx.coalesced_zone(u->ctx.vm, IO_BUS_PIO, UART_COM1_BASE + REG_DATA, 1, on) == 0) {
		u->batched = on;
		log_info("console output %s", on ? "waits for the guest's next exit, as it asked"
						 : "goes out at every write again");
	}
	pthread_mutex_unlock(&u->batching_lock);
}

static void uart_reset(void *dev)
{
	struct uart *u = dev;

	pthread_mutex_lock(&u->lock);
	memset(&u->regs, 0, sizeof(u->regs));
	u->rx_head = 0;
	/* DCD, DSR and CTS up: a terminal is attached */
	u->regs.msr = MSR_DCD | MSR_DSR | MSR_CTS;
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
}

static void uart_destroy(void *dev)
{
	struct uart *u = dev;

	if (u->tx_timer_fd >= 0) {
		uart_tx_flush(u); /* the VM's threads are gone: no lock needed */
		event_loop_remove(u->ctx.loop, u->tx_timer_fd);
		close(u->tx_timer_fd);
	}
	uart_input_stop(u);
	if (u->rx_space_fd >= 0) {
		event_loop_remove(u->ctx.loop, u->rx_space_fd);
		close(u->rx_space_fd);
	}
	pthread_mutex_destroy(&u->batching_lock);
	pthread_mutex_destroy(&u->lock);
	free(u);
}

/* --no-legacy leaves COM1 out, as QEMU microvm's isa-serial=off does. */
static unsigned uart_instances(const struct vmm_config *config)
{
	return config->no_legacy ? 0 : 1;
}

static void *uart_create(const struct device_context *ctx)
{
	struct uart *u = calloc(1, sizeof(*u));

	if (!u)
		return NULL;
	pthread_mutex_init(&u->lock, NULL);
	pthread_mutex_init(&u->batching_lock, NULL);
	u->ctx = *ctx;
	u->tx_timer_fd = u->rx_space_fd = -1;
	/* the console's input goes to the virtio console when there is one */
	u->in_fd =
		ctx->config && ctx->config->console == VMM_CONSOLE_VIRTIO ? -1 : ctx->console_in_fd;
	if (ctx->loop && ctx->console_out_fd >= 0) {
		u->tx_timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
		if (u->tx_timer_fd >= 0 &&
		    event_loop_add(ctx->loop, u->tx_timer_fd, EPOLLIN, uart_on_tx_timer, u)) {
			close(u->tx_timer_fd);
			u->tx_timer_fd = -1;
		}
	}
	if (io_register(ctx->io, IO_BUS_PIO, UART_COM1_BASE, 8, uart_io, u)) {
		uart_destroy(u);
		return NULL;
	}
	uart_reset(u);
	return u;
}

/* Nothing is in flight but the console output still held back: it goes now. */
static int uart_quiesce(void *dev)
{
	struct uart *u = dev;

	pthread_mutex_lock(&u->lock);
	uart_tx_flush(u);
	pthread_mutex_unlock(&u->lock);
	return 0;
}

static void uart_save(void *dev, void *state)
{
	struct uart *u = dev;
	struct uart_state *s = state;

	pthread_mutex_lock(&u->lock);
	*s = u->regs;
	for (unsigned i = 0; i < UART_RX_FIFO_SIZE; i++)
		s->rx_fifo[i] = i < u->regs.rx_count
					? u->regs.rx_fifo[(u->rx_head + i) % UART_RX_FIFO_SIZE]
					: 0;
	pthread_mutex_unlock(&u->lock);
}

static int uart_restore(void *dev, const void *state)
{
	struct uart *u = dev;
	const struct uart_state *s = state;

	if (s->rx_count > UART_RX_FIFO_SIZE || s->ier & ~IER_MASK || s->mcr & ~MCR_MASK ||
	    s->fcr & ~FCR_FIFO_ENABLE || s->thr_interrupt_pending > 1)
		return -EINVAL;
	pthread_mutex_lock(&u->lock);
	u->regs = *s;
	u->rx_head = 0;
	/* the line level is derived: recompute it rather than trust the file */
	u->irq_level = false;
	if (u->ctx.irq_line)
		u->ctx.irq_line(u->ctx.vm, UART_COM1_IRQ, false);
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return 0;
}

/* The machine as the guest knew it: COM1 or not (--no-legacy). */
static int uart_restore_config(const void *const *states, unsigned count,
			       const struct vmm_config *wanted, struct vmm_config *config)
{
	(void)states;
	(void)wanted;
	config->no_legacy = !count;
	return 0;
}

const struct device_ops uart_device_ops = {
	.name = "uart",
	.section_id = 0x0201,
	.state_version = 1,
	.state_size = sizeof(struct uart_state),
	.instances = uart_instances,
	.create = uart_create,
	.reset = uart_reset,
	.quiesce = uart_quiesce,
	.save = uart_save,
	.restore = uart_restore,
	.restore_config = uart_restore_config,
	.start = uart_start,
	.guest_event = uart_guest_event,
	.destroy = uart_destroy,
};
DEVICE_REGISTER(uart_device_ops);
