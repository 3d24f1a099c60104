/* gen: generate text with a LLaMA model and LoRA adapters.
 *
 *   gen -M MODEL [-A ADAPTER]... [controls] < prompts.jsonl > out.jsonl
 *   gen -M MODEL -i                       interactive chat on a terminal
 *   gen -M MODEL --score < pairs.jsonl    log-likelihood of given outputs
 *
 * Reads {"prompt"}, {"instruction","input"} or {"input_ids"} records
 * (ids as they are: no BOS added), writes one JSON
 * object per record. Every control of Hugging Face generate is a long
 * option: its name with dashes (--max-new-tokens, --top-p, --num-beams). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/cli.h"
#include "base/common.h"
#include "generate/generate.h"
#include "formats/jsonl.h"
#include "text/template.h"

static const char usage[] =
	"usage: gen -M MODEL [-A ADAPTER]... [options] [FILE...]\n"
	"       gen -M MODEL -i [options]\n"
	"       gen -M MODEL --score [options] [FILE...]\n"
	"\n"
	"  -M, --model DIR          model directory (default $LLAMAPIPE_MODEL)\n"
	"  -A, --adapter DIR        apply a PEFT LoRA adapter (repeatable, in order)\n"
	"  -m, --tokenizer FILE     SentencePiece model (default DIR/tokenizer.model)\n"
	"  -t, --template NAME      alpaca, llama2-chat, raw or a FILE (default alpaca)\n"
	"      --system TEXT        system prompt of llama2-chat\n"
	"      --with-prompt        put {\"prompt\"} records through the template too\n"
	"  -i, --interactive        chat on the terminal; Ctrl-C stops an answer\n"
	"      --score              score each record's output under teacher forcing\n"
	"      --keep-input         copy each input record into the output as \"input\"\n"
	"  -b, --batch-size N       generate for N records at a time (default 1)\n"
	"      --ids                add the generated token ids to the output\n"
	"      --skip-bad           skip bad records, counting them, instead of failing\n"
	"      --no-generation-config  ignore DIR/generation_config.json\n"
	"      --device cpu|cuda    compute backend (default cpu)\n"
	"  -d, --dtype f32|bf16     activation type on cuda (default bf16)\n"
	"      --quantize TYPE      hold the Linear weights as nf4, fp4 or int8\n"
	"  -q, --quiet              no summary on stderr\n"
	"  -h, --help               this help\n"
	"  -V, --version            the version\n"
	"\n"
	"Generation controls, with Hugging Face's names and defaults:\n"
	"  --max-new-tokens N --min-new-tokens N --max-length N --min-length N\n"
	"  --do-sample[=false] --temperature T --top-k K --top-p P --min-p P --typical-p P\n"
	"  --epsilon-cutoff E --eta-cutoff E --repetition-penalty X\n"
	"  --no-repeat-ngram-size N --bad-words-ids W --suppress-tokens IDS\n"
	"  --begin-suppress-tokens IDS --num-beams N --num-beam-groups G\n"
	"  --diversity-penalty X --length-penalty X --early-stopping true|false|never\n"
	"  --num-return-sequences K --stop-strings S --max-time SEC --seed N\n"
	"  --eos-token-id IDS --pad-token-id N --renormalize-logits --min-tokens-to-keep N\n"
	"See gen(1).\n";

enum { OPT_SYSTEM = 256, OPT_WITH_PROMPT, OPT_SCORE, OPT_KEEP, OPT_IDS, OPT_SKIP_BAD,
	OPT_NO_GENCFG, OPT_DEVICE, OPT_DTYPE, OPT_QUANT, OPT_CONTROL };

/* Records generated for together (--batch-size), and the rows (beams,
 * sequences) of all of them: the CPU backend computes up to 32 rows of a
 * step each on its own (kernels/cpu/matvec.c), so that a record gets the
 * same bits as alone; a batch that would pass 32 rows is cut before. */
#define MAX_BATCH 256
#define MAX_BATCH_ROWS 32

