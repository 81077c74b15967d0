/* Options of `adebert train`: defaults < --config FILE (JSON) < command-line flags. */
#ifndef ADEBERT_TRAIN_OPTS_H
#define ADEBERT_TRAIN_OPTS_H

#include "io/io.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char data[1024], out[1024], model[1024], vocab[1024], config_file[1024];
    int lowercase; /* -1: not given */
    int epochs;
    double lr, weight_decay, warmup_ratio, grad_clip;
    int64_t warmup_steps; /* -1: from warmup_ratio */
    int batch_size, max_seq_len;
    uint64_t seed;       /* model init, dropout, shuffles */
    uint64_t split_seed; /* which rows are train/val/test */
    int group_by_length; /* HF's group_by_length megabatches (off: plain shuffled batches) */
    io_view view;
    io_split_kind split;
    double val_fraction;
    char device[16], precision[16]; /* device "" until parsed: then cpu|cuda (launch/cluster.h) */
    char device_note[160];    /* why the device default was chosen; "" when --device was given */
    char reduce_precision[8]; /* NCCL wire: bf16 | fp32 */
    double comm_timeout;      /* seconds */
    char loss_scale[32];      /* auto | dynamic | none | a fixed positive scale */
    int64_t max_steps; /* 0: no cap */
    int64_t limit;     /* 0: all rows */
    char augment[1024];   /* --augment FILE.jsonl: extra rows for the train split only ("": none) */
    double augment_ratio; /* use round(R x train positives) of them; 0: all */
    int64_t eval_every; /* 0: every epoch; N: every N steps (and at the end) */
    char class_weights[64]; /* none | balanced | W0,W1 */
    int threads;            /* 0: OMP_NUM_THREADS / all cores */
    /* checkpoints */
    int64_t save_every;     /* -1: every epoch; 0: never; N: every N steps (and at the end) */
    int keep_last;          /* step checkpoints kept (best.h5 apart) */
    char select_on[8];      /* best.h5 chosen on "val" F1, or "test" (explicit, optimistic) */
    int resume;             /* continue from the newest good checkpoint in --out */
    char init[1024];        /* weights from a checkpoint or an HF folder */
    /* debugging and tests */
    char log_samples[1024];  /* prefix: each rank writes PREFIX.rankR */
    char dump_params[1024];  /* rank 0 writes the final flat parameters (float32) */
    int skip_allreduce;      /* negative control for the rank-equivalence test */
    char fail_at[32];        /* "RANK:STEP": that rank fails at that step (failure tests) */
    int quiet;               /* no progress output */
    int64_t stop_at;         /* act as if a stop signal came at this step (-1: never) */
    int perturb_resume;      /* negative control: nudge one weight after resuming */
    char inject_inf[32];     /* "RANK:STEP": an inf in that rank's gradients at that step */
} train_opts;

/* Parses argv (argv[0] = "train"). Returns 0 ok, 1 when --help was printed,
 * 2 on a usage error (already reported on stderr). */
int train_opts_parse(train_opts *o, int argc, char **argv);

/* The resolved options as a JSON object text (malloc'd), for RUN_DIR/config.json. */
char *train_opts_to_json(const train_opts *o);

#endif
