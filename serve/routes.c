/*
 * Routing: the path is cut into segments and matched against a table of
 * {method, pattern} where "*" stands for one segment (a snapshot name or a
 * clone id), handed to the handler. Also the helpers every handler uses to
 * read a JSON body and to reply.
 */
#include "serve/internal.h"
#include "common/common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEGMENTS_MAX 4

struct route {
	const char *method;
	const char *pattern; /* segments; "*" is the parameter */
	serve_handler *handler;
	serve_child_handler *child; /* instead of handler: for the children of one kind */
	enum serve_kind kind;
};

static const struct route routes[] = {
	{ "GET", "snapshots", .handler = serve_snapshots_list },
	{ "GET", "snapshots/*", .handler = serve_snapshot_get },
	{ "DELETE", "snapshots/*", .handler = serve_snapshot_delete },
	{ "POST", "snapshots/*/invoke", .handler = serve_invoke },
	{ "POST", "snapshots/*/clones", .handler = serve_clone_create },
	{ "GET", "clones", .child = serve_children_list, .kind = SERVE_CLONE },
	{ "GET", "clones/*", .child = serve_child_show, .kind = SERVE_CLONE },
	{ "DELETE", "clones/*", .child = serve_child_delete, .kind = SERVE_CLONE },
	{ "POST", "clones/*/request", .child = serve_child_request, .kind = SERVE_CLONE },
	{ "PUT", "clones/*/snapshot", .child = serve_child_snapshot, .kind = SERVE_CLONE },
	{ "GET", "vms", .child = serve_children_list, .kind = SERVE_VM },
	{ "POST", "vms", .handler = serve_vm_create },
	{ "GET", "vms/*", .child = serve_child_show, .kind = SERVE_VM },
	{ "DELETE", "vms/*", .child = serve_child_delete, .kind = SERVE_VM },
	{ "POST", "vms/*/request", .child = serve_child_request, .kind = SERVE_VM },
	{ "PUT", "vms/*/snapshot", .child = serve_child_snapshot, .kind = SERVE_VM },
	{ "GET", "metrics", .handler = serve_metrics_get },
};

void serve_reply_json(struct serve_reply *reply, int status, json_t *value)
{
	/* 15 digits: a millisecond figure rounded to microseconds prints as 4.295, not 4.29499...
	 */
	char *text =
		value ? json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15))
		      : NULL;
	size_t len = text ? strlen(text) : 0;

	json_decref(value);
	free(reply->body);
	reply->body = text ? realloc(text, len + 2) : NULL;
	if (!reply->body) {
		free(text);
		reply->status = 500;
		reply->body = strdup("{\"error\":\"out of memory\",\"code\":\"internal\"}\n");
		reply->content_type = "application/json";
		return;
	}
	memcpy(reply->body + len, "\n", 2); /* curl prints the next prompt on a line of its own */
	reply->status = status;
	reply->content_type = "application/json";
}

json_t *serve_json_ms(uint64_t ns)
{
	return json_real((double)((ns + 500) / 1000) / 1e3);
}

void serve_reply_error(struct serve_reply *reply, int status, const char *code, const char *fmt,
		       ...)
{
	char message[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	serve_text_sanitize(message);
	serve_reply_json(reply, status, json_pack("{s:s, s:s}", "error", message, "code", code));
}

void serve_reply_free(struct serve_reply *reply)
{
	free(reply->body);
	reply->body = NULL;
}

void serve_text_sanitize(char *text)
{
	unsigned char *p = (unsigned char *)text;
	size_t len;

	while (*p) {
		int n = *p < 0x80	      ? 1
			: (*p & 0xe0) == 0xc0 ? 2
			: (*p & 0xf0) == 0xe0 ? 3
			: (*p & 0xf8) == 0xf0 ? 4
					      : 0;
		int ok = n > 0;

		for (int i = 1; ok && i < n; i++)
			ok = (p[i] & 0xc0) == 0x80;
		/* overlong two-byte forms and out-of-range lead bytes are not UTF-8 either */
		if (!ok || (n == 2 && *p < 0xc2) || (n == 4 && *p > 0xf4)) {
			*p++ = '?';
			continue;
		}
		p += n;
	}
	len = strlen(text);
	if (len && text[len - 1] == '\r')
		text[len - 1] = '\0';
}

json_t *serve_body_object(const struct serve_request *request, const char *const *fields,
			  struct serve_reply *reply)
{
	json_error_t err;
	json_t *body, *value;
	const char *key;

	if (!request->body_len)
		return json_object();
	body = json_loadb(request->body, request->body_len, JSON_REJECT_DUPLICATES, &err);
	if (!body) {
		serve_reply_error(reply, 400, "bad_json",
				  "malformed JSON at line %d, column %d: %s", err.line, err.column,
				  err.text);
		return NULL;
	}
	if (!json_is_object(body)) {
		json_decref(body);
		serve_reply_error(reply, 400, "bad_json", "the body must be a JSON object");
		return NULL;
	}
	json_object_foreach(body, key, value)
	{
		bool known = false;

		for (size_t i = 0; fields[i] && !known; i++)
			known = !strcmp(key, fields[i]);
		if (!known) {
			serve_reply_error(reply, 400, "bad_field", "unknown field '%s'", key);
			json_decref(body);
			return NULL;
		}
	}
	return body;
}

int serve_field_string(json_t *body, const char *field, const char **value,
		       struct serve_reply *reply)
{
	json_t *v = json_object_get(body, field);

	if (!v)
		return 0;
	if (!json_is_string(v)) {
		serve_reply_error(reply, 400, "bad_field", "'%s' must be a string", field);
		return -1;
	}
	*value = json_string_value(v);
	return 0;
}

int serve_field_memory(json_t *body, const char **memory, struct serve_reply *reply)
{
	enum snapshot_memory_mode mode;

	if (serve_field_string(body, "memory", memory, reply))
		return -1;
	if (*memory && snapshot_memory_mode_parse(*memory, &mode)) {
		serve_reply_error(reply, 400, "bad_field",
				  "'memory' must be prefetch, lazy, eager or mmap");
		return -1;
	}
	return 0;
}

size_t serve_memory_args(const struct serve *serve, const char *memory, const char **argv)
{
	if (!memory && !serve->config.memory_set)
		return 0;
	argv[0] = "--memory";
	argv[1] = memory ? memory : snapshot_memory_mode_name(serve->config.memory);
	return 2;
}

int serve_field_uint(json_t *body, const char *field, uint64_t min, uint64_t max, uint64_t *value,
		     struct serve_reply *reply)
{
	json_t *v = json_object_get(body, field);

	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) < min || (uint64_t)json_integer_value(v) > max) {
		serve_reply_error(reply, 400, "bad_field",
				  "'%s' must be a whole number from %llu to %llu", field,
				  (unsigned long long)min, (unsigned long long)max);
		return -1;
	}
	*value = (uint64_t)json_integer_value(v);
	return 0;
}

