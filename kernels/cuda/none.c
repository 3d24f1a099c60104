/* none.c: linked instead of kernels/cuda/ when the build has no nvcc. */
#include "backend.h"

const lp_backend_ops *const lp_cuda_ops_ptr = NULL;
