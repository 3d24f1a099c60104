/* model_dump.c: prints what libcommon reads from model and adapter
 * directories, for t0400-model-files.t to compare with what Python reads.
 *
 *   model_dump tensors DIR        name dtype [shape] crc32, sorted by name
 *   model_dump layout DIR         the layout detected, and the shard count
 *   model_dump config DIR         the config, as make_models.py's ref-config.txt
 *   model_dump rope DIR [SEQ]     inv_freq one a line, then attention_factor
 *                                 (config and rope also take a config.json or
 *                                 params.json file instead of a directory)
 *   model_dump vocab DIR N [--allow-extra]   check against N tokenizer pieces
 *   model_dump adapter DIR [BASE] the LoRA pairs and saved modules (checked
 *                                 against the base model BASE if given)
 *   model_dump file PATH          the tensors of one weights file
 *
 * Errors go to stderr as the tools print them; exit 1. Without arguments
 * it prints a TAP plan that skips (it is a helper, not a unit test). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/adapter_files.h"
#include "base/common.h"
#include "model/model_config.h"
#include "model/model_files.h"
#include "formats/zipread.h"

static void print_tensor(const char *label, const lp_mf_tensor *t)
{
	const void *p = lp_mf_data(t);
	printf("%s%s %s [", label, t->name, lp_dtype_name(t->dtype));
	for (int d = 0; d < t->rank; d++)
		printf("%s%llu", d ? "," : "", (unsigned long long)t->shape[d]);
	printf("] %08x\n", lp_crc32(0, p, t->nbytes));
	lp_mf_release(t);
}

static void tensors(const lp_model_files *m)
{
	for (size_t i = 0; i < m->n; i++)
		print_tensor("", &m->t[m->by_name[i]]);
}

static void config(const lp_model_config *c)
{
	printf("hidden_size %lld\nn_layers %lld\nn_heads %lld\nn_kv_heads %lld\n"
			"head_dim %lld\nintermediate_size %lld\nvocab_size %lld\n"
			"rms_norm_eps %.17g\nrope_type %s\nrope_theta %.17g\nmax_pos %lld\n"
			"tie_word_embeddings %d\nbos %lld\neos ",
			(long long)c->hidden_size, (long long)c->n_layers, (long long)c->n_heads,
			(long long)c->n_kv_heads, (long long)c->head_dim,
			(long long)c->intermediate_size, (long long)c->vocab_size, c->rms_norm_eps,
			lp_rope_type_name(c->rope.type), c->rope.theta, (long long)c->max_pos,
			c->tie_word_embeddings, (long long)c->bos_id);
	for (int i = 0; i < c->n_eos; i++)
		printf("%s%lld", i ? "," : "", (long long)c->eos_ids[i]);
	printf("\npad %lld\ndtype %s\n", (long long)c->pad_id,
			c->dtype ? lp_dtype_name(c->dtype) : "none");
}

static void rope(const lp_model_config *c, long long seq)
{
	float *f = lp_malloc(c->head_dim / 2 * sizeof *f);
	double att;
	lp_rope_inv_freq(c, seq, f, &att);
	for (int64_t i = 0; i < c->head_dim / 2; i++)
		printf("%.9g\n", f[i]);
	printf("attention_factor %.17g\n", att);
	free(f);
}

static void adapter(const char *dir, const char *base)
{
	lp_adapter *a = lp_adapter_load(dir);
	if (base) {
		char err[1024];
		lp_model_files *m = lp_model_files_load(base);
		if (lp_adapter_check(a, m, err, sizeof err))
			lp_die(dir, "%s", err);
		lp_model_files_close(m);
	}
	for (size_t i = 0; i < a->nfull; i++) {
		char label[256];
		snprintf(label, sizeof label, "full %s ", a->full[i].base_name);
		print_tensor(label, a->full[i].t);
	}
	for (size_t i = 0; i < a->npairs; i++) {
		const lp_lora_pair *p = &a->pairs[i];
		printf("pair %s r=%lld alpha=%.17g scale=%.17g A=%08x B=%08x\n", p->module,
				(long long)p->r, p->alpha, p->scale,
				lp_crc32(0, lp_mf_data(p->A), p->A->nbytes),
				lp_crc32(0, lp_mf_data(p->B), p->B->nbytes));
	}
	lp_adapter_close(a);
}

int main(int argc, char **argv)
{
	lp_init(argv[0]);
	if (argc < 2) {
		printf("1..0 # SKIP model_dump is a helper of t0400-model-files.t\n");
		return 0;
	}
	const char *cmd = argv[1], *dir = argc > 2 ? argv[2] : NULL;
	if (!dir)
		lp_usage_error("%s: which directory?", cmd);
	if (!strcmp(cmd, "adapter")) {
		adapter(dir, argc > 3 ? argv[3] : NULL);
	} else if (!strcmp(cmd, "file")) {
		char err[1024];
		lp_model_files *m = lp_mf_new(NULL);
		if (lp_mf_add_file(m, dir, err, sizeof err))
			lp_die(dir, "%s", err);
		tensors(m);
		lp_model_files_close(m);
	} else if (strstr(dir, ".json") && (!strcmp(cmd, "config") || !strcmp(cmd, "rope"))) {
		lp_model_config c;
		const char *b = strrchr(dir, '/');
		if (!strcmp(b ? b + 1 : dir, "params.json"))
			lp_config_load_meta(dir, &c);
		else
			lp_config_load_hf(dir, &c);
		if (!strcmp(cmd, "config"))
			config(&c);
		else
			rope(&c, argc > 3 ? lp_parse_int("SEQ", argv[3], 0, 1LL << 40) : 0);
	} else {
		lp_model_files *m = lp_model_files_load(dir);
		char err[1024];
		if (!strcmp(cmd, "tensors"))
			tensors(m);
		else if (!strcmp(cmd, "layout"))
			printf("%s %d\n", lp_layout_name(m->layout), m->nshards);
		else if (!strcmp(cmd, "config"))
			config(&m->cfg);
		else if (!strcmp(cmd, "rope"))
			rope(&m->cfg, argc > 3 ? lp_parse_int("SEQ", argv[3], 0, 1LL << 40) : 0);
		else if (!strcmp(cmd, "vocab") && argc > 3) {
			if (lp_config_check_vocab(&m->cfg, lp_parse_int("N", argv[3], 0, 1LL << 40),
						argc > 4 && !strcmp(argv[4], "--allow-extra"),
						err, sizeof err))
				lp_die(dir, "%s", err);
			printf("ok\n");
		} else
			lp_usage_error("unknown command '%s'", cmd);
		lp_model_files_close(m);
	}
	lp_close_stdout();
	return 0;
}
