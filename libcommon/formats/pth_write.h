/* pth_write.h: write a state dict as torch.save() does, tensor by tensor.
 *
 * The file is a zip archive (PKWARE APPNOTE) of stored entries, laid out as
 * torch 2.x writes it:
 *
 *   <archive>/data.pkl                 the pickled dict {name: tensor}
 *   <archive>/.format_version          "1"
 *   <archive>/.storage_alignment       "64"
 *   <archive>/byteorder                "little"
 *   <archive>/data/0 ... data/N-1      one storage per tensor, in dict order
 *   <archive>/version                  "3\n"
 *   <archive>/.data/serialization_id   40 decimal digits
 *
 * <archive> is the file's name without its extension, as torch.save names
 * it ("consolidated.00" for consolidated.00.pth). Each entry's data starts
 * at a multiple of 64 bytes (padding in an "FB" extra field of the local
 * header), each local header is followed by its data and a data descriptor
 * (flag bit 3: CRC-32 and sizes come after the data), and the archive ends
 * with a zip64 end record, its locator and the classic end record, so
 * offsets and sizes past 4 GiB need nothing special.
 *
 * data.pkl is what Python's pickle (protocol 2) writes for torch.save of a
 * plain dict of contiguous tensors, each with a storage of its own: the
 * same opcodes and memo numbering byte for byte (checked by
 * t/t1302-lora-merge-convert.t against torch 2.15). A tensor pickles as
 * torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False,
 * collections.OrderedDict()) whose storage is the persistent id
 * ('storage', torch.<Type>Storage, '<key>', 'cpu', numel).
 *
 * Usage:
 *
 *   w = lp_pth_writer_new(path);                 path: a new file (atomic)
 *   lp_pth_writer_add(w, name, dtype, rank, shape);      one per tensor
 *   while ((i = lp_pth_writer_next(w)) >= 0)            tensors in order
 *           lp_pth_writer_write(w, bytes, n);            in pieces
 *   lp_pth_writer_close(w);                         commits the file
 *
 * dtype is LP_F32, LP_F16, LP_BF16 (and the integer types torch has).
 * The file appears at path only on close (lp_atomic_*). */
#ifndef LP_PTH_WRITE_H
#define LP_PTH_WRITE_H

#include <stddef.h>
#include <stdint.h>

#define LP_PTH_MAX_RANK 8

typedef struct lp_pth_writer lp_pth_writer;

lp_pth_writer *lp_pth_writer_new(const char *path);
/* Declare the next tensor of the dict (its name is the key). */
void lp_pth_writer_add(lp_pth_writer *w, const char *name, int dtype, int rank,
		const uint64_t *shape);
/* Writes data.pkl and the small records on the first call, closes the
 * previous tensor's entry (checking it is complete), and opens the next:
 * returns its index in declaration order, or -1 when all are done. */
long lp_pth_writer_next(lp_pth_writer *w);
/* n more bytes of the current tensor (never past its end). */
void lp_pth_writer_write(lp_pth_writer *w, const void *p, size_t n);
/* Finish (every tensor must be complete), write the directory, commit. */
void lp_pth_writer_close(lp_pth_writer *w);

/* The pickle alone: data.pkl's bytes for tensors (names, dtypes, shapes)
 * whose storages are keyed "0", "1", ... in order. *out is malloc'd. */
void lp_pth_pickle_state_dict(char *const *names, const int *dtypes, const int *ranks,
		const uint64_t (*shapes)[LP_PTH_MAX_RANK], size_t n, uint8_t **out, size_t *outlen);

#endif
