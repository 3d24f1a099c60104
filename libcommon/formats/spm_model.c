/* spm_model.c: SentencePiece ModelProto wire format, read and written by
 * hand (see spm_model.h for what is kept and how it is written back). */
#include "formats/spm_model.h"

#include <errno.h>
#include <jv.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "base/common.h"

/* protobuf wire types */
enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_SGROUP = 3, WT_EGROUP = 4, WT_I32 = 5 };

#define MAX_GROUP_DEPTH 64

/* A cursor over part of the input; offsets in messages count from base. */
struct rd {
	const uint8_t *base, *p, *end;
	char *err;
	size_t errlen;
};

static int fail(struct rd *r, const uint8_t *at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct rd *r, const uint8_t *at, const char *fmt, ...)
{
	if (!r->err || !r->errlen)
		return -1;
	int k = snprintf(r->err, r->errlen, "at byte %zu: ", (size_t)(at - r->base));
	if (k < 0 || (size_t)k >= r->errlen)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->err + k, r->errlen - k, fmt, ap);
	va_end(ap);
	return -1;
}

static struct rd sub_reader(const struct rd *r, const uint8_t *p, size_t n)
{
	struct rd s = *r;
	s.p = p;
	s.end = p + n;
	return s;
}

static int rd_varint(struct rd *r, uint64_t *out)
{
	const uint8_t *start = r->p;
	uint64_t v = 0;
	for (int i = 0;; i++) {
		if (r->p == r->end)
			return fail(r, start, "truncated varint");
		uint8_t b = *r->p++;
		if (i == 9 && b > 1)
			return fail(r, start, "varint longer than 64 bits");
		v |= (uint64_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80))
			break;
	}
	*out = v;
	return 0;
}

static int rd_tag(struct rd *r, uint32_t *field, int *wt)
{
	const uint8_t *start = r->p;
	uint64_t v;
	if (rd_varint(r, &v))
		return -1;
	if (v > UINT32_MAX)
		return fail(r, start, "tag %llu is out of range", (unsigned long long)v);
	*field = (uint32_t)(v >> 3);
	*wt = (int)(v & 7);
	if (*field == 0)
		return fail(r, start, "field number 0");
	if (*wt > WT_I32)
		return fail(r, start, "field %u has invalid wire type %d", *field, *wt);
	return 0;
}

/* A length-delimited payload: *p, *n point into the input. */
static int rd_len(struct rd *r, const uint8_t **p, size_t *n)
{
	const uint8_t *start = r->p;
	uint64_t v;
	if (rd_varint(r, &v))
		return -1;
	if (v > (uint64_t)(r->end - r->p))
		return fail(r, start, "length %llu runs past the end (%zu bytes left)",
			    (unsigned long long)v, (size_t)(r->end - r->p));
	*p = r->p;
	*n = (size_t)v;
	r->p += v;
	return 0;
}

static int rd_fixed(struct rd *r, size_t k, uint64_t *out)
{
	if ((size_t)(r->end - r->p) < k)
		return fail(r, r->p, "truncated %zu-byte fixed field", k);
	uint64_t v = 0;
	for (size_t i = 0; i < k; i++)
		v |= (uint64_t)r->p[i] << (8 * i);
	r->p += k;
	*out = v;
	return 0;
}

/* Skip the payload of a field whose tag was just read. */
static int rd_skip(struct rd *r, uint32_t field, int wt, int depth)
{
	const uint8_t *p;
	size_t n;
	uint64_t v;
	switch (wt) {
	case WT_VARINT:
		return rd_varint(r, &v);
	case WT_I64:
		return rd_fixed(r, 8, &v);
	case WT_I32:
		return rd_fixed(r, 4, &v);
	case WT_LEN:
		return rd_len(r, &p, &n);
	case WT_SGROUP:
		if (depth >= MAX_GROUP_DEPTH)
			return fail(r, r->p, "groups nested deeper than %d", MAX_GROUP_DEPTH);
		for (;;) {
			const uint8_t *at = r->p;
			uint32_t f;
			int w;
			if (r->p == r->end)
				return fail(r, at, "group %u is not closed", field);
			if (rd_tag(r, &f, &w))
				return -1;
			if (w == WT_EGROUP) {
				if (f != field)
					return fail(r, at, "end of group %u inside group %u", f, field);
				return 0;
			}
			if (rd_skip(r, f, w, depth + 1))
				return -1;
		}
	default:
		return fail(r, r->p, "end-group tag (field %u) outside a group", field);
	}
}

