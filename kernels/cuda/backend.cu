/* backend.cu: the CUDA backend's start-up and shutdown, and the lp_cuda_ops
 * table that kernels.c dispatches through.
 *
 * One device (the index lp_kernels_init names among those
 * CUDA_VISIBLE_DEVICES shows; device 0 by default), one stream, one
 * cuBLASLt handle with a 32 MiB workspace. Every op of kernels.h.
 * LP_CUDA_SYNC=1 in the environment makes every op wait for the device
 * and name itself when the device reports a fault (cuda.cuh). */
#include <cstdlib>
#include <cstdio>
#include <cstring>

#include "cuda.cuh"

lp_cuda_state lp_cuda;

#define WORKSPACE_BYTES (32u << 20)     /* what cuBLASLt asks for on Hopper */

static char description[256];

const char *lp_cuda_dtype_name(int dtype)
{
	const char *s = lp_dtype_name(dtype);
	return s ? s : "?";
}

/* A kernel that exists only so init can ask whether this build holds
 * machine code the device can run. */
static __global__ void probe_kernel(int *p)
{
	if (p)
		*p = 0;
}

/* Free what init made, on any partial state. After a failed init the
 * errors are moot (one is being reported) and ignored; at shutdown they are
 * checked. */
static void release(int checked)
{
	cudaError_t e = cudaSuccess, ce;
	cublasStatus_t s = CUBLAS_STATUS_SUCCESS, cs;
	if (lp_cuda.workspace && (ce = cudaFree(lp_cuda.workspace)) != cudaSuccess)
		e = ce;
	if (lp_cuda.scratch && (ce = cudaFree(lp_cuda.scratch)) != cudaSuccess)
		e = ce;
	if (lp_cuda.blas && (cs = cublasDestroy(lp_cuda.blas)) != CUBLAS_STATUS_SUCCESS)
		s = cs;
	if (lp_cuda.lt && (cs = cublasLtDestroy(lp_cuda.lt)) != CUBLAS_STATUS_SUCCESS)
		s = cs;
	if (lp_cuda.stream && (ce = cudaStreamDestroy(lp_cuda.stream)) != cudaSuccess)
		e = ce;
	memset(&lp_cuda, 0, sizeof(lp_cuda));
	if (checked) {
		CUDA_CHECK(e);
		CUBLAS_CHECK(s);
	}
}

/* Fail init with a message; clears CUDA's last error so later calls do
 * not report it again. */
static int fail(char *err, size_t errlen, const char *what, const char *why)
{
	snprintf(err, errlen, "%s: %s", what, why);
	cudaGetLastError();
	release(0);
	return -1;
}

static int cuda_init(int device_index, int act_dtype, char *err, size_t errlen)
{
	int dev = device_index < 0 ? 0 : device_index;
	if (act_dtype != LP_F32 && act_dtype != LP_BF16) {
		snprintf(err, errlen, "the cuda backend computes with f32 or bf16 activations, not %s",
				lp_cuda_dtype_name(act_dtype));
		return -1;
	}
	if (lp_cuda.ready) {            /* switching back from another backend */
		if (dev != lp_cuda.device) {
			snprintf(err, errlen, "the cuda backend runs on CUDA device %d, not %d",
					lp_cuda.device, dev);
			return -1;
		}
		CUDA_CHECK(cudaStreamSynchronize(lp_cuda.stream));
		lp_cuda.act = act_dtype;
		return 0;
	}
	memset(&lp_cuda, 0, sizeof(lp_cuda));

	int count = 0;
	cudaError_t e = cudaGetDeviceCount(&count);
	if (e != cudaSuccess || count == 0)
		return fail(err, errlen, "no CUDA device",
				cudaGetErrorString(e != cudaSuccess ? e : cudaErrorNoDevice));
	char what[320];
	if (dev >= count) {
		snprintf(what, sizeof(what), "no CUDA device %d", dev);
		snprintf(err, errlen, "%s: this machine shows %d", what, count);
		return -1;
	}
	snprintf(what, sizeof(what), "cannot use CUDA device %d", dev);
	if ((e = cudaSetDevice(dev)) != cudaSuccess)
		return fail(err, errlen, what, cudaGetErrorString(e));
	snprintf(what, sizeof(what), "cannot read the properties of CUDA device %d", dev);
	if ((e = cudaGetDeviceProperties(&lp_cuda.prop, dev)) != cudaSuccess)
		return fail(err, errlen, what, cudaGetErrorString(e));
	cudaFuncAttributes fa;
	if ((e = cudaFuncGetAttributes(&fa, probe_kernel)) != cudaSuccess) {
		snprintf(what, sizeof(what), "%.200s (sm_%d%d) cannot run this build's kernels "
				"(built for sm_80 and sm_90; set CUDA_ARCH)", lp_cuda.prop.name,
				lp_cuda.prop.major, lp_cuda.prop.minor);
		return fail(err, errlen, what, cudaGetErrorString(e));
	}
	if ((e = cudaStreamCreate(&lp_cuda.stream)) != cudaSuccess)
		return fail(err, errlen, "cannot create a CUDA stream", cudaGetErrorString(e));
	cublasStatus_t s;
	if ((s = cublasLtCreate(&lp_cuda.lt)) != CUBLAS_STATUS_SUCCESS)
		return fail(err, errlen, "cannot start cuBLASLt", lp_cublas_status_name(s));
	if ((s = cublasCreate(&lp_cuda.blas)) != CUBLAS_STATUS_SUCCESS)
		return fail(err, errlen, "cannot start cuBLAS", lp_cublas_status_name(s));
	if ((s = cublasSetStream(lp_cuda.blas, lp_cuda.stream)) != CUBLAS_STATUS_SUCCESS)
		return fail(err, errlen, "cannot set the cuBLAS stream", lp_cublas_status_name(s));
	lp_cuda.workspace_size = WORKSPACE_BYTES;
	if ((e = cudaMalloc(&lp_cuda.workspace, lp_cuda.workspace_size)) != cudaSuccess)
		return fail(err, errlen, "cannot allocate the cuBLASLt workspace",
				cudaGetErrorString(e));

	lp_cuda.device = dev;
	lp_cuda.act = act_dtype;
	const char *sync = getenv("LP_CUDA_SYNC");
	lp_cuda.sync = sync && *sync && strcmp(sync, "0") != 0;
	lp_cuda.ready = 1;
	return 0;
}

