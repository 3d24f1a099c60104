/* attention.cu: causal grouped-query attention, flash style.
 *
 * One kernel serves training/prefill (lp_attention_forward) and decoding
 * with a KV cache (lp_attention_cached): queries q[B,Tq,H,D], keys and
 * values k,v[B,Tk,KVH,D], query i of batch b at position past[b] + i
 * (past NULL: 0) sees keys s <= that position, s < min(past[b] + Tq, Tk),
 * with mask[b,s] != 0 (mask [B,Tk], NULL: all). Query head h reads key
 * head h / (H / KVH).
 *
 * One block per (query tile of BQ rows, head, batch); its four warps own
 * BQ/4 query rows each. The block walks the visible keys in tiles of BK =
 * 32 staged in shared memory as f32; in a tile, lane j of a warp scores key
 * j for the row, and the row's softmax is kept online in f32 (running max
 * m, running sum l, output accumulator rescaled when m grows), lane owning
 * head dims lane, lane + 32, ... So nothing of size T x T is ever stored,
 * and each row's lse = m + log(l) comes out for the backward pass. Masked
 * keys and keys past the cache's filled end are not read (zeros are
 * staged), so stale or NaN cache contents cannot leak into the output.
 *
 * A row with no visible key (everything masked) gets out = 0 and
 * lse = -inf. This is correctness first: no tensor cores, one block per
 * tile serially over all keys (decoding long contexts would want the keys
 * split across blocks). Head size up to 256.
 *
 * The backward recomputes the probabilities from the saved log-sum-exp,
 * P = exp(scale q.k - lse), with Dt = dout_t . out_t:
 *   dP = dO V^T,  dS = P (dP - Dt)
 *   dQ = scale dS K,  dK = scale dS^T Q,  dV = P^T dO
 * in two kernels that need no atomics: one block per (query tile, head)
 * forms dQ walking the keys; one block per (key tile, key/value head)
 * forms dK and dV walking the queries of every head of its group in head
 * order, so the sum over the group happens in registers and the result
 * does not depend on scheduling.
 *
 * Training attention goes through tensor-core GEMMs instead
 * (attention_gemm.cu) whenever its T x T buffers fit; these kernels serve
 * the rest, decoding, and LP_CUDA_ATTENTION=flash. */
#include "cuda.cuh"

#define BQ 16                   /* query rows per block */
#define BK 32                   /* keys per tile: one per lane */
#define WARPS 4
#define ROWS (BQ / WARPS)       /* query rows per warp */
#define MAXD 256
#define DPL (MAXD / 32)         /* head dims per lane, at most */

struct attn_args {
	void *out;                  /* [B,Tq,H,D] */
	float *lse;                 /* [B,H,Tq] or NULL */
	const void *q;              /* [B,Tq,H,D] */
	const void *k, *v;          /* [B,Tk,KVH,D] */
	const uint8_t *mask;        /* [B,Tk] or NULL */
	const int32_t *past;        /* [B] or NULL */
	int Tq, Tk, H, KVH, D;
	float scale;
};

