/* gemm.cu: Linear layers through cuBLASLt, forward and backward.
 *
 * out[N,OC] = beta * out + alpha * inp[N,C] @ W^T with W (OC,C) row-major.
 * cuBLAS is column-major: a row-major (R, K) matrix is a column-major
 * K x R one. So the product is computed as D = op(A) @ B with
 *   A = W   stored C x OC (ld C), op(A) = A^T  -> OC x C
 *   B = inp stored C x N  (ld C), op(B) = B    -> C x N
 *   C = D = out stored OC x N (ld OC)
 * Types: bf16 activations use bf16 x bf16 -> bf16 with f32 accumulation;
 * f32 activations use f32 with CUBLAS_COMPUTE_32F (no TF32, so results
 * match the CPU backend's sgemm to rounding).
 *
 * Weights of another dtype than the activations (bf16 base weights under
 * f32 activations, f32 LoRA weights under bf16 activations) are converted
 * on every call into the backend's scratch buffer, and nothing is cached:
 * a weight may be updated in place (the optimizer does this to LoRA
 * weights) or freed at any time without stale results. The model code
 * keeps the fast path fast by converting frozen base weights to the
 * activation dtype once, at load (lp_convert).
 *
 * Backward: dinp[N,C] = beta * dinp + alpha * dout[N,OC] @ W is the
 * column-major C x N product W (C x OC) @ dout (OC x N); the weight
 * gradient dW (OC,C) += alpha * dout^T @ inp is the column-major C x OC
 * product inp (C x N) @ dout^T, with activation-typed A and B and an f32
 * C/D (bf16 x bf16 -> f32 with f32 accumulation under bf16 activations),
 * beta 1 so it accumulates in place.
 *
 * The algorithm cuBLASLt's heuristic picks is cached per problem (shapes,
 * transposes, types, alignments, beta zero or not): the heuristic costs
 * more than a small product, and the same few shapes repeat every layer.
 * When cuBLASLt offers no algorithm for a shape or alignment, the same
 * product goes through cublasGemmEx, which handles any. */
#include "cuda.cuh"

#include <cstring>

/* Largest power of two (at most 256) that divides the address. */
static uint32_t alignment(const void *p)
{
	uintptr_t a = (uintptr_t)p;
	uint32_t al = 256;
	while (al > 1 && a % al)
		al /= 2;
	return al;
}

/* One column-major product D (m x n) = alpha op(A) op(B) + beta C, C = D. */
struct gemm_problem {
	int ta, tb, m, n, k, lda, ldb, ldc;
	cudaDataType_t tab, tc;         /* type of A and B; of C and D */
	uint32_t al_a, al_b, al_c;
	int beta_zero;
};

struct algo_entry {
	gemm_problem key;
	int found;                      /* 0: no algorithm, use cublasGemmEx */
	cublasLtMatmulAlgo_t algo;
	cublasLtMatmulDesc_t desc;      /* made once with the entry */
	cublasLtMatrixLayout_t la, lb, lc;
};

#define ALGO_CACHE 256
static algo_entry algo_cache[ALGO_CACHE];
static int algo_cached;

static cublasLtMatrixLayout_t layout(cudaDataType_t t, int rows, int cols, int ld)
{
	cublasLtMatrixLayout_t l;
	CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, t, (uint64_t)rows, (uint64_t)cols, (int64_t)ld));
	return l;
}

static void set_pref_alignment(cublasLtMatmulPreference_t pref, cublasLtMatmulPreferenceAttributes_t attr,
		uint32_t al)
{
	CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &al, sizeof(al)));
}

