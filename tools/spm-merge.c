/* spm-merge: expand a SentencePiece vocabulary (Chinese-LLaMA's rule).
 *
 *   spm-merge [options] BASE.model [EXTRA.model...] > OUT.model
 *
 * Every piece of each EXTRA (then of each --pieces list) that the result
 * lacks is appended with score 0, in the source's order; a later source
 * sees the earlier additions. The base's pieces, ids and other fields are
 * kept as they are. With --hf-dir the result is also written as a
 * transformers LlamaTokenizer directory. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cli.h"
#include "base/common.h"
#include "formats/spm_model.h"

static const char usage[] =
	"usage: spm-merge [options] BASE.model [EXTRA.model...] > OUT.model\n"
	"Append every piece of each EXTRA that BASE lacks (score 0).\n"
	"  -o, --output FILE        write the model to FILE (atomically), not stdout\n"
	"  -p, --pieces FILE        also add the pieces listed in FILE, one per line\n"
	"      --type TYPE          type of added pieces: normal (default), user_defined\n"
	"  -f, --force              merge model types the rule refuses (unigram + bpe)\n"
	"      --hf-dir DIR         also write DIR/tokenizer.model and the JSON files\n"
	"                           transformers' LlamaTokenizer reads\n"
	"      --model-max-length N model_max_length in tokenizer_config.json (2048)\n"
	"  -q, --quiet              no summary on stderr\n"
	"  -h, --help               show this help\n"
	"  -V, --version            the version\n";

struct opts {
	const char *output, *hf_dir;
	const char **pieces;
	size_t n_pieces;
	int type, force, quiet;
	long long max_len;
};

static int parse_type(const char *s)
{
	if (!strcmp(s, "normal"))
		return LP_SPM_NORMAL;
	if (!strcmp(s, "user_defined") || !strcmp(s, "user-defined"))
		return LP_SPM_USER_DEFINED;
	lp_usage_error("--type: '%s' is not one of normal, user_defined", s);
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	enum { OPT_HF_DIR = 256, OPT_MAX_LEN, OPT_TYPE };
	static const struct option longs[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "pieces", required_argument, NULL, 'p' },
		{ "type", required_argument, NULL, OPT_TYPE },
		{ "force", no_argument, NULL, 'f' },
		{ "hf-dir", required_argument, NULL, OPT_HF_DIR },
		{ "model-max-length", required_argument, NULL, OPT_MAX_LEN },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static const char shortopts[] = "o:p:t:fqhV";
	*o = (struct opts){ .type = LP_SPM_NORMAL, .max_len = 2048 };
	int c;
	while ((c = getopt_long(argc, argv, shortopts, longs, NULL)) != -1) {
		switch (c) {
		case 'o': o->output = optarg; break;
		case 'p':
			o->pieces = lp_realloc(o->pieces, (o->n_pieces + 1) * sizeof *o->pieces);
			o->pieces[o->n_pieces++] = optarg;
			break;
		case 't': lp_deprecated("-t", "--type", "-t will mean --template"); /* fall through */
		case OPT_TYPE: o->type = parse_type(optarg); break;
		case 'f': o->force = 1; break;
		case 'q': o->quiet = 1; break;
		case OPT_HF_DIR: o->hf_dir = optarg; break;
		case OPT_MAX_LEN:
			o->max_len = lp_parse_int("--model-max-length", optarg, 1, 1LL << 53);
			break;
		case 'h': lp_help_exit(usage);
		case 'V': lp_version_exit();
		default: lp_bad_option(argc, argv, shortopts);
		}
	}
	if (optind >= argc)
		lp_usage_error("no BASE model given");
	if ((o->output && !*o->output) || (o->hf_dir && !*o->hf_dir))
		lp_usage_error("an empty file or directory name");
	return optind;
}

/* ---- merging ---- */

struct tally {
	size_t seen, added;
};

static void report(const struct opts *o, const char *src, const char *what, struct tally t)
{
	if (!o->quiet)
		lp_info("%s: %zu pieces%s: %zu added, %zu already present",
			src, t.seen, what, t.added, t.seen - t.added);
}

/* A BPE base takes pieces from any model: added pieces score 0, above
 * every merge rank, so they are merged first (Chinese-LLaMA: LLaMA's BPE
 * model + a unigram Chinese model). Any other base takes pieces only from
 * models of its own type; a unigram base with a BPE extra is most often
 * BASE and EXTRA given the wrong way round. */