static struct {
	const char *model_dir, *tokenizer, *template_name, *system;
	const char **adapters;
	int n_adapters;
	int with_prompt, interactive, score, keep_input, no_gencfg, output_ids, skip_bad, quiet;
	int device, act_dtype, batch_size, quantize;
} opt = {.template_name = "alpaca", .act_dtype = LP_BF16, .batch_size = 1};

static lp_gen_config cfg;
static struct { const char *name, *value; } *ctl; /* controls from the command line */
static int n_ctl;
static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* Options: gen's own, then one per generation control. */
static struct option *build_options(void)
{
	static const struct option own[] = {
		{"model", required_argument, 0, 'M'},
		{"adapter", required_argument, 0, 'A'},
		{"tokenizer", required_argument, 0, 'm'},
		{"template", required_argument, 0, 't'},
		{"system", required_argument, 0, OPT_SYSTEM},
		{"with-prompt", no_argument, 0, OPT_WITH_PROMPT},
		{"interactive", no_argument, 0, 'i'},
		{"score", no_argument, 0, OPT_SCORE},
		{"keep-input", no_argument, 0, OPT_KEEP},
		{"batch-size", required_argument, 0, 'b'},
		{"ids", no_argument, 0, OPT_IDS},
		{"skip-bad", no_argument, 0, OPT_SKIP_BAD},
		{"no-generation-config", no_argument, 0, OPT_NO_GENCFG},
		{"device", required_argument, 0, OPT_DEVICE},
		{"dtype", required_argument, 0, 'd'},
		{"quantize", required_argument, 0, OPT_QUANT},
		{"quiet", no_argument, 0, 'q'},
		{"help", no_argument, 0, 'h'},
		{"version", no_argument, 0, 'V'},
	};
	size_t n_own = sizeof own / sizeof *own, n = 0;
	while (lp_gen_control_names[n])
		n++;
	struct option *o = lp_calloc(n_own + n + 1, sizeof *o);
	memcpy(o, own, sizeof own);
	for (size_t i = 0; i < n; i++) {
		const char *name = lp_gen_control_names[i];
		char *dashed = lp_strdup(name);
		for (char *p = dashed; *p; p++)
			if (*p == '_')
				*p = '-';
		int flag = !strcmp(name, "do_sample") || !strcmp(name, "renormalize_logits");
		/* --do-sample, or --do-sample=false against generation_config.json */
		o[n_own + i] = (struct option){dashed, flag ? optional_argument : required_argument, 0,
			OPT_CONTROL + (int)i};
	}
	return o;
}

static void set_control(const char *name, const char *value)
{
	char err[512];
	if (lp_gen_config_set(&cfg, name, value, err, sizeof err) != 0)
		lp_usage_error("%s", err);
}

/* Keys of generation_config.json that are controls; the flags come after
 * and win, as arguments to generate() win over the model's config.
 * Whether the file was there. */
static int apply_generation_config(const char *dir)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/generation_config.json", dir);
	if (access(path, R_OK) != 0)
		return 0;
	size_t n;
	char *text = lp_read_file(path, &n), err[512];
	jv obj = jv_parse_sized(text, n);
	free(text);
	if (jv_get_kind(obj) != JV_KIND_OBJECT)
		lp_die(path, "not a JSON object");
	for (int i = 0; lp_gen_control_names[i]; i++) {
		jv v = jv_object_get(jv_copy(obj), jv_string(lp_gen_control_names[i]));
		jv_kind k = jv_get_kind(v);
		if (k != JV_KIND_INVALID && k != JV_KIND_NULL) {
			jv s = k == JV_KIND_STRING ? jv_copy(v) : jv_dump_string(jv_copy(v), 0);
			if (lp_gen_config_set(&cfg, lp_gen_control_names[i], jv_string_value(s),
						err, sizeof err) != 0)
				lp_die(path, "%s", err);
			jv_free(s);
		}
		jv_free(v);
	}
	jv_free(obj);
	return 1;
}

