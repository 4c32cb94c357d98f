/*
 * serve/: `snapvm serve`, the HTTP/JSON API (docs/api.md). The daemon
 * itself never runs a VM: every clone and every booted VM is a `snapvm`
 * child process (invoke, restore or run) that it supervises, so a clone that
 * crashes takes only itself down. Routing and JSON live in serve_handle(),
 * apart from the HTTP server (http.c), so that unit tests can call it.
 */
#ifndef SNAPVM_SERVE_H
#define SNAPVM_SERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"
#include "snapshot/snapshot.h"

#define SERVE_REQUEST_MAX	 1023	 /* bytes of one request line (snapvm invoke's limit) */
#define SERVE_DEFAULT_TIMEOUT_MS 10000	 /* an invocation's, and a boot's, default timeout */
#define SERVE_MAX_TIMEOUT_MS	 3600000 /* the longest timeout_ms accepted */

struct serve_config {
	const char *store_dir; /* the store every child uses (--store) */
	const char *self_path; /* the snapvm binary the children run */
	const char *run_dir;   /* where clones' control sockets go; made and removed if NULL */
	unsigned max_clones;   /* child VMs alive at once (invocations, clones, VMs) */
	unsigned queue_ms;     /* how long a request waits for a free slot before 429 */
	size_t max_body;       /* bytes of a request body */
	enum snapshot_memory_mode memory; /* default --memory of restores */
	bool memory_set;		  /* pass --memory to children (else their default) */
	enum sandbox_mode seccomp;	  /* every child's --seccomp */
	/* --jail BASE: each clone and invocation is jailed in BASE/ID, made and removed here */
	const char *jail_base;
	const char *jail_args[16]; /* the other jail options, passed on as given */
	unsigned jail_arg_count;
	/* --warm N: invoke processes kept started ahead per snapshot invoked (0: none) */
	unsigned warm;
};

/* The daemon's state: the store, the children, the metrics. */
struct serve;

/* Opens the store and prepares the daemon; 0 or -errno (logged). */
int serve_create(const struct serve_config *config, struct serve **serve);
/* Frees everything; serve_run() must have returned (or never been called). */
void serve_destroy(struct serve *serve);
/*
 * Supervises the children on the calling thread until serve_stop(): spawns
 * them, reads their output, reaps them, kills those past their deadline.
 * With signals, SIGTERM, SIGINT and SIGHUP (blocked by the caller in every
 * thread) call serve_stop(). Returns after every child has exited.
 */
int serve_run(struct serve *serve, bool signals);
/* Starts the shutdown: no new work, running requests finish, children are stopped. */
void serve_stop(struct serve *serve);
/* True once serve_stop() was called. */
bool serve_stopping(const struct serve *serve);
/* Called by serve_run() when no new connection should come (closes the listener). */
void serve_set_on_stop(struct serve *serve, void (*fn)(void *opaque), void *opaque);
/* Blocks until no request is being handled (after serve_stop(), none starts). */
void serve_wait_idle(struct serve *serve);

struct serve_request {
	const char *method;
	const char *path; /* decoded, without the query */
	const char *body;
	size_t body_len;
	uint64_t start_ns; /* CLOCK_MONOTONIC when the request arrived */
	/* True if the client has gone (may be NULL): its clone is stopped early. */
	bool (*client_gone)(void *opaque);
	void *opaque;
};

struct serve_reply {
	int status;
	char *body; /* malloc'ed; JSON, or Prometheus text for /metrics */
	const char *content_type;
	unsigned retry_after; /* seconds for a Retry-After header, 0 for none */
	char allow[32];	      /* methods for an Allow header (405), or "" */
	/* for serve_reply_sent(): a snapshot whose warm pool to refill (--warm), or "" */
	char warm_fill[SNAPSHOT_NAME_MAX + 1];
};

/* Handles one request; reply is always filled (errors as {"error", "code"}). */
void serve_handle(struct serve *serve, const struct serve_request *request,
		  struct serve_reply *reply);
/* Fills reply with {"error": message, "code": code} and HTTP status. */
void serve_reply_error(struct serve_reply *reply, int status, const char *code, const char *fmt,
		       ...) __attribute__((format(printf, 4, 5)));
void serve_reply_free(struct serve_reply *reply);
/*
 * Once a reply is on its way (the HTTP layer calls it when the response is
 * sent, with reply->warm_fill): the work that can wait for it, which would
 * otherwise compete with it for the CPU, such as starting warm processes.
 */
void serve_reply_sent(struct serve *serve, const char *warm_fill);

/* Counts a client that left before its reply was sent (for /metrics). */
void serve_count_client_gone(struct serve *serve);

/* The HTTP server in front of serve_handle(): libmicrohttpd, loaded with dlopen(). */
struct serve_http;

/*
 * Listens on "unix:PATH" (mode 0600, a stale socket replaced) or
 * "tcp:127.0.0.1:PORT" (PORT 0: any free port) and serves HTTP/1.1 with a
 * thread per connection. 0 or -errno (logged).
 */
int serve_http_start(struct serve *serve, const char *listen, size_t max_body,
		     struct serve_http **http);
/* Where it listens, e.g. "unix:/run/snapvm.sock" or "tcp:127.0.0.1:41234". */
const char *serve_http_address(const struct serve_http *http);
/* Removes the Unix socket's name: new clients find nobody; connections made go on. */
void serve_http_close_door(struct serve_http *http);
/*
 * Waits (up to 5 s) until no connection is waiting to be accepted and every
 * accepted one has its reply: the stopping daemon answers them all 503.
 */
void serve_http_drain(struct serve_http *http);
/* Closes every connection and frees the server. */
void serve_http_stop(struct serve_http *http);

#endif