static int types_mix(int base, int extra)
{
	return base == extra || base == LP_SPM_BPE;
}

static void merge_model(lp_spm_model *out, const char *path, const char *base_path,
			const struct opts *o)
{
	lp_spm_model x;
	lp_spm_model_load(path, &x);
	if (!types_mix(out->model_type, x.model_type) && !o->force)
		lp_die(path, "a %s model, but the base %s is %s, and a %s base takes "
		       "pieces only from %s models (BASE and EXTRA swapped? --force "
		       "merges anyway)", lp_spm_model_type_name(x.model_type), base_path,
		       lp_spm_model_type_name(out->model_type),
		       lp_spm_model_type_name(out->model_type),
		       lp_spm_model_type_name(out->model_type));
	struct tally t = { x.n_pieces, 0 };
	for (size_t i = 0; i < x.n_pieces; i++)
		if (lp_spm_model_add(out, x.pieces[i].str, x.pieces[i].len, o->type) >= 0)
			t.added++;
	char what[64];
	snprintf(what, sizeof what, " (%s)", lp_spm_model_type_name(x.model_type));
	report(o, path, what, t);
	lp_spm_model_free(&x);
}

/* A piece list: one piece a line; empty lines skipped; a trailing \r
 * dropped; spaces become U+2581 when the model escapes whitespace. */
static void merge_list(lp_spm_model *out, const char *path, const struct opts *o)
{
	size_t n;
	char *buf = lp_read_file(path, &n);
	char *piece = lp_malloc(3 * n + 1);
	struct tally t = { 0, 0 };
	size_t lineno = 0;
	for (char *line = buf, *end = buf + n; line < end; lineno++) {
		char *nl = memchr(line, '\n', end - line);
		size_t len = (nl ? nl : end) - line, k = 0;
		char where[64];
		snprintf(where, sizeof where, "line %zu", lineno + 1);
		if (len && line[len - 1] == '\r')
			len--;
		for (size_t i = 0; i < len; i++) {
			if (line[i] == 0)
				lp_die(path, "%s: contains a NUL byte", where);
			if (line[i] == ' ' && out->escape_whitespaces)
				k += (memcpy(piece + k, "\xe2\x96\x81", 3), 3);
			else
				piece[k++] = line[i];
		}
		line = nl ? nl + 1 : end;
		if (!k)
			continue;
		if (!lp_spm_utf8_valid(piece, k))
			lp_die(path, "%s: not valid UTF-8", where);
		t.seen++;
		if (lp_spm_model_add(out, piece, k, o->type) >= 0)
			t.added++;
	}
	report(o, path, "", t);
	free(piece);
	free(buf);
}

int main(int argc, char **argv)
{
	struct opts o;
	lp_init(argv[0]);
	int arg = parse_opts(argc, argv, &o);
	int to_stdout = o.output ? !strcmp(o.output, "-") : !o.hf_dir;
	if (to_stdout && isatty(STDOUT_FILENO))
		lp_usage_error("refusing to write a binary model to a terminal "
			       "(redirect stdout or use -o FILE)");

	const char *base_path = argv[arg];
	lp_spm_model m;
	lp_spm_model_load(base_path, &m);
	size_t before = m.n_pieces;
	if (!o.quiet)
		lp_info("%s: %zu pieces (%s)", base_path, before,
			lp_spm_model_type_name(m.model_type));
	for (int i = arg + 1; i < argc; i++)
		merge_model(&m, argv[i], base_path, &o);
	for (size_t i = 0; i < o.n_pieces; i++)
		merge_list(&m, o.pieces[i], &o);
	if (!o.quiet)
		lp_info("result: %zu pieces (%zu added)", m.n_pieces, m.n_pieces - before);

	if (to_stdout) {
		uint8_t *buf;
		size_t n;
		lp_spm_model_serialize(&m, &buf, &n);
		lp_fwrite(stdout, "stdout", buf, n);
		free(buf);
	} else if (o.output) {
		lp_spm_model_save(&m, o.output);
	}
	if (o.hf_dir)
		lp_spm_write_hf_dir(o.hf_dir, &m, o.max_len);
	free(o.pieces);
	lp_spm_model_free(&m);
	lp_close_stdout();
	return 0;
}
