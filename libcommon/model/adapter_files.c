/* adapter_files.c: PEFT LoRA adapters, read. See adapter_files.h. */
#include "model/adapter_files.h"

#include <errno.h>
#include <jv.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/common.h"
#include "base/half.h"
#include "model/arch.h"

#define PREFIX "base_model.model."

/* ---- adapter_config.json ---- */

static jv get(jv obj, const char *key)
{
	return jv_object_get(jv_copy(obj), jv_string(key));
}

/* kind of obj[key], JV_KIND_NULL when absent */
static int kind_of(jv obj, const char *key)
{
	jv v = get(obj, key);
	int k = jv_get_kind(v);
	jv_free(v);
	return k == JV_KIND_INVALID ? JV_KIND_NULL : k;
}

static int num(jv obj, const char *key, double *out, double def, char *err, size_t errlen)
{
	jv v = get(obj, key);
	int k = jv_get_kind(v), rc = 0;
	*out = def;
	if (k == JV_KIND_NUMBER)
		*out = jv_number_value(v);
	else if (k != JV_KIND_NULL && k != JV_KIND_INVALID)
		rc = lp_fail(err, errlen, "%s is not a number", key);
	jv_free(v);
	return rc;
}

static int flag(jv obj, const char *key, int *out, char *err, size_t errlen)
{
	int k = kind_of(obj, key);
	*out = k == JV_KIND_TRUE;
	if (k != JV_KIND_TRUE && k != JV_KIND_FALSE && k != JV_KIND_NULL)
		return lp_fail(err, errlen, "%s is not true or false", key);
	return 0;
}

/* A list of strings (or null) into *out, *n. */
static int strings(jv obj, const char *key, char ***out, size_t *n, char *err, size_t errlen)
{
	jv v = get(obj, key);
	int rc = 0;
	*out = NULL;
	*n = 0;
	if (jv_get_kind(v) == JV_KIND_ARRAY) {
		*out = lp_calloc(jv_array_length(jv_copy(v)) + 1, sizeof **out);
		jv_array_foreach(v, i, x) {
			if (jv_get_kind(x) == JV_KIND_STRING)
				(*out)[(*n)++] = lp_strdup(jv_string_value(x));
			else
				rc = lp_fail(err, errlen, "%s: element %d is not a string", key, i);
			jv_free(x);
		}
	} else if (jv_get_kind(v) != JV_KIND_NULL && jv_get_kind(v) != JV_KIND_INVALID) {
		rc = lp_fail(err, errlen, "%s is not a list of names", key);
	}
	jv_free(v);
	return rc;
}

static int patterns(jv obj, const char *key, lp_lora_pattern **out, size_t *n, int integer,
		char *err, size_t errlen)
{
	jv v = get(obj, key);
	int rc = 0;
	*out = NULL;
	*n = 0;
	if (jv_get_kind(v) == JV_KIND_OBJECT) {
		*out = lp_calloc(jv_object_length(jv_copy(v)) + 1, sizeof **out);
		jv_object_foreach(v, k, x) {
			double d = jv_get_kind(x) == JV_KIND_NUMBER ? jv_number_value(x) : NAN;
			if (!rc && (!(d > 0) || (integer && d != floor(d)) || d > 1e9))
				rc = lp_fail(err, errlen, "%s: the value for '%s' is not a positive %s",
						key, jv_string_value(k), integer ? "integer" : "number");
			(*out)[*n].key = lp_strdup(jv_string_value(k));
			(*out)[(*n)++].value = d;
			jv_free(k);
			jv_free(x);
		}
	} else if (jv_get_kind(v) != JV_KIND_NULL && jv_get_kind(v) != JV_KIND_INVALID) {
		rc = lp_fail(err, errlen, "%s is not an object", key);
	}
	jv_free(v);
	return rc;
}

static int refuse(jv top, char *err, size_t errlen)
{
	jv v = get(top, "peft_type");
	int rc = 0;
	if (jv_get_kind(v) == JV_KIND_STRING && strcmp(jv_string_value(v), "LORA"))
		rc = lp_fail(err, errlen, "peft_type '%s' is not LORA", jv_string_value(v));
	jv_free(v);
	v = get(top, "bias");
	if (!rc && jv_get_kind(v) == JV_KIND_STRING && strcmp(jv_string_value(v), "none"))
		rc = lp_fail(err, errlen, "bias '%s' is not supported (only \"none\")",
				jv_string_value(v));
	jv_free(v);
	if (!rc && kind_of(top, "use_dora") == JV_KIND_TRUE)
		rc = lp_fail(err, errlen, "use_dora is true: DoRA adapters are not supported");
	return rc;
}

