/* kernels_cpu.c: the CPU backend of kernels.h against double-precision
 * references written here.
 *
 * Every op runs on random inputs (fresh for each check) and is compared with
 * a naive double implementation; every backward is compared with that
 * reference's analytic gradient and with central finite differences of the
 * double forward (which checks the analytic reference too).
 *
 * Error measure: err = max_i |got_i - ref_i| / max_i |ref_i| (normwise
 * relative). Bounds, from f32 rounding (unit 6e-8) times the length of the
 * sums involved:
 *   exact ops (conversions, copies, embedding lookup, kv_store, add, scale,
 *   dropout)                                                   0 (bitwise)
 *   elementwise f32 ops, rmsnorm, rope, softmax rows,
 *   cached attention against full attention                    1e-6
 *   GEMM, attention forward, sumsq, AdamW                     1e-5
 *   backward ops against the analytic double reference       1e-5
 *   backward ops against finite differences (h ~ 1e-6)        1e-5
 *   analytic double reference against finite differences     1e-7
 *
 *   kernels_cpu                   run the tests (TAP)
 *   kernels_cpu torch-dump DIR    write inputs and outputs of some ops to DIR
 *                                 for t/ref/kernels_torch.py (t0300)
 *
 * Output: TAP lines, plus "# digest NAME HASH" lines hashing the bytes of
 * every kernel result. t0300-kernels-cpu.t runs this with 1, 2 and 3
 * threads and requires identical output: results must not depend on the
 * thread count. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include "base/common.h"
#include "base/half.h"
#include "kernels.h"
#include "tap.h"

static lp_rng rng;

/* ---- buffers: tracked, released at the end of each test ---- */

static struct { void *p; int dev; } mem[512];
static int nmem;

static void *track(void *p, int dev)
{
	if (nmem == (int)(sizeof(mem) / sizeof(mem[0])))
		lp_die("test", "too many buffers");
	mem[nmem].p = p;
	mem[nmem++].dev = dev;
	return p;
}

static float *fnew(size_t n) { return track(lp_alloc(n * sizeof(float)), 1); }
static void *bnew(size_t bytes) { return track(lp_alloc(bytes), 1); }
static double *dnew(size_t n) { return track(lp_calloc(n ? n : 1, sizeof(double)), 0); }

static void release(void)
{
	while (nmem > 0) {
		nmem--;
		if (mem[nmem].dev)
			lp_free(mem[nmem].p);
		else
			free(mem[nmem].p);
	}
}

/* ---- random data ---- */

static double urand(void)    /* uniform in [-1, 1) */
{
	return (double)(lp_rng_next(&rng) >> 11) * 0x1p-52 - 1.0;
}

static float *frand(size_t n, double scale)
{
	float *x = fnew(n);
	for (size_t i = 0; i < n; i++)
		x[i] = (float)(urand() * scale);
	return x;
}

static double *dcopy(const float *x, size_t n)
{
	double *d = dnew(n);
	for (size_t i = 0; i < n; i++)
		d[i] = x[i];
	return d;
}

static float *fclone(const float *x, size_t n)
{
	float *y = fnew(n);
	memcpy(y, x, n * sizeof(float));
	return y;
}

/* ---- comparisons ---- */

static double err_fd(const float *got, const double *ref, size_t n)
{
	double num = 0, den = 0;
	for (size_t i = 0; i < n; i++) {
		double d = fabs(got[i] - ref[i]);
		if (!(d <= num))
			num = d;     /* NaN wins */
		if (fabs(ref[i]) > den)
			den = fabs(ref[i]);
	}
	return den > 0 ? num / den : num;
}

static double err_dd(const double *got, const double *ref, size_t n)
{
	double num = 0, den = 0;
	for (size_t i = 0; i < n; i++) {
		double d = fabs(got[i] - ref[i]);
		if (!(d <= num))
			num = d;
		if (fabs(ref[i]) > den)
			den = fabs(ref[i]);
	}
	return den > 0 ? num / den : num;
}

static void digest(const char *name, const void *p, size_t bytes)
{
	printf("# digest %s %016llx\n", name, (unsigned long long)XXH3_64bits(p, bytes));
}

/* Central differences of L(ctx) in each element of x (n of them) into g. */
static void fd_grad(double (*L)(void *), void *ctx, double *x, size_t n, double *g)
{
	for (size_t i = 0; i < n; i++) {
		double old = x[i], h = 1e-6 * fmax(1.0, fabs(old));
		x[i] = old + h;
		double lp = L(ctx);
		x[i] = old - h;
		double lm = L(ctx);
		x[i] = old;
		g[i] = (lp - lm) / (2 * h);
	}
}

/* Check one gradient: kernel vs analytic ref vs finite differences. */
static void check_grad(const char *what, const double *got, const double *ref,
		double (*L)(void *), void *ctx, double *x, size_t n)
{
	double *fd = dnew(n);
	fd_grad(L, ctx, x, n, fd);
	double e1 = err_dd(ref, fd, n), e2 = err_dd(got, ref, n), e3 = err_dd(got, fd, n);
	ok(e1 < 1e-7, "%s: double reference = finite differences (%.1e)", what, e1);
	ok(e2 < 1e-5, "%s: kernel = double reference (%.1e)", what, e2);
	ok(e3 < 1e-5, "%s: kernel = finite differences (%.1e)", what, e3);
}

