// Embedding lookups and row gathers/scatters. The backward passes accumulate with
// one thread per column walking tokens in order: no atomics, the CPU's order.
#include "nn/cuda/internal.cuh"

static __global__ void k_embed_fwd(float *out, const int32_t *ids, const int32_t *pos, const int32_t *types,
                                   const float *W, const float *P, const float *Tt, int64_t T, int64_t H)
{
    GRID_STRIDE(i, T * H)
    {
        int64_t t = i / H, c = i % H;
        out[i] = W[(int64_t)ids[t] * H + c] + P[(int64_t)pos[t] * H + c] + Tt[(int64_t)types[t] * H + c];
    }
}

// One thread per (table, column), tokens in order: no two threads touch the same
// address, and each sum is the CPU's (same order).
static __global__ void k_embed_bwd(float *dW, float *dP, float *dTt, const float *dout, const int32_t *ids,
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


static __global__ void k_gather_rows(float *out, const float *in, const int32_t *idx, int64_t n, int64_t cols)
{
    GRID_STRIDE(i, n * cols)
    {
        int64_t r = i / cols, c = i % cols;
        out[i] = in[(int64_t)idx[r] * cols + c];
    }
}

// one thread per column, rows in order (idx may repeat)
static __global__ void k_scatter_rows_acc(float *out, const float *in, const int32_t *idx, int64_t n, int64_t cols)
{
    GRID_STRIDE(c, cols)
    {
        for (int64_t r = 0; r < n; r++) out[(int64_t)idx[r] * cols + c] += in[r * cols + c];
    }
}

void nn_cu_embed_fwd(nn_backend *b, float *out, const int32_t *ids, const int32_t *pos, const int32_t *types,
                     const float *W, const float *P, const float *Tt, int64_t T, int64_t H)
{
    cu_state *s = ST(b);
    if (s->failed || T <= 0 || H <= 0) return;
    k_embed_fwd<<<grid_for(T * H, NT), NT, 0, s->stream>>>(out, ids, pos, types, W, P, Tt, T, H);
    LAUNCHED(s, k_embed_fwd);
}

void nn_cu_embed_bwd_acc(nn_backend *b, float *dW, float *dP, float *dTt, const float *dout, const int32_t *ids,
                         const int32_t *pos, const int32_t *types, int32_t pad_id, int64_t T, int64_t H)
{
    cu_state *s = ST(b);
    if (s->failed || T <= 0 || H <= 0) return;
    k_embed_bwd<<<grid_for(3 * H, NT), NT, 0, s->stream>>>(dW, dP, dTt, dout, ids, pos, types, pad_id, T, H);
    LAUNCHED(s, k_embed_bwd);
}

void nn_cu_gather_rows(nn_backend *b, float *out, const float *in, const int32_t *idx, int64_t n, int64_t cols)
{
    cu_state *s = ST(b);
    if (s->failed || n <= 0 || cols <= 0) return;
    k_gather_rows<<<grid_for(n * cols, NT), NT, 0, s->stream>>>(out, in, idx, n, cols);
    LAUNCHED(s, k_gather_rows);
}

void nn_cu_scatter_rows_acc(nn_backend *b, float *out, const float *in, const int32_t *idx, int64_t n,
                            int64_t cols)
{
    cu_state *s = ST(b);
    if (s->failed || n <= 0 || cols <= 0) return;
    k_scatter_rows_acc<<<grid_for(cols, NT), NT, 0, s->stream>>>(out, in, idx, n, cols);
    LAUNCHED(s, k_scatter_rows_acc);
}
