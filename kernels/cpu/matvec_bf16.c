/* matvec_bf16.c: out[N,OC] = beta * out + alpha * inp[N,C] @ W^T for a bf16
 * weight W (OC,C) and few rows N (decoding: one row per sequence), read
 * straight from bf16.
 *
 * matmul.c's general path converts W to f32 in blocks and calls GEMM: for
 * N = 1 that writes and reads again 4 bytes per weight where 2 would do,
 * and decoding is bound by reading the weights. Here every weight is read
 * once per group of four rows of W, widened in registers (a bf16 is the
 * top half of an f32) and multiplied in f32 with fused multiply-adds, so
 * every product is exact and the result differs from the conversion path
 * only by the order of the f32 sums.
 *
 * Variants, chosen once at run time by what the CPU has (cpuid through
 * __builtin_cpu_supports), the first supported of:
 *   avx512bf16  VDPBF16PS on W as it is stored and x split exactly into
 *               three bf16 parts (x = h + m + l to 2^-24), so that products
 *               keep f32 accuracy; x with an inf or NaN takes avx512
 *   avx512      512-bit loads of 32 weights, widened by a shift and a mask
 *   avx2        the same with 256-bit registers (and FMA)
 *   scalar      plain C, for any other x86-64 and other architectures
 * $LP_CPU_MATVEC names one to use instead (benchmarks, tests); naming one
 * the CPU lacks is an error. Each variant computes each output element
 * alone in a fixed order, so results never depend on the thread count. */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "cpu.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_X86 1
#endif

/* One variant: dots of rows [r0, r1) of W (OC,C) with the n-th prepared
 * vector; prep() turns the N rows of inp into what rows() reads. */
typedef struct {
	const char *name;
	int (*supported)(void);
	size_t (*prep_bytes)(int C);
	void (*prep)(void *xp, const float *x, int C);
	/* dots[r] = W[row r] . x for r in [0, nr), nr <= 4 */
	void (*rows)(float *dots, const uint16_t *w, size_t ldw, int nr, const void *xp,
			const float *x, int C);
} variant;

/* ---- scalar ---- */

static int always(void) { return 1; }
static size_t prep_none(int C) { (void)C; return 0; }
static void prep_copy(void *xp, const float *x, int C) { (void)xp; (void)x; (void)C; }

static void rows_scalar(float *dots, const uint16_t *w, size_t ldw, int nr, const void *xp,
		const float *x, int C)
{
	(void)xp;
	for (int r = 0; r < nr; r++) {
		const uint16_t *wr = w + (size_t)r * ldw;
		float s[8] = {0};
		int i = 0;
		for (; i + 8 <= C; i += 8)
			for (int j = 0; j < 8; j++)
				s[j] += lp_bf16_to_f32(wr[i + j]) * x[i + j];
		for (int j = 0; i < C; i++, j++)
			s[j] += lp_bf16_to_f32(wr[i]) * x[i];
		dots[r] = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
	}
}

#ifdef HAVE_X86

/* The tail past the last whole block, added after the vector lanes. */
static inline float tail_dot(const uint16_t *w, const float *x, int i, int C)
{
	float s = 0;
	for (; i < C; i++)
		s += lp_bf16_to_f32(w[i]) * x[i];
	return s;
}

/* ---- avx2: blocks of 16 weights; x stored per block as its 8 even then
 * its 8 odd elements, to meet the widened halves of each 32-bit lane ---- */

#define B2 16

static int has_avx2(void)
{
	return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

static size_t prep_bytes_f32(int C) { return (size_t)C * sizeof(float); }

static void prep_avx2(void *xp, const float *x, int C)
{
	float *p = xp;
	for (int b = 0; b + B2 <= C; b += B2)
		for (int k = 0; k < B2 / 2; k++) {
			p[b + k] = x[b + 2 * k];
			p[b + B2 / 2 + k] = x[b + 2 * k + 1];
		}
}

__attribute__((target("avx2,fma")))
static inline float hsum256(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma")))
static inline void dot_avx2(float *dots, const uint16_t *w, size_t ldw, const int R,
		const float *p, const float *x, int C)
{
	const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);
	__m256 ae[4], ao[4];
	for (int r = 0; r < R; r++)
		ae[r] = ao[r] = _mm256_setzero_ps();
	int i = 0;
	for (; i + B2 <= C; i += B2) {
		__m256 xe = _mm256_loadu_ps(p + i), xo = _mm256_loadu_ps(p + i + B2 / 2);
		for (int r = 0; r < R; r++) {
			__m256i v = _mm256_loadu_si256((const __m256i *)(w + (size_t)r * ldw + i));
			ae[r] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(v, 16)), xe, ae[r]);
			ao[r] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(v, hi)), xo, ao[r]);
		}
	}
	for (int r = 0; r < R; r++)
		dots[r] = hsum256(_mm256_add_ps(ae[r], ao[r])) + tail_dot(w + (size_t)r * ldw, x, i, C);
}

