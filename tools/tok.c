/* tok: JSON records to token frames, with the sentencepiece model as the truth.
 *
 *   sft   instruction records -> input_ids = [BOS] prompt target [EOS],
 *         labels = -100 over the prompt, both cut to --max-len
 *   pt    {"text"} records -> [BOS] text, concatenated, cut into blocks
 *   ids   {"text"} records -> one JSONL {"input_ids":[...]} per record
 *   --dump    frames -> JSONL;  --decode  ids -> {"text"}
 *
 * Records are read in batches. A full batch is encoded by OpenMP tasks
 * while this thread reads the next one; then this thread waits for those
 * tasks and writes the batch in input order, so reading, encoding and
 * writing overlap and the output does not depend on the number of threads. */
#include <errno.h>
#include <getopt.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cli.h"
#include "base/common.h"
#include "formats/framejson.h"
#include "formats/frames.h"
#include "formats/jsonl.h"
#include "base/reader.h"
#include "text/spm.h"
#include "text/template.h"
#include "text/tokbatch.h"

#define IGNORE_INDEX (-100)
#define BATCH_RECORDS 2048
#define BATCH_BYTES (8u << 20)

enum mode { MODE_AUTO, MODE_SFT, MODE_PT, MODE_IDS };
static const char *mode_name[] = {"auto", "sft", "pt", "ids"};

static struct {
	enum mode mode;
	const char *model_file, *model_dir, *template_name, *system;
	long long max_len, block_size;
	int keep_tail, bos, eos, zstd_level, skip_bad, quiet, threads, dump, decode;
} opt = {
	.template_name = LP_TEMPLATE_DEFAULT, .max_len = 512, .block_size = 512,
};

/* Where an item was read: formatted only for a message. */
typedef struct {
	size_t name;              /* index in run.names */
	uint64_t pos;             /* line, or element of an array */
	int is_array;
} lp_tok_where;

/* A batch of records: text = sft prompt or text; target = sft output. */
typedef struct {
	lp_tok_item *items;
	lp_tok_where *where;
	size_t n, cap_items, cap_where, bytes;
} lp_tok_batch;

/* The run: model, output and counters. */
static struct {
	lp_spm *spm;
	lp_template *tpl;
	int bos, eos;
	lp_frame_writer *w;
	lp_tok_batch batch[2];    /* batch[cur] is being read, batch[!cur] encoded */
	int cur;
	char **names;             /* input names, for where */
	size_t nnames, cap_names;
	int32_t *labels;          /* sft: scratch */
	size_t labels_cap;
	int32_t *pt;              /* pt: tokens not yet in a block */
	size_t pt_n, pt_cap;
	uint64_t records, bad, examples, tokens, truncated, no_target, nenc, nchars, tail;
} run;

static const char usage[] =
"usage: tok [-m MODEL | -M DIR] [--mode sft|pt|ids] [OPTIONS] [FILE...]\n"
"       tok --dump [FILE...]\n"
"       tok --decode [-m MODEL | -M DIR] [FILE...]\n"
"JSON records to token frames (input_ids + labels), by a sentencepiece model.\n"
"  -m, --tokenizer FILE   tokenizer model (default: DIR/tokenizer.model)\n"
"  -M, --model DIR        model directory (default: $LLAMAPIPE_MODEL)\n"
"      --mode MODE        sft, pt or ids (default: from the first record)\n"
"  -t, --template T       sft prompt: alpaca, llama2-chat, raw or a FILE\n"
"      --system TEXT      {system} of the template\n"
"  -l, --max-len N        sft: cut examples to N tokens (512)\n"
"      --block-size N     pt: tokens per block (512)\n"
"      --keep-tail        pt: write the last, short block too\n"
"      --bos, --eos       ids: add BOS / EOS\n"
"      --zstd[=LEVEL]     compress frame payloads (level 3)\n"
"      --skip-bad         skip bad records, counting them\n"
"  -j, --threads N        encoding threads (default: all cores)\n"
"  -q, --quiet            no report on stderr\n"
"      --dump             print frames as JSON lines\n"
"      --decode           ids back to {\"text\"} records\n"
"  -h, --help             this help\n"
"  -V, --version          the version\n";

