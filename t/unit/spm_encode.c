/* spm_encode: the built-in BPE encoder (text/bpe.h) against the
 * sentencepiece library, on one model.
 *
 *   spm_encode MODEL COUNT SEED [FILE...]
 *
 * Loads MODEL twice, once as the tools do and once with LP_SPM_LIBRARY
 * set, and encodes with both COUNT random texts made from SEED and every
 * line of each FILE (raw bytes). The texts mix the model's own pieces
 * (with U+2581 mostly turned back into spaces; some repeated, where the
 * leftmost of equal merges must win), special pieces' names,
 * whitespace runs, characters that NFKC rewrites, characters of every
 * UTF-8 length, malformed UTF-8 and NUL bytes; one in eight is long
 * enough (hundreds of characters) to leave the encoder's stack buffers.
 * Prints the encoder each load uses and a summary; exits 1 at the first
 * text whose ids differ, printing it in hex with both id lists, and 2
 * when the model was not encoded by the built-in encoder (the comparison
 * would prove nothing). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "formats/spm_model.h"
#include "text/spm.h"

static uint64_t rng;

static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

struct text {
	char *p;
	size_t n, cap;
};

static void put(struct text *t, const void *s, size_t n)
{
	lp_grow((void **)&t->p, &t->cap, t->n + n + 1, 1);
	memcpy(t->p + t->n, s, n);
	t->n += n;
}

static void put_cp(struct text *t, uint32_t cp)	/* also surrogates, as bytes */
{
	unsigned char b[4];
	size_t n;
	if (cp < 0x80) {
		b[0] = (unsigned char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (unsigned char)(0xc0 | cp >> 6);
		b[1] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (unsigned char)(0xe0 | cp >> 12);
		b[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
		b[2] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		b[0] = (unsigned char)(0xf0 | cp >> 18);
		b[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
		b[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
		b[3] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	put(t, b, n);
}

static const char *const odd[] = {
	" ", "  ", "   ", "\t", "\n", "\r\n", "\xe3\x80\x80" /* U+3000 */, "\xc2\xa0",
	"\xe2\x96\x81" /* U+2581 */, "\xef\xbf\xbd" /* U+FFFD */, "\xef\xac\x81" /* fi */,
	"\xef\xbc\xa1" /* fullwidth A */, "\xe2\x91\xa0" /* circled 1 */,
	"\xe3\x8d\xbb" /* square era name */, "\xef\xbd\xb6" /* halfwidth ka */,
	"e\xcc\x81" /* e + combining acute */, "\xe2\x80\x8b" /* zero width space */,
	"\xf0\x9f\x98\x80", "<s>", "</s>", "<unk>", "<0x41>", "\xc0\xaf" /* overlong */,
	"\xed\xa0\x80" /* surrogate */, "\xf4\x90\x80\x80" /* past U+10FFFF */, "\xe4\xb8",
	"\x80", "\xff", "",
};

static void fragment(struct text *t, const lp_spm_model *m)
{
	uint32_t c = rnd(100), reps = c < 10 ? 2 + rnd(5) : 1;
	if (c < 55) {		/* a piece of the model, sometimes repeated */
		const lp_spm_piece *p = &m->pieces[rnd((uint32_t)m->n_pieces)];
		for (size_t i = 0; i < p->len * reps; i++)
			if (i % p->len + 3 <= p->len && !memcmp(p->str + i % p->len, "\xe2\x96\x81", 3) &&
			    rnd(10) < 7) {
				put(t, " ", 1);
				i += 2;
			} else {
				put(t, p->str + i % p->len, 1);
			}
	} else if (c < 75) {
		const char *s = odd[rnd(sizeof odd / sizeof *odd)];
		put(t, s, strlen(s));
	} else if (c < 85) {	/* a character of any length */
		static const uint32_t lo[] = { 0x20, 0x80, 0x800, 0x4e00, 0xac00, 0x10000, 0x20000, 0xd800 };
		static const uint32_t span[] = { 0x5f, 0x780, 0x3000, 0x5200, 0x2ba4, 0x1000, 0xa6e0, 0x800 };
		int k = (int)rnd(8);
		put_cp(t, lo[k] + rnd(span[k]));
	} else if (c < 95) {	/* any byte */
		unsigned char b = (unsigned char)rnd(256);
		put(t, &b, 1);
	} else {
		put(t, "", 1);	/* NUL */
	}
}

static int32_t *encode(const lp_spm *s, const char *p, size_t n, size_t *k)
{
	int32_t *ids = NULL;
	size_t cap = 0;
	char err[256];
	*k = 0;
	if (lp_spm_encode(s, p, n, &ids, k, &cap, err, sizeof err))
		lp_die("encode", "%s", err);
	return ids;
}

static int compare(const lp_spm *a, const lp_spm *b, const char *p, size_t n, unsigned long long *nids)
{
	size_t ka, kb;
	int32_t *x = encode(a, p, n, &ka), *y = encode(b, p, n, &kb);
	int same = ka == kb && (!ka || !memcmp(x, y, ka * sizeof *x));
	if (!same) {
		printf("differ on a text of %zu bytes:", n);
		for (size_t i = 0; i < n; i++)
			printf(" %02x", (unsigned char)p[i]);
		printf("\nbuilt-in (%zu):", ka);
		for (size_t i = 0; i < ka; i++)
			printf(" %d", x[i]);
		printf("\nlibrary (%zu):", kb);
		for (size_t i = 0; i < kb; i++)
			printf(" %d", y[i]);
		printf("\n");
	}
	*nids += ka;
	free(x);
	free(y);
	return same;
}

int main(int argc, char **argv)
{
	lp_init(argv[0]);
	if (argc < 4)
		lp_usage_error("usage: spm_encode MODEL COUNT SEED [FILE...]");
	char err[512];
	lp_spm *ours = lp_spm_load(argv[1], err, sizeof err);
	if (!ours)
		lp_die(NULL, "%s", err);
	setenv("LP_SPM_LIBRARY", "1", 1);
	lp_spm *lib = lp_spm_load(argv[1], err, sizeof err);
	if (!lib)
		lp_die(NULL, "%s", err);
	printf("encoders: %s; %s\n", lp_spm_encoder(ours), lp_spm_encoder(lib));
	if (strcmp(lp_spm_encoder(ours), "built-in BPE") != 0)
		return 2;
	lp_spm_model m;
	lp_spm_model_load(argv[1], &m);

	long count = atol(argv[2]);
	rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)atoll(argv[3]);
	unsigned long long texts = 0, ids = 0;
	struct text t = { 0 };
	for (long i = 0; i < count; i++, texts++) {
		t.n = 0;
		uint32_t frags = i % 8 == 7 ? 100 + rnd(200) : rnd(25);
		for (uint32_t f = 0; f < frags; f++)
			fragment(&t, &m);
		if (!compare(ours, lib, t.p ? t.p : "", t.n, &ids))
			return 1;
	}
	for (int a = 4; a < argc; a++) {
		FILE *f = fopen(argv[a], "rb");
		if (!f)
			lp_die(argv[a], "cannot open");
		char *line = NULL;
		size_t cap = 0;
		ssize_t got;
		while ((got = getline(&line, &cap, f)) > 0) {
			size_t n = (size_t)got - (line[got - 1] == '\n');
			texts++;
			if (!compare(ours, lib, line, n, &ids))
				return 1;
		}
		free(line);
		fclose(f);
	}
	printf("%llu texts, %llu ids: the same from both\n", texts, ids);
	free(t.p);
	lp_spm_model_free(&m);
	lp_spm_free(ours);
	lp_spm_free(lib);
	return 0;
}
