/* zipread.c: zip central directory reader (stored entries, zip64).
 * See zipread.h for what is checked. Record layouts (APPNOTE 4.3):
 *
 *   end of central directory   sig 0x06054b50, 22 bytes + comment
 *   zip64 end locator          sig 0x07064b50, 20 bytes, just before it
 *   zip64 end record           sig 0x06064b50, 56 bytes + extensible data
 *   central directory header   sig 0x02014b50, 46 bytes + name, extra, comment
 *   local file header          sig 0x04034b50, 30 bytes + name, extra, data */
#include "formats/zipread.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"

#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64_LOC 0x07064b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_CDIR 0x02014b50u
#define SIG_LOCAL 0x04034b50u

static uint32_t rd16(const uint8_t *p) { return p[0] | (uint32_t)p[1] << 8; }
static uint32_t rd32(const uint8_t *p) { return rd16(p) | rd16(p + 2) << 16; }
static uint64_t rd64(const uint8_t *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }

/* ---- CRC-32, slicing by 8 ---- */

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
		crc_table[0][i] = c;
	}
	for (int t = 1; t < 8; t++)
		for (int i = 0; i < 256; i++)
			crc_table[t][i] = crc_table[0][crc_table[t - 1][i] & 0xff] ^
				(crc_table[t - 1][i] >> 8);
}

