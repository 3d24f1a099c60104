/* quant_load.h: Linear weights of a model quantized as they are loaded.
 *
 * A weight is read from its file a block of rows at a time, quantized on
 * the host (kernels.h: lp_quantize_rows) and uploaded as codes and scales;
 * pages of a mapped file are handed back to the kernel once quantized, so
 * a model loads with no more than one block of rows of it in full
 * precision. 4-bit types are double-quantized (as QLoRA,
 * bnb_4bit_use_double_quant=True), with bitsandbytes' block size 64. */
#ifndef LP_QUANT_LOAD_H
#define LP_QUANT_LOAD_H

#include "kernels.h"
#include "model/model_files.h"

/* The quantized weights a model owns. */
typedef struct {
	lp_qweight **w;
	int n, cap;
	float int8_threshold;   /* given to each int8 weight loaded (kernels.h) */
} lp_qweights;

/* LLM.int8's outlier threshold, bitsandbytes' default for inference. */
#define LP_INT8_THRESHOLD 6.0f

#define LP_QBLOCKSIZE 64

/* A 2-D float tensor t whose bytes are data (lp_mf_data), quantized onto
 * the device as qtype (4-bit: double-quantized), a block of rows at a
 * time; done(p, n), when not NULL, is told of each block once quantized
 * (to drop the pages of a mapping). The tensor is not released. */
lp_qweight *lp_quantize_tensor(const lp_mf_tensor *t, const void *data,
		void (*done)(const void *p, size_t n), int qtype);

/* Tensor t, of shape (rows, cols), quantized onto the device as qtype; the
 * tensor is released. Dies naming it on a shape or dtype mismatch. */
lp_weight lp_qweights_load(lp_qweights *set, const lp_mf_tensor *t, int64_t rows, int64_t cols,
		int qtype);
/* Device bytes of every weight in the set. */
size_t lp_qweights_bytes(const lp_qweights *set);
void lp_qweights_free(lp_qweights *set);

#endif
