/* matvec.c: every variant of the CPU backend's matrix-vector kernel
 * (kernels/cpu/matvec.c) that this CPU can run, bf16 weights against the
 * conversion path (W converted to f32, then GEMM through BLAS) and an
 * exact double reference, f32 weights against the exact reference; each
 * output must come out the same bits when computed alone as among N
 * rows. Variants the CPU lacks are reported as skipped.
 *
 * Bounds, per output element, with S = sum_i |w_i x_i| (in double):
 *   - within one bf16 rounding of the conversion path: |got - gemm| <=
 *     2^-8 S (a bf16 rounding is 2^-9 relative; the two paths each hold
 *     at most C * 2^-24 S of f32 summation error, far below that);
 *   - and, much tighter, f32 accuracy: |got - exact| <= (C + 2) 2^-24 S,
 *     the classic bound for a sum of C f32 terms plus the roundings of
 *     alpha and beta (products of a bf16 weight and an f32 are exact in
 *     f32, and the avx512bf16 variant's three-part split of x leaves at
 *     most 2^-24 |x|).
 *
 *   matvec          run the tests (TAP)
 *   matvec --name   print the variant the process would use
 *   matvec --bench [OC C N REPS]
 *                   CPU and wall time per call of each variant and of the
 *                   conversion path, bf16 weights (pipelines/bench/gen-cpu.sh) */
#include <math.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "base/half.h"
#include "cpu/cpu.h"
#include "kernels.h"
#include "tap.h"

static lp_rng rng;

static double urand(void)    /* uniform in [-1, 1) */
{
	return (double)(lp_rng_next(&rng) >> 11) * 0x1p-52 - 1.0;
}

typedef struct {
	int N, C, OC;
	uint16_t *w;
	float *x, *gemm, *got;
	double *exact, *mag;
} problem;

static void make(problem *p, int N, int C, int OC, float alpha, float beta, float *init)
{
	p->N = N, p->C = C, p->OC = OC;
	p->w = lp_malloc((size_t)OC * C * sizeof *p->w);
	p->x = lp_malloc((size_t)N * C * sizeof *p->x);
	p->gemm = lp_malloc((size_t)N * OC * sizeof *p->gemm);
	p->got = lp_malloc((size_t)N * OC * sizeof *p->got);
	p->exact = lp_malloc((size_t)N * OC * sizeof *p->exact);
	p->mag = lp_malloc((size_t)N * OC * sizeof *p->mag);
	/* weights of mixed magnitudes, activations with a few large ones */
	for (size_t i = 0; i < (size_t)OC * C; i++)
		p->w[i] = lp_f32_to_bf16((float)(urand() * (i % 7 == 0 ? 4.0 : 0.05)));
	for (size_t i = 0; i < (size_t)N * C; i++)
		p->x[i] = (float)(urand() * (i % 13 == 0 ? 30.0 : 1.0));
	for (size_t i = 0; i < (size_t)N * OC; i++)
		init[i] = (float)urand();
	float *wf = lp_malloc((size_t)OC * C * sizeof *wf);
	for (size_t i = 0; i < (size_t)OC * C; i++)
		wf[i] = lp_bf16_to_f32(p->w[i]);
	memcpy(p->gemm, init, (size_t)N * OC * sizeof *init);
	lp_cpu_gemm(0, 1, N, OC, C, alpha, p->x, C, wf, C, beta, p->gemm, OC);
	for (int n = 0; n < N; n++)
		for (int o = 0; o < OC; o++) {
			double s = 0, m = 0;
			for (int i = 0; i < C; i++) {
				double t = (double)wf[(size_t)o * C + i] * p->x[(size_t)n * C + i];
				s += t;
				m += fabs(t);
			}
			size_t k = (size_t)n * OC + o;
			p->exact[k] = alpha * s + (beta != 0 ? (double)beta * init[k] : 0.0);
			p->mag[k] = fabs(alpha) * m + fabs((double)beta * init[k]);
		}
	free(wf);
}

static void drop(problem *p)
{
	free(p->w), free(p->x), free(p->gemm), free(p->got), free(p->exact), free(p->mag);
}

/* Worst |got - ref| / S over the outputs, against gemm and exact. */
static void errors(const problem *p, double *e_gemm, double *e_exact)
{
	*e_gemm = *e_exact = 0;
	for (size_t k = 0; k < (size_t)p->N * p->OC; k++) {
		double s = p->mag[k] > 0 ? p->mag[k] : 1e-300;
		double a = fabs((double)p->got[k] - p->gemm[k]) / s;
		double b = fabs((double)p->got[k] - p->exact[k]) / s;
		if (!(a <= *e_gemm)) *e_gemm = a;
		if (!(b <= *e_exact)) *e_exact = b;
	}
}

/* f32 weights: f32-accurate, and each output the same bits computed alone
 * as among N rows (what batched decoding relies on). */
