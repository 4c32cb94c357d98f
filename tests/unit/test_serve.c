/*
 * serve/: routing, JSON bodies, errors, metrics, slots and the child
 * supervisor, without KVM. The children are a shell script standing in for
 * `snapvm invoke --json`: it answers, crashes, hangs or fails on request.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "serve/internal.h"
#include "common/common.h"

/*
 * Stands in for snapvm: argv is "invoke [--disk PATH...] --json --store DIR
 * --timeout MS -- NAME REQUEST", or with --warm "... --warm -- NAME" and the
 * line "TIMEOUT_MS REQUEST" on stdin (end of input: exit 0). "blk" needs
 * --disk d.img, as a snapshot with a disk does.
 */
static const char fake_snapvm[] =
	"#!/bin/sh\n"
	"for last; do :; done\n"
	"case \" $* \" in *' --warm '*) read timeout last || exit 0 ;; esac\n"
	"case \"$last\" in\n"
	"ping) echo '{\"reply\": \"PONG\", \"restore_ms\": 1.5, \"faults\": 7}' ;;\n"
	"crash) kill -SEGV $$ ;;\n"
	"hang) exec sleep 30 ;;\n"
	"fail) echo 'snapvm: error: guest triple fault' >&2;"
	" echo 'snapvm invoke: the clone stopped' >&2; exit 1 ;;\n"
	"garbage) printf 'not json \\377\\n' ;;\n"
	"blk) case \" $* \" in *' --disk d.img '*) echo '{\"reply\": \"OK\"}' ;;\n"
	"     *) echo \"snapvm: error: the snapshot's VM has 1 disk: give --disk PATH\" >&2;"
	" echo 'snapvm invoke: invoke failed: Invalid argument' >&2; exit 2 ;; esac ;;\n"
	"esac\n";

struct fixture {
	char dir[64];
	char script[128];
	struct serve *serve;
	pthread_t supervisor;
	bool running;
};

static int fixture_make(void **state, unsigned max_clones, unsigned queue_ms)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct serve_config config = { .max_clones = max_clones,
				       .queue_ms = queue_ms,
				       .max_body = 4096 };
	struct store_writer *w;
	char store[128];
	FILE *file;

	snprintf(f->dir, sizeof(f->dir), "/tmp/snapvm-test-serve.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(store, sizeof(store), "%s/store", f->dir);
	snprintf(f->script, sizeof(f->script), "%s/snapvm", f->dir);
	file = fopen(f->script, "w");
	assert_non_null(file);
	fputs(fake_snapvm, file);
	fclose(file);
	chmod(f->script, 0755);
	config.store_dir = store;
	config.self_path = f->script;
	assert_int_equal(serve_create(&config, &f->serve), 0);
	/* a snapshot "fn" for the routes that look for one: a page of RAM, no state */
	assert_int_equal(store_snapshot_begin(f->serve->store, "fn", STORE_PAGE_SIZE, &w), 0);
	assert_int_equal(store_snapshot_commit(w, &(struct store_commit_info){ 0 }, NULL), 0);
	*state = f;
	return 0;
}

static void *supervise(void *opaque)
{
	serve_run(opaque, false);
	return NULL;
}

static void supervisor_start(struct fixture *f)
{
	assert_int_equal(pthread_create(&f->supervisor, NULL, supervise, f->serve), 0);
	f->running = true;
}

static int setup(void **state)
{
	return fixture_make(state, 4, 0);
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char command[160];

	if (f->running) {
		serve_stop(f->serve);
		pthread_join(f->supervisor, NULL);
	}
	serve_destroy(f->serve);
	snprintf(command, sizeof(command), "rm -rf %s", f->dir);
	assert_int_equal(system(command), 0);
	free(f);
	return 0;
}

/* Runs one request; returns the parsed body (the caller frees it). */
static json_t *call(struct fixture *f, const char *method, const char *path, const char *body,
		    int *status)
{
	struct serve_request request = { .method = method,
					 .path = path,
					 .body = body,
					 .body_len = body ? strlen(body) : 0,
					 .start_ns = time_now_ns() };
	struct serve_reply reply;
	json_t *value;

	serve_handle(f->serve, &request, &reply);
	*status = reply.status;
	value = reply.body ? json_loads(reply.body, JSON_DECODE_ANY, NULL) : NULL;
	serve_reply_free(&reply);
	serve_reply_sent(f->serve, reply.warm_fill); /* as the HTTP layer, once it sent it */
	return value;
}

