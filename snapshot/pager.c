/*
 * Lazy paging with userfaultfd. Guest RAM is registered in missing mode; a
 * fault thread answers each fault from the store (read, check, UFFDIO_COPY),
 * together with the following pages not yet in place (fault-around: one
 * round trip costs ~65 us here, a page read and copied a few), and in
 * prefetch mode a second thread installs the recorded working set in bulk,
 * reading it with io_uring, while the vCPUs already run.
 *
 * Whichever thread gets to a page first installs it; the other sees EEXIST
 * and, for a fault, wakes the faulting thread. If a page cannot be served the
 * pager gives up: it unregisters guest RAM (so no vCPU stays blocked on a
 * fault) and tells the VM to stop.
 */
#include "snapshot/pager.h"
#include "snapshot/snapshot.h"
#include "snapshot/pages.h"
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <liburing.h>
#include <poll.h>
#include <sched.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FAULT_AROUND_PAGES   16
#define PREFETCH_BATCH	     PAGES_RUN_MAX
#define PREFETCH_FETCH_AHEAD 1024 /* pages fetched at once from a remote store */
#define FAULT_MESSAGES	     16

struct pager {
	struct store_snapshot *snapshot;
	uint8_t *ram;
	uint64_t pages;
	char name[SNAPSHOT_NAME_MAX + 1];
	int uffd;
	int stop_fd;
	atomic_bool stopping;
	pthread_t fault_thread, prefetch_thread;
	bool fault_started, prefetch_started;
	_Atomic uint8_t *installed; /* one byte per page: in place */
	uint32_t *workset;
	size_t workset_count;
	uint64_t stop_after; /* tests: stop serving after this many faults (0: never) */

	pthread_mutex_t lock; /* the recording */
	bool recording;
	uint32_t *recorded;
	size_t recorded_count, recorded_cap;

	atomic_uint_fast64_t faults, pages_faulted, pages_prefetched, bytes_read, fault_ns;
	atomic_bool failed;
	void (*fatal)(void *opaque, const char *message);
	void *opaque;
};

/*
 * Gives up on the clone: the VM is told to stop (its vCPUs are kicked out of
 * the guest), then RAM leaves userfaultfd, so that no vCPU stays blocked on
 * a fault: blocked faults are woken and fill with zeros, which the guest
 * never sees, because a kicked vCPU leaves KVM_RUN before re-entering it.
 */
static void pager_fail(struct pager *p, uint64_t page, const char *why, int err)
{
	struct uffdio_range range = { (uint64_t)(uintptr_t)p->ram, p->pages * STORE_PAGE_SIZE };
	bool system_error = err && err != -EBADMSG; /* errno says something */
	char message[256];

	if (atomic_exchange(&p->failed, true))
		return;
	/* why is NULL when the store has reported the damage itself */
	if (why)
		snprintf(message, sizeof(message),
			 "snapshot %s: cannot serve guest page %llu: %s%s%s", p->name,
			 (unsigned long long)page, why, system_error ? ": " : "",
			 system_error ? strerror(-err) : "");
	/* the vCPUs are kicked out of the guest first, then their faults may complete */
	p->fatal(p->opaque, why ? message : NULL);
	ioctl(p->uffd, UFFDIO_UNREGISTER, &range);
}

static void pager_record(struct pager *p, uint64_t page)
{
	pthread_mutex_lock(&p->lock);
	if (p->recording && p->recorded_count == p->recorded_cap) {
		size_t cap = p->recorded_cap ? p->recorded_cap * 2 : 4096;
		uint32_t *grown = realloc(p->recorded, cap * sizeof(*grown));

		if (grown) {
			p->recorded = grown;
			p->recorded_cap = cap;
		}
	}
	if (p->recording && p->recorded_count < p->recorded_cap)
		p->recorded[p->recorded_count++] = (uint32_t)page;
	pthread_mutex_unlock(&p->lock);
}

static void pager_wake(struct pager *p, uint64_t page)
{
	struct uffdio_range range = { (uint64_t)(uintptr_t)(p->ram + page * STORE_PAGE_SIZE),
				      STORE_PAGE_SIZE };

	ioctl(p->uffd, UFFDIO_WAKE, &range);
}

