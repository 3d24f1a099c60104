/* kernels.h: the one op interface the model code calls.
 *
 * Two implementations sit behind it: kernels/cpu/ (the reference: plain C,
 * OpenMP, BLAS for GEMM, f32 math) and kernels/cuda/ (cuBLASLt GEMM and own
 * fused kernels). The model code never allocates, reads or writes tensor
 * memory itself: it asks the backend for buffers, moves bytes in and out
 * with lp_upload/lp_download, and calls ops on opaque device pointers.
 *
 * Element types. Activations and their gradients are of the backend's
 * activation type, lp_act_dtype(): LP_F32 on the CPU; LP_F32 or LP_BF16 on
 * CUDA. Frozen weights are lp_weight views of any of f32, bf16, f16 (the
 * CPU backend converts to f32 inside the op). Trainable parameters, their
 * gradients and optimizer states are always f32 ("master" copies).
 * Integer inputs (token ids, positions, targets) are i32.
 *
 * Shapes are in the argument names; N = number of rows (batch * time),
 * B = batch, T = time, C = channels (hidden size), OC = output channels,
 * H = query heads, KVH = key/value heads (H % KVH == 0), D = head size,
 * I = intermediate (MLP) size, V = vocabulary. Matrices are row-major;
 * a weight W of a Linear layer is (OC, C) as Hugging Face stores it, and
 * y = x @ W^T.
 *
 * Backward ops accumulate into parameter gradients (+=) and, unless named
 * otherwise, overwrite input gradients (=). Every op is synchronous with
 * respect to later ops on the same backend (a stream-ordered queue on CUDA);
 * lp_download waits for them. */
#ifndef LP_KERNELS_H
#define LP_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"

enum lp_device { LP_DEVICE_CPU = 0, LP_DEVICE_CUDA = 1 };

/* Select and start a backend (threads for the CPU; device, streams and
 * handles for CUDA) on device device_index of that kind: for CUDA the
 * index among those CUDA_VISIBLE_DEVICES shows, < 0 for the default
 * (device 0); the CPU is one device (-1 or 0). Returns 0, or -1 with a
 * message in err when the backend was not built in or the device is not
 * present. */
int lp_kernels_init(enum lp_device dev, int device_index, int act_dtype, char *err,
		size_t errlen);
enum lp_device lp_kernels_device(void);
int lp_act_dtype(void);
size_t lp_act_size(void);
const char *lp_kernels_describe(void); /* "cpu (2 threads, openblas)" */
void lp_kernels_shutdown(void);

/* ---- memory: the only way model code touches tensors ---- */
void *lp_alloc(size_t bytes);          /* zeroed; dies on failure */
void lp_free(void *p);
void lp_upload(void *dst, const void *host_src, size_t bytes);
void lp_download(void *host_dst, const void *src, size_t bytes);
void lp_copy(void *dst, const void *src, size_t bytes);   /* device to device */
void lp_zero(void *p, size_t bytes);
/* Convert n elements between any of f32/bf16/f16 (same or other device
 * buffer); used to load weights and to read activations back as f32. */
void lp_convert(void *dst, int dst_dtype, const void *src, int src_dtype, size_t n);

/* A frozen weight matrix on the device: (rows, cols), row-major. */
typedef struct {
	const void *data;
	int dtype;           /* LP_F32, LP_BF16 or LP_F16 */
	int rows, cols;
} lp_weight;

/* ---- forward and backward ops ---- */

/* out[N,C] = wte[ids[n], :].  dwte (V,C, f32) += scatter of dout. */
void lp_embedding_forward(void *out, const int32_t *ids, lp_weight wte, int N, int C);
void lp_embedding_backward(float *dwte, const void *dout, const int32_t *ids, int N, int C);

/* out[N,C] = inp / rms(inp) * w; rstd[N] (f32) saved for backward. */
void lp_rmsnorm_forward(void *out, float *rstd, const void *inp, lp_weight w,
		int N, int C, float eps);
/* dinp[N,C] (+= when accumulate) from dout; dw (C, f32, may be NULL) +=. */
void lp_rmsnorm_backward(void *dinp, float *dw, const void *dout, const void *inp,
		lp_weight w, const float *rstd, int N, int C, int accumulate);

/* out[N,OC] = beta * out + alpha * inp[N,C] @ W^T (W is (OC,C)). */
void lp_matmul_forward(void *out, const void *inp, lp_weight W, int N, int C, int OC,
		float alpha, float beta);
