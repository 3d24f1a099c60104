/* frames.c: fuzz target for the frame reader (records, zstd payloads,
 * trailers, concatenated streams). */
#include <stdint.h>
#include <string.h>

#include "formats/frames.h"
#include "base/reader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	lp_reader *r = lp_reader_mem(data, size, "fuzz");
	lp_frame f = {0};
	lp_frame_tally t = {0};
	int n = 0;
	/* a zstd-wrapped stream that is itself corrupt makes the reader die;
	 * only plain streams are fed to keep the target non-exiting */
	if (!lp_reader_compressed(r))
		while (n++ < 64 && lp_frame_try_read(r, &f, &t, err, sizeof err) == 1)
			if (f.nbytes)
				((volatile char *)f.data)[f.nbytes - 1];
	lp_frame_free(&f);
	lp_reader_close(r);
	return 0;
}
