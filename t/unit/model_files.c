/* model_files.c: unit tests of the model readers' pure parts: CRC-32, the
 * zip reader (stored and zip64 archives built here), the pickle machine
 * (state dicts and hostile pickles assembled here opcode by opcode),
 * config.json / params.json / adapter_config.json parsing, rotary
 * frequencies, the q/k permutation and the Meta <-> HF names. The same code
 * against real files written by torch, transformers and PEFT is in
 * t0400-model-files.t. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/adapter_files.h"
#include "model/arch.h"
#include "base/common.h"
#include "model/model_config.h"
#include "model/model_files.h"
#include "formats/pickle.h"
#include "tap.h"
#include "formats/zipread.h"

/* ---- a byte buffer ---- */

typedef struct {
	uint8_t *p;
	size_t n, cap;
} buf;

static void put(buf *b, const void *p, size_t n)
{
	lp_grow((void **)&b->p, &b->cap, b->n + n, 1);
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void put_le(buf *b, uint64_t v, int k)
{
	for (int i = 0; i < k; i++) {
		uint8_t c = v >> (8 * i);
		put(b, &c, 1);
	}
}

static void put_s(buf *b, const char *s) { put(b, s, strlen(s)); }

/* ---- pickles, opcode by opcode ---- */

static void pk_op(buf *b, int op) { put_le(b, op, 1); }

static void pk_str(buf *b, const char *s)
{
	pk_op(b, 'X');
	put_le(b, strlen(s), 4);
	put_s(b, s);
}

static void pk_int(buf *b, int v)
{
	pk_op(b, 'K');
	put_le(b, v, 1);
}

static void pk_global(buf *b, const char *mod, const char *name)
{
	pk_op(b, 'c');
	put_s(b, mod);
	put_s(b, "\n");
	put_s(b, name);
	put_s(b, "\n");
}

/* _rebuild_tensor_v2(('storage', torch.FloatStorage, key, 'cpu', numel),
 *                    offset, (rows, cols), (s0, s1), False, OrderedDict()) */
static void pk_tensor(buf *b, const char *key, int numel, int offset, int rows, int cols,
		int s0, int s1)
{
	pk_global(b, "torch._utils", "_rebuild_tensor_v2");
	pk_op(b, '(');
	pk_op(b, '(');
	pk_str(b, "storage");
	pk_global(b, "torch", "FloatStorage");
	pk_str(b, key);
	pk_str(b, "cpu");
	pk_int(b, numel);
	pk_op(b, 't');
	pk_op(b, 'Q');
	pk_int(b, offset);
	pk_int(b, rows);
	pk_int(b, cols);
	pk_op(b, 0x86);
	pk_int(b, s0);
	pk_int(b, s1);
	pk_op(b, 0x86);
	pk_op(b, 0x89);
	pk_global(b, "collections", "OrderedDict");
	pk_op(b, ')');
	pk_op(b, 'R');
	pk_op(b, 't');
	pk_op(b, 'R');
}

/* {"a": (2, 3) view at 0, "b": its transpose (3, 2) at offset 1}, as
 * torch.save writes it, with memo use and a BUILD of _metadata. */
static buf good_pickle(void)
{
	buf b = {0};
	pk_op(&b, 0x80);
	put_le(&b, 2, 1);
	pk_global(&b, "collections", "OrderedDict");
	pk_op(&b, 'q');
	put_le(&b, 0, 1);
	pk_op(&b, ')');
	pk_op(&b, 'R');
	pk_op(&b, '(');
	pk_str(&b, "a");
	pk_tensor(&b, "0", 8, 0, 2, 3, 3, 1);
	pk_str(&b, "b");
	pk_tensor(&b, "0", 8, 1, 3, 2, 1, 3);
	pk_op(&b, 'u');
	pk_op(&b, '}');
	pk_str(&b, "_metadata");
	pk_op(&b, '}');
	pk_op(&b, 's');
	pk_op(&b, 'b');
	pk_op(&b, '.');
	return b;
}

static int pk_fails(const buf *b, const char *want)
{
	lp_pk_state_dict sd;
	char err[512] = "";
	int rc = lp_pk_state_dict_parse(b->p, b->n, &sd, err, sizeof err);
	if (rc == 0) {
		lp_pk_state_dict_free(&sd);
		printf("#   parsed, but should fail with '%s'\n", want);
		return 0;
	}
	if (!strstr(err, want)) {
		printf("#   error '%s', expected '%s'\n", err, want);
		return 0;
	}
	return 1;
}

static void test_pickle(void)
{
	buf b = good_pickle();
	lp_pk_state_dict sd;
	char err[512];
	int rc = lp_pk_state_dict_parse(b.p, b.n, &sd, err, sizeof err);
	ok(rc == 0, "a torch-style state dict parses (%s)", rc ? err : "ok");
	if (rc == 0) {
		ok(sd.n == 2 && !strcmp(sd.t[0].name, "a") && !strcmp(sd.t[1].name, "b"),
				"two tensors, in order");
		ok(sd.t[0].dtype == LP_F32 && !strcmp(sd.t[0].storage, "0") &&
				sd.t[0].storage_numel == 8 && sd.t[0].rank == 2 &&
				sd.t[0].shape[0] == 2 && sd.t[0].shape[1] == 3 && sd.t[0].contiguous,
				"first: f32 (2, 3) contiguous on storage 0 of 8");
		ok(sd.t[1].offset == 1 && !sd.t[1].contiguous && sd.t[1].numel == 6,
				"second: a strided view at offset 1");
		lp_pk_state_dict_free(&sd);
	}
	/* every truncation fails cleanly with a message */
	int clean = 1;
	for (size_t k = 0; k < b.n; k++) {
		err[0] = 0;
		if (lp_pk_state_dict_parse(b.p, k, &sd, err, sizeof err) == 0 || !err[0])
			clean = 0;
	}
	ok(clean, "each of the %zu truncations is an error with a message", b.n);
	free(b.p);

	buf h = {0};
	pk_op(&h, 0x80);
	put_le(&h, 2, 1);
	pk_global(&h, "os", "system");
	pk_str(&h, "touch PWNED");
	pk_op(&h, 0x85);
	pk_op(&h, 'R');
	pk_op(&h, '.');
	ok(pk_fails(&h, "refusing global 'os system' at byte 2"), "os.system is refused");
	h.n = 0;
	pk_op(&h, 0x80);
	put_le(&h, 4, 1);
	pk_op(&h, 0x8c);
	put_le(&h, 8, 1);
	put_s(&h, "builtins");
	pk_op(&h, 0x8c);
	put_le(&h, 4, 1);
	put_s(&h, "eval");
	pk_op(&h, 0x93);
	ok(pk_fails(&h, "refusing global 'builtins eval' at byte 18"),
			"builtins.eval through STACK_GLOBAL is refused");
	h.n = 0;
	pk_global(&h, "torch", "FloatStorage");
	pk_op(&h, ')');
	pk_op(&h, 'R');
	ok(pk_fails(&h, "REDUCE at byte 21: calling 'torch FloatStorage' is not allowed"),
			"REDUCE on a storage type is refused");
	h.n = 0;
	pk_global(&h, "os\nsystem", "y");
	ok(pk_fails(&h, "refusing global 'os system' at byte 0"), "a GLOBAL is read line by line");
	h.n = 0;
	put_s(&h, "(i");
	ok(pk_fails(&h, "opcode INST (0x69) at byte 1 is not supported"), "INST is refused");
	h.n = 0;
	put_le(&h, 0xff, 1);
	ok(pk_fails(&h, "byte 0xff at byte 0 is not a pickle opcode"), "a non-opcode");
	h.n = 0;
	put_s(&h, "h\x05");
	ok(pk_fails(&h, "BINGET at byte 0: memo entry 5 was never set"), "an unset memo entry");
	h.n = 0;
	put_s(&h, "r\xff\xff\xff\x7f");
	ok(pk_fails(&h, "LONG_BINPUT at byte 0: stack underflow"), "memo put on an empty stack");
	h.n = 0;
	put_s(&h, "N");
	put_s(&h, "r\xff\xff\xff\x7f");
	ok(pk_fails(&h, "memo index 2147483647 is past the limit"), "a huge memo index");
	h.n = 0;
	for (int i = 0; i < 2000; i++)
		pk_op(&h, '(');
	ok(pk_fails(&h, "more than 1024 nested marks"), "mark depth is limited");
	h.n = 0;
	pk_op(&h, 0x80);
	put_le(&h, 6, 1);
	ok(pk_fails(&h, "pickle protocol 6 at byte 0 is not supported"), "protocol 6");
	h.n = 0;
	put_s(&h, "}");
	pk_str(&h, "k");
	put_s(&h, "Ns.");
	ok(pk_fails(&h, "state dict entry 'k' holds a None, not a tensor"), "a non-tensor value");
	h.n = 0;
	put_s(&h, "]");
	pk_str(&h, "k");
	put_s(&h, "a.");
	ok(pk_fails(&h, "the pickle holds a list, not a state dict"), "a list at the top");
	h.n = 0;
	put_s(&h, "}(");
	pk_str(&h, "k");
	pk_tensor(&h, "0", 6, 0, 2, 3, 3, 1);
	pk_str(&h, "k");
	pk_tensor(&h, "0", 6, 0, 2, 3, 3, 1);
	put_s(&h, "u.");
	ok(pk_fails(&h, "state dict entry 'k' appears twice"), "duplicate names");
	h.n = 0;
	put_s(&h, "}");
	pk_str(&h, "k");
	pk_tensor(&h, "0", 5, 0, 2, 3, 3, 1);
	put_s(&h, "s.");
	ok(pk_fails(&h, "lies outside its storage of 5 elements"), "a view past its storage");
	h.n = 0;
	put_s(&h, "\x8a\x02\xff\xffN.");
	ok(pk_fails(&h, "the pickle holds a None"), "LONG1 parses, STOP pops the top");
	free(h.p);
}

/* ---- zips ---- */

struct zent { const char *name; const void *data; size_t n; };

/* A zip of stored entries; zip64 records and fields when asked; method
 * (0 stored) written into every entry. */
static buf make_zip(const struct zent *e, int n, int zip64, int method)
{
	buf z = {0}, cd = {0};
	for (int i = 0; i < n; i++) {
		uint64_t off = z.n, big = zip64 ? 0xffffffffu : e[i].n;
		uint32_t crc = lp_crc32(0, e[i].data, e[i].n);
		size_t nl = strlen(e[i].name);
		put_le(&z, 0x04034b50, 4);
		put_le(&z, 20, 2);
		put_le(&z, 0, 2);
		put_le(&z, method, 2);
		put_le(&z, 0, 4);
		put_le(&z, crc, 4);
		put_le(&z, big, 4);
		put_le(&z, big, 4);
		put_le(&z, nl, 2);
		put_le(&z, zip64 ? 20 : 0, 2);
		put_s(&z, e[i].name);
		if (zip64) {
			put_le(&z, 1, 2);
			put_le(&z, 16, 2);
			put_le(&z, e[i].n, 8);
			put_le(&z, e[i].n, 8);
		}
		put(&z, e[i].data, e[i].n);
		put_le(&cd, 0x02014b50, 4);
		put_le(&cd, 45, 2);
		put_le(&cd, 45, 2);
		put_le(&cd, 0, 2);
		put_le(&cd, method, 2);
		put_le(&cd, 0, 4);
		put_le(&cd, crc, 4);
		put_le(&cd, big, 4);
		put_le(&cd, big, 4);
		put_le(&cd, nl, 2);
		put_le(&cd, zip64 ? 28 : 0, 2);
		put_le(&cd, 0, 6);      /* comment length, disk, internal attributes */
		put_le(&cd, 0, 4);
		put_le(&cd, zip64 ? 0xffffffffu : off, 4);
		put_s(&cd, e[i].name);
		if (zip64) {
			put_le(&cd, 1, 2);
			put_le(&cd, 24, 2);
			put_le(&cd, e[i].n, 8);
			put_le(&cd, e[i].n, 8);
			put_le(&cd, off, 8);
		}
	}
	uint64_t cdoff = z.n;
	put(&z, cd.p, cd.n);
	if (zip64) {
		uint64_t at = z.n;
		put_le(&z, 0x06064b50, 4);
		put_le(&z, 44, 8);
		put_le(&z, 45, 2);
		put_le(&z, 45, 2);
		put_le(&z, 0, 8);
		put_le(&z, n, 8);
		put_le(&z, n, 8);
		put_le(&z, cd.n, 8);
		put_le(&z, cdoff, 8);
		put_le(&z, 0x07064b50, 4);
		put_le(&z, 0, 4);
		put_le(&z, at, 8);
		put_le(&z, 1, 4);
	}
	put_le(&z, 0x06054b50, 4);
	put_le(&z, 0, 4);
	put_le(&z, zip64 ? 0xffff : n, 2);
	put_le(&z, zip64 ? 0xffff : n, 2);
	put_le(&z, zip64 ? 0xffffffffu : cd.n, 4);
	put_le(&z, zip64 ? 0xffffffffu : cdoff, 4);
	put_le(&z, 0, 2);
	free(cd.p);
	return z;
}

static int zip_fails(const buf *z, const char *want)
{
	lp_zip zz;
	char err[512] = "";
	if (lp_zip_parse(z->p, z->n, &zz, err, sizeof err) == 0) {
		lp_zip_free(&zz);
		printf("#   parsed, but should fail with '%s'\n", want);
		return 0;
	}
	if (!strstr(err, want))
		printf("#   error '%s', expected '%s'\n", err, want);
	return strstr(err, want) != NULL;
}

static void test_zip(void)
{
	ok(lp_crc32(0, "123456789", 9) == 0xcbf43926, "CRC-32 check value");
	ok(lp_crc32(lp_crc32(0, "1234", 4), "56789", 5) == 0xcbf43926, "CRC-32 continues");

	float data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	buf pk = good_pickle();
	struct zent e[] = {
		{"archive/data.pkl", pk.p, pk.n},
		{"archive/byteorder", "little", 6},
		{"archive/data/0", data, sizeof data},
	};
	for (int zip64 = 0; zip64 < 2; zip64++) {
		buf z = make_zip(e, 3, zip64, 0);
		lp_zip zz;
		char err[512];
		int rc = lp_zip_parse(z.p, z.n, &zz, err, sizeof err);
		ok(rc == 0, "%s archive parses (%s)", zip64 ? "a zip64" : "a plain",
				rc ? err : "ok");
		if (rc == 0) {
			const lp_zip_entry *d = lp_zip_find(&zz, "archive/data/0");
			ok(zz.n == 3 && d && d->size == sizeof data &&
					!memcmp(d->data, data, sizeof data) &&
					!lp_zip_find(&zz, "archive/data/1"),
					"entries found by name, data in place");
			ok(lp_zip_check_crc(d, err, sizeof err) == 0, "CRC matches");
			lp_zip_free(&zz);
		}
		/* the whole checkpoint path, from memory */
		lp_model_files *m = lp_mf_new("mem");
		rc = lp_mf_add_memory(m, "mem.bin", z.p, z.n, err, sizeof err);
		const lp_mf_tensor *b = rc ? NULL : lp_mf_find(m, "b");
		const float *bv = b ? lp_mf_data(b) : NULL;
		ok(bv && b->shape[0] == 3 && b->shape[1] == 2 && bv[0] == 2 && bv[1] == 5 &&
				bv[2] == 3 && bv[5] == 7, "a strided view is copied out in order (%s)",
				rc ? err : "ok");
		lp_model_files_close(m);
		free(z.p);
	}
	buf z = make_zip(e, 3, 0, 0);
	((uint8_t *)memmem(z.p, z.n, "little", 6))[0] = 'L';
	lp_zip zz;
	char err[512];
	if (lp_zip_parse(z.p, z.n, &zz, err, sizeof err) == 0) {
		int crc = lp_zip_check_crc(lp_zip_find(&zz, "archive/byteorder"), err, sizeof err);
		ok(crc && strstr(err, "zip entry 'archive/byteorder': CRC-32 is"),
				"a changed byte fails the CRC: %s", err);
		lp_zip_free(&zz);
	}
	free(z.p);
	z = make_zip(e, 3, 0, 8);
	ok(zip_fails(&z, "zip entry 'archive/data.pkl' is compressed (method 8, deflate)"),
			"deflated entries are refused by name");
	free(z.p);
	struct zent twice[] = {{"a", "x", 1}, {"a", "y", 1}};
	z = make_zip(twice, 2, 0, 0);
	ok(zip_fails(&z, "zip entry 'a' appears twice"), "duplicate names");
	z.n -= 22;
	ok(zip_fails(&z, "zip end record not found (the archive is truncated)"), "no end record");
	free(z.p);
	buf junk = {0};
	put_s(&junk, "\x80\x02}q\x00.");
	ok(zip_fails(&junk, "not a zip archive"), "a legacy (non-zip) torch file");
	free(junk.p);
	free(pk.p);
}

/* ---- configs ---- */

static int hf(const char *json, lp_model_config *c, char *err)
{
	return lp_config_parse_hf(json, strlen(json), c, err, 512);
}

#define BASE "\"hidden_size\": 64, \"num_attention_heads\": 4, \"num_hidden_layers\": 2, " \
	"\"intermediate_size\": 100, \"vocab_size\": 300"

static void test_config(void)
{
	lp_model_config c;
	char err[512];
	int rc = hf("{" BASE "}", &c, err);
	ok(rc == 0 && c.n_kv_heads == 4 && c.head_dim == 16 && c.rope.type == LP_ROPE_DEFAULT &&
			c.rope.theta == 10000 && c.rms_norm_eps == 1e-6 && c.max_pos == 2048 &&
			c.bos_id == 1 && c.n_eos == 1 && c.eos_ids[0] == 2 && c.pad_id == -1 &&
			!c.tie_word_embeddings && c.dtype == 0,
			"defaults as LlamaConfig's (%s)", rc ? err : "ok");
	rc = hf("{" BASE ", \"rope_theta\": 5e5, \"rope_scaling\": {\"type\": \"linear\", "
			"\"factor\": 2}, \"torch_dtype\": \"bfloat16\", \"eos_token_id\": [7, 9], "
			"\"bos_token_id\": null, \"num_key_value_heads\": 2}", &c, err);
	ok(rc == 0 && c.rope.type == LP_ROPE_LINEAR && c.rope.factor == 2 &&
			c.rope.theta == 5e5 && c.dtype == LP_BF16 && c.n_eos == 2 &&
			c.eos_ids[1] == 9 && c.bos_id == -1 && c.n_kv_heads == 2,
			"transformers 4: rope_theta, rope_scaling, torch_dtype (%s)", rc ? err : "ok");
	rc = hf("{" BASE ", \"max_position_embeddings\": 4096, \"rope_parameters\": "
			"{\"rope_type\": \"llama3\", \"factor\": 8, \"low_freq_factor\": 1, "
			"\"high_freq_factor\": 4, \"rope_theta\": 500000}, \"dtype\": \"float16\"}",
			&c, err);
	ok(rc == 0 && c.rope.type == LP_ROPE_LLAMA3 && c.rope.original_max_pos == 4096 &&
			c.rope.theta == 5e5 && c.dtype == LP_F16,
			"transformers 5: rope_parameters; original context defaults to "
			"max_position_embeddings (%s)", rc ? err : "ok");
	rc = hf("{" BASE ", \"rope_parameters\": {\"rope_type\": \"yarn\", \"factor\": null, "
			"\"original_max_position_embeddings\": 512}}", &c, err);
	ok(rc == 0 && c.rope.factor == 4 && c.rope.beta_fast == 32 && c.rope.beta_slow == 1 &&
			c.rope.truncate, "yarn: factor from the context lengths, beta defaults");
	static const struct { const char *json, *err; } bad[] = {
		{"{\"hidden_size\": 64}", "num_attention_heads is missing"},
		{"{" BASE ", \"num_key_value_heads\": 3}", "4 attention heads cannot be shared by 3"},
		{"{" BASE ", \"hidden_size\": 64.5}", "hidden_size is 64.5; expected an integer"},
		{"{" BASE ", \"rms_norm_eps\": \"x\"}", "rms_norm_eps is not a number"},
		{"{" BASE ", \"rope_parameters\": {\"rope_type\": \"longrope\"}}",
			"rope type 'longrope' is not supported"},
		{"{" BASE ", \"rope_scaling\": {\"type\": \"linear\"}}",
			"rope_scaling: factor is missing"},
		{"{" BASE ", \"partial_rotary_factor\": 0.5}", "partial_rotary_factor 0.5"},
		{"{" BASE ", \"model_type\": \"gpt2\"}", "model_type 'gpt2' is not a LLaMA model"},
		{"{" BASE ", \"mlp_bias\": true}", "mlp_bias is true"},
		{"{" BASE ", \"dtype\": \"int8\"}", "dtype 'int8' is not a floating point type"},
		{"[1]", "config is not a JSON object"},
		{"{" BASE, "config is not valid JSON"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		err[0] = 0;
		rc = hf(bad[i].json, &c, err);
		ok(rc && strstr(err, bad[i].err), "refused: %s (%s)", bad[i].err, err);
	}

	const char *meta = "{\"dim\": 4096, \"n_layers\": 32, \"n_heads\": 32, "
		"\"multiple_of\": 256, \"norm_eps\": 1e-06, \"vocab_size\": -1}";
	rc = lp_config_parse_meta(meta, strlen(meta), &c, err, sizeof err);
	ok(rc == 0 && c.intermediate_size == 11008 && c.vocab_size == -1 && c.n_kv_heads == 32 &&
			c.head_dim == 128 && c.rms_norm_eps == 1e-6 && c.from_meta,
			"LLaMA 7B params.json: intermediate 11008, vocabulary from the tokenizer");
	meta = "{\"dim\": 4096, \"n_layers\": 32, \"n_heads\": 32, \"n_kv_heads\": 8, "
		"\"vocab_size\": 128256, \"multiple_of\": 1024, \"ffn_dim_multiplier\": 1.3, "
		"\"norm_eps\": 1e-05, \"rope_theta\": 500000.0, \"use_scaled_rope\": true}";
	rc = lp_config_parse_meta(meta, strlen(meta), &c, err, sizeof err);
	ok(rc == 0 && c.intermediate_size == 14336 && c.rope.type == LP_ROPE_LLAMA3 &&
			c.rope.factor == 8 && c.rope.original_max_pos == 8192 && c.rope.theta == 5e5,
			"Llama 3.1 8B params.json: intermediate 14336, llama3 rope");
	ok(lp_meta_ffn_dim(5120, 256, 0) == 13824 && lp_meta_ffn_dim(6656, 256, 0) == 17920 &&
			lp_meta_ffn_dim(8192, 256, 0) == 22016 &&
			lp_meta_ffn_dim(8192, 4096, 1.3) == 28672,
			"Meta's MLP widths of LLaMA 13B, 33B, 65B and Llama 2 70B");
	c.vocab_size = 32000;
	ok(lp_config_check_vocab(&c, 32000, 0, err, sizeof err) == 0 &&
			lp_config_check_vocab(&c, 31999, 1, err, sizeof err) == 0,
			"vocabulary checks pass");
	ok(lp_config_check_vocab(&c, 49953, 1, err, sizeof err) &&
			strstr(err, "the tokenizer has 49953 pieces, the model's vocabulary "
				"(embedding rows) is 32000: tokens past it have no embedding"),
			"a tokenizer larger than the embedding: %s", err);
}

static void test_rope(void)
{
	lp_model_config c;
	char err[512];
	float a[64], b[64];
	double att;
	hf("{" BASE ", \"head_dim\": 128}", &c, err);
	lp_rope_inv_freq(&c, 0, a, &att);
	ok(a[0] == 1 && fabsf(a[1] - powf(10000, -2.0f / 128)) < 1e-7f && att == 1,
			"default: 1 / theta^(2i/d)");
	hf("{" BASE ", \"head_dim\": 128, \"rope_scaling\": {\"type\": \"linear\", "
			"\"factor\": 4}}", &c, err);
	lp_rope_inv_freq(&c, 0, b, &att);
	int same = 1;
	for (int i = 0; i < 64; i++)
		same &= b[i] == a[i] / 4;
	ok(same, "linear: default / factor, in f32");
	hf("{" BASE ", \"head_dim\": 128, \"max_position_embeddings\": 100, \"rope_scaling\": "
			"{\"type\": \"dynamic\", \"factor\": 2}}", &c, err);
	lp_rope_inv_freq(&c, 0, b, &att);
	same = 1;
	for (int i = 0; i < 64; i++)
		same &= b[i] == a[i];
	lp_rope_inv_freq(&c, 300, b, &att);
	ok(same && b[0] == 1 && b[63] < a[63],
			"dynamic: unchanged up to max_position_embeddings, lower past it");
	hf("{" BASE ", \"head_dim\": 128, \"rope_parameters\": {\"rope_type\": \"llama3\", "
			"\"factor\": 8, \"low_freq_factor\": 1, \"high_freq_factor\": 4, "
			"\"original_max_position_embeddings\": 8192}}", &c, err);
	lp_rope_inv_freq(&c, 0, b, &att);
	ok(b[0] == a[0] && b[63] == a[63] / 8 && b[45] < a[45] && b[45] > a[45] / 8,
			"llama3: high frequencies kept, low divided by the factor, between smoothed");
}

/* ---- q/k permutation and names ---- */

static void test_permute(void)
{
	/* 2 heads of 4 rows (2 rotary pairs), 1 column: Meta interleaves pairs
	 * (r0 r1)(r2 r3); HF puts each pair's halves D/2 apart. */
	int32_t meta[8] = {0, 1, 2, 3, 10, 11, 12, 13}, hfw[8], back[8];
	lp_rope_permute_to_hf(hfw, meta, 2, 8, 1, 4);
	int32_t want[8] = {0, 2, 1, 3, 10, 12, 11, 13};
	ok(!memcmp(hfw, want, sizeof want), "to HF: rows h*D + 2i + j -> h*D + j*D/2 + i");
	lp_rope_permute_to_meta(back, hfw, 2, 8, 1, 4);
	ok(!memcmp(back, meta, sizeof meta), "to Meta undoes it");
	uint16_t big[48 * 5], h2[48 * 5], m2[48 * 5];
	for (int i = 0; i < 48 * 5; i++)
		big[i] = i * 7 + 1;
	lp_rope_permute_to_hf(h2, big, 3, 48, 5, 2);
	lp_rope_permute_to_meta(m2, h2, 3, 48, 5, 2);
	ok(!memcmp(m2, big, sizeof big) && memcmp(h2, big, sizeof big),
			"3 heads of 16, 5 columns of 2 bytes: a round trip");

	static const char *const pairs[][2] = {
		{"tok_embeddings.weight", "model.embed_tokens.weight"},
		{"layers.0.attention.wq.weight", "model.layers.0.self_attn.q_proj.weight"},
		{"layers.31.attention.wk.weight", "model.layers.31.self_attn.k_proj.weight"},
		{"layers.2.attention.wv.weight", "model.layers.2.self_attn.v_proj.weight"},
		{"layers.2.attention.wo.weight", "model.layers.2.self_attn.o_proj.weight"},
		{"layers.7.feed_forward.w1.weight", "model.layers.7.mlp.gate_proj.weight"},
		{"layers.7.feed_forward.w2.weight", "model.layers.7.mlp.down_proj.weight"},
		{"layers.7.feed_forward.w3.weight", "model.layers.7.mlp.up_proj.weight"},
		{"layers.1.attention_norm.weight", "model.layers.1.input_layernorm.weight"},
		{"layers.1.ffn_norm.weight", "model.layers.1.post_attention_layernorm.weight"},
		{"norm.weight", "model.norm.weight"},
		{"output.weight", "lm_head.weight"},
	};
	int good = 1;
	for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
		char a[128], b[128];
		good &= !lp_meta_to_hf_name(pairs[i][0], a, sizeof a) && !strcmp(a, pairs[i][1]) &&
			!lp_hf_to_meta_name(pairs[i][1], b, sizeof b) && !strcmp(b, pairs[i][0]);
	}
	ok(good, "Meta and HF names map both ways");
	char o[64];
	ok(lp_meta_to_hf_name("rope.freqs", o, sizeof o) &&
			lp_meta_to_hf_name("layers.x.attention.wq.weight", o, sizeof o) &&
			lp_meta_to_hf_name("layers.01.attention.wq.weight", o, sizeof o) &&
			lp_hf_to_meta_name("model.layers.0.self_attn.q_proj.bias", o, sizeof o),
			"names outside a LLaMA model are not mapped");
}

/* The architecture table: every name it makes parses back to its role and
 * layer, shapes follow the config, and the orders are those of the
 * formats (HF's, Meta's, llama.cpp's names as their own converters write
 * them). */
static void test_arch(void)
{
	lp_model_config c = {.hidden_size = 64, .n_layers = 3, .n_heads = 4, .n_kv_heads = 2,
		.head_dim = 16, .intermediate_size = 96, .vocab_size = 300};
	char hf[128], meta[128], gguf[128];
	int good = 1, layer;
	for (int r = 0; r < LP_ROLE_COUNT; r++) {
		int l = lp_arch[r].in_layer ? 2 : -1;
		lp_arch_hf_name(r, l, hf, sizeof hf);
		lp_arch_meta_name(r, l, meta, sizeof meta);
		good &= lp_arch_parse_hf(hf, &layer) == r && layer == l;
		good &= lp_arch_parse_meta(meta, &layer) == r && layer == l;
	}
	ok(good, "every role's HF and Meta names parse back to it");
	ok(!strcmp(lp_arch_gguf_name(LP_ROLE_K, 5, gguf, sizeof gguf), "blk.5.attn_k.weight") &&
			!strcmp(lp_arch_gguf_name(LP_ROLE_NORM, -1, gguf, sizeof gguf),
				"output_norm.weight") &&
			!strcmp(lp_arch_gguf_name(LP_ROLE_DOWN, 0, gguf, sizeof gguf),
				"blk.0.ffn_down.weight"),
			"GGUF names as llama.cpp's converter writes them");
	ok(!strcmp(lp_arch_hf_module(LP_ROLE_UP, 3, hf, sizeof hf), "model.layers.3.mlp.up_proj"),
			"an HF module name is the tensor's without .weight");
	int64_t s[2];
	static const int64_t want[LP_ROLE_COUNT][2] = {
		{300, 64}, {64, 64}, {32, 64}, {32, 64}, {64, 64}, {96, 64}, {96, 64}, {64, 96},
		{64, 0}, {64, 0}, {64, 0}, {300, 64},
	};
	good = 1;
	for (int r = 0; r < LP_ROLE_COUNT; r++) {
		lp_arch_shape(&c, r, s);
		good &= s[0] == want[r][0] && s[1] == want[r][1] &&
			lp_arch[r].rank == (want[r][1] ? 2 : 1);
	}
	ok(good, "shapes follow the config (4 query heads, 2 key/value heads of 16)");
	ok(lp_arch_rope_heads(&c, LP_ROLE_Q) == 4 && lp_arch_rope_heads(&c, LP_ROLE_K) == 2 &&
			lp_arch_rope_heads(&c, LP_ROLE_V) == 0 && lp_arch_rope_heads(&c, LP_ROLE_O) == 0,
			"only q and k are in Meta's rotary order, by their own heads");
	good = 1;
	for (int j = 0; j < LP_NMODULES; j++)
		good &= lp_arch[lp_module_role(j)].module == j &&
			lp_module_index(lp_module_name(j)) == j;
	int nmod = 0;
	for (int r = 0; r < LP_ROLE_COUNT; r++)
		nmod += lp_arch[r].module >= 0;
	ok(good && nmod == LP_NMODULES && !strcmp(lp_module_name(LP_GATE), "gate_proj") &&
			!strcmp(lp_module_parent(LP_O), "self_attn") &&
			!strcmp(lp_module_parent(LP_DOWN), "mlp") && lp_module_index("lm_head") == -1,
			"LoRA targets the seven Linear modules of a layer, and nothing else");
	unsigned seen = 0;
	for (int k = 0; k < LP_LAYER_ROLES; k++)
		seen |= 1u << lp_arch_meta_order[k];
	ok(seen == ((1u << (LP_ROLE_LAST_LAYER + 1)) - (1u << LP_ROLE_FIRST_LAYER)) &&
			lp_arch_meta_order[5] == LP_ROLE_DOWN && lp_arch_meta_order[6] == LP_ROLE_UP,
			"Meta's layer order holds each layer role once, w2 before w3");
	const char *rest = NULL;
	ok(lp_arch_hf_layer("model.layers.12.mlp.up_proj", &rest) == 12 &&
			!strcmp(rest, "mlp.up_proj") &&
			lp_arch_hf_layer("model.layers.012.mlp", &rest) == -1 &&
			lp_arch_hf_layer("model.norm.weight", &rest) == -1 &&
			lp_arch_parse_hf("model.layers.1.mlp.up_proj.bias", &layer) == -1 &&
			lp_arch_parse_hf("model.layers.1.norm.weight", &layer) == -1,
			"layer numbers and names outside the table are refused");
}

static void test_lora_config(void)
{
	lp_lora_config c;
	char err[512];
	const char *j = "{\"r\": 8, \"lora_alpha\": 32, \"target_modules\": [\"q_proj\", "
		"\"v_proj\"], \"modules_to_save\": [\"embed_tokens\", \"lm_head\"], "
		"\"rank_pattern\": {\"down_proj\": 2}, \"alpha_pattern\": "
		"{\"layers\\\\.1\\\\d*\\\\.self_attn\\\\.q_proj\": 4}, \"bias\": \"none\"}";
	int rc = lp_lora_config_parse(j, strlen(j), &c, err, sizeof err);
	ok(rc == 0 && c.r == 8 && c.alpha == 32 && c.n_target == 2 && c.n_save == 2 &&
			c.n_rank == 1 && c.n_alpha == 1, "adapter_config.json parses (%s)",
			rc ? err : "ok");
	if (rc)
		return;
	int64_t r;
	double alpha, scale;
	lp_lora_module_params(&c, "model.layers.0.self_attn.q_proj", &r, &alpha, &scale, err,
			sizeof err);
	ok(r == 8 && alpha == 32 && scale == 4, "scale alpha / r");
	lp_lora_module_params(&c, "model.layers.3.mlp.down_proj", &r, &alpha, &scale, err,
			sizeof err);
	ok(r == 2 && scale == 16, "rank_pattern by module name");
	lp_lora_module_params(&c, "model.layers.12.self_attn.q_proj", &r, &alpha, &scale, err,
			sizeof err);
	ok(alpha == 4 && scale == 0.5, "alpha_pattern as a regular expression (\\d)");
	lp_lora_module_params(&c, "model.layers.2.self_attn.q_proj", &r, &alpha, &scale, err,
			sizeof err);
	ok(alpha == 32, "a pattern matches whole name parts only");
	c.use_rslora = 1;
	lp_lora_module_params(&c, "model.layers.0.self_attn.k_proj", &r, &alpha, &scale, err,
			sizeof err);
	ok(fabs(scale - 32 / sqrt(8)) < 1e-15, "use_rslora: alpha / sqrt(r)");
	lp_lora_config_free(&c);
	j = "{\"r\": 4, \"target_modules\": \".*proj\"}";
	rc = lp_lora_config_parse(j, strlen(j), &c, err, sizeof err);
	ok(rc == 0 && c.target_regex && !strcmp(c.target_regex, ".*proj") && c.alpha == 8,
			"target_modules as one expression; lora_alpha defaults to 8");
	lp_lora_config_free(&c);
	static const struct { const char *json, *err; } bad[] = {
		{"{\"r\": 0}", "r is missing or not a positive integer"},
		{"{\"r\": 4, \"bias\": \"all\"}", "bias 'all' is not supported"},
		{"{\"r\": 4, \"use_dora\": true}", "DoRA adapters are not supported"},
		{"{\"r\": 4, \"peft_type\": \"IA3\"}", "peft_type 'IA3' is not LORA"},
		{"{\"r\": 4, \"rank_pattern\": {\"q\": 1.5}}", "not a positive integer"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		err[0] = 0;
		rc = lp_lora_config_parse(bad[i].json, strlen(bad[i].json), &c, err, sizeof err);
		ok(rc && strstr(err, bad[i].err), "refused: %s (%s)", bad[i].err, err);
	}
}

int main(int argc, char **argv)
{
	(void)argc;
	lp_init(argv[0]);
	test_zip();
	test_pickle();
	test_config();
	test_rope();
	test_permute();
	test_arch();
	test_lora_config();
	return tap_done();
}
