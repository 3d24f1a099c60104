/* instr.c: raw data to instruction records: MSRA NER (JSON and tag
 * columns), Alpaca, shaped JSON, plain text; format sniffing; jq programs;
 * the dedup key. Nothing here dies on bad input (see instr.h). */
#include "text/instr.h"
#include "base/common.h"

#include <jq.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>


int lp_from_name(const char *name)
{
	static const char *names[] = {
		[LP_FROM_AUTO] = "auto", [LP_FROM_MSRA] = "msra", [LP_FROM_BIO] = "bio",
		[LP_FROM_ALPACA] = "alpaca", [LP_FROM_TEXT] = "text", [LP_FROM_JSON] = "json",
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (!strcmp(name, names[i]))
			return (int)i;
	return -1;
}

/* ---- UTF-8 and whitespace ---- */

int lp_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *e = p + n;
	while (p < e) {
		unsigned c = *p;
		size_t k;
		unsigned cp, min;
		if (c < 0x80) {
			p++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			k = 1, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			k = 2, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			k = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return 0;
		}
		if ((size_t)(e - p) <= k)
			return 0;
		for (size_t i = 1; i <= k; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (p[i] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		p += k + 1;
	}
	return 1;
}

/* Bytes of the whitespace character at p (before e), or 0. */
static size_t blank_at(const char *p, const char *e)
{
	if (strchr(" \t\n\r\v\f", *p) && *p)
		return 1;
	if (e - p >= 2 && !memcmp(p, "\xc2\xa0", 2))
		return 2; /* U+00A0 no-break space */
	if (e - p >= 3 && !memcmp(p, "\xe3\x80\x80", 3))
		return 3; /* U+3000 ideographic space */
	return 0;
}

int lp_is_blank(const char *s, size_t n)
{
	const char *e = s + n;
	while (s < e) {
		size_t k = blank_at(s, e);
		if (!k)
			return 0;
		s += k;
	}
	return 1;
}

/* ---- small helpers over jv ---- */

/* obj[key] when it is a string: 1 and *out (a new reference); 0 when
 * missing or null; -1 (kind name in *kind) for anything else. */
static int get_str(jv obj, const char *key, jv *out, const char **kind)
{
	jv v = jv_object_get(jv_copy(obj), jv_string(key));
	jv_kind k = jv_get_kind(v);
	if (k == JV_KIND_STRING) {
		*out = v;
		return 1;
	}
	jv_free(v);
	*kind = jv_kind_name(k);
	return k == JV_KIND_INVALID || k == JV_KIND_NULL ? 0 : -1;
}

/* The first present string among keys (NULL-terminated aliases). */
static int get_alias(jv obj, const char *const *keys, jv *out, const char **key,
		char *err, size_t errlen)
{
	for (; *keys; keys++) {
		const char *kind;
		int r = get_str(obj, *keys, out, &kind);
		*key = *keys;
		if (r == 1)
			return 1;
		if (r < 0)
			return lp_fail(err, errlen, "\"%s\" is %s %s, not a string",
					*keys, strchr("aeiou", kind[0]) ? "an" : "a", kind);
	}
	return 0;
}

static int jv_blank(jv s)
{
	return lp_is_blank(jv_string_value(s), jv_string_length_bytes(jv_copy(s)));
}

/* {"instruction","input","output"}, consuming the three strings. */
static jv instr_record(jv instruction, jv input, jv output)
{
	jv o = jv_object();
	o = jv_object_set(o, jv_string("instruction"), instruction);
	o = jv_object_set(o, jv_string("input"), input);
	o = jv_object_set(o, jv_string("output"), output);
	return o;
}

/* ---- NER labels and the answer ---- */

static const char ner_instruction[] =
	"你现在是一个实体识别模型，你需要提取文本里面的人名、地名、机构名，"
	"如果存在结果，返回'实体_实体类型'，不同实体间用\n分隔。"
	"如果没有结果，回答'没有'。";

void lp_ner_opts_init(lp_ner_opts *o)
{
	memset(o, 0, sizeof *o);
	o->instruction = ner_instruction;
	o->input_prefix = "文本：";
	o->none = "没有";
	lp_ner_set_label(o, "PER=人名");
	lp_ner_set_label(o, "LOC=地名");
	lp_ner_set_label(o, "ORG=机构名");
}

void lp_ner_opts_free(lp_ner_opts *o)
{
	for (size_t i = 0; i < o->nlabels; i++) {
		free(o->types[i]);
		free(o->labels[i]);
	}
	free(o->types);
	free(o->labels);
	o->types = o->labels = NULL;
	o->nlabels = 0;
}

int lp_ner_set_label(lp_ner_opts *o, const char *spec)
{
	const char *eq = strchr(spec, '=');
	if (!eq || eq == spec || !eq[1])
		return -1;
	size_t tl = eq - spec;
	for (size_t i = 0; i < o->nlabels; i++)
		if (strlen(o->types[i]) == tl && !memcmp(o->types[i], spec, tl)) {
			free(o->labels[i]);
			o->labels[i] = lp_strdup(eq + 1);
			return 0;
		}
	o->types = lp_realloc(o->types, (o->nlabels + 1) * sizeof *o->types);
	o->labels = lp_realloc(o->labels, (o->nlabels + 1) * sizeof *o->labels);
	o->types[o->nlabels] = lp_malloc(tl + 1);
	memcpy(o->types[o->nlabels], spec, tl);
	o->types[o->nlabels][tl] = 0;
	o->labels[o->nlabels++] = lp_strdup(eq + 1);
	return 0;
}

const char *lp_ner_label(const lp_ner_opts *o, const char *type, size_t len)
{
	for (size_t i = 0; i < o->nlabels; i++)
		if (strlen(o->types[i]) == len && !memcmp(o->types[i], type, len))
			return o->labels[i];
	return NULL;
}

/* An entity is kept as one malloc'd "entity\0TYPE\0". */
static char *ent_new(const char *e, size_t elen, const char *t, size_t tlen)
{
	char *p = lp_malloc(elen + tlen + 2);
	memcpy(p, e, elen);
	p[elen] = 0;
	memcpy(p + elen + 1, t, tlen);
	p[elen + 1 + tlen] = 0;
	return p;
}

static const char *ent_type(const char *ent) { return ent + strlen(ent) + 1; }

static int ent_eq(const char *a, const char *b)
{
	return !strcmp(a, b) && !strcmp(ent_type(a), ent_type(b));
}

/* The record for one sentence: input = prefix + text (consumed); output =
 * "entity_label" lines in first-seen order, repeats dropped, or o->none.
 * Every entity's type must be mapped. */
static jv ner_record(const lp_ner_opts *o, jv text, char **ents, size_t n)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	for (size_t i = 0; i < n; i++) {
		size_t j = 0;
		while (j < i && !ent_eq(ents[i], ents[j]))
			j++;
		if (j < i)
			continue; /* a repeat */
		const char *t = ent_type(ents[i]);
		const char *label = lp_ner_label(o, t, strlen(t));
		size_t el = strlen(ents[i]), ll = strlen(label);
		lp_grow((void **)&buf, &cap, len + el + ll + 2, 1);
		if (len)
			buf[len++] = '\n';
		memcpy(buf + len, ents[i], el);
		buf[len + el] = '_';
		memcpy(buf + len + el + 1, label, ll);
		len += el + 1 + ll;
	}
	jv out = len ? jv_string_sized(buf, len) : jv_string(o->none);
	free(buf);
	return instr_record(jv_string(o->instruction),
			jv_string_concat(jv_string(o->input_prefix), text), out);
}

static void free_ents(char **ents, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ents[i]);
	free(ents);
}

