/* jsonl.h: JSON records in and out through libjq's jv.
 *
 * Input is JSONL (one value per line, blank lines ignored) or, when the
 * first non-blank byte of the stream is '[', one JSON array whose elements
 * are the records. A malformed line dies naming file and line, unless
 * skip_bad is set: then it is counted in nbad and skipped; so does a line
 * that is not valid UTF-8 (which jq would quietly replace). An abort line
 * (LP_ABORT_LINE, written by a tool upstream that failed) always dies. */
#ifndef LP_JSONL_H
#define LP_JSONL_H

#include <stdio.h>
#include <jv.h>
#include "base/reader.h"

typedef struct {
	lp_reader *r;
	int skip_bad;
	uint64_t nbad;
	uint64_t where;    /* line (JSONL) or element index + 1 (array) of the last value */
	int is_array;      /* input was one JSON array */
	/* array mode state */
	jv array;
	int array_pos, array_len;
	int started;
} lp_jsonl;

void lp_jsonl_init(lp_jsonl *j, lp_reader *r, int skip_bad);
/* 1 and *out (caller frees with jv_free), or 0 at end of input. */
int lp_jsonl_next(lp_jsonl *j, jv *out);
void lp_jsonl_done(lp_jsonl *j);
/* "file:line" (or "file: element N") of the last value, for messages. */
const char *lp_jsonl_where(lp_jsonl *j);
/* Report a bad record: dies, or with skip_bad warns and counts it. */
void lp_jsonl_bad(lp_jsonl *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Print v (consumed) as one compact UTF-8 line. */
void lp_jsonl_print(FILE *f, jv v);

/* The string value of obj[key]: 1 and *out set if it is a string, 0 if the
 * key is missing or null, -1 if it is something else (or obj is not an
 * object). *out lives as long
 * as obj is not modified. */
int lp_jv_string(jv obj, const char *key, const char **out);

#endif
