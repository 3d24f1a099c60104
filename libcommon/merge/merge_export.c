/* merge_export.c: a merge plan written as Hugging Face safetensors, Meta
 * .pth shards or GGUF, with the config and tokenizer files that go with it.
 * See merge.h. */
#include "merge/merge.h"

#include <ctype.h>
#include <errno.h>
#include <jv.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/atomic_dir.h"
#include "base/common.h"
#include "base/dtype.h"
#include "formats/gguf.h"
#include "formats/json_edit.h"
#include "formats/pth_write.h"
#include "formats/safetensors.h"

/* ---- small things ---- */

static char *path_join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *s = lp_malloc(n);
	snprintf(s, n, "%s/%s", dir, name);
	return s;
}

/* dir/name's bytes, or NULL if it does not exist. */
static char *read_if_there(const char *dir, const char *name, size_t *n)
{
	char *p = path_join(dir, name);
	char *text = access(p, F_OK) == 0 ? lp_read_file(p, n) : NULL;
	free(p);
	return text;
}

/* name in the output directory, written atomically */
static void put_file(lp_atomic_dir *d, const char *name, const void *data, size_t n)
{
	char *p = lp_atomic_dir_path(d, name);
	lp_atomic *a = lp_atomic_create(p);
	lp_fwrite(lp_atomic_file(a), p, data, n);
	lp_atomic_commit(a);
	free(p);
}

static void copy_file(lp_atomic_dir *d, const char *from, const char *name)
{
	size_t n;
	char *data = lp_read_file(from, &n);
	put_file(d, name, data, n);
	free(data);
}

static void copy_if_there(lp_atomic_dir *d, const char *dir, const char *name)
{
	size_t n;
	char *data = read_if_there(dir, name, &n);
	if (data)
		put_file(d, name, data, n);
	free(data);
}

/* "[i/n] name" on a terminal; nothing when stderr is a file or pipe. */
static void progress(const lp_export_opts *o, size_t i, size_t n, const char *name)
{
	static int tty = -1;
	if (tty < 0)
		tty = isatty(2);
	if (o->quiet || !tty)
		return;
	fprintf(stderr, "\r%s: [%zu/%zu] %-56.56s", lp_prog, i + 1, n, name);
	if (i + 1 == n)
		fprintf(stderr, "\r%*s\r", 80, "");
}

/* A growing string. */
typedef struct { char *p; size_t n, cap; } str;