static void parse_args(int argc, char **argv)
{
	enum { O_MODE = 256, O_SYSTEM, O_KEEP_TAIL, O_BOS, O_EOS, O_ZSTD, O_SKIP_BAD, O_DUMP,
		O_MODEL, O_MODEL_DIR, O_BLOCK, O_DECODE };
	static const struct option longopts[] = {
		{"tokenizer", required_argument, 0, 'm'},
		{"model", required_argument, 0, O_MODEL},
		{"model-dir", required_argument, 0, O_MODEL_DIR},
		{"mode", required_argument, 0, O_MODE},
		{"template", required_argument, 0, 't'},
		{"system", required_argument, 0, O_SYSTEM},
		{"max-len", required_argument, 0, 'l'},
		{"block-size", required_argument, 0, O_BLOCK},
		{"keep-tail", no_argument, 0, O_KEEP_TAIL},
		{"bos", no_argument, 0, O_BOS},
		{"eos", no_argument, 0, O_EOS},
		{"zstd", optional_argument, 0, O_ZSTD},
		{"skip-bad", no_argument, 0, O_SKIP_BAD},
		{"threads", required_argument, 0, 'j'},
		{"quiet", no_argument, 0, 'q'},
		{"dump", no_argument, 0, O_DUMP},
		{"decode", no_argument, 0, O_DECODE},
		{"help", no_argument, 0, 'h'},
		{"version", no_argument, 0, 'V'},
		{0, 0, 0, 0},
	};
	static const char shortopts[] = "m:M:t:l:b:j:qdhV";
	struct stat st;
	int c;
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		switch (c) {
		case 'm': opt.model_file = optarg; break;
		case 'M': opt.model_dir = optarg; break;
		case O_MODEL: /* a directory, as in every tool; once it was the tokenizer */
			if (stat(optarg, &st) == 0 && !S_ISDIR(st.st_mode)) {
				lp_deprecated("--model FILE", "--tokenizer FILE (-m)",
						"--model names a model directory");
				opt.model_file = optarg;
			} else
				opt.model_dir = optarg;
			break;
		case O_MODEL_DIR:
			lp_deprecated("--model-dir", "--model (-M)", NULL);
			opt.model_dir = optarg;
			break;
		case O_MODE:
			if (!strcmp(optarg, "sft")) opt.mode = MODE_SFT;
			else if (!strcmp(optarg, "pt")) opt.mode = MODE_PT;
			else if (!strcmp(optarg, "ids")) opt.mode = MODE_IDS;
			else lp_usage_error("--mode: '%s' is not sft, pt or ids", optarg);
			break;
		case 't': opt.template_name = optarg; break;
		case O_SYSTEM: opt.system = optarg; break;
		case 'l': opt.max_len = lp_parse_int("--max-len", optarg, 1, 1 << 30); break;
		case 'b': lp_deprecated("-b", "--block-size", "-b will mean --batch-size"); /* fall through */
		case O_BLOCK: opt.block_size = lp_parse_int("--block-size", optarg, 1, 1 << 30); break;
		case O_KEEP_TAIL: opt.keep_tail = 1; break;
		case O_BOS: opt.bos = 1; break;
		case O_EOS: opt.eos = 1; break;
		case O_ZSTD: opt.zstd_level = optarg ? lp_parse_int("--zstd", optarg, 1, 22) : 3; break;
		case O_SKIP_BAD: opt.skip_bad = 1; break;
		case 'j': opt.threads = lp_parse_int("--threads", optarg, 1, 4096); break;
		case 'q': opt.quiet = 1; break;
		case O_DUMP: opt.dump = 1; break;
		case 'd': lp_deprecated("-d", "--decode", "-d will mean --dtype"); /* fall through */
		case O_DECODE: opt.decode = 1; break;
		case 'h': lp_help_exit(usage);
		case 'V': lp_version_exit();
		default: lp_bad_option(argc, argv, shortopts);
		}
	}
	if (opt.dump && opt.decode)
		lp_usage_error("--dump and --decode exclude each other");
	if ((opt.dump || opt.decode) && opt.mode != MODE_AUTO)
		lp_usage_error("--mode does not go with --%s", opt.dump ? "dump" : "decode");
}

