/* quant.c: quantized frozen weights, the part every backend shares.
 *
 * Quantization runs on the host, block by block of rows, as a loader
 * streams a weight in; only codes and scales are uploaded. Dequantization
 * and the matmuls that use it are the backends' (cpu/quant.c,
 * cuda/quant.cu). The arithmetic is bitsandbytes' as its CPU build runs
 * it, so codes and scales come out byte for byte the same:
 * - 4-bit (its quantize_4bit): absmax per block in f32, the scaled value
 *   x * (1 / absmax) clamped to [-1, 1] (absmax 0 scales by 1 / 1e-38),
 *   then the bucket among the midpoints of the sorted code values (a value
 *   on a midpoint takes the lower bucket);
 * - double quantization (its quantize_blockwise): offset = mean of absmax,
 *   then for blocks of 256 of absmax - offset: absmax2 = max |x|, the value
 *   x * (1 / absmax2) and the code its CPU build's lookup table gives (the
 *   nearest value of the signed dynamic map at a resolution of 2 / 65535);
 * - int8 (its int8_vectorwise_quant of the f16 weight, no threshold).
 * The mean is summed in the order of PyTorch's CPU sum kernel (vectors of
 * 8 floats, 4 interleaved, a cascade of 4 levels; then the scalar tail and
 * the lanes), then divided by n in f32: that is torch.mean's result
 * whenever PyTorch sums in one chunk (fewer than 32768 blocks, or one
 * thread); above that its result depends on its thread count. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "half.h"
#include "kernels.h"

/* bitsandbytes' NF4 values (normal-float quantiles) and FP4 values (1 sign,
 * 2 exponent, 1 mantissa bits; scaled so the largest is 1), by index. FP4's
 * negative zero (index 8) dequantizes to +0, as bitsandbytes' does. */
static const float nf4_code[16] = {
	-1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
	-0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
	0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
	0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
};
static const float fp4_code[16] = {
	0.0f, 0.0052083334885537624f, 0.6666666865348816f, 1.0f,
	0.3333333432674408f, 0.5f, 0.1666666716337204f, 0.25f,
	0.0f, -0.0052083334885537624f, -0.6666666865348816f, -1.0f,
	-0.3333333432674408f, -0.5f, -0.1666666716337204f, -0.25f,
};
/* FP4 indices in ascending order of value (+0 before -0, as PyTorch's
 * argsort puts them). */
static const uint8_t fp4_order[16] = {11, 10, 13, 12, 15, 14, 9, 0, 8, 1, 6, 7, 4, 5, 2, 3};

/* The signed dynamic map of bitsandbytes (8-bit: sign, a run of zeros
 * setting the decimal exponent, then linear fraction), sorted. */