__attribute__((target("avx2,fma")))
static void rows_avx2(float *dots, const uint16_t *w, size_t ldw, int nr, const void *xp,
		const float *x, int C)
{
	if (nr == 4) {
		dot_avx2(dots, w, ldw, 4, xp, x, C);
		return;
	}
	for (int r = 0; r < nr; r++)
		dot_avx2(dots + r, w + (size_t)r * ldw, ldw, 1, xp, x, C);
}

/* ---- avx512: blocks of 32 weights, x as 16 even then 16 odd ---- */

#define B5 32

static int has_avx512(void)
{
	return __builtin_cpu_supports("avx512f");
}

static void prep_avx512(void *xp, const float *x, int C)
{
	float *p = xp;
	for (int b = 0; b + B5 <= C; b += B5)
		for (int k = 0; k < B5 / 2; k++) {
			p[b + k] = x[b + 2 * k];
			p[b + B5 / 2 + k] = x[b + 2 * k + 1];
		}
}

__attribute__((target("avx512f")))
static inline void dot_avx512(float *dots, const uint16_t *w, size_t ldw, const int R,
		const float *p, const float *x, int C)
{
	const __m512i hi = _mm512_set1_epi32((int)0xffff0000u);
	__m512 ae[4], ao[4];
	for (int r = 0; r < R; r++)
		ae[r] = ao[r] = _mm512_setzero_ps();
	int i = 0;
	for (; i + B5 <= C; i += B5) {
		__m512 xe = _mm512_loadu_ps(p + i), xo = _mm512_loadu_ps(p + i + B5 / 2);
		for (int r = 0; r < R; r++) {
			__m512i v = _mm512_loadu_si512(w + (size_t)r * ldw + i);
			ae[r] = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(v, 16)), xe, ae[r]);
			ao[r] = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(v, hi)), xo, ao[r]);
		}
	}
	for (int r = 0; r < R; r++)
		dots[r] = _mm512_reduce_add_ps(_mm512_add_ps(ae[r], ao[r]))
			+ tail_dot(w + (size_t)r * ldw, x, i, C);
}

__attribute__((target("avx512f")))
static void rows_avx512(float *dots, const uint16_t *w, size_t ldw, int nr, const void *xp,
		const float *x, int C)
{
	if (nr == 4) {
		dot_avx512(dots, w, ldw, 4, xp, x, C);
		return;
	}
	for (int r = 0; r < nr; r++)
		dot_avx512(dots + r, w + (size_t)r * ldw, ldw, 1, xp, x, C);
}

/* ---- avx512bf16: x = h + m + l, three bf16 vectors, and a flag word in
 * front saying whether x is finite (else the avx512 path runs) ---- */

static int has_avx512bf16(void)
{
	return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
}

/* layout: [int finite][pad to 64 bytes][h: C][m: C][l: C] bf16, then the
 * avx512 path's permuted x (C floats) for non-finite inputs */
#define BF_HEAD 64

static size_t prep_bytes_bf16(int C)
{
	return BF_HEAD + 3 * (size_t)C * sizeof(uint16_t) + 64 + (size_t)C * sizeof(float);
}

static float *bf16_fallback(void *xp, int C)
{
	size_t off = BF_HEAD + 3 * (size_t)C * sizeof(uint16_t);
	off = (off + 63) & ~(size_t)63;
	return (float *)((char *)xp + off);
}

static void prep_bf16(void *xp, const float *x, int C)
{
	int *finite = xp;
	uint16_t *h = (uint16_t *)((char *)xp + BF_HEAD), *m = h + C, *l = m + C;
	*finite = 1;
	for (int i = 0; i < C; i++) {
		if (!(x[i] - x[i] == 0.0f))   /* inf or NaN */
			*finite = 0;
		h[i] = lp_f32_to_bf16(x[i]);
		float r1 = x[i] - lp_bf16_to_f32(h[i]);      /* exact */
		m[i] = lp_f32_to_bf16(r1);
		l[i] = lp_f32_to_bf16(r1 - lp_bf16_to_f32(m[i]));   /* exact, then rounded */
	}
	if (!*finite)
		prep_avx512(bf16_fallback(xp, C), x, C);
}

__attribute__((target("avx512f,avx512bf16")))
static inline void dot_bf16(float *dots, const uint16_t *w, size_t ldw, const int R,
		const uint16_t *h, int C, const float *x)
{
	const uint16_t *m = h + C, *l = m + C;
	__m512 a[4];
	for (int r = 0; r < R; r++)
		a[r] = _mm512_setzero_ps();
	int i = 0;
	for (; i + B5 <= C; i += B5) {
		__m512bh xh = (__m512bh)_mm512_loadu_si512(h + i);
		__m512bh xm = (__m512bh)_mm512_loadu_si512(m + i);
		__m512bh xl = (__m512bh)_mm512_loadu_si512(l + i);
		for (int r = 0; r < R; r++) {
			__m512bh v = (__m512bh)_mm512_loadu_si512(w + (size_t)r * ldw + i);
			a[r] = _mm512_dpbf16_ps(a[r], v, xl);
			a[r] = _mm512_dpbf16_ps(a[r], v, xm);
			a[r] = _mm512_dpbf16_ps(a[r], v, xh);
		}
	}
	for (int r = 0; r < R; r++)
		dots[r] = _mm512_reduce_add_ps(a[r]) + tail_dot(w + (size_t)r * ldw, x, i, C);
}

