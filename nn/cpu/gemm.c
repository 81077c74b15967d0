/* GEMM provider shim. Only this file includes a BLAS header. */
#include "nn/cpu/gemm.h"
#include "nn/backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(ADEBERT_BLAS_DNNL)
#include <oneapi/dnnl/dnnl.h>
#define PROVIDER "dnnl"
#elif defined(ADEBERT_BLAS_BLIS)
#include <cblas.h>
#define PROVIDER "blis"
#elif defined(ADEBERT_BLAS_OPENBLAS)
#include <cblas.h>
#define PROVIDER "openblas"
#else
#error "define one of ADEBERT_BLAS_DNNL, ADEBERT_BLAS_BLIS, ADEBERT_BLAS_OPENBLAS"
#endif

const char *nn_cpu_blas_name(void)
{
    return PROVIDER;
}

void nn_cpu_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *A,
                  int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    if (m <= 0 || n <= 0) return;
#if defined(ADEBERT_BLAS_DNNL)
    if (k <= 0) { /* dnnl rejects K = 0; the product is empty */
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
        return;
    }
    dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
#else
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (int)m,
                (int)n, (int)k, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
#endif
}

/* ---- bf16: oneDNN matmul on bf16 copies of A and B, fp32 accumulation and C */
#if defined(ADEBERT_BLAS_DNNL)

#include <immintrin.h>

#define BF16_CACHE 96 /* BERT's step uses ~12 distinct (shape, alpha, beta) per length mix */

typedef struct {
    int64_t m, n, k, ldc;
    int ta, tb;
    float alpha, beta;
    dnnl_primitive_t prim;
} bf16_entry;

/* A resident bf16 copy of a weight matrix: src as stored, [rows, cols] packed. */
typedef struct {
    const float *src;
    int64_t rows, cols;
    uint16_t *bf;
    size_t cap; /* elements of bf */
    int stale;  /* src was written since bf was made (nn_cpu_bf16_forget) */
} bf16_weight;

struct nn_cpu_bf16 {
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    uint16_t *a, *b; /* staging: op inputs as bf16, packed (ld = rows of the stored layout) */
    size_t acap, bcap;
    bf16_entry cache[BF16_CACHE];
    int ncache, next;
    bf16_weight *w; /* resident weights, one per distinct matrix */
    int nw, wcap;
    uint64_t conversions;
    char isa[32];
    int warned;
};

static int grow(uint16_t **p, size_t *cap, size_t n)
{
    if (n <= *cap) return 0;
    size_t bytes = ((n * sizeof **p) + 63) & ~(size_t)63;
    uint16_t *q = aligned_alloc(64, bytes);
    if (!q) return 1;
    free(*p);
    *p = q;
    *cap = bytes / sizeof **p;
    return 0;
}

/* rows x cols of src (leading dimension ld) -> dst packed (leading dimension cols).
 * The bf16 context exists only where oneDNN found AVX512-BF16, so the converting
 * instruction (VCVTNEPS2BF16: nearest even, NaN kept; it reads denormal inputs as
 * zero, unlike nn_bf16_round) is there too; the tail uses nn_bf16_round. */
__attribute__((target("avx512f,avx512bf16"))) static void to_bf16(uint16_t *dst, const float *src, int64_t rows,
                                                                  int64_t cols, int64_t ld)
{
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
    for (int64_t r = 0; r < rows; r++) {
        const float *s = src + r * ld;
        uint16_t *d = dst + r * cols;
        int64_t j = 0;
        for (; j + 16 <= cols; j += 16) {
            __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(s + j));
            _mm256_storeu_si256((__m256i *)(d + j), (__m256i)h);
        }
        for (; j < cols; j++) d[j] = nn_bf16_round(s[j]);
    }
}

