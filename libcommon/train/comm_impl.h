/* comm_impl.h: what an implementation of comm.h provides to comm.c.
 *
 * comm.c holds the one-process implementation and the operations built
 * from the primitives below: an all-reduce is a reduce-scatter followed by
 * an all-gather (plus the few values that do not divide, summed in rank
 * order), so every rank gets the same bits whatever the library's
 * reduction order; that keeps the ranks' weights identical. */
#ifndef LP_COMM_IMPL_H
#define LP_COMM_IMPL_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
	const char *name;
	/* 1: started (a launcher is present), 0: not launched (one rank), -1: error */
	int (*init)(double timeout_s, char *err, size_t errlen);
	int (*attach_device)(int cuda, char *err, size_t errlen);
	void (*finalize)(void);
	int (*rank)(void), (*size)(void), (*local_rank)(void);
	const char *(*describe)(void);
	void (*set_step)(int64_t step);
	void (*reduce_scatter_f32)(float *buf, size_t per);
	void (*allgather_f32)(float *buf, size_t per);
	void (*allgather_bytes)(const void *mine, void *all, size_t n);
	void (*bcast)(void *buf, size_t n, int root);
	void (*send)(const void *buf, size_t n, int to);
	void (*recv)(void *buf, size_t n, int from);
	void (*barrier)(void);
	void (*abort)(int status);    /* does not return */
} lp_comm_ops;

/* comm_mpi.c: the MPI implementation, or NULL in a build without MPI. */
extern const lp_comm_ops *const lp_comm_mpi_ops;
/* What comm_mpi.c was built with ("MPI", "MPI + NCCL"), or NULL. */
extern const char *const lp_comm_mpi_built;

/* comm_nccl.c, for comm_mpi.c: NCCL on the current CUDA device. Each
 * returns 0, -1 on a timeout at the deadline (seconds of a monotonic
 * clock) or -2 on an error (message in err). lp_nccl_available is 0 in a
 * build without NCCL. */
extern const int lp_nccl_available;
int lp_nccl_init(int rank, int size, void (*bcast)(void *, size_t, int), double deadline,
		char *err, size_t errlen);
int lp_nccl_reduce_scatter(float *buf, size_t per, double deadline, char *err, size_t errlen);
int lp_nccl_allgather(float *buf, size_t per, double deadline, char *err, size_t errlen);
void lp_nccl_abort(void);
void lp_nccl_finalize(void);
double lp_comm_now(void);

#endif
