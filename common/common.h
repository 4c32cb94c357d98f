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

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Messages at or below this level are printed (default LOG_WARN). */
extern enum log_level log_threshold;

/* Prints one line "snapvm: error: ..." to stderr. */
void log_error(const char *fmt, ...) PRINTF_LIKE(1, 2);
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

#endif
