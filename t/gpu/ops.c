/* ops.c: the CUDA backend against the CPU backend, op by op, forward and
 * backward.
 *
 *   gpu-ops [--device cuda|cpu] [--quick] [--op NAME] [--seed N]
 *
 * For every op of kernels.h at several shapes (odd sizes, GQA, masks, each
 * weight dtype, accumulating and overwriting variants) and for f32 and
 * bf16 activations: make random inputs, run the op on the CPU backend (the
 * reference, f32 math) and on the device backend, both linked into this
 * program and switched with lp_kernels_init, the data going through host
 * buffers. Outputs are filled with NaN before every run, so an element an
 * op leaves unwritten fails the check. In bf16 runs both backends get the
 * same inputs: activations are rounded to bf16 first, and the CPU reads
 * those values as f32.
 *
 * Each output is checked two ways:
 *   - relative error ||out - ref|| / ||ref|| against the case's tolerance:
 *     f32 1e-5 (GEMM and reductions over long rows 1e-4), bf16 2e-2;
 *   - bf16 outputs also element by element, in units of bf16 rounding
 *     (ulps): |out - ref| / ulp(max(|ref|, floor * rms(ref))) must be at
 *     most the case's ulps. Where the device rounds an f32 result once,
 *     1 ulp with floor 1/256 (the floor keeps an element that cancels to
 *     near zero from being judged by an ulp far below the f32 rounding of
 *     its terms). Where it rounds an operand of a sum to bf16 first (an f32
 *     weight in a bf16 GEMM; P and dS in the GEMM attention), the error of
 *     an element scales with the sum's terms, not with its result: then
 *     the unit is the ulp at the tensor's rms (floor 1), 2 to 4 of them.
 * Ops defined bit for bit (dtype conversion, dropout's mask, AdamW, the
 * f32 scale, the embedding backward's sum in row order) must match bytes.
 *
 * Then the device run of each case is timed with CUDA events around
 * batches of REPS runs (median of BATCHES batches, after WARMUP runs), and
 * a table is printed at the end. Output is TAP; the exit status is 0 only
 * when every check passed.
 *
 * --device cpu checks the harness without a GPU: the CPU backend against
 * itself, and the bf16 cases with the "device" outputs rounded to bf16, so
 * the ulp checks run too. --device cuda on a machine where CUDA cannot
 * start fails with one line and exit status 1.
 *
 * Built by `make` into $(O)/t/gpu-ops; t/t0310-gpu-ops.t runs the CPU
 * self-check, t/gpu/run.sh and pipelines/bench/gpu.sh run it on a GPU. */
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef LP_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

#include "base/common.h"
#include "base/half.h"
#include "kernels.h"

#define ACT 0           /* tensor dtype: the activation dtype of the run */
#define MAXT 12         /* tensors per case */
#define WARMUP 3
#define REPS 10
#define BATCHES 5

enum role { IN, OUT, INOUT };

typedef struct {
	const char *name;
	int role;
	int dtype;          /* ACT, or a fixed dtype (f32, bf16, f16, i32, u8) */
	int exact;          /* compare bits, not values */
	double ulps;        /* bf16 outputs: most ulps allowed (0: the case's) */
	size_t n;           /* elements */
	void *host;         /* input: f32 values for ACT, raw bytes otherwise */
	void *res[2];       /* output bytes: [0] reference (cpu), [1] device */
	int res_dtype[2];
	void *dev;          /* buffer on the active backend during a run */
} tensor;

typedef struct test_case test_case;
struct test_case {
	const char *op;
	char shape[128];
	int act;                    /* activation dtype of the device run */
	double tol;
	double ulps;                /* bf16 outputs: most ulps allowed per element */
	double floor;               /* ... at magnitudes of at least floor * rms(ref) */
	void (*run)(test_case *c);  /* calls the op on the tensors' dev pointers */
	int nt;
	tensor t[MAXT];
	/* the op's arguments; each op uses some */
	int N, C, OC, V, B, T, Tq, Tmax, H, KVH, D, I, wdtype, sdtype, ddtype;
	size_t n;
	float alpha, beta, eps, scale, factor, p;
	int accumulate, step;
	uint64_t seed64;
	double lr, beta1, beta2, adam_eps, wd;
	int alias;                  /* cross_entropy: dlogits is logits */
	const char *path;           /* attention: LP_CUDA_ATTENTION for the run */
	double flops;               /* for the table; 0: show GB/s */
	lp_rng rng;
};

/* ---- options and results ---- */

static enum lp_device device = LP_DEVICE_CUDA;
static int quick;
static const char *only;
static uint64_t seed = 1;
static int ncase;
/* the CUDA backend's two attention paths for training (attention_gemm.cu
 * and the flash kernels of attention.cu): each case runs with each */
static const char *attn_path = "gemm";

typedef struct {
	char op[24], shape[128], act[8];
	double err, tol, ulps, us, rate;
	int is_flops, ok;
} table_row;
static table_row *table;
static size_t nrows, rows_cap;
static int tap_n, tap_failed;

/* ---- host conversions and random numbers ---- */

static const char *dname(int dtype)
{
	const char *s = lp_dtype_name(dtype);
	return s ? s : "?";
}

static float uniform(lp_rng *r, float lo, float hi)
{
	return lo + (hi - lo) * (float)(lp_rng_next(r) >> 40) * 0x1p-24f;
}

static size_t elem_size(int dtype, int act)
{
	return lp_dtype_size(dtype == ACT ? act : dtype);
}

/* Element i of a buffer of a float dtype, as float. */
static float decode(const void *p, int dtype, size_t i)
{
	switch (dtype) {
	case LP_BF16: return lp_bf16_to_f32(((const uint16_t *)p)[i]);
	case LP_F16: return lp_f16_to_f32(((const uint16_t *)p)[i]);
	case LP_F32: return ((const float *)p)[i];
	default: return NAN;
	}
}

static void encode(void *p, int dtype, size_t i, float x)
{
	switch (dtype) {
	case LP_BF16: ((uint16_t *)p)[i] = lp_f32_to_bf16(x); break;
	case LP_F16: ((uint16_t *)p)[i] = lp_f32_to_f16(x); break;
	default: ((float *)p)[i] = x;
	}
}

/* ---- cases and tensors ---- */

static test_case *new_case(const char *op, void (*run)(test_case *), int act, double tol,
		const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static test_case *new_case(const char *op, void (*run)(test_case *), int act, double tol,
		const char *fmt, ...)
{
	test_case *c = lp_calloc(1, sizeof(*c));
	c->op = op;
	c->run = run;
	c->act = act;
	c->tol = tol;
	c->ulps = 1;
	c->floor = 1.0 / 256;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->shape, sizeof(c->shape), fmt, ap);
	va_end(ap);
	lp_rng_seed(&c->rng, seed * 1000003u + (uint64_t)++ncase);
	return c;
}

/* A tensor of n elements; its host input buffer is zeroed. */
static tensor *add(test_case *c, const char *name, int role, int dtype, size_t n)
{
	if (c->nt == MAXT)
		lp_die(c->op, "more than %d tensors", MAXT);
	tensor *t = &c->t[c->nt++];
	t->name = name;
	t->role = role;
	t->dtype = dtype;
	t->n = n;
	t->host = lp_calloc(n ? n : 1, dtype == ACT ? sizeof(float) : lp_dtype_size(dtype));
	return t;
}

static tensor *find(test_case *c, const char *name)
{
	for (int i = 0; i < c->nt; i++)
		if (!strcmp(c->t[i].name, name))
			return &c->t[i];
	return NULL;
}

/* The tensor's buffer on the active backend; NULL when the case has none. */
static void *dev(test_case *c, const char *name)
{
	tensor *t = find(c, name);
	return t ? t->dev : NULL;
}

