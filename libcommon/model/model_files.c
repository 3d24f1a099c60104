/* model_files.c: model directories in every layout as one set of named
 * tensors. See model_files.h. */
#include "model/model_files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jv.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/common.h"
#include "model/arch.h"
#include "formats/pickle.h"
#include "formats/safetensors.h"
#include "formats/zipread.h"

/* One mapped weight file. */
struct lp_mf_source {
	char *path;
	const uint8_t *map;
	size_t size;
	int borrowed;           /* map is the caller's memory, not a mapping */
	int is_zip;
	lp_st_file st;
	lp_zip zip;
	lp_pk_state_dict sd;
	void **copies;          /* strided views copied out */
	size_t ncopies, capcopies;
	size_t copied;          /* their bytes, at most the file's size */
};

/* How a Meta tensor is made: parts joined along axis, then q/k permuted. */
struct lp_mf_join {
	int nparts;
	const void **part;      /* each (rows[k], cols[k]) */
	uint64_t *rows, *cols;
	int axis;
	int64_t heads;          /* > 0: permute to HF with this many heads */
};

static char *join_path(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = lp_malloc(n);
	snprintf(p, n, "%s/%s", dir, name);
	return p;
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

static int exists(const char *dir, const char *name)
{
	char *p = join_path(dir, name);
	struct stat st;
	int rc = stat(p, &st) == 0;
	free(p);
	return rc;
}

const char *lp_layout_name(int layout)
{
	static const char *const names[] = {
		[LP_LAYOUT_FILES] = "files",
		[LP_LAYOUT_SAFETENSORS] = "safetensors",
		[LP_LAYOUT_SAFETENSORS_SHARDED] = "safetensors (sharded)",
		[LP_LAYOUT_BIN] = "pytorch bin",
		[LP_LAYOUT_BIN_SHARDED] = "pytorch bin (sharded)",
		[LP_LAYOUT_META] = "meta",
	};
	return layout >= 0 && layout <= LP_LAYOUT_META ? names[layout] : "?";
}

/* ---- the tensor set ---- */

lp_model_files *lp_mf_new(const char *dir)
{
	lp_model_files *m = lp_calloc(1, sizeof *m);
	m->dir = lp_strdup(dir ? dir : ".");
	m->layout = LP_LAYOUT_FILES;
	return m;
}

static lp_mf_tensor *new_tensor(lp_model_files *m, const char *name)
{
	lp_grow((void **)&m->t, &m->tcap, m->n + 1, sizeof *m->t);
	lp_mf_tensor *t = &m->t[m->n++];
	memset(t, 0, sizeof *t);
	t->name = lp_strdup(name);
	return t;
}

static void push_source(lp_model_files *m, struct lp_mf_source *s)
{
	lp_grow((void **)&m->src, &m->srccap, m->nsrc + 1, sizeof *m->src);
	m->src[m->nsrc++] = s;
}

static struct lp_mf_source *new_source(lp_model_files *m, const char *path)
{
	struct lp_mf_source *s = lp_calloc(1, sizeof *s);
	s->path = lp_strdup(path);
	push_source(m, s);
	return s;
}

static void free_source(struct lp_mf_source *s)
{
	if (s->is_zip) {
		lp_pk_state_dict_free(&s->sd);
		lp_zip_free(&s->zip);
	} else {
		lp_st_free(&s->st);
	}
	for (size_t i = 0; i < s->ncopies; i++)
		free(s->copies[i]);
	free(s->copies);
	if (s->map && s->size && !s->borrowed)
		munmap((void *)s->map, s->size);
	free(s->path);
	free(s);
}

static void free_join(struct lp_mf_join *j)
{
	if (!j)
		return;
	free(j->part);
	free(j->rows);
	free(j->cols);
	free(j);
}

void lp_model_files_close(lp_model_files *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++) {
		free(m->t[i].name);
		free(m->t[i].stored_name);
		free(m->t[i].owned);
		free_join(m->t[i].join);
	}
	for (size_t i = 0; i < m->nsrc; i++)
		free_source(m->src[i]);
	free(m->src);
	free(m->t);
	free(m->by_name);
	free(m->dir);
	free(m);
}

static int by_name(const void *a, const void *b, void *arg)
{
	const lp_mf_tensor *t = arg;
	return strcmp(t[*(const size_t *)a].name, t[*(const size_t *)b].name);
}

