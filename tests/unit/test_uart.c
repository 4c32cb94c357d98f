/* vmm/hw/uart.c: the 16550 model as a guest driver sees it through its ports. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"
#include "vmm/device.h"
#include "vmm/hw/uart.h"
#include "vmm/loop.h"

#include <sys/epoll.h>
#include <sys/timerfd.h>

/* The devices tested here by name (each registers itself in its own file). */
extern const struct device_ops uart_device_ops; /* vmm/hw/uart.c */

#define THR 0
#define IER 1
#define IIR 2
#define FCR 2
#define LCR 3
#define MCR 4
#define LSR 5
#define MSR 6
#define SCR 7

struct fixture {
	struct io_registry io;
	struct event_loop *loop; /* NULL: the UART writes every byte at once */
	struct device_context ctx;
	void *uart;
	int out[2];
	bool irq_level;
	unsigned irq_changes;
};

static void irq_line(void *opaque, unsigned gsi, bool level)
{
	struct fixture *f = opaque;

	assert_int_equal(gsi, UART_COM1_IRQ);
	f->irq_level = level;
	f->irq_changes++;
}

static struct fixture *fixture_new(bool with_loop)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_int_equal(pipe2(f->out, O_NONBLOCK), 0);
	if (with_loop)
		assert_int_equal(event_loop_create(&f->loop), 0);
	f->ctx = (struct device_context){ .io = &f->io,
					  .vm = f,
					  .irq_line = irq_line,
					  .console_out_fd = f->out[1],
					  .loop = f->loop };
	f->uart = uart_device_ops.create(&f->ctx);
	assert_non_null(f->uart);
	return f;
}

static int setup(void **state)
{
	*state = fixture_new(false);
	return 0;
}

static int setup_with_loop(void **state)
{
	*state = fixture_new(true);
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (f->uart)
		uart_device_ops.destroy(f->uart);
	if (f->loop)
		event_loop_destroy(f->loop);
	close(f->out[0]);
	close(f->out[1]);
	free(f);
	return 0;
}

static uint8_t rd(struct fixture *f, unsigned reg)
{
	uint8_t v;

	assert_true(io_dispatch(&f->io, IO_BUS_PIO, UART_COM1_BASE + reg, &v, 1, false));
	return v;
}

static void wr(struct fixture *f, unsigned reg, uint8_t v)
{
	assert_true(io_dispatch(&f->io, IO_BUS_PIO, UART_COM1_BASE + reg, &v, 1, true));
}

static void test_uart_transmit(void **state)
{
	struct fixture *f = *state;
	char got[8] = { 0 };

	assert_true(rd(f, LSR) & 0x60); /* transmitter empty */
	wr(f, THR, 'h');
	wr(f, THR, 'i');
	wr(f, THR, 'a');
	wr(f, THR, 'b');
	wr(f, THR, 'c');
	assert_int_equal(read(f->out[0], got, sizeof(got)), 5);
	assert_string_equal(got, "hiabc");
}

static void wr_str(struct fixture *f, const char *s)
{
	while (*s)
		wr(f, THR, (uint8_t)*s++);
}

static void stop_loop(void *opaque, uint32_t events)
{
	(void)events;
	event_loop_stop(opaque);
}

/* Runs the loop for ms milliseconds: long enough for the UART's flush timer. */
static void run_loop_for(struct fixture *f, long ms)
{
	struct itimerspec when = { .it_value.tv_nsec = ms * 1000000L };
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);

	assert_true(fd >= 0);
	assert_int_equal(timerfd_settime(fd, 0, &when, NULL), 0);
	assert_int_equal(event_loop_add(f->loop, fd, EPOLLIN, stop_loop, f->loop), 0);
	assert_int_equal(event_loop_run(f->loop), 0);
	event_loop_remove(f->loop, fd);
	close(fd);
}

/* With an event loop, output goes out a line at a time; a partial line soon after. */
static void test_uart_transmit_by_line(void **state)
{
	struct fixture *f = *state;
	char got[16] = { 0 };

	wr_str(f, "ab");
	assert_int_equal(read(f->out[0], got, sizeof(got)), -1); /* held back */
	wr_str(f, "c\nde");
	assert_int_equal(read(f->out[0], got, sizeof(got)), 4);
	assert_memory_equal(got, "abc\n", 4);
	run_loop_for(f, 100); /* the flush timer fires well before */
	assert_int_equal(read(f->out[0], got, sizeof(got)), 2);
	assert_memory_equal(got, "de", 2);
	wr_str(f, "prompt> ");
	assert_int_equal(uart_device_ops.quiesce(f->uart), 0); /* a snapshot sees it all out */
	assert_int_equal(read(f->out[0], got, sizeof(got)), 8);
	assert_memory_equal(got, "prompt> ", 8);
	wr_str(f, "bye");
	uart_device_ops.destroy(f->uart); /* the end, too */
	f->uart = NULL;
	assert_int_equal(read(f->out[0], got, sizeof(got)), 3);
	assert_memory_equal(got, "bye", 3);
}

