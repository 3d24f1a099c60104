/* safetensors.c: safetensors reader (mmap, in place) and writer.
 * See safetensors.h for the format and the checks. */
#include "formats/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jv.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/common.h"

#define MAX_DEPTH 16            /* a valid header nests 3 deep */
#define MAX_EXACT 9007199254740992.0    /* 2^53: JSON numbers arrive as doubles */

/* Format names, and each dtype's place in the serializer's order (its Rust
 * enum position: tensors are sorted by decreasing position, then name). */
static const struct { const char *name; int order; } st_types[LP_DTYPE_COUNT] = {
	[LP_BOOL] = {"BOOL", 0}, [LP_U8] = {"U8", 4},     [LP_I8] = {"I8", 5},
	[LP_I16] = {"I16", 11},  [LP_U16] = {"U16", 12},  [LP_F16] = {"F16", 13},
	[LP_BF16] = {"BF16", 14}, [LP_I32] = {"I32", 15}, [LP_U32] = {"U32", 16},
	[LP_F32] = {"F32", 17},  [LP_F64] = {"F64", 19},  [LP_I64] = {"I64", 20},
	[LP_U64] = {"U64", 21},
};

const char *lp_st_dtype_name(int d)
{
	return d > 0 && d < LP_DTYPE_COUNT ? st_types[d].name : NULL;
}

static int st_dtype_parse(const char *s)
{
	for (int d = 1; d < LP_DTYPE_COUNT; d++)
		if (!strcmp(st_types[d].name, s))
			return d;
	return 0;
}

/* Byte offset of the first invalid UTF-8 sequence in s, or n if none.
 * Overlong forms, surrogates and code points past U+10FFFF are invalid. */
static size_t utf8_check(const uint8_t *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = s[i];
		int len = c < 0x80 ? 1 : c >= 0xc2 && c < 0xe0 ? 2 : c >= 0xe0 && c < 0xf0 ? 3 :
			c >= 0xf0 && c < 0xf5 ? 4 : 0;
		if (!len || n - i < (size_t)len)
			return i;
		for (int k = 1; k < len; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return i;
		uint8_t c1 = len > 1 ? s[i + 1] : 0;
		if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 >= 0xa0) ||
				(c == 0xf0 && c1 < 0x90) || (c == 0xf4 && c1 >= 0x90))
			return i;
		i += len;
	}
	return n;
}

/* ---- reading ---- */

/* Count the keys of the top-level object by scanning the text (the JSON
 * parser keeps only the last of duplicate keys). Before the parser sees the
 * text, refuse nesting deeper than MAX_DEPTH (-1), and a string right after
 * a value (-2: libjq 1.6 leaks memory on that error). Otherwise tolerates
 * invalid JSON. With spans non-NULL, records each key's quoted text as
 * (start, end). */