static void load_model(void)
{
	char err[1024];
	char *path = lp_spm_default_path(opt.model_file, opt.model_dir);
	if (!path)
		lp_usage_error("no tokenizer: give -m MODEL, or a model directory with "
				"tokenizer.model by -M DIR or $LLAMAPIPE_MODEL");
	if (!(run.spm = lp_spm_load(path, err, sizeof err)))
		lp_die(NULL, "%s", err);
	run.bos = lp_spm_bos_id(run.spm);
	run.eos = lp_spm_eos_id(run.spm);
	free(path);
}

/* ---- records in ---- */

/* rec[key] (or rec[alias]) as a string: 1 and *out, 0 when missing, -1 after
 * reporting a bad record (wrong type, NUL inside). */
static int field(lp_jsonl *j, jv rec, const char *key, const char *alias, const char **out)
{
	const char *name = key;
	int k = lp_jv_string(rec, key, out);
	if (k == 0 && alias) {
		name = alias;
		k = lp_jv_string(rec, alias, out);
	}
	if (k < 0) {
		lp_jsonl_bad(j, "field '%s' is not a string", name);
		return -1;
	}
	if (k > 0) {
		jv v = jv_object_get(jv_copy(rec), jv_string(name));
		size_t bytes = jv_string_length_bytes(v); /* consumes v; rec keeps *out */
		if (bytes != strlen(*out)) {
			lp_jsonl_bad(j, "field '%s' holds a NUL character", name);
			return -1;
		}
	}
	return k;
}

static enum mode pick_mode(jv rec)
{
	const char *s;
	if (lp_jv_string(rec, "instruction", &s) != 0 || lp_jv_string(rec, "instruct", &s) != 0)
		return MODE_SFT;
	if (lp_jv_string(rec, "text", &s) != 0)
		return isatty(STDOUT_FILENO) ? MODE_IDS : MODE_PT;
	return MODE_AUTO;
}

static void check_mode(int picked)
{
	if (opt.mode != MODE_IDS && isatty(STDOUT_FILENO))
		lp_usage_error("refusing to write binary frames to a terminal: redirect stdout "
				"(e.g. '| tok --dump'), or use --mode ids for JSON lines");
	if (opt.mode != MODE_IDS && (opt.bos || opt.eos))
		lp_usage_error("--bos and --eos go with --mode ids only (%s adds BOS%s by its rule)",
				mode_name[opt.mode], opt.mode == MODE_SFT ? " and EOS" : "");
	if (opt.mode == MODE_SFT && (run.bos < 0 || run.eos < 0))
		lp_die(NULL, "the tokenizer has no BOS or EOS piece, which --mode sft needs");
	if (opt.mode == MODE_PT && run.bos < 0)
		lp_die(NULL, "the tokenizer has no BOS piece, which --mode pt needs");
	if (opt.mode == MODE_IDS && ((opt.bos && run.bos < 0) || (opt.eos && run.eos < 0)))
		lp_die(NULL, "the tokenizer has no %s piece", opt.bos && run.bos < 0 ? "BOS" : "EOS");
	if (picked && !opt.quiet)
		lp_info("%s records: --mode %s", opt.mode == MODE_SFT ? "instruction" : "text",
				mode_name[opt.mode]);
	if (opt.mode != MODE_IDS)
		run.w = lp_frame_writer_new(stdout, "stdout", opt.zstd_level);
	else
		lp_stdout_jsonl();
}

