/* jsonl.c: JSON records in (JSONL or one array) and out, through jv. */
#include "formats/jsonl.h"
#include "base/common.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void lp_jsonl_init(lp_jsonl *j, lp_reader *r, int skip_bad)
{
	memset(j, 0, sizeof *j);
	j->r = r;
	j->skip_bad = skip_bad;
	j->array = jv_invalid();
}

void lp_jsonl_done(lp_jsonl *j)
{
	jv_free(j->array);
	j->array = jv_invalid();
}

const char *lp_jsonl_where(lp_jsonl *j)
{
	static char buf[4200];
	if (j->is_array)
		snprintf(buf, sizeof buf, "%s: element %llu", lp_reader_name(j->r),
				(unsigned long long)j->where);
	else
		snprintf(buf, sizeof buf, "%s:%llu", lp_reader_name(j->r),
				(unsigned long long)j->where);
	return buf;
}

void lp_jsonl_bad(lp_jsonl *j, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (!j->skip_bad)
		lp_die(lp_jsonl_where(j), "%s (--skip-bad to skip such records)", msg);
	j->nbad++;
	lp_warn(lp_jsonl_where(j), "%s (skipped)", msg);
}

/* Whole-stream array mode: the first non-blank byte is '['. */
static void start(lp_jsonl *j)
{
	j->started = 1;
	for (size_t want = 4096;; want *= 2) {
		size_t got;
		const char *p = lp_reader_peek(j->r, want, &got);
		size_t i = 0;
		while (i < got && strchr(" \t\r\n", p[i]))
			i++;
		if (i < got) {
			if (p[i] != '[')
				return;
			break;
		}
		if (got < want)
			return; /* empty or all blank */
		/* a long run of blanks: look further, without consuming it
		 * (consumed bytes would escape the JSONL line count) */
	}
	/* read the rest and parse as one value */
	size_t cap = 1 << 16, n = 0;
	char *buf = lp_malloc(cap);
	for (;;) {
		if (n == cap)
			buf = lp_realloc(buf, cap *= 2);
		size_t got = lp_reader_read(j->r, buf + n, cap - n);
		n += got;
		if (got == 0)
			break;
	}
	j->is_array = 1;
	size_t bad = lp_utf8_check(buf, n);
	if (bad < n) {
		unsigned long line = 1;
		for (size_t i = 0; i < bad; i++)
			line += buf[i] == '\n';
		lp_die(lp_reader_name(j->r), "line %lu: invalid UTF-8 (byte 0x%02x at offset %zu)",
				line, (unsigned char)buf[bad], bad);
	}
	jv v = jv_parse_sized(buf, n);
	free(buf);
	if (!jv_is_valid(v)) {
		jv msg = jv_invalid_get_msg(v);
		lp_die(lp_reader_name(j->r), "not valid JSON: %s",
				jv_get_kind(msg) == JV_KIND_STRING ? jv_string_value(msg) : "parse error");
	}
	if (jv_get_kind(v) != JV_KIND_ARRAY)
		lp_die(lp_reader_name(j->r), "expected a JSON array of records");
	j->array = v;
	j->array_len = jv_array_length(jv_copy(v));
}

int lp_jsonl_next(lp_jsonl *j, jv *out)
{
	if (!j->started)
		start(j);
	if (j->is_array) {
		if (j->array_pos >= j->array_len)
			return 0;
		j->where = ++j->array_pos;
		*out = jv_array_get(jv_copy(j->array), j->array_pos - 1);
		return 1;
	}
	for (;;) {
		size_t len;
		char *line = lp_reader_line(j->r, &len);
		if (!line)
			return 0;
		j->where = lp_reader_lineno(j->r);
		size_t i = 0;
		while (i < len && strchr(" \t", line[i]))
			i++;
		if (i == len)
			continue;
		if (!strncmp(line, LP_ABORT_LINE, strlen(LP_ABORT_LINE)))
			lp_die(lp_jsonl_where(j), "the tool writing this input failed: %s",
					line + strlen(LP_ABORT_LINE));
		size_t bad = lp_utf8_check(line, len);
		if (bad < len) {
			lp_jsonl_bad(j, "invalid UTF-8 (byte 0x%02x at column %zu)",
					(unsigned char)line[bad], bad + 1);
			continue;
		}
		jv v = jv_parse_sized(line, len);
		if (jv_is_valid(v)) {
			*out = v;
			return 1;
		}
		jv msg = jv_invalid_get_msg(v);
		lp_jsonl_bad(j, "malformed JSON: %s",
				jv_get_kind(msg) == JV_KIND_STRING ? jv_string_value(msg) : "parse error");
		jv_free(msg);
	}
}

void lp_jsonl_print(FILE *f, jv v)
{
	jv s = jv_dump_string(v, 0);
	const char *p = jv_string_value(s);
	lp_fwrite(f, f == stdout ? "stdout" : "output", p, strlen(p));
	lp_fwrite(f, f == stdout ? "stdout" : "output", "\n", 1);
	jv_free(s);
}

int lp_jv_string(jv obj, const char *key, const char **out)
{
	*out = NULL;
	if (jv_get_kind(obj) != JV_KIND_OBJECT)
		return -1;
	jv v = jv_object_get(jv_copy(obj), jv_string(key));
	jv_kind k = jv_get_kind(v);
	if (k == JV_KIND_STRING)
		*out = jv_string_value(v);
	jv_free(v); /* obj still holds a reference */
	return k == JV_KIND_STRING ? 1 : (k == JV_KIND_INVALID || k == JV_KIND_NULL) ? 0 : -1;
}
