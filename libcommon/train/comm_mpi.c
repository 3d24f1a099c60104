/* comm_mpi.c: the MPI implementation of comm.h (built when the Makefile
 * finds MPI; LP_HAVE_MPI), with NCCL for CUDA buffers when comm_nccl.c has
 * it.
 *
 * Every operation is started non-blocking and waited for by polling with
 * a deadline. Before each collective a rank other than 0 tells rank 0 the
 * collective's number (a small eager message), and repeats it every
 * quarter of the timeout while it waits, so when one does not complete in
 * time rank 0 can name the ranks that never got there and those that fell
 * silent inside it (stopped, or dead before the launcher noticed). */
#include "train/comm_impl.h"

#ifndef LP_HAVE_MPI
const lp_comm_ops *const lp_comm_mpi_ops = NULL;
const char *const lp_comm_mpi_built = NULL;
#else

#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/common.h"
#include "kernels.h"
#include "train/comm.h"

enum { TAG_ARRIVE = 7001, TAG_DATA = 7002 };

static struct {
	MPI_Comm world;
	int rank, size, local_rank, local_size, nodes;
	double timeout;
	int64_t step;           /* for messages */
	int64_t op;             /* collectives started */
	int nccl;               /* NCCL reduces the f32 buffers */
	size_t chunk;           /* elements per MPI call */
	/* rank 0: the last collective each rank reached */
	int64_t *arrived, *arrive_buf;
	double *heard;          /* when rank 0 last heard from each rank */
	MPI_Request *arrive_req;
	/* other ranks: the outstanding arrival message */
	int64_t arrive_val;
	MPI_Request arrive_send;
	double told;            /* when this rank last told rank 0 */
	char desc[128];
	int finalized;
	float *stage;           /* host copy of CUDA buffers without NCCL */
	size_t stage_n;
} S;

static _Noreturn void mpi_abort(int status)
{
	if (S.nccl)
		lp_nccl_abort();
	MPI_Abort(S.world ? S.world : MPI_COMM_WORLD, status);
	exit(status);
}

static _Noreturn void fail(const char *what, int rc)
{
	char msg[MPI_MAX_ERROR_STRING];
	int len = 0;
	MPI_Error_string(rc, msg, &len);
	msg[len] = 0;
	lp_comm_abort("comm", "rank %d: %s at step %lld: %s", S.rank, what, (long long)S.step, msg);
}

#define CHECK(what, call) do { int rc_ = (call); if (rc_ != MPI_SUCCESS) fail(what, rc_); } while (0)

/* Rank 0: take in the arrival messages that are there. */
static void drain_arrivals(void)
{
	for (int r = 1; r < S.size; r++) {
		int done = 1;
		while (done) {
			CHECK("arrival", MPI_Test(&S.arrive_req[r], &done, MPI_STATUS_IGNORE));
			if (!done)
				break;
			if (S.arrive_buf[r] >= 0)
				S.arrived[r] = S.arrive_buf[r];
			S.heard[r] = lp_comm_now();
			if (S.arrive_buf[r] < 0) { /* leaving: nothing more comes */
				S.arrive_req[r] = MPI_REQUEST_NULL;
				break;
			}
			CHECK("arrival", MPI_Irecv(&S.arrive_buf[r], 1, MPI_INT64_T, r, TAG_ARRIVE,
						S.world, &S.arrive_req[r]));
		}
	}
}

/* Another rank tells rank 0 where it is (v: a collective's number, or -1
 * when leaving). */
static void tell(int64_t v)
{
	CHECK("arrival", MPI_Wait(&S.arrive_send, MPI_STATUS_IGNORE));
	S.arrive_val = v;
	S.told = lp_comm_now();
	CHECK("arrival", MPI_Isend(&S.arrive_val, 1, MPI_INT64_T, 0, TAG_ARRIVE, S.world,
				&S.arrive_send));
}

/* The start of collective number S.op + 1, called by every rank. */
static void enter(void)
{
	S.op++;
	if (S.rank == 0) {
		S.arrived[0] = S.op;
		drain_arrivals();
		return;
	}
	tell(S.op);
}