/* Sort the name index; a name twice is an error. */
static int index_names(lp_model_files *m, char *err, size_t errlen)
{
	free(m->by_name);
	m->by_name = lp_malloc((m->n ? m->n : 1) * sizeof *m->by_name);
	for (size_t i = 0; i < m->n; i++)
		m->by_name[i] = i;
	qsort_r(m->by_name, m->n, sizeof *m->by_name, by_name, m->t);
	for (size_t i = 1; i < m->n; i++) {
		const lp_mf_tensor *a = &m->t[m->by_name[i - 1]], *b = &m->t[m->by_name[i]];
		if (!strcmp(a->name, b->name))
			return lp_fail(err, errlen, "tensor '%s' is in both %s and %s", a->name,
					base_name(a->file), base_name(b->file));
	}
	return 0;
}

static const char *tensor_name(const void *ctx, size_t i)
{
	return ((const lp_mf_tensor *)ctx)[i].name;
}

const lp_mf_tensor *lp_mf_find(const lp_model_files *m, const char *name)
{
	long i = lp_find_sorted(m->by_name, m->n, name, tensor_name, m->t);
	return i < 0 ? NULL : &m->t[i];
}

const lp_mf_tensor *lp_mf_get(const lp_model_files *m, const char *name)
{
	const lp_mf_tensor *t = lp_mf_find(m, name);
	if (!t)
		lp_die(m->dir, "no tensor '%s'", name);
	return t;
}

/* ---- mapping a file ---- */

static int map_file(struct lp_mf_source *s, char *err, size_t errlen)
{
	int fd = open(s->path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return lp_fail(err, errlen, "%s: %s", base_name(s->path), strerror(e));
	}
	if (!S_ISREG(st.st_mode) || st.st_size == 0) {
		close(fd);
		return lp_fail(err, errlen, "%s: %s", base_name(s->path),
				st.st_size ? "not a regular file" : "empty file");
	}
	void *p = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	int e = errno;
	close(fd);
	if (p == MAP_FAILED)
		return lp_fail(err, errlen, "%s: cannot map: %s", base_name(s->path), strerror(e));
	s->map = p;
	s->size = st.st_size;
	return 0;
}

static lp_mf_tensor *add_tensor(lp_model_files *m, struct lp_mf_source *s, const char *name,
		int dtype, int rank, const uint64_t *shape, const void *data)
{
	lp_mf_tensor *t = new_tensor(m, name);
	t->dtype = dtype;
	t->rank = rank;
	t->numel = 1;
	for (int d = 0; d < rank; d++) {
		t->shape[d] = shape[d];
		t->numel *= shape[d];
	}
	t->nbytes = t->numel * lp_dtype_size(dtype);
	t->file = s->path;
	t->data = data;
	return t;
}

static int add_safetensors(lp_model_files *m, struct lp_mf_source *s, char *err, size_t errlen)
{
	char e[512];
	if (lp_st_parse(s->map, s->size, &s->st, e, sizeof e))
		return lp_fail(err, errlen, "%s: %s", base_name(s->path), e);
	for (size_t i = 0; i < s->st.n; i++) {
		const lp_st_tensor *x = &s->st.tensors[i];
		add_tensor(m, s, x->name, x->dtype, x->rank, x->shape, x->data);
	}
	return 0;
}

/* ---- PyTorch zip checkpoints ---- */

static void *alloc_bytes(size_t n)
{
	return lp_malloc(n > 0 ? n : 1);
}

/* Copy a strided view out, row-major. */
static void *gather(const uint8_t *base, const lp_pk_tensor *t, size_t es)
{
	uint8_t *out = alloc_bytes(t->numel * es), *o = out;
	uint64_t idx[LP_PK_MAX_RANK] = {0};
	for (uint64_t k = 0; k < t->numel; k++) {
		uint64_t off = t->offset;
		for (int d = 0; d < t->rank; d++)
			off += idx[d] * t->stride[d];
		memcpy(o, base + off * es, es);
		o += es;
		for (int d = t->rank - 1; d >= 0; d--) {
			if (++idx[d] < t->shape[d])
				break;
			idx[d] = 0;
		}
	}
	return out;
}

/* The archive's one "<name>/data.pkl"; *prefix_len is the length of name. */
static const lp_zip_entry *find_pickle(const lp_zip *z, size_t *prefix_len, char *err,
		size_t errlen)
{
	const lp_zip_entry *found = NULL;
	for (size_t i = 0; i < z->n; i++) {
		const char *s = strchr(z->e[i].name, '/');
		if (!s || strcmp(s, "/data.pkl"))
			continue;
		if (found) {
			lp_fail(err, errlen, "two pickles in one archive (%s, %s)", found->name,
					z->e[i].name);
			return NULL;
		}
		found = &z->e[i];
		*prefix_len = s - found->name;
	}
	if (!found)
		lp_fail(err, errlen, "a zip archive without <name>/data.pkl is not a PyTorch "
				"checkpoint");
	return found;
}

