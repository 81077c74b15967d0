/* The CUDA backend against the CPU reference backend, op by op and on the whole
 * model (ctest label `gpu`). Without a usable CUDA device (or in a build without
 * CUDA) it prints "SKIPPED: ..." and exits 77, which ctest counts as skipped.
 *
 * Every op gets the same random inputs (fixed seeds) on both backends; outputs
 * are compared norm-wise, ||gpu - cpu|| / ||cpu|| <= 1e-5 in FP32 mode (dropout
 * masks bit for bit). GEMM in BF16/FP16 must match an fp64 product of inputs
 * rounded to bf16/fp16, and FP32 one of the unrounded inputs, each 20 times
 * nearer than to the other (tests/gemm_precision.h). The whole model (a tiny
 * config and a base-shaped one, dropout on) is compared loss + every gradient
 * tensor (<= 1e-4), and 20 AdamW steps run twice on the GPU must give
 * bitwise-equal losses and weights. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <unistd.h>

#include "nn/backend.h"
#include "nn/nn.h"
#include "gemm_precision.h"
#include "nn_test_util.h"

static nn_backend *CPU, *GPU;

static int setup(void **state)
{
    (void)state;
    char err[256];
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = ncpu > 16 ? 16 : ncpu > 0 ? (int)ncpu : 1; /* the reference side is the slow one */
    if (nn_backend_cpu_create(&CPU, threads, err, sizeof err)) {
        fprintf(stderr, "cpu backend: %s\n", err);
        return -1;
    }
    if (nn_backend_cuda_create(&GPU, 0, NN_PREC_FP32, err, sizeof err)) {
        fprintf(stderr, "cuda backend: %s\n", err);
        return -1;
    }
    printf("cuda backend on %s; cpu reference with %d threads (%s)\n", nn_cuda_device_name(GPU), threads,
           nn_cpu_blas_name());
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    nn_backend_destroy(GPU);
    nn_backend_destroy(CPU);
    return 0;
}

static void no_gpu_error(void)
{
    const char *e = nn_cuda_last_error(GPU);
    if (e) fprintf(stderr, "cuda backend error: %s\n", e);
    assert_null(e);
}

/* ------------------------------------------------------------- paired buffers */

typedef struct {
    void *c, *g;
    size_t bytes;
} pbuf;

static pbuf pb_bytes(const void *h, size_t bytes)
{
    pbuf p = {CPU->ops->alloc(CPU, bytes ? bytes : 1), GPU->ops->alloc(GPU, bytes ? bytes : 1), bytes};
    assert_non_null(p.c);
    assert_non_null(p.g);
    if (h && bytes) {
        CPU->ops->upload(CPU, p.c, h, bytes);
        GPU->ops->upload(GPU, p.g, h, bytes);
    }
    return p;
}

static pbuf pb_floats(const float *h, size_t n) { return pb_bytes(h, n * sizeof(float)); }

static void pb_free(pbuf *p)
{
    CPU->ops->free(CPU, p->c);
    GPU->ops->free(GPU, p->g);
    p->c = p->g = NULL;
}

#define FC(p) ((float *)(p).c)
#define FG(p) ((float *)(p).g)

static float *rand_floats(size_t n, uint64_t seed, double scale)
{
    trng r = {seed};
    float *h = malloc((n ? n : 1) * sizeof *h);
    for (size_t i = 0; i < n; i++) h[i] = (float)(scale * trng_uniform(&r));
    return h;
}

static void get_both(const pbuf *p, size_t n, double **c, double **g)
{
    float *hc = malloc((n ? n : 1) * sizeof *hc), *hg = malloc((n ? n : 1) * sizeof *hg);
    CPU->ops->download(CPU, hc, p->c, n * sizeof(float));
    GPU->ops->download(GPU, hg, p->g, n * sizeof(float));
    *c = malloc((n ? n : 1) * sizeof **c);
    *g = malloc((n ? n : 1) * sizeof **g);
    for (size_t i = 0; i < n; i++) {
        (*c)[i] = hc[i];
        (*g)[i] = hg[i];
    }
    free(hc);
    free(hg);
}

/* norm-wise relative error of the GPU's n floats against the CPU's */
static double check(const char *what, const pbuf *p, size_t n, double tol)
{
    double *c, *g;
    get_both(p, n, &c, &g);
    int finite = 1;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(g[i]) && isfinite(c[i])) finite = 0;
    double e = rel_err(g, c, n);
    printf("  %-34s n=%-9zu rel err %.3g%s\n", what, n, e, finite ? "" : " (NON-FINITE)");
    free(c);
    free(g);
    assert_true(finite);
    assert_true(e <= tol);
    return e;
}

/* bitwise equality of the two sides */
static void check_exact(const char *what, const pbuf *p)
{
    unsigned char *hc = malloc(p->bytes ? p->bytes : 1), *hg = malloc(p->bytes ? p->bytes : 1);
    CPU->ops->download(CPU, hc, p->c, p->bytes);
    GPU->ops->download(GPU, hg, p->g, p->bytes);
    int same = memcmp(hc, hg, p->bytes) == 0;
    printf("  %-34s %zu bytes %s\n", what, p->bytes, same ? "bit-identical" : "DIFFER");
    free(hc);
    free(hg);
    assert_true(same);
}

/* ------------------------------------------------------------- GEMM */

