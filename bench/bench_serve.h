/* bench serve's parts shared between its two files (private to bench/). */
#ifndef SNAPVM_BENCH_SERVE_H
#define SNAPVM_BENCH_SERVE_H

#include <stdbool.h>
#include <stddef.h>

/* bench serve --jail-cost: its options. */
struct serve_jail_options {
	bool on;
	unsigned warm;	     /* the warm daemons' --warm */
	unsigned pause_ms;   /* after each reply */
	const char *heap;    /* the test guest's heap=, or NULL */
	const char *request; /* the request line */
};

/* Connects to a Unix socket; the fd, or -errno. */
int bench_unix_connect(const char *path);
/*
 * One HTTP/1.1 exchange on a keep-alive connection; the body (JSON) goes to
 * body. Returns the status, or -errno.
 */
int bench_http(int fd, const char *method, const char *path, const char *json, char *body,
	       size_t size);
struct child;
/*
 * Snapshots the test guest (256M, heap= heap, "0" when NULL) at READY as
 * "fn" in store, then invokes it once with request, which records its
 * working set; its first line goes to reply. 0, or -1 (the children said
 * why on stderr).
 */
int bench_serve_store(const char *guest, const char *heap, const char *store, const char *request,
		      char *reply, size_t size);
/* Starts snapvm serve (argv) and waits until it listens; 0, or -1 with it killed. */
int bench_serve_spawn(char *const argv[], struct child *daemon);
/* The jail's cost through snapvm serve, cold and warm, side by side (runs per column). */
int bench_serve_jail_cost(const struct serve_jail_options *o, const char *guest, unsigned runs,
			  const char *seccomp, bool json);

#endif