static void check_f32(int v)
{
	const char *name = lp_cpu_matvec_variant_name(v);
	static const int Cs[] = {1, 9, 64, 100, 1376};
	int fails = 0, same = 1;
	double worst = 0;
	for (int ci = 0; ci < 5; ci++)
		for (int N = 1; N <= LP_CPU_MATVEC_MAX_N; N += 7) {
			int C = Cs[ci], OC = 37;
			float *w = lp_malloc((size_t)OC * C * sizeof *w), *x = lp_malloc((size_t)N * C * sizeof *x);
			float *got = lp_malloc((size_t)N * OC * sizeof *got);
			for (size_t i = 0; i < (size_t)OC * C; i++)
				w[i] = (float)urand();
			for (size_t i = 0; i < (size_t)N * C; i++)
				x[i] = (float)(urand() * (i % 13 == 0 ? 30.0 : 1.0));
			lp_cpu_matvec_variant(v, got, x, (lp_weight){w, LP_F32, OC, C}, N, C, OC, 1.0f, 0.0f);
			for (int n = 0; n < N; n++)
				for (int o = 0; o < OC; o++) {
					double e = 0, m = 0;
					for (int i = 0; i < C; i++) {
						double t = (double)w[(size_t)o * C + i] * x[(size_t)n * C + i];
						e += t;
						m += fabs(t);
					}
					double err = fabs(got[(size_t)n * OC + o] - e) / (m > 0 ? m : 1e-300);
					worst = err > worst ? err : worst;
					fails += !(err <= (C + 2) * 0x1p-24);
					float one;
					lp_cpu_matvec_variant(v, &one, x + (size_t)n * C,
							(lp_weight){w + (size_t)o * C, LP_F32, 1, C}, 1, C, 1,
							1.0f, 0.0f);
					same &= memcmp(&one, &got[(size_t)n * OC + o], sizeof one) == 0;
				}
			free(w), free(x), free(got);
		}
	ok(fails == 0, "%s: f32 weights, f32-accurate (worst %.2g S)", name, worst);
	ok(same, "%s: f32 weights, an output is bitwise the same computed alone", name);
}

static void check_variant(int v)
{
	const char *name = lp_cpu_matvec_variant_name(v);
	static const int Cs[] = {1, 7, 15, 16, 17, 31, 32, 33, 64, 100, 511, 1376};
	static const int OCs[] = {1, 3, 4, 5, 33, 130};
	int nC = (int)(sizeof Cs / sizeof *Cs), nOC = (int)(sizeof OCs / sizeof *OCs);
	double worst_g = 0, worst_e = 0;
	int fails = 0, cases = 0;
	for (int N = 1; N <= LP_CPU_MATVEC_MAX_N; N++)
		for (int ci = 0; ci < nC; ci++)
			for (int oi = 0; oi < nOC; oi++) {
				int C = Cs[ci], OC = OCs[oi];
				float alpha = (ci + oi) % 3 ? 1.0f : 0.5f;
				float beta = (N + oi) % 2 ? 0.0f : 0.25f;
				problem p;
				float *init = lp_malloc((size_t)N * OC * sizeof *init);
				make(&p, N, C, OC, alpha, beta, init);
				memcpy(p.got, init, (size_t)N * OC * sizeof *init);
				if (beta == 0)   /* beta 0: out is not read, garbage stays out */
					for (size_t k = 0; k < (size_t)N * OC; k++)
						p.got[k] = NAN;
				lp_cpu_matvec_variant(v, p.got, p.x, (lp_weight){p.w, LP_BF16, OC, C},
						N, C, OC, alpha, beta);
				double eg, ee;
				errors(&p, &eg, &ee);
				cases++;
				if (!(eg <= 0x1p-8) || !(ee <= (C + 2) * 0x1p-24)) {
					if (fails++ < 5)
						printf("# %s N=%d C=%d OC=%d: %.3g of S from gemm, "
								"%.3g from exact (bound %.3g)\n", name, N, C,
								OC, eg, ee, (C + 2) * 0x1p-24);
				}
				if (eg > worst_g) worst_g = eg;
				if (ee > worst_e) worst_e = ee;
				drop(&p);
				free(init);
			}
	ok(fails == 0, "%s: %d shapes within one bf16 rounding of the conversion path "
			"(worst %.2g S) and f32-accurate (worst %.2g S)", name, cases, worst_g, worst_e);

	/* the same result for a row whatever rows and threads surround it */
	problem p;
	float *init = lp_calloc(2 * 37, sizeof *init);
	make(&p, 2, 100, 37, 1.0f, 0.0f, init);
	lp_cpu_matvec_variant(v, p.got, p.x, (lp_weight){p.w, LP_BF16, 37, 100},
			2, 100, 37, 1.0f, 0.0f);
	int same = 1;
	for (int o = 0; o < 37; o++)
		for (int n = 0; n < 2; n++) {
			float one;
			lp_cpu_matvec_variant(v, &one, p.x + (size_t)n * 100,
					(lp_weight){p.w + (size_t)o * 100, LP_BF16, 1, 100}, 1, 100, 1,
					1.0f, 0.0f);
			same &= memcmp(&one, &p.got[(size_t)n * 37 + o], sizeof one) == 0;
		}
	ok(same, "%s: an output is bitwise the same computed alone", name);

	/* non-finite inputs: inf and NaN come out where the products put them */
	for (int i = 0; i < 100; i++)
		p.x[i] = 1.0f;
	p.x[3] = INFINITY;          /* row n=0: +-inf, or NaN where w = 0 */
	p.x[100 + 5] = NAN;         /* row n=1: NaN */
	for (int o = 0; o < 37; o++)
		p.w[(size_t)o * 100 + 3] = o == 7 ? 0 : lp_f32_to_bf16(o % 2 ? 1.0f : -1.0f);
	lp_cpu_matvec_variant(v, p.got, p.x, (lp_weight){p.w, LP_BF16, 37, 100},
			2, 100, 37, 1.0f, 0.0f);
	int nf = 1;
	for (int o = 0; o < 37; o++) {
		float a = p.got[o], b = p.got[37 + o];
		if (o == 7)
			nf &= isnan(a) != 0;
		else
			nf &= isinf(a) && (a > 0) == (o % 2 == 1);
		nf &= isnan(b) != 0;
	}
	ok(nf, "%s: inf and NaN inputs give inf and NaN outputs", name);
	drop(&p);
	free(init);
	check_f32(v);
}