__attribute__((target("avx512f,avx512bf16")))
static void rows_bf16(float *dots, const uint16_t *w, size_t ldw, int nr, const void *xp,
		const float *x, int C)
{
	if (!*(const int *)xp) {
		rows_avx512(dots, w, ldw, nr, bf16_fallback((void *)xp, C), x, C);
		return;
	}
	const uint16_t *h = (const uint16_t *)((const char *)xp + BF_HEAD);
	if (nr == 4) {
		dot_bf16(dots, w, ldw, 4, h, C, x);
		return;
	}
	for (int r = 0; r < nr; r++)
		dot_bf16(dots + r, w + (size_t)r * ldw, ldw, 1, h, C, x);
}

#endif /* HAVE_X86 */

static const variant variants[] = {
#ifdef HAVE_X86
	{"avx512bf16", has_avx512bf16, prep_bytes_bf16, prep_bf16, rows_bf16},
	{"avx512", has_avx512, prep_bytes_f32, prep_avx512, rows_avx512},
	{"avx2", has_avx2, prep_bytes_f32, prep_avx2, rows_avx2},
#endif
	{"scalar", always, prep_none, prep_copy, rows_scalar},
};
#define NVARIANTS ((int)(sizeof(variants) / sizeof(variants[0])))

int lp_cpu_matvec_variant_count(void)
{
	return NVARIANTS;
}

const char *lp_cpu_matvec_variant_name(int v)
{
	return v >= 0 && v < NVARIANTS ? variants[v].name : NULL;
}

int lp_cpu_matvec_variant_supported(int v)
{
	return v >= 0 && v < NVARIANTS && variants[v].supported();
}

/* The variant this process uses: $LP_CPU_MATVEC, else the first supported. */
static int chosen = -1;

static int choose(void)
{
	if (chosen >= 0)
		return chosen;
	int pick = -1;
	const char *want = getenv("LP_CPU_MATVEC");
	if (want && *want) {
		for (int v = 0; v < NVARIANTS; v++)
			if (!strcmp(want, variants[v].name))
				pick = v;
		if (pick < 0)
			lp_die("cpu", "LP_CPU_MATVEC: '%s' is not avx512bf16, avx512, avx2 or scalar", want);
		if (!variants[pick].supported())
			lp_die("cpu", "LP_CPU_MATVEC: this CPU cannot run '%s'", want);
	} else {
		for (int v = NVARIANTS - 1; v >= 0; v--)
			if (variants[v].supported())
				pick = v;
	}
	#pragma omp atomic write
	chosen = pick;
	return pick;
}

const char *lp_cpu_matvec_name(void)
{
	return variants[choose()].name;
}

/* Rows of W per parallel task: a multiple of 4, fixed by nothing but this. */
#define TASK_ROWS 32

void lp_cpu_matvec_bf16_variant(int v, float *out, const float *inp, lp_weight W, int N,
		int C, int OC, float alpha, float beta)
{
	const variant *va = &variants[v];
	size_t stride = (va->prep_bytes(C) + 63) & ~(size_t)63;
	char *xp = stride ? lp_cpu_scratch(stride * (size_t)N) : NULL;
	for (int n = 0; n < N; n++)
		va->prep(xp + stride * (size_t)n, inp + (size_t)n * C, C);
	const uint16_t *w = W.data;
	int ntasks = (OC + TASK_ROWS - 1) / TASK_ROWS;
	#pragma omp parallel for schedule(static) if ((long)OC * C * N >= (1L << 15))
	for (int t = 0; t < ntasks; t++) {
		int r0 = t * TASK_ROWS, r1 = r0 + TASK_ROWS < OC ? r0 + TASK_ROWS : OC;
		for (int r = r0; r < r1; r += 4) {
			int nr = r1 - r < 4 ? r1 - r : 4;
			for (int n = 0; n < N; n++) {
				float dots[4];
				va->rows(dots, w + (size_t)r * C, (size_t)C, nr, xp + stride * (size_t)n,
						inp + (size_t)n * C, C);
				float *o = out + (size_t)n * OC + r;
				for (int k = 0; k < nr; k++)
					o[k] = beta != 0.0f ? beta * o[k] + alpha * dots[k] : alpha * dots[k];
			}
		}
	}
	free(xp);
}

void lp_cpu_matvec_bf16(float *out, const float *inp, lp_weight W, int N, int C, int OC,
		float alpha, float beta)
{
	lp_cpu_matvec_bf16_variant(choose(), out, inp, W, N, C, OC, alpha, beta);
}