/* "cuda (NVIDIA H100 80GB HBM3, sm_90, bf16)" */
static const char *cuda_describe(void)
{
	if (!lp_cuda.ready)
		return "cuda (not started)";
	snprintf(description, sizeof(description), "cuda (%.200s, sm_%d%d, %s%s)", lp_cuda.prop.name,
			lp_cuda.prop.major, lp_cuda.prop.minor, lp_cuda_dtype_name(lp_cuda.act),
			lp_cuda.sync ? ", LP_CUDA_SYNC" : "");
	return description;
}

static void cuda_shutdown(void)
{
	if (!lp_cuda.ready)
		return;
	CUDA_CHECK(cudaStreamSynchronize(lp_cuda.stream));
	lp_cuda_gemm_cache_clear();
	lp_cuda_graph_reset();
	release(1);
}

/* Filled field by field: C++17 has no designated initializers, and this
 * way the table does not depend on the order of lp_backend_ops. */
static lp_backend_ops make_ops(void)
{
	lp_backend_ops o;
	memset(&o, 0, sizeof(o));
	o.name = "cuda";
	o.init = cuda_init;
	o.describe = cuda_describe;
	o.shutdown = cuda_shutdown;
	o.alloc = lp_cuda_alloc;
	o.free = lp_cuda_free;
	o.upload = lp_cuda_upload;
	o.download = lp_cuda_download;
	o.copy = lp_cuda_copy;
	o.zero = lp_cuda_zero;
	o.convert = lp_cuda_convert;
	o.embedding_forward = lp_cuda_embedding_forward;
	o.rmsnorm_forward = lp_cuda_rmsnorm_forward;
	o.matmul_forward = lp_cuda_matmul_forward;
	o.rope_forward = lp_cuda_rope_forward;
	o.attention_forward = lp_cuda_attention_forward;
	o.attention_cached = lp_cuda_attention_cached;
	o.kv_store = lp_cuda_kv_store;
	o.swiglu_forward = lp_cuda_swiglu_forward;
	o.add_inplace = lp_cuda_add_inplace;
	o.scale_inplace = lp_cuda_scale_inplace;
	o.cross_entropy = lp_cuda_cross_entropy;
	o.embedding_backward = lp_cuda_embedding_backward;
	o.rmsnorm_backward = lp_cuda_rmsnorm_backward;
	o.matmul_backward = lp_cuda_matmul_backward;
	o.rope_backward = lp_cuda_rope_backward;
	o.attention_backward = lp_cuda_attention_backward;
	o.swiglu_backward = lp_cuda_swiglu_backward;
	o.dropout_forward = lp_cuda_dropout_forward;
	o.dropout_backward = lp_cuda_dropout_backward;
	o.sumsq_f32 = lp_cuda_sumsq_f32;
	o.scale_f32 = lp_cuda_scale_f32;
	o.adamw_f32 = lp_cuda_adamw_f32;
	o.adamw_flat = lp_cuda_adamw_flat;
	o.graph_replay = lp_cuda_graph_replay;
	o.graph_record_begin = lp_cuda_graph_record_begin;
	o.graph_record_end = lp_cuda_graph_record_end;
	o.graph_reset = lp_cuda_graph_reset;
	return o;
}

static const lp_backend_ops lp_cuda_ops = make_ops();

const lp_backend_ops *const lp_cuda_ops_ptr = &lp_cuda_ops;
