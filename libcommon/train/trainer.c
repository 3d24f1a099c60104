/* trainer.c: data, micro-batches, accumulation, clipping, AdamW and the
 * learning-rate schedule (see trainer.h for what each follows). */
#include "train/trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "base/common.h"
#include "formats/frames.h"
#include "train/comm.h"

#define IGNORE (-100)

/* ---- data ---- */

/* A rank-1 integer frame as i32 into out (n elements); -1 if not one. */
static int frame_ints(const lp_frame *f, int32_t *out)
{
	uint64_t n = lp_frame_numel(f);
	for (uint64_t i = 0; i < n; i++) {
		int64_t v;
		if (f->dtype == LP_I32)
			v = ((const int32_t *)f->data)[i];
		else
			v = ((const int64_t *)f->data)[i];
		if (v < INT32_MIN || v > INT32_MAX)
			return -1;
		out[i] = (int32_t)v;
	}
	return 0;
}

static int int_vector(const lp_frame *f)
{
	return f && f->rank == 1 && (f->dtype == LP_I32 || f->dtype == LP_I64);
}

int lp_dataset_read(lp_dataset *d, lp_reader *r, int64_t vocab, int strict, char *err,
		size_t errlen)
{
	lp_record rec = {0};
	size_t cap = 0, ocap = 0;
	memset(d, 0, sizeof *d);
	lp_grow((void **)&d->off, &ocap, 1, sizeof *d->off);
	d->off[0] = 0;
	size_t lcap = 0;
	int rc;
	XXH3_state_t *h = XXH3_createState();
	XXH3_64bits_reset(h);
	while ((rc = lp_record_read(r, &rec)) == 1) {
		const lp_frame *fi = lp_record_get(&rec, "input_ids");
		const lp_frame *fl = lp_record_get(&rec, "labels");
		unsigned long long at = (unsigned long long)rec.offset;
		if (!int_vector(fi)) {
			snprintf(err, errlen, "record %zu (byte %llu): no rank-1 integer frame "
					"'input_ids'", (size_t)rec.index, at);
			goto fail;
		}
		uint64_t n = lp_frame_numel(fi);
		if (fl && (!int_vector(fl) || lp_frame_numel(fl) != n)) {
			snprintf(err, errlen, "record %zu (byte %llu): 'labels' is not an integer "
					"vector of the length of input_ids (%llu)", (size_t)rec.index, at,
					(unsigned long long)n);
			goto fail;
		}
		if (n == 0)
			continue; /* nothing to learn from */
		if (n > INT32_MAX / 2) {
			snprintf(err, errlen, "record %zu (byte %llu): %llu tokens is too long",
					(size_t)rec.index, at, (unsigned long long)n);
			goto fail;
		}
		size_t base = d->off[d->n];
		lp_grow((void **)&d->ids, &cap, base + n, sizeof *d->ids);
		lp_grow((void **)&d->labels, &lcap, base + n, sizeof *d->labels);
		int32_t *ids = d->ids + base, *lab = d->labels + base;
		if (frame_ints(fi, ids) != 0 || (fl && frame_ints(fl, lab) != 0)) {
			snprintf(err, errlen, "record %zu (byte %llu): a value does not fit 32 bits",
					(size_t)rec.index, at);
			goto fail;
		}
		if (!fl)
			memcpy(lab, ids, n * sizeof *ids);
		for (uint64_t i = 0; i < n; i++) {
			if (ids[i] < 0 || ids[i] >= vocab) {
				snprintf(err, errlen, "record %zu (byte %llu): input_ids[%llu] = %d is "
						"outside the model's vocabulary of %lld", (size_t)rec.index, at,
						(unsigned long long)i, ids[i], (long long)vocab);
				goto fail;
			}
			if (lab[i] != IGNORE && (lab[i] < 0 || lab[i] >= vocab)) {
				snprintf(err, errlen, "record %zu (byte %llu): labels[%llu] = %d is "
						"outside the model's vocabulary of %lld", (size_t)rec.index, at,
						(unsigned long long)i, lab[i], (long long)vocab);
				goto fail;
			}
		}
		uint64_t labelled = 0;
		for (uint64_t i = 1; i < n; i++)
			labelled += lab[i] != IGNORE;
		if (!labelled) {
			if (strict) {
				snprintf(err, errlen, "record %llu (byte %llu): no label left to learn "
						"from (every label after the first is -100)",
						(unsigned long long)rec.index, at);
				goto fail;
			}
			if (d->nolabel++ < 5)
				lp_warn(lp_reader_name(r), "record %llu (byte %llu): no label left to "
						"learn from; skipped", (unsigned long long)rec.index, at);
			continue;
		}
		XXH3_64bits_update(h, ids, n * sizeof *ids);
		XXH3_64bits_update(h, lab, n * sizeof *lab);
		lp_grow((void **)&d->off, &ocap, d->n + 2, sizeof *d->off);
		d->off[++d->n] = base + n;
		d->ntokens += n;
		if ((int)n > d->max_len)
			d->max_len = (int)n;
	}
	lp_record_free(&rec);
	d->hash = XXH3_64bits_digest(h);
	XXH3_freeState(h);
	if (d->n == 0) {
		snprintf(err, errlen, "no examples (an empty stream, or only empty records)");
		lp_dataset_free(d);
		return -1;
	}
	return 0;
fail:
	lp_record_free(&rec);
	XXH3_freeState(h);
	lp_dataset_free(d);
	return -1;
}