static int parse_lora(jv top, lp_lora_config *c, char *err, size_t errlen)
{
	double r;
	if (refuse(top, err, errlen) || num(top, "r", &r, 0, err, errlen))
		return -1;
	if (!(r >= 1) || r != floor(r) || r > 1 << 20)
		return lp_fail(err, errlen, "r is missing or not a positive integer");
	c->r = (int64_t)r;
	if (num(top, "lora_alpha", &c->alpha, 8, err, errlen) ||
			num(top, "lora_dropout", &c->dropout, 0, err, errlen) ||
			flag(top, "fan_in_fan_out", &c->fan_in_fan_out, err, errlen) ||
			flag(top, "use_rslora", &c->use_rslora, err, errlen) ||
			strings(top, "modules_to_save", &c->modules_to_save, &c->n_save, err, errlen) ||
			patterns(top, "rank_pattern", &c->rank_pattern, &c->n_rank, 1, err, errlen) ||
			patterns(top, "alpha_pattern", &c->alpha_pattern, &c->n_alpha, 0, err, errlen))
		return -1;
	jv t = get(top, "target_modules");
	if (jv_get_kind(t) == JV_KIND_STRING)
		c->target_regex = lp_strdup(jv_string_value(t));
	jv_free(t);
	if (!c->target_regex && strings(top, "target_modules", &c->target_modules,
				&c->n_target, err, errlen))
		return -1;
	jv b = get(top, "base_model_name_or_path");
	if (jv_get_kind(b) == JV_KIND_STRING)
		c->base_model = lp_strdup(jv_string_value(b));
	jv_free(b);
	return 0;
}

int lp_lora_config_parse(const char *json, size_t n, lp_lora_config *c, char *err, size_t errlen)
{
	memset(c, 0, sizeof *c);
	jv top = jv_parse_sized(json, (int)(n < (64u << 20) ? n : 0));
	int rc;
	if (!jv_is_valid(top)) {
		jv msg = jv_invalid_get_msg(top);
		rc = lp_fail(err, errlen, "not valid JSON: %s",
				jv_get_kind(msg) == JV_KIND_STRING ? jv_string_value(msg) : "empty");
		jv_free(msg);
	} else if (jv_get_kind(top) != JV_KIND_OBJECT) {
		jv_free(top);
		rc = lp_fail(err, errlen, "not a JSON object");
	} else {
		rc = parse_lora(top, c, err, errlen);
		jv_free(top);
	}
	if (rc)
		lp_lora_config_free(c);
	return rc;
}

void lp_lora_config_free(lp_lora_config *c)
{
	for (size_t i = 0; i < c->n_target; i++)
		free(c->target_modules[i]);
	for (size_t i = 0; i < c->n_save; i++)
		free(c->modules_to_save[i]);
	for (size_t i = 0; i < c->n_rank; i++)
		free(c->rank_pattern[i].key);
	for (size_t i = 0; i < c->n_alpha; i++)
		free(c->alpha_pattern[i].key);
	free(c->target_modules);
	free(c->modules_to_save);
	free(c->rank_pattern);
	free(c->alpha_pattern);
	free(c->target_regex);
	free(c->base_model);
	memset(c, 0, sizeof *c);
}

/* ---- per-module rank and alpha ---- */

/* Does module match "(.*\.)?(key)$", PEFT's pattern rule? 1, 0, or -1 for
 * a key that is no valid expression. Python's \d \w \s become classes;
 * back-references (slow to match) and keys over 256 bytes are refused. */
static int pattern_match(const char *key, const char *module)
{
	size_t n = strlen(key);
	if (n > 256)
		return -1;
	for (size_t i = 0; i + 1 < n; i++)
		if (key[i] == '\\' && key[i + 1] >= '0' && key[i + 1] <= '9')
			return -1;
	char *re = lp_malloc(16 * n + 32), *o = re;
	o += sprintf(o, "^(.*\\.)?(");
	for (size_t i = 0; i < n; i++) {
		if (key[i] == '\\' && i + 1 < n && strchr("dws", key[i + 1])) {
			o += sprintf(o, "%s", key[i + 1] == 'd' ? "[0-9]" :
					key[i + 1] == 'w' ? "[A-Za-z0-9_]" : "[[:space:]]");
			i++;
		} else {
			*o++ = key[i];
		}
	}
	sprintf(o, ")$");
	regex_t rx;
	int rc = regcomp(&rx, re, REG_EXTENDED | REG_NOSUB);
	free(re);
	if (rc)
		return -1;
	rc = regexec(&rx, module, 0, NULL, 0) == 0;
	regfree(&rx);
	return rc;
}

