/* kernels.c: forwards each op of kernels.h to the chosen backend. */
#include "backend.h"

#include <stdio.h>
#include <stdlib.h>

#include "common.h"

static const lp_backend_ops *ops = &lp_cpu_ops;
static enum lp_device device = LP_DEVICE_CPU;
static int act_dtype = LP_F32;

static _Noreturn void missing(const char *op)
{
	lp_die(ops->name, "op %s is not implemented on this backend", op);
}

int lp_kernels_init(enum lp_device dev, int dtype, char *err, size_t errlen)
{
	const lp_backend_ops *want = dev == LP_DEVICE_CUDA ? lp_cuda_ops_ptr : &lp_cpu_ops;
	if (!want) {
		snprintf(err, errlen, "this build has no CUDA backend (nvcc was not found)");
		return -1;
	}
	if (want->init(dtype, err, errlen) != 0)
		return -1;
	ops = want;
	device = dev;
	act_dtype = dtype;
	return 0;
}

enum lp_device lp_kernels_device(void) { return device; }
int lp_act_dtype(void) { return act_dtype; }
size_t lp_act_size(void) { return lp_dtype_size(act_dtype); }
const char *lp_kernels_describe(void) { return ops->describe(); }

void lp_kernels_shutdown(void)
{
	if (ops->shutdown)
		ops->shutdown();
}

void *lp_alloc(size_t bytes)
{
	if (!ops->alloc)
		missing("alloc");
	return ops->alloc(bytes);
}

void lp_free(void *p)
{
	if (!ops->free)
		missing("free");
	ops->free(p);
}

void lp_upload(void *dst, const void *host_src, size_t bytes)
{
	if (!ops->upload)
		missing("upload");
	ops->upload(dst, host_src, bytes);
}

void lp_download(void *host_dst, const void *src, size_t bytes)
{
	if (!ops->download)
		missing("download");
	ops->download(host_dst, src, bytes);
}

void lp_copy(void *dst, const void *src, size_t bytes)
{
	if (!ops->copy)
		missing("copy");
	ops->copy(dst, src, bytes);
}

void lp_zero(void *p, size_t bytes)
{
	if (!ops->zero)
		missing("zero");
	ops->zero(p, bytes);
}

void lp_convert(void *dst, int dst_dtype, const void *src, int src_dtype, size_t n)
{
	if (!ops->convert)
		missing("convert");
	ops->convert(dst, dst_dtype, src, src_dtype, n);
}

void lp_embedding_forward(void *out, const int32_t *ids, lp_weight wte, int N, int C)
{
	if (!ops->embedding_forward)
		missing("embedding_forward");
	ops->embedding_forward(out, ids, wte, N, C);
}

void lp_embedding_backward(float *dwte, const void *dout, const int32_t *ids, int N, int C)
{
	if (!ops->embedding_backward)
		missing("embedding_backward");
	ops->embedding_backward(dwte, dout, ids, N, C);
}

void lp_rmsnorm_forward(void *out, float *rstd, const void *inp, lp_weight w, int N, int C, float eps)
{
	if (!ops->rmsnorm_forward)
		missing("rmsnorm_forward");
	ops->rmsnorm_forward(out, rstd, inp, w, N, C, eps);
}

void lp_rmsnorm_backward(void *dinp, float *dw, const void *dout, const void *inp, lp_weight w, const float *rstd, int N, int C, int accumulate)
{
	if (!ops->rmsnorm_backward)
		missing("rmsnorm_backward");
	ops->rmsnorm_backward(dinp, dw, dout, inp, w, rstd, N, C, accumulate);
}

void lp_matmul_forward(void *out, const void *inp, lp_weight W, int N, int C, int OC, float alpha, float beta)
{
	if (!ops->matmul_forward)
		missing("matmul_forward");
	ops->matmul_forward(out, inp, W, N, C, OC, alpha, beta);
}

void lp_matmul_backward(void *dinp, float *dW, const void *dout, const void *inp, lp_weight W, int N, int C, int OC, float alpha, float beta)
{
	if (!ops->matmul_backward)
		missing("matmul_backward");
	ops->matmul_backward(dinp, dW, dout, inp, W, N, C, OC, alpha, beta);
}

void lp_rope_forward(void *x, const int32_t *pos, const float *inv_freq, int N, int nh, int D, float attn_factor)
{
	if (!ops->rope_forward)
		missing("rope_forward");
	ops->rope_forward(x, pos, inv_freq, N, nh, D, attn_factor);
}

void lp_rope_backward(void *dx, const int32_t *pos, const float *inv_freq, int N, int nh, int D, float attn_factor)
{
	if (!ops->rope_backward)
		missing("rope_backward");
	ops->rope_backward(dx, pos, inv_freq, N, nh, D, attn_factor);
}

