/* frames.c: writing and reading frames (see frames.h and frames(5)).
 *
 * Fixed header, all little-endian:
 *
 *   0  magic "LPFR"       16  stored_len u64      40  header_xxh3 u64
 *   4  version u16        24  raw_len u64         48  shape u64 x rank
 *   6  dtype u8           32  payload_xxh3 u64        name (name_len bytes)
 *   7  rank u8                                        zero pad to 8
 *   8  flags u32                                      payload (stored_len)
 *  12  name_len u32                                   zero pad to 8
 *
 * header_xxh3 is the XXH3-64 of the whole header (fixed part with this
 * field zero, shape, name); payload_xxh3 that of the stored payload bytes.
 *
 * Trailer, the last 40 bytes of a stream:
 *
 *   0  magic "LPFE"       8  records u64         24  records_xxh3 u64
 *   4  version u16       16  frames u64          32  trailer_xxh3 u64
 *   6  reserved u16 (0)
 *
 * records_xxh3 chains every frame's header_xxh3 (see lp_frame_tally_add);
 * trailer_xxh3 is the XXH3-64 of bytes 0-31. */
#include "formats/frames.h"
#include "base/common.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <zstd.h>

#define PAD8(n) (((n) + 7) & ~(uint64_t)7)
#define MAX_RECORD_FRAMES 4096

static void put_u16(unsigned char *p, uint16_t v) { p[0] = v; p[1] = v >> 8; }
static void put_u32(unsigned char *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = v >> (8 * i); }
static void put_u64(unsigned char *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = v >> (8 * i); }
static uint16_t get_u16(const unsigned char *p) { return p[0] | p[1] << 8; }
static uint32_t get_u32(const unsigned char *p) { uint32_t v = 0; for (int i = 3; i >= 0; i--) v = v << 8 | p[i]; return v; }
static uint64_t get_u64(const unsigned char *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | p[i]; return v; }

/* numel * elemsize, or UINT64_MAX on overflow */
static uint64_t tensor_bytes(int dtype, int rank, const uint64_t *shape)
{
	uint64_t n = lp_dtype_size(dtype);
	for (int i = 0; i < rank; i++) {
		if (shape[i] && n > UINT64_MAX / shape[i])
			return UINT64_MAX;
		n *= shape[i];
	}
	return n;
}

uint64_t lp_frame_numel(const lp_frame *f)
{
	uint64_t n = 1;
	for (int i = 0; i < f->rank; i++)
		n *= f->shape[i];
	return n;
}

void lp_frame_tally_add(lp_frame_tally *t, uint64_t header_xxh3, uint32_t flags)
{
	unsigned char b[8];
	put_u64(b, header_xxh3);
	t->hash = XXH3_64bits_withSeed(b, 8, t->hash);
	t->frames++;
	t->open++;
	t->ended = 0;
	if (flags & LP_FRAME_LAST) {
		t->records++;
		t->open = 0;
	}
}

static void trailer_bytes(unsigned char *p, const lp_frame_tally *t)
{
	memcpy(p, LP_TRAILER_MAGIC, 4);
	put_u16(p + 4, LP_FRAME_VERSION);
	put_u16(p + 6, 0);
	put_u64(p + 8, t->records);
	put_u64(p + 16, t->frames);
	put_u64(p + 24, t->hash);
	put_u64(p + 32, XXH3_64bits(p, 32));
}

/* ---- writing ---- */

struct lp_frame_writer {
	FILE *f;
	char *name;
	int level;
	void *zbuf;
	size_t zcap;
	ZSTD_CCtx *cctx;
	lp_frame_tally tally;
};

lp_frame_writer *lp_frame_writer_new(FILE *f, const char *name, int zstd_level)
{
	lp_frame_writer *w = lp_calloc(1, sizeof *w);
	w->f = f;
	w->name = lp_strdup(name);
	w->level = zstd_level;
	return w;
}