/* ---- MSRA NER JSON ---- */

/* Byte offset of code point number cp in s[0..n), or (size_t)-1. */
static size_t cp_offset(const char *s, size_t n, double cp)
{
	size_t i = 0;
	for (double k = 0; k < cp; k++) {
		if (i >= n)
			return (size_t)-1;
		i++;
		while (i < n && (s[i] & 0xc0) == 0x80)
			i++;
	}
	return i;
}

static int index_number(jv idx, const char *key, double *out)
{
	jv v = jv_object_get(jv_copy(idx), jv_string(key));
	int ok = jv_get_kind(v) == JV_KIND_NUMBER;
	*out = ok ? jv_number_value(v) : 0;
	jv_free(v);
	return ok && *out >= 0 && *out == floor(*out) && *out < 1e9;
}

/* entity_list[k]: checked, appended to ents as "entity\0TYPE". */
static int msra_entity(const lp_ner_opts *o, jv text, jv e, int k,
		char ***ents, size_t *n, size_t *cap, char *err, size_t errlen)
{
	jv ent = jv_invalid(), type = jv_invalid();
	const char *kind, *t, *s;
	int r = LP_INSTR_BAD;
	size_t tl, el;
	if (jv_get_kind(e) != JV_KIND_OBJECT) {
		lp_fail(err, errlen, "entity_list[%d] is not an object", k);
		goto out;
	}
	if (get_str(e, "entity", &ent, &kind) != 1 || !jv_string_length_bytes(jv_copy(ent))) {
		lp_fail(err, errlen, "entity_list[%d] has no \"entity\" string", k);
		goto out;
	}
	if (get_str(e, "entity_type", &type, &kind) != 1) {
		lp_fail(err, errlen, "entity_list[%d] has no \"entity_type\" string", k);
		goto out;
	}
	s = jv_string_value(ent), el = jv_string_length_bytes(jv_copy(ent));
	t = jv_string_value(type), tl = jv_string_length_bytes(jv_copy(type));
	if (strlen(s) != el || strlen(t) != tl) {
		lp_fail(err, errlen, "entity_list[%d] has a NUL character", k);
		goto out;
	}
	if (!lp_ner_label(o, t, tl)) {
		lp_fail(err, errlen, "unknown entity type '%s' (map it with --label %s=NAME)", t, t);
		goto out;
	}
	jv idx = jv_object_get(jv_copy(e), jv_string("entity_index"));
	if (jv_get_kind(idx) == JV_KIND_OBJECT) {
		double b, en;
		const char *ts = jv_string_value(text);
		size_t tn = jv_string_length_bytes(jv_copy(text)), bb, eb;
		if (!index_number(idx, "begin", &b) || !index_number(idx, "end", &en) || b > en) {
			jv_free(idx);
			lp_fail(err, errlen, "entity_list[%d].entity_index needs integers begin <= end", k);
			goto out;
		}
		bb = cp_offset(ts, tn, b);
		eb = cp_offset(ts, tn, en);
		if (eb == (size_t)-1 || eb - bb != el || memcmp(ts + bb, s, el)) {
			jv_free(idx);
			if (eb == (size_t)-1)
				lp_fail(err, errlen, "entity_list[%d]: entity_index [%.0f, %.0f) is past the end of the text",
						k, b, en);
			else
				lp_fail(err, errlen, "entity_list[%d]: text[%.0f:%.0f] is \"%.*s\", not the entity \"%s\"",
						k, b, en, (int)(eb - bb), ts + bb, s);
			goto out;
		}
	} else if (jv_get_kind(idx) != JV_KIND_INVALID && jv_get_kind(idx) != JV_KIND_NULL) {
		jv_free(idx);
		lp_fail(err, errlen, "entity_list[%d].entity_index is not an object", k);
		goto out;
	}
	jv_free(idx);
	lp_grow((void **)ents, cap, *n + 1, sizeof **ents);
	(*ents)[(*n)++] = ent_new(s, el, t, tl);
	r = LP_INSTR_OK;
out:
	jv_free(ent);
	jv_free(type);
	return r;
}

