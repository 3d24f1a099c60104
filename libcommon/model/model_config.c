/* model_config.c: config.json / params.json, and rotary frequencies.
 * See model_config.h for the fields and their defaults. */
#include "model/model_config.h"

#include <jv.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "base/dtype.h"

/* ---- typed field access: 1 found, 0 absent or null, -1 wrong type ---- */

static jv field(jv obj, const char *key)
{
	if (jv_get_kind(obj) != JV_KIND_OBJECT)
		return jv_null();
	return jv_object_get(jv_copy(obj), jv_string(key));
}

static int get_num(jv obj, const char *key, double *out, char *err, size_t errlen)
{
	jv v = field(obj, key);
	int kind = jv_get_kind(v);
	int rc = kind == JV_KIND_NUMBER ? 1 : kind == JV_KIND_NULL || kind == JV_KIND_INVALID ? 0 : -1;
	if (rc == 1)
		*out = jv_number_value(v);
	jv_free(v);
	if (rc < 0)
		lp_fail(err, errlen, "%s is not a number", key);
	return rc;
}

/* An integer in [lo, hi]. */
static int get_int(jv obj, const char *key, int64_t *out, int64_t lo, int64_t hi,
		char *err, size_t errlen)
{
	double d;
	int rc = get_num(obj, key, &d, err, errlen);
	if (rc <= 0)
		return rc;
	if (d != floor(d) || d < (double)lo || d > (double)hi)
		return lp_fail(err, errlen, "%s is %g; expected an integer from %lld to %lld", key,
				d, (long long)lo, (long long)hi);
	*out = (int64_t)d;
	return 1;
}

static int need_int(jv obj, const char *key, int64_t *out, int64_t lo, int64_t hi,
		char *err, size_t errlen)
{
	int rc = get_int(obj, key, out, lo, hi, err, errlen);
	if (rc == 0)
		return lp_fail(err, errlen, "%s is missing", key);
	return rc < 0 ? -1 : 0;
}

static int get_bool(jv obj, const char *key, int *out, char *err, size_t errlen)
{
	jv v = field(obj, key);
	int kind = jv_get_kind(v), rc = 0;
	jv_free(v);
	if (kind == JV_KIND_TRUE || kind == JV_KIND_FALSE)
		*out = kind == JV_KIND_TRUE, rc = 1;
	else if (kind != JV_KIND_NULL && kind != JV_KIND_INVALID)
		rc = lp_fail(err, errlen, "%s is not true or false", key);
	return rc;
}

/* The string value (copied into buf), 1; 0 absent; -1 not a string. */
static int get_str(jv obj, const char *key, char *buf, size_t size, char *err, size_t errlen)
{
	jv v = field(obj, key);
	int kind = jv_get_kind(v), rc = 0;
	if (kind == JV_KIND_STRING)
		snprintf(buf, size, "%s", jv_string_value(v)), rc = 1;
	else if (kind != JV_KIND_NULL && kind != JV_KIND_INVALID)
		rc = lp_fail(err, errlen, "%s is not a string", key);
	jv_free(v);
	return rc;
}

static jv parse_json(const char *json, size_t n, const char *what, char *err, size_t errlen)
{
	if (n > 64u << 20) {
		lp_fail(err, errlen, "%s is larger than 64 MB", what);
		return jv_invalid();
	}
	jv v = jv_parse_sized(json, (int)n);
	if (!jv_is_valid(v)) {
		jv msg = jv_invalid_get_msg(v);
		lp_fail(err, errlen, "%s is not valid JSON: %s", what,
				jv_get_kind(msg) == JV_KIND_STRING ? jv_string_value(msg) : "?");
		jv_free(msg);
		return jv_invalid();
	}
	if (jv_get_kind(v) != JV_KIND_OBJECT) {
		jv_free(v);
		lp_fail(err, errlen, "%s is not a JSON object", what);
		return jv_invalid();
	}
	return v;
}

/* ---- shared checks ---- */

