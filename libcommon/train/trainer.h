/* trainer.h: the training loop's parts, as Hugging Face's Trainer runs them.
 *
 * Data. A dataset is every record of a frame stream (input_ids i32 or i64,
 * and labels of the same length; a record without labels is its own
 * labels, as pre-training blocks are), held in memory. An epoch visits the
 * records in an order drawn from (seed, epoch) by the project's PRNG
 * (Fisher-Yates), or in file order without shuffling, cut into micro-
 * batches of batch_size records (the last one may be smaller), each padded
 * on the right to its longest record; padded keys are masked out of
 * attention and padded positions carry no label.
 *
 * Loss. Position t predicts label t+1 (the causal LM shift). An optimizer
 * step takes grad_accum micro-batches (fewer for the last step of an epoch,
 * whose micro-batches do not divide evenly) and its loss is the sum of the
 * cross-entropy over every labelled position of all of them divided by
 * their number: transformers >= 4.46's Trainer with num_items_in_batch
 * (counted over labels[..., 1:] != -100), which is what 5.23 does for a
 * causal LM. The logged loss is that mean.
 *
 * Step. Gradients are clipped to a global L2 norm of max_grad_norm (torch's
 * clip_grad_norm_: coefficient max / (norm + 1e-6) when below 1), then
 * AdamW (torch.optim.AdamW; weight decay only where lp_tparam.decay, HF's
 * get_decay_parameter_names) with the learning rate of the schedule at
 * this step: transformers' get_scheduler with warm-up (linear from 0 over
 * warmup steps; steps = ceil(ratio * total) for a ratio), then cosine
 * (half a cycle to 0), linear (to 0) or constant. Total steps: max_steps,
 * or ceil(epochs * updates per epoch) with updates per epoch =
 * ceil(ceil(records / batch_size) / grad_accum), as the Trainer computes
 * them.
 *
 * Ranks (comm.h). On N ranks an optimizer step takes the same grad_accum
 * micro-batches as on one, grad_accum counting those of every rank: rank r
 * computes micro-batches r, r + N, r + 2N, ... of the step, with the
 * dropout seeds they have in a one-rank run, so the step differs from a
 * one-rank run only in the order in which gradients are summed. The
 * summed gradients are then clipped and applied by every rank alike, or,
 * with shard_optimizer (ZeRO stage 1), reduce-scattered: rank r keeps the
 * AdamW moments of its slice [r*per, (r+1)*per) of the flat buffer (per =
 * ntrain / N; the last ntrain - N*per values every rank updates), updates
 * that slice, and the slices are all-gathered. With data_from_rank0 only
 * rank 0 holds the records (a piped dataset) and sends every other rank
 * the records of its micro-batches at each step. */
#ifndef LP_TRAINER_H
#define LP_TRAINER_H

#include <stddef.h>
#include <stdint.h>

#include "train/llama_train.h"
#include "base/reader.h"

typedef struct {
	int32_t *ids, *labels;  /* every record, one after the other */
	size_t *off;            /* [n + 1]: record i is [off[i], off[i+1]) */
	size_t n;
	int max_len;
	uint64_t ntokens;
	uint64_t hash;          /* XXH3-64 of ids and labels, to check a resume */
	int remote;             /* only n, max_len, ntokens, hash: rank 0 has the records */
	uint64_t nolabel;       /* records skipped: no label left after the shift */
} lp_dataset;

/* Read every record of r; ids and labels must lie in [0, vocab) (labels
 * may be -100). A record with no label after the shift (all of labels[1:]
 * -100, as when --max-len cut off the whole target) would make the loss
 * 0/0: it is an error when strict, else skipped with a warning naming it
 * (the first few; all are counted in nolabel). 0, or -1 and a message
 * naming the record and its byte offset in err (an empty stream is an
 * error too). */
int lp_dataset_read(lp_dataset *d, lp_reader *r, int64_t vocab, int strict, char *err,
		size_t errlen);
void lp_dataset_free(lp_dataset *d);
/* Rank 0's dataset (read from a pipe) known to every rank: the others get
 * its size and hash, and remote set; the records follow step by step. */
void lp_dataset_share(lp_dataset *d);

