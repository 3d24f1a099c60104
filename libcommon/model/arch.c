/* arch.c: the LLaMA tensor table and the names made from it. */
#include "model/arch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the prefixes of a layer's tensors, as the formats below print them */
#define LAYER_HF "model.layers."
#define LAYER_META "layers."

const lp_arch_tensor lp_arch[LP_ROLE_COUNT] = {
	/*               hf, meta, gguf, in_layer, rank, rows, cols, module, parent, leaf,
	 *               meta_axis, rope_heads */
	[LP_ROLE_EMBED] = {"model.embed_tokens.weight", "tok_embeddings.weight",
		"token_embd.weight", 0, 2, LP_DIM_V, LP_DIM_C, -1, NULL, "embed_tokens",
		1 /* Llama 1, 2; Llama 3 splits rows (model_files.c tells them apart) */, 0},
	[LP_ROLE_Q] = {"self_attn.q_proj.weight", "attention.wq.weight", "attn_q.weight",
		1, 2, LP_DIM_Q, LP_DIM_C, LP_Q, "self_attn", "q_proj", 0, LP_DIM_Q},
	[LP_ROLE_K] = {"self_attn.k_proj.weight", "attention.wk.weight", "attn_k.weight",
		1, 2, LP_DIM_KV, LP_DIM_C, LP_K, "self_attn", "k_proj", 0, LP_DIM_KV},
	[LP_ROLE_V] = {"self_attn.v_proj.weight", "attention.wv.weight", "attn_v.weight",
		1, 2, LP_DIM_KV, LP_DIM_C, LP_V, "self_attn", "v_proj", 0, 0},
	[LP_ROLE_O] = {"self_attn.o_proj.weight", "attention.wo.weight", "attn_output.weight",
		1, 2, LP_DIM_C, LP_DIM_Q, LP_O, "self_attn", "o_proj", 1, 0},
	[LP_ROLE_GATE] = {"mlp.gate_proj.weight", "feed_forward.w1.weight", "ffn_gate.weight",
		1, 2, LP_DIM_I, LP_DIM_C, LP_GATE, "mlp", "gate_proj", 0, 0},
	[LP_ROLE_UP] = {"mlp.up_proj.weight", "feed_forward.w3.weight", "ffn_up.weight",
		1, 2, LP_DIM_I, LP_DIM_C, LP_UP, "mlp", "up_proj", 0, 0},
	[LP_ROLE_DOWN] = {"mlp.down_proj.weight", "feed_forward.w2.weight", "ffn_down.weight",
		1, 2, LP_DIM_C, LP_DIM_I, LP_DOWN, "mlp", "down_proj", 1, 0},
	[LP_ROLE_ATTN_NORM] = {"input_layernorm.weight", "attention_norm.weight",
		"attn_norm.weight", 1, 1, LP_DIM_C, LP_DIM_NONE, -1, NULL, "input_layernorm",
		-1, 0},
	[LP_ROLE_FFN_NORM] = {"post_attention_layernorm.weight", "ffn_norm.weight",
		"ffn_norm.weight", 1, 1, LP_DIM_C, LP_DIM_NONE, -1, NULL,
		"post_attention_layernorm", -1, 0},
	[LP_ROLE_NORM] = {"model.norm.weight", "norm.weight", "output_norm.weight", 0, 1,
		LP_DIM_C, LP_DIM_NONE, -1, NULL, "norm", -1, 0},
	[LP_ROLE_HEAD] = {"lm_head.weight", "output.weight", "output.weight", 0, 2, LP_DIM_V,
		LP_DIM_C, -1, NULL, "lm_head", 0, 0},
};

const int lp_arch_meta_order[LP_LAYER_ROLES] = {
	LP_ROLE_Q, LP_ROLE_K, LP_ROLE_V, LP_ROLE_O, LP_ROLE_GATE, LP_ROLE_DOWN, LP_ROLE_UP,
	LP_ROLE_ATTN_NORM, LP_ROLE_FFN_NORM,
};

