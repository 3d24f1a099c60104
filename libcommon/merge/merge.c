/* merge.c: the merge plan, and the merged tensors made
 * block by block. The writers are in merge_export.c. */
#include "merge/merge.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/common.h"
#include "base/dtype.h"
#include "base/half.h"
#include "kernels.h"
#include "model/quant_load.h"

/* ---- the plan ---- */

static void add_tensor(lp_merge_plan *p, size_t *cap, const char *name, int role, int layer)
{
	lp_grow((void **)&p->t, cap, p->n + 1, sizeof *p->t);
	lp_merge_tensor *t = &p->t[p->n++];
	memset(t, 0, sizeof *t);
	t->name = lp_strdup(name);
	t->role = role;
	t->layer = layer;
	t->src_adapter = -1;
	t->src = lp_mf_find(p->base, name);
	if (t->src) {
		t->rank = t->src->rank;
		t->rows = t->src->shape[0];
		t->cols = t->rank == 2 ? t->src->shape[1] : 1;
	}
}

/* The tensors of a LLaMA model in Hugging Face's state-dict order. */
static void list_tensors(lp_merge_plan *p)
{
	size_t cap = 0;
	char name[128];
	add_tensor(p, &cap, lp_arch[LP_ROLE_EMBED].hf, LP_ROLE_EMBED, -1);
	for (int64_t l = 0; l < p->cfg.n_layers; l++)
		for (int role = LP_ROLE_FIRST_LAYER; role <= LP_ROLE_LAST_LAYER; role++)
			add_tensor(p, &cap, lp_arch_hf_name(role, (int)l, name, sizeof name), role,
					(int)l);
	add_tensor(p, &cap, lp_arch[LP_ROLE_NORM].hf, LP_ROLE_NORM, -1);
	add_tensor(p, &cap, lp_arch[LP_ROLE_HEAD].hf, LP_ROLE_HEAD, -1);
}

static lp_merge_tensor *plan_find(lp_merge_plan *p, const char *name)
{
	for (size_t i = 0; i < p->n; i++)
		if (!strcmp(p->t[i].name, name))
			return &p->t[i];
	return NULL;
}

static const char *shape_str(const uint64_t *s, int rank, char *buf, size_t size)
{
	if (rank == 1)
		snprintf(buf, size, "(%llu,)", (unsigned long long)s[0]);
	else if (rank == 2)
		snprintf(buf, size, "(%llu, %llu)", (unsigned long long)s[0],
				(unsigned long long)s[1]);
	else
		snprintf(buf, size, "(rank %d)", rank);
	return buf;
}

/* The last dot-separated part of a module name: "q_proj", "embed_tokens". */
static const char *leaf(const char *module)
{
	const char *s = strrchr(module, '.');
	return s ? s + 1 : module;
}

/* Is module listed in modules_to_save (PEFT: the name, or its end after a dot)? */
static int saved_module(const lp_lora_config *c, const char *module)
{
	for (size_t i = 0; i < c->n_save; i++) {
		const char *m = c->modules_to_save[i];
		size_t n = strlen(module), k = strlen(m);
		if (!strcmp(module, m) || (n > k && module[n - k - 1] == '.' &&
					!strcmp(module + n - k, m)))
			return 1;
	}
	return 0;
}