static void sadd(str *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sadd(str *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int k = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	lp_grow((void **)&s->p, &s->cap, s->n + k + 1, 1);
	va_start(ap, fmt);
	vsnprintf(s->p + s->n, k + 1, fmt, ap);
	va_end(ap);
	s->n += k;
}

static void sadd_json_str(str *s, const char *v)
{
	sadd(s, "\"");
	for (const unsigned char *c = (const unsigned char *)v; *c; c++) {
		if (*c == '"' || *c == '\\')
			sadd(s, "\\%c", *c);
		else if (*c < 0x20)
			sadd(s, "\\u%04x", *c);
		else
			sadd(s, "%c", *c);
	}
	sadd(s, "\"");
}

/* A double as Python's repr() writes it: the shortest text that reads back
 * the same, "10000.0" for integral values, "1e-05" style exponents. */
static void py_float(double v, char *buf, size_t size)
{
	if (v == floor(v) && fabs(v) < 1e16) {
		snprintf(buf, size, "%.1f", v);
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, size, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
}

static const char *torch_dtype_name(int dtype)
{
	return dtype == LP_BF16 ? "bfloat16" : dtype == LP_F16 ? "float16" : "float32";
}

uint64_t lp_parse_size(const char *s)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || v < 0 || !isfinite(v))
		return 0;
	static const struct { const char *unit; double mul; } units[] = {
		{"", 1}, {"b", 1}, {"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
		{"kib", 1024.0}, {"mib", 1048576.0}, {"gib", 1073741824.0},
		{"tib", 1099511627776.0},
	};
	char u[8];
	size_t k = 0;
	while (*end && k < sizeof u - 1)
		u[k++] = (char)tolower((unsigned char)*end++);
	u[k] = 0;
	if (*end)
		return 0;
	for (size_t i = 0; i < sizeof units / sizeof *units; i++)
		if (!strcmp(u, units[i].unit))
			return v * units[i].mul >= 1 && v * units[i].mul < 1.8e19 ?
				(uint64_t)(v * units[i].mul) : 0;
	return 0;
}

int lp_meta_shards(const lp_model_config *c)
{
	switch (c->hidden_size) {
	case 5120: return 2;    /* 13B */
	case 6656: return 4;    /* 33B */
	case 8192: return 8;    /* 65B, 70B */
	}
	return 1;               /* 7B and anything else */
}

static int json_has(const char *json, const char *key)
{
	jv top = jv_parse(json);
	int has = jv_get_kind(top) == JV_KIND_OBJECT &&
		jv_object_has(jv_copy(top), jv_string(key));
	jv_free(top);
	return has;
}

static char *json_set_or_die(char *json, const char *key, const char *val, const char *what)
{
	char err[128];
	char *t = lp_json_set(json, key, val, err, sizeof err);
	if (!t)
		lp_die(what, "%s", err);
	free(json);
	return t;
}

/* ---- the tokenizer ---- */

static void add_token(lp_tokenizer_files *t, size_t *cap, int64_t id, const char *content,
		int special)
{
	for (size_t i = 0; i < t->nadded; i++)
		if (t->added[i].id == id) {
			free(t->added[i].content);
			t->added[i].content = lp_strdup(content);
			t->added[i].special = special;
			return;
		}
	lp_grow((void **)&t->added, cap, t->nadded + 1, sizeof *t->added);
	t->added[t->nadded++] = (lp_added_token){ id, lp_strdup(content), special };
}

static jv parse_file(const char *dir, const char *name)
{
	size_t n;
	char *text = read_if_there(dir, name, &n);
	if (!text)
		return jv_invalid();
	jv v = jv_parse_sized(text, (int)n);
	free(text);
	if (!jv_is_valid(v) || jv_get_kind(v) != JV_KIND_OBJECT) {
		jv_free(v);
		char *p = path_join(dir, name);
		lp_die(p, "not a JSON object");
	}
	return v;
}

static int flag_of(jv obj, const char *key)
{
	jv v = jv_object_get(jv_copy(obj), jv_string(key));
	int k = jv_get_kind(v), r = k == JV_KIND_TRUE ? 1 : k == JV_KIND_FALSE ? 0 : -1;
	jv_free(v);
	return r;
}

void lp_tokenizer_files_load(lp_tokenizer_files *t, const char *model_path,
		const char *config_dir)
{
	memset(t, 0, sizeof *t);
	t->add_bos = t->add_eos = t->add_prefix_space = -1;
	if (model_path) {
		t->model_path = lp_strdup(model_path);
		lp_spm_model_load(model_path, &t->spm);
	}
	if (!config_dir)
		return;
	t->config_dir = lp_strdup(config_dir);
	size_t cap = 0;
	jv at = parse_file(config_dir, "added_tokens.json");
	if (jv_is_valid(at)) {
		jv_object_foreach(at, k, v) {
			if (jv_get_kind(v) == JV_KIND_NUMBER && jv_number_value(v) >= 0)
				add_token(t, &cap, (int64_t)jv_number_value(v), jv_string_value(k), 0);
			jv_free(k);
			jv_free(v);
		}
	}
	jv_free(at);
	jv tc = parse_file(config_dir, "tokenizer_config.json");
	if (jv_is_valid(tc)) {
		jv dec = jv_object_get(jv_copy(tc), jv_string("added_tokens_decoder"));
		if (jv_get_kind(dec) == JV_KIND_OBJECT) {
			jv_object_foreach(dec, k, v) {
				jv c = jv_get_kind(v) == JV_KIND_OBJECT ?
					jv_object_get(jv_copy(v), jv_string("content")) : jv_null();
				char *end;
				long long id = strtoll(jv_string_value(k), &end, 10);
				if (!*end && id >= 0 && jv_get_kind(c) == JV_KIND_STRING)
					add_token(t, &cap, id, jv_string_value(c),
							flag_of(v, "special") == 1);
				jv_free(c);
				jv_free(k);
				jv_free(v);
			}
		}
		jv_free(dec);
		t->add_bos = flag_of(tc, "add_bos_token");
		t->add_eos = flag_of(tc, "add_eos_token");
		t->add_prefix_space = flag_of(tc, "add_prefix_space");
	}
	jv_free(tc);
	int64_t top = model_path ? (int64_t)t->spm.n_pieces : 0;
	for (size_t i = 0; i < t->nadded; i++)
		if (t->added[i].id + 1 > top)
			top = t->added[i].id + 1;
	t->n_extra = model_path ? top - (int64_t)t->spm.n_pieces : 0;
}

void lp_tokenizer_files_free(lp_tokenizer_files *t)
{
	if (t->model_path)
		lp_spm_model_free(&t->spm);
	for (size_t i = 0; i < t->nadded; i++)
		free(t->added[i].content);
	free(t->added);
	free(t->model_path);
	free(t->config_dir);
	memset(t, 0, sizeof *t);
}

/* ---- Hugging Face: sharded safetensors ---- */

/* The config.json a transformers 5 LlamaConfig would write for c. */
static char *hf_config_text(const lp_model_config *c, int dtype, const lp_spm_model *spm)
{
	str s = {0};
	char f[64];
	int64_t bos = c->bos_id >= 0 ? c->bos_id : spm && spm->bos_id >= 0 ? spm->bos_id : 1;
	int64_t eos = c->n_eos ? c->eos_ids[0] : spm && spm->eos_id >= 0 ? spm->eos_id : 2;
	sadd(&s, "{\n  \"architectures\": [\n    \"LlamaForCausalLM\"\n  ],\n");
	sadd(&s, "  \"attention_bias\": false,\n  \"attention_dropout\": 0.0,\n");
	sadd(&s, "  \"bos_token_id\": %lld,\n", (long long)bos);
	sadd(&s, "  \"dtype\": \"%s\",\n", torch_dtype_name(dtype));
	sadd(&s, "  \"eos_token_id\": %lld,\n", (long long)eos);
	sadd(&s, "  \"head_dim\": %lld,\n", (long long)c->head_dim);
	sadd(&s, "  \"hidden_act\": \"silu\",\n  \"hidden_size\": %lld,\n",
			(long long)c->hidden_size);
	sadd(&s, "  \"initializer_range\": 0.02,\n  \"intermediate_size\": %lld,\n",
			(long long)c->intermediate_size);
	sadd(&s, "  \"max_position_embeddings\": %lld,\n", (long long)c->max_pos);
	sadd(&s, "  \"mlp_bias\": false,\n  \"model_type\": \"llama\",\n");
	sadd(&s, "  \"num_attention_heads\": %lld,\n", (long long)c->n_heads);
	sadd(&s, "  \"num_hidden_layers\": %lld,\n", (long long)c->n_layers);
	sadd(&s, "  \"num_key_value_heads\": %lld,\n", (long long)c->n_kv_heads);
	if (c->pad_id >= 0)
		sadd(&s, "  \"pad_token_id\": %lld,\n", (long long)c->pad_id);
	else
		sadd(&s, "  \"pad_token_id\": null,\n");
	sadd(&s, "  \"pretraining_tp\": 1,\n");
	py_float(c->rms_norm_eps, f, sizeof f);
	sadd(&s, "  \"rms_norm_eps\": %s,\n  \"rope_parameters\": {\n", f);
	const lp_rope_config *r = &c->rope;
	if (r->type == LP_ROPE_LLAMA3) {
		py_float(r->factor, f, sizeof f);
		sadd(&s, "    \"factor\": %s,\n", f);
		py_float(r->high_freq_factor, f, sizeof f);
		sadd(&s, "    \"high_freq_factor\": %s,\n", f);
		py_float(r->low_freq_factor, f, sizeof f);
		sadd(&s, "    \"low_freq_factor\": %s,\n", f);
		sadd(&s, "    \"original_max_position_embeddings\": %lld,\n",
				(long long)r->original_max_pos);
	} else if (r->type != LP_ROPE_DEFAULT) {
		py_float(r->factor, f, sizeof f);
		sadd(&s, "    \"factor\": %s,\n", f);
	}
	py_float(r->theta, f, sizeof f);
	sadd(&s, "    \"rope_theta\": %s,\n    \"rope_type\": \"%s\"\n  },\n", f,
			lp_rope_type_name(r->type));
	sadd(&s, "  \"tie_word_embeddings\": %s,\n", c->tie_word_embeddings ? "true" : "false");
	sadd(&s, "  \"use_cache\": true,\n  \"vocab_size\": %lld\n}\n", (long long)c->vocab_size);
	return s.p;
}

/* The base's config.json with the vocabulary, dtype and tying of the output. */
static char *edited_config(const lp_merge_plan *p, int dtype, const lp_spm_model *spm)
{
	size_t n;
	char *text = read_if_there(p->base->dir, "config.json", &n), v[64];
	if (!text)
		return hf_config_text(&p->cfg, dtype, spm);
	char *where = path_join(p->base->dir, "config.json");
	snprintf(v, sizeof v, "%lld", (long long)p->cfg.vocab_size);
	text = json_set_or_die(text, "vocab_size", v, where);
	snprintf(v, sizeof v, "\"%s\"", torch_dtype_name(dtype));
	int t4 = json_has(text, "torch_dtype"), t5 = json_has(text, "dtype");
	if (t4 || !t5)
		text = json_set_or_die(text, "torch_dtype", v, where);
	if (t5)
		text = json_set_or_die(text, "dtype", v, where);
	if (p->untied)
		text = json_set_or_die(text, "tie_word_embeddings", "false", where);
	free(where);
	return text;
}

static void tokenizer_files_hf(lp_atomic_dir *d, const lp_merge_plan *p,
		const lp_export_opts *o)
{
	const lp_tokenizer_files *t = o->tok;
	if (!t || !t->model_path)
		return;
	static const char *const companions[] = {
		"tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
	};
	int have = 0;
	for (size_t i = 0; t->config_dir && i < 3; i++) {
		char *q = path_join(t->config_dir, companions[i]);
		have |= access(q, F_OK) == 0;
		free(q);
	}
	if (have) {
		copy_file(d, t->model_path, "tokenizer.model");
		for (size_t i = 0; i < 3; i++)
			copy_if_there(d, t->config_dir, companions[i]);
	} else {
		/* a Meta base: write what LlamaTokenizer.save_pretrained would */
		for (size_t i = 0; i < 2; i++)
			free(lp_atomic_dir_path(d, companions[i]));
		free(lp_atomic_dir_path(d, "tokenizer.model"));
		lp_spm_write_hf_dir(lp_atomic_dir_tmp(d), &t->spm, p->cfg.max_pos);
	}
}

typedef struct {
	lp_st_writer *w;
	size_t rowbytes;
} st_sink;

static void st_rows(void *ctx, uint64_t r0, uint64_t n, const void *data)
{
	st_sink *s = ctx;
	(void)r0;
	lp_st_writer_write(s->w, data, n * s->rowbytes);
}

static int by_name(const void *a, const void *b, void *arg)
{
	const lp_merge_plan *p = arg;
	return strcmp(p->t[*(const size_t *)a].name, p->t[*(const size_t *)b].name);
}

uint64_t lp_export_hf(const lp_merge_plan *p, const char *out, const lp_export_opts *o)
{
	int dt = o->dtype ? o->dtype : p->base_dtype;
	size_t es = lp_dtype_size(dt), n = p->n;
	uint64_t limit = o->shard_size ? o->shard_size : 5000000000ull;
	/* shards as transformers cuts them: a new one when the next tensor
	 * would pass the limit */
	int *shard = lp_malloc(n * sizeof *shard);
	int ns = 0;
	uint64_t cur = 0, total = 0, params = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t b = p->t[i].rows * p->t[i].cols * es;
		if (ns == 0 || (cur > 0 && cur + b > limit)) {
			ns++;
			cur = 0;
		}
		shard[i] = ns - 1;
		cur += b;
		total += b;
		params += p->t[i].rows * p->t[i].cols;
	}
	lp_atomic_dir *d = lp_atomic_dir_create(out, o->force);
	char **fname = lp_malloc(ns * sizeof *fname);
	size_t done = 0;
	for (int s = 0; s < ns; s++) {
		char name[64];
		if (ns == 1)
			snprintf(name, sizeof name, "model.safetensors");
		else
			snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", s + 1, ns);
		fname[s] = lp_strdup(name);
		char *path = lp_atomic_dir_path(d, name);
		lp_st_writer *w = lp_st_writer_new(path);
		lp_st_writer_meta(w, "format", "pt");
		for (size_t i = 0; i < n; i++)
			if (shard[i] == s) {
				const lp_merge_tensor *t = &p->t[i];
				uint64_t shape[2] = { t->rows, t->cols };
				lp_st_writer_add(w, t->name, dt, t->rank, shape, NULL);
			}
		lp_st_writer_sort(w);
		const char *next;
		while ((next = lp_st_writer_next(w))) {
			size_t i = 0;
			while (i < n && (shard[i] != s || strcmp(p->t[i].name, next)))
				i++;
			st_sink sink = { w, p->t[i].cols * es };
			progress(o, done++, n, p->t[i].name);
			lp_merge_produce(p, i, dt, 1, st_rows, &sink);
		}
		lp_st_writer_close(w);
		free(path);
	}
	if (ns > 1) {
		size_t *order = lp_malloc(n * sizeof *order);
		for (size_t i = 0; i < n; i++)
			order[i] = i;
		qsort_r(order, n, sizeof *order, by_name, (void *)p);
		str s = {0};
		sadd(&s, "{\n  \"metadata\": {\n    \"total_parameters\": %llu,\n"
				"    \"total_size\": %llu\n  },\n  \"weight_map\": {\n",
				(unsigned long long)params, (unsigned long long)total);
		for (size_t k = 0; k < n; k++) {
			sadd(&s, "    ");
			sadd_json_str(&s, p->t[order[k]].name);
			sadd(&s, ": \"%s\"%s\n", fname[shard[order[k]]], k + 1 < n ? "," : "");
		}
		sadd(&s, "  }\n}\n");
		put_file(d, "model.safetensors.index.json", s.p, s.n);
		free(s.p);
		free(order);
	}
	char *cfg = edited_config(p, dt, o->tok && o->tok->model_path ? &o->tok->spm : NULL);
	put_file(d, "config.json", cfg, strlen(cfg));
	free(cfg);
	copy_if_there(d, p->base->dir, "generation_config.json");
	tokenizer_files_hf(d, p, o);
	lp_atomic_dir_commit(d);
	for (int s = 0; s < ns; s++)
		free(fname[s]);
	free(fname);
	free(shard);
	return total;
}

