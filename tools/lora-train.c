/* lora-train: LoRA pre-training and instruction tuning of a LLaMA model on
 * token frames, as transformers' Trainer + PEFT would do it.
 *
 *   lora-train -M BASE -o ADAPTER_DIR [options] < examples.frames
 *
 * The story: parse options; open the base, any adapter to start from or
 * checkpoint to resume, and the data (every check before any work); build
 * the model and the trainer; loop over optimizer steps, logging one JSON
 * object per step on stdout, evaluating and checkpointing as asked; write
 * the adapter. See lora-train(1). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "model/adapter_files.h"
#include "base/common.h"
#include "kernels.h"
#include "train/llama_train.h"
#include "model/model_files.h"
#include "base/reader.h"
#include "formats/spm_model.h"
#include "train/train_io.h"
#include "train/trainer.h"

static const char usage[] =
"usage: lora-train -M BASE -o OUT [options] < examples.frames\n"
"Train a LoRA adapter (or, with --full, every weight) on token frames.\n"
"  -M, --model DIR           base model (default $LLAMAPIPE_MODEL)\n"
"  -o, --output DIR          adapter directory to write (checkpoints go inside)\n"
"      --data FILE           training frames (default stdin)\n"
"      --eval FILE           evaluation frames\n"
"  -r, --rank N              LoRA rank (8)\n"
"      --alpha X             LoRA alpha (32)\n"
"      --dropout P           LoRA dropout (0.05)\n"
"      --targets LIST        modules (q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj)\n"
"      --modules-to-save LIST  embed_tokens,lm_head trained whole\n"
"      --tokenizer FILE      resize the vocabulary to this tokenizer.model's pieces\n"
"      --init DIR            start from this adapter\n"
"      --full                train every weight (writes a model)\n"
"      --quantize TYPE       hold the base's Linear weights as nf4, fp4 or int8 (QLoRA)\n"
"      --from-scratch CONFIG a new model from config.json (implies --full)\n"
"  -b, --batch-size N        examples per micro-batch (1)\n"
"      --grad-accum N        micro-batches per optimizer step (1)\n"
"      --lr X                peak learning rate (2e-4)\n"
"      --weight-decay X      (0.01)   --adam-beta1 X (0.9)  --adam-beta2 X (0.999)\n"
"      --adam-eps X          (1e-8)   --max-grad-norm X (1.0; 0: no clipping)\n"
"      --lr-schedule S       cosine, linear or constant (cosine)\n"
"      --warmup-ratio X      (0.05)   --warmup-steps N (overrides the ratio)\n"
"      --epochs X            (1)      --max-steps N (overrides epochs)\n"
"      --seed N              (42)     --no-shuffle  keep the file's order\n"
"      --grad-checkpointing  recompute activations layer by layer in backward\n"
"      --save-steps N        checkpoint every N steps   --save-total-limit N\n"
"      --resume DIR          continue from a checkpoint (or OUT's latest)\n"
"      --eval-steps N        evaluate every N steps (and at the end)\n"
"      --logging-steps N     metrics every N steps (1)\n"
"      --log FILE            metrics to FILE, not stdout\n"
"      --skip-nonfinite      skip a step whose loss or gradient is NaN/inf\n"
"      --device D            cpu or cuda (cpu)\n"
"      --force               write into a non-empty OUT\n"
"      --dump-grads FILE     first step's gradients as safetensors (tests)\n"
"  -h, --help                this text\n";

enum {
	O_DATA = 256, O_EVAL, O_ALPHA, O_DROPOUT, O_TARGETS, O_SAVE, O_TOKENIZER, O_INIT, O_FULL,
	O_SCRATCH, O_GA, O_LR, O_WD, O_B1, O_B2, O_EPS, O_SCHED, O_WRATIO, O_WSTEPS, O_MAXNORM,
	O_EPOCHS, O_MAXSTEPS, O_SEED, O_NOSHUFFLE, O_CKPT, O_SAVESTEPS, O_SAVELIMIT, O_RESUME,
	O_EVALSTEPS, O_LOGSTEPS, O_LOG, O_SKIP, O_DEVICE, O_FORCE, O_DUMP, O_QUANT,
};

static struct {
	const char *model, *out, *data, *eval, *tokenizer, *init, *scratch, *resume, *log;
	const char *dump_grads, *device;
	int64_t r;
	double alpha, dropout;
	int dropout_set, targets_set, save_set;
	unsigned targets;
	int save_embed, save_head, full, ckpt, skip_nonfinite, force, quantize;
	int64_t save_steps, save_limit, eval_steps, log_steps;
	lp_train_opts o;
} opt = {
	.r = 8, .alpha = 32, .dropout = 0.05, .targets = (1u << LP_NMODULES) - 1,
	.log_steps = 1, .device = "cpu",
	.o = {
		.batch_size = 1, .grad_accum = 1, .lr = 2e-4, .weight_decay = 0.01,
		.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .max_grad_norm = 1.0,
		.schedule = LP_SCHED_COSINE, .warmup_steps = -1, .warmup_ratio = 0.05,
		.epochs = 1, .max_steps = -1, .seed = 42, .shuffle = 1,
	},
};

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
	if (stop_signal) { /* a second one: go now */
		signal(sig, SIG_DFL);
		raise(sig);
	}
	stop_signal = sig;
}