static long scan_keys(const char *s, size_t n, size_t *spans)
{
	long keys = 0;
	int depth = 0;
	char prev = '{';        /* last significant character outside strings */
	for (size_t i = 0; i < n; i++) {
		if (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')
			continue;
		if (s[i] == '{' || s[i] == '[') {
			if (++depth > MAX_DEPTH)
				return -1;
		} else if (s[i] == '}' || s[i] == ']') {
			depth--;
		} else if (s[i] == '"') {
			if (!prev || !strchr("{[,:", prev))
				return -2;
			size_t start = i;
			for (i++; i < n && s[i] != '"'; i++)
				if (s[i] == '\\')
					i++;
			if (i >= n)
				break;
			size_t j = i + 1;
			while (j < n && (s[j] == ' ' || s[j] == '\t' || s[j] == '\n' || s[j] == '\r'))
				j++;
			if (depth == 1 && j < n && s[j] == ':') {
				if (spans) {
					spans[2 * keys] = start;
					spans[2 * keys + 1] = i + 1;
				}
				keys++;
			}
		}
		prev = s[i];
	}
	return keys;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Name the first key that occurs twice (the header is known valid JSON). */
static int report_duplicate(const char *s, size_t n, long keys, char *err, size_t errlen)
{
	size_t *spans = lp_malloc(2 * keys * sizeof *spans);
	char **names = lp_calloc(keys, sizeof *names);
	scan_keys(s, n, spans);
	for (long k = 0; k < keys; k++) {
		jv v = jv_parse_sized(s + spans[2 * k], (int)(spans[2 * k + 1] - spans[2 * k]));
		names[k] = lp_strdup(jv_get_kind(v) == JV_KIND_STRING ? jv_string_value(v) : "");
		jv_free(v);
	}
	qsort(names, keys, sizeof *names, cmp_str);
	const char *dup = "?";
	for (long k = 1; k < keys; k++)
		if (!strcmp(names[k - 1], names[k])) {
			dup = names[k];
			break;
		}
	lp_fail(err, errlen, "duplicate key '%s' in header", dup);
	for (long k = 0; k < keys; k++)
		free(names[k]);
	free(names);
	free(spans);
	return -1;
}

/* A JSON string into a new C string; NULL if v is not a string or holds NUL. */
static char *take_string(jv v)
{
	char *s = NULL;
	if (jv_get_kind(v) == JV_KIND_STRING &&
			strlen(jv_string_value(v)) == (size_t)jv_string_length_bytes(jv_copy(v)))
		s = lp_strdup(jv_string_value(v));
	jv_free(v);
	return s;
}

/* A non-negative integer that a double holds exactly; consumes v. */
static int take_uint(jv v, uint64_t *out)
{
	int ok = jv_get_kind(v) == JV_KIND_NUMBER;
	double d = ok ? jv_number_value(v) : -1;
	jv_free(v);
	if (!(d >= 0 && d < MAX_EXACT && d == (double)(uint64_t)d))
		return -1;
	*out = (uint64_t)d;
	return 0;
}

static int parse_metadata(lp_st_file *f, jv m, char *err, size_t errlen)
{
	int rc = 0;
	if (jv_get_kind(m) == JV_KIND_NULL) {
		jv_free(m);
		return 0;
	}
	if (jv_get_kind(m) != JV_KIND_OBJECT) {
		jv_free(m);
		return lp_fail(err, errlen, "__metadata__ is not an object");
	}
	f->meta = lp_calloc(2 * jv_object_length(jv_copy(m)), sizeof *f->meta);
	jv_object_foreach(m, k, v) {
		char *key = take_string(k), *val = take_string(v);
		if (!rc && !key)
			rc = lp_fail(err, errlen, "__metadata__: a key contains a NUL byte");
		else if (!rc && !val)
			rc = lp_fail(err, errlen, "__metadata__: value of '%s' is not a string "
					"without NUL", key);
		if (!rc) {
			f->meta[2 * f->nmeta] = key;
			f->meta[2 * f->nmeta++ + 1] = val;
		} else {
			free(key);
			free(val);
		}
	}
	jv_free(m);
	return rc;
}

/* One tensor entry: dtype, shape, data_offsets and their agreement.
 * t->name is set; datalen is the size of the data area. */
static int parse_tensor(lp_st_tensor *t, jv e, uint64_t datalen, char *err, size_t errlen)
{
	const char *name = t->name;
	if (jv_get_kind(e) != JV_KIND_OBJECT) {
		jv_free(e);
		return lp_fail(err, errlen, "tensor '%s': entry is not an object", name);
	}
	jv dt = jv_object_get(jv_copy(e), jv_string("dtype"));
	jv shape = jv_object_get(jv_copy(e), jv_string("shape"));
	jv offs = jv_object_get(e, jv_string("data_offsets"));
	int rc = -1;
	if (jv_get_kind(dt) != JV_KIND_STRING)
		lp_fail(err, errlen, "tensor '%s': dtype missing or not a string", name);
	else if (!(t->dtype = st_dtype_parse(jv_string_value(dt))))
		lp_fail(err, errlen, "tensor '%s': unknown or unsupported dtype '%s'", name,
				jv_string_value(dt));
	else if (jv_get_kind(shape) != JV_KIND_ARRAY)
		lp_fail(err, errlen, "tensor '%s': shape missing or not an array", name);
	else if ((t->rank = jv_array_length(jv_copy(shape))) > LP_ST_MAX_RANK)
		lp_fail(err, errlen, "tensor '%s': rank %d exceeds %d", name, t->rank, LP_ST_MAX_RANK);
	else if (jv_get_kind(offs) != JV_KIND_ARRAY || jv_array_length(jv_copy(offs)) != 2 ||
			take_uint(jv_array_get(jv_copy(offs), 0), &t->begin) ||
			take_uint(jv_array_get(jv_copy(offs), 1), &t->end))
		lp_fail(err, errlen, "tensor '%s': data_offsets is not [begin, end] of "
				"non-negative integers", name);
	else
		rc = 0;
	t->numel = 1;
	for (int i = 0; rc == 0 && i < t->rank; i++) {
		if (take_uint(jv_array_get(jv_copy(shape), i), &t->shape[i]))
			rc = lp_fail(err, errlen, "tensor '%s': shape[%d] is not a non-negative "
					"integer", name, i);
		else if (__builtin_mul_overflow(t->numel, t->shape[i], &t->numel))
			rc = lp_fail(err, errlen, "tensor '%s': shape overflows", name);
	}
	jv_free(dt);
	jv_free(shape);
	jv_free(offs);
	if (rc)
		return rc;
	if (__builtin_mul_overflow(t->numel, lp_dtype_size(t->dtype), &t->nbytes))
		return lp_fail(err, errlen, "tensor '%s': shape overflows", name);
	if (t->end < t->begin || t->end - t->begin != t->nbytes)
		return lp_fail(err, errlen, "tensor '%s': data_offsets [%llu, %llu] do not hold "
				"the %llu bytes its shape and dtype need", name,
				(unsigned long long)t->begin, (unsigned long long)t->end,
				(unsigned long long)t->nbytes);
	if (t->end > datalen)
		return lp_fail(err, errlen, "tensor '%s': data_offsets [%llu, %llu] lie outside "
				"the data area of %llu bytes", name, (unsigned long long)t->begin,
				(unsigned long long)t->end, (unsigned long long)datalen);
	return 0;
}

static int by_offset(const void *a, const void *b)
{
	const lp_st_tensor *x = a, *y = b;
	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	return x->end < y->end ? -1 : x->end > y->end;
}

static int by_name(const void *a, const void *b, void *base)
{
	const lp_st_tensor *t = base;
	return strcmp(t[*(const size_t *)a].name, t[*(const size_t *)b].name);
}

/* Sort into file order; the tensors must tile [0, datalen) exactly. */
static int check_tiling(lp_st_file *f, uint64_t datalen, char *err, size_t errlen)
{
	qsort(f->tensors, f->n, sizeof *f->tensors, by_offset);
	uint64_t at = 0;
	for (size_t i = 0; i < f->n; i++) {
		const lp_st_tensor *t = &f->tensors[i];
		if (t->begin < at)
			return lp_fail(err, errlen, "tensor '%s': data [%llu, %llu) overlaps tensor '%s'",
					t->name, (unsigned long long)t->begin,
					(unsigned long long)t->end, f->tensors[i - 1].name);
		if (t->begin > at)
			return lp_fail(err, errlen, "tensor '%s': bytes [%llu, %llu) before it belong "
					"to no tensor", t->name, (unsigned long long)at,
					(unsigned long long)t->begin);
		at = t->end;
	}
	if (at != datalen)
		return lp_fail(err, errlen, "bytes [%llu, %llu) at the end of the data area belong "
				"to no tensor", (unsigned long long)at, (unsigned long long)datalen);
	return 0;
}

/* Everything after the header is valid UTF-8 JSON starting with '{'. */
static int parse_header(lp_st_file *f, const char *h, size_t hlen, uint64_t datalen,
		char *err, size_t errlen)
{
	long keys = scan_keys(h, hlen, NULL);
	if (keys == -1)
		return lp_fail(err, errlen, "header nests deeper than %d levels", MAX_DEPTH);
	if (keys == -2)
		return lp_fail(err, errlen, "header is not valid JSON: a string follows a value "
				"without ',' or ':'");
	jv top = jv_parse_sized(h, (int)hlen);
	if (jv_get_kind(top) == JV_KIND_INVALID) {
		jv msg = jv_invalid_get_msg(top);
		lp_fail(err, errlen, "header is not valid JSON: %s",
				jv_get_kind(msg) == JV_KIND_STRING ? jv_string_value(msg) : "?");
		jv_free(msg);
		return -1;
	}
	if (jv_get_kind(top) != JV_KIND_OBJECT) {
		jv_free(top);
		return lp_fail(err, errlen, "header is not a JSON object");
	}
	if (jv_object_length(jv_copy(top)) != keys) {
		jv_free(top);
		return report_duplicate(h, hlen, keys, err, errlen);
	}
	int rc = 0;
	f->tensors = lp_calloc(keys, sizeof *f->tensors);
	jv_object_foreach(top, k, v) {
		if (rc) {
			jv_free(k);
			jv_free(v);
		} else if (!strcmp(jv_string_value(k), "__metadata__")) {
			jv_free(k);
			rc = parse_metadata(f, v, err, errlen);
		} else if (!(f->tensors[f->n].name = take_string(k))) {
			jv_free(v);
			rc = lp_fail(err, errlen, "a tensor name contains a NUL byte");
		} else {
			rc = parse_tensor(&f->tensors[f->n++], v, datalen, err, errlen);
		}
	}
	jv_free(top);
	return rc ? rc : check_tiling(f, datalen, err, errlen);
}

int lp_st_parse(const void *buf, size_t n, lp_st_file *f, char *err, size_t errlen)
{
	const uint8_t *p = buf;
	memset(f, 0, sizeof *f);
	f->base = p;
	f->size = n;
	if (n < 8)
		return lp_fail(err, errlen, "file of %zu bytes is too short for a safetensors "
				"header", n);
	uint64_t hlen = 0;
	for (int i = 7; i >= 0; i--)
		hlen = hlen << 8 | p[i];
	if (hlen > LP_ST_MAX_HEADER)
		return lp_fail(err, errlen, "header length %llu exceeds the limit of %u bytes",
				(unsigned long long)hlen, LP_ST_MAX_HEADER);
	if (hlen > n - 8)
		return lp_fail(err, errlen, "header length %llu runs past the end of the file "
				"(%zu bytes)", (unsigned long long)hlen, n);
	if (hlen == 0 || p[8] != '{')
		return lp_fail(err, errlen, "header does not start with '{'");
	size_t bad = utf8_check(p + 8, hlen);
	if (bad < hlen)
		return lp_fail(err, errlen, "header is not valid UTF-8 at byte %zu", 8 + bad);
	f->header_len = hlen;
	uint64_t datalen = n - 8 - hlen;
	if (parse_header(f, (const char *)p + 8, hlen, datalen, err, errlen)) {
		lp_st_free(f);
		return -1;
	}
	f->by_name = lp_malloc(f->n * sizeof *f->by_name);
	for (size_t i = 0; i < f->n; i++) {
		f->by_name[i] = i;
		f->tensors[i].data = p + 8 + hlen + f->tensors[i].begin;
	}
	qsort_r(f->by_name, f->n, sizeof *f->by_name, by_name, f->tensors);
	return 0;
}

void lp_st_free(lp_st_file *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->tensors[i].name);
	for (size_t i = 0; i < 2 * f->nmeta; i++)
		free(f->meta[i]);
	free(f->tensors);
	free(f->by_name);
	free(f->meta);
	f->tensors = NULL;
	f->by_name = NULL;
	f->meta = NULL;
	f->n = f->nmeta = 0;
}

lp_st_file *lp_st_open(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0)
		lp_die(path, "%s", strerror(errno));
	if (!S_ISREG(st.st_mode))
		lp_die(path, "not a regular file (safetensors files are mapped, not streamed)");
	size_t size = st.st_size;
	void *map = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : (void *)"";
	if (map == MAP_FAILED)
		lp_die(path, "cannot map: %s", strerror(errno));
	close(fd);
	lp_st_file *f = lp_malloc(sizeof *f);
	char err[1024];
	if (lp_st_parse(map, size, f, err, sizeof err) != 0)
		lp_die(path, "%s", err);
	f->path = lp_strdup(path);
	f->mapped = size > 0;
	return f;
}

