/*
 * The daemon's metrics and their rendering in the Prometheus text format
 * (version 0.0.4): counters, gauges and two latency histograms, with bucket
 * bounds chosen around a ~3 ms restore and a ~15 ms teardown.
 */
#include "serve/internal.h"
#include "common/common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double bucket_bounds[SERVE_BUCKETS] = { 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02,
						     0.05,  0.1,   0.25,  0.5,	 1,	 2.5,  10 };

static const char *const outcome_names[] = { "ok", "failed", "timeout", "rejected", "client_gone" };

void serve_metrics_init(struct serve_metrics *m)
{
	memset(m, 0, sizeof(*m));
	pthread_mutex_init(&m->lock, NULL);
}

void serve_metrics_destroy(struct serve_metrics *m)
{
	pthread_mutex_destroy(&m->lock);
}

static void histogram_add(struct serve_histogram *h, double seconds)
{
	size_t i = 0;

	while (i < SERVE_BUCKETS && seconds > bucket_bounds[i])
		i++;
	h->counts[i]++;
	h->count++;
	h->sum += seconds;
}

void serve_metrics_invocation(struct serve_metrics *m, enum serve_outcome outcome,
			      uint64_t restore_ns, uint64_t total_ns)
{
	pthread_mutex_lock(&m->lock);
	m->invocations[outcome]++;
	if (restore_ns)
		histogram_add(&m->restore, (double)restore_ns / 1e9);
	if (total_ns)
		histogram_add(&m->total, (double)total_ns / 1e9);
	pthread_mutex_unlock(&m->lock);
}

void serve_metrics_paging(struct serve_metrics *m, uint64_t faults, uint64_t pages_faulted,
			  uint64_t pages_prefetched, uint64_t bytes_read)
{
	pthread_mutex_lock(&m->lock);
	m->faults += faults;
	m->pages_faulted += pages_faulted;
	m->pages_prefetched += pages_prefetched;
	m->bytes_read += bytes_read;
	pthread_mutex_unlock(&m->lock);
}

void serve_metrics_http(struct serve_metrics *m, int status)
{
	pthread_mutex_lock(&m->lock);
	m->http_requests++;
	if (status >= 400)
		m->http_errors++;
	pthread_mutex_unlock(&m->lock);
}

/* A growing text buffer; on allocation failure it stays NULL. */
struct text {
	char *data;
	size_t len, cap;
};

static void __attribute__((format(printf, 2, 3))) put(struct text *t, const char *fmt, ...)
{
	va_list ap;
	char *bigger;
	int n;

	for (;;) {
		if (!t->data)
			return;
		va_start(ap, fmt);
		n = vsnprintf(t->data + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < t->cap - t->len) {
			t->len += (size_t)n;
			return;
		}
		t->cap *= 2;
		bigger = realloc(t->data, t->cap);
		if (!bigger)
			free(t->data);
		t->data = bigger;
	}
}

