/* The GEMM entry points of the CPU backend; the fp32 provider is chosen at build
 * time (CMake ADEBERT_BLAS=dnnl|blis|openblas), see bench/bench_gemm.c. The bf16
 * path (oneDNN matmul, bf16 inputs, fp32 accumulation and output) exists in dnnl
 * builds on CPUs with AVX512-BF16 or AMX. */
#ifndef ADEBERT_NN_CPU_GEMM_H
#define ADEBERT_NN_CPU_GEMM_H

#include <stddef.h>
#include <stdint.h>

/* Row-major C = alpha op(A) op(B) + beta C. */
void nn_cpu_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *A,
                  int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* bf16 GEMM context: oneDNN engine and stream, bf16 staging buffers, a small
 * cache of matmul primitives keyed by shape. NULL with the reason in err where
 * the build or the CPU cannot (no oneDNN, no AVX512-BF16/AMX under oneDNN's
 * effective ISA, which ONEDNN_MAX_CPU_ISA can lower). */
typedef struct nn_cpu_bf16 nn_cpu_bf16;
nn_cpu_bf16 *nn_cpu_bf16_create(char *err, size_t errlen);
void nn_cpu_bf16_free(nn_cpu_bf16 *c);
/* The same contract as nn_cpu_sgemm, but A and B are rounded to bf16 (nearest
 * even) before the product; accumulation and C stay fp32. The ISA oneDNN chose
 * ("avx512_core_bf16", "avx512_core_amx") is in nn_cpu_bf16_isa. */
void nn_cpu_bf16_gemm(nn_cpu_bf16 *c, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                      const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
const char *nn_cpu_bf16_isa(const nn_cpu_bf16 *c);
/* nn_cpu_bf16_gemm where B is a weight matrix, packed in its stored layout (ldb = k
 * when trans_b, else n; otherwise B is converted for this call only): its bf16 copy is
 * made on first use and kept, so forward and backward GEMMs and later batches reuse
 * it, until nn_cpu_bf16_forget covers B's memory. Same bits as nn_cpu_bf16_gemm. */
void nn_cpu_bf16_gemm_weight(nn_cpu_bf16 *c, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                             float alpha, const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                             float *C, int64_t ldc);
/* [p, p + bytes) was written or freed: resident copies made from it are stale (remade
 * on next use; their memory goes to the next new matrix if that comes first). */
void nn_cpu_bf16_forget(nn_cpu_bf16 *c, const void *p, size_t bytes);
/* resident copies made or remade so far */
uint64_t nn_cpu_bf16_weight_conversions(const nn_cpu_bf16 *c);

/* fp32 -> bf16, round to nearest even (NaN stays NaN): the rounding the bf16 GEMM
 * applies to its inputs, exposed for tests. */
static inline uint16_t nn_bf16_round(float f)
{
    union {
        float f;
        uint32_t u;
    } v = {f};
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40u); /* quiet NaN */
    v.u += 0x7fffu + ((v.u >> 16) & 1u);
    return (uint16_t)(v.u >> 16);
}

#endif