static unsigned parse_targets(const char *s)
{
	unsigned mask = 0;
	char *copy = lp_strdup(s), *save = NULL;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		int j;
		for (j = 0; j < LP_NMODULES; j++)
			if (!strcmp(t, lp_module_names[j]))
				break;
		if (j == LP_NMODULES)
			lp_usage_error("--targets: unknown module '%s' (q_proj, k_proj, v_proj, o_proj, "
					"gate_proj, up_proj, down_proj)", t);
		mask |= 1u << j;
	}
	free(copy);
	if (!mask)
		lp_usage_error("--targets: no module named");
	return mask;
}

static void parse_save(const char *s, int *embed, int *head, const char *where)
{
	char *copy = lp_strdup(s), *save = NULL;
	*embed = *head = 0;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (!strcmp(t, "embed_tokens"))
			*embed = 1;
		else if (!strcmp(t, "lm_head"))
			*head = 1;
		else
			lp_die(where, "modules_to_save: '%s' is not embed_tokens or lm_head", t);
	}
	free(copy);
}

static void parse_options(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"model", required_argument, 0, 'M'}, {"output", required_argument, 0, 'o'},
		{"data", required_argument, 0, O_DATA}, {"eval", required_argument, 0, O_EVAL},
		{"rank", required_argument, 0, 'r'}, {"alpha", required_argument, 0, O_ALPHA},
		{"dropout", required_argument, 0, O_DROPOUT},
		{"targets", required_argument, 0, O_TARGETS},
		{"modules-to-save", required_argument, 0, O_SAVE},
		{"tokenizer", required_argument, 0, O_TOKENIZER},
		{"init", required_argument, 0, O_INIT}, {"full", no_argument, 0, O_FULL},
		{"from-scratch", required_argument, 0, O_SCRATCH},
		{"batch-size", required_argument, 0, 'b'},
		{"grad-accum", required_argument, 0, O_GA}, {"lr", required_argument, 0, O_LR},
		{"weight-decay", required_argument, 0, O_WD},
		{"adam-beta1", required_argument, 0, O_B1}, {"adam-beta2", required_argument, 0, O_B2},
		{"adam-eps", required_argument, 0, O_EPS},
		{"lr-schedule", required_argument, 0, O_SCHED},
		{"warmup-ratio", required_argument, 0, O_WRATIO},
		{"warmup-steps", required_argument, 0, O_WSTEPS},
		{"max-grad-norm", required_argument, 0, O_MAXNORM},
		{"epochs", required_argument, 0, O_EPOCHS},
		{"max-steps", required_argument, 0, O_MAXSTEPS},
		{"seed", required_argument, 0, O_SEED}, {"no-shuffle", no_argument, 0, O_NOSHUFFLE},
		{"grad-checkpointing", no_argument, 0, O_CKPT},
		{"save-steps", required_argument, 0, O_SAVESTEPS},
		{"save-total-limit", required_argument, 0, O_SAVELIMIT},
		{"resume", required_argument, 0, O_RESUME},
		{"eval-steps", required_argument, 0, O_EVALSTEPS},
		{"logging-steps", required_argument, 0, O_LOGSTEPS},
		{"log", required_argument, 0, O_LOG},
		{"skip-nonfinite", no_argument, 0, O_SKIP},
		{"device", required_argument, 0, O_DEVICE}, {"force", no_argument, 0, O_FORCE},
		{"dump-grads", required_argument, 0, O_DUMP},
		{"quantize", required_argument, 0, O_QUANT},
		{"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "M:o:r:b:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'M': opt.model = optarg; break;
		case 'o': opt.out = optarg; break;
		case O_DATA: opt.data = optarg; break;
		case O_EVAL: opt.eval = optarg; break;
		case 'r': opt.r = lp_parse_int("--rank", optarg, 1, 65536); break;
		case O_ALPHA: opt.alpha = lp_parse_double("--alpha", optarg, 1e-9, 1e9); break;
		case O_DROPOUT:
			opt.dropout = lp_parse_double("--dropout", optarg, 0, 0.999);
			opt.dropout_set = 1;
			break;
		case O_TARGETS: opt.targets = parse_targets(optarg); opt.targets_set = 1; break;
		case O_SAVE:
			parse_save(optarg, &opt.save_embed, &opt.save_head, "--modules-to-save");
			opt.save_set = 1;
			break;
		case O_TOKENIZER: opt.tokenizer = optarg; break;
		case O_INIT: opt.init = optarg; break;
		case O_FULL: opt.full = 1; break;
		case O_SCRATCH: opt.scratch = optarg; opt.full = 1; break;
		case 'b': opt.o.batch_size = (int)lp_parse_int("--batch-size", optarg, 1, 1 << 20); break;
		case O_GA: opt.o.grad_accum = (int)lp_parse_int("--grad-accum", optarg, 1, 1 << 20); break;
		case O_LR: opt.o.lr = lp_parse_double("--lr", optarg, 0, 10); break;
		case O_WD: opt.o.weight_decay = lp_parse_double("--weight-decay", optarg, 0, 10); break;
		case O_B1: opt.o.beta1 = lp_parse_double("--adam-beta1", optarg, 0, 0.999999999); break;
		case O_B2: opt.o.beta2 = lp_parse_double("--adam-beta2", optarg, 0, 0.999999999); break;
		case O_EPS: opt.o.eps = lp_parse_double("--adam-eps", optarg, 0, 1); break;
		case O_SCHED:
			if (!strcmp(optarg, "cosine"))
				opt.o.schedule = LP_SCHED_COSINE;
			else if (!strcmp(optarg, "linear"))
				opt.o.schedule = LP_SCHED_LINEAR;
			else if (!strcmp(optarg, "constant"))
				opt.o.schedule = LP_SCHED_CONSTANT;
			else
				lp_usage_error("--lr-schedule: '%s' is not cosine, linear or constant", optarg);
			break;
		case O_WRATIO: opt.o.warmup_ratio = lp_parse_double("--warmup-ratio", optarg, 0, 1); break;
		case O_WSTEPS: opt.o.warmup_steps = lp_parse_int("--warmup-steps", optarg, 0, 1LL << 40); break;
		case O_MAXNORM: opt.o.max_grad_norm = lp_parse_double("--max-grad-norm", optarg, 0, 1e30); break;
		case O_EPOCHS: opt.o.epochs = lp_parse_double("--epochs", optarg, 1e-9, 1e9); break;
		case O_MAXSTEPS: opt.o.max_steps = lp_parse_int("--max-steps", optarg, 1, 1LL << 40); break;
		case O_SEED: opt.o.seed = (uint64_t)lp_parse_int("--seed", optarg, 0, INT64_MAX); break;
		case O_NOSHUFFLE: opt.o.shuffle = 0; break;
		case O_CKPT: opt.ckpt = 1; break;
		case O_SAVESTEPS: opt.save_steps = lp_parse_int("--save-steps", optarg, 1, 1LL << 40); break;
		case O_SAVELIMIT: opt.save_limit = lp_parse_int("--save-total-limit", optarg, 1, 1 << 20); break;
		case O_RESUME: opt.resume = optarg; break;
		case O_EVALSTEPS: opt.eval_steps = lp_parse_int("--eval-steps", optarg, 1, 1LL << 40); break;
		case O_LOGSTEPS: opt.log_steps = lp_parse_int("--logging-steps", optarg, 1, 1LL << 40); break;
		case O_LOG: opt.log = optarg; break;
		case O_SKIP: opt.skip_nonfinite = 1; break;
		case O_DEVICE: opt.device = optarg; break;
		case O_FORCE: opt.force = 1; break;
		case O_DUMP: opt.dump_grads = optarg; break;
		case O_QUANT:
			if (!(opt.quantize = lp_qtype_parse(optarg)))
				lp_usage_error("--quantize: '%s' is not nf4, fp4 or int8", optarg);
			break;
		case 'h':
			fputs(usage, stdout);
			lp_close_stdout();
			exit(0);
		default:
			lp_usage_error("unknown option");
		}
	}
	if (optind < argc)
		lp_usage_error("unexpected argument '%s'", argv[optind]);
	if (!opt.out)
		lp_usage_error("no output directory: give -o DIR");
	if (!opt.model && !opt.scratch)
		opt.model = getenv("LLAMAPIPE_MODEL");
	if (!opt.model && !opt.scratch)
		lp_usage_error("no base model: give -M DIR or set LLAMAPIPE_MODEL");
	if (strcmp(opt.device, "cpu") && strcmp(opt.device, "cuda"))
		lp_usage_error("--device: '%s' is not cpu or cuda", opt.device);
	if (opt.full && (opt.init || opt.save_set || opt.targets_set))
		lp_usage_error("--full trains every weight: --init, --targets and --modules-to-save "
				"are for LoRA");
	if (opt.full && opt.quantize)
		lp_usage_error("--quantize freezes the base in 4 or 8 bits: it is for LoRA, not --full");
	if (opt.init && opt.resume)
		lp_usage_error("--init and --resume: a resumed run starts from its checkpoint");
}