static const float dynamic_map[256] = {
	-0x1.fc6666p-1f, -0x1.f53334p-1f, -0x1.eep-1f, -0x1.e6ccccp-1f, -0x1.df999ap-1f, -0x1.d86666p-1f,
	-0x1.d13334p-1f, -0x1.cap-1f, -0x1.c2ccccp-1f, -0x1.bb999ap-1f, -0x1.b46666p-1f, -0x1.ad3334p-1f,
	-0x1.a6p-1f, -0x1.9eccccp-1f, -0x1.97999ap-1f, -0x1.906666p-1f, -0x1.893334p-1f, -0x1.82p-1f,
	-0x1.7accccp-1f, -0x1.73999ap-1f, -0x1.6c6668p-1f, -0x1.653334p-1f, -0x1.5ep-1f, -0x1.56ccccp-1f,
	-0x1.4f999ap-1f, -0x1.486668p-1f, -0x1.413334p-1f, -0x1.3ap-1f, -0x1.32ccccp-1f, -0x1.2b999ap-1f,
	-0x1.246668p-1f, -0x1.1d3334p-1f, -0x1.16p-1f, -0x1.0eccccp-1f, -0x1.079998p-1f, -0x1.006666p-1f,
	-0x1.f26664p-2f, -0x1.e4p-2f, -0x1.d59998p-2f, -0x1.c73334p-2f, -0x1.b8ccccp-2f, -0x1.aa6666p-2f,
	-0x1.9cp-2f, -0x1.8d9998p-2f, -0x1.7f3334p-2f, -0x1.70ccccp-2f, -0x1.626666p-2f, -0x1.54p-2f,
	-0x1.459998p-2f, -0x1.373334p-2f, -0x1.28ccccp-2f, -0x1.1a6668p-2f, -0x1.0cp-2f, -0x1.fb3332p-3f,
	-0x1.de6666p-3f, -0x1.c1999ap-3f, -0x1.a4ccccp-3f, -0x1.88p-3f, -0x1.6b3334p-3f, -0x1.4e6666p-3f,
	-0x1.31999ap-3f, -0x1.14ccccp-3f, -0x1.fp-4f, -0x1.b66668p-4f, -0x1.93d70ap-4f, -0x1.8851eep-4f,
	-0x1.7ccccep-4f, -0x1.7147aep-4f, -0x1.65c29p-4f, -0x1.5a3d7p-4f, -0x1.4eb854p-4f, -0x1.433334p-4f,
	-0x1.37ae14p-4f, -0x1.2c28f6p-4f, -0x1.20a3d6p-4f, -0x1.151ebap-4f, -0x1.09999ap-4f, -0x1.fc28f6p-5f,
	-0x1.e51ebap-5f, -0x1.ce147ap-5f, -0x1.b70a3ep-5f, -0x1.ap-5f, -0x1.88f5c2p-5f, -0x1.71eb86p-5f,
	-0x1.5ae146p-5f, -0x1.43d70ap-5f, -0x1.2ccccep-5f, -0x1.15c29p-5f, -0x1.fd70a4p-6f, -0x1.cf5c2ap-6f,
	-0x1.a147aep-6f, -0x1.733334p-6f, -0x1.451ebap-6f, -0x1.170a3ep-6f, -0x1.d1eb86p-7f, -0x1.75c29p-7f,
	-0x1.3e76c8p-7f, -0x1.2c083p-7f, -0x1.19999ap-7f, -0x1.072b02p-7f, -0x1.e978d4p-8f, -0x1.c49ba6p-8f,
	-0x1.9fbe76p-8f, -0x1.7ae148p-8f, -0x1.56041ap-8f, -0x1.3126e8p-8f, -0x1.0c49bap-8f, -0x1.ced914p-9f,
	-0x1.851eb8p-9f, -0x1.3b645ap-9f, -0x1.e353f8p-10f, -0x1.4fdf3ap-10f, -0x1.eecbfep-11f, -0x1.b3d07cp-11f,
	-0x1.78d5p-11f, -0x1.3dd982p-11f, -0x1.02de02p-11f, -0x1.8fc506p-12f, -0x1.19ce0ap-12f, -0x1.47ae16p-13f,
	-0x1.743e96p-14f, -0x1.15df66p-14f, -0x1.6f0068p-15f, -0x1.64840cp-16f, -0x1.040bfep-17f, -0x1.b43528p-19f,
	-0x1.27476ep-21f, 0.0f, 0x1.27476ep-21f, 0x1.b43528p-19f, 0x1.040bfep-17f, 0x1.64840cp-16f,
	0x1.6f0068p-15f, 0x1.15df66p-14f, 0x1.743e96p-14f, 0x1.47ae16p-13f, 0x1.19ce0ap-12f, 0x1.8fc506p-12f,
	0x1.02de02p-11f, 0x1.3dd982p-11f, 0x1.78d5p-11f, 0x1.b3d07cp-11f, 0x1.eecbfep-11f, 0x1.4fdf3ap-10f,
	0x1.e353f8p-10f, 0x1.3b645ap-9f, 0x1.851eb8p-9f, 0x1.ced914p-9f, 0x1.0c49bap-8f, 0x1.3126e8p-8f,
	0x1.56041ap-8f, 0x1.7ae148p-8f, 0x1.9fbe76p-8f, 0x1.c49ba6p-8f, 0x1.e978d4p-8f, 0x1.072b02p-7f,
	0x1.19999ap-7f, 0x1.2c083p-7f, 0x1.3e76c8p-7f, 0x1.75c29p-7f, 0x1.d1eb86p-7f, 0x1.170a3ep-6f,
	0x1.451ebap-6f, 0x1.733334p-6f, 0x1.a147aep-6f, 0x1.cf5c2ap-6f, 0x1.fd70a4p-6f, 0x1.15c29p-5f,
	0x1.2ccccep-5f, 0x1.43d70ap-5f, 0x1.5ae146p-5f, 0x1.71eb86p-5f, 0x1.88f5c2p-5f, 0x1.ap-5f,
	0x1.b70a3ep-5f, 0x1.ce147ap-5f, 0x1.e51ebap-5f, 0x1.fc28f6p-5f, 0x1.09999ap-4f, 0x1.151ebap-4f,
	0x1.20a3d6p-4f, 0x1.2c28f6p-4f, 0x1.37ae14p-4f, 0x1.433334p-4f, 0x1.4eb854p-4f, 0x1.5a3d7p-4f,
	0x1.65c29p-4f, 0x1.7147aep-4f, 0x1.7ccccep-4f, 0x1.8851eep-4f, 0x1.93d70ap-4f, 0x1.b66668p-4f,
	0x1.fp-4f, 0x1.14ccccp-3f, 0x1.31999ap-3f, 0x1.4e6666p-3f, 0x1.6b3334p-3f, 0x1.88p-3f,
	0x1.a4ccccp-3f, 0x1.c1999ap-3f, 0x1.de6666p-3f, 0x1.fb3332p-3f, 0x1.0cp-2f, 0x1.1a6668p-2f,
	0x1.28ccccp-2f, 0x1.373334p-2f, 0x1.459998p-2f, 0x1.54p-2f, 0x1.626666p-2f, 0x1.70ccccp-2f,
	0x1.7f3334p-2f, 0x1.8d9998p-2f, 0x1.9cp-2f, 0x1.aa6666p-2f, 0x1.b8ccccp-2f, 0x1.c73334p-2f,
	0x1.d59998p-2f, 0x1.e4p-2f, 0x1.f26664p-2f, 0x1.006666p-1f, 0x1.079998p-1f, 0x1.0eccccp-1f,
	0x1.16p-1f, 0x1.1d3334p-1f, 0x1.246668p-1f, 0x1.2b999ap-1f, 0x1.32ccccp-1f, 0x1.3ap-1f,
	0x1.413334p-1f, 0x1.486668p-1f, 0x1.4f999ap-1f, 0x1.56ccccp-1f, 0x1.5ep-1f, 0x1.653334p-1f,
	0x1.6c6668p-1f, 0x1.73999ap-1f, 0x1.7accccp-1f, 0x1.82p-1f, 0x1.893334p-1f, 0x1.906666p-1f,
	0x1.97999ap-1f, 0x1.9eccccp-1f, 0x1.a6p-1f, 0x1.ad3334p-1f, 0x1.b46666p-1f, 0x1.bb999ap-1f,
	0x1.c2ccccp-1f, 0x1.cap-1f, 0x1.d13334p-1f, 0x1.d86666p-1f, 0x1.df999ap-1f, 0x1.e6ccccp-1f,
	0x1.eep-1f, 0x1.f53334p-1f, 0x1.fc6666p-1f, 0x1p+0f,
};