/* Check that p[0..n) is a well-formed message; its fields are not looked at. */
static int check_message(const struct rd *r, const uint8_t *p, size_t n)
{
	struct rd s = sub_reader(r, p, n);
	while (s.p < s.end) {
		uint32_t f;
		int wt;
		if (rd_tag(&s, &f, &wt) || rd_skip(&s, f, wt, 0))
			return -1;
	}
	return 0;
}

static int want_wt(struct rd *r, const uint8_t *at, const char *msg, uint32_t f,
		   int wt, int want)
{
	if (wt == want)
		return 0;
	return fail(r, at, "%s field %u has wire type %d, expected %d", msg, f, wt, want);
}

int lp_spm_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *e = p + n;
	while (p < e) {
		unsigned c = *p++;
		if (c < 0x80)
			continue;
		int k;
		unsigned cp, min;
		if (c >= 0xc2 && c <= 0xdf)
			k = 1, cp = c & 0x1f, min = 0x80;
		else if (c >= 0xe0 && c <= 0xef)
			k = 2, cp = c & 0x0f, min = 0x800;
		else if (c >= 0xf0 && c <= 0xf4)
			k = 3, cp = c & 0x07, min = 0x10000;
		else
			return 0;
		if (e - p < k)
			return 0;
		for (int i = 0; i < k; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (p[i] & 0x3f);
		}
		p += k;
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
	}
	return 1;
}

/* ---- the piece table's hash ---- */

static size_t slot_of(const lp_spm_model *m, const char *s, size_t len)
{
	size_t mask = m->n_slots - 1, i = (size_t)XXH3_64bits(s, len) & mask;
	for (;; i = (i + 1) & mask) {
		uint32_t v = m->slots[i];
		if (!v)
			return i;
		const lp_spm_piece *q = &m->pieces[v - 1];
		if (q->len == len && !memcmp(q->str, s, len))
			return i;
	}
}

static void rehash(lp_spm_model *m, size_t want)
{
	size_t n = 64;
	while (n < 2 * want)
		n *= 2;
	free(m->slots);
	m->slots = lp_calloc(n, sizeof *m->slots);
	m->n_slots = n;
	for (size_t i = 0; i < m->n_pieces; i++) {
		const lp_spm_piece *q = &m->pieces[i];
		m->slots[slot_of(m, q->str, q->len)] = (uint32_t)(i + 1);
	}
}

long lp_spm_model_find(const lp_spm_model *m, const char *s, size_t len)
{
	if (!m->n_slots)
		return -1;
	uint32_t v = m->slots[slot_of(m, s, len)];
	return v ? (long)v - 1 : -1;
}

/* ---- parsing ---- */