/* Uniform values in [lo, hi) into an ACT or float-typed tensor. */
static tensor *fill(tensor *t, lp_rng *r, float lo, float hi)
{
	int dt = t->dtype == ACT ? LP_F32 : t->dtype;
	for (size_t i = 0; i < t->n; i++)
		encode(t->host, dt, i, uniform(r, lo, hi));
	return t;
}

static float *values(tensor *t)
{
	return t->host;
}

/* ---- running a case on one backend ---- */

static void upload(tensor *t, int act)
{
	size_t bytes = t->n * elem_size(t->dtype, act);
	if (t->role == OUT) {                   /* poison: all-ones bytes are NaN */
		void *p = lp_malloc(bytes);
		memset(p, 0xff, bytes);
		lp_upload(t->dev, p, bytes);
		free(p);
	} else if (t->dtype == ACT && act != LP_F32) {
		void *p = lp_malloc(bytes);
		for (size_t i = 0; i < t->n; i++)
			encode(p, act, i, values(t)[i]);
		lp_upload(t->dev, p, bytes);
		free(p);
	} else {
		lp_upload(t->dev, t->host, bytes);
	}
}

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

#ifdef LP_HAVE_CUDA
static void cuda_check(cudaError_t e, const char *call)
{
	if (e != cudaSuccess)
		lp_die("gpu-ops", "%s: %s", call, cudaGetErrorString(e));
}
#define CHECK(call) cuda_check((call), #call)
#endif

/* Time of one run in microseconds: the median over BATCHES batches of
 * REPS runs each. CUDA: events recorded on the legacy default stream,
 * which orders with the backend's (blocking) stream, so each pair brackets
 * exactly the batch's device work. CPU: wall clock (its ops are
 * synchronous). */
static double time_op(test_case *c)
{
	double t[BATCHES];
	for (int i = 0; i < WARMUP; i++)
		c->run(c);
	if (device == LP_DEVICE_CUDA) {
#ifdef LP_HAVE_CUDA
		cudaEvent_t e0, e1;
		CHECK(cudaEventCreate(&e0));
		CHECK(cudaEventCreate(&e1));
		for (int i = 0; i < BATCHES; i++) {
			CHECK(cudaEventRecord(e0, cudaStreamLegacy));
			for (int r = 0; r < REPS; r++)
				c->run(c);
			CHECK(cudaEventRecord(e1, cudaStreamLegacy));
			CHECK(cudaEventSynchronize(e1));
			float ms;
			CHECK(cudaEventElapsedTime(&ms, e0, e1));
			t[i] = ms * 1e3 / REPS;
		}
		CHECK(cudaEventDestroy(e0));
		CHECK(cudaEventDestroy(e1));
#endif
	} else {
		for (int i = 0; i < BATCHES; i++) {
			double t0 = now_us();
			for (int r = 0; r < REPS; r++)
				c->run(c);
			t[i] = (now_us() - t0) / REPS;
		}
	}
	qsort(t, BATCHES, sizeof(t[0]), cmp_double);
	return t[BATCHES / 2];
}

/* Allocate, upload (outputs poisoned), run, download the outputs into
 * res[side], optionally time, free. */
static double run_side(test_case *c, int act, int side, int timed)
{
	for (int i = 0; i < c->nt; i++) {
		tensor *t = &c->t[i];
		t->dev = lp_alloc(t->n * elem_size(t->dtype, act));
		upload(t, act);
	}
	c->run(c);
	for (int i = 0; i < c->nt; i++) {
		tensor *t = &c->t[i];
		if (t->role == IN)
			continue;
		size_t bytes = t->n * elem_size(t->dtype, act);
		t->res[side] = lp_malloc(bytes ? bytes : 1);
		t->res_dtype[side] = t->dtype == ACT ? act : t->dtype;
		lp_download(t->res[side], t->dev, bytes);
	}
	double us = timed ? time_op(c) : 0;
	for (int i = 0; i < c->nt; i++) {
		lp_free(c->t[i].dev);
		c->t[i].dev = NULL;
	}
	return us;
}

static void select_backend(enum lp_device dev_, int act)
{
	char err[256];
	if (lp_kernels_init(dev_, -1, act, err, sizeof(err)) != 0)
		lp_die(dev_ == LP_DEVICE_CUDA ? "--device cuda" : "--device cpu", "%s", err);
}

/* --device cpu, bf16 cases: the CPU's f32 outputs of activation type,
 * rounded to bf16 as a bf16 device would store them. */
static void round_outputs(test_case *c)
{
	for (int i = 0; i < c->nt; i++) {
		tensor *t = &c->t[i];
		if (t->role == IN || t->dtype != ACT)
			continue;
		uint16_t *h = lp_malloc(t->n * 2 + 2);
		for (size_t j = 0; j < t->n; j++)
			h[j] = lp_f32_to_bf16(((float *)t->res[1])[j]);
		free(t->res[1]);
		t->res[1] = h;
		t->res_dtype[1] = LP_BF16;
	}
}

/* ---- comparing ---- */

/* The spacing of bf16 values at magnitude x (x >= 0). */
static double bf16_ulp(double x)
{
	if (!(x >= 0x1p-126))
		return 0x1p-133;
	int e;
	frexp(x, &e);           /* x in [2^(e-1), 2^e) */
	return ldexp(1.0, e - 8);
}

/* Relative error of res[1] against res[0]; *bad counts elements that are
 * not finite (an unwritten NaN) unless both are the same infinity; *ulps
 * the largest difference in bf16 ulps when res[1] is bf16 (else 0).
 * Exact tensors: the fraction of elements whose bytes differ. */
static double compare(const tensor *t, double floor_frac, size_t *bad, double *ulps)
{
	*bad = 0;
	*ulps = 0;
	if (t->exact) {
		size_t sz = lp_dtype_size(t->res_dtype[0]), diff = 0;
		if (t->res_dtype[0] != t->res_dtype[1])
			return 1;
		for (size_t i = 0; i < t->n; i++)
			diff += memcmp((const char *)t->res[0] + i * sz,
					(const char *)t->res[1] + i * sz, sz) != 0;
		return t->n ? (double)diff / (double)t->n : 0;
	}
	double dd = 0, rr = 0;
	for (size_t i = 0; i < t->n; i++) {
		float r = decode(t->res[0], t->res_dtype[0], i);
		float g = decode(t->res[1], t->res_dtype[1], i);
		if (isinf(r) && g == r)
			continue;
		if (!isfinite(r) || !isfinite(g)) {
			++*bad;
			continue;
		}
		dd += ((double)g - r) * ((double)g - r);
		rr += (double)r * r;
	}
	if (t->res_dtype[1] == LP_BF16 && t->n) {
		double floor = sqrt(rr / (double)t->n) * floor_frac;
		for (size_t i = 0; i < t->n; i++) {
			float r = decode(t->res[0], t->res_dtype[0], i);
			float g = decode(t->res[1], t->res_dtype[1], i);
			if (!isfinite(r) || !isfinite(g))
				continue;
			double a = fabs((double)r), u = bf16_ulp(a > floor ? a : floor);
			double e = fabs((double)g - r) / u;
			if (e > *ulps)
				*ulps = e;
		}
	}
	return rr > 0 ? sqrt(dd / rr) : sqrt(dd);
}

static void add_row(test_case *c, double err, double ulps, double us, int ok)
{
	if (nrows == rows_cap)
		lp_grow((void **)&table, &rows_cap, nrows + 1, sizeof(*table));
	table_row *r = &table[nrows++];
	snprintf(r->op, sizeof(r->op), "%s", c->op);
	snprintf(r->shape, sizeof(r->shape), "%s", c->shape);
	snprintf(r->act, sizeof(r->act), "%s", dname(c->act));
	r->err = err;
	r->ulps = ulps;
	r->tol = c->tol;
	r->us = us;
	r->ok = ok;
	r->is_flops = c->flops > 0;
	if (r->is_flops) {
		r->rate = us > 0 ? c->flops / us / 1e6 : 0;         /* TFLOP/s */
	} else {
		double bytes = 0;
		for (int i = 0; i < c->nt; i++)
			bytes += (double)c->t[i].n * elem_size(c->t[i].dtype, c->act) *
				(c->t[i].role == INOUT ? 2 : 1);
		r->rate = us > 0 ? bytes / us / 1e3 : 0;            /* GB/s */
	}
}