/* Places count pages from buf at page first; pages already in place are left alone. */
static int pager_install(struct pager *p, uint64_t first, unsigned count, const uint8_t *buf,
			 bool all_zero)
{
	uint64_t dst = (uint64_t)(uintptr_t)(p->ram + first * STORE_PAGE_SIZE);
	uint64_t len = (uint64_t)count * STORE_PAGE_SIZE;
	int ret = 0;

	/* EAGAIN: the kernel was busy with the page tables (another thread placing pages): retry */
	for (int attempt = 0; attempt < 100; attempt++) {
		if (all_zero) {
			struct uffdio_zeropage z = { .range = { dst, len } };

			ret = ioctl(p->uffd, UFFDIO_ZEROPAGE, &z) < 0 ? -errno : 0;
		} else {
			struct uffdio_copy c = { .dst = dst,
						 .src = (uint64_t)(uintptr_t)buf,
						 .len = len };

			ret = ioctl(p->uffd, UFFDIO_COPY, &c) < 0 ? -errno : 0;
		}
		if (ret != -EAGAIN)
			break;
		sched_yield();
	}
	if (ret == -EEXIST && count > 1) {
		/* someone else placed some of them: place the rest one by one */
		ret = 0;
		for (unsigned i = 0; i < count && !ret; i++)
			ret = pager_install(p, first + i, 1, buf + (uint64_t)i * STORE_PAGE_SIZE,
					    all_zero);
	}
	if (ret == -EEXIST)
		ret = 0;
	for (unsigned i = 0; !ret && i < count; i++)
		atomic_store(&p->installed[first + i], 1);
	return ret;
}

/* Answers one fault: the page and the following ones not yet in place. */
static int pager_serve(struct pager *p, struct pages_reader *r, uint8_t *buf, uint64_t page)
{
	uint64_t start = time_now_ns(), bad = page;
	unsigned count = 1;
	const char *why;
	bool all_zero;
	int ret;

	atomic_fetch_add(&p->faults, 1);
	pager_record(p, page);
	if (atomic_load(&p->installed[page])) {
		pager_wake(p, page); /* the prefetcher was first */
		return 0;
	}
	/*
	 * While recording, every page the guest touches must fault: no
	 * neighbours. From a remote store, only neighbours already in the local
	 * cache come along: a warm clone must not wait for the network (nor
	 * even connect) for pages it did not ask for.
	 */
	while (!p->recording && count < FAULT_AROUND_PAGES && page + count < p->pages &&
	       !atomic_load(&p->installed[page + count]) &&
	       store_page_cached(p->snapshot, page + count))
		count++;
	ret = pages_read(r, page, count, buf, &all_zero, &bad, &why);
	atomic_fetch_add(&p->bytes_read, r->bytes_read);
	r->bytes_read = 0;
	if (ret) {
		pager_fail(p, bad, why, ret);
		return ret;
	}
	ret = pager_install(p, page, count, buf, all_zero);
	if (ret) {
		pager_fail(p, page, "placing it in guest memory failed", ret);
		return ret;
	}
	pager_wake(p, page); /* in case a neighbour's copy, not ours, answered it */
	atomic_fetch_add(&p->pages_faulted, count);
	atomic_fetch_add(&p->fault_ns, time_now_ns() - start);
	return 0;
}

static void *pager_fault_thread(void *arg)
{
	struct pager *p = arg;
	uint8_t *buf = aligned_alloc(STORE_PAGE_SIZE, FAULT_AROUND_PAGES * STORE_PAGE_SIZE);
	struct pages_reader r = { 0 };

	if (sandbox_thread_enter(SANDBOX_PAGER)) {
		pager_fail(p, 0, "cannot install its seccomp filter", -EPERM);
		goto out;
	}
	if (!buf || pages_reader_init(&r, p->snapshot)) {
		pager_fail(p, 0, "out of memory", -ENOMEM);
		goto out;
	}
	while (!atomic_load(&p->stopping) && !atomic_load(&p->failed)) {
		struct pollfd fds[2] = { { p->uffd, POLLIN, 0 }, { p->stop_fd, POLLIN, 0 } };
		struct uffd_msg msgs[FAULT_MESSAGES];
		ssize_t n;

		if (poll(fds, 2, -1) < 0 && errno != EINTR)
			break;
		if (fds[1].revents)
			break;
		n = read(p->uffd, msgs, sizeof(msgs));
		if (n < 0 && errno == EAGAIN)
			continue;
		if (n <= 0) {
			pager_fail(p, 0, "reading userfaultfd failed", -errno);
			break;
		}
		for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++) {
			uint64_t page;

			if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			page = (msgs[i].arg.pagefault.address - (uint64_t)(uintptr_t)p->ram) /
			       STORE_PAGE_SIZE;
			if (p->stop_after && atomic_load(&p->faults) >= p->stop_after) {
				pager_fail(p, page, "the paging thread stopped", 0);
				break;
			}
			if (page >= p->pages || pager_serve(p, &r, buf, page))
				break;
		}
	}
