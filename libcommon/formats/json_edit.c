/* json_edit.c: one top-level value of a JSON object replaced or added in
 * the text, everything else left byte for byte. See json_edit.h. */
#include "formats/json_edit.h"

#include <jv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"

static const char *skip_ws(const char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	return s;
}

static const char *skip_string(const char *s)
{
	for (s++; *s && *s != '"'; s++)
		if (*s == '\\' && s[1])
			s++;
	return *s ? s + 1 : s;
}

/* End of the JSON value at s (already known to be valid JSON). */
static const char *skip_value(const char *s)
{
	if (*s == '"')
		return skip_string(s);
	if (*s == '{' || *s == '[') {
		int depth = 0;
		for (; *s; s++) {
			if (*s == '"') {
				s = skip_string(s) - 1;
			} else if (*s == '{' || *s == '[') {
				depth++;
			} else if (*s == '}' || *s == ']') {
				if (--depth == 0)
					return s + 1;
			}
		}
		return s;
	}
	while (*s && *s != ',' && *s != '}' && *s != ']' && *s != ' ' && *s != '\n' &&
			*s != '\r' && *s != '\t')
		s++;
	return s;
}

char *lp_json_set(const char *json, const char *key, const char *val, char *err,
		size_t errlen)
{
	jv top = jv_parse(json);
	int ok = jv_get_kind(top) == JV_KIND_OBJECT;
	jv_free(top);
	if (!ok) {
		snprintf(err, errlen, "not one JSON object");
		return NULL;
	}
	const char *s = skip_ws(json) + 1, *first_ws = s, *last_end = NULL;
	const char *vb = NULL, *ve = NULL;
	size_t klen = strlen(key);
	for (;;) {
		const char *k = skip_ws(s);
		if (*k != '"')
			break;
		const char *ke = skip_string(k);
		const char *v = skip_ws(skip_ws(ke) + 1);
		const char *e = skip_value(v);
		if ((size_t)(ke - k - 2) == klen && !strncmp(k + 1, key, klen)) {
			vb = v;
			ve = e;
		}
		last_end = e;
		s = skip_ws(e);
		if (*s != ',')
			break;
		s++;
	}
	size_t n = strlen(json) + 2 * strlen(first_ws) + strlen(key) + strlen(val) + 16;
	char *o = lp_malloc(n);
	if (vb) {
		snprintf(o, n, "%.*s%s%s", (int)(vb - json), json, val, ve);
	} else if (last_end) {
		const char *k0 = skip_ws(first_ws);
		snprintf(o, n, "%.*s,%.*s\"%s\": %s%s", (int)(last_end - json), json,
				(int)(k0 - first_ws), first_ws, key, val, last_end);
	} else {
		const char *b = skip_ws(json);
		snprintf(o, n, "%.*s{\"%s\": %s}%s", (int)(b - json), json, key, val,
				skip_ws(b + 1) + 1);
	}
	return o;
}