/* ---- Meta: params.json and consolidated.NN.pth ---- */

typedef struct {
	char name[96];
	size_t idx;             /* plan tensor */
	int axis;               /* -1: every shard holds it whole */
} meta_tensor;

static size_t find_role(const lp_merge_plan *p, int role, int layer)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->t[i].role == role && p->t[i].layer == layer)
			return i;
	return (size_t)-1;
}

/* Meta's tensors in the order of Meta's state dict, with their split axes. */
static meta_tensor *meta_list(const lp_merge_plan *p, size_t *count)
{
	size_t n = 0, cap = 3 + p->cfg.n_layers * LP_LAYER_ROLES;
	meta_tensor *m = lp_calloc(cap, sizeof *m);
	m[n++] = (meta_tensor){ "", find_role(p, LP_ROLE_EMBED, -1),
		lp_arch[LP_ROLE_EMBED].meta_axis };
	for (int l = 0; l < p->cfg.n_layers; l++)
		for (size_t k = 0; k < LP_LAYER_ROLES; k++, n++) {
			int role = lp_arch_meta_order[k];
			lp_arch_meta_name(role, l, m[n].name, sizeof m[n].name);
			m[n].idx = find_role(p, role, l);
			m[n].axis = lp_arch[role].meta_axis;
		}
	m[n++] = (meta_tensor){ "", find_role(p, LP_ROLE_NORM, -1), lp_arch[LP_ROLE_NORM].meta_axis };
	size_t head = find_role(p, LP_ROLE_HEAD, -1);
	/* a tied model's head is its embedding */
	m[n++] = (meta_tensor){ "", head != (size_t)-1 ? head : find_role(p, LP_ROLE_EMBED, -1),
		lp_arch[LP_ROLE_HEAD].meta_axis };
	lp_arch_meta_name(LP_ROLE_EMBED, -1, m[0].name, sizeof m[0].name);
	lp_arch_meta_name(LP_ROLE_NORM, -1, m[n - 2].name, sizeof m[n - 2].name);
	lp_arch_meta_name(LP_ROLE_HEAD, -1, m[n - 1].name, sizeof m[n - 1].name);
	*count = n;
	return m;
}

