/* Layer generate/: decoding as Hugging Face's generate does it: logits
 * processors and sampling on host rows (sampling.h), the search
 * bookkeeping of greedy, sampling and beam searches (beam.h), and the
 * loop that drives the model with them (this file). On model/ and text/. */

/* generate.h: drive a search (beam.h) with the model (llama.h): prefill the
 * prompt once, copy its cache to every row, then one token per row per
 * step, reordering the cache as beams move. Stop strings, the time limit
 * and an interrupt flag end generation as Hugging Face's stopping criteria
 * do; finish reasons say which. Also teacher-forced scoring. */
#ifndef LP_GENERATE_H
#define LP_GENERATE_H

#include <signal.h>
#include <stdint.h>

#include "generate/beam.h"
#include "model/llama.h"
#include "generate/sampling.h"
#include "text/spm.h"

typedef struct {
	int32_t *ids;           /* generated tokens, without the final eos */
	int n;
	char *text;             /* decoded, NUL-terminated */
	size_t text_len;        /* bytes of text: a <0x00> byte piece puts a NUL inside */
	const char *finish;     /* "eos", "length", "stop", "time", "interrupted" */
	float score;            /* beam score; 0 for greedy and sampling */
} lp_gen_output;

typedef struct {
	const lp_llama *model;
	lp_llama_state *state;          /* B >= rows of the search, Tmax >= max length */
	const lp_spm *tok;
	const lp_gen_config *cfg;
	volatile sig_atomic_t *interrupt;       /* may be NULL */
	/* called with the newly decoded text of row 0 after each step, when
	 * there is one row (greedy or sampling of one sequence) */
	void (*stream)(void *ctx, const char *text);
	void *stream_ctx;
} lp_generator;

/* Rows and context the state needs for cfg and a prompt of n tokens. */
void lp_generate_needs(const lp_gen_config *cfg, int n_prompt, int max_positions,
		int *rows, int *max_len);
/* Generate from prompt; *out gets num_return_sequences outputs (free with
 * lp_gen_outputs_free). 0, or -1 with a message in err. */
int lp_generate(const lp_generator *g, const int32_t *prompt, int n, lp_gen_output **out,
		int *nout, char *err, size_t errlen);
void lp_gen_outputs_free(lp_gen_output *o, int n);

/* Generate from count prompts together: out[p] and nout[p] for prompt p,
 * each what lp_generate gives for that prompt alone. Each prompt is
 * prefilled alone; then every step feeds one token to the rows of all
 * unfinished prompts in one forward call, and a finished prompt's rows
 * leave the batch. The state needs B >= the sum of the prompts' rows, T
 * >= the longest prompt and Tmax >= the longest max length (see
 * lp_generate_needs). The results equal lp_generate's when the backend
 * computes each row of a forward call on its own, as the CPU backend's
 * kernels do. --max-time counts from the start of the batch. 0, or -1
 * with a message in err and *failed the prompt it concerns. */
int lp_generate_batch(const lp_generator *g, const int32_t *const *prompts, const int *ns,
		int count, lp_gen_output **out, int *nout, int *failed, char *err, size_t errlen);

/* Sum of log p(ids[t] | ids[<t]) for t in [from, n), teacher-forced; the
 * state must have all_logits, B >= 1, T >= n and Tmax >= n. */
double lp_score(const lp_llama *m, lp_llama_state *s, const int32_t *ids, int n, int from);

#endif
