/* tokbatch.h: a batch of texts encoded on all threads, results in order.
 *
 * Item i becomes [bos] Encode(text) [Encode(target)] [eos] in items[i].ids.
 * Items are encoded independently (OpenMP, dynamic schedule), so the result
 * is the same for any number of threads. */
#ifndef LP_TOKBATCH_H
#define LP_TOKBATCH_H

#include <stddef.h>
#include <stdint.h>
#include "text/spm.h"

typedef struct {
	char *text;         /* in (owned by the caller) */
	char *target;       /* in, may be NULL: encoded after text */
	int32_t *ids;       /* out: malloc'ed, the caller frees */
	size_t n, cap;
	size_t nprompt;     /* ids up to the end of text's, bos included */
	size_t nenc;        /* ids that Encode gave (no bos, no eos) */
	size_t nchars;      /* UTF-8 characters of text and target */
	char *err;          /* out: set (malloc'ed) when encoding failed */
} lp_tok_item;

/* Encode items[0, n); bos and eos are ids to add, or -1 for none. Returns
 * the index of the first item that failed (its err says why), or -1. */
long lp_tok_encode_batch(const lp_spm *m, lp_tok_item *items, size_t n, int bos, int eos);

/* The same as OpenMP tasks, for a caller inside a parallel region that
 * goes on with other work (reading the next batch) and waits for them
 * with "omp taskwait" before it reads the results; lp_tok_first_error
 * then gives what lp_tok_encode_batch returns. */
void lp_tok_encode_tasks(const lp_spm *m, lp_tok_item *items, size_t n, int bos, int eos);
long lp_tok_first_error(const lp_tok_item *items, size_t n);

#endif
