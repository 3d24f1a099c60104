/* dtype.c: element type names and sizes. */
#include "base/dtype.h"

#include <string.h>

static const struct { const char *name; size_t size; } types[LP_DTYPE_COUNT] = {
	[LP_F32] = {"f32", 4},  [LP_F16] = {"f16", 2},  [LP_BF16] = {"bf16", 2},
	[LP_I32] = {"i32", 4},  [LP_I64] = {"i64", 8},  [LP_U8] = {"u8", 1},
	[LP_I8] = {"i8", 1},    [LP_F64] = {"f64", 8},  [LP_I16] = {"i16", 2},
	[LP_U16] = {"u16", 2},  [LP_U32] = {"u32", 4},  [LP_U64] = {"u64", 8},
	[LP_BOOL] = {"bool", 1},
};

size_t lp_dtype_size(int d)
{
	return d > 0 && d < LP_DTYPE_COUNT ? types[d].size : 0;
}

const char *lp_dtype_name(int d)
{
	return d > 0 && d < LP_DTYPE_COUNT ? types[d].name : NULL;
}

int lp_dtype_parse(const char *name)
{
	for (int d = 1; d < LP_DTYPE_COUNT; d++)
		if (!strcmp(types[d].name, name))
			return d;
	return 0;
}
