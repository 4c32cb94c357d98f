/*
 * POST /vms: boot a kernel in a `snapvm run` child with the run options,
 * given as JSON fields named after them ({"kernel": ..., "mem": "256M",
 * "disk": ["a.img,ro"]}). The child checks them as `snapvm run` does; its
 * one-line complaint becomes the 400 reply. The VM counts as started when
 * the guest prints READY on its console.
 */
#include "serve/internal.h"
#include "common/common.h"

#include <stdio.h>
#include <string.h>

#define ARGV_MAX 80

enum field_type { FIELD_STRING, FIELD_NUMBER, FIELD_BOOL, FIELD_LIST };

static const struct vm_field {
	const char *name; /* in the JSON body */
	const char *option;
	enum field_type type;
} vm_fields[] = {
	{ "kernel", "--kernel", FIELD_STRING },	  { "initrd", "--initrd", FIELD_STRING },
	{ "cmdline", "--cmdline", FIELD_STRING }, { "mem", "--mem", FIELD_NUMBER },
	{ "cpus", "--cpus", FIELD_NUMBER },	  { "boot", "--boot", FIELD_STRING },
	{ "disk", "--disk", FIELD_LIST },	  { "vsock", "--vsock", FIELD_STRING },
	{ "rng", "--rng", FIELD_BOOL },		  { "net", "--net", FIELD_LIST },
	{ "netns", "--netns", FIELD_STRING },	  { "no_legacy", "--no-legacy", FIELD_BOOL },
};

struct vm_argv {
	const char *argv[ARGV_MAX];
	size_t n;
	char numbers[4][24]; /* integers given as JSON numbers, as text */
	size_t numbers_used;
};

static int add_value(struct vm_argv *a, const struct vm_field *f, json_t *v,
		     struct serve_reply *reply)
{
	if (json_is_string(v) && f->type != FIELD_BOOL) {
		a->argv[a->n++] = f->option;
		a->argv[a->n++] = json_string_value(v);
	} else if (json_is_integer(v) && json_integer_value(v) >= 0 && f->type == FIELD_NUMBER &&
		   a->numbers_used < ARRAY_SIZE(a->numbers)) {
		char *text = a->numbers[a->numbers_used++];

		snprintf(text, sizeof(a->numbers[0]), "%lld", (long long)json_integer_value(v));
		a->argv[a->n++] = f->option;
		a->argv[a->n++] = text;
	} else if (json_is_boolean(v) && f->type == FIELD_BOOL) {
		if (json_is_true(v))
			a->argv[a->n++] = f->option;
	} else {
		serve_reply_error(reply, 400, "bad_field", "'%s' must be %s", f->name,
				  f->type == FIELD_BOOL	    ? "true or false"
				  : f->type == FIELD_NUMBER ? "a number or a string"
				  : f->type == FIELD_LIST   ? "a list of strings"
							    : "a string");
		return -1;
	}
	return 0;
}

/* The body's run options as `snapvm run` arguments. 0, or -1 after a 400 reply. */
static int vm_argv_build(json_t *body, struct vm_argv *a, struct serve_reply *reply)
{
	for (size_t i = 0; i < ARRAY_SIZE(vm_fields); i++) {
		const struct vm_field *f = &vm_fields[i];
		json_t *v = json_object_get(body, f->name), *item;
		size_t k;

		if (!v)
			continue;
		if (f->type != FIELD_LIST) {
			if (add_value(a, f, v, reply))
				return -1;
			continue;
		}
		if (!json_is_array(v) || json_array_size(v) > 8) {
			serve_reply_error(reply, 400, "bad_field",
					  "'%s' must be a list of at most 8 strings", f->name);
			return -1;
		}
		json_array_foreach(v, k, item)
		{
			if (!json_is_string(item)) {
				serve_reply_error(reply, 400, "bad_field",
						  "'%s' must be a list of strings", f->name);
				return -1;
			}
			a->argv[a->n++] = f->option;
			a->argv[a->n++] = json_string_value(item);
		}
	}
	if (!json_object_get(body, "kernel")) {
		serve_reply_error(reply, 400, "bad_field", "'kernel' is required");
		return -1;
	}
	return 0;
}

