/* attention.c: causal grouped-query attention, f32, exact softmax.
 *
 * Query head h reads key/value head h / (H / KVH), as HF's repeat_kv. Work
 * goes by (sequence, head, block of QBLOCK query rows), one task per thread:
 * the scores of a block against all the keys it may see come from one
 * sgemm straight out of the [B,T,H,D] layout (leading dimension H*D or
 * KVH*D, no copies), then the softmax of each row, then P @ V by another
 * sgemm. The backward recomputes P from the saved log-sum-exp and forms
 * dQ, dK, dV by sgemm too; each (sequence, head) task sums its dK, dV over
 * its query blocks in order, and heads sharing a key/value head are then
 * added in head order, so nothing depends on the number of threads. */
#include <math.h>
#include <stdlib.h>

#include "common.h"
#include "cpu.h"

#define QBLOCK 64

static float default_scale(float scale, int D)
{
	return scale > 0 ? scale : 1.0f / sqrtf((float)D);
}

static void check_heads(const char *op, int H, int KVH, int D)
{
	if (H <= 0 || KVH <= 0 || H % KVH || D <= 0)
		lp_die("cpu", "%s: %d query heads, %d key/value heads, head size %d do not fit",
				op, H, KVH, D);
}

static int allowed(const uint8_t *mask, int j, int last)
{
	return j <= last && (!mask || mask[j]);
}

/* Softmax in place over rows of S (rows, n), leading dimension n: row r is
 * query position pos0 + r and sees keys j <= pos0 + r with mask[j] != 0;
 * the others get probability 0. lse[r] = log-sum-exp of the row's scores;
 * a row that sees no key is all zero with lse -inf. */
static void softmax_rows(float *S, float *lse, int rows, int n, int pos0, const uint8_t *mask)
{
	for (int r = 0; r < rows; r++) {
		float *s = S + (size_t)r * n, m = -INFINITY, l = 0;
		int last = pos0 + r;
		for (int j = 0; j < n; j++)
			if (allowed(mask, j, last) && s[j] > m)
				m = s[j];
		for (int j = 0; j < n; j++) {
			s[j] = allowed(mask, j, last) && m != -INFINITY ? expf(s[j] - m) : 0.0f;
			l += s[j];
		}
		for (int j = 0; j < n && l > 0; j++)
			s[j] /= l;
		lse[r] = m == -INFINITY ? -INFINITY : m + logf(l);
	}
}

/* out rows [pos0, pos0 + rows) of one (sequence, head): q and out with
 * leading dimension ldq, the first n keys and values with leading
 * dimension ldk. S is scratch for rows * n scores. */
static void attend_block(float *out, float *lse, const float *q, const float *k, const float *v,
		int ldq, int ldk, int rows, int n, int pos0, const uint8_t *mask, int D,
		float scale, float *S)
{
	lp_cpu_gemm1(0, 1, rows, n, D, scale, q, ldq, k, ldk, 0.0f, S, n);
	softmax_rows(S, lse, rows, n, pos0, mask);
	lp_cpu_gemm1(0, 0, rows, D, n, 1.0f, S, n, v, ldk, 0.0f, out, ldq);
}

void lp_cpu_attention_forward(void *out, float *lse, const void *q, const void *k,
		const void *v, const uint8_t *mask, int B, int T, int H, int KVH, int D,
		float scale)
{
	check_heads("attention_forward", H, KVH, D);
	if (B <= 0 || T <= 0)
		return;
	lp_cpu_blas_single();
	scale = default_scale(scale, D);
	int rep = H / KVH, ldq = H * D, ldk = KVH * D, nb = (T + QBLOCK - 1) / QBLOCK;
	long tasks = (long)B * H * nb;
	#pragma omp parallel
	{
		float *S = lp_cpu_scratch(sizeof(float) * QBLOCK * (size_t)T);
		#pragma omp for schedule(dynamic)
		for (long task = 0; task < tasks; task++) {
			int t0 = (int)(task % nb) * QBLOCK, h = (int)(task / nb % H);
			int b = (int)(task / nb / H), rows = T - t0 < QBLOCK ? T - t0 : QBLOCK;
			size_t qi = ((size_t)b * T + t0) * ldq + (size_t)h * D;
			size_t ki = (size_t)b * T * ldk + (size_t)(h / rep) * D;
			attend_block((float *)out + qi, lse + ((size_t)b * H + h) * T + t0,
					(const float *)q + qi, (const float *)k + ki, (const float *)v + ki,
					ldq, ldk, rows, t0 + rows, t0, mask ? mask + (size_t)b * T : NULL,
					D, scale, S);
		}
		free(S);
	}
}

