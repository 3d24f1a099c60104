/* quant.c: unit tests of quantized frozen weights (kernels.h), and a tool
 * for t/ref/quant_bnb.py to compare them with bitsandbytes.
 *
 *   quant                         TAP unit tests
 *   quant q TYPE BS DQ DTYPE ROWS COLS IN DIR
 *       quantize the (ROWS, COLS) matrix in file IN (raw DTYPE: f32, bf16,
 *       f16) as TYPE (nf4, fp4, int8) with block size BS, double-quantized
 *       when DQ is 1, streaming blocks of rows in a shuffled order; write to
 *       DIR: data.bin, absmax.bin or qabsmax.bin absmax2.bin offset.bin
 *       code2.bin, and deq.bin (f32) deq_bf16.bin (bf16) dequantized
 *   quant mm TYPE BS DQ DTYPE ROWS COLS IN N X DOUT DIR
 *       also y = X (N, COLS f32) @ W^T and dx = DOUT (N, ROWS f32) @ W with
 *       the quantized W: y.bin, dx.bin (f32) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "base/half.h"
#include "kernels.h"
#include "tap.h"

static lp_rng rng;

static float uniform(void)
{
	return (float)((lp_rng_next(&rng) >> 40) * 0x1p-24) * 2.0f - 1.0f;
}

static float *random_matrix(int64_t rows, int64_t cols)
{
	float *w = lp_malloc((size_t)(rows * cols) * sizeof *w);
	for (int64_t i = 0; i < rows * cols; i++) {
		w[i] = uniform() * 0.05f;
		if (lp_rng_below(&rng, 100) == 0)
			w[i] *= 200.0f;          /* outliers */
	}
	return w;
}

/* Quantize in blocks of chunk rows, last block first. */
static void quantize(lp_qweight *q, const void *w, int dtype, int64_t chunk)
{
	int64_t n = (q->rows + chunk - 1) / chunk;
	size_t es = lp_dtype_size(dtype);
	for (int64_t c = n - 1; c >= 0; c--) {
		int64_t r0 = c * chunk, nr = q->rows - r0 < chunk ? q->rows - r0 : chunk;
		lp_quantize_rows(q, (const char *)w + (size_t)(r0 * q->cols) * es, dtype, r0, nr);
	}
}

/* Rows to stream at a time: whole blocks of elements. */
static int64_t chunk_rows(const lp_qweight *q)
{
	if (q->qtype == LP_QINT8)
		return 3;
	int64_t r = 1;
	while ((r * q->cols) % q->blocksize)
		r++;
	return r * 2;
}

static void write_file(const char *dir, const char *name, const void *p, size_t n)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(p, 1, n, f) != n || fclose(f))
		lp_die(path, "cannot write");
}

static void *read_exact(const char *path, size_t want)
{
	size_t len;
	char *p = lp_read_file(path, &len);
	if (!p)
		lp_die(path, "cannot read");
	if (len != want)
		lp_die(path, "%zu bytes, want %zu", len, want);
	return p;
}

static void dump(const lp_qweight *q, const char *dir)
{
	int64_t n = q->rows * q->cols;
	size_t nd = q->qtype == LP_QINT8 ? (size_t)n : (size_t)(n + 1) / 2;
	write_file(dir, "data.bin", q->data, nd);
	if (q->absmax) {
		write_file(dir, "absmax.bin", q->absmax, (size_t)q->nblocks * 4);
	} else {
		write_file(dir, "qabsmax.bin", q->qabsmax, (size_t)q->nblocks);
		write_file(dir, "absmax2.bin", q->absmax2,
				(size_t)((q->nblocks + LP_QBLOCK2 - 1) / LP_QBLOCK2) * 4);
		write_file(dir, "offset.bin", &q->offset, 4);
		write_file(dir, "code2.bin", q->code2, 256 * 4);
	}
	float *deq = lp_malloc((size_t)n * 4);
	lp_dequantize_rows(deq, LP_F32, q, 0, q->rows);
	write_file(dir, "deq.bin", deq, (size_t)n * 4);
	uint16_t *h = lp_malloc((size_t)n * 2);
	lp_dequantize_rows(h, LP_BF16, q, 0, q->rows);
	write_file(dir, "deq_bf16.bin", h, (size_t)n * 2);
	free(deq);
	free(h);
}

