/* optim.cu: gradient norm, scaling and AdamW on f32 master weights.
 *
 * The sum of squares is deterministic: fixed chunks of CHUNK elements (the
 * CPU backend's), each summed in double by one block in a fixed tree
 * order, then the chunks added in order by one thread.
 *
 * AdamW does, element by element, exactly the f32 operations of the CPU
 * backend (kernels/cpu/optim.c, itself torch.optim.AdamW's order), each
 * written as an intrinsic that rounds once (__fmul_rn, __fadd_rn, ...), so
 * that nvcc cannot contract a product and a sum into a fused multiply-add
 * the CPU does not do; fmaf where the CPU calls fmaf. The scalars derived
 * from the hyperparameters are computed on the host in double, as the CPU
 * backend computes them. So the update is bit for bit the CPU's. */
#include "cuda.cuh"

#define CHUNK 8192
#define SUMSQ_THREADS 256

static __global__ void sumsq_chunks(double *part, const float *x, size_t n)
{
	__shared__ double s[SUMSQ_THREADS];
	size_t i0 = (size_t)blockIdx.x * CHUNK;
	size_t i1 = i0 + CHUNK < n ? i0 + CHUNK : n;
	double acc = 0;
	for (size_t i = i0 + threadIdx.x; i < i1; i += SUMSQ_THREADS)
		acc += (double)x[i] * (double)x[i];
	s[threadIdx.x] = acc;
	__syncthreads();
	for (int w = SUMSQ_THREADS / 2; w > 0; w /= 2) {
		if ((int)threadIdx.x < w)
			s[threadIdx.x] += s[threadIdx.x + w];
		__syncthreads();
	}
	if (threadIdx.x == 0)
		part[blockIdx.x] = s[0];
}

static __global__ void sumsq_total(float *out, const double *part, size_t nchunks)
{
	double total = out[0];
	for (size_t c = 0; c < nchunks; c++)
		total += part[c];
	out[0] = (float)total;
}

void lp_cuda_sumsq_f32(float *out, const float *x, size_t n)
{
	size_t nchunks = (n + CHUNK - 1) / CHUNK;
	if (nchunks > 0x7fffffffu)
		lp_die("cuda", "sumsq_f32: %zu elements", n);
	double *part = (double *)lp_cuda_scratch((nchunks ? nchunks : 1) * sizeof(double));
	if (nchunks) {
		sumsq_chunks<<<(unsigned)nchunks, SUMSQ_THREADS, 0, lp_cuda.stream>>>(part, x, n);
		LAUNCH_CHECK();
	}
	sumsq_total<<<1, 1, 0, lp_cuda.stream>>>(out, part, nchunks);
	LAUNCH_CHECK();
	OP_DONE("sumsq_f32");
}

static __global__ void scale_f32_kernel(float *x, float s, size_t n)
{
	LP_GRID_STRIDE(i, n)
		x[i] = __fmul_rn(x[i], s);
}

void lp_cuda_scale_f32(float *x, float s, size_t n)
{
	if (!n)
		return;
	scale_f32_kernel<<<lp_blocks(n, LP_THREADS), LP_THREADS, 0, lp_cuda.stream>>>(x, s, n);
	LAUNCH_CHECK();
	OP_DONE("scale_f32");
}

struct adamw_scalars {
	float decay, coeff, b2, omb2, bc2_sqrt, step, eps;
	int small;
};

/* The CPU's loop body for element i:
 *   p  = param * decay
 *   mi = fmaf(coeff, g - m, small ? m : g)
 *   vi = fmaf(omb2 * g, g, v * b2)
 *   denom = sqrtf(vi) / bc2_sqrt + eps
 *   param = p + step * mi / denom */
static __device__ __forceinline__ void adamw_one(float *param, const float *grad, float *m,
		float *v, size_t i, const adamw_scalars &a, float decay)
{
	float g = grad[i], mo = m[i];
	float p = __fmul_rn(param[i], decay);
	float mi = __fmaf_rn(a.coeff, __fsub_rn(g, mo), a.small ? mo : g);
	float vi = __fmaf_rn(__fmul_rn(a.omb2, g), g, __fmul_rn(v[i], a.b2));
	float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), a.bc2_sqrt), a.eps);
	param[i] = __fadd_rn(p, __fdiv_rn(__fmul_rn(a.step, mi), denom));
	m[i] = mi;
	v[i] = vi;
}

static __global__ void adamw_kernel(float *param, const float *grad, float *m, float *v,
		size_t n, adamw_scalars a)
{
	LP_GRID_STRIDE(i, n)
		adamw_one(param, grad, m, v, i, a, a.decay);
}

/* The scalars the CPU backend derives from the hyperparameters, on the
 * host in double, cast where it casts. */