const char *lp_module_name(int mod)
{
	return lp_arch[lp_module_role(mod)].leaf;
}

const char *lp_module_parent(int mod)
{
	return lp_arch[lp_module_role(mod)].parent;
}

int lp_module_index(const char *kind)
{
	for (int i = 0; kind && i < LP_NMODULES; i++)
		if (!strcmp(kind, lp_module_name(i)))
			return i;
	return -1;
}

int64_t lp_arch_dim(const lp_model_config *c, int dim)
{
	switch (dim) {
	case LP_DIM_C: return c->hidden_size;
	case LP_DIM_V: return c->vocab_size;
	case LP_DIM_I: return c->intermediate_size;
	case LP_DIM_Q: return c->n_heads * c->head_dim;
	case LP_DIM_KV: return c->n_kv_heads * c->head_dim;
	default: return 0;
	}
}

void lp_arch_shape(const lp_model_config *c, int role, int64_t shape[2])
{
	shape[0] = lp_arch_dim(c, lp_arch[role].rows);
	shape[1] = lp_arch_dim(c, lp_arch[role].cols);
}

int64_t lp_arch_rope_heads(const lp_model_config *c, int role)
{
	switch (lp_arch[role].rope_heads) {
	case LP_DIM_Q: return c->n_heads;
	case LP_DIM_KV: return c->n_kv_heads;
	default: return 0;
	}
}

const char *lp_arch_hf_name(int role, int layer, char *buf, size_t size)
{
	if (lp_arch[role].in_layer)
		snprintf(buf, size, "model.layers.%d.%s", layer, lp_arch[role].hf);
	else
		snprintf(buf, size, "%s", lp_arch[role].hf);
	return buf;
}

const char *lp_arch_hf_module(int role, int layer, char *buf, size_t size)
{
	lp_arch_hf_name(role, layer, buf, size);
	size_t n = strlen(buf), k = strlen(".weight");
	if (n >= k && !strcmp(buf + n - k, ".weight"))
		buf[n - k] = 0;
	return buf;
}

const char *lp_arch_meta_name(int role, int layer, char *buf, size_t size)
{
	if (lp_arch[role].in_layer)
		snprintf(buf, size, "layers.%d.%s", layer, lp_arch[role].meta);
	else
		snprintf(buf, size, "%s", lp_arch[role].meta);
	return buf;
}

const char *lp_arch_gguf_name(int role, int layer, char *buf, size_t size)
{
	if (lp_arch[role].in_layer)
		snprintf(buf, size, "blk.%d.%s", layer, lp_arch[role].gguf);
	else
		snprintf(buf, size, "%s", lp_arch[role].gguf);
	return buf;
}

/* "<prefix>N.<rest>" -> N and rest, or -1: N in decimal without leading
 * zeros, at most 2^20. */
static long layer_of(const char *name, const char *prefix, const char **rest)
{
	size_t n = strlen(prefix);
	if (strncmp(name, prefix, n) || name[n] < '0' || name[n] > '9')
		return -1;
	char *end;
	long l = strtol(name + n, &end, 10);
	if (*end != '.' || l > 1 << 20 || (name[n] == '0' && end - (name + n) > 1))
		return -1;
	*rest = end + 1;
	return l;
}

long lp_arch_hf_layer(const char *name, const char **rest)
{
	return layer_of(name, LAYER_HF, rest);
}

static int parse(const char *name, int *layer, int meta)
{
	const char *rest;
	long l = layer_of(name, meta ? LAYER_META : LAYER_HF, &rest);
	*layer = l >= 0 ? (int)l : -1;
	for (int r = 0; r < LP_ROLE_COUNT; r++)
		if (lp_arch[r].in_layer == (l >= 0) &&
				!strcmp(l >= 0 ? rest : name, meta ? lp_arch[r].meta : lp_arch[r].hf))
			return r;
	return -1;
}

int lp_arch_parse_hf(const char *name, int *layer)
{
	return parse(name, layer, 0);
}

int lp_arch_parse_meta(const char *name, int *layer)
{
	return parse(name, layer, 1);
}