/* The descriptors of p and the heuristic's algorithm for it. */
static void make_entry(algo_entry *e, const gemm_problem &p)
{
	memset(e, 0, sizeof(*e));
	e->key = p;
	CUBLAS_CHECK(cublasLtMatmulDescCreate(&e->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
	cublasOperation_t ta = p.ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb = p.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
	CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
	CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
	/* stored shapes: op(A) is m x k, op(B) is k x n */
	e->la = p.ta ? layout(p.tab, p.k, p.m, p.lda) : layout(p.tab, p.m, p.k, p.lda);
	e->lb = p.tb ? layout(p.tab, p.n, p.k, p.ldb) : layout(p.tab, p.k, p.n, p.ldb);
	e->lc = layout(p.tc, p.m, p.n, p.ldc);

	cublasLtMatmulPreference_t pref;
	CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
	size_t ws = lp_cuda.workspace_size;
	CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref,
			CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
	/* Tell the heuristic how the pointers are aligned: views into larger
	 * buffers need not be 256-byte aligned as it would otherwise assume. */
	set_pref_alignment(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, p.al_a);
	set_pref_alignment(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, p.al_b);
	set_pref_alignment(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, p.al_c);
	set_pref_alignment(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, p.al_c);
	cublasLtMatmulHeuristicResult_t heur;
	int found = 0;
	cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(lp_cuda.lt, e->desc, e->la, e->lb, e->lc,
			e->lc, pref, 1, &heur, &found);
	e->found = s == CUBLAS_STATUS_SUCCESS && found > 0;
	if (e->found)
		e->algo = heur.algo;
	CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
}

static void free_entry(algo_entry *e)
{
	CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(e->lc));
	CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(e->lb));
	CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(e->la));
	CUBLAS_CHECK(cublasLtMatmulDescDestroy(e->desc));
	memset(e, 0, sizeof(*e));
}

/* Forget every cached problem (at shutdown: the handle goes away). */
void lp_cuda_gemm_cache_clear(void)
{
	for (int i = 0; i < algo_cached; i++)
		free_entry(&algo_cache[i]);
	algo_cached = 0;
}

/* Returns 0 when cuBLASLt has no algorithm for it or refuses the one it
 * offered (nothing was enqueued then). */
static int lt_matmul(const gemm_problem &p, const void *A, const void *B, void *C, float alpha,
		float beta)
{
	algo_entry *hit = NULL, fresh;
	for (int i = 0; i < algo_cached; i++)
		if (!memcmp(&algo_cache[i].key, &p, sizeof(p))) {
			hit = &algo_cache[i];
			break;
		}
	if (!hit) {
		make_entry(&fresh, p);
		hit = algo_cached < ALGO_CACHE ? &(algo_cache[algo_cached++] = fresh) : &fresh;
	}
	int ok = hit->found;
	if (ok) {
		cublasStatus_t s = cublasLtMatmul(lp_cuda.lt, hit->desc, &alpha, A, hit->la, B, hit->lb,
				&beta, C, hit->lc, C, hit->lc, &hit->algo, lp_cuda.workspace,
				lp_cuda.workspace_size, lp_cuda.stream);
		if (s == CUBLAS_STATUS_NOT_SUPPORTED)
			ok = hit->found = 0;
		else
			CUBLAS_CHECK(s);
	}
	if (hit == &fresh)
		free_entry(&fresh);
	return ok;
}

