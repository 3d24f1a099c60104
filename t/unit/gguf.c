/* gguf.c: writes a small GGUF file for t0030-gguf.t to read back with the
 * gguf Python package: gguf OUT.gguf */
#include <stdlib.h>

#include "base/common.h"
#include "formats/gguf.h"
#include "base/half.h"

/* values the Python side recomputes exactly: ((37 i + 11 k) % 201 - 100) / 16 */
static float val(size_t i, int k) { return (float)((int)((37 * i + 11 * k) % 201) - 100) / 16.0f; }

int main(int argc, char **argv)
{
	lp_init(argv[0]);
	if (argc != 2)
		lp_usage_error("usage: gguf OUT.gguf");
	lp_gguf_writer *w = lp_gguf_new();
	lp_gguf_kv_str(w, "general.architecture", "llama");
	lp_gguf_kv_u32(w, "llama.block_count", 2);
	lp_gguf_kv_i32(w, "test.negative", -5);
	lp_gguf_kv_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
	lp_gguf_kv_bool(w, "tokenizer.ggml.add_bos_token", 1);
	const char *toks[] = {"<unk>", "<s>", "</s>", "\xe2\x96\x81\xe4\xbd\xa0"};
	float scores[] = {0, 0, 0, -1.5f};
	int32_t types[] = {2, 3, 3, 1};
	lp_gguf_kv_arr_str(w, "tokenizer.ggml.tokens", toks, 4);
	lp_gguf_kv_arr_f32(w, "tokenizer.ggml.scores", scores, 4);
	lp_gguf_kv_arr_i32(w, "tokenizer.ggml.token_type", types, 4);

	uint64_t s32[2] = {3, 5}, s16[2] = {4, 7}, sq[2] = {3, 64}, s1[1] = {9};
	int types_[4] = {LP_GGML_F32, LP_GGML_F16, LP_GGML_BF16, LP_GGML_Q8_0};
	const uint64_t *shapes[4] = {s32, s16, s16, sq};
	int ranks[4] = {2, 2, 2, 2};
	const char *names[4] = {"t.f32", "t.f16", "t.bf16", "t.q8_0"};
	for (int t = 0; t < 4; t++)
		lp_gguf_add_tensor(w, names[t], types_[t], ranks[t], shapes[t]);
	lp_gguf_add_tensor(w, "t.norm", LP_GGML_F32, 1, s1);

	lp_atomic *a = lp_atomic_create(argv[1]);
	FILE *f = lp_atomic_file(a);
	lp_gguf_write_header(w, f, argv[1]);
	for (int t = 0; t < 5; t++) {
		const uint64_t *sh = t < 4 ? shapes[t] : s1;
		size_t n = t < 4 ? sh[0] * sh[1] : sh[0];
		int type = t < 4 ? types_[t] : LP_GGML_F32;
		float *x = lp_malloc(n * sizeof *x);
		for (size_t i = 0; i < n; i++)
			x[i] = val(i, t);
		void *out = lp_malloc(lp_ggml_nbytes(type, n));
		for (size_t i = 0; i < n; i++) {
			if (type == LP_GGML_F32)
				((float *)out)[i] = x[i];
			else if (type == LP_GGML_F16)
				((uint16_t *)out)[i] = lp_f32_to_f16(x[i]);
			else if (type == LP_GGML_BF16)
				((uint16_t *)out)[i] = lp_f32_to_bf16(x[i]);
		}
		if (type == LP_GGML_Q8_0)
			lp_quantize_q8_0(x, n, out);
		lp_gguf_write_tensor(w, f, argv[1], t, out);
		free(x);
		free(out);
	}
	lp_atomic_commit(a);
	lp_gguf_free(w);
	return 0;
}
