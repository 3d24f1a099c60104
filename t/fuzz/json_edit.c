/* json_edit.c: fuzz target for lp_json_set, the in-place editor of
 * config.json: any bytes in, either NULL or a text that is again one JSON
 * object holding the key with the new value. */
#include <jv.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/json_edit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), err[128];
	memcpy(text, data, size);
	text[size] = 0;
	static const char *const keys[] = { "vocab_size", "dtype", "a" };
	for (size_t i = 0; i < 3; i++) {
		char *out = lp_json_set(text, keys[i], "[1, {\"x\": \"}\"}]", err, sizeof err);
		if (!out)
			continue;
		jv v = jv_parse(out);
		if (jv_get_kind(v) != JV_KIND_OBJECT)
			abort();
		jv got = jv_object_get(v, jv_string(keys[i]));
		if (jv_get_kind(got) != JV_KIND_ARRAY || jv_array_length(got) != 2)
			abort();
		free(out);
	}
	free(text);
	return 0;
}
