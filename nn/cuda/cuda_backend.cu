// CUDA backend of the nn interface (nn/backend.h): one stream, one cuBLAS handle,
// fp32 storage. The semantics of every op are those of nn/cpu/cpu_backend.c
// (what overwrites, what accumulates, which aliasing is allowed); the tests in
// tests/test_nn_cuda.c compare the two op by op and on the whole model.
//
// Determinism: no floating-point atomics anywhere. Every reduction has a fixed
// shape that depends only on the problem size (never on timing or on the number
// of SMs): per-row reductions are one block per row with a fixed shuffle tree,
// per-column reductions give each column to one thread (or one fixed block
// shape), sumsq uses a fixed grid of partials then one block. cuBLAS is
// deterministic on one stream with a fixed user workspace and atomics disallowed
// (its documented reproducibility conditions), which is how the handle is set up.
//
// Errors: the vtable returns void, so the first failure of a CUDA call, a kernel
// launch or a cuBLAS call is recorded with the call's name (sticky; printed once
// to stderr) and every later op is skipped. ->download then fills its destination
// with 0xFF bytes (NaN floats) and ->sumsq returns NaN, so the model's loss and the
// optimizer's gradient norm go non-finite; nn_cuda_last_error gives the message.
// ADEBERT_CUDA_SYNC_CHECK=1 synchronises after every kernel so an asynchronous
// fault names the kernel that caused it.
//
// Math: compiled with -fmad=false (nn/CMakeLists.txt) so element-wise formulas
// round like the CPU's (no contraction into FMA); erff/expf/tanhf/exp/log are
// CUDA's (within 1-2 ulp of glibc's).
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

#define NT 256                         // threads per block of the element-wise kernels
#define MAX_GRID (1 << 20)             // grid-stride loops beyond this many blocks
#define WORKSPACE_BYTES ((size_t)32 << 20) // cuBLAS workspace (the size NVIDIA suggests for Hopper)
#define SUMSQ_BLOCKS 1024              // fixed: the reduction tree must not depend on the device
#define COL_TX 32                      // column reductions: 32 columns x COL_TY row lanes per block
#define COL_TY 16
#define ATT_WARPS 8                    // attention: warps per (sequence, head) block
#define ATT_SMEM_MAX_LEN 128           // sequences up to this length stage Q/K/V in shared memory

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
    float *att_scratch;     // attention backward: dS and dropped probabilities
    size_t att_scratch_floats;
    alloc_rec *recs;        // live allocations (for the peak)
    size_t nrec, caprec;
    size_t cur_bytes, peak_bytes;
    int failed;
    char errmsg[320];
    char devname[300];
} cu_state;

static cu_state *ST(nn_backend *b) { return (cu_state *)b->impl; }

// ------------------------------------------------------------------ errors

static void cu_fail(cu_state *s, const char *fmt, ...)
{
    if (s->failed) return;
    s->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "adebert: cuda backend: %s\n", s->errmsg);
}

static int ck_cuda(cu_state *s, cudaError_t e, const char *what, const char *fn, int line)
{
    if (e == cudaSuccess) return 0;
    cu_fail(s, "%s failed in %s (line %d): %s: %s", what, fn, line, cudaGetErrorName(e), cudaGetErrorString(e));
    return 1;
}

static int ck_blas(cu_state *s, cublasStatus_t e, const char *what, const char *fn, int line)
{
    if (e == CUBLAS_STATUS_SUCCESS) return 0;
    cu_fail(s, "%s failed in %s (line %d): %s", what, fn, line, cublasGetStatusString(e));
    return 1;
}

#define CK(s, call) ck_cuda((s), (call), #call, __func__, __LINE__)
#define CKB(s, call) ck_blas((s), (call), #call, __func__, __LINE__)

// After every launch: the launch error, and with sync_check the execution error.
static int ck_launch(cu_state *s, const char *kernel, const char *fn, int line)
{
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) {
        cu_fail(s, "launch of kernel %s failed in %s (line %d): %s: %s", kernel, fn, line, cudaGetErrorName(e),
                cudaGetErrorString(e));
        return 1;
    }
    if (s->sync_check) {
        e = cudaStreamSynchronize(s->stream);
        if (e != cudaSuccess) {
            cu_fail(s, "kernel %s failed (found in %s, line %d): %s: %s", kernel, fn, line, cudaGetErrorName(e),
                    cudaGetErrorString(e));
            return 1;
        }
    }
    return 0;
}

#define LAUNCHED(s, kernel) ck_launch((s), #kernel, __func__, __LINE__)

static unsigned grid_for(int64_t n, int threads)
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

__device__ __forceinline__ int keep_bits(uint32_t bits, float p)
{
    // nn_rng_keep (nn/backend.h), the same expression
    return (float)(bits >> 8) * (1.0f / 16777216.0f) >= p;
}

__device__ __forceinline__ uint32_t philox_word(nn_philox4 r, uint32_t w)
{
    return w == 0 ? r.v[0] : w == 1 ? r.v[1] : w == 2 ? r.v[2] : r.v[3];
}

// ------------------------------------------------------------------ element-wise kernels

__global__ void k_fill_beta(float *C, int64_t ldc, int64_t m, int64_t n, float beta)
{
    GRID_STRIDE(i, m * n)
    {
        int64_t r = i / n, c = i % n;
        float *p = C + r * ldc + c;
        *p = beta == 0.0f ? 0.0f : beta * *p;
    }
}

__global__ void k_bias_add(float *y, const float *bias, int64_t rows, int64_t cols)
{
    GRID_STRIDE(i, rows * cols) y[i] += bias[i % cols];
}

__global__ void k_add(float *y, const float *x, int64_t n)
{
    GRID_STRIDE(i, n) y[i] += x[i];
}

__global__ void k_mul(float *y, const float *x, int64_t n)
{
    GRID_STRIDE(i, n) y[i] *= x[i];
}

__global__ void k_scale(float *x, int64_t n, float alpha)
{
    GRID_STRIDE(i, n) x[i] *= alpha;
}

