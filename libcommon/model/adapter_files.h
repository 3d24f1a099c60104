/* adapter_files.h: PEFT LoRA adapter directories, read.
 *
 * A directory holds adapter_config.json and adapter_model.safetensors (or
 * adapter_model.bin, a PyTorch zip read as model_files.h reads one). PEFT
 * names each LoRA pair after the module it changes, under the wrapper's
 * prefix:
 *
 *   base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight   A (r, in)
 *   base_model.model.model.layers.N.self_attn.q_proj.lora_B.weight   B (out, r)
 *
 * and each full copy of a module in modules_to_save by the module's own
 * name: base_model.model.model.embed_tokens.weight,
 * base_model.model.lm_head.weight (older PEFT wrote ".modules_to_save."
 * or ".modules_to_save.default." before "weight"; both are accepted).
 *
 * adapter_config.json: r, lora_alpha (8), lora_dropout (0), target_modules
 * (a list of names, or one string, a regular expression), fan_in_fan_out,
 * modules_to_save, use_rslora, rank_pattern and alpha_pattern ({pattern:
 * value}; a pattern applies to a module whose name (model.layers.N.
 * self_attn.q_proj) matches the regular expression "(.*\.)?(pattern)$", as
 * PEFT matches it), bias ("none"; others are refused, as are use_dora and
 * peft types other than LORA). The scale of a pair is alpha / r, or
 * alpha / sqrt(r) with use_rslora, with the module's own r and alpha.
 * Patterns are POSIX extended expressions with \d \w \s translated; if two
 * patterns with different values match one module, that is an error
 * (PEFT would take the first one in the file). */
#ifndef LP_ADAPTER_FILES_H
#define LP_ADAPTER_FILES_H

#include <stddef.h>
#include <stdint.h>

#include "model/model_files.h"

typedef struct {
	char *key;
	double value;
} lp_lora_pattern;

typedef struct {
	int64_t r;
	double alpha, dropout;
	int fan_in_fan_out, use_rslora;
	char **target_modules;          /* n_target names, or NULL */
	size_t n_target;
	char *target_regex;             /* target_modules given as a string, or NULL */
	char **modules_to_save;
	size_t n_save;
	lp_lora_pattern *rank_pattern, *alpha_pattern;
	size_t n_rank, n_alpha;
	char *base_model;               /* base_model_name_or_path, or NULL */
} lp_lora_config;

/* One LoRA pair: W (out, in) of module becomes W + scale * B @ A
 * (transposed with fan_in_fan_out). */
typedef struct {
	char *module;           /* "model.layers.3.self_attn.q_proj" */
	char *base_name;        /* the weight it changes: module + ".weight" */
	int layer;              /* N of model.layers.N, or -1 */
	const char *kind;       /* the last part of module: "q_proj", ... */
	const lp_mf_tensor *A;  /* (r, in) */
	const lp_mf_tensor *B;  /* (out, r) */
	int64_t r;
	double alpha;
	double scale;
} lp_lora_pair;

/* A module saved whole (modules_to_save), replacing the base weight. */
typedef struct {
	char *base_name;        /* "model.embed_tokens.weight", "lm_head.weight" */
	const lp_mf_tensor *t;
} lp_lora_full;

typedef struct {
	char *dir;
	lp_lora_config cfg;
	lp_model_files *files;  /* the tensors, with PEFT's names */
	lp_lora_pair *pairs;    /* sorted by module name */
	size_t npairs;
	lp_lora_full *full;     /* sorted by base name */
	size_t nfull;
} lp_adapter;

/* Read dir; NULL and a one-line message in err on failure (a missing file,
 * a bad config, a lora_A without its lora_B, ranks that disagree with the
 * config, tensors PEFT's LoRA does not write). */
lp_adapter *lp_adapter_open(const char *dir, char *err, size_t errlen);
/* Same, dying "dir: what". */
lp_adapter *lp_adapter_load(const char *dir);
void lp_adapter_close(lp_adapter *a);

/* Does the adapter fit base? Each pair's base weight exists and is (out,
 * in) for A (r, in) and B (out, r) ((in, out) with fan_in_fan_out); each
 * full module exists with the same number of columns (its rows may differ:
 * an adapter may carry a resized vocabulary). -1 and a message naming the
 * tensor and both shapes otherwise. */
int lp_adapter_check(const lp_adapter *a, const lp_model_files *base, char *err,
		size_t errlen);

/* Parse adapter_config.json text; lp_lora_config_free frees it. */
int lp_lora_config_parse(const char *json, size_t n, lp_lora_config *c, char *err, size_t errlen);
void lp_lora_config_free(lp_lora_config *c);
/* r, alpha and scale of module (model.layers.N.self_attn.q_proj) under c;
 * -1 and a message if patterns disagree or one is not a valid expression. */
int lp_lora_module_params(const lp_lora_config *c, const char *module, int64_t *r,
		double *alpha, double *scale, char *err, size_t errlen);

#endif
