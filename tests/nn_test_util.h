/* Shared helpers of the tests/test_nn_*.c programs (header-only: every
 * test_*.c is its own executable). */
#ifndef ADEBERT_TESTS_NN_TEST_UTIL_H
#define ADEBERT_TESTS_NN_TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

/* deterministic test randomness */
typedef struct {
    uint64_t s;
} trng;

static inline uint64_t trng_next(trng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline double trng_uniform(trng *r) /* [-1, 1) */
{
    return (double)(trng_next(r) >> 11) * (2.0 / 9007199254740992.0) - 1.0;
}

static inline void trng_fill(trng *r, double *x, size_t n, double scale)
{
    for (size_t i = 0; i < n; i++) x[i] = scale * trng_uniform(r);
}

/* The backend under test: always the CPU backend (ADEBERT_TEST_BACKEND, if set,
 * must say cpu). These programs never run on CUDA; tests/test_nn_cuda.c checks
 * the CUDA backend op by op and on the whole model against the CPU backend. */
static inline nn_backend *test_backend(void)
{
    char err[256];
    nn_backend *b = NULL;
    const char *want = getenv("ADEBERT_TEST_BACKEND");
    if (want && strcmp(want, "cpu") != 0) {
        fprintf(stderr, "backend %s not available in this build\n", want);
        return NULL;
    }
    if (nn_backend_cpu_create(&b, 0, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return NULL;
    }
    return b;
}

/* The backend a test program shares, with cmocka group setup/teardown making and
 * destroying it: NN_TEST_BACKEND_FIXTURE at file scope defines `BE`, `setup` and
 * `teardown` (a macro, so programs with their own fixtures define nothing unused). */
#define NN_TEST_BACKEND_FIXTURE                                                                          \
    static nn_backend *BE;                                                                               \
    static int setup(void **state)                                                                       \
    {                                                                                                    \
        (void)state;                                                                                     \
        BE = test_backend();                                                                             \
        return BE ? 0 : -1;                                                                              \
    }                                                                                                    \
    static int teardown(void **state)                                                                    \
    {                                                                                                    \
        (void)state;                                                                                     \
        nn_backend_destroy(BE);                                                                          \
        return 0;                                                                                        \
    }

/* An nn_batch over packed arrays the caller owns (types, labels, sid, cw may be NULL). */
static inline nn_batch test_nn_batch(int64_t nseq, const int32_t *ids, const int32_t *off, const int32_t *types,
                                     const int32_t *labels, const uint32_t *sid, const float *cw, double denom,
                                     int train, uint64_t seed, uint32_t epoch)
{
    nn_batch b;
    memset(&b, 0, sizeof b);
    b.nseq = nseq;
    b.ids = ids;
    b.offsets = off;
    b.token_types = types;
    b.labels = labels;
    b.sample_ids = sid;
    b.class_weights = cw;
    b.loss_denominator = denom;
    b.train = train;
    b.seed = seed;
    b.epoch = epoch;
    return b;
}

/* A small model that still has every feature: 2 layers, 4 heads, an odd FFN width,
 * 3 labels, dropout on (test_nn_model.c, test_nn_cuda.c). */
static inline nn_config test_tiny_cfg(void)
{
    nn_config c;
    memset(&c, 0, sizeof c);
    c.vocab_size = 97;
    c.hidden_size = 48;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.intermediate_size = 37;
    c.max_position_embeddings = 40;
    c.type_vocab_size = 2;
    c.num_labels = 3;
    c.pad_token_id = 0;
    c.layer_norm_eps = 1e-12;
    c.hidden_dropout_prob = 0.2;
    c.attention_probs_dropout_prob = 0.15;
    c.classifier_dropout = -1;
    return c;
}

/* device buffer from doubles (converted to float) */
static inline float *dev_from(nn_backend *b, const double *x, size_t n)
{
    float *h = malloc((n ? n : 1) * sizeof *h);
    for (size_t i = 0; i < n; i++) h[i] = (float)x[i];
    float *d = b->ops->alloc(b, (n ? n : 1) * sizeof *d);
    b->ops->upload(b, d, h, n * sizeof *d);
    b->ops->sync(b);
    free(h);
    return d;
}

static inline void *dev_bytes(nn_backend *b, const void *x, size_t bytes)
{
    void *d = b->ops->alloc(b, bytes ? bytes : 1);
    if (bytes) b->ops->upload(b, d, x, bytes);
    b->ops->sync(b);
    return d;
}

/* host doubles from a device float buffer */
static inline double *host_of(nn_backend *b, const float *d, size_t n)
{
    float *h = malloc((n ? n : 1) * sizeof *h);
    b->ops->download(b, h, d, n * sizeof *h);
    b->ops->sync(b);
    double *x = malloc((n ? n : 1) * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = h[i];
    free(h);
    return x;
}

/* ||a - ref|| / max(||ref||, tiny) */
static inline double rel_err(const double *a, const double *ref, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += (a[i] - ref[i]) * (a[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    return sqrt(num) / (sqrt(den) > 1e-30 ? sqrt(den) : 1e-30);
}

static inline double max_abs_diff(const double *a, const double *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(a[i] - b[i]) > m) m = fabs(a[i] - b[i]);
    return m;
}

#endif