static void parse_args(int argc, char **argv)
{
	static struct option *o; /* kept: getopt may point into it */
	int c;
	o = build_options();
	static const char shortopts[] = "M:A:m:t:d:b:iqhV";
	while ((c = getopt_long(argc, argv, shortopts, o, NULL)) != -1) {
		switch (c) {
		case 'M': opt.model_dir = optarg; break;
		case 'A':
			opt.adapters = lp_realloc(opt.adapters, (opt.n_adapters + 1) * sizeof *opt.adapters);
			opt.adapters[opt.n_adapters++] = optarg;
			break;
		case 'm': opt.tokenizer = optarg; break;
		case 't': opt.template_name = optarg; break;
		case OPT_SYSTEM: opt.system = optarg; break;
		case OPT_WITH_PROMPT: opt.with_prompt = 1; break;
		case 'i': opt.interactive = 1; break;
		case OPT_SCORE: opt.score = 1; break;
		case OPT_KEEP: opt.keep_input = 1; break;
		case 'b': opt.batch_size = lp_parse_int("--batch-size", optarg, 1, MAX_BATCH); break;
		case OPT_IDS: opt.output_ids = 1; break;
		case OPT_SKIP_BAD: opt.skip_bad = 1; break;
		case OPT_NO_GENCFG: opt.no_gencfg = 1; break;
		case OPT_QUANT:
			if (!(opt.quantize = lp_qtype_parse(optarg)))
				lp_usage_error("--quantize: '%s' is not nf4, fp4 or int8", optarg);
			break;
		case OPT_DEVICE:
			if (!strcmp(optarg, "cpu"))
				opt.device = LP_DEVICE_CPU;
			else if (!strcmp(optarg, "cuda"))
				opt.device = LP_DEVICE_CUDA;
			else
				lp_usage_error("--device: '%s' is not cpu or cuda", optarg);
			break;
		case 'd':
			opt.act_dtype = lp_dtype_parse(optarg);
			if (opt.act_dtype != LP_F32 && opt.act_dtype != LP_BF16)
				lp_usage_error("--dtype: '%s' is not f32 or bf16", optarg);
			break;
		case 'q': opt.quiet = 1; break;
		case 'h': lp_help_exit(usage);
		case 'V': lp_version_exit();
		case '?': lp_bad_option(argc, argv, shortopts);
		default: /* a control: applied after generation_config.json */
			ctl = lp_realloc(ctl, (n_ctl + 1) * sizeof *ctl);
			ctl[n_ctl].name = lp_gen_control_names[c - OPT_CONTROL];
			ctl[n_ctl++].value = optarg ? optarg : "true";
		}
	}
	if (opt.interactive && opt.score)
		lp_usage_error("--interactive and --score do not go together");
	if (opt.interactive && optind < argc)
		lp_usage_error("--interactive reads the terminal, not '%s' (without -i, gen "
				"reads records from files)", argv[optind]);
	if (opt.batch_size > 1 && (opt.interactive || opt.score))
		lp_usage_error("--batch-size goes with generating from records, not with --%s",
				opt.interactive ? "interactive" : "score");
}

/* ---- the model and its tokenizer ---- */

static lp_llama model;
static lp_llama_state state;
static int state_rows, state_T, state_Tmax, state_all;
static lp_spm *tok;
static lp_template *tmpl;

