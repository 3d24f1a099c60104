/* driver.c: replays files through a fuzz target without libFuzzer.
 *
 *   fuzz-NAME FILE|DIR...
 *
 * Runs LLVMFuzzerTestOneInput once per file (every file of a directory),
 * and also on every prefix of each file, so truncations are covered by the
 * plain test suite. `make fuzz` links the same targets with libFuzzer. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
	size_t n;
	char *buf = lp_read_file(path, &n);
	for (size_t k = 0; k <= n; k += (n > 4096 ? n / 512 : 1)) {
		uint8_t *copy = lp_malloc(k); /* exact size: ASan sees overreads */
		memcpy(copy, buf, k);
		LLVMFuzzerTestOneInput(copy, k);
		free(copy);
	}
	free(buf);
	return 1;
}

int main(int argc, char **argv)
{
	int files = 0;
	lp_init(argv[0]);
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) != 0)
			lp_die(argv[i], "no such file");
		if (!S_ISDIR(st.st_mode)) {
			files += run_file(argv[i]);
			continue;
		}
		DIR *d = opendir(argv[i]);
		struct dirent *e;
		while (d && (e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			char p[4096];
			snprintf(p, sizeof p, "%s/%s", argv[i], e->d_name);
			files += run_file(p);
		}
		if (d)
			closedir(d);
	}
	printf("%d files replayed\n", files);
	return 0;
}
