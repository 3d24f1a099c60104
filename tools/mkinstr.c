/* mkinstr: raw data (MSRA NER, NER tag columns, Alpaca, plain text, any
 * JSON through a jq program) to instruction records
 * {"instruction","input","output"} or pre-training records {"text"}, one
 * JSON object per line. Optional dedup, shuffle and dev split.
 *
 * The story: parse flags; for each input, pick its format (--from, or a
 * look at its first line) and turn its records into output records; each
 * goes through emit() (dedup, then straight out or into a buffer); when
 * shuffling or taking a --dev-count, the buffer is ordered and split at
 * the end; report. The converters live in libcommon/instr.c. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "base/cli.h"
#include "base/common.h"
#include "text/instr.h"
#include "formats/jsonl.h"
#include "base/reader.h"

static const char usage[] =
	"usage: mkinstr [options] [FILE...]\n"
	"Raw data to instruction records (JSONL) on stdout.\n"
	"      --from FORMAT     msra, bio, alpaca, text or json (default: guess)\n"
	"      --label TYPE=NAME entity type to name in NER answers (PER=人名 ...)\n"
	"      --instruction TEXT, --input-prefix TEXT, --none TEXT\n"
	"                        NER prompt parts (see mkinstr(1))\n"
	"  -p, --paragraphs      text: blank-line separated documents\n"
	"      --jq PROGRAM      map each JSON input value with a jq program\n"
	"      --jq-file FILE    the same, program read from FILE\n"
	"      --dedup           drop records whose normalized text was seen\n"
	"  -s, --shuffle         shuffle all records (--seed N, default 0)\n"
	"      --seed N          seed for --shuffle and --dev-count\n"
	"      --dev FILE        write a dev split to FILE: with\n"
	"      --dev-ratio R     each record by its hash, or\n"
	"      --dev-count N     exactly N records chosen with the seed\n"
	"  -o, --output FILE     write to FILE (atomically), not stdout\n"
	"      --skip-bad        skip bad records (counted) instead of failing\n"
	"  -q, --quiet           no format guess or summary on stderr\n"
	"  -h, --help            this text\n"
	"  -V, --version         the version\n";

static struct {
	int from, paragraphs, dedup, shuffle, skip_bad, quiet;
	uint64_t seed;
	const char *out_path, *dev_path, *jq_text, *jq_file;
	double dev_ratio;           /* < 0: not given */
	long long dev_count;        /* < 0: not given */
	lp_ner_opts ner;
} opt = {.dev_ratio = -1, .dev_count = -1};

/* One output record waiting in the buffer; h: XXH3-64 of its dedup key. */
struct held { jv rec; uint64_t h; };

static struct {
	FILE *out, *dev;
	lp_atomic *out_a, *dev_a;
	lp_jqprog *jq;
	lp_u64set seen;
	int buffering;
	struct held *buf;
	size_t nbuf, capbuf;
	uint64_t in, out_n, dev_n, empty, bad, dup;
} run;

