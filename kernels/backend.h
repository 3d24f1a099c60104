/* backend.h: what a backend provides behind kernels.h.
 *
 * Each backend fills one lp_backend_ops table (kernels/cpu: lp_cpu_ops,
 * kernels/cuda: lp_cuda_ops); kernels.c forwards every lp_* call of
 * kernels.h to the table of the backend chosen by lp_kernels_init(). An op
 * a backend does not have yet is NULL, and calling it is an error naming
 * the op and the backend. Signatures and contracts are those of kernels.h. */
#ifndef LP_BACKEND_H
#define LP_BACKEND_H

#include "kernels.h"

typedef struct {
	const char *name;
	/* start: 0, or -1 with a message; describe() after a successful init */
	int (*init)(int act_dtype, char *err, size_t errlen);
	const char *(*describe)(void);
	void (*shutdown)(void);
	void *(*alloc)(size_t bytes);
	void (*free)(void *p);
	void (*upload)(void *dst, const void *host_src, size_t bytes);
	void (*download)(void *host_dst, const void *src, size_t bytes);
	void (*copy)(void *dst, const void *src, size_t bytes);
	void (*zero)(void *p, size_t bytes);
	void (*convert)(void *dst, int dst_dtype, const void *src, int src_dtype, size_t n);
	void (*embedding_forward)(void *out, const int32_t *ids, lp_weight wte, int N, int C);
	void (*embedding_backward)(float *dwte, const void *dout, const int32_t *ids, int N, int C);
	void (*rmsnorm_forward)(void *out, float *rstd, const void *inp, lp_weight w, int N, int C, float eps);
	void (*rmsnorm_backward)(void *dinp, float *dw, const void *dout, const void *inp, lp_weight w, const float *rstd, int N, int C, int accumulate);
	void (*matmul_forward)(void *out, const void *inp, lp_weight W, int N, int C, int OC, float alpha, float beta);
	void (*matmul_backward)(void *dinp, float *dW, const void *dout, const void *inp, lp_weight W, int N, int C, int OC, float alpha, float beta);
	void (*rope_forward)(void *x, const int32_t *pos, const float *inv_freq, int N, int nh, int D, float attn_factor);
	void (*rope_backward)(void *dx, const int32_t *pos, const float *inv_freq, int N, int nh, int D, float attn_factor);
	void (*attention_forward)(void *out, float *lse, const void *q, const void *k, const void *v, const uint8_t *mask, int B, int T, int H, int KVH, int D, float scale);
	void (*attention_backward)(void *dq, void *dk, void *dv, const void *dout, const void *out, const float *lse, const void *q, const void *k, const void *v, const uint8_t *mask, int B, int T, int H, int KVH, int D, float scale);
	void (*attention_cached)(void *out, const void *q, const void *kcache, const void *vcache, const int32_t *past, const uint8_t *cache_mask, int B, int Tq, int Tmax, int H, int KVH, int D, float scale);
	void (*kv_store)(void *kcache, void *vcache, const void *k, const void *v, const int32_t *past, int B, int Tq, int Tmax, int KVH, int D);
	void (*swiglu_forward)(void *out, const void *gate, const void *up, int N, int I);
	void (*swiglu_backward)(void *dgate, void *dup, const void *dout, const void *gate, const void *up, int N, int I);
	void (*add_inplace)(void *x, const void *y, size_t n);
	void (*scale_inplace)(void *x, float s, size_t n);
	void (*dropout_forward)(void *out, const void *inp, float p, uint64_t seed, size_t n);
	void (*dropout_backward)(void *dinp, const void *dout, float p, uint64_t seed, size_t n);
	void (*cross_entropy)(float *losses, void *dlogits, const void *logits, const int32_t *targets, int N, int V, float grad_scale);
	void (*sumsq_f32)(float *out, const float *x, size_t n);
	void (*scale_f32)(float *x, float s, size_t n);
	void (*adamw_f32)(float *param, const float *grad, float *m, float *v, size_t n, double lr, double beta1, double beta2, double eps, double weight_decay, int t);
	int (*graph_replay)(int slot);          /* NULL: the backend does not record */
	void (*graph_record_begin)(int slot);
	void (*graph_record_end)(int slot);
	void (*graph_reset)(void);
	void (*adamw_flat)(float *param, const float *grad, float *m, float *v, const lp_adamw_segment *seg, int nseg, double lr, double beta1, double beta2, double eps, int t, void *work, int work_dtype);
} lp_backend_ops;

extern const lp_backend_ops lp_cpu_ops;
/* NULL when the build has no CUDA (kernels/cuda/none.c) */
extern const lp_backend_ops *const lp_cuda_ops_ptr;

#endif
