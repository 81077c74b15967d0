/* nn backend interface: the only way model code touches memory and arithmetic.
 *
 * A backend is a vtable plus its state (CPU: thread settings; CUDA: device,
 * stream, cuBLAS handle, workspace). Every pointer argument named as a tensor is
 * a DEVICE pointer of that backend (host memory for the CPU backend), obtained
 * from ->alloc. Index arrays (token ids, offsets, sample ids) are device arrays
 * too. Shapes are row-major; sizes are int64_t; ops are asynchronous on the
 * backend's stream unless stated (->sync waits).
 *
 * Accumulating ops (named *_acc or documented "+=") add into their output, so
 * gradients can accumulate over micro-batches; every other op overwrites.
 * Tests use this table alone: tests/test_nn_ops.c checks every CPU op against
 * double-precision references and finite differences, and tests/test_nn_cuda.c
 * checks every CUDA op (and the whole model) against the CPU backend. */
#ifndef ADEBERT_NN_BACKEND_H
#define ADEBERT_NN_BACKEND_H

#include <stddef.h>
#include <stdint.h>

typedef struct nn_backend nn_backend;

/* Key of the counter-based dropout generator for one (seed, epoch). The mask of
 * an element depends only on (key, sample id, site, position, element). */
typedef struct {
    uint32_t k0, k1;
} nn_rng_key;

/* Dropout over a [rows, cols] matrix whose row r belongs to sample row_sample[r]
 * at position row_pos[r] of its sequence; element = column. */
typedef struct {
    float p;                      /* drop probability; 0 => identity */
    nn_rng_key key;
    uint32_t site;
    const uint32_t *row_sample;   /* device, [rows] */
    const int32_t *row_pos;       /* device, [rows] */
} nn_dropout_desc;

/* Per-sequence attention over a packed [T, 3H] Q|K|V matrix (columns: Q heads,
 * then K heads, then V heads; head h uses columns h*dh .. h*dh+dh-1 of each). */
typedef struct {
    int64_t nseq, heads, head_dim;  /* H = heads * head_dim */
    int64_t max_len;                /* longest sequence in the batch (host value) */
    const int32_t *offsets;         /* device, [nseq + 1]: tokens of seq s are offsets[s]..offsets[s+1]-1 */
    const int64_t *prob_off;        /* device, [nseq]: start of seq s's [heads, L, L] probabilities */
    float scale;                    /* 1/sqrt(head_dim) */
    /* attention-probability dropout: element (h, i, j) of sample seq_sample[s]
     * uses position i and element h * elem_stride + j */
    float p;
    nn_rng_key key;
    uint32_t site;
    const uint32_t *seq_sample;     /* device, [nseq] */
    int64_t elem_stride;            /* max_position_embeddings: independent of the batch */
} nn_attn_desc;

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
    float one_minus_beta1, one_minus_beta2; /* computed in double, as torch does */
    float step_size;   /* lr / (1 - beta1^t) */
    float bc2_sqrt;    /* sqrt(1 - beta2^t) */
    float grad_scale;  /* gradient multiplier (clipping); 1 = none */
} nn_adamw_args;

