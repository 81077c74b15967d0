/* launch/infer: a checkpoint as a scorer of token sequences, shared by `adebert eval`
 * and `adebert predict` so that both compute p(ADE) the same way training's
 * evaluations do: packed forward without dropout, p = nn_binary_p1 of the logits
 * (nn/nn.h). One rank, CPU backend. */
#ifndef ADEBERT_INFER_H
#define ADEBERT_INFER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "io/io.h"
#include "launch/model_io.h"
#include "nn/nn.h"

typedef struct {
    mio_info info;       /* the checkpoint's config, vocab, data settings, step */
    nn_backend *be;
    nn_model *model;
    io_tokenizer *tok;   /* the checkpoint's vocab and casing */
    int64_t max_seqs;    /* sequences per forward */
    int64_t max_seq_len; /* tokens per sequence: encode truncates to this */
    int32_t *ids, *offsets, *labels;
    float *logits;
    char precision[8];   /* "fp32" or "bf16": the GEMMs' inputs (infer_set_precision) */
} infer_ctx;

/* Opens CKPT as a model for batches of up to max_seqs sequences of up to max_seq_len
 * tokens (0: the checkpoint's recorded max_seq_len; more than the model's
 * max_position_embeddings is an error). threads 0: OpenMP's default. */
int infer_open(infer_ctx *c, const char *ckpt, int64_t max_seqs, int64_t max_seq_len, int threads,
               char err[MIO_ERRLEN]);
void infer_close(infer_ctx *c);
/* Another scorer over c's weights for a thread of its own (batch-parallel scoring): its
 * own CPU backend with `threads` OpenMP threads, at c's precision, and its own
 * forward-only model (nn_model_create_inference_shared) and batch buffers; no
 * tokenizer (encode with c). c must outlive it. infer_batch on r gives exactly the
 * bits it gives on c. Close with infer_close. */
int infer_open_replica(infer_ctx *r, const infer_ctx *c, int threads, char err[MIO_ERRLEN]);

/* Batch-parallel scoring: W workers (one per OpenMP thread, at most INFER_MAX_WORKERS,
 * at most one per batch), worker 0 scoring with c itself and the others with
 * one-thread replicas. A forward's bits do not depend on its thread count, so the
 * scores are those of c alone, whatever W; the workers avoid the many small fork-join
 * steps of one forward on many threads (eval of MiniLM-L6 on 2 cores: ~1.3x). */
#define INFER_MAX_WORKERS 8
typedef struct {
    infer_ctx *c;   /* worker 0 */
    infer_ctx *rep; /* workers 1..W-1 (rep[0] unused) */
    int W;
    const int32_t **seq; /* W * max_seqs */
} infer_pool;
/* Workers for up to max_batches batches at a time (threads: OpenMP's current count). */
int infer_pool_open(infer_pool *pl, infer_ctx *c, size_t max_batches, char err[MIO_ERRLEN]);
void infer_pool_close(infer_pool *pl);
/* Scores n sequences, sequence i at ids + i * stride with len[i] tokens, in batches of
 * c->max_seqs, batch b by worker b % W: p[i] = p(ADE). With labels, batch_loss[b] = the
 * sum of batch b's losses (sum them in order). On failure, -1 with the first failing
 * batch's index in *bad and its message in err. */
int infer_pool_score(infer_pool *pl, size_t n, const int32_t *ids, size_t stride, const size_t *len,
                     const uint8_t *labels, double *p, double *batch_loss, size_t *bad, char err[MIO_ERRLEN]);
/* The last part of opening, shared with infer_open_hf (launch/infer_hf.h): once
 * c->info (vocab, casing) and the model are set, the tokenizer and the batch buffers
 * for max_seqs sequences of max_seq_len tokens. On failure the caller infer_closes. */
int infer_finish_open(infer_ctx *c, int64_t max_seqs, int64_t max_seq_len, char err[MIO_ERRLEN]);

/* The GEMM precision of the forward: "fp32" (what infer_open sets: exactly what
 * training's evaluations compute), "bf16" (GEMM inputs rounded to bf16, fp32
 * accumulation; p moves by ~1e-4 to 1e-3, 1.3-1.7x the speed on AVX512-BF16/AMX CPUs), or
 * "auto" (bf16 where the CPU has it, else fp32). The choice is in c->precision. One
 * error line where bf16 is asked for and the CPU or build cannot. */
int infer_set_precision(infer_ctx *c, const char *name, char err[MIO_ERRLEN]);
/* "--precision fp32|bf16|auto" for eval, predict and serve: 0 ok, else not a name. */
int infer_precision_valid(const char *name);
#define INFER_PRECISION_HELP \
    "  --precision P      GEMM inputs: fp32 (exact, as training's evaluations), bf16\n" \
    "                     (1.3-1.7x faster on AVX512-BF16/AMX CPUs; p(ADE) moves ~1e-4) or\n" \
    "                     auto (bf16 where the CPU has it) [default: fp32]\n"

/* Token ids of one text, [CLS] ... [SEP], truncated to c->max_seq_len as in training;
 * ids holds c->max_seq_len entries. Invalid UTF-8 is an error (never quoting the text). */
int infer_encode(infer_ctx *c, const char *text, size_t len, int32_t *ids, size_t *n, char err[IO_ERRLEN]);

/* Scores n (<= max_seqs) sequences: seq[i] points at len[i] ids. p[i] = p(ADE).
 * With labels (0/1), adds the sum of the rows' cross-entropy losses to *loss_sum. */
int infer_batch(infer_ctx *c, int64_t n, const int32_t *const *seq, const size_t *len, const uint8_t *labels,
                double *p, double *loss_sum, char err[MIO_ERRLEN]);

#endif