out:
	pages_reader_free(&r);
	free(buf);
	return NULL;
}

/* Sorts a batch of page numbers, for reads in pack order and copies in page order. */
static int compare_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

struct prefetch_batch {
	uint32_t pages[PREFETCH_BATCH];
	struct store_chunk_loc locs[PREFETCH_BATCH];
	bool zero[PREFETCH_BATCH];
	unsigned count;
};

/* Collects the batch's pages not in place yet, sorted, and where their chunks are. */
static int prefetch_locate(struct pager *p, const uint32_t *pages, size_t n,
			   struct prefetch_batch *b, uint64_t *bad, const char **why)
{
	b->count = 0;
	for (size_t i = 0; i < n; i++) {
		if (pages[i] < p->pages && !atomic_load(&p->installed[pages[i]]))
			b->pages[b->count++] = pages[i];
	}
	qsort(b->pages, b->count, sizeof(b->pages[0]), compare_u32);
	for (unsigned i = 0; i < b->count; i++) {
		int ret = store_page_locate(p->snapshot, b->pages[i], &b->locs[i]);

		b->zero[i] = ret == STORE_PAGE_ZERO;
		if (ret < 0 ||
		    (!b->zero[i] && (b->locs[i].raw_len != STORE_PAGE_SIZE ||
				     b->locs[i].length > PAGES_SCRATCH_SIZE / PREFETCH_BATCH))) {
			*bad = b->pages[i];
			*why = ret < 0 ? NULL : "its chunk is not a page"; /* the store said why */
			return ret < 0 ? ret : -EBADMSG;
		}
	}
	return 0;
}

/*
 * Reads every record of the batch with io_uring: one read per run of
 * records that lie back to back in a pack (after store_snapshot_relayout,
 * the whole working set is one such run), all in flight at once.
 */
static int prefetch_read(struct pager *p, struct io_uring *ring, struct prefetch_batch *b,
			 uint8_t *scratch, uint64_t *scratch_offset)
{
	unsigned submitted = 0;
	uint64_t used = 0;

	for (unsigned i = 0; i < b->count;) {
		struct io_uring_sqe *sqe;
		unsigned j = i + 1;
		uint64_t len;

		if (b->zero[i]) {
			i++;
			continue;
		}
		/* records sorted by page lie in pack order after a relayout or a first write */
		while (j < b->count && !b->zero[j] && b->locs[j].fd == b->locs[j - 1].fd &&
		       b->locs[j].offset == b->locs[j - 1].offset + b->locs[j - 1].length)
			j++;
		len = b->locs[j - 1].offset + b->locs[j - 1].length - b->locs[i].offset;
		for (unsigned k = i; k < j; k++)
			scratch_offset[k] = used + (b->locs[k].offset - b->locs[i].offset);
		sqe = io_uring_get_sqe(ring);
		if (!sqe)
			return -EBUSY;
		io_uring_prep_read(sqe, b->locs[i].fd, scratch + used, (unsigned)len,
				   b->locs[i].offset);
		sqe->user_data = len;
		submitted++;
		used += len;
		i = j;
	}
	if (submitted && io_uring_submit(ring) < 0)
		return -EIO;
	for (unsigned done = 0; done < submitted; done++) {
		struct io_uring_cqe *cqe;
		int ret;
		bool short_read;

		/* a signal (glibc's to every thread, when a jail drops root) ends a wait early */
		do
			ret = io_uring_wait_cqe(ring, &cqe);
		while (ret == -EINTR);
		short_read = !ret && (uint64_t)cqe->res != cqe->user_data;

		if (!ret && cqe->res < 0)
			ret = cqe->res;
		if (!ret)
			io_uring_cqe_seen(ring, cqe);
		if (ret || short_read)
			return ret ? ret : -EIO;
	}
	atomic_fetch_add(&p->bytes_read, used);
	return 0;
}

/* Decodes the batch into pages (in page order) and installs runs of consecutive pages. */
static int prefetch_install(struct pager *p, struct prefetch_batch *b, const uint8_t *scratch,
			    const uint64_t *scratch_offset, uint8_t *pages, uint64_t *bad,
			    const char **why)
{
	for (unsigned i = 0; i < b->count; i++) {
		uint8_t *out = pages + (uint64_t)i * STORE_PAGE_SIZE;
		int ret;

		if (b->zero[i]) {
			memset(out, 0, STORE_PAGE_SIZE);
			continue;
		}
		ret = store_page_decode(p->snapshot, b->pages[i], &b->locs[i],
					scratch + scratch_offset[i], out);
		if (ret) {
			*bad = b->pages[i];
			*why = NULL; /* the store said why */
			return ret;
		}
	}
	for (unsigned i = 0; i < b->count;) {
		unsigned j = i + 1;
		int ret;

		while (j < b->count && b->pages[j] == b->pages[j - 1] + 1)
			j++;
		ret = pager_install(p, b->pages[i], j - i, pages + (uint64_t)i * STORE_PAGE_SIZE,
				    false);
		if (ret) {
			*bad = b->pages[i];
			*why = "placing it in guest memory failed";
			return ret;
		}
		atomic_fetch_add(&p->pages_prefetched, j - i);
		i = j;
	}
	return 0;
}