__global__ void k_gelu_fwd(float *y, const float *x, int64_t n)
{
    GRID_STRIDE(i, n) y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

__global__ void k_gelu_bwd(float *dx, const float *dy, const float *x, int64_t n)
{
    GRID_STRIDE(i, n)
    {
        float v = x[i];
        float cdf = 0.5f * (1.0f + erff(v * 0.70710678118654752f));
        float pdf = 0.39894228040143268f * expf(-0.5f * v * v);
        dx[i] = dy[i] * (cdf + v * pdf);
    }
}

__global__ void k_gelu_fwd_deriv(float *y, float *dydx, const float *x, int64_t n)
{
    GRID_STRIDE(i, n)
    {
        float v = x[i]; // read before dydx (which may alias x) is written
        float cdf = 0.5f * (1.0f + erff(v * 0.70710678118654752f));
        float pdf = 0.39894228040143268f * expf(-0.5f * v * v);
        y[i] = v * cdf;
        dydx[i] = cdf + v * pdf;
    }
}

__global__ void k_tanh_fwd(float *y, const float *x, int64_t n)
{
    GRID_STRIDE(i, n) y[i] = tanhf(x[i]);
}

__global__ void k_tanh_bwd(float *dx, const float *dy, const float *y, int64_t n)
{
    GRID_STRIDE(i, n) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
}

__global__ void k_embed_fwd(float *out, const int32_t *ids, const int32_t *pos, const int32_t *types, const float *W,
                            const float *P, const float *Tt, int64_t T, int64_t H)
{
    GRID_STRIDE(i, T * H)
    {
        int64_t t = i / H, c = i % H;
        out[i] = W[(int64_t)ids[t] * H + c] + P[(int64_t)pos[t] * H + c] + Tt[(int64_t)types[t] * H + c];
    }
}

// One thread per (table, column), tokens in order: no two threads touch the same
// address, and each sum is the CPU's (same order).
__global__ void k_embed_bwd(float *dW, float *dP, float *dTt, const float *dout, const int32_t *ids,
                            const int32_t *pos, const int32_t *types, int32_t pad_id, int64_t T, int64_t H)
{
    GRID_STRIDE(i, 3 * H)
    {
        int64_t table = i / H, c = i % H;
        float *dst = table == 0 ? dW : table == 1 ? dP : dTt;
        const int32_t *row = table == 0 ? ids : table == 1 ? pos : types;
        for (int64_t t = 0; t < T; t++) {
            if (table == 0 && ids[t] == pad_id) continue;
            dst[(int64_t)row[t] * H + c] += dout[t * H + c];
        }
    }
}

// x *= mask / (1 - p); one thread per Philox block (4 consecutive elements of a row)
__global__ void k_dropout(float *x, int64_t rows, int64_t cols, float p, float sc, uint32_t k0, uint32_t k1,
                          uint32_t site, const uint32_t *row_sample, const int32_t *row_pos)
{
    const int64_t nb = (cols + 3) / 4;
    GRID_STRIDE(i, rows * nb)
    {
        int64_t r = i / nb, b = i % nb;
        nn_philox4 ph = nn_philox4x32_10((uint32_t)b, (uint32_t)row_pos[r], site, row_sample[r], k0, k1);
        float *xr = x + r * cols;
        for (uint32_t w = 0; w < 4; w++) {
            int64_t c = 4 * b + w;
            if (c < cols) xr[c] *= keep_bits(philox_word(ph, w), p) ? sc : 0.0f;
        }
    }
}

__global__ void k_gather_rows(float *out, const float *in, const int32_t *idx, int64_t n, int64_t cols)
{
    GRID_STRIDE(i, n * cols)
    {
        int64_t r = i / cols, c = i % cols;
        out[i] = in[(int64_t)idx[r] * cols + c];
    }
}

// one thread per column, rows in order (idx may repeat)
__global__ void k_scatter_rows_acc(float *out, const float *in, const int32_t *idx, int64_t n, int64_t cols)
{
    GRID_STRIDE(c, cols)
    {
        for (int64_t r = 0; r < n; r++) out[(int64_t)idx[r] * cols + c] += in[r * cols + c];
    }
}

__global__ void k_adamw(float *p, const float *g, float *m, float *v, int64_t n, float decay, float b1, float b2,
                        float omb1, float omb2, float step_size, float bc2_sqrt, float eps, float grad_scale)
{
    GRID_STRIDE(i, n)
    {
        float gi = g[i] * grad_scale;
        float pi = p[i] * decay;
        float mi = b1 * m[i] + omb1 * gi;
        float vi = b2 * v[i] + omb2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - step_size * mi / (sqrtf(vi) / bc2_sqrt + eps);
    }
}

// ------------------------------------------------------------------ column reductions

// Block (COL_TX, COL_TY) owns COL_TX columns; row lane ty sums rows ty, ty+COL_TY,
// ... in order, then thread ty == 0 adds the COL_TY partials in order.
// x == NULL: dst1 += colsum(dy) (bias). Otherwise LayerNorm: dst1 (dg) +=
// colsum(dy * (x - mean) * rstd), dst2 (dbeta) += colsum(dy).
__global__ void k_colsum(float *dst1, float *dst2, const float *dy, const float *x, const float *mean,
                         const float *rstd, int64_t rows, int64_t cols)
{
    __shared__ float sa[COL_TY][COL_TX + 1], sb[COL_TY][COL_TX + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int64_t c = (int64_t)blockIdx.x * COL_TX + tx;
    float a = 0.0f, bsum = 0.0f;
    if (c < cols) {
        for (int64_t r = ty; r < rows; r += COL_TY) {
            float d = dy[r * cols + c];
            if (x) a += d * (x[r * cols + c] - mean[r]) * rstd[r];
            bsum += d;
        }
    }
    sa[ty][tx] = a;
    sb[ty][tx] = bsum;
    __syncthreads();
    if (ty == 0 && c < cols) {
        float ta = 0.0f, tb = 0.0f;
        for (int k = 0; k < COL_TY; k++) {
            ta += sa[k][tx];
            tb += sb[k][tx];
        }
        if (x) {
            dst1[c] += ta;
            dst2[c] += tb;
        } else
            dst1[c] += tb;
    }
}

// ------------------------------------------------------------------ LayerNorm (one block per row)

__global__ void k_layernorm_fwd(float *y, float *mean, float *rstd, const float *x, const float *g, const float *beta,
                                int64_t cols, float eps)
{
    __shared__ float sh[33];
    const int64_t r = blockIdx.x;
    const float *xr = x + r * cols;
    float *yr = y + r * cols;
    float s = 0.0f;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) s += xr[c];
    s = block_sum(s, sh);
    const float mu = s / (float)cols;
    float v = 0.0f;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) v += (xr[c] - mu) * (xr[c] - mu);
    v = block_sum(v, sh);
    const float rs = 1.0f / sqrtf(v / (float)cols + eps);
    if (threadIdx.x == 0) {
        mean[r] = mu;
        rstd[r] = rs;
    }
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) yr[c] = (xr[c] - mu) * rs * g[c] + beta[c];
}

