/* backend.c: the CPU backend's start-up, memory and dtype conversion, and
 * the lp_cpu_ops table that kernels.c dispatches through. */
#include "backend.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "cpu.h"

static int nthreads;
static char description[64];

/* OMP_NUM_THREADS (its first number) or else the number of cores. */
static int want_threads(void)
{
	const char *s = getenv("OMP_NUM_THREADS");
	if (s && *s) {
		char *end;
		long n = strtol(s, &end, 10);
		if (end != s && n > 0 && n <= 4096)
			return (int)n;
	}
	return omp_get_num_procs();
}

static int cpu_init(int device_index, int act_dtype, char *err, size_t errlen)
{
	if (device_index > 0) {
		snprintf(err, errlen, "the cpu backend has one device (0), not %d", device_index);
		return -1;
	}
	if (act_dtype != LP_F32) {
		const char *name = lp_dtype_name(act_dtype);
		snprintf(err, errlen, "the cpu backend computes in f32, not %s",
				name ? name : "an unknown type");
		return -1;
	}
	nthreads = want_threads();
	omp_set_num_threads(nthreads);
	lp_cpu_blas_single();   /* OpenMP threads call BLAS (gemm.c) */
	snprintf(description, sizeof(description), "cpu (%d thread%s, openblas %s, bf16 %s)",
			nthreads, nthreads == 1 ? "" : "s", lp_cpu_blas_core(), lp_cpu_matvec_name());
	return 0;
}

static const char *cpu_describe(void)
{
	return description[0] ? description : "cpu (not started)";
}

static void cpu_shutdown(void)
{
}

/* ---- memory: host memory, 64-byte aligned, zeroed ---- */

static void *cpu_alloc(size_t bytes)
{
	size_t n = (bytes + 63) & ~(size_t)63;
	if (n < bytes)
		lp_die("cpu", "cannot allocate %zu bytes", bytes);
	void *p = aligned_alloc(64, n ? n : 64);
	if (!p)
		lp_die("cpu", "out of memory allocating %zu bytes", bytes);
	memset(p, 0, n ? n : 64);
	return p;
}

static void cpu_free(void *p)
{
	free(p);
}

static void cpu_memcpy(void *dst, const void *src, size_t bytes)
{
	if (bytes)
		memmove(dst, src, bytes);
}

static void cpu_zero(void *p, size_t bytes)
{
	if (bytes)
		memset(p, 0, bytes);
}

void *lp_cpu_scratch(size_t bytes)
{
	void *p = malloc(bytes ? bytes : 1);
	if (!p)
		lp_die("cpu", "out of memory allocating %zu bytes of scratch", bytes);
	return p;
}

/* ---- dtype conversion ---- */

static int is_float_type(int dtype)
{
	return dtype == LP_F32 || dtype == LP_BF16 || dtype == LP_F16;
}

static void store(void *dst, int dtype, size_t i, float x)
{
	switch (dtype) {
	case LP_BF16: ((uint16_t *)dst)[i] = lp_f32_to_bf16(x); break;
	case LP_F16: ((uint16_t *)dst)[i] = lp_f32_to_f16(x); break;
	default: ((float *)dst)[i] = x;
	}
}

void lp_cpu_to_f32(float *dst, const void *src, int dtype, size_t n)
{
	const uint16_t *h = src;
	if (dtype == LP_F32) {
		memcpy(dst, src, n * sizeof(float));
	} else if (dtype == LP_BF16) {
		uint32_t *u = (uint32_t *)dst;   /* a shift: lets the compiler vectorize */
		for (size_t i = 0; i < n; i++)
			u[i] = (uint32_t)h[i] << 16;
	} else {
		for (size_t i = 0; i < n; i++)
			dst[i] = lp_f16_to_f32(h[i]);
	}
}

#define CONVERT_CHUNK 65536

