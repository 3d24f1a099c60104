/* reader.h: buffered input from a file or a pipe, zstd undone on the fly.
 *
 * A reader never seeks, so stdin may be a pipe. If the first bytes of the
 * stream are a zstd frame magic the stream is decompressed transparently
 * (several concatenated zstd frames included), whatever the file is called.
 * Offsets and line numbers count the decompressed bytes; errors name them. */
#ifndef LP_READER_H
#define LP_READER_H

#include <stddef.h>
#include <stdint.h>

typedef struct lp_reader lp_reader;

/* path NULL or "-" reads stdin. Dies naming path if it cannot be opened. */
lp_reader *lp_reader_open(const char *path);
/* A reader over bytes in memory (not copied; used by tests and fuzzers). */
lp_reader *lp_reader_mem(const void *p, size_t n, const char *name);
void lp_reader_close(lp_reader *r);

/* Read exactly n bytes unless the stream ends first; returns bytes read. */
size_t lp_reader_read(lp_reader *r, void *buf, size_t n);
/* Make up to n bytes available without consuming them; returns a pointer
 * to them and sets *got (< n only at end of stream). */
const void *lp_reader_peek(lp_reader *r, size_t n, size_t *got);
/* Next line without its '\n' (and without a '\r' before it), NUL-terminated
 * in the reader's buffer, valid until the next call; NULL at end of stream.
 * A final line without '\n' is returned too. */
char *lp_reader_line(lp_reader *r, size_t *len);

uint64_t lp_reader_offset(const lp_reader *r); /* bytes consumed so far */
uint64_t lp_reader_lineno(const lp_reader *r); /* number of the last line read */
const char *lp_reader_name(const lp_reader *r); /* "stdin" or the path */
int lp_reader_compressed(const lp_reader *r);

#endif