// dx (may alias dy: block_sum's barriers order every read of dy before any write)
__global__ void k_layernorm_bwd_dx(float *dx, const float *dy, const float *x, const float *mean, const float *rstd,
                                   const float *g, int64_t cols)
{
    __shared__ float sh[33];
    const int64_t r = blockIdx.x;
    const float *d = dy + r * cols, *xr = x + r * cols;
    float *o = dx + r * cols;
    const float mu = mean[r], rs = rstd[r];
    float s1 = 0.0f, s2 = 0.0f;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
        float dxh = d[c] * g[c];
        s1 += dxh;
        s2 += dxh * (xr[c] - mu) * rs;
    }
    s1 = block_sum(s1, sh);
    s2 = block_sum(s2, sh);
    s1 /= (float)cols;
    s2 /= (float)cols;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) o[c] = rs * (d[c] * g[c] - s1 - (xr[c] - mu) * rs * s2);
}

// ------------------------------------------------------------------ cross-entropy (one block)

__global__ void k_xent(const float *logits, const int32_t *labels, const float *cw, int64_t n, int64_t c,
                       float inv_denom, float *loss, float *dlogits)
{
    __shared__ double sh[33];
    double total = 0.0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        const float *z = logits + i * c;
        float *dz = dlogits + i * c;
        float mx = z[0];
        for (int64_t k = 1; k < c; k++)
            if (z[k] > mx) mx = z[k];
        double se = 0.0;
        for (int64_t k = 0; k < c; k++) se += exp((double)(z[k] - mx));
        double lse = log(se) + mx;
        int32_t y = labels[i];
        double w = cw ? cw[y] : 1.0;
        total += w * (lse - z[y]);
        for (int64_t k = 0; k < c; k++) {
            double pk = exp((double)z[k] - lse);
            dz[k] = (float)(w * (pk - (k == y ? 1.0 : 0.0)) * inv_denom);
        }
    }
    total = block_sum(total, sh);
    if (threadIdx.x == 0) loss[0] = (float)(total * inv_denom);
}

// ------------------------------------------------------------------ sum of squares (fixed shape)

__global__ void k_sumsq_partial(const float *x, int64_t n, double *partial)
{
    __shared__ double sh[33];
    double s = 0.0;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)blockDim.x * gridDim.x)
        s += (double)x[i] * x[i];
    s = block_sum(s, sh);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void k_sumsq_final(double *partial, int nblocks)
{
    __shared__ double sh[33];
    double s = 0.0;
    for (int i = threadIdx.x; i < nblocks; i += blockDim.x) s += partial[i];
    s = block_sum(s, sh);
    if (threadIdx.x == 0) partial[nblocks] = s;
}

// ------------------------------------------------------------------ attention
//
// One block per (sequence, head), ATT_WARPS warps; warp w takes query rows w,
// w + ATT_WARPS, ... Shared memory: per warp a head_dim vector (the query row, or
// the dctx row in backward) and a row of L floats (scores / probabilities /
// dP); with `staged`, K and V (forward) or Q, K, V and dctx (backward) of the
// (sequence, head) are copied into shared memory with row stride head_dim + 1
// (no bank conflicts when lanes walk rows). The arithmetic is the same in both
// modes; only where the operands are read from differs. A launch handles the
// sequences with lmin <= L <= lmax (the host splits short and long ones).

typedef struct {
    int64_t heads, dh, H, H3, max_len, elem_stride;
    const int32_t *offsets;
    const int64_t *prob_off;
    const uint32_t *seq_sample;
    float scale, p, keep_scale;
    uint32_t k0, k1, site;
} att_args;

// dropout multiplier of attention probability (i, j) of head h: element
// h * elem_stride + j (computed in 64 bits from the uint32 start, as the CPU does)
__device__ __forceinline__ float att_mult(const att_args &a, uint32_t sample, uint32_t e0, int64_t i, int64_t j)
{
    uint64_t e = (uint64_t)e0 + (uint64_t)j;
    nn_philox4 r = nn_philox4x32_10((uint32_t)(e >> 2), (uint32_t)i, a.site, sample, a.k0, a.k1);
    return keep_bits(philox_word(r, (uint32_t)(e & 3)), a.p) ? a.keep_scale : 0.0f;
}

__device__ __forceinline__ int att_seq(const att_args &a, int64_t s, int64_t lmin, int64_t lmax, unsigned *flags,
                                       int64_t *o, int64_t *L)
{
    *o = a.offsets[s];
    *L = (int64_t)a.offsets[s + 1] - *o;
    if (*L < 0 || *L > a.max_len) {
        if (threadIdx.x == 0) atomicOr(flags, FLAG_ATT_LEN); // integer flag: order-free
        return 0;
    }
    return *L >= lmin && *L <= lmax && *L > 0;
}

__global__ void k_attn_fwd(att_args a, const float *qkv, float *probs, float *ctx, int staged, int64_t lmin,
                           int64_t lmax, unsigned *flags)
{
    const int64_t s = blockIdx.x / a.heads, h = blockIdx.x % a.heads;
    int64_t o, L;
    if (!att_seq(a, s, lmin, lmax, flags, &o, &L)) return; // uniform over the block
    extern __shared__ float sm[];
    const int64_t dh = a.dh, H3 = a.H3;
    const int nw = blockDim.x >> 5, w = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const float *Q = qkv + o * H3 + h * dh, *K = Q + a.H, *V = Q + 2 * a.H;
    float *qb = sm + w * dh;
    float *row = sm + nw * dh + w * lmax;
    const float *Kp = K, *Vp = V;
    int64_t ks = H3;
    if (staged) {
        float *sK = sm + nw * (dh + lmax), *sV = sK + lmax * (dh + 1);
        for (int64_t idx = threadIdx.x; idx < L * dh; idx += blockDim.x) {
            int64_t j = idx / dh, d = idx % dh;
            sK[j * (dh + 1) + d] = K[j * H3 + d];
            sV[j * (dh + 1) + d] = V[j * H3 + d];
        }
        __syncthreads();
        Kp = sK;
        Vp = sV;
        ks = dh + 1;
    }
    float *P = probs + a.prob_off[s] + h * L * L;
    float *C = ctx + o * a.H + h * dh;
    const uint32_t sample = a.p > 0.0f ? a.seq_sample[s] : 0u, e0 = (uint32_t)(h * a.elem_stride);
    for (int64_t i = w; i < L; i += nw) {
        for (int64_t d = lane; d < dh; d += 32) qb[d] = Q[i * H3 + d];
        __syncwarp();
        float mx = -INFINITY;
        for (int64_t j = lane; j < L; j += 32) {
            const float *kj = Kp + j * ks;
            float acc = 0.0f;
            for (int64_t d = 0; d < dh; d++) acc += qb[d] * kj[d];
            float sc = acc * a.scale;
            row[j] = sc;
            mx = fmaxf(mx, sc);
        }
        mx = warp_max(mx);
        float sum = 0.0f;
        for (int64_t j = lane; j < L; j += 32) {
            float e = expf(row[j] - mx);
            row[j] = e;
            sum += e;
        }
        sum = warp_sum(sum);
        const float inv = 1.0f / sum;
        for (int64_t j = lane; j < L; j += 32) {
            float pr = row[j] * inv;
            P[i * L + j] = pr; // pre-dropout, as stored by the CPU
            row[j] = a.p > 0.0f ? pr * att_mult(a, sample, e0, i, j) : pr;
        }
        __syncwarp();
        for (int64_t d = lane; d < dh; d += 32) {
            float acc = 0.0f;
            for (int64_t j = 0; j < L; j++) acc += row[j] * Vp[j * ks + d];
            C[i * a.H + d] = acc;
        }
        __syncwarp(); // qb and row are rewritten by the next row
    }
}

