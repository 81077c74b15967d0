// Shared by the files of the CUDA backend (nn/cuda/*.cu): the backend state, the
// sticky-error helpers, launch geometry, the fixed-tree warp/block reductions,
// and the op functions each family file defines for the table in
// cuda_backend.cu. Not a public header: nothing outside nn/cuda includes it.
//
// Files, one per op family with its kernels and launchers:
//   cuda_backend.cu  state, errors, memory, the op table, create/destroy
//   gemm.cu          cuBLAS GEMM, bias add, bias gradient
//   reduce.cu        column sums (bias, LayerNorm dg/dbeta), sum of squares
//   layernorm.cu     LayerNorm forward and backward
//   elementwise.cu   add, mul, scale, GELU, tanh
//   embedding.cu     embeddings, gather/scatter of rows
//   dropout.cu       counter-based dropout
//   attention.cu     per-sequence attention forward and backward
//   xent.cu          softmax cross-entropy
//   adamw.cu         AdamW
#ifndef ADEBERT_NN_CUDA_INTERNAL_CUH
#define ADEBERT_NN_CUDA_INTERNAL_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "nn/backend.h"
#include "nn/nn.h"
#include "nn/philox.h"
}

#define NT 256                 // threads per block of the element-wise kernels
#define MAX_GRID (1 << 20)     // grid-stride loops beyond this many blocks
#define SUMSQ_BLOCKS 1024      // fixed: the reduction tree must not depend on the device

// device error flags (ORed by kernels, read at sync points)
#define FLAG_ATT_LEN 1u

typedef struct {
    void *p;
    size_t bytes;
} alloc_rec;

typedef struct {
    int device, sm_major, sm_minor, smem_optin, sync_check;
    nn_precision prec;
    cublasComputeType_t ctype;
    cudaStream_t stream;
    cublasHandle_t blas;
    void *workspace;
    double *red;            // SUMSQ_BLOCKS partials + 1 result
    unsigned *flags;        // device error flags
    void *att_scratch;      // attention backward: dS and dropped probabilities
    size_t att_scratch_bytes;
    void *lowp;             // bf16/fp16 GEMMs: both inputs rounded, packed (gemm.cu)
    size_t lowp_bytes;
    alloc_rec *recs;        // live allocations (for the peak)
    size_t nrec, caprec;
    size_t cur_bytes, peak_bytes;
    int failed;
    char errmsg[320];
    char devname[300];
} cu_state;

static inline cu_state *ST(nn_backend *b) { return (cu_state *)b->impl; }

// ------------------------------------------------------------------ errors (cuda_backend.cu)

// Records the first failure (sticky) and prints it once; later calls do nothing.
void nn_cu_fail(cu_state *s, const char *fmt, ...);
int nn_cu_ck_cuda(cu_state *s, cudaError_t e, const char *what, const char *fn, int line);
int nn_cu_ck_blas(cu_state *s, cublasStatus_t e, const char *what, const char *fn, int line);
// After every launch: the launch error, and with sync_check the execution error.
int nn_cu_ck_launch(cu_state *s, const char *kernel, const char *fn, int line);

#define CK(s, call) nn_cu_ck_cuda((s), (call), #call, __func__, __LINE__)
#define CKB(s, call) nn_cu_ck_blas((s), (call), #call, __func__, __LINE__)
#define LAUNCHED(s, kernel) nn_cu_ck_launch((s), #kernel, __func__, __LINE__)

// ------------------------------------------------------------------ memory (cuda_backend.cu)

// cudaMalloc with the peak bookkeeping; NULL on failure (out of memory is not sticky)
void *nn_cu_dev_malloc(cu_state *s, size_t bytes, const char *what);
void nn_cu_dev_free(cu_state *s, void *p);
// A scratch buffer *p of *have bytes grown to at least `need` (the old one freed only
// after the stream has finished with it); on failure the sticky error names `what`.
// Returns 0 when *p holds `need` bytes.
int nn_cu_scratch(cu_state *s, void **p, size_t *have, size_t need, const char *what);
// reads the kernels' error flags (called where we synchronise anyway)
void nn_cu_check_flags(cu_state *s);

// ------------------------------------------------------------------ launch geometry

static inline unsigned grid_for(int64_t n, int threads)
{
    int64_t g = (n + threads - 1) / threads;
    if (g < 1) g = 1;
    if (g > MAX_GRID) g = MAX_GRID;
    return (unsigned)g;
}

#define GRID_STRIDE(i, n) \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)blockDim.x * gridDim.x)

// ------------------------------------------------------------------ reductions (fixed trees)

template <typename T> __device__ __forceinline__ T warp_sum(T v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return __shfl_sync(0xffffffffu, v, 0); // lane 0's total, the same on every lane
}

__device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, o));
    return __shfl_sync(0xffffffffu, v, 0);
}

