/* train_frames: JSON lines of token ids to the frames lora-train reads, for
 * the training tests (t14xx). Not a unit test: a helper.
 *
 *   train_frames < examples.jsonl > examples.frames
 *
 * Each line {"input_ids": [...], "labels": [...]} becomes one record of an
 * i32 input_ids frame and, when the line has labels, an i32 labels frame
 * (the record's last). Without arguments and with a terminal on stdin it
 * prints a TAP plan that skips. */
#include <jv.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/common.h"
#include "formats/frames.h"
#include "base/reader.h"

static int32_t *ints(jv a, size_t *n, const char *what, unsigned long line)
{
	if (jv_get_kind(a) != JV_KIND_ARRAY)
		lp_die("stdin", "line %lu: '%s' is not an array", line, what);
	*n = (size_t)jv_array_length(jv_copy(a));
	int32_t *v = lp_malloc(*n * sizeof *v + 1);
	for (size_t i = 0; i < *n; i++) {
		jv x = jv_array_get(jv_copy(a), (int)i);
		if (jv_get_kind(x) != JV_KIND_NUMBER)
			lp_die("stdin", "line %lu: '%s' holds a non-number", line, what);
		v[i] = (int32_t)jv_number_value(x);
		jv_free(x);
	}
	jv_free(a);
	return v;
}

int main(int argc, char **argv)
{
	lp_init(argv[0]);
	if (argc > 1 || isatty(0)) {
		puts("1..0 # SKIP helper for t14xx, not a unit test");
		return 0;
	}
	lp_reader *r = lp_reader_open(NULL);
	lp_frame_writer *w = lp_frame_writer_new(stdout, "stdout", 0);
	char *line;
	size_t len;
	while ((line = lp_reader_line(r, &len))) {
		unsigned long no = (unsigned long)lp_reader_lineno(r);
		if (!len)
			continue;
		jv v = jv_parse_sized(line, (int)len);
		if (jv_get_kind(v) != JV_KIND_OBJECT)
			lp_die("stdin", "line %lu: not a JSON object", no);
		size_t n, nl;
		int32_t *ids = ints(jv_object_get(jv_copy(v), jv_string("input_ids")), &n,
				"input_ids", no);
		jv lab = jv_object_get(jv_copy(v), jv_string("labels"));
		if (jv_get_kind(lab) == JV_KIND_NULL || !jv_is_valid(lab)) {
			jv_free(lab);
			lp_frame_write1(w, "input_ids", LP_I32, n, ids, LP_FRAME_LAST);
		} else {
			int32_t *labels = ints(lab, &nl, "labels", no);
			lp_frame_write1(w, "input_ids", LP_I32, n, ids, 0);
			lp_frame_write1(w, "labels", LP_I32, nl, labels, LP_FRAME_LAST);
			free(labels);
		}
		free(ids);
		jv_free(v);
	}
	lp_frame_writer_free(w);
	lp_reader_close(r);
	lp_close_stdout();
	return 0;
}
