/* sampling.c: unit tests for libcommon/generate/sampling.c and beam.c, and the
 * driver the Hugging Face reference test (t/t0500-sampling.t with
 * t/ref/processors.py) talks to.
 *
 *   sampling              TAP unit tests
 *   sampling proc         apply processors to rows read from stdin
 *   sampling search       run lp_search on the fake model read from stdin
 *
 * proc input, one command a line:
 *   config                  reset the generate controls to their defaults
 *   set NAME VALUE          one control by its HF name (value: rest of line)
 *   prompt_len N            prompt length of the rows that follow
 *   row N ID... V X...      one row: N token ids, then V logits
 *   apply                   print the processed rows, one line each (%.9g),
 *                           and forget them; "list NAMES" first
 * search input: config/set as above, then
 *   fake V SEED EOS_BIAS    the fake model (see fake_logits)
 *   prompt ID...            and run: prints "result I N SCORE EOS ID..."
 *                           for every result, then "steps S".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generate/beam.h"
#include "base/common.h"
#include "generate/sampling.h"
#include "tap.h"

/* ---- the fake model: logits as a fixed function of the prefix ----
 * h = seed; h = mix(h ^ id) for each id; logit[v] = top 24 bits of
 * mix(h ^ v * C) times 2^-21, minus 4 (exact in f32), plus
 * eos_bias * len(ids) for eos ids; computed in double, rounded once. */
