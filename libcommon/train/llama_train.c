/* llama_train.c: LLaMA training on the compute layer. Reads as the model:
 *
 *   x = embed(ids)
 *   per layer:  xmid = x + o(attn(rope(q(n1(x))), rope(k(n1(x))), v(n1(x))))
 *               x    = xmid + down(silu(gate(n2(xmid))) * up(n2(xmid)))
 *   loss = cross_entropy(head(norm(x)), targets)
 *
 * where every Linear is linear_forward(): W plus its LoRA pair. Backward
 * is the same written in reverse; each op's backward accumulates into the
 * gradients of the trained tensors. */
#include "train/llama_train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "base/half.h"

/* Hugging Face's names of the tensors outside the layers (lp_arch). */
#define EMBED lp_arch[LP_ROLE_EMBED].hf
#define NORM lp_arch[LP_ROLE_NORM].hf
#define HEAD lp_arch[LP_ROLE_HEAD].hf

/* ---- memory ---- */

static void *own(lp_train_model *m, size_t bytes)
{
	void *p = lp_alloc(bytes);
	size_t cap = m->cap_owned;
	lp_grow((void **)&m->owned, &cap, m->n_owned + 1, sizeof *m->owned);
	m->cap_owned = cap;
	m->owned[m->n_owned++] = p;
	return p;
}

/* ---- the trained tensors ---- */

static lp_tparam *add_param(lp_train_model *m, size_t *cap, const char *name, int rank,
		uint64_t d0, uint64_t d1, int decay)
{
	lp_grow((void **)&m->params, cap, m->nparams + 1, sizeof *m->params);
	lp_tparam *p = &m->params[m->nparams++];
	p->name = lp_strdup(name);
	p->rank = rank;
	p->shape[0] = d0;
	p->shape[1] = rank > 1 ? d1 : 0;
	p->n = (size_t)d0 * (rank > 1 ? d1 : 1);
	p->off = m->ntrain;
	p->decay = decay;
	m->ntrain += p->n;
	return p;
}

const lp_tparam *lp_train_param(const lp_train_model *m, const char *name)
{
	for (int i = 0; i < m->nparams; i++)
		if (!strcmp(m->params[i].name, name))
			return &m->params[i];
	return NULL;
}

static lp_weight master_view(const lp_train_model *m, const lp_tparam *p)
{
	return (lp_weight){m->master + p->off, LP_F32, p->rank > 1 ? (int)p->shape[0] : 1,
		p->rank > 1 ? (int)p->shape[1] : (int)p->shape[0]};
}

static lp_tweight trained(const lp_train_model *m, const lp_tparam *p)
{
	return (lp_tweight){master_view(m, p), m->grads + p->off};
}

/* A tensor of the files as f32 on the host (malloc'd), checked to be
 * (rows, cols) (cols 0: a vector of rows). */
static float *host_f32(const lp_mf_tensor *t, int64_t rows, int64_t cols)
{
	int ok = cols ? t->rank == 2 && (int64_t)t->shape[0] == rows && (int64_t)t->shape[1] == cols
		      : t->rank == 1 && (int64_t)t->shape[0] == rows;
	if (!ok)
		lp_die(t->name, "unexpected shape (rank %d, %llu x %llu), want %lld x %lld", t->rank,
				(unsigned long long)t->shape[0],
				(unsigned long long)(t->rank > 1 ? t->shape[1] : 1),
				(long long)rows, (long long)(cols ? cols : 1));
	const void *src = lp_mf_data(t);
	float *f = lp_malloc(t->numel * sizeof *f + 1);
	for (uint64_t i = 0; i < t->numel; i++) {
		uint16_t h;
		switch (t->dtype) {
		case LP_F32:
			memcpy(&f[i], (const char *)src + 4 * i, 4);
			break;
		case LP_BF16:
			memcpy(&h, (const char *)src + 2 * i, 2);
			f[i] = lp_bf16_to_f32(h);
			break;
		case LP_F16:
			memcpy(&h, (const char *)src + 2 * i, 2);
			f[i] = lp_f16_to_f32(h);
			break;
		default:
			lp_die(t->name, "dtype %s is not a float weight type", lp_dtype_name(t->dtype));
		}
	}
	lp_mf_release(t);
	return f;
}

/* A frozen base weight on the device, as stored. */
static lp_tweight frozen(lp_train_model *m, const lp_mf_tensor *t, int64_t rows, int64_t cols)
{
	int ok = cols ? t->rank == 2 && (int64_t)t->shape[0] == rows && (int64_t)t->shape[1] == cols
		      : t->rank == 1 && (int64_t)t->shape[0] == rows;
	if (!ok)
		free(host_f32(t, rows, cols)); /* dies with the message */
	if (t->dtype != LP_F32 && t->dtype != LP_BF16 && t->dtype != LP_F16)
		lp_die(t->name, "dtype %s is not a float weight type", lp_dtype_name(t->dtype));
	int dtype = t->dtype;
	void *dst;
	if (lp_kernels_device() != LP_DEVICE_CPU && dtype != lp_act_dtype()) {
		/* once, here, to the activation type (see llama.c's upload) */
		void *raw = lp_alloc(t->nbytes);
		lp_upload(raw, lp_mf_data(t), t->nbytes);
		dtype = lp_act_dtype();
		dst = own(m, (size_t)t->numel * lp_dtype_size(dtype));
		lp_convert(dst, dtype, raw, t->dtype, (size_t)t->numel);
		lp_free(raw);
	} else {
		dst = own(m, t->nbytes);
		lp_upload(dst, lp_mf_data(t), t->nbytes);
	}
	lp_mf_release(t);
	return (lp_tweight){{dst, dtype, cols ? (int)rows : 1, cols ? (int)cols : (int)rows}, NULL};
}