static void free_case(test_case *c)
{
	for (int i = 0; i < c->nt; i++) {
		free(c->t[i].host);
		free(c->t[i].res[0]);
		free(c->t[i].res[1]);
	}
	free(c);
}

/* Run c on both backends, report one TAP line, record a table row, free c. */
static void check(test_case *c)
{
	if (only && strcmp(only, c->op)) {
		free_case(c);
		return;
	}
	/* bf16 runs: round the activation inputs so both sides read the same */
	if (c->act == LP_BF16)
		for (int i = 0; i < c->nt; i++)
			if (c->t[i].dtype == ACT && c->t[i].role != OUT)
				for (size_t j = 0; j < c->t[i].n; j++)
					values(&c->t[i])[j] = lp_bf16_to_f32(lp_f32_to_bf16(values(&c->t[i])[j]));

	select_backend(LP_DEVICE_CPU, LP_F32);
	run_side(c, LP_F32, 0, 0);
	double us;
	if (device == LP_DEVICE_CPU) {
		us = run_side(c, LP_F32, 1, 1);
		if (c->act == LP_BF16)
			round_outputs(c);
	} else {
		select_backend(device, c->act);
		us = run_side(c, c->act, 1, 1);
	}

	double worst = 0, worst_ulps = 0;
	size_t nbad = 0;
	int ulps_ok = 1;
	char diag[1024] = "";
	size_t dl = 0;
	for (int i = 0; i < c->nt; i++) {
		tensor *t = &c->t[i];
		if (t->role == IN)
			continue;
		size_t bad;
		double ulps, allowed = t->ulps > 0 ? t->ulps : c->ulps;
		double err = compare(t, c->floor, &bad, &ulps);
		nbad += bad;
		if (err > worst || isnan(err))
			worst = err;
		if (ulps > worst_ulps)
			worst_ulps = ulps;
		if (ulps > allowed)
			ulps_ok = 0;
		if (dl < sizeof(diag))
			dl += (size_t)snprintf(diag + dl, sizeof(diag) - dl, "#   %s: %s %.3g\n",
					t->name, t->exact ? "fraction of elements differing" :
					"relative error", err);
		if (ulps > 0 && dl < sizeof(diag))
			dl += (size_t)snprintf(diag + dl, sizeof(diag) - dl,
					"#   %s: worst element %.2f bf16 ulps (allowed %g)\n",
					t->name, ulps, allowed);
		if (bad && dl < sizeof(diag))
			dl += (size_t)snprintf(diag + dl, sizeof(diag) - dl,
					"#   %s: %zu of %zu elements not finite (unwritten?)\n",
					t->name, bad, t->n);
	}
	int ok = nbad == 0 && worst <= c->tol && ulps_ok;
	++tap_n;
	if (nbad)
		printf("not ok %d - %s %s act=%s: %zu elements not finite\n", tap_n,
				c->op, c->shape, dname(c->act), nbad);
	else if (c->act == LP_BF16)
		printf("%sok %d - %s %s act=%s: err %.3g (tol %.3g), %.2f ulps (allowed %g)\n",
				ok ? "" : "not ", tap_n, c->op, c->shape, dname(c->act), worst, c->tol,
				worst_ulps, c->ulps);
	else
		printf("%sok %d - %s %s act=%s: err %.3g %s %.3g\n", ok ? "" : "not ", tap_n,
				c->op, c->shape, dname(c->act), worst, ok ? "<=" : ">", c->tol);
	if (!ok) {
		tap_failed++;
		fputs(diag, stdout);
	}
	fflush(stdout);
	add_row(c, worst, worst_ulps, us, ok);
	free_case(c);
}

static double tol_for(int act, int gemm)
{
	return act == LP_BF16 ? 2e-2 : gemm ? 1e-4 : 1e-5;
}

/* ---- the ops ---- */

/* convert: random finite bit patterns of the source type plus edge values
 * (rounding ties, subnormals, overflow to inf); bits must match the CPU. */
static void run_convert(test_case *c)
{
	lp_convert(dev(c, "dst"), c->ddtype, dev(c, "src"), c->sdtype, c->n);
}

static const uint32_t f32_edges[] = {
	0x3f808000, 0x3f818000, 0x3f801000, 0x3f803000,     /* ties to bf16, to f16 */
	0x33000000, 0x33000001, 0x33400000, 0x33800000,     /* around f16's smallest subnormal */
	0x387fc000, 0x38800000, 0x477fe000, 0x477fefff,     /* f16 subnormal/normal edge, max */
	0x477ff000, 0x7f7fffff, 0x00000001, 0x00008000,     /* to inf; f32 subnormals */
	0x00018000, 0x80000000, 0xff7fffff, 0x3f800000,
};

static void test_convert(int sdtype, int ddtype, size_t n)
{
	test_case *c = new_case("convert", run_convert, LP_F32, 0, "n=%zu %s->%s", n,
			dname(sdtype), dname(ddtype));
	c->sdtype = sdtype;
	c->ddtype = ddtype;
	c->n = n;
	tensor *src = add(c, "src", IN, sdtype, n);
	for (size_t i = 0; i < n; i++) {
		uint32_t u = (uint32_t)lp_rng_next(&c->rng);
		if (sdtype == LP_F32) {
			if (i < sizeof(f32_edges) / sizeof(f32_edges[0]))
				u = f32_edges[i];
			else if ((u & 0x7f800000u) == 0x7f800000u)  /* no inf/NaN */
				u &= 0xbfffffffu;
			((uint32_t *)src->host)[i] = u;
		} else {
			uint16_t h = (uint16_t)u;
			uint16_t expmask = sdtype == LP_BF16 ? 0x7f80 : 0x7c00;
			if ((h & expmask) == expmask)   /* no inf/NaN */
				h &= 0xbfff;
			((uint16_t *)src->host)[i] = h;
		}
	}
	add(c, "dst", OUT, ddtype, n)->exact = 1;
	check(c);
}

static void run_embedding(test_case *c)
{
	lp_weight wte = { dev(c, "wte"), c->wdtype, c->V, c->C };
	lp_embedding_forward(dev(c, "out"), dev(c, "ids"), wte, c->N, c->C);
}

static void test_embedding(int act, int N, int C, int V, int wdtype)
{
	test_case *c = new_case("embedding", run_embedding, act, tol_for(act, 0),
			"N=%d C=%d V=%d wte=%s", N, C, V, dname(wdtype));
	c->N = N, c->C = C, c->V = V, c->wdtype = wdtype;
	fill(add(c, "wte", IN, wdtype, (size_t)V * C), &c->rng, -1, 1);
	int32_t *ids = add(c, "ids", IN, LP_I32, (size_t)N)->host;
	for (int n = 0; n < N; n++)
		ids[n] = (int32_t)lp_rng_below(&c->rng, (uint64_t)V);
	add(c, "out", OUT, ACT, (size_t)N * C);
	check(c);
}

static void run_rmsnorm(test_case *c)
{
	lp_weight w = { dev(c, "w"), c->wdtype, 1, c->C };
	lp_rmsnorm_forward(dev(c, "out"), dev(c, "rstd"), dev(c, "inp"), w, c->N, c->C, c->eps);
}