static int check_shape(lp_model_config *c, char *err, size_t errlen)
{
	if (c->n_kv_heads <= 0 || c->n_heads % c->n_kv_heads)
		return lp_fail(err, errlen, "%lld attention heads cannot be shared by %lld key/value "
				"heads", (long long)c->n_heads, (long long)c->n_kv_heads);
	if (c->head_dim <= 0 || c->head_dim % 2)
		return lp_fail(err, errlen, "head dimension %lld is not a positive even number",
				(long long)c->head_dim);
	if (!(c->rms_norm_eps > 0))
		return lp_fail(err, errlen, "the norm epsilon %g is not positive", c->rms_norm_eps);
	return 0;
}

static int dtype_of(const char *s)
{
	static const struct { const char *name; int dtype; } names[] = {
		{"float32", LP_F32}, {"float", LP_F32}, {"float16", LP_F16}, {"half", LP_F16},
		{"bfloat16", LP_BF16}, {"float64", LP_F64},
	};
	if (!strncmp(s, "torch.", 6))
		s += 6;
	for (size_t i = 0; i < sizeof names / sizeof *names; i++)
		if (!strcmp(names[i].name, s))
			return names[i].dtype;
	return 0;
}

/* ---- rotary parameters ---- */

const char *lp_rope_type_name(int type)
{
	static const char *const names[] = {"default", "linear", "dynamic", "llama3", "yarn"};
	return type >= 0 && type <= LP_ROPE_YARN ? names[type] : "?";
}

#define TRY(x) do { if ((x) < 0) return -1; } while (0)

static int need_num(jv obj, const char *what, const char *key, double *out, char *err,
		size_t errlen)
{
	int rc = get_num(obj, key, out, err, errlen);
	if (rc == 0)
		return lp_fail(err, errlen, "%s: %s is missing", what, key);
	return rc < 0 ? -1 : 0;
}

/* rope_parameters (or rope_scaling) object p, top-level object top. */
static int parse_rope(jv top, lp_model_config *c, char *err, size_t errlen)
{
	lp_rope_config *r = &c->rope;
	const char *what = "rope_parameters";
	jv p = field(top, "rope_parameters");
	if (jv_get_kind(p) != JV_KIND_OBJECT) {
		jv_free(p);
		p = field(top, "rope_scaling");
		what = "rope_scaling";
	}
	int rc = -1;
	char type[32] = "default";
	double d;
	memset(r, 0, sizeof *r);
	r->theta = 10000;
	r->factor = 1;
	r->truncate = 1;
	r->original_max_pos = c->max_pos;
	if (jv_get_kind(p) != JV_KIND_OBJECT && jv_get_kind(p) != JV_KIND_NULL &&
			jv_get_kind(p) != JV_KIND_INVALID) {
		lp_fail(err, errlen, "%s is not an object", what);
		goto out;
	}
	if (get_num(top, "rope_theta", &r->theta, err, errlen) < 0 ||
			get_num(p, "rope_theta", &r->theta, err, errlen) < 0 ||
			get_str(p, "type", type, sizeof type, err, errlen) < 0 ||
			get_str(p, "rope_type", type, sizeof type, err, errlen) < 0)
		goto out;
	if (!(r->theta > 1)) {
		lp_fail(err, errlen, "rope_theta %g is not above 1", r->theta);
		goto out;
	}
	d = 1;
	if (get_num(top, "partial_rotary_factor", &d, err, errlen) < 0 ||
			get_num(p, "partial_rotary_factor", &d, err, errlen) < 0)
		goto out;
	if (d != 1) {
		lp_fail(err, errlen, "partial_rotary_factor %g is not supported (only 1)", d);
		goto out;
	}
	int64_t omax;
	if (get_int(p, "original_max_position_embeddings", &r->original_max_pos, 1,
				INT32_MAX, err, errlen) < 0 ||
			(rc = get_int(top, "original_max_position_embeddings", &omax, 1,
				INT32_MAX, err, errlen)) < 0)
		goto out;
	if (rc > 0)     /* transformers gives the top-level one priority */
		r->original_max_pos = omax;
	rc = -1;
	for (r->type = 0; r->type <= LP_ROPE_YARN; r->type++)
		if (!strcmp(type, lp_rope_type_name(r->type)))
			break;
	switch (r->type) {
	case LP_ROPE_DEFAULT:
		break;
	case LP_ROPE_LINEAR:
	case LP_ROPE_DYNAMIC:
		if (need_num(p, what, "factor", &r->factor, err, errlen))
			goto out;
		break;
	case LP_ROPE_LLAMA3:
		if (need_num(p, what, "factor", &r->factor, err, errlen) ||
				need_num(p, what, "low_freq_factor", &r->low_freq_factor, err, errlen) ||
				need_num(p, what, "high_freq_factor", &r->high_freq_factor, err, errlen))
			goto out;
		if (r->high_freq_factor <= r->low_freq_factor) {
			lp_fail(err, errlen, "%s: high_freq_factor %g is not above low_freq_factor %g",
					what, r->high_freq_factor, r->low_freq_factor);
			goto out;
		}
		break;
	case LP_ROPE_YARN: {
		int f = get_num(p, "factor", &r->factor, err, errlen);
		if (f < 0 || get_num(p, "attention_factor", &r->attention_factor, err, errlen) < 0 ||
				get_num(p, "mscale", &r->mscale, err, errlen) < 0 ||
				get_num(p, "mscale_all_dim", &r->mscale_all_dim, err, errlen) < 0 ||
				get_num(p, "beta_fast", &r->beta_fast, err, errlen) < 0 ||
				get_num(p, "beta_slow", &r->beta_slow, err, errlen) < 0 ||
				get_bool(p, "truncate", &r->truncate, err, errlen) < 0)
			goto out;
		if (f == 0)
			r->factor = (double)c->max_pos / r->original_max_pos;
		if (!r->beta_fast)      /* transformers: `or 32`, `or 1` */
			r->beta_fast = 32;
		if (!r->beta_slow)
			r->beta_slow = 1;
		break;
	}
	default:
		lp_fail(err, errlen, "%s: rope type '%s' is not supported (default, linear, dynamic, "
				"llama3 and yarn are)", what, type);
		goto out;
	}
	if (!(r->factor > 0)) {
		lp_fail(err, errlen, "%s: factor %g is not positive", what, r->factor);
		goto out;
	}
	rc = 0;
out:
	jv_free(p);
	return rc;
}

