/* CPU reference backend: fp32, one OpenMP thread pool shared with the BLAS.
 * Reductions are organised so results do not depend on scheduling: column
 * reductions give each column to one thread, and per-(sequence, head) attention
 * work writes disjoint slices. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, MADV_HUGEPAGE */
#include "nn/backend.h"
#include "nn/cpu/gemm.h"
#include "nn/philox.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define COLBLK 64

typedef struct {
    int threads;
    nn_cpu_bf16 *bf16; /* made by the first nn_backend_cpu_set_precision(BF16), kept */
    int use_bf16;      /* ->gemm rounds its inputs to bf16 */
} cpu_state;

/* Every buffer starts zeroed. Large ones are fresh anonymous mappings, which the kernel
 * zeroes page by page on first touch: a model sized for the longest batch (an
 * inference arena is mostly the attention-probability room of 512-token batches that
 * short sentences never reach) costs only the pages its batches actually use, instead
 * of a memset faulting in all of them at load (eval: 1.1 GB, ~1.5 s of page faults).
 * Transparent huge pages are asked for where the system leaves them to madvise.
 * Small buffers, and all of them in sanitizer builds (ASan checks heap blocks, not
 * mappings), come from the heap and are memset. A 64-byte header before the returned
 * address records which, and the size. */
#define ALLOC_HDR 64
#define ALLOC_MAP_MIN ((size_t)1 << 20)
#if defined(__SANITIZE_ADDRESS__)
#define ALLOC_USE_MAP 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define ALLOC_USE_MAP 0
#endif
#endif
#ifndef ALLOC_USE_MAP
#define ALLOC_USE_MAP 1
#endif
typedef struct {
    size_t map_bytes; /* 0: a heap block; else the mapping's length, from (char *)hdr + ALLOC_HDR - page */
    size_t bytes;
} alloc_hdr;

