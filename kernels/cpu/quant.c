/* quant.c: the CPU backend's dequantization of quantized weights
 * (formats in kernels.h). matmul.c turns any weight that is not f32 into
 * f32 a block of rows at a time through lp_cpu_weight_rows(), which comes
 * here for the quantized types: so a quantized Linear is dequantized tile
 * by tile inside the op, never whole. */
#include <stdlib.h>

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