void lp_frame_write(lp_frame_writer *w, const char *name, int dtype, int rank,
		const uint64_t *shape, const void *data, uint32_t flags)
{
	static const unsigned char zeros[8];
	size_t name_len = strlen(name);
	if (!lp_dtype_size(dtype) || rank < 0 || rank > LP_MAX_RANK || name_len > LP_MAX_NAME
			|| (flags & ~(uint32_t)LP_FRAME_LAST))
		lp_die(w->name, "frame '%s': bad dtype, rank, name or flags", name);
	uint64_t raw_len = tensor_bytes(dtype, rank, shape);
	if (raw_len == UINT64_MAX || raw_len > SIZE_MAX / 2)
		lp_die(w->name, "frame '%s': tensor too large", name);

	const void *stored = data;
	uint64_t stored_len = raw_len;
	if (w->level && raw_len > 64) {
		size_t bound = ZSTD_compressBound(raw_len);
		lp_grow(&w->zbuf, &w->zcap, bound, 1);
		if (!w->cctx && !(w->cctx = ZSTD_createCCtx()))
			lp_die(w->name, "out of memory for zstd");
		size_t z = ZSTD_compressCCtx(w->cctx, w->zbuf, bound, data, raw_len, w->level);
		if (ZSTD_isError(z))
			lp_die(w->name, "zstd: %s", ZSTD_getErrorName(z));
		if (z < raw_len) {
			stored = w->zbuf;
			stored_len = z;
			flags |= LP_FRAME_ZSTD;
		}
	}

	size_t hlen = LP_FRAME_HEADER + 8 * rank + name_len;
	unsigned char hdr[LP_FRAME_HEADER + 8 * LP_MAX_RANK + LP_MAX_NAME];
	memcpy(hdr, LP_FRAME_MAGIC, 4);
	put_u16(hdr + 4, LP_FRAME_VERSION);
	hdr[6] = dtype;
	hdr[7] = rank;
	put_u32(hdr + 8, flags);
	put_u32(hdr + 12, name_len);
	put_u64(hdr + 16, stored_len);
	put_u64(hdr + 24, raw_len);
	put_u64(hdr + 32, XXH3_64bits(stored, stored_len));
	put_u64(hdr + 40, 0);
	for (int i = 0; i < rank; i++)
		put_u64(hdr + LP_FRAME_HEADER + 8 * i, shape[i]);
	memcpy(hdr + LP_FRAME_HEADER + 8 * rank, name, name_len);
	uint64_t check = XXH3_64bits(hdr, hlen);
	put_u64(hdr + 40, check);
	lp_frame_tally_add(&w->tally, check, flags);

	lp_fwrite(w->f, w->name, hdr, hlen);
	lp_fwrite(w->f, w->name, zeros, PAD8(hlen) - hlen);
	lp_fwrite(w->f, w->name, stored, stored_len);
	lp_fwrite(w->f, w->name, zeros, PAD8(stored_len) - stored_len);
}

void lp_frame_write1(lp_frame_writer *w, const char *name, int dtype,
		uint64_t n, const void *data, uint32_t flags)
{
	lp_frame_write(w, name, dtype, 1, &n, data, flags);
}

uint64_t lp_frame_writer_records(const lp_frame_writer *w)
{
	return w->tally.records;
}

void lp_frame_writer_free(lp_frame_writer *w)
{
	if (!w)
		return;
	if (w->tally.open)
		lp_die(w->name, "the last record has no frame flagged last");
	unsigned char t[LP_TRAILER_SIZE];
	trailer_bytes(t, &w->tally);
	lp_fwrite(w->f, w->name, t, sizeof t);
	lp_fflush(w->f, w->name);
	ZSTD_freeCCtx(w->cctx);
	free(w->zbuf);
	free(w->name);
	free(w);
}

/* ---- reading ---- */

static int fail_at(char *err, size_t errlen, lp_reader *r, const char *what, uint64_t off,
		const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static int fail_at(char *err, size_t errlen, lp_reader *r, const char *what, uint64_t off,
		const char *fmt, ...)
{
	int n = snprintf(err, errlen, "%s: %s at byte %llu: ", lp_reader_name(r), what,
			(unsigned long long)off);
	if (n >= 0 && (size_t)n < errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err + n, errlen - n, fmt, ap);
		va_end(ap);
	}
	return -1;
}

#define fail(err, errlen, r, off, ...) fail_at(err, errlen, r, "frame", off, __VA_ARGS__)

/* Read n bytes into *buf (grown as bytes actually arrive, so a corrupt
 * length cannot make us allocate memory the stream does not have). */
static int read_grow(lp_reader *r, void **buf, size_t *cap, uint64_t n)
{
	uint64_t done = 0;
	while (done < n) {
		uint64_t chunk = n - done;
		if (chunk > (1u << 20) && chunk > done)
			chunk = done > (1u << 20) ? done : (1u << 20);
		lp_grow(buf, cap, done + chunk, 1);
		size_t got = lp_reader_read(r, (char *)*buf + done, chunk);
		done += got;
		if (got < chunk)
			return 0;
	}
	return 1;
}

static int all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

/* The trailer at off, checked against t; then t restarts for a stream
 * that may follow. */
