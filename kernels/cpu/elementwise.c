/* elementwise.c: SwiGLU, residual add, scaling and dropout. */
#include <math.h>

#include "cpu.h"

/* silu(g) = g / (1 + exp(-g)), in f32 as torch computes it. */
void lp_cpu_swiglu_forward(void *out, const void *gate, const void *up, int N, int I)
{
	const float *g = gate, *u = up;
	float *y = out;
	size_t n = (size_t)N * (size_t)I;
	#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++)
		y[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* dgate = dout * up * sig * (1 + g (1 - sig)), dup = dout * silu(g).
 * Each element reads gate and up before writing, so dgate may alias gate
 * and dup may alias up. */
void lp_cpu_swiglu_backward(void *dgate, void *dup, const void *dout, const void *gate,
		const void *up, int N, int I)
{
	const float *g = gate, *u = up, *dy = dout;
	float *dg = dgate, *du = dup;
	size_t n = (size_t)N * (size_t)I;
	#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++) {
		float x = g[i], e = expf(-x), up_i = u[i];
		float sig = 1.0f / (1.0f + e);
		float silu = x / (1.0f + e);
		dg[i] = dy[i] * up_i * sig * (1.0f + x * (1.0f - sig));
		du[i] = dy[i] * silu;
	}
}

void lp_cpu_add_inplace(void *x, const void *y, size_t n)
{
	float *a = x;
	const float *b = y;
	#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++)
		a[i] += b[i];
}

void lp_cpu_scale_inplace(void *x, float s, size_t n)
{
	lp_cpu_scale_f32(x, s, n);
}

/* The mask rule of kernels.h: element i is kept iff the top 32 bits of
 * splitmix64(seed + (i + 1) * golden) are >= p * 2^32. */
static inline int keep(uint64_t seed, size_t i, uint64_t threshold)
{
	uint64_t z = seed + (uint64_t)(i + 1) * 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return (z >> 32) >= threshold;
}

static void dropout(float *y, const float *x, float p, uint64_t seed, size_t n)
{
	if (p <= 0) {
		if (y != x)
			memmove(y, x, n * sizeof(float));
		return;
	}
	if (p >= 1) {
		memset(y, 0, n * sizeof(float));
		return;
	}
	uint64_t threshold = (uint64_t)((double)p * 4294967296.0);
	float scale = 1.0f / (1.0f - p);
	#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++)
		y[i] = keep(seed, i, threshold) ? x[i] * scale : 0.0f;
}

void lp_cpu_dropout_forward(void *out, const void *inp, float p, uint64_t seed, size_t n)
{
	dropout(out, inp, p, seed, n);
}

void lp_cpu_dropout_backward(void *dinp, const void *dout, float p, uint64_t seed, size_t n)
{
	dropout(dinp, dout, p, seed, n);
}
