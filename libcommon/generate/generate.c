/* generate.c: the generation loop and teacher-forced scoring. */
#include "generate/generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/common.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void lp_generate_needs(const lp_gen_config *cfg, int n_prompt, int max_positions,
		int *rows, int *max_len)
{
	int min_len;
	lp_gen_lengths(cfg, n_prompt, max_positions, &min_len, max_len);
	*rows = cfg->num_beams > 1 ? cfg->num_beams : cfg->num_return_sequences;
	if (*rows < 1)
		*rows = 1;
}

/* Why a sequence stopped early, seen by the search's stop callback. */
typedef struct {
	const lp_generator *g;
	int prompt_len;
	double deadline;        /* 0: none */
	int timed_out, interrupted;
} stop_ctx;

/* Text of generated ids; ids past the tokenizer's pieces (padding rows of
 * a larger embedding) have no text and are left out. */
static char *decode(const lp_generator *g, const int32_t *ids, int n, size_t *len)
{
	int32_t *keep = lp_malloc((n + 1) * sizeof *keep);
	int k = 0, size = lp_spm_size(g->tok);
	for (int i = 0; i < n; i++)
		if (ids[i] >= 0 && ids[i] < size)
			keep[k++] = ids[i];
	char *text = lp_spm_decode(g->tok, keep, k, len, NULL, 0);
	free(keep);
	if (!text) {
		text = lp_strdup("");
		*len = 0;
	}
	return text;
}

/* Did the newest token complete a stop string in the generated text? */
static int hits_stop_string(const lp_generator *g, const int32_t *ids, int n, int newest_only)
{
	if (!g->cfg->n_stop_strings || n <= 0)
		return 0;
	size_t len, before = 0;
	char *text = decode(g, ids, n, &len);
	if (newest_only)
		free(decode(g, ids, n - 1, &before));
	int hit = lp_stop_strings_find(g->cfg, text, len, before) >= 0;
	free(text);
	return hit;
}

static int stop_check(void *ctx, const int32_t *ids, int n)
{
	stop_ctx *c = ctx;
	if (c->g->interrupt && *c->g->interrupt)
		c->interrupted = 1;
	if (c->deadline > 0 && now() > c->deadline)
		c->timed_out = 1;
	if (c->interrupted || c->timed_out)
		return 1;
	return hits_stop_string(c->g, ids + c->prompt_len, n - c->prompt_len, 1);
}

static const char *finish_reason(const lp_generator *g, const stop_ctx *sc, const int32_t *ids,
		int n, int eos_end, int max_new)
{
	if (eos_end)
		return "eos";
	if (hits_stop_string(g, ids, n, 0))
		return "stop";
	if (n >= max_new)
		return "length";
	if (sc->interrupted)
		return "interrupted";
	/* the search checks max_time itself, before calling stop_check; its
	 * clock started after sc's, so its deadline has passed sc's too */
	if (sc->timed_out || (sc->deadline > 0 && now() > sc->deadline))
		return "time";
	return "length";
}

/* The length of text[0..len) less an incomplete UTF-8 character at its end. */
static size_t complete_utf8(const char *t, size_t len)
{
	size_t i = len;
	while (i > 0 && len - i < 4 && ((unsigned char)t[i - 1] & 0xc0) == 0x80)
		i--;
	if (i == 0)
		return len;
	unsigned char c = t[i - 1];
	size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
	return len - (i - 1) < need ? i - 1 : len;
}

/* Stream row 0's new text: decode everything generated, print the part
 * not printed yet. Until the last step, hold back an incomplete UTF-8
 * character and trailing U+FFFD: sentencepiece decodes the first byte
 * pieces of a character whose other bytes are still to come as U+FFFD. */