void lp_dataset_free(lp_dataset *d)
{
	free(d->ids);
	free(d->labels);
	free(d->off);
	memset(d, 0, sizeof *d);
}

void lp_dataset_share(lp_dataset *d)
{
	uint64_t v[4] = {d->n, (uint64_t)d->max_len, d->ntokens, d->hash};
	lp_comm_bcast(v, sizeof v, 0);
	if (lp_comm_rank() == 0)
		return;
	memset(d, 0, sizeof *d);
	d->n = (size_t)v[0];
	d->max_len = (int)v[1];
	d->ntokens = v[2];
	d->hash = v[3];
	d->remote = 1;
}

/* ---- schedule ---- */

double lp_schedule_lambda(int schedule, int64_t s, int64_t warmup, int64_t total)
{
	if (s < warmup) /* float(step) / float(max(1, warmup)) */
		return (double)s / (double)(warmup > 1 ? warmup : 1);
	int64_t rest = total - warmup > 1 ? total - warmup : 1;
	double progress, f;
	switch (schedule) {
	case LP_SCHED_COSINE:
		progress = (double)(s - warmup) / (double)rest;
		f = 0.5 * (1.0 + cos(M_PI * 0.5 * 2.0 * progress));
		return f > 0.0 ? f : 0.0;
	case LP_SCHED_LINEAR:
		f = (double)(total - s) / (double)rest;
		return f > 0.0 ? f : 0.0;
	default:
		return 1.0;
	}
}

/* ---- the loop ---- */

void lp_trainer_init(lp_trainer *t, lp_train_model *m, const lp_dataset *data,
		const lp_train_opts *o, int eval_max_len, int grad_ckpt)
{
	memset(t, 0, sizeof *t);
	t->m = m;
	t->data = data;
	t->o = *o;
	int64_t bs = o->batch_size, ga = o->grad_accum;
	t->steps_in_epoch = ((int64_t)data->n + bs - 1) / bs;
	t->updates_per_epoch = (t->steps_in_epoch + ga - 1) / ga;
	if (t->updates_per_epoch < 1)
		t->updates_per_epoch = 1;
	t->total_steps = o->max_steps > 0 ? o->max_steps
		: (int64_t)ceil(o->epochs * (double)t->updates_per_epoch);
	t->warmup = o->warmup_steps >= 0 ? o->warmup_steps
		: (int64_t)ceil((double)t->total_steps * o->warmup_ratio);
	int T = data->max_len > eval_max_len ? data->max_len : eval_max_len;
	lp_train_acts_init(&t->acts, m, o->batch_size, T, grad_ckpt);
	t->rank = lp_comm_rank();
	t->nranks = lp_comm_size();
	size_t nt = m->ntrain ? m->ntrain : 1;
	if (o->shard_optimizer && t->nranks > 1) {
		t->shard = 1;
		t->per = m->ntrain / (size_t)t->nranks;
		t->tail = m->ntrain - t->per * (size_t)t->nranks;
		nt = t->per + t->tail ? t->per + t->tail : 1;
	}
	t->mom1 = lp_alloc(nt * sizeof(float));
	t->mom2 = lp_alloc(nt * sizeof(float));
	t->norm_dev = lp_alloc(sizeof(float));
	t->order = lp_malloc(data->n * sizeof *t->order);
	t->order_epoch = -1;
	size_t N = (size_t)o->batch_size * T;
	t->ids = lp_malloc(N * sizeof *t->ids);
	t->targets = lp_malloc(N * sizeof *t->targets);
	t->lens = lp_malloc(o->batch_size * sizeof *t->lens);
}

