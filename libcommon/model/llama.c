/* llama.c: LLaMA inference on the compute layer, with a KV cache and LoRA
 * applied on the fly. The forward pass reads top to bottom as the model:
 *
 *   x = embed(ids)
 *   per layer:  x += o(attn(rope(q(n1(x))), rope(k(n1(x))), v(n1(x))))
 *               x += down(silu(gate(n2(x))) * up(n2(x)))
 *   logits = head(norm(x))
 *
 * where every Linear is lp_linear(): W plus its LoRA pairs. */
#include "model/llama.h"

#include <stdlib.h>
#include <string.h>

#include "base/common.h"

/* ---- loading ---- */

static void *own(lp_llama *m, size_t bytes)
{
	void *p = lp_alloc(bytes);
	size_t cap = m->cap_owned;
	lp_grow((void **)&m->owned, &cap, m->n_owned + 1, sizeof *m->owned);
	m->cap_owned = cap;
	m->owned[m->n_owned++] = p;
	return p;
}

/* A tensor of the files as a device weight of (rows, cols); cols 0 for 1-D. */
static lp_weight upload(lp_llama *m, const lp_mf_tensor *t, int64_t rows, int64_t cols)
{
	int64_t want_rows = cols ? rows : 1, want_cols = cols ? cols : rows;
	int ok = cols ? t->rank == 2 && (int64_t)t->shape[0] == rows && (int64_t)t->shape[1] == cols
		      : t->rank == 1 && (int64_t)t->shape[0] == rows;
	if (!ok)
		lp_die(t->name, "unexpected shape (rank %d, %llu x %llu), want %lld x %lld", t->rank,
				(unsigned long long)t->shape[0],
				(unsigned long long)(t->rank > 1 ? t->shape[1] : 1),
				(long long)rows, (long long)(cols ? cols : 1));
	if (t->dtype != LP_F32 && t->dtype != LP_BF16 && t->dtype != LP_F16)
		lp_die(t->name, "dtype %s is not a float weight type", lp_dtype_name(t->dtype));
	const void *src = lp_mf_data(t);
	int dtype = t->dtype;
	void *dst;
	if (lp_kernels_device() != LP_DEVICE_CPU && dtype != lp_act_dtype()) {
		/* once, here, to the activation type, so that no GEMM converts it
		 * per call (the CPU backend reads any float type in its ops) */
		void *raw = lp_alloc(t->nbytes);
		lp_upload(raw, src, t->nbytes);
		dtype = lp_act_dtype();
		dst = own(m, (size_t)t->numel * lp_dtype_size(dtype));
		lp_convert(dst, dtype, raw, t->dtype, (size_t)t->numel);
		lp_free(raw);
	} else {
		dst = own(m, t->nbytes);
		lp_upload(dst, src, t->nbytes);
	}
	lp_mf_release(t);
	return (lp_weight){dst, dtype, (int)want_rows, (int)want_cols};
}

static const lp_mf_tensor *base_tensor(const lp_model_files *mf, const char *name)
{
	const lp_mf_tensor *t = lp_mf_find(mf, name);
	if (!t)
		lp_die(mf->dir, "tensor %s is missing", name);
	return t;
}

/* The base's tensor of role in layer, with the shape the config implies. */
/* The base's tensor of role in layer, uploaded as stored, or held
 * quantized as qtype (a Linear weight; 0: as stored). */
static lp_weight upload_role(lp_llama *m, const lp_model_files *mf, int role, int layer,
		int qtype)
{
	char name[256];
	int64_t shape[2];
	lp_arch_shape(&m->cfg, role, shape);
	const lp_mf_tensor *t = base_tensor(mf, lp_arch_hf_name(role, layer, name, sizeof name));
	return qtype ? lp_qweights_load(&m->qw, t, shape[0], shape[1], qtype)
		: upload(m, t, shape[0], shape[1]);
}

