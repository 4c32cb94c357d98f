/*
 * snapvm-helper: the Linux guest's userland side of snapvm, one static
 * program in the initramfs (and the root disk) with a command per job:
 *
 *   ready [CODE]              tell snapvm the guest is ready (default code 1):
 *                             --snapshot-on-ready snapshots it here
 *   genid                     print snapvm's generation id (new in each clone)
 *   serve [OPTIONS]           the function: see serve.c
 *   vsock-connect CID PORT    stdin to a vsock stream, the stream to stdout
 *   vsock-listen PORT         the same for one connection accepted on PORT
 *   vsock-keep PORT           a connection to the host, made again after a reset
 *   echo tcp|udp PORT         an echo server
 *   ask tcp|udp ADDR PORT N   N request/reply round trips to an echo server
 *   powerbutton               power off when the power button is pressed
 *
 * A shell cannot do port I/O, sockets of these kinds or input events, hence
 * C. Exit status 0 on success; 1 with a message on stderr; 2 on bad usage.
 */
#include "helper.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <unistd.h>

#define CTL_PORT_READY	    0x600 /* write 32: ready, with the guest's ready code */
#define CTL_PORT_GENERATION 0x610 /* read 32 x 4: the generation id */

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* ioperm(2) needs CONFIG_X86_IOPL_IOPERM; /dev/port would need ISA or PCI. */
static int ctl_ports(unsigned port, unsigned count)
{
	if (ioperm(port, count, 1) < 0) {
		perror("snapvm-helper: ioperm (CONFIG_X86_IOPL_IOPERM?)");
		return -1;
	}
	return 0;
}

int ctl_ready(uint32_t code)
{
	if (ctl_ports(CTL_PORT_READY, 4) < 0)
		return -1;
	outl(code, CTL_PORT_READY);
	return 0;
}

int ctl_generation(char hex[33])
{
	if (ctl_ports(CTL_PORT_GENERATION, 16) < 0)
		return -1;
	for (unsigned i = 0; i < 4; i++) {
		uint32_t word = inl(CTL_PORT_GENERATION + 4 * i);

		/* the id's bytes in memory order, as the port lays them out */
		for (unsigned b = 0; b < 4; b++)
			sprintf(hex + 8 * i + 2 * b, "%02x", (word >> (8 * b)) & 0xff);
	}
	return 0;
}

static int ready_main(int argc, char **argv)
{
	unsigned long code = 1;
	char *end;

	if (argc > 2)
		return 2;
	if (argc == 2) {
		errno = 0;
		code = strtoul(argv[1], &end, 0);
		if (errno || *end || end == argv[1] || code > 0xffffffffUL)
			return 2;
	}
	return ctl_ready((uint32_t)code) < 0 ? 1 : 0;
}

static int genid_main(int argc, char **argv)
{
	char hex[33];

	(void)argv;
	if (argc != 1)
		return 2;
	if (ctl_generation(hex) < 0)
		return 1;
	printf("%s\n", hex);
	return 0;
}

static const struct command {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *usage;
} commands[] = {
	{ "ready", ready_main, "ready [CODE]" },
	{ "genid", genid_main, "genid" },
	{ "serve", serve_main, "serve [--fill MIB] [--seed N] [--busy] [--vsock PORT]" },
	{ "vsock-connect", stream_vsock_connect, "vsock-connect CID PORT" },
	{ "vsock-listen", stream_vsock_listen, "vsock-listen PORT" },
	{ "vsock-keep", stream_vsock_keep, "vsock-keep PORT" },
	{ "echo", stream_echo, "echo tcp|udp PORT" },
	{ "ask", stream_ask, "ask tcp|udp ADDR PORT COUNT" },
	{ "powerbutton", power_button_main, "powerbutton" },
};

static int usage(void)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(stderr, "%s snapvm-helper %s\n",
			i ? "      " : "usage:", commands[i].usage);
	return 2;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	signal(SIGPIPE, SIG_IGN); /* a peer that goes away is an error return, not a death */
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[1], commands[i].name))
			continue;
		int status = commands[i].main(argc - 1, argv + 1);

		if (status == 2)
			fprintf(stderr, "usage: snapvm-helper %s\n", commands[i].usage);
		return status;
	}
	return usage();
}
