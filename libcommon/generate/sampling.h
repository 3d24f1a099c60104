/* sampling.h: the decoding controls of Hugging Face `generate`, on host rows
 * of f32 logits, independent of any model.
 *
 * lp_gen_config holds the controls under HF's names with HF's defaults.
 * lp_procs is the list of logits processors that
 * GenerationMixin._get_logits_processor (transformers 5.x) builds from such
 * a config, in the same order:
 *
 *   repetition_penalty, no_repeat_ngram_size, bad_words_ids, min_length,
 *   min_new_tokens, suppress_tokens, begin_suppress_tokens, then, only when
 *   do_sample: temperature, top_k, top_p, min_p, typical_p, epsilon_cutoff,
 *   eta_cutoff; then renormalize_logits (a log-softmax) last.
 *
 * Every processor works on one row: scores[vocab] (modified in place) and
 * ids[n], the tokens of that sequence so far (prompt + generated), as HF's
 * input_ids row. The math follows transformers' LogitsProcessor classes
 * step by step, in f32 where they compute in f32.
 *
 * Draws: lp_sample_token() is a softmax over processed scores and one
 * multinomial draw from lp_rng; reproducible by seed, not torch's stream.
 * lp_argmax() is torch.argmax: the first maximum (a NaN counts as maximum).
 *
 * The search itself (greedy, sampling, beam search, group beam search) is
 * lp_search in beam.h. */
#ifndef LP_SAMPLING_H
#define LP_SAMPLING_H

#include <stddef.h>
#include <stdint.h>
#include "base/common.h"

/* early_stopping: False, True or "never". */
enum { LP_EARLY_FALSE = 0, LP_EARLY_TRUE = 1, LP_EARLY_NEVER = 2 };

typedef struct {
	int32_t *v;
	int n;
} lp_ids;

typedef struct lp_gen_config {
	/* length: -1 means unset (HF None) */
	int max_new_tokens;       /* -1: max_length, else 20 */
	int max_length;           /* -1; total length, prompt included */
	int min_new_tokens;       /* 0 */
	int min_length;           /* 0; total length, prompt included */
	double max_time;          /* 0: no limit (seconds) */
	/* strategy */
	int do_sample;            /* 0 */
	int num_beams;            /* 1 */
	int num_beam_groups;      /* 1 */
	double diversity_penalty; /* 0 */
	double length_penalty;    /* 1.0 */
	int early_stopping;       /* LP_EARLY_FALSE */
	int num_return_sequences; /* 1 */
	/* warpers (used when do_sample) */
	double temperature;       /* 1.0 */
	int top_k;                /* 50; 0 disables */
	double top_p;             /* 1.0 */
	double min_p;             /* 0: off */
	double typical_p;         /* 1.0 */
	double epsilon_cutoff;    /* 0 */
	double eta_cutoff;        /* 0 */
	int min_tokens_to_keep;   /* 1; beam sampling raises it to n_eos + 1 as HF */
	/* processors */
	double repetition_penalty;   /* 1.0 */
	int no_repeat_ngram_size;    /* 0 */
	lp_ids *bad_words_ids;       /* n_bad_words sequences */
	int n_bad_words;
	lp_ids suppress_tokens;
	lp_ids begin_suppress_tokens;
	int renormalize_logits;      /* 0 */
	/* special tokens */
	lp_ids eos_token_id;         /* empty: none */
	int pad_token_id;            /* -1: eos_token_id[0] */
	/* randomness and stops */
	uint64_t seed;               /* 0 */
	char **stop_strings;         /* matched by the caller on decoded text */
	int n_stop_strings;
} lp_gen_config;

/* Defaults as above. lp_gen_config_free releases the lists and resets
 * every control to its default. */
void lp_gen_config_init(lp_gen_config *c);
void lp_gen_config_free(lp_gen_config *c);

/* Set one control by its HF name from text: integers, reals, booleans
 * (true/false/1/0), early_stopping true|false|never, token lists "2" or
 * "2,3" or "[2, 3]", bad_words_ids "[[1,2],[3]]" or "1 2;3" (appended to
 * the list), stop_strings one string (appended). Returns 0, or -1 with a
 * message "NAME: what" in err (never dies). */
int lp_gen_config_set(lp_gen_config *c, const char *name, const char *value,
		      char *err, size_t errlen);
/* Check values and combinations as HF does (num_beams divisible by
 * num_beam_groups, num_return_sequences <= num_beams, greedy with several
 * return sequences, temperature > 0, ...). 0, or -1 with a message. */