static int parse_piece(struct rd *r, const uint8_t *p, size_t n, size_t idx,
		       lp_spm_piece *out)
{
	struct rd s = sub_reader(r, p, n);
	const uint8_t *str = NULL;
	size_t len = 0;
	uint64_t v;
	memset(out, 0, sizeof *out);
	out->type = LP_SPM_NORMAL;
	while (s.p < s.end) {
		const uint8_t *at = s.p;
		uint32_t f;
		int wt;
		if (rd_tag(&s, &f, &wt))
			return -1;
		switch (f) {
		case 1:
			if (want_wt(&s, at, "piece", f, wt, WT_LEN) || rd_len(&s, &str, &len))
				return -1;
			break;
		case 2: {
			if (want_wt(&s, at, "piece", f, wt, WT_I32) || rd_fixed(&s, 4, &v))
				return -1;
			uint32_t bits = (uint32_t)v;
			memcpy(&out->score, &bits, sizeof bits);
			break;
		}
		case 3:
			if (want_wt(&s, at, "piece", f, wt, WT_VARINT) || rd_varint(&s, &v))
				return -1;
			if (v < LP_SPM_NORMAL || v > LP_SPM_BYTE)
				return fail(&s, at, "piece %zu has unknown type %llu", idx,
					    (unsigned long long)v);
			out->type = (int)v;
			break;
		default:
			if (rd_skip(&s, f, wt, 0))
				return -1;
		}
	}
	if (!str || !len)
		return fail(r, p, "piece %zu is empty", idx);
	if (!lp_spm_utf8_valid((const char *)str, len))
		return fail(r, p, "piece %zu is not valid UTF-8", idx);
	out->str = (const char *)str;
	out->len = len;
	out->raw = p;
	out->raw_len = n;
	return 0;
}

static int parse_trainer_spec(struct rd *r, const uint8_t *p, size_t n, lp_spm_model *m)
{
	struct rd s = sub_reader(r, p, n);
	m->has_trainer_spec = 1;
	while (s.p < s.end) {
		const uint8_t *at = s.p;
		uint32_t f;
		int wt;
		uint64_t v;
		if (rd_tag(&s, &f, &wt))
			return -1;
		if (f != 3 && f != 24 && f != 35 && (f < 40 || f > 43)) {
			if (rd_skip(&s, f, wt, 0))
				return -1;
			continue;
		}
		if (want_wt(&s, at, "trainer_spec", f, wt, WT_VARINT) || rd_varint(&s, &v))
			return -1;
		switch (f) {
		case 3:
			if (v < LP_SPM_UNIGRAM || v > LP_SPM_CHAR)
				return fail(&s, at, "unknown model_type %llu", (unsigned long long)v);
			m->model_type = (int)v;
			break;
		case 24: m->treat_whitespace_as_suffix = v != 0; break;
		case 35: m->byte_fallback = v != 0; break;
		case 40: m->unk_id = (int32_t)(uint32_t)v; break;
		case 41: m->bos_id = (int32_t)(uint32_t)v; break;
		case 42: m->eos_id = (int32_t)(uint32_t)v; break;
		case 43: m->pad_id = (int32_t)(uint32_t)v; break;
		}
	}
	return 0;
}

static int parse_normalizer_spec(struct rd *r, const uint8_t *p, size_t n, lp_spm_model *m)
{
	struct rd s = sub_reader(r, p, n);
	while (s.p < s.end) {
		const uint8_t *at = s.p;
		uint32_t f;
		int wt;
		uint64_t v;
		if (rd_tag(&s, &f, &wt))
			return -1;
		if (f == 2) {	/* precompiled_charsmap */
			if (want_wt(&s, at, "normalizer_spec", f, wt, WT_LEN) ||
			    rd_len(&s, &m->charsmap, &m->charsmap_len))
				return -1;
			continue;
		}
		if (f < 3 || f > 5) {
			if (rd_skip(&s, f, wt, 0))
				return -1;
			continue;
		}
		if (want_wt(&s, at, "normalizer_spec", f, wt, WT_VARINT) || rd_varint(&s, &v))
			return -1;
		if (f == 3)
			m->add_dummy_prefix = v != 0;
		else if (f == 4)
			m->remove_extra_whitespaces = v != 0;
		else
			m->escape_whitespaces = v != 0;
	}
	return 0;
}

