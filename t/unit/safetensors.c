/* safetensors.c: unit tests of the safetensors reader and writer.
 *
 *   safetensors                    run the tests (TAP)
 *   safetensors dump FILE          print tensors sorted by name, one a line:
 *                                  "name<TAB>DTYPE<TAB>[shape]<TAB>hex bytes",
 *                                  then "meta<TAB>key<TAB>value" lines by key
 *   safetensors write FILE         every dtype, ranks 0-4, an empty tensor,
 *                                  three metadata keys, in the order declared
 *   safetensors write-sorted FILE  the dtypes numpy has, {"format": "pt"},
 *                                  ordered like safetensors' serializer
 * The modes serve the cross-checks against Python in t0020-safetensors.t. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/common.h"
#include "formats/safetensors.h"
#include "tap.h"

/* ---- fixtures ---- */

struct spec {
	const char *name;
	int dtype, rank;
	uint64_t shape[4];
};

static const struct spec all_types[] = {
	{"scalar.f32", LP_F32, 0, {0}},
	{"w.f16", LP_F16, 2, {2, 3}},
	{"model.layers.0.self_attn.q_proj.lora_A.weight", LP_BF16, 2, {4, 3}},
	{"r3.i32", LP_I32, 3, {2, 1, 3}},
	{"r4.i64", LP_I64, 4, {1, 2, 1, 2}},
	{"u8", LP_U8, 1, {5}},
	{"f64", LP_F64, 1, {2}},
	{"i8", LP_I8, 1, {3}},
	{"i16", LP_I16, 2, {3, 1}},
	{"u16", LP_U16, 1, {1}},
	{"u32", LP_U32, 1, {2}},
	{"u64", LP_U64, 1, {1}},
	{"bool", LP_BOOL, 1, {4}},
	{"empty", LP_F32, 2, {3, 0}},
	{"quote\"back\\slash/é名", LP_F32, 1, {1}},
};
#define N_ALL (sizeof all_types / sizeof *all_types)

/* numpy has no bfloat16: the same set without it, for save_file(). */
static const struct spec numpy_types[] = {
	{"b", LP_F32, 2, {2, 2}}, {"a", LP_F32, 1, {3}}, {"scalar", LP_F64, 0, {0}},
	{"i64", LP_I64, 1, {2}}, {"u64", LP_U64, 1, {1}}, {"h", LP_F16, 1, {3}},
	{"u8", LP_U8, 1, {5}}, {"i8", LP_I8, 3, {1, 1, 1}}, {"mask", LP_BOOL, 1, {3}},
	{"i32", LP_I32, 1, {1}}, {"u32", LP_U32, 1, {1}}, {"i16", LP_I16, 1, {1}},
	{"u16", LP_U16, 1, {2}}, {"none", LP_I8, 1, {0}}, {"q\"\\é\t\x01", LP_F32, 1, {1}},
};
#define N_NUMPY (sizeof numpy_types / sizeof *numpy_types)

static uint64_t spec_bytes(const struct spec *s)
{
	uint64_t n = lp_dtype_size(s->dtype);
	for (int i = 0; i < s->rank; i++)
		n *= s->shape[i];
	return n;
}

/* Deterministic contents: a byte pattern per tensor, 0/1 for BOOL. */
static uint8_t *spec_data(const struct spec *s, int k)
{
	uint64_t n = spec_bytes(s);
	uint8_t *p = lp_malloc(n);
	for (uint64_t i = 0; i < n; i++)
		p[i] = s->dtype == LP_BOOL ? (i + k) % 2 : (uint8_t)(i * 37 + k * 11 + 1);
	return p;
}