static _Noreturn void timed_out(const char *what, int peer)
{
	if (S.rank == 0 && peer < 0) {
		drain_arrivals();
		char late[512];
		size_t k = 0;
		int nlate = 0;
		late[0] = 0;
		for (int r = 1; r < S.size; r++)
			if (S.arrived[r] < S.op && k + 16 < sizeof late) {
				k += (size_t)snprintf(late + k, sizeof late - k, "%s%d", nlate ? ", " : "", r);
				nlate++;
			}
		if (nlate)
			lp_comm_abort("comm", "rank%s %s did not reach %s %lld (step %lld) within %g s; "
					"stopping every rank", nlate > 1 ? "s" : "", late, what,
					(long long)S.op, (long long)S.step, S.timeout);
		double now = lp_comm_now();
		for (int r = 1; r < S.size; r++)
			if (now - S.heard[r] > S.timeout / 2 && k + 16 < sizeof late) {
				k += (size_t)snprintf(late + k, sizeof late - k, "%s%d", nlate ? ", " : "", r);
				nlate++;
			}
		if (nlate)
			lp_comm_abort("comm", "rank%s %s fell silent in %s %lld (step %lld): nothing heard "
					"for %g s; stopping every rank", nlate > 1 ? "s" : "", late, what,
					(long long)S.op, (long long)S.step, S.timeout / 2);
		lp_comm_abort("comm", "every rank reached %s %lld (step %lld) but it did not complete "
				"within %g s: a rank died or its link failed; stopping every rank", what,
				(long long)S.op, (long long)S.step, S.timeout);
	}
	if (peer >= 0)
		lp_comm_abort("comm", "rank %d: no answer from rank %d to %s (step %lld) within %g s; "
				"stopping every rank", S.rank, peer, what, (long long)S.step, S.timeout);
	lp_comm_abort("comm", "rank %d: rank 0 did not complete %s %lld (step %lld) within %g s; "
			"stopping every rank", S.rank, what, (long long)S.op, (long long)S.step,
			S.timeout);
}

/* Rank 0 judges first; the others give it time to do so. */
static double deadline(void)
{
	double grace = S.rank == 0 ? 0 : (S.timeout < 25 ? S.timeout / 5 + 1 : 5 + S.timeout / 10);
	return lp_comm_now() + S.timeout + grace;
}

static void nap(double waited)
{
	if (waited < 1e-3)
		return;
	struct timespec ts = {0, waited < 0.05 ? 50000 : 1000000};
	nanosleep(&ts, NULL);
}

/* Wait for n requests; peer names the other side of a point-to-point
 * operation (-1: a collective). */
static void wait_all(int n, MPI_Request *req, const char *what, int peer)
{
	double t0 = lp_comm_now(), end = deadline();
	for (;;) {
		int done = 0;
		CHECK(what, MPI_Testall(n, req, &done, MPI_STATUSES_IGNORE));
		if (done)
			return;
		double t = lp_comm_now();
		if (t > end)
			timed_out(what, peer);
		if (S.rank == 0)
			drain_arrivals();
		else if (t - S.told > S.timeout / 4) /* still here */
			tell(S.op);
		nap(t - t0);
	}
}