/* One top-level field whose tag (at `at`) was just read. */
static int parse_field(struct rd *r, const uint8_t *at, uint32_t f, int wt, lp_spm_model *m)
{
	const uint8_t *p;
	size_t n;
	if (f >= 1 && f <= 5) {
		if (want_wt(r, at, "ModelProto", f, wt, WT_LEN) || rd_len(r, &p, &n))
			return -1;
	} else if (rd_skip(r, f, wt, 0)) {
		return -1;
	}
	if (f == 1) {
		lp_grow((void **)&m->pieces, &m->cap_pieces, m->n_pieces + 1, sizeof *m->pieces);
		if (parse_piece(r, p, n, m->n_pieces, &m->pieces[m->n_pieces]))
			return -1;
		m->n_pieces++;
		return 0;
	}
	if ((f == 2 && parse_trainer_spec(r, p, n, m)) ||
	    (f == 3 && parse_normalizer_spec(r, p, n, m)) ||
	    ((f == 4 || f == 5) && check_message(r, p, n)))
		return -1;
	lp_grow((void **)&m->fields, &m->cap_fields, m->n_fields + 1, sizeof *m->fields);
	m->fields[m->n_fields++] = (lp_spm_field){ f, at, (size_t)(r->p - at) };
	return 0;
}

/* NUL-terminated copies of the piece strings, and the hash. */
static int index_pieces(struct rd *r, lp_spm_model *m)
{
	size_t total = 0;
	for (size_t i = 0; i < m->n_pieces; i++)
		total += m->pieces[i].len + 1;
	m->strs = lp_malloc(total);
	char *q = m->strs;
	for (size_t i = 0; i < m->n_pieces; i++) {
		lp_spm_piece *pc = &m->pieces[i];
		memcpy(q, pc->str, pc->len);
		q[pc->len] = 0;
		pc->str = q;
		q += pc->len + 1;
	}
	size_t saved = m->n_pieces;
	m->n_pieces = 0;
	rehash(m, saved);
	for (size_t i = 0; i < saved; i++) {
		const lp_spm_piece *pc = &m->pieces[i];
		size_t k = slot_of(m, pc->str, pc->len);
		if (m->slots[k]) {
			m->n_pieces = saved;
			return fail(r, pc->raw, "piece %zu ('%.40s') repeats piece %u",
				    i, pc->str, m->slots[k] - 1);
		}
		m->slots[k] = (uint32_t)(i + 1);
		m->n_pieces = i + 1;
	}
	return 0;
}

static void set_err(char *err, size_t errlen, const char *msg)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", msg);
}

static void set_defaults(lp_spm_model *m)
{
	memset(m, 0, sizeof *m);
	m->model_type = LP_SPM_UNIGRAM;
	m->unk_id = 0;
	m->bos_id = 1;
	m->eos_id = 2;
	m->pad_id = -1;
	m->add_dummy_prefix = 1;
	m->remove_extra_whitespaces = 1;
	m->escape_whitespaces = 1;
}

int lp_spm_model_parse(const void *buf, size_t n, lp_spm_model *m, char *err, size_t errlen)
{
	set_defaults(m);
	if (err && errlen)
		err[0] = 0;
	m->buf = lp_malloc(n);
	if (n)
		memcpy(m->buf, buf, n);
	struct rd r = { m->buf, m->buf, m->buf + n, err, errlen };
	if (n == 0) {
		set_err(err, errlen, "the file is empty");
		goto bad;
	}
	while (r.p < r.end) {
		const uint8_t *at = r.p;
		uint32_t f;
		int wt;
		if (rd_tag(&r, &f, &wt) || parse_field(&r, at, f, wt, m))
			goto bad;
	}
	if (!m->n_pieces) {
		set_err(err, errlen, "no pieces (a well-formed protobuf message, but not a model)");
		goto bad;
	}
	if (m->n_pieces > UINT32_MAX - 1) {
		fail(&r, r.end, "too many pieces");
		goto bad;
	}
	if (index_pieces(&r, m))
		goto bad;
	return 0;
bad:
	lp_spm_model_free(m);
	return -1;
}

/* Printable ASCII at the start: someone passed a text file. */
static int looks_like_text(const char *s, size_t n)
{
	if (n > 256)
		n = 256;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 && c != '\n' && c != '\r' && c != '\t')
			return 0;
		if (c == 0x7f)
			return 0;
	}
	return n > 0;
}

