/* common/: size and number parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>

#include "common/common.h"

static void test_parse_size_units(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(parse_size("4096", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(parse_size("4K", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(parse_size("128M", &v), 0);
	assert_int_equal(v, 128ULL << 20);
	assert_int_equal(parse_size("2g", &v), 0);
	assert_int_equal(v, 2ULL << 30);
	assert_int_equal(parse_size("64MiB", &v), 0);
	assert_int_equal(v, 64ULL << 20);
	assert_int_equal(parse_size("16MB", &v), 0);
	assert_int_equal(v, 16ULL << 20);
	assert_int_equal(parse_size("0", &v), 0);
	assert_int_equal(v, 0);
}

static void test_parse_size_rejects(void **state)
{
	uint64_t v = 7;

	(void)state;
	assert_int_equal(parse_size("", &v), -EINVAL);
	assert_int_equal(parse_size("M", &v), -EINVAL);
	assert_int_equal(parse_size("-1M", &v), -EINVAL);
	assert_int_equal(parse_size("12X", &v), -EINVAL);
	assert_int_equal(parse_size("1MM", &v), -EINVAL);
	assert_int_equal(parse_size(" 1M", &v), -EINVAL);
	assert_int_equal(parse_size("1.5G", &v), -EINVAL);
	assert_int_equal(parse_size("99999999999999999999", &v), -ERANGE);
	assert_int_equal(parse_size("20000000000T", &v), -ERANGE);
	assert_int_equal(v, 7); /* untouched on error */
}

static void test_parse_u64(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(parse_u64("42", &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(parse_u64("0x10", &v), 0);
	assert_int_equal(v, 16);
	assert_int_equal(parse_u64("18446744073709551615", &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(parse_u64("18446744073709551616", &v), -ERANGE);
	assert_int_equal(parse_u64("-3", &v), -EINVAL);
	assert_int_equal(parse_u64("3 ", &v), -EINVAL);
	assert_int_equal(parse_u64("", &v), -EINVAL);
	assert_int_equal(parse_u64(NULL, &v), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_size_units),
		cmocka_unit_test(test_parse_size_rejects),
		cmocka_unit_test(test_parse_u64),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