static void *cpu_alloc(nn_backend *b, size_t bytes)
{
    (void)b;
    /* 64-byte alignment for the BLAS and the vector code */
    size_t sz = (bytes + 63) & ~(size_t)63;
    if (sz == 0) sz = 64;
    /* refuse what cannot fit in RAM instead of letting overcommit kill us later */
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    if (sz < bytes || (pages > 0 && psz > 0 && (double)sz > (double)pages * (double)psz)) return NULL;
    if (ALLOC_USE_MAP && sz >= ALLOC_MAP_MIN && psz > 0) {
        size_t page = (size_t)psz, len = sz + page; /* one page in front holds the header */
        char *base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (base == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
        madvise(base + page, sz, MADV_HUGEPAGE); /* a hint: failure changes nothing */
#endif
        alloc_hdr *h = (alloc_hdr *)(base + page - ALLOC_HDR);
        h->map_bytes = len;
        h->bytes = sz;
        return base + page;
    }
    char *p = aligned_alloc(64, sz + ALLOC_HDR);
    if (!p) return NULL;
    memset(p + ALLOC_HDR, 0, sz);
    alloc_hdr *h = (alloc_hdr *)p;
    h->map_bytes = 0;
    h->bytes = sz;
    return p + ALLOC_HDR;
}

static void cpu_free(nn_backend *b, void *p)
{
    (void)b;
    if (!p) return;
    alloc_hdr *h = (alloc_hdr *)((char *)p - ALLOC_HDR);
    if (h->map_bytes) {
        size_t len = h->map_bytes, page = len - h->bytes;
        munmap((char *)p - page, len);
    } else {
        free(h);
    }
}

static void cpu_upload(nn_backend *b, void *dst, const void *src, size_t bytes)
{
    (void)b;
    if (bytes) memcpy(dst, src, bytes);
}

static void cpu_copy(nn_backend *b, void *dst, const void *src, size_t bytes)
{
    (void)b;
    if (bytes && dst != src) memmove(dst, src, bytes);
}

static void cpu_zero(nn_backend *b, void *dst, size_t bytes)
{
    (void)b;
    if (bytes) memset(dst, 0, bytes);
}

static void cpu_sync(nn_backend *b)
{
    (void)b;
}

static void cpu_gemm(nn_backend *b, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *A,
                     int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    cpu_state *s = b->impl;
    if (s->use_bf16) nn_cpu_bf16_gemm(s->bf16, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
    else nn_cpu_sgemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

static void cpu_gemm_weight(nn_backend *b, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
                            const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                            int64_t ldc)
{
    cpu_state *s = b->impl;
    if (s->use_bf16) nn_cpu_bf16_gemm_weight(s->bf16, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
    else nn_cpu_sgemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

static void cpu_weights_changed(nn_backend *b, const void *p, size_t bytes)
{
    /* whatever the current precision: a later switch to bf16 must not see old copies */
    nn_cpu_bf16_forget(((cpu_state *)b->impl)->bf16, p, bytes);
}

static void cpu_bias_add(nn_backend *b, float *y, const float *bias, int64_t rows, int64_t cols)
{
    (void)b;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        float *yr = y + r * cols;
#pragma omp simd
        for (int64_t c = 0; c < cols; c++) yr[c] += bias[c];
    }
}

static void cpu_bias_grad_acc(nn_backend *b, float *db, const float *dy, int64_t rows, int64_t cols)
{
    (void)b;
    /* db += dy^T 1 as a GEMM: the provider's kernels beat a strided column loop */
    float *ones = malloc((size_t)(rows > 0 ? rows : 1) * sizeof *ones);
    if (ones) {
        for (int64_t r = 0; r < rows; r++) ones[r] = 1.0f;
        nn_cpu_sgemm(1, 0, cols, 1, rows, 1.0f, dy, cols, ones, 1, 1.0f, db, 1);
        free(ones);
        return;
    }
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) db[c] += dy[r * cols + c];
}

static void cpu_add(nn_backend *b, float *y, const float *x, int64_t n)
{
    (void)b;
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

static void cpu_embed_fwd(nn_backend *b, float *out, const int32_t *ids, const int32_t *pos, const int32_t *types,
                          const float *W, const float *P, const float *Tt, int64_t T, int64_t H)
{
    (void)b;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; t++) {
        const float *w = W + (int64_t)ids[t] * H, *p = P + (int64_t)pos[t] * H, *ty = Tt + (int64_t)types[t] * H;
        float *o = out + t * H;
#pragma omp simd
        for (int64_t c = 0; c < H; c++) o[c] = w[c] + p[c] + ty[c];
    }
}

static void cpu_embed_bwd_acc(nn_backend *b, float *dW, float *dP, float *dTt, const float *dout, const int32_t *ids,
                              const int32_t *pos, const int32_t *types, int32_t pad_id, int64_t T, int64_t H)
{
    (void)b;
    int64_t nblk = (H + COLBLK - 1) / COLBLK;
    /* each thread owns a column block of all three tables: no races, fixed order */
#pragma omp parallel for schedule(static)
    for (int64_t blk = 0; blk < nblk; blk++) {
        int64_t c0 = blk * COLBLK, c1 = c0 + COLBLK < H ? c0 + COLBLK : H;
        for (int64_t t = 0; t < T; t++) {
            const float *d = dout + t * H;
            float *w = dW + (int64_t)ids[t] * H, *p = dP + (int64_t)pos[t] * H, *ty = dTt + (int64_t)types[t] * H;
            if (ids[t] != pad_id)
                for (int64_t c = c0; c < c1; c++) w[c] += d[c];
            for (int64_t c = c0; c < c1; c++) {
                p[c] += d[c];
                ty[c] += d[c];
            }
        }
    }
}

/* LayerNorm of one row, mean and rstd returned: the arithmetic of layernorm_fwd and of
 * the fused bias_dropout_add_layernorm_fwd. Out of line so that both run the same
 * machine code, hence the same reduction order (an inlined copy may vectorise the
 * sums differently). */
__attribute__((noinline)) static void layernorm_row(float *yr, float *mean, float *rstd, const float *xr,
                                                    const float *g, const float *beta, int64_t cols, float eps)
{
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t c = 0; c < cols; c++) s += xr[c];
    float mu = s / (float)cols, v = 0.0f;
#pragma omp simd reduction(+ : v)
    for (int64_t c = 0; c < cols; c++) v += (xr[c] - mu) * (xr[c] - mu);
    float rs = 1.0f / sqrtf(v / (float)cols + eps);
    *mean = mu;
    *rstd = rs;
#pragma omp simd
    for (int64_t c = 0; c < cols; c++) yr[c] = (xr[c] - mu) * rs * g[c] + beta[c];
}

static void cpu_layernorm_fwd(nn_backend *b, float *y, float *mean, float *rstd, const float *x, const float *g,
                              const float *beta, int64_t rows, int64_t cols, float eps)
{
    (void)b;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++)
        layernorm_row(y + r * cols, &mean[r], &rstd[r], x + r * cols, g, beta, cols, eps);
}

/* LayerNorm backward, per row, with xhat = (x - mean) * rstd (the normalised
 * input) and dxhat = dy * g (the gradient reaching xhat):
 *   dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
 * dxhat alone is the gradient were mean and rstd constants; mean(dxhat) is the
 * correction through the mean (each x moves it by 1/cols), xhat * mean(dxhat *
 * xhat) the one through rstd (the variance). dg += colsum(dy * xhat), dbeta +=
 * colsum(dy). Products are associated as (dxhat * (x - mean)) * rstd, in the
 * CUDA kernels too, so both backends round alike. */
static void cpu_layernorm_bwd(nn_backend *b, float *dx, float *dg, float *dbeta, const float *dy, const float *x,
                              const float *mean, const float *rstd, const float *g, int64_t rows, int64_t cols)
{
    (void)b;
    /* parameter gradients first (dx may alias dy) */
    int64_t nblk = (cols + COLBLK - 1) / COLBLK;
#pragma omp parallel for schedule(static)
    for (int64_t blk = 0; blk < nblk; blk++) {
        int64_t c0 = blk * COLBLK, c1 = c0 + COLBLK < cols ? c0 + COLBLK : cols;
        float ag[COLBLK] = {0}, ab[COLBLK] = {0};
        for (int64_t r = 0; r < rows; r++) {
            const float *d = dy + r * cols, *xr = x + r * cols;
            float mu = mean[r], rs = rstd[r];
            for (int64_t c = c0; c < c1; c++) {
                ag[c - c0] += d[c] * (xr[c] - mu) * rs; /* dy * xhat */
                ab[c - c0] += d[c];
            }
        }
        for (int64_t c = c0; c < c1; c++) {
            dg[c] += ag[c - c0];
            dbeta[c] += ab[c - c0];
        }
    }
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *d = dy + r * cols, *xr = x + r * cols;
        float *o = dx + r * cols;
        float mu = mean[r], rs = rstd[r], mean_dxhat = 0.0f, mean_dxhat_xhat = 0.0f;
#pragma omp simd reduction(+ : mean_dxhat, mean_dxhat_xhat)
        for (int64_t c = 0; c < cols; c++) {
            float dxhat = d[c] * g[c];
            mean_dxhat += dxhat;
            mean_dxhat_xhat += dxhat * (xr[c] - mu) * rs;
        }
        mean_dxhat /= (float)cols;
        mean_dxhat_xhat /= (float)cols;
#pragma omp simd
        for (int64_t c = 0; c < cols; c++) {
            float dxhat = d[c] * g[c], xhat = (xr[c] - mu) * rs;
            o[c] = rs * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat);
        }
    }
}

