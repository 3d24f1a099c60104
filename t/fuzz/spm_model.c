/* Fuzz target: lp_spm_model_parse on arbitrary bytes; when it accepts,
 * serialize(parse(x)) must parse again to the same pieces and serialize to
 * the same bytes, and every piece must be found by its string. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/spm_model.h"

static void check(int cond)
{
	if (!cond)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	lp_spm_model a, b;
	char err[256];
	if (lp_spm_model_parse(data, size, &a, err, sizeof err)) {
		check(err[0] != 0);
		return 0;
	}
	for (size_t i = 0; i < a.n_pieces; i++)
		check(lp_spm_model_find(&a, a.pieces[i].str, a.pieces[i].len) == (long)i);
	uint8_t *s1, *s2;
	size_t n1, n2;
	lp_spm_model_serialize(&a, &s1, &n1);
	check(lp_spm_model_parse(s1, n1, &b, err, sizeof err) == 0);
	check(a.n_pieces == b.n_pieces && a.model_type == b.model_type);
	for (size_t i = 0; i < a.n_pieces; i++) {
		const lp_spm_piece *p = &a.pieces[i], *q = &b.pieces[i];
		check(p->len == q->len && !memcmp(p->str, q->str, p->len));
		check(p->type == q->type && !memcmp(&p->score, &q->score, sizeof p->score));
	}
	lp_spm_model_serialize(&b, &s2, &n2);
	check(n1 == n2 && !memcmp(s1, s2, n1));

	/* adding: a new piece appears at the end; an old one is refused */
	size_t n = a.n_pieces;
	check(lp_spm_model_add(&a, a.pieces[0].str, a.pieces[0].len, LP_SPM_NORMAL) == -1);
	check(lp_spm_model_add(&a, "\xe2\x96\x81zz-fuzz-new", 13, LP_SPM_USER_DEFINED) == (long)n ||
	      lp_spm_model_find(&a, "\xe2\x96\x81zz-fuzz-new", 13) >= 0);
	free(s1);
	free(s2);
	lp_spm_model_free(&a);
	lp_spm_model_free(&b);
	return 0;
}