/* multiple_of and ffn_dim_multiplier that give Meta's formula the width I. */
static void meta_ffn(int64_t C, int64_t I, int64_t *multiple_of, double *mult)
{
	for (int64_t m = 256; m >= 1; m /= 2)
		if (lp_meta_ffn_dim(C, m, 0) == I) {
			*multiple_of = m;
			*mult = 0;
			return;
		}
	int64_t h = 2 * (4 * C) / 3;
	for (int64_t m = 1024; m >= 1; m /= 2) {
		double x = (double)I / (double)h;
		for (int k = 0; k < 8; k++, x = nextafter(x, INFINITY))
			if (lp_meta_ffn_dim(C, m, x) == I) {
				char buf[64];
				py_float(x, buf, sizeof buf);
				x = strtod(buf, NULL);
				if (lp_meta_ffn_dim(C, m, x) == I) {
					*multiple_of = m;
					*mult = x;
					return;
				}
			}
	}
	lp_die(NULL, "--to pth: no multiple_of and ffn_dim_multiplier give an MLP width "
			"of %lld for a model dimension of %lld", (long long)I, (long long)C);
}

static char *params_text(const lp_model_config *c)
{
	str s = {0};
	char f[64];
	int64_t mo;
	double mult;
	meta_ffn(c->hidden_size, c->intermediate_size, &mo, &mult);
	sadd(&s, "{\"dim\": %lld, \"n_layers\": %lld, \"n_heads\": %lld, ",
			(long long)c->hidden_size, (long long)c->n_layers, (long long)c->n_heads);
	if (c->n_kv_heads != c->n_heads)
		sadd(&s, "\"n_kv_heads\": %lld, ", (long long)c->n_kv_heads);
	sadd(&s, "\"vocab_size\": %lld, \"multiple_of\": %lld, ", (long long)c->vocab_size,
			(long long)mo);
	if (mult > 0) {
		py_float(mult, f, sizeof f);
		sadd(&s, "\"ffn_dim_multiplier\": %s, ", f);
	}
	py_float(c->rms_norm_eps, f, sizeof f);
	sadd(&s, "\"norm_eps\": %s", f);
	if (c->rope.theta != 10000.0) {
		py_float(c->rope.theta, f, sizeof f);
		sadd(&s, ", \"rope_theta\": %s", f);
	}
	if (c->rope.type == LP_ROPE_LLAMA3)
		sadd(&s, ", \"use_scaled_rope\": true");
	sadd(&s, ", \"max_seq_len\": %lld}\n", (long long)c->max_pos);
	return s.p;
}