static int torch_tensors(lp_model_files *m, struct lp_mf_source *s, char *err, size_t errlen)
{
	size_t plen = 0;
	const lp_zip_entry *pk = find_pickle(&s->zip, &plen, err, errlen);
	if (!pk)
		return -1;
	char name[512];
	snprintf(name, sizeof name, "%.*s/byteorder", (int)plen, pk->name);
	const lp_zip_entry *bo = lp_zip_find(&s->zip, name);
	if (bo && !(bo->size == 6 && !memcmp(bo->data, "little", 6)))
		return lp_fail(err, errlen, "the checkpoint was saved on a big-endian machine; "
				"only little-endian ones are read");
	if (lp_zip_check_crc(pk, err, errlen) ||
			lp_pk_state_dict_parse(pk->data, pk->size, &s->sd, err, errlen))
		return -1;
	for (size_t i = 0; i < s->sd.n; i++) {
		const lp_pk_tensor *t = &s->sd.t[i];
		size_t es = lp_dtype_size(t->dtype);
		if (strlen(t->storage) > 200)
			return lp_fail(err, errlen, "tensor '%s': storage key too long", t->name);
		snprintf(name, sizeof name, "%.*s/data/%s", (int)plen, pk->name, t->storage);
		const lp_zip_entry *e = lp_zip_find(&s->zip, name);
		if (!e)
			return lp_fail(err, errlen, "tensor '%s': its storage '%s' is not in the archive",
					t->name, name);
		if (e->size / es != t->storage_numel || e->size % es)
			return lp_fail(err, errlen, "tensor '%s': storage '%s' holds %llu bytes, not "
					"%llu elements of %s", t->name, name,
					(unsigned long long)e->size,
					(unsigned long long)t->storage_numel, lp_dtype_name(t->dtype));
		const void *data = t->numel ? e->data + t->offset * es : e->data;
		if (!t->contiguous && (t->numel > t->storage_numel ||
					t->numel * es > s->size - s->copied))
			return lp_fail(err, errlen, "tensor '%s' is a strided view of %llu elements "
					"on a storage of %llu; broadcast views, or views adding up to "
					"more than the file, are not read", t->name,
					(unsigned long long)t->numel,
					(unsigned long long)t->storage_numel);
		if (!t->contiguous) {
			s->copied += t->numel * es;
			void *copy = gather(e->data, t, es);
			lp_grow((void **)&s->copies, &s->capcopies, s->ncopies + 1, sizeof *s->copies);
			s->copies[s->ncopies++] = copy;
			data = copy;
		}
		add_tensor(m, s, t->name, t->dtype, t->rank, t->shape, data);
	}
	return 0;
}

static int add_torch(lp_model_files *m, struct lp_mf_source *s, char *err, size_t errlen)
{
	char e[512];
	s->is_zip = 1;
	if (lp_zip_parse(s->map, s->size, &s->zip, e, sizeof e) ||
			torch_tensors(m, s, e, sizeof e))
		return lp_fail(err, errlen, "%s: %s", base_name(s->path), e);
	return 0;
}

/* A zip is a PyTorch checkpoint; anything else must be safetensors. */
static int add_source(lp_model_files *m, struct lp_mf_source *s, char *err, size_t errlen)
{
	int rc = s->size >= 4 && !memcmp(s->map, "PK\3\4", 4) ?
		add_torch(m, s, err, errlen) : add_safetensors(m, s, err, errlen);
	m->nshards++;
	return rc ? rc : index_names(m, err, errlen);
}

int lp_mf_add_file(lp_model_files *m, const char *path, char *err, size_t errlen)
{
	struct lp_mf_source *s = new_source(m, path);
	return map_file(s, err, errlen) ? -1 : add_source(m, s, err, errlen);
}

int lp_mf_add_memory(lp_model_files *m, const char *name, const void *buf, size_t n,
		char *err, size_t errlen)
{
	struct lp_mf_source *s = new_source(m, name);
	s->map = buf;
	s->size = n;
	s->borrowed = 1;
	return add_source(m, s, err, errlen);
}

/* ---- Meta layout: names, joins, q/k permutation ---- */

