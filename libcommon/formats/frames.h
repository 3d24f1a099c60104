/* frames.h: the frame format (see frames(5)).
 *
 * A frame is one named tensor: a 48-byte little-endian fixed header, the
 * shape (rank x u64), the name, zero padding to 8 bytes, the stored payload
 * (raw or one zstd frame), zero padding to 8 bytes. The header carries an
 * XXH3-64 of the stored payload and one of the header itself. Frames follow each other
 * with nothing between; a record is a run of frames whose last one carries
 * LP_FRAME_LAST. Every payload offset is a multiple of 8 from the start of
 * the stream, so a frame file can be mmapped and used in place.
 *
 * A stream ends with a 40-byte trailer (magic "LPFE") holding the number of
 * records and frames and a checksum over them: the XXH3-64 chain over every
 * frame's header_xxh3. A writer emits it only when it finishes, so a reader
 * that meets the end of a stream without one knows its writer failed. */
#ifndef LP_FRAMES_H
#define LP_FRAMES_H

#include <stdint.h>
#include <stdio.h>
#include "base/dtype.h"
#include "base/reader.h"

#define LP_FRAME_MAGIC "LPFR"
#define LP_FRAME_VERSION 1
#define LP_FRAME_HEADER 48      /* fixed part of the header, bytes */
#define LP_MAX_RANK 8
#define LP_MAX_NAME 255

/* flags */
#define LP_FRAME_LAST 0x1u      /* last frame of a record */
#define LP_FRAME_ZSTD 0x2u      /* payload is one zstd frame */
#define LP_FRAME_KNOWN_FLAGS (LP_FRAME_LAST | LP_FRAME_ZSTD)

#define LP_TRAILER_MAGIC "LPFE"
#define LP_TRAILER_SIZE 40

/* What a stream has carried since its start (or since the last trailer):
 * the counts and checksum its trailer must repeat. */
typedef struct {
	uint64_t records;   /* frames flagged LP_FRAME_LAST */
	uint64_t frames;
	uint64_t hash;      /* h = XXH3-64(header_xxh3 as 8 LE bytes, seed h), from 0 */
	int open;           /* frames read since the last one flagged last */
	int ended;          /* the last thing read was a valid trailer */
} lp_frame_tally;
/* Count one frame whose header checksum is header_xxh3. */
void lp_frame_tally_add(lp_frame_tally *t, uint64_t header_xxh3, uint32_t flags);


typedef struct {
	char name[LP_MAX_NAME + 1];
	int dtype;
	int rank;
	uint64_t shape[LP_MAX_RANK];
	uint32_t flags;
	uint64_t nbytes;    /* payload bytes after decompression */
	uint64_t offset;    /* stream offset of the frame header */
	void *data;         /* nbytes, 8-aligned */
	size_t cap;         /* allocated bytes of data (reused between reads) */
} lp_frame;

uint64_t lp_frame_numel(const lp_frame *f);

/* Writing. zstd_level 0 stores payloads raw; otherwise each payload is
 * compressed at that level (kept raw when that would not save bytes). */
typedef struct lp_frame_writer lp_frame_writer;
lp_frame_writer *lp_frame_writer_new(FILE *f, const char *name, int zstd_level);
void lp_frame_write(lp_frame_writer *w, const char *name, int dtype, int rank,
		const uint64_t *shape, const void *data, uint32_t flags);
/* Convenience: a rank-1 frame of n elements. */
void lp_frame_write1(lp_frame_writer *w, const char *name, int dtype,
		uint64_t n, const void *data, uint32_t flags);
/* The stream is complete: writes the trailer, flushes and frees. Call it
 * only on success (a tool that fails exits without it, so its reader sees a
 * stream without a trailer); dies if a record is left unfinished. */
void lp_frame_writer_free(lp_frame_writer *w);
/* Records written so far. */
uint64_t lp_frame_writer_records(const lp_frame_writer *w);

/* Reading: 1 and *f filled (data owned by f, valid until the next read into
 * the same f or lp_frame_free), 0 at the end of a stream whose trailer
 * agreed with t (the tally of what was read, zero at the start). Streams
 * concatenated whole (each with its trailer) read as one. A bad magic,
 * version, dtype, rank, flag, size or checksum, a stream that ends inside a
 * frame or without its trailer, or a trailer that disagrees with what came
 * before it, dies with the reader's name and the byte offset. */
int lp_frame_read(lp_reader *r, lp_frame *f, lp_frame_tally *t);
void lp_frame_free(lp_frame *f);
/* Same checks, reporting instead of dying: returns -1 and a message in err. */
int lp_frame_try_read(lp_reader *r, lp_frame *f, lp_frame_tally *t, char *err, size_t errlen);

/* A record: all frames up to and including one flagged LP_FRAME_LAST. */
typedef struct {
	lp_frame *frames;
	int n, cap;
	uint64_t offset;   /* of its first frame */
	uint64_t index;    /* 1-based number of the record in the stream */
	lp_frame_tally tally;
} lp_record;
/* 1 and a record, 0 at the end of a stream whose trailer checked out
 * (rec must start zeroed); anything else dies as lp_frame_read does. */
int lp_record_read(lp_reader *r, lp_record *rec);
/* The frame called name, or NULL. */
const lp_frame *lp_record_get(const lp_record *rec, const char *name);
void lp_record_free(lp_record *rec);

/* Does the stream start with a frame or trailer magic (after zstd is undone)? */
int lp_reader_is_frames(lp_reader *r);

#endif