static void test_rmsnorm(int act, int N, int C, int wdtype)
{
	test_case *c = new_case("rmsnorm", run_rmsnorm, act, tol_for(act, 0),
			"N=%d C=%d w=%s", N, C, dname(wdtype));
	c->N = N, c->C = C, c->wdtype = wdtype, c->eps = 1e-6f;
	fill(add(c, "inp", IN, ACT, (size_t)N * C), &c->rng, -3, 3);
	fill(add(c, "w", IN, wdtype, (size_t)C), &c->rng, 0.5f, 1.5f);
	add(c, "out", OUT, ACT, (size_t)N * C);
	add(c, "rstd", OUT, LP_F32, (size_t)N);
	check(c);
}

static void run_matmul(test_case *c)
{
	lp_weight W = { dev(c, "W"), c->wdtype, c->OC, c->C };
	lp_matmul_forward(dev(c, "out"), dev(c, "inp"), W, c->N, c->C, c->OC, c->alpha, c->beta);
}

static void test_matmul(int act, int N, int C, int OC, int wdtype, float alpha, float beta)
{
	test_case *c = new_case("matmul", run_matmul, act, tol_for(act, 1),
			"N=%d C=%d OC=%d W=%s alpha=%g beta=%g", N, C, OC, dname(wdtype), alpha, beta);
	c->N = N, c->C = C, c->OC = OC, c->wdtype = wdtype, c->alpha = alpha, c->beta = beta;
	c->flops = 2.0 * N * C * OC;
	fill(add(c, "inp", IN, ACT, (size_t)N * C), &c->rng, -1, 1);
	fill(add(c, "W", IN, wdtype, (size_t)OC * C), &c->rng, -0.1f, 0.1f);
	tensor *out = add(c, "out", beta != 0 ? INOUT : OUT, ACT, (size_t)N * OC);
	if (beta != 0)
		fill(out, &c->rng, -1, 1);
	if (wdtype != act)      /* the device rounds the weight to bf16 first */
		c->ulps = 2, c->floor = 1;
	check(c);
}

static void run_rope(test_case *c)
{
	lp_rope_forward(dev(c, "x"), dev(c, "pos"), dev(c, "inv_freq"), c->N, c->H, c->D, c->factor);
}

static void test_rope(int act, int N, int nh, int D, float factor)
{
	test_case *c = new_case("rope", run_rope, act, tol_for(act, 0),
			"N=%d nh=%d D=%d factor=%g", N, nh, D, factor);
	c->N = N, c->H = nh, c->D = D, c->factor = factor;
	fill(add(c, "x", INOUT, ACT, (size_t)N * nh * D), &c->rng, -2, 2);
	int32_t *pos = add(c, "pos", IN, LP_I32, (size_t)N)->host;
	for (int n = 0; n < N; n++)
		pos[n] = (int32_t)lp_rng_below(&c->rng, 4096);
	float *f = add(c, "inv_freq", IN, LP_F32, (size_t)(D / 2))->host;
	for (int i = 0; i < D / 2; i++)
		f[i] = (float)pow(10000.0, -2.0 * i / D);
	check(c);
}

/* mask kinds for attention */
enum { NOMASK, RIGHTPAD, HOLES };

static void run_attention(test_case *c)
{
	setenv("LP_CUDA_ATTENTION", c->path, 1);
	lp_attention_forward(dev(c, "out"), dev(c, "lse"), dev(c, "q"), dev(c, "k"), dev(c, "v"),
			dev(c, "mask"), c->B, c->T, c->H, c->KVH, c->D, c->scale);
}

/* RIGHTPAD: batch b keeps its first len_b >= 1 positions; HOLES: each
 * position kept with probability 3/4, position 0 included, so some rows
 * see no key at all (out 0, lse -inf). */
static void test_attention(int act, int B, int T, int H, int KVH, int D, int maskkind,
		float scale)
{
	static const char *const mname[] = { "none", "right-pad", "holes" };
	test_case *c = new_case("attention", run_attention, act, tol_for(act, 0),
			"B=%d T=%d H=%d KVH=%d D=%d mask=%s scale=%g path=%s", B, T, H, KVH, D,
			mname[maskkind], scale, attn_path);
	c->B = B, c->T = T, c->H = H, c->KVH = KVH, c->D = D, c->scale = scale;
	c->path = attn_path;
	/* gemm: P is rounded to bf16 before P V, as flash attention does */
	if (!strcmp(attn_path, "gemm"))
		c->ulps = 2, c->floor = 1;
	c->flops = 2.0 * 2.0 * B * H * D * ((double)T * (T + 1) / 2);
	fill(add(c, "q", IN, ACT, (size_t)B * T * H * D), &c->rng, -1, 1);
	fill(add(c, "k", IN, ACT, (size_t)B * T * KVH * D), &c->rng, -1, 1);
	fill(add(c, "v", IN, ACT, (size_t)B * T * KVH * D), &c->rng, -1, 1);
	if (maskkind != NOMASK) {
		uint8_t *m = add(c, "mask", IN, LP_U8, (size_t)B * T)->host;
		for (int b = 0; b < B; b++) {
			int len = 1 + (int)lp_rng_below(&c->rng, (uint64_t)T);
			for (int s = 0; s < T; s++)
				m[(size_t)b * T + s] = maskkind == RIGHTPAD ? s < len
					: lp_rng_below(&c->rng, 4) != 0;
		}
	}
	add(c, "out", OUT, ACT, (size_t)B * T * H * D);
	add(c, "lse", OUT, LP_F32, (size_t)B * H * T);
	check(c);
}

static void run_attention_cached(test_case *c)
{
	lp_attention_cached(dev(c, "out"), dev(c, "q"), dev(c, "kcache"), dev(c, "vcache"),
			dev(c, "past"), dev(c, "cache_mask"), c->B, c->Tq, c->Tmax, c->H, c->KVH,
			c->D, c->scale);
}

/* Random past[b] in [0, Tmax - Tq]; with a mask, batch b is left-padded by
 * pad_b < past_b + 1 positions (their cache rows hold finite values, as
 * pad tokens' keys do). Cache positions past the filled end hold NaN: an
 * op that reads them fails. */
static void test_attention_cached(int act, int B, int Tq, int Tmax, int H, int KVH, int D,
		int masked)
{
	test_case *c = new_case("attention_cached", run_attention_cached, act, tol_for(act, 0),
			"B=%d Tq=%d Tmax=%d H=%d KVH=%d D=%d mask=%s", B, Tq, Tmax, H, KVH, D,
			masked ? "left-pad" : "none");
	c->B = B, c->Tq = Tq, c->Tmax = Tmax, c->H = H, c->KVH = KVH, c->D = D, c->scale = 0;
	fill(add(c, "q", IN, ACT, (size_t)B * Tq * H * D), &c->rng, -1, 1);
	size_t row = (size_t)KVH * D;
	tensor *kc = fill(add(c, "kcache", IN, ACT, (size_t)B * Tmax * row), &c->rng, -1, 1);
	tensor *vc = fill(add(c, "vcache", IN, ACT, (size_t)B * Tmax * row), &c->rng, -1, 1);
	int32_t *past = add(c, "past", IN, LP_I32, (size_t)B)->host;
	uint8_t *m = masked ? add(c, "cache_mask", IN, LP_U8, (size_t)B * Tmax)->host : NULL;
	double keys = 0;
	for (int b = 0; b < B; b++) {
		past[b] = (int32_t)lp_rng_below(&c->rng, (uint64_t)(Tmax - Tq + 1));
		int pad = m ? (int)lp_rng_below(&c->rng, (uint64_t)past[b] + 1) : 0;
		for (int s = 0; s < Tmax; s++) {
			if (m)
				m[(size_t)b * Tmax + s] = s >= pad;
			if (s >= past[b] + Tq)
				for (size_t j = 0; j < row; j++) {
					values(kc)[((size_t)b * Tmax + s) * row + j] = NAN;
					values(vc)[((size_t)b * Tmax + s) * row + j] = NAN;
				}
		}
		keys += (double)Tq * past[b] + (double)Tq * (Tq + 1) / 2;
	}
	c->flops = 2.0 * 2.0 * H * D * keys;
	add(c, "out", OUT, ACT, (size_t)B * Tq * H * D);
	check(c);
}