/* What params.json cannot say is refused, not silently lost. */
static void check_meta_form(const lp_model_config *c, int shards)
{
	const lp_rope_config *r = &c->rope;
	if (c->head_dim * c->n_heads != c->hidden_size)
		lp_die(NULL, "--to pth: head_dim %lld is not hidden_size / num_attention_heads; "
				"params.json cannot say so", (long long)c->head_dim);
	if (r->type == LP_ROPE_LLAMA3 && !(r->factor == 8 && r->low_freq_factor == 1 &&
				r->high_freq_factor == 4 && r->original_max_pos == 8192))
		lp_die(NULL, "--to pth: llama3 rope scaling other than Meta's use_scaled_rope "
				"(factor 8, low 1, high 4, original context 8192)");
	if (r->type != LP_ROPE_DEFAULT && r->type != LP_ROPE_LLAMA3)
		lp_die(NULL, "--to pth: rope scaling '%s' has no params.json form",
				lp_rope_type_name(r->type));
	if (c->n_heads % shards || c->n_kv_heads % shards)
		lp_die(NULL, "--to pth: %d shards cannot split %lld query and %lld key/value "
				"heads evenly", shards, (long long)c->n_heads, (long long)c->n_kv_heads);
}

typedef struct {
	lp_pth_writer **w;
	int ns;
	int axis;
	uint64_t rows, cols, chunk;     /* chunk: rows or columns per shard (torch.chunk) */
	size_t es;
	uint64_t head_dim;              /* q, k: rows per head to permute; else 0 */
	uint8_t *tmp, *gather;
} pth_sink;

static void pth_rows(void *ctx, uint64_t r0, uint64_t n, const void *data)
{
	pth_sink *s = ctx;
	size_t rb = s->cols * s->es;
	if (s->head_dim) {
		lp_rope_permute_to_meta(s->tmp, data, (int64_t)(n / s->head_dim), (int64_t)n,
				(int64_t)s->cols, s->es);
		data = s->tmp;
	}
	const uint8_t *d = data;
	for (int k = 0; k < s->ns; k++) {
		if (s->axis < 0) {
			lp_pth_writer_write(s->w[k], d, n * rb);
		} else if (s->axis == 0) {
			uint64_t a = k * s->chunk, b = a + s->chunk < s->rows ? a + s->chunk : s->rows;
			uint64_t lo = a > r0 ? a : r0, hi = b < r0 + n ? b : r0 + n;
			if (lo < hi)
				lp_pth_writer_write(s->w[k], d + (lo - r0) * rb, (hi - lo) * rb);
		} else {
			uint64_t a = k * s->chunk, b = a + s->chunk < s->cols ? a + s->chunk : s->cols;
			size_t pb = (b - a) * s->es;
			for (uint64_t i = 0; i < n; i++)
				memcpy(s->gather + i * pb, d + i * rb + a * s->es, pb);
			lp_pth_writer_write(s->w[k], s->gather, n * pb);
		}
	}
}