/* Waits for READY on the VM's console; other lines (boot messages) are passed over. */
static enum serve_wait wait_ready(struct serve *serve, struct serve_child *c, uint64_t deadline,
				  const struct serve_request *request)
{
	char line[SERVE_LINE_MAX];
	enum serve_wait how;

	do {
		how = serve_child_wait_line(serve, c, deadline, request, line, sizeof(line));
		serve_text_sanitize(line);
	} while (how == SERVE_WAIT_LINE && strcmp(line, "READY"));
	return how;
}

static void vm_boot(struct serve *serve, const struct serve_request *request, struct vm_argv *a,
		    uint64_t timeout_ms, struct serve_reply *reply)
{
	char id[16], sock[108];
	struct serve_child *c;
	enum serve_wait how;
	int error;

	serve_child_id(serve, SERVE_VM, id, sizeof(id));
	serve_child_sock(serve, id, sock, sizeof(sock));
	a->argv[a->n++] = "--api-sock";
	a->argv[a->n++] = sock;
	a->argv[a->n++] = "--store";
	a->argv[a->n++] = serve->config.store_dir;
	a->argv[a->n] = NULL;
	c = serve_child_start(serve, SERVE_VM, id, NULL, sock, (char *const *)a->argv, &error);
	if (!c) {
		serve_reply_error(reply, 500, "internal", "cannot start a VM: %s",
				  strerror(-error));
		return;
	}
	pthread_mutex_lock(&serve->lock);
	how = wait_ready(serve, c, time_now_ns() + timeout_ms * 1000000ULL, request);
	if (how == SERVE_WAIT_LINE) {
		c->ready_ns = time_now_ns();
		serve_reply_json(reply, 201, serve_child_json(c));
	} else {
		serve_start_failed(serve, c, how, timeout_ms, reply);
	}
	pthread_mutex_unlock(&serve->lock);
	if (how == SERVE_WAIT_LINE) {
		pthread_mutex_lock(&serve->metrics.lock);
		serve->metrics.vms_started++;
		pthread_mutex_unlock(&serve->metrics.lock);
	}
	serve_child_put(serve, c);
}

void serve_vm_create(struct serve *serve, const struct serve_request *request, const char *param,
		     struct serve_reply *reply)
{
	static const char *const fields[] = { "kernel", "initrd",    "cmdline",	   "mem", "cpus",
					      "boot",	"disk",	     "vsock",	   "rng", "net",
					      "netns",	"no_legacy", "timeout_ms", NULL };
	struct vm_argv a = { .argv = { serve->config.self_path, "run" }, .n = 2 };
	uint64_t timeout_ms = SERVE_DEFAULT_TIMEOUT_MS;
	json_t *body = serve_body_object(request, fields, reply);

	(void)param;
	if (!body)
		return;
	if (!vm_argv_build(body, &a, reply) &&
	    !serve_field_uint(body, "timeout_ms", 1, SERVE_MAX_TIMEOUT_MS, &timeout_ms, reply) &&
	    !serve_slot_or_reply(serve, reply))
		vm_boot(serve, request, &a, timeout_ms, reply);
	json_decref(body);
}

void serve_vms_list(struct serve *serve, const struct serve_request *request, const char *param,
		    struct serve_reply *reply)
{
	(void)request;
	(void)param;
	serve_children_list(serve, SERVE_VM, reply);
}

void serve_vm_get(struct serve *serve, const struct serve_request *request, const char *id,
		  struct serve_reply *reply)
{
	(void)request;
	serve_child_get_reply(serve, SERVE_VM, id, reply);
}

void serve_vm_delete(struct serve *serve, const struct serve_request *request, const char *id,
		     struct serve_reply *reply)
{
	(void)request;
	serve_child_delete_reply(serve, SERVE_VM, id, reply);
}

void serve_vm_request(struct serve *serve, const struct serve_request *request, const char *id,
		      struct serve_reply *reply)
{
	serve_child_request_reply(serve, request, SERVE_VM, id, reply);
}

void serve_vm_snapshot(struct serve *serve, const struct serve_request *request, const char *id,
		       struct serve_reply *reply)
{
	serve_child_snapshot_reply(serve, request, SERVE_VM, id, reply);
}