static void *pager_prefetch_thread(void *arg)
{
	struct pager *p = arg;
	struct prefetch_batch *b = malloc(sizeof(*b));
	uint8_t *scratch = malloc(PAGES_SCRATCH_SIZE);
	uint8_t *pages = aligned_alloc(STORE_PAGE_SIZE, PREFETCH_BATCH * STORE_PAGE_SIZE);
	uint64_t *offsets = malloc(PREFETCH_BATCH * sizeof(*offsets));
	struct io_uring ring;
	int ret = sandbox_thread_enter(SANDBOX_PREFETCH);

	if (!ret)
		ret = b && scratch && pages && offsets
			      ? io_uring_queue_init(PREFETCH_BATCH, &ring, 0)
			      : -ENOMEM;
	if (ret) {
		pager_fail(p, 0, "cannot start prefetching", ret);
		goto out;
	}
	for (size_t at = 0, fetched = 0;
	     at < p->workset_count && !atomic_load(&p->stopping) && !atomic_load(&p->failed);
	     at += PREFETCH_BATCH) {
		size_t n = MIN((size_t)PREFETCH_BATCH, p->workset_count - at);
		const char *why = "reading its pack failed";
		uint64_t bad = p->workset[at];

		/*
		 * A remote store: the chunks of the next window, in recorded order,
		 * come into the local cache with many reads in flight (a small first
		 * window, so that installing starts soon). Local stores return at once.
		 */
		if (at >= fetched) {
			size_t window = MIN(at ? PREFETCH_FETCH_AHEAD : PREFETCH_BATCH * 4,
					    p->workset_count - at);

			ret = store_pages_fetch(p->snapshot, p->workset + at, window);
			fetched = at + window;
			if (ret) {
				pager_fail(p, bad, NULL, ret); /* the store said which page */
				break;
			}
		}
		ret = prefetch_locate(p, p->workset + at, n, b, &bad, &why);
		if (!ret)
			ret = prefetch_read(p, &ring, b, scratch, offsets);
		if (!ret)
			ret = prefetch_install(p, b, scratch, offsets, pages, &bad, &why);
		if (ret) {
			pager_fail(p, bad, why, ret);
			break;
		}
	}
	io_uring_queue_exit(&ring);
	log_debug("prefetch done: %llu pages",
		  (unsigned long long)atomic_load(&p->pages_prefetched));
out:
	free(offsets);
	free(pages);
	free(scratch);
	free(b);
	return NULL;
}

/* snapshot_userfaultfd_open_ahead()'s, until a pager takes it; -1: none. */
static int uffd_ahead = -1;

/*
 * Handling the faults of KVM's own accesses (kernel mode) needs a privilege
 * (CAP_SYS_PTRACE, with vm.unprivileged_userfaultfd 0): a process giving it
 * up before its restore makes its userfaultfd first.
 */
int snapshot_userfaultfd_open_ahead(void)
{
	if (uffd_ahead < 0)
		uffd_ahead = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd_ahead >= 0)
		return 0;
	log_error("userfaultfd is not available here: %s", strerror(errno));
	return -errno;
}

