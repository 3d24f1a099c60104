/* pth_write.c: torch.save()'s zip layout and pickle, written by hand. */
#include "formats/pth_write.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/common.h"
#include "base/dtype.h"
#include "formats/zipread.h"

#define ALIGN 64
#define U32MAX 0xffffffffu

/* ---- a growing byte buffer ---- */

typedef struct { uint8_t *p; size_t n, cap; } buf;

static void put(buf *b, const void *p, size_t n)
{
	lp_grow((void **)&b->p, &b->cap, b->n + n, 1);
	memcpy(b->p + b->n, p, n);
	b->n += n;
}
static void put8(buf *b, unsigned v) { uint8_t c = (uint8_t)v; put(b, &c, 1); }
static void put16(buf *b, unsigned v) { put8(b, v & 0xff); put8(b, (v >> 8) & 0xff); }
static void put32(buf *b, uint32_t v) { for (int i = 0; i < 4; i++) put8(b, (v >> 8 * i) & 0xff); }
static void put64(buf *b, uint64_t v) { for (int i = 0; i < 8; i++) put8(b, (v >> 8 * i) & 0xff); }

/* ---- the pickle (protocol 2, as CPython's _pickle writes it) ---- */

enum {
	OP_MARK = '(', OP_STOP = '.', OP_BININT = 'J', OP_BININT1 = 'K', OP_BININT2 = 'M',
	OP_BINPERSID = 'Q', OP_REDUCE = 'R', OP_BINUNICODE = 'X', OP_EMPTY_DICT = '}',
	OP_SETITEM = 's', OP_SETITEMS = 'u', OP_TUPLE = 't', OP_EMPTY_TUPLE = ')',
	OP_GLOBAL = 'c', OP_BINPUT = 'q', OP_LONG_BINPUT = 'r', OP_BINGET = 'h',
	OP_LONG_BINGET = 'j', OP_PROTO = 0x80, OP_TUPLE1 = 0x85, OP_TUPLE2 = 0x86,
	OP_TUPLE3 = 0x87, OP_NEWFALSE = 0x89, OP_LONG1 = 0x8a,
};

#define BATCHSIZE 1000  /* pickle's _BATCHSIZE: items per SETITEMS */

typedef struct {
	buf b;
	uint32_t memo;          /* next memo index */
	/* memo slots of objects pickled once and referred to after (0: not yet) */
	uint32_t m_rebuild, m_storage_str, m_cpu, m_odict;
	uint32_t m_type[LP_DTYPE_COUNT];
} pickler;

static void memoize(pickler *pk, uint32_t *slot)
{
	uint32_t i = pk->memo++;
	if (i < 256) {
		put8(&pk->b, OP_BINPUT);
		put8(&pk->b, i);
	} else {
		put8(&pk->b, OP_LONG_BINPUT);
		put32(&pk->b, i);
	}
	if (slot)
		*slot = i + 1;
}

/* Refer to a memoized object; 0 if it was not pickled yet. */
static int get(pickler *pk, uint32_t slot)
{
	if (!slot)
		return 0;
	uint32_t i = slot - 1;
	if (i < 256) {
		put8(&pk->b, OP_BINGET);
		put8(&pk->b, i);
	} else {
		put8(&pk->b, OP_LONG_BINGET);
		put32(&pk->b, i);
	}
	return 1;
}

static void p_str(pickler *pk, const char *s, uint32_t *slot)
{
	size_t n = strlen(s);
	put8(&pk->b, OP_BINUNICODE);
	put32(&pk->b, (uint32_t)n);
	put(&pk->b, s, n);
	memoize(pk, slot);
}

/* Non-negative ints: BININT1, BININT2, BININT or LONG1 as save_long picks. */
static void p_int(pickler *pk, uint64_t v)
{
	if (v <= 0xff) {
		put8(&pk->b, OP_BININT1);
		put8(&pk->b, (unsigned)v);
	} else if (v <= 0xffff) {
		put8(&pk->b, OP_BININT2);
		put16(&pk->b, (unsigned)v);
	} else if (v <= 0x7fffffff) {
		put8(&pk->b, OP_BININT);
		put32(&pk->b, (uint32_t)v);
	} else {
		/* two's complement little-endian, with a sign byte when the top
		 * bit would be set */
		uint8_t c[9];
		int n = 0;
		for (uint64_t x = v; x; x >>= 8)
			c[n++] = x & 0xff;
		if (c[n - 1] & 0x80)
			c[n++] = 0;
		put8(&pk->b, OP_LONG1);
		put8(&pk->b, n);
		put(&pk->b, c, n);
	}
}

