/* bpe.c: SentencePiece BPE encoding (see bpe.h).
 *
 * One call works in three buffers sized by the text: the normalized
 * bytes, the symbols (a doubly linked list over it) and a binary heap of
 * candidate pairs. Short texts, the common case, keep all three on the
 * stack. A heap entry is stale once either of its symbols was merged away
 * or grew; it is then skipped, as the library skips it. */
#include "text/bpe.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define SPACE "\xe2\x96\x81"	/* U+2581: ' ' once escaped */
#define MAX_MAP_MATCHES 32	/* what the library reads of one map lookup */

/* The piece table, packed for lookups that mostly miss: a slot holds the
 * top bits of the hash and the piece index, so a probe reads the piece
 * itself only when those bits agree. */
struct slot {
	uint32_t tag;		/* hash >> 32, or 1 for 0; 0 = empty */
	int32_t id;
};

struct lp_bpe {
	const lp_spm_model *m;
	struct slot *slots;
	size_t mask;
	float *score;		/* by piece index */
	uint8_t *type;
	int32_t unk;
	int byte_fallback;
	int32_t byte_id[256];
	int dummy_prefix, remove_ws, escape_ws, ws_suffix;
	uint32_t *map;		/* the character map's double array, or NULL */
	size_t map_units;
	const char *repl;	/* its replacement strings, each NUL-terminated */
	size_t repl_len;
	uint64_t user_lens;	/* bit l-1: some user-defined symbol has l bytes */
	uint8_t user_first[32];	/* bitmap of their first bytes */
};

static void say(char *why, size_t whylen, const char *msg)
{
	if (why && whylen)
		snprintf(why, whylen, "%s", msg);
}

/* ---- the piece table ---- */

static inline uint32_t tag_of(uint64_t h)
{
	uint32_t t = (uint32_t)(h >> 32);
	return t ? t : 1;
}

/* The index of the piece s[0, n), or -1. */
static long find(const lp_bpe *b, const char *s, size_t n)
{
	uint64_t h = XXH3_64bits(s, n);
	uint32_t tag = tag_of(h);
	for (size_t i = (size_t)h & b->mask;; i = (i + 1) & b->mask) {
		const struct slot *e = &b->slots[i];
		if (!e->tag)
			return -1;
		if (e->tag == tag) {
			const lp_spm_piece *p = &b->m->pieces[e->id];
			if (p->len == n && !memcmp(p->str, s, n))
				return e->id;
		}
	}
}

static int index_pieces(lp_bpe *b)
{
	const lp_spm_model *m = b->m;
	size_t cap = 64;
	while (cap < 4 * m->n_pieces)
		cap *= 2;
	b->slots = calloc(cap, sizeof *b->slots);
	b->score = malloc(m->n_pieces * sizeof *b->score);
	b->type = malloc(m->n_pieces);
	if (!b->slots || !b->score || !b->type)
		return -1;
	b->mask = cap - 1;
	for (size_t k = 0; k < m->n_pieces; k++) {
		const lp_spm_piece *p = &m->pieces[k];
		uint64_t h = XXH3_64bits(p->str, p->len);
		size_t i = (size_t)h & b->mask;
		while (b->slots[i].tag)
			i = (i + 1) & b->mask;
		b->slots[i] = (struct slot){ tag_of(h), (int32_t)k };
		b->score[k] = p->score;
		b->type[k] = (uint8_t)p->type;
	}
	return 0;
}

/* ---- the precompiled character map: a darts-clone double array ---- */

static inline uint32_t unit_offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }
static inline uint32_t unit_label(uint32_t u) { return u & (0x80000000u | 0xffu); }
static inline int unit_has_leaf(uint32_t u) { return (u >> 8) & 1; }

