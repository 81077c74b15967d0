// Softmax cross-entropy over [n, c] logits (one block; the loss sums in double).
#include "nn/cuda/internal.cuh"

static __global__ void k_xent(const float *logits, const int32_t *labels, const float *cw, int64_t n, int64_t c,
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


void nn_cu_xent(nn_backend *b, const float *logits, const int32_t *labels, const float *cw, int64_t n, int64_t c,
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