/* A whole weight of adapter k replaces the current tensor. */
static void apply_full(lp_merge_plan *p, int k, const lp_lora_full *f)
{
	const lp_adapter *a = p->ad[k];
	const lp_mf_tensor *w = f->t;
	const char *name = f->base_name;
	char module[256], s1[64], s2[64];
	snprintf(module, sizeof module, "%.*s", (int)(strlen(name) - 7), name);
	lp_merge_tensor *t = plan_find(p, name);
	if (!t)
		lp_die(a->dir, "tensor '%s': the base model has no weight '%s'", w->name, name);
	if (!saved_module(&a->cfg, module))
		lp_die(a->dir, "tensor '%s' is a whole weight, but '%s' is not in modules_to_save",
				w->name, leaf(module));
	if (w->dtype != LP_F32 && w->dtype != LP_F16 && w->dtype != LP_BF16)
		lp_die(a->dir, "tensor '%s': dtype %s is not one of f32, f16, bf16", w->name,
				lp_dtype_name(w->dtype));
	int vocab = t->role == LP_ROLE_EMBED || t->role == LP_ROLE_HEAD;
	uint64_t cur[2] = { t->rows, t->cols };
	if (t->src && (w->rank != t->rank || (t->rank == 2 && w->shape[1] != t->cols) ||
			(!vocab && w->shape[0] != t->rows)))
		lp_die(a->dir, "%s: shape %s, the weight it replaces is %s", w->name,
				shape_str(w->shape, w->rank, s1, sizeof s1),
				shape_str(cur, t->rank, s2, sizeof s2));
	if (!t->src && (w->rank != 2 || w->shape[1] != (uint64_t)p->cfg.hidden_size))
		lp_die(a->dir, "%s: shape %s, expected (vocabulary, %lld)", w->name,
				shape_str(w->shape, w->rank, s1, sizeof s1),
				(long long)p->cfg.hidden_size);
	t->src = w;
	t->src_adapter = k;
	t->rank = w->rank;
	t->rows = w->shape[0];
	t->cols = w->rank == 2 ? w->shape[1] : 1;
	t->nd = 0;              /* products queued before are replaced too */
	p->n_replaced++;
}

/* Check A and B against the current weight and queue their product. */
static void apply_lora(lp_merge_plan *p, int k, const lp_lora_pair *q)
{
	const lp_adapter *a = p->ad[k];
	char s1[64], s2[64];
	lp_merge_tensor *t = plan_find(p, q->base_name);
	if (!t || !t->src)
		lp_die(a->dir, "%s: the base model has no weight '%s'", q->module, q->base_name);
	if (t->rank != 2)
		lp_die(a->dir, "%s: LoRA on a tensor of rank %d", q->module, t->rank);
	int transposed = a->cfg.fan_in_fan_out;
	/* delta (rows, cols) = B @ A, or its transpose */
	uint64_t out = transposed ? t->cols : t->rows, in = transposed ? t->rows : t->cols;
	uint64_t cur[2] = { t->rows, t->cols };
	if (q->A->shape[1] != in)
		lp_die(a->dir, "%s: lora_A is %s, the weight is %s", q->module,
				shape_str(q->A->shape, 2, s1, sizeof s1),
				shape_str(cur, 2, s2, sizeof s2));
	if (q->B->shape[0] != out)
		lp_die(a->dir, "%s: lora_B is %s, the weight is %s", q->module,
				shape_str(q->B->shape, 2, s1, sizeof s1),
				shape_str(cur, 2, s2, sizeof s2));
	t->d = lp_realloc(t->d, (t->nd + 1) * sizeof *t->d);
	t->d[t->nd++] = (lp_lora_delta){
		.adapter = k, .A = q->A, .B = q->B, .r = (int)q->r, .transposed = transposed,
		.scale = (float)q->scale,
	};
	p->n_merged++;
}

