/* bpe.h: SentencePiece BPE encoding in C, for the models it covers.
 *
 * lp_bpe_encode gives the ids that sentencepiece's Encode gives for a BPE
 * model, without the library's per-call allocations and string hashing:
 *
 *   1. normalization, as the model's NormalizerSpec says: user-defined
 *      symbols pass through; otherwise the longest match in the
 *      precompiled character map (when the model has one) replaces its
 *      bytes; malformed UTF-8 becomes U+FFFD, one byte at a time; the
 *      dummy prefix, extra-whitespace removal and the escaping of ' ' as
 *      U+2581 follow;
 *   2. the text split into characters (a user-defined symbol is one unit
 *      that never merges), then repeatedly the adjacent pair whose
 *      concatenation is a piece of the highest score is merged, the
 *      leftmost first among equal scores;
 *   3. each resulting piece's id; a piece not in the vocabulary is
 *      unknown: its UTF-8 bytes as <0xXX> pieces with byte fallback,
 *      otherwise one <unk> for each run of unknown pieces.
 *
 * The library stays the truth: lp_bpe_new declines (NULL, saying why)
 * every model outside what this encoder reproduces exactly (not BPE;
 * UNUSED pieces, whose resegmentation it does not do; NaN scores; a
 * missing <unk> or byte piece; a malformed character map), and the test
 * suite compares the two encoders on random text and on MSRA for many
 * models, and both with Python's sentencepiece. */
#ifndef LP_BPE_H
#define LP_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "formats/spm_model.h"

typedef struct lp_bpe lp_bpe;

/* An encoder for model m, which must outlive it; NULL when the model is
 * outside what it covers, with the reason in why. */
lp_bpe *lp_bpe_new(const lp_spm_model *m, char *why, size_t whylen);
void lp_bpe_free(lp_bpe *b);

/* Encode text[0, len) (any bytes), appending ids to *ids (capacity *cap,
 * grown with realloc, caller frees) after the *n already there. Safe from
 * several threads at once on one encoder. 0, or -1 when out of memory (or
 * the normalized text passes 512 MB). */
int lp_bpe_encode(const lp_bpe *b, const char *text, size_t len,
		  int32_t **ids, size_t *n, size_t *cap);

#endif