/* Run fn in a child; it must exit 1 with msg in its stderr. */
static int dies_with(void (*fn)(void), const char *msg)
{
	int fds[2];
	if (pipe(fds))
		return 0;
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(fds[1], 2);
		close(fds[0]);
		fn();
		_exit(0);
	}
	close(fds[1]);
	char buf[512];
	size_t len = 0;
	ssize_t r;
	while (len < sizeof(buf) - 1 && (r = read(fds[0], buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)r;
	buf[len] = 0;
	close(fds[0]);
	int st;
	waitpid(pid, &st, 0);
	if (!strstr(buf, msg))
		printf("# stderr was: %s", buf);
	return WIFEXITED(st) && WEXITSTATUS(st) == 1 && strstr(buf, msg);
}

/* ================= conversions and memory ================= */

static double ref_f16(uint16_t h)
{
	int e = (h >> 10) & 0x1f, m = h & 0x3ff;
	double s = h & 0x8000 ? -1 : 1;
	if (e == 31)
		return m ? NAN : s * INFINITY;
	if (e == 0)
		return s * ldexp(m, -24);
	return s * ldexp(1024 + m, e - 25);
}

static double ref_bf16(uint16_t h)
{
	int e = (h >> 7) & 0xff, m = h & 0x7f;
	double s = h & 0x8000 ? -1 : 1;
	if (e == 255)
		return m ? NAN : s * INFINITY;
	if (e == 0)
		return s * ldexp(m, -133);
	return s * ldexp(128 + m, e - 134);
}

/* Round x to a float format with mbits stored mantissa bits, smallest
 * normal exponent emin and overflow threshold (the halfway point above the
 * largest finite value), ties to even: the reference for f32 -> f16/bf16. */
static double ref_round(double x, int mbits, int emin, double overflow)
{
	double ax = fabs(x);
	if (ax >= overflow)
		return copysign(INFINITY, x);
	if (ax == 0)
		return x;
	int e;
	frexp(ax, &e);
	e -= 1;                       /* ax in [2^e, 2^(e+1)) */
	if (e < emin)
		e = emin;
	double q = ldexp(1.0, e - mbits);
	return copysign(nearbyint(ax / q) * q, x);
}

static double ref_round_f16(double x) { return ref_round(x, 10, -14, 65520.0); }
static double ref_round_bf16(double x)
{
	return ref_round(x, 7, -126, ldexp(255.0 * 2 + 1, 127 - 8));  /* (2 - 2^-8) 2^127 */
}

static int same_value(double a, double b)
{
	return (isnan(a) && isnan(b)) || (a == b && signbit(a) == signbit(b));
}

static void test_convert(void)
{
	uint16_t *h = bnew(65536 * 2), *h2 = bnew(65536 * 2);
	float *f = fnew(65536);
	for (int i = 0; i < 65536; i++)
		h[i] = (uint16_t)i;

	/* every f16 to f32 exact, and back unchanged (NaNs stay NaNs, quiet) */
	lp_convert(f, LP_F32, h, LP_F16, 65536);
	int bad = 0, back = 0;
	for (int i = 0; i < 65536; i++)
		bad += !same_value(f[i], ref_f16(h[i]));
	lp_convert(h2, LP_F16, f, LP_F32, 65536);
	for (int i = 0; i < 65536; i++) {
		int nan = (h[i] & 0x7c00) == 0x7c00 && (h[i] & 0x3ff);
		back += nan ? !((h2[i] & 0x7e00) == 0x7e00) : h2[i] != h[i];
	}
	ok(bad == 0, "f16 -> f32 exact on all 65536 values (%d bad)", bad);
	ok(back == 0, "f32 -> f16 gives every f16 value back (%d bad)", back);

	/* every bf16 likewise */
	lp_convert(f, LP_F32, h, LP_BF16, 65536);
	bad = back = 0;
	for (int i = 0; i < 65536; i++)
		bad += !same_value(f[i], ref_bf16(h[i]));
	lp_convert(h2, LP_BF16, f, LP_F32, 65536);
	for (int i = 0; i < 65536; i++) {
		int nan = (h[i] & 0x7f80) == 0x7f80 && (h[i] & 0x7f);
		back += nan ? !((h2[i] & 0x7fc0) == 0x7fc0) : h2[i] != h[i];
	}
	ok(bad == 0, "bf16 -> f32 exact on all 65536 values (%d bad)", bad);
	ok(back == 0, "f32 -> bf16 gives every bf16 value back (%d bad)", back);

	/* f32 -> f16/bf16 rounding on random bit patterns of every exponent,
	 * on values near the f16 range, and on ties and edges */
	enum { NR = 1 << 20, NE = 24 };
	static const float edges[NE] = {
		65519.0f, 65520.0f, 65504.0f, 65535.99f, 0x1p-25f, 0x1.000002p-25f, 0x1.8p-25f,
		0x1.8p-24f, 0x1.4p-23f, 0x1.ffcp-15f, 0x1.ffep-15f, 0x1p-14f, 0x1.002p0f,
		0x1.006p0f, 0x1.01p0f, 0x1.03p0f, 3.4028235e38f, -0.0f, INFINITY, -INFINITY,
		0x1p-149f, 0x1.fep-127f, 0x1.ff8p127f, -2.5f,
	};
	float *x = fnew(NR);
	for (int i = 0; i < NR; i++) {
		uint32_t u = (uint32_t)lp_rng_next(&rng);
		if (i % 2)   /* half of them within (and a bit beyond) the f16 range */
			u = (u & 0x80000000u) | (0x33000000u + u % (0x47800000u - 0x33000000u));
		x[i] = lp_bits_f32(u);
		if (i < NE)
			x[i] = edges[i];
	}
	uint16_t *r16 = bnew(NR * 2), *rbf = bnew(NR * 2);
	lp_convert(r16, LP_F16, x, LP_F32, NR);
	lp_convert(rbf, LP_BF16, x, LP_F32, NR);
	int bad16 = 0, badbf = 0;
	for (int i = 0; i < NR; i++) {
		if (isnan(x[i])) {
			bad16 += !isnan(ref_f16(r16[i]));
			badbf += !isnan(ref_bf16(rbf[i]));
			continue;
		}
		bad16 += !same_value(ref_f16(r16[i]), ref_round_f16(x[i]));
		badbf += !same_value(ref_bf16(rbf[i]), ref_round_bf16(x[i]));
	}
	ok(bad16 == 0, "f32 -> f16 rounds to nearest even (subnormals, overflow) on %d values (%d bad)", NR, bad16);
	ok(badbf == 0, "f32 -> bf16 rounds to nearest even on %d values (%d bad)", NR, badbf);
	ok(r16[0] == 0x7bff && r16[1] == 0x7c00 && r16[4] == 0 && r16[6] == 1 && r16[7] == 2
			&& r16[8] == 2 && r16[12] == 0x3c00 && r16[13] == 0x3c02 && rbf[14] == 0x3f80
			&& rbf[15] == 0x3f82 && rbf[16] == 0x7f80 && r16[17] == 0x8000,
			"f16/bf16 edge cases: 65519, 65520, ties at subnormals and at 1");

	/* bf16 <-> f16 directly: through f32, so each step rounds once */
	uint16_t *hb = bnew(65536 * 2);
	lp_convert(hb, LP_F16, h, LP_BF16, 65536);
	bad = 0;
	for (int i = 0; i < 65536; i++)
		if (!isnan(ref_bf16(h[i])))
			bad += !same_value(ref_f16(hb[i]), ref_round_f16(ref_bf16(h[i])));
	ok(bad == 0, "bf16 -> f16 direct conversion rounds correctly (%d bad)", bad);

	/* same type copies */
	uint16_t *hc = bnew(65536 * 2);
	lp_convert(hc, LP_BF16, h, LP_BF16, 65536);
	ok(!memcmp(hc, h, 65536 * 2), "bf16 -> bf16 copies");
	release();
}

static void test_memory(void)
{
	unsigned char *p = lp_alloc(1000);
	int zero = 1;
	for (int i = 0; i < 1000; i++)
		zero &= p[i] == 0;
	ok(zero && (uintptr_t)p % 64 == 0, "lp_alloc gives zeroed, 64-byte aligned memory");
	unsigned char host[1000], back[1000];
	for (int i = 0; i < 1000; i++)
		host[i] = (unsigned char)(i * 7);
	unsigned char *q = lp_alloc(1000);
	lp_upload(p, host, 1000);
	lp_copy(q, p, 1000);
	lp_download(back, q, 1000);
	ok(!memcmp(host, back, 1000), "upload, copy, download round trip");
	lp_zero(q + 10, 100);
	lp_download(back, q, 1000);
	int good = 1;
	for (int i = 0; i < 1000; i++)
		good &= back[i] == (i >= 10 && i < 110 ? 0 : host[i]);
	ok(good, "lp_zero clears exactly the range asked");
	lp_free(p);
	lp_free(q);
	lp_free(lp_alloc(0));
}

/* ================= embedding ================= */

static void test_embedding(int dtype)
{
	const int V = 11, C = 7, N = 9;
	float *wf = frand((size_t)V * C, 1);
	void *w = bnew((size_t)V * C * lp_dtype_size(dtype));
	lp_convert(w, dtype, wf, LP_F32, (size_t)V * C);
	float *wback = fnew((size_t)V * C);
	lp_convert(wback, LP_F32, w, dtype, (size_t)V * C);
	int32_t ids[9] = {3, 0, 10, 3, 7, 3, 1, 10, 5};
	float *out = fnew((size_t)N * C);
	lp_embedding_forward(out, ids, (lp_weight){w, dtype, V, C}, N, C);
	int good = 1;
	for (int n = 0; n < N; n++)
		good &= !memcmp(out + n * C, wback + ids[n] * C, C * sizeof(float));
	ok(good, "embedding forward (%s) copies the rows, converted", lp_dtype_name(dtype));
	digest("embedding_forward", out, (size_t)N * C * 4);

	float *dout = frand((size_t)N * C, 1);
	float *dw = frand((size_t)V * C, 1);
	double *ref = dcopy(dw, (size_t)V * C);
	for (int n = 0; n < N; n++)
		for (int c = 0; c < C; c++)
			ref[ids[n] * C + c] += dout[n * C + c];
	lp_embedding_backward(dw, dout, ids, N, C);
	double e = err_fd(dw, ref, (size_t)V * C);
	ok(e < 1e-6, "embedding backward adds rows, repeated ids too (%.1e)", e);
	digest("embedding_backward", dw, (size_t)V * C * 4);
	release();
}

/* ================= rmsnorm ================= */

struct rms_ctx {
	double *x, *w, *dy;
	int N, C;
	double eps;
};

static void ref_rmsnorm(double *y, double *rstd, const double *x, const double *w,
		int N, int C, double eps)
{
	for (int n = 0; n < N; n++) {
		double ss = 0;
		for (int c = 0; c < C; c++)
			ss += x[n * C + c] * x[n * C + c];
		double r = 1 / sqrt(ss / C + eps);
		if (rstd)
			rstd[n] = r;
		for (int c = 0; c < C; c++)
			y[n * C + c] = w[c] * x[n * C + c] * r;
	}
}

static double rms_loss(void *p)
{
	struct rms_ctx *c = p;
	double *y = malloc(sizeof(double) * c->N * c->C), L = 0;
	ref_rmsnorm(y, NULL, c->x, c->w, c->N, c->C, c->eps);
	for (int i = 0; i < c->N * c->C; i++)
		L += c->dy[i] * y[i];
	free(y);
	return L;
}

static void ref_rmsnorm_backward(double *dx, double *dw, const double *dy, const double *x,
		const double *w, int N, int C, double eps)
{
	for (int n = 0; n < N; n++) {
		const double *xr = x + n * C, *g = dy + n * C;
		double ss = 0, dot = 0;
		for (int c = 0; c < C; c++) {
			ss += xr[c] * xr[c];
			dot += w[c] * g[c] * xr[c];
		}
		double r = 1 / sqrt(ss / C + eps);
		for (int c = 0; c < C; c++) {
			dx[n * C + c] = r * w[c] * g[c] - r * r * r * dot / C * xr[c];
			dw[c] += g[c] * xr[c] * r;
		}
	}
}


/* (double)(a[i] - before[i]): what an accumulating op added */
static double *increment(const float *a, const float *before, double beta, size_t n)
{
	double *d = dnew(n);
	for (size_t i = 0; i < n; i++)
		d[i] = (double)a[i] - (before ? beta * before[i] : 0);
	return d;
}

static void test_rmsnorm(int N, int C, int dtype, int fd)
{
	const float eps = 1e-5f;
	size_t NC = (size_t)N * C;
	float *x = frand(NC, 2), *wf = frand(C, 1);
	void *w = bnew((size_t)C * lp_dtype_size(dtype));
	lp_convert(w, dtype, wf, LP_F32, C);
	lp_convert(wf, LP_F32, w, dtype, C);
	lp_weight W = {w, dtype, 1, C};
	float *y = fnew(NC), *rstd = fnew(N);
	lp_rmsnorm_forward(y, rstd, x, W, N, C, eps);
	struct rms_ctx ctx = {dcopy(x, NC), dcopy(wf, C), dcopy(frand(NC, 1), NC), N, C, eps};
	double *ry = dnew(NC), *rr = dnew(N);
	ref_rmsnorm(ry, rr, ctx.x, ctx.w, N, C, eps);
	double e1 = err_fd(y, ry, NC), e2 = err_fd(rstd, rr, N);
	ok(e1 < 1e-6 && e2 < 1e-6, "rmsnorm forward N=%d C=%d w %s (%.1e, rstd %.1e)",
			N, C, lp_dtype_name(dtype), e1, e2);
	digest("rmsnorm_forward", y, NC * 4);

	float *dy = fnew(NC);
	for (size_t i = 0; i < NC; i++)
		dy[i] = (float)ctx.dy[i];
	float *gx = frand(NC, 1), *gw0 = frand(C, 1), *gw = fclone(gw0, C);
	double *rgx = dnew(NC), *rgw = dnew(C);
	ref_rmsnorm_backward(rgx, rgw, ctx.dy, ctx.x, ctx.w, N, C, eps);
	lp_rmsnorm_backward(gx, gw, dy, x, W, rstd, N, C, 0);
	digest("rmsnorm_backward dinp", gx, NC * 4);
	digest("rmsnorm_backward dw", gw, (size_t)C * 4);
	double *inc = increment(gw, gw0, 1, C);
	if (fd) {
		check_grad("rmsnorm dinp", dcopy(gx, NC), rgx, rms_loss, &ctx, ctx.x, NC);
		check_grad("rmsnorm dw (+=)", inc, rgw, rms_loss, &ctx, ctx.w, C);
	} else {
		double e3 = err_fd(gx, rgx, NC), e4 = err_dd(inc, rgw, C);
		ok(e3 < 1e-5 && e4 < 1e-5, "rmsnorm backward N=%d C=%d (%.1e, dw %.1e)", N, C, e3, e4);
	}
	float *acc0 = frand(NC, 1), *acc = fclone(acc0, NC);
	lp_rmsnorm_backward(acc, NULL, dy, x, W, rstd, N, C, 1);
	double e5 = err_dd(increment(acc, acc0, 1, NC), rgx, NC);
	ok(e5 < 1e-5, "rmsnorm backward with accumulate adds to dinp (%.1e)", e5);
	release();
}

/* ================= matmul ================= */

struct mm_ctx {
	double *x, *w, *dy;
	int N, C, OC;
	double alpha;
};

/* y = beta * y + alpha * x @ w^T */
static void ref_matmul(double *y, const double *x, const double *w, int N, int C, int OC,
		double alpha, double beta)
{
	for (int n = 0; n < N; n++)
		for (int o = 0; o < OC; o++) {
			double s = 0;
			for (int c = 0; c < C; c++)
				s += x[(size_t)n * C + c] * w[(size_t)o * C + c];
			y[(size_t)n * OC + o] = beta * y[(size_t)n * OC + o] + alpha * s;
		}
}

static double mm_loss(void *p)
{
	struct mm_ctx *c = p;
	size_t n = (size_t)c->N * c->OC;
	double *y = calloc(n, sizeof(double)), L = 0;
	ref_matmul(y, c->x, c->w, c->N, c->C, c->OC, c->alpha, 0);
	for (size_t i = 0; i < n; i++)
		L += c->dy[i] * y[i];
	free(y);
	return L;
}

static void test_matmul(int N, int C, int OC, int dtype, float alpha, float beta, int fd)
{
	size_t NC = (size_t)N * C, NO = (size_t)N * OC, WC = (size_t)OC * C;
	float *x = frand(NC, 1), *wf = frand(WC, 1);
	void *w = bnew(WC * lp_dtype_size(dtype));
	lp_convert(w, dtype, wf, LP_F32, WC);
	lp_convert(wf, LP_F32, w, dtype, WC);
	lp_weight W = {w, dtype, OC, C};
	struct mm_ctx ctx = {dcopy(x, NC), dcopy(wf, WC), NULL, N, C, OC, alpha};

	float *y0 = frand(NO, 1), *y = fclone(y0, NO);
	lp_matmul_forward(y, x, W, N, C, OC, alpha, beta);
	double *ry = dcopy(y0, NO);
	ref_matmul(ry, ctx.x, ctx.w, N, C, OC, alpha, beta);
	double e = err_fd(y, ry, NO);
	ok(e < 1e-5, "matmul forward N=%d C=%d OC=%d W %s alpha %g beta %g (%.1e)",
			N, C, OC, lp_dtype_name(dtype), alpha, beta, e);
	digest("matmul_forward", y, NO * 4);

	float *dy = frand(NO, 1);
	ctx.dy = dcopy(dy, NO);
	float *dx0 = frand(NC, 1), *dx = fclone(dx0, NC), *dW0 = frand(WC, 1), *dW = fclone(dW0, WC);
	lp_matmul_backward(dx, dW, dy, x, W, N, C, OC, alpha, beta);
	digest("matmul_backward dinp", dx, NC * 4);
	digest("matmul_backward dW", dW, WC * 4);
	/* analytic: dx - beta dx0 = alpha dy @ w, dW increment = alpha dy^T @ x */
	double *rdx = dnew(NC), *rdW = dnew(WC);
	for (int n = 0; n < N; n++)
		for (int o = 0; o < OC; o++) {
			double g = alpha * ctx.dy[(size_t)n * OC + o];
			for (int c = 0; c < C; c++) {
				rdx[(size_t)n * C + c] += g * ctx.w[(size_t)o * C + c];
				rdW[(size_t)o * C + c] += g * ctx.x[(size_t)n * C + c];
			}
		}
	double *gx = increment(dx, dx0, beta, NC), *gW = increment(dW, dW0, 1, WC);
	if (fd) {
		check_grad("matmul dinp", gx, rdx, mm_loss, &ctx, ctx.x, NC);
		check_grad("matmul dW (+=)", gW, rdW, mm_loss, &ctx, ctx.w, WC);
	} else {
		double e1 = err_dd(gx, rdx, NC), e2 = err_dd(gW, rdW, WC);
		ok(e1 < 1e-5 && e2 < 1e-5, "matmul backward N=%d C=%d OC=%d %s (%.1e, dW %.1e)",
				N, C, OC, lp_dtype_name(dtype), e1, e2);
	}
	/* NULL dW gives the same dinp; NULL dinp the same dW */
	float *dx2 = fclone(dx0, NC), *dW2 = fclone(dW0, WC);
	lp_matmul_backward(dx2, NULL, dy, x, W, N, C, OC, alpha, beta);
	lp_matmul_backward(NULL, dW2, dy, x, W, N, C, OC, alpha, beta);
	ok(!memcmp(dx2, dx, NC * 4) && !memcmp(dW2, dW, WC * 4),
			"matmul backward with dW or dinp NULL computes the other alone");
	release();
}

/* ================= rope ================= */

struct rope_ctx {
	double *x, *dy;
	const int32_t *pos;
	const float *inv_freq;
	int N, nh, D;
	double af;
};

/* The angle is formed in f32 as HF does ((float)pos * inv_freq), then
 * everything else in double. dir -1 rotates backwards (the transpose). */
static void ref_rope(double *y, const double *x, const int32_t *pos, const float *inv_freq,
		int N, int nh, int D, double af, double dir)
{
	int h = D / 2;
	for (int n = 0; n < N; n++)
		for (int j = 0; j < nh; j++)
			for (int i = 0; i < h; i++) {
				float a = (float)pos[n] * inv_freq[i];
				double c = cos(a) * af, s = dir * sin(a) * af;
				size_t o = ((size_t)n * nh + j) * D;
				y[o + i] = x[o + i] * c - x[o + i + h] * s;
				y[o + i + h] = x[o + i + h] * c + x[o + i] * s;
			}
}

static double rope_loss(void *p)
{
	struct rope_ctx *c = p;
	size_t n = (size_t)c->N * c->nh * c->D;
	double *y = calloc(n, sizeof(double)), L = 0;
	ref_rope(y, c->x, c->pos, c->inv_freq, c->N, c->nh, c->D, c->af, 1);
	for (size_t i = 0; i < n; i++)
		L += c->dy[i] * y[i];
	free(y);
	return L;
}

static void test_rope(int N, int nh, int D, int maxpos, float af, int fd)
{
	size_t n = (size_t)N * nh * D;
	int32_t *pos = bnew((size_t)N * 4);
	float *inv_freq = fnew((size_t)D / 2);
	for (int i = 0; i < N; i++)
		pos[i] = (int32_t)lp_rng_below(&rng, (uint64_t)maxpos);
	for (int i = 0; i < D / 2; i++)
		inv_freq[i] = (float)(0.5 / pow(10000.0, 2.0 * i / D));   /* "linear" scaling 2 */
	float *x = frand(n, 1), *y = fclone(x, n);
	lp_rope_forward(y, pos, inv_freq, N, nh, D, af);
	struct rope_ctx ctx = {dcopy(x, n), NULL, pos, inv_freq, N, nh, D, af};
	double *ry = dnew(n);
	ref_rope(ry, ctx.x, pos, inv_freq, N, nh, D, af, 1);
	double e = err_fd(y, ry, n);
	ok(e < 1e-6, "rope forward N=%d nh=%d D=%d positions < %d factor %g (%.1e)",
			N, nh, D, maxpos, af, e);
	digest("rope_forward", y, n * 4);

	float *dy = frand(n, 1), *g = fclone(dy, n);
	ctx.dy = dcopy(dy, n);
	lp_rope_backward(g, pos, inv_freq, N, nh, D, af);
	digest("rope_backward", g, n * 4);
	double *rg = dnew(n);
	ref_rope(rg, ctx.dy, pos, inv_freq, N, nh, D, af, -1);
	if (fd)
		check_grad("rope backward", dcopy(g, n), rg, rope_loss, &ctx, ctx.x, n);
	else
		ok(err_fd(g, rg, n) < 1e-6, "rope backward N=%d D=%d (%.1e)", N, D, err_fd(g, rg, n));

	/* with factor 1 the backward is the inverse */
	float *z = fclone(x, n);
	lp_rope_forward(z, pos, inv_freq, N, nh, D, 1.0f);
	lp_rope_backward(z, pos, inv_freq, N, nh, D, 1.0f);
	e = err_fd(z, ctx.x, n);
	ok(e < 1e-6, "rope backward undoes rope forward (%.1e)", e);
	release();
}

/* ================= attention ================= */

struct att_ctx {
	double *q, *k, *v, *dout;
	const uint8_t *mask;
	int B, T, H, KVH, D;
	double scale;
};

/* Row (b,t,h) attends to s <= t with mask[b,s]; empty rows: out 0, lse -inf. */
static void ref_attention(double *out, double *lse, const struct att_ctx *c)
{
	int B = c->B, T = c->T, H = c->H, KVH = c->KVH, D = c->D, rep = H / KVH;
	double *p = malloc(sizeof(double) * T);
	for (int b = 0; b < B; b++)
		for (int h = 0; h < H; h++)
			for (int t = 0; t < T; t++) {
				const double *q = c->q + (((size_t)b * T + t) * H + h) * D;
				double *o = out + (((size_t)b * T + t) * H + h) * D;
				double m = -INFINITY, l = 0;
				for (int s = 0; s <= t; s++) {
					p[s] = -INFINITY;
					if (c->mask && !c->mask[b * T + s])
						continue;
					const double *k = c->k + (((size_t)b * T + s) * KVH + h / rep) * D;
					double d = 0;
					for (int i = 0; i < D; i++)
						d += q[i] * k[i];
					p[s] = d * c->scale;
					m = fmax(m, p[s]);
				}
				for (int i = 0; i < D; i++)
					o[i] = 0;
				if (lse)
					lse[((size_t)b * H + h) * T + t] = m == -INFINITY ? -INFINITY : 0;
				if (m == -INFINITY)
					continue;
				for (int s = 0; s <= t; s++)
					l += p[s] = exp(p[s] - m);
				for (int s = 0; s <= t; s++) {
					const double *v = c->v + (((size_t)b * T + s) * KVH + h / rep) * D;
					for (int i = 0; i < D; i++)
						o[i] += p[s] / l * v[i];
				}
				if (lse)
					lse[((size_t)b * H + h) * T + t] = m + log(l);
			}
	free(p);
}

static double att_loss(void *p)
{
	struct att_ctx *c = p;
	size_t n = (size_t)c->B * c->T * c->H * c->D;
	double *o = calloc(n, sizeof(double)), L = 0;
	ref_attention(o, NULL, c);
	for (size_t i = 0; i < n; i++)
		L += c->dout[i] * o[i];
	free(o);
	return L;
}

/* dS = P (dP - sum_s P dP); dq = scale dS k; dk = scale dS^T q; dv = P^T dout */
static void ref_attention_backward(double *dq, double *dk, double *dv, const struct att_ctx *c)
{
	int B = c->B, T = c->T, H = c->H, KVH = c->KVH, D = c->D, rep = H / KVH;
	double *p = malloc(sizeof(double) * T), *dp = malloc(sizeof(double) * T);
	for (int b = 0; b < B; b++)
		for (int h = 0; h < H; h++)
			for (int t = 0; t < T; t++) {
				size_t qi = (((size_t)b * T + t) * H + h) * D;
				const double *q = c->q + qi, *g = c->dout + qi;
				double m = -INFINITY, l = 0, dsum = 0;
				for (int s = 0; s <= t; s++) {
					p[s] = -INFINITY;
					if (c->mask && !c->mask[b * T + s])
						continue;
					const double *k = c->k + (((size_t)b * T + s) * KVH + h / rep) * D;
					double d = 0;
					for (int i = 0; i < D; i++)
						d += q[i] * k[i];
					p[s] = d * c->scale;
					m = fmax(m, p[s]);
				}
				if (m == -INFINITY)
					continue;
				for (int s = 0; s <= t; s++)
					l += p[s] = exp(p[s] - m);
				for (int s = 0; s <= t; s++) {
					p[s] /= l;
					const double *v = c->v + (((size_t)b * T + s) * KVH + h / rep) * D;
					dp[s] = 0;
					for (int i = 0; i < D; i++)
						dp[s] += g[i] * v[i];
					dsum += p[s] * dp[s];
				}
				for (int s = 0; s <= t; s++) {
					size_t ki = (((size_t)b * T + s) * KVH + h / rep) * D;
					double ds = p[s] * (dp[s] - dsum);
					for (int i = 0; i < D; i++) {
						dq[qi + i] += c->scale * ds * c->k[ki + i];
						dk[ki + i] += c->scale * ds * q[i];
						dv[ki + i] += p[s] * g[i];
					}
				}
			}
	free(p);
	free(dp);
}

enum { MASK_NONE, MASK_RIGHT_PAD, MASK_HOLES };

static uint8_t *make_mask(int B, int T, int kind)
{
	if (kind == MASK_NONE)
		return NULL;
	uint8_t *m = bnew((size_t)B * T);
	for (int b = 0; b < B; b++)
		for (int t = 0; t < T; t++)
			m[b * T + t] = kind == MASK_RIGHT_PAD ? (b < B - 1 || t < T - 2)
					: (lp_rng_next(&rng) % 3 != 0);
	if (kind == MASK_HOLES)
		m[0] = 0, m[1] = 1;   /* batch 0: row 0 attends to nothing */
	return m;
}

static const char *mask_name[] = {"no mask", "right padding", "holes + empty row"};

static void test_attention(int B, int T, int H, int KVH, int D, int mask_kind, float scale, int fd)
{
	size_t nq = (size_t)B * T * H * D, nk = (size_t)B * T * KVH * D, nl = (size_t)B * H * T;
	uint8_t *mask = make_mask(B, T, mask_kind);
	float *q = frand(nq, 1.5), *k = frand(nk, 1.5), *v = frand(nk, 1);
	float *out = frand(nq, 1), *lse = fnew(nl);
	lp_attention_forward(out, lse, q, k, v, mask, B, T, H, KVH, D, scale);
	struct att_ctx c = {dcopy(q, nq), dcopy(k, nk), dcopy(v, nk), NULL, mask, B, T, H, KVH, D,
			scale > 0 ? scale : 1 / sqrt((double)D)};
	double *ro = dnew(nq), *rl = dnew(nl);
	ref_attention(ro, rl, &c);
	double elx = 0;
	int empty_ok = 1, nempty = 0;
	for (size_t r = 0; r < nl; r++) {
		if (rl[r] == -INFINITY) {
			nempty++;
			empty_ok &= lse[r] == -INFINITY;
		} else {
			elx = fmax(elx, fabs(lse[r] - rl[r]));
		}
	}
	double e = err_fd(out, ro, nq);
	ok(e < 1e-5 && elx < 1e-5 && empty_ok,
			"attention forward B=%d T=%d H=%d KVH=%d D=%d, %s, scale %s (%.1e, lse %.1e, %d empty rows)",
			B, T, H, KVH, D, mask_name[mask_kind], scale > 0 ? "given" : "default", e, elx, nempty);
	digest("attention_forward out", out, nq * 4);
	digest("attention_forward lse", lse, nl * 4);

	float *dout = frand(nq, 1);
	c.dout = dcopy(dout, nq);
	float *dq = frand(nq, 1), *dk = frand(nk, 1), *dv = frand(nk, 1);   /* overwritten */
	lp_attention_backward(dq, dk, dv, dout, out, lse, q, k, v, mask, B, T, H, KVH, D, scale);
	digest("attention_backward dq", dq, nq * 4);
	digest("attention_backward dk", dk, nk * 4);
	digest("attention_backward dv", dv, nk * 4);
	double *rq = dnew(nq), *rk = dnew(nk), *rv = dnew(nk);
	ref_attention_backward(rq, rk, rv, &c);
	if (fd) {
		check_grad("attention dq", dcopy(dq, nq), rq, att_loss, &c, c.q, nq);
		check_grad("attention dk", dcopy(dk, nk), rk, att_loss, &c, c.k, nk);
		check_grad("attention dv", dcopy(dv, nk), rv, att_loss, &c, c.v, nk);
	} else {
		double e1 = err_fd(dq, rq, nq), e2 = err_fd(dk, rk, nk), e3 = err_fd(dv, rv, nk);
		ok(e1 < 1e-5 && e2 < 1e-5 && e3 < 1e-5,
				"attention backward B=%d T=%d H=%d KVH=%d D=%d (%.1e %.1e %.1e)",
				B, T, H, KVH, D, e1, e2, e3);
	}
	release();
}

/* rows [t0, t0 + n) of x (B, T, row) as a (B, n, row) buffer */
static float *slice(const float *x, int B, int T, int t0, int n, size_t row)
{
	float *y = fnew((size_t)B * n * row);
	for (int b = 0; b < B; b++)
		memcpy(y + (size_t)b * n * row, x + ((size_t)b * T + t0) * row, n * row * sizeof(float));
	return y;
}

/* Prefill then decode through the KV cache; every row must equal the row of
 * full attention (to rounding: BLAS may sum differently for other shapes;
 * with OpenBLAS the rows come out bit for bit). Batch 1 is left-padded. */
static void test_cached(int B, int T, int H, int KVH, int D, int Tmax)
{
	size_t qrow = (size_t)H * D, krow = (size_t)KVH * D;
	float *q = frand((size_t)B * T * qrow, 1.5), *k = frand((size_t)B * T * krow, 1.5);
	float *v = frand((size_t)B * T * krow, 1);
	uint8_t *cmask = bnew((size_t)B * Tmax), *mask = bnew((size_t)B * T);
	for (int b = 0; b < B; b++)
		for (int t = 0; t < Tmax; t++)
			cmask[b * Tmax + t] = !(b == 1 && t < 2);
	for (int b = 0; b < B; b++)
		memcpy(mask + b * T, cmask + b * Tmax, T);
	float *full = fnew((size_t)B * T * qrow), *lse = fnew((size_t)B * H * T);
	lp_attention_forward(full, lse, q, k, v, mask, B, T, H, KVH, D, 0);

	float *kc = fnew((size_t)B * Tmax * krow), *vc = fnew((size_t)B * Tmax * krow);
	int32_t past[8];
	int t = 0, stored = 1;
	double same = 0;
	static const int steps[] = {4, 1, 2, 1, 1};
	for (size_t si = 0; si < sizeof(steps) / sizeof(steps[0]) && t < T; si++) {
		int n = steps[si] < T - t ? steps[si] : T - t;
		for (int b = 0; b < B; b++)
			past[b] = t;
		float *qs = slice(q, B, T, t, n, qrow), *ks = slice(k, B, T, t, n, krow);
		float *vs = slice(v, B, T, t, n, krow), *o = fnew((size_t)B * n * qrow);
		lp_kv_store(kc, vc, ks, vs, past, B, n, Tmax, KVH, D);
		lp_attention_cached(o, qs, kc, vc, past, cmask, B, n, Tmax, H, KVH, D, 0);
		float *want = slice(full, B, T, t, n, qrow);
		same = fmax(same, err_fd(o, dcopy(want, (size_t)B * n * qrow), (size_t)B * n * qrow));
		for (int b = 0; b < B; b++)
			stored &= !memcmp(kc + ((size_t)b * Tmax + t) * krow, ks + (size_t)b * n * krow,
					n * krow * 4)
				&& !memcmp(vc + ((size_t)b * Tmax + t) * krow, vs + (size_t)b * n * krow,
					n * krow * 4);
		t += n;
	}
	ok(stored, "kv_store writes k, v at positions past[b] + i");
	ok(same < 1e-6, "cached attention (prefill 4, then 1, 2, 1, 1) equals full attention row "
			"by row, H=%d KVH=%d, left padding (%.1e)", H, KVH, same);

	/* sequences at different positions: b attends to cache[0 .. past[b]] */
	for (int b = 0; b < B; b++)
		past[b] = (int32_t)(b % 2 ? Tmax - 1 - b : 2 + b);
	float *kfull = frand((size_t)B * Tmax * krow, 1.5), *vfull = frand((size_t)B * Tmax * krow, 1);
	memcpy(kc, kfull, (size_t)B * Tmax * krow * 4);
	memcpy(vc, vfull, (size_t)B * Tmax * krow * 4);
	float *q1 = frand((size_t)B * qrow, 1.5), *o1 = fnew((size_t)B * qrow);
	lp_attention_cached(o1, q1, kc, vc, past, NULL, B, 1, Tmax, H, KVH, D, 0.4f);
	double e = 0;
	for (int b = 0; b < B; b++) {
		int L = past[b] + 1;
		double *qq = dnew((size_t)L * qrow);
		for (size_t i = 0; i < qrow; i++)
			qq[(size_t)(L - 1) * qrow + i] = q1[b * qrow + i];
		struct att_ctx c = {qq, dcopy(kfull + (size_t)b * Tmax * krow, (size_t)L * krow),
			dcopy(vfull + (size_t)b * Tmax * krow, (size_t)L * krow), NULL, NULL,
			1, L, H, KVH, D, 0.4f};
		double *ro = dnew((size_t)L * qrow);
		ref_attention(ro, NULL, &c);
		e = fmax(e, err_fd(o1 + b * qrow, ro + (size_t)(L - 1) * qrow, qrow));
	}
	ok(e < 1e-5, "cached attention with a different past per sequence (%.1e)", e);
	digest("attention_cached", o1, (size_t)B * qrow * 4);
	release();
}

/* ================= swiglu ================= */

struct sw_ctx {
	double *g, *u, *dy;
	size_t n;
};

static double silu(double x) { return x / (1 + exp(-x)); }

static double sw_loss(void *p)
{
	struct sw_ctx *c = p;
	double L = 0;
	for (size_t i = 0; i < c->n; i++)
		L += c->dy[i] * silu(c->g[i]) * c->u[i];
	return L;
}

static void test_swiglu(int N, int I, int fd)
{
	size_t n = (size_t)N * I;
	float *g = frand(n, 4), *u = frand(n, 2), *y = fnew(n);
	if (n >= 4)
		g[0] = 30, g[1] = -30, g[2] = -95, g[3] = 95;   /* exp over/underflow */
	lp_swiglu_forward(y, g, u, N, I);
	struct sw_ctx c = {dcopy(g, n), dcopy(u, n), NULL, n};
	double *ry = dnew(n), *rg = dnew(n), *ru = dnew(n);
	for (size_t i = 0; i < n; i++)
		ry[i] = silu(c.g[i]) * c.u[i];
	double e = err_fd(y, ry, n);
	ok(e < 1e-6, "swiglu forward N=%d I=%d (%.1e)", N, I, e);
	digest("swiglu_forward", y, n * 4);

	float *dy = frand(n, 1), *dg = fnew(n), *du = fnew(n);
	c.dy = dcopy(dy, n);
	lp_swiglu_backward(dg, du, dy, g, u, N, I);
	digest("swiglu_backward dgate", dg, n * 4);
	digest("swiglu_backward dup", du, n * 4);
	for (size_t i = 0; i < n; i++) {
		double x = c.g[i], s = 1 / (1 + exp(-x));
		rg[i] = c.dy[i] * c.u[i] * s * (1 + x * (1 - s));
		ru[i] = c.dy[i] * silu(x);
	}
	if (fd) {
		check_grad("swiglu dgate", dcopy(dg, n), rg, sw_loss, &c, c.g, n);
		check_grad("swiglu dup", dcopy(du, n), ru, sw_loss, &c, c.u, n);
	} else {
		double e1 = err_fd(dg, rg, n), e2 = err_fd(du, ru, n);
		ok(e1 < 1e-6 && e2 < 1e-6, "swiglu backward N=%d I=%d (%.1e %.1e)", N, I, e1, e2);
	}
	/* in place: dgate over gate, dup over up */
	float *g2 = fclone(g, n), *u2 = fclone(u, n);
	lp_swiglu_backward(g2, u2, dy, g2, u2, N, I);
	ok(!memcmp(g2, dg, n * 4) && !memcmp(u2, du, n * 4), "swiglu backward in place");
	release();
}

/* ================= add, scale, dropout ================= */

static void test_add_scale(size_t n)
{
	float *x = frand(n, 1), *y = frand(n, 1), *a = fclone(x, n);
	lp_add_inplace(a, y, n);
	int good = 1;
	for (size_t i = 0; i < n; i++)
		good &= a[i] == x[i] + y[i];
	ok(good, "add_inplace is x + y elementwise (n=%zu)", n);
	float *s = fclone(x, n), *s2 = fclone(x, n);
	lp_scale_inplace(s, 0.37f, n);
	lp_scale_f32(s2, -3.0f, n);
	good = 1;
	for (size_t i = 0; i < n; i++)
		good &= s[i] == x[i] * 0.37f && s2[i] == x[i] * -3.0f;
	ok(good, "scale_inplace and scale_f32 multiply elementwise");
	release();
}

/* The mask rule documented in kernels.h, written out independently. */
static int doc_keep(uint64_t seed, uint64_t i, float p)
{
	uint64_t z = seed + (i + 1) * 0x9e3779b97f4a7c15ull;
	z ^= z >> 30;
	z *= 0xbf58476d1ce4e5b9ull;
	z ^= z >> 27;
	z *= 0x94d049bb133111ebull;
	z ^= z >> 31;
	return (z >> 32) >= (uint64_t)((double)p * 4294967296.0);
}

static void test_dropout(size_t n, float p)
{
	uint64_t seed = 0x5eed0000ull + n;
	float *x = frand(n, 1), *y = fnew(n);
	for (size_t i = 0; i < n; i++)
		if (x[i] == 0)
			x[i] = 1;
	lp_dropout_forward(y, x, p, seed, n);
	float scale = 1.0f / (1.0f - p);
	size_t dropped = 0;
	int rule = 1, vals = 1;
	for (size_t i = 0; i < n; i++) {
		int kept = y[i] != 0;
		dropped += !kept;
		rule &= kept == doc_keep(seed, i, p);
		vals &= !kept || y[i] == x[i] * scale;
	}
	double frac = (double)dropped / n, sigma = sqrt(p * (1 - p) / n);
	ok(fabs(frac - p) < 5 * sigma, "dropout p=%g drops %.4f of %zu (within 5 sigma)", p, frac, n);
	ok(rule, "dropout mask follows the rule of kernels.h");
	ok(vals, "dropout keeps x / (1 - p) exactly");
	digest("dropout_forward", y, n * 4);

	float *dy = frand(n, 1), *dx = fnew(n);
	lp_dropout_backward(dx, dy, p, seed, n);
	int same = 1;
	for (size_t i = 0; i < n; i++)
		same &= dx[i] == (y[i] != 0 ? dy[i] * scale : 0.0f);
	ok(same, "dropout backward applies the forward's mask");
	float *y2 = fnew(n);
	lp_dropout_forward(y2, x, p, seed + 1, n);
	size_t differ = 0;
	for (size_t i = 0; i < n; i++)
		differ += (y[i] != 0) != (y2[i] != 0);
	ok(differ > n * p / 2, "another seed draws another mask (%zu differ)", differ);
	float *c = fnew(n);
	lp_dropout_forward(c, x, 0.0f, seed, n);
	ok(!memcmp(c, x, n * 4), "dropout with p = 0 copies");
	release();
}

/* ================= cross-entropy ================= */

struct ce_ctx {
	double *x;
	const int32_t *tg;
	int N, V;
	double scale;
};

/* loss_n = logsumexp(x_n) - x_n[t]; 0 for ignored rows */
static double ref_ce_row(const double *x, int V, int t)
{
	double m = -INFINITY, s = 0;
	for (int i = 0; i < V; i++)
		m = fmax(m, x[i]);
	for (int i = 0; i < V; i++)
		s += exp(x[i] - m);
	return m + log(s) - x[t];
}

static double ce_loss(void *p)
{
	struct ce_ctx *c = p;
	double L = 0;
	for (int n = 0; n < c->N; n++)
		if (c->tg[n] != -100)
			L += c->scale * ref_ce_row(c->x + (size_t)n * c->V, c->V, c->tg[n]);
	return L;
}

static void test_cross_entropy(int N, int V, int fd)
{
	size_t n = (size_t)N * V;
	float *x = frand(n, 3);
	int32_t *tg = bnew((size_t)N * 4);
	for (int r = 0; r < N; r++)
		tg[r] = r % 3 == 1 ? -100 : (int32_t)lp_rng_below(&rng, (uint64_t)V);
	for (int i = 0; i < V; i++)
		x[(size_t)(N > 2 ? 2 : 0) * V + i] += 1000.0f;   /* stable for large logits */
	float gs = 1.0f / 3;
	float *loss = fnew(N), *dx = fnew(n);
	lp_cross_entropy(loss, dx, x, tg, N, V, gs);
	struct ce_ctx c = {dcopy(x, n), tg, N, V, gs};
	double *rl = dnew(N), *rg = dnew(n);
	int ign = 1;
	for (int r = 0; r < N; r++) {
		if (tg[r] == -100) {
			ign &= loss[r] == 0;
			for (int i = 0; i < V; i++)
				ign &= dx[(size_t)r * V + i] == 0;
			continue;
		}
		const double *xr = c.x + (size_t)r * V;
		rl[r] = ref_ce_row(xr, V, tg[r]);
		double lse = rl[r] + xr[tg[r]];
		for (int i = 0; i < V; i++)
			rg[(size_t)r * V + i] = gs * (exp(xr[i] - lse) - (i == tg[r]));
	}
	double e = err_fd(loss, rl, N);
	ok(e < 1e-6, "cross-entropy losses N=%d V=%d (%.1e), logits near 1000 too", N, V, e);
	ok(ign, "ignored rows (-100) have loss 0 and zero gradient");
	digest("cross_entropy loss", loss, (size_t)N * 4);
	digest("cross_entropy dlogits", dx, n * 4);
	if (fd)
		check_grad("cross-entropy dlogits", dcopy(dx, n), rg, ce_loss, &c, c.x, n);
	else
		ok(err_fd(dx, rg, n) < 1e-6, "cross-entropy dlogits (%.1e)", err_fd(dx, rg, n));
	float *al = fclone(x, n), *loss2 = fnew(N), *loss3 = fnew(N);
	lp_cross_entropy(loss2, al, al, tg, N, V, gs);
	lp_cross_entropy(loss3, NULL, x, tg, N, V, gs);
	ok(!memcmp(al, dx, n * 4) && !memcmp(loss2, loss, (size_t)N * 4) && !memcmp(loss3, loss, (size_t)N * 4),
			"dlogits may alias logits; dlogits NULL gives the same losses");
	release();
}

/* ================= optimizer ================= */

static void test_sumsq(size_t n)
{
	float *x = frand(n, 2), out[1] = {2.5f};
	lp_sumsq_f32(out, x, n);
	double s = 2.5;
	for (size_t i = 0; i < n; i++)
		s += (double)x[i] * x[i];
	double e = fabs(out[0] - s) / s;
	ok(e < 1e-6, "sumsq adds sum x^2 of %zu elements to out (%.1e)", n, e);
	digest("sumsq", out, 4);
	release();
}

/* torch.optim.AdamW's float32 op order (as ATen's AVX2/AVX-512 code runs
 * it; t/ref/kernels_torch.py compares with torch itself), written out here
 * so that a change of order in the kernel shows (bitwise comparison). */
static void torch_adamw(float *p, const float *g, float *m, float *v, size_t n, double lr,
		double b1, double b2, double eps, double wd, int t)
{
	double bc1 = 1 - pow(b1, t), bc2 = 1 - pow(b2, t);
	float w = (float)(1 - b1);
	for (size_t i = 0; i < n; i++) {
		p[i] = p[i] * (float)(1 - lr * wd);
		m[i] = fabsf(w) < 0.5f ? fmaf(w, g[i] - m[i], m[i]) : fmaf(w - 1, g[i] - m[i], g[i]);
		v[i] = fmaf((float)(1 - b2) * g[i], g[i], v[i] * (float)b2);
		float denom = sqrtf(v[i]) / (float)sqrt(bc2) + (float)eps;
		p[i] = p[i] + (float)(-(lr / bc1)) * m[i] / denom;
	}
}

static void test_adamw(size_t n, double lr, double b1, double b2, double eps, double wd)
{
	float *p = frand(n, 1), *m = fnew(n), *v = fnew(n), *g = fnew(n);
	float *tp = fclone(p, n), *tm = fnew(n), *tv = fnew(n);
	double *rp = dcopy(p, n), *rm = dnew(n), *rv = dnew(n), *p0 = dcopy(p, n);
	int same = 1;
	for (int t = 1; t <= 6; t++) {
		for (size_t i = 0; i < n; i++)
			g[i] = (float)(urand() * (i % 5 == 0 ? 1e-9 : 0.1));   /* eps matters for some */
		if (t == 3)
			g[1] = 0;
		lp_adamw_f32(p, g, m, v, n, lr, b1, b2, eps, wd, t);
		torch_adamw(tp, g, tm, tv, n, lr, b1, b2, eps, wd, t);
		same &= !memcmp(p, tp, n * 4) && !memcmp(m, tm, n * 4) && !memcmp(v, tv, n * 4);
		/* the textbook form in double */
		double bc1 = 1 - pow(b1, t), bc2 = 1 - pow(b2, t);
		for (size_t i = 0; i < n; i++) {
			rp[i] *= 1 - lr * wd;
			rm[i] = b1 * rm[i] + (1 - b1) * g[i];
			rv[i] = b2 * rv[i] + (1 - b2) * (double)g[i] * g[i];
			rp[i] -= lr * (rm[i] / bc1) / (sqrt(rv[i] / bc2) + eps);
		}
	}
	double *dp = increment(p, NULL, 0, n), *move = dnew(n), *rmove = dnew(n);
	for (size_t i = 0; i < n; i++)
		move[i] = dp[i] - p0[i], rmove[i] = rp[i] - p0[i];
	/* the update carries the rounding of p itself: 2 roundings a step */
	double maxp = 0, maxmove = 0;
	for (size_t i = 0; i < n; i++)
		maxp = fmax(maxp, fabs(rp[i])), maxmove = fmax(maxmove, fabs(rmove[i]));
	double e1 = err_fd(p, rp, n), e2 = err_dd(move, rmove, n);
	double e3 = err_fd(m, rm, n), e4 = err_fd(v, rv, n);
	double bound2 = 1e-5 + 12 * 0x1p-24 * maxp / maxmove;
	ok(e1 < 1e-6 && e2 < bound2 && e3 < 1e-5 && e4 < 1e-5,
			"AdamW lr %g betas (%g, %g) eps %g wd %g, 6 steps = double reference "
			"(p %.1e, update %.1e, m %.1e, v %.1e)", lr, b1, b2, eps, wd, e1, e2, e3, e4);
	ok(same, "AdamW follows torch's float32 order of operations bit for bit");
	digest("adamw p", p, n * 4);
	release();
}

/* lp_adamw_flat: segments of one flat buffer with their own decays, in
 * one call, equal bit for bit to one lp_adamw_f32 per segment; elements
 * outside every segment untouched; the working copy the parameters'
 * bf16 rounding. */
static void test_adamw_flat(void)
{
	size_t n = 1000;
	const lp_adamw_segment seg[] = { {0, 300, 0.01}, {300, 1, 0.0}, {400, 600, 0.1} };
	float *p = frand(n, 1), *m = fnew(n), *v = fnew(n), *g = frand(n, 1);
	float *q = fclone(p, n), *qm = fnew(n), *qv = fnew(n);
	uint16_t *work = calloc(n, sizeof *work);
	int same = 1, work_ok = 1, gap_ok = 1;
	for (int t = 1; t <= 3; t++) {
		lp_adamw_flat(p, g, m, v, seg, 3, 1e-2, 0.9, 0.999, 1e-8, t, work, LP_BF16);
		for (int k = 0; k < 3; k++)
			lp_adamw_f32(q + seg[k].off, g + seg[k].off, qm + seg[k].off, qv + seg[k].off,
					seg[k].n, 1e-2, 0.9, 0.999, 1e-8, seg[k].weight_decay, t);
		same &= !memcmp(p, q, n * 4) && !memcmp(m, qm, n * 4) && !memcmp(v, qv, n * 4);
	}
	for (size_t i = 0; i < n; i++) {
		int in = i < 301 || i >= 400;
		if (in && work[i] != lp_f32_to_bf16(p[i]))
			work_ok = 0;
		if (!in && (work[i] != 0 || m[i] != 0))
			gap_ok = 0;
	}
	ok(same, "AdamW over segments with their own decays = AdamW segment by segment, bit for bit");
	ok(work_ok && gap_ok, "its bf16 working copy is the parameters rounded; gaps untouched");
	free(work);
	release();
}

/* ================= errors ================= */

static void bad_embedding(void)
{
	float w[6] = {0}, out[3];
	int32_t ids[1] = {2};
	lp_embedding_forward(out, ids, (lp_weight){w, LP_F32, 2, 3}, 1, 3);
}

static void bad_target(void)
{
	float x[4] = {0}, loss[1];
	int32_t t[1] = {4};
	lp_cross_entropy(loss, NULL, x, t, 1, 4, 1);
}

static void bad_kv_store(void)
{
	float kc[8], vc[8], k[4] = {0}, v[4] = {0};
	int32_t past[1] = {3};
	lp_kv_store(kc, vc, k, v, past, 1, 2, 4, 1, 2);
}

static void bad_convert(void)
{
	int32_t a[2] = {0}, b[2];
	lp_convert(b, LP_I32, a, LP_F32, 2);
}

static void bad_matmul(void)
{
	float w[6] = {0}, x[3] = {0}, y[2];
	lp_matmul_forward(y, x, (lp_weight){w, LP_F32, 3, 2}, 1, 3, 2, 1, 0);
}

static void test_errors(void)
{
	char err[200] = "";
	ok(lp_kernels_init(LP_DEVICE_CPU, -1, LP_BF16, err, sizeof(err)) == -1 && strstr(err, "f32"),
			"cpu backend refuses bf16 activations: %s", err);
	ok(lp_kernels_init(LP_DEVICE_CPU, 1, LP_F32, err, sizeof(err)) == -1
			&& strstr(err, "one device (0), not 1"),
			"cpu backend refuses a device index past 0: %s", err);
	ok(lp_kernels_init(LP_DEVICE_CPU, 0, LP_F32, err, sizeof(err)) == 0,
			"and takes device 0 by its index");
	ok(lp_kernels_init(LP_DEVICE_CPU, -1, LP_F32, err, sizeof(err)) == 0, "and starts again with f32");
	ok(dies_with(bad_embedding, "embedding_forward: token id 2 at row 0 is outside the vocabulary of 2"),
			"embedding with an id past the vocabulary dies naming it");
	ok(dies_with(bad_target, "cross_entropy: target 4 at row 0 is outside the vocabulary of 4"),
			"cross-entropy with a target past the vocabulary dies naming it");
	ok(dies_with(bad_kv_store, "kv_store: 3 cached + 2 new positions do not fit a cache of 4"),
			"kv_store past the cache dies");
	ok(dies_with(bad_convert, "convert: only f32, bf16 and f16"), "convert of i32 dies");
	ok(dies_with(bad_matmul, "matmul_forward: weight is (3, 2), the op needs (2, 3)"),
			"matmul with a weight of the wrong shape dies");
}

/* ================= dump for the PyTorch cross-check ================= */

static FILE *manifest;
static const char *dump_dir;

/* DIR/NAME.bin holds the raw little-endian elements; the manifest line is
 * "NAME DTYPE DIM...". */
static void dump(const char *name, int dtype, const void *p, int rank, const int *dims)
{
	char path[4096];
	size_t n = 1;
	fprintf(manifest, "%s %s", name, lp_dtype_name(dtype));
	for (int i = 0; i < rank; i++) {
		fprintf(manifest, " %d", dims[i]);
		n *= (size_t)dims[i];
	}
	fprintf(manifest, "\n");
	snprintf(path, sizeof(path), "%s/%s.bin", dump_dir, name);
	FILE *f = lp_fopen(path, "wb");
	lp_fwrite(f, path, p, n * lp_dtype_size(dtype));
	lp_fclose_checked(f, path);
}

#define DUMP(name, dtype, p, ...) \
	dump(name, dtype, p, (int)(sizeof((int[]){__VA_ARGS__}) / sizeof(int)), (int[]){__VA_ARGS__})

/* Inputs and outputs of the ops that t/ref/kernels_torch.py recomputes with
 * torch: HF's LlamaRMSNorm, rotary embedding and eager attention, F.silu,
 * F.cross_entropy, F.linear, Tensor.to(bf16/f16), torch.optim.AdamW. */
static int torch_dump(const char *dir)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/manifest", dir);
	dump_dir = dir;
	manifest = lp_fopen(path, "w");

	/* rmsnorm */
	enum { RN = 6, RC = 37 };
	float *x = frand(RN * RC, 2), *w = frand(RC, 1), *y = fnew(RN * RC), *rstd = fnew(RN);
	float *dy = frand(RN * RC, 1), *dx = fnew(RN * RC), *dw = fnew(RC);
	lp_rmsnorm_forward(y, rstd, x, (lp_weight){w, LP_F32, 1, RC}, RN, RC, 1e-6f);
	lp_rmsnorm_backward(dx, dw, dy, x, (lp_weight){w, LP_F32, 1, RC}, rstd, RN, RC, 0);
	DUMP("rms_x", LP_F32, x, RN, RC);
	DUMP("rms_w", LP_F32, w, RC);
	DUMP("rms_y", LP_F32, y, RN, RC);
	DUMP("rms_dy", LP_F32, dy, RN, RC);
	DUMP("rms_dx", LP_F32, dx, RN, RC);
	DUMP("rms_dw", LP_F32, dw, RC);

	/* rope: N rows of nh heads */
	enum { PN = 5, PH = 3, PD = 8 };
	int32_t pos[PN] = {0, 1, 7, 100, 2047};
	float inv[PD / 2], af = 1.25f;
	for (int i = 0; i < PD / 2; i++)
		inv[i] = (float)(1.0 / pow(10000.0, 2.0 * i / PD));
	float *rx = frand(PN * PH * PD, 1), *ry = fclone(rx, PN * PH * PD);
	lp_rope_forward(ry, pos, inv, PN, PH, PD, af);
	DUMP("rope_x", LP_F32, rx, PN, PH, PD);
	DUMP("rope_pos", LP_I32, pos, PN);
	DUMP("rope_inv_freq", LP_F32, inv, PD / 2);
	DUMP("rope_factor", LP_F32, &af, 1);
	DUMP("rope_y", LP_F32, ry, PN, PH, PD);

	/* attention, GQA, right padding */
	enum { AB = 2, AT = 7, AH = 4, AK = 2, AD = 8 };
	size_t nq = AB * AT * AH * AD, nk = AB * AT * AK * AD;
	uint8_t mask[AB * AT];
	for (int i = 0; i < AB * AT; i++)
		mask[i] = !(i / AT == 1 && i % AT >= 5);
	float *q = frand(nq, 1.5), *k = frand(nk, 1.5), *v = frand(nk, 1), *o = fnew(nq);
	float *lse = fnew(AB * AH * AT), *dout = frand(nq, 1);
	float *dq = fnew(nq), *dk = fnew(nk), *dv = fnew(nk);
	lp_attention_forward(o, lse, q, k, v, mask, AB, AT, AH, AK, AD, 0);
	lp_attention_backward(dq, dk, dv, dout, o, lse, q, k, v, mask, AB, AT, AH, AK, AD, 0);
	DUMP("att_q", LP_F32, q, AB, AT, AH, AD);
	DUMP("att_k", LP_F32, k, AB, AT, AK, AD);
	DUMP("att_v", LP_F32, v, AB, AT, AK, AD);
	DUMP("att_mask", LP_U8, mask, AB, AT);
	DUMP("att_out", LP_F32, o, AB, AT, AH, AD);
	DUMP("att_lse", LP_F32, lse, AB, AH, AT);
	DUMP("att_dout", LP_F32, dout, AB, AT, AH, AD);
	DUMP("att_dq", LP_F32, dq, AB, AT, AH, AD);
	DUMP("att_dk", LP_F32, dk, AB, AT, AK, AD);
	DUMP("att_dv", LP_F32, dv, AB, AT, AK, AD);

	/* swiglu */
	enum { SN = 4, SI = 33 };
	float *g = frand(SN * SI, 5), *u = frand(SN * SI, 2), *sy = fnew(SN * SI);
	float *sdy = frand(SN * SI, 1), *dg = fnew(SN * SI), *du = fnew(SN * SI);
	lp_swiglu_forward(sy, g, u, SN, SI);
	lp_swiglu_backward(dg, du, sdy, g, u, SN, SI);
	DUMP("sw_g", LP_F32, g, SN, SI);
	DUMP("sw_u", LP_F32, u, SN, SI);
	DUMP("sw_y", LP_F32, sy, SN, SI);
	DUMP("sw_dy", LP_F32, sdy, SN, SI);
	DUMP("sw_dg", LP_F32, dg, SN, SI);
	DUMP("sw_du", LP_F32, du, SN, SI);

	/* cross-entropy */
	enum { CN = 5, CV = 300 };
	float *lg = frand(CN * CV, 4), *loss = fnew(CN), *dl = fnew(CN * CV), gs = 0.25f;
	int32_t tg[CN] = {3, -100, 299, 0, 17};
	lp_cross_entropy(loss, dl, lg, tg, CN, CV, gs);
	DUMP("ce_logits", LP_F32, lg, CN, CV);
	DUMP("ce_targets", LP_I32, tg, CN);
	DUMP("ce_scale", LP_F32, &gs, 1);
	DUMP("ce_loss", LP_F32, loss, CN);
	DUMP("ce_dlogits", LP_F32, dl, CN, CV);

	/* linear with a bf16 weight */
	enum { MN = 3, MC = 40, MO = 24 };
	float *mx = frand(MN * MC, 1), *mw = frand(MO * MC, 1), *my = fnew(MN * MO);
	uint16_t *mwb = bnew(MO * MC * 2);
	lp_convert(mwb, LP_BF16, mw, LP_F32, MO * MC);
	lp_matmul_forward(my, mx, (lp_weight){mwb, LP_BF16, MO, MC}, MN, MC, MO, 1, 0);
	DUMP("mm_x", LP_F32, mx, MN, MC);
	DUMP("mm_w", LP_BF16, mwb, MO, MC);
	DUMP("mm_y", LP_F32, my, MN, MO);

	/* conversions of values of every magnitude */
	enum { VN = 4096 };
	float *cv = fnew(VN);
	uint16_t *cb = bnew(VN * 2), *ch = bnew(VN * 2);
	for (int i = 0; i < VN; i++)
		cv[i] = (float)(urand() * ldexp(1.0, (int)lp_rng_below(&rng, 60) - 40));
	lp_convert(cb, LP_BF16, cv, LP_F32, VN);
	lp_convert(ch, LP_F16, cv, LP_F32, VN);
	DUMP("cv_f32", LP_F32, cv, VN);
	DUMP("cv_bf16", LP_BF16, cb, VN);
	DUMP("cv_f16", LP_F16, ch, VN);

	/* AdamW, 5 steps; the state after each step (row t-1 after step t) */
	enum { ON = 1000, OS = 5 };
	double hp[5] = {3e-3, 0.9, 0.999, 1e-8, 0.05};   /* lr, beta1, beta2, eps, wd */
	float *p = frand(ON, 1), *m = fnew(ON), *vv = fnew(ON), *grads = fnew(OS * ON);
	float *ps = fnew(OS * ON), *ms = fnew(OS * ON), *vs = fnew(OS * ON);
	DUMP("adam_p0", LP_F32, p, ON);
	for (int t = 1; t <= OS; t++) {
		float *gt = grads + (t - 1) * ON;
		for (int i = 0; i < ON; i++)
			gt[i] = (float)(urand() * (i % 7 == 0 ? 1e-8 : 0.1));
		lp_adamw_f32(p, gt, m, vv, ON, hp[0], hp[1], hp[2], hp[3], hp[4], t);
		memcpy(ps + (t - 1) * ON, p, ON * 4);
		memcpy(ms + (t - 1) * ON, m, ON * 4);
		memcpy(vs + (t - 1) * ON, vv, ON * 4);
	}
	DUMP("adam_hparams", LP_F64, hp, 5);
	DUMP("adam_grads", LP_F32, grads, OS, ON);
	DUMP("adam_p", LP_F32, ps, OS, ON);
	DUMP("adam_m", LP_F32, ms, OS, ON);
	DUMP("adam_v", LP_F32, vs, OS, ON);

	lp_fclose_checked(manifest, "manifest");
	release();
	return 0;
}