static void write_specs(const char *path, const struct spec *s, size_t n, int sorted)
{
	uint8_t **data = lp_calloc(n, sizeof *data);
	lp_st_writer *w = lp_st_writer_new(path);
	if (sorted) {
		lp_st_writer_meta(w, "format", "pt");
	} else {
		lp_st_writer_meta(w, "format", "pt");
		lp_st_writer_meta(w, "note", "tab\there \"quoted\" é\x01");
		lp_st_writer_meta(w, "empty", "");
	}
	for (size_t i = 0; i < n; i++) {
		data[i] = spec_data(&s[i], i);
		lp_st_writer_add(w, s[i].name, s[i].dtype, s[i].rank, s[i].shape, data[i]);
	}
	if (sorted)
		lp_st_writer_sort(w);
	lp_st_writer_close(w);
	for (size_t i = 0; i < n; i++)
		free(data[i]);
	free(data);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void dump(const char *path)
{
	lp_st_file *f = lp_st_open(path);
	for (size_t i = 0; i < f->n; i++) {
		const lp_st_tensor *t = &f->tensors[f->by_name[i]];
		printf("%s\t%s\t[", t->name, lp_st_dtype_name(t->dtype));
		for (int k = 0; k < t->rank; k++)
			printf("%s%llu", k ? "," : "", (unsigned long long)t->shape[k]);
		printf("]\t");
		for (uint64_t k = 0; k < t->nbytes; k++)
			printf("%02x", ((const uint8_t *)t->data)[k]);
		printf("\n");
	}
	char **keys = lp_malloc((f->nmeta + 1) * sizeof *keys);
	for (size_t i = 0; i < f->nmeta; i++)
		keys[i] = f->meta[2 * i];
	qsort(keys, f->nmeta, sizeof *keys, cmp_str);
	for (size_t i = 0; i < f->nmeta; i++)
		printf("meta\t%s\t%s\n", keys[i], lp_st_meta(f, keys[i]));
	free(keys);
	lp_st_close(f);
}

/* ---- crafted headers ---- */

static uint8_t file[8192];

static size_t craft(const char *json, size_t datalen)
{
	size_t n = strlen(json);
	for (int i = 0; i < 8; i++)
		file[i] = (uint64_t)n >> (8 * i);
	memcpy(file + 8, json, n);
	memset(file + 8 + n, 0, datalen);
	return 8 + n + datalen;
}

static void expect_bad(const char *json, size_t datalen, const char *msg)
{
	lp_st_file f;
	char err[512] = "";
	int rc = lp_st_parse(file, craft(json, datalen), &f, err, sizeof err);
	ok(rc == -1 && strstr(err, msg) && f.n == 0 && !f.tensors,
			"rejected (%s): %s", msg, err);
}

static void expect_good(const char *json, size_t datalen, size_t ntensors, const char *what)
{
	lp_st_file f;
	char err[512] = "";
	int rc = lp_st_parse(file, craft(json, datalen), &f, err, sizeof err);
	ok(rc == 0 && f.n == ntensors, "accepted: %s %s", what, err);
	if (rc == 0)
		lp_st_free(&f);
}

#define T(dt, shape, offs) "{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":" offs "}"

static void test_bad_headers(void)
{
	lp_st_file f;
	char err[512];
	memcpy(file, "\x05\0\0", 3);
	ok(lp_st_parse(file, 3, &f, err, sizeof err) == -1 && strstr(err, "too short"),
			"3-byte file: %s", err);
	memcpy(file, "\xff\xff\xff\xff\xff\xff\xff\xff{}", 10);
	ok(lp_st_parse(file, 10, &f, err, sizeof err) == -1 && strstr(err, "exceeds the limit"),
			"huge header length: %s", err);
	size_t n = craft("{\"a\":" T("F32", "[1]", "[0,4]") "}", 4);
	ok(lp_st_parse(file, 30, &f, err, sizeof err) == -1 && strstr(err, "past the end"),
			"truncated header: %s", err);
	ok(lp_st_parse(file, n - 1, &f, err, sizeof err) == -1 && strstr(err, "outside"),
			"truncated data: %s", err);
	expect_bad("", 0, "start with '{'");
	expect_bad(" {}", 0, "start with '{'");
	expect_bad("[]", 0, "start with '{'");
	expect_bad("{\"a\xff\":1}", 0, "not valid UTF-8 at byte 11");
	expect_bad("{\"\xed\xa0\x80\":1}", 0, "not valid UTF-8");   /* a surrogate */
	expect_bad("{\"\xc0\xaf\":1}", 0, "not valid UTF-8");       /* overlong '/' */
	expect_bad("{\"a\":", 0, "not valid JSON");
	expect_bad("{\"a\":{}} {}", 0, "not valid JSON");
	expect_bad("{\"a\":[1]\"b\"}", 0, "a string follows a value");
	expect_bad("{\"a\":{\"dt\"\"x\"}}", 0, "a string follows a value");
	expect_bad("{\"a\":\"\\", 0, "not valid JSON");
	expect_bad("{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]}", 0, "nests deeper");
	expect_bad("{\"a\":" T("F32", "[1]", "[0,4]") ",\"a\":" T("F32", "[1]", "[0,4]") "}", 4,
			"duplicate key 'a'");
	expect_bad("{\"b\":" T("I8", "[1]", "[0,1]") ",\"\\u0062\":" T("I8", "[1]", "[1,2]") "}",
			2, "duplicate key 'b'");
	expect_bad("{\"a\":1}", 0, "tensor 'a': entry is not an object");
	expect_bad("{\"a\":{\"shape\":[],\"data_offsets\":[0,4]}}", 4, "tensor 'a': dtype missing");
	expect_bad("{\"a\":" T("f32", "[1]", "[0,4]") "}", 4, "unsupported dtype 'f32'");
	expect_bad("{\"a\":" T("F8_E4M3", "[1]", "[0,1]") "}", 1, "unsupported dtype 'F8_E4M3'");
	expect_bad("{\"a\":" T("F32", "1", "[0,4]") "}", 4, "tensor 'a': shape missing");
	expect_bad("{\"a\":" T("F32", "[-1]", "[0,4]") "}", 4, "shape[0] is not a non-negative");
	expect_bad("{\"a\":" T("F32", "[1,1.5]", "[0,4]") "}", 4, "shape[1] is not");
	expect_bad("{\"a\":" T("F32", "[\"1\"]", "[0,4]") "}", 4, "shape[0] is not");
	expect_bad("{\"a\":" T("F32", "[1,1,1,1,1,1,1,1,1]", "[0,4]") "}", 4, "rank 9 exceeds 8");
	expect_bad("{\"a\":" T("F32", "[4503599627370496,4503599627370496]", "[0,4]") "}", 4,
			"tensor 'a': shape overflows");
	expect_bad("{\"a\":" T("F32", "[4503599627370496,2048]", "[0,4]") "}", 4,
			"tensor 'a': shape overflows");
	expect_bad("{\"a\":" T("F32", "[1]", "[0]") "}", 4, "not [begin, end]");
	expect_bad("{\"a\":" T("F32", "[1]", "[0,4,4]") "}", 4, "not [begin, end]");
	expect_bad("{\"a\":" T("F32", "[1]", "[-4,0]") "}", 4, "not [begin, end]");
	expect_bad("{\"a\":" T("F32", "[1]", "[4,0]") "}", 4, "[4, 0] do not hold the 4 bytes");
	expect_bad("{\"a\":" T("F32", "[2]", "[0,4]") "}", 4, "[0, 4] do not hold the 8 bytes");
	expect_bad("{\"a\":" T("F32", "[1]", "[0,4]") "}", 3, "outside the data area of 3");
	expect_bad("{\"a\":" T("F32", "[2]", "[0,8]") ",\"b\":" T("F32", "[1]", "[4,8]") "}", 8,
			"tensor 'b': data [4, 8) overlaps tensor 'a'");
	expect_bad("{\"a\":" T("F32", "[1]", "[4,8]") "}", 8, "'a': bytes [0, 4) before it");
	expect_bad("{\"a\":" T("F32", "[1]", "[0,4]") "}", 8, "bytes [4, 8) at the end");
	expect_bad("{\"e\":" T("F32", "[0]", "[4,4]") ",\"b\":" T("F32", "[2]", "[0,8]") "}", 8,
			"'e': data [4, 4) overlaps tensor 'b'");
	expect_bad("{}", 1, "bytes [0, 1) at the end");
	expect_bad("{\"__metadata__\":\"x\"}", 0, "__metadata__ is not an object");
	expect_bad("{\"__metadata__\":{\"k\":1}}", 0, "value of 'k' is not a string");
	expect_bad("{\"__metadata__\":{\"k\\u0000\":\"v\"}}", 0, "a key contains a NUL");
	expect_bad("{\"a\\u0000b\":" T("F32", "[1]", "[0,4]") "}", 4, "name contains a NUL");

	expect_good("{}", 0, 0, "no tensors");
	expect_good("{\"__metadata__\":null}  \n", 0, 0, "null metadata, trailing space");
	expect_good("{\"a\":{\"x\":[1],\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[0,1]}}   ",
			1, 1, "unknown key in an entry");
	expect_good("{\"e\":" T("F32", "[0]", "[8,8]") ",\"z\":" T("F32", "[0]", "[0,0]")
			",\"b\":" T("F32", "[2]", "[0,8]") "}", 8, 3, "empty tensors at both ends");
}

/* ---- round trips ---- */

static char dir[256];

static void check_specs(const char *path, const struct spec *s, size_t n, int in_order)
{
	lp_st_file *f = lp_st_open(path);
	ok(f->n == n, "%s: %zu tensors", path, f->n);
	ok(f->header_len % 8 == 0 && (8 + f->header_len) % 8 == 0, "header padded to 8");
	int all = 1;
	for (size_t i = 0; i < n; i++) {
		const lp_st_tensor *t = lp_st_find(f, s[i].name);
		uint8_t *want = spec_data(&s[i], i);
		int good = t && t->dtype == s[i].dtype && t->rank == s[i].rank &&
			!memcmp(t->shape, s[i].shape, s[i].rank * sizeof *t->shape) &&
			t->nbytes == spec_bytes(&s[i]) && !memcmp(t->data, want, t->nbytes) &&
			(!in_order || t == &f->tensors[i]);
		if (!good)
			ok(0, "tensor '%s' read back", s[i].name);
		all &= good;
		free(want);
	}
	ok(all, "every tensor read back: dtype, rank, shape, bytes%s",
			in_order ? ", file order" : "");
	lp_st_close(f);
}

static void test_round_trip(void)
{
	char path[512];
	snprintf(path, sizeof path, "%s/all.safetensors", dir);
	write_specs(path, all_types, N_ALL, 0);
	check_specs(path, all_types, N_ALL, 1);
	lp_st_file *f = lp_st_open(path);
	ok(lp_st_meta(f, "format") && !strcmp(lp_st_meta(f, "format"), "pt"), "metadata format");
	ok(lp_st_meta(f, "note") && !strcmp(lp_st_meta(f, "note"), "tab\there \"quoted\" é\x01"),
			"metadata with escapes");
	ok(lp_st_meta(f, "empty") && !*lp_st_meta(f, "empty") && !lp_st_meta(f, "nope"),
			"empty metadata value; missing key");
	ok(!lp_st_find(f, "nope") && !lp_st_find(f, "") && !lp_st_find(f, "w.f1"),
			"lookups of absent names");
	const lp_st_tensor *e = lp_st_find(f, "empty"), *s = lp_st_find(f, "scalar.f32");
	ok(e && e->numel == 0 && e->nbytes == 0 && e->begin == e->end, "empty tensor");
	ok(s && s->rank == 0 && s->numel == 1 && s->nbytes == 4, "rank-0 tensor");
	const lp_st_tensor *u8 = lp_st_find(f, "u8"), *f64 = lp_st_find(f, "f64");
	ok(u8 && f64 && f64->begin == u8->end, "offsets contiguous in declared order");
	ok(f64 && lp_st_aligned(u8) && !lp_st_aligned(f64),
			"f64 after 5 bytes of u8 is unaligned, and reported so");
	lp_st_close(f);

	snprintf(path, sizeof path, "%s/sorted.safetensors", dir);
	write_specs(path, all_types, N_ALL, 1);
	check_specs(path, all_types, N_ALL, 0);
	f = lp_st_open(path);
	int aligned = 1;
	for (size_t i = 0; i < f->n; i++)
		aligned &= lp_st_aligned(&f->tensors[i]);
	ok(aligned && f->tensors[0].dtype == LP_U64 && f->tensors[f->n - 1].dtype == LP_BOOL,
			"sorted: widest dtype first, every tensor aligned");
	lp_st_close(f);
}

/* Byte-exact output known from safetensors 0.8 save_file(). */
static void test_reference_bytes(void)
{
	static const char want1[] = "8\0\0\0\0\0\0\0{\"x\":" T("F32", "[1]", "[0,4]") "}  "
		"\0\0\x80?";
	static const char want2[] = "\x08\0\0\0\0\0\0\0{}      ";
	char path[512];
	size_t n;
	float one = 1;
	snprintf(path, sizeof path, "%s/ref.safetensors", dir);
	lp_st_writer *w = lp_st_writer_new(path);
	lp_st_writer_add(w, "x", LP_F32, 1, (uint64_t[]){1}, &one);
	lp_st_writer_close(w);
	char *got = lp_read_file(path, &n);
	ok(n == sizeof want1 - 1 && !memcmp(got, want1, n), "one f32 as save_file writes it");
	free(got);
	w = lp_st_writer_new(path);
	lp_st_writer_close(w);
	got = lp_read_file(path, &n);
	ok(n == sizeof want2 - 1 && !memcmp(got, want2, n), "no tensors as save_file writes it");
	free(got);
}

static void test_streaming(void)
{
	char path[512];
	snprintf(path, sizeof path, "%s/stream.safetensors", dir);
	float a[6] = {1, 2, 3, 4, 5, 6}, c[2] = {7, 8};
	int64_t b[2] = {-1, 1};
	lp_st_writer *w = lp_st_writer_new(path);
	lp_st_writer_add(w, "a", LP_F32, 2, (uint64_t[]){2, 3}, NULL);
	lp_st_writer_add(w, "held", LP_I64, 1, (uint64_t[]){2}, b);
	lp_st_writer_add(w, "none", LP_F32, 1, (uint64_t[]){0}, NULL);
	lp_st_writer_add(w, "c", LP_F32, 1, (uint64_t[]){2}, NULL);
	const char *n1 = lp_st_writer_next(w);
	ok(n1 && !strcmp(n1, "a"), "first streamed tensor is 'a'");
	lp_st_writer_write(w, a, 8);
	lp_st_writer_write(w, a + 2, 16);
	const char *n2 = lp_st_writer_next(w);
	ok(n2 && !strcmp(n2, "c"), "held and empty tensors are skipped: next is 'c'");
	lp_st_writer_write(w, c, sizeof c);
	ok(lp_st_writer_next(w) == NULL, "then nothing is left");
	lp_st_writer_close(w);
	lp_st_file *f = lp_st_open(path);
	const lp_st_tensor *ta = lp_st_get(f, "a"), *tb = lp_st_get(f, "held"),
		*tc = lp_st_get(f, "c");
	ok(f->n == 4 && !memcmp(ta->data, a, sizeof a) && !memcmp(tb->data, b, sizeof b) &&
			!memcmp(tc->data, c, sizeof c) && lp_st_get(f, "none")->nbytes == 0,
			"streamed file reads back");
	lp_st_close(f);
}

/* ---- errors that die: run in a child, check status and message ---- */

/* made: fn makes the file itself (no check that nothing is left). */
static void expect_death(void (*fn)(const char *), const char *msg, const char *what, int made)
{
	char path[512], out[512];
	snprintf(path, sizeof path, "%s/die.safetensors", dir);
	snprintf(out, sizeof out, "%s/stderr", dir);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		if (!freopen(out, "w", stderr))
			_exit(99);
		fn(path);
		_exit(0);
	}
	int st;
	waitpid(pid, &st, 0);
	char *err = lp_read_file(out, NULL);
	int dead = WIFEXITED(st) && WEXITSTATUS(st) == 1;
	err[strcspn(err, "\n")] = 0;
	ok(dead && strstr(err, msg), "%s: dies with '%s': %s", what, msg, err);
	free(err);
	unlink(out);
	if (made) {
		unlink(path);
		return;
	}
	/* nothing may be left behind, temporaries included */
	DIR *d = opendir(dir);
	struct dirent *e;
	int stray = 0;
	while ((e = readdir(d)))
		stray += !!strstr(e->d_name, "die.safetensors");
	closedir(d);
	ok(!stray, "%s: no file or temporary left behind", what);
}