static void p_global(pickler *pk, const char *module, const char *name, uint32_t *slot)
{
	if (get(pk, *slot))
		return;
	put8(&pk->b, OP_GLOBAL);
	put(&pk->b, module, strlen(module));
	put8(&pk->b, '\n');
	put(&pk->b, name, strlen(name));
	put8(&pk->b, '\n');
	memoize(pk, slot);
}

/* A tuple of ints, as save_tuple writes it (the empty tuple is not memoized). */
static void p_int_tuple(pickler *pk, const uint64_t *v, int n)
{
	static const uint8_t op[] = { OP_EMPTY_TUPLE, OP_TUPLE1, OP_TUPLE2, OP_TUPLE3 };
	if (n == 0) {
		put8(&pk->b, OP_EMPTY_TUPLE);
		return;
	}
	if (n > 3)
		put8(&pk->b, OP_MARK);
	for (int i = 0; i < n; i++)
		p_int(pk, v[i]);
	put8(&pk->b, n > 3 ? OP_TUPLE : op[n]);
	memoize(pk, NULL);
}

static const char *storage_type(int dtype)
{
	switch (dtype) {
	case LP_F32: return "FloatStorage";
	case LP_F16: return "HalfStorage";
	case LP_BF16: return "BFloat16Storage";
	case LP_F64: return "DoubleStorage";
	case LP_I64: return "LongStorage";
	case LP_I32: return "IntStorage";
	case LP_I16: return "ShortStorage";
	case LP_I8: return "CharStorage";
	case LP_U8: return "ByteStorage";
	case LP_BOOL: return "BoolStorage";
	}
	return NULL;
}

/* _rebuild_tensor_v2(('storage', Type, key, 'cpu', numel), 0, size, stride,
 * False, OrderedDict()) */
static void p_tensor(pickler *pk, size_t key, int dtype, int rank, const uint64_t *shape)
{
	uint64_t stride[LP_PTH_MAX_RANK], numel = 1;
	for (int i = rank - 1; i >= 0; i--) {
		stride[i] = numel;
		numel *= shape[i];
	}
	char k[32];
	snprintf(k, sizeof k, "%zu", key);

	p_global(pk, "torch._utils", "_rebuild_tensor_v2", &pk->m_rebuild);
	put8(&pk->b, OP_MARK);          /* the arguments */
	put8(&pk->b, OP_MARK);          /* the persistent id */
	if (!get(pk, pk->m_storage_str))
		p_str(pk, "storage", &pk->m_storage_str);
	p_global(pk, "torch", storage_type(dtype), &pk->m_type[dtype]);
	p_str(pk, k, NULL);
	if (!get(pk, pk->m_cpu))
		p_str(pk, "cpu", &pk->m_cpu);
	p_int(pk, numel);
	put8(&pk->b, OP_TUPLE);
	memoize(pk, NULL);
	put8(&pk->b, OP_BINPERSID);
	p_int(pk, 0);                   /* storage offset */
	p_int_tuple(pk, shape, rank);
	p_int_tuple(pk, stride, rank);
	put8(&pk->b, OP_NEWFALSE);      /* requires_grad */
	p_global(pk, "collections", "OrderedDict", &pk->m_odict);
	put8(&pk->b, OP_EMPTY_TUPLE);
	put8(&pk->b, OP_REDUCE);        /* backward hooks: OrderedDict() */
	memoize(pk, NULL);
	put8(&pk->b, OP_TUPLE);
	memoize(pk, NULL);
	put8(&pk->b, OP_REDUCE);
	memoize(pk, NULL);
}

