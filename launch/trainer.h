/* launch/trainer: the data-parallel training machinery of `adebert train`, as a
 * library: set up from resolved options -> steps -> evaluations -> checkpoints
 * (save, resume, prune) -> close. `adebert train` (launch/cmd_train.c) keeps the
 * options, the banner, the progress bar, stop signals and the loop.
 *
 * It lives in launch/, not dist/, because it uses io's checkpoints and corpus
 * (dist may depend only on nn).
 *
 * Every rank loads and tokenizes the corpus, computes the same split and the same
 * epoch order from (seed, epoch) without communicating, and takes its share of
 * each global batch. --augment rows are appended to the corpus and the train split
 * on every rank alike (same file, same seeded choice): from then on they are train
 * rows like any other (sampler, sharding, dropout keys, resume). Losses are divided by the GLOBAL normaliser, gradients are
 * SUM-reduced (dist/reducer.h), so N ranks give the 1-rank result (DESIGN.md).
 * Rank 0 alone prints and writes files.
 *
 * Contract: every function is collective unless it says otherwise (each rank calls
 * it, in the same order). Functions return 0 ok; otherwise `err` holds one line and
 * the caller must end the WHOLE job (dist_abort with more than one rank): a rank
 * that fails may leave the others waiting in a collective. The trainer never exits
 * and never aborts; the communicator is the caller's. */
#ifndef ADEBERT_TRAINER_H
#define ADEBERT_TRAINER_H

#include "dist/dist.h"
#include "dist/nccl.h"
#include "dist/sampler.h"
#include "launch/train_opts.h"
#include "nn/nn.h"

#include <stddef.h>
#include <stdint.h>

#define TRAINER_ERRLEN 512

typedef struct trainer trainer;

/* What trainer_open resolved: for the banner and the loop. Valid until close. */
typedef struct {
    const train_opts *o;     /* the options as resolved (precision, casing, vocab, data) */
    const nn_config *cfg;
    nn_backend *be;
    dist_nccl *nccl;         /* NULL on the CPU */
    int cuda;
    size_t n_params;
    size_t n_train, n_train_pos, n_val, n_test; /* n_train(_pos): --augment rows included */
    const char *augment_sha256; /* --augment: the file's sha256; NULL without it */
    size_t aug_in_file, aug_used, aug_used_pos, aug_dup_train; /* rows; aug_dup_train: used rows whose
                                                                   text is exactly a train row's */
    int64_t max_local;       /* most sequences one rank holds in a step */
    const char *precision_note; /* "" or why --precision auto chose fp32 on the CPU */
    int64_t steps_per_epoch, total_steps, warmup_steps;
    int64_t resumed_from;    /* step of the checkpoint resumed from; -1: fresh start */
    int64_t start_epoch, start_batch; /* the next global batch to run */
    int64_t first_step;      /* optimizer steps already done */
} trainer_info;

typedef struct {
    double loss, grad_norm, lr, comm_s;
    int64_t tokens;
    int skipped;       /* overflow under loss scaling: no update */
    double loss_scale; /* the scale this step used */
    double mean_loss;  /* train loss averaged since the last evaluation */
} trainer_step_result;

/* Model config, vocab, corpus, split, --augment rows, backend, model, reducer,
 * optimizer, initial weights, --resume, and the run directory (RUN_DIR = o->out,
 * 0700: config.json, command.txt or command-resume.txt holding `command`,
 * train_log.jsonl, augment_lines.txt with --augment). */
int trainer_open(trainer **out, const train_opts *o, dist_comm *comm, const char *command,
                 char err[TRAINER_ERRLEN]);
void trainer_close(trainer *t); /* NULL ok; leaves the communicator alone */
const trainer_info *trainer_get_info(const trainer *t);

/* This epoch's global batches (free with dist_sampler_plan_free). */
int trainer_plan_epoch(trainer *t, int epoch, dist_epoch_plan *plan, char err[TRAINER_ERRLEN]);

/* One optimizer step over a global batch (corpus rows, identical on every rank):
 * this rank computes its contiguous share, every rank joins the reductions. Rank 0
 * appends the step to train_log.jsonl. */
int trainer_step(trainer *t, const uint32_t *global, size_t n_global, int epoch, trainer_step_result *s,
                 char err[TRAINER_ERRLEN]);

/* Evaluates the val and test splits after `epoch` (1-based) epochs: one line each
 * on stdout and in metrics.jsonl (rank 0), best.h5 + best.json when the selection
 * split's F1 improves, and the running train loss starts over. seconds and tok_s
 * are the loop's timing, recorded as such. */
int trainer_evaluate(trainer *t, int64_t epoch, double seconds, double tok_s, char err[TRAINER_ERRLEN]);

/* A step checkpoint (with AdamW moments) saying that the next global batch is
 * batch `next_batch` of epoch `next_epoch` (0-based); then the newest --keep-last
 * are kept. */
int trainer_save(trainer *t, int64_t next_epoch, int64_t next_batch, char err[TRAINER_ERRLEN]);

/* Replicated parameters must stay identical on every rank: a silent divergence
 * (a skipped reduction, a bad node) would otherwise train N different models. */
int trainer_check_replicas(trainer *t, char err[TRAINER_ERRLEN]);

/* Rank 0 only (not collective): the flat parameters as raw float32 to `path`. */
int trainer_dump_params(trainer *t, const char *path, char err[TRAINER_ERRLEN]);

#endif