static int read_trailer(lp_reader *r, lp_frame_tally *t, uint64_t off, char *err, size_t errlen)
{
	unsigned char p[LP_TRAILER_SIZE], want[LP_TRAILER_SIZE];
	size_t got = lp_reader_read(r, p, sizeof p);
	if (got < sizeof p)
		return fail_at(err, errlen, r, "trailer", off, "truncated (%zu of %d bytes)",
				got, LP_TRAILER_SIZE);
	if (get_u64(p + 32) != XXH3_64bits(p, 32))
		return fail_at(err, errlen, r, "trailer", off, "checksum mismatch (corrupt trailer)");
	if (get_u16(p + 4) != LP_FRAME_VERSION || get_u16(p + 6))
		return fail_at(err, errlen, r, "trailer", off, "unsupported version %u", get_u16(p + 4));
	if (t->open)
		return fail_at(err, errlen, r, "trailer", off, "inside a record (%d frames "
				"without one flagged last)", t->open);
	unsigned long long n = get_u64(p + 8), nf = get_u64(p + 16);
	if (n != t->records || nf != t->frames)
		return fail_at(err, errlen, r, "trailer", off, "the writer wrote %llu records "
				"(%llu frames), the stream holds %llu (%llu): records lost or added",
				n, nf, (unsigned long long)t->records, (unsigned long long)t->frames);
	trailer_bytes(want, t);
	if (memcmp(p, want, sizeof p))
		return fail_at(err, errlen, r, "trailer", off, "records checksum mismatch "
				"(frames changed, reordered or spliced)");
	memset(t, 0, sizeof *t);
	t->ended = 1;
	return 0;
}

int lp_frame_try_read(lp_reader *r, lp_frame *f, lp_frame_tally *t, char *err, size_t errlen)
{
	uint64_t off;
	unsigned char hdr[LP_FRAME_HEADER + 8 * LP_MAX_RANK + LP_MAX_NAME + 8];
	size_t got;
	for (;;) {
		off = lp_reader_offset(r);
		const void *p = lp_reader_peek(r, 4, &got);
		if (got == 0) {
			if (t->ended)
				return 0;
			if (t->open)
				return fail_at(err, errlen, r, "stream", off, "ended inside a record "
						"and without its trailer: did the writer fail?");
			return fail_at(err, errlen, r, "stream", off,
					"ended without its trailer: did the writer fail?");
		}
		if (got < 4 || memcmp(p, LP_TRAILER_MAGIC, 4))
			break;
		if (read_trailer(r, t, off, err, errlen) < 0)
			return -1;
	}
	got = lp_reader_read(r, hdr, LP_FRAME_HEADER);
	if (got < LP_FRAME_HEADER)
		return fail(err, errlen, r, off, "truncated header (%zu of %d bytes)", got, LP_FRAME_HEADER);
	if (memcmp(hdr, LP_FRAME_MAGIC, 4))
		return fail(err, errlen, r, off, "bad magic (not a frame stream, or corrupt)");
	if (get_u16(hdr + 4) != LP_FRAME_VERSION)
		return fail(err, errlen, r, off, "unsupported version %u", get_u16(hdr + 4));
	int dtype = hdr[6], rank = hdr[7];
	uint32_t flags = get_u32(hdr + 8), name_len = get_u32(hdr + 12);
	uint64_t stored_len = get_u64(hdr + 16), raw_len = get_u64(hdr + 24);
	if (!lp_dtype_size(dtype))
		return fail(err, errlen, r, off, "unknown dtype %d", dtype);
	if (rank > LP_MAX_RANK)
		return fail(err, errlen, r, off, "rank %d > %d", rank, LP_MAX_RANK);
	if (flags & ~LP_FRAME_KNOWN_FLAGS)
		return fail(err, errlen, r, off, "unknown flags 0x%x", flags);
	if (name_len > LP_MAX_NAME)
		return fail(err, errlen, r, off, "name length %u > %d", name_len, LP_MAX_NAME);
	size_t hlen = LP_FRAME_HEADER + 8 * rank + name_len;
	size_t rest = PAD8(hlen) - LP_FRAME_HEADER;
	if (lp_reader_read(r, hdr + LP_FRAME_HEADER, rest) < rest)
		return fail(err, errlen, r, off, "truncated header");
	uint64_t check = get_u64(hdr + 40);
	put_u64(hdr + 40, 0);
	if (XXH3_64bits(hdr, hlen) != check)
		return fail(err, errlen, r, off, "header checksum mismatch (corrupt header)");
	put_u64(hdr + 40, check);
	if (!all_zero(hdr + hlen, PAD8(hlen) - hlen))
		return fail(err, errlen, r, off, "non-zero header padding");

	f->dtype = dtype;
	f->rank = rank;
	f->flags = flags;
	f->offset = off;
	for (int i = 0; i < rank; i++)
		f->shape[i] = get_u64(hdr + LP_FRAME_HEADER + 8 * i);
	memcpy(f->name, hdr + LP_FRAME_HEADER + 8 * rank, name_len);
	f->name[name_len] = 0;
	if (memchr(f->name, 0, name_len))
		return fail(err, errlen, r, off, "NUL byte in name");
	if (tensor_bytes(dtype, rank, f->shape) != raw_len || raw_len > SIZE_MAX / 4)
		return fail(err, errlen, r, off, "'%s': payload size %llu does not match shape",
				f->name, (unsigned long long)raw_len);
	if (!(flags & LP_FRAME_ZSTD) && stored_len != raw_len)
		return fail(err, errlen, r, off, "'%s': stored size %llu != %llu", f->name,
				(unsigned long long)stored_len, (unsigned long long)raw_len);
	if ((flags & LP_FRAME_ZSTD) && stored_len > ZSTD_compressBound(raw_len) + 64)
		return fail(err, errlen, r, off, "'%s': compressed size %llu too large", f->name,
				(unsigned long long)stored_len);
	f->nbytes = raw_len;

	/* payload (+ padding) */
	void *stored = NULL;
	size_t stored_cap = 0;
	void **dst = (flags & LP_FRAME_ZSTD) ? &stored : &f->data;
	size_t *dcap = (flags & LP_FRAME_ZSTD) ? &stored_cap : &f->cap;
	uint64_t padded = PAD8(stored_len);
	if (!read_grow(r, dst, dcap, padded)) {
		free(stored);
		return fail(err, errlen, r, off, "'%s': truncated payload (%llu bytes expected)",
				f->name, (unsigned long long)stored_len);
	}
	const unsigned char *s = *dst;
	int bad = !all_zero(s + stored_len, padded - stored_len);
	if (!bad && XXH3_64bits(s, stored_len) != get_u64(hdr + 32)) {
		free(stored);
		return fail(err, errlen, r, off, "'%s': payload checksum mismatch (corrupt data)", f->name);
	}
	if (bad) {
		free(stored);
		return fail(err, errlen, r, off, "'%s': non-zero payload padding", f->name);
	}
	if (flags & LP_FRAME_ZSTD) {
		lp_grow(&f->data, &f->cap, raw_len, 1);
		size_t z = ZSTD_decompress(f->data, raw_len, stored, stored_len);
		free(stored);
		if (ZSTD_isError(z) || z != raw_len)
			return fail(err, errlen, r, off, "'%s': bad zstd payload", f->name);
	}
	lp_frame_tally_add(t, check, flags);
	return 1;
}