static void cpu_convert(void *dst, int dst_dtype, const void *src, int src_dtype, size_t n)
{
	if (!is_float_type(dst_dtype) || !is_float_type(src_dtype))
		lp_die("cpu", "convert: only f32, bf16 and f16 are supported (asked %s to %s)",
				lp_dtype_name(src_dtype) ? lp_dtype_name(src_dtype) : "?",
				lp_dtype_name(dst_dtype) ? lp_dtype_name(dst_dtype) : "?");
	if (dst_dtype == src_dtype) {
		cpu_memcpy(dst, src, n * lp_dtype_size(src_dtype));
		return;
	}
	long nchunks = (long)((n + CONVERT_CHUNK - 1) / CONVERT_CHUNK);
	#pragma omp parallel for schedule(static)
	for (long c = 0; c < nchunks; c++) {
		size_t i0 = (size_t)c * CONVERT_CHUNK;
		size_t i1 = i0 + CONVERT_CHUNK < n ? i0 + CONVERT_CHUNK : n;
		for (size_t i = i0; i < i1; i++)
			store(dst, dst_dtype, i, lp_cpu_load(src, src_dtype, i));
	}
}

void lp_cpu_weight_rows(float *dst, lp_weight w, int r0, int nrows)
{
	if (lp_is_qtype(w.dtype)) {
		lp_cpu_qweight_rows(dst, w.data, r0, nrows);
		return;
	}
	size_t cols = (size_t)w.cols;
	const char *base = (const char *)w.data + (size_t)r0 * cols * lp_dtype_size(w.dtype);
	#pragma omp parallel for schedule(static)
	for (int r = 0; r < nrows; r++)
		lp_cpu_to_f32(dst + (size_t)r * cols,
				base + (size_t)r * cols * lp_dtype_size(w.dtype), w.dtype, cols);
}

void lp_cpu_check_weight(const char *op, lp_weight w, int rows, int cols)
{
	if (lp_is_qtype(w.dtype) && strncmp(op, "matmul", 6))
		lp_die("cpu", "%s: a quantized weight serves matmuls only", op);
	if (!is_float_type(w.dtype) && !lp_is_qtype(w.dtype))
		lp_die("cpu", "%s: weight dtype %d is not f32, bf16 or f16", op, w.dtype);
	if (w.rows != rows || w.cols != cols)
		lp_die("cpu", "%s: weight is (%d, %d), the op needs (%d, %d)",
				op, w.rows, w.cols, rows, cols);
}

const lp_backend_ops lp_cpu_ops = {
	.name = "cpu",
	.init = cpu_init,
	.describe = cpu_describe,
	.shutdown = cpu_shutdown,
	.alloc = cpu_alloc,
	.free = cpu_free,
	.upload = cpu_memcpy,
	.download = cpu_memcpy,
	.copy = cpu_memcpy,
	.zero = cpu_zero,
	.convert = cpu_convert,
	.embedding_forward = lp_cpu_embedding_forward,
	.embedding_backward = lp_cpu_embedding_backward,
	.rmsnorm_forward = lp_cpu_rmsnorm_forward,
	.rmsnorm_backward = lp_cpu_rmsnorm_backward,
	.matmul_forward = lp_cpu_qmatmul_forward,
	.matmul_backward = lp_cpu_matmul_backward,
	.rope_forward = lp_cpu_rope_forward,
	.rope_backward = lp_cpu_rope_backward,
	.attention_forward = lp_cpu_attention_forward,
	.attention_backward = lp_cpu_attention_backward,
	.attention_cached = lp_cpu_attention_cached,
	.kv_store = lp_cpu_kv_store,
	.swiglu_forward = lp_cpu_swiglu_forward,
	.swiglu_backward = lp_cpu_swiglu_backward,
	.add_inplace = lp_cpu_add_inplace,
	.scale_inplace = lp_cpu_scale_inplace,
	.dropout_forward = lp_cpu_dropout_forward,
	.dropout_backward = lp_cpu_dropout_backward,
	.cross_entropy = lp_cpu_cross_entropy,
	.sumsq_f32 = lp_cpu_sumsq_f32,
	.scale_f32 = lp_cpu_scale_f32,
	.adamw_f32 = lp_cpu_adamw_f32,
	.adamw_flat = lp_cpu_adamw_flat,
};