static void load(void)
{
	char err[1024];
	if (!opt.model_dir)
		opt.model_dir = getenv("LLAMAPIPE_MODEL");
	if (!opt.model_dir || !*opt.model_dir)
		lp_usage_error("no model: give -M DIR or set LLAMAPIPE_MODEL");
	struct stat sb;
	if (stat(opt.model_dir, &sb) != 0)
		lp_die(opt.model_dir, "model directory: %s", strerror(errno));
	if (!S_ISDIR(sb.st_mode))
		lp_die(opt.model_dir, "not a directory (-M names a model directory)");
	if (lp_kernels_init(opt.device, -1, opt.device == LP_DEVICE_CPU ? LP_F32 : opt.act_dtype,
				err, sizeof err) != 0)
		lp_die(opt.device == LP_DEVICE_CPU ? "--device cpu" : "--device cuda", "%s", err);
	char *tpath = lp_spm_default_path(opt.tokenizer, opt.model_dir);
	tok = lp_spm_load(tpath, err, sizeof err);
	if (!tok)
		lp_die(NULL, "%s", err); /* err names the file */
	tmpl = lp_template_load(opt.template_name, opt.system, err, sizeof err);
	if (!tmpl)
		lp_usage_error("--template: %s", err);

	lp_model_files *mf = lp_model_files_load(opt.model_dir);
	lp_adapter **ad = lp_calloc(opt.n_adapters + 1, sizeof *ad);
	for (int i = 0; i < opt.n_adapters; i++)
		ad[i] = lp_adapter_load(opt.adapters[i]);
	lp_llama_load_quantized(&model, mf, ad, opt.n_adapters, opt.quantize);
	if (lp_spm_size(tok) > model.V)
		lp_die(tpath, "tokenizer has %d pieces but the model's vocabulary is %d "
				"(wrong tokenizer for this model?)", lp_spm_size(tok), model.V);
	for (int i = 0; i < opt.n_adapters; i++)
		lp_adapter_close(ad[i]);
	free(ad);
	lp_model_files_close(mf);
	free(tpath);

	/* defaults from the model, then its generation_config.json, then flags */
	char eos[256] = "";
	for (int i = 0, k = 0; i < model.cfg.n_eos; i++)
		k += snprintf(eos + k, sizeof eos - k, "%s%lld", i ? "," : "",
				(long long)model.cfg.eos_ids[i]);
	if (!*eos && lp_spm_eos_id(tok) >= 0)
		snprintf(eos, sizeof eos, "%d", lp_spm_eos_id(tok));
	if (*eos)
		set_control("eos_token_id", eos);
	char file_err[512] = "";
	if (!opt.no_gencfg && apply_generation_config(opt.model_dir))
		lp_gen_config_check(&cfg, file_err, sizeof file_err);
	for (int i = 0; i < n_ctl; i++)
		set_control(ctl[i].name, ctl[i].value);
	if (lp_gen_config_check(&cfg, err, sizeof err) != 0) {
		if (!strcmp(err, file_err)) /* the flags did not cause it, nor cure it */
			lp_die(NULL, "%s/generation_config.json: %s", opt.model_dir, err);
		lp_usage_error("%s", err);
	}
	if (!opt.quiet)
		lp_info("%s: %d layers, hidden %d, vocabulary %d, %d adapter(s), on %s",
				opt.model_dir, model.L, model.C, model.V, opt.n_adapters,
				lp_kernels_describe());
}

/* A state for rows x T new tokens and a context of Tmax (grown, never shrunk). */
static void need_state(int rows, int T, int Tmax, int all_logits)
{
	if (rows <= state_rows && T <= state_T && Tmax <= state_Tmax && all_logits == state_all)
		return;
	if (state_rows)
		lp_llama_state_free(&state);
	state_rows = rows > state_rows ? rows : state_rows;
	state_T = T > state_T ? T : state_T;
	state_Tmax = Tmax > state_Tmax ? Tmax : state_Tmax;
	state_all = all_logits;
	lp_llama_state_init(&state, &model, state_rows, state_T, state_Tmax, all_logits);
}

/* The context: max_position_embeddings, except with dynamic rope scaling,
 * which is made to run past it (0: no limit). A prompt is checked against
 * it before any work, with one message wherever it comes from. */
static size_t max_piece_bytes;

static int context_len(void)
{
	return model.cfg.rope.type == LP_ROPE_DYNAMIC ? 0 : (int)model.cfg.max_pos;
}

/* Does a sequence of n tokens, plus room for `room` more, fit the context?
 * If not, msg (of msglen) says so. */
static int fits_context(size_t n, int room, char *msg, size_t msglen)
{
	if (context_len() <= 0 || n + (size_t)room <= (size_t)context_len())
		return 1;
	snprintf(msg, msglen, "the prompt%s has %zu tokens; the model's context "
			"(max_position_embeddings) is %d%s", room ? "" : " and output", n,
			context_len(), room ? ", with no room left to generate" : "");
	return 0;
}