static void parse_args(int argc, char **argv)
{
	enum { O_INSTR = 256, O_PREFIX, O_NONE, O_JQFILE, O_SEED, O_DEV, O_RATIO, O_COUNT, O_SKIP,
		O_FROM, O_LABEL, O_JQ, O_DEDUP };
	static const struct option lo[] = {
		{"from", 1, 0, O_FROM}, {"label", 1, 0, O_LABEL}, {"instruction", 1, 0, O_INSTR},
		{"input-prefix", 1, 0, O_PREFIX}, {"none", 1, 0, O_NONE},
		{"paragraphs", 0, 0, 'p'}, {"jq", 1, 0, O_JQ}, {"jq-file", 1, 0, O_JQFILE},
		{"dedup", 0, 0, O_DEDUP}, {"shuffle", 0, 0, 's'}, {"seed", 1, 0, O_SEED},
		{"dev", 1, 0, O_DEV}, {"dev-ratio", 1, 0, O_RATIO}, {"dev-count", 1, 0, O_COUNT},
		{"output", 1, 0, 'o'}, {"skip-bad", 0, 0, O_SKIP}, {"quiet", 0, 0, 'q'},
		{"help", 0, 0, 'h'}, {"version", 0, 0, 'V'}, {0, 0, 0, 0},
	};
	static const char shortopts[] = "f:l:pj:dso:qhV";
	int c;
	lp_ner_opts_init(&opt.ner);
	while ((c = getopt_long(argc, argv, shortopts, lo, NULL)) != -1) {
		switch (c) {
		/* -f, -l, -j and -d mean --force, --max-len, --threads and --dtype
		 * in the other tools; here they keep their old meaning one release */
		case 'f': lp_deprecated("-f", "--from", "-f will mean --force"); /* fall through */
		case O_FROM:
			if ((opt.from = lp_from_name(optarg)) < 0)
				lp_usage_error("--from: unknown format '%s' (msra, bio, alpaca, text, json)", optarg);
			break;
		case 'l': lp_deprecated("-l", "--label", "-l will mean --max-len"); /* fall through */
		case O_LABEL:
			if (lp_ner_set_label(&opt.ner, optarg) < 0)
				lp_usage_error("--label: want TYPE=NAME, not '%s'", optarg);
			break;
		case O_INSTR: opt.ner.instruction = optarg; break;
		case O_PREFIX: opt.ner.input_prefix = optarg; break;
		case O_NONE: opt.ner.none = optarg; break;
		case 'p': opt.paragraphs = 1; break;
		case 'j': lp_deprecated("-j", "--jq", "-j will mean --threads"); /* fall through */
		case O_JQ: opt.jq_text = optarg; break;
		case O_JQFILE: opt.jq_file = optarg; break;
		case 'd': lp_deprecated("-d", "--dedup", "-d will mean --dtype"); /* fall through */
		case O_DEDUP: opt.dedup = 1; break;
		case 's': opt.shuffle = 1; break;
		case O_SEED: opt.seed = lp_parse_int("--seed", optarg, 0, INT64_MAX); break;
		case O_DEV: opt.dev_path = optarg; break;
		case O_RATIO: opt.dev_ratio = lp_parse_double("--dev-ratio", optarg, 0, 1); break;
		case O_COUNT: opt.dev_count = lp_parse_int("--dev-count", optarg, 0, INT64_MAX); break;
		case 'o': opt.out_path = optarg; break;
		case O_SKIP: opt.skip_bad = 1; break;
		case 'q': opt.quiet = 1; break;
		case 'h': lp_help_exit(usage);
		case 'V': lp_version_exit();
		default: lp_bad_option(argc, argv, shortopts);
		}
	}
	if (opt.jq_text && opt.jq_file)
		lp_usage_error("--jq and --jq-file: give one program");
	if ((opt.jq_text || opt.jq_file) && opt.from != LP_FROM_AUTO && opt.from != LP_FROM_JSON)
		lp_usage_error("--jq reads JSON values: use it with --from json or no --from");
	if (opt.dev_path && opt.dev_ratio < 0 && opt.dev_count < 0)
		lp_usage_error("--dev needs --dev-ratio R or --dev-count N");
	if (!opt.dev_path && (opt.dev_ratio >= 0 || opt.dev_count >= 0))
		lp_usage_error("--dev-ratio and --dev-count need --dev FILE");
	if (opt.dev_ratio >= 0 && opt.dev_count >= 0)
		lp_usage_error("--dev-ratio and --dev-count: give one");
	if (opt.dev_path && opt.out_path && !strcmp(opt.dev_path, opt.out_path))
		lp_usage_error("--dev and --output name the same file");
}

/* ---- output ---- */

static void write_record(jv rec, int dev)
{
	if (dev) {
		lp_jsonl_print(run.dev, rec);
		run.dev_n++;
	} else {
		lp_jsonl_print(run.out, rec);
	}
	run.out_n++;
}

/* --dev-ratio R: a record is dev when h / 2^64 < R, h the XXH3-64 of its
 * dedup key: its side depends on its content alone, not on the order, the
 * seed or the other records. */
static int dev_by_ratio(uint64_t h)
{
	return opt.dev_ratio >= 0 && (double)(h >> 11) * 0x1p-53 < opt.dev_ratio;
}

/* Every converted record comes here (rec consumed). */
static void emit(jv rec)
{
	size_t n;
	char *key = lp_instr_normalize(rec, &n);
	uint64_t h = XXH3_64bits(key, n);
	free(key);
	if (opt.dedup && !lp_u64set_add(&run.seen, h)) {
		run.dup++;
		jv_free(rec);
		return;
	}
	if (!run.buffering) {
		write_record(rec, dev_by_ratio(h));
		return;
	}
	lp_grow((void **)&run.buf, &run.capbuf, run.nbuf + 1, sizeof *run.buf);
	run.buf[run.nbuf++] = (struct held){rec, h};
}

/* Fisher-Yates over a[0..n) (elements of size sz) with the seeded rng. */
static void shuffle(void *a, size_t n, size_t sz)
{
	lp_rng rng;
	char tmp[sizeof(struct held)], *p = a; /* sz <= sizeof(struct held) */
	lp_rng_seed(&rng, opt.seed);
	for (size_t i = n; i > 1; i--) {
		size_t j = lp_rng_below(&rng, i);
		memcpy(tmp, p + (i - 1) * sz, sz);
		memcpy(p + (i - 1) * sz, p + j * sz, sz);
		memcpy(p + j * sz, tmp, sz);
	}
}

