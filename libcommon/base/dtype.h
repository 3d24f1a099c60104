/* dtype.h: element types shared by frames, safetensors and the model code. */
#ifndef LP_DTYPE_H
#define LP_DTYPE_H

#include <stddef.h>

enum lp_dtype {
	LP_F32 = 1, LP_F16 = 2, LP_BF16 = 3, LP_I32 = 4,
	LP_I64 = 5, LP_U8 = 6, LP_I8 = 7, LP_F64 = 8,
	LP_I16 = 9, LP_U16 = 10, LP_U32 = 11, LP_U64 = 12, LP_BOOL = 13,
	LP_DTYPE_COUNT
};

size_t lp_dtype_size(int dtype);        /* bytes per element; 0 if unknown */
const char *lp_dtype_name(int dtype);   /* "f32", "bf16", ...; NULL if unknown */
int lp_dtype_parse(const char *name);   /* inverse of lp_dtype_name; 0 if unknown */

#endif