static void run_kv_store(test_case *c)
{
	lp_kv_store(dev(c, "kcache"), dev(c, "vcache"), dev(c, "k"), dev(c, "v"), dev(c, "past"),
			c->B, c->Tq, c->Tmax, c->KVH, c->D);
}

static void test_kv_store(int act, int B, int Tq, int Tmax, int KVH, int D)
{
	test_case *c = new_case("kv_store", run_kv_store, act, tol_for(act, 0),
			"B=%d Tq=%d Tmax=%d KVH=%d D=%d", B, Tq, Tmax, KVH, D);
	c->B = B, c->Tq = Tq, c->Tmax = Tmax, c->KVH = KVH, c->D = D;
	fill(add(c, "kcache", INOUT, ACT, (size_t)B * Tmax * KVH * D), &c->rng, -1, 1);
	fill(add(c, "vcache", INOUT, ACT, (size_t)B * Tmax * KVH * D), &c->rng, -1, 1);
	fill(add(c, "k", IN, ACT, (size_t)B * Tq * KVH * D), &c->rng, -1, 1);
	fill(add(c, "v", IN, ACT, (size_t)B * Tq * KVH * D), &c->rng, -1, 1);
	int32_t *past = add(c, "past", IN, LP_I32, (size_t)B)->host;
	for (int b = 0; b < B; b++)
		past[b] = (int32_t)lp_rng_below(&c->rng, (uint64_t)(Tmax - Tq + 1));
	check(c);
}

static void run_swiglu(test_case *c)
{
	lp_swiglu_forward(dev(c, "out"), dev(c, "gate"), dev(c, "up"), c->N, c->I);
}

static void test_swiglu(int act, int N, int I)
{
	test_case *c = new_case("swiglu", run_swiglu, act, tol_for(act, 0), "N=%d I=%d", N, I);
	c->N = N, c->I = I;
	fill(add(c, "gate", IN, ACT, (size_t)N * I), &c->rng, -6, 6);
	fill(add(c, "up", IN, ACT, (size_t)N * I), &c->rng, -2, 2);
	add(c, "out", OUT, ACT, (size_t)N * I);
	check(c);
}

static void run_add(test_case *c)
{
	lp_add_inplace(dev(c, "x"), dev(c, "y"), c->n);
}

static void test_add(int act, size_t n)
{
	test_case *c = new_case("add_inplace", run_add, act, tol_for(act, 0), "n=%zu", n);
	c->n = n;
	fill(add(c, "x", INOUT, ACT, n), &c->rng, -2, 2);
	fill(add(c, "y", IN, ACT, n), &c->rng, -2, 2);
	check(c);
}

static void run_scale(test_case *c)
{
	lp_scale_inplace(dev(c, "x"), c->scale, c->n);
}

static void test_scale(int act, size_t n, float s)
{
	test_case *c = new_case("scale_inplace", run_scale, act, tol_for(act, 0), "n=%zu s=%g", n, s);
	c->n = n, c->scale = s;
	fill(add(c, "x", INOUT, ACT, n), &c->rng, -2, 2);
	check(c);
}

static void run_cross_entropy(test_case *c)
{
	void *logits = dev(c, "logits");
	lp_cross_entropy(dev(c, "losses"), c->alias ? logits : dev(c, "dlogits"), logits,
			dev(c, "targets"), c->N, c->V, c->scale);
}

/* dl: 0 no dlogits, 1 separate dlogits, 2 dlogits written over logits.
 * About one row in five is ignored (-100). */
static void test_cross_entropy(int act, int N, int V, int dl)
{
	static const char *const dname_[] = { "none", "separate", "in-place" };
	test_case *c = new_case("cross_entropy", run_cross_entropy, act, tol_for(act, 0),
			"N=%d V=%d dlogits=%s", N, V, dname_[dl]);
	c->N = N, c->V = V, c->alias = dl == 2;
	fill(add(c, "logits", dl == 2 ? INOUT : IN, ACT, (size_t)N * V), &c->rng, -4, 4);
	int32_t *tg = add(c, "targets", IN, LP_I32, (size_t)N)->host;
	int counted = 0;
	for (int n = 0; n < N; n++) {
		tg[n] = lp_rng_below(&c->rng, 5) == 0 ? -100 : (int32_t)lp_rng_below(&c->rng, (uint64_t)V);
		counted += tg[n] != -100;
	}
	c->scale = 1.0f / (float)(counted ? counted : 1);
	add(c, "losses", OUT, LP_F32, (size_t)N);
	if (dl == 1)
		add(c, "dlogits", OUT, ACT, (size_t)N * V);
	check(c);
}

/* ---- backward ops and the optimizer ---- */

/* Round an activation tensor's inputs to bf16 now, when the case is bf16,
 * so that values derived from it on the host (a forward's outputs) see
 * what both backends will read. */
static void round_act(test_case *c, tensor *t)
{
	if (c->act == LP_BF16)
		for (size_t j = 0; j < t->n; j++)
			values(t)[j] = lp_bf16_to_f32(lp_f32_to_bf16(values(t)[j]));
}

static void run_embedding_backward(test_case *c)
{
	lp_embedding_backward(dev(c, "dwte"), dev(c, "dout"), dev(c, "ids"), c->N, c->C);
}

/* ids from a small vocabulary, so rows repeat; the sum of each id's rows
 * in row order is defined, so the result must match byte for byte. */
static void test_embedding_backward(int act, int N, int C, int V)
{
	test_case *c = new_case("embedding_backward", run_embedding_backward, act, 0,
			"N=%d C=%d V=%d", N, C, V);
	c->N = N, c->C = C, c->V = V;
	fill(add(c, "dout", IN, ACT, (size_t)N * C), &c->rng, -1, 1);
	int32_t *ids = add(c, "ids", IN, LP_I32, (size_t)N)->host;
	for (int n = 0; n < N; n++)
		ids[n] = (int32_t)lp_rng_below(&c->rng, (uint64_t)V);
	tensor *dw = fill(add(c, "dwte", INOUT, LP_F32, (size_t)V * C), &c->rng, -1, 1);
	dw->exact = 1;
	check(c);
}

static void run_rmsnorm_backward(test_case *c)
{
	lp_weight w = { dev(c, "w"), c->wdtype, 1, c->C };
	lp_rmsnorm_backward(dev(c, "dinp"), dev(c, "dw"), dev(c, "dout"), dev(c, "inp"), w,
			dev(c, "rstd"), c->N, c->C, c->accumulate);
}

static void test_rmsnorm_backward(int act, int N, int C, int wdtype, int accumulate, int with_dw)
{
	test_case *c = new_case("rmsnorm_backward", run_rmsnorm_backward, act,
			act == LP_BF16 ? 2e-2 : C > 1000 ? 1e-4 : 1e-5,
			"N=%d C=%d w=%s accumulate=%d dw=%d", N, C, dname(wdtype), accumulate, with_dw);
	c->N = N, c->C = C, c->wdtype = wdtype, c->accumulate = accumulate;
	tensor *inp = fill(add(c, "inp", IN, ACT, (size_t)N * C), &c->rng, -3, 3);
	round_act(c, inp);
	fill(add(c, "w", IN, wdtype, (size_t)C), &c->rng, 0.5f, 1.5f);
	fill(add(c, "dout", IN, ACT, (size_t)N * C), &c->rng, -1, 1);
	float *rstd = add(c, "rstd", IN, LP_F32, (size_t)N)->host;
	for (int n = 0; n < N; n++) {
		double ss = 0;
		for (int k = 0; k < C; k++)
			ss += (double)values(inp)[(size_t)n * C + k] * values(inp)[(size_t)n * C + k];
		rstd[n] = (float)(1.0 / sqrt(ss / C + 1e-6));
	}
	tensor *dinp = add(c, "dinp", accumulate ? INOUT : OUT, ACT, (size_t)N * C);
	if (accumulate)
		fill(dinp, &c->rng, -1, 1);
	if (with_dw)
		fill(add(c, "dw", INOUT, LP_F32, (size_t)C), &c->rng, -1, 1);
	c->ulps = 2;
	check(c);
}

