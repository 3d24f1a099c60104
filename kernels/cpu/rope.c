/* rope.c: rotary position embedding, rotate-half layout as in Hugging Face.
 *
 * For row n, head j, i < D/2 with h = D/2:
 *   angle = (float)pos[n] * inv_freq[i]            (f32, as HF's matmul gives)
 *   c = cos(angle) * attn_factor, s = sin(angle) * attn_factor
 *   y[i]     = x[i] * c - x[i+h] * s               (x * cos + rotate_half(x) * sin)
 *   y[i + h] = x[i+h] * c + x[i] * s
 * The backward applies the transpose, a rotation by -angle. */
#include <math.h>
#include <stdlib.h>

#include "common.h"
#include "cpu.h"

static void rope(float *x, const int32_t *pos, const float *inv_freq, int N, int nh, int D,
		float attn_factor, float dir, const char *op)
{
	if (D % 2)
		lp_die("cpu", "%s: head size %d is odd", op, D);
	int h = D / 2;
	#pragma omp parallel
	{
		float *cs = lp_cpu_scratch(sizeof(float) * (size_t)(h ? 2 * h : 1));
		float *sn = cs + h;
		#pragma omp for schedule(static)
		for (int n = 0; n < N; n++) {
			for (int i = 0; i < h; i++) {
				float a = (float)pos[n] * inv_freq[i];
				cs[i] = cosf(a) * attn_factor;
				sn[i] = dir * (sinf(a) * attn_factor);
			}
			for (int j = 0; j < nh; j++) {
				float *r = x + ((size_t)n * nh + j) * D;
				for (int i = 0; i < h; i++) {
					float x1 = r[i], x2 = r[i + h];
					r[i] = x1 * cs[i] - x2 * sn[i];
					r[i + h] = x2 * cs[i] + x1 * sn[i];
				}
			}
		}
		free(cs);
	}
}

void lp_cpu_rope_forward(void *x, const int32_t *pos, const float *inv_freq,
		int N, int nh, int D, float attn_factor)
{
	rope(x, pos, inv_freq, N, nh, D, attn_factor, 1.0f, "rope_forward");
}

void lp_cpu_rope_backward(void *dx, const int32_t *pos, const float *inv_freq,
		int N, int nh, int D, float attn_factor)
{
	rope(dx, pos, inv_freq, N, nh, D, attn_factor, -1.0f, "rope_backward");
}