static void fill_param(lp_train_model *m, const lp_tparam *p, const float *host)
{
	lp_upload(m->master + p->off, host, p->n * sizeof(float));
}

/* Vocabulary rows: the base's, then the mean of the base's rows for each
 * new one (fewer rows: the first V). */
static float *resize_rows(float *w, int64_t Vold, int64_t V, int64_t C)
{
	if (V == Vold)
		return w;
	float *out = lp_malloc((size_t)V * C * sizeof *out);
	int64_t keep = V < Vold ? V : Vold;
	memcpy(out, w, (size_t)keep * C * sizeof *out);
	for (int64_t c = 0; c < C && V > Vold; c++) {
		double s = 0;
		for (int64_t r = 0; r < Vold; r++)
			s += w[(size_t)r * C + c];
		float mean = (float)(s / (double)Vold);
		for (int64_t r = Vold; r < V; r++)
			out[(size_t)r * C + c] = mean;
	}
	free(w);
	return out;
}

/* Normal(0, std) by Box-Muller on the project's PRNG. */
static double uniform01(lp_rng *r)
{
	return (double)(lp_rng_next(r) >> 11) * 0x1.0p-53;
}

static void fill_normal(float *w, size_t n, double std, lp_rng *r)
{
	for (size_t i = 0; i < n; i += 2) {
		double u1 = uniform01(r), u2 = uniform01(r);
		double rad = sqrt(-2.0 * log(1.0 - u1)), th = 2.0 * M_PI * u2;
		w[i] = (float)(std * rad * cos(th));
		if (i + 1 < n)
			w[i + 1] = (float)(std * rad * sin(th));
	}
}

static const lp_mf_tensor *base_tensor(const lp_model_files *mf, const char *name)
{
	const lp_mf_tensor *t = lp_mf_find(mf, name);
	if (!t)
		lp_die(mf->dir, "tensor %s is missing", name);
	return t;
}

/* The init adapter's full copy of base name, or NULL. */
static const lp_mf_tensor *init_copy(const lp_train_spec *s, const char *name)
{
	for (size_t i = 0; s->init && i < s->init->nfull; i++)
		if (!strcmp(s->init->full[i].base_name, name))
			return s->init->full[i].t;
	return NULL;
}

/* A weight's f32 starting value: from the init adapter's copy, the base,
 * or (from scratch) normal(0, std) / ones. */
static float *start_value(const lp_model_files *mf, const lp_train_spec *s, const char *name,
		int64_t rows, int64_t cols, double std, lp_rng *rng)
{
	const lp_mf_tensor *t = init_copy(s, name);
	if (t)
		return host_f32(t, rows, cols);
	size_t n = (size_t)rows * (cols ? cols : 1);
	if (mf)
		return host_f32(base_tensor(mf, name), rows, cols);
	float *w = lp_malloc(n * sizeof *w);
	if (!cols)
		for (size_t i = 0; i < n; i++)
			w[i] = 1.0f;
	else
		fill_normal(w, n, std, rng);
	return w;
}

/* The vocabulary tensor name (embed or head) as a trained tensor, resized
 * to m->V rows; the base's value when not from an adapter copy. */
static float *vocab_value(const lp_train_model *m, const lp_model_files *mf,
		const lp_train_spec *s, const char *name, const char *from, double std, lp_rng *rng)
{
	const lp_mf_tensor *t = init_copy(s, name);
	if (t)
		return host_f32(t, m->V, m->C);
	float *w = start_value(mf, s, from, m->Vbase, m->C, std, rng);
	return resize_rows(w, m->Vbase, m->V, m->C);
}

/* ---- building the model: plan, initialise, apply the init adapter ---- */

/* Where the plan put the trained tensors in m->params. */
typedef struct {
	int embed, head, norm;          /* index, or -1 when frozen */
	int first_layer, per_layer;     /* full: layer l's from first_layer + l * per_layer:
					 * attn_norm, ffn_norm, then the modules */
	int first_lora, end_lora;       /* LoRA: pairs A, B in [first_lora, end_lora) */
	int *lora_at;                   /* pair k is on l * LP_NMODULES + j */
} train_plan;

/* The Linear module j's (out, in). */
static void module_shape(const lp_train_model *m, int j, int64_t *out, int64_t *in)
{
	int64_t shape[2];
	lp_arch_shape(&m->cfg, lp_module_role(j), shape);
	*out = shape[0];
	*in = shape[1];
}