// scratch: per (sequence, head) 2 * max_len^2 floats: dS then Pd (row stride L)
__global__ void k_attn_bwd(att_args a, const float *qkv, const float *probs, const float *dctx, float *dqkv,
                           float *scratch, int staged, int64_t lmin, int64_t lmax, unsigned *flags)
{
    const int64_t s = blockIdx.x / a.heads, h = blockIdx.x % a.heads;
    int64_t o, L;
    if (!att_seq(a, s, lmin, lmax, flags, &o, &L)) return;
    extern __shared__ float sm[];
    const int64_t dh = a.dh, H3 = a.H3;
    const int nw = blockDim.x >> 5, w = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const float *Q = qkv + o * H3 + h * dh, *K = Q + a.H, *V = Q + 2 * a.H, *dC = dctx + o * a.H + h * dh;
    float *dQ = dqkv + o * H3 + h * dh, *dK = dQ + a.H, *dV = dQ + 2 * a.H;
    float *cb = sm + w * dh;
    float *row = sm + nw * dh + w * lmax;
    const float *Qp = Q, *Kp = K, *Vp = V, *dCp = dC;
    int64_t ks = H3, cs = a.H;
    if (staged) {
        const int64_t ld = dh + 1;
        float *sQ = sm + nw * (dh + lmax), *sK = sQ + lmax * ld, *sV = sK + lmax * ld, *sC = sV + lmax * ld;
        for (int64_t idx = threadIdx.x; idx < L * dh; idx += blockDim.x) {
            int64_t j = idx / dh, d = idx % dh;
            sQ[j * ld + d] = Q[j * H3 + d];
            sK[j * ld + d] = K[j * H3 + d];
            sV[j * ld + d] = V[j * H3 + d];
            sC[j * ld + d] = dC[j * a.H + d];
        }
        __syncthreads();
        Qp = sQ;
        Kp = sK;
        Vp = sV;
        dCp = sC;
        ks = ld;
        cs = ld;
    }
    const float *P = probs + a.prob_off[s] + h * L * L;
    float *dS = scratch + (s * a.heads + h) * 2 * a.max_len * a.max_len;
    float *Pd = dS + a.max_len * a.max_len;
    const uint32_t sample = a.p > 0.0f ? a.seq_sample[s] : 0u, e0 = (uint32_t)(h * a.elem_stride);
    // phase 1, per query row i: Pd = P * mask; dP = (dctx_i . V_j) * mask;
    // dS = P * (dP - sum_j dP P) * scale
    for (int64_t i = w; i < L; i += nw) {
        for (int64_t d = lane; d < dh; d += 32) cb[d] = dCp[i * cs + d];
        __syncwarp();
        float rs = 0.0f;
        for (int64_t j = lane; j < L; j += 32) {
            const float pr = P[i * L + j];
            const float m = a.p > 0.0f ? att_mult(a, sample, e0, i, j) : 1.0f;
            Pd[i * L + j] = a.p > 0.0f ? pr * m : pr;
            const float *vj = Vp + j * ks;
            float acc = 0.0f;
            for (int64_t d = 0; d < dh; d++) acc += cb[d] * vj[d];
            if (a.p > 0.0f) acc *= m;
            row[j] = acc;
            rs += acc * pr;
        }
        rs = warp_sum(rs);
        for (int64_t j = lane; j < L; j += 32) dS[i * L + j] = P[i * L + j] * (row[j] - rs) * a.scale;
        __syncwarp();
    }
    __syncthreads(); // dS and Pd complete (global writes are visible to the block after the barrier)
    // phase 2, per (row i, d): dQ = dS K, dK = dS^T Q, dV = Pd^T dctx
    for (int64_t idx = threadIdx.x; idx < L * dh; idx += blockDim.x) {
        const int64_t i = idx / dh, d = idx % dh;
        float gq = 0.0f, gk = 0.0f, gv = 0.0f;
        for (int64_t j = 0; j < L; j++) {
            gq += dS[i * L + j] * Kp[j * ks + d];
            gk += dS[j * L + i] * Qp[j * ks + d];
            gv += Pd[j * L + i] * dCp[j * cs + d];
        }
        dQ[i * H3 + d] = gq;
        dK[i * H3 + d] = gk;
        dV[i * H3 + d] = gv;
    }
}

// ------------------------------------------------------------------ memory

static void rec_add(cu_state *s, void *p, size_t bytes)
{
    if (s->nrec == s->caprec) {
        size_t cap = s->caprec ? 2 * s->caprec : 64;
        alloc_rec *r = (alloc_rec *)realloc(s->recs, cap * sizeof *r);
        if (!r) return; // bookkeeping only: the peak may then undercount
        s->recs = r;
        s->caprec = cap;
    }
    s->recs[s->nrec].p = p;
    s->recs[s->nrec].bytes = bytes;
    s->nrec++;
    s->cur_bytes += bytes;
    if (s->cur_bytes > s->peak_bytes) s->peak_bytes = s->cur_bytes;
}

static void rec_remove(cu_state *s, void *p)
{
    for (size_t i = s->nrec; i-- > 0;)
        if (s->recs[i].p == p) {
            s->cur_bytes -= s->recs[i].bytes;
            s->recs[i] = s->recs[--s->nrec];
            return;
        }
}

static void *dev_malloc(cu_state *s, size_t bytes, const char *what)
{
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess) {
        // out of memory is reported to the caller by NULL (the model names the
        // size); it is not sticky: nothing on the device went wrong
        (void)cudaGetLastError();
        if (e != cudaErrorMemoryAllocation)
            cu_fail(s, "cudaMalloc(%zu bytes, %s) failed: %s: %s", bytes, what, cudaGetErrorName(e),
                    cudaGetErrorString(e));
        return NULL;
    }
    rec_add(s, p, bytes);
    return p;
}

static void dev_free(cu_state *s, void *p)
{
    if (!p) return;
    rec_remove(s, p);
    CK(s, cudaFree(p));
}

static void *cu_alloc(nn_backend *b, size_t bytes)
{
    cu_state *s = ST(b);
    if (s->failed) return NULL;
    size_t sz = (bytes + 255) & ~(size_t)255;
    if (sz < bytes) return NULL;
    if (sz == 0) sz = 256;
    void *p = dev_malloc(s, sz, "alloc");
    if (!p) return NULL;
    if (CK(s, cudaMemsetAsync(p, 0, sz, s->stream))) return NULL;
    return p;
}

