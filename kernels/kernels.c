/* kernels.c: forwards each op of kernels.h to the chosen backend; the
 * wrappers are generated from the op list of backend.h. */
#include "backend.h"

#include <stdio.h>
#include <stdlib.h>

#include "common.h"

static const lp_backend_ops *ops = &lp_cpu_ops;
static enum lp_device device = LP_DEVICE_CPU;
static int act_dtype = LP_F32;

static _Noreturn void missing(const char *op)
{
	lp_die(ops->name, "op %s is not implemented on this backend", op);
}

int lp_kernels_init(enum lp_device dev, int device_index, int dtype, char *err, size_t errlen)
{
	const lp_backend_ops *want = dev == LP_DEVICE_CUDA ? lp_cuda_ops_ptr : &lp_cpu_ops;
	if (!want) {
		snprintf(err, errlen, "this build has no CUDA backend (nvcc was not found)");
		return -1;
	}
	if (want->init(device_index, dtype, err, errlen) != 0)
		return -1;
	ops = want;
	device = dev;
	act_dtype = dtype;
	return 0;
}

enum lp_device lp_kernels_device(void) { return device; }
int lp_act_dtype(void) { return act_dtype; }
size_t lp_act_size(void) { return lp_dtype_size(act_dtype); }
const char *lp_kernels_describe(void) { return ops->describe(); }

void lp_kernels_shutdown(void)
{
	if (ops->shutdown)
		ops->shutdown();
}

void *lp_alloc(size_t bytes)
{
	if (!ops->alloc)
		missing("alloc");
	return ops->alloc(bytes);
}

/* lp_free, lp_upload, ... lp_adamw_f32: each forwards to the backend's
 * entry of the same name, or dies naming the op when it has none. */
#define LP_OP_WRAPPER(name, params, args) \
	void lp_##name params \
	{ \
		if (!ops->name) \
			missing(#name); \
		ops->name args; \
	}
LP_BACKEND_VOID_OPS(LP_OP_WRAPPER)
#undef LP_OP_WRAPPER

/* Backends without recording run the ops as they come. */
int lp_graph_replay(int slot)
{
	return ops->graph_replay ? ops->graph_replay(slot) : 0;
}

void lp_graph_record_begin(int slot)
{
	if (ops->graph_record_begin)
		ops->graph_record_begin(slot);
}

void lp_graph_record_end(int slot)
{
	if (ops->graph_record_end)
		ops->graph_record_end(slot);
}

void lp_graph_reset(void)
{
	if (ops->graph_reset)
		ops->graph_reset();
}