uint64_t lp_export_pth(const lp_merge_plan *p, const char *out, const lp_export_opts *o)
{
	int dt = o->dtype ? o->dtype : p->base_dtype;
	size_t es = lp_dtype_size(dt), nm;
	int ns = o->shards ? o->shards : lp_meta_shards(&p->cfg);
	check_meta_form(&p->cfg, ns);
	meta_tensor *m = meta_list(p, &nm);
	uint64_t total = 0;
	for (size_t i = 0; i < nm; i++) {
		const lp_merge_tensor *t = &p->t[m[i].idx];
		uint64_t dim = m[i].axis == 0 ? t->rows : m[i].axis == 1 ? t->cols : 0;
		if (m[i].axis >= 0 && (dim + ns - 1) / ns * (ns - 1) >= dim)
			lp_die(NULL, "--to pth: %s has %llu %s, too few for %d shards", m[i].name,
					(unsigned long long)dim, m[i].axis ? "columns" : "rows", ns);
		if (m[i].axis >= 0 && dim % ns && ns > 1)
			lp_warn(NULL, "%s: %llu %s do not split evenly in %d shards; Meta's own "
					"loader needs equal parts", m[i].name, (unsigned long long)dim,
					m[i].axis ? "columns" : "rows", ns);
		total += t->rows * t->cols * es * (m[i].axis < 0 ? ns : 1);
	}
	lp_atomic_dir *d = lp_atomic_dir_create(out, o->force);
	lp_pth_writer **w = lp_malloc(ns * sizeof *w);
	for (int k = 0; k < ns; k++) {
		char name[64];
		snprintf(name, sizeof name, "consolidated.%02d.pth", k);
		char *path = lp_atomic_dir_path(d, name);
		w[k] = lp_pth_writer_new(path);
		free(path);
		for (size_t i = 0; i < nm; i++) {
			const lp_merge_tensor *t = &p->t[m[i].idx];
			uint64_t shape[2] = { t->rows, t->cols };
			int ax = m[i].axis;
			if (ax >= 0) {
				uint64_t chunk = (shape[ax] + ns - 1) / ns, a = k * chunk;
				shape[ax] = a + chunk < shape[ax] ? chunk : shape[ax] - a;
			}
			lp_pth_writer_add(w[k], m[i].name, dt, t->rank, shape);
		}
	}
	for (size_t i = 0; i < nm; i++) {
		for (int k = 0; k < ns; k++)
			lp_pth_writer_next(w[k]);
		const lp_merge_tensor *t = &p->t[m[i].idx];
		int qk = lp_arch[t->role].rope_heads != 0;
		uint64_t dim = m[i].axis == 0 ? t->rows : t->cols;
		progress(o, i, nm, m[i].name);
		pth_sink s = {
			.w = w, .ns = ns, .axis = ns > 1 ? m[i].axis : -1, .rows = t->rows,
			.cols = t->cols, .chunk = (dim + ns - 1) / ns, .es = es,
			.head_dim = qk ? (uint64_t)p->cfg.head_dim : 0,
		};
		uint64_t block = lp_merge_block_rows(t->cols, qk ? p->cfg.head_dim : 1);
		s.tmp = qk ? lp_malloc(block * t->cols * es) : NULL;
		s.gather = m[i].axis == 1 && ns > 1 ? lp_malloc(block * t->cols * es) : NULL;
		lp_merge_produce(p, m[i].idx, dt, qk ? (uint64_t)p->cfg.head_dim : 1, pth_rows, &s);
		free(s.tmp);
		free(s.gather);
	}
	for (int k = 0; k < ns; k++)
		lp_pth_writer_close(w[k]);
	char *params = params_text(&p->cfg);
	put_file(d, "params.json", params, strlen(params));
	free(params);
	if (o->tok && o->tok->model_path)
		copy_file(d, o->tok->model_path, "tokenizer.model");
	lp_atomic_dir_commit(d);
	free(w);
	free(m);
	return total;
}

/* ---- GGUF for llama.cpp ---- */

static void gguf_name(const lp_merge_tensor *t, char *buf, size_t size)
{
	lp_arch_gguf_name(t->role, t->layer, buf, size);
}

/* llama.cpp's token types, from SentencePiece's (user-defined pieces are
 * NORMAL there, as its converter reads them) */
static int32_t gguf_token_type(int spm_type)
{
	switch (spm_type) {
	case LP_SPM_UNKNOWN: return 2;
	case LP_SPM_CONTROL: return 3;
	case LP_SPM_UNUSED: return 5;
	case LP_SPM_BYTE: return 6;
	}
	return 1;
}

/* llama.cpp's does_token_look_special */
static int looks_special(const char *s)
{
	size_t n = strlen(s);
	if (!strcmp(s, "<pad>") || !strcmp(s, "<mask>") || !strcmp(s, "<2mass>") ||
			!strcmp(s, "[@BOS@]"))
		return 1;
	if (n >= 4 && !strncmp(s, "<|", 2) && !strcmp(s + n - 2, "|>"))
		return 1;
	if (n >= 8 && !strncmp(s, "<\xef\xbd\x9c", 4) && !strcmp(s + n - 4, "\xef\xbd\x9c>"))
		return 1;
	return n >= 8 && !strncmp(s, "<unused", 7) && s[n - 1] == '>';
}

/* tokens, scores, types as llama.cpp's _create_vocab_sentencepiece makes them */
static void gguf_vocab(lp_gguf_writer *g, const lp_tokenizer_files *tok, int64_t V)
{
	char **tokens = lp_calloc(V, sizeof *tokens);
	float *scores = lp_malloc(V * sizeof *scores);
	int32_t *types = lp_malloc(V * sizeof *types);
	for (int64_t i = 0; i < V; i++) {
		char pad[32];
		snprintf(pad, sizeof pad, "[PAD%lld]", (long long)i);
		tokens[i] = lp_strdup(pad);
		scores[i] = -10000.0f;
		types[i] = 5;
	}
	for (int64_t i = 0; i < (int64_t)tok->spm.n_pieces && i < V; i++) {
		free(tokens[i]);
		tokens[i] = lp_strdup(tok->spm.pieces[i].str);
		scores[i] = tok->spm.pieces[i].score;
		types[i] = gguf_token_type(tok->spm.pieces[i].type);
	}
	for (size_t k = 0; k < tok->nadded; k++) {
		const lp_added_token *a = &tok->added[k];
		if (a->id >= V)
			continue;
		free(tokens[a->id]);
		if (a->special || looks_special(a->content)) {
			tokens[a->id] = lp_strdup(a->content);
			types[a->id] = 3;
		} else {        /* user-defined spaces pre-normalized, as llama.cpp does */
			str s = {0};
			for (const char *c = a->content; *c; c++)
				if (!strncmp(c, "\xe2\x96\x81", 3)) {
					sadd(&s, " ");
					c += 2;
				} else {
					sadd(&s, "%c", *c);
				}
			tokens[a->id] = s.p ? s.p : lp_strdup("");
			types[a->id] = 4;
		}
		scores[a->id] = -1000.0f;
	}
	lp_gguf_kv_str(g, "tokenizer.ggml.model", "llama");
	lp_gguf_kv_str(g, "tokenizer.ggml.pre", "default");
	lp_gguf_kv_arr_str(g, "tokenizer.ggml.tokens", (const char *const *)tokens, V);
	lp_gguf_kv_arr_f32(g, "tokenizer.ggml.scores", scores, V);
	lp_gguf_kv_arr_i32(g, "tokenizer.ggml.token_type", types, V);
	for (int64_t i = 0; i < V; i++)
		free(tokens[i]);
	free(tokens);
	free(scores);
	free(types);
}

