/* frames.c: unit tests of the frame format and of the reader under it. */
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "base/common.h"
#include "formats/frames.h"
#include "base/reader.h"
#include "tap.h"

/* Write frames into a memory buffer through open_memstream. */
static char *buf;
static size_t len;

static lp_frame_writer *writer(FILE **f, int level)
{
	*f = open_memstream(&buf, &len);
	return lp_frame_writer_new(*f, "mem", level);
}

static void done(lp_frame_writer *w, FILE *f)
{
	lp_frame_writer_free(w);
	fclose(f);
}

static void test_round_trip(int level)
{
	FILE *f;
	lp_frame_writer *w = writer(&f, level);
	int32_t ids[300];
	for (int i = 0; i < 300; i++)
		ids[i] = i % 7 == 0 ? -100 : i;
	float m[2][3] = {{1, 2, 3}, {4, 5, 6.5f}};
	uint64_t shape[2] = {2, 3};
	lp_frame_write1(w, "input_ids", LP_I32, 300, ids, 0);
	lp_frame_write1(w, "labels", LP_I32, 300, ids, LP_FRAME_LAST);
	lp_frame_write(w, "m", LP_F32, 2, shape, m, 0);
	lp_frame_write(w, "", LP_U8, 0, NULL, "x", LP_FRAME_LAST);
	lp_frame_write1(w, "empty", LP_I64, 0, NULL, LP_FRAME_LAST);
	done(w, f);
	ok(len % 8 == 0, "zstd=%d: stream length %zu is a multiple of 8", level, len);

	lp_reader *r = lp_reader_mem(buf, len, "mem");
	ok(lp_reader_is_frames(r), "zstd=%d: stream sniffed as frames", level);
	lp_record rec = {0};
	ok(lp_record_read(r, &rec) == 1 && rec.n == 2, "first record has two frames");
	const lp_frame *a = lp_record_get(&rec, "input_ids"), *b = lp_record_get(&rec, "labels");
	ok(a && b && a->dtype == LP_I32 && a->rank == 1 && a->shape[0] == 300, "input_ids header");
	ok(a && !memcmp(a->data, ids, sizeof ids) && b && !memcmp(b->data, ids, sizeof ids),
			"payloads equal");
	ok(a && ((uintptr_t)a->data % 8) == 0, "payload buffer 8-aligned");
	ok(!level || (a && (a->flags & LP_FRAME_ZSTD)), "zstd=%d: compressible payload compressed", level);
	ok(lp_record_read(r, &rec) == 1 && rec.n == 2, "second record has two frames");
	ok(rec.frames[0].rank == 2 && rec.frames[0].shape[1] == 3 &&
			!memcmp(rec.frames[0].data, m, sizeof m), "rank-2 f32 frame");
	ok(rec.frames[1].rank == 0 && rec.frames[1].nbytes == 1 &&
			!strcmp(rec.frames[1].name, ""), "rank-0 frame with empty name");
	ok(lp_record_read(r, &rec) == 1 && rec.n == 1 && rec.frames[0].nbytes == 0, "empty tensor");
	ok(lp_record_read(r, &rec) == 0, "clean end of stream");
	lp_record_free(&rec);
	lp_reader_close(r);
	free(buf);
}

/* Every single-byte corruption and every truncation is reported, never
 * accepted as different data. */
static void test_corruption(void)
{
	FILE *f;
	lp_frame_writer *w = writer(&f, 0);
	int32_t v[5] = {1, 2, 3, 4, 5};
	lp_frame_write1(w, "x", LP_I32, 5, v, LP_FRAME_LAST);
	done(w, f);
	int accepted = 0, truncs = 0;
	char err[512];
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			buf[i] ^= 1 << bit;
			lp_reader *r = lp_reader_mem(buf, len, "mem");
			lp_frame fr = {0};
			if (lp_frame_try_read(r, &fr, err, sizeof err) == 1)
				accepted++;
			lp_frame_free(&fr);
			lp_reader_close(r);
			buf[i] ^= 1 << bit;
		}
	}
	ok(accepted == 0, "all %zu single-bit flips rejected (%d accepted)", len * 8, accepted);
	for (size_t k = 1; k < len; k++) {
		lp_reader *r = lp_reader_mem(buf, k, "mem");
		lp_frame fr = {0};
		if (lp_frame_try_read(r, &fr, err, sizeof err) < 0 && strstr(err, "truncated"))
			truncs++;
		lp_frame_free(&fr);
		lp_reader_close(r);
	}
	ok(truncs == (int)len - 1, "all %zu truncations reported as truncated", len - 1);
	lp_reader *r = lp_reader_mem(buf, len - 8, "mem");
	lp_frame fr = {0};
	lp_frame_try_read(r, &fr, err, sizeof err);
	ok(strstr(err, "frame at byte 0") != NULL, "error names the byte offset: %s", err);
	lp_frame_free(&fr);
	lp_reader_close(r);
	free(buf);
}

static void test_reader_lines(void)
{
	const char *text = "one\r\ntwo\n\nlast";
	lp_reader *r = lp_reader_mem(text, strlen(text), "t");
	size_t n;
	char *l1 = lp_reader_line(r, &n);
	ok(l1 && !strcmp(l1, "one") && n == 3, "CRLF stripped");
	char *l2 = lp_reader_line(r, &n);
	ok(l2 && !strcmp(l2, "two"), "second line");
	char *l3 = lp_reader_line(r, &n);
	ok(l3 && n == 0, "empty line");
	char *l4 = lp_reader_line(r, &n);
	ok(l4 && !strcmp(l4, "last") && lp_reader_lineno(r) == 4, "last line without newline, lineno 4");
	ok(lp_reader_line(r, &n) == NULL, "end");
	lp_reader_close(r);
}

static void test_reader_zstd(void)
{
	/* two concatenated zstd frames of a long text: one stream */
	size_t n = 300000;
	char *text = lp_malloc(n);
	for (size_t i = 0; i < n; i++)
		text[i] = (i % 61 == 60) ? '\n' : 'a' + (i * 7) % 26;
	size_t half = n / 2, cap = ZSTD_compressBound(n) * 2;
	char *z = lp_malloc(cap);
	size_t z1 = ZSTD_compress(z, cap, text, half, 3);
	size_t z2 = ZSTD_compress(z + z1, cap - z1, text + half, n - half, 3);
	lp_reader *r = lp_reader_mem(z, z1 + z2, "z");
	char *out = lp_malloc(n + 1);
	size_t got = lp_reader_read(r, out, n + 1);
	ok(lp_reader_compressed(r) && got == n && !memcmp(out, text, n),
			"concatenated zstd frames read back whole (%zu bytes)", got);
	lp_reader_close(r);
	r = lp_reader_mem(z, z1 + z2, "z");
	size_t lines = 0, ln;
	while (lp_reader_line(r, &ln))
		lines++;
	ok(lines == (n + 60) / 61, "lines counted through zstd: %zu", lines);
	lp_reader_close(r);
	free(text);
	free(z);
	free(out);
}

int main(void)
{
	test_round_trip(0);
	test_round_trip(3);
	test_corruption();
	test_reader_lines();
	test_reader_zstd();
	return tap_done();
}