static uint64_t mix(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

static void fake_logits(const int32_t *ids, int n, int V, uint64_t seed,
			double eos_bias, const lp_gen_config *c, float *out)
{
	uint64_t h = seed;
	for (int i = 0; i < n; i++)
		h = mix(h ^ (uint32_t)ids[i]);
	for (int v = 0; v < V; v++) {
		uint64_t x = mix(h ^ ((uint64_t)v * 0xD1B54A32D192ED03ull));
		double val = (double)(x >> 40) * 0x1p-21 - 4.0;
		if (lp_is_eos(c, v))
			val += eos_bias * n;
		out[v] = (float)val;
	}
}

/* ---- driver ---- */

static char *rest_of(char *line, int skip_words)
{
	char *p = line;
	for (int i = 0; i < skip_words; i++) {
		p += strspn(p, " \t");
		p += strcspn(p, " \t");
	}
	p += strspn(p, " \t");
	p[strcspn(p, "\n")] = 0;
	return p;
}

static long next_long(char **p, const char *what)
{
	char *end;
	long v = strtol(*p, &end, 10);
	if (end == *p)
		lp_die("input", "want an integer (%s)", what);
	*p = end;
	return v;
}

static void set_control(lp_gen_config *c, char *line)
{
	char *name = rest_of(line, 1), *sp = name + strcspn(name, " \t");
	char *val = *sp ? sp + 1 + strspn(sp + 1, " \t") : sp;
	char err[256];
	*sp = 0;
	if (lp_gen_config_set(c, name, val, err, sizeof(err)) < 0)
		lp_die("set", "%s", err);
}

static void print_row(const float *x, int V)
{
	for (int v = 0; v < V; v++)
		printf("%s%.9g", v ? " " : "", x[v]);
	printf("\n");
}

static int drive_proc(void)
{
	lp_gen_config c;
	lp_gen_config_init(&c);
	char *line = NULL;
	size_t cap = 0;
	int prompt_len = 0, nrows = 0, V = 0;
	int32_t **ids = NULL;
	int *nids = NULL;
	float **rows = NULL;
	while (getline(&line, &cap, stdin) > 0) {
		char *p = line;
		if (!strncmp(line, "config", 6)) {
			lp_gen_config_free(&c);
		} else if (!strncmp(line, "set ", 4)) {
			set_control(&c, line);
		} else if (!strncmp(line, "prompt_len ", 11)) {
			p += 11;
			prompt_len = (int)next_long(&p, "prompt_len");
		} else if (!strncmp(line, "row ", 4)) {
			p += 4;
			int n = (int)next_long(&p, "id count");
			ids = lp_realloc(ids, (size_t)(nrows + 1) * sizeof(*ids));
			nids = lp_realloc(nids, (size_t)(nrows + 1) * sizeof(*nids));
			rows = lp_realloc(rows, (size_t)(nrows + 1) * sizeof(*rows));
			ids[nrows] = lp_malloc((size_t)(n + 1) * sizeof(int32_t));
			nids[nrows] = n;
			for (int i = 0; i < n; i++)
				ids[nrows][i] = (int32_t)next_long(&p, "id");
			V = (int)next_long(&p, "vocab");
			rows[nrows] = lp_malloc((size_t)V * sizeof(float));
			for (int v = 0; v < V; v++) {
				char *end;
				rows[nrows][v] = strtof(p, &end);
				if (end == p)
					lp_die("input", "want %d logits", V);
				p = end;
			}
			nrows++;
		} else if (!strncmp(line, "apply", 5)) {
			char err[256];
			if (lp_gen_config_check(&c, err, sizeof(err)) < 0)
				lp_die("config", "%s", err);
			int min_len, max_len;
			lp_gen_lengths(&c, prompt_len, 0, &min_len, &max_len);
			lp_procs *pr = lp_procs_new(&c, prompt_len, min_len);
			printf("list %s\n", lp_procs_describe(pr));
			for (int r = 0; r < nrows; r++) {
				lp_procs_apply(pr, rows[r], V, ids[r], nids[r]);
				print_row(rows[r], V);
				free(ids[r]);
				free(rows[r]);
			}
			nrows = 0;
			lp_procs_free(pr);
		} else if (line[0] != '\n' && line[0] != '#') {
			lp_die("input", "unknown command: %s", rest_of(line, 0));
		}
	}
	free(line);
	free(ids);
	free(nids);
	free(rows);
	lp_gen_config_free(&c);
	lp_close_stdout();
	return 0;
}

/* Run one search on the fake model, checking the parent/token contract
 * against a copy of the rows kept here; non-live rows get NaN logits. */
static int run_search(const lp_gen_config *c, const int32_t *prompt, int P, int V,
		      uint64_t seed, double eos_bias, int print)
{
	char err[256];
	lp_search *s = lp_search_new(c, prompt, P, V, 0, err, sizeof(err));
	if (!s)
		lp_die("search", "%s", err);
	int R = lp_search_rows(s), L = lp_search_max_length(s), steps = 0;
	float *logits = lp_malloc((size_t)R * V * sizeof(float));
	int32_t *parent = lp_malloc((size_t)R * sizeof(int32_t));
	int32_t *token = lp_malloc((size_t)R * sizeof(int32_t));
	int32_t *mine = lp_malloc((size_t)R * L * sizeof(int32_t));
	int32_t *next = lp_malloc((size_t)R * L * sizeof(int32_t));
	for (int r = 0; r < R; r++)
		memcpy(mine + (size_t)r * L, prompt, (size_t)P * sizeof(int32_t));
	int n = P;
	while (!lp_search_done(s)) {
		for (int r = 0; r < R; r++) {
			int len;
			const int32_t *row = lp_search_row(s, r, &len);
			if (len != n || memcmp(row, mine + (size_t)r * L, (size_t)n * sizeof(int32_t)))
				lp_die("search", "row %d differs from parent/token bookkeeping", r);
			if (lp_search_row_live(s, r))
				fake_logits(row, len, V, seed, eos_bias, c, logits + (size_t)r * V);
			else
				for (int v = 0; v < V; v++)
					logits[(size_t)r * V + v] = NAN;
		}
		if (lp_search_step(s, logits, parent, token) < 0)
			lp_die("search", "%s", lp_search_error(s));
		for (int r = 0; r < R; r++) {
			memcpy(next + (size_t)r * L, mine + (size_t)parent[r] * L, (size_t)n * sizeof(int32_t));
			next[(size_t)r * L + n] = token[r];
		}
		memcpy(mine, next, (size_t)R * L * sizeof(int32_t));
		n++;
		steps++;
	}
	for (int i = 0; print && i < lp_search_nresults(s); i++) {
		int len, eos;
		float score;
		const int32_t *t = lp_search_result(s, i, &len, &score, &eos);
		printf("result %d %d %.9g %d", i, len, score, eos);
		for (int j = 0; j < len; j++)
			printf(" %d", t[j]);
		printf("\n");
	}
	if (print)
		printf("steps %d\n", steps);
	free(logits);
	free(parent);
	free(token);
	free(mine);
	free(next);
	lp_search_free(s);
	return steps;
}

static int drive_search(void)
{
	lp_gen_config c;
	lp_gen_config_init(&c);
	char *line = NULL;
	size_t cap = 0;
	int V = 0;
	uint64_t seed = 0;
	double bias = 0;
	while (getline(&line, &cap, stdin) > 0) {
		char *p = line;
		if (!strncmp(line, "config", 6)) {
			lp_gen_config_free(&c);
		} else if (!strncmp(line, "set ", 4)) {
			set_control(&c, line);
		} else if (!strncmp(line, "fake ", 5)) {
			p += 5;
			V = (int)next_long(&p, "vocab");
			seed = (uint64_t)next_long(&p, "seed");
			bias = strtod(p, NULL);
		} else if (!strncmp(line, "prompt", 6)) {
			p += 6;
			int32_t prompt[256];
			int n = 0;
			char *end;
			for (;;) {
				long v = strtol(p, &end, 10);
				if (end == p || n == 256)
					break;
				prompt[n++] = (int32_t)v;
				p = end;
			}
			run_search(&c, prompt, n, V, seed, bias, 1);
		} else if (line[0] != '\n' && line[0] != '#') {
			lp_die("input", "unknown command: %s", rest_of(line, 0));
		}
	}
	free(line);
	lp_gen_config_free(&c);
	lp_close_stdout();
	return 0;
}

/* ---- unit tests ---- */

static int feq(float a, float b)
{
	return a == b || fabsf(a - b) <= 1e-6f * fmaxf(1.0f, fmaxf(fabsf(a), fabsf(b)));
}

static int row_is(const float *x, const float *want, int n)
{
	for (int i = 0; i < n; i++)
		if (!(isinf(want[i]) ? x[i] == want[i] : feq(x[i], want[i]))) {
			printf("#   at %d: got %.9g want %.9g\n", i, x[i], want[i]);
			return 0;
		}
	return 1;
}

static int set(lp_gen_config *c, const char *name, const char *val)
{
	char err[256];
	int r = lp_gen_config_set(c, name, val, err, sizeof(err));
	if (r < 0)
		printf("#   %s\n", err);
	return r;
}

static void test_config(void)
{
	lp_gen_config c;
	char err[256];
	lp_gen_config_init(&c);
	ok(c.num_beams == 1 && c.top_k == 50 && c.top_p == 1.0 && c.temperature == 1.0 &&
	   !c.do_sample && c.early_stopping == LP_EARLY_FALSE && c.length_penalty == 1.0 &&
	   c.repetition_penalty == 1.0 && c.num_return_sequences == 1 && c.min_tokens_to_keep == 1,
	   "defaults are HF's");
	ok(set(&c, "top_p", "0.9") == 0 && c.top_p == 0.9, "set top_p");
	ok(set(&c, "do_sample", "true") == 0 && c.do_sample, "set do_sample");
	ok(set(&c, "early_stopping", "never") == 0 && c.early_stopping == LP_EARLY_NEVER,
	   "early_stopping never");
	ok(set(&c, "eos_token_id", "[2, 7]") == 0 && c.eos_token_id.n == 2 &&
	   c.eos_token_id.v[1] == 7, "eos list in JSON form");
	ok(set(&c, "suppress_tokens", "4,5 6") == 0 && c.suppress_tokens.n == 3, "plain id list");
	ok(set(&c, "bad_words_ids", "[[1,2],[3]]") == 0 && set(&c, "bad_words_ids", "4 5;6") == 0 &&
	   c.n_bad_words == 4 && c.bad_words_ids[2].n == 2 && c.bad_words_ids[3].v[0] == 6,
	   "bad words in both forms, appended");
	ok(lp_gen_config_set(&c, "top_p", "abc", err, sizeof(err)) < 0 &&
	   strstr(err, "top_p: want a number"), "bad number: %s", err);
	ok(lp_gen_config_set(&c, "num_beams", "0", err, sizeof(err)) < 0 &&
	   strstr(err, "num_beams"), "num_beams 0 refused: %s", err);
	ok(lp_gen_config_set(&c, "bad_words_ids", "[[1,2],[]]", err, sizeof(err)) < 0 &&
	   c.n_bad_words == 4, "empty bad word refused, nothing appended");
	ok(lp_gen_config_set(&c, "bad_words_ids", "[[1,x]]", err, sizeof(err)) < 0, "bad id refused");
	ok(lp_gen_config_set(&c, "early_stopping", "sometimes", err, sizeof(err)) < 0 &&
	   strstr(err, "never"), "early_stopping value refused");
	ok(lp_gen_config_set(&c, "top_q", "1", err, sizeof(err)) < 0 &&
	   strstr(err, "unknown generation control 'top_q'"), "unknown control named");
	ok(lp_gen_config_check(&c, err, sizeof(err)) == 0, "config passes the check");
	c.num_beams = 4;
	c.num_beam_groups = 3;
	ok(lp_gen_config_check(&c, err, sizeof(err)) < 0 && strstr(err, "num_beam_groups"),
	   "groups must divide beams: %s", err);
	c.num_beam_groups = 2;
	c.do_sample = 0;
	ok(lp_gen_config_check(&c, err, sizeof(err)) < 0 && strstr(err, "diversity_penalty"),
	   "groups need a diversity penalty: %s", err);
	c.diversity_penalty = 0.5;
	c.num_return_sequences = 5;
	ok(lp_gen_config_check(&c, err, sizeof(err)) < 0 && strstr(err, "num_return_sequences"),
	   "more returns than beams: %s", err);
	c.num_beams = 1;
	c.num_beam_groups = 1;
	c.num_return_sequences = 2;
	ok(lp_gen_config_check(&c, err, sizeof(err)) < 0 && strstr(err, "greedy"),
	   "greedy with two returns: %s", err);
	c.do_sample = 1;
	c.temperature = 0;
	ok(lp_gen_config_check(&c, err, sizeof(err)) < 0 && strstr(err, "temperature"),
	   "temperature 0 with sampling: %s", err);
	lp_gen_config_free(&c);

	int mn, mx;
	lp_gen_lengths(&c, 7, 0, &mn, &mx);
	ok(mx == 27 && mn == 0, "default: 20 new tokens");
	lp_gen_lengths(&c, 7, 16, &mn, &mx);
	ok(mx == 16, "default capped by max positions");
	c.max_length = 12;
	lp_gen_lengths(&c, 7, 0, &mn, &mx);
	ok(mx == 12, "max_length is total");
	c.max_new_tokens = 3;
	c.min_new_tokens = 2;
	c.min_length = 100;
	lp_gen_lengths(&c, 7, 0, &mn, &mx);
	ok(mx == 10 && mn == 9, "max_new_tokens and min_new_tokens win");
	lp_gen_config_free(&c);
}

static void test_processors(void)
{
	lp_ids eos = { (int32_t[]){ 5 }, 1 };
	{
		float x[] = { 2, -2, 1, 0.5f };
		int32_t ids[] = { 0, 1, 1 };
		lp_proc_repetition_penalty(x, 4, ids, 3, 2.0);
		ok(row_is(x, (float[]){ 1, -4, 1, 0.5f }, 4), "repetition penalty divides and multiplies once");
	}
	{
		float x[6] = { 0 };
		int32_t ids[] = { 1, 2, 3, 1, 2 };
		lp_proc_no_repeat_ngram(x, 6, ids, 5, 3);
		ok(x[3] == -INFINITY && x[1] == 0 && x[2] == 0, "3-gram 1 2 3 banned after 1 2");
		float y[6] = { 0 };
		lp_proc_no_repeat_ngram(y, 6, ids, 5, 1);
		ok(y[1] == -INFINITY && y[2] == -INFINITY && y[3] == -INFINITY && y[0] == 0,
		   "1-gram bans every token seen");
		float z[6] = { 0 };
		lp_proc_no_repeat_ngram(z, 6, ids, 2, 3);
		ok(z[1] == 0 && z[2] == 0 && z[3] == 0, "no ban before a full n-gram");
	}
	{
		lp_ids words[] = { { (int32_t[]){ 3 }, 1 }, { (int32_t[]){ 1, 2, 4 }, 3 },
				   { (int32_t[]){ 5 }, 1 } };
		float x[6] = { 0 }, y[6] = { 0 };
		lp_proc_bad_words(x, 6, (int32_t[]){ 0, 1, 2 }, 3, words, 3, &eos);
		ok(x[3] == -INFINITY && x[4] == -INFINITY && x[5] == 0, "bad words: single, sequence; lone eos kept");
		lp_proc_bad_words(y, 6, (int32_t[]){ 0, 2, 1 }, 3, words, 3, &eos);
		ok(y[3] == -INFINITY && y[4] == 0, "sequence needs its prefix at the end");
	}
	{
		float x[6] = { 0 }, y[6] = { 0 };
		lp_proc_min_length(x, 6, 4, 5, &eos);
		lp_proc_min_length(y, 6, 5, 5, &eos);
		ok(x[5] == -INFINITY && y[5] == 0, "min_length bans eos while shorter");
		float z[6] = { 0 };
		lp_proc_min_new_tokens(z, 6, 6, 4, 3, &eos);
		ok(z[5] == -INFINITY, "min_new_tokens counts from the prompt");
		float s[6] = { 0 }, b[6] = { 0 }, b2[6] = { 0 };
		lp_ids sup = { (int32_t[]){ 0, 2, 9 }, 3 };
		lp_proc_suppress(s, 6, &sup);
		lp_proc_begin_suppress(b, 6, 4, 4, &sup);
		lp_proc_begin_suppress(b2, 6, 5, 4, &sup);
		ok(s[0] == -INFINITY && s[2] == -INFINITY && s[1] == 0, "suppress (ids past the vocab ignored)");
		ok(b[0] == -INFINITY && b2[0] == 0, "begin_suppress only at the first new token");
	}
	{
		float x[] = { 1, 3, 3, 2, -1 };
		lp_warp_top_k(x, 5, 2, 1);
		ok(row_is(x, (float[]){ -INFINITY, 3, 3, -INFINITY, -INFINITY }, 5), "top_k 2");
		float y[] = { 3, 2, 2, 1 };
		lp_warp_top_k(y, 4, 2, 1);
		ok(row_is(y, (float[]){ 3, 2, 2, -INFINITY }, 4), "top_k keeps ties with the k-th");
		float z[] = { 3, 2, 1, 0 };
		lp_warp_top_k(z, 4, 1, 3);
		ok(z[2] == 1 && z[3] == -INFINITY, "min_tokens_to_keep raises k");
		float t[] = { 1, -2 };
		lp_warp_temperature(t, 2, 0.5);
		ok(row_is(t, (float[]){ 2, -4 }, 2), "temperature divides");
	}
	{
		/* probabilities 0.5 0.3 0.15 0.05 */
		float base[] = { logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f) };
		float x[4], ninf = -INFINITY;
		memcpy(x, base, sizeof(x));
		lp_warp_top_p(x, 4, 0.75, 1);
		ok(row_is(x, (float[]){ base[0], base[1], ninf, ninf }, 4), "top_p 0.75");
		memcpy(x, base, sizeof(x));
		lp_warp_top_p(x, 4, 0.75, 3);
		ok(row_is(x, (float[]){ base[0], base[1], base[2], ninf }, 4), "top_p keeps min_tokens_to_keep");
		memcpy(x, base, sizeof(x));
		lp_warp_top_p(x, 4, 0.0, 1);
		ok(x[0] == base[0] && x[1] == ninf, "top_p 0 keeps the best");
		memcpy(x, base, sizeof(x));
		lp_warp_epsilon(x, 4, 0.1, 1);
		ok(row_is(x, (float[]){ base[0], base[1], base[2], ninf }, 4), "epsilon 0.1");
		memcpy(x, base, sizeof(x));
		lp_warp_min_p(x, 4, 0.5, 1);
		ok(row_is(x, (float[]){ base[0], base[1], ninf, ninf }, 4), "min_p 0.5 (cut at 0.25)");
		/* eta = min(eps, sqrt(eps) exp(-H)) */
		double H = 0;
		double p[] = { 0.5, 0.3, 0.15, 0.05 };
		for (int i = 0; i < 4; i++)
			H -= p[i] * log(p[i]);
		double eps = 0.2, eta = fmin(eps, sqrt(eps) * exp(-H));
		memcpy(x, base, sizeof(x));
		lp_warp_eta(x, 4, eps, 1);
		int good = 1;
		for (int i = 0; i < 4; i++)
			good &= (p[i] < eta) == (x[i] == ninf);
		ok(good && eta > 0.1 && eta < 0.15, "eta cutoff at %g", eta);
		/* typical: H = 1.14; |-log p - H|: 0.45 0.06 0.76 1.85; order 0.3 0.5 0.15 0.05;
		 * cumulative 0.3 0.8 0.95 1.0; mass 0.5 cuts after 0.5 */
		memcpy(x, base, sizeof(x));
		lp_warp_typical(x, 4, 0.5, 1);
		ok(row_is(x, (float[]){ base[0], base[1], ninf, ninf }, 4), "typical_p 0.5");
		memcpy(x, base, sizeof(x));
		lp_warp_typical(x, 4, 0.2, 1);
		ok(row_is(x, (float[]){ ninf, base[1], ninf, ninf }, 4), "typical_p 0.2 keeps the most typical");
		memcpy(x, base, sizeof(x));
		lp_log_softmax(x, 4);
		ok(row_is(x, base, 4), "log_softmax of log-probabilities is itself");
	}
	{
		ok(lp_argmax((float[]){ 1, 3, 3, 2 }, 4) == 1, "argmax takes the first maximum");
		ok(lp_argmax((float[]){ 1, NAN, 3 }, 3) == 1, "argmax: NaN wins as in torch");
		ok(lp_argmax((float[]){ -INFINITY, -INFINITY }, 2) == 0, "argmax of all -inf is 0");
		lp_rng r;
		lp_rng_seed(&r, 1);
		ok(lp_sample_token((float[]){ -INFINITY, -INFINITY }, 2, &r) == -1,
		   "nothing to sample when every token is -inf");
		ok(lp_sample_token((float[]){ -INFINITY, 0, -INFINITY }, 3, &r) == 1,
		   "the one token left is drawn");
	}
	{
		lp_gen_config c;
		lp_gen_config_init(&c);
		set(&c, "do_sample", "1");
		set(&c, "temperature", "0.7");
		set(&c, "top_p", "0.9");
		set(&c, "typical_p", "0.9");
		set(&c, "eta_cutoff", "0.001");
		set(&c, "epsilon_cutoff", "0.001");
		set(&c, "min_p", "0.05");
		set(&c, "repetition_penalty", "1.2");
		set(&c, "no_repeat_ngram_size", "3");
		set(&c, "bad_words_ids", "1 2");
		set(&c, "eos_token_id", "2");
		set(&c, "min_new_tokens", "2");
		set(&c, "suppress_tokens", "0");
		set(&c, "begin_suppress_tokens", "3");
		set(&c, "renormalize_logits", "true");
		lp_procs *p = lp_procs_new(&c, 4, 6);
		const char *want = "repetition_penalty,no_repeat_ngram_size,bad_words_ids,"
			"min_length,min_new_tokens,suppress_tokens,begin_suppress_tokens,"
			"temperature,top_k,top_p,min_p,typical_p,epsilon_cutoff,eta_cutoff,"
			"renormalize_logits";
		ok(!strcmp(lp_procs_describe(p), want), "processor order: %s", lp_procs_describe(p));
		lp_procs_free(p);
		set(&c, "do_sample", "0");
		p = lp_procs_new(&c, 4, 0);
		ok(!strstr(lp_procs_describe(p), "top_k") && !strstr(lp_procs_describe(p), "min_length"),
		   "no warpers without sampling; no min_length when 0");
		lp_procs_free(p);
		lp_gen_config_free(&c);
	}
	{
		lp_gen_config c;
		lp_gen_config_init(&c);
		set(&c, "stop_strings", "lo w");
		set(&c, "stop_strings", "hell");
		const char *t = "hello wor";
		ok(lp_stop_strings_find(&c, t, strlen(t), 6) == 0, "stop string ending in the new text");
		ok(lp_stop_strings_find(&c, t, strlen(t), 8) == -1, "old occurrences do not count");
		lp_gen_config_free(&c);
		set(&c, "stop_strings", "STOP");
		t = "abcSTOPxyz";
		ok(lp_stop_strings_find(&c, t, strlen(t), 5) == 0, "the last token may overhang the stop string");
		ok(lp_stop_strings_find(&c, t, 6, 0) == -1, "a partial stop string is no match");
		lp_gen_config_free(&c);
	}
}