void lp_spm_model_load(const char *path, lp_spm_model *m)
{
	size_t n;
	char *buf = lp_read_file(path, &n);
	char err[256];
	if (lp_spm_model_parse(buf, n, m, err, sizeof err)) {
		if (n && looks_like_text(buf, n))
			lp_die(path, "not a SentencePiece model: %s (this looks like a text file)", err);
		lp_die(path, "not a SentencePiece model: %s", err);
	}
	free(buf);
}

void lp_spm_model_free(lp_spm_model *m)
{
	for (size_t i = 0; i < m->n_pieces; i++)
		if (m->pieces[i].owned)
			free((void *)m->pieces[i].raw);
	free(m->pieces);
	free(m->fields);
	free(m->buf);
	free(m->strs);
	free(m->slots);
	memset(m, 0, sizeof *m);
}

/* ---- adding and writing ---- */

static size_t put_varint(uint8_t *p, uint64_t v)
{
	size_t k = 0;
	do {
		uint8_t b = v & 0x7f;
		v >>= 7;
		p[k++] = b | (v ? 0x80 : 0);
	} while (v);
	return k;
}

static size_t varint_len(uint64_t v)
{
	size_t k = 1;
	while (v >>= 7)
		k++;
	return k;
}

long lp_spm_model_add(lp_spm_model *m, const char *s, size_t len, int type)
{
	if (lp_spm_model_find(m, s, len) >= 0)
		return -1;
	if (2 * (m->n_pieces + 1) > m->n_slots)
		rehash(m, m->n_pieces + 1);
	/* body: 0x0a len piece, 0x15 float 0.0, [0x18 type]; then a NUL-terminated copy */
	size_t raw_len = 1 + varint_len(len) + len + 5 + (type != LP_SPM_NORMAL ? 2 : 0);
	uint8_t *b = lp_malloc(raw_len + len + 1), *q = b;
	*q++ = 0x0a;
	q += put_varint(q, len);
	memcpy(q, s, len);
	q += len;
	*q++ = 0x15;
	memset(q, 0, 4);
	q += 4;
	if (type != LP_SPM_NORMAL) {
		*q++ = 0x18;
		*q++ = (uint8_t)type;
	}
	memcpy(q, s, len);
	q[len] = 0;
	lp_grow((void **)&m->pieces, &m->cap_pieces, m->n_pieces + 1, sizeof *m->pieces);
	m->pieces[m->n_pieces] = (lp_spm_piece){
		.str = (const char *)q, .len = len, .score = 0.0f, .type = type,
		.raw = b, .raw_len = raw_len, .owned = 1,
	};
	m->slots[slot_of(m, s, len)] = (uint32_t)(m->n_pieces + 1);
	return (long)m->n_pieces++;
}

/* Python's order: known fields by number (1, 2, 3, 5), then the rest as read. */
static int field_rank(uint32_t f)
{
	return f == 2 ? 0 : f == 3 ? 1 : f == 5 ? 2 : 3;
}

void lp_spm_model_serialize(const lp_spm_model *m, uint8_t **out, size_t *n)
{
	size_t total = 0;
	for (size_t i = 0; i < m->n_pieces; i++)
		total += 1 + varint_len(m->pieces[i].raw_len) + m->pieces[i].raw_len;
	for (size_t i = 0; i < m->n_fields; i++)
		total += m->fields[i].len;
	uint8_t *b = lp_malloc(total), *q = b;
	for (size_t i = 0; i < m->n_pieces; i++) {
		const lp_spm_piece *pc = &m->pieces[i];
		*q++ = 0x0a;
		q += put_varint(q, pc->raw_len);
		memcpy(q, pc->raw, pc->raw_len);
		q += pc->raw_len;
	}
	for (int rank = 0; rank <= 3; rank++)
		for (size_t i = 0; i < m->n_fields; i++)
			if (field_rank(m->fields[i].field) == rank) {
				memcpy(q, m->fields[i].raw, m->fields[i].len);
				q += m->fields[i].len;
			}
	*out = b;
	*n = total;
}

/* ---- a transformers tokenizer directory ---- */