static void cu_free(nn_backend *b, void *p)
{
    cu_state *s = ST(b);
    if (!p) return;
    // kernels on our stream may still use p: wait (errors here are not new information)
    if (!s->failed) CK(s, cudaStreamSynchronize(s->stream));
    rec_remove(s, p);
    cudaError_t e = cudaFree(p);
    if (!s->failed) ck_cuda(s, e, "cudaFree", __func__, __LINE__);
}

static void cu_upload(nn_backend *b, void *dst, const void *src, size_t bytes)
{
    cu_state *s = ST(b);
    if (s->failed || !bytes) return;
    CK(s, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s->stream));
}

// reads the kernels' error flags (called where we synchronise anyway)
static void check_flags(cu_state *s)
{
    unsigned f = 0;
    if (s->failed) return;
    if (CK(s, cudaMemcpyAsync(&f, s->flags, sizeof f, cudaMemcpyDeviceToHost, s->stream))) return;
    if (CK(s, cudaStreamSynchronize(s->stream))) return;
    if (f & FLAG_ATT_LEN)
        cu_fail(s, "attention: a sequence is longer than nn_attn_desc.max_len (or offsets decrease); its "
                   "attention was not computed");
}

static void cu_sync(nn_backend *b)
{
    cu_state *s = ST(b);
    if (s->failed) return;
    if (CK(s, cudaStreamSynchronize(s->stream))) return;
    check_flags(s);
}

static void cu_download(nn_backend *b, void *dst, const void *src, size_t bytes)
{
    cu_state *s = ST(b);
    if (!bytes) return;
    if (!s->failed) {
        CK(s, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s->stream));
        if (!s->failed) CK(s, cudaStreamSynchronize(s->stream));
        if (!s->failed) check_flags(s);
    }
    if (s->failed) memset(dst, 0xFF, bytes); // NaN floats: a failed backend never yields plausible numbers
}

static void cu_copy(nn_backend *b, void *dst, const void *src, size_t bytes)
{
    cu_state *s = ST(b);
    if (s->failed || !bytes || dst == src) return;
    CK(s, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, s->stream));
}

static void cu_zero(nn_backend *b, void *dst, size_t bytes)
{
    cu_state *s = ST(b);
    if (s->failed || !bytes) return;
    CK(s, cudaMemsetAsync(dst, 0, bytes, s->stream));
}

// ------------------------------------------------------------------ ops

static int fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

static void cu_gemm(nn_backend *b, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *A,
                    int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    cu_state *s = ST(b);
    if (s->failed || m <= 0 || n <= 0) return;
    if (k <= 0) { // C = beta C (as a BLAS does), without relying on cuBLAS for k == 0
        k_fill_beta<<<grid_for(m * n, NT), NT, 0, s->stream>>>(C, ldc, m, n, beta);
        LAUNCHED(s, k_fill_beta);
        return;
    }
    if (!fits_int(m) || !fits_int(n) || !fits_int(k) || !fits_int(lda) || !fits_int(ldb) || !fits_int(ldc)) {
        cu_fail(s, "gemm: dimension beyond INT_MAX (m %lld n %lld k %lld)", (long long)m, (long long)n, (long long)k);
        return;
    }
    // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: the stored
    // row-major matrices are their column-major transposes, so B goes first with
    // the same transpose flags.
    CKB(s, cublasGemmEx(s->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, (int)n, (int)m,
                        (int)k, &alpha, B, CUDA_R_32F, (int)ldb, A, CUDA_R_32F, (int)lda, &beta, C, CUDA_R_32F,
                        (int)ldc, s->ctype, CUBLAS_GEMM_DEFAULT));
}

static void cu_bias_add(nn_backend *b, float *y, const float *bias, int64_t rows, int64_t cols)
{
    cu_state *s = ST(b);
    if (s->failed || rows <= 0 || cols <= 0) return;
    k_bias_add<<<grid_for(rows * cols, NT), NT, 0, s->stream>>>(y, bias, rows, cols);
    LAUNCHED(s, k_bias_add);
}

static void launch_colsum(cu_state *s, float *d1, float *d2, const float *dy, const float *x, const float *mean,
                          const float *rstd, int64_t rows, int64_t cols)
{
    int64_t nblk = (cols + COL_TX - 1) / COL_TX;
    if (nblk > INT_MAX) {
        cu_fail(s, "column reduction: %lld columns", (long long)cols);
        return;
    }
    k_colsum<<<(unsigned)nblk, dim3(COL_TX, COL_TY), 0, s->stream>>>(d1, d2, dy, x, mean, rstd, rows, cols);
    LAUNCHED(s, k_colsum);
}

static void cu_bias_grad_acc(nn_backend *b, float *db, const float *dy, int64_t rows, int64_t cols)
{
    cu_state *s = ST(b);
    if (s->failed || rows <= 0 || cols <= 0) return;
    launch_colsum(s, db, NULL, dy, NULL, NULL, NULL, rows, cols);
}

static void cu_add(nn_backend *b, float *y, const float *x, int64_t n)
{
    cu_state *s = ST(b);
    if (s->failed || n <= 0) return;
    k_add<<<grid_for(n, NT), NT, 0, s->stream>>>(y, x, n);
    LAUNCHED(s, k_add);
}

static void cu_embed_fwd(nn_backend *b, float *out, const int32_t *ids, const int32_t *pos, const int32_t *types,
                         const float *W, const float *P, const float *Tt, int64_t T, int64_t H)
{
    cu_state *s = ST(b);
    if (s->failed || T <= 0 || H <= 0) return;
    k_embed_fwd<<<grid_for(T * H, NT), NT, 0, s->stream>>>(out, ids, pos, types, W, P, Tt, T, H);
    LAUNCHED(s, k_embed_fwd);
}

static void cu_embed_bwd_acc(nn_backend *b, float *dW, float *dP, float *dTt, const float *dout, const int32_t *ids,
                             const int32_t *pos, const int32_t *types, int32_t pad_id, int64_t T, int64_t H)
{
    cu_state *s = ST(b);
    if (s->failed || T <= 0 || H <= 0) return;
    k_embed_bwd<<<grid_for(3 * H, NT), NT, 0, s->stream>>>(dW, dP, dTt, dout, ids, pos, types, pad_id, T, H);
    LAUNCHED(s, k_embed_bwd);
}

