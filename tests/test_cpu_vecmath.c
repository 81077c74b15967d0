/* The CPU backend's GELU and softmax exp through glibc's libmvec (nn/cpu/cpu_backend.c):
 *  - the path: on a CPU with AVX-512 (AVX2) and a build with libmvec, the kernels must
 *    report the 16 (8) lane path, not silently fall back to scalar libm, unless
 *    ADEBERT_VECMATH narrows it (ctest runs this program three times: default, avx2,
 *    scalar);
 *  - accuracy: gelu, gelu' and dx = dy gelu'(x) within a few fp32 ulps of a double
 *    reference over [-12, 12] (the units: see ulps()) and special values (0, +-inf handled as the scalar
 *    formula does); the softmax of the attention matches a double softmax;
 *  - position independence: an element's result is bit-identical whether it sits in a
 *    vector body or a padded tail, at any n and offset (what makes results independent
 *    of the thread count); negative control: a deliberately different function (tanh
 *    GELU) must fail the accuracy bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/backend.h"

static nn_backend *BE;

static double gelu_ref(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }
static double gelu_d_ref(double x) { return 0.5 * (1.0 + erf(x / sqrt(2.0))) + x * exp(-0.5 * x * x) * 0.39894228040143268; }

/* |got - want| in units of fp32 spacing at `scale`: for GELU the formula's own
 * rounding is ~1 ulp of erf's 1 + erf(.) times |x| (cancellation for negative x), so
 * scale = |x| + |want|; the derivative cdf + x pdf is O(1): scale 1 */
static double ulps(float got, double want, double scale)
{
    return fabs((double)got - want) / (fmax(scale, 1e-30) * 1.1920928955078125e-7);
}

static float *grid(int64_t *n_out)
{
    const int64_t n = 240001;
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++) x[i] = (float)(-12.0 + 24.0 * (double)i / (double)(n - 1));
    *n_out = n;
    return x;
}

static void test_path(void **state)
{
    (void)state;
    const char *name = nn_cpu_vecmath_name(), *env = getenv("ADEBERT_VECMATH");
    __builtin_cpu_init();
    const char *want = "scalar (libm)";
#ifdef ADEBERT_TEST_HAVE_MVEC
    if (__builtin_cpu_supports("avx512f") && !(env && (!strcmp(env, "avx2") || !strcmp(env, "scalar"))))
        want = "avx512 (libmvec)";
    else if (__builtin_cpu_supports("avx2") && !(env && !strcmp(env, "scalar")))
        want = "avx2 (libmvec)";
#endif
    print_message("vector math: %s (ADEBERT_VECMATH=%s)\n", name, env ? env : "");
    assert_string_equal(name, want);
}

static double max_gelu_ulps(const float *x, const float *y, int64_t n)
{
    double worst = 0;
    for (int64_t i = 0; i < n; i++) worst = fmax(worst, ulps(y[i], gelu_ref(x[i]), fabs((double)x[i]) + fabs(gelu_ref(x[i]))));
    return worst;
}

static void test_gelu_accuracy(void **state)
{
    (void)state;
    int64_t n;
    float *x = grid(&n);
    float *y = calloc((size_t)n, sizeof *y), *d = calloc((size_t)n, sizeof *d), *dy = calloc((size_t)n, sizeof *dy),
          *dx = calloc((size_t)n, sizeof *dx), *y2 = calloc((size_t)n, sizeof *y2);
    for (int64_t i = 0; i < n; i++) dy[i] = (float)(0.5 + (double)(i % 7) * 0.25);
    BE->ops->gelu_fwd(BE, y, x, n);
    BE->ops->gelu_fwd_deriv(BE, y2, d, x, n);
    BE->ops->gelu_bwd(BE, dx, dy, x, n);
    double wy = max_gelu_ulps(x, y, n), wd = 0, wb = 0;
    for (int64_t i = 0; i < n; i++) {
        assert_true(y[i] == y2[i]); /* fwd and fwd_deriv: the same forward values */
        wd = fmax(wd, ulps(d[i], gelu_d_ref(x[i]), 1.0));
        wb = fmax(wb, ulps(dx[i], dy[i] * gelu_d_ref(x[i]), dy[i]));
    }
    print_message("gelu max %.1f ulp, gelu' %.1f ulp, dy*gelu' %.1f ulp over %lld points\n", wy, wd, wb,
                  (long long)n);
    assert_true(wy <= 4.0);
    assert_true(wd <= 4.0);
    assert_true(wb <= 4.0);

    /* negative control: the tanh approximation of GELU (a different function, ~1e-3
     * relative) must fail this bound, or the bound proves nothing */
    for (int64_t i = 0; i < n; i++) {
        double v = x[i];
        y2[i] = (float)(0.5 * v * (1.0 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v))));
    }
    double wt = max_gelu_ulps(x, y2, n);
    print_message("negative control (tanh GELU): %.0f ulp\n", wt);
    assert_true(wt > 100.0);

    /* specials: 0 -> 0, large positive -> x, large negative -> -0/0 */
    float sx[4] = {0.0f, 30.0f, -30.0f, 1e-30f}, sy[4];
    BE->ops->gelu_fwd(BE, sy, sx, 4);
    assert_true(sy[0] == 0.0f && sy[1] == 30.0f && sy[2] == 0.0f && fabsf(sy[3] - 0.5e-30f) < 1e-36f);
    free(x), free(y), free(d), free(dy), free(dx), free(y2);
}

