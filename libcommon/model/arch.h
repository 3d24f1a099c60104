/* Layer model/: a LLaMA model, as files and on the compute layer: the
 * architecture table (this file), config.json / params.json, model and
 * adapter directories in every layout, and the inference model with its
 * KV cache and LoRA applied on the fly. On base/, formats/ and kernels.h;
 * train/, generate/ and merge/ build on it. */

/* arch.h: the LLaMA architecture, stated once.
 *
 * Every tensor of a LLaMA model has a role (enum lp_role); lp_arch[role]
 * gives its name in each layout this project reads or writes, its shape
 * as a function of the config, whether LoRA may target it, the axis Meta's
 * model-parallel shards split it along, and whether Meta stores its rows
 * in interleaved rotary order (q and k). Inference (llama.c), training
 * (llama_train.c), the model-file checks (model_files.c), the merge plan
 * (merge.c) and the pth and GGUF writers (merge_export.c) read this table
 * rather than naming tensors themselves. For example, role Q of layer 3:
 *
 *   Hugging Face   model.layers.3.self_attn.q_proj.weight   (H*D, C)
 *   Meta           layers.3.attention.wq.weight             rows split across shards
 *   GGUF           blk.3.attn_q.weight                      rows permuted per head
 *
 * The roles are in Hugging Face's state-dict order: embed_tokens, then
 * each layer's q k v o gate up down input_layernorm
 * post_attention_layernorm, then norm and lm_head. Meta orders a layer's
 * MLP w1 w2 w3 (gate, down, up): lp_arch_meta_order. */
#ifndef LP_ARCH_H
#define LP_ARCH_H

#include <stddef.h>
#include <stdint.h>

#include "model/model_config.h"

enum lp_role {
	LP_ROLE_EMBED, LP_ROLE_Q, LP_ROLE_K, LP_ROLE_V, LP_ROLE_O, LP_ROLE_GATE,
	LP_ROLE_UP, LP_ROLE_DOWN, LP_ROLE_ATTN_NORM, LP_ROLE_FFN_NORM,
	LP_ROLE_NORM, LP_ROLE_HEAD, LP_ROLE_COUNT
};
#define LP_ROLE_FIRST_LAYER LP_ROLE_Q           /* a layer's roles: Q .. FFN_NORM */
#define LP_ROLE_LAST_LAYER LP_ROLE_FFN_NORM
#define LP_LAYER_ROLES (LP_ROLE_LAST_LAYER - LP_ROLE_FIRST_LAYER + 1)

/* The seven Linear modules of a decoder layer, in PEFT's naming, which
 * LoRA may target: module j is role LP_ROLE_Q + j. */
enum lp_module { LP_Q, LP_K, LP_V, LP_O, LP_GATE, LP_UP, LP_DOWN, LP_NMODULES };
static inline int lp_module_role(int mod) { return LP_ROLE_Q + mod; }

/* A dimension of a shape, as a function of the config. */
enum lp_arch_dim {
	LP_DIM_NONE,            /* a vector has one dimension */
	LP_DIM_C,               /* hidden_size */
	LP_DIM_V,               /* vocab_size */
	LP_DIM_I,               /* intermediate_size */
	LP_DIM_Q,               /* n_heads * head_dim */
	LP_DIM_KV,              /* n_kv_heads * head_dim */
};

typedef struct {
	const char *hf;         /* Hugging Face; after "model.layers.N." in a layer */
	const char *meta;       /* Meta's; after "layers.N." */
	const char *gguf;       /* llama.cpp's; after "blk.N." */
	int in_layer;           /* one per decoder layer */
	int rank;               /* 1 or 2 */
	int rows, cols;         /* enum lp_arch_dim; cols LP_DIM_NONE for rank 1 */
	int module;             /* enum lp_module LoRA may target, or -1 */
	const char *parent;     /* the module's parent in HF ("self_attn", "mlp"), or NULL */
	const char *leaf;       /* the module's last name part ("q_proj", "embed_tokens") */
	int meta_axis;          /* the axis Meta's shards split, -1: every shard holds it */
	int rope_heads;         /* q, k: Meta's rows are interleaved per head of this
				 * many (LP_DIM_Q: n_heads, LP_DIM_KV: n_kv_heads); else 0 */
} lp_arch_tensor;

extern const lp_arch_tensor lp_arch[LP_ROLE_COUNT];

/* Meta's state-dict order of a layer's roles. */
extern const int lp_arch_meta_order[LP_LAYER_ROLES];

/* PEFT's module name, "q_proj"; and where it sits, "self_attn" or "mlp". */
const char *lp_module_name(int mod);
const char *lp_module_parent(int mod);
/* The module whose last name part is kind ("q_proj"), or -1. */
int lp_module_index(const char *kind);

/* A dimension, or the shape of role (shape[1] = 0 for rank 1). */
int64_t lp_arch_dim(const lp_model_config *c, int dim);
void lp_arch_shape(const lp_model_config *c, int role, int64_t shape[2]);
/* Meta's rotary heads of role's rows (n_heads for q, n_kv_heads for k),
 * 0 for a role whose rows are not permuted. */
int64_t lp_arch_rope_heads(const lp_model_config *c, int role);

/* Names of role (in layer, ignored outside one) in each layout; return
 * buf. Module: the HF name without ".weight" ("model.layers.3.mlp.up_proj"). */
const char *lp_arch_hf_name(int role, int layer, char *buf, size_t size);
const char *lp_arch_hf_module(int role, int layer, char *buf, size_t size);
const char *lp_arch_meta_name(int role, int layer, char *buf, size_t size);
const char *lp_arch_gguf_name(int role, int layer, char *buf, size_t size);

/* The role and layer (-1 outside one) of an HF or Meta tensor name, or -1
 * if name is not a tensor of a LLaMA model. */
int lp_arch_parse_hf(const char *name, int *layer);
int lp_arch_parse_meta(const char *name, int *layer);
/* N of a name "model.layers.N.<rest>" and rest, or -1 (a module's name
 * too: "model.layers.3.self_attn.q_proj"). */
long lp_arch_hf_layer(const char *name, const char **rest);

#endif
