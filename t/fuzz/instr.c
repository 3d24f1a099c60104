/* Fuzz target for the mkinstr converters (libcommon/text/instr.c): the format
 * sniffer, the NER tag-column parser fed line by line, and the MSRA,
 * Alpaca and shaped-JSON converters on every line that parses as JSON. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "text/instr.h"

static void keep(int r, jv rec)
{
	if (r != LP_INSTR_OK)
		return;
	size_t n;
	free(lp_instr_normalize(rec, &n));
	jv_free(rec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *what, *e = p + size;
	char err[256];
	lp_ner_opts o;
	lp_bio b;
	jv rec;

	lp_ner_opts_init(&o);
	lp_bio_init(&b);
	lp_instr_sniff(p, size, &what);
	keep(lp_instr_from_text(p, size, &rec, err, sizeof err), rec);
	while (p < e) {
		const char *nl = memchr(p, '\n', e - p);
		size_t len = nl ? (size_t)(nl - p) : (size_t)(e - p);
		if (lp_is_blank(p, len))
			keep(lp_bio_sentence(&b, &o, &rec), rec);
		else if (lp_bio_line(&b, &o, p, len, err, sizeof err) != LP_INSTR_OK)
			lp_bio_reset(&b);
		jv v = jv_parse_sized(p, len);
		if (jv_is_valid(v)) {
			keep(lp_instr_from_msra(&o, v, &rec, err, sizeof err), rec);
			keep(lp_instr_from_alpaca(v, &rec, err, sizeof err), rec);
			keep(lp_instr_from_json(v, &rec, err, sizeof err), rec);
		}
		jv_free(v);
		p += len + (nl != NULL);
	}
	keep(lp_bio_sentence(&b, &o, &rec), rec);
	lp_bio_free(&b);
	lp_ner_opts_free(&o);
	return 0;
}