void lp_trainer_free(lp_trainer *t)
{
	lp_train_acts_free(&t->acts);
	lp_free(t->mom1);
	lp_free(t->mom2);
	lp_free(t->norm_dev);
	free(t->order);
	free(t->ids);
	free(t->targets);
	free(t->lens);
	lp_dataset_free(&t->local);
	memset(t, 0, sizeof *t);
}

int lp_trainer_done(const lp_trainer *t)
{
	return t->pos.step >= t->total_steps;
}

/* The visiting order of epoch e: Fisher-Yates from (seed, e). */
static void epoch_order(lp_trainer *t, int64_t e)
{
	if (t->order_epoch == e)
		return;
	size_t n = t->data->n;
	for (size_t i = 0; i < n; i++)
		t->order[i] = i;
	if (t->o.shuffle) {
		lp_rng r;
		lp_rng_seed(&r, t->o.seed ^ (0x5851f42d4c957f2dull * (uint64_t)(e + 1)));
		for (size_t i = n; i > 1; i--) {
			size_t j = (size_t)lp_rng_below(&r, i), tmp = t->order[i - 1];
			t->order[i - 1] = t->order[j];
			t->order[j] = tmp;
		}
	}
	t->order_epoch = e;
}

/* Records [first, first + B) of list as a right-padded micro-batch. */
static void make_batch(lp_trainer *t, const lp_dataset *d, const size_t *list, size_t first,
		int B, lp_train_batch *b)
{
	int T = 0;
	for (int r = 0; r < B; r++) {
		size_t k = list ? list[first + r] : first + r;
		t->lens[r] = (int32_t)(d->off[k + 1] - d->off[k]);
		if (t->lens[r] > T)
			T = t->lens[r];
	}
	for (int r = 0; r < B; r++) {
		size_t k = list ? list[first + r] : first + r;
		const int32_t *ids = d->ids + d->off[k], *lab = d->labels + d->off[k];
		int len = t->lens[r];
		for (int i = 0; i < T; i++) {
			t->ids[r * T + i] = i < len ? ids[i] : t->o.pad_id;
			t->targets[r * T + i] = i + 1 < len ? lab[i + 1] : IGNORE;
		}
	}
	b->B = B;
	b->T = T;
	b->ids = t->ids;
	b->targets = t->targets;
	b->len = t->lens;
}

/* Labelled positions of record k after the shift (labels[1:] != -100). */
static long record_items(const lp_dataset *d, size_t k)
{
	long n = 0;
	for (size_t i = d->off[k] + 1; i < d->off[k + 1]; i++)
		n += d->labels[i] != IGNORE;
	return n;
}

/* Rows of micro-batch k (0-based in the step) and its first record. */
static int micro_rows(const lp_trainer *t, int k, size_t *first)
{
	size_t n = t->data->n, bs = (size_t)t->o.batch_size;
	*first = (size_t)(t->pos.micro + k) * bs;
	return *first + bs <= n ? (int)bs : (int)(n - *first);
}

/* Rank 0 of a piped run: every other rank gets the records of its
 * micro-batches, and the step's label and token counts. */
