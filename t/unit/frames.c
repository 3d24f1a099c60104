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

/* Read a whole stream frame by frame: frames read, or -1 with err set. */
static long read_all(const char *p, size_t n, char *err, size_t errlen)
{
	lp_reader *r = lp_reader_mem(p, n, "mem");
	lp_frame fr = {0};
	lp_frame_tally t = {0};
	long frames = 0;
	int rc;
	while ((rc = lp_frame_try_read(r, &fr, &t, err, errlen)) == 1)
		frames++;
	lp_frame_free(&fr);
	lp_reader_close(r);
	return rc < 0 ? -1 : frames;
}

/* Every single-bit corruption and every truncation is reported, never
 * accepted as different data: in the frame and in the trailer. */
static void test_corruption(void)
{
	FILE *f;
	lp_frame_writer *w = writer(&f, 0);
	int32_t v[5] = {1, 2, 3, 4, 5};
	lp_frame_write1(w, "x", LP_I32, 5, v, LP_FRAME_LAST);
	done(w, f);
	int accepted = 0, truncs = 0;
	char err[512];
	ok(read_all(buf, len, err, sizeof err) == 1, "frame and trailer read back");
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			buf[i] ^= 1 << bit;
			if (read_all(buf, len, err, sizeof err) >= 0)
				accepted++;
			buf[i] ^= 1 << bit;
		}
	}
	ok(accepted == 0, "all %zu single-bit flips rejected (%d accepted)", len * 8, accepted);
	for (size_t k = 1; k < len; k++)
		if (read_all(buf, k, err, sizeof err) < 0 && (strstr(err, "truncated")
				|| strstr(err, "without its trailer")))
			truncs++;
	ok(truncs == (int)len - 1, "all %zu truncations reported (%d)", len - 1, truncs);
	lp_reader *r = lp_reader_mem(buf, len - LP_TRAILER_SIZE - 8, "mem");
	lp_frame fr = {0};
	lp_frame_tally t = {0};
	lp_frame_try_read(r, &fr, &t, err, sizeof err);
	ok(strstr(err, "frame at byte 0") != NULL, "error names the byte offset: %s", err);
	lp_frame_free(&fr);
	lp_reader_close(r);
	free(buf);
}

/* A stream of records cut at any record boundary (an upstream writer that
 * died) is an error naming the byte offset, never a clean end; streams
 * concatenated whole read as one; a trailer that disagrees is refused. */
static void test_trailer(void)
{
	enum { NREC = 6 };
	FILE *f;
	lp_frame_writer *w = writer(&f, 0);
	size_t bound[NREC + 1];
	bound[0] = 0;
	for (int i = 0; i < NREC; i++) {
		int32_t ids[3] = {i, i + 1, i + 2};
		lp_frame_write1(w, "input_ids", LP_I32, 3 + i % 2, ids, 0);
		lp_frame_write1(w, "labels", LP_I32, 3 + i % 2, ids, LP_FRAME_LAST);
		fflush(f);
		bound[i + 1] = len;
	}
	ok(lp_frame_writer_records(w) == NREC, "writer counts %d records", NREC);
	done(w, f);
	ok(len == bound[NREC] + LP_TRAILER_SIZE, "trailer of %d bytes ends the stream",
			LP_TRAILER_SIZE);
	char err[512];
	ok(read_all(buf, len, err, sizeof err) == 2 * NREC, "whole stream reads back");
	int named = 0;
	for (int i = 0; i <= NREC; i++) {
		char want[64];
		snprintf(want, sizeof want, "stream at byte %zu: ended", bound[i]);
		if (read_all(buf, bound[i], err, sizeof err) < 0 && strstr(err, want)
				&& strstr(err, "without its trailer: did the writer fail?"))
			named++;
		else
			printf("# cut at %zu: %s\n", bound[i], err);
	}
	ok(named == NREC + 1, "cut at each of the %d record boundaries: error naming the offset",
			NREC + 1);
	ok(read_all(buf, bound[2] - 8 - 16, err, sizeof err) < 0 && strstr(err, "truncated"),
			"cut inside a record: %s", err);

	/* whole streams concatenated: one stream; a record spliced out: refused */
	char *two = lp_malloc(2 * len);
	memcpy(two, buf, len);
	memcpy(two + len, buf, len);
	ok(read_all(two, 2 * len, err, sizeof err) == 4 * NREC, "two streams back to back read as one");
	ok(read_all(two, len + bound[3], err, sizeof err) < 0 && strstr(err, "without its trailer"),
			"second stream cut: refused");
	size_t cut = len - (bound[2] - bound[1]);
	memcpy(two, buf, bound[1]);
	memcpy(two + bound[1], buf + bound[2], len - bound[2]);
	ok(read_all(two, cut, err, sizeof err) < 0 && strstr(err, "trailer at byte")
			&& strstr(err, "records lost or added"), "a record taken out: %s", err);
	memcpy(two, buf, len);
	memcpy(two + bound[1], buf + bound[2], bound[3] - bound[2]);
	memcpy(two + bound[2], buf + bound[1], bound[2] - bound[1]);
	ok(bound[2] - bound[1] == bound[3] - bound[2], "records 2 and 3 are the same size");
	ok(read_all(two, len, err, sizeof err) < 0 && strstr(err, "records checksum mismatch"),
			"two records swapped: %s", err);
	free(two);

	lp_record rec = {0};
	lp_reader *r = lp_reader_mem(buf, len, "mem");
	int n = 0;
	while (lp_record_read(r, &rec) == 1)
		n++;
	ok(n == NREC && rec.index == NREC, "records numbered 1..%d", NREC);
	lp_record_free(&rec);
	lp_reader_close(r);
	free(buf);

	w = writer(&f, 0);
	done(w, f);
	ok(len == LP_TRAILER_SIZE && read_all(buf, len, err, sizeof err) == 0,
			"an empty stream is its trailer alone");
	r = lp_reader_mem(buf, len, "mem");
	ok(lp_reader_is_frames(r), "and is sniffed as frames");
	lp_reader_close(r);
	free(buf);
	ok(read_all("", 0, err, sizeof err) < 0 && strstr(err, "stream at byte 0"),
			"no bytes at all: %s", err);
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
	test_trailer();
	test_reader_lines();
	test_reader_zstd();
	return tap_done();
}
