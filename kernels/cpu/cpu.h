/* cpu.h: what the files of the CPU backend share (not a public header).
 *
 * The CPU backend computes in f32 on host memory: every "device" pointer of
 * kernels.h is a plain host pointer, activations are float. Each op is an
 * lp_cpu_* function collected into lp_cpu_ops by backend.c.
 *
 * Parallelism is OpenMP's alone (BLAS runs single-threaded inside OpenMP
 * tasks, see gemm.c). Determinism: no result depends on the number of
 * threads. Every output element is written by one task (a loop iteration,
 * or a GEMM tile fixed by the shapes), and reductions across rows are cut
 * into chunks of a fixed size whose partial sums are added in order. */
#ifndef LP_CPU_H
#define LP_CPU_H

#include <stdint.h>
#include <string.h>

#include "half.h"
#include "kernels.h"

/* Element i of a buffer of dtype LP_F32, LP_BF16 or LP_F16, as float. */
static inline float lp_cpu_load(const void *p, int dtype, size_t i)
{
	switch (dtype) {
	case LP_BF16: return lp_bf16_to_f32(((const uint16_t *)p)[i]);
	case LP_F16: return lp_f16_to_f32(((const uint16_t *)p)[i]);
	default: return ((const float *)p)[i];
	}
}

/* n elements of src (f32/bf16/f16) into dst as f32; single-threaded. */
void lp_cpu_to_f32(float *dst, const void *src, int dtype, size_t n);
/* Rows [r0, r0 + nrows) of w into dst (nrows, w.cols) f32, in parallel. */
void lp_cpu_weight_rows(float *dst, lp_weight w, int r0, int nrows);
/* lp_cpu_matmul_forward, or LLM.int8's forward for an int8 weight with a
 * threshold (quant.c). */
void lp_cpu_qmatmul_forward(void *out, const void *inp, lp_weight W, int N, int C, int OC,
		float alpha, float beta);
/* Rows [r0, r0 + nrows) of a quantized weight as f32 (quant.c). */
void lp_cpu_qweight_rows(float *dst, const lp_qweight *q, int64_t r0, int64_t nrows);
/* Die unless w is (rows, cols) of a supported dtype; op names the caller. */
void lp_cpu_check_weight(const char *op, lp_weight w, int rows, int cols);
/* Scratch memory (not zeroed); dies on failure. */
void *lp_cpu_scratch(size_t bytes);

/* 8-lane dot product: lane j sums the products i = j (mod 8) in order, then
 * the lanes are added pairwise. GCC/Clang vector types make it SIMD
 * without reassociating anything, so the result depends only on n and the
 * data (not on the compiler's vectorizer or the thread). */
typedef float lp_cpu_v8 __attribute__((vector_size(32)));

static inline float lp_cpu_dot(const float *a, const float *b, int n)
{
	lp_cpu_v8 acc = {0, 0, 0, 0, 0, 0, 0, 0};
	int i = 0;
	for (; i + 8 <= n; i += 8) {
		lp_cpu_v8 x, y;
		memcpy(&x, a + i, sizeof(x));
		memcpy(&y, b + i, sizeof(y));
		acc += x * y;
	}
	float r[8];
	memcpy(r, &acc, sizeof(r));
	for (int j = 0; i < n; i++, j++)
		r[j] += a[i] * b[i];
	return ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
}

/* y[i] += a * x[i] */
static inline void lp_cpu_axpy(float *y, float a, const float *x, int n)
{
	for (int i = 0; i < n; i++)
		y[i] += a * x[i];
}

/* GEMM, row-major, as cblas_sgemm with ta/tb non-zero for transposed
 * operands: C (M,N) = alpha op(A) op(B) + beta C. lp_cpu_gemm cuts C into
 * fixed tiles computed in parallel; lp_cpu_gemm1 runs on the calling
 * thread (for use inside parallel regions, after lp_cpu_blas_single()). */
void lp_cpu_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
		const float *B, int ldb, float beta, float *C, int ldc);
void lp_cpu_gemm1(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
		const float *B, int ldb, float beta, float *C, int ldc);
/* Make BLAS single-threaded (OpenMP threads call it); idempotent. */
void lp_cpu_blas_single(void);
/* The name of the kernels OpenBLAS chose for this processor. */
const char *lp_cpu_blas_core(void);

