/* framejson.h: frames and token ids printed as JSON lines.
 *
 * A record prints as one object, its frames in order, each as
 * "name": value, where a rank-0 frame is a scalar and a rank-r frame
 * r nested arrays; integer dtypes print as integers, float dtypes as the
 * shortest decimal that reads back to the same value (NaN and infinities,
 * which JSON lacks, as null), bool as true/false. */
#ifndef LP_FRAMEJSON_H
#define LP_FRAMEJSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "formats/frames.h"

/* One line {"name":[...],...} for rec on f (called name in messages). */
void lp_record_print_json(FILE *f, const char *fname, const lp_record *rec);

/* One line {"key":[ids...]} on f. */
void lp_ids_print_json(FILE *f, const char *fname, const char *key,
		const int32_t *ids, size_t n);

#endif
