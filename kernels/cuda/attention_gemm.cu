/* attention_gemm.cu: causal grouped-query attention for training through
 * tensor-core GEMMs (cuBLAS, batched over sequences and heads), with the
 * whole score matrix of every head in memory.
 *
 * The flash-style kernels of attention.cu keep nothing of size T x T but
 * compute on the CUDA cores; at training lengths the scores of a
 * micro-batch fit in memory easily (8 x 32 heads x 512^2 f32 = 256 MiB), so
 * this path computes, as the CPU backend does block by block:
 *
 *   forward:   S = scale Q K^T   (f32)        GEMM
 *              P = softmax(S) over the keys a row may see, lse saved
 *              O = P V                        GEMM
 *   backward:  S again, dP = dO V^T (f32)     GEMMs
 *              P = exp(S - lse), dS = P (dP - Dt), Dt = dO . O
 *              dQ = scale dS K,  dK = scale dS^T Q,  dV = P^T dO     GEMMs
 *
 * P and dS are stored in the activation type before the products that
 * read them (bf16 under bf16 activations, as flash attention rounds P);
 * sums are f32. dK and dV of a key/value head are summed over its query
 * heads by accumulating GEMMs in head order (beta = 1 after the first), so
 * the result does not depend on scheduling. The full T x T products
 * compute the masked upper triangle too and throw it away: the price of
 * cuBLAS's speed.
 *
 * Used when its buffers fit ATTN_GEMM_BYTES and LP_CUDA_ATTENTION is not
 * "flash"; LP_CUDA_ATTENTION=gemm forces it (gpu-ops checks both). */
#include <cstdlib>
#include <cstring>

#include "cuda.cuh"

#define ATTN_GEMM_BYTES ((size_t)4 << 30)

/* Which path: 1 this one, 0 the flash kernels. */
int lp_cuda_attention_use_gemm(int B, int T, int H, int backward)
{
	const char *want = getenv("LP_CUDA_ATTENTION");
	if (want && !strcmp(want, "flash"))
		return 0;
	size_t sq = (size_t)B * H * T * T;
	size_t bytes = sq * (sizeof(float) * (backward ? 2 : 1) + lp_dtype_size(lp_cuda.act) * 2);
	if (want && !strcmp(want, "gemm"))
		return 1;
	return bytes <= ATTN_GEMM_BYTES;
}

/* arr[b * H + h] = base + b * sb + (h / div) * sh (bytes) */
static __global__ void fill_ptrs(void **arr, char *base, size_t sb, size_t sh, int H, int div,
		int n)
{
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n)
		arr[i] = base + (size_t)(i / H) * sb + (size_t)(i % H / div) * sh;
}

/* n pointers into a [B, T, heads, D] tensor of element size es, one per
 * (b, h) of H query heads, head h reading head h / div. */
static void ptrs(void **arr, const void *base, int B, int T, int H, int heads, int D, int div,
		size_t es)
{
	int n = B * H;
	fill_ptrs<<<(n + 255) / 256, 256, 0, lp_cuda.stream>>>(arr, (char *)base,
			(size_t)T * heads * D * es, (size_t)D * es, H, div, n);
	LAUNCH_CHECK();
}

/* n pointers to consecutive T x T matrices of element size es */
static void ptrs_square(void **arr, const void *base, int n, int T, size_t es)
{
	fill_ptrs<<<(n + 255) / 256, 256, 0, lp_cuda.stream>>>(arr, (char *)base,
			(size_t)T * T * es, 0, 1, 1, n);
	LAUNCH_CHECK();
}