/* ---- opening ---- */

static struct {
	lp_model_files *mf;             /* the base (full resume: the checkpoint) */
	lp_model_config scratch_cfg;
	char *config_json;              /* for a full model's config.json */
	lp_adapter *init;               /* --init, or the checkpoint's adapter */
	char *ckpt;                     /* the checkpoint resumed */
	lp_train_spec spec;
	lp_train_desc desc;
	lp_dataset data, eval;
	int has_eval;
	FILE *log;
	const char *logname;
} run;

/* The adapter's config as this run's LoRA settings. */
static void take_adapter_settings(const lp_adapter *a)
{
	const lp_lora_config *c = &a->cfg;
	if (c->target_regex)
		lp_die(a->dir, "target_modules is a regular expression; training needs a list");
	if (c->n_rank || c->n_alpha || c->use_rslora)
		lp_die(a->dir, "rank_pattern, alpha_pattern and use_rslora are not supported for training");
	unsigned mask = 0;
	for (size_t i = 0; i < c->n_target; i++) {
		int j;
		for (j = 0; j < LP_NMODULES; j++)
			if (!strcmp(c->target_modules[i], lp_module_names[j]))
				break;
		if (j == LP_NMODULES)
			lp_die(a->dir, "target module '%s' is not a LLaMA Linear module",
					c->target_modules[i]);
		mask |= 1u << j;
	}
	if ((opt.targets_set && mask != opt.targets) || (opt.r != 8 && opt.r != c->r))
		lp_usage_error("%s: the adapter's rank and targets decide; drop --rank/--targets", a->dir);
	opt.targets = mask;
	opt.r = c->r;
	opt.alpha = c->alpha;
	if (!opt.dropout_set)
		opt.dropout = c->dropout;
	opt.save_embed = opt.save_head = 0;
	for (size_t i = 0; i < c->n_save; i++) {
		if (!strcmp(c->modules_to_save[i], "embed_tokens"))
			opt.save_embed = 1;
		else if (!strcmp(c->modules_to_save[i], "lm_head"))
			opt.save_head = 1;
		else
			lp_die(a->dir, "modules_to_save: '%s' is not embed_tokens or lm_head",
					c->modules_to_save[i]);
	}
}

