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
#include <dirent.h>
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
#include "base/atomic_dir.h"
#include "base/cli.h"
#include "base/common.h"
#include "kernels.h"
#include "train/llama_train.h"
#include "model/model_files.h"
#include "base/reader.h"
#include "formats/spm_model.h"
#include "train/train_io.h"
#include "train/trainer.h"
#include "train/comm.h"
#include <jv.h>
#include <xxhash.h>

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
"  -m, --tokenizer FILE      resize the vocabulary to this tokenizer.model's pieces\n"
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
"      --dtype T             activations on cuda: bf16 (default) or f32\n"
"  -f, --force               write into a non-empty OUT\n"
"      --comm-timeout S      data parallel: give up on a silent rank after S s (300)\n"
"      --dump-grads DIR      first step's gradients as safetensors (tests)\n"
"      --strict              refuse examples with no label left, not skip them\n"
"  -q, --quiet               no summary or progress line on stderr\n"
"  -h, --help                this text\n"
"  -V, --version             the version\n";

enum {
	O_DATA = 256, O_EVAL, O_ALPHA, O_DROPOUT, O_TARGETS, O_SAVE, O_TOKENIZER, O_INIT, O_FULL,
	O_SCRATCH, O_GA, O_LR, O_WD, O_B1, O_B2, O_EPS, O_SCHED, O_WRATIO, O_WSTEPS, O_MAXNORM,
	O_EPOCHS, O_MAXSTEPS, O_SEED, O_NOSHUFFLE, O_CKPT, O_SAVESTEPS, O_SAVELIMIT, O_RESUME,
	O_EVALSTEPS, O_LOGSTEPS, O_LOG, O_SKIP, O_DEVICE, O_DUMP, O_COMMTIMEOUT, O_STRICT, O_DTYPE, O_QUANT,
};

static struct {
	const char *model, *out, *data, *eval, *tokenizer, *init, *scratch, *resume, *log;
	const char *dump_grads, *device, *dtype;
	int64_t r;
	double alpha, dropout;
	int dropout_set, targets_set, save_set;
	unsigned targets;
	int save_embed, save_head, full, ckpt, skip_nonfinite, force, strict, quantize;
	int64_t save_steps, save_limit, eval_steps, log_steps;
	double comm_timeout;
	lp_train_opts o;
} opt = {
	.r = 8, .alpha = 32, .dropout = 0.05, .targets = (1u << LP_NMODULES) - 1,
	.log_steps = 1, .device = "cpu", .comm_timeout = 300,
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
	if (stop_signal && sig != SIGPIPE) { /* a second one: go now */
		signal(sig, SIG_DFL);
		raise(sig);
	}
	stop_signal = sig;
}

static const char *signal_name(int sig)
{
	return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP"
		: sig == SIGPIPE ? "SIGPIPE (the metrics reader went away)" : "a signal";
}

