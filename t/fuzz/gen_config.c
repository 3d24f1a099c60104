/* gen_config.c: fuzz target for the generate controls parser
 * (lp_gen_config_set). Input: lines "NAME VALUE"; every line is set, the
 * config checked and, when it passes, the processor list applied to a
 * small row. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "generate/beam.h"
#include "generate/sampling.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), err[256];
	memcpy(text, data, size);
	text[size] = 0;
	lp_gen_config c;
	lp_gen_config_init(&c);
	for (char *line = text, *next; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		char *val = strchr(line, ' ');
		if (!val)
			continue;
		*val++ = 0;
		lp_gen_config_set(&c, line, val, err, sizeof(err));
	}
	const int32_t prompt[] = { 1, 2, 3, 1, 2 };
	if (c.num_beams <= 8 && c.num_return_sequences <= 8 && c.max_new_tokens <= 16 &&
	    c.max_length <= 64) {
		lp_search *s = lp_search_new(&c, prompt, 5, 16, 0, err, sizeof(err));
		if (s) {
			float logits[8 * 16];
			int32_t parent[8], token[8];
			for (int step = 0; step < 32 && !lp_search_done(s); step++) {
				for (int i = 0; i < 8 * 16; i++)
					logits[i] = (float)((i * 7 + step * 3) % 11) - 5.0f;
				if (lp_search_step(s, logits, parent, token) < 0)
					break;
			}
			lp_search_free(s);
		}
	}
	lp_gen_config_free(&c);
	free(text);
	return 0;
}
