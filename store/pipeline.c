/*
 * Batches go round a ring of slots: the caller hands out batch b in slot
 * b % nslots, workers take the lowest waiting batch, and the caller consumes
 * slots in order, so memory stays bounded and results come out in page order.
 * Each worker has its own LMDB read transaction; the writer lock keeps the
 * index from changing meanwhile.
 */
#include "store/pipeline.h"
#include "store/chunk.h"
#include "store/digest.h"
#include "common/common.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BATCH_PAGES 256
#define MAX_WORKERS 16

enum slot_state { SLOT_IDLE, SLOT_WAITING, SLOT_BUSY, SLOT_DONE };

struct batch {
	enum slot_state state;
	uint64_t index; /* batch number */
	uint32_t count;
	int error;
	struct page_result results[BATCH_PAGES];
	uint8_t *records; /* BATCH_PAGES * CHUNK_RECORD_MAX */
};

struct pipeline {
	struct index *index;
	const uint8_t *mem;
	uint64_t count;
	struct batch *slots;
	unsigned nslots;
	bool stop;
	pthread_mutex_t lock;
	pthread_cond_t work;
	pthread_cond_t done;
};

static void batch_process(struct pipeline *p, struct batch *b, MDB_txn *txn)
{
	uint64_t first = b->index * BATCH_PAGES;
	size_t used = 0;

	b->error = 0;
	for (uint32_t i = 0; i < b->count && !b->error; i++) {
		const uint8_t *page = p->mem + (first + i) * STORE_PAGE_SIZE;
		struct page_result *r = &b->results[i];
		struct chunk_header h;
		int ret;

		if (page_is_zero(page)) {
			r->kind = PAGE_ZERO;
			continue;
		}
		b->error = digest_compute(page, STORE_PAGE_SIZE, r->digest);
		if (b->error)
			break;
		ret = index_chunk_get(p->index, txn, r->digest, &r->entry);
		if (ret == 0) {
			r->kind = PAGE_STORED;
			continue;
		}
		if (ret != -ENOENT) {
			b->error = ret;
			break;
		}
		r->kind = PAGE_NEW;
		r->record = b->records + used;
		b->error = chunk_record_encode(page, STORE_PAGE_SIZE, r->digest, b->records + used,
					       &h);
		r->record_len = CHUNK_HEADER_SIZE + h.stored_len;
		r->entry = (struct chunk_entry){ .stored_len = h.stored_len,
						 .raw_len = h.raw_len,
						 .codec = h.codec };
		used += r->record_len;
	}
}

/* The waiting slot with the lowest batch number, or NULL. */
static struct batch *slot_next(struct pipeline *p)
{
	struct batch *best = NULL;

	for (unsigned i = 0; i < p->nslots; i++) {
		struct batch *b = &p->slots[i];

		if (b->state == SLOT_WAITING && (!best || b->index < best->index))
			best = b;
	}
	return best;
}

static void *worker_main(void *opaque)
{
	struct pipeline *p = opaque;
	MDB_txn *txn = NULL;
	int txn_error = sandbox_thread_enter(SANDBOX_STORE_WORKER);
	struct batch *b;

	if (!txn_error)
		txn_error = index_txn_begin(p->index, false, &txn);
	pthread_mutex_lock(&p->lock);
	for (;;) {
		b = p->stop ? NULL : slot_next(p);
		if (!b && p->stop)
			break;
		if (!b) {
			pthread_cond_wait(&p->work, &p->lock);
			continue;
		}
		b->state = SLOT_BUSY;
		pthread_mutex_unlock(&p->lock);
		if (txn_error)
			b->error = txn_error;
		else
			batch_process(p, b, txn);
		pthread_mutex_lock(&p->lock);
		b->state = SLOT_DONE;
		pthread_cond_broadcast(&p->done);
	}
	pthread_mutex_unlock(&p->lock);
	if (txn)
		mdb_txn_abort(txn);
	return NULL;
}

/* Puts batch number index into slot b for the workers. Called with the lock held. */
static void slot_fill(struct pipeline *p, struct batch *b, uint64_t index)
{
	b->index = index;
	b->count = (uint32_t)MIN((uint64_t)BATCH_PAGES, p->count - index * BATCH_PAGES);
	b->state = SLOT_WAITING;
	pthread_cond_signal(&p->work);
}

