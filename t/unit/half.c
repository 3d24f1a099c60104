/* half.c: f16 and bf16 conversions of half.h. */
#include <math.h>

#include "base/half.h"
#include "tap.h"

int main(void)
{
	int bad = 0;
	for (uint32_t h = 0; h < 65536; h++) {
		float f = lp_f16_to_f32(h);
		if (!isnan(f) && lp_f32_to_f16(f) != h)
			bad++;
	}
	ok(bad == 0, "every f16 value survives f16 -> f32 -> f16 (%d bad)", bad);
#ifdef __FLT16_MAX__
	bad = 0;
	for (uint64_t u = 0; u < 0x100000000ull; u += 4099) {
		float f = lp_bits_f32((uint32_t)u);
		_Float16 x = (_Float16)f;
		uint16_t r;
		memcpy(&r, &x, 2);
		if (!isnan(f) && r != lp_f32_to_f16(f))
			bad++;
	}
	ok(bad == 0, "f32 -> f16 equals the compiler's conversion on 1M values (%d bad)", bad);
#endif
	ok(lp_f32_to_f16(65519.0f) == 0x7bff && lp_f32_to_f16(65520.0f) == 0x7c00, "f16 overflow edge");
	ok(lp_f32_to_f16(0x1p-25f) == 0 && lp_f32_to_f16(0x1.8p-25f) == 1, "f16 smallest subnormal rounding");
	ok(lp_f32_to_bf16(1.0f) == 0x3f80 && lp_bf16_to_f32(0x3f80) == 1.0f, "bf16 one");
	/* round to nearest even at the tie: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 */
	ok(lp_f32_to_bf16(1.0f + 0x1p-8f) == 0x3f80, "bf16 tie rounds to even (down)");
	ok(lp_f32_to_bf16(1.0f + 0x1p-7f + 0x1p-8f) == 0x3f82, "bf16 tie rounds to even (up)");
	ok(lp_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f) == 0x3f81, "bf16 above tie rounds up");
	ok(isnan(lp_bf16_to_f32(lp_f32_to_bf16(NAN))) && isinf(lp_bf16_to_f32(lp_f32_to_bf16(INFINITY))),
			"bf16 keeps NaN and infinity");
	bad = 0;
	for (uint32_t h = 0; h < 65536; h++) {
		float f = lp_bf16_to_f32(h);
		if (!isnan(f) && lp_f32_to_bf16(f) != h)
			bad++;
	}
	ok(bad == 0, "every bf16 value survives bf16 -> f32 -> bf16 (%d bad)", bad);
	return tap_done();
}
