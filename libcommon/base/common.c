/* common.c: errors, allocation, checked output, atomic files, PRNG. */
#include "base/common.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *lp_prog = "llamapipe";

/* ---- pending temporaries, removed on error or signal ---- */

struct lp_atomic {
	char *path, *tmp;
	FILE *f;
	struct lp_atomic *next;
};
static struct lp_atomic *pending;

static void remove_pending(void)
{
	for (struct lp_atomic *a = pending; a; a = a->next)
		unlink(a->tmp); /* async-signal-safe */
}

static void on_signal(int sig)
{
	remove_pending();
	signal(sig, SIG_DFL);
	raise(sig);
}

void lp_init(const char *argv0)
{
	const char *s = strrchr(argv0, '/');
	lp_prog = s ? s + 1 : argv0;
	lp_omp_env_link();
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	signal(SIGPIPE, on_signal);
	opterr = 0; /* lp_bad_option says it, on one line */
}

/* Length of the valid UTF-8 sequence at p (of n bytes), 0 if none. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	size_t len;
	unsigned lo = 0x80, hi = 0xbf;
	if (p[0] < 0x80)
		return 1;
	else if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		if (p[0] == 0xe0) lo = 0xa0;
		if (p[0] == 0xed) hi = 0x9f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		if (p[0] == 0xf0) lo = 0x90;
		if (p[0] == 0xf4) hi = 0x8f;
	} else
		return 0;
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return len;
}

size_t lp_utf8_check(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < n) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		size_t k = utf8_len(p + i, n - i);
		if (!k)
			return i;
		i += k;
	}
	return n;
}

size_t lp_escape(char *dst, size_t cap, const char *src, size_t n)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t o = 0;
	if (!cap)
		return 0;
	for (size_t i = 0; i < n;) {
		char e[8];
		size_t k = utf8_len(s + i, n - i), elen;
		if (k > 1) {
			if (o + k >= cap)
				break;
			memcpy(dst + o, s + i, k);
			o += k;
			i += k;
			continue;
		}
		unsigned char c = s[i++];
		if (k == 1 && c >= 0x20 && c != 0x7f && c != '\\') {
			e[0] = c;
			elen = 1;
		} else if (c == '\\' || c == '\n' || c == '\r' || c == '\t') {
			e[0] = '\\';
			e[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\t' ? 't' : '\\';
			elen = 2;
		} else
			elen = (size_t)snprintf(e, sizeof e, "\\x%02x", c);
		if (o + elen >= cap)
			break;
		memcpy(dst + o, e, elen);
		o += elen;
	}
	dst[o] = 0;
	return o;
}

static int stdout_jsonl;

void lp_stdout_jsonl(void)
{
	stdout_jsonl = 1;
}

static char last_msg[4096];

/* ---- the progress line ---- */

static int progress_shown;

void lp_progress_clear(void)
{
	if (progress_shown) {
		(void)!write(2, "\r\033[K", 4);
		progress_shown = 0;
	}
}

void lp_progress(const char *fmt, ...)
{
	static int tty = -1;
	if (tty < 0)
		tty = isatty(2);
	if (!tty || lp_quiet)
		return;
	char buf[512];
	int n = snprintf(buf, sizeof buf, "\r%s: ", lp_prog);
	va_list ap;
	va_start(ap, fmt);
	if (n > 0 && n < (int)sizeof buf)
		n += vsnprintf(buf + n, sizeof buf - n, fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof buf - 4)
		n = sizeof buf - 4;
	memcpy(buf + n, "\033[K", 3);
	n += 3;
	fflush(stdout);
	(void)!write(2, buf, n);
	progress_shown = 1;
}

static void vmsg(const char *where, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
static void vmsg(const char *where, const char *fmt, va_list ap)
{
	lp_progress_clear();
	char raw[4096], *buf = last_msg;
	int n = 0;
	if (where)
		n = snprintf(raw, sizeof raw, "%s: ", where);
	if (n < (int)sizeof raw)
		vsnprintf(raw + n, sizeof raw - n, fmt, ap);
	n = snprintf(buf, sizeof last_msg, "%s: ", lp_prog);
	n += (int)lp_escape(buf + n, sizeof last_msg - n - 1, raw, strlen(raw));
	buf[n++] = '\n';
	buf[n] = 0;
	fflush(stdout);
	(void)!write(2, buf, n);
}

void lp_die(const char *where, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg(where, fmt, ap);
	va_end(ap);
	remove_pending();
	if (stdout_jsonl && !isatty(STDOUT_FILENO)) {
		signal(SIGPIPE, SIG_IGN);
		if (fflush(stdout) == 0) {
			(void)!write(STDOUT_FILENO, "\n" LP_ABORT_LINE, strlen("\n" LP_ABORT_LINE));
			(void)!write(STDOUT_FILENO, last_msg, strlen(last_msg));
		}
	}
	exit(LP_EXIT_FAIL);
}

void lp_usage_error(const char *fmt, ...)
{
	char what[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	lp_warn(NULL, "%s (see '%s --help')", what, lp_prog);
	remove_pending();
	exit(LP_EXIT_USAGE);
}

void lp_warn(const char *where, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg(where, fmt, ap);
	va_end(ap);
}

int lp_quiet;

void lp_info(const char *fmt, ...)
{
	if (lp_quiet)
		return;
	va_list ap;
	va_start(ap, fmt);
	vmsg(NULL, fmt, ap);
	va_end(ap);
}

int lp_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* ---- allocation ---- */

static void *oom(size_t n)
{
	lp_die(NULL, "out of memory (%zu bytes)", n);
}

void *lp_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	return p ? p : oom(n);
}

void *lp_calloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	return p ? p : oom(n * size);
}

