/* train_io.c: adapters, models and checkpoints written by training. */
#include "train/train_io.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <jv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/atomic_dir.h"
#include "base/common.h"
#include "formats/safetensors.h"

/* ---- small writers ---- */

static char *join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *s = lp_malloc(n);
	snprintf(s, n, "%s/%s", dir, name);
	return s;
}

static void write_text(const char *path, const char *text)
{
	lp_atomic *a = lp_atomic_create(path);
	FILE *f = lp_atomic_file(a);
	lp_fwrite(f, path, text, strlen(text));
	lp_atomic_commit(a);
}

static void write_json(const char *path, jv v)
{
	jv s = jv_dump_string(v, JV_PRINT_INDENT_FLAGS(2) | JV_PRINT_SORTED);
	size_t n = strlen(jv_string_value(s));
	char *text = lp_malloc(n + 2);
	memcpy(text, jv_string_value(s), n);
	text[n] = '\n';
	text[n + 1] = 0;
	jv_free(s);
	write_text(path, text);
	free(text);
}

/* f32 tensors from device buffer base (at each param's offset) into path,
 * named prefix + param name + suffix, in safetensors' order. */
static void write_tensors(const char *path, const lp_train_model *m, const float *dev,
		const char *const *suffixes, const float *const *bufs, int nbufs)
{
	float *host = lp_malloc((m->ntrain ? m->ntrain : 1) * sizeof *host * nbufs);
	char **names = lp_calloc((size_t)m->nparams * nbufs + 1, sizeof *names);
	lp_st_writer *w = lp_st_writer_new(path);
	lp_st_writer_meta(w, "format", "pt");
	for (int k = 0; k < nbufs; k++) {
		float *h = host + k * m->ntrain;
		lp_download(h, bufs ? bufs[k] : dev, m->ntrain * sizeof *h);
		for (int i = 0; i < m->nparams; i++) {
			const lp_tparam *p = &m->params[i];
			size_t n = strlen(p->name) + strlen(suffixes[k]) + 1;
			char *name = names[k * m->nparams + i] = lp_malloc(n);
			snprintf(name, n, "%s%s", p->name, suffixes[k]);
			lp_st_writer_add(w, name, LP_F32, p->rank, p->shape, h + p->off);
		}
	}
	lp_st_writer_sort(w);
	lp_st_writer_close(w);
	for (int i = 0; i < m->nparams * nbufs; i++)
		free(names[i]);
	free(names);
	free(host);
}

/* PEFT 0.21.2's adapter_config.json for a LoRA adapter. */
static jv adapter_config(const lp_train_spec *spec)
{
	jv targets = jv_array(), save = jv_null();
	for (int j = 0; j < LP_NMODULES; j++)
		if (spec->targets & (1u << j))
			targets = jv_array_append(targets, jv_string(lp_module_name(j)));
	if (spec->save_embed || spec->save_head) {
		save = jv_array();
		if (spec->save_embed)
			save = jv_array_append(save, jv_string(lp_arch[LP_ROLE_EMBED].leaf));
		if (spec->save_head)
			save = jv_array_append(save, jv_string(lp_arch[LP_ROLE_HEAD].leaf));
	}
	jv c = jv_object();
	const char *nulls[] = {
		"alora_invocation_tokens", "arrow_config", "auto_mapping", "corda_config",
		"eva_config", "exclude_modules", "kasa_config", "layer_replication",
		"layers_pattern", "layers_to_transform", "lora_ga_config", "megatron_config",
		"monteclora_config", "revision", "target_parameters", "trainable_token_indices",
		"use_bdlora", "velora_config",
	};
	for (size_t i = 0; i < sizeof nulls / sizeof *nulls; i++)
		c = jv_object_set(c, jv_string(nulls[i]), jv_null());
	c = jv_object_set(c, jv_string("alpha_pattern"), jv_object());
	c = jv_object_set(c, jv_string("base_model_name_or_path"),
			spec->base_model ? jv_string(spec->base_model) : jv_null());
	c = jv_object_set(c, jv_string("bias"), jv_string("none"));
	c = jv_object_set(c, jv_string("ensure_weight_tying"), jv_false());
	c = jv_object_set(c, jv_string("fan_in_fan_out"), jv_false());
	c = jv_object_set(c, jv_string("inference_mode"), jv_true());
	c = jv_object_set(c, jv_string("init_lora_weights"), jv_true());
	c = jv_object_set(c, jv_string("loftq_config"), jv_object());
	c = jv_object_set(c, jv_string("lora_alpha"), jv_number(spec->alpha));
	c = jv_object_set(c, jv_string("lora_bias"), jv_false());
	c = jv_object_set(c, jv_string("lora_dropout"), jv_number(spec->dropout));
	c = jv_object_set(c, jv_string("megatron_core"), jv_string("megatron.core"));
	c = jv_object_set(c, jv_string("modules_to_save"), save);
	c = jv_object_set(c, jv_string("peft_type"), jv_string("LORA"));
	c = jv_object_set(c, jv_string("peft_version"), jv_string("0.21.2"));
	c = jv_object_set(c, jv_string("qalora_group_size"), jv_number(16));
	c = jv_object_set(c, jv_string("r"), jv_number((double)spec->r));
	c = jv_object_set(c, jv_string("rank_pattern"), jv_object());
	c = jv_object_set(c, jv_string("target_modules"), targets);
	c = jv_object_set(c, jv_string("task_type"), jv_string("CAUSAL_LM"));
	c = jv_object_set(c, jv_string("use_dora"), jv_false());
	c = jv_object_set(c, jv_string("use_qalora"), jv_false());
	c = jv_object_set(c, jv_string("use_rslora"), jv_false());
	return c;
}