static dnnl_primitive_t make_prim(nn_cpu_bf16 *c, const bf16_entry *e)
{
    dnnl_memory_desc_t a, b, d;
    /* op(A) is m x k: stored m x k (ld k) or, transposed, k x m (ld m) */
    dnnl_dims_t da = {e->m, e->k}, db = {e->k, e->n}, dd = {e->m, e->n};
    dnnl_dims_t sa = {e->ta ? 1 : e->k, e->ta ? e->m : 1};
    dnnl_dims_t sb = {e->tb ? 1 : e->n, e->tb ? e->k : 1};
    dnnl_dims_t sd = {e->ldc, 1};
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t prim = NULL;
    dnnl_matmul_desc_t md;
    if (dnnl_memory_desc_init_by_strides(&a, 2, da, dnnl_bf16, sa) != dnnl_success ||
        dnnl_memory_desc_init_by_strides(&b, 2, db, dnnl_bf16, sb) != dnnl_success ||
        dnnl_memory_desc_init_by_strides(&d, 2, dd, dnnl_f32, sd) != dnnl_success ||
        dnnl_matmul_desc_init(&md, &a, &b, NULL, &d) != dnnl_success || dnnl_primitive_attr_create(&attr) != dnnl_success)
        goto out;
    if (e->alpha != 1.0f && dnnl_primitive_attr_set_output_scales(attr, 1, 0, &e->alpha) != dnnl_success) goto out;
    if (e->beta != 0.0f) {
        if (dnnl_post_ops_create(&po) != dnnl_success || dnnl_post_ops_append_sum(po, e->beta) != dnnl_success ||
            dnnl_primitive_attr_set_post_ops(attr, po) != dnnl_success)
            goto out;
    }
    if (dnnl_primitive_desc_create(&pd, &md, attr, c->eng, NULL) != dnnl_success) goto out;
    if (dnnl_primitive_create(&prim, pd) != dnnl_success) prim = NULL;
out:
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return prim;
}

static dnnl_primitive_t lookup(nn_cpu_bf16 *c, const bf16_entry *key)
{
    for (int i = 0; i < c->ncache; i++) {
        bf16_entry *e = &c->cache[i];
        if (e->m == key->m && e->n == key->n && e->k == key->k && e->ldc == key->ldc && e->ta == key->ta &&
            e->tb == key->tb && e->alpha == key->alpha && e->beta == key->beta)
            return e->prim;
    }
    dnnl_primitive_t p = make_prim(c, key);
    if (!p) return NULL;
    int slot = c->ncache < BF16_CACHE ? c->ncache++ : (c->next++ % BF16_CACHE);
    if (c->cache[slot].prim) dnnl_primitive_destroy(c->cache[slot].prim);
    c->cache[slot] = *key;
    c->cache[slot].prim = p;
    return p;
}

nn_cpu_bf16 *nn_cpu_bf16_create(char *err, size_t errlen)
{
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    const char *name = NULL;
    if ((isa & dnnl_cpu_isa_avx512_core_amx) == dnnl_cpu_isa_avx512_core_amx) name = "avx512_core_amx";
    else if ((isa & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16) name = "avx512_core_bf16";
    if (!name) {
        snprintf(err, errlen, "this CPU has neither AVX512-BF16 nor AMX (as oneDNN sees it; ONEDNN_MAX_CPU_ISA can "
                              "lower it)");
        return NULL;
    }
    nn_cpu_bf16 *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "bf16 GEMM: out of memory");
        return NULL;
    }
    snprintf(c->isa, sizeof c->isa, "%s", name);
    /* oneDNN also keeps every primitive it creates in a process-wide cache (1024 by
     * default). Packed batches have a new token count almost every step, so that cache
     * fills with shapes never used again: tens of MB that grow epoch after epoch until
     * it is full (issue 12: RSS flat across epochs). The cache above already holds the
     * primitives in use; oneDNN's is bounded to the same size (unless the user set
     * ONEDNN_PRIMITIVE_CACHE_CAPACITY). MiniLM-L6's step time showed no loss (60 steps,
     * on a busy machine: 2.50 s/step bounded vs 2.71 s/step at 1024). */
    if (!getenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY") && !getenv("DNNL_PRIMITIVE_CACHE_CAPACITY"))
        (void)dnnl_set_primitive_cache_capacity(BF16_CACHE);
    if (dnnl_engine_create(&c->eng, dnnl_cpu, 0) != dnnl_success ||
        dnnl_stream_create(&c->stream, c->eng, dnnl_stream_default_flags) != dnnl_success) {
        snprintf(err, errlen, "bf16 GEMM: oneDNN engine/stream creation failed");
        nn_cpu_bf16_free(c);
        return NULL;
    }
    /* one probe: a primitive must exist for the shapes we use */
    bf16_entry probe = {.m = 16, .n = 16, .k = 16, .ldc = 16, .alpha = 1.0f};
    if (!lookup(c, &probe)) {
        snprintf(err, errlen, "bf16 GEMM: oneDNN has no bf16 matmul on this CPU");
        nn_cpu_bf16_free(c);
        return NULL;
    }
    return c;
}