void lp_pth_pickle_state_dict(char *const *names, const int *dtypes, const int *ranks,
		const uint64_t (*shapes)[LP_PTH_MAX_RANK], size_t n, uint8_t **out, size_t *outlen)
{
	pickler pk = {0};
	put8(&pk.b, OP_PROTO);
	put8(&pk.b, 2);
	put8(&pk.b, OP_EMPTY_DICT);
	memoize(&pk, NULL);
	/* _pickle's batch_dict_exact: one item is a SETITEM; more go in
	 * batches of MARK ... SETITEMS (a last batch of one included) */
	for (size_t i0 = 0; i0 < n; i0 += BATCHSIZE) {
		size_t i1 = n - i0 < BATCHSIZE ? n : i0 + BATCHSIZE;
		if (n > 1)
			put8(&pk.b, OP_MARK);
		for (size_t i = i0; i < i1; i++) {
			p_str(&pk, names[i], NULL);
			p_tensor(&pk, i, dtypes[i], ranks[i], shapes[i]);
		}
		put8(&pk.b, n > 1 ? OP_SETITEMS : OP_SETITEM);
	}
	put8(&pk.b, OP_STOP);
	*out = pk.b.p;
	*outlen = pk.b.n;
}

/* ---- the zip ---- */

typedef struct {
	char *name;
	uint64_t offset;        /* of the local header */
	uint64_t size;
	uint32_t crc;
} entry;

typedef struct {
	char *name;
	int dtype, rank;
	uint64_t shape[LP_PTH_MAX_RANK];
	uint64_t nbytes;
} tensor;

struct lp_pth_writer {
	char *path;
	char *archive;          /* top folder of every entry */
	lp_atomic *a;
	FILE *f;
	uint64_t pos;           /* bytes written so far */
	entry *e;
	size_t ne, cap_e;
	tensor *t;
	size_t nt, cap_t;
	long cur;               /* tensor being written; -1 before the first */
	int started;
	uint64_t done;          /* bytes of the current entry written */
	uint32_t crc;
};

static void out(lp_pth_writer *w, const void *p, size_t n)
{
	lp_fwrite(w->f, w->path, p, n);
	w->pos += n;
}

lp_pth_writer *lp_pth_writer_new(const char *path)
{
	lp_pth_writer *w = lp_calloc(1, sizeof *w);
	w->path = lp_strdup(path);
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	w->archive = lp_strdup(base);
	char *dot = strrchr(w->archive, '.');
	if (dot && dot != w->archive)
		*dot = 0;
	w->a = lp_atomic_create(path);
	w->f = lp_atomic_file(w->a);
	w->cur = -1;
	return w;
}

void lp_pth_writer_add(lp_pth_writer *w, const char *name, int dtype, int rank,
		const uint64_t *shape)
{
	if (w->started)
		lp_die(w->path, "tensor '%s' declared after writing began", name);
	if (!storage_type(dtype))
		lp_die(w->path, "tensor '%s': no torch storage for dtype %d", name, dtype);
	if (rank < 0 || rank > LP_PTH_MAX_RANK)
		lp_die(w->path, "tensor '%s': rank %d", name, rank);
	lp_grow((void **)&w->t, &w->cap_t, w->nt + 1, sizeof *w->t);
	tensor *t = &w->t[w->nt++];
	memset(t, 0, sizeof *t);
	t->name = lp_strdup(name);
	t->dtype = dtype;
	t->rank = rank;
	uint64_t n = lp_dtype_size(dtype);
	for (int i = 0; i < rank; i++) {
		t->shape[i] = shape[i];
		if (shape[i] && n > UINT64_MAX / shape[i])
			lp_die(w->path, "tensor '%s': size overflows", name);
		n *= shape[i];
	}
	t->nbytes = n;
}

/* Local header for an entry of size bytes (CRC and sizes follow the data),
 * padded so the data starts at a multiple of ALIGN. */