static void gguf_special(lp_gguf_writer *g, const lp_merge_plan *p, const lp_tokenizer_files *tok)
{
	const lp_model_config *c = &p->cfg;
	const lp_spm_model *s = &tok->spm;
	int64_t V = c->vocab_size;
	/* config.json's ids where it has them (llama.cpp reads them there), the
	 * tokenizer's otherwise */
	int64_t bos = c->bos_id >= 0 ? c->bos_id : s->bos_id;
	int64_t eos = c->n_eos == 1 ? c->eos_ids[0] : c->n_eos ? -1 : s->eos_id;
	int64_t pad = c->pad_id >= 0 ? c->pad_id : s->pad_id;
	if (bos >= 0 && bos < V)
		lp_gguf_kv_u32(g, "tokenizer.ggml.bos_token_id", (uint32_t)bos);
	if (eos >= 0 && eos < V)
		lp_gguf_kv_u32(g, "tokenizer.ggml.eos_token_id", (uint32_t)eos);
	if (s->unk_id >= 0 && s->unk_id < V)
		lp_gguf_kv_u32(g, "tokenizer.ggml.unknown_token_id", (uint32_t)s->unk_id);
	if (pad >= 0 && pad < V)
		lp_gguf_kv_u32(g, "tokenizer.ggml.padding_token_id", (uint32_t)pad);
	lp_gguf_kv_bool(g, "tokenizer.ggml.add_bos_token", tok->add_bos != 0);
	lp_gguf_kv_bool(g, "tokenizer.ggml.add_eos_token", tok->add_eos == 1);
	if (tok->add_prefix_space >= 0)
		lp_gguf_kv_bool(g, "tokenizer.ggml.add_space_prefix", tok->add_prefix_space);
}

/* llama.cpp's rope_freqs for llama3 scaling: a factor per frequency */
static float *llama3_factors(const lp_model_config *c)
{
	const lp_rope_config *r = &c->rope;
	int64_t dim = c->head_dim;
	float *f = lp_malloc(dim / 2 * sizeof *f);
	double lo_wl = r->original_max_pos / r->low_freq_factor;
	double hi_wl = r->original_max_pos / r->high_freq_factor;
	for (int64_t i = 0; i < dim / 2; i++) {
		double freq = 1.0 / pow(r->theta, (double)(2 * i) / (double)dim);
		double wl = 2 * M_PI / freq;
		if (wl < hi_wl) {
			f[i] = 1;
		} else if (wl > lo_wl) {
			f[i] = (float)r->factor;
		} else {
			double smooth = (r->original_max_pos / wl - r->low_freq_factor) /
				(r->high_freq_factor - r->low_freq_factor);
			f[i] = (float)(1 / ((1 - smooth) / r->factor + smooth));
		}
	}
	return f;
}

static void gguf_params(lp_gguf_writer *g, const lp_merge_plan *p, int ftype)
{
	const lp_model_config *c = &p->cfg;
	char name[256], *slash;
	snprintf(name, sizeof name, "%s", p->base->dir);
	for (size_t n = strlen(name); n > 1 && name[n - 1] == '/'; n--)
		name[n - 1] = 0;
	if ((slash = strrchr(name, '/')) && slash[1])
		memmove(name, slash + 1, strlen(slash));
	lp_gguf_kv_str(g, "general.architecture", "llama");
	lp_gguf_kv_str(g, "general.type", "model");
	lp_gguf_kv_str(g, "general.name", name);
	lp_gguf_kv_u32(g, "llama.block_count", (uint32_t)c->n_layers);
	lp_gguf_kv_u32(g, "llama.context_length", (uint32_t)c->max_pos);
	lp_gguf_kv_u32(g, "llama.embedding_length", (uint32_t)c->hidden_size);
	lp_gguf_kv_u32(g, "llama.feed_forward_length", (uint32_t)c->intermediate_size);
	lp_gguf_kv_u32(g, "llama.attention.head_count", (uint32_t)c->n_heads);
	lp_gguf_kv_u32(g, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads);
	lp_gguf_kv_f32(g, "llama.rope.freq_base", (float)c->rope.theta);
	lp_gguf_kv_f32(g, "llama.attention.layer_norm_rms_epsilon", (float)c->rms_norm_eps);
	lp_gguf_kv_u32(g, "llama.attention.key_length", (uint32_t)c->head_dim);
	lp_gguf_kv_u32(g, "llama.attention.value_length", (uint32_t)c->head_dim);
	lp_gguf_kv_u32(g, "general.file_type", (uint32_t)ftype);
	lp_gguf_kv_u32(g, "llama.vocab_size", (uint32_t)c->vocab_size);
	lp_gguf_kv_u32(g, "llama.rope.dimension_count", (uint32_t)c->head_dim);
	const lp_rope_config *r = &c->rope;
	if (r->type == LP_ROPE_LINEAR || r->type == LP_ROPE_YARN) {
		lp_gguf_kv_str(g, "llama.rope.scaling.type", r->type == LP_ROPE_LINEAR ?
				"linear" : "yarn");
		lp_gguf_kv_f32(g, "llama.rope.scaling.factor", (float)r->factor);
		if (r->type == LP_ROPE_YARN)
			lp_gguf_kv_u32(g, "llama.rope.scaling.original_context_length",
					(uint32_t)r->original_max_pos);
	} else if (r->type == LP_ROPE_DYNAMIC) {
		lp_warn(NULL, "llama.cpp has no dynamic rope scaling: the GGUF file says "
				"nothing of it");
	}
}

