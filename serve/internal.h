/* Private to serve/: the daemon's state, its children and its metrics. */
#ifndef SNAPVM_SERVE_INTERNAL_H
#define SNAPVM_SERVE_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <sys/types.h>
#include <sys/un.h>

#include "control/control.h"
#include "serve/serve.h"
#include "store/store.h"

#define SERVE_LINE_MAX	    4096 /* bytes kept of one output line */
#define SERVE_LINES_KEPT    16	 /* output lines a clone may have waiting; older ones are dropped */
#define SERVE_KILL_GRACE_MS 3000 /* after a stop request, SIGKILL */

enum serve_kind {
	SERVE_INVOKE, /* snapvm invoke: one request, then gone */
	SERVE_CLONE,  /* snapvm restore: stays up, takes requests */
	SERVE_VM,     /* snapvm run: a booted VM, takes requests and snapshots */
};

/* One child process: a clone or a VM, with its pipes. Fields are under serve->lock. */
struct serve_child {
	struct serve_child *next;
	char id[16]; /* "c3", "v1", "i42" */
	enum serve_kind kind;
	char snapshot[SNAPSHOT_NAME_MAX + 1]; /* the snapshot a clone came from */
	char **argv;			      /* until spawned */
	char api_sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char jail_dir[512]; /* its jail (serve --jail), removed when it has exited; or "" */
	pid_t pid;
	int pidfd, in_fd, out_fd, err_fd;
	int spawn_error; /* -errno if it could not be started */
	bool spawned, exited, deleted, stop_sent;
	bool warm;	 /* serve --warm: started ahead, waiting for a request (warm.c) */
	bool holds_slot; /* counts in serve->live: not while warm */
	int wait_status;
	uint64_t created_ns, ready_ns, exited_ns;
	uint64_t kill_at_ns; /* SIGKILL then, if not 0 */
	unsigned requests;
	/* stdout, cut into lines */
	char partial[SERVE_LINE_MAX];
	size_t partial_len;
	char *lines[SERVE_LINES_KEPT];
	unsigned line_first, line_count;
	/* the first and the last line it wrote on stderr: the cause, and what became of it */
	char err_partial[512];
	size_t err_len;
	char err_first[512], err_line[512];
	unsigned refs;		      /* handlers using it */
	pthread_cond_t cond;	      /* output, exit, spawn */
	pthread_mutex_t request_lock; /* one request at a time */
	struct serve_watch {
		struct serve_child *child;
		int fd;
	} watch[3];
};

/* A Prometheus histogram with fixed bucket bounds (seconds). */
#define SERVE_BUCKETS 14
struct serve_histogram {
	uint64_t counts[SERVE_BUCKETS + 1]; /* the last: +Inf */
	uint64_t count;
	double sum;
};

struct serve_metrics {
	pthread_mutex_t lock;
	uint64_t invocations[5]; /* by enum serve_outcome */
	uint64_t http_requests;
	uint64_t http_errors; /* 4xx and 5xx replies */
	uint64_t clients_gone;
	uint64_t clones_started, vms_started;
	uint64_t warm_hits, warm_misses, warm_started; /* serve --warm */
	uint64_t faults, pages_faulted, pages_prefetched, bytes_read;
	struct serve_histogram restore, total;
};

enum serve_outcome {
	SERVE_OK,
	SERVE_FAILED,	/* the clone crashed, or could not be restored or paged */
	SERVE_TIMEOUT,	/* no reply in time: the clone was killed */
	SERVE_REJECTED, /* 429: no free slot */
	SERVE_GONE,	/* the client left first */
};

struct serve {
	struct serve_config config;
	char store_dir[4096];
	char run_dir[108];
	bool own_run_dir;
	struct store *store;
	pthread_mutex_t lock;
	pthread_cond_t slot_cond; /* a slot was freed, or stopping */
	pthread_cond_t idle_cond; /* active reached 0 */
	struct serve_child *children;
	unsigned live;	     /* children started and not yet reaped, or being started */
	unsigned waiting;    /* requests waiting for a slot */
	unsigned active;     /* requests being handled */
	unsigned next_id[3]; /* for child ids, by kind */
	bool stopping;
	int epoll_fd;
	int wake_fd; /* eventfd: something for serve_run to do */
	void (*on_stop)(void *opaque);
	void *on_stop_opaque;
	struct serve_metrics metrics;
};

/* ---- children.c ---- */

/*
 * Waits up to config.queue_ms for a free slot and takes it. 0; -EAGAIN
 * (none in time: 429); -ESHUTDOWN (stopping: 503).
 */
int serve_slot_take(struct serve *serve);
/*
 * Makes a child of kind running argv (copied) in a slot taken by the
 * caller, hands it to serve_run() to start, and waits until it runs. id:
 * from serve_child_id(), or NULL for an invocation. Returns it with a
 * reference held, or NULL with -errno in *error.
 */
struct serve_child *serve_child_start(struct serve *serve, enum serve_kind kind, const char *id,
				      const char *snapshot, const char *api_sock,
				      char *const argv[], int *error);
