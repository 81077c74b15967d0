/* Per-op checks of the CPU backend, through the nn_backend_ops table only (it is
 * the reference the CUDA backend is held to: tests/test_nn_cuda.c compares the
 * CUDA ops with the CPU ones on the same inputs; this program runs on the CPU).
 *
 * Scheme, for every op with a backward:
 *  1. a plain double-precision reference of the op (forward and analytic
 *     backward, written here independently of the backend) is checked against
 *     central finite differences of its own forward, in double: J(x) = w . f(x)
 *     for a random cotangent w, dJ/dx_i ~ (J(x + h e_i) - J(x - h e_i)) / 2h,
 *     h = 1e-5, all coordinates; the error is O(h^2) ~ 1e-10, so a tolerance of
 *     1e-7 (relative to the gradient's max) separates right from wrong;
 *  2. the backend's fp32 forward and backward are compared with that double
 *     reference on the same inputs (relative error by norm <= 1e-5 .. 1e-4).
 * Negative controls: deliberately wrong backwards (a LayerNorm without its mean
 * term, an attention backward that ignores the dropout mask, a GELU using the
 * tanh approximation) must FAIL step 1, so the checker has teeth. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "nn/backend.h"
#include "nn/nn.h"
#include "gemm_precision.h"
#include "nn_test_util.h"

NN_TEST_BACKEND_FIXTURE

/* ------------------------------------------------------------- FD harness */

typedef void (*fwd_fn)(const double *x, double *y, void *ctx);
typedef void (*bwd_fn)(const double *x, const double *dy, double *dx, void *ctx);

/* max |analytic - fd| / max(1e-3, max |fd|) over all n inputs */
static double fd_error(fwd_fn f, bwd_fn b, void *ctx, const double *x0, size_t n, size_t m, uint64_t seed)
{
    trng r = {seed};
    double *x = malloc(n * sizeof *x), *y = malloc(m * sizeof *y), *w = malloc(m * sizeof *w);
    double *g = calloc(n, sizeof *g), *fd = malloc(n * sizeof *fd);
    memcpy(x, x0, n * sizeof *x);
    trng_fill(&r, w, m, 1.0);
    b(x, w, g, ctx);
    const double h = 1e-5;
    double gmax = 1e-3, emax = 0;
    for (size_t i = 0; i < n; i++) {
        double xi = x[i], jp = 0, jm = 0;
        x[i] = xi + h;
        f(x, y, ctx);
        for (size_t k = 0; k < m; k++) jp += w[k] * y[k];
        x[i] = xi - h;
        f(x, y, ctx);
        for (size_t k = 0; k < m; k++) jm += w[k] * y[k];
        x[i] = xi;
        fd[i] = (jp - jm) / (2 * h);
        if (fabs(fd[i]) > gmax) gmax = fabs(fd[i]);
    }
    for (size_t i = 0; i < n; i++)
        if (fabs(fd[i] - g[i]) > emax) emax = fabs(fd[i] - g[i]);
    free(x);
    free(y);
    free(w);
    free(g);
    free(fd);
    return emax / gmax;
}

#define FD_TOL 1e-7

/* ------------------------------------------------------------- GEMM, linear */

static void test_gemm(void **state)
{
    (void)state;
    trng r = {1};
    const int64_t M = 13, N = 7, K = 19, pad = 3;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            int64_t ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
            int64_t lda = ac + pad, ldb = bc + pad, ldc = N + pad;
            double *A = malloc(ar * lda * sizeof *A), *B = malloc(br * ldb * sizeof *B);
            double *C = malloc(M * ldc * sizeof *C), *ref = malloc(M * ldc * sizeof *ref);
            trng_fill(&r, A, ar * lda, 1);
            trng_fill(&r, B, br * ldb, 1);
            trng_fill(&r, C, M * ldc, 1);
            memcpy(ref, C, M * ldc * sizeof *C);
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < N; j++) {
                    double s = 0;
                    for (int64_t k = 0; k < K; k++)
                        s += (ta ? A[k * lda + i] : A[i * lda + k]) * (tb ? B[j * ldb + k] : B[k * ldb + j]);
                    ref[i * ldc + j] = 0.7 * s + 0.3 * C[i * ldc + j];
                }
            float *dA = dev_from(BE, A, ar * lda), *dB = dev_from(BE, B, br * ldb), *dC = dev_from(BE, C, M * ldc);
            BE->ops->gemm(BE, ta, tb, M, N, K, 0.7f, dA, lda, dB, ldb, 0.3f, dC, ldc);
            double *got = host_of(BE, dC, M * ldc);
            assert_true(rel_err(got, ref, M * ldc) < 1e-6);
            /* padding columns untouched */
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = N; j < ldc; j++) assert_true(fabs(got[i * ldc + j] - C[i * ldc + j]) < 1e-6);
            BE->ops->free(BE, dA);
            BE->ops->free(BE, dB);
            BE->ops->free(BE, dC);
            free(A);
            free(B);
            free(C);
            free(ref);
            free(got);
        }
}

