/*
 * Clones that stay up (POST /snapshots/NAME/clones, /clones/ID...) and what
 * they share with booted VMs (/vms/ID...): listing, requests on the
 * console, snapshots and stops through the child's control socket.
 */
#include "serve/internal.h"
#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define START_TIMEOUT_MS    10000  /* a clone's restore, unless timeout_ms says otherwise */
#define CONTROL_TIMEOUT_MS  2000   /* a status request on a control socket */
#define SNAPSHOT_TIMEOUT_MS 300000 /* writing a snapshot of a large VM takes a while */

static const char *noun(enum serve_kind kind)
{
	return kind == SERVE_VM ? "VM" : "clone";
}

/* "ok WORD k=v k=v ..." (a control reply) as a JSON object of numbers. */
static json_t *control_figures(const char *text)
{
	json_t *o = json_object();
	char copy[1024], *save = NULL;

	snprintf(copy, sizeof(copy), "%s", text);
	for (char *tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		char *eq = strchr(tok, '='), *end;
		double value;

		if (!eq)
			continue;
		*eq = '\0';
		value = strtod(eq + 1, &end);
		if (*end)
			continue;
		json_object_set_new(o, tok,
				    strchr(eq + 1, '.') ? json_real(value)
							: json_integer((json_int_t)value));
	}
	return o;
}

/* Asks the child's control socket for its status line ("ok ..."); false: no such answer. */
static bool child_status_line(const struct serve_child *c, char *status, size_t size)
{
	return !control_request(c->api_sock, "status\n", status, size, CONTROL_TIMEOUT_MS) &&
	       !strncmp(status, "ok ", 3);
}

/* The child's paging and memory figures (its control socket's status); NULL: no answer. */
static json_t *child_status(const struct serve_child *c)
{
	char status[512];

	return child_status_line(c, status, sizeof(status)) ? control_figures(status) : NULL;
}

/* Waits until the child's control socket answers: the clone restored and its VM runs. */
static enum serve_wait wait_control(struct serve *serve, struct serve_child *c,
				    uint64_t deadline_ns, const struct serve_request *request)
{
	char reply[256];

	for (;;) {
		struct timespec ts;
		uint64_t retry = time_now_ns() + 1000000ULL;
		bool exited;

		if (child_status_line(c, reply, sizeof(reply)))
			return SERVE_WAIT_LINE;
		if (time_now_ns() >= deadline_ns)
			return SERVE_WAIT_TIMEOUT;
		if (request->client_gone && request->client_gone(request->opaque))
			return SERVE_WAIT_GONE;
		ts = (struct timespec){ .tv_sec = (time_t)(retry / 1000000000ULL),
					.tv_nsec = (long)(retry % 1000000000ULL) };
		pthread_mutex_lock(&serve->lock);
		if (!c->exited)
			pthread_cond_timedwait(&c->cond, &serve->lock, &ts);
		exited = c->exited;
		pthread_mutex_unlock(&serve->lock);
		if (exited)
			return SERVE_WAIT_EXITED;
	}
}

/* A clone or VM that did not start: say why, and forget it. Lock held. */
void serve_start_failed(struct serve *serve, struct serve_child *c, enum serve_wait how,
			uint64_t timeout_ms, struct serve_reply *reply)
{
	char why[1200];

	c->deleted = true;
	if (how == SERVE_WAIT_GONE) {
		serve_child_kill(serve, c);
		reply->status = 0;
	} else if (how == SERVE_WAIT_TIMEOUT) {
		serve_child_kill(serve, c);
		serve_reply_error(reply, 504, "timeout", "the %s did not start within %llu ms",
				  noun(c->kind), (unsigned long long)timeout_ms);
	} else if (!serve_child_usage_reply(c, reply)) {
		serve_child_describe_exit(c, why, sizeof(why));
		serve_reply_error(reply, 502, c->kind == SERVE_VM ? "vm_failed" : "clone_failed",
				  "the %s %s did not start (%s)", noun(c->kind), c->id, why);
	}
}

struct clone_args {
	const char *memory;
	uint64_t timeout_ms;
	struct serve_argv argv; /* `snapvm restore` and the body's host resources */
};

