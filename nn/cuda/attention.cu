// Per-sequence multi-head attention over the packed Q|K|V matrix, forward and
// backward, with attention-probability dropout.
#include "nn/cuda/internal.cuh"

#define ATT_WARPS 8           // warps per (sequence, head) block
#define ATT_SMEM_MAX_LEN 128  // sequences up to this length stage Q/K/V in shared memory

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

static __global__ void k_attn_fwd(att_args a, const float *qkv, float *probs, float *ctx, int staged, int64_t lmin,
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
static __global__ void k_attn_bwd(att_args a, const float *qkv, const float *probs, const float *dctx, float *dqkv,
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
            nn_cu_fail(s,
                       "attention: sequences of %lld tokens (head_dim %lld) need %zu bytes of shared memory; the "
                       "device allows %d",
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
        nn_cu_fail(s, "attention: %lld (sequence, head) pairs exceed the grid", (long long)(d->nseq * d->heads));
        return 1;
    }
    return 0;
}

void nn_cu_attention_fwd(nn_backend *b, const nn_attn_desc *d, const float *qkv, float *probs, float *ctx)
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

void nn_cu_attention_bwd(nn_backend *b, const nn_attn_desc *d, const float *qkv, const float *probs,
                         const float *dctx, float *dqkv)
{
    cu_state *s = ST(b);
    if (s->failed || att_check(s, d)) return;
    att_plan pl;
    if (att_make_plan(s, d, 4, &pl)) return;
    const size_t need = (size_t)d->nseq * (size_t)d->heads * 2 * (size_t)d->max_len * (size_t)d->max_len;
    if (nn_cu_scratch(s, &s->att_scratch, &s->att_scratch_bytes, need * sizeof(float), "attention backward scratch"))
        return;
    att_args a = make_att(d);
    for (int k = 0; k < pl.n; k++) {
        k_attn_bwd<<<(unsigned)(d->nseq * d->heads), ATT_WARPS * 32, pl.smem[k], s->stream>>>(
            a, qkv, probs, dctx, dqkv, (float *)s->att_scratch, pl.staged[k], pl.lmin[k], pl.lmax[k], s->flags);
        if (LAUNCHED(s, k_attn_bwd)) return;
    }
}

cudaError_t nn_cu_attention_setup(int *smem_optin)
{
    // they declare no static shared memory; subtract it anyway should that change
    cudaFuncAttributes fa, ba;
    cudaError_t e;
    if ((e = cudaFuncGetAttributes(&fa, k_attn_fwd)) != cudaSuccess) return e;
    if ((e = cudaFuncGetAttributes(&ba, k_attn_bwd)) != cudaSuccess) return e;
    size_t st = fa.sharedSizeBytes > ba.sharedSizeBytes ? fa.sharedSizeBytes : ba.sharedSizeBytes;
    *smem_optin -= (int)st;
    if ((e = cudaFuncSetAttribute(k_attn_fwd, cudaFuncAttributeMaxDynamicSharedMemorySize, *smem_optin)) != cudaSuccess)
        return e;
    return cudaFuncSetAttribute(k_attn_bwd, cudaFuncAttributeMaxDynamicSharedMemorySize, *smem_optin);
}