static void stream_row0(const lp_generator *g, const lp_search *s, int prompt_len, size_t *shown,
		int final)
{
	int n;
	const int32_t *row = lp_search_row(s, 0, &n);
	int k = n - prompt_len;
	if (k > 0 && lp_is_eos(g->cfg, row[n - 1]))
		k--;
	size_t len;
	char *text = decode(g, row + prompt_len, k, &len);
	size_t end = len;
	if (!final) {
		end = complete_utf8(text, len);
		while (end >= *shown + 3 && !memcmp(text + end - 3, "\xef\xbf\xbd", 3))
			end -= 3;
	}
	if (end > *shown) {
		char save = text[end];
		text[end] = 0;
		g->stream(g->stream_ctx, text + *shown);
		text[end] = save;
		*shown = end;
	}
	free(text);
}

/* The outputs of a finished search. */
static void collect(const lp_generator *g, lp_search *s, const stop_ctx *sc, int n,
		int max_len, lp_gen_output **out, int *nout)
{
	*nout = lp_search_nresults(s);
	*out = lp_calloc(*nout, sizeof **out);
	for (int i = 0; i < *nout; i++) {
		lp_gen_output *o = &(*out)[i];
		int k, eos;
		const int32_t *ids = lp_search_result(s, i, &k, &o->score, &eos);
		int keep = eos && k > 0 ? k - 1 : k;
		o->ids = lp_malloc((keep + 1) * sizeof *o->ids);
		memcpy(o->ids, ids, keep * sizeof *ids);
		o->n = keep;
		o->text = decode(g, o->ids, keep, &o->text_len);
		o->finish = finish_reason(g, sc, ids, keep, eos, max_len - n);
	}
}

/* How the batch's prompts are laid out over the state's rows: prompt p
 * owns rows off[p] .. off[p] + rows[p] - 1 while it runs; finished
 * prompts give their rows up. */
typedef struct {
	lp_search *s;
	stop_ctx sc;
	int rows, off, max_len, running;
} job;

