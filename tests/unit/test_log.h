/*
 * Unit tests read what a refused input logged: between log_capture_start()
 * and log_capture_stop() (or within LOGGED()), stderr is a buffer, so a test
 * can check the one line that names the problem. Include it after <cmocka.h>.
 */
#ifndef SNAPVM_TEST_LOG_H
#define SNAPVM_TEST_LOG_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static FILE *log_capture_stderr;
static char *log_capture_text;
static size_t log_capture_len;

static inline void log_capture_start(void)
{
	log_capture_stderr = stderr;
	stderr = open_memstream(&log_capture_text, &log_capture_len);
	if (!stderr)
		abort();
}

/* Puts stderr back and copies what was logged meanwhile into out. */
static inline void log_capture_stop(char *out, size_t size)
{
	fclose(stderr);
	stderr = log_capture_stderr;
	snprintf(out, size, "%s", log_capture_text);
	free(log_capture_text);
	log_capture_text = NULL;
}

/* Evaluates call (an int), with what it logged copied into the char array out. */
#define LOGGED(out, call)                           \
	({                                          \
		int logged_ret_;                    \
                                                    \
		log_capture_start();                \
		logged_ret_ = (call);               \
		log_capture_stop(out, sizeof(out)); \
		logged_ret_;                        \
	})

/* Fails the test unless logged (as LOGGED() copied it) is one line that mentions fragment. */
static inline void log_expect_one_line(const char *logged, const char *fragment)
{
	if (!strstr(logged, fragment))
		fail_msg("error '%s' does not mention '%s'", logged, fragment);
	assert_ptr_equal(strchr(logged, '\n'), logged + strlen(logged) - 1);
}

#endif
