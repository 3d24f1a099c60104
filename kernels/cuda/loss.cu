/* loss.cu: fused cross-entropy over logits[N,V], forward and dlogits in
 * one kernel, f32 math whatever the logits' type.
 *
 *   lse = log sum_v exp(logits[n,v]),  losses[n] = lse - logits[n, t]
 *   dlogits[n,v] = (exp(logits[n,v] - lse) - (v == t)) * grad_scale
 * Rows with target -100 get loss 0 and zero gradient. A target outside
 * [0, V) otherwise gives loss NaN and a NaN gradient row, which the
 * caller's NaN check reports (the device cannot stop with a message). */
#include "cuda.cuh"

#define CE_THREADS 512
#define IGNORE_INDEX (-100)

/* One block per row. dlogits may be NULL or alias logits: every thread
 * reads what it needs of the row (its own elements, and the target's
 * logit) before the block reductions, and writes only its own elements
 * after them. */
template <typename T>
static __global__ void cross_entropy_kernel(float *losses, T *dlogits, const T *logits,
		const int32_t *targets, int V, float grad_scale)
{
	const size_t row = (size_t)blockIdx.x * V;
	const T *x = logits + row;
	const int t = targets[blockIdx.x];
	const bool ignored = t == IGNORE_INDEX, bad = !ignored && (t < 0 || t >= V);

	/* online max and sum of exp over this thread's elements */
	float m = -INFINITY, s = 0.0f;
	for (int i = threadIdx.x; i < V; i += blockDim.x) {
		float v = to_f32(x[i]);
		if (v == -INFINITY)
			continue;
		if (v > m) {
			s = s * expf(m - v) + 1.0f;
			m = v;
		} else {
			s += expf(v - m);
		}
	}
	const float xt = ignored || bad ? 0.0f : to_f32(x[t]);
	const float M = block_max(m);
	const float S = block_sum(m == -INFINITY ? 0.0f : s * expf(m - M));
	const float lse = M + logf(S);

	if (threadIdx.x == 0)
		losses[blockIdx.x] = ignored ? 0.0f : bad ? NAN : lse - xt;
	if (!dlogits)
		return;
	T *dx = dlogits + row;
	for (int i = threadIdx.x; i < V; i += blockDim.x) {
		float g;
		if (ignored)
			g = 0.0f;
		else if (bad)
			g = NAN;
		else
			g = (expf(to_f32(x[i]) - lse) - (i == t ? 1.0f : 0.0f)) * grad_scale;
		store_f32(&dx[i], g);
	}
}

template <typename T>
static void cross_entropy_launch(float *losses, void *dlogits, const void *logits,
		const int32_t *targets, int N, int V, float grad_scale)
{
	cross_entropy_kernel<T><<<N, CE_THREADS, 0, lp_cuda.stream>>>(
			losses, (T *)dlogits, (const T *)logits, targets, V, grad_scale);
	LAUNCH_CHECK();
}

void lp_cuda_cross_entropy(float *losses, void *dlogits, const void *logits,
		const int32_t *targets, int N, int V, float grad_scale)
{
	if (N <= 0)
		return;
	if (V <= 0)
		lp_die("cuda", "cross_entropy: vocabulary size %d", V);
	if (lp_cuda.act == LP_BF16)
		cross_entropy_launch<__nv_bfloat16>(losses, dlogits, logits, targets, N, V, grad_scale);
	else
		cross_entropy_launch<float>(losses, dlogits, logits, targets, N, V, grad_scale);
	OP_DONE("cross_entropy");
}