/*
 * Makes a child of kind running argv (copied) and its id, jail and
 * --seccomp, without registering it: serve_child_start's first half, and
 * warm.c's. NULL with -errno in *error.
 */
struct serve_child *serve_child_prepare(struct serve *serve, enum serve_kind kind, const char *id,
					const char *snapshot, char *const argv[], int *error);
/* Takes a reference to the child with this id and kind; NULL if none. */
struct serve_child *serve_child_get(struct serve *serve, enum serve_kind kind, const char *id);
/* Drops a reference (the child is freed once it exited, unlisted and unused). */
void serve_child_put(struct serve *serve, struct serve_child *child);
/* Makes a control socket path for a new child in the run directory. */
int serve_child_sock(struct serve *serve, const char *id, char *path, size_t size);
/* Reserves the next id of a child of that kind: "i7", "c3", "v1". */
void serve_child_id(struct serve *serve, enum serve_kind kind, char *id, size_t size);

enum serve_wait {
	SERVE_WAIT_LINE,    /* a line arrived; copied out */
	SERVE_WAIT_EXITED,  /* the child exited without (more) output */
	SERVE_WAIT_TIMEOUT, /* the deadline passed */
	SERVE_WAIT_GONE,    /* the client left */
};

/*
 * Waits for the child's next stdout line until deadline_ns, watching the
 * client. Call with serve->lock held (it is released while waiting).
 */
enum serve_wait serve_child_wait_line(struct serve *serve, struct serve_child *child,
				      uint64_t deadline_ns, const struct serve_request *request,
				      char *line, size_t size);
/* Drops the output lines waiting (before a request). Lock held. */
void serve_child_drop_lines(struct serve_child *child);
/* SIGKILLs the child now (timeouts, clients gone). Lock held. */
void serve_child_kill(struct serve *serve, struct serve_child *child);
/*
 * Marks the child stopping, with SIGTERM if signal (else the caller asked
 * it through its control socket); SIGKILL follows if it lingers. Lock held.
 */
void serve_child_stop(struct serve *serve, struct serve_child *child, bool signal);
/*
 * A child that exited with EXIT_USAGE refused its options (a run's, or the
 * host resources a restore needs): its one-line complaint as a 400 reply
 * ("bad_vm_options"), and true; false for any other end. It has exited.
 */
bool serve_child_usage_reply(const struct serve_child *child, struct serve_reply *reply);
/* How it ended, for a message: "exit status 1: MESSAGE" or "killed by signal 9". */
void serve_child_describe_exit(const struct serve_child *child, char *text, size_t size);
/* The child as JSON: id, snapshot, state, pid, ... Lock held. */
json_t *serve_child_json(const struct serve_child *child);

/* Takes a slot, or fills reply with 429 (none in time) or 503 (stopping); 0 if taken. */
int serve_slot_or_reply(struct serve *serve, struct serve_reply *reply);
/* A child's stderr line without "snapvm CMD: " and "(see 'snapvm CMD --help')". */
void serve_message_clean(const char *line, char *out, size_t size);

/* ---- supervisor.c ---- */

/* Starts children waiting to be started, reads output, reaps; the loop of serve_run(). */
void serve_supervise_once(struct serve *serve, int timeout_ms);
/* Frees a child that exited (or never started) and that nothing refers to. */
void serve_child_free(struct serve_child *child);
/* Removes the child's jail directory (serve --jail), if any; it has exited. */
void serve_jail_remove(struct serve_child *child);
/* Wakes serve_run() up. */
void serve_wake(struct serve *serve);

/* ---- warm.c: serve --warm N, invoke processes started ahead per snapshot ---- */

/*
 * An idle warm process of snapshot name, for a request that holds a slot
 * (which becomes the process's), with the request line and timeout already
 * sent to it; NULL if there is none (the request goes cold). A reference is
 * held, as serve_child_start() gives.
 */
struct serve_child *serve_warm_claim(struct serve *serve, const char *name, const char *request,
				     uint64_t timeout_ms);
/* Starts warm processes of name until it has --warm of them (bounded by --max-clones). */
void serve_warm_fill(struct serve *serve, const char *name);
/* Ends the idle warm processes of name (NULL: all) through their stdin. Lock held. */
void serve_warm_discard(struct serve *serve, const char *name);
/* Counts the idle warm processes. Lock held. */
unsigned serve_warm_idle(const struct serve *serve);

/* ---- metrics.c ---- */

void serve_metrics_init(struct serve_metrics *metrics);
void serve_metrics_destroy(struct serve_metrics *metrics);
/* Counts an invocation's outcome, with its restore and total latency (ns, 0 if unknown). */
void serve_metrics_invocation(struct serve_metrics *metrics, enum serve_outcome outcome,
			      uint64_t restore_ns, uint64_t total_ns);
/* Adds a clone's paging figures (from invoke --json, or a clone's status line). */
void serve_metrics_paging(struct serve_metrics *metrics, uint64_t faults, uint64_t pages_faulted,
			  uint64_t pages_prefetched, uint64_t bytes_read);
