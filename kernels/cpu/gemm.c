/* gemm.c: the CPU backend's one way into BLAS.
 *
 * OpenBLAS runs single-threaded (set once here) and all parallelism is
 * OpenMP's: a GEMM is cut into fixed tiles of its output, each computed by
 * one sgemm call on one thread. Two thread pools (libgomp's and OpenBLAS's
 * pthreads) spinning on the same cores would slow every op that follows a
 * GEMM; and with tiles fixed by the shapes alone, no element's result
 * depends on the number of threads. */
#include "cpu.h"

/* last: OpenBLAS pulls in <complex.h>, whose macro I would clash with
 * kernels.h's parameter names */
#include <cblas.h>
#undef I

#define TILE_M 128
#define TILE_N 256

void lp_cpu_blas_single(void)
{
	static int done;
	if (!done) {
		openblas_set_num_threads(1);
		done = 1;
	}
}

/* The kernels OpenBLAS chose for this processor ("Haswell", "SkylakeX",
 * ...; OPENBLAS_CORETYPE overrides). GEMM results differ between them in
 * the last bits, so the backend's description names them. */
const char *lp_cpu_blas_core(void)
{
	return openblas_get_corename();
}

void lp_cpu_gemm1(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
		const float *B, int ldb, float beta, float *C, int ldc)
{
	if (M <= 0 || N <= 0)
		return;
	cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
			M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void lp_cpu_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
		const float *B, int ldb, float beta, float *C, int ldc)
{
	if (M <= 0 || N <= 0)
		return;
	lp_cpu_blas_single();
	int mt = (M + TILE_M - 1) / TILE_M, nt = (N + TILE_N - 1) / TILE_N;
	#pragma omp parallel for schedule(dynamic) if (mt * nt > 1)
	for (int tile = 0; tile < mt * nt; tile++) {
		int m0 = tile / nt * TILE_M, n0 = tile % nt * TILE_N;
		int m = M - m0 < TILE_M ? M - m0 : TILE_M, n = N - n0 < TILE_N ? N - n0 : TILE_N;
		const float *a = ta ? A + m0 : A + (size_t)m0 * lda;
		const float *b = tb ? B + (size_t)n0 * ldb : B + n0;
		lp_cpu_gemm1(ta, tb, m, n, K, alpha, a, lda, b, ldb, beta,
				C + (size_t)m0 * ldc + n0, ldc);
	}
}