/* The base's config.json with the trained model's vocabulary and tying. */
static jv model_config(const lp_train_spec *spec, const lp_train_model *m)
{
	jv c = spec->config_json ? jv_parse(spec->config_json) : jv_invalid();
	if (!jv_is_valid(c) || jv_get_kind(c) != JV_KIND_OBJECT) {
		jv_free(c);
		c = jv_object(); /* Meta's params.json: write what transformers needs */
		c = jv_object_set(c, jv_string("architectures"),
				jv_array_append(jv_array(), jv_string("LlamaForCausalLM")));
		c = jv_object_set(c, jv_string("model_type"), jv_string("llama"));
		c = jv_object_set(c, jv_string("hidden_size"), jv_number(m->C));
		c = jv_object_set(c, jv_string("intermediate_size"), jv_number(m->I));
		c = jv_object_set(c, jv_string("num_attention_heads"), jv_number(m->H));
		c = jv_object_set(c, jv_string("num_key_value_heads"), jv_number(m->KVH));
		c = jv_object_set(c, jv_string("num_hidden_layers"), jv_number(m->L));
		c = jv_object_set(c, jv_string("head_dim"), jv_number(m->D));
		c = jv_object_set(c, jv_string("rms_norm_eps"), jv_number(m->cfg.rms_norm_eps));
		c = jv_object_set(c, jv_string("max_position_embeddings"),
				jv_number((double)m->cfg.max_pos));
		c = jv_object_set(c, jv_string("rope_theta"), jv_number(m->cfg.rope.theta));
	}
	c = jv_object_set(c, jv_string("vocab_size"), jv_number(m->V));
	c = jv_object_set(c, jv_string("tie_word_embeddings"), m->tied ? jv_true() : jv_false());
	c = jv_object_delete(c, jv_string("torch_dtype"));
	c = jv_object_set(c, jv_string("dtype"), jv_string("float32"));
	return c;
}

static void write_weights_into(const lp_train_model *m, const lp_train_spec *spec,
		char *(*path_of)(void *, const char *), void *ctx)
{
	const char *suffix[] = {""};
	/* the weights first: a config appears only beside whole weights, even
	 * when the disk fills up (each file is itself written atomically) */
	char *p = path_of(ctx, spec->full ? "model.safetensors" : "adapter_model.safetensors");
	write_tensors(p, m, m->master, suffix, NULL, 1);
	free(p);
	p = path_of(ctx, spec->full ? "config.json" : "adapter_config.json");
	write_json(p, spec->full ? model_config(spec, m) : adapter_config(spec));
	free(p);
}

static char *plain_path(void *dir, const char *name)
{
	return join(dir, name);
}

void lp_train_write_weights(const char *dir, const lp_train_model *m, const lp_train_spec *spec)
{
	if (mkdir(dir, 0777) != 0 && errno != EEXIST)
		lp_die(dir, "cannot make directory: %s", strerror(errno));
	write_weights_into(m, spec, plain_path, (void *)dir);
}

/* ---- checkpoints ---- */

