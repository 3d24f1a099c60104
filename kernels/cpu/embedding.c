/* embedding.c: token embedding lookup and its scatter-add backward. */
#include "common.h"
#include "cpu.h"

/* out[N,C] = wte[ids[n], :] as f32; wte (V,C) of any float type. */
void lp_cpu_embedding_forward(void *out, const int32_t *ids, lp_weight wte, int N, int C)
{
	lp_cpu_check_weight("embedding_forward", wte, wte.rows, C);
	for (int n = 0; n < N; n++)
		if (ids[n] < 0 || ids[n] >= wte.rows)
			lp_die("cpu", "embedding_forward: token id %d at row %d is outside the "
					"vocabulary of %d", (int)ids[n], n, wte.rows);
	size_t esz = lp_dtype_size(wte.dtype);
	#pragma omp parallel for schedule(static)
	for (int n = 0; n < N; n++)
		lp_cpu_to_f32((float *)out + (size_t)n * C,
				(const char *)wte.data + (size_t)ids[n] * C * esz, wte.dtype, (size_t)C);
}

#define COLS 64

/* dwte (V,C) += dout[n,:] at row ids[n]. Threads own column blocks and walk
 * the rows in order, so repeated ids add up in the same order always. */
void lp_cpu_embedding_backward(float *dwte, const void *dout, const int32_t *ids, int N, int C)
{
	const float *g = dout;
	int nblocks = (C + COLS - 1) / COLS;
	#pragma omp parallel for schedule(static)
	for (int cb = 0; cb < nblocks; cb++) {
		int c0 = cb * COLS, c1 = c0 + COLS < C ? c0 + COLS : C;
		for (int n = 0; n < N; n++) {
			float *dst = dwte + (size_t)ids[n] * C;
			const float *src = g + (size_t)n * C;
			for (int c = c0; c < c1; c++)
				dst[c] += src[c];
		}
	}
}
