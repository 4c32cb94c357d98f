/* Token buckets and the timer that wakes a device they held back (vmm/ratelimit.h). */
#include "vmm/ratelimit.h"
#include "vmm/loop.h"
#include "common/common.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define NS_PER_SEC 1000000000ULL

void rate_bucket_init(struct rate_bucket *b, uint64_t rate, uint64_t now_ns)
{
	uint64_t capacity;

	/* so that elapsed time times rate stays inside 128 bits */
	rate = MIN(rate, VMM_RATE_MAX);
	capacity = rate * RATE_BUCKET_FILL_NS / NS_PER_SEC;
	*b = (struct rate_bucket){ .rate = rate,
				   .capacity = capacity ? capacity : 1,
				   .budget = (int64_t)(capacity ? capacity : 1),
				   .last_ns = now_ns };
}

/* Adds the tokens earned since the last refill; fractions carry over, so none are lost. */
static void rate_bucket_refill(struct rate_bucket *b, uint64_t now_ns)
{
	unsigned __int128 earned;
	uint64_t room;

	if (now_ns <= b->last_ns)
		return;
	earned = (unsigned __int128)(now_ns - b->last_ns) * b->rate + b->remainder;
	b->last_ns = now_ns;
	room = (uint64_t)((int64_t)b->capacity - b->budget);
	if (earned / NS_PER_SEC >= room) {
		b->budget = (int64_t)b->capacity;
		b->remainder = 0;
		return;
	}
	b->budget += (int64_t)(earned / NS_PER_SEC);
	b->remainder = (uint64_t)(earned % NS_PER_SEC);
}

uint64_t rate_bucket_wait_ns(struct rate_bucket *b, uint64_t tokens, uint64_t now_ns)
{
	int64_t need = (int64_t)MIN(tokens, b->capacity);
	unsigned __int128 missing;

	if (!b->rate)
		return 0;
	rate_bucket_refill(b, now_ns);
	if (b->budget >= need)
		return 0;
	/* token-nanoseconds still to earn, less the fraction already earned; rounded up */
	missing = (unsigned __int128)(uint64_t)(need - b->budget) * NS_PER_SEC - b->remainder;
	return (uint64_t)((missing + b->rate - 1) / b->rate);
}

void rate_bucket_take(struct rate_bucket *b, uint64_t tokens)
{
	if (!b->rate)
		return;
	/* a request bigger than the bucket passes when it is full and leaves a debt */
	tokens = MIN(tokens, (uint64_t)INT64_MAX / 4); /* the budget is signed */
	b->budget -= (int64_t)tokens;
}

void rate_limiter_init_unlimited(struct rate_limiter *l)
{
	*l = (struct rate_limiter){ .timer_fd = -1 };
}

static void rate_limiter_on_timer(void *opaque, uint32_t events)
{
	struct rate_limiter *l = opaque;
	uint64_t expirations;

	(void)events;
	if (read(l->timer_fd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
		log_warn("rate limiter: cannot read its timer: %s", strerror(errno));
	l->blocked = false;
	l->resume(l->opaque);
}

int rate_limiter_init(struct rate_limiter *l, const struct vmm_rate_limit *limit,
		      struct event_loop *loop, void (*resume)(void *opaque), void *opaque)
{
	uint64_t now = time_now_ns();
	int ret;

	rate_limiter_init_unlimited(l);
	if (!loop || (!limit->bandwidth && !limit->ops))
		return 0;
	rate_bucket_init(&l->bytes, limit->bandwidth, now);
	rate_bucket_init(&l->ops, limit->ops, now);
	l->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (l->timer_fd < 0)
		return -errno;
	ret = event_loop_add(loop, l->timer_fd, EPOLLIN, rate_limiter_on_timer, l);
	if (ret) {
		close(l->timer_fd);
		l->timer_fd = -1;
		return ret;
	}
	l->loop = loop;
	l->resume = resume;
	l->opaque = opaque;
	return 0;
}

/* Arms the one-shot timer; a zero it_value would disarm it, so at least 1 ns. */
static void rate_limiter_arm(struct rate_limiter *l, uint64_t wait_ns)
{
	struct itimerspec when = { 0 };

	wait_ns = MAX(wait_ns, 1);
	when.it_value.tv_sec = (time_t)(wait_ns / NS_PER_SEC);
	when.it_value.tv_nsec = (long)(wait_ns % NS_PER_SEC);
	if (timerfd_settime(l->timer_fd, 0, &when, NULL) < 0) {
		/* never leave the device waiting for a timer that will not come */
		log_warn("rate limiter: cannot arm its timer: %s", strerror(errno));
		return;
	}
	l->blocked = true;
}

bool rate_limiter_admit(struct rate_limiter *l, uint64_t bytes, uint64_t now_ns)
{
	uint64_t wait;

	if (l->timer_fd < 0)
		return true;
	if (l->blocked)
		return false;
	/* ask both before taking from either, so that a refusal costs nothing */
	wait = MAX(rate_bucket_wait_ns(&l->bytes, bytes, now_ns),
		   rate_bucket_wait_ns(&l->ops, 1, now_ns));
	if (wait) {
		rate_limiter_arm(l, wait);
		if (l->blocked)
			return false;
	}
	rate_bucket_take(&l->bytes, bytes);
	rate_bucket_take(&l->ops, 1);
	return true;
}

bool rate_limiter_enabled(const struct rate_limiter *l)
{
	return l->timer_fd >= 0;
}

bool rate_limiter_blocked(const struct rate_limiter *l)
{
	return l->blocked;
}

void rate_limiter_destroy(struct rate_limiter *l)
{
	if (l->timer_fd < 0)
		return;
	if (l->loop)
		event_loop_remove(l->loop, l->timer_fd);
	close(l->timer_fd);
	l->timer_fd = -1;
}

struct rate_saved rate_saved_from(const struct vmm_rate_limit *limit)
{
	return (struct rate_saved){ .bandwidth = limit->bandwidth, .ops = limit->ops };
}

int rate_saved_restore(const struct rate_saved *saved, const struct vmm_rate_limit *wanted,
		       const char *device, struct vmm_rate_limit *limit)
{
	if (saved->bandwidth > VMM_RATE_MAX || saved->ops > VMM_RATE_MAX) {
		log_error("snapshot's %s rate limits are damaged", device);
		return -EINVAL;
	}
	*limit = (struct vmm_rate_limit){ .bandwidth = saved->bandwidth, .ops = saved->ops };
	if (wanted && (wanted->given & VMM_RATE_GIVEN_BANDWIDTH))
		limit->bandwidth = wanted->bandwidth;
	if (wanted && (wanted->given & VMM_RATE_GIVEN_OPS))
		limit->ops = wanted->ops;
	return 0;
}
