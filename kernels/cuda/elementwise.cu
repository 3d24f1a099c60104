/* elementwise.cu: SwiGLU and the in-place residual add and scale, one
 * thread per element (grid-stride), f32 math on the activation type. */
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
}
