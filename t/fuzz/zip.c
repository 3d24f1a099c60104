/* zip.c: fuzz target for PyTorch zip checkpoints: the zip reader
 * (zipread.h) alone, then the whole path model_files.h takes (data.pkl
 * found and unpickled, storages looked up, strided views copied out). */
#include <stdint.h>
#include <string.h>

#include "model/model_files.h"
#include "formats/zipread.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	lp_zip z;
	if (lp_zip_parse(data, size, &z, err, sizeof err) == 0) {
		for (size_t i = 0; i < z.n; i++) {
			lp_zip_check_crc(&z.e[i], err, sizeof err);
			if (lp_zip_find(&z, z.e[i].name) == NULL)
				__builtin_trap();
		}
		lp_zip_free(&z);
	}
	lp_model_files *m = lp_mf_new("fuzz");
	if (lp_mf_add_memory(m, "fuzz.bin", data, size, err, sizeof err) == 0)
		for (size_t i = 0; i < m->n; i++) {
			const uint8_t *p = lp_mf_data(&m->t[i]);
			if (m->t[i].nbytes)
				((volatile const uint8_t *)p)[m->t[i].nbytes - 1];
		}
	lp_model_files_close(m);
	return 0;
}