static int tool(char **argv)
{
	int qtype = lp_qtype_parse(argv[2]), bs = atoi(argv[3]), dq = atoi(argv[4]);
	int dtype = lp_dtype_parse(argv[5]);
	int64_t rows = atoll(argv[6]), cols = atoll(argv[7]);
	if (!qtype || !dtype)
		lp_die("quant", "bad type %s or dtype %s", argv[2], argv[5]);
	void *w = read_exact(argv[8], (size_t)(rows * cols) * lp_dtype_size(dtype));
	lp_qweight q;
	lp_qweight_alloc(&q, qtype, rows, cols, bs);
	quantize(&q, w, dtype, chunk_rows(&q));
	if (dq)
		lp_qweight_compress(&q);
	if (!strcmp(argv[1], "q")) {
		dump(&q, argv[9]);
	} else {
		int N = atoi(argv[9]);
		float *x = read_exact(argv[10], (size_t)N * (size_t)cols * 4);
		float *dout = read_exact(argv[11], (size_t)N * (size_t)rows * 4);
		float *y = lp_malloc((size_t)N * (size_t)rows * 4), *dx = lp_malloc((size_t)N * (size_t)cols * 4);
		lp_matmul_forward(y, x, lp_qweight_view(&q), N, (int)cols, (int)rows, 1.0f, 0.0f);
		lp_matmul_backward(dx, NULL, dout, x, lp_qweight_view(&q), N, (int)cols, (int)rows, 1.0f, 0.0f);
		write_file(argv[12], "y.bin", y, (size_t)N * (size_t)rows * 4);
		write_file(argv[12], "dx.bin", dx, (size_t)N * (size_t)cols * 4);
		free(x);
		free(dout);
		free(y);
		free(dx);
	}
	lp_qweight_free(&q);
	free(w);
	return 0;
}

/* ---- unit tests ---- */

/* Streaming in any order gives the bytes of one pass over the matrix. */
static void test_streaming(int qtype, int64_t rows, int64_t cols, int bs)
{
	float *w = random_matrix(rows, cols);
	lp_qweight q;
	lp_qweight_alloc(&q, qtype, rows, cols, bs);
	quantize(&q, w, LP_F32, chunk_rows(&q));
	int64_t n = rows * cols;
	uint8_t *data = lp_malloc((size_t)n);
	float *absmax = lp_malloc((size_t)n * 4);
	if (qtype == LP_QINT8)
		lp_int8_quantize_host((int8_t *)data, absmax, w, LP_F32, rows, cols);
	else
		lp_q4_quantize_host(data, absmax, w, LP_F32, qtype, bs, n);
	size_t nd = qtype == LP_QINT8 ? (size_t)n : (size_t)(n + 1) / 2;
	ok(!memcmp(data, q.data, nd) && !memcmp(absmax, q.absmax, (size_t)q.nblocks * 4),
			"%s (%lld, %lld) block %d: streamed rows give the one-pass bytes",
			lp_qtype_name(qtype), (long long)rows, (long long)cols, bs);

	/* every element within half the widest code gap of its block's scale */
	float *deq = lp_malloc((size_t)n * 4);
	lp_dequantize_rows(deq, LP_F32, &q, 0, rows);
	double worst = 0;
	for (int64_t i = 0; i < n; i++) {
		float s = qtype == LP_QINT8 ? absmax[i / cols] / 127.0f : absmax[i / bs];
		/* int8 quantizes the f16 weight */
		float wi = qtype == LP_QINT8 ? lp_f16_to_f32(lp_f32_to_f16(w[i])) : w[i];
		double e = fabs(deq[i] - wi) / (s > 0 ? s : 1);
		worst = e > worst ? e : worst;
	}
	double bound = qtype == LP_QNF4 ? 0.161 : qtype == LP_QFP4 ? 0.167 : 0.5001;
	ok(worst <= bound, "%s: error %.4f of the block scale, at most %.3f", lp_qtype_name(qtype),
			worst, bound);

	/* a row range dequantizes to the same values as the whole */
	if (rows > 3) {
		float *part = lp_malloc((size_t)(2 * cols) * 4);
		lp_dequantize_rows(part, LP_F32, &q, rows - 3, 2);
		ok(!memcmp(part, deq + (rows - 3) * cols, (size_t)(2 * cols) * 4),
				"%s: rows [%lld, %lld) dequantize alone as in the whole",
				lp_qtype_name(qtype), (long long)rows - 3, (long long)rows - 1);
		free(part);
	}

	/* matmuls with the quantized weight are those with its f32 dequantization */
	int N = 5;
	float *x = random_matrix(N, cols), *dout = random_matrix(N, rows);
	float *y = lp_malloc((size_t)(N * rows) * 4), *yref = lp_malloc((size_t)(N * rows) * 4);
	float *dx = lp_malloc((size_t)(N * cols) * 4), *dxref = lp_malloc((size_t)(N * cols) * 4);
	lp_weight wf = {deq, LP_F32, (int)rows, (int)cols};
	lp_matmul_forward(y, x, lp_qweight_view(&q), N, (int)cols, (int)rows, 1.0f, 0.0f);
	lp_matmul_forward(yref, x, wf, N, (int)cols, (int)rows, 1.0f, 0.0f);
	lp_matmul_backward(dx, NULL, dout, x, lp_qweight_view(&q), N, (int)cols, (int)rows, 1.0f, 0.0f);
	lp_matmul_backward(dxref, NULL, dout, x, wf, N, (int)cols, (int)rows, 1.0f, 0.0f);
	double ey = 0, edx = 0, my = 0, mdx = 0;
	for (int64_t i = 0; i < N * rows; i++) {
		ey = fmax(ey, fabs(y[i] - yref[i]));
		my = fmax(my, fabs(yref[i]));
	}
	for (int64_t i = 0; i < N * cols; i++) {
		edx = fmax(edx, fabs(dx[i] - dxref[i]));
		mdx = fmax(mdx, fabs(dxref[i]));
	}
	/* same products, summed by BLAS in tiles: a few f32 roundings */
	ok(ey <= 1e-5 * my && edx <= 1e-5 * mdx,
			"%s: forward and input gradient equal the dequantized weight's (%.2g, %.2g)",
			lp_qtype_name(qtype), ey / my, edx / mdx);

	if (qtype != LP_QINT8) {
		lp_qweight_compress(&q);
		float *deq2 = lp_malloc((size_t)n * 4);
		lp_dequantize_rows(deq2, LP_F32, &q, 0, rows);
		/* the scale is off by at most half a dynamic-map step (< 1/64 of
		 * the range of absmax - offset) */
		double w2 = 0;
		float amax = 0;
		for (int64_t b = 0; b < q.nblocks; b++)
			amax = fmaxf(amax, absmax[b]);
		for (int64_t i = 0; i < n; i++)
			w2 = fmax(w2, fabs(deq2[i] - deq[i]));
		ok(q.absmax == NULL && w2 <= amax / 64, "%s: double quantization moves values by %.3g <= %.3g",
				lp_qtype_name(qtype), w2, amax / 64.0);
		free(deq2);
	}
	free(w);
	free(data);
	free(absmax);
	free(deq);
	free(x);
	free(dout);
	free(y);
	free(yref);
	free(dx);
	free(dxref);
	lp_qweight_free(&q);
}