int lp_instr_from_msra(const lp_ner_opts *o, jv rec, jv *out, char *err, size_t errlen)
{
	jv text = jv_invalid(), list = jv_invalid();
	const char *kind;
	char **ents = NULL;
	size_t n = 0, cap = 0;
	int r = LP_INSTR_BAD;
	if (jv_get_kind(rec) != JV_KIND_OBJECT) {
		lp_fail(err, errlen, "expected an MSRA NER object {\"text\",\"entity_list\"}");
		goto out;
	}
	if (get_str(rec, "text", &text, &kind) != 1) {
		lp_fail(err, errlen, "no \"text\" string");
		goto out;
	}
	if (jv_blank(text)) {
		r = LP_INSTR_EMPTY;
		goto out;
	}
	list = jv_object_get(jv_copy(rec), jv_string("entity_list"));
	if (jv_get_kind(list) != JV_KIND_ARRAY) {
		lp_fail(err, errlen, "no \"entity_list\" array");
		goto out;
	}
	int len = jv_array_length(jv_copy(list));
	for (int k = 0; k < len; k++) {
		jv e = jv_array_get(jv_copy(list), k);
		int ok = msra_entity(o, text, e, k, &ents, &n, &cap, err, errlen);
		jv_free(e);
		if (ok != LP_INSTR_OK)
			goto out;
	}
	*out = ner_record(o, jv_copy(text), ents, n);
	r = LP_INSTR_OK;
out:
	free_ents(ents, n);
	jv_free(text);
	jv_free(list);
	return r;
}