static int64_t rows_of(const lp_adapter *a, const char *name)
{
	for (size_t i = 0; a && i < a->nfull; i++)
		if (!strcmp(a->full[i].base_name, name))
			return (int64_t)a->full[i].t->shape[0];
	return 0;
}

/* Rows the embedding and head will have. */
static int64_t choose_vocab(int64_t base_rows)
{
	int64_t V = base_rows;
	int64_t e = rows_of(run.init, "model.embed_tokens.weight");
	int64_t h = rows_of(run.init, "lm_head.weight");
	if (e && h && e != h)
		lp_die(run.init->dir, "embed_tokens has %lld rows but lm_head %lld", (long long)e,
				(long long)h);
	if (e || h)
		V = e ? e : h;
	if (opt.tokenizer) {
		lp_spm_model sp;
		lp_spm_model_load(opt.tokenizer, &sp);
		int64_t n = (int64_t)sp.n_pieces;
		lp_spm_model_free(&sp);
		int resizable = opt.full || (opt.save_embed && opt.save_head);
		if (n != V && (e || h))
			lp_die(opt.tokenizer, "%lld pieces, but the adapter's vocabulary has %lld rows",
					(long long)n, (long long)V);
		if (n != V && !resizable)
			lp_die(opt.tokenizer, "%lld pieces, the model %lld rows: resizing needs "
					"--modules-to-save embed_tokens,lm_head (or --full)", (long long)n,
					(long long)V);
		V = n;
	}
	return V;
}

