/* half.h: f32 <-> bf16 / f16 conversions on the host (round to nearest even,
 * NaN and infinities kept, subnormals exact). Header-only: these are inner
 * loops of loaders, converters and the CPU backend. */
#ifndef LP_HALF_H
#define LP_HALF_H

#include <stdint.h>
#include <string.h>

static inline uint32_t lp_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float lp_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static inline float lp_bf16_to_f32(uint16_t h) { return lp_bits_f32((uint32_t)h << 16); }

static inline uint16_t lp_f32_to_bf16(float f)
{
	uint32_t u = lp_f32_bits(f);
	if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN: keep it quiet, keep the sign */
		return (uint16_t)((u >> 16) | 0x40);
	u += 0x7fffu + ((u >> 16) & 1);
	return (uint16_t)(u >> 16);
}

static inline float lp_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
	if (exp == 0x1f) /* inf / nan */
		return lp_bits_f32(sign | 0x7f800000u | (man << 13));
	if (exp == 0) { /* zero / subnormal: man * 2^-24 */
		float v = (float)man * (1.0f / 16777216.0f);
		return sign ? -v : v;
	}
	return lp_bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

static inline uint16_t lp_f32_to_f16(float f)
{
	uint32_t u = lp_f32_bits(f), sign = (u >> 16) & 0x8000;
	uint32_t a = u & 0x7fffffffu;
	if (a > 0x7f800000u) /* NaN */
		return (uint16_t)(sign | 0x7e00 | ((a >> 13) & 0x3ff));
	if (a >= 0x477ff000u) /* rounds to >= 65520: infinity */
		return (uint16_t)(sign | 0x7c00);
	if (a < 0x38800000u) { /* below the smallest normal 2^-14: subnormal */
		if (a < 0x33000000u) /* below half the smallest subnormal: zero */
			return (uint16_t)sign;
		uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u;
		int shift = 126 - (int)e; /* 14..24 */
		uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
		if (rem > half || (rem == half && (r & 1)))
			r++;
		return (uint16_t)(sign | r);
	}
	uint32_t r = a - 0x38000000u; /* rebias exponent 127 -> 15 */
	r += 0xfffu + ((r >> 13) & 1);
	return (uint16_t)(sign | (r >> 13));
}

#endif
