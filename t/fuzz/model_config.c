/* model_config.c: fuzz target for config.json, params.json and
 * adapter_config.json parsing, and the rotary frequencies of what parses. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/adapter_files.h"
#include "model/model_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	lp_model_config c;
	for (int meta = 0; meta < 2; meta++) {
		int rc = meta ? lp_config_parse_meta((const char *)data, size, &c, err, sizeof err) :
			lp_config_parse_hf((const char *)data, size, &c, err, sizeof err);
		if (rc == 0 && c.head_dim <= 4096) {
			float *f = malloc(c.head_dim / 2 * sizeof *f + 1);
			double att;
			lp_rope_inv_freq(&c, c.max_pos + 1, f, &att);
			free(f);
		}
	}
	lp_lora_config lc;
	if (lp_lora_config_parse((const char *)data, size, &lc, err, sizeof err) == 0) {
		int64_t r;
		double alpha, scale;
		lp_lora_module_params(&lc, "model.layers.1.self_attn.q_proj", &r, &alpha, &scale,
				err, sizeof err);
		lp_lora_config_free(&lc);
	}
	return 0;
}
