/* model_files.h: a LLaMA model's weights as named tensors, whatever layout
 * the directory holds.
 *
 * Layouts, tried in this order (transformers prefers safetensors too):
 *
 *   config.json + model.safetensors.index.json + shards   (HF, sharded)
 *   config.json + model.safetensors                       (HF)
 *   config.json + pytorch_model.bin.index.json + shards   (HF, sharded, pickled)
 *   config.json + pytorch_model.bin                       (HF, pickled)
 *   params.json + consolidated.00.pth ... consolidated.NN.pth   (Meta)
 *
 * Every tensor is known by its Hugging Face name (model.embed_tokens.weight,
 * model.layers.N.self_attn.{q,k,v,o}_proj.weight, model.layers.N.mlp.
 * {gate,up,down}_proj.weight, model.layers.N.{input,post_attention}_layernorm.
 * weight, model.norm.weight, lm_head.weight) and points into a read-only
 * mapping of its file: safetensors data in place, or a stored zip entry of
 * a PyTorch checkpoint (zipread.h, read through pickle.h, which runs no
 * code). A pickled tensor that is a strided view is copied out.
 *
 * Meta checkpoints are renamed (tok_embeddings -> model.embed_tokens,
 * layers.N.attention.wq/wk/wv/wo -> ...self_attn.q/k/v/o_proj,
 * attention_norm -> input_layernorm, ffn_norm -> post_attention_layernorm,
 * feed_forward.w1/w2/w3 -> mlp.gate/down/up_proj, norm -> model.norm,
 * output -> lm_head; rope.freqs is dropped) and, when sharded (model
 * parallel), joined as Meta split them: wq wk wv w1 w3 output along dim 0,
 * wo w2 along dim 1, tok_embeddings along dim 1 (Llama 1 and 2) or dim 0
 * (Llama 3: told apart by the shard shapes), norms replicated (checked
 * equal). q and k are then permuted from Meta's interleaved rotary layout
 * to Hugging Face's rotate-half layout, exactly as transformers'
 * convert_llama_weights_to_hf.py does. Such tensors are made on first use
 * (lp_mf_data) in memory of their own, and can be given back
 * (lp_mf_release), so a tool can stream a large model tensor by tensor.
 *
 * On open, the tensors are checked against the config: each one is present
 * with the shape the config implies and a floating dtype (f32, f16, bf16);
 * nothing unexpected is there (rotary_emb.inv_freq buffers that old
 * transformers saved are dropped). Errors name the tensor and both shapes:
 * "model.layers.3.mlp.up_proj.weight: shape (11008, 4096), config says
 * (11008, 4095)". */
#ifndef LP_MODEL_FILES_H
#define LP_MODEL_FILES_H

#include <stddef.h>
#include <stdint.h>

#include "base/dtype.h"
#include "model/model_config.h"

#define LP_MF_MAX_RANK 8

enum lp_layout {
	LP_LAYOUT_FILES,                /* files added one by one (lp_mf_add_file) */
	LP_LAYOUT_SAFETENSORS,
	LP_LAYOUT_SAFETENSORS_SHARDED,
	LP_LAYOUT_BIN,
	LP_LAYOUT_BIN_SHARDED,
	LP_LAYOUT_META,
};

struct lp_mf_join;

typedef struct {
	char *name;             /* Hugging Face name (or as stored, for added files) */
	char *stored_name;      /* the name in the file, if different (Meta) */
	int dtype;              /* enum lp_dtype */
	int rank;
	uint64_t shape[LP_MF_MAX_RANK];
	uint64_t numel, nbytes;
	const char *file;       /* path of its file (of the first shard, if joined) */
	/* nbytes, row-major, little-endian; NULL for a joined or permuted Meta
	 * tensor until lp_mf_data() makes it. May be unaligned (old files). */
	const void *data;
	void *owned;            /* private */
	struct lp_mf_join *join;        /* private */
} lp_mf_tensor;

struct lp_mf_source;

typedef struct {
	char *dir;
	int layout;             /* enum lp_layout */
	int nshards;            /* weight files */
	int has_config;
	lp_model_config cfg;    /* with has_config; vocab_size known for Meta too */
	lp_mf_tensor *t;        /* n tensors: file order (Meta: shard 0's order) */
	size_t n;
	size_t *by_name;        /* indices into t, sorted by name */
	struct lp_mf_source **src;      /* private */
	size_t nsrc, srccap, tcap;      /* private */
} lp_model_files;

/* Detect the layout of dir, read its config and map its weights; check
 * them. NULL and a one-line message in err (without dir) on failure. */
lp_model_files *lp_model_files_open(const char *dir, char *err, size_t errlen);
/* Same, dying "dir: what". */
lp_model_files *lp_model_files_load(const char *dir);
void lp_model_files_close(lp_model_files *m);
/* "safetensors", "safetensors (sharded)", "pytorch bin", ..., "meta". */
const char *lp_layout_name(int layout);

/* A set of tensors read from weight files given one at a time: a
 * .safetensors file or a PyTorch zip checkpoint (.bin, .pth), told apart
 * by their first bytes. Names stay as stored; a name in two files is an
 * error. Used for adapters, and by any tool that reads loose weights. */
lp_model_files *lp_mf_new(const char *dir);
int lp_mf_add_file(lp_model_files *m, const char *path, char *err, size_t errlen);
/* Same for n bytes in memory called name (not copied: they must outlive
 * m). Never dies on bad input (the fuzz target's entry point). */
int lp_mf_add_memory(lp_model_files *m, const char *name, const void *buf, size_t n,
		char *err, size_t errlen);

/* The tensor called name, or NULL. */
const lp_mf_tensor *lp_mf_find(const lp_model_files *m, const char *name);
/* Same, dying "dir: no tensor 'name'". */
const lp_mf_tensor *lp_mf_get(const lp_model_files *m, const char *name);
/* t's bytes, made now if need be (a joined or permuted Meta tensor; dies
 * only when out of memory). Not thread-safe for a tensor not yet made:
 * make it before handing it to threads. */
const void *lp_mf_data(const lp_mf_tensor *t);
/* Free what lp_mf_data made for t (no-op for mapped tensors). */
void lp_mf_release(const lp_mf_tensor *t);

/* Check the tensors against m->cfg (what open does). */
int lp_mf_check(const lp_model_files *m, char *err, size_t errlen);

/* Meta and Hugging Face names of one tensor: 0 and the other name in out,
 * or -1 if name is not part of a LLaMA model. */
int lp_meta_to_hf_name(const char *meta, char *out, size_t size);
int lp_hf_to_meta_name(const char *hf, char *out, size_t size);

/* q/k weight rows between Meta's interleaved rotary layout and HF's
 * rotate-half layout. src and dst are (rows, cols) of elsize-byte elements,
 * rows = n_heads * head_dim, and must not overlap. To HF, as
 * convert_llama_weights_to_hf.py's permute:
 *   w.view(n_heads, rows / n_heads / 2, 2, cols).transpose(1, 2).reshape(rows, cols)
 * i.e. dst row h*D + j*D/2 + i = src row h*D + 2i + j; to Meta, the inverse.
 * n_heads is the number of query heads for q, of key/value heads for k. */
void lp_rope_permute_to_hf(void *dst, const void *src, int64_t n_heads, int64_t rows,
		int64_t cols, size_t elsize);
void lp_rope_permute_to_meta(void *dst, const void *src, int64_t n_heads, int64_t rows,
		int64_t cols, size_t elsize);

#endif
