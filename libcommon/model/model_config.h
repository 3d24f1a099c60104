/* model_config.h: a LLaMA model's shape, from Hugging Face config.json or
 * Meta params.json, and its rotary embedding frequencies.
 *
 * config.json (transformers 4 and 5): hidden_size, num_attention_heads,
 * num_key_value_heads (default: the heads), num_hidden_layers,
 * intermediate_size, vocab_size, head_dim (default hidden / heads),
 * rms_norm_eps (1e-6), max_position_embeddings (2048), tie_word_embeddings
 * (false), bos/eos/pad_token_id (eos may be a list), torch_dtype or dtype.
 * Rotary embedding: transformers 5 writes "rope_parameters" {rope_type,
 * rope_theta, factor, ...}; transformers 4 wrote "rope_theta" beside an
 * optional "rope_scaling" {type or rope_type, factor, ...}. Both are read,
 * rope_parameters first, missing values as transformers fills them in
 * (rope_theta 10000; original_max_position_embeddings for llama3 and yarn
 * from max_position_embeddings). Types: default, linear, dynamic, llama3,
 * yarn. Refused with a message: other model types and rope types,
 * attention or MLP biases, activations other than silu,
 * partial_rotary_factor other than 1.
 *
 * params.json (Meta's checkpoints): dim, n_layers, n_heads, n_kv_heads,
 * vocab_size (-1: the tokenizer decides; model_files takes it from the
 * embedding), multiple_of, ffn_dim_multiplier, norm_eps (1e-5),
 * rope_theta (10000), use_scaled_rope (Llama 3.1: llama3 rope with
 * rope_scaling_factor 8, low_freq_factor 1, high_freq_factor 4, original
 * context 8192), max_seq_len (2048). The MLP width is computed as Meta's
 * model code does: h = int(2 * 4 * dim / 3), h = int(ffn_dim_multiplier *
 * h) when given, rounded up to a multiple of multiple_of (256). */
#ifndef LP_MODEL_CONFIG_H
#define LP_MODEL_CONFIG_H

#include <stddef.h>
#include <stdint.h>

enum lp_rope_type {
	LP_ROPE_DEFAULT, LP_ROPE_LINEAR, LP_ROPE_DYNAMIC, LP_ROPE_LLAMA3, LP_ROPE_YARN
};

typedef struct {
	int type;                       /* enum lp_rope_type */
	double theta;                   /* base */
	double factor;                  /* linear, dynamic, llama3, yarn; 1 for default */
	double low_freq_factor;         /* llama3 */
	double high_freq_factor;        /* llama3 */
	int64_t original_max_pos;       /* llama3, yarn */
	double attention_factor;        /* yarn; 0: derived from factor and mscale */
	double beta_fast, beta_slow;    /* yarn (32, 1) */
	double mscale, mscale_all_dim;  /* yarn; 0 if absent */
	int truncate;                   /* yarn (1) */
} lp_rope_config;

#define LP_MAX_EOS 16

typedef struct {
	int64_t hidden_size;            /* C */
	int64_t n_layers;
	int64_t n_heads;                /* H */
	int64_t n_kv_heads;             /* KVH; H % KVH == 0 */
	int64_t head_dim;               /* D */
	int64_t intermediate_size;      /* I */
	int64_t vocab_size;             /* V; -1 until known (params.json) */
	int64_t max_pos;                /* max_position_embeddings */
	double rms_norm_eps;
	int tie_word_embeddings;
	int64_t bos_id, pad_id;         /* -1 if none */
	int64_t eos_ids[LP_MAX_EOS];
	int n_eos;
	int dtype;                      /* enum lp_dtype of torch_dtype/dtype; 0 if absent */
	lp_rope_config rope;
	int from_meta;                  /* read from params.json */
} lp_model_config;

/* Parse config.json / params.json text (n bytes). 0 and *c filled, or -1
 * and a one-line message naming the field in err. Never dies on bad input. */
int lp_config_parse_hf(const char *json, size_t n, lp_model_config *c, char *err, size_t errlen);
int lp_config_parse_meta(const char *json, size_t n, lp_model_config *c, char *err, size_t errlen);
/* Read and parse the file; die "path: what" on any error. */
void lp_config_load_hf(const char *path, lp_model_config *c);
void lp_config_load_meta(const char *path, lp_model_config *c);

/* Meta's MLP width for a model dimension (see above); ffn_dim_multiplier
 * <= 0 means none. */
int64_t lp_meta_ffn_dim(int64_t dim, int64_t multiple_of, double ffn_dim_multiplier);

/* The rotary inverse frequencies inv_freq[head_dim / 2] and the factor
 * cos and sin are multiplied by (*attention_factor: 1 except for yarn), as
 * transformers' rope init functions compute them: in f32, step by step, so
 * results agree with torch's to within an ulp (torch's pow is accurate to
 * 1 ulp; this one is correctly rounded). seq_len matters only for dynamic
 * scaling (0: the length at start, max_position_embeddings). */
void lp_rope_inv_freq(const lp_model_config *c, int64_t seq_len, float *inv_freq,
		double *attention_factor);

/* Does the model's vocabulary fit a tokenizer of n_pieces pieces? Equal
 * sizes pass; a larger vocabulary passes only with allow_extra (rows for
 * added tokens such as a [PAD]). -1 and a message giving both sizes
 * otherwise. */
int lp_config_check_vocab(const lp_model_config *c, int64_t n_pieces, int allow_extra,
		char *err, size_t errlen);

/* "default", "linear", ... */
const char *lp_rope_type_name(int type);

#endif