int lp_gen_config_check(const lp_gen_config *c, char *err, size_t errlen);
/* The names lp_gen_config_set accepts, NULL-terminated. */
extern const char *const lp_gen_control_names[];

/* The total lengths HF derives for a prompt of prompt_len tokens:
 * max_length = prompt_len + max_new_tokens if set, else max_length if set,
 * else prompt_len + 20 capped at max_positions (when > 0);
 * min_length = prompt_len + min_new_tokens if set (> 0), else min_length. */
void lp_gen_lengths(const lp_gen_config *c, int prompt_len, int max_positions,
		    int *min_length, int *max_length);

/* Whether tok is one of the eos ids. */
int lp_is_eos(const lp_gen_config *c, int32_t tok);
/* pad_token_id, or eos_token_id[0] when unset, or -1. */
int32_t lp_pad_token(const lp_gen_config *c);

/* ---- single processors: scores[vocab] in place, ids[n] the sequence ---- */

void lp_proc_repetition_penalty(float *scores, int vocab, const int32_t *ids,
				int n, double penalty);
void lp_proc_no_repeat_ngram(float *scores, int vocab, const int32_t *ids,
			     int n, int ngram_size);
/* Bad words: single-token words (other than a lone eos id) are always
 * banned; a longer word bans its last token when ids end with the rest. */
void lp_proc_bad_words(float *scores, int vocab, const int32_t *ids, int n,
		       const lp_ids *words, int n_words, const lp_ids *eos);
/* eos ids to -inf while n < min_length. */
void lp_proc_min_length(float *scores, int vocab, int n, int min_length,
			const lp_ids *eos);
/* eos ids to -inf while n - prompt_len < min_new_tokens. */
void lp_proc_min_new_tokens(float *scores, int vocab, int n, int prompt_len,
			    int min_new_tokens, const lp_ids *eos);
void lp_proc_suppress(float *scores, int vocab, const lp_ids *toks);
/* The listed tokens to -inf when n == begin_index (the first new token). */
void lp_proc_begin_suppress(float *scores, int vocab, int n, int begin_index,
			    const lp_ids *toks);

void lp_warp_temperature(float *scores, int vocab, double temperature);
/* Keeps every score >= the k-th largest (ties are kept). */
void lp_warp_top_k(float *scores, int vocab, int top_k, int min_keep);
void lp_warp_top_p(float *scores, int vocab, double top_p, int min_keep);
void lp_warp_min_p(float *scores, int vocab, double min_p, int min_keep);
void lp_warp_typical(float *scores, int vocab, double mass, int min_keep);
void lp_warp_epsilon(float *scores, int vocab, double epsilon, int min_keep);
void lp_warp_eta(float *scores, int vocab, double epsilon, int min_keep);

/* In place: x - max - log(sum(exp(x - max))). */
void lp_log_softmax(float *x, int n);
/* probs[n] = softmax(x) (double sums, f32 results); returns the sum of
 * exp(x - max), 0 when every x is -inf. */
double lp_softmax(const float *x, float *probs, int n);

/* ---- the processor list ---- */

typedef struct lp_procs lp_procs;
/* The list HF builds for cfg, for sequences whose prompt has prompt_len
 * tokens. min_length is the derived one (lp_gen_lengths). num_beams > 1
 * with do_sample keeps n_eos + 1 tokens in the warpers, as HF. */
lp_procs *lp_procs_new(const lp_gen_config *cfg, int prompt_len, int min_length);
void lp_procs_free(lp_procs *p);
/* Apply every processor in order to one row. */
void lp_procs_apply(const lp_procs *p, float *scores, int vocab,
		    const int32_t *ids, int n);
/* Names of the processors in order, comma-separated (for --verbose). */
const char *lp_procs_describe(const lp_procs *p);

/* ---- choosing a token ---- */

/* torch.argmax: index of the first maximum; a NaN wins. */
int lp_argmax(const float *scores, int vocab);
/* One draw from softmax(scores); -1 when no token has probability > 0. */
int lp_sample_token(const float *scores, int vocab, lp_rng *rng);
/* Uniform double in [0, 1). */
double lp_rng_uniform(lp_rng *rng);

/* ---- stop strings ---- */

/* Index of the first stop string that occurs in text[0..len) ending after
 * byte new_from (so the newest token completed it, overhang allowed), or
 * -1. Callers pass the decoded text of the sequence and where the text of
 * the last token starts. */
int lp_stop_strings_find(const lp_gen_config *c, const char *text, size_t len,
			 size_t new_from);

#endif