static void send_records(lp_trainer *t, int nmicro, long items, long tokens)
{
	const lp_dataset *d = t->data;
	for (int r = 1; r < t->nranks; r++) {
		int64_t head[4] = {items, tokens, 0, 0};
		size_t ntok = 0;
		for (int k = r; k < nmicro; k += t->nranks) {
			size_t first;
			int B = micro_rows(t, k, &first);
			for (int i = 0; i < B; i++) {
				size_t rec = t->order[first + i];
				ntok += d->off[rec + 1] - d->off[rec];
			}
			head[2] += B;
		}
		head[3] = (int64_t)ntok;
		int32_t *buf = lp_malloc(((size_t)head[2] + 2 * ntok + 1) * sizeof *buf);
		int32_t *lens = buf, *ids = buf + head[2], *lab = ids + ntok;
		size_t j = 0, at = 0;
		for (int k = r; k < nmicro; k += t->nranks) {
			size_t first;
			int B = micro_rows(t, k, &first);
			for (int i = 0; i < B; i++) {
				size_t rec = t->order[first + i], len = d->off[rec + 1] - d->off[rec];
				lens[j++] = (int32_t)len;
				memcpy(ids + at, d->ids + d->off[rec], len * sizeof *ids);
				memcpy(lab + at, d->labels + d->off[rec], len * sizeof *lab);
				at += len;
			}
		}
		lp_comm_send(head, sizeof head, r);
		lp_comm_send(buf, ((size_t)head[2] + 2 * ntok) * sizeof *buf, r);
		free(buf);
	}
}

/* The other ranks of a piped run: this step's records into t->local. */
static void recv_records(lp_trainer *t, long *items, long *tokens)
{
	int64_t head[4];
	lp_comm_recv(head, sizeof head, 0);
	*items = (long)head[0];
	*tokens = (long)head[1];
	size_t nrec = (size_t)head[2], ntok = (size_t)head[3];
	if (nrec > t->data->n || ntok > (size_t)t->data->max_len * nrec)
		lp_die("comm", "rank 0 sent %zu records of %zu tokens: not this dataset", nrec, ntok);
	int32_t *buf = lp_malloc((nrec + 2 * ntok + 1) * sizeof *buf);
	lp_comm_recv(buf, (nrec + 2 * ntok) * sizeof *buf, 0);
	lp_dataset *l = &t->local;
	l->off = lp_realloc(l->off, (nrec + 1) * sizeof *l->off);
	l->ids = lp_realloc(l->ids, (ntok + 1) * sizeof *l->ids);
	l->labels = lp_realloc(l->labels, (ntok + 1) * sizeof *l->labels);
	l->off[0] = 0;
	for (size_t i = 0; i < nrec; i++)
		l->off[i + 1] = l->off[i] + (size_t)buf[i];
	if (l->off[nrec] != ntok)
		lp_die("comm", "rank 0 sent records whose lengths do not add up");
	memcpy(l->ids, buf + nrec, ntok * sizeof *l->ids);
	memcpy(l->labels, buf + nrec + ntok, ntok * sizeof *l->labels);
	l->n = nrec;
	free(buf);
}

/* AdamW on [lo, hi) of the flat buffers, moments at mom + (i - lo). */
/* AdamW over [lo, hi) of the flat buffers in one pass (one launch on
 * CUDA), each parameter with its decay group's weight decay; the moments
 * of that range start at mom (a rank's slice under ZeRO-1). */
static void adamw_range(lp_trainer *t, double lr, size_t lo, size_t hi, size_t mom)
{
	lp_train_model *m = t->m;
	lp_adamw_segment *seg = lp_malloc(sizeof *seg * (size_t)(m->nparams ? m->nparams : 1));
	int nseg = 0;
	for (int i = 0; i < m->nparams; i++) {
		const lp_tparam *p = &m->params[i];
		size_t a = p->off > lo ? p->off : lo, b = p->off + p->n < hi ? p->off + p->n : hi;
		if (a < b)
			seg[nseg++] = (lp_adamw_segment){a - lo, b - a,
					p->decay ? t->o.weight_decay : 0.0};
	}
	if (nseg)
		lp_adamw_flat(m->master + lo, m->grads + lo, t->mom1 + mom, t->mom2 + mom, seg, nseg,
				lr, t->o.beta1, t->o.beta2, t->o.eps, (int)t->pos.adam_t, NULL, 0);
	free(seg);
}