/* ---- NER tag columns (BIO, BIOES, BMES) ---- */

/* "O" or "P-TYPE" with P in BIMES: *kind and the type; 0 for other shapes. */
static int parse_tag(const char *t, size_t n, char *kind, const char **type, size_t *tlen)
{
	if (n == 1 && t[0] == 'O') {
		*kind = 'O', *type = NULL, *tlen = 0;
		return 1;
	}
	if (n < 3 || !strchr("BIMES", t[0]) || !t[0] || t[1] != '-')
		return 0;
	*kind = t[0], *type = t + 2, *tlen = n - 2;
	return 1;
}

/* Split on ASCII blanks into at most max fields; returns the field count. */
static int split_fields(const char *s, size_t n, const char **f, size_t *fl, int max)
{
	int k = 0;
	size_t i = 0;
	while (i < n) {
		while (i < n && (s[i] == ' ' || s[i] == '\t'))
			i++;
		if (i == n)
			break;
		size_t st = i;
		while (i < n && s[i] != ' ' && s[i] != '\t')
			i++;
		if (k < max)
			f[k] = s + st, fl[k] = i - st;
		k++;
	}
	return k;
}

void lp_bio_init(lp_bio *b) { memset(b, 0, sizeof *b); }

void lp_bio_reset(lp_bio *b)
{
	for (size_t i = 0; i < b->nents; i++)
		free(b->ents[i]);
	b->nents = 0;
	b->len = 0;
	b->ntok = 0;
	b->open = 0;
}

void lp_bio_free(lp_bio *b)
{
	lp_bio_reset(b);
	free(b->ents);
	free(b->text);
	memset(b, 0, sizeof *b);
}

static void bio_close(lp_bio *b)
{
	if (!b->open)
		return;
	lp_grow((void **)&b->ents, &b->capents, b->nents + 1, sizeof *b->ents);
	b->ents[b->nents++] = ent_new(b->text + b->open_start, b->len - b->open_start,
			b->open_type, strlen(b->open_type));
	b->open = 0;
}

static void bio_append(lp_bio *b, const char *tok, size_t n)
{
	lp_grow((void **)&b->text, &b->cap, b->len + n + 1, 1);
	memcpy(b->text + b->len, tok, n);
	b->len += n;
	b->ntok++;
}