static int pattern_value(const lp_lora_pattern *p, size_t n, const char *what,
		const char *module, double *value, char *err, size_t errlen)
{
	const char *by = NULL;
	for (size_t i = 0; i < n; i++) {
		int m = pattern_match(p[i].key, module);
		if (m < 0)
			return lp_fail(err, errlen, "%s: '%s' is not a valid regular expression "
					"(back-references and keys over 256 bytes are refused)",
					what, p[i].key);
		if (!m)
			continue;
		if (by && p[i].value != *value)
			return lp_fail(err, errlen, "%s: patterns '%s' and '%s' both match %s with "
					"different values", what, by, p[i].key, module);
		by = p[i].key;
		*value = p[i].value;
	}
	return 0;
}

int lp_lora_module_params(const lp_lora_config *c, const char *module, int64_t *r,
		double *alpha, double *scale, char *err, size_t errlen)
{
	double rr = (double)c->r, a = c->alpha;
	if (pattern_value(c->rank_pattern, c->n_rank, "rank_pattern", module, &rr, err, errlen) ||
			pattern_value(c->alpha_pattern, c->n_alpha, "alpha_pattern", module, &a,
				err, errlen))
		return -1;
	*r = (int64_t)rr;
	*alpha = a;
	*scale = c->use_rslora ? a / sqrt(rr) : a / rr;
	return 0;
}

/* ---- the tensors ---- */

static int ends_with(const char *s, size_t n, const char *suffix)
{
	size_t k = strlen(suffix);
	return n >= k && !memcmp(s + n - k, suffix, k);
}

static lp_lora_pair *pair_for(lp_adapter *a, const char *module, size_t len, size_t *cap)
{
	for (size_t i = 0; i < a->npairs; i++)
		if (strlen(a->pairs[i].module) == len && !memcmp(a->pairs[i].module, module, len))
			return &a->pairs[i];
	lp_grow((void **)&a->pairs, cap, a->npairs + 1, sizeof *a->pairs);
	lp_lora_pair *p = &a->pairs[a->npairs++];
	memset(p, 0, sizeof *p);
	p->module = lp_malloc(len + 1);
	memcpy(p->module, module, len);
	p->module[len] = 0;
	return p;
}

/* Sort each PEFT tensor into a pair or a full module. */
static int classify(lp_adapter *a, char *err, size_t errlen)
{
	size_t pcap = 0, fcap = 0, pl = strlen(PREFIX);
	for (size_t i = 0; i < a->files->n; i++) {
		const lp_mf_tensor *t = &a->files->t[i];
		if (strncmp(t->name, PREFIX, pl))
			return lp_fail(err, errlen, "tensor '%s' does not start with '%s' as PEFT "
					"names them", t->name, PREFIX);
		const char *name = t->name + pl;
		size_t n = strlen(name);
		if (strstr(name, "lora_embedding_") || strstr(name, "lora_magnitude_vector"))
			return lp_fail(err, errlen, "tensor '%s': LoRA on embeddings and DoRA are not "
					"supported", t->name);
		if (ends_with(name, n, ".lora_A.weight") || ends_with(name, n, ".lora_B.weight")) {
			size_t len = n - strlen(".lora_A.weight");
			lp_lora_pair *p = pair_for(a, name, len, &pcap);
			const lp_mf_tensor **slot = name[len + 6] == 'A' ? &p->A : &p->B;
			*slot = t;
			continue;
		}
		if (!ends_with(name, n, ".weight") || strstr(name, "lora_"))
			return lp_fail(err, errlen, "tensor '%s' is neither a LoRA pair nor a module to "
					"save", t->name);
		/* a full module: drop ".modules_to_save[.default]" if an old PEFT left it */
		char *base = lp_strdup(name), *s = strstr(base, ".modules_to_save.");
		if (s) {
			const char *rest = s + strlen(".modules_to_save");
			if (!strncmp(rest, ".default.", 9))
				rest += strlen(".default");
			memmove(s, rest, strlen(rest) + 1);
		}
		lp_grow((void **)&a->full, &fcap, a->nfull + 1, sizeof *a->full);
		a->full[a->nfull++] = (lp_lora_full){base, t};
	}
	return 0;
}