static void run_matmul_backward(test_case *c)
{
	lp_weight W = { dev(c, "W"), c->wdtype, c->OC, c->C };
	lp_matmul_backward(dev(c, "dinp"), dev(c, "dW"), dev(c, "dout"), dev(c, "inp"), W, c->N,
			c->C, c->OC, c->alpha, c->beta);
}

/* with: 1 dinp, 2 dW, 3 both */
static void test_matmul_backward(int act, int N, int C, int OC, int wdtype, float alpha,
		float beta, int with)
{
	test_case *c = new_case("matmul_backward", run_matmul_backward, act, tol_for(act, 1),
			"N=%d C=%d OC=%d W=%s alpha=%g beta=%g out=%s", N, C, OC, dname(wdtype), alpha,
			beta, with == 1 ? "dinp" : with == 2 ? "dW" : "dinp+dW");
	c->N = N, c->C = C, c->OC = OC, c->wdtype = wdtype, c->alpha = alpha, c->beta = beta;
	c->flops = 2.0 * N * C * OC * ((with & 1) + (with >> 1 & 1));
	fill(add(c, "dout", IN, ACT, (size_t)N * OC), &c->rng, -1, 1);
	fill(add(c, "inp", IN, ACT, (size_t)N * C), &c->rng, -1, 1);
	fill(add(c, "W", IN, wdtype, (size_t)OC * C), &c->rng, -0.1f, 0.1f);
	if (with & 1) {
		tensor *d = add(c, "dinp", beta != 0 ? INOUT : OUT, ACT, (size_t)N * C);
		if (beta != 0)
			fill(d, &c->rng, -1, 1);
	}
	if (with & 2)
		fill(add(c, "dW", INOUT, LP_F32, (size_t)OC * C), &c->rng, -1, 1);
	if (wdtype != act)      /* the device rounds the weight to bf16 first */
		c->ulps = 2, c->floor = 1;
	check(c);
}

static void run_rope_backward(test_case *c)
{
	lp_rope_backward(dev(c, "x"), dev(c, "pos"), dev(c, "inv_freq"), c->N, c->H, c->D, c->factor);
}

static void test_rope_backward(int act, int N, int nh, int D, float factor)
{
	test_case *c = new_case("rope_backward", run_rope_backward, act, tol_for(act, 0),
			"N=%d nh=%d D=%d factor=%g", N, nh, D, factor);
	c->N = N, c->H = nh, c->D = D, c->factor = factor;
	fill(add(c, "x", INOUT, ACT, (size_t)N * nh * D), &c->rng, -2, 2);
	int32_t *pos = add(c, "pos", IN, LP_I32, (size_t)N)->host;
	for (int n = 0; n < N; n++)
		pos[n] = (int32_t)lp_rng_below(&c->rng, 4096);
	float *f = add(c, "inv_freq", IN, LP_F32, (size_t)(D / 2))->host;
	for (int i = 0; i < D / 2; i++)
		f[i] = (float)pow(10000.0, -2.0 * i / D);
	check(c);
}

static void run_attention_backward(test_case *c)
{
	setenv("LP_CUDA_ATTENTION", c->path, 1);
	lp_attention_backward(dev(c, "dq"), dev(c, "dk"), dev(c, "dv"), dev(c, "dout"),
			dev(c, "out"), dev(c, "lse"), dev(c, "q"), dev(c, "k"), dev(c, "v"),
			dev(c, "mask"), c->B, c->T, c->H, c->KVH, c->D, c->scale);
}

/* out and lse come from the CPU forward on the same (rounded) inputs, as
 * in training. */
static void test_attention_backward(int act, int B, int T, int H, int KVH, int D, int maskkind,
		float scale)
{
	static const char *const mname[] = { "none", "right-pad", "holes" };
	test_case *c = new_case("attention_backward", run_attention_backward, act,
			act == LP_BF16 ? 2e-2 : 1e-4,
			"B=%d T=%d H=%d KVH=%d D=%d mask=%s scale=%g path=%s", B, T, H, KVH, D,
			mname[maskkind], scale, attn_path);
	c->B = B, c->T = T, c->H = H, c->KVH = KVH, c->D = D, c->scale = scale;
	c->path = attn_path;
	c->flops = 2.5 * 2.0 * 2.0 * B * H * D * ((double)T * (T + 1) / 2);
	size_t nq = (size_t)B * T * H * D, nk = (size_t)B * T * KVH * D;
	tensor *q = fill(add(c, "q", IN, ACT, nq), &c->rng, -1, 1);
	tensor *k = fill(add(c, "k", IN, ACT, nk), &c->rng, -1, 1);
	tensor *v = fill(add(c, "v", IN, ACT, nk), &c->rng, -1, 1);
	round_act(c, q), round_act(c, k), round_act(c, v);
	uint8_t *m = NULL;
	if (maskkind != NOMASK) {
		m = add(c, "mask", IN, LP_U8, (size_t)B * T)->host;
		for (int b = 0; b < B; b++) {
			int len = 1 + (int)lp_rng_below(&c->rng, (uint64_t)T);
			for (int s2 = 0; s2 < T; s2++)
				m[(size_t)b * T + s2] = maskkind == RIGHTPAD ? s2 < len
					: lp_rng_below(&c->rng, 4) != 0;
		}
	}
	tensor *out = add(c, "out", IN, ACT, nq);
	float *lse = add(c, "lse", IN, LP_F32, (size_t)B * H * T)->host;
	select_backend(LP_DEVICE_CPU, LP_F32);
	lp_attention_forward(values(out), lse, values(q), values(k), values(v), m, B, T, H, KVH,
			D, scale);
	round_act(c, out);
	fill(add(c, "dout", IN, ACT, nq), &c->rng, -1, 1);
	add(c, "dq", OUT, ACT, nq);
	add(c, "dk", OUT, ACT, nk);
	add(c, "dv", OUT, ACT, nk);
	/* gemm: P and dS are rounded to bf16 before the products that read them */
	c->ulps = 2;
	if (!strcmp(attn_path, "gemm"))
		c->ulps = 4, c->floor = 1;
	check(c);
}

static void run_swiglu_backward(test_case *c)
{
	lp_swiglu_backward(dev(c, "dgate"), dev(c, "dup"), dev(c, "dout"), dev(c, "gate"),
			dev(c, "up"), c->N, c->I);
}

static void test_swiglu_backward(int act, int N, int I)
{
	test_case *c = new_case("swiglu_backward", run_swiglu_backward, act, tol_for(act, 0),
			"N=%d I=%d", N, I);
	c->N = N, c->I = I;
	fill(add(c, "dout", IN, ACT, (size_t)N * I), &c->rng, -1, 1);
	fill(add(c, "gate", IN, ACT, (size_t)N * I), &c->rng, -6, 6);
	fill(add(c, "up", IN, ACT, (size_t)N * I), &c->rng, -2, 2);
	add(c, "dgate", OUT, ACT, (size_t)N * I);
	add(c, "dup", OUT, ACT, (size_t)N * I);
	check(c);
}

static void run_dropout_forward(test_case *c)
{
	lp_dropout_forward(dev(c, "out"), dev(c, "inp"), c->p, c->seed64, c->n);
}

