/* llama_logits: print the model's logits for token id sequences, for the
 * differential test against transformers (t0600-gen-reference.t).
 *
 *   llama_logits MODEL_DIR [ADAPTER_DIR...] < ids.txt
 *
 * LLAMA_LOGITS_QUANTIZE=nf4|fp4|int8 quantizes the Linear weights as they
 * load (t1410-quant-model.t).
 * ids.txt: one sequence a line, ids separated by spaces. Output: for each
 * sequence, one line per position with its V logits ("%.9g"). The whole
 * sequence goes through one forward pass, which is printed, then again
 * token by token through the KV cache, which must agree (except past
 * max_position_embeddings with dynamic rope: there the cached keys keep the
 * frequencies they were rotated with, as in transformers). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "model/llama.h"

int main(int argc, char **argv)
{
	char err[512];
	lp_init(argv[0]);
	if (argc < 2)
		lp_usage_error("usage: llama_logits MODEL_DIR [ADAPTER_DIR...] < ids.txt");
	if (lp_kernels_init(LP_DEVICE_CPU, -1, LP_F32, err, sizeof err) != 0)
		lp_die(NULL, "%s", err);
	lp_model_files *mf = lp_model_files_load(argv[1]);
	int na = argc - 2;
	lp_adapter **ad = lp_calloc(na + 1, sizeof *ad);
	for (int i = 0; i < na; i++)
		ad[i] = lp_adapter_load(argv[2 + i]);
	lp_llama m;
	const char *q = getenv("LLAMA_LOGITS_QUANTIZE");
	lp_llama_load_quantized(&m, mf, ad, na, q ? lp_qtype_parse(q) : 0);

	char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, stdin) > 0) {
		int32_t ids[4096];
		int n = 0;
		for (char *p = strtok(line, " \n"); p && n < 4096; p = strtok(NULL, " \n"))
			ids[n++] = atoi(p);
		if (!n)
			continue;
		size_t V = m.V;
		float *all = lp_malloc(n * V * sizeof *all), *step = lp_malloc(V * sizeof *step);
		lp_llama_state s;
		lp_llama_state_init(&s, &m, 1, n, n, 1);
		lp_llama_forward(&m, &s, ids, 1, n, all);
		lp_llama_state_free(&s);
		lp_llama_state_init(&s, &m, 1, 1, n, 0);
		double maxdiff = 0, maxabs = 0;
		for (int t = 0; t < n; t++) {
			lp_llama_forward(&m, &s, ids + t, 1, 1, step);
			for (size_t v = 0; v < V; v++) {
				double d = fabs(step[v] - all[t * V + v]);
				maxdiff = d > maxdiff ? d : maxdiff;
				maxabs = fabs(step[v]) > maxabs ? fabs(step[v]) : maxabs;
				printf("%.9g%c", all[t * V + v], v + 1 < V ? ' ' : '\n');
			}
		}
		/* cached and full attention sum in another order: f32 rounding only */
		int dynamic = m.cfg.rope.type == LP_ROPE_DYNAMIC && n > m.cfg.max_pos;
		if (!dynamic && maxdiff > 1e-4 * (maxabs > 1 ? maxabs : 1))
			lp_die(NULL, "cached and full forward differ by %g", maxdiff);
		lp_llama_state_free(&s);
		free(all);
		free(step);
	}
	free(line);
	lp_llama_free(&m);
	for (int i = 0; i < na; i++)
		lp_adapter_close(ad[i]);
	free(ad);
	lp_model_files_close(mf);
	lp_close_stdout();
	return 0;
}