static void test_gemm(void **state)
{
    (void)state;
    const int64_t shapes[][3] = {{67, 45, 129}, {1, 300, 64}, {128, 96, 1}, {5, 700, 33}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                const int64_t M = shapes[si][0], N = shapes[si][1], K = shapes[si][2], pad = 3;
                int64_t ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
                int64_t lda = (ac > 0 ? ac : 1) + pad, ldb = (bc > 0 ? bc : 1) + pad, ldc = N + pad;
                size_t na = (size_t)(ar * lda), nb = (size_t)(br * ldb), nc = (size_t)(M * ldc);
                float *A = rand_floats(na, 100 + si, 1), *B = rand_floats(nb, 200 + si, 1),
                      *C = rand_floats(nc, 300 + si, 1);
                pbuf a = pb_floats(A, na), b = pb_floats(B, nb), c = pb_floats(C, nc);
                CPU->ops->gemm(CPU, ta, tb, M, N, K, 0.7f, FC(a), lda, FC(b), ldb, 0.3f, FC(c), ldc);
                GPU->ops->gemm(GPU, ta, tb, M, N, K, 0.7f, FG(a), lda, FG(b), ldb, 0.3f, FG(c), ldc);
                char what[64];
                snprintf(what, sizeof what, "gemm %lldx%lldx%lld ta=%d tb=%d", (long long)M, (long long)N,
                         (long long)K, ta, tb);
                check(what, &c, nc, 1e-5); /* padding columns included: they must stay as they were */
                pb_free(&a);
                pb_free(&b);
                pb_free(&c);
                free(A);
                free(B);
                free(C);
            }
    /* k == 0: C = beta C (GPU only: the CPU BLAS is not asked about this corner) */
    float C0[6] = {1, -2, 3, -4, 5, -6}, got[6];
    float *c0 = GPU->ops->alloc(GPU, sizeof C0);
    GPU->ops->upload(GPU, c0, C0, sizeof C0);
    GPU->ops->gemm(GPU, 0, 0, 2, 3, 0, 1.0f, c0, 1, c0, 3, 0.5f, c0, 3);
    GPU->ops->download(GPU, got, c0, sizeof got);
    for (int i = 0; i < 6; i++) assert_true(got[i] == 0.5f * C0[i]);
    GPU->ops->free(GPU, c0);
    no_gpu_error();
}

/* `rows` x `cols` row-major X stored transposed (tr) or not, rows padded to ld
 * with NaN (a product that reads the padding is wrong everywhere) */
static float *layout(const float *X, int64_t rows, int64_t cols, int tr, int64_t ld)
{
    const int64_t sr = tr ? cols : rows, sc = tr ? rows : cols;
    float *o = malloc((size_t)(sr * ld) * 4);
    for (int64_t i = 0; i < sr * ld; i++) o[i] = NAN;
    for (int64_t r = 0; r < sr; r++)
        for (int64_t c = 0; c < sc; c++) o[r * ld + c] = tr ? X[c * cols + r] : X[r * cols + c];
    return o;
}

/* C = op(A) op(B) (row-major; A is M x K and B is K x N as given, stored transposed
 * when ta/tb, rows padded by `pad`) on a CUDA backend of precision `prec`, as host
 * floats; NULL when the device refuses the precision (only allowed below sm_80). */
static float *gemm_in_t(nn_precision prec, const float *A, const float *B, int64_t M, int64_t N, int64_t K, int ta,
                        int tb, int64_t pad)
{
    char err[256];
    nn_backend *be = NULL;
    if (nn_backend_cuda_create(&be, 0, prec, err, sizeof err)) {
        printf("  %s: refused (%s)\n", nn_precision_name(prec), err);
        assert_non_null(strstr(err, "8.0"));
        return NULL;
    }
    const int64_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    const size_t na = (size_t)((ta ? K : M) * lda), nb = (size_t)((tb ? N : K) * ldb), nc = (size_t)(M * ldc);
    float *hA = layout(A, M, K, ta, lda), *hB = layout(B, K, N, tb, ldb), *hc = malloc(nc * 4);
    float *a = be->ops->alloc(be, na * 4), *b = be->ops->alloc(be, nb * 4), *c = be->ops->alloc(be, nc * 4),
          *h = malloc((size_t)(M * N) * 4);
    be->ops->upload(be, a, hA, na * 4);
    be->ops->upload(be, b, hB, nb * 4);
    be->ops->gemm(be, ta, tb, M, N, K, 1.0f, a, lda, b, ldb, 0.0f, c, ldc);
    be->ops->download(be, hc, c, nc * 4);
    for (int64_t r = 0; r < M; r++) memcpy(h + r * N, hc + r * ldc, (size_t)N * 4);
    free(hA);
    free(hB);
    free(hc);
    const char *le = nn_cuda_last_error(be);
    if (le) fprintf(stderr, "%s\n", le);
    assert_null(le);
    be->ops->free(be, a);
    be->ops->free(be, b);
    be->ops->free(be, c);
    nn_backend_destroy(be);
    return h;
}

static float *gemm_in(nn_precision prec, const float *A, const float *B, int64_t M, int64_t N, int64_t K)
{
    return gemm_in_t(prec, A, B, M, N, K, 0, 0, 0);
}

/* --precision must change what the GEMM computes (tests/gemm_precision.h; the
 * classifier is checked on the CPU by test_nn_ops.c): BF16 (FP16) must be nearer,
 * by PREC_FACTOR, to the fp64 product of bf16- (fp16-) rounded inputs than to
 * that of the inputs as given; FP32 the other way round against both (the
 * negative control: an fp32 product is not taken for a low-precision one); TF32
 * must at least not be an fp32 product (how its inputs are rounded is cuBLAS's
 * business). */
static void test_gemm_precisions(void **state)
{
    (void)state;
    const int64_t M = PREC_M, N = PREC_N, K = PREC_K;
    float *A = prec_inputs((size_t)(M * K), 11), *B = prec_inputs((size_t)(K * N), 12);
    double *ref32 = prec_ref_gemm(A, B, M, N, K, NULL);
    const struct {
        nn_precision prec;
        const char *low;
        float (*round)(float);
        prec_verdict want; /* PREC_NEITHER here: anything but fp32 */
    } cases[] = {
        {NN_PREC_BF16, "bf16", prec_round_bf16, PREC_IS_ROUNDED},
        {NN_PREC_FP16, "fp16", prec_round_fp16, PREC_IS_ROUNDED},
        {NN_PREC_FP32, "bf16", prec_round_bf16, PREC_IS_FP32},
        {NN_PREC_FP32, "fp16", prec_round_fp16, PREC_IS_FP32},
        {NN_PREC_TF32, "tf32", prec_round_tf32, PREC_NEITHER},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float *C = gemm_in(cases[i].prec, A, B, M, N, K);
        if (!C) continue;
        double *ref_low = prec_ref_gemm(A, B, M, N, K, cases[i].round);
        prec_class k = prec_classify(C, ref32, ref_low, (size_t)(M * N), PREC_FACTOR);
        printf("  gemm %s: rel dist to fp32-input ref %.3g, to %s-input ref %.3g: %s\n",
               nn_precision_name(cases[i].prec), k.to_fp32, cases[i].low, k.to_rounded,
               prec_verdict_name(k.verdict, cases[i].low));
        if (cases[i].want == PREC_NEITHER)
            assert_int_not_equal(k.verdict, PREC_IS_FP32);
        else
            assert_int_equal(k.verdict, cases[i].want);
        if (cases[i].prec == NN_PREC_FP32) assert_true(k.to_fp32 <= 1e-5);
        free(C);
        /* bf16/fp16 inputs are rounded by the backend itself (gemm.cu): with every
         * transpose and padded rows, the product is the rounded inputs' product to
         * fp32-accumulation accuracy, 100x tighter than the rounding itself */
        if (cases[i].want == PREC_IS_ROUNDED)
            for (int t = 0; t < 4; t++) {
                float *Ct = gemm_in_t(cases[i].prec, A, B, M, N, K, t >> 1, t & 1, 5);
                if (!Ct) continue;
                prec_class kt = prec_classify(Ct, ref32, ref_low, (size_t)(M * N), PREC_FACTOR);
                printf("    ta=%d tb=%d, rows padded: to %s-input ref %.3g (to fp32-input ref %.3g)\n", t >> 1, t & 1,
                       cases[i].low, kt.to_rounded, kt.to_fp32);
                assert_true(kt.to_rounded * 100 < kt.to_fp32);
                free(Ct);
            }
        free(ref_low);
    }
    free(A);
    free(B);
    free(ref32);
}