static void write_atomic(const char *path, const void *p, size_t n)
{
	lp_atomic *a = lp_atomic_create(path);
	lp_fwrite(lp_atomic_file(a), path, p, n);
	lp_atomic_commit(a);
}

static void write_json(const char *path, jv v)
{
	jv s = jv_dump_string(v, JV_PRINT_INDENT_FLAGS(2) | JV_PRINT_SORTED);
	size_t n = (size_t)jv_string_length_bytes(jv_copy(s));
	char *text = lp_malloc(n + 1);
	memcpy(text, jv_string_value(s), n);
	text[n] = '\n';
	write_atomic(path, text, n + 1);
	free(text);
	jv_free(s);
}

/* The piece at id, as a JSON string, or null when the model has none. */
static jv special(const lp_spm_model *m, int32_t id)
{
	if (id < 0 || (size_t)id >= m->n_pieces)
		return jv_null();
	return jv_string_sized(m->pieces[id].str, (int)m->pieces[id].len);
}

static void make_dirs(const char *dir)
{
	char *p = lp_strdup(dir);
	for (char *s = p + 1;; s++) {
		char c = *s;
		if (c != '/' && c != 0)
			continue;
		*s = 0;
		if (mkdir(p, 0777) != 0 && errno != EEXIST)
			lp_die(p, "cannot create directory: %s", strerror(errno));
		*s = c;
		if (!c)
			break;
	}
	struct stat st;
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		lp_die(dir, "not a directory");
	free(p);
}

void lp_spm_model_save(const lp_spm_model *m, const char *path)
{
	uint8_t *b;
	size_t n;
	lp_spm_model_serialize(m, &b, &n);
	write_atomic(path, b, n);
	free(b);
}

void lp_spm_write_hf_dir(const char *dir, const lp_spm_model *m, long long max_len)
{
	make_dirs(dir);
	size_t plen = strlen(dir) + 64;
	char *path = lp_malloc(plen);

	snprintf(path, plen, "%s/tokenizer.model", dir);
	lp_spm_model_save(m, path);

	jv cfg = jv_object();
	cfg = jv_object_set(cfg, jv_string("add_bos_token"), jv_true());
	cfg = jv_object_set(cfg, jv_string("add_eos_token"), jv_false());
	cfg = jv_object_set(cfg, jv_string("bos_token"), special(m, m->bos_id));
	cfg = jv_object_set(cfg, jv_string("clean_up_tokenization_spaces"), jv_false());
	cfg = jv_object_set(cfg, jv_string("eos_token"), special(m, m->eos_id));
	cfg = jv_object_set(cfg, jv_string("legacy"), jv_true());
	cfg = jv_object_set(cfg, jv_string("model_max_length"), jv_number((double)max_len));
	cfg = jv_object_set(cfg, jv_string("pad_token"), jv_null());
	cfg = jv_object_set(cfg, jv_string("sp_model_kwargs"), jv_object());
	cfg = jv_object_set(cfg, jv_string("tokenizer_class"), jv_string("LlamaTokenizer"));
	cfg = jv_object_set(cfg, jv_string("unk_token"), special(m, m->unk_id));
	snprintf(path, plen, "%s/tokenizer_config.json", dir);
	write_json(path, cfg);

	jv map = jv_object();
	map = jv_object_set(map, jv_string("bos_token"), special(m, m->bos_id));
	map = jv_object_set(map, jv_string("eos_token"), special(m, m->eos_id));
	map = jv_object_set(map, jv_string("unk_token"), special(m, m->unk_id));
	snprintf(path, plen, "%s/special_tokens_map.json", dir);
	write_json(path, map);
	free(path);
}

const char *lp_spm_model_type_name(int t)
{
	static const char *names[] = { "?", "unigram", "bpe", "word", "char" };
	return t >= 1 && t <= 4 ? names[t] : names[0];
}

const char *lp_spm_piece_type_name(int t)
{
	static const char *names[] = { "?", "normal", "unknown", "control",
				       "user_defined", "unused", "byte" };
	return t >= 1 && t <= 6 ? names[t] : names[0];
}