/* Chi-square quantile by Wilson-Hilferty: df (1 - 2/(9df) + z sqrt(2/(9df)))^3. */
static double chi2_quantile(int df, double z)
{
	double a = 2.0 / (9.0 * df);
	double b = 1 - a + z * sqrt(a);
	return df * b * b * b;
}

static int cmp_desc(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return (x < y) - (x > y);
}

/* top_k against a sort, on rows with many ties and -inf */
static void test_top_k_random(void)
{
	lp_rng r;
	lp_rng_seed(&r, 5);
	int good = 1;
	for (int t = 0; t < 500 && good; t++) {
		int V = 1 + (int)lp_rng_below(&r, 40), k = 1 + (int)lp_rng_below(&r, (uint64_t)V + 3);
		float x[48], sorted[48];
		for (int i = 0; i < V; i++)
			x[i] = lp_rng_below(&r, 8) == 0 ? -INFINITY : (float)lp_rng_below(&r, 6);
		memcpy(sorted, x, sizeof(float) * (size_t)V);
		qsort(sorted, (size_t)V, sizeof(float), cmp_desc);
		float kth = sorted[(k < V ? k : V) - 1];
		float y[48];
		memcpy(y, x, sizeof(float) * (size_t)V);
		lp_warp_top_k(y, V, k, 1);
		for (int i = 0; i < V; i++)
			good &= y[i] == (x[i] < kth ? -INFINITY : x[i]);
	}
	ok(good, "top_k agrees with a full sort on 500 rows with ties and -inf");
}

