/* train_io.h: what training writes and reads back: the adapter (or, with
 * full training, the model), the optimizer's moments, and where the loop
 * stands, together a checkpoint.
 *
 * Adapter: adapter_config.json with every field PEFT 0.21.2 writes for a
 * LoRA adapter (sorted keys, two-space indent as its json.dump), and
 * adapter_model.safetensors with the f32 masters under PEFT's names and
 * metadata {"format": "pt"}. target_modules is written in model order
 * (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj); PEFT
 * writes the same names in its set's order, which varies from run to run.
 *
 * Full model: config.json (the base's or the --from-scratch one, with
 * vocab_size and tie_word_embeddings as trained and dtype float32) and
 * model.safetensors with Hugging Face names; a directory any tool here and
 * transformers load as a model.
 *
 * Checkpoint directory (checkpoint-STEP): the above plus
 * optimizer.safetensors ("NAME.exp_avg", "NAME.exp_avg_sq" for each trained
 * tensor) and trainer_state.json (step, AdamW's step count, epoch and
 * micro-batch reached, the settings a resume must share). It is written as
 * an atomic directory (base/atomic_dir.h: .checkpoint-STEP.tmp.PID beside
 * it, renamed whole), so it is there whole or not at all. */
#ifndef LP_TRAIN_IO_H
#define LP_TRAIN_IO_H

#include <stdint.h>

#include "train/llama_train.h"
#include "train/trainer.h"

/* The weights (adapter, or with s->full the model) and their config into
 * dir, each file replaced atomically. */
void lp_train_write_weights(const char *dir, const lp_train_model *m, const lp_train_spec *s);
/* A checkpoint of t into dir (made atomically; an old one is replaced). */
void lp_train_write_checkpoint(const char *dir, const lp_trainer *t, const lp_train_spec *s);
/* Restore the optimizer moments and the position from checkpoint dir into
 * t (whose model was built from the checkpoint's weights). Dies naming
 * what does not match: settings, data, tensors. */
void lp_train_read_checkpoint(const char *dir, lp_trainer *t);

/* The checkpoint to resume from: dir itself if it holds
 * trainer_state.json, else its checkpoint-N with the largest N; NULL if
 * neither (malloc'd). */
char *lp_train_find_checkpoint(const char *dir);
/* Remove the oldest checkpoint-N directories of dir beyond limit. */
void lp_train_prune_checkpoints(const char *dir, int limit);

#endif
