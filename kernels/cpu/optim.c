/* optim.c: gradient norm, scaling and AdamW on f32 master weights. */
#include <math.h>
#include <stdlib.h>

#include "common.h"
#include "cpu.h"

#define CHUNK 8192

/* out[0] += sum x^2: fixed chunks summed in double, then in chunk order. */
void lp_cpu_sumsq_f32(float *out, const float *x, size_t n)
{
	long nchunks = (long)((n + CHUNK - 1) / CHUNK);
	double *part = lp_cpu_scratch(sizeof(double) * (size_t)(nchunks ? nchunks : 1));
	#pragma omp parallel for schedule(static)
	for (long c = 0; c < nchunks; c++) {
		size_t i0 = (size_t)c * CHUNK, i1 = i0 + CHUNK < n ? i0 + CHUNK : n;
		double s = 0;
		for (size_t i = i0; i < i1; i++)
			s += (double)x[i] * x[i];
		part[c] = s;
	}
	double total = out[0];
	for (long c = 0; c < nchunks; c++)
		total += part[c];
	out[0] = (float)total;
	free(part);
}

void lp_cpu_scale_f32(float *x, float s, size_t n)
{
	#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++)
		x[i] *= s;
}

/* AdamW in the order of operations of torch.optim.AdamW (single-tensor or
 * foreach, float32 parameters on the CPU): m and v bit for bit with torch
 * 2.x on x86-64 AVX2/AVX-512 builds, p too where torch's vectorised sqrt is
 * correctly rounded (on some processors it is 1 ulp off; t/ref/kernels_torch.py
 * checks and bounds it). sqrtf here is IEEE, so ours is the same on every
 * processor and for every thread count. Scalars
 * are computed in double as Python does and cast to float where torch
 * casts them:
 *   p *= (float)(1 - lr wd)
 *   m = fma(w, g - m, m), w = (float)(1 - b1)       (ATen's lerp; w >= 0.5:
 *                                                     fma(w - 1, g - m, g))
 *   v = fma((float)(1 - b2) * g, g, v * (float)b2)   (mul_ then addcmul_, whose
 *                                                     vector code GCC contracts)
 *   denom = sqrt(v) / (float)sqrt(1 - b2^t) + (float)eps
 *   p += ((float)(-lr / (1 - b1^t)) * m) / denom     (addcdiv_) */
void lp_cpu_adamw_f32(float *param, const float *grad, float *m, float *v, size_t n,
		double lr, double beta1, double beta2, double eps, double weight_decay, int t)
{
	float decay = (float)(1.0 - lr * weight_decay);
	float w = (float)(1.0 - beta1);
	int small = fabsf(w) < 0.5f;
	float coeff = small ? w : w - 1.0f;
	float b2 = (float)beta2, omb2 = (float)(1.0 - beta2);
	double bc1 = 1.0 - pow(beta1, (double)t);
	double bc2 = 1.0 - pow(beta2, (double)t);
	float bc2_sqrt = (float)sqrt(bc2);
	float step = (float)(-(lr / bc1));
	float epsf = (float)eps;
	#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++) {
		float g = grad[i];
		float p = param[i] * decay;
		float mi = fmaf(coeff, g - m[i], small ? m[i] : g);
		float vi = fmaf(omb2 * g, g, v[i] * b2);
		float denom = sqrtf(vi) / bc2_sqrt + epsf;
		param[i] = p + step * mi / denom;
		m[i] = mi;
		v[i] = vi;
	}
}

/* Segment by segment; the working copy as lp_convert would round it. */
void lp_cpu_adamw_flat(float *param, const float *grad, float *m, float *v,
		const lp_adamw_segment *seg, int nseg, double lr, double beta1, double beta2,
		double eps, int t, void *work, int work_dtype)
{
	for (int i = 0; i < nseg; i++) {
		size_t o = seg[i].off, n = seg[i].n;
		lp_cpu_adamw_f32(param + o, grad + o, m + o, v + o, n, lr, beta1, beta2, eps,
				seg[i].weight_decay, t);
		if (!work)
			continue;
		switch (work_dtype) {
		case LP_BF16:
			for (size_t j = 0; j < n; j++)
				((uint16_t *)work)[o + j] = lp_f32_to_bf16(param[o + j]);
			break;
		case LP_F16:
			for (size_t j = 0; j < n; j++)
				((uint16_t *)work)[o + j] = lp_f32_to_f16(param[o + j]);
			break;
		case LP_F32:
			memcpy((float *)work + o, param + o, n * sizeof(float));
			break;
		default:
			lp_die("cpu", "adamw_flat: working copy dtype %d is not bf16, f16 or f32",
					work_dtype);
		}
	}
}
