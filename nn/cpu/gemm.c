/* GEMM provider shim. Only this file includes a BLAS header. */
#include "nn/cpu/gemm.h"
#include "nn/backend.h"

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
