/* Layer merge/: adapters merged into a base model in bounded memory (the
 * plan and the block-by-block products, merge.c), and the result written
 * as Hugging Face safetensors, Meta .pth or GGUF (merge_export.c). On
 * model/ and formats/. */

/* merge.h: LoRA adapters merged into a base model, and the merged (or just
 * converted) model written as Hugging Face safetensors, Meta .pth or GGUF.
 *
 * The arithmetic is PEFT's merge_and_unload(): for each adapter, in the
 * order given, and each module it adapts,
 *
 *     W (out, in) += scale * B (out, r) @ A (r, in)
 *     scale = lora_alpha / r        (lora_alpha / sqrt(r) with use_rslora)
 *
 * with the product transposed when fan_in_fan_out is set (W stored as
 * (in, out)); rank_pattern and alpha_pattern give a module its own r and
 * lora_alpha (adapter_files.h reads the adapters). Weights the adapter
 * saves whole (modules_to_save: embed_tokens, lm_head, maybe with
 * more rows for a larger vocabulary) replace the current ones; a later
 * adapter sees what the earlier ones made. Everything is computed in f32
 * from the base weight converted to f32, and rounded once to the output
 * type. A tensor nothing changes is copied bit for bit when its type stays.
 *
 * Tensors are produced one at a time in blocks of rows read from mapped
 * files (lp_model_files), whose pages are given back once used, so memory
 * stays about a block, whatever the size of the model (plus, for a Meta
 * base, the tensor lp_mf_data joins). */
#ifndef LP_MERGE_H
#define LP_MERGE_H

#include <stddef.h>
#include <stdint.h>

#include "model/model_config.h"
#include "model/adapter_files.h"
#include "model/arch.h"
#include "model/model_files.h"
#include "formats/spm_model.h"

/* ---- the plan: what each output tensor is made of ---- */

/* One LoRA product to add: delta (rows, cols) = scale * L @ R^T, where
 * L (rows, r) and R (cols, r) are B and A^T, or A^T and B when the weight
 * is stored transposed (fan_in_fan_out). */
typedef struct {
	int adapter;                    /* index into the plan's adapters */
	const lp_mf_tensor *A, *B;      /* A (r, in), B (out, r) */
	int r;
	float scale;                    /* alpha / r (or / sqrt(r)), as PEFT's f32 */
	int transposed;                 /* fan_in_fan_out */
} lp_lora_delta;

typedef struct {
	char *name;                     /* Hugging Face name */
	int role;                       /* enum lp_role (model/arch.h) */
	int layer;                      /* -1 for embed, norm, head */
	int rank;                       /* 1 or 2 */
	uint64_t rows, cols;            /* cols = 1 for rank 1 */
	const lp_mf_tensor *src;        /* base, or the last adapter's full copy */
	int src_adapter;                /* -1: the base */
	lp_lora_delta *d;               /* nd products added to src, in order */
	size_t nd;
} lp_merge_tensor;

typedef struct {
	lp_model_files *base;
	lp_adapter **ad;
	size_t nad;
	lp_model_config cfg;            /* the output's: vocab_size updated */
	int base_dtype;                 /* of the base's weights */
	int untied;                     /* base tied its head; an adapter gave one */
	lp_merge_tensor *t;             /* n tensors in state-dict order */
	size_t n;
	size_t n_merged, n_replaced;    /* LoRA products; whole replacements */
	/* 0, or LP_QNF4/LP_QFP4/LP_QINT8 (kernels.h): the base's decoder Linear
	 * weights are quantized as lora-train --quantize holds them and
	 * dequantized to f32 before the products are added (PEFT's merge on a
	 * bitsandbytes model, written unquantized) */
	int quantize;
} lp_merge_plan;

/* Match the adapters against the base (which must have a config), each
 * against what the ones before it made. Dies naming the adapter and the
 * tensor on any mismatch: a module the base lacks, shapes ("X: model.
 * layers.0.self_attn.q_proj: lora_B is (64, 4), the weight is (32, 64)"),
 * a whole weight outside modules_to_save, embed_tokens and lm_head rows
 * that disagree. */
