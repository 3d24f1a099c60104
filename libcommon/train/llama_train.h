/* Layer train/: training on the compute layer: the training model with
 * its forward and backward written out (this file), the data as
 * micro-batches and the optimizer loop (trainer.h), and what training
 * writes: adapters, models, checkpoints (train_io.h). On model/. */

/* llama_train.h: the LLaMA model on the compute layer (kernels.h), for
 * training: forward, loss and backward written out layer by layer.
 *
 * Weights. Every weight the forward pass reads is an lp_weight: a frozen
 * base weight as stored (f32, bf16 or f16), or the f32 master copy of a
 * trained one. What is trained:
 *
 *   LoRA (default)  a pair A (r, in), B (out, r) on each targeted Linear
 *                   module; its output becomes x @ W^T + scale * (drop(x) @
 *                   A^T) @ B^T, scale = alpha / r, as PEFT's lora.Linear.
 *   modules_to_save embed_tokens and/or lm_head, trained whole (PEFT's
 *                   ModulesToSaveWrapper), possibly with a resized
 *                   vocabulary.
 *   full            every weight of the model, norms included.
 *
 * The trained tensors are lp_tparam entries over four flat f32 buffers
 * (masters, gradients, and the optimizer's two moments, owned by the
 * trainer), each with the name it is saved under: PEFT's
 * (base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight,
 * base_model.model.model.embed_tokens.weight, base_model.model.lm_head.
 * weight) or, with full, Hugging Face's (model.layers.N.mlp.up_proj.weight).
 *
 * As in transformers, the embedding row of pad_token_id gets no gradient
 * (nn.Embedding's padding_idx), wherever that id appears.
 *
 * Activations are planned up front for B rows of up to T tokens, one
 * device allocation for all of them (llm.c's fill_in_activation_sizes).
 * Without checkpointing every layer keeps its own; with it, only the input
 * of each layer (the residual stream) is kept, and backward recomputes one
 * layer at a time from it into a single set of buffers. */
#ifndef LP_LLAMA_TRAIN_H
#define LP_LLAMA_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "model/adapter_files.h"
#include "kernels.h"
#include "model/llama.h"
#include "model/model_config.h"
#include "model/model_files.h"

/* A weight the forward reads, and its gradient (NULL when frozen). */
typedef struct {
	lp_weight w;
	float *grad;
} lp_tweight;

/* A trainable LoRA pair on one Linear module. */
typedef struct {
	lp_weight A, B;         /* f32 masters: (r, in), (out, r) */
	float *dA, *dB;
	int r;
	float scale;
} lp_tlora;

typedef struct {
	lp_tweight attn_norm, ffn_norm;         /* (C) */
	lp_tweight w[LP_NMODULES];              /* (out, in) */
	lp_tlora *lora[LP_NMODULES];            /* NULL where not targeted */
} lp_tlayer;

/* A trained tensor: its place in the flat buffers and its saved name. */
typedef struct {
	char *name;
	int rank;
	uint64_t shape[2];
	size_t off, n;          /* elements */
	int decay;              /* weight decay applies (not norms, not biases) */
} lp_tparam;

/* What is trained and how it is saved: how lp_train_model_init builds
 * the model, and what train_io.h writes beside its weights. */
typedef struct {
	int full;               /* train every weight; save a model, not an adapter */
	int64_t r;              /* LoRA rank and alpha */
	double alpha;
	double dropout;         /* LoRA dropout probability */
	unsigned targets;       /* bit (1 << enum lp_module) per targeted module */
	int save_embed, save_head;      /* modules_to_save */
	int64_t vocab;          /* rows of the embedding and head (0: as the base) */
	const lp_adapter *init; /* start from this adapter's LoRA pairs and copies */
	uint64_t seed;          /* LoRA A and from-scratch initialisation */
	int grad_ckpt;          /* recompute layers in backward */
	const char *base_model; /* adapter_config.json's base_model_name_or_path, or NULL */
	const char *config_json;        /* full: the config.json text to start from, or NULL */
	int quantize;           /* frozen Linear weights as LP_QNF4/LP_QFP4/LP_QINT8 (0: as stored) */
} lp_train_spec;