void lp_st_close(lp_st_file *f)
{
	if (!f)
		return;
	if (f->mapped)
		munmap((void *)f->base, f->size);
	lp_st_free(f);
	free(f->path);
	free(f);
}

static const char *tensor_name(const void *ctx, size_t i)
{
	return ((const lp_st_tensor *)ctx)[i].name;
}

const lp_st_tensor *lp_st_find(const lp_st_file *f, const char *name)
{
	long i = lp_find_sorted(f->by_name, f->n, name, tensor_name, f->tensors);
	return i < 0 ? NULL : &f->tensors[i];
}

const lp_st_tensor *lp_st_get(const lp_st_file *f, const char *name)
{
	const lp_st_tensor *t = lp_st_find(f, name);
	if (!t)
		lp_die(f->path, "no tensor '%s'", name);
	return t;
}

const char *lp_st_meta(const lp_st_file *f, const char *key)
{
	for (size_t i = 0; i < f->nmeta; i++)
		if (!strcmp(f->meta[2 * i], key))
			return f->meta[2 * i + 1];
	return NULL;
}

int lp_st_aligned(const lp_st_tensor *t)
{
	return (uintptr_t)t->data % lp_dtype_size(t->dtype) == 0;
}

/* ---- writing ---- */

struct wtensor {
	char *name;
	int dtype, rank;
	uint64_t shape[LP_ST_MAX_RANK];
	uint64_t nbytes;
	const void *data;       /* NULL: streamed */
};