/* The blob is <trie bytes, u32 little-endian><trie><replacement strings>. */
static int load_map(lp_bpe *b, const uint8_t *blob, size_t n)
{
	if (n <= 4)
		return -1;
	uint32_t trie = (uint32_t)blob[0] | (uint32_t)blob[1] << 8 |
			(uint32_t)blob[2] << 16 | (uint32_t)blob[3] << 24;
	if (trie >= n || trie < 4)
		return -1;
	b->map_units = trie / 4;
	b->map = malloc(b->map_units * sizeof *b->map);
	if (!b->map)
		return -1;
	for (size_t i = 0; i < b->map_units; i++) {
		const uint8_t *q = blob + 4 + 4 * i;
		b->map[i] = (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 |
			    (uint32_t)q[3] << 24;
	}
	b->repl = (const char *)blob + 4 + trie;
	b->repl_len = n - 4 - trie;
	return 0;
}

/* The longest prefix of s[0, n) the map holds: its length, with its
 * replacement in *r, *rn; 0 when none. */
static size_t map_match(const lp_bpe *b, const uint8_t *s, size_t n, const char **r, size_t *rn)
{
	const uint32_t *a = b->map;
	size_t pos = unit_offset(a[0]), best = 0;
	uint32_t value = 0;
	int found = 0;
	for (size_t i = 0; i < n && found < MAX_MAP_MATCHES; i++) {
		pos ^= s[i];
		if (pos >= b->map_units || unit_label(a[pos]) != s[i])
			break;
		int leaf = unit_has_leaf(a[pos]);
		pos ^= unit_offset(a[pos]);
		if (leaf) {
			if (pos >= b->map_units)
				break;
			value = a[pos] & 0x7fffffffu;
			best = i + 1;
			found++;
		}
	}
	if (!best)
		return 0;
	if (value >= b->repl_len) {	/* a malformed map: nothing to put */
		*r = "";
		*rn = 0;
	} else {
		const char *e = memchr(b->repl + value, 0, b->repl_len - value);
		*r = b->repl + value;
		*rn = e ? (size_t)(e - *r) : b->repl_len - value;
	}
	return best;
}

/* ---- characters ---- */

/* The length of the well-formed UTF-8 character at s (n > 0 bytes), or 0
 * when malformed (overlong forms, surrogates, past U+10FFFF, cut short). */
static size_t utf8_char(const uint8_t *s, size_t n)
{
#define TRAIL(x) (((x) & 0xc0) == 0x80)
	uint8_t c = s[0];
	uint32_t cp;
	if (c < 0x80)
		return 1;
	if ((c & 0xe0) == 0xc0) {
		if (n < 2 || !TRAIL(s[1]))
			return 0;
		cp = (uint32_t)(c & 0x1f) << 6 | (s[1] & 0x3f);
		return cp >= 0x80 ? 2 : 0;
	}
	if ((c & 0xf0) == 0xe0) {
		if (n < 3 || !TRAIL(s[1]) || !TRAIL(s[2]))
			return 0;
		cp = (uint32_t)(c & 0x0f) << 12 | (uint32_t)(s[1] & 0x3f) << 6 | (s[2] & 0x3f);
		return cp >= 0x800 && (cp < 0xd800 || cp >= 0xe000) ? 3 : 0;
	}
	if ((c & 0xf8) == 0xf0) {
		if (n < 4 || !TRAIL(s[1]) || !TRAIL(s[2]) || !TRAIL(s[3]))
			return 0;
		cp = (uint32_t)(c & 0x07) << 18 | (uint32_t)(s[1] & 0x3f) << 12 |
		     (uint32_t)(s[2] & 0x3f) << 6 | (s[3] & 0x3f);
		return cp >= 0x10000 && cp <= 0x10ffff ? 4 : 0;
	}
	return 0;
#undef TRAIL
}

/* The length of the longest user-defined symbol that s[0, n) starts with,
 * or 0. */
static size_t user_match(const lp_bpe *b, const char *s, size_t n)
{
	uint8_t c = (uint8_t)s[0];
	if (!b->user_lens || !(b->user_first[c >> 3] >> (c & 7) & 1))
		return 0;
	uint64_t lens = b->user_lens;
	if (n < 64)
		lens &= (1ull << n) - 1;
	while (lens) {
		size_t l = 64 - (size_t)__builtin_clzll(lens);
		long i = find(b, s, l);
		if (i >= 0 && b->type[i] == LP_SPM_USER_DEFINED)
			return l;
		lens &= ~(1ull << (l - 1));
	}
	return 0;
}

/* One normalization step at s[0, n) (n > 0): the bytes consumed, with
 * what they become in *r, *rn. */
static size_t norm_prefix(const lp_bpe *b, const char *s, size_t n, const char **r, size_t *rn)
{
	size_t k = user_match(b, s, n);
	if (!k && b->map && (k = map_match(b, (const uint8_t *)s, n, r, rn)))
		return k;
	if (!k)
		k = (uint8_t)s[0] < 0x80 ? 1 : utf8_char((const uint8_t *)s, n);
	if (!k) {
		*r = "\xef\xbf\xbd";	/* U+FFFD for one malformed byte */
		*rn = 3;
		return 1;
	}
	*r = s;
	*rn = k;
	return k;
}

/* ---- growable buffers that start on the stack ---- */

struct buf {
	void *p;
	size_t n, cap;		/* in elements */
	int heap;
};

static int reserve(struct buf *b, size_t want, size_t size)
{
	if (want <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < want)
		cap *= 2;
	void *q = b->heap ? realloc(b->p, cap * size) : malloc(cap * size);
	if (!q)
		return -1;
	if (!b->heap && b->n)
		memcpy(q, b->p, b->n * size);
	b->p = q;
	b->cap = cap;
	b->heap = 1;
	return 0;
}

static void release(struct buf *b)
{
	if (b->heap)
		free(b->p);
}

static int add_bytes(struct buf *b, const char *s, size_t n)
{
	if (reserve(b, b->n + n, 1))
		return -1;
	memcpy((char *)b->p + b->n, s, n);
	b->n += n;
	return 0;
}

/* ---- normalization ---- */

static int normalize(const lp_bpe *b, const char *s, size_t n, struct buf *out)
{
	const char *ws = b->escape_ws ? SPACE : " ";
	size_t wsn = strlen(ws), k, rn;
	const char *r;

	if (b->remove_ws)	/* leading whitespace */
		for (; n; s += k, n -= k) {
			k = norm_prefix(b, s, n, &r, &rn);
			if (rn != 1 || r[0] != ' ')
				break;
		}
	if (!n)
		return 0;
	if (!b->ws_suffix && b->dummy_prefix && add_bytes(out, ws, wsn))
		return -1;
	int prev_space = b->remove_ws;
	for (; n; s += k, n -= k) {
		k = norm_prefix(b, s, n, &r, &rn);
		while (prev_space && rn && r[0] == ' ')
			r++, rn--;
		if (rn) {
			if (reserve(out, out->n + 3 * rn, 1))
				return -1;
			char *o = (char *)out->p + out->n;
			for (size_t i = 0; i < rn; i++)
				if (b->escape_ws && r[i] == ' ') {
					memcpy(o, SPACE, 3);
					o += 3;
				} else {
					*o++ = r[i];
				}
			out->n = (size_t)(o - (char *)out->p);
			prev_space = r[rn - 1] == ' ';
		}
		if (!b->remove_ws)
			prev_space = 0;
	}
	if (b->remove_ws)	/* trailing whitespace */
		while (out->n >= wsn && !memcmp((char *)out->p + out->n - wsn, ws, wsn))
			out->n -= wsn;
	if (b->ws_suffix && b->dummy_prefix && add_bytes(out, ws, wsn))
		return -1;
	return 0;
}

/* ---- merging ---- */

struct sym {
	int32_t start, len;	/* in the normalized text; len 0: merged away */
	int32_t prev, next;	/* -1 at either end */
	int32_t id;		/* its piece, or -1 when it is none */
	int32_t freeze;		/* a user-defined symbol: never merged */
};

struct pair {
	float score;
	int32_t left, right, size, id;
};

/* a comes out of the heap before b */
static inline int before(const struct pair *a, const struct pair *b)
{
	return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void heap_push(struct pair *h, size_t *n, struct pair x)
{
	size_t i = (*n)++;
	while (i) {
		size_t up = (i - 1) / 2;
		if (!before(&x, &h[up]))
			break;
		h[i] = h[up];
		i = up;
	}
	h[i] = x;
}

static struct pair heap_pop(struct pair *h, size_t *n)
{
	struct pair top = h[0], x = h[--*n];
	size_t i = 0, m = *n;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= m)
			break;
		if (c + 1 < m && before(&h[c + 1], &h[c]))
			c++;
		if (!before(&h[c], &x))
			break;
		h[i] = h[c];
		i = c;
	}
	if (m)
		h[i] = x;
	return top;
}

