/* Layer base/ (libbase.a): what every other part of libcommon and the
 * compute layer stand on, and the only part kernels/ may include: errors
 * and exit codes, checked allocation, atomic files and directories,
 * element types and half floats, buffered input (zstd undone). It knows
 * no file format and no model. */

/* common.h: error reporting, checked allocation, atomic file writes.
 *
 * Every tool reports problems as one line on stderr, "prog: where: what",
 * and exits non-zero: 1 for bad input or a failed operation, 2 for a usage
 * error. lp_die() is the one way out on error; it first removes any
 * temporary files registered by lp_atomic_create(), so an interrupted or
 * failed run never leaves a half-written file under its real name. */
#ifndef LP_COMMON_H
#define LP_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define LP_EXIT_FAIL 1
#define LP_EXIT_USAGE 2

extern const char *lp_prog;

/* Set the program name used in messages (basename of argv0). Installs
 * SIGINT/SIGTERM/SIGHUP/SIGPIPE handlers that remove pending temporaries. */
void lp_init(const char *argv0);
/* Links omp_env.c, which sets OMP_WAIT_POLICY=passive when it is unset. */
void lp_omp_env_link(void);

/* "prog: where: what\n" on stderr, then exit(1). where may be NULL.
 * Messages are always one line: control characters and bytes that are not
 * UTF-8 (from a file quoted in the message) are written as escapes, \n,
 * \t, \x1b, so a message cannot break a line or drive the terminal. */
_Noreturn void lp_die(const char *where, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Same, one line with a hint to read --help, exit status 2. */
_Noreturn void lp_usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
/* "prog: where: what\n" on stderr; carries on. */
void lp_warn(const char *where, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* "prog: what\n" on stderr: progress and summaries for people; nothing
 * when lp_quiet is set (-q). */
void lp_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern int lp_quiet;

/* The progress line: one line on stderr, only when stderr is a terminal
 * (and not -q), rewritten in place by each call. Every message above
 * clears it first, and so must a tool before writing to a stdout that is
 * the same terminal (lp_progress_clear), so nothing shares its line. */
void lp_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void lp_progress_clear(void);

/* src[0..n) into dst[cap] (always terminated), with '\\', control
 * characters, DEL and bytes that are not valid UTF-8 escaped as \\, \n,
 * \r, \t, \xHH. Returns strlen(dst). */
size_t lp_escape(char *dst, size_t cap, const char *src, size_t n);
/* Offset of the first byte of s[0..n) that does not start a valid UTF-8
 * sequence (overlong forms and surrogates are invalid), n if all are valid. */
size_t lp_utf8_check(const char *s, size_t n);

/* A tool whose stdout carries JSON lines calls this: lp_die then ends
 * stdout (when it is not a terminal) with an abort line, LP_ABORT_LINE and
 * the message, which is not JSON, so every JSONL reader downstream (ours,
 * jq) fails too instead of taking the records before it for the whole. */
void lp_stdout_jsonl(void);
#define LP_ABORT_LINE "!llamapipe-abort: "

void *lp_malloc(size_t n);
void *lp_calloc(size_t n, size_t size);
void *lp_realloc(void *p, size_t n);
char *lp_strdup(const char *s);
/* Grow *p (of *cap elements of size) to hold at least need elements. */
void lp_grow(void **p, size_t *cap, size_t need, size_t size);

/* For parsers that report instead of dying: format the message into
 * err[errlen] and return -1. */
int lp_fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Parse helpers for option values; die with a usage error naming opt. */
long long lp_parse_int(const char *opt, const char *s, long long lo, long long hi);
double lp_parse_double(const char *opt, const char *s, double lo, double hi);

/* Whole file into memory (NUL-terminated); dies naming path on failure. */
char *lp_read_file(const char *path, size_t *len);

/* Output streams: write errors (a full disk, a closed pipe) are checked at
 * every flush and named. lp_close_stdout() must be the last thing a tool
 * does before exit(0). */
void lp_fwrite(FILE *f, const char *name, const void *p, size_t n);
void lp_fflush(FILE *f, const char *name);
void lp_close_stdout(void);
/* fopen(path, mode) or die; "-" means stdout for "w" modes. */
FILE *lp_fopen(const char *path, const char *mode);
/* fflush + fsync + fclose, or die naming name. */
void lp_fclose_checked(FILE *f, const char *name);

/* Atomic file creation: writes go to "<dir>/.<base>.tmp.<pid>", and
 * lp_atomic_commit() fsyncs, renames over path and fsyncs the directory.
 * Until then the temporary is removed on lp_die() or a fatal signal. */
typedef struct lp_atomic lp_atomic;
lp_atomic *lp_atomic_create(const char *path);
FILE *lp_atomic_file(lp_atomic *a);
void lp_atomic_commit(lp_atomic *a);
void lp_atomic_abort(lp_atomic *a);

/* Binary search for name among n items kept sorted by name through an
 * index: name_at(ctx, idx[k]) is the name of the k-th item in order.
 * Returns the item's number idx[k], or -1 when no item has that name. */
long lp_find_sorted(const size_t *idx, size_t n, const char *name,
		const char *(*name_at)(const void *ctx, size_t item), const void *ctx);

/* Deterministic PRNG (splitmix64 seeded xoshiro256**). */
typedef struct { uint64_t s[4]; } lp_rng;
void lp_rng_seed(lp_rng *r, uint64_t seed);
uint64_t lp_rng_next(lp_rng *r);
/* Uniform in [0, n). */
uint64_t lp_rng_below(lp_rng *r, uint64_t n);

#endif