/* ---- GELU and exp through glibc's vector math library (libmvec: _ZGV*_erff, _ZGV*_expf,
 * the variants GCC calls for `#pragma omp declare simd` math; 1-2 ulp), 16 lanes on
 * AVX-512, 8 on AVX2, scalar libm elsewhere. Scalar erff/expf were ~30% of inference
 * time (perf: eval of MiniLM-L6). Only erf and exp go through the vector functions
 * (vm_map); the GELU formulas around them are plain C, written once (vm_apply). Every
 * element goes through the same function, tails included (padded to a full vector), so
 * a value's result never depends on n, its position or the thread count. */
enum { VM_ERF, VM_EXP };

#if defined(ADEBERT_HAVE_MVEC) && defined(__x86_64__)
#include <immintrin.h>
__m512 _ZGVeN16v_erff(__m512 x);
__m512 _ZGVeN16v_expf(__m512 x);
__m256 _ZGVdN8v_erff(__m256 x);
__m256 _ZGVdN8v_expf(__m256 x);

__attribute__((target("avx512f"))) static void vm_block16(int fn, float *y, const float *x)
{
    __m512 v = _mm512_loadu_ps(x);
    _mm512_storeu_ps(y, fn == VM_ERF ? _ZGVeN16v_erff(v) : _ZGVeN16v_expf(v));
}

__attribute__((target("avx2"))) static void vm_block8(int fn, float *y, const float *x)
{
    __m256 v = _mm256_loadu_ps(x);
    _mm256_storeu_ps(y, fn == VM_ERF ? _ZGVdN8v_erff(v) : _ZGVdN8v_expf(v));
}

/* 16, 8, or 0 (scalar libm): the vector width this CPU runs, chosen once; the
 * ADEBERT_VECMATH=scalar|avx2 environment variable narrows it (tests compare paths). */
static int vm_width(void)
{
    static int w = -1;
    if (w < 0) {
        const char *e = getenv("ADEBERT_VECMATH");
        int ww = 0;
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f") && !(e && (!strcmp(e, "avx2") || !strcmp(e, "scalar")))) ww = 16;
        else if (__builtin_cpu_supports("avx2") && !(e && !strcmp(e, "scalar"))) ww = 8;
        w = ww;
    }
    return w;
}
#else
static int vm_width(void) { return 0; }
#endif

/* y[i] = erf(x[i]) or exp(x[i]) for i in [0, n), serial; y may alias x. The vector
 * path computes the tail in a zero-padded vector. */
static void vm_map(int fn, float *y, const float *x, int64_t n)
{
    int64_t i = 0;
#if defined(ADEBERT_HAVE_MVEC) && defined(__x86_64__)
    const int w = vm_width();
    if (w) {
        void (*block)(int, float *, const float *) = w == 16 ? vm_block16 : vm_block8;
        for (; i + w <= n; i += w) block(fn, y + i, x + i);
        if (i < n) {
            float buf[16] = {0};
            const size_t r = (size_t)(n - i) * sizeof(float);
            memcpy(buf, x + i, r);
            block(fn, buf, buf);
            memcpy(y + i, buf, r);
        }
        return;
    }
#endif
    for (; i < n; i++) y[i] = fn == VM_ERF ? erff(x[i]) : expf(x[i]);
}