static void test_mean(void)
{
	/* the cascade sum is exact on small integers, whatever its order */
	float x[5000];
	double s = 0;
	for (int i = 0; i < 5000; i++) {
		x[i] = (float)(i % 97);
		s += x[i];
	}
	ok(lp_q_mean_host(x, 5000) == (float)(s / 5000), "mean of 5000 integers");
	ok(lp_q_mean_host(x, 7) == 3.0f, "mean of a short tail only");
	const float *code = lp_q_dynamic_map();
	int sorted = 1;
	for (int i = 1; i < 256; i++)
		sorted &= code[i - 1] < code[i];
	ok(sorted && code[0] > -1.0f && code[0] < -0.99f && code[255] == 1.0f,
			"dynamic map sorted from -0.993 to 1");
}

int main(int argc, char **argv)
{
	lp_init(argv[0]);
	char err[256];
	if (lp_kernels_init(LP_DEVICE_CPU, -1, LP_F32, err, sizeof err))
		lp_die("cpu", "%s", err);
	if (argc == 10 && !strcmp(argv[1], "q"))
		return tool(argv);
	if (argc == 13 && !strcmp(argv[1], "mm"))
		return tool(argv);
	if (argc != 1)
		lp_die("quant", "usage: quant | quant q ... | quant mm ...");
	lp_rng_seed(&rng, 13);
	test_mean();
	test_streaming(LP_QNF4, 70, 128, 64);
	test_streaming(LP_QFP4, 33, 96, 64);
	test_streaming(LP_QNF4, 9, 7, 64);      /* blocks across rows, odd count */
	test_streaming(LP_QFP4, 40, 200, 128);
	test_streaming(LP_QINT8, 31, 100, 0);
	return tap_done();
}
