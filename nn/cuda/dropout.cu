// Counter-based dropout (Philox4x32-10 keyed as nn/backend.h says): the mask of
// an element depends only on (key, sample, site, position, element).
#include "nn/cuda/internal.cuh"

// x *= mask / (1 - p); one thread per Philox block (4 consecutive elements of a row)
static __global__ void k_dropout(float *x, int64_t rows, int64_t cols, float p, float sc, uint32_t k0, uint32_t k1,
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

void nn_cu_dropout(nn_backend *b, float *x, int64_t rows, int64_t cols, const nn_dropout_desc *d)
{
    cu_state *s = ST(b);
    if (s->failed || !(d->p > 0.0f) || rows <= 0 || cols <= 0) return;
    int64_t work = rows * ((cols + 3) / 4);
    k_dropout<<<grid_for(work, NT), NT, 0, s->stream>>>(x, rows, cols, d->p, nn_dropout_scale(d->p), d->key.k0,
                                                         d->key.k1, d->site, d->row_sample, d->row_pos);
    LAUNCHED(s, k_dropout);
}
