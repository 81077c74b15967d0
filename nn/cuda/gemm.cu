// GEMM through cuBLAS (the compute type is the backend's precision) and the
// bias of a linear layer. Bias gradients are column sums (reduce.cu).
#include "nn/cuda/internal.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

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

// dst (rows x cols, packed) = src (rows x cols, leading dimension ld) rounded to
// nearest-even bf16 or fp16: the GEMM inputs of --precision bf16/fp16
template <typename T> __device__ __forceinline__ T to_low(float x);
template <> __device__ __forceinline__ __nv_bfloat16 to_low<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
template <> __device__ __forceinline__ __half to_low<__half>(float x) { return __float2half_rn(x); }

template <typename T> static __global__ void k_round_pack(T *dst, const float *src, int64_t ld, int64_t rows, int64_t cols)
{
    GRID_STRIDE(i, rows * cols) dst[i] = to_low<T>(src[(i / cols) * ld + i % cols]);
}

// Both inputs rounded to T, packed into s->lowp (A first, B from a 256-byte boundary),
// then C = op(A) op(B) as a 16-bit product with fp32 accumulation and an fp32 C.
template <typename T>
static void gemm_low(cu_state *s, cudaDataType_t t, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
                     const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    const int64_t ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
    if (lda < ac || ldb < bc || ldc < n) {
        nn_cu_fail(s, "gemm: a leading dimension is below its row length (lda %lld < %lld, ldb %lld < %lld or "
                      "ldc %lld < %lld)", (long long)lda, (long long)ac, (long long)ldb, (long long)bc,
                   (long long)ldc, (long long)n);
        return;
    }
    const size_t na = (size_t)(ar * ac), nb = (size_t)(br * bc), na_pad = (na + 127) / 128 * 128;
    if (nn_cu_scratch(s, &s->lowp, &s->lowp_bytes, (na_pad + nb) * sizeof(T), "gemm inputs")) return;
    T *la = (T *)s->lowp, *lb = la + na_pad;
    k_round_pack<<<grid_for((int64_t)na, NT), NT, 0, s->stream>>>(la, A, lda, ar, ac);
    k_round_pack<<<grid_for((int64_t)nb, NT), NT, 0, s->stream>>>(lb, B, ldb, br, bc);
    if (LAUNCHED(s, k_round_pack)) return;
    CKB(s, cublasGemmEx(s->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, (int)n, (int)m,
                        (int)k, &alpha, lb, t, (int)bc, la, t, (int)ac, &beta, C, CUDA_R_32F, (int)ldc,
                        CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

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
    if (s->prec == NN_PREC_BF16) {
        gemm_low<__nv_bfloat16>(s, CUDA_R_16BF, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    if (s->prec == NN_PREC_FP16) {
        gemm_low<__half>(s, CUDA_R_16F, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
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