/* "avx512 (libmvec)", "avx2 (libmvec)" or "scalar (libm)": the path of GELU/exp */
const char *nn_cpu_vecmath_name(void)
{
    int w = vm_width();
    return w == 16 ? "avx512 (libmvec)" : w == 8 ? "avx2 (libmvec)" : "scalar (libm)";
}

enum { GELU_FWD, GELU_FWD_DERIV, GELU_BWD };

/* The GELU kernels in chunks of VM_CHUNK elements, one chunk per task: y = gelu(v),
 * and d = gelu'(v) (FWD_DERIV; d may alias x), or y = dy * gelu'(v) (BWD; dy in a,
 * y may alias a), where v = x, or v = x + bias[column] for x of `cols` columns (the
 * fused bias_gelu_fwd; the sum rounded once, as bias_add stores it). erf and exp of a
 * chunk go through vm_map in local buffers. */
#define VM_CHUNK 1024

static void vm_apply(int kind, float *y, float *d, const float *a, const float *x, const float *bias, int64_t cols,
                     int64_t n)
{
    const int64_t nch = (n + VM_CHUNK - 1) / VM_CHUNK;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < nch; c++) {
        const int64_t o = c * VM_CHUNK, len = n - o < VM_CHUNK ? n - o : VM_CHUNK;
        const float *xc = x + o;
        float erf_t[VM_CHUNK], exp_t[VM_CHUNK], sum_t[VM_CHUNK];
        if (bias) {
            /* the chunk crosses rows: add the bias one row segment at a time */
            for (int64_t i = 0, j = o % cols; i < len; j = 0) {
                const int64_t seg = len - i < cols - j ? len - i : cols - j;
#pragma omp simd
                for (int64_t k = 0; k < seg; k++) sum_t[i + k] = xc[i + k] + bias[j + k];
                i += seg;
            }
            xc = sum_t;
        }
        for (int64_t i = 0; i < len; i++) erf_t[i] = xc[i] * 0.70710678118654752f;
        vm_map(VM_ERF, erf_t, erf_t, len);
        if (kind != GELU_FWD) {
            for (int64_t i = 0; i < len; i++) exp_t[i] = -0.5f * xc[i] * xc[i];
            vm_map(VM_EXP, exp_t, exp_t, len);
        }
        for (int64_t i = 0; i < len; i++) {
            const float v = xc[i], cdf = 0.5f * (1.0f + erf_t[i]);
            if (kind == GELU_FWD) {
                y[o + i] = v * cdf;
                continue;
            }
            const float der = cdf + v * (0.39894228040143268f * exp_t[i]);
            if (kind == GELU_BWD) {
                y[o + i] = a[o + i] * der;
            } else {
                y[o + i] = v * cdf;
                d[o + i] = der;
            }
        }
    }
}

static void cpu_gelu_fwd(nn_backend *b, float *y, const float *x, int64_t n)
{
    (void)b;
    vm_apply(GELU_FWD, y, NULL, NULL, x, NULL, 0, n);
}

static void cpu_gelu_bwd(nn_backend *b, float *dx, const float *dy, const float *x, int64_t n)
{
    (void)b;
    vm_apply(GELU_BWD, dx, NULL, dy, x, NULL, 0, n);
}

static void cpu_gelu_fwd_deriv(nn_backend *b, float *y, float *dydx, const float *x, int64_t n)
{
    (void)b;
    vm_apply(GELU_FWD_DERIV, y, dydx, NULL, x, NULL, 0, n);
}

static void cpu_bias_gelu_fwd(nn_backend *b, float *y, float *dydx, float *x, const float *bias, int64_t rows,
                              int64_t cols)
{
    (void)b;
    vm_apply(dydx ? GELU_FWD_DERIV : GELU_FWD, y, dydx, NULL, x, bias, cols, rows * cols);
}

static void cpu_mul(nn_backend *b, float *y, const float *x, int64_t n)
{
    (void)b;
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] *= x[i];
}

static void cpu_tanh_fwd(nn_backend *b, float *y, const float *x, int64_t n)
{
    (void)b;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] = tanhf(x[i]);
}

static void cpu_tanh_bwd(nn_backend *b, float *dx, const float *dy, const float *y, int64_t n)
{
    (void)b;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
}

/* keep-multipliers (0 or 1/(1-p)) for elements e0 .. e0+n-1 of one (sample, site,
 * pos). Philox blocks are computed PHX_LANES at a time in lane arrays so the
 * compiler vectorises the 32x32->64 multiplies; the bits are those of
 * nn_rng_bits (tests compare the two). */
#define PHX_LANES 16

