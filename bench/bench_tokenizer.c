/* Tokenizer throughput on the whole `hf` view of ADE corpus v2, one core.
 * Texts are loaded once; each timed repetition tokenises every row
 * (io_tokenize_corpus into CSR, and io_tokenizer_encode row by row into one
 * buffer). Prints one JSON object. Driver: bench/run-tokenizer-bench.sh; peer:
 * bench/tokenizer_peer.py.
 *   bench_tokenizer --data DIR --vocab FILE [--lowercase|--cased] [--reps R]
 *                   [--max-len N]   (0 = no truncation, the default) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io/io.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void print_side(const char *name, double *t, int reps, size_t rows, size_t tokens, int last)
{
    printf("  \"%s\": {\"seconds\": [", name);
    for (int r = 0; r < reps; r++)
        printf("%s%.6f", r ? ", " : "", t[r]);
    double m = median(t, reps);
    printf("], \"median_s\": %.6f, \"rows_per_s\": %.1f, \"tokens_per_s\": %.1f, \"ns_per_row\": %.1f}%s\n", m,
           (double)rows / m, (double)tokens / m, 1e9 * m / (double)rows, last ? "" : ",");
}

int main(int argc, char **argv)
{
    const char *data = getenv("ADEBERT_TEST_DATA");
    const char *vocab_path = NULL;
    int lower = -1, reps = 5;
    size_t max_len = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--data") && i + 1 < argc)
            data = argv[++i];
        else if (!strcmp(argv[i], "--vocab") && i + 1 < argc)
            vocab_path = argv[++i];
        else if (!strcmp(argv[i], "--lowercase"))
            lower = 1;
        else if (!strcmp(argv[i], "--cased"))
            lower = 0;
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--max-len") && i + 1 < argc)
            max_len = (size_t)strtoull(argv[++i], NULL, 10);
        else {
            fprintf(stderr,
                    "usage: %s --data DIR --vocab FILE [--lowercase|--cased] [--reps R] [--max-len N]\n",
                    argv[0]);
            return 2;
        }
    }
    if (!data || !vocab_path || reps < 1 || reps > 1000 || max_len == 1) {
        fprintf(stderr, "bench_tokenizer: need --data DIR (folder with ade-corpus-v2/), --vocab FILE, "
                        "reps in 1..1000, max-len 0 or >= 2\n");
        return 2;
    }
    char err[IO_ERRLEN], dir[4096];
    snprintf(dir, sizeof dir, "%s/ade-corpus-v2", data);
    io_corpus c;
    if (io_corpus_load_ade(dir, IO_VIEW_HF, &c, err)) {
        fprintf(stderr, "bench_tokenizer: %s\n", err);
        return 1;
    }
    io_vocab *v;
    if (io_vocab_load(vocab_path, &v, err)) {
        fprintf(stderr, "bench_tokenizer: %s\n", err);
        io_corpus_free(&c);
        return 1;
    }
    if (lower < 0)
        lower = !io_vocab_is_cased(v);
    io_tokenizer *t;
    if (io_tokenizer_init(&t, v, lower, err)) {
        fprintf(stderr, "bench_tokenizer: %s\n", err);
        return 1;
    }
    size_t bytes = 0;
    for (size_t i = 0; i < c.n; i++)
        bytes += c.len[i];

    double *tc = calloc((size_t)reps, sizeof *tc), *te = calloc((size_t)reps, sizeof *te);
    size_t tokens = 0, tokens_enc = 0;
    /* one untimed warm-up pass: page faults and caches are not the tokenizer */
    io_tokens tk;
    if (io_tokenize_corpus(t, &c, max_len, &tk, err)) {
        fprintf(stderr, "bench_tokenizer: %s\n", err);
        return 1;
    }
    tokens = tk.offsets[tk.n];
    io_tokens_free(&tk);

    size_t cap = max_len ? max_len : 65536;
    int32_t *buf = malloc(cap * sizeof *buf);
    uint64_t sink = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        if (io_tokenize_corpus(t, &c, max_len, &tk, err)) {
            fprintf(stderr, "bench_tokenizer: %s\n", err);
            return 1;
        }
        tc[r] = now() - t0;
        sink += tk.offsets[tk.n];
        io_tokens_free(&tk);

        t0 = now();
        size_t total = 0;
        for (size_t i = 0; i < c.n; i++) {
            size_t n;
            if (io_tokenizer_encode(t, c.text[i], c.len[i], cap, buf, cap, &n, err)) {
                fprintf(stderr, "bench_tokenizer: row %zu: %s\n", i, err);
                return 1;
            }
            total += n;
            sink += (uint64_t)buf[n / 2];
        }
        te[r] = now() - t0;
        tokens_enc = total;
    }
    printf("{\n  \"side\": \"adebert\", \"vocab\": \"%s\", \"lowercase\": %d, \"max_len\": %zu, "
           "\"reps\": %d, \"threads\": 1,\n  \"rows\": %zu, \"bytes\": %zu, \"tokens\": %zu, \"tokens_encode\": %zu, "
           "\"checksum\": %llu,\n",
           strrchr(vocab_path, '/') ? strrchr(vocab_path, '/') + 1 : vocab_path, lower, max_len, reps, c.n, bytes,
           tokens, tokens_enc, (unsigned long long)sink);
    print_side("corpus_csr", tc, reps, c.n, tokens, 0);
    print_side("encode_per_row", te, reps, c.n, tokens, 1);
    printf("}\n");
    free(buf);
    free(tc);
    free(te);
    io_tokenizer_free(t);
    io_vocab_free(v);
    io_corpus_free(&c);
    return 0;
}