static double seconds(clockid_t clock)
{
	struct timespec t;
	clock_gettime(clock, &t);
	return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The conversion path, as matmul.c's general case runs it. */
static void convert_gemm(float *out, const float *x, const uint16_t *w, float *wf, int N,
		int C, int OC)
{
	lp_cpu_weight_rows(wf, (lp_weight){w, LP_BF16, OC, C}, 0, OC);
	lp_cpu_gemm(0, 1, N, OC, C, 1.0f, x, C, wf, C, 0.0f, out, OC);
}

static int bench(int OC, int C, int N, int reps)
{
	uint16_t *w = lp_malloc((size_t)OC * C * sizeof *w);
	float *x = lp_malloc((size_t)N * C * sizeof *x), *out = lp_malloc((size_t)N * OC * sizeof *out);
	float *wf = lp_malloc((size_t)OC * C * sizeof *wf);
	for (size_t i = 0; i < (size_t)OC * C; i++)
		w[i] = lp_f32_to_bf16((float)urand());
	for (size_t i = 0; i < (size_t)N * C; i++)
		x[i] = (float)urand();
	double gb = (double)OC * C * 2 * 1e-9;
	printf("# W (%d, %d) bf16, N %d, %d calls: per call CPU ms and wall ms; weights read "
			"per CPU second and per wall second (GB/s)\n", OC, C, N, reps);
	for (int v = lp_cpu_matvec_variant_count() - 1; v >= -1; v--) {
		if (v >= 0 && !lp_cpu_matvec_variant_supported(v))
			continue;
		double t0 = seconds(CLOCK_PROCESS_CPUTIME_ID), w0 = seconds(CLOCK_MONOTONIC);
		for (int r = 0; r < reps; r++) {
			if (v < 0)
				convert_gemm(out, x, w, wf, N, C, OC);
			else
				lp_cpu_matvec_variant(v, out, x, (lp_weight){w, LP_BF16, OC, C}, N,
						C, OC, 1.0f, 0.0f);
		}
		double dt = (seconds(CLOCK_PROCESS_CPUTIME_ID) - t0) / reps;
		double dw = (seconds(CLOCK_MONOTONIC) - w0) / reps;
		printf("%-12s %9.3f %9.3f %8.1f %8.1f\n",
				v < 0 ? "convert+gemm" : lp_cpu_matvec_variant_name(v),
				dt * 1e3, dw * 1e3, gb / dt, gb / dw);
	}
	free(w), free(x), free(out), free(wf);
	return 0;
}

int main(int argc, char **argv)
{
	lp_init(argv[0]);
	if (argc > 1 && !strcmp(argv[1], "--name")) {
		printf("%s\n", lp_cpu_matvec_name());
		return 0;
	}
	lp_rng_seed(&rng, 14);
	if (argc > 1 && !strcmp(argv[1], "--bench")) {
		int OC = argc > 2 ? atoi(argv[2]) : 32000, C = argc > 3 ? atoi(argv[3]) : 512;
		int N = argc > 4 ? atoi(argv[4]) : 1, reps = argc > 5 ? atoi(argv[5]) : 20;
		if (OC < 1 || C < 1 || N < 1 || N > LP_CPU_MATVEC_MAX_N || reps < 1)
			lp_usage_error("--bench OC C N REPS: positive numbers, N at most %d",
					LP_CPU_MATVEC_MAX_N);
		return bench(OC, C, N, reps);
	}
	printf("# this CPU uses %s\n", lp_cpu_matvec_name());
	int nscalar = 0;
	for (int v = 0; v < lp_cpu_matvec_variant_count(); v++) {
		const char *name = lp_cpu_matvec_variant_name(v);
		nscalar += !strcmp(name, "scalar");
		if (!lp_cpu_matvec_variant_supported(v)) {
			printf("ok %d # SKIP %s: this CPU lacks it\n", ++tap_n, name);
			continue;
		}
		check_variant(v);
	}
	ok(nscalar == 1, "the scalar variant is always there");
	return tap_done();
}