/* C = A B (row-major [m,k] x [k,n]) on the backend under test, as host floats */
static float *gemm_floats(const float *A, const float *B, int64_t m, int64_t n, int64_t k)
{
    float *a = dev_bytes(BE, A, (size_t)(m * k) * sizeof *A), *b = dev_bytes(BE, B, (size_t)(k * n) * sizeof *B);
    float *c = BE->ops->alloc(BE, (size_t)(m * n) * sizeof *c), *h = malloc((size_t)(m * n) * sizeof *h);
    BE->ops->gemm(BE, 0, 0, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
    BE->ops->download(BE, h, c, (size_t)(m * n) * sizeof *h);
    BE->ops->sync(BE);
    BE->ops->free(BE, a);
    BE->ops->free(BE, b);
    BE->ops->free(BE, c);
    return h;
}

static prec_verdict classify_print(const char *what, const float *C, const double *ref32, const double *ref_low,
                                   const char *low)
{
    prec_class k = prec_classify(C, ref32, ref_low, (size_t)(PREC_M * PREC_N), PREC_FACTOR);
    printf("  %-32s rel dist to fp32-input ref %.3g, to %s-input ref %.3g: %s\n", what, k.to_fp32, low,
           k.to_rounded, prec_verdict_name(k.verdict, low));
    return k.verdict;
}

/* The precision classifier that test_nn_cuda.c applies to cuBLAS (tests/gemm_precision.h)
 * tells the cases apart on the CPU: the fp32 GEMM is classified fp32; the same
 * GEMM on inputs rounded to bf16 (fp16), which is what a tensor core computes
 * (exact products, fp32 accumulation), is classified bf16 (fp16); and inputs
 * truncated to bf16 instead of rounded (the negative control) are neither. */
static void test_gemm_precision_classifier(void **state)
{
    (void)state;
    const int64_t M = PREC_M, N = PREC_N, K = PREC_K;
    float *A = prec_inputs((size_t)(M * K), 11), *B = prec_inputs((size_t)(K * N), 12);
    double *ref32 = prec_ref_gemm(A, B, M, N, K, NULL);
    float *c32 = gemm_floats(A, B, M, N, K);
    const struct {
        const char *name;
        float (*round)(float);
    } lows[] = {{"bf16", prec_round_bf16}, {"fp16", prec_round_fp16}};
    for (size_t i = 0; i < sizeof lows / sizeof lows[0]; i++) {
        double *ref_low = prec_ref_gemm(A, B, M, N, K, lows[i].round);
        assert_int_equal(classify_print("fp32 gemm", c32, ref32, ref_low, lows[i].name), PREC_IS_FP32);
        float *Ar = prec_rounded(A, (size_t)(M * K), lows[i].round);
        float *Br = prec_rounded(B, (size_t)(K * N), lows[i].round);
        float *cl = gemm_floats(Ar, Br, M, N, K);
        char what[64];
        snprintf(what, sizeof what, "gemm of %s-rounded inputs", lows[i].name);
        assert_int_equal(classify_print(what, cl, ref32, ref_low, lows[i].name), PREC_IS_ROUNDED);
        if (lows[i].round == prec_round_bf16) {
            float *At = prec_rounded(A, (size_t)(M * K), prec_trunc_bf16),
                  *Bt = prec_rounded(B, (size_t)(K * N), prec_trunc_bf16);
            float *ct = gemm_floats(At, Bt, M, N, K);
            assert_int_equal(classify_print("gemm of bf16-truncated inputs", ct, ref32, ref_low, "bf16"),
                             PREC_NEITHER);
            free(At);
            free(Bt);
            free(ct);
        }
        free(Ar);
        free(Br);
        free(cl);
        free(ref_low);
    }
    /* the rounding helpers themselves */
    assert_true(prec_round_bf16(1.0f + 0x1p-8f) == 1.0f);                 /* tie: to even */
    assert_true(prec_round_bf16(1.0f + 0x1p-8f + 0x1p-20f) == 1.0f + 0x1p-7f);
    assert_true(prec_round_fp16(1.0f + 0x1p-11f) == 1.0f);                /* tie: to even */
    assert_true(prec_round_fp16(1.0f + 3 * 0x1p-11f) == 1.0f + 0x1p-9f); /* tie: to even (up) */
    assert_true(prec_round_fp16(0x1p-20f + 0x1p-26f) == 0x1p-20f);       /* subnormal quantum 2^-24 */
    free(A);
    free(B);
    free(ref32);
    free(c32);
}

/* linear y = x W^T + b; x [T,in], W [out,in], b [out]; packed input vector x|W|b */
typedef struct {
    int64_t T, in, out;
} lin_ctx;

static void lin_fwd(const double *v, double *y, void *c)
{
    const lin_ctx *k = c;
    const double *x = v, *W = v + k->T * k->in, *b = W + k->out * k->in;
    for (int64_t t = 0; t < k->T; t++)
        for (int64_t o = 0; o < k->out; o++) {
            double s = b[o];
            for (int64_t i = 0; i < k->in; i++) s += x[t * k->in + i] * W[o * k->in + i];
            y[t * k->out + o] = s;
        }
}

static void lin_bwd(const double *v, const double *dy, double *dv, void *c)
{
    const lin_ctx *k = c;
    const double *x = v, *W = v + k->T * k->in;
    double *dx = dv, *dW = dv + k->T * k->in, *db = dW + k->out * k->in;
    for (int64_t t = 0; t < k->T; t++)
        for (int64_t o = 0; o < k->out; o++) {
            double g = dy[t * k->out + o];
            db[o] += g;
            for (int64_t i = 0; i < k->in; i++) {
                dx[t * k->in + i] += g * W[o * k->in + i];
                dW[o * k->in + i] += g * x[t * k->in + i];
            }
        }
}

static void test_linear(void **state)
{
    (void)state;
    lin_ctx k = {5, 6, 4};
    size_t n = k.T * k.in + k.out * k.in + k.out, m = k.T * k.out;
    double *v = malloc(n * sizeof *v);
    trng r = {2};
    trng_fill(&r, v, n, 1);
    assert_true(fd_error(lin_fwd, lin_bwd, &k, v, n, m, 3) < FD_TOL);
    /* backend: the model's linear = gemm(N,T) + bias_add; backward = gemm(T,N) for
     * dW, bias_grad_acc for db, gemm(N,N) for dx */
    double *y = malloc(m * sizeof *y), *dy = malloc(m * sizeof *dy), *dv = calloc(n, sizeof *dv);
    lin_fwd(v, y, &k);
    trng_fill(&r, dy, m, 1);
    lin_bwd(v, dy, dv, &k);
    float *dx_ = dev_from(BE, v, k.T * k.in), *dW_ = dev_from(BE, v + k.T * k.in, k.out * k.in);
    float *db_ = dev_from(BE, v + k.T * k.in + k.out * k.in, k.out), *dy_ = dev_from(BE, dy, m);
    float *y_ = BE->ops->alloc(BE, m * 4), *gx = BE->ops->alloc(BE, k.T * k.in * 4);
    double *ones = malloc(k.out * k.in * sizeof *ones);
    for (int64_t i = 0; i < k.out * k.in; i++) ones[i] = 0.5; /* accumulation: starts non-zero */
    float *gW = dev_from(BE, ones, k.out * k.in), *gb = dev_from(BE, ones, k.out);
    BE->ops->gemm(BE, 0, 1, k.T, k.out, k.in, 1.0f, dx_, k.in, dW_, k.in, 0.0f, y_, k.out);
    BE->ops->bias_add(BE, y_, db_, k.T, k.out);
    BE->ops->gemm(BE, 1, 0, k.out, k.in, k.T, 1.0f, dy_, k.out, dx_, k.in, 1.0f, gW, k.in);
    BE->ops->bias_grad_acc(BE, gb, dy_, k.T, k.out);
    BE->ops->gemm(BE, 0, 0, k.T, k.in, k.out, 1.0f, dy_, k.out, dW_, k.in, 0.0f, gx, k.in);
    double *hy = host_of(BE, y_, m), *hgx = host_of(BE, gx, k.T * k.in), *hgW = host_of(BE, gW, k.out * k.in),
           *hgb = host_of(BE, gb, k.out);
    for (int64_t i = 0; i < k.out * k.in; i++) hgW[i] -= 0.5;
    for (int64_t i = 0; i < k.out; i++) hgb[i] -= 0.5;
    assert_true(rel_err(hy, y, m) < 1e-5);
    assert_true(rel_err(hgx, dv, k.T * k.in) < 1e-5);
    assert_true(rel_err(hgW, dv + k.T * k.in, k.out * k.in) < 1e-5);
    assert_true(rel_err(hgb, dv + k.T * k.in + k.out * k.in, k.out) < 1e-5);
    float *bufs[] = {dx_, dW_, db_, dy_, y_, gx, gW, gb};
    for (size_t i = 0; i < 8; i++) BE->ops->free(BE, bufs[i]);
    free(v);
    free(y);
    free(dy);
    free(dv);
    free(ones);
    free(hy);
    free(hgx);
    free(hgW);
    free(hgb);
}

/* ------------------------------------------------------------- LayerNorm */

typedef struct {
    int64_t rows, cols;
    double eps;
    int wrong; /* negative control: drop the mean-gradient term */
} ln_ctx;

/* input vector x | g | b */
static void ln_fwd(const double *v, double *y, void *c)
{
    const ln_ctx *k = c;
    const double *x = v, *g = v + k->rows * k->cols, *b = g + k->cols;
    for (int64_t r = 0; r < k->rows; r++) {
        double mu = 0, var = 0;
        for (int64_t j = 0; j < k->cols; j++) mu += x[r * k->cols + j];
        mu /= k->cols;
        for (int64_t j = 0; j < k->cols; j++) var += (x[r * k->cols + j] - mu) * (x[r * k->cols + j] - mu);
        double rs = 1 / sqrt(var / k->cols + k->eps);
        for (int64_t j = 0; j < k->cols; j++) y[r * k->cols + j] = (x[r * k->cols + j] - mu) * rs * g[j] + b[j];
    }
}

static void ln_bwd(const double *v, const double *dy, double *dv, void *c)
{
    const ln_ctx *k = c;
    const double *x = v, *g = v + k->rows * k->cols;
    double *dx = dv, *dg = dv + k->rows * k->cols, *db = dg + k->cols;
    for (int64_t r = 0; r < k->rows; r++) {
        double mu = 0, var = 0;
        for (int64_t j = 0; j < k->cols; j++) mu += x[r * k->cols + j];
        mu /= k->cols;
        for (int64_t j = 0; j < k->cols; j++) var += (x[r * k->cols + j] - mu) * (x[r * k->cols + j] - mu);
        double rs = 1 / sqrt(var / k->cols + k->eps), s1 = 0, s2 = 0;
        for (int64_t j = 0; j < k->cols; j++) {
            double xh = (x[r * k->cols + j] - mu) * rs, d = dy[r * k->cols + j];
            dg[j] += d * xh;
            db[j] += d;
            s1 += d * g[j];
            s2 += d * g[j] * xh;
        }
        s1 /= k->cols;
        s2 /= k->cols;
        for (int64_t j = 0; j < k->cols; j++) {
            double xh = (x[r * k->cols + j] - mu) * rs;
            dx[r * k->cols + j] += rs * (dy[r * k->cols + j] * g[j] - (k->wrong ? 0 : s1) - xh * s2);
        }
    }
}

static void test_layernorm(void **state)
{
    (void)state;
    ln_ctx k = {6, 67, 1e-12, 0}; /* 67: not a multiple of any vector width */
    size_t n = k.rows * k.cols + 2 * k.cols, m = k.rows * k.cols;
    double *v = malloc(n * sizeof *v);
    trng r = {4};
    trng_fill(&r, v, n, 1);
    for (int64_t j = 0; j < k.cols; j++) v[m + j] += 1.0; /* gamma around 1 */
    assert_true(fd_error(ln_fwd, ln_bwd, &k, v, n, m, 5) < FD_TOL);
    k.wrong = 1;
    assert_true(fd_error(ln_fwd, ln_bwd, &k, v, n, m, 5) > 1e-3); /* negative control */
    k.wrong = 0;

    double *y = malloc(m * sizeof *y), *dy = malloc(m * sizeof *dy), *dv = calloc(n, sizeof *dv);
    ln_fwd(v, y, &k);
    trng_fill(&r, dy, m, 1);
    ln_bwd(v, dy, dv, &k);
    float *x_ = dev_from(BE, v, m), *g_ = dev_from(BE, v + m, k.cols), *b_ = dev_from(BE, v + m + k.cols, k.cols);
    float *y_ = BE->ops->alloc(BE, m * 4), *mu_ = BE->ops->alloc(BE, k.rows * 4), *rs_ = BE->ops->alloc(BE, k.rows * 4);
    float *dy_ = dev_from(BE, dy, m), *dx_ = BE->ops->alloc(BE, m * 4);
    float *dg_ = BE->ops->alloc(BE, k.cols * 4), *db_ = BE->ops->alloc(BE, k.cols * 4);
    BE->ops->layernorm_fwd(BE, y_, mu_, rs_, x_, g_, b_, k.rows, k.cols, (float)k.eps);
    BE->ops->layernorm_bwd(BE, dx_, dg_, db_, dy_, x_, mu_, rs_, g_, k.rows, k.cols);
    double *hy = host_of(BE, y_, m), *hdx = host_of(BE, dx_, m), *hdg = host_of(BE, dg_, k.cols),
           *hdb = host_of(BE, db_, k.cols);
    assert_true(rel_err(hy, y, m) < 1e-5);
    assert_true(rel_err(hdx, dv, m) < 1e-4);
    assert_true(rel_err(hdg, dv + m, k.cols) < 1e-5);
    assert_true(rel_err(hdb, dv + m + k.cols, k.cols) < 1e-5);
    /* in-place: dx may alias dy */
    BE->ops->zero(BE, dg_, k.cols * 4);
    BE->ops->zero(BE, db_, k.cols * 4);
    BE->ops->layernorm_bwd(BE, dy_, dg_, db_, dy_, x_, mu_, rs_, g_, k.rows, k.cols);
    double *hdx2 = host_of(BE, dy_, m);
    assert_true(rel_err(hdx2, dv, m) < 1e-4);
    float *bufs[] = {x_, g_, b_, y_, mu_, rs_, dy_, dx_, dg_, db_};
    for (size_t i = 0; i < 10; i++) BE->ops->free(BE, bufs[i]);
    free(v);
    free(y);
    free(dy);
    free(dv);
    free(hy);
    free(hdx);
    free(hdg);
    free(hdb);
    free(hdx2);
}

/* ------------------------------------------------------------- pointwise */

typedef struct {
    int tanh_approx; /* negative control for GELU */
} pw_ctx;

static void gelu_f(const double *x, double *y, void *c)
{
    (void)c;
    for (int i = 0; i < 41; i++) y[i] = 0.5 * x[i] * (1 + erf(x[i] / sqrt(2.0)));
}

static void gelu_b(const double *x, const double *dy, double *dx, void *c)
{
    const pw_ctx *k = c;
    for (int i = 0; i < 41; i++) {
        double v = x[i], d;
        if (k && k->tanh_approx) { /* derivative of the tanh approximation: close but not equal */
            double u = 0.7978845608 * (v + 0.044715 * v * v * v), t = tanh(u);
            d = 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * 0.7978845608 * (1 + 3 * 0.044715 * v * v);
        } else
            d = 0.5 * (1 + erf(v / sqrt(2.0))) + v * exp(-0.5 * v * v) / sqrt(2 * 3.14159265358979323846);
        dx[i] += dy[i] * d;
    }
}

static void tanh_f(const double *x, double *y, void *c)
{
    (void)c;
    for (int i = 0; i < 41; i++) y[i] = tanh(x[i]);
}

static void tanh_b(const double *x, const double *dy, double *dx, void *c)
{
    (void)c;
    for (int i = 0; i < 41; i++) dx[i] += dy[i] * (1 - tanh(x[i]) * tanh(x[i]));
}

static void test_pointwise(void **state)
{
    (void)state;
    double x[41], y[41], dy[41], dx[41];
    trng r = {6};
    trng_fill(&r, x, 41, 4);
    pw_ctx ok = {0}, bad = {1};
    assert_true(fd_error(gelu_f, gelu_b, &ok, x, 41, 41, 7) < FD_TOL);
    assert_true(fd_error(gelu_f, gelu_b, &bad, x, 41, 41, 7) > 1e-5); /* negative control */
    assert_true(fd_error(tanh_f, tanh_b, NULL, x, 41, 41, 8) < FD_TOL);
    for (int op = 0; op < 2; op++) {
        trng_fill(&r, dy, 41, 1);
        memset(dx, 0, sizeof dx);
        if (op == 0) {
            gelu_f(x, y, NULL);
            gelu_b(x, dy, dx, &ok);
        } else {
            tanh_f(x, y, NULL);
            tanh_b(x, dy, dx, NULL);
        }
        float *x_ = dev_from(BE, x, 41), *y_ = BE->ops->alloc(BE, 41 * 4), *dy_ = dev_from(BE, dy, 41);
        float *dx_ = BE->ops->alloc(BE, 41 * 4);
        if (op == 0) {
            BE->ops->gelu_fwd(BE, y_, x_, 41);
            BE->ops->gelu_bwd(BE, dx_, dy_, x_, 41);
        } else {
            BE->ops->tanh_fwd(BE, y_, x_, 41);
            BE->ops->tanh_bwd(BE, dx_, dy_, y_, 41);
        }
        double *hy = host_of(BE, y_, 41), *hdx = host_of(BE, dx_, 41);
        assert_true(rel_err(hy, y, 41) < 1e-6);
        assert_true(rel_err(hdx, dx, 41) < 1e-5);
        if (op == 0) { /* the fused forward: y and y' = dx/dy; backward = mul */
            float *y2 = BE->ops->alloc(BE, 41 * 4), *dd = dev_from(BE, x, 41);
            BE->ops->gelu_fwd_deriv(BE, y2, dd, dd, 41);
            BE->ops->mul(BE, dd, dy_, 41);
            double *hy2 = host_of(BE, y2, 41), *hd = host_of(BE, dd, 41);
            assert_true(rel_err(hy2, y, 41) < 1e-6);
            assert_true(rel_err(hd, dx, 41) < 1e-5);
            BE->ops->free(BE, y2);
            BE->ops->free(BE, dd);
            free(hy2);
            free(hd);
        }
        BE->ops->free(BE, x_);
        BE->ops->free(BE, y_);
        BE->ops->free(BE, dy_);
        BE->ops->free(BE, dx_);
        free(hy);
        free(hdx);
    }
}

/* ------------------------------------------------------------- attention */

typedef struct {
    int64_t nseq, nh, dh, stride;
    const int32_t *off;
    const uint32_t *sample;
    float p;
    uint64_t seed;
    uint32_t epoch, site;
    int ignore_mask_in_bwd; /* negative control */
} at_ctx;

static double at_mult(const at_ctx *k, int64_t s, int64_t h, int64_t i, int64_t j)
{
    return nn_dropout_multiplier(k->seed, k->epoch, k->sample[s], k->site, (uint32_t)i,
                                 (uint32_t)(h * k->stride + j), k->p);
}

/* x = qkv [T, 3H] -> ctx [T, H] */
static void at_fwd(const double *qkv, double *ctx, void *c)
{
    const at_ctx *k = c;
    int64_t H = k->nh * k->dh, H3 = 3 * H;
    double sc = 1 / sqrt((double)k->dh);
    for (int64_t s = 0; s < k->nseq; s++) {
        int64_t o = k->off[s], L = k->off[s + 1] - o;
        double *P = malloc(L * sizeof *P);
        for (int64_t h = 0; h < k->nh; h++)
            for (int64_t i = 0; i < L; i++) {
                double mx = -1e300, sum = 0;
                for (int64_t j = 0; j < L; j++) {
                    double d = 0;
                    for (int64_t e = 0; e < k->dh; e++)
                        d += qkv[(o + i) * H3 + h * k->dh + e] * qkv[(o + j) * H3 + H + h * k->dh + e];
                    P[j] = d * sc;
                    if (P[j] > mx) mx = P[j];
                }
                for (int64_t j = 0; j < L; j++) sum += (P[j] = exp(P[j] - mx));
                for (int64_t e = 0; e < k->dh; e++) {
                    double a = 0;
                    for (int64_t j = 0; j < L; j++)
                        a += P[j] / sum * at_mult(k, s, h, i, j) * qkv[(o + j) * H3 + 2 * H + h * k->dh + e];
                    ctx[(o + i) * H + h * k->dh + e] = a;
                }
            }
        free(P);
    }
}

static void at_bwd(const double *qkv, const double *dctx, double *dqkv, void *c)
{
    const at_ctx *k = c;
    int64_t H = k->nh * k->dh, H3 = 3 * H;
    double sc = 1 / sqrt((double)k->dh);
    for (int64_t s = 0; s < k->nseq; s++) {
        int64_t o = k->off[s], L = k->off[s + 1] - o;
        double *P = malloc(L * sizeof *P), *dP = malloc(L * sizeof *dP);
        for (int64_t h = 0; h < k->nh; h++)
            for (int64_t i = 0; i < L; i++) {
                double mx = -1e300, sum = 0, rs = 0;
                const double *q = qkv + (o + i) * H3 + h * k->dh;
                for (int64_t j = 0; j < L; j++) {
                    double d = 0;
                    for (int64_t e = 0; e < k->dh; e++) d += q[e] * qkv[(o + j) * H3 + H + h * k->dh + e];
                    P[j] = d * sc;
                    if (P[j] > mx) mx = P[j];
                }
                for (int64_t j = 0; j < L; j++) sum += (P[j] = exp(P[j] - mx));
                for (int64_t j = 0; j < L; j++) {
                    P[j] /= sum;
                    double mlt = at_mult(k, s, h, i, j), d = 0;
                    for (int64_t e = 0; e < k->dh; e++) {
                        d += dctx[(o + i) * H + h * k->dh + e] * qkv[(o + j) * H3 + 2 * H + h * k->dh + e];
                        dqkv[(o + j) * H3 + 2 * H + h * k->dh + e] += P[j] * mlt * dctx[(o + i) * H + h * k->dh + e];
                    }
                    dP[j] = d * (k->ignore_mask_in_bwd ? 1.0 : mlt);
                    rs += dP[j] * P[j];
                }
                for (int64_t j = 0; j < L; j++) {
                    double dS = P[j] * (dP[j] - rs) * sc;
                    for (int64_t e = 0; e < k->dh; e++) {
                        dqkv[(o + i) * H3 + h * k->dh + e] += dS * qkv[(o + j) * H3 + H + h * k->dh + e];
                        dqkv[(o + j) * H3 + H + h * k->dh + e] += dS * q[e];
                    }
                }
            }
        free(P);
        free(dP);
    }
}

/* short sequences take the backend's loop path, long ones (>= 24 tokens on the
 * CPU) its GEMM path: both are covered */
static void attention_case(float p, const int32_t *off, int64_t maxlen, int fd)
{
    const uint32_t sample[] = {11, 3, 900, 42};
    at_ctx k = {4, 2, 4, 64, off, sample, p, 1234, 2, 7, 0};
    int64_t T = off[4], H = k.nh * k.dh;
    size_t n = T * 3 * H, m = T * H;
    double *x = malloc(n * sizeof *x);
    trng r = {9};
    trng_fill(&r, x, n, 1.5);
    if (fd) assert_true(fd_error(at_fwd, at_bwd, &k, x, n, m, 10) < FD_TOL);
    if (fd && p > 0) {
        k.ignore_mask_in_bwd = 1;
        assert_true(fd_error(at_fwd, at_bwd, &k, x, n, m, 10) > 1e-3); /* negative control */
        k.ignore_mask_in_bwd = 0;
    }
    double *ctx = malloc(m * sizeof *ctx), *dctx = malloc(m * sizeof *dctx), *dx = calloc(n, sizeof *dx);
    at_fwd(x, ctx, &k);
    trng_fill(&r, dctx, m, 1);
    at_bwd(x, dctx, dx, &k);

    int64_t prob_off[4], tot = 0;
    for (int s = 0; s < 4; s++) {
        prob_off[s] = tot;
        tot += k.nh * (off[s + 1] - off[s]) * (off[s + 1] - off[s]);
    }
    nn_attn_desc d = {0};
    d.nseq = 4;
    d.heads = k.nh;
    d.head_dim = k.dh;
    d.max_len = maxlen;
    d.offsets = dev_bytes(BE, off, 5 * sizeof *off);
    d.prob_off = dev_bytes(BE, prob_off, sizeof prob_off);
    d.scale = (float)(1 / sqrt((double)k.dh));
    d.p = p;
    d.key = nn_rng_key_make(k.seed, k.epoch);
    d.site = k.site;
    d.seq_sample = dev_bytes(BE, sample, sizeof sample);
    d.elem_stride = k.stride;
    float *qkv_ = dev_from(BE, x, n), *probs_ = BE->ops->alloc(BE, tot * 4), *ctx_ = BE->ops->alloc(BE, m * 4);
    float *dctx_ = dev_from(BE, dctx, m), *dqkv_ = BE->ops->alloc(BE, n * 4);
    BE->ops->attention_fwd(BE, &d, qkv_, probs_, ctx_);
    BE->ops->attention_bwd(BE, &d, qkv_, probs_, dctx_, dqkv_);
    double *hctx = host_of(BE, ctx_, m), *hdx = host_of(BE, dqkv_, n), *hp = host_of(BE, probs_, tot);
    assert_true(rel_err(hctx, ctx, m) < 1e-5);
    assert_true(rel_err(hdx, dx, n) < 1e-4);
    /* probabilities: each row sums to 1 */
    for (int64_t i = 0; i + 1 <= tot;) {
        int s = 0;
        while (s < 3 && prob_off[s + 1] <= i) s++;
        int64_t L = off[s + 1] - off[s], sum_at = i;
        double sum = 0;
        for (int64_t j = 0; j < L; j++) sum += hp[sum_at + j];
        assert_true(fabs(sum - 1) < 1e-5);
        i += L;
    }
    BE->ops->free(BE, (void *)d.offsets);
    BE->ops->free(BE, (void *)d.prob_off);
    BE->ops->free(BE, (void *)d.seq_sample);
    BE->ops->free(BE, qkv_);
    BE->ops->free(BE, probs_);
    BE->ops->free(BE, ctx_);
    BE->ops->free(BE, dctx_);
    BE->ops->free(BE, dqkv_);
    free(x);
    free(ctx);
    free(dctx);
    free(dx);
    free(hctx);
    free(hdx);
    free(hp);
}

static void test_attention(void **state)
{
    (void)state;
    const int32_t small[] = {0, 5, 6, 9, 16};  /* lengths 5, 1, 3, 7 */
    const int32_t mixed[] = {0, 30, 31, 57, 61}; /* lengths 30, 1, 26, 4 */
    attention_case(0.0f, small, 7, 1);
    attention_case(0.3f, small, 7, 1);
    attention_case(0.0f, mixed, 30, 0);
    attention_case(0.3f, mixed, 30, 0);
}

/* ------------------------------------------------------------- cross-entropy */

typedef struct {
    int64_t n, c;
    const int32_t *y;
    const double *w;
    double inv;
} xe_ctx;

static void xe_fwd(const double *z, double *out, void *c)
{
    const xe_ctx *k = c;
    double tot = 0;
    for (int64_t i = 0; i < k->n; i++) {
        double mx = -1e300, se = 0;
        for (int64_t j = 0; j < k->c; j++) mx = fmax(mx, z[i * k->c + j]);
        for (int64_t j = 0; j < k->c; j++) se += exp(z[i * k->c + j] - mx);
        tot += (k->w ? k->w[k->y[i]] : 1) * (log(se) + mx - z[i * k->c + k->y[i]]);
    }
    out[0] = tot * k->inv;
}

static void xe_bwd(const double *z, const double *dy, double *dz, void *c)
{
    const xe_ctx *k = c;
    for (int64_t i = 0; i < k->n; i++) {
        double mx = -1e300, se = 0;
        for (int64_t j = 0; j < k->c; j++) mx = fmax(mx, z[i * k->c + j]);
        for (int64_t j = 0; j < k->c; j++) se += exp(z[i * k->c + j] - mx);
        for (int64_t j = 0; j < k->c; j++)
            dz[i * k->c + j] += dy[0] * (k->w ? k->w[k->y[i]] : 1) * k->inv *
                                (exp(z[i * k->c + j] - mx) / se - (j == k->y[i]));
    }
}

static void test_xent(void **state)
{
    (void)state;
    const int32_t y[] = {0, 2, 1, 2, 0};
    const double w[] = {0.5, 2.0, 1.5};
    const float wf[] = {0.5f, 2.0f, 1.5f};
    double z[15];
    trng r = {11};
    trng_fill(&r, z, 15, 3);
    for (int weighted = 0; weighted < 2; weighted++) {
        double denom = weighted ? (0.5 + 1.5 + 2.0 + 1.5 + 0.5) : 5.0;
        xe_ctx k = {5, 3, y, weighted ? w : NULL, 1 / denom};
        assert_true(fd_error(xe_fwd, xe_bwd, &k, z, 15, 1, 12) < FD_TOL);
        double loss, one = 1, dz[15] = {0};
        xe_fwd(z, &loss, &k);
        xe_bwd(z, &one, dz, &k);
        float *z_ = dev_from(BE, z, 15), *dz_ = BE->ops->alloc(BE, 15 * 4), *l_ = BE->ops->alloc(BE, 4);
        int32_t *y_ = dev_bytes(BE, y, sizeof y);
        float *w_ = dev_bytes(BE, wf, sizeof wf);
        BE->ops->xent(BE, z_, y_, weighted ? w_ : NULL, 5, 3, (float)(1 / denom), l_, dz_);
        double *hl = host_of(BE, l_, 1), *hdz = host_of(BE, dz_, 15);
        assert_true(fabs(hl[0] - loss) < 1e-6 * fabs(loss) + 1e-7);
        assert_true(rel_err(hdz, dz, 15) < 1e-6);
        BE->ops->free(BE, z_);
        BE->ops->free(BE, dz_);
        BE->ops->free(BE, l_);
        BE->ops->free(BE, y_);
        BE->ops->free(BE, w_);
        free(hl);
        free(hdz);
    }
}

/* ------------------------------------------------------------- embeddings */

static void test_embeddings(void **state)
{
    (void)state;
    const int64_t V = 11, P = 9, TT = 2, H = 5, T = 8;
    const int32_t ids[] = {3, 0, 7, 3, 10, 1, 0, 3}, pos[] = {0, 1, 2, 3, 0, 1, 0, 1}, ty[] = {0, 0, 1, 1, 0, 1, 0, 0};
    const int32_t pad = 0;
    double W[11 * 5], Pe[9 * 5], Te[2 * 5], dout[8 * 5];
    trng r = {13};
    trng_fill(&r, W, V * H, 1);
    trng_fill(&r, Pe, P * H, 1);
    trng_fill(&r, Te, TT * H, 1);
    trng_fill(&r, dout, T * H, 1);
    double out[8 * 5], dW[11 * 5] = {0}, dP[9 * 5] = {0}, dT[2 * 5] = {0};
    for (int64_t t = 0; t < T; t++)
        for (int64_t c = 0; c < H; c++) {
            out[t * H + c] = W[ids[t] * H + c] + Pe[pos[t] * H + c] + Te[ty[t] * H + c];
            if (ids[t] != pad) dW[ids[t] * H + c] += dout[t * H + c];
            dP[pos[t] * H + c] += dout[t * H + c];
            dT[ty[t] * H + c] += dout[t * H + c];
        }
    float *W_ = dev_from(BE, W, V * H), *P_ = dev_from(BE, Pe, P * H), *T_ = dev_from(BE, Te, TT * H);
    float *o_ = BE->ops->alloc(BE, T * H * 4), *do_ = dev_from(BE, dout, T * H);
    float *dW_ = BE->ops->alloc(BE, V * H * 4), *dP_ = BE->ops->alloc(BE, P * H * 4), *dT_ = BE->ops->alloc(BE, TT * H * 4);
    int32_t *ids_ = dev_bytes(BE, ids, sizeof ids), *pos_ = dev_bytes(BE, pos, sizeof pos), *ty_ = dev_bytes(BE, ty, sizeof ty);
    BE->ops->embed_fwd(BE, o_, ids_, pos_, ty_, W_, P_, T_, T, H);
    BE->ops->embed_bwd_acc(BE, dW_, dP_, dT_, do_, ids_, pos_, ty_, pad, T, H);
    double *ho = host_of(BE, o_, T * H), *hW = host_of(BE, dW_, V * H), *hP = host_of(BE, dP_, P * H),
           *hT = host_of(BE, dT_, TT * H);
    assert_true(rel_err(ho, out, T * H) < 1e-6);
    assert_true(rel_err(hW, dW, V * H) < 1e-6);
    assert_true(rel_err(hP, dP, P * H) < 1e-6);
    assert_true(rel_err(hT, dT, TT * H) < 1e-6);
    for (int64_t c = 0; c < H; c++) assert_true(hW[pad * H + c] == 0.0); /* padding row: no gradient */
    void *bufs[] = {W_, P_, T_, o_, do_, dW_, dP_, dT_, ids_, pos_, ty_};
    for (size_t i = 0; i < 11; i++) BE->ops->free(BE, bufs[i]);
    free(ho);
    free(hW);
    free(hP);
    free(hT);
}

/* ------------------------------------------------------------- dropout, rows */

static void test_dropout_op(void **state)
{
    (void)state;
    const int64_t rows = 50, cols = 203;
    const float p = 0.1f;
    uint32_t *samp = malloc(rows * sizeof *samp);
    int32_t *pos = malloc(rows * sizeof *pos);
    for (int64_t r = 0; r < rows; r++) {
        samp[r] = (uint32_t)(r / 10 + 100);
        pos[r] = (int32_t)(r % 10);
    }
    double *ones = malloc(rows * cols * sizeof *ones);
    for (int64_t i = 0; i < rows * cols; i++) ones[i] = 1;
    float *x_ = dev_from(BE, ones, rows * cols);
    nn_dropout_desc d = {p, nn_rng_key_make(77, 1), 5, dev_bytes(BE, samp, rows * 4), dev_bytes(BE, pos, rows * 4)};
    BE->ops->dropout(BE, x_, rows, cols, &d);
    double *h = host_of(BE, x_, rows * cols);
    int64_t dropped = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            float want = nn_dropout_multiplier(77, 1, samp[r], 5, (uint32_t)pos[r], (uint32_t)c, p);
            assert_true(fabs(h[r * cols + c] - want) < 1e-6);
            dropped += want == 0.0f;
        }
    double frac = (double)dropped / (rows * cols);
    assert_true(frac > 0.08 && frac < 0.12); /* 10150 Bernoulli(0.1): sd 0.003 */
    /* different epoch, site or sample => a different mask (negative controls) */
    int diff_epoch = 0, diff_site = 0, diff_sample = 0;
    for (uint32_t c = 0; c < 200; c++) {
        float a = nn_dropout_multiplier(77, 1, 100, 5, 0, c, 0.5f);
        diff_epoch += a != nn_dropout_multiplier(77, 2, 100, 5, 0, c, 0.5f);
        diff_site += a != nn_dropout_multiplier(77, 1, 100, 6, 0, c, 0.5f);
        diff_sample += a != nn_dropout_multiplier(77, 1, 101, 5, 0, c, 0.5f);
    }
    assert_true(diff_epoch > 50 && diff_site > 50 && diff_sample > 50);
    /* p = 0 is the identity */
    nn_dropout_desc d0 = d;
    d0.p = 0;
    float *y_ = dev_from(BE, ones, rows * cols);
    BE->ops->dropout(BE, y_, rows, cols, &d0);
    double *h0 = host_of(BE, y_, rows * cols);
    for (int64_t i = 0; i < rows * cols; i++) assert_true(h0[i] == 1.0);
    BE->ops->free(BE, x_);
    BE->ops->free(BE, y_);
    BE->ops->free(BE, (void *)d.row_sample);
    BE->ops->free(BE, (void *)d.row_pos);
    free(samp);
    free(pos);
    free(ones);
    free(h);
    free(h0);
}

