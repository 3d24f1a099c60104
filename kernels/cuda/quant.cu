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

/* ---- matmuls through a quantized weight: dequantize a tile of rows of W
 * into scratch (activation type), multiply it, move to the next tile;
 * never the whole weight in full precision ---- */

#define QTILE_ELEMS (1 << 22)

static int64_t tile_rows(int64_t C, int64_t OC)
{
	int64_t r = C > 0 ? QTILE_ELEMS / C : OC;
	r = r < 1 ? 1 : r;
	return r < OC ? r : OC;
}

static void gemm(cublasOperation_t ta, int m, int n, int k, float alpha, const void *a, int lda,
		const void *b, int ldb, float beta, void *c, int ldc)
{
	cudaDataType_t t = lp_cuda.act == LP_BF16 ? CUDA_R_16BF : CUDA_R_32F;
	CUBLAS_CHECK(cublasGemmEx(lp_cuda.blas, ta, CUBLAS_OP_N, m, n, k, &alpha, a, t, lda,
			b, t, ldb, &beta, c, t, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

/* out[N,OC] = beta * out + alpha * inp[N,C] @ W^T */
void lp_cuda_qmatmul_forward(void *out, const void *inp, lp_weight W, int N, int C, int OC,
		float alpha, float beta)
{
	const lp_qweight *q = (const lp_qweight *)W.data;
	if (q->rows != OC || q->cols != C)
		lp_die("cuda", "matmul_forward: weight is (%lld, %lld), the op needs (%d, %d)",
				(long long)q->rows, (long long)q->cols, OC, C);
	if (N <= 0 || OC <= 0 || C <= 0)
		return;
	size_t es = lp_dtype_size(lp_cuda.act);
	int64_t rows = tile_rows(C, OC);
	void *wt = lp_cuda_scratch((size_t)(rows * C) * es);
	for (int64_t o0 = 0; o0 < OC; o0 += rows) {
		int ob = (int)(OC - o0 < rows ? OC - o0 : rows);
		cuda_dequantize_rows(wt, lp_cuda.act, q, o0, ob);
		/* column-major: out^T[o0:o0+ob, :] = W_tile x inp^T */
		gemm(CUBLAS_OP_T, ob, N, C, alpha, wt, C, inp, C, beta,
				(char *)out + (size_t)o0 * es, OC);
	}
}

/* dinp[N,C] = beta * dinp + alpha * dout[N,OC] @ W (dW of a frozen
 * quantized weight is never wanted). */
void lp_cuda_qmatmul_backward_input(void *dinp, const void *dout, lp_weight W, int N, int C,
		int OC, float alpha, float beta)
{
	const lp_qweight *q = (const lp_qweight *)W.data;
	if (q->rows != OC || q->cols != C)
		lp_die("cuda", "matmul_backward: weight is (%lld, %lld), the op needs (%d, %d)",
				(long long)q->rows, (long long)q->cols, OC, C);
	if (N <= 0 || C <= 0)
		return;
	if (OC <= 0) {
		lp_cuda_scale_inplace(dinp, beta, (size_t)N * C);
		return;
	}
	size_t es = lp_dtype_size(lp_cuda.act);
	int64_t rows = tile_rows(C, OC);
	void *wt = lp_cuda_scratch((size_t)(rows * C) * es);
	for (int64_t o0 = 0; o0 < OC; o0 += rows) {
		int ob = (int)(OC - o0 < rows ? OC - o0 : rows);
		cuda_dequantize_rows(wt, lp_cuda.act, q, o0, ob);
		/* column-major: dinp^T (C, N) += W_tile^T (C, ob) x dout^T[o0:o0+ob, :] */
		gemm(CUBLAS_OP_N, C, N, ob, alpha, wt, C, (const char *)dout + (size_t)o0 * es, OC,
				o0 == 0 ? beta : 1.0f, dinp, C);
	}
}
