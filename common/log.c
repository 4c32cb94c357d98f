#include "common/common.h"

#include <errno.h>
#include <stdio.h>

enum log_level log_threshold = LOG_WARN;

static uint64_t log_start_ns;

/* Debug lines carry the time since start-up, to see where start-up time goes. */
__attribute__((constructor)) static void log_start_clock(void)
{
	log_start_ns = time_now_ns();
}

uint64_t process_start_ns(void)
{
	return log_start_ns;
}

static void log_line(enum log_level level, const char *prefix, const char *fmt, va_list ap)
{
	char line[1024];

	if (level > log_threshold)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	/* One fprintf per line so that lines from different threads do not interleave. */
	if (level == LOG_DEBUG)
		fprintf(stderr, "snapvm: [%8.3f ms] %s\n", (time_now_ns() - log_start_ns) / 1e6,
			line);
	else
		fprintf(stderr, "snapvm: %s%s\n", prefix, line);
}

#define DEFINE_LOG_FUNCTION(name, level, prefix)  \
	void name(const char *fmt, ...)           \
	{                                         \
		va_list ap;                       \
		va_start(ap, fmt);                \
		log_line(level, prefix, fmt, ap); \
		va_end(ap);                       \
	}

DEFINE_LOG_FUNCTION(log_error, LOG_ERROR, "error: ")
DEFINE_LOG_FUNCTION(log_warn, LOG_WARN, "warning: ")
DEFINE_LOG_FUNCTION(log_info, LOG_INFO, "")
DEFINE_LOG_FUNCTION(log_debug, LOG_DEBUG, "debug: ")

int log_invalid(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line(LOG_ERROR, "error: ", fmt, ap);
	va_end(ap);
	return -EINVAL;
}
