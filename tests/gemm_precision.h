/* Which precision did a GEMM compute in? (header-only; tests/test_nn_ops.c checks
 * the classifier on the CPU, tests/test_nn_cuda.c uses it on the cuBLAS GEMM.)
 *
 * A tensor-core GEMM in bf16 (or fp16) rounds its fp32 inputs to bf16 (fp16),
 * multiplies them exactly and accumulates in fp32. Its result is therefore close
 * to C_low = the product, in double, of the ROUNDED inputs, and far from C_fp32 =
 * the product, in double, of the inputs as given; an fp32 GEMM is the other way
 * round. The two references differ by the input rounding (relative ~2^-9 for
 * bf16, ~2^-12 for fp16, whatever K), fp32 accumulation by ~1e-7..1e-6: the
 * inputs (prec_inputs) have magnitudes in [0.25, 1) with full 24-bit
 * mantissas, so rounding changes nearly every one of them (small integers would
 * round to themselves and make the references equal).
 *
 * prec_classify names the reference a result is nearer to, provided it is
 * nearer by at least `factor` (norm-wise relative distances); otherwise neither. */
#ifndef ADEBERT_TESTS_GEMM_PRECISION_H
#define ADEBERT_TESTS_GEMM_PRECISION_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nn_test_util.h"

/* x with its low `drop` mantissa bits cleared, rounded to nearest (ties to
 * even) or truncated; finite x, no overflow */
static inline float prec_drop_bits(float x, int drop, int nearest)
{
    uint32_t u, low = (1u << drop) - 1u;
    memcpy(&u, &x, 4);
    if (nearest) u += (low >> 1) + ((u >> drop) & 1u);
    u &= ~low;
    memcpy(&x, &u, 4);
    return x;
}

/* nearest bf16 (8 significant bits, fp32's exponent range), as a float */
static inline float prec_round_bf16(float x) { return prec_drop_bits(x, 16, 1); }

/* nearest tf32 (11 significant bits, fp32's exponent range) */
static inline float prec_round_tf32(float x) { return prec_drop_bits(x, 13, 1); }

/* nearest fp16 (11 significant bits; below 2^-14 a fixed quantum of 2^-24), |x| < 65504 */
static inline float prec_round_fp16(float x)
{
    if (fabsf(x) < 0x1p-14f) return (float)(rint((double)x * 0x1p24) * 0x1p-24);
    return prec_drop_bits(x, 13, 1);
}

/* bf16 by truncation (toward zero): the negative control, a rounding that is
 * neither fp32 nor bf16's round-to-nearest */
static inline float prec_trunc_bf16(float x) { return prec_drop_bits(x, 16, 0); }

/* n floats with random sign and magnitude in [0.25, 1) */
static inline float *prec_inputs(size_t n, uint64_t seed)
{
    trng r = {seed};
    float *x = malloc((n ? n : 1) * sizeof *x);
    for (size_t i = 0; i < n; i++) {
        double u = trng_uniform(&r); /* [-1, 1) */
        x[i] = (float)(u < 0 ? -0.25 + 0.75 * u : 0.25 + 0.75 * u);
    }
    return x;
}

/* out[i] = round(x[i]) */
static inline float *prec_rounded(const float *x, size_t n, float (*round)(float))
{
    float *y = malloc((n ? n : 1) * sizeof *y);
    for (size_t i = 0; i < n; i++) y[i] = round(x[i]);
    return y;
}

/* C = A B in double, row-major A [m, k], B [k, n], each input passed through
 * `round` first (NULL: as given) */
static inline double *prec_ref_gemm(const float *A, const float *B, int64_t m, int64_t n, int64_t k,
                                    float (*round)(float))
{
    double *C = malloc((size_t)(m * n) * sizeof *C);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t l = 0; l < k; l++)
                s += (double)(round ? round(A[i * k + l]) : A[i * k + l]) *
                     (double)(round ? round(B[l * n + j]) : B[l * n + j]);
            C[i * n + j] = s;
        }
    return C;
}

typedef enum { PREC_NEITHER = -1, PREC_IS_FP32 = 0, PREC_IS_ROUNDED = 1 } prec_verdict;

typedef struct {
    double to_fp32, to_rounded; /* relative distances of the result to C_fp32 and C_low */
    prec_verdict verdict;
} prec_class;

/* C [m, n] (floats, host) against ref_fp32 and ref_rounded (prec_ref_gemm
 * without and with the rounding) */
static inline prec_class prec_classify(const float *C, const double *ref_fp32, const double *ref_rounded,
                                       size_t mn, double factor)
{
    double *c = malloc((mn ? mn : 1) * sizeof *c);
    for (size_t i = 0; i < mn; i++) c[i] = C[i];
    prec_class r;
    r.to_fp32 = rel_err(c, ref_fp32, mn);
    r.to_rounded = rel_err(c, ref_rounded, mn);
    r.verdict = r.to_fp32 * factor < r.to_rounded   ? PREC_IS_FP32
                : r.to_rounded * factor < r.to_fp32 ? PREC_IS_ROUNDED
                                                    : PREC_NEITHER;
    free(c);
    return r;
}

static inline const char *prec_verdict_name(prec_verdict v, const char *rounded)
{
    return v == PREC_IS_FP32 ? "fp32" : v == PREC_IS_ROUNDED ? rounded : "neither";
}

/* The margin a verdict needs: the nearer reference at least 20 times nearer. */
#define PREC_FACTOR 20.0

/* The shape both tests use: K large enough that the sums mix many roundings. */
#define PREC_M 96
#define PREC_N 80
#define PREC_K 512

#endif