static unsigned parse_targets(const char *s)
{
	unsigned mask = 0;
	char *copy = lp_strdup(s), *save = NULL;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		int j;
		for (j = 0; j < LP_NMODULES; j++)
			if (!strcmp(t, lp_module_name(j)))
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
		{"tokenizer", required_argument, 0, 'm'},
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
		{"device", required_argument, 0, O_DEVICE}, {"force", no_argument, 0, 'f'},
		{"quiet", no_argument, 0, 'q'}, {"version", no_argument, 0, 'V'},
		{"dtype", required_argument, 0, O_DTYPE},
		{"dump-grads", required_argument, 0, O_DUMP},
		{"comm-timeout", required_argument, 0, O_COMMTIMEOUT},
		{"strict", no_argument, 0, O_STRICT},
		{"quantize", required_argument, 0, O_QUANT},
		{"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
	};
	static const char shortopts[] = "M:m:o:r:b:fqhV";
	int c;
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
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
		case 'm': opt.tokenizer = optarg; break;
		case O_INIT: opt.init = optarg; break;
		case O_FULL: opt.full = 1; break;
		case O_SCRATCH: opt.scratch = optarg; opt.full = 1; break;
		case 'b': opt.o.batch_size = (int)lp_parse_int("--batch-size", optarg, 1, 1 << 20); break;
		case O_GA: opt.o.grad_accum = (int)lp_parse_int("--grad-accum", optarg, 1, 1 << 20); break;
		case O_LR: opt.o.lr = lp_parse_double("--lr", optarg, 0, 10); break;
		case O_WD: opt.o.weight_decay = lp_parse_double("--weight-decay", optarg, 0, 10); break;
		case O_B1: opt.o.beta1 = lp_parse_double("--adam-beta1", optarg, 0, 0.999999999); break;
		case O_B2: opt.o.beta2 = lp_parse_double("--adam-beta2", optarg, 0, 0.999999999); break;
		case O_EPS:
			opt.o.eps = lp_parse_double("--adam-eps", optarg, 0, 1);
			if (!(opt.o.eps > 0)) /* 0 divides by zero where a moment is 0 */
				lp_usage_error("--adam-eps: must be greater than 0");
			break;
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
		case 'f': opt.force = 1; break;
		case 'q': lp_quiet = 1; break;
		case O_DTYPE: opt.dtype = optarg; break;
		case O_DUMP: opt.dump_grads = optarg; break;
		case O_COMMTIMEOUT:
			opt.comm_timeout = lp_parse_double("--comm-timeout", optarg, 0.1, 1e7);
			break;
		case O_STRICT: opt.strict = 1; break;
		case O_QUANT:
			if (!(opt.quantize = lp_qtype_parse(optarg)))
				lp_usage_error("--quantize: '%s' is not nf4, fp4 or int8", optarg);
			break;
		case 'h':
			fputs(usage, stdout);
			printf("Ranks: %s.\n", lp_comm_built());
			lp_close_stdout();
			exit(0);
		case 'V': lp_version_exit();
		default: lp_bad_option(argc, argv, shortopts);
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
	if (opt.dtype && strcmp(opt.dtype, "f32") && strcmp(opt.dtype, "bf16"))
		lp_usage_error("--dtype: '%s' is not f32 or bf16", opt.dtype);
	if (opt.dtype && !strcmp(opt.device, "cpu") && strcmp(opt.dtype, "f32"))
		lp_usage_error("--dtype %s: the cpu backend computes in f32", opt.dtype);
	if (opt.full && (opt.init || opt.save_set || opt.targets_set))
		lp_usage_error("--full trains every weight: --init, --targets and --modules-to-save "
				"are for LoRA");
	if (opt.full && opt.quantize)
		lp_usage_error("--quantize freezes the base in 4 or 8 bits: it is for LoRA, not --full");
	if (opt.init && opt.resume)
		lp_usage_error("--init and --resume: a resumed run starts from its checkpoint");
	if ((!opt.data || !strcmp(opt.data, "-")) && isatty(STDIN_FILENO))
		lp_usage_error("reads token frames from stdin, which is a terminal: pipe tok's "
				"output in (tok ... | lora-train) or give --data FILE");
}

/* ---- opening ---- */