/* ------------------------------------------------------------- pointwise */

static void test_pointwise(void **state)
{
    (void)state;
    const size_t n = 10007;
    float *X = rand_floats(n, 21, 3), *Y = rand_floats(n, 22, 1), *T = rand_floats(n, 23, 0.99);
    pbuf x = pb_floats(X, n), y = pb_floats(Y, n), t = pb_floats(T, n), o = pb_floats(NULL, n),
         o2 = pb_floats(NULL, n);
#define BOTH(call_c, call_g) \
    do {                     \
        call_c;              \
        call_g;              \
    } while (0)
    BOTH(CPU->ops->gelu_fwd(CPU, FC(o), FC(x), n), GPU->ops->gelu_fwd(GPU, FG(o), FG(x), n));
    check("gelu_fwd", &o, n, 1e-5);
    BOTH(CPU->ops->gelu_bwd(CPU, FC(o), FC(y), FC(x), n), GPU->ops->gelu_bwd(GPU, FG(o), FG(y), FG(x), n));
    check("gelu_bwd", &o, n, 1e-5);
    /* dx aliasing dy */
    BOTH(CPU->ops->copy(CPU, FC(o), FC(y), n * 4), GPU->ops->copy(GPU, FG(o), FG(y), n * 4));
    BOTH(CPU->ops->gelu_bwd(CPU, FC(o), FC(o), FC(x), n), GPU->ops->gelu_bwd(GPU, FG(o), FG(o), FG(x), n));
    check("gelu_bwd (dx aliases dy)", &o, n, 1e-5);
    /* dydx aliasing x */
    BOTH(CPU->ops->copy(CPU, FC(o2), FC(x), n * 4), GPU->ops->copy(GPU, FG(o2), FG(x), n * 4));
    BOTH(CPU->ops->gelu_fwd_deriv(CPU, FC(o), FC(o2), FC(o2), n),
         GPU->ops->gelu_fwd_deriv(GPU, FG(o), FG(o2), FG(o2), n));
    check("gelu_fwd_deriv y", &o, n, 1e-5);
    check("gelu_fwd_deriv dydx (aliases x)", &o2, n, 1e-5);
    BOTH(CPU->ops->tanh_fwd(CPU, FC(o), FC(x), n), GPU->ops->tanh_fwd(GPU, FG(o), FG(x), n));
    check("tanh_fwd", &o, n, 1e-5);
    BOTH(CPU->ops->tanh_bwd(CPU, FC(o), FC(y), FC(t), n), GPU->ops->tanh_bwd(GPU, FG(o), FG(y), FG(t), n));
    check("tanh_bwd", &o, n, 1e-5);
    BOTH(CPU->ops->copy(CPU, FC(o), FC(y), n * 4), GPU->ops->copy(GPU, FG(o), FG(y), n * 4));
    BOTH(CPU->ops->mul(CPU, FC(o), FC(x), n), GPU->ops->mul(GPU, FG(o), FG(x), n));
    check("mul", &o, n, 1e-5);
    BOTH(CPU->ops->add(CPU, FC(o), FC(t), n), GPU->ops->add(GPU, FG(o), FG(t), n));
    check("add", &o, n, 1e-5);
    BOTH(CPU->ops->scale(CPU, FC(o), n, -0.37f), GPU->ops->scale(GPU, FG(o), n, -0.37f));
    check("scale", &o, n, 1e-5);
    BOTH(CPU->ops->zero(CPU, FC(o), n * 4), GPU->ops->zero(GPU, FG(o), n * 4));
    check_exact("zero", &o);
    pb_free(&x);
    pb_free(&y);
    pb_free(&t);
    pb_free(&o);
    pb_free(&o2);
    free(X);
    free(Y);
    free(T);
    no_gpu_error();
}

static void test_bias(void **state)
{
    (void)state;
    const int64_t shapes[][2] = {{333, 77}, {1, 5}, {2000, 768}};
    for (size_t si = 0; si < 3; si++) {
        const int64_t R = shapes[si][0], Cc = shapes[si][1];
        size_t n = (size_t)(R * Cc);
        float *Y = rand_floats(n, 31 + si, 1), *Bv = rand_floats((size_t)Cc, 32 + si, 1);
        pbuf y = pb_floats(Y, n), bias = pb_floats(Bv, (size_t)Cc), db = pb_floats(Bv, (size_t)Cc);
        CPU->ops->bias_add(CPU, FC(y), FC(bias), R, Cc);
        GPU->ops->bias_add(GPU, FG(y), FG(bias), R, Cc);
        check("bias_add", &y, n, 1e-5);
        CPU->ops->bias_grad_acc(CPU, FC(db), FC(y), R, Cc);
        GPU->ops->bias_grad_acc(GPU, FG(db), FG(y), R, Cc);
        check("bias_grad_acc (+= onto non-zero)", &db, (size_t)Cc, 1e-5);
        pb_free(&y);
        pb_free(&bias);
        pb_free(&db);
        free(Y);
        free(Bv);
    }
    no_gpu_error();
}