/* Asserts the status and, for errors, the code; returns the body. */
static json_t *expect(struct fixture *f, const char *method, const char *path, const char *body,
		      int want_status, const char *want_code)
{
	int status;
	json_t *value = call(f, method, path, body, &status);

	if (status != want_status)
		fail_msg("%s %s: status %d, want %d", method, path, status, want_status);
	assert_non_null(value);
	if (want_code) {
		assert_string_equal(json_string_value(json_object_get(value, "code")), want_code);
		assert_true(json_is_string(json_object_get(value, "error")));
	}
	return value;
}

static void check(struct fixture *f, const char *method, const char *path, const char *body,
		  int want_status, const char *want_code)
{
	json_decref(expect(f, method, path, body, want_status, want_code));
}

static void test_routes(void **state)
{
	struct fixture *f = *state;
	json_t *v;

	check(f, "GET", "/nothing", NULL, 404, "not_found");
	check(f, "GET", "/", NULL, 404, "not_found");
	check(f, "GET", "/snapshots//fn", NULL, 404, "not_found");
	check(f, "GET", "/snapshots/fn/invoke/more/deep", NULL, 404, "not_found");
	check(f, "PATCH", "/snapshots", NULL, 405, "method_not_allowed");
	check(f, "GET", "/snapshots/fn/invoke", NULL, 405, "method_not_allowed");
	v = expect(f, "GET", "/snapshots/", NULL, 200, NULL); /* one trailing slash is fine */
	assert_int_equal(json_array_size(json_object_get(v, "snapshots")), 1);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(json_object_get(v, "snapshots"), 0), "name")),
			    "fn");
	json_decref(v);
	v = expect(f, "GET", "/clones", NULL, 200, NULL);
	assert_int_equal(json_array_size(json_object_get(v, "clones")), 0);
	json_decref(v);
	check(f, "GET", "/vms", NULL, 200, NULL);
}

static void test_allow_header(void **state)
{
	struct fixture *f = *state;
	struct serve_request request = { .method = "POST", .path = "/snapshots/fn" };
	struct serve_reply reply;

	serve_handle(f->serve, &request, &reply);
	assert_int_equal(reply.status, 405);
	assert_string_equal(reply.allow, "GET, DELETE");
	serve_reply_free(&reply);
}

static void test_names(void **state)
{
	struct fixture *f = *state;

	check(f, "GET", "/snapshots/..", NULL, 400, "bad_name");
	check(f, "GET", "/snapshots/.hidden", NULL, 400, "bad_name");
	check(f, "DELETE", "/snapshots/a%2Fb", NULL, 400, "bad_name");
	check(f, "POST", "/snapshots/..%2F..%2Fetc/invoke", "{\"request\": \"ping\"}", 400,
	      "bad_name");
	check(f, "POST", "/snapshots/x*y/clones", NULL, 400, "bad_name");
	check(f, "GET", "/snapshots/nope", NULL, 404, "not_found");
	check(f, "DELETE", "/snapshots/nope", NULL, 404, "not_found");
	check(f, "POST", "/snapshots/nope/invoke", "{\"request\": \"ping\"}", 404, "not_found");
	check(f, "POST", "/snapshots/nope/clones", NULL, 404, "not_found");
	check(f, "GET", "/clones/c1", NULL, 404, "not_found");
	check(f, "DELETE", "/clones/c1", NULL, 404, "not_found");
	check(f, "POST", "/clones/c1/request", "{\"request\": \"ping\"}", 404, "not_found");
	check(f, "GET", "/vms/v1", NULL, 404, "not_found");
	check(f, "PUT", "/vms/v1/snapshot", "{\"name\": \"new\"}", 404, "not_found");
	check(f, "PUT", "/vms/v1/snapshot", "{\"name\": \"../x\"}", 400, "bad_name");
	check(f, "PUT", "/vms/v1/snapshot", "{}", 400, "bad_name");
	check(f, "PUT", "/clones/c1/snapshot", "{\"name\": \"fn\"}", 409, "snapshot_exists");
}