void lp_cpu_attention_cached(void *out, const void *q, const void *kcache,
		const void *vcache, const int32_t *past, const uint8_t *cache_mask,
		int B, int Tq, int Tmax, int H, int KVH, int D, float scale)
{
	check_heads("attention_cached", H, KVH, D);
	for (int b = 0; b < B; b++)
		if (past[b] < 0 || past[b] > Tmax - Tq)
			lp_die("cpu", "attention_cached: %d cached + %d new positions do not fit "
					"a cache of %d", (int)past[b], Tq, Tmax);
	if (B <= 0 || Tq <= 0)
		return;
	lp_cpu_blas_single();
	scale = default_scale(scale, D);
	int rep = H / KVH, ldq = H * D, ldk = KVH * D, nb = (Tq + QBLOCK - 1) / QBLOCK;
	long tasks = (long)B * H * nb;
	#pragma omp parallel
	{
		float *S = lp_cpu_scratch(sizeof(float) * (QBLOCK * (size_t)Tmax + QBLOCK));
		float *lse = S + QBLOCK * (size_t)Tmax;
		#pragma omp for schedule(dynamic)
		for (long task = 0; task < tasks; task++) {
			int i0 = (int)(task % nb) * QBLOCK, h = (int)(task / nb % H);
			int b = (int)(task / nb / H), rows = Tq - i0 < QBLOCK ? Tq - i0 : QBLOCK;
			size_t qi = ((size_t)b * Tq + i0) * ldq + (size_t)h * D;
			size_t ki = (size_t)b * Tmax * ldk + (size_t)(h / rep) * D;
			attend_block((float *)out + qi, lse, (const float *)q + qi,
					(const float *)kcache + ki, (const float *)vcache + ki, ldq, ldk,
					rows, past[b] + i0 + rows, past[b] + i0,
					cache_mask ? cache_mask + (size_t)b * Tmax : NULL, D, scale, S);
		}
		free(S);
	}
}

void lp_cpu_kv_store(void *kcache, void *vcache, const void *k, const void *v,
		const int32_t *past, int B, int Tq, int Tmax, int KVH, int D)
{
	size_t row = (size_t)KVH * D;
	for (int b = 0; b < B; b++) {
		if (past[b] < 0 || past[b] > Tmax - Tq)
			lp_die("cpu", "kv_store: %d cached + %d new positions do not fit a cache "
					"of %d", (int)past[b], Tq, Tmax);
		for (int i = 0; i < Tq; i++) {
			size_t dst = ((size_t)b * Tmax + past[b] + i) * row;
			size_t src = ((size_t)b * Tq + i) * row;
			memcpy((float *)kcache + dst, (const float *)k + src, row * sizeof(float));
			memcpy((float *)vcache + dst, (const float *)v + src, row * sizeof(float));
		}
	}
}

/* Backward of one (sequence, head), block by block of query rows, with
 * P = exp(S - lse) and Dt = dout_t . out_t:
 *   dP = dO V^T,  dS = P (dP - Dt)
 *   dQ = scale dS K,  dK += scale dS^T Q,  dV += P^T dO
 * dK, dV (n, D) with leading dimension ldg. P, dP: scratch QBLOCK * T. */