/* The model's dimensions and vocabulary, and the trained tensors' names,
 * shapes and places in the flat buffers (allocated here). */
static void plan_model(lp_train_model *m, const lp_model_files *mf, const lp_model_config *cfg,
		const lp_train_spec *s, train_plan *p)
{
	char name[256], saved[320];
	size_t pcap = 0;
	memset(m, 0, sizeof *m);
	m->cfg = mf ? mf->cfg : *cfg;
	const lp_model_config *c = &m->cfg;
	m->C = (int)c->hidden_size;
	m->L = (int)c->n_layers;
	m->H = (int)c->n_heads;
	m->KVH = (int)c->n_kv_heads;
	m->D = (int)c->head_dim;
	m->I = (int)c->intermediate_size;
	m->Vbase = (int)c->vocab_size;
	if (mf) /* the embedding decides (params.json may say -1) */
		m->Vbase = (int)base_tensor(mf, EMBED)->shape[0];
	m->V = s->vocab > 0 ? (int)s->vocab : m->Vbase;
	m->dropout = (float)s->dropout;
	m->tied = c->tie_word_embeddings;
	int train_embed = s->full || s->save_embed, train_head = s->full || s->save_head;
	if (m->tied && !s->full && s->save_embed != s->save_head)
		lp_die(mf ? mf->dir : "model", "the model ties lm_head to embed_tokens: save "
				"both in modules_to_save or neither");
	if (m->tied && s->save_embed && !s->full)
		m->tied = 0; /* PEFT keeps two copies, which then differ */
	if (m->V != m->Vbase && !(train_embed && train_head))
		lp_die(mf ? mf->dir : "model", "resizing the vocabulary from %d to %d rows needs "
				"embed_tokens and lm_head in modules_to_save (or --full)", m->Vbase, m->V);
	m->cfg.vocab_size = m->V;
	m->pad_id = c->pad_id >= 0 && c->pad_id < m->V ? (int)c->pad_id : -1;
	m->cfg.tie_word_embeddings = m->tied;

	/* PEFT's names, or with full Hugging Face's */
	const char *pre = s->full ? "" : "base_model.model.";
	int64_t out, in;
	*p = (train_plan){.embed = -1, .head = -1, .norm = -1};
	if (train_embed) {
		p->embed = m->nparams;
		snprintf(saved, sizeof saved, "%s%s", pre, EMBED);
		add_param(m, &pcap, saved, 2, m->V, m->C, 1);
	}
	p->per_layer = s->full ? 2 + LP_NMODULES : 0;
	p->first_layer = m->nparams;
	for (int l = 0; l < m->L && s->full; l++) {
		lp_arch_hf_name(LP_ROLE_ATTN_NORM, l, saved, sizeof saved);
		add_param(m, &pcap, saved, 1, m->C, 0, 0);
		lp_arch_hf_name(LP_ROLE_FFN_NORM, l, saved, sizeof saved);
		add_param(m, &pcap, saved, 1, m->C, 0, 0);
		for (int j = 0; j < LP_NMODULES; j++) {
			module_shape(m, j, &out, &in);
			lp_arch_hf_name(lp_module_role(j), l, saved, sizeof saved);
			add_param(m, &pcap, saved, 2, out, in, 1);
		}
	}
	p->first_lora = m->nparams;
	p->lora_at = lp_calloc((size_t)m->L * LP_NMODULES + 1, sizeof(int));
	for (int l = 0; l < m->L && !s->full; l++)
		for (int j = 0; j < LP_NMODULES; j++) {
			if (!(s->targets & (1u << j)))
				continue;
			module_shape(m, j, &out, &in);
			p->lora_at[(m->nparams - p->first_lora) / 2] = l * LP_NMODULES + j;
			lp_arch_hf_module(lp_module_role(j), l, name, sizeof name);
			snprintf(saved, sizeof saved, "base_model.model.%s.lora_A.weight", name);
			add_param(m, &pcap, saved, 2, s->r, in, 1);
			snprintf(saved, sizeof saved, "base_model.model.%s.lora_B.weight", name);
			add_param(m, &pcap, saved, 2, out, s->r, 1);
		}
	p->end_lora = m->nparams;
	if (s->full) {
		p->norm = m->nparams;
		add_param(m, &pcap, NORM, 1, m->C, 0, 0);
	}
	if (train_head && !m->tied) {
		p->head = m->nparams;
		snprintf(saved, sizeof saved, "%s%s", pre, HEAD);
		add_param(m, &pcap, saved, 2, m->V, m->C, 1);
	}
	m->master = own(m, (m->ntrain ? m->ntrain : 1) * sizeof(float));
	m->grads = own(m, (m->ntrain ? m->ntrain : 1) * sizeof(float));
}

/* One weight of the model: trained param p (index, or -1: frozen), filled
 * with its starting value, or the base's frozen tensor name. */
