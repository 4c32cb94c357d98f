/*
 * snapvm-helper: the Linux guest's side of snapvm's control port, for its
 * /init (a shell cannot do port I/O). Static, built with the initramfs.
 *
 *   snapvm-helper ready [CODE]   tells snapvm the guest is ready (default 1):
 *                                --snapshot-on-ready snapshots it here
 *
 * Exit 0 once the write is done; 1 with a message if the port is denied.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>

#define CTL_PORT_READY 0x600 /* write 32: ready, with the guest's ready code */

static int usage(void)
{
	fprintf(stderr, "usage: snapvm-helper ready [CODE]\n");
	return 2;
}

int main(int argc, char **argv)
{
	unsigned long code = 1;
	char *end;

	if (argc < 2 || strcmp(argv[1], "ready") || argc > 3)
		return usage();
	if (argc == 3) {
		errno = 0;
		code = strtoul(argv[2], &end, 0);
		if (errno || *end || end == argv[2] || code > 0xffffffffUL)
			return usage();
	}
	if (ioperm(CTL_PORT_READY, 4, 1) < 0) {
		perror("snapvm-helper: ioperm (CONFIG_X86_IOPL_IOPERM?)");
		return 1;
	}
	outl((unsigned)code, CTL_PORT_READY);
	return 0;
}