int lp_generate_batch(const lp_generator *g, const int32_t *const *prompts, const int *ns,
		int count, lp_gen_output **out, int *nout, int *failed, char *err, size_t errlen)
{
	const lp_llama *m = g->model;
	lp_llama_state *st = g->state;
	double start = now();
	size_t V = m->V;
	job *jobs = lp_calloc(count, sizeof *jobs);
	int total = 0, rc = 0, longest = 0;
	*failed = -1;
	for (int p = 0; p < count; p++) {
		job *jb = &jobs[p];
		jb->s = lp_search_new(g->cfg, prompts[p], ns[p], m->V, (int)m->cfg.max_pos, err,
				errlen);
		if (!jb->s) {
			*failed = p;
			rc = -1;
			break;
		}
		jb->rows = lp_search_rows(jb->s);
		jb->max_len = lp_search_max_length(jb->s);
		jb->off = total;
		jb->running = 1;
		jb->sc = (stop_ctx){g, ns[p], g->cfg->max_time > 0 ? start + g->cfg->max_time : 0,
			0, 0};
		total += jb->rows;
		longest = ns[p] > longest ? ns[p] : longest;
		if (ns[p] > st->T || jb->max_len > st->Tmax) {
			snprintf(err, errlen, "internal: state too small (%d prompt, %d context)",
					ns[p], jb->max_len);
			*failed = p;
			rc = -1;
			break;
		}
	}
	if (rc == 0 && total > st->B) {
		snprintf(err, errlen, "internal: state too small (%d rows)", total);
		*failed = 0;
		rc = -1;
	}
	if (rc != 0) {
		for (int p = 0; p < count; p++)
			if (jobs[p].s)
				lp_search_free(jobs[p].s);
		free(jobs);
		return -1;
	}
	for (int p = 0; p < count; p++)
		lp_search_set_stop(jobs[p].s, stop_check, &jobs[p].sc);

	float *logits = lp_malloc(total * V * sizeof *logits);
	int32_t *parent = lp_malloc(total * sizeof *parent), *token = lp_malloc(total * sizeof *token);
	int32_t *moves = lp_malloc(total * sizeof *moves), *next = lp_malloc(total * sizeof *next);

	/* prefill: each prompt alone in row 0, exactly as a batch of one, then
	 * its cache copied to its rows; the last prompt first, so that the
	 * first, which owns row 0, is the last to use it */
	lp_llama_reset(st);
	for (int p = count - 1; p >= 0; p--) {
		job *jb = &jobs[p];
		st->past[0] = 0;
		lp_llama_forward(m, st, prompts[p], 1, ns[p], logits + jb->off * V);
		for (int r = 1; r < jb->rows; r++)
			memcpy(logits + (jb->off + r) * V, logits + jb->off * V, V * sizeof *logits);
		if (count == 1 && jb->rows == 1)
			continue;
		for (int r = 0; r < total; r++)
			moves[r] = r >= jb->off && r < jb->off + jb->rows ? 0 : r;
		lp_llama_reorder(m, st, moves, total);
	}

	size_t shown = 0;
	int running = count, rows_now = total;
	while (running > 0) {
		/* one step of every running search on its rows' logits */
		for (int p = 0; p < count; p++) {
			job *jb = &jobs[p];
			if (!jb->running)
				continue;
			int done = lp_search_step(jb->s, logits + jb->off * V, parent + jb->off,
					token + jb->off);
			if (done < 0) {
				snprintf(err, errlen, "%s", lp_search_error(jb->s));
				*failed = p;
				rc = -1;
				break;
			}
			if (g->stream && count == 1 && jb->rows == 1)
				stream_row0(g, jb->s, ns[p], &shown, done || lp_search_done(jb->s));
			if (done || lp_search_done(jb->s)) {
				jb->running = 0;
				running--;
			}
		}
		if (rc != 0 || running == 0)
			break;
		/* the rows of the running searches, packed from row 0 in prompt
		 * order: new row k takes old row moves[k] and is fed next[k] */
		int k = 0, moved = 0;
		for (int p = 0; p < count; p++) {
			job *jb = &jobs[p];
			if (!jb->running)
				continue;
			for (int r = 0; r < jb->rows; r++, k++) {
				moves[k] = jb->off + parent[jb->off + r];
				next[k] = token[jb->off + r];
				moved |= moves[k] != k;
			}
			jb->off = k - jb->rows;
		}
		rows_now = k;
		if (moved)
			lp_llama_reorder(m, st, moves, rows_now);
		lp_llama_forward(m, st, next, rows_now, 1, logits);
	}

	if (rc == 0)
		for (int p = 0; p < count; p++)
			collect(g, jobs[p].s, &jobs[p].sc, ns[p], jobs[p].max_len, &out[p], &nout[p]);
	for (int p = 0; p < count; p++)
		lp_search_free(jobs[p].s);
	free(jobs);
	free(logits);
	free(parent);
	free(token);
	free(moves);
	free(next);
	return rc;
}

int lp_generate(const lp_generator *g, const int32_t *prompt, int n, lp_gen_output **out,
		int *nout, char *err, size_t errlen)
{
	int failed;
	return lp_generate_batch(g, &prompt, &n, 1, out, nout, &failed, err, errlen);
}

void lp_gen_outputs_free(lp_gen_output *o, int n)
{
	for (int i = 0; i < n; i++) {
		free(o[i].ids);
		free(o[i].text);
	}
	free(o);
}

double lp_score(const lp_llama *m, lp_llama_state *s, const int32_t *ids, int n, int from)
{
	size_t V = m->V;
	float *logits = lp_malloc((size_t)n * V * sizeof *logits);
	lp_llama_reset(s);
	lp_llama_forward(m, s, ids, 1, n, logits);
	double total = 0;
	for (int t = from < 1 ? 1 : from; t < n; t++) {
		const float *row = logits + (size_t)(t - 1) * V;
		double mx = -INFINITY, sum = 0;
		for (size_t v = 0; v < V; v++)
			mx = row[v] > mx ? row[v] : mx;
		for (size_t v = 0; v < V; v++)
			sum += exp(row[v] - mx);
		total += row[ids[t]] - mx - log(sum);
	}
	free(logits);
	return total;
}