struct lp_st_writer {
	char *path;
	lp_atomic *out;
	struct wtensor *t;
	size_t n, cap;
	char **meta;            /* key, value pairs */
	size_t nmeta, metacap;
	int started;            /* header written */
	size_t cur;             /* tensor being written */
	uint64_t done;          /* its bytes written so far */
};

lp_st_writer *lp_st_writer_new(const char *path)
{
	lp_st_writer *w = lp_calloc(1, sizeof *w);
	w->path = lp_strdup(path);
	w->out = lp_atomic_create(path);
	return w;
}

static void check_string(lp_st_writer *w, const char *what, const char *s)
{
	if (utf8_check((const uint8_t *)s, strlen(s)) < strlen(s))
		lp_die(w->path, "%s '%s' is not valid UTF-8", what, s);
	if (w->started)
		lp_die(w->path, "%s '%s' declared after data was written", what, s);
}

void lp_st_writer_meta(lp_st_writer *w, const char *key, const char *value)
{
	check_string(w, "metadata key", key);
	check_string(w, "metadata value", value);
	for (size_t i = 0; i < w->nmeta; i++)
		if (!strcmp(w->meta[2 * i], key))
			lp_die(w->path, "metadata key '%s' given twice", key);
	lp_grow((void **)&w->meta, &w->metacap, 2 * w->nmeta + 2, sizeof *w->meta);
	w->meta[2 * w->nmeta] = lp_strdup(key);
	w->meta[2 * w->nmeta++ + 1] = lp_strdup(value);
}