const float *lp_q_dynamic_map(void) { return dynamic_map; }

const float *lp_q4_code(int qtype)
{
	return qtype == LP_QFP4 ? fp4_code : nf4_code;
}

int lp_qtype_parse(const char *name)
{
	if (!strcmp(name, "nf4"))
		return LP_QNF4;
	if (!strcmp(name, "fp4"))
		return LP_QFP4;
	if (!strcmp(name, "int8"))
		return LP_QINT8;
	return 0;
}

const char *lp_qtype_name(int qtype)
{
	switch (qtype) {
	case LP_QNF4: return "nf4";
	case LP_QFP4: return "fp4";
	case LP_QINT8: return "int8";
	default: return NULL;
	}
}

static float load(const void *p, int dtype, int64_t i)
{
	switch (dtype) {
	case LP_BF16: return lp_bf16_to_f32(((const uint16_t *)p)[i]);
	case LP_F16: return lp_f16_to_f32(((const uint16_t *)p)[i]);
	default: return ((const float *)p)[i];
	}
}

/* ---- 4-bit ---- */

/* Midpoints of the sorted code values, as f32 (a + b) / 2. */
static void q4_bounds(int qtype, float bounds[15], uint8_t order[16])
{
	const float *code = lp_q4_code(qtype);
	for (int i = 0; i < 16; i++)
		order[i] = qtype == LP_QFP4 ? fp4_order[i] : (uint8_t)i;
	for (int i = 0; i < 15; i++)
		bounds[i] = (code[order[i]] + code[order[i + 1]]) / 2.0f;
}