/* Map a Meta name to HF's (to_hf) or back: the axis Meta's shards split
 * it along (lp_arch), -1 for replicated, -2 for not a LLaMA tensor. */
static int meta_map(const char *name, char *out, size_t size, int to_hf)
{
	int layer, role = to_hf ? lp_arch_parse_meta(name, &layer) : lp_arch_parse_hf(name, &layer);
	if (role < 0)
		return -2;
	if (to_hf)
		lp_arch_hf_name(role, layer, out, size);
	else
		lp_arch_meta_name(role, layer, out, size);
	return lp_arch[role].meta_axis;
}

int lp_meta_to_hf_name(const char *meta, char *out, size_t size)
{
	return meta_map(meta, out, size, 1) == -2 ? -1 : 0;
}

int lp_hf_to_meta_name(const char *hf, char *out, size_t size)
{
	return meta_map(hf, out, size, 0) == -2 ? -1 : 0;
}

static void permute(uint8_t *dst, const uint8_t *src, int64_t heads, int64_t rows,
		int64_t cols, size_t es, int to_hf)
{
	int64_t D = rows / heads, half = D / 2;
	size_t rb = cols * es;
	for (int64_t h = 0; h < heads; h++)
		for (int64_t i = 0; i < half; i++)
			for (int64_t j = 0; j < 2; j++) {
				int64_t hf = h * D + j * half + i, meta = h * D + 2 * i + j;
				int64_t to = to_hf ? hf : meta, from = to_hf ? meta : hf;
				memcpy(dst + to * rb, src + from * rb, rb);
			}
}

void lp_rope_permute_to_hf(void *dst, const void *src, int64_t n_heads, int64_t rows,
		int64_t cols, size_t elsize)
{
	permute(dst, src, n_heads, rows, cols, elsize, 1);
}

void lp_rope_permute_to_meta(void *dst, const void *src, int64_t n_heads, int64_t rows,
		int64_t cols, size_t elsize)
{
	permute(dst, src, n_heads, rows, cols, elsize, 0);
}

const void *lp_mf_data(const lp_mf_tensor *ct)
{
	lp_mf_tensor *t = (lp_mf_tensor *)ct;   /* it lives in a set, never const */
	struct lp_mf_join *j = t->join;
	if (t->data || !j)
		return t->data;
	size_t es = lp_dtype_size(t->dtype);
	uint8_t *out = alloc_bytes(t->nbytes);
	const uint8_t *joined = j->part[0];
	uint8_t *tmp = NULL;
	if (j->nparts > 1) {
		joined = tmp = j->heads ? alloc_bytes(t->nbytes) : out;
		if (j->axis == 0) {
			size_t off = 0;
			for (int k = 0; k < j->nparts; k++) {
				size_t n = j->rows[k] * j->cols[k] * es;
				memcpy(tmp + off, j->part[k], n);
				off += n;
			}
		} else {
			uint64_t cols = t->shape[1];
			for (uint64_t r = 0; r < t->shape[0]; r++) {
				uint64_t c0 = 0;
				for (int k = 0; k < j->nparts; k++) {
					memcpy(tmp + (r * cols + c0) * es,
							(const uint8_t *)j->part[k] + r * j->cols[k] * es,
							j->cols[k] * es);
					c0 += j->cols[k];
				}
			}
		}
	}
	if (j->heads)
		permute(out, joined, j->heads, t->shape[0], t->shape[1], es, 1);
	if (tmp != out)
		free(tmp);
	t->owned = out;
	t->data = out;
	return out;
}

void lp_mf_release(const lp_mf_tensor *ct)
{
	lp_mf_tensor *t = (lp_mf_tensor *)ct;
	if (!t->join || !t->owned)
		return;
	free(t->owned);
	t->owned = NULL;
	t->data = NULL;
}

/* ---- checks against the config ---- */

static const char *shape_str(const uint64_t *shape, int rank, char *buf, size_t size)
{
	size_t k = snprintf(buf, size, "(");
	for (int d = 0; d < rank && k < size; d++)
		k += snprintf(buf + k, size - k, "%s%llu", d ? ", " : "",
				(unsigned long long)shape[d]);
	if (k < size)
		snprintf(buf + k, size - k, rank == 1 ? ",)" : ")");
	return buf;
}

struct want {
	char name[96];
	int rank;
	uint64_t shape[2];
};

