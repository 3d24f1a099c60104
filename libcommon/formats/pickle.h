/* pickle.h: the state dict inside a PyTorch checkpoint, read without
 * running anything.
 *
 * torch.save(state_dict) writes a zip (zipread.h) holding "<archive>/data.pkl",
 * a Python pickle of a dict {name: tensor}, and one entry
 * "<archive>/data/<key>" per storage. A tensor pickles as a call of
 * torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
 * requires_grad, hooks[, metadata]) whose storage is a persistent id
 * ('storage', torch.<Type>Storage, key, location, numel).
 *
 * This reader is a small pickle machine that knows only the opcodes such a
 * pickle uses (protocols 2 to 5: PROTO FRAME STOP MARK POP NONE NEWTRUE
 * NEWFALSE BININT BININT1 BININT2 LONG1 BINFLOAT BINUNICODE
 * SHORT_BINUNICODE BINUNICODE8 EMPTY_TUPLE TUPLE TUPLE1 TUPLE2 TUPLE3
 * EMPTY_LIST APPEND APPENDS EMPTY_DICT SETITEM SETITEMS BINPUT LONG_BINPUT
 * MEMOIZE BINGET LONG_BINGET GLOBAL STACK_GLOBAL REDUCE BUILD BINPERSID)
 * and only these globals:
 *
 *   collections.OrderedDict              called with no arguments
 *   torch._utils._rebuild_tensor_v2      builds a tensor description
 *   torch._utils._rebuild_parameter      unwraps it (Parameter(tensor))
 *   torch.{Double,Float,Half,BFloat16,Long,Int,Short,Char,Byte,Bool}Storage
 *                                        only inside a persistent id
 *
 * Nothing is ever imported or called: REDUCE of a whitelisted callable
 * builds a description, REDUCE of anything else, any other global
 * ("refusing global 'os system'") and any other opcode ("opcode INST
 * (0x69) at byte 12 is not supported") are errors. BUILD is accepted only
 * on a dict (the _metadata attribute of an OrderedDict) and ignored.
 * Limits on the stack, the mark depth, the memo and the object count keep
 * hostile input from using more than a few times its own size in memory. */
#ifndef LP_PICKLE_H
#define LP_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#define LP_PK_MAX_RANK 8
#define LP_PK_MAX_OBJECTS (1u << 20)    /* values built; a 65B shard needs ~15k */
#define LP_PK_MAX_MEMO (1u << 22)       /* highest memo index */
#define LP_PK_MAX_MARKS 1024            /* nested MARKs; a state dict needs 3 */

/* One tensor, as the pickle describes it: the view (offset, shape,
 * stride, in elements) of a storage of storage_numel elements. The view
 * is checked to lie inside the storage. */
typedef struct {
	char *name;             /* the dict key */
	int dtype;              /* enum lp_dtype, from the storage type */
	char *storage;          /* storage key: zip entry "<archive>/data/<key>" */
	uint64_t storage_numel;
	uint64_t offset;
	int rank;
	uint64_t shape[LP_PK_MAX_RANK];
	uint64_t stride[LP_PK_MAX_RANK];
	uint64_t numel;         /* product of shape */
	int contiguous;         /* row-major without gaps (size-1 dims ignored) */
} lp_pk_tensor;

typedef struct {
	lp_pk_tensor *t;        /* n tensors, in the dict's order */
	size_t n;
} lp_pk_state_dict;

/* Read the state dict pickled in n bytes at buf: the top value must be a
 * dict of string keys and tensor values. 0 and *out filled, or -1 with a
 * one-line message in err (naming the opcode or global and its byte
 * offset) and nothing left to free. Never dies on bad input (the fuzz
 * target's entry point). */
int lp_pk_state_dict_parse(const void *buf, size_t n, lp_pk_state_dict *out,
		char *err, size_t errlen);
void lp_pk_state_dict_free(lp_pk_state_dict *sd);

/* The opcode's name ("BINPUT"), or NULL if byte op is no pickle opcode. */
const char *lp_pk_opcode_name(int op);

#endif