/* The last adapter that saves a full copy of name, or NULL. */
static const lp_mf_tensor *saved_copy(lp_adapter *const *ad, int n, const char *name)
{
	const lp_mf_tensor *t = NULL;
	for (int i = 0; i < n; i++)
		for (size_t j = 0; j < ad[i]->nfull; j++)
			if (!strcmp(ad[i]->full[j].base_name, name))
				t = ad[i]->full[j].t;
	return t;
}

static void add_lora(lp_llama *m, lp_adapter *a, const lp_lora_pair *p)
{
	int mod = lp_module_index(p->kind);
	if (p->layer < 0 || p->layer >= m->L || mod < 0)
		lp_die(a->dir, "%s: LoRA on a module this model does not have", p->module);
	if (a->cfg.fan_in_fan_out)
		lp_die(a->dir, "%s: fan_in_fan_out adapters are for Conv1D models, not LLaMA", p->module);
	lp_llama_layer *l = &m->layers[p->layer];
	lp_weight W = l->w[mod];
	lp_lora_dev *d = lp_calloc(1, sizeof *d);
	d->A = upload(m, p->A, p->r, W.cols);
	d->B = upload(m, p->B, W.rows, p->r);
	d->scale = (float)p->scale;
	lp_lora_dev **tail = &l->lora[mod]; /* keep adapter order */
	while (*tail)
		tail = &(*tail)->next;
	*tail = d;
	if (p->r > m->max_r)
		m->max_r = (int)p->r;
}

void lp_llama_load(lp_llama *m, const lp_model_files *mf, lp_adapter *const *adapters,
		int n_adapters)
{
	lp_llama_load_quantized(m, mf, adapters, n_adapters, 0);
}

void lp_llama_load_quantized(lp_llama *m, const lp_model_files *mf,
		lp_adapter *const *adapters, int n_adapters, int qtype)
{
	char err[1024];
	memset(m, 0, sizeof *m);
	if (!mf->has_config)
		lp_die(mf->dir, "no config.json or params.json");
	m->cfg = mf->cfg;
	const lp_model_config *c = &m->cfg;
	m->C = (int)c->hidden_size;
	m->L = (int)c->n_layers;
	m->H = (int)c->n_heads;
	m->KVH = (int)c->n_kv_heads;
	m->D = (int)c->head_dim;
	m->I = (int)c->intermediate_size;
	m->qw.int8_threshold = LP_INT8_THRESHOLD;       /* inference: LLM.int8 */
	for (int i = 0; i < n_adapters; i++)
		if (lp_adapter_check(adapters[i], mf, err, sizeof err) != 0)
			lp_die(adapters[i]->dir, "%s", err);

	const char *emb_name = lp_arch[LP_ROLE_EMBED].hf, *head_name = lp_arch[LP_ROLE_HEAD].hf;
	const lp_mf_tensor *emb_copy = saved_copy(adapters, n_adapters, emb_name);
	const lp_mf_tensor *emb = emb_copy ? emb_copy : base_tensor(mf, emb_name);
	m->wte = upload(m, emb, (int64_t)emb->shape[0], m->C);
	/* A tied head is the base's embedding: when an adapter saves its own
	 * embed_tokens, PEFT's copy replaces the input side only. */
	const lp_mf_tensor *head = saved_copy(adapters, n_adapters, head_name);
	if (!head && !c->tie_word_embeddings)
		head = base_tensor(mf, head_name);
	if (!head && emb_copy)
		head = base_tensor(mf, emb_name);
	m->lm_head = head ? upload(m, head, (int64_t)head->shape[0], m->C) : m->wte;
	m->V = m->lm_head.rows;
	if (m->wte.rows != m->V)
		lp_die(mf->dir, "embed_tokens has %d rows but the output head has %d", m->wte.rows, m->V);
	m->norm = upload(m, base_tensor(mf, lp_arch[LP_ROLE_NORM].hf), m->C, 0);

	m->layers = lp_calloc(m->L, sizeof *m->layers);
	for (int i = 0; i < m->L; i++) {
		lp_llama_layer *l = &m->layers[i];
		l->attn_norm = upload_role(m, mf, LP_ROLE_ATTN_NORM, i, 0);
		l->ffn_norm = upload_role(m, mf, LP_ROLE_FFN_NORM, i, 0);
		for (int j = 0; j < LP_NMODULES; j++)
			l->w[j] = upload_role(m, mf, lp_module_role(j), i, qtype);
	}
	for (int a = 0; a < n_adapters; a++)
		for (size_t p = 0; p < adapters[a]->npairs; p++)
			add_lora(m, adapters[a], &adapters[a]->pairs[p]);
}