/* One tensor the config implies. */
static void want_role(struct want *w, const lp_model_config *c, int role, int layer)
{
	int64_t shape[2];
	lp_arch_hf_name(role, layer, w->name, sizeof w->name);
	lp_arch_shape(c, role, shape);
	w->rank = lp_arch[role].rank;
	w->shape[0] = (uint64_t)shape[0];
	w->shape[1] = (uint64_t)shape[1];
}

/* The tensors a config implies, in model order; returns how many. */
static size_t expected(const lp_model_config *c, struct want *w, int with_head)
{
	size_t n = 0;
	if (w)
		want_role(&w[n], c, LP_ROLE_EMBED, -1);
	n++;
	for (int64_t l = 0; l < c->n_layers; l++)
		for (int r = LP_ROLE_FIRST_LAYER; r <= LP_ROLE_LAST_LAYER; r++, n++)
			if (w)
				want_role(&w[n], c, r, (int)l);
	if (w)
		want_role(&w[n], c, LP_ROLE_NORM, -1);
	n++;
	if (with_head) {
		if (w)
			want_role(&w[n], c, LP_ROLE_HEAD, -1);
		n++;
	}
	return n;
}

static const char *where(const lp_mf_tensor *t, char *buf, size_t size)
{
	if (t->stored_name)
		snprintf(buf, size, "%s (%s in %s)", t->name, t->stored_name, base_name(t->file));
	else
		snprintf(buf, size, "%s", t->name);
	return buf;
}

int lp_mf_check(const lp_model_files *m, char *err, size_t errlen)
{
	const lp_model_config *c = &m->cfg;
	const char *head_name = lp_arch[LP_ROLE_HEAD].hf;
	int head = !c->tie_word_embeddings || lp_mf_find(m, head_name);
	size_t n = expected(c, NULL, head), found = 0;
	struct want *w = lp_malloc(n * sizeof *w);
	char a[64], b[64], nm[256];
	int rc = 0;
	expected(c, w, head);
	for (size_t i = 0; i < n && !rc; i++) {
		const lp_mf_tensor *t = lp_mf_find(m, w[i].name);
		if (!t) {
			rc = lp_fail(err, errlen, "tensor %s is missing (the config has %lld layers%s)",
					w[i].name, (long long)c->n_layers,
					!strcmp(w[i].name, head_name) ?
					" and untied embeddings" : "");
			break;
		}
		found++;
		if (t->rank != w[i].rank || t->shape[0] != w[i].shape[0] ||
				(t->rank == 2 && t->shape[1] != w[i].shape[1]))
			rc = lp_fail(err, errlen, "%s: shape %s, config says %s", where(t, nm, sizeof nm),
					shape_str(t->shape, t->rank, a, sizeof a),
					shape_str(w[i].shape, w[i].rank, b, sizeof b));
		else if (t->dtype != LP_F32 && t->dtype != LP_F16 && t->dtype != LP_BF16)
			rc = lp_fail(err, errlen, "%s: dtype %s is not one of f32, f16, bf16",
					where(t, nm, sizeof nm), lp_dtype_name(t->dtype));
	}
	for (size_t i = 0; i < m->n && !rc && found < m->n; i++) {
		const lp_mf_tensor *t = &m->t[i];
		size_t k = 0;
		while (k < n && strcmp(w[k].name, t->name))
			k++;
		if (k == n)
			rc = lp_fail(err, errlen, "unexpected tensor %s: not part of a LLaMA model with "
					"this config (%lld layers)", where(t, nm, sizeof nm),
					(long long)c->n_layers);
	}
	free(w);
	return rc;
}

/* Old transformers saved the rotary buffers; they are recomputed here. */
static void drop_inv_freq(lp_model_files *m)
{
	size_t k = 0;
	for (size_t i = 0; i < m->n; i++) {
		size_t len = strlen(m->t[i].name), sl = strlen(".rotary_emb.inv_freq");
		if (len > sl && !strcmp(m->t[i].name + len - sl, ".rotary_emb.inv_freq")) {
			free(m->t[i].name);
			free(m->t[i].stored_name);
			continue;
		}
		m->t[k++] = m->t[i];
	}
	m->n = k;
}

/* ---- HF layouts ---- */

