/* norm.cu: RMSNorm as Hugging Face's LlamaRMSNorm computes it:
 * var = mean(x^2), rstd = 1 / sqrt(var + eps), out = w * (x * rstd),
 * in f32 whatever the storage type; and its backward
 *   dx = r w dy - r^3 / C * x * sum_c(w_c dy_c x_c),  dw_c += sum_n dy x r
 * where the weight gradient is summed over rows in a fixed order (blocks
 * of ROWS rows, then the blocks in order), so it is deterministic. */
#include "cuda.cuh"

/* One block per row n of inp[N,C]: sum of squares over the block, then
 * the scaled row. out may be inp. rstd[N] may be NULL. */
template <typename T>
static __global__ void rmsnorm_forward_kernel(T *out, float *rstd, const T *inp,
		const void *w, int wdtype, int C, float eps)
{
	size_t row = (size_t)blockIdx.x * C;
	const T *x = inp + row;
	float ss = 0.0f;
	for (int c = threadIdx.x; c < C; c += blockDim.x) {
		float v = to_f32(x[c]);
		ss += v * v;
	}
	ss = block_sum(ss);     /* all reads of the sum are done before any write */
	float r = 1.0f / sqrtf(ss / C + eps);
	if (rstd && threadIdx.x == 0)
		rstd[blockIdx.x] = r;
	for (int c = threadIdx.x; c < C; c += blockDim.x)
		store_f32(&out[row + c], ld_weight(w, wdtype, (size_t)c) * (to_f32(x[c]) * r));
}

template <typename T>
static void rmsnorm_launch(void *out, float *rstd, const void *inp, lp_weight w,
		int N, int C, float eps)
{
	rmsnorm_forward_kernel<T><<<N, LP_THREADS, 0, lp_cuda.stream>>>(
			(T *)out, rstd, (const T *)inp, w.data, w.dtype, C, eps);
	LAUNCH_CHECK();
}

/* The weight is a vector of C elements, held as (1, C) or (C, 1). */
void lp_cuda_rmsnorm_forward(void *out, float *rstd, const void *inp, lp_weight w,
		int N, int C, float eps)
{
	if (w.dtype != LP_F32 && w.dtype != LP_BF16 && w.dtype != LP_F16)
		lp_die("cuda", "rmsnorm_forward: weight dtype %s is not f32, bf16 or f16",
				lp_cuda_dtype_name(w.dtype));
	if (!((w.rows == 1 && w.cols == C) || (w.rows == C && w.cols == 1)))
		lp_die("cuda", "rmsnorm_forward: weight is (%d, %d), the op needs (1, %d)",
				w.rows, w.cols, C);
	if (N <= 0 || C <= 0)
		return;
	if (lp_cuda.act == LP_BF16)
		rmsnorm_launch<__nv_bfloat16>(out, rstd, inp, w, N, C, eps);
	else
		rmsnorm_launch<float>(out, rstd, inp, w, N, C, eps);
	OP_DONE("rmsnorm_forward");
}

/* ---- backward ---- */

#define ROWS 64         /* rows per partial sum of the weight gradient */

/* One block per row: dinp (= or +=) from dout. Every thread reads what it
 * needs before the block sum and writes only its own elements after it,
 * so dinp may alias dout. */
template <typename T>
static __global__ void rmsnorm_backward_kernel(T *dinp, const T *dout, const T *inp,
		const void *w, int wdtype, const float *rstd, int C, int accumulate)
{
	size_t row = (size_t)blockIdx.x * C;
	float dot = 0.0f;
	for (int c = threadIdx.x; c < C; c += blockDim.x)
		dot += ld_weight(w, wdtype, (size_t)c) * to_f32(dout[row + c]) * to_f32(inp[row + c]);
	dot = block_sum(dot);
	float r = rstd[blockIdx.x];
	float coef = r * r * r * dot / (float)C;
	for (int c = threadIdx.x; c < C; c += blockDim.x) {
		float wg = ld_weight(w, wdtype, (size_t)c) * to_f32(dout[row + c]);
		float d = r * wg - coef * to_f32(inp[row + c]);
		store_f32(&dinp[row + c], accumulate ? to_f32(dinp[row + c]) + d : d);
	}
}