static lp_tweight weight(lp_train_model *m, const lp_model_files *mf, const lp_train_spec *s,
		int p, const char *name, int64_t rows, int64_t cols, double std, lp_rng *rng)
{
	if (p < 0)
		return frozen(m, base_tensor(mf, name), rows, cols);
	float *w = start_value(mf, s, name, rows, cols, std, rng);
	fill_param(m, &m->params[p], w);
	free(w);
	return trained(m, &m->params[p]);
}

/* Fill the trained tensors with their starting values and point the
 * model at them or at the frozen base weights. The random draws come in
 * model order (embedding, layers, LoRA A matrices, head) from one stream
 * seeded with s->seed. */
static void initialise(lp_train_model *m, const lp_model_files *mf, const lp_train_spec *s,
		const train_plan *p, double init_std)
{
	char name[256];
	const lp_model_config *c = &m->cfg;
	lp_rng rng;
	lp_rng_seed(&rng, s->seed);
	float *w;
	int64_t out, in;
	if (p->embed >= 0) {
		w = vocab_value(m, mf, s, EMBED, EMBED, init_std, &rng);
		fill_param(m, &m->params[p->embed], w);
		free(w);
		m->wte = trained(m, &m->params[p->embed]);
	} else {
		m->wte = frozen(m, base_tensor(mf, EMBED), m->V, m->C);
	}
	if (!mf && s->full && c->pad_id >= 0 && c->pad_id < m->V) /* _init_weights zeroes it */
		lp_zero(m->master + m->params[p->embed].off + (size_t)c->pad_id * m->C,
				m->C * sizeof(float));

	m->layers = lp_calloc(m->L, sizeof *m->layers);
	m->loras = lp_calloc((size_t)m->L * LP_NMODULES, sizeof *m->loras);
	for (int l = 0; l < m->L; l++) {
		lp_tlayer *ly = &m->layers[l];
		int lp = s->full ? p->first_layer + l * p->per_layer : -1;
		lp_arch_hf_name(LP_ROLE_ATTN_NORM, l, name, sizeof name);
		ly->attn_norm = weight(m, mf, s, lp, name, m->C, 0, init_std, &rng);
		lp_arch_hf_name(LP_ROLE_FFN_NORM, l, name, sizeof name);
		ly->ffn_norm = weight(m, mf, s, lp < 0 ? -1 : lp + 1, name, m->C, 0, init_std, &rng);
		for (int j = 0; j < LP_NMODULES; j++) {
			module_shape(m, j, &out, &in);
			lp_arch_hf_name(lp_module_role(j), l, name, sizeof name);
			if (lp < 0 && s->quantize) /* QLoRA: the frozen base held quantized */
				ly->w[j] = (lp_tweight){lp_qweights_load(&m->qw, base_tensor(mf, name), out,
						in, s->quantize), NULL};
			else
				ly->w[j] = weight(m, mf, s, lp < 0 ? -1 : lp + 2 + j, name, out, in,
						init_std, &rng);
		}
	}

	/* LoRA pairs: A ~ U(-1/sqrt(in), 1/sqrt(in)) (PEFT's kaiming_uniform_
	 * with a = sqrt(5)), B = 0. */
	double scale = s->alpha / (double)s->r;
	for (int i = p->first_lora; i < p->end_lora; i += 2) {
		const lp_tparam *pa = &m->params[i], *pb = &m->params[i + 1];
		int l = p->lora_at[(i - p->first_lora) / 2] / LP_NMODULES;
		int j = p->lora_at[(i - p->first_lora) / 2] % LP_NMODULES;
		lp_tlora *lo = &m->loras[l * LP_NMODULES + j];
		lo->A = master_view(m, pa);
		lo->B = master_view(m, pb);
		lo->dA = m->grads + pa->off;
		lo->dB = m->grads + pb->off;
		lo->r = (int)s->r;
		lo->scale = (float)scale;
		m->layers[l].lora[j] = lo;
		if (lo->r > m->max_r)
			m->max_r = lo->r;
		module_shape(m, j, &out, &in);
		float *a = lp_malloc(pa->n * sizeof *a);
		double bound = 1.0 / sqrt((double)in);
		for (size_t k = 0; k < pa->n; k++)
			a[k] = (float)((2.0 * uniform01(&rng) - 1.0) * bound);
		fill_param(m, pa, a);
		free(a);
	}

	m->norm = weight(m, mf, s, p->norm, NORM, m->C, 0, init_std, &rng);
	if (m->tied) {
		m->lm_head = m->wte;
	} else if (p->head >= 0) {
		const char *from = c->tie_word_embeddings || (mf && !lp_mf_find(mf, HEAD))
			? EMBED : HEAD;
		w = vocab_value(m, mf, s, HEAD, from, init_std, &rng);
		fill_param(m, &m->params[p->head], w);
		free(w);
		m->lm_head = trained(m, &m->params[p->head]);
	} else {
		m->lm_head = frozen(m, base_tensor(mf, HEAD), m->V, m->C);
	}
}

/* The init adapter's LoRA pairs (and scales) over the planned ones; its
 * whole copies were taken by initialise(). */