/* Counts one HTTP reply with this status. */
void serve_metrics_http(struct serve_metrics *metrics, int status);

struct serve_gauges {
	unsigned live_invocations, live_clones, live_vms;
	unsigned max_clones, waiting;
	unsigned warm_idle; /* warm processes waiting for a request */
	bool store_ok;
	struct store_usage store;
};

/* Renders every metric in the Prometheus text format (version 0.0.4); malloc'ed. */
char *serve_metrics_render(struct serve_metrics *metrics, const struct serve_gauges *gauges);

/* ---- routes.c: helpers for the handlers ---- */

/* The request body as a JSON object (an empty body is {}); NULL after a 400 reply. */
json_t *serve_body_object(const struct serve_request *request, const char *const *fields,
			  struct serve_reply *reply);
/* A string field: *value stays as it was if absent. 0, or -1 after a 400 reply. */
int serve_field_string(json_t *body, const char *field, const char **value,
		       struct serve_reply *reply);
/* The "memory" field (a --memory mode), checked; 0, or -1 after a 400 reply. */
int serve_field_memory(json_t *body, const char **memory, struct serve_reply *reply);
/*
 * Puts "--memory MODE" for a restoring child into argv: memory (the
 * request's), else serve's --memory if given. Returns the entries added (0, 2).
 */
size_t serve_memory_args(const struct serve *serve, const char *memory, const char **argv);
/* An integer field in [min, max]; 0, or -1 after a 400 reply. */
int serve_field_uint(json_t *body, const char *field, uint64_t min, uint64_t max, uint64_t *value,
		     struct serve_reply *reply);
/* A boolean field; 0, or -1 after a 400 reply. */
int serve_field_bool(json_t *body, const char *field, bool *value, struct serve_reply *reply);
/* A request line: one line of at most SERVE_REQUEST_MAX bytes. 0, or -1 after a 400 reply. */
int serve_request_line_check(const char *text, struct serve_reply *reply);
/* Sets reply to status with the JSON value (stolen) as its body. */
void serve_reply_json(struct serve_reply *reply, int status, json_t *value);
/* Nanoseconds as a JSON number of milliseconds, rounded to microseconds. */
json_t *serve_json_ms(uint64_t ns);
/* Replaces bytes that are not UTF-8 by '?' and drops a trailing '\r', in place. */
void serve_text_sanitize(char *text);

/* ---- vm_argv.c: VM options (options/options.h) from a body to a child's arguments ---- */

#define SERVE_ARGV_MAX	 80 /* a child's arguments, with every VM option given */
#define SERVE_FIELDS_MAX 32 /* the fields of a body with VM options, and NULL */

/* A child's arguments as they are built; the strings are the body's, or numbers. */
struct serve_argv {
	const char *argv[SERVE_ARGV_MAX];
	size_t n;
	char numbers[4][24]; /* integers given as JSON numbers, as text */
	size_t numbers_used;
};

/* Which VM options a body takes. */
enum serve_vm_options {
	SERVE_VM_RUN,	  /* every one with a JSON field: POST /vms */
	SERVE_VM_RESTORE, /* the host resources a snapshot does not keep: clones, invoke */
};

/* The fields a body may hold: first's (NULL-terminated), then those options'; NULL-terminated. */
void serve_vm_fields(enum serve_vm_options which, const char *const *first, const char **fields,
		     size_t size);
/* Appends the body's values of those options as flags to a. 0, or -1 after a 400 reply. */
int serve_vm_argv(json_t *body, enum serve_vm_options which, struct serve_argv *a,
		  struct serve_reply *reply);

/* ---- api_snapshots.c, api_clones.c: one handler per route ---- */

typedef void serve_handler(struct serve *serve, const struct serve_request *request,
			   const char *param, struct serve_reply *reply);

serve_handler serve_snapshots_list, serve_snapshot_get, serve_snapshot_delete, serve_metrics_get;
serve_handler serve_invoke, serve_clone_create, serve_vm_create;

/*
 * The routes /clones... and /vms... share their handlers (api_clones.c):
 * the route gives the kind of child, and id is the "*" segment (NULL for
 * the list).
 */
typedef void serve_child_handler(struct serve *serve, const struct serve_request *request,
				 enum serve_kind kind, const char *id, struct serve_reply *reply);

serve_child_handler serve_children_list, serve_child_show, serve_child_delete, serve_child_request,
	serve_child_snapshot;
/* A clone or VM that did not start: the reply says why, and it is forgotten. Lock held. */
void serve_start_failed(struct serve *serve, struct serve_child *child, enum serve_wait how,
			uint64_t timeout_ms, struct serve_reply *reply);

/* True if the store holds a snapshot of that name. */
bool serve_snapshot_exists(struct serve *serve, const char *name);
/* A snapshot name from a path, checked before it reaches the store; else a 400 reply. */
bool serve_snapshot_name_ok(const char *name, struct serve_reply *reply);
/* serve_snapshot_exists(), or a 404 reply. */
bool serve_snapshot_found(struct serve *serve, const char *name, struct serve_reply *reply);

#endif