typedef struct {
	lp_gguf_writer *g;
	FILE *f;
	const char *path;
	int idx, type;
	uint64_t cols, head_dim;
	size_t es;                      /* bytes per element as produced */
	uint8_t *tmp, *q;
} gguf_sink;

static void gguf_rows(void *ctx, uint64_t r0, uint64_t n, const void *data)
{
	gguf_sink *s = ctx;
	(void)r0;
	if (s->head_dim) {
		lp_rope_permute_to_meta(s->tmp, data, (int64_t)(n / s->head_dim), (int64_t)n,
				(int64_t)s->cols, s->es);
		data = s->tmp;
	}
	if (s->type == LP_GGML_Q8_0) {
		lp_quantize_q8_0(data, n * s->cols, s->q);
		lp_gguf_write_tensor_part(s->g, s->f, s->path, s->idx, s->q,
				lp_ggml_nbytes(LP_GGML_Q8_0, n * s->cols));
	} else {
		lp_gguf_write_tensor_part(s->g, s->f, s->path, s->idx, data, n * s->cols * s->es);
	}
}

uint64_t lp_export_gguf(const lp_merge_plan *p, const char *out, const lp_export_opts *o)
{
	const lp_tokenizer_files *tok = o->tok;
	if (!tok || !tok->model_path)
		lp_die(p->base->dir, "no tokenizer.model for the GGUF vocabulary (give --tokenizer)");
	int dt = o->dtype ? o->dtype : p->base_dtype;
	int q8 = dt == LP_EXPORT_Q8_0;
	int ftype = q8 ? 7 : dt == LP_F32 ? 0 : dt == LP_F16 ? 1 : 32;
	int wtype = q8 ? LP_GGML_Q8_0 : dt == LP_F32 ? LP_GGML_F32 : dt == LP_F16 ?
		LP_GGML_F16 : LP_GGML_BF16;
	lp_gguf_writer *g = lp_gguf_new();
	gguf_params(g, p, ftype);
	gguf_vocab(g, tok, p->cfg.vocab_size);
	gguf_special(g, p, tok);
	lp_gguf_kv_u32(g, "general.quantization_version", 2);

	int *type = lp_malloc(p->n * sizeof *type);
	float *rope = p->cfg.rope.type == LP_ROPE_LLAMA3 ? llama3_factors(&p->cfg) : NULL;
	if (rope) {
		uint64_t shape[1] = { (uint64_t)p->cfg.head_dim / 2 };
		lp_gguf_add_tensor(g, "rope_freqs.weight", LP_GGML_F32, 1, shape);
	}
	uint64_t total = rope ? p->cfg.head_dim / 2 * 4 : 0;
	for (size_t i = 0; i < p->n; i++) {
		const lp_merge_tensor *t = &p->t[i];
		char name[96];
		gguf_name(t, name, sizeof name);
		int norm = t->rank == 1 || lp_arch[t->role].rank == 1;
		type[i] = norm ? LP_GGML_F32 : wtype;
		if (type[i] == LP_GGML_Q8_0 && t->cols % LP_Q8_0_BLOCK) {
			lp_warn(name, "%llu columns are not a multiple of %d: f16, not q8_0",
					(unsigned long long)t->cols, LP_Q8_0_BLOCK);
			type[i] = LP_GGML_F16;
		}
		uint64_t shape[2] = { t->rows, t->cols };
		lp_gguf_add_tensor(g, name, type[i], t->rank, shape);
		total += lp_ggml_nbytes(type[i], t->rows * t->cols);
	}
	lp_refuse_existing(out, o->force);
	lp_atomic *a = lp_atomic_create(out);
	FILE *f = lp_atomic_file(a);
	lp_gguf_write_header(g, f, out);
	int idx = 0;
	if (rope)
		lp_gguf_write_tensor(g, f, out, idx++, rope);
	for (size_t i = 0; i < p->n; i++, idx++) {
		const lp_merge_tensor *t = &p->t[i];
		int qk = lp_arch[t->role].rope_heads != 0;
		int produce = type[i] == LP_GGML_Q8_0 || type[i] == LP_GGML_F32 ? LP_F32 :
			type[i] == LP_GGML_F16 ? LP_F16 : LP_BF16;
		uint64_t block = lp_merge_block_rows(t->cols, qk ? p->cfg.head_dim : 1);
		progress(o, i, p->n, t->name);
		gguf_sink s = {
			.g = g, .f = f, .path = out, .idx = idx, .type = type[i], .cols = t->cols,
			.head_dim = qk ? (uint64_t)p->cfg.head_dim : 0,
			.es = lp_dtype_size(produce),
		};
		s.tmp = qk ? lp_malloc(block * t->cols * s.es) : NULL;
		s.q = type[i] == LP_GGML_Q8_0 ?
			lp_malloc(lp_ggml_nbytes(LP_GGML_Q8_0, block * t->cols)) : NULL;
		lp_merge_produce(p, i, produce, qk ? (uint64_t)p->cfg.head_dim : 1, gguf_rows, &s);
		free(s.tmp);
		free(s.q);
	}
	lp_atomic_commit(a);
	lp_gguf_free(g);
	free(type);
	free(rope);
	return total;
}
