/* GEMM providers at BERT training shapes, each loaded with dlopen so one binary
 * compares them without linking two BLAS libraries together (their cblas_*
 * symbols would clash). Prints one JSON object per (provider, shape).
 *
 *   bench_gemm [--reps N] [--tokens T] [--providers dnnl,blis,openblas]
 *
 * Threads: OMP_NUM_THREADS for dnnl and BLIS (OpenMP builds); OpenBLAS here is
 * Debian's pthread build and reads OPENBLAS_NUM_THREADS (set it the same).
 * Never set OPENBLAS_CORETYPE: this measures what a user of the packages gets. */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int (*dnnl_sgemm_fn)(char, char, int64_t, int64_t, int64_t, float, const float *, int64_t,
                             const float *, int64_t, float, float *, int64_t);
typedef void (*cblas_sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int,
                               float, float *, int);

enum { ROWMAJOR = 101, NOTRANS = 111, TRANS = 112 };

typedef struct {
    const char *name, *lib, *sym;
    void *h;
    void *fn;
} provider;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void run(provider *p, int ta, int tb, int M, int N, int K, const float *A, const float *B, float *C)
{
    int lda = ta ? M : K, ldb = tb ? K : N;
    if (strcmp(p->name, "dnnl") == 0)
        ((dnnl_sgemm_fn)p->fn)(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, N);
    else
        ((cblas_sgemm_fn)p->fn)(ROWMAJOR, ta ? TRANS : NOTRANS, tb ? TRANS : NOTRANS, M, N, K, 1.0f, A, lda, B,
                                ldb, 0.0f, C, N);
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int reps = 5, T = 4096;
    const char *want = "dnnl,blis,openblas";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) T = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--providers") && i + 1 < argc) want = argv[++i];
        else {
            fprintf(stderr, "usage: bench_gemm [--reps N] [--tokens T] [--providers dnnl,blis,openblas]\n");
            return 2;
        }
    }
    if (reps < 1 || T < 1) return 2;
    provider ps[] = {
        {"dnnl", "libdnnl.so.2", "dnnl_sgemm", NULL, NULL},
        {"blis", "/usr/lib/x86_64-linux-gnu/blis-openmp/libblis.so.4", "cblas_sgemm", NULL, NULL},
        {"openblas", "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0", "cblas_sgemm", NULL, NULL},
    };
    /* name, transA, transB, M, N, K  (row-major; weights are [out, in] as in HF) */
    struct { const char *what; int ta, tb, M, N, K; } shapes[] = {
        {"base.qkv.fwd", 0, 1, T, 2304, 768},    {"base.ffn_up.fwd", 0, 1, T, 3072, 768},
        {"base.ffn_down.fwd", 0, 1, T, 768, 3072}, {"base.ffn_up.dx", 0, 0, T, 768, 3072},
        {"base.ffn_up.dw", 1, 0, 3072, 768, T},  {"minilm.ffn_up.fwd", 0, 1, T, 1536, 384},
        {"minilm.ffn_up.dw", 1, 0, 1536, 384, T}, {"minilm.attn_out.fwd", 0, 1, T, 384, 384},
        {"ade_base.ffn_up.fwd", 0, 1, 1120, 3072, 768},
    };
    size_t maxa = 0, maxb = 0, maxc = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        size_t a = (size_t)shapes[s].M * shapes[s].K, b = (size_t)shapes[s].K * shapes[s].N,
               c = (size_t)shapes[s].M * shapes[s].N;
        if (a > maxa) maxa = a;
        if (b > maxb) maxb = b;
        if (c > maxc) maxc = c;
    }
    float *A = malloc(maxa * 4), *B = malloc(maxb * 4), *C = malloc(maxc * 4);
    if (!A || !B || !C) return 1;
    for (size_t i = 0; i < maxa; i++) A[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    for (size_t i = 0; i < maxb; i++) B[i] = (float)((i * 40503u) % 997) / 997.0f - 0.5f;
    const char *omp = getenv("OMP_NUM_THREADS"), *ob = getenv("OPENBLAS_NUM_THREADS");
    for (size_t p = 0; p < sizeof ps / sizeof ps[0]; p++) {
        if (!strstr(want, ps[p].name)) continue;
        ps[p].h = dlopen(ps[p].lib, RTLD_NOW | RTLD_LOCAL);
        if (ps[p].h) ps[p].fn = dlsym(ps[p].h, ps[p].sym);
        if (!ps[p].fn) {
            printf("{\"provider\":\"%s\",\"error\":\"cannot load %s\"}\n", ps[p].name, ps[p].lib);
            continue;
        }
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            double t[64];
            int n = reps < 64 ? reps : 64;
            run(&ps[p], shapes[s].ta, shapes[s].tb, shapes[s].M, shapes[s].N, shapes[s].K, A, B, C); /* warm */
            for (int r = 0; r < n; r++) {
                double t0 = now();
                run(&ps[p], shapes[s].ta, shapes[s].tb, shapes[s].M, shapes[s].N, shapes[s].K, A, B, C);
                t[r] = now() - t0;
            }
            qsort(t, n, sizeof t[0], cmpd);
            double fl = 2.0 * shapes[s].M * shapes[s].N * shapes[s].K;
            printf("{\"provider\":\"%s\",\"shape\":\"%s\",\"M\":%d,\"N\":%d,\"K\":%d,\"ta\":%d,\"tb\":%d,"
                   "\"reps\":%d,\"median_ms\":%.3f,\"min_ms\":%.3f,\"max_ms\":%.3f,\"gflops_median\":%.1f,"
                   "\"omp_num_threads\":\"%s\",\"openblas_num_threads\":\"%s\"}\n",
                   ps[p].name, shapes[s].what, shapes[s].M, shapes[s].N, shapes[s].K, shapes[s].ta, shapes[s].tb,
                   n, t[n / 2] * 1e3, t[0] * 1e3, t[n - 1] * 1e3, fl / t[n / 2] * 1e-9, omp ? omp : "",
                   ob ? ob : "");
            fflush(stdout);
        }
    }
    free(A);
    free(B);
    free(C);
    return 0;
}