/* Reads the body; the strings in a point into it (NULL after an error reply). */
static json_t *clone_parse(const struct serve_request *request, struct clone_args *a,
			   struct serve_reply *reply)
{
	static const char *const first[] = { "memory", "timeout_ms", NULL };
	const char *fields[SERVE_FIELDS_MAX];
	json_t *body;
	int ret;

	serve_vm_fields(SERVE_VM_RESTORE, first, fields, ARRAY_SIZE(fields));
	body = serve_body_object(request, fields, reply);
	if (!body)
		return NULL;
	a->timeout_ms = START_TIMEOUT_MS;
	ret = serve_field_memory(body, &a->memory, reply);
	if (!ret)
		ret = serve_field_uint(body, "timeout_ms", 1, SERVE_MAX_TIMEOUT_MS, &a->timeout_ms,
				       reply);
	if (!ret)
		ret = serve_vm_argv(body, SERVE_VM_RESTORE, &a->argv, reply);
	if (ret) {
		json_decref(body);
		return NULL;
	}
	return body;
}

static void clone_start(struct serve *serve, const struct serve_request *request, const char *name,
			struct clone_args *a, struct serve_reply *reply)
{
	const char **argv = a->argv.argv;
	size_t n = a->argv.n;
	char id[16], sock[108];
	struct serve_child *c;
	enum serve_wait how;
	int error;

	serve_child_id(serve, SERVE_CLONE, id, sizeof(id));
	serve_child_sock(serve, id, sock, sizeof(sock));
	argv[n++] = "--store";
	argv[n++] = serve->config.store_dir;
	argv[n++] = "--api-sock";
	argv[n++] = sock;
	n += serve_memory_args(serve, a->memory, argv + n);
	argv[n++] = "--";
	argv[n++] = name;
	argv[n] = NULL;
	c = serve_child_start(serve, SERVE_CLONE, id, name, sock, (char *const *)argv, &error);
	if (!c) {
		serve_reply_error(reply, 500, "internal", "cannot start a clone: %s",
				  strerror(-error));
		return;
	}
	how = wait_control(serve, c, time_now_ns() + a->timeout_ms * 1000000ULL, request);
	pthread_mutex_lock(&serve->lock);
	if (how == SERVE_WAIT_LINE) {
		c->ready_ns = time_now_ns();
		serve_reply_json(reply, 201, serve_child_json(c));
	} else {
		serve_start_failed(serve, c, how, a->timeout_ms, reply);
	}
	pthread_mutex_unlock(&serve->lock);
	if (how == SERVE_WAIT_LINE) {
		pthread_mutex_lock(&serve->metrics.lock);
		serve->metrics.clones_started++;
		pthread_mutex_unlock(&serve->metrics.lock);
	}
	serve_child_put(serve, c);
}

void serve_clone_create(struct serve *serve, const struct serve_request *request, const char *name,
			struct serve_reply *reply)
{
	struct clone_args a = { .argv = { .argv = { serve->config.self_path, "restore" },
					  .n = 2 } };
	json_t *body;

	if (!serve_snapshot_name_ok(name, reply))
		return;
	body = clone_parse(request, &a, reply);
	if (!body)
		return;
	if (serve_snapshot_found(serve, name, reply) && !serve_slot_or_reply(serve, reply))
		clone_start(serve, request, name, &a, reply);
	json_decref(body);
}

/* ---- shared by /clones and /vms ---- */

void serve_children_list(struct serve *serve, const struct serve_request *request,
			 enum serve_kind kind, const char *id, struct serve_reply *reply)
{
	(void)request;
	(void)id;
	json_t *list = json_array();

	pthread_mutex_lock(&serve->lock);
	for (struct serve_child *c = serve->children; c; c = c->next) {
		if (c->kind == kind && !c->deleted && c->spawned)
			json_array_append_new(list, serve_child_json(c));
	}
	pthread_mutex_unlock(&serve->lock);
	serve_reply_json(reply, 200, json_pack("{s:o}", kind == SERVE_VM ? "vms" : "clones", list));
}

static struct serve_child *child_or_404(struct serve *serve, enum serve_kind kind, const char *id,
					struct serve_reply *reply)
{
	struct serve_child *c = serve_child_get(serve, kind, id);

	if (!c)
		serve_reply_error(reply, 404, "not_found", "no %s '%s'", noun(kind), id);
	return c;
}

