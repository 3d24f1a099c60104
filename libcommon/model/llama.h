/* llama.h: the LLaMA model on the compute layer (kernels.h), for inference.
 *
 * lp_llama holds the weights on the device as lp_weight views (any of f32,
 * bf16, f16, as stored), plus LoRA pairs applied on the fly: a Linear
 * module's output becomes x @ W^T + sum over adapters of
 * scale * (x @ A^T) @ B^T, which equals the merged model without merging.
 * modules_to_save copies in an adapter (embed_tokens, lm_head) replace the
 * base's, so the vocabulary may grow.
 *
 * lp_llama_state holds the activations for up to B rows of up to T new
 * tokens per forward call and the KV cache of each row, (layer, B, Tmax,
 * KVH, D). A row's cache is filled left to right: forward feeds T tokens
 * per row at positions past[b] .. past[b] + T - 1. */
#ifndef LP_LLAMA_H
#define LP_LLAMA_H

#include <stdint.h>

#include "model/adapter_files.h"
#include "model/arch.h"
#include "kernels.h"
#include "model/model_config.h"
#include "model/model_files.h"
#include "model/quant_load.h"

typedef struct lp_lora_dev {
	lp_weight A;            /* (r, in) */
	lp_weight B;            /* (out, r) */
	float scale;
	struct lp_lora_dev *next;
} lp_lora_dev;

typedef struct {
	lp_weight attn_norm, ffn_norm;          /* (C) */
	lp_weight w[LP_NMODULES];               /* (out, in) */
	lp_lora_dev *lora[LP_NMODULES];
} lp_llama_layer;

typedef struct {
	lp_model_config cfg;
	int C, L, H, KVH, D, I, V;      /* V: rows of the output head */
	int max_r;                      /* largest LoRA rank, for the scratch buffer */
	lp_weight wte;                  /* (V_embed, C) */
	lp_weight lm_head;              /* (V, C), wte's storage when tied */
	lp_weight norm;                 /* (C) */
	lp_llama_layer *layers;
	void **owned;                   /* device buffers to free */
	int n_owned, cap_owned;
	lp_qweights qw;                 /* quantized Linear weights, if any */
} lp_llama;

/* Load weights (and, in order, adapters) onto the current backend. Dies
 * with a message naming the tensor on any mismatch. */
void lp_llama_load(lp_llama *m, const lp_model_files *mf, lp_adapter *const *adapters,
		int n_adapters);
/* The same with the Linear weights of the decoder layers quantized as
 * they load (qtype LP_QNF4, LP_QFP4, LP_QINT8; 0: as stored). */
void lp_llama_load_quantized(lp_llama *m, const lp_model_files *mf,
		lp_adapter *const *adapters, int n_adapters, int qtype);
void lp_llama_free(lp_llama *m);

typedef struct {
	int B, T, Tmax;                 /* capacity: rows, tokens per call, cache length */
	int all_logits;                 /* logits of every position, not only the last */
	int32_t *past;                  /* host, [B]: tokens already in each row's cache */
	/* device buffers (act dtype unless noted) */
	void *x, *xb, *xb2;             /* [B*T, C] */
	void *q, *att;                  /* [B*T, H*D] */
	void *k, *v;                    /* [B*T, KVH*D] */
	void *hb, *hb2;                 /* [B*T, I] */
	void *lora_tmp;                 /* [B*T, max_r] */
	float *rstd;                    /* [B*T] f32 */
	void *last;                     /* [B, C] rows whose logits are wanted */
	void *logits;                   /* [B*T or B, V] */
	float *logits_f32;              /* same, f32 (aliases logits on f32 backends) */
	void *kcache, *vcache;          /* [L, B, Tmax, KVH, D] */
	void *kswap, *vswap;            /* [B, Tmax, KVH, D] for beam reordering */
	int32_t *ids_dev, *pos_dev, *past_dev;
	float *inv_freq;                /* [D/2] f32 on the device */
	int64_t inv_freq_len;           /* the length inv_freq was computed for */
	float attn_factor;
	int32_t *pos_host;              /* [B*T] */
} lp_llama_state;

void lp_llama_state_init(lp_llama_state *s, const lp_llama *m, int B, int T, int Tmax,
		int all_logits);
void lp_llama_state_free(lp_llama_state *s);
/* Forget every row's cache. */
void lp_llama_reset(lp_llama_state *s);

/* Feed ids[b * T + t] (T <= s->T tokens for each of B <= s->B rows) and
 * write f32 logits to logits_out: [B, V] of each row's last position, or
 * [B, T, V] with all_logits. Advances past[b] by T. */
void lp_llama_forward(const lp_llama *m, lp_llama_state *s, const int32_t *ids, int B,
		int T, float *logits_out);

/* Upload to inv_freq (device, head_dim/2 f32) the rotary frequencies for
 * sequences of up to len positions, unless *computed_for says they are
 * already there: only dynamic scaling past max_position_embeddings depends
 * on the length. Shared by inference and training. */
void lp_rope_frequencies(const lp_model_config *cfg, int64_t len, float *inv_freq,
		int64_t *computed_for, float *attn_factor);

/* Beam search: new row r takes old row parent[r]'s cache (B rows). */
void lp_llama_reorder(const lp_llama *m, lp_llama_state *s, const int32_t *parent, int B);

#endif
