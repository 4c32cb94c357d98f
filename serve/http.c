/*
 * The HTTP server: libmicrohttpd with a thread per connection (a handler
 * may wait seconds for its clone; poll(), not select(), since hundreds of
 * child pipes push descriptors past FD_SETSIZE). It reads the body up to
 * the cap, hands the request to serve_handle() and sends the reply.
 *
 * Shutdown drains: the Unix socket's name goes at once (new clients find
 * nobody), but the listening socket stays open until every connection a
 * client made before is answered, 503 for the new requests, so that no
 * client that reached the daemon is left with a closed connection and no
 * reply. Each connection is counted busy from its accept, or from a new
 * request on it, until its request completes; idle keep-alive connections
 * are closed at the stop.
 *
 * libmicrohttpd is loaded with dlopen() when `snapvm serve` starts: linked
 * in, it would bring GnuTLS and eight more libraries into every snapvm
 * process, and each clone is one (measured here: +1.0 ms per process start,
 * a third of a restore); linked statically it cannot be, as Debian ships no
 * static libunistring or libp11-kit for GnuTLS to use.
 */
#include "serve/internal.h"
#include "common/common.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <microhttpd.h>

#define HTTP_CONNECTIONS_MAX 2048
#define HTTP_IDLE_TIMEOUT_S  60	  /* a keep-alive connection that says nothing for this long */
#define HTTP_DRAIN_MAX_MS    5000 /* at shutdown, answering what arrived (TCP clients go on) */
#define HTTP_DRAIN_QUIET_MS  20	  /* nothing pending or busy for this long: drained */

/* The libmicrohttpd calls snapvm makes, resolved once. */
static struct {
	__typeof__(MHD_start_daemon) *start_daemon;
	__typeof__(MHD_stop_daemon) *stop_daemon;
	__typeof__(MHD_create_response_from_buffer) *create_response;
	__typeof__(MHD_add_response_header) *add_header;
	__typeof__(MHD_queue_response) *queue_response;
	__typeof__(MHD_destroy_response) *destroy_response;
	__typeof__(MHD_lookup_connection_value) *lookup_value;
	__typeof__(MHD_get_connection_info) *connection_info;
	const char *error;
} mhd;

static pthread_once_t mhd_once = PTHREAD_ONCE_INIT;

static void mhd_load(void)
{
	void *lib = dlopen("libmicrohttpd.so.12", RTLD_NOW | RTLD_LOCAL);

	if (!lib) {
		mhd.error = "cannot load libmicrohttpd.so.12 (install Debian's libmicrohttpd12)";
		return;
	}
	*(void **)&mhd.start_daemon = dlsym(lib, "MHD_start_daemon");
	*(void **)&mhd.stop_daemon = dlsym(lib, "MHD_stop_daemon");
	*(void **)&mhd.create_response = dlsym(lib, "MHD_create_response_from_buffer");
	*(void **)&mhd.add_header = dlsym(lib, "MHD_add_response_header");
	*(void **)&mhd.queue_response = dlsym(lib, "MHD_queue_response");
	*(void **)&mhd.destroy_response = dlsym(lib, "MHD_destroy_response");
	*(void **)&mhd.lookup_value = dlsym(lib, "MHD_lookup_connection_value");
	*(void **)&mhd.connection_info = dlsym(lib, "MHD_get_connection_info");
	if (!mhd.start_daemon || !mhd.stop_daemon || !mhd.create_response || !mhd.add_header ||
	    !mhd.queue_response || !mhd.destroy_response || !mhd.lookup_value ||
	    !mhd.connection_info)
		mhd.error = "libmicrohttpd.so.12 lacks a function snapvm needs";
}