/* Is text too long to fit for sure, without encoding it? No piece covers
 * more text bytes than its own (twice that, for normalisation). */
static int surely_too_long(size_t bytes, char *msg, size_t msglen)
{
	if (!max_piece_bytes) {
		for (int i = 0; i < lp_spm_size(tok); i++) {
			size_t k = strlen(lp_spm_id_to_piece(tok, i));
			if (k > max_piece_bytes)
				max_piece_bytes = k;
		}
		max_piece_bytes = max_piece_bytes * 2 + 1;
	}
	if (context_len() <= 0 || bytes / max_piece_bytes <= (size_t)context_len())
		return 0;
	snprintf(msg, msglen, "the prompt has %zu bytes, more than %zu tokens; the model's "
			"context (max_position_embeddings) is %d", bytes, bytes / max_piece_bytes,
			context_len());
	return 1;
}

/* BOS + the encoding of text, appended to *ids. */
static void encode(const char *text, int bos, int32_t **ids, size_t *n, size_t *cap)
{
	char err[512];
	int32_t *piece = NULL;
	size_t k = 0, pcap = 0;
	if (lp_spm_encode(tok, text, strlen(text), &piece, &k, &pcap, err, sizeof err) != 0)
		lp_die("tokenizer", "%s", err);
	lp_grow((void **)ids, cap, *n + k + 1, sizeof **ids);
	if (bos && lp_spm_bos_id(tok) >= 0)
		(*ids)[(*n)++] = lp_spm_bos_id(tok);
	memcpy(*ids + *n, piece, k * sizeof *piece);
	*n += k;
	free(piece);
}

/* The prompt text of a record, or NULL (a bad record, reported). */
static char *prompt_text(lp_jsonl *j, jv rec)
{
	const char *ins, *in, *prompt;
	int ri = lp_jv_string(rec, "instruction", &ins);
	if (ri == 0)
		ri = lp_jv_string(rec, "instruct", &ins);
	int rn = lp_jv_string(rec, "input", &in);
	if (rn == 0)
		rn = lp_jv_string(rec, "query", &in);
	int rp = lp_jv_string(rec, "prompt", &prompt);
	if (ri < 0 || rn < 0 || rp < 0) {
		lp_jsonl_bad(j, "a record is an object whose instruction, input and prompt are strings");
		return NULL;
	}
	if (ri > 0) {
		char *joined = lp_instruction_join(ins, rn > 0 ? in : "");
		char *text = lp_template_render(tmpl, joined);
		free(joined);
		return text;
	}
	if (rp > 0)
		return opt.with_prompt ? lp_template_render(tmpl, prompt) : lp_strdup(prompt);
	lp_jsonl_bad(j, "no \"instruction\" or \"prompt\"");
	return NULL;
}

/* A record's prompt as ids: its "input_ids" as they are, or BOS + the
 * encoding of its prompt text. 0, or -1 for a bad record (reported). */
static int record_ids(lp_jsonl *j, jv rec, int32_t **ids, size_t *n, size_t *cap)
{
	jv arr = jv_get_kind(rec) == JV_KIND_OBJECT ?
		jv_object_get(jv_copy(rec), jv_string("input_ids")) : jv_invalid();
	jv_kind kind = jv_get_kind(arr);
	if (kind != JV_KIND_ARRAY && kind != JV_KIND_INVALID && kind != JV_KIND_NULL) {
		jv_free(arr);
		lp_jsonl_bad(j, "input_ids is not an array of token ids");
		return -1;
	}
	if (kind == JV_KIND_ARRAY) {
		int len = jv_array_length(jv_copy(arr));
		lp_grow((void **)ids, cap, *n + len + 1, sizeof **ids);
		for (int i = 0; i < len; i++) {
			jv x = jv_array_get(jv_copy(arr), i);
			double d = jv_get_kind(x) == JV_KIND_NUMBER ? jv_number_value(x) : -1;
			jv_free(x);
			if (d < 0 || d >= model.V || d != (int32_t)d) {
				jv_free(arr);
				lp_jsonl_bad(j, "input_ids[%d] is not a token id below %d", i, model.V);
				return -1;
			}
			(*ids)[(*n)++] = (int32_t)d;
		}
		jv_free(arr);
		if (!len)
			lp_jsonl_bad(j, "input_ids is empty");
		return len ? 0 : -1;
	}
	jv_free(arr);
	char *text = prompt_text(j, rec);
	if (!text)
		return -1;
	char msg[256];
	if (surely_too_long(strlen(text), msg, sizeof msg)) {
		free(text);
		lp_jsonl_bad(j, "%s", msg);
		return -1;
	}
	encode(text, 1, ids, n, cap);
	free(text);
	return 0;
}

