/* common/: logging, error reporting, size parsing and time, used by every host module. */
#ifndef SNAPVM_COMMON_H
#define SNAPVM_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a)	  (sizeof(a) / sizeof((a)[0]))
#define ALIGN_UP(x, a)	  (((x) + ((a)-1)) & ~((__typeof__(x))(a)-1))
#define ALIGN_DOWN(x, a)  ((x) & ~((__typeof__(x))(a)-1))
#define MIN(a, b)	  ((a) < (b) ? (a) : (b))
#define MAX(a, b)	  ((a) > (b) ? (a) : (b))
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#define STRINGIFY(x)	  STRINGIFY_TEXT(x)
#define STRINGIFY_TEXT(x) #x

#define KiB	  (1024ULL)
#define MiB	  (1024ULL * KiB)
#define GiB	  (1024ULL * MiB)
#define PAGE_SIZE 4096ULL

/* Process exit codes shared by every command. */
enum {
	EXIT_OK = 0,
	EXIT_RUNTIME = 1, /* something failed while running */
	EXIT_USAGE = 2,	  /* bad arguments or bad input files; nothing was started */
};

enum log_level {
	LOG_QUIET = -1, /* as log_threshold: nothing is printed (fuzzers) */
	LOG_ERROR,
	LOG_WARN,
	LOG_INFO,
	LOG_DEBUG,
};

/* Messages at or below this level are printed (default LOG_WARN). */
extern enum log_level log_threshold;

/* Prints one line "snapvm: error: ..." to stderr. */
void log_error(const char *fmt, ...) PRINTF_LIKE(1, 2);
/* log_error() for input that is refused (a bad file, a bad name); returns -EINVAL. */
int log_invalid(const char *fmt, ...) PRINTF_LIKE(1, 2);
/* Prints one line "snapvm: warning: ..." to stderr. */
void log_warn(const char *fmt, ...) PRINTF_LIKE(1, 2);
/* Prints one line "snapvm: ..." to stderr when verbose. */
void log_info(const char *fmt, ...) PRINTF_LIKE(1, 2);
/* Prints one line to stderr when debugging (-vv). */
void log_debug(const char *fmt, ...) PRINTF_LIKE(1, 2);

/* Parses "4096", "4K", "128M", "2G" (binary units, optional "iB"/"B") into bytes. */
int parse_size(const char *text, uint64_t *bytes);
/* Parses a whole decimal (or 0x hex) unsigned number; rejects trailing junk. */
int parse_u64(const char *text, uint64_t *value);

/* snprintf for paths: 0, or -ENAMETOOLONG if the result did not fit. */
int path_format(char *path, size_t size, const char *fmt, ...) PRINTF_LIKE(3, 4);

/* Copies text into out as the inside of a JSON string (quotes, backslashes, controls escaped). */
void json_escape(const char *text, char *out, size_t size);
/* CLOCK_MONOTONIC when the process started (before main). */
uint64_t process_start_ns(void);

/* SHA-256 (sha256.c says why not EVP). */
struct sha256_state {
	uint64_t opaque[16];
};
void sha256_digest(const void *data, size_t len, uint8_t digest[32]);
void sha256_begin(struct sha256_state *state);
void sha256_add(struct sha256_state *state, const void *data, size_t len);
void sha256_end(struct sha256_state *state, uint8_t digest[32]);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t time_now_ns(void);
/* CLOCK_REALTIME in nanoseconds. */
uint64_t time_realtime_ns(void);

/* write(2) the whole buffer, retrying on EINTR and short writes; 0 or -errno. */
int write_all(int fd, const void *buf, size_t len);
/* pread(2) exactly len bytes at offset; 0, -EIO on a short file, or -errno. */
int pread_all(int fd, void *buf, size_t len, uint64_t offset);
/* Reads a whole file into a malloc'ed buffer; 0 or -errno. */
int file_read_all(const char *path, uint8_t **data, size_t *len, size_t max_len);
/* Replaces path with the buffer in one step (a temporary file, then rename); 0 or -errno. */
int file_write_atomic(const char *path, const void *data, size_t len);

/*
 * seccomp (sandbox.c): each kind of thread runs under its own allow-list.
 * The CLI sets the mode once; a thread calls sandbox_thread_enter() when it
 * starts its work. Threads it creates afterwards inherit its filter.
 */
enum sandbox_mode {
	SANDBOX_OFF, /* no filter */
	SANDBOX_LOG, /* a forbidden call is logged by the kernel (audit, dmesg) and runs */
	SANDBOX_ON,  /* a forbidden call ends the process with a line naming it (status 159) */
};
enum sandbox_thread {
	SANDBOX_NONE,		/* no filter yet */
	SANDBOX_STARTUP,	/* a VM process from its options to its first guest instruction */
	SANDBOX_LOOP,		/* the main thread after start-up: event loop and devices */
	SANDBOX_VCPU,		/* a vCPU thread */
	SANDBOX_PAGER,		/* userfaultfd page faults, eager loading: store reads */
	SANDBOX_PREFETCH,	/* working-set prefetch through io_uring */
	SANDBOX_STORE_WORKER,	/* a snapshot's compression workers */
	SANDBOX_HTTP,		/* serve's HTTP connection threads */
	SANDBOX_SUPERVISOR,	/* a process that starts clones (serve, restore --clones) */
	SANDBOX_JAILED_STARTUP, /* start-up, and what --jail's jail_lock() does */
	SANDBOX_KINDS,		/* the number of kinds */
};
/* Parses "off", "log" or "on"; 0 or -EINVAL. */
int sandbox_mode_parse(const char *text, enum sandbox_mode *mode);
/* "off", "log" or "on". */
const char *sandbox_mode_name(enum sandbox_mode mode);
/* Sets the mode for every later sandbox_thread_enter(); 0 or -errno. */
int sandbox_mode_set(enum sandbox_mode mode);
/* Installs this thread's filter for its kind (nothing when off); 0 or -errno, logged. */
int sandbox_thread_enter(enum sandbox_thread kind);
/* The kind this thread entered last. */
enum sandbox_thread sandbox_thread_current(void);
/* A system call's number on this architecture by name; -1 if there is none. */
long sandbox_syscall_number(const char *name);
/* "vCPU", "pager", ...: a kind's name in messages. */
const char *sandbox_thread_name(enum sandbox_thread kind);

#endif
