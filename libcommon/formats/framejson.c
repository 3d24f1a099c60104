/* framejson.c: frames and ids as JSON lines (see framejson.h). */
#include "formats/framejson.h"
#include "base/common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <jv.h>

/* A growing output line. */
typedef struct {
	char *p;
	size_t n, cap;
} buf;

static void put(buf *b, const char *s, size_t n)
{
	lp_grow((void **)&b->p, &b->cap, b->n + n + 1, 1);
	memcpy(b->p + b->n, s, n);
	b->n += n;
}

static void put_str(buf *b, const char *s) { put(b, s, strlen(s)); }

static void put_i64(buf *b, long long v)
{
	char t[24];
	put(b, t, snprintf(t, sizeof t, "%lld", v));
}

static void put_u64(buf *b, unsigned long long v)
{
	char t[24];
	put(b, t, snprintf(t, sizeof t, "%llu", v));
}

/* Shortest of %.{lo..hi}g that reads back to v (as a float when single). */
static void put_real(buf *b, double v, int single)
{
	char t[40];
	if (!isfinite(v)) {
		put_str(b, "null");
		return;
	}
	int lo = single ? 6 : 15, hi = single ? 9 : 17, n = 0;
	for (int prec = lo; prec <= hi; prec++) {
		n = snprintf(t, sizeof t, "%.*g", prec, v);
		double back = strtod(t, NULL);
		if (single ? (float)back == (float)v : back == v)
			break;
	}
	put(b, t, n);
}

static float half_to_float(uint16_t h)
{
	uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1f, m = h & 0x3ff, bits;
	if (e == 0x1f) {
		bits = sign | 0x7f800000u | m << 13;
	} else if (e) {
		bits = sign | (e + 112) << 23 | m << 13;
	} else if (m) { /* subnormal: normalise */
		e = 113;
		while (!(m & 0x400)) {
			m <<= 1;
			e--;
		}
		bits = sign | e << 23 | (m & 0x3ff) << 13;
	} else {
		bits = sign;
	}
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

static float bf16_to_float(uint16_t h)
{
	uint32_t bits = (uint32_t)h << 16;
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

/* Element i of a frame's payload. */
static void put_elem(buf *b, int dtype, const void *data, uint64_t i)
{
	const unsigned char *p = (const unsigned char *)data + i * lp_dtype_size(dtype);
	union { float f; double d; int8_t i8; int16_t i16; int32_t i32; int64_t i64;
		uint8_t u8; uint16_t u16; uint32_t u32; uint64_t u64; } v;
	memcpy(&v, p, lp_dtype_size(dtype));
	switch (dtype) {
	case LP_F32: put_real(b, v.f, 1); break;
	case LP_F64: put_real(b, v.d, 0); break;
	case LP_F16: put_real(b, half_to_float(v.u16), 1); break;
	case LP_BF16: put_real(b, bf16_to_float(v.u16), 1); break;
	case LP_I8: put_i64(b, v.i8); break;
	case LP_I16: put_i64(b, v.i16); break;
	case LP_I32: put_i64(b, v.i32); break;
	case LP_I64: put_i64(b, v.i64); break;
	case LP_U8: put_u64(b, v.u8); break;
	case LP_U16: put_u64(b, v.u16); break;
	case LP_U32: put_u64(b, v.u32); break;
	case LP_U64: put_u64(b, v.u64); break;
	case LP_BOOL: put_str(b, v.u8 ? "true" : "false"); break;
	default: put_str(b, "null"); break;
	}
}

/* Dimensions dim.. of f starting at element *next (row-major order). */
static void put_dims(buf *b, const lp_frame *f, int dim, uint64_t *next)
{
	if (dim == f->rank) {
		put_elem(b, f->dtype, f->data, (*next)++);
		return;
	}
	put(b, "[", 1);
	for (uint64_t i = 0; i < f->shape[dim]; i++) {
		if (i)
			put(b, ",", 1);
		put_dims(b, f, dim + 1, next);
	}
	put(b, "]", 1);
}

static void put_key(buf *b, const char *name)
{
	jv s = jv_dump_string(jv_string(name), 0);
	put_str(b, jv_string_value(s));
	jv_free(s);
	put(b, ":", 1);
}

/* How many arrays put_dims opens for f: large only when an empty dimension
 * follows big ones (a payload of 0 bytes cannot bound it). */
static uint64_t array_count(const lp_frame *f)
{
	uint64_t total = 0, rows = 1;
	for (int d = 0; d < f->rank && rows; d++) {
		total += rows;
		if (total > (1ull << 32) || (f->shape[d] && rows > (1ull << 32) / f->shape[d]))
			return UINT64_MAX;
		rows *= f->shape[d];
	}
	return total;
}

void lp_record_print_json(FILE *f, const char *fname, const lp_record *rec)
{
	buf b = {0};
	put(&b, "{", 1);
	for (int i = 0; i < rec->n; i++) {
		uint64_t next = 0;
		if (array_count(&rec->frames[i]) > (1ull << 28))
			lp_die(NULL, "frame '%s' at byte %llu: shape too large to print",
					rec->frames[i].name, (unsigned long long)rec->frames[i].offset);
		if (i)
			put(&b, ",", 1);
		put_key(&b, rec->frames[i].name);
		put_dims(&b, &rec->frames[i], 0, &next);
	}
	put(&b, "}\n", 2);
	lp_fwrite(f, fname, b.p, b.n);
	free(b.p);
}

void lp_ids_print_json(FILE *f, const char *fname, const char *key,
		const int32_t *ids, size_t n)
{
	buf b = {0};
	put(&b, "{", 1);
	put_key(&b, key);
	put(&b, "[", 1);
	for (size_t i = 0; i < n; i++) {
		if (i)
			put(&b, ",", 1);
		put_i64(&b, ids[i]);
	}
	put(&b, "]}\n", 3);
	lp_fwrite(f, fname, b.p, b.n);
	free(b.p);
}