static jv ids_array(const int32_t *ids, int n)
{
	jv a = jv_array();
	for (int i = 0; i < n; i++)
		a = jv_array_append(a, jv_number(ids[i]));
	return a;
}

static jv output_object(const lp_gen_output *o, int beams)
{
	jv r = jv_object();
	r = jv_object_set(r, jv_string("text"), jv_string_sized(o->text, (int)o->text_len));
	r = jv_object_set(r, jv_string("tokens"), jv_number(o->n));
	r = jv_object_set(r, jv_string("finish_reason"), jv_string(o->finish));
	if (beams)
		r = jv_object_set(r, jv_string("score"), jv_number(o->score));
	if (opt.output_ids)
		r = jv_object_set(r, jv_string("ids"), ids_array(o->ids, o->n));
	return r;
}

static uint64_t n_records, n_tokens, n_bad;

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Records read and waiting to be generated for, up to --batch-size. */
static struct {
	int32_t *ids[MAX_BATCH];
	int n[MAX_BATCH];
	jv rec[MAX_BATCH];
	char *where[MAX_BATCH];
	int count, rows;
} pending;

/* Generate for the pending records together and print their outputs in
 * input order. */
static void flush_pending(void)
{
	int count = pending.count, rows = 0, longest = 1, context = 2;
	if (!count)
		return;
	for (int p = 0; p < count; p++) {
		int r, max_len;
		lp_generate_needs(&cfg, pending.n[p], (int)model.cfg.max_pos, &r, &max_len);
		rows += r;
		longest = pending.n[p] > longest ? pending.n[p] : longest;
		max_len = max_len > pending.n[p] ? max_len : pending.n[p] + 1;
		context = max_len > context ? max_len : context;
	}
	need_state(rows, longest, context, 0);
	lp_generator g = {&model, &state, tok, &cfg, NULL, NULL, NULL};
	lp_gen_output *out[MAX_BATCH];
	int nout[MAX_BATCH], failed;
	char err[512];
	if (lp_generate_batch(&g, (const int32_t *const *)pending.ids, pending.n, count, out, nout,
				&failed, err, sizeof err) != 0)
		lp_die(pending.where[failed], "%s", err);
	for (int p = 0; p < count; p++) {
		jv r = output_object(&out[p][0], cfg.num_beams > 1);
		if (nout[p] > 1) {
			jv all = jv_array();
			for (int i = 0; i < nout[p]; i++)
				all = jv_array_append(all, output_object(&out[p][i], cfg.num_beams > 1));
			r = jv_object_set(r, jv_string("sequences"), all);
		}
		r = jv_object_set(r, jv_string("prompt_tokens"), jv_number((double)pending.n[p]));
		if (opt.keep_input)
			r = jv_object_set(r, jv_string("input"), jv_copy(pending.rec[p]));
		lp_jsonl_print(stdout, r);
		n_records++;
		for (int i = 0; i < nout[p]; i++)
			n_tokens += out[p][i].n;
		lp_gen_outputs_free(out[p], nout[p]);
		free(pending.ids[p]);
		jv_free(pending.rec[p]);
		free(pending.where[p]);
	}
	pending.count = 0;
	pending.rows = 0;
}

