/* matvec.c: out[N,OC] = beta * out + alpha * inp[N,C] @ W^T for a bf16 or
 * f32 weight W (OC,C) and few rows N (decoding: one row per sequence), W
 * read once, bf16 straight as stored.
 *
 * matmul.c's general path converts W to f32 in blocks and calls GEMM: for
 * N = 1 that writes and reads again 4 bytes per weight where 2 would do,
 * and decoding is bound by reading the weights. Here each row of W is read
 * once from memory (the N rows of inp take it from L1 in turn), widened in
 * registers (a bf16 is the top half of an f32) and multiplied in f32 with
 * fused multiply-adds, so every product is exact and the result differs
 * from the conversion path only by the order of the f32 sums.
 *
 * Variants, chosen once at run time by what the CPU has (cpuid through
 * __builtin_cpu_supports), the first supported of:
 *   avx2        256-bit loads of 16 weights, widened by a shift and a mask,
 *               FMA into four accumulators
 *   avx512      the same with 512-bit registers
 *   avx512bf16  VDPBF16PS on W as it is stored and x split exactly into
 *               three bf16 parts (x = h + m + l to 2^-24), so that products
 *               keep f32 accuracy; x with an inf or NaN takes avx512
 *   scalar      plain C, for any other x86-64 and other architectures
 * The order is by speed measured on an AMD EPYC with all three (Zen 4,
 * which runs 512-bit operations as two halves): decoding reads W from
 * memory, and avx2 streamed it fastest (20-27 GB/s per core against
 * 16-25 for avx512 and 10-19 for avx512bf16, which needs three VDPBF16PS
 * per 32 weights to keep f32 accuracy); t/unit/matvec --bench
 * measures it on another machine.
 * $LP_CPU_MATVEC names one to use instead (benchmarks, tests), or "off"
 * for matmul.c's conversion path; naming one the CPU lacks is an error.
 * Each variant computes each output element alone in a fixed order, so
 * results never depend on the thread count, nor on N or on the other rows
 * of inp: a row of a batch of sequences decoded together gets the same
 * bits as the sequence decoded alone (gen --batch-size). f32 weights
 * take this path for that, where BLAS would not promise it; f16 weights
 * keep matmul.c's conversion path. */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "cpu.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_X86 1
#endif

/* One variant: dot products of rows of W with a prepared vector; prep()
 * turns a row of inp into what dot() reads. */
typedef struct {
	const char *name;
	int (*supported)(void);
	size_t (*prep_bytes)(int C);
	void (*prep)(void *xp, const float *x, int C);
	/* W[row] . x, w the row (C bf16) */
	float (*dot)(const uint16_t *w, const void *xp, const float *x, int C);
	/* the same for an f32 row, on x as it is */
	float (*dot_f32)(const float *w, const float *x, int C);
} variant;

/* ---- scalar ---- */

static int always(void) { return 1; }
static size_t prep_none(int C) { (void)C; return 0; }
static void prep_copy(void *xp, const float *x, int C) { (void)xp; (void)x; (void)C; }

static float dot_scalar(const uint16_t *w, const void *xp, const float *x, int C)
{
	(void)xp;
	float s[8] = {0};
	int i = 0;
	for (; i + 8 <= C; i += 8)
		for (int j = 0; j < 8; j++)
			s[j] += lp_bf16_to_f32(w[i + j]) * x[i + j];
	for (int j = 0; i < C; i++, j++)
		s[j] += lp_bf16_to_f32(w[i]) * x[i];
	return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

static float dot_f32_scalar(const float *w, const float *x, int C)
{
	float s[8] = {0};
	int i = 0;
	for (; i + 8 <= C; i += 8)
		for (int j = 0; j < 8; j++)
			s[j] += w[i + j] * x[i + j];
	for (int j = 0; i < C; i++, j++)
		s[j] += w[i] * x[i];
	return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

#ifdef HAVE_X86

/* f32 rows: four accumulators of 8 (avx2) or 16 (avx512) lanes. */
__attribute__((target("avx2,fma")))
static float dot_f32_avx2(const float *w, const float *x, int C)
{
	__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
	int i = 0;
	for (; i + 32 <= C; i += 32) {
		a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
		a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
		a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);
		a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);
	}
	for (; i + 8 <= C; i += 8)
		a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
	__m256 a = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	float t = _mm_cvtss_f32(s);
	for (; i < C; i++)
		t += w[i] * x[i];
	return t;
}