/* dinp[N,C] = beta * dinp + alpha * dout[N,OC] @ W, and (dW may be NULL)
 * dW (OC,C, f32) += alpha * dout^T @ inp. dinp may be NULL too (no input
 * gradient wanted). */
void lp_matmul_backward(void *dinp, float *dW, const void *dout, const void *inp,
		lp_weight W, int N, int C, int OC, float alpha, float beta);

/* Rotary embedding in place on x[N, nh, D] (rotate-half layout, as HF):
 * position of row n is pos[n]; inv_freq[D/2] (f32, device) holds the
 * frequencies after any rope scaling, attn_factor multiplies cos and sin
 * (1 unless a scaling type says otherwise). Backward rotates by -angle. */
void lp_rope_forward(void *x, const int32_t *pos, const float *inv_freq,
		int N, int nh, int D, float attn_factor);
void lp_rope_backward(void *dx, const int32_t *pos, const float *inv_freq,
		int N, int nh, int D, float attn_factor);

/* Causal self-attention over whole sequences (training, prefill):
 * q[B,T,H,D], k,v[B,T,KVH,D] -> out[B,T,H,D]; lse[B,H,T] (f32) saved for
 * backward (log-sum-exp of each softmax row). Row t of batch b attends to
 * positions s <= t with mask[b,s] != 0 (mask NULL: all; used for right
 * padding). scale = 1/sqrt(D) unless given (scale <= 0 selects 1/sqrt(D)).
 * A row with no position to attend to gets out = 0, lse = -INFINITY and
 * contributes no gradient. */
void lp_attention_forward(void *out, float *lse, const void *q, const void *k,
		const void *v, const uint8_t *mask, int B, int T, int H, int KVH, int D,
		float scale);
void lp_attention_backward(void *dq, void *dk, void *dv, const void *dout,
		const void *out, const float *lse, const void *q, const void *k,
		const void *v, const uint8_t *mask, int B, int T, int H, int KVH, int D,
		float scale);

/* Decoding with a KV cache: q[B,Tq,H,D] are the newest Tq positions of each
 * sequence, whose cache holds k,v[B,Tmax,KVH,D] filled for positions
 * [0, past[b] + Tq). Query i of batch b sits at position past[b] + i and
 * attends causally. cache_mask[b,s] (may be NULL) drops cached positions
 * (left padding in batched generation). */
void lp_attention_cached(void *out, const void *q, const void *kcache,
		const void *vcache, const int32_t *past, const uint8_t *cache_mask,
		int B, int Tq, int Tmax, int H, int KVH, int D, float scale);
/* Write k,v[B,Tq,KVH,D] into the caches at positions past[b] + i. */
void lp_kv_store(void *kcache, void *vcache, const void *k, const void *v,
		const int32_t *past, int B, int Tq, int Tmax, int KVH, int D);

/* SwiGLU: out[N,I] = silu(gate) * up; backward writes dgate, dup. */
void lp_swiglu_forward(void *out, const void *gate, const void *up, int N, int I);
void lp_swiglu_backward(void *dgate, void *dup, const void *dout, const void *gate,
		const void *up, int N, int I);

/* x[n] += y[n] (residual); scale x[n] *= s. */
void lp_add_inplace(void *x, const void *y, size_t n);
void lp_scale_inplace(void *x, float s, size_t n);

/* Dropout: out = inp * mask / (1 - p), mask from a counter-based RNG keyed
 * by (seed, offset of element) so forward and backward agree and results do
 * not depend on the backend's thread layout. p == 0 copies. Every backend
 * draws the same mask: element i is kept iff (z >> 32) >= (uint64_t)(p * 2^32)
 * where z is splitmix64's output for state seed + (i + 1) * 0x9e3779b97f4a7c15
 * (z ^= z >> 30, z *= 0xbf58476d1ce4e5b9, z ^= z >> 27, z *= 0x94d049bb133111eb,
 * z ^= z >> 31); kept elements are multiplied by 1.0f / (1.0f - p). */
void lp_dropout_forward(void *out, const void *inp, float p, uint64_t seed, size_t n);
void lp_dropout_backward(void *dinp, const void *dout, float p, uint64_t seed, size_t n);

/* Fused cross-entropy over logits[N,V]: losses[N] (f32) = -log softmax at
 * targets[n] (0 where targets[n] == -100), and if dlogits is not NULL,
 * dlogits[N,V] = (softmax - onehot) * grad_scale for counted rows, 0 for
 * ignored rows (may alias logits). */