int lp_bio_line(lp_bio *b, const lp_ner_opts *o, const char *line, size_t len,
		char *err, size_t errlen)
{
	const char *f[2], *type;
	size_t fl[2], tl;
	char kind;
	if (memchr(line, 0, len))
		return lp_fail(err, errlen, "NUL byte in the line");
	if (!lp_utf8_valid(line, len))
		return lp_fail(err, errlen, "not valid UTF-8");
	int nf = split_fields(line, len, f, fl, 2);
	if (nf != 2)
		return lp_fail(err, errlen, "expected 'token TAG', found %d field%s", nf, nf == 1 ? "" : "s");
	if (!parse_tag(f[1], fl[1], &kind, &type, &tl))
		return lp_fail(err, errlen, "bad tag '%.*s' (want O, B-T, I-T, M-T, E-T or S-T)",
				(int)fl[1], f[1]);
	if (kind != 'O' && !lp_ner_label(o, type, tl))
		return lp_fail(err, errlen, "unknown entity type '%.*s' (map it with --label %.*s=NAME)",
				(int)tl, type, (int)tl, type);
	if (tl >= sizeof b->open_type)
		return lp_fail(err, errlen, "entity type '%.*s' is too long", (int)tl, type);
	int cont = kind == 'I' || kind == 'M' || kind == 'E';
	if (cont && !b->open)
		return lp_fail(err, errlen, "'%.*s' without a 'B-%.*s' before it",
				(int)fl[1], f[1], (int)tl, type);
	if (cont && (strlen(b->open_type) != tl || memcmp(b->open_type, type, tl)))
		return lp_fail(err, errlen, "'%.*s' continues a %s entity",
				(int)fl[1], f[1], b->open_type);
	if (!cont)
		bio_close(b);
	if (kind == 'B' || kind == 'S') {
		b->open = 1;
		b->open_start = b->len;
		memcpy(b->open_type, type, tl);
		b->open_type[tl] = 0;
	}
	bio_append(b, f[0], fl[0]);
	if (kind == 'E' || kind == 'S')
		bio_close(b);
	return LP_INSTR_OK;
}

int lp_bio_sentence(lp_bio *b, const lp_ner_opts *o, jv *out)
{
	bio_close(b);
	int r = LP_INSTR_EMPTY;
	if (b->ntok && !lp_is_blank(b->text, b->len)) {
		*out = ner_record(o, jv_string_sized(b->text, b->len), b->ents, b->nents);
		r = LP_INSTR_OK;
	}
	lp_bio_reset(b);
	return r;
}

/* ---- Alpaca, shaped JSON, text ---- */

int lp_instr_from_alpaca(jv rec, jv *out, char *err, size_t errlen)
{
	static const char *const ins_keys[] = {"instruction", "instruct", NULL};
	static const char *const in_keys[] = {"input", "query", NULL};
	static const char *const out_keys[] = {"output", "answer", NULL};
	jv ins = jv_invalid(), in = jv_invalid(), outp = jv_invalid();
	const char *key;
	int r;
	if (jv_get_kind(rec) != JV_KIND_OBJECT)
		return lp_fail(err, errlen, "expected an object with instruction, input, output");
	if ((r = get_alias(rec, ins_keys, &ins, &key, err, errlen)) != 1) {
		if (!r)
			lp_fail(err, errlen, "no \"instruction\" (or \"instruct\")");
		return LP_INSTR_BAD;
	}
	if ((r = get_alias(rec, out_keys, &outp, &key, err, errlen)) != 1) {
		jv_free(ins);
		if (!r)
			lp_fail(err, errlen, "no \"output\" (or \"answer\")");
		return LP_INSTR_BAD;
	}
	if ((r = get_alias(rec, in_keys, &in, &key, err, errlen)) < 0) {
		jv_free(ins);
		jv_free(outp);
		return LP_INSTR_BAD;
	}
	if (!r)
		in = jv_string("");
	if (jv_blank(ins) || jv_blank(outp)) {
		jv_free(ins);
		jv_free(in);
		jv_free(outp);
		return LP_INSTR_EMPTY;
	}
	*out = instr_record(ins, in, outp);
	return LP_INSTR_OK;
}

