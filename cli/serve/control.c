/*
 * The client side of a clone's or VM's control socket (snapvm run/restore
 * --api-sock): one request line per connection, one reply line back, as
 * `snapvm snapshot` speaks it. Bounded by a timeout both ways, so that a
 * wedged child cannot hold a request thread.
 */
#include "cli/serve/internal.h"
#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int serve_control_request(const char *path, const char *request, char *reply, size_t size,
			  int timeout_ms)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
	size_t len = 0;
	int fd, ret;

	if (path_format(addr.sun_path, sizeof(addr.sun_path), "%s", path))
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	ret = write_all(fd, request, strlen(request));
	while (!ret && len + 1 < size) {
		ssize_t n = read(fd, reply + len, size - 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			ret = errno == EAGAIN ? -ETIMEDOUT : -errno;
		if (n <= 0 || memchr(reply + len, '\n', (size_t)n)) {
			len += n > 0 ? (size_t)n : 0;
			break;
		}
		len += (size_t)n;
	}
	close(fd);
	reply[len] = '\0';
	reply[strcspn(reply, "\n")] = '\0';
	return ret ? ret : (len ? 0 : -EPIPE);
}
