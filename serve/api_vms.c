/*
 * POST /vms: boot a kernel in a `snapvm run` child with the VM options that
 * have a JSON field (options/options.h: {"kernel": ..., "mem": "256M",
 * "disk": ["a.img,ro"]}). The child checks them as `snapvm run` does; its
 * one-line complaint becomes the 400 reply. The VM counts as started when
 * the guest prints READY on its console.
 */
#include "serve/internal.h"
#include "common/common.h"

#include <string.h>

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

static void vm_boot(struct serve *serve, const struct serve_request *request, struct serve_argv *a,
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
	static const char *const first[] = { "timeout_ms", NULL };
	struct serve_argv a = { .argv = { serve->config.self_path, "run" }, .n = 2 };
	uint64_t timeout_ms = SERVE_DEFAULT_TIMEOUT_MS;
	const char *fields[SERVE_FIELDS_MAX];
	json_t *body;

	(void)param;
	serve_vm_fields(SERVE_VM_RUN, first, fields, ARRAY_SIZE(fields));
	body = serve_body_object(request, fields, reply);
	if (!body)
		return;
	if (serve_vm_argv(body, SERVE_VM_RUN, &a, reply))
		goto out;
	if (!json_object_get(body, "kernel")) {
		serve_reply_error(reply, 400, "bad_field", "'kernel' is required");
		goto out;
	}
	if (!serve_field_uint(body, "timeout_ms", 1, SERVE_MAX_TIMEOUT_MS, &timeout_ms, reply) &&
	    !serve_slot_or_reply(serve, reply))
		vm_boot(serve, request, &a, timeout_ms, reply);
out:
	json_decref(body);
}