static void test_layernorm(void **state)
{
    (void)state;
    const int64_t shapes[][2] = {{200, 768}, {57, 37}, {3, 1}};
    for (size_t si = 0; si < 3; si++) {
        const int64_t R = shapes[si][0], Cc = shapes[si][1];
        size_t n = (size_t)(R * Cc);
        float *X = rand_floats(n, 41 + si, 2), *G = rand_floats((size_t)Cc, 42 + si, 1),
              *Bt = rand_floats((size_t)Cc, 43 + si, 1), *DY = rand_floats(n, 44 + si, 1);
        for (size_t i = 0; i < n; i++) X[i] += 0.5f; /* non-zero mean */
        pbuf x = pb_floats(X, n), g = pb_floats(G, (size_t)Cc), bt = pb_floats(Bt, (size_t)Cc), y = pb_floats(NULL, n),
             mu = pb_floats(NULL, (size_t)R), rs = pb_floats(NULL, (size_t)R), dy = pb_floats(DY, n),
             dx = pb_floats(NULL, n), dg = pb_floats(G, (size_t)Cc), dbt = pb_floats(Bt, (size_t)Cc);
        CPU->ops->layernorm_fwd(CPU, FC(y), FC(mu), FC(rs), FC(x), FC(g), FC(bt), R, Cc, 1e-12f);
        GPU->ops->layernorm_fwd(GPU, FG(y), FG(mu), FG(rs), FG(x), FG(g), FG(bt), R, Cc, 1e-12f);
        check("layernorm_fwd y", &y, n, 1e-5);
        check("layernorm_fwd mean", &mu, (size_t)R, 1e-5);
        check("layernorm_fwd rstd", &rs, (size_t)R, 1e-5);
        CPU->ops->layernorm_bwd(CPU, FC(dx), FC(dg), FC(dbt), FC(dy), FC(x), FC(mu), FC(rs), FC(g), R, Cc);
        GPU->ops->layernorm_bwd(GPU, FG(dx), FG(dg), FG(dbt), FG(dy), FG(x), FG(mu), FG(rs), FG(g), R, Cc);
        if (Cc > 1) check("layernorm_bwd dx", &dx, n, 1e-5); /* cols == 1: dx is rounding noise around 0 */
        check("layernorm_bwd dg (+=)", &dg, (size_t)Cc, 1e-5);
        check("layernorm_bwd dbeta (+=)", &dbt, (size_t)Cc, 1e-5);
        /* dx aliasing dy */
        CPU->ops->layernorm_bwd(CPU, FC(dy), FC(dg), FC(dbt), FC(dy), FC(x), FC(mu), FC(rs), FC(g), R, Cc);
        GPU->ops->layernorm_bwd(GPU, FG(dy), FG(dg), FG(dbt), FG(dy), FG(x), FG(mu), FG(rs), FG(g), R, Cc);
        if (Cc > 1) check("layernorm_bwd dx (aliases dy)", &dy, n, 1e-5);
        pbuf *all[] = {&x, &g, &bt, &y, &mu, &rs, &dy, &dx, &dg, &dbt};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) pb_free(all[i]);
        free(X);
        free(G);
        free(Bt);
        free(DY);
    }
    no_gpu_error();
}

static void test_embeddings(void **state)
{
    (void)state;
    const int64_t T = 300, H = 64, V = 50, Pn = 40, Tn = 2;
    const int32_t pad = 3;
    trng r = {51};
    int32_t ids[300], pos[300], types[300];
    for (int64_t t = 0; t < T; t++) {
        ids[t] = (int32_t)(trng_next(&r) % (uint64_t)V); /* includes pad rows */
        pos[t] = (int32_t)(trng_next(&r) % (uint64_t)Pn);
        types[t] = (int32_t)(trng_next(&r) % (uint64_t)Tn);
    }
    float *W = rand_floats((size_t)(V * H), 52, 1), *P = rand_floats((size_t)(Pn * H), 53, 1),
          *Tt = rand_floats((size_t)(Tn * H), 54, 1), *D = rand_floats((size_t)(T * H), 55, 1);
    pbuf di = pb_bytes(ids, sizeof ids), dp = pb_bytes(pos, sizeof pos), dt = pb_bytes(types, sizeof types);
    pbuf w = pb_floats(W, (size_t)(V * H)), p = pb_floats(P, (size_t)(Pn * H)), tt = pb_floats(Tt, (size_t)(Tn * H)),
         out = pb_floats(NULL, (size_t)(T * H)), d = pb_floats(D, (size_t)(T * H));
    CPU->ops->embed_fwd(CPU, FC(out), di.c, dp.c, dt.c, FC(w), FC(p), FC(tt), T, H);
    GPU->ops->embed_fwd(GPU, FG(out), di.g, dp.g, dt.g, FG(w), FG(p), FG(tt), T, H);
    check("embed_fwd", &out, (size_t)(T * H), 1e-6);
    CPU->ops->embed_bwd_acc(CPU, FC(w), FC(p), FC(tt), FC(d), di.c, dp.c, dt.c, pad, T, H);
    GPU->ops->embed_bwd_acc(GPU, FG(w), FG(p), FG(tt), FG(d), di.g, dp.g, dt.g, pad, T, H);
    /* same order of additions as the CPU: bitwise equal */
    check_exact("embed_bwd_acc dW (pad row skipped)", &w);
    check_exact("embed_bwd_acc dP", &p);
    check_exact("embed_bwd_acc dT", &tt);
    pbuf *all[] = {&di, &dp, &dt, &w, &p, &tt, &out, &d};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) pb_free(all[i]);
    free(W);
    free(P);
    free(Tt);
    free(D);
    no_gpu_error();
}

