/* rope.cu: rotary position embedding in place, rotate-half layout (HF).
 *
 * For row n, head j, i < h = D/2:
 *   angle = (float)pos[n] * inv_freq[i]        (f32, as HF's matmul gives)
 *   c = cos(angle) * attn_factor, s = sin(angle) * attn_factor
 *   y[i]     = x[i] * c - x[i+h] * s           (x * cos + rotate_half(x) * sin)
 *   y[i + h] = x[i+h] * c + x[i] * s
 * sincosf is the accurate one (full range reduction), not __sincosf. The
 * backward applies the transpose, a rotation by -angle (dir = -1). */
#include "cuda.cuh"

/* One thread per rotated pair (n, j, i) of x[N, nh, D]. */
template <typename T>
static __global__ void rope_forward_kernel(T *x, const int32_t *pos, const float *inv_freq,
		int nh, int D, float attn_factor, float dir, size_t pairs)
{
	int h = D / 2;
	LP_GRID_STRIDE(k, pairs) {
		size_t i = k % h, row = k / h;          /* row = n * nh + j */
		size_t n = row / nh;
		float a = (float)pos[n] * inv_freq[i];
		float s, c;
		sincosf(a, &s, &c);
		c *= attn_factor;
		s = dir * (s * attn_factor);
		T *r = x + row * D;
		float x1 = to_f32(r[i]), x2 = to_f32(r[i + h]);
		store_f32(&r[i], x1 * c - x2 * s);
		store_f32(&r[i + h], x2 * c + x1 * s);
	}
}

template <typename T>
static void rope_launch(void *x, const int32_t *pos, const float *inv_freq,
		int N, int nh, int D, float attn_factor, float dir)
{
	size_t pairs = (size_t)N * nh * (D / 2);
	rope_forward_kernel<T><<<lp_blocks(pairs, LP_THREADS), LP_THREADS, 0, lp_cuda.stream>>>(
			(T *)x, pos, inv_freq, nh, D, attn_factor, dir, pairs);
	LAUNCH_CHECK();
}

static void rope(void *x, const int32_t *pos, const float *inv_freq, int N, int nh, int D,
		float attn_factor, float dir, const char *op)
{
	if (D % 2)
		lp_die("cuda", "%s: head size %d is odd", op, D);
	if (N <= 0 || nh <= 0 || D <= 0)
		return;
	if (lp_cuda.act == LP_BF16)
		rope_launch<__nv_bfloat16>(x, pos, inv_freq, N, nh, D, attn_factor, dir);
	else
		rope_launch<float>(x, pos, inv_freq, N, nh, D, attn_factor, dir);
	OP_DONE(op);
}

void lp_cuda_rope_forward(void *x, const int32_t *pos, const float *inv_freq,
		int N, int nh, int D, float attn_factor)
{
	rope(x, pos, inv_freq, N, nh, D, attn_factor, 1.0f, "rope_forward");
}

void lp_cuda_rope_backward(void *dx, const int32_t *pos, const float *inv_freq,
		int N, int nh, int D, float attn_factor)
{
	rope(dx, pos, inv_freq, N, nh, D, attn_factor, -1.0f, "rope_backward");
}