static const uint64_t two[] = {2};
static const float zeros[4];

static void die_dup(const char *p)
{
	lp_st_writer *w = lp_st_writer_new(p);
	lp_st_writer_add(w, "x", LP_F32, 1, two, zeros);
	lp_st_writer_add(w, "x", LP_F32, 1, two, zeros);
}
static void die_meta_name(const char *p)
{
	lp_st_writer_add(lp_st_writer_new(p), "__metadata__", LP_F32, 1, two, zeros);
}
static void die_dtype(const char *p) { lp_st_writer_add(lp_st_writer_new(p), "x", 99, 0, two, zeros); }
static void die_rank(const char *p) { lp_st_writer_add(lp_st_writer_new(p), "x", LP_F32, 9, two, zeros); }
static void die_utf8(const char *p) { lp_st_writer_add(lp_st_writer_new(p), "x\xff", LP_F32, 1, two, zeros); }
static void die_overflow(const char *p)
{
	uint64_t big[] = {1ull << 32, 1ull << 32};
	lp_st_writer_add(lp_st_writer_new(p), "big", LP_F32, 2, big, NULL);
}
static void die_meta_twice(const char *p)
{
	lp_st_writer *w = lp_st_writer_new(p);
	lp_st_writer_meta(w, "format", "pt");
	lp_st_writer_meta(w, "format", "np");
}
static void die_too_much(const char *p)
{
	lp_st_writer *w = lp_st_writer_new(p);
	lp_st_writer_add(w, "x", LP_F32, 1, two, NULL);
	lp_st_writer_write(w, zeros, 12);
}
static void die_after_last(const char *p)
{
	lp_st_writer *w = lp_st_writer_new(p);
	lp_st_writer_add(w, "x", LP_F32, 1, two, zeros);
	lp_st_writer_write(w, zeros, 4);
}
static void die_short(const char *p)
{
	lp_st_writer *w = lp_st_writer_new(p);
	lp_st_writer_add(w, "x", LP_F32, 1, two, NULL);
	lp_st_writer_write(w, zeros, 4);
	lp_st_writer_close(w);
}
static void die_late_add(const char *p)
{
	lp_st_writer *w = lp_st_writer_new(p);
	lp_st_writer_add(w, "x", LP_F32, 1, two, zeros);
	lp_st_writer_next(w);
	lp_st_writer_add(w, "y", LP_F32, 1, two, zeros);
}
static void die_open_missing(const char *p) { lp_st_open(p); }
static void die_open_dir(const char *p) { (void)p; lp_st_open(dir); }
static void die_open_bad(const char *p)
{
	FILE *f = fopen(p, "wb");
	size_t n = craft("{\"w\":" T("F16", "[3]", "[0,4]") "}", 4);
	fwrite(file, 1, n, f);
	fclose(f);
	lp_st_open(p);
}
static void die_get(const char *p)
{
	write_specs(p, numpy_types, 2, 0);
	lp_st_get(lp_st_open(p), "missing");
}