template <typename T>
static __global__ void __launch_bounds__(WARPS * 32) attention_kernel(attn_args a)
{
	extern __shared__ float smem[];
	__shared__ int kvalid[BK];
	const int D = a.D, KD = D | 1;          /* odd stride: lanes read K rows conflict-free */
	float *qs = smem;                       /* [BQ][D]  this tile's queries */
	float *ks = qs + BQ * D;                /* [BK][KD] current key tile */
	float *vs = ks + BK * KD;               /* [BK][D]  current value tile */

	const int b = blockIdx.z, h = blockIdx.y, t0 = blockIdx.x * BQ;
	const int kvh = h / (a.H / a.KVH);
	const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
	const int past = a.past ? a.past[b] : 0;
	const T *Q = (const T *)a.q, *K = (const T *)a.k, *V = (const T *)a.v;

	for (int e = threadIdx.x; e < BQ * D; e += blockDim.x) {
		int r = e / D, d = e % D, t = t0 + r;
		qs[e] = t < a.Tq ? to_f32(Q[(((size_t)b * a.Tq + t) * a.H + h) * D + d]) : 0.0f;
	}

	/* keys [0, kend) are the most any row of this tile may see */
	const int tlast = min(t0 + BQ, a.Tq) - 1;
	const int kend = min(past + tlast + 1, min(past + a.Tq, a.Tk));

	float m[ROWS], l[ROWS], acc[ROWS][DPL];
	#pragma unroll
	for (int r = 0; r < ROWS; r++) {
		m[r] = -INFINITY;
		l[r] = 0.0f;
		#pragma unroll
		for (int j = 0; j < DPL; j++)
			acc[r][j] = 0.0f;
	}

	for (int k0 = 0; k0 < kend; k0 += BK) {
		__syncthreads();        /* qs is written; nobody reads the last tile any more */
		for (int e = threadIdx.x; e < BK * D; e += blockDim.x) {
			int j = e / D, d = e % D, s = k0 + j;
			bool ok = s < kend && (!a.mask || a.mask[(size_t)b * a.Tk + s]);
			size_t off = (((size_t)b * a.Tk + s) * a.KVH + kvh) * D + d;
			ks[j * KD + d] = ok ? to_f32(K[off]) : 0.0f;
			vs[j * D + d] = ok ? to_f32(V[off]) : 0.0f;
			if (d == 0)
				kvalid[j] = ok;
		}
		__syncthreads();

		const int s = k0 + lane;            /* the key this lane scores */
		#pragma unroll
		for (int r = 0; r < ROWS; r++) {
			const int qr = warp * ROWS + r, t = t0 + qr;
			if (t >= a.Tq)                  /* the same for the whole warp */
				continue;
			float sc = -INFINITY;
			if (kvalid[lane] && s <= past + t) {
				float dot = 0.0f;
				for (int d = 0; d < D; d++)
					dot += qs[qr * D + d] * ks[lane * KD + d];
				sc = dot * a.scale;
			}
			float mnew = fmaxf(m[r], warp_max(sc));
			if (mnew == -INFINITY)          /* no visible key yet (whole warp) */
				continue;
			float p = expf(sc - mnew);          /* 0 for a hidden key */
			float corr = expf(m[r] - mnew);     /* 0 while m was -inf */
			l[r] = l[r] * corr + warp_sum(p);
			m[r] = mnew;
			#pragma unroll
			for (int j = 0; j < DPL; j++)
				acc[r][j] *= corr;
			for (int jj = 0; jj < BK; jj++) {
				float pj = __shfl_sync(0xffffffffu, p, jj);
				if (pj == 0.0f)             /* the same for the whole warp */
					continue;
				#pragma unroll
				for (int j = 0; j < DPL; j++) {
					int d = lane + 32 * j;
					if (d < D)
						acc[r][j] += pj * vs[jj * D + d];
				}
			}
		}
	}

	T *O = (T *)a.out;
	#pragma unroll
	for (int r = 0; r < ROWS; r++) {
		const int t = t0 + warp * ROWS + r;
		if (t >= a.Tq)
			continue;
		float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
		T *o = O + (((size_t)b * a.Tq + t) * a.H + h) * D;
		#pragma unroll
		for (int j = 0; j < DPL; j++) {
			int d = lane + 32 * j;
			if (d < D)
				store_f32(&o[d], acc[r][j] * inv);
		}
		if (a.lse && lane == 0)
			a.lse[((size_t)b * a.H + h) * a.Tq + t] =
				l[r] > 0.0f ? m[r] + logf(l[r]) : -INFINITY;
	}
}