static jv state_json(const lp_trainer *t)
{
	char hash[32];
	snprintf(hash, sizeof hash, "%016llx", (unsigned long long)t->data->hash);
	jv s = jv_object();
	s = jv_object_set(s, jv_string("global_step"), jv_number((double)t->pos.step));
	s = jv_object_set(s, jv_string("adam_step"), jv_number((double)t->pos.adam_t));
	s = jv_object_set(s, jv_string("epoch_index"), jv_number((double)t->pos.epoch));
	s = jv_object_set(s, jv_string("micro_in_epoch"), jv_number((double)t->pos.micro));
	s = jv_object_set(s, jv_string("micro_total"), jv_number((double)t->pos.micro_total));
	s = jv_object_set(s, jv_string("epoch"), jv_number((double)t->pos.epoch +
				(double)t->pos.micro / (double)t->steps_in_epoch));
	s = jv_object_set(s, jv_string("max_steps"), jv_number((double)t->total_steps));
	s = jv_object_set(s, jv_string("batch_size"), jv_number(t->o.batch_size));
	s = jv_object_set(s, jv_string("grad_accum"), jv_number(t->o.grad_accum));
	s = jv_object_set(s, jv_string("seed"), jv_string_fmt("%llu", (unsigned long long)t->o.seed));
	s = jv_object_set(s, jv_string("shuffle"), t->o.shuffle ? jv_true() : jv_false());
	s = jv_object_set(s, jv_string("data_records"), jv_number((double)t->data->n));
	s = jv_object_set(s, jv_string("data_hash"), jv_string(hash));
	return s;
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(p) : unlink(p);
}

