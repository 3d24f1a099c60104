/* embedding.cu: token embedding lookup, out[N,C] = wte[ids[n], :], and
 * its backward, dwte[ids[n], :] += dout[n, :], deterministic: the rows
 * that share an id are added by one block in row order, exactly as the
 * CPU backend adds them (bit for bit with f32 activations). */
#include "cuda.cuh"

/* One thread per output element; wte (V,C) of any float type. A token id
 * outside [0, V) gives a row of zeros: the device cannot stop the program
 * with a message, so callers check ids on the host (tok, the model). */
template <typename T>
static __global__ void embedding_forward_kernel(T *out, const int32_t *ids, const void *wte,
		int wdtype, int V, int C, size_t total)
{
	LP_GRID_STRIDE(i, total) {
		size_t n = i / C, c = i % C;
		int id = ids[n];
		float v = id >= 0 && id < V ? ld_weight(wte, wdtype, (size_t)id * C + c) : 0.0f;
		store_f32(&out[i], v);
	}
}

template <typename T>
static void embedding_launch(void *out, const int32_t *ids, lp_weight wte, int N, int C)
{
	size_t total = (size_t)N * C;
	embedding_forward_kernel<T><<<lp_blocks(total, LP_THREADS), LP_THREADS, 0, lp_cuda.stream>>>(
			(T *)out, ids, wte.data, wte.dtype, wte.rows, C, total);
	LAUNCH_CHECK();
}

void lp_cuda_embedding_forward(void *out, const int32_t *ids, lp_weight wte, int N, int C)
{
	if (wte.dtype != LP_F32 && wte.dtype != LP_BF16 && wte.dtype != LP_F16)
		lp_die("cuda", "embedding_forward: table dtype %s is not f32, bf16 or f16",
				lp_cuda_dtype_name(wte.dtype));
	if (wte.cols != C)
		lp_die("cuda", "embedding_forward: table is (%d, %d), the op needs %d columns",
				wte.rows, wte.cols, C);
	if (N <= 0 || C <= 0)
		return;
	if (lp_cuda.act == LP_BF16)
		embedding_launch<__nv_bfloat16>(out, ids, wte, N, C);
	else
		embedding_launch<float>(out, ids, wte, N, C);
	OP_DONE("embedding_forward");
}

/* One block per row n. The block that holds the first row of an id (no
 * earlier row has it) sums every row of that id in row order onto dwte;
 * the others do nothing. It walks the rows in chunks of blockDim.x: the
 * rows of the chunk that hold the id are listed in order in shared memory
 * (a ballot per warp), then each thread adds them to its columns. No
 * atomics, and the additions happen in the CPU backend's order, so f32
 * results are the CPU's bit for bit. Ids outside [0, V) index nothing the
 * kernel can check (dwte's V is not known here): the caller checks ids on
 * the host, as the forward's callers do. */
#define EMB_THREADS 256
template <typename T>
static __global__ void __launch_bounds__(EMB_THREADS) embedding_backward_kernel(float *dwte,
		const T *dout, const int32_t *ids, int N, int C)
{
	__shared__ int earlier, list[EMB_THREADS], wcount[EMB_THREADS / 32];
	const int n = blockIdx.x, id = ids[n];
	const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
	if (threadIdx.x == 0)
		earlier = 0;
	__syncthreads();
	int seen = 0;
	for (int m = threadIdx.x; m < n && !seen; m += blockDim.x)
		seen = ids[m] == id;
	if (seen)
		earlier = 1;    /* every writer writes 1 */
	__syncthreads();
	if (earlier || id < 0)
		return;
	float *dst = dwte + (size_t)id * C;
	for (int m0 = n; m0 < N; m0 += EMB_THREADS) {
		int m = m0 + (int)threadIdx.x;
		bool hit = m < N && ids[m] == id;
		unsigned ballot = __ballot_sync(0xffffffffu, hit);
		if (lane == 0)
			wcount[warp] = __popc(ballot);
		__syncthreads();
		int pos = __popc(ballot & ((1u << lane) - 1u)), total = 0;
		for (int w = 0; w < EMB_THREADS / 32; w++) {
			if (w < warp)
				pos += wcount[w];
			total += wcount[w];
		}
		if (hit)
			list[pos] = m;
		__syncthreads();
		for (int c = threadIdx.x; c < C; c += blockDim.x) {
			float acc = dst[c];
			for (int k = 0; k < total; k++)
				acc += to_f32(dout[(size_t)list[k] * C + c]);
			dst[c] = acc;
		}
		__syncthreads();        /* list and wcount are rewritten next */
	}
}

template <typename T>
static void embedding_backward_launch(float *dwte, const void *dout, const int32_t *ids, int N,
		int C)
{
	embedding_backward_kernel<T><<<N, EMB_THREADS, 0, lp_cuda.stream>>>(dwte, (const T *)dout,
			ids, N, C);
	LAUNCH_CHECK();
}

void lp_cuda_embedding_backward(float *dwte, const void *dout, const int32_t *ids, int N, int C)
{
	if (N <= 0 || C <= 0)
		return;
	if (N > (1 << 30))
		lp_die("cuda", "embedding_backward: %d rows", N);
	if (lp_cuda.act == LP_BF16)
		embedding_backward_launch<__nv_bfloat16>(dwte, dout, ids, N, C);
	else
		embedding_backward_launch<float>(dwte, dout, ids, N, C);
	OP_DONE("embedding_backward");
}
