/* quant.c: the CPU backend's dequantization of quantized weights
 * (formats in kernels.h). matmul.c turns any weight that is not f32 into
 * f32 a block of rows at a time through lp_cpu_weight_rows(), which comes
 * here for the quantized types: so a quantized Linear is dequantized tile
 * by tile inside the op, never whole. */
#include <math.h>
#include <stdlib.h>

#include "common.h"
#include "cpu.h"

/* Block b's scale: its f32 absmax or, double-quantized,
 * code2[qabsmax[b]] * absmax2[b / 256] + offset, in f32 as bitsandbytes. */
static inline float q4_scale(const lp_qweight *q, int64_t b)
{
	if (q->absmax)
		return q->absmax[b];
	return q->code2[q->qabsmax[b]] * q->absmax2[b / LP_QBLOCK2] + q->offset;
}

/* Elements [e0, e0 + n) of the flattened weight as f32. */
static void q4_elements(float *dst, const lp_qweight *q, int64_t e0, int64_t n)
{
	const float *code = lp_q4_code(q->qtype);
	int64_t bs = q->blocksize;
	int64_t i = 0;
	while (i < n) {
		int64_t e = e0 + i, b = e / bs;
		int64_t end = (b + 1) * bs - e0;       /* end of this block, in dst */
		if (end > n)
			end = n;
		float s = q4_scale(q, b);
		for (; i < end; i++) {
			int64_t k = e0 + i;
			uint8_t byte = q->data[k >> 1];
			dst[i] = code[k & 1 ? byte & 15 : byte >> 4] * s;
		}
	}
}

static void int8_row(float *dst, const lp_qweight *q, int64_t r)
{
	const int8_t *cb = (const int8_t *)q->data + r * q->cols;
	float s = q->absmax[r];
	for (int64_t c = 0; c < q->cols; c++)
		dst[c] = ((float)cb[c] * s) * 7.874015718698502e-3f;
}

void lp_cpu_qweight_rows(float *dst, const lp_qweight *q, int64_t r0, int64_t nrows)
{
	int64_t cols = q->cols;
	#pragma omp parallel for schedule(static)
	for (int64_t r = 0; r < nrows; r++) {
		if (q->qtype == LP_QINT8)
			int8_row(dst + r * cols, q, r0 + r);
		else
			q4_elements(dst + r * cols, q, (r0 + r) * cols, cols);
	}
}

void lp_cpu_dequantize_rows(void *dst, int dst_dtype, const lp_qweight *q, int64_t r0,
		int64_t nrows)
{
	int64_t cols = q->cols;
	if (dst_dtype == LP_F32) {
		lp_cpu_qweight_rows(dst, q, r0, nrows);
		return;
	}
	#pragma omp parallel
	{
		float *row = lp_cpu_scratch((size_t)cols * sizeof *row);
		#pragma omp for schedule(static)
		for (int64_t r = 0; r < nrows; r++) {
			uint16_t *out = (uint16_t *)dst + r * cols;
			if (q->qtype == LP_QINT8)
				int8_row(row, q, r0 + r);
			else
				q4_elements(row, q, (r0 + r) * cols, cols);
			for (int64_t c = 0; c < cols; c++)
				out[c] = dst_dtype == LP_BF16 ? lp_f32_to_bf16(row[c]) : lp_f32_to_f16(row[c]);
		}
		free(row);
	}
}

/* ---- LLM.int8's forward (kernels.h, lp_qweight.threshold) ---- */

static float f16_round(float x)
{
	return lp_f16_to_f32(lp_f32_to_f16(x));
}

static void int8_mixed_forward(float *out, const float *inp, const lp_qweight *q, int N, int C,
		int OC, float alpha, float beta)
{
	float thr = q->threshold;
	float *a = lp_cpu_scratch((size_t)N * (size_t)C * sizeof *a);
	int8_t *ca = lp_cpu_scratch((size_t)N * (size_t)C);
	float *sca = lp_cpu_scratch((size_t)N * sizeof *sca);
	uint8_t *outlier = calloc((size_t)C, 1);
	int *cols = lp_cpu_scratch((size_t)C * sizeof *cols);
	if (!outlier)
		lp_die("cpu", "out of memory");
	for (size_t i = 0; i < (size_t)N * (size_t)C; i++) {
		a[i] = f16_round(((const float *)inp)[i]);
		if (fabsf(a[i]) >= thr)
			outlier[i % (size_t)C] = 1;
	}
	int nout = 0;
	for (int c = 0; c < C; c++)
		if (outlier[c])
			cols[nout++] = c;
	/* the input row-wise to int8, outlier elements zeroed first, then the
	 * outlier columns left to the 16-bit product */
	#pragma omp parallel for schedule(static)
	for (int r = 0; r < N; r++) {
		const float *ar = a + (size_t)r * C;
		float m = 0.0f;
		for (int c = 0; c < C; c++) {
			float v = fabsf(ar[c]) >= thr ? 0.0f : fabsf(ar[c]);
			m = v > m ? v : m;
		}
		sca[r] = m;
		float s = (1.0f / m) * 127.0f;
		for (int c = 0; c < C; c++) {
			float x = fabsf(ar[c]) >= thr || outlier[c] || m == 0.0f ? 0.0f : nearbyintf(ar[c] * s);
			ca[(size_t)r * C + c] = (int8_t)x;
		}
	}
	const int8_t *cb = (const int8_t *)q->data;
	#pragma omp parallel for schedule(static)
	for (int o = 0; o < OC; o++) {
		const int8_t *wr = cb + (size_t)o * C;
		float scb = q->absmax[o];
		for (int r = 0; r < N; r++) {
			const int8_t *xr = ca + (size_t)r * C;
			int32_t acc = 0;
			for (int c = 0; c < C; c++)
				acc += (int32_t)xr[c] * (int32_t)wr[c];
			float y = (float)acc * (sca[r] * scb) * 6.200124e-05f;
			for (int k = 0; k < nout; k++) {
				int c = cols[k];
				float w = f16_round(((float)wr[c] * scb) * 7.874015718698502e-3f);
				y += a[(size_t)r * C + c] * w;
			}
			float *dst = out + (size_t)r * OC + o;
			*dst = (beta == 0.0f ? 0.0f : beta * *dst) + alpha * y;
		}
	}
	free(a);
	free(ca);
	free(sca);
	free(outlier);
	free(cols);
}

void lp_cpu_qmatmul_forward(void *out, const void *inp, lp_weight W, int N, int C, int OC,
		float alpha, float beta)
{
	const lp_qweight *q = W.data;
	if (W.dtype == LP_QINT8 && q->threshold > 0.0f) {
		lp_cpu_check_weight("matmul_forward", W, OC, C);
		if (N > 0 && OC > 0)
			int8_mixed_forward(out, inp, q, N, C, OC, alpha, beta);
		return;
	}
	lp_cpu_matmul_forward(out, inp, W, N, C, OC, alpha, beta);
}