static adamw_scalars scalars(double lr, double beta1, double beta2, double eps,
		double weight_decay, int t)
{
	adamw_scalars a;
	a.decay = (float)(1.0 - lr * weight_decay);
	float w = (float)(1.0 - beta1);
	a.small = fabsf(w) < 0.5f;
	a.coeff = a.small ? w : w - 1.0f;
	a.b2 = (float)beta2;
	a.omb2 = (float)(1.0 - beta2);
	double bc1 = 1.0 - pow(beta1, (double)t);
	double bc2 = 1.0 - pow(beta2, (double)t);
	a.bc2_sqrt = (float)sqrt(bc2);
	a.step = (float)(-(lr / bc1));
	a.eps = (float)eps;
	return a;
}

void lp_cuda_adamw_f32(float *param, const float *grad, float *m, float *v, size_t n,
		double lr, double beta1, double beta2, double eps, double weight_decay, int t)
{
	if (!n)
		return;
	adamw_scalars a = scalars(lr, beta1, beta2, eps, weight_decay, t);
	adamw_kernel<<<lp_blocks(n, LP_THREADS), LP_THREADS, 0, lp_cuda.stream>>>(param, grad, m,
			v, n, a);
	LAUNCH_CHECK();
	OP_DONE("adamw_f32");
}

/* ---- AdamW over segments, one launch ---- */

struct seg_dev {
	size_t start;           /* index of its first element among all segments' */
	size_t off;             /* its first element in the buffers */
	float decay;
};

/* Element i of the concatenated segments: its segment by binary search. */
template <typename W>
static __global__ void adamw_flat_kernel(float *param, const float *grad, float *m, float *v,
		const seg_dev *seg, int nseg, size_t total, adamw_scalars a, W *work)
{
	LP_GRID_STRIDE(i, total) {
		int lo = 0, hi = nseg - 1;
		while (lo < hi) {       /* the last segment with start <= i */
			int mid = (lo + hi + 1) / 2;
			if (seg[mid].start <= i)
				lo = mid;
			else
				hi = mid - 1;
		}
		size_t e = seg[lo].off + (i - seg[lo].start);
		adamw_one(param, grad, m, v, e, a, seg[lo].decay);
		if (work)
			store_f32(&work[e], param[e]);
	}
}

static seg_dev *seg_table;
static int seg_cap;

void lp_cuda_adamw_flat(float *param, const float *grad, float *m, float *v,
		const lp_adamw_segment *seg, int nseg, double lr, double beta1, double beta2,
		double eps, int t, void *work, int work_dtype)
{
	if (work && work_dtype != LP_F32 && work_dtype != LP_BF16 && work_dtype != LP_F16)
		lp_die("cuda", "adamw_flat: working copy dtype %s is not bf16, f16 or f32",
				lp_cuda_dtype_name(work_dtype));
	seg_dev *host = (seg_dev *)lp_malloc(sizeof(seg_dev) * (size_t)(nseg > 0 ? nseg : 1));
	size_t total = 0;
	int k = 0;
	for (int i = 0; i < nseg; i++) {
		if (!seg[i].n)
			continue;
		host[k].start = total;
		host[k].off = seg[i].off;
		host[k].decay = (float)(1.0 - lr * seg[i].weight_decay);
		total += seg[i].n;
		k++;
	}
	if (total) {
		if (k > seg_cap) {
			lp_cuda_free(seg_table);
			seg_table = (seg_dev *)lp_cuda_alloc(sizeof(seg_dev) * (size_t)k);
			seg_cap = k;
		}
		/* from pageable memory: staged before the call returns */
		CUDA_CHECK(cudaMemcpyAsync(seg_table, host, sizeof(seg_dev) * (size_t)k,
				cudaMemcpyHostToDevice, lp_cuda.stream));
		adamw_scalars a = scalars(lr, beta1, beta2, eps, 0.0, t);
		unsigned blocks = lp_blocks(total, LP_THREADS);
		if (!work)
			adamw_flat_kernel<float><<<blocks, LP_THREADS, 0, lp_cuda.stream>>>(param, grad,
					m, v, seg_table, k, total, a, (float *)NULL);
		else if (work_dtype == LP_BF16)
			adamw_flat_kernel<__nv_bfloat16><<<blocks, LP_THREADS, 0, lp_cuda.stream>>>(param,
					grad, m, v, seg_table, k, total, a, (__nv_bfloat16 *)work);
		else if (work_dtype == LP_F16)
			adamw_flat_kernel<__half><<<blocks, LP_THREADS, 0, lp_cuda.stream>>>(param, grad,
					m, v, seg_table, k, total, a, (__half *)work);
		else
			adamw_flat_kernel<float><<<blocks, LP_THREADS, 0, lp_cuda.stream>>>(param, grad,
					m, v, seg_table, k, total, a, (float *)work);
		LAUNCH_CHECK();
	}
	free(host);
	OP_DONE("adamw_flat");
}