static void begin_entry(lp_pth_writer *w, const char *name, uint64_t size)
{
	char full[4096];
	int len = snprintf(full, sizeof full, "%s/%s", w->archive, name);
	if (len < 0 || (size_t)len >= sizeof full)
		lp_die(w->path, "entry name too long");
	lp_grow((void **)&w->e, &w->cap_e, w->ne + 1, sizeof *w->e);
	entry *e = &w->e[w->ne++];
	e->name = lp_strdup(full);
	e->offset = w->pos;
	e->size = size;
	e->crc = 0;

	int zip64 = size >= U32MAX;
	buf h = {0};
	put32(&h, 0x04034b50);
	put16(&h, zip64 ? 45 : 0);      /* version needed */
	put16(&h, 0x0808);              /* data descriptor follows; UTF-8 name */
	put16(&h, 0);                   /* stored */
	put16(&h, 0);                   /* time */
	put16(&h, 0);                   /* date */
	put32(&h, 0);                   /* crc: in the descriptor */
	put32(&h, zip64 ? U32MAX : 0);
	put32(&h, zip64 ? U32MAX : 0);
	put16(&h, (unsigned)len);
	size_t start = w->pos + 30 + len + 4 + (zip64 ? 20 : 0);
	size_t pad = (ALIGN - start % ALIGN) % ALIGN;
	put16(&h, (unsigned)(4 + pad + (zip64 ? 20 : 0)));
	put(&h, full, len);
	if (zip64) {
		put16(&h, 0x0001);
		put16(&h, 16);
		put64(&h, 0);
		put64(&h, 0);
	}
	put16(&h, 0x4246);              /* "FB": torch's padding field */
	put16(&h, (unsigned)pad);
	for (size_t i = 0; i < pad; i++)
		put8(&h, 'Z');
	out(w, h.p, h.n);
	free(h.p);
	w->done = 0;
	w->crc = 0;
}

static void entry_data(lp_pth_writer *w, const void *p, size_t n)
{
	entry *e = &w->e[w->ne - 1];
	if (n > e->size - w->done)
		lp_die(w->path, "%s: more bytes than declared", e->name);
	out(w, p, n);
	w->crc = lp_crc32(w->crc, p, n);
	w->done += n;
}

static void end_entry(lp_pth_writer *w)
{
	entry *e = &w->e[w->ne - 1];
	if (w->done != e->size)
		lp_die(w->path, "%s: %llu of %llu bytes written", e->name,
				(unsigned long long)w->done, (unsigned long long)e->size);
	e->crc = w->crc;
	buf d = {0};
	put32(&d, 0x08074b50);
	put32(&d, e->crc);
	if (e->size >= U32MAX) {
		put64(&d, e->size);
		put64(&d, e->size);
	} else {
		put32(&d, (uint32_t)e->size);
		put32(&d, (uint32_t)e->size);
	}
	out(w, d.p, d.n);
	free(d.p);
}

static void record(lp_pth_writer *w, const char *name, const void *p, size_t n)
{
	begin_entry(w, name, n);
	entry_data(w, p, n);
	end_entry(w);
}

static void start(lp_pth_writer *w)
{
	char **names = lp_malloc((w->nt + 1) * sizeof *names);
	int *dtypes = lp_malloc((w->nt + 1) * sizeof *dtypes);
	int *ranks = lp_malloc((w->nt + 1) * sizeof *ranks);
	uint64_t (*shapes)[LP_PTH_MAX_RANK] = lp_malloc((w->nt + 1) * sizeof *shapes);
	for (size_t i = 0; i < w->nt; i++) {
		names[i] = w->t[i].name;
		dtypes[i] = w->t[i].dtype;
		ranks[i] = w->t[i].rank;
		memcpy(shapes[i], w->t[i].shape, sizeof shapes[i]);
	}
	uint8_t *pkl;
	size_t npkl;
	lp_pth_pickle_state_dict(names, dtypes, ranks, (const uint64_t (*)[LP_PTH_MAX_RANK])shapes,
			w->nt, &pkl, &npkl);
	free(names);
	free(dtypes);
	free(ranks);
	free(shapes);
	record(w, "data.pkl", pkl, npkl);
	free(pkl);
	record(w, ".format_version", "1", 1);
	record(w, ".storage_alignment", "64", 2);
	record(w, "byteorder", "little", 6);
	w->started = 1;
}

long lp_pth_writer_next(lp_pth_writer *w)
{
	if (!w->started)
		start(w);
	else if (w->cur >= 0 && (size_t)w->cur < w->nt)
		end_entry(w);
	if (w->cur >= (long)w->nt)
		return -1;
	w->cur++;
	if ((size_t)w->cur == w->nt)
		return -1;
	char name[32];
	snprintf(name, sizeof name, "data/%ld", w->cur);
	begin_entry(w, name, w->t[w->cur].nbytes);
	return w->cur;
}