static int launched(void)
{
	const char *v[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"};
	for (size_t i = 0; i < sizeof v / sizeof *v; i++)
		if (getenv(v[i]))
			return 1;
	return 0;
}

/* An MPI that exits underneath us (lp_die, exit) must not leave the other
 * ranks waiting. */
static void at_exit(void)
{
	if (!S.finalized)
		MPI_Abort(S.world, LP_EXIT_FAIL);
}

static int mpi_init(double timeout_s, char *err, size_t errlen)
{
	if (!launched())
		return 0;
	int rc = MPI_Init(NULL, NULL);
	if (rc != MPI_SUCCESS)
		return lp_fail(err, errlen, "MPI_Init failed (error %d)", rc);
	MPI_Comm_dup(MPI_COMM_WORLD, &S.world);
	MPI_Comm_set_errhandler(S.world, MPI_ERRORS_RETURN);
	MPI_Comm_rank(S.world, &S.rank);
	MPI_Comm_size(S.world, &S.size);
	MPI_Comm local;
	MPI_Comm_split_type(S.world, MPI_COMM_TYPE_SHARED, S.rank, MPI_INFO_NULL, &local);
	MPI_Comm_rank(local, &S.local_rank);
	MPI_Comm_size(local, &S.local_size);
	MPI_Comm_free(&local);
	int first = S.local_rank == 0;
	MPI_Allreduce(&first, &S.nodes, 1, MPI_INT, MPI_SUM, S.world);
	S.timeout = timeout_s;
	S.chunk = (size_t)1 << 28;
	const char *c = getenv("LLAMAPIPE_COMM_CHUNK");
	if (c && atol(c) > 0)
		S.chunk = (size_t)atol(c);
	S.arrived = lp_calloc((size_t)S.size, sizeof *S.arrived);
	S.arrive_buf = lp_calloc((size_t)S.size, sizeof *S.arrive_buf);
	S.arrive_req = lp_calloc((size_t)S.size, sizeof *S.arrive_req);
	S.heard = lp_calloc((size_t)S.size, sizeof *S.heard);
	for (int r = 0; r < S.size; r++)
		S.heard[r] = lp_comm_now();
	S.arrive_send = MPI_REQUEST_NULL;
	if (S.rank == 0)
		for (int r = 1; r < S.size; r++)
			MPI_Irecv(&S.arrive_buf[r], 1, MPI_INT64_T, r, TAG_ARRIVE, S.world,
					&S.arrive_req[r]);
	snprintf(S.desc, sizeof S.desc, "MPI, %d rank%s on %d node%s", S.size,
			S.size > 1 ? "s" : "", S.nodes, S.nodes > 1 ? "s" : "");
	atexit(at_exit);
	return 1;
}

static void mpi_bcast(void *buf, size_t n, int root);

static int mpi_attach(int cuda, char *err, size_t errlen)
{
	if (!cuda || !lp_nccl_available)
		return 0;
	enter();
	int rc = lp_nccl_init(S.rank, S.size, mpi_bcast, deadline(), err, errlen);
	if (rc == -1)
		timed_out("NCCL set-up", -1);
	if (rc != 0)
		return -1;
	S.nccl = 1;
	snprintf(S.desc, sizeof S.desc, "MPI + NCCL, %d rank%s on %d node%s", S.size,
			S.size > 1 ? "s" : "", S.nodes, S.nodes > 1 ? "s" : "");
	return 0;
}

static void mpi_finalize(void)
{
	/* every other rank says goodbye; rank 0 takes all it was told */
	if (S.rank != 0) {
		tell(-1);
		MPI_Wait(&S.arrive_send, MPI_STATUS_IGNORE);
	} else {
		for (int r = 1; r < S.size; r++)
			while (S.arrive_req[r] != MPI_REQUEST_NULL) {
				MPI_Wait(&S.arrive_req[r], MPI_STATUS_IGNORE);
				if (S.arrive_buf[r] < 0)
					break;
				MPI_Irecv(&S.arrive_buf[r], 1, MPI_INT64_T, r, TAG_ARRIVE, S.world,
						&S.arrive_req[r]);
			}
	}
	MPI_Barrier(S.world);
	if (S.nccl)
		lp_nccl_finalize();
	MPI_Comm_free(&S.world);
	MPI_Finalize();
	S.finalized = 1;
	free(S.arrived);
	free(S.arrive_buf);
	free(S.arrive_req);
	free(S.heard);
	free(S.stage);
}

static int mpi_rank(void) { return S.rank; }
static int mpi_size(void) { return S.size; }
static int mpi_local_rank(void) { return S.local_rank; }
static const char *mpi_describe(void) { return S.desc; }
static void mpi_set_step(int64_t step) { S.step = step; }

/* Requests of a chunked operation. */
typedef struct { MPI_Request *r; int n, cap; } reqs;

static MPI_Request *req_add(reqs *q)
{
	if (q->n == q->cap) {
		q->cap = q->cap ? 2 * q->cap : 16;
		q->r = lp_realloc(q->r, (size_t)q->cap * sizeof *q->r);
	}
	return &q->r[q->n++];
}

static void req_wait(reqs *q, const char *what, int peer)
{
	wait_all(q->n, q->r, what, peer);
	free(q->r);
}

/* CUDA buffers without NCCL go through host memory. */
static float *host_view(float *buf, size_t n)
{
	if (lp_kernels_device() == LP_DEVICE_CPU)
		return buf;
	if (S.stage_n < n) {
		free(S.stage);
		S.stage = lp_malloc(n * sizeof *S.stage);
		S.stage_n = n;
	}
	lp_download(S.stage, buf, n * sizeof *buf);
	return S.stage;
}

static void host_done(float *buf, const float *h, size_t n)
{
	if (h != buf)
		lp_upload(buf, h, n * sizeof *buf);
}

static void mpi_reduce_scatter(float *buf, size_t per)
{
	enter();
	size_t N = (size_t)S.size;
	if (S.nccl) {
		char err[256];
		int rc = lp_nccl_reduce_scatter(buf, per, deadline(), err, sizeof err);
		if (rc == -1)
			timed_out("reduce-scatter", -1);
		if (rc)
			lp_comm_abort("comm", "rank %d: reduce-scatter: %s", S.rank, err);
		return;
	}
	float *h = host_view(buf, per * N);
	reqs q = {0};
	if (per <= S.chunk) {
		/* in place: the whole buffer in, this rank's sum at the front */
		CHECK("reduce-scatter", MPI_Ireduce_scatter_block(MPI_IN_PLACE, h, (int)per,
					MPI_FLOAT, MPI_SUM, S.world, req_add(&q)));
		req_wait(&q, "reduce-scatter", -1);
		memmove(h + (size_t)S.rank * per, h, per * sizeof *h);
	} else {
		/* slices too big for an int count: one reduce per rank and chunk */
		for (size_t r = 0; r < N; r++)
			for (size_t at = 0; at < per; at += S.chunk) {
				float *p = h + r * per + at;
				int len = (int)(per - at < S.chunk ? per - at : S.chunk);
				CHECK("reduce-scatter", MPI_Ireduce(r == (size_t)S.rank ? MPI_IN_PLACE : p,
							p, len, MPI_FLOAT, MPI_SUM, (int)r, S.world,
							req_add(&q)));
			}
		req_wait(&q, "reduce-scatter", -1);
	}
	host_done(buf, h, per * N);
}

static void mpi_allgather(float *buf, size_t per)
{
	enter();
	size_t N = (size_t)S.size;
	if (S.nccl) {
		char err[256];
		int rc = lp_nccl_allgather(buf, per, deadline(), err, sizeof err);
		if (rc == -1)
			timed_out("all-gather", -1);
		if (rc)
			lp_comm_abort("comm", "rank %d: all-gather: %s", S.rank, err);
		return;
	}
	float *h = host_view(buf, per * N);
	reqs q = {0};
	if (per <= S.chunk) {
		CHECK("all-gather", MPI_Iallgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, h, (int)per,
					MPI_FLOAT, S.world, req_add(&q)));
	} else {
		for (size_t r = 0; r < N; r++)
			for (size_t at = 0; at < per; at += S.chunk) {
				int len = (int)(per - at < S.chunk ? per - at : S.chunk);
				CHECK("all-gather", MPI_Ibcast(h + r * per + at, len, MPI_FLOAT, (int)r,
							S.world, req_add(&q)));
			}
	}
	req_wait(&q, "all-gather", -1);
	host_done(buf, h, per * N);
}

