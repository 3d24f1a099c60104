/* cuda.cuh: what the files of the CUDA backend share (not a public header).
 *
 * The backend keeps one device, one stream, one cuBLASLt handle and its
 * workspace in lp_cuda (backend.cu). Every op is an lp_cuda_* function that
 * enqueues work on lp_cuda.stream and returns; lp_cuda_download waits.
 * Activations are of lp_cuda.act (LP_F32 or LP_BF16): kernels are
 * templates over the activation type T (float or __nv_bfloat16), load T,
 * compute in f32 and store T. Frozen weights (lp_weight) may be f32, bf16
 * or f16 whatever the activation type; kernels read them with ld_weight().
 *
 * Errors: every CUDA runtime and cuBLAS call goes through CUDA_CHECK or
 * CUBLAS_CHECK, which die naming the file, line, call and error; every
 * kernel launch is followed by LAUNCH_CHECK(). A fault inside a kernel
 * surfaces at the next call that waits for the stream, which cannot say
 * which op caused it; with LP_CUDA_SYNC=1 in the environment every op ends
 * with OP_DONE(name), which waits for the stream and names the op. */
#ifndef LP_CUDA_CUH
#define LP_CUDA_CUH

#include <cstddef>
#include <cstdint>

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

/* The project's headers are C11; C11's _Noreturn is C++'s [[noreturn]]. */
#define _Noreturn [[noreturn]]
extern "C" {
#include "backend.h"
#include "common.h"
}
#undef _Noreturn

/* ---- backend state (backend.cu) ---- */

struct lp_cuda_state {
	int ready;               /* init succeeded and shutdown has not run */
	int act;                 /* activation dtype: LP_F32 or LP_BF16 */
	int device;
	cudaDeviceProp prop;
	cudaStream_t stream;     /* every op is enqueued here */
	cublasLtHandle_t lt;
	cublasHandle_t blas;     /* fallback GEMM when cuBLASLt offers no algorithm */
	void *workspace;         /* cuBLASLt workspace */
	size_t workspace_size;
	void *scratch;           /* lp_cuda_scratch() */
	size_t scratch_size;
	int sync;                /* LP_CUDA_SYNC=1: wait after every op */
};
extern lp_cuda_state lp_cuda;

/* ---- error checks ---- */

static inline void lp_cuda_check(cudaError_t e, const char *call, const char *file, int line)
{
	if (e != cudaSuccess)
		lp_die("cuda", "%s:%d: %s: %s%s", file, line, call, cudaGetErrorString(e),
				lp_cuda.sync ? "" : " (LP_CUDA_SYNC=1 names the op that faulted)");
}

static inline const char *lp_cublas_status_name(cublasStatus_t s)
{
	switch (s) {
	case CUBLAS_STATUS_SUCCESS: return "success";
	case CUBLAS_STATUS_NOT_INITIALIZED: return "not initialized";
	case CUBLAS_STATUS_ALLOC_FAILED: return "allocation failed";
	case CUBLAS_STATUS_INVALID_VALUE: return "invalid value";
	case CUBLAS_STATUS_ARCH_MISMATCH: return "architecture mismatch";
	case CUBLAS_STATUS_MAPPING_ERROR: return "mapping error";
	case CUBLAS_STATUS_EXECUTION_FAILED: return "execution failed";
	case CUBLAS_STATUS_INTERNAL_ERROR: return "internal error";
	case CUBLAS_STATUS_NOT_SUPPORTED: return "not supported";
	case CUBLAS_STATUS_LICENSE_ERROR: return "license error";
	default: return "unknown status";
	}
}

static inline void lp_cublas_check(cublasStatus_t s, const char *call, const char *file, int line)
{
	if (s != CUBLAS_STATUS_SUCCESS)
		lp_die("cuda", "%s:%d: %s: cuBLAS %s (%d)", file, line, call,
				lp_cublas_status_name(s), (int)s);
}

#define CUDA_CHECK(call) lp_cuda_check((call), #call, __FILE__, __LINE__)
#define CUBLAS_CHECK(call) lp_cublas_check((call), #call, __FILE__, __LINE__)
#define LAUNCH_CHECK() lp_cuda_check(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)

/* The end of op `name`: under LP_CUDA_SYNC=1, wait for the stream and die
 * naming the op if the device reports a fault. */