static void mask_row(float *out, int64_t n, uint32_t e0, float p, nn_rng_key key, uint32_t sample, uint32_t site,
                     uint32_t pos)
{
    if (n <= 0) return;
    const float sc = nn_dropout_scale(p);
    const uint32_t b0 = e0 >> 2, b1 = (uint32_t)((e0 + (uint64_t)n - 1) >> 2);
    for (uint64_t blk = b0; blk <= b1; blk += PHX_LANES) {
        uint32_t c0[PHX_LANES], c1[PHX_LANES], c2[PHX_LANES], c3[PHX_LANES];
        for (int l = 0; l < PHX_LANES; l++) {
            c0[l] = (uint32_t)(blk + (uint64_t)l);
            c1[l] = pos;
            c2[l] = site;
            c3[l] = sample;
        }
        uint32_t k0 = key.k0, k1 = key.k1;
        for (int r = 0; r < 10; r++) {
#pragma omp simd
            for (int l = 0; l < PHX_LANES; l++) {
                uint64_t p0 = (uint64_t)0xD2511F53u * c0[l], p1 = (uint64_t)0xCD9E8D57u * c2[l];
                uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1[l] ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3[l] ^ k1;
                c1[l] = (uint32_t)p1;
                c3[l] = (uint32_t)p0;
                c0[l] = n0;
                c2[l] = n2;
            }
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        for (int l = 0; l < PHX_LANES; l++) {
            uint64_t b = blk + (uint64_t)l;
            if (b > b1) break;
            const uint32_t w4[4] = {c0[l], c1[l], c2[l], c3[l]};
            for (int w = 0; w < 4; w++) {
                int64_t i = (int64_t)(b * 4 + (uint64_t)w) - (int64_t)e0;
                if (i >= 0 && i < n) out[i] = nn_rng_keep(w4[w], p) ? sc : 0.0f;
            }
        }
    }
}

/* y = x * mask row by row (y may alias x) */
static void dropout_rows(float *y, const float *x, int64_t rows, int64_t cols, const nn_dropout_desc *d)
{
#pragma omp parallel
    {
        float *m = malloc((size_t)cols * sizeof *m);
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            if (!m) continue;
            mask_row(m, cols, 0, d->p, d->key, d->row_sample[r], d->site, (uint32_t)d->row_pos[r]);
            const float *xr = x + r * cols;
            float *yr = y + r * cols;
            for (int64_t c = 0; c < cols; c++) yr[c] = xr[c] * m[c];
        }
        free(m);
    }
}

static void cpu_dropout(nn_backend *b, float *x, int64_t rows, int64_t cols, const nn_dropout_desc *d)
{
    (void)b;
    if (d->p > 0.0f) dropout_rows(x, x, rows, cols, d);
}

static void cpu_dropout_copy(nn_backend *b, float *y, const float *x, int64_t rows, int64_t cols,
                             const nn_dropout_desc *d)
{
    if (d->p > 0.0f) dropout_rows(y, x, rows, cols, d);
    else cpu_copy(b, y, x, (size_t)(rows * cols) * sizeof *y);
}

/* The post-LN residual block's tail in one pass over each row, while it is in cache:
 * x = (x + bias) * mask + res, each step rounded as bias_add, dropout and add round it,
 * then layernorm_row. */
static void cpu_bias_dropout_add_layernorm_fwd(nn_backend *b, float *y, float *mean, float *rstd, float *x,
                                               const float *bias, const nn_dropout_desc *d, const float *res,
                                               const float *g, const float *beta, int64_t rows, int64_t cols,
                                               float eps)
{
    (void)b;
    const int drop = d && d->p > 0.0f;
    int fail = 0;
#pragma omp parallel reduction(| : fail)
    {
        float *m = drop ? malloc((size_t)cols * sizeof *m) : NULL;
        if (drop && !m) fail = 1;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            float *xr = x + r * cols;
            const float *rr = res + r * cols;
            if (drop) {
                if (!m) continue;
                mask_row(m, cols, 0, d->p, d->key, d->row_sample[r], d->site, (uint32_t)d->row_pos[r]);
#pragma omp simd
                for (int64_t c = 0; c < cols; c++) xr[c] = (xr[c] + bias[c]) * m[c] + rr[c];
            } else {
#pragma omp simd
                for (int64_t c = 0; c < cols; c++) xr[c] = xr[c] + bias[c] + rr[c];
            }
            layernorm_row(y + r * cols, &mean[r], &rstd[r], xr, g, beta, cols, eps);
        }
        free(m);
    }
    if (fail) abort(); /* one row of floats per thread: nothing sensible to do without it */
}

static void cpu_gather_rows(nn_backend *b, float *out, const float *in, const int32_t *idx, int64_t n, int64_t cols)
{
    (void)b;
    for (int64_t i = 0; i < n; i++) memcpy(out + i * cols, in + (int64_t)idx[i] * cols, (size_t)cols * sizeof *out);
}

