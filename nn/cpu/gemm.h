/* The one GEMM entry point of the CPU backend; the provider is chosen at build
 * time (CMake ADEBERT_BLAS=dnnl|blis|openblas), see bench/bench_gemm.c. */
#ifndef ADEBERT_NN_CPU_GEMM_H
#define ADEBERT_NN_CPU_GEMM_H

#include <stdint.h>

/* Row-major C = alpha op(A) op(B) + beta C. */
void nn_cpu_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *A,
                  int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

#endif
