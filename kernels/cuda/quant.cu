// quant.cu: the CUDA backend's dequantization of quantized weights
// (formats in kernels.h): one thread per element, f32 arithmetic as the
// CPU backend (kernels/cpu/quant.c), output f32, bf16 or f16.
#include "cuda.cuh"

__device__ static float q4_scale(const float *absmax, const uint8_t *qabsmax,
		const float *absmax2, const float *code2, float offset, int64_t b)
{
	if (absmax)
		return absmax[b];
	return code2[qabsmax[b]] * absmax2[b / LP_QBLOCK2] + offset;
}

template <typename T>
__device__ static void put(T *dst, int64_t i, float x);
template <> __device__ void put<float>(float *dst, int64_t i, float x) { dst[i] = x; }
template <> __device__ void put<__nv_bfloat16>(__nv_bfloat16 *dst, int64_t i, float x) { dst[i] = __float2bfloat16_rn(x); }
template <> __device__ void put<__half>(__half *dst, int64_t i, float x) { dst[i] = __float2half_rn(x); }

struct q4_code { float v[16]; };

template <typename T>
__global__ static void dequant4_kernel(T *dst, const uint8_t *data, q4_code code, int blocksize,
		const float *absmax, const uint8_t *qabsmax, const float *absmax2,
		const float *code2, float offset, int64_t e0, int64_t n)
{
	int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= n)
		return;
	int64_t k = e0 + i;
	uint8_t byte = data[k >> 1];
	float s = q4_scale(absmax, qabsmax, absmax2, code2, offset, k / blocksize);
	put(dst, i, code.v[k & 1 ? byte & 15 : byte >> 4] * s);
}

template <typename T>
__global__ static void dequant8_kernel(T *dst, const int8_t *cb, const float *scb, int64_t cols,
		int64_t e0, int64_t n)
{
	int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= n)
		return;
	int64_t k = e0 + i;
	put(dst, i, ((float)cb[k] * scb[k / cols]) * 7.874015718698502e-3f);
}

template <typename T>
static void dequant_launch(T *dst, const lp_qweight *q, int64_t r0, int64_t nrows)
{
	int64_t e0 = r0 * q->cols, n = nrows * q->cols;
	if (n <= 0)
		return;
	unsigned grid = (unsigned)((n + 255) / 256);
	if (q->qtype == LP_QINT8) {
		dequant8_kernel<T><<<grid, 256, 0, lp_cuda.stream>>>(dst, (const int8_t *)q->data,
				q->absmax, q->cols, e0, n);
	} else {
		q4_code code;
		memcpy(code.v, lp_q4_code(q->qtype), sizeof code.v);
		dequant4_kernel<T><<<grid, 256, 0, lp_cuda.stream>>>(dst, q->data, code, q->blocksize,
				q->absmax, q->qabsmax, q->absmax2, q->code2, q->offset, e0, n);
	}
	LAUNCH_CHECK();
}

static void cuda_dequantize_rows(void *dst, int dst_dtype, const lp_qweight *q, int64_t r0,
		int64_t nrows)
{
	switch (dst_dtype) {
	case LP_BF16: dequant_launch((__nv_bfloat16 *)dst, q, r0, nrows); break;
	case LP_F16: dequant_launch((__half *)dst, q, r0, nrows); break;
	default: dequant_launch((float *)dst, q, r0, nrows);
	}
}

extern "C" void (*const lp_cuda_dequantize_rows_fn)(void *, int, const lp_qweight *, int64_t,
		int64_t) = cuda_dequantize_rows;
