/* instr.h: raw data to instruction records (the converters behind mkinstr).
 *
 * An instruction record is the jv object {"instruction","input","output"}
 * (keys in that order, all strings); a pre-training record is {"text"}.
 *
 * Every converter here is a parser of outside bytes and never dies: it
 * returns LP_INSTR_OK with *out set, LP_INSTR_EMPTY for a record with no
 * content (to be skipped and counted), or LP_INSTR_BAD with a one-line
 * reason in err[errlen]. The caller decides whether a bad record is fatal. */
#ifndef LP_INSTR_H
#define LP_INSTR_H

#include <stddef.h>
#include <stdint.h>
#include <jv.h>

enum { LP_INSTR_BAD = -1, LP_INSTR_EMPTY = 0, LP_INSTR_OK = 1 };

/* Input formats. AUTO: not decided (or, from the sniffer, not recognised). */
typedef enum {
	LP_FROM_AUTO,
	LP_FROM_MSRA,   /* MSRA NER JSONL/JSON: {"text","entity_list"} */
	LP_FROM_BIO,    /* "token TAG" per line, blank line between sentences */
	LP_FROM_ALPACA, /* {"instruction"|"instruct","input"|"query","output"|"answer"} */
	LP_FROM_TEXT,   /* plain text, one document per line (or per paragraph) */
	LP_FROM_JSON,   /* records already shaped: instruction/output or text */
} lp_from;

/* "auto", "msra", "bio", "alpaca", "text", "json" -> lp_from; -1 if unknown. */
int lp_from_name(const char *name);

/* Guess the format from the first bytes of a stream (p[0..n), a prefix).
 * Looks at the first non-blank line. *what gets a phrase for people
 * ("MSRA NER JSONL"). Returns LP_FROM_AUTO (with *what saying why) for a
 * JSON object that fits no format. */
lp_from lp_instr_sniff(const char *p, size_t n, const char **what);

/* ---- NER: entity types, labels and the prompt ---- */

typedef struct {
	const char *instruction;  /* the fixed instruction text */
	const char *input_prefix; /* input = input_prefix + sentence */
	const char *none;         /* output when there are no entities */
	size_t nlabels;
	char **types, **labels;   /* entity type -> label in the answer */
} lp_ner_opts;

/* The MSRA defaults: PER 人名, LOC 地名, ORG 机构名 and the
 * 你现在是一个实体识别模型… instruction. */
void lp_ner_opts_init(lp_ner_opts *o);
void lp_ner_opts_free(lp_ner_opts *o);
/* Add or replace a mapping from "TYPE=LABEL"; -1 if spec has no '=' or an
 * empty side. */
int lp_ner_set_label(lp_ner_opts *o, const char *spec);
/* The label for type[0..len), or NULL if the type is not mapped. */
const char *lp_ner_label(const lp_ner_opts *o, const char *type, size_t len);

/* One MSRA NER JSON record to an instruction record. Checks every
 * entity's entity_index (code-point offsets [begin, end)) against the
 * text: a mismatch is a bad record. Empty (blank) text is EMPTY. */
int lp_instr_from_msra(const lp_ner_opts *o, jv rec, jv *out, char *err, size_t errlen);

/* Character-per-line NER tags, fed one line at a time:
 *   token <blanks> TAG     TAG is O or P-TYPE, P one of B I M E S
 * B opens an entity; I, M continue it; E continues and closes it; S is a
 * one-token entity; O, B, S or the end of the sentence close an open one.
 * An I/M/E with no open entity of the same type, any other tag shape,
 * an unmapped type or a line that is not exactly two fields is bad. */
typedef struct {
	char *text;               /* the sentence so far: tokens concatenated */
	size_t len, cap;
	size_t ntok;
	char **ents;              /* closed entities: "entity\0TYPE" pairs */
	size_t nents, capents;
	int open;                 /* an entity is open ... */
	size_t open_start;        /* ... starting at text[open_start] ... */
	char open_type[64];       /* ... of this type */
} lp_bio;

void lp_bio_init(lp_bio *b);
void lp_bio_free(lp_bio *b);
/* Forget the sentence so far (after a bad line, or after lp_bio_sentence). */
void lp_bio_reset(lp_bio *b);
/* One non-blank line: OK, or BAD with err set. */
int lp_bio_line(lp_bio *b, const lp_ner_opts *o, const char *line, size_t len,
		char *err, size_t errlen);
/* The sentence ends (blank line or end of input): OK with *out, or EMPTY
 * when it had no tokens. Resets b either way. */
int lp_bio_sentence(lp_bio *b, const lp_ner_opts *o, jv *out);

/* ---- Alpaca, shaped JSON, text ---- */

/* instruction|instruct, input|query (optional), output|answer. A missing
 * or non-string instruction/output is bad; a blank one is EMPTY. */
int lp_instr_from_alpaca(jv rec, jv *out, char *err, size_t errlen);
/* Strict shape (what a --jq program must produce): an object with string
 * instruction and output (input optional), or else a string text. */
int lp_instr_from_json(jv rec, jv *out, char *err, size_t errlen);
/* {"text": s[0..n)}; bad if s is not valid UTF-8, EMPTY if blank. */
int lp_instr_from_text(const char *s, size_t n, jv *out, char *err, size_t errlen);

/* 1 if s[0..n) is valid UTF-8 (no overlongs, surrogates or > U+10FFFF). */
int lp_utf8_valid(const char *s, size_t n);
/* 1 if s[0..n) is only whitespace: ASCII blanks, U+00A0, U+3000. */
int lp_is_blank(const char *s, size_t n);

/* The dedup key of a record: its string fields in output order, each with
 * whitespace runs (as lp_is_blank) collapsed to one space and trimmed,
 * joined by 0x1f. Returns a malloc'd buffer of *len bytes. */
char *lp_instr_normalize(jv rec, size_t *len);

/* ---- jq programs ---- */

typedef struct lp_jqprog lp_jqprog;
/* Compile a jq program; NULL with the compiler's messages in err. */
lp_jqprog *lp_jqprog_compile(const char *program, char *err, size_t errlen);
/* Run it on in (consumed): a jv array of its outputs, or an invalid jv
 * with err set when the program raised an error. */
jv lp_jqprog_run(lp_jqprog *p, jv in, char *err, size_t errlen);
void lp_jqprog_free(lp_jqprog *p);

/* A set of 64-bit hashes (for --dedup). */
typedef struct {
	uint64_t *slot;
	size_t n, cap;
	int has_zero;
} lp_u64set;
/* 1 if h was added, 0 if it was already there. */
int lp_u64set_add(lp_u64set *s, uint64_t h);
void lp_u64set_free(lp_u64set *s);

#endif