static struct {
	lp_model_files *mf;             /* the base (full resume: the checkpoint) */
	lp_model_config scratch_cfg;
	char *config_json;              /* for a full model's config.json */
	lp_adapter *init;               /* --init, or the checkpoint's adapter */
	char *ckpt;                     /* the checkpoint resumed */
	lp_train_spec spec;
	lp_dataset data, eval;
	int has_eval;
	FILE *log;
	const char *logname;
	int log_failed;           /* the metrics stream failed: stop as on a signal */
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
			if (!strcmp(c->target_modules[i], lp_module_name(j)))
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
	int64_t e = rows_of(run.init, lp_arch[LP_ROLE_EMBED].hf);
	int64_t h = rows_of(run.init, lp_arch[LP_ROLE_HEAD].hf);
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
	if (lp_dataset_read(d, r, V, opt.strict, err, sizeof err) != 0)
		lp_die(lp_reader_name(r), "%s", err);
	if (d->nolabel)
		lp_warn(lp_reader_name(r), "skipped %llu examples with no label left (--strict "
				"refuses them)", (unsigned long long)d->nolabel);
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

/* Make OUT (its parent must exist) and write a file in it, so that an
 * output that cannot be written fails now, not after the last step. */
static void probe_output_dir(void)
{
	if (mkdir(opt.out, 0777) != 0 && errno != EEXIST)
		lp_die(opt.out, "cannot make directory: %s", strerror(errno));
	size_t n = strlen(opt.out) + 32;
	char *p = lp_malloc(n);
	snprintf(p, n, "%s/.probe.XXXXXX", opt.out);
	int fd = mkstemp(p);
	if (fd < 0 || write(fd, "probe\n", 6) != 6 || fsync(fd) != 0)
		lp_die(opt.out, "cannot write here: %s", strerror(errno));
	close(fd);
	unlink(p);
	free(p);
}

/* Remove what a run killed while writing a checkpoint left behind. */
static void remove_stale_checkpoints(void)
{
	DIR *d = opendir(opt.out);
	struct dirent *e;
	if (!d)
		return;
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (strncmp(e->d_name, ".checkpoint-", 12) || !strstr(e->d_name, ".tmp"))
			continue; /* .checkpoint-N.tmp.PID, as atomic_dir names them */
		size_t n = strlen(opt.out) + len + 2;
		char *p = lp_malloc(n);
		snprintf(p, n, "%s/%s", opt.out, e->d_name);
		lp_remove_tree(p);
		lp_warn(opt.out, "removed %s, left by a run that stopped while writing it",
				e->d_name);
		free(p);
	}
	closedir(d);
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
	const char *embed = lp_arch[LP_ROLE_EMBED].hf;
	int64_t base_rows = run.mf ? (int64_t)lp_mf_get(run.mf, embed)->shape[0]
		: run.scratch_cfg.vocab_size;
	int64_t V = choose_vocab(base_rows);

	/* the data, checked against the vocabulary, before any work; a pipe
	 * only rank 0 reads */
	if (opt.data || lp_comm_rank() == 0)
		read_data(&run.data, opt.data, V);
	if (!opt.data && lp_comm_size() > 1)
		lp_dataset_share(&run.data);
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
	s->base_model = opt.model;
	s->config_json = run.config_json;
	const lp_model_config *cfg = run.mf ? &run.mf->cfg : &run.scratch_cfg;
	opt.o.pad_id = cfg->pad_id >= 0 && cfg->pad_id < V ? (int)cfg->pad_id : 0;
	if (lp_comm_rank() == 0) {
		probe_output_dir();
		remove_stale_checkpoints();
	}
	run.log = lp_comm_rank() != 0 ? NULL : opt.log ? lp_fopen(opt.log, "w") : stdout;
	if (!opt.log && lp_comm_rank() == 0)
		lp_stdout_jsonl();
	run.logname = opt.log ? opt.log : "stdout";
}

/* ---- the loop ---- */

/* ,"key":v with v as %.9g, or null when not finite (JSON has no NaN). */
static void json_num(const char *key, double v)
{
	if (isfinite(v))
		fprintf(run.log, ",\"%s\":%.9g", key, v);
	else
		fprintf(run.log, ",\"%s\":null", key);
}

static void log_step(const lp_step_info *s, int64_t step, double secs, int evaluated,
		double eval_loss)
{
	if (run.log_failed)
		return;
	lp_progress_clear(); /* a terminal's metrics never share its line */
	fprintf(run.log, "{\"step\":%lld,\"epoch\":%.10g", (long long)step, s->epoch);
	json_num("loss", s->loss);
	fprintf(run.log, ",\"lr\":%.10g", s->lr);
	json_num("grad_norm", s->grad_norm);
	fprintf(run.log, ",\"tokens_per_s\":%.1f", secs > 0 ? (double)s->tokens / secs : 0.0);
	if (evaluated)
		json_num("eval_loss", eval_loss);
	fputs("}\n", run.log);
	/* A reader of the metrics that went away (a closed pipe, a launcher
	 * that was signalled and closed the rank's stdout) stops training
	 * with a checkpoint, as a signal does, rather than losing the steps
	 * since the last one. */
	if (fflush(run.log) != 0 || ferror(run.log)) {
		lp_warn(run.logname, "write error: %s; stopping", strerror(errno ? errno : EIO));
		run.log_failed = 1;
		clearerr(run.log);
	}
}

