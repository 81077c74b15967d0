/* nn: BERT for sequence classification on flat parameter/gradient buffers,
 * written once against the backend interface (nn/backend.h). Knows nothing of
 * files or ranks.
 *
 * Contract: functions return 0 on success and fill `err` (NN_ERRLEN bytes) with
 * one line otherwise; the caller owns what it creates; every *_create/_init has
 * a *_free/_destroy that accepts NULL. */
#ifndef ADEBERT_NN_H
#define ADEBERT_NN_H

#include <stddef.h>
#include <stdint.h>

#define NN_ERRLEN 256

#include "nn/backend.h"
#include "nn/config.h" /* nn_config: the architecture, shared with io */

/* One line describing the GPU(s) the CUDA backend sees, or why it cannot run
 * ("built without CUDA", "no CUDA device: <driver message>"). Returns the number
 * of usable devices (0 when none). */
int nn_cuda_device_summary(char *buf, size_t len);
/* The PCI bus id of CUDA device `device` ("0000:1b:00.0"); 0 ok, -1 when there is
 * no such device or no CUDA (buf then holds the reason). */
int nn_cuda_device_pci(int device, char *buf, size_t len);

/* One named tensor of the flat buffers (Hugging Face name and shape). */
typedef struct {
    char name[96];
    size_t offset, numel;  /* in floats */
    int ndim;
    int64_t shape[2];
    int decay;             /* 1: weight decay applies (not biases, not LayerNorm weights) */
} nn_param;

typedef struct nn_model nn_model;

/* A packed batch (host arrays). Sequence s is ids[offsets[s] .. offsets[s+1]);
 * nothing is padded. sample_ids are the corpus row ids: they key dropout. */
typedef struct {
    int64_t nseq;
    const int32_t *ids;
    const int32_t *offsets;      /* nseq + 1, offsets[0] == 0, increasing */
    const int32_t *token_types;  /* NULL: all 0 */
    const int32_t *labels;       /* nseq; may be NULL for forward-only */
    const uint32_t *sample_ids;  /* nseq; NULL: 0..nseq-1 (only without dropout) */
    const float *class_weights;  /* num_labels or NULL */
    double loss_denominator;     /* global normaliser (> 0): batch size or sum of class weights */
    int train;                   /* 1: dropout on */
    int no_grad;                 /* 1: inference, no backward follows (skips what only backward needs) */
    uint64_t seed;
    uint32_t epoch;
} nn_batch;

/* Sizes the activation arena once from (max_tokens, max_seqs, max_seq_len) and
 * allocates parameters, gradients and the arena on the backend. Parameters are
 * zero until nn_model_init_weights or nn_model_set_params. */
int nn_model_create(nn_model **out, const nn_config *cfg, nn_backend *be, int64_t max_tokens, int64_t max_seqs,
                    int64_t max_seq_len, char err[NN_ERRLEN]);
/* The same model for forward passes only (eval, predict, serve, export): no gradient
 * buffer (nn_model_grad_buf is NULL), and all layers share one set of activation
 * buffers, so the arena is about 1/num_hidden_layers of a training model's. Its
 * forward results are bit-identical to nn_model_create's; nn_model_backward refuses it. */
int nn_model_create_inference(nn_model **out, const nn_config *cfg, nn_backend *be, int64_t max_tokens,
                              int64_t max_seqs, int64_t max_seq_len, char err[NN_ERRLEN]);
/* Another forward-only model over src's parameters (CPU backends only, e.g. one per
 * thread scoring its own batches): its own backend, arena and converted weights, src's
 * parameter buffer read in place. src must outlive it and nobody may write the
 * parameters meanwhile; its forward gives the bits src's does on the same batch. */
int nn_model_create_inference_shared(nn_model **out, const nn_model *src, nn_backend *be, int64_t max_tokens,
                                     int64_t max_seqs, int64_t max_seq_len, char err[NN_ERRLEN]);
int nn_model_is_inference(const nn_model *m);
void nn_model_free(nn_model *m);