static void backward_head(float *dQ, float *dK, float *dV, int ldg, const float *Q,
		const float *K, const float *V, const float *O, const float *dO, const float *ls,
		const uint8_t *mk, int T, int ldq, int ldk, int D, float scale, float *P, float *dP)
{
	for (int t0 = 0; t0 < T; t0 += QBLOCK) {
		int rows = T - t0 < QBLOCK ? T - t0 : QBLOCK, n = t0 + rows;
		size_t o = (size_t)t0 * ldq;
		lp_cpu_gemm1(0, 1, rows, n, D, scale, Q + o, ldq, K, ldk, 0.0f, P, n);
		lp_cpu_gemm1(0, 1, rows, n, D, 1.0f, dO + o, ldq, V, ldk, 0.0f, dP, n);
		for (int r = 0; r < rows; r++) {
			float *p = P + (size_t)r * n, *ds = dP + (size_t)r * n;
			float l = ls[t0 + r];
			if (l == -INFINITY) {
				memset(p, 0, sizeof(float) * n);
				memset(ds, 0, sizeof(float) * n);
				continue;
			}
			float dt = lp_cpu_dot(dO + o + (size_t)r * ldq, O + o + (size_t)r * ldq, D);
			for (int j = 0; j < n; j++) {
				p[j] = allowed(mk, j, t0 + r) ? expf(p[j] - l) : 0.0f;
				ds[j] = p[j] * (ds[j] - dt);
			}
		}
		lp_cpu_gemm1(0, 0, rows, D, n, scale, dP, n, K, ldk, 0.0f, dQ + o, ldq);
		lp_cpu_gemm1(1, 0, n, D, rows, scale, dP, n, Q + o, ldq, 1.0f, dK, ldg);
		lp_cpu_gemm1(1, 0, n, D, rows, 1.0f, P, n, dO + o, ldq, 1.0f, dV, ldg);
	}
}

void lp_cpu_attention_backward(void *dq, void *dk, void *dv, const void *dout,
		const void *out, const float *lse, const void *q, const void *k,
		const void *v, const uint8_t *mask, int B, int T, int H, int KVH, int D,
		float scale)
{
	check_heads("attention_backward", H, KVH, D);
	if (B <= 0 || T <= 0)
		return;
	lp_cpu_blas_single();
	scale = default_scale(scale, D);
	int rep = H / KVH, ldq = H * D, ldk = KVH * D;
	size_t nk = (size_t)B * T * ldk;
	/* with groups, each head first sums into its own (T, D) slice */
	float *part = rep > 1 ? lp_cpu_scratch(sizeof(float) * 2 * (size_t)B * H * T * D) : NULL;
	if (!part) {
		memset(dk, 0, sizeof(float) * nk);
		memset(dv, 0, sizeof(float) * nk);
	} else {
		memset(part, 0, sizeof(float) * 2 * (size_t)B * H * T * D);
	}
	#pragma omp parallel
	{
		float *P = lp_cpu_scratch(sizeof(float) * 2 * QBLOCK * (size_t)T);
		#pragma omp for schedule(dynamic)
		for (int bh = 0; bh < B * H; bh++) {
			int b = bh / H, h = bh % H;
			size_t qi = (size_t)b * T * ldq + (size_t)h * D;
			size_t ki = (size_t)b * T * ldk + (size_t)(h / rep) * D;
			float *gk = part ? part + (size_t)bh * T * D : (float *)dk + ki;
			float *gv = part ? part + ((size_t)B * H + bh) * T * D : (float *)dv + ki;
			backward_head((float *)dq + qi, gk, gv, part ? D : ldk,
					(const float *)q + qi, (const float *)k + ki, (const float *)v + ki,
					(const float *)out + qi, (const float *)dout + qi,
					lse + (size_t)bh * T, mask ? mask + (size_t)b * T : NULL,
					T, ldq, ldk, D, scale, P, P + QBLOCK * (size_t)T);
		}
		free(P);
		if (part) {
			#pragma omp for schedule(static)
			for (long r = 0; r < (long)B * T * KVH; r++) {
				int g = (int)(r % KVH), s = (int)(r / KVH % T), b = (int)(r / KVH / T);
				float *gk = (float *)dk + (size_t)r * D, *gv = (float *)dv + (size_t)r * D;
				for (int d = 0; d < D; d++)
					gk[d] = gv[d] = 0;
				for (int h = g * rep; h < (g + 1) * rep; h++) {
					size_t src = (((size_t)b * H + h) * T + s) * D;
					lp_cpu_axpy(gk, 1.0f, part + src, D);
					lp_cpu_axpy(gv, 1.0f, part + (size_t)B * H * T * D + src, D);
				}
			}
		}
	}
	free(part);
}
