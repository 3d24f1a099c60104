/* elementwise.cu: SwiGLU forward and backward, the in-place residual add
 * and scale, and dropout; one thread per element (grid-stride), f32 math
 * on the activation type. */
#include "cuda.cuh"

/* out[N,I] = silu(gate) * up, silu(x) = x / (1 + exp(-x)). */
template <typename T>
static __global__ void swiglu_forward_kernel(T *out, const T *gate, const T *up, size_t n)
{
	LP_GRID_STRIDE(i, n) {
		float g = to_f32(gate[i]);
		store_f32(&out[i], g / (1.0f + expf(-g)) * to_f32(up[i]));
	}
}

template <typename T>
static void swiglu_launch(void *out, const void *gate, const void *up, size_t n)
{
	swiglu_forward_kernel<T><<<lp_blocks(n, LP_THREADS), LP_THREADS, 0, lp_cuda.stream>>>(
			(T *)out, (const T *)gate, (const T *)up, n);
	LAUNCH_CHECK();
}

void lp_cuda_swiglu_forward(void *out, const void *gate, const void *up, int N, int I)
{
	if (N <= 0 || I <= 0)
		return;
	size_t n = (size_t)N * I;
	if (lp_cuda.act == LP_BF16)
		swiglu_launch<__nv_bfloat16>(out, gate, up, n);
	else
		swiglu_launch<float>(out, gate, up, n);
	OP_DONE("swiglu_forward");
}

/* dgate = dout * up * sig * (1 + g (1 - sig)), dup = dout * silu(g), in
 * the CPU backend's order of operations. Each element is read before it
 * is written, so dgate may alias gate and dup may alias up. */
template <typename T>
static __global__ void swiglu_backward_kernel(T *dgate, T *dup, const T *dout, const T *gate,
		const T *up, size_t n)
{
	LP_GRID_STRIDE(i, n) {
		float x = to_f32(gate[i]), e = expf(-x), u = to_f32(up[i]), dy = to_f32(dout[i]);
		float sig = 1.0f / (1.0f + e);
		float silu = x / (1.0f + e);
		store_f32(&dgate[i], dy * u * sig * (1.0f + x * (1.0f - sig)));
		store_f32(&dup[i], dy * silu);
	}
}

template <typename T>
static void swiglu_backward_launch(void *dgate, void *dup, const void *dout, const void *gate,
		const void *up, size_t n)
{
	swiglu_backward_kernel<T><<<lp_blocks(n, LP_THREADS), LP_THREADS, 0, lp_cuda.stream>>>(
			(T *)dgate, (T *)dup, (const T *)dout, (const T *)gate, (const T *)up, n);
	LAUNCH_CHECK();
}

void lp_cuda_swiglu_backward(void *dgate, void *dup, const void *dout, const void *gate,
		const void *up, int N, int I)
{
	if (N <= 0 || I <= 0)
		return;
	size_t n = (size_t)N * I;
	if (lp_cuda.act == LP_BF16)
		swiglu_backward_launch<__nv_bfloat16>(dgate, dup, dout, gate, up, n);
	else
		swiglu_backward_launch<float>(dgate, dup, dout, gate, up, n);
	OP_DONE("swiglu_backward");
}

/* x[i] += y[i] */
template <typename T>
static __global__ void add_inplace_kernel(T *x, const T *y, size_t n)
{
	LP_GRID_STRIDE(i, n)
		store_f32(&x[i], to_f32(x[i]) + to_f32(y[i]));
}

template <typename T>
static void add_launch(void *x, const void *y, size_t n)
{
	add_inplace_kernel<T><<<lp_blocks(n, LP_THREADS), LP_THREADS, 0, lp_cuda.stream>>>(
			(T *)x, (const T *)y, n);
	LAUNCH_CHECK();
}

void lp_cuda_add_inplace(void *x, const void *y, size_t n)
{
	if (!n)
		return;
	if (lp_cuda.act == LP_BF16)
		add_launch<__nv_bfloat16>(x, y, n);
	else
		add_launch<float>(x, y, n);
	OP_DONE("add_inplace");
}

/* x[i] *= s */
template <typename T>
static __global__ void scale_inplace_kernel(T *x, float s, size_t n)
{
	LP_GRID_STRIDE(i, n)
		store_f32(&x[i], to_f32(x[i]) * s);
}

template <typename T>
static void scale_launch(void *x, float s, size_t n)
{
	scale_inplace_kernel<T><<<lp_blocks(n, LP_THREADS), LP_THREADS, 0, lp_cuda.stream>>>(
			(T *)x, s, n);
	LAUNCH_CHECK();
}

void lp_cuda_scale_inplace(void *x, float s, size_t n)
{
	if (!n)
		return;
	if (lp_cuda.act == LP_BF16)
		scale_launch<__nv_bfloat16>(x, s, n);
	else
		scale_launch<float>(x, s, n);
	OP_DONE("scale_inplace");
}

/* ---- dropout: the mask rule of kernels.h, bit for bit the CPU's ----
 *
 * Element i is kept iff the top 32 bits of splitmix64(seed + (i + 1) *
 * golden) are >= threshold = (uint64_t)(p * 2^32); kept elements are
 * multiplied by scale = 1.0f / (1.0f - p), one f32 product as on the CPU. */
static __device__ __forceinline__ bool keep(uint64_t seed, size_t i, uint64_t threshold)
{
	uint64_t z = seed + (uint64_t)(i + 1) * 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return (z >> 32) >= threshold;
}

template <typename T>
static __global__ void dropout_kernel(T *y, const T *x, uint64_t seed, uint64_t threshold,
		float scale, size_t n)
{
	LP_GRID_STRIDE(i, n)
		store_f32(&y[i], keep(seed, i, threshold) ? __fmul_rn(to_f32(x[i]), scale) : 0.0f);
}

template <typename T>
static void dropout_launch(void *y, const void *x, uint64_t seed, uint64_t threshold,
		float scale, size_t n)
{
	dropout_kernel<T><<<lp_blocks(n, LP_THREADS), LP_THREADS, 0, lp_cuda.stream>>>(
			(T *)y, (const T *)x, seed, threshold, scale, n);
	LAUNCH_CHECK();
}

static void dropout(void *y, const void *x, float p, uint64_t seed, size_t n, const char *op)
{
	if (!n)
		return;
	size_t bytes = n * lp_dtype_size(lp_cuda.act);
	if (p <= 0) {
		lp_cuda_copy(y, x, bytes);
	} else if (p >= 1) {
		lp_cuda_zero(y, bytes);
	} else {
		uint64_t threshold = (uint64_t)((double)p * 4294967296.0);
		float scale = 1.0f / (1.0f - p);
		if (lp_cuda.act == LP_BF16)
			dropout_launch<__nv_bfloat16>(y, x, seed, threshold, scale, n);
		else
			dropout_launch<float>(y, x, seed, threshold, scale, n);
	}
	OP_DONE(op);
}

void lp_cuda_dropout_forward(void *out, const void *inp, float p, uint64_t seed, size_t n)
{
	dropout(out, inp, p, seed, n, "dropout_forward");
}

void lp_cuda_dropout_backward(void *dinp, const void *dout, float p, uint64_t seed, size_t n)
{
	dropout(dinp, dout, p, seed, n, "dropout_backward");
}
