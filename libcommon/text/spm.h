/* Layer text/: text to token ids and back: the sentencepiece wrapper
 * (spm.h over spm.cc, the one C++ file), prompt templates, batch encoding
 * on all threads, and the instruction builders behind mkinstr. On base/;
 * knows no model. */

/* spm.h: a small C interface to the sentencepiece library.
 *
 * The sentencepiece model is the truth for tokenization: these calls are
 * wrappers over sentencepiece::SentencePieceProcessor, with plain Encode
 * (no BOS/EOS added) and Decode. Encode of a BPE model is done by the
 * built-in encoder of text/bpe.h when it covers the model (the same ids,
 * some ten times faster); LP_SPM_LIBRARY=1 in the environment leaves
 * every model to the library. A loaded model is read-only, so
 * lp_spm_encode and lp_spm_decode may run on one model from several
 * threads at once. No call dies or throws: failures return an error
 * message in err (err may be NULL). */
#ifndef LP_SPM_H
#define LP_SPM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lp_spm lp_spm;

/* Load a .model file (a serialized ModelProto). NULL on failure, with a
 * message naming path in err. */
lp_spm *lp_spm_load(const char *path, char *err, size_t errlen);
void lp_spm_free(lp_spm *m);

int lp_spm_size(const lp_spm *m);       /* number of pieces (the vocabulary) */
/* Which encoder lp_spm_encode uses: "built-in BPE", or "the sentencepiece
 * library (why)". */
const char *lp_spm_encoder(const lp_spm *m);
int lp_spm_bos_id(const lp_spm *m);     /* -1 when the model has none */
int lp_spm_eos_id(const lp_spm *m);
int lp_spm_unk_id(const lp_spm *m);
int lp_spm_pad_id(const lp_spm *m);
/* The piece of id (NUL-terminated, owned by m); NULL if id is out of range. */
const char *lp_spm_id_to_piece(const lp_spm *m, int id);

/* Encode text[0, len) (UTF-8) to ids, appended to *ids (of capacity *cap,
 * grown with realloc, caller frees) after the *n already there; *n is
 * updated. Returns 0, or -1 with a message in err. */
int lp_spm_encode(const lp_spm *m, const char *text, size_t len,
		int32_t **ids, size_t *n, size_t *cap, char *err, size_t errlen);

/* Decode n ids to text: a malloc'ed NUL-terminated string (*len set when
 * len is not NULL), or NULL with a message in err (an id out of range). */
char *lp_spm_decode(const lp_spm *m, const int32_t *ids, size_t n, size_t *len,
		char *err, size_t errlen);

/* Where the tokenizer is, by the project's defaults: model_file (-m) when
 * given, else <model_dir>/tokenizer.model (-M), else
 * $LLAMAPIPE_MODEL/tokenizer.model. A malloc'ed path, or NULL when none of
 * the three is set. */
char *lp_spm_default_path(const char *model_file, const char *model_dir);

#ifdef __cplusplus
}
#endif

#endif
