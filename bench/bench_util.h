/* Helpers shared by the benchmarks: child processes, timing, statistics (private to bench/). */
#ifndef SNAPVM_BENCH_UTIL_H
#define SNAPVM_BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct option; /* <getopt.h> */

struct child {
	pid_t pid;
	int in_fd;  /* the child's stdin */
	int out_fd; /* the child's stdout */
	char buf[4096];
	size_t len; /* bytes of output kept in buf, after the last consumed line */
};

enum child_stderr {
	CHILD_STDERR_NULL,  /* to /dev/null */
	CHILD_STDERR_KEEP,  /* to ours */
	CHILD_STDERR_MERGE, /* into its stdout pipe, to be read with its output */
};

/* Starts argv with pipes for stdin and stdout. */
int child_spawn(char *const argv[], enum child_stderr err, struct child *child);
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

/*
 * One bench's command line. Every bench parses the same way (bench_parse), so
 * that their errors read alike and a fix reaches all of them.
 */
struct bench_cli {
	const char *name;	      /* "blk": messages start "snapvm bench blk: " */
	const struct option *options; /* getopt_long's table: every option the bench takes */
	/*
	 * One option (value is NULL for flags): 0, or EXIT_USAGE after
	 * bench_usage_error. NULL where the bench takes only those below.
	 */
	int (*option)(int opt, const char *value, void *ctx);
	void (*help)(void);
	/*
	 * Handled here instead of by option(): 'h' (--help), and where these are
	 * set, 'j' (--json), 'k' (--kernel; without it, the test guest beside
	 * snapvm), 'r' (--runs N, 1 to max_runs) and 'q' (--vs-qemu, refused
	 * where QEMU is not installed), which the benches take alike.
	 */
	bool *json;
	char *kernel;
	size_t kernel_size;
	unsigned *runs;
	unsigned max_runs;
	bool *vs_qemu;
};

/*
 * Parses argv (argv[0] is the bench's name), handing each option to
 * cli->option with ctx (the bench's options): 0, -1 after --help, or
 * EXIT_USAGE with a message.
 */
int bench_parse(const struct bench_cli *cli, int argc, char **argv, void *ctx);
/* Prints "snapvm bench NAME: " and the message to stderr; returns EXIT_USAGE. */
int bench_usage_error(const char *bench, const char *format, ...)
	__attribute__((format(printf, 2, 3)));

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

/* What snapvm puts before a Linux command line (vmm/kernel.c), for QEMU to get the same. */
#define BENCH_QEMU_LINUX_APPEND "console=ttyS0 reboot=k panic=-1"
/*
 * Makes argv (n arguments from bench_qemu_argv) boot a Linux guest as snapvm
 * does: with QEMU microvm's ACPI tables if acpi (as snapvm gives Linux its
 * own by default), else acpi=off (snapvm's --acpi off: an MP table), and with
 * "-initrd FILE" if initrd is not NULL. Returns the new count.
 */
int bench_qemu_argv_linux(char **argv, int n, size_t max, const char *initrd, bool acpi);

/*
 * KVM on VT-x or AMD-V, where a Linux guest reaches its init; PVM hosts
 * (../shared/docs/HOST.md) have neither flag.
 */
bool bench_host_has_hardware_virtualization(void);
/* Where Linux cannot boot: says why (as JSON with --json, "skipped") instead of a figure. */
int bench_report_no_linux(const char *bench, bool json);

/* A QMP connection to QEMU (its -qmp unix:PATH,server=on,wait=off socket). */
struct qmp;

/* Connects (retrying until QEMU has made the socket) and negotiates; NULL on failure. */
struct qmp *qemu_qmp_open(const char *socket_path, int timeout_ms);
/* Sends one command (a JSON object); its "return" line goes to reply; -EIO on "error". */
int qemu_qmp_command(struct qmp *q, const char *command, char *reply, size_t size, int timeout_ms);
/* Waits until the VM runs (after an incoming migration QEMU resumes it by itself). */
int qemu_qmp_wait_running(struct qmp *q, int timeout_ms);
void qemu_qmp_close(struct qmp *q);
/* Makes a fresh directory under $TMPDIR (or /tmp) for a benchmark's files. */
int bench_tmpdir(char *path, size_t size);
/* Removes a directory made by bench_tmpdir and everything in it. */
void bench_tmpdir_remove(const char *path);
/*
 * The raw-copy cache of the mmap-huge mode: a tmpfs with huge=always at
 * DIR/huge-cache, in a mount namespace that this process and its children
 * share and that ends with them (root only). path is empty on failure.
 */
int bench_huge_cache_mount(const char *dir, char *path, size_t size);
void bench_huge_cache_unmount(const char *path);

/* The guest a bench snapshots: the test guest with heap=HEAP, or Linux with its initramfs. */
struct bench_guest {
	const char *kernel;
	const char *initrd; /* Linux: its initramfs; NULL for the test guest */
	const char *mem;
	const char *heap; /* the test guest's heap= (its command line); NULL for Linux */
};

/*
 * Boots the guest as the original VM: `snapvm -v run --snapshot-on-ready
 * NAME --resume`, which stores the snapshot at the ready code and runs on.
 * Returns once -v's "snapvm: snapshot ..." line is read (into line, if not
 * NULL): a request sent on READY could reach the UART before the capture and
 * be stored in the snapshot, for every clone to answer. The caller ends the
 * child.
 */
int bench_original_start(const struct bench_guest *guest, const char *name, const char *store,
			 struct child *child, char *line, size_t line_size, int timeout_ms);
/* The number after "key": in a line of snapvm's own JSON output; NAN if it is missing. */
double bench_json_number(const char *line, const char *key);
/* Percentile p (0-100) of n values (sorts them in place). */
double stats_percentile(double *values, size_t n, double p);

#endif
