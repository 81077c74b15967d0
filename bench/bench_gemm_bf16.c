/* bf16 GEMM efficiency of the CPU backend (issue 15): the rate of the bf16 path
 * (nn_cpu_bf16_gemm_weight: oneDNN matmul, weights resident as in eval) at square
 * shapes from 512 to 4096, whose best is the measured peak, and at MiniLM-L6's
 * inference shapes (M = tokens of 32 ADE sentences), next to fp32 (nn_cpu_sgemm) at
 * the same shapes. One JSON line per (precision, shape); every figure is the median of
 * REPS timed calls after one warm-up call (fewer for the largest square); the script
 * relates them to the peak.
 *
 *   bench/run_gemm_bf16.sh BUILD_DIR  (compiles this against BUILD_DIR/nn, runs it)
 *   bench_gemm_bf16 [--reps N] [--tokens M]
 *
 * Threads: OMP_NUM_THREADS. Exits 77 where the CPU or build has no bf16 path. */
#include "nn/cpu/gemm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    const char *name;
    int64_t m, n, k;
} shape;

/* C[m, n] = A[m, k] W[n, k]^T, as the model's forward GEMMs (weights stored [out, in]) */
static double run(nn_cpu_bf16 *c, int bf16, const shape *s, int reps, const float *A, const float *W, float *C)
{
    double *t = malloc((size_t)reps * sizeof *t);
    if (!t) return -1;
    for (int r = -1; r < reps; r++) {
        double t0 = now_s();
        if (bf16)
            nn_cpu_bf16_gemm_weight(c, 0, 1, s->m, s->n, s->k, 1.0f, A, s->k, W, s->k, 0.0f, C, s->n);
        else
            nn_cpu_sgemm(0, 1, s->m, s->n, s->k, 1.0f, A, s->k, W, s->k, 0.0f, C, s->n);
        if (r >= 0) t[r] = now_s() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_d);
    double med = t[reps / 2];
    free(t);
    return 2.0 * (double)s->m * (double)s->n * (double)s->k / med / 1e9;
}

int main(int argc, char **argv)
{
    int reps = 20;
    int64_t tokens = 1247; /* a batch of 32 ADE-length sentences (run_cpu_bf16_bench.sh: tokens_per_step) */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) tokens = atoll(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_gemm_bf16 [--reps N] [--tokens M]\n");
            return 2;
        }
    }
    if (reps < 3 || tokens < 1) {
        fprintf(stderr, "bench_gemm_bf16: --reps >= 3 and --tokens >= 1\n");
        return 2;
    }
    char err[256];
    nn_cpu_bf16 *c = nn_cpu_bf16_create(err, sizeof err);
    if (!c) {
        fprintf(stderr, "bench_gemm_bf16: no bf16 path: %s\n", err);
        return 77;
    }
    const shape shapes[] = {
        {"square 512", 512, 512, 512},       {"square 1024", 1024, 1024, 1024},
        {"square 2048", 2048, 2048, 2048},   {"square 4096", 4096, 4096, 4096},
        {"minilm qkv", tokens, 1152, 384},
        {"minilm attn out", tokens, 384, 384},
        {"minilm ffn in", tokens, 1536, 384},
        {"minilm ffn out", tokens, 384, 1536},
    };
    size_t amax = 0, wmax = 0, cmax = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        const shape *s = &shapes[i];
        if ((size_t)(s->m * s->k) > amax) amax = (size_t)(s->m * s->k);
        if ((size_t)(s->n * s->k) > wmax) wmax = (size_t)(s->n * s->k);
        if ((size_t)(s->m * s->n) > cmax) cmax = (size_t)(s->m * s->n);
    }
    float *A = malloc(amax * sizeof *A), *C = malloc(cmax * sizeof *C);
    enum { NS = sizeof shapes / sizeof *shapes };
    float *W[NS];
    for (int i = 0; i < NS; i++) W[i] = malloc(wmax * sizeof(float)); /* one per shape: resident copies */
    if (!A || !C) return 1;
    for (size_t i = 0; i < amax; i++) A[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    for (int j = 0; j < NS; j++) {
        if (!W[j]) return 1;
        for (size_t i = 0; i < wmax; i++) W[j][i] = (float)((i * 40503u + 7 * j) % 997) / 997.0f - 0.5f;
    }
    for (int i = 0; i < NS; i++) {
        for (int bf16 = 1; bf16 >= 0; bf16--) {
            int r = shapes[i].m >= 4096 ? (reps < 5 ? reps : 5) : reps; /* ~0.3 s a call */
            double g = run(c, bf16, &shapes[i], r, A, W[i], C);
            printf("{\"shape\": \"%s\", \"m\": %lld, \"n\": %lld, \"k\": %lld, \"precision\": \"%s\", "
                   "\"gflops\": %.1f, \"isa\": \"%s\", \"reps\": %d}\n",
                   shapes[i].name, (long long)shapes[i].m, (long long)shapes[i].n, (long long)shapes[i].k,
                   bf16 ? "bf16" : "fp32", g, nn_cpu_bf16_isa(c), r);
            fflush(stdout);
        }
    }
    for (int i = 0; i < NS; i++) free(W[i]);
    free(A);
    free(C);
    nn_cpu_bf16_free(c);
    return 0;
}