/* ---- config.json ---- */

static int parse_token_ids(jv top, lp_model_config *c, char *err, size_t errlen)
{
	c->bos_id = 1;
	c->pad_id = -1;
	c->eos_ids[0] = 2;
	c->n_eos = 1;
	jv b = field(top, "bos_token_id");
	if (jv_get_kind(b) == JV_KIND_NULL)
		c->bos_id = -1;
	jv_free(b);
	TRY(get_int(top, "bos_token_id", &c->bos_id, 0, INT32_MAX, err, errlen));
	TRY(get_int(top, "pad_token_id", &c->pad_id, 0, INT32_MAX, err, errlen));
	jv e = field(top, "eos_token_id");
	int rc = 0;
	switch (jv_get_kind(e)) {
	case JV_KIND_NULL:
		c->n_eos = 0;
		break;
	case JV_KIND_ARRAY: {
		jv obj = jv_object();
		c->n_eos = 0;
		jv_array_foreach(e, i, x) {
			obj = jv_object_set(obj, jv_string("eos_token_id"), x);
			if (i >= LP_MAX_EOS)
				rc = lp_fail(err, errlen, "eos_token_id: more than %d ids", LP_MAX_EOS);
			else if (get_int(obj, "eos_token_id", &c->eos_ids[c->n_eos++], 0,
						INT32_MAX, err, errlen) <= 0)
				rc = lp_fail(err, errlen, "eos_token_id: element %d is not a token id", i);
			if (rc)
				break;
		}
		jv_free(obj);
		break;
	}
	default:
		if (get_int(top, "eos_token_id", &c->eos_ids[0], 0, INT32_MAX, err, errlen) < 0)
			rc = -1;
	}
	jv_free(e);
	return rc;
}