static void test_bodies(void **state)
{
	struct fixture *f = *state;
	const char *invoke = "/snapshots/fn/invoke";
	char longer[1100];

	check(f, "POST", invoke, "{\"request\": \"ping\"", 400, "bad_json");
	check(f, "POST", invoke, "[1, 2]", 400, "bad_json");
	check(f, "POST", invoke, "{\"request\": \"a\", \"request\": \"b\"}", 400, "bad_json");
	check(f, "POST", invoke, "{}", 400, "bad_field");
	check(f, "POST", invoke, "{\"request\": 5}", 400, "bad_field");
	check(f, "POST", invoke, "{\"request\": \"\"}", 400, "bad_field");
	check(f, "POST", invoke, "{\"request\": \"two\\nlines\"}", 400, "bad_field");
	check(f, "POST", invoke, "{\"request\": \"nul\\u0000\"}", 400, "bad_json");
	check(f, "POST", invoke, "{\"request\": \"ping\", \"timeout_ms\": 0}", 400, "bad_field");
	check(f, "POST", invoke, "{\"request\": \"ping\", \"timeout_ms\": -5}", 400, "bad_field");
	check(f, "POST", invoke, "{\"request\": \"ping\", \"timeout_ms\": \"5\"}", 400,
	      "bad_field");
	check(f, "POST", invoke, "{\"request\": \"ping\", \"memory\": \"fast\"}", 400, "bad_field");
	check(f, "POST", invoke, "{\"request\": \"ping\", \"extra\": 1}", 400, "bad_field");
	snprintf(longer, sizeof(longer), "{\"request\": \"%0*d\"}", SERVE_REQUEST_MAX + 1, 7);
	check(f, "POST", invoke, longer, 400, "bad_field");
	check(f, "POST", "/vms", "{}", 400, "bad_field");
	check(f, "POST", "/vms", "{\"kernel\": 5}", 400, "bad_field");
	check(f, "POST", "/vms", "{\"kernel\": \"k\", \"disk\": \"one\"}", 400, "bad_field");
	check(f, "POST", "/vms", "{\"kernel\": \"k\", \"rng\": \"yes\"}", 400, "bad_field");
	check(f, "POST", "/vms", "{\"kernel\": \"k\", \"api_sock\": \"/x\"}", 400, "bad_field");
	check(f, "POST", "/snapshots/fn/clones", "{\"memory\": 3}", 400, "bad_field");
	/* the host resources a restore takes, with POST /vms's shapes; no other VM option */
	check(f, "POST", invoke, "{\"request\": \"ping\", \"disk\": \"one\"}", 400, "bad_field");
	check(f, "POST", invoke, "{\"request\": \"ping\", \"net\": [5]}", 400, "bad_field");
	check(f, "POST", invoke, "{\"request\": \"ping\", \"vsock\": 3}", 400, "bad_field");
	check(f, "POST", invoke, "{\"request\": \"ping\", \"mem\": \"1G\"}", 400, "bad_field");
	check(f, "POST", "/snapshots/fn/clones", "{\"netns\": [\"x\"]}", 400, "bad_field");
	check(f, "POST", "/snapshots/fn/clones", "{\"kernel\": \"k\"}", 400, "bad_field");
}

static void test_invoke(void **state)
{
	struct fixture *f = *state;
	json_t *v;

	supervisor_start(f);
	v = expect(f, "POST", "/snapshots/fn/invoke", "{\"request\": \"ping\"}", 200, NULL);
	assert_string_equal(json_string_value(json_object_get(v, "reply")), "PONG");
	assert_true(json_is_number(json_object_get(v, "total_ms")));
	assert_string_equal(json_string_value(json_object_get(v, "clone")), "i1");
	json_decref(v);
	v = expect(f, "POST", "/snapshots/fn/invoke", "{\"request\": \"crash\"}", 502,
		   "clone_failed");
	assert_non_null(strstr(json_string_value(json_object_get(v, "error")), "signal 11"));
	json_decref(v);
	v = expect(f, "POST", "/snapshots/fn/invoke", "{\"request\": \"fail\"}", 502,
		   "clone_failed");
	/* the first line says why, without the "snapvm: error: " prefix */
	assert_non_null(strstr(json_string_value(json_object_get(v, "error")),
			       "exit status 1: guest triple fault; the clone stopped"));
	json_decref(v);
	check(f, "POST", "/snapshots/fn/invoke", "{\"request\": \"garbage\"}", 502, "clone_failed");
	/* "disk" becomes --disk; without it, the child's usage error is a 400 with its first line
	 */
	v = expect(f, "POST", "/snapshots/fn/invoke",
		   "{\"request\": \"blk\", \"disk\": [\"d.img\"]}", 200, NULL);
	assert_string_equal(json_string_value(json_object_get(v, "reply")), "OK");
	json_decref(v);
	v = expect(f, "POST", "/snapshots/fn/invoke", "{\"request\": \"blk\"}", 400,
		   "bad_vm_options");
	assert_string_equal(json_string_value(json_object_get(v, "error")),
			    "the snapshot's VM has 1 disk: give --disk PATH");
	json_decref(v);
	check(f, "POST", "/snapshots/fn/invoke", "{\"request\": \"hang\", \"timeout_ms\": 100}",
	      504, "timeout");
}