static void test_rows(void **state)
{
    (void)state;
    double in[6 * 3];
    trng r = {14};
    trng_fill(&r, in, 18, 1);
    const int32_t idx[] = {4, 0, 2};
    float *in_ = dev_from(BE, in, 18), *g_ = BE->ops->alloc(BE, 9 * 4), *s_ = BE->ops->alloc(BE, 18 * 4);
    int32_t *idx_ = dev_bytes(BE, idx, sizeof idx);
    BE->ops->gather_rows(BE, g_, in_, idx_, 3, 3);
    BE->ops->scatter_rows_acc(BE, s_, g_, idx_, 3, 3);
    double *hg = host_of(BE, g_, 9), *hs = host_of(BE, s_, 18);
    for (int i = 0; i < 3; i++)
        for (int c = 0; c < 3; c++) assert_true(fabs(hg[i * 3 + c] - in[idx[i] * 3 + c]) < 1e-6);
    for (int row = 0; row < 6; row++)
        for (int c = 0; c < 3; c++) {
            int hit = row == 4 || row == 0 || row == 2;
            assert_true(fabs(hs[row * 3 + c] - (hit ? in[row * 3 + c] : 0)) < 1e-6);
        }
    BE->ops->free(BE, in_);
    BE->ops->free(BE, g_);
    BE->ops->free(BE, s_);
    BE->ops->free(BE, idx_);
    free(hg);
    free(hs);
}