void nn_cpu_bf16_free(nn_cpu_bf16 *c)
{
    if (!c) return;
    for (int i = 0; i < c->ncache; i++)
        if (c->cache[i].prim) dnnl_primitive_destroy(c->cache[i].prim);
    if (c->stream) dnnl_stream_destroy(c->stream);
    if (c->eng) dnnl_engine_destroy(c->eng);
    for (int i = 0; i < c->nw; i++) free(c->w[i].bf);
    free(c->w);
    free(c->a);
    free(c->b);
    free(c);
}

const char *nn_cpu_bf16_isa(const nn_cpu_bf16 *c)
{
    return c ? c->isa : "";
}

/* C = alpha op(A) op(B) + beta C from a16 and b16, the bf16 copies of A and B in
 * their stored layouts, packed. 0 ok; 1 if oneDNN refused. */
static int bf16_run(nn_cpu_bf16 *c, const bf16_entry *key, const uint16_t *a16, const uint16_t *b16, float *C)
{
    dnnl_primitive_t p = lookup(c, key);
    if (!p) return 1;
    dnnl_memory_desc_t ma, mb, md;
    dnnl_memory_t xa = NULL, xb = NULL, xd = NULL;
    const_dnnl_primitive_desc_t pd;
    int ok = dnnl_primitive_get_primitive_desc(p, &pd) == dnnl_success;
    const dnnl_memory_desc_t *q;
    if (ok && (q = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0))) ma = *q; else ok = 0;
    if (ok && (q = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0))) mb = *q; else ok = 0;
    if (ok && (q = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0))) md = *q; else ok = 0;
    /* oneDNN takes non-const handles; matmul only reads its sources */
    ok = ok && dnnl_memory_create(&xa, &ma, c->eng, (void *)a16) == dnnl_success &&
         dnnl_memory_create(&xb, &mb, c->eng, (void *)b16) == dnnl_success &&
         dnnl_memory_create(&xd, &md, c->eng, C) == dnnl_success;
    if (ok) {
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, xa}, {DNNL_ARG_WEIGHTS, xb}, {DNNL_ARG_DST, xd}};
        ok = dnnl_primitive_execute(p, c->stream, 3, args) == dnnl_success &&
             dnnl_stream_wait(c->stream) == dnnl_success;
    }
    if (xa) dnnl_memory_destroy(xa);
    if (xb) dnnl_memory_destroy(xb);
    if (xd) dnnl_memory_destroy(xd);
    return !ok;
}

