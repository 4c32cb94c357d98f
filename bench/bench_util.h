/* Helpers shared by the benchmarks: child processes, timing, statistics (private to bench/). */
#ifndef SNAPVM_BENCH_UTIL_H
#define SNAPVM_BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct child {
	pid_t pid;
	int in_fd;  /* the child's stdin */
	int out_fd; /* the child's stdout */
	char buf[4096];
	size_t len; /* bytes of output kept in buf, after the last consumed line */
};

/* Starts argv with pipes for stdin and stdout; stderr goes to /dev/null unless keep_stderr. */
int child_spawn(char *const argv[], bool keep_stderr, struct child *child);
/*
 * Reads the child's output until a line equal to `line` (or starting with it
 * when prefix) arrives; copies that line to `got`. 0, -ETIMEDOUT, or -EPIPE
 * if the child closed its output first.
 */
int child_wait_line(struct child *child, const char *line, bool prefix, int timeout_ms, char *got,
		    size_t got_size);
/* Writes a line (a newline is added) to the child's stdin; 0 or -errno. */
int child_send_line(struct child *child, const char *line);
/* Waits up to timeout_ms for the child to exit, then kills it; returns its exit status or -1. */
int child_finish(struct child *child, int timeout_ms);
/* Kills and reaps the child at once. */
void child_kill(struct child *child);

/* The running snapvm binary and the test guest built beside it. */
const char *bench_self_path(void);
int bench_guest_path(char *path, size_t size);
/* Finds qemu-system-x86_64 on PATH; false if it is not installed. */
bool bench_qemu_available(void);
/*
 * Fills argv (NULL-terminated, pointing at the given strings) for QEMU microvm
 * booting `kernel` with `append` and `mem`, with the flags that work on PVM
 * hosts (../shared/docs/HOST.md). Returns the number of arguments.
 */
int bench_qemu_argv(char **argv, size_t max, const char *kernel, const char *append,
		    const char *mem);

/* Percentile p (0-100) of n values (sorts them in place). */
double stats_percentile(double *values, size_t n, double p);

#endif