static inline void lp_cuda_op_done(const char *name)
{
	if (!lp_cuda.sync)
		return;
	cudaError_t e = cudaStreamSynchronize(lp_cuda.stream);
	if (e == cudaSuccess)
		e = cudaGetLastError();
	if (e != cudaSuccess)
		lp_die("cuda", "%s: device fault: %s", name, cudaGetErrorString(e));
}
#define OP_DONE(name) lp_cuda_op_done(name)

/* ---- launch geometry ---- */

#define LP_THREADS 256

/* Blocks for a grid-stride loop over n elements (capped; the loop covers
 * the rest). */
static inline unsigned lp_blocks(size_t n, int threads)
{
	size_t b = (n + (size_t)threads - 1) / (size_t)threads;
	if (b < 1)
		b = 1;
	return b > (1u << 20) ? (1u << 20) : (unsigned)b;
}

#define LP_GRID_STRIDE(i, n) \
	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
			i += (size_t)gridDim.x * blockDim.x)

/* ---- element loads and stores: f32 math on any storage type ---- */

static __device__ __forceinline__ float to_f32(float x) { return x; }
static __device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }
static __device__ __forceinline__ float to_f32(__half x) { return __half2float(x); }

/* Round to nearest even, as the CPU backend's conversions do. */
static __device__ __forceinline__ void store_f32(float *p, float x) { *p = x; }
static __device__ __forceinline__ void store_f32(__nv_bfloat16 *p, float x) { *p = __float2bfloat16_rn(x); }
static __device__ __forceinline__ void store_f32(__half *p, float x) { *p = __float2half_rn(x); }

/* Element i of a weight of dtype LP_F32, LP_BF16 or LP_F16. */
static __device__ __forceinline__ float ld_weight(const void *p, int dtype, size_t i)
{
	switch (dtype) {
	case LP_BF16: return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
	case LP_F16: return __half2float(((const __half *)p)[i]);
	default: return ((const float *)p)[i];
	}
}

/* ---- reductions (blockDim.x a multiple of 32, at most 1024) ---- */