static void test_deaths(void)
{
	expect_death(die_dup, "die.safetensors: tensor 'x' given twice", "duplicate name", 0);
	expect_death(die_meta_name, "'__metadata__' cannot name a tensor", "reserved name", 0);
	expect_death(die_dtype, "tensor 'x': unknown dtype 99", "bad dtype", 0);
	expect_death(die_rank, "tensor 'x': rank 9 is not in [0, 8]", "bad rank", 0);
	expect_death(die_utf8, "is not valid UTF-8", "name not UTF-8", 0);
	expect_death(die_overflow, "tensor 'big': shape overflows", "size overflow", 0);
	expect_death(die_meta_twice, "metadata key 'format' given twice", "metadata key twice", 0);
	expect_death(die_too_much, "tensor 'x': 12 bytes written where 8 remain", "too many bytes", 0);
	expect_death(die_after_last, "4 bytes written after the last tensor", "bytes past the end", 0);
	expect_death(die_short, "tensor 'x': 4 of its 8 bytes written", "incomplete tensor", 0);
	expect_death(die_late_add, "tensor 'y' declared after data was written", "late add", 0);
	expect_death(die_open_missing, "die.safetensors: No such file", "open missing file", 1);
	expect_death(die_open_dir, "not a regular file", "open a directory", 1);
	expect_death(die_open_bad, "die.safetensors: tensor 'w': data_offsets [0, 4] do not hold "
			"the 6 bytes", "open a bad file", 1);
	expect_death(die_get, "die.safetensors: no tensor 'missing'", "get a missing tensor", 1);
}

int main(int argc, char **argv)
{
	lp_init(argv[0]);
	if (argc == 3 && !strcmp(argv[1], "dump")) {
		dump(argv[2]);
		lp_close_stdout();
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "write")) {
		write_specs(argv[2], all_types, N_ALL, 0);
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "write-sorted")) {
		write_specs(argv[2], numpy_types, N_NUMPY, 1);
		return 0;
	}
	if (argc != 1)
		lp_usage_error("usage: safetensors [dump|write|write-sorted FILE]");
	snprintf(dir, sizeof dir, "%s/lp-st.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(dir))
		lp_die(dir, "cannot create");
	test_bad_headers();
	test_round_trip();
	test_reference_bytes();
	test_streaming();
	test_deaths();
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		ok(0, "removing %s", dir);
	return tap_done();
}