static void cpu_scatter_rows_acc(nn_backend *b, float *out, const float *in, const int32_t *idx, int64_t n,
                                 int64_t cols)
{
    (void)b;
    for (int64_t i = 0; i < n; i++) {
        float *o = out + (int64_t)idx[i] * cols;
        const float *s = in + i * cols;
        for (int64_t c = 0; c < cols; c++) o[c] += s[c];
    }
}

static float dot(const float *a, const float *b, int64_t n)
{
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static void axpy(float *y, float a, const float *x, int64_t n)
{
#pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

/* Attention per (sequence, head) task. Sequences of at least ATT_GEMM_MIN tokens
 * use the GEMM provider for the four products (called inside our parallel
 * region, the OpenMP BLAS runs single-threaded per task); shorter ones use the
 * loops below, where a GEMM call's overhead would dominate. */
#ifndef ATT_GEMM_MIN
#define ATT_GEMM_MIN 24
#endif

static void attn_fwd_task(const nn_attn_desc *d, const float *qkv, float *probs, float *ctx, int64_t s, int64_t h,
                          float *m, float *pd)
{
    const int64_t dh = d->head_dim, H = d->heads * dh, H3 = 3 * H;
    int64_t o = d->offsets[s], L = d->offsets[s + 1] - o;
    float *P = probs + d->prob_off[s] + h * L * L;
    const float *Q = qkv + o * H3 + h * dh, *K = Q + H, *V = Q + 2 * H;
    float *Cx = ctx + o * H + h * dh;
    int big = L >= ATT_GEMM_MIN;
    float *Pd = d->p > 0.0f ? pd : P; /* without dropout the context uses P itself */
    if (big) nn_cpu_sgemm(0, 1, L, L, dh, d->scale, Q, H3, K, H3, 0.0f, P, L);
    for (int64_t i = 0; i < L; i++) {
        float *Pi = P + i * L, mx = -INFINITY, sum = 0.0f;
        if (!big)
            for (int64_t j = 0; j < L; j++) Pi[j] = dot(Q + i * H3, K + j * H3, dh) * d->scale;
        for (int64_t j = 0; j < L; j++)
            if (Pi[j] > mx) mx = Pi[j];
        for (int64_t j = 0; j < L; j++) Pi[j] -= mx;
        vm_map(VM_EXP, Pi, Pi, L);
        for (int64_t j = 0; j < L; j++) sum += Pi[j];
        float inv = 1.0f / sum;
        for (int64_t j = 0; j < L; j++) Pi[j] *= inv;
        float *Pdi = Pd + i * L;
        if (d->p > 0.0f) {
            mask_row(m, L, (uint32_t)(h * d->elem_stride), d->p, d->key, d->seq_sample[s], d->site, (uint32_t)i);
            for (int64_t j = 0; j < L; j++) Pdi[j] = Pi[j] * m[j];
        }
        if (!big) {
            float *c = Cx + i * H;
            memset(c, 0, (size_t)dh * sizeof *c);
            for (int64_t j = 0; j < L; j++)
                if (Pdi[j] != 0.0f) axpy(c, Pdi[j], V + j * H3, dh);
        }
    }
    if (big) nn_cpu_sgemm(0, 0, L, dh, L, 1.0f, Pd, L, V, H3, 0.0f, Cx, H);
}

static void cpu_attention_fwd(nn_backend *b, const nn_attn_desc *d, const float *qkv, float *probs, float *ctx)
{
    (void)b;
    const int64_t tasks = d->nseq * d->heads, ml = d->max_len > 0 ? d->max_len : 1;
    int fail = 0;
#pragma omp parallel reduction(| : fail)
    {
        float *m = malloc((size_t)(ml + ml * ml) * sizeof *m);
        if (!m) fail = 1;
#pragma omp for schedule(dynamic, 1)
        for (int64_t task = 0; task < tasks; task++)
            if (m) attn_fwd_task(d, qkv, probs, ctx, task / d->heads, task % d->heads, m, m + ml);
        free(m);
    }
    if (fail) abort(); /* a few KiB per thread: nothing sensible to do without them */
}

static void attn_bwd_task(const nn_attn_desc *d, const float *qkv, const float *probs, const float *dctx,
                          float *dqkv, int64_t s, int64_t h, float *m, float *pd, float *dp)
{
    const int64_t dh = d->head_dim, H = d->heads * dh, H3 = 3 * H;
    int64_t o = d->offsets[s], L = d->offsets[s + 1] - o;
    const float *P = probs + d->prob_off[s] + h * L * L;
    const float *Q = qkv + o * H3 + h * dh, *K = Q + H, *V = Q + 2 * H, *dC = dctx + o * H + h * dh;
    float *dQ = dqkv + o * H3 + h * dh, *dK = dQ + H, *dV = dQ + 2 * H;
    int big = L >= ATT_GEMM_MIN;
    /* Pd = P * mask (recomputed from the counter-based generator) */
    for (int64_t i = 0; i < L; i++) {
        const float *Pi = P + i * L;
        float *Pdi = pd + i * L;
        if (d->p > 0.0f) {
            mask_row(m + i * L, L, (uint32_t)(h * d->elem_stride), d->p, d->key, d->seq_sample[s], d->site,
                     (uint32_t)i);
            for (int64_t j = 0; j < L; j++) Pdi[j] = Pi[j] * m[i * L + j];
        } else
            memcpy(Pdi, Pi, (size_t)L * sizeof *Pdi);
    }
    if (big) {
        nn_cpu_sgemm(1, 0, L, dh, L, 1.0f, pd, L, dC, H, 0.0f, dV, H3); /* dV = Pd^T dctx */
        nn_cpu_sgemm(0, 1, L, L, dh, 1.0f, dC, H, V, H3, 0.0f, dp, L);  /* dPd = dctx V^T */
    } else {
        for (int64_t j = 0; j < L; j++) memset(dV + j * H3, 0, (size_t)dh * sizeof *dV);
        for (int64_t i = 0; i < L; i++)
            for (int64_t j = 0; j < L; j++) {
                if (pd[i * L + j] != 0.0f) axpy(dV + j * H3, pd[i * L + j], dC + i * H, dh);
                dp[i * L + j] = dot(dC + i * H, V + j * H3, dh);
            }
    }
    /* dS = P * (dP - rowsum(dP * P)) * scale, dP = dPd * mask */
    for (int64_t i = 0; i < L; i++) {
        const float *Pi = P + i * L;
        float *di = dp + i * L, rs = 0.0f;
        if (d->p > 0.0f)
            for (int64_t j = 0; j < L; j++) di[j] *= m[i * L + j];
        for (int64_t j = 0; j < L; j++) rs += di[j] * Pi[j];
        for (int64_t j = 0; j < L; j++) di[j] = Pi[j] * (di[j] - rs) * d->scale;
    }
    if (big) {
        nn_cpu_sgemm(0, 0, L, dh, L, 1.0f, dp, L, K, H3, 0.0f, dQ, H3); /* dQ = dS K */
        nn_cpu_sgemm(1, 0, L, dh, L, 1.0f, dp, L, Q, H3, 0.0f, dK, H3); /* dK = dS^T Q */
    } else {
        for (int64_t i = 0; i < L; i++) {
            memset(dQ + i * H3, 0, (size_t)dh * sizeof *dQ);
            memset(dK + i * H3, 0, (size_t)dh * sizeof *dK);
        }
        for (int64_t i = 0; i < L; i++)
            for (int64_t j = 0; j < L; j++) {
                float ds = dp[i * L + j];
                if (ds == 0.0f) continue;
                axpy(dQ + i * H3, ds, K + j * H3, dh);
                axpy(dK + j * H3, ds, Q + i * H3, dh);
            }
    }
}

static void cpu_attention_bwd(nn_backend *b, const nn_attn_desc *d, const float *qkv, const float *probs,
                              const float *dctx, float *dqkv)
{
    (void)b;
    const int64_t tasks = d->nseq * d->heads, ml = d->max_len > 0 ? d->max_len : 1;
    int fail = 0;
#pragma omp parallel reduction(| : fail)
    {
        float *m = malloc((size_t)(3 * ml * ml) * sizeof *m);
        if (!m) fail = 1;
#pragma omp for schedule(dynamic, 1)
        for (int64_t task = 0; task < tasks; task++)
            if (m) attn_bwd_task(d, qkv, probs, dctx, dqkv, task / d->heads, task % d->heads, m, m + ml * ml,
                                 m + 2 * ml * ml);
        free(m);
    }
    if (fail) abort();
}

static void cpu_xent(nn_backend *b, const float *logits, const int32_t *labels, const float *cw, int64_t n, int64_t c,
                     float inv_denom, float *loss, float *dlogits)
{
    (void)b;
    double total = 0.0;
    for (int64_t i = 0; i < n; i++) {
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
    loss[0] = (float)(total * inv_denom);
}

static double cpu_sumsq(nn_backend *b, const float *x, int64_t n)
{
    (void)b;
    double s = 0.0;
#pragma omp parallel for reduction(+ : s) schedule(static)
    for (int64_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return s;
}

static void cpu_scale(nn_backend *b, float *x, int64_t n, float alpha)
{
    (void)b;
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) x[i] *= alpha;
}

static void cpu_adamw(nn_backend *b, float *p, const float *g, float *m, float *v, int64_t n, const nn_adamw_args *a)
{
    (void)b;
    const float decay = 1.0f - a->lr * a->weight_decay, b1 = a->beta1, b2 = a->beta2;
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i] * a->grad_scale;
        float pi = p[i] * decay;
        float mi = b1 * m[i] + a->one_minus_beta1 * gi;
        float vi = b2 * v[i] + a->one_minus_beta2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - a->step_size * mi / (sqrtf(vi) / a->bc2_sqrt + a->eps);
    }
}

static void cpu_destroy(nn_backend *b)
{
    if (!b) return;
    if (b->impl) nn_cpu_bf16_free(((cpu_state *)b->impl)->bf16);
    free(b->impl);
    free(b);
}

static const nn_backend_ops CPU_OPS = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_upload,
    .download = cpu_upload,
    .copy = cpu_copy,
    .zero = cpu_zero,
    .sync = cpu_sync,
    .gemm = cpu_gemm,
    .bias_add = cpu_bias_add,
    .bias_grad_acc = cpu_bias_grad_acc,
    .add = cpu_add,
    .embed_fwd = cpu_embed_fwd,
    .embed_bwd_acc = cpu_embed_bwd_acc,
    .layernorm_fwd = cpu_layernorm_fwd,
    .layernorm_bwd = cpu_layernorm_bwd,
    .gelu_fwd = cpu_gelu_fwd,
    .gelu_bwd = cpu_gelu_bwd,
    .gelu_fwd_deriv = cpu_gelu_fwd_deriv,
    .mul = cpu_mul,
    .tanh_fwd = cpu_tanh_fwd,
    .tanh_bwd = cpu_tanh_bwd,
    .dropout = cpu_dropout,
    .gather_rows = cpu_gather_rows,
    .scatter_rows_acc = cpu_scatter_rows_acc,
    .attention_fwd = cpu_attention_fwd,
    .attention_bwd = cpu_attention_bwd,
    .xent = cpu_xent,
    .sumsq = cpu_sumsq,
    .scale = cpu_scale,
    .adamw = cpu_adamw,
    .destroy = cpu_destroy,
    .bias_gelu_fwd = cpu_bias_gelu_fwd,
    .bias_dropout_add_layernorm_fwd = cpu_bias_dropout_add_layernorm_fwd,
    .dropout_copy = cpu_dropout_copy,
    .gemm_weight = cpu_gemm_weight,
    .weights_changed = cpu_weights_changed,
};

