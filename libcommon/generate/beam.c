/* beam.c: greedy/sampling, beam search and group beam search bookkeeping.
 *
 * Three loops behind one interface (beam.h):
 *   single  num_beams == 1: each row picks argmax or a draw; finished rows
 *           are padded (HF GenerationMixin._sample).
 *   beam    num_beams > 1, one group: HF 5.x GenerationMixin._beam_search,
 *           the vectorized form: top K = max(2, 1 + n_eos) * num_beams
 *           candidates over all beams; the best num_beams that did not hit
 *           a stopping criterion run on; candidates among the first
 *           num_beams that did hit one are finished hypotheses, merged with
 *           the kept ones by score. Its -1e9 masks are kept as f32 additions
 *           so that the same ties and orders come out.
 *   group   num_beam_groups > 1: the group beam search HF 5.x loads from
 *           transformers-community/group-beam-search: groups in turn, each
 *           a BeamSearchScorer step over its own beams, with the Hamming
 *           diversity penalty (diversity_penalty times the number of times
 *           earlier groups chose the token at this step) applied after the
 *           other processors; one BeamHypotheses list per group.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "generate/beam.h"

enum { M_SINGLE, M_BEAM, M_GROUP };

#define MASK (-1.0e9f)   /* HF's "very large negative value" */
#define SWAP(a, b) do { __typeof__(a) t_ = a; a = b; b = t_; } while (0)

/* A finished hypothesis of group search. */
typedef struct {
	double score;
	int32_t *ids;      /* generated tokens, eos excluded */
	int n;
	int32_t eos;       /* the eos that ended it, or -1 */
} hyp;

typedef struct {
	hyp *h;            /* insertion order, at most group_size + 1 */
	int n;
	double worst;
	int done;
} hyp_list;

struct lp_search {
	const lp_gen_config *c;
	lp_procs *procs;
	int mode, vocab, prompt_len, min_len, max_len, rows, cur_len, done;
	int nb, groups, gs, K;             /* beams, groups, group size, candidates */
	int32_t *ids, *ids_next;           /* rows x max_len */
	unsigned char *live;
	int32_t pad;
	lp_rng rng;
	double t0;
	lp_stop_fn stop;
	void *stop_ctx;
	char err[256];

	/* candidates (beam, group): K of them */
	float *cand_lp;
	int32_t *cand_beam, *cand_tok;
	unsigned char *cand_hit;
	int32_t *seq;                      /* one candidate sequence, max_len */
	float *flatp;                      /* beam sampling: probabilities */

	/* beam: running scores and finished slots */
	float *run_score;
	int32_t *fin_ids, *fin_ids_next;   /* nb x max_len (generated part) */
	int *fin_n, *fin_n_next;
	float *fin_score, *fin_score_next;
	unsigned char *fin_done, *fin_done_next;
	int unsatisfied;

	/* group */
	float *beam_score;
	int32_t *cur_tok;
	hyp_list *hl;

