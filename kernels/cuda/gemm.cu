/* gemm.cu: Linear layers through cuBLASLt.
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
 * When cuBLASLt offers no algorithm for a shape or alignment, the same
 * product goes through cublasGemmEx, which handles any. */
#include "cuda.cuh"

/* Largest power of two (at most 256) that divides the address. */
static uint32_t alignment(const void *p)
{
	uintptr_t a = (uintptr_t)p;
	uint32_t al = 256;
	while (al > 1 && a % al)
		al /= 2;
	return al;
}

static cublasLtMatrixLayout_t layout(cudaDataType_t t, int rows, int cols, int ld)
{
	cublasLtMatrixLayout_t l;
	CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, t, (uint64_t)rows, (uint64_t)cols, (int64_t)ld));
	return l;
}

/* D = alpha * A^T B + beta * C as laid out above; returns 0 when cuBLASLt
 * has no algorithm for it or refuses the one it offered (nothing was
 * enqueued then). */
static int lt_matmul(void *out, const void *inp, const void *w, cudaDataType_t t,
		int N, int C, int OC, float alpha, float beta)
{
	cublasLtMatmulDesc_t desc;
	CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
	cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
	CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
	CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
	cublasLtMatrixLayout_t la = layout(t, C, OC, C);
	cublasLtMatrixLayout_t lb = layout(t, C, N, C);
	cublasLtMatrixLayout_t lc = layout(t, OC, N, OC);

	cublasLtMatmulPreference_t pref;
	CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
	size_t ws = lp_cuda.workspace_size;
	CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref,
			CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
	/* Tell the heuristic how the pointers are aligned: views into larger
	 * buffers need not be 256-byte aligned as it would otherwise assume. */
	uint32_t al_a = alignment(w), al_b = alignment(inp), al_c = alignment(out);
	CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref,
			CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof(al_a)));
	CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref,
			CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof(al_b)));
	CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref,
			CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof(al_c)));
	CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref,
			CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof(al_c)));

	cublasLtMatmulHeuristicResult_t heur;
	int found = 0;
	cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(lp_cuda.lt, desc, la, lb, lc, lc,
			pref, 1, &heur, &found);
	int ok = s == CUBLAS_STATUS_SUCCESS && found > 0;
	if (ok) {
		s = cublasLtMatmul(lp_cuda.lt, desc, &alpha, w, la, inp, lb, &beta,
				out, lc, out, lc, &heur.algo, lp_cuda.workspace,
				lp_cuda.workspace_size, lp_cuda.stream);
		if (s == CUBLAS_STATUS_NOT_SUPPORTED)
			ok = 0;
		else
			CUBLAS_CHECK(s);
	}

	CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
	CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(lc));
	CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(lb));
	CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(la));
	CUBLAS_CHECK(cublasLtMatmulDescDestroy(desc));
	return ok;
}

/* The same product through the classic API (any shape, any alignment). */
static void gemm_ex(void *out, const void *inp, const void *w, cudaDataType_t t,
		int N, int C, int OC, float alpha, float beta)
{
	CUBLAS_CHECK(cublasGemmEx(lp_cuda.blas, CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C,
			&alpha, w, t, C, inp, t, C, &beta, out, t, OC,
			CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void lp_cuda_matmul_forward(void *out, const void *inp, lp_weight W, int N, int C, int OC,
		float alpha, float beta)
{
	if (lp_is_qtype(W.dtype)) {
		lp_cuda_qmatmul_forward(out, inp, W, N, C, OC, alpha, beta);
		return;
	}
	if (W.dtype != LP_F32 && W.dtype != LP_BF16 && W.dtype != LP_F16)
		lp_die("cuda", "matmul_forward: weight dtype %s is not f32, bf16 or f16",
				lp_cuda_dtype_name(W.dtype));
	if (W.rows != OC || W.cols != C)
		lp_die("cuda", "matmul_forward: weight is (%d, %d), the op needs (%d, %d)",
				W.rows, W.cols, OC, C);
	if (N <= 0 || OC <= 0)
		return;
	if (C <= 0) {           /* empty sum: out = beta * out */
		if (beta == 0.0f)
			lp_cuda_zero(out, (size_t)N * OC * lp_dtype_size(lp_cuda.act));
		else
			lp_cuda_scale_inplace(out, beta, (size_t)N * OC);
		return;
	}
	int act = lp_cuda.act;
	const void *w = W.data;
	if (W.dtype != act) {
		size_t n = (size_t)OC * C;
		void *tmp = lp_cuda_scratch(n * lp_dtype_size(act));
		lp_cuda_convert(tmp, act, W.data, W.dtype, n);
		w = tmp;
	}
	cudaDataType_t t = act == LP_BF16 ? CUDA_R_16BF : CUDA_R_32F;
	if (!lt_matmul(out, inp, w, t, N, C, OC, alpha, beta))
		gemm_ex(out, inp, w, t, N, C, OC, alpha, beta);
}
