/* lora-merge: merge LoRA adapters into a LLaMA model, or convert a model
 * between Hugging Face, Meta .pth and GGUF layouts.
 *
 *   lora-merge -M BASE [-A ADAPTER]... -o OUT [--to hf|pth|gguf] [--dtype T]
 *
 * Reads the base (any layout model_files.h knows) and the adapters, checks
 * that they fit each other and the tokenizer, then writes the merged model
 * tensor by tensor into a temporary directory that becomes OUT at the end.
 * The arithmetic and the writers are in libcommon/merge.c and
 * merge_export.c. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/cli.h"
#include "base/common.h"
#include "base/dtype.h"
#include "kernels.h"
#include "merge/merge.h"
#include "model/model_files.h"

static const char usage[] =
	"usage: lora-merge [-M BASE] [-A ADAPTER]... -o OUT [options]\n"
	"Merge LoRA adapters (in order) into BASE, or convert BASE, and write OUT.\n"
	"\n"
	"  -M, --model DIR       base model (default: $LLAMAPIPE_MODEL)\n"
	"  -A, --adapter DIR     PEFT LoRA adapter; repeat to merge several in order\n"
	"  -o, --output PATH     output directory (hf, pth) or file (gguf)\n"
	"      --to FORMAT       hf (default), pth (Meta), gguf (llama.cpp)\n"
	"  -d, --dtype TYPE      f16, bf16, f32, q8_0 (gguf only); default: the base's\n"
	"  -m, --tokenizer FILE  tokenizer.model for the output (default: BASE's)\n"
	"      --shard-size SIZE hf: largest safetensors shard (default 5GB)\n"
	"      --shards N        pth: consolidated.NN.pth files (default: by model size)\n"
	"      --quantize TYPE   merge into the base as nf4, fp4 or int8 dequantized\n"
	"                        (the base an adapter of lora-train --quantize saw)\n"
	"  -f, --force           replace OUT if it exists\n"
	"  -q, --quiet           no progress on stderr\n"
	"  -h, --help            this help\n"
	"  -V, --version         the version\n";

typedef struct {
	const char *model, *output, *tokenizer;
	const char **adapters;
	size_t nadapters;
	int quantize;
	lp_export_opts o;
} options;

static int parse_format(const char *s)
{
	if (!strcmp(s, "hf"))
		return LP_TO_HF;
	if (!strcmp(s, "pth") || !strcmp(s, "meta"))
		return LP_TO_PTH;
	if (!strcmp(s, "gguf"))
		return LP_TO_GGUF;
	lp_usage_error("--to: '%s' is not one of hf, pth, gguf", s);
}

static int parse_dtype(const char *s)
{
	if (!strcmp(s, "q8_0"))
		return LP_EXPORT_Q8_0;
	int d = lp_dtype_parse(s);
	if (d != LP_F32 && d != LP_F16 && d != LP_BF16)
		lp_usage_error("--dtype: '%s' is not one of f16, bf16, f32, q8_0", s);
	return d;
}

static void parse_args(int argc, char **argv, options *op)
{
	static const struct option longs[] = {
		{"model", required_argument, 0, 'M'}, {"adapter", required_argument, 0, 'A'},
		{"output", required_argument, 0, 'o'}, {"to", required_argument, 0, 'T'},
		{"dtype", required_argument, 0, 'd'}, {"tokenizer", required_argument, 0, 'm'},
		{"shard-size", required_argument, 0, 'S'}, {"shards", required_argument, 0, 'N'},
		{"force", no_argument, 0, 'f'}, {"quiet", no_argument, 0, 'q'},
		{"quantize", required_argument, 0, 'Q'},
		{"help", no_argument, 0, 'h'}, {"version", no_argument, 0, 'V'}, {0, 0, 0, 0},
	};
	static const char shortopts[] = "M:A:m:o:t:d:fqhV";
	op->adapters = lp_calloc(argc, sizeof *op->adapters);
	int c;
	while ((c = getopt_long(argc, argv, shortopts, longs, NULL)) != -1) {
		switch (c) {
		case 'M': op->model = optarg; break;
		case 'A': op->adapters[op->nadapters++] = optarg; break;
		case 'o': op->output = optarg; break;
		case 't': lp_deprecated("-t", "--to", "-t will mean --template"); /* fall through */
		case 'T': op->o.format = parse_format(optarg); break;
		case 'd': op->o.dtype = parse_dtype(optarg); break;
		case 'm': op->tokenizer = optarg; break;
		case 'S':
			if (!(op->o.shard_size = lp_parse_size(optarg)))
				lp_usage_error("--shard-size: '%s' is not a size such as 5GB", optarg);
			break;
		case 'N': op->o.shards = (int)lp_parse_int("--shards", optarg, 1, 1024); break;
		case 'f': op->o.force = 1; break;
		case 'q': op->o.quiet = 1; break;
		case 'Q':
			if (!(op->quantize = lp_qtype_parse(optarg)))
				lp_usage_error("--quantize: '%s' is not nf4, fp4 or int8", optarg);
			break;
		case 'h': lp_help_exit(usage);
		case 'V': lp_version_exit();
		default: lp_bad_option(argc, argv, shortopts);
		}
	}
	if (optind < argc)
		lp_usage_error("unexpected argument '%s'", argv[optind]);
	if (!op->model)
		op->model = getenv("LLAMAPIPE_MODEL");
	if (!op->model || !*op->model)
		lp_usage_error("no base model: give -M/--model or set LLAMAPIPE_MODEL");
	if (!op->output)
		lp_usage_error("no output: give -o/--output");
	if (op->o.dtype == LP_EXPORT_Q8_0 && op->o.format != LP_TO_GGUF)
		lp_usage_error("--dtype q8_0 is for --to gguf only");
}