lp_merge_plan *lp_merge_plan_new(lp_model_files *base, lp_adapter **ad, size_t nad);
void lp_merge_plan_free(lp_merge_plan *p);

/* Check the output vocabulary against a tokenizer of n_pieces pieces and
 * n_added added tokens (ids n_pieces .. n_pieces + n_added - 1); dies
 * naming who disagrees and by how much. tok names the tokenizer. */
void lp_merge_check_vocab(const lp_merge_plan *p, const char *tok, int64_t n_pieces,
		int64_t n_added);

/* The most rows lp_merge_produce hands over at once for a tensor of cols
 * columns (about 8 Mi elements, at least row_group rows). */
uint64_t lp_merge_block_rows(uint64_t cols, uint64_t row_group);

/* Blocks of rows of tensor i in dtype (LP_F32, LP_BF16, LP_F16), each a
 * multiple of row_group rows (but the last), handed to fn in order:
 * fn(ctx, first row, rows, data) with data rows * cols elements. The data
 * lives until fn returns. */
typedef void (*lp_rows_fn)(void *ctx, uint64_t r0, uint64_t nrows, const void *data);
void lp_merge_produce(const lp_merge_plan *p, size_t i, int dtype, uint64_t row_group,
		lp_rows_fn fn, void *ctx);

/* ---- the tokenizer that goes with the output ---- */

typedef struct {
	int64_t id;
	char *content;
	int special;
} lp_added_token;

typedef struct {
	char *model_path;               /* tokenizer.model, or NULL if there is none */
	lp_spm_model spm;               /* loaded from it */
	char *config_dir;               /* tokenizer_config.json etc. come from here */
	lp_added_token *added;          /* added_tokens.json, then tokenizer_config.json's
	                                 * added_tokens_decoder (as llama.cpp reads them) */
	size_t nadded;
	int64_t n_extra;                /* ids past the pieces the added tokens take */
	int add_bos, add_eos, add_prefix_space; /* -1 where tokenizer_config.json is silent */
} lp_tokenizer_files;

/* model_path: a tokenizer.model or NULL (none); config_dir: the directory
 * whose tokenizer_config.json, special_tokens_map.json and added_tokens.json
 * go with it. Dies naming a file that does not parse. */
void lp_tokenizer_files_load(lp_tokenizer_files *t, const char *model_path,
		const char *config_dir);
void lp_tokenizer_files_free(lp_tokenizer_files *t);

/* ---- writers ---- */

enum lp_export_format { LP_TO_HF, LP_TO_PTH, LP_TO_GGUF };

typedef struct {
	int format;                     /* enum lp_export_format */
	int dtype;                      /* LP_F32/F16/BF16; q8_0 is LP_EXPORT_Q8_0 */
	uint64_t shard_size;            /* HF: bytes per shard at most */
	int shards;                     /* Meta: files; 0 = by model size */
	const lp_tokenizer_files *tok;  /* may have no model_path */
	int force;                      /* replace an existing output */
	int quiet;
} lp_export_opts;

#define LP_EXPORT_Q8_0 100

/* Write the plan's model to out (a directory for HF and Meta, a file for
 * GGUF), atomically. Returns the bytes of tensor data written. */
uint64_t lp_export_hf(const lp_merge_plan *p, const char *out, const lp_export_opts *o);
uint64_t lp_export_pth(const lp_merge_plan *p, const char *out, const lp_export_opts *o);
uint64_t lp_export_gguf(const lp_merge_plan *p, const char *out, const lp_export_opts *o);

/* Meta's model-parallel files for a model (7B: 1, 13B: 2, 33B: 4, 65B and
 * 70B: 8, told by hidden size; otherwise 1). */
int lp_meta_shards(const lp_model_config *c);

/* "5GB", "500MB", "2GiB", "1000": bytes (decimal SI units as Hugging Face
 * reads them, binary with "i"). 0 on error. */
uint64_t lp_parse_size(const char *s);

#endif