static void apply_adapter(lp_train_model *m, const lp_adapter *a)
{
	int64_t out, in;
	float *w;
	for (size_t i = 0; i < a->npairs; i++) {
		const lp_lora_pair *pr = &a->pairs[i];
		int j = lp_module_index(pr->kind);
		if (pr->layer < 0 || pr->layer >= m->L || j < 0 || !m->layers[pr->layer].lora[j])
			lp_die(a->dir, "%s: LoRA on a module this run does not train", pr->module);
		lp_tlora *lo = m->layers[pr->layer].lora[j];
		if (pr->r != lo->r)
			lp_die(a->dir, "%s: rank %lld, but the run trains rank %d", pr->module,
					(long long)pr->r, lo->r);
		module_shape(m, j, &out, &in);
		w = host_f32(pr->A, lo->r, in);
		lp_upload((void *)lo->A.data, w, (size_t)lo->r * in * sizeof *w);
		free(w);
		w = host_f32(pr->B, out, lo->r);
		lp_upload((void *)lo->B.data, w, (size_t)lo->r * out * sizeof *w);
		free(w);
		lo->scale = (float)pr->scale;
	}
}

void lp_train_model_init(lp_train_model *m, const lp_model_files *mf,
		const lp_model_config *cfg, double init_std, const lp_train_spec *s)
{
	train_plan p;
	plan_model(m, mf, cfg, s, &p);
	initialise(m, mf, s, &p, init_std);
	free(p.lora_at);
	if (s->init)
		apply_adapter(m, s->init);
	lp_train_zero_grad(m);
}

void lp_train_model_free(lp_train_model *m)
{
	for (int i = 0; i < m->n_owned; i++)
		lp_free(m->owned[i]);
	for (int i = 0; i < m->nparams; i++)
		free(m->params[i].name);
	free(m->params);
	free(m->layers);
	free(m->loras);
	free(m->owned);
	lp_qweights_free(&m->qw);
	memset(m, 0, sizeof *m);
}

void lp_train_zero_grad(lp_train_model *m)
{
	lp_zero(m->grads, (m->ntrain ? m->ntrain : 1) * sizeof(float));
}

/* ---- activations: sizes planned once, one allocation ---- */

typedef struct {
	void **slot;
	size_t bytes;
} act_slot;

typedef struct {
	act_slot *s;
	size_t n, cap;
} act_plan;

static void plan(act_plan *p, void *slot, size_t bytes)
{
	lp_grow((void **)&p->s, &p->cap, p->n + 1, sizeof *p->s);
	p->s[p->n++] = (act_slot){slot, bytes};
}

static void plan_acts(act_plan *p, lp_train_acts *a, const lp_train_model *m, int B, int T,
		int ckpt)
{
	size_t N = (size_t)B * T, e = lp_act_size(), f = sizeof(float);
	size_t C = m->C, HD = (size_t)m->H * m->D, KVD = (size_t)m->KVH * m->D, I = m->I;
	size_t R = m->max_r ? m->max_r : 1, wide = C > I ? C : I;
	wide = wide > HD ? wide : HD;
	int nl = ckpt ? 1 : m->L;
	for (int l = 0; l <= m->L; l++)
		plan(p, &a->res[l], N * C * e);
	for (int l = 0; l < nl; l++) {
		lp_tlayer_acts *la = &a->la[l];
		plan(p, &la->ln1, N * C * e);
		plan(p, &la->q, N * HD * e);
		plan(p, &la->k, N * KVD * e);
		plan(p, &la->v, N * KVD * e);
		plan(p, &la->att, N * HD * e);
		plan(p, &la->xmid, N * C * e);
		plan(p, &la->ln2, N * C * e);
		plan(p, &la->gate, N * I * e);
		plan(p, &la->up, N * I * e);
		plan(p, &la->h, N * I * e);
		plan(p, &la->rstd1, N * f);
		plan(p, &la->rstd2, N * f);
		plan(p, &la->lse, (size_t)B * m->H * T * f);
		for (int j = 0; j < LP_NMODULES; j++)
			for (int l2 = 0; l2 < m->L; l2++)
				if (m->layers[l2].lora[j]) { /* same modules in every layer */
					plan(p, &la->u[j], N * R * e);
					break;
				}
	}
	plan(p, &a->lnf, N * C * e);
	plan(p, &a->logits, N * (size_t)m->V * e);
	plan(p, &a->rstdf, N * f);
	plan(p, &a->losses, N * f);
	plan(p, &a->dx, N * C * e);
	plan(p, &a->dln, N * C * e);
	plan(p, &a->dq, N * HD * e);
	plan(p, &a->dk, N * KVD * e);
	plan(p, &a->dv, N * KVD * e);
	plan(p, &a->datt, N * HD * e);
	plan(p, &a->dgate, N * I * e);
	plan(p, &a->dup, N * I * e);
	plan(p, &a->dh, N * I * e);
	plan(p, &a->du, N * R * e);
	plan(p, &a->drop, N * wide * e);
	plan(p, &a->drop2, N * wide * e);
	plan(p, &a->ids, N * sizeof(int32_t));
	plan(p, &a->targets, N * sizeof(int32_t));
	plan(p, &a->pos, N * sizeof(int32_t));
	plan(p, &a->mask, N);
	plan(p, &a->inv_freq, (size_t)m->D / 2 * f);
}