int serve_field_bool(json_t *body, const char *field, bool *value, struct serve_reply *reply)
{
	json_t *v = json_object_get(body, field);

	if (!v)
		return 0;
	if (!json_is_boolean(v)) {
		serve_reply_error(reply, 400, "bad_field", "'%s' must be true or false", field);
		return -1;
	}
	*value = json_is_true(v);
	return 0;
}

int serve_request_line_check(const char *text, struct serve_reply *reply)
{
	if (!text) {
		serve_reply_error(reply, 400, "bad_field", "'request' is required");
		return -1;
	}
	if (!text[0] || strlen(text) > SERVE_REQUEST_MAX || strpbrk(text, "\r\n")) {
		serve_reply_error(reply, 400, "bad_field",
				  "'request' must be one line of 1 to %d bytes", SERVE_REQUEST_MAX);
		return -1;
	}
	return 0;
}

/* Cuts path into segments; false if it has too many, or empty ones ("//"). */
static bool path_split(const char *path, char segments[SEGMENTS_MAX][128], size_t *count)
{
	size_t n = 0;

	if (*path == '/')
		path++;
	while (*path) {
		size_t len = strcspn(path, "/");

		if (!len || n == SEGMENTS_MAX || len >= 128)
			return false;
		snprintf(segments[n++], 128, "%.*s", (int)len, path);
		path += len;
		if (*path == '/' && !*++path)
			break; /* one trailing slash is allowed */
	}
	*count = n;
	return true;
}

/* Matches segments against a pattern; the "*" segment goes to param. */
static bool route_match(const char *pattern, char segments[SEGMENTS_MAX][128], size_t count,
			const char **param)
{
	size_t i = 0;

	*param = NULL;
	while (*pattern) {
		size_t len = strcspn(pattern, "/");

		if (i == count)
			return false;
		if (len == 1 && *pattern == '*')
			*param = segments[i];
		else if (strlen(segments[i]) != len || strncmp(segments[i], pattern, len))
			return false;
		i++;
		pattern += len + (pattern[len] == '/');
	}
	return i == count;
}

static void route(struct serve *serve, const struct serve_request *request,
		  struct serve_reply *reply)
{
	char segments[SEGMENTS_MAX][128];
	const struct route *found = NULL;
	const char *param = NULL, *ignored;
	size_t count = 0;

	if (path_split(request->path, segments, &count)) {
		for (size_t i = 0; i < ARRAY_SIZE(routes) && !found; i++) {
			if (route_match(routes[i].pattern, segments, count, &param) &&
			    !strcmp(routes[i].method, request->method))
				found = &routes[i];
		}
	}
	if (found) {
		if (found->handler)
			found->handler(serve, request, param, reply);
		else
			found->child(serve, request, found->kind, param, reply);
		return;
	}
	/* the same path with other methods: say which */
	for (size_t i = 0; count && i < ARRAY_SIZE(routes); i++) {
		size_t len = strlen(reply->allow);

		if (route_match(routes[i].pattern, segments, count, &ignored))
			snprintf(reply->allow + len, sizeof(reply->allow) - len, "%s%s",
				 len ? ", " : "", routes[i].method);
	}
	if (!reply->allow[0])
		serve_reply_error(reply, 404, "not_found", "no such endpoint: %s", request->path);
	else
		serve_reply_error(reply, 405, "method_not_allowed",
				  "%s is not allowed on %s (allowed: %s)", request->method,
				  request->path, reply->allow);
}

void serve_handle(struct serve *serve, const struct serve_request *request,
		  struct serve_reply *reply)
{
	bool stopping;

	memset(reply, 0, sizeof(*reply));
	pthread_mutex_lock(&serve->lock);
	stopping = serve->stopping;
	if (!stopping)
		serve->active++;
	pthread_mutex_unlock(&serve->lock);
	if (stopping) {
		serve_reply_error(reply, 503, "shutting_down", "snapvm serve is shutting down");
	} else {
		route(serve, request, reply);
		pthread_mutex_lock(&serve->lock);
		if (!--serve->active)
			pthread_cond_broadcast(&serve->idle_cond);
		pthread_mutex_unlock(&serve->lock);
		serve_wake(serve); /* serve_run may be waiting for the last request */
	}
	serve_metrics_http(&serve->metrics, reply->status);
}