static char *checkpoint_dir(int64_t step)
{
	char *p = lp_malloc(strlen(opt.out) + 40);
	sprintf(p, "%s/checkpoint-%lld", opt.out, (long long)step);
	return p;
}

/* SIGINT/SIGTERM/SIGHUP/SIGPIPE wait while files are written: a checkpoint is never cut
 * short by the signal that asks for it. */
static void hold_signals(int hold)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGPIPE);
	sigprocmask(hold ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL);
}

/* Weights with a NaN or an infinity are never written (under
 * --skip-nonfinite a step can still leave one behind). */
static void check_finite(const lp_train_model *m, const char *where)
{
	float *h = lp_malloc((m->ntrain ? m->ntrain : 1) * sizeof *h);
	lp_download(h, m->master, m->ntrain * sizeof *h);
	for (int i = 0; i < m->nparams; i++) {
		const lp_tparam *p = &m->params[i];
		for (size_t j = 0; j < p->n; j++)
			if (!isfinite(h[p->off + j]))
				lp_die(where, "%s[%zu] = %g: the weights are not finite; not written",
						p->name, j, h[p->off + j]);
	}
	free(h);
}

static char *save_checkpoint(lp_trainer *t)
{
	check_finite(t->m, "checkpoint");
	hold_signals(1);
	if (mkdir(opt.out, 0777) != 0 && errno != EEXIST)
		lp_die(opt.out, "cannot make directory: %s", strerror(errno));
	char *dir = checkpoint_dir(t->pos.step);
	lp_train_write_checkpoint(dir, t, &run.spec);
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
	lp_train_write_weights(opt.dump_grads, &g, &run.spec);
}

/* ---- data parallel (comm.h): what differs on several ranks ---- */

/* A fault every rank sees alike: rank 0 says it and stops them all. */
static _Noreturn void dp_fail(const char *where, const char *msg)
{
	if (lp_comm_rank() == 0 || lp_comm_size() == 1)
		lp_comm_abort(where, "%s", msg);
	lp_comm_barrier(); /* rank 0 stops us all */
	lp_comm_abort(where, "%s", msg);
}

/* On CUDA each rank of a node takes one GPU, the local rank-th of those
 * visible: CUDA_VISIBLE_DEVICES narrowed to it before CUDA starts (a list
 * of one, as srun --gpus-per-task gives, is kept). */
static void dp_choose_gpu(void)
{
	if (lp_comm_size() == 1)
		return;
	int lr = lp_comm_local_rank();
	const char *v = getenv("CUDA_VISIBLE_DEVICES");
	char pick[64];
	if (!v) {
		snprintf(pick, sizeof pick, "%d", lr);
	} else {
		char *copy = lp_strdup(v), *save = NULL, *tok;
		int i = 0;
		for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save), i++)
			if (i == lr)
				snprintf(pick, sizeof pick, "%s", tok);
		free(copy);
		if (i == 1)
			return;
		if (lr >= i)
			lp_die("CUDA_VISIBLE_DEVICES", "local rank %d, but only %d GPUs are listed (%s)",
					lr, i, v);
	}
	setenv("CUDA_VISIBLE_DEVICES", pick, 1);
}

/* A checkpoint counts the micro-batches of a step over all its ranks:
 * say what --grad-accum gives that on this many. */
static void dp_check_resume_batch(const lp_trainer *t)
{
	int N = lp_comm_size();
	char *path = lp_malloc(strlen(run.ckpt) + 32), msg[512];
	sprintf(path, "%s/trainer_state.json", run.ckpt);
	size_t len;
	char *text = lp_read_file(path, &len);
	jv s = jv_parse_sized(text, (int)len);
	free(text);
	jv b = jv_object_get(jv_copy(s), jv_string("batch_size"));
	jv g = jv_object_get(s, jv_string("grad_accum"));
	if (jv_get_kind(b) == JV_KIND_NUMBER && jv_get_kind(g) == JV_KIND_NUMBER &&
			jv_number_value(b) == t->o.batch_size &&
			jv_number_value(g) != t->o.grad_accum) {
		long ga = (long)jv_number_value(g);
		if (ga % N == 0)
			snprintf(msg, sizeof msg, "a step of the checkpoint takes %ld micro-batches; "
					"on %d ranks give --grad-accum %ld", ga, N, ga / N);
		else
			snprintf(msg, sizeof msg, "a step of the checkpoint takes %ld micro-batches, "
					"which %d ranks cannot share evenly; resume on a number of ranks "
					"that divides it", ga, N);
		dp_fail(path, msg);
	}
	jv_free(b);
	jv_free(g);
	free(path);
}