static void mpi_allgather_bytes(const void *mine, void *all, size_t n)
{
	enter();
	if (n > INT_MAX)
		lp_comm_abort("comm", "all-gather of %zu bytes", n);
	reqs q = {0};
	CHECK("all-gather", MPI_Iallgather(mine, (int)n, MPI_BYTE, all, (int)n, MPI_BYTE, S.world,
				req_add(&q)));
	req_wait(&q, "all-gather", -1);
}

static void mpi_bcast(void *buf, size_t n, int root)
{
	enter();
	reqs q = {0};
	size_t at = 0;
	do {
		int len = (int)(n - at < S.chunk ? n - at : S.chunk);
		CHECK("broadcast", MPI_Ibcast((char *)buf + at, len, MPI_BYTE, root, S.world,
					req_add(&q)));
		at += S.chunk;
	} while (at < n);
	req_wait(&q, "broadcast", -1);
}

static void mpi_send(const void *buf, size_t n, int to)
{
	reqs q = {0};
	for (size_t at = 0; at < n; at += S.chunk) {
		int len = (int)(n - at < S.chunk ? n - at : S.chunk);
		CHECK("send", MPI_Isend((const char *)buf + at, len, MPI_BYTE, to, TAG_DATA, S.world,
					req_add(&q)));
	}
	if (q.n)
		req_wait(&q, "data", to);
}

static void mpi_recv(void *buf, size_t n, int from)
{
	reqs q = {0};
	for (size_t at = 0; at < n; at += S.chunk) {
		int len = (int)(n - at < S.chunk ? n - at : S.chunk);
		CHECK("receive", MPI_Irecv((char *)buf + at, len, MPI_BYTE, from, TAG_DATA, S.world,
					req_add(&q)));
	}
	if (q.n)
		req_wait(&q, "data", from);
}

static void mpi_barrier(void)
{
	enter();
	reqs q = {0};
	CHECK("barrier", MPI_Ibarrier(S.world, req_add(&q)));
	req_wait(&q, "barrier", -1);
}

static const lp_comm_ops ops = {
	.name = "mpi",
	.init = mpi_init,
	.attach_device = mpi_attach,
	.finalize = mpi_finalize,
	.rank = mpi_rank,
	.size = mpi_size,
	.local_rank = mpi_local_rank,
	.describe = mpi_describe,
	.set_step = mpi_set_step,
	.reduce_scatter_f32 = mpi_reduce_scatter,
	.allgather_f32 = mpi_allgather,
	.allgather_bytes = mpi_allgather_bytes,
	.bcast = mpi_bcast,
	.send = mpi_send,
	.recv = mpi_recv,
	.barrier = mpi_barrier,
	.abort = mpi_abort,
};

const lp_comm_ops *const lp_comm_mpi_ops = &ops;
#ifdef LP_HAVE_NCCL
const char *const lp_comm_mpi_built = "data parallel over MPI (mpirun, srun); NCCL for --device cuda";
#else
const char *const lp_comm_mpi_built = "data parallel over MPI (mpirun, srun); built without NCCL";
#endif

#endif /* LP_HAVE_MPI */