static void test_dropout(void **state)
{
    (void)state;
    const int64_t R = 123, Cc = 771; /* columns not a multiple of 4 */
    size_t n = (size_t)(R * Cc);
    trng r = {61};
    uint32_t sample[123];
    int32_t pos[123];
    for (int64_t i = 0; i < R; i++) {
        sample[i] = (uint32_t)trng_next(&r);
        pos[i] = (int32_t)(trng_next(&r) % 512);
    }
    float *X = rand_floats(n, 62, 1);
    pbuf x = pb_floats(X, n), ds = pb_bytes(sample, sizeof sample), dp = pb_bytes(pos, sizeof pos);
    const float ps[] = {0.1f, 0.5f, 0.0f};
    for (int k = 0; k < 3; k++) {
        nn_dropout_desc dc = {ps[k], nn_rng_key_make(42, (uint32_t)k), 7u + (uint32_t)k, ds.c, dp.c};
        nn_dropout_desc dg = dc;
        dg.row_sample = ds.g;
        dg.row_pos = dp.g;
        CPU->ops->dropout(CPU, FC(x), R, Cc, &dc);
        GPU->ops->dropout(GPU, FG(x), R, Cc, &dg);
        char what[64];
        snprintf(what, sizeof what, "dropout p=%.1f", (double)ps[k]);
        check_exact(what, &x);
    }
    pb_free(&x);
    pb_free(&ds);
    pb_free(&dp);
    free(X);
    no_gpu_error();
}

static void test_rows(void **state)
{
    (void)state;
    const int64_t n = 40, rows = 25, Cc = 300;
    int32_t idx[40];
    trng r = {71};
    for (int64_t i = 0; i < n; i++) idx[i] = (int32_t)(trng_next(&r) % (uint64_t)rows); /* repeats */
    float *In = rand_floats((size_t)(rows * Cc), 72, 1), *Small = rand_floats((size_t)(n * Cc), 73, 1);
    pbuf di = pb_bytes(idx, sizeof idx), in = pb_floats(In, (size_t)(rows * Cc)), out = pb_floats(NULL, (size_t)(n * Cc)),
         sm = pb_floats(Small, (size_t)(n * Cc));
    CPU->ops->gather_rows(CPU, FC(out), FC(in), di.c, n, Cc);
    GPU->ops->gather_rows(GPU, FG(out), FG(in), di.g, n, Cc);
    check_exact("gather_rows", &out);
    CPU->ops->scatter_rows_acc(CPU, FC(in), FC(sm), di.c, n, Cc);
    GPU->ops->scatter_rows_acc(GPU, FG(in), FG(sm), di.g, n, Cc);
    check_exact("scatter_rows_acc (repeated rows)", &in);
    pb_free(&di);
    pb_free(&in);
    pb_free(&out);
    pb_free(&sm);
    free(In);
    free(Small);
    no_gpu_error();
}

/* ------------------------------------------------------------- attention */

/* max over rows of ||gpu_row - cpu_row|| / ||cpu_row||: a single flipped dropout
 * decision in a row shows up here even when the norm over everything hides it */
static double row_err(const double *g, const double *c, int64_t rows, int64_t cols)
{
    double worst = 0;
    for (int64_t r = 0; r < rows; r++) {
        double e = rel_err(g + r * cols, c + r * cols, (size_t)cols);
        if (e > worst) worst = e;
    }
    return worst;
}

static void attention_case(const int32_t *lens, int nseq, int64_t heads, int64_t dh, float p)
{
    int32_t off[17];
    int64_t poff[16], tot = 0, maxlen = 0;
    uint32_t sample[16];
    off[0] = 0;
    for (int s = 0; s < nseq; s++) {
        off[s + 1] = off[s] + lens[s];
        poff[s] = tot;
        tot += heads * (int64_t)lens[s] * lens[s];
        if (lens[s] > maxlen) maxlen = lens[s];
        sample[s] = 1000u + 37u * (uint32_t)s;
    }
    const int64_t T = off[nseq], H = heads * dh;
    size_t nq = (size_t)(T * 3 * H), nc = (size_t)(T * H);
    float *QKV = rand_floats(nq, 81 + (uint64_t)nseq, 1.5), *DC = rand_floats(nc, 82, 1);
    pbuf qkv = pb_floats(QKV, nq), probs = pb_floats(NULL, (size_t)tot), ctx = pb_floats(NULL, nc),
         dctx = pb_floats(DC, nc), dqkv = pb_floats(NULL, nq), o = pb_bytes(off, (size_t)(nseq + 1) * 4),
         po = pb_bytes(poff, (size_t)nseq * 8), sm = pb_bytes(sample, (size_t)nseq * 4);
    nn_attn_desc dc;
    memset(&dc, 0, sizeof dc);
    dc.nseq = nseq;
    dc.heads = heads;
    dc.head_dim = dh;
    dc.max_len = maxlen;
    dc.scale = (float)(1.0 / sqrt((double)dh));
    dc.p = p;
    dc.key = nn_rng_key_make(42, 3);
    dc.site = 5;
    dc.elem_stride = 512;
    nn_attn_desc dg = dc;
    dc.offsets = o.c;
    dc.prob_off = po.c;
    dc.seq_sample = sm.c;
    dg.offsets = o.g;
    dg.prob_off = po.g;
    dg.seq_sample = sm.g;
    CPU->ops->attention_fwd(CPU, &dc, FC(qkv), FC(probs), FC(ctx));
    GPU->ops->attention_fwd(GPU, &dg, FG(qkv), FG(probs), FG(ctx));
    CPU->ops->attention_bwd(CPU, &dc, FC(qkv), FC(probs), FC(dctx), FC(dqkv));
    GPU->ops->attention_bwd(GPU, &dg, FG(qkv), FG(probs), FG(dctx), FG(dqkv));
    char what[96];
    snprintf(what, sizeof what, "attention p=%.2f max_len %lld: probs", (double)p, (long long)maxlen);
    check(what, &probs, (size_t)tot, 1e-5);
    check("  ctx", &ctx, nc, 1e-5);
    check("  dqkv", &dqkv, nq, 1e-5);
    double *c, *g;
    get_both(&ctx, nc, &c, &g);
    double re = row_err(g, c, T, H);
    printf("  %-34s worst row rel err %.3g\n", "  ctx per row", re);
    assert_true(re <= 1e-4);
    free(c);
    free(g);
    get_both(&dqkv, nq, &c, &g);
    re = row_err(g, c, T, 3 * H);
    printf("  %-34s worst row rel err %.3g\n", "  dqkv per row", re);
    assert_true(re <= 1e-4);
    free(c);
    free(g);
    /* the same call twice on the GPU: bitwise equal */
    float *c1 = malloc(nq * 4), *c2 = malloc(nq * 4);
    GPU->ops->download(GPU, c1, dqkv.g, nq * 4);
    GPU->ops->attention_fwd(GPU, &dg, FG(qkv), FG(probs), FG(ctx));
    GPU->ops->attention_bwd(GPU, &dg, FG(qkv), FG(probs), FG(dctx), FG(dqkv));
    GPU->ops->download(GPU, c2, dqkv.g, nq * 4);
    assert_memory_equal(c1, c2, nq * 4);
    free(c1);
    free(c2);
    pbuf *all[] = {&qkv, &probs, &ctx, &dctx, &dqkv, &o, &po, &sm};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) pb_free(all[i]);
    free(QKV);
    free(DC);
    no_gpu_error();
}