template <typename T>
static void attention_launch(const attn_args &a, int B)
{
	size_t smem = sizeof(float) * ((size_t)BQ * a.D + (size_t)BK * (a.D | 1) + (size_t)BK * a.D);
	if (smem > 48 * 1024)
		CUDA_CHECK(cudaFuncSetAttribute(attention_kernel<T>,
				cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
	dim3 grid((unsigned)((a.Tq + BQ - 1) / BQ), (unsigned)a.H, (unsigned)B);
	attention_kernel<T><<<grid, WARPS * 32, smem, lp_cuda.stream>>>(a);
	LAUNCH_CHECK();
}

static void check_shape(const char *op, int B, int H, int KVH, int D)
{
	if (KVH <= 0 || H % KVH)
		lp_die("cuda", "%s: %d query heads do not divide into %d key/value heads", op, H, KVH);
	if (D > MAXD)
		lp_die("cuda", "%s: head size %d is over %d", op, D, MAXD);
	if (B > 65535 || H > 65535)
		lp_die("cuda", "%s: batch %d or heads %d over 65535", op, B, H);
}

static void attention(attn_args a, int B)
{
	if (!(a.scale > 0.0f))
		a.scale = 1.0f / sqrtf((float)a.D);
	if (lp_cuda.act == LP_BF16)
		attention_launch<__nv_bfloat16>(a, B);
	else
		attention_launch<float>(a, B);
}

void lp_cuda_attention_forward(void *out, float *lse, const void *q, const void *k,
		const void *v, const uint8_t *mask, int B, int T, int H, int KVH, int D,
		float scale)
{
	if (KVH <= 0 || H % KVH)
		lp_die("cuda", "attention_forward: %d query heads do not divide into %d key/value "
				"heads", H, KVH);
	if (B <= 0 || T <= 0 || H <= 0 || D <= 0)
		return;
	if (lp_cuda_attention_use_gemm(B, T, H, 0)) {
		lp_cuda_attention_gemm_forward(out, lse, q, k, v, mask, B, T, H, KVH, D,
				scale > 0.0f ? scale : 1.0f / sqrtf((float)D));
		OP_DONE("attention_forward");
		return;
	}
	check_shape("attention_forward", B, H, KVH, D);
	attn_args a = { out, lse, q, k, v, mask, NULL, T, T, H, KVH, D, scale };
	attention(a, B);
	OP_DONE("attention_forward");
}

void lp_cuda_attention_cached(void *out, const void *q, const void *kcache,
		const void *vcache, const int32_t *past, const uint8_t *cache_mask,
		int B, int Tq, int Tmax, int H, int KVH, int D, float scale)
{
	check_shape("attention_cached", B, H, KVH, D);
	if (B <= 0 || Tq <= 0 || H <= 0 || D <= 0)
		return;
	attn_args a = { out, NULL, q, kcache, vcache, cache_mask, past, Tq, Tmax, H, KVH, D, scale };
	attention(a, B);
	OP_DONE("attention_cached");
}

/* ---- KV cache writes ---- */

/* One thread per element e of k,v[B,Tq,KVH,D]; position past[b] + i
 * outside [0, Tmax) is skipped (the caller sizes the cache). */
template <typename T>
static __global__ void kv_store_kernel(T *kc, T *vc, const T *k, const T *v,
		const int32_t *past, int Tq, int Tmax, int KVH, int D, size_t total)
{
	LP_GRID_STRIDE(e, total) {
		size_t d = e % D, rest = e / D;
		size_t hh = rest % KVH;
		rest /= KVH;
		size_t i = rest % Tq, b = rest / Tq;
		long long pos = (long long)past[b] + (long long)i;
		if (pos < 0 || pos >= Tmax)
			continue;
		size_t dst = ((b * Tmax + (size_t)pos) * KVH + hh) * D + d;
		kc[dst] = k[e];
		vc[dst] = v[e];
	}
}

template <typename T>
static void kv_store_launch(void *kc, void *vc, const void *k, const void *v,
		const int32_t *past, int B, int Tq, int Tmax, int KVH, int D)
{
	size_t total = (size_t)B * Tq * KVH * D;
	kv_store_kernel<T><<<lp_blocks(total, LP_THREADS), LP_THREADS, 0, lp_cuda.stream>>>(
			(T *)kc, (T *)vc, (const T *)k, (const T *)v, past, Tq, Tmax, KVH, D, total);
	LAUNCH_CHECK();
}

void lp_cuda_kv_store(void *kcache, void *vcache, const void *k, const void *v,
		const int32_t *past, int B, int Tq, int Tmax, int KVH, int D)
{
	if (B <= 0 || Tq <= 0 || KVH <= 0 || D <= 0)
		return;
	if (lp_cuda.act == LP_BF16)
		kv_store_launch<__nv_bfloat16>(kcache, vcache, k, v, past, B, Tq, Tmax, KVH, D);
	else
		kv_store_launch<float>(kcache, vcache, k, v, past, B, Tq, Tmax, KVH, D);
	OP_DONE("kv_store");
}

/* ---- backward ---- */

struct attn_bwd_args {
	void *dq, *dk, *dv;         /* [B,T,H,D], [B,T,KVH,D] x2 */
	const void *dout;           /* [B,T,H,D] */
	const float *lse;           /* [B,H,T] */
	const float *dt;            /* [B,H,T]: dout_t . out_t */
	const void *q, *k, *v;
	const uint8_t *mask;        /* [B,T] or NULL */
	int T, H, KVH, D;
	float scale;
};

/* dt[b,h,t] = sum_d dout * out: one warp per (b, t, h) row, the warps
 * striding over the rows. */
template <typename T>
static __global__ void attention_dt_kernel(float *dt, const T *dout, const T *out, int Tn, int H,
		int D, size_t rows)
{
	const int lane = threadIdx.x % 32;
	const size_t warps = (size_t)gridDim.x * blockDim.x / 32;
	for (size_t row = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) / 32; row < rows;
			row += warps) {
		float s = 0.0f;
		for (int d = lane; d < D; d += 32)
			s += to_f32(dout[row * D + d]) * to_f32(out[row * D + d]);
		s = warp_sum(s);
		if (lane == 0) {            /* row = (b * T + t) * H + h */
			size_t h = row % H, bt = row / H, t = bt % Tn, b = bt / Tn;
			dt[(b * H + h) * Tn + t] = s;
		}
	}
}

/* dQ: one block per (query tile of BQ rows, head, batch), as the forward:
 * four warps of ROWS query rows each, keys in tiles of BK, lane j scoring
 * key j; lane owns head dims lane, lane + 32, ... of the accumulator. */
template <typename T>
static __global__ void __launch_bounds__(WARPS * 32) attention_dq_kernel(attn_bwd_args a)
{
	extern __shared__ float smem[];
	__shared__ int kvalid[BK];
	const int D = a.D, KD = D | 1;
	float *qs = smem;                       /* [BQ][D] */
	float *dos = qs + BQ * D;               /* [BQ][D] */
	float *ks = dos + BQ * D;               /* [BK][KD] */
	float *vs = ks + BK * KD;               /* [BK][KD] */

	const int b = blockIdx.z, h = blockIdx.y, t0 = blockIdx.x * BQ;
	const int kvh = h / (a.H / a.KVH);
	const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
	const T *Q = (const T *)a.q, *K = (const T *)a.k, *V = (const T *)a.v;
	const T *dO = (const T *)a.dout;

	for (int e = threadIdx.x; e < BQ * D; e += blockDim.x) {
		int r = e / D, d = e % D, t = t0 + r;
		size_t off = (((size_t)b * a.T + t) * a.H + h) * D + d;
		qs[e] = t < a.T ? to_f32(Q[off]) : 0.0f;
		dos[e] = t < a.T ? to_f32(dO[off]) : 0.0f;
	}
	float lse[ROWS], dtr[ROWS], acc[ROWS][DPL];
	#pragma unroll
	for (int r = 0; r < ROWS; r++) {
		int t = t0 + warp * ROWS + r;
		size_t li = ((size_t)b * a.H + h) * a.T + t;
		lse[r] = t < a.T ? a.lse[li] : -INFINITY;
		dtr[r] = t < a.T ? a.dt[li] : 0.0f;
		#pragma unroll
		for (int j = 0; j < DPL; j++)
			acc[r][j] = 0.0f;
	}
	const int kend = min(t0 + BQ, a.T);     /* keys a row of this tile may see */

	for (int k0 = 0; k0 < kend; k0 += BK) {
		__syncthreads();
		for (int e = threadIdx.x; e < BK * D; e += blockDim.x) {
			int j = e / D, d = e % D, s = k0 + j;
			bool ok = s < kend && (!a.mask || a.mask[(size_t)b * a.T + s]);
			size_t off = (((size_t)b * a.T + s) * a.KVH + kvh) * D + d;
			ks[j * KD + d] = ok ? to_f32(K[off]) : 0.0f;
			vs[j * KD + d] = ok ? to_f32(V[off]) : 0.0f;
			if (d == 0)
				kvalid[j] = ok;
		}
		__syncthreads();

		const int s = k0 + lane;
		#pragma unroll
		for (int r = 0; r < ROWS; r++) {
			const int qr = warp * ROWS + r, t = t0 + qr;
			if (t >= a.T || lse[r] == -INFINITY)    /* the same for the whole warp */
				continue;
			float ds = 0.0f;
			if (kvalid[lane] && s <= t) {
				float sc = 0.0f, dp = 0.0f;
				for (int d = 0; d < D; d++) {
					sc += qs[qr * D + d] * ks[lane * KD + d];
					dp += dos[qr * D + d] * vs[lane * KD + d];
				}
				float p = expf(sc * a.scale - lse[r]);
				ds = p * (dp - dtr[r]);
			}
			for (int jj = 0; jj < BK; jj++) {
				float dsj = __shfl_sync(0xffffffffu, ds, jj);
				if (dsj == 0.0f)                /* the same for the whole warp */
					continue;
				#pragma unroll
				for (int j = 0; j < DPL; j++) {
					int d = lane + 32 * j;
					if (d < D)
						acc[r][j] += dsj * ks[jj * KD + d];
				}
			}
		}
	}

	T *dQ = (T *)a.dq;
	#pragma unroll
	for (int r = 0; r < ROWS; r++) {
		const int t = t0 + warp * ROWS + r;
		if (t >= a.T)
			continue;
		T *o = dQ + (((size_t)b * a.T + t) * a.H + h) * D;
		#pragma unroll
		for (int j = 0; j < DPL; j++) {
			int d = lane + 32 * j;
			if (d < D)
				store_f32(&o[d], acc[r][j] * a.scale);
		}
	}
}

/* dK, dV: one block per (key tile of BQ keys, key/value head, batch); its
 * warps own ROWS keys each; queries go in tiles of 32, lane j scoring
 * query j, for each head of the group in turn. */
template <typename T>
static __global__ void __launch_bounds__(WARPS * 32) attention_dkv_kernel(attn_bwd_args a)
{
	extern __shared__ float smem[];
	__shared__ float lse_s[BK], dt_s[BK];
	const int D = a.D, QD = D | 1;
	float *ks = smem;                       /* [BQ][D] this tile's keys */
	float *vs = ks + BQ * D;                /* [BQ][D] */
	float *qs = vs + BQ * D;                /* [BK][QD] current query tile */
	float *dos = qs + BK * QD;              /* [BK][QD] */

	const int b = blockIdx.z, kvh = blockIdx.y, s0 = blockIdx.x * BQ;
	const int rep = a.H / a.KVH;
	const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
	const T *Q = (const T *)a.q, *K = (const T *)a.k, *V = (const T *)a.v;
	const T *dO = (const T *)a.dout;

	for (int e = threadIdx.x; e < BQ * D; e += blockDim.x) {
		int r = e / D, d = e % D, s = s0 + r;
		bool ok = s < a.T && (!a.mask || a.mask[(size_t)b * a.T + s]);
		size_t off = (((size_t)b * a.T + s) * a.KVH + kvh) * D + d;
		ks[e] = ok ? to_f32(K[off]) : 0.0f;
		vs[e] = ok ? to_f32(V[off]) : 0.0f;
	}
	bool kok[ROWS];
	float dk[ROWS][DPL], dv[ROWS][DPL];
	#pragma unroll
	for (int r = 0; r < ROWS; r++) {
		int s = s0 + warp * ROWS + r;
		kok[r] = s < a.T && (!a.mask || a.mask[(size_t)b * a.T + s]);
		#pragma unroll
		for (int j = 0; j < DPL; j++)
			dk[r][j] = dv[r][j] = 0.0f;
	}

	for (int h = kvh * rep; h < (kvh + 1) * rep; h++) {
		for (int q0 = s0 / BK * BK; q0 < a.T; q0 += BK) {
			__syncthreads();        /* nobody reads the last query tile any more */
			for (int e = threadIdx.x; e < BK * D; e += blockDim.x) {
				int j = e / D, d = e % D, t = q0 + j;
				size_t off = (((size_t)b * a.T + t) * a.H + h) * D + d;
				qs[j * QD + d] = t < a.T ? to_f32(Q[off]) : 0.0f;
				dos[j * QD + d] = t < a.T ? to_f32(dO[off]) : 0.0f;
			}
			if (threadIdx.x < BK) {
				int t = q0 + threadIdx.x;
				size_t li = ((size_t)b * a.H + h) * a.T + t;
				lse_s[threadIdx.x] = t < a.T ? a.lse[li] : -INFINITY;
				dt_s[threadIdx.x] = t < a.T ? a.dt[li] : 0.0f;
			}
			__syncthreads();

			const int t = q0 + lane;        /* the query this lane scores */
			const float l = lse_s[lane];
			#pragma unroll
			for (int r = 0; r < ROWS; r++) {
				const int kr = warp * ROWS + r, s = s0 + kr;
				if (!kok[r])                /* the same for the whole warp */
					continue;
				float p = 0.0f, ds = 0.0f;
				if (t < a.T && t >= s && l != -INFINITY) {
					float sc = 0.0f, dp = 0.0f;
					for (int d = 0; d < D; d++) {
						sc += qs[lane * QD + d] * ks[kr * D + d];
						dp += dos[lane * QD + d] * vs[kr * D + d];
					}
					p = expf(sc * a.scale - l);
					ds = p * (dp - dt_s[lane]);
				}
				for (int jj = 0; jj < BK; jj++) {
					float pj = __shfl_sync(0xffffffffu, p, jj);
					float dsj = __shfl_sync(0xffffffffu, ds, jj);
					if (pj == 0.0f && dsj == 0.0f)  /* the same for the whole warp */
						continue;
					#pragma unroll
					for (int j = 0; j < DPL; j++) {
						int d = lane + 32 * j;
						if (d < D) {
							dv[r][j] += pj * dos[jj * QD + d];
							dk[r][j] += dsj * qs[jj * QD + d];
						}
					}
				}
			}
		}
	}

	T *dK = (T *)a.dk, *dV = (T *)a.dv;
	#pragma unroll
	for (int r = 0; r < ROWS; r++) {
		const int s = s0 + warp * ROWS + r;
		if (s >= a.T)
			continue;
		size_t off = (((size_t)b * a.T + s) * a.KVH + kvh) * D;
		#pragma unroll
		for (int j = 0; j < DPL; j++) {
			int d = lane + 32 * j;
			if (d < D) {
				store_f32(&dK[off + d], dk[r][j] * a.scale);
				store_f32(&dV[off + d], dv[r][j]);
			}
		}
	}
}

template <typename T>
static void attention_backward_launch(attn_bwd_args a, const void *out, int B)
{
	size_t rows = (size_t)B * a.T * a.H;
	float *dt = (float *)lp_cuda_scratch(rows * sizeof(float));
	a.dt = dt;
	attention_dt_kernel<T><<<lp_blocks(rows * 32, LP_THREADS), LP_THREADS, 0, lp_cuda.stream>>>(
			dt, (const T *)a.dout, (const T *)out, a.T, a.H, a.D, rows);
	LAUNCH_CHECK();

	size_t smem = sizeof(float) * (2 * (size_t)BQ * a.D + 2 * (size_t)BK * (a.D | 1));
	if (smem > 48 * 1024) {
		CUDA_CHECK(cudaFuncSetAttribute(attention_dq_kernel<T>,
				cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
		CUDA_CHECK(cudaFuncSetAttribute(attention_dkv_kernel<T>,
				cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
	}
	dim3 gq((unsigned)((a.T + BQ - 1) / BQ), (unsigned)a.H, (unsigned)B);
	attention_dq_kernel<T><<<gq, WARPS * 32, smem, lp_cuda.stream>>>(a);
	LAUNCH_CHECK();
	dim3 gk((unsigned)((a.T + BQ - 1) / BQ), (unsigned)a.KVH, (unsigned)B);
	attention_dkv_kernel<T><<<gk, WARPS * 32, smem, lp_cuda.stream>>>(a);
	LAUNCH_CHECK();
}

void lp_cuda_attention_backward(void *dq, void *dk, void *dv, const void *dout,
		const void *out, const float *lse, const void *q, const void *k,
		const void *v, const uint8_t *mask, int B, int T, int H, int KVH, int D,
		float scale)
{
	if (KVH <= 0 || H % KVH)
		lp_die("cuda", "attention_backward: %d query heads do not divide into %d key/value "
				"heads", H, KVH);
	if (B <= 0 || T <= 0 || H <= 0 || D <= 0)
		return;
	if (!(scale > 0.0f))
		scale = 1.0f / sqrtf((float)D);
	if (lp_cuda_attention_use_gemm(B, T, H, 1)) {
		lp_cuda_attention_gemm_backward(dq, dk, dv, dout, out, lse, q, k, v, mask, B, T, H,
				KVH, D, scale);
		OP_DONE("attention_backward");
		return;
	}
	check_shape("attention_backward", B, H, KVH, D);
	attn_bwd_args a = { dq, dk, dv, dout, lse, NULL, q, k, v, mask, T, H, KVH, D, scale };
	if (lp_cuda.act == LP_BF16)
		attention_backward_launch<__nv_bfloat16>(a, out, B);
	else
		attention_backward_launch<float>(a, out, B);
	OP_DONE("attention_backward");
}