static void run_dropout_backward(test_case *c)
{
	lp_dropout_backward(dev(c, "out"), dev(c, "inp"), c->p, c->seed64, c->n);
}

/* The mask is defined bit for bit: f32 outputs must match bytes; bf16
 * outputs are one rounding of the same f32 product. */
static void test_dropout(int act, int backward, size_t n, float p)
{
	test_case *c = new_case(backward ? "dropout_backward" : "dropout_forward",
			backward ? run_dropout_backward : run_dropout_forward, act, tol_for(act, 0),
			"n=%zu p=%g", n, p);
	c->n = n, c->p = p, c->seed64 = lp_rng_next(&c->rng);
	fill(add(c, "inp", IN, ACT, n), &c->rng, -2, 2);
	add(c, "out", OUT, ACT, n)->exact = act == LP_F32;
	check(c);
}

static void run_sumsq(test_case *c)
{
	lp_sumsq_f32(dev(c, "out"), dev(c, "x"), c->n);
}

/* out = 1.5 + sum x^2; chunked double sums: one f32 rounding apart */
static void test_sumsq(size_t n)
{
	test_case *c = new_case("sumsq_f32", run_sumsq, LP_F32, 3e-7, "n=%zu", n);
	c->n = n;
	fill(add(c, "x", IN, LP_F32, n), &c->rng, -1, 1);
	((float *)add(c, "out", INOUT, LP_F32, 1)->host)[0] = 1.5f;
	check(c);
}

static void run_scale_f32(test_case *c)
{
	lp_scale_f32(dev(c, "x"), c->scale, c->n);
}

static void test_scale_f32(size_t n, float s)
{
	test_case *c = new_case("scale_f32", run_scale_f32, LP_F32, 0, "n=%zu s=%g", n, s);
	c->n = n, c->scale = s;
	fill(add(c, "x", INOUT, LP_F32, n), &c->rng, -2, 2)->exact = 1;
	check(c);
}

static void run_adamw(test_case *c)
{
	lp_adamw_f32(dev(c, "param"), dev(c, "grad"), dev(c, "m"), dev(c, "v"), c->n, c->lr,
			c->beta1, c->beta2, c->adam_eps, c->wd, c->step);
}

/* bit for bit: the same f32 operations in the same order, no contraction */
static void test_adamw(size_t n, double lr, double beta1, double beta2, double wd, int step)
{
	test_case *c = new_case("adamw_f32", run_adamw, LP_F32, 0,
			"n=%zu lr=%g betas=%g,%g wd=%g t=%d", n, lr, beta1, beta2, wd, step);
	c->n = n, c->lr = lr, c->beta1 = beta1, c->beta2 = beta2, c->adam_eps = 1e-8;
	c->wd = wd, c->step = step;
	fill(add(c, "param", INOUT, LP_F32, n), &c->rng, -1, 1)->exact = 1;
	fill(add(c, "grad", IN, LP_F32, n), &c->rng, -0.1f, 0.1f);
	fill(add(c, "m", INOUT, LP_F32, n), &c->rng, -0.01f, 0.01f)->exact = 1;
	fill(add(c, "v", INOUT, LP_F32, n), &c->rng, 0, 1e-4f)->exact = 1;
	check(c);
}

static void run_adamw_flat(test_case *c)
{
	const lp_adamw_segment seg[] = {
		{ 0, c->n / 3, c->wd }, { c->n / 3, 1, 0 }, { c->n / 2, c->n - c->n / 2, c->wd * 10 },
	};
	lp_adamw_flat(dev(c, "param"), dev(c, "grad"), dev(c, "m"), dev(c, "v"), seg, 3, c->lr,
			c->beta1, c->beta2, c->adam_eps, c->step, dev(c, "work"), c->wdtype);
}

/* segments with their own decays and a gap, and the working copy: bit for
 * bit the CPU's */
static void test_adamw_flat(size_t n, int wdtype)
{
	test_case *c = new_case("adamw_flat", run_adamw_flat, LP_F32, 0, "n=%zu work=%s", n,
			dname(wdtype));
	c->n = n, c->lr = 1e-3, c->beta1 = 0.9, c->beta2 = 0.999, c->adam_eps = 1e-8;
	c->wd = 0.01, c->step = 2, c->wdtype = wdtype;
	fill(add(c, "param", INOUT, LP_F32, n), &c->rng, -1, 1)->exact = 1;
	fill(add(c, "grad", IN, LP_F32, n), &c->rng, -0.1f, 0.1f);
	fill(add(c, "m", INOUT, LP_F32, n), &c->rng, -0.01f, 0.01f)->exact = 1;
	fill(add(c, "v", INOUT, LP_F32, n), &c->rng, 0, 1e-4f)->exact = 1;
	add(c, "work", INOUT, wdtype, n)->exact = 1;    /* the gap keeps its bytes */
	check(c);
}

static void test_backward(int act)
{
	static const int wtypes[] = { LP_F32, LP_BF16, LP_F16 };
	test_embedding_backward(act, 37, 67, 5);
	test_embedding_backward(act, 300, 130, 1000);
	for (int i = 0; i < 3; i++) {
		int w = wtypes[i];
		test_rmsnorm_backward(act, 33, 1000, w, 0, 1);
		test_matmul_backward(act, 37, 67, 129, w, 1, 0, 3);
		test_matmul_backward(act, 64, 96, 80, w, 0.5f, 1, 1);
	}
	test_rmsnorm_backward(act, 1, 7, LP_F32, 1, 0);
	test_rmsnorm_backward(act, 200, 4099, LP_BF16, 1, 1);
	test_matmul_backward(act, 5, 4099, 33, LP_BF16, 1, 0, 2);
	test_matmul_backward(act, 130, 64, 8, LP_F32, 4, 1, 3);     /* a LoRA B, scale 4 */
	test_rope_backward(act, 37, 3, 16, 1);
	test_rope_backward(act, 50, 4, 130, 1.25f);
	for (int pi = 0; pi < 2; pi++) {
		attn_path = pi ? "flash" : "gemm";
		test_attention_backward(act, 1, 1, 1, 1, 16, NOMASK, 0);
		test_attention_backward(act, 2, 37, 4, 2, 32, RIGHTPAD, 0);
		test_attention_backward(act, 3, 100, 6, 1, 64, HOLES, 0.1f);
		test_attention_backward(act, 2, 33, 3, 3, 80, NOMASK, 0);
		test_attention_backward(act, 1, 70, 8, 2, 128, RIGHTPAD, 0);
		test_attention_backward(act, 1, 40, 2, 1, 256, NOMASK, 0);
	}
	test_swiglu_backward(act, 37, 129);
	test_swiglu_backward(act, 1, 1);
	for (int b = 0; b < 2; b++) {
		test_dropout(act, b, 100003, 0.05f);
		test_dropout(act, b, 1001, 0.5f);
		test_dropout(act, b, 17, 0);
		test_dropout(act, b, 17, 1);
	}
	if (act == LP_F32) {
		test_sumsq(1);
		test_sumsq(100003);
		test_scale_f32(100003, 0.37f);
		test_adamw(100003, 1e-3, 0.9, 0.999, 0.01, 1);
		test_adamw(4099, 2e-4, 0.9, 0.95, 0, 17);
		test_adamw(1000, 1e-2, 0.3, 0.99, 0.1, 3);       /* the lerp's other branch */
		test_adamw_flat(100003, LP_BF16);
		test_adamw_flat(4099, LP_F16);
	}
	if (quick)
		return;
	/* a LLaMA-7B layer at 4096 tokens (micro-batch 8 x 512) */
	test_rmsnorm_backward(act, 4096, 4096, LP_BF16, 1, 0);
	test_matmul_backward(act, 4096, 4096, 4096, LP_BF16, 1, 0, 1);
	test_matmul_backward(act, 4096, 11008, 4096, LP_BF16, 1, 0, 1);
	test_matmul_backward(act, 4096, 4096, 8, LP_F32, 1, 0, 3);  /* LoRA A: dA and dx */
	test_rope_backward(act, 4096, 32, 128, 1);
	for (int pi = 0; pi < 2; pi++) {
		attn_path = pi ? "flash" : "gemm";
		test_attention_backward(act, 8, 512, 32, 32, 128, NOMASK, 0);
	}
	test_swiglu_backward(act, 4096, 11008);
	test_dropout(act, 0, (size_t)4096 * 4096, 0.05f);
	test_embedding_backward(act, 4096, 4096, 32000);
	if (act == LP_F32) {
		test_sumsq((size_t)20 << 20);
		test_adamw((size_t)20 << 20, 2e-4, 0.9, 0.999, 0.01, 5);
	}
}

