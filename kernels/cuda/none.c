/* none.c: linked instead of kernels/cuda/ when the build has no nvcc. */
#include "backend.h"

const lp_backend_ops *const lp_cuda_ops_ptr = NULL;
/* kernels/quant.c asks for the CUDA dequantizer */
void (*const lp_cuda_dequantize_rows_fn)(void *, int, const lp_qweight *, int64_t, int64_t) = NULL;