/* not expected once the probe passed; never silently wrong */
static void bf16_failed(nn_cpu_bf16 *c, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
                        const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    if (!c->warned++)
        fprintf(stderr, "adebert: bf16 GEMM %lldx%lldx%lld failed in oneDNN; computing it in fp32\n", (long long)m,
                (long long)n, (long long)k);
    nn_cpu_sgemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

void nn_cpu_bf16_gemm(nn_cpu_bf16 *c, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *A,
                      int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        nn_cpu_sgemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    bf16_entry key = {.m = m, .n = n, .k = k, .ldc = ldc, .ta = ta, .tb = tb, .alpha = alpha, .beta = beta};
    int ok = !grow(&c->a, &c->acap, (size_t)(m * k)) && !grow(&c->b, &c->bcap, (size_t)(k * n));
    if (ok) {
        /* stored layouts: A is (ta ? k x m : m x k), B is (tb ? n x k : k x n) */
        to_bf16(c->a, A, ta ? k : m, ta ? m : k, lda);
        to_bf16(c->b, B, tb ? n : k, tb ? k : n, ldb);
        ok = !bf16_run(c, &key, c->a, c->b, C);
    }
    if (!ok) bf16_failed(c, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* The resident bf16 copy of the packed [rows, cols] matrix at src, made now if there
 * is none or it is stale; NULL when out of memory. A new matrix takes the slot of a
 * stale one of another shape or address (a freed model's) before the table grows. The
 * copy is to_bf16 of the same rows, so it holds the bits a per-call conversion makes. */
static const uint16_t *resident(nn_cpu_bf16 *c, const float *src, int64_t rows, int64_t cols)
{
    bf16_weight *w = NULL, *spare = NULL;
    for (int i = 0; i < c->nw && !w; i++) {
        bf16_weight *e = &c->w[i];
        if (e->src == src && e->rows == rows && e->cols == cols) w = e;
        else if (e->stale && !spare) spare = e;
    }
    if (!w && !(w = spare)) {
        if (c->nw == c->wcap) {
            int cap = c->wcap ? 2 * c->wcap : 64;
            bf16_weight *t = realloc(c->w, (size_t)cap * sizeof *t);
            if (!t) return NULL;
            c->w = t;
            c->wcap = cap;
        }
        w = &c->w[c->nw++];
        memset(w, 0, sizeof *w);
    }
    if (w->src != src || w->rows != rows || w->cols != cols) {
        w->src = src;
        w->rows = rows;
        w->cols = cols;
        w->stale = 1;
    }
    if (w->stale) {
        if (grow(&w->bf, &w->cap, (size_t)(rows * cols))) return NULL;
        to_bf16(w->bf, src, rows, cols, cols);
        w->stale = 0;
        c->conversions++;
    }
    return w->bf;
}

void nn_cpu_bf16_gemm_weight(nn_cpu_bf16 *c, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
                             const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                             int64_t ldc)
{
    const int64_t rows = tb ? n : k, cols = tb ? k : n; /* B as stored */
    const uint16_t *b16 = NULL;
    if (m <= 0 || n <= 0 || k <= 0 || ldb != cols || !(b16 = resident(c, B, rows, cols))) {
        nn_cpu_bf16_gemm(c, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc); /* converts B this once */
        return;
    }
    bf16_entry key = {.m = m, .n = n, .k = k, .ldc = ldc, .ta = ta, .tb = tb, .alpha = alpha, .beta = beta};
    int ok = !grow(&c->a, &c->acap, (size_t)(m * k));
    if (ok) {
        to_bf16(c->a, A, ta ? k : m, ta ? m : k, lda);
        ok = !bf16_run(c, &key, c->a, b16, C);
    }
    if (!ok) bf16_failed(c, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

void nn_cpu_bf16_forget(nn_cpu_bf16 *c, const void *p, size_t bytes)
{
    if (!c) return;
    const uintptr_t lo = (uintptr_t)p, hi = lo + bytes;
    for (int i = 0; i < c->nw; i++) {
        bf16_weight *e = &c->w[i];
        const uintptr_t s = (uintptr_t)e->src, t = s + (size_t)(e->rows * e->cols) * sizeof(float);
        if (s < hi && lo < t) e->stale = 1;
    }
}

uint64_t nn_cpu_bf16_weight_conversions(const nn_cpu_bf16 *c)
{
    return c ? c->conversions : 0;
}

#else /* BLIS / OpenBLAS builds: no bf16 path */

nn_cpu_bf16 *nn_cpu_bf16_create(char *err, size_t errlen)
{
    snprintf(err, errlen, "bf16 on the CPU needs the oneDNN build (ADEBERT_BLAS=dnnl), this one uses %s", PROVIDER);
    return NULL;
}
void nn_cpu_bf16_free(nn_cpu_bf16 *c)
{
    (void)c;
}
void nn_cpu_bf16_gemm(nn_cpu_bf16 *c, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *A,
                      int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    (void)c;
    nn_cpu_sgemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}
void nn_cpu_bf16_gemm_weight(nn_cpu_bf16 *c, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
                             const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                             int64_t ldc)
{
    (void)c;
    nn_cpu_sgemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}
void nn_cpu_bf16_forget(nn_cpu_bf16 *c, const void *p, size_t bytes)
{
    (void)c;
    (void)p;
    (void)bytes;
}
uint64_t nn_cpu_bf16_weight_conversions(const nn_cpu_bf16 *c)
{
    (void)c;
    return 0;
}
const char *nn_cpu_bf16_isa(const nn_cpu_bf16 *c)
{
    (void)c;
    return "";
}
#endif
