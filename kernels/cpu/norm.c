/* norm.c: RMSNorm as Hugging Face's LlamaRMSNorm computes it in f32:
 * var = mean(x^2), rstd = 1 / sqrt(var + eps), out = w * (x * rstd). */
#include <math.h>

#include "cpu.h"

/* The weight is a vector of C elements, held as (1, C) or (C, 1). */
static void check_vector(const char *op, lp_weight w, int C)
{
	if (w.rows == C && w.cols == 1)
		w.rows = 1, w.cols = C;
	lp_cpu_check_weight(op, w, 1, C);
}

/* out[N,C] = w * (inp * rstd[n]); rstd[N] saved. */
void lp_cpu_rmsnorm_forward(void *out, float *rstd, const void *inp, lp_weight w,
		int N, int C, float eps)
{
	check_vector("rmsnorm_forward", w, C);
	#pragma omp parallel for schedule(static)
	for (int n = 0; n < N; n++) {
		const float *x = (const float *)inp + (size_t)n * C;
		float *y = (float *)out + (size_t)n * C;
		double ss = 0;
		for (int c = 0; c < C; c++)
			ss += (double)x[c] * x[c];
		float var = (float)(ss / C);
		float r = 1.0f / sqrtf(var + eps);
		for (int c = 0; c < C; c++)
			y[c] = lp_cpu_load(w.data, w.dtype, (size_t)c) * (x[c] * r);
		rstd[n] = r;
	}
}

#define COLS 64

/* dx = r w dy - r^3 / C * x * sum_c(w_c dy_c x_c); dw_c += sum_n dy x r. */
void lp_cpu_rmsnorm_backward(void *dinp, float *dw, const void *dout, const void *inp,
		lp_weight w, const float *rstd, int N, int C, int accumulate)
{
	check_vector("rmsnorm_backward", w, C);
	const float *X = inp, *G = dout;
	#pragma omp parallel for schedule(static)
	for (int n = 0; n < N; n++) {
		const float *x = X + (size_t)n * C, *g = G + (size_t)n * C;
		float *dx = (float *)dinp + (size_t)n * C;
		double r = rstd[n], dot = 0;
		for (int c = 0; c < C; c++)
			dot += (double)(lp_cpu_load(w.data, w.dtype, (size_t)c) * g[c]) * x[c];
		double coef = r * r * r * dot / C;
		for (int c = 0; c < C; c++) {
			double wg = (double)lp_cpu_load(w.data, w.dtype, (size_t)c) * g[c];
			float d = (float)(r * wg - coef * x[c]);
			dx[c] = accumulate ? dx[c] + d : d;
		}
	}
	if (!dw)
		return;
	int nblocks = (C + COLS - 1) / COLS;
	#pragma omp parallel for schedule(static)
	for (int cb = 0; cb < nblocks; cb++) {
		int c0 = cb * COLS, c1 = c0 + COLS < C ? c0 + COLS : C;
		double acc[COLS] = {0};
		for (int n = 0; n < N; n++) {
			const float *x = X + (size_t)n * C, *g = G + (size_t)n * C;
			double r = rstd[n];
			for (int c = c0; c < c1; c++)
				acc[c - c0] += (double)g[c] * x[c] * r;
		}
		for (int c = c0; c < c1; c++)
			dw[c] += (float)acc[c - c0];
	}
}