static int read_config(lp_model_files *m, const char *name, int meta, char *err, size_t errlen)
{
	char *path = join_path(m->dir, name), e[512];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd < 0)
		return lp_fail(err, errlen, "%s: %s", name, strerror(errno));
	size_t n = 0, cap = 4096;
	char *buf = lp_malloc(cap);
	ssize_t got;
	while ((got = read(fd, buf + n, cap - n)) > 0)
		if ((n += got) == cap && cap < (64u << 20))
			buf = lp_realloc(buf, cap *= 2);
	close(fd);
	int rc = got < 0 ? lp_fail(e, sizeof e, "%s", strerror(errno)) :
		meta ? lp_config_parse_meta(buf, n, &m->cfg, e, sizeof e) :
		lp_config_parse_hf(buf, n, &m->cfg, e, sizeof e);
	free(buf);
	if (rc)
		return lp_fail(err, errlen, "%s: %s", name, e);
	m->has_config = 1;
	return 0;
}

/* A shard name from an index: a plain file name in the directory. */
static int safe_name(const char *s)
{
	return *s && *s != '.' && !strchr(s, '/');
}

static int open_sharded(lp_model_files *m, const char *index, char *err, size_t errlen)
{
	char *path = join_path(m->dir, index), e[512];
	size_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		free(path);
		return lp_fail(err, errlen, "%s: %s", index, strerror(errno));
	}
	close(fd);
	char *text = lp_read_file(path, &n);
	free(path);
	jv top = jv_parse_sized(text, (int)(n < (64u << 20) ? n : 0));
	free(text);
	jv map = jv_get_kind(top) == JV_KIND_OBJECT ?
		jv_object_get(jv_copy(top), jv_string("weight_map")) : jv_invalid();
	jv_free(top);
	int rc = 0;
	if (jv_get_kind(map) != JV_KIND_OBJECT) {
		jv_free(map);
		return lp_fail(err, errlen, "%s: not JSON with a \"weight_map\" object", index);
	}
	/* each file once, in order of first mention */
	jv files = jv_object();
	jv_object_foreach(map, key, val) {
		if (!rc && (jv_get_kind(val) != JV_KIND_STRING || !safe_name(jv_string_value(val))))
			rc = lp_fail(err, errlen, "%s: tensor '%s' maps to a bad file name", index,
					jv_string_value(key));
		if (!rc && !jv_object_has(jv_copy(files), jv_copy(val))) {
			files = jv_object_set(files, jv_copy(val), jv_true());
			char *p = join_path(m->dir, jv_string_value(val));
			rc = lp_mf_add_file(m, p, e, sizeof e);
			free(p);
			if (rc)
				lp_fail(err, errlen, "%s", e);
		}
		jv_free(key);
		jv_free(val);
	}
	/* every tensor the index names is in the file it names */
	jv_object_foreach(map, key, val) {
		const lp_mf_tensor *t = rc ? NULL : lp_mf_find(m, jv_string_value(key));
		if (!rc && (!t || strcmp(base_name(t->file), jv_string_value(val))))
			rc = lp_fail(err, errlen, "%s: tensor %s is not in %s", index,
					jv_string_value(key), jv_string_value(val));
		jv_free(key);
		jv_free(val);
	}
	jv_free(files);
	jv_free(map);
	return rc;
}

/* ---- Meta layout ---- */

static int shard_number(const char *name)
{
	const char *p = "consolidated.";
	size_t n = strlen(p);
	if (strncmp(name, p, n))
		return -1;
	char *end;
	long k = strtol(name + n, &end, 10);
	if (end == name + n || strcmp(end, ".pth") || k < 0 || k > 4096)
		return -1;
	return (int)k;
}

static int count_shards(const char *dir, char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	if (!d)
		return lp_fail(err, errlen, "%s", strerror(errno));
	int n = 0, max = -1;
	struct dirent *e;
	while ((e = readdir(d))) {
		int k = shard_number(e->d_name);
		if (k >= 0) {
			n++;
			max = k > max ? k : max;
		}
	}
	closedir(d);
	if (n == 0)
		return lp_fail(err, errlen, "params.json but no consolidated.00.pth");
	if (max != n - 1)
		return lp_fail(err, errlen, "%d consolidated.NN.pth shards, but the highest is number "
				"%d: some are missing", n, max);
	return n;
}

/* The axis along which shards of a role were split, from the table and,
 * for the embedding, from the shard shapes. */
static int split_axis(const lp_model_config *c, int role, const lp_mf_tensor *part0,
		int nshards)
{
	if (role == LP_ROLE_EMBED && part0->rank == 2)
		return part0->shape[1] * nshards == (uint64_t)c->hidden_size ? 1 : 0;
	return lp_arch[role].meta_axis;
}

