/* comm.h: the communicator of data-parallel training.
 *
 * Ranks. A run is N processes ("ranks", 0..N-1) started together by a
 * launcher (mpirun, srun); rank 0 reads a piped dataset and writes every
 * file. The local rank (0..local_size-1 among the ranks of one node)
 * chooses the GPU. Without a launcher, or in a build without MPI, the run
 * is one rank.
 *
 * Implementations, chosen at lp_comm_init():
 *   single  one rank; every collective is the identity (comm.c, always
 *           built).
 *   mpi     MPI moves everything (comm_mpi.c): the CPU backend's gradient
 *           buffers, and CUDA buffers staged through host memory when NCCL
 *           is absent.
 *   nccl    MPI bootstraps (ranks, local rank, NCCL's unique id broadcast
 *           from rank 0) and carries the host messages; NCCL reduces the
 *           f32 device buffers of the CUDA backend (comm_nccl.c).
 *
 * Faults. Every operation waits at most the timeout (lp_comm_init's
 * timeout_s). Rank 0 learns which ranks reached each collective; when one
 * does not complete in time it names the ranks that never arrived and
 * aborts the whole job; the other ranks wait a little longer and then
 * name rank 0. A rank that exits without lp_comm_finalize() (lp_die, a
 * crash) takes the job down with it. The operations below never return
 * on failure: they print "prog: comm: ..." and abort every rank.
 *
 * Buffers: "f32" functions take device buffers (lp_alloc'd; host memory on
 * the CPU backend); the others take host memory. Collectives are called
 * by every rank in the same order with the same sizes. */
#ifndef LP_COMM_H
#define LP_COMM_H

#include <stddef.h>
#include <stdint.h>

/* Start: MPI when the build has it and a launcher started this process
 * (its environment says so), else one rank. 0, or -1 with a message in
 * err. */
int lp_comm_init(double timeout_s, char *err, size_t errlen);
/* After lp_kernels_init: with the CUDA backend and NCCL built in, set up
 * NCCL on the current device. 0, or -1 with a message. */
int lp_comm_attach_device(int cuda, char *err, size_t errlen);
/* Leave cleanly (every rank, at the end). */
void lp_comm_finalize(void);

int lp_comm_rank(void);
int lp_comm_size(void);
int lp_comm_local_rank(void);
/* "single process", "MPI, 3 ranks on 1 node", "MPI + NCCL, 8 ranks on 2 nodes" */
const char *lp_comm_describe(void);
/* What this build can do, for --help. */
const char *lp_comm_built(void);
/* The step messages name (set by the trainer). */
void lp_comm_set_step(int64_t step);

/* Sum over ranks, in place, of n f32 values (device). */
void lp_comm_allreduce_f32(float *buf, size_t n);
/* buf holds per * N values (device). Afterwards buf[r*per, (r+1)*per) of
 * rank r holds the sum over ranks of that slice; the rest is undefined. */
void lp_comm_reduce_scatter_f32(float *buf, size_t per);
/* buf holds per * N values (device); every rank's slice r*per.. goes to
 * every rank. */
void lp_comm_allgather_f32(float *buf, size_t per);
/* Sum over ranks, in place, of n doubles (host). */
void lp_comm_allreduce_f64(double *buf, size_t n);
/* root's n bytes to every rank (host). */
void lp_comm_bcast(void *buf, size_t n, int root);
/* Every rank's n bytes, in rank order, into all[N * n] on every rank. */
void lp_comm_allgather_bytes(const void *mine, void *all, size_t n);
/* Point to point, host bytes; the receiver knows n. */
void lp_comm_send(const void *buf, size_t n, int to);
void lp_comm_recv(void *buf, size_t n, int from);
void lp_comm_barrier(void);
/* Print "prog: where: what" and stop every rank with a non-zero status. */
_Noreturn void lp_comm_abort(const char *where, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
