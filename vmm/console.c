/*
 * The host side of the serial console: guest output goes to stdout or a
 * file; host input (stdin) is fed to the UART's receive FIFO as room frees up,
 * so that a fast writer never overruns the guest.
 */
#include "vmm/vm_internal.h"
#include "vmm/hw/uart.h"
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

int console_open(struct vm *vm)
{
	switch (vm->config.console) {
	case VMM_CONSOLE_STDIO:
		vm->console_in_fd = STDIN_FILENO;
		vm->console_out_fd = STDOUT_FILENO;
		break;
	case VMM_CONSOLE_FILE:
		vm->console_in_fd = STDIN_FILENO;
		vm->console_out_fd = open(vm->config.console_path,
					  O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (vm->console_out_fd < 0) {
			int ret = -errno;

			log_error("cannot open console file %s: %s", vm->config.console_path,
				  strerror(errno));
			return ret;
		}
		break;
	case VMM_CONSOLE_FDS:
		vm->console_in_fd = vm->config.console_in_fd;
		vm->console_out_fd = vm->config.console_out_fd;
		break;
	case VMM_CONSOLE_VIRTIO:
		/* input goes to the virtio console; the UART still prints (early boot messages) */
		vm->console_out_fd = STDOUT_FILENO;
		break;
	case VMM_CONSOLE_NONE:
		break;
	}
	return 0;
}

static void console_input_stop(struct vm *vm)
{
	if (vm->console_in_polled)
		event_loop_remove(vm->loop, vm->console_in_fd);
	vm->console_in_polled = false;
}

static void console_on_input(void *opaque, uint32_t events);

/* Moves as much input as the FIFO takes; stops watching stdin while the FIFO is full. */
static void console_feed(struct vm *vm)
{
	uint8_t buf[UART_RX_FIFO_SIZE];

	while (vm->console_in_fd >= 0) {
		size_t space = uart_rx_space(vm->uart);
		ssize_t n;

		if (space == 0) {
			console_input_stop(vm);
			return;
		}
		n = read(vm->console_in_fd, buf, space);
		if (n < 0 && (errno == EINTR))
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			/* end of input (or an error): the guest keeps running without it */
			console_input_stop(vm);
			vm->console_in_fd = -1;
			return;
		}
		uart_receive(vm->uart, buf, (size_t)n);
		/* a pollable input is read again when epoll says so, a file right away */
		if (vm->console_in_polled)
			return;
	}
}

static void console_on_input(void *opaque, uint32_t events)
{
	(void)events;
	console_feed(opaque);
}

static void console_on_rx_space(void *opaque, uint32_t events)
{
	struct vm *vm = opaque;
	uint64_t count;

	(void)events;
	if (read(vm->rx_space_fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		log_warn("console: reading the FIFO event failed: %s", strerror(errno));
	if (vm->console_in_fd < 0)
		return;
	if (!vm->console_in_polled &&
	    event_loop_add(vm->loop, vm->console_in_fd, EPOLLIN, console_on_input, vm) == 0)
		vm->console_in_polled = true;
	console_feed(vm);
}

/* Runs on a vCPU thread when the guest empties a full FIFO. */
static void console_rx_space_notify(void *opaque)
{
	struct vm *vm = opaque;
	uint64_t one = 1;

	if (write(vm->rx_space_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("console: cannot signal FIFO room: %s", strerror(errno));
}

int console_attach(struct vm *vm)
{
	int ret;

	if (vm->console_in_fd < 0 || !vm->uart) /* no UART (--no-legacy): no serial input */
		return 0;
	vm->rx_space_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->rx_space_fd < 0)
		return -errno;
	ret = event_loop_add(vm->loop, vm->rx_space_fd, EPOLLIN, console_on_rx_space, vm);
	if (ret)
		return ret;
	uart_set_rx_space_callback(vm->uart, console_rx_space_notify, vm);
	ret = event_loop_add(vm->loop, vm->console_in_fd, EPOLLIN, console_on_input, vm);
	if (ret == 0) {
		vm->console_in_polled = true;
		return 0;
	}
	/* regular files and /dev/null cannot be polled: they are always readable */
	if (ret == -EPERM) {
		console_feed(vm);
		return 0;
	}
	return ret;
}

void console_close(struct vm *vm)
{
	if (vm->config.console == VMM_CONSOLE_FILE && vm->console_out_fd >= 0)
		close(vm->console_out_fd);
	if (vm->rx_space_fd >= 0)
		close(vm->rx_space_fd);
	vm->console_out_fd = vm->rx_space_fd = -1;
}
