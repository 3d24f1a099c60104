/* gguf.c: the GGUF v3 writer.
 *
 *   "GGUF" u32 version=3, u64 n_tensors, u64 n_kv
 *   n_kv x (string key, u32 type, value)
 *   n_tensors x (string name, u32 n_dims, u64 ne[n_dims] innermost first,
 *                u32 ggml type, u64 offset from the data start)
 *   zero padding to general.alignment (32), then the tensors, each
 *   starting at an aligned offset.
 * Strings are u64 length + bytes, little-endian throughout. */
#include "formats/gguf.h"
#include "base/common.h"
#include "base/half.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { T_U32 = 4, T_I32 = 5, T_F32 = 6, T_BOOL = 7, T_STR = 8, T_ARR = 9 };

typedef struct { char *p; size_t n, cap; } buf;

static void put(buf *b, const void *p, size_t n)
{
	lp_grow((void **)&b->p, &b->cap, b->n + n, 1);
	memcpy(b->p + b->n, p, n);
	b->n += n;
}
static void put_u32(buf *b, uint32_t v) { unsigned char c[4]; for (int i = 0; i < 4; i++) c[i] = v >> 8 * i; put(b, c, 4); }
static void put_u64(buf *b, uint64_t v) { unsigned char c[8]; for (int i = 0; i < 8; i++) c[i] = v >> 8 * i; put(b, c, 8); }
static void put_str(buf *b, const char *s) { size_t n = strlen(s); put_u64(b, n); put(b, s, n); }
static void put_f32(buf *b, float f) { put_u32(b, lp_f32_bits(f)); }

struct lp_gguf_writer {
	buf kv, info;
	uint64_t n_kv, n_tensors, data_size;
	uint64_t *sizes;   /* bytes of each tensor */
	size_t cap;
	uint64_t next;     /* index of the next tensor to write */
	uint64_t part;     /* bytes of it written by lp_gguf_write_tensor_part */
};

lp_gguf_writer *lp_gguf_new(void) { return lp_calloc(1, sizeof(lp_gguf_writer)); }

void lp_gguf_free(lp_gguf_writer *w)
{
	free(w->kv.p);
	free(w->info.p);
	free(w->sizes);
	free(w);
}

static void key(lp_gguf_writer *w, const char *k, uint32_t type)
{
	put_str(&w->kv, k);
	put_u32(&w->kv, type);
	w->n_kv++;
}

void lp_gguf_kv_u32(lp_gguf_writer *w, const char *k, uint32_t v) { key(w, k, T_U32); put_u32(&w->kv, v); }
void lp_gguf_kv_i32(lp_gguf_writer *w, const char *k, int32_t v) { key(w, k, T_I32); put_u32(&w->kv, (uint32_t)v); }
void lp_gguf_kv_f32(lp_gguf_writer *w, const char *k, float v) { key(w, k, T_F32); put_f32(&w->kv, v); }
void lp_gguf_kv_str(lp_gguf_writer *w, const char *k, const char *v) { key(w, k, T_STR); put_str(&w->kv, v); }

void lp_gguf_kv_bool(lp_gguf_writer *w, const char *k, int v)
{
	unsigned char c = !!v;
	key(w, k, T_BOOL);
	put(&w->kv, &c, 1);
}

static void arr(lp_gguf_writer *w, const char *k, uint32_t type, size_t n)
{
	key(w, k, T_ARR);
	put_u32(&w->kv, type);
	put_u64(&w->kv, n);
}

void lp_gguf_kv_arr_str(lp_gguf_writer *w, const char *k, const char *const *v, size_t n)
{
	arr(w, k, T_STR, n);
	for (size_t i = 0; i < n; i++)
		put_str(&w->kv, v[i]);
}

void lp_gguf_kv_arr_f32(lp_gguf_writer *w, const char *k, const float *v, size_t n)
{
	arr(w, k, T_F32, n);
	for (size_t i = 0; i < n; i++)
		put_f32(&w->kv, v[i]);
}

void lp_gguf_kv_arr_i32(lp_gguf_writer *w, const char *k, const int32_t *v, size_t n)
{
	arr(w, k, T_I32, n);
	for (size_t i = 0; i < n; i++)
		put_u32(&w->kv, (uint32_t)v[i]);
}

