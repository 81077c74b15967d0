// torch.optim.AdamW on the flat parameter buffer.
#include "nn/cuda/internal.cuh"

static __global__ void k_adamw(float *p, const float *g, float *m, float *v, int64_t n, float decay, float b1, float b2,
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


void nn_cu_adamw(nn_backend *b, float *p, const float *g, float *m, float *v, int64_t n, const nn_adamw_args *a)
{
    cu_state *s = ST(b);
    if (s->failed || n <= 0) return;
    const float decay = 1.0f - a->lr * a->weight_decay; // on the host, as the CPU computes it
    k_adamw<<<grid_for(n, NT), NT, 0, s->stream>>>(p, g, m, v, n, decay, a->beta1, a->beta2, a->one_minus_beta1,
                                                   a->one_minus_beta2, a->step_size, a->bc2_sqrt, a->eps,
                                                   a->grad_scale);
    LAUNCHED(s, k_adamw);
}