/* A checkpoint resumed on ranks that shard the optimizer: rank 0 reads
 * the moments whole and sends every rank its slice; the position goes to
 * all. */
static void dp_read_checkpoint(lp_trainer *t)
{
	if (lp_comm_size() > 1)
		dp_check_resume_batch(t);
	if (!t->shard) {
		lp_train_read_checkpoint(run.ckpt, t);
		return;
	}
	size_t per = t->per, tail = t->tail, T0 = per * (size_t)t->nranks;
	float *host = lp_malloc((per + tail + 1) * sizeof *host);
	if (lp_comm_rank() == 0) {
		lp_trainer view = *t;
		size_t bytes = (t->m->ntrain ? t->m->ntrain : 1) * sizeof(float);
		view.mom1 = lp_alloc(bytes);
		view.mom2 = lp_alloc(bytes);
		lp_train_read_checkpoint(run.ckpt, &view);
		t->pos = view.pos;
		const float *whole[2] = {view.mom1, view.mom2};
		for (int k = 0; k < 2; k++)
			for (int r = 1; r < t->nranks; r++) {
				lp_download(host, whole[k] + (size_t)r * per, per * sizeof *host);
				lp_download(host + per, whole[k] + T0, tail * sizeof *host);
				lp_comm_send(host, (per + tail) * sizeof *host, r);
			}
		lp_trainer_put_moments(t, view.mom1, view.mom2);
		lp_free(view.mom1);
		lp_free(view.mom2);
	} else {
		float *mine[2] = {t->mom1, t->mom2};
		for (int k = 0; k < 2; k++) {
			lp_comm_recv(host, (per + tail) * sizeof *host, 0);
			lp_upload(mine[k], host, (per + tail) * sizeof *host);
		}
	}
	free(host);
	lp_comm_bcast(&t->pos, sizeof t->pos, 0);
}

/* Every rank gathers the moments; rank 0 writes. NULL on the others. */
static char *save_checkpoint(lp_trainer *t);
static char *dp_save_checkpoint(lp_trainer *t)
{
	lp_trainer view = *t;
	lp_trainer_whole_moments(t, &view.mom1, &view.mom2);
	char *dir = lp_comm_rank() == 0 ? save_checkpoint(&view) : NULL;
	lp_trainer_free_moments(t, view.mom1, view.mom2);
	return dir;
}

/* What must agree between the ranks: the settings, the data, the weights
 * (trained values whole, frozen ones by their names, shapes and ends). */
enum { FP_SETTINGS, FP_DATA, FP_WEIGHTS, FP_N };

static uint64_t fp_settings(const lp_trainer *t)
{
	char b[2048];
	const lp_train_opts *o = &t->o;
	int n = snprintf(b, sizeof b, "%d %d %.17g %.17g %.17g %.17g %.17g %.17g %d %lld %.17g "
			"%.17g %lld %llu %d %d %d | %d %lld %.17g %.17g %u %d %d %d %d | %lld %lld "
			"%lld %lld %zu %d %d | %s %lld %lld %lld", o->batch_size, o->grad_accum, o->lr,
			o->weight_decay, o->beta1, o->beta2, o->eps, o->max_grad_norm, o->schedule,
			(long long)o->warmup_steps, o->warmup_ratio, o->epochs, (long long)o->max_steps,
			(unsigned long long)o->seed, o->shuffle, o->pad_id, o->shard_optimizer, opt.full,
			(long long)opt.r, opt.alpha, opt.dropout, opt.targets, opt.save_embed,
			opt.save_head, opt.ckpt, opt.skip_nonfinite, (long long)t->total_steps,
			(long long)t->pos.step, (long long)t->pos.micro_total,
			(long long)t->pos.adam_t, t->m->ntrain, t->m->nparams, t->m->V, opt.device,
			(long long)opt.save_steps, (long long)opt.eval_steps,
			(long long)opt.log_steps);
	return XXH3_64bits(b, (size_t)n);
}

