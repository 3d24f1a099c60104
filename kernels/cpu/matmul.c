/* matmul.c: Linear layers through BLAS (lp_cpu_gemm), f32 math.
 *
 * A weight in bf16 or f16 is converted to f32 in blocks of rows (about
 * 4 MiB of f32 at a time) into scratch memory, and each block goes through
 * its own GEMM; nothing is cached between calls, so a weight may change
 * or be freed at any time. The blocks are fixed by the shapes alone.
 * A bf16 or f32 weight times at most LP_CPU_MATVEC_MAX_N rows (decoding)
 * goes to matvec.c, which reads bf16 as it is and computes every output
 * element alone, so that a row's result does not depend on the others. */
#include <stdlib.h>

#include "cpu.h"

#define BLOCK_ELEMS (1 << 20)

/* Rows of W per converted block. */
static int block_rows(int C, int OC)
{
	int rows = C > 0 ? BLOCK_ELEMS / C : OC;
	if (rows < 1)
		rows = 1;
	return rows < OC ? rows : OC;
}

/* out[N,OC] = beta * out + alpha * inp[N,C] @ W^T, W (OC,C). */
void lp_cpu_matmul_forward(void *out, const void *inp, lp_weight W, int N, int C, int OC,
		float alpha, float beta)
{
	lp_cpu_check_weight("matmul_forward", W, OC, C);
	if (N <= 0 || OC <= 0)
		return;
	if (N <= LP_CPU_MATVEC_MAX_N && lp_cpu_matvec(out, inp, W, N, C, OC, alpha, beta))
		return;
	if (W.dtype == LP_F32) {
		lp_cpu_gemm(0, 1, N, OC, C, alpha, inp, C, W.data, C, beta, out, OC);
		return;
	}
	int rows = block_rows(C, OC);
	float *wbuf = lp_cpu_scratch((size_t)rows * (size_t)C * sizeof(float));
	for (int o0 = 0; o0 < OC; o0 += rows) {
		int ob = OC - o0 < rows ? OC - o0 : rows;
		lp_cpu_weight_rows(wbuf, W, o0, ob);
		lp_cpu_gemm(0, 1, N, ob, C, alpha, inp, C, wbuf, C, beta, (float *)out + o0, OC);
	}
	free(wbuf);
}

/* dinp[N,C] = beta * dinp + alpha * dout[N,OC] @ W (dinp may be NULL);
 * dW (OC,C) += alpha * dout^T @ inp (dW may be NULL). */
void lp_cpu_matmul_backward(void *dinp, float *dW, const void *dout, const void *inp,
		lp_weight W, int N, int C, int OC, float alpha, float beta)
{
	lp_cpu_check_weight("matmul_backward", W, OC, C);
	if (N <= 0 || C <= 0)
		return;
	if (dinp && OC <= 0) {
		lp_cpu_scale_f32(dinp, beta, (size_t)N * (size_t)C);
	} else if (dinp && W.dtype == LP_F32) {
		lp_cpu_gemm(0, 0, N, C, OC, alpha, dout, OC, W.data, C, beta, dinp, C);
	} else if (dinp) {
		int rows = block_rows(C, OC);
		float *wbuf = lp_cpu_scratch((size_t)rows * (size_t)C * sizeof(float));
		for (int o0 = 0; o0 < OC; o0 += rows) {
			int ob = OC - o0 < rows ? OC - o0 : rows;
			lp_cpu_weight_rows(wbuf, W, o0, ob);
			lp_cpu_gemm(0, 0, N, C, ob, alpha, (const float *)dout + o0, OC, wbuf, C,
					o0 == 0 ? beta : 1.0f, dinp, C);
		}
		free(wbuf);
	}
	if (dW && OC > 0)
		lp_cpu_gemm(1, 0, OC, C, N, alpha, dout, OC, inp, C, 1.0f, dW, C);
}