static void remove_tree(const char *p)
{
	struct stat st;
	if (lstat(p, &st) == 0 && nftw(p, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
		lp_warn(p, "cannot remove: %s", strerror(errno));
}

static char *atomic_path(void *d, const char *name)
{
	return lp_atomic_dir_path(d, name);
}

/* Written as an atomic directory (base/atomic_dir.h) that replaces an old
 * one, with no signal clean-up: the SIGTERM that asks for this very
 * checkpoint must not remove it while it is written. */
void lp_train_write_checkpoint(const char *dir, const lp_trainer *t, const lp_train_spec *spec)
{
	lp_atomic_dir *d = lp_atomic_dir_create_flags(dir,
			LP_ATOMIC_DIR_FORCE | LP_ATOMIC_DIR_NO_SIGNALS);
	write_weights_into(t->m, spec, atomic_path, d);
	const char *suffix[] = {".exp_avg", ".exp_avg_sq"};
	const float *bufs[] = {t->mom1, t->mom2};
	char *p = lp_atomic_dir_path(d, "optimizer.safetensors");
	write_tensors(p, t->m, NULL, suffix, bufs, 2);
	free(p);
	p = lp_atomic_dir_path(d, "trainer_state.json");
	write_json(p, state_json(t));
	free(p);
	lp_atomic_dir_commit(d);
}

static double num_field(jv s, const char *key, const char *path)
{
	jv v = jv_object_get(jv_copy(s), jv_string(key));
	if (jv_get_kind(v) != JV_KIND_NUMBER)
		lp_die(path, "no number '%s'", key);
	double x = jv_number_value(v);
	jv_free(v);
	return x;
}

void lp_train_read_checkpoint(const char *dir, lp_trainer *t)
{
	char *path = join(dir, "trainer_state.json");
	size_t len;
	char *text = lp_read_file(path, &len);
	jv s = jv_parse_sized(text, (int)len);
	free(text);
	if (jv_get_kind(s) != JV_KIND_OBJECT)
		lp_die(path, "not a JSON object");
	char hash[32];
	snprintf(hash, sizeof hash, "%016llx", (unsigned long long)t->data->hash);
	jv h = jv_object_get(jv_copy(s), jv_string("data_hash"));
	if (jv_get_kind(h) != JV_KIND_STRING || strcmp(jv_string_value(h), hash) ||
			num_field(s, "data_records", path) != (double)t->data->n)
		lp_die(path, "the checkpoint was trained on other data (%.0f records, hash %s; "
				"now %zu records, hash %s)", num_field(s, "data_records", path),
				jv_get_kind(h) == JV_KIND_STRING ? jv_string_value(h) : "?",
				t->data->n, hash);
	jv_free(h);
	if (num_field(s, "batch_size", path) != t->o.batch_size ||
			num_field(s, "grad_accum", path) != t->o.grad_accum)
		lp_die(path, "the checkpoint used --batch-size %.0f --grad-accum %.0f; give the same",
				num_field(s, "batch_size", path), num_field(s, "grad_accum", path));
	jv seed = jv_object_get(jv_copy(s), jv_string("seed"));
	char want[32];
	snprintf(want, sizeof want, "%llu", (unsigned long long)t->o.seed);
	if (jv_get_kind(seed) != JV_KIND_STRING || strcmp(jv_string_value(seed), want))
		lp_die(path, "the checkpoint used --seed %s; give the same",
				jv_get_kind(seed) == JV_KIND_STRING ? jv_string_value(seed) : "?");
	jv_free(seed);
	jv sh = jv_object_get(jv_copy(s), jv_string("shuffle"));
	if ((jv_get_kind(sh) == JV_KIND_TRUE) != (t->o.shuffle != 0))
		lp_die(path, "the checkpoint was trained %s shuffling; give the same",
				jv_get_kind(sh) == JV_KIND_TRUE ? "with" : "without");
	jv_free(sh);
	t->pos.step = (int64_t)num_field(s, "global_step", path);
	t->pos.adam_t = (int64_t)num_field(s, "adam_step", path);
	t->pos.epoch = (int64_t)num_field(s, "epoch_index", path);
	t->pos.micro = (int64_t)num_field(s, "micro_in_epoch", path);
	t->pos.micro_total = (uint64_t)num_field(s, "micro_total", path);
	jv_free(s);
	free(path);

	path = join(dir, "optimizer.safetensors");
	lp_st_file *f = lp_st_open(path);
	const lp_train_model *m = t->m;
	char name[512];
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < m->nparams; i++) {
			const lp_tparam *p = &m->params[i];
			snprintf(name, sizeof name, "%s%s", p->name, k ? ".exp_avg_sq" : ".exp_avg");
			const lp_st_tensor *x = lp_st_get(f, name);
			if (x->dtype != LP_F32 || x->numel != p->n)
				lp_die(path, "%s: not %zu f32 values", name, p->n);
			float *buf = lp_malloc(p->n * sizeof *buf + 1);
			memcpy(buf, x->data, p->n * sizeof *buf);
			lp_upload((k ? t->mom2 : t->mom1) + p->off, buf, p->n * sizeof *buf);
			free(buf);
		}
	if (f->n != (size_t)m->nparams * 2)
		lp_die(path, "%zu tensors, want %d: the checkpoint trains other tensors", f->n,
				m->nparams * 2);
	lp_st_close(f);
	free(path);
}

/* N of "checkpoint-N", or -1. */
static long ckpt_number(const char *name)
{
	if (strncmp(name, "checkpoint-", 11) || !name[11])
		return -1;
	char *end;
	long n = strtol(name + 11, &end, 10);
	return *end || n < 0 ? -1 : n;
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return (x > y) - (x < y);
}

/* The checkpoint numbers in dir, sorted; count in *n. */
static long *list_checkpoints(const char *dir, size_t *n)
{
	long *v = NULL;
	size_t cap = 0;
	*n = 0;
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		long k = ckpt_number(e->d_name);
		if (k < 0)
			continue;
		char *p = join(dir, e->d_name), *st = join(p, "trainer_state.json");
		if (access(st, R_OK) == 0) {
			lp_grow((void **)&v, &cap, *n + 1, sizeof *v);
			v[(*n)++] = k;
		}
		free(p);
		free(st);
	}
	if (d)
		closedir(d);
	if (*n)
		qsort(v, *n, sizeof *v, cmp_long);
	return v;
}

char *lp_train_find_checkpoint(const char *dir)
{
	char *st = join(dir, "trainer_state.json");
	int here = access(st, R_OK) == 0;
	free(st);
	if (here)
		return lp_strdup(dir);
	size_t n;
	long *v = list_checkpoints(dir, &n);
	char *out = NULL;
	if (n) {
		char name[64];
		snprintf(name, sizeof name, "checkpoint-%ld", v[n - 1]);
		out = join(dir, name);
	}
	free(v);
	return out;
}

void lp_train_prune_checkpoints(const char *dir, int limit)
{
	size_t n;
	long *v = list_checkpoints(dir, &n);
	for (size_t i = 0; limit > 0 && i + limit < n; i++) {
		char name[64];
		snprintf(name, sizeof name, "checkpoint-%ld", v[i]);
		char *p = join(dir, name);
		remove_tree(p);
		free(p);
	}
	free(v);
}
