/* The CPU backend's bf16 GEMM (nn_backend_cpu_set_precision(BF16): oneDNN matmul on
 * bf16-rounded inputs, fp32 accumulation). On a CPU without AVX512-BF16/AMX, or a
 * build without oneDNN, it prints "SKIPPED: ..." and exits 77 (ctest: skipped).
 *
 * The product is classified by tests/gemm_precision.h: it must sit 20x nearer to
 * the double-precision product of bf16-ROUNDED inputs than to that of the inputs
 * as given, for every transpose, alpha, beta and a padded C. The negative control
 * is the same backend switched back to fp32, which must be classified fp32. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "gemm_precision.h"
#include "nn/backend.h"
#include "nn/cpu/gemm.h"
#include "nn_test_util.h"

static nn_backend *BE;

/* row-major [rows, cols] -> its transpose [cols, rows] */
static float *transposed(const float *x, int64_t rows, int64_t cols)
{
    float *t = malloc((size_t)(rows * cols) * sizeof *t);
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) t[j * rows + i] = x[i * cols + j];
    return t;
}

/* alpha op(A) op(B) + beta C0 on BE with C's leading dimension ldc > N; returns
 * (result - beta C0) / alpha as a dense [M, N] (the product alone, to classify) */
static float *product(int ta, int tb, float alpha, float beta, const float *A, const float *B, const float *C0)
{
    const int64_t M = PREC_M, N = PREC_N, K = PREC_K, ldc = PREC_N + 7;
    float *a = ta ? transposed(A, M, K) : NULL, *b = tb ? transposed(B, K, N) : NULL;
    float *C = malloc((size_t)(M * ldc) * sizeof *C);
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < ldc; j++) C[i * ldc + j] = j < N ? C0[i * N + j] : 7.0f;
    BE->ops->gemm(BE, ta, tb, M, N, K, alpha, ta ? a : A, ta ? M : K, tb ? b : B, tb ? K : N, beta, C, ldc);
    float *p = malloc((size_t)(M * N) * sizeof *p);
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < N; j++) p[i * N + j] = (C[i * ldc + j] - beta * C0[i * N + j]) / alpha;
        for (int64_t j = N; j < ldc; j++) assert_true(C[i * ldc + j] == 7.0f); /* padding untouched */
    }
    free(a);
    free(b);
    free(C);
    return p;
}

static void test_gemm_is_bf16(void **state)
{
    (void)state;
    const int64_t M = PREC_M, N = PREC_N, K = PREC_K;
    float *A = prec_inputs((size_t)(M * K), 21), *B = prec_inputs((size_t)(K * N), 22);
    float *C0 = prec_inputs((size_t)(M * N), 23);
    double *ref32 = prec_ref_gemm(A, B, M, N, K, NULL), *ref16 = prec_ref_gemm(A, B, M, N, K, prec_round_bf16);
    char err[256];
    const float alphas[] = {1.0f, 0.125f}, betas[] = {0.0f, 1.0f};
    for (int prec = 0; prec < 2; prec++) { /* bf16, then the negative control: fp32 */
        assert_int_equal(nn_backend_cpu_set_precision(BE, prec ? NN_PREC_FP32 : NN_PREC_BF16, err, sizeof err), 0);
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int ai = 0; ai < 2; ai++)
                    for (int bi = 0; bi < 2; bi++) {
                        float *p = product(ta, tb, alphas[ai], betas[bi], A, B, C0);
                        prec_class k = prec_classify(p, ref32, ref16, (size_t)(M * N), PREC_FACTOR);
                        printf("  %s ta %d tb %d alpha %g beta %g: to fp32 ref %.3g, to bf16 ref %.3g: %s\n",
                               prec ? "fp32" : "bf16", ta, tb, (double)alphas[ai], (double)betas[bi], k.to_fp32,
                               k.to_rounded, prec_verdict_name(k.verdict, "bf16"));
                        assert_int_equal(k.verdict, prec ? PREC_IS_FP32 : PREC_IS_ROUNDED);
                        free(p);
                    }
    }
    free(A);
    free(B);
    free(C0);
    free(ref32);
    free(ref16);
}

/* Same inputs, same threads: bit-identical results (bf16 training is reproducible). */
static void test_gemm_deterministic(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(nn_backend_cpu_set_precision(BE, NN_PREC_BF16, err, sizeof err), 0);
    const int64_t M = 300, N = 384, K = 1536;
    float *A = prec_inputs((size_t)(M * K), 31), *B = prec_inputs((size_t)(K * N), 32);
    float *C1 = calloc((size_t)(M * N), sizeof *C1), *C2 = calloc((size_t)(M * N), sizeof *C2);
    BE->ops->gemm(BE, 0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C1, N);
    BE->ops->gemm(BE, 0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C2, N);
    assert_memory_equal(C1, C2, (size_t)(M * N) * sizeof *C1);
    free(A);
    free(B);
    free(C1);
    free(C2);
}

/* nn_bf16_round (the scalar rounding, used on row tails) is round-to-nearest-even
 * and agrees with the tests' own rounding; NaN stays NaN, infinities stay. */
static void test_round(void **state)
{
    (void)state;
    trng r = {5};
    for (int i = 0; i < 200000; i++) {
        float x = (float)(trng_uniform(&r) * pow(2.0, (double)(int)(trng_uniform(&r) * 60)));
        uint32_t want;
        float w = prec_round_bf16(x);
        memcpy(&want, &w, 4);
        assert_int_equal(nn_bf16_round(x), want >> 16);
    }
    assert_int_equal(nn_bf16_round(1.0f + 0x1p-8f), 0x3f80);              /* tie: to even (down) */
    assert_int_equal(nn_bf16_round(1.0f + 3 * 0x1p-8f), 0x3f82);          /* tie: to even (up) */
    assert_int_equal(nn_bf16_round(INFINITY), 0x7f80);
    assert_true((nn_bf16_round(NAN) & 0x7f80) == 0x7f80 && (nn_bf16_round(NAN) & 0x7f) != 0);
}

/* fp32 and bf16 only: tf32 and fp16 are the GPU's */
static void test_other_precisions_refused(void **state)
{
    (void)state;
    char err[256] = "";
    assert_int_equal(nn_backend_cpu_set_precision(BE, NN_PREC_FP16, err, sizeof err), 1);
    assert_non_null(strstr(err, "fp16"));
    assert_int_equal(nn_backend_cpu_set_precision(BE, NN_PREC_TF32, err, sizeof err), 1);
}

int main(void)
{
    char why[256];
    if (!nn_cpu_bf16_available(why, sizeof why)) {
        printf("SKIPPED: no bf16 GEMM on this CPU/build: %s\n", why);
        return 77;
    }
    if (!(BE = test_backend())) return 1;
    char err[256];
    assert_int_equal(nn_backend_cpu_set_precision(BE, NN_PREC_BF16, err, sizeof err), 0);
    printf("bf16 GEMM: oneDNN ISA %s\n", nn_backend_cpu_isa(BE));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_is_bf16),
        cmocka_unit_test(test_gemm_deterministic),
        cmocka_unit_test(test_round),
        cmocka_unit_test(test_other_precisions_refused),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    nn_backend_destroy(BE);
    return rc;
}
