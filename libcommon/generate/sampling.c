/* sampling.c: generate controls, logits processors, token draws.
 * See sampling.h for the contract; comments here say which HF step each
 * piece of arithmetic mirrors. */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "generate/sampling.h"

/* ---- configuration ---- */

const char *const lp_gen_control_names[] = {
	"max_new_tokens", "max_length", "min_new_tokens", "min_length",
	"max_time", "do_sample", "num_beams", "num_beam_groups",
	"diversity_penalty", "length_penalty", "early_stopping",
	"num_return_sequences", "temperature", "top_k", "top_p", "min_p",
	"typical_p", "epsilon_cutoff", "eta_cutoff", "min_tokens_to_keep",
	"repetition_penalty", "no_repeat_ngram_size", "bad_words_ids",
	"suppress_tokens", "begin_suppress_tokens", "renormalize_logits",
	"eos_token_id", "pad_token_id", "seed", "stop_strings", NULL,
};

void lp_gen_config_init(lp_gen_config *c)
{
	memset(c, 0, sizeof(*c));
	c->max_new_tokens = -1;
	c->max_length = -1;
	c->num_beams = 1;
	c->num_beam_groups = 1;
	c->length_penalty = 1.0;
	c->early_stopping = LP_EARLY_FALSE;
	c->num_return_sequences = 1;
	c->temperature = 1.0;
	c->top_k = 50;
	c->top_p = 1.0;
	c->typical_p = 1.0;
	c->min_tokens_to_keep = 1;
	c->repetition_penalty = 1.0;
	c->pad_token_id = -1;
}

