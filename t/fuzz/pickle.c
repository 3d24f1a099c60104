/* pickle.c: fuzz target for the state-dict pickle reader (pickle.h). */
#include <stdint.h>
#include <string.h>

#include "formats/pickle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	lp_pk_state_dict sd;
	if (lp_pk_state_dict_parse(data, size, &sd, err, sizeof err) == 0) {
		for (size_t i = 0; i < sd.n; i++)
			if (!sd.t[i].name[0] || !sd.t[i].storage[0])
				__builtin_trap();
		lp_pk_state_dict_free(&sd);
	} else if (!err[0]) {
		__builtin_trap();       /* every failure says why */
	}
	return 0;
}
