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

/* The ops every backend may provide, one line each as
 *   X(name, (parameters), (arguments)),
 * all returning void: the function pointers of lp_backend_ops and the
 * wrappers lp_<name> of kernels.c are both made from this list, so an op is
 * added here, declared in kernels.h and given to a backend's table. Memory
 * ops first, then the ops of kernels.h in its order. */
#define LP_BACKEND_VOID_OPS(X) \
	X(free, (void *p), (p)) \
	X(upload, (void *dst, const void *host_src, size_t bytes), (dst, host_src, bytes)) \
	X(download, (void *host_dst, const void *src, size_t bytes), (host_dst, src, bytes)) \
	X(copy, (void *dst, const void *src, size_t bytes), (dst, src, bytes)) \
	X(zero, (void *p, size_t bytes), (p, bytes)) \
	X(convert, (void *dst, int dst_dtype, const void *src, int src_dtype, size_t n), (dst, dst_dtype, src, src_dtype, n)) \
	X(embedding_forward, (void *out, const int32_t *ids, lp_weight wte, int N, int C), (out, ids, wte, N, C)) \
	X(embedding_backward, (float *dwte, const void *dout, const int32_t *ids, int N, int C), (dwte, dout, ids, N, C)) \
	X(rmsnorm_forward, (void *out, float *rstd, const void *inp, lp_weight w, int N, int C, float eps), (out, rstd, inp, w, N, C, eps)) \
	X(rmsnorm_backward, (void *dinp, float *dw, const void *dout, const void *inp, lp_weight w, const float *rstd, int N, int C, int accumulate), (dinp, dw, dout, inp, w, rstd, N, C, accumulate)) \
	X(matmul_forward, (void *out, const void *inp, lp_weight W, int N, int C, int OC, float alpha, float beta), (out, inp, W, N, C, OC, alpha, beta)) \
	X(matmul_backward, (void *dinp, float *dW, const void *dout, const void *inp, lp_weight W, int N, int C, int OC, float alpha, float beta), (dinp, dW, dout, inp, W, N, C, OC, alpha, beta)) \
	X(rope_forward, (void *x, const int32_t *pos, const float *inv_freq, int N, int nh, int D, float attn_factor), (x, pos, inv_freq, N, nh, D, attn_factor)) \
	X(rope_backward, (void *dx, const int32_t *pos, const float *inv_freq, int N, int nh, int D, float attn_factor), (dx, pos, inv_freq, N, nh, D, attn_factor)) \
	X(attention_forward, (void *out, float *lse, const void *q, const void *k, const void *v, const uint8_t *mask, int B, int T, int H, int KVH, int D, float scale), (out, lse, q, k, v, mask, B, T, H, KVH, D, scale)) \
	X(attention_backward, (void *dq, void *dk, void *dv, const void *dout, const void *out, const float *lse, const void *q, const void *k, const void *v, const uint8_t *mask, int B, int T, int H, int KVH, int D, float scale), (dq, dk, dv, dout, out, lse, q, k, v, mask, B, T, H, KVH, D, scale)) \
	X(attention_cached, (void *out, const void *q, const void *kcache, const void *vcache, const int32_t *past, const uint8_t *cache_mask, int B, int Tq, int Tmax, int H, int KVH, int D, float scale), (out, q, kcache, vcache, past, cache_mask, B, Tq, Tmax, H, KVH, D, scale)) \
	X(kv_store, (void *kcache, void *vcache, const void *k, const void *v, const int32_t *past, int B, int Tq, int Tmax, int KVH, int D), (kcache, vcache, k, v, past, B, Tq, Tmax, KVH, D)) \
	X(swiglu_forward, (void *out, const void *gate, const void *up, int N, int I), (out, gate, up, N, I)) \
	X(swiglu_backward, (void *dgate, void *dup, const void *dout, const void *gate, const void *up, int N, int I), (dgate, dup, dout, gate, up, N, I)) \
	X(add_inplace, (void *x, const void *y, size_t n), (x, y, n)) \
	X(scale_inplace, (void *x, float s, size_t n), (x, s, n)) \
	X(dropout_forward, (void *out, const void *inp, float p, uint64_t seed, size_t n), (out, inp, p, seed, n)) \
	X(dropout_backward, (void *dinp, const void *dout, float p, uint64_t seed, size_t n), (dinp, dout, p, seed, n)) \
	X(cross_entropy, (float *losses, void *dlogits, const void *logits, const int32_t *targets, int N, int V, float grad_scale), (losses, dlogits, logits, targets, N, V, grad_scale)) \
	X(sumsq_f32, (float *out, const float *x, size_t n), (out, x, n)) \
	X(scale_f32, (float *x, float s, size_t n), (x, s, n)) \
	X(adamw_f32, (float *param, const float *grad, float *m, float *v, size_t n, double lr, double beta1, double beta2, double eps, double weight_decay, int t), (param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, t)) \
	X(adamw_flat, (float *param, const float *grad, float *m, float *v, const lp_adamw_segment *seg, int nseg, double lr, double beta1, double beta2, double eps, int t, void *work, int work_dtype), (param, grad, m, v, seg, nseg, lr, beta1, beta2, eps, t, work, work_dtype))

typedef struct {
	const char *name;
	/* start on device_index (< 0: the backend's default, device 0; the CPU
	 * has one device): 0, or -1 with a message; describe() after a
	 * successful init */
	int (*init)(int device_index, int act_dtype, char *err, size_t errlen);
	const char *(*describe)(void);
	void (*shutdown)(void);
	void *(*alloc)(size_t bytes);
#define LP_OP_FIELD(name, params, args) void (*name) params;
	LP_BACKEND_VOID_OPS(LP_OP_FIELD)
#undef LP_OP_FIELD
	/* decode graphs (kernels.h, lp_graph_*): NULL where the backend runs
	 * ops as they come */
	int (*graph_replay)(int slot);
	void (*graph_record_begin)(int slot);
	void (*graph_record_end)(int slot);
	void (*graph_reset)(void);
} lp_backend_ops;

extern const lp_backend_ops lp_cpu_ops;
/* NULL when the build has no CUDA (kernels/cuda/none.c) */
extern const lp_backend_ops *const lp_cuda_ops_ptr;

#endif