static void ids_free(lp_ids *l)
{
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

void lp_gen_config_free(lp_gen_config *c)
{
	for (int i = 0; i < c->n_bad_words; i++)
		ids_free(&c->bad_words_ids[i]);
	free(c->bad_words_ids);
	ids_free(&c->suppress_tokens);
	ids_free(&c->begin_suppress_tokens);
	ids_free(&c->eos_token_id);
	for (int i = 0; i < c->n_stop_strings; i++)
		free(c->stop_strings[i]);
	free(c->stop_strings);
	lp_gen_config_init(c);
}

static int seterr(char *err, size_t n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int seterr(char *err, size_t n, const char *fmt, ...)
{
	va_list ap;
	if (err && n) {
		va_start(ap, fmt);
		vsnprintf(err, n, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static int parse_ll(const char *s, long long lo, long long hi, long long *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	while (isspace((unsigned char)*end))
		end++;
	if (end == s || *end || errno || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static int parse_real(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	while (isspace((unsigned char)*end))
		end++;
	if (end == s || *end || errno || !isfinite(v))
		return -1;
	*out = v;
	return 0;
}

static int parse_bool(const char *s, int *out)
{
	if (!strcmp(s, "1") || !strcasecmp(s, "true") || !strcasecmp(s, "yes")) {
		*out = 1;
		return 0;
	}
	if (!strcmp(s, "0") || !strcasecmp(s, "false") || !strcasecmp(s, "no")) {
		*out = 0;
		return 0;
	}
	return -1;
}

static void ids_push(lp_ids *l, int32_t v)
{
	l->v = lp_realloc(l->v, (size_t)(l->n + 1) * sizeof(*l->v));
	l->v[l->n++] = v;
}

/* Token ids from s[0..len): non-negative integers separated by commas or
 * blanks. 0 or -1 (bad text; *l may be partly filled). */
static int parse_id_run(const char *s, size_t len, lp_ids *l)
{
	size_t i = 0;
	while (i < len) {
		if (s[i] == ',' || isspace((unsigned char)s[i])) {
			i++;
			continue;
		}
		if (!isdigit((unsigned char)s[i]))
			return -1;
		long long v = 0;
		while (i < len && isdigit((unsigned char)s[i])) {
			v = v * 10 + (s[i++] - '0');
			if (v > INT32_MAX)
				return -1;
		}
		if (i < len && s[i] != ',' && !isspace((unsigned char)s[i]))
			return -1;
		ids_push(l, (int32_t)v);
	}
	return 0;
}

/* "2", "2,3", "2 3" or "[2, 3]"; an empty list is allowed ("[]"). */
static int parse_ids(const char *s, lp_ids *out)
{
	size_t len = strlen(s);
	while (len && isspace((unsigned char)s[len - 1]))
		len--;
	while (len && isspace((unsigned char)*s))
		s++, len--;
	if (len && s[0] == '[') {
		if (s[len - 1] != ']')
			return -1;
		s++;
		len -= 2;
	}
	lp_ids l = { 0 };
	if (parse_id_run(s, len, &l) < 0) {
		ids_free(&l);
		return -1;
	}
	ids_free(out);
	*out = l;
	return 0;
}

static void add_word(lp_gen_config *c, lp_ids w)
{
	c->bad_words_ids = lp_realloc(c->bad_words_ids,
				      (size_t)(c->n_bad_words + 1) * sizeof(lp_ids));
	c->bad_words_ids[c->n_bad_words++] = w;
}

/* "[[1,2],[3]]" or "1 2;3": appends every word; all or nothing. */
static int parse_bad_words(lp_gen_config *c, const char *s)
{
	lp_ids *words = NULL;
	int n = 0, ok = 0;
	const char *p = s;
	while (isspace((unsigned char)*p))
		p++;
	if (*p == '[') {
		p++;
		for (;;) {
			while (isspace((unsigned char)*p) || *p == ',')
				p++;
			if (*p == ']') {
				p++;
				break;
			}
			if (*p != '[')
				goto out;
			const char *q = strchr(p, ']');
			if (!q)
				goto out;
			lp_ids w = { 0 };
			words = lp_realloc(words, (size_t)(n + 1) * sizeof(*words));
			words[n++] = w;
			if (parse_id_run(p + 1, (size_t)(q - p - 1), &words[n - 1]) < 0)
				goto out;
			p = q + 1;
		}
		while (isspace((unsigned char)*p))
			p++;
		if (*p)
			goto out;
	} else {
		for (;;) {
			const char *q = strchr(p, ';');
			size_t len = q ? (size_t)(q - p) : strlen(p);
			words = lp_realloc(words, (size_t)(n + 1) * sizeof(*words));
			words[n++] = (lp_ids){ 0 };
			if (parse_id_run(p, len, &words[n - 1]) < 0)
				goto out;
			if (!q)
				break;
			p = q + 1;
		}
	}
	for (int i = 0; i < n; i++)
		if (words[i].n == 0)
			goto out;
	if (n == 0)
		goto out;
	ok = 1;
out:
	for (int i = 0; i < n; i++) {
		if (ok)
			add_word(c, words[i]);
		else
			ids_free(&words[i]);
	}
	free(words);
	return ok ? 0 : -1;
}

typedef enum { K_INT, K_REAL, K_BOOL } kind;

struct num_field {
	const char *name;
	kind k;
	size_t off;
	long long lo, hi;
};

#define F_INT(f, lo, hi) { #f, K_INT, offsetof(lp_gen_config, f), lo, hi }
#define F_REAL(f) { #f, K_REAL, offsetof(lp_gen_config, f), 0, 0 }
#define F_BOOL(f) { #f, K_BOOL, offsetof(lp_gen_config, f), 0, 1 }

static const struct num_field num_fields[] = {
	F_INT(max_new_tokens, 1, INT32_MAX),
	F_INT(max_length, 1, INT32_MAX),
	F_INT(min_new_tokens, 0, INT32_MAX),
	F_INT(min_length, 0, INT32_MAX),
	F_REAL(max_time),
	F_BOOL(do_sample),
	F_INT(num_beams, 1, 1 << 16),
	F_INT(num_beam_groups, 1, 1 << 16),
	F_REAL(diversity_penalty),
	F_REAL(length_penalty),
	F_INT(num_return_sequences, 1, 1 << 16),
	F_REAL(temperature),
	F_INT(top_k, 0, INT32_MAX),
	F_REAL(top_p),
	F_REAL(min_p),
	F_REAL(typical_p),
	F_REAL(epsilon_cutoff),
	F_REAL(eta_cutoff),
	F_INT(min_tokens_to_keep, 1, INT32_MAX),
	F_REAL(repetition_penalty),
	F_INT(no_repeat_ngram_size, 0, INT32_MAX),
	F_BOOL(renormalize_logits),
	F_INT(pad_token_id, 0, INT32_MAX),
};

int lp_gen_config_set(lp_gen_config *c, const char *name, const char *value,
		      char *err, size_t errlen)
{
	for (size_t i = 0; i < sizeof(num_fields) / sizeof(num_fields[0]); i++) {
		const struct num_field *f = &num_fields[i];
		if (strcmp(f->name, name))
			continue;
		char *base = (char *)c + f->off;
		long long v;
		double d;
		int b;
		switch (f->k) {
		case K_INT:
			if (parse_ll(value, f->lo, f->hi, &v) < 0)
				return seterr(err, errlen, "%s: want an integer from %lld to %lld, got '%s'",
					      name, f->lo, f->hi, value);
			*(int *)base = (int)v;
			return 0;
		case K_REAL:
			if (parse_real(value, &d) < 0)
				return seterr(err, errlen, "%s: want a number, got '%s'", name, value);
			*(double *)base = d;
			return 0;
		case K_BOOL:
			if (parse_bool(value, &b) < 0)
				return seterr(err, errlen, "%s: want true or false, got '%s'", name, value);
			*(int *)base = b;
			return 0;
		}
	}
	if (!strcmp(name, "early_stopping")) {
		int b;
		if (!strcmp(value, "never"))
			c->early_stopping = LP_EARLY_NEVER;
		else if (parse_bool(value, &b) == 0)
			c->early_stopping = b ? LP_EARLY_TRUE : LP_EARLY_FALSE;
		else
			return seterr(err, errlen, "early_stopping: want true, false or never, got '%s'", value);
		return 0;
	}
	if (!strcmp(name, "seed")) {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(value, &end, 10);
		if (end == value || *end || errno || *value == '-')
			return seterr(err, errlen, "seed: want a non-negative integer, got '%s'", value);
		c->seed = v;
		return 0;
	}
	lp_ids *list = !strcmp(name, "eos_token_id") ? &c->eos_token_id
		: !strcmp(name, "suppress_tokens") ? &c->suppress_tokens
		: !strcmp(name, "begin_suppress_tokens") ? &c->begin_suppress_tokens
		: NULL;
	if (list) {
		if (parse_ids(value, list) < 0)
			return seterr(err, errlen, "%s: want token ids like 2,3 or [2, 3], got '%s'",
				      name, value);
		return 0;
	}
	if (!strcmp(name, "bad_words_ids")) {
		if (parse_bad_words(c, value) < 0)
			return seterr(err, errlen, "bad_words_ids: want [[1,2],[3]] or 1 2;3 "
				      "(non-empty words of token ids), got '%s'", value);
		return 0;
	}
	if (!strcmp(name, "stop_strings")) {
		if (!*value)
			return seterr(err, errlen, "stop_strings: empty stop string");
		c->stop_strings = lp_realloc(c->stop_strings,
					     (size_t)(c->n_stop_strings + 1) * sizeof(char *));
		c->stop_strings[c->n_stop_strings++] = lp_strdup(value);
		return 0;
	}
	return seterr(err, errlen, "unknown generation control '%s'", name);
}

int lp_gen_config_check(const lp_gen_config *c, char *err, size_t n)
{
	if (c->num_beams < 1)
		return seterr(err, n, "num_beams: must be at least 1");
	if (c->num_beam_groups < 1 || c->num_beam_groups > c->num_beams ||
	    c->num_beams % c->num_beam_groups)
		return seterr(err, n, "num_beam_groups: must divide num_beams (%d), got %d",
			      c->num_beams, c->num_beam_groups);
	if (c->num_beam_groups > 1 && c->do_sample)
		return seterr(err, n, "num_beam_groups: group beam search does not sample; "
			      "do_sample must be false");
	if (c->num_beam_groups > 1 && !(c->diversity_penalty > 0))
		return seterr(err, n, "diversity_penalty: group beam search needs "
			      "diversity_penalty > 0, got %g", c->diversity_penalty);
	if (c->num_return_sequences < 1)
		return seterr(err, n, "num_return_sequences: must be at least 1");
	if (c->num_beams == 1 && !c->do_sample && c->num_return_sequences > 1)
		return seterr(err, n, "num_return_sequences: greedy search returns one "
			      "sequence (got %d); sample or use beams", c->num_return_sequences);
	if (c->num_beams > 1 && c->num_return_sequences > c->num_beams)
		return seterr(err, n, "num_return_sequences: %d is more than num_beams (%d)",
			      c->num_return_sequences, c->num_beams);
	if (c->do_sample && !(c->temperature > 0))
		return seterr(err, n, "temperature: must be > 0 when sampling, got %g "
			      "(for greedy decoding leave do_sample off)", c->temperature);
	if (c->top_k < 0)
		return seterr(err, n, "top_k: must be >= 0, got %d", c->top_k);
	if (!(c->top_p >= 0 && c->top_p <= 1))
		return seterr(err, n, "top_p: must be in [0, 1], got %g", c->top_p);
	if (!(c->min_p >= 0 && c->min_p <= 1))
		return seterr(err, n, "min_p: must be in [0, 1], got %g", c->min_p);
	if (!(c->typical_p > 0 && c->typical_p <= 1))
		return seterr(err, n, "typical_p: must be in (0, 1], got %g", c->typical_p);
	if (!(c->epsilon_cutoff >= 0 && c->epsilon_cutoff < 1))
		return seterr(err, n, "epsilon_cutoff: must be in [0, 1), got %g", c->epsilon_cutoff);
	if (!(c->eta_cutoff >= 0 && c->eta_cutoff < 1))
		return seterr(err, n, "eta_cutoff: must be in [0, 1), got %g", c->eta_cutoff);
	if (c->min_tokens_to_keep < 1)
		return seterr(err, n, "min_tokens_to_keep: must be at least 1");
	if (!(c->repetition_penalty > 0))
		return seterr(err, n, "repetition_penalty: must be > 0, got %g", c->repetition_penalty);
	if (c->no_repeat_ngram_size < 0)
		return seterr(err, n, "no_repeat_ngram_size: must be >= 0");
	if (c->max_new_tokens == 0 || c->max_new_tokens < -1)
		return seterr(err, n, "max_new_tokens: must be > 0, got %d", c->max_new_tokens);
	if (c->max_length == 0 || c->max_length < -1)
		return seterr(err, n, "max_length: must be > 0, got %d", c->max_length);
	if (c->min_new_tokens < 0 || c->min_length < 0)
		return seterr(err, n, "min_new_tokens, min_length: must be >= 0");
	if (!(c->max_time >= 0))
		return seterr(err, n, "max_time: must be >= 0 seconds, got %g", c->max_time);
	if (!isfinite(c->length_penalty) || !isfinite(c->diversity_penalty))
		return seterr(err, n, "length_penalty, diversity_penalty: must be finite");
	if (c->pad_token_id < -1)
		return seterr(err, n, "pad_token_id: must be >= 0");
	for (int i = 0; i < c->n_bad_words; i++)
		if (c->bad_words_ids[i].n == 0)
			return seterr(err, n, "bad_words_ids: word %d is empty", i);
	return 0;
}

void lp_gen_lengths(const lp_gen_config *c, int prompt_len, int max_positions,
		    int *min_length, int *max_length)
{
	int mx;
	if (c->max_new_tokens > 0)
		mx = prompt_len + c->max_new_tokens;
	else if (c->max_length > 0)
		mx = c->max_length;
	else {
		mx = prompt_len + 20;
		if (max_positions > 0 && mx > max_positions)
			mx = max_positions;
	}
	*max_length = mx;
	*min_length = c->min_new_tokens > 0 ? prompt_len + c->min_new_tokens : c->min_length;
}

static int in_ids(const lp_ids *l, int32_t t)
{
	for (int i = 0; i < l->n; i++)
		if (l->v[i] == t)
			return 1;
	return 0;
}

int lp_is_eos(const lp_gen_config *c, int32_t tok)
{
	return in_ids(&c->eos_token_id, tok);
}

int32_t lp_pad_token(const lp_gen_config *c)
{
	if (c->pad_token_id >= 0)
		return c->pad_token_id;
	return c->eos_token_id.n ? c->eos_token_id.v[0] : -1;
}

/* ---- processors (HF's "LogitsProcessor" classes) ---- */

/* RepetitionPenaltyLogitsProcessor: every token seen in ids, prompt
 * included, once: negative scores times penalty, others divided by it. */
void lp_proc_repetition_penalty(float *scores, int vocab, const int32_t *ids,
				int n, double penalty)
{
	float p = (float)penalty;
	unsigned char *seen = lp_calloc((size_t)vocab, 1);
	for (int i = 0; i < n; i++) {
		int32_t t = ids[i];
		if (t < 0 || t >= vocab || seen[t])
			continue;
		seen[t] = 1;
		float s = scores[t];
		scores[t] = s < 0 ? s * p : s / p;
	}
	free(seen);
}

/* NoRepeatNGramLogitsProcessor: with the last ngram_size - 1 tokens as
 * prefix, every earlier full window that starts with that prefix bans its
 * last token. ngram_size 1 bans every token seen. */
void lp_proc_no_repeat_ngram(float *scores, int vocab, const int32_t *ids,
			     int n, int ngram_size)
{
	int k = ngram_size;
	if (k <= 0 || n < k)
		return;
	const int32_t *prefix = ids + n - (k - 1);
	for (int i = 0; i + k <= n; i++) {
		if (memcmp(ids + i, prefix, (size_t)(k - 1) * sizeof(*ids)))
			continue;
		int32_t t = ids[i + k - 1];
		if (t >= 0 && t < vocab)
			scores[t] = -INFINITY;
	}
}

/* NoBadWordsLogitsProcessor (a SequenceBiasLogitsProcessor with -inf
 * biases, added): words equal to a lone eos id are dropped first. */
void lp_proc_bad_words(float *scores, int vocab, const int32_t *ids, int n,
		       const lp_ids *words, int n_words, const lp_ids *eos)
{
	for (int w = 0; w < n_words; w++) {
		const lp_ids *b = &words[w];
		if (b->n == 0)
			continue;
		if (b->n == 1 && eos && in_ids(eos, b->v[0]))
			continue;
		int pre = b->n - 1;
		if (pre > n)
			continue;
		if (pre && memcmp(ids + n - pre, b->v, (size_t)pre * sizeof(*ids)))
			continue;
		int32_t t = b->v[pre];
		if (t >= 0 && t < vocab)
			scores[t] = scores[t] + -INFINITY;
	}
}

static void eos_to_minus_inf(float *scores, int vocab, const lp_ids *eos)
{
	for (int i = 0; i < eos->n; i++)
		if (eos->v[i] >= 0 && eos->v[i] < vocab)
			scores[eos->v[i]] = -INFINITY;
}

void lp_proc_min_length(float *scores, int vocab, int n, int min_length,
			const lp_ids *eos)
{
	if (n < min_length)
		eos_to_minus_inf(scores, vocab, eos);
}

void lp_proc_min_new_tokens(float *scores, int vocab, int n, int prompt_len,
			    int min_new_tokens, const lp_ids *eos)
{
	if (n - prompt_len < min_new_tokens)
		eos_to_minus_inf(scores, vocab, eos);
}

void lp_proc_suppress(float *scores, int vocab, const lp_ids *toks)
{
	eos_to_minus_inf(scores, vocab, toks);
}

void lp_proc_begin_suppress(float *scores, int vocab, int n, int begin_index,
			    const lp_ids *toks)
{
	if (n == begin_index)
		eos_to_minus_inf(scores, vocab, toks);
}

/* ---- softmax helpers: f32 differences as torch, sums in double ---- */

static float row_max(const float *x, int n)
{
	float m = -INFINITY;
	for (int i = 0; i < n; i++)
		if (x[i] > m)
			m = x[i];
	return m;
}

double lp_softmax(const float *x, float *probs, int n)
{
	float m = row_max(x, n);
	double sum = 0;
	for (int i = 0; i < n; i++)
		sum += exp((double)(x[i] - m));
	for (int i = 0; i < n; i++)
		probs[i] = (float)(exp((double)(x[i] - m)) / sum);
	return m == -INFINITY ? 0 : sum;
}

void lp_log_softmax(float *x, int n)
{
	float m = row_max(x, n);
	double sum = 0;
	for (int i = 0; i < n; i++)
		sum += exp((double)(x[i] - m));
	float ls = (float)log(sum);
	for (int i = 0; i < n; i++)
		x[i] = (x[i] - m) - ls;
}

/* The k-th largest of x[0..n) (1 <= k <= n), by selection on a copy. */
static float kth_largest(const float *x, int n, int k)
{
	float *a = lp_malloc((size_t)n * sizeof(*a));
	memcpy(a, x, (size_t)n * sizeof(*a));
	int lo = 0, hi = n - 1, want = k - 1;    /* index in descending order */
	while (lo < hi) {
		float p = a[lo + (hi - lo) / 2];
		int i = lo, j = hi;
		while (i <= j) {
			while (a[i] > p)
				i++;
			while (a[j] < p)
				j--;
			if (i <= j) {
				float t = a[i];
				a[i] = a[j];
				a[j] = t;
				i++;
				j--;
			}
		}
		if (want <= j)
			hi = j;
		else if (want >= i)
			lo = i;
		else
			break;
	}
	float r = a[want];
	free(a);
	return r;
}

void lp_warp_temperature(float *scores, int vocab, double temperature)
{
	float t = (float)temperature;
	for (int i = 0; i < vocab; i++)
		scores[i] = scores[i] / t;
}

/* TopKLogitsWarper: k = max(top_k, min_keep), at most vocab; scores
 * strictly below the k-th largest go to -inf. */
void lp_warp_top_k(float *scores, int vocab, int top_k, int min_keep)
{
	int k = top_k > min_keep ? top_k : min_keep;
	if (k > vocab)
		k = vocab;
	if (k <= 0)
		return;
	float kth = kth_largest(scores, vocab, k);
	for (int i = 0; i < vocab; i++)
		if (scores[i] < kth)
			scores[i] = -INFINITY;
}

typedef struct {
	float v;
	int i;
} vi;

static int vi_ascending(const void *a, const void *b)
{
	const vi *x = a, *y = b;
	if (x->v < y->v)
		return -1;
	if (x->v > y->v)
		return 1;
	return (x->i > y->i) - (x->i < y->i);
}

/* (key[i], i) ascending over the tokens whose score is not -inf, *n of
 * them. Tokens already at -inf have probability 0: in HF's full sort they
 * only add leading zeros to the cumulative sums (top_p) or trail with an
 * infinite shift (typical_p), and stay -inf either way. */
static vi *sort_ascending(const float *key, const float *scores, int vocab, int *n)
{
	vi *s = lp_malloc((size_t)vocab * sizeof(*s));
	int m = 0;
	for (int i = 0; i < vocab; i++)
		if (scores[i] != -INFINITY)
			s[m++] = (vi){ key[i], i };
	qsort(s, (size_t)m, sizeof(*s), vi_ascending);
	*n = m;
	return s;
}

/* cum[j] = f32 cumulative sum (double accumulator, as torch on CPU) of
 * softmax over vals[0..n) taken in order. */
static void softmax_cumsum(const float *vals, float *cum, int n)
{
	lp_softmax(vals, cum, n);
	double acc = 0;
	for (int j = 0; j < n; j++) {
		acc += cum[j];
		cum[j] = (float)acc;
	}
}

/* TopPLogitsWarper: sort ascending, cumulative softmax; remove positions
 * whose cumulative probability is <= 1 - top_p, except the last min_keep
 * (the most probable). */
void lp_warp_top_p(float *scores, int vocab, double top_p, int min_keep)
{
	int n;
	vi *s = sort_ascending(scores, scores, vocab, &n);
	float *vals = lp_malloc((size_t)vocab * sizeof(*vals));
	float *cum = lp_malloc((size_t)vocab * sizeof(*cum));
	for (int j = 0; j < n; j++)
		vals[j] = s[j].v;
	softmax_cumsum(vals, cum, n);
	float thr = (float)(1.0 - top_p);
	for (int j = 0; j < n - min_keep; j++)
		if (cum[j] <= thr)
			scores[s[j].i] = -INFINITY;
	free(s);
	free(vals);
	free(cum);
}

/* MinPLogitsWarper: remove tokens with probability < min_p * (top
 * probability), keeping the min_keep most probable. */
void lp_warp_min_p(float *scores, int vocab, double min_p, int min_keep)
{
	float *p = lp_malloc((size_t)vocab * sizeof(*p));
	unsigned char *keep = lp_calloc((size_t)vocab, 1);
	lp_softmax(scores, p, vocab);
	float top = row_max(p, vocab);
	float thr = (float)min_p * top;
	int k = min_keep < vocab ? min_keep : vocab;
	for (int r = 0; r < k; r++) {      /* the k most probable, first on ties */
		int best = -1;
		for (int i = 0; i < vocab; i++)
			if (!keep[i] && (best < 0 || p[i] > p[best]))
				best = i;
		keep[best] = 1;
	}
	for (int i = 0; i < vocab; i++)
		if (p[i] < thr && !keep[i])
			scores[i] = -INFINITY;
	free(p);
	free(keep);
}

/* TypicalLogitsWarper: entropy H of the distribution; tokens sorted by
 * |-log p - H| ascending; the cut is at the first position where the
 * cumulative probability (in that order) reaches mass; later tokens with
 * a strictly larger shift are removed, the first min_keep never. */
void lp_warp_typical(float *scores, int vocab, double mass, int min_keep)
{
	float *lp = lp_malloc((size_t)vocab * sizeof(*lp));
	float *shift = lp_malloc((size_t)vocab * sizeof(*shift));
	memcpy(lp, scores, (size_t)vocab * sizeof(*lp));
	lp_log_softmax(lp, vocab);
	double ent = 0;
	for (int i = 0; i < vocab; i++) {
		float pr = expf(lp[i]);
		float t = lp[i] * pr;
		if (!isnan(t))
			ent += t;
	}
	float h = (float)-ent;
	for (int i = 0; i < vocab; i++)
		shift[i] = fabsf(-lp[i] - h);
	int n;
	vi *s = sort_ascending(shift, scores, vocab, &n);
	float *vals = lp, *cum = lp_malloc((size_t)vocab * sizeof(*cum));
	if (n == 0)
		goto out;
	for (int j = 0; j < n; j++)
		vals[j] = scores[s[j].i];
	softmax_cumsum(vals, cum, n);
	float m = (float)mass;
	int last = 0;
	for (int j = 0; j < n; j++)
		last += cum[j] < m;
	if (last > n - 1)
		last = n - 1;
	float cut = s[last].v;
	for (int j = min_keep; j < n; j++)
		if (s[j].v > cut)
			scores[s[j].i] = -INFINITY;
out:
	free(s);
	free(lp);
	free(shift);
	free(cum);
}

/* EpsilonLogitsWarper / EtaLogitsWarper share the removal rule: probability
 * below the threshold and score below the min_keep-th largest. */
static void cut_below(float *scores, const float *p, int vocab, float thr, int min_keep)
{
	int k = min_keep < vocab ? min_keep : vocab;
	float kth = kth_largest(scores, vocab, k);
	for (int i = 0; i < vocab; i++)
		if (p[i] < thr && scores[i] < kth)
			scores[i] = -INFINITY;
}

void lp_warp_epsilon(float *scores, int vocab, double epsilon, int min_keep)
{
	float *p = lp_malloc((size_t)vocab * sizeof(*p));
	lp_softmax(scores, p, vocab);
	cut_below(scores, p, vocab, (float)epsilon, min_keep);
	free(p);
}

/* eta = min(epsilon, sqrt(epsilon) * exp(-H)), H the entropy, in f32. */
void lp_warp_eta(float *scores, int vocab, double epsilon, int min_keep)
{
	float *p = lp_malloc((size_t)vocab * sizeof(*p));
	float *lg = lp_malloc((size_t)vocab * sizeof(*lg));
	lp_softmax(scores, p, vocab);
	memcpy(lg, scores, (size_t)vocab * sizeof(*lg));
	lp_log_softmax(lg, vocab);
	double ent = 0;
	for (int i = 0; i < vocab; i++) {
		float l = lg[i] < -FLT_MAX ? -FLT_MAX : lg[i];   /* clamp(min=finfo.min) */
		ent += (double)(l * p[i]);
	}
	float h = (float)-ent, e = (float)epsilon;
	float alt = sqrtf(e) * expf(-h);
	float eta = e < alt ? e : alt;
	cut_below(scores, p, vocab, eta, min_keep);
	free(p);
	free(lg);
}

/* ---- the list ---- */

enum proc_kind {
	P_REPETITION, P_NGRAM, P_BAD_WORDS, P_MIN_LENGTH, P_MIN_NEW, P_SUPPRESS,
	P_BEGIN_SUPPRESS, P_TEMPERATURE, P_TOP_K, P_TOP_P, P_MIN_P, P_TYPICAL,
	P_EPSILON, P_ETA, P_NORMALIZE,
};

static const char *const proc_names[] = {
	"repetition_penalty", "no_repeat_ngram_size", "bad_words_ids",
	"min_length", "min_new_tokens", "suppress_tokens",
	"begin_suppress_tokens", "temperature", "top_k", "top_p", "min_p",
	"typical_p", "epsilon_cutoff", "eta_cutoff", "renormalize_logits",
};

struct lp_procs {
	const lp_gen_config *c;
	int prompt_len, min_length, min_keep;
	int n;
	enum proc_kind k[16];
	char desc[256];
};

static void add(lp_procs *p, enum proc_kind k)
{
	p->k[p->n++] = k;
	size_t len = strlen(p->desc);
	snprintf(p->desc + len, sizeof(p->desc) - len, "%s%s", len ? "," : "", proc_names[k]);
}

lp_procs *lp_procs_new(const lp_gen_config *c, int prompt_len, int min_length)
{
	lp_procs *p = lp_calloc(1, sizeof(*p));
	p->c = c;
	p->prompt_len = prompt_len;
	p->min_length = min_length;
	p->min_keep = c->min_tokens_to_keep;
	if (c->num_beams > 1 && p->min_keep < c->eos_token_id.n + 1)
		p->min_keep = c->eos_token_id.n + 1;
	if (c->num_beams > 1 && p->min_keep < 2)
		p->min_keep = 2;
	int has_eos = c->eos_token_id.n > 0;
	if (c->repetition_penalty != 1.0)
		add(p, P_REPETITION);
	if (c->no_repeat_ngram_size > 0)
		add(p, P_NGRAM);
	if (c->n_bad_words > 0)
		add(p, P_BAD_WORDS);
	if (has_eos && min_length > 0)
		add(p, P_MIN_LENGTH);
	if (has_eos && c->min_new_tokens > 0)
		add(p, P_MIN_NEW);
	if (c->suppress_tokens.n > 0)
		add(p, P_SUPPRESS);
	if (c->begin_suppress_tokens.n > 0)
		add(p, P_BEGIN_SUPPRESS);
	if (c->do_sample) {
		if (c->temperature != 1.0)
			add(p, P_TEMPERATURE);
		if (c->top_k != 0)
			add(p, P_TOP_K);
		if (c->top_p < 1.0)
			add(p, P_TOP_P);
		if (c->min_p > 0)
			add(p, P_MIN_P);
		if (c->typical_p < 1.0)
			add(p, P_TYPICAL);
		if (c->epsilon_cutoff > 0 && c->epsilon_cutoff < 1)
			add(p, P_EPSILON);
		if (c->eta_cutoff > 0 && c->eta_cutoff < 1)
			add(p, P_ETA);
	}
	if (c->renormalize_logits)
		add(p, P_NORMALIZE);
	return p;
}

void lp_procs_free(lp_procs *p)
{
	free(p);
}

const char *lp_procs_describe(const lp_procs *p)
{
	return p->n ? p->desc : "(none)";
}

void lp_procs_apply(const lp_procs *p, float *s, int vocab, const int32_t *ids, int n)
{
	const lp_gen_config *c = p->c;
	for (int i = 0; i < p->n; i++) {
		switch (p->k[i]) {
		case P_REPETITION:
			lp_proc_repetition_penalty(s, vocab, ids, n, c->repetition_penalty);
			break;
		case P_NGRAM:
			lp_proc_no_repeat_ngram(s, vocab, ids, n, c->no_repeat_ngram_size);
			break;
		case P_BAD_WORDS:
			lp_proc_bad_words(s, vocab, ids, n, c->bad_words_ids, c->n_bad_words,
					  &c->eos_token_id);
			break;
		case P_MIN_LENGTH:
			lp_proc_min_length(s, vocab, n, p->min_length, &c->eos_token_id);
			break;
		case P_MIN_NEW:
			lp_proc_min_new_tokens(s, vocab, n, p->prompt_len, c->min_new_tokens,
					       &c->eos_token_id);
			break;
		case P_SUPPRESS:
			lp_proc_suppress(s, vocab, &c->suppress_tokens);
			break;
		case P_BEGIN_SUPPRESS:
			lp_proc_begin_suppress(s, vocab, n, p->prompt_len, &c->begin_suppress_tokens);
			break;
		case P_TEMPERATURE:
			lp_warp_temperature(s, vocab, c->temperature);
			break;
		case P_TOP_K:
			lp_warp_top_k(s, vocab, c->top_k, p->min_keep);
			break;
		case P_TOP_P:
			lp_warp_top_p(s, vocab, c->top_p, p->min_keep);
			break;
		case P_MIN_P:
			lp_warp_min_p(s, vocab, c->min_p, p->min_keep);
			break;
		case P_TYPICAL:
			lp_warp_typical(s, vocab, c->typical_p, p->min_keep);
			break;
		case P_EPSILON:
			lp_warp_epsilon(s, vocab, c->epsilon_cutoff, p->min_keep);
			break;
		case P_ETA:
			lp_warp_eta(s, vocab, c->eta_cutoff, p->min_keep);
			break;
		case P_NORMALIZE:
			lp_log_softmax(s, vocab);
			break;
		}
	}
}

/* ---- choosing a token ---- */

int lp_argmax(const float *s, int vocab)
{
	int best = 0;
	for (int i = 0; i < vocab; i++) {
		if (isnan(s[i]))
			return i;
		if (s[i] > s[best])
			best = i;
	}
	return best;
}

double lp_rng_uniform(lp_rng *rng)
{
	return (double)(lp_rng_next(rng) >> 11) * 0x1p-53;
}

int lp_sample_token(const float *s, int vocab, lp_rng *rng)
{
	float m = row_max(s, vocab);
	if (!(m > -INFINITY) || !isfinite(m))
		return -1;
	double sum = 0;
	for (int i = 0; i < vocab; i++) {
		if (isnan(s[i]))
			return -1;
		sum += exp((double)(s[i] - m));
	}
	double u = lp_rng_uniform(rng) * sum, acc = 0;
	int last = -1;
	for (int i = 0; i < vocab; i++) {
		double e = exp((double)(s[i] - m));
		if (e <= 0)
			continue;
		acc += e;
		last = i;
		if (u < acc)
			return i;
	}
	return last;     /* u rounded past the total */
}

/* ---- stop strings ---- */

int lp_stop_strings_find(const lp_gen_config *c, const char *text, size_t len,
			 size_t new_from)
{
	if (new_from > len)
		new_from = len;
	for (int k = 0; k < c->n_stop_strings; k++) {
		const char *st = c->stop_strings[k];
		size_t sl = strlen(st);
		if (sl == 0 || sl > len)
			continue;
		/* an occurrence at p ends at p + sl, which must be > new_from */
		size_t p0 = new_from + 1 > sl ? new_from + 1 - sl : 0;
		for (size_t p = p0; p + sl <= len; p++)
			if (!memcmp(text + p, st, sl))
				return k;
	}
	return -1;
}