void lp_llama_free(lp_llama *m)
{
	for (int i = 0; i < m->n_owned; i++)
		lp_free(m->owned[i]);
	for (int i = 0; m->layers && i < m->L; i++)
		for (int j = 0; j < LP_NMODULES; j++)
			for (lp_lora_dev *d = m->layers[i].lora[j], *next; d; d = next) {
				next = d->next;
				free(d);
			}
	free(m->layers);
	free(m->owned);
	lp_qweights_free(&m->qw);
	memset(m, 0, sizeof *m);
}

/* ---- state ---- */

void lp_llama_state_init(lp_llama_state *s, const lp_llama *m, int B, int T, int Tmax,
		int all_logits)
{
	size_t a = lp_act_size(), N = (size_t)B * T, HD = (size_t)m->H * m->D;
	size_t KVD = (size_t)m->KVH * m->D, cache = (size_t)m->L * B * Tmax * KVD * a;
	size_t nlogits = (all_logits ? N : (size_t)B) * m->V;
	memset(s, 0, sizeof *s);
	s->B = B;
	s->T = T;
	s->Tmax = Tmax;
	s->all_logits = all_logits;
	s->past = lp_calloc(B, sizeof *s->past);
	s->pos_host = lp_calloc(N, sizeof *s->pos_host);
	s->x = lp_alloc(N * m->C * a);
	s->xb = lp_alloc(N * m->C * a);
	s->xb2 = lp_alloc(N * m->C * a);
	s->q = lp_alloc(N * HD * a);
	s->att = lp_alloc(N * HD * a);
	s->k = lp_alloc(N * KVD * a);
	s->v = lp_alloc(N * KVD * a);
	s->hb = lp_alloc(N * m->I * a);
	s->hb2 = lp_alloc(N * m->I * a);
	s->lora_tmp = lp_alloc(N * (m->max_r ? m->max_r : 1) * a);
	s->rstd = lp_alloc(N * sizeof(float));
	s->last = lp_alloc((size_t)B * m->C * a);
	s->logits = lp_alloc(nlogits * a);
	s->logits_f32 = lp_act_dtype() == LP_F32 ? s->logits : lp_alloc(nlogits * sizeof(float));
	s->kcache = lp_alloc(cache);
	s->vcache = lp_alloc(cache);
	s->kswap = lp_alloc(cache / m->L);
	s->vswap = lp_alloc(cache / m->L);
	s->ids_dev = lp_alloc(N * sizeof(int32_t));
	s->pos_dev = lp_alloc(N * sizeof(int32_t));
	s->past_dev = lp_alloc(B * sizeof(int32_t));
	s->inv_freq = lp_alloc(m->D / 2 * sizeof(float));
	s->inv_freq_len = -1;
	lp_graph_reset(); /* recorded steps name the buffers of a state */
}

void lp_llama_state_free(lp_llama_state *s)
{
	void *bufs[] = {s->x, s->xb, s->xb2, s->q, s->att, s->k, s->v, s->hb, s->hb2,
		s->lora_tmp, s->rstd, s->last, s->logits, s->kcache, s->vcache, s->kswap,
		s->vswap, s->ids_dev, s->pos_dev, s->past_dev, s->inv_freq};
	for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
		lp_free(bufs[i]);
	if (s->logits_f32 != s->logits)
		lp_free(s->logits_f32);
	lp_graph_reset();
	free(s->past);
	free(s->pos_host);
	memset(s, 0, sizeof *s);
}