static void apply_adapter(lp_merge_plan *p, int k)
{
	const lp_adapter *a = p->ad[k];
	for (size_t i = 0; i < a->nfull; i++) {
		/* With embedding layers resized or targeted, PEFT also saves the
		 * base's own copy of them (".original_module.", ".base_layer."),
		 * and a trained copy under two names: one of those is enough */
		int dup = 0;
		for (size_t j = 0; j < i; j++)
			dup |= !strcmp(a->full[j].base_name, a->full[i].base_name);
		if (!dup && !strstr(a->full[i].base_name, ".original_module.") &&
				!strstr(a->full[i].base_name, ".base_layer."))
			apply_full(p, k, &a->full[i]);
	}
	for (size_t i = 0; i < a->npairs; i++)
		apply_lora(p, k, &a->pairs[i]);
	for (size_t i = 0; i < a->cfg.n_save; i++) {
		int any = 0;
		for (size_t j = 0; j < a->nfull; j++) {
			char module[256];
			snprintf(module, sizeof module, "%.*s",
					(int)(strlen(a->full[j].base_name) - 7), a->full[j].base_name);
			lp_lora_config one = { .modules_to_save = &a->cfg.modules_to_save[i],
				.n_save = 1 };
			any |= saved_module(&one, module);
		}
		if (!any)
			lp_warn(a->dir, "modules_to_save lists '%s', but the adapter has no "
					"weights for it", a->cfg.modules_to_save[i]);
	}
}

static int base_dtype(const lp_model_files *m)
{
	char name[128];
	const lp_mf_tensor *t = lp_mf_find(m, lp_arch_hf_name(LP_ROLE_Q, 0, name, sizeof name));
	if (!t)
		t = lp_mf_find(m, lp_arch[LP_ROLE_EMBED].hf);
	return t ? t->dtype : LP_F32;
}

/* The source of a tensor, for messages. */
static const char *who(const lp_merge_plan *p, const lp_merge_tensor *t)
{
	return t->src_adapter < 0 ? p->base->dir : p->ad[t->src_adapter]->dir;
}

lp_merge_plan *lp_merge_plan_new(lp_model_files *base, lp_adapter **ad, size_t nad)
{
	if (!base->has_config)
		lp_die(base->dir, "no config.json or params.json: cannot tell the model's shape");
	lp_merge_plan *p = lp_calloc(1, sizeof *p);
	p->base = base;
	p->ad = ad;
	p->nad = nad;
	p->cfg = base->cfg;
	p->base_dtype = base_dtype(base);
	list_tensors(p);
	for (size_t k = 0; k < nad; k++)
		apply_adapter(p, (int)k);
	lp_merge_tensor *emb = &p->t[0], *head = &p->t[p->n - 1];
	if (!head->src) {               /* tied, and no adapter gave a head */
		free(head->name);
		free(head->d);
		p->n--;
		head = NULL;
	} else if (p->cfg.tie_word_embeddings) {
		p->untied = 1;
		p->cfg.tie_word_embeddings = 0;
	}
	if (head && head->rows != emb->rows)
		lp_die(NULL, "embed_tokens has %llu rows (from %s) but lm_head has %llu "
				"(from %s)", (unsigned long long)emb->rows, who(p, emb),
				(unsigned long long)head->rows, who(p, head));
	p->cfg.vocab_size = (int64_t)emb->rows;
	return p;
}

void lp_merge_plan_free(lp_merge_plan *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free(p->t[i].name);
		free(p->t[i].d);
	}
	free(p->t);
	free(p);
}

void lp_merge_check_vocab(const lp_merge_plan *p, const char *tok, int64_t n_pieces,
		int64_t n_added)
{
	int64_t want = n_pieces + n_added;
	char added[64] = "";
	if (n_added)
		snprintf(added, sizeof added, " and %lld added tokens", (long long)n_added);
	for (size_t i = 0; i < p->n; i++) {
		const lp_merge_tensor *t = &p->t[i];
		if (t->role != LP_ROLE_EMBED && t->role != LP_ROLE_HEAD)
			continue;
		if ((int64_t)t->rows == want)
			continue;
		int64_t diff = (int64_t)t->rows - want;
		const char *part = lp_arch[t->role].leaf;
		if (t->src_adapter >= 0)
			lp_die(NULL, "adapter %s: %s has %llu rows, tokenizer %s has %lld pieces%s "
					"(%lld %s)", who(p, t), part, (unsigned long long)t->rows, tok,
					(long long)n_pieces, added, (long long)(diff < 0 ? -diff : diff),
					diff < 0 ? "too few" : "too many");
		lp_die(NULL, "model %s: %s has %llu rows, tokenizer %s has %lld pieces%s "
				"(%lld %s)", who(p, t), part, (unsigned long long)t->rows, tok,
				(long long)n_pieces, added, (long long)(diff < 0 ? -diff : diff),
				diff < 0 ? "too few" : "too many");
	}
}