int main(int argc, char **argv)
{
	lp_init(argv[0]);
	char err[256];
	if (argc == 3 && !strcmp(argv[1], "torch-dump")) {
		if (lp_kernels_init(LP_DEVICE_CPU, -1, LP_F32, err, sizeof(err)))
			lp_die("cpu", "%s", err);
		lp_rng_seed(&rng, 7);
		return torch_dump(argv[2]);
	}
	ok(lp_kernels_init(LP_DEVICE_CPU, -1, LP_F32, err, sizeof(err)) == 0, "cpu backend starts");
	ok(!strcmp(lp_act_dtype() == LP_F32 ? "f32" : "?", "f32") && lp_act_size() == 4,
			"activations are f32");
	fprintf(stderr, "# %s\n", lp_kernels_describe());
	lp_rng_seed(&rng, 20240601);
	test_errors();
	test_memory();
	test_convert();

	test_embedding(LP_F32);
	test_embedding(LP_BF16);
	test_embedding(LP_F16);

	test_rmsnorm(5, 7, LP_F32, 1);
	test_rmsnorm(3, 6, LP_BF16, 1);
	test_rmsnorm(64, 300, LP_F32, 0);

	test_matmul(5, 7, 9, LP_F32, 0.7f, 0.3f, 1);
	test_matmul(5, 7, 9, LP_BF16, 1.0f, 0.0f, 1);
	test_matmul(4, 6, 5, LP_F16, 2.0f, 1.0f, 1);
	test_matmul(64, 200, 300, LP_F32, 1.0f, 0.0f, 0);
	test_matmul(64, 200, 300, LP_BF16, 0.5f, 1.0f, 0);
	test_matmul(3, 64, 20000, LP_BF16, 1.0f, 0.0f, 0);     /* two conversion blocks */

	test_rope(5, 3, 6, 50, 1.0f, 1);
	test_rope(4, 2, 8, 50, 1.3f, 1);
	test_rope(64, 8, 128, 2048, 1.0f, 0);

	for (int kvh = 4; kvh >= 1; kvh /= 2) {
		test_attention(2, 5, 4, kvh, 6, MASK_NONE, 0, 1);
		test_attention(2, 5, 4, kvh, 6, MASK_RIGHT_PAD, 0, 1);
		test_attention(2, 5, 4, kvh, 6, MASK_HOLES, 0.3f, 1);
	}
	test_attention(1, 7, 2, 1, 5, MASK_NONE, 0, 1);
	test_attention(2, 70, 4, 2, 16, MASK_RIGHT_PAD, 0, 0);
	test_cached(2, 9, 4, 2, 6, 12);
	test_cached(3, 9, 4, 1, 6, 11);
	test_cached(2, 9, 4, 4, 8, 9);

	test_swiglu(5, 7, 1);
	test_swiglu(64, 1000, 0);
	test_add_scale(1001);
	test_add_scale(300001);
	test_dropout(200003, 0.1f);
	test_dropout(1000, 0.5f);

	test_cross_entropy(6, 7, 1);
	test_cross_entropy(16, 5000, 0);

	test_sumsq(100003);
	test_sumsq(7);
	test_adamw(37, 1e-2, 0.9, 0.999, 1e-8, 0.1);
	test_adamw(100000, 2e-4, 0.9, 0.999, 1e-8, 0.01);
	test_adamw(37, 1e-3, 0.3, 0.99, 1e-6, 0.0);   /* lerp weight >= 0.5 */
	test_adamw_flat();
	return tap_done();
}