int nn_backend_cpu_create(nn_backend **out, int threads, char *err, size_t errlen)
{
    *out = NULL;
    nn_backend *b = calloc(1, sizeof *b);
    cpu_state *s = calloc(1, sizeof *s);
    if (!b || !s) {
        free(b);
        free(s);
        snprintf(err, errlen, "cpu backend: out of memory");
        return 1;
    }
    /* one pool: the BLAS (OpenMP build) and our loops share omp's threads */
    if (threads > 0) omp_set_num_threads(threads);
    s->threads = omp_get_max_threads();
    b->ops = &CPU_OPS;
    b->impl = s;
    *out = b;
    return 0;
}

int nn_backend_cpu_set_precision(nn_backend *b, nn_precision p, char *err, size_t errlen)
{
    cpu_state *s = b->impl;
    if (p != NN_PREC_FP32 && p != NN_PREC_BF16) {
        snprintf(err, errlen, "the CPU backend computes in fp32 or bf16, not %s", nn_precision_name(p));
        return 1;
    }
    if (p == NN_PREC_BF16 && !s->bf16 && !(s->bf16 = nn_cpu_bf16_create(err, errlen))) return 1;
    s->use_bf16 = p == NN_PREC_BF16;
    return 0;
}

int nn_backend_cpu_set_precision_name(nn_backend *b, const char *name, char *why, size_t whylen)
{
    if (whylen) why[0] = '\0';
    int bf16 = name && !strcmp(name, "bf16"), autop = name && !strcmp(name, "auto");
    if (!bf16 && !autop && !(name && !strcmp(name, "fp32"))) {
        snprintf(why, whylen, "the CPU backend computes in fp32, bf16 or auto");
        return 1;
    }
    if ((bf16 || autop) && !nn_backend_cpu_set_precision(b, NN_PREC_BF16, why, whylen)) return 0;
    if (bf16) return 1; /* why: the reason */
    /* fp32, or auto without bf16 (why keeps the reason) */
    char unused[8];
    return nn_backend_cpu_set_precision(b, NN_PREC_FP32, unused, sizeof unused);
}

const char *nn_backend_cpu_isa(const nn_backend *b)
{
    const cpu_state *s = b->impl;
    return s->use_bf16 ? nn_cpu_bf16_isa(s->bf16) : "";
}

uint64_t nn_backend_cpu_bf16_weight_conversions(const nn_backend *b)
{
    return nn_cpu_bf16_weight_conversions(((const cpu_state *)b->impl)->bf16);
}

int nn_cpu_bf16_available(char *why, size_t whylen)
{
    nn_cpu_bf16 *c = nn_cpu_bf16_create(why, whylen);
    nn_cpu_bf16_free(c);
    return c != NULL;
}

void nn_backend_destroy(nn_backend *b)
{
    if (b && b->ops) b->ops->destroy(b);
}
