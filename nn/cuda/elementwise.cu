// Element-wise ops: add, mul, scale, GELU (exact erf) and tanh with their
// derivatives. One thread per element in grid-stride loops.
#include "nn/cuda/internal.cuh"

static __global__ void k_add(float *y, const float *x, int64_t n)
{
    GRID_STRIDE(i, n) y[i] += x[i];
}

static __global__ void k_mul(float *y, const float *x, int64_t n)
{
    GRID_STRIDE(i, n) y[i] *= x[i];
}

static __global__ void k_scale(float *x, int64_t n, float alpha)
{
    GRID_STRIDE(i, n) x[i] *= alpha;
}

static __global__ void k_gelu_fwd(float *y, const float *x, int64_t n)
{
    GRID_STRIDE(i, n) y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

static __global__ void k_gelu_bwd(float *dx, const float *dy, const float *x, int64_t n)
{
    GRID_STRIDE(i, n)
    {
        float v = x[i];
        float cdf = 0.5f * (1.0f + erff(v * 0.70710678118654752f));
        float pdf = 0.39894228040143268f * expf(-0.5f * v * v);
        dx[i] = dy[i] * (cdf + v * pdf);
    }
}

static __global__ void k_gelu_fwd_deriv(float *y, float *dydx, const float *x, int64_t n)
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

static __global__ void k_tanh_fwd(float *y, const float *x, int64_t n)
{
    GRID_STRIDE(i, n) y[i] = tanhf(x[i]);
}

static __global__ void k_tanh_bwd(float *dx, const float *dy, const float *y, int64_t n)
{
    GRID_STRIDE(i, n) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
}

#define POINTWISE(name, kernel, ...)                                                                             \
    do {                                                                                                         \
        cu_state *s = ST(b);                                                                                     \
        if (s->failed || n <= 0) return;                                                                         \
        kernel<<<grid_for(n, NT), NT, 0, s->stream>>>(__VA_ARGS__);                                              \
        LAUNCHED(s, kernel);                                                                                     \
    } while (0)

void nn_cu_add(nn_backend *b, float *y, const float *x, int64_t n) { POINTWISE(add, k_add, y, x, n); }
void nn_cu_gelu_fwd(nn_backend *b, float *y, const float *x, int64_t n) { POINTWISE(gelu_fwd, k_gelu_fwd, y, x, n); }
void nn_cu_gelu_bwd(nn_backend *b, float *dx, const float *dy, const float *x, int64_t n)
{
    POINTWISE(gelu_bwd, k_gelu_bwd, dx, dy, x, n);
}
void nn_cu_gelu_fwd_deriv(nn_backend *b, float *y, float *dydx, const float *x, int64_t n)
{
    POINTWISE(gelu_fwd_deriv, k_gelu_fwd_deriv, y, dydx, x, n);
}
void nn_cu_mul(nn_backend *b, float *y, const float *x, int64_t n) { POINTWISE(mul, k_mul, y, x, n); }
void nn_cu_tanh_fwd(nn_backend *b, float *y, const float *x, int64_t n) { POINTWISE(tanh_fwd, k_tanh_fwd, y, x, n); }
void nn_cu_tanh_bwd(nn_backend *b, float *dx, const float *dy, const float *y, int64_t n)
{
    POINTWISE(tanh_bwd, k_tanh_bwd, dx, dy, y, n);
}
void nn_cu_scale(nn_backend *b, float *x, int64_t n, float alpha) { POINTWISE(scale, k_scale, x, n, alpha); }
