/* tokbatch.c: batches of texts encoded on all threads (see tokbatch.h). */
#include "text/tokbatch.h"
#include "base/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Number of UTF-8 characters in s[0, n). */
static size_t utf8_chars(const char *s, size_t n)
{
	size_t c = 0;
	for (size_t i = 0; i < n; i++)
		c += ((unsigned char)s[i] & 0xc0) != 0x80;
	return c;
}

static void push(lp_tok_item *it, int32_t id)
{
	lp_grow((void **)&it->ids, &it->cap, it->n + 1, sizeof *it->ids);
	it->ids[it->n++] = id;
}

/* Append Encode(s) to it; -1 with it->err set on failure. */
static int encode_into(const lp_spm *m, lp_tok_item *it, const char *s)
{
	char err[512];
	size_t before = it->n, len = strlen(s);
	if (lp_spm_encode(m, s, len, &it->ids, &it->n, &it->cap, err, sizeof err)) {
		it->err = lp_strdup(err);
		return -1;
	}
	for (size_t k = before; k < it->n; k++)
		if (it->ids[k] < 0 || it->ids[k] >= lp_spm_size(m)) {
			snprintf(err, sizeof err, "sentencepiece gave id %d, outside the vocabulary",
					it->ids[k]);
			it->err = lp_strdup(err);
			return -1;
		}
	it->nenc += it->n - before;
	it->nchars += utf8_chars(s, len);
	return 0;
}

static void encode_item(const lp_spm *m, lp_tok_item *it, int bos, int eos)
{
	it->n = it->nenc = it->nchars = it->nprompt = 0;
	it->err = NULL;
	if (bos >= 0)
		push(it, bos);
	if (encode_into(m, it, it->text))
		return;
	it->nprompt = it->n;
	if (it->target && encode_into(m, it, it->target))
		return;
	if (eos >= 0)
		push(it, eos);
}

#define TASK_ITEMS 16

void lp_tok_encode_tasks(const lp_spm *m, lp_tok_item *items, size_t n, int bos, int eos)
{
	for (size_t i0 = 0; i0 < n; i0 += TASK_ITEMS) {
		size_t i1 = i0 + TASK_ITEMS < n ? i0 + TASK_ITEMS : n;
		#pragma omp task firstprivate(i0, i1)
		for (size_t i = i0; i < i1; i++)
			encode_item(m, &items[i], bos, eos);
	}
}

long lp_tok_first_error(const lp_tok_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (items[i].err)
			return (long)i;
	return -1;
}

long lp_tok_encode_batch(const lp_spm *m, lp_tok_item *items, size_t n, int bos, int eos)
{
	long count = (long)n;
	#pragma omp parallel for schedule(dynamic, 16) if (count > 16)
	for (long i = 0; i < count; i++)
		encode_item(m, &items[i], bos, eos);
	for (long i = 0; i < count; i++)
		if (items[i].err)
			return i;
	return -1;
}
