/* Fuzz target: the built-in BPE encoder (text/bpe.h) against the
 * sentencepiece library on arbitrary bytes. The first byte picks one of 64
 * small BPE models written here (byte fallback, extra-whitespace removal,
 * dummy prefix, whitespace as suffix, whitespace escaping, user-defined
 * symbols: one bit each), whose pieces overlap and tie in score so that
 * merge order matters; the rest is the text. Both encoders must give the
 * same ids. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "text/spm.h"

struct pb {
	uint8_t b[16384];
	size_t n;
};

static void byte(struct pb *p, uint8_t c)
{
	if (p->n == sizeof p->b)
		abort();
	p->b[p->n++] = c;
}

static void varint(struct pb *p, uint64_t v)
{
	for (; v >= 0x80; v >>= 7)
		byte(p, (uint8_t)(v | 0x80));
	byte(p, (uint8_t)v);
}

static void field_varint(struct pb *p, uint32_t f, uint64_t v)
{
	varint(p, (uint64_t)f << 3);
	varint(p, v);
}

static void field_bytes(struct pb *p, uint32_t f, const void *s, size_t n)
{
	varint(p, (uint64_t)f << 3 | 2);
	varint(p, n);
	for (size_t i = 0; i < n; i++)
		byte(p, ((const uint8_t *)s)[i]);
}

static void piece(struct pb *p, const char *s, float score, int type)
{
	struct pb q = { .n = 0 };
	uint32_t bits;
	field_bytes(&q, 1, s, strlen(s));
	memcpy(&bits, &score, 4);
	varint(&q, 2 << 3 | 5);
	for (int i = 0; i < 4; i++)
		byte(&q, (uint8_t)(bits >> 8 * i));
	field_varint(&q, 3, (uint64_t)type);
	field_bytes(p, 1, q.b, q.n);
}

/* The model for variant v (bits: byte fallback, remove extra whitespace,
 * dummy prefix, whitespace as suffix, escape whitespace, user symbols). */
static lp_spm *load(unsigned v, int library)
{
	static const struct { const char *s; float score; } normal[] = {
		{ "\xe2\x96\x81", -1 }, { "a", -2 }, { "b", -2 }, { "c", -3 }, { " ", -3 },
		{ "ab", -1 }, { "bc", -1 }, { "ba", -1 }, { "aa", -1.5f }, { "abc", -0.5f },
		{ "\xe2\x96\x81" "a", -1 }, { "\xe2\x96\x81" "ab", -0.5f }, { "a\xe2\x96\x81", -1 },
		{ "\xe7\x9a\x84", -4 }, { "\xe7\x9a\x84\xe7\x9a\x84", -1 }, { "\xef\xbf\xbd", -5 },
		{ "\xe2\x96\x81\xe2\x96\x81", -2 }, { "a b", -1 }, { "<", -6 }, { "u", -6 },
		{ "<u", -2 }, { "<u>x", -1 },
	};
	struct pb m = { .n = 0 }, spec = { .n = 0 };
	char name[8];
	piece(&m, "<unk>", 0, 2);
	piece(&m, "<s>", 0, 3);
	piece(&m, "</s>", 0, 3);
	if (v & 1)
		for (int c = 0; c < 256; c++) {
			snprintf(name, sizeof name, "<0x%02X>", c);
			piece(&m, name, 0, 6);
		}
	for (size_t i = 0; i < sizeof normal / sizeof *normal; i++)
		piece(&m, normal[i].s, normal[i].score, 1);
	if (v & 32) {
		piece(&m, "<u>", 0, 4);
		piece(&m, "<u>xy", 0, 4);
		piece(&m, "bb", 0, 4);
	}
	field_varint(&spec, 3, 2);		/* model_type BPE */
	field_varint(&spec, 24, !!(v & 8));	/* treat_whitespace_as_suffix */
	field_varint(&spec, 35, v & 1);		/* byte_fallback */
	field_bytes(&m, 2, spec.b, spec.n);
	spec.n = 0;
	field_bytes(&spec, 1, "identity", 8);
	field_varint(&spec, 3, !!(v & 4));	/* add_dummy_prefix */
	field_varint(&spec, 4, !!(v & 2));	/* remove_extra_whitespaces */
	field_varint(&spec, 5, !!(v & 16));	/* escape_whitespaces */
	field_bytes(&m, 3, spec.b, spec.n);

	char path[64], err[256];
	snprintf(path, sizeof path, "/tmp/lp-fuzz-spm-%d-%u.model", (int)getpid(), v);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(m.b, 1, m.n, f) != m.n || fclose(f))
		abort();
	if (library)
		setenv("LP_SPM_LIBRARY", "1", 1);
	lp_spm *s = lp_spm_load(path, err, sizeof err);
	unsetenv("LP_SPM_LIBRARY");
	remove(path);
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static lp_spm *ours[64], *lib[64];
	static int tried[64];
	if (!size)
		return 0;
	unsigned v = data[0] & 63;
	if (!tried[v]) {
		tried[v] = 1;
		ours[v] = load(v, 0);
		lib[v] = load(v, 1);
	}
	if (!ours[v] || !lib[v])
		abort();
	if (strcmp(lp_spm_encoder(ours[v]), "built-in BPE") != 0)
		abort();
	int32_t *a = NULL, *b = NULL;
	size_t na = 0, nb = 0, ca = 0, cb = 0;
	char err[256];
	const char *text = (const char *)data + 1;
	if (lp_spm_encode(ours[v], text, size - 1, &a, &na, &ca, err, sizeof err) ||
	    lp_spm_encode(lib[v], text, size - 1, &b, &nb, &cb, err, sizeof err))
		abort();
	if (na != nb || (na && memcmp(a, b, na * sizeof *a)))
		abort();
	free(a);
	free(b);
	return 0;
}