void lp_llama_reset(lp_llama_state *s)
{
	memset(s->past, 0, s->B * sizeof *s->past);
}

/* ---- forward ---- */

/* out[N, W.rows] = inp[N, W.cols] @ W^T + LoRA pairs */
static void lp_linear(void *out, const void *inp, const lp_weight *W, const lp_lora_dev *lora,
		void *tmp, int N)
{
	lp_matmul_forward(out, inp, *W, N, W->cols, W->rows, 1.0f, 0.0f);
	for (; lora; lora = lora->next) {
		lp_matmul_forward(tmp, inp, lora->A, N, W->cols, lora->A.rows, 1.0f, 0.0f);
		lp_matmul_forward(out, tmp, lora->B, N, lora->A.rows, W->rows, lora->scale, 1.0f);
	}
}

void lp_rope_frequencies(const lp_model_config *cfg, int64_t len, float *inv_freq,
		int64_t *computed_for, float *attn_factor)
{
	int dynamic = cfg->rope.type == LP_ROPE_DYNAMIC;
	int64_t key = dynamic && len > cfg->max_pos ? len : 0;
	if (*computed_for == key)
		return;
	int half = (int)cfg->head_dim / 2;
	float *f = lp_malloc(half * sizeof *f);
	double factor = 1;
	lp_rope_inv_freq(cfg, key, f, &factor);
	lp_upload(inv_freq, f, half * sizeof *f);
	free(f);
	*attn_factor = (float)factor;
	*computed_for = key;
}