/* ---- the list ---- */

static void test_all(int act)
{
	static const int wtypes[] = { LP_F32, LP_BF16, LP_F16 };
	for (int i = 0; i < 3; i++) {
		int w = wtypes[i];
		test_embedding(act, 37, 67, 101, w);
		test_embedding(act, 1, 8, 3, w);
		test_rmsnorm(act, 1, 7, w);
		test_rmsnorm(act, 33, 1000, w);
		test_matmul(act, 1, 64, 64, w, 1, 0);
		test_matmul(act, 37, 67, 129, w, 1, 0);
		test_matmul(act, 5, 4099, 33, w, 1, 0);
		test_matmul(act, 64, 96, 80, w, 0.5f, 1);
	}
	test_rmsnorm(act, 37, 4099, LP_BF16);

	test_rope(act, 37, 3, 16, 1);
	test_rope(act, 5, 2, 2, 1.25f);
	test_rope(act, 50, 4, 130, 1);

	for (int pi = 0; pi < 2; pi++) {
		attn_path = pi ? "flash" : "gemm";
		test_attention(act, 1, 1, 1, 1, 16, NOMASK, 0);
		test_attention(act, 2, 37, 4, 2, 32, RIGHTPAD, 0);
		test_attention(act, 3, 100, 6, 1, 64, HOLES, 0.1f);
		test_attention(act, 2, 33, 3, 3, 80, NOMASK, 0);
		test_attention(act, 2, 17, 4, 4, 24, RIGHTPAD, 0);
		test_attention(act, 1, 50, 2, 1, 256, NOMASK, 0);
	}

	test_attention_cached(act, 3, 1, 64, 4, 2, 32, 1);
	test_attention_cached(act, 2, 5, 100, 6, 3, 64, 1);
	test_attention_cached(act, 1, 7, 7, 2, 1, 16, 0);
	test_attention_cached(act, 2, 3, 40, 8, 8, 128, 0);
	test_kv_store(act, 3, 1, 64, 2, 32);
	test_kv_store(act, 2, 5, 100, 3, 64);
	test_kv_store(act, 1, 7, 7, 1, 16);

	test_swiglu(act, 37, 129);
	test_swiglu(act, 1, 1);
	test_add(act, 1);
	test_add(act, 100003);
	test_scale(act, 1, 0.37f);
	test_scale(act, 100003, 0.37f);

	test_cross_entropy(act, 5, 37, 1);
	test_cross_entropy(act, 8, 1000, 0);
	test_cross_entropy(act, 16, 32000, 2);
	test_cross_entropy(act, 33, 4097, 1);

	test_backward(act);
	if (quick)
		return;
	/* a LLaMA-7B layer at 1024 tokens (B=2, T=512): the shapes to time */
	test_embedding(act, 1024, 4096, 32000, LP_BF16);
	test_rmsnorm(act, 1024, 4096, LP_BF16);
	test_matmul(act, 1024, 4096, 4096, LP_BF16, 1, 0);
	test_matmul(act, 1024, 4096, 11008, LP_BF16, 1, 0);
	test_matmul(act, 1024, 11008, 4096, LP_BF16, 1, 0);
	test_matmul(act, 1024, 4096, 4096, LP_F16, 1, 0);
	test_rope(act, 1024, 32, 128, 1);
	for (int pi = 0; pi < 2; pi++) {
		attn_path = pi ? "flash" : "gemm";
		test_attention(act, 2, 512, 32, 8, 128, RIGHTPAD, 0);
		test_attention(act, 8, 512, 32, 32, 128, NOMASK, 0);
	}
	test_attention_cached(act, 4, 1, 2048, 32, 8, 128, 1);
	test_kv_store(act, 4, 1, 2048, 8, 128);
	test_swiglu(act, 1024, 11008);
	test_add(act, (size_t)1024 * 4096);
	test_scale(act, (size_t)1024 * 4096, 0.37f);
	test_cross_entropy(act, 1024, 49953, 1);
}

static void print_table(void)
{
	printf("# %-18s %-58s %-5s %-9s %-7s %6s %11s %9s\n", "op", "shape", "act", "err", "tol",
			"ulps", "median_us", "rate");
	for (size_t i = 0; i < nrows; i++) {
		table_row *r = &table[i];
		printf("# %-18s %-58s %-5s %-9.2e %-7.0e %6.2f %11.1f %7.2f %s%s\n", r->op, r->shape,
				r->act, r->err, r->tol, r->ulps, r->us, r->rate,
				r->is_flops ? "TFLOP/s" : "GB/s", r->ok ? "" : "  FAILED");
	}
}

static void usage(FILE *f)
{
	fprintf(f, "usage: gpu-ops [--device cuda|cpu] [--quick] [--op NAME] [--seed N]\n"
			"Compare the device backend's ops, forward and backward, with the CPU backend (TAP).\n"
			"  -d, --device   backend under test (default cuda; cpu checks the harness)\n"
			"  -q, --quick    skip the large (LLaMA-7B layer) shapes\n"
			"      --op NAME  only this op (convert, matmul, attention, ...)\n"
			"      --seed N   random inputs from seed N (default 1)\n");
}

int main(int argc, char **argv)
{
	lp_init(argv[0]);
	static const struct option opts[] = {
		{ "device", required_argument, NULL, 'd' },
		{ "quick", no_argument, NULL, 'q' },
		{ "op", required_argument, NULL, 'o' },
		{ "seed", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "d:q", opts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			if (!strcmp(optarg, "cuda"))
				device = LP_DEVICE_CUDA;
			else if (!strcmp(optarg, "cpu"))
				device = LP_DEVICE_CPU;
			else
				lp_usage_error("--device: '%s' is not cuda or cpu", optarg);
			break;
		case 'q': quick = 1; break;
		case 'o': only = optarg; break;
		case 's': seed = (uint64_t)lp_parse_int("--seed", optarg, 0, INT64_MAX); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc)
		lp_usage_error("unexpected argument '%s'", argv[optind]);

	char err[256];
	if (lp_kernels_init(LP_DEVICE_CPU, -1, LP_F32, err, sizeof(err)) != 0)
		lp_die("gpu-ops", "cpu backend: %s", err);
	printf("# reference: %s\n", lp_kernels_describe());
	if (lp_kernels_init(device, -1, LP_F32, err, sizeof(err)) != 0)
		lp_die(device == LP_DEVICE_CUDA ? "--device cuda" : "--device cpu", "%s", err);
	printf("# under test: %s\n", lp_kernels_describe());
	fflush(stdout);

	static const int convert_types[] = { LP_F32, LP_BF16, LP_F16 };
	for (int s = 0; s < 3; s++)
		for (int d = 0; d < 3; d++)
			test_convert(convert_types[s], convert_types[d], 100003);
	test_all(LP_F32);
	test_all(LP_BF16);      /* on --device cpu: outputs rounded to bf16 (round_outputs) */

	print_table();
	printf("1..%d\n", tap_n);
	lp_kernels_shutdown();
	free(table);
	return tap_failed != 0;
}
