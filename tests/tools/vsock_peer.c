/*
 * The host end of a vsock connection, for the integration tests:
 *
 *   vsock_peer connect PATH PORT LINE...   connect to the guest's PORT through
 *                                           snapvm's socket PATH (Firecracker's
 *                                           "CONNECT <port>" handshake)
 *   vsock_peer listen PATH_PORT LINE...    wait (20 s at most) for the guest to
 *                                           connect to host port PORT
 *
 * Then sends each LINE and prints the reply line it gets; in connect mode the
 * handshake's own reply ("OK <port>") is printed first. A single LINE "-"
 * streams instead: stdin goes to the guest (then the write side is shut),
 * and what the guest sends goes to stdout until it closes. Exits 1 on any
 * error.
 */
#include "common/common.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define TIMEOUT_MS 120000 /* a hang guard: a nested guest can be slow */

static int read_line(int fd, char *line, size_t size)
{
	size_t len = 0;

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		char c;

		if (poll(&pfd, 1, TIMEOUT_MS) != 1 || read(fd, &c, 1) != 1)
			return -1;
		if (c == '\n')
			break;
		if (len + 1 < size)
			line[len++] = c;
	}
	line[len] = '\0';
	return 0;
}

static int converse(int fd, char **lines, int count)
{
	char reply[512];

	for (int i = 0; i < count; i++) {
		if (write_all(fd, lines[i], strlen(lines[i])) || write_all(fd, "\n", 1) ||
		    read_line(fd, reply, sizeof(reply)))
			return 1;
		printf("%s\n", reply);
		fflush(stdout);
	}
	return 0;
}

/*
 * The "-" mode: a netcat between stdin/stdout and the connection. It ends
 * when both directions have: stdin at its end (then the write side is shut)
 * and the guest's side closed.
 */
static int stream(int fd)
{
	struct pollfd fds[2] = { { .fd = 0, .events = POLLIN }, { .fd = fd, .events = POLLIN } };
	char buf[65536];

	while (fds[0].fd >= 0 || fds[1].fd >= 0) {
		ssize_t n;

		if (poll(fds, 2, TIMEOUT_MS) < 1)
			return 1;
		if (fds[0].revents) {
			n = read(0, buf, sizeof(buf));
			if (n <= 0) {
				shutdown(fd, SHUT_WR);
				fds[0].fd = -1;
			} else if (write_all(fd, buf, (size_t)n)) {
				return 1;
			}
		}
		if (fds[1].revents) {
			n = read(fd, buf, sizeof(buf));
			if (n < 0)
				return 1;
			if (n == 0)
				fds[1].fd = -1;
			else if (write_all(1, buf, (size_t)n))
				return 1;
		}
	}
	return 0;
}

static int converse_or_stream(int fd, char **lines, int count)
{
	if (count == 1 && !strcmp(lines[0], "-"))
		return stream(fd);
	return converse(fd, lines, count);
}

static int unix_address(const char *path, struct sockaddr_un *addr)
{
	*addr = (struct sockaddr_un){ .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(addr->sun_path))
		return -1;
	strcpy(addr->sun_path, path);
	return 0;
}

static int peer_connect(const char *path, const char *port, char **lines, int count)
{
	struct sockaddr_un addr;
	char reply[64];
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || unix_address(path, &addr) ||
	    connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    dprintf(fd, "CONNECT %s\n", port) < 0 || read_line(fd, reply, sizeof(reply))) {
		perror("vsock_peer: connect");
		return 1;
	}
	printf("%s\n", reply);
	fflush(stdout);
	return converse_or_stream(fd, lines, count);
}

static int peer_listen(const char *path, char **lines, int count)
{
	struct sockaddr_un addr;
	struct pollfd pfd;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), conn, ret;

	unlink(path);
	if (fd < 0 || unix_address(path, &addr) ||
	    bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 1) < 0) {
		perror("vsock_peer: listen");
		return 1;
	}
	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	if (poll(&pfd, 1, TIMEOUT_MS) != 1 || (conn = accept(fd, NULL, NULL)) < 0) {
		fprintf(stderr, "vsock_peer: nobody connected to %s\n", path);
		unlink(path);
		return 1;
	}
	ret = converse_or_stream(conn, lines, count);
	close(conn);
	unlink(path);
	return ret;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc >= 4 && !strcmp(argv[1], "connect"))
		return peer_connect(argv[2], argv[3], argv + 4, argc - 4);
	if (argc >= 3 && !strcmp(argv[1], "listen"))
		return peer_listen(argv[2], argv + 3, argc - 3);
	fprintf(stderr, "usage: vsock_peer connect PATH PORT LINE... | listen PATH_PORT LINE...\n");
	return 2;
}