int lp_instr_from_json(jv rec, jv *out, char *err, size_t errlen)
{
	static const char *const ins_keys[] = {"instruction", NULL};
	static const char *const in_keys[] = {"input", NULL};
	static const char *const out_keys[] = {"output", NULL};
	static const char *const text_keys[] = {"text", NULL};
	jv ins = jv_invalid(), in = jv_invalid(), outp = jv_invalid();
	const char *key;
	if (jv_get_kind(rec) != JV_KIND_OBJECT)
		return lp_fail(err, errlen, "%s is not an object with instruction/output or text",
				jv_kind_name(jv_get_kind(rec)));
	int ri = get_alias(rec, ins_keys, &ins, &key, err, errlen);
	if (ri < 0)
		return LP_INSTR_BAD;
	int ro = get_alias(rec, out_keys, &outp, &key, err, errlen);
	if (ro < 0) {
		jv_free(ins);
		return LP_INSTR_BAD;
	}
	if (!ri && !ro) {
		jv text;
		int rt = get_alias(rec, text_keys, &text, &key, err, errlen);
		if (rt < 0)
			return LP_INSTR_BAD;
		if (!rt)
			return lp_fail(err, errlen, "an object with neither instruction/output nor text");
		if (jv_blank(text)) {
			jv_free(text);
			return LP_INSTR_EMPTY;
		}
		*out = jv_object_set(jv_object(), jv_string("text"), text);
		return LP_INSTR_OK;
	}
	if (!ri || !ro) {
		jv_free(ins);
		jv_free(outp);
		return lp_fail(err, errlen, "\"%s\" without \"%s\"", ri ? "instruction" : "output",
				ri ? "output" : "instruction");
	}
	int rn = get_alias(rec, in_keys, &in, &key, err, errlen);
	if (rn < 0) {
		jv_free(ins);
		jv_free(outp);
		return LP_INSTR_BAD;
	}
	if (!rn)
		in = jv_string("");
	if (jv_blank(ins) || jv_blank(outp)) {
		jv_free(ins);
		jv_free(in);
		jv_free(outp);
		return LP_INSTR_EMPTY;
	}
	*out = instr_record(ins, in, outp);
	return LP_INSTR_OK;
}

int lp_instr_from_text(const char *s, size_t n, jv *out, char *err, size_t errlen)
{
	if (!lp_utf8_valid(s, n))
		return lp_fail(err, errlen, "not valid UTF-8");
	if (lp_is_blank(s, n))
		return LP_INSTR_EMPTY;
	*out = jv_object_set(jv_object(), jv_string("text"), jv_string_sized(s, n));
	return LP_INSTR_OK;
}

/* ---- sniffing ---- */

static int has(const char *p, size_t n, const char *needle)
{
	return memmem(p, n, needle, strlen(needle)) != NULL;
}

/* Which format a JSON object's keys say (or its text, if unparsable). */
static lp_from sniff_keys(jv obj, const char *p, size_t n)
{
	static const struct { const char *key; lp_from f; } keys[] = {
		{"entity_list", LP_FROM_MSRA}, {"instruction", LP_FROM_ALPACA},
		{"instruct", LP_FROM_ALPACA}, {"output", LP_FROM_ALPACA},
		{"answer", LP_FROM_ALPACA}, {"text", LP_FROM_JSON},
	};
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		if (jv_get_kind(obj) == JV_KIND_OBJECT) {
			if (jv_object_has(jv_copy(obj), jv_string(keys[i].key)))
				return keys[i].f;
		} else {
			char q[32];
			snprintf(q, sizeof q, "\"%s\"", keys[i].key);
			if (has(p, n, q))
				return keys[i].f;
		}
	}
	return LP_FROM_AUTO;
}

