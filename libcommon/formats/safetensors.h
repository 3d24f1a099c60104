/* Layer formats/: the bytes of every file and stream format the tools
 * read or write, each in its own file (frames, JSONL, safetensors, GGUF,
 * PyTorch's zip and pickle, the pth writer, SentencePiece's protobuf,
 * in-place JSON edits), on base/ alone. Readers check what they are given
 * and have fuzz targets; no format knows what a LLaMA model is. */

/* safetensors.h: read (mmap, in place) and write safetensors files.
 *
 * The format: a u64 little-endian header length N, N bytes of UTF-8 JSON
 * (an object; its first byte is '{'; it may end in spaces), then the data
 * area. The JSON maps each tensor name to {"dtype", "shape", "data_offsets":
 * [begin, end]} (offsets into the data area) and may hold "__metadata__", a
 * map of strings to strings. Tensors are little-endian, row-major.
 *
 * The reader checks what the format requires and a little more: the
 * header is at most 100 MB and lies inside the file; it is valid UTF-8 and
 * one JSON object; names are unique and hold no NUL; every dtype is one of
 * enum lp_dtype; shapes are non-negative integers, rank <= LP_ST_MAX_RANK;
 * end - begin == numel * dtype size, without overflow; the tensors tile the
 * data area exactly: no overlap, no hole, no trailing bytes (the spec's
 * "entirely indexed, no holes", as the reference implementation enforces).
 * Unknown keys inside a tensor entry are ignored, as the reference does.
 *
 * The writer produces what safetensors' own serializer produces: compact
 * JSON, "__metadata__" first, tensors with contiguous offsets, the header
 * padded with spaces to a multiple of 8 bytes. With lp_st_writer_sort() the
 * tensors are ordered as safetensors orders them (dtype by decreasing width:
 * U64 I64 F64 F32 U32 I32 BF16 F16 U16 I16 I8 U8 BOOL, then name), and the
 * file is byte-identical to safetensors.numpy.save_file() / torch save_file()
 * of the same tensors whenever the metadata has at most one key (the Rust
 * side keeps metadata in a hash map, so its key order is random). With no
 * lp_st_writer_meta() call "__metadata__" is left out, as metadata=None does.
 * Checked against safetensors 0.8.0 by t/t0020-safetensors.t. */
#ifndef LP_SAFETENSORS_H
#define LP_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "base/dtype.h"

#define LP_ST_MAX_RANK 8
#define LP_ST_MAX_HEADER 100000000u     /* the reference implementation's limit */

typedef struct {
	char *name;             /* NUL-terminated UTF-8 */
	int dtype;              /* enum lp_dtype */
	int rank;               /* 0 .. LP_ST_MAX_RANK */
	uint64_t shape[LP_ST_MAX_RANK];
	uint64_t numel;         /* product of shape (1 for rank 0) */
	uint64_t nbytes;        /* numel * lp_dtype_size(dtype) */
	uint64_t begin, end;    /* data_offsets, relative to the data area */
	/* nbytes in place in the file. Aligned to the element size when the
	 * writer padded the header and ordered tensors by width (safetensors
	 * >= 0.3 and this writer do); an old file may hold unaligned data, so
	 * check before casting (lp_st_aligned). */
	const void *data;
} lp_st_tensor;

typedef struct {
	char *path;             /* the file, for messages; NULL after lp_st_parse */
	const uint8_t *base;    /* the whole file */
	size_t size;
	size_t header_len;      /* N: the data area starts at base + 8 + N */
	lp_st_tensor *tensors;  /* n of them, in file order (by data offset) */
	size_t n;
	size_t *by_name;        /* indices into tensors, sorted by name */
	char **meta;            /* nmeta pairs: meta[2i] key, meta[2i + 1] value */
	size_t nmeta;
	int mapped;
} lp_st_file;

/* Map path read-only and check it; dies "path: tensor 'x': what" on any
 * error. Tensor data stays in the mapping, never copied. */
lp_st_file *lp_st_open(const char *path);
/* Unmap and free everything, tensor names and data pointers included. */
void lp_st_close(lp_st_file *f);

/* Same checks over n bytes in memory (not copied; they must outlive *out).
 * 0 and *out filled, or -1 with a one-line message in err and nothing left
 * to free. Never dies on bad input (the fuzz target's entry point). */
int lp_st_parse(const void *buf, size_t n, lp_st_file *out, char *err, size_t errlen);
/* Free what lp_st_parse allocated (not buf). */
void lp_st_free(lp_st_file *f);

/* The tensor called name, or NULL (binary search). */
const lp_st_tensor *lp_st_find(const lp_st_file *f, const char *name);
/* Same, dying "path: no tensor 'name'" when it is absent. */
const lp_st_tensor *lp_st_get(const lp_st_file *f, const char *name);
/* Metadata value for key, or NULL. */
const char *lp_st_meta(const lp_st_file *f, const char *key);
/* Is t's data aligned for its element type? */
int lp_st_aligned(const lp_st_tensor *t);
/* "F32", "BF16", ...: the format's dtype names; NULL if unknown. */
const char *lp_st_dtype_name(int dtype);

/* Writing. The output appears atomically at path on lp_st_writer_close()
 * (lp_atomic_*); a run that dies before leaves nothing there.
 *
 *   w = lp_st_writer_new(path);
 *   lp_st_writer_meta(w, "format", "pt");
 *   lp_st_writer_add(w, name, dtype, rank, shape, data);   one per tensor
 *   lp_st_writer_close(w);
 *
 * To stream (lora-merge: one tensor in memory at a time), declare every
 * tensor first with data NULL, then produce them in file order:
 *
 *   while ((name = lp_st_writer_next(w))) {
 *           ... compute tensor name ...
 *           lp_st_writer_write(w, buf, nbytes);   in one or more pieces
 *   }
 *   lp_st_writer_close(w);
 *
 * Declaration errors (unknown dtype, rank, duplicate or bad name, size
 * overflow) and wrong byte counts die naming path and the tensor. */
typedef struct lp_st_writer lp_st_writer;
lp_st_writer *lp_st_writer_new(const char *path);
/* A "__metadata__" entry; written in the order given. */
void lp_st_writer_meta(lp_st_writer *w, const char *key, const char *value);
/* Declare the next tensor. data: its bytes, held by pointer (not copied)
 * until written, or NULL to supply them with lp_st_writer_write. */
void lp_st_writer_add(lp_st_writer *w, const char *name, int dtype, int rank,
		const uint64_t *shape, const void *data);
/* Reorder the declared tensors as safetensors' serializer does (see top). */
void lp_st_writer_sort(lp_st_writer *w);
/* Writes the header on the first call (no add/meta/sort after), then every
 * tensor given with data up to the next one to stream. Returns that one's
 * name (tensors of 0 bytes are never returned) or NULL when all are done. */
const char *lp_st_writer_next(lp_st_writer *w);
/* n more bytes of the current streamed tensor (never past its end). */
void lp_st_writer_write(lp_st_writer *w, const void *p, size_t n);
/* Write what is left, check every tensor is complete, commit, free. */
void lp_st_writer_close(lp_st_writer *w);

#endif
