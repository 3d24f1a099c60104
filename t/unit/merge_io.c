/* merge_io.c: unit tests of lora-merge's writers that need no Python:
 * torch.save's zip and pickle (pth_write.c) read back by zipread and
 * pickle, lp_json_set's edits of config.json, and the atomic directory. */
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/atomic_dir.h"
#include "base/common.h"
#include "base/dtype.h"
#include "formats/json_edit.h"
#include "formats/pickle.h"
#include "formats/pth_write.h"
#include "tap.h"
#include "formats/zipread.h"

struct spec {
	const char *name;
	int dtype, rank;
	uint64_t shape[2];
};

static uint64_t nbytes(const struct spec *s)
{
	uint64_t n = lp_dtype_size(s->dtype);
	for (int i = 0; i < s->rank; i++)
		n *= s->shape[i];
	return n;
}

/* Write specs[0..n) with bytes (i * 7 + j) & 0xff, some in pieces. */
static void write_pth(const char *path, const struct spec *specs, size_t n)
{
	lp_pth_writer *w = lp_pth_writer_new(path);
	for (size_t i = 0; i < n; i++)
		lp_pth_writer_add(w, specs[i].name, specs[i].dtype, specs[i].rank, specs[i].shape);
	long i;
	while ((i = lp_pth_writer_next(w)) >= 0) {
		uint64_t nb = nbytes(&specs[i]);
		uint8_t *b = malloc(nb + 1);
		for (uint64_t j = 0; j < nb; j++)
			b[j] = (uint8_t)(i * 7 + j);
		uint64_t half = nb / 2;
		lp_pth_writer_write(w, b, half);
		lp_pth_writer_write(w, b + half, nb - half);
		free(b);
	}
	lp_pth_writer_close(w);
}

/* Read path back; 1 if every tensor is there with its bytes. */
static int check_pth(const char *path, const char *archive, const struct spec *specs,
		size_t n, int verbose)
{
	size_t len;
	char *data = lp_read_file(path, &len), err[256], name[128];
	lp_zip z;
	int good = 1;
	if (lp_zip_parse(data, len, &z, err, sizeof err)) {
		printf("# zip: %s\n", err);
		free(data);
		return 0;
	}
	snprintf(name, sizeof name, "%s/data.pkl", archive);
	const lp_zip_entry *pk = lp_zip_find(&z, name);
	lp_pk_state_dict sd;
	if (!pk || lp_pk_state_dict_parse(pk->data, pk->size, &sd, err, sizeof err)) {
		printf("# pickle: %s\n", pk ? err : "no data.pkl");
		lp_zip_free(&z);
		free(data);
		return 0;
	}
	good &= sd.n == n;
	for (size_t i = 0; i < z.n && good; i++) {
		good &= lp_zip_check_crc(&z.e[i], err, sizeof err) == 0;
		good &= z.e[i].offset % 64 == 0;
		if (!good && verbose)
			printf("# entry %s: crc or alignment\n", z.e[i].name);
	}
	for (size_t i = 0; i < n && good; i++) {
		const lp_pk_tensor *t = &sd.t[i];
		good &= !strcmp(t->name, specs[i].name) && t->dtype == specs[i].dtype &&
			t->rank == specs[i].rank && t->contiguous && t->offset == 0;
		for (int d = 0; d < t->rank && good; d++)
			good &= t->shape[d] == specs[i].shape[d];
		snprintf(name, sizeof name, "%s/data/%s", archive, t->storage);
		const lp_zip_entry *e = lp_zip_find(&z, name);
		good &= e && e->size == nbytes(&specs[i]);
		for (uint64_t j = 0; good && j < e->size; j++)
			good &= e->data[j] == (uint8_t)(i * 7 + j);
		if (!good && verbose)
			printf("# tensor %zu (%s) differs\n", i, specs[i].name);
	}
	static const char *const small[] = { "version", "byteorder", ".format_version",
		".storage_alignment", ".data/serialization_id" };
	for (size_t i = 0; i < 5 && good; i++) {
		snprintf(name, sizeof name, "%s/%s", archive, small[i]);
		good &= lp_zip_find(&z, name) != NULL;
	}
	lp_pk_state_dict_free(&sd);
	lp_zip_free(&z);
	free(data);
	return good;
}