struct serve_http {
	struct serve *serve;
	struct MHD_Daemon *daemon;
	int listen_fd;
	size_t max_body;
	pthread_mutex_t lock; /* guards busy and each connection's idle */
	unsigned busy;	      /* connections accepted or with a request, not yet answered */
	char address[160];
	char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/* A connection's state: idle between a completed request and the next. */
struct http_connection {
	bool idle;
};

/* One request's state between the calls of the access handler. */
struct http_request {
	char *body;
	size_t len;
	bool too_large;
	uint64_t start_ns;
	struct MHD_Connection *connection;
	char warm_fill[SNAPSHOT_NAME_MAX + 1]; /* the reply's, for serve_reply_sent() */
};

static bool http_client_gone(void *opaque)
{
	struct http_request *r = opaque;
	const union MHD_ConnectionInfo *info =
		mhd.connection_info(r->connection, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct pollfd pfd;

	if (!info)
		return false;
	/* the peer shut its side (or reset): nobody is left to read the reply */
	pfd = (struct pollfd){ .fd = info->connect_fd, .events = POLLRDHUP };
	return poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

static enum MHD_Result http_send(struct MHD_Connection *connection, struct serve_reply *reply)
{
	struct MHD_Response *response;
	enum MHD_Result ret;
	char retry[16];

	if (!reply->status)
		return MHD_NO; /* the client left: close the connection */
	response = mhd.create_response(reply->body ? strlen(reply->body) : 0, reply->body,
				       MHD_RESPMEM_MUST_COPY);
	if (!response)
		return MHD_NO;
	mhd.add_header(response, "Content-Type",
		       reply->content_type ? reply->content_type : "application/json");
	if (reply->retry_after) {
		snprintf(retry, sizeof(retry), "%u", reply->retry_after);
		mhd.add_header(response, "Retry-After", retry);
	}
	if (reply->allow[0])
		mhd.add_header(response, "Allow", reply->allow);
	ret = mhd.queue_response(connection, (unsigned)reply->status, response);
	mhd.destroy_response(response);
	return ret;
}

/* Counts connection busy (a request has begun) or idle again (its request completed). */
static void http_connection_busy(struct serve_http *http, struct MHD_Connection *connection,
				 bool busy)
{
	const union MHD_ConnectionInfo *info =
		mhd.connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct http_connection *c = info ? info->socket_context : NULL;

	if (!c)
		return;
	pthread_mutex_lock(&http->lock);
	if (c->idle == busy) {
		c->idle = !busy;
		if (busy)
			http->busy++;
		else
			http->busy--;
	}
	pthread_mutex_unlock(&http->lock);
}

static void http_on_connection(void *cls, struct MHD_Connection *connection, void **context,
			       enum MHD_ConnectionNotificationCode code)
{
	struct serve_http *http = cls;
	struct http_connection *c = *context;

	(void)connection;
	pthread_mutex_lock(&http->lock);
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		c = calloc(1, sizeof(*c)); /* busy: a request is on its way */
		if (c)
			http->busy++;
		*context = c;
	} else if (c) {
		if (!c->idle)
			http->busy--;
		free(c);
		*context = NULL;
	}
	pthread_mutex_unlock(&http->lock);
}

static enum MHD_Result http_send_error(struct serve_http *http, struct MHD_Connection *connection,
				       int status, const char *code, const char *message)
{
	struct serve_reply reply = { 0 };
	enum MHD_Result ret;

	serve_reply_error(&reply, status, code, "%s", message);
	serve_metrics_http(&http->serve->metrics, status);
	ret = http_send(connection, &reply);
	serve_reply_free(&reply);
	return ret;
}

/* The first call, with the headers: a body announced too large is refused unread. */
static enum MHD_Result http_begin(struct serve_http *http, struct MHD_Connection *connection,
				  void **state)
{
	const char *length = mhd.lookup_value(connection, MHD_HEADER_KIND, "Content-Length");
	const char *expect = mhd.lookup_value(connection, MHD_HEADER_KIND, "Expect");
	struct http_request *r = calloc(1, sizeof(*r));
	uint64_t bytes;
	char message[128];

	if (!r)
		return MHD_NO;
	http_connection_busy(http, connection, true);
	r->start_ns = time_now_ns();
	r->connection = connection;
	*state = r;
	if (length && (parse_u64(length, &bytes) || bytes > http->max_body)) {
		r->too_large = true;
		/*
		 * A client that waits for "100 Continue" is refused before it sends
		 * anything. One that is already sending has its body read and
		 * dropped first, as a chunked one has (http_body_add): closing with
		 * its bytes unread resets the connection, and the reset can reach
		 * the client before the 413 does.
		 */
		if (!expect || strcasecmp(expect, "100-continue"))
			return MHD_YES;
		snprintf(message, sizeof(message), "the body is larger than %zu bytes",
			 http->max_body);
		return http_send_error(http, connection, 413, "body_too_large", message);
	}
	return MHD_YES;
}

/* A piece of the body; past the cap (chunked bodies) the rest is read and dropped. */
static void http_body_add(struct serve_http *http, struct http_request *r, const char *data,
			  size_t size)
{
	char *bigger;

	if (r->too_large)
		return;
	if (r->len + size > http->max_body || !(bigger = realloc(r->body, r->len + size + 1))) {
		r->too_large = true;
		return;
	}
	r->body = bigger;
	memcpy(r->body + r->len, data, size);
	r->len += size;
	r->body[r->len] = '\0';
}

static enum MHD_Result http_on_request(void *cls, struct MHD_Connection *connection,
				       const char *url, const char *method, const char *version,
				       const char *upload_data, size_t *upload_data_size,
				       void **state)
{
	struct serve_http *http = cls;
	struct http_request *r = *state;
	struct serve_request request;
	struct serve_reply reply;
	enum MHD_Result ret;
	char message[128];

	(void)version;
	/* each connection has a thread of its own: filter it at its first request */
	if (sandbox_thread_current() != SANDBOX_HTTP && sandbox_thread_enter(SANDBOX_HTTP))
		return MHD_NO;
	if (!r)
		return http_begin(http, connection, state);
	if (*upload_data_size) {
		http_body_add(http, r, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (r->too_large) {
		snprintf(message, sizeof(message), "the body is larger than %zu bytes",
			 http->max_body);
		return http_send_error(http, connection, 413, "body_too_large", message);
	}
	request = (struct serve_request){ .method = method,
					  .path = url,
					  .body = r->body,
					  .body_len = r->len,
					  .start_ns = r->start_ns,
					  .client_gone = http_client_gone,
					  .opaque = r };
	serve_handle(http->serve, &request, &reply);
	if (!reply.status)
		serve_count_client_gone(http->serve);
	log_info("serve: %s %s -> %d", method, url, reply.status);
	memcpy(r->warm_fill, reply.warm_fill, sizeof(r->warm_fill));
	ret = http_send(connection, &reply);
	serve_reply_free(&reply);
	return ret;
}

static void http_on_completed(void *cls, struct MHD_Connection *connection, void **state,
			      enum MHD_RequestTerminationCode code)
{
	struct serve_http *http = cls;
	struct http_request *r = *state;

	(void)code;
	http_connection_busy(http, connection, false);
	if (r) {
		serve_reply_sent(http->serve, r->warm_fill);
		free(r->body);
		free(r);
	}
	*state = NULL;
}

static void http_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];

	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	line[strcspn(line, "\n")] = '\0';
	log_debug("libmicrohttpd: %s", line);
}

/* A Unix socket only its owner may use (the API can boot any kernel the daemon can read). */
static int listen_unix(struct serve_http *http, const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t mask;
	int fd, probe, ret;

	if (path_format(addr.sun_path, sizeof(addr.sun_path), "%s", path)) {
		log_error("--listen: socket path longer than %zu bytes", sizeof(addr.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	if (!lstat(path, &st)) {
		if (!S_ISSOCK(st.st_mode)) {
			log_error("--listen: %s exists and is not a socket", path);
			return -EEXIST;
		}
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		ret = probe >= 0 && !connect(probe, (struct sockaddr *)&addr, sizeof(addr));
		if (probe >= 0)
			close(probe);
		if (ret) {
			log_error("--listen: a server already answers on %s", path);
			return -EADDRINUSE;
		}
		unlink(path); /* left by a daemon that died */
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		log_error("cannot listen on %s: %s", path, strerror(-ret));
		return ret;
	}
	mask = umask(0077);
	ret = bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 1024) < 0 ? -errno
											   : 0;
	umask(mask);
	if (ret) {
		log_error("cannot listen on %s: %s", path, strerror(-ret));
		close(fd);
		return ret;
	}
	snprintf(http->unix_path, sizeof(http->unix_path), "%s", path);
	snprintf(http->address, sizeof(http->address), "unix:%s", path);
	http->listen_fd = fd;
	return 0;
}

/* tcp:127.0.0.1:PORT only: the API has no authentication, so it stays on this host. */
static int listen_tcp(struct serve_http *http, const char *spec)
{
	struct sockaddr_in addr = { .sin_family = AF_INET,
				    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(addr);
	const char *port = strrchr(spec, ':');
	uint64_t number;
	int fd, one = 1, ret;

	if (!port || (strncmp(spec, "127.0.0.1:", 10) && strncmp(spec, "localhost:", 10)) ||
	    port - spec != 9 || parse_u64(port + 1, &number) || number > 65535) {
		return log_invalid(
			"--listen: 'tcp:%s' is not tcp:127.0.0.1:PORT (only the loopback address)",
			spec);
	}
	addr.sin_port = htons((uint16_t)number);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		log_error("cannot listen on 127.0.0.1:%llu: %s", (unsigned long long)number,
			  strerror(-ret));
		return ret;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 1024) < 0 ||
	    getsockname(fd, (struct sockaddr *)&addr, &len) < 0) {
		ret = -errno;
		log_error("cannot listen on 127.0.0.1:%llu: %s", (unsigned long long)number,
			  strerror(errno));
		close(fd);
		return ret;
	}
	snprintf(http->address, sizeof(http->address), "tcp:127.0.0.1:%u", ntohs(addr.sin_port));
	http->listen_fd = fd;
	return 0;
}

static int http_listen(struct serve_http *http, const char *listen)
{
	if (!strncmp(listen, "unix:", 5) && listen[5])
		return listen_unix(http, listen + 5);
	if (!strncmp(listen, "tcp:", 4))
		return listen_tcp(http, listen + 4);
	return log_invalid("--listen: '%s' is not unix:PATH or tcp:127.0.0.1:PORT", listen);
}

int serve_http_start(struct serve *serve, const char *listen, size_t max_body,
		     struct serve_http **out)
{
	struct serve_http *http;
	int ret;

	pthread_once(&mhd_once, mhd_load);
	if (mhd.error) {
		log_error("%s", mhd.error);
		return -ENOSYS;
	}
	http = calloc(1, sizeof(*http));
	if (!http)
		return -ENOMEM;
	*http = (struct serve_http){ .serve = serve, .listen_fd = -1, .max_body = max_body };
	ret = http_listen(http, listen);
	if (ret) {
		free(http);
		return ret;
	}
	pthread_mutex_init(&http->lock, NULL); /* from here on, serve_http_stop() frees http */
	http->daemon =
		mhd.start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD |
					 MHD_USE_ITC | MHD_USE_ERROR_LOG,
				 0, NULL, NULL, http_on_request, http, MHD_OPTION_LISTEN_SOCKET,
				 http->listen_fd, MHD_OPTION_NOTIFY_COMPLETED, http_on_completed,
				 http, MHD_OPTION_NOTIFY_CONNECTION, http_on_connection, http,
				 MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_CONNECTIONS_MAX,
				 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_IDLE_TIMEOUT_S,
				 MHD_OPTION_EXTERNAL_LOGGER, http_log, NULL, MHD_OPTION_END);
	if (!http->daemon) {
		log_error("libmicrohttpd could not start on %s", http->address);
		serve_http_stop(http);
		return -EIO;
	}
	*out = http;
	return 0;
}

const char *serve_http_address(const struct serve_http *http)
{
	return http->address;
}

void serve_http_close_door(struct serve_http *http)
{
	if (http && http->unix_path[0] && unlink(http->unix_path) == 0)
		http->unix_path[0] = '\0';
}

/* A connection waits in the listening socket's queue, not yet accepted. */
static bool http_pending(const struct serve_http *http)
{
	struct pollfd pfd = { .fd = http->listen_fd, .events = POLLIN };

	return poll(&pfd, 1, 0) == 1;
}

void serve_http_drain(struct serve_http *http)
{
	uint64_t start = time_now_ns(), quiet_since = start;

	if (!http || !http->daemon)
		return;
	while (time_now_ns() - start < (uint64_t)HTTP_DRAIN_MAX_MS * 1000000ULL) {
		uint64_t now = time_now_ns();
		bool busy;

		pthread_mutex_lock(&http->lock);
		busy = http->busy > 0;
		pthread_mutex_unlock(&http->lock);
		if (busy || http_pending(http))
			quiet_since = now;
		else if (now - quiet_since >= (uint64_t)HTTP_DRAIN_QUIET_MS * 1000000ULL)
			return;
		usleep(2000);
	}
	log_warn("serve: connections still busy after %d ms: closed", HTTP_DRAIN_MAX_MS);
}

void serve_http_stop(struct serve_http *http)
{
	if (!http)
		return;
	if (http->daemon)
		mhd.stop_daemon(http->daemon); /* closes the listening socket too */
	else if (http->listen_fd >= 0)
		close(http->listen_fd);
	if (http->unix_path[0])
		unlink(http->unix_path);
	pthread_mutex_destroy(&http->lock);
	free(http);
}