/* The same product through the classic API (any shape, any alignment). */
static void gemm_ex(const gemm_problem &p, const void *A, const void *B, void *C, float alpha,
		float beta)
{
	CUBLAS_CHECK(cublasGemmEx(lp_cuda.blas, p.ta ? CUBLAS_OP_T : CUBLAS_OP_N,
			p.tb ? CUBLAS_OP_T : CUBLAS_OP_N, p.m, p.n, p.k, &alpha, A, p.tab, p.lda,
			B, p.tab, p.ldb, &beta, C, p.tc, p.ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

/* D = alpha op(A) op(B) + beta D, column-major, m x n x k. */
static void gemm(int ta, int tb, int m, int n, int k, const void *A, int lda, const void *B,
		int ldb, void *C, int ldc, cudaDataType_t tab, cudaDataType_t tc, float alpha,
		float beta)
{
	gemm_problem p;
	memset(&p, 0, sizeof(p));       /* the cache compares bytes, padding included */
	p.ta = ta, p.tb = tb, p.m = m, p.n = n, p.k = k, p.lda = lda, p.ldb = ldb, p.ldc = ldc;
	p.tab = tab, p.tc = tc;
	p.al_a = alignment(A), p.al_b = alignment(B), p.al_c = alignment(C);
	p.beta_zero = beta == 0.0f;
	if (!lt_matmul(p, A, B, C, alpha, beta))
		gemm_ex(p, A, B, C, alpha, beta);
}

static cudaDataType_t act_type(void)
{
	return lp_cuda.act == LP_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

static void check_weight(const char *op, lp_weight W, int OC, int C)
{
	if (W.dtype != LP_F32 && W.dtype != LP_BF16 && W.dtype != LP_F16)
		lp_die("cuda", "%s: weight dtype %s is not f32, bf16 or f16", op,
				lp_cuda_dtype_name(W.dtype));
	if (W.rows != OC || W.cols != C)
		lp_die("cuda", "%s: weight is (%d, %d), the op needs (%d, %d)", op,
				W.rows, W.cols, OC, C);
}

/* W's data in the activation type: as is, or converted into scratch. */
static const void *weight_as_act(lp_weight W)
{
	int act = lp_cuda.act;
	if (W.dtype == act)
		return W.data;
	size_t n = (size_t)W.rows * W.cols;
	void *tmp = lp_cuda_scratch(n * lp_dtype_size(act));
	lp_cuda_convert(tmp, act, W.data, W.dtype, n);
	return tmp;
}

/* out = beta * out over n activations (an empty sum) */
static void scale_or_zero(void *out, float beta, size_t n)
{
	if (beta == 0.0f)
		lp_cuda_zero(out, n * lp_dtype_size(lp_cuda.act));
	else if (beta != 1.0f)
		lp_cuda_scale_inplace(out, beta, n);
}

void lp_cuda_matmul_forward(void *out, const void *inp, lp_weight W, int N, int C, int OC,
		float alpha, float beta)
{
	if (lp_is_qtype(W.dtype)) {
		lp_cuda_qmatmul_forward(out, inp, W, N, C, OC, alpha, beta);
		return;
	}
	check_weight("matmul_forward", W, OC, C);
	if (N <= 0 || OC <= 0)
		return;
	if (C <= 0) {
		scale_or_zero(out, beta, (size_t)N * OC);
		OP_DONE("matmul_forward");
		return;
	}
	const void *w = weight_as_act(W);
	/* out (OC x N) = W^T (OC x C) @ inp (C x N) */
	gemm(1, 0, OC, N, C, w, C, inp, C, out, OC, act_type(), act_type(), alpha, beta);
	OP_DONE("matmul_forward");
}

void lp_cuda_matmul_backward(void *dinp, float *dW, const void *dout, const void *inp,
		lp_weight W, int N, int C, int OC, float alpha, float beta)
{
	check_weight("matmul_backward", W, OC, C);
	if (N <= 0 || C <= 0)
		return;
	if (dinp && OC <= 0) {
		scale_or_zero(dinp, beta, (size_t)N * C);
	} else if (dinp) {
		const void *w = weight_as_act(W);
		/* dinp (C x N) = W (C x OC) @ dout (OC x N) */
		gemm(0, 0, C, N, OC, w, C, dout, OC, dinp, C, act_type(), act_type(), alpha, beta);
	}
	if (dW && OC > 0)   /* dW (C x OC) += inp (C x N) @ dout^T (N x OC) */
		gemm(0, 1, C, OC, N, inp, C, dout, OC, dW, C, act_type(), CUDA_R_32F, alpha, 1.0f);
	OP_DONE("matmul_backward");
}
