/*
 * libFuzzer target for `snapvm serve`'s request handling, on a daemon over a
 * scratch store that holds one snapshot, "fn". The first byte picks how the
 * rest arrives:
 *   even: "METHOD\nPATH\nBODY" straight to serve_handle() (routing, the
 *         JSON body decoding and field checks of every handler);
 *   odd:  raw bytes on a connection to the daemon's HTTP server on a Unix
 *         socket (libmicrohttpd's parser, http.c's header and body
 *         handling, then the same handlers), whose reply is read whole.
 * No request may start a child: the daemon has no clone slot (max_clones
 * 0, queue 0 ms), so those that would get as far as a 429.
 */
#include "serve/internal.h"
#include "common/common.h"
#include "tests/fuzz/fuzz_scratch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct serve *serve;
static struct serve_http *http;
static struct sockaddr_un http_addr = { .sun_family = AF_UNIX };

/* The snapshot the routes look for; made again after a DELETE took it. */
static void snapshot_make(void)
{
	struct store_writer *w;

	if (serve_snapshot_exists(serve, "fn"))
		return;
	if (store_snapshot_begin(serve->store, "fn", STORE_PAGE_SIZE, &w) ||
	    store_snapshot_commit(w, &(struct store_commit_info){ 0 }, NULL))
		abort();
}

static void setup(void)
{
	const char *dir = fuzz_scratch_dir("serve");
	char store[sizeof(fuzz_scratch_path) + 8], listen[sizeof(fuzz_scratch_path) + 16];
	struct serve_config config = { .self_path = "/bin/false", .max_body = 64 << 10 };

	snprintf(store, sizeof(store), "%s/store", dir);
	config.store_dir = store;
	config.run_dir = dir; /* no child ever starts: its sockets' directory stays empty */
	snprintf(http_addr.sun_path, sizeof(http_addr.sun_path), "%s/api.sock", dir);
	snprintf(listen, sizeof(listen), "unix:%s", http_addr.sun_path);
	/* a set-up failure has logged why */
	if (serve_create(&config, &serve) ||
	    serve_http_start(serve, listen, config.max_body, &http))
		abort();
}

/* Cuts the next line off *p (the last one takes the rest), as a NUL-terminated copy. */
static char *line_take(const uint8_t **p, size_t *left)
{
	const uint8_t *nl = memchr(*p, '\n', *left);
	size_t len = nl ? (size_t)(nl - *p) : *left;
	char *line = malloc(len + 1);

	memcpy(line, *p, len);
	line[len] = '\0';
	*p += nl ? len + 1 : len;
	*left -= nl ? len + 1 : len;
	return line;
}

static void handle_direct(const uint8_t *data, size_t size)
{
	char *method = line_take(&data, &size), *path = line_take(&data, &size);
	char *body = malloc(size ? size : 1); /* exactly the body: ASan guards its end */
	struct serve_request request = { .method = method,
					 .path = path,
					 .body = body,
					 .body_len = size,
					 .start_ns = time_now_ns() };
	struct serve_reply reply;

	memcpy(body, data, size);
	serve_handle(serve, &request, &reply);
	if (!reply.status || !reply.body)
		abort(); /* serve_handle always fills the reply */
	serve_reply_free(&reply);
	free(body);
	free(path);
	free(method);
}

static void handle_http(const uint8_t *data, size_t size)
{
	struct timeval timeout = { .tv_sec = 20 };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	char reply[4096];

	if (fd < 0 || connect(fd, (struct sockaddr *)&http_addr, sizeof(http_addr)) < 0)
		abort();
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
	/* the server may answer and close before it has read everything: no SIGPIPE */
	if (size && send(fd, data, size, MSG_NOSIGNAL) < 0)
		goto out;
	shutdown(fd, SHUT_WR);
	while (read(fd, reply, sizeof(reply)) > 0)
		;
out:
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!serve) {
		setup();
		log_threshold = LOG_QUIET; /* refused requests log why: not news here */
	}
	if (size < 1)
		return 0;
	snapshot_make();
	if (data[0] & 1)
		handle_http(data + 1, size - 1);
	else
		handle_direct(data + 1, size - 1);
	return 0;
}