/* The HF tensor made of shard tensors p0 (in shard 0) and its namesakes. */
static int join_one(lp_model_files *m, lp_model_files **sh, int ns, const lp_mf_tensor *p0,
		const lp_mf_tensor **part, char *err, size_t errlen)
{
	char hf[256];
	const lp_model_config *c = &m->cfg;
	int layer, role = lp_arch_parse_meta(p0->name, &layer);
	if (role < 0)
		return lp_fail(err, errlen, "%s: unexpected tensor '%s': not part of a "
				"LLaMA model", base_name(p0->file), p0->name);
	lp_arch_hf_name(role, layer, hf, sizeof hf);
	int axis = split_axis(c, role, p0, ns);
	for (int k = 0; k < ns; k++) {
		part[k] = k ? lp_mf_find(sh[k], p0->name) : p0;
		if (!part[k])
			return lp_fail(err, errlen, "%s: tensor '%s' is missing (it is in %s)",
					base_name(sh[k]->src[0]->path), p0->name,
					base_name(p0->file));
		if (axis >= 0 && part[k]->rank != 2)
			return lp_fail(err, errlen, "%s: tensor '%s' has %d dimensions, not 2",
					base_name(part[k]->file), p0->name, part[k]->rank);
		if (part[k]->dtype != p0->dtype || part[k]->rank != p0->rank)
			return lp_fail(err, errlen, "%s: tensor '%s' has another dtype or rank "
					"than in %s", base_name(part[k]->file), p0->name,
					base_name(p0->file));
		for (int d = 0; d < p0->rank; d++)
			if (d != axis && part[k]->shape[d] != p0->shape[d])
				return lp_fail(err, errlen, "%s: tensor '%s' cannot be joined with "
						"the one in %s: dimension %d differs",
						base_name(part[k]->file), p0->name,
						base_name(p0->file), d);
		if (axis < 0 && memcmp(part[k]->data, p0->data, p0->nbytes))
			return lp_fail(err, errlen, "%s: tensor '%s' should be the same in every "
					"shard, but differs from the one in %s",
					base_name(part[k]->file), p0->name, base_name(p0->file));
	}
	uint64_t shape[2] = {p0->shape[0], p0->rank == 2 ? p0->shape[1] : 0};
	if (axis >= 0)
		for (int k = 1; k < ns; k++)
			shape[axis] += part[k]->shape[axis];
	int64_t heads = lp_arch_rope_heads(c, role);
	lp_mf_tensor *t = add_tensor(m, sh[0]->src[0], hf, p0->dtype, p0->rank, shape,
			p0->data);
	t->stored_name = lp_strdup(p0->name);
	if ((ns > 1 && axis >= 0) || heads) {
		struct lp_mf_join *j = t->join = lp_calloc(1, sizeof *j);
		j->nparts = axis >= 0 ? ns : 1;
		j->part = lp_malloc(j->nparts * sizeof *j->part);
		j->rows = lp_malloc(j->nparts * sizeof *j->rows);
		j->cols = lp_malloc(j->nparts * sizeof *j->cols);
		for (int k = 0; k < j->nparts; k++) {
			j->part[k] = part[k]->data;
			j->rows[k] = part[k]->shape[0];
			j->cols[k] = part[k]->shape[1];
		}
		j->axis = axis;
		j->heads = heads;
		t->data = NULL;
	}
	return 0;
}

static int join_meta(lp_model_files *m, lp_model_files **sh, int ns, char *err, size_t errlen)
{
	const lp_mf_tensor **part = lp_malloc(ns * sizeof *part);
	int rc = 0;
	for (size_t i = 0; i < sh[0]->n && !rc; i++)
		if (strcmp(sh[0]->t[i].name, "rope.freqs"))    /* Llama 1 kept it; unused */
			rc = join_one(m, sh, ns, &sh[0]->t[i], part, err, errlen);
	free(part);
	/* every shard holds the same names: none has one shard 0 lacks */
	for (int k = 1; k < ns && !rc; k++)
		for (size_t i = 0; i < sh[k]->n && !rc; i++)
			if (!lp_mf_find(sh[0], sh[k]->t[i].name))
				rc = lp_fail(err, errlen, "%s: tensor '%s' is not in %s",
						base_name(sh[k]->t[i].file), sh[k]->t[i].name,
						base_name(sh[0]->src[0]->path));
	return rc;
}

/* q/k permutation needs whole rotary pairs in each head. */
static int check_heads(const lp_model_files *m, char *err, size_t errlen)
{
	for (size_t i = 0; i < m->n; i++) {
		const lp_mf_tensor *t = &m->t[i];
		if (t->join && t->join->heads && (t->rank != 2 ||
				t->shape[0] % (2 * t->join->heads)))
			return lp_fail(err, errlen, "%s: %llu rows cannot be %lld heads of rotary pairs",
					t->name, (unsigned long long)t->shape[0],
					(long long)t->join->heads);
	}
	return 0;
}