enum lp_schedule { LP_SCHED_COSINE, LP_SCHED_LINEAR, LP_SCHED_CONSTANT };

typedef struct {
	int batch_size, grad_accum;
	double lr, weight_decay, beta1, beta2, eps, max_grad_norm;
	int schedule;           /* enum lp_schedule */
	int64_t warmup_steps;   /* >= 0 when given */
	double warmup_ratio;    /* used when warmup_steps < 0 */
	double epochs;          /* used when max_steps <= 0 */
	int64_t max_steps;
	uint64_t seed;
	int shuffle;
	int pad_id;
	int shard_optimizer;    /* ZeRO-1 over the ranks (comm.h) */
	int data_from_rank0;    /* rank 0 sends every rank its micro-batches */
} lp_train_opts;

/* Where training stands; all a resume needs besides weights and moments. */
typedef struct {
	int64_t step;           /* optimizer steps taken (HF's global_step) */
	int64_t adam_t;         /* updates applied (skipped steps do not count) */
	int64_t epoch;          /* epoch of the next micro-batch */
	int64_t micro;          /* micro-batches of that epoch already used */
	uint64_t micro_total;   /* micro-batches used in all (dropout masks) */
} lp_train_pos;

typedef struct {
	lp_train_model *m;
	lp_train_acts acts;
	const lp_dataset *data;
	lp_train_opts o;
	lp_train_pos pos;
	float *mom1, *mom2;     /* device, ntrain each: AdamW's exp_avg, exp_avg_sq */
	float *norm_dev;        /* device, 1 f32 */
	int64_t total_steps, warmup, steps_in_epoch, updates_per_epoch;
	size_t *order;          /* records of the current epoch, in visit order */
	int64_t order_epoch;
	int32_t *ids, *targets, *lens;  /* host micro-batch */
	int rank, nranks;
	int shard;              /* optimizer sharded: moments hold per + tail values */
	size_t per, tail;       /* slice of each rank; values past N*per */
	lp_dataset local;       /* records received from rank 0 for this step */
	int stop_request;       /* in: this rank wants to stop (a signal) */
} lp_trainer;

/* What one optimizer step did. */
typedef struct {
	double loss;            /* mean over its labelled positions */
	double lr;              /* used by this step */
	double grad_norm;       /* before clipping */
	double epoch;           /* epochs done after it, as HF's state.epoch */
	long items;             /* labelled positions */
	long tokens;            /* real (unpadded) tokens */
	int nonfinite;          /* loss or gradient not finite: nothing applied */
	int stop;               /* some rank asked to stop (stop_request) */
} lp_step_info;

/* Plan the loop and allocate activations for the data's longest record
 * (and eval_max_len, for evaluation batches). */
void lp_trainer_init(lp_trainer *t, lp_train_model *m, const lp_dataset *data,
		const lp_train_opts *o, int eval_max_len, int grad_ckpt);
void lp_trainer_free(lp_trainer *t);
int lp_trainer_done(const lp_trainer *t);
/* One optimizer step. With a non-finite loss or gradient norm nothing is
 * applied, info->nonfinite is set, and the position still advances (the
 * caller stops or skips). */
void lp_trainer_step(lp_trainer *t, lp_step_info *info);
/* The learning rate multiplier of 0-based step s, as transformers'
 * schedules compute it (Python floats: double). */
double lp_schedule_lambda(int schedule, int64_t s, int64_t warmup, int64_t total);
/* Mean cross-entropy over the labelled positions of d, in batches of
 * batch_size in file order, as HF's evaluate reports eval_loss: the mean
 * over examples of their batch's mean loss. */
double lp_trainer_eval(lp_trainer *t, const lp_dataset *d);
/* The whole AdamW moments (ntrain each, device): t->mom1/mom2 themselves,
 * or, when sharded, new buffers on rank 0 the ranks' slices are gathered
 * into (every rank calls it; the others get NULL). lp_trainer_put_moments
 * takes this rank's slice back from whole ones. Free with
 * lp_trainer_free_moments. */
void lp_trainer_whole_moments(lp_trainer *t, float **m1, float **m2);
void lp_trainer_put_moments(lp_trainer *t, const float *m1, const float *m2);
void lp_trainer_free_moments(const lp_trainer *t, float *m1, float *m2);

#endif