/* Fill it from rec by the mode's fields; 0 after reporting a bad record. */
static int take_record(lp_jsonl *j, jv rec, lp_tok_item *it)
{
	const char *instr, *input = NULL, *output, *text;
	memset(it, 0, sizeof *it);
	if (opt.mode == MODE_SFT) {
		int ki = field(j, rec, "instruction", "instruct", &instr);
		if (ki < 0 || field(j, rec, "input", "query", &input) < 0)
			return 0;
		int ko = field(j, rec, "output", "answer", &output);
		if (ko < 0)
			return 0;
		if (!ki || !ko) {
			lp_jsonl_bad(j, "missing '%s' (or '%s')", ki ? "output" : "instruction",
					ki ? "answer" : "instruct");
			return 0;
		}
		char *joined = lp_instruction_join(instr, input);
		it->text = lp_template_render(run.tpl, joined);
		it->target = lp_strdup(output);
		free(joined);
	} else {
		int kt = field(j, rec, "text", NULL, &text);
		if (kt <= 0) {
			if (kt == 0)
				lp_jsonl_bad(j, "missing 'text'");
			return 0;
		}
		it->text = lp_strdup(text);
	}
	return 1;
}

/* ---- tokens ---- */

static void write_example(const int32_t *ids, const int32_t *labels, size_t n)
{
	lp_frame_write1(run.w, "input_ids", LP_I32, n, ids, 0);
	lp_frame_write1(run.w, "labels", LP_I32, n, labels, LP_FRAME_LAST);
	run.examples++;
	run.tokens += n;
}

/* sft: concatenate, mask the prompt, then cut to --max-len. */
static void emit_sft(const lp_tok_item *it)
{
	size_t n = it->n;
	if (n > (size_t)opt.max_len) {
		n = opt.max_len;
		run.truncated++;
		if (it->nprompt >= n)
			run.no_target++;
	}
	lp_grow((void **)&run.labels, &run.labels_cap, n, sizeof *run.labels);
	for (size_t i = 0; i < n; i++)
		run.labels[i] = i < it->nprompt ? IGNORE_INDEX : it->ids[i];
	write_example(it->ids, run.labels, n);
}

/* pt: append to the running stream and write every full block. */
static void emit_pt(const lp_tok_item *it)
{
	size_t bs = opt.block_size, done = 0;
	lp_grow((void **)&run.pt, &run.pt_cap, run.pt_n + it->n, sizeof *run.pt);
	memcpy(run.pt + run.pt_n, it->ids, it->n * sizeof *it->ids);
	run.pt_n += it->n;
	for (; run.pt_n - done >= bs; done += bs)
		write_example(run.pt + done, run.pt + done, bs);
	memmove(run.pt, run.pt + done, (run.pt_n - done) * sizeof *run.pt);
	run.pt_n -= done;
}

static void emit(const lp_tok_item *it)
{
	if (opt.mode == MODE_SFT) {
		emit_sft(it);
	} else if (opt.mode == MODE_PT) {
		emit_pt(it);
	} else {
		lp_ids_print_json(stdout, "stdout", "input_ids", it->ids, it->n);
		run.examples++;
		run.tokens += it->n;
	}
}

/* Wait for the encoding of the batch in flight, then write it in input
 * order. */
static void finish_batch(void)
{
	lp_tok_batch *b = &run.batch[!run.cur];
	if (!b->n)
		return;
	#pragma omp taskwait
	long bad = lp_tok_first_error(b->items, b->n);
	if (bad >= 0) {
		const lp_tok_where *w = &b->where[bad];
		char at[4200];
		snprintf(at, sizeof at, w->is_array ? "%s: element %llu" : "%s:%llu",
				run.names[w->name], (unsigned long long)w->pos);
		lp_die(at, "%s", b->items[bad].err);
	}
	for (size_t i = 0; i < b->n; i++) {
		lp_tok_item *it = &b->items[i];
		run.nenc += it->nenc;
		run.nchars += it->nchars;
		emit(it);
		free(it->text);
		free(it->target);
		free(it->ids);
	}
	b->n = 0;
	b->bytes = 0;
}

