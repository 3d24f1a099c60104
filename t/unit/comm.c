/* comm: the communicator's operations on every rank, run by t1403 under
 * mpirun with 1, 2 and 3 ranks (and alone). Values are small integers, so
 * every sum is exact whatever order the library adds in; rank 0 prints
 * one TAP line per check, true when it held on every rank. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "kernels.h"
#include "tap.h"
#include "train/comm.h"

static int R, N;

/* True on every rank: the count of ranks where it failed is 0. */
static int all(int good)
{
	double bad = !good;
	lp_comm_allreduce_f64(&bad, 1);
	return bad == 0;
}

#define check(cond, ...) do { int a_ = all(cond); if (R == 0) ok(a_, __VA_ARGS__); } while (0)

static int allreduce_ok(size_t n)
{
	float *b = lp_alloc(n * sizeof *b), *h = lp_malloc(n * sizeof *h);
	for (size_t i = 0; i < n; i++)
		h[i] = (float)(R * 1000 + (int)(i % 997));
	lp_upload(b, h, n * sizeof *h);
	lp_comm_allreduce_f32(b, n);
	lp_download(h, b, n * sizeof *h);
	int good = 1;
	for (size_t i = 0; i < n; i++)
		good &= h[i] == (float)(N * (int)(i % 997) + 1000 * N * (N - 1) / 2);
	lp_free(b);
	free(h);
	return good;
}

int main(void)
{
	char err[256];
	lp_init("comm");
	if (lp_comm_init(30, err, sizeof err) != 0 ||
			lp_kernels_init(LP_DEVICE_CPU, -1, LP_F32, err, sizeof err) != 0)
		lp_die("comm", "%s", err);
	R = lp_comm_rank();
	N = lp_comm_size();
	if (R == 0)
		printf("# %s\n", lp_comm_describe());

	int *ranks = lp_malloc((size_t)N * sizeof *ranks), good = 1;
	lp_comm_allgather_bytes(&R, ranks, sizeof R);
	for (int r = 0; r < N; r++)
		good &= ranks[r] == r;
	check(good && lp_comm_local_rank() >= 0 && lp_comm_local_rank() <= R,
			"all-gather of bytes: ranks 0..%d in order", N - 1);

	size_t sizes[] = {1, 2, 3, 7, 1001, 4096 + 5};
	for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++)
		check(allreduce_ok(sizes[k]), "all-reduce of %zu f32", sizes[k]);

	/* reduce-scatter: this rank's slice summed; all-gather: every slice */
	size_t per = 11;
	float *b = lp_alloc(per * N * sizeof *b), *h = lp_malloc(per * N * sizeof *h);
	for (size_t i = 0; i < per * N; i++)
		h[i] = (float)(R + 1) * (float)i;
	lp_upload(b, h, per * N * sizeof *h);
	lp_comm_reduce_scatter_f32(b, per);
	lp_download(h, b, per * N * sizeof *h);
	good = 1;
	for (size_t i = R * per; i < (R + 1) * per; i++)
		good &= h[i] == (float)(N * (N + 1) / 2) * (float)i;
	check(good, "reduce-scatter of %zu x %d f32", per, N);
	for (size_t i = 0; i < per * N; i++)
		h[i] = i / per == (size_t)R ? (float)(i * 3) : -1.0f;
	lp_upload(b, h, per * N * sizeof *h);
	lp_comm_allgather_f32(b, per);
	lp_download(h, b, per * N * sizeof *h);
	good = 1;
	for (size_t i = 0; i < per * N; i++)
		good &= h[i] == (float)(i * 3);
	check(good, "all-gather of %zu x %d f32", per, N);
	lp_free(b);
	free(h);

	/* f64: the same bits on every rank, whatever the values */
	double x[3] = {0.1 * (R + 1), 1e-17 * (R + 3), -(double)R / 3.0};
	lp_comm_allreduce_f64(x, 3);
	double *xs = lp_malloc((size_t)N * sizeof x);
	lp_comm_allgather_bytes(x, xs, sizeof x);
	good = 1;
	for (int r = 0; r < N; r++)
		good &= !memcmp(xs + 3 * r, xs, sizeof x);
	check(good, "all-reduce of f64: the same bits on every rank");

	char msg[100], want[100];
	for (int root = 0; root < N; root += N > 1 ? N - 1 : 1) {
		for (int i = 0; i < 100; i++)
			msg[i] = R == root ? (char)(i * 7 + root) : 0, want[i] = (char)(i * 7 + root);
		lp_comm_bcast(msg, sizeof msg, root);
		check(!memcmp(msg, want, sizeof msg), "broadcast of 100 bytes from rank %d", root);
	}
	if (N > 1) { /* a ring: each rank sends its number to the next */
		int64_t v = 1000 + R, got = -1;
		if (R % 2 == 0) {
			lp_comm_send(&v, sizeof v, (R + 1) % N);
			lp_comm_recv(&got, sizeof got, (R + N - 1) % N);
		} else {
			lp_comm_recv(&got, sizeof got, (R + N - 1) % N);
			lp_comm_send(&v, sizeof v, (R + 1) % N);
		}
		check(got == 1000 + (R + N - 1) % N, "send and receive round a ring");
	}
	lp_comm_barrier();
	free(ranks);
	free(xs);
	int failed = R == 0 ? tap_done() : 0;
	lp_comm_finalize();
	lp_kernels_shutdown();
	return failed;
}