lp_from lp_instr_sniff(const char *p, size_t n, const char **what)
{
	size_t i = 0, e;
	if (n >= 3 && !memcmp(p, "\xef\xbb\xbf", 3))
		i = 3;
	for (;; i = e + 1) { /* the first non-blank line: p[i..e) */
		const char *nl = i < n ? memchr(p + i, '\n', n - i) : NULL;
		e = nl ? (size_t)(nl - p) : n;
		if (!lp_is_blank(p + i, e - i))
			break;
		if (e >= n) {
			*what = NULL; /* nothing to go by */
			return LP_FROM_TEXT;
		}
	}
	while (i < e && p[i] && strchr(" \t\r", p[i]))
		i++;
	if (p[i] == '[') {
		lp_from f = sniff_keys(jv_invalid(), p + i, n - i);
		*what = f == LP_FROM_MSRA ? "MSRA NER JSON array" :
			f == LP_FROM_JSON ? "{\"text\"} JSON array" : "Alpaca JSON array";
		return f == LP_FROM_MSRA || f == LP_FROM_JSON ? f : LP_FROM_ALPACA;
	}
	if (p[i] == '{') {
		jv v = jv_parse_sized(p + i, e - i);
		lp_from f = sniff_keys(v, p + i, e - i);
		int parsed = jv_is_valid(v);
		jv_free(v);
		switch (f) {
		case LP_FROM_MSRA: *what = "MSRA NER JSONL"; return f;
		case LP_FROM_ALPACA: *what = "Alpaca JSONL"; return f;
		case LP_FROM_JSON: *what = "{\"text\"} JSONL"; return f;
		default: break;
		}
		if (!parsed) { /* let the JSON reader name the bad line */
			*what = "JSONL records";
			return LP_FROM_JSON;
		}
		*what = "JSON objects with none of entity_list, instruction, output, text";
		return LP_FROM_AUTO;
	}
	const char *f[3], *type;
	size_t fl[3], tl;
	char kind;
	if (split_fields(p + i, e - i, f, fl, 3) == 2 && parse_tag(f[1], fl[1], &kind, &type, &tl)) {
		*what = "NER tag columns (BIO/BIOES)";
		return LP_FROM_BIO;
	}
	*what = "plain text";
	return LP_FROM_TEXT;
}

/* ---- the dedup key ---- */

char *lp_instr_normalize(jv rec, size_t *len)
{
	char *buf = NULL;
	size_t n = 0, cap = 0;
	int first = 1;
	jv_object_foreach(rec, key, val) {
		if (jv_get_kind(val) == JV_KIND_STRING) {
			const char *s = jv_string_value(val), *e = s + jv_string_length_bytes(jv_copy(val));
			lp_grow((void **)&buf, &cap, n + (e - s) + 2, 1);
			if (!first)
				buf[n++] = 0x1f;
			first = 0;
			int space = 0, any = 0;
			while (s < e) {
				size_t k = blank_at(s, e);
				if (k) {
					space = 1;
					s += k;
					continue;
				}
				if (space && any)
					buf[n++] = ' ';
				space = 0;
				any = 1;
				buf[n++] = *s++;
			}
		}
		jv_free(key);
		jv_free(val);
	}
	*len = n;
	return buf ? buf : lp_strdup("");
}

/* ---- jq programs ---- */

struct lp_jqprog {
	jq_state *jq;
	char msg[1024];
	size_t msglen;
};

/* Compile-time messages, kept on one line: blank runs (newlines too)
 * become one space, messages are joined by "; ". */