int lp_frame_read(lp_reader *r, lp_frame *f, lp_frame_tally *t)
{
	char err[512];
	int rc = lp_frame_try_read(r, f, t, err, sizeof err);
	if (rc < 0)
		lp_die(NULL, "%s", err);
	return rc;
}

void lp_frame_free(lp_frame *f)
{
	free(f->data);
	f->data = NULL;
	f->cap = 0;
}

int lp_record_read(lp_reader *r, lp_record *rec)
{
	rec->n = 0;
	rec->offset = lp_reader_offset(r);
	for (;;) {
		if (rec->n == rec->cap) {
			if (rec->cap >= MAX_RECORD_FRAMES)
				lp_die(lp_reader_name(r), "record at byte %llu: more than %d frames",
						(unsigned long long)rec->offset, MAX_RECORD_FRAMES);
			size_t cap = rec->cap;
			lp_grow((void **)&rec->frames, &cap, cap + 1, sizeof *rec->frames);
			memset(rec->frames + rec->cap, 0, (cap - rec->cap) * sizeof *rec->frames);
			rec->cap = cap;
		}
		lp_frame *f = &rec->frames[rec->n];
		if (!lp_frame_read(r, f, &rec->tally)) {
			if (rec->n == 0)
				return 0;
			lp_die(lp_reader_name(r), "stream ends inside the record at byte %llu "
					"(no frame flagged last)", (unsigned long long)rec->offset);
		}
		if (rec->n == 0)
			rec->offset = f->offset;
		rec->n++;
		if (f->flags & LP_FRAME_LAST) {
			rec->index++;
			return 1;
		}
	}
}

const lp_frame *lp_record_get(const lp_record *rec, const char *name)
{
	for (int i = 0; i < rec->n; i++)
		if (!strcmp(rec->frames[i].name, name))
			return &rec->frames[i];
	return NULL;
}

void lp_record_free(lp_record *rec)
{
	for (int i = 0; i < rec->cap; i++)
		lp_frame_free(&rec->frames[i]);
	free(rec->frames);
	memset(rec, 0, sizeof *rec);
}

int lp_reader_is_frames(lp_reader *r)
{
	size_t got;
	const void *p = lp_reader_peek(r, 4, &got);
	return got == 4 && (!memcmp(p, LP_FRAME_MAGIC, 4) || !memcmp(p, LP_TRAILER_MAGIC, 4));
}