/* The tokenizer.model that goes with the output: --tokenizer, else the
 * base's (for Meta's layout also the one beside the model directory). */
static char *find_tokenizer(const options *op, const lp_model_files *base)
{
	if (op->tokenizer)
		return lp_strdup(op->tokenizer);
	const char *rel[] = { "tokenizer.model", "../tokenizer.model" };
	for (int i = 0; i < (base->layout == LP_LAYOUT_META ? 2 : 1); i++) {
		size_t n = strlen(op->model) + strlen(rel[i]) + 2;
		char *p = lp_malloc(n);
		snprintf(p, n, "%s/%s", op->model, rel[i]);
		if (access(p, R_OK) == 0)
			return p;
		free(p);
	}
	return NULL;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* One line for people: what was made, how big, how fast. */
static void report(const options *op, const lp_merge_plan *p, uint64_t bytes, double s)
{
	static const char *const fmt[] = { "hf", "pth", "gguf" };
	char what[256];
	if (op->nadapters)
		snprintf(what, sizeof what, "merged %zu adapter%s (%zu LoRA products, %zu whole "
				"weights) into", op->nadapters, op->nadapters == 1 ? "" : "s",
				p->n_merged, p->n_replaced);
	else
		snprintf(what, sizeof what, "converted");
	lp_info("%s: %s %s (%s) to %s: %.2f GB in %.1f s, %.0f MB/s", op->output, what,
			p->base->dir, lp_layout_name(p->base->layout), fmt[op->o.format],
			bytes / 1e9, s, s > 0 ? bytes / 1e6 / s : 0.0);
}

int main(int argc, char **argv)
{
	lp_init(argv[0]);
	options op = {0};
	parse_args(argc, argv, &op);
	double t0 = now();

	lp_model_files *base = lp_model_files_load(op.model);
	lp_adapter **ad = lp_calloc(op.nadapters + 1, sizeof *ad);
	for (size_t i = 0; i < op.nadapters; i++)
		ad[i] = lp_adapter_load(op.adapters[i]);
	lp_merge_plan *plan = lp_merge_plan_new(base, ad, op.nadapters);
	plan->quantize = op.quantize;

	lp_tokenizer_files tok;
	char *tok_path = find_tokenizer(&op, base);
	lp_tokenizer_files_load(&tok, tok_path, op.model);
	if (tok_path)
		lp_merge_check_vocab(plan, tok_path, (int64_t)tok.spm.n_pieces, tok.n_extra);
	else if (!op.o.quiet)
		lp_warn(op.model, "no tokenizer.model: the vocabulary is not checked");
	op.o.tok = &tok;

	uint64_t bytes = op.o.format == LP_TO_PTH ? lp_export_pth(plan, op.output, &op.o) :
		op.o.format == LP_TO_GGUF ? lp_export_gguf(plan, op.output, &op.o) :
		lp_export_hf(plan, op.output, &op.o);

	if (!op.o.quiet)
		report(&op, plan, bytes, now() - t0);
	lp_tokenizer_files_free(&tok);
	free(tok_path);
	lp_merge_plan_free(plan);
	for (size_t i = 0; i < op.nadapters; i++)
		lp_adapter_close(ad[i]);
	free(ad);
	lp_model_files_close(base);
	free(op.adapters);
	lp_close_stdout();
	return 0;
}