const nn_config *nn_model_config(const nn_model *m);
nn_backend *nn_model_backend(const nn_model *m);
const nn_param *nn_model_params(const nn_model *m, size_t *count);
const nn_param *nn_model_find_param(const nn_model *m, const char *name);
size_t nn_model_num_params(const nn_model *m);  /* floats in the flat buffer */
size_t nn_model_arena_bytes(const nn_model *m); /* activation + scratch bytes */
/* Device pointers. The parameter buffer is handed out for writing: each call marks the
 * backend's converted copies of the weights (CPU bf16: resident bf16 matrices) stale, so
 * they are remade before the next GEMM; write through the pointer before the next
 * forward or backward, or call again. */
float *nn_model_param_buf(nn_model *m);
/* The same buffer for reading only: marks nothing stale. */
const float *nn_model_param_buf_const(const nn_model *m);
float *nn_model_grad_buf(nn_model *m);

/* HF init from the seed (normal(0, 0.02) from a counter-based generator, zero
 * biases, LayerNorm ones/zeros, padding row of the word embeddings zeroed). */
int nn_model_init_weights(nn_model *m, uint64_t seed, char err[NN_ERRLEN]);
/* host <-> flat buffers (n floats = nn_model_num_params) */
int nn_model_set_params(nn_model *m, const float *host, size_t n, char err[NN_ERRLEN]);
int nn_model_get_params(nn_model *m, float *host, size_t n, char err[NN_ERRLEN]);
int nn_model_get_grads(nn_model *m, float *host, size_t n, char err[NN_ERRLEN]);
void nn_model_zero_grad(nn_model *m);

/* Forward over a packed batch: validates it (ids, types, labels in range, lengths
 * in 1..max_position_embeddings, sizes within the arena) before touching the
 * backend. *loss = sum_i w[y_i] nll_i / loss_denominator (0 when labels NULL).
 * logits (host, nseq x num_labels) may be NULL. */
int nn_model_forward(nn_model *m, const nn_batch *b, float *loss, float *logits, char err[NN_ERRLEN]);

/* p(class 1) of a 2-class classifier from its two logits (one row of forward's
 * logits): the softmax, in double, as the logistic of the logit difference, which
 * never overflows (exp(-d) = inf gives 0, the limit) and needs no max-subtraction.
 * NaN logits give NaN. The one scorer: training's evaluations, eval, predict and a
 * server all call it, so a row gets the same p(ADE) everywhere. */
double nn_binary_p1(const float logits[2]);
/* Backward of the last forward (which must have had labels): ADDS into the
 * gradient buffer. */
int nn_model_backward(nn_model *m, char err[NN_ERRLEN]);

/* Gradient groups, for overlapping the gradient reduction with backward: the
 * ranges [off, off + len) of the flat gradient buffer in the order backward
 * completes them (pooler + classifier, layers top down, embeddings); together
 * they cover the buffer once. Returns the count (num_hidden_layers + 2), or 0 when
 * `max` is too small. */
#define NN_MAX_GRAD_GROUPS 1026
size_t nn_model_grad_groups(const nn_model *m, size_t *off, size_t *len, size_t max);
/* During nn_model_backward, fn(ctx, grad, off, len) is called as each group becomes
 * final, in nn_model_grad_groups order. A backward with no sequences calls nothing:
 * a caller that must join collectives starts the groups itself. NULL: no calls. */
typedef void (*nn_grad_ready_fn)(void *ctx, float *grad, size_t off, size_t len);
void nn_model_set_grad_ready(nn_model *m, nn_grad_ready_fn fn, void *ctx);

/* Dropout sites (the `site` of the generator's key). */
#define NN_SITE_EMBEDDINGS 0u
#define NN_SITE_CLASSIFIER 1u
#define NN_SITE_ATTN_PROBS(l) (2u + 3u * (uint32_t)(l))
#define NN_SITE_ATTN_OUT(l) (3u + 3u * (uint32_t)(l))
#define NN_SITE_FFN_OUT(l) (4u + 3u * (uint32_t)(l))

/* Multiplier (0 or 1/(1-p)) of the dropout mask at (sample, site, pos, elem): what
 * the model applies, exported for tests and the HF reference generator. For
 * attention probabilities elem = head * max_position_embeddings + key position,
 * pos = query position; for the classifier pos = 0, elem = hidden unit. */