/* ---- making a tensor, block by block ---- */

#define BLOCK_ELEMS (8u << 20)  /* f32 elements per block: 32 MiB */

/* n elements of type dtype at src (any alignment) to f32 */
static void to_f32(float *dst, const void *src, int dtype, size_t n)
{
	const uint8_t *s = src;
	if (dtype == LP_F32) {
		memcpy(dst, src, n * 4);
		return;
	}
	#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++) {
		uint16_t h;
		memcpy(&h, s + 2 * i, 2);
		dst[i] = dtype == LP_BF16 ? lp_bf16_to_f32(h) : lp_f16_to_f32(h);
	}
}

static void from_f32(void *dst, int dtype, const float *src, size_t n)
{
	uint16_t *d = dst;
	if (dtype == LP_F32) {
		memcpy(dst, src, n * 4);
		return;
	}
	#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++)
		d[i] = dtype == LP_BF16 ? lp_f32_to_bf16(src[i]) : lp_f32_to_f16(src[i]);
}

/* x (rows, cols) of any float type -> f32, transposed or not */
static float *matrix_f32(const lp_mf_tensor *x, int transpose)
{
	uint64_t rows = x->shape[0], cols = x->shape[1];
	float *m = lp_malloc(rows * cols * sizeof *m), *tmp = m;
	const void *data = lp_mf_data(x);
	if (transpose)
		tmp = lp_malloc(rows * cols * sizeof *tmp);
	to_f32(tmp, data, x->dtype, rows * cols);
	if (transpose) {
		for (uint64_t i = 0; i < rows; i++)
			for (uint64_t j = 0; j < cols; j++)
				m[j * rows + i] = tmp[i * cols + j];
		free(tmp);
	}
	return m;
}

/* Does [p, p + n) lie in a mapping of a file? Pages of such a mapping can
 * be dropped once read; anything else (malloc'd copies) must stay. */
static int in_file_mapping(const void *p, size_t n)
{
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		return 0;
	char line[512];
	int found = 0;
	uintptr_t a = (uintptr_t)p;
	while (!found && fgets(line, sizeof line, f)) {
		unsigned long lo, hi, off, inode;
		char perm[8], dev[16];
		if (sscanf(line, "%lx-%lx %7s %lx %15s %lu", &lo, &hi, perm, &off, dev, &inode) == 6 &&
				a >= lo && a + n <= hi && inode != 0 && perm[1] == '-')
			found = 1;
	}
	fclose(f);
	return found;
}

/* Give back the whole pages of [p, p + n), part of a read-only file
 * mapping, once read: the resident size then stays that of a block, not
 * of the model. (Pages dropped are read again from the page cache if
 * touched again.) */