void lp_st_writer_add(lp_st_writer *w, const char *name, int dtype, int rank,
		const uint64_t *shape, const void *data)
{
	check_string(w, "tensor", name);
	if (!strcmp(name, "__metadata__"))
		lp_die(w->path, "'__metadata__' cannot name a tensor");
	if (!lp_st_dtype_name(dtype))
		lp_die(w->path, "tensor '%s': unknown dtype %d", name, dtype);
	if (rank < 0 || rank > LP_ST_MAX_RANK)
		lp_die(w->path, "tensor '%s': rank %d is not in [0, %d]", name, rank, LP_ST_MAX_RANK);
	for (size_t i = 0; i < w->n; i++)
		if (!strcmp(w->t[i].name, name))
			lp_die(w->path, "tensor '%s' given twice", name);
	lp_grow((void **)&w->t, &w->cap, w->n + 1, sizeof *w->t);
	struct wtensor *t = &w->t[w->n];
	uint64_t numel = 1;
	for (int i = 0; i < rank; i++)
		if (__builtin_mul_overflow(numel, shape[i], &numel))
			lp_die(w->path, "tensor '%s': shape overflows", name);
	if (__builtin_mul_overflow(numel, lp_dtype_size(dtype), &t->nbytes))
		lp_die(w->path, "tensor '%s': shape overflows", name);
	t->name = lp_strdup(name);
	t->dtype = dtype;
	t->rank = rank;
	if (rank)
		memcpy(t->shape, shape, rank * sizeof *shape);
	t->data = data;
	w->n++;
}

static int serializer_order(const void *a, const void *b)
{
	const struct wtensor *x = a, *y = b;
	int ox = st_types[x->dtype].order, oy = st_types[y->dtype].order;
	return ox != oy ? oy - ox : strcmp(x->name, y->name);
}

void lp_st_writer_sort(lp_st_writer *w)
{
	if (w->started)
		lp_die(w->path, "tensors reordered after data was written");
	qsort(w->t, w->n, sizeof *w->t, serializer_order);
}

/* The header under construction. */
struct sbuf {
	char *p;
	size_t n, cap;
};

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
	lp_grow((void **)&b->p, &b->cap, b->n + n, 1);
	memcpy(b->p + b->n, s, n);
	b->n += n;
}

static void sb_puts(struct sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_u64(struct sbuf *b, uint64_t v)
{
	char tmp[24];
	sb_put(b, tmp, snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v));
}