/* The buffered records: shuffled (--shuffle) and split. --dev-count takes
 * the first N of the seeded shuffle; without --shuffle the same N records
 * go to dev, and both sides keep input order. */
static void flush_buffer(void)
{
	size_t n = run.nbuf;
	char *is_dev = lp_calloc(n + 1, 1);
	if (opt.dev_count > (long long)n)
		lp_die("--dev-count", "%lld records asked for, only %zu records", opt.dev_count, n);
	if (opt.shuffle) {
		shuffle(run.buf, n, sizeof *run.buf);
		for (size_t i = 0; opt.dev_count > 0 && i < (size_t)opt.dev_count; i++)
			is_dev[i] = 1;
	} else if (opt.dev_count > 0) {
		size_t *perm = lp_malloc((n + 1) * sizeof *perm);
		for (size_t i = 0; i < n; i++)
			perm[i] = i;
		shuffle(perm, n, sizeof *perm);
		for (size_t i = 0; i < (size_t)opt.dev_count; i++)
			is_dev[perm[i]] = 1;
		free(perm);
	}
	for (size_t i = 0; i < n; i++)
		write_record(run.buf[i].rec, opt.dev_count >= 0 ? is_dev[i] : dev_by_ratio(run.buf[i].h));
	free(is_dev);
	free(run.buf);
}

/* ---- input ---- */

static void bad_line(const char *name, uint64_t line, const char *msg)
{
	char where[4200];
	snprintf(where, sizeof where, "%s:%llu", name, (unsigned long long)line);
	if (!opt.skip_bad)
		lp_die(where, "%s (--skip-bad to skip such records)", msg);
	run.bad++;
	lp_warn(where, "%s (skipped)", msg);
}

/* A converter's verdict on one input record. */
static void verdict(int r, jv *rec)
{
	if (r == LP_INSTR_OK)
		emit(*rec);
	else if (r == LP_INSTR_EMPTY)
		run.empty++;
}

static void read_json(lp_reader *r, lp_from from)
{
	lp_jsonl j;
	jv v, rec;
	char err[1024];
	uint64_t conv_bad = 0;
	lp_jsonl_init(&j, r, opt.skip_bad);
	while (lp_jsonl_next(&j, &v)) {
		run.in++;
		if (run.jq) {
			jv outs = lp_jqprog_run(run.jq, v, err, sizeof err);
			if (!jv_is_valid(outs)) {
				conv_bad++;
				lp_jsonl_bad(&j, "%s", err);
				continue;
			}
			jv_array_foreach(outs, k, o) {
				int res = lp_instr_from_json(o, &rec, err, sizeof err);
				if (res == LP_INSTR_BAD) {
					conv_bad++;
					lp_jsonl_bad(&j, "jq output %d: %s", k + 1, err);
				}
				verdict(res, &rec);
				jv_free(o);
			}
			jv_free(outs);
			continue;
		}
		int res = from == LP_FROM_MSRA ? lp_instr_from_msra(&opt.ner, v, &rec, err, sizeof err)
			: from == LP_FROM_ALPACA ? lp_instr_from_alpaca(v, &rec, err, sizeof err)
			: lp_instr_from_json(v, &rec, err, sizeof err);
		jv_free(v);
		if (res == LP_INSTR_BAD) {
			conv_bad++;
			lp_jsonl_bad(&j, "%s", err);
		}
		verdict(res, &rec);
	}
	run.in += j.nbad - conv_bad; /* malformed lines are input records too */
	run.bad += j.nbad;
	lp_jsonl_done(&j);
}

static void read_bio(lp_reader *r)
{
	lp_bio b;
	char *line, err[1024];
	size_t len;
	int skipping = 0; /* after a bad line, up to the next blank line */
	jv rec;
	lp_bio_init(&b);
	for (;;) {
		line = lp_reader_line(r, &len);
		if (!line || lp_is_blank(line, len)) {
			if (b.ntok) {
				run.in++;
				verdict(lp_bio_sentence(&b, &opt.ner, &rec), &rec);
			}
			skipping = 0;
			if (!line)
				break;
			continue;
		}
		if (skipping)
			continue;
		if (lp_bio_line(&b, &opt.ner, line, len, err, sizeof err) != LP_INSTR_OK) {
			run.in++;
			bad_line(lp_reader_name(r), lp_reader_lineno(r), err);
			lp_bio_reset(&b);
			skipping = 1;
		}
	}
	lp_bio_free(&b);
}