static void test_pth(const char *dir)
{
	static const struct spec specs[] = {
		{"tok_embeddings.weight", LP_BF16, 2, {5, 3}},
		{"layers.0.attention.wq.weight", LP_F16, 2, {3, 3}},
		{"norm.weight", LP_F32, 1, {3}},
		{"empty", LP_F32, 2, {0, 4}},
		{"big", LP_F32, 2, {300, 70}},      /* ints past BININT1 and BININT2 */
	};
	char path[512];
	snprintf(path, sizeof path, "%s/consolidated.00.pth", dir);
	write_pth(path, specs, 5);
	ok(check_pth(path, "consolidated.00", specs, 5, 1),
			"pth: five tensors read back by zipread and pickle, CRCs, 64-byte alignment");

	/* over 1000 entries: SETITEMS in batches, LONG_BINPUT memo indices */
	size_t n = 1100;
	struct spec *many = calloc(n, sizeof *many);
	char (*names)[32] = calloc(n, sizeof *names);
	for (size_t i = 0; i < n; i++) {
		snprintf(names[i], sizeof names[i], "t%zu", i);
		many[i] = (struct spec){ names[i], i % 2 ? LP_BF16 : LP_F32, 1, {i % 5 + 1} };
	}
	snprintf(path, sizeof path, "%s/many.pth", dir);
	write_pth(path, many, n);
	ok(check_pth(path, "many", many, n, 1), "pth: 1100 tensors");
	free(many);
	free(names);

	/* one tensor: SETITEM, no MARK */
	snprintf(path, sizeof path, "%s/one.bin", dir);
	write_pth(path, specs + 2, 1);
	ok(check_pth(path, "one", specs + 2, 1, 1), "pth: a dict of one tensor");

	uint8_t *pkl;
	size_t npkl;
	char *nm[1] = { (char *)"a" };
	int dt[1] = { LP_F32 }, rk[1] = { 1 };
	uint64_t sh[1][LP_PTH_MAX_RANK] = { { 2 } };
	lp_pth_pickle_state_dict(nm, dt, rk, (const uint64_t (*)[LP_PTH_MAX_RANK])sh, 1, &pkl,
			&npkl);
	ok(npkl > 4 && pkl[0] == 0x80 && pkl[1] == 2 && pkl[npkl - 1] == '.' &&
			pkl[npkl - 2] == 's', "pickle: protocol 2, one SETITEM, STOP");
	free(pkl);
}

static int set_is(const char *json, const char *key, const char *val, const char *want)
{
	char err[128];
	char *got = lp_json_set(json, key, val, err, sizeof err);
	int good = got ? want && !strcmp(got, want) : !want;
	if (!good)
		printf("# lp_json_set(%s, %s): got %s\n", json, key, got ? got : err);
	free(got);
	return good;
}

static void test_json(void)
{
	ok(set_is("{\n  \"a\": 1,\n  \"vocab_size\": 32000,\n  \"z\": 1e-06\n}\n", "vocab_size",
				"49953",
				"{\n  \"a\": 1,\n  \"vocab_size\": 49953,\n  \"z\": 1e-06\n}\n"),
			"json: a value replaced, every other byte kept");
	ok(set_is("{\n  \"a\": {\"vocab_size\": 3},\n  \"b\": \"}\\\"\"\n}", "vocab_size", "7",
				"{\n  \"a\": {\"vocab_size\": 3},\n  \"b\": \"}\\\"\",\n  \"vocab_size\": 7\n}"),
			"json: a nested key is not the top-level one; added with the indentation");
	ok(set_is("{}", "dtype", "\"bfloat16\"", "{\"dtype\": \"bfloat16\"}"),
			"json: added to an empty object");
	ok(set_is("{\"x\":[1,{\"y\":2}],\"dtype\":\"float16\"}", "dtype", "\"float32\"",
				"{\"x\":[1,{\"y\":2}],\"dtype\":\"float32\"}"),
			"json: compact text");
	ok(set_is("[1, 2]", "a", "1", NULL) && set_is("{\"a\": ", "a", "1", NULL) &&
			set_is("{} {}", "a", "1", NULL), "json: not one object is refused");
}

