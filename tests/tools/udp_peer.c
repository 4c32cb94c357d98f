/*
 * The host end of the test guest's UDP line protocol, for the integration
 * tests:
 *
 *   udp_peer ADDR PORT LINE...
 *
 * Sends each LINE (a newline added) as one datagram to ADDR:PORT and prints
 * the reply datagram. A datagram that gets no reply within 2 s is sent again,
 * up to 5 times (the first one may wait for ARP). Exits 1 when one never gets
 * an answer.
 */
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define TRIES	   5
#define TIMEOUT_MS 2000

static int exchange(int fd, const struct sockaddr_in *to, const char *line)
{
	char request[1024], reply[2048];
	int len = snprintf(request, sizeof(request), "%s\n", line);

	for (int i = 0; i < TRIES; i++) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (sendto(fd, request, (size_t)len, 0, (const struct sockaddr *)to, sizeof(*to)) <
		    0)
			return -1;
		if (poll(&pfd, 1, TIMEOUT_MS) != 1)
			continue;
		n = recv(fd, reply, sizeof(reply), 0);
		if (n < 0)
			return -1;
		fwrite(reply, 1, (size_t)n, stdout);
		fflush(stdout);
		return 0;
	}
	return -1;
}

int main(int argc, char **argv)
{
	struct sockaddr_in to = { .sin_family = AF_INET };
	int fd;

	if (argc < 4 || inet_pton(AF_INET, argv[1], &to.sin_addr) != 1) {
		fprintf(stderr, "usage: udp_peer ADDR PORT LINE...\n");
		return 2;
	}
	to.sin_port = htons((uint16_t)atoi(argv[2]));
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 1;
	for (int i = 3; i < argc; i++) {
		if (exchange(fd, &to, argv[i])) {
			fprintf(stderr, "udp_peer: no reply to '%s'\n", argv[i]);
			return 1;
		}
	}
	close(fd);
	return 0;
}