static void drop_pages(const void *p, size_t n)
{
	uintptr_t ps = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t lo = ((uintptr_t)p + ps - 1) & ~(ps - 1), hi = ((uintptr_t)p + n) & ~(ps - 1);
	if (hi > lo)
		madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

static int kernels_ready;

static void start_kernels(void)
{
	char err[256];
	if (kernels_ready)
		return;
	if (lp_kernels_init(LP_DEVICE_CPU, -1, LP_F32, err, sizeof err))
		lp_die("kernels", "%s", err);
	kernels_ready = 1;
}

/* The LoRA products of t, ready for the GEMM: L (rows, r), R (cols, r). */
typedef struct {
	float *L, *R;
	int r;
	float scale;
} product;

static product *make_products(const lp_merge_tensor *t)
{
	product *pr = lp_calloc(t->nd + 1, sizeof *pr);
	for (size_t k = 0; k < t->nd; k++) {
		const lp_lora_delta *d = &t->d[k];
		/* normal: L = B, R = A^T; transposed: L = A^T, R = B */
		pr[k].L = d->transposed ? matrix_f32(d->A, 1) : matrix_f32(d->B, 0);
		pr[k].R = d->transposed ? matrix_f32(d->B, 0) : matrix_f32(d->A, 1);
		pr[k].r = d->r;
		pr[k].scale = d->scale;
		for (int i = 0; i < 2; i++) {
			const lp_mf_tensor *x = i ? d->B : d->A;
			if (in_file_mapping(lp_mf_data(x), x->nbytes))
				drop_pages(lp_mf_data(x), x->nbytes);
		}
	}
	return pr;
}

uint64_t lp_merge_block_rows(uint64_t cols, uint64_t row_group)
{
	if (row_group < 1)
		row_group = 1;
	uint64_t nb = cols ? BLOCK_ELEMS / cols : 1;
	nb = nb / row_group * row_group;
	return nb < row_group ? row_group : nb;
}

void lp_merge_produce(const lp_merge_plan *p, size_t i, int dtype, uint64_t row_group,
		lp_rows_fn fn, void *ctx)
{
	const lp_merge_tensor *t = &p->t[i];
	const lp_mf_tensor *s = t->src;
	size_t es = lp_dtype_size(s->dtype), os = lp_dtype_size(dtype);
	uint64_t cols = t->cols, rows = t->rows;
	uint64_t nb = lp_merge_block_rows(cols, row_group);
	if (nb > rows)
		nb = rows;
	const uint8_t *src = lp_mf_data(s);
	int mapped = in_file_mapping(src, s->nbytes);
	lp_qweight *q = NULL;
	if (p->quantize && t->src_adapter < 0 && t->role >= LP_ROLE_Q && t->role <= LP_ROLE_DOWN) {
		start_kernels();
		q = lp_quantize_tensor(s, src, mapped ? drop_pages : NULL, p->quantize);
	}
	int copy = t->nd == 0 && s->dtype == dtype && !q;
	float *f = copy ? NULL : lp_malloc(nb * cols * sizeof *f);
	void *out = lp_malloc(nb * cols * os + 1);
	product *pr = t->nd ? make_products(t) : NULL;
	if (pr)
		start_kernels();
	for (uint64_t r0 = 0; r0 < rows; r0 += nb) {
		uint64_t n = rows - r0 < nb ? rows - r0 : nb;
		const uint8_t *from = src + r0 * cols * es;
		if (copy && (uintptr_t)from % os == 0) {
			fn(ctx, r0, n, from);   /* straight from the mapping */
			if (mapped)
				drop_pages(from, n * cols * es);
			continue;
		}
		if (copy) {
			memcpy(out, from, n * cols * os);
		} else {
			if (q)
				lp_dequantize_rows(f, LP_F32, q, (int64_t)r0, (int64_t)n);
			else
				to_f32(f, from, s->dtype, n * cols);
			for (size_t k = 0; k < t->nd; k++) {
				/* f (n, cols) += scale * L[r0:r0+n] @ R^T */
				lp_weight R = { pr[k].R, LP_F32, (int)cols, pr[k].r };
				lp_matmul_forward(f, pr[k].L + r0 * pr[k].r, R, (int)n, pr[k].r,
						(int)cols, pr[k].scale, 1.0f);
			}
			from_f32(out, dtype, f, n * cols);
		}
		if (mapped && !q)
			drop_pages(from, n * cols * es);
		fn(ctx, r0, n, out);
	}
	if (q) {
		lp_qweight_free(q);
		free(q);
	}
	for (size_t k = 0; pr && k < t->nd; k++) {
		free(pr[k].L);
		free(pr[k].R);
	}
	free(pr);
	free(f);
	free(out);
	lp_mf_release(s);
}
