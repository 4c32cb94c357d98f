/*
 * Socket tools for the device tests: a netcat for vsock, a vsock connection
 * that survives snapshot restores by reconnecting, and a TCP/UDP echo server
 * and client that count lost round trips.
 */
#include "helper.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

#define ASK_TIMEOUT_MS 3000

static struct sockaddr_vm vsock_address(unsigned cid, unsigned port)
{
	return (struct sockaddr_vm){ .svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port };
}

/* Copies stdin to FD (then shuts FD's write side) and FD to stdout, until both end. */
static int stream_copy(int fd)
{
	struct pollfd fds[2] = { { .fd = 0, .events = POLLIN }, { .fd = fd, .events = POLLIN } };
	char buf[65536];

	while (fds[0].fd >= 0 || fds[1].fd >= 0) {
		ssize_t n;

		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		if (fds[0].revents) {
			n = read(0, buf, sizeof(buf));
			if (n <= 0) {
				shutdown(fd, SHUT_WR);
				fds[0].fd = -1;
			} else if (write_all(fd, buf, (size_t)n) < 0) {
				return 1;
			}
		}
		if (fds[1].revents) {
			n = read(fd, buf, sizeof(buf));
			if (n < 0)
				return 1;
			if (n == 0)
				fds[1].fd = -1;
			else if (write_all(1, buf, (size_t)n) < 0)
				return 1;
		}
	}
	return 0;
}

int stream_vsock_connect(int argc, char **argv)
{
	struct sockaddr_vm addr;
	int fd, status;

	if (argc != 3)
		return 2;
	addr = vsock_address((unsigned)strtoul(argv[1], NULL, 0),
			     (unsigned)strtoul(argv[2], NULL, 0));
	fd = socket(AF_VSOCK, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		perror("snapvm-helper vsock-connect");
		return 1;
	}
	status = stream_copy(fd);
	close(fd);
	return status;
}

int stream_vsock_listen(int argc, char **argv)
{
	struct sockaddr_vm addr;
	int fd, conn, status;

	if (argc != 2)
		return 2;
	addr = vsock_address(VMADDR_CID_ANY, (unsigned)strtoul(argv[1], NULL, 0));
	fd = socket(AF_VSOCK, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 1) < 0) {
		perror("snapvm-helper vsock-listen");
		return 1;
	}
	/* the host may connect from now on: a test waits for this line */
	fprintf(stderr, "LISTENING %s\n", argv[1]);
	conn = accept(fd, NULL, NULL);
	if (conn < 0) {
		perror("snapvm-helper vsock-listen: accept");
		return 1;
	}
	close(fd);
	status = stream_copy(conn);
	close(conn);
	return status;
}

/*
 * vsock-keep PORT: connects to the host's PORT and says "HELLO <n> <genid>";
 * when the connection breaks (a restored clone's transport reset breaks
 * every connection), says so on stdout and connects again.
 */
int stream_vsock_keep(int argc, char **argv)
{
	struct sockaddr_vm addr;
	char hello[128], hex[33] = "none", buf[256];

	if (argc != 2)
		return 2;
	addr = vsock_address(VMADDR_CID_HOST, (unsigned)strtoul(argv[1], NULL, 0));
	for (unsigned n = 1;; n++) {
		int fd = socket(AF_VSOCK, SOCK_STREAM, 0);

		int last_error = 0;

		while (fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
			if (errno != last_error) /* each new reason once */
				printf("VSOCK cannot connect: %s\n", strerror(last_error = errno));
			fflush(stdout);
			close(fd);
			usleep(100 * 1000); /* no listener yet: try again */
			fd = socket(AF_VSOCK, SOCK_STREAM, 0);
		}
		if (fd < 0) {
			perror("snapvm-helper vsock-keep");
			return 1;
		}
		ctl_generation(hex);
		snprintf(hello, sizeof(hello), "HELLO %u %s\n", n, hex);
		write_all(fd, hello, strlen(hello));
		printf("VSOCK connected %u\n", n);
		fflush(stdout);
		while (read(fd, buf, sizeof(buf)) > 0)
			;
		printf("VSOCK reset %u\n", n);
		fflush(stdout);
		close(fd);
	}
}

static int ip_socket(const char *kind, int *type)
{
	if (!strcmp(kind, "tcp"))
		*type = SOCK_STREAM;
	else if (!strcmp(kind, "udp"))
		*type = SOCK_DGRAM;
	else
		return -1;
	return socket(AF_INET, *type, 0);
}

/* echo tcp|udp PORT: echoes every datagram, or every TCP connection's bytes. */
int stream_echo(int argc, char **argv)
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	int type, one = 1, fd = argc == 3 ? ip_socket(argv[1], &type) : -1;
	char buf[65536];

	if (fd < 0)
		return 2;
	addr.sin_port = htons((uint16_t)atoi(argv[2]));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    (type == SOCK_STREAM && listen(fd, 8) < 0)) {
		perror("snapvm-helper echo");
		return 1;
	}
	fprintf(stderr, "ECHOING %s %s\n", argv[1], argv[2]);
	for (;;) {
		struct sockaddr_in from;
		socklen_t len = sizeof(from);
		ssize_t n;

		if (type == SOCK_DGRAM) {
			n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &len);
			if (n >= 0)
				sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, len);
			continue;
		}
		int conn = accept(fd, NULL, NULL);

		while (conn >= 0 && (n = read(conn, buf, sizeof(buf))) > 0)
			write_all(conn, buf, (size_t)n);
		if (conn >= 0)
			close(conn);
	}
}

/* One round trip: sends LINE, waits for it to come back; 0, or -1 if it did not. */
static int ask_once(int fd, int type, const char *line)
{
	size_t want = strlen(line), got = 0;
	char buf[256];

	if (write_all(fd, line, want) < 0)
		return -1;
	while (got < want) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, ASK_TIMEOUT_MS) != 1)
			return -1;
		n = read(fd, buf + got, sizeof(buf) - got);
		if (n <= 0)
			return -1;
		got += (size_t)n;
		if (type == SOCK_DGRAM) /* one datagram is the whole answer */
			break;
	}
	return got == want && !memcmp(buf, line, want) ? 0 : -1;
}

/*
 * ask tcp|udp ADDR PORT COUNT: COUNT numbered round trips; prints "ASK OK
 * COUNT/COUNT" or "ASK ERR lost/COUNT". No datagram is sent twice (after the
 * first, which may wait for ARP): a lossy device shows as losses.
 */
int stream_ask(int argc, char **argv)
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	int type, fd = argc == 5 ? ip_socket(argv[1], &type) : -1;
	unsigned count = argc == 5 ? (unsigned)atoi(argv[4]) : 0, lost = 0;
	char line[64];

	if (fd < 0 || inet_pton(AF_INET, argv[2], &addr.sin_addr) != 1)
		return 2;
	addr.sin_port = htons((uint16_t)atoi(argv[3]));
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		perror("snapvm-helper ask");
		return 1;
	}
	for (unsigned i = 0; i < count; i++) {
		int tries = i == 0 ? 5 : 1;

		snprintf(line, sizeof(line), "ask %u of %u\n", i + 1, count);
		while (tries-- > 0 && ask_once(fd, type, line) < 0)
			if (!tries)
				lost++;
	}
	printf("ASK %s %u/%u\n", lost ? "ERR" : "OK", count - lost, count);
	return lost ? 1 : 0;
}
