/* gguf.h: writing GGUF files (version 3), the format llama.cpp loads.
 *
 * Usage: set metadata with lp_gguf_kv_*, declare every tensor with
 * lp_gguf_add_tensor (shape in row-major order, outermost first, as
 * safetensors and numpy give it; GGUF stores it reversed), then write the
 * header and each tensor's data in declaration order. Data offsets are
 * planned up front, so tensors can be produced one at a time. */
#ifndef LP_GGUF_H
#define LP_GGUF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ggml tensor types we write */
enum lp_ggml_type { LP_GGML_F32 = 0, LP_GGML_F16 = 1, LP_GGML_Q8_0 = 8, LP_GGML_BF16 = 30 };
#define LP_GGUF_ALIGN 32
#define LP_Q8_0_BLOCK 32  /* elements per block; a block is 2 + 32 bytes */

typedef struct lp_gguf_writer lp_gguf_writer;

lp_gguf_writer *lp_gguf_new(void);
void lp_gguf_free(lp_gguf_writer *w);

void lp_gguf_kv_u32(lp_gguf_writer *w, const char *key, uint32_t v);
void lp_gguf_kv_i32(lp_gguf_writer *w, const char *key, int32_t v);
void lp_gguf_kv_f32(lp_gguf_writer *w, const char *key, float v);
void lp_gguf_kv_bool(lp_gguf_writer *w, const char *key, int v);
void lp_gguf_kv_str(lp_gguf_writer *w, const char *key, const char *v);
void lp_gguf_kv_arr_str(lp_gguf_writer *w, const char *key, const char *const *v, size_t n);
void lp_gguf_kv_arr_f32(lp_gguf_writer *w, const char *key, const float *v, size_t n);
void lp_gguf_kv_arr_i32(lp_gguf_writer *w, const char *key, const int32_t *v, size_t n);

/* Bytes a tensor of n elements takes in type t (n must be a multiple of 32
 * for Q8_0); 0 for a type we do not write. */
size_t lp_ggml_nbytes(int type, uint64_t n);

/* Declare a tensor; returns its index. Dies on a bad type or a Q8_0 row
 * length that is not a multiple of 32. */
int lp_gguf_add_tensor(lp_gguf_writer *w, const char *name, int type, int rank,
		const uint64_t *shape);
/* Header, metadata, tensor table and padding. */
void lp_gguf_write_header(lp_gguf_writer *w, FILE *f, const char *fname);
/* Data of tensor idx (the next in order), already in its ggml type. */
void lp_gguf_write_tensor(lp_gguf_writer *w, FILE *f, const char *fname, int idx,
		const void *data);

/* The same in pieces of n bytes, in order; the tensor is done (and padded)
 * when all its bytes are written. For tensors produced block by block. */
void lp_gguf_write_tensor_part(lp_gguf_writer *w, FILE *f, const char *fname, int idx,
		const void *data, size_t n);

/* Q8_0 as ggml's reference quantizer: per 32 elements an f16 scale
 * d = max|x| / 127 and int8 round(x / d), half away from zero. */
void lp_quantize_q8_0(const float *x, size_t n, void *out);

#endif