static uint64_t fp_weights(const lp_train_model *m)
{
	XXH3_state_t *h = XXH3_createState();
	XXH3_64bits_reset(h);
	float *w = lp_malloc((m->ntrain ? m->ntrain : 1) * sizeof *w);
	lp_download(w, m->master, m->ntrain * sizeof *w);
	XXH3_64bits_update(h, w, m->ntrain * sizeof *w);
	free(w);
	for (size_t i = 0; run.mf && i < run.mf->n; i++) {
		const lp_mf_tensor *x = &run.mf->t[i];
		XXH3_64bits_update(h, x->name, strlen(x->name) + 1);
		XXH3_64bits_update(h, &x->dtype, sizeof x->dtype);
		XXH3_64bits_update(h, x->shape, sizeof x->shape);
		if (x->data) {
			size_t k = x->nbytes < 4096 ? (size_t)x->nbytes : 4096;
			XXH3_64bits_update(h, x->data, k);
			XXH3_64bits_update(h, (const char *)x->data + x->nbytes - k, k);
		}
	}
	uint64_t v = XXH3_64bits_digest(h);
	XXH3_freeState(h);
	return v;
}

/* Compare every rank with rank 0 before the first step. */
static void dp_check_ranks(const lp_trainer *t)
{
	int N = lp_comm_size();
	if (N == 1)
		return;
	uint64_t mine[FP_N] = {fp_settings(t), run.data.hash ^ (uint64_t)run.data.n * 0x9e3779b97f4a7c15ull,
		fp_weights(t->m)};
	if (run.has_eval)
		mine[FP_DATA] ^= run.eval.hash * 31;
	uint64_t *all = lp_malloc((size_t)N * sizeof mine);
	lp_comm_allgather_bytes(mine, all, sizeof mine);
	static const char *what[FP_N] = {"settings", "data", "weights"};
	char msg[1024];
	size_t k = 0;
	for (int f = 0; f < FP_N; f++) {
		int first = 1;
		for (int r = 1; r < N && k + 64 < sizeof msg; r++) {
			if (all[r * FP_N + f] == all[f])
				continue;
			k += (size_t)snprintf(msg + k, sizeof msg - k, "%s%s%d", k && first ? "; " : "",
					first ? "rank " : ", ", r);
			first = 0;
		}
		if (!first && k + 64 < sizeof msg)
			k += (size_t)snprintf(msg + k, sizeof msg - k, ": %s differ from rank 0's",
					what[f]);
	}
	free(all);
	if (!k)
		return;
	snprintf(msg + k, sizeof msg - k, " (every rank must run the same command on the "
			"same files)");
	dp_fail("ranks", msg);
}

