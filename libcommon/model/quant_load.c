/* quant_load.c: quantize Linear weights block by block while loading. */
#include "model/quant_load.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/common.h"

/* Rows per block: about 4 Mi elements, whole blocks of LP_QBLOCKSIZE. */
#define CHUNK_ELEMS (1 << 22)

/* Give back the whole pages of [p, p + n) of a mapped file. */
static void drop_pages(const void *p, size_t n)
{
	static size_t page;
	if (!page)
		page = (size_t)sysconf(_SC_PAGESIZE);
	uintptr_t a = ((uintptr_t)p + page - 1) & ~(uintptr_t)(page - 1);
	uintptr_t b = ((uintptr_t)p + n) & ~(uintptr_t)(page - 1);
	if (b > a)
		madvise((void *)a, b - a, MADV_DONTNEED);
}

lp_qweight *lp_quantize_tensor(const lp_mf_tensor *t, const void *data,
		void (*done)(const void *p, size_t n), int qtype)
{
	if (t->rank != 2)
		lp_die(t->name, "a quantized weight is a matrix, not rank %d", t->rank);
	if (t->dtype != LP_F32 && t->dtype != LP_BF16 && t->dtype != LP_F16)
		lp_die(t->name, "dtype %s is not a float weight type", lp_dtype_name(t->dtype));
	int64_t rows = (int64_t)t->shape[0], cols = (int64_t)t->shape[1];
	lp_qweight *q = lp_calloc(1, sizeof *q);
	lp_qweight_alloc(q, qtype, rows, cols, LP_QBLOCKSIZE);
	int64_t chunk = CHUNK_ELEMS / cols;
	chunk = (chunk / LP_QBLOCKSIZE + 1) * LP_QBLOCKSIZE;   /* whole blocks, at least one */
	size_t es = lp_dtype_size(t->dtype);
	for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
		int64_t nr = rows - r0 < chunk ? rows - r0 : chunk;
		const char *p = (const char *)data + (size_t)(r0 * cols) * es;
		lp_quantize_rows(q, p, t->dtype, r0, nr);
		if (done)
			done(p, (size_t)(nr * cols) * es);
	}
	if (qtype != LP_QINT8)
		lp_qweight_compress(q);
	return q;
}

lp_weight lp_qweights_load(lp_qweights *set, const lp_mf_tensor *t, int64_t rows, int64_t cols,
		int qtype)
{
	if (t->rank != 2 || (int64_t)t->shape[0] != rows || (int64_t)t->shape[1] != cols)
		lp_die(t->name, "unexpected shape (rank %d, %llu x %llu), want %lld x %lld", t->rank,
				(unsigned long long)t->shape[0],
				(unsigned long long)(t->rank > 1 ? t->shape[1] : 1),
				(long long)rows, (long long)cols);
	const void *src = lp_mf_data(t);
	/* not a copy lp_mf_data made: pages of the file's mapping */
	lp_qweight *q = lp_quantize_tensor(t, src, src == t->data ? drop_pages : NULL, qtype);
	lp_mf_release(t);
	if (qtype == LP_QINT8)
		q->threshold = set->int8_threshold;
	size_t cap = (size_t)set->cap;
	lp_grow((void **)&set->w, &cap, (size_t)set->n + 1, sizeof *set->w);
	set->cap = (int)cap;
	set->w[set->n++] = q;
	return lp_qweight_view(q);
}

size_t lp_qweights_bytes(const lp_qweights *set)
{
	size_t b = 0;
	for (int i = 0; i < set->n; i++)
		b += lp_qweight_bytes(set->w[i]);
	return b;
}

void lp_qweights_free(lp_qweights *set)
{
	for (int i = 0; i < set->n; i++) {
		lp_qweight_free(set->w[i]);
		free(set->w[i]);
	}
	free(set->w);
	memset(set, 0, sizeof *set);
}