void *lp_realloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	return p ? p : oom(n);
}

char *lp_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	return memcpy(lp_malloc(n), s, n);
}

void lp_grow(void **p, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return;
	size_t c = *cap ? *cap : 16;
	while (c < need) {
		if (c > SIZE_MAX / 2 / size)
			oom(SIZE_MAX);
		c *= 2;
	}
	*p = lp_realloc(*p, c * size);
	*cap = c;
}

/* ---- option values ---- */

long long lp_parse_int(const char *opt, const char *s, long long lo, long long hi)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end)
		lp_usage_error("%s: '%s' is not an integer", opt, s);
	if (v < lo || v > hi)
		lp_usage_error("%s: %lld is out of range [%lld, %lld]", opt, v, lo, hi);
	return v;
}

double lp_parse_double(const char *opt, const char *s, double lo, double hi)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v))
		lp_usage_error("%s: '%s' is not a number", opt, s);
	if (v < lo || v > hi)
		lp_usage_error("%s: %g is out of range [%g, %g]", opt, v, lo, hi);
	return v;
}

char *lp_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		lp_die(path, "%s", strerror(errno));
	size_t cap = 1 << 16, n = 0;
	char *buf = lp_malloc(cap);
	for (;;) {
		if (n + 1 >= cap)
			buf = lp_realloc(buf, cap *= 2);
		size_t got = fread(buf + n, 1, cap - n - 1, f);
		n += got;
		if (got == 0)
			break;
	}
	if (ferror(f))
		lp_die(path, "read error: %s", strerror(errno));
	fclose(f);
	buf[n] = 0;
	if (len)
		*len = n;
	return buf;
}

/* ---- checked output ---- */

static _Noreturn void write_failed(const char *name)
{
	if (errno == EPIPE)
		lp_die(name, "broken pipe");
	lp_die(name, "write error: %s", strerror(errno ? errno : EIO));
}

void lp_fwrite(FILE *f, const char *name, const void *p, size_t n)
{
	if (n && fwrite(p, 1, n, f) != n)
		write_failed(name);
}

void lp_fflush(FILE *f, const char *name)
{
	errno = 0;
	if (fflush(f) != 0 || ferror(f))
		write_failed(name);
}

void lp_close_stdout(void)
{
	errno = 0;
	if (fflush(stdout) != 0 || ferror(stdout))
		write_failed("stdout");
	if (fclose(stdout) != 0 && errno != EBADF)
		write_failed("stdout");
}

FILE *lp_fopen(const char *path, const char *mode)
{
	if (!strcmp(path, "-"))
		return mode[0] == 'r' ? stdin : stdout;
	FILE *f = fopen(path, mode);
	if (!f)
		lp_die(path, "%s", strerror(errno));
	return f;
}

void lp_fclose_checked(FILE *f, const char *name)
{
	errno = 0;
	if (fflush(f) != 0 || ferror(f))
		write_failed(name);
	if (f != stdout && fsync(fileno(f)) != 0 && errno != EINVAL && errno != EROFS)
		write_failed(name);
	if (fclose(f) != 0)
		write_failed(name);
}

/* ---- atomic files ---- */

lp_atomic *lp_atomic_create(const char *path)
{
	struct lp_atomic *a = lp_calloc(1, sizeof *a);
	a->path = lp_strdup(path);
	char *d = lp_strdup(path), *b = lp_strdup(path);
	size_t n = strlen(path) + 64;
	a->tmp = lp_malloc(n);
	snprintf(a->tmp, n, "%s/.%s.tmp.%ld", dirname(d), basename(b), (long)getpid());
	free(d);
	free(b);
	int fd = open(a->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		lp_die(path, "cannot create: %s", strerror(errno));
	a->f = fdopen(fd, "wb");
	if (!a->f)
		lp_die(path, "%s", strerror(errno));
	a->next = pending;
	pending = a;
	return a;
}

FILE *lp_atomic_file(lp_atomic *a) { return a->f; }

static void unlink_pending(lp_atomic *a)
{
	for (struct lp_atomic **pp = &pending; *pp; pp = &(*pp)->next)
		if (*pp == a) {
			*pp = a->next;
			break;
		}
	free(a->path);
	free(a->tmp);
	free(a);
}

void lp_atomic_commit(lp_atomic *a)
{
	lp_fclose_checked(a->f, a->path);
	if (rename(a->tmp, a->path) != 0)
		lp_die(a->path, "cannot rename into place: %s", strerror(errno));
	char *d = lp_strdup(a->path);
	int fd = open(dirname(d), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	free(d);
	unlink_pending(a);
}

void lp_atomic_abort(lp_atomic *a)
{
	fclose(a->f);
	unlink(a->tmp);
	unlink_pending(a);
}

long lp_find_sorted(const size_t *idx, size_t n, const char *name,
		const char *(*name_at)(const void *ctx, size_t item), const void *ctx)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, name_at(ctx, idx[mid]));
		if (!c)
			return (long)idx[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -1;
}

/* ---- PRNG ---- */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void lp_rng_seed(lp_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t lp_rng_next(lp_rng *r)
{
	uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return out;
}

uint64_t lp_rng_below(lp_rng *r, uint64_t n)
{
	/* rejection sampling: no modulo bias */
	uint64_t lim = UINT64_MAX - UINT64_MAX % n, x;
	do
		x = lp_rng_next(r);
	while (x >= lim);
	return x % n;
}