static void test_metrics(void **state)
{
	struct fixture *f = *state;
	struct serve_request request = { .method = "GET", .path = "/metrics" };
	struct serve_reply reply;

	supervisor_start(f);
	check(f, "POST", "/snapshots/fn/invoke", "{\"request\": \"ping\"}", 200, NULL);
	check(f, "POST", "/snapshots/fn/invoke", "{\"request\": \"crash\"}", 502, NULL);
	serve_metrics_invocation(&f->serve->metrics, SERVE_OK, 4000000, 12000000);
	serve_handle(f->serve, &request, &reply);
	assert_int_equal(reply.status, 200);
	assert_non_null(strstr(reply.content_type, "text/plain"));
	assert_non_null(strstr(reply.body, "snapvm_invocations_total{outcome=\"ok\"} 2\n"));
	assert_non_null(strstr(reply.body, "snapvm_invocations_total{outcome=\"failed\"} 1\n"));
	/* 1.5 ms and 4 ms restores: cumulative buckets */
	assert_non_null(strstr(reply.body, "snapvm_restore_seconds_bucket{le=\"0.001\"} 0\n"));
	assert_non_null(strstr(reply.body, "snapvm_restore_seconds_bucket{le=\"0.002\"} 1\n"));
	assert_non_null(strstr(reply.body, "snapvm_restore_seconds_bucket{le=\"0.005\"} 2\n"));
	assert_non_null(strstr(reply.body, "snapvm_restore_seconds_bucket{le=\"+Inf\"} 2\n"));
	assert_non_null(strstr(reply.body, "snapvm_restore_seconds_count 2\n"));
	assert_non_null(strstr(reply.body, "snapvm_invoke_seconds_count 3\n"));
	assert_non_null(strstr(reply.body, "snapvm_faults_served_total 7\n"));
	assert_non_null(strstr(reply.body, "snapvm_store_snapshots 1\n"));
	assert_non_null(strstr(reply.body, "# TYPE snapvm_live_clones gauge\n"));
	serve_reply_free(&reply);
}

static void test_slots(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(serve_slot_take(f->serve), 0);
	assert_int_equal(serve_slot_take(f->serve), 0);
	assert_int_equal(serve_slot_take(f->serve), 0);
	assert_int_equal(serve_slot_take(f->serve), 0);
	assert_int_equal(serve_slot_take(f->serve), -EAGAIN); /* max_clones 4, queue_ms 0 */
	serve_stop(f->serve);
	assert_int_equal(serve_slot_take(f->serve), -ESHUTDOWN);
	check(f, "GET", "/snapshots", NULL, 503, "shutting_down");
	f->serve->live = 0;
}

/* With one slot, a second invocation waits for it, then gets 429. */
static void test_too_many(void **state)
{
	struct fixture *f;
	json_t *v;

	teardown(state);
	fixture_make(state, 1, 50);
	f = *state;
	supervisor_start(f);
	assert_int_equal(serve_slot_take(f->serve), 0); /* as a running clone would */
	v = expect(f, "POST", "/snapshots/fn/invoke", "{\"request\": \"ping\"}", 429,
		   "too_many_clones");
	assert_non_null(strstr(json_string_value(json_object_get(v, "error")), "--max-clones"));
	json_decref(v);
	pthread_mutex_lock(&f->serve->lock);
	f->serve->live--;
	pthread_mutex_unlock(&f->serve->lock);
	check(f, "POST", "/snapshots/fn/invoke", "{\"request\": \"ping\"}", 200, NULL);
}