size_t lp_ggml_nbytes(int type, uint64_t n)
{
	switch (type) {
	case LP_GGML_F32: return n * 4;
	case LP_GGML_F16:
	case LP_GGML_BF16: return n * 2;
	case LP_GGML_Q8_0: return n / LP_Q8_0_BLOCK * (2 + LP_Q8_0_BLOCK);
	}
	return 0;
}

#define ALIGN(n) (((n) + LP_GGUF_ALIGN - 1) / LP_GGUF_ALIGN * LP_GGUF_ALIGN)

int lp_gguf_add_tensor(lp_gguf_writer *w, const char *name, int type, int rank,
		const uint64_t *shape)
{
	uint64_t n = 1;
	for (int i = 0; i < rank; i++)
		n *= shape[i];
	if (!lp_ggml_nbytes(type, 1 * LP_Q8_0_BLOCK))
		lp_die(name, "unsupported ggml type %d", type);
	if (type == LP_GGML_Q8_0 && (rank < 1 || shape[rank - 1] % LP_Q8_0_BLOCK))
		lp_die(name, "q8_0 needs rows that are a multiple of %d elements", LP_Q8_0_BLOCK);
	put_str(&w->info, name);
	put_u32(&w->info, rank);
	for (int i = rank - 1; i >= 0; i--) /* ggml's ne[0] is the innermost dimension */
		put_u64(&w->info, shape[i]);
	put_u32(&w->info, type);
	put_u64(&w->info, w->data_size);
	lp_grow((void **)&w->sizes, &w->cap, w->n_tensors + 1, sizeof *w->sizes);
	w->sizes[w->n_tensors] = lp_ggml_nbytes(type, n);
	w->data_size += ALIGN(w->sizes[w->n_tensors]);
	return (int)w->n_tensors++;
}

static void pad(FILE *f, const char *fname, uint64_t n)
{
	static const char zeros[LP_GGUF_ALIGN];
	lp_fwrite(f, fname, zeros, ALIGN(n) - n);
}

void lp_gguf_write_header(lp_gguf_writer *w, FILE *f, const char *fname)
{
	buf h = {0};
	put(&h, "GGUF", 4);
	put_u32(&h, 3);
	put_u64(&h, w->n_tensors);
	put_u64(&h, w->n_kv);
	lp_fwrite(f, fname, h.p, h.n);
	lp_fwrite(f, fname, w->kv.p, w->kv.n);
	lp_fwrite(f, fname, w->info.p, w->info.n);
	pad(f, fname, h.n + w->kv.n + w->info.n);
	free(h.p);
}

void lp_gguf_write_tensor(lp_gguf_writer *w, FILE *f, const char *fname, int idx,
		const void *data)
{
	if ((uint64_t)idx != w->next || w->next >= w->n_tensors)
		lp_die(fname, "gguf: tensor %d written out of order", idx);
	lp_fwrite(f, fname, data, w->sizes[idx]);
	pad(f, fname, w->sizes[idx]);
	w->next++;
}

void lp_gguf_write_tensor_part(lp_gguf_writer *w, FILE *f, const char *fname, int idx,
		const void *data, size_t n)
{
	if ((uint64_t)idx != w->next || w->next >= w->n_tensors)
		lp_die(fname, "gguf: tensor %d written out of order", idx);
	if (n > w->sizes[idx] - w->part)
		lp_die(fname, "gguf: tensor %d: more bytes than declared", idx);
	lp_fwrite(f, fname, data, n);
	w->part += n;
	if (w->part == w->sizes[idx]) {
		pad(f, fname, w->sizes[idx]);
		w->part = 0;
		w->next++;
	}
}

void lp_quantize_q8_0(const float *x, size_t n, void *out)
{
	unsigned char *o = out;
	for (size_t b = 0; b < n / LP_Q8_0_BLOCK; b++, x += LP_Q8_0_BLOCK, o += 2 + LP_Q8_0_BLOCK) {
		float amax = 0;
		for (int i = 0; i < LP_Q8_0_BLOCK; i++)
			amax = fmaxf(amax, fabsf(x[i]));
		float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
		uint16_t dh = lp_f32_to_f16(d);
		o[0] = dh & 0xff;
		o[1] = dh >> 8;
		for (int i = 0; i < LP_Q8_0_BLOCK; i++)
			o[2 + i] = (unsigned char)(int8_t)roundf(x[i] * id);
	}
}