void lp_cross_entropy(float *losses, void *dlogits, const void *logits,
		const int32_t *targets, int N, int V, float grad_scale);

/* ---- recording a fixed sequence of ops (decoding) ----
 *
 * A caller that issues the same ops on the same buffers again and again
 * (one decoding step) may record them once in a slot and replay them:
 *
 *   if (!lp_graph_replay(slot)) {
 *           lp_graph_record_begin(slot);
 *           ... the ops ...
 *           lp_graph_record_end(slot);      (runs what was recorded)
 *   }
 *
 * The ops may read only device memory that changes between replays
 * (ids, positions), never host values. A backend that does not record
 * (the CPU; CUDA unless LP_CUDA_GRAPH=1, and never under LP_CUDA_SYNC)
 * runs the ops as they come: replay returns 0 and begin/end do nothing.
 * lp_graph_reset() forgets every slot (call it when the buffers the
 * recorded ops use are freed or move). Slots 0 .. LP_GRAPH_SLOTS - 1. */
#define LP_GRAPH_SLOTS 16
int lp_graph_replay(int slot);
void lp_graph_record_begin(int slot);
void lp_graph_record_end(int slot);
void lp_graph_reset(void);

/* ---- f32 parameter updates (master weights) ---- */

/* out[0] (f32, device) = sum of x[i]^2 over n elements of an f32 buffer,
 * added to what out[0] held. */
void lp_sumsq_f32(float *out, const float *x, size_t n);
void lp_scale_f32(float *x, float s, size_t n);
/* AdamW (decoupled weight decay, bias-corrected, as torch.optim.AdamW):
 * step t >= 1. The hyperparameters are double, as Python's floats are, so
 * the scalars torch derives from them (1 - lr*wd, bias corrections, step
 * size) can be formed the same way before rounding to f32. */
void lp_adamw_f32(float *param, const float *grad, float *m, float *v, size_t n,
		double lr, double beta1, double beta2, double eps, double weight_decay, int t);

/* A run of the flat parameter buffers that shares a weight decay. */
typedef struct {
	size_t off, n;          /* elements */
	double weight_decay;
} lp_adamw_segment;
/* lp_adamw_f32 over nseg segments (a host array) of the flat buffers in
 * one pass (one launch on CUDA), each segment with its own decay: the
 * same arithmetic, bit for bit, as one lp_adamw_f32 per segment. When
 * work is not NULL, work[off + i] (of work_dtype: bf16, f16 or f32) also
 * gets each updated parameter, rounded to nearest even: a working copy
 * for the next forward pass. */
void lp_adamw_flat(float *param, const float *grad, float *m, float *v,
		const lp_adamw_segment *seg, int nseg, double lr, double beta1, double beta2,
		double eps, int t, void *work, int work_dtype);

/* ---- quantized frozen weights (bitsandbytes' formats) ----
 *
 * A Linear weight may be held quantized, as bitsandbytes holds it, and
 * passed to lp_matmul_forward/backward as an lp_weight whose dtype is one
 * of the types below and whose data points to an lp_qweight (a host struct
 * of device pointers). Matmuls dequantize inside the op, a block of rows at
 * a time; no full-precision copy of the weight is kept.
 *
 * LP_QNF4, LP_QFP4: the matrix flattened row-major into blocks of
 * blocksize elements (64 unless chosen). Block b has absmax[b] = max |x|;
 * element x becomes the index of the nearest of 16 code values to
 * x * (1 / absmax[b]) (bitsandbytes' NF4 or FP4 table; ties go to the
 * lower code value; FP4 indices in bitsandbytes' order), two to a byte,
 * the even element in the high nibble (an odd count pads with the code of
 * 0). Dequantized: code[index] * absmax[b], in f32. Double quantization
 * (compress) replaces the f32 absmax by one byte each: offset = the mean
 * of absmax (summed in PyTorch's order, see kernels/quant.c), then
 * absmax - offset quantized by bitsandbytes' blockwise 8-bit scheme
 * (blocks of 256, signed dynamic map code2, absmax2 per block; the code
 * nearest x / absmax2 by its lookup table, see kernels/quant.c).
 * absmax[b] is then
 * code2[qabsmax[b]] * absmax2[b / 256] + offset.
 * LP_QINT8: LLM.int8's weight format: each row r converted to f16, then
 * scb[r] = max |row| and cb[r,c] = round-half-even(x * ((1 / scb[r]) * 127))
 * as int8; dequantized (cb * scb) * (1 / 127) in f32.
 *
 * Bytes are bitsandbytes' own for the same input (t/t0320-quant.t). */