int main(int argc, char **argv)
{
	char err[512];
	lp_init(argv[0]);
	parse_options(argc, argv);
	if (lp_comm_init(opt.comm_timeout, err, sizeof err) != 0)
		lp_die("comm", "%s", err);
	int rank0 = lp_comm_rank() == 0, nranks = lp_comm_size();
	if (nranks > 1 && opt.dump_grads)
		lp_usage_error("--dump-grads is for one rank");
	open_inputs();
	int cuda = !strcmp(opt.device, "cuda");
	if (cuda)
		dp_choose_gpu();
	int act = cuda && !(opt.dtype && !strcmp(opt.dtype, "f32")) ? LP_BF16 : LP_F32;
	if (lp_kernels_init(cuda ? LP_DEVICE_CUDA : LP_DEVICE_CPU, -1, act, err, sizeof err) != 0)
		lp_die(cuda ? "--device cuda" : "--device cpu", "%s", err);
	if (lp_comm_attach_device(cuda, err, sizeof err) != 0)
		lp_die("comm", "%s", err);
	/* the global batch is --batch-size x --grad-accum x ranks */
	opt.o.grad_accum *= nranks;
	opt.o.shard_optimizer = opt.full;
	opt.o.data_from_rank0 = !opt.data;

	lp_train_model m;
	lp_train_model_init(&m, run.mf, &run.scratch_cfg, 0.02, &run.spec);
	lp_trainer t;
	lp_trainer_init(&t, &m, &run.data, &opt.o, run.has_eval ? run.eval.max_len : 0, opt.ckpt);
	if (run.ckpt) {
		dp_read_checkpoint(&t);
		if (t.pos.step >= t.total_steps)
			lp_die(run.ckpt, "is at step %lld, and this run ends at step %lld: nothing left "
					"to train (raise --max-steps or --epochs)", (long long)t.pos.step,
					(long long)t.total_steps);
		if (rank0)
			lp_info("resuming from %s at step %lld of %lld", run.ckpt, (long long)t.pos.step,
				(long long)t.total_steps);
	}
	dp_check_ranks(&t);
	if (rank0 && opt.quantize)
		lp_info("base Linear weights in %s: %.1f MB", lp_qtype_name(opt.quantize),
				(double)lp_qweights_bytes(&m.qw) / 1e6);
	if (rank0)
		lp_info("%s; %s; %zu trained values in %d tensors; %zu examples, %llu tokens; "
				"%lld steps", lp_kernels_describe(), lp_comm_describe(), m.ntrain,
				m.nparams, run.data.n, (unsigned long long)run.data.ntokens,
				(long long)t.total_steps);

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop;
	sa.sa_flags = SA_RESTART; /* a write the signal interrupts carries on */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);   /* the terminal went away */
	sigaction(SIGPIPE, &sa, NULL);  /* whoever read the metrics went away */

	char *last_ckpt = run.ckpt ? lp_strdup(run.ckpt) : NULL;
	double started = now();
	int64_t first = t.pos.step;
	while (!lp_trainer_done(&t)) {
		lp_step_info s;
		double t0 = now();
		t.stop_request = stop_signal != 0 || run.log_failed;
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
		if (rank0 && (step % opt.log_steps == 0 || do_eval || lp_trainer_done(&t)))
			log_step(&s, step, secs, do_eval, eval_loss);
		double el = now() - started;
		double eta = el / (double)(step - first) * (double)(t.total_steps - step);
		if (rank0)
			lp_progress("step %lld/%lld  loss %.4f  %.0f tok/s  %02d:%02d elapsed  ETA %02d:%02d",
					(long long)step, (long long)t.total_steps, s.loss,
					secs > 0 ? s.tokens / secs : 0.0, (int)el / 60, (int)el % 60,
					(int)eta / 60, (int)eta % 60);
		if (opt.save_steps && step % opt.save_steps == 0 && !lp_trainer_done(&t)) {
			free(last_ckpt);
			last_ckpt = dp_save_checkpoint(&t);
		}
		if (s.stop) {
			lp_progress_clear();
			free(last_ckpt);
			last_ckpt = dp_save_checkpoint(&t);
			if (rank0)
				lp_warn("training", "stopped by %s at step %lld; checkpoint written to %s",
						stop_signal ? signal_name(stop_signal) : run.log_failed ?
						"a write error on the metrics" : "a signal to another rank",
						(long long)step, last_ckpt);
			lp_comm_barrier();
			lp_comm_finalize();
			exit(LP_EXIT_FAIL);
		}
	}
	lp_progress_clear();
	check_finite(&m, opt.out);
	if (rank0) {
		hold_signals(1);
		lp_train_write_weights(opt.out, &m, &run.spec);
		hold_signals(0);
		lp_info("wrote %s after %lld steps", opt.out, (long long)t.pos.step);
	}
	lp_comm_barrier();
	free(last_ckpt);
	lp_trainer_free(&t);
	lp_train_model_free(&m);
	lp_dataset_free(&run.data);
	if (run.has_eval)
		lp_dataset_free(&run.eval);
	if (run.log && run.log != stdout)
		lp_fclose_checked(run.log, run.logname);
	if (run.init)
		lp_adapter_close(run.init);
	if (run.mf)
		lp_model_files_close(run.mf);
	free(run.config_json);
	free(run.ckpt);
	lp_comm_finalize();
	lp_kernels_shutdown();
	lp_close_stdout();
	return 0;
}