__attribute__((target("avx512f")))
static float dot_f32_avx512(const float *w, const float *x, int C)
{
	__m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
	int i = 0;
	for (; i + 64 <= C; i += 64) {
		a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(x + i), a0);
		a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 16), _mm512_loadu_ps(x + i + 16), a1);
		a2 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 32), _mm512_loadu_ps(x + i + 32), a2);
		a3 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 48), _mm512_loadu_ps(x + i + 48), a3);
	}
	for (; i + 16 <= C; i += 16)
		a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(x + i), a0);
	float t = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
	for (; i < C; i++)
		t += w[i] * x[i];
	return t;
}

/* The tail past the last whole block, added after the vector lanes. */
static inline float tail_dot(const uint16_t *w, const float *x, int i, int C)
{
	float s = 0;
	for (; i < C; i++)
		s += lp_bf16_to_f32(w[i]) * x[i];
	return s;
}

/* ---- avx2: blocks of 16 weights; x stored per block as its 8 even then
 * its 8 odd elements, to meet the widened halves of each 32-bit lane.
 * Two blocks per step into separate accumulators (four FMA chains). ---- */

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
static float dot_avx2(const uint16_t *w, const void *xp, const float *x, int C)
{
	const float *p = xp;
	const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);
	__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
	int i = 0;
	for (; i + 2 * B2 <= C; i += 2 * B2) {
		__m256i v = _mm256_loadu_si256((const __m256i *)(w + i));
		__m256i u = _mm256_loadu_si256((const __m256i *)(w + i + B2));
		a0 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(v, 16)),
				_mm256_loadu_ps(p + i), a0);
		a1 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(v, hi)),
				_mm256_loadu_ps(p + i + B2 / 2), a1);
		a2 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(u, 16)),
				_mm256_loadu_ps(p + i + B2), a2);
		a3 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(u, hi)),
				_mm256_loadu_ps(p + i + B2 + B2 / 2), a3);
	}
	if (i + B2 <= C) {
		__m256i v = _mm256_loadu_si256((const __m256i *)(w + i));
		a0 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(v, 16)),
				_mm256_loadu_ps(p + i), a0);
		a1 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(v, hi)),
				_mm256_loadu_ps(p + i + B2 / 2), a1);
		i += B2;
	}
	__m256 a = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s) + tail_dot(w, x, i, C);
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
static float dot_avx512(const uint16_t *w, const void *xp, const float *x, int C)
{
	const float *p = xp;
	const __m512i hi = _mm512_set1_epi32((int)0xffff0000u);
	__m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
	int i = 0;
	for (; i + 2 * B5 <= C; i += 2 * B5) {
		__m512i v = _mm512_loadu_si512(w + i), u = _mm512_loadu_si512(w + i + B5);
		a0 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(v, 16)),
				_mm512_loadu_ps(p + i), a0);
		a1 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(v, hi)),
				_mm512_loadu_ps(p + i + B5 / 2), a1);
		a2 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(u, 16)),
				_mm512_loadu_ps(p + i + B5), a2);
		a3 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(u, hi)),
				_mm512_loadu_ps(p + i + B5 + B5 / 2), a3);
	}
	if (i + B5 <= C) {
		__m512i v = _mm512_loadu_si512(w + i);
		a0 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(v, 16)),
				_mm512_loadu_ps(p + i), a0);
		a1 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(v, hi)),
				_mm512_loadu_ps(p + i + B5 / 2), a1);
		i += B5;
	}
	__m512 a = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
	return _mm512_reduce_add_ps(a) + tail_dot(w, x, i, C);
}

/* ---- avx512bf16: x = h + m + l, three bf16 vectors, and a flag word in
 * front saying whether x is finite (else the avx512 path runs). Two
 * blocks per step, one accumulator per part and block: six VDPBF16PS
 * chains. ---- */

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

