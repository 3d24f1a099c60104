/* zipread.h: read zip archives in place, as PyTorch writes its checkpoints.
 *
 * torch.save() writes a zip (PKWARE APPNOTE) whose entries are all *stored*
 * (method 0, not compressed), each entry's data aligned to 64 bytes by
 * padding in the local header's extra field, and zip64 records once the
 * archive passes 4 GiB. This reader takes the central directory (zip64 end
 * record and per-entry zip64 extra fields included), finds each entry's
 * data through its local header, and hands out pointers into the caller's
 * buffer (usually a mapping of the file): nothing is copied.
 *
 * Checked: the end record lies inside the buffer and its counts agree with
 * the central directory; each entry's header signature; names are non-empty,
 * hold no NUL and are unique; data lies inside the buffer; stored entries
 * have equal compressed and uncompressed sizes. Refused with a message:
 * encrypted entries, compressed entries (deflate and others: PyTorch never
 * writes them), multi-disk archives. CRC-32 is checked only on request
 * (lp_zip_check_crc), because a checkpoint's tensors may be many GiB. */
#ifndef LP_ZIPREAD_H
#define LP_ZIPREAD_H

#include <stddef.h>
#include <stdint.h>

#define LP_ZIP_MAX_ENTRIES (1u << 20)

typedef struct {
	char *name;             /* NUL-terminated, as stored (not necessarily UTF-8) */
	uint64_t size;          /* uncompressed size = stored size */
	uint32_t crc;           /* CRC-32 from the central directory */
	uint64_t offset;        /* of the data, from the start of the archive */
	const uint8_t *data;    /* size bytes, in place */
} lp_zip_entry;

typedef struct {
	const uint8_t *base;    /* the whole archive */
	size_t size;
	lp_zip_entry *e;        /* n entries, in central directory order */
	size_t n;
	size_t *by_name;        /* indices into e, sorted by name */
} lp_zip;

/* Parse the archive of n bytes at buf (not copied: it must outlive *z).
 * 0 and *z filled, or -1 with a one-line message in err and nothing left
 * to free. Never dies on bad input (the fuzz target's entry point). */
int lp_zip_parse(const void *buf, size_t n, lp_zip *z, char *err, size_t errlen);
void lp_zip_free(lp_zip *z);

/* The entry called name, or NULL. */
const lp_zip_entry *lp_zip_find(const lp_zip *z, const char *name);

/* 0 if the entry's data has the CRC-32 the directory gives; -1 and a
 * message naming the entry otherwise. */
int lp_zip_check_crc(const lp_zip_entry *e, char *err, size_t errlen);

/* CRC-32 (the zip / zlib polynomial) of n bytes, continuing from crc
 * (0 to start): lp_crc32(lp_crc32(0, a, na), b, nb) == crc of a then b. */
uint32_t lp_crc32(uint32_t crc, const void *p, size_t n);

#endif
