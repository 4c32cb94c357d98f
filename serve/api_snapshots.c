/* GET /snapshots, GET and DELETE /snapshots/NAME, GET /metrics: the store and the counters. */
#include "serve/internal.h"
#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* No "..", no "/": the name becomes a store key and a path. */
bool serve_snapshot_name_ok(const char *name, struct serve_reply *reply)
{
	if (snapshot_name_valid(name))
		return true;
	serve_reply_error(reply, 400, "bad_name", SNAPSHOT_NAME_REFUSED, name);
	return false;
}

struct exists_walk {
	const char *name;
	bool found;
};

static void exists_one(const struct store_snapshot_info *info, void *opaque)
{
	struct exists_walk *w = opaque;

	w->found = w->found || !strcmp(info->name, w->name);
}

bool serve_snapshot_exists(struct serve *serve, const char *name)
{
	struct exists_walk w = { .name = name };

	/* one read transaction over the records, no manifest read: cheap per request */
	return !store_list(serve->store, exists_one, &w) && w.found;
}

bool serve_snapshot_found(struct serve *serve, const char *name, struct serve_reply *reply)
{
	if (serve_snapshot_exists(serve, name))
		return true;
	serve_reply_error(reply, 404, "not_found", "no snapshot '%s'", name);
	return false;
}

static json_t *time_json(uint64_t ns)
{
	time_t t = (time_t)(ns / 1000000000ULL);
	struct tm tm;
	char text[32];

	gmtime_r(&t, &tm);
	strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(text);
}

/* The figures store_list has for every snapshot. */
static json_t *snapshot_json(const struct store_snapshot_info *info)
{
	json_t *o = json_object();

	json_object_set_new(o, "name", json_string(info->name));
	if (info->parent[0])
		json_object_set_new(o, "parent", json_string(info->parent));
	json_object_set_new(o, "created", time_json(info->created_ns));
	json_object_set_new(o, "ram_bytes", json_integer((json_int_t)info->ram_size));
	json_object_set_new(o, "nonzero_bytes",
			    json_integer((json_int_t)(info->nonzero_pages * STORE_PAGE_SIZE)));
	json_object_set_new(o, "stored_bytes", json_integer((json_int_t)info->stored_bytes));
	json_object_set_new(o, "workset_pages", json_integer((json_int_t)info->workset_pages));
	return o;
}

static void list_one(const struct store_snapshot_info *info, void *opaque)
{
	json_array_append_new(opaque, snapshot_json(info));
}

void serve_snapshots_list(struct serve *serve, const struct serve_request *request,
			  const char *param, struct serve_reply *reply)
{
	json_t *list = json_array();
	int ret;

	(void)request;
	(void)param;
	ret = store_list(serve->store, list_one, list);
	if (ret) {
		json_decref(list);
		serve_reply_error(reply, 500, "store_error", "cannot list the store: %s",
				  strerror(-ret));
		return;
	}
	serve_reply_json(reply, 200, json_pack("{s:o}", "snapshots", list));
}

void serve_snapshot_get(struct serve *serve, const struct serve_request *request, const char *name,
			struct serve_reply *reply)
{
	struct store_snapshot_info *info;
	json_t *o, *kv, *blobs;
	int ret;

	(void)request;
	if (!serve_snapshot_name_ok(name, reply) || !serve_snapshot_found(serve, name, reply))
		return;
	info = malloc(sizeof(*info)); /* ~40 KiB: not on a connection thread's stack */
	ret = info ? store_snapshot_info(serve->store, name, info) : -ENOMEM;
	if (ret) {
		free(info);
		serve_reply_error(reply, ret == -ENOENT ? 404 : 500,
				  ret == -ENOENT ? "not_found" : "store_error",
				  "cannot read snapshot '%s': %s", name, strerror(-ret));
		return;
	}
	o = snapshot_json(info);
	json_object_set_new(o, "unique_bytes", json_integer((json_int_t)info->unique_bytes));
	json_object_set_new(o, "chunks", json_integer((json_int_t)info->chunks));
	json_object_set_new(o, "cpu", json_string(info->cpu_id));
	kv = json_object();
	for (size_t i = 0; i < info->kv_count; i++)
		json_object_set_new(kv, info->kv[i].key, json_string(info->kv[i].value));
	json_object_set_new(o, "kv", kv);
	blobs = json_object();
	for (size_t i = 0; i < info->blob_count; i++)
		json_object_set_new(blobs, info->blobs[i].name,
				    json_integer((json_int_t)info->blobs[i].len));
	json_object_set_new(o, "blobs", blobs);
	free(info);
	serve_reply_json(reply, 200, o);
}

void serve_snapshot_delete(struct serve *serve, const struct serve_request *request,
			   const char *name, struct serve_reply *reply)
{
	int ret;

	(void)request;
	if (!serve_snapshot_name_ok(name, reply) || !serve_snapshot_found(serve, name, reply))
		return;
	/* clones of it that run go on: their chunks stay until `snapvm store gc` */
	ret = store_snapshot_remove(serve->store, name);
	if (ret == -ENOENT) {
		serve_reply_error(reply, 404, "not_found", "no snapshot '%s'", name);
		return;
	}
	if (ret) {
		serve_reply_error(reply, 500, "store_error", "cannot delete '%s': %s", name,
				  strerror(-ret));
		return;
	}
	pthread_mutex_lock(&serve->lock);
	serve_warm_discard(serve, name); /* they would only fail to find it */
	pthread_mutex_unlock(&serve->lock);
	serve_reply_json(reply, 200, json_pack("{s:s, s:b}", "name", name, "deleted", 1));
}

void serve_metrics_get(struct serve *serve, const struct serve_request *request, const char *param,
		       struct serve_reply *reply)
{
	struct serve_gauges g = { .max_clones = serve->config.max_clones };

	(void)request;
	(void)param;
	pthread_mutex_lock(&serve->lock);
	for (struct serve_child *c = serve->children; c; c = c->next) {
		if (!c->spawned || c->exited || c->warm)
			continue;
		g.live_invocations += c->kind == SERVE_INVOKE;
		g.live_clones += c->kind == SERVE_CLONE;
		g.live_vms += c->kind == SERVE_VM;
	}
	g.waiting = serve->waiting;
	g.warm_idle = serve_warm_idle(serve);
	pthread_mutex_unlock(&serve->lock);
	g.store_ok = !store_usage_get(serve->store, &g.store);
	reply->body = serve_metrics_render(&serve->metrics, &g);
	if (!reply->body) {
		serve_reply_error(reply, 500, "internal", "out of memory");
		return;
	}
	reply->status = 200;
	reply->content_type = "text/plain; version=0.0.4; charset=utf-8";
}