static float *bf16_fallback(const void *xp, int C)
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
static float dot_bf16(const uint16_t *w, const void *xp, const float *x, int C)
{
	if (!*(const int *)xp)
		return dot_avx512(w, bf16_fallback(xp, C), x, C);
	const uint16_t *h = (const uint16_t *)((const char *)xp + BF_HEAD), *m = h + C, *l = m + C;
	__m512 ah = _mm512_setzero_ps(), am = ah, al = ah, bh = ah, bm = ah, bl = ah;
	int i = 0;
	for (; i + 2 * B5 <= C; i += 2 * B5) {
		__m512bh v = (__m512bh)_mm512_loadu_si512(w + i);
		__m512bh u = (__m512bh)_mm512_loadu_si512(w + i + B5);
		al = _mm512_dpbf16_ps(al, v, (__m512bh)_mm512_loadu_si512(l + i));
		am = _mm512_dpbf16_ps(am, v, (__m512bh)_mm512_loadu_si512(m + i));
		ah = _mm512_dpbf16_ps(ah, v, (__m512bh)_mm512_loadu_si512(h + i));
		bl = _mm512_dpbf16_ps(bl, u, (__m512bh)_mm512_loadu_si512(l + i + B5));
		bm = _mm512_dpbf16_ps(bm, u, (__m512bh)_mm512_loadu_si512(m + i + B5));
		bh = _mm512_dpbf16_ps(bh, u, (__m512bh)_mm512_loadu_si512(h + i + B5));
	}
	if (i + B5 <= C) {
		__m512bh v = (__m512bh)_mm512_loadu_si512(w + i);
		al = _mm512_dpbf16_ps(al, v, (__m512bh)_mm512_loadu_si512(l + i));
		am = _mm512_dpbf16_ps(am, v, (__m512bh)_mm512_loadu_si512(m + i));
		ah = _mm512_dpbf16_ps(ah, v, (__m512bh)_mm512_loadu_si512(h + i));
		i += B5;
	}
	ah = _mm512_add_ps(ah, bh), am = _mm512_add_ps(am, bm), al = _mm512_add_ps(al, bl);
	__m512 a = _mm512_add_ps(ah, _mm512_add_ps(am, al));
	return _mm512_reduce_add_ps(a) + tail_dot(w, x, i, C);
}

#endif /* HAVE_X86 */

static const variant variants[] = {
#ifdef HAVE_X86
	{"avx2", has_avx2, prep_bytes_f32, prep_avx2, dot_avx2, dot_f32_avx2},
	{"avx512", has_avx512, prep_bytes_f32, prep_avx512, dot_avx512, dot_f32_avx512},
	{"avx512bf16", has_avx512bf16, prep_bytes_bf16, prep_bf16, dot_bf16, dot_f32_avx512},
#endif
	{"scalar", always, prep_none, prep_copy, dot_scalar, dot_f32_scalar},
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

/* The variant this process uses: $LP_CPU_MATVEC, else the first
 * supported; NVARIANTS for "off". */
static int chosen = -1;

static int choose(void)
{
	if (chosen >= 0)
		return chosen;
	int pick = -1;
	const char *want = getenv("LP_CPU_MATVEC");
	if (want && !strcmp(want, "off")) {
		pick = NVARIANTS;
	} else if (want && *want) {
		for (int v = 0; v < NVARIANTS; v++)
			if (!strcmp(want, variants[v].name))
				pick = v;
		if (pick < 0)
			lp_die("cpu", "LP_CPU_MATVEC: '%s' is not avx512bf16, avx512, avx2, "
					"scalar or off", want);
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
	int v = choose();
	return v < NVARIANTS ? variants[v].name : "off";
}

/* Rows of W per parallel task. Rows are read one after the other: on the
 * machine measured, four rows read side by side streamed from memory at
 * half the rate. */
#define TASK_ROWS 32

void lp_cpu_matvec_variant(int v, float *out, const float *inp, lp_weight W, int N,
		int C, int OC, float alpha, float beta)
{
	const variant *va = &variants[v];
	int f32 = W.dtype == LP_F32;
	size_t stride = f32 ? 0 : (va->prep_bytes(C) + 63) & ~(size_t)63;
	char *xp = stride ? lp_cpu_scratch(stride * (size_t)N) : NULL;
	for (int n = 0; n < N && !f32; n++)
		va->prep(xp + stride * (size_t)n, inp + (size_t)n * C, C);
	int ntasks = (OC + TASK_ROWS - 1) / TASK_ROWS;
	#pragma omp parallel for schedule(static) if ((long)OC * C * N >= (1L << 15))
	for (int t = 0; t < ntasks; t++) {
		int r0 = t * TASK_ROWS, r1 = r0 + TASK_ROWS < OC ? r0 + TASK_ROWS : OC;
		for (int r = r0; r < r1; r++)
			for (int n = 0; n < N; n++) {
				const float *x = inp + (size_t)n * C;
				float d = f32 ? va->dot_f32((const float *)W.data + (size_t)r * C, x, C)
					: va->dot((const uint16_t *)W.data + (size_t)r * C,
							xp + stride * (size_t)n, x, C);
				float *o = out + (size_t)n * OC + r;
				*o = beta != 0.0f ? beta * *o + alpha * d : alpha * d;
			}
	}
	free(xp);
}

int lp_cpu_matvec(float *out, const float *inp, lp_weight W, int N, int C, int OC,
		float alpha, float beta)
{
	int v = choose();
	if (v == NVARIANTS || (W.dtype != LP_BF16 && W.dtype != LP_F32))
		return 0;
	lp_cpu_matvec_variant(v, out, inp, W, N, C, OC, alpha, beta);
	return 1;
}