/* The index of the piece s[0, n) can merge into (a normal or user-defined
 * piece), or -1. */
static long merge_target(const lp_bpe *b, const char *s, size_t n)
{
	long i = find(b, s, n);
	return i >= 0 && (b->type[i] == LP_SPM_NORMAL || b->type[i] == LP_SPM_USER_DEFINED) ? i : -1;
}

static void maybe_pair(const lp_bpe *b, const char *text, const struct sym *sy,
		       int32_t l, int32_t r, struct pair *h, size_t *nh)
{
	if (l < 0 || r < 0 || sy[l].freeze || sy[r].freeze)
		return;
	int32_t size = sy[l].len + sy[r].len;
	long i = merge_target(b, text + sy[l].start, (size_t)size);
	if (i >= 0)
		heap_push(h, nh, (struct pair){ b->score[i], l, r, size, (int32_t)i });
}

static int push_id(int32_t **ids, size_t *n, size_t *cap, int32_t id)
{
	if (*n == *cap) {
		size_t c = *cap ? 2 * *cap : 64;
		int32_t *p = realloc(*ids, c * sizeof *p);
		if (!p)
			return -1;
		*ids = p;
		*cap = c;
	}
	(*ids)[(*n)++] = id;
	return 0;
}

int lp_bpe_encode(const lp_bpe *b, const char *text, size_t len,
		  int32_t **ids, size_t *n, size_t *cap)
{
	char nstack[1024];
	struct sym sstack[256];
	struct pair pstack[768];
	struct buf norm = { nstack, 0, sizeof nstack, 0 };
	struct buf syms = { sstack, 0, 256, 0 }, heap = { pstack, 0, 768, 0 };
	int rc = -1;

	if (normalize(b, text, len, &norm))
		goto out;
	const char *t = norm.p;
	size_t tn = norm.n;
	if (tn > INT32_MAX / 4)
		goto out;

	/* characters, user-defined symbols whole */
	for (size_t at = 0; at < tn;) {
		size_t k = user_match(b, t + at, tn - at);
		int freeze = k > 0;
		if (!k) {
			static const uint8_t len_of[16] = { 1, 1, 1, 1, 1, 1, 1, 1,
							    1, 1, 1, 1, 2, 2, 3, 4 };
			k = len_of[(uint8_t)t[at] >> 4];
			if (k > tn - at)
				k = tn - at;
		}
		if (reserve(&syms, syms.n + 1, sizeof(struct sym)))
			goto out;
		int32_t i = (int32_t)syms.n++;
		((struct sym *)syms.p)[i] = (struct sym){ (int32_t)at, (int32_t)k, i - 1,
			at + k < tn ? i + 1 : -1, (int32_t)find(b, t + at, k), freeze };
		at += k;
	}
	/* each merge adds at most two pairs to the n - 1 first ones */
	if (reserve(&heap, 3 * syms.n + 1, sizeof(struct pair)))
		goto out;
	struct sym *sy = syms.p;
	struct pair *h = heap.p;
	size_t nh = 0;
	for (int32_t i = 1; i < (int32_t)syms.n; i++)
		maybe_pair(b, t, sy, i - 1, i, h, &nh);
	while (nh) {
		struct pair top = heap_pop(h, &nh);
		struct sym *l = &sy[top.left], *r = &sy[top.right];
		if (!l->len || !r->len || l->len + r->len != top.size)
			continue;
		l->len += r->len;
		l->id = top.id;
		l->next = r->next;
		if (r->next >= 0)
			sy[r->next].prev = top.left;
		r->len = 0;
		maybe_pair(b, t, sy, l->prev, top.left, h, &nh);
		maybe_pair(b, t, sy, top.left, l->next, h, &nh);
	}

	/* ids; unknown pieces as bytes, or one <unk> per run */
	int prev_unk = 0;
	for (int32_t i = syms.n ? 0 : -1; i >= 0; i = sy[i].next) {
		const char *s = t + sy[i].start;
		int32_t id = sy[i].id >= 0 ? sy[i].id : b->unk;
		int unk = b->type[id] == LP_SPM_UNKNOWN;
		if (unk && b->byte_fallback) {
			for (int32_t j = 0; j < sy[i].len; j++)
				if (push_id(ids, n, cap, b->byte_id[(uint8_t)s[j]]))
					goto out;
		} else if (!(unk && prev_unk) && push_id(ids, n, cap, id)) {
			goto out;
		}
		prev_unk = unk;
	}
	rc = 0;
out:
	release(&norm);
	release(&syms);
	release(&heap);
	return rc;
}