enum lp_qtype { LP_QNF4 = 32, LP_QFP4 = 33, LP_QINT8 = 34 };

typedef struct {
	int qtype;              /* LP_QNF4, LP_QFP4 or LP_QINT8 */
	int64_t rows, cols;
	int blocksize;          /* 4-bit: elements per absmax; int8: cols */
	int64_t nblocks;        /* 4-bit: ceil(rows * cols / blocksize); int8: rows */
	uint8_t *data;          /* 4-bit: (rows * cols + 1) / 2 bytes; int8: rows * cols */
	float *absmax;          /* [nblocks]; int8: scb [rows]; NULL once compressed */
	uint8_t *qabsmax;       /* [nblocks] after compress, else NULL */
	float *absmax2;         /* [ceil(nblocks / 256)] after compress */
	float *code2;           /* [256] after compress */
	float offset;
	/* int8 only: 0, or LLM.int8's forward with this outlier threshold
	 * (bitsandbytes' inference path, threshold=6.0 by default): the input
	 * is rounded to f16; columns holding any |x| >= threshold are
	 * multiplied by the weight's dequantized columns (rounded to f16), the
	 * others quantized row-wise to int8 (scale = max |x| of the row's
	 * other elements), multiplied in integers, and scaled back by
	 * scale_row * scb * (1 / 127^2). Backward always multiplies by the
	 * dequantized weight (bitsandbytes' path for training on the CPU).
	 * The CUDA backend multiplies by the dequantized weight either way. */
	float threshold;
} lp_qweight;

#define LP_QBLOCK2 256

/* "nf4", "fp4", "int8" -> the type; 0 if unknown. */
int lp_qtype_parse(const char *name);
const char *lp_qtype_name(int qtype);
static inline int lp_is_qtype(int dtype)
{
	return dtype == LP_QNF4 || dtype == LP_QFP4 || dtype == LP_QINT8;
}
/* Allocate (device) the codes and f32 absmax of a (rows, cols) weight. */
void lp_qweight_alloc(lp_qweight *q, int qtype, int64_t rows, int64_t cols, int blocksize);
void lp_qweight_free(lp_qweight *q);
/* Device bytes the weight holds now. */
size_t lp_qweight_bytes(const lp_qweight *q);
static inline lp_weight lp_qweight_view(const lp_qweight *q)
{
	lp_weight w = {q, q->qtype, (int)q->rows, (int)q->cols};
	return w;
}
/* Quantize rows [r0, r0 + nrows) given as host memory src (nrows, cols) of
 * f32/bf16/f16, on the host, and upload the codes and absmax. Chunks may
 * come in any order; r0 * cols must be a multiple of blocksize and, unless
 * the chunk ends the matrix, so must nrows * cols (any multiple of
 * blocksize rows will do). Not for a compressed weight. */
void lp_quantize_rows(lp_qweight *q, const void *src, int src_dtype, int64_t r0, int64_t nrows);
/* Double quantization of a 4-bit weight's absmax (after every row). */
void lp_qweight_compress(lp_qweight *q);
/* Rows [r0, r0 + nrows) dequantized into dst (device, nrows * cols of
 * f32/bf16/f16), as bitsandbytes' dequantize_4bit / int8 dequantize. */
void lp_dequantize_rows(void *dst, int dst_dtype, const lp_qweight *q, int64_t r0, int64_t nrows);

/* Host-side building blocks (kernels/quant.c), exposed for tests: the 4-bit
 * code table of a type; absmax and codes of n consecutive elements of src
 * starting at a block boundary; the offset (mean) and blockwise 8-bit
 * quantization of double quantization; the signed dynamic map. */
const float *lp_q4_code(int qtype);
void lp_q4_quantize_host(uint8_t *packed, float *absmax, const void *src, int src_dtype,
		int qtype, int blocksize, int64_t n);
void lp_int8_quantize_host(int8_t *cb, float *scb, const void *src, int src_dtype,
		int64_t rows, int64_t cols);
float lp_q_mean_host(const float *x, int64_t n);
void lp_q8_blockwise_host(uint8_t *q, float *absmax2, const float *x, int64_t n,
		int blocksize, const float *code2);
const float *lp_q_dynamic_map(void);

#endif