/* Consumes the batches in order as they complete; the workers are running. */
static int pipeline_consume(struct pipeline *p, uint64_t nbatches, page_consume_fn *consume,
			    void *opaque)
{
	int ret = 0;

	for (uint64_t n = 0; n < nbatches && !ret; n++) {
		struct batch *b = &p->slots[n % p->nslots];

		pthread_mutex_lock(&p->lock);
		while (b->state != SLOT_DONE)
			pthread_cond_wait(&p->done, &p->lock);
		pthread_mutex_unlock(&p->lock);
		ret = b->error;
		for (uint32_t i = 0; i < b->count && !ret; i++)
			ret = consume(opaque, n * BATCH_PAGES + i, &b->results[i]);
		pthread_mutex_lock(&p->lock);
		if (n + p->nslots < nbatches)
			slot_fill(p, b, n + p->nslots);
		else
			b->state = SLOT_IDLE;
		pthread_mutex_unlock(&p->lock);
	}
	return ret;
}

static unsigned worker_count(uint64_t nbatches)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	return (unsigned)MIN(MIN((uint64_t)(cpus > 0 ? cpus : 1), (uint64_t)MAX_WORKERS), nbatches);
}

static void pipeline_free(struct pipeline *p)
{
	for (unsigned i = 0; i < p->nslots; i++)
		free(p->slots[i].records);
	free(p->slots);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->done);
}

static int pipeline_init(struct pipeline *p, unsigned nslots)
{
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->done, NULL);
	p->slots = calloc(nslots, sizeof(*p->slots));
	if (!p->slots)
		return -ENOMEM;
	p->nslots = nslots;
	for (unsigned i = 0; i < nslots; i++) {
		p->slots[i].records = malloc(BATCH_PAGES * CHUNK_RECORD_MAX);
		if (!p->slots[i].records)
			return -ENOMEM;
	}
	return 0;
}

/* One batch or less: not worth a thread. */
static int pipeline_run_inline(struct pipeline *p, page_consume_fn *consume, void *opaque)
{
	struct batch *b = &p->slots[0];
	MDB_txn *txn;
	int ret = index_txn_begin(p->index, false, &txn);

	if (ret)
		return ret;
	b->index = 0;
	b->count = (uint32_t)p->count;
	batch_process(p, b, txn);
	mdb_txn_abort(txn);
	ret = b->error;
	for (uint32_t i = 0; i < b->count && !ret; i++)
		ret = consume(opaque, i, &b->results[i]);
	return ret;
}

int pipeline_run(struct index *index, const uint8_t *mem, uint64_t count, page_consume_fn *consume,
		 void *opaque)
{
	struct pipeline p = { .index = index, .mem = mem, .count = count };
	uint64_t nbatches = (count + BATCH_PAGES - 1) / BATCH_PAGES;
	unsigned nworkers = worker_count(nbatches), started = 0;
	pthread_t threads[MAX_WORKERS];
	int ret;

	if (!count)
		return 0;
	ret = pipeline_init(&p, (unsigned)MIN(2ULL * nworkers + 1, nbatches));
	if (ret) {
		pipeline_free(&p);
		return ret;
	}
	if (nbatches == 1) {
		ret = pipeline_run_inline(&p, consume, opaque);
		pipeline_free(&p);
		return ret;
	}
	pthread_mutex_lock(&p.lock);
	for (unsigned i = 0; i < p.nslots; i++)
		slot_fill(&p, &p.slots[i], i);
	pthread_mutex_unlock(&p.lock);
	for (; started < nworkers; started++) {
		if (pthread_create(&threads[started], NULL, worker_main, &p))
			break;
	}
	ret = started ? pipeline_consume(&p, nbatches, consume, opaque) : -EAGAIN;
	pthread_mutex_lock(&p.lock);
	p.stop = true;
	pthread_cond_broadcast(&p.work);
	pthread_mutex_unlock(&p.lock);
	for (unsigned i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	pipeline_free(&p);
	return ret;
}