void serve_child_show(struct serve *serve, const struct serve_request *request,
		      enum serve_kind kind, const char *id, struct serve_reply *reply)
{
	(void)request;
	struct serve_child *c = child_or_404(serve, kind, id, reply);
	json_t *o, *memory;
	bool running;

	if (!c)
		return;
	pthread_mutex_lock(&serve->lock);
	o = serve_child_json(c);
	running = c->ready_ns && !c->exited;
	pthread_mutex_unlock(&serve->lock);
	/* the paging figures and the resident memory, from the child itself */
	if (running && (memory = child_status(c)))
		json_object_set_new(o, "memory", memory);
	serve_child_put(serve, c);
	serve_reply_json(reply, 200, o);
}

/* Adds what a clone's pager did to the metrics, before it goes. */
static void count_paging(struct serve *serve, struct serve_child *c)
{
	json_t *f = child_status(c);

	if (!f)
		return;
	serve_metrics_paging(&serve->metrics, json_integer_value(json_object_get(f, "faults")),
			     json_integer_value(json_object_get(f, "pages_faulted")),
			     json_integer_value(json_object_get(f, "pages_prefetched")),
			     json_integer_value(json_object_get(f, "bytes_read")));
	json_decref(f);
}

void serve_child_delete(struct serve *serve, const struct serve_request *request,
			enum serve_kind kind, const char *id, struct serve_reply *reply)
{
	(void)request;
	struct serve_child *c = child_or_404(serve, kind, id, reply);
	char answer[64];
	bool asked;
	json_t *o;

	if (!c)
		return;
	if (c->kind == SERVE_CLONE)
		count_paging(serve, c);
	/* "stop" on its control socket ends it with status 0; SIGTERM if it does not answer */
	asked = !control_request(c->api_sock, "stop\n", answer, sizeof(answer),
				 CONTROL_TIMEOUT_MS) &&
		!strncmp(answer, "ok", 2);
	pthread_mutex_lock(&serve->lock);
	serve_child_stop(serve, c, !asked);
	/* the supervisor SIGKILLs it after the grace time: this wait ends */
	while (!c->exited)
		pthread_cond_wait(&c->cond, &serve->lock);
	c->deleted = true;
	o = serve_child_json(c);
	json_object_set_new(o, "deleted", json_true());
	pthread_mutex_unlock(&serve->lock);
	serve_child_put(serve, c);
	serve_reply_json(reply, 200, o);
}

/* Lock held. false (after an error reply) unless the child is up and takes requests. */
static bool child_running(struct serve_child *c, struct serve_reply *reply)
{
	char why[1200];

	if (c->exited) {
		serve_child_describe_exit(c, why, sizeof(why));
		serve_reply_error(reply, 409, "not_running", "%s %s has exited (%s)", noun(c->kind),
				  c->id, why);
	} else if (c->stop_sent) {
		serve_reply_error(reply, 409, "not_running", "%s %s is stopping", noun(c->kind),
				  c->id);
	}
	return !c->exited && !c->stop_sent;
}

/* Sends the line and waits for the reply line. Lock held. */
static void child_exchange(struct serve *serve, const struct serve_request *request,
			   struct serve_child *c, const char *line, uint64_t timeout_ms,
			   struct serve_reply *reply)
{
	uint64_t start = time_now_ns();
	char out[SERVE_LINE_MAX], why[1200];
	enum serve_wait how;

	serve_child_drop_lines(c); /* what it printed before is no reply to this */
	if (write_all(c->in_fd, line, strlen(line)) || write_all(c->in_fd, "\n", 1)) {
		serve_reply_error(reply, 502, "not_running", "cannot write to %s %s", noun(c->kind),
				  c->id);
		return;
	}
	c->requests++;
	how = serve_child_wait_line(serve, c, start + timeout_ms * 1000000ULL, request, out,
				    sizeof(out));
	if (how == SERVE_WAIT_LINE) {
		serve_text_sanitize(out);
		serve_reply_json(reply, 200,
				 json_pack("{s:s, s:o, s:s}", "reply", out, "reply_ms",
					   serve_json_ms(time_now_ns() - start), "id", c->id));
	} else if (how == SERVE_WAIT_EXITED) {
		serve_child_describe_exit(c, why, sizeof(why));
		serve_reply_error(reply, 502, "clone_failed", "%s %s exited without replying (%s)",
				  noun(c->kind), c->id, why);
	} else {
		/* its console is in an unknown state now: a late reply would answer the next */
		serve_child_kill(serve, c);
		if (how == SERVE_WAIT_GONE)
			reply->status = 0;
		else
			serve_reply_error(reply, 504, "timeout",
					  "no reply from %s %s within %llu ms; it was stopped",
					  noun(c->kind), c->id, (unsigned long long)timeout_ms);
	}
}