void lp_trainer_step(lp_trainer *t, lp_step_info *info)
{
	lp_train_model *m = t->m;
	const lp_dataset *d = t->data;
	int bs = t->o.batch_size, ga = t->o.grad_accum, R = t->rank, N = t->nranks;
	memset(info, 0, sizeof *info);
	lp_comm_set_step(t->pos.step + 1);
	if (t->pos.micro >= t->steps_in_epoch) {
		t->pos.epoch++;
		t->pos.micro = 0;
	}
	epoch_order(t, t->pos.epoch);
	int64_t update = t->pos.micro / ga;
	int nmicro = ga;
	if (update == t->updates_per_epoch - 1) { /* the epoch's last step takes what is left */
		nmicro = (int)(t->steps_in_epoch - t->pos.micro);
		if (nmicro > ga)
			nmicro = ga;
	}
	/* num_items_in_batch: labelled positions of the whole step, all ranks */
	long items = 0, tokens = 0;
	if (!d->remote) {
		for (int k = 0; k < nmicro; k++) {
			size_t first = (size_t)(t->pos.micro + k) * bs;
			for (size_t r = first; r < first + bs && r < d->n; r++) {
				items += record_items(d, t->order[r]);
				tokens += (long)(d->off[t->order[r] + 1] - d->off[t->order[r]]);
			}
		}
		if (t->o.data_from_rank0 && N > 1)
			send_records(t, nmicro, items, tokens);
	} else {
		recv_records(t, &items, &tokens);
	}
	float grad_scale = items ? (float)(1.0 / (double)items) : NAN;
	double loss = 0;
	size_t at = 0;
	lp_train_zero_grad(m);
	for (int k = R; k < nmicro; k += N) { /* this rank's share */
		size_t first;
		int B = micro_rows(t, k, &first);
		lp_train_batch b;
		if (d->remote) {
			make_batch(t, &t->local, NULL, at, B, &b);
			at += (size_t)B;
		} else {
			make_batch(t, d, t->order, first, B, &b);
		}
		b.seed = t->o.seed + 0x9e3779b97f4a7c15ull * (t->pos.micro_total + k + 1);
		long cnt;
		loss += lp_train_forward(m, &t->acts, &b, grad_scale, &cnt);
		lp_train_backward(m, &t->acts, &b);
	}
	t->pos.micro += nmicro;
	t->pos.micro_total += nmicro;
	info->items = items;
	info->tokens = tokens;
	info->epoch = (double)t->pos.epoch + (double)t->pos.micro / (double)t->steps_in_epoch;
	info->lr = t->o.lr * lp_schedule_lambda(t->o.schedule, t->pos.step, t->warmup,
			t->total_steps);
	t->pos.step++;

	/* the sum over ranks: whole, or this rank's slice (and the tail) */
	size_t lo = t->shard ? (size_t)R * t->per : 0, hi = t->shard ? lo + t->per : m->ntrain;
	size_t T0 = t->per * (size_t)N;
	if (t->shard) {
		lp_comm_reduce_scatter_f32(m->grads, t->per);
		lp_comm_allreduce_f32(m->grads + T0, t->tail);
	} else if (N > 1) {
		lp_comm_allreduce_f32(m->grads, m->ntrain);
	}

	/* global norm (every rank the same value), clipping */
	float sumsq = 0;
	lp_upload(t->norm_dev, &sumsq, sizeof sumsq);
	lp_sumsq_f32(t->norm_dev, m->grads + lo, hi - lo);
	if (t->shard && R == 0 && t->tail)
		lp_sumsq_f32(t->norm_dev, m->grads + T0, t->tail);
	lp_download(&sumsq, t->norm_dev, sizeof sumsq);
	double sc[3] = {loss, t->shard || R == 0 ? (double)sumsq : 0.0, t->stop_request ? 1 : 0};
	lp_comm_allreduce_f64(sc, 3);
	info->stop = sc[2] > 0;
	info->loss = items ? sc[0] / (double)items : NAN;
	float norm = sqrtf((float)sc[1]);
	info->grad_norm = norm;
	if (!isfinite(info->loss) || !isfinite(norm)) {
		info->nonfinite = 1;
		return;
	}
	if (t->o.max_grad_norm > 0) {
		float coef = (float)t->o.max_grad_norm / (norm + 1e-6f);
		if (coef < 1.0f) {
			lp_scale_f32(m->grads + lo, coef, hi - lo);
			if (t->shard && t->tail)
				lp_scale_f32(m->grads + T0, coef, t->tail);
		}
	}
	/* AdamW over the flat buffers in one pass, each parameter with its
	 * decay group's weight decay */
	t->pos.adam_t++;
	adamw_range(t, info->lr, lo, hi, 0);
	if (t->shard) {
		if (t->tail)
			adamw_range(t, info->lr, T0, m->ntrain, t->per);
		lp_comm_allgather_f32(m->master, t->per);
	}
}