static void test_uart_receive_and_interrupt(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(uart_receive(f->uart, (const uint8_t *)"xy", 2), 2);
	assert_false(f->irq_level); /* interrupts still disabled */
	assert_int_equal(rd(f, LSR) & 1, 1);
	assert_int_equal(rd(f, IIR) & 0xf, 1); /* none pending */
	wr(f, IER, 1);
	assert_true(f->irq_level);
	assert_int_equal(rd(f, IIR) & 0xf, 4); /* received data available */
	assert_int_equal(rd(f, THR), 'x');
	assert_true(f->irq_level);
	assert_int_equal(rd(f, THR), 'y');
	assert_false(f->irq_level);
	assert_int_equal(rd(f, LSR) & 1, 0);
	assert_int_equal(rd(f, THR), 0); /* empty FIFO reads as 0 */
	assert_int_equal(uart_receive(f->uart, (const uint8_t *)"z", 1), 1);
	assert_true(f->irq_level); /* a new edge for the next byte */
}

static void test_uart_fifo_is_bounded(void **state)
{
	struct fixture *f = *state;
	uint8_t bytes[UART_RX_FIFO_SIZE + 10];

	for (unsigned i = 0; i < sizeof(bytes); i++)
		bytes[i] = (uint8_t)(i + 1);
	assert_int_equal(uart_receive(f->uart, bytes, sizeof(bytes)), UART_RX_FIFO_SIZE);
	assert_int_equal(uart_rx_space(f->uart), 0);
	assert_int_equal(rd(f, THR), 1);
	assert_int_equal(uart_rx_space(f->uart), 1);
	wr(f, FCR, 0x03); /* clear the receive FIFO */
	assert_int_equal(uart_rx_space(f->uart), UART_RX_FIFO_SIZE);
	assert_int_equal(rd(f, LSR) & 1, 0);
}

static void test_uart_thr_empty_interrupt(void **state)
{
	struct fixture *f = *state;

	wr(f, IER, 2);
	assert_true(f->irq_level);
	assert_int_equal(rd(f, IIR) & 0xf, 2); /* reading IIR acknowledges it */
	assert_false(f->irq_level);
	wr(f, THR, '!');
	assert_true(f->irq_level); /* transmitted: empty again */
	wr(f, IER, 0);
	assert_false(f->irq_level);
}

static void test_uart_registers(void **state)
{
	struct fixture *f = *state;
	char saved_byte[1];

	wr(f, SCR, 0x5a);
	assert_int_equal(rd(f, SCR), 0x5a);
	wr(f, LCR, 0x83); /* DLAB: divisor latch at 0 and 1 */
	wr(f, THR, 0x01);
	wr(f, IER, 0x02);
	assert_int_equal(rd(f, THR), 0x01);
	assert_int_equal(rd(f, IER), 0x02);
	wr(f, LCR, 0x03);
	assert_int_equal(rd(f, IER), 0);
	assert_int_equal(rd(f, LCR), 0x03);
	wr(f, MCR, 0x1f); /* loopback: output returns as input, MSR mirrors MCR */
	assert_int_equal(rd(f, MSR) & 0xf0, 0xf0);
	wr(f, THR, 'L');
	assert_int_equal(rd(f, LSR) & 1, 1);
	assert_int_equal(rd(f, THR), 'L');
	assert_int_equal(read(f->out[0], saved_byte, 1), -1); /* nothing reached the host */
}

static void test_uart_restore_rejects_bad_state(void **state)
{
	struct fixture *f = *state;
	struct uart_state saved;

	assert_int_equal(uart_device_ops.state_size, sizeof(saved));
	uart_receive(f->uart, (const uint8_t *)"abc", 3);
	uart_device_ops.save(f->uart, &saved);
	assert_int_equal(saved.rx_count, 3);
	assert_memory_equal(saved.rx_fifo, "abc", 3);
	assert_int_equal(uart_device_ops.restore(f->uart, &saved), 0);
	assert_int_equal(rd(f, THR), 'a');
	saved.rx_count = UART_RX_FIFO_SIZE + 1; /* more bytes than the FIFO holds */
	assert_int_equal(uart_device_ops.restore(f->uart, &saved), -EINVAL);
	saved.rx_count = 0;
	saved.ier = 0xf0; /* reserved bits */
	assert_int_equal(uart_device_ops.restore(f->uart, &saved), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_uart_transmit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uart_transmit_by_line, setup_with_loop,
						teardown),
		cmocka_unit_test_setup_teardown(test_uart_receive_and_interrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uart_fifo_is_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uart_thr_empty_interrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uart_registers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uart_restore_rejects_bad_state, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