/* ------------------------------------------------------------- optimizer ops */

static void test_adamw_op(void **state)
{
    (void)state;
    const int64_t n = 37;
    double p[37], g[37], mref[37] = {0}, vref[37] = {0};
    trng r = {15};
    trng_fill(&r, p, n, 1);
    float *p_ = dev_from(BE, p, n), *m_ = BE->ops->alloc(BE, n * 4), *v_ = BE->ops->alloc(BE, n * 4);
    for (int t = 1; t <= 3; t++) {
        trng_fill(&r, g, n, 0.5);
        float *g_ = dev_from(BE, g, n);
        double lr = 1e-2 * t, wd = 0.1, b1 = 0.9, b2 = 0.999, eps = 1e-8, gs = t == 2 ? 0.5 : 1.0;
        nn_adamw_args a = {(float)lr, (float)b1, (float)b2, (float)eps, (float)wd, (float)(1 - b1), (float)(1 - b2),
                           (float)(lr / (1 - pow(b1, t))), (float)sqrt(1 - pow(b2, t)), (float)gs};
        BE->ops->adamw(BE, p_, g_, m_, v_, n, &a);
        for (int64_t i = 0; i < n; i++) { /* torch.optim.AdamW, in double */
            double gi = g[i] * gs;
            p[i] *= 1 - lr * wd;
            mref[i] = b1 * mref[i] + (1 - b1) * gi;
            vref[i] = b2 * vref[i] + (1 - b2) * gi * gi;
            double mh = mref[i] / (1 - pow(b1, t));
            p[i] -= lr * mh / (sqrt(vref[i] / (1 - pow(b2, t))) + eps);
        }
        BE->ops->free(BE, g_);
    }
    double *hp = host_of(BE, p_, n), *hm = host_of(BE, m_, n), *hv = host_of(BE, v_, n);
    assert_true(rel_err(hp, p, n) < 1e-6);
    assert_true(rel_err(hm, mref, n) < 1e-6);
    assert_true(rel_err(hv, vref, n) < 1e-6);
    double ss = BE->ops->sumsq(BE, p_, n), want = 0;
    for (int64_t i = 0; i < n; i++) want += hp[i] * hp[i];
    assert_true(fabs(ss - want) < 1e-9 * want);
    BE->ops->scale(BE, p_, n, 2.0f);
    double *h2 = host_of(BE, p_, n);
    for (int64_t i = 0; i < n; i++) assert_true(h2[i] == 2 * hp[i]);
    BE->ops->free(BE, p_);
    BE->ops->free(BE, m_);
    BE->ops->free(BE, v_);
    free(hp);
    free(hm);
    free(hv);
    free(h2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm),       cmocka_unit_test(test_linear),     cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_pointwise),  cmocka_unit_test(test_attention),  cmocka_unit_test(test_xent),
        cmocka_unit_test(test_embeddings), cmocka_unit_test(test_dropout_op), cmocka_unit_test(test_rows),
        cmocka_unit_test(test_adamw_op),   cmocka_unit_test(test_gemm_precision_classifier),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
