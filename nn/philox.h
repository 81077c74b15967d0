/* Counter-based randomness shared by every backend (plain C99, also valid CUDA:
 * under nvcc NN_HD is __host__ __device__, the same integer arithmetic on both
 * sides). Philox4x32-10 (Salmon et al. 2011).
 * Dropout element bits: counter = (elem >> 2, pos, site, sample), key = (k0, k1),
 * output word elem & 3. Nothing here depends on batch slot, packed offset, rank
 * or step, so a sample's masks follow it anywhere. */
#ifndef ADEBERT_NN_PHILOX_H
#define ADEBERT_NN_PHILOX_H

#include <stdint.h>

#ifndef NN_HD
#ifdef __CUDACC__
#define NN_HD __host__ __device__
#else
#define NN_HD
#endif
#endif

typedef struct {
    uint32_t v[4];
} nn_philox4;

static inline NN_HD nn_philox4 nn_philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0,
                                                uint32_t k1)
{
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0, hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    nn_philox4 o = {{c0, c1, c2, c3}};
    return o;
}

static inline NN_HD uint64_t nn_splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* scale for kept elements */
static inline NN_HD float nn_dropout_scale(float p)
{
    return p > 0.0f ? 1.0f / (1.0f - p) : 1.0f;
}

#endif