static void test_attention(void **state)
{
    (void)state;
    const int32_t ragged[] = {1, 7, 32, 92, 130, 512}, shorts[] = {5, 64, 128, 17};
    attention_case(ragged, 6, 2, 64, 0.0f);
    attention_case(ragged, 6, 2, 64, 0.1f);
    attention_case(shorts, 4, 3, 32, 0.1f);
    attention_case(shorts, 4, 12, 64, 0.1f); /* base's heads and head_dim */
}

/* ------------------------------------------------------------- loss, optimizer */

static void test_xent(void **state)
{
    (void)state;
    const int64_t n = 37, c = 3;
    int32_t lab[37];
    for (int64_t i = 0; i < n; i++) lab[i] = (int32_t)((i * 7) % c);
    const float w[3] = {0.5f, 2.0f, 1.25f};
    float *Z = rand_floats((size_t)(n * c), 91, 4);
    pbuf z = pb_floats(Z, (size_t)(n * c)), l = pb_bytes(lab, sizeof lab), cw = pb_floats(w, 3), loss = pb_floats(NULL, 1),
         dz = pb_floats(NULL, (size_t)(n * c));
    for (int weighted = 0; weighted < 2; weighted++) {
        CPU->ops->xent(CPU, FC(z), l.c, weighted ? FC(cw) : NULL, n, c, 1.0f / 40.0f, FC(loss), FC(dz));
        GPU->ops->xent(GPU, FG(z), l.g, weighted ? FG(cw) : NULL, n, c, 1.0f / 40.0f, FG(loss), FG(dz));
        check(weighted ? "xent loss (class weights)" : "xent loss", &loss, 1, 1e-6);
        check(weighted ? "xent dlogits (class weights)" : "xent dlogits", &dz, (size_t)(n * c), 1e-6);
    }
    pb_free(&z);
    pb_free(&l);
    pb_free(&cw);
    pb_free(&loss);
    pb_free(&dz);
    free(Z);
    no_gpu_error();
}

static void test_sumsq_adamw(void **state)
{
    (void)state;
    const size_t n = 1000003;
    float *X = rand_floats(n, 101, 1);
    pbuf x = pb_floats(X, n);
    double sc = CPU->ops->sumsq(CPU, FC(x), (int64_t)n), sg = GPU->ops->sumsq(GPU, FG(x), (int64_t)n),
           sg2 = GPU->ops->sumsq(GPU, FG(x), (int64_t)n);
    printf("  sumsq: cpu %.17g gpu %.17g (rel %.3g)\n", sc, sg, fabs(sg - sc) / sc);
    assert_true(fabs(sg - sc) <= 1e-12 * sc);
    assert_true(memcmp(&sg, &sg2, sizeof sg) == 0);
    assert_true(GPU->ops->sumsq(GPU, FG(x), 0) == 0.0);
    pb_free(&x);
    free(X);

    const size_t m = 10007;
    float *P = rand_floats(m, 102, 1), *G = rand_floats(m, 103, 0.1);
    pbuf p = pb_floats(P, m), g = pb_floats(G, m), mm = pb_floats(NULL, m), vv = pb_floats(NULL, m);
    for (int t = 1; t <= 3; t++) {
        nn_adamw_args a;
        a.lr = 2e-3f;
        a.beta1 = 0.9f;
        a.beta2 = 0.999f;
        a.eps = 1e-8f;
        a.weight_decay = 0.01f;
        a.one_minus_beta1 = (float)(1.0 - 0.9);
        a.one_minus_beta2 = (float)(1.0 - 0.999);
        a.step_size = (float)(2e-3 / (1.0 - pow(0.9, t)));
        a.bc2_sqrt = (float)sqrt(1.0 - pow(0.999, t));
        a.grad_scale = t == 2 ? 0.5f : 1.0f;
        CPU->ops->adamw(CPU, FC(p), FC(g), FC(mm), FC(vv), (int64_t)m, &a);
        GPU->ops->adamw(GPU, FG(p), FG(g), FG(mm), FG(vv), (int64_t)m, &a);
    }
    check("adamw p (3 steps)", &p, m, 1e-6);
    check("adamw m", &mm, m, 1e-6);
    check("adamw v", &vv, m, 1e-6);
    pb_free(&p);
    pb_free(&g);
    pb_free(&mm);
    pb_free(&vv);
    free(P);
    free(G);
    no_gpu_error();
}

/* ------------------------------------------------------------- whole model */

static nn_config base_cfg(void)
{
    nn_config c = test_tiny_cfg();
    c.vocab_size = 30522;
    c.hidden_size = 768;
    c.num_hidden_layers = 12;
    c.num_attention_heads = 12;
    c.intermediate_size = 3072;
    c.max_position_embeddings = 512;
    c.num_labels = 2;
    c.hidden_dropout_prob = 0.1;
    c.attention_probs_dropout_prob = 0.1;
    return c;
}

typedef struct {
    int64_t B;
    int32_t *ids, *types, off[17], labels[16];
    uint32_t sid[16];
    float cw[4];
} mbatch;

