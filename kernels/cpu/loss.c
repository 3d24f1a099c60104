/* loss.c: fused softmax cross-entropy over the vocabulary. */
#include <math.h>

#include "common.h"
#include "cpu.h"

#define IGNORE (-100)

/* losses[n] = logsumexp(logits[n]) - logits[n, target]; with dlogits,
 * dlogits[n] = (softmax - onehot) * grad_scale, computed as torch's
 * log_softmax: (x - max) - log(sum exp(x - max)). Each row is read whole
 * before it is written, so dlogits may alias logits. */
void lp_cpu_cross_entropy(float *losses, void *dlogits, const void *logits,
		const int32_t *targets, int N, int V, float grad_scale)
{
	for (int n = 0; n < N; n++)
		if (targets[n] != IGNORE && (targets[n] < 0 || targets[n] >= V))
			lp_die("cpu", "cross_entropy: target %d at row %d is outside the "
					"vocabulary of %d", (int)targets[n], n, V);
	#pragma omp parallel for schedule(static)
	for (int n = 0; n < N; n++) {
		const float *x = (const float *)logits + (size_t)n * V;
		float *dx = dlogits ? (float *)dlogits + (size_t)n * V : NULL;
		int tgt = targets[n];
		if (tgt == IGNORE) {
			losses[n] = 0;
			if (dx)
				for (int i = 0; i < V; i++)
					dx[i] = 0;
			continue;
		}
		float m = -INFINITY;
		for (int i = 0; i < V; i++)
			if (x[i] > m)
				m = x[i];
		double sum = 0;
		for (int i = 0; i < V; i++)
			sum += expf(x[i] - m);
		float logsum = (float)log(sum);
		losses[n] = (float)(log(sum) - ((double)x[tgt] - m));
		if (!dx)
			continue;
		for (int i = 0; i < V; i++) {
			float p = expf((x[i] - m) - logsum);
			dx[i] = (i == tgt ? p - 1.0f : p) * grad_scale;
		}
	}
}
