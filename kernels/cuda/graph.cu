/* graph.cu: recording and replaying a fixed sequence of ops as a CUDA
 * graph (kernels.h's lp_graph_*), so that a decoding step costs one launch
 * instead of hundreds. Off unless LP_CUDA_GRAPH=1, and never under
 * LP_CUDA_SYNC=1 (which waits inside every op). While a slot records, the
 * stream is captured: the ops are not run until lp_graph_record_end
 * instantiates the graph and launches it. */
#include <cstdlib>
#include <cstring>

#include "cuda.cuh"

static struct {
	cudaGraphExec_t exec;
	int ready;
} slots[LP_GRAPH_SLOTS];
static int recording = -1;

static int enabled(int slot)
{
	const char *e = getenv("LP_CUDA_GRAPH");
	return e && !strcmp(e, "1") && !lp_cuda.sync && slot >= 0 && slot < LP_GRAPH_SLOTS;
}

int lp_cuda_graph_replay(int slot)
{
	if (!enabled(slot) || !slots[slot].ready)
		return 0;
	CUDA_CHECK(cudaGraphLaunch(slots[slot].exec, lp_cuda.stream));
	return 1;
}

void lp_cuda_graph_record_begin(int slot)
{
	if (!enabled(slot) || recording >= 0)
		return;
	if (slots[slot].ready) {
		CUDA_CHECK(cudaGraphExecDestroy(slots[slot].exec));
		slots[slot].ready = 0;
	}
	CUDA_CHECK(cudaStreamBeginCapture(lp_cuda.stream, cudaStreamCaptureModeThreadLocal));
	recording = slot;
}

void lp_cuda_graph_record_end(int slot)
{
	if (recording != slot || slot < 0)
		return;
	recording = -1;
	cudaGraph_t g;
	CUDA_CHECK(cudaStreamEndCapture(lp_cuda.stream, &g));
	CUDA_CHECK(cudaGraphInstantiate(&slots[slot].exec, g, 0));
	CUDA_CHECK(cudaGraphDestroy(g));
	slots[slot].ready = 1;
	CUDA_CHECK(cudaGraphLaunch(slots[slot].exec, lp_cuda.stream));
}

void lp_cuda_graph_reset(void)
{
	for (int i = 0; i < LP_GRAPH_SLOTS; i++)
		if (slots[i].ready) {
			CUDA_CHECK(cudaGraphExecDestroy(slots[i].exec));
			slots[i].ready = 0;
		}
}