/* bf16 or f32 weights times few rows (matvec.c): out[N,OC] = beta * out
 * + alpha * inp[N,C] @ W^T, W (OC,C), each output element computed alone
 * (the same bits whatever N). The variant (avx2, avx512, avx512bf16,
 * scalar) is chosen at run time; lp_cpu_matvec returns 0 without computing
 * for other dtypes and when $LP_CPU_MATVEC is "off".
 * lp_cpu_matvec_variant runs variant v, which must be supported. */
#define LP_CPU_MATVEC_MAX_N 32
int lp_cpu_matvec(float *out, const float *inp, lp_weight W, int N, int C, int OC,
		float alpha, float beta);
void lp_cpu_matvec_variant(int v, float *out, const float *inp, lp_weight W, int N,
		int C, int OC, float alpha, float beta);
int lp_cpu_matvec_variant_count(void);
const char *lp_cpu_matvec_variant_name(int v);
int lp_cpu_matvec_variant_supported(int v);
const char *lp_cpu_matvec_name(void);   /* the one in use */

/* ---- the ops (contracts in kernels.h) ---- */

void lp_cpu_embedding_forward(void *out, const int32_t *ids, lp_weight wte, int N, int C);
void lp_cpu_embedding_backward(float *dwte, const void *dout, const int32_t *ids, int N, int C);
void lp_cpu_rmsnorm_forward(void *out, float *rstd, const void *inp, lp_weight w,
		int N, int C, float eps);
void lp_cpu_rmsnorm_backward(void *dinp, float *dw, const void *dout, const void *inp,
		lp_weight w, const float *rstd, int N, int C, int accumulate);
void lp_cpu_matmul_forward(void *out, const void *inp, lp_weight W, int N, int C, int OC,
		float alpha, float beta);
void lp_cpu_matmul_backward(void *dinp, float *dW, const void *dout, const void *inp,
		lp_weight W, int N, int C, int OC, float alpha, float beta);
void lp_cpu_rope_forward(void *x, const int32_t *pos, const float *inv_freq,
		int N, int nh, int D, float attn_factor);
void lp_cpu_rope_backward(void *dx, const int32_t *pos, const float *inv_freq,
		int N, int nh, int D, float attn_factor);
void lp_cpu_attention_forward(void *out, float *lse, const void *q, const void *k,
		const void *v, const uint8_t *mask, int B, int T, int H, int KVH, int D,
		float scale);
void lp_cpu_attention_backward(void *dq, void *dk, void *dv, const void *dout,
		const void *out, const float *lse, const void *q, const void *k,
		const void *v, const uint8_t *mask, int B, int T, int H, int KVH, int D,
		float scale);
void lp_cpu_attention_cached(void *out, const void *q, const void *kcache,
		const void *vcache, const int32_t *past, const uint8_t *cache_mask,
		int B, int Tq, int Tmax, int H, int KVH, int D, float scale);
void lp_cpu_kv_store(void *kcache, void *vcache, const void *k, const void *v,
		const int32_t *past, int B, int Tq, int Tmax, int KVH, int D);
void lp_cpu_swiglu_forward(void *out, const void *gate, const void *up, int N, int I);
void lp_cpu_swiglu_backward(void *dgate, void *dup, const void *dout, const void *gate,
		const void *up, int N, int I);
void lp_cpu_add_inplace(void *x, const void *y, size_t n);
void lp_cpu_scale_inplace(void *x, float s, size_t n);
void lp_cpu_dropout_forward(void *out, const void *inp, float p, uint64_t seed, size_t n);
void lp_cpu_dropout_backward(void *dinp, const void *dout, float p, uint64_t seed, size_t n);
void lp_cpu_cross_entropy(float *losses, void *dlogits, const void *logits,
		const int32_t *targets, int N, int V, float grad_scale);
void lp_cpu_sumsq_f32(float *out, const float *x, size_t n);
void lp_cpu_scale_f32(float *x, float s, size_t n);
void lp_cpu_adamw_f32(float *param, const float *grad, float *m, float *v, size_t n,
		double lr, double beta1, double beta2, double eps, double weight_decay, int t);
void lp_cpu_adamw_flat(float *param, const float *grad, float *m, float *v,
		const lp_adamw_segment *seg, int nseg, double lr, double beta1, double beta2,
		double eps, int t, void *work, int work_dtype);

#endif