static int refuse_features(jv top, char *err, size_t errlen)
{
	char s[64];
	int flag = 0;
	int rc = get_str(top, "model_type", s, sizeof s, err, errlen);
	TRY(rc);
	if (rc > 0 && strcmp(s, "llama"))
		return lp_fail(err, errlen, "model_type '%s' is not a LLaMA model", s);
	rc = get_str(top, "hidden_act", s, sizeof s, err, errlen);
	TRY(rc);
	if (rc > 0 && strcmp(s, "silu"))
		return lp_fail(err, errlen, "hidden_act '%s' is not supported (only silu)", s);
	TRY(get_bool(top, "attention_bias", &flag, err, errlen));
	if (flag)
		return lp_fail(err, errlen, "attention_bias is true: biases are not supported");
	TRY(get_bool(top, "mlp_bias", &flag, err, errlen));
	if (flag)
		return lp_fail(err, errlen, "mlp_bias is true: biases are not supported");
	return 0;
}

static int parse_hf(jv top, lp_model_config *c, char *err, size_t errlen)
{
	char s[64];
	TRY(refuse_features(top, err, errlen));
	TRY(need_int(top, "hidden_size", &c->hidden_size, 1, 1 << 20, err, errlen));
	TRY(need_int(top, "num_attention_heads", &c->n_heads, 1, 1 << 16, err, errlen));
	TRY(need_int(top, "num_hidden_layers", &c->n_layers, 1, 1 << 16, err, errlen));
	TRY(need_int(top, "intermediate_size", &c->intermediate_size, 1, 1 << 22, err, errlen));
	TRY(need_int(top, "vocab_size", &c->vocab_size, 1, INT32_MAX, err, errlen));
	c->n_kv_heads = c->n_heads;
	TRY(get_int(top, "num_key_value_heads", &c->n_kv_heads, 1, 1 << 16, err, errlen));
	c->head_dim = c->hidden_size / c->n_heads;
	TRY(get_int(top, "head_dim", &c->head_dim, 1, 1 << 16, err, errlen));
	c->rms_norm_eps = 1e-6;
	TRY(get_num(top, "rms_norm_eps", &c->rms_norm_eps, err, errlen));
	c->max_pos = 2048;
	TRY(get_int(top, "max_position_embeddings", &c->max_pos, 1, INT32_MAX, err, errlen));
	TRY(get_bool(top, "tie_word_embeddings", &c->tie_word_embeddings, err, errlen));
	TRY(parse_token_ids(top, c, err, errlen));
	int rc = get_str(top, "dtype", s, sizeof s, err, errlen);
	if (rc == 0)
		rc = get_str(top, "torch_dtype", s, sizeof s, err, errlen);
	TRY(rc);
	if (rc > 0 && !(c->dtype = dtype_of(s)))
		return lp_fail(err, errlen, "dtype '%s' is not a floating point type we read "
				"(float32, float16, bfloat16)", s);
	TRY(parse_rope(top, c, err, errlen));
	return check_shape(c, err, errlen);
}

int lp_config_parse_hf(const char *json, size_t n, lp_model_config *c, char *err, size_t errlen)
{
	memset(c, 0, sizeof *c);
	jv top = parse_json(json, n, "config", err, errlen);
	if (!jv_is_valid(top))
		return -1;
	int rc = parse_hf(top, c, err, errlen);
	jv_free(top);
	return rc;
}

/* ---- params.json ---- */

int64_t lp_meta_ffn_dim(int64_t dim, int64_t multiple_of, double ffn_dim_multiplier)
{
	int64_t h = (int64_t)((double)(2 * 4 * dim) / 3);
	if (ffn_dim_multiplier > 0)
		h = (int64_t)(ffn_dim_multiplier * (double)h);
	return multiple_of * ((h + multiple_of - 1) / multiple_of);
}