static void make_batch(mbatch *b, const nn_config *c, const int *lens, int64_t B, uint64_t seed)
{
    trng r = {seed};
    b->B = B;
    b->off[0] = 0;
    for (int64_t s = 0; s < B; s++) b->off[s + 1] = b->off[s] + lens[s];
    b->ids = malloc((size_t)b->off[B] * sizeof *b->ids);
    b->types = malloc((size_t)b->off[B] * sizeof *b->types);
    for (int64_t s = 0; s < B; s++) {
        for (int32_t t = b->off[s]; t < b->off[s + 1]; t++) {
            /* a few pad tokens too: they get no word-embedding gradient */
            b->ids[t] = (t % 11 == 5) ? (int32_t)c->pad_token_id
                                      : (int32_t)(1 + trng_next(&r) % (uint64_t)(c->vocab_size - 1));
            b->types[t] = (int32_t)(trng_next(&r) % 2);
        }
        b->labels[s] = (int32_t)(trng_next(&r) % (uint64_t)c->num_labels);
        b->sid[s] = (uint32_t)(5000 + 13 * s);
    }
    for (int k = 0; k < 4; k++) b->cw[k] = 0.5f + 0.25f * (float)k;
}

static nn_batch as_nn(const mbatch *b, uint32_t epoch)
{
    nn_batch nb;
    memset(&nb, 0, sizeof nb);
    nb.nseq = b->B;
    nb.ids = b->ids;
    nb.offsets = b->off;
    nb.token_types = b->types;
    nb.labels = b->labels;
    nb.sample_ids = b->sid;
    nb.class_weights = b->cw;
    nb.loss_denominator = 0;
    for (int64_t s = 0; s < b->B; s++) nb.loss_denominator += b->cw[b->labels[s]];
    nb.train = 1;
    nb.seed = 42;
    nb.epoch = epoch;
    return nb;
}

static nn_model *new_model(nn_backend *be, const nn_config *c, const mbatch *b, int maxlen, const float *params)
{
    char err[NN_ERRLEN];
    nn_model *m = NULL;
    if (nn_model_create(&m, c, be, b->off[b->B], b->B, maxlen, err)) {
        fprintf(stderr, "%s\n", err);
        return NULL;
    }
    int rc = params ? nn_model_set_params(m, params, nn_model_num_params(m), err) : nn_model_init_weights(m, 7, err);
    if (rc) {
        fprintf(stderr, "%s\n", err);
        nn_model_free(m);
        return NULL;
    }
    return m;
}

/* loss and every gradient tensor, CPU vs GPU, fp32 */
static void model_grads_case(const char *name, const nn_config *c, const int *lens, int64_t B)
{
    char err[NN_ERRLEN];
    mbatch b;
    int maxlen = 0;
    for (int64_t s = 0; s < B; s++)
        if (lens[s] > maxlen) maxlen = lens[s];
    make_batch(&b, c, lens, B, 123);
    nn_model *mc = new_model(CPU, c, &b, maxlen, NULL);
    assert_non_null(mc);
    size_t n = nn_model_num_params(mc);
    float *params = malloc(n * sizeof *params), *gc = malloc(n * sizeof *gc), *gg = malloc(n * sizeof *gg);
    assert_int_equal(nn_model_get_params(mc, params, n, err), 0);
    nn_model *mg = new_model(GPU, c, &b, maxlen, params);
    assert_non_null(mg);
    nn_batch nb = as_nn(&b, 3);
    float lc = 0, lg = 0, zc[16 * 4], zg[16 * 4];
    nn_model_zero_grad(mc);
    nn_model_zero_grad(mg);
    assert_int_equal(nn_model_forward(mc, &nb, &lc, zc, err), 0);
    assert_int_equal(nn_model_forward(mg, &nb, &lg, zg, err), 0);
    assert_int_equal(nn_model_backward(mc, err), 0);
    assert_int_equal(nn_model_backward(mg, err), 0);
    assert_int_equal(nn_model_get_grads(mc, gc, n, err), 0);
    assert_int_equal(nn_model_get_grads(mg, gg, n, err), 0);
    no_gpu_error();
    printf("  %s: loss cpu %.9g gpu %.9g (rel %.3g)\n", name, (double)lc, (double)lg,
           fabs((double)lg - lc) / fabs((double)lc));
    assert_true(fabs((double)lg - lc) <= 1e-5 * fabs((double)lc));
    double lz = 0, lzd = 0;
    for (int64_t i = 0; i < B * c->num_labels; i++) {
        lz += (double)zc[i] * zc[i];
        lzd += ((double)zg[i] - zc[i]) * ((double)zg[i] - zc[i]);
    }
    printf("  %s: logits rel err %.3g\n", name, sqrt(lzd / lz));
    assert_true(sqrt(lzd / lz) <= 1e-5);
    size_t np = 0;
    const nn_param *ps = nn_model_params(mc, &np);
    double worst = 0;
    const char *worst_name = "";
    int bad = 0;
    for (size_t i = 0; i < np; i++) {
        double num = 0, den = 0;
        for (size_t j = ps[i].offset; j < ps[i].offset + ps[i].numel; j++) {
            double d = (double)gg[j] - gc[j];
            num += d * d;
            den += (double)gc[j] * gc[j];
            if (!isfinite(gg[j])) num = INFINITY;
        }
        /* The key bias's gradient is exactly zero in exact arithmetic (softmax
         * ignores a shift of a whole score row, and q . b_k is one): both sides hold
         * rounding noise (~1e-7 of the query bias's gradient), so it is measured
         * against the query bias's gradient of the same layer. */
        size_t len = strlen(ps[i].name);
        if (len > 23 && strcmp(ps[i].name + len - 23, "attention.self.key.bias") == 0) {
            char qn[96];
            snprintf(qn, sizeof qn, "%.*squery.bias", (int)(len - 8), ps[i].name);
            const nn_param *q = nn_model_find_param(mc, qn);
            assert_non_null(q);
            double qd = 0;
            for (size_t j = q->offset; j < q->offset + q->numel; j++) qd += (double)gc[j] * gc[j];
            if (qd > den) den = qd;
        }
        double e = den > 0 ? sqrt(num / den) : sqrt(num);
        if (!(e <= 1e-4)) {
            printf("  %s: gradient %s rel err %.3g > 1e-4\n", name, ps[i].name, e);
            bad = 1;
        }
        if (e > worst || isnan(e)) {
            worst = e;
            worst_name = ps[i].name;
        }
    }
    printf("  %s: %zu gradient tensors, worst rel err %.3g (%s)\n", name, np, worst, worst_name);
    assert_false(bad);
    nn_model_free(mc);
    nn_model_free(mg);
    free(params);
    free(gc);
    free(gg);
    free(b.ids);
    free(b.types);
}