typedef struct {
	lp_model_config cfg;
	int C, L, H, KVH, D, I, V, Vbase;       /* V: rows of embedding and head now */
	int tied;               /* lm_head is embed_tokens (one tensor, one gradient) */
	int max_r;
	int pad_id;             /* pad_token_id: its embedding row gets no gradient, or -1 */
	float dropout;
	lp_tweight wte, lm_head, norm;
	lp_tlayer *layers;
	lp_tparam *params;
	int nparams;
	size_t ntrain;          /* trained elements in all */
	float *master, *grads;  /* device, ntrain f32 each */
	lp_tlora *loras;        /* L * LP_NMODULES slots */
	void **owned;           /* device buffers to free */
	int n_owned, cap_owned;
	lp_qweights qw;         /* quantized frozen weights (spec.quantize) */
} lp_train_model;

/* Build the model from base files (or, with mf NULL, from cfg alone: a new
 * model initialised as LlamaForCausalLM's _init_weights does, normal(0,
 * init_std) for Linear and embedding weights, 1 for norms) and spec, in
 * three steps: plan the trained tensors (names, shapes, places in the flat
 * buffers), initialise them and point the model at them or at the frozen
 * base weights, and apply spec->init's LoRA pairs. Dies with a message
 * naming the tensor on any mismatch. */
void lp_train_model_init(lp_train_model *m, const lp_model_files *mf,
		const lp_model_config *cfg, double init_std, const lp_train_spec *spec);
void lp_train_model_free(lp_train_model *m);
/* Zero every gradient. */
void lp_train_zero_grad(lp_train_model *m);
/* The parameter called name, or NULL. */
const lp_tparam *lp_train_param(const lp_train_model *m, const char *name);

/* One micro-batch: B rows padded on the right to T tokens. */
typedef struct {
	int B, T;
	const int32_t *ids;     /* host [B*T]; padding holds any valid id */
	const int32_t *targets; /* host [B*T]: the label of position t+1, or -100 */
	const int32_t *len;     /* host [B]: tokens of each row */
	uint64_t seed;          /* dropout masks of this micro-batch */
} lp_train_batch;

/* Activations and gradient scratch for up to B x T tokens (device). */
typedef struct {
	void *ln1, *q, *k, *v, *att, *xmid, *ln2, *gate, *up, *h;
	float *rstd1, *rstd2, *lse;
	void *u[LP_NMODULES];   /* drop(x) @ A^T [N, r] of each LoRA module */
} lp_tlayer_acts;

typedef struct {
	int B, T, ckpt;
	void *mem;              /* the one allocation */
	void **res;             /* [L+1] residual stream: input of layer l; res[L] the last */
	lp_tlayer_acts *la;     /* [L], or [1] with checkpointing */
	void *lnf, *logits;     /* [N,C], [N,V] (logits become their gradient) */
	float *rstdf, *losses;  /* [N] */
	/* gradients and scratch, shared by all layers */
	void *dx, *dln, *dq, *dk, *dv, *datt, *dgate, *dup, *dh, *du, *drop, *drop2;
	int32_t *ids, *targets, *pos;
	uint8_t *mask;
	float *inv_freq;
	int64_t inv_freq_len;
	float attn_factor;
	float *host_losses;     /* host [N] */
	int32_t *host_pos;
	uint8_t *host_mask;
} lp_train_acts;

void lp_train_acts_init(lp_train_acts *a, const lp_train_model *m, int B, int T, int ckpt);
void lp_train_acts_free(lp_train_acts *a);
size_t lp_train_acts_bytes(const lp_train_model *m, int B, int T, int ckpt);

/* Forward and loss. Returns the sum of the cross-entropy of the counted
 * positions (targets != -100); *count gets their number. With grad_scale
 * != 0 the gradient of grad_scale * that sum is left in the logits buffer
 * for lp_train_backward (which must follow, with the same batch). */
double lp_train_forward(const lp_train_model *m, lp_train_acts *a, const lp_train_batch *b,
		float grad_scale, long *count);
/* Accumulate the gradients of every trained tensor (+=). */
void lp_train_backward(const lp_train_model *m, lp_train_acts *a, const lp_train_batch *b);

/* Logits [B*T, V] (f32, host) of the last forward, for tests. */
void lp_train_logits(const lp_train_model *m, const lp_train_acts *a, int N, float *out);

#endif