static void test_draws(void)
{
	enum { V = 16, N = 200000 };
	float x[V], probs[V];
	lp_rng r;
	lp_rng_seed(&r, 99);
	for (int v = 0; v < V; v++)
		x[v] = (float)(lp_rng_uniform(&r) * 4 - 2);
	lp_warp_temperature(x, V, 0.7);
	lp_warp_top_k(x, V, 10, 1);
	lp_warp_top_p(x, V, 0.97, 1);
	lp_softmax(x, probs, V);
	long cnt[V] = { 0 };
	lp_rng_seed(&r, 12345);
	for (int i = 0; i < N; i++)
		cnt[lp_sample_token(x, V, &r)]++;
	double chi = 0;
	int df = -1, zero_ok = 1;
	for (int v = 0; v < V; v++) {
		if (probs[v] == 0) {
			zero_ok &= cnt[v] == 0;
			continue;
		}
		double e = (double)N * probs[v];
		chi += (cnt[v] - e) * (cnt[v] - e) / e;
		df++;
	}
	ok(zero_ok, "filtered tokens are never drawn");
	/* p = 0.001: z = 3.090 */
	double crit = chi2_quantile(df, 3.090);
	ok(df >= 3 && chi < crit, "draw frequencies fit the processed probabilities: "
	   "chi2 %.2f < %.2f (df %d, p = 0.001, %d draws)", chi, crit, df, N);

	int same = 1, differ = 0;
	lp_rng a, b, d;
	lp_rng_seed(&a, 7);
	lp_rng_seed(&b, 7);
	lp_rng_seed(&d, 8);
	for (int i = 0; i < 1000; i++) {
		int ta = lp_sample_token(x, V, &a), tb = lp_sample_token(x, V, &b);
		same &= ta == tb;
		differ |= ta != lp_sample_token(x, V, &d);
	}
	ok(same && differ, "same seed, same draws; another seed, other draws");
}