static void put_metric(struct text *t, const char *name, const char *type, const char *help)
{
	put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void put_histogram(struct text *t, const char *name, const char *help,
			  const struct serve_histogram *h)
{
	uint64_t cumulative = 0;

	put_metric(t, name, "histogram", help);
	for (size_t i = 0; i < SERVE_BUCKETS; i++) {
		cumulative += h->counts[i];
		put(t, "%s_bucket{le=\"%g\"} %llu\n", name, bucket_bounds[i],
		    (unsigned long long)cumulative);
	}
	put(t, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
	    (unsigned long long)h->count, name, h->sum, name, (unsigned long long)h->count);
}

static void put_counter(struct text *t, const char *name, const char *help, uint64_t value)
{
	put_metric(t, name, "counter", help);
	put(t, "%s %llu\n", name, (unsigned long long)value);
}

static void put_gauge(struct text *t, const char *name, const char *help, uint64_t value)
{
	put_metric(t, name, "gauge", help);
	put(t, "%s %llu\n", name, (unsigned long long)value);
}

static void put_gauges(struct text *t, const struct serve_gauges *g)
{
	put_metric(t, "snapvm_live_clones", "gauge",
		   "Child VMs alive now, by kind (invoke: one request; clone; vm: booted).");
	put(t, "snapvm_live_clones{kind=\"invoke\"} %u\n", g->live_invocations);
	put(t, "snapvm_live_clones{kind=\"clone\"} %u\n", g->live_clones);
	put(t, "snapvm_live_clones{kind=\"vm\"} %u\n", g->live_vms);
	put_gauge(t, "snapvm_max_clones", "The --max-clones bound.", g->max_clones);
	put_gauge(t, "snapvm_waiting_requests", "Requests waiting for a free slot.", g->waiting);
	put_gauge(t, "snapvm_warm_idle", "Warm invoke processes waiting for a request (--warm).",
		  g->warm_idle);
	if (!g->store_ok)
		return;
	put_gauge(t, "snapvm_store_snapshots", "Snapshots in the store.", g->store.snapshots);
	put_gauge(t, "snapvm_store_bytes", "Bytes of the store's pack files.", g->store.pack_bytes);
	put_gauge(t, "snapvm_store_logical_bytes", "Guest RAM and blobs of every snapshot.",
		  g->store.logical_bytes);
}

char *serve_metrics_render(struct serve_metrics *m, const struct serve_gauges *g)
{
	struct text t = { .data = malloc(8192), .cap = 8192 };
	struct serve_metrics c;

	pthread_mutex_lock(&m->lock);
	c = *m; /* a consistent copy; the lock in it is not used */
	pthread_mutex_unlock(&m->lock);
	put_metric(&t, "snapvm_invocations_total", "counter",
		   "POST /snapshots/NAME/invoke requests, by outcome.");
	for (size_t i = 0; i < ARRAY_SIZE(outcome_names); i++)
		put(&t, "snapvm_invocations_total{outcome=\"%s\"} %llu\n", outcome_names[i],
		    (unsigned long long)c.invocations[i]);
	put_histogram(&t, "snapvm_restore_seconds",
		      "Restore latency of invocations: from the restore's start until the VM runs.",
		      &c.restore);
	put_histogram(&t, "snapvm_invoke_seconds",
		      "Total latency of invocations: from the request's arrival to the reply.",
		      &c.total);
	put_gauges(&t, g);
	put_counter(&t, "snapvm_faults_served_total",
		    "Guest page faults answered by lazy restores (finished clones).", c.faults);
	put_counter(&t, "snapvm_pages_faulted_total", "Pages installed to answer faults.",
		    c.pages_faulted);
	put_counter(&t, "snapvm_pages_prefetched_total", "Working-set pages installed ahead.",
		    c.pages_prefetched);
	put_counter(&t, "snapvm_store_read_bytes_total", "Bytes read from the store's packs.",
		    c.bytes_read);
	put_counter(&t, "snapvm_clones_started_total", "Clones started by POST .../clones.",
		    c.clones_started);
	put_counter(&t, "snapvm_vms_started_total", "VMs booted by POST /vms.", c.vms_started);
	put_counter(&t, "snapvm_warm_hits_total",
		    "Invocations answered by a warm process (--warm).", c.warm_hits);
	put_counter(&t, "snapvm_warm_misses_total",
		    "Invocations that could have taken a warm process and found none.",
		    c.warm_misses);
	put_counter(&t, "snapvm_warm_started_total", "Warm processes started (--warm).",
		    c.warm_started);
	put_counter(&t, "snapvm_http_requests_total", "HTTP requests answered.", c.http_requests);
	put_counter(&t, "snapvm_http_errors_total", "HTTP replies with a 4xx or 5xx status.",
		    c.http_errors);
	put_counter(&t, "snapvm_clients_gone_total",
		    "Requests whose client left before the reply (their clone was stopped).",
		    c.clients_gone);
	return t.data;
}