void lp_attention_forward(void *out, float *lse, const void *q, const void *k, const void *v, const uint8_t *mask, int B, int T, int H, int KVH, int D, float scale)
{
	if (!ops->attention_forward)
		missing("attention_forward");
	ops->attention_forward(out, lse, q, k, v, mask, B, T, H, KVH, D, scale);
}

void lp_attention_backward(void *dq, void *dk, void *dv, const void *dout, const void *out, const float *lse, const void *q, const void *k, const void *v, const uint8_t *mask, int B, int T, int H, int KVH, int D, float scale)
{
	if (!ops->attention_backward)
		missing("attention_backward");
	ops->attention_backward(dq, dk, dv, dout, out, lse, q, k, v, mask, B, T, H, KVH, D, scale);
}

void lp_attention_cached(void *out, const void *q, const void *kcache, const void *vcache, const int32_t *past, const uint8_t *cache_mask, int B, int Tq, int Tmax, int H, int KVH, int D, float scale)
{
	if (!ops->attention_cached)
		missing("attention_cached");
	ops->attention_cached(out, q, kcache, vcache, past, cache_mask, B, Tq, Tmax, H, KVH, D, scale);
}

void lp_kv_store(void *kcache, void *vcache, const void *k, const void *v, const int32_t *past, int B, int Tq, int Tmax, int KVH, int D)
{
	if (!ops->kv_store)
		missing("kv_store");
	ops->kv_store(kcache, vcache, k, v, past, B, Tq, Tmax, KVH, D);
}

void lp_swiglu_forward(void *out, const void *gate, const void *up, int N, int I)
{
	if (!ops->swiglu_forward)
		missing("swiglu_forward");
	ops->swiglu_forward(out, gate, up, N, I);
}

void lp_swiglu_backward(void *dgate, void *dup, const void *dout, const void *gate, const void *up, int N, int I)
{
	if (!ops->swiglu_backward)
		missing("swiglu_backward");
	ops->swiglu_backward(dgate, dup, dout, gate, up, N, I);
}

void lp_add_inplace(void *x, const void *y, size_t n)
{
	if (!ops->add_inplace)
		missing("add_inplace");
	ops->add_inplace(x, y, n);
}

void lp_scale_inplace(void *x, float s, size_t n)
{
	if (!ops->scale_inplace)
		missing("scale_inplace");
	ops->scale_inplace(x, s, n);
}

void lp_dropout_forward(void *out, const void *inp, float p, uint64_t seed, size_t n)
{
	if (!ops->dropout_forward)
		missing("dropout_forward");
	ops->dropout_forward(out, inp, p, seed, n);
}

void lp_dropout_backward(void *dinp, const void *dout, float p, uint64_t seed, size_t n)
{
	if (!ops->dropout_backward)
		missing("dropout_backward");
	ops->dropout_backward(dinp, dout, p, seed, n);
}

void lp_cross_entropy(float *losses, void *dlogits, const void *logits, const int32_t *targets, int N, int V, float grad_scale)
{
	if (!ops->cross_entropy)
		missing("cross_entropy");
	ops->cross_entropy(losses, dlogits, logits, targets, N, V, grad_scale);
}

void lp_sumsq_f32(float *out, const float *x, size_t n)
{
	if (!ops->sumsq_f32)
		missing("sumsq_f32");
	ops->sumsq_f32(out, x, n);
}

void lp_scale_f32(float *x, float s, size_t n)
{
	if (!ops->scale_f32)
		missing("scale_f32");
	ops->scale_f32(x, s, n);
}

void lp_adamw_f32(float *param, const float *grad, float *m, float *v, size_t n, double lr, double beta1, double beta2, double eps, double weight_decay, int t)
{
	if (!ops->adamw_f32)
		missing("adamw_f32");
	ops->adamw_f32(param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, t);
}

void lp_adamw_flat(float *param, const float *grad, float *m, float *v, const lp_adamw_segment *seg, int nseg, double lr, double beta1, double beta2, double eps, int t, void *work, int work_dtype)
{
	if (!ops->adamw_flat)
		missing("adamw_flat");
	ops->adamw_flat(param, grad, m, v, seg, nseg, lr, beta1, beta2, eps, t, work, work_dtype);
}

/* Backends without recording run the ops as they come. */
int lp_graph_replay(int slot)
{
	return ops->graph_replay ? ops->graph_replay(slot) : 0;
}

void lp_graph_record_begin(int slot)
{
	if (ops->graph_record_begin)
		ops->graph_record_begin(slot);
}

void lp_graph_record_end(int slot)
{
	if (ops->graph_record_end)
		ops->graph_record_end(slot);
}

void lp_graph_reset(void)
{
	if (ops->graph_reset)
		ops->graph_reset();
}
