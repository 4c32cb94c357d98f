/* vmm/ratelimit.c: token arithmetic on an injected clock, and the timer that wakes a device. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "common/common.h"
#include "vmm/loop.h"
#include "vmm/ratelimit.h"

#define MS 1000000ULL
#define S  1000000000ULL

static void test_unlimited(void **state)
{
	struct rate_bucket b;
	struct rate_limiter l;

	(void)state;
	rate_bucket_init(&b, 0, 0);
	rate_bucket_take(&b, 1ULL << 40);
	assert_int_equal(rate_bucket_wait_ns(&b, 1ULL << 40, 0), 0);
	rate_limiter_init_unlimited(&l);
	for (int i = 0; i < 1000; i++)
		assert_true(rate_limiter_admit(&l, 1 << 20, 0));
	assert_false(rate_limiter_blocked(&l));
}

/* Full at the start with a tenth of a second's tokens; then they come at the rate. */
static void test_capacity_and_refill(void **state)
{
	struct rate_bucket b;

	(void)state;
	rate_bucket_init(&b, 1000, 5 * S);
	assert_int_equal(b.capacity, 100);
	assert_int_equal(rate_bucket_wait_ns(&b, 100, 5 * S), 0);
	rate_bucket_take(&b, 100);
	assert_int_equal(rate_bucket_wait_ns(&b, 1, 5 * S), 1 * MS);
	assert_int_equal(rate_bucket_wait_ns(&b, 50, 5 * S), 50 * MS);
	/* 20 ms later 20 tokens are there, 30 more take 30 ms */
	assert_int_equal(rate_bucket_wait_ns(&b, 50, 5 * S + 20 * MS), 30 * MS);
	/* an hour idle fills the bucket, no more */
	assert_int_equal(rate_bucket_wait_ns(&b, 100, 3605 * S), 0);
	assert_int_equal(b.budget, 100);
	rate_bucket_take(&b, 100);
	assert_int_equal(rate_bucket_wait_ns(&b, 1, 3605 * S), 1 * MS);
}

/* A rate that does not divide a second: fractions of a token carry over. */
static void test_fractions_carry(void **state)
{
	struct rate_bucket b;
	uint64_t now = 0;

	(void)state;
	rate_bucket_init(&b, 3, now);
	assert_int_equal(b.capacity, 1); /* at least one token, however low the rate */
	rate_bucket_take(&b, 1);
	assert_int_equal(rate_bucket_wait_ns(&b, 1, now), 333333334);
	/* refilled often, one ns short of a token: nothing is lost in rounding */
	for (int i = 0; i < 333; i++)
		assert_int_not_equal(rate_bucket_wait_ns(&b, 1, now += 1000000), 0);
	now += 333332; /* 333333332 ns in all: 999999996 token-ns */
	assert_int_equal(rate_bucket_wait_ns(&b, 1, now), 2);
	assert_int_equal(rate_bucket_wait_ns(&b, 1, now + 2), 0);
}

/* A request bigger than the bucket passes when it is full, and its debt is waited out. */
static void test_oversized_request(void **state)
{
	struct rate_bucket b;

	(void)state;
	rate_bucket_init(&b, 1000, 0);
	assert_int_equal(rate_bucket_wait_ns(&b, 500, 0), 0);
	rate_bucket_take(&b, 500);
	assert_int_equal(b.budget, -400);
	assert_int_equal(rate_bucket_wait_ns(&b, 10, 0), 410 * MS);
	/* half full: the big request waits for a full bucket only, not for 500 tokens */
	assert_int_equal(rate_bucket_wait_ns(&b, 500, 450 * MS), 50 * MS);
	assert_int_equal(rate_bucket_wait_ns(&b, 500, 500 * MS), 0);
}

/*
 * A guest that always has the next request ready, on a clock that jumps to
 * each wake-up; returns when the last of total / request requests passed.
 */
static uint64_t drive(uint64_t rate, uint64_t request, uint64_t total, uint64_t *capacity)
{
	struct rate_bucket b;
	uint64_t now = 0, moved = 0;

	rate_bucket_init(&b, rate, now);
	*capacity = b.capacity;
	while (moved < total) {
		uint64_t wait = rate_bucket_wait_ns(&b, request, now);

		if (wait) {
			now += wait;
			continue;
		}
		rate_bucket_take(&b, request);
		moved += request;
	}
	return now;
}