uint32_t lp_crc32(uint32_t crc, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	pthread_once(&crc_once, crc_init);
	crc = ~crc;
	for (; n >= 8; n -= 8, p += 8) {
		uint32_t a = crc ^ rd32(p), b = rd32(p + 4);
		crc = crc_table[7][a & 0xff] ^ crc_table[6][(a >> 8) & 0xff] ^
			crc_table[5][(a >> 16) & 0xff] ^ crc_table[4][a >> 24] ^
			crc_table[3][b & 0xff] ^ crc_table[2][(b >> 8) & 0xff] ^
			crc_table[1][(b >> 16) & 0xff] ^ crc_table[0][b >> 24];
	}
	while (n--)
		crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

int lp_zip_check_crc(const lp_zip_entry *e, char *err, size_t errlen)
{
	uint32_t crc = lp_crc32(0, e->data, e->size);
	if (crc != e->crc)
		return lp_fail(err, errlen, "zip entry '%s': CRC-32 is %08x, the directory says "
				"%08x (the file is corrupt)", e->name, crc, e->crc);
	return 0;
}

/* ---- the end records ---- */

struct cdir { uint64_t count, size, offset; };

/* The end of central directory record: the last signature from which the
 * record and its comment fit in the buffer. */
static int find_eocd(const uint8_t *p, size_t n, size_t *pos)
{
	if (n < 22)
		return -1;
	size_t lo = n - 22 > 65535 ? n - 22 - 65535 : 0;
	for (size_t i = n - 22 + 1; i-- > lo;)
		if (rd32(p + i) == SIG_EOCD && i + 22 + rd16(p + i + 20) <= n) {
			*pos = i;
			return 0;
		}
	return -1;
}

static int read_end(const uint8_t *p, size_t n, struct cdir *cd, char *err, size_t errlen)
{
	size_t e;
	if (find_eocd(p, n, &e))
		return lp_fail(err, errlen, n >= 4 && rd32(p) == SIG_LOCAL ?
				"zip end record not found (the archive is truncated)" :
				"not a zip archive (PyTorch checkpoints are zip files since "
				"PyTorch 1.6; re-save an older one with a newer torch)");
	if (rd16(p + e + 4) != 0 || rd16(p + e + 6) != 0)
		return lp_fail(err, errlen, "multi-disk zip archives are not supported");
	cd->count = rd16(p + e + 10);
	cd->size = rd32(p + e + 12);
	cd->offset = rd32(p + e + 16);
	if (rd16(p + e + 8) != cd->count)
		return lp_fail(err, errlen, "zip end record: %u entries on this disk, %u in all",
				rd16(p + e + 8), (unsigned)cd->count);
	if (e < 20 || rd32(p + e - 20) != SIG_EOCD64_LOC)
		return 0;
	/* zip64: the locator points at the zip64 end record */
	const uint8_t *loc = p + e - 20;
	uint64_t off = rd64(loc + 8);
	if (rd32(loc + 4) != 0 || rd32(loc + 16) > 1)
		return lp_fail(err, errlen, "multi-disk zip archives are not supported");
	if (off > e - 20 || e - 20 - off < 56 || rd32(p + off) != SIG_EOCD64)
		return lp_fail(err, errlen, "zip64 end record not found at byte %llu",
				(unsigned long long)off);
	const uint8_t *r = p + off;
	if (rd32(r + 16) != 0 || rd32(r + 20) != 0)
		return lp_fail(err, errlen, "multi-disk zip archives are not supported");
	if (rd64(r + 24) != rd64(r + 32))
		return lp_fail(err, errlen, "zip64 end record: %llu entries on this disk, %llu in all",
				(unsigned long long)rd64(r + 24), (unsigned long long)rd64(r + 32));
	cd->count = rd64(r + 32);
	cd->size = rd64(r + 40);
	cd->offset = rd64(r + 48);
	return 0;
}

/* ---- entries ---- */

/* Values the fixed fields mark 0xffffffff come from the zip64 extra field
 * (id 1), in the order size, compressed size, offset. */
static int zip64_extra(const uint8_t *x, size_t xlen, uint64_t *usize, uint64_t *csize,
		uint64_t *off)
{
	while (xlen >= 4) {
		uint32_t id = rd16(x), len = rd16(x + 2);
		if (len > xlen - 4)
			return -1;
		if (id == 1) {
			uint64_t *want[3] = {usize, csize, off};
			size_t k = 0;
			for (int i = 0; i < 3; i++) {
				if (*want[i] != 0xffffffffu)
					continue;
				if (k + 8 > len)
					return -1;
				*want[i] = rd64(x + 4 + k);
				k += 8;
			}
			return 0;
		}
		x += 4 + len;
		xlen -= 4 + len;
	}
	return 0;
}

static int read_entry(const uint8_t *p, size_t n, const uint8_t *h, lp_zip_entry *e,
		char *err, size_t errlen)
{
	uint32_t flags = rd16(h + 8), method = rd16(h + 10);
	uint64_t csize = rd32(h + 20), usize = rd32(h + 24), off = rd32(h + 42);
	uint32_t nlen = rd16(h + 28), xlen = rd16(h + 30);
	e->crc = rd32(h + 16);
	if (zip64_extra(h + 46 + nlen, xlen, &usize, &csize, &off))
		return lp_fail(err, errlen, "zip entry '%s': malformed zip64 extra field", e->name);
	if (flags & 1)
		return lp_fail(err, errlen, "zip entry '%s' is encrypted", e->name);
	if (method != 0)
		return lp_fail(err, errlen, "zip entry '%s' is compressed (method %u%s); PyTorch "
				"checkpoints store entries uncompressed: re-save it with "
				"torch.save", e->name, method, method == 8 ? ", deflate" : "");
	if (csize != usize)
		return lp_fail(err, errlen, "zip entry '%s' is stored but its sizes differ "
				"(%llu and %llu)", e->name, (unsigned long long)csize,
				(unsigned long long)usize);
	if (off > n || n - off < 30 || rd32(p + off) != SIG_LOCAL)
		return lp_fail(err, errlen, "zip entry '%s': no local header at byte %llu",
				e->name, (unsigned long long)off);
	const uint8_t *l = p + off;
	uint64_t lname = rd16(l + 26), lextra = rd16(l + 28);
	if (n - off - 30 < lname + lextra)
		return lp_fail(err, errlen, "zip entry '%s': local header runs past the end",
				e->name);
	if (lname != nlen || memcmp(l + 30, h + 46, nlen))
		return lp_fail(err, errlen, "zip entry '%s': local header names another file",
				e->name);
	uint64_t start = off + 30 + lname + lextra;
	if (usize > n - start)
		return lp_fail(err, errlen, "zip entry '%s': %llu bytes of data at byte %llu run "
				"past the end of the archive (%zu bytes)", e->name,
				(unsigned long long)usize, (unsigned long long)start, n);
	e->size = usize;
	e->offset = start;
	e->data = p + start;
	return 0;
}

static int by_name(const void *a, const void *b, void *arg)
{
	const lp_zip_entry *e = arg;
	return strcmp(e[*(const size_t *)a].name, e[*(const size_t *)b].name);
}

static int read_cdir(lp_zip *z, const struct cdir *cd, char *err, size_t errlen)
{
	const uint8_t *p = z->base;
	size_t n = z->size;
	if (cd->offset > n || cd->size > n - cd->offset)
		return lp_fail(err, errlen, "zip central directory (%llu bytes at byte %llu) lies "
				"outside the archive", (unsigned long long)cd->size,
				(unsigned long long)cd->offset);
	if (cd->count > LP_ZIP_MAX_ENTRIES || cd->count > cd->size / 46)
		return lp_fail(err, errlen, "zip end record claims %llu entries in a %llu-byte "
				"central directory", (unsigned long long)cd->count,
				(unsigned long long)cd->size);
	z->e = lp_calloc(cd->count ? cd->count : 1, sizeof *z->e);
	const uint8_t *h = p + cd->offset, *end = h + cd->size;
	for (uint64_t i = 0; i < cd->count; i++) {
		if (end - h < 46 || rd32(h) != SIG_CDIR)
			return lp_fail(err, errlen, "zip central directory entry %llu is malformed",
					(unsigned long long)i);
		size_t nlen = rd16(h + 28), rest = nlen + rd16(h + 30) + rd16(h + 32);
		if ((size_t)(end - h - 46) < rest)
			return lp_fail(err, errlen, "zip central directory entry %llu runs past "
					"the directory", (unsigned long long)i);
		if (nlen == 0 || memchr(h + 46, 0, nlen))
			return lp_fail(err, errlen, "zip central directory entry %llu has an "
					"empty name or one with a NUL", (unsigned long long)i);
		lp_zip_entry *e = &z->e[z->n++];
		e->name = lp_malloc(nlen + 1);
		memcpy(e->name, h + 46, nlen);
		e->name[nlen] = 0;
		if (read_entry(p, n, h, e, err, errlen))
			return -1;
		h += 46 + rest;
	}
	z->by_name = lp_malloc((z->n ? z->n : 1) * sizeof *z->by_name);
	for (size_t i = 0; i < z->n; i++)
		z->by_name[i] = i;
	qsort_r(z->by_name, z->n, sizeof *z->by_name, by_name, z->e);
	for (size_t i = 1; i < z->n; i++)
		if (!strcmp(z->e[z->by_name[i]].name, z->e[z->by_name[i - 1]].name))
			return lp_fail(err, errlen, "zip entry '%s' appears twice",
					z->e[z->by_name[i]].name);
	return 0;
}

int lp_zip_parse(const void *buf, size_t n, lp_zip *z, char *err, size_t errlen)
{
	struct cdir cd = {0, 0, 0};
	memset(z, 0, sizeof *z);
	z->base = buf;
	z->size = n;
	if (read_end(buf, n, &cd, err, errlen) || read_cdir(z, &cd, err, errlen)) {
		lp_zip_free(z);
		return -1;
	}
	return 0;
}

void lp_zip_free(lp_zip *z)
{
	for (size_t i = 0; i < z->n; i++)
		free(z->e[i].name);
	free(z->e);
	free(z->by_name);
	z->e = NULL;
	z->by_name = NULL;
	z->n = 0;
}

static const char *entry_name(const void *ctx, size_t i)
{
	return ((const lp_zip_entry *)ctx)[i].name;
}

const lp_zip_entry *lp_zip_find(const lp_zip *z, const char *name)
{
	long i = lp_find_sorted(z->by_name, z->n, name, entry_name, z->e);
	return i < 0 ? NULL : &z->e[i];
}