static cudaDataType_t act_type(void)
{
	return lp_cuda.act == LP_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

/* Column-major batched D = alpha op(A) op(B) + beta D */
static void batched(int ta, int tb, int m, int n, int k, float alpha, void **A, int lda,
		void **B, int ldb, float beta, void **C, cudaDataType_t tc, int ldc, int count)
{
	CUBLAS_CHECK(cublasGemmBatchedEx(lp_cuda.blas, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
			tb ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k, &alpha, (const void *const *)A, act_type(),
			lda, (const void *const *)B, act_type(), ldb, &beta, C, tc, ldc, count,
			CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

static __device__ __forceinline__ bool visible(const uint8_t *mask, int s, int t)
{
	return s <= t && (!mask || mask[s]);
}

/* One block per row (bh, t) of S[B*H, T, T]: P = softmax over the visible
 * keys (0 elsewhere), lse[bh, t]. */
template <typename T>
static __global__ void softmax_rows(T *P, float *lse, const float *S, const uint8_t *mask, int H,
		int Tn)
{
	const size_t row = blockIdx.x;          /* bh * T + t */
	const int t = (int)(row % Tn), b = (int)(row / Tn / H);
	const float *s = S + row * Tn;
	const uint8_t *mk = mask ? mask + (size_t)b * Tn : NULL;
	float m = -INFINITY;
	for (int j = threadIdx.x; j < Tn; j += blockDim.x)
		if (visible(mk, j, t))
			m = fmaxf(m, s[j]);
	m = block_max(m);
	float l = 0.0f;
	if (m != -INFINITY)
		for (int j = threadIdx.x; j < Tn; j += blockDim.x)
			if (visible(mk, j, t))
				l += expf(s[j] - m);
	l = block_sum(l);
	float inv = l > 0.0f ? 1.0f / l : 0.0f;
	for (int j = threadIdx.x; j < Tn; j += blockDim.x)
		store_f32(&P[row * Tn + j], visible(mk, j, t) && m != -INFINITY ? expf(s[j] - m) * inv : 0.0f);
	if (threadIdx.x == 0)
		lse[row] = m == -INFINITY ? -INFINITY : m + logf(l);
}

/* One block per row (bh, t): Dt = dO_t . O_t, then P = exp(S - lse) over
 * the visible keys and dS = P (dP - Dt), both stored in the activation
 * type. */
template <typename T>
static __global__ void grad_rows(T *P, T *dS, const float *S, const float *dP, const float *lse,
		const T *dout, const T *out, const uint8_t *mask, int H, int Tn, int D)
{
	const size_t row = blockIdx.x;
	const int t = (int)(row % Tn), h = (int)(row / Tn % H), b = (int)(row / Tn / H);
	const uint8_t *mk = mask ? mask + (size_t)b * Tn : NULL;
	const size_t o = (((size_t)b * Tn + t) * H + h) * D;
	float dt = 0.0f;
	for (int d = threadIdx.x; d < D; d += blockDim.x)
		dt += to_f32(dout[o + d]) * to_f32(out[o + d]);
	dt = block_sum(dt);
	const float l = lse[row];
	for (int j = threadIdx.x; j < Tn; j += blockDim.x) {
		size_t i = row * Tn + j;
		float p = visible(mk, j, t) && l != -INFINITY ? expf(S[i] - l) : 0.0f;
		store_f32(&P[i], p);
		store_f32(&dS[i], p * (dP[i] - dt));
	}
}

/* Scratch: [S f32][dP f32 (backward)][P act][dS act (backward)][pointers] */
struct attn_scratch {
	float *S, *dP;
	void *P, *dS;
	void **pa, **pb, **pc, **pd;
};

static attn_scratch scratch(int B, int H, int T, int backward)
{
	size_t sq = (size_t)B * H * T * T, a = lp_dtype_size(lp_cuda.act);
	size_t n = (size_t)B * H, align = 256;
	size_t fbytes = (sq * sizeof(float) + align - 1) / align * align;
	size_t abytes = (sq * a + align - 1) / align * align;
	size_t pbytes = (n * sizeof(void *) + align - 1) / align * align;
	size_t total = fbytes * (backward ? 2 : 1) + abytes * (backward ? 2 : 1) + 4 * pbytes;
	char *p = (char *)lp_cuda_scratch(total);
	attn_scratch s;
	memset(&s, 0, sizeof(s));
	s.S = (float *)p, p += fbytes;
	if (backward)
		s.dP = (float *)p, p += fbytes;
	s.P = p, p += abytes;
	if (backward)
		s.dS = p, p += abytes;
	s.pa = (void **)p, p += pbytes;
	s.pb = (void **)p, p += pbytes;
	s.pc = (void **)p, p += pbytes;
	s.pd = (void **)p;
	return s;
}

void lp_cuda_attention_gemm_forward(void *out, float *lse, const void *q, const void *k,
		const void *v, const uint8_t *mask, int B, int T, int H, int KVH, int D, float scale)
{
	int rep = H / KVH, n = B * H;
	size_t es = lp_dtype_size(lp_cuda.act), a = es;
	attn_scratch s = scratch(B, H, T, 0);
	/* S (keys x queries, column-major) = K^T Q per (b, h) */
	ptrs(s.pa, k, B, T, H, KVH, D, rep, es);
	ptrs(s.pb, q, B, T, H, H, D, 1, es);
	ptrs_square(s.pc, s.S, n, T, sizeof(float));
	batched(1, 0, T, T, D, scale, s.pa, KVH * D, s.pb, H * D, 0.0f, s.pc, CUDA_R_32F, T, n);
	if (lp_cuda.act == LP_BF16)
		softmax_rows<__nv_bfloat16><<<n * T, LP_THREADS, 0, lp_cuda.stream>>>(
				(__nv_bfloat16 *)s.P, lse, s.S, mask, H, T);
	else
		softmax_rows<float><<<n * T, LP_THREADS, 0, lp_cuda.stream>>>((float *)s.P, lse, s.S,
				mask, H, T);
	LAUNCH_CHECK();
	/* O (D x queries) = V (D x keys) P (keys x queries) */
	ptrs(s.pa, v, B, T, H, KVH, D, rep, es);
	ptrs_square(s.pb, s.P, n, T, a);
	ptrs(s.pc, out, B, T, H, H, D, 1, es);
	batched(0, 0, D, T, T, 1.0f, s.pa, KVH * D, s.pb, T, 0.0f, s.pc, act_type(), H * D, n);
}

void lp_cuda_attention_gemm_backward(void *dq, void *dk, void *dv, const void *dout,
		const void *out, const float *lse, const void *q, const void *k, const void *v,
		const uint8_t *mask, int B, int T, int H, int KVH, int D, float scale)
{
	int rep = H / KVH, n = B * H;
	size_t es = lp_dtype_size(lp_cuda.act);
	attn_scratch s = scratch(B, H, T, 1);
	/* S = scale K^T Q and dP = V^T dO, keys x queries per (b, h) */
	ptrs(s.pa, k, B, T, H, KVH, D, rep, es);
	ptrs(s.pb, q, B, T, H, H, D, 1, es);
	ptrs_square(s.pc, s.S, n, T, sizeof(float));
	batched(1, 0, T, T, D, scale, s.pa, KVH * D, s.pb, H * D, 0.0f, s.pc, CUDA_R_32F, T, n);
	ptrs(s.pa, v, B, T, H, KVH, D, rep, es);
	ptrs(s.pb, dout, B, T, H, H, D, 1, es);
	ptrs_square(s.pc, s.dP, n, T, sizeof(float));
	batched(1, 0, T, T, D, 1.0f, s.pa, KVH * D, s.pb, H * D, 0.0f, s.pc, CUDA_R_32F, T, n);
	if (lp_cuda.act == LP_BF16)
		grad_rows<__nv_bfloat16><<<n * T, LP_THREADS, 0, lp_cuda.stream>>>(
				(__nv_bfloat16 *)s.P, (__nv_bfloat16 *)s.dS, s.S, s.dP, lse,
				(const __nv_bfloat16 *)dout, (const __nv_bfloat16 *)out, mask, H, T, D);
	else
		grad_rows<float><<<n * T, LP_THREADS, 0, lp_cuda.stream>>>((float *)s.P, (float *)s.dS,
				s.S, s.dP, lse, (const float *)dout, (const float *)out, mask, H, T, D);
	LAUNCH_CHECK();
	/* dQ (D x queries) = scale K (D x keys) dS (keys x queries) */
	ptrs(s.pa, k, B, T, H, KVH, D, rep, es);
	ptrs_square(s.pb, s.dS, n, T, es);
	ptrs(s.pc, dq, B, T, H, H, D, 1, es);
	batched(0, 0, D, T, T, scale, s.pa, KVH * D, s.pb, T, 0.0f, s.pc, act_type(), H * D, n);
	/* per key/value head, its query heads in order r = 0 .. rep - 1:
	 * dK (D x keys) += scale Q (D x queries) dS^T, dV += dO P^T */
	int m = B * KVH;
	for (int r = 0; r < rep; r++) {
		float beta = r ? 1.0f : 0.0f;
		/* pointers for (b, g) with query head h = g * rep + r */
		fill_ptrs<<<(m + 255) / 256, 256, 0, lp_cuda.stream>>>(s.pa, (char *)q + (size_t)r * D * es,
				(size_t)T * H * D * es, (size_t)rep * D * es, KVH, 1, m);
		LAUNCH_CHECK();
		fill_ptrs<<<(m + 255) / 256, 256, 0, lp_cuda.stream>>>(s.pb,
				(char *)s.dS + (size_t)r * T * T * es, (size_t)H * T * T * es,
				(size_t)rep * T * T * es, KVH, 1, m);
		LAUNCH_CHECK();
		ptrs(s.pc, dk, B, T, KVH, KVH, D, 1, es);
		batched(0, 1, D, T, T, scale, s.pa, H * D, s.pb, T, beta, s.pc, act_type(), KVH * D, m);
		fill_ptrs<<<(m + 255) / 256, 256, 0, lp_cuda.stream>>>(s.pa,
				(char *)dout + (size_t)r * D * es, (size_t)T * H * D * es, (size_t)rep * D * es,
				KVH, 1, m);
		LAUNCH_CHECK();
		fill_ptrs<<<(m + 255) / 256, 256, 0, lp_cuda.stream>>>(s.pd,
				(char *)s.P + (size_t)r * T * T * es, (size_t)H * T * T * es,
				(size_t)rep * T * T * es, KVH, 1, m);
		LAUNCH_CHECK();
		ptrs(s.pc, dv, B, T, KVH, KVH, D, 1, es);
		batched(0, 1, D, T, T, 1.0f, s.pa, H * D, s.pd, T, beta, s.pc, act_type(), KVH * D, m);
	}
}
