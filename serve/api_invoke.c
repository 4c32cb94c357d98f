/*
 * POST /snapshots/NAME/invoke: one request to a fresh clone. The clone is a
 * `snapvm invoke --json` child: it restores, sends the request, prints one
 * JSON line the moment the reply is complete, then tears its VM down while
 * the HTTP reply is already on its way. The slot stays taken until the
 * child has exited, so --max-clones bounds the VMs that exist.
 */
#include "serve/internal.h"
#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* Beyond the request's own timeout, for the restore and the child's own exit. */
#define INVOKE_GRACE_MS 1000

struct invoke_args {
	const char *request;
	uint64_t timeout_ms;
	const char *memory;
	struct serve_argv argv; /* `snapvm invoke` and the body's host resources */
};

/* Reads the body; the strings in a point into it (NULL after an error reply). */
static json_t *invoke_parse(const struct serve_request *request, struct invoke_args *a,
			    struct serve_reply *reply)
{
	static const char *const first[] = { "request", "timeout_ms", "memory", NULL };
	const char *fields[SERVE_FIELDS_MAX];
	json_t *body;
	int ret;

	serve_vm_fields(SERVE_VM_RESTORE, first, fields, ARRAY_SIZE(fields));
	body = serve_body_object(request, fields, reply);
	if (!body)
		return NULL;
	a->timeout_ms = SERVE_DEFAULT_TIMEOUT_MS;
	ret = serve_field_string(body, "request", &a->request, reply);
	if (!ret)
		ret = serve_request_line_check(a->request, reply);
	if (!ret)
		ret = serve_field_uint(body, "timeout_ms", 1, SERVE_MAX_TIMEOUT_MS, &a->timeout_ms,
				       reply);
	if (!ret)
		ret = serve_field_memory(body, &a->memory, reply);
	if (!ret)
		ret = serve_vm_argv(body, SERVE_VM_RESTORE, &a->argv, reply);
	if (ret) {
		json_decref(body);
		return NULL;
	}
	return body;
}

static uint64_t json_u64(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v)
							       : 0;
}

/* The child's JSON line, with the daemon's total_ms (from the request's arrival). */
static void invoke_reply(struct serve *serve, const struct serve_request *request,
			 struct serve_child *child, char *line, struct serve_reply *reply)
{
	uint64_t total_ns = time_now_ns() - request->start_ns;
	json_t *o, *restore;

	serve_text_sanitize(line);
	o = json_loads(line, 0, NULL);
	if (!json_is_object(o) || !json_is_string(json_object_get(o, "reply"))) {
		json_decref(o);
		serve_reply_error(reply, 502, "clone_failed", "the clone said '%.200s'", line);
		serve_metrics_invocation(&serve->metrics, SERVE_FAILED, 0, total_ns);
		return;
	}
	restore = json_object_get(o, "restore_ms");
	serve_metrics_invocation(
		&serve->metrics, SERVE_OK,
		json_is_number(restore) ? (uint64_t)(json_number_value(restore) * 1e6) : 0,
		total_ns);
	serve_metrics_paging(&serve->metrics, json_u64(o, "faults"), json_u64(o, "pages_faulted"),
			     json_u64(o, "pages_prefetched"), json_u64(o, "bytes_read"));
	json_object_set_new(o, "total_ms", serve_json_ms(total_ns));
	json_object_set_new(o, "clone", json_string(child->id));
	serve_reply_json(reply, 200, o);
}

/* No reply line: it timed out, crashed, or could not restore or page. Lock held. */
static void invoke_failed(struct serve *serve, const struct serve_request *request,
			  struct serve_child *child, enum serve_wait how, uint64_t timeout_ms,
			  struct serve_reply *reply)
{
	uint64_t elapsed_ms = (time_now_ns() - child->created_ns) / 1000000;
	uint64_t total_ns = time_now_ns() - request->start_ns;
	char why[1200];