static int count_entries(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	int n = 0;
	struct dirent *e;
	while (d && (e = readdir(d)))
		n += !strncmp(e->d_name, prefix, strlen(prefix));
	if (d)
		closedir(d);
	return n;
}

static void test_atomic_dir(const char *dir)
{
	char out[512], file[600];
	snprintf(out, sizeof out, "%s/model", dir);
	lp_atomic_dir *d = lp_atomic_dir_create(out, 0);
	char *p = lp_atomic_dir_path(d, "config.json");
	FILE *f = fopen(p, "w");
	fputs("{}\n", f);
	fclose(f);
	struct stat st;
	ok(stat(out, &st) != 0 && count_entries(dir, ".model.tmp.") == 1,
			"atomic dir: nothing under the real name before commit");
	lp_atomic_dir_commit(d);
	snprintf(file, sizeof file, "%s/config.json", out);
	ok(stat(file, &st) == 0 && count_entries(dir, ".model.tmp.") == 0,
			"atomic dir: renamed whole on commit");
	free(p);

	/* a child that dies on an error leaves nothing */
	snprintf(out, sizeof out, "%s/failed", dir);
	pid_t pid = fork();
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);
		dup2(devnull, 2);
		lp_atomic_dir *c = lp_atomic_dir_create(out, 0);
		char *q = lp_atomic_dir_path(c, "x");
		FILE *g = fopen(q, "w");
		fputs("partial", g);
		fclose(g);
		lp_die(NULL, "on purpose");
	}
	int status;
	waitpid(pid, &status, 0);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 1 && stat(out, &st) != 0 &&
			count_entries(dir, ".failed.tmp.") == 0,
			"atomic dir: lp_die removes the temporary directory");
}

static volatile sig_atomic_t got_term;
static void on_term(int sig)
{
	(void)sig;
	got_term = 1;
}

/* A program that answers SIGTERM by finishing its output (lora-train's
 * checkpoint) keeps a LP_ATOMIC_DIR_NO_SIGNALS directory through the
 * signal; a plain one is removed by it, and the program's own handler
 * still runs after. Run in a child that has made no atomic directory yet,
 * so the plain one hooks the signals over the child's handler. */
static void test_atomic_dir_signals(const char *dir)
{
	char kept[512], gone[512], file[600];
	snprintf(kept, sizeof kept, "%s/kept", dir);
	snprintf(gone, sizeof gone, "%s/gone", dir);
	pid_t pid = fork();
	if (pid == 0) {
		struct sigaction sa;
		struct stat st;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_term;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGTERM, &sa, NULL);
		lp_atomic_dir *k = lp_atomic_dir_create_flags(kept,
				LP_ATOMIC_DIR_FORCE | LP_ATOMIC_DIR_NO_SIGNALS);
		raise(SIGTERM);
		int survived = got_term && stat(lp_atomic_dir_tmp(k), &st) == 0;
		char *q = lp_atomic_dir_path(k, "x");
		FILE *g = fopen(q, "w");
		fputs("whole", g);
		fclose(g);
		free(q);
		lp_atomic_dir_commit(k);
		got_term = 0;
		lp_atomic_dir *c = lp_atomic_dir_create(gone, 0);
		char *tmp = lp_strdup(lp_atomic_dir_tmp(c));
		raise(SIGTERM);
		int removed = got_term && stat(tmp, &st) != 0;
		_exit(survived && removed ? 0 : 3);
	}
	int status;
	struct stat st;
	waitpid(pid, &status, 0);
	snprintf(file, sizeof file, "%s/x", kept);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0 && stat(file, &st) == 0 &&
			count_entries(dir, ".kept.tmp.") == 0 && stat(gone, &st) != 0,
			"atomic dir: a no-signals directory outlives SIGTERM, a plain one does not");
}

int main(void)
{
	lp_init("merge_io");
	char tmpl[] = "/tmp/merge_io.XXXXXX";
	char *dir = mkdtemp(tmpl);
	if (!dir)
		return 1;
	test_pth(dir);
	test_json();
	test_atomic_dir_signals(dir);  /* first: before any directory hooks signals */
	test_atomic_dir(dir);
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", dir);
	return tap_done();
}
