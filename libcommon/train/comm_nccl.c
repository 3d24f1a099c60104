/* comm_nccl.c: NCCL for the f32 device buffers of the CUDA backend, for
 * comm_mpi.c (built when the Makefile finds NCCL, nvcc and MPI;
 * LP_HAVE_NCCL). Rank 0 makes the unique id and MPI broadcasts it; the
 * communicator is non-blocking, so set-up and every operation are polled
 * against the deadline and aborted past it.
 *
 * The kernels run on their own stream: before an operation the device is
 * synchronised, and the operation runs on a stream of ours and is waited
 * for, so it neither overtakes nor is overtaken by the kernels. */
#include "train/comm_impl.h"

#ifndef LP_HAVE_NCCL
const int lp_nccl_available = 0;

int lp_nccl_init(int rank, int size, void (*bcast)(void *, size_t, int), double deadline,
		char *err, size_t errlen)
{
	(void)rank, (void)size, (void)bcast, (void)deadline, (void)err, (void)errlen;
	return -2;
}

int lp_nccl_reduce_scatter(float *buf, size_t per, double deadline, char *err, size_t errlen)
{
	(void)buf, (void)per, (void)deadline, (void)err, (void)errlen;
	return -2;
}

int lp_nccl_allgather(float *buf, size_t per, double deadline, char *err, size_t errlen)
{
	(void)buf, (void)per, (void)deadline, (void)err, (void)errlen;
	return -2;
}

void lp_nccl_abort(void) {}
void lp_nccl_finalize(void) {}

#else

#include <cuda_runtime.h>
#include <nccl.h>
#include <stdio.h>
#include <time.h>

const int lp_nccl_available = 1;

static ncclComm_t comm;
static cudaStream_t stream;
static int rank_, size_;

static int nccl_err(char *err, size_t errlen, const char *what, ncclResult_t r)
{
	snprintf(err, errlen, "%s: %s (%s)", what, ncclGetErrorString(r),
			comm ? ncclGetLastError(comm) : "");
	return -2;
}

static void nap(void)
{
	struct timespec ts = {0, 100000};
	nanosleep(&ts, NULL);
}

/* Until the communicator has finished what it was asked (set-up, or the
 * operations queued on our stream). */
static int wait_comm(int on_stream, double deadline, const char *what, char *err, size_t errlen)
{
	for (;;) {
		ncclResult_t a;
		ncclResult_t r = ncclCommGetAsyncError(comm, &a);
		if (r != ncclSuccess)
			return nccl_err(err, errlen, what, r);
		if (a != ncclSuccess && a != ncclInProgress)
			return nccl_err(err, errlen, what, a);
		if (a == ncclSuccess) {
			if (!on_stream)
				return 0;
			cudaError_t e = cudaStreamQuery(stream);
			if (e == cudaSuccess)
				return 0;
			if (e != cudaErrorNotReady) {
				snprintf(err, errlen, "%s: %s", what, cudaGetErrorString(e));
				return -2;
			}
		}
		if (lp_comm_now() > deadline)
			return -1;
		nap();
	}
}

int lp_nccl_init(int rank, int size, void (*bcast)(void *, size_t, int), double deadline,
		char *err, size_t errlen)
{
	ncclUniqueId id;
	ncclResult_t r;
	if (rank == 0 && (r = ncclGetUniqueId(&id)) != ncclSuccess)
		return nccl_err(err, errlen, "ncclGetUniqueId", r);
	bcast(&id, sizeof id, 0);
	cudaError_t e = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
	if (e != cudaSuccess) {
		snprintf(err, errlen, "stream: %s", cudaGetErrorString(e));
		return -2;
	}
	ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
	cfg.blocking = 0;
	r = ncclCommInitRankConfig(&comm, size, id, rank, &cfg);
	if (r != ncclSuccess && r != ncclInProgress)
		return nccl_err(err, errlen, "ncclCommInitRankConfig", r);
	rank_ = rank;
	size_ = size;
	return wait_comm(0, deadline, "NCCL set-up", err, errlen);
}

static int sync_kernels(char *err, size_t errlen)
{
	cudaError_t e = cudaDeviceSynchronize();
	if (e != cudaSuccess) {
		snprintf(err, errlen, "%s", cudaGetErrorString(e));
		return -2;
	}
	return 0;
}

int lp_nccl_reduce_scatter(float *buf, size_t per, double deadline, char *err, size_t errlen)
{
	if (sync_kernels(err, errlen))
		return -2;
	ncclResult_t r = ncclReduceScatter(buf, buf + (size_t)rank_ * per, per, ncclFloat32,
			ncclSum, comm, stream);
	if (r != ncclSuccess && r != ncclInProgress)
		return nccl_err(err, errlen, "ncclReduceScatter", r);
	return wait_comm(1, deadline, "ncclReduceScatter", err, errlen);
}

int lp_nccl_allgather(float *buf, size_t per, double deadline, char *err, size_t errlen)
{
	if (sync_kernels(err, errlen))
		return -2;
	ncclResult_t r = ncclAllGather(buf + (size_t)rank_ * per, buf, per, ncclFloat32, comm,
			stream);
	if (r != ncclSuccess && r != ncclInProgress)
		return nccl_err(err, errlen, "ncclAllGather", r);
	return wait_comm(1, deadline, "ncclAllGather", err, errlen);
}

void lp_nccl_abort(void)
{
	if (comm)
		ncclCommAbort(comm);
	comm = NULL;
}

void lp_nccl_finalize(void)
{
	if (!comm)
		return;
	/* non-blocking: finalising completes in the background */
	ncclResult_t a = ncclInProgress;
	double end = lp_comm_now() + 60;
	if (ncclCommFinalize(comm) == ncclInProgress)
		while (ncclCommGetAsyncError(comm, &a) == ncclSuccess && a == ncclInProgress &&
				lp_comm_now() < end)
			nap();
	ncclCommDestroy(comm);
	cudaStreamDestroy(stream);
	comm = NULL;
	(void)size_;
}

#endif /* LP_HAVE_NCCL */