static int pager_register(struct pager *p)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = {
		.range = { (uint64_t)(uintptr_t)p->ram, p->pages * STORE_PAGE_SIZE },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	p->uffd = uffd_ahead >= 0 ? uffd_ahead
				  : (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	uffd_ahead = -1;
	if (p->uffd < 0 || ioctl(p->uffd, UFFDIO_API, &api) < 0 ||
	    ioctl(p->uffd, UFFDIO_REGISTER, &reg) < 0) {
		int ret = -errno;

		log_error("userfaultfd is not available here (%s): restore with --memory mmap",
			  strerror(errno));
		return ret;
	}
	return 0;
}

int pager_start(struct store_snapshot *snapshot, uint8_t *ram, uint64_t size,
		const struct memory_options *o, struct pager **out)
{
	struct pager *p = calloc(1, sizeof(*p));
	const char *stop_after = getenv("SNAPVM_TEST_PAGER_STOP_AFTER");
	int ret;

	if (!p)
		return -ENOMEM;
	*out = p;
	p->snapshot = snapshot;
	p->ram = ram;
	p->pages = size / STORE_PAGE_SIZE;
	p->uffd = p->stop_fd = -1;
	p->fatal = o->fatal;
	p->opaque = o->opaque;
	p->recording = o->record;
	p->stop_after = stop_after ? strtoull(stop_after, NULL, 10) : 0;
	snprintf(p->name, sizeof(p->name), "%s", o->snapshot_name);
	pthread_mutex_init(&p->lock, NULL);
	p->installed = calloc(p->pages, 1);
	p->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (!p->installed || p->stop_fd < 0)
		return -ENOMEM;
	if (o->mode == SNAPSHOT_MEMORY_PREFETCH && o->workset_count) {
		p->workset = malloc(o->workset_count * sizeof(*p->workset));
		if (!p->workset)
			return -ENOMEM;
		memcpy(p->workset, o->workset, o->workset_count * sizeof(*p->workset));
		p->workset_count = o->workset_count;
	}
	ret = pager_register(p);
	if (ret)
		return ret;
	ret = pthread_create(&p->fault_thread, NULL, pager_fault_thread, p);
	p->fault_started = ret == 0;
	if (!ret && p->workset_count) {
		ret = pthread_create(&p->prefetch_thread, NULL, pager_prefetch_thread, p);
		p->prefetch_started = ret == 0;
	}
	if (ret)
		log_error("cannot start the paging threads: %s", strerror(ret));
	return -ret;
}

int pager_fill(struct pager *p)
{
	uint8_t *buf = aligned_alloc(STORE_PAGE_SIZE, PAGES_RUN_MAX * STORE_PAGE_SIZE);
	struct pages_reader r = { 0 };
	int ret = buf ? pages_reader_init(&r, p->snapshot) : -ENOMEM;

	for (uint64_t page = 0; !ret && page < p->pages;) {
		unsigned count = 0;
		uint64_t bad = page;
		const char *why;
		bool all_zero;

		if (atomic_load(&p->installed[page])) {
			page++;
			continue;
		}
		while (count < PAGES_RUN_MAX && page + count < p->pages &&
		       !atomic_load(&p->installed[page + count]))
			count++;
		ret = pages_read(&r, page, count, buf, &all_zero, &bad, &why);
		if (!ret)
			ret = pager_install(p, page, count, buf, all_zero);
		if (ret)
			log_error("snapshot %s: cannot fetch guest page %llu: %s", p->name,
				  (unsigned long long)bad, strerror(-ret));
		page += count;
	}
	atomic_fetch_add(&p->bytes_read, r.bytes_read);
	pages_reader_free(&r);
	free(buf);
	return ret;
}

void pager_stats(struct pager *p, struct snapshot_memory_stats *stats)
{
	stats->faults = atomic_load(&p->faults);
	stats->pages_faulted = atomic_load(&p->pages_faulted);
	stats->pages_prefetched = atomic_load(&p->pages_prefetched);
	stats->bytes_read = atomic_load(&p->bytes_read);
	stats->fault_ns = atomic_load(&p->fault_ns);
	pthread_mutex_lock(&p->lock);
	stats->workset_pages = p->recording ? p->recorded_count : p->workset_count;
	pthread_mutex_unlock(&p->lock);
}

int pager_recording_take(struct pager *p, uint32_t **pages, size_t *count)
{
	pthread_mutex_lock(&p->lock);
	p->recording = false;
	*pages = p->recorded;
	*count = p->recorded_count;
	p->recorded = NULL;
	p->recorded_count = p->recorded_cap = 0;
	pthread_mutex_unlock(&p->lock);
	return 0;
}

void pager_stop(struct pager *p)
{
	uint64_t one = 1;

	if (!p)
		return;
	atomic_store(&p->stopping, true);
	if (p->stop_fd >= 0 && write(p->stop_fd, &one, sizeof(one)) < 0)
		log_warn("pager: cannot signal its threads: %s", strerror(errno));
	if (p->fault_started)
		pthread_join(p->fault_thread, NULL);
	if (p->prefetch_started)
		pthread_join(p->prefetch_thread, NULL);
	if (p->uffd >= 0)
		close(p->uffd);
	if (p->stop_fd >= 0)
		close(p->stop_fd);
	pthread_mutex_destroy(&p->lock);
	free(p->installed);
	free(p->workset);
	free(p->recorded);
	free(p);
}