static void cu_layernorm_fwd(nn_backend *b, float *y, float *mean, float *rstd, const float *x, const float *g,
                             const float *beta, int64_t rows, int64_t cols, float eps)
{
    cu_state *s = ST(b);
    if (s->failed || rows <= 0 || cols <= 0) return;
    if (rows > INT_MAX) {
        cu_fail(s, "layernorm: %lld rows", (long long)rows);
        return;
    }
    k_layernorm_fwd<<<(unsigned)rows, NT, 0, s->stream>>>(y, mean, rstd, x, g, beta, cols, eps);
    LAUNCHED(s, k_layernorm_fwd);
}

static void cu_layernorm_bwd(nn_backend *b, float *dx, float *dg, float *dbeta, const float *dy, const float *x,
                             const float *mean, const float *rstd, const float *g, int64_t rows, int64_t cols)
{
    cu_state *s = ST(b);
    if (s->failed || rows <= 0 || cols <= 0) return;
    if (rows > INT_MAX) {
        cu_fail(s, "layernorm: %lld rows", (long long)rows);
        return;
    }
    // parameter gradients first: dx may alias dy (stream order)
    launch_colsum(s, dg, dbeta, dy, x, mean, rstd, rows, cols);
    if (s->failed) return;
    k_layernorm_bwd_dx<<<(unsigned)rows, NT, 0, s->stream>>>(dx, dy, x, mean, rstd, g, cols);
    LAUNCHED(s, k_layernorm_bwd_dx);
}

#define POINTWISE(name, kernel, ...)                                                                             \
    do {                                                                                                         \
        cu_state *s = ST(b);                                                                                     \
        if (s->failed || n <= 0) return;                                                                         \
        kernel<<<grid_for(n, NT), NT, 0, s->stream>>>(__VA_ARGS__);                                              \
        LAUNCHED(s, kernel);                                                                                     \
    } while (0)

static void cu_gelu_fwd(nn_backend *b, float *y, const float *x, int64_t n) { POINTWISE(gelu_fwd, k_gelu_fwd, y, x, n); }
static void cu_gelu_bwd(nn_backend *b, float *dx, const float *dy, const float *x, int64_t n)
{
    POINTWISE(gelu_bwd, k_gelu_bwd, dx, dy, x, n);
}
static void cu_gelu_fwd_deriv(nn_backend *b, float *y, float *dydx, const float *x, int64_t n)
{
    POINTWISE(gelu_fwd_deriv, k_gelu_fwd_deriv, y, dydx, x, n);
}
static void cu_mul(nn_backend *b, float *y, const float *x, int64_t n) { POINTWISE(mul, k_mul, y, x, n); }
static void cu_tanh_fwd(nn_backend *b, float *y, const float *x, int64_t n) { POINTWISE(tanh_fwd, k_tanh_fwd, y, x, n); }
static void cu_tanh_bwd(nn_backend *b, float *dx, const float *dy, const float *y, int64_t n)
{
    POINTWISE(tanh_bwd, k_tanh_bwd, dx, dy, y, n);
}
static void cu_scale(nn_backend *b, float *x, int64_t n, float alpha) { POINTWISE(scale, k_scale, x, n, alpha); }

static void cu_dropout(nn_backend *b, float *x, int64_t rows, int64_t cols, const nn_dropout_desc *d)
{
    cu_state *s = ST(b);
    if (s->failed || !(d->p > 0.0f) || rows <= 0 || cols <= 0) return;
    int64_t work = rows * ((cols + 3) / 4);
    k_dropout<<<grid_for(work, NT), NT, 0, s->stream>>>(x, rows, cols, d->p, nn_dropout_scale(d->p), d->key.k0,
                                                         d->key.k1, d->site, d->row_sample, d->row_pos);
    LAUNCHED(s, k_dropout);
}

static void cu_gather_rows(nn_backend *b, float *out, const float *in, const int32_t *idx, int64_t n, int64_t cols)
{
    cu_state *s = ST(b);
    if (s->failed || n <= 0 || cols <= 0) return;
    k_gather_rows<<<grid_for(n * cols, NT), NT, 0, s->stream>>>(out, in, idx, n, cols);
    LAUNCHED(s, k_gather_rows);
}

static void cu_scatter_rows_acc(nn_backend *b, float *out, const float *in, const int32_t *idx, int64_t n,
                                int64_t cols)
{
    cu_state *s = ST(b);
    if (s->failed || n <= 0 || cols <= 0) return;
    k_scatter_rows_acc<<<grid_for(cols, NT), NT, 0, s->stream>>>(out, in, idx, n, cols);
    LAUNCHED(s, k_scatter_rows_acc);
}

static att_args make_att(const nn_attn_desc *d)
{
    att_args a;
    a.heads = d->heads;
    a.dh = d->head_dim;
    a.H = d->heads * d->head_dim;
    a.H3 = 3 * a.H;
    a.max_len = d->max_len;
    a.elem_stride = d->elem_stride;
    a.offsets = d->offsets;
    a.prob_off = d->prob_off;
    a.seq_sample = d->seq_sample;
    a.scale = d->scale;
    a.p = d->p > 0.0f ? d->p : 0.0f;
    a.keep_scale = nn_dropout_scale(a.p);
    a.k0 = d->key.k0;
    a.k1 = d->key.k1;
    a.site = d->site;
    return a;
}

// Launch plan: sequences with L <= min(max_len, ATT_SMEM_MAX_LEN) go to a staged
// launch when its shared memory fits the device; the rest (or all, when it does
// not fit) to a launch reading operands from global memory.
typedef struct {
    int n;
    int staged[2];
    int64_t lmin[2], lmax[2];
    size_t smem[2];
} att_plan;

static int att_make_plan(cu_state *s, const nn_attn_desc *d, int staged_tensors, att_plan *pl)
{
    const int64_t ml = d->max_len, dh = d->head_dim, nw = ATT_WARPS;
    const int64_t short_max = ml < ATT_SMEM_MAX_LEN ? ml : ATT_SMEM_MAX_LEN;
    size_t st = (size_t)(nw * (dh + short_max) + staged_tensors * short_max * (dh + 1)) * sizeof(float);
    pl->n = 0;
    int64_t next = 1;
    if (st <= (size_t)s->smem_optin) {
        pl->staged[0] = 1;
        pl->lmin[0] = 1;
        pl->lmax[0] = short_max;
        pl->smem[0] = st;
        pl->n = 1;
        next = short_max + 1;
    }
    if (next <= ml) {
        size_t gl = (size_t)(nw * (dh + ml)) * sizeof(float);
        if (gl > (size_t)s->smem_optin) {
            cu_fail(s, "attention: sequences of %lld tokens (head_dim %lld) need %zu bytes of shared memory; the device "
                       "allows %d",
                    (long long)ml, (long long)dh, gl, s->smem_optin);
            return 1;
        }
        pl->staged[pl->n] = 0;
        pl->lmin[pl->n] = next;
        pl->lmax[pl->n] = ml;
        pl->smem[pl->n] = gl;
        pl->n++;
    }
    return 0;
}

