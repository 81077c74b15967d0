// LayerNorm over rows, one block per row; forward saves mean and rstd.
#include "nn/cuda/internal.cuh"

static __global__ void k_layernorm_fwd(float *y, float *mean, float *rstd, const float *x, const float *g,
                                       const float *beta, int64_t cols, float eps)
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

// dx of LayerNorm, one block per row, with xhat = (x - mean) * rstd and dxhat =
// dy * g: dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), the
// direct term and the corrections through the mean and through rstd (the math
// and the association of the products are nn/cpu/cpu_backend.c's, so both round
// alike). dx may alias dy: block_sum's barriers order every read of dy before
// any write.
static __global__ void k_layernorm_bwd_dx(float *dx, const float *dy, const float *x, const float *mean,
                                          const float *rstd, const float *g, int64_t cols)
{
    __shared__ float sh[33];
    const int64_t r = blockIdx.x;
    const float *d = dy + r * cols, *xr = x + r * cols;
    float *o = dx + r * cols;
    const float mu = mean[r], rs = rstd[r];
    float mean_dxhat = 0.0f, mean_dxhat_xhat = 0.0f;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
        float dxhat = d[c] * g[c];
        mean_dxhat += dxhat;
        mean_dxhat_xhat += dxhat * (xr[c] - mu) * rs;
    }
    mean_dxhat = block_sum(mean_dxhat, sh) / (float)cols;
    mean_dxhat_xhat = block_sum(mean_dxhat_xhat, sh) / (float)cols;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
        float dxhat = d[c] * g[c], xhat = (xr[c] - mu) * rs;
        o[c] = rs * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat);
    }
}

void nn_cu_layernorm_fwd(nn_backend *b, float *y, float *mean, float *rstd, const float *x, const float *g,
                         const float *beta, int64_t rows, int64_t cols, float eps)
{
    cu_state *s = ST(b);
    if (s->failed || rows <= 0 || cols <= 0) return;
    if (rows > INT_MAX) {
        nn_cu_fail(s, "layernorm: %lld rows", (long long)rows);
        return;
    }
    k_layernorm_fwd<<<(unsigned)rows, NT, 0, s->stream>>>(y, mean, rstd, x, g, beta, cols, eps);
    LAUNCHED(s, k_layernorm_fwd);
}

void nn_cu_layernorm_bwd(nn_backend *b, float *dx, float *dg, float *dbeta, const float *dy, const float *x,
                         const float *mean, const float *rstd, const float *g, int64_t rows, int64_t cols)
{
    cu_state *s = ST(b);
    if (s->failed || rows <= 0 || cols <= 0) return;
    if (rows > INT_MAX) {
        nn_cu_fail(s, "layernorm: %lld rows", (long long)rows);
        return;
    }
    // parameter gradients first: dx may alias dy (stream order)
    nn_cu_colsum(s, dg, dbeta, dy, x, mean, rstd, rows, cols);
    if (s->failed) return;
    k_layernorm_bwd_dx<<<(unsigned)rows, NT, 0, s->stream>>>(dx, dy, x, mean, rstd, g, cols);
    LAUNCHED(s, k_layernorm_bwd_dx);
}
