/* memory.cu: device buffers, transfers and dtype conversion.
 *
 * Everything is ordered on lp_cuda.stream: alloc zeroes on the stream,
 * upload and download wait for the stream (so a host buffer may be reused
 * or read as soon as they return), copy, zero and convert are enqueued. */
#include "cuda.cuh"

void *lp_cuda_alloc(size_t bytes)
{
	void *p = NULL;
	cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
	if (e != cudaSuccess) {
		size_t free_b = 0, total_b = 0;
		cudaGetLastError();
		cudaMemGetInfo(&free_b, &total_b);
		lp_die("cuda", "cannot allocate %zu bytes on %s (%zu of %zu MiB free): %s",
				bytes, lp_cuda.prop.name, free_b >> 20, total_b >> 20,
				cudaGetErrorString(e));
	}
	CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, lp_cuda.stream));
	return p;
}

/* Waits for the stream first: a kernel still queued may use p. */
void lp_cuda_free(void *p)
{
	if (!p)
		return;
	CUDA_CHECK(cudaStreamSynchronize(lp_cuda.stream));
	CUDA_CHECK(cudaFree(p));
}

void lp_cuda_upload(void *dst, const void *host_src, size_t bytes)
{
	if (!bytes)
		return;
	CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, lp_cuda.stream));
	CUDA_CHECK(cudaStreamSynchronize(lp_cuda.stream));
}

void lp_cuda_download(void *host_dst, const void *src, size_t bytes)
{
	if (!bytes)
		return;
	CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, lp_cuda.stream));
	CUDA_CHECK(cudaStreamSynchronize(lp_cuda.stream));
}

void lp_cuda_copy(void *dst, const void *src, size_t bytes)
{
	if (!bytes || dst == src)
		return;
	CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, lp_cuda.stream));
}

void lp_cuda_zero(void *p, size_t bytes)
{
	if (!bytes)
		return;
	CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, lp_cuda.stream));
}

void *lp_cuda_scratch(size_t bytes)
{
	if (bytes > lp_cuda.scratch_size) {
		lp_cuda_free(lp_cuda.scratch);
		lp_cuda.scratch = NULL;
		lp_cuda.scratch_size = 0;
		lp_cuda.scratch = lp_cuda_alloc(bytes);
		lp_cuda.scratch_size = bytes;
	}
	return lp_cuda.scratch;
}

/* ---- dtype conversion: dst[i] = src[i], rounded to nearest even ---- */

template <typename D, typename S>
static __global__ void convert_kernel(D *dst, const S *src, size_t n)
{
	LP_GRID_STRIDE(i, n)
		store_f32(&dst[i], to_f32(src[i]));
}

template <typename D, typename S>
static void convert_launch(void *dst, const void *src, size_t n)
{
	convert_kernel<D, S><<<lp_blocks(n, LP_THREADS), LP_THREADS, 0, lp_cuda.stream>>>(
			(D *)dst, (const S *)src, n);
	LAUNCH_CHECK();
}

template <typename S>
static void convert_from(void *dst, int dst_dtype, const void *src, size_t n)
{
	switch (dst_dtype) {
	case LP_F32: convert_launch<float, S>(dst, src, n); break;
	case LP_BF16: convert_launch<__nv_bfloat16, S>(dst, src, n); break;
	case LP_F16: convert_launch<__half, S>(dst, src, n); break;
	}
}

static int is_float_type(int dtype)
{
	return dtype == LP_F32 || dtype == LP_BF16 || dtype == LP_F16;
}

/* n elements between any of f32, bf16, f16. dst and src must not overlap
 * unless they are the same buffer of the same type. */
void lp_cuda_convert(void *dst, int dst_dtype, const void *src, int src_dtype, size_t n)
{
	if (!is_float_type(dst_dtype) || !is_float_type(src_dtype))
		lp_die("cuda", "convert: only f32, bf16 and f16 are supported (asked %s to %s)",
				lp_cuda_dtype_name(src_dtype), lp_cuda_dtype_name(dst_dtype));
	if (!n)
		return;
	if (dst_dtype == src_dtype) {
		lp_cuda_copy(dst, src, n * lp_dtype_size(src_dtype));
		return;
	}
	switch (src_dtype) {
	case LP_F32: convert_from<float>(dst, dst_dtype, src, n); break;
	case LP_BF16: convert_from<__nv_bfloat16>(dst, dst_dtype, src, n); break;
	case LP_F16: convert_from<__half>(dst, dst_dtype, src, n); break;
	}
}