static size_t plan_total(const act_plan *p)
{
	size_t total = 0;
	for (size_t i = 0; i < p->n; i++)
		total += (p->s[i].bytes + 63) & ~(size_t)63;
	return total;
}

size_t lp_train_acts_bytes(const lp_train_model *m, int B, int T, int ckpt)
{
	lp_train_acts a = {0};
	act_plan p = {0};
	a.res = lp_calloc(m->L + 1, sizeof *a.res);
	a.la = lp_calloc(ckpt ? 1 : m->L, sizeof *a.la);
	plan_acts(&p, &a, m, B, T, ckpt);
	size_t total = plan_total(&p);
	free(p.s);
	free(a.res);
	free(a.la);
	return total;
}

void lp_train_acts_init(lp_train_acts *a, const lp_train_model *m, int B, int T, int ckpt)
{
	act_plan p = {0};
	memset(a, 0, sizeof *a);
	a->B = B;
	a->T = T;
	a->ckpt = ckpt;
	a->res = lp_calloc(m->L + 1, sizeof *a->res);
	a->la = lp_calloc(ckpt ? 1 : m->L, sizeof *a->la);
	plan_acts(&p, a, m, B, T, ckpt);
	a->mem = lp_alloc(plan_total(&p));
	char *at = a->mem;
	for (size_t i = 0; i < p.n; i++) {
		*p.s[i].slot = at;
		at += (p.s[i].bytes + 63) & ~(size_t)63;
	}
	free(p.s);
	a->inv_freq_len = -1;
	a->host_losses = lp_malloc((size_t)B * T * sizeof(float));
	a->host_pos = lp_malloc((size_t)B * T * sizeof(int32_t));
	a->host_mask = lp_malloc((size_t)B * T);
}

void lp_train_acts_free(lp_train_acts *a)
{
	lp_free(a->mem);
	free(a->res);
	free(a->la);
	free(a->host_losses);
	free(a->host_pos);
	free(a->host_mask);
	memset(a, 0, sizeof *a);
}

/* ---- the Linear module with its LoRA branch ---- */

