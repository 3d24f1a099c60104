/* reader.c: buffered reading from a file or pipe, with zstd undone on the fly.
 *
 * The reader keeps a window buf[pos, end) of decompressed bytes. Refilling
 * reads raw bytes from the fd; when the stream started with a zstd magic,
 * they go through a ZSTD_DStream first. */
#include "base/reader.h"
#include "base/common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

struct lp_reader {
	char *name;
	int fd;               /* -1 for memory readers */
	char *buf;            /* decompressed window */
	size_t pos, end, cap;
	uint64_t consumed;    /* bytes before buf[pos] */
	uint64_t lineno;
	int eof;              /* no more bytes will arrive */
	/* raw input (compressed or plain) */
	char *raw;
	size_t rpos, rend, rcap;
	int raw_eof;
	ZSTD_DStream *zs;
	size_t zlast;         /* last ZSTD_decompressStream return: 0 = frame ended */
	const char *mem;      /* memory reader */
	size_t memlen;
};

#define RAW_CAP (1 << 17)

/* Fill raw[] from the fd or memory; 0 at end. */
static size_t raw_fill(lp_reader *r)
{
	if (r->rpos == r->rend)
		r->rpos = r->rend = 0;
	if (r->raw_eof || r->rend == r->rcap)
		return 0;
	ssize_t n;
	if (r->fd < 0) {
		n = r->memlen;
		if ((size_t)n > r->rcap - r->rend)
			n = r->rcap - r->rend;
		memcpy(r->raw + r->rend, r->mem, n);
		r->mem += n;
		r->memlen -= n;
	} else {
		do
			n = read(r->fd, r->raw + r->rend, r->rcap - r->rend);
		while (n < 0 && errno == EINTR);
		if (n < 0)
			lp_die(r->name, "read error: %s", strerror(errno));
	}
	if (n == 0)
		r->raw_eof = 1;
	r->rend += n;
	return n;
}

static void make_room(lp_reader *r, size_t want)
{
	if (r->pos > 0 && r->pos == r->end) {
		r->consumed += r->pos;
		r->pos = r->end = 0;
	}
	if (r->cap - r->end >= want)
		return;
	if (r->pos > 0) { /* slide the window down */
		memmove(r->buf, r->buf + r->pos, r->end - r->pos);
		r->consumed += r->pos;
		r->end -= r->pos;
		r->pos = 0;
	}
	if (r->cap - r->end < want) {
		size_t need = r->end + want;
		r->buf = lp_realloc(r->buf, need);
		r->cap = need;
	}
}

/* Add at least one byte to the window; 0 at end of stream. */
static size_t fill(lp_reader *r)
{
	if (r->eof)
		return 0;
	make_room(r, RAW_CAP);
	if (!r->zs) {
		/* plain: read straight into the window via raw[] */
		if (r->rpos == r->rend && !raw_fill(r)) {
			r->eof = 1;
			return 0;
		}
		size_t n = r->rend - r->rpos;
		if (n > r->cap - r->end)
			n = r->cap - r->end;
		memcpy(r->buf + r->end, r->raw + r->rpos, n);
		r->rpos += n;
		r->end += n;
		return n;
	}
	for (;;) {
		if (r->rpos == r->rend && !raw_fill(r)) {
			r->eof = 1;
			if (r->zlast != 0)
				lp_die(r->name, "zstd stream truncated after %llu bytes of output", (unsigned long long)(r->consumed + r->end));
			return 0;
		}
		ZSTD_inBuffer in = {r->raw, r->rend, r->rpos};
		ZSTD_outBuffer out = {r->buf, r->cap, r->end};
		size_t ret = ZSTD_decompressStream(r->zs, &out, &in);
		if (ZSTD_isError(ret))
			lp_die(r->name, "zstd: %s", ZSTD_getErrorName(ret));
		r->zlast = ret;
		r->rpos = in.pos;
		size_t got = out.pos - r->end;
		r->end = out.pos;
		if (got)
			return got;
	}
}

static lp_reader *reader_new(const char *name, int fd, const void *mem, size_t memlen)
{
	static const unsigned char zmagic[4] = {0x28, 0xb5, 0x2f, 0xfd};
	lp_reader *r = lp_calloc(1, sizeof *r);
	r->name = lp_strdup(name);
	r->fd = fd;
	r->mem = mem;
	r->memlen = memlen;
	r->rcap = RAW_CAP;
	r->raw = lp_malloc(r->rcap);
	while (r->rend < 4 && raw_fill(r))
		;
	if (r->rend >= 4 && !memcmp(r->raw, zmagic, 4)) {
		r->zs = ZSTD_createDStream();
		if (!r->zs)
			lp_die(name, "out of memory for zstd");
		r->zlast = 1;
	}
	return r;
}

lp_reader *lp_reader_open(const char *path)
{
	if (!path || !strcmp(path, "-"))
		return reader_new("stdin", 0, NULL, 0);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		lp_die(path, "%s", strerror(errno));
	return reader_new(path, fd, NULL, 0);
}

lp_reader *lp_reader_mem(const void *p, size_t n, const char *name)
{
	return reader_new(name, -1, p, n);
}

void lp_reader_close(lp_reader *r)
{
	if (!r)
		return;
	if (r->fd > 0)
		close(r->fd);
	if (r->zs)
		ZSTD_freeDStream(r->zs);
	free(r->buf);
	free(r->raw);
	free(r->name);
	free(r);
}

const void *lp_reader_peek(lp_reader *r, size_t n, size_t *got)
{
	while (r->end - r->pos < n) {
		make_room(r, n - (r->end - r->pos));
		if (!fill(r))
			break;
	}
	*got = r->end - r->pos < n ? r->end - r->pos : n;
	return r->buf + r->pos;
}

size_t lp_reader_read(lp_reader *r, void *dst, size_t n)
{
	size_t done = 0;
	while (done < n) {
		if (r->pos == r->end && !fill(r))
			break;
		size_t k = r->end - r->pos;
		if (k > n - done)
			k = n - done;
		memcpy((char *)dst + done, r->buf + r->pos, k);
		r->pos += k;
		done += k;
	}
	return done;
}

char *lp_reader_line(lp_reader *r, size_t *len)
{
	size_t scanned = 0;
	for (;;) {
		size_t have = r->end - r->pos;
		char *nl = have > scanned ? memchr(r->buf + r->pos + scanned, '\n', have - scanned) : NULL;
		if (!nl && r->eof && have)
			make_room(r, 1); /* room for the NUL after a last line without '\n' */
		if (nl || (r->eof && have)) {
			char *start = r->buf + r->pos;
			size_t n = nl ? (size_t)(nl - start) : have;
			r->pos += nl ? n + 1 : n;
			if (n && start[n - 1] == '\r')
				n--;
			start[n] = 0;
			r->lineno++;
			if (len)
				*len = n;
			return start;
		}
		if (r->eof)
			return NULL;
		scanned = have;
		fill(r);
	}
}

uint64_t lp_reader_offset(const lp_reader *r) { return r->consumed + r->pos; }
uint64_t lp_reader_lineno(const lp_reader *r) { return r->lineno; }
const char *lp_reader_name(const lp_reader *r) { return r->name; }
int lp_reader_compressed(const lp_reader *r) { return r->zs != NULL; }
