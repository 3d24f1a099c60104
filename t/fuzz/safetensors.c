/* safetensors.c: fuzz target for the safetensors header parser.
 *
 * Seeds in corpus/safetensors/: every-dtype and sorted are what
 * `$LP_BUILD/t/safetensors write` and `write-sorted` make; the others are
 * hand-made headers (a 1-byte little-endian length, 7 zero bytes, the JSON,
 * zero data): one-f32, empties (empty, rank-0 and bf16 tensors, null
 * metadata), duplicate (a name twice, once escaped), overlap. */
#include <stdint.h>
#include <string.h>

#include "formats/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	lp_st_file f;
	if (lp_st_parse(data, size, &f, err, sizeof err) != 0)
		return 0;
	/* everything the parser accepted must be safe to use */
	for (size_t i = 0; i < f.n; i++) {
		const lp_st_tensor *t = &f.tensors[i];
		if (t->nbytes) {
			((volatile const char *)t->data)[0];
			((volatile const char *)t->data)[t->nbytes - 1];
		}
		if (lp_st_find(&f, t->name) != t)
			__builtin_trap();
	}
	for (size_t i = 0; i < f.nmeta; i++)
		if (!lp_st_meta(&f, f.meta[2 * i]))
			__builtin_trap();
	lp_st_free(&f);
	return 0;
}