typedef struct nn_backend_ops {
    const char *name;
    /* ---- memory */
    void *(*alloc)(nn_backend *b, size_t bytes);            /* zeroed; NULL on failure */
    void (*free)(nn_backend *b, void *p);
    void (*upload)(nn_backend *b, void *dst, const void *src_host, size_t bytes);
    void (*download)(nn_backend *b, void *dst_host, const void *src, size_t bytes);
    void (*copy)(nn_backend *b, void *dst, const void *src, size_t bytes);
    void (*zero)(nn_backend *b, void *dst, size_t bytes);
    void (*sync)(nn_backend *b);
    /* ---- dense algebra: C = alpha op(A) op(B) + beta C, row-major */
    void (*gemm)(nn_backend *b, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                 const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
    void (*bias_add)(nn_backend *b, float *y, const float *bias, int64_t rows, int64_t cols);
    void (*bias_grad_acc)(nn_backend *b, float *dbias, const float *dy, int64_t rows, int64_t cols); /* += column sums */
    void (*add)(nn_backend *b, float *y, const float *x, int64_t n);                                  /* y += x */
    /* ---- embeddings: out[t] = W[ids[t]] + P[pos[t]] + Tt[types[t]] */
    void (*embed_fwd)(nn_backend *b, float *out, const int32_t *ids, const int32_t *pos, const int32_t *types,
                      const float *W, const float *P, const float *Tt, int64_t T, int64_t H);
    /* rows of token pad_id get no word-embedding gradient (nn.Embedding padding_idx) */
    void (*embed_bwd_acc)(nn_backend *b, float *dW, float *dP, float *dTt, const float *dout, const int32_t *ids,
                          const int32_t *pos, const int32_t *types, int32_t pad_id, int64_t T, int64_t H);
    /* ---- LayerNorm over rows; mean/rstd saved for backward */
    void (*layernorm_fwd)(nn_backend *b, float *y, float *mean, float *rstd, const float *x, const float *g,
                          const float *beta, int64_t rows, int64_t cols, float eps);
    /* dx = overwritten; dg, dbeta += */
    void (*layernorm_bwd)(nn_backend *b, float *dx, float *dg, float *dbeta, const float *dy, const float *x,
                          const float *mean, const float *rstd, const float *g, int64_t rows, int64_t cols);
    /* ---- pointwise */
    void (*gelu_fwd)(nn_backend *b, float *y, const float *x, int64_t n);                  /* exact erf GELU */
    void (*gelu_bwd)(nn_backend *b, float *dx, const float *dy, const float *x, int64_t n); /* dx may alias dy */
    /* y = gelu(x) and dydx = gelu'(x) in one pass (dydx may alias x): the model keeps
     * the derivative instead of the pre-activation, so backward is one multiply */
    void (*gelu_fwd_deriv)(nn_backend *b, float *y, float *dydx, const float *x, int64_t n);
    void (*mul)(nn_backend *b, float *y, const float *x, int64_t n); /* y *= x */
    void (*tanh_fwd)(nn_backend *b, float *y, const float *x, int64_t n);
    void (*tanh_bwd)(nn_backend *b, float *dx, const float *dy, const float *y, int64_t n); /* y = tanh output */
    /* x *= mask / (1 - p), in place; the same call is its own backward */
    void (*dropout)(nn_backend *b, float *x, int64_t rows, int64_t cols, const nn_dropout_desc *d);
    /* ---- rows: out[i] = in[idx[i]] ; out[idx[i]] += in[i] */
    void (*gather_rows)(nn_backend *b, float *out, const float *in, const int32_t *idx, int64_t n, int64_t cols);
    void (*scatter_rows_acc)(nn_backend *b, float *out, const float *in, const int32_t *idx, int64_t n,
                             int64_t cols);
    /* ---- attention: probs [sum_s heads*L_s^2] (pre-dropout softmax), ctx [T, H] */
    void (*attention_fwd)(nn_backend *b, const nn_attn_desc *d, const float *qkv, float *probs, float *ctx);
    /* dqkv [T, 3H] overwritten */
    void (*attention_bwd)(nn_backend *b, const nn_attn_desc *d, const float *qkv, const float *probs,
                          const float *dctx, float *dqkv);
    /* ---- softmax cross-entropy over [n, c] logits.
     * loss[0] = sum_i w[y_i] * nll_i * inv_denom (w = 1 when weights NULL);
     * dlogits = w[y_i] * (softmax_i - onehot_i) * inv_denom. */
    void (*xent)(nn_backend *b, const float *logits, const int32_t *labels, const float *class_weights, int64_t n,
                 int64_t c, float inv_denom, float *loss, float *dlogits);
    /* ---- optimizer: returns sum of squares (host double; synchronises) */
    double (*sumsq)(nn_backend *b, const float *x, int64_t n);
    void (*scale)(nn_backend *b, float *x, int64_t n, float alpha);
    /* torch.optim.AdamW on n elements */
    void (*adamw)(nn_backend *b, float *p, const float *g, float *m, float *v, int64_t n, const nn_adamw_args *a);
    /* ---- lifetime */
    void (*destroy)(nn_backend *b);

    /* ---- optional: NULL where a backend does not provide them (CUDA today); the model
     * then composes the ops above, which give the same bits. A backend that provides one
     * must round exactly as that composition does (tests/test_cpu_fused.c checks the CPU's). */
    /* Fused memory-bound steps, one pass instead of several over a big activation:
     * bias_gelu_fwd = bias_add(x, bias) then gelu_fwd_deriv(y, dydx, x), or gelu_fwd(y, x)
     * when dydx is NULL (inference); dydx may alias x, x is otherwise left as given. */
    void (*bias_gelu_fwd)(nn_backend *b, float *y, float *dydx, float *x, const float *bias, int64_t rows,
                          int64_t cols);
    /* bias_add(x, bias), dropout(x, d) (d NULL or d->p = 0: none), add(x, res), then
     * layernorm_fwd(y, mean, rstd, x, ...): x ends as the LayerNorm input backward reads. */
    void (*bias_dropout_add_layernorm_fwd)(nn_backend *b, float *y, float *mean, float *rstd, float *x,
                                           const float *bias, const nn_dropout_desc *d, const float *res,
                                           const float *g, const float *beta, int64_t rows, int64_t cols,
                                           float eps);
    /* y = x * mask / (1 - p) (a copy when d->p = 0): copy(y, x) then dropout(y, d) */
    void (*dropout_copy)(nn_backend *b, float *y, const float *x, int64_t rows, int64_t cols,
                         const nn_dropout_desc *d);
    /* Resident weights. gemm_weight is ->gemm where B is a weight matrix, stored packed
     * (ldb = k when trans_b, else n): a backend whose ->gemm converts its operands on every
     * call (the CPU in bf16) may keep the converted B and reuse it, with the same bits, until
     * weights_changed(b, p, bytes) says the memory [p, p + bytes) holding it was written
     * (or freed). The model calls weights_changed after every write to its parameters. */
    void (*gemm_weight)(nn_backend *b, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                        const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                        int64_t ldc);
    void (*weights_changed)(nn_backend *b, const void *p, size_t bytes);
} nn_backend_ops;

struct nn_backend {
    const nn_backend_ops *ops;
    void *impl;
};


/* "dnnl", "blis" or "openblas": what the CPU backend's gemm calls. */
const char *nn_cpu_blas_name(void);

/* ---- CUDA backend (nn/cuda/; a build without CUDA links stubs that fail with
 * "built without CUDA"). Storage is fp32 everywhere; the precision selects only
 * the cuBLAS compute type of ->gemm (every other op computes in fp32):
 *   FP32 true fp32 (CUBLAS_COMPUTE_32F), TF32 (sm80+), BF16 (sm80+: inputs
 *   rounded to bf16, fp32 accumulation), FP16 (inputs rounded to fp16). */
typedef enum { NN_PREC_FP32 = 0, NN_PREC_TF32, NN_PREC_BF16, NN_PREC_FP16 } nn_precision;

/* "fp32", "tf32", "bf16", "fp16" (NULL for an invalid value) and the reverse
 * (0 ok, 1 unknown name). */
const char *nn_precision_name(nn_precision p);
int nn_precision_parse(const char *s, nn_precision *out);

/* One stream and one cuBLAS handle on `device`; refuses TF32/BF16 below sm_80.
 * Vtable functions return void: the first CUDA/cuBLAS failure (naming the call or
 * kernel) is kept as a sticky error, printed once to stderr, and every later op
 * is skipped; ->download then fills its destination with NaN bytes and ->sumsq
 * returns NaN, so a caller that ignores nn_cuda_last_error still fails loudly. */
int nn_backend_cuda_create(nn_backend **out, int device, nn_precision prec, char *err, size_t errlen);
/* The sticky error of a CUDA backend (NULL: none, or not a CUDA backend). */
const char *nn_cuda_last_error(const nn_backend *b);
/* Peak of the bytes this backend holds from cudaMalloc (its allocations plus its
 * own workspace and scratch); 0 for other backends and without CUDA. */
size_t nn_cuda_peak_bytes(const nn_backend *b);
/* "NVIDIA H200 (sm_90)"; "" for other backends. */
const char *nn_cuda_device_name(const nn_backend *b);
/* The backend's cudaStream_t (for dist's NCCL reducer); NULL for other backends. */
void *nn_cuda_stream(const nn_backend *b);

/* ---- CPU backend (nn/cpu/): fp32 by default with the GEMM provider chosen at build
 * time; OpenMP threads = omp_get_max_threads() unless threads > 0. */
int nn_backend_cpu_create(nn_backend **out, int threads, char *err, size_t errlen);
void nn_backend_destroy(nn_backend *b);
/* FP32 or BF16 (->gemm rounds A and B to bf16, nearest even, and accumulates in
 * fp32 through oneDNN's matmul: the GPU's bf16 contract; every other op, the
 * per-sequence attention products included, stays fp32). 1 with the reason in err
 * for other precisions, builds without oneDNN and CPUs without AVX512-BF16/AMX. */
int nn_backend_cpu_set_precision(nn_backend *b, nn_precision p, char *err, size_t errlen);
/* The same by name, as --precision gives it: "fp32", "bf16", or "auto" (bf16 where
 * available, else fp32). 0 ok, with why = "" or, after auto fell back to fp32, the
 * reason; 1 with the reason in why (bf16 unavailable, or an unknown name). */
int nn_backend_cpu_set_precision_name(nn_backend *b, const char *name, char *why, size_t whylen);
/* The ISA of the bf16 GEMM ("avx512_core_bf16", "avx512_core_amx"); "" in fp32. */
const char *nn_backend_cpu_isa(const nn_backend *b);
/* Weight matrices ->gemm_weight has rounded to bf16 so far (each resident copy made or
 * refreshed counts once): tests check that a training step converts each weight once
 * and inference only after the parameters changed. */
uint64_t nn_backend_cpu_bf16_weight_conversions(const nn_backend *b);
/* The path of the CPU backend's GELU and softmax exp: "avx512 (libmvec)", "avx2
 * (libmvec)" or "scalar (libm)" (ADEBERT_VECMATH=avx2|scalar narrows it; tests). */
const char *nn_cpu_vecmath_name(void);
/* 1 where nn_backend_cpu_set_precision(BF16) would succeed; else 0 and why. */
int nn_cpu_bf16_available(char *why, size_t whylen);

/* Philox4x32-10 bits of one dropout element, and the derived keep decision; the
 * same function every backend implements (tests and the reference generator
 * recompute masks with it). */
nn_rng_key nn_rng_key_make(uint64_t seed, uint32_t epoch);
uint32_t nn_rng_bits(nn_rng_key key, uint32_t sample, uint32_t site, uint32_t pos, uint32_t elem);
static inline int nn_rng_keep(uint32_t bits, float p)
{
    /* 24-bit uniform in [0, 1): keep when u >= p (drop with probability p) */
    return (float)(bits >> 8) * (1.0f / 16777216.0f) >= p;
}

#endif