/* ---- setting up ---- */

lp_bpe *lp_bpe_new(const lp_spm_model *m, char *why, size_t whylen)
{
	if (m->model_type != LP_SPM_BPE) {
		say(why, whylen, "not a BPE model");
		return NULL;
	}
	lp_bpe *b = calloc(1, sizeof *b);
	if (!b) {
		say(why, whylen, "out of memory");
		return NULL;
	}
	b->m = m;
	b->unk = -1;
	if (index_pieces(b)) {
		say(why, whylen, "out of memory");
		lp_bpe_free(b);
		return NULL;
	}
	b->byte_fallback = m->byte_fallback;
	b->dummy_prefix = m->add_dummy_prefix;
	b->remove_ws = m->remove_extra_whitespaces;
	b->escape_ws = m->escape_whitespaces;
	b->ws_suffix = m->treat_whitespace_as_suffix;
	const char *no = NULL;
	for (size_t i = 0; i < m->n_pieces && !no; i++) {
		const lp_spm_piece *p = &m->pieces[i];
		if (isnan(p->score))
			no = "a piece's score is NaN";
		else if (memchr(p->str, 0, p->len))
			no = "a piece holds a NUL byte";
		else if (p->type == LP_SPM_UNUSED)
			no = "it has UNUSED pieces";
		else if (p->type == LP_SPM_UNKNOWN && b->unk >= 0)
			no = "two unknown pieces";
		else if (p->type == LP_SPM_UNKNOWN)
			b->unk = (int32_t)i;
		else if (p->type == LP_SPM_USER_DEFINED && p->len > 64)
			no = "a user-defined symbol over 64 bytes";
		else if (p->type == LP_SPM_USER_DEFINED) {
			b->user_lens |= 1ull << (p->len - 1);
			b->user_first[(uint8_t)p->str[0] >> 3] |= (uint8_t)(1u << ((uint8_t)p->str[0] & 7));
		}
	}
	if (!no && b->unk < 0)
		no = "no unknown piece";
	for (int c = 0; !no && b->byte_fallback && c < 256; c++) {
		char name[8];
		snprintf(name, sizeof name, "<0x%02X>", c);
		long i = find(b, name, 6);
		if (i < 0 || b->type[i] != LP_SPM_BYTE)
			no = "byte fallback without all 256 byte pieces";
		else
			b->byte_id[c] = (int32_t)i;
	}
	if (!no && m->charsmap && m->charsmap_len && load_map(b, m->charsmap, m->charsmap_len))
		no = "a malformed precompiled_charsmap";
	if (no) {
		say(why, whylen, no);
		lp_bpe_free(b);
		return NULL;
	}
	return b;
}

void lp_bpe_free(lp_bpe *b)
{
	if (b) {
		free(b->map);
		free(b->slots);
		free(b->score);
		free(b->type);
	}
	free(b);
}