void lp_trainer_whole_moments(lp_trainer *t, float **m1, float **m2)
{
	if (!t->shard) {
		*m1 = t->mom1;
		*m2 = t->mom2;
		return;
	}
	/* the slices go to rank 0 only, through host memory */
	size_t n = t->m->ntrain, per = t->per, T0 = per * (size_t)t->nranks;
	float *src[2] = {t->mom1, t->mom2}, *dst[2] = {NULL, NULL};
	float *host = lp_malloc(per * sizeof *host + 1);
	for (int k = 0; k < 2; k++) {
		if (t->rank != 0) {
			lp_download(host, src[k], per * sizeof *host);
			lp_comm_send(host, per * sizeof *host, 0);
			continue;
		}
		dst[k] = lp_alloc(n * sizeof(float));
		lp_copy(dst[k], src[k], per * sizeof(float));
		lp_copy(dst[k] + T0, src[k] + per, t->tail * sizeof(float));
		for (int r = 1; r < t->nranks; r++) {
			lp_comm_recv(host, per * sizeof *host, r);
			lp_upload(dst[k] + (size_t)r * per, host, per * sizeof *host);
		}
	}
	free(host);
	*m1 = dst[0];
	*m2 = dst[1];
}

void lp_trainer_put_moments(lp_trainer *t, const float *m1, const float *m2)
{
	if (!t->shard)
		return;
	size_t lo = (size_t)t->rank * t->per, T0 = t->per * (size_t)t->nranks;
	lp_copy(t->mom1, m1 + lo, t->per * sizeof(float));
	lp_copy(t->mom1 + t->per, m1 + T0, t->tail * sizeof(float));
	lp_copy(t->mom2, m2 + lo, t->per * sizeof(float));
	lp_copy(t->mom2 + t->per, m2 + T0, t->tail * sizeof(float));
}

void lp_trainer_free_moments(const lp_trainer *t, float *m1, float *m2)
{
	if (m1 && m1 != t->mom1)
		lp_free(m1);
	if (m2 && m2 != t->mom2)
		lp_free(m2);
}

double lp_trainer_eval(lp_trainer *t, const lp_dataset *d)
{
	double total = 0;
	long rows = 0;
	int bs = t->o.batch_size;
	size_t i = 0;
	for (size_t first = 0; first < d->n; first += bs, i++) {
		if (i % (size_t)t->nranks != (size_t)t->rank) /* batches dealt round the ranks */
			continue;
		int B = first + bs <= d->n ? bs : (int)(d->n - first);
		lp_train_batch b;
		make_batch(t, d, NULL, first, B, &b);
		b.seed = 0;
		long cnt;
		double sum = lp_train_forward(t->m, &t->acts, &b, 0.0f, &cnt);
		if (cnt == 0)
			continue;
		total += sum / (double)cnt * B;
		rows += B;
	}
	double sc[2] = {total, (double)rows};
	lp_comm_allreduce_f64(sc, 2);
	return sc[1] > 0 ? sc[0] / sc[1] : NAN;
}