static int att_check(cu_state *s, const nn_attn_desc *d)
{
    if (d->nseq <= 0 || d->heads <= 0 || d->head_dim <= 0 || d->max_len <= 0) return 1; // nothing to do
    if (d->nseq * d->heads > INT_MAX) {
        cu_fail(s, "attention: %lld (sequence, head) pairs exceed the grid", (long long)(d->nseq * d->heads));
        return 1;
    }
    return 0;
}

static void cu_attention_fwd(nn_backend *b, const nn_attn_desc *d, const float *qkv, float *probs, float *ctx)
{
    cu_state *s = ST(b);
    if (s->failed || att_check(s, d)) return;
    att_plan pl;
    if (att_make_plan(s, d, 2, &pl)) return;
    att_args a = make_att(d);
    for (int k = 0; k < pl.n; k++) {
        k_attn_fwd<<<(unsigned)(d->nseq * d->heads), ATT_WARPS * 32, pl.smem[k], s->stream>>>(
            a, qkv, probs, ctx, pl.staged[k], pl.lmin[k], pl.lmax[k], s->flags);
        if (LAUNCHED(s, k_attn_fwd)) return;
    }
}

static void cu_attention_bwd(nn_backend *b, const nn_attn_desc *d, const float *qkv, const float *probs,
                             const float *dctx, float *dqkv)
{
    cu_state *s = ST(b);
    if (s->failed || att_check(s, d)) return;
    att_plan pl;
    if (att_make_plan(s, d, 4, &pl)) return;
    const size_t need = (size_t)d->nseq * (size_t)d->heads * 2 * (size_t)d->max_len * (size_t)d->max_len;
    if (need > s->att_scratch_floats) {
        if (s->att_scratch) {
            if (CK(s, cudaStreamSynchronize(s->stream))) return;
            dev_free(s, s->att_scratch);
            s->att_scratch = NULL;
            s->att_scratch_floats = 0;
        }
        s->att_scratch = (float *)dev_malloc(s, need * sizeof(float), "attention scratch");
        if (!s->att_scratch) {
            cu_fail(s, "attention backward: cannot allocate %zu bytes of scratch", need * sizeof(float));
            return;
        }
        s->att_scratch_floats = need;
    }
    att_args a = make_att(d);
    for (int k = 0; k < pl.n; k++) {
        k_attn_bwd<<<(unsigned)(d->nseq * d->heads), ATT_WARPS * 32, pl.smem[k], s->stream>>>(
            a, qkv, probs, dctx, dqkv, s->att_scratch, pl.staged[k], pl.lmin[k], pl.lmax[k], s->flags);
        if (LAUNCHED(s, k_attn_bwd)) return;
    }
}

static void cu_xent(nn_backend *b, const float *logits, const int32_t *labels, const float *cw, int64_t n, int64_t c,
                    float inv_denom, float *loss, float *dlogits)
{
    cu_state *s = ST(b);
    if (s->failed) return;
    if (n <= 0 || c <= 0) { // the CPU writes loss = 0
        CK(s, cudaMemsetAsync(loss, 0, sizeof(float), s->stream));
        return;
    }
    k_xent<<<1, NT, 0, s->stream>>>(logits, labels, cw, n, c, inv_denom, loss, dlogits);
    LAUNCHED(s, k_xent);
}

static double cu_sumsq(nn_backend *b, const float *x, int64_t n)
{
    cu_state *s = ST(b);
    if (s->failed) return NAN;
    if (n <= 0) return 0.0;
    k_sumsq_partial<<<SUMSQ_BLOCKS, NT, 0, s->stream>>>(x, n, s->red);
    if (LAUNCHED(s, k_sumsq_partial)) return NAN;
    k_sumsq_final<<<1, 1024, 0, s->stream>>>(s->red, SUMSQ_BLOCKS);
    if (LAUNCHED(s, k_sumsq_final)) return NAN;
    double r = NAN;
    if (CK(s, cudaMemcpyAsync(&r, s->red + SUMSQ_BLOCKS, sizeof r, cudaMemcpyDeviceToHost, s->stream))) return NAN;
    if (CK(s, cudaStreamSynchronize(s->stream))) return NAN;
    check_flags(s);
    return s->failed ? NAN : r;
}

static void cu_adamw(nn_backend *b, float *p, const float *g, float *m, float *v, int64_t n, const nn_adamw_args *a)
{
    cu_state *s = ST(b);
    if (s->failed || n <= 0) return;
    const float decay = 1.0f - a->lr * a->weight_decay; // on the host, as the CPU computes it
    k_adamw<<<grid_for(n, NT), NT, 0, s->stream>>>(p, g, m, v, n, decay, a->beta1, a->beta2, a->one_minus_beta1,
                                                   a->one_minus_beta2, a->step_size, a->bc2_sqrt, a->eps,
                                                   a->grad_scale);
    LAUNCHED(s, k_adamw);
}

// ------------------------------------------------------------------ lifetime

static void cu_release(cu_state *s)
{
    if (!s) return;
    if (s->stream) (void)cudaStreamSynchronize(s->stream);
    if (s->blas) (void)cublasDestroy(s->blas);
    if (s->workspace) (void)cudaFree(s->workspace);
    if (s->red) (void)cudaFree(s->red);
    if (s->flags) (void)cudaFree(s->flags);
    if (s->att_scratch) (void)cudaFree(s->att_scratch);
    if (s->stream) (void)cudaStreamDestroy(s->stream);
    (void)cudaGetLastError();
    free(s->recs);
    free(s);
}

static void cu_destroy(nn_backend *b)
{
    if (!b) return;
    cu_release(ST(b));
    free(b);
}

static const nn_backend_ops CUDA_OPS = {
    "cuda",           cu_alloc,      cu_free,          cu_upload,          cu_download,         cu_copy,
    cu_zero,          cu_sync,       cu_gemm,          cu_bias_add,        cu_bias_grad_acc,    cu_add,
    cu_embed_fwd,     cu_embed_bwd_acc, cu_layernorm_fwd, cu_layernorm_bwd, cu_gelu_fwd,         cu_gelu_bwd,
    cu_gelu_fwd_deriv, cu_mul,       cu_tanh_fwd,      cu_tanh_bwd,        cu_dropout,          cu_gather_rows,
    cu_scatter_rows_acc, cu_attention_fwd, cu_attention_bwd, cu_xent,    cu_sumsq,            cu_scale,
    cu_adamw,         cu_destroy,
};

static int is_cuda(const nn_backend *b) { return b && b->ops == &CUDA_OPS && b->impl; }

extern "C" const char *nn_cuda_last_error(const nn_backend *b)
{
    if (!is_cuda(b)) return NULL;
    const cu_state *s = (const cu_state *)b->impl;
    return s->failed ? s->errmsg : NULL;
}