/* ---- search ---- */

typedef struct {
	int32_t *ids[8];
	int n[8], nres;
	float score[8];
} outcome;

static void search_into(const lp_gen_config *c, const int32_t *prompt, int P, int V,
			uint64_t seed, double bias, outcome *o)
{
	char err[256];
	lp_search *s = lp_search_new(c, prompt, P, V, 0, err, sizeof(err));
	if (!s)
		lp_die("search", "%s", err);
	int R = lp_search_rows(s);
	float *logits = lp_malloc((size_t)R * V * sizeof(float));
	int32_t parent[16], token[16];
	while (!lp_search_done(s)) {
		for (int r = 0; r < R; r++) {
			int len;
			const int32_t *row = lp_search_row(s, r, &len);
			fake_logits(row, len, V, seed, bias, c, logits + (size_t)r * V);
		}
		if (lp_search_step(s, logits, parent, token) < 0)
			lp_die("search", "%s", lp_search_error(s));
	}
	o->nres = lp_search_nresults(s);
	for (int i = 0; i < o->nres; i++) {
		int eos;
		const int32_t *t = lp_search_result(s, i, &o->n[i], &o->score[i], &eos);
		o->ids[i] = lp_malloc((size_t)(o->n[i] + 1) * sizeof(int32_t));
		memcpy(o->ids[i], t, (size_t)o->n[i] * sizeof(int32_t));
	}
	free(logits);
	lp_search_free(s);
}