/* Write the batch in flight, then start encoding the one just read. */
static void submit_batch(void)
{
	int bos = opt.mode == MODE_IDS && !opt.bos ? -1 : run.bos;
	int eos = opt.mode == MODE_SFT || (opt.mode == MODE_IDS && opt.eos) ? run.eos : -1;
	finish_batch();
	lp_tok_batch *b = &run.batch[run.cur];
	lp_tok_encode_tasks(run.spm, b->items, b->n, bos, eos);
	run.cur = !run.cur;
}

static void tokenize_input(const char *path)
{
	lp_reader *r = lp_reader_open(path);
	lp_jsonl j;
	jv rec;
	lp_jsonl_init(&j, r, opt.skip_bad);
	lp_grow((void **)&run.names, &run.cap_names, run.nnames + 1, sizeof *run.names);
	run.names[run.nnames++] = lp_strdup(lp_reader_name(r));
	while (lp_jsonl_next(&j, &rec)) {
		if (jv_get_kind(rec) != JV_KIND_OBJECT) {
			lp_jsonl_bad(&j, "record is a JSON %s, not an object",
					jv_kind_name(jv_get_kind(rec)));
			jv_free(rec);
			continue;
		}
		if (opt.mode == MODE_AUTO) {
			if ((opt.mode = pick_mode(rec)) == MODE_AUTO) {
				lp_jsonl_bad(&j, "cannot tell the mode: the record has no "
						"instruction, instruct or text field (give --mode)");
				jv_free(rec);
				continue;
			}
			check_mode(1);
		}
		lp_tok_batch *b = &run.batch[run.cur];
		lp_grow((void **)&b->items, &b->cap_items, b->n + 1, sizeof *b->items);
		lp_grow((void **)&b->where, &b->cap_where, b->n + 1, sizeof *b->where);
		lp_tok_item *it = &b->items[b->n];
		if (take_record(&j, rec, it)) {
			b->where[b->n] = (lp_tok_where){run.nnames - 1, j.where, j.is_array};
			run.records++;
			b->n++;
			b->bytes += strlen(it->text) + (it->target ? strlen(it->target) : 0);
			if (b->n >= BATCH_RECORDS || b->bytes >= BATCH_BYTES)
				submit_batch();
		}
		jv_free(rec);
	}
	run.bad += j.nbad;
	lp_jsonl_done(&j);
	lp_reader_close(r);
}

static void finish_tokenize(void)
{
	submit_batch();
	finish_batch();
	if (opt.mode == MODE_PT && run.pt_n) {
		if (opt.keep_tail)
			write_example(run.pt, run.pt, run.pt_n);
		run.tail = run.pt_n;
		run.pt_n = 0;
	}
	if (!run.w && opt.mode != MODE_IDS) /* no records: a stream of none */
		run.w = lp_frame_writer_new(stdout, "stdout", opt.zstd_level);
	lp_frame_writer_free(run.w);
	run.w = NULL;
}

