/* norm.cu: RMSNorm forward as Hugging Face's LlamaRMSNorm computes it:
 * var = mean(x^2), rstd = 1 / sqrt(var + eps), out = w * (x * rstd),
 * in f32 whatever the storage type. */
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
}