static void read_data(lp_dataset *d, const char *path, int64_t V)
{
	char err[512];
	lp_reader *r = lp_reader_open(path);
	if (lp_dataset_read(d, r, V, err, sizeof err) != 0)
		lp_die(lp_reader_name(r), "%s", err);
	lp_reader_close(r);
}

static void check_output_dir(void)
{
	struct stat st;
	if (stat(opt.out, &st) != 0)
		return;
	if (!S_ISDIR(st.st_mode))
		lp_die(opt.out, "exists and is not a directory");
	if (opt.force || opt.resume)
		return;
	char p[4096];
	const char *names[] = {"adapter_model.safetensors", "model.safetensors", "trainer_state.json"};
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof p, "%s/%s", opt.out, names[i]);
		if (access(p, F_OK) == 0)
			lp_die(opt.out, "already holds %s (use --force to write over it, or --resume)",
					names[i]);
	}
	char *ck = lp_train_find_checkpoint(opt.out);
	if (ck)
		lp_die(opt.out, "holds %s (use --resume to continue it, or --force)", ck);
}

static void open_inputs(void)
{
	char err[1024];
	check_output_dir();
	if (opt.resume) {
		run.ckpt = lp_train_find_checkpoint(opt.resume);
		if (!run.ckpt)
			lp_die(opt.resume, "no checkpoint here (trainer_state.json or checkpoint-N/)");
	}
	if (opt.scratch && !run.ckpt) {
		size_t n;
		run.config_json = lp_read_file(opt.scratch, &n);
		if (lp_config_parse_hf(run.config_json, n, &run.scratch_cfg, err, sizeof err) != 0)
			lp_die(opt.scratch, "%s", err);
	} else if (opt.full && run.ckpt) {
		run.mf = lp_model_files_load(run.ckpt);
	} else {
		run.mf = lp_model_files_load(opt.model);
	}
	if (run.mf && opt.full) {
		char p[4096];
		size_t n;
		snprintf(p, sizeof p, "%s/config.json", run.mf->dir);
		if (access(p, R_OK) == 0)
			run.config_json = lp_read_file(p, &n);
	}
	if (!opt.full && (opt.init || run.ckpt)) {
		run.init = lp_adapter_load(opt.init ? opt.init : run.ckpt);
		if (lp_adapter_check(run.init, run.mf, err, sizeof err) != 0)
			lp_die(run.init->dir, "does not fit %s: %s", run.mf->dir, err);
		take_adapter_settings(run.init);
	}
	int64_t base_rows = run.mf ? (int64_t)lp_mf_get(run.mf, "model.embed_tokens.weight")->shape[0]
		: run.scratch_cfg.vocab_size;
	int64_t V = choose_vocab(base_rows);

	/* the data, checked against the vocabulary, before any work */
	read_data(&run.data, opt.data, V);
	if (opt.eval) {
		read_data(&run.eval, opt.eval, V);
		run.has_eval = 1;
	}
	int64_t max_pos = run.mf ? run.mf->cfg.max_pos : run.scratch_cfg.max_pos;
	if (run.data.max_len > max_pos)
		lp_warn(opt.data ? opt.data : "stdin", "an example of %d tokens is longer than the "
				"model's max_position_embeddings (%lld)", run.data.max_len, (long long)max_pos);

	lp_train_spec *s = &run.spec;
	s->full = opt.full;
	s->r = opt.r;
	s->alpha = opt.alpha;
	s->dropout = opt.full ? 0 : opt.dropout;
	s->targets = opt.full ? 0 : opt.targets;
	s->save_embed = opt.save_embed;
	s->save_head = opt.save_head;
	s->vocab = V;
	s->init = run.init;
	s->seed = opt.o.seed;
	s->grad_ckpt = opt.ckpt;
	s->quantize = opt.quantize;
	lp_train_desc *d = &run.desc;
	d->base_model = opt.model;
	d->r = opt.r;
	d->alpha = opt.alpha;
	d->dropout = opt.dropout;
	d->targets = opt.targets;
	d->save_embed = opt.save_embed;
	d->save_head = opt.save_head;
	d->full = opt.full;
	d->config_json = run.config_json;
	const lp_model_config *cfg = run.mf ? &run.mf->cfg : &run.scratch_cfg;
	opt.o.pad_id = cfg->pad_id >= 0 && cfg->pad_id < V ? (int)cfg->pad_id : 0;
	run.log = opt.log ? lp_fopen(opt.log, "w") : stdout;
	run.logname = opt.log ? opt.log : "stdout";
}