// Sum over the block (blockDim.x a multiple of 32, <= 1024); every thread gets it.
template <typename T> __device__ T block_sum(T v, T *sh /* >= 33 */)
{
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads(); // sh may still be read by a previous call
    if (lane == 0) sh[w] = v;
    __syncthreads();
    if (w == 0) {
        T x = lane < nw ? sh[lane] : (T)0;
        x = warp_sum(x);
        if (lane == 0) sh[32] = x;
    }
    __syncthreads();
    return sh[32];
}

// ------------------------------------------------------------------ dropout bits

__device__ __forceinline__ int keep_bits(uint32_t bits, float p)
{
    // nn_rng_keep (nn/backend.h), the same expression
    return (float)(bits >> 8) * (1.0f / 16777216.0f) >= p;
}

__device__ __forceinline__ uint32_t philox_word(nn_philox4 r, uint32_t w)
{
    return w == 0 ? r.v[0] : w == 1 ? r.v[1] : w == 2 ? r.v[2] : r.v[3];
}

// ------------------------------------------------------------------ ops (semantics: nn/backend.h)

// gemm.cu
void nn_cu_gemm(nn_backend *b, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *A,
                int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
void nn_cu_bias_add(nn_backend *b, float *y, const float *bias, int64_t rows, int64_t cols);
void nn_cu_bias_grad_acc(nn_backend *b, float *db, const float *dy, int64_t rows, int64_t cols);

// reduce.cu: x == NULL: d1 += colsum(dy); else (LayerNorm) d1 += colsum(dy * xhat), d2 += colsum(dy)
void nn_cu_colsum(cu_state *s, float *d1, float *d2, const float *dy, const float *x, const float *mean,
                  const float *rstd, int64_t rows, int64_t cols);
double nn_cu_sumsq(nn_backend *b, const float *x, int64_t n);

// layernorm.cu
void nn_cu_layernorm_fwd(nn_backend *b, float *y, float *mean, float *rstd, const float *x, const float *g,
                         const float *beta, int64_t rows, int64_t cols, float eps);
void nn_cu_layernorm_bwd(nn_backend *b, float *dx, float *dg, float *dbeta, const float *dy, const float *x,
                         const float *mean, const float *rstd, const float *g, int64_t rows, int64_t cols);

// elementwise.cu
void nn_cu_add(nn_backend *b, float *y, const float *x, int64_t n);
void nn_cu_mul(nn_backend *b, float *y, const float *x, int64_t n);
void nn_cu_scale(nn_backend *b, float *x, int64_t n, float alpha);
void nn_cu_gelu_fwd(nn_backend *b, float *y, const float *x, int64_t n);
void nn_cu_gelu_bwd(nn_backend *b, float *dx, const float *dy, const float *x, int64_t n);
void nn_cu_gelu_fwd_deriv(nn_backend *b, float *y, float *dydx, const float *x, int64_t n);
void nn_cu_tanh_fwd(nn_backend *b, float *y, const float *x, int64_t n);
void nn_cu_tanh_bwd(nn_backend *b, float *dx, const float *dy, const float *y, int64_t n);

// embedding.cu
void nn_cu_embed_fwd(nn_backend *b, float *out, const int32_t *ids, const int32_t *pos, const int32_t *types,
                     const float *W, const float *P, const float *Tt, int64_t T, int64_t H);
void nn_cu_embed_bwd_acc(nn_backend *b, float *dW, float *dP, float *dTt, const float *dout, const int32_t *ids,
                         const int32_t *pos, const int32_t *types, int32_t pad_id, int64_t T, int64_t H);
void nn_cu_gather_rows(nn_backend *b, float *out, const float *in, const int32_t *idx, int64_t n, int64_t cols);
void nn_cu_scatter_rows_acc(nn_backend *b, float *out, const float *in, const int32_t *idx, int64_t n,
                            int64_t cols);

// dropout.cu
void nn_cu_dropout(nn_backend *b, float *x, int64_t rows, int64_t cols, const nn_dropout_desc *d);

// attention.cu; nn_cu_attention_setup (at create) lets both kernels use all the
// shared memory a block can opt into and lowers *smem_optin by their static use
cudaError_t nn_cu_attention_setup(int *smem_optin);
void nn_cu_attention_fwd(nn_backend *b, const nn_attn_desc *d, const float *qkv, float *probs, float *ctx);
void nn_cu_attention_bwd(nn_backend *b, const nn_attn_desc *d, const float *qkv, const float *probs,
                         const float *dctx, float *dqkv);

// xent.cu
void nn_cu_xent(nn_backend *b, const float *logits, const int32_t *labels, const float *cw, int64_t n, int64_t c,
                float inv_denom, float *loss, float *dlogits);

// adamw.cu
void nn_cu_adamw(nn_backend *b, float *p, const float *g, float *m, float *v, int64_t n, const nn_adamw_args *a);

#endif
