// Fixed-shape reductions: column sums (bias and LayerNorm parameter gradients)
// and the sum of squares of the gradient norm. Each column belongs to one fixed
// (block, lane) set and sumsq uses a fixed grid of partials then one block, so
// the result never depends on the device or on timing.
#include "nn/cuda/internal.cuh"

#define COL_TX 32 // column reductions: 32 columns x COL_TY row lanes per block
#define COL_TY 16

// Block (COL_TX, COL_TY) owns COL_TX columns; row lane ty sums rows ty, ty+COL_TY,
// ... in order, then thread ty == 0 adds the COL_TY partials in order.
// x == NULL: dst1 += colsum(dy) (bias). Otherwise LayerNorm: dst1 (dg) +=
// colsum(dy * xhat), xhat = (x - mean) * rstd; dst2 (dbeta) += colsum(dy).
static __global__ void k_colsum(float *dst1, float *dst2, const float *dy, const float *x, const float *mean,
                                const float *rstd, int64_t rows, int64_t cols)
{
    __shared__ float sa[COL_TY][COL_TX + 1], sb[COL_TY][COL_TX + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int64_t c = (int64_t)blockIdx.x * COL_TX + tx;
    float a = 0.0f, bsum = 0.0f;
    if (c < cols) {
        for (int64_t r = ty; r < rows; r += COL_TY) {
            float d = dy[r * cols + c];
            if (x) a += d * (x[r * cols + c] - mean[r]) * rstd[r]; // dy * xhat
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

void nn_cu_colsum(cu_state *s, float *d1, float *d2, const float *dy, const float *x, const float *mean,
                  const float *rstd, int64_t rows, int64_t cols)
{
    int64_t nblk = (cols + COL_TX - 1) / COL_TX;
    if (nblk > INT_MAX) {
        nn_cu_fail(s, "column reduction: %lld columns", (long long)cols);
        return;
    }
    k_colsum<<<(unsigned)nblk, dim3(COL_TX, COL_TY), 0, s->stream>>>(d1, d2, dy, x, mean, rstd, rows, cols);
    LAUNCHED(s, k_colsum);
}

static __global__ void k_sumsq_partial(const float *x, int64_t n, double *partial)
{
    __shared__ double sh[33];
    double s = 0.0;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)blockDim.x * gridDim.x)
        s += (double)x[i] * x[i];
    s = block_sum(s, sh);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

static __global__ void k_sumsq_final(double *partial, int nblocks)
{
    __shared__ double sh[33];
    double s = 0.0;
    for (int i = threadIdx.x; i < nblocks; i += blockDim.x) s += partial[i];
    s = block_sum(s, sh);
    if (threadIdx.x == 0) partial[nblocks] = s;
}

double nn_cu_sumsq(nn_backend *b, const float *x, int64_t n)
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
    nn_cu_check_flags(s);
    return s->failed ? NAN : r;
}