static int same_outcome(const outcome *a, const outcome *b)
{
	if (a->nres != b->nres)
		return 0;
	for (int i = 0; i < a->nres; i++)
		if (a->n[i] != b->n[i] || memcmp(a->ids[i], b->ids[i], (size_t)a->n[i] * 4))
			return 0;
	return 1;
}

static void outcome_free(outcome *o)
{
	for (int i = 0; i < o->nres; i++)
		free(o->ids[i]);
}

static void test_search(void)
{
	const int32_t prompt[] = { 1, 5, 7 };
	lp_gen_config c;
	char err[256];
	lp_gen_config_init(&c);
	set(&c, "eos_token_id", "2");
	set(&c, "max_new_tokens", "12");
	set(&c, "min_new_tokens", "4");
	outcome g;
	search_into(&c, prompt, 3, 20, 3, 0.25, &g);
	ok(g.nres == 1 && g.n[0] >= 4 && g.n[0] <= 12, "greedy: %d tokens within min/max", g.n[0]);
	int eos_early = 0;
	for (int i = 0; i < g.n[0] - 1; i++)
		eos_early |= g.ids[0][i] == 2;
	ok(!eos_early, "greedy: eos only at the end");
	outcome_free(&g);

	set(&c, "num_beams", "4");
	set(&c, "num_return_sequences", "3");
	outcome b;
	search_into(&c, prompt, 3, 20, 3, 0.25, &b);
	ok(b.nres == 3 && b.score[0] >= b.score[1] && b.score[1] >= b.score[2],
	   "beam: 3 results, best first (%g %g %g)", b.score[0], b.score[1], b.score[2]);
	outcome_free(&b);

	set(&c, "num_beam_groups", "2");
	set(&c, "diversity_penalty", "1.5");
	outcome gb;
	search_into(&c, prompt, 3, 20, 3, 0.25, &gb);
	ok(gb.nres == 3 && gb.score[0] >= gb.score[2], "group beam: 3 results, best first");
	outcome_free(&gb);

	lp_gen_config_free(&c);
	set(&c, "eos_token_id", "2");
	set(&c, "do_sample", "1");
	set(&c, "num_return_sequences", "3");
	set(&c, "top_k", "5");
	set(&c, "seed", "42");
	outcome s1, s2, s3;
	search_into(&c, prompt, 3, 20, 3, 0.25, &s1);
	search_into(&c, prompt, 3, 20, 3, 0.25, &s2);
	set(&c, "seed", "43");
	search_into(&c, prompt, 3, 20, 3, 0.25, &s3);
	ok(s1.nres == 3 && same_outcome(&s1, &s2), "sampling: same seed, same sequences");
	ok(!same_outcome(&s1, &s3), "sampling: another seed, other sequences");
	outcome_free(&s1);
	outcome_free(&s2);
	outcome_free(&s3);

	set(&c, "num_beams", "3");
	set(&c, "num_return_sequences", "2");
	outcome bs1, bs2;
	search_into(&c, prompt, 3, 20, 3, 0.25, &bs1);
	search_into(&c, prompt, 3, 20, 3, 0.25, &bs2);
	ok(bs1.nres == 2 && same_outcome(&bs1, &bs2) && bs1.score[0] >= bs1.score[1],
	   "beam sampling: reproducible, best first");
	outcome_free(&bs1);
	outcome_free(&bs2);

	set(&c, "num_beams", "1");
	set(&c, "num_return_sequences", "1");
	set(&c, "suppress_tokens", "[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19]");
	lp_search *s = lp_search_new(&c, prompt, 3, 20, 0, err, sizeof(err));
	float logits[20];
	int32_t par, tok;
	int len;
	fake_logits(lp_search_row(s, 0, &len), 3, 20, 3, 0, &c, logits);
	ok(lp_search_step(s, logits, &par, &tok) < 0 && strstr(lp_search_error(s), "filtered out"),
	   "sampling with every token suppressed fails: %s", lp_search_error(s));
	lp_search_free(s);
	lp_gen_config_free(&c);

	set(&c, "max_length", "3");
	ok(!lp_search_new(&c, prompt, 3, 20, 0, err, sizeof(err)) && strstr(err, "max_length"),
	   "prompt as long as max_length refused: %s", err);
	lp_gen_config_free(&c);
	set(&c, "bad_words_ids", "[[3, 40]]");
	ok(!lp_search_new(&c, prompt, 3, 20, 0, err, sizeof(err)) && strstr(err, "outside"),
	   "bad word outside the vocabulary refused: %s", err);
	lp_gen_config_free(&c);
}

int main(int argc, char **argv)
{
	lp_init(argv[0]);
	if (argc > 1 && !strcmp(argv[1], "proc"))
		return drive_proc();
	if (argc > 1 && !strcmp(argv[1], "search"))
		return drive_search();
	if (argc > 1) {
		fprintf(stderr, "usage: %s [proc|search] < input\n", lp_prog);
		return 2;
	}
	test_config();
	test_processors();
	test_top_k_random();
	test_draws();
	test_search();
	return tap_done();
}