static void read_text(lp_reader *r)
{
	char *line, *doc = NULL, err[1024];
	size_t len, n = 0, cap = 0;
	uint64_t first = 0;
	jv rec;
	for (;;) {
		line = lp_reader_line(r, &len);
		int blank = !line || lp_is_blank(line, len);
		if (line && !opt.paragraphs) {
			run.in++;
			int res = lp_instr_from_text(line, len, &rec, err, sizeof err);
			if (res == LP_INSTR_BAD)
				bad_line(lp_reader_name(r), lp_reader_lineno(r), err);
			verdict(res, &rec);
			continue;
		}
		if (opt.paragraphs && blank && n) {
			run.in++;
			int res = lp_instr_from_text(doc, n, &rec, err, sizeof err);
			if (res == LP_INSTR_BAD)
				bad_line(lp_reader_name(r), first, err);
			verdict(res, &rec);
			n = 0;
		}
		if (!line)
			break;
		if (blank)
			continue;
		if (!n)
			first = lp_reader_lineno(r);
		lp_grow((void **)&doc, &cap, n + len + 1, 1);
		if (n)
			doc[n++] = '\n';
		memcpy(doc + n, line, len);
		n += len;
	}
	free(doc);
}

/* Open one input, skip a UTF-8 BOM, settle its format and read it. */
static void read_input(const char *path)
{
	lp_reader *r = lp_reader_open(path);
	size_t got;
	const char *p = lp_reader_peek(r, 3, &got), *what;
	if (got == 3 && !memcmp(p, "\xef\xbb\xbf", 3))
		lp_reader_read(r, (char[3]){0}, 3);
	p = lp_reader_peek(r, 1 << 16, &got);
	lp_from from = lp_instr_sniff(p, got, &what);
	if (run.jq || opt.from == LP_FROM_JSON) {
		from = LP_FROM_JSON;
	} else if (opt.from == LP_FROM_MSRA) { /* JSON or tag columns? */
		from = from == LP_FROM_BIO || from == LP_FROM_TEXT ? LP_FROM_BIO : LP_FROM_MSRA;
	} else if (opt.from != LP_FROM_AUTO) {
		from = opt.from;
	} else if (from == LP_FROM_AUTO) {
		lp_die(lp_reader_name(r), "cannot tell the format: %s (use --from or --jq)", what);
	} else if (what && !opt.quiet) {
		lp_info("%s: reading %s%s (use --from to choose)", lp_reader_name(r), what,
				from != LP_FROM_TEXT ? "" : opt.paragraphs ?
				", one document per paragraph" : ", one document per line");
	}
	if (from == LP_FROM_BIO)
		read_bio(r);
	else if (from == LP_FROM_TEXT)
		read_text(r);
	else
		read_json(r, from);
	lp_reader_close(r);
}

static lp_jqprog *compile_jq(void)
{
	char err[1024], *text = NULL;
	const char *prog = opt.jq_text;
	if (opt.jq_file)
		prog = text = lp_read_file(opt.jq_file, NULL);
	if (!prog)
		return NULL;
	lp_jqprog *p = lp_jqprog_compile(prog, err, sizeof err);
	if (!p)
		lp_die(opt.jq_file ? opt.jq_file : "--jq", "%s", err);
	free(text);
	return p;
}

static FILE *open_output(const char *path, lp_atomic **a)
{
	if (!path || !strcmp(path, "-")) {
		lp_stdout_jsonl();
		return stdout;
	}
	*a = lp_atomic_create(path);
	return lp_atomic_file(*a);
}

int main(int argc, char **argv)
{
	lp_init(argv[0]);
	parse_args(argc, argv);
	run.jq = compile_jq();
	run.buffering = opt.shuffle || opt.dev_count >= 0;
	run.out = open_output(opt.out_path, &run.out_a);
	if (opt.dev_path)
		run.dev = open_output(opt.dev_path, &run.dev_a);

	if (optind == argc)
		read_input(NULL);
	for (int i = optind; i < argc; i++)
		read_input(argv[i]);
	if (run.buffering)
		flush_buffer();

	if (run.dev_a)
		lp_atomic_commit(run.dev_a);
	if (run.out_a)
		lp_atomic_commit(run.out_a);
	if (!opt.quiet)
		lp_info("%llu records in, %llu out (%llu to dev); skipped %llu empty, %llu bad, %llu duplicates",
				(unsigned long long)run.in, (unsigned long long)run.out_n,
				(unsigned long long)run.dev_n, (unsigned long long)run.empty,
				(unsigned long long)run.bad, (unsigned long long)run.dup);
	lp_jqprog_free(run.jq);
	lp_u64set_free(&run.seen);
	lp_ner_opts_free(&opt.ner);
	lp_close_stdout();
	return 0;
}