/* JSON string as serde_json writes it: only '"', '\\' and controls escaped. */
static void sb_json(struct sbuf *b, const char *s)
{
	static const char shortesc[32] = {['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n',
		['\f'] = 'f', ['\r'] = 'r'};
	sb_put(b, "\"", 1);
	for (; *s; s++) {
		unsigned char c = *s;
		char tmp[8];
		if (c == '"' || c == '\\')
			sb_put(b, (char[]){'\\', c}, 2);
		else if (c < 0x20 && shortesc[c])
			sb_put(b, (char[]){'\\', shortesc[c]}, 2);
		else if (c < 0x20)
			sb_put(b, tmp, snprintf(tmp, sizeof tmp, "\\u%04x", c));
		else
			sb_put(b, s, 1);
	}
	sb_put(b, "\"", 1);
}

static void write_header(lp_st_writer *w)
{
	struct sbuf b = {0};
	sb_puts(&b, "{");
	if (w->nmeta) {
		sb_puts(&b, "\"__metadata__\":{");
		for (size_t i = 0; i < w->nmeta; i++) {
			sb_puts(&b, i ? "," : "");
			sb_json(&b, w->meta[2 * i]);
			sb_puts(&b, ":");
			sb_json(&b, w->meta[2 * i + 1]);
		}
		sb_puts(&b, "}");
	}
	uint64_t at = 0;
	for (size_t i = 0; i < w->n; i++) {
		const struct wtensor *t = &w->t[i];
		sb_puts(&b, i || w->nmeta ? "," : "");
		sb_json(&b, t->name);
		sb_puts(&b, ":{\"dtype\":\"");
		sb_puts(&b, lp_st_dtype_name(t->dtype));
		sb_puts(&b, "\",\"shape\":[");
		for (int k = 0; k < t->rank; k++) {
			sb_puts(&b, k ? "," : "");
			sb_u64(&b, t->shape[k]);
		}
		sb_puts(&b, "],\"data_offsets\":[");
		sb_u64(&b, at);
		sb_puts(&b, ",");
		sb_u64(&b, at += t->nbytes);
		sb_puts(&b, "]}");
	}
	sb_puts(&b, "}");
	while (b.n % 8)
		sb_puts(&b, " ");
	if (b.n > LP_ST_MAX_HEADER)
		lp_die(w->path, "header of %zu bytes exceeds the format's limit", b.n);
	uint8_t len[8];
	for (int i = 0; i < 8; i++)
		len[i] = (uint64_t)b.n >> (8 * i);
	FILE *f = lp_atomic_file(w->out);
	lp_fwrite(f, w->path, len, 8);
	lp_fwrite(f, w->path, b.p, b.n);
	free(b.p);
	w->started = 1;
}

const char *lp_st_writer_next(lp_st_writer *w)
{
	if (!w->started)
		write_header(w);
	for (; w->cur < w->n; w->cur++, w->done = 0) {
		const struct wtensor *t = &w->t[w->cur];
		if (t->data)
			lp_fwrite(lp_atomic_file(w->out), w->path, t->data, t->nbytes);
		else if (w->done < t->nbytes)
			return t->name;
	}
	return NULL;
}

void lp_st_writer_write(lp_st_writer *w, const void *p, size_t n)
{
	const char *name = lp_st_writer_next(w);
	if (!n)
		return;
	if (!name)
		lp_die(w->path, "%zu bytes written after the last tensor", n);
	const struct wtensor *t = &w->t[w->cur];
	if (n > t->nbytes - w->done)
		lp_die(w->path, "tensor '%s': %zu bytes written where %llu remain", name, n,
				(unsigned long long)(t->nbytes - w->done));
	lp_fwrite(lp_atomic_file(w->out), w->path, p, n);
	w->done += n;
}

void lp_st_writer_close(lp_st_writer *w)
{
	const char *name = lp_st_writer_next(w);
	if (name)
		lp_die(w->path, "tensor '%s': %llu of its %llu bytes written", name,
				(unsigned long long)w->done, (unsigned long long)w->t[w->cur].nbytes);
	lp_atomic_commit(w->out);
	for (size_t i = 0; i < w->n; i++)
		free(w->t[i].name);
	for (size_t i = 0; i < 2 * w->nmeta; i++)
		free(w->meta[i]);
	free(w->t);
	free(w->meta);
	free(w->path);
	free(w);
}