/* part[blockIdx.y, c] = sum over rows [y * ROWS, ...) of dout x r, in row order. */
template <typename T>
static __global__ void rmsnorm_dw_partial(float *part, const T *dout, const T *inp,
		const float *rstd, int N, int C)
{
	int c = blockIdx.x * blockDim.x + threadIdx.x;
	if (c >= C)
		return;
	int n0 = blockIdx.y * ROWS, n1 = min(n0 + ROWS, N);
	float acc = 0.0f;
	for (int n = n0; n < n1; n++) {
		size_t i = (size_t)n * C + c;
		acc += to_f32(dout[i]) * to_f32(inp[i]) * rstd[n];
	}
	part[(size_t)blockIdx.y * C + c] = acc;
}

/* dw[c] += the partial sums in block order. */
static __global__ void rmsnorm_dw_sum(float *dw, const float *part, int nparts, int C)
{
	int c = blockIdx.x * blockDim.x + threadIdx.x;
	if (c >= C)
		return;
	float acc = 0.0f;
	for (int k = 0; k < nparts; k++)
		acc += part[(size_t)k * C + c];
	dw[c] += acc;
}

template <typename T>
static void rmsnorm_backward_launch(void *dinp, float *dw, const void *dout, const void *inp,
		lp_weight w, const float *rstd, int N, int C, int accumulate)
{
	if (dw) {           /* first: dinp may alias dout */
		int nparts = (N + ROWS - 1) / ROWS;
		float *part = (float *)lp_cuda_scratch((size_t)nparts * C * sizeof(float));
		dim3 grid((unsigned)((C + LP_THREADS - 1) / LP_THREADS), (unsigned)nparts);
		rmsnorm_dw_partial<T><<<grid, LP_THREADS, 0, lp_cuda.stream>>>(part, (const T *)dout,
				(const T *)inp, rstd, N, C);
		LAUNCH_CHECK();
		rmsnorm_dw_sum<<<(C + LP_THREADS - 1) / LP_THREADS, LP_THREADS, 0, lp_cuda.stream>>>(
				dw, part, nparts, C);
		LAUNCH_CHECK();
	}
	if (dinp) {
		rmsnorm_backward_kernel<T><<<N, LP_THREADS, 0, lp_cuda.stream>>>((T *)dinp,
				(const T *)dout, (const T *)inp, w.data, w.dtype, rstd, C, accumulate);
		LAUNCH_CHECK();
	}
}

void lp_cuda_rmsnorm_backward(void *dinp, float *dw, const void *dout, const void *inp,
		lp_weight w, const float *rstd, int N, int C, int accumulate)
{
	if (w.dtype != LP_F32 && w.dtype != LP_BF16 && w.dtype != LP_F16)
		lp_die("cuda", "rmsnorm_backward: weight dtype %s is not f32, bf16 or f16",
				lp_cuda_dtype_name(w.dtype));
	if (!((w.rows == 1 && w.cols == C) || (w.rows == C && w.cols == 1)))
		lp_die("cuda", "rmsnorm_backward: weight is (%d, %d), the op needs (1, %d)",
				w.rows, w.cols, C);
	if (N <= 0 || C <= 0)
		return;
	if (N > 65535 * ROWS)
		lp_die("cuda", "rmsnorm_backward: %d rows are over %d", N, 65535 * ROWS);
	if (lp_cuda.act == LP_BF16)
		rmsnorm_backward_launch<__nv_bfloat16>(dinp, dw, dout, inp, w, rstd, N, C, accumulate);
	else
		rmsnorm_backward_launch<float>(dinp, dw, dout, inp, w, rstd, N, C, accumulate);
	OP_DONE("rmsnorm_backward");
}