/* The first bucket whose bound is >= x (torch.bucketize, right=False). */
static int bucket(const float bounds[15], float x)
{
	int lo = 0, hi = 15;
	while (lo < hi) {
		int mid = (lo + hi) / 2;
		if (bounds[mid] < x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static float clamp1(float x)
{
	return x < -1.0f ? -1.0f : x > 1.0f ? 1.0f : x;
}

void lp_q4_quantize_host(uint8_t *packed, float *absmax, const void *src, int src_dtype,
		int qtype, int blocksize, int64_t n)
{
	float bounds[15];
	uint8_t order[16];
	q4_bounds(qtype, bounds, order);
	int64_t nblocks = (n + blocksize - 1) / blocksize;
	/* blocksize is even, so a block fills whole bytes but for an odd tail */
	#pragma omp parallel for schedule(static)
	for (int64_t b = 0; b < nblocks; b++) {
		int64_t i0 = b * blocksize, i1 = i0 + blocksize < n ? i0 + blocksize : n;
		float m = 0.0f;
		for (int64_t i = i0; i < i1; i++) {
			float a = fabsf(load(src, src_dtype, i));
			m = a > m || isnan(a) ? a : m;
		}
		/* a short last block is stored clamped and divided by, as
		 * bitsandbytes treats its remainder */
		int tail = i1 - i0 < blocksize;
		float am = m > 1e-38f ? m : 1e-38f, inv = 1.0f / am;
		absmax[b] = tail ? am : m;
		for (int64_t i = i0; i < i1; i += 2) {
			float x0 = load(src, src_dtype, i);
			float x1 = i + 1 < i1 ? load(src, src_dtype, i + 1) : 0.0f;
			x0 = tail ? x0 / am : x0 * inv;
			x1 = tail ? x1 / am : x1 * inv;
			uint8_t hi = order[bucket(bounds, clamp1(x0))];
			uint8_t lo = order[bucket(bounds, clamp1(x1))];
			packed[i / 2] = (uint8_t)(hi << 4 | lo);
		}
	}
}

/* ---- int8 ---- */

void lp_int8_quantize_host(int8_t *cb, float *scb, const void *src, int src_dtype,
		int64_t rows, int64_t cols)
{
	#pragma omp parallel for schedule(static)
	for (int64_t r = 0; r < rows; r++) {
		/* the f16 weight, as bitsandbytes quantizes W.to(float16) */
		float m = 0.0f;
		for (int64_t c = 0; c < cols; c++) {
			float a = fabsf(lp_f16_to_f32(lp_f32_to_f16(load(src, src_dtype, r * cols + c))));
			m = a > m || isnan(a) ? a : m;
		}
		scb[r] = m;
		float s = (1.0f / m) * 127.0f;  /* PyTorch's 127.0 / t is t.reciprocal() * 127 */
		for (int64_t c = 0; c < cols; c++) {
			float x = lp_f16_to_f32(lp_f32_to_f16(load(src, src_dtype, r * cols + c))) * s;
			float y = nearbyintf(x);   /* half to even under the default rounding mode */
			cb[r * cols + c] = isnan(y) ? 0 : y > 127.0f ? 127 : y < -128.0f ? -128 : (int8_t)y;
		}
	}
}

/* ---- double quantization ---- */

#define SUM_LANES 8
#define SUM_ILP 4
#define SUM_LEVELS 4

typedef struct { float l[SUM_LANES]; } lanes;

static void lanes_add(lanes *a, const lanes *b)
{
	for (int k = 0; k < SUM_LANES; k++)
		a->l[k] += b->l[k];
}

static int ceil_log2(int64_t x)
{
	int r = 0;
	while (((int64_t)1 << r) < x)
		r++;
	return r;
}

/* PyTorch's cascade sum of one contiguous row (aten SumKernel: vectors of
 * SUM_LANES floats, SUM_ILP interleaved accumulators, SUM_LEVELS levels of
 * 2^level_power vectors each), then the scalar tail, then the lanes. */
float lp_q_mean_host(const float *x, int64_t n)
{
	if (n <= 0)
		return NAN;
	int64_t nvec = n / SUM_LANES, size = nvec / SUM_ILP;
	int power = ceil_log2(size) / SUM_LEVELS;
	power = power > 4 ? power : 4;
	int64_t step = (int64_t)1 << power, mask = step - 1;
	lanes acc[SUM_LEVELS][SUM_ILP];
	memset(acc, 0, sizeof acc);
	int64_t i = 0;
	#define ROW(i, k) ((const lanes *)(x + ((i) * SUM_ILP + (k)) * SUM_LANES))
	for (; i + step <= size;) {
		for (int64_t j = 0; j < step; j++, i++)
			for (int k = 0; k < SUM_ILP; k++) {
				lanes v;
				memcpy(&v, ROW(i, k), sizeof v);
				lanes_add(&acc[0][k], &v);
			}
		for (int j = 1; j < SUM_LEVELS; j++) {
			for (int k = 0; k < SUM_ILP; k++) {
				lanes_add(&acc[j][k], &acc[j - 1][k]);
				memset(&acc[j - 1][k], 0, sizeof(lanes));
			}
			if ((i & (mask << (j * power))) != 0)
				break;
		}
	}
	for (; i < size; i++)
		for (int k = 0; k < SUM_ILP; k++) {
			lanes v;
			memcpy(&v, ROW(i, k), sizeof v);
			lanes_add(&acc[0][k], &v);
		}
	for (int j = 1; j < SUM_LEVELS; j++)
		for (int k = 0; k < SUM_ILP; k++)
			lanes_add(&acc[0][k], &acc[j][k]);
	#undef ROW
	lanes part = acc[0][0];
	for (int64_t v = size * SUM_ILP; v < nvec; v++) {
		lanes t;
		memcpy(&t, x + v * SUM_LANES, sizeof t);
		lanes_add(&part, &t);
	}
	for (int k = 1; k < SUM_ILP; k++)
		lanes_add(&part, &acc[0][k]);
	float sum = 0.0f;
	for (int64_t e = nvec * SUM_LANES; e < n; e++)
		sum += x[e];
	for (int k = 0; k < SUM_LANES; k++)
		sum += part.l[k];
	return sum / (float)n;
}

/* bitsandbytes' CPU blockwise 8-bit quantizer looks codes up in a table
 * of 65536 bins over [-1, 1]: bin i holds the first code whose midpoint
 * with the next code is not below -1 + 2i / 65535; a value x / absmax
 * goes to bin (int)(((v + 1) * 0.5) * 65535 + 0.5) (v clamped to [-1, 1]). */
#define Q8_BINS 65536

static void q8_table(uint8_t *lut, const float *code)
{
	float mid[255];
	for (int i = 0; i < 255; i++)
		mid[i] = 0.5f * (code[i] + code[i + 1]);
	int c = 0;
	for (int i = 0; i < Q8_BINS; i++) {
		float val = -1.0f + (2.0f * (float)i) / (float)(Q8_BINS - 1);
		while (c < 255 && mid[c] < val)
			c++;
		lut[i] = (uint8_t)c;
	}
}

void lp_q8_blockwise_host(uint8_t *q, float *absmax2, const float *x, int64_t n,
		int blocksize, const float *code2)
{
	int64_t nblocks = (n + blocksize - 1) / blocksize;
	uint8_t *lut = lp_malloc(Q8_BINS);
	q8_table(lut, code2);
	#pragma omp parallel for schedule(static)
	for (int64_t b = 0; b < nblocks; b++) {
		int64_t i0 = b * blocksize, i1 = i0 + blocksize < n ? i0 + blocksize : n;
		float m = 0.0f;
		for (int64_t i = i0; i < i1; i++) {
			float a = fabsf(x[i]);
			m = a > m ? a : m;      /* a NaN counts as 0 */
		}
		absmax2[b] = m;
		float inv = 1.0f / m;
		for (int64_t i = i0; i < i1; i++) {
			if (m == 0.0f) {
				q[i] = 0;
				continue;
			}
			float v = clamp1(x[i] * inv);
			float t = (v + 1.0f) * 0.5f;
			t = t * (float)(Q8_BINS - 1);
			t = t + 0.5f;
			q[i] = lut[(int)t];
		}
	}
	free(lut);
}

/* ---- weights on the device ---- */

void lp_qweight_alloc(lp_qweight *q, int qtype, int64_t rows, int64_t cols, int blocksize)
{
	memset(q, 0, sizeof *q);
	if (!lp_is_qtype(qtype))
		lp_die("quant", "unknown quantization type %d", qtype);
	if (rows <= 0 || cols <= 0 || rows > INT32_MAX || cols > INT32_MAX)
		lp_die("quant", "bad weight shape (%lld, %lld)", (long long)rows, (long long)cols);
	q->qtype = qtype;
	q->rows = rows;
	q->cols = cols;
	int64_t n = rows * cols;
	if (qtype == LP_QINT8) {
		q->blocksize = (int)cols;
		q->nblocks = rows;
		q->data = lp_alloc((size_t)n);
	} else {
		if (blocksize < 32 || blocksize > 4096 || (blocksize & (blocksize - 1)))
			lp_die("quant", "block size %d is not a power of two in [32, 4096]", blocksize);
		q->blocksize = blocksize;
		q->nblocks = (n + blocksize - 1) / blocksize;
		q->data = lp_alloc((size_t)(n + 1) / 2);
	}
	q->absmax = lp_alloc((size_t)q->nblocks * sizeof(float));
}

void lp_qweight_free(lp_qweight *q)
{
	lp_free(q->data);
	lp_free(q->absmax);
	lp_free(q->qabsmax);
	lp_free(q->absmax2);
	lp_free(q->code2);
	memset(q, 0, sizeof *q);
}

size_t lp_qweight_bytes(const lp_qweight *q)
{
	int64_t n = q->rows * q->cols;
	size_t b = q->qtype == LP_QINT8 ? (size_t)n : (size_t)(n + 1) / 2;
	if (q->absmax)
		b += (size_t)q->nblocks * sizeof(float);
	if (q->qabsmax)
		b += (size_t)q->nblocks + (size_t)((q->nblocks + LP_QBLOCK2 - 1) / LP_QBLOCK2) *
			sizeof(float) + 256 * sizeof(float);
	return b;
}

void lp_quantize_rows(lp_qweight *q, const void *src, int src_dtype, int64_t r0, int64_t nrows)
{
	if (!q->absmax)
		lp_die("quant", "quantize_rows: the weight's scales are already compressed");
	if (src_dtype != LP_F32 && src_dtype != LP_BF16 && src_dtype != LP_F16)
		lp_die("quant", "quantize_rows: source dtype %d is not f32, bf16 or f16", src_dtype);
	if (r0 < 0 || nrows < 0 || r0 + nrows > q->rows)
		lp_die("quant", "quantize_rows: rows [%lld, %lld) outside %lld", (long long)r0,
				(long long)(r0 + nrows), (long long)q->rows);
	if (nrows == 0)
		return;
	int64_t e0 = r0 * q->cols, n = nrows * q->cols;
	if (q->qtype == LP_QINT8) {
		int8_t *cb = lp_malloc((size_t)n);
		float *scb = lp_malloc((size_t)nrows * sizeof *scb);
		lp_int8_quantize_host(cb, scb, src, src_dtype, nrows, q->cols);
		lp_upload(q->data + e0, cb, (size_t)n);
		lp_upload(q->absmax + r0, scb, (size_t)nrows * sizeof *scb);
		free(cb);
		free(scb);
		return;
	}
	if (e0 % q->blocksize || (r0 + nrows < q->rows && n % q->blocksize))
		lp_die("quant", "quantize_rows: rows [%lld, %lld) do not start and end on blocks of %d",
				(long long)r0, (long long)(r0 + nrows), q->blocksize);
	int64_t nb = (n + q->blocksize - 1) / q->blocksize;
	uint8_t *packed = lp_malloc((size_t)(n + 1) / 2);
	float *absmax = lp_malloc((size_t)nb * sizeof *absmax);
	lp_q4_quantize_host(packed, absmax, src, src_dtype, q->qtype, q->blocksize, n);
	lp_upload(q->data + e0 / 2, packed, (size_t)(n + 1) / 2);
	lp_upload(q->absmax + e0 / q->blocksize, absmax, (size_t)nb * sizeof *absmax);
	free(packed);
	free(absmax);
}

void lp_qweight_compress(lp_qweight *q)
{
	if (q->qtype == LP_QINT8 || !q->absmax)
		return;
	int64_t n = q->nblocks, n2 = (n + LP_QBLOCK2 - 1) / LP_QBLOCK2;
	float *absmax = lp_malloc((size_t)n * sizeof *absmax);
	lp_download(absmax, q->absmax, (size_t)n * sizeof *absmax);
	q->offset = lp_q_mean_host(absmax, n);
	for (int64_t i = 0; i < n; i++)
		absmax[i] -= q->offset;
	uint8_t *codes = lp_malloc((size_t)n);
	float *absmax2 = lp_malloc((size_t)n2 * sizeof *absmax2);
	lp_q8_blockwise_host(codes, absmax2, absmax, n, LP_QBLOCK2, dynamic_map);
	q->qabsmax = lp_alloc((size_t)n);
	q->absmax2 = lp_alloc((size_t)n2 * sizeof(float));
	q->code2 = lp_alloc(256 * sizeof(float));
	lp_upload(q->qabsmax, codes, (size_t)n);
	lp_upload(q->absmax2, absmax2, (size_t)n2 * sizeof(float));
	lp_upload(q->code2, dynamic_map, 256 * sizeof(float));
	lp_free(q->absmax);
	q->absmax = NULL;
	free(absmax);
	free(codes);
	free(absmax2);
}

/* The backends' dequantizers (cpu/quant.c; cuda/quant.cu, NULL without). */
void lp_cpu_dequantize_rows(void *dst, int dst_dtype, const lp_qweight *q, int64_t r0,
		int64_t nrows);
extern void (*const lp_cuda_dequantize_rows_fn)(void *dst, int dst_dtype, const lp_qweight *q,
		int64_t r0, int64_t nrows);

void lp_dequantize_rows(void *dst, int dst_dtype, const lp_qweight *q, int64_t r0, int64_t nrows)
{
	if (r0 < 0 || nrows < 0 || r0 + nrows > q->rows)
		lp_die("quant", "dequantize_rows: rows [%lld, %lld) outside %lld", (long long)r0,
				(long long)(r0 + nrows), (long long)q->rows);
	if (dst_dtype != LP_F32 && dst_dtype != LP_BF16 && dst_dtype != LP_F16)
		lp_die("quant", "dequantize_rows: output dtype %d is not f32, bf16 or f16", dst_dtype);
	if (lp_kernels_device() == LP_DEVICE_CUDA && lp_cuda_dequantize_rows_fn)
		lp_cuda_dequantize_rows_fn(dst, dst_dtype, q, r0, nrows);
	else
		lp_cpu_dequantize_rows(dst, dst_dtype, q, r0, nrows);
}