/* The dropout mask of LoRA module j of layer l in this micro-batch. */
static uint64_t dropout_seed(uint64_t batch_seed, int l, int j)
{
	uint64_t z = batch_seed + (uint64_t)(l * LP_NMODULES + j + 1) * 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* out[N, OC] = inp[N, in] @ W^T + scale * (drop(inp) @ A^T) @ B^T, keeping
 * u[N, r] = drop(inp) @ A^T for backward. */
static void linear_forward(const lp_train_acts *a, void *out, const void *inp,
		const lp_tweight *W, const lp_tlora *lo, void *u, float p, uint64_t seed, int N)
{
	int in = W->w.cols, oc = W->w.rows;
	lp_matmul_forward(out, inp, W->w, N, in, oc, 1.0f, 0.0f);
	if (!lo)
		return;
	const void *x = inp;
	if (p > 0) {
		lp_dropout_forward(a->drop, inp, p, seed, (size_t)N * in);
		x = a->drop;
	}
	lp_matmul_forward(u, x, lo->A, N, in, lo->r, 1.0f, 0.0f);
	lp_matmul_forward(out, u, lo->B, N, lo->r, oc, lo->scale, 1.0f);
}

/* dinp[N, in] (= or += with accumulate) from dout[N, OC]; gradients of W
 * (when trained), A and B (+=). */
static void linear_backward(const lp_train_acts *a, void *dinp, int accumulate,
		const void *dout, const void *inp, const lp_tweight *W, const lp_tlora *lo,
		const void *u, float p, uint64_t seed, int N)
{
	int in = W->w.cols, oc = W->w.rows;
	lp_matmul_backward(dinp, W->grad, dout, inp, W->w, N, in, oc, 1.0f,
			accumulate ? 1.0f : 0.0f);
	if (!lo)
		return;
	/* du = scale * dout @ B, dB += scale * dout^T @ u */
	lp_matmul_backward(a->du, lo->dB, dout, u, lo->B, N, lo->r, oc, lo->scale, 0.0f);
	if (p > 0) {
		size_t n = (size_t)N * in;
		lp_dropout_forward(a->drop, inp, p, seed, n);
		lp_matmul_backward(a->drop2, lo->dA, a->du, a->drop, lo->A, N, in, lo->r, 1.0f, 0.0f);
		lp_dropout_backward(a->drop2, a->drop2, p, seed, n);
		lp_add_inplace(dinp, a->drop2, n);
	} else {
		lp_matmul_backward(dinp, lo->dA, a->du, inp, lo->A, N, in, lo->r, 1.0f, 1.0f);
	}
}

/* ---- forward ---- */

/* Layer l from res[l] into res[l + 1], its activations in la. */
static void layer_forward(const lp_train_model *m, lp_train_acts *a, lp_tlayer_acts *la, int l,
		const lp_train_batch *b, const uint8_t *mask, float p)
{
	const lp_tlayer *ly = &m->layers[l];
	int B = b->B, T = b->T, N = B * T, C = m->C;
	float eps = (float)m->cfg.rms_norm_eps;
	size_t nc = (size_t)N * C;
	void *x = a->res[l];
	uint64_t sd[LP_NMODULES];
	for (int j = 0; j < LP_NMODULES; j++)
		sd[j] = dropout_seed(b->seed, l, j);
	/* attention block */
	lp_rmsnorm_forward(la->ln1, la->rstd1, x, ly->attn_norm.w, N, C, eps);
	linear_forward(a, la->q, la->ln1, &ly->w[LP_Q], ly->lora[LP_Q], la->u[LP_Q], p, sd[LP_Q], N);
	linear_forward(a, la->k, la->ln1, &ly->w[LP_K], ly->lora[LP_K], la->u[LP_K], p, sd[LP_K], N);
	linear_forward(a, la->v, la->ln1, &ly->w[LP_V], ly->lora[LP_V], la->u[LP_V], p, sd[LP_V], N);
	lp_rope_forward(la->q, a->pos, a->inv_freq, N, m->H, m->D, a->attn_factor);
	lp_rope_forward(la->k, a->pos, a->inv_freq, N, m->KVH, m->D, a->attn_factor);
	lp_attention_forward(la->att, la->lse, la->q, la->k, la->v, mask, B, T, m->H, m->KVH,
			m->D, 0.0f);
	linear_forward(a, a->dln, la->att, &ly->w[LP_O], ly->lora[LP_O], la->u[LP_O], p, sd[LP_O], N);
	lp_copy(la->xmid, x, nc * lp_act_size());
	lp_add_inplace(la->xmid, a->dln, nc);
	/* MLP block */
	lp_rmsnorm_forward(la->ln2, la->rstd2, la->xmid, ly->ffn_norm.w, N, C, eps);
	linear_forward(a, la->gate, la->ln2, &ly->w[LP_GATE], ly->lora[LP_GATE], la->u[LP_GATE], p,
			sd[LP_GATE], N);
	linear_forward(a, la->up, la->ln2, &ly->w[LP_UP], ly->lora[LP_UP], la->u[LP_UP], p,
			sd[LP_UP], N);
	lp_swiglu_forward(la->h, la->gate, la->up, N, m->I);
	linear_forward(a, a->dln, la->h, &ly->w[LP_DOWN], ly->lora[LP_DOWN], la->u[LP_DOWN], p,
			sd[LP_DOWN], N);
	lp_copy(a->res[l + 1], la->xmid, nc * lp_act_size());
	lp_add_inplace(a->res[l + 1], a->dln, nc);
}

static const uint8_t *upload_batch(const lp_train_model *m, lp_train_acts *a,
		const lp_train_batch *b)
{
	int B = b->B, T = b->T, N = B * T, full = 1;
	if (B > a->B || T > a->T || B * T > a->B * a->T)
		lp_die("train", "a batch of %d x %d tokens exceeds the planned %d x %d", B, T, a->B,
				a->T);
	for (int r = 0; r < B; r++) {
		if (b->len[r] < T)
			full = 0;
		for (int t = 0; t < T; t++) {
			a->host_pos[r * T + t] = t;
			a->host_mask[r * T + t] = t < b->len[r];
		}
	}
	lp_rope_frequencies(&m->cfg, T, a->inv_freq, &a->inv_freq_len, &a->attn_factor);
	lp_upload(a->ids, b->ids, N * sizeof(int32_t));
	lp_upload(a->targets, b->targets, N * sizeof(int32_t));
	lp_upload(a->pos, a->host_pos, N * sizeof(int32_t));
	if (full)
		return NULL;
	lp_upload(a->mask, a->host_mask, N);
	return a->mask;
}

double lp_train_forward(const lp_train_model *m, lp_train_acts *a, const lp_train_batch *b,
		float grad_scale, long *count)
{
	int N = b->B * b->T, C = m->C;
	const uint8_t *mask = upload_batch(m, a, b);
	float p = grad_scale != 0 ? m->dropout : 0.0f; /* eval: no dropout */
	lp_embedding_forward(a->res[0], a->ids, m->wte.w, N, C);
	for (int l = 0; l < m->L; l++)
		layer_forward(m, a, &a->la[a->ckpt ? 0 : l], l, b, mask, p);
	lp_rmsnorm_forward(a->lnf, a->rstdf, a->res[m->L], m->norm.w, N, C,
			(float)m->cfg.rms_norm_eps);
	lp_matmul_forward(a->logits, a->lnf, m->lm_head.w, N, C, m->V, 1.0f, 0.0f);
	lp_cross_entropy(a->losses, grad_scale != 0 ? a->logits : NULL, a->logits, a->targets, N,
			m->V, grad_scale);
	lp_download(a->host_losses, a->losses, N * sizeof(float));
	double sum = 0;
	long n = 0;
	for (int i = 0; i < N; i++)
		if (b->targets[i] != -100) {
			sum += a->host_losses[i];
			n++;
		}
	*count = n;
	return sum;
}

void lp_train_logits(const lp_train_model *m, const lp_train_acts *a, int N, float *out)
{
	size_t n = (size_t)N * m->V;
	if (lp_act_dtype() == LP_F32) {
		lp_download(out, a->logits, n * sizeof(float));
		return;
	}
	float *tmp = lp_alloc(n * sizeof(float));
	lp_convert(tmp, LP_F32, a->logits, lp_act_dtype(), n);
	lp_download(out, tmp, n * sizeof(float));
	lp_free(tmp);
}

/* ---- backward: the forward in reverse ---- */

/* a->dx holds d res[l + 1]; leaves d res[l] there. */
static void layer_backward(const lp_train_model *m, lp_train_acts *a, lp_tlayer_acts *la, int l,
		const lp_train_batch *b, const uint8_t *mask, float p)
{
	const lp_tlayer *ly = &m->layers[l];
	int B = b->B, T = b->T, N = B * T, C = m->C;
	uint64_t sd[LP_NMODULES];
	for (int j = 0; j < LP_NMODULES; j++)
		sd[j] = dropout_seed(b->seed, l, j);
	/* MLP block: res[l+1] = xmid + down(swiglu(gate(ln2), up(ln2))) */
	linear_backward(a, a->dh, 0, a->dx, la->h, &ly->w[LP_DOWN], ly->lora[LP_DOWN],
			la->u[LP_DOWN], p, sd[LP_DOWN], N);
	lp_swiglu_backward(a->dgate, a->dup, a->dh, la->gate, la->up, N, m->I);
	linear_backward(a, a->dln, 0, a->dgate, la->ln2, &ly->w[LP_GATE], ly->lora[LP_GATE],
			la->u[LP_GATE], p, sd[LP_GATE], N);
	linear_backward(a, a->dln, 1, a->dup, la->ln2, &ly->w[LP_UP], ly->lora[LP_UP],
			la->u[LP_UP], p, sd[LP_UP], N);
	lp_rmsnorm_backward(a->dx, ly->ffn_norm.grad, a->dln, la->xmid, ly->ffn_norm.w, la->rstd2,
			N, C, 1);
	/* attention block: xmid = res[l] + o(attn(q, k, v)) */
	linear_backward(a, a->datt, 0, a->dx, la->att, &ly->w[LP_O], ly->lora[LP_O],
			la->u[LP_O], p, sd[LP_O], N);
	lp_attention_backward(a->dq, a->dk, a->dv, a->datt, la->att, la->lse, la->q, la->k, la->v,
			mask, B, T, m->H, m->KVH, m->D, 0.0f);
	lp_rope_backward(a->dq, a->pos, a->inv_freq, N, m->H, m->D, a->attn_factor);
	lp_rope_backward(a->dk, a->pos, a->inv_freq, N, m->KVH, m->D, a->attn_factor);
	linear_backward(a, a->dln, 0, a->dq, la->ln1, &ly->w[LP_Q], ly->lora[LP_Q], la->u[LP_Q],
			p, sd[LP_Q], N);
	linear_backward(a, a->dln, 1, a->dk, la->ln1, &ly->w[LP_K], ly->lora[LP_K], la->u[LP_K],
			p, sd[LP_K], N);
	linear_backward(a, a->dln, 1, a->dv, la->ln1, &ly->w[LP_V], ly->lora[LP_V], la->u[LP_V],
			p, sd[LP_V], N);
	lp_rmsnorm_backward(a->dx, ly->attn_norm.grad, a->dln, a->res[l], ly->attn_norm.w,
			la->rstd1, N, C, 1);
}

void lp_train_backward(const lp_train_model *m, lp_train_acts *a, const lp_train_batch *b)
{
	int N = b->B * b->T, C = m->C;
	const uint8_t *mask = NULL;
	for (int r = 0; r < b->B; r++)
		if (b->len[r] < b->T)
			mask = a->mask;
	float p = m->dropout;
	/* head and final norm; the logits buffer holds dlogits */
	lp_matmul_backward(a->dln, m->lm_head.grad, a->logits, a->lnf, m->lm_head.w, N, C, m->V,
			1.0f, 0.0f);
	lp_rmsnorm_backward(a->dx, m->norm.grad, a->dln, a->res[m->L], m->norm.w, a->rstdf, N, C, 0);
	for (int l = m->L - 1; l >= 0; l--) {
		lp_tlayer_acts *la = &a->la[a->ckpt ? 0 : l];
		if (a->ckpt) /* recompute this layer from its saved input */
			layer_forward(m, a, la, l, b, mask, p);
		layer_backward(m, a, la, l, b, mask, p);
	}
	if (!m->wte.grad)
		return;
	/* nn.Embedding(padding_idx = pad_token_id): that row learns nothing */
	for (int n = 0; m->pad_id >= 0 && n < N; n++)
		if (b->ids[n] == m->pad_id)
			lp_zero((char *)a->dx + (size_t)n * C * lp_act_size(), C * lp_act_size());
	lp_embedding_backward(m->wte.grad, a->dx, a->ids, N, C);
}
