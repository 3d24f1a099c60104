/* embedding.cu: token embedding lookup, out[N,C] = wte[ids[n], :]. */
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
}
