/* framejson.c: frames printed as JSON (tok --dump) and prompt templates. */
#include <stdlib.h>
#include <string.h>

#include "formats/framejson.h"
#include "formats/frames.h"
#include "text/template.h"
#include "tap.h"

/* Write frames with w_fn, read them back as one record, print it. */
static char *roundtrip(void (*w_fn)(lp_frame_writer *))
{
	char *bytes = NULL, *json = NULL;
	size_t nb = 0, nj = 0;
	FILE *f = open_memstream(&bytes, &nb);
	lp_frame_writer *w = lp_frame_writer_new(f, "mem", 0);
	w_fn(w);
	lp_frame_writer_free(w);
	fclose(f);
	lp_reader *r = lp_reader_mem(bytes, nb, "mem");
	lp_record rec = {0};
	FILE *out = open_memstream(&json, &nj);
	if (lp_record_read(r, &rec))
		lp_record_print_json(out, "mem", &rec);
	fclose(out);
	lp_record_free(&rec);
	lp_reader_close(r);
	free(bytes);
	return json;
}

static void ints(lp_frame_writer *w)
{
	int32_t a[] = {1, -100, 2147483647};
	int64_t b[] = {-9000000000LL};
	uint8_t c[] = {0, 255};
	uint64_t d[] = {18446744073709551615ull};
	lp_frame_write1(w, "a", LP_I32, 3, a, 0);
	lp_frame_write1(w, "b \"q\"", LP_I64, 1, b, 0);
	lp_frame_write1(w, "c", LP_U8, 2, c, 0);
	lp_frame_write1(w, "d", LP_U64, 1, d, LP_FRAME_LAST);
}

static void reals(lp_frame_writer *w)
{
	float f[] = {0.1f, -2.5f, 1e30f};
	double d[] = {0.1, 1.0 / 3};
	uint16_t h[] = {0x3c00, 0xc000, 0x0001, 0x7c00};   /* f16: 1, -2, 2^-24, inf */
	uint16_t bf[] = {0x3f80, 0x4049};                  /* bf16: 1, 3.140625 */
	lp_frame_write1(w, "f", LP_F32, 3, f, 0);
	lp_frame_write1(w, "d", LP_F64, 2, d, 0);
	lp_frame_write1(w, "h", LP_F16, 4, h, 0);
	lp_frame_write1(w, "bf", LP_BF16, 2, bf, LP_FRAME_LAST);
}

static void ranks(lp_frame_writer *w)
{
	int16_t m[] = {1, 2, 3, 4, 5, 6};
	uint64_t s23[] = {2, 3}, s0[] = {0}, s20[] = {2, 0};
	int32_t scalar = 7;
	uint8_t t[] = {1, 0};
	lp_frame_write(w, "m", LP_I16, 2, s23, m, 0);
	lp_frame_write(w, "s", LP_I32, 0, NULL, &scalar, 0);
	lp_frame_write(w, "e", LP_F32, 1, s0, NULL, 0);
	lp_frame_write(w, "z", LP_I32, 2, s20, NULL, 0);
	lp_frame_write1(w, "t", LP_BOOL, 2, t, LP_FRAME_LAST);
}

static int same(const char *got, const char *want)
{
	if (!strcmp(got, want))
		return 1;
	printf("# got:  %s# want: %s", got, want);
	return 0;
}

int main(void)
{
	char *s = roundtrip(ints);
	ok(same(s, "{\"a\":[1,-100,2147483647],\"b \\\"q\\\"\":[-9000000000],\"c\":[0,255],"
			"\"d\":[18446744073709551615]}\n"), "integer dtypes, escaped name");
	free(s);
	s = roundtrip(reals);
	ok(same(s, "{\"f\":[0.1,-2.5,1e+30],\"d\":[0.1,0.3333333333333333],"
			"\"h\":[1,-2,5.9604645e-08,null],\"bf\":[1,3.140625]}\n"),
			"float dtypes: shortest round-trip decimals, inf as null");
	free(s);
	s = roundtrip(ranks);
	ok(same(s, "{\"m\":[[1,2,3],[4,5,6]],\"s\":7,\"e\":[],\"z\":[[],[]],"
			"\"t\":[true,false]}\n"), "rank 0, 1 and 2, empty dimensions, bool");
	free(s);

	char *p = NULL;
	size_t np = 0;
	FILE *f = open_memstream(&p, &np);
	int32_t ids[] = {1, 22, 333};
	lp_ids_print_json(f, "mem", "input_ids", ids, 3);
	lp_ids_print_json(f, "mem", "input_ids", ids, 0);
	fclose(f);
	ok(same(p, "{\"input_ids\":[1,22,333]}\n{\"input_ids\":[]}\n"), "ids lines");
	free(p);

	char err[256];
	lp_template *t = lp_template_load("alpaca", NULL, err, sizeof err);
	char *j = lp_instruction_join("do it", "with this");
	char *r = lp_template_render(t, j);
	ok(same(r, "Below is an instruction that describes a task. Write a response that "
			"appropriately completes the request.\n\n### Instruction:\ndo it\nwith this"
			"\n\n### Response: "), "alpaca prompt, input joined after a newline");
	free(r);
	free(j);
	j = lp_instruction_join("alone", "");
	ok(same(j, "alone"), "empty input adds nothing");
	free(j);
	lp_template_free(t);

	t = lp_template_load("llama2-chat", "sys {instruction}", err, sizeof err);
	r = lp_template_render(t, "q {system}");
	ok(same(r, "[INST] <<SYS>>\nsys {instruction}\n<</SYS>>\n\nq {system} [/INST]"),
			"llama2-chat: one pass, inserted text not rescanned");
	free(r);
	lp_template_free(t);
	t = lp_template_load("llama2-chat", NULL, err, sizeof err);
	r = lp_template_render(t, "q");
	ok(same(r, "[INST] <<SYS>>\nYou are a helpful assistant. 你是一个乐于助人的助手。\n"
			"<</SYS>>\n\nq [/INST]"), "llama2-chat default system prompt");
	free(r);
	lp_template_free(t);

	t = lp_template_load("raw", NULL, err, sizeof err);
	r = lp_template_render(t, "{x} {");
	ok(same(r, "{x} {"), "raw: other braces kept");
	free(r);
	lp_template_free(t);

	ok(!lp_template_load("no-such-template", NULL, err, sizeof err)
			&& strstr(err, "unknown template 'no-such-template'"), "unknown template: %s", err);
	return tap_done();
}
