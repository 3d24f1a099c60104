/* comm.c: the communicator's front (see comm.h): the one-process
 * implementation, the choice of MPI when a launcher started us, and the
 * all-reduces built from reduce-scatter and all-gather. */
#include "train/comm.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/common.h"
#include "kernels.h"
#include "train/comm_impl.h"

static const lp_comm_ops *ops; /* NULL: one rank */

double lp_comm_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int lp_comm_init(double timeout_s, char *err, size_t errlen)
{
	if (!lp_comm_mpi_ops)
		return 0;
	int rc = lp_comm_mpi_ops->init(timeout_s, err, errlen);
	if (rc < 0)
		return -1;
	if (rc == 1)
		ops = lp_comm_mpi_ops;
	return 0;
}

int lp_comm_attach_device(int cuda, char *err, size_t errlen)
{
	return ops ? ops->attach_device(cuda, err, errlen) : 0;
}

void lp_comm_finalize(void)
{
	if (ops)
		ops->finalize();
	ops = NULL;
}

int lp_comm_rank(void) { return ops ? ops->rank() : 0; }
int lp_comm_size(void) { return ops ? ops->size() : 1; }
int lp_comm_local_rank(void) { return ops ? ops->local_rank() : 0; }
const char *lp_comm_describe(void) { return ops ? ops->describe() : "single process"; }

const char *lp_comm_built(void)
{
	return lp_comm_mpi_built ? lp_comm_mpi_built : "single-process only (built without MPI)";
}

void lp_comm_set_step(int64_t step)
{
	if (ops)
		ops->set_step(step);
}

void lp_comm_reduce_scatter_f32(float *buf, size_t per)
{
	if (ops && per)
		ops->reduce_scatter_f32(buf, per);
}

void lp_comm_allgather_f32(float *buf, size_t per)
{
	if (ops && per)
		ops->allgather_f32(buf, per);
}

void lp_comm_allgather_bytes(const void *mine, void *all, size_t n)
{
	if (ops)
		ops->allgather_bytes(mine, all, n);
	else
		memmove(all, mine, n);
}

/* Slices through reduce-scatter and all-gather; the N*per.. tail (fewer
 * than N values) gathered from every rank and summed in rank order. */
void lp_comm_allreduce_f32(float *buf, size_t n)
{
	if (!ops)
		return;
	int N = ops->size();
	size_t per = n / (size_t)N, tail = n - per * (size_t)N;
	if (per) {
		ops->reduce_scatter_f32(buf, per);
		ops->allgather_f32(buf, per);
	}
	if (tail) {
		float mine[64], *all = lp_malloc((size_t)N * tail * sizeof *all);
		/* tail < N; a big job's tail goes through the heap */
		float *t = tail <= 64 ? mine : lp_malloc(tail * sizeof *t);
		lp_download(t, buf + per * N, tail * sizeof *t);
		ops->allgather_bytes(t, all, tail * sizeof *t);
		for (size_t i = 0; i < tail; i++) {
			float s = all[i];
			for (int r = 1; r < N; r++)
				s += all[(size_t)r * tail + i];
			t[i] = s;
		}
		lp_upload(buf + per * N, t, tail * sizeof *t);
		if (t != mine)
			free(t);
		free(all);
	}
}

void lp_comm_allreduce_f64(double *buf, size_t n)
{
	if (!ops)
		return;
	int N = ops->size();
	double *all = lp_malloc((size_t)N * n * sizeof *all);
	ops->allgather_bytes(buf, all, n * sizeof *buf);
	for (size_t i = 0; i < n; i++) {
		double s = all[i];
		for (int r = 1; r < N; r++)
			s += all[(size_t)r * n + i];
		buf[i] = s;
	}
	free(all);
}

void lp_comm_bcast(void *buf, size_t n, int root)
{
	if (ops)
		ops->bcast(buf, n, root);
}

void lp_comm_send(const void *buf, size_t n, int to)
{
	if (!ops)
		lp_die("comm", "send to rank %d in a one-rank run", to);
	ops->send(buf, n, to);
}

void lp_comm_recv(void *buf, size_t n, int from)
{
	if (!ops)
		lp_die("comm", "receive from rank %d in a one-rank run", from);
	ops->recv(buf, n, from);
}

void lp_comm_barrier(void)
{
	if (ops)
		ops->barrier();
}

void lp_comm_abort(const char *where, const char *fmt, ...)
{
	va_list ap;
	fflush(stdout);
	if (where)
		fprintf(stderr, "%s: %s: ", lp_prog, where);
	else
		fprintf(stderr, "%s: ", lp_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	if (ops)
		ops->abort(LP_EXIT_FAIL);
	exit(LP_EXIT_FAIL);
}
