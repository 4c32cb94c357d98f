/*
 * I/O rate limits (private to vmm/): token buckets for bytes and operations,
 * as Firecracker's rate limiters. A device asks before it takes a request
 * from its queue; when a bucket is empty it leaves the request in the ring
 * and the limiter arms a timerfd on the VM's event loop that calls the
 * device back once the tokens are there. Nothing sleeps or spins.
 *
 * A bucket refills at its rate and holds a tenth of a second's worth, so a
 * guest that was idle gets a burst of at most 100 ms. A request bigger than
 * that still passes as soon as the bucket is full: it leaves the bucket in
 * debt, which the following requests wait out, so the average stays the rate.
 *
 * The clock is passed in (now_ns) so that tests can drive the arithmetic.
 */
#ifndef SNAPVM_VMM_RATELIMIT_H
#define SNAPVM_VMM_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/vmm.h"

struct event_loop;

/* A device's rate limits in its saved state: configuration that restore options may replace. */
struct rate_saved {
	uint64_t bandwidth; /* bytes a second; 0: none */
	uint64_t ops;	    /* requests or frames a second; 0: none */
};

/* The limits to save. */
struct rate_saved rate_saved_from(const struct vmm_rate_limit *limit);
/*
 * The limits of a restored device: the saved ones, except those the restore
 * options set (`given`; 0 lifts one). -EINVAL (logged) for saved limits out
 * of range.
 */
int rate_saved_restore(const struct rate_saved *saved, const struct vmm_rate_limit *wanted,
		       const char *device, struct vmm_rate_limit *limit);

/* How much of a second of tokens a bucket holds: the longest burst. */
#define RATE_BUCKET_FILL_NS 100000000ULL

struct rate_bucket {
	uint64_t rate;	    /* tokens a second; 0: unlimited */
	uint64_t capacity;  /* tokens it holds at most, at least 1 */
	int64_t budget;	    /* tokens now; negative: debt of an oversized request */
	uint64_t remainder; /* fraction of a token not yet added, in token-nanoseconds */
	uint64_t last_ns;   /* when it was last refilled */
};

/* A bucket of `rate` tokens a second (0: unlimited), full at now_ns. */
void rate_bucket_init(struct rate_bucket *b, uint64_t rate, uint64_t now_ns);
/* Nanoseconds until a request of `tokens` may pass (0: now); refills first. */
uint64_t rate_bucket_wait_ns(struct rate_bucket *b, uint64_t tokens, uint64_t now_ns);
/* Takes the tokens of a request that may pass (the budget may go below zero). */
void rate_bucket_take(struct rate_bucket *b, uint64_t tokens);

/* A device's limits on one stream of requests: bytes and operations. */
struct rate_limiter {
	struct rate_bucket bytes;
	struct rate_bucket ops;
	bool blocked; /* a request waits for tokens; the timer is armed */
	int timer_fd; /* -1: no limit, or no loop to wait on */
	struct event_loop *loop;
	void (*resume)(void *opaque);
	void *opaque;
};

/* A limiter that lets everything through (no fd); destroy is optional. */
void rate_limiter_init_unlimited(struct rate_limiter *l);
/*
 * Sets the limits and, if there are any, creates the timerfd and watches it
 * on loop; resume(opaque) runs on the loop's thread when a blocked device may
 * go on. Without a loop the limits are not applied. 0 or -errno.
 */
int rate_limiter_init(struct rate_limiter *l, const struct vmm_rate_limit *limit,
		      struct event_loop *loop, void (*resume)(void *opaque), void *opaque);
/*
 * Whether a request of `bytes` bytes (one operation) may go now: if so its
 * tokens are taken; if not, nothing is taken, the limiter is blocked and
 * its timer armed for when the tokens will be there.
 */
bool rate_limiter_admit(struct rate_limiter *l, uint64_t bytes, uint64_t now_ns);
/* Whether there are limits at all: without, a device need not count its requests. */
bool rate_limiter_enabled(const struct rate_limiter *l);
/* Whether a request is waiting for the timer (the device should not look at its queue). */
bool rate_limiter_blocked(const struct rate_limiter *l);
/* Closes the timer and stops watching it. */
void rate_limiter_destroy(struct rate_limiter *l);

#endif