void lp_llama_forward(const lp_llama *m, lp_llama_state *s, const int32_t *ids, int B,
		int T, float *logits_out)
{
	if (B > s->B || T > s->T)
		lp_die("llama", "forward of %d x %d tokens exceeds the state's %d x %d", B, T, s->B, s->T);
	int N = B * T, C = m->C, H = m->H, KVH = m->KVH, D = m->D, I = m->I;
	size_t a = lp_act_size();
	int64_t longest = 0;
	for (int b = 0; b < B; b++) {
		if (s->past[b] + T > s->Tmax)
			lp_die("llama", "row %d: %d tokens do not fit the context of %d", b,
					s->past[b] + T, s->Tmax);
		for (int t = 0; t < T; t++)
			s->pos_host[b * T + t] = s->past[b] + t;
		if (s->past[b] + T > longest)
			longest = s->past[b] + T;
	}
	lp_rope_frequencies(&m->cfg, longest, s->inv_freq, &s->inv_freq_len, &s->attn_factor);
	lp_upload(s->ids_dev, ids, N * sizeof(int32_t));
	lp_upload(s->pos_dev, s->pos_host, N * sizeof(int32_t));
	lp_upload(s->past_dev, s->past, B * sizeof(int32_t));

	/* A decoding step (one token per row) is the same ops on the same
	 * buffers every time: recorded once per batch size and replayed where
	 * the backend records (kernels.h); not with dynamic rope, whose
	 * frequencies follow the length. */
	int slot = T == 1 && B <= LP_GRAPH_SLOTS && m->cfg.rope.type != LP_ROPE_DYNAMIC ? B - 1 : -1;
	const void *rows = s->xb;
	int nrows = s->all_logits ? N : B;
	if (slot >= 0 && lp_graph_replay(slot))
		goto logits;
	if (slot >= 0)
		lp_graph_record_begin(slot);
	lp_embedding_forward(s->x, s->ids_dev, m->wte, N, C);
	size_t layer_cache = (size_t)s->B * s->Tmax * KVH * D * a;
	for (int i = 0; i < m->L; i++) {
		const lp_llama_layer *l = &m->layers[i];
		void *kc = (char *)s->kcache + i * layer_cache, *vc = (char *)s->vcache + i * layer_cache;
		/* attention block */
		lp_rmsnorm_forward(s->xb, s->rstd, s->x, l->attn_norm, N, C, (float)m->cfg.rms_norm_eps);
		lp_linear(s->q, s->xb, &l->w[LP_Q], l->lora[LP_Q], s->lora_tmp, N);
		lp_linear(s->k, s->xb, &l->w[LP_K], l->lora[LP_K], s->lora_tmp, N);
		lp_linear(s->v, s->xb, &l->w[LP_V], l->lora[LP_V], s->lora_tmp, N);
		lp_rope_forward(s->q, s->pos_dev, s->inv_freq, N, H, D, s->attn_factor);
		lp_rope_forward(s->k, s->pos_dev, s->inv_freq, N, KVH, D, s->attn_factor);
		lp_kv_store(kc, vc, s->k, s->v, s->past_dev, B, T, s->Tmax, KVH, D);
		lp_attention_cached(s->att, s->q, kc, vc, s->past_dev, NULL, B, T, s->Tmax, H, KVH,
				D, 0.0f);
		lp_linear(s->xb2, s->att, &l->w[LP_O], l->lora[LP_O], s->lora_tmp, N);
		lp_add_inplace(s->x, s->xb2, (size_t)N * C);
		/* MLP block */
		lp_rmsnorm_forward(s->xb, s->rstd, s->x, l->ffn_norm, N, C, (float)m->cfg.rms_norm_eps);
		lp_linear(s->hb, s->xb, &l->w[LP_GATE], l->lora[LP_GATE], s->lora_tmp, N);
		lp_linear(s->hb2, s->xb, &l->w[LP_UP], l->lora[LP_UP], s->lora_tmp, N);
		lp_swiglu_forward(s->hb, s->hb, s->hb2, N, I);
		lp_linear(s->xb2, s->hb, &l->w[LP_DOWN], l->lora[LP_DOWN], s->lora_tmp, N);
		lp_add_inplace(s->x, s->xb2, (size_t)N * C);
	}
	lp_rmsnorm_forward(s->xb, s->rstd, s->x, m->norm, N, C, (float)m->cfg.rms_norm_eps);
	if (!s->all_logits) { /* only each row's last position */
		for (int b = 0; b < B; b++)
			lp_copy((char *)s->last + (size_t)b * C * a,
					(char *)s->xb + ((size_t)b * T + T - 1) * C * a, C * a);
		rows = s->last;
	}
	lp_matmul_forward(s->logits, rows, m->lm_head, nrows, C, m->V, 1.0f, 0.0f);
	if (s->logits_f32 != s->logits)
		lp_convert(s->logits_f32, LP_F32, s->logits, lp_act_dtype(), (size_t)nrows * m->V);
	if (slot >= 0)
		lp_graph_record_end(slot);
logits:
	lp_download(logits_out, s->logits_f32, (size_t)nrows * m->V * sizeof(float));
	for (int b = 0; b < B; b++)
		s->past[b] += T;
}

void lp_llama_reorder(const lp_llama *m, lp_llama_state *s, const int32_t *parent, int B)
{
	size_t row = (size_t)s->Tmax * m->KVH * m->D * lp_act_size();
	size_t layer = row * s->B;
	int32_t *past = lp_malloc(B * sizeof *past);
	for (int r = 0; r < B; r++)
		past[r] = s->past[parent[r]];
	for (int i = 0; i < m->L; i++) {
		char *kc = (char *)s->kcache + i * layer, *vc = (char *)s->vcache + i * layer;
		lp_copy(s->kswap, kc, layer);
		lp_copy(s->vswap, vc, layer);
		for (int r = 0; r < B; r++) {
			lp_copy(kc + r * row, (char *)s->kswap + parent[r] * row, row);
			lp_copy(vc + r * row, (char *)s->vswap + parent[r] * row, row);
		}
	}
	memcpy(s->past, past, B * sizeof *past);
	free(past);
}