static void generate_record(lp_jsonl *j, jv rec)
{
	int32_t *ids = NULL;
	size_t n = 0, cap = 0;
	char msg[256];
	if (record_ids(j, rec, &ids, &n, &cap) != 0) {
		free(ids);
		return;
	}
	if (!fits_context(n, 1, msg, sizeof msg)) {
		lp_jsonl_bad(j, "%s", msg);
		free(ids);
		return;
	}
	int rows, max_len;
	lp_generate_needs(&cfg, (int)n, (int)model.cfg.max_pos, &rows, &max_len);
	if (pending.count && pending.rows + rows > MAX_BATCH_ROWS)
		flush_pending();
	pending.rows += rows;
	int k = pending.count++;
	pending.ids[k] = ids;
	pending.n[k] = (int)n;
	pending.rec[k] = jv_copy(rec);
	pending.where[k] = lp_strdup(lp_jsonl_where(j));
	if (pending.count == opt.batch_size)
		flush_pending();
}

/* --score: log p(output + eos | prompt), as the SFT loss counts it. */
static void score_record(lp_jsonl *j, jv rec)
{
	const char *target;
	int rt = lp_jv_string(rec, "output", &target);
	if (rt == 0)
		rt = lp_jv_string(rec, "completion", &target);
	if (rt <= 0) {
		lp_jsonl_bad(j, "--score needs an \"output\" (or \"completion\") string");
		return;
	}
	int32_t *ids = NULL;
	size_t n = 0, cap = 0;
	if (record_ids(j, rec, &ids, &n, &cap) != 0) {
		free(ids);
		return;
	}
	size_t from = n;
	char msg[256];
	if (surely_too_long(strlen(target), msg, sizeof msg)) {
		lp_jsonl_bad(j, "%s", msg);
		free(ids);
		return;
	}
	encode(target, 0, &ids, &n, &cap);
	if (lp_spm_eos_id(tok) >= 0) {
		lp_grow((void **)&ids, &cap, n + 1, sizeof *ids);
		ids[n++] = lp_spm_eos_id(tok);
	}
	if (!fits_context(n, 0, msg, sizeof msg)) {
		lp_jsonl_bad(j, "%s", msg);
		free(ids);
		return;
	}
	need_state(1, (int)n, (int)n, 1);
	double lp = lp_score(&model, &state, ids, (int)n, (int)from);
	jv r = jv_object();
	r = jv_object_set(r, jv_string("logprob"), jv_number(lp));
	r = jv_object_set(r, jv_string("tokens"), jv_number((double)(n - from)));
	r = jv_object_set(r, jv_string("mean_logprob"), jv_number(n > from ? lp / (n - from) : 0));
	if (opt.keep_input)
		r = jv_object_set(r, jv_string("input"), jv_copy(rec));
	lp_jsonl_print(stdout, r);
	n_records++;
	n_tokens += n - from;
	free(ids);
}

/* ---- interactive chat ---- */

static void print_stream(void *ctx, const char *text)
{
	(void)ctx;
	fputs(text, stdout);
	fflush(stdout);
}

