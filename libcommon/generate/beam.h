/* beam.h: the decoding loop's bookkeeping for one prompt, independent of
 * the model: greedy search, sampling, beam search (with or without
 * sampling) and group (diverse) beam search, as Hugging Face `generate`
 * does them (transformers 5.x; group beam search as the
 * transformers-community/group-beam-search code that 5.x loads for it).
 *
 * The model code drives it:
 *
 *   lp_search *s = lp_search_new(&cfg, prompt, n, vocab, max_pos, err, sizeof err);
 *   // prefill: every row starts as the prompt (rows = lp_search_rows(s))
 *   while (!lp_search_done(s)) {
 *           for each row r: logits[r] = model(lp_search_row(s, r, &len))
 *                                        (the next-token logits, f32, vocab wide)
 *           if (lp_search_step(s, logits, parent, token) < 0) die(lp_search_error(s));
 *           reorder the KV cache: new row r = old row parent[r];
 *           the next forward feeds token[r] to row r
 *   }
 *   for i < lp_search_nresults(s): lp_search_result(s, i, &n, &score, &eos)
 *
 * Rows: num_beams for beam searches (row r is beam r; at the first step
 * every row holds the prompt, so one forward pass may be computed and
 * copied), else num_return_sequences independent sequences (greedy or
 * sampled). A row that is not live (a finished sampled sequence, a group
 * whose beams are done) needs no logits: its input row is ignored and it
 * continues itself with the pad token.
 *
 * Scores: beam search accumulates log_softmax(logits) passed through the
 * processors (so the processors see log-probabilities, as in HF); a
 * finished hypothesis scores sum_logprobs / gen_len ** length_penalty where
 * gen_len counts the generated tokens including the final eos.
 * early_stopping: true stops as soon as num_beams hypotheses are finished;
 * false stops when the best running beam, scored at its current length,
 * cannot beat the worst finished one; "never" scores it at max_length when
 * length_penalty > 0 (the canonical search). */
#ifndef LP_BEAM_H
#define LP_BEAM_H

#include <stddef.h>
#include <stdint.h>
#include "generate/sampling.h"

typedef struct lp_search lp_search;

/* A stop check the caller supplies (stop strings are matched on decoded
 * text): non-zero when the sequence ids[0..n) (prompt included) must stop.
 * Beam search calls it for each candidate continuation, like HF's stopping
 * criteria. */
typedef int (*lp_stop_fn)(void *ctx, const int32_t *ids, int n);

/* cfg is borrowed and must outlive the search. max_positions (0: none)
 * caps the default max_length as HF does with max_position_embeddings.
 * NULL with a message in err on a bad config or a prompt that does not fit
 * (prompt_len >= max_length, a token id outside the vocabulary in
 * bad_words_ids). */
lp_search *lp_search_new(const lp_gen_config *cfg, const int32_t *prompt,
			 int prompt_len, int vocab, int max_positions,
			 char *err, size_t errlen);
void lp_search_free(lp_search *s);
void lp_search_set_stop(lp_search *s, lp_stop_fn fn, void *ctx);

int lp_search_rows(const lp_search *s);
/* Row r so far: prompt + generated tokens, *n of them (the same for every
 * row). */
const int32_t *lp_search_row(const lp_search *s, int r, int *n);
int lp_search_row_live(const lp_search *s, int r);
int lp_search_done(const lp_search *s);
/* The derived total lengths (prompt included). */
int lp_search_max_length(const lp_search *s);
/* The processors in use, in order, for --verbose. */
const char *lp_search_describe(const lp_search *s);

/* One step. logits: rows x vocab f32 for the rows as they are now; they
 * are overwritten (processed). parent[rows], token[rows]: new row r
 * continues old row parent[r] with token[r]. Returns 0 to go on, 1 when the
 * search is done (the rows need no more logits), -1 on error (a sampled row
 * with every token filtered out): lp_search_error() says what. */
int lp_search_step(lp_search *s, float *logits, int32_t *parent, int32_t *token);
const char *lp_search_error(const lp_search *s);

/* Results once done: num_return_sequences of them, best first for beam
 * searches, row order otherwise. Generated tokens only (the prompt left
 * out), ending with the eos token when one ended it (*eos_end set). score:
 * the length-normalized beam score; 0 for greedy and sampling. The tokens
 * stay valid until lp_search_free. */
int lp_search_nresults(const lp_search *s);
const int32_t *lp_search_result(const lp_search *s, int i, int *n, float *score,
				int *eos_end);

#endif