static void test_model_tiny(void **state)
{
    (void)state;
    const int lens[] = {3, 17, 40, 1, 25};
    nn_config c = test_tiny_cfg();
    model_grads_case("tiny", &c, lens, 5);
}

static void test_model_base(void **state)
{
    (void)state;
    const int lens[] = {3, 29, 140, 64};
    nn_config c = base_cfg();
    model_grads_case("base-shaped", &c, lens, 4);
}

/* 20 AdamW steps on the GPU; losses and final weights into the arrays */
static void train_gpu(const nn_config *c, const mbatch *b, int maxlen, const float *params, float *losses,
                      float *final)
{
    char err[NN_ERRLEN];
    nn_model *m = new_model(GPU, c, b, maxlen, params);
    assert_non_null(m);
    nn_adamw_config oc;
    nn_adamw_config_default(&oc);
    oc.lr = 1e-3;
    oc.warmup_steps = 3;
    oc.total_steps = 20;
    nn_adamw *o = NULL;
    assert_int_equal(nn_adamw_create(&o, m, &oc, err), 0);
    for (int step = 0; step < 20; step++) {
        nn_batch nb = as_nn(b, (uint32_t)step);
        nn_model_zero_grad(m);
        if (nn_model_forward(m, &nb, &losses[step], NULL, err) || nn_model_backward(m, err) ||
            nn_adamw_step(o, NULL, NULL, err)) {
            fprintf(stderr, "step %d: %s\n", step, err);
            fail();
        }
    }
    assert_int_equal(nn_model_get_params(m, final, nn_model_num_params(m), err), 0);
    no_gpu_error();
    nn_adamw_free(o);
    nn_model_free(m);
}

static void determinism_case(const char *name, const nn_config *c, const int *lens, int64_t B)
{
    char err[NN_ERRLEN];
    mbatch b;
    int maxlen = 0;
    for (int64_t s = 0; s < B; s++)
        if (lens[s] > maxlen) maxlen = lens[s];
    make_batch(&b, c, lens, B, 321);
    /* initial weights once (host init of a base model takes seconds) */
    nn_model *m0 = new_model(GPU, c, &b, maxlen, NULL);
    assert_non_null(m0);
    size_t n = nn_model_num_params(m0);
    float *params = malloc(n * sizeof *params), *f1 = malloc(n * sizeof *f1), *f2 = malloc(n * sizeof *f2);
    assert_int_equal(nn_model_get_params(m0, params, n, err), 0);
    nn_model_free(m0);
    float l1[20], l2[20];
    train_gpu(c, &b, maxlen, params, l1, f1);
    train_gpu(c, &b, maxlen, params, l2, f2);
    printf("  %s: 20 AdamW steps twice, loss %.7g -> %.7g; run 2 %s\n", name, (double)l1[0], (double)l1[19],
           memcmp(l1, l2, sizeof l1) == 0 && memcmp(f1, f2, n * sizeof *f1) == 0 ? "bit-identical" : "DIFFERS");
    assert_memory_equal(l1, l2, sizeof l1);
    assert_memory_equal(f1, f2, n * sizeof *f1);
    free(params);
    free(f1);
    free(f2);
    free(b.ids);
    free(b.types);
}

static void test_determinism(void **state)
{
    (void)state;
    const int lt[] = {3, 17, 40, 1, 25}, lb[] = {12, 33, 150, 64, 7};
    nn_config c = test_tiny_cfg();
    determinism_case("tiny", &c, lt, 5);
    c = base_cfg();
    determinism_case("base-shaped", &c, lb, 5);
}

/* errors are sticky, named, and turn downloads into NaN (a separate backend) */
static void test_errors(void **state)
{
    (void)state;
    char err[256];
    nn_backend *be = NULL;
    assert_int_equal(nn_backend_cuda_create(&be, 0, NN_PREC_FP32, err, sizeof err), 0);
    float *a = be->ops->alloc(be, 64 * 4);
    assert_non_null(a);
    assert_null(nn_cuda_last_error(be));
    /* lda < k: cuBLAS refuses */
    be->ops->gemm(be, 0, 0, 4, 4, 8, 1.0f, a, 2, a, 4, 0.0f, a, 4);
    const char *e = nn_cuda_last_error(be);
    printf("  provoked: %s\n", e ? e : "(none)");
    assert_non_null(e);
    assert_non_null(strstr(e, "cublasGemmEx"));
    float h = 0;
    be->ops->download(be, &h, a, sizeof h);
    assert_true(isnan(h));
    assert_true(isnan(be->ops->sumsq(be, a, 4)));
    be->ops->free(be, a);
    nn_backend_destroy(be);

    assert_non_null(nn_precision_name(NN_PREC_BF16));
    nn_precision p;
    assert_int_equal(nn_precision_parse("bf16", &p), 0);
    assert_int_equal(p, NN_PREC_BF16);
    assert_int_not_equal(nn_precision_parse("fp8", &p), 0);
    assert_int_not_equal(nn_backend_cuda_create(&be, 999, NN_PREC_FP32, err, sizeof err), 0);
    printf("  device 999: %s\n", err);
    printf("  peak device bytes of the shared backend so far: %zu\n", nn_cuda_peak_bytes(GPU));
    assert_true(nn_cuda_peak_bytes(GPU) > 0);
}

int main(void)
{
    char summary[256];
    if (nn_cuda_device_summary(summary, sizeof summary) <= 0) {
        printf("SKIPPED: no CUDA device (%s)\n", summary);
        return 77;
    }
    printf("CUDA: %s\n", summary);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm),       cmocka_unit_test(test_gemm_precisions), cmocka_unit_test(test_pointwise),
        cmocka_unit_test(test_bias),       cmocka_unit_test(test_layernorm),       cmocka_unit_test(test_embeddings),
        cmocka_unit_test(test_dropout),    cmocka_unit_test(test_rows),            cmocka_unit_test(test_attention),
        cmocka_unit_test(test_xent),       cmocka_unit_test(test_sumsq_adamw),     cmocka_unit_test(test_model_tiny),
        cmocka_unit_test(test_model_base), cmocka_unit_test(test_determinism),     cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