/* Over many requests the bytes moved over the time taken are the rate. */
static void test_average_is_the_rate(void **state)
{
	const uint64_t rate = 1 << 20, total = 40ULL << 20;
	uint64_t capacity, t;

	(void)state;
	/* small requests: the first bucketful was free, the rest came at the rate */
	t = drive(rate, 16 << 10, total, &capacity);
	assert_int_equal(capacity, rate / 10);
	assert_in_range(t, (total - capacity) * S / rate - 1000,
			(total - capacity) * S / rate + 1000);
	/* requests bigger than the bucket: each waits out the debt of the one before */
	t = drive(rate, 256 << 10, total, &capacity);
	assert_in_range(t, (total - (256 << 10)) * S / rate - 1000,
			(total - (256 << 10)) * S / rate + 1000);
}

/* Bytes and operations: a refusal from either takes nothing from the other. */
static void test_limiter_both_buckets(void **state)
{
	struct vmm_rate_limit limit = { .bandwidth = 10000, .ops = 20 };
	struct event_loop *loop;
	struct rate_limiter l;
	uint64_t now = time_now_ns();

	(void)state;
	assert_int_equal(event_loop_create(&loop), 0);
	assert_int_equal(rate_limiter_init(&l, &limit, loop, NULL, NULL), 0);
	assert_true(l.timer_fd >= 0);
	assert_true(rate_limiter_admit(&l, 600, now)); /* 2 ops, 1000 bytes in the buckets */
	assert_true(rate_limiter_admit(&l, 100, now));
	assert_false(rate_limiter_admit(&l, 100, now)); /* out of operations */
	assert_true(rate_limiter_blocked(&l));
	assert_int_equal(l.bytes.budget, 300); /* the refused request took no bytes */
	rate_limiter_destroy(&l);
	event_loop_destroy(loop);
}

static unsigned resumed;

static void resume_count(void *opaque)
{
	resumed++;
	event_loop_stop(opaque);
}

/* The timer wakes the device on the loop once, and then the request passes. */
static void test_limiter_timer(void **state)
{
	struct vmm_rate_limit limit = { .ops = 100 };
	struct event_loop *loop;
	struct rate_limiter l;
	unsigned admitted = 0;

	(void)state;
	assert_int_equal(event_loop_create(&loop), 0);
	assert_int_equal(rate_limiter_init(&l, &limit, loop, resume_count, loop), 0);
	while (rate_limiter_admit(&l, 0, time_now_ns()))
		admitted++;
	assert_int_equal(admitted, 10); /* a tenth of a second's operations */
	assert_false(rate_limiter_admit(&l, 0, time_now_ns())); /* still blocked: no re-arm */
	assert_int_equal(event_loop_run(loop), 0);		/* returns once the timer fired */
	assert_int_equal(resumed, 1);
	assert_false(rate_limiter_blocked(&l));
	assert_true(rate_limiter_admit(&l, 0, time_now_ns()));
	rate_limiter_destroy(&l);
	event_loop_destroy(loop);
}

/* Without a loop there is nothing to wait on: no limit (and no fd). */
static void test_limiter_without_loop(void **state)
{
	struct vmm_rate_limit limit = { .bandwidth = 1, .ops = 1 };
	struct rate_limiter l;

	(void)state;
	assert_int_equal(rate_limiter_init(&l, &limit, NULL, NULL, NULL), 0);
	assert_int_equal(l.timer_fd, -1);
	assert_true(rate_limiter_admit(&l, 1 << 20, 0));
	assert_true(rate_limiter_admit(&l, 1 << 20, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unlimited),
		cmocka_unit_test(test_capacity_and_refill),
		cmocka_unit_test(test_fractions_carry),
		cmocka_unit_test(test_oversized_request),
		cmocka_unit_test(test_average_is_the_rate),
		cmocka_unit_test(test_limiter_both_buckets),
		cmocka_unit_test(test_limiter_timer),
		cmocka_unit_test(test_limiter_without_loop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