void serve_child_request(struct serve *serve, const struct serve_request *request,
			 enum serve_kind kind, const char *id, struct serve_reply *reply)
{
	static const char *const fields[] = { "request", "timeout_ms", NULL };
	json_t *body = serve_body_object(request, fields, reply);
	uint64_t timeout_ms = SERVE_DEFAULT_TIMEOUT_MS;
	const char *line = NULL;
	struct serve_child *c;

	if (!body)
		return;
	if (serve_field_string(body, "request", &line, reply) ||
	    serve_request_line_check(line, reply) ||
	    serve_field_uint(body, "timeout_ms", 1, SERVE_MAX_TIMEOUT_MS, &timeout_ms, reply) ||
	    !(c = child_or_404(serve, kind, id, reply))) {
		json_decref(body);
		return;
	}
	pthread_mutex_lock(&c->request_lock); /* one request at a time on a console */
	pthread_mutex_lock(&serve->lock);
	if (child_running(c, reply))
		child_exchange(serve, request, c, line, timeout_ms, reply);
	pthread_mutex_unlock(&serve->lock);
	pthread_mutex_unlock(&c->request_lock);
	serve_child_put(serve, c);
	json_decref(body);
}

/* Sends "snapshot NAME [resume]" to the child's control socket. */
static void snapshot_take(struct serve_child *c, const char *name, bool resume,
			  struct serve_reply *reply)
{
	char line[128], answer[1024];
	json_t *o;
	int ret;

	snprintf(line, sizeof(line), "snapshot %s%s\n", name, resume ? " resume" : "");
	ret = control_request(c->api_sock, line, answer, sizeof(answer), SNAPSHOT_TIMEOUT_MS);
	if (ret) {
		serve_reply_error(reply, 502, "snapshot_failed", "cannot reach %s %s: %s",
				  noun(c->kind), c->id, strerror(-ret));
	} else if (strncmp(answer, "ok snapshot ", 12)) {
		serve_reply_error(reply, 500, "snapshot_failed", "%s",
				  strncmp(answer, "error ", 6) ? answer : answer + 6);
	} else {
		o = control_figures(answer);
		json_object_set_new(o, "name", json_string(name));
		json_object_set_new(o, "id", json_string(c->id));
		json_object_set_new(o, "resumed", json_boolean(resume));
		serve_reply_json(reply, 201, o);
	}
}

void serve_child_snapshot(struct serve *serve, const struct serve_request *request,
			  enum serve_kind kind, const char *id, struct serve_reply *reply)
{
	static const char *const fields[] = { "name", "resume", NULL };
	json_t *body = serve_body_object(request, fields, reply);
	const char *name = NULL;
	bool resume = true, running;
	struct serve_child *c = NULL;

	if (!body)
		return;
	if (serve_field_string(body, "name", &name, reply) ||
	    serve_field_bool(body, "resume", &resume, reply))
		goto out;
	if (!name) {
		serve_reply_error(reply, 400, "bad_name", "'name' is required");
		goto out;
	}
	if (!serve_snapshot_name_ok(name, reply))
		goto out;
	if (serve_snapshot_exists(serve, name)) {
		serve_reply_error(reply, 409, "snapshot_exists", "a snapshot '%s' exists", name);
		goto out;
	}
	c = child_or_404(serve, kind, id, reply);
	if (!c)
		goto out;
	pthread_mutex_lock(&c->request_lock); /* not in the middle of a request */
	pthread_mutex_lock(&serve->lock);
	running = child_running(c, reply);
	pthread_mutex_unlock(&serve->lock);
	if (running)
		snapshot_take(c, name, resume, reply);
	pthread_mutex_unlock(&c->request_lock);
	serve_child_put(serve, c);
out:
	json_decref(body);
}