static const char *plural(uint64_t n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

/* "sft: 1000 records -> 1000 examples, 81234 tokens; 12 truncated to
 * --max-len 512; 1.53 characters per token" */
static void report_tokenize(void)
{
	char what[256] = "", bad[64] = "", cpt[64] = "", nt[96] = "";
	unsigned long long nrec = run.records, nex = run.examples, nbad = run.bad;
	if (opt.quiet)
		return;
	if (run.bad)
		snprintf(bad, sizeof bad, "; skipped %llu bad %s", nbad, plural(nbad, "record", "records"));
	if (!run.records) {
		lp_info("no records (empty input)%s", bad);
		return;
	}
	if (run.nenc)
		snprintf(cpt, sizeof cpt, "; %.2f characters per token",
				(double)run.nchars / (double)run.nenc);
	lp_info("encoder: %s", lp_spm_encoder(run.spm));
	if (run.no_target)
		snprintf(nt, sizeof nt, " (%llu with no target token left, which lora-train skips)",
				(unsigned long long)run.no_target);
	if (opt.mode == MODE_SFT)
		snprintf(what, sizeof what, "%llu %s, %llu tokens; %llu truncated to --max-len %lld%s",
				nex, plural(nex, "example", "examples"), (unsigned long long)run.tokens,
				(unsigned long long)run.truncated, opt.max_len, nt);
	else if (opt.mode == MODE_PT)
		snprintf(what, sizeof what, "%llu %s of %lld, %llu tokens; tail of %llu tokens %s",
				nex, plural(nex, "block", "blocks"), opt.block_size,
				(unsigned long long)run.tokens, (unsigned long long)run.tail,
				opt.keep_tail ? "kept" : "dropped");
	else
		snprintf(what, sizeof what, "%llu tokens", (unsigned long long)run.tokens);
	lp_info("%s: %llu %s -> %s%s%s", mode_name[opt.mode], nrec,
			plural(nrec, "record", "records"), what, cpt, bad);
}

/* ---- --dump and --decode ---- */

static uint64_t dump_input(const char *path)
{
	lp_reader *r = lp_reader_open(path);
	lp_record rec = {0};
	uint64_t n = 0;
	size_t got;
	lp_reader_peek(r, 1, &got);
	if (got && !lp_reader_is_frames(r))
		lp_die(lp_reader_name(r), "not a frame stream (no frame magic at byte 0)");
	for (; lp_record_read(r, &rec); n++)
		lp_record_print_json(stdout, "stdout", &rec);
	lp_record_free(&rec);
	lp_reader_close(r);
	return n;
}

/* {"text": decoded ids}; 0 and a message in err when an id is out of range. */
static int print_text(const int32_t *ids, size_t n, char *err, size_t errlen)
{
	size_t len;
	char *s = lp_spm_decode(run.spm, ids, n, &len, err, errlen);
	if (!s)
		return 0;
	jv o = jv_object_set(jv_object(), jv_string("text"), jv_string_sized(s, len));
	lp_jsonl_print(stdout, o);
	free(s);
	return 1;
}

/* Frames: the input_ids frame of each record. */
static uint64_t decode_frames(lp_reader *r)
{
	lp_record rec = {0};
	int32_t *ids = NULL;
	size_t cap = 0;
	uint64_t n = 0;
	char where[4200], err[512];
	for (; lp_record_read(r, &rec); n++) {
		snprintf(where, sizeof where, "%s: record at byte %llu", lp_reader_name(r),
				(unsigned long long)rec.offset);
		const lp_frame *f = lp_record_get(&rec, "input_ids");
		if (!f || f->rank != 1 || (f->dtype != LP_I32 && f->dtype != LP_I64))
			lp_die(where, "no rank-1 i32 or i64 frame 'input_ids'");
		size_t k = f->shape[0];
		lp_grow((void **)&ids, &cap, k, sizeof *ids);
		for (size_t i = 0; i < k; i++) {
			int64_t v = f->dtype == LP_I32 ? ((const int32_t *)f->data)[i]
				: ((const int64_t *)f->data)[i];
			if (v < 0 || v >= lp_spm_size(run.spm))
				lp_die(where, "token id %lld out of range (vocabulary %d)",
						(long long)v, lp_spm_size(run.spm));
			ids[i] = v;
		}
		if (!print_text(ids, k, err, sizeof err))
			lp_die(where, "%s", err);
	}
	free(ids);
	lp_record_free(&rec);
	return n;
}

/* JSONL: {"input_ids":[...]} records. */
static uint64_t decode_jsonl(lp_reader *r)
{
	lp_jsonl j;
	jv rec;
	int32_t *ids = NULL;
	size_t cap = 0;
	uint64_t n = 0;
	lp_jsonl_init(&j, r, opt.skip_bad);
	while (lp_jsonl_next(&j, &rec)) {
		jv a = jv_get_kind(rec) == JV_KIND_OBJECT
			? jv_object_get(jv_copy(rec), jv_string("input_ids")) : jv_invalid();
		int k = jv_get_kind(a) == JV_KIND_ARRAY ? jv_array_length(jv_copy(a)) : -1, i;
		lp_grow((void **)&ids, &cap, k > 0 ? k : 1, sizeof *ids);
		for (i = 0; i < k; i++) {
			jv x = jv_array_get(jv_copy(a), i);
			double d = jv_get_kind(x) == JV_KIND_NUMBER ? jv_number_value(x) : 0.5;
			jv_free(x);
			if (!(d >= INT32_MIN && d <= INT32_MAX) || d != (double)(int32_t)d)
				break;
			ids[i] = (int32_t)d;
		}
		jv_free(a);
		jv_free(rec);
		if (k < 0 || i < k) {
			lp_jsonl_bad(&j, k < 0 ? "no 'input_ids' array" : "'input_ids' holds a non-integer");
			continue;
		}
		char err[512];
		if (print_text(ids, k, err, sizeof err))
			n++;
		else
			lp_jsonl_bad(&j, "%s", err);
	}
	run.bad += j.nbad;
	lp_jsonl_done(&j);
	free(ids);
	return n;
}

static uint64_t decode_input(const char *path)
{
	lp_reader *r = lp_reader_open(path);
	uint64_t n = lp_reader_is_frames(r) ? decode_frames(r) : decode_jsonl(r);
	lp_reader_close(r);
	return n;
}

int main(int argc, char **argv)
{
	lp_init(argv[0]);
	parse_args(argc, argv);
	int nfiles = argc - optind;
	char **files = argv + optind;
	for (int i = 0; i < nfiles; i++) /* fail before any output */
		if (strcmp(files[i], "-") && access(files[i], R_OK))
			lp_die(files[i], "%s", strerror(errno));
	if (opt.threads)
		omp_set_num_threads(opt.threads);

	if (opt.dump || opt.decode) {
		uint64_t n = 0;
		lp_stdout_jsonl();
		if (opt.decode)
			load_model();
		for (int i = 0; i < (nfiles ? nfiles : 1); i++)
			n += opt.dump ? dump_input(nfiles ? files[i] : NULL)
				: decode_input(nfiles ? files[i] : NULL);
		if (!opt.quiet && run.bad)
			lp_info("%s: %llu records; skipped %llu bad", opt.dump ? "dump" : "decode",
					(unsigned long long)n, (unsigned long long)run.bad);
		else if (!opt.quiet)
			lp_info("%s: %llu records", opt.dump ? "dump" : "decode", (unsigned long long)n);
		lp_close_stdout();
		return 0;
	}

	char err[1024];
	load_model();
	if (!(run.tpl = lp_template_load(opt.template_name, opt.system, err, sizeof err)))
		lp_die("--template", "%s", err);
	if (opt.mode != MODE_AUTO)
		check_mode(0);
	/* one thread reads and writes; the others, and it while it waits,
	 * run the encoding tasks */
	#pragma omp parallel
	#pragma omp single
	{
		for (int i = 0; i < (nfiles ? nfiles : 1); i++)
			tokenize_input(nfiles ? files[i] : NULL);
		finish_tokenize();
	}
	report_tokenize();
	for (size_t i = 0; i < run.nnames; i++)
		free(run.names[i]);
	free(run.names);
	for (int k = 0; k < 2; k++) {
		free(run.batch[k].items);
		free(run.batch[k].where);
	}
	lp_template_free(run.tpl);
	lp_spm_free(run.spm);
	lp_close_stdout();
	return 0;
}