static void chat(void)
{
	struct sigaction sa = {0};
	sa.sa_handler = on_sigint; /* no SA_RESTART: Ctrl-C interrupts a read too */
	sigaction(SIGINT, &sa, NULL);
	int multi_turn = lp_template_has_turns(tmpl);
	int32_t *history = NULL, *ids = NULL;
	size_t nh = 0, caph = 0, idcap = 0;
	char *line = NULL;
	size_t linecap = 0;
	fprintf(stderr, "%s: Ctrl-C stops an answer, Ctrl-D ends%s\n", lp_prog,
			multi_turn ? ", /reset forgets the conversation" : "");
	for (;;) {
		fputs("> ", stderr);
		interrupted = 0;
		errno = 0;
		ssize_t len = getline(&line, &linecap, stdin);
		if (len < 0) {
			if (errno == EINTR) {
				clearerr(stdin);
				fputc('\n', stderr);
				continue;
			}
			break;
		}
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = 0;
		if (!len)
			continue;
		if (multi_turn && !strcmp(line, "/reset")) {
			nh = 0;
			continue;
		}
		/* the conversation so far, then this turn's prompt */
		size_t n = nh;
		lp_grow((void **)&ids, &idcap, nh + 1, sizeof *ids);
		if (nh)
			memcpy(ids, history, nh * sizeof *ids);
		char *text = nh ? lp_template_render_turn(tmpl, line) : lp_template_render(tmpl, line);
		char msg[256];
		if (surely_too_long(strlen(text) + nh, msg, sizeof msg)) {
			free(text);
			lp_warn(NULL, "%s", msg);
			continue;
		}
		encode(text, 1, &ids, &n, &idcap);
		free(text);
		if (!fits_context(n, 1, msg, sizeof msg)) {
			lp_warn(NULL, "%s%s", msg, nh ? " (/reset forgets the conversation)" : "");
			continue;
		}
		int rows, max_len;
		lp_generate_needs(&cfg, (int)n, (int)model.cfg.max_pos, &rows, &max_len);
		need_state(rows, (int)n, max_len > (int)n ? max_len : (int)n + 1, 0);
		lp_generator g = {&model, &state, tok, &cfg, &interrupted, NULL, NULL};
		if (rows == 1)
			g.stream = print_stream;
		lp_gen_output *out;
		int nout;
		char err[512];
		if (lp_generate(&g, ids, (int)n, &out, &nout, err, sizeof err) != 0) {
			lp_warn(NULL, "%s", err);
			continue;
		}
		if (rows > 1)
			fwrite(out[0].text, 1, out[0].text_len, stdout);
		fputs("\n", stdout);
		fflush(stdout);
		if (strcmp(out[0].finish, "eos")) /* say why an answer ended early */
			fprintf(stderr, "(%s)\n", out[0].finish);
		if (multi_turn) { /* keep prompt + answer + eos for the next turn */
			size_t add = n + out[0].n + 1;
			lp_grow((void **)&history, &caph, add, sizeof *history);
			memcpy(history, ids, n * sizeof *ids);
			memcpy(history + n, out[0].ids, out[0].n * sizeof *ids);
			nh = n + out[0].n;
			if (lp_spm_eos_id(tok) >= 0)
				history[nh++] = lp_spm_eos_id(tok);
		}
		lp_gen_outputs_free(out, nout);
	}
	free(line);
	free(ids);
	free(history);
}

int main(int argc, char **argv)
{
	lp_init(argv[0]);
	lp_gen_config_init(&cfg);
	parse_args(argc, argv);
	load();
	if (opt.interactive) {
		chat();
	} else {
		lp_stdout_jsonl();
		double t0 = now_seconds();
		int nfiles = argc - optind;
		for (int f = 0; f < (nfiles ? nfiles : 1); f++) {
			lp_reader *r = lp_reader_open(nfiles ? argv[optind + f] : NULL);
			lp_jsonl j;
			lp_jsonl_init(&j, r, opt.skip_bad);
			jv rec;
			while (lp_jsonl_next(&j, &rec)) {
				if (opt.score)
					score_record(&j, rec);
				else
					generate_record(&j, rec);
				jv_free(rec);
			}
			n_bad += j.nbad;
			lp_jsonl_done(&j);
			lp_reader_close(r);
		}
		flush_pending();
		double secs = now_seconds() - t0;
		if (!opt.quiet)
			lp_info("%llu records, %llu tokens %s; %llu bad records skipped; "
					"%.2f s, %.1f tokens/s", (unsigned long long)n_records,
					(unsigned long long)n_tokens, opt.score ? "scored" : "generated",
					(unsigned long long)n_bad, secs, secs > 0 ? n_tokens / secs : 0);
	}
	if (state_rows)
		lp_llama_state_free(&state);
	lp_llama_free(&model);
	lp_spm_free(tok);
	lp_template_free(tmpl);
	lp_gen_config_free(&cfg);
	free(opt.adapters);
	free(ctl);
	lp_close_stdout();
	return 0;
}