static int parse_meta(jv top, lp_model_config *c, char *err, size_t errlen)
{
	int64_t multiple_of = 256;
	double mult = 0;
	int scaled = 0;
	TRY(need_int(top, "dim", &c->hidden_size, 1, 1 << 20, err, errlen));
	TRY(need_int(top, "n_layers", &c->n_layers, 1, 1 << 16, err, errlen));
	TRY(need_int(top, "n_heads", &c->n_heads, 1, 1 << 16, err, errlen));
	c->n_kv_heads = c->n_heads;
	TRY(get_int(top, "n_kv_heads", &c->n_kv_heads, 1, 1 << 16, err, errlen));
	c->vocab_size = -1;
	TRY(get_int(top, "vocab_size", &c->vocab_size, -1, INT32_MAX, err, errlen));
	if (c->vocab_size == 0)
		return lp_fail(err, errlen, "vocab_size is 0");
	TRY(get_int(top, "multiple_of", &multiple_of, 1, 1 << 20, err, errlen));
	TRY(get_num(top, "ffn_dim_multiplier", &mult, err, errlen));
	c->rms_norm_eps = 1e-5;
	TRY(get_num(top, "norm_eps", &c->rms_norm_eps, err, errlen));
	c->max_pos = 2048;
	TRY(get_int(top, "max_seq_len", &c->max_pos, 1, INT32_MAX, err, errlen));
	c->head_dim = c->hidden_size / c->n_heads;
	if (c->head_dim * c->n_heads != c->hidden_size)
		return lp_fail(err, errlen, "dim %lld is not a multiple of n_heads %lld",
				(long long)c->hidden_size, (long long)c->n_heads);
	c->intermediate_size = lp_meta_ffn_dim(c->hidden_size, multiple_of, mult);
	c->bos_id = c->pad_id = -1;
	c->from_meta = 1;
	lp_rope_config *r = &c->rope;
	r->type = LP_ROPE_DEFAULT;
	r->theta = 10000;
	r->factor = 1;
	TRY(get_num(top, "rope_theta", &r->theta, err, errlen));
	if (!(r->theta > 1))
		return lp_fail(err, errlen, "rope_theta %g is not above 1", r->theta);
	TRY(get_bool(top, "use_scaled_rope", &scaled, err, errlen));
	if (scaled) {   /* Meta's apply_scaling, which HF calls llama3 */
		r->type = LP_ROPE_LLAMA3;
		r->factor = 8;
		r->low_freq_factor = 1;
		r->high_freq_factor = 4;
		r->original_max_pos = 8192;
		TRY(get_num(top, "rope_scaling_factor", &r->factor, err, errlen));
		TRY(get_num(top, "high_freq_factor", &r->high_freq_factor, err, errlen));
		if (!(r->factor > 0) || r->high_freq_factor <= r->low_freq_factor)
			return lp_fail(err, errlen, "bad rope scaling (factor %g, high_freq_factor %g)",
					r->factor, r->high_freq_factor);
	}
	return check_shape(c, err, errlen);
}

int lp_config_parse_meta(const char *json, size_t n, lp_model_config *c, char *err, size_t errlen)
{
	memset(c, 0, sizeof *c);
	jv top = parse_json(json, n, "params", err, errlen);
	if (!jv_is_valid(top))
		return -1;
	int rc = parse_meta(top, c, err, errlen);
	jv_free(top);
	return rc;
}

static void load(const char *path, lp_model_config *c, int meta)
{
	size_t n;
	char err[512];
	char *s = lp_read_file(path, &n);
	int rc = meta ? lp_config_parse_meta(s, n, c, err, sizeof err) :
		lp_config_parse_hf(s, n, c, err, sizeof err);
	free(s);
	if (rc)
		lp_die(path, "%s", err);
}

void lp_config_load_hf(const char *path, lp_model_config *c) { load(path, c, 0); }
void lp_config_load_meta(const char *path, lp_model_config *c) { load(path, c, 1); }

int lp_config_check_vocab(const lp_model_config *c, int64_t n_pieces, int allow_extra,
		char *err, size_t errlen)
{
	if (c->vocab_size == n_pieces || (allow_extra && c->vocab_size > n_pieces))
		return 0;
	return lp_fail(err, errlen, "vocabulary mismatch: the tokenizer has %lld pieces, the "
			"model's vocabulary (embedding rows) is %lld%s", (long long)n_pieces,
			(long long)c->vocab_size, c->vocab_size < n_pieces ?
			": tokens past it have no embedding" : "");
}

/* ---- rotary frequencies, as transformers computes them (f32 tensors,
 * Python floats rounded to f32 where they meet one) ---- */