static void jq_message(void *data, jv msg)
{
	struct lp_jqprog *p = data;
	msg = jq_format_error(msg);
	const char *s = jv_get_kind(msg) == JV_KIND_STRING ? jv_string_value(msg) : "error";
	size_t cap = sizeof p->msg - 1;
	if (p->msglen && p->msglen + 2 < cap) {
		memcpy(p->msg + p->msglen, "; ", 2);
		p->msglen += 2;
	}
	int space = 0;
	for (; *s && p->msglen < cap; s++) {
		if (strchr(" \t\r\n", *s)) {
			space = 1;
			continue;
		}
		if (space && p->msglen && p->msg[p->msglen - 1] != ' ' && p->msglen + 1 < cap)
			p->msg[p->msglen++] = ' ';
		space = 0;
		p->msg[p->msglen++] = *s;
	}
	p->msg[p->msglen] = 0;
	jv_free(msg);
}

lp_jqprog *lp_jqprog_compile(const char *program, char *err, size_t errlen)
{
	struct lp_jqprog *p = lp_calloc(1, sizeof *p);
	p->jq = jq_init();
	if (!p->jq) {
		free(p);
		lp_fail(err, errlen, "cannot start jq");
		return NULL;
	}
	jq_set_error_cb(p->jq, jq_message, p);
	if (!jq_compile(p->jq, program)) {
		lp_fail(err, errlen, "%s", p->msglen ? p->msg : "jq: compile error");
		lp_jqprog_free(p);
		return NULL;
	}
	return p;
}

jv lp_jqprog_run(lp_jqprog *p, jv in, char *err, size_t errlen)
{
	jv outs = jv_array();
	jq_start(p->jq, in, 0);
	for (;;) {
		jv r = jq_next(p->jq);
		if (jv_is_valid(r)) {
			outs = jv_array_append(outs, r);
			continue;
		}
		if (jv_invalid_has_msg(jv_copy(r))) {
			jv m = jv_invalid_get_msg(r);
			if (jv_get_kind(m) == JV_KIND_STRING) {
				lp_fail(err, errlen, "jq: error: %s", jv_string_value(m));
			} else {
				jv d = jv_dump_string(jv_copy(m), 0);
				lp_fail(err, errlen, "jq: error (not a string): %s", jv_string_value(d));
				jv_free(d);
			}
			jv_free(m);
			jv_free(outs);
			return jv_invalid();
		}
		jv_free(r);
		if (jq_halted(p->jq)) {
			jv_free(outs);
			lp_fail(err, errlen, "jq: the program halted");
			return jv_invalid();
		}
		return outs;
	}
}

void lp_jqprog_free(lp_jqprog *p)
{
	if (!p)
		return;
	jq_teardown(&p->jq);
	free(p);
}

/* ---- a set of hashes ---- */

int lp_u64set_add(lp_u64set *s, uint64_t h)
{
	if (!h) {
		int added = !s->has_zero;
		s->has_zero = 1;
		return added;
	}
	if (2 * (s->n + 1) > s->cap) { /* keep the load at most 1/2 */
		size_t ncap = s->cap ? 2 * s->cap : 1024;
		uint64_t *ns = lp_calloc(ncap, sizeof *ns);
		for (size_t i = 0; i < s->cap; i++) {
			if (!s->slot[i])
				continue;
			size_t j = s->slot[i] & (ncap - 1);
			while (ns[j])
				j = (j + 1) & (ncap - 1);
			ns[j] = s->slot[i];
		}
		free(s->slot);
		s->slot = ns;
		s->cap = ncap;
	}
	size_t j = h & (s->cap - 1);
	while (s->slot[j]) {
		if (s->slot[j] == h)
			return 0;
		j = (j + 1) & (s->cap - 1);
	}
	s->slot[j] = h;
	s->n++;
	return 1;
}

void lp_u64set_free(lp_u64set *s)
{
	free(s->slot);
	memset(s, 0, sizeof *s);
}