/* ---- the loop ---- */

static void log_step(const lp_step_info *s, int64_t step, double secs, int evaluated,
		double eval_loss)
{
	fprintf(run.log, "{\"step\":%lld,\"epoch\":%.10g,\"loss\":%.9g,\"lr\":%.10g,"
			"\"grad_norm\":%.9g,\"tokens_per_s\":%.1f",
			(long long)step, s->epoch, s->loss, s->lr, s->grad_norm,
			secs > 0 ? (double)s->tokens / secs : 0.0);
	if (evaluated)
		fprintf(run.log, ",\"eval_loss\":%.9g", eval_loss);
	fputs("}\n", run.log);
	lp_fflush(run.log, run.logname);
}

static char *checkpoint_dir(int64_t step)
{
	char *p = lp_malloc(strlen(opt.out) + 40);
	sprintf(p, "%s/checkpoint-%lld", opt.out, (long long)step);
	return p;
}

/* SIGINT/SIGTERM wait while files are written: a checkpoint is never cut
 * short by the signal that asks for it. */
static void hold_signals(int hold)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigprocmask(hold ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL);
}

static char *save_checkpoint(const lp_trainer *t)
{
	hold_signals(1);
	if (mkdir(opt.out, 0777) != 0 && errno != EEXIST)
		lp_die(opt.out, "cannot make directory: %s", strerror(errno));
	char *dir = checkpoint_dir(t->pos.step);
	lp_train_write_checkpoint(dir, t, &run.desc);
	if (opt.save_limit)
		lp_train_prune_checkpoints(opt.out, (int)opt.save_limit);
	hold_signals(0);
	return dir;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The gradients of the first step (before clipping) as the weights would
 * be written: a directory of the same files, for differential tests. */
static void dump_grads(const lp_train_model *m)
{
	lp_train_model g = *m;
	g.master = m->grads;
	lp_train_write_weights(opt.dump_grads, &g, &run.desc);
}

int main(int argc, char **argv)
{
	char err[512];
	lp_init(argv[0]);
	parse_options(argc, argv);
	open_inputs();
	int cuda = !strcmp(opt.device, "cuda");
	if (lp_kernels_init(cuda ? LP_DEVICE_CUDA : LP_DEVICE_CPU, cuda ? LP_BF16 : LP_F32, err,
				sizeof err) != 0)
		lp_die(opt.device, "%s", err);

	lp_train_model m;
	lp_train_model_init(&m, run.mf, &run.scratch_cfg, 0.02, &run.spec);
	lp_trainer t;
	lp_trainer_init(&t, &m, &run.data, &opt.o, run.has_eval ? run.eval.max_len : 0, opt.ckpt);
	if (run.ckpt) {
		lp_train_read_checkpoint(run.ckpt, &t);
		lp_info("resuming from %s at step %lld of %lld", run.ckpt, (long long)t.pos.step,
				(long long)t.total_steps);
	}
	if (opt.quantize)
		lp_info("base Linear weights in %s: %.1f MB", lp_qtype_name(opt.quantize),
				(double)lp_qweights_bytes(&m.qw) / 1e6);
	lp_info("%s; %zu trained values in %d tensors; %zu examples, %llu tokens; %lld steps",
			lp_kernels_describe(), m.ntrain, m.nparams, run.data.n,
			(unsigned long long)run.data.ntokens, (long long)t.total_steps);

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	char *last_ckpt = run.ckpt ? lp_strdup(run.ckpt) : NULL;
	int tty = isatty(2);
	while (!lp_trainer_done(&t)) {
		lp_step_info s;
		double t0 = now();
		lp_trainer_step(&t, &s);
		double secs = now() - t0;
		int64_t step = t.pos.step;
		if (opt.dump_grads && step == 1)
			dump_grads(&m);
		if (s.nonfinite) {
			if (!opt.skip_nonfinite)
				lp_die("training", "step %lld: loss %g, gradient norm %g is not finite; "
						"last good checkpoint: %s", (long long)step, s.loss, s.grad_norm,
						last_ckpt ? last_ckpt : "none");
			lp_warn("training", "step %lld: loss %g, gradient norm %g: step skipped",
					(long long)step, s.loss, s.grad_norm);
		}
		int do_eval = run.has_eval && ((opt.eval_steps && step % opt.eval_steps == 0) ||
				lp_trainer_done(&t));
		double eval_loss = do_eval ? lp_trainer_eval(&t, &run.eval) : 0;
		if (step % opt.log_steps == 0 || do_eval || lp_trainer_done(&t))
			log_step(&s, step, secs, do_eval, eval_loss);
		if (tty)
			fprintf(stderr, "\r%s: step %lld/%lld loss %.4f lr %.3g %.0f tok/s ", lp_prog,
					(long long)step, (long long)t.total_steps, s.loss, s.lr,
					secs > 0 ? s.tokens / secs : 0.0);
		if (opt.save_steps && step % opt.save_steps == 0 && !lp_trainer_done(&t)) {
			free(last_ckpt);
			last_ckpt = save_checkpoint(&t);
		}
		if (stop_signal) {
			if (tty)
				fputc('\n', stderr);
			free(last_ckpt);
			last_ckpt = save_checkpoint(&t);
			lp_warn("training", "stopped by %s at step %lld; checkpoint written to %s",
					stop_signal == SIGINT ? "SIGINT" : "SIGTERM", (long long)step, last_ckpt);
			exit(LP_EXIT_FAIL);
		}
	}
	if (tty)
		fputc('\n', stderr);
	hold_signals(1);
	lp_train_write_weights(opt.out, &m, &run.desc);
	hold_signals(0);
	lp_info("wrote %s after %lld steps", opt.out, (long long)t.pos.step);
	free(last_ckpt);
	lp_trainer_free(&t);
	lp_train_model_free(&m);
	lp_dataset_free(&run.data);
	if (run.has_eval)
		lp_dataset_free(&run.eval);
	if (run.log != stdout)
		lp_fclose_checked(run.log, run.logname);
	if (run.init)
		lp_adapter_close(run.init);
	if (run.mf)
		lp_model_files_close(run.mf);
	free(run.config_json);
	free(run.ckpt);
	lp_kernels_shutdown();
	lp_close_stdout();
	return 0;
}