float nn_dropout_multiplier(uint64_t seed, uint32_t epoch, uint32_t sample, uint32_t site, uint32_t pos,
                            uint32_t elem, float p);

/* Approximate FLOPs of one training step (forward + backward) on a batch with
 * these sequence lengths: 6 x params-in-matmuls x tokens + attention. */
double nn_model_train_flops(const nn_config *c, const int32_t *offsets, int64_t nseq);

/* ------------------------------------------------------------------ AdamW */

typedef struct {
    double lr;            /* peak learning rate (adebert default 2e-5) */
    double beta1, beta2;  /* 0.9, 0.999 */
    double eps;           /* 1e-8, added after bias correction (torch.optim.AdamW) */
    double weight_decay;  /* 0.01; never on biases or LayerNorm weights */
    double max_grad_norm; /* 1.0; <= 0 disables clipping */
    int64_t warmup_steps; /* linear warmup from lr(0) = 0 when > 0 */
    int64_t total_steps;  /* then linear decay to 0 at total_steps */
} nn_adamw_config;

void nn_adamw_config_default(nn_adamw_config *c);
/* HF get_linear_schedule_with_warmup factor for optimizer step `step` (0-based). */
double nn_lr_factor(const nn_adamw_config *c, int64_t step);
/* warmup steps from a ratio as HF's TrainingArguments computes it: ceil(ratio * total) */
int64_t nn_warmup_from_ratio(double ratio, int64_t total_steps);

typedef struct nn_adamw nn_adamw;
int nn_adamw_create(nn_adamw **out, nn_model *m, const nn_adamw_config *c, char err[NN_ERRLEN]);
void nn_adamw_free(nn_adamw *o);
/* Clip by the global gradient norm, then one AdamW step at lr * factor(step);
 * step += 1. grad_norm (pre-clip) and lr used may be NULL. */
int nn_adamw_step(nn_adamw *o, double *grad_norm, double *lr_used, char err[NN_ERRLEN]);
/* The same for gradients of a loss multiplied by loss_scale (dynamic loss scaling):
 * the norm (reported unscaled) and the update divide it out through the AdamW
 * gradient multiplier. A non-finite norm means an overflow somewhere on some rank
 * (the gradients are already reduced): *skipped = 1, parameters and moments are
 * untouched, and the step counter (so the lr schedule) still advances, as Hugging
 * Face's scheduler does when the AMP scaler skips. loss_scale 1 = nn_adamw_step
 * except that a non-finite norm skips instead of failing. */
int nn_adamw_step_scaled(nn_adamw *o, double loss_scale, double *grad_norm, double *lr_used, int *skipped,
                         char err[NN_ERRLEN]);
int64_t nn_adamw_steps_done(const nn_adamw *o);
/* Moments (device pointers, flat-buffer layout) for checkpoints. */
float *nn_adamw_m(nn_adamw *o);
float *nn_adamw_v(nn_adamw *o);
void nn_adamw_set_step(nn_adamw *o, int64_t step);

/* ------------------------------------------------------------------ bench */

/* Time full training steps (forward, backward, clip + AdamW) on one fixed packed
 * batch with the given sequence lengths (random token ids, fixed seed), after
 * `warmup` untimed steps. Used by `adebert bench` (launch/cmd_bench.c;
 * bench/run_model_bench.sh runs it against PyTorch). */
typedef struct {
    int steps;
    double ms_median, ms_min, ms_max; /* per step */
    double tokens_per_step;
    double tokens_per_s;              /* at the median */
    double gflops;                    /* nn_model_train_flops / median time */
    double final_loss;
} nn_bench_result;

int nn_bench_train(const nn_config *cfg, nn_backend *be, const int32_t *lens, int64_t nseq, int warmup, int steps,
                   nn_bench_result *out, char err[NN_ERRLEN]);

/* ADE-like WordPiece lengths (log-normal, median 32, p99 ~92, clipped to
 * [8, max_len]) from a counter-based generator: the same for a given seed. */
void nn_bench_ade_lengths(int32_t *lens, int64_t n, int32_t max_len, uint64_t seed);

#endif