/* element i computed alone, at the start of a vector, in a tail, in every chunking */
static void test_position_independence(void **state)
{
    (void)state;
    const int64_t N = 10007; /* spans several 4096-element chunks, odd tail */
    float *x = malloc(N * sizeof *x), *ref = malloc(N * sizeof *ref), *refd = malloc(N * sizeof *refd);
    float *y = malloc(N * sizeof *y), *d = malloc(N * sizeof *d);
    for (int64_t i = 0; i < N; i++) x[i] = (float)sin((double)i * 0.37) * 6.0f;
    BE->ops->gelu_fwd_deriv(BE, ref, refd, x, N);
    for (int64_t off = 0; off < 40; off += 3)
        for (int64_t n = 1; n <= 70; n += 1 + n / 8) {
            if (off + n > N) continue;
            BE->ops->gelu_fwd_deriv(BE, y, d, x + off, n);
            assert_memory_equal(y, ref + off, (size_t)n * sizeof *y);
            assert_memory_equal(d, refd + off, (size_t)n * sizeof *d);
        }
    /* in place (dydx aliases x), as the model calls it */
    memcpy(y, x, N * sizeof *y);
    BE->ops->gelu_fwd_deriv(BE, d, y, y, N);
    assert_memory_equal(y, refd, N * sizeof *y);
    free(x), free(ref), free(refd), free(y), free(d);
}

/* the attention's softmax (exp through libmvec) against a double softmax */
static void test_softmax(void **state)
{
    (void)state;
    const int64_t heads = 2, dh = 8, H = heads * dh;
    const int32_t lens[3] = {1, 17, 40};
    int32_t offsets[4] = {0};
    int64_t prob_off[3], poff = 0, T = 0;
    for (int s = 0; s < 3; s++) {
        prob_off[s] = poff;
        poff += heads * (int64_t)lens[s] * lens[s];
        T += lens[s];
        offsets[s + 1] = (int32_t)T;
    }
    float *qkv = malloc((size_t)(T * 3 * H) * sizeof *qkv), *probs = calloc((size_t)poff, sizeof *probs),
          *ctx = calloc((size_t)(T * H), sizeof *ctx);
    for (int64_t i = 0; i < T * 3 * H; i++) qkv[i] = (float)cos((double)i * 0.91) * 3.0f;
    uint32_t ss[3] = {0, 1, 2};
    nn_attn_desc ad = {0};
    ad.nseq = 3, ad.heads = heads, ad.head_dim = dh, ad.max_len = 40, ad.offsets = offsets, ad.prob_off = prob_off;
    ad.scale = 1.0f / sqrtf((float)dh), ad.p = 0.0f, ad.seq_sample = ss, ad.elem_stride = 512;
    BE->ops->attention_fwd(BE, &ad, qkv, probs, ctx);
    double worst = 0;
    for (int s = 0; s < 3; s++)
        for (int64_t h = 0; h < heads; h++)
            for (int64_t i = 0; i < lens[s]; i++) {
                double sc[40], mx = -INFINITY, sum = 0;
                for (int64_t j = 0; j < lens[s]; j++) {
                    const float *q = qkv + (offsets[s] + i) * 3 * H + h * dh, *k = qkv + (offsets[s] + j) * 3 * H + H + h * dh;
                    double dot = 0;
                    for (int64_t e = 0; e < dh; e++) dot += (double)q[e] * k[e];
                    sc[j] = dot * ad.scale;
                    mx = fmax(mx, sc[j]);
                }
                for (int64_t j = 0; j < lens[s]; j++) sum += exp(sc[j] - mx);
                const float *P = probs + prob_off[s] + (h * lens[s] + i) * lens[s];
                for (int64_t j = 0; j < lens[s]; j++) worst = fmax(worst, fabs(P[j] - exp(sc[j] - mx) / sum));
            }
    print_message("softmax max abs error %.2e\n", worst);
    assert_true(worst < 2e-6);
    free(qkv), free(probs), free(ctx);
}

int main(void)
{
    char err[256];
    if (nn_backend_cpu_create(&BE, 0, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path),
        cmocka_unit_test(test_gelu_accuracy),
        cmocka_unit_test(test_position_independence),
        cmocka_unit_test(test_softmax),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    nn_backend_destroy(BE);
    return rc;
}