extern "C" size_t nn_cuda_peak_bytes(const nn_backend *b)
{
    return is_cuda(b) ? ((const cu_state *)b->impl)->peak_bytes : 0;
}

extern "C" const char *nn_cuda_device_name(const nn_backend *b)
{
    return is_cuda(b) ? ((const cu_state *)b->impl)->devname : "";
}

extern "C" void *nn_cuda_stream(const nn_backend *b)
{
    return is_cuda(b) ? (void *)((const cu_state *)b->impl)->stream : NULL;
}

// create-time checks fill err and fail
#define CREATE_CK(call)                                                                                          \
    do {                                                                                                         \
        cudaError_t e_ = (call);                                                                                 \
        if (e_ != cudaSuccess) {                                                                                 \
            snprintf(err, errlen, "cuda backend: %s failed: %s: %s", #call, cudaGetErrorName(e_),                \
                     cudaGetErrorString(e_));                                                                    \
            (void)cudaGetLastError();                                                                            \
            cu_release(s);                                                                                       \
            return 1;                                                                                            \
        }                                                                                                        \
    } while (0)

#define CREATE_CKB(call)                                                                                         \
    do {                                                                                                         \
        cublasStatus_t e_ = (call);                                                                              \
        if (e_ != CUBLAS_STATUS_SUCCESS) {                                                                       \
            snprintf(err, errlen, "cuda backend: %s failed: %s", #call, cublasGetStatusString(e_));              \
            cu_release(s);                                                                                       \
            return 1;                                                                                            \
        }                                                                                                        \
    } while (0)

extern "C" int nn_backend_cuda_create(nn_backend **out, int device, nn_precision prec, char *err, size_t errlen)
{
    *out = NULL;
    const char *pname = nn_precision_name(prec);
    if (!pname) {
        snprintf(err, errlen, "cuda backend: invalid precision %d", (int)prec);
        return 1;
    }
    int ndev = 0;
    cudaError_t e = cudaGetDeviceCount(&ndev);
    if (e != cudaSuccess || ndev == 0) {
        snprintf(err, errlen, "cuda backend: no CUDA device: %s",
                 e == cudaSuccess ? "0 devices" : cudaGetErrorString(e));
        (void)cudaGetLastError();
        return 1;
    }
    if (device < 0 || device >= ndev) {
        snprintf(err, errlen, "cuda backend: device %d does not exist (%d visible)", device, ndev);
        return 1;
    }
    cu_state *s = (cu_state *)calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "cuda backend: out of memory");
        return 1;
    }
    s->device = device;
    s->prec = prec;
    const char *sc = getenv("ADEBERT_CUDA_SYNC_CHECK");
    s->sync_check = sc && *sc && strcmp(sc, "0") != 0;
    CREATE_CK(cudaSetDevice(device));
    cudaDeviceProp prop;
    CREATE_CK(cudaGetDeviceProperties(&prop, device));
    s->sm_major = prop.major;
    s->sm_minor = prop.minor;
    snprintf(s->devname, sizeof s->devname, "%s (sm_%d%d)", prop.name, prop.major, prop.minor);
    if ((prec == NN_PREC_BF16 || prec == NN_PREC_TF32) && prop.major < 8) {
        snprintf(err, errlen, "cuda backend: precision %s needs compute capability 8.0 or newer; device %d (%s) is "
                              "sm_%d%d (use fp16 or fp32)",
                 pname, device, prop.name, prop.major, prop.minor);
        cu_release(s);
        return 1;
    }
    switch (prec) {
    case NN_PREC_FP32: s->ctype = CUBLAS_COMPUTE_32F; break;
    case NN_PREC_TF32: s->ctype = CUBLAS_COMPUTE_32F_FAST_TF32; break;
    case NN_PREC_BF16: s->ctype = CUBLAS_COMPUTE_32F_FAST_16BF; break;
    case NN_PREC_FP16: s->ctype = CUBLAS_COMPUTE_32F_FAST_16F; break;
    }
    CREATE_CK(cudaDeviceGetAttribute(&s->smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    CREATE_CK(cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking));
    CREATE_CKB(cublasCreate(&s->blas));
    CREATE_CKB(cublasSetStream(s->blas, s->stream)); // before the workspace: setting a stream resets it
    // FP32: no tensor-core down-conversion (CUBLAS_COMPUTE_32F already forbids it;
    // the math mode says so too). Other precisions: the compute type decides.
    CREATE_CKB(cublasSetMathMode(s->blas, CUBLAS_DEFAULT_MATH));
    CREATE_CKB(cublasSetAtomicsMode(s->blas, CUBLAS_ATOMICS_NOT_ALLOWED));
    CREATE_CKB(cublasSetPointerMode(s->blas, CUBLAS_POINTER_MODE_HOST));
    CREATE_CK(cudaMalloc(&s->workspace, WORKSPACE_BYTES));
    rec_add(s, s->workspace, WORKSPACE_BYTES);
    CREATE_CKB(cublasSetWorkspace(s->blas, s->workspace, WORKSPACE_BYTES));
    CREATE_CK(cudaMalloc((void **)&s->red, (SUMSQ_BLOCKS + 1) * sizeof(double)));
    rec_add(s, s->red, (SUMSQ_BLOCKS + 1) * sizeof(double));
    CREATE_CK(cudaMalloc((void **)&s->flags, sizeof(unsigned)));
    rec_add(s, s->flags, sizeof(unsigned));
    CREATE_CK(cudaMemsetAsync(s->flags, 0, sizeof(unsigned), s->stream));
    // attention kernels may use all the shared memory a block can opt into (they
    // declare no static shared memory; subtract it anyway should that change)
    {
        cudaFuncAttributes fa, ba;
        CREATE_CK(cudaFuncGetAttributes(&fa, k_attn_fwd));
        CREATE_CK(cudaFuncGetAttributes(&ba, k_attn_bwd));
        size_t st = fa.sharedSizeBytes > ba.sharedSizeBytes ? fa.sharedSizeBytes : ba.sharedSizeBytes;
        s->smem_optin -= (int)st;
        CREATE_CK(cudaFuncSetAttribute(k_attn_fwd, cudaFuncAttributeMaxDynamicSharedMemorySize, s->smem_optin));
        CREATE_CK(cudaFuncSetAttribute(k_attn_bwd, cudaFuncAttributeMaxDynamicSharedMemorySize, s->smem_optin));
    }
    CREATE_CK(cudaStreamSynchronize(s->stream));
    nn_backend *b = (nn_backend *)calloc(1, sizeof *b);
    if (!b) {
        snprintf(err, errlen, "cuda backend: out of memory");
        cu_release(s);
        return 1;
    }
    b->ops = &CUDA_OPS;
    b->impl = s;
    *out = b;
    return 0;
}