/* base ** (2i / dim), correctly rounded to f32 */
static float pow_f(float base, float e)
{
	return (float)pow((double)base, (double)e);
}

static void inv_freq_plain(float base, int64_t dim, float *out)
{
	for (int64_t i = 0; i < dim / 2; i++)
		out[i] = 1.0f / pow_f(base, (float)(2 * i) / (float)dim);
}

static void llama3(const lp_rope_config *r, int64_t dim, float *out)
{
	float factor = (float)r->factor, low = (float)r->low_freq_factor;
	float old = (float)r->original_max_pos;
	float low_wl = (float)(r->original_max_pos / r->low_freq_factor);
	float high_wl = (float)(r->original_max_pos / r->high_freq_factor);
	float span = (float)(r->high_freq_factor - r->low_freq_factor);
	float two_pi = (float)(2 * M_PI);
	inv_freq_plain((float)r->theta, dim, out);
	for (int64_t i = 0; i < dim / 2; i++) {
		float inv = out[i], wl = two_pi / inv;
		float scaled = wl > low_wl ? inv / factor : inv;
		float smooth = (old / wl - low) / span;
		float smoothed = (1 - smooth) * scaled / factor + smooth * scaled;
		out[i] = !(wl < high_wl) && !(wl > low_wl) ? smoothed : scaled;
	}
}

static double yarn_mscale(double scale, double m)
{
	return scale <= 1 ? 1.0 : 0.1 * m * log(scale) + 1.0;
}

static double yarn_correction_dim(double rot, int64_t dim, double base, double maxpos)
{
	return (dim * log(maxpos / (rot * 2 * M_PI))) / (2 * log(base));
}

static double yarn(const lp_rope_config *r, int64_t dim, float *out)
{
	double f = r->factor, att = r->attention_factor;
	if (!att)
		att = r->mscale && r->mscale_all_dim ?
			yarn_mscale(f, r->mscale) / yarn_mscale(f, r->mscale_all_dim) :
			yarn_mscale(f, 1);
	double lo = yarn_correction_dim(r->beta_fast, dim, r->theta, r->original_max_pos);
	double hi = yarn_correction_dim(r->beta_slow, dim, r->theta, r->original_max_pos);
	if (r->truncate) {
		lo = floor(lo);
		hi = ceil(hi);
	}
	lo = lo > 0 ? lo : 0;
	hi = hi < dim - 1 ? hi : dim - 1;
	if (lo == hi)
		hi += 0.001;
	float flo = (float)lo, fspan = (float)(hi - lo), ff = (float)f;
	for (int64_t i = 0; i < dim / 2; i++) {
		float pos = pow_f((float)r->theta, (float)(2 * i) / (float)dim);
		float extra = 1.0f / pos, inter = 1.0f / (ff * pos);
		float ramp = ((float)i - flo) / fspan;
		ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
		float ef = 1 - ramp;
		out[i] = inter * (1 - ef) + extra * ef;
	}
	return att;
}

void lp_rope_inv_freq(const lp_model_config *c, int64_t seq_len, float *out,
		double *attention_factor)
{
	const lp_rope_config *r = &c->rope;
	int64_t dim = c->head_dim;
	double att = 1;
	switch (r->type) {
	case LP_ROPE_LINEAR:
		inv_freq_plain((float)r->theta, dim, out);
		for (int64_t i = 0; i < dim / 2; i++)
			out[i] /= (float)r->factor;
		break;
	case LP_ROPE_DYNAMIC: {
		if (dim <= 2) {
			inv_freq_plain((float)r->theta, dim, out);
			break;
		}
		double seq = seq_len > c->max_pos ? seq_len : c->max_pos;
		double base = r->theta * pow(r->factor * seq / c->max_pos - (r->factor - 1),
				(double)dim / (dim - 2));
		inv_freq_plain((float)base, dim, out);
		break;
	}
	case LP_ROPE_LLAMA3:
		llama3(r, dim, out);
		break;
	case LP_ROPE_YARN:
		att = yarn(r, dim, out);
		break;
	default:
		inv_freq_plain((float)r->theta, dim, out);
	}
	if (attention_factor)
		*attention_factor = att;
}