static int open_meta(lp_model_files *m, char *err, size_t errlen)
{
	int ns = count_shards(m->dir, err, errlen);
	if (ns < 0)
		return -1;
	lp_model_files **sh = lp_calloc(ns, sizeof *sh);
	int rc = 0;
	for (int k = 0; k < ns && !rc; k++) {
		char name[64];
		snprintf(name, sizeof name, "consolidated.%02d.pth", k);
		if (!exists(m->dir, name))
			rc = lp_fail(err, errlen, "%s is missing (shard numbers are written with two "
					"digits)", name);
		char *p = join_path(m->dir, name);
		sh[k] = lp_mf_new(m->dir);
		if (!rc)
			rc = lp_mf_add_file(sh[k], p, err, errlen);
		free(p);
	}
	if (!rc)
		rc = join_meta(m, sh, ns, err, errlen);
	/* the shards' mappings now belong to m; their tensor lists go */
	for (int k = 0; k < ns; k++) {
		if (!sh[k])
			continue;
		for (size_t i = 0; i < sh[k]->nsrc; i++)
			push_source(m, sh[k]->src[i]);
		sh[k]->nsrc = 0;
		lp_model_files_close(sh[k]);
	}
	free(sh);
	m->nshards = ns;
	if (rc)
		return rc;
	const lp_mf_tensor *emb = NULL;
	for (size_t i = 0; i < m->n; i++)
		if (!strcmp(m->t[i].name, lp_arch[LP_ROLE_EMBED].hf))
			emb = &m->t[i];
	if (m->cfg.vocab_size < 0 && emb && emb->rank == 2)
		m->cfg.vocab_size = emb->shape[0];
	return check_heads(m, err, errlen);
}

/* ---- opening a directory ---- */

static int open_dir(lp_model_files *m, char *err, size_t errlen)
{
	static const struct { const char *file; int layout; } hf[] = {
		{"model.safetensors.index.json", LP_LAYOUT_SAFETENSORS_SHARDED},
		{"model.safetensors", LP_LAYOUT_SAFETENSORS},
		{"pytorch_model.bin.index.json", LP_LAYOUT_BIN_SHARDED},
		{"pytorch_model.bin", LP_LAYOUT_BIN},
	};
	struct stat st;
	if (stat(m->dir, &st) != 0)
		return lp_fail(err, errlen, "%s", strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return lp_fail(err, errlen, "not a directory (a model is a directory)");
	for (size_t i = 0; i < sizeof hf / sizeof *hf; i++) {
		if (!exists(m->dir, hf[i].file))
			continue;
		m->layout = hf[i].layout;
		if (read_config(m, "config.json", 0, err, errlen))
			return -1;
		int rc;
		if (m->layout == LP_LAYOUT_SAFETENSORS_SHARDED || m->layout == LP_LAYOUT_BIN_SHARDED) {
			rc = open_sharded(m, hf[i].file, err, errlen);
		} else {
			char *p = join_path(m->dir, hf[i].file);
			rc = lp_mf_add_file(m, p, err, errlen);
			free(p);
		}
		return rc;
	}
	if (exists(m->dir, "params.json")) {
		m->layout = LP_LAYOUT_META;
		return read_config(m, "params.json", 1, err, errlen) ? -1 : open_meta(m, err, errlen);
	}
	return lp_fail(err, errlen, "no model here: expected config.json with model.safetensors, "
			"model.safetensors.index.json, pytorch_model.bin or "
			"pytorch_model.bin.index.json, or Meta's params.json with "
			"consolidated.00.pth");
}

lp_model_files *lp_model_files_open(const char *dir, char *err, size_t errlen)
{
	lp_model_files *m = lp_mf_new(dir);
	int rc = open_dir(m, err, errlen);
	if (!rc) {
		drop_inv_freq(m);
		rc = index_names(m, err, errlen);
	}
	if (!rc)
		rc = lp_mf_check(m, err, errlen);
	if (rc) {
		lp_model_files_close(m);
		return NULL;
	}
	return m;
}

lp_model_files *lp_model_files_load(const char *dir)
{
	char err[1024];
	lp_model_files *m = lp_model_files_open(dir, err, sizeof err);
	if (!m)
		lp_die(dir, "%s", err);
	return m;
}
