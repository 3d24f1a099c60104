/* spm_model.h: SentencePiece ModelProto, read and written by hand.
 *
 * A .model file is one protobuf message (sentencepiece_model.proto):
 *
 *   ModelProto      1 pieces (repeated SentencePiece)  2 trainer_spec
 *                   3 normalizer_spec  4 self_test_data  5 denormalizer_spec
 *   SentencePiece   1 piece (string)  2 score (float)  3 type (enum)
 *   TrainerSpec     3 model_type  24 treat_whitespace_as_suffix
 *                   35 byte_fallback  40..43 unk/bos/eos/pad id
 *   NormalizerSpec  2 precompiled_charsmap  3 add_dummy_prefix
 *                   4 remove_extra_whitespaces  5 escape_whitespaces
 *
 * lp_spm_model_parse() checks the whole wire format (varints, lengths,
 * wire types, nested messages, groups), keeps each piece with the raw bytes
 * of its SentencePiece message, decodes the few TrainerSpec and
 * NormalizerSpec fields above, and keeps every other top-level field's raw
 * bytes. lp_spm_model_serialize() writes what Python's protobuf (upb)
 * writes for the same message: the pieces first, then fields 2, 3 and 5 in
 * field-number order, then every other field (4, extensions, unknown ones)
 * in the order read. Kept pieces are written from their original bytes;
 * pieces added by lp_spm_model_add() are encoded as Python encodes
 * `p = ModelProto.SentencePiece(); p.piece = s; p.score = 0`: the piece
 * field, an explicit score field of 0.0, and a type field only when the
 * type is not NORMAL. For a canonically encoded input (what every
 * SentencePiece trainer and protobuf library writes) the output is byte for
 * byte what Python's SerializeToString() gives. */
#ifndef LP_SPM_MODEL_H
#define LP_SPM_MODEL_H

#include <stddef.h>
#include <stdint.h>

enum lp_spm_piece_type {
	LP_SPM_NORMAL = 1,
	LP_SPM_UNKNOWN = 2,
	LP_SPM_CONTROL = 3,
	LP_SPM_USER_DEFINED = 4,
	LP_SPM_UNUSED = 5,
	LP_SPM_BYTE = 6,
};

enum lp_spm_model_type {
	LP_SPM_UNIGRAM = 1,
	LP_SPM_BPE = 2,
	LP_SPM_WORD = 3,
	LP_SPM_CHAR = 4,
};

typedef struct {
	const char *str;	/* the piece: len bytes of UTF-8, then a NUL */
	size_t len;
	float score;
	int type;		/* enum lp_spm_piece_type */
	const uint8_t *raw;	/* the SentencePiece message body (no tag/length) */
	size_t raw_len;
	int owned;		/* raw is a block of its own (an added piece) */
} lp_spm_piece;

typedef struct {
	uint32_t field;		/* field number */
	const uint8_t *raw;	/* tag, length and payload as read */
	size_t len;
} lp_spm_field;

typedef struct {
	lp_spm_piece *pieces;	/* (n_pieces) in id order */
	size_t n_pieces, cap_pieces;
	lp_spm_field *fields;	/* (n_fields) top-level fields other than 1 */
	size_t n_fields, cap_fields;

	/* decoded from trainer_spec / normalizer_spec (defaults if absent) */
	int model_type;		/* enum lp_spm_model_type */
	int has_trainer_spec;
	int byte_fallback;
	int32_t unk_id, bos_id, eos_id, pad_id;	/* -1: none */
	int treat_whitespace_as_suffix;
	int add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces;
	const uint8_t *charsmap;	/* precompiled_charsmap (in buf), or NULL */
	size_t charsmap_len;

	/* private */
	uint8_t *buf;		/* copy of the input; raw slices point here */
	char *strs;		/* NUL-terminated copies of the parsed pieces */
	uint32_t *slots;	/* open addressing: piece index + 1, 0 = empty */
	size_t n_slots;		/* power of two */
} lp_spm_model;

/* Parse n bytes of a ModelProto into *m. 0 on success; -1 on any problem,
 * with "at byte N: what" (or a model-level complaint) in err, and *m left
 * empty (free not needed). Never exits. Checked beyond the wire format:
 * at least one piece; every piece non-empty, valid UTF-8, unique, with a
 * known type; a known model_type. */
int lp_spm_model_parse(const void *buf, size_t n, lp_spm_model *m,
		       char *err, size_t errlen);
/* Read and parse a file; dies "PATH: not a SentencePiece model: ..." */
void lp_spm_model_load(const char *path, lp_spm_model *m);
void lp_spm_model_free(lp_spm_model *m);

/* Index of the piece equal to s[0..len), or -1. */
long lp_spm_model_find(const lp_spm_model *m, const char *s, size_t len);
/* Append s (score 0, the given type) unless present. Returns the new
 * index, or -1 if the model already has the piece (nothing changes).
 * s must be valid UTF-8 and non-empty (checked by the caller). */
long lp_spm_model_add(lp_spm_model *m, const char *s, size_t len, int type);

/* The encoded model in a malloc'd buffer (*out, *n). */
void lp_spm_model_serialize(const lp_spm_model *m, uint8_t **out, size_t *n);
/* The encoded model written atomically to path; dies naming it on failure. */
void lp_spm_model_save(const lp_spm_model *m, const char *path);

/* Write what `LlamaTokenizer(vocab_file).save_pretrained(dir)` leaves, so
 * transformers' LlamaTokenizer.from_pretrained(dir) loads it: the model as
 * dir/tokenizer.model, dir/tokenizer_config.json (tokenizer_class
 * LlamaTokenizer; bos/eos/unk tokens: the pieces at the model's bos/eos/unk
 * ids, null when absent; add_bos_token true, add_eos_token false, legacy
 * true, model_max_length, clean_up_tokenization_spaces false, pad_token
 * null) and dir/special_tokens_map.json. Creates dir (and parents); each
 * file is written atomically. Dies naming the path on failure. */
void lp_spm_write_hf_dir(const char *dir, const lp_spm_model *m, long long model_max_length);

/* "unigram", "bpe", "word", "char" (or "?") */
const char *lp_spm_model_type_name(int model_type);
/* "normal", "unknown", "control", "user_defined", "unused", "byte" */
const char *lp_spm_piece_type_name(int type);
/* 1 if s[0..n) is well-formed UTF-8 (no overlongs, surrogates, > U+10FFFF) */
int lp_spm_utf8_valid(const char *s, size_t n);

#endif