	if (how == SERVE_WAIT_GONE) {
		serve_child_kill(serve, child);
		serve_metrics_invocation(&serve->metrics, SERVE_GONE, 0, 0);
		reply->status = 0; /* nobody to answer: the connection is dropped */
		return;
	}
	if (how == SERVE_WAIT_TIMEOUT ||
	    (WIFEXITED(child->wait_status) && WEXITSTATUS(child->wait_status) == EXIT_RUNTIME &&
	     elapsed_ms >= timeout_ms)) {
		serve_child_kill(serve, child);
		serve_metrics_invocation(&serve->metrics, SERVE_TIMEOUT, 0, total_ns);
		serve_reply_error(reply, 504, "timeout",
				  "no reply from %s within %llu ms; its clone was stopped",
				  child->snapshot, (unsigned long long)timeout_ms);
		return;
	}
	serve_metrics_invocation(&serve->metrics, SERVE_FAILED, 0, total_ns);
	if (serve_child_usage_reply(child, reply))
		return;
	serve_child_describe_exit(child, why, sizeof(why));
	serve_reply_error(reply, 502, "clone_failed", "the clone of %s failed (%s)",
			  child->snapshot, why);
}

static void invoke_run(struct serve *serve, const struct serve_request *request, const char *name,
		       struct invoke_args *a, struct serve_reply *reply)
{
	const char **argv = a->argv.argv;
	size_t n = a->argv.n;
	char timeout[24], line[SERVE_LINE_MAX];
	struct serve_child *child = NULL;
	enum serve_wait how;
	int error;

	/* a body with options of its own needs a process started with them: cold */
	if (a->argv.n == 2 && !a->memory)
		child = serve_warm_claim(serve, name, a->request, a->timeout_ms);
	if (child)
		goto wait;
	snprintf(timeout, sizeof(timeout), "%llu", (unsigned long long)a->timeout_ms);
	argv[n++] = "--json";
	argv[n++] = "--store";
	argv[n++] = serve->config.store_dir;
	argv[n++] = "--timeout";
	argv[n++] = timeout;
	n += serve_memory_args(serve, a->memory, argv + n);
	argv[n++] = "--"; /* a name or a request may start with '-' */
	argv[n++] = name;
	argv[n++] = a->request;
	argv[n] = NULL;
	child = serve_child_start(serve, SERVE_INVOKE, NULL, name, NULL, (char *const *)argv,
				  &error);
	if (!child) {
		serve_reply_error(reply, 500, "internal", "cannot start a clone: %s",
				  strerror(-error));
		return;
	}
wait:
	pthread_mutex_lock(&serve->lock);
	how = serve_child_wait_line(
		serve, child, request->start_ns + (a->timeout_ms + INVOKE_GRACE_MS) * 1000000ULL,
		request, line, sizeof(line));
	if (how != SERVE_WAIT_LINE)
		invoke_failed(serve, request, child, how, a->timeout_ms, reply);
	pthread_mutex_unlock(&serve->lock);
	if (how == SERVE_WAIT_LINE)
		invoke_reply(serve, request, child, line, reply);
	serve_child_put(serve, child);
}

/* 429 or 503 when no slot can be had; 0 when one was taken. */
int serve_slot_or_reply(struct serve *serve, struct serve_reply *reply)
{
	int ret = serve_slot_take(serve);

	if (ret == -EAGAIN) {
		reply->retry_after = 1;
		serve_reply_error(reply, 429, "too_many_clones",
				  "all %u clone slots are busy (--max-clones) and none was freed "
				  "within %u ms; try again later",
				  serve->config.max_clones, serve->config.queue_ms);
	} else if (ret) {
		serve_reply_error(reply, 503, "shutting_down", "snapvm serve is shutting down");
	}
	return ret;
}

void serve_invoke(struct serve *serve, const struct serve_request *request, const char *name,
		  struct serve_reply *reply)
{
	struct invoke_args a = { .argv = { .argv = { serve->config.self_path, "invoke" },
					   .n = 2 } };
	json_t *body;

	if (!serve_snapshot_name_ok(name, reply))
		return;
	body = invoke_parse(request, &a, reply);
	if (!body)
		return;
	if (serve_snapshot_found(serve, name, reply)) {
		if (!serve_slot_or_reply(serve, reply)) {
			invoke_run(serve, request, name, &a, reply);
			/* the next one of name finds one started; after this reply is sent */
			snprintf(reply->warm_fill, sizeof(reply->warm_fill), "%s", name);
		} else if (reply->status == 429)
			serve_metrics_invocation(&serve->metrics, SERVE_REJECTED, 0, 0);
	}
	json_decref(body);
}