void lp_pth_writer_write(lp_pth_writer *w, const void *p, size_t n)
{
	if (!w->started || w->cur < 0 || (size_t)w->cur >= w->nt)
		lp_die(w->path, "no tensor is being written");
	entry_data(w, p, n);
}

/* An id for .data/serialization_id: torch draws one at random; this one is
 * made from what the archive holds, so equal inputs give equal files. */
static void serialization_id(lp_pth_writer *w, char out_id[41])
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < w->ne; i++) {
		h ^= w->e[i].crc + w->e[i].size;
		h *= 1099511628211ull;
	}
	snprintf(out_id, 41, "%020llu%020llu", (unsigned long long)h,
			(unsigned long long)(h * 0x9e3779b97f4a7c15ull));
}

static void central_directory(lp_pth_writer *w)
{
	uint64_t cd_start = w->pos;
	buf c = {0};
	for (size_t i = 0; i < w->ne; i++) {
		entry *e = &w->e[i];
		int big_size = e->size >= U32MAX, big_off = e->offset >= U32MAX;
		size_t len = strlen(e->name);
		unsigned extra = big_size || big_off ? 4 + 16 * big_size + 8 * big_off : 0;
		put32(&c, 0x02014b50);
		put16(&c, extra ? 45 : 0);      /* version made by */
		put16(&c, extra ? 45 : 0);      /* version needed */
		put16(&c, 0x0808);
		put16(&c, 0);
		put16(&c, 0);
		put16(&c, 0);
		put32(&c, e->crc);
		put32(&c, big_size ? U32MAX : (uint32_t)e->size);
		put32(&c, big_size ? U32MAX : (uint32_t)e->size);
		put16(&c, (unsigned)len);
		put16(&c, extra);
		put16(&c, 0);                   /* comment */
		put16(&c, 0);                   /* disk */
		put16(&c, 0);                   /* internal attributes */
		put32(&c, 0);                   /* external attributes */
		put32(&c, big_off ? U32MAX : (uint32_t)e->offset);
		put(&c, e->name, len);
		if (extra) {
			put16(&c, 0x0001);
			put16(&c, extra - 4);
			if (big_size) {
				put64(&c, e->size);
				put64(&c, e->size);
			}
			if (big_off)
				put64(&c, e->offset);
		}
	}
	out(w, c.p, c.n);
	uint64_t cd_size = c.n, z64 = w->pos;
	c.n = 0;
	put32(&c, 0x06064b50);          /* zip64 end of central directory */
	put64(&c, 44);
	put16(&c, 45);
	put16(&c, 45);
	put32(&c, 0);
	put32(&c, 0);
	put64(&c, w->ne);
	put64(&c, w->ne);
	put64(&c, cd_size);
	put64(&c, cd_start);
	put32(&c, 0x07064b50);          /* its locator */
	put32(&c, 0);
	put64(&c, z64);
	put32(&c, 1);
	put32(&c, 0x06054b50);          /* end of central directory */
	put16(&c, 0);
	put16(&c, 0);
	put16(&c, w->ne >= 0xffff ? 0xffff : (unsigned)w->ne);
	put16(&c, w->ne >= 0xffff ? 0xffff : (unsigned)w->ne);
	put32(&c, cd_size >= U32MAX ? U32MAX : (uint32_t)cd_size);
	put32(&c, cd_start >= U32MAX ? U32MAX : (uint32_t)cd_start);
	put16(&c, 0);
	out(w, c.p, c.n);
	free(c.p);
}

void lp_pth_writer_close(lp_pth_writer *w)
{
	while (lp_pth_writer_next(w) >= 0)
		if (w->t[w->cur].nbytes)
			lp_die(w->path, "tensor '%s' was not written", w->t[w->cur].name);
	record(w, "version", "3\n", 2);
	char id[41];
	serialization_id(w, id);
	record(w, ".data/serialization_id", id, 40);
	central_directory(w);
	lp_atomic_commit(w->a);
	for (size_t i = 0; i < w->ne; i++)
		free(w->e[i].name);
	for (size_t i = 0; i < w->nt; i++)
		free(w->t[i].name);
	free(w->e);
	free(w->t);
	free(w->archive);
	free(w->path);
	free(w);
}