	/* results */
	int nres;
	const int32_t **res_ids;
	int *res_n, *res_eos;
	float *res_score;
	int *single_n;                     /* single: generated length per row */
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int time_up(const lp_search *s)
{
	return s->c->max_time > 0 && now() - s->t0 > s->c->max_time;
}

static int32_t *row_of(const lp_search *s, int32_t *base, int r)
{
	return base + (size_t)r * s->max_len;
}

lp_search *lp_search_new(const lp_gen_config *c, const int32_t *prompt,
			 int prompt_len, int vocab, int max_positions,
			 char *err, size_t errlen)
{
	if (lp_gen_config_check(c, err, errlen) < 0)
		return NULL;
	if (vocab < 1 || prompt_len < 1) {
		snprintf(err, errlen, "empty %s", vocab < 1 ? "vocabulary" : "prompt");
		return NULL;
	}
	for (int w = 0; w < c->n_bad_words; w++)
		for (int i = 0; i < c->bad_words_ids[w].n; i++)
			if (c->bad_words_ids[w].v[i] >= vocab) {
				snprintf(err, errlen, "bad_words_ids: token %d is outside the vocabulary (%d)",
					 c->bad_words_ids[w].v[i], vocab);
				return NULL;
			}
	int min_len, max_len;
	lp_gen_lengths(c, prompt_len, max_positions, &min_len, &max_len);
	if (prompt_len >= max_len) {
		snprintf(err, errlen, "max_length: the prompt has %d tokens, max_length is %d; "
			 "nothing left to generate (set max_new_tokens)", prompt_len, max_len);
		return NULL;
	}
	lp_search *s = lp_calloc(1, sizeof(*s));
	s->c = c;
	s->vocab = vocab;
	s->prompt_len = prompt_len;
	s->min_len = min_len;
	s->max_len = max_len;
	s->cur_len = prompt_len;
	s->procs = lp_procs_new(c, prompt_len, min_len);
	s->pad = lp_pad_token(c);
	s->t0 = now();
	lp_rng_seed(&s->rng, c->seed);
	s->nb = c->num_beams;
	s->groups = c->num_beam_groups;
	s->gs = s->nb / s->groups;
	s->mode = s->nb == 1 ? M_SINGLE : s->groups > 1 ? M_GROUP : M_BEAM;
	s->rows = s->mode == M_SINGLE ? c->num_return_sequences : s->nb;
	int n_eos = c->eos_token_id.n;
	s->K = (n_eos + 1 > 2 ? n_eos + 1 : 2) * (s->mode == M_GROUP ? s->gs : s->nb);

	size_t rl = (size_t)s->rows * max_len;
	s->ids = lp_malloc(rl * sizeof(int32_t));
	s->ids_next = lp_malloc(rl * sizeof(int32_t));
	for (int r = 0; r < s->rows; r++)
		memcpy(row_of(s, s->ids, r), prompt, (size_t)prompt_len * sizeof(int32_t));
	s->live = lp_malloc((size_t)s->rows);
	memset(s->live, 1, (size_t)s->rows);
	s->seq = lp_malloc((size_t)max_len * sizeof(int32_t));
	s->nres = c->num_return_sequences;
	s->res_ids = lp_calloc((size_t)s->nres, sizeof(*s->res_ids));
	s->res_n = lp_calloc((size_t)s->nres, sizeof(int));
	s->res_eos = lp_calloc((size_t)s->nres, sizeof(int));
	s->res_score = lp_calloc((size_t)s->nres, sizeof(float));

	if (s->mode == M_SINGLE) {
		s->single_n = lp_calloc((size_t)s->rows, sizeof(int));
		return s;
	}
	s->cand_lp = lp_malloc((size_t)s->K * sizeof(float));
	s->cand_beam = lp_malloc((size_t)s->K * sizeof(int32_t));
	s->cand_tok = lp_malloc((size_t)s->K * sizeof(int32_t));
	s->cand_hit = lp_malloc((size_t)s->K);
	if (s->mode == M_BEAM) {
		int nb = s->nb;
		s->run_score = lp_malloc((size_t)nb * sizeof(float));
		for (int b = 0; b < nb; b++)
			s->run_score[b] = b ? MASK : 0;
		s->fin_ids = lp_calloc((size_t)nb * max_len, sizeof(int32_t));
		s->fin_ids_next = lp_calloc((size_t)nb * max_len, sizeof(int32_t));
		s->fin_n = lp_calloc((size_t)nb, sizeof(int));
		s->fin_n_next = lp_calloc((size_t)nb, sizeof(int));
		s->fin_score = lp_malloc((size_t)nb * sizeof(float));
		s->fin_score_next = lp_malloc((size_t)nb * sizeof(float));
		for (int b = 0; b < nb; b++)
			s->fin_score[b] = MASK;
		s->fin_done = lp_calloc((size_t)nb, 1);
		s->fin_done_next = lp_calloc((size_t)nb, 1);
		s->unsatisfied = 1;
		if (c->do_sample)
			s->flatp = lp_malloc((size_t)nb * vocab * sizeof(float));
	} else {
		s->beam_score = lp_malloc((size_t)s->nb * sizeof(float));
		for (int b = 0; b < s->nb; b++)
			s->beam_score[b] = b % s->gs ? MASK : 0;
		s->cur_tok = lp_calloc((size_t)s->nb, sizeof(int32_t));
		s->hl = lp_calloc((size_t)s->groups, sizeof(hyp_list));
		for (int g = 0; g < s->groups; g++) {
			s->hl[g].h = lp_calloc((size_t)s->gs + 1, sizeof(hyp));
			s->hl[g].worst = 1e9;
		}
	}
	return s;
}

void lp_search_free(lp_search *s)
{
	if (!s)
		return;
	lp_procs_free(s->procs);
	free(s->ids);
	free(s->ids_next);
	free(s->live);
	free(s->seq);
	free(s->cand_lp);
	free(s->cand_beam);
	free(s->cand_tok);
	free(s->cand_hit);
	free(s->flatp);
	free(s->run_score);
	free(s->fin_ids);
	free(s->fin_ids_next);
	free(s->fin_n);
	free(s->fin_n_next);
	free(s->fin_score);
	free(s->fin_score_next);
	free(s->fin_done);
	free(s->fin_done_next);
	free(s->beam_score);
	free(s->cur_tok);
	if (s->hl) {
		for (int g = 0; g < s->groups; g++) {
			for (int i = 0; i < s->hl[g].n; i++)
				free(s->hl[g].h[i].ids);
			free(s->hl[g].h);
		}
		free(s->hl);
	}
	free(s->res_ids);
	free(s->res_n);
	free(s->res_eos);
	free(s->res_score);
	free(s->single_n);
	free(s);
}

void lp_search_set_stop(lp_search *s, lp_stop_fn fn, void *ctx)
{
	s->stop = fn;
	s->stop_ctx = ctx;
}

int lp_search_rows(const lp_search *s) { return s->rows; }
int lp_search_done(const lp_search *s) { return s->done; }
int lp_search_max_length(const lp_search *s) { return s->max_len; }
const char *lp_search_describe(const lp_search *s) { return lp_procs_describe(s->procs); }
const char *lp_search_error(const lp_search *s) { return s->err; }
int lp_search_nresults(const lp_search *s) { return s->done ? s->nres : 0; }

int lp_search_row_live(const lp_search *s, int r)
{
	return !s->done && s->live[r];
}

const int32_t *lp_search_row(const lp_search *s, int r, int *n)
{
	*n = s->cur_len;
	return row_of(s, s->ids, r);
}

const int32_t *lp_search_result(const lp_search *s, int i, int *n, float *score,
				int *eos_end)
{
	if (!s->done || i < 0 || i >= s->nres)
		return NULL;
	*n = s->res_n[i];
	if (score)
		*score = s->res_score[i];
	if (eos_end)
		*eos_end = s->res_eos[i];
	return s->res_ids[i];
}

static void swap_ids(lp_search *s)
{
	int32_t *t = s->ids;
	s->ids = s->ids_next;
	s->ids_next = t;
}

/* ---- single: greedy or sampling ---- */

static int single_step(lp_search *s, float *logits, int32_t *parent, int32_t *token)
{
	const lp_gen_config *c = s->c;
	int V = s->vocab, L = s->cur_len;
	for (int r = 0; r < s->rows; r++) {
		int32_t *row = row_of(s, s->ids, r);
		parent[r] = r;
		if (!s->live[r]) {
			token[r] = s->pad >= 0 ? s->pad : 0;
			continue;
		}
		float *x = logits + (size_t)r * V;
		lp_procs_apply(s->procs, x, V, row, L);
		int t = c->do_sample ? lp_sample_token(x, V, &s->rng) : lp_argmax(x, V);
		if (t < 0) {
			snprintf(s->err, sizeof(s->err), "sequence %d: every token was filtered out "
				 "at position %d; nothing to sample (loosen top_k/top_p/... or the bans)",
				 r, L - s->prompt_len);
			return -1;
		}
		token[r] = t;
	}
	int up = time_up(s), any = 0;
	for (int r = 0; r < s->rows; r++) {
		int32_t *row = row_of(s, s->ids, r);
		row[L] = token[r];
		if (!s->live[r])
			continue;
		if (L + 1 >= s->max_len || lp_is_eos(c, token[r]) || up ||
		    (s->stop && s->stop(s->stop_ctx, row, L + 1))) {
			s->live[r] = 0;
			s->single_n[r] = L + 1 - s->prompt_len;
		}
		any |= s->live[r];
	}
	s->cur_len = L + 1;
	if (any)
		return 0;
	for (int r = 0; r < s->nres; r++) {
		s->res_ids[r] = row_of(s, s->ids, r) + s->prompt_len;
		s->res_n[r] = s->single_n[r];
		s->res_eos[r] = s->res_n[r] > 0 && lp_is_eos(c, s->res_ids[r][s->res_n[r] - 1]);
	}
	s->done = 1;
	return 1;
}

/* ---- candidate selection ---- */

/* The K largest of key[0..n) in descending order (ties: lower index
 * first) into idx[K]; kv holds their keys. Insertion into a sorted array:
 * K is small. Returns how many were found (< K only when n < K). */
static int top_k_indices(const float *key, long n, int K, long *idx, float *kv)
{
	int have = 0;
	for (long i = 0; i < n; i++) {
		float v = key[i];
		if (have == K && !(v > kv[K - 1]))
			continue;
		int j = have < K ? have++ : K - 1;
		while (j > 0 && v > kv[j - 1]) {
			kv[j] = kv[j - 1];
			idx[j] = idx[j - 1];
			j--;
		}
		kv[j] = v;
		idx[j] = i;
	}
	return have;
}

/* torch.multinomial(softmax(flat), K, replacement=False): keys p / E with
 * E ~ Exp(1), the K largest in order. flat[n] log-space scores. */
static void sample_k_indices(lp_search *s, const float *flat, long n, int K, long *idx)
{
	float *key = s->flatp;
	float m = -INFINITY;
	for (long i = 0; i < n; i++)
		if (flat[i] > m)
			m = flat[i];
	double sum = 0;
	for (long i = 0; i < n; i++)
		sum += exp((double)(flat[i] - m));
	for (long i = 0; i < n; i++) {
		double p = exp((double)(flat[i] - m)) / sum;
		double e = -log(1.0 - lp_rng_uniform(&s->rng));   /* > 0 but for u = 0 */
		key[i] = (float)(e > 0 ? p / e : (p > 0 ? INFINITY : 0));
	}
	float *kv = lp_malloc((size_t)K * sizeof(float));
	top_k_indices(key, n, K, idx, kv);
	free(kv);
}

static int hits_stop(lp_search *s, const int32_t *rowids, int32_t tok, int up)
{
	int L = s->cur_len;
	if (L + 1 >= s->max_len || lp_is_eos(s->c, tok) || up)
		return 1;
	if (!s->stop)
		return 0;
	memcpy(s->seq, rowids, (size_t)L * sizeof(int32_t));
	s->seq[L] = tok;
	return s->stop(s->stop_ctx, s->seq, L + 1) != 0;
}

/* ---- beam: HF 5.x _beam_search ---- */

static float len_pow(int len, double lp)
{
	return (float)pow((double)len, lp);
}

static int beam_step(lp_search *s, float *logits, int32_t *parent, int32_t *token)
{
	const lp_gen_config *c = s->c;
	int V = s->vocab, L = s->cur_len, nb = s->nb, K = s->K;
	long nflat = (long)nb * V;

	/* b. log-probs, processed, plus the running scores */
	for (int b = 0; b < nb; b++) {
		float *x = logits + (size_t)b * V;
		lp_log_softmax(x, V);
		lp_procs_apply(s->procs, x, V, row_of(s, s->ids, b), L);
		for (int v = 0; v < V; v++)
			x[v] = x[v] + s->run_score[b];
	}
	/* c. top K continuations (or K sampled without replacement) */
	long *idx = lp_malloc((size_t)K * sizeof(long));
	if (c->do_sample) {
		sample_k_indices(s, logits, nflat, K, idx);
	} else {
		float *kv = lp_malloc((size_t)K * sizeof(float));
		top_k_indices(logits, nflat, K, idx, kv);
		free(kv);
	}
	/* d. which continuations hit a stopping criterion */
	int up = time_up(s), all_hit = 1;
	for (int k = 0; k < K; k++) {
		s->cand_lp[k] = logits[idx[k]];
		s->cand_beam[k] = (int32_t)(idx[k] / V);
		s->cand_tok[k] = (int32_t)(idx[k] % V);
		s->cand_hit[k] = (unsigned char)hits_stop(s, row_of(s, s->ids, s->cand_beam[k]),
							  s->cand_tok[k], up);
		all_hit &= s->cand_hit[k];
	}
	free(idx);

	/* e. the best num_beams that did not hit run on */
	float *masked = lp_malloc((size_t)K * sizeof(float));
	long *pick = lp_malloc((size_t)nb * sizeof(long));
	float *pv = lp_malloc((size_t)nb * sizeof(float));
	for (int k = 0; k < K; k++)
		masked[k] = s->cand_lp[k] + (s->cand_hit[k] ? MASK : 0.0f);
	top_k_indices(masked, K, nb, pick, pv);
	for (int r = 0; r < nb; r++) {
		int k = (int)pick[r];
		int32_t *dst = row_of(s, s->ids_next, r);
		memcpy(dst, row_of(s, s->ids, s->cand_beam[k]), (size_t)L * sizeof(int32_t));
		dst[L] = s->cand_tok[k];
		parent[r] = s->cand_beam[k];
		token[r] = s->cand_tok[k];
		s->run_score[r] = pv[r];
	}

	/* f. finished: the first num_beams candidates that hit, length
	 * normalized, merged with the kept hypotheses; the best num_beams stay */
	float denom = len_pow(L + 1 - s->prompt_len, c->length_penalty);
	int all_fin = 1;
	for (int b = 0; b < nb; b++)
		all_fin &= s->fin_done[b];
	int full = all_fin && c->early_stopping == LP_EARLY_TRUE;
	int M = nb + K;
	float *ms = lp_malloc((size_t)M * sizeof(float));
	long *mp = lp_malloc((size_t)nb * sizeof(long));
	float *mv = lp_malloc((size_t)nb * sizeof(float));
	memcpy(ms, s->fin_score, (size_t)nb * sizeof(float));
	for (int k = 0; k < K; k++) {
		float sc = s->cand_lp[k] / denom;
		sc += full ? MASK : 0.0f;
		sc += s->unsatisfied ? 0.0f : MASK;
		int did = s->cand_hit[k] && k < nb;
		sc += did ? 0.0f : MASK;
		ms[nb + k] = sc;
	}
	top_k_indices(ms, M, nb, mp, mv);
	for (int j = 0; j < nb; j++) {
		int m = (int)mp[j];
		int32_t *dst = s->fin_ids_next + (size_t)j * s->max_len;
		if (m < nb) {
			s->fin_n_next[j] = s->fin_n[m];
			memcpy(dst, s->fin_ids + (size_t)m * s->max_len,
			       (size_t)s->fin_n[m] * sizeof(int32_t));
			s->fin_done_next[j] = s->fin_done[m];
		} else {
			int k = m - nb, g = L - s->prompt_len;
			memcpy(dst, row_of(s, s->ids, s->cand_beam[k]) + s->prompt_len,
			       (size_t)g * sizeof(int32_t));
			dst[g] = s->cand_tok[k];
			s->fin_n_next[j] = g + 1;
			s->fin_done_next[j] = s->cand_hit[k] && k < nb;
		}
		s->fin_score_next[j] = mv[j];
	}
	SWAP(s->fin_ids, s->fin_ids_next);
	SWAP(s->fin_n, s->fin_n_next);
	SWAP(s->fin_done, s->fin_done_next);
	memcpy(s->fin_score, s->fin_score_next, (size_t)nb * sizeof(float));
	swap_ids(s);
	free(masked);
	free(pick);
	free(pv);
	free(ms);
	free(mp);
	free(mv);

	/* g. can a running beam still beat the worst finished one? */
	s->cur_len = ++L;
	int best_len = c->early_stopping == LP_EARLY_NEVER && c->length_penalty > 0
		? s->max_len - s->prompt_len : L - s->prompt_len;
	float best = s->run_score[0] / len_pow(best_len, c->length_penalty);
	float worst = s->fin_score[0];
	all_fin = 1;
	for (int b = 0; b < nb; b++) {
		if (s->fin_score[b] < worst)
			worst = s->fin_score[b];
		all_fin &= s->fin_done[b];
	}
	int improvable = 0;
	for (int b = 0; b < nb; b++)
		improvable |= best > (s->fin_done[b] ? worst : MASK);
	s->unsatisfied = s->unsatisfied && improvable;
	int go_on = s->unsatisfied && !(all_fin && c->early_stopping == LP_EARLY_TRUE) && !all_hit;
	if (go_on)
		return 0;
	for (int i = 0; i < s->nres; i++) {
		s->res_ids[i] = s->fin_ids + (size_t)i * s->max_len;
		s->res_n[i] = s->fin_n[i];
		s->res_score[i] = s->fin_score[i];
		s->res_eos[i] = s->fin_n[i] > 0 && lp_is_eos(c, s->res_ids[i][s->fin_n[i] - 1]);
	}
	s->done = 1;
	return 1;
}

/* ---- group: BeamSearchScorer + BeamHypotheses per group ---- */

/* BeamHypotheses.add: score = sum_logprobs / gen_len ** length_penalty;
 * kept if the list is short or it beats the worst, which then goes. */
static void hyp_add(lp_search *s, hyp_list *h, const int32_t *ids, int n,
		    double sum_logprobs, int gen_len, int32_t eos)
{
	double score = sum_logprobs / pow((double)gen_len, s->c->length_penalty);
	if (!(h->n < s->gs || score > h->worst))
		return;
	hyp *x = &h->h[h->n++];
	x->score = score;
	x->n = n;
	x->eos = eos;
	x->ids = lp_malloc((size_t)(n ? n : 1) * sizeof(int32_t));
	memcpy(x->ids, ids, (size_t)n * sizeof(int32_t));
	if (h->n > s->gs) {
		/* sorted (score, index): drop the first, the second is the worst */
		int lo = 0;
		for (int i = 1; i < h->n; i++)
			if (h->h[i].score < h->h[lo].score)
				lo = i;
		double second = INFINITY;
		for (int i = 0; i < h->n; i++)
			if (i != lo && h->h[i].score < second)
				second = h->h[i].score;
		free(h->h[lo].ids);
		memmove(&h->h[lo], &h->h[lo + 1], (size_t)(h->n - lo - 1) * sizeof(hyp));
		h->n--;
		h->worst = second;
	} else if (score < h->worst) {
		h->worst = score;
	}
}

/* BeamHypotheses.is_done; len_after = sequence length after this step. */
static int hyp_is_done(const lp_search *s, const hyp_list *h, double best, int len_after)
{
	const lp_gen_config *c = s->c;
	if (h->n < s->gs)
		return 0;
	if (c->early_stopping == LP_EARLY_TRUE)
		return 1;
	int len = len_after - s->prompt_len;
	if (c->early_stopping == LP_EARLY_NEVER && c->length_penalty > 0)
		len = s->max_len - s->prompt_len;
	return h->worst >= best / pow((double)len, c->length_penalty);
}

static void hamming(const lp_search *s, float *x, int g)
{
	float pen = (float)s->c->diversity_penalty;
	for (int j = 0; j < g * s->gs; j++) {
		int32_t t = s->cur_tok[j];
		int cnt = 0, first = 1;
		for (int i = 0; i < j; i++)
			if (s->cur_tok[i] == t)
				first = 0;
		if (!first || t < 0 || t >= s->vocab)
			continue;
		for (int i = j; i < g * s->gs; i++)
			cnt += s->cur_tok[i] == t;
		x[t] = x[t] - pen * (float)cnt;
	}
}

static void group_finish(lp_search *s)
{
	int G = s->groups, gs = s->gs, L = s->cur_len, P = s->prompt_len;
	for (int g = 0; g < G; g++) {
		if (s->hl[g].done)
			continue;
		for (int j = 0; j < gs; j++) {
			int r = g * gs + j;
			hyp_add(s, &s->hl[g], row_of(s, s->ids, r) + P, L - P,
				(double)s->beam_score[r], L - P, -1);
		}
	}
	/* Python's sorted() by score then pop(): best first, and among equal
	 * scores the later one in (group, list) order first. */
	int total = 0;
	for (int g = 0; g < G; g++)
		total += s->hl[g].n;
	hyp **all = lp_malloc((size_t)(total ? total : 1) * sizeof(*all));
	int n = 0;
	for (int g = 0; g < G; g++)
		for (int i = 0; i < s->hl[g].n; i++)
			all[n++] = &s->hl[g].h[i];
	for (int i = 0; i < s->nres && i < n; i++) {
		int best = i;
		for (int j = i + 1; j < n; j++)
			if (all[j]->score >= all[best]->score)
				best = j;
		hyp *t = all[best];
		memmove(&all[i + 1], &all[i], (size_t)(best - i) * sizeof(*all));
		all[i] = t;
		/* ids with the eos appended (room was allocated for it) */
		if (t->eos >= 0) {
			t->ids = lp_realloc(t->ids, (size_t)(t->n + 1) * sizeof(int32_t));
			t->ids[t->n++] = t->eos;
			t->eos = -2;     /* appended */
		}
		s->res_ids[i] = t->ids;
		s->res_n[i] = t->n;
		s->res_score[i] = (float)t->score;
		s->res_eos[i] = t->eos == -2;
	}
	free(all);
	s->done = 1;
}

static int group_step(lp_search *s, float *logits, int32_t *parent, int32_t *token)
{
	const lp_gen_config *c = s->c;
	int V = s->vocab, L = s->cur_len, gs = s->gs, K = s->K, P = s->prompt_len;
	long nflat = (long)gs * V;
	long *idx = lp_malloc((size_t)K * sizeof(long));
	float *kv = lp_malloc((size_t)K * sizeof(float));
	memset(s->cur_tok, 0, (size_t)s->nb * sizeof(int32_t));
	for (int g = 0; g < s->groups; g++) {
		int r0 = g * gs;
		hyp_list *h = &s->hl[g];
		if (h->done) {
			/* a finished group pads: every beam continues beam 0 */
			for (int j = 0; j < gs; j++) {
				int32_t *dst = row_of(s, s->ids_next, r0 + j);
				memcpy(dst, row_of(s, s->ids, r0), (size_t)L * sizeof(int32_t));
				dst[L] = s->pad >= 0 ? s->pad : 0;
				parent[r0 + j] = r0;
				token[r0 + j] = dst[L];
				s->cur_tok[r0 + j] = dst[L];
				s->beam_score[r0 + j] = 0;
			}
			continue;
		}
		float *gl = logits + (size_t)r0 * V;
		for (int j = 0; j < gs; j++) {
			float *x = gl + (size_t)j * V;
			lp_log_softmax(x, V);
			lp_procs_apply(s->procs, x, V, row_of(s, s->ids, r0 + j), L);
			hamming(s, x, g);
			for (int v = 0; v < V; v++)
				x[v] = x[v] + s->beam_score[r0 + j];
		}
		top_k_indices(gl, nflat, K, idx, kv);
		int bi = 0;
		for (int k = 0; k < K && bi < gs; k++) {
			int b = (int)(idx[k] / V);
			int32_t t = (int32_t)(idx[k] % V);
			const int32_t *src = row_of(s, s->ids, r0 + b);
			if (lp_is_eos(c, t)) {
				if (k >= gs)
					continue;
				hyp_add(s, h, src + P, L - P, (double)kv[k], L + 1 - P, t);
				continue;
			}
			int32_t *dst = row_of(s, s->ids_next, r0 + bi);
			memcpy(dst, src, (size_t)L * sizeof(int32_t));
			dst[L] = t;
			parent[r0 + bi] = r0 + b;
			token[r0 + bi] = t;
			s->cur_tok[r0 + bi] = t;
			s->beam_score[r0 + bi] = kv[k];
			bi++;
		}
		if (bi < gs) {
			snprintf(s->err, sizeof(s->err), "group %d: fewer than %d candidates that "
				 "are not eos", g, gs);
			free(idx);
			free(kv);
			return -1;
		}
		h->done = hyp_is_done(s, h, (double)kv[0], L + 1);
		for (int j = 0; h->done && j < gs; j++)
			s->live[r0 + j] = 0;     /* padded from now on */
	}
	free(idx);
	free(kv);
	swap_ids(s);
	s->cur_len = ++L;

	int all_done = 1, all_stop = 1;
	for (int g = 0; g < s->groups; g++)
		all_done &= s->hl[g].done;
	for (int r = 0; r < s->nb && all_stop; r++) {
		const int32_t *row = row_of(s, s->ids, r);
		all_stop = lp_is_eos(c, row[L - 1]) ||
			(s->stop && s->stop(s->stop_ctx, row, L));
	}
	if (all_done || L >= s->max_len || time_up(s) || all_stop) {
		group_finish(s);
		return 1;
	}
	return 0;
}

int lp_search_step(lp_search *s, float *logits, int32_t *parent, int32_t *token)
{
	if (s->done)
		return 1;
	switch (s->mode) {
	case M_SINGLE:
		return single_step(s, logits, parent, token);
	case M_BEAM:
		return beam_step(s, logits, parent, token);
	default:
		return group_step(s, logits, parent, token);
	}
}