static int by_module(const void *x, const void *y)
{
	return strcmp(((const lp_lora_pair *)x)->module, ((const lp_lora_pair *)y)->module);
}

static int by_base(const void *x, const void *y)
{
	return strcmp(((const lp_lora_full *)x)->base_name, ((const lp_lora_full *)y)->base_name);
}

static int check_pair(lp_adapter *a, lp_lora_pair *p, char *err, size_t errlen)
{
	if (!p->A || !p->B)
		return lp_fail(err, errlen, "%s has a lora_%s but no lora_%s", p->module,
				p->A ? "A" : "B", p->A ? "B" : "A");
	if (lp_lora_module_params(&a->cfg, p->module, &p->r, &p->alpha, &p->scale, err, errlen))
		return -1;
	if (p->A->rank != 2 || p->B->rank != 2)
		return lp_fail(err, errlen, "%s: lora_A and lora_B must be matrices", p->module);
	if (p->A->shape[0] != (uint64_t)p->r || p->B->shape[1] != (uint64_t)p->r)
		return lp_fail(err, errlen, "%s: lora_A is (%llu, %llu) and lora_B (%llu, %llu), but "
				"adapter_config.json gives it rank %lld", p->module,
				(unsigned long long)p->A->shape[0], (unsigned long long)p->A->shape[1],
				(unsigned long long)p->B->shape[0], (unsigned long long)p->B->shape[1],
				(long long)p->r);
	for (const lp_mf_tensor *t = p->A; t; t = t == p->A ? p->B : NULL)
		if (t->dtype != LP_F32 && t->dtype != LP_F16 && t->dtype != LP_BF16)
			return lp_fail(err, errlen, "%s: dtype %s is not one of f32, f16, bf16", t->name,
					lp_dtype_name(t->dtype));
	size_t len = strlen(p->module) + 8;
	p->base_name = lp_malloc(len);
	snprintf(p->base_name, len, "%s.weight", p->module);
	const char *k = strrchr(p->module, '.');
	p->kind = k ? k + 1 : p->module;
	const char *rest;
	p->layer = (int)lp_arch_hf_layer(p->module, &rest);
	return 0;
}

static int read_config_file(lp_adapter *a, char *err, size_t errlen)
{
	size_t n = strlen(a->dir) + 32, len;
	char *path = lp_malloc(n), e[512];
	snprintf(path, n, "%s/adapter_config.json", a->dir);
	FILE *f = fopen(path, "rb");
	if (!f) {
		free(path);
		return lp_fail(err, errlen, "adapter_config.json: %s", strerror(errno));
	}
	fclose(f);
	char *text = lp_read_file(path, &len);
	free(path);
	int rc = lp_lora_config_parse(text, len, &a->cfg, e, sizeof e);
	free(text);
	return rc ? lp_fail(err, errlen, "adapter_config.json: %s", e) : 0;
}

/* Every value of every floating tensor is finite: an adapter with a NaN
 * or an infinity would poison whatever it is applied to. */
static int check_finite(const lp_model_files *f, char *err, size_t errlen)
{
	for (size_t i = 0; i < f->n; i++) {
		const lp_mf_tensor *t = &f->t[i];
		const unsigned char *p = lp_mf_data(t);
		for (uint64_t j = 0; j < t->numel; j++) {
			float v;
			uint16_t h;
			if (t->dtype == LP_F32)
				memcpy(&v, p + 4 * j, 4);
			else if (t->dtype == LP_F16 || t->dtype == LP_BF16) {
				memcpy(&h, p + 2 * j, 2);
				v = t->dtype == LP_F16 ? lp_f16_to_f32(h) : lp_bf16_to_f32(h);
			} else if (t->dtype == LP_F64) {
				double d;
				memcpy(&d, p + 8 * j, 8);
				v = isfinite(d) ? 0.0f : NAN;
			} else
				break;
			if (!isfinite(v))
				return lp_fail(err, errlen, "%s[%llu] = %g: the adapter's weights are not "
						"finite", t->name, (unsigned long long)j, v);
		}
	}
	return 0;
}