/* Waits (bounded) until the daemon has n warm processes started and waiting. */
static void warm_wait(struct fixture *f, unsigned n)
{
	for (int i = 0; i < 1000; i++) {
		unsigned idle = 0;

		pthread_mutex_lock(&f->serve->lock);
		for (struct serve_child *c = f->serve->children; c; c = c->next)
			idle += c->warm && c->spawned && !c->exited;
		pthread_mutex_unlock(&f->serve->lock);
		if (idle == n)
			return;
		usleep(10000);
	}
	fail_msg("%u warm processes never waited", n);
}

/*
 * serve --warm 1 with one slot: the first invocation is cold and starts the
 * pool; the next takes the warm process, whose slot is the request's (a
 * warm process holds none); a body with "memory" goes cold; deleting the
 * snapshot ends the idle one, and no slot stays taken.
 */
static void test_warm(void **state)
{
	struct fixture *f;
	struct serve_request request = { .method = "GET", .path = "/metrics" };
	struct serve_request invoke = { .method = "POST",
					.path = "/snapshots/fn/invoke",
					.body = "{\"request\": \"ping\"}" };
	struct serve_reply reply;

	teardown(state);
	fixture_make(state, 1, 10000);
	f = *state;
	f->serve->config.warm = 1;
	supervisor_start(f);
	check(f, "POST", "/snapshots/fn/invoke", "{\"request\": \"ping\"}", 200, NULL);
	warm_wait(f, 1);
	invoke.body_len = strlen(invoke.body);
	invoke.start_ns = time_now_ns();
	serve_handle(f->serve, &invoke, &reply);
	assert_int_equal(reply.status, 200);
	assert_non_null(strstr(reply.body, "\"reply\":\"PONG\""));
	serve_reply_free(&reply);
	/* the refill waits until the reply is sent, so as not to slow it down */
	assert_string_equal(reply.warm_fill, "fn");
	pthread_mutex_lock(&f->serve->lock);
	assert_int_equal(serve_warm_idle(f->serve), 0);
	pthread_mutex_unlock(&f->serve->lock);
	serve_reply_sent(f->serve, reply.warm_fill);
	warm_wait(f, 1); /* refilled */
	check(f, "POST", "/snapshots/fn/invoke", "{\"request\": \"fail\"}", 502, "clone_failed");
	warm_wait(f, 1);
	check(f, "POST", "/snapshots/fn/invoke", "{\"request\": \"ping\", \"memory\": \"eager\"}",
	      200, NULL);
	serve_handle(f->serve, &request, &reply);
	assert_non_null(strstr(reply.body, "snapvm_warm_hits_total 2\n"));
	assert_non_null(strstr(reply.body, "snapvm_warm_misses_total 1\n"));
	assert_non_null(strstr(reply.body, "snapvm_warm_idle 1\n"));
	serve_reply_free(&reply);
	check(f, "DELETE", "/snapshots/fn", NULL, 200, NULL);
	warm_wait(f, 0);
	pthread_mutex_lock(&f->serve->lock);
	for (int i = 0; i < 1000 && f->serve->live; i++) { /* the last children being reaped */
		pthread_mutex_unlock(&f->serve->lock);
		usleep(10000);
		pthread_mutex_lock(&f->serve->lock);
	}
	assert_int_equal(f->serve->live, 0);
	assert_int_equal(serve_warm_idle(f->serve), 0);
	pthread_mutex_unlock(&f->serve->lock);
}

static void test_text(void **state)
{
	char bad[] = "ok \xff\xc0\x80 \xe2\x82\xac end\r";
	char clean[128];

	(void)state;
	serve_text_sanitize(bad);
	assert_string_equal(bad, "ok ??? \xe2\x82\xac end");
	serve_message_clean("snapvm run: --mem: '3x' is not a size (see 'snapvm run --help')",
			    clean, sizeof(clean));
	assert_string_equal(clean, "--mem: '3x' is not a size");
	serve_message_clean("snapvm: error: vCPU 0: guest triple fault", clean, sizeof(clean));
	assert_string_equal(clean, "vCPU 0: guest triple fault");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_routes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allow_header, setup, teardown),
		cmocka_unit_test_setup_teardown(test_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bodies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invoke, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slots, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_many, setup, teardown),
		cmocka_unit_test_setup_teardown(test_warm, setup, teardown),
		cmocka_unit_test(test_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
