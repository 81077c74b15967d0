// GEMM through cuBLAS (the compute type is the backend's precision) and the
// bias of a linear layer. Bias gradients are column sums (reduce.cu).
#include "nn/cuda/internal.cuh"

static __global__ void k_fill_beta(float *C, int64_t ldc, int64_t m, int64_t n, float beta)
{
    GRID_STRIDE(i, m * n)
    {
        int64_t r = i / n, c = i % n;
        float *p = C + r * ldc + c;
        *p = beta == 0.0f ? 0.0f : beta * *p;
    }
}

static __global__ void k_bias_add(float *y, const float *bias, int64_t rows, int64_t cols)
{
    GRID_STRIDE(i, rows * cols) y[i] += bias[i % cols];
}

static int fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

void nn_cu_gemm(nn_backend *b, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *A,
                int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    cu_state *s = ST(b);
    if (s->failed || m <= 0 || n <= 0) return;
    if (k <= 0) { // C = beta C (as a BLAS does), without relying on cuBLAS for k == 0
        k_fill_beta<<<grid_for(m * n, NT), NT, 0, s->stream>>>(C, ldc, m, n, beta);
        LAUNCHED(s, k_fill_beta);
        return;
    }
    if (!fits_int(m) || !fits_int(n) || !fits_int(k) || !fits_int(lda) || !fits_int(ldb) || !fits_int(ldc)) {
        nn_cu_fail(s, "gemm: dimension beyond INT_MAX (m %lld n %lld k %lld)", (long long)m, (long long)n,
                   (long long)k);
        return;
    }
    // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: the stored
    // row-major matrices are their column-major transposes, so B goes first with
    // the same transpose flags.
    CKB(s, cublasGemmEx(s->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, (int)n, (int)m,
                        (int)k, &alpha, B, CUDA_R_32F, (int)ldb, A, CUDA_R_32F, (int)lda, &beta, C, CUDA_R_32F,
                        (int)ldc, s->ctype, CUBLAS_GEMM_DEFAULT));
}

void nn_cu_bias_add(nn_backend *b, float *y, const float *bias, int64_t rows, int64_t cols)
{
    cu_state *s = ST(b);
    if (s->failed || rows <= 0 || cols <= 0) return;
    k_bias_add<<<grid_for(rows * cols, NT), NT, 0, s->stream>>>(y, bias, rows, cols);
    LAUNCHED(s, k_bias_add);
}

void nn_cu_bias_grad_acc(nn_backend *b, float *db, const float *dy, int64_t rows, int64_t cols)
{
    cu_state *s = ST(b);
    if (s->failed || rows <= 0 || cols <= 0) return;
    nn_cu_colsum(s, db, NULL, dy, NULL, NULL, NULL, rows, cols);
}