static int open_adapter(lp_adapter *a, char *err, size_t errlen)
{
	struct stat st;
	if (stat(a->dir, &st) != 0)
		return lp_fail(err, errlen, "%s", strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return lp_fail(err, errlen, "not a directory (an adapter is a directory)");
	if (read_config_file(a, err, errlen))
		return -1;
	static const char *const names[] = {"adapter_model.safetensors", "adapter_model.bin"};
	char *path = NULL;
	for (int i = 0; i < 2 && !path; i++) {
		size_t n = strlen(a->dir) + strlen(names[i]) + 2;
		path = lp_malloc(n);
		snprintf(path, n, "%s/%s", a->dir, names[i]);
		if (stat(path, &st) != 0) {
			free(path);
			path = NULL;
		}
	}
	if (!path)
		return lp_fail(err, errlen, "no adapter_model.safetensors or adapter_model.bin");
	a->files = lp_mf_new(a->dir);
	int rc = lp_mf_add_file(a->files, path, err, errlen);
	free(path);
	if (rc || classify(a, err, errlen))
		return -1;
	if (a->npairs) /* qsort wants a non-NULL base even for no items */
		qsort(a->pairs, a->npairs, sizeof *a->pairs, by_module);
	if (a->nfull)
		qsort(a->full, a->nfull, sizeof *a->full, by_base);
	for (size_t i = 0; i < a->npairs; i++)
		if (check_pair(a, &a->pairs[i], err, errlen))
			return -1;
	if (!a->npairs && !a->nfull)
		return lp_fail(err, errlen, "the adapter holds no tensors");
	return check_finite(a->files, err, errlen);
}

lp_adapter *lp_adapter_open(const char *dir, char *err, size_t errlen)
{
	lp_adapter *a = lp_calloc(1, sizeof *a);
	a->dir = lp_strdup(dir);
	if (open_adapter(a, err, errlen)) {
		lp_adapter_close(a);
		return NULL;
	}
	return a;
}

lp_adapter *lp_adapter_load(const char *dir)
{
	char err[1024];
	lp_adapter *a = lp_adapter_open(dir, err, sizeof err);
	if (!a)
		lp_die(dir, "%s", err);
	return a;
}

void lp_adapter_close(lp_adapter *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->npairs; i++) {
		free(a->pairs[i].module);
		free(a->pairs[i].base_name);
	}
	for (size_t i = 0; i < a->nfull; i++)
		free(a->full[i].base_name);
	free(a->pairs);
	free(a->full);
	lp_model_files_close(a->files);
	lp_lora_config_free(&a->cfg);
	free(a->dir);
	free(a);
}

int lp_adapter_check(const lp_adapter *a, const lp_model_files *base, char *err, size_t errlen)
{
	for (size_t i = 0; i < a->npairs; i++) {
		const lp_lora_pair *p = &a->pairs[i];
		const lp_mf_tensor *w = lp_mf_find(base, p->base_name);
		if (!w)
			return lp_fail(err, errlen, "%s: the base model has no %s", p->module,
					p->base_name);
		uint64_t out = a->cfg.fan_in_fan_out ? w->shape[1] : w->shape[0];
		uint64_t in = a->cfg.fan_in_fan_out ? w->shape[0] : w->shape[1];
		if (w->rank != 2 || p->A->shape[1] != in || p->B->shape[0] != out)
			return lp_fail(err, errlen, "%s: lora_B @ lora_A is (%llu, %llu), the base "
					"weight %s is (%llu, %llu)%s", p->module,
					(unsigned long long)p->B->shape[0],
					(unsigned long long)p->A->shape[1], p->base_name,
					(unsigned long long)w->shape[0],
					(unsigned long long)(w->rank == 2 ? w->shape[1] : 0),
					a->cfg.fan_in_fan_out ? " (fan_in_fan_out)" : "");
	}
	for (size_t i = 0; i < a->nfull; i++) {
		const lp_lora_full *f = &a->full[i];
		const lp_mf_tensor *w = lp_mf_find(base, f->base_name);
		if (!w && !strcmp(f->base_name, lp_arch[LP_ROLE_HEAD].hf) && base->has_config &&
				base->cfg.tie_word_embeddings)
			w = lp_mf_find(base, lp_arch[LP_ROLE_EMBED].hf);
		if (!w)
			return lp_fail(err, errlen, "%s: the base model has no %s", f->t->name,
					f->base_name);
		if (w->rank != f->t->rank || (w->rank == 2 && w->shape[1] != f->t->shape[1]))
			return lp_fail(err, errlen, "%s: shape (%llu, %llu) does not fit the base "
					"model's %s (%llu, %llu)", f->t->name,
					(unsigned long long)f->t->shape[0],
					(unsigned long long)f->t->shape[1], w->name,
					(unsigned long long)w->shape[0], (unsigned long long)w->shape[1]);
	}
	return 0;
}