static __device__ __forceinline__ float warp_sum(float v)
{
	for (int o = 16; o > 0; o /= 2)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

static __device__ __forceinline__ float warp_max(float v)
{
	for (int o = 16; o > 0; o /= 2)
		v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
	return v;
}

/* Sum (max) of v over the block, returned to every thread. */
static __device__ float block_sum(float v)
{
	__shared__ float part[32];
	int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
	v = warp_sum(v);
	__syncthreads();        /* part[] may still be read by a previous call */
	if (lane == 0)
		part[warp] = v;
	__syncthreads();
	return warp_sum(lane < nwarps ? part[lane] : 0.0f);
}

static __device__ float block_max(float v)
{
	__shared__ float part[32];
	int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
	v = warp_max(v);
	__syncthreads();
	if (lane == 0)
		part[warp] = v;
	__syncthreads();
	return warp_max(lane < nwarps ? part[lane] : -INFINITY);
}

/* ---- helpers shared between files ---- */

/* "f32", "bf16", ... or "?" */
const char *lp_cuda_dtype_name(int dtype);
/* A backend-owned device buffer of at least bytes, reused by later calls
 * (stream order makes that safe); not zeroed. */
void *lp_cuda_scratch(size_t bytes);
/* attention_gemm.cu: whether training attention goes through GEMMs (1) or
 * the flash kernels (0), and that path's forward and backward. */
int lp_cuda_attention_use_gemm(int B, int T, int H, int backward);
void lp_cuda_attention_gemm_forward(void *out, float *lse, const void *q, const void *k,
		const void *v, const uint8_t *mask, int B, int T, int H, int KVH, int D, float scale);
void lp_cuda_attention_gemm_backward(void *dq, void *dk, void *dv, const void *dout,
		const void *out, const float *lse, const void *q, const void *k, const void *v,
		const uint8_t *mask, int B, int T, int H, int KVH, int D, float scale);
/* graph.cu: lp_graph_* of kernels.h */
int lp_cuda_graph_replay(int slot);
void lp_cuda_graph_record_begin(int slot);
void lp_cuda_graph_record_end(int slot);
void lp_cuda_graph_reset(void);
/* Free gemm.cu's cached cuBLASLt descriptors (before the handle goes). */
void lp_cuda_gemm_cache_clear(void);
/* The convert kernel, enqueued on the stream (memory.cu). */
void lp_cuda_convert(void *dst, int dst_dtype, const void *src, int src_dtype, size_t n);

/* Matmuls through a quantized weight (W.dtype an lp_qtype; quant.cu): the
 * forward, and the input gradient of the backward. */
void lp_cuda_qmatmul_forward(void *out, const void *inp, lp_weight W, int N, int C, int OC,
		float alpha, float beta);
void lp_cuda_qmatmul_backward_input(void *dinp, const void *dout, lp_weight W, int N, int C,
		int OC, float alpha, float beta);

/* ---- the ops (contracts in kernels.h) ---- */

void *lp_cuda_alloc(size_t bytes);
void lp_cuda_free(void *p);
void lp_cuda_upload(void *dst, const void *host_src, size_t bytes);
void lp_cuda_download(void *host_dst, const void *src, size_t bytes);
void lp_cuda_copy(void *dst, const void *src, size_t bytes);
void lp_cuda_zero(void *p, size_t bytes);

void lp_cuda_embedding_forward(void *out, const int32_t *ids, lp_weight wte, int N, int C);
void lp_cuda_rmsnorm_forward(void *out, float *rstd, const void *inp, lp_weight w,
		int N, int C, float eps);
void lp_cuda_matmul_forward(void *out, const void *inp, lp_weight W, int N, int C, int OC,
		float alpha, float beta);
void lp_cuda_rope_forward(void *x, const int32_t *pos, const float *inv_freq,
		int N, int nh, int D, float attn_factor);
void lp_cuda_attention_forward(void *out, float *lse, const void *q, const void *k,
		const void *v, const uint8_t *mask, int B, int T, int H, int KVH, int D,
		float scale);
void lp_cuda_attention_cached(void *out, const void *q, const void *kcache,
		const void *vcache, const int32_t *past, const uint8_t *cache_mask,
		int B, int Tq, int Tmax, int H, int KVH, int D, float scale);
void lp_cuda_kv_store(void *kcache, void *vcache, const void *k, const void *v,
		const int32_t *past, int B, int Tq, int Tmax, int KVH, int D);
void lp_cuda_swiglu_forward(void *out, const void *gate, const void *up, int N, int I);
void lp_cuda_add_inplace(void *x, const void *y, size_t n);
void lp_cuda_scale_inplace(void *x, float s, size_t n);
void lp_cuda_cross_entropy(float *losses, void *dlogits, const void *logits,
		const int32_t *targets, int N, int V, float grad_scale);

void lp_cuda_embedding_backward(float *dwte, const void *dout, const int32_t *ids, int N, int C);
void lp_cuda_rmsnorm_backward(void *dinp, float *dw, const void *dout, const void *inp,
		lp_weight w, const float *rstd, int N, int C, int accumulate);
void lp_cuda_matmul_backward(void *dinp, float *dW, const void *dout, const void *inp,
		lp_weight W, int N, int C, int OC, float alpha, float beta);
void lp_cuda_rope_backward(void *dx, const int32_t *pos, const float *inv_freq,
		int N, int nh, int D, float attn_factor);
void lp_cuda_attention_backward(void *dq, void *dk, void *dv, const void *dout,
		const void *out, const float *lse, const void *q, const void *k,
		const void *v, const uint8_t *mask, int B, int T, int H, int KVH, int D,
		float scale);
void lp_cuda_swiglu_backward(void *dgate, void *dup, const void *dout, const void *gate,
		const void *up, int N, int I);
void lp_cuda_dropout_forward(void *out, const void *inp, float p, uint64_t seed, size_t n);
void lp_cuda_dropout_backward(void *dinp, const void *dout, float p, uint64_t seed, size_t n);
void lp_cuda_sumsq_f32(float *out, const float *x, size_t n);
void lp_cuda_scale_f32(float *x, float s, size_t n);
void lp_cuda_adamw_f32(float *param, const float *grad, float *m, float *v, size_t n,
		double lr, double beta1, double beta2, double eps, double weight_decay, int t);
void lp_cuda_adamw_flat(float *param, const float *grad, float *m, float *v,
		const lp_adamw_segment *seg, int nseg, double lr, double beta1, double beta2,
		double eps, int t, void *work, int work_dtype);

#endif
