/* Public entry points of the counter-based generator (see nn/philox.h). */
#include "nn/backend.h"
#include "nn/philox.h"

nn_rng_key nn_rng_key_make(uint64_t seed, uint32_t epoch)
{
    uint64_t z = nn_splitmix64(nn_splitmix64(seed) ^ (uint64_t)epoch);
    nn_rng_key k = {(uint32_t)z, (uint32_t)(z >> 32)};
    return k;
}

uint32_t nn_rng_bits(nn_rng_key key, uint32_t sample, uint32_t site, uint32_t pos, uint32_t elem)
{
    nn_philox4 r = nn_philox4x32_10(elem >> 2, pos, site, sample, key.k0, key.k1);
    return r.v[elem & 3];
}
